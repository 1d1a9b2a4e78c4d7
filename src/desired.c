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
};

struct host_claim {
	const char *host;
	const char *service;	/* name */
	size_t routed;		/* index into the routed array */
};

static int
claim_cmp(const void *a, const void *b)
{
	const struct host_claim *x = a, *y = b;
	int c;

	c = strcmp(x->host, y->host);
	return c != 0 ? c : strcmp(x->service, y->service);
}

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

static int
valid_identifier(const char *s)
{
	if (*s == '\0' || strlen(s) > 200)
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("_.-", *s) == NULL)
			return 0;
	}
	return 1;
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

static int network_matches(const char *, const struct service *,
    const char *);

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
 * and *port set, 0 when the task cannot be reached yet, and -1 with
 * *message (new) when the service's labels cannot work.
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
	struct task key;
	const struct task *t, *end;
	char *addr;
	uint16_t port;
	int rc;

	key.service_id = r->svc->id;
	key.id = "";
	t = sw->tasks;
	end = sw->tasks + sw->ntasks;
	/* Tasks are sorted by service: find the first of this one. */
	{
		size_t lo = 0, hi = sw->ntasks;

		while (lo < hi) {
			size_t mid = (lo + hi) / 2;

			if (strcmp(sw->tasks[mid].service_id,
			    key.service_id) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		t = sw->tasks + lo;
	}
	for (; t < end && strcmp(t->service_id, r->svc->id) == 0; t++) {
		if (!t->desired_running || t->state != TASK_RUNNING)
			continue;
		if (!valid_identifier(t->id))
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
		r->servers[r->nservers].service = xstrdup(r->svc->name);
		r->nservers++;
	}
	return 0;
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
backend_name(const struct host_claim *c, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	if (n == 1)
		return xasprintf("svc-%s", c[0].service);
	for (i = 0; i < n; i++) {
		h = fnv1a(c[i].service, h);
		h = fnv1a("\n", h);
	}
	return xasprintf("grp-%s-%08x", c[0].service, h);
}

static void
build_backend(struct desired *d, const struct host_claim *c, size_t n,
    const struct routed *routed)
{
	struct dbackend *b;
	size_t i, j, k;
	char *name;

	name = backend_name(c, n);
	for (i = 0; i < d->nbackends; i++) {
		if (strcmp(d->backends[i].name, name) == 0) {
			free(name);
			return;
		}
	}
	d->backends = xreallocarray(d->backends, d->nbackends + 1,
	    sizeof(*d->backends));
	b = &d->backends[d->nbackends++];
	memset(b, 0, sizeof(*b));
	b->name = name;
	b->services = xcalloc(n, sizeof(char *));
	for (i = 0; i < n; i++) {
		const struct routed *r = &routed[c[i].routed];

		b->services[b->nservices++] = xstrdup(c[i].service);
		b->servers = xreallocarray(b->servers,
		    b->nservers + r->nservers, sizeof(*b->servers));
		for (j = 0; j < r->nservers; j++) {
			k = b->nservers++;
			b->servers[k].name = xstrdup(r->servers[j].name);
			b->servers[k].addr = xstrdup(r->servers[j].addr);
			b->servers[k].port = r->servers[j].port;
			b->servers[k].service = xstrdup(r->servers[j].service);
		}
	}
	sort_array(b->servers, b->nservers, sizeof(*b->servers), dserver_cmp);
}

/*
 * Returns the desired state (new) for the services of sw that carry
 * prefix labels and belong to cluster ("" for none).  Services whose
 * labels are wrong are left out and listed in problems.
 */
struct desired *
desired_build(const struct swarm *sw, const char *prefix, const char *cluster)
{
	struct desired *d;
	struct routed *routed;
	struct host_claim *claims = NULL;
	struct problem pb;
	size_t i, j, nrouted = 0, nclaims = 0, start;
	char *message, *label;

	d = xcalloc(1, sizeof(*d));
	routed = xcalloc(sw->nservices, sizeof(*routed));
	for (i = 0; i < sw->nservices; i++) {
		struct routed *r = &routed[nrouted];

		r->svc = &sw->services[i];
		if (!valid_identifier(r->svc->name)) {
			add_problem(d, r->svc->name, NULL, xstrdup("the "
			    "service name is not a valid HAProxy name"));
			continue;
		}
		switch (labels_parse(r->svc, prefix, cluster, &r->spec, &pb)) {
		case LABELS_IGNORED:
			continue;
		case LABELS_ERROR:
			add_problem(d, pb.service, pb.label, pb.message);
			pb.message = NULL;
			problem_free(&pb);
			continue;
		case LABELS_ROUTED:
			break;
		}
		if (check_spec_network(sw, r->svc, r->spec.network,
		    &message) == -1 || service_servers(sw, r, &message) == -1) {
			label = xasprintf("%s.network", prefix);
			add_problem(d, r->svc->name, label, message);
			free(label);
			free_servers(r->servers, r->nservers);
			route_spec_free(&r->spec);
			memset(r, 0, sizeof(*r));
			continue;
		}
		claims = xreallocarray(claims, nclaims + r->spec.nhosts,
		    sizeof(*claims));
		for (j = 0; j < r->spec.nhosts; j++) {
			claims[nclaims].host = r->spec.hosts[j];
			claims[nclaims].service = r->svc->name;
			claims[nclaims].routed = nrouted;
			nclaims++;
		}
		nrouted++;
	}

	sort_array(claims, nclaims, sizeof(*claims), claim_cmp);
	d->routes = xcalloc(nclaims, sizeof(*d->routes));
	for (start = 0; start < nclaims; start = i) {
		for (i = start + 1; i < nclaims &&
		    strcmp(claims[i].host, claims[start].host) == 0; i++)
			;
		build_backend(d, claims + start, i - start, routed);
		d->routes[d->nroutes].host = xstrdup(claims[start].host);
		d->routes[d->nroutes].backend = backend_name(claims + start,
		    i - start);
		d->nroutes++;
	}
	sort_array(d->backends, d->nbackends, sizeof(*d->backends), dbackend_cmp);
	d->nservices = nrouted;
	sort_array(d->problems, d->nproblems, sizeof(*d->problems), problem_cmp);

	for (i = 0; i < nrouted; i++) {
		free_servers(routed[i].servers, routed[i].nservers);
		route_spec_free(&routed[i].spec);
	}
	free(routed);
	free(claims);
	return d;
}

void
desired_free(struct desired *d)
{
	size_t i, j;

	if (d == NULL)
		return;
	for (i = 0; i < d->nbackends; i++) {
		free(d->backends[i].name);
		for (j = 0; j < d->backends[i].nservices; j++)
			free(d->backends[i].services[j]);
		free(d->backends[i].services);
		free_servers(d->backends[i].servers, d->backends[i].nservers);
	}
	free(d->backends);
	for (i = 0; i < d->nroutes; i++) {
		free(d->routes[i].host);
		free(d->routes[i].backend);
	}
	free(d->routes);
	for (i = 0; i < d->nproblems; i++)
		problem_free(&d->problems[i]);
	free(d->problems);
	free(d);
}

/* Borrowed backend of that name, or NULL. */
const struct dbackend *
desired_backend(const struct desired *d, const char *name)
{
	struct dbackend key;

	key.name = (char *)name;
	return find_in_array(&key, d->backends, d->nbackends, sizeof(*d->backends),
	    dbackend_cmp);
}
