/* SPDX-License-Identifier: ISC */
/*
 * Service labels to a route specification.  Labels are written by whoever
 * can create a service, so everything here is validated against what
 * HAProxy and DNS accept before it can reach a file or a runtime command.
 * A bad label makes its own service an error; nothing else is affected.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

#define HOST_MAX 253
#define HOST_LABEL_MAX 63
#define NETWORK_NAME_MAX 255

/*
 * A host name as a Host header carries it, lower case: dot-separated
 * labels of letters, digits and inner hyphens (RFC 1123).
 */
int
label_valid_host(const char *h)
{
	size_t len = 0, label = 0;
	const char *p;

	for (p = h; *p != '\0'; p++, len++) {
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '-')
			return 0;
		if (*p == '-' && label == 0)
			return 0;
		if (++label > HOST_LABEL_MAX)
			return 0;
	}
	if (len == 0 || len > HOST_MAX || label == 0 || p[-1] == '-')
		return 0;
	return 1;
}

int
label_parse_port(const char *s, uint16_t *port)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s) || strlen(s) > 5)
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

static int
valid_network_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > NETWORK_NAME_MAX)
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("_.-", *s) == NULL)
			return 0;
	}
	return 1;
}

#define PATH_MAX_LEN 200
#define NAME_MAX_LEN 64

/* A context root or WebSocket path: "/", or "/seg/seg" without a final "/". */
int
label_parse_path(const char *value, char **out)
{
	const char *p, *seg;
	size_t len = strlen(value);

	if (value[0] != '/' || len > PATH_MAX_LEN)
		return -1;
	while (len > 1 && value[len - 1] == '/')
		len--;
	if (len == 1) {
		*out = xstrdup("/");
		return 0;
	}
	for (p = value + 1, seg = p; p <= value + len; p++) {
		if (p == value + len || *p == '/') {
			if (p == seg || (p - seg == 1 && seg[0] == '.') ||
			    (p - seg == 2 && seg[0] == '.' && seg[1] == '.'))
				return -1;
			seg = p + 1;
			continue;
		}
		if (!isalnum((unsigned char)*p) && strchr("._~-", *p) == NULL)
			return -1;
	}
	*out = xstrndup(value, len);
	return 0;
}

/*
 * The one check of a name that reaches HAProxy's file, a runtime command
 * or a path: service names and ids, task ids, secret and cookie names.
 * Letters, digits, '.', '_', '-', at most max bytes, and no leading '.'
 * (never "." or ".." in secrets_dir).
 */
int
name_valid(const char *s, size_t max)
{
	size_t len = strlen(s);

	if (len == 0 || len > max || s[0] == '.')
		return 0;
	for (; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && strchr("._-", *s) == NULL)
			return 0;
	}
	return 1;
}

/* Exactly true/false/1/0: Interlock took "false" for "on". */
int
label_parse_bool(const char *s, int *v)
{
	if (strcmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*v = 1;
	else if (strcmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*v = 0;
	else
		return -1;
	return 0;
}

void
route_spec_free(struct route_spec *r)
{
	size_t i;

	for (i = 0; i < r->nhosts; i++)
		free(r->hosts[i]);
	free(r->hosts);
	free(r->network);
	free(r->context_root);
	free(r->ssl_cert);
	free(r->ssl_key);
	for (i = 0; i < r->nredirects; i++) {
		free(r->redirects[i].key);
		free(r->redirects[i].target);
	}
	free(r->redirects);
	free(r->sticky_cookie);
	for (i = 0; i < r->nws; i++)
		free(r->ws_paths[i]);
	free(r->ws_paths);
	memset(r, 0, sizeof(*r));
}

void
problem_free(struct problem *p)
{
	free(p->service);
	free(p->label);
	free(p->message);
	memset(p, 0, sizeof(*p));
}

static enum labels_result
fail(struct problem *pb, const struct service *s, const char *prefix,
    const char *label, char *message)
{
	pb->service = xstrdup(s->name);
	pb->label = label == NULL ? NULL : xasprintf("%s.%s", prefix, label);
	pb->message = message;
	return LABELS_ERROR;
}

static const char *
label_of(const struct service *s, const char *prefix, const char *name)
{
	char key[256];

	if ((size_t)snprintf(key, sizeof(key), "%s.%s", prefix, name) >=
	    sizeof(key))
		return NULL;
	return service_label(s, key);
}

/*
 * Calls one(item, len, arg, message) for each non-empty item of a
 * sep-separated list, blanks around items trimmed.
 */
static int
each_item(const char *value, char sep,
    int (*one)(const char *, size_t, void *, char **), void *arg,
    char **message)
{
	const char *p, *end;
	size_t len;

	for (p = value; *p != '\0'; p = *end == sep ? end + 1 : end) {
		end = strchr(p, sep);
		if (end == NULL)
			end = p + strlen(p);
		while (p < end && *p == ' ')
			p++;
		len = (size_t)(end - p);
		while (len > 0 && p[len - 1] == ' ')
			len--;
		if (len > 0 && one(p, len, arg, message) == -1)
			return -1;
	}
	return 0;
}

/*
 * Appends s (steals it) to the array *v of *n strings, which has room for
 * the next power of two: it doubles when *n reaches one.
 */
static void
add_string(char ***v, size_t *n, char *s)
{
	if ((*n & (*n - 1)) == 0)
		*v = xreallocarray(*v, *n == 0 ? 1 : *n * 2, sizeof(char *));
	(*v)[(*n)++] = s;
}

/*
 * Sorts the strings and drops (frees) repeated ones: a label may list
 * thousands of names, so no comparison of each with all the others.
 */
static void
sort_unique(char **v, size_t *n)
{
	size_t i, kept = 0;

	sort_array(v, *n, sizeof(char *), str_cmp_ptr);
	for (i = 0; i < *n; i++) {
		if (kept > 0 && strcmp(v[kept - 1], v[i]) == 0)
			free(v[i]);
		else
			v[kept++] = v[i];
	}
	*n = kept;
}

static char *
lower_host(const char *p, size_t len, char **message)
{
	char *host = xstrndup(p, len);
	size_t i;

	for (i = 0; i < len; i++)
		host[i] = (char)tolower((unsigned char)host[i]);
	if (!label_valid_host(host)) {
		*message = xasprintf("\"%s\" is not a host name (letters, "
		    "digits, '-' and '.' only)", esc(host));
		free(host);
		return NULL;
	}
	return host;
}

static int
one_host(const char *p, size_t len, void *arg, char **message)
{
	struct route_spec *r = arg;
	char *host;

	if ((host = lower_host(p, len, message)) == NULL)
		return -1;
	add_string(&r->hosts, &r->nhosts, host);
	return 0;
}

static int
one_ws_path(const char *p, size_t len, void *arg, char **message)
{
	struct route_spec *r = arg;
	char *item = xstrndup(p, len), *path;

	if (label_parse_path(item, &path) == -1) {
		*message = xasprintf("\"%s\" is not a path (\"/\" then "
		    "letters, digits, '.', '_', '~', '-' and '/')", esc(item));
		free(item);
		return -1;
	}
	free(item);
	add_string(&r->ws_paths, &r->nws, path);
	return 0;
}

/*
 * The endpoints go on one line of the backend (twice each: the path and
 * what is below it), and HAProxy refuses a line of more than 64 words,
 * which would stop every other service's change too (HAProxy 2.6 and 3.0
 * grow their line buffer, so the bytes are no limit).  The reason, or
 * NULL.
 */
static char *
ws_too_many(const struct route_spec *r)
{
	if (r->nws > LABEL_MAX_WS_PATHS)
		return xasprintf("%zu paths are more than %d", r->nws,
		    LABEL_MAX_WS_PATHS);
	return NULL;
}

/* "http://host", "https://host" or "host"; sets *scheme (0: both). */
static char *
parse_url(const char *p, size_t len, int *scheme, uint16_t *port,
    int target, char **message)
{
	char *item = xstrndup(p, len), *host, *colon;
	const char *rest = item;

	*scheme = 0;
	*port = 0;
	if (strncmp(item, "http://", 7) == 0) {
		*scheme = 1;
		rest += 7;
	} else if (strncmp(item, "https://", 8) == 0) {
		*scheme = 2;
		rest += 8;
	} else if (target) {
		*message = xasprintf("target \"%s\" must start with http:// "
		    "or https://", esc(item));
		free(item);
		return NULL;
	}
	len = strlen(rest);
	if (len > 0 && rest[len - 1] == '/')
		len--;
	colon = memchr(rest, ':', len);
	if (colon != NULL) {
		char *portstr = xstrndup(colon + 1, len - (size_t)(colon + 1 -
		    rest));

		if (!target || label_parse_port(portstr, port) == -1) {
			*message = xasprintf("\"%s\": bad port", esc(item));
			free(portstr);
			free(item);
			return NULL;
		}
		free(portstr);
		len = (size_t)(colon - rest);
	}
	if ((host = lower_host(rest, len, message)) == NULL) {
		free(item);
		return NULL;
	}
	free(item);
	return host;
}

static void
add_redirect(struct route_spec *r, const char *scheme, const char *host,
    const char *target)
{
	r->redirects = xreallocarray(r->redirects, r->nredirects + 1,
	    sizeof(*r->redirects));
	r->redirects[r->nredirects].key = xasprintf("%s://%s", scheme, host);
	r->redirects[r->nredirects].target = xstrdup(target);
	r->nredirects++;
}

static int
one_redirect(const char *p, size_t len, void *arg, char **message)
{
	struct route_spec *r = arg;
	const char *comma = memchr(p, ',', len);
	char *src, *dst, *target;
	int src_scheme, dst_scheme;
	uint16_t port;
	size_t i;

	if (comma == NULL) {
		src = xstrndup(p, len);
		*message = xasprintf("\"%s\" is not \"source,target\"",
		    esc(src));
		free(src);
		return -1;
	}
	if ((src = parse_url(p, (size_t)(comma - p), &src_scheme, &port, 0,
	    message)) == NULL)
		return -1;
	if ((dst = parse_url(comma + 1, len - (size_t)(comma + 1 - p),
	    &dst_scheme, &port, 1, message)) == NULL) {
		free(src);
		return -1;
	}
	if (port != 0)
		target = xasprintf("%s://%s:%u", dst_scheme == 1 ? "http" :
		    "https", dst, port);
	else
		target = xasprintf("%s://%s", dst_scheme == 1 ? "http" :
		    "https", dst);
	/*
	 * The source matches its host on any port: to the same host over
	 * the same scheme would redirect forever.  "a,https://a" means
	 * only http://a.
	 */
	if (strcmp(src, dst) == 0 && src_scheme == dst_scheme) {
		*message = xasprintf("%s://%s would redirect to itself",
		    src_scheme == 1 ? "http" : "https", src);
		free(src);
		free(dst);
		free(target);
		return -1;
	}
	if (src_scheme != 2 && (strcmp(src, dst) != 0 || dst_scheme != 1))
		add_redirect(r, "http", src, target);
	if (src_scheme != 1 && (strcmp(src, dst) != 0 || dst_scheme != 2))
		add_redirect(r, "https", src, target);
	free(src);
	free(dst);
	free(target);
	for (i = 0; i + 1 < r->nredirects; i++) {
		if (strcmp(r->redirects[i].key,
		    r->redirects[r->nredirects - 1].key) == 0) {
			*message = xasprintf("source %s is listed twice",
			    r->redirects[i].key);
			return -1;
		}
	}
	return 0;
}

static int
redirect_cmp(const void *a, const void *b)
{
	return strcmp(((const struct redirect *)a)->key,
	    ((const struct redirect *)b)->key);
}

/* The boolean labels, their fields, and their defaults (all off). */
struct bool_label {
	const char *name;
	size_t offset;
};
static const struct bool_label bool_labels[] = {
	{ "context_root_rewrite", offsetof(struct route_spec, rewrite) },
	{ "ssl_passthrough", offsetof(struct route_spec, passthrough) },
	{ "ssl_redirect", offsetof(struct route_spec, ssl_redirect) },
	{ "ip_hash", offsetof(struct route_spec, ip_hash) },
	{ "default_backend", offsetof(struct route_spec, default_backend) },
	{ "acme", offsetof(struct route_spec, acme) },
};

/* Labels that cannot apply when HAProxy does not see the requests. */
static const char *const http_only_labels[] = {
	"context_root", "sticky_session_cookie", "websocket_endpoints",
	"ssl_cert", "ssl_key", "acme",
};

static enum labels_result
parse_rest(const struct service *s, const char *prefix, struct route_spec *r,
    struct problem *pb)
{
	const char *v;
	char *message = NULL;
	size_t i;

	for (i = 0; i < sizeof(bool_labels) / sizeof(bool_labels[0]); i++) {
		v = label_of(s, prefix, bool_labels[i].name);
		if (v != NULL && label_parse_bool(v, (int *)(void *)((char *)r +
		    bool_labels[i].offset)) == -1)
			return fail(pb, s, prefix, bool_labels[i].name,
			    xasprintf("\"%s\" is not a boolean (true, false, "
			    "1 or 0)", esc(v)));
	}

	if ((v = label_of(s, prefix, "context_root")) != NULL &&
	    label_parse_path(v, &r->context_root) == -1)
		return fail(pb, s, prefix, "context_root", xasprintf("\"%s\" "
		    "is not a path (\"/\" then letters, digits, '.', '_', "
		    "'~', '-' and '/')", esc(v)));
	if (r->context_root != NULL && strcmp(r->context_root, "/") == 0) {
		free(r->context_root);
		r->context_root = NULL;
	}
	if (r->rewrite && r->context_root == NULL)
		return fail(pb, s, prefix, "context_root_rewrite",
		    xstrdup("needs a context_root label other than \"/\""));

	v = label_of(s, prefix, "ssl_cert");
	if (v != NULL && !name_valid(v, NAME_MAX_LEN))
		return fail(pb, s, prefix, "ssl_cert", xasprintf("\"%s\" is "
		    "not a secret name", esc(v)));
	r->ssl_cert = v == NULL ? NULL : xstrdup(v);
	v = label_of(s, prefix, "ssl_key");
	if (v != NULL && !name_valid(v, NAME_MAX_LEN))
		return fail(pb, s, prefix, "ssl_key", xasprintf("\"%s\" is "
		    "not a secret name", esc(v)));
	r->ssl_key = v == NULL ? NULL : xstrdup(v);
	if ((r->ssl_cert == NULL) != (r->ssl_key == NULL))
		return fail(pb, s, prefix, r->ssl_cert == NULL ? "ssl_cert" :
		    "ssl_key", xasprintf("missing: ssl_cert and ssl_key go "
		    "together"));
	if (r->acme && r->ssl_cert != NULL)
		return fail(pb, s, prefix, "acme", xstrdup("cannot go with "
		    "ssl_cert: the certificate is either ordered or given"));

	if ((v = label_of(s, prefix, "redirects")) != NULL) {
		if (each_item(v, ';', one_redirect, r, &message) == -1)
			return fail(pb, s, prefix, "redirects", message);
		if (r->nredirects == 0)
			return fail(pb, s, prefix, "redirects",
			    xstrdup("no \"source,target\" in the list"));
		sort_array(r->redirects, r->nredirects, sizeof(*r->redirects),
		    redirect_cmp);
	}

	if ((v = label_of(s, prefix, "sticky_session_cookie")) != NULL) {
		if (!name_valid(v, NAME_MAX_LEN))
			return fail(pb, s, prefix, "sticky_session_cookie",
			    xasprintf("\"%s\" is not a cookie name (letters, "
			    "digits, '.', '_' and '-')", esc(v)));
		if (r->ip_hash)
			return fail(pb, s, prefix, "sticky_session_cookie",
			    xstrdup("cannot go with ip_hash: choose one"));
		r->sticky_cookie = xstrdup(v);
	}

	if ((v = label_of(s, prefix, "websocket_endpoints")) != NULL) {
		if (each_item(v, ',', one_ws_path, r, &message) == -1)
			return fail(pb, s, prefix, "websocket_endpoints",
			    message);
		sort_unique(r->ws_paths, &r->nws);
		if ((message = ws_too_many(r)) != NULL)
			return fail(pb, s, prefix, "websocket_endpoints",
			    message);
	}

	if ((v = label_of(s, prefix, "backend_mode")) != NULL) {
		if (strcmp(v, "vip") == 0)
			r->vip = 1;
		else if (strcmp(v, "task") != 0)
			return fail(pb, s, prefix, "backend_mode", xasprintf(
			    "\"%s\" is not a backend mode (task or vip)",
			    esc(v)));
	}

	r->weight = -1;
	if ((v = label_of(s, prefix, "weight")) != NULL) {
		uint16_t w;

		if (strcmp(v, "0") == 0)
			r->weight = 0;
		else if (label_parse_port(v, &w) == -1 || w > 100)
			return fail(pb, s, prefix, "weight", xasprintf("\"%s\" "
			    "is not a percentage (0-100)", esc(v)));
		else
			r->weight = w;
	}

	if (r->passthrough) {
		for (i = 0; i < sizeof(http_only_labels) /
		    sizeof(http_only_labels[0]); i++) {
			if (label_of(s, prefix, http_only_labels[i]) != NULL)
				return fail(pb, s, prefix, http_only_labels[i],
				    xstrdup("cannot go with ssl_passthrough: "
				    "HAProxy does not see the requests"));
		}
	}
	if (r->passthrough && r->default_backend)
		return fail(pb, s, prefix, "default_backend", xstrdup("cannot "
		    "go with ssl_passthrough: unknown hosts are served over "
		    "HTTP"));
	if (r->nhosts == 0 && !r->default_backend)
		return fail(pb, s, prefix, "hosts", xstrdup("missing: a "
		    "service needs hosts or default_backend=true"));
	if (r->passthrough && r->nhosts == 0)
		return fail(pb, s, prefix, "hosts", xstrdup("missing: "
		    "ssl_passthrough routes by SNI, which needs host names"));
	if (r->acme && r->nhosts == 0)
		return fail(pb, s, prefix, "acme", xstrdup("a certificate is "
		    "ordered for the service's hosts, and it has none"));
	return LABELS_ROUTED;
}

/*
 * Reads the routing labels of s.  Returns LABELS_ROUTED with r filled,
 * LABELS_IGNORED when s is not for this agent (neither hosts nor
 * default_backend label, or another service cluster), or LABELS_ERROR
 * with pb filled (new strings).
 */
enum labels_result
labels_parse(const struct service *s, const char *prefix, const char *cluster,
    struct route_spec *r, struct problem *pb)
{
	const char *hosts, *port, *network, *svc_cluster;
	char *message = NULL;
	enum labels_result rc;

	memset(r, 0, sizeof(*r));
	memset(pb, 0, sizeof(*pb));

	svc_cluster = label_of(s, prefix, "service_cluster");
	if (svc_cluster == NULL)
		svc_cluster = "";
	if (strcmp(svc_cluster, cluster) != 0)
		return LABELS_IGNORED;

	hosts = label_of(s, prefix, "hosts");
	if (hosts == NULL && label_of(s, prefix, "default_backend") == NULL)
		return LABELS_IGNORED;
	if (hosts != NULL) {
		if (each_item(hosts, ',', one_host, r, &message) == -1) {
			route_spec_free(r);
			return fail(pb, s, prefix, "hosts", message);
		}
		if (r->nhosts == 0) {
			route_spec_free(r);
			return fail(pb, s, prefix, "hosts",
			    xstrdup("no host name in the list"));
		}
		sort_unique(r->hosts, &r->nhosts);
	}

	port = label_of(s, prefix, "port");
	if (port == NULL) {
		route_spec_free(r);
		return fail(pb, s, prefix, "port", xstrdup("missing: the "
		    "container port the service listens on is required"));
	}
	if (label_parse_port(port, &r->port) == -1) {
		route_spec_free(r);
		return fail(pb, s, prefix, "port", xasprintf("\"%s\" is not "
		    "a port number (1-65535)", esc(port)));
	}

	network = label_of(s, prefix, "network");
	if (network != NULL) {
		if (!valid_network_name(network)) {
			route_spec_free(r);
			return fail(pb, s, prefix, "network", xasprintf(
			    "\"%s\" is not a network name", esc(network)));
		}
		r->network = xstrdup(network);
	}
	if ((rc = parse_rest(s, prefix, r, pb)) != LABELS_ROUTED)
		route_spec_free(r);
	return rc;
}

/*
 * The secret names s's labels ask for (borrowed), when s is for this
 * agent; for the agent to read them before the desired state is built.
 */
int
labels_secrets(const struct service *s, const char *prefix,
    const char *cluster, const char **cert, const char **key)
{
	const char *c = label_of(s, prefix, "service_cluster");

	if (strcmp(c == NULL ? "" : c, cluster) != 0)
		return 0;
	*cert = label_of(s, prefix, "ssl_cert");
	*key = label_of(s, prefix, "ssl_key");
	return *cert != NULL && *key != NULL && name_valid(*cert, NAME_MAX_LEN) &&
	    name_valid(*key, NAME_MAX_LEN);
}

/*
 * Whether dovetail follows the service at all: it has the hosts or the
 * default_backend label, as the queries of a full read ask Docker for.
 */
int
labels_followed(const struct service *s, const char *prefix)
{
	return label_of(s, prefix, "hosts") != NULL ||
	    label_of(s, prefix, "default_backend") != NULL;
}
