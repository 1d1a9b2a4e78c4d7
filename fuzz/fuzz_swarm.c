/* SPDX-License-Identifier: ISC */
/*
 * Docker's swarm JSON (services, tasks, nodes, networks, secrets): the
 * same bytes through every parser into one swarm, then the look-ups and
 * the merges the agent does with what they built.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"

/* What reaches HAProxy as a server address: IPv4 or IPv6, nothing else. */
static int
is_address(const char *s)
{
	unsigned char addr[16];

	return inet_pton(AF_INET, s, addr) == 1 ||
	    inet_pton(AF_INET6, s, addr) == 1;
}

static void
check_swarm(const struct swarm *sw)
{
	size_t i, j;

	FUZZ_ASSERT(fuzz_sorted(sw->tasks, sw->ntasks, sizeof(*sw->tasks),
	    task_cmp, 0));
	for (i = 0; i < sw->nservices; i++) {
		const struct service *s = &sw->services[i];

		FUZZ_ASSERT(s->id != NULL && s->name != NULL);
		FUZZ_ASSERT(fuzz_sorted(s->labels, s->nlabels,
		    sizeof(*s->labels), kv_cmp, 0));
		for (j = 0; j < s->nlabels; j++)
			FUZZ_ASSERT(service_label(s, s->labels[j].key) !=
			    NULL);
		for (j = 0; j < s->nvips; j++)
			FUZZ_ASSERT(is_address(s->vips[j].addr));
		for (j = 0; j < s->nnetworks; j++)
			(void)swarm_network_name(sw, s->networks[j]);
		FUZZ_ASSERT(fuzz_sorted(s->secrets, s->nsecrets,
		    sizeof(char *), str_cmp_ptr, 0));
		for (j = 0; j < s->nsecrets; j++) {
			FUZZ_ASSERT(service_has_secret(s, s->secrets[j]));
			free(tenancy_secret_refused(sw, s, s->secrets[j], 1));
		}
	}
	for (i = 0; i < sw->nsecrets; i++) {
		FUZZ_ASSERT(swarm_secret(sw, sw->secrets[i].name) != NULL);
		FUZZ_ASSERT(sw->secrets[i].stack == NULL ||
		    *sw->secrets[i].stack != '\0');
	}
	for (i = 0; i < sw->ntasks; i++) {
		const struct task *t = &sw->tasks[i];

		FUZZ_ASSERT(t->id != NULL && t->service_id != NULL);
		for (j = 0; j < t->nnets; j++)
			FUZZ_ASSERT(t->nets[j].addr == NULL ||
			    is_address(t->nets[j].addr));
		for (j = 0; j < t->nports; j++)
			FUZZ_ASSERT(t->ports[j].target > 0 &&
			    t->ports[j].published > 0);
		(void)swarm_service(sw, t->service_id);
		if (t->node_id != NULL)
			(void)swarm_node(sw, t->node_id);
	}
	for (i = 0; i < sw->nnodes; i++)
		FUZZ_ASSERT(sw->nodes[i].addr == NULL ||
		    is_address(sw->nodes[i].addr));
}

/*
 * text with a member of an escaped name put first in each object of the
 * top array: json_keep refuses such an object, so the parsers read it
 * whole. Appended to b.
 */
static void
unkeepable(struct buf *b, const char *text, size_t size)
{
	size_t i, j;
	int depth = 0, in_string = 0;

	for (i = 0; i < size; i++) {
		buf_addc(b, text[i]);
		if (in_string) {
			if (text[i] == '\\' && i + 1 < size)
				buf_addc(b, text[++i]);
			else if (text[i] == '"')
				in_string = 0;
			continue;
		}
		if (text[i] == '"')
			in_string = 1;
		else if (text[i] == '[' || text[i] == '{') {
			if (text[i] == '{' && depth == 1) {
				for (j = i + 1; j < size && (text[j] == ' ' ||
				    text[j] == '\n' || text[j] == '\t' ||
				    text[j] == '\r'); j++)
					;
				buf_adds(b, j < size && text[j] == '}' ?
				    "\"\\u0058\":0" : "\"\\u0058\":0,");
			}
			depth++;
		} else if (text[i] == ']' || text[i] == '}')
			depth--;
	}
}

/* What json_keep keeps of a reply parses as the whole reply does. */
static void
check_kept(const char *text, size_t size,
    int (*parse)(struct swarm *, const char *, size_t, char **))
{
	struct swarm *kept = swarm_new(), *whole = swarm_new();
	struct buf all;
	char *cause = NULL;
	int rc;

	buf_init(&all);
	unkeepable(&all, text, size);
	rc = parse(kept, text, size, &cause);
	free(cause);
	cause = NULL;
	/* Dropped members are read for their grammar only: a reply that
	 * parses whole parses kept, not always the other way round. */
	if (parse(whole, all.data, all.len, &cause) == 0) {
		FUZZ_ASSERT(rc == 0);
		FUZZ_ASSERT(swarm_same(kept, whole));
	}
	free(cause);
	buf_free(&all);
	swarm_free(whole);
	swarm_free(kept);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct swarm *sw = swarm_new(), *fresh = swarm_new(),
	    *other = swarm_new();
	const char *text = (const char *)data;
	char *cause = NULL, *id;

	if (swarm_parse_services(sw, text, size, &cause) == -1)
		free(cause);
	if (swarm_parse_tasks(sw, text, size, &cause) == -1)
		free(cause);
	if (swarm_parse_nodes(sw, text, size, &cause) == -1)
		free(cause);
	if (swarm_parse_networks(sw, text, size, &cause) == -1)
		free(cause);
	if (swarm_parse_secrets(sw, text, size, &cause) == -1)
		free(cause);
	check_swarm(sw);
	check_kept(text, size, swarm_parse_services);
	check_kept(text, size, swarm_parse_tasks);

	/*
	 * One service refreshed, as after its event; then a merge. Either
	 * parse may fail alone: each drops other members unread.
	 */
	cause = NULL;
	if (sw->nservices > 0 && swarm_parse_services(fresh, text, size,
	    &cause) == 0 && swarm_parse_tasks(fresh, text, size, &cause) == 0) {
		id = xstrdup(sw->services[0].id);
		swarm_replace_service(sw, id, fresh);
		free(id);
		FUZZ_ASSERT(fresh->nservices == 0 && fresh->ntasks == 0);
		FUZZ_ASSERT(fuzz_sorted(sw->services, sw->nservices,
		    sizeof(*sw->services), service_cmp, 0));
		check_swarm(sw);
	}
	free(cause);
	if (swarm_parse_services(other, text, size, &cause) == 0) {
		swarm_merge_services(sw, other);
		FUZZ_ASSERT(other->nservices == 0);
		FUZZ_ASSERT(fuzz_sorted(sw->services, sw->nservices,
		    sizeof(*sw->services), service_cmp, 0));
	} else
		free(cause);
	swarm_free(other);
	swarm_free(fresh);
	swarm_free(sw);
	return 0;
}
