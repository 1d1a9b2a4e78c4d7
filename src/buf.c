/* SPDX-License-Identifier: ISC */
/*
 * Growable byte buffers.  The data is always NUL-terminated so that a
 * buffer holding text can be passed where a C string is expected.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

void
buf_init(struct buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

void
buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data != NULL)
		b->data[0] = '\0';
}

static void
buf_grow(struct buf *b, size_t more)
{
	size_t need, cap;

	if (more > SIZE_MAX - b->len - 1)
		fatalx("buf_grow: size overflow");
	need = b->len + more + 1;
	if (need <= b->cap)
		return;
	cap = b->cap == 0 ? 256 : b->cap;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	b->data = xreallocarray(b->data, cap, 1);
	b->cap = cap;
}

void
buf_add(struct buf *b, const void *data, size_t len)
{
	buf_grow(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

void
buf_addc(struct buf *b, char c)
{
	buf_add(b, &c, 1);
}

void
buf_vaddf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		fatalx("buf_vaddf: bad format");
	buf_grow(b, (size_t)n);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void
buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(b, fmt, ap);
	va_end(ap);
}

/* Returns the text (new; never NULL) and leaves the buffer empty. */
char *
buf_steal(struct buf *b)
{
	char *s;

	if (b->data == NULL)
		return xstrdup("");
	s = b->data;
	buf_init(b);
	return s;
}

/* Frees an array of n strings and the strings.  NULL: nothing. */
void
free_strings(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* qsort comparator for arrays of C strings. */
int
str_cmp_ptr(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Whether two strings, either NULL, are the same. */
int
str_same(const char *a, const char *b)
{
	return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

/*
 * qsort and bsearch, defined for an empty array too: the C library's are
 * undefined when given a NULL base, which an empty array here often has.
 */
void
sort_array(void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	const char *p = base;
	size_t i;

	/* What is sorted already (HAProxy's replies, mostly) stays. */
	for (i = 1; i < n; i++)
		if (cmp(p + (i - 1) * size, p + i * size) > 0)
			break;
	if (i < n)
		qsort(base, n, size, cmp);
}

void *
find_in_array(const void *key, const void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *))
{
	if (n == 0)
		return NULL;
	return bsearch(key, base, n, size, cmp);
}

/*
 * The first element of base[0..n) (sorted) that cmp(element, key) does
 * not place before key: where key is, or goes.  cmp may compare an
 * element with a key of another type (a name, say).
 */
size_t
lower_bound(const void *key, const void *base, size_t n, size_t size,
    int (*cmp)(const void *elem, const void *key))
{
	const char *p = base;
	size_t lo = 0, hi = n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (cmp(p + mid * size, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * A 64-bit hash continuing from h (HASH_INIT to start): to tell whether
 * Docker's or HAProxy's replies changed without keeping them, and to
 * place names in tables.  Not for anything kept or sent: it depends on
 * the machine's byte order.  Eight bytes a step (the replies are
 * megabytes), each multiplied in and its high bits folded down; FNV-1a
 * for the last few bytes; then MurmurHash3's finalizer, so that every
 * input bit reaches the low bits the tables use (a product's high bits
 * never reach them by themselves).
 */
uint64_t
hash_bytes(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;
	uint64_t w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, sizeof(w));
		h = (h ^ w) * UINT64_C(0x9e3779b97f4a7c15);
		h ^= h >> 32;
	}
	for (; len > 0; p++, len--) {
		h ^= *p;
		h *= UINT64_C(1099511628211);
	}
	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	return h;
}
