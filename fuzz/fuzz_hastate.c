/* SPDX-License-Identifier: ISC */
/*
 * HAProxy runtime API and master CLI replies: the same text through every
 * reply parser ("show servers state", "show backend", "show map", "show
 * ssl cert", "show ssl crt-list", "show proc") and the verdict on a
 * command's reply.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

/*
 * A field of a reply line: no space, no line break.  (A tab passes "show
 * backend" and "show ssl cert", whose lines are one word each.)
 */
static void
check_field(const char *s)
{
	FUZZ_ASSERT(!fuzz_has_any(s, " \n"));
}

static void
check_running(const struct running *r)
{
	size_t i;
	int m;

	FUZZ_ASSERT(fuzz_sorted(r->servers, r->nservers, sizeof(*r->servers),
	    rserver_cmp, 0));
	for (i = 0; i < r->nservers; i++) {
		check_field(r->servers[i].backend);
		check_field(r->servers[i].name);
		check_field(r->servers[i].addr);
		FUZZ_ASSERT(r->servers[i].weight >= 0 &&
		    r->servers[i].weight <= 256);
	}
	FUZZ_ASSERT(fuzz_sorted(r->backends, r->nbackends, sizeof(char *),
	    str_cmp_ptr, 0));
	for (i = 0; i < r->nbackends; i++) {
		check_field(r->backends[i]);
		FUZZ_ASSERT(running_has_backend(r, r->backends[i]));
	}
	for (m = 0; m < MAP_COUNT; m++) {
		FUZZ_ASSERT(fuzz_sorted(r->maps[m], r->nmap[m],
		    sizeof(*r->maps[m]), rmapent_cmp, 0));
		for (i = 0; i < r->nmap[m]; i++) {
			check_field(r->maps[m][i].key);
			check_field(r->maps[m][i].value);
		}
	}
	for (i = 0; i < r->ncert_files; i++)
		check_field(r->cert_files[i]);
	for (i = 0; i < r->ncrt_list; i++) {
		check_field(r->crt_list[i].key);
		FUZZ_ASSERT(strchr(r->crt_list[i].value, '\n') == NULL);
	}
}

/* A parser's result is checked when it succeeded: else r is dropped. */
static void
parse_one(int (*parse)(struct running *, const char *, char **),
    const char *text)
{
	struct running *r = running_new();
	char *cause;

	if (parse(r, text, &cause) == 0)
		check_running(r);
	else
		free(cause);
	running_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct running *r;
	struct proc_info p;
	struct cmd cmd;
	char *text, *cause, *alerts;
	int m, k, said;

	text = fuzz_cstr(data, size);
	parse_one(hastate_parse_servers, text);
	parse_one(hastate_parse_backends, text);
	parse_one(hastate_parse_certs, text);
	parse_one(hastate_parse_crt_list, text);
	for (m = 0; m < MAP_COUNT; m++) {
		r = running_new();
		if (hastate_parse_map(r, m, text, &cause) == 0)
			check_running(r);
		else
			free(cause);
		running_free(r);
	}
	if (hastate_parse_proc(text, &p, &cause) == 0)
		FUZZ_ASSERT(p.master_pid >= 0 && p.reloads >= 0);
	else
		free(cause);
	said = hastate_parse_reload(text, &alerts);
	FUZZ_ASSERT((said == -1) == (alerts == NULL));
	FUZZ_ASSERT(alerts == NULL || strchr(alerts, '\n') == NULL);
	free(alerts);
	memset(&cmd, 0, sizeof(cmd));
	for (k = CMD_ADD_SERVER; k <= CMD_CRT_LIST_DEL; k++) {
		cmd.kind = (enum cmd_kind)k;
		(void)plan_reply_ok(&cmd, text);
	}
	free(text);
	return 0;
}
