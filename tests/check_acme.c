/* SPDX-License-Identifier: ISC */
/*
 * Unit tests of the ACME client's pure pieces (base64url, the account
 * key's thumbprint, the JWS and its signature, problem documents, tokens,
 * the certificate request) and of the sealing of private keys.
 */
#include "config.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/*
 * A fixed P-256 key (openssl genpkey -algorithm EC -pkeyopt
 * ec_paramgen_curve:P-256).  Its thumbprint was computed once apart from
 * dovetail: "openssl ec -text" gave the public point 04||x||y, and
 * python3 took SHA-256 of '{"crv":"P-256","kty":"EC","x":X,"y":Y}' with x
 * and y in base64url without padding (hashlib, base64.urlsafe_b64encode).
 */
static const char fixed_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg97NWcUff/KdcMgx8\n"
    "tfBbxi6K1CW5eMuncYVSLlSGkDyhRANCAARFv+bxtCIBPgbLThHoxYICfvMO7Yhu\n"
    "9qp5jkWYRRxtQkfpv7PimrjWElUphiXs1nmYf5XI7JCORMm878GXU3Xz\n"
    "-----END PRIVATE KEY-----\n";
static const char fixed_jwk[] = "{\"crv\":\"P-256\",\"kty\":\"EC\","
    "\"x\":\"Rb_m8bQiAT4Gy04R6MWCAn7zDu2IbvaqeY5FmEUcbUI\","
    "\"y\":\"R-m_s-KauNYSVSmGJezWeZh_lcjskI5EybzvwZdTdfM\"}";
static const char fixed_thumbprint[] =
    "FuUP5IsHssq2G9GSLLPFjIWQhYgMKmYQRauMN9tmgEQ";
/* An Ed25519 key: a key, but not one ACME's ES256 can use. */
static const char ed25519_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIDmM4GfCa5k0vcNdW8CyMe31hlRfX3eagKLjjD3FbcDj\n"
    "-----END PRIVATE KEY-----\n";

static EVP_PKEY *
load_key(const char *pem)
{
	EVP_PKEY *key;
	BIO *bio;

	bio = BIO_new_mem_buf(pem, -1);
	ck_assert_ptr_nonnull(bio);
	key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ck_assert_ptr_nonnull(key);
	return key;
}

/* base64url text to bytes (new, NUL-terminated), *len of them; or NULL. */
static unsigned char *
unb64url(const char *s, size_t *len)
{
	struct buf b;
	unsigned char *out;
	size_t i, n = strlen(s);
	int r;

	buf_init(&b);
	for (i = 0; i < n; i++) {
		if (s[i] == '+' || s[i] == '/' || s[i] == '=') {
			buf_free(&b);
			return NULL;
		}
		buf_addc(&b, s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i]);
	}
	while (b.len % 4 != 0)
		buf_addc(&b, '=');
	out = xmalloc(b.len / 4 * 3 + 1);
	r = b.len == 0 ? 0 : EVP_DecodeBlock(out, (unsigned char *)b.data,
	    (int)b.len);
	ck_assert_int_ge(r, 0);
	*len = (size_t)r - (n % 4 == 0 ? 0 : 4 - n % 4);
	out[*len] = '\0';
	buf_free(&b);
	return out;
}

START_TEST(b64url_vectors)
{
	/* RFC 4648 section 10, without the padding. */
	static const char *const in[] = { "", "f", "fo", "foo", "foob",
	    "fooba", "foobar" };
	static const char *const out[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
	    "Zm9vYmE", "Zm9vYmFy" };
	/* Where base64 has "+/", base64url has "-_". */
	static const unsigned char url[] = { 0xfb, 0xff, 0xbf, 0x00 };
	char *s;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		s = acme_b64url(in[i], strlen(in[i]));
		ck_assert_str_eq(s, out[i]);
		free(s);
	}
	s = acme_b64url(url, sizeof(url));
	ck_assert_str_eq(s, "-_-_AA");
	free(s);
}
END_TEST

START_TEST(thumbprint_fixed)
{
	char *t, *cause = NULL;

	t = acme_thumbprint(fixed_key, &cause);
	ck_assert_ptr_nonnull(t);
	ck_assert_str_eq(t, fixed_thumbprint);
	free(t);
	ck_assert_ptr_null(acme_thumbprint(ed25519_key, &cause));
	ck_assert_ptr_nonnull(strstr(cause, "P-256"));
	free(cause);
	ck_assert_ptr_null(acme_thumbprint("not a key", &cause));
	free(cause);
}
END_TEST

START_TEST(key_new_is_pkcs8_p256)
{
	char *k1, *k2, *t1, *t2, *cause = NULL;

	k1 = acme_key_new(&cause);
	k2 = acme_key_new(&cause);
	ck_assert_ptr_nonnull(k1);
	ck_assert_ptr_nonnull(k2);
	ck_assert_ptr_nonnull(strstr(k1, "-----BEGIN PRIVATE KEY-----\n"));
	t1 = acme_thumbprint(k1, &cause);
	t2 = acme_thumbprint(k2, &cause);
	ck_assert_ptr_nonnull(t1);
	ck_assert_ptr_nonnull(t2);
	ck_assert_str_ne(t1, t2);
	free(t1);
	free(t2);
	free(k1);
	free(k2);
}
END_TEST

/* Whether sig (r||s) is key's ES256 signature of data. */
static int
es256_verifies(EVP_PKEY *key, const unsigned char *sig, size_t siglen,
    const char *data, size_t len)
{
	ECDSA_SIG *es;
	EVP_MD_CTX *md;
	unsigned char *der = NULL;
	int n, ok;

	if (siglen != 64)
		return 0;
	es = ECDSA_SIG_new();
	ck_assert(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL),
	    BN_bin2bn(sig + 32, 32, NULL)) == 1);
	n = i2d_ECDSA_SIG(es, &der);
	ck_assert_int_gt(n, 0);
	md = EVP_MD_CTX_new();
	ck_assert(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) ==
	    1);
	ok = EVP_DigestVerify(md, der, (size_t)n, (const unsigned char *)data,
	    len) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	return ok;
}

/* The JWS's protected header, checked against what it was made with. */
static json_t *
jws_check(EVP_PKEY *key, const char *jws, const char *payload)
{
	json_t *o, *prot;
	const char *p, *pl, *s;
	unsigned char *raw, *sig;
	size_t len, siglen;
	char *input;

	o = json_loads(jws, 0, NULL);
	ck_assert(json_is_object(o));
	ck_assert_int_eq(json_object_size(o), 3);
	p = json_string_value(json_object_get(o, "protected"));
	pl = json_string_value(json_object_get(o, "payload"));
	s = json_string_value(json_object_get(o, "signature"));
	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_nonnull(pl);
	ck_assert_ptr_nonnull(s);
	raw = unb64url(pl, &len);
	ck_assert_ptr_nonnull(raw);
	ck_assert_str_eq((char *)raw, payload);
	free(raw);
	raw = unb64url(p, &len);
	ck_assert_ptr_nonnull(raw);
	prot = json_loadb((char *)raw, len, 0, NULL);
	ck_assert(json_is_object(prot));
	free(raw);
	ck_assert_str_eq(json_string_value(json_object_get(prot, "alg")),
	    "ES256");

	sig = unb64url(s, &siglen);
	ck_assert_ptr_nonnull(sig);
	input = xasprintf("%s.%s", p, pl);
	ck_assert(es256_verifies(key, sig, siglen, input, strlen(input)));
	/* The same signature over other bytes does not verify. */
	input[strlen(input) - 1] ^= 1;
	ck_assert(!es256_verifies(key, sig, siglen, input, strlen(input)));
	free(input);
	free(sig);
	json_decref(o);
	return prot;
}

START_TEST(jws_verifies)
{
	EVP_PKEY *key = load_key(fixed_key);
	struct acme_signer signer = { acme_sign_es256, (void *)fixed_key };
	json_t *prot, *jwk;
	char *jws, *cause = NULL, *s;

	/* newAccount: the jwk, no kid. */
	jws = acme_jws(&signer, fixed_jwk, NULL, "nonce-1",
	    "https://ca.test/new-acct", "{\"termsOfServiceAgreed\":true}",
	    &cause);
	ck_assert_ptr_nonnull(jws);
	prot = jws_check(key, jws, "{\"termsOfServiceAgreed\":true}");
	ck_assert_str_eq(json_string_value(json_object_get(prot, "nonce")),
	    "nonce-1");
	ck_assert_str_eq(json_string_value(json_object_get(prot, "url")),
	    "https://ca.test/new-acct");
	ck_assert_ptr_null(json_object_get(prot, "kid"));
	jwk = json_object_get(prot, "jwk");
	ck_assert(json_is_object(jwk));
	s = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
	ck_assert_str_eq(s, fixed_jwk);
	free(s);
	json_decref(prot);
	free(jws);

	/* POST-as-GET with the kid: an empty payload, no jwk. */
	jws = acme_jws(&signer, NULL, "https://ca.test/acct/7", "nonce-2",
	    "https://ca.test/authz/1", "", &cause);
	ck_assert_ptr_nonnull(jws);
	prot = jws_check(key, jws, "");
	ck_assert_str_eq(json_string_value(json_object_get(prot, "kid")),
	    "https://ca.test/acct/7");
	ck_assert_ptr_null(json_object_get(prot, "jwk"));
	json_decref(prot);
	free(jws);

	/* A JWK that is not JSON is refused, not sent. */
	ck_assert_ptr_null(acme_jws(&signer, "{x", NULL, "n", "https://a/",
	    "", &cause));
	free(cause);
	EVP_PKEY_free(key);
}
END_TEST

static int
failing_signer(void *arg, const void *data, size_t len,
    unsigned char sig[64], char **cause)
{
	*cause = xstrdup("no signature today");
	return -1;
}

START_TEST(jws_signer_fails)
{
	struct acme_signer signer = { failing_signer, NULL };
	char *cause = NULL;

	ck_assert_ptr_null(acme_jws(&signer, NULL, "https://a/k", "n",
	    "https://a/", "{}", &cause));
	ck_assert_str_eq(cause, "no signature today");
	free(cause);
}
END_TEST

START_TEST(sig_der_to_raw)
{
	/*
	 * r: 32 bytes with the high bit set, so DER puts a 0x00 before
	 * them; s: 0x00 0x00 0x01 .. as a number, 30 bytes in DER.
	 */
	unsigned char der[2 + 2 + 33 + 2 + 30], raw[64], want[64];
	size_t i;

	der[0] = 0x30;
	der[1] = sizeof(der) - 2;
	der[2] = 0x02;
	der[3] = 33;
	der[4] = 0x00;
	for (i = 0; i < 32; i++)
		der[5 + i] = want[i] = (unsigned char)(0x80 + i);
	der[37] = 0x02;
	der[38] = 30;
	memset(want + 32, 0, 2);
	for (i = 0; i < 30; i++)
		der[39 + i] = want[34 + i] = (unsigned char)(1 + i);
	ck_assert_int_eq(acme_sig_raw(der, sizeof(der), raw), 0);
	ck_assert_mem_eq(raw, want, 64);

	/* Trailing bytes, a cut signature, no signature at all. */
	ck_assert_int_eq(acme_sig_raw(der, sizeof(der) - 1, raw), -1);
	ck_assert_int_eq(acme_sig_raw((const unsigned char *)"\x30\x00", 2,
	    raw), -1);
	ck_assert_int_eq(acme_sig_raw((const unsigned char *)"junk", 4, raw),
	    -1);
}
END_TEST

START_TEST(sig_der_too_long)
{
	/* r of 33 significant bytes is not a P-256 signature. */
	unsigned char der[2 + 2 + 33 + 3];
	unsigned char raw[64];

	der[0] = 0x30;
	der[1] = sizeof(der) - 2;
	der[2] = 0x02;
	der[3] = 33;
	memset(der + 4, 0x11, 33);
	der[37] = 0x02;
	der[38] = 1;
	der[39] = 0x05;
	ck_assert_int_eq(acme_sig_raw(der, sizeof(der), raw), -1);
}
END_TEST

START_TEST(problem_documents)
{
	static const char full[] = "{\"type\":"
	    "\"urn:ietf:params:acme:error:unauthorized\",\"detail\":"
	    "\"no\\nway\",\"status\":403}";
	char *type, *detail;

	ck_assert_int_eq(acme_problem_parse(full, strlen(full), &type,
	    &detail), 0);
	ck_assert_str_eq(type, "urn:ietf:params:acme:error:unauthorized");
	ck_assert_str_eq(detail, "no\nway");
	free(type);
	free(detail);

	ck_assert_int_eq(acme_problem_parse("{\"type\":\"t\"}", 12, &type,
	    &detail), 0);
	ck_assert_str_eq(type, "t");
	ck_assert_ptr_null(detail);
	free(type);

	/* Members of the wrong type are as good as missing. */
	ck_assert_int_eq(acme_problem_parse("{\"type\":7,\"detail\":[]}", 22,
	    &type, &detail), 0);
	ck_assert_ptr_null(type);
	ck_assert_ptr_null(detail);

	ck_assert_int_eq(acme_problem_parse("[\"type\"]", 8, &type, &detail),
	    -1);
	ck_assert_int_eq(acme_problem_parse("<html>", 6, &type, &detail), -1);
	ck_assert_int_eq(acme_problem_parse("", 0, &type, &detail), -1);
	ck_assert_ptr_null(type);
	ck_assert_ptr_null(detail);
}
END_TEST

START_TEST(tokens)
{
	char t[130];

	ck_assert(acme_token_valid("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92"
	    "wr-oA"));
	ck_assert(acme_token_valid("a_b-C9"));
	ck_assert(!acme_token_valid(""));
	ck_assert(!acme_token_valid("../etc/passwd"));
	ck_assert(!acme_token_valid("abc="));
	ck_assert(!acme_token_valid("ab+c"));
	ck_assert(!acme_token_valid("a b"));
	ck_assert(!acme_token_valid("a\nb"));
	ck_assert(!acme_token_valid("a.b"));
	memset(t, 'A', 128);
	t[128] = '\0';
	ck_assert(acme_token_valid(t));
	t[128] = 'A';
	t[129] = '\0';
	ck_assert(!acme_token_valid(t));
}
END_TEST

/* The CSR in der, verified with its own key; its DNS names (new). */
static char *
csr_names(const struct buf *der, char **cn)
{
	const unsigned char *p = (const unsigned char *)der->data;
	STACK_OF(X509_EXTENSION) *exts;
	GENERAL_NAMES *gens;
	const GENERAL_NAME *g;
	X509_REQ *req;
	EVP_PKEY *pub;
	struct buf names;
	char cnbuf[256];
	int i;

	req = d2i_X509_REQ(NULL, &p, (long)der->len);
	ck_assert_ptr_nonnull(req);
	ck_assert(p == (const unsigned char *)der->data + der->len);
	pub = X509_REQ_get_pubkey(req);
	ck_assert_ptr_nonnull(pub);
	ck_assert_int_eq(X509_REQ_verify(req, pub), 1);
	EVP_PKEY_free(pub);
	ck_assert_int_eq(X509_REQ_get_signature_nid(req),
	    NID_ecdsa_with_SHA256);
	*cn = NULL;
	if (X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req),
	    NID_commonName, cnbuf, sizeof(cnbuf)) > 0)
		*cn = xstrdup(cnbuf);
	exts = X509_REQ_get_extensions(req);
	ck_assert_ptr_nonnull(exts);
	gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
	ck_assert_ptr_nonnull(gens);
	buf_init(&names);
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		g = sk_GENERAL_NAME_value(gens, i);
		ck_assert_int_eq(g->type, GEN_DNS);
		buf_addf(&names, "%s%.*s", i > 0 ? " " : "",
		    ASN1_STRING_length(g->d.dNSName),
		    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return buf_steal(&names);
}

START_TEST(csr_three_hosts)
{
	static const char *const hosts[] = { "www.example.test",
	    "example.test", "api.example.test" };
	static const char long_host[] = "a-label-of-forty-characters-or-so-for-"
	    "this.and-another.example.test";
	const char *const longs[] = { long_host, "b.test" };
	struct buf der;
	char *names, *cn, *cause = NULL;

	buf_init(&der);
	ck_assert_int_eq(acme_csr(fixed_key, hosts, 3, &der, &cause), 0);
	names = csr_names(&der, &cn);
	ck_assert_str_eq(names, "www.example.test example.test "
	    "api.example.test");
	ck_assert_str_eq(cn, "www.example.test");
	free(names);
	free(cn);

	/* A first host longer than a CN may be: only the SANs hold it. */
	ck_assert_int_gt(strlen(long_host), 64);
	buf_reset(&der);
	ck_assert_int_eq(acme_csr(fixed_key, longs, 2, &der, &cause), 0);
	names = csr_names(&der, &cn);
	ck_assert_str_eq(names, "a-label-of-forty-characters-or-so-for-"
	    "this.and-another.example.test b.test");
	ck_assert_ptr_null(cn);
	free(names);

	ck_assert_int_eq(acme_csr("no key", hosts, 3, &der, &cause), -1);
	free(cause);
	buf_free(&der);
}
END_TEST

START_TEST(order_refuses_bad_input)
{
	static const char *const bad[] = { "Not_A_Host" };
	static const char *const good[] = { "a.test" };
	struct acme_opts o = { "https://127.0.0.1:1/dir", NULL, NULL, 5000,
	    0 };
	struct acme_hooks h = { NULL, NULL, NULL };
	struct acme_result res;
	char *cause = NULL;

	ck_assert_int_eq(acme_order(&o, fixed_key, good, 0, &h, &res,
	    &cause), -1);
	free(cause);
	ck_assert_int_eq(acme_order(&o, fixed_key, bad, 1, &h, &res, &cause),
	    -1);
	ck_assert_ptr_nonnull(strstr(cause, "Not_A_Host"));
	free(cause);
	ck_assert_int_eq(acme_order(&o, ed25519_key, good, 1, &h, &res,
	    &cause), -1);
	free(cause);
	o.directory = "http://127.0.0.1:1/dir";
	ck_assert_int_eq(acme_order(&o, fixed_key, good, 1, &h, &res,
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "https"));
	free(cause);
	/* Nothing listens on port 1: a cause, quickly, and no result. */
	o.directory = "https://127.0.0.1:1/dir";
	ck_assert_int_eq(acme_order(&o, fixed_key, good, 1, &h, &res,
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "127.0.0.1:1"));
	ck_assert_ptr_null(res.cert_pem);
	ck_assert_ptr_null(res.failed_host);
	free(cause);
	acme_result_free(&res);
}
END_TEST

static const char material[] = "0123456789abcdef0123456789abcdef";

START_TEST(seal_round_trip)
{
	unsigned char key[32], key2[32];
	char *s1, *s2, *plain, *cause = NULL;

	ck_assert_int_eq(seal_key_from(material, 32, key, &cause), 0);
	s1 = seal_text(key, fixed_key, "svc-web.key", &cause);
	s2 = seal_text(key, fixed_key, "svc-web.key", &cause);
	ck_assert_ptr_nonnull(s1);
	ck_assert_ptr_nonnull(s2);
	ck_assert_int_eq(strncmp(s1, "dtseal1:", 8), 0);
	ck_assert_ptr_null(strstr(s1, "PRIVATE"));
	/* A fresh nonce each time. */
	ck_assert_str_ne(s1, s2);
	plain = seal_open(key, s1, "svc-web.key", &cause);
	ck_assert_ptr_nonnull(plain);
	ck_assert_str_eq(plain, fixed_key);
	free(plain);

	/* The final newline of the material does not change the key. */
	ck_assert_int_eq(seal_key_from("0123456789abcdef0123456789abcdef\n",
	    33, key2, &cause), 0);
	ck_assert_mem_eq(key, key2, 32);
	plain = seal_open(key2, s2, "svc-web.key", &cause);
	ck_assert_ptr_nonnull(plain);
	free(plain);

	/* An empty text seals and opens too. */
	free(s2);
	s2 = seal_text(key, "", NULL, &cause);
	plain = seal_open(key, s2, NULL, &cause);
	ck_assert_str_eq(plain, "");
	free(plain);
	free(s1);
	free(s2);
}
END_TEST

START_TEST(seal_refuses)
{
	unsigned char key[32], other[32];
	char *s, *bad, *cause = NULL;
	size_t i;

	ck_assert_int_eq(seal_key_from(material, 32, key, &cause), 0);
	ck_assert_int_eq(seal_key_from("another material of 32 bytes ok!",
	    32, other, &cause), 0);
	s = seal_text(key, "secret", "a", &cause);
	ck_assert_ptr_nonnull(s);

	/* Every byte of nonce, ciphertext and tag counts. */
	for (i = strlen("dtseal1:"); s[i] != '\0' && s[i] != '='; i++) {
		bad = xstrdup(s);
		bad[i] = bad[i] == 'A' ? 'B' : 'A';
		ck_assert_ptr_null(seal_open(key, bad, "a", &cause));
		ck_assert_ptr_nonnull(cause);
		free(cause);
		cause = NULL;
		free(bad);
	}
	ck_assert_ptr_null(seal_open(key, s, "b", &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(key, s, NULL, &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(other, s, "a", &cause));
	free(cause);

	/* Malformed texts. */
	ck_assert_ptr_null(seal_open(key, "", NULL, &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(key, "secret", NULL, &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(key, "dtseal1:", NULL, &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(key, "dtseal1:!!!!", NULL, &cause));
	free(cause);
	ck_assert_ptr_null(seal_open(key, "dtseal1:QUJD", NULL, &cause));
	free(cause);
	bad = xasprintf("%s=", s);
	ck_assert_ptr_null(seal_open(key, bad, "a", &cause));
	free(cause);
	free(bad);
	bad = xstrdup(s);
	bad[strlen(bad) - 5] = '\0';
	ck_assert_ptr_null(seal_open(key, bad, "a", &cause));
	free(cause);
	free(bad);
	free(s);

	/* Too little material, with or without its newline. */
	ck_assert_int_eq(seal_key_from(material, 31, key, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "31"));
	free(cause);
	ck_assert_int_eq(seal_key_from("0123456789abcdef0123456789abcde\n",
	    32, key, &cause), -1);
	free(cause);
	ck_assert_int_eq(seal_key_from("", 0, key, &cause), -1);
	free(cause);
}
END_TEST

Suite *
suite_acme(void)
{
	Suite *s = suite_create("acme");
	TCase *tc = tcase_create("acme");

	tcase_add_test(tc, b64url_vectors);
	tcase_add_test(tc, thumbprint_fixed);
	tcase_add_test(tc, key_new_is_pkcs8_p256);
	tcase_add_test(tc, jws_verifies);
	tcase_add_test(tc, jws_signer_fails);
	tcase_add_test(tc, sig_der_to_raw);
	tcase_add_test(tc, sig_der_too_long);
	tcase_add_test(tc, problem_documents);
	tcase_add_test(tc, tokens);
	tcase_add_test(tc, csr_three_hosts);
	tcase_add_test(tc, order_refuses_bad_input);
	suite_add_tcase(s, tc);
	tc = tcase_create("seal");
	tcase_add_test(tc, seal_round_trip);
	tcase_add_test(tc, seal_refuses);
	suite_add_tcase(s, tc);
	return s;
}
