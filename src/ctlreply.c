/* SPDX-License-Identifier: ISC */
/*
 * What dovetailctl is told: a snapshot of the agent's state (the desired
 * state it last built, the swarm it was built from, the servers' states
 * HAProxy last reported, the services in quarantine and the last reloads)
 * and its rendering as aligned text tables or as JSON.  No I/O, no clock:
 * the tests build snapshots by hand and compare the text.
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dovetail.h"

static const char *const state_names[] = {
	"routed", "waiting", "refused", "quarantined", "ignored"
};

const char *
ctl_service_state_name(enum ctl_service_state st)
{
	return state_names[st];
}

/* Keeps s (new) for as long as the snapshot; returns it, borrowed. */
static const char *
keep(struct ctl_snapshot *sn, char *s)
{
	sn->pool = xreallocarray(sn->pool, sn->npool + 1, sizeof(char *));
	sn->pool[sn->npool++] = s;
	return s;
}

/* ---- building ---- */

struct task_node {
	const char *task;
	const char *node;	/* host name */
};

static int
task_node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct task_node *)a)->task,
	    ((const struct task_node *)b)->task);
}

/* HAProxy's word for a server's state, from "show servers state". */
static const char *
server_state(const struct running *seen, const char *backend,
    const char *name)
{
	struct rserver key, *r;

	if (seen == NULL)
		return NULL;
	memset(&key, 0, sizeof(key));
	key.backend = (char *)backend;
	key.name = (char *)name;
	r = find_in_array(&key, seen->servers, seen->nservers,
	    sizeof(*seen->servers), rserver_cmp);
	if (r == NULL)
		return NULL;
	if (r->admin & SRV_ADMIN_MAINT_MASK)
		return "MAINT";
	if (r->admin & SRV_ADMIN_DRAIN_MASK)
		return "DRAIN";
	switch (r->op) {
	case SRV_OP_STOPPED:
		return "DOWN";
	case 3:
		return "NOLB";
	default:
		return "UP";
	}
}

static const char *
join(struct ctl_snapshot *sn, char *const *v, size_t n)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		if (i > 0)
			buf_addc(&b, ',');
		buf_adds(&b, v[i]);
	}
	return keep(sn, b.data == NULL ? xstrdup("") : buf_steal(&b));
}

/* Each backend's servers as rows; returns the first row of each. */
static size_t *
build_rows(struct ctl_snapshot *sn, const struct ctl_state *in)
{
	const struct desired *d = in->desired;
	const struct swarm *sw = in->swarm;
	struct task_node *idx, key, *found;
	const struct node *node;
	size_t *first, i, j, k, total = 0;
	struct buf b;

	idx = xcalloc(sw->ntasks + 1, sizeof(*idx));
	for (i = 0; i < sw->ntasks; i++) {
		idx[i].task = sw->tasks[i].id;
		node = swarm_node(sw, sw->tasks[i].node_id);
		idx[i].node = node == NULL ? NULL : node->hostname;
	}
	sort_array(idx, sw->ntasks, sizeof(*idx), task_node_cmp);
	for (i = 0; i < d->nbackends; i++)
		total += d->backends[i].nservers;
	sn->rows = xcalloc(total + 1, sizeof(*sn->rows));
	first = xcalloc(d->nbackends + 1, sizeof(*first));
	buf_init(&b);
	for (i = 0, k = 0; i < d->nbackends; i++) {
		const struct dbackend *be = &d->backends[i];

		first[i] = k;
		for (j = 0; j < be->nservers; j++, k++) {
			struct ctl_server_row *row = &sn->rows[k];

			row->task = be->servers[j].name;
			key.task = row->task;
			found = find_in_array(&key, idx, sw->ntasks,
			    sizeof(*idx), task_node_cmp);
			row->node = found == NULL ? NULL : found->node;
			buf_reset(&b);
			render_server_addr(&b, &be->servers[j]);
			row->addr = keep(sn, buf_steal(&b));
			row->state = server_state(in->seen, be->name,
			    be->servers[j].name);
		}
	}
	sn->nrows = total;
	buf_free(&b);
	free(idx);
	return first;
}

static void
add_route(struct ctl_snapshot *sn, const struct desired *d,
    const size_t *first, const char *route, const char *kind,
    const char *backend)
{
	const struct dbackend *be = desired_backend(d, backend);
	struct ctl_route *r;

	sn->routes = xreallocarray(sn->routes, sn->nroutes + 1,
	    sizeof(*sn->routes));
	r = &sn->routes[sn->nroutes++];
	memset(r, 0, sizeof(*r));
	r->route = route;
	r->kind = kind;
	r->backend = backend;
	r->services = "";
	if (be == NULL)
		return;
	r->services = join(sn, be->services, be->nservices);
	r->servers = &sn->rows[first[be - d->backends]];
	r->nservers = be->nservers;
}

static void
build_routes(struct ctl_snapshot *sn, const struct ctl_state *in)
{
	const struct desired *d = in->desired;
	size_t *first, i;

	first = build_rows(sn, in);
	for (i = 0; i < d->nmap[MAP_ROUTES]; i++)
		add_route(sn, d, first, d->maps[MAP_ROUTES][i].key, "http",
		    d->maps[MAP_ROUTES][i].value);
	for (i = 0; i < d->nmap[MAP_SNI]; i++)
		add_route(sn, d, first, d->maps[MAP_SNI][i].key, "passthrough",
		    d->maps[MAP_SNI][i].value);
	if (d->default_backend != NULL)
		add_route(sn, d, first, "*", "default", d->default_backend);
	free(first);
}

/* The backend that lists the service, and how many servers are its. */
static const struct dbackend *
service_backend(const struct desired *d, const char *name, size_t *nservers)
{
	const struct dbackend *be;
	size_t i, j;

	*nservers = 0;
	for (i = 0; i < d->nbackends; i++) {
		be = &d->backends[i];
		if (find_in_array(&name, be->services, be->nservices,
		    sizeof(char *), str_cmp_ptr) == NULL)
			continue;
		for (j = 0; j < be->nservers; j++)
			if (strcmp(be->servers[j].service, name) == 0)
				(*nservers)++;
		return be;
	}
	return NULL;
}

static void
build_service(struct ctl_snapshot *sn, const struct ctl_state *in,
    const struct service *svc, struct ctl_service *out)
{
	const struct desired *d = in->desired;
	const struct dbackend *be;
	const char *cluster;
	char *key;
	size_t i;

	out->name = svc->name;
	for (i = 0; i < in->nquarantine; i++) {
		if (strcmp(in->quarantine[i].service, svc->name) == 0) {
			out->state = CTL_QUARANTINED;
			out->reason = in->quarantine[i].message;
			return;
		}
	}
	key = xasprintf("%s.service_cluster", in->prefix);
	cluster = service_label(svc, key);
	free(key);
	if (strcmp(cluster == NULL ? "" : cluster, in->cluster) != 0) {
		out->state = CTL_IGNORED;
		out->reason = keep(sn, xasprintf("service_cluster \"%s\" is not "
		    "this agent's (\"%s\")", cluster == NULL ? "" : cluster,
		    in->cluster));
		return;
	}
	if (d == NULL) {
		out->state = CTL_WAITING;
		out->reason = "dovetail has not applied the swarm yet";
		return;
	}
	for (i = 0; i < d->nproblems; i++) {
		if (strcmp(d->problems[i].service, svc->name) == 0) {
			out->state = CTL_REFUSED;
			out->label = d->problems[i].label;
			out->reason = d->problems[i].message;
			return;
		}
	}
	if ((be = service_backend(d, svc->name, &out->nservers)) == NULL) {
		out->state = CTL_WAITING;
		out->reason = "not applied yet";
		return;
	}
	out->backend = be->name;
	if (out->nservers == 0) {
		out->state = CTL_WAITING;
		out->reason = "no running task with an address to send "
		    "requests to";
	} else
		out->state = CTL_ROUTED;
}

static void
build_certs(struct ctl_snapshot *sn, const struct ctl_state *in)
{
	const struct desired *d = in->desired;
	const struct service *svc;
	struct ctl_cert *c;
	size_t i, j;

	sn->certs = xcalloc(d->ncerts + 1, sizeof(*sn->certs));
	for (i = 0; i < d->ncerts; i++) {
		const struct dcert *dc = &d->certs[i];

		c = &sn->certs[sn->ncerts++];
		c->file = dc->file;
		c->service = dc->service;
		c->hosts = join(sn, dc->snis, dc->nsnis);
		c->is_default = d->default_pem == dc->pem;
		c->parsed = dc->info.parsed;
		c->subject = dc->info.subject;
		c->names = join(sn, dc->info.names, dc->info.nnames);
		c->not_after = dc->info.not_after;
		for (j = 0, svc = NULL; j < in->swarm->nservices; j++)
			if (strcmp(in->swarm->services[j].name,
			    dc->service) == 0)
				svc = &in->swarm->services[j];
		if (svc == NULL || !labels_secrets(svc, in->prefix, in->cluster,
		    &c->cert_secret, &c->key_secret))
			c->cert_secret = c->key_secret = NULL;
		/* Ordered ([acme]): from the swarm's store, no secret. */
		if (dc->acme)
			c->cert_secret = c->key_secret = "(acme)";
	}
}

/*
 * Fills sn from the agent's state.  The snapshot borrows from in (but for
 * what it keeps itself): use it before any of that changes.
 */
void
ctl_snapshot_build(struct ctl_snapshot *sn, const struct ctl_state *in)
{
	size_t i;

	memset(sn, 0, sizeof(*sn));
	sn->synced = in->desired != NULL;
	sn->now = in->now;
	sn->cert_warn_days = in->cert_warn_days;
	if (in->reloads != NULL) {
		sn->reloads = in->reloads->v;
		sn->nreloads = in->reloads->n;
	}
	sn->services = xcalloc(in->swarm->nservices + 1,
	    sizeof(*sn->services));
	for (i = 0; i < in->swarm->nservices; i++)
		build_service(sn, in, &in->swarm->services[i],
		    &sn->services[sn->nservices++]);
	if (in->desired == NULL)
		return;
	build_routes(sn, in);
	build_certs(sn, in);
}

void
ctl_snapshot_free(struct ctl_snapshot *sn)
{
	size_t i;

	if (sn == NULL)
		return;
	for (i = 0; i < sn->npool; i++)
		free(sn->pool[i]);
	free(sn->pool);
	free(sn->routes);
	free(sn->services);
	free(sn->certs);
	free(sn->rows);
	memset(sn, 0, sizeof(*sn));
}

/* Whether the certificate is expired, expiring or neither at sn->now. */
enum cert_expiry
ctl_cert_expiry(const struct ctl_snapshot *sn, const struct ctl_cert *c)
{
	struct cert_info ci;

	memset(&ci, 0, sizeof(ci));
	ci.parsed = c->parsed;
	ci.not_after = c->not_after;
	return tls_expiry(&ci, sn->now, sn->cert_warn_days);
}

/*
 * CTL_STATUS_OK when every labelled service of this agent is routed,
 * CTL_STATUS_UNROUTED when one is refused, quarantined or waiting, or
 * when dovetail has not applied the swarm yet.
 */
enum ctl_status
ctl_snapshot_status(const struct ctl_snapshot *sn)
{
	size_t i;

	if (!sn->synced)
		return CTL_STATUS_UNROUTED;
	for (i = 0; i < sn->nservices; i++)
		if (sn->services[i].state != CTL_ROUTED &&
		    sn->services[i].state != CTL_IGNORED)
			return CTL_STATUS_UNROUTED;
	return CTL_STATUS_OK;
}

void
ctl_reloads_add(struct ctl_reloads *r, long long unix_time, unsigned ms,
    const char *reason, const char *error)
{
	struct ctl_reload *e;

	if (r->n == CTL_RELOADS_KEPT) {
		free(r->v[0].reason);
		free(r->v[0].error);
		memmove(&r->v[0], &r->v[1], (r->n - 1) * sizeof(r->v[0]));
		r->n--;
	}
	e = &r->v[r->n++];
	e->unix_time = unix_time;
	e->ms = ms;
	e->reason = xstrdup(reason);
	e->error = error == NULL ? NULL : xstrdup(error);
}

void
ctl_reloads_free(struct ctl_reloads *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->v[i].reason);
		free(r->v[i].error);
	}
	r->n = 0;
}

/* ---- text ---- */

/* Rows of cells, escaped, printed with each column as wide as needed. */
struct table {
	size_t ncols;
	char **cells;
	size_t n;
};

/*
 * A cell: "-" for nothing; control characters and bytes outside ASCII as
 * \xNN, so that no text from a label moves the terminal; cut at 400.
 */
static void
cell(struct table *t, const char *s)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	if (s == NULL || *s == '\0')
		buf_addc(&b, '-');
	for (i = 0; s != NULL && s[i] != '\0'; i++) {
		if (i == 400) {
			buf_adds(&b, "...");
			break;
		}
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			buf_addf(&b, "\\x%02x", (unsigned char)s[i]);
		else
			buf_addc(&b, s[i]);
	}
	t->cells = xreallocarray(t->cells, t->n + 1, sizeof(char *));
	t->cells[t->n++] = buf_steal(&b);
}

static void
table_print(struct buf *b, struct table *t)
{
	size_t *w, i, len;

	w = xcalloc(t->ncols, sizeof(*w));
	for (i = 0; i < t->n; i++) {
		len = strlen(t->cells[i]);
		if (len > w[i % t->ncols])
			w[i % t->ncols] = len;
	}
	for (i = 0; i < t->n; i++) {
		buf_adds(b, t->cells[i]);
		if (i % t->ncols == t->ncols - 1)
			buf_addc(b, '\n');
		else
			buf_addf(b, "%*s", (int)(w[i % t->ncols] -
			    strlen(t->cells[i]) + 2), "");
		free(t->cells[i]);
	}
	free(t->cells);
	free(w);
}

static void
header(struct table *t, const char *const *names)
{
	for (t->ncols = 0; names[t->ncols] != NULL; t->ncols++)
		cell(t, names[t->ncols]);
}

static void
text_routes(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "ROUTE", "KIND", "SERVICES",
	    "BACKEND", "TASK", "NODE", "ADDRESS", "STATE", NULL };
	struct table t = { 0, NULL, 0 };
	size_t i, j;

	header(&t, h);
	for (i = 0; i < sn->nroutes; i++) {
		const struct ctl_route *r = &sn->routes[i];

		for (j = 0; j < r->nservers || j == 0; j++) {
			const struct ctl_server_row *s = j < r->nservers ?
			    &r->servers[j] : NULL;

			cell(&t, r->route);
			cell(&t, r->kind);
			cell(&t, r->services);
			cell(&t, r->backend);
			cell(&t, s == NULL ? "(no servers)" : s->task);
			cell(&t, s == NULL ? NULL : s->node);
			cell(&t, s == NULL ? NULL : s->addr);
			cell(&t, s == NULL ? NULL : s->state == NULL ?
			    "unknown" : s->state);
		}
	}
	table_print(b, &t);
}

static void
text_services(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "SERVICE", "STATE", "BACKEND",
	    "SERVERS", "LABEL", "REASON", NULL };
	struct table t = { 0, NULL, 0 };
	char n[24];
	size_t i;

	header(&t, h);
	for (i = 0; i < sn->nservices; i++) {
		const struct ctl_service *s = &sn->services[i];

		snprintf(n, sizeof(n), "%zu", s->nservers);
		cell(&t, s->name);
		cell(&t, ctl_service_state_name(s->state));
		cell(&t, s->backend);
		cell(&t, s->backend == NULL ? NULL : n);
		cell(&t, s->label);
		cell(&t, s->reason);
	}
	table_print(b, &t);
}

/* "12", "3 (expiring)", "-2 (expired)", or "unknown". */
static void
days_text(char *out, size_t len, const struct ctl_snapshot *sn,
    const struct ctl_cert *c)
{
	enum cert_expiry e = ctl_cert_expiry(sn, c);

	if (!c->parsed)
		snprintf(out, len, "unknown");
	else
		snprintf(out, len, "%lld%s%s%s", tls_days_left(c->not_after,
		    sn->now), e == CERT_VALID ? "" : " (", e == CERT_VALID ?
		    "" : tls_expiry_name(e), e == CERT_VALID ? "" : ")");
}

static void
text_certs(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "FILE", "SERVICE", "SUBJECT",
	    "HOSTS", "EXPIRES", "DAYS LEFT", "CERT SECRET", "KEY SECRET",
	    "DEFAULT", NULL };
	struct table t = { 0, NULL, 0 };
	char when[32], days[48];
	size_t i;

	header(&t, h);
	for (i = 0; i < sn->ncerts; i++) {
		const struct ctl_cert *c = &sn->certs[i];

		ctl_time(when, sizeof(when), c->not_after);
		days_text(days, sizeof(days), sn, c);
		cell(&t, c->file);
		cell(&t, c->service);
		cell(&t, c->subject);
		cell(&t, c->hosts);
		cell(&t, c->parsed ? when : NULL);
		cell(&t, days);
		cell(&t, c->cert_secret);
		cell(&t, c->key_secret);
		cell(&t, c->is_default ? "yes" : "no");
	}
	table_print(b, &t);
}

/* unix_time as "2006-01-02T15:04:05Z". */
void
ctl_time(char *out, size_t len, long long unix_time)
{
	time_t t = (time_t)unix_time;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		snprintf(out, len, "%lld", unix_time);
	else
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
text_reloads(struct buf *b, const struct ctl_snapshot *sn)
{
	static const char *const h[] = { "STARTED", "RESULT", "TOOK",
	    "REASON", "ERROR", NULL };
	struct table t = { 0, NULL, 0 };
	char when[32], took[24];
	size_t i;

	header(&t, h);
	for (i = 0; i < sn->nreloads; i++) {
		const struct ctl_reload *r = &sn->reloads[i];

		ctl_time(when, sizeof(when), r->unix_time);
		snprintf(took, sizeof(took), "%ums", r->ms);
		cell(&t, when);
		cell(&t, r->error == NULL ? "ok" : "failed");
		cell(&t, took);
		cell(&t, r->reason);
		cell(&t, r->error);
	}
	table_print(b, &t);
}

/* ---- JSON ---- */

/* A JSON string, escaped first when it is not UTF-8 (new). */
static json_t *
jstr(const char *s)
{
	json_t *j;
	struct buf b;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	buf_init(&b);
	str_escape(&b, s, 400);
	j = json_string(b.data == NULL ? "" : b.data);
	buf_free(&b);
	return j;
}

static json_t *
json_routes(const struct ctl_snapshot *sn)
{
	json_t *a = json_array(), *r, *servers;
	size_t i, j;

	for (i = 0; i < sn->nroutes; i++) {
		const struct ctl_route *rt = &sn->routes[i];

		servers = json_array();
		for (j = 0; j < rt->nservers; j++) {
			const struct ctl_server_row *s = &rt->servers[j];

			json_array_append_new(servers, json_pack("{s:o,s:o,"
			    "s:o,s:o}", "task", jstr(s->task), "node",
			    jstr(s->node), "address", jstr(s->addr), "state",
			    jstr(s->state)));
		}
		r = json_pack("{s:o,s:o,s:o,s:o,s:o}", "route",
		    jstr(rt->route), "kind", jstr(rt->kind), "services",
		    jstr(rt->services), "backend", jstr(rt->backend),
		    "servers", servers);
		json_array_append_new(a, r);
	}
	return json_pack("{s:o}", "routes", a);
}

static json_t *
json_services(const struct ctl_snapshot *sn)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; i < sn->nservices; i++) {
		const struct ctl_service *s = &sn->services[i];

		json_array_append_new(a, json_pack("{s:o,s:s,s:o,s:I,s:o,"
		    "s:o}", "service", jstr(s->name), "state",
		    ctl_service_state_name(s->state), "backend",
		    jstr(s->backend), "servers", (json_int_t)s->nservers,
		    "label", jstr(s->label), "reason", jstr(s->reason)));
	}
	return json_pack("{s:b,s:o}", "synced", sn->synced, "services", a);
}

static json_t *
json_certs(const struct ctl_snapshot *sn)
{
	json_t *a = json_array();
	json_t *o;
	char when[32];
	size_t i;

	for (i = 0; i < sn->ncerts; i++) {
		const struct ctl_cert *c = &sn->certs[i];

		ctl_time(when, sizeof(when), c->not_after);
		o = json_pack("{s:o,s:o,s:o,s:o,s:o,s:b,s:o,s:o,s:o,s:o,s:o}",
		    "file", jstr(c->file), "service", jstr(c->service),
		    "hosts", jstr(c->hosts), "cert_secret",
		    jstr(c->cert_secret), "key_secret", jstr(c->key_secret),
		    "default", c->is_default, "subject", jstr(c->subject),
		    "names", c->parsed ? jstr(c->names) : json_null(),
		    "not_after", c->parsed ? json_string(when) : json_null(),
		    "days_left", c->parsed ? json_integer((json_int_t)
		    tls_days_left(c->not_after, sn->now)) : json_null(),
		    "expiry", c->parsed ? json_string(tls_expiry_name(
		    ctl_cert_expiry(sn, c))) : json_null());
		json_array_append_new(a, o);
	}
	return json_pack("{s:o}", "certs", a);
}

static json_t *
json_reloads(const struct ctl_snapshot *sn)
{
	json_t *a = json_array();
	char when[32];
	size_t i;

	for (i = 0; i < sn->nreloads; i++) {
		const struct ctl_reload *r = &sn->reloads[i];

		ctl_time(when, sizeof(when), r->unix_time);
		json_array_append_new(a, json_pack("{s:s,s:b,s:I,s:o,s:o}",
		    "started", when, "ok", r->error == NULL, "ms",
		    (json_int_t)r->ms, "reason", jstr(r->reason), "error",
		    jstr(r->error)));
	}
	return json_pack("{s:o}", "reloads", a);
}

/* The body of the reply to a "show" command. */
void
ctl_render(struct buf *b, const struct ctl_snapshot *sn, enum ctl_cmd cmd,
    int json)
{
	json_t *j = NULL;
	char *text;

	if (!json) {
		if (!sn->synced && cmd != CTL_SHOW_RELOADS)
			buf_adds(b, "(dovetail has not applied the swarm yet)\n");
		switch (cmd) {
		case CTL_SHOW_ROUTES:
			text_routes(b, sn);
			break;
		case CTL_SHOW_SERVICES:
			text_services(b, sn);
			break;
		case CTL_SHOW_CERTS:
			text_certs(b, sn);
			break;
		case CTL_SHOW_RELOADS:
			text_reloads(b, sn);
			break;
		default:
			break;
		}
		return;
	}
	switch (cmd) {
	case CTL_SHOW_ROUTES:
		j = json_routes(sn);
		break;
	case CTL_SHOW_SERVICES:
		j = json_services(sn);
		break;
	case CTL_SHOW_CERTS:
		j = json_certs(sn);
		break;
	case CTL_SHOW_RELOADS:
		j = json_reloads(sn);
		break;
	default:
		return;
	}
	if (j == NULL || (text = json_dumps(j, JSON_INDENT(2) |
	    JSON_PRESERVE_ORDER)) == NULL)
		fatalx("control: cannot render JSON");
	buf_adds(b, text);
	buf_addc(b, '\n');
	free(text);
	json_decref(j);
}
