/* SPDX-License-Identifier: ISC */
/*
 * What fuzz_pipeline and fuzz_routes check in what dovetail writes and
 * tells HAProxy, from a desired state (and a running one, for the plan).
 *
 * HAProxy reads every line of the file (at most MAX_LINE_ARGS words; it
 * grows its line buffer, so length is no limit since 2.x), every backend
 * a map or default_backend names is in the file, a server is a name and a
 * numeric address, every runtime command is one line without ';' (the
 * CLI's command separator) outside a payload, and a payload has no empty
 * line.  The same swarm renders the same bytes.
 */
#include "config.h"

#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"

const struct render_opts fuzz_render_opts = { ":80", ":443", {
    "/etc/haproxy/dovetail.hosts.map",
    "/etc/haproxy/dovetail.sni.map",
    "/etc/haproxy/dovetail.redirects.map",
    "/etc/haproxy/dovetail.acme.map" },
    "/etc/haproxy/dovetail.crt-list", "/etc/haproxy/dovetail.certs",
    "/etc/haproxy/dovetail.certs/default.pem",
    "abns@dovetail-tls-fuzz", "24h", 1 };

/* Words of one line as HAProxy's parse_line counts them. */
static size_t
line_words(const char *p, const char *end)
{
	size_t n = 0;
	int dq = 0, sq = 0, inword = 0;

	for (; p < end; p++) {
		if (!dq && !sq && (*p == ' ' || *p == '\t')) {
			inword = 0;
			continue;
		}
		if (!dq && !sq && *p == '#')
			break;
		if (!inword) {
			n++;
			inword = 1;
		}
		if (*p == '\\' && !sq && p + 1 < end)
			p++;
		else if (*p == '"' && !sq)
			dq = !dq;
		else if (*p == '\'' && !dq)
			sq = !sq;
	}
	return n;
}

static int
has_line(const char *text, const char *line)
{
	const char *p = text;
	size_t len = strlen(line);

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[len] == '\n')
			return 1;
		p += len;
	}
	return 0;
}

static int
has_backend(const char *cfg, const char *name)
{
	char *line = xasprintf("backend %s", name);
	int found = has_line(cfg, line);

	free(line);
	return found;
}

static void
check_config(const char *cfg, const struct desired *d)
{
	const char *line, *nl, *p;
	size_t i;

	for (line = cfg; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		FUZZ_ASSERT(nl != NULL);
		FUZZ_ASSERT(line_words(line, nl) <= HAPROXY_MAX_LINE_ARGS);
		for (p = line; p < nl; p++)
			FUZZ_ASSERT(*p == '\t' || (*p >= 0x20 && *p <= 0x7e));
		if (strncmp(line, "\tdefault_backend ", 17) == 0) {
			char *name = xstrndup(line + 17,
			    (size_t)(nl - line - 17));

			FUZZ_ASSERT(has_backend(cfg, name));
			free(name);
		}
	}
	for (i = 0; i < d->nbackends; i++)
		FUZZ_ASSERT(has_backend(cfg, d->backends[i].name));
}

/* Each map line "key value"; routes and SNI name backends of the file. */
static void
check_map(const char *cfg, const char *map, enum map_kind m)
{
	const char *line, *nl, *sp;
	char *value;

	for (line = map; *line != '\0'; line = nl + 1) {
		nl = strchr(line, '\n');
		FUZZ_ASSERT(nl != NULL);
		if (line[0] == '#')
			continue;
		sp = memchr(line, ' ', (size_t)(nl - line));
		FUZZ_ASSERT(sp != NULL && sp > line);
		FUZZ_ASSERT(memchr(sp + 1, ' ', (size_t)(nl - sp - 1)) == NULL);
		FUZZ_ASSERT(memchr(line, '\t', (size_t)(nl - line)) == NULL);
		FUZZ_ASSERT(nl - line < 16384);
		if (m == MAP_REDIRECTS)
			continue;
		value = xstrndup(sp + 1, (size_t)(nl - sp - 1));
		FUZZ_ASSERT(*value != '\0');
		FUZZ_ASSERT(has_backend(cfg, value));
		free(value);
	}
}

/* Printable lines, each ended by a newline unless it is the last. */
static void
check_lines(const char *text)
{
	for (; *text != '\0'; text++)
		FUZZ_ASSERT(*text == '\n' || (*text >= 0x20 && *text <= 0x7e));
}

/*
 * Commands that name what HAProxy reported (a server, a map key or a
 * crt-list entry to remove) carry HAProxy's own words; the others carry
 * only what dovetail validated, which must be plain printable words.
 */
static int
from_running(enum cmd_kind k)
{
	return k == CMD_DEL_SERVER || k == CMD_SET_STATE || k == CMD_MAP_DEL ||
	    k == CMD_CRT_LIST_DEL || k == CMD_CERT_DEL;
}

static void
check_plan(const struct plan *p)
{
	const char *t, *nl;
	size_t i;

	for (i = 0; i < p->ncmds; i++) {
		t = p->cmds[i].text;
		nl = strchr(t, '\n');
		FUZZ_ASSERT(strchr(t, '\r') == NULL);
		if (nl == NULL) {
			FUZZ_ASSERT(from_running(p->cmds[i].kind) ||
			    (fuzz_printable(t) && strchr(t, ';') == NULL));
			continue;
		}
		/* "command <<" then the payload, which has no empty line. */
		FUZZ_ASSERT(p->cmds[i].kind == CMD_CERT_SET ||
		    p->cmds[i].kind == CMD_CRT_LIST_ADD);
		FUZZ_ASSERT(memchr(t, ';', (size_t)(nl - t)) == NULL);
		FUZZ_ASSERT(nl - t > 3 && memcmp(nl - 3, " <<", 3) == 0);
		check_lines(t);
		FUZZ_ASSERT(nl[1] != '\n' && nl[1] != '\0');
		FUZZ_ASSERT(strstr(nl + 1, "\n\n") == NULL);
	}
}

/* Servers: a name and a numeric address, each one word. */
static void
check_servers(const struct desired *d)
{
	unsigned char addr[16];
	const struct dserver *s;
	size_t i, j;

	for (i = 0; i < d->nbackends; i++) {
		FUZZ_ASSERT(fuzz_printable(d->backends[i].name) &&
		    !fuzz_has_any(d->backends[i].name, " ;#\"'\\"));
		for (j = 0; j < d->backends[i].nservers; j++) {
			s = &d->backends[i].servers[j];
			FUZZ_ASSERT(*s->name != '\0' && fuzz_printable(s->name) &&
			    !fuzz_has_any(s->name, " ;#\"'\\/"));
			FUZZ_ASSERT(inet_pton(AF_INET, s->addr, addr) == 1 ||
			    inet_pton(AF_INET6, s->addr, addr) == 1);
			FUZZ_ASSERT(s->port > 0);
		}
	}
}

/*
 * Renders d (and again, built from the same swarm) and plans against r;
 * aborts on a broken invariant.
 */
void
fuzz_check_outputs(const struct desired *d, const struct desired *again,
    const struct running *r)
{
	const struct render_opts *ro = &fuzz_render_opts;
	struct buf cfg, cfg2, map, crt;
	struct plan p;
	int m;

	buf_init(&cfg);
	buf_init(&cfg2);
	buf_init(&map);
	buf_init(&crt);
	render_config(&cfg, d, ro);
	render_config(&cfg2, again, ro);
	/* The same swarm, the same bytes: reloads depend on it. */
	FUZZ_ASSERT(cfg.len == cfg2.len && memcmp(cfg.data, cfg2.data,
	    cfg.len) == 0);
	check_config(cfg.data, d);
	check_servers(d);
	for (m = 0; m < MAP_COUNT; m++) {
		buf_reset(&map);
		render_map(&map, d, m);
		check_map(cfg.data, map.data, m);
	}
	render_crt_list(&crt, d, ro->certs_dir);
	check_lines(crt.data);
	buf_reset(&cfg2);
	render_skeleton(&cfg2, cfg.data);
	FUZZ_ASSERT(cfg2.len <= cfg.len);

	memset(&p, 0, sizeof(p));
	plan_build(&p, d, NULL, r, ro);
	check_plan(&p);
	plan_free(&p);
	plan_build(&p, again, d, r, ro);
	check_plan(&p);
	plan_free(&p);

	buf_free(&cfg);
	buf_free(&cfg2);
	buf_free(&map);
	buf_free(&crt);
}
