/* SPDX-License-Identifier: ISC */
/*
 * loadgen: steady HTTP load through HAProxy for bench/churn, recording
 * every request.  Three kinds of client run side by side:
 *
 *   ka    GET on kept-alive connections
 *   new   GET on a new connection each time
 *   post  POST with a body (which HAProxy must not retry once sent)
 *
 * Each finished request appends one line to the record file:
 *
 *   <epoch ms> <kind> <HTTP status or E:<curl error>> <body's first word>
 *
 * The app answers with its container's hostname, so the last field says
 * which task served the request.
 *
 * Beside the load it samples the service's tasks from the Docker API every
 * 20 ms and appends, once per task, Docker's own timestamps:
 *
 *   run <task id> <container hostname> <epoch ms the task became running>
 *   stop <task id> <epoch ms its desired state left running (UpdatedAt)>
 *
 * Runs until SIGINT or SIGTERM.
 *
 *   loadgen URL HOST POST_PATH RECORD_FILE CLIENTS_PER_KIND PAUSE_MS \
 *       DOCKER_SOCKET SERVICE TASK_FILE
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind { KIND_KA = 0, KIND_NEW, KIND_POST, KIND_COUNT };
static const char *const kind_names[KIND_COUNT] = { "ka", "new", "post" };

struct client {
	CURL *h;
	enum kind kind;
	char body[128];
	size_t len;
	long long next_ms;	/* when to start the next request */
	int busy;
};

static volatile sig_atomic_t stop;

/* The task sampler: one easy handle on the same multi handle. */
struct sampler {
	CURL *h;
	char *buf;
	size_t len;
	long long next_ms;
	int busy;
	FILE *out;
	json_t *seen;	/* "run:<id>" / "stop:<id>" already written */
};

/* RFC 3339 with nanoseconds, as Docker writes it, to epoch ms. */
static long long
rfc3339_ms(const char *s)
{
	struct tm tm;
	char *end;
	long long ms = 0, scale = 100;

	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL)
		return -1;
	if (*end == '.') {
		for (end++; *end >= '0' && *end <= '9'; end++) {
			ms += (*end - '0') * scale;
			scale /= 10;
		}
	}
	return (long long)timegm(&tm) * 1000 + ms;
}

static size_t
on_sample(char *p, size_t size, size_t n, void *user)
{
	struct sampler *s = user;

	s->buf = realloc(s->buf, s->len + size * n + 1);
	memcpy(s->buf + s->len, p, size * n);
	s->len += size * n;
	s->buf[s->len] = '\0';
	return size * n;
}

static const char *
str_at(json_t *o, const char *a, const char *b)
{
	json_t *v = json_object_get(o, a);

	if (b != NULL)
		v = json_object_get(v, b);
	return json_string_value(v);
}

static void
sample_done(struct sampler *s)
{
	json_t *root, *t;
	size_t i;
	char key[128];

	root = json_loads(s->buf == NULL ? "[]" : s->buf, 0, NULL);
	json_array_foreach(root, i, t) {
		const char *id = str_at(t, "ID", NULL);
		const char *state = str_at(t, "Status", "State");
		const char *desired = str_at(t, "DesiredState", NULL);
		const char *cid = json_string_value(json_object_get(
		    json_object_get(json_object_get(t, "Status"),
		    "ContainerStatus"), "ContainerID"));

		if (id == NULL)
			continue;
		snprintf(key, sizeof(key), "run:%s", id);
		if (state != NULL && strcmp(state, "running") == 0 &&
		    cid != NULL && json_object_get(s->seen, key) == NULL) {
			fprintf(s->out, "run %s %.12s %lld\n", id, cid,
			    rfc3339_ms(str_at(t, "Status", "Timestamp")));
			json_object_set_new(s->seen, key, json_true());
		}
		snprintf(key, sizeof(key), "stop:%s", id);
		if (desired != NULL && (strcmp(desired, "shutdown") == 0 ||
		    strcmp(desired, "remove") == 0) &&
		    json_object_get(s->seen, key) == NULL) {
			fprintf(s->out, "stop %s %lld\n", id,
			    rfc3339_ms(str_at(t, "UpdatedAt", NULL)));
			json_object_set_new(s->seen, key, json_true());
		}
	}
	json_decref(root);
	fflush(s->out);
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
on_body(char *p, size_t size, size_t n, void *user)
{
	struct client *c = user;
	size_t len = size * n, room = sizeof(c->body) - 1 - c->len;

	if (len > room)
		len = room;
	memcpy(c->body + c->len, p, len);
	c->len += len;
	c->body[c->len] = '\0';
	return size * n;
}

static void
start(CURLM *m, struct client *c)
{
	c->len = 0;
	c->body[0] = '\0';
	c->busy = 1;
	curl_multi_add_handle(m, c->h);
}

int
main(int argc, char **argv)
{
	struct client *clients;
	struct curl_slist *hdr = NULL;
	CURLMsg *msg;
	CURLM *m;
	FILE *rec;
	char hosthdr[300], url[512], *post_url;
	long code;
	int per_kind, pause_ms, n, i, running, left;
	long long total[KIND_COUNT] = { 0 }, failed[KIND_COUNT] = { 0 };

	struct sampler smp;
	char sample_url[256], *filter;

	if (argc != 10) {
		fprintf(stderr, "usage: loadgen URL HOST POST_PATH RECORD "
		    "CLIENTS_PER_KIND PAUSE_MS DOCKER_SOCKET SERVICE "
		    "TASK_FILE\n");
		return 2;
	}
	per_kind = atoi(argv[5]);
	pause_ms = atoi(argv[6]);
	if (per_kind < 1 || per_kind > 64 || pause_ms < 0) {
		fprintf(stderr, "loadgen: bad client count or pause\n");
		return 2;
	}
	rec = fopen(argv[4], "w");
	if (rec == NULL) {
		perror(argv[4]);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	snprintf(hosthdr, sizeof(hosthdr), "Host: %s", argv[2]);
	hdr = curl_slist_append(hdr, hosthdr);
	snprintf(url, sizeof(url), "%s%s", argv[1], argv[3]);
	post_url = url;

	m = curl_multi_init();

	memset(&smp, 0, sizeof(smp));
	smp.out = fopen(argv[9], "w");
	if (smp.out == NULL) {
		perror(argv[9]);
		return 1;
	}
	smp.seen = json_object();
	smp.h = curl_easy_init();
	snprintf(sample_url, sizeof(sample_url), "{\"service\":[\"%s\"]}",
	    argv[8]);
	filter = curl_easy_escape(smp.h, sample_url, 0);
	snprintf(sample_url, sizeof(sample_url),
	    "http://localhost/v1.41/tasks?filters=%s", filter);
	curl_free(filter);
	curl_easy_setopt(smp.h, CURLOPT_URL, sample_url);
	curl_easy_setopt(smp.h, CURLOPT_UNIX_SOCKET_PATH, argv[7]);
	curl_easy_setopt(smp.h, CURLOPT_WRITEFUNCTION, on_sample);
	curl_easy_setopt(smp.h, CURLOPT_WRITEDATA, &smp);
	curl_easy_setopt(smp.h, CURLOPT_PRIVATE, NULL);
	curl_easy_setopt(smp.h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(smp.h, CURLOPT_NOSIGNAL, 1L);
	n = per_kind * KIND_COUNT;
	clients = calloc((size_t)n, sizeof(*clients));
	for (i = 0; i < n; i++) {
		struct client *c = &clients[i];

		c->kind = (enum kind)(i % KIND_COUNT);
		c->h = curl_easy_init();
		curl_easy_setopt(c->h, CURLOPT_URL, c->kind == KIND_POST ?
		    post_url : argv[1]);
		curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
		curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
		curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 10000L);
		curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
		if (c->kind == KIND_NEW) {
			curl_easy_setopt(c->h, CURLOPT_FRESH_CONNECT, 1L);
			curl_easy_setopt(c->h, CURLOPT_FORBID_REUSE, 1L);
		}
		if (c->kind == KIND_POST)
			curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, "x=1");
		start(m, c);
	}

	while (!stop) {
		long long now;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			struct client *c;
			char *sp;

			if (msg->msg != CURLMSG_DONE)
				continue;
			if (msg->easy_handle == smp.h) {
				curl_multi_remove_handle(m, smp.h);
				smp.busy = 0;
				smp.next_ms = now_ms() + 20;
				if (msg->data.result == CURLE_OK)
					sample_done(&smp);
				else {
					free(smp.buf);
					smp.buf = NULL;
					smp.len = 0;
				}
				continue;
			}
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
			    (char **)&c);
			curl_multi_remove_handle(m, c->h);
			c->busy = 0;
			c->next_ms = now_ms() + pause_ms;
			sp = strpbrk(c->body, " \r\n\t<");
			if (sp != NULL)
				*sp = '\0';
			total[c->kind]++;
			if (msg->data.result != CURLE_OK) {
				failed[c->kind]++;
				fprintf(rec, "%lld %s E:%s -\n", now_ms(),
				    kind_names[c->kind],
				    curl_easy_strerror(msg->data.result));
				continue;
			}
			curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
			if (code < 200 || code > 299)
				failed[c->kind]++;
			fprintf(rec, "%lld %s %ld %s\n", now_ms(),
			    kind_names[c->kind], code,
			    c->body[0] != '\0' ? c->body : "-");
		}
		now = now_ms();
		if (!smp.busy && now >= smp.next_ms) {
			smp.busy = 1;
			curl_multi_add_handle(m, smp.h);
		}
		for (i = 0; i < n; i++) {
			if (!clients[i].busy && now >= clients[i].next_ms)
				start(m, &clients[i]);
		}
		curl_multi_poll(m, NULL, 0, 10, NULL);
	}

	fflush(rec);
	fclose(rec);
	if (smp.busy)
		curl_multi_remove_handle(m, smp.h);
	curl_easy_cleanup(smp.h);
	fclose(smp.out);
	json_decref(smp.seen);
	for (i = 0; i < KIND_COUNT; i++)
		printf("%s %lld %lld\n", kind_names[i], total[i], failed[i]);
	for (i = 0; i < n; i++) {
		if (clients[i].busy)
			curl_multi_remove_handle(m, clients[i].h);
		curl_easy_cleanup(clients[i].h);
	}
	free(clients);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdr);
	curl_global_cleanup();
	return 0;
}
