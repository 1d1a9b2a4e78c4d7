/* SPDX-License-Identifier: ISC */
/* What the fuzz targets share: turning bytes into C strings, checks. */
#include "config.h"

#include <string.h>

#include "fuzz.h"

/* Quiet: the parsers log what they refuse, and that is the point. */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_init(-1);
	return 0;
}

/* The bytes as a C string (new); it ends at the first NUL byte. */
char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	return xstrndup((const char *)data, size);
}

/*
 * Splits the bytes on NUL into at most max parts (new strings, the last
 * part keeping any further NULs cut off); parts past the input are "".
 * Returns the number of parts the input had.
 */
size_t
fuzz_split(const uint8_t *data, size_t size, char **parts, size_t max)
{
	const uint8_t *p = data, *end = data + size, *nul;
	size_t n = 0;

	while (n < max) {
		if (p >= end) {
			parts[n++] = xstrdup("");
			continue;
		}
		nul = memchr(p, '\0', (size_t)(end - p));
		if (nul == NULL)
			nul = end;
		parts[n++] = xstrndup((const char *)p, (size_t)(nul - p));
		p = nul + 1;
	}
	return n;
}

void
fuzz_free_parts(char **parts, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(parts[i]);
}

/* Whether the array is sorted by cmp (strictly: without equal pairs). */
int
fuzz_sorted(const void *base, size_t n, size_t size,
    int (*cmp)(const void *, const void *), int strict)
{
	const char *p = base;
	size_t i;
	int c;

	for (i = 1; i < n; i++) {
		c = cmp(p + (i - 1) * size, p + i * size);
		if (c > 0 || (strict && c == 0))
			return 0;
	}
	return 1;
}

/* Whether s holds any of chars, or a control character if chars is NULL. */
int
fuzz_has_any(const char *s, const char *chars)
{
	if (chars != NULL)
		return strpbrk(s, chars) != NULL;
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

/* Whether s is printable ASCII only. */
int
fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}
