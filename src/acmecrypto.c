/* SPDX-License-Identifier: ISC */
/*
 * The ACME client's cryptography, with libcrypto and without I/O: P-256
 * keys, their JWK thumbprint (RFC 7638), ES256 signatures in the JWS form
 * (RFC 7518), base64url, the certificate request, and whether a
 * certificate is for a key.  Keys cross this file's edge as PEM text
 * only, so that acme.c and its callers hold no libcrypto object.
 */
#include "config.h"

#include <limits.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

/* SubjectPublicKeyInfo of a P-256 key, up to the point's 0x04. */
static const unsigned char spki_p256[] = {
	0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d,
	0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
	0x07, 0x03, 0x42, 0x00, 0x04
};

/* data in base64url (RFC 4648 section 5), without padding (new). */
char *
acme_b64url(const void *data, size_t len)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const unsigned char *p = data;
	unsigned long v;
	size_t i, k, n;
	struct buf b;
	char out[4];

	buf_init(&b);
	for (i = 0; i < len; i += 3) {
		n = len - i < 3 ? len - i : 3;
		v = (unsigned long)p[i] << 16;
		if (n > 1)
			v |= (unsigned long)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		for (k = 0; k < 4; k++)
			out[k] = abc[(v >> (18 - 6 * k)) & 63];
		buf_add(&b, out, n + 1);
	}
	return buf_steal(&b);
}

/*
 * An ECDSA P-256 signature in DER (what libcrypto makes) to the JWS form
 * (RFC 7518 section 3.4): r then s, each 32 bytes big-endian, left-padded
 * with zeros.  Returns 0, or -1 when der is not such a signature.
 */
int
acme_sig_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
	const unsigned char *p = der;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;
	int rc = -1;

	if (len > LONG_MAX ||
	    (sig = d2i_ECDSA_SIG(NULL, &p, (long)len)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	ECDSA_SIG_get0(sig, &r, &s);
	if (p == der + len && !BN_is_negative(r) && !BN_is_negative(s) &&
	    BN_num_bytes(r) <= 32 && BN_num_bytes(s) <= 32 &&
	    BN_bn2binpad(r, raw, 32) == 32 &&
	    BN_bn2binpad(s, raw + 32, 32) == 32)
		rc = 0;
	ECDSA_SIG_free(sig);
	ERR_clear_error();
	return rc;
}

/* A PEM with a pass phrase is never asked for one. */
static int
key_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
	return -1;
}

/*
 * The canonical JWK of a P-256 key (RFC 7638 section 3.2: the required
 * members in lexical order, no spaces), new; NULL for another kind.  The
 * point is read from the SubjectPublicKeyInfo, which is the same bytes
 * for every libcrypto since 1.1.
 */
static char *
key_jwk(EVP_PKEY *key)
{
	unsigned char *der = NULL;
	char *x, *y, *jwk = NULL;
	int n;

	n = i2d_PUBKEY(key, &der);
	if (n == (int)sizeof(spki_p256) + 64 &&
	    memcmp(der, spki_p256, sizeof(spki_p256)) == 0) {
		x = acme_b64url(der + sizeof(spki_p256), 32);
		y = acme_b64url(der + sizeof(spki_p256) + 32, 32);
		jwk = xasprintf("{\"crv\":\"P-256\",\"kty\":\"EC\","
		    "\"x\":\"%s\",\"y\":\"%s\"}", x, y);
		free(x);
		free(y);
	}
	OPENSSL_free(der);
	ERR_clear_error();
	return jwk;
}

/* The P-256 private key in pem (new), or NULL with *cause (new). */
static EVP_PKEY *
key_load(const char *pem, char **cause)
{
	EVP_PKEY *key;
	BIO *bio;
	char *jwk;

	if ((bio = BIO_new_mem_buf(pem, -1)) == NULL)
		fatalx("libcrypto: out of memory");
	key = PEM_read_bio_PrivateKey(bio, NULL, key_no_passphrase, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (key == NULL) {
		*cause = xstrdup("no private key libcrypto can read");
		return NULL;
	}
	if ((jwk = key_jwk(key)) == NULL) {
		EVP_PKEY_free(key);
		*cause = xstrdup("the key is not an EC P-256 key");
		return NULL;
	}
	free(jwk);
	return key;
}

/*
 * The signer acme_jws uses with an account key: arg is the key's PEM
 * (borrowed, P-256).  Signs data with ES256 into sig; 0 or -1 with *cause
 * (new).
 */
int
acme_sign_es256(void *arg, const void *data, size_t len,
    unsigned char sig[64], char **cause)
{
	EVP_PKEY *key;
	EVP_MD_CTX *md;
	unsigned char der[128];
	size_t dlen = sizeof(der);
	int rc = -1;

	if ((key = key_load(arg, cause)) == NULL)
		return -1;
	if ((md = EVP_MD_CTX_new()) == NULL)
		fatalx("libcrypto: out of memory");
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
	    EVP_DigestSign(md, der, &dlen, data, len) == 1 &&
	    acme_sig_raw(der, dlen, sig) == 0)
		rc = 0;
	else
		*cause = xstrdup("libcrypto could not sign with the account "
		    "key");
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

/* The key's public JWK, canonical JSON (new), or NULL with *cause (new). */
char *
acme_jwk(const char *key_pem, char **cause)
{
	EVP_PKEY *key;
	char *jwk;

	if ((key = key_load(key_pem, cause)) == NULL)
		return NULL;
	jwk = key_jwk(key);
	EVP_PKEY_free(key);
	return jwk;
}

/*
 * Whether the first certificate of cert_pem is for the private key in
 * key_pem: 0, or -1 with *cause (new).
 */
int
acme_key_matches(const char *cert_pem, const char *key_pem, char **cause)
{
	EVP_PKEY *key;
	X509 *x;
	BIO *bio;
	int ok;

	if ((key = key_load(key_pem, cause)) == NULL)
		return -1;
	if ((bio = BIO_new_mem_buf(cert_pem, -1)) == NULL)
		fatalx("libcrypto: out of memory");
	x = PEM_read_bio_X509(bio, NULL, key_no_passphrase, NULL);
	BIO_free(bio);
	ok = x != NULL && X509_check_private_key(x, key) == 1;
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	if (!ok) {
		*cause = xstrdup("the certificate is not for the key");
		return -1;
	}
	return 0;
}

/* A new P-256 private key as PKCS#8 PEM (new), or NULL with *cause. */
char *
acme_key_new(char **cause)
{
	EVP_PKEY_CTX *ctx;
	EVP_PKEY *key = NULL;
	BIO *bio;
	char *data, *pem = NULL;
	long n;

	if ((ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL)) == NULL)
		fatalx("libcrypto: out of memory");
	if (EVP_PKEY_keygen_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx,
	    NID_X9_62_prime256v1) != 1 || EVP_PKEY_keygen(ctx, &key) != 1) {
		EVP_PKEY_CTX_free(ctx);
		ERR_clear_error();
		*cause = xstrdup("libcrypto could not make a P-256 key");
		return NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	/* The secure heap's buffers are wiped when freed. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL)
		fatalx("libcrypto: out of memory");
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) ==
	    1 && (n = BIO_get_mem_data(bio, &data)) > 0)
		pem = xstrndup(data, (size_t)n);
	else
		*cause = xstrdup("libcrypto could not write the key");
	BIO_free(bio);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return pem;
}

/*
 * The account key's thumbprint (RFC 7638: SHA-256 of its canonical JWK),
 * base64url (new), or NULL with *cause (new).
 */
char *
acme_thumbprint(const char *account_key_pem, char **cause)
{
	unsigned char md[32];
	unsigned int n = 0;
	char *jwk;

	if ((jwk = acme_jwk(account_key_pem, cause)) == NULL)
		return NULL;
	if (EVP_Digest(jwk, strlen(jwk), md, &n, EVP_sha256(), NULL) != 1 ||
	    n != sizeof(md))
		fatalx("libcrypto: SHA-256 failed");
	free(jwk);
	return acme_b64url(md, sizeof(md));
}

/* subjectAltName: a DNS name for each host. */
static X509_EXTENSION *
csr_san(const char *const *hosts, size_t nhosts)
{
	GENERAL_NAMES *gens;
	GENERAL_NAME *g;
	ASN1_IA5STRING *ia5;
	X509_EXTENSION *ext;
	size_t i;

	if ((gens = GENERAL_NAMES_new()) == NULL)
		fatalx("libcrypto: out of memory");
	for (i = 0; i < nhosts; i++) {
		if ((g = GENERAL_NAME_new()) == NULL ||
		    (ia5 = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(ia5, hosts[i], -1) != 1)
			fatalx("libcrypto: out of memory");
		GENERAL_NAME_set0_value(g, GEN_DNS, ia5);
		if (sk_GENERAL_NAME_push(gens, g) == 0)
			fatalx("libcrypto: out of memory");
	}
	ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens);
	GENERAL_NAMES_free(gens);
	if (ext == NULL)
		fatalx("libcrypto: out of memory");
	return ext;
}

/*
 * A certificate request for hosts, signed with SHA-256 by the key in
 * key_pem, appended to der in DER: every host a DNS subjectAltName, the
 * first the common name when it fits one (64 bytes).  0, or -1 with
 * *cause (new).
 */
int
acme_csr(const char *key_pem, const char *const *hosts, size_t nhosts,
    struct buf *der, char **cause)
{
	STACK_OF(X509_EXTENSION) *exts;
	X509_REQ *req;
	EVP_PKEY *key;
	unsigned char *out = NULL;
	int n, rc = -1;

	if (nhosts == 0) {
		*cause = xstrdup("a certificate request for no host");
		return -1;
	}
	if ((key = key_load(key_pem, cause)) == NULL)
		return -1;
	if ((req = X509_REQ_new()) == NULL ||
	    (exts = sk_X509_EXTENSION_new_null()) == NULL)
		fatalx("libcrypto: out of memory");
	if (strlen(hosts[0]) <= 64 &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
	    MBSTRING_ASC, (const unsigned char *)hosts[0], -1, -1, 0) != 1)
		fatalx("libcrypto: out of memory");
	if (sk_X509_EXTENSION_push(exts, csr_san(hosts, nhosts)) == 0)
		fatalx("libcrypto: out of memory");
	if (X509_REQ_set_version(req, 0) == 1 &&
	    X509_REQ_add_extensions(req, exts) == 1 &&
	    X509_REQ_set_pubkey(req, key) == 1 &&
	    X509_REQ_sign(req, key, EVP_sha256()) > 0 &&
	    (n = i2d_X509_REQ(req, &out)) > 0) {
		buf_add(der, out, (size_t)n);
		rc = 0;
	} else
		*cause = xstrdup("libcrypto could not make the certificate "
		    "request");
	OPENSSL_free(out);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}
