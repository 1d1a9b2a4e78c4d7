/* SPDX-License-Identifier: ISC */
/*
 * Who may route which host on a swarm shared by several teams.  Pure: no
 * I/O, no clock, no globals.
 *
 * A host, and everything hung on it (its paths, its SNI, redirects from
 * it, the weights and options of the backend serving it), belongs to the
 * group of services that claimed it first, in the order Docker created
 * them.  A group is a stack (com.docker.stack.namespace); services of no
 * stack form one group among themselves, as they always shared hosts, or
 * with strict tenancy each is a group of its own.  The default route, for
 * unknown hosts, is owned the same way, as the host "*".  A service that
 * claims a host another group owns is refused whole, so the owner is never
 * affected; the operator may also reserve host patterns for stacks.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

#define STACK_LABEL "com.docker.stack.namespace"

/* One host a tenant asks for, and under which label. */
struct tclaim {
	const char *host;	/* borrowed from the spec */
	const char *label;	/* "hosts", "redirects", "default_backend" */
	size_t rank;		/* the tenant's place in creation order */
};

/* The claims of a set of tenants, to decide them in creation order. */
struct tenancy {
	struct tenant **order;	/* by rank */
	size_t n;
	struct tclaim *claims;	/* by host, then rank */
	size_t nclaims;
	const struct tenancy_opts *o;
};

static int
tclaim_cmp(const void *a, const void *b)
{
	const struct tclaim *x = a, *y = b;
	int c;

	c = strcmp(x->host, y->host);
	if (c != 0)
		return c;
	return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/*
 * Creation order: Docker's CreatedAt (normalised by swarm.c so that it
 * sorts as a string), services without one last, then the name, which
 * is unique in a swarm.  Stable across restarts of dovetail.
 */
int
tenancy_service_cmp(const struct service *a, const struct service *b)
{
	int c;

	if (a->created != NULL && b->created != NULL) {
		c = strcmp(a->created, b->created);
		if (c != 0)
			return c;
	} else if (a->created != NULL || b->created != NULL)
		return a->created != NULL ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* Borrowed stack name of a service, or NULL. */
static const char *
stack_of(const struct service *s)
{
	const char *ns = service_label(s, STACK_LABEL);

	return ns == NULL || *ns == '\0' ? NULL : ns;
}

static int
same_group(const struct service *a, const struct service *b,
    const struct tenancy_opts *o)
{
	const char *x = stack_of(a), *y = stack_of(b);

	if (a == b)
		return 1;
	if (x != NULL && y != NULL)
		return strcmp(x, y) == 0;
	if (x != NULL || y != NULL)
		return 0;
	return !o->strict;
}

/* "x.team-a.example.com" matches "*.team-a.example.com" and itself. */
static int
pin_matches(const char *pattern, const char *host)
{
	size_t hl = strlen(host), pl = strlen(pattern);

	if (strncmp(pattern, "*.", 2) != 0)
		return strcmp(pattern, host) == 0;
	return hl > pl - 1 && strcmp(host + hl - (pl - 1), pattern + 1) == 0;
}

/* Borrowed most specific pin of host, or NULL. */
static const struct host_pin *
pin_of(const struct tenancy_opts *o, const char *host)
{
	const struct host_pin *best = NULL;
	size_t i;

	for (i = 0; i < o->npins; i++) {
		if (pin_matches(o->pins[i].pattern, host) && (best == NULL ||
		    strlen(o->pins[i].pattern) > strlen(best->pattern)))
			best = &o->pins[i];
	}
	return best;
}

static void
add_tclaim(struct tclaim **v, size_t *n, const char *host,
    const char *label, size_t rank)
{
	*v = xreallocarray(*v, *n + 1, sizeof(**v));
	(*v)[*n].host = host;
	(*v)[*n].label = label;
	(*v)[*n].rank = rank;
	(*n)++;
}

/* The hosts tenant t asks for, each once per label. */
static void
collect(const struct tenant *t, size_t rank, struct tclaim **v, size_t *n)
{
	const char *h;
	size_t i;

	for (i = 0; i < t->spec->nhosts; i++)
		add_tclaim(v, n, t->spec->hosts[i], "hosts", rank);
	for (i = 0; i < t->spec->nredirects; i++) {
		h = strstr(t->spec->redirects[i].key, "://");
		add_tclaim(v, n, h == NULL ? t->spec->redirects[i].key : h + 3,
		    "redirects", rank);
	}
	if (t->spec->default_backend)
		add_tclaim(v, n, "*", "default_backend", rank);
}

static char *
owner_words(const struct service *s)
{
	const char *ns = stack_of(s);

	/* The stack is any label's text: escaped for the log. */
	return ns == NULL ? xasprintf("service %s (no stack)", s->name) :
	    xasprintf("service %s (stack %s)", s->name, esc(ns));
}

/*
 * Why tenant t may not have claim c, or NULL (new string).  order holds
 * the tenants by rank; those before t are decided.
 */
static char *
refusal(struct tenant *const *order, const struct tclaim *claims,
    size_t nclaims, const struct tclaim *c, const struct tenancy_opts *o)
{
	const struct tenant *t = order[c->rank], *owner;
	const struct host_pin *pin;
	const char *ns = stack_of(t->svc);
	char *who, *why;
	size_t k;

	pin = strcmp(c->host, "*") == 0 ? NULL : pin_of(o, c->host);
	if (pin != NULL && (ns == NULL || strcmp(ns, pin->stack) != 0))
		return xasprintf("host %s is reserved for stack %s by the "
		    "configuration (%s)", c->host, pin->stack, pin->pattern);
	/* The first admitted claimant of the host before t owns it. */
	k = (size_t)(c - claims);
	while (k > 0 && strcmp(claims[k - 1].host, c->host) == 0)
		k--;
	for (; k < nclaims && claims[k].rank < c->rank &&
	    strcmp(claims[k].host, c->host) == 0; k++) {
		owner = order[claims[k].rank];
		if (owner->refused)
			continue;
		if (same_group(owner->svc, t->svc, o))
			return NULL;
		who = owner_words(owner->svc);
		why = strcmp(c->host, "*") == 0 ? xasprintf("the default "
		    "route belongs to %s, created before it", who) :
		    xasprintf("host %s belongs to %s, created before it",
		    c->host, who);
		free(who);
		return why;
	}
	return NULL;
}

static int
tenant_rank_cmp(const void *a, const void *b)
{
	const struct tenant *const *x = a, *const *y = b;

	return tenancy_service_cmp((*x)->svc, (*y)->svc);
}

/*
 * The claims of every tenant not refused yet, by host then rank; sets
 * each tenant's rank.  v must outlive the result.
 */
struct tenancy *
tenancy_new(struct tenant *v, size_t n, const struct tenancy_opts *o)
{
	struct tenancy *t = xcalloc(1, sizeof(*t));
	size_t i;

	t->order = xcalloc(n == 0 ? 1 : n, sizeof(*t->order));
	t->n = n;
	t->o = o;
	for (i = 0; i < n; i++)
		t->order[i] = &v[i];
	sort_array(t->order, n, sizeof(*t->order), tenant_rank_cmp);
	for (i = 0; i < n; i++) {
		t->order[i]->rank = i;
		if (!t->order[i]->refused)
			collect(t->order[i], i, &t->claims, &t->nclaims);
	}
	sort_array(t->claims, t->nclaims, sizeof(*t->claims), tclaim_cmp);
	return t;
}

void
tenancy_free(struct tenancy *t)
{
	if (t == NULL)
		return;
	free(t->claims);
	free(t->order);
	free(t);
}

/*
 * Decides tenant x, once every tenant created before it is decided (its
 * refused final): refused, with label and message, when it claims a host
 * that an earlier tenant not refused owns for another group, or that the
 * operator reserved for another stack.
 */
void
tenancy_check(struct tenancy *t, struct tenant *x)
{
	struct tclaim *mine = NULL, *c;
	size_t j, nmine = 0;

	if (x->refused)
		return;
	collect(x, x->rank, &mine, &nmine);
	for (j = 0; j < nmine && !x->refused; j++) {
		c = find_in_array(&mine[j], t->claims, t->nclaims,
		    sizeof(*t->claims), tclaim_cmp);
		if (c == NULL)
			continue;
		x->message = refusal(t->order, t->claims, t->nclaims, c, t->o);
		if (x->message != NULL) {
			x->refused = 1;
			x->label = mine[j].label;
		}
	}
	free(mine);
}

/* All tenants at once, in creation order (tenancy_check for each). */
void
tenancy_decide(struct tenant *v, size_t n, const struct tenancy_opts *o)
{
	struct tenancy *t = tenancy_new(v, n, o);
	size_t i;

	for (i = 0; i < n; i++)
		tenancy_check(t, t->order[i]);
	tenancy_free(t);
}

/*
 * Why a service may not use the Docker secret of that name as its
 * certificate or key (new), or NULL when it may.  dovetail lends a
 * service no secret its creator could not give it anyway: a secret its
 * own spec gives its tasks, or one of its own stack
 * (com.docker.stack.namespace on the secret, as "docker stack deploy"
 * sets it).  A secret of no stack, or a file in secrets_dir that is no
 * Docker secret, is shared by the services of no stack, as it always
 * was, unless tenancy is strict.
 */
char *
tenancy_secret_refused(const struct swarm *sw, const struct service *s,
    const char *name, int strict)
{
	const struct secret *sec;
	const char *mine, *theirs;

	if (service_has_secret(s, name))
		return NULL;
	mine = stack_of(s);
	sec = swarm_secret(sw, name);
	theirs = sec == NULL ? NULL : sec->stack;
	if (theirs != NULL && mine != NULL && strcmp(theirs, mine) == 0)
		return NULL;
	if (theirs == NULL && mine == NULL && !strict)
		return NULL;
	if (theirs != NULL)
		return xasprintf("the secret \"%s\" belongs to stack \"%s\": "
		    "only its services, or a service given the secret "
		    "(--secret %s), may use it", name, theirs, name);
	if (mine != NULL)
		return xasprintf("the secret \"%s\" belongs to no stack: a "
		    "service of stack \"%s\" may use it only when given the "
		    "secret (--secret %s, or secrets: in the stack file)",
		    name, mine, name);
	return xasprintf("with strict tenancy a service may use only a "
	    "secret of its stack or one it is given (--secret %s); \"%s\" "
	    "is neither", name, name);
}
