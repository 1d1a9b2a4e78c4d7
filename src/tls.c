/* SPDX-License-Identifier: ISC */
/*
 * Certificates for TLS termination: a certificate file and a key file
 * (Docker secrets) become the one PEM file HAProxy loads.  Pure: the
 * agent reads the files and asks HAProxy whether it accepts the pair.
 *
 * The combined text travels in a runtime API payload, which ends at the
 * first empty line and must fit one HAProxy buffer: only the PEM blocks
 * are kept (no blank lines, carriage returns or text between blocks),
 * anything but printable ASCII is refused, and so is a pair too large.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

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
	}
	free(s->pairs);
	memset(s, 0, sizeof(*s));
}
