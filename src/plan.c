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

static void
plan_add(struct plan *p, enum cmd_kind kind, char *text, char *what)
{
	if (p->ncmds == p->cap) {
		p->cap = p->cap == 0 ? 16 : p->cap * 2;
		p->cmds = xreallocarray(p->cmds, p->cap, sizeof(*p->cmds));
	}
	p->cmds[p->ncmds].kind = kind;
	p->cmds[p->ncmds].text = text;
	p->cmds[p->ncmds].what = what;
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

static char *
addr_port(const struct dserver *s, int with_options)
{
	struct buf b;

	buf_init(&b);
	if (with_options)
		render_server_args(&b, s);
	else
		render_server_addr(&b, s);
	return buf_steal(&b);
}

static void
plan_add_server(struct plan *p, const struct dbackend *be,
    const struct dserver *s)
{
	char *args = addr_port(s, 1), *ap = addr_port(s, 0);

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
		ap = addr_port(s, 0);
		plan_add(p, CMD_SET_ADDR, xasprintf("set server %s/%s addr "
		    "%s port %u", be->name, s->name, s->addr, s->port),
		    xasprintf("service %s: backend %s: server %s moved to %s",
		    s->service, be->name, s->name, ap));
		free(ap);
	}
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

/* First running server of backend name, by binary search. */
static size_t
first_rserver(const struct running *r, const char *name)
{
	size_t lo = 0, hi = r->nservers, mid;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (strcmp(r->servers[mid].backend, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
plan_servers(struct plan *p, const struct dbackend *be,
    const struct desired *prev, const struct running *r, int removals)
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
				plan_add_server(p, be, &be->servers[i]);
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
routable(const struct running *r, const char *backend)
{
	return strcmp(backend, DT_BACKEND_NO_ROUTE) == 0 ||
	    running_has_backend(r, backend);
}

static void
plan_map(struct plan *p, const struct desired *d, const struct running *r,
    const char *map_path)
{
	size_t i = 0, j = 0;
	int c;

	while (i < d->nroutes || j < r->nmap) {
		if (i == d->nroutes)
			c = 1;
		else if (j == r->nmap)
			c = -1;
		else
			c = strcmp(d->routes[i].host, r->map[j].key);
		if (c < 0) {
			if (routable(r, d->routes[i].backend))
				plan_add(p, CMD_MAP_ADD, xasprintf("add map %s "
				    "%s %s", map_path, d->routes[i].host,
				    d->routes[i].backend), xasprintf("host %s "
				    "routed to backend %s", d->routes[i].host,
				    d->routes[i].backend));
			i++;
		} else if (c > 0) {
			plan_add(p, CMD_MAP_DEL, xasprintf("del map %s %s",
			    map_path, r->map[j].key), xasprintf("host %s no "
			    "longer routed", r->map[j].key));
			j++;
		} else {
			if (strcmp(d->routes[i].backend, r->map[j].value) != 0 &&
			    routable(r, d->routes[i].backend))
				plan_add(p, CMD_MAP_SET, xasprintf("set map %s "
				    "%s %s", map_path, d->routes[i].host,
				    d->routes[i].backend), xasprintf("host %s "
				    "routed to backend %s", d->routes[i].host,
				    d->routes[i].backend));
			i++;
			j++;
		}
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
    const char *map_path)
{
	size_t i;

	for (i = 0; i < d->nbackends; i++) {
		if (running_has_backend(r, d->backends[i].name))
			plan_servers(p, &d->backends[i], prev, r, 0);
	}
	plan_map(p, d, r, map_path);
	for (i = 0; i < d->nbackends; i++) {
		if (running_has_backend(r, d->backends[i].name))
			plan_servers(p, &d->backends[i], prev, r, 1);
	}
}

/* Whether reply (without its final newline) means cmd succeeded. */
int
plan_reply_ok(const struct cmd *cmd, const char *reply)
{
	switch (cmd->kind) {
	case CMD_ADD_SERVER:
		return strncmp(reply, "New server registered.", 22) == 0;
	case CMD_DEL_SERVER:
		return strncmp(reply, "Server deleted.", 15) == 0;
	case CMD_SET_ADDR:
		return reply[0] == '\0' || strncmp(reply, "IP changed", 10) == 0 ||
		    strncmp(reply, "no need", 7) == 0 ||
		    strncmp(reply, "port changed", 12) == 0;
	case CMD_SET_STATE:
	case CMD_ENABLE_HEALTH:
	case CMD_MAP_ADD:
	case CMD_MAP_SET:
	case CMD_MAP_DEL:
		return reply[0] == '\0';
	}
	return 0;
}
