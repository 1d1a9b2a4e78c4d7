/* SPDX-License-Identifier: ISC */
/*
 * dovetailctl: asks the running dovetail over its control socket.  It
 * sends one request line, prints the reply's body and exits with the
 * status the reply's head line gives (see dovetailctl(8)).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "dovetail.h"

#define DEFAULT_CONFIG_PATH SYSCONFDIR "/dovetail/dovetail.conf"
#define CTL_TIMEOUT_S 30
#define CTL_REPLY_MAX (256u << 20)

static void
usage(FILE *f)
{
	fprintf(f, "usage: dovetailctl [-hjV] [-c file] [-s socket] command\n\n"
	    "Asks the running dovetail, over its control socket.  Commands:\n"
	    "  show routes     host and path, services, backend, servers and "
	    "their state\n"
	    "  show services   every labelled service: routed, waiting, "
	    "refused,\n"
	    "                  quarantined or ignored, with the reason\n"
	    "  show certs      the certificates dovetail gives HAProxy\n"
	    "  show reloads    the last HAProxy reloads, why and how long\n"
	    "  reload          read the configuration again (as SIGHUP)\n"
	    "  log verbose     log debug messages too\n"
	    "  log brief       log warnings and information only\n\n"
	    "  -c FILE    dovetail's configuration, for the socket's path "
	    "(default\n"
	    "             %s)\n"
	    "  -s SOCKET  the control socket (wins over -c)\n"
	    "  -j         JSON instead of tables\n"
	    "  -V         print the version and exit\n"
	    "  -h         this text\n\n"
	    "Exit status: 0 every labelled service is routed (or reload and "
	    "log\ndone), 1 some service is refused, quarantined or waiting, "
	    "2 usage,\nconnection or request error.\n", DEFAULT_CONFIG_PATH);
}

/* The socket's path from dovetail's configuration (new), or NULL. */
static char *
socket_from_config(const char *path, int explicit)
{
	struct config *cfg;
	char *cause, *sock;

	cfg = config_new();
	if ((explicit || access(path, F_OK) == 0) &&
	    config_load(cfg, path, &cause) == -1) {
		fprintf(stderr, "dovetailctl: %s\n", cause);
		free(cause);
		config_free(cfg);
		return NULL;
	}
	sock = config_control_path(cfg);
	config_free(cfg);
	return sock;
}

/* Sends the request and reads the whole reply; -1 with *cause. */
static int
ask(const char *path, const char *request, struct buf *reply, char **cause)
{
	struct timeval tv = { CTL_TIMEOUT_S, 0 };
	size_t len = strlen(request), off = 0;
	char chunk[16384], *why;
	ssize_t n;
	int fd;

	if ((fd = unix_connect(path, &why)) == -1) {
		*cause = xasprintf("%s (is dovetail running? see -s and -c)",
		    why);
		free(why);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (off < len) {
		n = send(fd, request + off, len - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*cause = xasprintf("%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		off += (size_t)n;
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*cause = xasprintf("%s: %s", path, errno == EAGAIN ?
			    "no reply in time" : strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		if (reply->len + (size_t)n > CTL_REPLY_MAX) {
			*cause = xasprintf("%s: reply larger than %u MB", path,
			    CTL_REPLY_MAX >> 20);
			close(fd);
			return -1;
		}
		buf_add(reply, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *config_path = DEFAULT_CONFIG_PATH, *body;
	char *sock = NULL, *cause = NULL;
	struct buf request, reply;
	int ch, json = 0, explicit_config = 0, i;
	enum ctl_status st;

	log_init(LOG_LEVEL_WARN);
	while ((ch = getopt(argc, argv, "c:hjs:V")) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			explicit_config = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'j':
			json = 1;
			break;
		case 's':
			free(sock);
			sock = xstrdup(optarg);
			break;
		case 'V':
			printf("dovetailctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return CTL_STATUS_ERROR;
		}
	}
	if (optind == argc) {
		usage(stderr);
		return CTL_STATUS_ERROR;
	}
	if (sock == NULL &&
	    (sock = socket_from_config(config_path, explicit_config)) == NULL)
		return CTL_STATUS_ERROR;

	/* The daemon judges the words; they only have to fit a line. */
	buf_init(&request);
	for (i = optind; i < argc; i++) {
		if (i > optind)
			buf_addc(&request, ' ');
		buf_adds(&request, argv[i]);
	}
	if (json)
		buf_adds(&request, " json");
	buf_addc(&request, '\n');
	if (request.len > CTL_REQUEST_MAX || strchr(request.data, '\n') !=
	    request.data + request.len - 1) {
		fprintf(stderr, "dovetailctl: the command is longer than %d "
		    "bytes or has a newline\n", CTL_REQUEST_MAX - 1);
		buf_free(&request);
		free(sock);
		return CTL_STATUS_ERROR;
	}
	buf_init(&reply);
	if (ask(sock, request.data, &reply, &cause) == -1) {
		fprintf(stderr, "dovetailctl: %s\n", cause);
		st = CTL_STATUS_ERROR;
	} else {
		st = ctl_reply_status(reply.data == NULL ? "" : reply.data,
		    &body, &cause);
		if (st == CTL_STATUS_ERROR)
			fprintf(stderr, "dovetailctl: %s\n", cause);
		else
			fputs(body, stdout);
	}
	free(cause);
	buf_free(&request);
	buf_free(&reply);
	free(sock);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		perror("dovetailctl: stdout");
		return CTL_STATUS_ERROR;
	}
	return (int)st;
}
