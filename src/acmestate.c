/* SPDX-License-Identifier: ISC */
/*
 * dovetail's ACME store is the swarm itself: Docker configs, replicated
 * by the managers' Raft log and readable by every load balancer's
 * dovetail, labelled com.dovetail.acme=KIND.
 *
 *   dovetail-acme-account          the account's key, sealed
 *   dovetail-acme-lock-H           an order for the names H is under way
 *                                  (.expires: when it is stale)
 *   dovetail-acme-chal-T           a key authorization every HAProxy
 *                                  answers for HTTP-01 (token hash T)
 *   dovetail-acme-cert-H-NOTAFTER  a certificate chain for the names H
 *                                  and its key, sealed
 *
 * H is acme_hosts_id: a hash of the sorted names.  "Sealed" is seal.c:
 * AES-256-GCM under the key of [acme] key_file, a Docker secret given to
 * the dovetails only; a config is readable by whoever may read configs.
 *
 * This file reads the store into what the desired state needs, and
 * decides which set of names is due for an order.  No I/O.
 */
#include "config.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

#define SEALED_PREFIX "dtseal1:"
#define HOSTS_ID_LEN 16

/*
 * The names' identity (new): the first 16 hex digits of the SHA-256 of
 * the sorted names joined by commas.  The certificate's own names are
 * checked as well, so a collision could not serve another's certificate.
 */
char *
acme_hosts_id(char *const *hosts, size_t n)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *ctx;
	char *out;
	size_t i;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		fatalx("EVP_MD_CTX_new failed");
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		fatalx("EVP_DigestInit_ex failed");
	for (i = 0; i < n; i++) {
		if (i > 0)
			EVP_DigestUpdate(ctx, ",", 1);
		EVP_DigestUpdate(ctx, hosts[i], strlen(hosts[i]));
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	out = xmalloc(HOSTS_ID_LEN + 1);
	for (i = 0; i < HOSTS_ID_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return out;
}

static int
hosts_id_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (strchr("0123456789abcdef", s[i]) == NULL)
			return 0;
	return i == HOSTS_ID_LEN;
}

/* The associated data a certificate's key is sealed with (new). */
char *
acme_cert_aad(const char *hosts_id)
{
	return xasprintf("dovetail-acme-cert %s", hosts_id);
}

/* A cert config's data (new): the chain, then the sealed key's line. */
char *
acme_cert_data(const char *cert_pem, const char *sealed_key)
{
	size_t n = strlen(cert_pem);

	return xasprintf("%s%s%s\n", cert_pem, n > 0 && cert_pem[n - 1] !=
	    '\n' ? "\n" : "", sealed_key);
}

/* The reverse of acme_cert_data: both parts new, or -1. */
int
acme_cert_split(const char *data, char **cert_pem, char **sealed)
{
	const char *p, *end;

	p = strstr(data, SEALED_PREFIX);
	if (p == NULL || p == data || p[-1] != '\n')
		return -1;
	end = p + strcspn(p, "\n");
	if (end[0] == '\n' && end[1] != '\0')
		return -1;
	*cert_pem = xstrndup(data, (size_t)(p - data));
	*sealed = xstrndup(p, (size_t)(end - p));
	return 0;
}

static int
acme_cert_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acme_cert *)a)->hosts_id,
	    ((const struct acme_cert *)b)->hosts_id);
}

/* Opens one cert config into c; c->pair.error says why not. */
static void
open_cert(struct acme_cert *c, const struct dconfig *dc,
    const unsigned char *seal_key)
{
	char *chain = NULL, *sealed = NULL, *key = NULL, *aad, *cause = NULL;

	c->hosts_id = xstrdup(dc->hosts_id);
	c->config = xstrdup(dc->name);
	c->created = dc->created;
	if (strlen(dc->data) != dc->len ||
	    acme_cert_split(dc->data, &chain, &sealed) == -1) {
		c->pair.error = xstrdup("the config holds no chain and sealed "
		    "key");
		return;
	}
	if (seal_key == NULL) {
		c->pair.error = xstrdup("[acme] key_file could not be read");
		goto out;
	}
	aad = acme_cert_aad(dc->hosts_id);
	key = seal_open(seal_key, sealed, aad, &cause);
	free(aad);
	if (key == NULL) {
		c->pair.error = xasprintf("its key does not open with "
		    "[acme] key_file: %s", cause);
		free(cause);
		goto out;
	}
	/* The chain is not sealed: it must be the key's. */
	if (acme_key_matches(chain, key, &cause) == -1) {
		c->pair.error = xasprintf("its chain is not its key's: %s",
		    cause);
		free(cause);
		goto out;
	}
	c->pair.pem = tls_combine(chain, strlen(chain), key, strlen(key),
	    &c->pair.error);
	if (c->pair.pem != NULL && tls_cert_info(c->pair.pem, &c->pair.info,
	    &cause) == -1) {
		c->pair.error = cause;
		free(c->pair.pem);
		c->pair.pem = NULL;
	}
out:
	if (key != NULL)
		explicit_bzero(key, strlen(key));
	free(key);
	free(chain);
	free(sealed);
}

static void
acme_cert_free(struct acme_cert *c)
{
	free(c->hosts_id);
	free(c->config);
	free(c->pair.pem);
	free(c->pair.error);
	cert_info_free(&c->pair.info);
}

/* Whether a is better to serve than b: one that opens, then the newest. */
static int
better(const struct acme_cert *a, const struct acme_cert *b)
{
	if ((a->pair.pem != NULL) != (b->pair.pem != NULL))
		return a->pair.pem != NULL;
	if (a->pair.info.not_after != b->pair.info.not_after)
		return a->pair.info.not_after > b->pair.info.not_after;
	return a->created > b->created;
}

static int
lock_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acme_lock *)a)->hosts_id,
	    ((const struct acme_lock *)b)->hosts_id);
}

/*
 * A challenge config's key authorization, "TOKEN.THUMBPRINT": its token
 * (new) when both parts are base64url and the thumbprint is this
 * cluster's account's, else NULL.  Anyone who may create configs could
 * otherwise have every HAProxy answer for an account of their own.
 */
static char *
challenge_token(const struct dconfig *dc, const char *thumbprint)
{
	const char *dot = strchr(dc->data, '.');
	char *token;

	if (thumbprint == NULL || dot == NULL || strlen(dc->data) != dc->len ||
	    (size_t)(dot - dc->data) > 128 || strcmp(dot + 1, thumbprint) != 0)
		return NULL;
	token = xstrndup(dc->data, (size_t)(dot - dc->data));
	if (!acme_token_valid(token) || !acme_token_valid(dot + 1)) {
		free(token);
		return NULL;
	}
	return token;
}

/*
 * Reads the store's configs: the best certificate of each set of names,
 * the challenges of the account whose thumbprint is given (none when
 * NULL), and the locks.  seal_key is NULL when key_file could not be
 * read: certificates are then listed with why.
 */
void
acme_store_build(struct acme_store *st, const struct dconfig *dc, size_t n,
    const unsigned char *seal_key, const char *thumbprint)
{
	struct acme_cert c, *have;
	struct acme_lock *l;
	char *token;
	size_t i, j;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < n; i++) {
		switch (dc[i].kind) {
		case ACME_CHALLENGE:
			if ((token = challenge_token(&dc[i], thumbprint)) ==
			    NULL)
				break;
			st->challenges = xreallocarray(st->challenges,
			    st->nchallenges + 1, sizeof(*st->challenges));
			st->challenges[st->nchallenges].key = token;
			st->challenges[st->nchallenges++].value =
			    xstrdup(dc[i].data);
			break;
		case ACME_LOCK:
			if (!hosts_id_valid(dc[i].hosts_id))
				break;
			st->locks = xreallocarray(st->locks, st->nlocks + 1,
			    sizeof(*st->locks));
			l = &st->locks[st->nlocks++];
			l->hosts_id = xstrdup(dc[i].hosts_id);
			l->expires = dc[i].expires;
			break;
		case ACME_CERT:
			if (!hosts_id_valid(dc[i].hosts_id))
				break;
			memset(&c, 0, sizeof(c));
			open_cert(&c, &dc[i], seal_key);
			have = find_in_array(&c, st->certs, st->ncerts,
			    sizeof(*st->certs), acme_cert_cmp);
			if (have != NULL && !better(&c, have)) {
				acme_cert_free(&c);
				break;
			}
			if (have != NULL) {
				acme_cert_free(have);
				*have = c;
				break;
			}
			st->certs = xreallocarray(st->certs, st->ncerts + 1,
			    sizeof(*st->certs));
			st->certs[st->ncerts++] = c;
			sort_array(st->certs, st->ncerts, sizeof(*st->certs),
			    acme_cert_cmp);
			break;
		default:
			break;
		}
	}
	/* One answer per token: the same token twice is one map key. */
	sort_array(st->challenges, st->nchallenges, sizeof(*st->challenges),
	    kv_cmp);
	for (i = j = 0; i < st->nchallenges; i++) {
		if (j > 0 && strcmp(st->challenges[j - 1].key,
		    st->challenges[i].key) == 0) {
			free(st->challenges[i].key);
			free(st->challenges[i].value);
			continue;
		}
		st->challenges[j++] = st->challenges[i];
	}
	st->nchallenges = j;
	sort_array(st->locks, st->nlocks, sizeof(*st->locks), lock_cmp);
}

void
acme_store_free(struct acme_store *st)
{
	size_t i;

	for (i = 0; i < st->ncerts; i++)
		acme_cert_free(&st->certs[i]);
	free(st->certs);
	kvs_free(st->challenges, st->nchallenges);
	for (i = 0; i < st->nlocks; i++)
		free(st->locks[i].hosts_id);
	free(st->locks);
	memset(st, 0, sizeof(*st));
}

/* Borrowed: the certificate the store holds for those names, or NULL. */
const struct acme_cert *
acme_store_cert(const struct acme_store *st, const char *hosts_id)
{
	struct acme_cert key;

	if (st == NULL)
		return NULL;
	key.hosts_id = (char *)hosts_id;
	return find_in_array(&key, st->certs, st->ncerts, sizeof(*st->certs),
	    acme_cert_cmp);
}

/*
 * Whether an order for those names is under way: a lock that has not
 * expired.  Expiry is judged now, not when the store was read, since a
 * store that does not change is not read into a new one.
 */
int
acme_store_locked(const struct acme_store *st, const char *hosts_id,
    long long now)
{
	const struct acme_lock *l;
	struct acme_lock key;

	key.hosts_id = (char *)hosts_id;
	l = find_in_array(&key, st->locks, st->nlocks, sizeof(*st->locks),
	    lock_cmp);
	return l != NULL && l->expires > now;
}

/*
 * Borrowed: while the names have no certificate of their own (a host was
 * added to the service, say), the store's usable one that names most of
 * them, so that those keep their HTTPS until the new one comes; or NULL.
 */
const struct acme_cert *
acme_store_fallback(const struct acme_store *st, char *const *names,
    size_t n)
{
	const struct acme_cert *best = NULL;
	size_t i, hits, best_hits = 0;

	for (i = 0; st != NULL && i < st->ncerts; i++) {
		if (st->certs[i].pair.pem == NULL)
			continue;
		hits = tls_names_covered(&st->certs[i].pair.info, names, n);
		if (hits > best_hits || (hits == best_hits && hits > 0 &&
		    st->certs[i].pair.info.not_after >
		    best->pair.info.not_after)) {
			best = &st->certs[i];
			best_hits = hits;
		}
	}
	return best;
}

int
acme_track_cmp(const void *a, const void *b)
{
	return strcmp(((const struct acme_track *)a)->hosts_id,
	    ((const struct acme_track *)b)->hosts_id);
}

/* Borrowed track of those names in v (sorted by hosts_id), or NULL. */
const struct acme_track *
acme_track_find(const struct acme_track *v, size_t n, const char *hosts_id)
{
	struct acme_track key;

	key.hosts_id = (char *)hosts_id;
	return find_in_array(&key, v, n, sizeof(*v), acme_track_cmp);
}

/* When to try again after the failures-th failure in a row. */
long long
acme_retry_at(unsigned failures, unsigned retry_s, long long now)
{
	long long wait = retry_s;

	while (failures-- > 1 && wait < ACME_RETRY_MAX_S)
		wait *= 2;
	return now + (wait < ACME_RETRY_MAX_S ? wait : ACME_RETRY_MAX_S);
}

/*
 * Whether w is due for an order now: no usable certificate, or one
 * within renew_days of its end; and no order under way anywhere (a
 * live lock), none of this agent's failures still waiting, and no
 * certificate issued for it within renew_interval (which keeps a
 * renewal window longer than the CA's certificates from ordering on
 * every pass, and the CA's rate limits safe).
 */
enum acme_due
acme_due(const struct acme_want *w, const struct acme_store *st,
    const struct acme_track *t, const struct acme_policy *p, long long now)
{
	const struct acme_cert *c;

	if (acme_store_locked(st, w->hosts_id, now))
		return ACME_NOT_DUE;
	if (t != NULL && now < t->next_try)
		return ACME_NOT_DUE;
	c = acme_store_cert(st, w->hosts_id);
	if (c == NULL || c->pair.pem == NULL)
		return c != NULL && c->created > 0 && now - c->created <
		    (long long)p->renew_interval_s ? ACME_NOT_DUE :
		    ACME_DUE_NEW;
	if (c->pair.info.not_after - now >= (long long)p->renew_days * 86400)
		return ACME_NOT_DUE;
	if (c->created > 0 && now - c->created < (long long)p->renew_interval_s)
		return ACME_NOT_DUE;
	return ACME_DUE_RENEW;
}

/*
 * The line an order's process ends with: "ok NOTAFTER", "locked", or
 * "failed HOST<TAB>WHY" (HOST "-": none in particular).  0 with o filled
 * (host and why new, or NULL), or -1.
 */
int
acme_parse_outcome(const char *line, struct acme_outcome *o)
{
	const char *tab, *end;
	char *host;

	memset(o, 0, sizeof(*o));
	end = line + strcspn(line, "\n");
	if (strncmp(line, "ok ", 3) == 0) {
		o->result = ACME_ORDER_OK;
		for (line += 3; line < end; line++) {
			if (*line < '0' || *line > '9' ||
			    o->not_after > 1000000000000LL)
				return -1;
			o->not_after = o->not_after * 10 + (*line - '0');
		}
		return o->not_after > 0 ? 0 : -1;
	}
	if (strncmp(line, "locked", 6) == 0 && line + 6 == end) {
		o->result = ACME_ORDER_LOCKED;
		return 0;
	}
	if (strncmp(line, "failed ", 7) != 0 ||
	    (tab = memchr(line, '\t', (size_t)(end - line))) == NULL)
		return -1;
	o->result = ACME_ORDER_FAILED;
	host = xstrndup(line + 7, (size_t)(tab - line - 7));
	if (strcmp(host, "-") == 0 || !label_valid_host(host)) {
		free(host);
		host = NULL;
	}
	o->host = host;
	o->why = xstrndup(tab + 1, (size_t)(end - tab - 1));
	return 0;
}

const char *const acme_state_names[ACME_STATES] = { "valid", "renewing",
	"pending", "failing" };
const char *const acme_order_result_names[ACME_ORDER_RESULTS] = { "ok",
	"failed", "locked" };

/* Where w's certificate stands, for /metrics and dovetailctl. */
enum acme_state
acme_state(const struct acme_want *w, const struct acme_store *st,
    const struct acme_track *t, unsigned renew_days, long long now)
{
	const struct acme_cert *c = acme_store_cert(st, w->hosts_id);

	/* Failing until a certificate newer than the failure comes (it
	 * may be another dovetail's). */
	if (t != NULL && t->failures > 0 && (c == NULL || c->pair.pem ==
	    NULL || c->created <= t->failed_at))
		return ACME_FAILING;
	if (c == NULL || c->pair.pem == NULL)
		return ACME_PENDING;
	if (c->pair.info.not_after - now < (long long)renew_days * 86400)
		return ACME_RENEWING;
	return ACME_VALID;
}

/*
 * What an order's process told its parent (acmeorder.c): its configs
 * made and not since removed or kept, as name -> ID (new, in *left), and
 * its result.  Returns 0 when it gave a result, -1 when it did not (it
 * died, or was killed).
 */
int
acme_parse_child(const char *text, struct kv **left, size_t *nleft,
    struct acme_outcome *o)
{
	const char *p, *eol, *sp;
	char *line, *name;
	size_t i;
	int got = -1;

	*left = NULL;
	*nleft = 0;
	memset(o, 0, sizeof(*o));
	for (p = text; *p != '\0'; p = *eol == '\0' ? eol : eol + 1) {
		eol = p + strcspn(p, "\n");
		line = xstrndup(p, (size_t)(eol - p));
		if (strncmp(line, "made ", 5) == 0 &&
		    (sp = strchr(line + 5, ' ')) != NULL) {
			name = xstrndup(line + 5, (size_t)(sp - line - 5));
			if (strncmp(name, ACME_CONFIG_PREFIX,
			    strlen(ACME_CONFIG_PREFIX)) == 0 &&
			    name_valid(name, DT_NAME_MAX) &&
			    name_valid(sp + 1, DT_NAME_MAX)) {
				*left = xreallocarray(*left, *nleft + 1,
				    sizeof(**left));
				(*left)[*nleft].key = name;
				(*left)[(*nleft)++].value = xstrdup(sp + 1);
			} else
				free(name);
		} else if (strncmp(line, "removed ", 8) == 0 ||
		    strncmp(line, "kept ", 5) == 0) {
			name = strchr(line, ' ') + 1;
			for (i = 0; i < *nleft; i++)
				if (strcmp((*left)[i].key, name) == 0)
					break;
			if (i < *nleft) {
				free((*left)[i].key);
				free((*left)[i].value);
				(*left)[i] = (*left)[--*nleft];
			}
		} else {
			if (got == 0) {
				free(o->host);
				free(o->why);
			}
			got = acme_parse_outcome(line, o);
		}
		free(line);
	}
	return got;
}
