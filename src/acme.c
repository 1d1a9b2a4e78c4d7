/* SPDX-License-Identifier: ISC */
/*
 * The ACME protocol (RFC 8555): one order for a set of host names, from
 * the CA's directory to the certificate, with HTTP-01 challenges that the
 * caller's hooks publish.  Blocking, on one libcurl easy handle: the
 * daemon runs an order in a child process of its own.
 *
 * Everything the CA says is untrusted: replies are capped, every JSON
 * member is checked for its type, URLs must be https, tokens and nonces
 * base64url, and what reaches a cause or the log is escaped.  The pieces
 * without I/O (the JWS, problem documents, tokens) are functions of their
 * own, for the tests; the cryptography is acmecrypto.c's.
 */
#include "config.h"

#include <curl/curl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dovetail.h"

#define ACME_REPLY_MAX (1024 * 1024)
#define ACME_URL_MAX 2048
#define ACME_NONCE_MAX 256
#define ACME_TOKEN_MAX 128
#define ACME_NONCE_RETRIES 3
#define ACME_POLL_MS 1000
#define ACME_CONNECT_MS 10000
#define ACME_HOSTS_MAX 100
#define ACME_DETAIL_MAX 300
#define ACME_ERR "urn:ietf:params:acme:error:"
/* Statuses of authorizations and orders, for str_in. */
static const char *const st_pending[] = { "pending", NULL };
static const char *const st_processing[] = { "processing", NULL };
static const char *const st_ready[] = { "ready", NULL };
static const char *const st_valid[] = { "valid", NULL };

/* One order's state; nothing outlives acme_order. */
struct acme {
	const struct acme_opts *opts;
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
	long long deadline;	/* mono_ms */
	const char *key_pem;	/* the account's, borrowed */
	char *jwk;		/* its public JWK, canonical JSON */
	char *thumbprint;
	char *nonce;		/* the CA's latest, unused; or NULL */
	char *kid;		/* the account URL, once known */
	char *new_nonce;
	char *new_account;
	char *new_order;
	char **tokens;		/* published, to unpublish */
	size_t ntokens;
};

/* What one request brought back. */
struct acme_reply {
	struct acme *a;
	long status;
	struct buf body;
	int over;
	char *location;		/* a checked URL, or NULL */
	long long retry_after_ms;	/* -1: none */
};

/* ---- pure pieces ---------------------------------------------------- */

/* Whether s is 1 to max characters of the base64url alphabet. */
static int
b64url_valid(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i == max || !((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		    s[i] == '_'))
			return 0;
	}
	return i > 0;
}

/* A challenge token is safe in a file name and a URL path. */
int
acme_token_valid(const char *token)
{
	return b64url_valid(token, ACME_TOKEN_MAX);
}

/* A URL from the CA: https, printable, no spaces, bounded. */
static int
url_valid(const char *u)
{
	size_t i;

	if (strncmp(u, "https://", 8) != 0)
		return 0;
	for (i = 0; u[i] != '\0'; i++)
		if (i == ACME_URL_MAX || u[i] <= 0x20 || u[i] > 0x7e)
			return 0;
	return 1;
}

/* json_dumps, compact, with the members in the order they were set. */
static char *
json_text(const json_t *j)
{
	char *s;

	if ((s = json_dumps(j, JSON_COMPACT)) == NULL)
		fatalx("jansson: out of memory");
	return s;
}

/*
 * A JWS in the flattened JSON serialization (RFC 7515 section 7.2.2), as
 * ACME wants it (RFC 8555 section 6.2): the protected header holds alg
 * ES256, then jwk (a JSON object's text, for newAccount) or kid, then
 * nonce and url; payload is JSON text, or "" for POST-as-GET.  Returns
 * the JWS (new), or NULL with *cause (new).
 */
char *
acme_jws(const struct acme_signer *signer, const char *jwk, const char *kid,
    const char *nonce, const char *url, const char *payload, char **cause)
{
	json_t *prot, *jws, *key;
	unsigned char sig[64];
	char *text, *p64, *pl64, *s64, *input, *out = NULL;

	if ((prot = json_object()) == NULL)
		fatalx("jansson: out of memory");
	json_object_set_new(prot, "alg", json_string("ES256"));
	if (jwk != NULL) {
		if ((key = json_loads(jwk, 0, NULL)) == NULL ||
		    !json_is_object(key)) {
			json_decref(key);
			json_decref(prot);
			*cause = xstrdup("the account's JWK is not a JSON "
			    "object");
			return NULL;
		}
		json_object_set_new(prot, "jwk", key);
	} else
		json_object_set_new(prot, "kid", json_string(kid));
	json_object_set_new(prot, "nonce", json_string(nonce));
	json_object_set_new(prot, "url", json_string(url));
	text = json_text(prot);
	json_decref(prot);

	p64 = acme_b64url(text, strlen(text));
	free(text);
	pl64 = acme_b64url(payload, strlen(payload));
	input = xasprintf("%s.%s", p64, pl64);
	if (signer->sign(signer->arg, input, strlen(input), sig, cause) == 0) {
		s64 = acme_b64url(sig, sizeof(sig));
		jws = json_pack("{s:s, s:s, s:s}", "protected", p64,
		    "payload", pl64, "signature", s64);
		if (jws == NULL)
			fatalx("jansson: out of memory");
		out = json_text(jws);
		json_decref(jws);
		free(s64);
	}
	free(input);
	free(pl64);
	free(p64);
	return out;
}

/* A borrowed string member of o, or NULL when missing or not a string. */
static const char *
json_str(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* "type: detail" of a problem object, escaped and bounded (new). */
static char *
problem_text(const json_t *o)
{
	const char *type = json_str(o, "type"), *detail = json_str(o,
	    "detail");
	struct buf b;

	buf_init(&b);
	str_escape(&b, type == NULL ? "(no type)" : type, ACME_DETAIL_MAX);
	if (detail != NULL) {
		buf_adds(&b, ": ");
		str_escape(&b, detail, ACME_DETAIL_MAX);
	}
	return buf_steal(&b);
}

/*
 * A problem document (RFC 7807) in body: its type and detail (new; each
 * NULL when missing or not a string, raw: escape them).  Returns 0, or
 * -1 when body is not a JSON object.
 */
int
acme_problem_parse(const char *body, size_t len, char **type, char **detail)
{
	json_t *o;
	const char *s;

	*type = *detail = NULL;
	if ((o = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	if ((s = json_str(o, "type")) != NULL)
		*type = xstrdup(s);
	if ((s = json_str(o, "detail")) != NULL)
		*detail = xstrdup(s);
	json_decref(o);
	return 0;
}

/* ---- HTTP ------------------------------------------------------------ */

static size_t
acme_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct acme_reply *r = arg;

	if (r->body.len + size * nmemb > ACME_REPLY_MAX) {
		r->over = 1;
		return 0;
	}
	buf_add(&r->body, ptr, size * nmemb);
	return size * nmemb;
}

/* A header's value if line is that header (new), or NULL. */
static char *
header_value(const char *line, size_t len, const char *name)
{
	size_t n = strlen(name);

	if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
		return NULL;
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] ==
	    '\n' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len > ACME_URL_MAX || memchr(line, '\0', len) != NULL)
		return NULL;
	return xstrndup(line, len);
}

/* Retry-After in seconds (its HTTP-date form is not honoured). */
static long long
retry_after_ms(const char *v)
{
	long long s = 0;
	size_t i;

	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9' || i == 6)
			return -1;
		s = s * 10 + (v[i] - '0');
	}
	return i == 0 ? -1 : s * 1000;
}

static size_t
acme_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct acme_reply *r = arg;
	size_t len = size * nmemb;
	char *v;

	/* A new status line (after a 100 Continue): a new set of headers. */
	if (len >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
		free(r->location);
		r->location = NULL;
		r->retry_after_ms = -1;
	} else if ((v = header_value(ptr, len, "Replay-Nonce")) != NULL) {
		if (b64url_valid(v, ACME_NONCE_MAX)) {
			free(r->a->nonce);
			r->a->nonce = v;
		} else
			free(v);
	} else if ((v = header_value(ptr, len, "Location")) != NULL) {
		free(r->location);
		r->location = url_valid(v) ? v : NULL;
		if (r->location == NULL)
			free(v);
	} else if ((v = header_value(ptr, len, "Retry-After")) != NULL) {
		r->retry_after_ms = retry_after_ms(v);
		free(v);
	}
	return len;
}

static void
reply_init(struct acme_reply *r, struct acme *a)
{
	memset(r, 0, sizeof(*r));
	r->a = a;
	buf_init(&r->body);
	r->retry_after_ms = -1;
}

static void
reply_free(struct acme_reply *r)
{
	buf_free(&r->body);
	free(r->location);
	reply_init(r, r->a);
}

/*
 * One request: GET (post NULL), HEAD (head set) or POST of a JWS, with
 * what is left of the order's time.  The reply is r's; 0 whatever its
 * status, -1 with *cause (new) when there was none.
 */
static int
acme_http(struct acme *a, const char *url, const char *post, int head,
    const char *accept, struct acme_reply *r, char **cause)
{
	struct curl_slist *hdrs = NULL;
	long long left = a->deadline - mono_ms();
	char *h;
	CURLcode rc;

	reply_free(r);
	if (left <= 0) {
		*cause = xasprintf("%s: the order took longer than its "
		    "timeout (%u ms)", esc(url), a->opts->timeout_ms);
		return -1;
	}
	curl_easy_reset(a->easy);
	curl_easy_setopt(a->easy, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(a->easy, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(a->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->easy, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(a->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(left < ACME_CONNECT_MS ? left : ACME_CONNECT_MS));
	curl_easy_setopt(a->easy, CURLOPT_ERRORBUFFER, a->errbuf);
	curl_easy_setopt(a->easy, CURLOPT_USERAGENT, PACKAGE_NAME "/"
	    PACKAGE_VERSION);
	curl_easy_setopt(a->easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(a->easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (a->opts->ca_bundle != NULL)
		curl_easy_setopt(a->easy, CURLOPT_CAINFO, a->opts->ca_bundle);
	curl_easy_setopt(a->easy, CURLOPT_WRITEFUNCTION, acme_write);
	curl_easy_setopt(a->easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(a->easy, CURLOPT_HEADERFUNCTION, acme_header);
	curl_easy_setopt(a->easy, CURLOPT_HEADERDATA, r);
	if (head)
		curl_easy_setopt(a->easy, CURLOPT_NOBODY, 1L);
	if (post != NULL) {
		curl_easy_setopt(a->easy, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(a->easy, CURLOPT_POSTFIELDSIZE,
		    (long)strlen(post));
		hdrs = curl_slist_append(hdrs,
		    "Content-Type: application/jose+json");
		hdrs = curl_slist_append(hdrs, "Expect:");
	}
	h = xasprintf("Accept: %s", accept != NULL ? accept :
	    "application/json");
	hdrs = curl_slist_append(hdrs, h);
	free(h);
	if (hdrs == NULL)
		fatalx("curl_slist_append failed");
	curl_easy_setopt(a->easy, CURLOPT_HTTPHEADER, hdrs);
	a->errbuf[0] = '\0';
	log_debug("acme: %s %s", post != NULL ? "POST" : head ? "HEAD" :
	    "GET", esc(url));
	rc = curl_easy_perform(a->easy);
	curl_slist_free_all(hdrs);
	if (r->over) {
		*cause = xasprintf("%s: a reply larger than %d bytes",
		    esc(url), ACME_REPLY_MAX);
		return -1;
	}
	if (rc != CURLE_OK) {
		*cause = xasprintf("%s: %s", esc(url), esc(a->errbuf[0] !=
		    '\0' ? a->errbuf : curl_easy_strerror(rc)));
		return -1;
	}
	curl_easy_getinfo(a->easy, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

/* The reply's problem as a cause (new), or its status if it has none. */
static char *
reply_problem(const char *url, const struct acme_reply *r)
{
	json_t *o = NULL;
	char *text, *cause;

	if (r->body.len > 0)
		o = json_loadb(r->body.data, r->body.len, 0, NULL);
	if (!json_is_object(o) || json_str(o, "type") == NULL) {
		json_decref(o);
		return xasprintf("%s: HTTP %ld", esc(url), r->status);
	}
	text = problem_text(o);
	json_decref(o);
	cause = xasprintf("%s: HTTP %ld: %s", esc(url), r->status, text);
	free(text);
	return cause;
}

/* The reply's body as a JSON object (new), or NULL with *cause (new). */
static json_t *
reply_json(const char *url, const struct acme_reply *r, char **cause)
{
	json_t *o;

	o = json_loadb(r->body.data == NULL ? "" : r->body.data, r->body.len,
	    0, NULL);
	if (!json_is_object(o)) {
		json_decref(o);
		*cause = xasprintf("%s: the reply is not a JSON object",
		    esc(url));
		return NULL;
	}
	return o;
}

static int
acme_get_nonce(struct acme *a, char **cause)
{
	struct acme_reply r;
	int rc = -1;

	reply_init(&r, a);
	if (acme_http(a, a->new_nonce, NULL, 1, NULL, &r, cause) == 0) {
		if (r.status != 200 && r.status != 204)
			*cause = reply_problem(a->new_nonce, &r);
		else if (a->nonce == NULL)
			*cause = xasprintf("%s: no Replay-Nonce",
			    esc(a->new_nonce));
		else
			rc = 0;
	}
	reply_free(&r);
	return rc;
}

/*
 * POST a JWS of payload ("" for POST-as-GET) to url, signed with the jwk
 * until the account is known, then with its kid.  A badNonce is retried
 * with the nonce it brought.  0 with the reply in r when it succeeded
 * (2xx), else -1 with *cause (new).
 */
static int
acme_post(struct acme *a, const char *url, const char *payload,
    const char *accept, struct acme_reply *r, char **cause)
{
	struct acme_signer signer = { acme_sign_es256, (void *)a->key_pem };
	char *jws, *type, *detail;
	int tries, bad;

	for (tries = 0;; tries++) {
		if (a->nonce == NULL && acme_get_nonce(a, cause) == -1)
			return -1;
		jws = acme_jws(&signer, a->kid == NULL ? a->jwk : NULL,
		    a->kid, a->nonce, url, payload, cause);
		free(a->nonce);
		a->nonce = NULL;
		if (jws == NULL)
			return -1;
		if (acme_http(a, url, jws, 0, accept, r, cause) == -1) {
			free(jws);
			return -1;
		}
		free(jws);
		if (r->status >= 200 && r->status < 300)
			return 0;
		bad = 0;
		if (r->body.len > 0 && acme_problem_parse(r->body.data,
		    r->body.len, &type, &detail) == 0) {
			bad = type != NULL && strcmp(type, ACME_ERR
			    "badNonce") == 0;
			free(type);
			free(detail);
		}
		if (!bad || tries == ACME_NONCE_RETRIES)
			break;
		log_debug("acme: %s: badNonce, retrying", esc(url));
	}
	*cause = reply_problem(url, r);
	return -1;
}

/* POST-as-GET url, its reply a JSON object (new) in *o. */
static int
acme_fetch(struct acme *a, const char *url, json_t **o,
    struct acme_reply *r, char **cause)
{
	if (acme_post(a, url, "", NULL, r, cause) == -1)
		return -1;
	return (*o = reply_json(url, r, cause)) == NULL ? -1 : 0;
}

/* Waits until the next poll: poll_ms, longer if the CA asked. */
static void
acme_wait(struct acme *a, const struct acme_reply *r)
{
	long long ms = a->opts->poll_ms == 0 ? ACME_POLL_MS :
	    a->opts->poll_ms, left = a->deadline - mono_ms();

	if (r->retry_after_ms > ms)
		ms = r->retry_after_ms;
	if (ms > left)
		ms = left;
	if (ms > INT_MAX)
		ms = INT_MAX;
	if (ms > 0)
		poll(NULL, 0, (int)ms);
}

/* Whether s is one of the NULL-terminated list. */
static int
str_in(const char *s, const char *const *list)
{
	for (; s != NULL && *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return 1;
	return 0;
}

/*
 * POST-as-GET url until its status is none of busy; the last object (new)
 * in *o.
 */
static int
acme_poll(struct acme *a, const char *url, const char *const *busy,
    json_t **o, char **cause)
{
	struct acme_reply r;
	int rc;

	reply_init(&r, a);
	for (;;) {
		if ((rc = acme_fetch(a, url, o, &r, cause)) == -1)
			break;
		if (!str_in(json_str(*o, "status"), busy))
			break;
		json_decref(*o);
		*o = NULL;
		acme_wait(a, &r);
	}
	reply_free(&r);
	return rc;
}

/* ---- the order ------------------------------------------------------- */

/* A URL member of o (borrowed), or NULL with *cause (new). */
static const char *
json_url(const json_t *o, const char *key, const char *what, char **cause)
{
	const char *u = json_str(o, key);

	if (u == NULL || !url_valid(u)) {
		*cause = xasprintf("%s: no https URL as \"%s\"", what, key);
		return NULL;
	}
	return u;
}

static int
acme_directory(struct acme *a, char **cause)
{
	struct acme_reply r;
	const char *dir = a->opts->directory;
	const char *n, *acc, *ord;
	json_t *o = NULL;
	int rc = -1;

	reply_init(&r, a);
	if (acme_http(a, dir, NULL, 0, NULL, &r, cause) == -1)
		goto out;
	if (r.status != 200) {
		*cause = reply_problem(dir, &r);
		goto out;
	}
	if ((o = reply_json(dir, &r, cause)) == NULL ||
	    (n = json_url(o, "newNonce", "the directory", cause)) == NULL ||
	    (acc = json_url(o, "newAccount", "the directory", cause)) ==
	    NULL ||
	    (ord = json_url(o, "newOrder", "the directory", cause)) == NULL)
		goto out;
	a->new_nonce = xstrdup(n);
	a->new_account = xstrdup(acc);
	a->new_order = xstrdup(ord);
	rc = 0;
out:
	json_decref(o);
	reply_free(&r);
	return rc;
}

/* newAccount: finds (200) or makes (201) the key's account, its kid. */
static int
acme_account(struct acme *a, char **cause)
{
	struct acme_reply r;
	json_t *req, *o = NULL;
	const char *status;
	char *payload;
	int rc = -1;

	req = json_pack("{s:b}", "termsOfServiceAgreed", 1);
	if (req == NULL)
		fatalx("jansson: out of memory");
	if (a->opts->contact != NULL && json_object_set_new(req, "contact",
	    json_pack("[s]", a->opts->contact)) == -1) {
		json_decref(req);
		*cause = xstrdup("the ACME contact is not UTF-8 text");
		return -1;
	}
	payload = json_text(req);
	json_decref(req);
	reply_init(&r, a);
	if (acme_post(a, a->new_account, payload, NULL, &r, cause) == -1)
		goto out;
	if (r.location == NULL) {
		*cause = xasprintf("%s: no account URL (Location)",
		    esc(a->new_account));
		goto out;
	}
	if ((o = reply_json(a->new_account, &r, cause)) == NULL)
		goto out;
	status = json_str(o, "status");
	if (status != NULL && strcmp(status, "valid") != 0) {
		*cause = xasprintf("the account is %s", esc(status));
		goto out;
	}
	a->kid = r.location;
	r.location = NULL;
	log_debug("acme: account %s", esc(a->kid));
	rc = 0;
out:
	json_decref(o);
	free(payload);
	reply_free(&r);
	return rc;
}

/* newOrder for hosts: the order's URL (new) and object (new). */
static int
acme_new_order(struct acme *a, const char *const *hosts, size_t nhosts,
    char **url, json_t **order, char **cause)
{
	struct acme_reply r;
	json_t *ids, *req;
	char *payload;
	size_t i;
	int rc = -1;

	if ((ids = json_array()) == NULL)
		fatalx("jansson: out of memory");
	for (i = 0; i < nhosts; i++)
		json_array_append_new(ids, json_pack("{s:s, s:s}", "type",
		    "dns", "value", hosts[i]));
	req = json_pack("{s:o}", "identifiers", ids);
	payload = json_text(req);
	json_decref(req);
	reply_init(&r, a);
	if (acme_post(a, a->new_order, payload, NULL, &r, cause) == 0) {
		if (r.location == NULL)
			*cause = xasprintf("%s: no order URL (Location)",
			    esc(a->new_order));
		else if ((*order = reply_json(a->new_order, &r, cause)) !=
		    NULL) {
			*url = r.location;
			r.location = NULL;
			rc = 0;
		}
	}
	free(payload);
	reply_free(&r);
	return rc;
}

/* The host of hosts (borrowed) an authorization is for, or NULL. */
static const char *
authz_host(const json_t *authz, const char *const *hosts, size_t nhosts)
{
	const json_t *id = json_object_get(authz, "identifier");
	const char *type = json_str(id, "type"), *value = json_str(id,
	    "value");
	size_t i;

	if (type == NULL || value == NULL || strcmp(type, "dns") != 0)
		return NULL;
	for (i = 0; i < nhosts; i++)
		if (strcmp(hosts[i], value) == 0)
			return hosts[i];
	return NULL;
}

/* The authorization's http-01 challenge (borrowed), or NULL. */
static json_t *
authz_http01(const json_t *authz)
{
	json_t *c;
	size_t i;

	json_array_foreach(json_object_get(authz, "challenges"), i, c) {
		if (json_is_object(c) && json_str(c, "type") != NULL &&
		    strcmp(json_str(c, "type"), "http-01") == 0)
			return c;
	}
	return NULL;
}

/* An authorization that did not become valid: what the result says. */
static int
authz_failed(const json_t *authz, const char *host, const char *url,
    struct acme_result *res, char **cause)
{
	const json_t *c = authz_http01(authz), *err;
	const char *status = json_str(authz, "status");

	err = c == NULL ? NULL : json_object_get(c, "error");
	res->failed_host = xstrdup(host);
	if (json_is_object(err))
		res->problem = problem_text(err);
	else
		res->problem = xasprintf("the authorization is %s",
		    status == NULL ? "(no status)" : esc(status));
	*cause = xasprintf("%s: the authorization of %s failed: %s",
	    esc(url), host, res->problem);
	return -1;
}

/*
 * One authorization: nothing if it is valid already, else its http-01
 * challenge published, answered and polled until the authorization is
 * valid.
 */
static int
acme_authorize(struct acme *a, const char *url, const char *const *hosts,
    size_t nhosts, const struct acme_hooks *hooks, struct acme_result *res,
    char **cause)
{
	struct acme_reply r;
	json_t *authz = NULL, *c;
	const char *host, *token, *curl, *cstatus;
	char *keyauth;
	int rc = -1;

	reply_init(&r, a);
	if (acme_fetch(a, url, &authz, &r, cause) == -1)
		goto out;
	if ((host = authz_host(authz, hosts, nhosts)) == NULL) {
		*cause = xasprintf("%s: an authorization for none of the "
		    "order's hosts", esc(url));
		goto out;
	}
	if (str_in(json_str(authz, "status"), st_valid)) {
		log_debug("acme: %s is authorized already", host);
		rc = 0;
		goto out;
	}
	if (!str_in(json_str(authz, "status"), st_pending)) {
		rc = authz_failed(authz, host, url, res, cause);
		goto out;
	}
	if ((c = authz_http01(authz)) == NULL) {
		*cause = xasprintf("%s: no http-01 challenge for %s",
		    esc(url), host);
		goto out;
	}
	token = json_str(c, "token");
	cstatus = json_str(c, "status");
	if (token == NULL || !acme_token_valid(token)) {
		*cause = xasprintf("%s: the http-01 token for %s is not "
		    "base64url", esc(url), host);
		goto out;
	}
	if ((curl = json_url(c, "url", "the http-01 challenge", cause)) ==
	    NULL)
		goto out;
	keyauth = xasprintf("%s.%s", token, a->thumbprint);
	a->tokens = xreallocarray(a->tokens, a->ntokens + 1,
	    sizeof(*a->tokens));
	a->tokens[a->ntokens++] = xstrdup(token);
	log_info("acme: %s: publishing the http-01 token %s", host, token);
	rc = hooks->publish(hooks->arg, token, keyauth, cause) == 0 ? 0 : -1;
	free(keyauth);
	if (rc == -1) {
		res->failed_host = xstrdup(host);
		keyauth = *cause;
		*cause = xasprintf("publishing the http-01 token for %s: %s",
		    host, keyauth);
		free(keyauth);
		goto out;
	}
	/* Pending: tell the CA to look; processing: it already does. */
	if ((cstatus == NULL || strcmp(cstatus, "pending") == 0) &&
	    acme_post(a, curl, "{}", NULL, &r, cause) == -1) {
		rc = -1;
		goto out;
	}
	json_decref(authz);
	authz = NULL;
	if ((rc = acme_poll(a, url, st_pending, &authz, cause)) == 0 &&
	    !str_in(json_str(authz, "status"), st_valid))
		rc = authz_failed(authz, host, url, res, cause);
out:
	json_decref(authz);
	reply_free(&r);
	return rc;
}

/* The order's own status, or its problem, as a cause (new). */
static char *
order_failed(const json_t *order, const char *url, const char *want)
{
	const json_t *err = json_object_get(order, "error");
	const char *status = json_str(order, "status");
	char *text, *cause;

	text = json_is_object(err) ? problem_text(err) : xasprintf("it is "
	    "%s", status == NULL ? "(no status)" : esc(status));
	cause = xasprintf("%s: the order is not %s: %s", esc(url), want,
	    text);
	free(text);
	return cause;
}

/* The certificate's chain (new) once the order is valid. */
static int
acme_finalize(struct acme *a, const char *url, const char *const *hosts,
    size_t nhosts, struct acme_result *res, char **cause)
{
	struct acme_reply r;
	struct buf der;
	json_t *order = NULL;
	const char *fin, *cert;
	char *csr, *payload;
	int rc = -1;

	reply_init(&r, a);
	buf_init(&der);
	if (acme_poll(a, url, st_pending, &order, cause) == -1)
		goto out;
	if (!str_in(json_str(order, "status"), st_ready)) {
		*cause = order_failed(order, url, "ready");
		goto out;
	}
	if ((fin = json_url(order, "finalize", "the order", cause)) == NULL)
		goto out;
	if ((res->key_pem = acme_key_new(cause)) == NULL ||
	    acme_csr(res->key_pem, hosts, nhosts, &der, cause) == -1)
		goto out;
	csr = acme_b64url(der.data, der.len);
	payload = xasprintf("{\"csr\":\"%s\"}", csr);
	free(csr);
	rc = acme_post(a, fin, payload, NULL, &r, cause);
	free(payload);
	if (rc == -1)
		goto out;
	rc = -1;
	json_decref(order);
	order = NULL;
	if (acme_poll(a, url, st_processing, &order, cause) == -1)
		goto out;
	if (!str_in(json_str(order, "status"), st_valid)) {
		*cause = order_failed(order, url, "valid");
		goto out;
	}
	if ((cert = json_url(order, "certificate", "the order", cause)) ==
	    NULL ||
	    acme_post(a, cert, "", "application/pem-certificate-chain", &r,
	    cause) == -1)
		goto out;
	if (r.body.len == 0 || memchr(r.body.data, '\0', r.body.len) !=
	    NULL || strncmp(r.body.data, "-----BEGIN CERTIFICATE-----",
	    27) != 0) {
		*cause = xasprintf("%s: not a PEM certificate chain",
		    esc(cert));
		goto out;
	}
	res->cert_pem = buf_steal(&r.body);
	rc = 0;
out:
	json_decref(order);
	buf_free(&der);
	reply_free(&r);
	return rc;
}

/* The leaf of res->cert_pem is for res->key_pem; its expiry. */
static int
result_check(struct acme_result *res, char **cause)
{
	struct cert_info ci;

	if (tls_cert_info(res->cert_pem, &ci, cause) == -1)
		return -1;
	res->not_after = ci.not_after;
	cert_info_free(&ci);
	return acme_key_matches(res->cert_pem, res->key_pem, cause);
}

/* Frees a private key's text, wiped first. */
static void
key_free(char *pem)
{
	if (pem != NULL)
		OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
}

static int
acme_run(struct acme *a, const char *const *hosts, size_t nhosts,
    const struct acme_hooks *hooks, struct acme_result *res, char **cause)
{
	json_t *order = NULL, *authzs, *v;
	char *url = NULL;
	size_t i;
	int rc = -1;

	if (acme_directory(a, cause) == -1 || acme_account(a, cause) == -1 ||
	    acme_new_order(a, hosts, nhosts, &url, &order, cause) == -1)
		goto out;
	authzs = json_object_get(order, "authorizations");
	if (!json_is_array(authzs) || json_array_size(authzs) == 0 ||
	    json_array_size(authzs) > nhosts) {
		*cause = xasprintf("%s: the order's authorizations are not a "
		    "list for its hosts", esc(url));
		goto out;
	}
	json_array_foreach(authzs, i, v) {
		if (!json_is_string(v) || !url_valid(json_string_value(v))) {
			*cause = xasprintf("%s: an authorization is not an "
			    "https URL", esc(url));
			goto out;
		}
		if (acme_authorize(a, json_string_value(v), hosts, nhosts,
		    hooks, res, cause) == -1)
			goto out;
	}
	if (acme_finalize(a, url, hosts, nhosts, res, cause) == -1 ||
	    result_check(res, cause) == -1)
		goto out;
	rc = 0;
out:
	json_decref(order);
	free(url);
	return rc;
}

/*
 * One order for hosts (1 to 100 valid host names), with the account of
 * account_key_pem (made if the CA does not know it).  Fills res (new
 * strings; acme_result_free) and returns 0, or -1 with *cause (new) and,
 * when an authorization failed, res->failed_host and res->problem.  Every
 * token published is unpublished before it returns.  Needs
 * curl_global_init done.
 */
int
acme_order(const struct acme_opts *opts, const char *account_key_pem,
    const char *const *hosts, size_t nhosts, const struct acme_hooks *hooks,
    struct acme_result *res, char **cause)
{
	struct acme a;
	size_t i;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (nhosts == 0 || nhosts > ACME_HOSTS_MAX) {
		*cause = xasprintf("an order for %zu hosts (1 to %d)", nhosts,
		    ACME_HOSTS_MAX);
		return -1;
	}
	for (i = 0; i < nhosts; i++) {
		if (!label_valid_host(hosts[i])) {
			*cause = xasprintf("\"%s\" is not a host name",
			    esc(hosts[i]));
			return -1;
		}
	}
	if (opts->directory == NULL || !url_valid(opts->directory)) {
		*cause = xstrdup("the ACME directory is not an https URL");
		return -1;
	}
	memset(&a, 0, sizeof(a));
	a.opts = opts;
	a.deadline = mono_ms() + opts->timeout_ms;
	a.key_pem = account_key_pem;
	if ((a.jwk = acme_jwk(account_key_pem, cause)) == NULL)
		return -1;
	if ((a.thumbprint = acme_thumbprint(account_key_pem, cause)) == NULL) {
		free(a.jwk);
		return -1;
	}
	if ((a.easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	log_info("acme: an order for %s%s (%zu hosts) from %s", hosts[0],
	    nhosts > 1 ? " and others" : "", nhosts, esc(opts->directory));
	rc = acme_run(&a, hosts, nhosts, hooks, res, cause);
	for (i = 0; i < a.ntokens; i++) {
		if (hooks->unpublish != NULL)
			hooks->unpublish(hooks->arg, a.tokens[i]);
		free(a.tokens[i]);
	}
	free(a.tokens);
	if (rc == -1) {
		free(res->cert_pem);
		res->cert_pem = NULL;
		key_free(res->key_pem);
		res->key_pem = NULL;
	}
	curl_easy_cleanup(a.easy);
	free(a.jwk);
	free(a.thumbprint);
	free(a.nonce);
	free(a.kid);
	free(a.new_nonce);
	free(a.new_account);
	free(a.new_order);
	return rc;
}

void
acme_result_free(struct acme_result *res)
{
	if (res == NULL)
		return;
	free(res->cert_pem);
	key_free(res->key_pem);
	free(res->failed_host);
	free(res->problem);
	memset(res, 0, sizeof(*res));
}
