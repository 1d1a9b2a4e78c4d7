/* SPDX-License-Identifier: ISC */
/*
 * The control socket dovetailctl talks to: a UNIX stream socket served in
 * the agent's one loop.  One request line per connection, one reply, then
 * the daemon closes it.  Every descriptor is non-blocking and every client
 * has a deadline, a bounded request buffer and one slot of a few: a slow
 * or hostile client can hold a slot for CTL_CLIENT_TIMEOUT_MS at most and
 * never blocks the loop.
 *
 * A reply is a head line, "ok", "unrouted" or "error: MESSAGE", then the
 * body the handler rendered (nothing after an error).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "dovetail.h"

/* The commands, one row each: the words, and whether "json" may follow. */
static const struct {
	const char *words;
	enum ctl_cmd cmd;
} ctl_commands[] = {
	{ "show routes", CTL_SHOW_ROUTES },
	{ "show services", CTL_SHOW_SERVICES },
	{ "show certs", CTL_SHOW_CERTS },
	{ "show reloads", CTL_SHOW_RELOADS },
	{ "reload", CTL_RELOAD },
	{ "log verbose", CTL_LOG_VERBOSE },
	{ "log brief", CTL_LOG_BRIEF },
};
#define CTL_NCOMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

const char *const ctl_command_names[] = {
	"show routes", "show services", "show certs", "show reloads",
	"reload", "log verbose", "log brief", NULL
};

/*
 * Parses one request: the command's words separated by blanks, then
 * optionally "json"; a trailing newline (and carriage return) is allowed.
 * Returns 0, or -1 with *cause (new) saying what is wrong.
 */
int
ctl_parse_request(const char *line, size_t len, struct ctl_request *req,
    char **cause)
{
	char text[CTL_REQUEST_MAX + 1], shown[CTL_REQUEST_MAX + 1], *words[4];
	char *p;
	size_t nwords = 0, i, n;

	memset(req, 0, sizeof(*req));
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len >= CTL_REQUEST_MAX) {
		*cause = xasprintf("request longer than %d bytes",
		    CTL_REQUEST_MAX - 1);
		return -1;
	}
	for (i = 0; i < len; i++) {
		if (line[i] != '\t' && (line[i] < 0x20 || line[i] > 0x7e)) {
			*cause = xstrdup("request with a control character or "
			    "a byte outside ASCII");
			return -1;
		}
	}
	memcpy(text, line, len);
	text[len] = '\0';
	memcpy(shown, text, len + 1);
	for (p = text; *p != '\0';) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (nwords == sizeof(words) / sizeof(words[0])) {
			*cause = xstrdup("too many words");
			return -1;
		}
		words[nwords++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	if (nwords == 0) {
		*cause = xstrdup("empty request");
		return -1;
	}
	if (nwords > 1 && strcmp(words[nwords - 1], "json") == 0) {
		req->json = 1;
		nwords--;
	}
	for (i = 0; i < CTL_NCOMMANDS; i++) {
		const char *w = ctl_commands[i].words;
		size_t k;

		for (k = 0; k < nwords; k++) {
			n = strlen(words[k]);
			if (strncmp(w, words[k], n) != 0 ||
			    (w[n] != ' ' && w[n] != '\0'))
				break;
			w += n;
			if (*w == ' ')
				w++;
		}
		if (k == nwords && *w == '\0') {
			req->cmd = ctl_commands[i].cmd;
			return 0;
		}
	}
	*cause = xasprintf("unknown command \"%s\"; the commands are: show "
	    "routes, show services, show certs, show reloads, reload, log "
	    "verbose, log brief (each may end in json)", esc(shown));
	return -1;
}

/* A reply's first line; the error kept to one line of printable text. */
void
ctl_reply_head(struct buf *b, enum ctl_status status, const char *error)
{
	const unsigned char *p;

	switch (status) {
	case CTL_STATUS_OK:
		buf_adds(b, "ok\n");
		break;
	case CTL_STATUS_UNROUTED:
		buf_adds(b, "unrouted\n");
		break;
	default:
		buf_adds(b, "error: ");
		for (p = (const unsigned char *)error; *p != '\0'; p++) {
			if (*p < 0x20 || *p > 0x7e)
				buf_addf(b, "\\x%02x", *p);
			else
				buf_addc(b, (char)*p);
		}
		buf_addc(b, '\n');
		break;
	}
}

/*
 * dovetailctl's reading of a whole reply: the status its head line gives,
 * with *body pointing after it.  A reply that is no such thing is an
 * error too.  *error (new) is set with CTL_STATUS_ERROR only.
 */
enum ctl_status
ctl_reply_status(const char *reply, const char **body, char **error)
{
	const char *nl = strchr(reply, '\n');
	size_t len;

	*body = "";
	*error = NULL;
	if (nl == NULL) {
		*error = xstrdup(*reply == '\0' ? "the daemon closed the "
		    "connection without a reply" : "the reply has no head "
		    "line");
		return CTL_STATUS_ERROR;
	}
	len = (size_t)(nl - reply);
	*body = nl + 1;
	if (len == 2 && strncmp(reply, "ok", 2) == 0)
		return CTL_STATUS_OK;
	if (len == 8 && strncmp(reply, "unrouted", 8) == 0)
		return CTL_STATUS_UNROUTED;
	if (len >= 7 && strncmp(reply, "error: ", 7) == 0)
		*error = xstrndup(reply + 7, len - 7);
	else
		*error = xasprintf("unexpected reply \"%.*s\"",
		    len > 80 ? 80 : (int)len, reply);
	*body = "";
	return CTL_STATUS_ERROR;
}

/* ---- the server ---- */

struct ctl_client {
	int fd;
	int uid;		/* the peer's, or -1 */
	char in[CTL_REQUEST_MAX];
	size_t inlen;
	struct buf out;		/* the reply, once there is one */
	size_t sent;
	int replying;
	long long deadline;
};

struct ctl_server {
	int fd;
	char *path;
	dev_t dev;		/* the socket file we made, to unlink only it */
	ino_t ino;
	ctl_handler handler;
	void *arg;
	struct ctl_client clients[CTL_MAX_CLIENTS];
	size_t nclients;
};

/*
 * A socket file left by a dovetail that died is removed; one that
 * answers is another dovetail's, and anything else is not ours to touch.
 */
static int
clear_stale(const char *path, char **cause)
{
	struct stat st;
	char *why;
	int fd;

	if (lstat(path, &st) == -1)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		*cause = xasprintf("control socket %s: exists and is not a "
		    "socket", path);
		return -1;
	}
	if ((fd = unix_connect(path, &why)) != -1) {
		close(fd);
		*cause = xasprintf("control socket %s: another dovetail "
		    "answers on it", path);
		return -1;
	}
	free(why);
	if (errno != ECONNREFUSED && errno != ENOENT) {
		*cause = xasprintf("control socket %s: %s", path,
		    strerror(errno));
		return -1;
	}
	log_info("control socket %s: removing a stale socket", path);
	if (unlink(path) == -1 && errno != ENOENT) {
		*cause = xasprintf("control socket %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Listens on path, mode 0660, answering each request through handler.
 * Returns the server (new), or NULL with *cause.
 */
struct ctl_server *
ctl_listen(const char *path, ctl_handler handler, void *arg, char **cause)
{
	struct ctl_server *s;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old;
	int fd, rc;
	size_t i;

	if (*path != '/' || strlen(path) >= sizeof(sun.sun_path)) {
		*cause = xasprintf("control socket %s: not an absolute path "
		    "shorter than %zu bytes", path, sizeof(sun.sun_path));
		return NULL;
	}
	if (clear_stale(path, cause) == -1)
		return NULL;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		*cause = xasprintf("socket: %s", strerror(errno));
		return NULL;
	}
	/* No moment where the socket is open to all. */
	old = umask(0117);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1 || chmod(path, 0660) == -1 || listen(fd, 16) == -1 ||
	    stat(path, &st) == -1) {
		*cause = xasprintf("control socket %s: %s", path,
		    strerror(errno));
		if (rc == 0)
			unlink(path);
		close(fd);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->fd = fd;
	s->path = xstrdup(path);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->handler = handler;
	s->arg = arg;
	for (i = 0; i < CTL_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
	return s;
}

const char *
ctl_path(const struct ctl_server *s)
{
	return s->path;
}

static void
client_close(struct ctl_server *s, size_t i)
{
	struct ctl_client *c = &s->clients[i];

	close(c->fd);
	buf_free(&c->out);
	s->clients[i] = s->clients[--s->nclients];
	memset(&s->clients[s->nclients], 0, sizeof(s->clients[0]));
	s->clients[s->nclients].fd = -1;
}

/*
 * The descriptors to wait on: the listener while a slot is free, each
 * client for its request or for room for its reply.  Returns how many.
 */
size_t
ctl_pollfds(const struct ctl_server *s, struct pollfd *fds, size_t max)
{
	size_t i, n = 0;

	if (s == NULL)
		return 0;
	if (s->nclients < CTL_MAX_CLIENTS && n < max) {
		fds[n].fd = s->fd;
		fds[n++].events = POLLIN;
	}
	for (i = 0; i < s->nclients && n < max; i++) {
		fds[n].fd = s->clients[i].fd;
		fds[n++].events = s->clients[i].replying ? POLLOUT : POLLIN;
	}
	return n;
}

/* The earliest client deadline (monotonic ms), 0 with no client. */
long long
ctl_deadline(const struct ctl_server *s)
{
	long long d = 0;
	size_t i;

	if (s == NULL)
		return 0;
	for (i = 0; i < s->nclients; i++)
		if (d == 0 || s->clients[i].deadline < d)
			d = s->clients[i].deadline;
	return d;
}

static int
peer_uid(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return -1;
	return (int)cred.uid;
}

static void
accept_clients(struct ctl_server *s, long long now)
{
	struct ctl_client *c;
	int fd;

	while (s->nclients < CTL_MAX_CLIENTS) {
		fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR && errno != ECONNABORTED)
				log_warn("control socket %s: accept", s->path);
			return;
		}
		c = &s->clients[s->nclients++];
		memset(c, 0, sizeof(*c));
		c->fd = fd;
		c->uid = peer_uid(fd);
		c->deadline = now + CTL_CLIENT_TIMEOUT_MS;
		buf_init(&c->out);
	}
}

/* The request is complete: the reply is rendered whole, at once. */
static void
answer(struct ctl_server *s, struct ctl_client *c)
{
	struct ctl_request req;
	struct buf body;
	enum ctl_status st;
	char *cause;

	c->replying = 1;
	if (ctl_parse_request(c->in, c->inlen, &req, &cause) == -1) {
		log_debug("control: bad request from uid %d: %s", c->uid,
		    cause);
		ctl_reply_head(&c->out, CTL_STATUS_ERROR, cause);
		free(cause);
		return;
	}
	log_debug("control: uid %d: %s%s", c->uid,
	    ctl_command_names[req.cmd - 1], req.json ? " json" : "");
	buf_init(&body);
	st = s->handler(s->arg, &req, c->uid, &body);
	ctl_reply_head(&c->out, st, NULL);
	if (body.len > 0)
		buf_add(&c->out, body.data, body.len);
	buf_free(&body);
}

/* Reads what there is; returns -1 when the client is to be dropped. */
static int
client_read(struct ctl_server *s, struct ctl_client *c)
{
	ssize_t n;
	char *nl;

	for (;;) {
		if (c->inlen == sizeof(c->in)) {
			char why[64];

			snprintf(why, sizeof(why), "request longer than %d "
			    "bytes", CTL_REQUEST_MAX - 1);
			log_debug("control: uid %d: %s", c->uid, why);
			ctl_reply_head(&c->out, CTL_STATUS_ERROR, why);
			c->replying = 1;
			return 0;
		}
		n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			return -1;
		}
		if (n == 0) {
			/* No newline but the end: the request as it is. */
			if (c->inlen == 0)
				return -1;
			answer(s, c);
			return 0;
		}
		c->inlen += (size_t)n;
		if ((nl = memchr(c->in, '\n', c->inlen)) != NULL) {
			c->inlen = (size_t)(nl - c->in) + 1;
			answer(s, c);
			return 0;
		}
	}
}

/* Writes what fits; returns 1 when all is sent, -1 on error. */
static int
client_write(struct ctl_client *c)
{
	ssize_t n;

	while (c->sent < c->out.len) {
		n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK ||
			    errno == EINTR)
				return 0;
			return -1;
		}
		c->sent += (size_t)n;
	}
	return 1;
}

/*
 * Serves whatever is ready, without blocking: new clients, requests,
 * replies; a client past its deadline is dropped.
 */
void
ctl_run(struct ctl_server *s, long long now)
{
	struct ctl_client *c;
	size_t i;
	int rc;

	if (s == NULL)
		return;
	accept_clients(s, now);
	for (i = 0; i < s->nclients;) {
		c = &s->clients[i];
		rc = 0;
		if (!c->replying)
			rc = client_read(s, c);
		if (rc == 0 && c->replying)
			rc = client_write(c);
		if (rc == 0 && now >= c->deadline) {
			log_debug("control: uid %d: dropped after %d ms", c->uid,
			    CTL_CLIENT_TIMEOUT_MS);
			rc = -1;
		}
		if (rc != 0)
			client_close(s, i);
		else
			i++;
	}
	/* A slot freed: take the next one waiting at once. */
	accept_clients(s, now);
}

/* Closes every client and the socket, and removes the file if ours. */
void
ctl_close(struct ctl_server *s)
{
	struct stat st;

	if (s == NULL)
		return;
	while (s->nclients > 0)
		client_close(s, 0);
	close(s->fd);
	if (lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
	    st.st_ino == s->ino && unlink(s->path) == -1)
		log_warn("control socket %s", s->path);
	free(s->path);
	free(s);
}
