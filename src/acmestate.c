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

/*
 * Reads the store's configs: the best certificate of each set of names,
 * the challenges to answer, and the live locks.  seal_key is NULL when
 * key_file could not be read: certificates are then listed with why.
 */
void
acme_store_build(struct acme_store *st, const struct dconfig *dc, size_t n,
    const unsigned char *seal_key, long long now)
{
	struct acme_cert c, *have;
	const char *dot;
	char *token;
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < n; i++) {
		switch (dc[i].kind) {
		case ACME_CHALLENGE:
			/* "TOKEN.THUMBPRINT": the token is the map's key. */
			dot = strchr(dc[i].data, '.');
			if (dot == NULL || strlen(dc[i].data) != dc[i].len ||
			    (size_t)(dot - dc[i].data) > 128)
				break;
			token = xstrndup(dc[i].data, (size_t)(dot -
			    dc[i].data));
			if (!acme_token_valid(token) ||
			    !acme_token_valid(dot + 1)) {
				free(token);
				break;
			}
			st->challenges = xreallocarray(st->challenges,
			    st->nchallenges + 1, sizeof(*st->challenges));
			st->challenges[st->nchallenges].key = token;
			st->challenges[st->nchallenges++].value =
			    xstrdup(dc[i].data);
			break;
		case ACME_LOCK:
			if (hosts_id_valid(dc[i].hosts_id) &&
			    dc[i].expires > now) {
				st->locks = xreallocarray(st->locks,
				    st->nlocks + 1, sizeof(*st->locks));
				st->locks[st->nlocks++] =
				    xstrdup(dc[i].hosts_id);
			}
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
	sort_array(st->challenges, st->nchallenges, sizeof(*st->challenges),
	    kv_cmp);
	sort_array(st->locks, st->nlocks, sizeof(*st->locks), str_cmp_ptr);
}

void
acme_store_free(struct acme_store *st)
{
	size_t i;

	for (i = 0; i < st->ncerts; i++)
		acme_cert_free(&st->certs[i]);
	free(st->certs);
	for (i = 0; i < st->nchallenges; i++) {
		free(st->challenges[i].key);
		free(st->challenges[i].value);
	}
	free(st->challenges);
	for (i = 0; i < st->nlocks; i++)
		free(st->locks[i]);
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

int
acme_store_locked(const struct acme_store *st, const char *hosts_id)
{
	return find_in_array(&hosts_id, st->locks, st->nlocks, sizeof(char *),
	    str_cmp_ptr) != NULL;
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

	if (acme_store_locked(st, w->hosts_id))
		return ACME_NOT_DUE;
	if (t != NULL && t->failures > 0 && now < t->next_try)
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

	if (t != NULL && t->failures > 0)
		return ACME_FAILING;
	if (c == NULL || c->pair.pem == NULL)
		return ACME_PENDING;
	if (c->pair.info.not_after - now < (long long)renew_days * 86400)
		return ACME_RENEWING;
	return ACME_VALID;
}
