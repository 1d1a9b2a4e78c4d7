/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of the status page: a snapshot rendered as HTML, with every
 * string from the swarm escaped, the empty state, refused services shown
 * first with their label and reason, certificates with days to expiry.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char *
render(const struct ctl_snapshot *sn)
{
	struct buf b;

	buf_init(&b);
	status_render(&b, sn);
	ck_assert_ptr_nonnull(b.data);
	return buf_steal(&b);
}

static void
has(const char *page, const char *want)
{
	if (strstr(page, want) == NULL)
		fprintf(stderr, "%s\n", page);
	ck_assert_msg(strstr(page, want) != NULL, "page lacks \"%s\"", want);
}

static void
lacks(const char *page, const char *bad)
{
	ck_assert_msg(strstr(page, bad) == NULL, "page has \"%s\"", bad);
}

/* Each opened tag of these kinds is closed, and nothing else opens one. */
static void
balanced(const char *page)
{
	static const char *const tags[] = { "table", "tr", "td", "th",
	    "code", "span", "ul", "li", "h2", "p", NULL };
	char open[16], close[16];
	const char *p;
	size_t i, nopen, nclose;

	for (i = 0; tags[i] != NULL; i++) {
		snprintf(open, sizeof(open), "<%s", tags[i]);
		snprintf(close, sizeof(close), "</%s>", tags[i]);
		nopen = nclose = 0;
		for (p = page; (p = strstr(p, open)) != NULL; p++)
			if (p[strlen(open)] == '>' || p[strlen(open)] == ' ')
				nopen++;
		for (p = page; (p = strstr(p, close)) != NULL; p++)
			nclose++;
		ck_assert_msg(nopen == nclose, "<%s>: %zu opened, %zu closed",
		    tags[i], nopen, nclose);
	}
	ck_assert_int_eq(strstr(page, "<script") == NULL, 1);
}

START_TEST(test_status_empty)
{
	struct ctl_snapshot sn;
	char *page;

	memset(&sn, 0, sizeof(sn));
	sn.now = 1700000000;
	page = render(&sn);
	ck_assert_int_eq(strncmp(page, "<!DOCTYPE html>\n", 16), 0);
	has(page, "<meta charset=\"utf-8\">");
	has(page, "<meta name=\"viewport\" content=\"width=device-width, "
	    "initial-scale=1\">");
	has(page, "<style>");
	has(page, "@media (max-width:700px)");
	has(page, "As of 2023-11-14T22:13:20Z.");
	has(page, "dovetail has not applied the swarm yet.");
	has(page, "Routes (0)");
	has(page, "No route.");
	has(page, "No labelled service.");
	has(page, "No certificate.");
	has(page, "No reload since dovetail started.");
	/* Nothing from elsewhere: no script, no link, no image. */
	lacks(page, "<script");
	lacks(page, "<link");
	lacks(page, "<img");
	lacks(page, "src=");
	lacks(page, "http://");
	lacks(page, "https://");
	balanced(page);
	ck_assert_int_eq(strcmp(page + strlen(page) - 15, "</body></html>\n"),
	    0);
	free(page);
}
END_TEST

static const struct ctl_server_row rows[] = {
	{ "t1", "node-1", "10.0.0.5:80", "UP" },
	{ "t2", NULL, "10.0.0.6:80", "DOWN" },
};
static struct ctl_route routes[] = {
	{ "a.example/", "http", "svc-web", "web", rows, 2 },
	{ "b.example", "passthrough", "tlssvc-tls", "tls", NULL, 0 },
};
static struct ctl_service services[] = {
	{ "web", CTL_ROUTED, "svc-web", 2, NULL, NULL },
	{ "x<script>alert('1')</script>", CTL_REFUSED, NULL, 0,
	  "com.docker.lb.hosts", "\"<b>&amp;</b>\" is not a host name\x1b[2J" },
	{ "idle", CTL_WAITING, "svc-idle", 0, NULL, "no running task" },
};
static struct ctl_cert certs[] = {
	{ "svc-web.pem", "web", "a.example,c.example", "web.crt", "web.key",
	  1, 1, "<i>a.example</i>", "a.example,c.example",
	  1700000000 + 100 * 86400 },
	{ "svc-soon.pem", "soon", "s.example", "s.crt", "s.key", 0, 1, NULL,
	  "", 1700000000 + 3 * 86400 + 60 },
	{ "svc-old.pem", "old", "o.example", "o.crt", "o.key", 0, 1, NULL,
	  "o.example", 1700000000 - 60 },
	{ "svc-odd.pem", "odd", "d.example", "d.crt", "d.key", 0, 0, NULL,
	  "", 0 },
};
static struct ctl_reload reloads[] = {
	{ 1700000000, 412, "frontends or backends changed", NULL },
	{ 1700000100, 15000, "the last reload did not complete",
	  "no sign of the reload after <15000> ms" },
};

static void
fixed(struct ctl_snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->synced = 1;
	sn->now = 1700000000;
	sn->cert_warn_days = 14;
	sn->routes = routes;
	sn->nroutes = 2;
	sn->services = services;
	sn->nservices = 3;
	sn->certs = certs;
	sn->ncerts = 4;
	sn->reloads = reloads;
	sn->nreloads = 2;
}

START_TEST(test_status_page)
{
	struct ctl_snapshot sn;
	char *page;
	const char *refused, *web;

	fixed(&sn);
	page = render(&sn);
	balanced(page);
	has(page, "Some labelled service is not routed.");
	has(page, "2 certificates expiring or expired.");
	/* A route, its backend and each server with its state and node. */
	has(page, "<td data-label=\"Route\"><code>a.example/</code></td>");
	has(page, "<td data-label=\"Backend\">svc-web</td>");
	has(page, "<li><span class=\"ok\">UP</span> <code>10.0.0.5:80</code> "
	    "task <code>t1</code> on node-1</li>");
	has(page, "<li><span class=\"bad\">DOWN</span> <code>10.0.0.6:80"
	    "</code> task <code>t2</code></li>");
	has(page, "<span class=\"bad\">no servers</span>");
	/* The refused service, escaped, with its label and reason. */
	has(page, "<td data-label=\"Service\">x&lt;script&gt;alert(&#39;1&#39;)"
	    "&lt;/script&gt;</td><td data-label=\"State\" class=\"bad\">"
	    "refused</td>");
	has(page, "<td data-label=\"Label\"><code>com.docker.lb.hosts</code>"
	    "</td><td data-label=\"Reason\">&quot;&lt;b&gt;&amp;amp;&lt;/b&gt;"
	    "&quot; is not a host name\\x1b[2J</td>");
	lacks(page, "<script>");
	lacks(page, "<b>");
	lacks(page, "\x1b");
	/* Not routed first. */
	refused = strstr(page, "x&lt;script");
	web = strstr(page, "<td data-label=\"Service\">web</td>");
	ck_assert_ptr_nonnull(web);
	ck_assert_ptr_nonnull(refused);
	ck_assert(refused < web);
	has(page, "Services (3, 2 not routed)");
	/* Certificates: subject escaped, days left and their state. */
	has(page, "<td data-label=\"Subject\">&lt;i&gt;a.example&lt;/i&gt;"
	    "</td>");
	has(page, "<td data-label=\"Expires\">2024-02-22T22:13:20Z</td>"
	    "<td data-label=\"Days left\" class=\"ok\">100</td>");
	has(page, "class=\"warn\">3 (expiring)</td>");
	has(page, "class=\"bad\">-1 (expired)</td>");
	has(page, "class=\"muted\">unknown</td>");
	has(page, "<code>svc-web.pem</code> (default)</td>");
	/* Reloads, newest first, the error escaped. */
	has(page, "no sign of the reload after &lt;15000&gt; ms");
	ck_assert(strstr(page, "2023-11-14T22:15:00Z") <
	    strstr(page, "2023-11-14T22:13:20Z</td>"));
	has(page, "<td data-label=\"Took\">15000 ms</td>");
	free(page);
}
END_TEST

/* Everything routed: the page says so; a label value is cut, escaped. */
START_TEST(test_status_routed)
{
	struct ctl_snapshot sn;
	struct ctl_service one;
	char *page, *reason;

	fixed(&sn);
	sn.services = services;
	sn.nservices = 1;
	sn.ncerts = 1;
	page = render(&sn);
	has(page, "Every labelled service is routed.");
	lacks(page, "expiring or expired");
	free(page);
	reason = xcalloc(5001, 1);
	memset(reason, '<', 5000);
	memset(&one, 0, sizeof(one));
	one.name = "long";
	one.state = CTL_REFUSED;
	one.reason = reason;
	sn.services = &one;
	page = render(&sn);
	has(page, "&lt;&lt;...</td>");
	ck_assert(strlen(page) < 12000);
	free(page);
	free(reason);
}
END_TEST

Suite *
suite_status(void)
{
	Suite *s = suite_create("status");
	TCase *tc = tcase_create("status");

	tcase_add_test(tc, test_status_empty);
	tcase_add_test(tc, test_status_page);
	tcase_add_test(tc, test_status_routed);
	suite_add_tcase(s, tc);
	return s;
}
