/* SPDX-License-Identifier: ISC */
/*
 * Certificates for TLS termination: a certificate file and a key file
 * (Docker secrets) become the one PEM file HAProxy loads, and what the
 * certificate says of itself (subject, names, expiry) is read with
 * libcrypto for dovetailctl, /metrics and the log.  Pure: the agent reads
 * the files and asks HAProxy whether it accepts the pair.
 *
 * The combined text travels in a runtime API payload, which ends at the
 * first empty line and must fit one HAProxy buffer: only the PEM blocks
 * are kept (no blank lines, carriage returns or text between blocks),
 * anything but printable ASCII is refused, and so is a pair too large.
 */
#include "config.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dovetail.h"

#define PEM_MAX (64 * 1024)
/*
 * HAProxy 2.6 reads a runtime API payload into one buffer of tune.bufsize
 * (16384 by default) and drops the session when it is larger.
 */
#define PAYLOAD_MAX 15000

static int
pem_clean(struct buf *out, const char *text, size_t len, const char *what,
    char **cause)
{
	const char *line, *end, *nl;
	size_t n;
	int inside = 0;

	if (len > PEM_MAX) {
		*cause = xasprintf("the %s file is larger than %d bytes", what,
		    PEM_MAX);
		return -1;
	}
	if (memchr(text, '\0', len) != NULL) {
		*cause = xasprintf("the %s file is not PEM text", what);
		return -1;
	}
	for (line = text, end = text + len; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		n = (size_t)(nl - line);
		while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' ||
		    line[n - 1] == '\t'))
			n--;
		if (n == 0)
			continue;
		/* Text around the blocks ("openssl x509 -text") is left. */
		if (n >= 11 && memcmp(line, "-----BEGIN ", 11) == 0)
			inside = 1;
		if (!inside)
			continue;
		if (n >= 9 && memcmp(line, "-----END ", 9) == 0)
			inside = 0;
		for (size_t i = 0; i < n; i++) {
			if (line[i] < 0x20 || line[i] > 0x7e) {
				*cause = xasprintf("the %s file is not PEM "
				    "text", what);
				return -1;
			}
		}
		buf_add(out, line, n);
		buf_addc(out, '\n');
	}
	return 0;
}

/*
 * The certificate (with its chain) then the key, as HAProxy reads one
 * "crt" file; NULL with *cause (new) when either is not what it says.
 */
char *
tls_combine(const char *cert, size_t cert_len, const char *key,
    size_t key_len, char **cause)
{
	struct buf b;
	size_t mark;

	buf_init(&b);
	if (pem_clean(&b, cert, cert_len, "certificate", cause) == -1)
		goto bad;
	if (b.len == 0 || strstr(b.data, "-----BEGIN CERTIFICATE-----\n") ==
	    NULL || strstr(b.data, "PRIVATE KEY-----") != NULL) {
		*cause = xstrdup("the certificate file holds no PEM "
		    "certificate (or holds a key)");
		goto bad;
	}
	mark = b.len;
	if (pem_clean(&b, key, key_len, "key", cause) == -1)
		goto bad;
	if (strstr(b.data + mark, "PRIVATE KEY-----\n") == NULL ||
	    strstr(b.data + mark, "-----BEGIN ") == NULL) {
		*cause = xstrdup("the key file holds no PEM private key");
		goto bad;
	}
	if (b.len > PAYLOAD_MAX) {
		*cause = xasprintf("the certificate and key are %zu bytes "
		    "together, more than the %d that HAProxy's runtime API "
		    "takes in one piece", b.len, PAYLOAD_MAX);
		goto bad;
	}
	return buf_steal(&b);
bad:
	buf_free(&b);
	return NULL;
}

/* A certificate may name many hosts; what is shown of them is bounded. */
#define CERT_NAMES_MAX 1000
#define CERT_NAME_MAX 255
#define DAY_SECONDS 86400

/* A PEM with a pass phrase is never asked for one. */
static int
no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/* An ASN.1 string's bytes (new), cut at CERT_NAME_MAX; NULL if none. */
static char *
asn1_text(const ASN1_STRING *s)
{
	int len = ASN1_STRING_length(s);

	if (len <= 0)
		return NULL;
	if (len > CERT_NAME_MAX)
		len = CERT_NAME_MAX;
	return xstrndup((const char *)ASN1_STRING_get0_data(s), (size_t)len);
}

static char *
subject_cn(X509 *x)
{
	const X509_NAME *name = X509_get_subject_name(x);
	const X509_NAME_ENTRY *e;
	unsigned char *utf8;
	char *cn;
	int i, len;

	if (name == NULL ||
	    (i = X509_NAME_get_index_by_NID(name, NID_commonName, -1)) < 0 ||
	    (e = X509_NAME_get_entry(name, i)) == NULL)
		return NULL;
	len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
	if (len < 0)
		return NULL;
	cn = xstrndup((const char *)utf8, (size_t)(len > CERT_NAME_MAX ?
	    CERT_NAME_MAX : len));
	OPENSSL_free(utf8);
	return cn;
}

static void
dns_names(X509 *x, struct cert_info *ci)
{
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	char *name;
	int i, n;

	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return;
	n = sk_GENERAL_NAME_num(gens);
	for (i = 0; i < n && ci->nnames < CERT_NAMES_MAX; i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		if (g->type != GEN_DNS ||
		    (name = asn1_text(g->d.dNSName)) == NULL)
			continue;
		ci->names = xreallocarray(ci->names, ci->nnames + 1,
		    sizeof(char *));
		ci->names[ci->nnames++] = name;
	}
	GENERAL_NAMES_free(gens);
}

/*
 * What the first certificate of pem (the one HAProxy serves, before its
 * chain) says of itself: the subject's common name, its DNS names and
 * when it expires.  Returns 0, or -1 with *cause (new) when libcrypto
 * reads no certificate there; ci is then all zero.  The strings are the
 * certificate's own bytes, unchecked: escape them wherever they go.
 */
int
tls_cert_info(const char *pem, struct cert_info *ci, char **cause)
{
	BIO *bio;
	X509 *x;
	struct tm tm;
	time_t t;
	int rc = -1;

	memset(ci, 0, sizeof(*ci));
	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL)
		fatalx("libcrypto: out of memory");
	x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (x == NULL) {
		*cause = xstrdup("no certificate libcrypto can read");
		goto out;
	}
	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1 ||
	    (t = timegm(&tm)) == (time_t)-1) {
		*cause = xstrdup("the certificate's notAfter is not a time");
		goto out;
	}
	ci->parsed = 1;
	ci->not_after = (long long)t;
	ci->subject = subject_cn(x);
	dns_names(x, ci);
	rc = 0;
out:
	X509_free(x);
	/* Nothing left in this thread's queue for libcurl to find. */
	ERR_clear_error();
	return rc;
}

/* Fills dst (new strings) with what src holds. */
void
cert_info_copy(struct cert_info *dst, const struct cert_info *src)
{
	size_t i;

	*dst = *src;
	dst->subject = src->subject == NULL ? NULL : xstrdup(src->subject);
	dst->names = src->nnames == 0 ? NULL : xcalloc(src->nnames,
	    sizeof(char *));
	for (i = 0; i < src->nnames; i++)
		dst->names[i] = xstrdup(src->names[i]);
}

void
cert_info_free(struct cert_info *ci)
{
	size_t i;

	if (ci == NULL)
		return;
	free(ci->subject);
	for (i = 0; i < ci->nnames; i++)
		free(ci->names[i]);
	free(ci->names);
	memset(ci, 0, sizeof(*ci));
}

/* Whole days from now to not_after, rounded down: -1 once it expired. */
/* How many of names the certificate names (its DNS subjectAltNames). */
size_t
tls_names_covered(const struct cert_info *ci, char *const *names, size_t n)
{
	size_t i, j, hits = 0;

	for (i = 0; i < n; i++)
		for (j = 0; j < ci->nnames; j++)
			if (strcmp(ci->names[j], names[i]) == 0) {
				hits++;
				break;
			}
	return hits;
}

long long
tls_days_left(long long not_after, long long now)
{
	long long d = not_after - now;

	return d >= 0 ? d / DAY_SECONDS : -((-d + DAY_SECONDS - 1) /
	    DAY_SECONDS);
}

/*
 * Whether a certificate is expired at now, expires within warn_days, or
 * neither; one that could not be read is neither.
 */
enum cert_expiry
tls_expiry(const struct cert_info *ci, long long now, unsigned warn_days)
{
	if (!ci->parsed)
		return CERT_VALID;
	if (ci->not_after <= now)
		return CERT_EXPIRED;
	if (ci->not_after - now < (long long)warn_days * DAY_SECONDS)
		return CERT_EXPIRING;
	return CERT_VALID;
}

const char *
tls_expiry_name(enum cert_expiry e)
{
	static const char *const names[] = { "valid", "expiring", "expired" };

	return names[e];
}

static int
pair_cmp(const void *a, const void *b)
{
	const struct cert_pair *x = a, *y = b;
	int c;

	c = strcmp(x->cert, y->cert);
	return c != 0 ? c : strcmp(x->key, y->key);
}

/* Borrowed pair of those secret names, or NULL. */
const struct cert_pair *
cert_store_find(const struct cert_store *s, const char *cert, const char *key)
{
	struct cert_pair k;

	k.cert = (char *)cert;
	k.key = (char *)key;
	return find_in_array(&k, s->pairs, s->npairs, sizeof(*s->pairs),
	    pair_cmp);
}

/*
 * Fills st with the certificate and key pairs the services of sw (for
 * this prefix and cluster) name, each combined; io reads a secret into a
 * buffer and, when check is set, says why HAProxy would refuse a combined
 * pair (NULL: it would not).  The reading is the caller's: this is pure.
 */
void
cert_store_load(struct cert_store *st, const struct swarm *sw,
    const char *prefix, const char *cluster, const struct secret_io *io)
{
	struct buf cb, kb;
	const char *cert, *key, *err;
	struct cert_pair *p;
	char *cause;
	size_t i;

	memset(st, 0, sizeof(*st));
	buf_init(&cb);
	buf_init(&kb);
	for (i = 0; i < sw->nservices; i++) {
		if (!labels_secrets(&sw->services[i], prefix, cluster, &cert,
		    &key) || cert_store_find(st, cert, key) != NULL)
			continue;
		st->pairs = xreallocarray(st->pairs, st->npairs + 1,
		    sizeof(*st->pairs));
		p = &st->pairs[st->npairs++];
		memset(p, 0, sizeof(*p));
		p->cert = xstrdup(cert);
		p->key = xstrdup(key);
		buf_reset(&cb);
		buf_reset(&kb);
		if (io->read(io->arg, cert, &cb, &p->error) == 0 &&
		    io->read(io->arg, key, &kb, &p->error) == 0)
			p->pem = tls_combine(cb.data == NULL ? "" : cb.data,
			    cb.len, kb.data == NULL ? "" : kb.data, kb.len,
			    &p->error);
		if (p->pem != NULL && io->check != NULL &&
		    (err = io->check(io->arg, p->pem)) != NULL) {
			p->error = xstrdup(err);
			free(p->pem);
			p->pem = NULL;
		}
		/* Unread, it is shown as unknown: HAProxy is the judge. */
		if (p->pem != NULL && tls_cert_info(p->pem, &p->info,
		    &cause) == -1)
			free(cause);
		sort_array(st->pairs, st->npairs, sizeof(*st->pairs),
		    pair_cmp);
	}
	buf_free(&cb);
	buf_free(&kb);
}

void
cert_store_free(struct cert_store *s)
{
	size_t i;

	for (i = 0; i < s->npairs; i++) {
		free(s->pairs[i].cert);
		free(s->pairs[i].key);
		free(s->pairs[i].pem);
		free(s->pairs[i].error);
		cert_info_free(&s->pairs[i].info);
	}
	free(s->pairs);
	memset(s, 0, sizeof(*s));
}
