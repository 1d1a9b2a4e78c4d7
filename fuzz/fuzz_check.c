/* SPDX-License-Identifier: ISC */
/*
 * What "haproxy -c" prints and the HAProxy files dovetail reads: the
 * reason of a refused certificate, the default-server warning on the
 * user's file, the skeleton compared for reloads, and the log escaping
 * of the output.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct buf b;
	char *text, *reason;
	unsigned line;
	size_t i, lines = 1;

	text = fuzz_cstr(data, size);
	if (haproxy_check_reason(text, &reason) == 0) {
		FUZZ_ASSERT(strchr(reason, '\n') == NULL);
		FUZZ_ASSERT(strstr(text, reason) != NULL);
		FUZZ_ASSERT(fuzz_printable(esc(reason)));
		free(reason);
	}
	for (i = 0; text[i] != '\0'; i++)
		if (text[i] == '\n')
			lines++;
	line = render_default_server_line(text);
	FUZZ_ASSERT(line <= lines);
	buf_init(&b);
	render_skeleton(&b, text);
	FUZZ_ASSERT(b.len <= strlen(text));
	FUZZ_ASSERT(b.data == NULL || strstr(b.data, "\n\tserver ") == NULL);
	buf_free(&b);
	FUZZ_ASSERT(fuzz_printable(esc(text)));
	free(text);
	return 0;
}
