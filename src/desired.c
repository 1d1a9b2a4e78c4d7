/* SPDX-License-Identifier: ISC */
/*
 * The desired HAProxy state, computed from a swarm snapshot: which
 * backends exist, which servers (tasks) each holds, and which host routes
 * to which backend.  Pure: no I/O, no clock, no globals.
 *
 * Services that share a host serve it together: the host routes to one
 * backend holding the tasks of all of them, so traffic follows the task
 * count.  A backend is therefore named after its set of services.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

struct routed {
	const struct service *svc;
	struct route_spec spec;
	struct dserver *servers;
	size_t nservers;
	const struct cert_pair *cert;
	char **acme_names;	/* spec.acme: the certificate's, sorted */
	size_t nacme_names;
	char *acme_id;		/* acme_hosts_id of them */
	int bad;		/* left out for a conflict */
	int admitted;		/* no conflict with those before it */
};

/* A route key one service asks for: a host (and path), or the default. */
struct claim {
	enum map_kind map;	/* MAP_ROUTES or MAP_SNI */
	char *key;
	const char *service;	/* name */
	size_t routed;		/* index into the routed array */
};

static int
claim_cmp(const void *a, const void *b)
{
	const struct claim *x = a, *y = b;
	int c;

	if (x->map != y->map)
		return (int)x->map - (int)y->map;
	c = strcmp(x->key, y->key);
	return c != 0 ? c : strcmp(x->service, y->service);
}

/* Creation order (tenancy.c), stable across restarts. */
static int
routed_cmp(const void *a, const void *b)
{
	return tenancy_service_cmp(((const struct routed *)a)->svc,
	    ((const struct routed *)b)->svc);
}

static int
droute_cmp(const void *a, const void *b)
{
	return strcmp(((const struct droute *)a)->key,
	    ((const struct droute *)b)->key);
}

int
dcert_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dcert *)a)->file,
	    ((const struct dcert *)b)->file);
}

const char *const map_suffixes[MAP_COUNT] = { "hosts", "sni", "redirects",
	"acme" };

static int
dserver_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dserver *)a)->name,
	    ((const struct dserver *)b)->name);
}

static int
dbackend_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dbackend *)a)->name,
	    ((const struct dbackend *)b)->name);
}

static int
problem_cmp(const void *a, const void *b)
{
	return strcmp(((const struct problem *)a)->service,
	    ((const struct problem *)b)->service);
}

static void
add_problem(struct desired *d, const char *service, const char *label,
    char *message)
{
	struct problem *p;

	d->problems = xreallocarray(d->problems, d->nproblems + 1,
	    sizeof(*d->problems));
	p = &d->problems[d->nproblems++];
	p->service = xstrdup(service);
	p->label = label == NULL ? NULL : xstrdup(label);
	p->message = message;
}

static int
network_matches(const char *net, const struct service *s, const char *name)
{
	const char *ns;
	size_t nslen;

	if (strcmp(net, name) == 0)
		return 1;
	/* A stack file's "net" is the swarm's "stack_net". */
	ns = service_label(s, "com.docker.stack.namespace");
	if (ns == NULL)
		return 0;
	nslen = strlen(ns);
	return strncmp(net, ns, nslen) == 0 && net[nslen] == '_' &&
	    strcmp(net + nslen + 1, name) == 0;
}

static const struct task_net *
task_net_named(const struct task *t, const struct service *s,
    const char *name)
{
	size_t i;

	for (i = 0; i < t->nnets; i++) {
		if (t->nets[i].network_name != NULL &&
		    network_matches(t->nets[i].network_name, s, name))
			return &t->nets[i];
	}
	return NULL;
}

/*
 * Checks the network label against the networks of the service's spec,
 * so that a wrong name is reported even before any task runs.  When a
 * network of the spec is unknown (the snapshot has no network list),
 * the check is left to the tasks.
 */
static int
check_spec_network(const struct swarm *sw, const struct service *s,
    const char *label, char **message)
{
	struct buf names;
	const char *name;
	size_t i;

	if (label == NULL)
		return 0;
	buf_init(&names);
	for (i = 0; i < s->nnetworks; i++) {
		name = swarm_network_name(sw, s->networks[i]);
		if (name == NULL || network_matches(name, s, label)) {
			buf_free(&names);
			return 0;
		}
		buf_addf(&names, "%s%s", i > 0 ? ", " : "", name);
	}
	*message = xasprintf("network \"%s\" is not one of the service's "
	    "networks (%s)", label, names.len > 0 ? names.data : "none");
	buf_free(&names);
	return -1;
}

static char *
net_names(const struct task *t)
{
	struct buf b;
	size_t i;

	buf_init(&b);
	for (i = 0; i < t->nnets; i++) {
		if (i > 0)
			buf_adds(&b, ", ");
		buf_adds(&b, t->nets[i].network_name != NULL ?
		    t->nets[i].network_name : t->nets[i].network_id);
	}
	if (b.len == 0)
		buf_adds(&b, "none");
	return buf_steal(&b);
}

/*
 * Where a running task is reached: its node's address and the published
 * port when the service publishes the port in host mode, otherwise its
 * address on the chosen (or only) network.  Returns 1 with *addr (new)
 * and *port set, 0 when the task cannot be reached yet (swarm.c leaves
 * out an address that is not one), and -1 with *message (new) when the
 * service's labels cannot work.
 */
static int
task_address(const struct swarm *sw, const struct service *s,
    const struct route_spec *spec, const struct task *t, char **addr,
    uint16_t *port, char **message)
{
	const struct task_net *net;
	const struct node *node;
	char *names;
	size_t i;

	for (i = 0; i < t->nports; i++) {
		if (t->ports[i].target != spec->port)
			continue;
		node = t->node_id == NULL ? NULL : swarm_node(sw, t->node_id);
		if (node == NULL || node->addr == NULL)
			return 0;
		*addr = xstrdup(node->addr);
		*port = t->ports[i].published;
		return 1;
	}
	if (spec->network != NULL) {
		net = task_net_named(t, s, spec->network);
		if (net == NULL) {
			names = net_names(t);
			*message = xasprintf("network \"%s\" is not one of "
			    "the service's networks (%s)", spec->network,
			    names);
			free(names);
			return -1;
		}
	} else if (t->nnets == 1) {
		net = &t->nets[0];
	} else if (t->nnets == 0) {
		*message = xasprintf("port %u is not published in host mode "
		    "and the service is on no network dovetail can reach",
		    spec->port);
		return -1;
	} else {
		names = net_names(t);
		*message = xasprintf("the service is on several networks "
		    "(%s): name one with the network label", names);
		free(names);
		return -1;
	}
	if (net->addr == NULL)
		return 0;
	*addr = xstrdup(net->addr);
	*port = spec->port;
	return 1;
}

static void
free_servers(struct dserver *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].name);
		free(v[i].addr);
		free(v[i].service);
	}
	free(v);
}

/* Fills r->servers; returns -1 with *message (new) on a label error. */
static int
service_servers(const struct swarm *sw, struct routed *r, char **message)
{
	const struct task *t, *end;
	char *addr;
	uint16_t port;
	size_t first, last;
	int rc;

	swarm_task_range(sw, r->svc->id, &first, &last);
	t = sw->tasks + first;
	end = sw->tasks + last;
	for (; t < end; t++) {
		if (!t->desired_running || t->state != TASK_RUNNING)
			continue;
		if (!name_valid(t->id, DT_NAME_MAX))
			continue;
		rc = task_address(sw, r->svc, &r->spec, t, &addr, &port,
		    message);
		if (rc == -1)
			return -1;
		if (rc == 0)
			continue;
		r->servers = xreallocarray(r->servers, r->nservers + 1,
		    sizeof(*r->servers));
		r->servers[r->nservers].name = xstrdup(t->id);
		r->servers[r->nservers].addr = addr;
		r->servers[r->nservers].port = port;
		r->servers[r->nservers].weight = -1;
		r->servers[r->nservers].service = xstrdup(r->svc->name);
		r->nservers++;
	}
	return 0;
}

/*
 * backend_mode=vip: one server, the service's virtual IP on the chosen
 * (or only) network, named after the service.
 */
static int
vip_server(const struct swarm *sw, struct routed *r, char **message)
{
	const struct vip *v = NULL;
	const char *name;
	size_t i, n = 0;

	for (i = 0; i < r->svc->nvips; i++) {
		name = swarm_network_name(sw, r->svc->vips[i].network_id);
		if (name != NULL && strcmp(name, "ingress") == 0)
			continue;
		if (r->spec.network == NULL ||
		    (name != NULL && network_matches(name, r->svc,
		    r->spec.network))) {
			v = &r->svc->vips[i];
			n++;
		}
	}
	if (n != 1) {
		*message = xstrdup(n == 0 ? "backend_mode=vip: the service has "
		    "no virtual IP on the network (endpoint mode dnsrr?)" :
		    "backend_mode=vip: the service has virtual IPs on several "
		    "networks: name one with the network label");
		return -1;
	}
	/* The server is named after the service id. */
	if (!name_valid(r->svc->id, DT_NAME_MAX)) {
		*message = xstrdup("backend_mode=vip: the service's id is "
		    "not what HAProxy accepts");
		return -1;
	}
	r->servers = xcalloc(1, sizeof(*r->servers));
	r->servers[0].name = xstrdup(r->svc->id);
	r->servers[0].addr = xstrdup(v->addr);
	r->servers[0].port = r->spec.port;
	r->servers[0].weight = -1;
	r->servers[0].service = xstrdup(r->svc->name);
	r->nservers = 1;
	return 0;
}

/*
 * r's servers, after its network label is checked: its tasks, or its
 * virtual IP (backend_mode=vip).  -1 with *message (new) on a problem.
 */
static int
routed_servers(const struct swarm *sw, struct routed *r, char **message)
{
	if (check_spec_network(sw, r->svc, r->spec.network, message) == -1)
		return -1;
	return r->spec.vip ? vip_server(sw, r, message) :
	    service_servers(sw, r, message);
}

/* FNV-1a, to give a stable short name to a set of services. */
static uint32_t
fnv1a(const char *s, uint32_t h)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

static char *
backend_name(const struct claim *c, size_t n)
{
	const char *kind = c[0].map == MAP_SNI ? "tls" : "";
	uint32_t h = 2166136261u;
	size_t i;

	if (n == 1)
		return xasprintf("%ssvc-%s", kind, c[0].service);
	for (i = 0; i < n; i++) {
		h = fnv1a(c[i].service, h);
		h = fnv1a("\n", h);
	}
	return xasprintf("%sgrp-%s-%08x", kind, c[0].service, h);
}

static char **
copy_strings(char *const *v, size_t n)
{
	char **out = xcalloc(n == 0 ? 1 : n, sizeof(char *));
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

/*
 * The label on which two services sharing a backend disagree about an
 * option of the backend, or NULL when they agree.
 */
static const char *
options_differ(const struct route_spec *a, const struct route_spec *b)
{
	size_t i;

	if (a->rewrite != b->rewrite)
		return "context_root_rewrite";
	if (!str_same(a->sticky_cookie, b->sticky_cookie))
		return "sticky_session_cookie";
	if (a->ip_hash != b->ip_hash)
		return "ip_hash";
	if (a->nws != b->nws)
		return "websocket_endpoints";
	for (i = 0; i < a->nws; i++)
		if (strcmp(a->ws_paths[i], b->ws_paths[i]) != 0)
			return "websocket_endpoints";
	return NULL;
}

/*
 * Server weights for a backend with a weight label among its services:
 * each weighted service gets its percentage of the traffic, the others
 * share what is left by task count.  HAProxy weights are 0-256; the
 * largest per-server share becomes 256.
 */
static void
apply_weights(struct dbackend *b, const struct routed *routed,
    const struct claim *c, size_t n)
{
	double *share, per, max = 0, total_w = 0, rest;
	size_t i, j, unweighted_servers = 0;
	int any = 0;

	for (i = 0; i < n; i++) {
		const struct routed *r = &routed[c[i].routed];

		if (r->spec.weight >= 0) {
			any = 1;
			total_w += r->spec.weight;
		} else
			unweighted_servers += r->nservers;
	}
	if (!any)
		return;
	share = xcalloc(n, sizeof(*share));
	rest = total_w >= 100 ? 0 : 100 - total_w;
	for (i = 0; i < n; i++) {
		const struct routed *r = &routed[c[i].routed];

		if (r->nservers == 0)
			share[i] = 0;
		else if (r->spec.weight >= 0)
			share[i] = (total_w > 100 ? r->spec.weight * 100 /
			    total_w : r->spec.weight) / (double)r->nservers;
		else
			share[i] = rest / (double)unweighted_servers;
		if (share[i] > max)
			max = share[i];
	}
	for (i = 0; i < n; i++) {
		per = max == 0 ? 0 : share[i] * 256 / max;
		for (j = 0; j < b->nservers; j++) {
			if (strcmp(b->servers[j].service, c[i].service) != 0)
				continue;
			b->servers[j].weight = (int)(per + 0.5);
			if (b->servers[j].weight == 0 && per > 0)
				b->servers[j].weight = 1;
		}
	}
	free(share);
}

/*
 * The backends of d by name while they are built, so that finding one is
 * not a walk of all: open addressing, slots hold an index + 1.
 */
struct backend_index {
	size_t *slot;
	size_t mask;
	size_t cap;		/* of d->backends */
};

static void
backend_index_init(struct backend_index *x, size_t most)
{
	size_t n = 16;

	while (n < most * 2)
		n *= 2;
	x->slot = xcalloc(n, sizeof(*x->slot));
	x->mask = n - 1;
	x->cap = 0;
}

/* Where name is, or the empty slot where it goes. */
static size_t *
backend_slot(const struct backend_index *x, const struct desired *d,
    const char *name)
{
	size_t i;

	i = (size_t)hash_bytes(name, strlen(name), HASH_INIT) & x->mask;
	while (x->slot[i] != 0 &&
	    strcmp(d->backends[x->slot[i] - 1].name, name) != 0)
		i = (i + 1) & x->mask;
	return &x->slot[i];
}

static const char *
build_backend(struct desired *d, struct backend_index *x,
    const struct claim *c, size_t n, const struct routed *routed)
{
	const struct route_spec *spec = &routed[c[0].routed].spec;
	struct dbackend *b;
	size_t i, j, k, *slot;
	char *name;

	name = backend_name(c, n);
	slot = backend_slot(x, d, name);
	if (*slot != 0) {
		free(name);
		return d->backends[*slot - 1].name;
	}
	if (d->nbackends == x->cap) {
		x->cap = x->cap == 0 ? 16 : x->cap * 2;
		d->backends = xreallocarray(d->backends, x->cap,
		    sizeof(*d->backends));
	}
	*slot = d->nbackends + 1;
	b = &d->backends[d->nbackends++];
	memset(b, 0, sizeof(*b));
	b->name = name;
	b->tcp = c[0].map == MAP_SNI;
	b->strip = spec->rewrite ? xstrdup(spec->context_root) : NULL;
	b->sticky_cookie = spec->sticky_cookie == NULL ? NULL :
	    xstrdup(spec->sticky_cookie);
	b->ip_hash = spec->ip_hash;
	b->ws_paths = copy_strings(spec->ws_paths, spec->nws);
	b->nws = spec->nws;
	b->services = xcalloc(n, sizeof(char *));
	for (i = 0; i < n; i++) {
		const struct routed *r = &routed[c[i].routed];

		b->services[b->nservices++] = xstrdup(c[i].service);
		b->servers = xreallocarray(b->servers,
		    b->nservers + r->nservers, sizeof(*b->servers));
		for (j = 0; j < r->nservers; j++) {
			k = b->nservers++;
			b->servers[k] = r->servers[j];
			b->servers[k].name = xstrdup(r->servers[j].name);
			b->servers[k].addr = xstrdup(r->servers[j].addr);
			b->servers[k].service = xstrdup(r->servers[j].service);
		}
	}
	apply_weights(b, routed, c, n);
	sort_array(b->servers, b->nservers, sizeof(*b->servers), dserver_cmp);
	return b->name;
}

static void
map_add(struct desired *d, enum map_kind m, const char *key,
    const char *value)
{
	d->maps[m] = xreallocarray(d->maps[m], d->nmap[m] + 1,
	    sizeof(*d->maps[m]));
	d->maps[m][d->nmap[m]].key = xstrdup(key);
	d->maps[m][d->nmap[m]].value = xstrdup(value);
	d->nmap[m]++;
}

static void
add_claim(struct claim **v, size_t *n, enum map_kind m, char *key,
    const struct routed *r, size_t idx)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].map = m;
	(*v)[*n].key = key;
	(*v)[*n].service = r->svc->name;
	(*v)[*n].routed = idx;
	(*n)++;
}

static void
free_claims(struct claim *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].key);
	free(v);
}

/* The route keys of every service not left out, sorted. */
static struct claim *
collect_claims(const struct routed *routed, size_t nrouted, size_t *n)
{
	struct claim *v = NULL;
	size_t i, j;

	*n = 0;
	for (i = 0; i < nrouted; i++) {
		const struct routed *r = &routed[i];

		if (r->bad)
			continue;
		for (j = 0; j < r->spec.nhosts; j++) {
			if (r->spec.passthrough)
				add_claim(&v, n, MAP_SNI,
				    xstrdup(r->spec.hosts[j]), r, i);
			else
				add_claim(&v, n, MAP_ROUTES, xasprintf("%s%s/",
				    r->spec.hosts[j], r->spec.context_root ==
				    NULL ? "" : r->spec.context_root), r, i);
		}
		if (r->spec.default_backend)
			add_claim(&v, n, MAP_ROUTES, xstrdup("*"), r, i);
	}
	sort_array(v, *n, sizeof(*v), claim_cmp);
	return v;
}

static void
left_out(struct desired *d, struct routed *r, const char *prefix,
    const char *label, char *message)
{
	char *full = xasprintf("%s.%s", prefix, label);

	add_problem(d, r->svc->name, full, message);
	free(full);
	r->bad = 1;
}

static const struct droute *
find_route(const struct droute *v, size_t n, const char *key)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].key, key) == 0)
			return &v[i];
	return NULL;
}

/*
 * The redirects (and ssl_redirect) of r, unless one of its sources is
 * redirected elsewhere by itself or by a service admitted before it.
 */
static void
admit_redirects(struct desired *d, struct routed *r,
    const struct desired_opts *o)
{
	const struct droute *other;
	struct droute *add;
	size_t j, nadd;
	const char *label;

	nadd = r->spec.nredirects + (r->spec.ssl_redirect ? r->spec.nhosts :
	    0);
	add = xcalloc(nadd == 0 ? 1 : nadd, sizeof(*add));
	for (j = 0; j < r->spec.nredirects; j++) {
		add[j].key = xstrdup(r->spec.redirects[j].key);
		add[j].value = xstrdup(r->spec.redirects[j].target);
	}
	for (; j < nadd; j++) {
		const char *h = r->spec.hosts[j - r->spec.nredirects];

		add[j].key = xasprintf("http://%s", h);
		add[j].value = o->https_port == 443 ? xasprintf("https://%s",
		    h) : xasprintf("https://%s:%u", h, o->https_port);
	}
	for (j = 0; j < nadd && !r->bad; j++) {
		label = j < r->spec.nredirects ? "redirects" : "ssl_redirect";
		other = find_route(add, j, add[j].key);
		if (other != NULL && strcmp(other->value, add[j].value) != 0)
			left_out(d, r, o->prefix, label, xasprintf("%s is "
			    "redirected both to %s and to %s", add[j].key,
			    other->value, add[j].value));
		other = find_route(d->maps[MAP_REDIRECTS],
		    d->nmap[MAP_REDIRECTS], add[j].key);
		if (!r->bad && other != NULL && strcmp(other->value,
		    add[j].value) != 0)
			left_out(d, r, o->prefix, label, xasprintf("%s is "
			    "redirected to %s by another service", add[j].key,
			    other->value));
	}
	for (j = 0; j < nadd; j++) {
		if (!r->bad && find_route(d->maps[MAP_REDIRECTS],
		    d->nmap[MAP_REDIRECTS], add[j].key) == NULL)
			map_add(d, MAP_REDIRECTS, add[j].key, add[j].value);
		free(add[j].key);
		free(add[j].value);
	}
	free(add);
}

/* A claim's place, to list each service's claims in order. */
struct claim_ref {
	size_t routed;
	size_t index;		/* into the claims, sorted by key */
};

static int
claim_ref_cmp(const void *a, const void *b)
{
	const struct claim_ref *x = a, *y = b;

	if (x->routed != y->routed)
		return x->routed < y->routed ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Services are admitted one by one in creation order (routed is sorted
 * so), each against those admitted before it: it may claim no host that
 * an admitted service of another group claimed (tenancy.c), and it must
 * agree with every admitted service on the options of each backend they
 * would share, and on where each redirect source they both name goes.
 * One that does not is left out, and its warning names the admitted
 * service; a service left out owns nothing.
 */
static void
admit_services(struct desired *d, struct routed *routed, size_t nrouted,
    const struct desired_opts *o)
{
	static const struct tenancy_opts open_swarm = { 0, NULL, 0 };
	struct tenant *v;
	struct tenancy *t;
	struct claim *c;
	const char *label;
	struct claim_ref *mine;
	size_t n, i, k, g, m;

	v = xcalloc(nrouted == 0 ? 1 : nrouted, sizeof(*v));
	for (i = 0; i < nrouted; i++) {
		v[i].svc = routed[i].svc;
		v[i].spec = &routed[i].spec;
		v[i].refused = routed[i].bad;
	}
	/* Same order as routed: v[i]'s rank is i. */
	t = tenancy_new(v, nrouted, o->tenancy != NULL ? o->tenancy :
	    &open_swarm);
	c = collect_claims(routed, nrouted, &n);
	/* Each service's claims, without a scan of all for each service. */
	mine = xcalloc(n + 1, sizeof(*mine));
	for (k = 0; k < n; k++) {
		mine[k].routed = c[k].routed;
		mine[k].index = k;
	}
	sort_array(mine, n, sizeof(*mine), claim_ref_cmp);
	for (i = 0, m = 0; i < nrouted; i++) {
		struct routed *r = &routed[i];

		tenancy_check(t, &v[i]);
		if (v[i].message != NULL) {
			left_out(d, r, o->prefix, v[i].label, v[i].message);
			d->nrefused_owner++;
		}
		for (; m < n && mine[m].routed < i; m++)
			;
		for (; m < n && mine[m].routed == i && !r->bad; m++) {
			k = mine[m].index;
			/* The claims of one key are together: its first. */
			for (g = k; g > 0 && c[g - 1].map == c[k].map &&
			    strcmp(c[g - 1].key, c[k].key) == 0; g--)
				;
			for (; g < n && c[g].map == c[k].map &&
			    strcmp(c[g].key, c[k].key) == 0; g++) {
				const struct routed *other =
				    &routed[c[g].routed];

				if (!other->admitted || (label = options_differ(
				    &other->spec, &r->spec)) == NULL)
					continue;
				left_out(d, r, o->prefix, label, xasprintf(
				    "differs from service %s, which serves "
				    "%s too", other->svc->name,
				    strcmp(c[k].key, "*") == 0 ?
				    "unknown hosts" : c[k].key));
				break;
			}
		}
		if (!r->bad)
			admit_redirects(d, r, o);
		r->admitted = !r->bad;
		v[i].refused = r->bad;
	}
	free_claims(c, n);
	free(mine);
	tenancy_free(t);
	free(v);
}

/*
 * The names that pick a service's certificate by SNI: its hosts, and the
 * hosts of its https:// redirect sources, which need the certificate too.
 * New array of strings borrowed from spec; *n says how many.
 */
static char **
cert_names(const struct route_spec *spec, size_t *n)
{
	char **v = xcalloc(spec->nhosts + spec->nredirects + 1, sizeof(*v));
	size_t i;

	*n = 0;
	for (i = 0; i < spec->nhosts; i++)
		v[(*n)++] = spec->hosts[i];
	for (i = 0; i < spec->nredirects; i++)
		if (strncmp(spec->redirects[i].key, "https://", 8) == 0)
			v[(*n)++] = spec->redirects[i].key + 8;
	return v;
}

static void
build_certs(struct desired *d, const struct routed *routed, size_t nrouted)
{
	struct dcert *c;
	const struct dcert *fallback = NULL;
	char **names;
	size_t i;

	for (i = 0; i < nrouted; i++) {
		const struct routed *r = &routed[i];

		if (r->bad || r->cert == NULL)
			continue;
		d->certs = xreallocarray(d->certs, d->ncerts + 1,
		    sizeof(*d->certs));
		c = &d->certs[d->ncerts++];
		c->file = xasprintf("svc-%s.pem", r->svc->name);
		c->service = xstrdup(r->svc->name);
		c->pem = xstrdup(r->cert->pem);
		c->acme = r->spec.acme;
		cert_info_copy(&c->info, &r->cert->info);
		names = cert_names(&r->spec, &c->nsnis);
		c->snis = copy_strings(names, c->nsnis);
		free(names);
		sort_array(c->snis, c->nsnis, sizeof(char *), str_cmp_ptr);
	}
	sort_array(d->certs, d->ncerts, sizeof(*d->certs), dcert_cmp);
	/* Without SNI: the default service's certificate, else the first. */
	for (i = 0; i < nrouted; i++) {
		const struct routed *r = &routed[i];
		struct dcert key;

		if (r->bad || r->cert == NULL || !r->spec.default_backend)
			continue;
		key.file = xasprintf("svc-%s.pem", r->svc->name);
		fallback = find_in_array(&key, d->certs, d->ncerts,
		    sizeof(*d->certs), dcert_cmp);
		free(key.file);
		break;
	}
	if (fallback == NULL && d->ncerts > 0)
		fallback = &d->certs[0];
	d->default_pem = fallback == NULL ? NULL : fallback->pem;
}

/*
 * A certificate's host names go to HAProxy as one crt-list line, in one
 * runtime API payload, which HAProxy 2.6 reads into one buffer: a longer
 * line resets the session on every attempt, and the other services'
 * changes in the same session with it.  So a service with more names
 * than fit is refused with its certificate, not retried for ever.
 */
#define SNI_LIST_MAX 12000

static char *
sni_list_too_long(const struct route_spec *spec)
{
	char **names, *message = NULL;
	size_t i, count, n = 0;

	names = cert_names(spec, &count);
	for (i = 0; i < count; i++)
		n += strlen(names[i]) + 1;
	free(names);
	if (n > SNI_LIST_MAX)
		message = xasprintf("%zu host names (%zu bytes) are too many "
		    "for one TLS certificate: HAProxy takes at most %d bytes "
		    "of them at run time", count, n, SNI_LIST_MAX);
	return message;
}

/* A limit of desired_opts, 0 standing for its default. */
#define LIMIT(v, def) ((v) == 0 ? (unsigned)(def) : (v))

/*
 * The first of the service's labels with dovetail's prefix whose value is
 * longer than the limit (new full name), or NULL.  Checked before any
 * label is read, so that no label is parsed at any size.
 */
static char *
label_too_long(const struct service *s, const struct desired_opts *o)
{
	size_t i, n = strlen(o->prefix);

	for (i = 0; i < s->nlabels; i++) {
		if (strncmp(s->labels[i].key, o->prefix, n) == 0 &&
		    s->labels[i].key[n] == '.' &&
		    strlen(s->labels[i].value) > LIMIT(o->max_label_bytes,
		    DT_MAX_LABEL_BYTES))
			return xstrdup(s->labels[i].key);
	}
	return NULL;
}

/*
 * Why the service may not use the secrets its ssl_cert and ssl_key name
 * (new; *label says which), or NULL (tenancy.c).
 */
static char *
secret_refused(const struct swarm *sw, const struct desired_opts *o,
    const struct routed *r, const char **label)
{
	int strict = o->tenancy != NULL && o->tenancy->strict;
	char *message;

	*label = "ssl_cert";
	message = tenancy_secret_refused(sw, r->svc, r->spec.ssl_cert, strict);
	if (message == NULL) {
		*label = "ssl_key";
		message = tenancy_secret_refused(sw, r->svc, r->spec.ssl_key,
		    strict);
	}
	return message;
}

static void
free_routed(struct routed *r)
{
	free_servers(r->servers, r->nservers);
	route_spec_free(&r->spec);
	free(r->acme_names);
	free(r->acme_id);
}

/*
 * An ACME service's certificate names (its hosts and https:// redirect
 * sources), and the store's certificate for them if it has one that
 * opens and names them all, else the one that names most of them (the
 * service's names changed).  None yet is no error: the service is
 * routed, and its certificate comes when the order is done.  Returns a
 * problem (new), with *label set, or NULL.
 */
static char *
acme_cert(const struct acme_store *st, struct routed *r, const char **label)
{
	const struct acme_cert *c;
	size_t i, n;

	r->acme_names = cert_names(&r->spec, &n);
	sort_array(r->acme_names, n, sizeof(char *), str_cmp_ptr);
	for (i = 0; i < n; i++)
		if (i == 0 || strcmp(r->acme_names[i],
		    r->acme_names[r->nacme_names - 1]) != 0)
			r->acme_names[r->nacme_names++] = r->acme_names[i];
	if (r->nacme_names > ACME_MAX_NAMES) {
		*label = "acme";
		return xasprintf("%zu names are more than an ACME certificate "
		    "holds (%d)", r->nacme_names, ACME_MAX_NAMES);
	}
	r->acme_id = acme_hosts_id(r->acme_names, r->nacme_names);
	c = acme_store_cert(st, r->acme_id);
	if (c != NULL && c->pair.pem != NULL && tls_names_covered(
	    &c->pair.info, r->acme_names, r->nacme_names) == r->nacme_names)
		r->cert = &c->pair;
	else if ((c = acme_store_fallback(st, r->acme_names,
	    r->nacme_names)) != NULL)
		r->cert = &c->pair;	/* until its own is issued */
	/* No redirect to an HTTPS that has no certificate yet. */
	if (r->cert == NULL)
		r->spec.ssl_redirect = 0;
	return NULL;
}

static int
acme_want_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acme_want *)a)->hosts_id,
	    ((const struct acme_want *)b)->hosts_id);
}

/*
 * The certificates to order: one per set of names the admitted ACME
 * services ask for.  And the challenges every HAProxy answers.
 */
static void
build_acme(struct desired *d, const struct routed *routed, size_t nrouted,
    const struct acme_store *st)
{
	const struct routed *r;
	struct acme_want key, *w;
	size_t i;

	d->acme_on = 1;
	for (i = 0; i < st->nchallenges; i++)
		map_add(d, MAP_ACME, st->challenges[i].key,
		    st->challenges[i].value);
	for (i = 0; i < nrouted; i++) {
		r = &routed[i];
		if (r->bad || r->acme_id == NULL)
			continue;
		key.hosts_id = r->acme_id;
		w = find_in_array(&key, d->acme, d->nacme, sizeof(*d->acme),
		    acme_want_cmp);
		if (w != NULL) {
			if (strcmp(r->svc->name, w->service) < 0) {
				free(w->service);
				w->service = xstrdup(r->svc->name);
			}
			continue;
		}
		d->acme = xreallocarray(d->acme, d->nacme + 1,
		    sizeof(*d->acme));
		w = &d->acme[d->nacme++];
		w->hosts_id = xstrdup(r->acme_id);
		w->hosts = copy_strings(r->acme_names, r->nacme_names);
		w->nhosts = r->nacme_names;
		w->service = xstrdup(r->svc->name);
		sort_array(d->acme, d->nacme, sizeof(*d->acme), acme_want_cmp);
	}
}

/* Reads one service's labels, certificate and servers into r. */
static int
route_service(struct desired *d, const struct swarm *sw,
    const struct desired_opts *o, struct routed *r)
{
	struct problem pb;
	const char *label;
	char *message, *full, *long_label;
	size_t i;
	int rc;

	if (!name_valid(r->svc->name, DT_NAME_MAX)) {
		add_problem(d, r->svc->name, NULL, xstrdup("the service name "
		    "is not a valid HAProxy name"));
		return -1;
	}
	for (i = 0; i < o->nexcluded; i++) {
		if (strcmp(o->excluded[i].service, r->svc->name) != 0)
			continue;
		add_problem(d, r->svc->name, o->excluded[i].label,
		    xstrdup(o->excluded[i].message));
		d->nrefused_haproxy++;
		return -1;
	}
	if ((long_label = label_too_long(r->svc, o)) != NULL) {
		add_problem(d, r->svc->name, long_label, xasprintf("the value "
		    "is longer than %u bytes ([routing] max_label_bytes)",
		    LIMIT(o->max_label_bytes, DT_MAX_LABEL_BYTES)));
		free(long_label);
		return -1;
	}
	switch (labels_parse(r->svc, o->prefix, o->cluster, &r->spec, &pb)) {
	case LABELS_IGNORED:
		return -1;
	case LABELS_ERROR:
		add_problem(d, pb.service, pb.label, pb.message);
		pb.message = NULL;
		problem_free(&pb);
		return -1;
	case LABELS_ROUTED:
		break;
	}
	label = NULL;
	message = NULL;
	if (r->spec.nhosts > LIMIT(o->max_hosts, DT_MAX_HOSTS)) {
		label = "hosts";
		message = xasprintf("%zu host names are more than %u "
		    "([routing] max_hosts)", r->spec.nhosts,
		    LIMIT(o->max_hosts, DT_MAX_HOSTS));
	} else if ((r->spec.passthrough || r->spec.ssl_cert != NULL ||
	    r->spec.ssl_redirect || r->spec.acme) && o->https_port == 0) {
		label = r->spec.passthrough ? "ssl_passthrough" :
		    r->spec.ssl_cert != NULL ? "ssl_cert" : r->spec.acme ?
		    "acme" : "ssl_redirect";
		message = xstrdup("HTTPS is off on this agent ([routing] "
		    "https_bind is empty)");
	} else if (r->spec.acme && o->acme == NULL) {
		label = "acme";
		message = xstrdup("ACME is off on this agent ([acme] enabled "
		    "is false)");
	} else if ((r->spec.ssl_cert != NULL || r->spec.acme) &&
	    (message = sni_list_too_long(&r->spec)) != NULL) {
		label = "hosts";
	} else if (r->spec.ssl_cert != NULL &&
	    (message = secret_refused(sw, o, r, &label)) != NULL) {
		/* secret_refused set the label */
	} else if (r->spec.ssl_cert != NULL) {
		r->cert = o->certs == NULL ? NULL : cert_store_find(o->certs,
		    r->spec.ssl_cert, r->spec.ssl_key);
		if (r->cert == NULL || r->cert->pem == NULL) {
			label = "ssl_cert";
			message = xstrdup(r->cert == NULL ? "the certificate "
			    "was not read" : r->cert->error);
			r->cert = NULL;
		}
	} else if (r->spec.acme)
		message = acme_cert(o->acme, r, &label);
	if (message == NULL) {
		rc = routed_servers(sw, r, &message);
		if (rc == -1)
			label = r->spec.vip && r->spec.network == NULL ?
			    "backend_mode" : "network";
	}
	if (message != NULL) {
		full = xasprintf("%s.%s", o->prefix, label);
		add_problem(d, r->svc->name, full, message);
		free(full);
		free_routed(r);
		memset(r, 0, sizeof(*r));
		return -1;
	}
	return 0;
}

/*
 * Returns the desired state (new) for the services of sw that carry
 * prefix labels and belong to the cluster ("" for none).  Services whose
 * labels are wrong are left out and listed in problems.
 */
struct desired *
desired_build(const struct swarm *sw, const struct desired_opts *o)
{
	struct desired *d;
	struct routed *routed;
	struct claim *claims;
	struct backend_index index;
	const char *backend;
	size_t i, nrouted = 0, nclaims, start;

	d = xcalloc(1, sizeof(*d));
	routed = xcalloc(sw->nservices, sizeof(*routed));
	for (i = 0; i < sw->nservices; i++) {
		routed[nrouted].svc = &sw->services[i];
		if (route_service(d, sw, o, &routed[nrouted]) == 0)
			nrouted++;
	}
	/* The first created decides conflicts. */
	sort_array(routed, nrouted, sizeof(*routed), routed_cmp);
	admit_services(d, routed, nrouted, o);

	claims = collect_claims(routed, nrouted, &nclaims);
	/* A backend for each key at most: the index never fills. */
	backend_index_init(&index, nclaims);
	for (start = 0; start < nclaims; start = i) {
		for (i = start + 1; i < nclaims && claims[i].map ==
		    claims[start].map && strcmp(claims[i].key,
		    claims[start].key) == 0; i++)
			;
		backend = build_backend(d, &index, claims + start, i - start,
		    routed);
		/* The default route is the frontend's default_backend. */
		if (claims[start].map == MAP_ROUTES &&
		    strcmp(claims[start].key, "*") == 0)
			d->default_backend = xstrdup(backend);
		else
			map_add(d, claims[start].map, claims[start].key,
			    backend);
	}
	free_claims(claims, nclaims);
	free(index.slot);
	build_certs(d, routed, nrouted);
	if (o->acme != NULL)
		build_acme(d, routed, nrouted, o->acme);

	sort_array(d->backends, d->nbackends, sizeof(*d->backends),
	    dbackend_cmp);
	for (i = 0; i < MAP_COUNT; i++)
		sort_array(d->maps[i], d->nmap[i], sizeof(*d->maps[i]),
		    droute_cmp);
	for (i = 0; i < nrouted; i++) {
		if (routed[i].bad)
			continue;
		d->nservices++;
		d->nhosts += routed[i].spec.nhosts;
	}
	sort_array(d->problems, d->nproblems, sizeof(*d->problems),
	    problem_cmp);
	for (i = 0; i < d->nbackends; i++)
		d->nservers += d->backends[i].nservers;
	d->check_inter = desired_check_inter(d->nservers,
	    LIMIT(o->check_rate, DT_CHECK_RATE), o->check_inter);

	for (i = 0; i < nrouted; i++)
		free_routed(&routed[i]);
	free(routed);
	return d;
}

/*
 * The servers backend b gets from sw's tasks, as build_backend gives
 * them, into *out (new) and *n; -1 when a service of b is not routed as
 * it was, or a task's address is a problem.
 */
static int
backend_servers(const struct swarm *sw, const struct desired_opts *o,
    const struct dbackend *b, struct dserver **out, size_t *n)
{
	struct routed *routed;
	struct claim *c;
	struct dbackend t;
	struct problem pb;
	char *message = NULL;
	size_t i, j;
	int rc = 0;

	routed = xcalloc(b->nservices, sizeof(*routed));
	c = xcalloc(b->nservices, sizeof(*c));
	memset(&t, 0, sizeof(t));
	memset(&pb, 0, sizeof(pb));
	for (i = 0; i < b->nservices && rc == 0; i++) {
		struct routed *r = &routed[i];

		c[i].service = b->services[i];
		c[i].routed = i;
		r->svc = swarm_service_named(sw, b->services[i]);
		if (r->svc == NULL || labels_parse(r->svc, o->prefix,
		    o->cluster, &r->spec, &pb) != LABELS_ROUTED) {
			problem_free(&pb);
			rc = -1;
			break;
		}
		rc = routed_servers(sw, r, &message);
		free(message);
		message = NULL;
		if (rc == 0) {
			t.servers = xreallocarray(t.servers, t.nservers +
			    r->nservers, sizeof(*t.servers));
			for (j = 0; j < r->nservers; j++) {
				t.servers[t.nservers++] = r->servers[j];
				memset(&r->servers[j], 0,
				    sizeof(r->servers[j]));
			}
		}
	}
	if (rc == 0) {
		apply_weights(&t, routed, c, b->nservices);
		sort_array(t.servers, t.nservers, sizeof(*t.servers),
		    dserver_cmp);
		*out = t.servers;
		*n = t.nservers;
	} else
		free_servers(t.servers, t.nservers);
	for (i = 0; i < b->nservices; i++)
		free_routed(&routed[i]);
	free(routed);
	free(c);
	return rc;
}

/*
 * A change of the tasks of the services ids names (sorted or not), and
 * of nothing else since d was built: d is made what desired_build(sw, o)
 * would make, by computing again the servers of the backends those
 * services serve.  Those backends as they were go into *old (new, the
 * backends only, for the names of the servers that leave).  Returns how
 * many backends changed, or -1, d left as it was, when the change reaches
 * beyond servers (a service gone or with a problem, a task's address a
 * problem, the health-check spacing moving): then build it whole.
 */
int
desired_patch_tasks(struct desired *d, const struct swarm *sw,
    const struct desired_opts *o, char *const *ids, size_t nids,
    struct desired **old)
{
	const struct service *s;
	struct problem key;
	struct dserver **servers = NULL;
	size_t *touched = NULL, *nservers = NULL, nt = 0, i, j, total;
	int rc = 0;

	*old = NULL;
	for (i = 0; i < nids && rc == 0; i++) {
		s = swarm_service(sw, ids[i]);
		key.service = s == NULL ? NULL : s->name;
		if (s == NULL || find_in_array(&key, d->problems,
		    d->nproblems, sizeof(*d->problems), problem_cmp) != NULL) {
			rc = -1;
			break;
		}
		for (j = 0; j < d->nbackends; j++) {
			const struct dbackend *b = &d->backends[j];
			const char *name = s->name;
			size_t k;

			if (find_in_array(&name, b->services, b->nservices,
			    sizeof(char *), str_cmp_ptr) == NULL)
				continue;
			for (k = 0; k < nt && touched[k] != j; k++)
				;
			if (k < nt)
				continue;
			touched = xreallocarray(touched, nt + 1,
			    sizeof(*touched));
			touched[nt++] = j;
		}
	}
	servers = xcalloc(nt + 1, sizeof(*servers));
	nservers = xcalloc(nt + 1, sizeof(*nservers));
	total = d->nservers;
	for (i = 0; i < nt && rc == 0; i++) {
		rc = backend_servers(sw, o, &d->backends[touched[i]],
		    &servers[i], &nservers[i]);
		if (rc == 0)
			total = total - d->backends[touched[i]].nservers +
			    nservers[i];
	}
	/* A new spacing rewrites every server line: a reload. */
	if (rc == 0 && desired_check_inter(total, LIMIT(o->check_rate,
	    DT_CHECK_RATE), d->check_inter) != d->check_inter)
		rc = -1;
	if (rc == 0) {
		*old = xcalloc(1, sizeof(**old));
		(*old)->backends = xcalloc(nt + 1, sizeof(*(*old)->backends));
		for (i = 0; i < nt; i++) {
			struct dbackend *b = &d->backends[touched[i]];
			struct dbackend *was = &(*old)->backends[i];

			was->name = xstrdup(b->name);
			was->services = copy_strings(b->services,
			    b->nservices);
			was->nservices = b->nservices;
			was->servers = b->servers;
			was->nservers = b->nservers;
			was->ws_paths = copy_strings(NULL, 0);
			b->servers = servers[i];
			b->nservers = nservers[i];
			servers[i] = NULL;
			nservers[i] = 0;
		}
		(*old)->nbackends = nt;
		sort_array((*old)->backends, nt, sizeof(*(*old)->backends),
		    dbackend_cmp);
		d->nservers = total;
	}
	for (i = 0; i < nt; i++)
		free_servers(servers[i], nservers[i]);
	free(servers);
	free(nservers);
	free(touched);
	return rc == 0 ? (int)nt : -1;
}

/* Seconds of spacing for n servers checked at rate per second at most. */
static unsigned
spacing(size_t n, unsigned rate)
{
	size_t s = (n + rate - 1) / rate;

	return s < 1 ? 1 : s > DT_CHECK_INTER_MAX ? DT_CHECK_INTER_MAX :
	    (unsigned)s;
}

/*
 * Seconds between two health checks of each server, so that HAProxy's
 * checks of all servers together stay within rate per second: 1 s up to
 * rate servers, 2 s up to twice as many, and so on, 60 s at most.  A
 * spacing change rewrites every server line, which is a reload, so the
 * spacing goes up as soon as the servers need it but down only when a
 * quarter more servers would still fit the lower one: a count that goes
 * back and forth across a boundary reloads once, not each time.
 */
unsigned
desired_check_inter(size_t n, unsigned rate, unsigned prev)
{
	unsigned want = spacing(n, rate), room;

	if (prev <= want)
		return want;
	room = spacing(n + n / 4, rate);
	return room < prev ? room : prev;
}

/* Whether some host passes TLS through to its tasks (by SNI). */
int
desired_passthrough(const struct desired *d)
{
	return d->nmap[MAP_SNI] > 0;
}

/* Whether some route has a context root: a key longer than "host/". */
int
desired_context_roots(const struct desired *d)
{
	size_t i;
	const char *slash;

	for (i = 0; i < d->nmap[MAP_ROUTES]; i++) {
		slash = strchr(d->maps[MAP_ROUTES][i].key, '/');
		if (slash != NULL && slash[1] != '\0')
			return 1;
	}
	return 0;
}

/* Whether some host is redirected from "scheme://". */
int
desired_redirects_from(const struct desired *d, const char *scheme)
{
	size_t i, n = strlen(scheme);

	for (i = 0; i < d->nmap[MAP_REDIRECTS]; i++)
		if (strncmp(d->maps[MAP_REDIRECTS][i].key, scheme, n) == 0 &&
		    strncmp(d->maps[MAP_REDIRECTS][i].key + n, "://", 3) == 0)
			return 1;
	return 0;
}

/*
 * Whether the file's frontends read map m, so that HAProxy loads it: the
 * routes always, the SNI map with the passthrough frontend, the
 * redirects while a frontend looks them up (render.c).
 */
int
desired_map_used(const struct desired *d, enum map_kind m)
{
	switch (m) {
	case MAP_SNI:
		return desired_passthrough(d);
	case MAP_REDIRECTS:
		return desired_redirects_from(d, "http") ||
		    (desired_https(d) && desired_redirects_from(d, "https"));
	case MAP_ACME:
		return d->acme_on;
	default:
		return 1;
	}
}

/* Whether HAProxy needs the HTTPS frontend: some TLS host is routed. */
int
desired_https(const struct desired *d)
{
	return d->ncerts > 0 || desired_passthrough(d);
}

void
desired_free(struct desired *d)
{
	size_t i, j;

	if (d == NULL)
		return;
	for (i = 0; i < d->nbackends; i++) {
		struct dbackend *b = &d->backends[i];

		free(b->name);
		free_strings(b->services, b->nservices);
		free_servers(b->servers, b->nservers);
		free(b->strip);
		free(b->sticky_cookie);
		free_strings(b->ws_paths, b->nws);
	}
	free(d->backends);
	free(d->default_backend);
	for (i = 0; i < MAP_COUNT; i++) {
		for (j = 0; j < d->nmap[i]; j++) {
			free(d->maps[i][j].key);
			free(d->maps[i][j].value);
		}
		free(d->maps[i]);
	}
	for (i = 0; i < d->ncerts; i++) {
		free(d->certs[i].file);
		free(d->certs[i].service);
		free(d->certs[i].pem);
		free_strings(d->certs[i].snis, d->certs[i].nsnis);
		cert_info_free(&d->certs[i].info);
	}
	free(d->certs);
	for (i = 0; i < d->nproblems; i++)
		problem_free(&d->problems[i]);
	free(d->problems);
	for (i = 0; i < d->nacme; i++) {
		free(d->acme[i].hosts_id);
		free_strings(d->acme[i].hosts, d->acme[i].nhosts);
		free(d->acme[i].service);
	}
	free(d->acme);
	free(d);
}

/* Borrowed backend of that name, or NULL. */
const struct dbackend *
desired_backend(const struct desired *d, const char *name)
{
	struct dbackend key;

	key.name = (char *)name;
	return find_in_array(&key, d->backends, d->nbackends,
	    sizeof(*d->backends), dbackend_cmp);
}
