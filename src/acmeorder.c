/* SPDX-License-Identifier: ISC */
/*
 * One ACME order, in a child process of the loop (certify.c), written to
 * the swarm's store (acmestate.c says what is stored where):
 *
 *   1. create the lock config for the names: Docker creates a name once,
 *      so of several dovetails exactly one orders; a lock past its expiry
 *      (its holder died) is removed, by its ID, and taken;
 *   2. open the account's key from the store, or make one and store it
 *      (a second dovetail racing here takes the first one's);
 *   3. order (acme.c); each challenge is published as a config, which
 *      every dovetail's loop puts in its HAProxy's challenge map, and the
 *      child waits until its own HAProxy answers it;
 *   4. store the certificate and its sealed key, remove the older ones of
 *      those names, the challenges and the lock.
 *
 * It tells the parent, on a pipe, one line per config it makes ("made
 * NAME ID"), then "removed NAME" or "kept NAME" for each, then its
 * result: "ok
 * NOTAFTER", "locked", or "failed HOST<TAB>WHY" (HOST "-" when no one
 * name failed).  A child that dies or is killed before its result line
 * leaves the parent the list of what to remove.
 */
#include "config.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"

#define PUBLISH_WAIT_MS 30000
#define PEER_GRACE_MS 1000	/* for the other dovetails' HAProxies */

struct child {
	const struct config *cfg;
	struct docker *docker;
	int fd;			/* the parent's pipe */
	char *http_url;		/* "http://ADDR:PORT" of the HTTP frontend */
};

/* One line to the parent, at once: it may be the last one. */
static void DT_PRINTF(2, 3)
say(const struct child *ch, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vdprintf(ch->fd, fmt, ap) < 0 || write(ch->fd, "\n", 1) == -1) {
		/* The parent is gone: nobody to tell. */
	}
	va_end(ap);
}

/* GET path of the store's configs with the label (new). */
char *
acme_store_query(const char *label)
{
	char *q = docker_filter("label", label), *path;

	path = xasprintf("/configs?%s", q);
	free(q);
	return path;
}

/* Reads one config of the store into dc: 0, 1 when there is none, -1. */
static int
read_config(struct docker *d, const char *name, struct dconfig *dc,
    char **cause)
{
	struct buf out;
	char *path = xasprintf("/configs/%s", name), *why;
	long status;
	int rc = -1;

	buf_init(&out);
	status = docker_send(d, "GET", path, NULL, &out, cause);
	if (status == 404) {
		free(*cause);
		*cause = NULL;
		rc = 1;
	} else if (status == 200) {
		if (swarm_parse_config(out.data == NULL ? "" : out.data,
		    out.len, dc, &why) == 0)
			rc = 0;
		else {
			*cause = xasprintf("config %s: %s", name, why);
			free(why);
		}
	}
	free(path);
	buf_free(&out);
	return rc;
}

/*
 * Removes a config of the store by name; with id, only while the name
 * is still that config (a lock another dovetail took over is not
 * removed).  0, or -1 with *cause.
 */
int
acme_store_remove(struct docker *d, const char *name, const char *id,
    char **cause)
{
	struct dconfig dc;
	struct buf out;
	char *path = xasprintf("/configs/%s", name);
	long status;
	int rc = 0;

	*cause = NULL;
	buf_init(&out);
	if (id != NULL) {
		memset(&dc, 0, sizeof(dc));
		rc = read_config(d, name, &dc, cause);
		if (rc == 0 && strcmp(dc.id, id) != 0)
			rc = 1;		/* another's now: not ours to remove */
		dconfig_free_fields(&dc);
		if (rc != 0) {
			rc = rc == 1 ? 0 : -1;	/* none (any more) is fine */
			goto done;
		}
	}
	status = docker_send(d, "DELETE", path, NULL, &out, cause);
	if (status != 404 && (status < 200 || status > 299))
		rc = -1;
done:
	if (rc == 0) {
		free(*cause);
		*cause = NULL;
	}
	free(path);
	buf_free(&out);
	return rc;
}

/*
 * Creates a config of the store: 0 with *id (new), 1 when the name
 * exists, -1 with *cause.
 */
static int
create_config(struct child *ch, const char *name, enum acme_kind kind,
    const char *hosts_id, long long expires, const char *data, char **id,
    char **cause)
{
	struct buf out;
	char *body, *why;
	long status;
	int rc = 0;

	*id = NULL;
	body = swarm_config_body(name, kind, hosts_id, expires, data,
	    strlen(data));
	buf_init(&out);
	status = docker_send(ch->docker, "POST", "/configs/create", body,
	    &out, cause);
	free(body);
	if (status == 409) {
		free(*cause);
		*cause = NULL;
		rc = 1;
	} else if (status < 200 || status > 299) {
		if (status != -1) {
			why = *cause;
			*cause = xasprintf("creating config %s: %s", name, why);
			free(why);
		}
		rc = -1;
	} else if ((*id = swarm_parse_created(out.data == NULL ? "" :
	    out.data, out.len)) == NULL) {
		*cause = xasprintf("creating config %s: Docker gave no ID",
		    name);
		rc = -1;
	} else
		say(ch, "made %s %s", name, *id);
	buf_free(&out);
	return rc;
}

/* Removes a config this child made (id) or found (id NULL: by name). */
static void
remove_config(struct child *ch, const char *name, const char *id)
{
	char *cause;

	if (acme_store_remove(ch->docker, name, id, &cause) == -1) {
		log_warnx("acme: removing config %s: %s", name, cause);
		free(cause);
		return;
	}
	say(ch, "removed %s", name);
}

/*
 * Takes the names' lock: 0 with *id (new), 1 when another dovetail holds
 * it, -1 with *cause.  A lock past its expiry is removed, by its ID (two
 * dovetails that both find it stale cannot remove each other's new one),
 * and taken again.
 */
static int
take_lock(struct child *ch, const char *name, const char *hosts_id,
    long long expires, char **id, char **cause)
{
	struct dconfig dc;
	char host[256], *who;
	int rc = 1, tries, stale;

	memset(&dc, 0, sizeof(dc));
	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	who = xasprintf("%s pid %ld", host, (long)getpid());
	for (tries = 0; tries < 2; tries++) {
		rc = create_config(ch, name, ACME_LOCK, hosts_id, expires, who,
		    id, cause);
		if (rc != 1)
			break;
		memset(&dc, 0, sizeof(dc));
		rc = read_config(ch->docker, name, &dc, cause);
		if (rc == -1)
			break;
		rc = 1;		/* not taken, unless a create succeeds */
		if (dc.id == NULL)
			continue;	/* gone meanwhile: try again */
		stale = dc.expires <= (long long)time(NULL);
		if (stale) {
			log_info("acme: %s is stale; taking it", name);
			remove_config(ch, name, dc.id);
		}
		dconfig_free_fields(&dc);
		if (!stale)
			break;
	}
	free(who);
	return rc;
}

/* The account's key (new): the store's, or a new one stored there. */
static char *
account_key(struct child *ch, const unsigned char *key, char **cause)
{
	struct dconfig dc;
	char *pem, *sealed, *id;
	int rc, tries;

	for (tries = 0; tries < 2; tries++) {
		rc = read_config(ch->docker, ACME_CONFIG_PREFIX "account", &dc,
		    cause);
		if (rc == -1)
			return NULL;
		if (rc == 0) {
			pem = seal_open(key, dc.data, ACME_ACCOUNT_AAD, cause);
			dconfig_free_fields(&dc);
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
		    ACME_ACCOUNT, NULL, 0, sealed, &id, cause);
		free(sealed);
		free(id);
		if (rc == 0) {
			/* No order's leftover: not to be removed. */
			say(ch, "kept " ACME_CONFIG_PREFIX "account");
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

/* The config of a challenge (new): named by a hash of its token. */
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

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int
publish(void *arg, const char *token, const char *keyauth, char **cause)
{
	struct child *ch = arg;
	char *name, *id;
	long long until;
	int rc;

	if (!acme_token_valid(token)) {
		*cause = xstrdup("the CA's token is not base64url");
		return -1;
	}
	name = challenge_name(token);
	rc = create_config(ch, name, ACME_CHALLENGE, NULL, 0, keyauth, &id,
	    cause);
	if (rc == 1)
		*cause = xasprintf("config %s exists already", name);
	free(name);
	free(id);
	if (rc != 0)
		return -1;
	until = mono_ms() + PUBLISH_WAIT_MS;
	while (!answered(ch, token, keyauth)) {
		if (mono_ms() >= until) {
			*cause = xasprintf("this node's HAProxy (%s) did not "
			    "answer the challenge within %d s", ch->http_url,
			    PUBLISH_WAIT_MS / 1000);
			return -1;
		}
		sleep_ms(100);
	}
	sleep_ms(PEER_GRACE_MS);
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
	remove_config(ch, name, NULL);
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
	path = acme_store_query(label);
	buf_init(&out);
	if (docker_get(ch->docker, path, &out, &cause) == 0 &&
	    swarm_parse_configs(out.data == NULL ? "[]" : out.data,
	    out.data == NULL ? 2 : out.len, &v, &n, &cause) == 0) {
		for (i = 0; i < n; i++)
			if (v[i].kind == ACME_CERT && strcmp(v[i].name,
			    keep) != 0)
				remove_config(ch, v[i].name, v[i].id);
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
	char *aad, *sealed, *data, *name, *id;
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
	rc = create_config(ch, name, ACME_CERT, hosts_id, 0, data, &id,
	    cause);
	free(data);
	free(id);
	if (rc == 1) {
		*cause = xasprintf("config %s exists already", name);
		rc = -1;
	}
	if (rc == -1) {
		free(name);
		return NULL;
	}
	/* What the order is for: not to be removed. */
	say(ch, "kept %s", name);
	return name;
}

/* The sealing key of [acme] key_file into key; -1 with *cause. */
int
acme_read_key(const struct config *cfg, unsigned char key[32], char **cause)
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

/* s, at most max bytes, on one line: control bytes become '?'. */
static void
one_line(struct buf *b, const char *s, size_t max)
{
	for (; *s != '\0' && max > 0; s++, max--)
		buf_addc(b, (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/* One order for w, in the child; lines to the parent on fd. */
void
acme_order_child(const struct config *cfg, const struct acme_want *w, int fd)
{
	struct child ch = { cfg, NULL, fd, NULL };
	struct acme_hooks hooks = { publish, unpublish, &ch };
	struct acme_opts opts;
	struct acme_result res;
	struct buf line;
	unsigned char key[32];
	char *cause = NULL, *lock, *lock_id = NULL, *account = NULL, *stored;
	long long deadline = mono_ms() + cfg->acme_timeout_ms, left;
	int rc;

	memset(&res, 0, sizeof(res));
	buf_init(&line);
	lock = xasprintf(ACME_CONFIG_PREFIX "lock-%s", w->hosts_id);
	ch.http_url = http_url(cfg->http_bind);
	ch.docker = docker_new(cfg);
	if (acme_read_key(cfg, key, &cause) == -1 ||
	    docker_connect(ch.docker, &cause) == -1)
		goto failed;
	rc = take_lock(&ch, lock, w->hosts_id, (long long)time(NULL) +
	    cfg->acme_timeout_ms / 1000 + ACME_LOCK_SLACK_S, &lock_id, &cause);
	if (rc == 1) {
		buf_adds(&line, "locked");
		goto done;
	}
	if (rc == -1)
		goto failed;
	if ((account = account_key(&ch, key, &cause)) == NULL)
		goto unlock;
	left = deadline - mono_ms();
	if (left < 1000) {
		cause = xstrdup("[acme] timeout ran out before the order");
		goto unlock;
	}
	memset(&opts, 0, sizeof(opts));
	opts.directory = cfg->acme_directory;
	opts.contact = *cfg->acme_contact != '\0' ? cfg->acme_contact : NULL;
	opts.ca_bundle = *cfg->acme_ca_bundle != '\0' ? cfg->acme_ca_bundle :
	    NULL;
	opts.timeout_ms = (unsigned)left;
	if (acme_order(&opts, account, (const char *const *)w->hosts,
	    w->nhosts, &hooks, &res, &cause) == -1)
		goto unlock;
	if ((stored = store_cert(&ch, key, w->hosts_id, &res, &cause)) ==
	    NULL)
		goto unlock;
	remove_older(&ch, w->hosts_id, stored);
	free(stored);
	buf_addf(&line, "ok %lld", res.not_after);
	remove_config(&ch, lock, lock_id);
	goto done;
unlock:
	remove_config(&ch, lock, lock_id);
failed:
	/* Causes and problems come escaped for the log; only what would
	 * break the line is left to take out. */
	buf_addf(&line, "failed %s\t", res.failed_host != NULL ?
	    res.failed_host : "-");
	if (cause != NULL && res.problem != NULL &&
	    strstr(cause, res.problem) == NULL) {
		one_line(&line, res.problem, 1000);
		buf_adds(&line, ": ");
	}
	one_line(&line, cause != NULL ? cause : res.problem != NULL ?
	    res.problem : "unknown", 1000);
done:
	say(&ch, "%s", line.data);
	if (account != NULL)
		explicit_bzero(account, strlen(account));
	free(account);
	explicit_bzero(key, sizeof(key));
	acme_result_free(&res);
	free(cause);
	free(lock);
	free(lock_id);
	free(ch.http_url);
	buf_free(&line);
	docker_free(ch.docker);
}
