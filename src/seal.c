/* SPDX-License-Identifier: ISC */
/*
 * Private keys sealed for the shared store.  The certificates dovetail
 * obtains are kept where other readers see them (Docker configs), so the
 * key beside each is sealed with AES-256-GCM under a key derived from
 * material only dovetail has.  The associated data binds a sealed text to
 * its place (the name it is stored under): one moved elsewhere does not
 * open.  No I/O: the caller reads the material and stores the text.
 *
 * A sealed text is "dtseal1:" then base64 (RFC 4648, padded) of the
 * 12-byte random nonce, the ciphertext and the 16-byte tag.
 */
#include "config.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "dovetail.h"

#define SEAL_PREFIX "dtseal1:"
#define SEAL_NONCE 12
#define SEAL_TAG 16
#define SEAL_MATERIAL_MIN 32
/* A private key in PEM is a few kilobytes; far more is not one. */
#define SEAL_TEXT_MAX (1024 * 1024)

/*
 * The sealing key: SHA-256 of the material, less one final newline (so
 * that a file written with echo and one without give the same key).
 * Returns 0, or -1 with *cause (new) when there are fewer than 32 bytes
 * of material.
 */
int
seal_key_from(const char *material, size_t len, unsigned char key[32],
    char **cause)
{
	unsigned int n = 0;

	if (len > 0 && material[len - 1] == '\n')
		len--;
	if (len > 0 && material[len - 1] == '\r')
		len--;
	if (len < SEAL_MATERIAL_MIN) {
		*cause = xasprintf("the sealing key material is %zu bytes, "
		    "fewer than %d", len, SEAL_MATERIAL_MIN);
		return -1;
	}
	if (EVP_Digest(material, len, key, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32)
		fatalx("libcrypto: SHA-256 failed");
	return 0;
}

/* One AES-256-GCM pass; 0 or -1 (the tag did not verify, on decrypt). */
static int
seal_gcm(int encrypt, const unsigned char key[32],
    const unsigned char nonce[SEAL_NONCE], const char *aad,
    const unsigned char *in, size_t len, unsigned char *out,
    unsigned char tag[SEAL_TAG])
{
	EVP_CIPHER_CTX *ctx;
	int n, rc = -1;

	if (len > SEAL_TEXT_MAX)
		return -1;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		fatalx("libcrypto: out of memory");
	if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL,
	    encrypt) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE,
	    NULL) != 1 ||
	    EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1)
		fatalx("libcrypto: AES-256-GCM unavailable");
	if (EVP_CipherUpdate(ctx, NULL, &n, (const unsigned char *)aad,
	    (int)strlen(aad)) != 1 ||
	    EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
		goto out;
	if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
	    SEAL_TAG, tag) != 1)
		goto out;
	if (EVP_CipherFinal_ex(ctx, out + n, &n) != 1)
		goto out;
	if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
	    SEAL_TAG, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/*
 * plain sealed under key, bound to aad (NULL: none): the text to store
 * (new), or NULL with *cause (new) when plain is too large.
 */
char *
seal_text(const unsigned char key[32], const char *plain, const char *aad,
    char **cause)
{
	unsigned char *raw, *b64;
	size_t len = strlen(plain), rawlen, b64len;
	char *sealed;

	if (len > SEAL_TEXT_MAX) {
		*cause = xasprintf("%zu bytes to seal, more than %d", len,
		    SEAL_TEXT_MAX);
		return NULL;
	}
	rawlen = SEAL_NONCE + len + SEAL_TAG;
	raw = xmalloc(rawlen);
	if (RAND_bytes(raw, SEAL_NONCE) != 1)
		fatalx("libcrypto: no random bytes");
	if (seal_gcm(1, key, raw, aad == NULL ? "" : aad,
	    (const unsigned char *)plain, len, raw + SEAL_NONCE,
	    raw + SEAL_NONCE + len) == -1)
		fatalx("libcrypto: AES-256-GCM failed");
	b64len = 4 * ((rawlen + 2) / 3);
	b64 = xmalloc(b64len + 1);
	if (EVP_EncodeBlock(b64, raw, (int)rawlen) != (int)b64len)
		fatalx("libcrypto: base64 failed");
	sealed = xasprintf("%s%s", SEAL_PREFIX, (const char *)b64);
	free(b64);
	free(raw);
	return sealed;
}

/*
 * The bytes base64 text s (len bytes, padded) stands for, into out (new,
 * *outlen of them); -1 when it is not strict base64.
 */
static int
seal_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	size_t i, pad = 0;
	unsigned char *raw, *check;
	int n;

	if (len == 0 || len % 4 != 0 || len > 2 * SEAL_TEXT_MAX)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] == '=' && i >= len - 2) {
			pad++;
			continue;
		}
		if (pad > 0 || !(s[i] == '+' || s[i] == '/' ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z')))
			return -1;
	}
	raw = xmalloc(len / 4 * 3 + 1);
	check = xmalloc(len + 1);
	/*
	 * EVP_DecodeBlock counts the pad as bytes, and ignores the bits
	 * under it: only the one encoding of the bytes is taken, so that no
	 * other text opens as the same.
	 */
	n = EVP_DecodeBlock(raw, (const unsigned char *)s, (int)len);
	if (n < 0 || (size_t)n < pad ||
	    EVP_EncodeBlock(check, raw, n - (int)pad) != (int)len ||
	    memcmp(check, s, len) != 0) {
		free(check);
		free(raw);
		return -1;
	}
	free(check);
	*out = raw;
	*outlen = (size_t)n - pad;
	return 0;
}

/*
 * The plaintext sealed in sealed (new; the caller wipes it), or NULL with
 * *cause (new) when the text is malformed, was sealed under another key
 * or for another aad (NULL: none), or was altered.
 */
char *
seal_open(const unsigned char key[32], const char *sealed, const char *aad,
    char **cause)
{
	unsigned char *raw = NULL;
	size_t rawlen, len, plen = strlen(SEAL_PREFIX);
	char *plain;

	if (strncmp(sealed, SEAL_PREFIX, plen) != 0 ||
	    seal_decode(sealed + plen, strlen(sealed + plen), &raw,
	    &rawlen) == -1 || rawlen < SEAL_NONCE + SEAL_TAG) {
		free(raw);
		*cause = xstrdup("not a sealed text (" SEAL_PREFIX
		    "base64)");
		return NULL;
	}
	len = rawlen - SEAL_NONCE - SEAL_TAG;
	plain = xmalloc(len + 1);
	if (seal_gcm(0, key, raw, aad == NULL ? "" : aad, raw + SEAL_NONCE,
	    len, (unsigned char *)plain, raw + SEAL_NONCE + len) == -1 ||
	    memchr(plain, '\0', len) != NULL) {
		OPENSSL_cleanse(plain, len);
		free(plain);
		free(raw);
		*cause = xstrdup("the sealed text does not open with this "
		    "key here (another key, another name, or altered)");
		return NULL;
	}
	plain[len] = '\0';
	free(raw);
	return plain;
}
