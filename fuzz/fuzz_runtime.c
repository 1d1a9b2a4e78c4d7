/* SPDX-License-Identifier: ISC */
/*
 * A whole runtime API session as HAProxy prints it in interactive mode:
 * split into replies at the prompts, then read as the state dovetail
 * asks for (servers, backends, certificates, crt-list, maps).
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct running *r;
	char **replies, *text, *cause;
	size_t i, n;

	text = fuzz_cstr(data, size);
	for (n = 0; n <= RUNTIME_STATE_REPLIES; n++) {
		if (runtime_split_replies(text, n, &replies, &cause) == -1) {
			FUZZ_ASSERT(replies == NULL);
			free(cause);
			continue;
		}
		for (i = 0; i < n; i++) {
			size_t len = strlen(replies[i]);

			FUZZ_ASSERT(len == 0 || replies[i][len - 1] != '\n');
			FUZZ_ASSERT(strstr(replies[i], "\n> ") == NULL);
		}
		if (n == RUNTIME_STATE_REPLIES) {
			r = running_new();
			if (runtime_parse_state(r, (const char *const *)replies,
			    &cause) == -1)
				free(cause);
			running_free(r);
		}
		runtime_replies_free(replies, n);
	}
	free(text);
	return 0;
}
