/* SPDX-License-Identifier: ISC */
/*
 * ACME in the loop.  The store (acmestate.c) is read with the swarm and
 * again on every config event; an order runs in a child process, one at
 * a time, so the loop never waits for a CA.  The child:
 *
 *   1. creates the lock config for the names: Docker creates a name once,
 *      so of several dovetails exactly one orders (the others see the
 *      lock and then the certificate);
 *   2. opens the account's key from the store, or makes one and stores
 *      it (a second dovetail racing here takes the first one's);
 *   3. orders (acme.c); each challenge is published as a config, which
 *      every dovetail's loop puts in its HAProxy's challenge map, and the
 *      child waits until its own HAProxy answers it;
 *   4. stores the certificate and its sealed key, removes the older ones
 *      of those names, the challenges and the lock;
 *   5. writes one line for the parent: "ok NOTAFTER", "locked", or
 *      "failed HOST<TAB>WHY" (HOST "-" when no one name failed).
 *
 * The parent only reads that line and the store: every dovetail, the
 * one that ordered or not, serves the certificate once the store has it.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"

#define RESULT_MAX 2048
#define PUBLISH_WAIT_MS 30000
#define PEER_GRACE_MS 1000	/* for the other dovetails' HAProxies */
#define LOCK_SLACK_S 60

struct certify {
	struct dconfig *configs;	/* the store, as last read */
	size_t nconfigs;
	uint64_t configs_hash;
	int have_configs;
	int key_ok;
	unsigned char key[32];		/* sealing key, from key_file */
	struct acme_store store;
	long long read_at;		/* monotonic ms: read the store */
	struct acme_track *tracks;	/* sorted by hosts_id */
	size_t ntracks;
	pid_t child;			/* 0: none */
	int child_fd;
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
free_track(struct acme_track *t)
{
	free(t->hosts_id);
	free(t->error);
}

void
certify_free(struct certify *c)
{
	size_t i;
	int status;

	if (c == NULL)
		return;
	if (c->child > 0) {
		kill(c->child, SIGTERM);
		waitpid(c->child, &status, 0);
	}
	if (c->child_fd != -1)
		close(c->child_fd);
	dconfigs_free(c->configs, c->nconfigs);
	acme_store_free(&c->store);
	for (i = 0; i < c->ntracks; i++)
		free_track(&c->tracks[i]);
	free(c->tracks);
	free(c->child_hosts_id);
	free(c->child_what);
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

long long
certify_deadline(const struct certify *c)
{
	return c->read_at;
}

const struct acme_store *
certify_store(const struct certify *c)
{
	return &c->store;
}

const unsigned long long *
certify_orders(const struct certify *c)
{
	return c->orders;
}

/* The sealing key of key_file into key; -1 with *cause. */
static int
read_key(const struct config *cfg, unsigned char key[32], char **cause)
{
	struct buf b;
	char *why;
	int rc;

	buf_init(&b);
	rc = file_read(cfg->acme_key_file, &b, &why);
	if (rc == -1) {
		*cause = xasprintf("[acme] key_file: %s", why);
		free(why);
	} else if (seal_key_from(b.data == NULL ? "" : b.data, b.len, key,
	    &why) == -1) {
		*cause = xasprintf("[acme] key_file %s: %s",
		    cfg->acme_key_file, why);
		free(why);
		rc = -1;
	}
	if (b.data != NULL)
		explicit_bzero(b.data, b.len);
	buf_free(&b);
	return rc;
}

/* GET path of the store's configs with the label (new). */
static char *
store_query(const char *label)
{
	char *q = docker_filter("label", label), *path;

	path = xasprintf("/configs?%s", q);
	free(q);
	return path;
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
	char *path, *why;
	uint64_t h;
	size_t n;
	int key_ok, rc = 0;

	if (now_ms < c->read_at)
		return 0;
	c->read_at = now_ms + audit_ms;
	key_ok = read_key(cfg, key, &why) == 0;
	if (!key_ok) {
		if (c->key_error == NULL || strcmp(c->key_error, why) != 0)
			log_warnx("acme: %s: certificates of the store cannot "
			    "be opened, and none is ordered", why);
		free(c->key_error);
		c->key_error = why;
	} else if (c->key_error != NULL) {
		log_info("acme: [acme] key_file read");
		free(c->key_error);
		c->key_error = NULL;
	}
	buf_init(&out);
	path = store_query(ACME_LABEL);
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
	dconfigs_free(c->configs, c->nconfigs);
	c->configs = v;
	c->nconfigs = n;
	c->configs_hash = h;
	c->have_configs = 1;
	c->key_ok = key_ok;
	memcpy(c->key, key, sizeof(key));
	acme_store_free(&c->store);
	acme_store_build(&c->store, c->configs, c->nconfigs, key_ok ? c->key :
	    NULL, (long long)time(NULL));
	log_debug("acme: the store holds %zu certificate(s), %zu "
	    "challenge(s), %zu order(s) under way", c->store.ncerts,
	    c->store.nchallenges, c->store.nlocks);
	rc = 1;
out:
	explicit_bzero(key, sizeof(key));
	free(path);
	buf_free(&out);
	return rc;
}

/* ---- the child ---- */

struct child {
	const struct config *cfg;
	struct docker *docker;
	const char *service;
	char *http_url;		/* "http://ADDR:PORT" of the HTTP frontend */
};

static char *
config_path(const char *name)
{
	return xasprintf("/configs/%s", name);
}

/* Creates a config of the store: 0, 1 when the name exists, -1. */
static int
create_config(struct child *ch, const char *name, enum acme_kind kind,
    const char *hosts_id, long long expires, const char *data,
    char **cause)
{
	struct buf out;
	char *body;
	long status;

	body = swarm_config_body(name, kind, hosts_id, expires, data,
	    strlen(data));
	buf_init(&out);
	status = docker_send(ch->docker, "POST", "/configs/create", body,
	    &out, cause);
	free(body);
	buf_free(&out);
	if (status == 409) {
		free(*cause);
		*cause = NULL;
		return 1;
	}
	if (status < 200 || status > 299) {
		if (status != -1) {
			char *why = *cause;

			*cause = xasprintf("creating config %s: %s", name, why);
			free(why);
		}
		return -1;
	}
	return 0;
}

static void
remove_config(struct child *ch, const char *name)
{
	struct buf out;
	char *path = config_path(name), *cause;
	long status;

	buf_init(&out);
	status = docker_send(ch->docker, "DELETE", path, NULL, &out, &cause);
	if (status != 404 && (status < 200 || status > 299)) {
		log_warnx("acme: removing config %s: %s", name, cause);
	}
	free(cause);
	free(path);
	buf_free(&out);
}

/* Reads one config of the store (*dc new): 0, 1 when there is none, -1. */
static int
read_config(struct child *ch, const char *name, struct dconfig **dc,
    char **cause)
{
	struct buf out;
	char *path = config_path(name), *why;
	long status;
	int rc = -1;

	buf_init(&out);
	status = docker_send(ch->docker, "GET", path, NULL, &out, cause);
	if (status == 404) {
		free(*cause);
		*cause = NULL;
		rc = 1;
	} else if (status == 200) {
		*dc = xcalloc(1, sizeof(**dc));
		if (swarm_parse_config(out.data == NULL ? "" : out.data,
		    out.len, *dc, &why) == 0)
			rc = 0;
		else {
			*cause = xasprintf("config %s: %s", name, why);
			free(why);
			free(*dc);
			*dc = NULL;
		}
	}
	free(path);
	buf_free(&out);
	return rc;
}

/*
 * Takes the names' lock: 0, 1 when another dovetail holds it, -1.  A
 * lock past its expiry (its holder died) is removed and taken again.
 */
static int
take_lock(struct child *ch, const char *name, const char *hosts_id,
    long long expires, char **cause)
{
	struct dconfig *dc;
	char host[256], *who;
	long long exp;
	int rc, tries;

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	who = xasprintf("%s pid %ld", host, (long)getpid());
	for (tries = 0; tries < 2; tries++) {
		rc = create_config(ch, name, ACME_LOCK, hosts_id, expires, who,
		    cause);
		if (rc != 1)
			break;
		rc = read_config(ch, name, &dc, cause);
		if (rc == -1)
			break;
		if (rc == 0) {
			exp = dc->expires;
			dconfigs_free(dc, 1);
			if (exp > (long long)time(NULL)) {
				rc = 1;
				break;
			}
			log_info("acme: %s is stale; taking it", name);
			remove_config(ch, name);
		}
	}
	free(who);
	return rc;
}

/* The account's key (new): the store's, or a new one stored there. */
static char *
account_key(struct child *ch, const unsigned char *key, char **cause)
{
	struct dconfig *dc;
	char *pem, *sealed;
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		rc = read_config(ch, ACME_CONFIG_PREFIX "account", &dc, cause);
		if (rc == -1)
			return NULL;
		if (rc == 0) {
			pem = seal_open(key, dc->data, ACME_ACCOUNT_AAD, cause);
			dconfigs_free(dc, 1);
			return pem;
		}
		if ((pem = acme_key_new(cause)) == NULL)
			return NULL;
		sealed = seal_text(key, pem, ACME_ACCOUNT_AAD, cause);
		if (sealed == NULL) {
			free(pem);
			return NULL;
		}
		rc = create_config(ch, ACME_CONFIG_PREFIX "account",
		    ACME_ACCOUNT, NULL, 0, sealed, cause);
		free(sealed);
		if (rc == 0) {
			log_info("acme: a new account key is in the store");
			return pem;
		}
		explicit_bzero(pem, strlen(pem));
		free(pem);
		if (rc == -1)
			return NULL;
		/* Another dovetail stored one first: use it. */
	}
	*cause = xstrdup("the account's config came and went");
	return NULL;
}

static char *
challenge_name(const char *token)
{
	char *id, *name;

	id = acme_hosts_id((char *const *)&token, 1);
	name = xasprintf(ACME_CONFIG_PREFIX "chal-%s", id);
	free(id);
	return name;
}

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct buf *b = user;

	if (b->len + size * nmemb > 4096)
		return 0;
	buf_add(b, ptr, size * nmemb);
	return size * nmemb;
}

/* Whether this node's HAProxy answers the challenge yet. */
static int
answered(const struct child *ch, const char *token, const char *keyauth)
{
	struct buf b;
	CURL *h;
	char *url;
	long status = 0;
	int ok;

	if ((h = curl_easy_init()) == NULL)
		return 0;
	buf_init(&b);
	url = xasprintf("%s/.well-known/acme-challenge/%s", ch->http_url,
	    token);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	ok = curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) ==
	    CURLE_OK && status == 200 && b.data != NULL &&
	    strcmp(b.data, keyauth) == 0;
	curl_easy_cleanup(h);
	free(url);
	buf_free(&b);
	return ok;
}

static int
publish(void *arg, const char *token, const char *keyauth, char **cause)
{
	struct child *ch = arg;
	struct timespec ts = { 0, 100 * 1000000L };
	char *name;
	long long until;
	int rc;

	if (!acme_token_valid(token)) {
		*cause = xstrdup("the CA's token is not base64url");
		return -1;
	}
	name = challenge_name(token);
	rc = create_config(ch, name, ACME_CHALLENGE, NULL, 0, keyauth, cause);
	free(name);
	if (rc == -1)
		return -1;
	until = mono_ms() + PUBLISH_WAIT_MS;
	while (!answered(ch, token, keyauth)) {
		if (mono_ms() >= until) {
			*cause = xasprintf("this node's HAProxy (%s) did not "
			    "answer the challenge within %d s", ch->http_url,
			    PUBLISH_WAIT_MS / 1000);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	ts.tv_sec = PEER_GRACE_MS / 1000;
	ts.tv_nsec = (PEER_GRACE_MS % 1000) * 1000000L;
	nanosleep(&ts, NULL);
	return 0;
}

static void
unpublish(void *arg, const char *token)
{
	struct child *ch = arg;
	char *name;

	if (!acme_token_valid(token))
		return;
	name = challenge_name(token);
	remove_config(ch, name);
	free(name);
}

/* "http://ADDR:PORT" this node's HTTP frontend answers on (new). */
static char *
http_url(const char *bind)
{
	const char *colon = strrchr(bind, ':');
	size_t len = (size_t)(colon - bind);

	if (len == 0 || (len == 1 && bind[0] == '*') || (len == 7 &&
	    strncmp(bind, "0.0.0.0", 7) == 0))
		return xasprintf("http://127.0.0.1%s", colon);
	if (len == 2 && strncmp(bind, "::", 2) == 0)
		return xasprintf("http://[::1]%s", colon);
	if (memchr(bind, ':', len) != NULL)
		return xasprintf("http://[%.*s]%s", (int)len, bind, colon);
	return xasprintf("http://%.*s%s", (int)len, bind, colon);
}

/* Removes the names' other certificates: the new one replaces them. */
static void
remove_older(struct child *ch, const char *hosts_id, const char *keep)
{
	struct dconfig *v;
	struct buf out;
	char *label, *path, *cause;
	size_t i, n;

	label = xasprintf("%s.hosts=%s", ACME_LABEL, hosts_id);
	path = store_query(label);
	buf_init(&out);
	if (docker_get(ch->docker, path, &out, &cause) == 0 &&
	    swarm_parse_configs(out.data == NULL ? "[]" : out.data,
	    out.data == NULL ? 2 : out.len, &v, &n, &cause) == 0) {
		for (i = 0; i < n; i++)
			if (v[i].kind == ACME_CERT && strcmp(v[i].name,
			    keep) != 0)
				remove_config(ch, v[i].name);
		dconfigs_free(v, n);
	} else {
		log_warnx("acme: the older certificates stay: %s", cause);
		free(cause);
	}
	buf_free(&out);
	free(path);
	free(label);
}

/* Stores the certificate: the config's name (new), or NULL. */
static char *
store_cert(struct child *ch, const unsigned char *key, const char *hosts_id,
    const struct acme_result *res, char **cause)
{
	char *aad, *sealed, *data, *name;
	int rc;

	aad = acme_cert_aad(hosts_id);
	sealed = seal_text(key, res->key_pem, aad, cause);
	free(aad);
	if (sealed == NULL)
		return NULL;
	data = acme_cert_data(res->cert_pem, sealed);
	free(sealed);
	name = xasprintf(ACME_CONFIG_PREFIX "cert-%s-%lld", hosts_id,
	    res->not_after);
	rc = create_config(ch, name, ACME_CERT, hosts_id, 0, data, cause);
	free(data);
	if (rc == 1) {
		*cause = xasprintf("config %s exists already", name);
		rc = -1;
	}
	if (rc == -1) {
		free(name);
		return NULL;
	}
	return name;
}

/* One order, in the child; the result line goes into out. */
static void
child_order(const struct config *cfg, const struct acme_want *w,
    struct buf *out)
{
	struct child ch = { cfg, NULL, w->service, NULL };
	struct acme_hooks hooks = { publish, unpublish, &ch };
	struct acme_opts opts;
	struct acme_result res;
	unsigned char key[32];
	char *cause = NULL, *lock, *account = NULL, *stored;
	long long deadline = mono_ms() + cfg->acme_timeout_ms;
	int rc;

	memset(&res, 0, sizeof(res));
	lock = xasprintf(ACME_CONFIG_PREFIX "lock-%s", w->hosts_id);
	ch.http_url = http_url(cfg->http_bind);
	ch.docker = docker_new(cfg);
	if (read_key(cfg, key, &cause) == -1 ||
	    docker_connect(ch.docker, &cause) == -1)
		goto failed;
	rc = take_lock(&ch, lock, w->hosts_id, (long long)time(NULL) +
	    cfg->acme_timeout_ms / 1000 + LOCK_SLACK_S, &cause);
	if (rc == 1) {
		buf_adds(out, "locked\n");
		goto done;
	}
	if (rc == -1)
		goto failed;
	if ((account = account_key(&ch, key, &cause)) == NULL)
		goto unlock;
	memset(&opts, 0, sizeof(opts));
	opts.directory = cfg->acme_directory;
	opts.contact = *cfg->acme_contact != '\0' ? cfg->acme_contact : NULL;
	opts.ca_bundle = *cfg->acme_ca_bundle != '\0' ? cfg->acme_ca_bundle :
	    NULL;
	opts.timeout_ms = (unsigned)(deadline - mono_ms());
	if (acme_order(&opts, account, (const char *const *)w->hosts,
	    w->nhosts, &hooks, &res, &cause) == -1)
		goto unlock;
	if ((stored = store_cert(&ch, key, w->hosts_id, &res, &cause)) ==
	    NULL)
		goto unlock;
	remove_older(&ch, w->hosts_id, stored);
	free(stored);
	buf_addf(out, "ok %lld\n", res.not_after);
	remove_config(&ch, lock);
	goto done;
unlock:
	remove_config(&ch, lock);
failed:
	buf_addf(out, "failed %s\t", res.failed_host != NULL ?
	    res.failed_host : "-");
	str_escape(out, res.problem != NULL ? res.problem : cause != NULL ?
	    cause : "unknown", 1000);
	if (res.problem != NULL && cause != NULL) {
		buf_adds(out, ": ");
		str_escape(out, cause, 500);
	}
	buf_addc(out, '\n');
done:
	if (account != NULL)
		explicit_bzero(account, strlen(account));
	free(account);
	explicit_bzero(key, sizeof(key));
	acme_result_free(&res);
	free(cause);
	free(lock);
	free(ch.http_url);
	docker_free(ch.docker);
}

/* ---- the parent ---- */

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

static int
start_child(struct certify *c, const struct config *cfg,
    const struct acme_want *w, enum acme_due why)
{
	struct buf b, what;
	int p[2], fd;
	pid_t pid;

	if (pipe(p) == -1) {
		log_warn("acme: pipe");
		return -1;
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
		return -1;
	}
	if (pid == 0) {
		/* The parent's sockets and pipes are none of the child's. */
		for (fd = 3; fd < 1024; fd++)
			if (fd != p[1])
				close(fd);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_IGN);
		signal(SIGCHLD, SIG_DFL);
		buf_init(&b);
		child_order(cfg, w, &b);
		if (b.data != NULL && write(p[1], b.data, b.len) == -1)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1)
		log_warn("acme: fcntl");
	c->child = pid;
	c->child_fd = p[0];
	c->child_hosts_id = xstrdup(w->hosts_id);
	c->child_what = buf_steal(&what);
	buf_reset(&c->child_out);
	return 0;
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
child_ended(struct certify *c, const struct config *cfg, int status)
{
	struct acme_outcome o;
	struct acme_track *t;
	long long now = (long long)time(NULL);

	if (acme_parse_outcome(c->child_out.data == NULL ? "" :
	    c->child_out.data, &o) == -1) {
		o.result = ACME_ORDER_FAILED;
		o.host = NULL;
		o.why = xasprintf("the order's process ended (status %d) "
		    "without a result", status);
	}
	c->orders[o.result]++;
	t = track_of(c, c->child_hosts_id);
	switch (o.result) {
	case ACME_ORDER_OK:
		log_info("acme: certificate issued for %s, valid until %lld",
		    c->child_what, o.not_after);
		t->failures = 0;
		free(t->error);
		t->error = NULL;
		break;
	case ACME_ORDER_LOCKED:
		log_info("acme: another dovetail orders for %s",
		    c->child_what);
		break;
	default:
		t->failures++;
		t->next_try = acme_retry_at(t->failures,
		    cfg->acme_retry_interval_ms / 1000, now);
		log_warnx("acme: the order for %s failed%s%s: %s; next try in "
		    "%lld s", c->child_what, o.host != NULL ? " at " : "",
		    o.host != NULL ? o.host : "", esc(o.why),
		    t->next_try - now);
		free(t->error);
		t->error = o.host != NULL ? xasprintf("%s: %s", o.host,
		    o.why) : xstrdup(o.why);
		break;
	}
	free(o.host);
	free(o.why);
}

/*
 * Reaps a finished order: returns 1 when one ended (the store is then
 * read again), 0 otherwise.
 */
int
certify_reap(struct certify *c, const struct config *cfg)
{
	char chunk[512];
	ssize_t n;
	int status;
	pid_t pid;

	if (c->child == 0)
		return 0;
	while ((n = read(c->child_fd, chunk, sizeof(chunk))) > 0)
		if (c->child_out.len < RESULT_MAX)
			buf_add(&c->child_out, chunk, (size_t)n);
	pid = waitpid(c->child, &status, WNOHANG);
	if (pid == 0 || (pid == -1 && errno == EINTR))
		return 0;
	while ((n = read(c->child_fd, chunk, sizeof(chunk))) > 0)
		if (c->child_out.len < RESULT_MAX)
			buf_add(&c->child_out, chunk, (size_t)n);
	close(c->child_fd);
	c->child_fd = -1;
	c->child = 0;
	child_ended(c, cfg, pid == -1 ? -1 : WIFEXITED(status) ?
	    WEXITSTATUS(status) : 128 + WTERMSIG(status));
	free(c->child_hosts_id);
	free(c->child_what);
	c->child_hosts_id = NULL;
	c->child_what = NULL;
	c->read_at = 0;
	return 1;
}

int
certify_busy(const struct certify *c)
{
	return c->child != 0;
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

/* Borrowed: this agent's record of the names' orders, or NULL. */
const struct acme_track *
certify_track(const struct certify *c, const char *hosts_id)
{
	return acme_track_find(c->tracks, c->ntracks, hosts_id);
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
