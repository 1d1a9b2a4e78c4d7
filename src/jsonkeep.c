/* SPDX-License-Identifier: ISC */
/*
 * Docker's lists of tasks and services carry far more than dovetail
 * reads: a task's spec, its container's status, timestamps, versions.
 * At 12,500 tasks /tasks is 13 MB, and building a jansson tree of all of
 * it was most of a full read's CPU. json_keep copies one JSON value
 * keeping only the members a shape names, for jansson to parse; what it
 * drops is read for its grammar (strings and their escapes, numbers,
 * literals, nesting), never built.
 *
 * Pure: no I/O, no allocation but the output buffer.
 */

#include "config.h"

#include <ctype.h>
#include <string.h>

#include "dovetail.h"

/* Deeper input is left to jansson, whose own limit is 2,048. */
#define KEEP_MAX_DEPTH 256

struct keep_scan {
	const char *p;		/* the next byte */
	const char *end;
	int depth;
};

static int keep_value(struct keep_scan *, const struct json_keep *,
    struct buf *);

/* Past the JSON whitespace at p (end: the end of the text). */
const char *
json_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

static void
keep_space(struct keep_scan *sc)
{
	sc->p = json_space(sc->p, sc->end);
}

/*
 * Steps over a string from its opening quote. *escaped is set when it
 * holds a backslash. Bytes of 0x80 and above pass unread: a string that
 * is kept is checked by jansson, and one that is dropped is never used.
 */
static int
keep_string(struct keep_scan *sc, int *escaped)
{
	const unsigned char *p = (const unsigned char *)sc->p + 1;
	const unsigned char *end = (const unsigned char *)sc->end;

	for (;;) {
		while (p < end && *p != '"' && *p != '\\' && *p >= 0x20)
			p++;
		if (p == end || *p < 0x20)
			return -1;
		if (*p == '"')
			break;
		*escaped = 1;
		if (++p == end)
			return -1;
		if (*p == 'u') {
			if (end - p < 5 || !isxdigit(p[1]) ||
			    !isxdigit(p[2]) || !isxdigit(p[3]) ||
			    !isxdigit(p[4]))
				return -1;
			p += 5;
		} else if (*p != '\0' && strchr("\"\\/bfnrt", *p) != NULL)
			p++;
		else
			return -1;
	}
	sc->p = (const char *)p + 1;
	return 0;
}

static int
keep_digits(struct keep_scan *sc)
{
	const char *start = sc->p;

	while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
		sc->p++;
	return sc->p == start ? -1 : 0;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int
keep_number(struct keep_scan *sc)
{
	if (*sc->p == '-')
		sc->p++;
	if (sc->p < sc->end && *sc->p == '0')
		sc->p++;
	else if (keep_digits(sc) == -1)
		return -1;
	if (sc->p < sc->end && *sc->p == '.') {
		sc->p++;
		if (keep_digits(sc) == -1)
			return -1;
	}
	if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
		sc->p++;
		if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
			sc->p++;
		if (keep_digits(sc) == -1)
			return -1;
	}
	return 0;
}

static int
keep_literal(struct keep_scan *sc, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
		return -1;
	sc->p += n;
	return 0;
}

/* The member of shape named by the n bytes at key, or NULL. */
static const struct json_keep *
keep_member(const struct json_keep *shape, const char *key, size_t n)
{
	for (; shape->key != NULL; shape++)
		if (strlen(shape->key) == n && memcmp(shape->key, key, n) == 0)
			return shape;
	return NULL;
}

/*
 * An object or an array from its opening bracket. With out NULL it is
 * stepped over; otherwise an object is copied with the members of shape
 * only (shape NULL: none), and an array with each element under shape.
 */
static int
keep_container(struct keep_scan *sc, const struct json_keep *shape,
    struct buf *out)
{
	const struct json_keep *m;
	const char *key;
	char close = *sc->p == '{' ? '}' : ']';
	size_t copied = 0, keylen;
	int escaped;

	if (++sc->depth > KEEP_MAX_DEPTH)
		return -1;
	if (out != NULL)
		buf_addc(out, *sc->p);
	sc->p++;
	keep_space(sc);
	if (sc->p < sc->end && *sc->p == close)
		goto done;
	for (;;) {
		m = NULL;
		if (close == '}') {
			if (sc->p == sc->end || *sc->p != '"')
				return -1;
			key = sc->p;
			escaped = 0;
			if (keep_string(sc, &escaped) == -1)
				return -1;
			/* An escaped name could spell a kept one: too
			 * rare in Docker's replies to be worth decoding. */
			if (escaped && out != NULL)
				return -1;
			keylen = (size_t)(sc->p - key);
			if (out != NULL)
				m = keep_member(shape, key + 1, keylen - 2);
			keep_space(sc);
			if (sc->p == sc->end || *sc->p != ':')
				return -1;
			sc->p++;
			if (m != NULL) {
				if (copied++ > 0)
					buf_addc(out, ',');
				buf_add(out, key, keylen);
				buf_addc(out, ':');
			}
			if (keep_value(sc, m == NULL ? NULL : m->sub,
			    m == NULL ? NULL : out) == -1)
				return -1;
		} else {
			if (out != NULL && copied++ > 0)
				buf_addc(out, ',');
			if (keep_value(sc, shape, out) == -1)
				return -1;
		}
		keep_space(sc);
		if (sc->p < sc->end && *sc->p == ',') {
			sc->p++;
			keep_space(sc);
			continue;
		}
		if (sc->p < sc->end && *sc->p == close)
			break;
		return -1;
	}
done:
	if (out != NULL)
		buf_addc(out, close);
	sc->p++;
	sc->depth--;
	return 0;
}

/*
 * One value: stepped over with out NULL, copied whole with shape NULL,
 * else pruned to shape (which passes through arrays to their elements).
 */
static int
keep_value(struct keep_scan *sc, const struct json_keep *shape,
    struct buf *out)
{
	const char *start;
	int escaped = 0, rc;

	keep_space(sc);
	if (sc->p == sc->end)
		return -1;
	if ((*sc->p == '{' || *sc->p == '[') && (out == NULL || shape != NULL))
		return keep_container(sc, shape, out);
	start = sc->p;
	switch (*sc->p) {
	case '{':
	case '[':
		rc = keep_container(sc, NULL, NULL);
		break;
	case '"':
		rc = keep_string(sc, &escaped);
		break;
	case 't':
		rc = keep_literal(sc, "true");
		break;
	case 'f':
		rc = keep_literal(sc, "false");
		break;
	case 'n':
		rc = keep_literal(sc, "null");
		break;
	default:
		rc = *sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9') ?
		    keep_number(sc) : -1;
		break;
	}
	if (rc == 0 && out != NULL)
		buf_add(out, start, (size_t)(sc->p - start));
	return rc;
}

/*
 * Appends to out the JSON value that starts text, keeping of each object
 * under shape only the members it names, and sets *used to the bytes the
 * value took (leading white space included). Returns -1, out then holding
 * a part, when the value is not JSON or is one this reader leaves to
 * jansson (deeper than KEEP_MAX_DEPTH, an escaped member name in an
 * object it prunes): the caller parses text whole instead.
 */
int
json_keep(const char *text, size_t len, const struct json_keep *shape,
    struct buf *out, size_t *used)
{
	struct keep_scan sc;

	sc.p = text;
	sc.end = text + len;
	sc.depth = 0;
	if (keep_value(&sc, shape, out) == -1)
		return -1;
	*used = (size_t)(sc.p - text);
	return 0;
}
