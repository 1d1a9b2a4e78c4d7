/* SPDX-License-Identifier: ISC */
/*
 * The systemd notify protocol, spoken directly: one datagram per state
 * change to the socket named by $NOTIFY_SOCKET (a path, or an abstract
 * name when it starts with '@').  Without that variable every call is a
 * no-op, so dovetail behaves the same under any supervisor.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"

/* Sends state (e.g. "READY=1\nSTATUS=..."); returns 0, or -1 on error. */
int
notify_send(const char *state)
{
	struct sockaddr_un sun;
	const char *path;
	socklen_t len;
	size_t plen;
	int fd, rc;

	path = getenv("NOTIFY_SOCKET");
	if (path == NULL || *path == '\0')
		return 0;
	plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path))
		return -1;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen +
	    (path[0] == '@' ? 0 : 1));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	rc = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1 ? -1 : 0;
	if (rc == -1)
		log_debug("notify: %s: %s", path, strerror(errno));
	close(fd);
	return rc;
}

/* "RELOADING=1" with the MONOTONIC_USEC systemd wants beside it. */
int
notify_reloading(void)
{
	struct timespec ts;
	char msg[80];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	return notify_send(msg);
}
