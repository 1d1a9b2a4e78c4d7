/* SPDX-License-Identifier: ISC */
/*
 * Parsing what the HAProxy runtime API and master CLI answer: "show
 * servers state", "show backend", "show map" and "show proc".  Pure.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "dovetail.h"

#define STATE_MAX_FIELDS 32

struct running *
running_new(void)
{
	return xcalloc(1, sizeof(struct running));
}

static void
free_entries(struct rmapent *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

void
running_free(struct running *r)
{
	size_t i;
	int m;

	if (r == NULL)
		return;
	for (i = 0; i < r->nservers; i++) {
		free(r->servers[i].backend);
		free(r->servers[i].name);
		free(r->servers[i].addr);
	}
	free(r->servers);
	for (i = 0; i < r->nbackends; i++)
		free(r->backends[i]);
	free(r->backends);
	for (m = 0; m < MAP_COUNT; m++)
		free_entries(r->maps[m], r->nmap[m]);
	for (i = 0; i < r->ncert_files; i++)
		free(r->cert_files[i]);
	free(r->cert_files);
	free_entries(r->crt_list, r->ncrt_list);
	free_entries(r->committed, r->ncommitted);
	free(r);
}

/*
 * Cuts the next line out of the text at *cursor (modified) and advances
 * it; NULL at the end of the text.
 */
static char *
next_line(char **cursor)
{
	char *line = *cursor, *nl;

	if (line == NULL || *line == '\0')
		return NULL;
	nl = strchr(line, '\n');
	if (nl != NULL)
		*nl++ = '\0';
	*cursor = nl;
	return line;
}

/*
 * -1 with *cause when a reply holds a byte that must never come back into
 * a runtime command built from its names (';' ends a command, '\\'
 * escapes, control characters): HAProxy holds only names dovetail gave
 * it, so such a reply is not trusted at all.
 */
static int
reply_unsafe(const char *text, const char *what, char **cause)
{
	static const char bad[] = ";\\\x7f\x01\x02\x03\x04\x05\x06\x07\x08"
	    "\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19"
	    "\x1a\x1b\x1c\x1d\x1e\x1f";
	size_t at = strcspn(text, bad);

	if (text[at] == '\0')
		return 0;
	*cause = xasprintf("%s: the reply holds byte 0x%02x, which no name "
	    "dovetail gives HAProxy holds", what, (unsigned char)text[at]);
	return -1;
}

/* Splits line (modified) on blanks; returns the number of fields. */
static size_t
split_fields(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *p = line;

	while (*p != '\0' && n < max) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		fields[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	return n;
}

/* A decimal number of no more than 9 digits (every field read is). */
static int
parse_ulong(const char *s, unsigned long *v)
{
	const char *p;

	*v = 0;
	for (p = s; *p >= '0' && *p <= '9'; p++) {
		if (p - s == 9)
			return -1;
		*v = *v * 10 + (unsigned long)(*p - '0');
	}
	return p == s || *p != '\0' ? -1 : 0;
}

/* Servers by backend, then name. */
int
rserver_cmp(const void *a, const void *b)
{
	const struct rserver *x = a, *y = b;
	int c;

	c = strcmp(x->backend, y->backend);
	return c != 0 ? c : strcmp(x->name, y->name);
}

/* Map entries (and their likes) by key. */
int
rmapent_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rmapent *)a)->key,
	    ((const struct rmapent *)b)->key);
}

/* Column positions, looked up in the header so a new column is harmless. */
struct state_cols {
	int be_name, srv_name, srv_addr, srv_op_state, srv_admin_state,
	    srv_port, srv_uweight;
	int srv_check_result;	/* optional */
};

/*
 * The column named name among a header's n fields (f[0] is "#"): the
 * last so named, or -1.
 */
static int
col_named(char *const *f, size_t n, const char *name)
{
	int col = -1;
	size_t i;

	for (i = 1; i < n; i++)
		if (strcmp(f[i], name) == 0)
			col = (int)i - 1;
	return col;
}

static int
header_cols(char *header, struct state_cols *c, char **cause)
{
	char *f[STATE_MAX_FIELDS];
	size_t n;

	n = split_fields(header, f, STATE_MAX_FIELDS);
	c->be_name = col_named(f, n, "be_name");
	c->srv_name = col_named(f, n, "srv_name");
	c->srv_addr = col_named(f, n, "srv_addr");
	c->srv_op_state = col_named(f, n, "srv_op_state");
	c->srv_admin_state = col_named(f, n, "srv_admin_state");
	c->srv_port = col_named(f, n, "srv_port");
	c->srv_uweight = col_named(f, n, "srv_uweight");
	c->srv_check_result = col_named(f, n, "srv_check_result");
	if (c->be_name < 0 || c->srv_name < 0 || c->srv_addr < 0 ||
	    c->srv_op_state < 0 || c->srv_admin_state < 0 || c->srv_port < 0 ||
	    c->srv_uweight < 0) {
		*cause = xstrdup("show servers state: header lacks a column");
		return -1;
	}
	return 0;
}

/*
 * Room in *v (of n elements of size) for one more per line of text, made
 * once: growing by one element at a time costs a copy, or for the mapped
 * arrays of a large reply a system call, per element.
 */
static void *
reserve_lines(void *v, size_t n, size_t size, const char *text)
{
	size_t lines = 1;

	for (; (text = strchr(text, '\n')) != NULL; text++)
		lines++;
	return xreallocarray(v, n + lines, size);
}

/*
 * A digest of a "show servers state" reply that leaves out the seconds
 * since each server's last change, which move by themselves: each line
 * but that field, and where it was.  hastate_parse_servers does not read
 * the field, so equal digests mean equal servers parsed (hash collisions
 * aside; and a byte it would refuse in that field goes unseen, harmless
 * as the field is not read), which lets an idle reconcile that finds
 * HAProxy as it left it stop there.  A few times cheaper than the parse.
 */
uint64_t
hastate_servers_digest(const char *text)
{
	const char *at, *end, *p, *fs;
	char *line, *f[STATE_MAX_FIELDS];
	uint64_t h = HASH_INIT;
	size_t len, n;
	int skip = -1;

	for (at = text; *at != '\0'; at = end + (*end == '\n')) {
		end = strchr(at, '\n');
		if (end == NULL)
			end = at + strlen(at);
		len = (size_t)(end - at);
		if (*at == '#') {
			/* The header: where the field is, if anywhere. */
			line = xstrndup(at, len);
			skip = col_named(f, split_fields(line, f,
			    STATE_MAX_FIELDS), "srv_time_since_last_change");
			free(line);
		}
		/* The field as split_fields cuts it, in a server's line. */
		p = at;
		fs = NULL;
		if (skip >= 0 && *at != '#') {
			for (n = 0; n <= (size_t)skip; n++) {
				while (p < end && (*p == ' ' || *p == '\t'))
					p++;
				if (p == end)
					break;
				for (fs = p; p < end && *p != ' ' && *p != '\t';
				    p++)
					;
			}
			if (n <= (size_t)skip)
				fs = NULL;
		}
		if (fs == NULL) {
			h = hash_bytes(at, len + 1, h);
			continue;
		}
		n = (size_t)(fs - at);
		h = hash_bytes(&n, sizeof(n), h);
		h = hash_bytes(at, n, h);
		h = hash_bytes(p, (size_t)(end - p) + 1, h);
	}
	return h;
}

/* Appends the servers listed in a "show servers state" reply. */
int
hastate_parse_servers(struct running *r, const char *text, char **cause)
{
	const char *at, *end;
	char *line, *f[STATE_MAX_FIELDS];
	struct state_cols c;
	struct rserver *s;
	struct buf one;
	unsigned long op, admin, port, weight, check;
	size_t n, i, j, first = r->nservers;
	int have_header = 0, rc = 0, max;

	memset(&c, 0, sizeof(c));
	if (reply_unsafe(text, "show servers state", cause) == -1)
		return -1;
	r->servers = reserve_lines(r->servers, r->nservers, sizeof(*r->servers),
	    text);
	/* A line at a time: a copy of a reply of megabytes costs more. */
	buf_init(&one);
	for (at = text; *at != '\0'; at = end + (*end == '\n')) {
		end = at + strcspn(at, "\n");
		buf_reset(&one);
		buf_add(&one, at, (size_t)(end - at));
		line = one.data;
		if (line[0] == '\0')
			continue;
		if (line[0] == '#') {
			if ((rc = header_cols(line, &c, cause)) == -1)
				break;
			have_header = 1;
			continue;
		}
		if (!have_header) {
			/* the format version line, "1" */
			if (strcmp(line, "1") == 0)
				continue;
			*cause = xasprintf("show servers state: unexpected "
			    "\"%s\"", esc(line));
			rc = -1;
			break;
		}
		n = split_fields(line, f, STATE_MAX_FIELDS);
		max = c.be_name;
		if (c.srv_name > max)
			max = c.srv_name;
		if (c.srv_addr > max)
			max = c.srv_addr;
		if (c.srv_op_state > max)
			max = c.srv_op_state;
		if (c.srv_admin_state > max)
			max = c.srv_admin_state;
		if (c.srv_port > max)
			max = c.srv_port;
		if (c.srv_uweight > max)
			max = c.srv_uweight;
		if ((int)n <= max ||
		    parse_ulong(f[c.srv_op_state], &op) == -1 ||
		    parse_ulong(f[c.srv_admin_state], &admin) == -1 ||
		    parse_ulong(f[c.srv_port], &port) == -1 || port > 65535 ||
		    parse_ulong(f[c.srv_uweight], &weight) == -1 ||
		    weight > 256) {
			*cause = xasprintf("show servers state: bad line "
			    "for backend \"%s\"", esc(n > 0 ? f[0] : ""));
			rc = -1;
			break;
		}
		s = &r->servers[r->nservers++];
		s->backend = xstrdup(f[c.be_name]);
		s->name = xstrdup(f[c.srv_name]);
		s->addr = xstrdup(f[c.srv_addr]);
		s->port = (uint16_t)port;
		s->op = (unsigned)op;
		s->admin = (unsigned)admin;
		s->weight = (int)weight;
		s->check_result = c.srv_check_result >= 0 &&
		    (size_t)c.srv_check_result < n &&
		    parse_ulong(f[c.srv_check_result], &check) == 0 &&
		    check <= 255 ? (unsigned)check : 0;
	}
	buf_free(&one);
	/*
	 * HAProxy lists a backend's servers together, in the order they were
	 * made: sorted a backend at a time, the whole is sorted when the
	 * backends are (dovetail writes them so), with no sort of it all.
	 */
	for (i = first; i < r->nservers; i = j) {
		for (j = i + 1; j < r->nservers && strcmp(r->servers[j].backend,
		    r->servers[i].backend) == 0; j++)
			;
		sort_array(&r->servers[i], j - i, sizeof(*r->servers),
		    rserver_cmp);
	}
	sort_array(r->servers, r->nservers, sizeof(*r->servers), rserver_cmp);
	return rc;
}

/* Appends the backends listed in a "show backend" reply. */
int
hastate_parse_backends(struct running *r, const char *text, char **cause)
{
	char *copy, *line, *next;

	if (reply_unsafe(text, "show backend", cause) == -1)
		return -1;
	copy = xstrdup(text);
	for (next = copy; (line = next_line(&next)) != NULL;) {
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (strchr(line, ' ') != NULL) {
			*cause = xasprintf("show backend: unexpected \"%s\"",
			    esc(line));
			free(copy);
			return -1;
		}
		r->backends = xreallocarray(r->backends, r->nbackends + 1,
		    sizeof(char *));
		r->backends[r->nbackends++] = xstrdup(line);
	}
	free(copy);
	sort_array(r->backends, r->nbackends, sizeof(char *), str_cmp_ptr);
	return 0;
}

/* Into room reserve_lines made. */
static void
add_entry(struct rmapent **v, size_t *n, const char *key, const char *value)
{
	(*v)[*n].key = xstrdup(key);
	(*v)[*n].value = xstrdup(value);
	(*n)++;
}

/* Appends the entries of a "show map" reply: "0xID key value". */
int
hastate_parse_map(struct running *r, enum map_kind m, const char *text,
    char **cause)
{
	char *copy, *line, *next, *f[4];
	size_t n;

	if (reply_unsafe(text, "show map", cause) == -1)
		return -1;
	r->maps[m] = reserve_lines(r->maps[m], r->nmap[m],
	    sizeof(*r->maps[m]), text);
	copy = xstrdup(text);
	for (next = copy; (line = next_line(&next)) != NULL;) {
		if (line[0] == '\0')
			continue;
		n = split_fields(line, f, 4);
		if (n != 3 || strncmp(f[0], "0x", 2) != 0) {
			*cause = xasprintf("show map: unexpected \"%s\"",
			    esc(line));
			free(copy);
			return -1;
		}
		add_entry(&r->maps[m], &r->nmap[m], f[1], f[2]);
	}
	free(copy);
	sort_array(r->maps[m], r->nmap[m], sizeof(*r->maps[m]), rmapent_cmp);
	return 0;
}

/* The files of a "show ssl cert" reply (paths). */
int
hastate_parse_certs(struct running *r, const char *text, char **cause)
{
	char *copy, *line, *next;

	if (reply_unsafe(text, "show ssl cert", cause) == -1)
		return -1;
	copy = xstrdup(text);
	for (next = copy; (line = next_line(&next)) != NULL;) {
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (line[0] == '*')	/* an open transaction */
			line++;
		if (strchr(line, ' ') != NULL) {
			*cause = xasprintf("show ssl cert: unexpected \"%s\"",
			    esc(line));
			free(copy);
			return -1;
		}
		r->cert_files = xreallocarray(r->cert_files,
		    r->ncert_files + 1, sizeof(char *));
		r->cert_files[r->ncert_files++] = xstrdup(line);
	}
	free(copy);
	sort_array(r->cert_files, r->ncert_files, sizeof(char *),
	    str_cmp_ptr);
	return 0;
}

/*
 * The entries of a "show ssl crt-list" reply: "# list" then "path
 * [filters...]", keyed by the file's base name, filters as one string.
 */
int
hastate_parse_crt_list(struct running *r, const char *text, char **cause)
{
	char *copy, *line, *next, *sp, *base;

	if (reply_unsafe(text, "show ssl crt-list", cause) == -1)
		return -1;
	r->crt_list = reserve_lines(r->crt_list, r->ncrt_list,
	    sizeof(*r->crt_list), text);
	copy = xstrdup(text);
	for (next = copy; (line = next_line(&next)) != NULL;) {
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (line[0] != '/') {
			*cause = xasprintf("show ssl crt-list: unexpected "
			    "\"%s\"", esc(line));
			free(copy);
			return -1;
		}
		sp = strchr(line, ' ');
		if (sp != NULL)
			*sp++ = '\0';
		base = strrchr(line, '/');
		add_entry(&r->crt_list, &r->ncrt_list, base + 1,
		    sp == NULL ? "" : sp);
	}
	free(copy);
	sort_array(r->crt_list, r->ncrt_list, sizeof(*r->crt_list),
	    rmapent_cmp);
	r->tls = 1;
	return 0;
}

/*
 * The first of v[from..n) (sorted) not before key: galloping from from,
 * so that keys looked up in order cost what lies between them.
 */
static size_t
rserver_gallop(const struct rserver *key, const struct rserver *v,
    size_t from, size_t n)
{
	size_t lo = from, hi = from, step = 1;

	while (hi < n && rserver_cmp(&v[hi], key) < 0) {
		lo = hi + 1;
		hi += step;
		step *= 2;
	}
	if (hi > n)
		hi = n;
	return lo + lower_bound(key, v + lo, hi - lo, sizeof(*v),
	    rserver_cmp);
}

/*
 * The servers that were up, by a health check that passed, at the
 * earlier read and are down now, out of maintenance: a task that stopped
 * answering its health checks (not one that never answered: a new worker
 * counts its servers up until their first check).  Docker
 * says nothing of a task that fails on another node, so this is how such
 * a task's service comes to be read again.  Returns how many; *out (new
 * array, free it) borrows the servers of now.
 */
size_t
hastate_fallen(const struct running *before, const struct running *now,
    const struct rserver ***out)
{
	const struct rserver *s, *was;
	size_t i, j = 0, n = 0;

	*out = NULL;
	if (before == NULL || now == NULL)
		return 0;
	for (i = 0; i < now->nservers; i++) {
		s = &now->servers[i];
		if (s->op != SRV_OP_STOPPED || rserver_in_maint(s))
			continue;
		j = rserver_gallop(s, before->servers, j, before->nservers);
		was = j < before->nservers &&
		    rserver_cmp(&before->servers[j], s) == 0 ?
		    &before->servers[j] : NULL;
		if (was == NULL || was->op != SRV_OP_RUNNING ||
		    (was->check_result != SRV_CHECK_PASSED &&
		    was->check_result != SRV_CHECK_CONDPASS))
			continue;
		*out = xreallocarray(*out, n + 1, sizeof(**out));
		(*out)[n++] = s;
	}
	return n;
}

/*
 * The master CLI's answer to "reload": HAProxy 2.7 and later answer
 * "Success=1" or "Success=0", a "--" line and the start-up messages,
 * once the new worker is up or has failed; 2.6 answers nothing.  Returns
 * 1 or 0 for such an answer (*alerts: new, HAProxy's alerts, "" for
 * none), -1 for any other (2.6: the counters of "show proc" tell).
 */
int
hastate_parse_reload(const char *reply, char **alerts)
{
	*alerts = NULL;
	if (strncmp(reply, "Success=1", 9) == 0 && (reply[9] == '\n' ||
	    reply[9] == '\0')) {
		*alerts = xstrdup("");
		return 1;
	}
	if (strncmp(reply, "Success=0", 9) == 0 && (reply[9] == '\n' ||
	    reply[9] == '\0')) {
		*alerts = hastate_check_alerts(reply);
		return 0;
	}
	return -1;
}

/*
 * Reads the master CLI's "show proc": the master line carries the reload
 * count and, on 2.6, "[failed: N]"; the first worker line under
 * "# workers" is the newest worker.
 */
int
hastate_parse_proc(const char *text, struct proc_info *p, char **cause)
{
	char *copy, *line, *next, *f[8], *failed;
	size_t n;
	unsigned long v;
	long fcount;
	int in_workers = 0, seen_master = 0;

	p->master_pid = p->reloads = p->failed = p->worker_pid = -1;
	copy = xstrdup(text);
	for (next = copy; (line = next_line(&next)) != NULL;) {
		if (line[0] == '#') {
			in_workers = strncmp(line, "# workers", 9) == 0;
			continue;
		}
		failed = strstr(line, "[failed:");
		fcount = failed == NULL ? 0 : strtol(failed + 8, NULL, 10);
		n = split_fields(line, f, 8);
		if (n >= 3 && strcmp(f[1], "master") == 0) {
			if (parse_ulong(f[0], &v) == -1)
				break;
			p->master_pid = (long)v;
			if (parse_ulong(f[2], &v) == -1)
				break;
			p->reloads = (long)v;
			p->failed = fcount;
			seen_master = 1;
		} else if (n >= 2 && in_workers && p->worker_pid == -1 &&
		    strcmp(f[1], "worker") == 0 &&
		    parse_ulong(f[0], &v) == 0) {
			p->worker_pid = (long)v;
		}
	}
	free(copy);
	if (!seen_master || p->reloads < 0) {
		*cause = xstrdup("show proc: no master line");
		return -1;
	}
	return 0;
}

int
running_has_backend(const struct running *r, const char *name)
{
	return find_in_array(&name, r->backends, r->nbackends, sizeof(char *),
	    str_cmp_ptr) != NULL;
}

/*
 * Leaves in r only the backends among names (sorted) and dovetail's own
 * no-route one: a plan then touches no other.  Order is kept.
 */
void
running_keep_backends(struct running *r, char *const *names, size_t n)
{
	size_t i, kept = 0;

	for (i = 0; i < r->nbackends; i++) {
		if (strcmp(r->backends[i], DT_BACKEND_NO_ROUTE) == 0 ||
		    find_in_array(&r->backends[i], names, n, sizeof(char *),
		    str_cmp_ptr) != NULL)
			r->backends[kept++] = r->backends[i];
		else
			free(r->backends[i]);
	}
	r->nbackends = kept;
}

/*
 * Puts into to the servers from holds of the backends from lists (from
 * a read of those backends only), in place of those it had of them.
 */
void
running_take_servers(struct running *to, const struct running *from)
{
	struct rserver *v, *s;
	size_t i = 0, j = 0, n = 0;

	/* Both sorted: one merge, not a sort of all the servers. */
	v = xcalloc(to->nservers + from->nservers + 1, sizeof(*v));
	while (i < to->nservers || j < from->nservers) {
		if (i < to->nservers && running_has_backend(from,
		    to->servers[i].backend)) {
			s = &to->servers[i++];
			free(s->backend);
			free(s->name);
			free(s->addr);
		} else if (j == from->nservers || (i < to->nservers &&
		    rserver_cmp(&to->servers[i], &from->servers[j]) < 0))
			v[n++] = to->servers[i++];
		else {
			s = &v[n++];
			*s = from->servers[j++];
			s->backend = xstrdup(s->backend);
			s->name = xstrdup(s->name);
			s->addr = xstrdup(s->addr);
		}
	}
	free(to->servers);
	to->servers = v;
	to->nservers = n;
}

int
rserver_in_maint(const struct rserver *s)
{
	return (s->admin & SRV_ADMIN_MAINT_MASK) != 0;
}

/*
 * What "haproxy -c" said, for the log: its [ALERT] lines without their
 * prefix, joined by "; ", less the two that only say errors were found.
 * New string, "" when there is none.
 */
char *
hastate_check_alerts(const char *out)
{
	struct buf b;
	const char *line, *nl, *msg;
	char *s;
	size_t len;

	buf_init(&b);
	for (line = out; line != NULL && *line != '\0'; line = nl) {
		nl = strchr(line, '\n');
		len = nl == NULL ? strlen(line) : (size_t)(nl - line);
		if (nl != NULL)
			nl++;
		if (strncmp(line, "[ALERT]", 7) != 0)
			continue;
		/* "[ALERT]    (123) : config : MESSAGE" */
		msg = memmem(line, len, " : config : ", 12);
		msg = msg == NULL ? line + 7 : msg + 12;
		len -= (size_t)(msg - line);
		if ((len >= 15 && strncmp(msg, "Error(s) found ", 15) == 0) ||
		    (len >= 12 && strncmp(msg, "Fatal errors", 12) == 0))
			continue;
		if (b.len > 0)
			buf_adds(&b, "; ");
		buf_add(&b, msg, len);
	}
	s = xstrdup(b.data == NULL ? "" : b.data);
	buf_free(&b);
	return s;
}

/*
 * The first line of file that "haproxy -c" refused, in an [ALERT]
 * ("parsing [FILE:LINE]" or "Parsing [FILE:LINE]"), and its message
 * (new).  0 when no alert names a line of file.
 */
unsigned
hastate_check_line(const char *out, const char *file, char **message)
{
	const char *p, *q, *end, *bol;
	unsigned long line;
	size_t n = strlen(file);
	char *e;

	for (p = out; (p = strstr(p, "arsing [")) != NULL; p++) {
		/* Only an alert: warnings name lines HAProxy took. */
		for (bol = p; bol > out && bol[-1] != '\n'; bol--)
			;
		if (strncmp(bol, "[ALERT]", 7) != 0)
			continue;
		q = p + 8;
		if (strncmp(q, file, n) != 0 || q[n] != ':')
			continue;
		line = strtoul(q + n + 1, &e, 10);
		if (e == q + n + 1 || *e != ']' || line == 0 || line > 1000000)
			continue;
		q = e + 1;
		q += strspn(q, " ");
		if (*q == ':')
			q++;
		q += strspn(q, " ");
		end = strchr(q, '\n');
		*message = end == NULL ? xstrdup(q) : xstrndup(q,
		    (size_t)(end - q));
		return (unsigned)line;
	}
	return 0;
}
