/* SPDX-License-Identifier: ISC */
/*
 * Docker Engine JSON to the swarm model.  No json_t leaves this file (but
 * for jnode.c, which takes one as a jnode): the rest of dovetail sees
 * plain structs with copied strings.  Unknown or
 * missing fields are treated as absent, not as errors, so that a newer
 * engine's answers still parse; only a malformed document is an error.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"
#include "jnode.h"

/* Borrowed value at a dotted path of object keys ("Spec.Name"), or NULL. */
static json_t *
jget(json_t *o, const char *path)
{
	char key[64];
	const char *dot;
	size_t len;

	while (o != NULL && (dot = strchr(path, '.')) != NULL) {
		len = (size_t)(dot - path);
		if (len >= sizeof(key))
			return NULL;
		memcpy(key, path, len);
		key[len] = '\0';
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return o == NULL ? NULL : json_object_get(o, path);
}

/* Borrowed string at a dotted path, or NULL when absent or not a string. */
static const char *
jstr(json_t *o, const char *path)
{
	return json_string_value(jget(o, path));
}

static char *
dupornull(const char *s)
{
	return s == NULL ? NULL : xstrdup(s);
}

/*
 * s if it is an IPv4 or IPv6 address, else NULL (s freed): an address
 * reaches HAProxy's file and runtime commands, so nothing else may.
 */
static char *
checked_addr(char *s)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (s != NULL && (inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1))
		return s;
	free(s);
	return NULL;
}

/* "10.0.0.5/24" -> "10.0.0.5" (new), or NULL when not an address. */
static char *
strip_prefixlen(const char *cidr)
{
	const char *slash = strchr(cidr, '/');

	return checked_addr(slash == NULL ? xstrdup(cidr) :
	    xstrndup(cidr, (size_t)(slash - cidr)));
}

/* Parses text as a JSON document of the given type (JSON_ARRAY...). */
static json_t *
load_json(const char *text, size_t len, json_type type, char **cause)
{
	json_error_t err;
	json_t *root;

	root = json_loadb(text, len, 0, &err);
	if (root == NULL) {
		*cause = xasprintf("bad JSON at line %d: %s", err.line,
		    err.text);
		return NULL;
	}
	if (json_typeof(root) != type) {
		*cause = xstrdup(type == JSON_ARRAY ? "expected a JSON array" :
		    "expected a JSON object");
		json_decref(root);
		return NULL;
	}
	return root;
}

static void node_free_fields(struct node *);

/* One element of each kind freed, for parse_array. */
static void
service_elem_free(void *p)
{
	service_free_fields(p);
}

static void
task_elem_free(void *p)
{
	task_free_fields(p);
}

static void
node_elem_free(void *p)
{
	node_free_fields(p);
}

static void
network_elem_free(void *p)
{
	struct network *n = p;

	free(n->id);
	free(n->name);
}

static void
secret_elem_free(void *p)
{
	struct secret *x = p;

	free(x->name);
	free(x->stack);
}

static void
dconfig_elem_free(void *p)
{
	dconfig_free_fields(p);
}

/* The line of text[i], counted from 1: for an error, never on the way. */
static int
line_at(const char *text, size_t i)
{
	const char *p = text, *end = text + i;
	int n = 1;

	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* Past the JSON whitespace at text[i]. */
static size_t
skip_space(const char *text, size_t len, size_t i)
{
	if (i >= len)
		return i;	/* text may be NULL when len is 0 */
	return (size_t)(json_space(text + i, text + len) - text);
}

/*
 * Parses a JSON array of objects into a new array of size-byte elements:
 * parse fills one element from one object, or returns -1 to skip it;
 * free_elem frees a filled one.  The result is sorted with cmp.
 *
 * One object is parsed at a time, so that a reply of ten thousand tasks
 * never becomes one tree in memory: only the elements and one object's
 * tree are held.  The objects are given to parse as jansson parsed them,
 * or to parse_jnode, with keep, as jnodes (jnode.c) of only the members
 * keep names (jsonkeep.c): no jansson tree of megabytes of tasks.  An
 * object json_keep cannot copy, or whose copy is refused, is parsed whole
 * by jansson, so that an error is jansson's, with its line.
 */
static int
parse_array(const char *text, size_t len, const struct json_keep *keep,
    size_t size, int (*parse)(json_t *, void *),
    int (*parse_jnode)(const struct jnode *, void *),
    void (*free_elem)(void *), int (*cmp)(const void *, const void *),
    void **out, size_t *nout, char **cause)
{
	json_error_t err;
	json_t *elem;
	struct jnode *node;
	struct jarena arena = { NULL };
	struct buf kept;
	size_t i, n = 0, cap = 0, used;
	char *v = NULL;
	int rc;

	buf_init(&kept);

	i = skip_space(text, len, 0);
	if (i == len || text[i] != '[') {
		*cause = xstrdup(i == len ? "bad JSON at line 1: empty reply" :
		    "expected a JSON array");
		return -1;
	}
	i = skip_space(text, len, i + 1);
	if (i < len && text[i] == ']')
		goto end;
	for (;;) {
		if (i == len || text[i] != '{') {
			*cause = i == len ? xasprintf("bad JSON at line %d: "
			    "the array is cut short", line_at(text, i)) :
			    xstrdup("expected a JSON array of objects");
			goto fail;
		}
		elem = NULL;
		node = NULL;
		jarena_reset(&arena);
		if (keep != NULL) {
			buf_reset(&kept);
			if (json_keep(text + i, len - i, keep, &kept,
			    &used) == 0)
				node = jnode_parse(&arena, kept.data, kept.len);
		}
		/* Whole, when there is no shape or the copy failed: then
		 * jansson's error names the line of the reply. */
		if (node == NULL) {
			elem = json_loadb(text + i, len - i,
			    JSON_DISABLE_EOF_CHECK, &err);
			if (elem == NULL) {
				*cause = xasprintf("bad JSON at line %d: %s",
				    line_at(text, i) + err.line - 1, err.text);
				goto fail;
			}
			/* Where the object ended, which jansson says. */
			if (err.position <= 0 ||
			    (size_t)err.position > len - i) {
				json_decref(elem);
				*cause = xasprintf("bad JSON at line %d: an "
				    "object of the array is too big",
				    line_at(text, i));
				goto fail;
			}
			used = (size_t)err.position;
		}
		i += used;
		if (n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			v = xreallocarray(v, cap, size);
		}
		memset(v + n * size, 0, size);
		if (parse_jnode == NULL)
			rc = parse(elem, v + n * size);
		else {
			if (node == NULL) {
				jarena_reset(&arena);
				node = jnode_from_json(&arena, elem);
			}
			rc = parse_jnode(node, v + n * size);
		}
		if (rc == 0)
			n++;
		json_decref(elem);
		i = skip_space(text, len, i);
		if (i < len && text[i] == ',') {
			i = skip_space(text, len, i + 1);
			continue;
		}
		if (i < len && text[i] == ']')
			break;
		*cause = xasprintf(i == len ? "bad JSON at line %d: the array "
		    "is cut short" : "bad JSON at line %d: ',' or ']' expected "
		    "in the array", line_at(text, i));
		goto fail;
	}
end:
	if ((i = skip_space(text, len, i + 1)) != len) {
		*cause = xasprintf("bad JSON at line %d: end of file expected",
		    line_at(text, i));
		goto fail;
	}
	buf_free(&kept);
	jarena_free(&arena);
	sort_array(v, n, size, cmp);
	*out = v == NULL ? xcalloc(1, size) : v;
	*nout = n;
	return 0;
fail:
	buf_free(&kept);
	jarena_free(&arena);
	for (i = 0; i < n; i++)
		free_elem(v + i * size);
	free(v);
	return -1;
}

/* Sort orders of the model: labels by key, services by id, tasks by
 * service then id. */
int
kv_cmp(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key,
	    ((const struct kv *)b)->key);
}

int
service_cmp(const void *a, const void *b)
{
	return strcmp(((const struct service *)a)->id,
	    ((const struct service *)b)->id);
}

int
task_cmp(const void *a, const void *b)
{
	const struct task *x = a, *y = b;
	int c;

	c = strcmp(x->service_id, y->service_id);
	return c != 0 ? c : strcmp(x->id, y->id);
}

static int
node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct node *)a)->id,
	    ((const struct node *)b)->id);
}

/* Frees n pairs and the array. */
void
kvs_free(struct kv *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

void
service_free_fields(struct service *s)
{
	size_t i;

	free(s->id);
	free(s->name);
	free(s->created);
	kvs_free(s->labels, s->nlabels);
	for (i = 0; i < s->nnetworks; i++)
		free(s->networks[i]);
	free(s->networks);
	for (i = 0; i < s->nvips; i++) {
		free(s->vips[i].network_id);
		free(s->vips[i].addr);
	}
	free(s->vips);
	for (i = 0; i < s->nsecrets; i++)
		free(s->secrets[i]);
	free(s->secrets);
}

void
task_free_fields(struct task *t)
{
	size_t i;

	free(t->id);
	free(t->service_id);
	free(t->node_id);
	for (i = 0; i < t->nnets; i++) {
		free(t->nets[i].network_id);
		free(t->nets[i].network_name);
		free(t->nets[i].addr);
	}
	free(t->nets);
	free(t->ports);
}

static void
node_free_fields(struct node *n)
{
	free(n->id);
	free(n->hostname);
	free(n->addr);
}

struct swarm *
swarm_new(void)
{
	return xcalloc(1, sizeof(struct swarm));
}

static void
free_services(struct swarm *sw)
{
	size_t i;

	for (i = 0; i < sw->nservices; i++)
		service_free_fields(&sw->services[i]);
	free(sw->services);
	sw->services = NULL;
	sw->nservices = 0;
}

static void
free_tasks(struct swarm *sw)
{
	size_t i;

	for (i = 0; i < sw->ntasks; i++)
		task_free_fields(&sw->tasks[i]);
	free(sw->tasks);
	sw->tasks = NULL;
	sw->ntasks = 0;
}

static void
free_networks(struct swarm *sw)
{
	size_t i;

	for (i = 0; i < sw->nnetworks; i++) {
		free(sw->networks[i].id);
		free(sw->networks[i].name);
	}
	free(sw->networks);
	sw->networks = NULL;
	sw->nnetworks = 0;
}

static void
free_secrets(struct swarm *sw)
{
	size_t i;

	for (i = 0; i < sw->nsecrets; i++) {
		free(sw->secrets[i].name);
		free(sw->secrets[i].stack);
	}
	free(sw->secrets);
	sw->secrets = NULL;
	sw->nsecrets = 0;
}

void
swarm_free(struct swarm *sw)
{
	size_t i;

	if (sw == NULL)
		return;
	free_networks(sw);
	free_secrets(sw);
	free_services(sw);
	free_tasks(sw);
	for (i = 0; i < sw->nnodes; i++)
		node_free_fields(&sw->nodes[i]);
	free(sw->nodes);
	free(sw);
}

/*
 * Docker's "2026-11-30T10:11:12.5Z" as "2026-11-30T10:11:12.500000000",
 * which sorts as a string (Docker trims the fraction's trailing zeros),
 * or NULL when it is not a UTC time of that shape.  New string.
 */
char *
swarm_sortable_time(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd";
	char out[sizeof(shape) + 10];
	size_t i, n;

	if (s == NULL || strlen(s) < sizeof(shape))
		return NULL;
	for (i = 0; i < sizeof(shape) - 1; i++) {
		if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) :
		    s[i] != shape[i])
			return NULL;
	}
	memcpy(out, s, i);
	out[i] = '.';
	memset(out + i + 1, '0', 9);
	out[i + 10] = '\0';
	s += i;
	if (*s == '.') {
		for (n = 0, s++; isdigit((unsigned char)*s); s++, n++) {
			if (n < 9)
				out[i + 1 + n] = *s;
		}
		if (n == 0)
			return NULL;
	}
	if (strcmp(s, "Z") != 0)
		return NULL;
	return xstrdup(out);
}

/* What parse_service reads of a service: jsonkeep.c drops the rest. */
static const struct json_keep service_keep_container[] = {
	{ "Secrets", NULL }, { NULL, NULL }
};
static const struct json_keep service_keep_template[] = {
	{ "Networks", NULL }, { "ContainerSpec", service_keep_container },
	{ NULL, NULL }
};
static const struct json_keep service_keep_spec[] = {
	{ "Name", NULL }, { "Labels", NULL }, { "Mode", NULL },
	{ "TaskTemplate", service_keep_template }, { NULL, NULL }
};
static const struct json_keep service_keep_endpoint[] = {
	{ "VirtualIPs", NULL }, { NULL, NULL }
};
const struct json_keep swarm_service_keep[] = {
	{ "ID", NULL }, { "CreatedAt", NULL }, { "Spec", service_keep_spec },
	{ "Endpoint", service_keep_endpoint }, { NULL, NULL }
};

/* A member of an object and where it stood, to find a name's last. */
struct member_at {
	const struct jnode *m;
	size_t at;
};

static int
member_at_cmp(const void *a, const void *b)
{
	const struct member_at *x = a, *y = b;
	int c = strcmp(x->m->key, y->m->key);

	return c != 0 ? c : (x->at > y->at) - (x->at < y->at);
}

/*
 * The string members of object o as labels, sorted by name; a name given
 * twice is its last value, as jansson keeps it.
 */
static void
parse_labels(struct service *s, const struct jnode *o)
{
	struct member_at *m;
	const struct jnode *v;
	size_t i, n = 0;

	if (o == NULL || o->type != JNODE_OBJECT || o->n == 0)
		return;
	m = xreallocarray(NULL, o->n, sizeof(*m));
	for (v = o->first; v != NULL; v = v->next, n++) {
		m[n].m = v;
		m[n].at = n;
	}
	sort_array(m, n, sizeof(*m), member_at_cmp);
	s->labels = xreallocarray(NULL, n, sizeof(*s->labels));
	for (i = 0; i < n; i++) {
		v = m[i].m;
		if ((i + 1 < n && strcmp(m[i + 1].m->key, v->key) == 0) ||
		    v->type != JNODE_STRING)
			continue;
		s->labels[s->nlabels].key = xstrdup(v->key);
		s->labels[s->nlabels].value = xstrdup(v->str);
		s->nlabels++;
	}
	free(m);
}

/* The string member of each object of array a (or NULL), new. */
static char **
member_strings(const struct jnode *a, const char *member, size_t *n)
{
	const struct jnode *v;
	const char *str;
	char **out;

	*n = 0;
	if (a == NULL)
		return NULL;
	out = xreallocarray(NULL, a->n, sizeof(char *));
	for (v = a->first; v != NULL; v = v->next) {
		str = jnode_str(v, member);
		if (str != NULL)
			out[(*n)++] = xstrdup(str);
	}
	return out;
}

static int
parse_service(const struct jnode *js, void *elem)
{
	struct service *s = elem;
	const struct jnode *v, *vips, *replicas;
	const char *id, *name, *str, *net;

	id = jnode_str(js, "ID");
	name = jnode_str(js, "Spec.Name");
	if (id == NULL || name == NULL)
		return -1;
	memset(s, 0, sizeof(*s));
	s->id = xstrdup(id);
	s->name = xstrdup(name);
	s->created = swarm_sortable_time(jnode_str(js, "CreatedAt"));
	parse_labels(s, jnode_get(js, "Spec.Labels"));

	s->networks = member_strings(jnode_array(js,
	    "Spec.TaskTemplate.Networks"), "Target", &s->nnetworks);

	vips = jnode_array(js, "Endpoint.VirtualIPs");
	if (vips != NULL) {
		s->vips = xreallocarray(NULL, vips->n, sizeof(*s->vips));
		for (v = vips->first; v != NULL; v = v->next) {
			net = jnode_str(v, "NetworkID");
			if (net == NULL || (str = jnode_str(v, "Addr")) == NULL)
				continue;
			s->vips[s->nvips].addr = strip_prefixlen(str);
			if (s->vips[s->nvips].addr == NULL)
				continue;
			s->vips[s->nvips].network_id = xstrdup(net);
			s->nvips++;
		}
	}

	/* The secrets the service's own tasks are given, by name. */
	s->secrets = member_strings(jnode_array(js,
	    "Spec.TaskTemplate.ContainerSpec.Secrets"), "SecretName",
	    &s->nsecrets);
	sort_array(s->secrets, s->nsecrets, sizeof(char *), str_cmp_ptr);

	replicas = jnode_get(js, "Spec.Mode.Replicated.Replicas");
	if (replicas != NULL && replicas->type == JNODE_INT) {
		s->replicated = 1;
		s->replicas = (uint64_t)replicas->num;
	}
	return 0;
}

/* Replaces the services of sw with those in the JSON array text. */
int
swarm_parse_services(struct swarm *sw, const char *text, size_t len,
    char **cause)
{
	void *out;
	size_t n;

	if (parse_array(text, len, swarm_service_keep,
	    sizeof(struct service), NULL, parse_service, service_elem_free,
	    service_cmp, &out, &n, cause) == -1)
		return -1;
	free_services(sw);
	sw->services = out;
	sw->nservices = n;
	return 0;
}

static enum task_state
task_state_of(const char *s)
{
	static const char *const starting[] = { "new", "allocated",
	    "pending", "assigned", "accepted", "preparing", "ready",
	    "starting", NULL };
	static const char *const done[] = { "complete", "shutdown", "failed",
	    "rejected", "orphaned", "remove", NULL };
	size_t i;

	if (s == NULL)
		return TASK_OTHER;
	if (strcmp(s, "running") == 0)
		return TASK_RUNNING;
	for (i = 0; starting[i] != NULL; i++)
		if (strcmp(s, starting[i]) == 0)
			return TASK_STARTING;
	for (i = 0; done[i] != NULL; i++)
		if (strcmp(s, done[i]) == 0)
			return TASK_DONE;
	return TASK_OTHER;
}

/* What parse_task reads of a task: jsonkeep.c drops the rest (its spec,
 * its container's status, timestamps), most of a task's bytes. */
static const struct json_keep task_keep_status[] = {
	{ "State", NULL }, { "PortStatus", NULL }, { NULL, NULL }
};
static const struct json_keep task_keep_netspec[] = {
	{ "Name", NULL }, { "Ingress", NULL }, { NULL, NULL }
};
static const struct json_keep task_keep_network[] = {
	{ "ID", NULL }, { "Spec", task_keep_netspec }, { NULL, NULL }
};
static const struct json_keep task_keep_attachment[] = {
	{ "Network", task_keep_network }, { "Addresses", NULL },
	{ NULL, NULL }
};
const struct json_keep swarm_task_keep[] = {
	{ "ID", NULL }, { "ServiceID", NULL }, { "NodeID", NULL },
	{ "DesiredState", NULL }, { "Status", task_keep_status },
	{ "NetworksAttachments", task_keep_attachment }, { NULL, NULL }
};

static int
parse_task(const struct jnode *jt, void *elem)
{
	struct task *t = elem;
	const struct jnode *atts, *att, *addrs, *ports, *p, *ingress;
	const char *id, *svc, *desired, *mode, *name, *net;
	long long target, published;

	id = jnode_str(jt, "ID");
	svc = jnode_str(jt, "ServiceID");
	if (id == NULL || svc == NULL)
		return -1;
	memset(t, 0, sizeof(*t));
	t->id = xstrdup(id);
	t->service_id = xstrdup(svc);
	t->node_id = dupornull(jnode_str(jt, "NodeID"));
	desired = jnode_str(jt, "DesiredState");
	t->desired_running = desired != NULL && strcmp(desired,
	    "running") == 0;
	t->state = task_state_of(jnode_str(jt, "Status.State"));

	atts = jnode_array(jt, "NetworksAttachments");
	if (atts != NULL) {
		t->nets = xcalloc(atts->n, sizeof(*t->nets));
		for (att = atts->first; att != NULL; att = att->next) {
			ingress = jnode_get(att, "Network.Spec.Ingress");
			name = jnode_str(att, "Network.Spec.Name");
			if ((ingress != NULL && ingress->type == JNODE_TRUE) ||
			    (name != NULL && strcmp(name, "ingress") == 0))
				continue;
			addrs = jnode_array(att, "Addresses");
			net = jnode_str(att, "Network.ID");
			if (net == NULL || addrs == NULL ||
			    addrs->first->type != JNODE_STRING)
				continue;
			/* NULL when not an address: the task is on the
			 * network, but cannot be reached there. */
			t->nets[t->nnets].addr = strip_prefixlen(
			    addrs->first->str);
			t->nets[t->nnets].network_id = xstrdup(net);
			t->nets[t->nnets].network_name = dupornull(name);
			t->nnets++;
		}
	}

	ports = jnode_array(jt, "Status.PortStatus.Ports");
	if (ports != NULL) {
		t->ports = xcalloc(ports->n, sizeof(*t->ports));
		for (p = ports->first; p != NULL; p = p->next) {
			mode = jnode_str(p, "PublishMode");
			target = jnode_int(p, "TargetPort");
			published = jnode_int(p, "PublishedPort");
			if (mode != NULL && strcmp(mode, "host") != 0)
				continue;
			if (target <= 0 || target > 65535 || published <= 0 ||
			    published > 65535)
				continue;
			t->ports[t->nports].target = (uint16_t)target;
			t->ports[t->nports].published = (uint16_t)published;
			t->nports++;
		}
	}
	return 0;
}

/* Replaces the tasks of sw with those in the JSON array text. */
int
swarm_parse_tasks(struct swarm *sw, const char *text, size_t len,
    char **cause)
{
	void *out;
	size_t n;

	if (parse_array(text, len, swarm_task_keep, sizeof(struct task),
	    NULL, parse_task, task_elem_free, task_cmp, &out, &n,
	    cause) == -1)
		return -1;
	free_tasks(sw);
	sw->tasks = out;
	sw->ntasks = n;
	return 0;
}

/*
 * A node's address is Status.Addr, except on managers where it can read
 * 0.0.0.0 (or be missing): there ManagerStatus.Addr, without its port,
 * is the address other nodes use.
 */
static char *
node_addr(json_t *jn)
{
	const char *addr, *maddr, *colon;

	addr = jstr(jn, "Status.Addr");
	maddr = jstr(jn, "ManagerStatus.Addr");
	if ((addr == NULL || *addr == '\0' || strcmp(addr, "0.0.0.0") == 0) &&
	    maddr != NULL && (colon = strrchr(maddr, ':')) != NULL) {
		/* "[2001:db8::1]:2377" */
		if (maddr[0] == '[' && colon > maddr && colon[-1] == ']')
			return checked_addr(xstrndup(maddr + 1,
			    (size_t)(colon - maddr - 2)));
		return checked_addr(xstrndup(maddr, (size_t)(colon - maddr)));
	}
	if (addr == NULL || *addr == '\0' || strcmp(addr, "0.0.0.0") == 0)
		return NULL;
	return checked_addr(xstrdup(addr));
}

static int
parse_node(json_t *jn, void *elem)
{
	struct node *n = elem;

	if (jstr(jn, "ID") == NULL)
		return -1;
	n->id = xstrdup(jstr(jn, "ID"));
	n->hostname = dupornull(jstr(jn, "Description.Hostname"));
	n->addr = node_addr(jn);
	return 0;
}

/* Replaces the nodes of sw with those in the JSON array text. */
int
swarm_parse_nodes(struct swarm *sw, const char *text, size_t len,
    char **cause)
{
	void *out;
	size_t i, n;

	if (parse_array(text, len, NULL, sizeof(struct node), parse_node, NULL,
	    node_elem_free, node_cmp, &out, &n, cause) == -1)
		return -1;
	for (i = 0; i < sw->nnodes; i++)
		node_free_fields(&sw->nodes[i]);
	free(sw->nodes);
	sw->nodes = out;
	sw->nnodes = n;
	return 0;
}

static int
network_cmp(const void *a, const void *b)
{
	return strcmp(((const struct network *)a)->id,
	    ((const struct network *)b)->id);
}

static int
parse_network(json_t *jn, void *elem)
{
	struct network *net = elem;

	if (jstr(jn, "Id") == NULL || jstr(jn, "Name") == NULL)
		return -1;
	net->id = xstrdup(jstr(jn, "Id"));
	net->name = xstrdup(jstr(jn, "Name"));
	return 0;
}

/* Replaces the networks of sw (id and name) with those of the array. */
int
swarm_parse_networks(struct swarm *sw, const char *text, size_t len,
    char **cause)
{
	void *out;
	size_t n;

	if (parse_array(text, len, NULL, sizeof(struct network),
	    parse_network, NULL, network_elem_free, network_cmp, &out, &n,
	    cause) == -1)
		return -1;
	free_networks(sw);
	sw->networks = out;
	sw->nnetworks = n;
	return 0;
}

static int
secret_cmp(const void *a, const void *b)
{
	return strcmp(((const struct secret *)a)->name,
	    ((const struct secret *)b)->name);
}

static int
parse_secret(json_t *js, void *elem)
{
	struct secret *sec = elem;
	const char *stack;

	if (jstr(js, "Spec.Name") == NULL)
		return -1;
	sec->name = xstrdup(jstr(js, "Spec.Name"));
	/* A label name holds dots: not a path for jget. */
	stack = json_string_value(json_object_get(jget(js, "Spec.Labels"),
	    "com.docker.stack.namespace"));
	sec->stack = stack == NULL || *stack == '\0' ? NULL : xstrdup(stack);
	return 0;
}

/*
 * Replaces the secrets of sw with those of Docker's GET /secrets array:
 * their names and stacks, which is all Docker says of them (never the
 * data).
 */
int
swarm_parse_secrets(struct swarm *sw, const char *text, size_t len,
    char **cause)
{
	void *out;
	size_t n;

	if (parse_array(text, len, NULL, sizeof(struct secret), parse_secret,
	    NULL, secret_elem_free, secret_cmp, &out, &n, cause) == -1)
		return -1;
	free_secrets(sw);
	sw->secrets = out;
	sw->nsecrets = n;
	return 0;
}

static const char *const kinds[] = { "", "account", "lock", "challenge",
	"cert" };

static int
dconfig_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dconfig *)a)->name,
	    ((const struct dconfig *)b)->name);
}

/* A label of dovetail's ACME store: "" is absent. */
static const char *
acme_label(json_t *jc, const char *suffix)
{
	char key[64];
	const char *v;

	snprintf(key, sizeof(key), "%s%s", ACME_LABEL, suffix);
	v = json_string_value(json_object_get(jget(jc, "Spec.Labels"), key));
	return v == NULL ? "" : v;
}

/* Base64 (RFC 4648, padded) to bytes (new, NUL-terminated), or NULL. */
static char *
base64_decode(const char *in, size_t *len)
{
	size_t n = strlen(in), pad = 0;
	unsigned char *out;
	int got;

	if (n % 4 != 0 || n > INT32_MAX)
		return NULL;
	if (n > 0 && in[n - 1] == '=')
		pad++;
	if (n > 1 && in[n - 2] == '=')
		pad++;
	out = xmalloc(n / 4 * 3 + 1);
	got = n == 0 ? 0 : EVP_DecodeBlock(out, (const unsigned char *)in,
	    (int)n);
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return NULL;
	}
	*len = (size_t)got - pad;
	out[*len] = '\0';
	return (char *)out;
}

static long long
label_number(const char *v)
{
	long long n = 0;

	if (*v == '\0' || strlen(v) > 15)
		return 0;
	for (; *v != '\0'; v++) {
		if (!isdigit((unsigned char)*v))
			return 0;
		n = n * 10 + (*v - '0');
	}
	return n;
}

static int
digits(const char *s, size_t n)
{
	int v = 0;

	while (n-- > 0)
		v = v * 10 + (*s++ - '0');
	return v;
}

/* Unix time of swarm_sortable_time's shape (days from the civil date). */
static long long
sortable_unix(const char *t)
{
	long long y = digits(t, 4), m = digits(t + 5, 2), d = digits(t + 8, 2);
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468) * 86400 +
	    digits(t + 11, 2) * 3600 + digits(t + 14, 2) * 60 +
	    digits(t + 17, 2);
}

static int
parse_dconfig(json_t *jc, void *elem)
{
	struct dconfig *c = elem;
	const char *id, *name, *data, *kind, *created;
	char *when;
	size_t i;

	id = jstr(jc, "ID");
	name = jstr(jc, "Spec.Name");
	data = jstr(jc, "Spec.Data");
	if (id == NULL || name == NULL || !name_valid(id, DT_NAME_MAX) ||
	    !name_valid(name, DT_NAME_MAX))
		return -1;
	kind = acme_label(jc, "");
	for (i = 1; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kind, kinds[i]) == 0)
			break;
	if (i == sizeof(kinds) / sizeof(kinds[0]))
		return -1;
	memset(c, 0, sizeof(*c));
	c->data = base64_decode(data == NULL ? "" : data, &c->len);
	if (c->data == NULL)
		return -1;
	c->kind = (enum acme_kind)i;
	c->id = xstrdup(id);
	c->name = xstrdup(name);
	c->hosts_id = xstrdup(acme_label(jc, ".hosts"));
	c->expires = label_number(acme_label(jc, ".expires"));
	created = jstr(jc, "CreatedAt");
	when = created == NULL ? NULL : swarm_sortable_time(created);
	c->created = when == NULL ? 0 : sortable_unix(when);
	free(when);
	return 0;
}

/*
 * Docker configs of dovetail's ACME store (GET /configs filtered by the
 * com.dovetail.acme label): new array sorted by name, their data decoded.
 * Configs of no known kind, or whose data is not base64, are left out.
 */
int
swarm_parse_configs(const char *text, size_t len, struct dconfig **out,
    size_t *n, char **cause)
{
	void *v;

	if (parse_array(text, len, NULL, sizeof(struct dconfig), parse_dconfig,
	    NULL, dconfig_elem_free, dconfig_cmp, &v, n, cause) == -1)
		return -1;
	*out = v;
	return 0;
}

/* One config (GET /configs/NAME) of dovetail's store into c, or -1. */
int
swarm_parse_config(const char *text, size_t len, struct dconfig *c,
    char **cause)
{
	json_t *root;
	int rc;

	if ((root = load_json(text, len, JSON_OBJECT, cause)) == NULL)
		return -1;
	rc = parse_dconfig(root, c);
	json_decref(root);
	if (rc == -1)
		*cause = xstrdup("not a config of dovetail's ACME store");
	return rc;
}

/* The ID of a created object ({"ID": "..."}), new, or NULL. */
char *
swarm_parse_created(const char *text, size_t len)
{
	json_t *root;
	const char *id;
	char *cause, *out = NULL;

	if ((root = load_json(text, len, JSON_OBJECT, &cause)) == NULL) {
		free(cause);
		return NULL;
	}
	id = jstr(root, "ID");
	if (id != NULL && name_valid(id, DT_NAME_MAX))
		out = xstrdup(id);
	json_decref(root);
	return out;
}

/*
 * The body of POST /configs/create (new) for a config of dovetail's
 * store: its name, kind, and names' id and expiry when not empty or 0.
 */
char *
swarm_config_body(const char *name, enum acme_kind kind,
    const char *hosts_id, long long expires, const char *data, size_t len)
{
	json_t *root, *labels;
	unsigned char *b64;
	char key[64], num[24], *out;
	int n;

	if (len > INT32_MAX / 2)
		fatalx("config data too large");
	b64 = xmalloc(len / 3 * 4 + 5);
	n = EVP_EncodeBlock(b64, (const unsigned char *)data, (int)len);
	b64[n < 0 ? 0 : n] = '\0';
	labels = json_object();
	json_object_set_new(labels, ACME_LABEL, json_string(kinds[kind]));
	if (hosts_id != NULL && *hosts_id != '\0') {
		snprintf(key, sizeof(key), "%s.hosts", ACME_LABEL);
		json_object_set_new(labels, key, json_string(hosts_id));
	}
	if (expires > 0) {
		snprintf(key, sizeof(key), "%s.expires", ACME_LABEL);
		snprintf(num, sizeof(num), "%lld", expires);
		json_object_set_new(labels, key, json_string(num));
	}
	root = json_object();
	json_object_set_new(root, "Name", json_string(name));
	json_object_set_new(root, "Labels", labels);
	json_object_set_new(root, "Data", json_string((char *)b64));
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	free(b64);
	if (out == NULL)
		fatalx("json_dumps failed");
	return out;
}

void
dconfig_free_fields(struct dconfig *c)
{
	free(c->id);
	free(c->name);
	free(c->hosts_id);
	if (c->data != NULL)
		explicit_bzero(c->data, c->len);
	free(c->data);
	memset(c, 0, sizeof(*c));
}

void
dconfigs_free(struct dconfig *c, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		dconfig_free_fields(&c[i]);
	free(c);
}

/* Borrowed Docker secret of that name, or NULL. */
const struct secret *
swarm_secret(const struct swarm *sw, const char *name)
{
	struct secret key;

	key.name = (char *)name;
	return find_in_array(&key, sw->secrets, sw->nsecrets,
	    sizeof(*sw->secrets), secret_cmp);
}

/* Whether the service's spec gives its tasks the secret of that name. */
int
service_has_secret(const struct service *s, const char *name)
{
	return find_in_array(&name, s->secrets, s->nsecrets, sizeof(char *),
	    str_cmp_ptr) != NULL;
}

/*
 * Borrowed name of the network a service spec names by id (or by name,
 * which Docker also accepts), or NULL when sw does not know it.
 */
const char *
swarm_network_name(const struct swarm *sw, const char *target)
{
	struct network key, *found;
	size_t i;

	key.id = (char *)target;
	found = find_in_array(&key, sw->networks, sw->nnetworks,
	    sizeof(*sw->networks), network_cmp);
	if (found != NULL)
		return found->name;
	for (i = 0; i < sw->nnetworks; i++)
		if (strcmp(sw->networks[i].name, target) == 0)
			return sw->networks[i].name;
	return NULL;
}

static int
same_strings(char *const *a, size_t na, char *const *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return 0;
	for (i = 0; i < na; i++)
		if (!str_same(a[i], b[i]))
			return 0;
	return 1;
}

/* Everything of a service desired.c may read: all but its replicas. */
static int
service_same(const struct service *a, const struct service *b)
{
	size_t i;

	if (!str_same(a->id, b->id) || !str_same(a->name, b->name) ||
	    !str_same(a->created, b->created) ||
	    a->replicated != b->replicated || a->nlabels != b->nlabels ||
	    a->nvips != b->nvips ||
	    !same_strings(a->networks, a->nnetworks, b->networks,
	    b->nnetworks) ||
	    !same_strings(a->secrets, a->nsecrets, b->secrets, b->nsecrets))
		return 0;
	for (i = 0; i < a->nlabels; i++)
		if (!str_same(a->labels[i].key, b->labels[i].key) ||
		    !str_same(a->labels[i].value, b->labels[i].value))
			return 0;
	for (i = 0; i < a->nvips; i++)
		if (!str_same(a->vips[i].network_id, b->vips[i].network_id) ||
		    !str_same(a->vips[i].addr, b->vips[i].addr))
			return 0;
	return 1;
}

static int
task_same(const struct task *a, const struct task *b)
{
	size_t i;

	if (!str_same(a->id, b->id) || !str_same(a->service_id,
	    b->service_id) || !str_same(a->node_id, b->node_id) ||
	    a->desired_running != b->desired_running ||
	    a->state != b->state || a->nnets != b->nnets ||
	    a->nports != b->nports)
		return 0;
	for (i = 0; i < a->nnets; i++)
		if (!str_same(a->nets[i].network_id, b->nets[i].network_id) ||
		    !str_same(a->nets[i].network_name,
		    b->nets[i].network_name) ||
		    !str_same(a->nets[i].addr, b->nets[i].addr))
			return 0;
	for (i = 0; i < a->nports; i++)
		if (a->ports[i].target != b->ports[i].target ||
		    a->ports[i].published != b->ports[i].published)
			return 0;
	return 1;
}

/* Whether a and b hold the same services (replicas too) and tasks. */
int
swarm_same(const struct swarm *a, const struct swarm *b)
{
	size_t i;

	if (a->nservices != b->nservices || a->ntasks != b->ntasks)
		return 0;
	for (i = 0; i < a->nservices; i++)
		if (!service_same(&a->services[i], &b->services[i]) ||
		    a->services[i].replicas != b->services[i].replicas)
			return 0;
	for (i = 0; i < a->ntasks; i++)
		if (!task_same(&a->tasks[i], &b->tasks[i]))
			return 0;
	return 1;
}

/* A task against a service's ID, for lower_bound. */
static int
task_service_cmp(const void *elem, const void *id)
{
	return strcmp(((const struct task *)elem)->service_id, id);
}

/* The tasks of service id in sw (sorted by service): [*first, *end). */
void
swarm_task_range(const struct swarm *sw, const char *id, size_t *first,
    size_t *end)
{
	size_t lo;

	lo = lower_bound(id, sw->tasks, sw->ntasks, sizeof(*sw->tasks),
	    task_service_cmp);
	*first = lo;
	while (lo < sw->ntasks && strcmp(sw->tasks[lo].service_id, id) == 0)
		lo++;
	*end = lo;
}

/*
 * What a read of one service and its tasks (fresh: that service, or no
 * service when it is gone) changes of sw: nothing, its tasks only, or
 * more (the service itself, which may change any route).
 */
enum swarm_change
swarm_service_change(const struct swarm *sw, const char *id,
    const struct swarm *fresh)
{
	const struct service *was = swarm_service(sw, id);
	size_t first, end, ffirst, fend, i;

	if (was == NULL || fresh->nservices != 1 ||
	    !service_same(was, &fresh->services[0]))
		return was == NULL && fresh->nservices == 0 ? SWARM_SAME :
		    SWARM_SERVICE;
	/* A scale: when it has converged is told by the new count. */
	if (was->replicas != fresh->services[0].replicas)
		return SWARM_TASKS;
	swarm_task_range(sw, id, &first, &end);
	swarm_task_range(fresh, id, &ffirst, &fend);
	if (end - first != fend - ffirst)
		return SWARM_TASKS;
	for (i = 0; i < fend - ffirst; i++)
		if (!task_same(&sw->tasks[first + i], &fresh->tasks[ffirst + i]))
			return SWARM_TASKS;
	return SWARM_SAME;
}

/*
 * Replaces what sw knows of one service (the service and its tasks) with
 * what fresh holds, which came from queries filtered to that service.
 * Steals fresh's services and tasks; fresh is left empty.
 */
void
swarm_replace_service(struct swarm *sw, const char *id, struct swarm *fresh)
{
	struct service key, *at;
	size_t i, n, first, end, pos;

	/* Each part stays sorted: a splice, not a sort of the whole. */
	key.id = (char *)id;
	at = find_in_array(&key, sw->services, sw->nservices,
	    sizeof(*sw->services), service_cmp);
	if (at != NULL) {
		pos = (size_t)(at - sw->services);
		service_free_fields(at);
		memmove(at, at + 1, (sw->nservices - pos - 1) *
		    sizeof(*sw->services));
		sw->nservices--;
	}
	sw->services = xreallocarray(sw->services,
	    sw->nservices + fresh->nservices + 1, sizeof(*sw->services));
	for (i = 0; i < fresh->nservices; i++) {
		for (pos = sw->nservices; pos > 0 && service_cmp(
		    &sw->services[pos - 1], &fresh->services[i]) > 0; pos--)
			;
		memmove(&sw->services[pos + 1], &sw->services[pos],
		    (sw->nservices - pos) * sizeof(*sw->services));
		sw->services[pos] = fresh->services[i];
		sw->nservices++;
	}

	/* Only the service's own tasks (a filter by name matches too). */
	for (i = 0, n = 0; i < fresh->ntasks; i++) {
		if (strcmp(fresh->tasks[i].service_id, id) == 0)
			fresh->tasks[n++] = fresh->tasks[i];
		else
			task_free_fields(&fresh->tasks[i]);
	}
	fresh->ntasks = n;
	sort_array(fresh->tasks, fresh->ntasks, sizeof(*fresh->tasks),
	    task_cmp);
	swarm_task_range(sw, id, &first, &end);
	for (i = first; i < end; i++)
		task_free_fields(&sw->tasks[i]);
	/* Room for the larger of before and after: the tail moves first. */
	if (fresh->ntasks > end - first)
		sw->tasks = xreallocarray(sw->tasks, sw->ntasks - (end -
		    first) + fresh->ntasks, sizeof(*sw->tasks));
	if (end < sw->ntasks)
		memmove(&sw->tasks[first + fresh->ntasks], &sw->tasks[end],
		    (sw->ntasks - end) * sizeof(*sw->tasks));
	sw->ntasks = sw->ntasks - (end - first) + fresh->ntasks;
	for (i = 0; i < fresh->ntasks; i++)
		sw->tasks[first + i] = fresh->tasks[i];

	free(fresh->services);
	fresh->services = NULL;
	fresh->nservices = 0;
	free(fresh->tasks);
	fresh->tasks = NULL;
	fresh->ntasks = 0;
}

/* Moves into sw the services of other that sw does not have. */
void
swarm_merge_services(struct swarm *sw, struct swarm *other)
{
	size_t i, n = sw->nservices;

	sw->services = xreallocarray(sw->services, n + other->nservices,
	    sizeof(*sw->services));
	for (i = 0; i < other->nservices; i++) {
		/* Only the sorted part is searched: the first n. */
		if (find_in_array(&other->services[i], sw->services, n,
		    sizeof(*sw->services), service_cmp) != NULL)
			service_free_fields(&other->services[i]);
		else
			sw->services[sw->nservices++] = other->services[i];
	}
	other->nservices = 0;
	sort_array(sw->services, sw->nservices, sizeof(*sw->services),
	    service_cmp);
}

/* Borrowed. */
const struct service *
swarm_service(const struct swarm *sw, const char *id)
{
	struct service key;

	key.id = (char *)id;
	return find_in_array(&key, sw->services, sw->nservices,
	    sizeof(*sw->services), service_cmp);
}

/* The service named name, or NULL: a walk, for a lookup now and then. */
const struct service *
swarm_service_named(const struct swarm *sw, const char *name)
{
	size_t i;

	for (i = 0; i < sw->nservices; i++)
		if (strcmp(sw->services[i].name, name) == 0)
			return &sw->services[i];
	return NULL;
}

/* Borrowed; NULL for a task not placed on a node yet (id NULL). */
const struct node *
swarm_node(const struct swarm *sw, const char *id)
{
	struct node key;

	if (id == NULL)
		return NULL;
	key.id = (char *)id;
	return find_in_array(&key, sw->nodes, sw->nnodes, sizeof(*sw->nodes),
	    node_cmp);
}

/* Borrowed value of a service label, or NULL. */
const char *
service_label(const struct service *s, const char *key)
{
	struct kv k, *found;

	k.key = (char *)key;
	found = find_in_array(&k, s->labels, s->nlabels, sizeof(*s->labels),
	    kv_cmp);
	return found == NULL ? NULL : found->value;
}

int
swarm_parse_version(const char *text, size_t len, char **api, char **min_api,
    char **cause)
{
	json_t *root;

	if ((root = load_json(text, len, JSON_OBJECT, cause)) == NULL)
		return -1;
	if (jstr(root, "ApiVersion") == NULL) {
		*cause = xstrdup("/version has no ApiVersion");
		json_decref(root);
		return -1;
	}
	*api = xstrdup(jstr(root, "ApiVersion"));
	*min_api = xstrdup(jstr(root, "MinAPIVersion") != NULL ?
	    jstr(root, "MinAPIVersion") : *api);
	json_decref(root);
	return 0;
}

/*
 * Sets *manager to whether the engine can answer swarm queries, and
 * *detail (new) to the node's swarm state, for the message when not.
 */
int
swarm_parse_info(const char *text, size_t len, int *manager, char **detail,
    char **cause)
{
	json_t *root;
	const char *state;

	if ((root = load_json(text, len, JSON_OBJECT, cause)) == NULL)
		return -1;
	*manager = json_is_true(jget(root, "Swarm.ControlAvailable"));
	state = jstr(root, "Swarm.LocalNodeState");
	*detail = xstrdup(state != NULL && *state != '\0' ? state :
	    "unknown");
	json_decref(root);
	return 0;
}

static void
copy_field(char *dst, size_t size, const char *src)
{
	if (src == NULL)
		src = "";
	snprintf(dst, size, "%s", src);
}

/* Returns 0 and fills ev, or -1 when the line is not an event. */
int
swarm_parse_event(const char *text, size_t len, struct docker_event *ev)
{
	json_error_t err;
	json_t *root;
	const char *type;

	root = json_loadb(text, len, 0, &err);
	if (root == NULL || !json_is_object(root)) {
		json_decref(root);
		return -1;
	}
	memset(ev, 0, sizeof(*ev));
	type = jstr(root, "Type");
	if (type == NULL)
		ev->kind = EVENT_OTHER;
	else if (strcmp(type, "service") == 0)
		ev->kind = EVENT_SERVICE;
	else if (strcmp(type, "node") == 0)
		ev->kind = EVENT_NODE;
	else if (strcmp(type, "network") == 0)
		ev->kind = EVENT_NETWORK;
	else if (strcmp(type, "container") == 0)
		ev->kind = EVENT_CONTAINER;
	else if (strcmp(type, "config") == 0)
		ev->kind = EVENT_CONFIG;
	else
		ev->kind = EVENT_OTHER;
	copy_field(ev->action, sizeof(ev->action), jstr(root, "Action"));
	copy_field(ev->actor, sizeof(ev->actor), jstr(root, "Actor.ID"));
	copy_field(ev->name, sizeof(ev->name), jstr(root,
	    "Actor.Attributes.name"));
	/* Dotted label names: walk by hand, not with a dotted path. */
	copy_field(ev->task_id, sizeof(ev->task_id), json_string_value(
	    json_object_get(jget(root, "Actor.Attributes"),
	    "com.docker.swarm.task.id")));
	copy_field(ev->service_id, sizeof(ev->service_id), json_string_value(
	    json_object_get(jget(root, "Actor.Attributes"),
	    "com.docker.swarm.service.id")));
	if (jstr(root, "Actor.Attributes.signal") != NULL)
		ev->signal = (int)strtol(jstr(root, "Actor.Attributes.signal"),
		    NULL, 10);
	json_decref(root);
	return 0;
}

/* The "message" of a Docker error body (new), or -1. */
int
swarm_parse_error(const char *text, size_t len, char **message)
{
	json_error_t err;
	json_t *root;
	const char *m;

	root = json_loadb(text, len, 0, &err);
	m = root == NULL ? NULL : jstr(root, "message");
	if (m == NULL) {
		json_decref(root);
		return -1;
	}
	*message = xstrdup(m);
	json_decref(root);
	return 0;
}

/*
 * How long after a full read of bytes the next one comes: interval_ms,
 * or longer, so that full reads average rate_kbs KB/s at most, and an
 * hour at the longest.  Pure.
 */
long long
swarm_audit_delay_ms(size_t bytes, unsigned interval_ms, unsigned rate_kbs)
{
	unsigned long long ms;

	ms = (unsigned long long)bytes * 1000 /
	    ((unsigned long long)(rate_kbs == 0 ? 1 : rate_kbs) * 1024);
	if (ms < interval_ms)
		ms = interval_ms;
	return ms > SWARM_AUDIT_MAX_MS ? SWARM_AUDIT_MAX_MS : (long long)ms;
}
