/* SPDX-License-Identifier: ISC */
/*
 * Applying to HAProxy: reconcile builds the desired state, reads what
 * HAProxy runs and applies the difference through the runtime API.  Only
 * a change to the file's skeleton (frontends, backends) rewrites the file,
 * which a flight checks with haproxy -c and reloads beside the loop.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dovetail.h"
#include "agent.h"

/* The port of an HTTPS bind ("ADDR:PORT"), 0 when there is none. */
static uint16_t
https_port(const char *bind)
{
	const char *colon = strrchr(bind, ':');
	uint16_t port;

	if (*bind == '\0' || colon == NULL ||
	    label_parse_port(colon + 1, &port) == -1)
		return 0;
	return port;
}

/* Logs each label problem once, when it first appears. */
static void
report_problems(struct agent *a, const struct desired *d)
{
	char **now;
	size_t i;

	now = xcalloc(d->nproblems, sizeof(char *));
	for (i = 0; i < d->nproblems; i++) {
		const struct problem *p = &d->problems[i];

		if (p->label != NULL)
			now[i] = xasprintf("service %s: label %s: %s; service "
			    "not routed", esc(p->service), esc(p->label),
			    p->message);
		else
			now[i] = xasprintf("service %s: %s; service not routed",
			    esc(p->service), p->message);
		if (find_in_array(&now[i], a->problems, a->nproblems,
		    sizeof(char *), str_cmp_ptr) == NULL)
			log_warnx("%s", now[i]);
	}
	sort_array(now, d->nproblems, sizeof(char *), str_cmp_ptr);
	for (i = 0; i < a->nproblems; i++)
		free(a->problems[i]);
	free(a->problems);
	a->problems = now;
	a->nproblems = d->nproblems;
}

static int
skeleton_changed(const char *old_text, const char *new_text)
{
	struct buf a, b;
	int changed;

	if (old_text == NULL)
		return 1;
	/* The same file: what a reconcile with no change compares. */
	if (strcmp(old_text, new_text) == 0)
		return 0;
	buf_init(&a);
	buf_init(&b);
	render_skeleton(&a, old_text);
	render_skeleton(&b, new_text);
	changed = a.len != b.len || memcmp(a.data, b.data, a.len) != 0;
	buf_free(&a);
	buf_free(&b);
	return changed;
}

/* The master's PID now, or -1 when none answers. */
static long
master_pid(struct agent *a)
{
	char *cause;
	long pid;

	if (haproxy_master_pid(a->cfg->master_socket, &pid, &cause) == -1) {
		free(cause);
		return -1;
	}
	return pid;
}

/*
 * A file written for a reload that did not happen is loaded anyway by an
 * HAProxy (re)started since: then no reload is owed.
 */
static void
settle_pending_reload(struct agent *a)
{
	long now;

	if (!a->reload_pending)
		return;
	now = master_pid(a);
	if (now != -1 && (a->pending_master == -1 || now != a->pending_master)) {
		log_debug("haproxy: a master started since the file was "
		    "written has loaded it");
		a->reload_pending = 0;
	}
}

/* What reload_reason says when the file itself changed. */
static const char reload_for_file[] = "frontends or backends changed";

/* Why HAProxy must load the file again, or NULL. */
static const char *
reload_reason(const struct agent *a, const struct desired *d,
    const struct running *r, int skeleton)
{
	size_t i;

	if (skeleton)
		return reload_for_file;
	if (a->reload_pending)
		return "the last reload did not complete";
	for (i = 0; i < MAP_COUNT; i++) {
		if (r->map_missing[i] && desired_map_used(d, i))
			return "HAProxy runs without one of dovetail's maps";
	}
	if (d->ncerts > 0 && !r->tls)
		return "HAProxy runs without dovetail's certificates";
	if (!running_has_backend(r, DT_BACKEND_NO_ROUTE))
		return "HAProxy runs without dovetail's file";
	for (i = 0; i < d->nbackends; i++) {
		if (!running_has_backend(r, d->backends[i].name))
			return "HAProxy lacks a backend of the file";
	}
	return NULL;
}

static void
log_backend_changes(const struct desired *d, const struct running *r)
{
	size_t i;

	for (i = 0; i < d->nbackends; i++) {
		if (!running_has_backend(r, d->backends[i].name))
			log_info("backend %s added (%zu server(s))",
			    d->backends[i].name, d->backends[i].nservers);
	}
	for (i = 0; i < r->nbackends; i++) {
		const char *n = r->backends[i];

		if ((strncmp(n, "svc-", 4) == 0 || strncmp(n, "grp-", 4) == 0 ||
		    strncmp(n, "tlssvc-", 7) == 0 ||
		    strncmp(n, "tlsgrp-", 7) == 0) &&
		    desired_backend(d, n) == NULL)
			log_info("backend %s removed", n);
	}
}

/* A command for the log: its first line, never a payload (keys). */
static char *
cmd_head(const struct cmd *c)
{
	const char *nl = strchr(c->text, '\n');

	return nl == NULL ? xstrdup(c->text) : xasprintf("%.*s...",
	    (int)(nl - c->text), c->text);
}

/*
 * HAProxy keeps one certificate transaction open at a time: one left by a
 * failed "set" or "commit" would block every later change.
 */
static void
abort_transaction(struct agent *a, const char *file)
{
	struct buf out;
	char *cmd, *cause;

	buf_init(&out);
	cmd = xasprintf("abort ssl cert %s/%s", a->certs_dir, file);
	if (runtime_query(a->cfg->runtime_socket, cmd, &out, &cause) == -1) {
		log_debug("haproxy: %s: %s", cmd, cause);
		free(cause);
	}
	free(cmd);
	buf_free(&out);
}

/* Returns -1 when the session failed (reported), 0 otherwise. */
static int
apply_plan(struct agent *a, const struct plan *p)
{
	const char **texts;
	char **replies, *cause, *head;
	size_t i;

	if (p->ncmds == 0)
		return 0;
	texts = xcalloc(p->ncmds, sizeof(char *));
	for (i = 0; i < p->ncmds; i++) {
		texts[i] = p->cmds[i].text;
		if (log_enabled(LOG_LEVEL_TRACE)) {
			head = cmd_head(&p->cmds[i]);
			log_trace("haproxy: > %s", head);
			free(head);
		}
	}
	if (runtime_batch(a->cfg->runtime_socket, texts, p->ncmds, &replies,
	    &cause) == -1) {
		report_once(&a->haproxy_error, xasprintf("haproxy: runtime "
		    "API: %s", cause));
		a->metrics.runtime_failed += p->ncmds;
		free(cause);
		free(texts);
		a->next_reconcile = mono_ms() + BACKOFF_MIN_MS;
		return -1;
	}
	for (i = 0; i < p->ncmds; i++) {
		const struct cmd *c = &p->cmds[i];

		if (plan_reply_ok(c, replies[i])) {
			hold_release(&a->hold, c);
			a->metrics.runtime_ok++;
			if (c->what != NULL)
				log_info("%s", c->what);
			cert_applied(a, c);
			continue;
		}
		a->metrics.runtime_failed++;
		head = cmd_head(c);
		if (c->kind == CMD_DEL_SERVER) {
			/* Connections still open: retried next time. */
			log_debug("haproxy: %s: %s", head, esc(replies[i]));
			a->next_reconcile = mono_ms() + 1000;
		} else if (hold_refused(&a->hold, c, mono_ms() +
		    a->cfg->poll_interval_ms)) {
			/* Tried again once per poll interval, not sooner. */
			log_warnx("haproxy: \"%s\" failed: %s; tried again "
			    "every %u ms", head, esc(replies[i]),
			    a->cfg->poll_interval_ms);
			a->next_reconcile = mono_ms() + BACKOFF_MIN_MS;
		} else
			log_debug("haproxy: \"%s\" failed again: %s", head,
			    esc(replies[i]));
		if ((c->kind == CMD_CERT_SET || c->kind == CMD_CERT_COMMIT) &&
		    c->file != NULL)
			abort_transaction(a, c->file);
		free(head);
	}
	runtime_replies_free(replies, p->ncmds);
	free(texts);
	return 0;
}

static void
haproxy_unread(struct agent *a, char *cause)
{
	if (a->once)
		log_info("haproxy: runtime API: %s; the file is written for "
		    "HAProxy to start with", cause);
	else
		report_once(&a->haproxy_error, xasprintf("haproxy: runtime "
		    "API: %s; will apply the changes when it answers", cause));
	free(cause);
}

/*
 * Whether a reconcile may stop once HAProxy's state reads as the last
 * one left it: it reuses the last desired state, the file on disk is as
 * that state wrote it, no check or reload is under way, and the last
 * reconcile found nothing to do.  Pure.
 */
int
reconcile_may_skip(int reuse, int file_stale, int in_flight, int was_quiet)
{
	return reuse && !file_stale && !in_flight && was_quiet;
}

/*
 * Whether a reconcile that wrote its files found nothing to do and
 * nothing that waits on time: no reload owed or put off, no command
 * planned (one held back included).  Pure.
 */
int
reconcile_quiet(const char *reload_why, int put_off, size_t planned)
{
	return reload_why == NULL && !put_off && planned == 0;
}

/*
 * What HAProxy runs, in *out (new), and the digest of its replies and of
 * the certificate files (certs); -1 when its runtime API does not answer.
 * When may_skip and the digest is that of the last reconcile, which found
 * nothing to do, there is nothing to parse: 0 with *out NULL.
 */
static int
read_running(struct agent *a, int may_skip, uint64_t certs,
    struct running **out, uint64_t *digest)
{
	char **replies, *cause;
	int rc = 0;

	*out = NULL;
	if (runtime_read_state(a->cfg->runtime_socket, &a->ro, &replies,
	    &cause) == -1) {
		haproxy_unread(a, cause);
		return -1;
	}
	*digest = hash_bytes(&certs, sizeof(certs),
	    runtime_state_digest((const char *const *)replies));
	if (!may_skip || *digest != a->quiet_digest) {
		*out = running_new();
		if (runtime_parse_state(*out, (const char *const *)replies,
		    &cause) == -1) {
			haproxy_unread(a, cause);
			running_free(*out);
			*out = NULL;
			rc = -1;
		}
	}
	runtime_replies_free(replies, RUNTIME_STATE_REPLIES);
	if (rc == 0) {
		report_clear(&a->haproxy_error, "haproxy: runtime API answers");
		a->metrics.haproxy_ok_ms = mono_ms();
	}
	return rc;
}

/* A reload tried, for dovetailctl's "show reloads". */
static void
record_reload(struct agent *a, const char *why, long long started,
    const char *error)
{
	long long ms = mono_ms() - started;

	ctl_reloads_add(&a->reloads, (long long)time(NULL) - ms / 1000,
	    (unsigned)ms, why, error);
}

void
flight_free(struct flight *f)
{
	if (f == NULL)
		return;
	reload_job_free(f->job);
	free(f->config);
	saved_files_free(&f->old);
	free_strings(f->known, f->nknown);
	free_strings(f->certs, f->ncerts);
	free(f);
}

/*
 * Writes the files of d and starts checking them and reloading HAProxy
 * beside the loop.  Returns 0 when under way, -1 when the files could
 * not be written or the check not started (reported).
 */
static int
flight_start(struct agent *a, const struct desired *d, const char *why,
    const char *config, char *const *sides)
{
	struct flight *f;
	char *cause;
	size_t i;

	f = xcalloc(1, sizeof(*f));
	f->started = mono_ms();
	f->why = why;
	if (write_files(a, d, config, sides, &f->old) == -1) {
		record_reload(a, why, f->started, "the file was not written");
		flight_free(f);
		return -1;
	}
	/* Before the child may reload it. */
	f->master = master_pid(a);
	f->job = reload_job_start(a->cfg->haproxy_binary, a->cfg->haproxy_base,
	    a->cfg->haproxy_config, a->cfg->master_socket, RELOAD_TIMEOUT_MS,
	    &cause);
	if (f->job == NULL) {
		log_warnx("haproxy: cannot check the file: %s; keeping the "
		    "previous file", cause);
		record_reload(a, why, f->started, cause);
		free(cause);
		restore_files(a, &f->old);
		flight_free(f);
		return -1;
	}
	f->config = xstrdup(config);
	f->known = render_backends(f->old.config == NULL ? "" : f->old.config,
	    &f->nknown);
	f->ncerts = d->ncerts;
	f->certs = xcalloc(d->ncerts + 1, sizeof(char *));
	for (i = 0; i < d->ncerts; i++)
		f->certs[i] = xstrdup(d->certs[i].file);
	f->nbackends = d->nbackends;
	f->nhosts = d->nhosts;
	a->flight = f;
	log_debug("haproxy: checking the file, then reloading (%s)", why);
	return 0;
}

/*
 * The flight ended as r says.  Returns 0 when HAProxy loaded the file,
 * -2 when haproxy -c refused it and services went to quarantine (a
 * reconcile without them follows), -1 otherwise.
 */
static int
flight_end(struct agent *a, struct reload_result *r)
{
	struct flight *f = a->flight;
	int rc = -1;

	a->flight = NULL;
	switch (r->outcome) {
	case RELOAD_REFUSED:
	case RELOAD_CHECK_FAILED:
		restore_files(a, &f->old);
		if (r->outcome == RELOAD_CHECK_FAILED)
			/* Not HAProxy's judgement: tried again. */
			log_warnx("haproxy: %s; keeping the previous file",
			    r->cause);
		else
			rc = check_refused(a, f->config, r->cause, &r->output);
		record_reload(a, f->why, f->started, rc == -2 ? "haproxy -c "
		    "refused the file; the services it names are in "
		    "quarantine" : r->cause);
		break;
	case RELOAD_FAILED:
		a->reload_pending = 1;
		a->pending_master = f->master;
		record_reload(a, f->why, f->started, r->cause);
		report_once(&a->reload_error, xasprintf("haproxy: reload "
		    "failed: %s; retrying", r->cause));
		a->metrics.reloads_failed++;
		a->next_reconcile = mono_ms() + 2000;
		break;
	case RELOAD_DONE:
		record_reload(a, f->why, f->started, NULL);
		report_clear(&a->reload_error, "haproxy: reloads work again");
		a->metrics.reloads_ok++;
		a->reload_pending = 0;
		log_info("haproxy: reloaded (%s): %zu backend(s), %zu host(s)",
		    f->why, f->nbackends, f->nhosts);
		if (a->last != NULL)
			prune_certs(a, a->last, f->certs, f->ncerts);
		/*
		 * The new worker is read and brought up to date at once;
		 * only a changed file reloads it again before poll_interval.
		 */
		a->dirty = 1;
		a->reload_settle_until = mono_ms() + a->cfg->poll_interval_ms;
		rc = 0;
		break;
	}
	reload_result_free(r);
	flight_free(f);
	return rc;
}

/*
 * Stopping: a flight under way is stopped.  A file HAProxy reloaded with
 * stays; any other is taken back, so that no file stays that HAProxy
 * may not have loaded (the next run sees the difference and reloads).
 */
void
flight_abandon(struct agent *a)
{
	struct flight *f = a->flight;
	struct reload_result r;

	if (f == NULL)
		return;
	a->flight = NULL;
	reload_job_stop(f->job, &r);
	if (r.outcome == RELOAD_DONE)
		log_info("stopping: HAProxy reloaded with the new file");
	else {
		log_info("stopping in the middle of a reload (%s): the "
		    "previous file is put back", r.cause);
		restore_files(a, &f->old);
	}
	reload_result_free(&r);
	flight_free(f);
}

/* Waits for a flight under way to end: for --once. */
int
flight_land(struct agent *a)
{
	struct reload_result r;

	reload_job_wait(a->flight->job, &r);
	return flight_end(a, &r);
}

/* d's file into config and its maps and crt-list into side[]. */
static void
render_files(struct agent *a, const struct desired *d, struct buf *config,
    struct buf *side)
{
	int i;

	render_config(config, d, &a->ro);
	for (i = 0; i < NSIDE; i++) {
		if (i == SIDE_CRT_LIST)
			render_crt_list(&side[i], d, a->certs_dir);
		else
			render_map(&side[i], d, i);
	}
}

/*
 * New desired state of the swarm, its file into config and its maps and
 * crt-list into side[] (initialised buffers); the label problems logged.
 */
static struct desired *
build(struct agent *a, struct buf *config, struct buf *side)
{
	struct desired_opts dopts;
	struct tenancy_opts tenancy;
	struct cert_store certs;
	struct desired *d;

	load_certs(a, &certs);
	memset(&dopts, 0, sizeof(dopts));
	dopts.prefix = a->cfg->label_prefix;
	dopts.cluster = a->cfg->service_cluster;
	dopts.https_port = https_port(a->cfg->https_bind);
	dopts.certs = &certs;
	tenancy.strict = a->cfg->strict_tenancy;
	tenancy.pins = a->cfg->pins;
	tenancy.npins = a->cfg->npins;
	dopts.tenancy = &tenancy;
	dopts.max_hosts = a->cfg->max_hosts;
	dopts.max_label_bytes = a->cfg->max_label_bytes;
	dopts.check_rate = a->cfg->check_rate;
	dopts.check_inter = a->last != NULL ? a->last->check_inter : 0;
	dopts.acme = a->cfg->acme_enabled ? certify_store(a->acme) : NULL;
	prune_quarantine(a);
	dopts.excluded = a->quarantine;
	dopts.nexcluded = a->nquarantine;
	d = desired_build(a->swarm, &dopts);
	cert_store_free(&certs);
	report_problems(a, d);
	render_files(a, d, config, side);
	return d;
}

/*
 * The tasks of some services changed, and nothing else: the servers of
 * the backends they serve are computed again, and only those backends
 * are read from HAProxy and changed, so that the cost follows the
 * change, not the swarm.  The file follows within FILE_DELAY_MS (only a
 * reload reads it, and a reload writes it first).  Returns what
 * reconcile does, or 1 when the change reaches beyond servers: then
 * everything is built.
 */
#define FILE_DELAY_MS 1000
static int
reconcile_tasks(struct agent *a)
{
	struct desired_opts dopts;
	struct desired *old;
	struct running *r;
	struct plan p;
	char **names, *cause;
	size_t i, n = 0;
	int changed, rc = 0;

	memset(&dopts, 0, sizeof(dopts));
	dopts.prefix = a->cfg->label_prefix;
	dopts.cluster = a->cfg->service_cluster;
	dopts.check_rate = a->cfg->check_rate;
	changed = desired_patch_tasks(a->last, a->swarm, &dopts,
	    a->tasks_changed, a->ntasks_changed, &old);
	free_strings(a->tasks_changed, a->ntasks_changed);
	a->tasks_changed = NULL;
	a->ntasks_changed = 0;
	if (changed == -1)
		return 1;
	if (changed == 0) {
		desired_free(old);
		return a->in_sync ? 0 : -1;
	}
	/* The desired state moved: the next reconcile compares again. */
	a->quiet = 0;
	if (!a->file_stale)
		a->file_due = mono_ms() + FILE_DELAY_MS;
	a->file_stale = 1;
	a->metrics.servers = a->last->nservers;
	/* During a flight, the backends of the file HAProxy runs only. */
	names = xcalloc(old->nbackends, sizeof(char *));
	for (i = 0; i < old->nbackends; i++)
		if (a->flight == NULL || find_in_array(&old->backends[i].name,
		    a->flight->known, a->flight->nknown, sizeof(char *),
		    str_cmp_ptr) != NULL)
			names[n++] = old->backends[i].name;
	r = running_new();
	memset(&p, 0, sizeof(p));
	if (n > 0 && runtime_read_servers(a->cfg->runtime_socket, names, n, r,
	    &cause) == -1) {
		/* The whole reconcile says it, and writes the file. */
		log_debug("haproxy: runtime API: %s", cause);
		free(cause);
		a->dirty = 1;
		rc = -1;
	} else {
		poll_fallen(a, r);
		plan_build_servers(&p, a->last, old, r);
		hold_filter(&a->hold, &p, mono_ms());
		if (apply_plan(a, &p) == -1)
			a->in_sync = 0;
		if (a->seen != NULL)
			running_take_servers(a->seen, r);
		rc = a->in_sync ? 0 : -1;
	}
	plan_free(&p);
	running_free(r);
	free(names);
	desired_free(old);
	return rc;
}

/*
 * Makes HAProxy equal to the snapshot.  Returns 0 when HAProxy (or, when
 * it does not answer, the file on disk) now matches, -1 otherwise.
 */
int
reconcile(struct agent *a)
{
	struct desired *d;
	struct running *r = NULL;
	struct plan p;
	struct buf config, side[NSIDE];
	static char none[] = "";
	char *sides[NSIDE], *text = NULL;
	const char *why;
	char *cause;
	uint64_t digest = 0;
	int rc = -1, i, reuse, skeleton, may_skip, quiet = 0, put_off = 0;
	size_t planned;

	/*
	 * Task changes first, into the last desired state; then, when it is
	 * time (or they reach beyond servers), the whole.
	 */
	if (!a->dirty && a->ntasks_changed > 0 && a->last != NULL) {
		rc = reconcile_tasks(a);
		if (rc == 1)
			a->dirty = 1;
		else if (mono_ms() < a->next_reconcile)
			return rc;
	}
	rc = -1;
	free_strings(a->tasks_changed, a->ntasks_changed);
	a->tasks_changed = NULL;
	a->ntasks_changed = 0;
	/*
	 * Nothing changed since a reconcile that left HAProxy in sync: what
	 * it built stands, and only HAProxy's state is read and compared.
	 * The whole is built again after a change, and once per
	 * audit_interval for what no event tells (certificate files).
	 */
	reuse = !a->dirty && a->in_sync && a->last != NULL &&
	    mono_ms() < a->next_rebuild;
	/*
	 * Nor is HAProxy's state parsed and compared when it reads as the
	 * last reconcile, which found nothing to do, left it: with thousands
	 * of servers, most of an idle poll_interval's work.
	 */
	may_skip = reconcile_may_skip(reuse, a->file_stale, a->flight != NULL,
	    a->quiet);
	a->dirty = 0;
	a->next_reconcile = mono_ms() + a->cfg->poll_interval_ms;
	buf_init(&config);
	for (i = 0; i < NSIDE; i++)
		buf_init(&side[i]);
	if (reuse && a->file_stale) {
		/* Servers changed since the file was written (above). */
		d = a->last;
		render_files(a, d, &config, side);
		skeleton = 0;
	} else if (reuse) {
		/*
		 * The files on disk are the state's own: borrowed, not
		 * copied (megabytes at thousands of servers, every
		 * poll_interval); every write of them below is one of the
		 * same text, a no-op.
		 */
		d = a->last;
		skeleton = 0;
		text = a->disk_config;
		for (i = 0; i < NSIDE; i++)
			sides[i] = a->disk_side[i] == NULL ? none :
			    a->disk_side[i];
	} else {
		d = build(a, &config, side);
		a->next_rebuild = mono_ms() + a->cfg->audit_interval_ms;
		skeleton = -1;
	}
	if (config.data != NULL) {
		/* Rendered above. */
		text = config.data;
		for (i = 0; i < NSIDE; i++)
			sides[i] = side[i].data;
	}
	a->file_stale = 0;
	/* Once: it renders the skeleton of two files of megabytes. */
	if (skeleton == -1)
		skeleton = skeleton_changed(a->disk_config, text);
	a->in_sync = 0;
	memset(&p, 0, sizeof(p));

	if (read_running(a, may_skip, committed_digest(a, d), &r,
	    &digest) == -1) {
		/*
		 * HAProxy is away: leave a file it will start right with.  If
		 * it is only its runtime socket that is away, the file must
		 * still be loaded once it answers.  A flight's file stays as
		 * it is until the flight ends.
		 */
		if (a->flight != NULL)
			goto out;
		if (skeleton) {
			if (write_checked(a, d, text, sides) != 0)
				goto out;
			a->reload_pending = 1;
			a->pending_master = -1;
		} else if (write_certs(a, d, master_pid(a) == -1, &cause) == -1 ||
		    write_sides(a, sides, &cause) == -1 ||
		    write_if_changed(a->cfg->haproxy_config, &a->disk_config,
		    text, &cause) == -1) {
			file_failed(a, cause);
			goto out;
		}
		a->next_reconcile = mono_ms() + BACKOFF_MIN_MS;
		rc = 0;
		goto out;
	}
	if (r == NULL) {
		/* As the last reconcile left it (may_skip). */
		quiet = 1;
		rc = 0;
		goto out;
	}

	settle_pending_reload(a);
	why = reload_reason(a, d, r, skeleton);
	/*
	 * Right after a reload, HAProxy that seems not to run the file (a
	 * runtime socket still answered by the old worker, a master started
	 * without the file) is given poll_interval before another: never a
	 * loop of reloads.
	 */
	if (why != NULL && why != reload_for_file &&
	    mono_ms() < a->reload_settle_until) {
		why = NULL;
		put_off = 1;
		a->next_reconcile = a->reload_settle_until;
	}
	/*
	 * A file refused already is not tried, nor recorded, again; one
	 * under way is let finish, and whatever changed meanwhile goes into
	 * the next (a burst of new services makes one reload after it).
	 */
	if (why != NULL && a->flight == NULL && (a->refused_config == NULL ||
	    strcmp(a->refused_config, text) != 0) &&
	    flight_start(a, d, why, text, sides) == 0)
		log_backend_changes(d, r);
	/*
	 * Meanwhile only the backends of the file HAProxy runs are changed:
	 * a new one may bear the name of one of the base file's, which the
	 * check refuses.
	 */
	if (a->flight != NULL)
		running_keep_backends(r, a->flight->known, a->flight->nknown);
	poll_fallen(a, r);
	read_committed(a, d, r);
	plan_build(&p, d, a->last, r, &a->ro);
	planned = p.ncmds;
	/*
	 * Certificates wait for the flight: the new worker may read a file
	 * before or after it is written, and what it holds would be unknown.
	 */
	if (a->flight != NULL)
		plan_drop_tls(&p);
	/* Refused ones wait: the full read's reconcile comes back to them. */
	hold_filter(&a->hold, &p, mono_ms());
	apply_plan(a, &p);
	/*
	 * Server lines and map entries only: no check or reload needed.  The
	 * files a flight checks and loads are not touched before it ends.
	 */
	if (a->flight == NULL && !skeleton) {
		if (write_sides(a, sides, &cause) == -1 ||
		    write_if_changed(a->cfg->haproxy_config, &a->disk_config,
		    text, &cause) == -1) {
			file_failed(a, cause);
			goto out;
		}
		rc = 0;
		quiet = reconcile_quiet(why, put_off, planned);
	}
out:
	if (rc == 0)
		report_clear(&a->file_error, "files: written again");
	update_status(a, d, rc);
	plan_free(&p);
	/* Kept for dovetailctl: the servers' states as HAProxy said. */
	if (r != NULL) {
		running_free(a->seen);
		a->seen = r;
	}
	a->in_sync = rc == 0 && (r != NULL || quiet);
	a->quiet = rc == 0 && quiet;
	a->quiet_digest = digest;
	if (!reuse) {
		desired_free(a->last);
		a->last = d;
	}
	warn_certs(a, d);
	buf_free(&config);
	for (i = 0; i < NSIDE; i++)
		buf_free(&side[i]);
	return rc;
}

/*
 * The file and the maps written again from the last desired state, which
 * task changes patched since they were (reconcile_tasks): its server
 * lines only differ.  A flight's files wait for it to end.
 */
void
file_catch_up(struct agent *a)
{
	struct buf config, side[NSIDE];
	char *sides[NSIDE], *cause;
	int i;

	if (a->flight != NULL || a->last == NULL)
		return;
	if (!a->in_sync) {
		/*
		 * Only a file the last reconcile wrote, so in sync, is known
		 * to differ from the last state by its server lines: else
		 * the whole reconcile decides (a refused file stays out).
		 */
		a->file_stale = 0;
		a->dirty = 1;
		return;
	}
	buf_init(&config);
	for (i = 0; i < NSIDE; i++)
		buf_init(&side[i]);
	render_files(a, a->last, &config, side);
	for (i = 0; i < NSIDE; i++)
		sides[i] = side[i].data;
	a->file_stale = 0;
	if (write_sides(a, sides, &cause) == -1 ||
	    write_if_changed(a->cfg->haproxy_config, &a->disk_config,
	    config.data, &cause) == -1) {
		/* Reported; the whole reconcile tries again. */
		file_failed(a, cause);
		a->dirty = 1;
	}
	buf_free(&config);
	for (i = 0; i < NSIDE; i++)
		buf_free(&side[i]);
}

/* A flight that ended is taken in (returns 1). */
int
flight_check(struct agent *a, long long now)
{
	struct reload_result r;

	if (a->flight == NULL || reload_job_poll(a->flight->job, now, &r) == 0)
		return 0;
	flight_end(a, &r);
	return 1;
}
