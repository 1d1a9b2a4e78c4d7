/* SPDX-License-Identifier: ISC */
/*
 * Certificate files: the certificate and key secrets the services name,
 * read, combined and judged by haproxy -c once per distinct pair; the
 * files written into the certificates directory and removed once HAProxy
 * no longer loads them; warnings of the certificates about to expire.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dovetail.h"
#include "agent.h"

static int
cert_warned_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cert_warned *)a)->file,
	    ((const struct cert_warned *)b)->file);
}

/*
 * Warns of each certificate served that expires within cert_warn_days,
 * or has expired: once, then once a day while it stays so.  Only the
 * certificates still served are remembered.
 */
void
warn_certs(struct agent *a, const struct desired *d)
{
	struct cert_warned *kept, key, *old;
	long long now = (long long)time(NULL), days;
	enum cert_expiry e;
	char when[32], *who;
	size_t i, n = 0;

	kept = xcalloc(d->ncerts + 1, sizeof(*kept));
	for (i = 0; i < d->ncerts; i++) {
		const struct dcert *c = &d->certs[i];

		e = tls_expiry(&c->info, now, a->cfg->cert_warn_days);
		if (e == CERT_VALID)
			continue;
		key.file = c->file;
		old = find_in_array(&key, a->warned, a->nwarned,
		    sizeof(*a->warned), cert_warned_cmp);
		kept[n].file = xstrdup(c->file);
		kept[n].not_after = c->info.not_after;
		kept[n].at = old == NULL ? 0 : old->at;
		if (old == NULL || old->not_after != c->info.not_after ||
		    now - old->at >= CERT_WARN_EVERY) {
			kept[n].at = now;
			days = tls_days_left(c->info.not_after, now);
			ctl_time(when, sizeof(when), c->info.not_after);
			who = c->info.subject == NULL ? xstrdup("") :
			    xasprintf(" (CN %s)", esc(c->info.subject));
			if (e == CERT_EXPIRED)
				log_warnx("certificate %s of service %s%s "
				    "expired %s: clients refuse it; renew its "
				    "secret", c->file, esc(c->service), who,
				    when);
			else
				log_warnx("certificate %s of service %s%s "
				    "expires %s, in %lld day%s: renew its "
				    "secret", c->file, esc(c->service), who,
				    when, days, days == 1 ? "" : "s");
			free(who);
		}
		n++;
	}
	for (i = 0; i < a->nwarned; i++)
		free(a->warned[i].file);
	free(a->warned);
	a->warned = kept;
	a->nwarned = n;
}

/*
 * Writes the certificate files HAProxy will load with the file.  A file
 * already there is replaced only with overwrite: a running HAProxy gets a
 * changed certificate through the runtime API, and the file follows once
 * it took it.
 */
int
write_certs(struct agent *a, const struct desired *d, int overwrite,
    char **cause)
{
	char *path;
	size_t i;
	int rc = 0;

	if (!desired_https(d) || d->ncerts == 0)
		return 0;
	if (mkdir(a->certs_dir, 0700) == -1 && errno != EEXIST) {
		*cause = xasprintf("%s: %s", a->certs_dir, strerror(errno));
		return -1;
	}
	for (i = 0; rc == 0 && i <= d->ncerts; i++) {
		const char *pem = i == d->ncerts ? d->default_pem :
		    d->certs[i].pem;

		path = i == d->ncerts ? xstrdup(a->default_cert) :
		    xasprintf("%s/%s", a->certs_dir, d->certs[i].file);
		if (overwrite || access(path, F_OK) == -1)
			rc = file_write_mode(path, pem, strlen(pem), 0600, cause);
		free(path);
	}
	return rc;
}

/* A certificate HAProxy now holds (or dropped) follows on disk. */
void
cert_applied(struct agent *a, const struct cmd *c)
{
	char *path, *cause;

	if (c->file == NULL || (c->kind != CMD_CERT_COMMIT &&
	    c->kind != CMD_CERT_DEL))
		return;
	path = xasprintf("%s/%s", a->certs_dir, c->file);
	if (c->kind == CMD_CERT_DEL) {
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("%s", path);
	} else if (mkdir(a->certs_dir, 0700) == -1 && errno != EEXIST)
		log_warn("%s", a->certs_dir);
	else if (file_write_mode(path, c->pem, strlen(c->pem), 0600, &cause) ==
	    -1) {
		log_warnx("%s", cause);
		free(cause);
	}
	free(path);
}

/*
 * Whether path is one of the files of dovetail's own Docker TLS client
 * (they may well sit in the secrets directory, as Docker secrets): a
 * label must never make HAProxy serve them.
 */
static int
own_credential(const struct config *cfg, const char *path)
{
	const char *own[] = { cfg->docker_tls_key, cfg->docker_tls_cert,
	    cfg->docker_tls_ca };
	char *p, *o;
	size_t i;
	int same = 0;

	if ((p = realpath(path, NULL)) == NULL)
		return 0;
	for (i = 0; i < sizeof(own) / sizeof(own[0]) && !same; i++) {
		if (*own[i] == '\0' || (o = realpath(own[i], NULL)) == NULL)
			continue;
		same = strcmp(p, o) == 0;
		free(o);
	}
	free(p);
	return same;
}

static int
read_secret(void *arg, const char *name, struct buf *b, char **cause)
{
	const struct agent *a = arg;
	char *path = xasprintf("%s/%s", a->cfg->secrets_dir, name), *why;
	int rc;

	if (own_credential(a->cfg, path)) {
		*cause = xstrdup("the secret is dovetail's own Docker client "
		    "credential, never a certificate for a service");
		free(path);
		return -1;
	}
	if ((rc = file_read(path, b, &why)) == -1) {
		*cause = xasprintf("cannot read the secret: %s", why);
		free(why);
	}
	free(path);
	return rc;
}

/* Whether HAProxy loads pem, asked once per distinct pair. */
static const char *
check_cert(void *arg, const char *pem)
{
	struct agent *a = arg;
	struct cert_check *c;
	int rc;
	char *pem_path, *cfg_path, *cfg, *cause = NULL;
	size_t i;

	for (i = 0; i < a->nchecks; i++) {
		if (strcmp(a->checks[i].pem, pem) == 0) {
			a->checks[i].used = 1;
			return a->checks[i].error;
		}
	}
	a->checks = xreallocarray(a->checks, a->nchecks + 1,
	    sizeof(*a->checks));
	c = &a->checks[a->nchecks++];
	c->pem = xstrdup(pem);
	c->error = NULL;
	c->used = 1;
	pem_path = xasprintf("%s/check.pem", a->certs_dir);
	cfg_path = xasprintf("%s/check.cfg", a->certs_dir);
	cfg = xasprintf("frontend dovetail-certificate-check\n\tmode http\n"
	    "\tbind 127.0.0.1:1 ssl crt %s\n", pem_path);
	if ((mkdir(a->certs_dir, 0700) == -1 && errno != EEXIST) ||
	    file_write_mode(pem_path, pem, strlen(pem), 0600, &cause) == -1 ||
	    file_write_atomic(cfg_path, cfg, strlen(cfg), &cause) == -1) {
		/* Not the certificate's fault: asked again next time. */
		log_warnx("certificate check: %s", cause != NULL ? cause :
		    strerror(errno));
		free(cause);
		free(c->pem);
		a->nchecks--;
		c = NULL;
	} else if ((rc = haproxy_check_cert(a->cfg->haproxy_binary, cfg_path,
	    &cause)) == -1) {
		c->error = xasprintf("HAProxy refuses the certificate and key: "
		    "%s", esc(cause));
		free(cause);
	} else if (rc == -2) {
		/* HAProxy did not say: asked again next time. */
		log_warnx("certificate check: %s", cause);
		free(cause);
		free(c->pem);
		a->nchecks--;
		c = NULL;
	}
	unlink(pem_path);
	unlink(cfg_path);
	free(pem_path);
	free(cfg_path);
	free(cfg);
	return c == NULL ? "the certificate could not be checked" : c->error;
}

/*
 * Reads the certificate and key files the services name and combines
 * each pair, checked; the desired state takes them from the store.
 */
void
load_certs(struct agent *a, struct cert_store *st)
{
	struct secret_io io = { read_secret, check_cert, a };
	size_t i;

	for (i = 0; i < a->nchecks; i++)
		a->checks[i].used = 0;
	cert_store_load(st, a->swarm, a->cfg->label_prefix,
	    a->cfg->service_cluster, &io);
	/* Forget the verdicts on pairs no service uses any more. */
	for (i = 0; i < a->nchecks;) {
		if (a->checks[i].used) {
			i++;
			continue;
		}
		free(a->checks[i].pem);
		free(a->checks[i].error);
		a->checks[i] = a->checks[--a->nchecks];
	}
}

/*
 * The name of the certificate file i of d (0 to ncerts: the last is the
 * default one), and its path (new) in *path.
 */
static const char *
committed_file(const struct agent *a, const struct desired *d, size_t i,
    char **path)
{
	const char *file = i == d->ncerts ? "default.pem" : d->certs[i].file;

	*path = xasprintf("%s/%s", a->certs_dir, file);
	return file;
}

/*
 * What identifies the certificate files read_committed reads (each one's
 * size, times and inode, or its absence), so that one changed by hand
 * makes an idle reconcile compare again.
 */
uint64_t
committed_digest(const struct agent *a, const struct desired *d)
{
	struct stat st;
	uint64_t h = HASH_INIT, v[6];
	char *path;
	size_t i;

	for (i = 0; i <= d->ncerts; i++) {
		committed_file(a, d, i, &path);
		memset(v, 0, sizeof(v));
		if (stat(path, &st) == 0) {
			v[0] = (uint64_t)st.st_size;
			v[1] = (uint64_t)st.st_mtim.tv_sec;
			v[2] = (uint64_t)st.st_mtim.tv_nsec;
			v[3] = (uint64_t)st.st_ctim.tv_sec;
			v[4] = (uint64_t)st.st_ctim.tv_nsec;
			v[5] = (uint64_t)st.st_ino;
		}
		h = hash_bytes(v, sizeof(v), h);
		free(path);
	}
	return h;
}

/* What the certificate files on disk hold: what HAProxy was given. */
void
read_committed(struct agent *a, const struct desired *d, struct running *r)
{
	struct buf b;
	char *path, *cause;
	const char *file;
	size_t i;

	buf_init(&b);
	for (i = 0; i <= d->ncerts; i++) {
		file = committed_file(a, d, i, &path);
		buf_reset(&b);
		if (file_read(path, &b, &cause) == 0) {
			r->committed = xreallocarray(r->committed,
			    r->ncommitted + 1, sizeof(*r->committed));
			r->committed[r->ncommitted].key = xstrdup(file);
			r->committed[r->ncommitted].value = xstrdup(
			    b.data == NULL ? "" : b.data);
			r->ncommitted++;
		} else
			free(cause);
		free(path);
	}
	buf_free(&b);
	sort_array(r->committed, r->ncommitted, sizeof(*r->committed),
	    rmapent_cmp);
}

/*
 * Certificate files no longer in use, once HAProxy reloaded without them:
 * neither in d nor among keep (sorted names, those of the file loaded).
 */
void
prune_certs(struct agent *a, const struct desired *d, char *const *keep,
    size_t nkeep)
{
	DIR *dir;
	struct dirent *e;
	struct dcert key;
	char *path, *name;

	/* Without TLS, no key is left behind. */
	if (d->ncerts == 0 && nkeep == 0 && unlink(a->default_cert) == -1 &&
	    errno != ENOENT)
		log_warn("%s", a->default_cert);
	if ((dir = opendir(a->certs_dir)) == NULL)
		return;
	while ((e = readdir(dir)) != NULL) {
		key.file = name = e->d_name;
		if (strncmp(name, "svc-", 4) != 0 || find_in_array(&key,
		    d->certs, d->ncerts, sizeof(*d->certs), dcert_cmp) != NULL ||
		    find_in_array(&name, keep, nkeep, sizeof(char *),
		    str_cmp_ptr) != NULL)
			continue;
		path = xasprintf("%s/%s", a->certs_dir, name);
		if (unlink(path) == -1)
			log_warn("%s", path);
		free(path);
	}
	closedir(dir);
}
