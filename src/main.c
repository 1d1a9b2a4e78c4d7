/* SPDX-License-Identifier: ISC */
/*
 * dovetail: command line, configuration, then the agent.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#ifdef HAVE_MALLOC_H
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dovetail.h"

#define DEFAULT_CONFIG_PATH SYSCONFDIR "/dovetail/dovetail.conf"

enum {
	OPT_ONCE = 256,
	OPT_HELP,
	OPT_KEY_BASE = 1000,
};

static void
usage(FILE *f)
{
	size_t i;
	int w;

	fprintf(f, "usage: dovetail [-hnVv] [-c file] [--once] "
	    "[--section-key value ...]\n\n"
	    "Keeps one HAProxy equal to a Docker swarm: services labelled "
	    "com.docker.lb.*\nare routed by host name; task changes go "
	    "through the HAProxy runtime API,\nnew or removed backends "
	    "through a checked, seamless reload.\n\n"
	    "  -c FILE       configuration file (default %s)\n"
	    "  -n            check the configuration and exit\n"
	    "  -v            log more; repeat for more still\n"
	    "  -V, --version print the version and exit\n"
	    "  --once        one full reconcile (write the HAProxy file, "
	    "apply it if\n                HAProxy answers), then exit\n"
	    "  -h, --help    this text\n\n"
	    "Every configuration key is also an option; it wins over the "
	    "file:\n", DEFAULT_CONFIG_PATH);
	for (i = 0; i < config_nkeys; i++) {
		const struct config_key *k = &config_keys[i];

		w = fprintf(f, "  --%s %s", k->option, k->arg);
		fprintf(f, "%*s%s [%s]", w < 40 ? 40 - w : 1, "", k->help,
		    *k->def == '\0' ? "empty" : k->def);
		fputc('\n', f);
	}
	fprintf(f, "\nExit status: 0 success, 1 error (bad configuration, "
	    "--once failed),\n2 bad command line.\n");
}

int
main(int argc, char **argv)
{
	struct option *longopts;
	struct config_override *overrides;
	struct config *cfg = NULL;
	const char *config_path = DEFAULT_CONFIG_PATH;
	char *cause = NULL;
	size_t i, noverrides = 0;
	int ch, check_only = 0, once = 0, verbosity = LOG_LEVEL_INFO;
	int explicit_config = 0, have_file, rc = 1;

#ifdef M_MMAP_THRESHOLD
	/*
	 * The big buffers (Docker's replies, the file: megabytes at 2,000
	 * services) are mapped and given back when freed, instead of
	 * raising the heap for good: glibc's threshold would otherwise grow
	 * past them after the first one is freed.
	 */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
#endif
	longopts = xcalloc(config_nkeys + 4, sizeof(*longopts));
	longopts[0] = (struct option){ "version", no_argument, NULL, 'V' };
	longopts[1] = (struct option){ "once", no_argument, NULL, OPT_ONCE };
	longopts[2] = (struct option){ "help", no_argument, NULL, 'h' };
	for (i = 0; i < config_nkeys; i++)
		longopts[3 + i] = (struct option){ config_keys[i].option,
		    required_argument, NULL, OPT_KEY_BASE + (int)i };
	overrides = xcalloc((size_t)argc, sizeof(*overrides));

	while ((ch = getopt_long(argc, argv, "c:hnVv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			config_path = optarg;
			explicit_config = 1;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		case 'n':
			check_only = 1;
			break;
		case 'V':
			printf("dovetail %s\n", PACKAGE_VERSION);
			rc = 0;
			goto out;
		case 'v':
			verbosity++;
			break;
		case OPT_ONCE:
			once = 1;
			break;
		default:
			if (ch >= OPT_KEY_BASE &&
			    ch < OPT_KEY_BASE + (int)config_nkeys) {
				overrides[noverrides].key =
				    (size_t)(ch - OPT_KEY_BASE);
				overrides[noverrides].value = optarg;
				noverrides++;
				break;
			}
			usage(stderr);
			rc = 2;
			goto out;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dovetail: unexpected argument \"%s\"\n",
		    argv[optind]);
		usage(stderr);
		rc = 2;
		goto out;
	}
	log_init(verbosity);

	/* The default file may be absent (built-in defaults); -c's may not. */
	cfg = config_new();
	have_file = explicit_config || access(config_path, F_OK) == 0;
	if (have_file && config_load(cfg, config_path, &cause) == -1) {
		log_warnx("%s", cause);
		goto out;
	}
	for (i = 0; i < noverrides; i++) {
		if (config_set_option(cfg, overrides[i].key,
		    overrides[i].value, &cause) == -1) {
			log_warnx("--%s: %s", config_keys[overrides[i].key]
			    .option, cause);
			goto out;
		}
	}
	if (config_validate(cfg, &cause) == -1) {
		log_warnx("%s", cause);
		goto out;
	}
	if (check_only) {
		if (have_file)
			printf("%s: configuration OK\n", config_path);
		else
			printf("%s does not exist: the built-in defaults and "
			    "options are OK\n", config_path);
		rc = 0;
		goto out;
	}
	if (!have_file)
		log_info("%s does not exist: using the built-in defaults",
		    config_path);

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx("curl_global_init failed");
	rc = agent_run(cfg, have_file ? config_path : NULL, overrides,
	    noverrides, once);
	curl_global_cleanup();
out:
	free(cause);
	config_free(cfg);
	free(overrides);
	free(longopts);
	return rc;
}
