/* SPDX-License-Identifier: ISC */
/*
 * Logging to standard error, one line per message, in the style of the
 * OpenBSD daemons: warn (with errno), warnx, info, debug, fatal.
 * systemd and container runtimes add their own timestamps; dovetail adds
 * only the level.  Every string that came from outside goes through esc().
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dovetail.h"

static int log_verbosity = LOG_LEVEL_INFO;
static int log_timestamps;

/*
 * Lines carry a UTC timestamp with milliseconds, except under journald
 * ($JOURNAL_STREAM set), which stamps them itself.
 */
void
log_init(int verbosity)
{
	log_verbosity = verbosity;
	log_timestamps = getenv("JOURNAL_STREAM") == NULL;
}

/* The control socket's "log verbose" and "log brief", at run time. */
void
log_set_verbosity(int verbosity)
{
	log_verbosity = verbosity;
}

int
log_get_verbosity(void)
{
	return log_verbosity;
}

int
log_enabled(enum log_level level)
{
	return (int)level <= log_verbosity;
}

static void
log_emit(const char *level, const char *fmt, va_list ap, const char *suffix)
{
	struct buf b;

	buf_init(&b);
	if (log_timestamps) {
		struct timespec ts;
		struct tm tm;
		char when[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		buf_addf(&b, "%s.%03ldZ ", when, ts.tv_nsec / 1000000);
	}
	buf_adds(&b, "dovetail: ");
	buf_adds(&b, level);
	buf_vaddf(&b, fmt, ap);
	if (suffix != NULL) {
		buf_adds(&b, ": ");
		buf_adds(&b, suffix);
	}
	buf_addc(&b, '\n');
	fwrite(b.data, 1, b.len, stderr);
	fflush(stderr);
	buf_free(&b);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit("warning: ", fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("warning: ", fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(LOG_LEVEL_INFO))
		return;
	va_start(ap, fmt);
	log_emit("", fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(LOG_LEVEL_DEBUG))
		return;
	va_start(ap, fmt);
	log_emit("debug: ", fmt, ap, NULL);
	va_end(ap);
}

void
log_trace(const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(LOG_LEVEL_TRACE))
		return;
	va_start(ap, fmt);
	log_emit("trace: ", fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	va_start(ap, fmt);
	log_emit("fatal: ", fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit("fatal: ", fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

/*
 * Appends s with control characters, backslashes, quotes and bytes above
 * 0x7e written as escapes, cut at max input bytes with "..." after.
 */
void
str_escape(struct buf *b, const char *s, size_t max)
{
	size_t i;
	unsigned char c;

	if (s == NULL) {
		buf_adds(b, "(null)");
		return;
	}
	for (i = 0; s[i] != '\0'; i++) {
		if (i == max) {
			buf_adds(b, "...");
			break;
		}
		c = (unsigned char)s[i];
		if (c == '\n')
			buf_adds(b, "\\n");
		else if (c == '\t')
			buf_adds(b, "\\t");
		else if (c == '\\' || c == '"')
			buf_addf(b, "\\%c", c);
		else if (c < 0x20 || c > 0x7e)
			buf_addf(b, "\\x%02x", c);
		else
			buf_addc(b, (char)c);
	}
}

/*
 * Escaped copy of s for one log line.  The result lives in one of a few
 * rotating static buffers, so several may appear in one log call.
 */
const char *
esc(const char *s)
{
	static char ring[8][320];
	static unsigned next;
	struct buf b;
	char *slot;

	buf_init(&b);
	str_escape(&b, s, 200);
	slot = ring[next++ % 8];
	snprintf(slot, sizeof(ring[0]), "%s", b.data == NULL ? "" : b.data);
	buf_free(&b);
	return slot;
}

/* Milliseconds on the monotonic clock: the agent's only notion of time. */
long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
