/* SPDX-License-Identifier: ISC */
/*
 * From Docker's JSON to what dovetail writes and tells HAProxy: the swarm
 * through desired_build to the rendered file, maps and crt-list, and,
 * against a running state read from HAProxy's replies, to the runtime
 * plan.  The input is NUL-separated parts (see enum part); seeds are
 * made from the golden cases by bench/fuzz.
 *
 * The invariants are those of fuzz/outputs.c.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

enum part {
	PART_SERVICES = 0,
	PART_TASKS,
	PART_NODES,
	PART_NETWORKS,
	PART_SERVERS_STATE,
	PART_BACKENDS,
	PART_MAP_HOSTS,		/* one per map_kind, in order */
	PART_MAP_SNI,
	PART_MAP_REDIRECTS,
	PART_CRT_LIST,
	PART_SSL_CERTS,
	PART_CERT_PEM,
	PART_KEY_PEM,
	PART_CLUSTER,
	PART_COUNT
};

/* A secret's content: the key part for names with "key", else the cert. */
static int
read_secret(void *arg, const char *name, struct buf *b, char **cause)
{
	char **parts = arg;

	buf_adds(b, parts[strstr(name, "key") != NULL ? PART_KEY_PEM :
	    PART_CERT_PEM]);
	return 0;
}

static void
load_running(struct running *r, char **parts)
{
	char *cause;
	int m;

	if (hastate_parse_servers(r, parts[PART_SERVERS_STATE], &cause) == -1)
		free(cause);
	if (hastate_parse_backends(r, parts[PART_BACKENDS], &cause) == -1)
		free(cause);
	for (m = 0; m < MAP_COUNT; m++) {
		if (parts[PART_MAP_HOSTS + m][0] == '\0')
			r->map_missing[m] = m != MAP_ROUTES;
		else if (hastate_parse_map(r, m, parts[PART_MAP_HOSTS + m],
		    &cause) == -1)
			free(cause);
	}
	if (parts[PART_CRT_LIST][0] != '\0') {
		if (hastate_parse_crt_list(r, parts[PART_CRT_LIST],
		    &cause) == -1)
			free(cause);
		if (hastate_parse_certs(r, parts[PART_SSL_CERTS],
		    &cause) == -1)
			free(cause);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *parts[PART_COUNT], *cause, *nl, **ids;
	struct swarm *sw = swarm_new();
	struct desired *old;
	size_t i;
	int n;
	struct desired_opts dopts;
	struct cert_store certs;
	struct secret_io io;
	struct desired *d, *again;
	struct running *r;
	const char *cluster;

	fuzz_split(data, size, parts, PART_COUNT);
	if (swarm_parse_services(sw, parts[PART_SERVICES],
	    strlen(parts[PART_SERVICES]), &cause) == -1 ||
	    swarm_parse_tasks(sw, parts[PART_TASKS], strlen(parts[PART_TASKS]),
	    &cause) == -1 ||
	    swarm_parse_nodes(sw, parts[PART_NODES], strlen(parts[PART_NODES]),
	    &cause) == -1) {
		free(cause);
		goto out;
	}
	if (parts[PART_NETWORKS][0] != '\0' && swarm_parse_networks(sw,
	    parts[PART_NETWORKS], strlen(parts[PART_NETWORKS]), &cause) == -1)
		free(cause);

	/* The cluster as the configuration would accept it. */
	if ((nl = strchr(parts[PART_CLUSTER], '\n')) != NULL)
		*nl = '\0';
	cluster = strspn(parts[PART_CLUSTER], "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") ==
	    strlen(parts[PART_CLUSTER]) ? parts[PART_CLUSTER] : "";

	io.read = read_secret;
	io.check = NULL;
	io.arg = parts;
	cert_store_load(&certs, sw, "com.docker.lb", cluster, &io);
	memset(&dopts, 0, sizeof(dopts));
	dopts.prefix = "com.docker.lb";
	dopts.cluster = cluster;
	dopts.https_port = 443;
	dopts.certs = &certs;
	d = desired_build(sw, &dopts);
	again = desired_build(sw, &dopts);
	/*
	 * Every service's tasks "changed" to what they are: the patched
	 * state must render as the built one (compared below), or the patch
	 * must say it cannot and leave it as it was.
	 */
	ids = xcalloc(sw->nservices + 1, sizeof(char *));
	for (i = 0; i < sw->nservices; i++)
		ids[i] = sw->services[i].id;
	n = desired_patch_tasks(again, sw, &dopts, ids, sw->nservices, &old);
	FUZZ_ASSERT(n == -1 ? old == NULL : old != NULL &&
	    old->nbackends == (size_t)n);
	desired_free(old);
	free(ids);

	r = running_new();
	load_running(r, parts);
	fuzz_check_outputs(d, again, r);
	running_free(r);
	desired_free(again);
	desired_free(d);
	cert_store_free(&certs);
out:
	swarm_free(sw);
	fuzz_free_parts(parts, PART_COUNT);
	return 0;
}
