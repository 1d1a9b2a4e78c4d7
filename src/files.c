/* SPDX-License-Identifier: ISC */
/*
 * The files HAProxy loads: the generated file and its side files (the
 * maps, the crt-list), written only when they change, checked with
 * haproxy -c while HAProxy is away, and put back as they were when a
 * write or a check fails.  The services whose part of the file haproxy -c
 * refused are left out (quarantine) here too, until their labels change.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dovetail.h"
#include "agent.h"

/*
 * A file HAProxy would load could not be written (a full disk, most
 * likely): HAProxy keeps what it runs, the runtime changes go on, and the
 * error stays in /healthz until a reconcile writes its files again.
 */
void
file_failed(struct agent *a, char *cause)
{
	a->metrics.file_errors++;
	report_once(&a->file_error, xasprintf("files: %s; HAProxy keeps the "
	    "previous file, task changes go on at run time", cause));
	free(cause);
}

int
write_if_changed(const char *path, char **disk, const char *text,
    char **cause)
{
	/* The text on disk itself, as an idle reconcile passes it. */
	if (*disk == text || (*disk != NULL && strcmp(*disk, text) == 0))
		return 0;
	if (file_write_atomic(path, text, strlen(text), cause) == -1)
		return -1;
	free(*disk);
	*disk = xstrdup(text);
	return 0;
}

/* Puts back the previous content of path, or removes it if it had none. */
static void
restore(const char *path, char **disk, const char *old)
{
	char *cause;

	if (old == NULL) {
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("%s", path);
		free(*disk);
		*disk = NULL;
	} else if (write_if_changed(path, disk, old, &cause) == -1) {
		log_warnx("%s", cause);
		free(cause);
	}
}

int
write_sides(struct agent *a, char *const *want, char **cause)
{
	int i;

	for (i = 0; i < NSIDE; i++)
		if (write_if_changed(a->side_path[i], &a->disk_side[i],
		    want[i], cause) == -1)
			return -1;
	return 0;
}

/* A service's labels as one string, to see when they change (new). */
static char *
labels_text(const struct service *s)
{
	struct buf b;
	char *t;
	size_t i;

	buf_init(&b);
	for (i = 0; i < s->nlabels; i++)
		buf_addf(&b, "%s=%s\n", s->labels[i].key, s->labels[i].value);
	t = xstrdup(b.data == NULL ? "" : b.data);
	buf_free(&b);
	return t;
}

void
unquarantine(struct agent *a, size_t i)
{
	problem_free(&a->quarantine[i]);
	free(a->quarantine_labels[i]);
	a->nquarantine--;
	a->quarantine[i] = a->quarantine[a->nquarantine];
	a->quarantine_labels[i] = a->quarantine_labels[a->nquarantine];
}

/* Services quarantined come back once their labels change, or go. */
void
prune_quarantine(struct agent *a)
{
	const struct service *s;
	char *now;
	size_t i = 0;
	int same;

	while (i < a->nquarantine) {
		s = swarm_service_named(a->swarm, a->quarantine[i].service);
		now = s == NULL ? NULL : labels_text(s);
		same = now != NULL && strcmp(now, a->quarantine_labels[i]) == 0;
		free(now);
		if (same)
			i++;
		else {
			log_info("service %s: labels changed, trying it again",
			    esc(a->quarantine[i].service));
			unquarantine(a, i);
		}
	}
}

/*
 * haproxy -c refused the file for a line of it: when that line is in a
 * service's backend, that service (or the services sharing it) is left
 * out with HAProxy's reason, and every other service goes on.  Returns
 * whether some service was left out.
 */
static int
quarantine_refused(struct agent *a, const char *config, const char *out)
{
	const struct service *s;
	char *message, *names, *name, *next;
	unsigned line;
	int added = 0;

	line = hastate_check_line(out, a->cfg->haproxy_config, &message);
	if (line == 0)
		return 0;
	names = render_services_at(config, line);
	for (name = names; name != NULL && *name != '\0'; name = next) {
		next = strchr(name, ' ');
		if (next != NULL)
			*next++ = '\0';
		if ((s = swarm_service_named(a->swarm, name)) == NULL)
			continue;
		a->quarantine = xreallocarray(a->quarantine,
		    a->nquarantine + 1, sizeof(*a->quarantine));
		a->quarantine_labels = xreallocarray(a->quarantine_labels,
		    a->nquarantine + 1, sizeof(char *));
		a->quarantine[a->nquarantine].service = xstrdup(name);
		a->quarantine[a->nquarantine].label = NULL;
		a->quarantine[a->nquarantine].message = xasprintf("HAProxy "
		    "refuses its part of the file (line %u): %s", line,
		    esc(message));
		a->quarantine_labels[a->nquarantine] = labels_text(s);
		a->nquarantine++;
		added = 1;
	}
	free(names);
	free(message);
	return added;
}

void
saved_files_free(struct saved_files *old)
{
	int i;

	free(old->config);
	for (i = 0; i < NSIDE; i++)
		free(old->side[i]);
	memset(old, 0, sizeof(*old));
}

void
restore_files(struct agent *a, const struct saved_files *old)
{
	int i;

	restore(a->cfg->haproxy_config, &a->disk_config, old->config);
	for (i = 0; i < NSIDE; i++)
		restore(a->side_path[i], &a->disk_side[i], old->side[i]);
}

/*
 * What path holds before it is written (new): what dovetail wrote there,
 * or, before it wrote anything, what is on disk (written by an earlier
 * run, which HAProxy may be running), so that a refused file puts that
 * back rather than removing it.  NULL with *none set when there is no
 * file, NULL with *cause when it cannot be read.
 */
static char *
saved_text(const char *path, const char *written, int *none, char **cause)
{
	struct buf b;

	*none = 0;
	if (written != NULL)
		return xstrdup(written);
	if (access(path, F_OK) == -1 && errno == ENOENT) {
		*none = 1;
		return NULL;
	}
	buf_init(&b);
	if (file_read(path, &b, cause) == -1) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

/*
 * Writes the certificates, the side files and the file, keeping in *old
 * what they held.  On failure the files are put back, the cause reported
 * and -1 returned.
 */
int
write_files(struct agent *a, const struct desired *d, const char *config,
    char *const *sides, struct saved_files *old)
{
	char *cause = NULL;
	int i, none;

	memset(old, 0, sizeof(*old));
	old->config = saved_text(a->cfg->haproxy_config, a->disk_config, &none,
	    &cause);
	for (i = 0; i < NSIDE && cause == NULL; i++)
		old->side[i] = saved_text(a->side_path[i], a->disk_side[i],
		    &none, &cause);
	if (cause != NULL) {
		saved_files_free(old);
		file_failed(a, cause);
		return -1;
	}
	if (write_certs(a, d, 0, &cause) == 0 &&
	    write_sides(a, sides, &cause) == 0 &&
	    write_if_changed(a->cfg->haproxy_config, &a->disk_config, config,
	    &cause) == 0)
		return 0;
	restore_files(a, old);
	saved_files_free(old);
	file_failed(a, cause);
	return -1;
}

/*
 * haproxy -c refused config (the files are back as they were): HAProxy's
 * reason is logged, the same file is not tried again, and the services
 * it names are left out.  Returns -2 when some were (a reconcile without
 * them comes before anything else), -1 otherwise.
 */
int
check_refused(struct agent *a, const char *config, const char *cause,
    const struct buf *out)
{
	char *said;

	said = hastate_check_alerts(out->data == NULL ? "" : out->data);
	log_warnx("haproxy: %s; keeping the previous file. HAProxy said: %s",
	    cause, esc(said));
	free(said);
	free(a->refused_config);
	a->refused_config = xstrdup(config);
	/*
	 * Without the services it names, at once.  Only backends of the
	 * file HAProxy runs were changed meanwhile (a backend HAProxy
	 * refused may share its name with one of the base file's).
	 */
	if (!quarantine_refused(a, config, out->data == NULL ? "" :
	    out->data))
		return -1;
	a->dirty = 1;
	return -2;
}

/*
 * Writes the side files and the file, checked with haproxy -c, waiting
 * for it: only while HAProxy is away, as a running one is reloaded
 * beside the loop (flight_start).  On any failure the previous files are
 * put back and -1 returned; -2 when the refusal put services in
 * quarantine.
 */
int
write_checked(struct agent *a, const struct desired *d, const char *config,
    char *const *sides)
{
	struct saved_files old;
	struct buf out;
	char *cause = NULL;
	int rc;

	/* The same file would be refused again: wait for a change. */
	if (a->refused_config != NULL && strcmp(a->refused_config, config) == 0)
		return -1;
	if (write_files(a, d, config, sides, &old) == -1)
		return -1;
	buf_init(&out);
	rc = haproxy_check(a->cfg->haproxy_binary, a->cfg->haproxy_base,
	    a->cfg->haproxy_config, &out, &cause);
	if (rc != 0)
		restore_files(a, &old);
	if (rc == -2) {
		/* Not HAProxy's judgement: the same file is tried again. */
		log_warnx("haproxy: %s; keeping the previous file", cause);
		rc = -1;
	} else if (rc == -1)
		rc = check_refused(a, config, cause, &out);
	free(cause);
	buf_free(&out);
	saved_files_free(&old);
	return rc;
}
