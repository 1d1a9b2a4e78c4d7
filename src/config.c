/* SPDX-License-Identifier: ISC */
/*
 * The configuration: one table of keys shared by the INI file parser and
 * the command-line options, so that every key has exactly one long option
 * and one validator.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

const struct config_key config_keys[] = {
	{ "docker", "url", "docker-url", "unix:///var/run/docker.sock", "URL",
	  "Docker Engine API endpoints, a comma list tried in order" },
	{ "docker", "tls_ca", "docker-tls-ca", "", "FILE",
	  "CA certificate that signs the Docker TLS endpoint" },
	{ "docker", "tls_cert", "docker-tls-cert", "", "FILE",
	  "client certificate for the Docker TLS endpoint" },
	{ "docker", "tls_key", "docker-tls-key", "", "FILE",
	  "client key for the Docker TLS endpoint" },
	{ "docker", "timeout", "docker-timeout", "10s", "DURATION",
	  "time limit of one Docker API request" },
	{ "docker", "max_reply", "docker-max-reply", "256", "MB",
	  "size limit of one Docker API reply, in megabytes" },
	{ "haproxy", "runtime_socket", "haproxy-runtime-socket",
	  "/run/haproxy/admin.sock", "PATH",
	  "HAProxy stats socket with level admin" },
	{ "haproxy", "master_socket", "haproxy-master-socket",
	  "/run/haproxy/master.sock", "PATH",
	  "HAProxy master CLI socket, used for reloads" },
	{ "haproxy", "config", "haproxy-config", "/etc/haproxy/dovetail.cfg",
	  "FILE", "the HAProxy file dovetail writes" },
	{ "haproxy", "base_config", "haproxy-base-config",
	  "/etc/haproxy/haproxy.cfg", "FILE",
	  "the user's HAProxy file loaded before it, for checks" },
	{ "haproxy", "binary", "haproxy-binary", "/usr/sbin/haproxy", "FILE",
	  "HAProxy binary used for configuration checks" },
	{ "haproxy", "check_rate", "haproxy-check-rate", "1000", "N",
	  "health checks per second of all servers together, at most" },
	{ "routing", "label_prefix", "routing-label-prefix", "com.docker.lb",
	  "PREFIX", "prefix of the service labels dovetail reads" },
	{ "routing", "service_cluster", "routing-service-cluster", "", "NAME",
	  "serve only services of this cluster (empty: no cluster label)" },
	{ "routing", "http_bind", "routing-http-bind", ":80", "ADDR:PORT",
	  "address and port of the HTTP frontend" },
	{ "routing", "https_bind", "routing-https-bind", ":443", "ADDR:PORT",
	  "address and port of the HTTPS frontend (empty: none)" },
	{ "routing", "secrets_dir", "routing-secrets-dir", "/run/secrets",
	  "DIR", "where the ssl_cert and ssl_key secrets are files" },
	{ "routing", "websocket_timeout", "routing-websocket-timeout", "24h",
	  "DURATION", "idle timeout of WebSocket tunnels on their endpoints" },
	{ "routing", "response_headers", "routing-response-headers", "false",
	  "BOOL", "add x-request-id, x-proxy-id, ... to responses" },
	{ "routing", "strict_tenancy", "routing-strict-tenancy", "false",
	  "BOOL", "services of no stack share no host with any other" },
	{ "routing", "host_pins", "routing-host-pins", "", "PATTERN=STACK,...",
	  "host patterns only services of that stack may route" },
	{ "routing", "max_hosts", "routing-max-hosts", "5000", "N",
	  "host names one service may route" },
	{ "routing", "max_label_bytes", "routing-max-label-bytes", "131072",
	  "N", "size limit of one label's value" },
	{ "routing", "cert_warn_days", "routing-cert-warn-days", "14", "DAYS",
	  "warn of a certificate this many days before it expires" },
	{ "acme", "enabled", "acme-enabled", "false", "BOOL",
	  "order certificates for services labelled acme=true" },
	{ "acme", "directory", "acme-directory",
	  "https://acme-v02.api.letsencrypt.org/directory", "URL",
	  "the ACME CA's directory" },
	{ "acme", "contact", "acme-contact", "", "mailto:ADDR",
	  "the account's contact, for the CA's expiry notices" },
	{ "acme", "ca_bundle", "acme-ca-bundle", "", "FILE",
	  "CA certificates to verify the ACME CA with (empty: the system's)" },
	{ "acme", "key_file", "acme-key-file",
	  "/run/secrets/dovetail-acme-key", "FILE",
	  "the key sealing private keys in the swarm's store" },
	{ "acme", "renew_days", "acme-renew-days", "30", "DAYS",
	  "renew a certificate this many days before it expires" },
	{ "acme", "renew_interval", "acme-renew-interval", "12h", "DURATION",
	  "the least time between two orders for the same hosts" },
	{ "acme", "retry_interval", "acme-retry-interval", "10m", "DURATION",
	  "wait after a failed order, doubled after each, to 24h" },
	{ "acme", "timeout", "acme-timeout", "2m", "DURATION",
	  "time limit of one order" },
	{ "agent", "listen", "agent-listen", "", "ADDR:PORT",
	  "HTTP address of /metrics and /healthz (empty: off)" },
	{ "agent", "control_socket", "agent-control-socket", "", "PATH",
	  "dovetailctl's socket (empty: dovetail.sock beside the file)" },
	{ "agent", "poll_interval", "agent-poll-interval", "3s", "DURATION",
	  "period of the comparison with HAProxy's state" },
	{ "agent", "audit_interval", "agent-audit-interval", "30s",
	  "DURATION", "period of the full read of the swarm" },
	{ "agent", "audit_rate", "agent-audit-rate", "8", "KB/S",
	  "the full reads' average Docker traffic at most, in KB/s" },
	{ "agent", "converge_interval", "agent-converge-interval", "50ms",
	  "DURATION", "task polling period of a service that just changed" },
	{ "agent", "converge_timeout", "agent-converge-timeout", "60s",
	  "DURATION", "how long a changed service is polled at most" },
};
const size_t config_nkeys = sizeof(config_keys) / sizeof(config_keys[0]);

struct config *
config_new(void)
{
	struct config *c;
	size_t i;
	char *cause;

	c = xcalloc(1, sizeof(*c));
	for (i = 0; i < config_nkeys; i++) {
		if (config_set_option(c, i, config_keys[i].def, &cause) == -1)
			fatalx("built-in default: %s", cause);
	}
	return c;
}

static void
free_pins(struct host_pin *pins, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(pins[i].pattern);
		free(pins[i].stack);
	}
	free(pins);
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	free_pins(c->pins, c->npins);
	free(c->docker_url);
	free(c->docker_tls_ca);
	free(c->docker_tls_cert);
	free(c->docker_tls_key);
	free(c->runtime_socket);
	free(c->master_socket);
	free(c->haproxy_config);
	free(c->haproxy_base);
	free(c->haproxy_binary);
	free(c->label_prefix);
	free(c->service_cluster);
	free(c->http_bind);
	free(c->https_bind);
	free(c->secrets_dir);
	free(c->listen);
	free(c->control_socket);
	free(c->acme_directory);
	free(c->acme_contact);
	free(c->acme_ca_bundle);
	free(c->acme_key_file);
	free(c);
}

/* Parses "250ms", "3s", "2m" or a bare number of seconds. */
int
config_parse_duration(const char *s, unsigned *ms)
{
	unsigned long long v = 0, mult;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p)) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > UINT_MAX)
			return -1;
		p++;
	}
	if (strcmp(p, "ms") == 0)
		mult = 1;
	else if (strcmp(p, "s") == 0 || *p == '\0')
		mult = 1000;
	else if (strcmp(p, "m") == 0)
		mult = 60000;
	else if (strcmp(p, "h") == 0)
		mult = 3600000;
	else
		return -1;
	if (v * mult > UINT_MAX)
		return -1;
	*ms = (unsigned)(v * mult);
	return 0;
}

/*
 * A bind is "ADDR:PORT" where ADDR is empty, "*", an IPv4 address or a
 * bracket-free IPv6 address as HAProxy writes it ("::" forms), and PORT
 * is 1-65535.  Nothing else reaches the HAProxy file.
 */
int
config_check_bind(const char *s)
{
	const char *colon;
	unsigned long port;
	unsigned char addr[16];
	char host[64], *end;
	size_t len;

	colon = strrchr(s, ':');
	if (colon == NULL || colon[1] == '\0')
		return -1;
	len = (size_t)(colon - s);
	if (len >= sizeof(host))
		return -1;
	memcpy(host, s, len);
	host[len] = '\0';
	if (len > 0 && strcmp(host, "*") != 0 &&
	    inet_pton(AF_INET, host, addr) != 1 &&
	    inet_pton(AF_INET6, host, addr) != 1)
		return -1;
	if (!isdigit((unsigned char)colon[1]))
		return -1;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		return -1;
	return 0;
}

static int
check_docker_urls(const char *s, char **cause)
{
	char *copy, *item, *next;
	int rc = 0;

	copy = xstrdup(s);
	for (item = copy; item != NULL; item = next) {
		next = strchr(item, ',');
		if (next != NULL)
			*next++ = '\0';
		while (*item == ' ')
			item++;
		if (strncmp(item, "unix:///", 8) != 0 &&
		    strncmp(item, "tcp://", 6) != 0 &&
		    strncmp(item, "http://", 7) != 0 &&
		    strncmp(item, "https://", 8) != 0) {
			*cause = xasprintf("\"%s\" is not a unix:///PATH, "
			    "tcp://HOST:PORT, http:// or https:// URL",
			    esc(item));
			rc = -1;
			break;
		}
	}
	free(copy);
	return rc;
}

static int
check_name(const char *s, const char *extra)
{
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr(extra, *s) == NULL)
			return -1;
	}
	return 0;
}

static void
replace(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup(value);
}

/* A whole number from min to max, digits only. */
static int
parse_count(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (!isdigit((unsigned char)*s))
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -1;
	}
	if (v < min)
		return -1;
	*out = (unsigned)v;
	return 0;
}

/*
 * host_pins: "*.a.example.com=team-a,api.example.com=team-b".  A pattern
 * is a host name, or "*." and a domain for every name below it.
 */
static int
parse_pins(struct config *c, const char *v, char **cause)
{
	struct host_pin *pins = NULL;
	char *copy, *item, *next, *eq;
	const char *host;
	size_t n = 0, i;
	int rc = 0;

	copy = xstrdup(v);
	for (item = copy; rc == 0 && item != NULL && *copy != '\0';
	    item = next) {
		next = strchr(item, ',');
		if (next != NULL)
			*next++ = '\0';
		eq = strchr(item, '=');
		if (eq != NULL)
			*eq = '\0';
		for (i = 0; item[i] != '\0'; i++)
			item[i] = (char)tolower((unsigned char)item[i]);
		host = strncmp(item, "*.", 2) == 0 ? item + 2 : item;
		if (eq == NULL || !label_valid_host(host) ||
		    strchr(host, '*') != NULL || check_name(eq + 1, ".-_") ==
		    -1 || eq[1] == '\0') {
			*cause = xasprintf("host_pins item \"%s%s%s\" is not "
			    "PATTERN=STACK (for example *.a.example.com=team-a)",
			    esc(item), eq == NULL ? "" : "=", eq == NULL ? "" :
			    esc(eq + 1));
			rc = -1;
			break;
		}
		for (i = 0; i < n && strcmp(pins[i].pattern, item) != 0; i++)
			;
		if (i < n) {
			*cause = xasprintf("host_pins: \"%s\" is pinned twice",
			    esc(item));
			rc = -1;
			break;
		}
		pins = xreallocarray(pins, n + 1, sizeof(*pins));
		pins[n].pattern = xstrdup(item);
		pins[n].stack = xstrdup(eq + 1);
		n++;
	}
	free(copy);
	if (rc == -1) {
		free_pins(pins, n);
		return -1;
	}
	free_pins(c->pins, c->npins);
	c->pins = pins;
	c->npins = n;
	return 0;
}

/* A URL or path that reaches no file or command: no blanks or quotes. */
static int
plain_text(const char *v)
{
	for (; *v != '\0'; v++)
		if ((unsigned char)*v <= ' ' || (unsigned char)*v >= 0x7f ||
		    strchr("\"'\\;#", *v) != NULL)
			return 0;
	return 1;
}

static int
set_acme(struct config *c, const struct config_key *k, const char *v,
    char **cause)
{
	unsigned ms;

	if (strcmp(k->key, "enabled") == 0) {
		if (label_parse_bool(v, &c->acme_enabled) == -1) {
			*cause = xasprintf("enabled \"%s\" is not a boolean "
			    "(true, false, 1 or 0)", esc(v));
			return -1;
		}
	} else if (strcmp(k->key, "directory") == 0) {
		if (strncmp(v, "https://", 8) != 0 || v[8] == '\0' ||
		    !plain_text(v)) {
			*cause = xasprintf("directory \"%s\" is not an "
			    "https:// URL", esc(v));
			return -1;
		}
		replace(&c->acme_directory, v);
	} else if (strcmp(k->key, "contact") == 0) {
		if (*v != '\0' && (strncmp(v, "mailto:", 7) != 0 ||
		    strchr(v + 7, '@') == NULL || !plain_text(v))) {
			*cause = xasprintf("contact \"%s\" is not "
			    "mailto:ADDRESS", esc(v));
			return -1;
		}
		replace(&c->acme_contact, v);
	} else if (strcmp(k->key, "ca_bundle") == 0 ||
	    strcmp(k->key, "key_file") == 0) {
		if ((*v != '\0' || strcmp(k->key, "key_file") == 0) &&
		    (v[0] != '/' || !plain_text(v))) {
			*cause = xasprintf("%s \"%s\" is not an absolute path "
			    "without blanks or quotes", k->key, esc(v));
			return -1;
		}
		replace(strcmp(k->key, "ca_bundle") == 0 ?
		    &c->acme_ca_bundle : &c->acme_key_file, v);
	} else if (strcmp(k->key, "renew_days") == 0) {
		if (parse_count(v, 1, 3650, &c->acme_renew_days) == -1) {
			*cause = xasprintf("renew_days \"%s\" is not a number "
			    "of days from 1 to 3650", esc(v));
			return -1;
		}
	} else {
		/* renew_interval, retry_interval, timeout */
		if (config_parse_duration(v, &ms) == -1 || ms < 1000 ||
		    ms > 7 * 86400000u) {
			*cause = xasprintf("%s \"%s\" is not a duration "
			    "between 1s and 168h", k->key, esc(v));
			return -1;
		}
		if (strcmp(k->key, "renew_interval") == 0)
			c->acme_renew_interval_ms = ms;
		else if (strcmp(k->key, "retry_interval") == 0)
			c->acme_retry_interval_ms = ms;
		else
			c->acme_timeout_ms = ms;
	}
	return 0;
}

int
config_set_option(struct config *c, size_t i, const char *v, char **cause)
{
	const struct config_key *k = &config_keys[i];
	const char *o = k->option;
	unsigned ms;

	*cause = NULL;
	if (strcmp(o, "docker-url") == 0) {
		if (*v == '\0' || check_docker_urls(v, cause) == -1) {
			if (*cause == NULL)
				*cause = xstrdup("url is empty");
			return -1;
		}
		replace(&c->docker_url, v);
	} else if (strcmp(o, "docker-max-reply") == 0) {
		if (parse_count(v, 1, 65536, &c->docker_max_reply_mb) == -1) {
			*cause = xasprintf("max_reply \"%s\" is not a number "
			    "of megabytes from 1 to 65536", esc(v));
			return -1;
		}
	} else if (strcmp(o, "agent-audit-rate") == 0) {
		if (parse_count(v, 1, 1048576, &c->audit_rate_kbs) == -1) {
			*cause = xasprintf("audit_rate \"%s\" is not a number "
			    "of KB/s from 1 to 1048576", esc(v));
			return -1;
		}
	} else if (strcmp(o, "haproxy-check-rate") == 0) {
		if (parse_count(v, 10, 1000000, &c->check_rate) == -1) {
			*cause = xasprintf("check_rate \"%s\" is not a number "
			    "from 10 to 1000000", esc(v));
			return -1;
		}
	} else if (strcmp(o, "routing-max-hosts") == 0) {
		if (parse_count(v, 1, 1000000, &c->max_hosts) == -1) {
			*cause = xasprintf("max_hosts \"%s\" is not a number "
			    "from 1 to 1000000", esc(v));
			return -1;
		}
	} else if (strcmp(o, "routing-max-label-bytes") == 0) {
		if (parse_count(v, 256, 16777216, &c->max_label_bytes) == -1) {
			*cause = xasprintf("max_label_bytes \"%s\" is not a "
			    "number from 256 to 16777216", esc(v));
			return -1;
		}
	} else if (strcmp(o, "routing-cert-warn-days") == 0) {
		if (parse_count(v, 0, 3650, &c->cert_warn_days) == -1) {
			*cause = xasprintf("cert_warn_days \"%s\" is not a "
			    "number of days from 0 to 3650", esc(v));
			return -1;
		}
	} else if (strncmp(o, "docker-tls-", 11) == 0) {
		if (*v != '\0' && v[0] != '/') {
			*cause = xasprintf("%s must be an absolute path",
			    k->key);
			return -1;
		}
		if (strcmp(o, "docker-tls-ca") == 0)
			replace(&c->docker_tls_ca, v);
		else if (strcmp(o, "docker-tls-cert") == 0)
			replace(&c->docker_tls_cert, v);
		else
			replace(&c->docker_tls_key, v);
	}
	else if (strncmp(o, "haproxy-", 8) == 0) {
		/* These reach the HAProxy file and runtime commands. */
		if (v[0] != '/' || strpbrk(v, " \t\n;#\"'\\") != NULL) {
			*cause = xasprintf("%s must be an absolute path without "
			    "blanks, quotes, ';' or '#'", k->key);
			return -1;
		}
		if (strcmp(k->key, "runtime_socket") == 0)
			replace(&c->runtime_socket, v);
		else if (strcmp(k->key, "master_socket") == 0)
			replace(&c->master_socket, v);
		else if (strcmp(k->key, "config") == 0)
			replace(&c->haproxy_config, v);
		else if (strcmp(k->key, "base_config") == 0)
			replace(&c->haproxy_base, v);
		else
			replace(&c->haproxy_binary, v);
	} else if (strcmp(o, "routing-label-prefix") == 0) {
		if (*v == '\0' || check_name(v, ".-_") == -1 ||
		    v[strlen(v) - 1] == '.') {
			*cause = xasprintf("label_prefix \"%s\" must be "
			    "letters, digits, '.', '-' and '_'", esc(v));
			return -1;
		}
		replace(&c->label_prefix, v);
	} else if (strcmp(o, "routing-service-cluster") == 0) {
		if (check_name(v, ".-_") == -1) {
			*cause = xasprintf("service_cluster \"%s\" must be "
			    "letters, digits, '.', '-' and '_'", esc(v));
			return -1;
		}
		replace(&c->service_cluster, v);
	} else if (strcmp(o, "routing-secrets-dir") == 0) {
		if (v[0] != '/' || strpbrk(v, " \t\n;#\"'\\") != NULL) {
			*cause = xasprintf("secrets_dir must be an absolute path "
			    "without blanks, quotes, ';' or '#'");
			return -1;
		}
		replace(&c->secrets_dir, v);
	} else if (strcmp(o, "routing-response-headers") == 0) {
		if (label_parse_bool(v, &c->response_headers) == -1) {
			*cause = xasprintf("response_headers \"%s\" is not a "
			    "boolean (true, false, 1 or 0)", esc(v));
			return -1;
		}
	} else if (strcmp(o, "routing-strict-tenancy") == 0) {
		if (label_parse_bool(v, &c->strict_tenancy) == -1) {
			*cause = xasprintf("strict_tenancy \"%s\" is not a "
			    "boolean (true, false, 1 or 0)", esc(v));
			return -1;
		}
	} else if (strncmp(o, "acme-", 5) == 0) {
		if (set_acme(c, k, v, cause) == -1)
			return -1;
	} else if (strcmp(o, "routing-host-pins") == 0) {
		if (parse_pins(c, v, cause) == -1)
			return -1;
	} else if (strcmp(o, "routing-websocket-timeout") == 0) {
		if (config_parse_duration(v, &ms) == -1 || ms < 1000 ||
		    ms > 2147483000u) {
			*cause = xasprintf("websocket_timeout \"%s\" is not a "
			    "duration between 1s and 596h", esc(v));
			return -1;
		}
		c->websocket_timeout_ms = ms;
	} else if (strcmp(o, "agent-listen") == 0) {
		if (*v != '\0' && config_check_bind(v) == -1) {
			*cause = xasprintf("listen \"%s\" is not ADDR:PORT "
			    "(for example 127.0.0.1:9180)", esc(v));
			return -1;
		}
		replace(&c->listen, v);
	} else if (strcmp(o, "agent-control-socket") == 0) {
		if (*v != '\0' && (v[0] != '/' ||
		    strlen(v) >= CONFIG_SOCKET_PATH_MAX)) {
			*cause = xasprintf("control_socket \"%s\" is not an "
			    "absolute path shorter than %d bytes", esc(v),
			    CONFIG_SOCKET_PATH_MAX);
			return -1;
		}
		replace(&c->control_socket, v);
	} else if (strcmp(o, "routing-http-bind") == 0 ||
	    strcmp(o, "routing-https-bind") == 0) {
		if ((*v != '\0' || strcmp(k->key, "http_bind") == 0) &&
		    config_check_bind(v) == -1) {
			*cause = xasprintf("%s \"%s\" is not ADDR:PORT "
			    "(for example :80 or 127.0.0.1:8080)", k->key,
			    esc(v));
			return -1;
		}
		if (strcmp(k->key, "http_bind") == 0)
			replace(&c->http_bind, v);
		else
			replace(&c->https_bind, v);
	} else {
		/* The remaining keys are durations. */
		if (config_parse_duration(v, &ms) == -1) {
			*cause = xasprintf("%s \"%s\" is not a duration "
			    "(for example 500ms, 3s or 1m)", k->key, esc(v));
			return -1;
		}
		if (ms < 10 || ms > 3600000) {
			*cause = xasprintf("%s \"%s\" is outside 10ms..1h",
			    k->key, esc(v));
			return -1;
		}
		if (strcmp(k->key, "timeout") == 0)
			c->docker_timeout_ms = ms;
		else if (strcmp(k->key, "poll_interval") == 0)
			c->poll_interval_ms = ms;
		else if (strcmp(k->key, "audit_interval") == 0)
			c->audit_interval_ms = ms;
		else if (strcmp(k->key, "converge_interval") == 0)
			c->converge_interval_ms = ms;
		else
			c->converge_timeout_ms = ms;
	}
	return 0;
}

int
config_set(struct config *c, const char *section, const char *key,
    const char *value, char **cause)
{
	size_t i;

	for (i = 0; i < config_nkeys; i++) {
		if (strcmp(config_keys[i].section, section) == 0 &&
		    strcmp(config_keys[i].key, key) == 0)
			return config_set_option(c, i, value, cause);
	}
	for (i = 0; i < config_nkeys; i++) {
		if (strcmp(config_keys[i].section, section) == 0) {
			*cause = xasprintf("unknown key \"%s\" in section "
			    "[%s]", esc(key), esc(section));
			return -1;
		}
	}
	*cause = xasprintf("unknown section [%s]", esc(section));
	return -1;
}

struct load_ctx {
	struct config *config;
	char *cause;
};

/* inih reports the line of the first handler failure; keep its reason. */
static int
load_handler(void *user, const char *section, const char *key,
    const char *value)
{
	struct load_ctx *ctx = user;
	char *cause;

	if (ctx->cause != NULL)
		return 0;
	if (config_set(ctx->config, section, key, value, &cause) == -1) {
		ctx->cause = cause;
		return 0;
	}
	return 1;
}

/*
 * inih cuts lines longer than its buffer (200 bytes in Debian's build)
 * and reads the rest as a new line: refuse them instead.  Returns the
 * number of the first long line, or 0.
 */
#define INI_LINE_MAX 199
static int
check_line_lengths(FILE *f)
{
	int c, line = 1;
	size_t len = 0;

	while ((c = getc(f)) != EOF) {
		if (c == '\n') {
			line++;
			len = 0;
		} else if (++len > INI_LINE_MAX)
			return line;
	}
	rewind(f);
	return 0;
}

/*
 * Loads path over the values already in c.  On error, *cause names the
 * file and line; c may then hold some of the file's values, so callers
 * load into a fresh config and keep the old one until this succeeds.
 */
int
config_load(struct config *c, const char *path, char **cause)
{
	struct load_ctx ctx = { c, NULL };
	FILE *f;
	int rc;

	f = fopen(path, "r");
	if (f == NULL) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	if ((rc = check_line_lengths(f)) != 0) {
		fclose(f);
		*cause = xasprintf("%s:%d: line longer than %d characters",
		    path, rc, INI_LINE_MAX);
		return -1;
	}
	rc = ini_parse_file(f, load_handler, &ctx);
	fclose(f);
	if (ctx.cause != NULL) {
		*cause = xasprintf("%s:%d: %s", path, rc, ctx.cause);
		free(ctx.cause);
		return -1;
	}
	if (rc != 0) {
		*cause = xasprintf("%s:%d: syntax error (expected [section] "
		    "or key = value)", path, rc);
		return -1;
	}
	return 0;
}

/* Checks what no single key can: run after the file and the options. */
int
config_validate(const struct config *c, char **cause)
{
	if ((*c->docker_tls_cert != '\0') != (*c->docker_tls_key != '\0')) {
		*cause = xstrdup("[docker] tls_cert and tls_key go together");
		return -1;
	}
	if (c->acme_enabled && *c->https_bind == '\0') {
		*cause = xstrdup("[acme] enabled needs [routing] https_bind: "
		    "the certificates are served on the HTTPS port");
		return -1;
	}
	return 0;
}

/*
 * dovetail's other files sit beside the generated one: dovetail.cfg ->
 * dovetail.<suffix> (the maps, the crt-list, the certificates' directory).
 */
char *
config_state_path(const struct config *c, const char *suffix)
{
	const char *p = c->haproxy_config;
	size_t len = strlen(p);

	if (len > 4 && strcmp(p + len - 4, ".cfg") == 0)
		len -= 4;
	return xasprintf("%.*s.%s", (int)len, p, suffix);
}

/* Where the control socket is (new): the key, or beside the file. */
char *
config_control_path(const struct config *c)
{
	if (*c->control_socket != '\0')
		return xstrdup(c->control_socket);
	return config_state_path(c, "sock");
}
