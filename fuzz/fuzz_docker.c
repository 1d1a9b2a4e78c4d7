/* SPDX-License-Identifier: ISC */
/*
 * Docker's other documents: /version, /info, an error body and one event
 * line, each parser on the same bytes.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct docker_event ev;
	char *api, *min_api, *detail, *message, *cause;
	int manager;

	if (swarm_parse_version(text, size, &api, &min_api, &cause) == 0) {
		FUZZ_ASSERT(api != NULL && min_api != NULL);
		free(api);
		free(min_api);
	} else
		free(cause);
	if (swarm_parse_info(text, size, &manager, &detail, &cause) == 0) {
		FUZZ_ASSERT(*detail != '\0');
		FUZZ_ASSERT(manager == 0 || manager == 1);
		free(detail);
	} else
		free(cause);
	if (swarm_parse_error(text, size, &message) == 0) {
		(void)esc(message);
		free(message);
	}
	if (swarm_parse_event(text, size, &ev) == 0) {
		FUZZ_ASSERT(memchr(ev.action, '\0', sizeof(ev.action)) != NULL);
		FUZZ_ASSERT(memchr(ev.actor, '\0', sizeof(ev.actor)) != NULL);
		FUZZ_ASSERT(memchr(ev.name, '\0', sizeof(ev.name)) != NULL);
		FUZZ_ASSERT(memchr(ev.task_id, '\0', sizeof(ev.task_id)) !=
		    NULL);
		FUZZ_ASSERT(memchr(ev.service_id, '\0',
		    sizeof(ev.service_id)) != NULL);
		FUZZ_ASSERT(ev.kind >= EVENT_OTHER &&
		    ev.kind <= EVENT_CONFIG);
	}
	return 0;
}
