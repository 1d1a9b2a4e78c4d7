/* SPDX-License-Identifier: ISC */
/*
 * ACME in the loop.  The store (acmestate.c) is read with the swarm and
 * again on every config event; an order runs in a child process
 * (acmeorder.c), one at a time, so the loop never waits for a CA.  The
 * parent reads the child's lines and the store: every dovetail, the one
 * that ordered or not, serves a certificate once the store has it.
 *
 * A child that dies before its result, or outlives [acme] timeout (it is
 * killed then, before its lock expires and another dovetail may take
 * it), leaves the parent the list of configs it made: the parent removes
 * them, the lock only while it is still the child's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"

#define RESULT_MAX 16384
#define KILL_SLACK_MS 30000	/* past [acme] timeout: less than the lock's */

struct certify {
	uint64_t configs_hash;		/* the store's reply, as last read */
	int have_configs;
	int key_ok;
	unsigned char key[32];		/* sealing key, from key_file */
	struct acme_store store;
	long long read_at;		/* monotonic ms: read the store */
	struct acme_track *tracks;	/* sorted by hosts_id */
	size_t ntracks;
	pid_t child;			/* 0: none */
	int child_fd;
	int child_killed;
	long long child_started;	/* monotonic ms */
	char *child_hosts_id;
	char *child_what;		/* "HOST[, ...] (service S)" */
	struct buf child_out;
	unsigned long long orders[ACME_ORDER_RESULTS];
	char *key_error;		/* last reported */
};

struct certify *
certify_new(void)
{
	struct certify *c = xcalloc(1, sizeof(*c));

	c->child_fd = -1;
	buf_init(&c->child_out);
	return c;
}

static void
child_clear(struct certify *c)
{
	if (c->child_fd != -1)
		close(c->child_fd);
	c->child_fd = -1;
	c->child = 0;
	c->child_killed = 0;
	free(c->child_hosts_id);
	free(c->child_what);
	c->child_hosts_id = NULL;
	c->child_what = NULL;
	buf_reset(&c->child_out);
}

/* Reads what the child wrote so far. */
static void
child_read(struct certify *c)
{
	char chunk[512];
	ssize_t n;

	while ((n = read(c->child_fd, chunk, sizeof(chunk))) > 0)
		if (c->child_out.len < RESULT_MAX)
			buf_add(&c->child_out, chunk, (size_t)n);
}

/*
 * What the child said: its result into o (0), or -1 when it gave none;
 * what it left in the store is removed (with d; NULL: nothing can be,
 * the lock expires, and only this cluster's challenges are answered).
 */
static int
child_outcome(struct certify *c, struct docker *d, struct acme_outcome *o)
{
	struct kv *left;
	char *cause;
	size_t i, n;
	int rc;

	rc = acme_parse_child(c->child_out.data == NULL ? "" :
	    c->child_out.data, &left, &n, o);
	for (i = 0; d != NULL && i < n; i++) {
		if (acme_store_remove(d, left[i].key, left[i].value,
		    &cause) == -1) {
			log_warnx("acme: removing config %s: %s", left[i].key,
			    cause);
			free(cause);
		} else
			log_info("acme: removed %s, left by an unfinished "
			    "order", left[i].key);
	}
	kvs_free(left, n);
	return rc;
}

/* On exit: the order under way is ended, and what it left removed. */
void
certify_stop(struct certify *c, struct docker *d)
{
	struct acme_outcome o;
	int status;

	if (c == NULL || c->child == 0)
		return;
	kill(c->child, SIGTERM);
	while (waitpid(c->child, &status, 0) == -1 && errno == EINTR)
		;
	child_read(c);
	child_outcome(c, d, &o);
	free(o.host);
	free(o.why);
	child_clear(c);
}

void
certify_free(struct certify *c)
{
	size_t i;

	if (c == NULL)
		return;
	certify_stop(c, NULL);
	acme_store_free(&c->store);
	for (i = 0; i < c->ntracks; i++) {
		free(c->tracks[i].hosts_id);
		free(c->tracks[i].error);
	}
	free(c->tracks);
	free(c->key_error);
	buf_free(&c->child_out);
	explicit_bzero(c->key, sizeof(c->key));
	free(c);
}

/* An event or a finished order: read the store at the next pass. */
void
certify_touch(struct certify *c)
{
	c->read_at = 0;
}

/* When the loop must call certify_sync or certify_reap (monotonic ms). */
long long
certify_deadline(const struct certify *c, long long now)
{
	long long at = c->read_at < now ? now : c->read_at;

	/* SIGCHLD wakes the loop; this is for a child to be killed. */
	if (c->child != 0 && now + 1000 < at)
		at = now + 1000;
	return at;
}

const struct acme_store *
certify_store(const struct certify *c)
{
	return &c->store;
}

/*
 * The thumbprint (new) of the account whose key the store holds, or
 * NULL: only its challenges are answered.
 */
static char *
account_thumbprint(const struct dconfig *v, size_t n,
    const unsigned char *key)
{
	char *pem, *thumb, *cause;
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].kind == ACME_ACCOUNT && strcmp(v[i].name,
		    ACME_CONFIG_PREFIX "account") == 0)
			break;
	if (i == n)
		return NULL;
	if ((pem = seal_open(key, v[i].data, ACME_ACCOUNT_AAD, &cause)) ==
	    NULL) {
		log_warnx("acme: the account's key does not open with [acme] "
		    "key_file: %s", cause);
		free(cause);
		return NULL;
	}
	if ((thumb = acme_thumbprint(pem, &cause)) == NULL) {
		log_warnx("acme: the account's key: %s", cause);
		free(cause);
	}
	explicit_bzero(pem, strlen(pem));
	free(pem);
	return thumb;
}

/*
 * The sealing key into key.  One that cannot be read after one could
 * (a secret being replaced) leaves the last one in use: the store's
 * certificates stay served.  0, or -1 when there is none.
 */
static int
sealing_key(struct certify *c, const struct config *cfg,
    unsigned char key[32])
{
	char *why;

	if (acme_read_key(cfg, key, &why) == 0) {
		if (c->key_error != NULL)
			log_info("acme: [acme] key_file read");
		free(c->key_error);
		c->key_error = NULL;
		return 0;
	}
	if (c->key_error == NULL || strcmp(c->key_error, why) != 0)
		log_warnx("acme: %s; %s", why, c->key_ok ? "the key read "
		    "before stays in use" : "no certificate of the store can "
		    "be opened, and none is ordered");
	free(c->key_error);
	c->key_error = why;
	if (!c->key_ok)
		return -1;
	memcpy(key, c->key, 32);
	return 0;
}

/*
 * Reads the store when it is due: returns 1 when what it holds changed
 * (the desired state is then built again), 0 when not, -1 with *cause
 * when Docker did not answer.
 */
int
certify_sync(struct certify *c, struct docker *d, const struct config *cfg,
    long long now_ms, unsigned audit_ms, char **cause)
{
	struct dconfig *v;
	struct buf out;
	unsigned char key[32];
	char *path, *why, *thumb;
	uint64_t h;
	size_t n;
	int key_ok, rc = 0;

	if (now_ms < c->read_at)
		return 0;
	c->read_at = now_ms + audit_ms;
	key_ok = sealing_key(c, cfg, key) == 0;
	buf_init(&out);
	path = acme_store_query(ACME_LABEL);
	if (docker_get(d, path, &out, &why) == -1) {
		*cause = xasprintf("acme store: %s", why);
		free(why);
		rc = -1;
		goto out;
	}
	h = hash_bytes(out.data == NULL ? "" : out.data, out.len, HASH_INIT);
	if (c->have_configs && h == c->configs_hash && key_ok == c->key_ok &&
	    (!key_ok || memcmp(key, c->key, sizeof(key)) == 0))
		goto out;
	if (swarm_parse_configs(out.data == NULL ? "[]" : out.data,
	    out.data == NULL ? 2 : out.len, &v, &n, &why) == -1) {
		*cause = xasprintf("acme store: %s", why);
		free(why);
		rc = -1;
		goto out;
	}
	c->configs_hash = h;
	c->have_configs = 1;
	c->key_ok = key_ok;
	memcpy(c->key, key, sizeof(key));
	thumb = key_ok ? account_thumbprint(v, n, c->key) : NULL;
	acme_store_free(&c->store);
	acme_store_build(&c->store, v, n, key_ok ? c->key : NULL, thumb);
	free(thumb);
	dconfigs_free(v, n);
	log_debug("acme: the store holds %zu certificate(s), %zu "
	    "challenge(s), %zu lock(s)", c->store.ncerts,
	    c->store.nchallenges, c->store.nlocks);
	rc = 1;
out:
	explicit_bzero(key, sizeof(key));
	free(path);
	buf_free(&out);
	return rc;
}

static void
names_text(struct buf *b, const struct acme_want *w)
{
	size_t i;

	for (i = 0; i < w->nhosts && i < 3; i++)
		buf_addf(b, "%s%s", i > 0 ? ", " : "", w->hosts[i]);
	if (w->nhosts > 3)
		buf_addf(b, " and %zu more", w->nhosts - 3);
	buf_addf(b, " (service %s)", w->service);
}

static void
start_child(struct certify *c, const struct config *cfg,
    const struct acme_want *w, enum acme_due why)
{
	struct buf what;
	int p[2];
	pid_t pid;

	if (pipe(p) == -1) {
		log_warn("acme: pipe");
		return;
	}
	buf_init(&what);
	names_text(&what, w);
	log_info("acme: ordering a certificate for %s: %s", what.data,
	    why == ACME_DUE_NEW ? "it has none" : "renewal");
	pid = fork();
	if (pid == -1) {
		log_warn("acme: fork");
		close(p[0]);
		close(p[1]);
		buf_free(&what);
		return;
	}
	if (pid == 0) {
		if (child_detach(p[1]) == -1)
			_exit(1);
		acme_order_child(cfg, w, 3);
		_exit(0);
	}
	close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1)
		log_warn("acme: fcntl");
	c->child = pid;
	c->child_fd = p[0];
	c->child_started = mono_ms();
	c->child_hosts_id = xstrdup(w->hosts_id);
	c->child_what = buf_steal(&what);
	buf_reset(&c->child_out);
}

static struct acme_track *
track_of(struct certify *c, const char *hosts_id)
{
	struct acme_track *t;

	t = (struct acme_track *)acme_track_find(c->tracks, c->ntracks,
	    hosts_id);
	if (t != NULL)
		return t;
	c->tracks = xreallocarray(c->tracks, c->ntracks + 1,
	    sizeof(*c->tracks));
	t = &c->tracks[c->ntracks++];
	memset(t, 0, sizeof(*t));
	t->hosts_id = xstrdup(hosts_id);
	sort_array(c->tracks, c->ntracks, sizeof(*c->tracks),
	    acme_track_cmp);
	return (struct acme_track *)acme_track_find(c->tracks, c->ntracks,
	    hosts_id);
}

/* What the child said, once it has ended: logged, counted, tracked. */
static void
child_ended(struct certify *c, const struct config *cfg, struct docker *d,
    int status)
{
	struct acme_outcome o;
	struct acme_track *t;
	char until[32];
	long long now = (long long)time(NULL);
	unsigned retry = cfg->acme_retry_interval_ms / 1000;

	if (child_outcome(c, d, &o) == -1) {
		o.result = ACME_ORDER_FAILED;
		o.host = NULL;
		o.why = c->child_killed ? xasprintf("it ran past [acme] "
		    "timeout and was stopped") : xasprintf("its process "
		    "ended (status %d) without a result", status);
	}
	c->orders[o.result]++;
	t = track_of(c, c->child_hosts_id);
	switch (o.result) {
	case ACME_ORDER_OK:
		ctl_time(until, sizeof(until), o.not_after);
		log_info("acme: certificate issued for %s, valid until %s",
		    c->child_what, until);
		t->failures = 0;
		t->next_try = 0;
		free(t->error);
		t->error = NULL;
		break;
	case ACME_ORDER_LOCKED:
		/* Another's order: its lock shows in the store soon. */
		log_info("acme: another dovetail orders for %s",
		    c->child_what);
		t->next_try = now + (retry < 60 ? retry : 60);
		break;
	default:
		t->failures++;
		t->failed_at = now;
		t->next_try = acme_retry_at(t->failures, retry, now);
		/* why is the child's, escaped where it came from. */
		log_warnx("acme: the order for %s failed%s%s: %s; next try in "
		    "%lld s", c->child_what, o.host != NULL ? " at " : "",
		    o.host != NULL ? o.host : "", o.why, t->next_try - now);
		free(t->error);
		t->error = o.host != NULL ? xasprintf("%s: %s", o.host,
		    o.why) : xstrdup(o.why);
		break;
	}
	free(o.host);
	free(o.why);
}

/*
 * Reaps a finished order, and stops one past its time: returns 1 when
 * one ended (the store is then read again), 0 otherwise.  d (NULL when
 * Docker is away) removes what a dead one left.
 */
int
certify_reap(struct certify *c, const struct config *cfg, struct docker *d)
{
	int status;
	pid_t pid;

	if (c->child == 0)
		return 0;
	child_read(c);
	if (!c->child_killed && mono_ms() > c->child_started +
	    cfg->acme_timeout_ms + KILL_SLACK_MS) {
		log_warnx("acme: the order for %s runs past [acme] timeout; "
		    "stopping it", c->child_what);
		kill(c->child, SIGKILL);
		c->child_killed = 1;
	}
	pid = waitpid(c->child, &status, WNOHANG);
	if (pid == 0 || (pid == -1 && errno == EINTR))
		return 0;
	child_read(c);
	child_ended(c, cfg, d, pid == -1 ? -1 : WIFEXITED(status) ?
	    WEXITSTATUS(status) : 128 + WTERMSIG(status));
	child_clear(c);
	c->read_at = 0;
	return 1;
}

/* Starts the first order due, unless one runs.  now: Unix time. */
void
certify_schedule(struct certify *c, const struct config *cfg,
    const struct desired *d, long long now)
{
	struct acme_policy p;
	enum acme_due due;
	size_t i;

	if (c->child != 0 || !c->have_configs || !c->key_ok || d == NULL)
		return;
	p.renew_days = cfg->acme_renew_days;
	p.renew_interval_s = cfg->acme_renew_interval_ms / 1000;
	p.retry_s = cfg->acme_retry_interval_ms / 1000;
	for (i = 0; i < d->nacme; i++) {
		due = acme_due(&d->acme[i], &c->store, acme_track_find(
		    c->tracks, c->ntracks, d->acme[i].hosts_id), &p, now);
		if (due != ACME_NOT_DUE) {
			start_child(c, cfg, &d->acme[i], due);
			return;
		}
	}
}

/*
 * The figures of m's ACME part: orders by result, the certificates of
 * d's wants by state, and the failing ones for /healthz.
 */
void
certify_metrics(const struct certify *c, const struct config *cfg,
    const struct desired *d, long long now, struct metrics *m)
{
	const struct acme_track *t;
	enum acme_state st;
	size_t i;

	m->acme_on = cfg->acme_enabled;
	memcpy(m->acme_orders, c->orders, sizeof(m->acme_orders));
	memset(m->acme_certs, 0, sizeof(m->acme_certs));
	for (i = 0; i < m->nacme_failing; i++)
		free(m->acme_failing[i]);
	free(m->acme_failing);
	m->acme_failing = NULL;
	m->nacme_failing = 0;
	for (i = 0; d != NULL && i < d->nacme; i++) {
		t = acme_track_find(c->tracks, c->ntracks, d->acme[i].hosts_id);
		st = acme_state(&d->acme[i], &c->store, t,
		    cfg->acme_renew_days, now);
		m->acme_certs[st]++;
		if (st != ACME_FAILING)
			continue;
		m->acme_failing = xreallocarray(m->acme_failing,
		    m->nacme_failing + 1, sizeof(char *));
		m->acme_failing[m->nacme_failing++] = xasprintf("%s: %s",
		    d->acme[i].service, t->error != NULL ? t->error : "");
	}
}
