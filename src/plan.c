/* SPDX-License-Identifier: ISC */
/*
 * The plan: what to tell the running HAProxy so that it equals the
 * desired state, as runtime API commands.  Pure.
 *
 * Only backends that already run are planned here; a backend that is
 * missing (or one that should go) needs the file and a reload, which the
 * agent decides from the rendered skeleton.  Order matters: servers are
 * added before a host is routed to them, and a host stops routing before
 * servers are removed.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

/* Appends a command; steals text and what (NULL: nothing to log). */
void
plan_add(struct plan *p, enum cmd_kind kind, char *text, char *what)
{
	if (p->ncmds == p->cap) {
		p->cap = p->cap == 0 ? 16 : p->cap * 2;
		p->cmds = xreallocarray(p->cmds, p->cap, sizeof(*p->cmds));
	}
	p->cmds[p->ncmds].kind = kind;
	p->cmds[p->ncmds].text = text;
	p->cmds[p->ncmds].what = what;
	p->cmds[p->ncmds].file = NULL;
	p->cmds[p->ncmds].pem = NULL;
	p->ncmds++;
}

void
plan_free(struct plan *p)
{
	size_t i;

	for (i = 0; i < p->ncmds; i++) {
		free(p->cmds[i].text);
		free(p->cmds[i].what);
	}
	free(p->cmds);
	memset(p, 0, sizeof(*p));
}

/*
 * Leaves out of p the commands that change HAProxy's certificates and
 * crt-list, keeping the others in order.
 */
void
plan_drop_tls(struct plan *p)
{
	size_t i, kept = 0;

	for (i = 0; i < p->ncmds; i++) {
		switch (p->cmds[i].kind) {
		case CMD_CERT_NEW:
		case CMD_CERT_SET:
		case CMD_CERT_COMMIT:
		case CMD_CERT_DEL:
		case CMD_CRT_LIST_ADD:
		case CMD_CRT_LIST_DEL:
			free(p->cmds[i].text);
			free(p->cmds[i].what);
			break;
		default:
			p->cmds[kept++] = p->cmds[i];
			break;
		}
	}
	p->ncmds = kept;
}

/* New "ADDR:PORT", and the server's options when d is given. */
static char *
addr_port(const struct desired *d, const struct dbackend *be,
    const struct dserver *s)
{
	struct buf b;

	buf_init(&b);
	if (d != NULL)
		render_server_args(&b, d, be, s);
	else
		render_server_addr(&b, s);
	return buf_steal(&b);
}

static void
plan_add_server(struct plan *p, const struct desired *d,
    const struct dbackend *be, const struct dserver *s)
{
	char *args = addr_port(d, be, s), *ap = addr_port(NULL, be, s);

	plan_add(p, CMD_ADD_SERVER, xasprintf("add server %s/%s %s",
	    be->name, s->name, args), xasprintf("service %s: backend %s: "
	    "server %s added at %s", s->service, be->name, s->name, ap));
	/* Added servers start in maintenance with their checks off. */
	plan_add(p, CMD_ENABLE_HEALTH, xasprintf("enable health %s/%s",
	    be->name, s->name), NULL);
	plan_add(p, CMD_SET_STATE, xasprintf("set server %s/%s state ready",
	    be->name, s->name), NULL);
	free(args);
	free(ap);
}

static void
plan_update_server(struct plan *p, const struct dbackend *be,
    const struct dserver *s, const struct rserver *r)
{
	char *ap;

	if (strcmp(r->addr, s->addr) != 0 || r->port != s->port) {
		ap = addr_port(NULL, be, s);
		plan_add(p, CMD_SET_ADDR, xasprintf("set server %s/%s addr "
		    "%s port %u", be->name, s->name, s->addr, s->port),
		    xasprintf("service %s: backend %s: server %s moved to %s",
		    s->service, be->name, s->name, ap));
		free(ap);
	}
	if ((s->weight < 0 ? 1 : s->weight) != r->weight)
		plan_add(p, CMD_SET_WEIGHT, xasprintf("set server %s/%s weight "
		    "%d", be->name, s->name, s->weight < 0 ? 1 : s->weight),
		    xasprintf("service %s: backend %s: server %s weight %d",
		    s->service, be->name, s->name, s->weight < 0 ? 1 :
		    s->weight));
	if ((r->admin & (SRV_ADMIN_MAINT_MASK | SRV_ADMIN_DRAIN_MASK)) != 0)
		plan_add(p, CMD_SET_STATE, xasprintf("set server %s/%s state "
		    "ready", be->name, s->name), xasprintf("service %s: "
		    "backend %s: server %s ready again", s->service, be->name,
		    s->name));
}

/*
 * A server that should not be there: out of rotation at once (its
 * established connections finish), then deleted.  Deletion fails while
 * connections remain; the next reconcile tries again.
 */
static int
dserver_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dserver *)a)->name,
	    ((const struct dserver *)b)->name);
}

/* "service S: " when the previous desired state knew the server. */
static char *
service_prefix(const struct desired *prev, const struct rserver *r)
{
	const struct dbackend *be;
	const struct dserver *s;
	struct dserver key;

	be = prev == NULL ? NULL : desired_backend(prev, r->backend);
	if (be == NULL)
		return xstrdup("");
	key.name = r->name;
	s = find_in_array(&key, be->servers, be->nservers, sizeof(*s),
	    dserver_cmp);
	return s == NULL ? xstrdup("") : xasprintf("service %s: ", s->service);
}

static void
plan_remove_server(struct plan *p, const struct desired *prev,
    const struct rserver *r)
{
	char *svc = service_prefix(prev, r);

	if (!rserver_in_maint(r))
		plan_add(p, CMD_SET_STATE, xasprintf("set server %s/%s state "
		    "maint", r->backend, r->name), xasprintf("%sbackend %s: "
		    "server %s drained", svc, r->backend, r->name));
	plan_add(p, CMD_DEL_SERVER, xasprintf("del server %s/%s", r->backend,
	    r->name), xasprintf("%sbackend %s: server %s removed", svc,
	    r->backend, r->name));
	free(svc);
}

/* A running server against a backend's name, for lower_bound. */
static int
rserver_backend_cmp(const void *elem, const void *name)
{
	return strcmp(((const struct rserver *)elem)->backend, name);
}

/* First running server of backend name. */
static size_t
first_rserver(const struct running *r, const char *name)
{
	return lower_bound(name, r->servers, r->nservers, sizeof(*r->servers),
	    rserver_backend_cmp);
}

static void
plan_servers(struct plan *p, const struct desired *d,
    const struct dbackend *be, const struct desired *prev,
    const struct running *r, int removals)
{
	size_t i = 0, j, end;
	int c;

	j = first_rserver(r, be->name);
	for (end = j; end < r->nservers &&
	    strcmp(r->servers[end].backend, be->name) == 0; end++)
		;
	while (i < be->nservers || j < end) {
		if (i == be->nservers)
			c = 1;
		else if (j == end)
			c = -1;
		else
			c = strcmp(be->servers[i].name, r->servers[j].name);
		if (c < 0) {
			if (!removals)
				plan_add_server(p, d, be, &be->servers[i]);
			i++;
		} else if (c > 0) {
			if (removals)
				plan_remove_server(p, prev, &r->servers[j]);
			j++;
		} else {
			if (!removals)
				plan_update_server(p, be, &be->servers[i],
				    &r->servers[j]);
			i++;
			j++;
		}
	}
}

static int
routable(const struct running *r, enum map_kind m, const char *value)
{
	if (m == MAP_REDIRECTS || m == MAP_ACME)
		return 1;
	return strcmp(value, DT_BACKEND_NO_ROUTE) == 0 ||
	    running_has_backend(r, value);
}

/* A map key for the log: "host h", "host h path /p", "unknown hosts". */
static char *
key_words(enum map_kind m, const char *key)
{
	const char *slash;

	if (m == MAP_REDIRECTS)
		return xstrdup(key);
	if (m == MAP_SNI)
		return xasprintf("TLS host %s", key);
	if (m == MAP_ACME)
		return xasprintf("ACME challenge %s", key);
	if (strcmp(key, "*") == 0)
		return xstrdup("unknown hosts");
	slash = strchr(key, '/');
	if (slash == NULL || slash[1] == '\0')
		return xasprintf("host %.*s", (int)(slash == NULL ?
		    strlen(key) : (size_t)(slash - key)), key);
	return xasprintf("host %.*s path %.*s", (int)(slash - key), key,
	    (int)(strlen(slash) - 1), slash);
}

static void
plan_map_entry(struct plan *p, enum map_kind m, const char *path,
    const struct droute *e, int set)
{
	char *words = key_words(m, e->key);

	plan_add(p, set ? CMD_MAP_SET : CMD_MAP_ADD, xasprintf("%s map %s "
	    "%s %s", set ? "set" : "add", path, e->key, e->value),
	    m == MAP_REDIRECTS ? xasprintf("%s redirected to %s", words,
	    e->value) : m == MAP_ACME ? xasprintf("%s answered", words) :
	    xasprintf("%s routed to backend %s", words, e->value));
	free(words);
}

static void
plan_map(struct plan *p, const struct desired *d, const struct running *r,
    enum map_kind m, const char *path)
{
	const struct droute *want = d->maps[m];
	const struct rmapent *have = r->maps[m];
	size_t i = 0, j = 0;
	int c;

	while (i < d->nmap[m] || j < r->nmap[m]) {
		if (i == d->nmap[m])
			c = 1;
		else if (j == r->nmap[m])
			c = -1;
		else
			c = strcmp(want[i].key, have[j].key);
		if (c < 0) {
			if (routable(r, m, want[i].value))
				plan_map_entry(p, m, path, &want[i], 0);
			i++;
		} else if (c > 0) {
			char *words = key_words(m, have[j].key);

			plan_add(p, CMD_MAP_DEL, xasprintf("del map %s %s",
			    path, have[j].key), xasprintf("%s no longer %s",
			    words, m == MAP_REDIRECTS ? "redirected" :
			    m == MAP_ACME ? "answered" : "routed"));
			free(words);
			j++;
		} else {
			if (strcmp(want[i].value, have[j].value) != 0 &&
			    routable(r, m, want[i].value))
				plan_map_entry(p, m, path, &want[i], 1);
			i++;
			j++;
		}
	}
}

static const char *
entry_value(const struct rmapent *v, size_t n, const char *key)
{
	struct rmapent k;
	const struct rmapent *e;

	k.key = (char *)key;
	e = find_in_array(&k, v, n, sizeof(*v), rmapent_cmp);
	return e == NULL ? NULL : e->value;
}

/* Puts pem in file at run time: a new store if HAProxy has none. */
static void
plan_cert(struct plan *p, const struct running *r, const char *dir,
    const char *file, const char *pem, const char *service)
{
	const char *done;
	char *path = xasprintf("%s/%s", dir, file);
	int loaded;

	loaded = find_in_array(&path, r->cert_files, r->ncert_files,
	    sizeof(char *), str_cmp_ptr) != NULL;
	done = entry_value(r->committed, r->ncommitted, file);
	if (loaded && done != NULL && strcmp(done, pem) == 0) {
		free(path);
		return;
	}
	if (!loaded)
		plan_add(p, CMD_CERT_NEW, xasprintf("new ssl cert %s", path),
		    NULL);
	plan_add(p, CMD_CERT_SET, xasprintf("set ssl cert %s <<\n%s", path,
	    pem), NULL);
	p->cmds[p->ncmds - 1].file = file;
	plan_add(p, CMD_CERT_COMMIT, xasprintf("commit ssl cert %s", path),
	    service == NULL ? xstrdup("default certificate updated") :
	    xasprintf("service %s: certificate %s loaded", service, file));
	p->cmds[p->ncmds - 1].file = file;
	p->cmds[p->ncmds - 1].pem = pem;
	free(path);
}

static char *
sni_filters(const struct dcert *c)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < c->nsnis; i++)
		buf_addf(&b, "%s%s", i > 0 ? " " : "", c->snis[i]);
	return buf_steal(&b);
}

/*
 * Certificates, changed live: the store first, then the crt-list entry
 * that makes SNI pick it; entries that should go leave the list, then
 * their store goes.
 */
static void
plan_tls(struct plan *p, const struct desired *d, const struct running *r,
    const struct render_opts *o)
{
	const char *have;
	struct cmd *c;
	char *want;
	size_t i;

	if (!r->tls)
		return;
	if (d->default_pem != NULL)
		plan_cert(p, r, o->certs_dir, "default.pem", d->default_pem,
		    NULL);
	for (i = 0; i < d->ncerts; i++) {
		const struct dcert *dc = &d->certs[i];

		plan_cert(p, r, o->certs_dir, dc->file, dc->pem, dc->service);
		want = sni_filters(dc);
		have = entry_value(r->crt_list, r->ncrt_list, dc->file);
		if (have != NULL && strcmp(have, want) != 0)
			plan_add(p, CMD_CRT_LIST_DEL, xasprintf("del ssl "
			    "crt-list %s %s/%s", o->crt_list, o->certs_dir,
			    dc->file), NULL);
		if (have == NULL || strcmp(have, want) != 0)
			plan_add(p, CMD_CRT_LIST_ADD, xasprintf("add ssl "
			    "crt-list %s <<\n%s/%s %s\n", o->crt_list,
			    o->certs_dir, dc->file, want), xasprintf("TLS "
			    "hosts %s use certificate %s", want, dc->file));
		free(want);
	}
	for (i = 0; i < r->ncrt_list; i++) {
		const char *f = r->crt_list[i].key;
		struct dcert key;

		key.file = (char *)f;
		if (strncmp(f, "svc-", 4) != 0 || find_in_array(&key,
		    d->certs, d->ncerts, sizeof(*d->certs), dcert_cmp) !=
		    NULL)
			continue;
		plan_add(p, CMD_CRT_LIST_DEL, xasprintf("del ssl crt-list %s "
		    "%s/%s", o->crt_list, o->certs_dir, f), NULL);
		plan_add(p, CMD_CERT_DEL, xasprintf("del ssl cert %s/%s",
		    o->certs_dir, f), xasprintf("certificate %s removed", f));
		c = &p->cmds[p->ncmds - 1];
		c->file = f;
	}
}

/*
 * Appends to p the commands that make the running backends of d equal
 * to d.  Running servers of backends d does not have are left alone:
 * those backends leave with the next reload.
 */
void
plan_build(struct plan *p, const struct desired *d,
    const struct desired *prev, const struct running *r,
    const struct render_opts *o)
{
	size_t i;
	int m;

	for (i = 0; i < d->nbackends; i++) {
		if (running_has_backend(r, d->backends[i].name))
			plan_servers(p, d, &d->backends[i], prev, r, 0);
	}
	plan_tls(p, d, r, o);
	for (m = 0; m < MAP_COUNT; m++)
		if (!r->map_missing[m])
			plan_map(p, d, r, m, o->map_paths[m]);
	for (i = 0; i < d->nbackends; i++) {
		if (running_has_backend(r, d->backends[i].name))
			plan_servers(p, d, &d->backends[i], prev, r, 1);
	}
}

/*
 * Appends to p the commands that make the servers of the backends r
 * lists (a read of those backends only) equal to d: plan_build's server
 * commands for them, without TLS or maps.
 */
void
plan_build_servers(struct plan *p, const struct desired *d,
    const struct desired *prev, const struct running *r)
{
	const struct dbackend *be;
	size_t i;
	int removals;

	for (removals = 0; removals <= 1; removals++) {
		for (i = 0; i < r->nbackends; i++) {
			be = desired_backend(d, r->backends[i]);
			if (be != NULL)
				plan_servers(p, d, be, prev, r, removals);
		}
	}
}

/* Whether reply (without its final newline) means cmd succeeded. */
int
plan_reply_ok(const struct cmd *cmd, const char *reply)
{
	/* A payload's lines are each answered by a "+ " prompt. */
	while (strncmp(reply, "+ ", 2) == 0)
		reply += 2;
	switch (cmd->kind) {
	case CMD_ADD_SERVER:
		return strncmp(reply, "New server registered.", 22) == 0;
	case CMD_DEL_SERVER:
		return strncmp(reply, "Server deleted.", 15) == 0;
	case CMD_SET_ADDR:
		return reply[0] == '\0' || strncmp(reply, "IP changed", 10) == 0 ||
		    strncmp(reply, "no need", 7) == 0 ||
		    strncmp(reply, "port changed", 12) == 0;
	case CMD_CERT_NEW:
		return strncmp(reply, "New empty certificate store", 27) == 0;
	case CMD_CERT_SET:
		return strncmp(reply, "Transaction created", 19) == 0 ||
		    strncmp(reply, "Transaction updated", 19) == 0;
	case CMD_CERT_COMMIT:
	case CMD_CRT_LIST_ADD:
		return strstr(reply, "\nSuccess!") != NULL;
	case CMD_CERT_DEL:
		return strncmp(reply, "Certificate '", 13) == 0 &&
		    strstr(reply, "' deleted!") != NULL;
	case CMD_CRT_LIST_DEL:
		return strncmp(reply, "Entry '", 7) == 0 &&
		    strstr(reply, " deleted in crtlist") != NULL;
	case CMD_SET_STATE:
	case CMD_SET_WEIGHT:
	case CMD_ENABLE_HEALTH:
	case CMD_MAP_ADD:
	case CMD_MAP_SET:
	case CMD_MAP_DEL:
		return reply[0] == '\0';
	}
	return 0;
}

/*
 * Commands HAProxy refused, held back until a time: one HAProxy refuses
 * is tried again once per poll interval, not on every change, and warned
 * about once until it succeeds.  A command is known by its text, but a
 * certificate's commands (new, set, commit: one transaction) by their
 * file, so that they are held, and tried again, together.
 */
static char *
hold_key(const struct cmd *c)
{
	if ((c->kind == CMD_CERT_NEW || c->kind == CMD_CERT_SET ||
	    c->kind == CMD_CERT_COMMIT) && c->file != NULL)
		return xasprintf("ssl cert %s", c->file);
	return xstrdup(c->text);
}

static struct held *
hold_find(const struct hold *h, const char *key)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->v[i].text, key) == 0)
			return &h->v[i];
	return NULL;
}

/* Records c refused, held until then; 1 when it was not held yet. */
int
hold_refused(struct hold *h, const struct cmd *c, long long until)
{
	char *key = hold_key(c);
	struct held *e = hold_find(h, key);

	if (e != NULL) {
		e->until = until;
		free(key);
		return 0;
	}
	h->v = xreallocarray(h->v, h->n + 1, sizeof(*h->v));
	h->v[h->n].text = key;
	h->v[h->n].until = until;
	h->n++;
	return 1;
}

/* Forgets c, which HAProxy took. */
void
hold_release(struct hold *h, const struct cmd *c)
{
	char *key = hold_key(c);
	struct held *e = hold_find(h, key);

	free(key);
	if (e == NULL)
		return;
	free(e->text);
	*e = h->v[--h->n];
}

/*
 * Takes out of p the commands held after now; entries that the plan no
 * longer asks for are forgotten, so a command the plan comes back to
 * starts afresh.  Returns how many were held back.
 */
size_t
hold_filter(struct hold *h, struct plan *p, long long now)
{
	size_t i, j, n = 0;
	struct held *e;
	char *key;
	int *asked;

	asked = xcalloc(h->n + 1, sizeof(*asked));
	for (i = j = 0; i < p->ncmds; i++) {
		key = hold_key(&p->cmds[i]);
		e = hold_find(h, key);
		free(key);
		if (e != NULL)
			asked[e - h->v] = 1;
		if (e != NULL && e->until > now) {
			free(p->cmds[i].text);
			free(p->cmds[i].what);
			n++;
			continue;
		}
		p->cmds[j++] = p->cmds[i];
	}
	p->ncmds = j;
	for (i = h->n; i > 0; i--) {
		if (!asked[i - 1]) {
			free(h->v[i - 1].text);
			h->v[i - 1] = h->v[--h->n];
		}
	}
	free(asked);
	return n;
}

void
hold_free(struct hold *h)
{
	size_t i;

	for (i = 0; i < h->n; i++)
		free(h->v[i].text);
	free(h->v);
	memset(h, 0, sizeof(*h));
}
