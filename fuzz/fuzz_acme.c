/* SPDX-License-Identifier: ISC */
/*
 * The ACME store as Docker lists it (GET /configs), read into the
 * challenges every HAProxy answers, the locks and the certificates; and
 * the other ACME inputs on the same bytes: one config, an order's result
 * line, a cert config's data, a CA's problem document.  Whatever Docker
 * or a CA says, a challenge reaches HAProxy's map only as
 * base64url "TOKEN" -> "TOKEN.THUMBPRINT".
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"

static int
b64url(const char *s, size_t from, size_t to)
{
	size_t i;

	for (i = from; i < to; i++)
		if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		    "0123456789-_", s[i]) == NULL || s[i] == '\0')
			return 0;
	return to > from;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[32] = { 1, 2, 3 };
	const char *text = (const char *)data;
	struct acme_store st;
	struct acme_outcome o;
	struct dconfig *v, *one;
	char *cause, *s, *chain, *sealed, *type, *detail;
	const char *dot;
	size_t i, n, klen;

	if (swarm_parse_configs(text, size, &v, &n, &cause) == 0) {
		for (i = 0; i < n; i++) {
			FUZZ_ASSERT(v[i].kind >= ACME_ACCOUNT &&
			    v[i].kind <= ACME_CERT);
			FUZZ_ASSERT(v[i].data[v[i].len] == '\0');
		}
		acme_store_build(&st, v, n, key, "thumbprint-456_abc");
		for (i = 0; i < st.nchallenges; i++) {
			klen = strlen(st.challenges[i].key);
			s = st.challenges[i].value;
			dot = strchr(s, '.');
			FUZZ_ASSERT(b64url(st.challenges[i].key, 0, klen));
			FUZZ_ASSERT(strncmp(s, st.challenges[i].key, klen) ==
			    0 && s + klen == dot);
			FUZZ_ASSERT(b64url(s, klen + 1, strlen(s)));
		}
		for (i = 0; i < st.ncerts; i++)
			FUZZ_ASSERT(strlen(st.certs[i].hosts_id) == 16);
		acme_store_free(&st);
		dconfigs_free(v, n);
	} else
		free(cause);
	one = xcalloc(1, sizeof(*one));
	if (swarm_parse_config(text, size, one, &cause) == 0)
		dconfigs_free(one, 1);
	else {
		free(cause);
		free(one);
	}
	s = xstrndup(text, size);
	if (acme_parse_outcome(s, &o) == 0) {
		FUZZ_ASSERT(o.result < ACME_ORDER_RESULTS);
		FUZZ_ASSERT(o.host == NULL || label_valid_host(o.host));
		free(o.host);
		free(o.why);
	}
	if (acme_cert_split(s, &chain, &sealed) == 0) {
		FUZZ_ASSERT(strncmp(sealed, "dtseal1:", 8) == 0);
		FUZZ_ASSERT(strchr(sealed, '\n') == NULL);
		free(chain);
		free(sealed);
	}
	free(s);
	if (acme_problem_parse(text, size, &type, &detail) == 0) {
		free(type);
		free(detail);
	}
	return 0;
}
