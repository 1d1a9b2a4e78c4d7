/* SPDX-License-Identifier: ISC */
/*
 * acme_probe: one acme_order, for tests/acme-client.sh.  The challenge
 * answers are files in a web root that the script serves over HTTP: the
 * publish hook writes TOKEN there, unpublish removes it.
 *
 * acme_probe -d directory -k account.pem -w webroot [-c ca.pem]
 *     [-o outdir] [-t timeout_ms] [-p poll_ms] [-m contact] [-v] host ...
 *
 * The account key is made (and written) when its file does not exist.
 * On success, outdir/cert.pem and outdir/key.pem are written and
 * "not_after=" is printed; on failure, "cause=", "failed_host=" and
 * "problem=" lines, and the exit status is 1.  Both print "published="
 * and "unpublished=" counts.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dovetail.h"

struct probe {
	const char *webroot;
	unsigned published;
	unsigned unpublished;
};

static int
probe_publish(void *arg, const char *token, const char *keyauth,
    char **cause)
{
	struct probe *p = arg;
	char *path;
	int rc;

	if (!acme_token_valid(token)) {
		*cause = xstrdup("publish: not a token");
		return -1;
	}
	path = xasprintf("%s/%s", p->webroot, token);
	rc = file_write_atomic(path, keyauth, strlen(keyauth), cause);
	free(path);
	if (rc == 0)
		p->published++;
	return rc;
}

static void
probe_unpublish(void *arg, const char *token)
{
	struct probe *p = arg;
	char *path;

	path = xasprintf("%s/%s", p->webroot, token);
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("unlink %s", path);
	free(path);
	p->unpublished++;
}

static void
usage(void)
{
	fprintf(stderr, "usage: acme_probe -d directory -k account.pem "
	    "-w webroot [-c ca.pem] [-o outdir] [-t timeout_ms] "
	    "[-p poll_ms] [-m contact] [-v] host ...\n");
	exit(2);
}

static unsigned
number(const char *s)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v > 3600000)
		usage();
	return (unsigned)v;
}

static void
write_or_die(const char *dir, const char *name, const char *text,
    unsigned mode)
{
	char *path, *cause;

	path = xasprintf("%s/%s", dir, name);
	if (file_write_mode(path, text, strlen(text), mode, &cause) == -1)
		fatalx("%s", cause);
	free(path);
}

int
main(int argc, char **argv)
{
	struct acme_opts o;
	struct acme_hooks h;
	struct acme_result res;
	struct probe p;
	struct buf key;
	const char *key_path = NULL, *outdir = NULL;
	char *cause = NULL, *pem;
	int ch, rc, verbose = LOG_LEVEL_INFO;

	memset(&o, 0, sizeof(o));
	memset(&p, 0, sizeof(p));
	o.timeout_ms = 60000;
	while ((ch = getopt(argc, argv, "c:d:k:m:o:p:t:vw:")) != -1) {
		switch (ch) {
		case 'c':
			o.ca_bundle = optarg;
			break;
		case 'd':
			o.directory = optarg;
			break;
		case 'k':
			key_path = optarg;
			break;
		case 'm':
			o.contact = optarg;
			break;
		case 'o':
			outdir = optarg;
			break;
		case 'p':
			o.poll_ms = number(optarg);
			break;
		case 't':
			o.timeout_ms = number(optarg);
			break;
		case 'v':
			verbose = LOG_LEVEL_DEBUG;
			break;
		case 'w':
			p.webroot = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (o.directory == NULL || key_path == NULL || p.webroot == NULL ||
	    argc == 0)
		usage();
	log_init(verbose);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");

	buf_init(&key);
	if (file_read(key_path, &key, &cause) == -1) {
		free(cause);
		if ((pem = acme_key_new(&cause)) == NULL)
			fatalx("%s", cause);
		if (file_write_mode(key_path, pem, strlen(pem), 0600,
		    &cause) == -1)
			fatalx("%s", cause);
		buf_adds(&key, pem);
		free(pem);
	}

	h.publish = probe_publish;
	h.unpublish = probe_unpublish;
	h.arg = &p;
	rc = acme_order(&o, key.data, (const char *const *)argv,
	    (size_t)argc, &h, &res, &cause);
	printf("published=%u\nunpublished=%u\n", p.published, p.unpublished);
	if (rc == 0) {
		printf("not_after=%lld\n", res.not_after);
		if (outdir != NULL) {
			write_or_die(outdir, "cert.pem", res.cert_pem, 0644);
			write_or_die(outdir, "key.pem", res.key_pem, 0600);
		}
	} else {
		/* Escaped by acme_order already; the host is one of ours. */
		printf("cause=%s\n", cause);
		printf("failed_host=%s\n", res.failed_host == NULL ? "" :
		    res.failed_host);
		printf("problem=%s\n", res.problem == NULL ? "" :
		    res.problem);
		free(cause);
	}
	acme_result_free(&res);
	buf_free(&key);
	curl_global_cleanup();
	return rc == 0 ? 0 : 1;
}
