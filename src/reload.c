/* SPDX-License-Identifier: ISC */
/*
 * Changing what HAProxy loads: files written atomically, checked with
 * "haproxy -c", and reloaded through the master CLI, with the reload
 * confirmed by the master's own counters.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"

#define CHECK_OUTPUT_MAX 65536
/* haproxy -c of a big file takes seconds; a hung one is killed. */
#define CHECK_TIMEOUT_MS 60000

int
file_read(const char *path, struct buf *b, char **cause)
{
	char chunk[8192];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		*cause = xasprintf("%s: %s", path, strerror(errno));
		return -1;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			*cause = xasprintf("%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		buf_add(b, chunk, (size_t)n);
	}
	close(fd);
	return 0;
}

/*
 * Replaces path with data: written to a temporary file in the same
 * directory, flushed, then renamed over path, so a reader (HAProxy at
 * start-up) sees the old file or the new one, never a mix.
 */
int
file_write_atomic(const char *path, const char *data, size_t len,
    char **cause)
{
	return file_write_mode(path, data, len, 0644, cause);
}

/* The same, with the file's mode: 0600 for private keys. */
int
file_write_mode(const char *path, const char *data, size_t len, unsigned mode,
    char **cause)
{
	char *tmp, *dircopy;
	size_t off = 0;
	ssize_t n;
	int fd, dfd;

	tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd == -1) {
		*cause = xasprintf("%s: %s", tmp, strerror(errno));
		free(tmp);
		return -1;
	}
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	free(tmp);
	dircopy = xstrdup(path);
	dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd != -1) {
		fsync(dfd);
		close(dfd);
	}
	free(dircopy);
	return 0;
fail:
	*cause = xasprintf("%s: %s", tmp, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

/*
 * Runs "binary -c -f base -f config".  Returns 0 when HAProxy accepts
 * the files, -1 with *cause when it refuses them, -2 with *cause when the
 * check could not run or finish; output receives what it printed (not
 * quiet: with -q HAProxy does not say why it refuses a file).
 */
static int run_check(const char *, const char *, const char *,
    struct buf *, char **);

int
haproxy_check(const char *binary, const char *base, const char *config,
    struct buf *output, char **cause)
{
	return run_check(binary, base, config, output, cause);
}

/*
 * Whether HAProxy loads a certificate file: a check of a small file
 * binding nothing, which loads it.  Returns 0 when it does, -1 when HAProxy
 * refused it, with *cause (new) HAProxy's own reason ("inconsistencies
 * between private key and certificate"), and -2 with *cause when the
 * check itself could not run.
 */
int
haproxy_check_cert(const char *binary, const char *config, char **cause)
{
	struct buf out;
	char *why;
	int rc;

	buf_init(&out);
	rc = run_check(binary, NULL, config, &out, &why);
	if (rc == -2)
		*cause = why;
	else if (rc == -1) {
		if (haproxy_check_reason(out.data == NULL ? "" : out.data,
		    cause) == 0)
			free(why);
		else {
			*cause = why;
			rc = -2;
		}
	}
	buf_free(&out);
	return rc;
}

/*
 * HAProxy's reason in what "haproxy -c" printed: the rest of the first
 * "[ALERT]" line after "' : ", without the file's path.  Returns 0 with
 * *reason (new), or -1 when the output has none.  Pure.
 */
int
haproxy_check_reason(const char *output, char **reason)
{
	const char *alert, *start, *end, *path;

	alert = strstr(output, "[ALERT]");
	start = alert == NULL ? NULL : strstr(alert, "' : ");
	end = start == NULL ? NULL : strchr(start, '\n');
	if (end == NULL)
		return -1;
	start += 4;
	/* The test file's path says nothing to the user. */
	path = memmem(start, (size_t)(end - start), " '/", 3);
	if (path != NULL)
		end = path;
	*reason = xasprintf("%.*s", (int)(end - start), start);
	return 0;
}

static int
run_check(const char *binary, const char *base, const char *config,
    struct buf *output, char **cause)
{
	const char *argv[8];
	int argc = 0, pipefd[2], status, devnull, rc, timed_out = 0;
	struct pollfd pfd;
	long long deadline, left;
	pid_t pid;
	char chunk[4096];
	ssize_t n;

	if (pipe2(pipefd, O_CLOEXEC) == -1) {
		*cause = xasprintf("pipe: %s", strerror(errno));
		return -2;
	}
	pid = fork();
	if (pid == -1) {
		*cause = xasprintf("fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return -2;
	}
	if (pid == 0) {
		devnull = open("/dev/null", O_RDONLY);
		if (devnull != -1)
			dup2(devnull, STDIN_FILENO);
		dup2(pipefd[1], STDOUT_FILENO);
		dup2(pipefd[1], STDERR_FILENO);
		argv[argc++] = binary;
		argv[argc++] = "-c";
		if (base != NULL && *base != '\0') {
			argv[argc++] = "-f";
			argv[argc++] = base;
		}
		argv[argc++] = "-f";
		argv[argc++] = config;
		argv[argc] = NULL;
		execv(binary, (char *const *)argv);
		dprintf(STDERR_FILENO, "cannot run %s: %s\n", binary,
		    strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	deadline = mono_ms() + CHECK_TIMEOUT_MS;
	for (;;) {
		pfd.fd = pipefd[0];
		pfd.events = POLLIN;
		left = deadline - mono_ms();
		if (left <= 0 || (rc = poll(&pfd, 1, (int)left)) == 0) {
			timed_out = 1;
			kill(pid, SIGKILL);
			break;
		}
		if (rc == -1 && errno == EINTR)
			continue;
		if (rc == -1)
			break;
		n = read(pipefd[0], chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (output->len < CHECK_OUTPUT_MAX)
			buf_add(output, chunk, (size_t)n);
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			*cause = xasprintf("waitpid: %s", strerror(errno));
			return -2;
		}
	}
	if (timed_out) {
		*cause = xasprintf("%s -c did not finish within %d seconds",
		    binary, CHECK_TIMEOUT_MS / 1000);
		return -2;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		*cause = xasprintf("cannot run %s", binary);
		return -2;
	}
	*cause = xasprintf("%s -c refused the configuration", binary);
	return -1;
}

static int
read_proc(const char *master, struct proc_info *p, char **cause)
{
	struct buf out;
	int rc;

	buf_init(&out);
	rc = runtime_query(master, "show proc", &out, cause);
	if (rc == 0)
		rc = hastate_parse_proc(out.data == NULL ? "" : out.data, p,
		    cause);
	buf_free(&out);
	return rc;
}

/* The PID of the running master, or -1 with *cause. */
int
haproxy_master_pid(const char *master, long *pid, char **cause)
{
	struct proc_info p;

	if (read_proc(master, &p, cause) == -1)
		return -1;
	*pid = p.master_pid;
	return 0;
}

/*
 * Asks the master to reload and learns whether it did.  HAProxy 3.0 says
 * so in its answer, with its alerts when the new file failed.  HAProxy
 * 2.6 answers nothing to "reload" and re-executes the master, so the
 * master socket is briefly away: its counters tell, a failed reload
 * showing as a higher "failed" count while the old worker keeps serving.
 */
int
haproxy_reload(const char *master, unsigned timeout_ms, char **cause)
{
	struct proc_info before, after;
	struct buf out;
	long long deadline;
	char *ignored, *alerts;
	int said;

	if (read_proc(master, &before, cause) == -1)
		return -1;
	buf_init(&out);
	if (runtime_query(master, "reload", &out, cause) == -1) {
		buf_free(&out);
		return -1;
	}
	said = hastate_parse_reload(out.data == NULL ? "" : out.data, &alerts);
	buf_free(&out);
	if (said == 1) {
		free(alerts);
		return 0;
	}
	if (said == 0) {
		*cause = xasprintf("HAProxy refused the new configuration: %s",
		    *alerts == '\0' ? "(it gave no reason)" : esc(alerts));
		free(alerts);
		return -1;
	}
	deadline = mono_ms() + (long long)timeout_ms;
	for (;;) {
		if (read_proc(master, &after, &ignored) == 0) {
			if (after.failed > before.failed) {
				*cause = xasprintf("HAProxy refused the new "
				    "configuration (failed reloads: %ld)",
				    after.failed);
				return -1;
			}
			if (after.reloads > before.reloads ||
			    after.master_pid != before.master_pid)
				return 0;
		} else
			free(ignored);
		if (mono_ms() > deadline) {
			*cause = xasprintf("no sign of the reload after %u ms",
			    timeout_ms);
			return -1;
		}
		poll(NULL, 0, 50);
	}
}

/* ---- a check and reload beside the loop ---- */

/*
 * In a child just forked: its report descriptor moved to 3, the parent's
 * other descriptors above it closed (its sockets and pipes are none of
 * the child's), the parent's signal handlers undone.  Returns 0, or -1.
 */
int
child_detach(int report_fd)
{
	if (dup2(report_fd, 3) == -1)
		return -1;
	close_range(4, ~0U, 0);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	return 0;
}

/* What a report may hold: the check's output and a cause. */
#define REPORT_MAX (CHECK_OUTPUT_MAX + 16384)

struct reload_job {
	pid_t pid;
	int fd;			/* the child's report, non-blocking */
	struct buf report;
	long long deadline;
	long long limit_ms;	/* the deadline, from the start */
};

static int
write_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, data, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The child: check, then reload when the check passed, then one report
 * on fd: "OUTCOME CAUSE-LENGTH\n", the cause, what haproxy -c printed.
 * A "c" comes first, alone, as soon as the check passed.
 */
static void
reload_child(int fd, const char *binary, const char *base, const char *config,
    const char *master, unsigned timeout_ms)
{
	enum reload_outcome outcome = RELOAD_DONE;
	struct buf out;
	char *cause = NULL, head[64];
	int n, rc;

	buf_init(&out);
	rc = haproxy_check(binary, base, config, &out, &cause);
	if (rc == -1)
		outcome = RELOAD_REFUSED;
	else if (rc == -2)
		outcome = RELOAD_CHECK_FAILED;
	else if (write_all(fd, "c", 1) == -1)
		_exit(1);
	else if (haproxy_reload(master, timeout_ms, &cause) == -1)
		outcome = RELOAD_FAILED;
	n = snprintf(head, sizeof(head), "%d %zu\n", (int)outcome,
	    cause == NULL ? 0 : strlen(cause));
	if (write_all(fd, head, (size_t)n) == -1 || (cause != NULL &&
	    write_all(fd, cause, strlen(cause)) == -1) ||
	    write_all(fd, out.data == NULL ? "" : out.data, out.len) == -1)
		_exit(1);
	_exit(0);
}

/*
 * Starts checking config (with base) and, when HAProxy accepts it,
 * reloading through master, beside the caller.  Returns the job (new),
 * or NULL with *cause when no process could be started.
 */
struct reload_job *
reload_job_start(const char *binary, const char *base, const char *config,
    const char *master, unsigned reload_timeout_ms, char **cause)
{
	struct reload_job *j;
	pid_t parent = getpid(), pid;
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1) {
		*cause = xasprintf("pipe: %s", strerror(errno));
		return NULL;
	}
	pid = fork();
	if (pid == -1) {
		*cause = xasprintf("fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return NULL;
	}
	if (pid == 0) {
		/*
		 * Its own process group, so that the check it runs goes
		 * with it; gone with dovetail, which may be killed in the
		 * middle of a reload and restarted.
		 */
		setpgid(0, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
		    getppid() != parent)
			_exit(1);
		/* Not left to the check it runs. */
		if (child_detach(p[1]) == -1 ||
		    fcntl(3, F_SETFD, FD_CLOEXEC) == -1)
			_exit(1);
		reload_child(3, binary, base, config, master, reload_timeout_ms);
	}
	close(p[1]);
	j = xcalloc(1, sizeof(*j));
	j->pid = pid;
	j->fd = p[0];
	buf_init(&j->report);
	j->limit_ms = CHECK_TIMEOUT_MS + (long long)reload_timeout_ms + 5000;
	j->deadline = mono_ms() + j->limit_ms;
	/* The loop reads what is there, never waits on it. */
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) == -1) {
		*cause = xasprintf("fcntl: %s", strerror(errno));
		reload_job_free(j);
		return NULL;
	}
	return j;
}

/* The descriptor to poll for the job's report. */
int
reload_job_fd(const struct reload_job *j)
{
	return j->fd;
}

/* When the job is given up (monotonic ms). */
long long
reload_job_deadline(const struct reload_job *j)
{
	return j->deadline;
}

/*
 * Reads a report: 0 with *r filled (r->cause and r->output new), -1
 * when it is not one.  Pure.
 */
int
reload_report_parse(const char *data, size_t len, struct reload_result *r)
{
	const char *nl, *p;
	char *end;
	unsigned long outcome, clen;

	memset(r, 0, sizeof(*r));
	buf_init(&r->output);
	nl = memchr(data, '\n', len);
	if (nl == NULL || len == 0 || data[0] < '0' || data[0] > '9')
		return -1;
	errno = 0;
	outcome = strtoul(data, &end, 10);
	if (errno != 0 || *end != ' ' || outcome > RELOAD_FAILED)
		return -1;
	p = end + 1;
	if (p >= nl || *p < '0' || *p > '9')
		return -1;
	errno = 0;
	clen = strtoul(p, &end, 10);
	if (errno != 0 || end != nl || clen > (size_t)(data + len - nl - 1))
		return -1;
	if ((outcome == RELOAD_DONE) != (clen == 0))
		return -1;
	r->outcome = (enum reload_outcome)outcome;
	if (clen > 0)
		r->cause = xasprintf("%.*s", (int)clen, nl + 1);
	buf_add(&r->output, nl + 1 + clen, (size_t)(data + len - nl - 1) -
	    clen);
	return 0;
}

/* Reads what the job wrote and is there; 1 at its end, 0 otherwise. */
static int
job_read(struct reload_job *j)
{
	char chunk[4096];
	ssize_t n;

	for (;;) {
		n = read(j->fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return n == 0 || errno != EAGAIN;
		if (j->report.len < REPORT_MAX)
			buf_add(&j->report, chunk, (size_t)n);
	}
}

/*
 * Reaps the job (killed first when why is set: the reason) into *r, with
 * what it wrote until then.  A job that ends without a report failed
 * where it was: in the check, or, once the check passed, in the reload.
 */
static void
job_reap(struct reload_job *j, const char *why, struct reload_result *r)
{
	const char *data;
	size_t checked;
	int status = 0;

	if (why != NULL) {
		kill(-j->pid, SIGKILL);
		kill(j->pid, SIGKILL);
	}
	while (waitpid(j->pid, &status, 0) == -1 && errno == EINTR)
		;
	j->pid = -1;
	/* What it wrote before it ended: the pipe holds it still. */
	job_read(j);
	data = j->report.data == NULL ? "" : j->report.data;
	checked = j->report.len > 0 && data[0] == 'c';
	if (reload_report_parse(data + checked, j->report.len - checked,
	    r) == 0)
		return;
	reload_result_free(r);
	memset(r, 0, sizeof(*r));
	buf_init(&r->output);
	r->outcome = checked ? RELOAD_FAILED : RELOAD_CHECK_FAILED;
	if (why != NULL)
		r->cause = xasprintf("the %s %s", checked ? "reload" : "check",
		    why);
	else if (WIFSIGNALED(status))
		r->cause = xasprintf("the %s's process ended on signal %d",
		    checked ? "reload" : "check", WTERMSIG(status));
	else
		r->cause = xasprintf("the %s's process ended without a report",
		    checked ? "reload" : "check");
}

/*
 * Reads what the job said so far.  Returns 1 when it ended, with *r
 * filled (free it with reload_result_free), or 0 while it runs.  A job
 * past its deadline is killed, and ends as RELOAD_CHECK_FAILED, or as
 * RELOAD_FAILED once its check passed.
 */
int
reload_job_poll(struct reload_job *j, long long now, struct reload_result *r)
{
	char *why;

	if (j->pid == -1)
		return 0;
	if (job_read(j)) {
		job_reap(j, NULL, r);
		return 1;
	}
	if (now < j->deadline)
		return 0;
	why = xasprintf("did not finish within %lld seconds",
	    j->limit_ms / 1000);
	job_reap(j, why, r);
	free(why);
	return 1;
}

/*
 * Stops the job now: killed, unless it ended already, and reaped, with
 * *r as reload_job_poll's (a job that reported before it was killed ends
 * as it said).
 */
void
reload_job_stop(struct reload_job *j, struct reload_result *r)
{
	if (j->pid == -1) {
		memset(r, 0, sizeof(*r));
		buf_init(&r->output);
		r->outcome = RELOAD_CHECK_FAILED;
		r->cause = xstrdup("the check was taken in already");
		return;
	}
	job_reap(j, "was stopped", r);
}

/* Waits for the job to end (or its deadline), then as reload_job_poll. */
void
reload_job_wait(struct reload_job *j, struct reload_result *r)
{
	struct pollfd pfd;
	long long left;

	for (;;) {
		if (reload_job_poll(j, mono_ms(), r) == 1)
			return;
		left = j->deadline - mono_ms();
		pfd.fd = j->fd;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, left < 0 ? 0 : (int)left) == -1 &&
		    errno != EINTR)
			poll(NULL, 0, 10);
	}
}

/* Stops a job still running (killing it) and frees it.  NULL: nothing. */
void
reload_job_free(struct reload_job *j)
{
	struct reload_result r;

	if (j == NULL)
		return;
	if (j->pid != -1) {
		job_reap(j, "was stopped", &r);
		reload_result_free(&r);
	}
	close(j->fd);
	buf_free(&j->report);
	free(j);
}

void
reload_result_free(struct reload_result *r)
{
	free(r->cause);
	r->cause = NULL;
	buf_free(&r->output);
}
