/* SPDX-License-Identifier: ISC */
/*
 * The HAProxy runtime API (stats socket) and master CLI, over UNIX
 * sockets.  Batches run in one session in interactive mode: every
 * command's reply is followed by the "> " prompt, which is how replies
 * are told apart, and commands are written while replies are read so that
 * neither side blocks on a full socket buffer.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dovetail.h"

/*
 * A silent HAProxy is given up on after 10 seconds, and one that drips
 * bytes after 30 seconds in all: the loop must not hang on one session.
 */
#define RUNTIME_IO_TIMEOUT_MS 10000
#define RUNTIME_TOTAL_TIMEOUT_MS 30000
#define RUNTIME_REPLY_MAX (256u << 20)

/*
 * A blocking stream socket connected to the UNIX socket at path (new), or
 * -1 with *cause and errno from the call that failed.
 */
int
unix_connect(const char *path, char **cause)
{
	struct sockaddr_un sun;
	int fd, saved;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		*cause = xasprintf("%s: socket path too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		saved = errno;
		*cause = xasprintf("socket: %s", strerror(saved));
		errno = saved;
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		saved = errno;
		*cause = xasprintf("%s: %s", path, strerror(saved));
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static int
connect_unix(const char *path, char **cause)
{
	int fd;

	if ((fd = unix_connect(path, cause)) == -1)
		return -1;
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1) {
		*cause = xasprintf("fcntl: %s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes all of in while reading everything the peer sends until EOF. */
static int
exchange(int fd, const struct buf *in, struct buf *out, char **cause)
{
	struct pollfd pfd;
	size_t off = 0;
	ssize_t n;
	char chunk[16384];
	long long deadline = mono_ms() + RUNTIME_TOTAL_TIMEOUT_MS, left;
	int rc;

	for (;;) {
		left = deadline - mono_ms();
		if (left <= 0) {
			*cause = xasprintf("the session took more than %d "
			    "seconds", RUNTIME_TOTAL_TIMEOUT_MS / 1000);
			return -1;
		}
		pfd.fd = fd;
		pfd.events = POLLIN | (off < in->len ? POLLOUT : 0);
		pfd.revents = 0;
		rc = poll(&pfd, 1, left < RUNTIME_IO_TIMEOUT_MS ? (int)left :
		    RUNTIME_IO_TIMEOUT_MS);
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1) {
			*cause = xasprintf("poll: %s", strerror(errno));
			return -1;
		}
		if (rc == 0 && left > RUNTIME_IO_TIMEOUT_MS) {
			*cause = xasprintf("no answer within %d seconds",
			    RUNTIME_IO_TIMEOUT_MS / 1000);
			return -1;
		}
		if (rc == 0)
			continue;
		if ((pfd.revents & POLLOUT) != 0 && off < in->len) {
			n = write(fd, in->data + off, in->len - off);
			if (n == -1 && errno != EAGAIN && errno != EINTR) {
				*cause = xasprintf("write: %s",
				    strerror(errno));
				return -1;
			}
			if (n > 0)
				off += (size_t)n;
			if (off == in->len)
				shutdown(fd, SHUT_WR);
		}
		if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
			n = read(fd, chunk, sizeof(chunk));
			if (n == -1 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n == -1) {
				*cause = xasprintf("read: %s",
				    strerror(errno));
				return -1;
			}
			if (n == 0)
				break;
			if (out->len + (size_t)n > RUNTIME_REPLY_MAX) {
				*cause = xasprintf("a reply of more than %u MB",
				    RUNTIME_REPLY_MAX >> 20);
				return -1;
			}
			buf_add(out, chunk, (size_t)n);
		}
	}
	if (off < in->len) {
		*cause = xstrdup("connection closed before all commands "
		    "were sent");
		return -1;
	}
	return 0;
}

/* Runs one command in non-interactive mode; out receives the reply. */
int
runtime_query(const char *socket, const char *command, struct buf *out,
    char **cause)
{
	struct buf in;
	int fd, rc;

	if ((fd = connect_unix(socket, cause)) == -1)
		return -1;
	buf_init(&in);
	buf_addf(&in, "%s\n", command);
	rc = exchange(fd, &in, out, cause);
	buf_free(&in);
	close(fd);
	return rc;
}

void
runtime_replies_free(char **replies, size_t n)
{
	size_t i;

	if (replies == NULL)
		return;
	for (i = 0; i < n; i++)
		free(replies[i]);
	free(replies);
}

/*
 * Runs n commands in one session.  On success *replies (new) holds one
 * reply per command, without trailing newlines.  Fails only when the
 * session does; a command HAProxy refused shows in its reply.
 */
int
runtime_batch(const char *socket, const char *const *commands, size_t n,
    char ***replies, char **cause)
{
	struct buf in, out;
	size_t i;
	int fd, rc;

	*replies = NULL;
	if ((fd = connect_unix(socket, cause)) == -1)
		return -1;
	buf_init(&in);
	buf_init(&out);
	buf_adds(&in, "prompt\n");
	for (i = 0; i < n; i++)
		buf_addf(&in, "%s\n", commands[i]);
	buf_adds(&in, "quit\n");
	if (exchange(fd, &in, &out, cause) == -1) {
		close(fd);
		buf_free(&in);
		buf_free(&out);
		return -1;
	}
	close(fd);
	buf_free(&in);
	rc = runtime_split_replies(out.data == NULL ? "" : out.data, n,
	    replies, cause);
	buf_free(&out);
	return rc;
}

/* The next "\n> " in text, or NULL: strchr finds a newline fast. */
static const char *
next_prompt(const char *text)
{
	const char *p;

	for (p = text; (p = strchr(p, '\n')) != NULL; p++)
		if (p[1] == '>' && p[2] == ' ')
			return p;
	return NULL;
}

/*
 * Splits what an interactive session printed into the replies of n
 * commands: the reply to "prompt" comes first, then "> " before each
 * reply.  On success *replies (new) holds n replies without trailing
 * newlines; -1 with *cause when fewer came.  Pure.
 */
int
runtime_split_replies(const char *text, size_t n, char ***replies,
    char **cause)
{
	const char *p, *start, *prompt;
	char **r;
	size_t got = 0, len;

	*replies = NULL;
	r = xcalloc(n == 0 ? 1 : n, sizeof(char *));
	prompt = strstr(text, "> ");
	while (prompt != NULL && got < n) {
		start = prompt + 2;
		p = next_prompt(start);
		len = p == NULL ? strlen(start) : (size_t)(p + 1 - start);
		while (len > 0 && start[len - 1] == '\n')
			len--;
		r[got++] = xstrndup(start, len);
		prompt = p == NULL ? NULL : p + 1;
	}
	if (got < n) {
		*cause = xasprintf("HAProxy answered %zu of %zu commands",
		    got, n);
		runtime_replies_free(r, n);
		return -1;
	}
	*replies = r;
	return 0;
}

/*
 * Asks what HAProxy runs: its servers, backends, dovetail's maps and
 * certificates, in one session.  *replies (new, RUNTIME_STATE_REPLIES of
 * them) is for runtime_parse_state.
 */
int
runtime_read_state(const char *socket, const struct render_opts *o,
    char ***replies, char **cause)
{
	const char *cmds[RUNTIME_STATE_REPLIES];
	char *owned[1 + MAP_COUNT];
	size_t n = 0, i;
	int m, rc;

	cmds[n++] = "show servers state";
	cmds[n++] = "show backend";
	cmds[n++] = "show ssl cert";
	cmds[n++] = owned[0] = xasprintf("show ssl crt-list %s", o->crt_list);
	for (m = 0; m < MAP_COUNT; m++)
		cmds[n++] = owned[1 + m] = xasprintf("show map %s",
		    o->map_paths[m]);
	rc = runtime_batch(socket, cmds, n, replies, cause);
	for (i = 0; i < 1 + MAP_COUNT; i++)
		free(owned[i]);
	return rc;
}

/*
 * A digest of what runtime_parse_state reads of the replies: equal
 * digests, an equal state parsed.  Pure.
 */
uint64_t
runtime_state_digest(const char *const *replies)
{
	uint64_t h = hastate_servers_digest(replies[0]);
	size_t i;

	for (i = 1; i < RUNTIME_STATE_REPLIES; i++)
		h = hash_bytes(replies[i], strlen(replies[i]) + 1, h);
	return h;
}

/*
 * Fills r from the replies (borrowed) to "show servers state NAME" for
 * each of the n names: a backend whose reply is a state dump goes into
 * r->backends with its servers; one HAProxy does not have ("Can't find
 * backend.") stays out.  Pure.
 */
int
runtime_parse_servers(struct running *r, char *const *names,
    const char *const *replies, size_t n, char **cause)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strncmp(replies[i], "1\n", 2) != 0 &&
		    strcmp(replies[i], "1") != 0)
			continue;
		if (hastate_parse_servers(r, replies[i], cause) == -1)
			return -1;
		r->backends = xreallocarray(r->backends, r->nbackends + 1,
		    sizeof(char *));
		r->backends[r->nbackends++] = xstrdup(names[i]);
	}
	sort_array(r->backends, r->nbackends, sizeof(char *), str_cmp_ptr);
	return 0;
}

/*
 * Reads the servers of the n backends named (valid names) into r, in one
 * session: what a change of some backends' servers needs, not the state
 * of all.
 */
int
runtime_read_servers(const char *socket, char *const *names, size_t n,
    struct running *r, char **cause)
{
	char **cmds, **replies;
	size_t i;
	int rc = -1;

	cmds = xcalloc(n + 1, sizeof(char *));
	for (i = 0; i < n; i++)
		cmds[i] = xasprintf("show servers state %s", names[i]);
	if (runtime_batch(socket, (const char *const *)cmds, n, &replies,
	    cause) == 0) {
		rc = runtime_parse_servers(r, names,
		    (const char *const *)replies, n, cause);
		runtime_replies_free(replies, n);
	}
	free_strings(cmds, n);
	return rc;
}

/*
 * Fills r from the RUNTIME_STATE_REPLIES replies (borrowed) to the
 * commands runtime_read_state sends, in its order.  A map HAProxy has
 * not loaded reads as empty, with its map_missing set; r->tls is set
 * when the crt-list is loaded (the terminating frontend runs).  Pure.
 */
int
runtime_parse_state(struct running *r, const char *const *replies,
    char **cause)
{
	int m;

	if (hastate_parse_servers(r, replies[0], cause) == -1 ||
	    hastate_parse_backends(r, replies[1], cause) == -1)
		return -1;
	/* Without the crt-list, the certificates are not dovetail's. */
	if (replies[3][0] == '#' && (hastate_parse_crt_list(r, replies[3],
	    cause) == -1 || hastate_parse_certs(r, replies[2], cause) == -1))
		return -1;
	for (m = 0; m < MAP_COUNT; m++) {
		const char *text = replies[RUNTIME_STATE_FIXED + m];

		if (strncmp(text, "0x", 2) != 0 && text[0] != '\0') {
			/* "Unknown map identifier ..." */
			r->map_missing[m] = 1;
		} else if (hastate_parse_map(r, m, text, cause) == -1)
			return -1;
	}
	return 0;
}
