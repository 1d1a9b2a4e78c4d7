/* SPDX-License-Identifier: ISC */
/*
 * The HAProxy file dovetail owns and its host map, rendered from the
 * desired state.  Pure: the same desired state always gives the same
 * bytes, which is what the golden tests and the reload decision rely on.
 *
 * Hosts route through a map (one lookup, editable at run time) rather
 * than a chain of ACLs, so adding a host to an existing backend is a map
 * edit and thousands of hosts cost nothing per request.
 */
#include "config.h"

#include <string.h>

#include "dovetail.h"

#define SERVER_LINE "\tserver "

static const char no_route_page[] =
    "<!DOCTYPE html><html><head><title>503 Service Unavailable</title>"
    "</head><body><h1>503 Service Unavailable</h1><p>No service is "
    "routed for this host.</p></body></html>";

/* "ADDR:PORT" as HAProxy reads it, with IPv6 addresses in brackets. */
void
render_server_addr(struct buf *b, const struct dserver *s)
{
	if (strchr(s->addr, ':') != NULL)
		buf_addf(b, "[%s]:%u", s->addr, s->port);
	else
		buf_addf(b, "%s:%u", s->addr, s->port);
}

/*
 * The options every server of a backend has.  A check takes a dead task
 * out after two failures even before dovetail hears of it; a refused
 * connection takes it out at once (observe), and the request goes to
 * another task (retries with redispatch).  Passthrough tasks are checked
 * with a TLS handshake.
 */
static void
render_server_options(struct buf *b, const struct desired *d,
    const struct dbackend *be)
{
	buf_addf(b, DT_SERVER_OPTIONS_FMT, d->check_inter);
	if (be->tcp)
		buf_adds(b, " check-ssl verify none");
}

/* A server's own part: its address, and its weight when it has one. */
static void
render_server_own(struct buf *b, const struct dserver *s)
{
	render_server_addr(b, s);
	if (s->weight >= 0)
		buf_addf(b, " weight %d", s->weight);
}

/*
 * The words of "add server" after the server's name.  "add server"
 * applies no default-server, so the backend's options are spelled out:
 * the server line of the file and its default-server line together say
 * the same, in the same order.
 */
void
render_server_args(struct buf *b, const struct desired *d,
    const struct dbackend *be, const struct dserver *s)
{
	render_server_own(b, s);
	buf_addc(b, ' ');
	render_server_options(b, d, be);
}

/* "{ path /a /b } || { path_beg /a/ /b/ }": the paths and what is below. */
static void
render_path_acl(struct buf *b, char *const *paths, size_t n)
{
	size_t i;

	buf_adds(b, "{ path");
	for (i = 0; i < n; i++)
		buf_addf(b, " %s", paths[i]);
	buf_adds(b, " } || { path_beg");
	for (i = 0; i < n; i++)
		buf_addf(b, " %s/", paths[i]);
	buf_adds(b, " }");
}

static void
render_balance(struct buf *b, const struct dbackend *be)
{
	if (be->sticky_cookie != NULL)
		buf_addf(b, "\tbalance hash req.cook(%s)\n\thash-type "
		    "consistent\n", be->sticky_cookie);
	else if (be->ip_hash)
		buf_adds(b, "\tbalance source\n\thash-type consistent\n");
	else
		buf_adds(b, "\tbalance roundrobin\n");
}

static void
render_backend(struct buf *b, const struct desired *d,
    const struct dbackend *be, const struct render_opts *o)
{
	size_t i;

	buf_addf(b, "\nbackend %s\n", be->name);
	buf_adds(b, "\t# services:");
	for (i = 0; i < be->nservices; i++)
		buf_addf(b, " %s", be->services[i]);
	buf_addf(b, "\n\tmode %s\n", be->tcp ? "tcp" : "http");
	render_balance(b, be);
	if (be->tcp) {
		buf_adds(b, "\toption redispatch 1\n\tretries 3\n");
		goto servers;
	}
	/*
	 * A task is alive when it answers HTTP at all: any status will do,
	 * so an app whose "/" is a 404 stays in.  A TCP check would not do:
	 * a port proxy (docker-proxy) accepts connections for dead tasks.
	 * A range of statuses rather than a regular expression, which HAProxy
	 * would compile for every backend.
	 */
	buf_adds(b, "\toption httpchk\n\thttp-check send meth HEAD uri /\n"
	    "\thttp-check expect status 100-599\n");
	/*
	 * A request that could not reach a task goes to another one.  Only
	 * safe methods are retried after they reached a task (the task died
	 * before answering); a POST is retried only when its connection
	 * failed, so it never runs twice.
	 */
	buf_adds(b, "\toption redispatch 1\n\tretries 3\n"
	    "\tretry-on conn-failure empty-response response-timeout\n"
	    "\thttp-request disable-l7-retry if !METH_GET !METH_HEAD "
	    "!METH_OPTIONS\n");
	if (be->nws > 0) {
		buf_addf(b, "\thttp-request set-timeout tunnel %s if ",
		    o->websocket_timeout);
		render_path_acl(b, be->ws_paths, be->nws);
		buf_addc(b, '\n');
	}
	if (be->strip != NULL) {
		/* "/app" -> "/app/"; "/app/x" reaches the app as "/x". */
		buf_addf(b, "\thttp-request redirect code 301 location %s/ "
		    "if { path %s } !{ query -m found }\n", be->strip,
		    be->strip);
		buf_addf(b, "\thttp-request redirect code 301 location "
		    "%s/?%%[query] if { path %s } { query -m found }\n",
		    be->strip, be->strip);
		buf_addf(b, "\thttp-request set-path %%[path,bytes(%zu)] if "
		    "{ path_beg %s/ }\n", strlen(be->strip), be->strip);
	}
servers:
	/*
	 * The options once, as the backend's default-server, rather than on
	 * each of its server lines: HAProxy reads a file of 10,000 servers a
	 * third faster (haproxy -c, and every new worker at a reload).
	 * Servers added at run time keep the options they were added with
	 * until a reload; the default-server line is in the skeleton, so
	 * other options (a new check spacing, a new dovetail) reload once.
	 */
	buf_adds(b, "\tdefault-server ");
	render_server_options(b, d, be);
	buf_addc(b, '\n');
	for (i = 0; i < be->nservers; i++) {
		buf_addf(b, SERVER_LINE "%s ", be->servers[i].name);
		render_server_own(b, &be->servers[i]);
		buf_addc(b, '\n');
	}
}

/*
 * What both HTTP frontends do: redirects, the request ID and response
 * headers, then the route by host and path (longest prefix: map_beg
 * looks up a prefix tree), else the default service, else the 503 page.
 *
 * Every rule costs every request (bench/dataplane counts HAProxy's
 * instructions), so a frontend holds only what the routes use: the
 * redirect lookup only while some host is redirected from this scheme,
 * and the default service as default_backend rather than a second
 * lookup.  The route is one expression, the key "host/" or, while some
 * service has a context root, "host/path/", with a variable for the path
 * (concat takes nothing else).  A lookup that finds nothing gives
 * no backend name, and HAProxy then uses default_backend.  These rules
 * changing means a reload, as any other change to a frontend does.
 */
static void
render_http_rules(struct buf *b, const struct desired *d,
    const struct render_opts *o, const char *scheme)
{
	const char *host = "req.hdr(host),field(1,:),lower";

	buf_adds(b, "\toption forwardfor\n");
	/*
	 * ACME's HTTP-01 challenges, answered by HAProxy itself from a map
	 * the runtime API edits, before any redirect (ssl_redirect too).
	 */
	if (d->acme_on && strcmp(scheme, "http") == 0) {
		buf_addf(b, "\thttp-request set-var(txn.dovetail_acme) "
		    "path,field(4,/),map(%s) if { path_beg "
		    "/.well-known/acme-challenge/ }\n",
		    o->map_paths[MAP_ACME]);
		buf_adds(b, "\thttp-request return status 200 content-type "
		    "text/plain lf-string \"%[var(txn.dovetail_acme)]\" if "
		    "{ var(txn.dovetail_acme) -m found }\n");
	}
	if (desired_redirects_from(d, scheme)) {
		buf_addf(b, "\thttp-request set-var(txn.dovetail_host) %s\n",
		    host);
		buf_addf(b, "\thttp-request set-var(txn.dovetail_redirect) "
		    "str(%s://),concat(,txn.dovetail_host,),map(%s)\n", scheme,
		    o->map_paths[MAP_REDIRECTS]);
		buf_adds(b, "\thttp-request redirect code 302 location "
		    "%[var(txn.dovetail_redirect)]%[pathq] if "
		    "{ var(txn.dovetail_redirect) -m found }\n");
		host = "var(txn.dovetail_host)";
	}
	buf_addf(b, "\thttp-request set-header X-Forwarded-Proto %s\n",
	    scheme);
	if (o->response_headers) {
		buf_adds(b, "\thttp-request set-header X-Request-ID "
		    "%[uuid(4)] unless { req.hdr(x-request-id) -m found }\n"
		    "\thttp-request set-var(txn.dovetail_request_id) "
		    "req.hdr(x-request-id)\n"
		    "\thttp-response set-header x-request-id "
		    "%[var(txn.dovetail_request_id)]\n"
		    "\thttp-response set-header x-proxy-id %[hostname]\n"
		    "\thttp-response set-header x-server-info \""
		    PACKAGE_NAME "/" PACKAGE_VERSION "\"\n"
		    "\thttp-response set-header x-upstream-addr "
		    "%[bc_dst]:%[bc_dst_port] if { bc_dst -m found }\n"
		    "\thttp-response set-header x-upstream-response-time "
		    "%Tr\n");
	}
	if (desired_context_roots(d)) {
		buf_adds(b, "\thttp-request set-var(txn.dovetail_path) "
		    "path\n");
		buf_addf(b, "\tuse_backend %%[%s,concat(,txn.dovetail_path,/),"
		    "map_beg(%s)]\n", host, o->map_paths[MAP_ROUTES]);
	} else
		buf_addf(b, "\tuse_backend %%[%s,concat(/),map_beg(%s)]\n",
		    host, o->map_paths[MAP_ROUTES]);
	buf_addf(b, "\tdefault_backend %s\n", d->default_backend != NULL ?
	    d->default_backend : DT_BACKEND_NO_ROUTE);
}

/*
 * HTTPS.  Without passthrough services, the HTTPS port is bound by the
 * frontend that terminates TLS (certificates from the crt-list, picked
 * by SNI), as a hand-written file would do.  With them, one port serves
 * both: a TCP frontend reads the SNI, sends passthrough hosts to their
 * tasks as they are and the rest to the terminating frontend behind a
 * local socket, with the client's address carried over by the PROXY
 * protocol.  That hop costs every terminated request (bench/dataplane),
 * so it is there only while a passthrough service is; a passthrough
 * backend coming or going reloads anyway.
 */
static void
render_https(struct buf *b, const struct desired *d,
    const struct render_opts *o)
{
	if (!desired_passthrough(d)) {
		buf_adds(b, "\nfrontend " DT_FRONTEND_HTTPS "\n\tmode http\n");
		buf_addf(b, "\tbind %s ssl crt %s crt-list %s\n", o->https_bind,
		    o->default_cert, o->crt_list);
		render_http_rules(b, d, o, "https");
		return;
	}
	buf_adds(b, "\nfrontend " DT_FRONTEND_HTTPS "\n\tmode tcp\n");
	buf_addf(b, "\tbind %s\n", o->https_bind);
	/* The base file's defaults are HTTP ones: say what fits TCP. */
	buf_adds(b, "\toption tcplog\n\tno option idle-close-on-response\n");
	/*
	 * "accept" ends the content rules: the SNI is read before it, and
	 * its condition waits for the whole ClientHello.
	 */
	buf_adds(b, "\ttcp-request inspect-delay 5s\n"
	    "\ttcp-request content set-var(txn.dovetail_sni) "
	    "req.ssl_sni,lower if { req.ssl_hello_type 1 }\n"
	    "\ttcp-request content accept if { req.ssl_hello_type 1 }\n");
	buf_addf(b, "\tuse_backend %%[var(txn.dovetail_sni),map(%s)] if "
	    "{ var(txn.dovetail_sni),map(%s) -m found }\n",
	    o->map_paths[MAP_SNI], o->map_paths[MAP_SNI]);
	if (d->ncerts == 0) {
		buf_adds(b, "\ttcp-request content reject\n");
		return;
	}
	buf_adds(b, "\tdefault_backend " DT_BACKEND_TERMINATE "\n");
	buf_adds(b, "\nbackend " DT_BACKEND_TERMINATE "\n\tmode tcp\n");
	buf_addf(b, "\tserver terminate %s send-proxy-v2\n", o->tls_socket);
	buf_adds(b, "\nfrontend " DT_FRONTEND_TLS "\n\tmode http\n");
	buf_addf(b, "\tbind %s accept-proxy ssl crt %s crt-list %s\n",
	    o->tls_socket, o->default_cert, o->crt_list);
	render_http_rules(b, d, o, "https");
}

void
render_config(struct buf *b, const struct desired *d,
    const struct render_opts *o)
{
	size_t i;

	buf_adds(b, "# Generated by " PACKAGE_NAME " " PACKAGE_VERSION
	    ". Do not edit: dovetail rewrites this file.\n");
	/*
	 * Nothing here may depend on the hosts or servers: everything
	 * outside the server lines is the skeleton, and a skeleton change
	 * means a reload.  The frontends depend only on which kinds of
	 * routes exist (redirects, passthrough, certificates) and on the
	 * default service.
	 */

	buf_adds(b, "\nfrontend " DT_FRONTEND_HTTP "\n\tmode http\n");
	buf_addf(b, "\tbind %s\n", o->http_bind);
	render_http_rules(b, d, o, "http");
	if (desired_https(d))
		render_https(b, d, o);

	buf_adds(b, "\nbackend " DT_BACKEND_NO_ROUTE "\n\tmode http\n");
	buf_addf(b, "\thttp-request return status 503 content-type "
	    "\"text/html\" string \"%s\"\n", no_route_page);

	for (i = 0; i < d->nbackends; i++)
		render_backend(b, d, &d->backends[i], o);
}

void
render_map(struct buf *b, const struct desired *d, enum map_kind m)
{
	size_t i;

	buf_addf(b, "# Generated by " PACKAGE_NAME ": %s\n", map_suffixes[m]);
	for (i = 0; i < d->nmap[m]; i++)
		buf_addf(b, "%s %s\n", d->maps[m][i].key,
		    d->maps[m][i].value);
}

/* The crt-list: each service's certificate with its hosts as SNI filters. */
void
render_crt_list(struct buf *b, const struct desired *d, const char *dir)
{
	size_t i, j;

	buf_adds(b, "# Generated by " PACKAGE_NAME ": certificates\n");
	for (i = 0; i < d->ncerts; i++) {
		buf_addf(b, "%s/%s", dir, d->certs[i].file);
		for (j = 0; j < d->certs[i].nsnis; j++)
			buf_addf(b, " %s", d->certs[i].snis[j]);
		buf_addc(b, '\n');
	}
}

/*
 * The file without its server lines: what a change needs a reload for.
 * Servers come and go through the runtime API; everything else does not.
 */
void
render_skeleton(struct buf *b, const char *text)
{
	const char *line, *nl;
	size_t len;

	for (line = text; *line != '\0'; line = nl) {
		nl = strchr(line, '\n');
		nl = nl == NULL ? line + strlen(line) : nl + 1;
		len = (size_t)(nl - line);
		if (len >= sizeof(SERVER_LINE) - 1 &&
		    memcmp(line, SERVER_LINE, sizeof(SERVER_LINE) - 1) == 0)
			continue;
		buf_add(b, line, len);
	}
}

/*
 * The line number of the first "default-server" line of an HAProxy file,
 * or 0.  A base file's defaults reach the servers written in dovetail's
 * file but never those added at run time ("add server" applies no
 * default-server), so the two would differ: the agent warns.
 */
unsigned
render_default_server_line(const char *text)
{
	const char *p = text;
	unsigned line = 1;
	size_t n;

	while (*p != '\0') {
		p += strspn(p, " \t");
		n = strcspn(p, " \t\n");
		if (n == 14 && strncmp(p, "default-server", 14) == 0)
			return line;
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
		line++;
	}
	return 0;
}

/*
 * The services of the backend of text that holds line (1-based): the
 * words of its "# services:" line, new, or NULL when the line is not in
 * one of dovetail's service backends.
 */
char *
render_services_at(const char *text, unsigned line)
{
	const char *p = text, *start = NULL, *svc, *nl;
	unsigned n;

	for (n = 1; *p != '\0'; n++) {
		/* A section starts at a line that is not indented. */
		if (strncmp(p, "backend ", 8) == 0)
			start = p;
		else if (*p != '\t' && *p != ' ')
			start = NULL;
		if (n == line)
			break;
		if ((p = strchr(p, '\n')) == NULL)
			return NULL;
		p++;
	}
	if (n != line || *p == '\0' || start == NULL)
		return NULL;
	svc = strstr(start, "\n\t# services: ");
	nl = strchr(start, '\n');
	/* The comment is the section's second line. */
	if (svc == NULL || svc != nl)
		return NULL;
	svc += strlen("\n\t# services: ");
	nl = strchr(svc, '\n');
	return nl == NULL ? xstrdup(svc) : xstrndup(svc, (size_t)(nl - svc));
}

/*
 * The backends a rendered file declares, sorted (new array of new
 * strings, *n of them).  Pure.
 */
char **
render_backends(const char *text, size_t *n)
{
	const char *p = text, *end;
	char **names = NULL;
	size_t cap = 0;

	*n = 0;
	while (p != NULL && *p != '\0') {
		if (strncmp(p, "backend ", 8) == 0) {
			p += 8;
			end = p + strcspn(p, " \t\n");
			if (*n == cap) {
				cap = cap == 0 ? 16 : cap * 2;
				names = xreallocarray(names, cap,
				    sizeof(char *));
			}
			names[(*n)++] = xstrndup(p, (size_t)(end - p));
		}
		if ((p = strchr(p, '\n')) != NULL)
			p++;
	}
	sort_array(names, *n, sizeof(char *), str_cmp_ptr);
	return names;
}
