/* SPDX-License-Identifier: ISC */
/*
 * A certificate and a key file (Docker secrets) combined into the PEM
 * HAProxy loads: the input is the certificate, a NUL byte, then the key.
 * What tls_combine returns travels in one runtime API payload, and
 * what tls_cert_info reads of it is bounded.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul;
	const char *cert, *key;
	size_t cert_len, key_len;
	char *pem, *cause;
	struct cert_info ci;

	nul = memchr(data, '\0', size);
	cert = (const char *)data;
	cert_len = nul == NULL ? size : (size_t)(nul - data);
	key = nul == NULL ? "" : (const char *)nul + 1;
	key_len = nul == NULL ? 0 : size - cert_len - 1;
	pem = tls_combine(cert, cert_len, key, key_len, &cause);
	if (pem == NULL) {
		FUZZ_ASSERT(cause != NULL);
		free(cause);
		return 0;
	}
	/* A payload ends at the first empty line. */
	FUZZ_ASSERT(pem[0] != '\n' && strstr(pem, "\n\n") == NULL);
	FUZZ_ASSERT(pem[strlen(pem) - 1] == '\n');
	FUZZ_ASSERT(strlen(pem) <= 15000);
	FUZZ_ASSERT(strchr(pem, '\r') == NULL);
	FUZZ_ASSERT(strstr(pem, "-----BEGIN CERTIFICATE-----\n") != NULL);
	FUZZ_ASSERT(strstr(pem, "PRIVATE KEY-----\n") != NULL);
	for (size_t i = 0; pem[i] != '\0'; i++)
		FUZZ_ASSERT(pem[i] == '\n' || (pem[i] >= 0x20 &&
		    pem[i] <= 0x7e));
	/* What libcrypto reads of it, for dovetailctl and /metrics. */
	if (tls_cert_info(pem, &ci, &cause) == -1) {
		FUZZ_ASSERT(!ci.parsed && ci.subject == NULL);
		free(cause);
	} else
		FUZZ_ASSERT(ci.parsed && ci.nnames <= 1000);
	cert_info_free(&ci);
	free(pem);
	return 0;
}
