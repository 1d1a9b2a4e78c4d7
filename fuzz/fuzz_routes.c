/* SPDX-License-Identifier: ISC */
/*
 * Labels of several services straight to what dovetail writes and plans:
 * the input is blocks of "key=value" lines, one block (ended by an empty
 * line) per service, each service given running tasks on one network.
 * Where fuzz_pipeline has to get JSON right first, this target mutates
 * the labels themselves.  Keys starting with '@' set the service: @name,
 * @tasks (0-9), @net2 (a second network), @published (a host-mode port).
 * The invariants are those of fuzz/outputs.c.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "fuzz.h"

#define PREFIX "com.docker.lb"
#define MAX_SERVICES 16
#define MAX_LABELS 32

static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
    "MIIBfuzz\n-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
    "MIIEfuzz\n-----END PRIVATE KEY-----\n";

static int
read_secret(void *arg, const char *name, struct buf *b, char **cause)
{
	buf_adds(b, strstr(name, "key") != NULL ? key_pem : cert_pem);
	return 0;
}

static void
add_task(struct swarm *sw, const struct service *s, size_t i, int net2,
    unsigned published)
{
	struct task *t;

	sw->tasks = xreallocarray(sw->tasks, sw->ntasks + 1,
	    sizeof(*sw->tasks));
	t = &sw->tasks[sw->ntasks++];
	memset(t, 0, sizeof(*t));
	t->id = xasprintf("%stask%zu", s->id, i);
	t->service_id = xstrdup(s->id);
	t->node_id = xstrdup("node1");
	t->desired_running = 1;
	t->state = TASK_RUNNING;
	t->nets = xcalloc(2, sizeof(*t->nets));
	t->nets[t->nnets].network_id = xstrdup("net1");
	t->nets[t->nnets].network_name = xstrdup("front");
	t->nets[t->nnets++].addr = xasprintf("10.0.%zu.%zu", sw->nservices,
	    i + 2);
	if (net2) {
		t->nets[t->nnets].network_id = xstrdup("net2");
		t->nets[t->nnets].network_name = xstrdup("back");
		t->nets[t->nnets++].addr = xasprintf("fd00::%zx:%zx",
		    sw->nservices, i + 2);
	}
	if (published > 0 && published < 65536) {
		t->ports = xcalloc(1, sizeof(*t->ports));
		t->ports[0].target = (uint16_t)published;
		t->ports[0].published = 30000;
		t->nports = 1;
	}
}

/* One block of lines (modified) as one service and its tasks. */
static void
add_service(struct swarm *sw, char *block)
{
	struct service *s;
	char *line, *next, *eq, *name = NULL;
	unsigned long ntasks = 1, published = 0;
	int net2 = 0;
	size_t i;

	sw->services = xreallocarray(sw->services, sw->nservices + 1,
	    sizeof(*sw->services));
	s = &sw->services[sw->nservices];
	memset(s, 0, sizeof(*s));
	s->id = xasprintf("s%02zu", sw->nservices);
	s->labels = xcalloc(MAX_LABELS, sizeof(*s->labels));
	for (line = block; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(line, "@name") == 0)
			name = eq;
		else if (strcmp(line, "@tasks") == 0)
			ntasks = strtoul(eq, NULL, 10) % 10;
		else if (strcmp(line, "@net2") == 0)
			net2 = 1;
		else if (strcmp(line, "@published") == 0)
			published = strtoul(eq, NULL, 10);
		else if (s->nlabels < MAX_LABELS) {
			s->labels[s->nlabels].key = strchr(line, '.') != NULL ?
			    xstrdup(line) : xasprintf(PREFIX ".%s", line);
			if (service_label(s, s->labels[s->nlabels].key) !=
			    NULL) {
				free(s->labels[s->nlabels].key);
				continue;
			}
			s->labels[s->nlabels++].value = xstrdup(eq);
			sort_array(s->labels, s->nlabels, sizeof(*s->labels),
			    kv_cmp);
		}
	}
	s->name = name != NULL ? xstrdup(name) : xasprintf("svc%zu",
	    sw->nservices);
	s->networks = xcalloc(2, sizeof(char *));
	s->networks[s->nnetworks++] = xstrdup("net1");
	if (net2)
		s->networks[s->nnetworks++] = xstrdup("net2");
	s->vips = xcalloc(1, sizeof(*s->vips));
	s->vips[0].network_id = xstrdup("net1");
	s->vips[0].addr = xasprintf("10.1.0.%zu", sw->nservices + 2);
	s->nvips = 1;
	s->replicated = 1;
	s->replicas = ntasks;
	for (i = 0; i < ntasks; i++)
		add_task(sw, s, i, net2, (unsigned)published);
	sw->nservices++;
}

static struct swarm *
make_swarm(const uint8_t *data, size_t size)
{
	struct swarm *sw = swarm_new();
	char *text, *block, *end;

	sw->networks = xcalloc(2, sizeof(*sw->networks));
	sw->networks[0].id = xstrdup("net1");
	sw->networks[0].name = xstrdup("front");
	sw->networks[1].id = xstrdup("net2");
	sw->networks[1].name = xstrdup("back");
	sw->nnetworks = 2;
	sw->nodes = xcalloc(1, sizeof(*sw->nodes));
	sw->nodes[0].id = xstrdup("node1");
	sw->nodes[0].hostname = xstrdup("w1");
	sw->nodes[0].addr = xstrdup("192.0.2.11");
	sw->nnodes = 1;
	text = fuzz_cstr(data, size);
	for (block = text; block != NULL && sw->nservices < MAX_SERVICES;
	    block = end) {
		end = strstr(block, "\n\n");
		if (end != NULL) {
			*end = '\0';
			end += 2;
		}
		add_service(sw, block);
	}
	free(text);
	sort_array(sw->services, sw->nservices, sizeof(*sw->services),
	    service_cmp);
	sort_array(sw->tasks, sw->ntasks, sizeof(*sw->tasks), task_cmp);
	return sw;
}

/*
 * HAProxy runs every backend of d, with every other server of it at an
 * old address and in maintenance, and the TLS frontend: the plan then
 * adds, moves, readies and loads certificates.
 */
static struct running *
make_running(const struct desired *d)
{
	struct running *r = running_new();
	const struct dbackend *be;
	struct rserver *rs;
	size_t i, j;

	r->tls = 1;
	for (i = 0; i < d->nbackends; i++) {
		be = &d->backends[i];
		r->backends = xreallocarray(r->backends, r->nbackends + 1,
		    sizeof(char *));
		r->backends[r->nbackends++] = xstrdup(be->name);
		for (j = 0; j < be->nservers; j += 2) {
			r->servers = xreallocarray(r->servers, r->nservers + 1,
			    sizeof(*r->servers));
			rs = &r->servers[r->nservers++];
			rs->backend = xstrdup(be->name);
			rs->name = xstrdup(be->servers[j].name);
			rs->addr = xstrdup("192.0.2.1");
			rs->port = 1;
			rs->admin = 1;
			rs->op = 0;
			rs->weight = 1;
		}
	}
	return r;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct swarm *sw = make_swarm(data, size);
	struct desired_opts o;
	struct cert_store certs;
	struct secret_io io;
	struct desired *d, *again;
	struct running *r;

	io.read = read_secret;
	io.check = NULL;
	io.arg = NULL;
	cert_store_load(&certs, sw, PREFIX, "", &io);
	memset(&o, 0, sizeof(o));
	o.prefix = PREFIX;
	o.cluster = "";
	o.https_port = 443;
	o.certs = &certs;
	d = desired_build(sw, &o);
	again = desired_build(sw, &o);
	r = make_running(d);
	fuzz_check_outputs(d, again, r);
	running_free(r);
	desired_free(again);
	desired_free(d);
	cert_store_free(&certs);
	swarm_free(sw);
	return 0;
}
