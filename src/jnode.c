/* SPDX-License-Identifier: ISC */
/*
 * A JSON value as the task parser reads it, built in an arena that is
 * emptied for the next one.  The kept copy of a task (jsonkeep.c) is a
 * few hundred bytes; jansson spent most of a full read building and
 * freeing its tree of it, ten thousand times over: a hash table and an
 * allocation for every object, string and number.  Here a value is one
 * pass over the text into memory that is reused.
 *
 * The same grammar and the same refusals as jansson for what it is given
 * (strings of valid UTF-8 without NUL, integers that fit, depth), and a
 * member named twice reads as its last value, as jansson keeps it.
 * jnode_from_json takes a value jansson parsed (the whole object, when
 * json_keep could not copy it) into the same form.
 *
 * Pure: no I/O.
 */

#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"
#include "jnode.h"

/* jansson's own limit. */
#define JNODE_MAX_DEPTH 2048
#define JARENA_BLOCK 65536

struct jarena_block {
	struct jarena_block *next;
	size_t used, cap;
	char data[];
};

static void *
jalloc(struct jarena *a, size_t n)
{
	struct jarena_block *b = a->head;
	void *p;

	n = (n + 7) & ~(size_t)7;	/* data[] is 8-aligned */
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = n > JARENA_BLOCK ? n : JARENA_BLOCK;

		b = xmalloc(sizeof(*b) + cap);
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	p = b->data + b->used;
	b->used += n;
	return p;
}

/* Empty for the next value: one block stays, so nothing is mapped again. */
void
jarena_reset(struct jarena *a)
{
	struct jarena_block *b, *next;

	if (a->head == NULL)
		return;
	for (b = a->head->next; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->head->next = NULL;
	a->head->used = 0;
}

void
jarena_free(struct jarena *a)
{
	jarena_reset(a);
	free(a->head);
	a->head = NULL;
}

static struct jnode *
jnode_new(struct jarena *a, enum jnode_type type)
{
	struct jnode *n = jalloc(a, sizeof(*n));

	memset(n, 0, sizeof(*n));
	n->type = type;
	return n;
}

static void
jnode_append(struct jnode *parent, struct jnode **tail, struct jnode *kid)
{
	if (*tail == NULL)
		parent->first = kid;
	else
		(*tail)->next = kid;
	*tail = kid;
	parent->n++;
}

struct jparse {
	const unsigned char *p, *end;
	struct jarena *a;
	int depth;
};

static struct jnode *jp_value(struct jparse *);
static struct jnode *jp_value_here(struct jparse *);

static void
jp_space(struct jparse *jp)
{
	jp->p = (const unsigned char *)json_space((const char *)jp->p,
	    (const char *)jp->end);
}

static int
hex4(const unsigned char *p, unsigned *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			*v |= (unsigned)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			*v |= (unsigned)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			*v |= (unsigned)(p[i] - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

/* The length of the valid UTF-8 sequence at p (of at most left bytes), or 0. */
static size_t
utf8_len(const unsigned char *p, size_t left)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (*p >= 0xc2 && *p <= 0xdf)
		n = 2;
	else if (*p >= 0xe0 && *p <= 0xef) {
		n = 3;
		if (*p == 0xe0)
			lo = 0xa0;	/* not overlong */
		else if (*p == 0xed)
			hi = 0x9f;	/* not a surrogate */
	} else if (*p >= 0xf0 && *p <= 0xf4) {
		n = 4;
		if (*p == 0xf0)
			lo = 0x90;
		else if (*p == 0xf4)
			hi = 0x8f;	/* not beyond U+10FFFF */
	} else
		return 0;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

static char *
put_utf8(char *o, unsigned c)
{
	if (c < 0x80)
		*o++ = (char)c;
	else if (c < 0x800) {
		*o++ = (char)(0xc0 | c >> 6);
		*o++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*o++ = (char)(0xe0 | c >> 12);
		*o++ = (char)(0x80 | (c >> 6 & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	} else {
		*o++ = (char)(0xf0 | c >> 18);
		*o++ = (char)(0x80 | (c >> 12 & 0x3f));
		*o++ = (char)(0x80 | (c >> 6 & 0x3f));
		*o++ = (char)(0x80 | (c & 0x3f));
	}
	return o;
}

/* A string from its opening quote, decoded into the arena. */
static const char *
jp_string(struct jparse *jp)
{
	const unsigned char *p = jp->p + 1, *end = jp->end, *q;
	char *out, *o;
	unsigned c, lo;
	size_t n;

	/* Its end: the decoded string is never longer than the text. */
	for (q = p; q < end && *q != '"'; q++)
		if (*q == '\\' && ++q == end)
			return NULL;
	if (q == end)
		return NULL;
	o = out = jalloc(jp->a, (size_t)(q - p) + 1);
	while (p < q) {
		if (*p < 0x20)
			return NULL;
		if (*p >= 0x80) {
			if ((n = utf8_len(p, (size_t)(q - p))) == 0)
				return NULL;
			memcpy(o, p, n);
			o += n;
			p += n;
			continue;
		}
		if (*p != '\\') {
			*o++ = (char)*p++;
			continue;
		}
		switch (p[1]) {
		case '"': case '\\': case '/':
			*o++ = (char)p[1];
			break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (q - p < 6 || hex4(p + 2, &c) == -1)
				return NULL;
			p += 4;
			if (c >= 0xdc00 && c <= 0xdfff)
				return NULL;
			if (c >= 0xd800 && c <= 0xdbff) {
				if (q - p < 8 || p[2] != '\\' || p[3] != 'u' ||
				    hex4(p + 4, &lo) == -1 || lo < 0xdc00 ||
				    lo > 0xdfff)
					return NULL;
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
				p += 6;
			}
			if (c == 0)
				return NULL;	/* jansson: no NUL */
			o = put_utf8(o, c);
			break;
		default:
			return NULL;
		}
		p += 2;
	}
	*o = '\0';
	jp->p = q + 1;
	return out;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static struct jnode *
jp_number(struct jparse *jp)
{
	const unsigned char *start = jp->p, *p = jp->p, *end = jp->end;
	char digits[32], *text;
	struct jnode *n;
	double d;
	int real = 0;

	if (*p == '-')
		p++;
	if (p == end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	if (p < end && *p == '.') {
		real = 1;
		if (++p == end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = 1;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || *p < '0' || *p > '9')
			return NULL;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	jp->p = p;
	/* jansson refuses an integer that does not fit, and a real number
	 * too large for a double (not one too small: that reads as 0). */
	if (real) {
		text = jalloc(jp->a, (size_t)(p - start) + 1);
		memcpy(text, start, (size_t)(p - start));
		text[p - start] = '\0';
		errno = 0;
		d = strtod(text, NULL);
		if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
			return NULL;
		return jnode_new(jp->a, JNODE_REAL);
	}
	if ((size_t)(p - start) >= sizeof(digits))
		return NULL;
	memcpy(digits, start, (size_t)(p - start));
	digits[p - start] = '\0';
	n = jnode_new(jp->a, JNODE_INT);
	errno = 0;
	n->num = strtoll(digits, NULL, 10);
	return errno == ERANGE ? NULL : n;
}

static struct jnode *
jp_literal(struct jparse *jp, const char *word, enum jnode_type type)
{
	size_t len = strlen(word);

	if ((size_t)(jp->end - jp->p) < len || memcmp(jp->p, word, len) != 0)
		return NULL;
	jp->p += len;
	return jnode_new(jp->a, type);
}

/* An array or an object from its opening bracket. */
static struct jnode *
jp_container(struct jparse *jp, int object)
{
	struct jnode *c, *kid, *tail = NULL;
	const char *key = NULL;

	c = jnode_new(jp->a, object ? JNODE_OBJECT : JNODE_ARRAY);
	jp->p++;
	jp_space(jp);
	if (jp->p < jp->end && *jp->p == (object ? '}' : ']')) {
		jp->p++;
		return c;
	}
	for (;;) {
		if (object) {
			if (jp->p == jp->end || *jp->p != '"' ||
			    (key = jp_string(jp)) == NULL)
				return NULL;
			jp_space(jp);
			if (jp->p == jp->end || *jp->p != ':')
				return NULL;
			jp->p++;
			jp_space(jp);
		}
		if ((kid = jp_value(jp)) == NULL)
			return NULL;
		kid->key = key;
		jnode_append(c, &tail, kid);
		jp_space(jp);
		if (jp->p == jp->end)
			return NULL;
		if (*jp->p == ',') {
			jp->p++;
			jp_space(jp);
			continue;
		}
		if (*jp->p != (object ? '}' : ']'))
			return NULL;
		jp->p++;
		return c;
	}
}

/* A value, counted in the depth as jansson counts every value. */
static struct jnode *
jp_value(struct jparse *jp)
{
	struct jnode *n;

	if (++jp->depth > JNODE_MAX_DEPTH)
		return NULL;
	n = jp_value_here(jp);
	jp->depth--;
	return n;
}

static struct jnode *
jp_value_here(struct jparse *jp)
{
	struct jnode *n;
	const char *s;

	if (jp->p == jp->end)
		return NULL;
	switch (*jp->p) {
	case '{':
		return jp_container(jp, 1);
	case '[':
		return jp_container(jp, 0);
	case '"':
		if ((s = jp_string(jp)) == NULL)
			return NULL;
		n = jnode_new(jp->a, JNODE_STRING);
		n->str = s;
		return n;
	case 't':
		return jp_literal(jp, "true", JNODE_TRUE);
	case 'f':
		return jp_literal(jp, "false", JNODE_FALSE);
	case 'n':
		return jp_literal(jp, "null", JNODE_NULL);
	default:
		return jp_number(jp);
	}
}

/*
 * The JSON value that is the whole of text (blanks around it aside), in
 * the arena (borrowed: valid until it is reset), or NULL where jansson
 * would refuse it.
 */
struct jnode *
jnode_parse(struct jarena *a, const char *text, size_t len)
{
	struct jparse jp;
	struct jnode *n;

	jp.p = (const unsigned char *)text;
	jp.end = jp.p + len;
	jp.a = a;
	jp.depth = 0;
	jp_space(&jp);
	if ((n = jp_value(&jp)) == NULL)
		return NULL;
	jp_space(&jp);
	return jp.p == jp.end ? n : NULL;
}

static char *
arena_strdup(struct jarena *a, const char *s)
{
	size_t len = strlen(s) + 1;

	return memcpy(jalloc(a, len), s, len);
}

/* A value jansson parsed, in the same form. */
struct jnode *
jnode_from_json(struct jarena *a, json_t *j)
{
	struct jnode *n, *kid, *tail = NULL;
	const char *key;
	json_t *v;
	size_t i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		n = jnode_new(a, JNODE_OBJECT);
		json_object_foreach(j, key, v) {
			kid = jnode_from_json(a, v);
			kid->key = arena_strdup(a, key);
			jnode_append(n, &tail, kid);
		}
		return n;
	case JSON_ARRAY:
		n = jnode_new(a, JNODE_ARRAY);
		json_array_foreach(j, i, v)
			jnode_append(n, &tail, jnode_from_json(a, v));
		return n;
	case JSON_STRING:
		n = jnode_new(a, JNODE_STRING);
		n->str = arena_strdup(a, json_string_value(j));
		return n;
	case JSON_INTEGER:
		n = jnode_new(a, JNODE_INT);
		n->num = (long long)json_integer_value(j);
		return n;
	case JSON_REAL:
		return jnode_new(a, JNODE_REAL);
	case JSON_TRUE:
		return jnode_new(a, JNODE_TRUE);
	case JSON_FALSE:
		return jnode_new(a, JNODE_FALSE);
	default:
		return jnode_new(a, JNODE_NULL);
	}
}

/* The member of object o named key (its last, as jansson keeps), or NULL. */
static const struct jnode *
jnode_member(const struct jnode *o, const char *key, size_t len)
{
	const struct jnode *m, *found = NULL;

	if (o == NULL || o->type != JNODE_OBJECT)
		return NULL;
	for (m = o->first; m != NULL; m = m->next)
		if (strncmp(m->key, key, len) == 0 && m->key[len] == '\0')
			found = m;
	return found;
}

/* The value at a dotted path of members ("Status.State"), or NULL. */
const struct jnode *
jnode_get(const struct jnode *o, const char *path)
{
	const char *dot;

	while (o != NULL && (dot = strchr(path, '.')) != NULL) {
		o = jnode_member(o, path, (size_t)(dot - path));
		path = dot + 1;
	}
	return jnode_member(o, path, strlen(path));
}

/* The string at a dotted path, or NULL when absent or not a string. */
const char *
jnode_str(const struct jnode *o, const char *path)
{
	const struct jnode *n = jnode_get(o, path);

	return n != NULL && n->type == JNODE_STRING ? n->str : NULL;
}

/* The array at a dotted path when it has members, else NULL. */
const struct jnode *
jnode_array(const struct jnode *o, const char *path)
{
	const struct jnode *n = jnode_get(o, path);

	return n != NULL && n->type == JNODE_ARRAY && n->n > 0 ? n : NULL;
}

/* The integer at a dotted path, or 0 when absent or not an integer. */
long long
jnode_int(const struct jnode *o, const char *path)
{
	const struct jnode *n = jnode_get(o, path);

	return n != NULL && n->type == JNODE_INT ? n->num : 0;
}
