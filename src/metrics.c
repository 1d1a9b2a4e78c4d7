/* SPDX-License-Identifier: ISC */
/*
 * The status page (/), /metrics (Prometheus text format) and /healthz
 * over HTTP, served by
 * libmicrohttpd in epoll mode: its one descriptor joins the agent's loop,
 * so the agent stays single-threaded.  The rendering functions are pure
 * and take the clock as arguments.
 */
#include "config.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "dovetail.h"

#define HEALTH_MAX_REFUSED 20
#define HEALTH_MAX_CERTS 20

const double metrics_lag_buckets[METRICS_LAG_BUCKETS] = {
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};

struct metrics_server {
	struct MHD_Daemon *daemon;
	const struct metrics *m;	/* borrowed */
	metrics_page page;		/* renders /, or NULL */
	void *page_arg;
};

void
metrics_observe_lag(struct metrics *m, double seconds)
{
	size_t i;

	for (i = 0; i < METRICS_LAG_BUCKETS; i++) {
		if (seconds <= metrics_lag_buckets[i])
			m->lag_buckets[i]++;
	}
	m->lag_count++;
	m->lag_sum += seconds;
}

static void
counter(struct buf *b, const char *name, const char *help,
    unsigned long long v)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
	    name, name, v);
}

static void
gauge(struct buf *b, const char *name, const char *help, double v)
{
	buf_addf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help,
	    name, name, v);
}

/* A label value: backslash, double quote and newline escaped. */
static void
label_value(struct buf *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			buf_addf(b, "\\%c", *s);
		else if (*s == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *s);
	}
}

/*
 * When each certificate dovetail serves expires, as a Unix time: alert
 * on "dovetail_certificate_expiry_timestamp_seconds - time() < 14 * 86400".
 * A certificate libcrypto could not read has no sample.
 */
static void
metrics_certs(struct buf *b, const struct metrics *m)
{
	const struct desired *d = m->desired == NULL ? NULL : *m->desired;
	size_t i;

	buf_adds(b, "# HELP dovetail_certificate_expiry_timestamp_seconds "
	    "Unix time at which each certificate served expires (notAfter)."
	    "\n# TYPE dovetail_certificate_expiry_timestamp_seconds gauge\n");
	for (i = 0; d != NULL && i < d->ncerts; i++) {
		if (!d->certs[i].info.parsed)
			continue;
		buf_adds(b, "dovetail_certificate_expiry_timestamp_seconds"
		    "{service=\"");
		label_value(b, d->certs[i].service);
		buf_adds(b, "\",file=\"");
		label_value(b, d->certs[i].file);
		buf_addf(b, "\"} %lld\n", d->certs[i].info.not_after);
	}
}

/* ACME's orders and certificates, while [acme] is on. */
static void
metrics_acme(struct buf *b, const struct metrics *m)
{
	int i;

	if (!m->acme_on)
		return;
	buf_adds(b, "# HELP dovetail_acme_orders_total ACME orders this "
	    "dovetail started, by result (locked: another dovetail "
	    "ordered).\n# TYPE dovetail_acme_orders_total counter\n");
	for (i = 0; i < ACME_ORDER_RESULTS; i++)
		buf_addf(b, "dovetail_acme_orders_total{result=\"%s\"} %llu\n",
		    acme_order_result_names[i], m->acme_orders[i]);
	buf_adds(b, "# HELP dovetail_acme_certificates Certificates ordered "
	    "for labelled services, by state.\n"
	    "# TYPE dovetail_acme_certificates gauge\n");
	for (i = 0; i < ACME_STATES; i++)
		buf_addf(b, "dovetail_acme_certificates{state=\"%s\"} %zu\n",
		    acme_state_names[i], m->acme_certs[i]);
}

/* The Prometheus text exposition of m. */
void
metrics_render(struct buf *b, const struct metrics *m)
{
	size_t i;

	buf_adds(b, "# HELP dovetail_reloads_total HAProxy reloads, by "
	    "result.\n# TYPE dovetail_reloads_total counter\n");
	buf_addf(b, "dovetail_reloads_total{result=\"ok\"} %llu\n",
	    m->reloads_ok);
	buf_addf(b, "dovetail_reloads_total{result=\"failed\"} %llu\n",
	    m->reloads_failed);
	buf_adds(b, "# HELP dovetail_runtime_commands_total HAProxy runtime "
	    "API commands, by result.\n# TYPE dovetail_runtime_commands_total "
	    "counter\n");
	buf_addf(b, "dovetail_runtime_commands_total{result=\"ok\"} %llu\n",
	    m->runtime_ok);
	buf_addf(b, "dovetail_runtime_commands_total{result=\"failed\"} "
	    "%llu\n", m->runtime_failed);
	counter(b, "dovetail_docker_errors_total", "Failed Docker API "
	    "requests and lost event streams.", m->docker_errors);
	counter(b, "dovetail_file_errors_total", "Files HAProxy loads that "
	    "could not be written (the previous ones stay).", m->file_errors);
	counter(b, "dovetail_docker_events_total", "Docker events received.",
	    m->docker_events);
	buf_adds(b, "# HELP dovetail_convergence_seconds From a Docker event "
	    "to the service converged in HAProxy.\n"
	    "# TYPE dovetail_convergence_seconds histogram\n");
	for (i = 0; i < METRICS_LAG_BUCKETS; i++)
		buf_addf(b, "dovetail_convergence_seconds_bucket{le=\"%g\"} "
		    "%llu\n", metrics_lag_buckets[i], m->lag_buckets[i]);
	buf_addf(b, "dovetail_convergence_seconds_bucket{le=\"+Inf\"} %llu\n",
	    m->lag_count);
	buf_addf(b, "dovetail_convergence_seconds_sum %.6f\n", m->lag_sum);
	buf_addf(b, "dovetail_convergence_seconds_count %llu\n", m->lag_count);
	gauge(b, "dovetail_services", "Services routed.", (double)m->services);
	gauge(b, "dovetail_routes", "Host names routed.", (double)m->routes);
	gauge(b, "dovetail_backends", "Backends in the HAProxy file.",
	    (double)m->backends);
	gauge(b, "dovetail_servers", "Servers (tasks) in rotation.",
	    (double)m->servers);
	gauge(b, "dovetail_label_problems", "Services skipped for a bad "
	    "label.", (double)m->problems);
	buf_adds(b, "# HELP dovetail_refused_services Services not routed, "
	    "by reason.\n# TYPE dovetail_refused_services gauge\n");
	buf_addf(b, "dovetail_refused_services{reason=\"label\"} %zu\n",
	    m->problems - m->refused_owner - m->refused_haproxy);
	buf_addf(b, "dovetail_refused_services{reason=\"host_owner\"} %zu\n",
	    m->refused_owner);
	buf_addf(b, "dovetail_refused_services{reason=\"haproxy\"} %zu\n",
	    m->refused_haproxy);
	gauge(b, "dovetail_last_sync_timestamp_seconds", "Unix time of the "
	    "last full read of the swarm.", (double)m->last_sync_unix);
	metrics_certs(b, m);
	metrics_acme(b, m);
}

/* A JSON string body: quotes and controls escaped, non-ASCII as '?'. */
static void
json_escape(struct buf *b, const char *s, size_t max)
{
	size_t i;
	unsigned char c;

	for (i = 0; s[i] != '\0' && i < max; i++) {
		c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			buf_addf(b, "\\%c", c);
		else if (c < 0x20)
			buf_addf(b, "\\u%04x", c);
		else if (c > 0x7e)
			buf_addc(b, '?');
		else
			buf_addc(b, (char)c);
	}
}

/* An error as a JSON string, or null, and the part's closing brace. */
static void
json_error(struct buf *b, const char *error)
{
	if (error == NULL)
		buf_adds(b, "null}");
	else {
		buf_addc(b, '"');
		json_escape(b, error, 400);
		buf_adds(b, "\"}");
	}
}

static void
health_part(struct buf *b, const char *name, long long ok_ms,
    const char *error, long long now_ms, unsigned window_ms, int *ok)
{
	int fresh = ok_ms > 0 && now_ms - ok_ms <= (long long)window_ms;

	if (!fresh)
		*ok = 0;
	buf_addf(b, "\"%s\":{\"ok\":%s,", name, fresh ? "true" : "false");
	if (ok_ms > 0)
		buf_addf(b, "\"last_ok_seconds_ago\":%.3f,",
		    (double)(now_ms - ok_ms) / 1000.0);
	else
		buf_adds(b, "\"last_ok_seconds_ago\":null,");
	buf_adds(b, "\"error\":");
	json_error(b, fresh ? NULL : error);
}

/*
 * The services not routed, which do not make dovetail unhealthy: how many,
 * how many for a host of another group, how many HAProxy refused, and the
 * first warnings.
 */
static void
health_refused(struct buf *b, const struct metrics *m)
{
	size_t i, n = m->nrefused == NULL ? 0 : *m->nrefused;

	buf_addf(b, ",\"refused\":{\"services\":%zu,\"host_owner\":%zu,"
	    "\"haproxy\":%zu,\"warnings\":[", n, m->refused_owner,
	    m->refused_haproxy);
	for (i = 0; i < n && i < HEALTH_MAX_REFUSED; i++) {
		buf_adds(b, i == 0 ? "\"" : ",\"");
		json_escape(b, (*m->refused)[i], 400);
		buf_addc(b, '"');
	}
	buf_adds(b, "]}");
}

/*
 * The certificates served that expire within cert_warn_days of now, or
 * have expired: named, not counted against dovetail's health.
 */
static void
health_certs(struct buf *b, const struct metrics *m, long long now)
{
	const struct desired *d = m->desired == NULL ? NULL : *m->desired;
	const struct dcert *c;
	enum cert_expiry e;
	size_t i, n = 0;

	buf_addf(b, ",\"certificates\":{\"served\":%zu,\"warn_days\":%u,"
	    "\"expiring\":[", d == NULL ? 0 : d->ncerts, m->cert_warn_days);
	for (i = 0; d != NULL && i < d->ncerts; i++) {
		c = &d->certs[i];
		e = tls_expiry(&c->info, now, m->cert_warn_days);
		if (e == CERT_VALID)
			continue;
		if (n++ == HEALTH_MAX_CERTS)
			break;
		buf_adds(b, n == 1 ? "{\"service\":\"" : ",{\"service\":\"");
		json_escape(b, c->service, 400);
		buf_adds(b, "\",\"file\":\"");
		json_escape(b, c->file, 400);
		buf_addf(b, "\",\"days_left\":%lld,\"expired\":%s}",
		    tls_days_left(c->info.not_after, now), e == CERT_EXPIRED ?
		    "true" : "false");
	}
	buf_adds(b, "]}");
}

/* ACME, while on: certificates by state and the failing orders. */
static void
health_acme(struct buf *b, const struct metrics *m)
{
	size_t i;
	int s;

	if (!m->acme_on)
		return;
	buf_adds(b, ",\"acme\":{");
	for (s = 0; s < ACME_STATES; s++)
		buf_addf(b, "\"%s\":%zu,", acme_state_names[s],
		    m->acme_certs[s]);
	buf_adds(b, "\"failures\":[");
	for (i = 0; i < m->nacme_failing && i < HEALTH_MAX_CERTS; i++) {
		buf_adds(b, i == 0 ? "\"" : ",\"");
		json_escape(b, m->acme_failing[i], 600);
		buf_addc(b, '"');
	}
	buf_adds(b, "]}");
}

/*
 * Whether the files HAProxy loads were written at the last try: a full
 * disk leaves HAProxy on the previous file, which no reload can change.
 */
static void
health_files(struct buf *b, const struct metrics *m, int *ok)
{
	const char *error = m->file_error == NULL ? NULL : *m->file_error;

	if (error != NULL)
		*ok = 0;
	buf_addf(b, ",\"files\":{\"ok\":%s,\"error\":",
	    error == NULL ? "true" : "false");
	json_error(b, error);
}

/*
 * The /healthz body; *ok is whether Docker and HAProxy were both reached
 * within window_ms of now_ms (monotonic).  now_unix dates certificates.
 */
void
health_render(struct buf *b, const struct metrics *m, long long now_ms,
    long long now_unix, unsigned window_ms, int *ok)
{
	*ok = 1;
	buf_addc(b, '{');
	health_part(b, "docker", m->docker_ok_ms,
	    m->docker_error == NULL ? NULL : *m->docker_error, now_ms,
	    window_ms, ok);
	buf_addc(b, ',');
	health_part(b, "haproxy", m->haproxy_ok_ms,
	    m->haproxy_error == NULL ? NULL : *m->haproxy_error, now_ms,
	    window_ms, ok);
	health_files(b, m, ok);
	health_refused(b, m);
	health_certs(b, m, now_unix);
	health_acme(b, m);
	buf_addf(b, ",\"status\":\"%s\"}\n", *ok ? "ok" : "unhealthy");
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned status, const char *type,
    struct buf *body)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	r = MHD_create_response_from_buffer(body->len, body->data,
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	/* The page holds text from labels: no script, no fetch, no frame. */
	if (strncmp(type, "text/html", 9) == 0) {
		MHD_add_response_header(r, "Content-Security-Policy",
		    "default-src 'none'; style-src 'unsafe-inline'; "
		    "frame-ancestors 'none'; form-action 'none'");
		MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	}
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **state)
{
	struct metrics_server *s = cls;
	struct buf body;
	enum MHD_Result rc;
	int ok;

	(void)version;
	(void)upload;
	if (*state == NULL) {
		/* First call: headers only.  Answer on the second. */
		*state = s;
		return MHD_YES;
	}
	if (*upload_size != 0) {
		*upload_size = 0;
		return MHD_YES;
	}
	buf_init(&body);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		buf_adds(&body, "only GET and HEAD\n");
		rc = reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", &body);
	} else if (strcmp(url, "/") == 0 && s->page != NULL) {
		s->page(s->page_arg, &body);
		rc = reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", &body);
	} else if (strcmp(url, "/metrics") == 0) {
		metrics_render(&body, s->m);
		rc = reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", &body);
	} else if (strcmp(url, "/healthz") == 0) {
		health_render(&body, s->m, mono_ms(), (long long)time(NULL),
		    s->m->health_window_ms, &ok);
		rc = reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
		    "application/json", &body);
	} else {
		buf_adds(&body, "not found: try /, /metrics or /healthz\n");
		rc = reply(c, MHD_HTTP_NOT_FOUND, "text/plain", &body);
	}
	buf_free(&body);
	return rc;
}

/*
 * Listens on bind ("ADDR:PORT", as config_check_bind accepts it); page
 * (may be NULL) renders the status page at / when it is asked for.
 * Returns the server (new), or NULL with *cause.
 */
struct metrics_server *
metrics_listen(const char *bind, const struct metrics *m, metrics_page page,
    void *page_arg, char **cause)
{
	struct metrics_server *s;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char host[64];
	const char *colon = strrchr(bind, ':');
	unsigned flags = MHD_USE_EPOLL;
	size_t len;
	int port;

	if (colon == NULL || config_check_bind(bind) == -1) {
		*cause = xasprintf("listen \"%s\" is not ADDR:PORT", esc(bind));
		return NULL;
	}
	len = (size_t)(colon - bind);
	memcpy(host, bind, len);
	host[len] = '\0';
	port = atoi(colon + 1);
	memset(&ss, 0, sizeof(ss));
	if (len == 0 || strcmp(host, "*") == 0) {
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
	} else {
		inet_pton(AF_INET6, host, &sin6->sin6_addr);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	}
	s = xcalloc(1, sizeof(*s));
	s->m = m;
	s->page = page;
	s->page_arg = page_arg;
	s->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL,
	    on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_END);
	if (s->daemon == NULL) {
		*cause = xasprintf("cannot listen on %s (address in use, or "
		    "not permitted)", bind);
		free(s);
		return NULL;
	}
	return s;
}

/* The one descriptor to wait on for the server, or -1. */
int
metrics_fd(const struct metrics_server *s)
{
	const union MHD_DaemonInfo *info;

	if (s == NULL)
		return -1;
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	return info == NULL ? -1 : info->epoll_fd;
}

/* Serves whatever is ready, without blocking. */
void
metrics_run(struct metrics_server *s)
{
	if (s != NULL)
		MHD_run(s->daemon);
}

void
metrics_stop(struct metrics_server *s)
{
	if (s == NULL)
		return;
	MHD_stop_daemon(s->daemon);
	free(s);
}
