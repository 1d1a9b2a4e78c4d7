/* SPDX-License-Identifier: ISC */
/*
 * Following the swarm: the connection to Docker, the full read of every
 * labelled service, task, node and network, the polls of a service that
 * changes until it settles, and the events that start them.  What is
 * read lands in the agent's swarm model and marks it dirty; reconcile
 * (apply.c) does the rest.
 */
#include "config.h"

#include <ctype.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dovetail.h"
#include "agent.h"

static void apply_doomed(struct agent *, struct swarm *);

void
docker_down(struct agent *a, char *why)
{
	report_once(&a->docker_error, xasprintf("docker: %s; HAProxy keeps "
	    "serving what it has, retrying", why));
	free(why);
	a->metrics.docker_errors++;
	a->docker_up = 0;
	docker_events_close(a->docker);
	a->docker_retry_at = mono_ms() + a->docker_backoff_ms;
	a->docker_backoff_ms *= 2;
	if (a->docker_backoff_ms > BACKOFF_MAX_MS)
		a->docker_backoff_ms = BACKOFF_MAX_MS;
}

void
docker_up(struct agent *a)
{
	char *cause;

	if (docker_connect(a->docker, &cause) == -1) {
		docker_down(a, cause);
		return;
	}
	if (docker_events_open(a->docker, 0, &cause) == -1) {
		docker_down(a, cause);
		return;
	}
	report_clear(&a->docker_error, "docker: reachable again");
	log_info("docker: connected to %s, a swarm manager",
	    docker_endpoint(a->docker));
	a->docker_up = 1;
	a->docker_backoff_ms = BACKOFF_MIN_MS;
	/* Events before the stream opened are lost: read everything. */
	a->next_full_sync = 0;
}

static int
fetch_into(struct agent *a, const char *path,
    int (*parse)(struct swarm *, const char *, size_t, char **),
    struct swarm *sw, char **cause)
{
	struct buf out;
	char *why;
	int rc;

	buf_init(&out);
	rc = docker_get(a->docker, path, &out, cause);
	if (rc == 0 && parse(sw, out.data == NULL ? "[]" : out.data,
	    out.data == NULL ? 2 : out.len, &why) == -1) {
		*cause = xasprintf("%s: %s", path, why);
		free(why);
		rc = -1;
	}
	buf_free(&out);
	return rc;
}

/*
 * Whether a doomed task's time is up: the model, in which it is marked,
 * is then built again from Docker's replies.
 */
static int
doom_expired(const struct agent *a)
{
	long long now = mono_ms();
	size_t i;

	for (i = 0; i < a->ndoomed; i++)
		if (now >= a->doomed[i].until)
			return 1;
	return 0;
}

/*
 * Docker's list of secrets (names and stacks, never the data), which
 * decides who may use which certificate (tenancy.c): read into sw when a
 * service of sw names one.  *changed says whether sw's list changed.
 */
static int
fetch_secrets(struct agent *a, struct swarm *sw, int *changed, char **cause)
{
	const char *cert, *key;
	struct buf out;
	char *why;
	uint64_t h;
	size_t i;
	int rc;

	*changed = 0;
	for (i = 0; i < sw->nservices; i++)
		if (labels_secrets(&sw->services[i], a->cfg->label_prefix,
		    a->cfg->service_cluster, &cert, &key))
			break;
	if (i == sw->nservices)
		return 0;
	buf_init(&out);
	rc = docker_get(a->docker, "/secrets", &out, cause);
	if (rc == 0) {
		h = hash_bytes(out.data == NULL ? "" : out.data, out.len,
		    HASH_INIT);
		if (sw == a->swarm && h == a->secrets_hash)
			goto done;
		if (swarm_parse_secrets(sw, out.data == NULL ? "[]" : out.data,
		    out.data == NULL ? 2 : out.len, &why) == -1) {
			*cause = xasprintf("/secrets: %s", why);
			free(why);
			rc = -1;
			goto done;
		}
		a->secrets_hash = h;
		*changed = 1;
	}
done:
	buf_free(&out);
	return rc;
}

/*
 * Docker's replies of one full read, kept raw until they are known to
 * differ from the last ones.
 */
enum reply_kind {
	REPLY_SERVICES = 0,
	REPLY_DEFAULT_SERVICES,	/* default_backend without hosts: Docker
				 * ANDs label filters, so a second query */
	REPLY_TASKS,
	REPLY_NODES,
	REPLY_NETWORKS,
	REPLY_COUNT
};

static int (*const reply_parse[REPLY_COUNT])(struct swarm *, const char *,
    size_t, char **) = {
	swarm_parse_services, swarm_parse_services, swarm_parse_tasks,
	swarm_parse_nodes, swarm_parse_networks,
};

/* GET of each reply's path into out[]; -1 with *cause on the first error. */
static int
fetch_replies(struct agent *a, struct buf *out, char **cause)
{
	char *label, *dlabel, *q[REPLY_COUNT], *path, *why;
	int i, rc = 0;

	label = xasprintf("%s.hosts", a->cfg->label_prefix);
	dlabel = xasprintf("%s.default_backend", a->cfg->label_prefix);
	q[REPLY_SERVICES] = docker_filter("label", label);
	q[REPLY_DEFAULT_SERVICES] = docker_filter("label", dlabel);
	q[REPLY_TASKS] = docker_filter("desired-state", "running");
	q[REPLY_NODES] = NULL;
	q[REPLY_NETWORKS] = docker_filter("scope", "swarm");
	for (i = 0; i < REPLY_COUNT; i++) {
		path = xasprintf("/%s%s%s", i == REPLY_TASKS ? "tasks" :
		    i == REPLY_NODES ? "nodes" : i == REPLY_NETWORKS ?
		    "networks" : "services", q[i] == NULL ? "" : "?",
		    q[i] == NULL ? "" : q[i]);
		if (rc == 0 && (rc = docker_get(a->docker, path, &out[i],
		    &why)) == -1) {
			*cause = xasprintf("%s: %s", path, why);
			free(why);
		}
		free(path);
		free(q[i]);
	}
	free(label);
	free(dlabel);
	return rc;
}

/* What identifies a set of replies: equal replies build an equal model. */
static uint64_t
replies_hash(const struct buf *out)
{
	uint64_t h = HASH_INIT;
	int i;

	for (i = 0; i < REPLY_COUNT; i++) {
		h = hash_bytes(out[i].data == NULL ? "" : out[i].data,
		    out[i].len, h);
		h = hash_bytes("\n", 1, h);
	}
	return h;
}

/* New swarm model from the replies, or NULL with *cause. */
static struct swarm *
parse_replies(const struct buf *out, char **cause)
{
	static const char *const names[REPLY_COUNT] = { "/services",
	    "/services (default_backend)", "/tasks", "/nodes", "/networks" };
	struct swarm *fresh = swarm_new(), *more = swarm_new();
	char *why;
	int i;

	for (i = 0; i < REPLY_COUNT; i++) {
		if (reply_parse[i](i == REPLY_DEFAULT_SERVICES ? more : fresh,
		    out[i].data == NULL ? "[]" : out[i].data,
		    out[i].data == NULL ? 2 : out[i].len, &why) == -1) {
			*cause = xasprintf("%s: %s", names[i], why);
			free(why);
			swarm_free(fresh);
			swarm_free(more);
			return NULL;
		}
	}
	swarm_merge_services(fresh, more);
	swarm_free(more);
	return fresh;
}

/*
 * Reads every labelled service, running task and node.  When Docker's
 * replies are the same bytes as at the last full read and no event has
 * changed the model since, the model stands: nothing is parsed, built or
 * reconciled again for a swarm that did not change.
 */
int
full_sync(struct agent *a)
{
	struct swarm *fresh = NULL;
	struct buf out[REPLY_COUNT];
	char *cause = NULL;
	uint64_t h = 0;
	int i, rc, same = 0, changed = 0;

	for (i = 0; i < REPLY_COUNT; i++)
		buf_init(&out[i]);
	rc = fetch_replies(a, out, &cause);
	if (rc == 0) {
		a->audit_bytes = 0;
		for (i = 0; i < REPLY_COUNT; i++)
			a->audit_bytes += out[i].len;
		h = replies_hash(out);
		same = a->have_snapshot && a->sync_hash_valid &&
		    h == a->sync_hash && !doom_expired(a);
		if (!same && (fresh = parse_replies(out, &cause)) == NULL)
			rc = -1;
	}
	for (i = 0; i < REPLY_COUNT; i++)
		buf_free(&out[i]);
	if (rc == 0)
		rc = fetch_secrets(a, same ? a->swarm : fresh, &changed,
		    &cause);
	if (rc == -1) {
		swarm_free(fresh);
		docker_down(a, cause);
		return -1;
	}
	a->metrics.docker_ok_ms = mono_ms();
	a->metrics.last_sync_unix = (long long)time(NULL);
	if (same) {
		log_debug("docker: the swarm did not change%s", changed ?
		    ", its secrets did" : "");
		a->dirty |= changed;
		return 0;
	}
	log_debug("docker: %zu labelled service(s), %zu running task(s), "
	    "%zu node(s)", fresh->nservices, fresh->ntasks, fresh->nnodes);
	swarm_free(a->swarm);
	a->swarm = fresh;
	a->sync_hash = h;
	a->sync_hash_valid = 1;
	apply_doomed(a, a->swarm);
	a->have_snapshot = 1;
	a->dirty = 1;
	return 0;
}

static int
valid_id(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s))
			return 0;
	return 1;
}

/*
 * The tasks of service id changed, and nothing else of it: the next
 * reconcile may touch only the backends it serves.
 */
static void
tasks_changed(struct agent *a, const char *id)
{
	size_t i;

	for (i = 0; i < a->ntasks_changed; i++)
		if (strcmp(a->tasks_changed[i], id) == 0)
			return;
	a->tasks_changed = xreallocarray(a->tasks_changed,
	    a->ntasks_changed + 1, sizeof(char *));
	a->tasks_changed[a->ntasks_changed++] = xstrdup(id);
}

static void
fast_add(struct agent *a, const char *id)
{
	long long until = mono_ms() + a->cfg->converge_timeout_ms;
	size_t i;

	for (i = 0; i < a->nfast; i++) {
		if (strcmp(a->fast[i].service_id, id) == 0) {
			a->fast[i].until = until;
			return;
		}
	}
	a->fast = xreallocarray(a->fast, a->nfast + 1, sizeof(*a->fast));
	a->fast[a->nfast].service_id = xstrdup(id);
	a->fast[a->nfast].until = until;
	a->fast[a->nfast].since = mono_ms();
	a->nfast++;
	if (a->next_fast_poll == 0 || a->next_fast_poll > mono_ms())
		a->next_fast_poll = mono_ms();
}

static void
fast_remove(struct agent *a, size_t i)
{
	free(a->fast[i].service_id);
	a->fast[i] = a->fast[--a->nfast];
}

/*
 * A service has converged when every task it wants running runs, as many
 * as it wants, and no task it told to stop is still running.
 */
static int
converged(const struct swarm *sw, const char *id)
{
	const struct service *s;
	uint64_t running = 0;
	size_t i, end;

	s = swarm_service(sw, id);
	if (s == NULL)
		return 1;
	swarm_task_range(sw, id, &i, &end);
	for (; i < end; i++) {
		const struct task *t = &sw->tasks[i];

		if (t->desired_running && t->state != TASK_RUNNING)
			return 0;
		if (!t->desired_running && (t->state == TASK_RUNNING ||
		    t->state == TASK_STARTING))
			return 0;
		if (t->desired_running)
			running++;
	}
	return !s->replicated || running == s->replicas;
}

/*
 * Whether the service names a certificate or key the last list of
 * secrets did not hold: a stack deploys its secrets just before its
 * services, so the list is read again rather than the service refused
 * until the next full sync.
 */
static int
new_secret(const struct agent *a, const char *id)
{
	const struct service *s = swarm_service(a->swarm, id);
	const char *cert, *key;

	return s != NULL && labels_secrets(s, a->cfg->label_prefix,
	    a->cfg->service_cluster, &cert, &key) &&
	    (swarm_secret(a->swarm, cert) == NULL ||
	    swarm_secret(a->swarm, key) == NULL);
}

/*
 * Re-reads one service and all its tasks; returns 1 once converged, 0
 * before, POLL_NOT_FOLLOWED for a service dovetail does not route.
 */
#define POLL_NOT_FOLLOWED 2
static int
poll_service(struct agent *a, const char *id)
{
	struct swarm *fresh;
	char *fs, *ft, *ps, *pt, *cause = NULL;
	enum swarm_change change;
	int rc, followed, changed;

	fs = docker_filter("id", id);
	ft = docker_filter("service", id);
	ps = xasprintf("/services?%s", fs);
	pt = xasprintf("/tasks?%s", ft);
	fresh = swarm_new();
	rc = fetch_into(a, ps, swarm_parse_services, fresh, &cause);
	followed = rc == 0 && fresh->nservices > 0 &&
	    labels_followed(&fresh->services[0], a->cfg->label_prefix);
	if (followed)
		rc = fetch_into(a, pt, swarm_parse_tasks, fresh, &cause);
	free(fs);
	free(ft);
	free(ps);
	free(pt);
	if (rc == -1) {
		swarm_free(fresh);
		docker_down(a, cause);
		return 0;
	}
	if (!followed) {
		/*
		 * Not a service dovetail routes (or one that is gone): its
		 * events cost nothing more, unless it was routed until now.
		 */
		swarm_free(fresh);
		if (swarm_service(a->swarm, id) == NULL) {
			log_debug("docker: service %s has no %s.hosts or "
			    "%s.default_backend label: not followed", id,
			    a->cfg->label_prefix, a->cfg->label_prefix);
			return POLL_NOT_FOLLOWED;
		}
		fresh = swarm_new();
	}
	/*
	 * A change of the tasks alone touches the backends the service
	 * serves, and nothing at all touches nothing.
	 */
	apply_doomed(a, fresh);
	change = swarm_service_change(a->swarm, id, fresh);
	if (change != SWARM_SAME) {
		swarm_replace_service(a->swarm, id, fresh);
		a->sync_hash_valid = 0;
	}
	swarm_free(fresh);
	if (change == SWARM_SERVICE)
		a->dirty = 1;
	else if (change == SWARM_TASKS)
		tasks_changed(a, id);
	if (new_secret(a, id)) {
		if (fetch_secrets(a, a->swarm, &changed, &cause) == -1) {
			docker_down(a, cause);
			return 0;
		}
		a->dirty |= changed;
	}
	a->metrics.docker_ok_ms = mono_ms();
	return converged(a->swarm, id);
}

/*
 * A server that was up at the last read of HAProxy and is down now, its
 * task failing its health checks: its service's tasks are read at once,
 * as Docker reports no event when a task fails on another node and is
 * started again elsewhere.
 */
#define FALLEN_POLLS_MAX 16
void
poll_fallen(struct agent *a, const struct running *r)
{
	const struct rserver **fallen;
	size_t i, j, n;

	n = hastate_fallen(a->seen, r, &fallen);
	if (n > FALLEN_POLLS_MAX) {
		/* A node gone, most likely: one full read, not n polls. */
		log_info("haproxy: %zu servers went down at once: reading the "
		    "whole swarm", n);
		a->next_full_sync = 0;
		n = 0;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < a->swarm->ntasks; j++)
			if (strcmp(a->swarm->tasks[j].id, fallen[i]->name) == 0)
				break;
		if (j == a->swarm->ntasks)
			continue;
		log_debug("haproxy: server %s/%s went down: reading its "
		    "service's tasks", fallen[i]->backend, fallen[i]->name);
		fast_add(a, a->swarm->tasks[j].service_id);
	}
	free(fallen);
}

void
fast_polls(struct agent *a)
{
	long long now = mono_ms();
	size_t i = 0;
	int rc;

	while (i < a->nfast && a->docker_up) {
		rc = poll_service(a, a->fast[i].service_id);
		if (rc == POLL_NOT_FOLLOWED)
			fast_remove(a, i);
		else if (rc == 1) {
			log_debug("docker: service %s settled",
			    a->fast[i].service_id);
			metrics_observe_lag(&a->metrics,
			    (double)(mono_ms() - a->fast[i].since) / 1000.0);
			fast_remove(a, i);
		} else if (now >= a->fast[i].until) {
			log_debug("docker: service %s still changing after %u "
			    "ms; left to the periodic resync",
			    a->fast[i].service_id, a->cfg->converge_timeout_ms);
			fast_remove(a, i);
		} else
			i++;
	}
	a->next_fast_poll = a->nfast > 0 ? now + a->cfg->converge_interval_ms :
	    0;
}

/*
 * Docker's task state lags behind the container's: a task whose container
 * is being stopped still reads "running" for a while.  Keep such tasks
 * out of the snapshot until Docker catches up or the entry expires.
 */
static void
apply_doomed(struct agent *a, struct swarm *sw)
{
	long long now = mono_ms();
	size_t i, j;

	for (i = 0; i < a->ndoomed;) {
		if (now >= a->doomed[i].until) {
			/* Its task counts again: the next full read parses. */
			free(a->doomed[i].task_id);
			a->doomed[i] = a->doomed[--a->ndoomed];
			a->sync_hash_valid = 0;
			continue;
		}
		for (j = 0; j < sw->ntasks; j++) {
			if (strcmp(sw->tasks[j].id, a->doomed[i].task_id) == 0)
				sw->tasks[j].desired_running = 0;
		}
		i++;
	}
}

static void
doom_task(struct agent *a, const char *task_id)
{
	size_t i;

	for (i = 0; i < a->ndoomed; i++) {
		if (strcmp(a->doomed[i].task_id, task_id) == 0)
			return;
	}
	a->doomed = xreallocarray(a->doomed, a->ndoomed + 1,
	    sizeof(*a->doomed));
	a->doomed[a->ndoomed].task_id = xstrdup(task_id);
	a->doomed[a->ndoomed].until = mono_ms() + a->cfg->converge_timeout_ms;
	a->ndoomed++;
	for (i = 0; i < a->swarm->ntasks; i++) {
		struct task *t = &a->swarm->tasks[i];

		if (strcmp(t->id, task_id) != 0 || !t->desired_running)
			continue;
		t->desired_running = 0;
		a->sync_hash_valid = 0;
		tasks_changed(a, t->service_id);
	}
}

/*
 * A signal that stops a container, as opposed to one an application is
 * reloaded or told to reopen its logs with (HUP, USR1, USR2, WINCH).
 */
static int
stopping_signal(int sig)
{
	return sig == SIGINT || sig == SIGQUIT || sig == SIGKILL ||
	    sig == SIGTERM;
}

static void
handle_container_event(struct agent *a, const struct docker_event *ev)
{
	int stopping;

	if (!valid_id(ev->service_id))
		return;	/* not a swarm task */
	/* A task of a service not routed; a new one's own event comes. */
	if (swarm_service(a->swarm, ev->service_id) == NULL)
		return;
	stopping = strcmp(ev->action, "stop") == 0 ||
	    strcmp(ev->action, "die") == 0 ||
	    (strcmp(ev->action, "kill") == 0 && stopping_signal(ev->signal));
	if (valid_id(ev->task_id) && stopping) {
		log_debug("docker: container of task %s: %s", ev->task_id,
		    esc(ev->action));
		doom_task(a, ev->task_id);
	}
	fast_add(a, ev->service_id);
}

void
handle_event(struct agent *a, const struct docker_event *ev)
{
	a->metrics.docker_events++;
	log_debug("docker: event %s %s %s", ev->kind == EVENT_SERVICE ?
	    "service" : ev->kind == EVENT_NODE ? "node" : ev->kind ==
	    EVENT_CONFIG ? "config" : "other",
	    esc(ev->action), esc(ev->name));
	switch (ev->kind) {
	case EVENT_SERVICE:
		if (!valid_id(ev->actor))
			return;
		fast_add(a, ev->actor);
		break;
	case EVENT_NODE:
		a->next_full_sync = 0;
		break;
	case EVENT_CONTAINER:
		handle_container_event(a, ev);
		break;
	case EVENT_CONFIG:
		certify_touch(a->acme);
		break;
	case EVENT_NETWORK:
		/* Not connect/disconnect: those come with every container. */
		if (strcmp(ev->action, "create") == 0 ||
		    strcmp(ev->action, "remove") == 0 ||
		    strcmp(ev->action, "update") == 0)
			a->next_full_sync = 0;
		break;
	default:
		break;
	}
}
