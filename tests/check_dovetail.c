/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of the pure parts: configuration, labels (with a table of
 * hostile values), Docker JSON, HAProxy replies, rendering and the plan.
 */
#include "config.h"

#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"

/* ---- config ---- */

START_TEST(test_durations)
{
	unsigned ms;

	ck_assert_int_eq(config_parse_duration("3s", &ms), 0);
	ck_assert_uint_eq(ms, 3000);
	ck_assert_int_eq(config_parse_duration("250ms", &ms), 0);
	ck_assert_uint_eq(ms, 250);
	ck_assert_int_eq(config_parse_duration("2m", &ms), 0);
	ck_assert_uint_eq(ms, 120000);
	ck_assert_int_eq(config_parse_duration("7", &ms), 0);
	ck_assert_uint_eq(ms, 7000);
	ck_assert_int_eq(config_parse_duration("", &ms), -1);
	ck_assert_int_eq(config_parse_duration("s", &ms), -1);
	ck_assert_int_eq(config_parse_duration("3 s", &ms), -1);
	ck_assert_int_eq(config_parse_duration("-3s", &ms), -1);
	ck_assert_int_eq(config_parse_duration("99999999999s", &ms), -1);
}
END_TEST

START_TEST(test_binds)
{
	ck_assert_int_eq(config_check_bind(":80"), 0);
	ck_assert_int_eq(config_check_bind("127.0.0.1:8080"), 0);
	ck_assert_int_eq(config_check_bind("*:443"), 0);
	ck_assert_int_eq(config_check_bind(":::80"), 0);
	ck_assert_int_eq(config_check_bind("80"), -1);
	ck_assert_int_eq(config_check_bind(":0"), -1);
	ck_assert_int_eq(config_check_bind(":65536"), -1);
	ck_assert_int_eq(config_check_bind("1.2.3.4:80 ssl"), -1);
	ck_assert_int_eq(config_check_bind("host name:80"), -1);
	ck_assert_int_eq(config_check_bind(":80;x"), -1);
	ck_assert_int_eq(config_check_bind("abc:80"), -1);
	ck_assert_int_eq(config_check_bind("::1:8080"), 0);
	ck_assert_int_eq(config_check_bind("1.2.3:80"), -1);
}
END_TEST

static char *
write_temp(const char *text)
{
	char tmpl[] = "/tmp/dovetail-test-XXXXXX";
	int fd;
	ssize_t n;

	fd = mkstemp(tmpl);
	ck_assert_int_ne(fd, -1);
	n = write(fd, text, strlen(text));
	ck_assert_int_eq((int)n, (int)strlen(text));
	close(fd);
	return xstrdup(tmpl);
}

static void
expect_load_error(const char *text, const char *fragment)
{
	struct config *c = config_new();
	char *path = write_temp(text), *cause = NULL;

	ck_assert_int_eq(config_load(c, path, &cause), -1);
	ck_assert_msg(strstr(cause, fragment) != NULL,
	    "cause \"%s\" lacks \"%s\"", cause, fragment);
	unlink(path);
	free(path);
	free(cause);
	config_free(c);
}

START_TEST(test_config_file)
{
	struct config *c = config_new();
	char *path, *cause = NULL, *map;

	path = write_temp("; comment\n[docker]\nurl = tcp://10.0.0.1:2376\n"
	    "tls_ca = /ca.pem\ntls_cert = /c.pem\ntls_key = /k.pem\n"
	    "[haproxy]\nconfig = /tmp/x/gen.cfg\n[routing]\n"
	    "http_bind = 127.0.0.1:8080\nservice_cluster = east\n"
	    "[agent]\npoll_interval = 500ms\n");
	ck_assert_msg(config_load(c, path, &cause) == 0, "%s", cause);
	ck_assert_str_eq(c->docker_url, "tcp://10.0.0.1:2376");
	ck_assert_str_eq(c->http_bind, "127.0.0.1:8080");
	ck_assert_str_eq(c->service_cluster, "east");
	ck_assert_uint_eq(c->poll_interval_ms, 500);
	ck_assert_str_eq(c->runtime_socket, "/run/haproxy/admin.sock");
	map = config_state_path(c, "hosts.map");
	ck_assert_str_eq(map, "/tmp/x/gen.hosts.map");
	free(map);
	unlink(path);
	free(path);
	config_free(c);

	expect_load_error("[docker]\nurl = unix:///x\n\n[routing]\n"
	    "http_bind = 80\n", ":5: http_bind");
	expect_load_error("[docker]\nurl = unix:///x\nbogus = 1\n",
	    ":3: unknown key \"bogus\" in section [docker]");
	expect_load_error("[nope]\nx = 1\n", ":2: unknown section [nope]");
	expect_load_error("[agent]\npoll_interval = fast\n",
	    ":2: poll_interval \"fast\" is not a duration");
	expect_load_error("[docker]\nurl = ftp://x\n", ":2: \"ftp://x\"");
	expect_load_error("[haproxy]\nconfig = relative.cfg\n",
	    ":2: config must be an absolute path");
	expect_load_error("[routing]\nlabel_prefix = a b\n",
	    ":2: label_prefix");
	expect_load_error("[docker]\nthis line is not ini\n", ":2:");
	expect_load_error("[docker]\nurl = unix:///x\n; padding\n"
	    "tls_ca = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaa\n", ":4: line longer than 199 characters");
	expect_load_error("[docker]\ntls_ca = ca.pem\n",
	    ":2: tls_ca must be an absolute path");
	expect_load_error("[haproxy]\nconfig = /etc/x y.cfg\n",
	    ":2: config must be an absolute path without blanks");
	expect_load_error("[haproxy]\nruntime_socket = /run/a;b\n",
	    ":2: runtime_socket");

	c = config_new();
	ck_assert_int_eq(config_validate(c, &cause), 0);
	ck_assert_int_eq(config_set(c, "docker", "tls_cert", "/c.pem",
	    &cause), 0);
	ck_assert_int_eq(config_validate(c, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "go together"));
	free(cause);
	ck_assert_int_eq(config_set(c, "docker", "tls_key", "/k.pem",
	    &cause), 0);
	ck_assert_int_eq(config_validate(c, &cause), 0);
	/* ACME serves its certificates on the HTTPS port: one is needed. */
	ck_assert_int_eq(config_set(c, "acme", "enabled", "true", &cause), 0);
	ck_assert_int_eq(config_validate(c, &cause), 0);
	ck_assert_int_eq(config_set(c, "routing", "https_bind", "", &cause),
	    0);
	ck_assert_int_eq(config_validate(c, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "https_bind"));
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "enabled", "false", &cause),
	    0);
	ck_assert_int_eq(config_validate(c, &cause), 0);
	/* Bad [acme] values, each refused with its key. */
	ck_assert_int_eq(config_set(c, "acme", "directory",
	    "http://ca.example/dir", &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "https:// URL"));
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "contact", "ops@example.com",
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "mailto:"));
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "key_file", "", &cause), -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "renew_days", "0", &cause),
	    -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "timeout", "200ms", &cause),
	    -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "acme", "retry_interval", "1h",
	    &cause), 0);
	ck_assert_uint_eq(c->acme_retry_interval_ms, 3600000);
	config_free(c);
}
END_TEST

/* ---- labels ---- */

static struct service *
make_service(const char *name, const char *const *kv)
{
	struct service *s = xcalloc(1, sizeof(*s));
	size_t n = 0, i;

	while (kv[n * 2] != NULL)
		n++;
	s->id = xstrdup("svcid");
	s->name = xstrdup(name);
	s->labels = xcalloc(n, sizeof(*s->labels));
	for (i = 0; i < n; i++) {
		s->labels[i].key = xstrdup(kv[i * 2]);
		s->labels[i].value = xstrdup(kv[i * 2 + 1]);
	}
	s->nlabels = n;
	/* service_label() searches: keep them sorted like the parser. */
	for (i = 1; i < n; i++) {
		size_t j = i;

		while (j > 0 && strcmp(s->labels[j - 1].key,
		    s->labels[j].key) > 0) {
			struct kv t = s->labels[j];

			s->labels[j] = s->labels[j - 1];
			s->labels[j - 1] = t;
			j--;
		}
	}
	return s;
}

static void
drop_service(struct service *s)
{
	service_free_fields(s);
	free(s);
}

START_TEST(test_labels_good)
{
	const char *kv[] = { "com.docker.lb.hosts", " Demo.Local , b.example,"
	    "demo.local", "com.docker.lb.port", "8080", "other", "x", NULL };
	struct service *s = make_service("demo", kv);
	struct route_spec r;
	struct problem p;

	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_uint_eq(r.nhosts, 2);
	ck_assert_str_eq(r.hosts[0], "b.example");
	ck_assert_str_eq(r.hosts[1], "demo.local");
	ck_assert_uint_eq(r.port, 8080);
	ck_assert_ptr_null(r.network);
	route_spec_free(&r);
	/* Another prefix: not ours. */
	ck_assert_int_eq(labels_parse(s, "lb", "", &r, &p), LABELS_IGNORED);
	/* Another cluster: not ours. */
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "east", &r, &p),
	    LABELS_IGNORED);
	drop_service(s);
}
END_TEST

START_TEST(test_labels_cluster)
{
	const char *kv[] = { "com.docker.lb.hosts", "a.example",
	    "com.docker.lb.port", "80", "com.docker.lb.service_cluster",
	    "east", NULL };
	struct service *s = make_service("demo", kv);
	struct route_spec r;
	struct problem p;

	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "east", &r, &p),
	    LABELS_ROUTED);
	route_spec_free(&r);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_IGNORED);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "west", &r, &p),
	    LABELS_IGNORED);
	drop_service(s);
}
END_TEST

struct hostile {
	const char *label;	/* short name */
	const char *value;
};

static const struct hostile hostile_values[] = {
	{ "hosts", "demo local" },
	{ "hosts", "demo.local;evil" },
	{ "hosts", "demo.local\nbackend x" },
	{ "hosts", "#demo" },
	{ "hosts", "\"demo\"" },
	{ "hosts", "demo.local%[src]" },
	{ "hosts", "*.demo.local" },
	{ "hosts", "-demo.local" },
	{ "hosts", "demo..local" },
	{ "hosts", "demo.local." },
	{ "hosts", "" },
	{ "hosts", " , " },
	{ "hosts", "caf\xc3\xa9.example" },
	{ "port", "abc" },
	{ "port", "0" },
	{ "port", "65536" },
	{ "port", "80 " },
	{ "port", "-1" },
	{ "port", "1e3" },
	{ "port", "" },
	{ "port", "8080;del server" },
	{ "port", "000000080" },
	{ "network", "net work" },
	{ "network", "net;x" },
	{ "network", "net\n" },
	{ "network", "" },
	{ "network", NULL },
	/* NULL: a 300-character value. */
	{ "context_root", "app" },
	{ "context_root", "/a b" },
	{ "context_root", "/a;b" },
	{ "context_root", "/a\n" },
	{ "context_root", "/a#b" },
	{ "context_root", "/\"a\"" },
	{ "context_root", "/../etc" },
	{ "context_root", "/a/./b" },
	{ "context_root", "/a//b" },
	{ "context_root", "/a%20b" },
	{ "context_root", "/a?b" },
	{ "context_root", "" },
	{ "context_root", NULL },
	{ "context_root_rewrite", "yes" },
	{ "context_root_rewrite", "True" },
	{ "context_root_rewrite", "on" },
	{ "context_root_rewrite", "" },
	{ "context_root_rewrite", " true" },
	{ "context_root_rewrite", "2" },
	{ "ssl_cert", "../x" },
	{ "ssl_cert", "a/b" },
	{ "ssl_cert", ".hidden" },
	{ "ssl_cert", "a b" },
	{ "ssl_cert", "x;y" },
	{ "ssl_cert", "x\n" },
	{ "ssl_cert", "#x" },
	{ "ssl_cert", "" },
	{ "ssl_cert", NULL },
	{ "ssl_key", "../../etc/shadow" },
	{ "ssl_key", "\"k\"" },
	{ "ssl_passthrough", "yes" },
	{ "ssl_passthrough", "TRUE" },
	{ "ssl_passthrough", "enabled" },
	{ "ssl_redirect", "yes" },
	{ "ssl_redirect", "1 " },
	{ "redirects", "http://" },
	{ "redirects", "a.example" },
	{ "redirects", "a.example,ftp://b.example" },
	{ "redirects", "a.example,https://b example" },
	{ "redirects", "a.example,https://b.example:99999" },
	{ "redirects", "a.example,https://b.example/x?y" },
	{ "redirects", "a.example,https://b.example#x" },
	{ "redirects", "a.example,https://b.example\nbackend x" },
	{ "redirects", "a b,https://c.example" },
	{ "redirects", ",https://b.example" },
	{ "redirects", "a.example:80,https://b.example" },
	{ "redirects", "a.example,https://b.example;a.example,https://c.example" },
	{ "redirects", ";" },
	{ "redirects", NULL },
	{ "sticky_session_cookie", "a b" },
	{ "sticky_session_cookie", "a;b" },
	{ "sticky_session_cookie", "a=b" },
	{ "sticky_session_cookie", "\"x\"" },
	{ "sticky_session_cookie", "x)" },
	{ "sticky_session_cookie", "" },
	{ "sticky_session_cookie", NULL },
	{ "ip_hash", "yes" },
	{ "ip_hash", "no" },
	{ "websocket_endpoints", "ws" },
	{ "websocket_endpoints", "/ws x" },
	{ "websocket_endpoints", "/ws;/x" },
	{ "websocket_endpoints", "/ws\n" },
	{ "websocket_endpoints", "/ws,#" },
	{ "websocket_endpoints", "/a1,/a2,/a3,/a4,/a5,/a6,/a7,/a8,/a9,/a10,"
	    "/a11,/a12,/a13,/a14,/a15,/a16,/a17" },
	{ "websocket_endpoints", NULL },
	{ "default_backend", "yes" },
	{ "default_backend", "false " },
	{ "backend_mode", "VIP" },
	{ "backend_mode", "dnsrr" },
	{ "backend_mode", "vip;" },
	{ "backend_mode", "" },
	{ "weight", "101" },
	{ "weight", "-1" },
	{ "weight", "5%" },
	{ "weight", "0.5" },
	{ "weight", "abc" },
	{ "weight", "" },
	{ "weight", "00" },
};

START_TEST(test_labels_hostile)
{
	const struct hostile *h = &hostile_values[_i];
	char key[64];
	const char *kv[] = { "com.docker.lb.hosts", "ok.example",
	    "com.docker.lb.port", "8080", NULL, NULL, NULL };
	struct service *s;
	struct route_spec r;
	struct problem p;
	char *want;

	char value[301];

	/* A long value, where the label wants a path or a name. */
	memset(value, 'a', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	if (strstr(h->label, "context_root") != NULL ||
	    strcmp(h->label, "websocket_endpoints") == 0)
		value[0] = '/';
	if (strcmp(h->label, "redirects") == 0)
		memcpy(value, "x.example,https://", 18);
	if (h->value != NULL)
		snprintf(value, sizeof(value), "%s", h->value);
	snprintf(key, sizeof(key), "com.docker.lb.%s", h->label);
	if (strcmp(h->label, "hosts") == 0)
		kv[1] = value;
	else if (strcmp(h->label, "port") == 0)
		kv[3] = value;
	else {
		kv[4] = key;
		kv[5] = value;
	}
	s = make_service("victim", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ERROR);
	ck_assert_str_eq(p.service, "victim");
	ck_assert_str_eq(p.label, key);
	ck_assert_ptr_nonnull(p.message);
	/* The message never carries a raw newline into the log. */
	ck_assert_ptr_null(strchr(p.message, '\n'));
	ck_assert_uint_lt(strlen(p.message), 400);
	want = xasprintf("%s", p.message);
	free(want);
	problem_free(&p);
	drop_service(s);
}
END_TEST

/*
 * The endpoints are one line of the backend: within HAProxy's 64 words
 * at the most the label takes, refused beyond (found by fuzz_pipeline:
 * 28 paths made a line of 66 words, and HAProxy refused the file).
 */
START_TEST(test_labels_ws_limits)
{
	const char *kv[] = { "com.docker.lb.hosts", "ok.example",
	    "com.docker.lb.port", "8080", "com.docker.lb.websocket_endpoints",
	    NULL, NULL };
	struct render_opts ro = { ":80", ":443", { "/m/h.map", "/m/s.map",
	    "/m/r.map" }, "/m/crt-list", "/m/certs", "/m/certs/d.pem",
	    "abns@t", "24h", 0 };
	struct dbackend be;
	struct desired d;
	struct route_spec r;
	struct problem p;
	struct service *s;
	struct buf v, out;
	const char *line, *end;
	size_t i, words;

	buf_init(&v);
	for (i = 0; i < LABEL_MAX_WS_PATHS; i++)
		buf_addf(&v, "%s/p%zu-%.44s", i == 0 ? "" : ",", i,
		    "0123456789012345678901234567890123456789012345678901234567890123456789");
	kv[5] = v.data;
	s = make_service("ws", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_uint_eq(r.nws, LABEL_MAX_WS_PATHS);
	/* The longest line the label allows passes HAProxy's limits. */
	memset(&be, 0, sizeof(be));
	be.name = (char *)"svc-ws";
	be.ws_paths = r.ws_paths;
	be.nws = r.nws;
	memset(&d, 0, sizeof(d));
	d.backends = &be;
	d.nbackends = 1;
	buf_init(&out);
	render_config(&out, &d, &ro);
	line = strstr(out.data, "set-timeout tunnel");
	ck_assert_ptr_nonnull(line);
	end = strchr(line, '\n');
	for (words = 1, i = 0; line + i < end; i++)
		words += line[i] == ' ';
	ck_assert_uint_le(words + 1, 64);
	buf_free(&out);
	route_spec_free(&r);
	drop_service(s);

	/* One path more is refused, naming the label. */
	buf_addf(&v, ",/one-more");
	kv[5] = v.data;
	s = make_service("ws", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ERROR);
	ck_assert_str_eq(p.label, "com.docker.lb.websocket_endpoints");
	ck_assert_str_eq(p.message, "17 paths are more than 16");
	problem_free(&p);
	drop_service(s);

	buf_free(&v);
}
END_TEST

/* The services whose events dovetail follows: those it reads at all. */
START_TEST(test_labels_followed)
{
	const char *hosts[] = { "com.docker.lb.hosts", "a.example", NULL };
	const char *dflt[] = { "com.docker.lb.default_backend", "true",
	    NULL };
	const char *port[] = { "com.docker.lb.port", "80",
	    "com.docker.stack.namespace", "web", NULL };
	struct service *s;

	s = make_service("a", hosts);
	ck_assert(labels_followed(s, "com.docker.lb"));
	ck_assert(!labels_followed(s, "other.lb"));
	drop_service(s);
	s = make_service("b", dflt);
	ck_assert(labels_followed(s, "com.docker.lb"));
	drop_service(s);
	s = make_service("c", port);
	ck_assert(!labels_followed(s, "com.docker.lb"));
	drop_service(s);
}
END_TEST

/*
 * Found by profiling fuzz_routes: each host was compared with every one
 * before it, so a hosts label of 40,000 names took seconds of every
 * reconcile; now sorted, then duplicates dropped.
 */
START_TEST(test_labels_many_hosts)
{
	const char *kv[] = { "com.docker.lb.hosts", NULL,
	    "com.docker.lb.port", "80", NULL };
	struct service *s;
	struct route_spec r;
	struct problem p;
	struct buf hosts;
	size_t i;
	int n;

	buf_init(&hosts);
	for (n = 0; n < 40000; n++)
		buf_addf(&hosts, "%sh%d.example", n > 0 ? "," : "",
		    (n * 7919) % 20000);
	kv[1] = hosts.data;
	s = make_service("many", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_uint_eq(r.nhosts, 20000);
	for (i = 1; i < r.nhosts; i++)
		ck_assert_int_lt(strcmp(r.hosts[i - 1], r.hosts[i]), 0);
	route_spec_free(&r);
	drop_service(s);
	buf_free(&hosts);
}
END_TEST

START_TEST(test_labels_every_label)
{
	const char *kv[] = {
		"com.docker.lb.hosts", "shop.example",
		"com.docker.lb.port", "80",
		"com.docker.lb.context_root", "/cart/",
		"com.docker.lb.context_root_rewrite", "1",
		"com.docker.lb.ssl_cert", "shop.crt",
		"com.docker.lb.ssl_key", "shop.key",
		"com.docker.lb.ssl_redirect", "true",
		"com.docker.lb.redirects", "Old.Example,https://shop.example ;"
		    "https://older.example,http://shop.example:8080/",
		"com.docker.lb.sticky_session_cookie", "SID",
		"com.docker.lb.websocket_endpoints", "/ws/,/live",
		"com.docker.lb.default_backend", "0",
		"com.docker.lb.backend_mode", "vip",
		"com.docker.lb.weight", "5",
		NULL };
	struct service *s = make_service("shop", kv);
	struct route_spec r;
	struct problem p;

	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_str_eq(r.context_root, "/cart");
	ck_assert_int_eq(r.rewrite, 1);
	ck_assert_str_eq(r.ssl_cert, "shop.crt");
	ck_assert_str_eq(r.ssl_key, "shop.key");
	ck_assert_int_eq(r.ssl_redirect, 1);
	ck_assert_int_eq(r.passthrough, 0);
	/* No scheme: both; sorted by key. */
	ck_assert_uint_eq(r.nredirects, 3);
	ck_assert_str_eq(r.redirects[0].key, "http://old.example");
	ck_assert_str_eq(r.redirects[0].target, "https://shop.example");
	ck_assert_str_eq(r.redirects[1].key, "https://old.example");
	ck_assert_str_eq(r.redirects[2].key, "https://older.example");
	ck_assert_str_eq(r.redirects[2].target, "http://shop.example:8080");
	ck_assert_str_eq(r.sticky_cookie, "SID");
	ck_assert_uint_eq(r.nws, 2);
	ck_assert_str_eq(r.ws_paths[0], "/live");
	ck_assert_str_eq(r.ws_paths[1], "/ws");
	ck_assert_int_eq(r.default_backend, 0);
	ck_assert_int_eq(r.vip, 1);
	ck_assert_int_eq(r.weight, 5);
	route_spec_free(&r);
	drop_service(s);
}
END_TEST

START_TEST(test_labels_redirect_to_itself)
{
	const char *kv[] = { "com.docker.lb.hosts", "a.example",
	    "com.docker.lb.port", "80", "com.docker.lb.redirects", NULL,
	    NULL };
	struct service *s;
	struct route_spec r;
	struct problem p;

	/* No scheme, same host: only the other scheme is redirected. */
	kv[5] = "a.example,https://a.example";
	s = make_service("up", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_uint_eq(r.nredirects, 1);
	ck_assert_str_eq(r.redirects[0].key, "http://a.example");
	route_spec_free(&r);
	drop_service(s);
	/* The same scheme and host, whatever the port: a loop. */
	kv[5] = "https://a.example,https://a.example:8443";
	s = make_service("loop", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ERROR);
	ck_assert_ptr_nonnull(strstr(p.message, "itself"));
	problem_free(&p);
	drop_service(s);
}
END_TEST

START_TEST(test_labels_combinations)
{
	static const char *const cases[][5] = {
		/* label, value, second label, its value, label blamed */
		{ "ssl_passthrough", "true", "websocket_endpoints", "/ws",
		    "websocket_endpoints" },
		{ "ssl_passthrough", "1", "context_root", "/a",
		    "context_root" },
		{ "ssl_passthrough", "true", "sticky_session_cookie", "c",
		    "sticky_session_cookie" },
		{ "ip_hash", "true", "sticky_session_cookie", "c",
		    "sticky_session_cookie" },
		{ "ssl_passthrough", "true", "default_backend", "true",
		    "default_backend" },
		{ "context_root_rewrite", "true", "weight", "1",
		    "context_root_rewrite" },
		{ "context_root_rewrite", "true", "context_root", "/",
		    "context_root_rewrite" },
		{ "ssl_cert", "a.crt", "weight", "1", "ssl_key" },
		{ "ssl_key", "a.key", "weight", "1", "ssl_cert" },
	};
	const char *kv[] = { "com.docker.lb.hosts", "a.example",
	    "com.docker.lb.port", "80", NULL, NULL, NULL, NULL, NULL };
	char k1[64], k2[64], want[64];
	struct service *s;
	struct route_spec r;
	struct problem p;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(k1, sizeof(k1), "com.docker.lb.%s", cases[i][0]);
		snprintf(k2, sizeof(k2), "com.docker.lb.%s", cases[i][2]);
		snprintf(want, sizeof(want), "com.docker.lb.%s", cases[i][4]);
		kv[4] = k1;
		kv[5] = cases[i][1];
		kv[6] = k2;
		kv[7] = cases[i][3];
		s = make_service("combo", kv);
		ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
		    LABELS_ERROR);
		ck_assert_msg(strcmp(p.label, want) == 0, "case %zu: %s, "
		    "not %s", i, p.label, want);
		problem_free(&p);
		drop_service(s);
	}
}
END_TEST

/* default_backend alone routes; hosts-less otherwise is not for us. */
START_TEST(test_labels_default_only)
{
	const char *kv[] = { "com.docker.lb.default_backend", "true",
	    "com.docker.lb.port", "80", NULL };
	const char *kv2[] = { "com.docker.lb.port", "80", NULL };
	struct service *s = make_service("catchall", kv);
	struct route_spec r;
	struct problem p;

	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ROUTED);
	ck_assert_uint_eq(r.nhosts, 0);
	ck_assert_int_eq(r.default_backend, 1);
	route_spec_free(&r);
	drop_service(s);
	s = make_service("portonly", kv2);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_IGNORED);
	drop_service(s);
}
END_TEST

START_TEST(test_tls_combine)
{
	const char *cert = "-----BEGIN CERTIFICATE-----\r\nMIIB\r\n\r\n"
	    "-----END CERTIFICATE-----\r\n";
	const char *key = "\n-----BEGIN PRIVATE KEY-----\nMIIE\n"
	    "-----END PRIVATE KEY-----";
	char *pem, *cause = NULL;

	pem = tls_combine(cert, strlen(cert), key, strlen(key), &cause);
	ck_assert_ptr_nonnull(pem);
	/* No CR, no blank line (it would end a runtime payload). */
	ck_assert_str_eq(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n"
	    "-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\n"
	    "MIIE\n-----END PRIVATE KEY-----\n");
	free(pem);
	/* Swapped files, a key in the certificate, binary, empty. */
	ck_assert_ptr_null(tls_combine(key, strlen(key), cert, strlen(cert),
	    &cause));
	ck_assert_ptr_nonnull(strstr(cause, "certificate"));
	free(cause);
	ck_assert_ptr_null(tls_combine(cert, strlen(cert), cert,
	    strlen(cert), &cause));
	ck_assert_ptr_nonnull(strstr(cause, "private key"));
	free(cause);
	ck_assert_ptr_null(tls_combine("-----BEGIN CERTIFICATE-----\n\x01\n",
	    30, key, strlen(key), &cause));
	free(cause);
	ck_assert_ptr_null(tls_combine("", 0, key, strlen(key), &cause));
	free(cause);
}
END_TEST

/* The combined PEM of a certificate and key file in tests/data (new). */
static char *
combined(const char *cert_file, const char *key_file)
{
	struct buf c, k;
	char *path, *pem, *cause = NULL;

	buf_init(&c);
	buf_init(&k);
	path = xasprintf("%s/%s", test_data_dir(), cert_file);
	ck_assert_msg(file_read(path, &c, &cause) == 0, "%s", cause);
	free(path);
	path = xasprintf("%s/%s", test_data_dir(), key_file);
	ck_assert_msg(file_read(path, &k, &cause) == 0, "%s", cause);
	free(path);
	pem = tls_combine(c.data, c.len, k.data, k.len, &cause);
	ck_assert_msg(pem != NULL, "%s", cause);
	buf_free(&c);
	buf_free(&k);
	return pem;
}

/* What the certificate dovetail serves says: subject, names, expiry. */
START_TEST(test_tls_cert_info)
{
	struct cert_info ci, copy;
	char *pem, *cause = NULL;

	/* The golden cases' certificate: a CN and no names. */
	pem = combined("golden/tls-plan/secrets/secure.crt",
	    "golden/tls-plan/secrets/secure.key");
	ck_assert_int_eq(tls_cert_info(pem, &ci, &cause), 0);
	ck_assert_int_eq(ci.parsed, 1);
	ck_assert_str_eq(ci.subject, "secure.example");
	ck_assert_uint_eq(ci.nnames, 0);
	/* notAfter=Nov 19 06:00:35 2036 GMT */
	ck_assert_int_eq(ci.not_after, 2110687235LL);
	cert_info_free(&ci);
	free(pem);
	/* A chain: the first certificate's, DNS names only, in order. */
	pem = combined("certs/chain.crt", "certs/chain.key");
	ck_assert_int_eq(tls_cert_info(pem, &ci, &cause), 0);
	ck_assert_str_eq(ci.subject, "<b>&\"'.example");
	ck_assert_uint_eq(ci.nnames, 2);
	ck_assert_str_eq(ci.names[0], "a.example");
	ck_assert_str_eq(ci.names[1], "*.b.example");
	/* notAfter=Aug 27 20:50:19 2029 GMT, not the CA's (2036). */
	ck_assert_int_eq(ci.not_after, 1882558219LL);
	cert_info_copy(&copy, &ci);
	cert_info_free(&ci);
	ck_assert_str_eq(copy.names[1], "*.b.example");
	ck_assert_str_eq(copy.subject, "<b>&\"'.example");
	cert_info_free(&copy);
	cert_info_free(NULL);
	free(pem);
	/* No common name. */
	pem = combined("certs/nocn.crt", "certs/nocn.key");
	ck_assert_int_eq(tls_cert_info(pem, &ci, &cause), 0);
	ck_assert_ptr_null(ci.subject);
	ck_assert_uint_eq(ci.nnames, 1);
	ck_assert_str_eq(ci.names[0], "only.example");
	cert_info_free(&ci);
	free(pem);
	/* Not a certificate libcrypto reads: all zero, and why. */
	ck_assert_int_eq(tls_cert_info("-----BEGIN CERTIFICATE-----\nMIIB\n"
	    "-----END CERTIFICATE-----\n", &ci, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "no certificate"));
	ck_assert_int_eq(ci.parsed, 0);
	ck_assert_ptr_null(ci.subject);
	free(cause);
	ck_assert_int_eq(tls_cert_info("", &ci, &cause), -1);
	free(cause);
}
END_TEST

/* Days to expiry round down; the warning window and expiry are exact. */
START_TEST(test_tls_expiry)
{
	struct cert_info ci;
	const long long now = 1700000000, day = 86400;

	ck_assert_int_eq(tls_days_left(now + 10 * day, now), 10);
	ck_assert_int_eq(tls_days_left(now + 10 * day - 1, now), 9);
	ck_assert_int_eq(tls_days_left(now, now), 0);
	ck_assert_int_eq(tls_days_left(now - 1, now), -1);
	ck_assert_int_eq(tls_days_left(now - day, now), -1);
	ck_assert_int_eq(tls_days_left(now - day - 1, now), -2);
	memset(&ci, 0, sizeof(ci));
	/* Unknown is never warned of. */
	ck_assert_int_eq(tls_expiry(&ci, now, 14), CERT_VALID);
	ci.parsed = 1;
	ci.not_after = now + 14 * day;
	ck_assert_int_eq(tls_expiry(&ci, now, 14), CERT_VALID);
	ci.not_after = now + 14 * day - 1;
	ck_assert_int_eq(tls_expiry(&ci, now, 14), CERT_EXPIRING);
	ck_assert_int_eq(tls_expiry(&ci, now, 0), CERT_VALID);
	ci.not_after = now;
	ck_assert_int_eq(tls_expiry(&ci, now, 0), CERT_EXPIRED);
	ck_assert_int_eq(tls_expiry(&ci, now, 14), CERT_EXPIRED);
	ck_assert_str_eq(tls_expiry_name(CERT_EXPIRING), "expiring");
}
END_TEST

/* Text around the blocks goes; what is left must fit one payload. */
START_TEST(test_tls_size)
{
	const char *key = "-----BEGIN PRIVATE KEY-----\nMIIE\n"
	    "-----END PRIVATE KEY-----\n";
	struct buf cert;
	char *pem, *cause = NULL;
	int i;

	buf_init(&cert);
	buf_adds(&cert, "Certificate:\n    Data: caf\xc3\xa9\n");
	buf_adds(&cert, "-----BEGIN CERTIFICATE-----\nMIIB\n"
	    "-----END CERTIFICATE-----\nsubject=CN = x\n");
	pem = tls_combine(cert.data, cert.len, key, strlen(key), &cause);
	ck_assert_ptr_nonnull(pem);
	ck_assert_str_eq(pem, "-----BEGIN CERTIFICATE-----\nMIIB\n"
	    "-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIE\n"
	    "-----END PRIVATE KEY-----\n");
	free(pem);
	/* A chain too long for HAProxy's runtime API. */
	buf_adds(&cert, "-----BEGIN CERTIFICATE-----\n");
	for (i = 0; i < 300; i++)
		buf_adds(&cert, "MIIBAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		    "\n");
	buf_adds(&cert, "-----END CERTIFICATE-----\n");
	ck_assert_ptr_null(tls_combine(cert.data, cert.len, key,
	    strlen(key), &cause));
	ck_assert_ptr_nonnull(strstr(cause, "runtime API"));
	free(cause);
	buf_free(&cert);
}
END_TEST

/* max_hosts and max_label_bytes leave out their service, and only it. */
START_TEST(test_label_limits)
{
	struct desired_opts o;
	struct swarm *sw = swarm_new();
	struct desired *d;
	char big[300], *json, *cause = NULL;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json = xasprintf("["
	    "{\"ID\":\"s1\",\"Spec\":{\"Name\":\"many\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"a1.ex,a2.ex,a3.ex,a4.ex\","
	    "\"com.docker.lb.port\":\"80\"}}},"
	    "{\"ID\":\"s2\",\"Spec\":{\"Name\":\"big\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"b.ex\",\"com.docker.lb.port\":\"80\","
	    "\"com.docker.lb.sticky_session_cookie\":\"%s\","
	    "\"other.label\":\"%s\"}}},"
	    "{\"ID\":\"s3\",\"Spec\":{\"Name\":\"fine\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"c1.ex,c2.ex,c3.ex\","
	    "\"com.docker.lb.port\":\"80\"}}}]", big, big);
	ck_assert_msg(swarm_parse_services(sw, json, strlen(json), &cause) ==
	    0, "%s", cause);
	memset(&o, 0, sizeof(o));
	o.prefix = "com.docker.lb";
	o.cluster = "";
	o.max_hosts = 3;
	o.max_label_bytes = 256;
	d = desired_build(sw, &o);
	ck_assert_uint_eq(d->nproblems, 2);
	ck_assert_str_eq(d->problems[0].service, "big");
	ck_assert_str_eq(d->problems[0].label,
	    "com.docker.lb.sticky_session_cookie");
	ck_assert_str_eq(d->problems[0].message, "the value is longer than "
	    "256 bytes ([routing] max_label_bytes)");
	ck_assert_str_eq(d->problems[1].service, "many");
	ck_assert_str_eq(d->problems[1].label, "com.docker.lb.hosts");
	ck_assert_str_eq(d->problems[1].message, "4 host names are more than "
	    "3 ([routing] max_hosts)");
	ck_assert_uint_eq(d->nservices, 1);
	ck_assert_uint_eq(d->nmap[MAP_ROUTES], 3);
	desired_free(d);
	/* The defaults take both. */
	o.max_hosts = 0;
	o.max_label_bytes = 0;
	d = desired_build(sw, &o);
	/* (The 299-byte cookie name is wrong for another reason.) */
	ck_assert_uint_eq(d->nproblems, 1);
	ck_assert_str_eq(d->problems[0].service, "big");
	ck_assert_ptr_null(strstr(d->problems[0].message, "max_label_bytes"));
	ck_assert_uint_eq(d->nservices, 2);
	desired_free(d);
	swarm_free(sw);
	free(json);
}
END_TEST

START_TEST(test_label_paths_and_bools)
{
	char *out;
	int v;

	ck_assert_int_eq(label_parse_path("/", &out), 0);
	ck_assert_str_eq(out, "/");
	free(out);
	ck_assert_int_eq(label_parse_path("/a.b/c_d~e-f///", &out), 0);
	ck_assert_str_eq(out, "/a.b/c_d~e-f");
	free(out);
	ck_assert_int_eq(label_parse_path("/a/../b", &out), -1);
	ck_assert_int_eq(label_parse_path("/..", &out), -1);
	ck_assert_int_eq(label_parse_path("/a/.", &out), -1);
	ck_assert_int_eq(label_parse_path("a", &out), -1);
	ck_assert_int_eq(label_parse_bool("true", &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_eq(label_parse_bool("0", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(label_parse_bool("false", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(label_parse_bool("FALSE", &v), -1);
	ck_assert_int_eq(label_parse_bool("yes", &v), -1);
}
END_TEST

START_TEST(test_labels_long_host)
{
	char host[400];
	const char *kv[] = { "com.docker.lb.hosts", host,
	    "com.docker.lb.port", "80", NULL };
	struct service *s;
	struct route_spec r;
	struct problem p;

	memset(host, 'a', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	s = make_service("long", kv);
	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ERROR);
	/* The log line is bounded: the value is cut, not copied whole. */
	ck_assert_uint_lt(strlen(p.message), 300);
	problem_free(&p);
	drop_service(s);
}
END_TEST

START_TEST(test_labels_missing_port)
{
	const char *kv[] = { "com.docker.lb.hosts", "a.example", NULL };
	struct service *s = make_service("noport", kv);
	struct route_spec r;
	struct problem p;

	ck_assert_int_eq(labels_parse(s, "com.docker.lb", "", &r, &p),
	    LABELS_ERROR);
	ck_assert_str_eq(p.label, "com.docker.lb.port");
	ck_assert_ptr_nonnull(strstr(p.message, "missing"));
	problem_free(&p);
	drop_service(s);
}
END_TEST

/* ---- Docker JSON ---- */

/* A service with hosts and default_backend comes in both queries. */
START_TEST(test_swarm_merge_services)
{
	const char *first = "[{\"ID\":\"c\",\"Spec\":{\"Name\":\"cboth\"}}]";
	const char *second = "[{\"ID\":\"a\",\"Spec\":{\"Name\":\"adef\"}},"
	    "{\"ID\":\"c\",\"Spec\":{\"Name\":\"cboth\"}},"
	    "{\"ID\":\"b\",\"Spec\":{\"Name\":\"bdef\"}}]";
	struct swarm *sw = swarm_new(), *more = swarm_new();
	char *cause = NULL;

	ck_assert_int_eq(swarm_parse_services(sw, first, strlen(first),
	    &cause), 0);
	ck_assert_int_eq(swarm_parse_services(more, second, strlen(second),
	    &cause), 0);
	swarm_merge_services(sw, more);
	ck_assert_uint_eq(sw->nservices, 3);
	ck_assert_str_eq(sw->services[0].id, "a");
	ck_assert_str_eq(sw->services[1].id, "b");
	ck_assert_str_eq(sw->services[2].id, "c");
	ck_assert_uint_eq(more->nservices, 0);
	swarm_free(more);
	swarm_free(sw);
}
END_TEST

START_TEST(test_swarm_small_documents)
{
	struct docker_event ev;
	struct swarm *sw;
	char *api, *min, *detail, *cause, *msg;
	int manager;
	const char *e = "{\"Type\":\"service\",\"Action\":\"update\","
	    "\"Actor\":{\"ID\":\"abc123\",\"Attributes\":{\"name\":\"demo\"}},"
	    "\"scope\":\"swarm\"}";
	const char *info = "{\"Swarm\":{\"LocalNodeState\":\"active\","
	    "\"ControlAvailable\":false}}";
	const char *ver = "{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":"
	    "\"1.12\"}";

	ck_assert_int_eq(swarm_parse_event(e, strlen(e), &ev), 0);
	ck_assert_int_eq(ev.kind, EVENT_SERVICE);
	ck_assert_str_eq(ev.action, "update");
	ck_assert_str_eq(ev.actor, "abc123");
	ck_assert_str_eq(ev.name, "demo");
	ck_assert_int_eq(swarm_parse_event("not json", 8, &ev), -1);
	{
		const char *ce = "{\"Type\":\"container\",\"Action\":\"kill\","
		    "\"Actor\":{\"ID\":\"c0ffee\",\"Attributes\":{\"signal\":"
		    "\"15\",\"com.docker.swarm.task.id\":\"task1\","
		    "\"com.docker.swarm.service.id\":\"svc1\"}}}";

		ck_assert_int_eq(swarm_parse_event(ce, strlen(ce), &ev), 0);
		ck_assert_int_eq(ev.kind, EVENT_CONTAINER);
		ck_assert_str_eq(ev.task_id, "task1");
		ck_assert_str_eq(ev.service_id, "svc1");
		ck_assert_int_eq(ev.signal, 15);
	}

	ck_assert_int_eq(swarm_parse_info(info, strlen(info), &manager,
	    &detail, &cause), 0);
	ck_assert_int_eq(manager, 0);
	ck_assert_str_eq(detail, "active");
	free(detail);

	ck_assert_int_eq(swarm_parse_version(ver, strlen(ver), &api, &min,
	    &cause), 0);
	ck_assert_str_eq(api, "1.41");
	ck_assert_str_eq(min, "1.12");
	free(api);
	free(min);

	ck_assert_int_eq(swarm_parse_error("{\"message\":\"This node is not "
	    "a swarm manager.\"}", 47, &msg), 0);
	ck_assert_str_eq(msg, "This node is not a swarm manager.");
	free(msg);

	sw = swarm_new();
	ck_assert_int_eq(swarm_parse_services(sw, "{}", 2, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "array"));
	free(cause);
	swarm_free(sw);
}
END_TEST

START_TEST(test_swarm_node_address)
{
	struct swarm *sw = swarm_new();
	const char *nodes = "[{\"ID\":\"n1\",\"Status\":{\"Addr\":\"0.0.0.0\"},"
	    "\"ManagerStatus\":{\"Addr\":\"192.0.2.7:2377\"}},"
	    "{\"ID\":\"n2\",\"Status\":{\"Addr\":\"192.0.2.8\"}},"
	    "{\"ID\":\"n3\",\"Status\":{}},"
	    "{\"ID\":\"n5\",\"Status\":{\"Addr\":\"0.0.0.0\"},"
	    "\"ManagerStatus\":{\"Addr\":\"[2001:db8::5]:2377\"}},"
	    "{\"ID\":\"n6\",\"Status\":{\"Addr\":\"192.0.2.8 check\"}},"
	    "{\"ID\":\"n7\",\"Status\":{\"Addr\":\"a.example\"}}]";
	/* A node's address reaches HAProxy: anything else is none. */
	const char *tasks = "[{\"ID\":\"t1\",\"ServiceID\":\"s1\","
	    "\"NodeID\":\"n2\",\"DesiredState\":\"running\","
	    "\"Status\":{\"State\":\"running\"},\"NetworksAttachments\":["
	    "{\"Network\":{\"ID\":\"w1\",\"Spec\":{\"Name\":\"a\"}},"
	    "\"Addresses\":[\"10.0.0.5;del map/24\"]},"
	    "{\"Network\":{\"ID\":\"w2\",\"Spec\":{\"Name\":\"b\"}},"
	    "\"Addresses\":[\"10.0.1.5/24\"]}]}]";
	char *cause;

	ck_assert_int_eq(swarm_parse_nodes(sw, nodes, strlen(nodes), &cause),
	    0);
	ck_assert_str_eq(swarm_node(sw, "n1")->addr, "192.0.2.7");
	ck_assert_str_eq(swarm_node(sw, "n2")->addr, "192.0.2.8");
	ck_assert_ptr_null(swarm_node(sw, "n3")->addr);
	ck_assert_ptr_null(swarm_node(sw, "n4"));
	ck_assert_str_eq(swarm_node(sw, "n5")->addr, "2001:db8::5");
	ck_assert_ptr_null(swarm_node(sw, "n6")->addr);
	ck_assert_ptr_null(swarm_node(sw, "n7")->addr);
	/* A task stays on the network, with no address there. */
	ck_assert_int_eq(swarm_parse_tasks(sw, tasks, strlen(tasks), &cause),
	    0);
	ck_assert_uint_eq(sw->ntasks, 1);
	ck_assert_uint_eq(sw->tasks[0].nnets, 2);
	ck_assert_str_eq(sw->tasks[0].nets[0].network_id, "w1");
	ck_assert_ptr_null(sw->tasks[0].nets[0].addr);
	ck_assert_str_eq(sw->tasks[0].nets[1].addr, "10.0.1.5");
	swarm_free(sw);
}
END_TEST

/* ---- HAProxy replies ---- */

static const char servers_state[] =
    "1\n"
    "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state "
    "srv_uweight srv_iweight srv_time_since_last_change srv_check_status "
    "srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl "
    "srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n"
    "4 svc-demo 1 t1 127.0.0.1 2 0 1 1 1 1 0 2 0 0 0 0 - 9999 - 0 0 - - 0\n"
    "4 svc-demo 2 t2 127.0.0.1 0 5 1 1 1 1 0 0 8 0 0 0 - 9998 - 0 0 - - 0\n"
    "3 svc-a 1 t9 10.0.0.9 2 8 1 1 1 15 3 2 0 0 0 0 - 80 - 0 0 - - 0\n"
    "\n";

START_TEST(test_hastate_servers)
{
	struct running *r = running_new();
	char *cause = NULL;

	ck_assert_msg(hastate_parse_servers(r, servers_state, &cause) == 0,
	    "%s", cause);
	ck_assert_uint_eq(r->nservers, 3);
	/* Sorted by backend, then server. */
	ck_assert_str_eq(r->servers[0].backend, "svc-a");
	ck_assert_str_eq(r->servers[1].name, "t1");
	ck_assert_uint_eq(r->servers[1].port, 9999);
	ck_assert_int_eq(rserver_in_maint(&r->servers[1]), 0);
	/* Admin state 5 = forced maintenance + "disabled" in the file. */
	ck_assert_int_eq(rserver_in_maint(&r->servers[2]), 1);
	/* Admin state 8 = forced drain: not maintenance. */
	ck_assert_int_eq(rserver_in_maint(&r->servers[0]), 0);
	ck_assert_uint_eq(r->servers[0].admin & SRV_ADMIN_DRAIN_MASK, 8);
	/* Its last health check passed; t1's has not run yet. */
	ck_assert_uint_eq(r->servers[0].check_result, SRV_CHECK_PASSED);
	ck_assert_uint_eq(r->servers[1].check_result, 0);
	running_free(r);

	/* A backend's servers in HAProxy's order, the backends sorted
	 * (as dovetail writes them), then a second reply added. */
	r = running_new();
	{
#define TAIL " 2 0 1 1 1 15 3 2 0 0 0 0 - 80 - 0 0 - - 0\n"
		static const char *const order[] = { "svc-a/t9", "svc-b/t2",
		    "svc-b/t5", "svc-b/t7", "svc-c/t1", "svc-c/t3" };
		const char *head = strchr(strchr(servers_state, '\n') + 1,
		    '\n') + 1;
		char *one, *two;
		size_t i;

		one = xasprintf("1\n%.*s"
		    "3 svc-a 1 t9 10.0.0.9" TAIL
		    "5 svc-b 1 t5 10.0.0.5" TAIL
		    "5 svc-b 2 t2 10.0.0.2" TAIL
		    "5 svc-b 3 t7 10.0.0.7" TAIL,
		    (int)(head - servers_state - 2), servers_state + 2);
		two = xasprintf("1\n%.*s"
		    "6 svc-c 2 t3 10.0.0.3" TAIL
		    "6 svc-c 1 t1 10.0.0.1" TAIL,
		    (int)(head - servers_state - 2), servers_state + 2);
		ck_assert_msg(hastate_parse_servers(r, one, &cause) == 0, "%s",
		    cause);
		ck_assert_msg(hastate_parse_servers(r, two, &cause) == 0, "%s",
		    cause);
		ck_assert_uint_eq(r->nservers, 6);
		for (i = 0; i < 6; i++) {
			char *got = xasprintf("%s/%s", r->servers[i].backend,
			    r->servers[i].name);

			ck_assert_str_eq(got, order[i]);
			free(got);
		}
		free(one);
		free(two);
#undef TAIL
	}
	running_free(r);

	r = running_new();
	ck_assert_int_eq(hastate_parse_servers(r, "1\n# be_id be_name\n"
	    "1 x\n", &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "header"));
	free(cause);
	running_free(r);
}
END_TEST

/* A server's fall is what tells of a task failing on another node. */
/* Health checks of all servers together stay within the rate. */
START_TEST(test_check_inter)
{
	ck_assert_uint_eq(desired_check_inter(0, 1000, 0), 1);
	ck_assert_uint_eq(desired_check_inter(1000, 1000, 0), 1);
	ck_assert_uint_eq(desired_check_inter(1001, 1000, 0), 2);
	ck_assert_uint_eq(desired_check_inter(10000, 1000, 1), 10);
	ck_assert_uint_eq(desired_check_inter(1000000, 1000, 0), 60);
	/* Up at once; down only with a quarter to spare. */
	ck_assert_uint_eq(desired_check_inter(2001, 1000, 2), 3);
	ck_assert_uint_eq(desired_check_inter(2000, 1000, 3), 3);
	ck_assert_uint_eq(desired_check_inter(1700, 1000, 3), 3);
	ck_assert_uint_eq(desired_check_inter(1600, 1000, 3), 2);
	ck_assert_uint_eq(desired_check_inter(10, 1000, 10), 1);
	/* Never over the rate, whatever the last spacing. */
	ck_assert_uint_eq(desired_check_inter(9000, 1000, 3), 9);
}
END_TEST

/* One check for every name that reaches HAProxy or a path. */
START_TEST(test_name_valid)
{
	ck_assert(name_valid("web", 64));
	ck_assert(name_valid("a.b_c-9", 64));
	ck_assert(!name_valid("", 64));
	ck_assert(!name_valid(".hidden", 64));
	ck_assert(!name_valid("..", 64));
	ck_assert(!name_valid("a/b", 64));
	ck_assert(!name_valid("a b", 64));
	ck_assert(!name_valid("a;b", 64));
	ck_assert(!name_valid("abcd", 3));
	ck_assert(name_valid("abc", 3));
}
END_TEST

static int
int_cmp_key(const void *elem, const void *key)
{
	int a = *(const int *)elem, b = *(const int *)key;

	return a < b ? -1 : a > b;
}

/* Where a key is or goes, duplicates taken from their first. */
START_TEST(test_lower_bound)
{
	static const int v[] = { 1, 3, 3, 3, 7 };
	static const struct { int key; size_t at; } want[] = {
		{ 0, 0 }, { 1, 0 }, { 2, 1 }, { 3, 1 }, { 4, 4 }, { 7, 4 },
		{ 8, 5 },
	};
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		ck_assert_uint_eq(lower_bound(&want[i].key, v, 5, sizeof(int),
		    int_cmp_key), want[i].at);
	ck_assert_uint_eq(lower_bound(&want[0].key, NULL, 0, sizeof(int),
	    int_cmp_key), 0);
}
END_TEST

/* A bit flipped anywhere changes the hash; names spread over a table. */
START_TEST(test_hash_bytes)
{
	unsigned char b[37];
	uint64_t h0, *low;
	size_t i, bit, distinct = 0;
	char name[32];

	for (i = 0; i < sizeof(b); i++)
		b[i] = (unsigned char)(i * 7 + 1);
	h0 = hash_bytes(b, sizeof(b), HASH_INIT);
	ck_assert_uint_eq(hash_bytes(b, sizeof(b), HASH_INIT), h0);
	ck_assert_uint_ne(hash_bytes(b, sizeof(b) - 1, HASH_INIT), h0);
	for (i = 0; i < sizeof(b); i++)
		for (bit = 0; bit < 8; bit++) {
			b[i] ^= (unsigned char)(1u << bit);
			ck_assert_uint_ne(hash_bytes(b, sizeof(b), HASH_INIT),
			    h0);
			b[i] ^= (unsigned char)(1u << bit);
		}
	/* 10,000 names in 16,384 slots: about 7,480 used if the low bits
	 * are as good as random; a poor mix leaves far fewer. */
	low = xcalloc(16384, sizeof(*low));
	for (i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "svc-s%zu", i);
		low[hash_bytes(name, strlen(name), HASH_INIT) & 16383]++;
	}
	for (i = 0; i < 16384; i++)
		distinct += low[i] > 0;
	ck_assert_uint_gt(distinct, 7000);
	free(low);
}
END_TEST

/* An idle reconcile stops early only when nothing can be owed. */
START_TEST(test_reconcile_skip)
{
	int reuse, stale, flight, quiet;

	for (reuse = 0; reuse <= 1; reuse++)
		for (stale = 0; stale <= 1; stale++)
			for (flight = 0; flight <= 1; flight++)
				for (quiet = 0; quiet <= 1; quiet++)
					ck_assert_int_eq(reconcile_may_skip(
					    reuse, stale, flight, quiet),
					    reuse && !stale && !flight &&
					    quiet);
	ck_assert(reconcile_quiet(NULL, 0, 0));
	/* A reload owed, one put off by the settle window, a command
	 * planned (applied, refused or held back). */
	ck_assert(!reconcile_quiet("the last reload did not complete", 0,
	    0));
	ck_assert(!reconcile_quiet(NULL, 1, 0));
	ck_assert(!reconcile_quiet(NULL, 0, 1));
}
END_TEST

/* servers_state with one field of t1's line (0-based) replaced. */
static char *
state_with(size_t field, const char *value)
{
	const char *line = strstr(servers_state, "\n4 svc-demo 1 t1 ") + 1;
	const char *p = line, *f;
	size_t n;

	for (n = 0; n < field; n++)
		p = strchr(p, ' ') + 1;
	f = p;
	p += strcspn(p, " \n");
	return xasprintf("%.*s%s%s", (int)(f - servers_state), servers_state,
	    value, p);
}

static int
servers_parse_same(const char *a, const char *b)
{
	struct running *x = running_new(), *y = running_new();
	char *cause = NULL;
	size_t i;
	int same;

	same = hastate_parse_servers(x, a, &cause) == 0;
	free(cause);
	cause = NULL;
	same = same == (hastate_parse_servers(y, b, &cause) == 0) &&
	    x->nservers == y->nservers;
	free(cause);
	for (i = 0; same && i < x->nservers; i++) {
		const struct rserver *s = &x->servers[i], *t = &y->servers[i];

		same = strcmp(s->backend, t->backend) == 0 &&
		    strcmp(s->name, t->name) == 0 &&
		    strcmp(s->addr, t->addr) == 0 && s->port == t->port &&
		    s->op == t->op && s->admin == t->admin &&
		    s->weight == t->weight &&
		    s->check_result == t->check_result;
	}
	running_free(x);
	running_free(y);
	return same;
}

/*
 * The digest an idle reconcile compares: blind to the seconds since a
 * server's last change, which move by themselves, and to nothing that
 * hastate_parse_servers reads.
 */
START_TEST(test_hastate_servers_digest)
{
	static const struct { size_t field; const char *value; } edits[] = {
		{ 9, "4711" },		/* srv_time_since_last_change */
		{ 1, "svc-x" }, { 3, "t7" }, { 4, "127.0.0.2" },
		{ 5, "0" },		/* srv_op_state */
		{ 6, "1" },		/* srv_admin_state */
		{ 7, "9" },		/* srv_uweight */
		{ 11, "3" },		/* srv_check_result */
		{ 18, "9990" },		/* srv_port */
		{ 12, "1" },		/* srv_check_health: not read */
		{ 18, "99999" },	/* a port the parse refuses */
		{ 9, "1 2" },		/* one field more */
	};
	const size_t n = sizeof(edits) / sizeof(edits[0]);
	char *v[sizeof(edits) / sizeof(edits[0]) + 3];
	uint64_t base = hastate_servers_digest(servers_state), h;
	char *renamed;
	size_t i, j;

	for (i = 0; i < n; i++)
		v[i] = state_with(edits[i].field, edits[i].value);
	/* The same servers, written otherwise. */
	v[n] = state_with(9, "1\t");
	v[n + 1] = xasprintf("%s3 svc-b 1 t8 10.0.0.8 2 0 1 1 1 15 3 2 0 0 0 0 "
	    "- 80 - 0 0 - - 0\n", servers_state);
	/* No such column: every line whole. */
	v[n + 2] = xstrdup(servers_state);
	memcpy(strstr(v[n + 2], "srv_time_since"), "srv_XXXX", 8);

	ck_assert_uint_eq(hastate_servers_digest(servers_state), base);
	ck_assert_uint_eq(hastate_servers_digest(v[0]), base);
	for (i = 1; i < n + 3; i++) {
		h = hastate_servers_digest(v[i]);
		ck_assert_msg(h != base, "edit %zu reads as unchanged", i);
	}
	/* Equal digests, equal servers: every pair. */
	for (i = 0; i < n + 3; i++)
		for (j = 0; j < n + 3; j++)
			if (hastate_servers_digest(v[i]) ==
			    hastate_servers_digest(v[j]))
				ck_assert_msg(servers_parse_same(v[i], v[j]),
				    "%zu and %zu", i, j);
	ck_assert(servers_parse_same(servers_state, v[0]));
	/* With the column renamed, a time change is a change. */
	renamed = xstrdup(v[0]);
	memcpy(strstr(renamed, "srv_time_since"), "srv_XXXX", 8);
	ck_assert_uint_ne(hastate_servers_digest(renamed),
	    hastate_servers_digest(v[n + 2]));
	free(renamed);
	for (i = 0; i < n + 3; i++)
		free(v[i]);
}
END_TEST

START_TEST(test_hastate_fallen)
{
	struct rserver was[] = {
		{ (char *)"b", (char *)"down", NULL, 0, 0, SRV_OP_RUNNING, 1,
		    SRV_CHECK_PASSED },
		{ (char *)"b", (char *)"gone", NULL, 0, 0, SRV_OP_RUNNING, 1,
		    SRV_CHECK_PASSED },
		{ (char *)"b", (char *)"maint", NULL, 0, 0, SRV_OP_RUNNING, 1,
		    SRV_CHECK_PASSED },
		{ (char *)"b", (char *)"never", NULL, 0, 0, SRV_OP_STOPPED, 1,
		    2 },
		/* Up as a new worker says of a server not checked yet. */
		{ (char *)"b", (char *)"unchecked", NULL, 0, 0, SRV_OP_RUNNING,
		    1, 0 },
		{ (char *)"b", (char *)"up", NULL, 0, 0, SRV_OP_RUNNING, 1,
		    SRV_CHECK_CONDPASS },
	};
	struct rserver now[] = {
		{ (char *)"b", (char *)"down", NULL, 0, 0, SRV_OP_STOPPED, 1, 0 },
		{ (char *)"b", (char *)"maint", NULL, 0, 0x01, SRV_OP_STOPPED,
		    1, 0 },
		{ (char *)"b", (char *)"never", NULL, 0, 0, SRV_OP_STOPPED, 1, 0 },
		{ (char *)"b", (char *)"new", NULL, 0, 0, SRV_OP_STOPPED, 1, 0 },
		{ (char *)"b", (char *)"unchecked", NULL, 0, 0, SRV_OP_STOPPED,
		    1, 0 },
		{ (char *)"b", (char *)"up", NULL, 0, 0, SRV_OP_RUNNING, 1, 0 },
		{ (char *)"c", (char *)"down", NULL, 0, 0, SRV_OP_STOPPED, 1, 0 },
	};
	struct running before, after;
	const struct rserver **fallen;

	memset(&before, 0, sizeof(before));
	memset(&after, 0, sizeof(after));
	before.servers = was;
	before.nservers = 6;
	after.servers = now;
	after.nservers = 7;
	/* Only b/down: checked up before, down now, not in maintenance. */
	ck_assert_uint_eq(hastate_fallen(&before, &after, &fallen), 1);
	ck_assert_str_eq(fallen[0]->backend, "b");
	ck_assert_str_eq(fallen[0]->name, "down");
	free(fallen);
	ck_assert_uint_eq(hastate_fallen(NULL, &after, &fallen), 0);
	ck_assert_ptr_null(fallen);
	ck_assert_uint_eq(hastate_fallen(&after, &after, &fallen), 0);
	free(fallen);

	/* Many fall, far apart and at the end: each found where it is. */
	{
		struct rserver many_was[100], many_now[100];
		char names[100][8];
		size_t i, n;

		for (i = 0; i < 100; i++) {
			snprintf(names[i], sizeof(names[i]), "s%03zu", i);
			memset(&many_was[i], 0, sizeof(many_was[i]));
			many_was[i].backend = (char *)"b";
			many_was[i].name = names[i];
			many_was[i].op = SRV_OP_RUNNING;
			many_was[i].check_result = SRV_CHECK_PASSED;
			many_now[i] = many_was[i];
			if (i % 7 == 0 || i == 99)
				many_now[i].op = SRV_OP_STOPPED;
		}
		before.servers = many_was;
		before.nservers = 100;
		after.servers = many_now;
		after.nservers = 100;
		n = hastate_fallen(&before, &after, &fallen);
		ck_assert_uint_eq(n, 16);
		for (i = 0; i < 15; i++)
			ck_assert_str_eq(fallen[i]->name, names[i * 7]);
		ck_assert_str_eq(fallen[15]->name, "s099");
		free(fallen);
		/* Before holds only the last: found past all the others. */
		before.servers = &many_was[99];
		before.nservers = 1;
		ck_assert_uint_eq(hastate_fallen(&before, &after, &fallen), 1);
		ck_assert_str_eq(fallen[0]->name, "s099");
		free(fallen);
	}
}
END_TEST

/* HAProxy 3.0 says how a reload went; 2.6 says nothing. */
START_TEST(test_hastate_reload_reply)
{
	char *alerts;

	ck_assert_int_eq(hastate_parse_reload("Success=1\n--\n[NOTICE]   "
	    "(1) : Loading success.\n", &alerts), 1);
	ck_assert_str_eq(alerts, "");
	free(alerts);
	ck_assert_int_eq(hastate_parse_reload("Success=0\n--\n[NOTICE]   "
	    "(1) : haproxy version is 3.0.11\n[ALERT]    (1) : config : "
	    "parsing [/x.cfg:10] : unknown keyword 'bogus' in 'frontend' "
	    "section\n[ALERT]    (1) : config : Error(s) found in "
	    "configuration file : /x.cfg\n[WARNING]  (1) : Loading "
	    "failure!\n", &alerts), 0);
	ck_assert_str_eq(alerts, "parsing [/x.cfg:10] : unknown keyword "
	    "'bogus' in 'frontend' section");
	free(alerts);
	ck_assert_int_eq(hastate_parse_reload("", &alerts), -1);
	ck_assert_ptr_null(alerts);
	ck_assert_int_eq(hastate_parse_reload("Success=10\n", &alerts), -1);
	ck_assert_int_eq(hastate_parse_reload("Unknown command.\n", &alerts),
	    -1);
}
END_TEST

START_TEST(test_hastate_backends_and_map)
{
	struct running *r = running_new();
	char *cause = NULL;

	ck_assert_int_eq(hastate_parse_backends(r, "# name\nsvc-demo\n"
	    "dovetail-no-route\n\n", &cause), 0);
	ck_assert_uint_eq(r->nbackends, 2);
	ck_assert_int_eq(running_has_backend(r, "svc-demo"), 1);
	ck_assert_int_eq(running_has_backend(r, "svc-other"), 0);
	ck_assert_int_eq(hastate_parse_map(r, MAP_ROUTES, "0x55ad0e3b2a60 "
	    "demo.local/ svc-demo\n0x55ad0e3b2b00 a.local/ svc-a\n", &cause),
	    0);
	ck_assert_uint_eq(r->nmap[MAP_ROUTES], 2);
	ck_assert_uint_eq(r->nmap[MAP_SNI], 0);
	ck_assert_str_eq(r->maps[MAP_ROUTES][0].key, "a.local/");
	ck_assert_int_eq(hastate_parse_map(r, MAP_SNI, "Unknown map "
	    "identifier\n", &cause), -1);
	free(cause);
	/* Nothing that would end or escape a runtime command comes back. */
	ck_assert_int_eq(hastate_parse_map(r, MAP_SNI, "0x1 a.local/;shutdown "
	    "svc-a\n", &cause), -1);
	ck_assert_str_eq(cause, "show map: the reply holds byte 0x3b, which "
	    "no name dovetail gives HAProxy holds");
	free(cause);
	ck_assert_int_eq(hastate_parse_backends(r, "svc\\x\n", &cause), -1);
	free(cause);
	ck_assert_int_eq(hastate_parse_crt_list(r, "/x/a.pem a\rb\n", &cause),
	    -1);
	free(cause);
	ck_assert_uint_eq(r->nmap[MAP_SNI], 0);
	ck_assert_uint_eq(r->nbackends, 2);
	running_free(r);
}
END_TEST

START_TEST(test_hastate_proc)
{
	struct proc_info p;
	char *cause = NULL;
	const char *two =
	    "#<PID>          <type>          <reloads>       <uptime>        "
	    "<version>      \n"
	    "2742            master          2 [failed: 1]   0d00h00m13s     "
	    "2.6.12-1+deb12u4\n# workers\n"
	    "2779            worker          1               0d00h00m01s     "
	    "2.6.12-1+deb12u4\n# old workers\n"
	    "2700            worker          2               0d00h00m09s     "
	    "2.6.12-1+deb12u4\n# programs\n\n";

	ck_assert_msg(hastate_parse_proc(two, &p, &cause) == 0, "%s", cause);
	ck_assert_int_eq(p.master_pid, 2742);
	ck_assert_int_eq(p.reloads, 2);
	ck_assert_int_eq(p.failed, 1);
	ck_assert_int_eq(p.worker_pid, 2779);
	ck_assert_int_eq(hastate_parse_proc("Unknown command.\n", &p, &cause),
	    -1);
	free(cause);
}
END_TEST

START_TEST(test_reply_classes)
{
	struct cmd c;

	c.kind = CMD_ADD_SERVER;
	ck_assert(plan_reply_ok(&c, "New server registered."));
	ck_assert(!plan_reply_ok(&c, "Already exists a server with the same "
	    "name in backend."));
	c.kind = CMD_DEL_SERVER;
	ck_assert(plan_reply_ok(&c, "Server deleted."));
	ck_assert(!plan_reply_ok(&c, "Only servers in maintenance mode can "
	    "be deleted."));
	ck_assert(!plan_reply_ok(&c, "No such server."));
	c.kind = CMD_SET_STATE;
	ck_assert(plan_reply_ok(&c, ""));
	ck_assert(!plan_reply_ok(&c, "No such server."));
	c.kind = CMD_SET_ADDR;
	ck_assert(plan_reply_ok(&c, "IP changed from '127.0.0.1' to "
	    "'127.0.0.2', port changed from '9999' to '8000' by 'stats socket "
	    "command'"));
	ck_assert(!plan_reply_ok(&c, "No such server."));
	c.kind = CMD_MAP_DEL;
	ck_assert(plan_reply_ok(&c, ""));
	ck_assert(!plan_reply_ok(&c, "Key not found."));
}
END_TEST

START_TEST(test_skeleton)
{
	struct buf a, b;

	buf_init(&a);
	buf_init(&b);
	render_skeleton(&a, "backend x\n\tmode http\n\tserver t1 1.2.3.4:80\n"
	    "\tserver t2 1.2.3.5:80\n");
	render_skeleton(&b, "backend x\n\tmode http\n\tserver t9 1.2.3.9:81\n");
	ck_assert_str_eq(a.data, "backend x\n\tmode http\n");
	ck_assert_str_eq(a.data, b.data);
	buf_reset(&b);
	render_skeleton(&b, "backend y\n\tmode http\n");
	ck_assert_str_ne(a.data, b.data);
	buf_free(&a);
	buf_free(&b);
}
END_TEST

/*
 * The reload decision rests on this: hosts and servers never change the
 * skeleton, backends and the servers' options always do.
 */
static char *
skeleton_of(size_t nhosts, size_t nservers, size_t nbackends,
    unsigned check_inter)
{
	static const char *hosts[] = { "a.example", "b.example", "c.example" };
	static const char *names[] = { "svc-a", "svc-b" };
	struct render_opts ro = { ":80", "", { "/x.map", "/s.map",
	    "/r.map" }, "/x.crt-list", "/x.certs", "/x.certs/default.pem",
	    "abns@x", "24h", 1 };
	struct dserver servers[3] = {
		{ "t1", "192.0.2.1", 80, -1, "a" },
		{ "t2", "192.0.2.2", 80, -1, "a" },
		{ "t3", "192.0.2.3", 81, -1, "a" },
	};
	char *svcs[] = { "a" };
	struct dbackend be[2];
	struct droute routes[3];
	struct desired d;
	struct buf text, skel;
	size_t i;

	memset(&d, 0, sizeof(d));
	memset(be, 0, sizeof(be));
	for (i = 0; i < nbackends; i++) {
		be[i].name = (char *)names[i];
		be[i].services = svcs;
		be[i].nservices = 1;
		be[i].servers = servers;
		be[i].nservers = i == 0 ? nservers : 1;
	}
	for (i = 0; i < nhosts; i++) {
		routes[i].key = (char *)hosts[i];
		routes[i].value = (char *)names[0];
	}
	d.backends = be;
	d.nbackends = nbackends;
	d.check_inter = check_inter;
	d.maps[MAP_ROUTES] = routes;
	d.nmap[MAP_ROUTES] = nhosts;
	buf_init(&text);
	buf_init(&skel);
	render_config(&text, &d, &ro);
	render_skeleton(&skel, text.data);
	buf_free(&text);
	return buf_steal(&skel);
}

START_TEST(test_skeleton_invariant)
{
	char *base = skeleton_of(1, 1, 1, 1), *other;

	other = skeleton_of(3, 1, 1, 1);
	ck_assert_str_eq(base, other);	/* more hosts: no reload */
	free(other);
	other = skeleton_of(1, 3, 1, 1);
	ck_assert_str_eq(base, other);	/* more servers: no reload */
	free(other);
	other = skeleton_of(1, 1, 2, 1);
	ck_assert_str_ne(base, other);	/* a new backend: reload */
	free(other);
	/* Other server options: servers added at run time would keep theirs. */
	other = skeleton_of(1, 1, 1, 2);
	ck_assert_str_ne(base, other);
	free(other);
	free(base);
}
END_TEST

/*
 * A server added at run time must be its twin in the file: "add server"
 * takes exactly the words after the name on the written server line
 * followed by those of its backend's default-server line (which "add
 * server" does not apply), pool settings included (HAProxy 2.6 gives an
 * added server no idle connection pool unless told).
 */
static void
check_add_server_twin(int tcp, int weight)
{
	struct render_opts ro = { ":80", "", { "/x.map", "/s.map",
	    "/r.map" }, "/x.crt-list", "/x.certs", "/x.certs/default.pem",
	    "abns@x", "24h", 1 };
	struct dserver srv = { "t1", "2001:db8::7", 8080, weight, "a" };
	char *svcs[] = { "a" };
	struct dbackend be;
	struct desired d;
	struct running *r = running_new();
	struct plan p;
	struct buf text;
	const char *line, *opts, *add = NULL;
	char *cause = NULL, *want;
	size_t i, len, olen;

	memset(&d, 0, sizeof(d));
	memset(&be, 0, sizeof(be));
	memset(&p, 0, sizeof(p));
	be.name = "svc-a";
	be.services = svcs;
	be.nservices = 1;
	be.servers = &srv;
	be.nservers = 1;
	be.tcp = tcp;
	d.backends = &be;
	d.nbackends = 1;
	d.check_inter = 7;
	buf_init(&text);
	render_config(&text, &d, &ro);
	line = strstr(text.data, "\n\tserver t1 ");
	ck_assert_ptr_nonnull(line);
	line += strlen("\n\tserver t1 ");
	len = strcspn(line, "\n");
	ck_assert_ptr_null(memmem(line, len, " check", 6));
	opts = strstr(text.data, "\n\tdefault-server ");
	ck_assert_ptr_nonnull(opts);
	ck_assert(opts < line);
	opts += strlen("\n\tdefault-server ");
	olen = strcspn(opts, "\n");
	ck_assert_ptr_nonnull(strstr(opts, "check inter 7s fastinter 1s fall 2 "));

	ck_assert_int_eq(hastate_parse_backends(r, "# name\nsvc-a\n", &cause),
	    0);
	plan_build(&p, &d, NULL, r, &ro);
	for (i = 0; i < p.ncmds; i++)
		if (p.cmds[i].kind == CMD_ADD_SERVER)
			add = p.cmds[i].text;
	ck_assert_ptr_nonnull(add);
	/* The server line and its backend's default-server, as one. */
	want = xasprintf("add server svc-a/t1 %.*s %.*s", (int)len, line,
	    (int)olen, opts);
	ck_assert_str_eq(add, want);
	ck_assert_ptr_nonnull(strstr(add, " [2001:db8::7]:8080 "));
	ck_assert_ptr_nonnull(strstr(add, " pool-purge-delay 5s "
	    "pool-max-conn -1"));
	ck_assert_ptr_nonnull(strstr(add, " check inter 7s fastinter 1s fall 2 rise 1 "));
	if (weight >= 0)
		ck_assert_ptr_nonnull(strstr(add, " weight 30 "));
	else
		ck_assert_ptr_null(strstr(add, " weight "));
	ck_assert_int_eq(strstr(add, " check-ssl verify none") != NULL, tcp);
	free(want);
	plan_free(&p);
	running_free(r);
	buf_free(&text);
}

/*
 * A frontend looks redirects up only while a host is redirected from its
 * scheme, and HAProxy loads only the maps the file names: an https://
 * source without the HTTPS frontend uses no map, or the agent would
 * reload forever for a map HAProxy never loads.
 */
START_TEST(test_map_used)
{
	struct droute red[] = { { "https://a.test", "https://b.test" } };
	struct droute routes[] = { { "a.test/", "svc-a" },
	    { "a.test/api/", "svc-api" } };
	struct render_opts ro = { ":80", ":443", { "/m/hosts.map",
	    "/m/sni.map", "/m/redirects.map", "/m/acme.map" }, "/m/crt-list", "/m/certs",
	    "/m/certs/default.pem", "abns@t", "24h", 0 };
	struct desired d;
	struct buf b;

	memset(&d, 0, sizeof(d));
	buf_init(&b);
	ck_assert(desired_map_used(&d, MAP_ROUTES));
	ck_assert(!desired_map_used(&d, MAP_SNI));
	ck_assert(!desired_map_used(&d, MAP_REDIRECTS));
	d.maps[MAP_REDIRECTS] = red;
	d.nmap[MAP_REDIRECTS] = 1;
	ck_assert(desired_redirects_from(&d, "https"));
	ck_assert(!desired_redirects_from(&d, "http"));
	ck_assert(!desired_map_used(&d, MAP_REDIRECTS));
	render_config(&b, &d, &ro);
	ck_assert_ptr_null(strstr(b.data, "redirects.map"));
	d.ncerts = 1;
	ck_assert(desired_map_used(&d, MAP_REDIRECTS));
	buf_reset(&b);
	render_config(&b, &d, &ro);
	/* In the HTTPS frontend only. */
	ck_assert_ptr_nonnull(strstr(b.data, "str(https://),concat("));
	ck_assert_ptr_null(strstr(b.data, "str(http://),concat("));
	d.ncerts = 0;
	red[0].key = "http://a.test";
	ck_assert(desired_map_used(&d, MAP_REDIRECTS));
	/* The path is read only while some route has a context root. */
	d.maps[MAP_ROUTES] = routes;
	d.nmap[MAP_ROUTES] = 1;
	ck_assert(!desired_context_roots(&d));
	buf_reset(&b);
	render_config(&b, &d, &ro);
	ck_assert_ptr_null(strstr(b.data, "dovetail_path"));
	ck_assert_ptr_nonnull(strstr(b.data, "\tuse_backend %[var(txn."
	    "dovetail_host),concat(/),map_beg(/m/hosts.map)]\n"));
	d.nmap[MAP_ROUTES] = 2;
	ck_assert(desired_context_roots(&d));
	buf_reset(&b);
	render_config(&b, &d, &ro);
	ck_assert_ptr_nonnull(strstr(b.data, "\thttp-request set-var(txn."
	    "dovetail_path) path\n\tuse_backend %[var(txn.dovetail_host),"
	    "concat(,txn.dovetail_path,/),map_beg(/m/hosts.map)]\n"));
	buf_free(&b);
}
END_TEST

/*
 * A command HAProxy refused waits until its time, once per poll interval;
 * warned about once; forgotten when taken, or when the plan drops it.
 */
START_TEST(test_hold)
{
	struct cmd ms = { CMD_MAP_SET, (char *)"set map m a b", NULL, NULL,
	    NULL };
	struct cmd as = { CMD_ADD_SERVER, (char *)"add server b/s 1.2.3.4:80",
	    NULL, NULL, NULL };
	struct cmd commit = { CMD_CERT_COMMIT, (char *)"commit ssl cert "
	    "/c/x.pem", NULL, "x.pem", NULL };
	struct hold h;
	struct plan p;

	memset(&h, 0, sizeof(h));
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(hold_refused(&h, &ms, 1000), 1);
	ck_assert_int_eq(hold_refused(&h, &ms, 2000), 0);
	ck_assert_int_eq(hold_refused(&h, &as, 1500), 1);
	plan_add(&p, CMD_MAP_SET, xstrdup("set map m a b"), NULL);
	plan_add(&p, CMD_MAP_SET, xstrdup("set map m c d"), NULL);
	plan_add(&p, CMD_ADD_SERVER, xstrdup("add server b/s 1.2.3.4:80"),
	    xstrdup("s added"));
	ck_assert_uint_eq(hold_filter(&h, &p, 1200), 2);
	ck_assert_uint_eq(p.ncmds, 1);
	ck_assert_str_eq(p.cmds[0].text, "set map m c d");
	plan_free(&p);
	/* Its time come, the command is tried again. */
	plan_add(&p, CMD_MAP_SET, xstrdup("set map m a b"), NULL);
	plan_add(&p, CMD_ADD_SERVER, xstrdup("add server b/s 1.2.3.4:80"),
	    NULL);
	ck_assert_uint_eq(hold_filter(&h, &p, 1600), 1);
	ck_assert_str_eq(p.cmds[0].text, "add server b/s 1.2.3.4:80");
	plan_free(&p);
	/* Taken: forgotten; not asked for any more: forgotten too. */
	hold_release(&h, &as);
	ck_assert_uint_eq(h.n, 1);
	ck_assert_uint_eq(hold_filter(&h, &p, 1700), 0);
	ck_assert_uint_eq(h.n, 0);
	ck_assert_int_eq(hold_refused(&h, &ms, 3000), 1);
	/*
	 * A certificate's commit refused holds the whole transaction, or
	 * its "set" alone would open one that nothing commits or aborts.
	 */
	ck_assert_int_eq(hold_refused(&h, &commit, 5000), 1);
	plan_add(&p, CMD_CERT_NEW, xstrdup("new ssl cert /c/x.pem"), NULL);
	p.cmds[0].file = "x.pem";
	plan_add(&p, CMD_CERT_SET, xstrdup("set ssl cert /c/x.pem <<\n..."),
	    NULL);
	p.cmds[1].file = "x.pem";
	plan_add(&p, CMD_CERT_COMMIT, xstrdup("commit ssl cert /c/x.pem"),
	    NULL);
	p.cmds[2].file = "x.pem";
	plan_add(&p, CMD_CERT_SET, xstrdup("set ssl cert /c/y.pem <<\n..."),
	    NULL);
	p.cmds[3].file = "y.pem";
	ck_assert_uint_eq(hold_filter(&h, &p, 4000), 3);
	ck_assert_uint_eq(p.ncmds, 1);
	ck_assert_str_eq(p.cmds[0].file, "y.pem");
	plan_free(&p);
	hold_free(&h);
}
END_TEST

/*
 * haproxy -c's refusal, as 2.6 and 3.0 print it, traced to the backend of
 * the file that holds the line, and to its services.
 */
START_TEST(test_check_refusal)
{
	static const char out[] =
	    "[NOTICE]   (15753) : haproxy version is 2.6.12-1+deb12u4\n"
	    "[NOTICE]   (15753) : path to executable is /usr/sbin/haproxy\n"
	    "[ALERT]    (15753) : config : Parsing [/etc/haproxy/dovetail.cfg:9]"
	    ": backend 'svc-clash' has the same name as backend 'svc-clash' "
	    "declared at /etc/haproxy/haproxy.cfg:6.\n"
	    "[ALERT]    (15753) : config : Error(s) found in configuration file "
	    ": /etc/haproxy/dovetail.cfg\n"
	    "[ALERT]    (15753) : config : Fatal errors found in configuration.\n";
	static const char other[] =
	    "[ALERT]    (1) : config : parsing [/etc/haproxy/haproxy.cfg:3] : "
	    "unknown keyword 'x'\n"
	    "[ALERT]    (1) : config : parsing [/etc/haproxy/dovetail.cfg:4] : "
	    "unknown keyword 'y' in 'frontend' section\n";
	static const char file[] =
	    "# Generated\n"				/* 1 */
	    "\n"
	    "frontend dovetail-http\n"
	    "\tmode http\n"				/* 4 */
	    "\n"
	    "backend dovetail-no-route\n"
	    "\tmode http\n"				/* 7 */
	    "\n"
	    "backend svc-clash\n"			/* 9 */
	    "\t# services: clash\n"
	    "\tserver a 1.2.3.4:80\n"		/* 11 */
	    "\n"
	    "backend grp-a-1\n"
	    "\t# services: a b\n"
	    "\tmode http";				/* 15 */
	char *said, *msg = NULL, *svcs;

	said = hastate_check_alerts(out);
	ck_assert_str_eq(said, "Parsing [/etc/haproxy/dovetail.cfg:9]: backend "
	    "'svc-clash' has the same name as backend 'svc-clash' declared at "
	    "/etc/haproxy/haproxy.cfg:6.");
	free(said);
	said = hastate_check_alerts("");
	ck_assert_str_eq(said, "");
	free(said);
	ck_assert_uint_eq(hastate_check_line(out, "/etc/haproxy/dovetail.cfg",
	    &msg), 9);
	ck_assert_str_eq(msg, "backend 'svc-clash' has the same name as "
	    "backend 'svc-clash' declared at /etc/haproxy/haproxy.cfg:6.");
	free(msg);
	/* The base file's lines are not dovetail's; its own frontend is. */
	ck_assert_uint_eq(hastate_check_line(other,
	    "/etc/haproxy/dovetail.cfg", &msg), 4);
	ck_assert_str_eq(msg, "unknown keyword 'y' in 'frontend' section");
	free(msg);
	ck_assert_uint_eq(hastate_check_line(other, "/etc/haproxy/dovetail",
	    &msg), 0);
	/* A warning's line is not the refused one. */
	ck_assert_uint_eq(hastate_check_line("[WARNING]  (1) : config : "
	    "parsing [/f.cfg:11] : a warning\n[ALERT]    (1) : config : "
	    "parsing [/f.cfg:15] : the error\n", "/f.cfg", &msg), 15);
	ck_assert_str_eq(msg, "the error");
	free(msg);
	svcs = render_services_at(file, 9);
	ck_assert_str_eq(svcs, "clash");
	free(svcs);
	svcs = render_services_at(file, 11);
	ck_assert_str_eq(svcs, "clash");
	free(svcs);
	svcs = render_services_at(file, 15);
	ck_assert_str_eq(svcs, "a b");
	free(svcs);
	/* Frontends, dovetail's own backend, blank lines, past the end. */
	ck_assert_ptr_null(render_services_at(file, 4));
	ck_assert_ptr_null(render_services_at(file, 7));
	ck_assert_ptr_null(render_services_at(file, 12));
	ck_assert_ptr_null(render_services_at(file, 16));
	ck_assert_ptr_null(render_services_at(file, 0));
	/* Past the end of a text that ends with a newline. */
	ck_assert_ptr_null(render_services_at("backend b\n\t# services: a\n",
	    3));
	/* Any unindented line ends the backend's section. */
	ck_assert_ptr_null(render_services_at("backend b\n\t# services: a\n"
	    "listen x\n\tbind :1\n", 4));
}
END_TEST

START_TEST(test_render_backends)
{
	char **names;
	size_t n;

	names = render_backends("global\n\tmaxconn 10\nfrontend http\n"
	    "\tuse_backend svc-x\nbackend svc-b\n\t# services: b\n"
	    "\tserver s1 127.0.0.1:1\nbackend dovetail-no-route\n"
	    "backend svc-a mode\nlisten backend\n  backend svc-c\n"
	    "backend tlssvc-z", &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(names[0], "dovetail-no-route");
	ck_assert_str_eq(names[1], "svc-a");
	ck_assert_str_eq(names[2], "svc-b");
	ck_assert_str_eq(names[3], "tlssvc-z");
	free_strings(names, n);
	names = render_backends("", &n);
	ck_assert_uint_eq(n, 0);
	free(names);
}
END_TEST

START_TEST(test_running_keep_backends)
{
	struct running *r = running_new();
	char *known[] = { "svc-a", "svc-c" }, *cause;

	ck_assert_int_eq(hastate_parse_backends(r, "# name\nbase-web\n"
	    "dovetail-no-route\nsvc-a\nsvc-b\nsvc-c\n", &cause), 0);
	running_keep_backends(r, known, 2);
	ck_assert_uint_eq(r->nbackends, 3);
	ck_assert_int_eq(running_has_backend(r, "svc-a"), 1);
	ck_assert_int_eq(running_has_backend(r, "svc-c"), 1);
	ck_assert_int_eq(running_has_backend(r, DT_BACKEND_NO_ROUTE), 1);
	/* A base file's backend, one the file does not have yet: gone. */
	ck_assert_int_eq(running_has_backend(r, "base-web"), 0);
	ck_assert_int_eq(running_has_backend(r, "svc-b"), 0);
	running_keep_backends(r, NULL, 0);
	ck_assert_uint_eq(r->nbackends, 1);
	running_free(r);
}
END_TEST

/* A read of some backends: what it found goes into the whole state. */
START_TEST(test_runtime_read_some_servers)
{
	struct running *seen = running_new(), *r = running_new();
	char *names[] = { "svc-demo", "svc-gone" }, *cause = NULL;
	const char *replies[2];
	char *one;

	ck_assert_int_eq(hastate_parse_servers(seen, servers_state, &cause),
	    0);
	/* svc-demo now has t2 and t3, svc-gone is not HAProxy's. */
	one = xstrdup(servers_state);
	*strstr(one, "4 svc-demo 1 t1") = '\0';
	replies[0] = xasprintf("%s%s", one, "4 svc-demo 2 t2 127.0.0.1 2 0 1 "
	    "1 1 1 0 2 0 0 0 0 - 9998 - 0 0 - - 0\n4 svc-demo 3 t3 127.0.0.1 "
	    "2 0 1 1 1 1 0 2 0 0 0 0 - 9997 - 0 0 - - 0\n");
	replies[1] = "Can't find backend.";
	ck_assert_msg(runtime_parse_servers(r, names, replies, 2, &cause) == 0,
	    "%s", cause);
	ck_assert_uint_eq(r->nbackends, 1);
	ck_assert_str_eq(r->backends[0], "svc-demo");
	ck_assert_uint_eq(r->nservers, 2);
	running_take_servers(seen, r);
	/* svc-a's t9 stays; svc-demo's t1 left, t3 came; all sorted. */
	ck_assert_uint_eq(seen->nservers, 3);
	ck_assert_str_eq(seen->servers[0].backend, "svc-a");
	ck_assert_str_eq(seen->servers[1].name, "t2");
	ck_assert_uint_eq(seen->servers[1].op, SRV_OP_RUNNING);
	ck_assert_str_eq(seen->servers[2].name, "t3");
	ck_assert_uint_eq(seen->servers[2].port, 9997);
	free((char *)replies[0]);
	free(one);
	running_free(seen);
	running_free(r);
}
END_TEST

START_TEST(test_reload_report_parse)
{
	struct reload_result r;

	ck_assert_int_eq(reload_report_parse("0 0\n", 4, &r), 0);
	ck_assert_int_eq(r.outcome, RELOAD_DONE);
	ck_assert_ptr_null(r.cause);
	ck_assert_uint_eq(r.output.len, 0);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("1 7\nrefusedline 1\n", 18, &r),
	    0);
	ck_assert_int_eq(r.outcome, RELOAD_REFUSED);
	ck_assert_str_eq(r.cause, "refused");
	ck_assert_uint_eq(r.output.len, 7);
	ck_assert_int_eq(memcmp(r.output.data, "line 1\n", 7), 0);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("3 2\nno", 6, &r), 0);
	ck_assert_int_eq(r.outcome, RELOAD_FAILED);
	ck_assert_str_eq(r.cause, "no");
	reload_result_free(&r);
	/* Cut short, an unknown outcome, a done one with a cause, junk. */
	ck_assert_int_eq(reload_report_parse("3 5\nno", 6, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("4 0\n", 4, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("0 2\nok", 6, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("2 0\n", 4, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("", 0, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("0 0", 3, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("1 -1\n", 5, &r), -1);
	reload_result_free(&r);
	ck_assert_int_eq(reload_report_parse("1  1\nx", 6, &r), -1);
	reload_result_free(&r);
}
END_TEST

/* A job with a stand-in for haproxy: its exit status is the check's. */
static void
run_job(const char *binary, struct reload_result *r)
{
	struct reload_job *j;
	char *cause = NULL;

	j = reload_job_start(binary, "", "/nonexistent/dovetail.cfg",
	    "/nonexistent/master.sock", 1000, &cause);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_gt(reload_job_fd(j), 2);
	ck_assert_int_gt(reload_job_deadline(j), mono_ms());
	reload_job_wait(j, r);
	/* Ended: polling again says nothing new. */
	ck_assert_int_eq(reload_job_poll(j, mono_ms(), NULL), 0);
	reload_job_free(j);
}

START_TEST(test_reload_job)
{
	struct reload_result r;

	run_job("/bin/false", &r);
	ck_assert_int_eq(r.outcome, RELOAD_REFUSED);
	ck_assert_ptr_nonnull(strstr(r.cause, "refused"));
	reload_result_free(&r);
	run_job("/nonexistent/haproxy", &r);
	ck_assert_int_eq(r.outcome, RELOAD_CHECK_FAILED);
	ck_assert_str_eq(r.cause, "cannot run /nonexistent/haproxy");
	ck_assert_ptr_nonnull(strstr(r.output.data, "cannot run"));
	reload_result_free(&r);
	/* Checked; then no master to reload. */
	run_job("/bin/true", &r);
	ck_assert_int_eq(r.outcome, RELOAD_FAILED);
	ck_assert_ptr_nonnull(strstr(r.cause, "/nonexistent/master.sock"));
	reload_result_free(&r);
	/* A job freed while it runs is killed with its check. */
	{
		struct reload_job *j;
		char script[] = "/tmp/dovetail-check-XXXXXX", pidfile[64],
		    *cause = NULL, *stat;
		struct buf b;
		long pid;
		int fd, gone = 0, tries;

		fd = mkstemp(script);
		ck_assert_int_ne(fd, -1);
		snprintf(pidfile, sizeof(pidfile), "%s.pid", script);
		ck_assert_int_gt(dprintf(fd, "#!/bin/sh\necho $$ > %s.tmp && "
		    "mv %s.tmp %s\nexec sleep 600\n", pidfile, pidfile,
		    pidfile), 0);
		ck_assert_int_eq(fchmod(fd, 0700), 0);
		close(fd);
		j = reload_job_start(script, "", "x", "/nonexistent", 1000,
		    &cause);
		ck_assert_ptr_nonnull(j);
		buf_init(&b);
		for (tries = 0; tries < 1000; tries++) {
			buf_reset(&b);
			if (file_read(pidfile, &b, &cause) == 0 && b.len > 0)
				break;
			free(cause);
			cause = NULL;
			poll(NULL, 0, 10);
		}
		ck_assert_uint_gt(b.len, 0);
		pid = strtol(b.data, NULL, 10);
		ck_assert_int_eq(reload_job_poll(j, mono_ms(), &r), 0);
		/* Stopped in its check: it says so. */
		reload_job_stop(j, &r);
		ck_assert_int_eq(r.outcome, RELOAD_CHECK_FAILED);
		ck_assert_str_eq(r.cause, "the check was stopped");
		reload_result_free(&r);
		reload_job_free(j);
		/* Killed: gone, or a zombie for init to reap. */
		for (tries = 0; tries < 1000 && !gone; tries++) {
			stat = xasprintf("/proc/%ld/stat", pid);
			buf_reset(&b);
			if (file_read(stat, &b, &cause) == -1) {
				free(cause);
				gone = 1;
			} else if (strstr(b.data, ") Z ") != NULL)
				gone = 1;
			else
				poll(NULL, 0, 10);
			free(stat);
		}
		ck_assert_int_eq(gone, 1);
		buf_free(&b);
		unlink(pidfile);
		unlink(script);
	}
}
END_TEST

/* Replies are read one object at a time: the array's own syntax. */
/* Services and tasks as Docker's JSON, for swarm_service_change. */
static struct swarm *
swarm_of(const char *services, const char *tasks)
{
	struct swarm *sw = swarm_new();
	char *cause;

	ck_assert_int_eq(swarm_parse_services(sw, services, strlen(services),
	    &cause), 0);
	ck_assert_int_eq(swarm_parse_tasks(sw, tasks, strlen(tasks), &cause),
	    0);
	return sw;
}

#define SVC(id, host) "{\"ID\":\"" id "\",\"Spec\":{\"Name\":\"n" id "\"," \
	"\"Labels\":{\"com.docker.lb.hosts\":\"" host "\"},\"Mode\":" \
	"{\"Replicated\":{\"Replicas\":2}}}}"
#define TASK(id, svc, state) "{\"ID\":\"" id "\",\"ServiceID\":\"" svc \
	"\",\"NodeID\":\"n1\",\"Status\":{\"State\":\"" state "\"}," \
	"\"DesiredState\":\"running\"}"

START_TEST(test_swarm_service_change)
{
	struct swarm *sw, *fresh;
	size_t first, end;

	sw = swarm_of("[" SVC("a1", "a") "," SVC("c3", "c") "," SVC("b2", "b")
	    "]", "[" TASK("tc", "c3", "running") "," TASK("tb2", "b2",
	    "running") "," TASK("ta", "a1", "running") "," TASK("tb1", "b2",
	    "running") "]");
	swarm_task_range(sw, "b2", &first, &end);
	ck_assert_uint_eq(first, 1);
	ck_assert_uint_eq(end, 3);
	swarm_task_range(sw, "zz", &first, &end);
	ck_assert_uint_eq(first, end);

	/* The same read again: nothing changed. */
	fresh = swarm_of("[" SVC("b2", "b") "]", "[" TASK("tb1", "b2",
	    "running") "," TASK("tb2", "b2", "running") "]");
	ck_assert_int_eq(swarm_service_change(sw, "b2", fresh), SWARM_SAME);
	swarm_free(fresh);
	/* A task stops, another starts: its tasks only. */
	fresh = swarm_of("[" SVC("b2", "b") "]", "[" TASK("tb3", "b2",
	    "running") "," TASK("tb1", "b2", "shutdown") "," TASK("tc", "c3",
	    "running") "]");
	ck_assert_int_eq(swarm_service_change(sw, "b2", fresh), SWARM_TASKS);
	swarm_replace_service(sw, "b2", fresh);
	swarm_free(fresh);
	/* Spliced in order; c3's task, matched by a name, not taken twice. */
	ck_assert_uint_eq(sw->ntasks, 4);
	ck_assert_str_eq(sw->tasks[0].id, "ta");
	ck_assert_str_eq(sw->tasks[1].id, "tb1");
	ck_assert_int_eq(sw->tasks[1].state, TASK_DONE);
	ck_assert_str_eq(sw->tasks[2].id, "tb3");
	ck_assert_str_eq(sw->tasks[3].id, "tc");
	ck_assert_uint_eq(sw->nservices, 3);
	ck_assert_str_eq(sw->services[1].id, "b2");
	/* A scale, the tasks not made yet: the count is taken in. */
	fresh = swarm_of("[{\"ID\":\"b2\",\"Spec\":{\"Name\":\"nb2\","
	    "\"Labels\":{\"com.docker.lb.hosts\":\"b\"},\"Mode\":"
	    "{\"Replicated\":{\"Replicas\":5}}}}]", "[" TASK("tb3", "b2",
	    "running") "," TASK("tb1", "b2", "shutdown") "]");
	ck_assert_int_eq(swarm_service_change(sw, "b2", fresh), SWARM_TASKS);
	swarm_free(fresh);
	/* A label changed: the service. */
	fresh = swarm_of("[" SVC("b2", "b2") "]", "[" TASK("tb3", "b2",
	    "running") "," TASK("tb1", "b2", "shutdown") "]");
	ck_assert_int_eq(swarm_service_change(sw, "b2", fresh),
	    SWARM_SERVICE);
	swarm_free(fresh);
	/* A new service goes in its place among the others. */
	fresh = swarm_of("[" SVC("b0", "b0") "]", "[" TASK("t0", "b0",
	    "running") "]");
	ck_assert_int_eq(swarm_service_change(sw, "b0", fresh),
	    SWARM_SERVICE);
	swarm_replace_service(sw, "b0", fresh);
	swarm_free(fresh);
	ck_assert_uint_eq(sw->nservices, 4);
	ck_assert_str_eq(sw->services[0].id, "a1");
	ck_assert_str_eq(sw->services[1].id, "b0");
	ck_assert_str_eq(sw->services[2].id, "b2");
	ck_assert_str_eq(sw->tasks[1].id, "t0");
	/* Gone: the service; one never seen and gone: nothing. */
	fresh = swarm_new();
	ck_assert_int_eq(swarm_service_change(sw, "b2", fresh),
	    SWARM_SERVICE);
	ck_assert_int_eq(swarm_service_change(sw, "zz", fresh), SWARM_SAME);
	swarm_replace_service(sw, "b2", fresh);
	swarm_free(fresh);
	ck_assert_uint_eq(sw->nservices, 3);
	ck_assert_uint_eq(sw->ntasks, 3);
	ck_assert_ptr_null(swarm_service(sw, "b2"));
	ck_assert_str_eq(sw->tasks[0].id, "ta");
	ck_assert_str_eq(sw->tasks[1].id, "t0");
	ck_assert_str_eq(sw->tasks[2].id, "tc");
	swarm_free(sw);
}
END_TEST

START_TEST(test_parse_array_stream)
{
	struct swarm *sw = swarm_new();
	char *cause;
	const char *task = "{\"ID\":\"t%d\",\"ServiceID\":\"s\","
	    "\"Status\":{\"State\":\"running\",\"Message\":\"}]\\\"{[\"},"
	    "\"DesiredState\":\"running\"}";
	char *two = xasprintf("\n [ %s ,\n\t%s ] \n", task, task);
	static const struct {
		const char *text;
		const char *cause;
	} bad[] = {
		{ "", "bad JSON at line 1: empty reply" },
		{ "{}", "expected a JSON array" },
		{ "[1]", "expected a JSON array of objects" },
		{ "[{},]", "expected a JSON array of objects" },
		{ "[{}", "bad JSON at line 1: the array is cut short" },
		{ "[{} {}]", "bad JSON at line 1: ',' or ']' expected in the "
		    "array" },
		{ "[{}]\n x", "bad JSON at line 2: end of file expected" },
		{ "[{},\n\n{\"a\":tru}]", NULL },
	};
	size_t i;

	ck_assert_int_eq(swarm_parse_tasks(sw, " [ ] ", 5, &cause), 0);
	ck_assert_uint_eq(sw->ntasks, 0);
	/* Braces and brackets inside strings are not the array's. */
	ck_assert_int_eq(swarm_parse_tasks(sw, two, strlen(two), &cause), 0);
	ck_assert_uint_eq(sw->ntasks, 2);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(swarm_parse_tasks(sw, bad[i].text,
		    strlen(bad[i].text), &cause), -1);
		if (bad[i].cause != NULL)
			ck_assert_str_eq(cause, bad[i].cause);
		else
			/* jansson's reason, at the line in the reply. */
			ck_assert_msg(strncmp(cause, "bad JSON at line 3:", 19) ==
			    0, "%s", cause);
		free(cause);
		/* A refused reply leaves the model as it was. */
		ck_assert_uint_eq(sw->ntasks, 2);
	}
	free(two);
	/* Parsed elements are freed when a later one is bad (ASan, valgrind). */
	two = xasprintf("[%s,%s,{\"ID\":\"x\",}]", task, task);
	ck_assert_int_eq(swarm_parse_tasks(sw, two, strlen(two), &cause), -1);
	free(cause);
	free(two);
	swarm_free(sw);
}
END_TEST

START_TEST(test_audit_delay)
{
	/* Small swarms: audit_interval. */
	ck_assert_int_eq(swarm_audit_delay_ms(0, 30000, 8), 30000);
	ck_assert_int_eq(swarm_audit_delay_ms(200 * 1024, 30000, 8), 30000);
	/* 12 MB at 8 KB/s: every 1,536 s; at 64 KB/s: 192 s. */
	ck_assert_int_eq(swarm_audit_delay_ms(12 * 1024 * 1024, 30000, 8),
	    1536000);
	ck_assert_int_eq(swarm_audit_delay_ms(12 * 1024 * 1024, 30000, 64),
	    192000);
	/* An hour at the longest, whatever the size. */
	ck_assert_int_eq(swarm_audit_delay_ms((size_t)1 << 40, 30000, 1),
	    SWARM_AUDIT_MAX_MS);
}
END_TEST

START_TEST(test_plan_drop_tls)
{
	struct plan p;
	static const enum cmd_kind kinds[] = { CMD_ADD_SERVER, CMD_CERT_NEW,
	    CMD_CERT_SET, CMD_MAP_ADD, CMD_CERT_COMMIT, CMD_CERT_DEL,
	    CMD_CRT_LIST_ADD, CMD_CRT_LIST_DEL, CMD_DEL_SERVER };
	size_t i;

	memset(&p, 0, sizeof(p));
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		plan_add(&p, kinds[i], xasprintf("cmd %zu", i),
		    xstrdup("what"));
	plan_drop_tls(&p);
	ck_assert_uint_eq(p.ncmds, 3);
	ck_assert_str_eq(p.cmds[0].text, "cmd 0");
	ck_assert_str_eq(p.cmds[1].text, "cmd 3");
	ck_assert_str_eq(p.cmds[2].text, "cmd 8");
	plan_free(&p);
}
END_TEST

START_TEST(test_add_server_twin)
{
	check_add_server_twin(0, -1);
	check_add_server_twin(0, 30);
	check_add_server_twin(1, -1);
}
END_TEST

/* The desired state of one swarm given as Docker's JSON (new). */
static struct desired *
desired_of_json(const char *services, const char *tasks, const char *nodes)
{
	struct swarm *sw = swarm_new();
	struct desired_opts o;
	struct desired *d;
	char *cause = NULL;

	memset(&o, 0, sizeof(o));
	o.prefix = "com.docker.lb";
	o.cluster = "";

	ck_assert_msg(swarm_parse_services(sw, services, strlen(services),
	    &cause) == 0, "%s", cause);
	ck_assert_msg(swarm_parse_tasks(sw, tasks, strlen(tasks), &cause) ==
	    0, "%s", cause);
	ck_assert_msg(swarm_parse_nodes(sw, nodes, strlen(nodes), &cause) ==
	    0, "%s", cause);
	d = desired_build(sw, &o);
	swarm_free(sw);
	return d;
}

/*
 * Found by fuzz_pipeline: addresses and the service id (a vip server's
 * name) went from Docker's JSON into the file and "add server" as they
 * were, so "10.0.0.5;show info" made two runtime commands of one.
 */
START_TEST(test_docker_addresses)
{
	static const char svc[] = "[{\"ID\":\"s1\",\"Spec\":{\"Name\":"
	    "\"web\",\"Labels\":{\"com.docker.lb.hosts\":\"a.example\","
	    "\"com.docker.lb.port\":\"80\"}}}]";
	static const char task_net[] = "[{\"ID\":\"t1\",\"ServiceID\":"
	    "\"s1\",\"DesiredState\":\"running\",\"Status\":{\"State\":"
	    "\"running\"},\"NetworksAttachments\":[{\"Network\":{\"ID\":"
	    "\"n1\",\"Spec\":{\"Name\":\"front\"}},\"Addresses\":["
	    "\"10.0.0.5;show info/24\"]}]}]";
	static const char task_host[] = "[{\"ID\":\"t1\",\"ServiceID\":"
	    "\"s1\",\"NodeID\":\"nd\",\"DesiredState\":\"running\","
	    "\"Status\":{\"State\":\"running\",\"PortStatus\":{\"Ports\":"
	    "[{\"PublishMode\":\"host\",\"TargetPort\":80,"
	    "\"PublishedPort\":8080}]}}}]";
	static const char node[] = "[{\"ID\":\"nd\",\"Status\":{\"Addr\":"
	    "\"1.2.3.4 backup\"}}]";
	static const char vip[] = "[{\"ID\":\"s1;show info\",\"Spec\":{"
	    "\"Name\":\"web\",\"Labels\":{\"com.docker.lb.hosts\":"
	    "\"a.example\",\"com.docker.lb.port\":\"80\","
	    "\"com.docker.lb.backend_mode\":\"vip\"}},\"Endpoint\":{"
	    "\"VirtualIPs\":[{\"NetworkID\":\"n1\",\"Addr\":"
	    "\"10.0.0.9/24\"}]}}]";
	struct desired *d;

	d = desired_of_json(svc, task_net, "[]");
	ck_assert_uint_eq(d->nbackends, 1);
	ck_assert_uint_eq(d->backends[0].nservers, 0);
	desired_free(d);
	d = desired_of_json(svc, task_host, node);
	ck_assert_uint_eq(d->nbackends, 1);
	ck_assert_uint_eq(d->backends[0].nservers, 0);
	desired_free(d);
	d = desired_of_json(vip, "[]", "[]");
	ck_assert_uint_eq(d->nbackends, 0);
	ck_assert_uint_eq(d->nproblems, 1);
	desired_free(d);
}
END_TEST

START_TEST(test_default_server_line)
{
	ck_assert_uint_eq(render_default_server_line(""), 0);
	ck_assert_uint_eq(render_default_server_line("global\n\tmaxconn 10\n"
	    "defaults\n\tmode http\n"), 0);
	ck_assert_uint_eq(render_default_server_line("global\n# default-server "
	    "x\ndefaults\n  default-server check\n"), 4);
	ck_assert_uint_eq(render_default_server_line("default-server\n"), 1);
	ck_assert_uint_eq(render_default_server_line("\tdefault-servers x\n"),
	    0);
}
END_TEST

/* notify_send() against a datagram socket standing in for systemd. */
static void
notify_roundtrip(const char *name, int abstract)
{
	struct sockaddr_un sun;
	char got[256], env[120];
	socklen_t len;
	ssize_t n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s%s",
	    abstract ? "@" : "", name);
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
	    strlen(sun.sun_path) + (abstract ? 0 : 1));
	snprintf(env, sizeof(env), "%s", sun.sun_path);
	if (abstract)
		sun.sun_path[0] = '\0';
	else
		unlink(name);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, len), 0);
	setenv("NOTIFY_SOCKET", env, 1);
	ck_assert_int_eq(notify_send("READY=1\nSTATUS=testing"), 0);
	n = recv(fd, got, sizeof(got) - 1, 0);
	ck_assert_int_gt(n, 0);
	got[n] = '\0';
	ck_assert_str_eq(got, "READY=1\nSTATUS=testing");
	ck_assert_int_eq(notify_reloading(), 0);
	n = recv(fd, got, sizeof(got) - 1, 0);
	ck_assert_int_gt(n, 0);
	got[n] = '\0';
	ck_assert_msg(strncmp(got, "RELOADING=1\nMONOTONIC_USEC=", 27) == 0,
	    "got \"%s\"", got);
	unsetenv("NOTIFY_SOCKET");
	close(fd);
	if (!abstract)
		unlink(name);
}

START_TEST(test_notify)
{
	char path[64];

	snprintf(path, sizeof(path), "/tmp/dovetail-notify-%ld",
	    (long)getpid());
	notify_roundtrip(path, 0);
	notify_roundtrip(path + 5, 1);
	/* Without NOTIFY_SOCKET nothing is sent and nothing fails. */
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(notify_send("READY=1"), 0);
}
END_TEST

START_TEST(test_metrics_render)
{
	struct metrics m;
	struct buf b;

	memset(&m, 0, sizeof(m));
	m.reloads_ok = 3;
	m.runtime_failed = 2;
	m.servers = 7;
	metrics_observe_lag(&m, 0.07);
	metrics_observe_lag(&m, 3.0);
	buf_init(&b);
	metrics_render(&b, &m);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_reloads_total{result=\"ok\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_runtime_commands_total{result=\"failed\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data, "\ndovetail_servers 7\n"));
	/* Buckets are cumulative. */
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_convergence_seconds_bucket{le=\"0.05\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_convergence_seconds_bucket{le=\"0.1\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_convergence_seconds_bucket{le=\"5\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_convergence_seconds_bucket{le=\"+Inf\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_convergence_seconds_count 2\n"));
	buf_free(&b);
}
END_TEST

START_TEST(test_health_render)
{
	static const char *const haproxy_error = "haproxy: \"x\"\n\xff";
	const char *file_error;
	struct metrics m;
	struct buf b;
	char **refused;
	size_t i, nrefused;
	int ok;

	memset(&m, 0, sizeof(m));
	buf_init(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 0);	/* never reached */
	m.docker_ok_ms = 9000;
	m.haproxy_ok_ms = 8000;
	buf_reset(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 1);
	ck_assert_ptr_nonnull(strstr(b.data, "\"status\":\"ok\""));
	m.haproxy_ok_ms = 5000;
	m.haproxy_error = &haproxy_error;
	buf_reset(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"docker\":{\"ok\":true"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "\"error\":\"haproxy: \\\"x\\\"\\u000a?\""));
	ck_assert_ptr_nonnull(strstr(b.data, "\"refused\":{\"services\":0,"
	    "\"host_owner\":0,\"haproxy\":0,\"warnings\":[]}"));
	/* Refused services are listed, and do not make it unhealthy. */
	refused = xcalloc(25, sizeof(char *));
	for (i = 0; i < 25; i++)
		refused[i] = xasprintf("service s%02zu: \"why\"", i);
	nrefused = 25;
	m.refused = &refused;
	m.nrefused = &nrefused;
	m.problems = 25;
	m.refused_owner = 3;
	m.refused_haproxy = 2;
	m.haproxy_ok_ms = 9000;
	buf_reset(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 1);
	ck_assert_ptr_nonnull(strstr(b.data, "\"refused\":{\"services\":25,"
	    "\"host_owner\":3,\"haproxy\":2,\"warnings\":[\"service s00: "
	    "\\\"why\\\"\","));
	ck_assert_ptr_nonnull(strstr(b.data, "s19"));
	ck_assert_ptr_null(strstr(b.data, "s20"));
	buf_reset(&b);
	metrics_render(&b, &m);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_refused_services{reason=\"label\"} 20\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_refused_services{reason=\"haproxy\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_refused_services{reason=\"host_owner\"} 3\n"));
	/* Files written: fine; one that could not be: unhealthy. */
	file_error = NULL;
	m.file_error = &file_error;
	buf_reset(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 1);
	ck_assert_ptr_nonnull(strstr(b.data, "\"files\":{\"ok\":true,"
	    "\"error\":null}"));
	file_error = "files: /x: No space left on device";
	m.file_errors = 4;
	buf_reset(&b);
	health_render(&b, &m, 10000, 0, 4000, &ok);
	ck_assert_int_eq(ok, 0);
	ck_assert_ptr_nonnull(strstr(b.data, "\"files\":{\"ok\":false,"
	    "\"error\":\"files: /x: No space left on device\"}"));
	buf_reset(&b);
	metrics_render(&b, &m);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_file_errors_total 4\n"));
	for (i = 0; i < 25; i++)
		free(refused[i]);
	free(refused);
	buf_free(&b);
}
END_TEST

/* Certificates: when each expires, and /healthz names the ones soon. */
START_TEST(test_metrics_certs)
{
	const long long now = 1700000000;
	struct dcert dc[3];
	struct desired d;
	const struct desired *dp = &d;
	struct metrics m;
	struct buf b;
	int ok;

	memset(dc, 0, sizeof(dc));
	dc[0].file = "svc-a.pem";
	dc[0].service = "a\"\\\n";
	dc[0].info.parsed = 1;
	dc[0].info.not_after = now + 3 * 86400 + 5;
	dc[1].file = "svc-b.pem";
	dc[1].service = "b";
	dc[1].info.parsed = 1;
	dc[1].info.not_after = now + 300 * 86400;
	dc[2].file = "svc-c.pem";
	dc[2].service = "c";
	memset(&d, 0, sizeof(d));
	d.certs = dc;
	d.ncerts = 3;
	memset(&m, 0, sizeof(m));
	buf_init(&b);
	/* Before the first desired state: the family, and no sample. */
	metrics_render(&b, &m);
	ck_assert_ptr_nonnull(strstr(b.data, "# TYPE "
	    "dovetail_certificate_expiry_timestamp_seconds gauge\n"));
	ck_assert_ptr_null(strstr(b.data, "{service="));
	health_render(&b, &m, 10000, now, 4000, &ok);
	ck_assert_ptr_nonnull(strstr(b.data, "\"certificates\":{\"served\":0,"
	    "\"warn_days\":0,\"expiring\":[]}"));
	buf_reset(&b);
	m.desired = &dp;
	m.cert_warn_days = 14;
	metrics_render(&b, &m);
	ck_assert_ptr_nonnull(strstr(b.data,
	    "dovetail_certificate_expiry_timestamp_seconds{service=\"a\\\"\\\\"
	    "\\n\",file=\"svc-a.pem\"} 1700259205\n"
	    "dovetail_certificate_expiry_timestamp_seconds{service=\"b\","
	    "file=\"svc-b.pem\"} 1725920000\n"));
	/* One not read has no sample. */
	ck_assert_ptr_null(strstr(b.data, "svc-c.pem"));
	buf_reset(&b);
	m.docker_ok_ms = m.haproxy_ok_ms = 9000;
	health_render(&b, &m, 10000, now, 4000, &ok);
	ck_assert_int_eq(ok, 1);
	ck_assert_ptr_nonnull(strstr(b.data, "\"certificates\":{\"served\":3,"
	    "\"warn_days\":14,\"expiring\":[{\"service\":\"a\\\"\\\\"
	    "\\u000a\",\"file\":\"svc-a.pem\",\"days_left\":3,\"expired\":"
	    "false}]}"));
	/* Expired: listed, and still healthy. */
	buf_reset(&b);
	dc[1].info.not_after = now - 1;
	health_render(&b, &m, 10000, now, 4000, &ok);
	ck_assert_int_eq(ok, 1);
	ck_assert_ptr_nonnull(strstr(b.data, "{\"service\":\"b\",\"file\":"
	    "\"svc-b.pem\",\"days_left\":-1,\"expired\":true}]}"));
	buf_free(&b);
}
END_TEST

START_TEST(test_escape)
{
	ck_assert_str_eq(esc("a\nb\"c\\\x01"), "a\\nb\\\"c\\\\\\x01");
	ck_assert_str_eq(esc(NULL), "(null)");
	ck_assert_str_eq(esc(""), "");
}
END_TEST

/* ---- tenancy ---- */

START_TEST(test_sortable_time)
{
	char *t;

	t = swarm_sortable_time("2026-11-30T10:11:12.5Z");
	ck_assert_str_eq(t, "2026-11-30T10:11:12.500000000");
	free(t);
	t = swarm_sortable_time("2026-11-30T10:11:12Z");
	ck_assert_str_eq(t, "2026-11-30T10:11:12.000000000");
	free(t);
	/* Beyond nanoseconds is cut, not rounded. */
	t = swarm_sortable_time("2026-11-30T10:11:12.1234567891Z");
	ck_assert_str_eq(t, "2026-11-30T10:11:12.123456789");
	free(t);
	/* ".5" is after ".45", which a plain string compare gets wrong. */
	ck_assert(strcmp("2026-11-30T10:11:12.5Z",
	    "2026-11-30T10:11:12.45Z") > 0);
	ck_assert_ptr_null(swarm_sortable_time("2026-11-30T10:11:12+01:00"));
	ck_assert_ptr_null(swarm_sortable_time("2026-11-30 10:11:12Z"));
	ck_assert_ptr_null(swarm_sortable_time("2026-11-30T10:11:12.Z"));
	ck_assert_ptr_null(swarm_sortable_time("yesterday"));
	ck_assert_ptr_null(swarm_sortable_time(NULL));
}
END_TEST

/* A service of a stack (NULL: none), created at t, asking for hosts. */
struct tsvc {
	struct service svc;
	struct kv label;
	struct route_spec spec;
	char *hosts[2];
};

static void
tsvc_init(struct tsvc *t, const char *name, const char *stack,
    const char *created, const char *host)
{
	memset(t, 0, sizeof(*t));
	t->svc.name = (char *)name;
	t->svc.created = (char *)created;
	if (stack != NULL) {
		t->label.key = (char *)"com.docker.stack.namespace";
		t->label.value = (char *)stack;
		t->svc.labels = &t->label;
		t->svc.nlabels = 1;
	}
	t->hosts[0] = (char *)host;
	t->spec.hosts = t->hosts;
	t->spec.nhosts = 1;
}

static void
decide(struct tsvc *v, size_t n, struct tenant *out,
    const struct tenancy_opts *o)
{
	size_t i;

	for (i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		out[i].svc = &v[i].svc;
		out[i].spec = &v[i].spec;
	}
	tenancy_decide(out, n, o);
}

/* The secrets a service may use as its certificate, from Docker's JSON. */
START_TEST(test_tenancy_secrets)
{
	const char *services = "["
	    "{\"ID\":\"a\",\"Spec\":{\"Name\":\"a_web\",\"Labels\":"
	    "{\"com.docker.stack.namespace\":\"a\"},\"TaskTemplate\":"
	    "{\"ContainerSpec\":{\"Secrets\":[{\"SecretName\":\"z\"},"
	    "{\"SecretName\":\"plain\"},{\"SecretID\":\"no-name\"}]}}}},"
	    "{\"ID\":\"b\",\"Spec\":{\"Name\":\"b_web\",\"Labels\":"
	    "{\"com.docker.stack.namespace\":\"b\"}}},"
	    "{\"ID\":\"c\",\"Spec\":{\"Name\":\"loose\"}}]";
	const char *secrets = "["
	    "{\"ID\":\"1\",\"Spec\":{\"Name\":\"a_cert\",\"Labels\":"
	    "{\"com.docker.stack.namespace\":\"a\"}}},"
	    "{\"ID\":\"2\",\"Spec\":{\"Name\":\"plain\",\"Labels\":{}}},"
	    "{\"ID\":\"3\",\"Spec\":{\"Name\":\"empty\",\"Labels\":"
	    "{\"com.docker.stack.namespace\":\"\"}}},"
	    "{\"ID\":\"4\",\"Spec\":{\"Labels\":{}}}]";
	struct swarm *sw = swarm_new();
	const struct service *a, *b, *loose;
	char *cause = NULL, *why;

	ck_assert_int_eq(swarm_parse_services(sw, services, strlen(services),
	    &cause), 0);
	ck_assert_int_eq(swarm_parse_secrets(sw, secrets, strlen(secrets),
	    &cause), 0);
	ck_assert_uint_eq(sw->nsecrets, 3);	/* the nameless one dropped */
	ck_assert_str_eq(sw->secrets[0].name, "a_cert");
	ck_assert_str_eq(sw->secrets[0].stack, "a");
	ck_assert_ptr_null(swarm_secret(sw, "empty")->stack);
	ck_assert_ptr_null(swarm_secret(sw, "nope"));
	a = swarm_service(sw, "a");
	b = swarm_service(sw, "b");
	loose = swarm_service(sw, "c");
	ck_assert_uint_eq(a->nsecrets, 2);
	ck_assert_str_eq(a->secrets[0], "plain");	/* sorted */
	ck_assert(service_has_secret(a, "z"));
	ck_assert(!service_has_secret(b, "z"));

	/* Its own stack's, or one it is given. */
	ck_assert_ptr_null(tenancy_secret_refused(sw, a, "a_cert", 0));
	ck_assert_ptr_null(tenancy_secret_refused(sw, a, "plain", 1));
	ck_assert_ptr_null(tenancy_secret_refused(sw, a, "z", 1));
	/* Another stack's: refused to every other service. */
	why = tenancy_secret_refused(sw, b, "a_cert", 0);
	ck_assert_str_eq(why, "the secret \"a_cert\" belongs to stack \"a\": "
	    "only its services, or a service given the secret (--secret "
	    "a_cert), may use it");
	free(why);
	why = tenancy_secret_refused(sw, loose, "a_cert", 0);
	ck_assert_ptr_nonnull(why);
	free(why);
	/* No stack: shared by services of no stack, unless strict. */
	ck_assert_ptr_null(tenancy_secret_refused(sw, loose, "plain", 0));
	ck_assert_ptr_null(tenancy_secret_refused(sw, loose, "a-file", 0));
	why = tenancy_secret_refused(sw, b, "plain", 0);
	ck_assert_ptr_nonnull(strstr(why, "belongs to no stack"));
	free(why);
	why = tenancy_secret_refused(sw, loose, "plain", 1);
	ck_assert_ptr_nonnull(strstr(why, "strict tenancy"));
	free(why);
	swarm_free(sw);
}
END_TEST

START_TEST(test_tenancy_rules)
{
	struct host_pin pins[] = {
		{ (char *)"*.team-a.example", (char *)"team-a" },
		{ (char *)"open.team-a.example", (char *)"team-b" },
	};
	struct tenancy_opts open = { 0, NULL, 0 }, strict = { 1, NULL, 0 },
	    pinned = { 0, pins, 2 };
	struct tsvc v[4];
	struct tenant t[4];
	size_t i;

	/* Created later but named first: the later one is refused. */
	tsvc_init(&v[0], "zz-owner", "a", "2026-01-01T00:00:00.000000002",
	    "h.test");
	tsvc_init(&v[1], "00-thief", "b", "2026-01-01T00:00:00.000000003",
	    "h.test");
	/* Same stack: shared, as a canary. */
	tsvc_init(&v[2], "canary", "a", "2026-01-02T00:00:00.000000000",
	    "h.test");
	/* No stack, no time: after every timed service. */
	tsvc_init(&v[3], "loose", NULL, NULL, "h.test");
	decide(v, 4, t, &open);
	ck_assert_int_eq(t[0].refused, 0);
	ck_assert_int_eq(t[1].refused, 1);
	ck_assert_str_eq(t[1].label, "hosts");
	ck_assert_str_eq(t[1].message, "host h.test belongs to service "
	    "zz-owner (stack a), created before it");
	ck_assert_int_eq(t[2].refused, 0);
	ck_assert_int_eq(t[3].refused, 1);
	for (i = 0; i < 4; i++)
		free(t[i].message);

	/* The owner refused for another reason: the next one owns. */
	decide(v, 2, t, &open);
	free(t[1].message);
	t[0].refused = 1;
	t[1].refused = 0;
	t[1].message = NULL;
	tenancy_decide(t, 2, &open);
	ck_assert_int_eq(t[1].refused, 0);

	/* Services of no stack share, unless strict. */
	tsvc_init(&v[0], "one", NULL, "2026-01-01T00:00:00.000000000",
	    "s.test");
	tsvc_init(&v[1], "two", NULL, "2026-01-01T00:00:01.000000000",
	    "s.test");
	decide(v, 2, t, &open);
	ck_assert_int_eq(t[1].refused, 0);
	decide(v, 2, t, &strict);
	ck_assert_int_eq(t[0].refused, 0);
	ck_assert_int_eq(t[1].refused, 1);
	ck_assert_str_eq(t[1].message, "host s.test belongs to service one "
	    "(no stack), created before it");
	free(t[1].message);

	/* Pins: the longest pattern decides, whoever came first. */
	tsvc_init(&v[0], "b-first", "team-b", "2026-01-01T00:00:00.000000000",
	    "x.team-a.example");
	tsvc_init(&v[1], "a-later", "team-a", "2026-01-02T00:00:00.000000000",
	    "x.team-a.example");
	tsvc_init(&v[2], "b-open", "team-b", "2026-01-02T00:00:00.000000000",
	    "open.team-a.example");
	tsvc_init(&v[3], "nostack", NULL, "2026-01-02T00:00:00.000000000",
	    "deep.x.team-a.example");
	decide(v, 4, t, &pinned);
	ck_assert_int_eq(t[0].refused, 1);
	ck_assert_str_eq(t[0].message, "host x.team-a.example is reserved "
	    "for stack team-a by the configuration (*.team-a.example)");
	ck_assert_int_eq(t[1].refused, 0);
	ck_assert_int_eq(t[2].refused, 0);
	ck_assert_int_eq(t[3].refused, 1);
	free(t[0].message);
	free(t[3].message);
	/* The domain itself is not below it. */
	tsvc_init(&v[0], "apex", "team-b", NULL, "team-a.example");
	decide(v, 1, t, &pinned);
	ck_assert_int_eq(t[0].refused, 0);
}
END_TEST

/*
 * Every configuration key is in the example file (haproxy/dovetail.conf,
 * with its default), in dovetail.conf(5) and, as its option, in
 * dovetail(8); nothing in the example is not a key: they stay true
 * together.
 */
START_TEST(test_config_documented)
{
	char *top, *path, *cause = NULL, *line, *want, *other, *p;
	struct buf conf, man, man8;
	struct config *c = config_new();
	const char *section = "";
	size_t i;

	top = xasprintf("%s/../..", test_data_dir());
	path = xasprintf("%s/haproxy/dovetail.conf", top);
	buf_init(&conf);
	ck_assert_msg(file_read(path, &conf, &cause) == 0, "%s", cause);
	free(path);
	path = xasprintf("%s/man/dovetail.conf.5", top);
	buf_init(&man);
	ck_assert_msg(file_read(path, &man, &cause) == 0, "%s", cause);
	free(path);
	path = xasprintf("%s/man/dovetail.8", top);
	buf_init(&man8);
	ck_assert_msg(file_read(path, &man8, &cause) == 0, "%s", cause);
	free(path);
	for (i = 0; i < config_nkeys; i++) {
		/* "key = default", or for an empty one "key =" or ";key = x". */
		want = xasprintf("\n%s =%s%s\n", config_keys[i].key,
		    *config_keys[i].def == '\0' ? "" : " ", config_keys[i].def);
		other = xasprintf("\n;%s = ", config_keys[i].key);
		ck_assert_msg(strstr(conf.data, want) != NULL ||
		    (*config_keys[i].def == '\0' &&
		    strstr(conf.data, other) != NULL),
		    "haproxy/dovetail.conf lacks \"%s = %s\"",
		    config_keys[i].key, config_keys[i].def);
		free(want);
		free(other);
		want = xasprintf(".It Ic %s No", config_keys[i].key);
		ck_assert_msg(strstr(man.data, want) != NULL,
		    "dovetail.conf(5) lacks %s", config_keys[i].key);
		free(want);
		want = xasprintf(".It Fl -%s Ar ", config_keys[i].option);
		ck_assert_msg(strstr(man8.data, want) != NULL,
		    "dovetail(8) lacks --%s", config_keys[i].option);
		free(want);
	}
	/* Each line of the example sets a known key. */
	for (line = strtok(conf.data, "\n"); line != NULL;
	    line = strtok(NULL, "\n")) {
		if (*line == ';' || *line == '\0')
			continue;
		if (*line == '[') {
			section = line + 1;
			if ((p = strchr(line, ']')) != NULL)
				*p = '\0';
			continue;
		}
		if ((p = strstr(line, " = ")) == NULL)
			continue;
		*p = '\0';
		ck_assert_msg(config_set(c, section, line, p + 3, &cause) == 0,
		    "haproxy/dovetail.conf: [%s] %s: %s", section, line,
		    cause);
	}
	config_free(c);
	buf_free(&conf);
	buf_free(&man);
	buf_free(&man8);
	free(top);
}
END_TEST

START_TEST(test_config_pins)
{
	struct config *c = config_new();
	char *cause = NULL;

	ck_assert_int_eq(config_set(c, "routing", "host_pins",
	    "*.A.example=team-a,api.example=team_b", &cause), 0);
	ck_assert_uint_eq(c->npins, 2);
	ck_assert_str_eq(c->pins[0].pattern, "*.a.example");
	ck_assert_str_eq(c->pins[0].stack, "team-a");
	ck_assert_str_eq(c->pins[1].pattern, "api.example");
	ck_assert_int_eq(config_set(c, "routing", "host_pins",
	    "*.a.example", &cause), -1);
	ck_assert_str_eq(cause, "host_pins item \"*.a.example\" is not "
	    "PATTERN=STACK (for example *.a.example.com=team-a)");
	free(cause);
	/* A bad value keeps the previous pins. */
	ck_assert_uint_eq(c->npins, 2);
	ck_assert_int_eq(config_set(c, "routing", "host_pins",
	    "a.*.example=x", &cause), -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "routing", "host_pins",
	    "a.example=x y", &cause), -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "routing", "host_pins",
	    "*.a.example=x,*.A.example=y", &cause), -1);
	ck_assert_str_eq(cause, "host_pins: \"*.a.example\" is pinned twice");
	free(cause);
	ck_assert_int_eq(config_set(c, "routing", "host_pins", "", &cause), 0);
	ck_assert_uint_eq(c->npins, 0);
	ck_assert_int_eq(config_set(c, "routing", "strict_tenancy", "yes",
	    &cause), -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "routing", "strict_tenancy", "true",
	    &cause), 0);
	ck_assert_int_eq(c->strict_tenancy, 1);
	ck_assert_uint_eq(c->docker_max_reply_mb, 256);
	ck_assert_int_eq(config_set(c, "docker", "max_reply", "64", &cause),
	    0);
	ck_assert_uint_eq(c->docker_max_reply_mb, 64);
	ck_assert_int_eq(config_set(c, "docker", "max_reply", "0", &cause),
	    -1);
	free(cause);
	ck_assert_int_eq(config_set(c, "docker", "max_reply", "1e3", &cause),
	    -1);
	ck_assert_str_eq(cause, "max_reply \"1e3\" is not a number of "
	    "megabytes from 1 to 65536");
	free(cause);
	ck_assert_uint_eq(c->docker_max_reply_mb, 64);
	config_free(c);
}
END_TEST

Suite *
suite_units(void)
{
	Suite *s = suite_create("units");
	TCase *tc;

	tc = tcase_create("config");
	tcase_add_test(tc, test_durations);
	tcase_add_test(tc, test_binds);
	tcase_add_test(tc, test_config_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("labels");
	tcase_add_test(tc, test_labels_good);
	tcase_add_test(tc, test_labels_cluster);
	tcase_add_loop_test(tc, test_labels_hostile, 0,
	    (int)(sizeof(hostile_values) / sizeof(hostile_values[0])));
	tcase_add_test(tc, test_labels_every_label);
	tcase_add_test(tc, test_labels_ws_limits);
	tcase_add_test(tc, test_labels_followed);
	tcase_add_test(tc, test_label_limits);
	tcase_add_test(tc, test_labels_many_hosts);
	tcase_add_test(tc, test_labels_combinations);
	tcase_add_test(tc, test_labels_redirect_to_itself);
	tcase_add_test(tc, test_tls_size);
	tcase_add_test(tc, test_labels_default_only);
	tcase_add_test(tc, test_tls_combine);
	tcase_add_test(tc, test_tls_cert_info);
	tcase_add_test(tc, test_tls_expiry);
	tcase_add_test(tc, test_label_paths_and_bools);
	tcase_add_test(tc, test_labels_long_host);
	tcase_add_test(tc, test_labels_missing_port);
	suite_add_tcase(s, tc);

	tc = tcase_create("swarm");
	tcase_add_test(tc, test_swarm_small_documents);
	tcase_add_test(tc, test_swarm_merge_services);
	tcase_add_test(tc, test_swarm_node_address);
	suite_add_tcase(s, tc);

	tc = tcase_create("tenancy");
	tcase_add_test(tc, test_sortable_time);
	tcase_add_test(tc, test_tenancy_rules);
	tcase_add_test(tc, test_tenancy_secrets);
	tcase_add_test(tc, test_config_pins);
	tcase_add_test(tc, test_config_documented);
	suite_add_tcase(s, tc);

	tc = tcase_create("haproxy");
	tcase_add_test(tc, test_hastate_servers);
	tcase_add_test(tc, test_lower_bound);
	tcase_add_test(tc, test_hash_bytes);
	tcase_add_test(tc, test_hastate_servers_digest);
	tcase_add_test(tc, test_reconcile_skip);
	tcase_add_test(tc, test_hastate_fallen);
	tcase_add_test(tc, test_name_valid);
	tcase_add_test(tc, test_hastate_reload_reply);
	tcase_add_test(tc, test_check_inter);
	tcase_add_test(tc, test_hastate_backends_and_map);
	tcase_add_test(tc, test_hastate_proc);
	tcase_add_test(tc, test_reply_classes);
	tcase_add_test(tc, test_skeleton);
	tcase_add_test(tc, test_skeleton_invariant);
	tcase_add_test(tc, test_add_server_twin);
	tcase_add_test(tc, test_render_backends);
	tcase_add_test(tc, test_running_keep_backends);
	tcase_add_test(tc, test_runtime_read_some_servers);
	tcase_add_test(tc, test_reload_report_parse);
	tcase_add_test(tc, test_reload_job);
	tcase_add_test(tc, test_parse_array_stream);
	tcase_add_test(tc, test_swarm_service_change);
	tcase_add_test(tc, test_audit_delay);
	tcase_add_test(tc, test_plan_drop_tls);
	tcase_add_test(tc, test_map_used);
	tcase_add_test(tc, test_hold);
	tcase_add_test(tc, test_check_refusal);
	tcase_add_test(tc, test_docker_addresses);
	tcase_add_test(tc, test_default_server_line);
	tcase_add_test(tc, test_escape);
	tcase_add_test(tc, test_notify);
	tcase_add_test(tc, test_metrics_render);
	tcase_add_test(tc, test_health_render);
	tcase_add_test(tc, test_metrics_certs);
	suite_add_tcase(s, tc);
	return s;
}
