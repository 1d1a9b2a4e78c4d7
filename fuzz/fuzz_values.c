/* SPDX-License-Identifier: ISC */
/*
 * Single values from the command line, the configuration file and the
 * labels: durations, binds, ports, paths, booleans, host names, and every
 * configuration key's own validator.
 */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c;
	char *v, *p, *cause;
	unsigned ms;
	uint16_t port;
	size_t i;
	int b;

	v = fuzz_cstr(data, size);
	if (config_parse_duration(v, &ms) == 0)
		FUZZ_ASSERT(isdigit((unsigned char)v[0]));
	if (config_check_bind(v) == 0) {
		FUZZ_ASSERT(strchr(v, ':') != NULL);
		FUZZ_ASSERT(fuzz_printable(v));
		FUZZ_ASSERT(!fuzz_has_any(v, " \t;#\"'\\[]"));
		FUZZ_ASSERT(strlen(v) < 80);
	}
	if (label_parse_port(v, &port) == 0)
		FUZZ_ASSERT(port > 0);
	if (label_parse_path(v, &p) == 0) {
		FUZZ_ASSERT(p[0] == '/');
		FUZZ_ASSERT(fuzz_printable(p) && !fuzz_has_any(p,
		    " ;#\"'\\"));
		FUZZ_ASSERT(strstr(p, "//") == NULL);
		FUZZ_ASSERT(strcmp(p, "/") == 0 || p[strlen(p) - 1] != '/');
		free(p);
	}
	if (label_parse_bool(v, &b) == 0)
		FUZZ_ASSERT(b == 0 || b == 1);
	if (label_valid_host(v))
		FUZZ_ASSERT(strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789.-")
		    == strlen(v));

	c = config_new();
	for (i = 0; i < config_nkeys; i++) {
		if (config_set_option(c, i, v, &cause) == -1) {
			FUZZ_ASSERT(cause != NULL);
			free(cause);
		}
	}
	/* What reaches the HAProxy file or a command has no blank. */
	FUZZ_ASSERT(!fuzz_has_any(c->haproxy_config, " \t\n;#\"'\\"));
	FUZZ_ASSERT(!fuzz_has_any(c->runtime_socket, " \t\n;#\"'\\"));
	FUZZ_ASSERT(!fuzz_has_any(c->secrets_dir, " \t\n;#\"'\\"));
	FUZZ_ASSERT(config_check_bind(c->http_bind) == 0);
	FUZZ_ASSERT(*c->https_bind == '\0' ||
	    config_check_bind(c->https_bind) == 0);
	FUZZ_ASSERT(c->websocket_timeout_ms >= 1000);
	p = config_state_path(c, "hosts.map");
	FUZZ_ASSERT(!fuzz_has_any(p, " \t\n;#\"'\\"));
	free(p);
	config_free(c);
	free(v);
	return 0;
}
