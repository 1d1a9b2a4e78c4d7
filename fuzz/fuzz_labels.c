/* SPDX-License-Identifier: ISC */
/*
 * Service labels: lines "key=value" become a service's labels, read as
 * the agent reads them.  What labels_parse accepts must be safe to write
 * into the HAProxy file, a map and a runtime command.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

#define PREFIX "com.docker.lb"
#define MAX_LABELS 64

/* Lines "key=value"; a key without the prefix gets it. */
static void
make_service(struct service *s, char *text)
{
	char *line, *next, *eq;

	memset(s, 0, sizeof(*s));
	s->id = xstrdup("fuzzid");
	s->name = xstrdup("fuzz");
	s->labels = xcalloc(MAX_LABELS, sizeof(*s->labels));
	for (line = text; line != NULL && s->nlabels < MAX_LABELS;
	    line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (eq == NULL)
			continue;
		*eq = '\0';
		s->labels[s->nlabels].key = strchr(line, '.') != NULL ?
		    xstrdup(line) : xasprintf(PREFIX ".%s", line);
		if (service_label(s, s->labels[s->nlabels].key) != NULL) {
			free(s->labels[s->nlabels].key);
			continue;
		}
		s->labels[s->nlabels].value = xstrdup(eq + 1);
		s->nlabels++;
		sort_array(s->labels, s->nlabels, sizeof(*s->labels), kv_cmp);
	}
}

/* Nothing HAProxy or its runtime API would split or misread. */
static void
check_word(const char *s)
{
	FUZZ_ASSERT(*s != '\0');
	FUZZ_ASSERT(fuzz_printable(s));
	FUZZ_ASSERT(!fuzz_has_any(s, " ;#\"'\\{}"));
}

static void
check_route(const struct route_spec *r)
{
	size_t i;
	char *p;

	FUZZ_ASSERT(r->port > 0);
	FUZZ_ASSERT(r->nhosts > 0 || r->default_backend);
	FUZZ_ASSERT(fuzz_sorted(r->hosts, r->nhosts, sizeof(char *),
	    str_cmp_ptr, 1));
	for (i = 0; i < r->nhosts; i++) {
		FUZZ_ASSERT(label_valid_host(r->hosts[i]));
		check_word(r->hosts[i]);
	}
	if (r->network != NULL)
		check_word(r->network);
	if (r->context_root != NULL) {
		check_word(r->context_root);
		FUZZ_ASSERT(label_parse_path(r->context_root, &p) == 0);
		FUZZ_ASSERT(strcmp(p, r->context_root) == 0);
		FUZZ_ASSERT(strcmp(p, "/") != 0);
		free(p);
	}
	FUZZ_ASSERT(!r->rewrite || r->context_root != NULL);
	FUZZ_ASSERT((r->ssl_cert == NULL) == (r->ssl_key == NULL));
	if (r->ssl_cert != NULL) {
		check_word(r->ssl_cert);
		check_word(r->ssl_key);
	}
	for (i = 0; i < r->nredirects; i++) {
		check_word(r->redirects[i].key);
		check_word(r->redirects[i].target);
		FUZZ_ASSERT(strncmp(r->redirects[i].key, "http://", 7) == 0 ||
		    strncmp(r->redirects[i].key, "https://", 8) == 0);
		FUZZ_ASSERT(strcmp(r->redirects[i].key,
		    r->redirects[i].target) != 0);
		if (i > 0)
			FUZZ_ASSERT(strcmp(r->redirects[i - 1].key,
			    r->redirects[i].key) < 0);
	}
	if (r->sticky_cookie != NULL) {
		check_word(r->sticky_cookie);
		FUZZ_ASSERT(!r->ip_hash);
	}
	for (i = 0; i < r->nws; i++) {
		check_word(r->ws_paths[i]);
		FUZZ_ASSERT(r->ws_paths[i][0] == '/');
	}
	FUZZ_ASSERT(r->weight >= -1 && r->weight <= 100);
	FUZZ_ASSERT(!r->passthrough || (r->nhosts > 0 &&
	    !r->default_backend && r->context_root == NULL &&
	    r->sticky_cookie == NULL && r->nws == 0 && r->ssl_cert == NULL));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const clusters[] = { "", "blue" };
	struct service s;
	struct route_spec r;
	struct problem pb;
	enum labels_result rc;
	const char *cert, *key, *e;
	char *text;
	size_t i, c;

	text = fuzz_cstr(data, size);
	make_service(&s, text);
	free(text);
	for (c = 0; c < sizeof(clusters) / sizeof(clusters[0]); c++) {
		rc = labels_parse(&s, PREFIX, clusters[c], &r, &pb);
		if (rc == LABELS_ROUTED) {
			check_route(&r);
			route_spec_free(&r);
		} else if (rc == LABELS_ERROR) {
			FUZZ_ASSERT(pb.service != NULL && pb.message != NULL);
			problem_free(&pb);
		}
		if (labels_secrets(&s, PREFIX, clusters[c], &cert, &key)) {
			check_word(cert);
			check_word(key);
		}
	}
	/* What reaches a log is escaped. */
	for (i = 0; i < s.nlabels; i++) {
		e = esc(s.labels[i].value);
		FUZZ_ASSERT(fuzz_printable(e));
	}
	service_free_fields(&s);
	return 0;
}
