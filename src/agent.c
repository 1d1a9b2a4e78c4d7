/* SPDX-License-Identifier: ISC */
/*
 * The agent: one single-threaded loop that keeps HAProxy equal to the
 * swarm.  It is level-triggered: Docker events, timers and signals only
 * mark work due; reconcile() recomputes the desired state from the latest
 * snapshot, reads what HAProxy runs, and applies the difference.  A lost
 * event therefore costs latency, never correctness.
 *
 * Task-level change goes through the runtime API.  Only a change to the
 * file's skeleton (frontends, backends) rewrites the file, checks it and
 * reloads HAProxy through the master CLI.
 *
 * This file keeps the loop, its signals and deadlines, and the glue to
 * dovetailctl, the status page and the supervisor.  Following the swarm
 * is follow.c, applying to HAProxy apply.c, the files HAProxy loads
 * files.c and the certificate files certfiles.c; agent.h holds what
 * they share.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"
#include "agent.h"

static volatile sig_atomic_t got_term;
static volatile sig_atomic_t got_hup;
static int wake_pipe[2] = { -1, -1 };

static void
on_signal(int sig)
{
	int saved = errno;

	if (sig == SIGHUP)
		got_hup = 1;
	else if (sig != SIGCHLD)
		got_term = 1;
	if (wake_pipe[1] != -1 && write(wake_pipe[1], "x", 1) == -1) {
		/* The pipe is full: the loop is awake already. */
	}
	errno = saved;
}

static void
setup_signals(void)
{
	struct sigaction sa;

	if (pipe2(wake_pipe, O_CLOEXEC | O_NONBLOCK) == -1)
		fatal("pipe");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* An ACME order's process ended: wake up, without EINTR elsewhere. */
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
}

/*
 * Logs msg when it differs from the last one reported in *slot, so that
 * a component that stays away produces one line, not one per retry.
 */
void
report_once(char **slot, char *msg)
{
	if (*slot != NULL && strcmp(*slot, msg) == 0) {
		free(msg);
		return;
	}
	log_warnx("%s", msg);
	free(*slot);
	*slot = msg;
}

void
report_clear(char **slot, const char *recovered)
{
	if (*slot == NULL)
		return;
	log_info("%s", recovered);
	free(*slot);
	*slot = NULL;
}

/*
 * Tells the supervisor how things are: READY=1 after the first reconcile
 * that brought HAProxy (or, without it, the file) up to date, then a
 * STATUS= line whenever the summary changes.
 */
void
update_status(struct agent *a, const struct desired *d, int rc)
{
	char *status;
	size_t i;

	a->metrics.services = d->nservices;
	a->metrics.routes = d->nhosts;
	a->metrics.backends = d->nbackends;
	a->metrics.problems = d->nproblems;
	a->metrics.refused_owner = d->nrefused_owner;
	a->metrics.refused_haproxy = d->nrefused_haproxy;
	a->metrics.servers = 0;
	for (i = 0; i < d->nbackends; i++)
		a->metrics.servers += d->backends[i].nservers;
	status = xasprintf("%s%zu host(s), %zu backend(s), %zu service(s) "
	    "with label problems; docker %s, haproxy %s",
	    rc == 0 ? "" : "not in sync: ", d->nhosts, d->nbackends,
	    d->nproblems, a->docker_up ? "connected" : "away",
	    a->haproxy_error == NULL ? "answering" : "away");
	if (!a->ready && rc == 0 && !a->once) {
		char *msg = xasprintf("READY=1\nSTATUS=%s", status);

		notify_send(msg);
		free(msg);
		a->ready = 1;
	} else if (a->ready && (a->status == NULL ||
	    strcmp(a->status, status) != 0)) {
		char *msg = xasprintf("STATUS=%s", status);

		notify_send(msg);
		free(msg);
	}
	free(a->status);
	a->status = status;
}

/* ---- the loop ---- */

static void
free_paths(struct agent *a)
{
	int i;

	for (i = 0; i < NSIDE; i++) {
		free(a->side_path[i]);
		free(a->disk_side[i]);
		a->side_path[i] = a->disk_side[i] = NULL;
	}
	free(a->certs_dir);
	free(a->default_cert);
	free(a->tls_socket);
	free(a->disk_config);
	a->disk_config = NULL;
}

/*
 * The names dovetail's files and sockets take from the configuration,
 * and what the files hold now.
 */
static void
setup_paths(struct agent *a)
{
	struct buf b;
	char *cause;
	unsigned ms = a->cfg->websocket_timeout_ms;
	uint32_t h = 2166136261u;
	const char *c;
	int i;

	free_paths(a);
	for (i = 0; i < MAP_COUNT; i++) {
		char *suffix = xasprintf("%s.map", map_suffixes[i]);

		a->side_path[i] = config_state_path(a->cfg, suffix);
		free(suffix);
		a->ro.map_paths[i] = a->side_path[i];
	}
	a->side_path[SIDE_CRT_LIST] = config_state_path(a->cfg, "crt-list");
	a->certs_dir = config_state_path(a->cfg, "certs");
	a->default_cert = xasprintf("%s/default.pem", a->certs_dir);
	/* Abstract sockets are per host: named after the file. */
	for (c = a->cfg->haproxy_config; *c != '\0'; c++) {
		h ^= (unsigned char)*c;
		h *= 16777619u;
	}
	a->tls_socket = xasprintf("abns@dovetail-tls-%08x", h);
	if (ms % 1000 == 0)
		snprintf(a->ws_timeout, sizeof(a->ws_timeout), "%us", ms / 1000);
	else
		snprintf(a->ws_timeout, sizeof(a->ws_timeout), "%ums", ms);
	a->ro.http_bind = a->cfg->http_bind;
	a->ro.https_bind = a->cfg->https_bind;
	a->ro.crt_list = a->side_path[SIDE_CRT_LIST];
	a->ro.certs_dir = a->certs_dir;
	a->ro.default_cert = a->default_cert;
	a->ro.tls_socket = a->tls_socket;
	a->ro.websocket_timeout = a->ws_timeout;
	a->ro.response_headers = a->cfg->response_headers;

	buf_init(&b);
	if (file_read(a->cfg->haproxy_base, &b, &cause) == 0) {
		/* An empty file reads as no data at all. */
		unsigned line = render_default_server_line(b.data == NULL ?
		    "" : b.data);

		if (line != 0)
			log_warnx("%s:%u: default-server reaches the servers "
			    "written in %s but not those added at run time; "
			    "dovetail sets every server's options itself, so "
			    "leave it out", a->cfg->haproxy_base, line,
			    a->cfg->haproxy_config);
	} else
		free(cause);
	buf_reset(&b);
	if (file_read(a->cfg->haproxy_config, &b, &cause) == 0)
		a->disk_config = buf_steal(&b);
	else
		free(cause);
	for (i = 0; i < NSIDE; i++) {
		buf_reset(&b);
		if (file_read(a->side_path[i], &b, &cause) == 0)
			a->disk_side[i] = buf_steal(&b);
		else
			free(cause);
	}
	buf_free(&b);
}

/* ---- dovetailctl and the status page ---- */

/* The agent's state now, for dovetailctl and the status page. */
static void
agent_snapshot(struct agent *a, struct ctl_snapshot *sn)
{
	struct ctl_state in;

	memset(&in, 0, sizeof(in));
	in.desired = a->last;
	in.swarm = a->swarm;
	in.seen = a->seen;
	in.quarantine = a->quarantine;
	in.nquarantine = a->nquarantine;
	in.reloads = &a->reloads;
	in.prefix = a->cfg->label_prefix;
	in.cluster = a->cfg->service_cluster;
	in.now = (long long)time(NULL);
	in.cert_warn_days = a->cfg->cert_warn_days;
	ctl_snapshot_build(sn, &in);
}

static enum ctl_status
control_request(void *arg, const struct ctl_request *req, int uid,
    struct buf *body)
{
	struct agent *a = arg;
	struct ctl_snapshot sn;
	enum ctl_status st;
	int level;

	switch (req->cmd) {
	case CTL_RELOAD:
		log_info("control: uid %d asks to reload the configuration",
		    uid);
		got_hup = 1;
		buf_adds(body, req->json ? "{\"reload\": \"requested\"}\n" :
		    "reload requested: dovetail reads its configuration "
		    "again\n");
		return CTL_STATUS_OK;
	case CTL_LOG_VERBOSE:
	case CTL_LOG_BRIEF:
		level = req->cmd == CTL_LOG_BRIEF ? LOG_LEVEL_INFO :
		    log_enabled(LOG_LEVEL_TRACE) ? LOG_LEVEL_TRACE :
		    LOG_LEVEL_DEBUG;
		log_set_verbosity(level);
		log_info("control: uid %d sets logging %s", uid,
		    req->cmd == CTL_LOG_BRIEF ? "brief" : "verbose");
		buf_addf(body, req->json ? "{\"log\": \"%s\"}\n" :
		    "logging %s\n", req->cmd == CTL_LOG_BRIEF ? "brief" :
		    "verbose");
		return CTL_STATUS_OK;
	default:
		break;
	}
	agent_snapshot(a, &sn);
	ctl_render(body, &sn, req->cmd, req->json);
	st = ctl_snapshot_status(&sn);
	ctl_snapshot_free(&sn);
	return st;
}

/* The status page at / on [agent] listen. */
static void
status_page(void *arg, struct buf *b)
{
	struct agent *a = arg;
	struct ctl_snapshot sn;

	agent_snapshot(a, &sn);
	status_render(b, &sn);
	ctl_snapshot_free(&sn);
}

/* Opens the control socket the configuration names; -1 with *cause. */
static int
control_open(struct agent *a, char **cause)
{
	struct ctl_server *s;
	char *path = config_control_path(a->cfg);

	if (a->ctl != NULL && strcmp(ctl_path(a->ctl), path) == 0) {
		free(path);
		return 0;
	}
	s = ctl_listen(path, control_request, a, cause);
	if (s != NULL) {
		log_info("control socket %s: listening for dovetailctl", path);
		ctl_close(a->ctl);
		a->ctl = s;
	}
	free(path);
	return s == NULL ? -1 : 0;
}

/*
 * SIGHUP: the file is parsed into a fresh config with the command-line
 * options applied again on top; only when all of it is valid does it
 * replace the running one.
 */
static void
reread_config(struct agent *a)
{
	struct config *fresh, tmp;
	char *cause;
	size_t i;

	fresh = config_new();
	if (a->config_path != NULL && config_load(fresh, a->config_path,
	    &cause) == -1) {
		log_warnx("SIGHUP: %s; keeping the running configuration",
		    cause);
		free(cause);
		config_free(fresh);
		return;
	}
	for (i = 0; i < a->noverrides; i++) {
		if (config_set_option(fresh, a->overrides[i].key,
		    a->overrides[i].value, &cause) == -1)
			fatalx("option --%s: %s", config_keys[
			    a->overrides[i].key].option, cause);
	}
	if (config_validate(fresh, &cause) == -1) {
		log_warnx("SIGHUP: %s; keeping the running configuration",
		    cause);
		free(cause);
		config_free(fresh);
		return;
	}
	tmp = *a->cfg;
	*a->cfg = *fresh;
	*fresh = tmp;
	config_free(fresh);
	setup_paths(a);
	/* Reconnect: the Docker settings may have changed. */
	docker_events_close(a->docker);
	a->docker_up = 0;
	a->docker_retry_at = 0;
	a->metrics.health_window_ms = a->cfg->poll_interval_ms + 1000;
	a->metrics.cert_warn_days = a->cfg->cert_warn_days;
	/* A new control socket; the old one stays when it cannot be made. */
	if (control_open(a, &cause) == -1) {
		log_warnx("SIGHUP: %s; dovetailctl still answered on %s", cause,
		    ctl_path(a->ctl));
		free(cause);
	}
	/* The operator may have fixed what HAProxy refused: try again. */
	while (a->nquarantine > 0)
		unquarantine(a, 0);
	free(a->refused_config);
	a->refused_config = NULL;
	a->dirty = 1;
	log_info("SIGHUP: configuration %s reloaded", a->config_path != NULL ?
	    a->config_path : "(built-in defaults)");
}

static void
agent_free(struct agent *a)
{
	size_t i;

	metrics_stop(a->http);
	ctl_close(a->ctl);
	flight_free(a->flight);
	running_free(a->seen);
	ctl_reloads_free(&a->reloads);
	certify_stop(a->acme, a->docker_up ? a->docker : NULL);
	certify_free(a->acme);
	for (i = 0; i < a->metrics.nacme_failing; i++)
		free(a->metrics.acme_failing[i]);
	free(a->metrics.acme_failing);
	docker_free(a->docker);
	swarm_free(a->swarm);
	desired_free(a->last);
	hold_free(&a->hold);
	while (a->nquarantine > 0)
		unquarantine(a, 0);
	free(a->quarantine);
	free(a->quarantine_labels);
	for (i = 0; i < a->nfast; i++)
		free(a->fast[i].service_id);
	free(a->fast);
	for (i = 0; i < a->ndoomed; i++)
		free(a->doomed[i].task_id);
	free(a->doomed);
	free_strings(a->tasks_changed, a->ntasks_changed);
	for (i = 0; i < a->nproblems; i++)
		free(a->problems[i]);
	free(a->problems);
	free_paths(a);
	for (i = 0; i < a->nchecks; i++) {
		free(a->checks[i].pem);
		free(a->checks[i].error);
	}
	free(a->checks);
	for (i = 0; i < a->nwarned; i++)
		free(a->warned[i].file);
	free(a->warned);
	free(a->docker_error);
	free(a->file_error);
	free(a->haproxy_error);
	free(a->reload_error);
	free(a->refused_config);
	free(a->acme_error);
	free(a->status);
}

/*
 * When Docker is asked whether it is there: once per poll interval
 * without any other answer from it, as the full read is much rarer.
 */
static long long
next_ping(const struct agent *a)
{
	return a->metrics.docker_ok_ms + a->cfg->poll_interval_ms;
}

static void
docker_ping(struct agent *a)
{
	struct buf out;
	char *cause;

	buf_init(&out);
	if (docker_get(a->docker, "/_ping", &out, &cause) == -1)
		docker_down(a, cause);
	else
		a->metrics.docker_ok_ms = mono_ms();
	buf_free(&out);
}

static long long
earliest(long long a, long long b)
{
	if (a == 0)
		return b;
	if (b == 0)
		return a;
	return a < b ? a : b;
}

/*
 * ACME: the store read when due (a change rebuilds the desired state),
 * a finished order reaped.  A store Docker will not show (a proxy that
 * allows no /configs) is reported once and retried; routing goes on.
 */
static void
acme_sync(struct agent *a, long long now)
{
	char *cause;
	int rc;

	/* Reaped whatever the settings now: it was started under others. */
	if (certify_reap(a->acme, a->cfg, a->docker_up ? a->docker : NULL))
		a->dirty = 1;
	if (!a->cfg->acme_enabled || !a->docker_up)
		return;
	rc = certify_sync(a->acme, a->docker, a->cfg, now,
	    a->cfg->audit_interval_ms, &cause);
	if (rc == -1)
		report_once(&a->acme_error, cause);
	else {
		report_clear(&a->acme_error, "acme: the store is read again");
		if (rc == 1)
			a->dirty = 1;
	}
}

/*
 * --once: a reconcile, and when it reloads HAProxy, the reload waited for
 * and HAProxy brought up to date after it.
 */
static int
once_reconcile(struct agent *a)
{
	int rc;

	for (;;) {
		rc = reconcile(a);
		if (a->flight == NULL)
			return rc;
		if (flight_land(a) == -1)
			return -1;
	}
}

/* SIGHUP: another configuration, once no reload is under way. */
static void
take_hup(struct agent *a)
{
	if (!got_hup || a->flight != NULL)
		return;
	got_hup = 0;
	notify_reloading();
	reread_config(a);
	notify_send("READY=1");
}

/*
 * Runs until SIGTERM or SIGINT (returns 0), or with once set, does one
 * full reconcile and returns 0 on success, 1 otherwise.
 */
int
agent_run(struct config *cfg, const char *config_path,
    const struct config_override *overrides, size_t noverrides, int once)
{
	struct agent a;
	struct docker_event ev;
	long long now, next;
	struct pollfd fds[2 + CTL_MAX_CLIENTS + 2];
	char drain[64];
	size_t nfds;
	int rc = 0;

	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.config_path = config_path;
	a.overrides = overrides;
	a.noverrides = noverrides;
	a.docker = docker_new(cfg);
	a.swarm = swarm_new();
	a.acme = certify_new();
	a.docker_backoff_ms = BACKOFF_MIN_MS;
	setup_paths(&a);
	setup_signals();

	if (once) {
		a.once = 1;
		docker_up(&a);
		if (a.docker_up && full_sync(&a) == 0)
			acme_sync(&a, mono_ms());	/* the ordered certificates */
		if (!a.docker_up || !a.have_snapshot || once_reconcile(&a) == -1)
			rc = 1;
		else
			log_info("once: %s written", cfg->haproxy_config);
		agent_free(&a);
		return rc;
	}

	/* /healthz reads the last reported errors where they are kept. */
	a.metrics.docker_error = (const char *const *)&a.docker_error;
	a.metrics.haproxy_error = (const char *const *)&a.haproxy_error;
	a.metrics.file_error = (const char *const *)&a.file_error;
	a.metrics.refused = &a.problems;
	a.metrics.nrefused = &a.nproblems;
	a.metrics.health_window_ms = cfg->poll_interval_ms + 1000;
	a.metrics.desired = (const struct desired *const *)&a.last;
	a.metrics.cert_warn_days = cfg->cert_warn_days;
	if (*cfg->listen != '\0') {
		char *cause;

		a.http = metrics_listen(cfg->listen, &a.metrics, status_page,
		    &a, &cause);
		if (a.http == NULL) {
			log_warnx("%s", cause);
			free(cause);
			agent_free(&a);
			return 1;
		}
		log_info("serving the status page, /metrics and /healthz on "
		    "%s", cfg->listen);
	}
	{
		char *cause;

		if (control_open(&a, &cause) == -1) {
			log_warnx("%s", cause);
			free(cause);
			agent_free(&a);
			return 1;
		}
	}
	log_info("started: docker %s, haproxy runtime %s, file %s",
	    cfg->docker_url, cfg->runtime_socket, cfg->haproxy_config);
	while (!got_term) {
		take_hup(&a);
		now = mono_ms();
		if (!a.docker_up && now >= a.docker_retry_at)
			docker_up(&a);
		if (a.docker_up && !docker_events_active(a.docker))
			docker_down(&a, xstrdup("event stream closed"));
		while (a.docker_up && docker_event_next(a.docker, &ev))
			handle_event(&a, &ev);
		if (a.docker_up && now >= a.next_full_sync &&
		    full_sync(&a) == 0)
			a.next_full_sync = mono_ms() + swarm_audit_delay_ms(
			    a.audit_bytes, a.cfg->audit_interval_ms,
			    a.cfg->audit_rate_kbs);
		if (a.docker_up && now >= next_ping(&a))
			docker_ping(&a);
		if (a.docker_up && a.nfast > 0 && now >= a.next_fast_poll)
			fast_polls(&a);
		acme_sync(&a, now);
		/* Before the reconcile that may start the next flight. */
		if (flight_check(&a, now))
			take_hup(&a);
		if (a.have_snapshot && (a.dirty || a.ntasks_changed > 0 ||
		    now >= a.next_reconcile)) {
			reconcile(&a);
			/* After each reconcile, not each pass: a change, a
			 * finished order (it sets dirty) or poll_interval. */
			if (a.cfg->acme_enabled && a.docker_up && a.in_sync)
				certify_schedule(a.acme, a.cfg, a.last,
				    (long long)time(NULL));
			certify_metrics(a.acme, a.cfg, a.last,
			    (long long)time(NULL), &a.metrics);
		}

		if (a.file_stale && mono_ms() >= a.file_due)
			file_catch_up(&a);

		next = a.next_reconcile;
		if (a.file_stale && a.flight == NULL)
			next = earliest(next, a.file_due);
		/* file_catch_up may have asked for the whole reconcile. */
		if (a.dirty)
			next = now;
		if (a.docker_up) {
			next = earliest(next, a.next_full_sync);
			next = earliest(next, a.next_fast_poll);
			next = earliest(next, next_ping(&a));
			if (a.cfg->acme_enabled)
				next = earliest(next,
				    certify_deadline(a.acme, now));
		} else
			next = earliest(next, a.docker_retry_at);
		next = earliest(next, ctl_deadline(a.ctl));
		if (a.flight != NULL)
			next = earliest(next,
			    reload_job_deadline(a.flight->job));
		now = mono_ms();
		next = next <= now ? 0 : next - now;
		if (next > 60000)
			next = 60000;
		/* libmicrohttpd's own connection timeouts need a tick. */
		if (a.http != NULL && next > 1000)
			next = 1000;
		fds[0].fd = wake_pipe[0];
		fds[0].events = POLLIN;
		fds[1].fd = metrics_fd(a.http);
		fds[1].events = POLLIN;
		nfds = 2 + ctl_pollfds(a.ctl, fds + 2,
		    sizeof(fds) / sizeof(fds[0]) - 3);
		if (a.flight != NULL) {
			fds[nfds].fd = reload_job_fd(a.flight->job);
			fds[nfds++].events = POLLIN;
		}
		if (docker_wait(a.docker, fds, nfds, (int)next) == -1)
			log_warnx("docker: waiting on the event stream failed");
		metrics_run(a.http);
		ctl_run(a.ctl, mono_ms());
		while (read(wake_pipe[0], drain, sizeof(drain)) > 0)
			;
	}
	/* Servers changed in the last second go into the file. */
	if (a.file_stale)
		file_catch_up(&a);
	flight_abandon(&a);
	log_info("stopping on signal");
	notify_send("STOPPING=1");
	agent_free(&a);
	return 0;
}
