/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of the control socket: request parsing, the reply's head
 * line and dovetailctl's exit status, each reply rendered from a fixed
 * snapshot (text and JSON), the snapshot built from a small swarm, and
 * the server itself on a socket in a scratch directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"

/* ---- requests ---- */

static int
parse(const char *line, struct ctl_request *req, char **cause)
{
	*cause = NULL;
	return ctl_parse_request(line, strlen(line), req, cause);
}

START_TEST(test_ctl_parse_good)
{
	static const struct {
		const char *line;
		enum ctl_cmd cmd;
		int json;
	} good[] = {
		{ "show routes", CTL_SHOW_ROUTES, 0 },
		{ "show routes\n", CTL_SHOW_ROUTES, 0 },
		{ "show routes json\n", CTL_SHOW_ROUTES, 1 },
		{ "  show\tservices  \r\n", CTL_SHOW_SERVICES, 0 },
		{ "show certs json", CTL_SHOW_CERTS, 1 },
		{ "show reloads", CTL_SHOW_RELOADS, 0 },
		{ "reload\n", CTL_RELOAD, 0 },
		{ "reload json", CTL_RELOAD, 1 },
		{ "log verbose", CTL_LOG_VERBOSE, 0 },
		{ "log brief\n", CTL_LOG_BRIEF, 0 },
	};
	struct ctl_request req;
	char *cause;
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_msg(parse(good[i].line, &req, &cause) == 0,
		    "\"%s\": %s", good[i].line, cause);
		ck_assert_int_eq(req.cmd, good[i].cmd);
		ck_assert_int_eq(req.json, good[i].json);
	}
}
END_TEST

START_TEST(test_ctl_parse_bad)
{
	static const struct {
		const char *line;
		const char *cause;
	} bad[] = {
		{ "", "empty request" },
		{ "\n", "empty request" },
		{ "   \r\n", "empty request" },
		{ "show", "unknown command \"show\"" },
		{ "show routes extra", "unknown command" },
		{ "show route", "unknown command" },
		{ "routes show", "unknown command" },
		{ "json", "unknown command \"json\"" },
		{ "json show routes", "unknown command" },
		{ "SHOW ROUTES", "unknown command" },
		{ "log", "unknown command" },
		{ "log loud", "unknown command" },
		{ "reload now", "unknown command" },
		{ "show routes json json", "unknown command" },
		{ "a b c d e", "too many words" },
		{ "show\x01routes", "control character" },
		{ "show routes\n\n", "control character" },
		{ "show r\xc3\xa9sum\xc3\xa9", "outside ASCII" },
		{ "GET / HTTP/1.1\r\n", "unknown command \"GET / HTTP/1.1\"" },
	};
	struct ctl_request req;
	char *cause;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse(bad[i].line, &req, &cause) == -1,
		    "\"%s\" was taken", bad[i].line);
		ck_assert_msg(strstr(cause, bad[i].cause) != NULL,
		    "\"%s\": \"%s\" lacks \"%s\"", bad[i].line, cause,
		    bad[i].cause);
		free(cause);
	}
	/* An unknown command's reply lists the commands there are. */
	ck_assert_int_eq(parse("frobnicate", &req, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "show routes, show services"));
	free(cause);
}
END_TEST

START_TEST(test_ctl_parse_long)
{
	char line[CTL_REQUEST_MAX + 8], *cause;
	struct ctl_request req;

	/* 255 bytes and a newline fit, not one more. */
	memset(line, ' ', sizeof(line));
	memcpy(line, "reload", 6);
	line[CTL_REQUEST_MAX - 1] = '\n';
	ck_assert_int_eq(ctl_parse_request(line, CTL_REQUEST_MAX, &req,
	    &cause), 0);
	ck_assert_int_eq(req.cmd, CTL_RELOAD);
	line[CTL_REQUEST_MAX - 1] = ' ';
	line[CTL_REQUEST_MAX] = '\n';
	ck_assert_int_eq(ctl_parse_request(line, CTL_REQUEST_MAX + 1, &req,
	    &cause), -1);
	ck_assert_str_eq(cause, "request longer than 255 bytes");
	free(cause);
}
END_TEST

/* ---- the reply's head and the exit status ---- */

START_TEST(test_ctl_reply_status)
{
	const char *body;
	char *error;
	struct buf b;

	ck_assert_int_eq(ctl_reply_status("ok\nA B\n", &body, &error),
	    CTL_STATUS_OK);
	ck_assert_str_eq(body, "A B\n");
	ck_assert_ptr_null(error);
	ck_assert_int_eq(ctl_reply_status("unrouted\n", &body, &error),
	    CTL_STATUS_UNROUTED);
	ck_assert_str_eq(body, "");
	ck_assert_int_eq(ctl_reply_status("error: unknown command\n", &body,
	    &error), CTL_STATUS_ERROR);
	ck_assert_str_eq(error, "unknown command");
	ck_assert_str_eq(body, "");
	free(error);
	ck_assert_int_eq(ctl_reply_status("", &body, &error),
	    CTL_STATUS_ERROR);
	ck_assert_ptr_nonnull(strstr(error, "without a reply"));
	free(error);
	ck_assert_int_eq(ctl_reply_status("ok", &body, &error),
	    CTL_STATUS_ERROR);
	free(error);
	ck_assert_int_eq(ctl_reply_status("okay\nx\n", &body, &error),
	    CTL_STATUS_ERROR);
	ck_assert_str_eq(error, "unexpected reply \"okay\"");
	free(error);

	buf_init(&b);
	ctl_reply_head(&b, CTL_STATUS_OK, NULL);
	ctl_reply_head(&b, CTL_STATUS_UNROUTED, NULL);
	ctl_reply_head(&b, CTL_STATUS_ERROR, "bad \"x\"\nnext");
	ck_assert_str_eq(b.data, "ok\nunrouted\nerror: bad \"x\"\\x0anext\n");
	buf_free(&b);
}
END_TEST

/* ---- a fixed snapshot ---- */

static const struct ctl_server_row rows[] = {
	{ "t1", "node-1", "10.0.0.5:80", "UP" },
	{ "t2", NULL, "10.0.0.6:80", NULL },
};
static struct ctl_route routes[] = {
	{ "a.example/", "http", "svc-web", "web", rows, 2 },
	{ "b.example", "passthrough", "tlssvc-tls", "tls", NULL, 0 },
};
static struct ctl_service services[] = {
	{ "web", CTL_ROUTED, "svc-web", 2, NULL, NULL },
	{ "bad", CTL_REFUSED, NULL, 0, "com.docker.lb.port",
	  "\"x\" is not a port\x1b[2J" },
	{ "idle", CTL_WAITING, "svc-idle", 0, NULL, "no running task" },
};
static struct ctl_cert certs[] = {
	{ "svc-web.pem", "web", "a.example,c.example", "web.crt", "web.key",
	  1, 1, "a.example", "a.example,c.example", 1700000000 + 100 * 86400 },
	{ "svc-soon.pem", "soon", "s.example", "s.crt", "s.key", 0, 1,
	  "s\x1b.example", "", 1700000000 + 3 * 86400 + 60 },
	{ "svc-old.pem", "old", "o.example", "o.crt", "o.key", 0, 1, NULL,
	  "o.example", 1700000000 - 60 },
	{ "svc-odd.pem", "odd", "d.example", "d.crt", "d.key", 0, 0, NULL,
	  "", 0 },
};
static struct ctl_reload reloads[] = {
	{ 1700000000, 412, "frontends or backends changed", NULL },
	{ 1700000100, 15000, "the last reload did not complete",
	  "no sign of the reload after 15000 ms" },
};

static void
fixed(struct ctl_snapshot *sn)
{
	memset(sn, 0, sizeof(*sn));
	sn->synced = 1;
	sn->routes = routes;
	sn->nroutes = 2;
	sn->services = services;
	sn->nservices = 3;
	sn->certs = certs;
	sn->ncerts = 4;
	sn->now = 1700000000;
	sn->cert_warn_days = 14;
	sn->reloads = reloads;
	sn->nreloads = 2;
}

static void
check_render(const struct ctl_snapshot *sn, enum ctl_cmd cmd, int json,
    const char *want)
{
	struct buf b;

	buf_init(&b);
	ctl_render(&b, sn, cmd, json);
	ck_assert_msg(strcmp(b.data == NULL ? "" : b.data, want) == 0,
	    "got:\n%s\nwant:\n%s", b.data, want);
	buf_free(&b);
}

START_TEST(test_ctl_render_routes)
{
	struct ctl_snapshot sn;

	fixed(&sn);
	check_render(&sn, CTL_SHOW_ROUTES, 0,
	    "ROUTE       KIND         SERVICES  BACKEND     TASK          "
	    "NODE    ADDRESS      STATE\n"
	    "a.example/  http         web       svc-web     t1            "
	    "node-1  10.0.0.5:80  UP\n"
	    "a.example/  http         web       svc-web     t2            "
	    "-       10.0.0.6:80  unknown\n"
	    "b.example   passthrough  tls       tlssvc-tls  (no servers)  "
	    "-       -            -\n");
	check_render(&sn, CTL_SHOW_ROUTES, 1,
	    "{\n"
	    "  \"routes\": [\n"
	    "    {\n"
	    "      \"route\": \"a.example/\",\n"
	    "      \"kind\": \"http\",\n"
	    "      \"services\": \"web\",\n"
	    "      \"backend\": \"svc-web\",\n"
	    "      \"servers\": [\n"
	    "        {\n"
	    "          \"task\": \"t1\",\n"
	    "          \"node\": \"node-1\",\n"
	    "          \"address\": \"10.0.0.5:80\",\n"
	    "          \"state\": \"UP\"\n"
	    "        },\n"
	    "        {\n"
	    "          \"task\": \"t2\",\n"
	    "          \"node\": null,\n"
	    "          \"address\": \"10.0.0.6:80\",\n"
	    "          \"state\": null\n"
	    "        }\n"
	    "      ]\n"
	    "    },\n"
	    "    {\n"
	    "      \"route\": \"b.example\",\n"
	    "      \"kind\": \"passthrough\",\n"
	    "      \"services\": \"tls\",\n"
	    "      \"backend\": \"tlssvc-tls\",\n"
	    "      \"servers\": []\n"
	    "    }\n"
	    "  ]\n"
	    "}\n");
}
END_TEST

START_TEST(test_ctl_render_services)
{
	struct ctl_snapshot sn;

	fixed(&sn);
	check_render(&sn, CTL_SHOW_SERVICES, 0,
	    "SERVICE  STATE    BACKEND   SERVERS  LABEL               REASON\n"
	    "web      routed   svc-web   2        -                   -\n"
	    "bad      refused  -         -        com.docker.lb.port  "
	    "\"x\" is not a port\\x1b[2J\n"
	    "idle     waiting  svc-idle  0        -                   "
	    "no running task\n");
	check_render(&sn, CTL_SHOW_SERVICES, 1,
	    "{\n"
	    "  \"synced\": true,\n"
	    "  \"services\": [\n"
	    "    {\n"
	    "      \"service\": \"web\",\n"
	    "      \"state\": \"routed\",\n"
	    "      \"backend\": \"svc-web\",\n"
	    "      \"servers\": 2,\n"
	    "      \"label\": null,\n"
	    "      \"reason\": null\n"
	    "    },\n"
	    "    {\n"
	    "      \"service\": \"bad\",\n"
	    "      \"state\": \"refused\",\n"
	    "      \"backend\": null,\n"
	    "      \"servers\": 0,\n"
	    "      \"label\": \"com.docker.lb.port\",\n"
	    "      \"reason\": \"\\\"x\\\" is not a port\\u001B[2J\"\n"
	    "    },\n"
	    "    {\n"
	    "      \"service\": \"idle\",\n"
	    "      \"state\": \"waiting\",\n"
	    "      \"backend\": \"svc-idle\",\n"
	    "      \"servers\": 0,\n"
	    "      \"label\": null,\n"
	    "      \"reason\": \"no running task\"\n"
	    "    }\n"
	    "  ]\n"
	    "}\n");
	/* Before the first reconcile, the tables say so. */
	sn.synced = 0;
	sn.nservices = 0;
	check_render(&sn, CTL_SHOW_SERVICES, 0,
	    "(dovetail has not applied the swarm yet)\n"
	    "SERVICE  STATE  BACKEND  SERVERS  LABEL  REASON\n");
}
END_TEST

START_TEST(test_ctl_render_certs)
{
	struct ctl_snapshot sn;

	fixed(&sn);
	check_render(&sn, CTL_SHOW_CERTS, 0,
	    "FILE          SERVICE  SUBJECT        HOSTS                "
	    "EXPIRES               DAYS LEFT     CERT SECRET  KEY SECRET  "
	    "DEFAULT\n"
	    "svc-web.pem   web      a.example      a.example,c.example  "
	    "2024-02-22T22:13:20Z  100           web.crt      web.key     "
	    "yes\n"
	    "svc-soon.pem  soon     s\\x1b.example  s.example            "
	    "2023-11-17T22:14:20Z  3 (expiring)  s.crt        s.key       "
	    "no\n"
	    "svc-old.pem   old      -              o.example            "
	    "2023-11-14T22:12:20Z  -1 (expired)  o.crt        o.key       "
	    "no\n"
	    "svc-odd.pem   odd      -              d.example            "
	    "-                     unknown       d.crt        d.key       "
	    "no\n");
	sn.ncerts = 1;
	check_render(&sn, CTL_SHOW_CERTS, 1,
	    "{\n"
	    "  \"certs\": [\n"
	    "    {\n"
	    "      \"file\": \"svc-web.pem\",\n"
	    "      \"service\": \"web\",\n"
	    "      \"hosts\": \"a.example,c.example\",\n"
	    "      \"cert_secret\": \"web.crt\",\n"
	    "      \"key_secret\": \"web.key\",\n"
	    "      \"default\": true,\n"
	    "      \"subject\": \"a.example\",\n"
	    "      \"names\": \"a.example,c.example\",\n"
	    "      \"not_after\": \"2024-02-22T22:13:20Z\",\n"
	    "      \"days_left\": 100,\n"
	    "      \"expiry\": \"valid\"\n"
	    "    }\n"
	    "  ]\n"
	    "}\n");
	/* Expired, and unknown: what could not be read is null. */
	sn.certs = &certs[2];
	sn.ncerts = 2;
	check_render(&sn, CTL_SHOW_CERTS, 1,
	    "{\n"
	    "  \"certs\": [\n"
	    "    {\n"
	    "      \"file\": \"svc-old.pem\",\n"
	    "      \"service\": \"old\",\n"
	    "      \"hosts\": \"o.example\",\n"
	    "      \"cert_secret\": \"o.crt\",\n"
	    "      \"key_secret\": \"o.key\",\n"
	    "      \"default\": false,\n"
	    "      \"subject\": null,\n"
	    "      \"names\": \"o.example\",\n"
	    "      \"not_after\": \"2023-11-14T22:12:20Z\",\n"
	    "      \"days_left\": -1,\n"
	    "      \"expiry\": \"expired\"\n"
	    "    },\n"
	    "    {\n"
	    "      \"file\": \"svc-odd.pem\",\n"
	    "      \"service\": \"odd\",\n"
	    "      \"hosts\": \"d.example\",\n"
	    "      \"cert_secret\": \"d.crt\",\n"
	    "      \"key_secret\": \"d.key\",\n"
	    "      \"default\": false,\n"
	    "      \"subject\": null,\n"
	    "      \"names\": null,\n"
	    "      \"not_after\": null,\n"
	    "      \"days_left\": null,\n"
	    "      \"expiry\": null\n"
	    "    }\n"
	    "  ]\n"
	    "}\n"
);
}
END_TEST

START_TEST(test_ctl_render_reloads)
{
	struct ctl_snapshot sn;

	fixed(&sn);
	check_render(&sn, CTL_SHOW_RELOADS, 0,
	    "STARTED               RESULT  TOOK     REASON                   "
	    "         ERROR\n"
	    "2023-11-14T22:13:20Z  ok      412ms    frontends or backends "
	    "changed     -\n"
	    "2023-11-14T22:15:00Z  failed  15000ms  the last reload did not "
	    "complete  no sign of the reload after 15000 ms\n");
	check_render(&sn, CTL_SHOW_RELOADS, 1,
	    "{\n"
	    "  \"reloads\": [\n"
	    "    {\n"
	    "      \"started\": \"2023-11-14T22:13:20Z\",\n"
	    "      \"ok\": true,\n"
	    "      \"ms\": 412,\n"
	    "      \"reason\": \"frontends or backends changed\",\n"
	    "      \"error\": null\n"
	    "    },\n"
	    "    {\n"
	    "      \"started\": \"2023-11-14T22:15:00Z\",\n"
	    "      \"ok\": false,\n"
	    "      \"ms\": 15000,\n"
	    "      \"reason\": \"the last reload did not complete\",\n"
	    "      \"error\": \"no sign of the reload after 15000 ms\"\n"
	    "    }\n"
	    "  ]\n"
	    "}\n");
}
END_TEST

START_TEST(test_ctl_status)
{
	struct ctl_snapshot sn;

	fixed(&sn);
	sn.nservices = 1;		/* web: routed */
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_OK);
	services[0].state = CTL_IGNORED;	/* another cluster's */
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_OK);
	services[0].state = CTL_QUARANTINED;
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);
	services[0].state = CTL_ROUTED;
	sn.nservices = 0;		/* nothing labelled at all */
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_OK);
	sn.synced = 0;			/* nothing applied yet */
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);
	fixed(&sn);
	sn.nservices = 2;		/* bad: refused */
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);
	sn.services = services + 2;	/* idle: waiting */
	sn.nservices = 1;
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);
}
END_TEST

START_TEST(test_ctl_reloads_kept)
{
	struct ctl_reloads r;
	char why[16];
	int i;

	memset(&r, 0, sizeof(r));
	for (i = 0; i < CTL_RELOADS_KEPT + 5; i++) {
		snprintf(why, sizeof(why), "r%d", i);
		ctl_reloads_add(&r, i, (unsigned)i, why, i % 2 ? "e" : NULL);
	}
	ck_assert_uint_eq(r.n, CTL_RELOADS_KEPT);
	ck_assert_str_eq(r.v[0].reason, "r5");
	ck_assert_str_eq(r.v[0].error, "e");
	ck_assert_str_eq(r.v[CTL_RELOADS_KEPT - 1].reason, "r24");
	ck_assert_ptr_null(r.v[CTL_RELOADS_KEPT - 1].error);
	ctl_reloads_free(&r);
	ck_assert_uint_eq(r.n, 0);
}
END_TEST

/* ---- the snapshot of a small swarm ---- */

START_TEST(test_ctl_snapshot_build)
{
	static const char svcs[] = "["
	    "{\"ID\":\"s1\",\"Spec\":{\"Name\":\"web\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"a.example\","
	    "\"com.docker.lb.port\":\"80\"}}},"
	    "{\"ID\":\"s2\",\"Spec\":{\"Name\":\"bad\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"b.example\","
	    "\"com.docker.lb.port\":\"eighty\"}}},"
	    "{\"ID\":\"s3\",\"Spec\":{\"Name\":\"idle\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"c.example\","
	    "\"com.docker.lb.port\":\"80\"}}},"
	    "{\"ID\":\"s4\",\"Spec\":{\"Name\":\"other\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"d.example\","
	    "\"com.docker.lb.service_cluster\":\"blue\","
	    "\"com.docker.lb.port\":\"80\"}}},"
	    "{\"ID\":\"s5\",\"Spec\":{\"Name\":\"held\",\"Labels\":{"
	    "\"com.docker.lb.hosts\":\"e.example\","
	    "\"com.docker.lb.port\":\"80\"}}}]";
	static const char tasks[] = "["
	    "{\"ID\":\"t1\",\"ServiceID\":\"s1\",\"NodeID\":\"n1\","
	    "\"DesiredState\":\"running\",\"Status\":{\"State\":\"running\"},"
	    "\"NetworksAttachments\":[{\"Network\":{\"ID\":\"net\",\"Spec\":"
	    "{\"Name\":\"front\"}},\"Addresses\":[\"10.0.0.5/24\"]}]},"
	    /* Pending: on no node yet. */
	    "{\"ID\":\"t2\",\"ServiceID\":\"s1\",\"DesiredState\":"
	    "\"running\",\"Status\":{\"State\":\"pending\"}}]";
	static const char nodes[] = "[{\"ID\":\"n1\",\"Description\":{"
	    "\"Hostname\":\"node-1\"},\"Status\":{\"Addr\":\"192.0.2.1\"}}]";
	static const char state[] = "1\n"
	    "# be_id be_name srv_id srv_name srv_addr srv_op_state "
	    "srv_admin_state srv_uweight srv_iweight "
	    "srv_time_since_last_change srv_check_status srv_check_result "
	    "srv_check_health srv_check_state srv_agent_state "
	    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord "
	    "srv_use_ssl srv_check_port srv_check_addr srv_agent_addr "
	    "srv_agent_port\n"
	    "4 svc-web 1 t1 10.0.0.5 2 8 1 1 1 1 0 2 0 0 0 0 - 80 - 0 0 - - 0"
	    "\n\n";
	struct swarm *sw = swarm_new();
	struct running *seen = running_new();
	struct desired_opts o;
	struct desired *d;
	struct problem held = { "held", NULL, "HAProxy refuses its part" };
	struct ctl_state in;
	struct ctl_snapshot sn;
	const struct ctl_route *r;
	char *cause = NULL;

	ck_assert_msg(swarm_parse_services(sw, svcs, strlen(svcs), &cause) ==
	    0, "%s", cause);
	ck_assert_msg(swarm_parse_tasks(sw, tasks, strlen(tasks), &cause) ==
	    0, "%s", cause);
	ck_assert_msg(swarm_parse_nodes(sw, nodes, strlen(nodes), &cause) ==
	    0, "%s", cause);
	ck_assert_msg(hastate_parse_servers(seen, state, &cause) == 0, "%s",
	    cause);
	memset(&o, 0, sizeof(o));
	o.prefix = "com.docker.lb";
	o.cluster = "";
	o.excluded = &held;
	o.nexcluded = 1;
	d = desired_build(sw, &o);

	memset(&in, 0, sizeof(in));
	in.swarm = sw;
	in.prefix = "com.docker.lb";
	in.cluster = "";
	in.quarantine = &held;
	in.nquarantine = 1;
	/* Before the first reconcile: every service is waiting. */
	ctl_snapshot_build(&sn, &in);
	ck_assert_int_eq(sn.synced, 0);
	ck_assert_uint_eq(sn.nroutes, 0);
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);
	ctl_snapshot_free(&sn);

	in.desired = d;
	in.seen = seen;
	ctl_snapshot_build(&sn, &in);
	ck_assert_int_eq(sn.synced, 1);
	/* Services come in the swarm's order: by id. */
	ck_assert_uint_eq(sn.nservices, 5);
	ck_assert_str_eq(sn.services[0].name, "web");
	ck_assert_int_eq(sn.services[0].state, CTL_ROUTED);
	ck_assert_str_eq(sn.services[0].backend, "svc-web");
	ck_assert_uint_eq(sn.services[0].nservers, 1);
	ck_assert_str_eq(sn.services[1].name, "bad");
	ck_assert_int_eq(sn.services[1].state, CTL_REFUSED);
	ck_assert_str_eq(sn.services[1].label, "com.docker.lb.port");
	ck_assert_ptr_nonnull(sn.services[1].reason);
	ck_assert_str_eq(sn.services[2].name, "idle");
	ck_assert_int_eq(sn.services[2].state, CTL_WAITING);
	ck_assert_uint_eq(sn.services[2].nservers, 0);
	ck_assert_str_eq(sn.services[3].name, "other");
	ck_assert_int_eq(sn.services[3].state, CTL_IGNORED);
	ck_assert_str_eq(sn.services[4].name, "held");
	ck_assert_int_eq(sn.services[4].state, CTL_QUARANTINED);
	ck_assert_str_eq(sn.services[4].reason, "HAProxy refuses its part");
	ck_assert_int_eq(ctl_snapshot_status(&sn), CTL_STATUS_UNROUTED);

	/* Routes, sorted, with the task's node and HAProxy's state. */
	ck_assert_uint_eq(sn.nroutes, 2);
	r = &sn.routes[0];
	ck_assert_str_eq(r->route, "a.example/");
	ck_assert_str_eq(r->kind, "http");
	ck_assert_str_eq(r->backend, "svc-web");
	ck_assert_str_eq(r->services, "web");
	ck_assert_uint_eq(r->nservers, 1);
	ck_assert_str_eq(r->servers[0].task, "t1");
	ck_assert_str_eq(r->servers[0].node, "node-1");
	ck_assert_str_eq(r->servers[0].addr, "10.0.0.5:80");
	ck_assert_str_eq(r->servers[0].state, "DRAIN");
	r = &sn.routes[1];
	ck_assert_str_eq(r->route, "c.example/");
	ck_assert_uint_eq(r->nservers, 0);
	ck_assert_uint_eq(sn.ncerts, 0);
	ctl_snapshot_free(&sn);
	ctl_snapshot_free(NULL);

	desired_free(d);
	running_free(seen);
	swarm_free(sw);
}
END_TEST

/* ---- the server, on a socket in a scratch directory ---- */

static int handled;

static enum ctl_status
fake_handler(void *arg, const struct ctl_request *req, int uid,
    struct buf *body)
{
	(void)arg;
	handled++;
	ck_assert_int_eq(uid, (int)getuid());
	buf_addf(body, "cmd %d json %d\n", (int)req->cmd, req->json);
	return req->cmd == CTL_SHOW_SERVICES ? CTL_STATUS_UNROUTED :
	    CTL_STATUS_OK;
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ne(fd, -1);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Runs the server until fd has its whole reply; returns it (new). */
static char *
serve_until_closed(struct ctl_server *s, int fd)
{
	struct pollfd p[CTL_MAX_CLIENTS + 2];
	struct buf b;
	char chunk[512];
	ssize_t n;
	size_t np;
	int i;

	buf_init(&b);
	for (i = 0; i < 2000; i++) {
		np = ctl_pollfds(s, p, CTL_MAX_CLIENTS + 1);
		p[np].fd = fd;
		p[np++].events = POLLIN;
		poll(p, np, 10);
		ctl_run(s, mono_ms());
		n = recv(fd, chunk, sizeof(chunk), MSG_DONTWAIT);
		if (n == 0)
			break;
		if (n > 0)
			buf_add(&b, chunk, (size_t)n);
	}
	close(fd);
	return b.data == NULL ? xstrdup("") : buf_steal(&b);
}

static char *
ask(struct ctl_server *s, const char *path, const char *request,
    size_t len)
{
	int fd = connect_to(path);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(send(fd, request, len, 0), (ssize_t)len);
	return serve_until_closed(s, fd);
}

START_TEST(test_ctl_server)
{
	char dir[] = "/tmp/ctl-check.XXXXXX", *path, *reply, *cause = NULL;
	char big[CTL_REQUEST_MAX * 2];
	struct ctl_server *s, *other;
	struct stat st;
	int fd, idle[CTL_MAX_CLIENTS], i;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/dovetail.sock", dir);

	s = ctl_listen(path, fake_handler, NULL, &cause);
	ck_assert_msg(s != NULL, "%s", cause);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0660);
	/* A second server on a socket that answers: refused. */
	other = ctl_listen(path, fake_handler, NULL, &cause);
	ck_assert_ptr_null(other);
	ck_assert_ptr_nonnull(strstr(cause, "another dovetail"));
	free(cause);

	handled = 0;
	reply = ask(s, path, "show services\n", 14);
	ck_assert_str_eq(reply, "unrouted\ncmd 2 json 0\n");
	free(reply);
	reply = ask(s, path, "show routes json\n", 17);
	ck_assert_str_eq(reply, "ok\ncmd 1 json 1\n");
	free(reply);
	reply = ask(s, path, "hello\n", 6);
	ck_assert_str_eq(reply, "error: unknown command \"hello\"; the "
	    "commands are: show routes, show services, show certs, show "
	    "reloads, reload, log verbose, log brief (each may end in "
	    "json)\n");
	free(reply);
	/* A request cut by the end of its connection is read as it is. */
	fd = connect_to(path);
	ck_assert_int_eq(send(fd, "reload", 6, 0), 6);
	shutdown(fd, SHUT_WR);
	reply = serve_until_closed(s, fd);
	ck_assert_str_eq(reply, "ok\ncmd 5 json 0\n");
	free(reply);
	memset(big, 'x', sizeof(big));
	reply = ask(s, path, big, sizeof(big));
	ck_assert_str_eq(reply, "error: request longer than 255 bytes\n");
	free(reply);
	ck_assert_int_eq(handled, 3);

	/* Clients that say nothing fill the slots; one more still waits. */
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		idle[i] = connect_to(path);
		ck_assert_int_ne(idle[i], -1);
	}
	ctl_run(s, mono_ms());
	ck_assert_int_ne(ctl_deadline(s), 0);
	fd = connect_to(path);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(send(fd, "reload\n", 7, 0), 7);
	ctl_run(s, mono_ms());
	ck_assert_int_eq(handled, 3);
	/* Past their deadline the silent ones go, and it is answered. */
	ctl_run(s, mono_ms() + CTL_CLIENT_TIMEOUT_MS + 1);
	reply = serve_until_closed(s, fd);
	ck_assert_str_eq(reply, "ok\ncmd 5 json 0\n");
	free(reply);
	for (i = 0; i < CTL_MAX_CLIENTS; i++) {
		char c;

		ck_assert_int_eq(read(idle[i], &c, 1), 0);
		close(idle[i]);
	}
	ck_assert_int_eq(ctl_deadline(s), 0);

	/* Closing removes the socket file. */
	ctl_close(s);
	ck_assert_int_eq(lstat(path, &st), -1);

	/* A stale socket file (nobody listens) is replaced. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sun;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun,
		    sizeof(sun)), 0);
	}
	close(fd);
	s = ctl_listen(path, fake_handler, NULL, &cause);
	ck_assert_msg(s != NULL, "%s", cause);
	ctl_close(s);

	/* A file that is not a socket is left alone. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	ck_assert_int_ne(fd, -1);
	close(fd);
	ck_assert_ptr_null(ctl_listen(path, fake_handler, NULL, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "not a socket"));
	free(cause);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_ptr_null(ctl_listen("relative.sock", fake_handler, NULL,
	    &cause));
	free(cause);

	ck_assert_int_eq(rmdir(dir), 0);
	free(path);
}
END_TEST

Suite *
suite_control(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("control");

	tcase_add_test(tc, test_ctl_parse_good);
	tcase_add_test(tc, test_ctl_parse_bad);
	tcase_add_test(tc, test_ctl_parse_long);
	tcase_add_test(tc, test_ctl_reply_status);
	tcase_add_test(tc, test_ctl_render_routes);
	tcase_add_test(tc, test_ctl_render_services);
	tcase_add_test(tc, test_ctl_render_certs);
	tcase_add_test(tc, test_ctl_render_reloads);
	tcase_add_test(tc, test_ctl_status);
	tcase_add_test(tc, test_ctl_reloads_kept);
	tcase_add_test(tc, test_ctl_snapshot_build);
	tcase_add_test(tc, test_ctl_server);
	suite_add_tcase(s, tc);
	return s;
}
