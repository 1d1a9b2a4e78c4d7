/* SPDX-License-Identifier: ISC */
/*
 * libFuzzer targets of dovetail's parsers of outside input.  Each target
 * is one fuzz_<name>.c with LLVMFuzzerTestOneInput; this header has what
 * they share (fuzz/common.c).  An invariant that fails aborts, which
 * libFuzzer reports as a crash with the input that caused it.
 */
#ifndef DOVETAIL_FUZZ_H
#define DOVETAIL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dovetail.h"

#define FUZZ_ASSERT(c) do {						\
	if (!(c)) {							\
		fprintf(stderr, "%s:%d: invariant failed: %s\n",	\
		    __FILE__, __LINE__, #c);				\
		abort();						\
	}								\
} while (0)

/* HAProxy's limits on one configuration line (LINESIZE, MAX_LINE_ARGS). */
#define HAPROXY_LINESIZE 2048
#define HAPROXY_MAX_LINE_ARGS 64

int LLVMFuzzerInitialize(int *, char ***);
int LLVMFuzzerTestOneInput(const uint8_t *, size_t);

char *fuzz_cstr(const uint8_t *, size_t);
size_t fuzz_split(const uint8_t *, size_t, char **parts, size_t max);
void fuzz_free_parts(char **, size_t);
int fuzz_sorted(const void *, size_t, size_t,
    int (*)(const void *, const void *), int strict);
int fuzz_has_any(const char *, const char *chars);
int fuzz_printable(const char *);

/* outputs.c */
extern const struct render_opts fuzz_render_opts;
void fuzz_check_outputs(const struct desired *, const struct desired *again,
    const struct running *);

#endif /* DOVETAIL_FUZZ_H */
