/* SPDX-License-Identifier: ISC */
/*
 * The Docker Engine API over libcurl: a UNIX socket, plain TCP, or TCP
 * with TLS.  Requests for state are synchronous with a time limit; the
 * event stream is one long transfer on a multi handle that the agent's
 * loop waits on, together with its own descriptor.
 */
#include "config.h"

#include <curl/curl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

/* Newest API version dovetail was written against; 1.24 added swarm. */
#define DT_API_MAX_MAJOR 1
#define DT_API_MAX_MINOR 45
#define DT_API_MIN_MINOR 24
#define DT_CONNECT_TIMEOUT_MS 3000L
#define DT_EVENTS_MAX_LINE (1024 * 1024)

struct docker {
	const struct config *cfg;	/* borrowed */
	char *endpoint;		/* the URL as configured, for logs */
	char *base;		/* scheme://host[:port] */
	char *unix_path;	/* NULL unless unix:// */
	int tls;
	char version[16];	/* "v1.41" */
	CURL *easy;
	CURLM *multi;
	CURL *events;
	struct buf events_buf;
	int events_running;
	char errbuf[CURL_ERROR_SIZE];
};

struct docker *
docker_new(const struct config *cfg)
{
	struct docker *d;

	d = xcalloc(1, sizeof(*d));
	d->cfg = cfg;
	buf_init(&d->events_buf);
	d->multi = curl_multi_init();
	if (d->multi == NULL)
		fatalx("curl_multi_init failed");
	return d;
}

static void
clear_endpoint(struct docker *d)
{
	docker_events_close(d);
	if (d->easy != NULL)
		curl_easy_cleanup(d->easy);
	d->easy = NULL;
	free(d->endpoint);
	free(d->base);
	free(d->unix_path);
	d->endpoint = d->base = d->unix_path = NULL;
	d->version[0] = '\0';
}

void
docker_free(struct docker *d)
{
	if (d == NULL)
		return;
	clear_endpoint(d);
	curl_multi_cleanup(d->multi);
	buf_free(&d->events_buf);
	free(d);
}

const char *
docker_endpoint(const struct docker *d)
{
	return d->endpoint == NULL ? "(none)" : d->endpoint;
}

static void
set_endpoint(struct docker *d, const char *url)
{
	const struct config *c = d->cfg;

	clear_endpoint(d);
	d->endpoint = xstrdup(url);
	d->tls = 0;
	if (strncmp(url, "unix://", 7) == 0) {
		d->unix_path = xstrdup(url + 7);
		d->base = xstrdup("http://localhost");
	} else if (strncmp(url, "tcp://", 6) == 0) {
		d->tls = *c->docker_tls_ca != '\0' ||
		    *c->docker_tls_cert != '\0';
		d->base = xasprintf("%s://%s", d->tls ? "https" : "http",
		    url + 6);
	} else {
		d->tls = strncmp(url, "https://", 8) == 0;
		d->base = xstrdup(url);
	}
	/* No trailing slash: paths start with one. */
	while (strlen(d->base) > 0 && d->base[strlen(d->base) - 1] == '/')
		d->base[strlen(d->base) - 1] = '\0';
}

/* A reply being read, and how large it may grow. */
struct reply {
	struct buf *out;
	size_t max;
	int over;
};

static size_t
write_buf(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct reply *r = user;

	if (r->out->len + size * nmemb > r->max) {
		r->over = 1;
		return 0;	/* curl ends the transfer */
	}
	buf_add(r->out, ptr, size * nmemb);
	return size * nmemb;
}

static void
setup_handle(struct docker *d, CURL *h, const char *url, long timeout_ms)
{
	const struct config *c = d->cfg;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, DT_CONNECT_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, d->errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, PACKAGE_NAME "/"
	    PACKAGE_VERSION);
	if (d->unix_path != NULL)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, d->unix_path);
	if (d->tls) {
		if (*c->docker_tls_ca != '\0')
			curl_easy_setopt(h, CURLOPT_CAINFO, c->docker_tls_ca);
		if (*c->docker_tls_cert != '\0')
			curl_easy_setopt(h, CURLOPT_SSLCERT,
			    c->docker_tls_cert);
		if (*c->docker_tls_key != '\0')
			curl_easy_setopt(h, CURLOPT_SSLKEY, c->docker_tls_key);
	}
}

/*
 * A request to base + path (path carries its version prefix, if any):
 * body is sent as JSON when not NULL.  -1 with *cause when there is no
 * answer; else 0 with the status, and the reply in out.
 */
static int
raw_request(struct docker *d, const char *method, const char *path,
    const char *body, struct buf *out, long *status, char **cause)
{
	struct curl_slist *headers = NULL;
	CURLcode rc;
	char *url;
	struct reply reply;

	if (d->easy == NULL && (d->easy = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	curl_easy_reset(d->easy);
	url = xasprintf("%s%s", d->base, path);
	log_trace("docker: %s %s", method, url);
	setup_handle(d, d->easy, url, (long)d->cfg->docker_timeout_ms);
	if (strcmp(method, "GET") != 0)
		curl_easy_setopt(d->easy, CURLOPT_CUSTOMREQUEST, method);
	if (body != NULL) {
		headers = curl_slist_append(NULL,
		    "Content-Type: application/json");
		if (headers == NULL)
			fatalx("curl_slist_append failed");
		curl_easy_setopt(d->easy, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(d->easy, CURLOPT_POSTFIELDS, body);
	}
	reply.out = out;
	reply.max = (size_t)d->cfg->docker_max_reply_mb << 20;
	reply.over = 0;
	curl_easy_setopt(d->easy, CURLOPT_WRITEFUNCTION, write_buf);
	curl_easy_setopt(d->easy, CURLOPT_WRITEDATA, &reply);
	d->errbuf[0] = '\0';
	rc = curl_easy_perform(d->easy);
	curl_slist_free_all(headers);
	free(url);
	if (reply.over) {
		*cause = xasprintf("%s: a reply larger than %u MB (max_reply)",
		    d->endpoint, d->cfg->docker_max_reply_mb);
		return -1;
	}
	if (rc != CURLE_OK) {
		*cause = xasprintf("%s: %s", d->endpoint, d->errbuf[0] != '\0' ?
		    d->errbuf : curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

/* The query "filters={KEY:[VALUE]}", URL-escaped (new). */
char *
docker_filter(const char *key, const char *value)
{
	char *json, *escaped, *q;

	json = xasprintf("{\"%s\":[\"%s\"]}", key, value);
	escaped = curl_easy_escape(NULL, json, 0);
	if (escaped == NULL)
		fatalx("curl_easy_escape failed");
	q = xasprintf("filters=%s", escaped);
	curl_free(escaped);
	free(json);
	return q;
}

/* The cause of an error reply (new): Docker's message, if it gave one. */
static char *
status_cause(struct docker *d, long status, const struct buf *out)
{
	char *message, *cause;

	if (out->data != NULL &&
	    swarm_parse_error(out->data, out->len, &message) == 0) {
		cause = xasprintf("%s: HTTP %ld: %s", d->endpoint, status,
		    esc(message));
		free(message);
		return cause;
	}
	return xasprintf("%s: HTTP %ld", d->endpoint, status);
}

/* GET base + path: -1 with *cause unless the answer is 200. */
static int
raw_get(struct docker *d, const char *path, struct buf *out, char **cause)
{
	long status = 0;

	if (raw_request(d, "GET", path, NULL, out, &status, cause) == -1)
		return -1;
	if (status != 200) {
		*cause = status_cause(d, status, out);
		return -1;
	}
	return 0;
}

/*
 * A write (POST, DELETE) to the versioned path.  Returns the HTTP status
 * (the caller decides which it expects), or -1 with *cause when Docker
 * did not answer; for any status but 2xx, *cause says Docker's message.
 */
long
docker_send(struct docker *d, const char *method, const char *path,
    const char *body, struct buf *out, char **cause)
{
	long status = 0;
	char *full;
	int rc;

	*cause = NULL;
	if (d->base == NULL) {
		*cause = xstrdup("not connected to Docker");
		return -1;
	}
	full = xasprintf("/%s%s", d->version, path);
	rc = raw_request(d, method, full, body, out, &status, cause);
	free(full);
	if (rc == -1)
		return -1;
	if (status < 200 || status > 299)
		*cause = status_cause(d, status, out);
	return status;
}

int
docker_get(struct docker *d, const char *path, struct buf *out, char **cause)
{
	char *full;
	int rc;

	if (d->base == NULL) {
		*cause = xstrdup("not connected to Docker");
		return -1;
	}
	full = xasprintf("/%s%s", d->version, path);
	rc = raw_get(d, full, out, cause);
	free(full);
	return rc;
}

static int
parse_api(const char *s, int *major, int *minor)
{
	char *end;
	long a, b;

	a = strtol(s, &end, 10);
	if (end == s || *end != '.')
		return -1;
	s = end + 1;
	b = strtol(s, &end, 10);
	if (end == s || *end != '\0' || a < 0 || b < 0 || a > 99 || b > 999)
		return -1;
	*major = (int)a;
	*minor = (int)b;
	return 0;
}

/*
 * Picks the API version: the engine's own if dovetail knows it, else the
 * newest dovetail knows, as long as the engine still accepts it.
 */
static int
negotiate(struct docker *d, const char *api, const char *min_api,
    char **cause)
{
	int maj, min, mmaj, mmin;

	if (parse_api(api, &maj, &min) == -1 ||
	    parse_api(min_api, &mmaj, &mmin) == -1) {
		*cause = xasprintf("%s: unreadable API version \"%s\"",
		    d->endpoint, esc(api));
		return -1;
	}
	if (maj > DT_API_MAX_MAJOR || (maj == DT_API_MAX_MAJOR &&
	    min > DT_API_MAX_MINOR)) {
		maj = DT_API_MAX_MAJOR;
		min = DT_API_MAX_MINOR;
	}
	if (maj < mmaj || (maj == mmaj && min < mmin)) {
		*cause = xasprintf("%s: the engine needs API %s or newer; "
		    "dovetail speaks up to %d.%d", d->endpoint, esc(min_api),
		    DT_API_MAX_MAJOR, DT_API_MAX_MINOR);
		return -1;
	}
	if (maj < 1 || (maj == 1 && min < DT_API_MIN_MINOR)) {
		*cause = xasprintf("%s: API %s is too old for swarm mode",
		    d->endpoint, esc(api));
		return -1;
	}
	snprintf(d->version, sizeof(d->version), "v%d.%d", maj, min);
	return 0;
}

static int
try_endpoint(struct docker *d, const char *url, char **cause)
{
	struct buf out;
	char *api = NULL, *min_api = NULL, *detail = NULL;
	int manager, rc = -1;

	set_endpoint(d, url);
	buf_init(&out);
	if (raw_get(d, "/version", &out, cause) == -1)
		goto done;
	if (swarm_parse_version(out.data, out.len, &api, &min_api,
	    cause) == -1)
		goto done;
	if (negotiate(d, api, min_api, cause) == -1)
		goto done;
	buf_reset(&out);
	if (docker_get(d, "/info", &out, cause) == -1)
		goto done;
	if (swarm_parse_info(out.data, out.len, &manager, &detail,
	    cause) == -1)
		goto done;
	if (!manager) {
		*cause = xasprintf("%s is not a swarm manager (swarm state: "
		    "%s); point [docker] url at a manager", d->endpoint,
		    esc(detail));
		goto done;
	}
	rc = 0;
done:
	free(api);
	free(min_api);
	free(detail);
	buf_free(&out);
	if (rc == -1)
		clear_endpoint(d);
	return rc;
}

/*
 * Connects to the first endpoint of the comma list that answers and is a
 * swarm manager.  On failure *cause lists every endpoint's reason.
 */
int
docker_connect(struct docker *d, char **cause)
{
	struct buf reasons;
	char *urls, *item, *next, *why;

	buf_init(&reasons);
	urls = xstrdup(d->cfg->docker_url);
	for (item = urls; item != NULL; item = next) {
		next = strchr(item, ',');
		if (next != NULL)
			*next++ = '\0';
		while (*item == ' ')
			item++;
		if (*item == '\0')
			continue;
		if (try_endpoint(d, item, &why) == 0) {
			free(urls);
			buf_free(&reasons);
			return 0;
		}
		if (reasons.len > 0)
			buf_adds(&reasons, "; ");
		buf_adds(&reasons, why);
		free(why);
	}
	free(urls);
	*cause = buf_steal(&reasons);
	return -1;
}

/*
 * Appends len bytes of the event stream to b.  Returns -1 when b holds
 * more than a line may be without a newline: that is not an event
 * stream.  Pure, for the tests and the fuzzer.
 */
int
docker_events_feed(struct buf *b, const char *data, size_t len)
{
	buf_add(b, data, len);
	if (b->len > DT_EVENTS_MAX_LINE &&
	    memchr(b->data, '\n', b->len) == NULL)
		return -1;
	return 0;
}

/*
 * Takes the complete lines out of b up to the first that is an event;
 * returns 1 with ev filled, or 0 when no complete line is an event.  A
 * partial line stays in b.  Pure.
 */
int
docker_events_take(struct buf *b, struct docker_event *ev)
{
	char *nl;
	size_t len;
	int rc;

	while (b->len > 0 && (nl = memchr(b->data, '\n', b->len)) != NULL) {
		len = (size_t)(nl - b->data);
		rc = swarm_parse_event(b->data, len, ev);
		memmove(b->data, nl + 1, b->len - len - 1);
		b->len -= len + 1;
		b->data[b->len] = '\0';
		if (rc == 0)
			return 1;
	}
	return 0;
}

static size_t
write_events(char *ptr, size_t size, size_t nmemb, void *user)
{
	struct docker *d = user;

	if (docker_events_feed(&d->events_buf, ptr, size * nmemb) == -1)
		return 0;
	return size * nmemb;
}

/* Opens the event stream of swarm services and nodes. */
int
docker_events_open(struct docker *d, long since, char **cause)
{
	char *filters, *path, *url;

	docker_events_close(d);
	if (d->base == NULL) {
		*cause = xstrdup("not connected to Docker");
		return -1;
	}
	if ((d->events = curl_easy_init()) == NULL)
		fatalx("curl_easy_init failed");
	/*
	 * Swarm objects, and the containers of this node: a container being
	 * stopped is the earliest sign that its task is going away.
	 */
	filters = curl_easy_escape(d->events,
	    "{\"type\":[\"service\",\"node\",\"network\",\"container\","
	    "\"config\"],"
	    "\"event\":[\"create\",\"update\",\"remove\",\"start\","
	    "\"kill\",\"die\",\"stop\"]}", 0);
	if (since > 0)
		path = xasprintf("/%s/events?since=%ld&filters=%s", d->version,
		    since, filters);
	else
		path = xasprintf("/%s/events?filters=%s", d->version, filters);
	curl_free(filters);
	url = xasprintf("%s%s", d->base, path);
	free(path);
	setup_handle(d, d->events, url, 0L);
	free(url);
	curl_easy_setopt(d->events, CURLOPT_WRITEFUNCTION, write_events);
	curl_easy_setopt(d->events, CURLOPT_WRITEDATA, d);
	/* Detect a dead peer on a quiet stream. */
	curl_easy_setopt(d->events, CURLOPT_TCP_KEEPALIVE, 1L);
	buf_reset(&d->events_buf);
	if (curl_multi_add_handle(d->multi, d->events) != CURLM_OK) {
		*cause = xstrdup("curl_multi_add_handle failed");
		curl_easy_cleanup(d->events);
		d->events = NULL;
		return -1;
	}
	d->events_running = 1;
	return 0;
}

void
docker_events_close(struct docker *d)
{
	if (d->events == NULL)
		return;
	curl_multi_remove_handle(d->multi, d->events);
	curl_easy_cleanup(d->events);
	d->events = NULL;
	d->events_running = 0;
}

int
docker_events_active(const struct docker *d)
{
	return d->events != NULL && d->events_running;
}

/*
 * Waits up to timeout_ms for the event stream or one of the nfds
 * descriptors (the agent's own) to be ready for what its events ask
 * (POLLIN, POLLOUT; fd -1 is skipped), then moves the stream along.
 * Returns -1 on a curl failure.
 */
int
docker_wait(struct docker *d, const struct pollfd *fds, size_t nfds,
    int timeout_ms)
{
	struct curl_waitfd wfd[DOCKER_WAIT_MAX];
	struct CURLMsg *msg;
	unsigned n = 0;
	size_t i;
	int running, left;
	long status = 0;

	for (i = 0; i < nfds && n < DOCKER_WAIT_MAX; i++) {
		if (fds[i].fd == -1)
			continue;
		wfd[n].fd = fds[i].fd;
		wfd[n].events = 0;
		if (fds[i].events & POLLIN)
			wfd[n].events |= CURL_WAIT_POLLIN;
		if (fds[i].events & POLLOUT)
			wfd[n].events |= CURL_WAIT_POLLOUT;
		wfd[n].revents = 0;
		n++;
	}
	if (curl_multi_poll(d->multi, n == 0 ? NULL : wfd, n, timeout_ms,
	    NULL) != CURLM_OK)
		return -1;
	if (curl_multi_perform(d->multi, &running) != CURLM_OK)
		return -1;
	while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE || msg->easy_handle != d->events)
			continue;
		curl_easy_getinfo(d->events, CURLINFO_RESPONSE_CODE, &status);
		if (msg->data.result != CURLE_OK)
			log_warnx("docker: event stream from %s ended: %s",
			    d->endpoint, curl_easy_strerror(msg->data.result));
		else
			log_warnx("docker: event stream from %s ended "
			    "(HTTP %ld)", d->endpoint, status);
		d->events_running = 0;
	}
	return 0;
}

/* Takes the next complete event line; returns 1 with ev filled, or 0. */
int
docker_event_next(struct docker *d, struct docker_event *ev)
{
	return docker_events_take(&d->events_buf, ev);
}
