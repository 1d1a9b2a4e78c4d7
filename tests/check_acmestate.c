/* SPDX-License-Identifier: ISC */
/* Unit tests of acmestate.c: the ACME store and what to order when. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "check.h"

#define NOW 1796083200LL	/* 2026-12-01 */
#define DAY 86400LL

START_TEST(test_hosts_id)
{
	char *a[] = { "a.example", "b.example" };
	char *b[] = { "a.example,b.example" };
	char *c[] = { "b.example", "a.example" };
	char *x, *y, *z;

	x = acme_hosts_id(a, 2);
	y = acme_hosts_id(b, 1);
	z = acme_hosts_id(c, 2);
	/* The first 16 hex digits of SHA-256("a.example,b.example"). */
	ck_assert_str_eq(x, "2c3ba6cdce09fc2a");
	/* Joined names are the same text: the certificate's own names are
	 * what tells them apart (desired.c checks them). */
	ck_assert_str_eq(x, y);
	/* The caller sorts: another order is another id. */
	ck_assert_str_ne(x, z);
	ck_assert_uint_eq(strlen(z), 16);
	free(x);
	free(y);
	free(z);
}
END_TEST

START_TEST(test_cert_data)
{
	char *data, *chain, *sealed;

	data = acme_cert_data("-----BEGIN CERTIFICATE-----\nAA\n"
	    "-----END CERTIFICATE-----", "dtseal1:QUJD");
	ck_assert_str_eq(data, "-----BEGIN CERTIFICATE-----\nAA\n"
	    "-----END CERTIFICATE-----\ndtseal1:QUJD\n");
	ck_assert_int_eq(acme_cert_split(data, &chain, &sealed), 0);
	ck_assert_str_eq(chain, "-----BEGIN CERTIFICATE-----\nAA\n"
	    "-----END CERTIFICATE-----\n");
	ck_assert_str_eq(sealed, "dtseal1:QUJD");
	free(data);
	free(chain);
	free(sealed);
	/* No sealed line, one that does not start a line, or text after it. */
	ck_assert_int_eq(acme_cert_split("chain only\n", &chain, &sealed), -1);
	ck_assert_int_eq(acme_cert_split("dtseal1:QUJD\n", &chain, &sealed),
	    -1);
	ck_assert_int_eq(acme_cert_split("c\nx dtseal1:QUJD\n", &chain,
	    &sealed), -1);
	ck_assert_int_eq(acme_cert_split("c\ndtseal1:QUJD\nmore\n", &chain,
	    &sealed), -1);
}
END_TEST

START_TEST(test_outcome)
{
	struct acme_outcome o;

	ck_assert_int_eq(acme_parse_outcome("ok 2100000000\n", &o), 0);
	ck_assert_int_eq(o.result, ACME_ORDER_OK);
	ck_assert_int_eq(o.not_after, 2100000000LL);
	ck_assert_int_eq(acme_parse_outcome("locked\n", &o), 0);
	ck_assert_int_eq(o.result, ACME_ORDER_LOCKED);
	ck_assert_int_eq(acme_parse_outcome("failed ghost.example\t"
	    "urn:ietf:params:acme:error:dns: no A record\n", &o), 0);
	ck_assert_int_eq(o.result, ACME_ORDER_FAILED);
	ck_assert_str_eq(o.host, "ghost.example");
	ck_assert_str_eq(o.why, "urn:ietf:params:acme:error:dns: no A record");
	free(o.host);
	free(o.why);
	/* "-": no one name; a name that is no host name is dropped. */
	ck_assert_int_eq(acme_parse_outcome("failed -\tCA away\n", &o), 0);
	ck_assert_ptr_null(o.host);
	free(o.why);
	ck_assert_int_eq(acme_parse_outcome("failed a;b\tx\n", &o), 0);
	ck_assert_ptr_null(o.host);
	free(o.why);
	ck_assert_int_eq(acme_parse_outcome("", &o), -1);
	ck_assert_int_eq(acme_parse_outcome("ok\n", &o), -1);
	ck_assert_int_eq(acme_parse_outcome("ok 12x\n", &o), -1);
	ck_assert_int_eq(acme_parse_outcome("ok 99999999999999999999\n", &o),
	    -1);
	ck_assert_int_eq(acme_parse_outcome("failed no tab\n", &o), -1);
	ck_assert_int_eq(acme_parse_outcome("lockedx\n", &o), -1);
}
END_TEST

START_TEST(test_retry)
{
	ck_assert_int_eq(acme_retry_at(1, 600, NOW), NOW + 600);
	ck_assert_int_eq(acme_retry_at(2, 600, NOW), NOW + 1200);
	ck_assert_int_eq(acme_retry_at(4, 600, NOW), NOW + 4800);
	/* Doubled to a day, no further, and no overflow after many. */
	ck_assert_int_eq(acme_retry_at(9, 600, NOW), NOW + ACME_RETRY_MAX_S);
	ck_assert_int_eq(acme_retry_at(4000000000u, 600, NOW),
	    NOW + ACME_RETRY_MAX_S);
}
END_TEST

/* A store of one certificate for "h1" expiring at not_after, made at
 * created; a second that did not open, for "h2"; a lock for "h3". */
static void
store_of(struct acme_store *st, long long not_after, long long created)
{
	memset(st, 0, sizeof(*st));
	st->certs = xcalloc(2, sizeof(*st->certs));
	st->ncerts = 2;
	st->certs[0].hosts_id = xstrdup("h1");
	st->certs[0].created = created;
	st->certs[0].pair.pem = xstrdup("PEM");
	st->certs[0].pair.info.parsed = 1;
	st->certs[0].pair.info.not_after = not_after;
	st->certs[1].hosts_id = xstrdup("h2");
	st->certs[1].created = created;
	st->certs[1].pair.error = xstrdup("does not open");
	st->locks = xcalloc(1, sizeof(*st->locks));
	st->locks[0].hosts_id = xstrdup("h3");
	st->locks[0].expires = NOW + 60;
	st->nlocks = 1;
}

START_TEST(test_due)
{
	struct acme_policy p = { 30, 12 * 3600, 600 };
	struct acme_want w = { "h1", NULL, 0, "svc" };
	struct acme_track t = { "h1", 0, 0, 0, NULL };
	struct acme_store st;

	/* Valid for 60 days: nothing to do; 20 days: renewal. */
	store_of(&st, NOW + 60 * DAY, NOW - 70 * DAY);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_NOT_DUE);
	ck_assert_int_eq(acme_state(&w, &st, NULL, 30, NOW), ACME_VALID);
	acme_store_free(&st);
	store_of(&st, NOW + 20 * DAY, NOW - 70 * DAY);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_DUE_RENEW);
	ck_assert_int_eq(acme_state(&w, &st, NULL, 30, NOW), ACME_RENEWING);
	/* A failure waits its turn, then the renewal is due again. */
	t.failures = 2;
	t.failed_at = NOW - 10;
	t.next_try = NOW + 100;
	ck_assert_int_eq(acme_due(&w, &st, &t, &p, NOW), ACME_NOT_DUE);
	ck_assert_int_eq(acme_state(&w, &st, &t, 30, NOW), ACME_FAILING);
	ck_assert_int_eq(acme_due(&w, &st, &t, &p, NOW + 100), ACME_DUE_RENEW);
	/* "locked" sets next_try without a failure: it is waited for too. */
	t.failures = 0;
	ck_assert_int_eq(acme_due(&w, &st, &t, &p, NOW), ACME_NOT_DUE);
	acme_store_free(&st);
	/* Another dovetail's certificate, newer than this one's failure:
	 * not failing any more. */
	store_of(&st, NOW + 80 * DAY, NOW - 5);
	t.failures = 1;
	ck_assert_int_eq(acme_state(&w, &st, &t, 30, NOW), ACME_VALID);
	t.failed_at = NOW - 1;
	ck_assert_int_eq(acme_state(&w, &st, &t, 30, NOW), ACME_FAILING);
	acme_store_free(&st);
	/* A window longer than the certificate's life: once per
	 * renew_interval, not on every pass. */
	p.renew_days = 3650;
	store_of(&st, NOW + 1800 * DAY, NOW - 60);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_NOT_DUE);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW + 12 * 3600),
	    ACME_DUE_RENEW);
	/* No certificate at all: new; one that does not open counts as
	 * none, but not before renew_interval (another node's may be fine). */
	w.hosts_id = "h9";
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_DUE_NEW);
	ck_assert_int_eq(acme_state(&w, &st, NULL, 30, NOW), ACME_PENDING);
	w.hosts_id = "h2";
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_NOT_DUE);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW + 12 * 3600),
	    ACME_DUE_NEW);
	/* Another dovetail orders: not due here, until its lock is stale
	 * (judged now: a store that does not change is not read again). */
	w.hosts_id = "h3";
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW), ACME_NOT_DUE);
	ck_assert_int_eq(acme_due(&w, &st, NULL, &p, NOW + 60),
	    ACME_DUE_NEW);
	acme_store_free(&st);
}
END_TEST

/* A config as Docker lists it, with data already decoded. */
static struct dconfig
dc(const char *name, enum acme_kind kind, const char *hosts_id,
    long long expires, const char *data)
{
	struct dconfig c;

	memset(&c, 0, sizeof(c));
	c.id = xstrdup(name);
	c.name = xstrdup(name);
	c.kind = kind;
	c.hosts_id = xstrdup(hosts_id);
	c.expires = expires;
	c.created = NOW - 10;
	c.data = xstrdup(data);
	c.len = strlen(data);
	return c;
}

START_TEST(test_store_build)
{
	struct dconfig v[6];
	struct acme_store st;
	const struct acme_cert *c;
	unsigned char key[32];
	char *cause = NULL;
	int i;

	ck_assert_int_eq(seal_key_from("0123456789abcdef0123456789abcdef",
	    32, key, &cause), 0);
	v[0] = dc("dovetail-acme-chal-1", ACME_CHALLENGE, "", 0,
	    "tok_1-A.thumb_PRINT");
	/* Not TOKEN.THUMBPRINT in base64url, or another account's: never
	 * reaches the map. */
	v[1] = dc("dovetail-acme-chal-2", ACME_CHALLENGE, "", 0,
	    "tok 2.thumb_PRINT");
	v[2] = dc("dovetail-acme-chal-3", ACME_CHALLENGE, "", 0,
	    "tok3.other_ACCOUNT");
	v[3] = dc("dovetail-acme-lock-a", ACME_LOCK, "0123456789abcdef",
	    NOW + 60, "lb1");
	v[4] = dc("dovetail-acme-lock-b", ACME_LOCK, "fedcba9876543210",
	    NOW - 1, "stale");
	v[5] = dc("dovetail-acme-cert-x", ACME_CERT, "0123456789abcdef", 0,
	    "no sealed key\n");
	acme_store_build(&st, v, 6, key, "thumb_PRINT");
	ck_assert_uint_eq(st.nchallenges, 1);
	ck_assert_str_eq(st.challenges[0].key, "tok_1-A");
	ck_assert_str_eq(st.challenges[0].value, "tok_1-A.thumb_PRINT");
	ck_assert_uint_eq(st.nlocks, 2);
	ck_assert(acme_store_locked(&st, "0123456789abcdef", NOW));
	ck_assert(!acme_store_locked(&st, "0123456789abcdef", NOW + 60));
	ck_assert(!acme_store_locked(&st, "fedcba9876543210", NOW));
	ck_assert(!acme_store_locked(&st, "0000000000000000", NOW));
	c = acme_store_cert(&st, "0123456789abcdef");
	ck_assert_ptr_nonnull(c);
	ck_assert_ptr_null(c->pair.pem);
	ck_assert_ptr_nonnull(strstr(c->pair.error, "no chain"));
	acme_store_free(&st);
	/* No account in the store: no challenge is answered. */
	acme_store_build(&st, v, 6, key, NULL);
	ck_assert_uint_eq(st.nchallenges, 0);
	acme_store_free(&st);
	/* The same token twice is one map entry. */
	dconfig_free_fields(&v[1]);
	v[1] = dc("dovetail-acme-chal-2", ACME_CHALLENGE, "", 0,
	    "tok_1-A.thumb_PRINT");
	acme_store_build(&st, v, 2, key, "thumb_PRINT");
	ck_assert_uint_eq(st.nchallenges, 1);
	acme_store_free(&st);
	for (i = 0; i < 6; i++)
		dconfig_free_fields(&v[i]);
}
END_TEST

START_TEST(test_child_lines)
{
	struct acme_outcome o;
	struct kv *left;
	size_t n;

	/* Everything made is removed or kept, and a result: nothing left. */
	ck_assert_int_eq(acme_parse_child("made dovetail-acme-lock-a id1\n"
	    "made dovetail-acme-account id2\nkept dovetail-acme-account\n"
	    "made dovetail-acme-chal-b id3\nremoved dovetail-acme-chal-b\n"
	    "removed dovetail-acme-lock-a\nok 2100000000\n", &left, &n, &o),
	    0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(o.result, ACME_ORDER_OK);
	free(left);
	/* Killed in the middle: the lock and a challenge are left, with
	 * their IDs; no result. */
	ck_assert_int_eq(acme_parse_child("made dovetail-acme-lock-a id1\n"
	    "made dovetail-acme-chal-b id3\nmade dovetail-acme-chal-c id4\n"
	    "removed dovetail-acme-chal-c\n", &left, &n, &o), -1);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(left[0].key, "dovetail-acme-lock-a");
	ck_assert_str_eq(left[0].value, "id1");
	ck_assert_str_eq(left[1].key, "dovetail-acme-chal-b");
	free(left[0].key);
	free(left[0].value);
	free(left[1].key);
	free(left[1].value);
	free(left);
	/* Names that are no config of the store are never removed. */
	ck_assert_int_eq(acme_parse_child("made my-app-config id9\n"
	    "made dovetail-acme-x;rm id8\nlocked\n", &left, &n, &o), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(o.result, ACME_ORDER_LOCKED);
	free(left);
}
END_TEST

/* Challenges come and go through the runtime API: add, then del. */
START_TEST(test_challenge_plan)
{
	struct render_opts ro = { ":80", "", { "/m/hosts.map", "/m/sni.map",
	    "/m/redirects.map", "/m/acme.map" }, "/m/crt-list", "/m/certs",
	    "/m/certs/default.pem", "abns@t", "24h", 0 };
	struct desired *d = xcalloc(1, sizeof(*d));
	struct running *r = running_new();
	struct plan p;
	char *cause = NULL;
	size_t i;
	int added = 0, deleted = 0;

	d->acme_on = 1;
	d->maps[MAP_ACME] = xcalloc(1, sizeof(struct droute));
	d->maps[MAP_ACME][0].key = xstrdup("tok_NEW");
	d->maps[MAP_ACME][0].value = xstrdup("tok_NEW.thumb");
	d->nmap[MAP_ACME] = 1;
	ck_assert_int_eq(hastate_parse_map(r, MAP_ACME, "0x1 tok_OLD "
	    "tok_OLD.thumb\n", &cause), 0);
	memset(&p, 0, sizeof(p));
	plan_build(&p, d, NULL, r, &ro);
	for (i = 0; i < p.ncmds; i++) {
		if (strcmp(p.cmds[i].text, "add map /m/acme.map tok_NEW "
		    "tok_NEW.thumb") == 0) {
			ck_assert_str_eq(p.cmds[i].what,
			    "ACME challenge tok_NEW answered");
			added++;
		}
		if (strcmp(p.cmds[i].text, "del map /m/acme.map tok_OLD") == 0)
			deleted++;
	}
	ck_assert_int_eq(added, 1);
	ck_assert_int_eq(deleted, 1);
	plan_free(&p);
	running_free(r);
	desired_free(d);
}
END_TEST

Suite *
suite_acmestate(void)
{
	Suite *s = suite_create("acmestate");
	TCase *tc = tcase_create("store");

	tcase_add_test(tc, test_hosts_id);
	tcase_add_test(tc, test_cert_data);
	tcase_add_test(tc, test_outcome);
	tcase_add_test(tc, test_retry);
	tcase_add_test(tc, test_due);
	tcase_add_test(tc, test_store_build);
	tcase_add_test(tc, test_challenge_plan);
	tcase_add_test(tc, test_child_lines);
	suite_add_tcase(s, tc);
	return s;
}
