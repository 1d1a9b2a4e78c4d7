/* SPDX-License-Identifier: ISC */
/*
 * Golden directories: tests/data/golden/<case>/ holds a swarm (Docker's
 * JSON for services, tasks and nodes) and optionally what HAProxy runs
 * (show servers state / show backend / show map replies).  The expected
 * outputs sit beside them: the rendered file, the map, the label problems
 * and the runtime plan.  A new case needs no C.  To accept new outputs
 * after a deliberate change, run with DOVETAIL_UPDATE_GOLDEN=1 and review
 * the diff.
 */
#include "config.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static char *
path_in(const char *dir, const char *name)
{
	return xasprintf("%s/golden/%s/%s", test_data_dir(), dir, name);
}

static char *
read_opt(const char *dir, const char *name)
{
	char *p = path_in(dir, name), *text;

	text = test_read_file(p);
	free(p);
	return text;
}

/* One of Docker's replies for the case; optional ones may be absent. */
static void
load_input(struct swarm *sw, const char *dir, const char *name,
    int (*parse)(struct swarm *, const char *, size_t, char **),
    int optional)
{
	char *text, *cause = NULL;

	text = read_opt(dir, name);
	if (text == NULL && optional)
		return;
	ck_assert_msg(text != NULL, "%s: missing %s", dir, name);
	ck_assert_msg(parse(sw, text, strlen(text), &cause) == 0,
	    "%s/%s: %s", dir, name, cause);
	free(text);
}

static int
read_opt_exists(const char *dir, const char *name)
{
	char *text = read_opt(dir, name);

	free(text);
	return text != NULL;
}

static void
compare(const char *dir, const char *name, const char *got)
{
	char *want, *p, *cause;

	if (getenv("DOVETAIL_UPDATE_GOLDEN") != NULL) {
		p = path_in(dir, name);
		ck_assert_msg(file_write_atomic(p, got, strlen(got), &cause) ==
		    0, "%s", cause);
		free(p);
		return;
	}
	want = read_opt(dir, name);
	ck_assert_msg(want != NULL, "%s: missing expected %s", dir, name);
	ck_assert_msg(strcmp(want, got) == 0,
	    "%s/%s differs.\n--- expected\n%s\n--- got\n%s", dir, name, want,
	    got);
	free(want);
}

/* A secret of the case: its secrets/ file. */
static int
read_case_secret(void *arg, const char *name, struct buf *b, char **cause)
{
	char *rel = xasprintf("secrets/%s", name), *text;

	text = read_opt(arg, rel);
	free(rel);
	if (text == NULL) {
		*cause = xstrdup("cannot read the secret");
		return -1;
	}
	buf_adds(b, text);
	free(text);
	return 0;
}

/* Optional "show ..." replies of the case, for the plan. */
static void
load_running_extra(struct running *r, const char *dir)
{
	static const char *const map_files[MAP_COUNT] = { "map.txt",
	    "sni-map.txt", "redirects-map.txt", "acme-map.txt" };
	char *text, *cause = NULL;
	int m;

	for (m = 0; m < MAP_COUNT; m++) {
		text = read_opt(dir, map_files[m]);
		if (text == NULL) {
			r->map_missing[m] = m != MAP_ROUTES;
			continue;
		}
		ck_assert_msg(hastate_parse_map(r, m, text, &cause) == 0,
		    "%s/%s: %s", dir, map_files[m], cause);
		free(text);
	}
	text = read_opt(dir, "crt-list.txt");
	if (text != NULL) {
		ck_assert_msg(hastate_parse_crt_list(r, text, &cause) == 0,
		    "%s: %s", dir, cause);
		free(text);
		text = read_opt(dir, "ssl-certs.txt");
		ck_assert_msg(text != NULL, "%s: missing ssl-certs.txt", dir);
		ck_assert_msg(hastate_parse_certs(r, text, &cause) == 0,
		    "%s: %s", dir, cause);
		free(text);
	}
}

/*
 * The case's ACME store: Docker's configs (configs.json) opened with the
 * sealing key (seal.key), the account's thumbprint in thumbprint.txt.
 * Returns 0 when the case has none.
 */
static int
load_acme(struct acme_store *st, const char *dir)
{
	struct dconfig *v;
	unsigned char key[32];
	char *text, *material, *thumbprint, *cause = NULL;
	size_t n;

	text = read_opt(dir, "configs.json");
	if (text == NULL)
		return 0;
	material = read_opt(dir, "seal.key");
	ck_assert_msg(material != NULL, "%s: configs.json without seal.key",
	    dir);
	ck_assert_msg(seal_key_from(material, strlen(material), key,
	    &cause) == 0, "%s: seal.key: %s", dir, cause);
	ck_assert_msg(swarm_parse_configs(text, strlen(text), &v, &n,
	    &cause) == 0, "%s: configs.json: %s", dir, cause);
	/* The account's thumbprint: the case's challenges' own. */
	thumbprint = read_opt(dir, "thumbprint.txt");
	if (thumbprint != NULL)
		thumbprint[strcspn(thumbprint, "\n")] = '\0';
	acme_store_build(st, v, n, key, thumbprint);
	dconfigs_free(v, n);
	free(text);
	free(material);
	free(thumbprint);
	return 1;
}

/* A case's swarm and what desired_build takes with it. */
struct golden {
	struct swarm *sw;
	char *cluster;
	struct cert_store certs;
	struct acme_store acme;
	struct desired_opts dopts;
};

static void
golden_load(struct golden *g, const char *dir)
{
	struct secret_io io;
	char *nl;

	g->sw = swarm_new();
	load_input(g->sw, dir, "services.json", swarm_parse_services, 0);
	load_input(g->sw, dir, "tasks.json", swarm_parse_tasks, 0);
	load_input(g->sw, dir, "nodes.json", swarm_parse_nodes, 0);
	load_input(g->sw, dir, "networks.json", swarm_parse_networks, 1);
	load_input(g->sw, dir, "secrets.json", swarm_parse_secrets, 1);
	g->cluster = read_opt(dir, "cluster.txt");
	if (g->cluster != NULL && (nl = strchr(g->cluster, '\n')) != NULL)
		*nl = '\0';
	io.read = read_case_secret;
	io.check = NULL;
	io.arg = (void *)dir;
	cert_store_load(&g->certs, g->sw, "com.docker.lb", g->cluster == NULL ?
	    "" : g->cluster, &io);
	memset(&g->dopts, 0, sizeof(g->dopts));
	g->dopts.prefix = "com.docker.lb";
	g->dopts.cluster = g->cluster == NULL ? "" : g->cluster;
	g->dopts.https_port = 443;
	g->dopts.certs = &g->certs;
	/* [acme] on, when the case has a store: configs.json, seal.key. */
	memset(&g->acme, 0, sizeof(g->acme));
	if (load_acme(&g->acme, dir))
		g->dopts.acme = &g->acme;
}

static void
golden_free(struct golden *g)
{
	cert_store_free(&g->certs);
	acme_store_free(&g->acme);
	free(g->cluster);
	swarm_free(g->sw);
}

static const struct render_opts golden_ro = { ":80", ":443", {
    "/etc/haproxy/dovetail.hosts.map",
    "/etc/haproxy/dovetail.sni.map",
    "/etc/haproxy/dovetail.redirects.map",
    "/etc/haproxy/dovetail.acme.map" },
    "/etc/haproxy/dovetail.crt-list", "/etc/haproxy/dovetail.certs",
    "/etc/haproxy/dovetail.certs/default.pem",
    "abns@dovetail-tls-golden", "24h", 1 };

/* One case: its outputs compared with the expected; returns 1. */
static size_t
run_case(const char *dir)
{
	struct golden g;
	struct swarm *sw;
	struct desired *d;
	struct running *r;
	struct render_opts ro = golden_ro;
	struct plan p;
	struct buf out;
	char *text, *cause = NULL;
	size_t i;

	golden_load(&g, dir);
	sw = g.sw;
	d = desired_build(sw, &g.dopts);

	buf_init(&out);
	render_config(&out, d, &ro);
	compare(dir, "haproxy.cfg", out.data);
	/* HAProxy loads the maps the file names: the agent must know which. */
	for (i = 0; i < MAP_COUNT; i++)
		ck_assert_msg((strstr(out.data, ro.map_paths[i]) != NULL) ==
		    (desired_map_used(d, i) != 0), "%s: %s is %sin the file",
		    dir, ro.map_paths[i], desired_map_used(d, i) ? "not " : "");
	buf_reset(&out);
	render_map(&out, d, MAP_ROUTES);
	compare(dir, "hosts.map", out.data);
	buf_reset(&out);
	/* TLS and redirects, when the case has any. */
	if (d->nmap[MAP_SNI] > 0 || d->nmap[MAP_REDIRECTS] > 0 ||
	    d->ncerts > 0 || read_opt_exists(dir, "tls.txt")) {
		render_map(&out, d, MAP_SNI);
		render_map(&out, d, MAP_REDIRECTS);
		if (d->acme_on)
			render_map(&out, d, MAP_ACME);
		for (i = 0; i < d->nacme; i++)
			buf_addf(&out, "# order %s for %s: %zu name(s)\n",
			    d->acme[i].hosts_id, d->acme[i].service,
			    d->acme[i].nhosts);
		render_crt_list(&out, d, ro.certs_dir);
		for (i = 0; i < d->ncerts; i++)
			ck_assert_msg(d->certs[i].info.parsed, "%s: libcrypto "
			    "did not read %s", dir, d->certs[i].file);
		for (i = 0; i < d->ncerts; i++)
			buf_addf(&out, "# %s: %zu bytes%s\n", d->certs[i].file,
			    strlen(d->certs[i].pem), d->certs[i].pem ==
			    d->default_pem ? ", the default" : "");
		compare(dir, "tls.txt", out.data);
		buf_reset(&out);
	}
	for (i = 0; i < d->nproblems; i++)
		buf_addf(&out, "%s\t%s\t%s\n", d->problems[i].service,
		    d->problems[i].label == NULL ? "-" : d->problems[i].label,
		    d->problems[i].message);
	compare(dir, "problems.txt", out.data == NULL ? "" : out.data);

	/* What HAProxy runs, when the case says: then the plan. */
	text = read_opt(dir, "servers-state.txt");
	if (text != NULL) {
		r = running_new();
		ck_assert_msg(hastate_parse_servers(r, text, &cause) == 0,
		    "%s: %s", dir, cause);
		free(text);
		text = read_opt(dir, "backends.txt");
		ck_assert_msg(text != NULL, "%s: missing backends.txt", dir);
		ck_assert_int_eq(hastate_parse_backends(r, text, &cause), 0);
		free(text);
		load_running_extra(r, dir);
		memset(&p, 0, sizeof(p));
		plan_build(&p, d, NULL, r, &ro);
		buf_reset(&out);
		for (i = 0; i < p.ncmds; i++) {
			/* A payload (a certificate) shows as its size. */
			const char *t = p.cmds[i].text, *eol = strchr(t, '\n');

			if (eol == NULL)
				buf_adds(&out, t);
			else
				buf_addf(&out, "%.*s [payload: %zu bytes]",
				    (int)(eol - t), t, strlen(eol + 1));
			buf_addf(&out, "%s%s\n", p.cmds[i].what != NULL ?
			    "\t# " : "", p.cmds[i].what != NULL ?
			    p.cmds[i].what : "");
		}
		compare(dir, "plan.txt", out.data == NULL ? "" : out.data);
		plan_free(&p);
		running_free(r);
	}
	buf_free(&out);
	desired_free(d);
	golden_free(&g);
	return 1;
}

/* The file and the maps of d, for comparing two desired states. */
static char *
rendered(const struct desired *d)
{
	struct buf out;
	int m;

	buf_init(&out);
	render_config(&out, d, &golden_ro);
	for (m = 0; m < MAP_COUNT; m++)
		render_map(&out, d, m);
	buf_addf(&out, "# %zu servers, %zu problems, %zu services, inter %u\n",
	    d->nservers, d->nproblems, d->nservices, d->check_inter);
	return buf_steal(&out);
}

/*
 * Each task of the case changed in turn (it leaves or comes back, it
 * starts or runs, its published port moves): desired_patch_tasks must
 * give what desired_build gives, or say it cannot.  Returns how many
 * changes it patched.
 */
static size_t
patch_case(const char *dir)
{
	struct golden g;
	struct desired *d, *full, *old;
	struct task *t;
	char *want, *got, *ids[1];
	size_t i, patched = 0;
	int rc;

	golden_load(&g, dir);
	d = desired_build(g.sw, &g.dopts);
	for (i = 0; i < g.sw->ntasks * 2; i++) {
		t = &g.sw->tasks[i % g.sw->ntasks];
		if (i % 3 == 0 || (i % 3 == 2 && t->nports == 0))
			t->desired_running = !t->desired_running;
		else if (i % 3 == 1)
			t->state = t->state == TASK_RUNNING ? TASK_STARTING :
			    TASK_RUNNING;
		else
			t->ports[0].published++;
		g.dopts.check_inter = d->check_inter;
		full = desired_build(g.sw, &g.dopts);
		ids[0] = t->service_id;
		rc = desired_patch_tasks(d, g.sw, &g.dopts, ids, 1, &old);
		if (rc == -1) {
			ck_assert_ptr_null(old);
			desired_free(d);
			d = full;
			continue;
		}
		ck_assert_ptr_nonnull(old);
		ck_assert_int_eq((int)old->nbackends, rc);
		want = rendered(full);
		got = rendered(d);
		ck_assert_msg(strcmp(want, got) == 0, "%s: task %s changed "
		    "(%zu): patched\n%s\n--- built\n%s", dir, t->id, i, got,
		    want);
		free(want);
		free(got);
		desired_free(old);
		desired_free(full);
		patched += rc > 0;
	}
	desired_free(d);
	golden_free(&g);
	return patched;
}

/* Runs fn on each case directory; returns the sum of what it returns. */
static size_t
each_case(size_t (*fn)(const char *))
{
	char *root;
	DIR *dp;
	struct dirent *de;
	size_t sum = 0;

	root = xasprintf("%s/golden", test_data_dir());
	dp = opendir(root);
	ck_assert_msg(dp != NULL, "cannot open %s", root);
	while ((de = readdir(dp)) != NULL)
		if (de->d_name[0] != '.')
			sum += fn(de->d_name);
	closedir(dp);
	free(root);
	return sum;
}

START_TEST(test_golden_cases)
{
	ck_assert_uint_ge(each_case(run_case), 5);
}
END_TEST

START_TEST(test_golden_patch_tasks)
{
	/* Most changes reach a routed backend and are patched. */
	ck_assert_uint_ge(each_case(patch_case), 100);
}
END_TEST

Suite *
suite_golden(void)
{
	Suite *s = suite_create("golden");
	TCase *tc = tcase_create("cases");

	tcase_add_test(tc, test_golden_cases);
	tcase_add_test(tc, test_golden_patch_tasks);
	suite_add_tcase(s, tc);
	return s;
}
