/* SPDX-License-Identifier: ISC */
/*
 * The INI configuration file, through config_load as dovetail reads it:
 * the bytes are a file in memory (memfd), opened by its /proc path.
 */
#include "config.h"

#include <sys/mman.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static int memfd = -1;
static char path[64];

static void
check_config(const struct config *c)
{
	char *p;

	FUZZ_ASSERT(c->docker_url != NULL && *c->docker_url != '\0');
	FUZZ_ASSERT(c->haproxy_config[0] == '/');
	FUZZ_ASSERT(!fuzz_has_any(c->haproxy_config, " \t\n;#\"'\\"));
	FUZZ_ASSERT(!fuzz_has_any(c->runtime_socket, " \t\n;#\"'\\"));
	FUZZ_ASSERT(!fuzz_has_any(c->master_socket, " \t\n;#\"'\\"));
	FUZZ_ASSERT(!fuzz_has_any(c->secrets_dir, " \t\n;#\"'\\"));
	FUZZ_ASSERT(config_check_bind(c->http_bind) == 0);
	FUZZ_ASSERT(*c->https_bind == '\0' ||
	    config_check_bind(c->https_bind) == 0);
	FUZZ_ASSERT(*c->listen == '\0' || config_check_bind(c->listen) == 0);
	FUZZ_ASSERT(c->poll_interval_ms >= 10 && c->docker_timeout_ms >= 10);
	p = config_state_path(c, "crt-list");
	FUZZ_ASSERT(p[0] == '/');
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *c;
	char *cause;
	size_t off = 0;
	ssize_t n;

	if (memfd == -1) {
		if ((memfd = memfd_create("dovetail-fuzz.conf", 0)) == -1)
			fatal("memfd_create");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) == -1 || lseek(memfd, 0, SEEK_SET) == -1)
		fatal("ftruncate");
	while (off < size) {
		if ((n = write(memfd, data + off, size - off)) == -1)
			fatal("write");
		off += (size_t)n;
	}
	c = config_new();
	if (config_load(c, path, &cause) == 0) {
		check_config(c);
		if (config_validate(c, &cause) == -1)
			free(cause);
	} else {
		FUZZ_ASSERT(strncmp(cause, path, strlen(path)) == 0);
		free(cause);
	}
	config_free(c);
	return 0;
}
