/* SPDX-License-Identifier: ISC */
/*
 * The Docker event stream's framing: the bytes arrive in pieces of any
 * size, and the events taken out must be the same whatever the pieces.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

#define MAX_EVENTS 4096

/* Feeds data in chunks of step bytes, taking events as the loop does. */
static size_t
run(const uint8_t *data, size_t size, size_t step, struct docker_event *evs)
{
	struct buf b;
	size_t off = 0, n = 0, len;

	buf_init(&b);
	while (off < size) {
		len = size - off < step ? size - off : step;
		if (docker_events_feed(&b, (const char *)data + off, len) == -1)
			break;
		off += len;
		while (n < MAX_EVENTS && docker_events_take(&b, &evs[n]) == 1)
			n++;
	}
	/* What stays is a partial line. */
	FUZZ_ASSERT(b.len == 0 || memchr(b.data, '\n', b.len) == NULL ||
	    n == MAX_EVENTS || off < size);
	buf_free(&b);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct docker_event whole[MAX_EVENTS], pieces[MAX_EVENTS];
	size_t nw, np, step;

	nw = run(data, size, size == 0 ? 1 : size, whole);
	step = size == 0 ? 1 : 1 + data[0] % 64;
	np = run(data, size, step, pieces);
	FUZZ_ASSERT(nw == np);
	FUZZ_ASSERT(nw == 0 || memcmp(whole, pieces, nw * sizeof(*whole)) ==
	    0);
	return 0;
}
