/* SPDX-License-Identifier: ISC */
/*
 * dovetail: keep one HAProxy equal to a Docker swarm.
 *
 * One header for the whole daemon, listing each file's interface under a
 * comment naming the file.  Ownership is written down at each boundary:
 * "new" means the caller frees the result, "borrowed" means it must not.
 */
#ifndef DOVETAIL_H
#define DOVETAIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define DT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DT_DEAD __attribute__((noreturn))

/* Names dovetail gives to the objects it owns in the HAProxy file. */
#define DT_FRONTEND_HTTP "dovetail-http"
#define DT_BACKEND_NO_ROUTE "dovetail-no-route"
#define DT_FRONTEND_HTTPS "dovetail-https"
#define DT_FRONTEND_TLS "dovetail-https-terminate"
#define DT_BACKEND_TERMINATE "dovetail-tls-terminate"
/*
 * Options of every server, in the file and in runtime "add server".
 * "add server" applies no default-server, and HAProxy 2.6 leaves a server
 * added at run time without an idle connection pool (pool-purge-delay 0,
 * pool-max-conn 0): every request would open a new connection to the
 * task.  The pool settings are HAProxy's own defaults for a server in the
 * file, written out so both kinds are the same on every version.  The
 * check spacing (%u seconds) grows with the servers (check_rate); after a
 * first failure the next check comes within a second (fastinter).
 */
#define DT_SERVER_OPTIONS_FMT \
	"check inter %us fastinter 1s fall 2 rise 1 observe layer4 " \
	"error-limit 1 on-error mark-down pool-purge-delay 5s " \
	"pool-max-conn -1"

/* xmalloc.c: allocation that dies on out-of-memory */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xreallocarray(void *, size_t, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *, ...) DT_PRINTF(1, 2);

/* buf.c: growable byte buffers, always NUL-terminated */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_init(struct buf *);
void buf_free(struct buf *);
void buf_reset(struct buf *);
void buf_add(struct buf *, const void *, size_t);
void buf_adds(struct buf *, const char *);
void buf_addc(struct buf *, char);
void buf_addf(struct buf *, const char *, ...) DT_PRINTF(2, 3);
void buf_vaddf(struct buf *, const char *, va_list) DT_PRINTF(2, 0);
char *buf_steal(struct buf *);
int str_cmp_ptr(const void *, const void *);
int str_same(const char *, const char *);
void free_strings(char **, size_t);
#define HASH_INIT UINT64_C(14695981039346656037)
uint64_t hash_bytes(const void *, size_t, uint64_t);
void sort_array(void *, size_t, size_t, int (*)(const void *, const void *));
void *find_in_array(const void *, const void *, size_t, size_t,
    int (*)(const void *, const void *));
size_t lower_bound(const void *key, const void *, size_t, size_t,
    int (*)(const void *elem, const void *key));

/* log.c: logging to standard error */
enum log_level {
	LOG_LEVEL_WARN = 0,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_TRACE,
};
void log_init(int verbosity);
void log_set_verbosity(int);
int log_get_verbosity(void);
void log_warn(const char *, ...) DT_PRINTF(1, 2);
void log_warnx(const char *, ...) DT_PRINTF(1, 2);
void log_info(const char *, ...) DT_PRINTF(1, 2);
void log_debug(const char *, ...) DT_PRINTF(1, 2);
void log_trace(const char *, ...) DT_PRINTF(1, 2);
void fatal(const char *, ...) DT_PRINTF(1, 2) DT_DEAD;
void fatalx(const char *, ...) DT_PRINTF(1, 2) DT_DEAD;
int log_enabled(enum log_level);
long long mono_ms(void);
void str_escape(struct buf *, const char *, size_t max);
const char *esc(const char *);

/* config.c: the configuration file and the command-line options */
struct host_pin {
	char *pattern;		/* "host" or "*.domain" */
	char *stack;
};
struct config {
	char *docker_url;	/* comma list, tried in order */
	char *docker_tls_ca;
	char *docker_tls_cert;
	char *docker_tls_key;
	char *runtime_socket;
	char *master_socket;
	char *haproxy_config;	/* the generated file dovetail owns */
	char *haproxy_base;	/* the user's file, for haproxy -c */
	char *haproxy_binary;
	char *label_prefix;
	char *service_cluster;	/* "" = services without a cluster label */
	char *http_bind;
	char *https_bind;
	char *secrets_dir;
	unsigned websocket_timeout_ms;
	int response_headers;
	int strict_tenancy;
	struct host_pin *pins;		/* host_pins */
	size_t npins;
	char *listen;		/* metrics and health, "" = off */
	char *control_socket;	/* "" = beside haproxy_config */
	unsigned poll_interval_ms;
	unsigned audit_interval_ms;
	unsigned audit_rate_kbs;	/* full reads' average, KB/s */
	unsigned converge_interval_ms;
	unsigned converge_timeout_ms;
	unsigned docker_timeout_ms;
	unsigned docker_max_reply_mb;
	unsigned max_hosts;
	unsigned max_label_bytes;
	unsigned check_rate;
	unsigned cert_warn_days;
	int acme_enabled;
	char *acme_directory;
	char *acme_contact;
	char *acme_ca_bundle;	/* "" = the system's */
	char *acme_key_file;
	unsigned acme_renew_days;
	unsigned acme_renew_interval_ms;
	unsigned acme_retry_interval_ms;
	unsigned acme_timeout_ms;
};
struct config_key {
	const char *section;
	const char *key;
	const char *option;	/* long option, "section-key" */
	const char *def;
	const char *arg;	/* argument name in usage */
	const char *help;
};
extern const struct config_key config_keys[];
extern const size_t config_nkeys;
struct config *config_new(void);
void config_free(struct config *);
int config_set(struct config *, const char *section, const char *key,
    const char *value, char **cause);
int config_set_option(struct config *, size_t key_index, const char *value,
    char **cause);
int config_load(struct config *, const char *path, char **cause);
int config_validate(const struct config *, char **cause);
int config_parse_duration(const char *, unsigned *ms);
int config_check_bind(const char *);
char *config_state_path(const struct config *, const char *suffix);
char *config_control_path(const struct config *);
/* sun_path's size on Linux: a UNIX socket's path is shorter. */
#define CONFIG_SOCKET_PATH_MAX 108

/* jsonkeep.c: the members of a JSON value dovetail reads (no I/O) */
struct json_keep {
	const char *key;			/* NULL ends a shape */
	const struct json_keep *sub;		/* NULL: the whole value */
};
int json_keep(const char *, size_t, const struct json_keep *, struct buf *,
    size_t *used);
const char *json_space(const char *, const char *end);

/* jnode.c: a JSON value in an arena, for the task parser (no I/O) */
enum jnode_type {
	JNODE_NULL = 0, JNODE_FALSE, JNODE_TRUE, JNODE_INT, JNODE_REAL,
	JNODE_STRING, JNODE_ARRAY, JNODE_OBJECT
};
struct jnode {
	enum jnode_type type;
	const char *key;		/* a member's name, in an object */
	const char *str;		/* JNODE_STRING */
	long long num;			/* JNODE_INT */
	struct jnode *first, *next;	/* arrays and objects: the members */
	size_t n;			/* how many */
};
struct jarena {
	struct jarena_block *head;	/* NULL: empty */
};
/* Borrowed from the arena: valid until it is reset or freed. */
struct jnode *jnode_parse(struct jarena *, const char *, size_t);
const struct jnode *jnode_get(const struct jnode *, const char *path);
const char *jnode_str(const struct jnode *, const char *path);
const struct jnode *jnode_array(const struct jnode *, const char *path);
long long jnode_int(const struct jnode *, const char *path);
void jarena_reset(struct jarena *);
void jarena_free(struct jarena *);

/* swarm.c: Docker Engine JSON to the swarm model (no I/O) */
struct kv {
	char *key;
	char *value;
};
struct vip {
	char *network_id;
	char *addr;	/* without the prefix length; always an address */
};
struct service {
	char *id;
	char *name;
	struct kv *labels;	/* sorted by key */
	size_t nlabels;
	char **networks;	/* Spec.TaskTemplate.Networks[].Target */
	size_t nnetworks;
	struct vip *vips;
	size_t nvips;
	int replicated;
	uint64_t replicas;
	char *created;		/* CreatedAt, sortable, or NULL */
	char **secrets;		/* ContainerSpec.Secrets[].SecretName, sorted */
	size_t nsecrets;
};
enum task_state {
	TASK_OTHER = 0,
	TASK_STARTING,	/* new .. starting: on the way to running */
	TASK_RUNNING,
	TASK_DONE,	/* complete, shutdown, failed, rejected, orphaned, remove */
};
struct task_net {
	char *network_id;
	char *network_name;
	char *addr;	/* without the prefix length; NULL: not an address */
};
struct task_port {
	uint16_t target;
	uint16_t published;
};
struct task {
	char *id;
	char *service_id;
	char *node_id;
	int desired_running;
	enum task_state state;
	struct task_net *nets;
	size_t nnets;
	struct task_port *ports;	/* host-mode published ports */
	size_t nports;
};
struct node {
	char *id;
	char *hostname;
	char *addr;
};
struct network {
	char *id;
	char *name;
};
struct secret {
	char *name;
	char *stack;	/* its com.docker.stack.namespace label, or NULL */
};
struct swarm {
	struct network *networks;	/* sorted by id; may be empty */
	size_t nnetworks;
	struct service *services;	/* sorted by id */
	size_t nservices;
	struct task *tasks;		/* sorted by service id, then id */
	size_t ntasks;
	struct node *nodes;		/* sorted by id */
	size_t nnodes;
	struct secret *secrets;		/* sorted by name; no data, ever */
	size_t nsecrets;
};
enum docker_event_kind {
	EVENT_OTHER = 0,
	EVENT_SERVICE,
	EVENT_NODE,
	EVENT_NETWORK,
	EVENT_CONTAINER,
	EVENT_CONFIG,		/* a Docker config: dovetail's ACME store */
};
struct docker_event {
	enum docker_event_kind kind;
	char action[32];
	char actor[80];		/* service or node id */
	char name[80];		/* actor's name attribute, for logs */
	char task_id[80];	/* containers: com.docker.swarm.task.id */
	char service_id[80];	/* containers: com.docker.swarm.service.id */
	int signal;		/* containers' kill: the signal, or 0 */
};
struct swarm *swarm_new(void);
void swarm_free(struct swarm *);
int swarm_parse_services(struct swarm *, const char *, size_t, char **cause);
int swarm_parse_tasks(struct swarm *, const char *, size_t, char **cause);
#define SWARM_AUDIT_MAX_MS 3600000LL
long long swarm_audit_delay_ms(size_t bytes, unsigned interval_ms,
    unsigned rate_kbs);
int swarm_parse_nodes(struct swarm *, const char *, size_t, char **cause);
int swarm_parse_networks(struct swarm *, const char *, size_t, char **cause);
int swarm_parse_secrets(struct swarm *, const char *, size_t, char **cause);
const struct secret *swarm_secret(const struct swarm *, const char *name);
int service_has_secret(const struct service *, const char *name);
const char *swarm_network_name(const struct swarm *, const char *id_or_name);
int swarm_same(const struct swarm *, const struct swarm *);
/* The members of a service and of a task the parsers read. */
extern const struct json_keep swarm_service_keep[], swarm_task_keep[];
void swarm_task_range(const struct swarm *, const char *service_id,
    size_t *first, size_t *end);
enum swarm_change { SWARM_SAME, SWARM_TASKS, SWARM_SERVICE };
enum swarm_change swarm_service_change(const struct swarm *, const char *id,
    const struct swarm *fresh);
void swarm_replace_service(struct swarm *, const char *service_id,
    struct swarm *fresh);
void swarm_merge_services(struct swarm *, struct swarm *other);
const struct service *swarm_service(const struct swarm *, const char *id);
const struct service *swarm_service_named(const struct swarm *,
    const char *name);
const struct node *swarm_node(const struct swarm *, const char *id);
char *swarm_sortable_time(const char *);
int kv_cmp(const void *, const void *);
void kvs_free(struct kv *, size_t);
int service_cmp(const void *, const void *);
int task_cmp(const void *, const void *);
const char *service_label(const struct service *, const char *key);
int swarm_parse_version(const char *, size_t, char **api, char **min_api,
    char **cause);
int swarm_parse_info(const char *, size_t, int *manager, char **detail,
    char **cause);
int swarm_parse_event(const char *, size_t, struct docker_event *);
/* dovetail's ACME store: Docker configs labelled com.dovetail.acme=KIND */
#define ACME_LABEL "com.dovetail.acme"
#define ACME_CONFIG_PREFIX "dovetail-acme-"
enum acme_kind {
	ACME_ACCOUNT = 1,	/* the account's key, sealed */
	ACME_LOCK,		/* an order under way for .hosts */
	ACME_CHALLENGE,		/* a key authorization to answer */
	ACME_CERT,		/* a certificate and its sealed key */
};
struct dconfig {
	char *id;
	char *name;
	enum acme_kind kind;
	char *hosts_id;		/* com.dovetail.acme.hosts, or "" */
	long long expires;	/* com.dovetail.acme.expires, or 0 */
	long long created;	/* Unix time, or 0 */
	char *data;		/* decoded, NUL-terminated */
	size_t len;
};
int swarm_parse_configs(const char *, size_t, struct dconfig **, size_t *,
    char **cause);
int swarm_parse_config(const char *, size_t, struct dconfig *, char **cause);
char *swarm_parse_created(const char *, size_t);
char *swarm_config_body(const char *name, enum acme_kind, const char *hosts_id,
    long long expires, const char *data, size_t len);
void dconfig_free_fields(struct dconfig *);
void dconfigs_free(struct dconfig *, size_t);
int swarm_parse_error(const char *, size_t, char **message);
void task_free_fields(struct task *);
void service_free_fields(struct service *);

/* labels.c: service labels to a route specification (no I/O) */
struct redirect {
	char *key;		/* "http://host" or "https://host" */
	char *target;		/* "https://host[:port]" */
};
struct route_spec {
	char **hosts;		/* lower case, validated, sorted */
	size_t nhosts;
	uint16_t port;
	char *network;		/* NULL: the only network */
	char *context_root;	/* NULL: the whole host; else "/app" */
	int rewrite;		/* strip the context root */
	int passthrough;	/* TLS to the tasks, by SNI */
	int ssl_redirect;	/* plain HTTP to https:// */
	int acme;		/* a certificate ordered from [acme] */
	char *ssl_cert;		/* secret names, or NULL */
	char *ssl_key;
	struct redirect *redirects;	/* sorted by key */
	size_t nredirects;
	char *sticky_cookie;
	int ip_hash;
	char **ws_paths;	/* WebSocket paths, sorted */
	size_t nws;
	int default_backend;
	int vip;		/* backend_mode=vip */
	int weight;		/* percent, -1: none */
};
struct problem {
	char *service;
	char *label;		/* full label name, or NULL */
	char *message;
};
/* websocket_endpoints: each is two words of one line, of 64 at most. */
#define LABEL_MAX_WS_PATHS 16
enum labels_result {
	LABELS_ERROR = -1,
	LABELS_IGNORED = 0,	/* not for this agent */
	LABELS_ROUTED = 1,
};
enum labels_result labels_parse(const struct service *, const char *prefix,
    const char *cluster, struct route_spec *, struct problem *);
int labels_followed(const struct service *, const char *prefix);
int labels_secrets(const struct service *, const char *prefix,
    const char *cluster, const char **cert, const char **key);
void route_spec_free(struct route_spec *);
void problem_free(struct problem *);
int label_valid_host(const char *);
/* Service names and ids, task ids: what Docker allows, and HAProxy. */
#define DT_NAME_MAX 200
int name_valid(const char *, size_t max);
int label_parse_port(const char *, uint16_t *);
int label_parse_path(const char *, char **);
int label_parse_bool(const char *, int *);

/* tls.c: certificate and key files to what HAProxy loads (no I/O) */
struct cert_info {
	int parsed;		/* 0: libcrypto read no certificate */
	char *subject;		/* the subject's common name, or NULL */
	char **names;		/* its DNS subjectAltNames, in its order */
	size_t nnames;
	long long not_after;	/* Unix time it expires */
};
enum cert_expiry {
	CERT_VALID = 0,
	CERT_EXPIRING,		/* within the warning window */
	CERT_EXPIRED,
};
struct cert_pair {
	char *cert;		/* secret names */
	char *key;
	char *pem;		/* combined, checked; NULL on error */
	char *error;		/* why not, or NULL */
	struct cert_info info;	/* of pem */
};
struct cert_store {
	struct cert_pair *pairs;	/* sorted by cert, then key */
	size_t npairs;
};
char *tls_combine(const char *cert, size_t, const char *key, size_t,
    char **cause);
int tls_cert_info(const char *pem, struct cert_info *, char **cause);
void cert_info_copy(struct cert_info *, const struct cert_info *);
void cert_info_free(struct cert_info *);
size_t tls_names_covered(const struct cert_info *, char *const *names,
    size_t n);
long long tls_days_left(long long not_after, long long now);
enum cert_expiry tls_expiry(const struct cert_info *, long long now,
    unsigned warn_days);
const char *tls_expiry_name(enum cert_expiry);
const struct cert_pair *cert_store_find(const struct cert_store *,
    const char *cert, const char *key);
struct secret_io {
	int (*read)(void *, const char *name, struct buf *, char **cause);
	const char *(*check)(void *, const char *pem);	/* may be NULL */
	void *arg;
};
void cert_store_load(struct cert_store *, const struct swarm *,
    const char *prefix, const char *cluster, const struct secret_io *);
void cert_store_free(struct cert_store *);

/* acmestate.c: the swarm's ACME store, and what to order (no I/O) */
struct acme_cert {
	char *hosts_id;
	char *config;		/* the Docker config's name */
	long long created;	/* Unix time */
	struct cert_pair pair;	/* pem: chain and key; cert, key: NULL */
};
struct acme_lock {
	char *hosts_id;
	long long expires;	/* Unix time: stale after */
};
struct acme_store {
	struct acme_cert *certs;	/* sorted by hosts_id; the newest each */
	size_t ncerts;
	struct kv *challenges;		/* token -> key authorization, sorted */
	size_t nchallenges;
	struct acme_lock *locks;	/* orders under way, by hosts_id */
	size_t nlocks;
};
/* A certificate dovetail wants: one per set of names. */
struct acme_want {
	char *hosts_id;
	char **hosts;		/* sorted */
	size_t nhosts;
	char *service;		/* the first service (by name) asking */
};
/* What an agent knows of its own orders for a set of names. */
struct acme_track {
	char *hosts_id;
	unsigned failures;	/* in a row */
	long long failed_at;	/* Unix time of the last, or 0 */
	long long next_try;	/* Unix time: no order before */
	char *error;		/* the last failure, or NULL */
};
enum acme_due {
	ACME_NOT_DUE = 0,
	ACME_DUE_NEW,		/* no certificate */
	ACME_DUE_RENEW,		/* within renew_days of its end */
};
struct acme_policy {
	unsigned renew_days;
	unsigned renew_interval_s;	/* between orders for one set */
	unsigned retry_s;		/* after a first failure */
};
#define ACME_RETRY_MAX_S 86400
#define ACME_MAX_NAMES 100	/* Let's Encrypt's limit per certificate */
char *acme_hosts_id(char *const *hosts, size_t n);
void acme_store_build(struct acme_store *, const struct dconfig *, size_t,
    const unsigned char *seal_key, const char *thumbprint);
void acme_store_free(struct acme_store *);
const struct acme_cert *acme_store_cert(const struct acme_store *,
    const char *hosts_id);
int acme_store_locked(const struct acme_store *, const char *hosts_id,
    long long now);
const struct acme_cert *acme_store_fallback(const struct acme_store *,
    char *const *names, size_t n);
const struct acme_track *acme_track_find(const struct acme_track *, size_t,
    const char *hosts_id);
enum acme_due acme_due(const struct acme_want *, const struct acme_store *,
    const struct acme_track *, const struct acme_policy *, long long now);
long long acme_retry_at(unsigned failures, unsigned retry_s, long long now);
char *acme_cert_data(const char *cert_pem, const char *sealed_key);
int acme_cert_split(const char *data, char **cert_pem, char **sealed);
char *acme_cert_aad(const char *hosts_id);
int acme_track_cmp(const void *, const void *);
enum acme_order_result {
	ACME_ORDER_OK = 0,
	ACME_ORDER_FAILED,
	ACME_ORDER_LOCKED,	/* another dovetail orders */
	ACME_ORDER_RESULTS
};
struct acme_outcome {
	enum acme_order_result result;
	long long not_after;	/* ok */
	char *host;		/* failed: the name that failed, or NULL */
	char *why;		/* failed */
};
int acme_parse_outcome(const char *, struct acme_outcome *);
int acme_parse_child(const char *, struct kv **left, size_t *nleft,
    struct acme_outcome *);
/* What becomes of a certificate dovetail orders. */
enum acme_state {
	ACME_VALID = 0,
	ACME_RENEWING,		/* within renew_days of its end */
	ACME_PENDING,		/* none yet, no order failed */
	ACME_FAILING,		/* this agent's last order for it failed */
	ACME_STATES
};
extern const char *const acme_state_names[ACME_STATES];
extern const char *const acme_order_result_names[ACME_ORDER_RESULTS];
enum acme_state acme_state(const struct acme_want *,
    const struct acme_store *, const struct acme_track *,
    unsigned renew_days, long long now);
#define ACME_ACCOUNT_AAD "dovetail-acme-account"

/* desired.c: swarm model to the desired HAProxy state (no I/O) */
struct dserver {
	char *name;		/* the task id (the service id in vip mode) */
	char *addr;
	uint16_t port;
	int weight;		/* 0-256, -1: HAProxy's default */
	char *service;		/* service name, for logs */
};
struct dbackend {
	char *name;
	char **services;	/* names, sorted */
	size_t nservices;
	struct dserver *servers;	/* sorted by name */
	size_t nservers;
	int tcp;		/* TLS passthrough */
	char *strip;		/* context root to strip, or NULL */
	char *sticky_cookie;
	int ip_hash;
	char **ws_paths;
	size_t nws;
};
struct droute {
	char *key;
	char *value;
};
/* dovetail's maps: each a file beside the generated one, edited live. */
enum map_kind {
	MAP_ROUTES = 0,		/* "host/path/" -> backend */
	MAP_SNI,		/* host -> passthrough backend */
	MAP_REDIRECTS,		/* "scheme://host" -> target */
	MAP_ACME,		/* HTTP-01 token -> key authorization */
	MAP_COUNT
};
extern const char *const map_suffixes[MAP_COUNT];
struct dcert {
	char *file;		/* "svc-<service>.pem" */
	char *service;
	char *pem;
	char **snis;		/* sorted */
	size_t nsnis;
	struct cert_info info;	/* what pem's certificate says */
	int acme;		/* ordered ([acme]), not from secrets */
};
struct desired {
	struct dbackend *backends;	/* sorted by name */
	size_t nbackends;
	struct droute *maps[MAP_COUNT];	/* each sorted by key */
	size_t nmap[MAP_COUNT];
	struct dcert *certs;		/* sorted by file */
	size_t ncerts;
	const char *default_pem;	/* borrowed from certs, or NULL */
	char *default_backend;		/* for unknown hosts, or NULL */
	struct problem *problems;	/* sorted by service */
	size_t nproblems;
	size_t nrefused_owner;		/* problems: another group's host */
	size_t nrefused_haproxy;	/* problems: excluded, HAProxy refused */
	size_t nservices;		/* services routed */
	size_t nhosts;			/* host names routed */
	size_t nservers;		/* in all backends */
	unsigned check_inter;		/* seconds between health checks */
	int acme_on;			/* [acme] enabled: answer challenges */
	struct acme_want *acme;		/* sorted by hosts_id */
	size_t nacme;
};
/* tenancy.c: who may route which host (pure) */
struct tenancy_opts {
	int strict;		/* services of no stack share no host */
	const struct host_pin *pins;
	size_t npins;
};
struct tenant {
	const struct service *svc;
	const struct route_spec *spec;
	int refused;		/* in: left out already; out: refused */
	const char *label;	/* out: the label refused (static) */
	char *message;		/* out: new, why it was refused */
	size_t rank;		/* set by tenancy_new: creation order */
};
struct tenancy;
int tenancy_service_cmp(const struct service *, const struct service *);
struct tenancy *tenancy_new(struct tenant *, size_t,
    const struct tenancy_opts *);
void tenancy_check(struct tenancy *, struct tenant *);
void tenancy_free(struct tenancy *);
void tenancy_decide(struct tenant *, size_t, const struct tenancy_opts *);
char *tenancy_secret_refused(const struct swarm *, const struct service *,
    const char *name, int strict);

struct desired_opts {
	const char *prefix;
	const char *cluster;
	uint16_t https_port;		/* 0: no HTTPS */
	const struct cert_store *certs;	/* may be NULL */
	const struct tenancy_opts *tenancy;	/* may be NULL */
	const struct problem *excluded;	/* services left out, and why */
	size_t nexcluded;
	unsigned max_hosts;		/* per service; 0: DT_MAX_HOSTS */
	unsigned max_label_bytes;	/* 0: DT_MAX_LABEL_BYTES */
	unsigned check_rate;		/* checks/s; 0: DT_CHECK_RATE */
	unsigned check_inter;		/* the last file's spacing; 0: none */
	const struct acme_store *acme;	/* NULL: [acme] is off */
};
#define DT_CHECK_RATE 1000
#define DT_CHECK_INTER_MAX 60
#define DT_MAX_HOSTS 5000
#define DT_MAX_LABEL_BYTES 131072
struct desired *desired_build(const struct swarm *,
    const struct desired_opts *);
void desired_free(struct desired *);
int desired_patch_tasks(struct desired *, const struct swarm *,
    const struct desired_opts *, char *const *ids, size_t nids,
    struct desired **old);
unsigned desired_check_inter(size_t nservers, unsigned rate, unsigned prev);
const struct dbackend *desired_backend(const struct desired *, const char *);
int dcert_cmp(const void *, const void *);
int desired_https(const struct desired *);
int desired_passthrough(const struct desired *);
int desired_redirects_from(const struct desired *, const char *scheme);
int desired_map_used(const struct desired *, enum map_kind);
int desired_context_roots(const struct desired *);

/* render.c: desired state to the HAProxy file and map (no I/O) */
struct render_opts {
	const char *http_bind;
	const char *https_bind;
	const char *map_paths[MAP_COUNT];
	const char *crt_list;
	const char *certs_dir;		/* the crt-list's files */
	const char *default_cert;	/* in certs_dir */
	const char *tls_socket;		/* "abns@..." between the frontends */
	const char *websocket_timeout;
	int response_headers;
};
void render_config(struct buf *, const struct desired *,
    const struct render_opts *);
void render_map(struct buf *, const struct desired *, enum map_kind);
void render_crt_list(struct buf *, const struct desired *,
    const char *certs_dir);
void render_skeleton(struct buf *, const char *config_text);
unsigned render_default_server_line(const char *text);
char *render_services_at(const char *text, unsigned line);
char **render_backends(const char *text, size_t *n);
void render_server_addr(struct buf *, const struct dserver *);
void render_server_args(struct buf *, const struct desired *,
    const struct dbackend *, const struct dserver *);

/* hastate.c: parsing HAProxy runtime replies (no I/O) */
struct rserver {
	char *backend;
	char *name;
	char *addr;
	uint16_t port;
	unsigned admin;
	unsigned op;
	int weight;		/* user weight */
	unsigned check_result;	/* srv_check_result; 0: none yet */
};
struct rmapent {
	char *key;
	char *value;
};
struct running {
	struct rserver *servers;	/* sorted by backend, then name */
	size_t nservers;
	char **backends;		/* sorted */
	size_t nbackends;
	struct rmapent *maps[MAP_COUNT];	/* each sorted by key */
	size_t nmap[MAP_COUNT];
	int map_missing[MAP_COUNT];	/* HAProxy has no such map loaded */
	/* TLS: read only when the terminating frontend runs. */
	int tls;
	char **cert_files;		/* "show ssl cert" paths, sorted */
	size_t ncert_files;
	struct rmapent *crt_list;	/* file -> SNI filters, sorted */
	size_t ncrt_list;
	/* Filled by the agent: what dovetail last committed, by file. */
	struct rmapent *committed;	/* file name -> PEM, sorted */
	size_t ncommitted;
};
struct proc_info {
	long master_pid;
	long reloads;
	long failed;
	long worker_pid;		/* newest current worker, -1 if none */
};
#define SRV_ADMIN_MAINT_MASK 0x23u	/* forced, inherited, resolution */
#define SRV_ADMIN_DRAIN_MASK 0x18u
#define SRV_OP_STOPPED 0u		/* srv_op_state: down */
#define SRV_OP_RUNNING 2u		/* up */
#define SRV_CHECK_PASSED 3u		/* srv_check_result */
#define SRV_CHECK_CONDPASS 4u
struct running *running_new(void);
void running_free(struct running *);
int hastate_parse_servers(struct running *, const char *, char **cause);
uint64_t hastate_servers_digest(const char *);
int hastate_parse_backends(struct running *, const char *, char **cause);
int hastate_parse_map(struct running *, enum map_kind, const char *,
    char **cause);
int hastate_parse_certs(struct running *, const char *, char **cause);
int hastate_parse_crt_list(struct running *, const char *, char **cause);
int hastate_parse_proc(const char *, struct proc_info *, char **cause);
char *hastate_check_alerts(const char *out);
int hastate_parse_reload(const char *reply, char **alerts);
unsigned hastate_check_line(const char *out, const char *file,
    char **message);
int running_has_backend(const struct running *, const char *);
void running_keep_backends(struct running *, char *const *names, size_t n);
void running_take_servers(struct running *to, const struct running *from);
int rmapent_cmp(const void *, const void *);
int rserver_cmp(const void *, const void *);
int rserver_in_maint(const struct rserver *);
size_t hastate_fallen(const struct running *, const struct running *,
    const struct rserver ***);

/* plan.c: desired versus running, as runtime commands (no I/O) */
enum cmd_kind {
	CMD_ADD_SERVER = 1,
	CMD_DEL_SERVER,
	CMD_SET_STATE,
	CMD_ENABLE_HEALTH,
	CMD_SET_ADDR,
	CMD_MAP_ADD,
	CMD_MAP_SET,
	CMD_MAP_DEL,
	CMD_SET_WEIGHT,
	CMD_CERT_NEW,
	CMD_CERT_SET,
	CMD_CERT_COMMIT,
	CMD_CERT_DEL,
	CMD_CRT_LIST_ADD,
	CMD_CRT_LIST_DEL,
};
struct cmd {
	enum cmd_kind kind;
	char *text;		/* one runtime command (a payload after "<<") */
	char *what;		/* the change, for the log */
	const char *file;	/* CMD_CERT_*: the file, in certs_dir */
	const char *pem;	/* CMD_CERT_COMMIT: what it holds now */
};
struct plan {
	struct cmd *cmds;
	size_t ncmds;
	size_t cap;
};
struct held {
	char *text;		/* the command, or "ssl cert FILE" */
	long long until;	/* monotonic ms */
};
struct hold {
	struct held *v;
	size_t n;
};
int hold_refused(struct hold *, const struct cmd *, long long until);
void hold_release(struct hold *, const struct cmd *);
size_t hold_filter(struct hold *, struct plan *, long long now);
void hold_free(struct hold *);
void plan_build(struct plan *, const struct desired *,
    const struct desired *previous, const struct running *,
    const struct render_opts *);
void plan_build_servers(struct plan *, const struct desired *,
    const struct desired *prev, const struct running *);
void plan_add(struct plan *, enum cmd_kind, char *text, char *what);
void plan_free(struct plan *);
void plan_drop_tls(struct plan *);
int plan_reply_ok(const struct cmd *, const char *reply);

/* runtime.c: talking to the HAProxy runtime API and master CLI */
int unix_connect(const char *path, char **cause);
/* runtime_read_state's commands: 4 fixed ones, then one per map. */
#define RUNTIME_STATE_FIXED 4
#define RUNTIME_STATE_REPLIES (RUNTIME_STATE_FIXED + MAP_COUNT)
int runtime_query(const char *socket, const char *command, struct buf *out,
    char **cause);
int runtime_batch(const char *socket, const char *const *commands, size_t n,
    char ***replies, char **cause);
void runtime_replies_free(char **, size_t);
int runtime_split_replies(const char *, size_t n, char ***replies,
    char **cause);
int runtime_parse_state(struct running *, const char *const *replies,
    char **cause);
int runtime_read_state(const char *socket, const struct render_opts *,
    char ***replies, char **cause);
uint64_t runtime_state_digest(const char *const *replies);
int runtime_parse_servers(struct running *, char *const *names,
    const char *const *replies, size_t n, char **cause);
int runtime_read_servers(const char *socket, char *const *names, size_t n,
    struct running *, char **cause);

/* reload.c: writing the file, checking it and reloading HAProxy */
int file_read(const char *path, struct buf *, char **cause);
int file_write_atomic(const char *path, const char *data, size_t len,
    char **cause);
int file_write_mode(const char *path, const char *data, size_t len,
    unsigned mode, char **cause);
int haproxy_check(const char *binary, const char *base, const char *config,
    struct buf *output, char **cause);
int haproxy_check_cert(const char *binary, const char *config,
    char **cause);
int haproxy_check_reason(const char *output, char **reason);
int haproxy_reload(const char *master_socket, unsigned timeout_ms,
    char **cause);
int haproxy_master_pid(const char *master_socket, long *pid, char **cause);
/*
 * A check and reload running beside the loop: "haproxy -c" of the files,
 * then, when it passed, the reload through the master CLI, in a child
 * process that reports on a pipe.
 */
enum reload_outcome {
	RELOAD_DONE = 0,	/* checked and reloaded */
	RELOAD_REFUSED,		/* haproxy -c refused the files */
	RELOAD_CHECK_FAILED,	/* the check could not run or finish */
	RELOAD_FAILED,		/* checked, but the reload failed */
};
struct reload_result {
	enum reload_outcome outcome;
	char *cause;		/* new; NULL with RELOAD_DONE */
	struct buf output;	/* what haproxy -c printed */
};
struct reload_job;
int child_detach(int report_fd);
struct reload_job *reload_job_start(const char *binary, const char *base,
    const char *config, const char *master_socket, unsigned reload_timeout_ms,
    char **cause);
int reload_job_fd(const struct reload_job *);
long long reload_job_deadline(const struct reload_job *);
int reload_job_poll(struct reload_job *, long long now,
    struct reload_result *);
void reload_job_wait(struct reload_job *, struct reload_result *);
void reload_job_stop(struct reload_job *, struct reload_result *);
void reload_job_free(struct reload_job *);
void reload_result_free(struct reload_result *);
int reload_report_parse(const char *, size_t, struct reload_result *);

/* docker.c: the Docker Engine API over libcurl */
struct docker;
struct docker *docker_new(const struct config *);
void docker_free(struct docker *);
int docker_connect(struct docker *, char **cause);
int docker_get(struct docker *, const char *path, struct buf *,
    char **cause);
char *docker_filter(const char *key, const char *value);
long docker_send(struct docker *, const char *method, const char *path,
    const char *body, struct buf *, char **cause);
const char *docker_endpoint(const struct docker *);
int docker_events_open(struct docker *, long since, char **cause);
void docker_events_close(struct docker *);
int docker_events_active(const struct docker *);
/* The descriptors docker_wait watches besides its own, at most. */
#define DOCKER_WAIT_MAX 16
struct pollfd;
int docker_wait(struct docker *, const struct pollfd *fds, size_t nfds,
    int timeout_ms);
int docker_event_next(struct docker *, struct docker_event *);
int docker_events_feed(struct buf *, const char *, size_t);
int docker_events_take(struct buf *, struct docker_event *);

/* metrics.c: /metrics and /healthz over HTTP */
#define METRICS_LAG_BUCKETS 9
struct metrics {
	unsigned long long reloads_ok;
	unsigned long long reloads_failed;
	unsigned long long runtime_ok;
	unsigned long long runtime_failed;
	unsigned long long docker_errors;
	unsigned long long docker_events;
	unsigned long long file_errors;
	unsigned long long lag_buckets[METRICS_LAG_BUCKETS];
	unsigned long long lag_count;
	double lag_sum;
	size_t services;
	size_t routes;
	size_t backends;
	size_t servers;
	size_t problems;
	size_t refused_owner;		/* of problems: host of another group */
	size_t refused_haproxy;		/* of problems: HAProxy refused it */
	long long last_sync_unix;
	long long docker_ok_ms;		/* monotonic; 0: never */
	long long haproxy_ok_ms;
	/* Borrowed: where the agent keeps the last error it reported. */
	const char *const *docker_error;
	const char *const *haproxy_error;
	const char *const *file_error;	/* NULL or *NULL: files written */
	/* Borrowed: the warnings of the services not routed, sorted. */
	char **const *refused;
	const size_t *nrefused;
	/* Borrowed: the desired state last built, for its certificates. */
	const struct desired *const *desired;
	unsigned cert_warn_days;
	unsigned health_window_ms;
	/* [acme]: orders by result, certificates by state; acme_on 0: off */
	int acme_on;
	unsigned long long acme_orders[ACME_ORDER_RESULTS];
	size_t acme_certs[ACME_STATES];
	char **acme_failing;	/* "service: hosts: why", new, for /healthz */
	size_t nacme_failing;
};
struct metrics_server;
extern const double metrics_lag_buckets[METRICS_LAG_BUCKETS];
void metrics_observe_lag(struct metrics *, double seconds);
void metrics_render(struct buf *, const struct metrics *);
void health_render(struct buf *, const struct metrics *, long long now_ms,
    long long now_unix, unsigned window_ms, int *ok);
/* Renders the status page at / into the buffer. */
typedef void (*metrics_page)(void *, struct buf *);
struct metrics_server *metrics_listen(const char *, const struct metrics *,
    metrics_page, void *, char **cause);
int metrics_fd(const struct metrics_server *);
void metrics_run(struct metrics_server *);
void metrics_stop(struct metrics_server *);

/* control.c: dovetailctl's requests over a UNIX socket, in the loop */
enum ctl_cmd {
	CTL_SHOW_ROUTES = 1,
	CTL_SHOW_SERVICES,
	CTL_SHOW_CERTS,
	CTL_SHOW_RELOADS,
	CTL_RELOAD,
	CTL_LOG_VERBOSE,
	CTL_LOG_BRIEF,
};
struct ctl_request {
	enum ctl_cmd cmd;
	int json;		/* the request ended in "json" */
};
/* A request is one line of at most this many bytes, newline included. */
#define CTL_REQUEST_MAX 256
#define CTL_MAX_CLIENTS 8
#define CTL_CLIENT_TIMEOUT_MS 5000
/* What a reply's first line says, and dovetailctl's exit status. */
enum ctl_status {
	CTL_STATUS_OK = 0,	/* "ok": every labelled service is routed */
	CTL_STATUS_UNROUTED = 1,	/* "unrouted": some service is not */
	CTL_STATUS_ERROR = 2,	/* "error: ...": the request failed */
};
extern const char *const ctl_command_names[];
int ctl_parse_request(const char *, size_t, struct ctl_request *,
    char **cause);
void ctl_reply_head(struct buf *, enum ctl_status, const char *error);
enum ctl_status ctl_reply_status(const char *reply, const char **body,
    char **error);
/* Fills body and returns the status; body is the reply after its head. */
typedef enum ctl_status (*ctl_handler)(void *, const struct ctl_request *,
    int uid, struct buf *body);
struct ctl_server;
struct ctl_server *ctl_listen(const char *path, ctl_handler, void *,
    char **cause);
const char *ctl_path(const struct ctl_server *);
size_t ctl_pollfds(const struct ctl_server *, struct pollfd *, size_t max);
long long ctl_deadline(const struct ctl_server *);
void ctl_run(struct ctl_server *, long long now_ms);
void ctl_close(struct ctl_server *);

/* ctlreply.c: a snapshot of the agent's state, as tables or JSON (no I/O) */
enum ctl_service_state {
	CTL_ROUTED = 0,
	CTL_WAITING,		/* routed, but no task to send requests to */
	CTL_REFUSED,		/* a label problem, or a host of another group */
	CTL_QUARANTINED,	/* haproxy -c refused its part of the file */
	CTL_IGNORED,		/* another service_cluster's */
};
struct ctl_server_row {
	const char *task;	/* the server's name: task id (service id) */
	const char *node;	/* host name, or NULL */
	const char *addr;	/* "ADDR:PORT" */
	const char *state;	/* UP, DOWN, NOLB, DRAIN, MAINT, or NULL */
};
struct ctl_route {
	const char *route;	/* "host/path/", an SNI host, or "*" */
	const char *kind;	/* "http", "passthrough" or "default" */
	const char *backend;
	const char *services;	/* names, comma-separated */
	const struct ctl_server_row *servers;
	size_t nservers;
};
struct ctl_service {
	const char *name;
	enum ctl_service_state state;
	const char *backend;	/* or NULL */
	size_t nservers;
	const char *label;	/* the label refused, or NULL */
	const char *reason;	/* or NULL */
};
struct ctl_cert {
	const char *file;
	const char *service;
	const char *hosts;	/* comma-separated */
	const char *cert_secret;
	const char *key_secret;
	int is_default;
	int parsed;		/* 0: what follows is unknown */
	const char *subject;	/* the certificate's common name, or NULL */
	const char *names;	/* its DNS names, comma-separated */
	long long not_after;	/* Unix time it expires */
};
struct ctl_reload {
	long long unix_time;	/* when it started */
	unsigned ms;		/* check, reload and the new worker */
	char *reason;
	char *error;		/* NULL: it worked */
};
#define CTL_RELOADS_KEPT 20
struct ctl_reloads {
	struct ctl_reload v[CTL_RELOADS_KEPT];	/* oldest first */
	size_t n;
};
struct ctl_snapshot {
	int synced;		/* dovetail has built a desired state */
	long long now;		/* Unix time, for the days to expiry */
	unsigned cert_warn_days;
	struct ctl_route *routes;
	size_t nroutes;
	struct ctl_service *services;
	size_t nservices;
	struct ctl_cert *certs;
	size_t ncerts;
	const struct ctl_reload *reloads;	/* borrowed, oldest first */
	size_t nreloads;
	/* Built by ctl_snapshot_build: the storage the rows point into. */
	struct ctl_server_row *rows;
	size_t nrows;
	char **pool;
	size_t npool;
};
struct ctl_state {
	const struct desired *desired;	/* NULL before the first reconcile */
	const struct swarm *swarm;
	const struct running *seen;	/* HAProxy's last read, or NULL */
	const struct problem *quarantine;
	size_t nquarantine;
	const struct ctl_reloads *reloads;
	const char *prefix;
	const char *cluster;
	long long now;		/* Unix time */
	unsigned cert_warn_days;
};
void ctl_snapshot_build(struct ctl_snapshot *, const struct ctl_state *);
void ctl_snapshot_free(struct ctl_snapshot *);
enum ctl_status ctl_snapshot_status(const struct ctl_snapshot *);
const char *ctl_service_state_name(enum ctl_service_state);
enum cert_expiry ctl_cert_expiry(const struct ctl_snapshot *,
    const struct ctl_cert *);
void ctl_time(char *, size_t, long long unix_time);
void ctl_render(struct buf *, const struct ctl_snapshot *, enum ctl_cmd,
    int json);
void ctl_reloads_add(struct ctl_reloads *, long long unix_time,
    unsigned ms, const char *reason, const char *error);
void ctl_reloads_free(struct ctl_reloads *);

/* status.c: the status page, a snapshot as HTML (no I/O) */
void status_render(struct buf *, const struct ctl_snapshot *);

/* notify.c: the systemd notify protocol */
int notify_send(const char *);
int notify_reloading(void);

/* seal.c: private keys sealed for the shared store (no I/O) */
int seal_key_from(const char *material, size_t len, unsigned char key[32],
    char **cause);
char *seal_text(const unsigned char key[32], const char *plain,
    const char *aad, char **cause);
char *seal_open(const unsigned char key[32], const char *sealed,
    const char *aad, char **cause);

/* acme.c: the ACME protocol (RFC 8555), one order at a time, blocking */
struct acme_opts {
	const char *directory;	/* the CA's directory URL (https://...) */
	const char *contact;	/* "mailto:..." or NULL */
	const char *ca_bundle;	/* PEM file to verify the CA with; NULL: the system's */
	unsigned timeout_ms;	/* the whole order, all requests included */
	unsigned poll_ms;	/* between polls of an authorization or the order (default when 0: 1000) */
};
struct acme_hooks {
	/*
	 * Make "token" answer "keyauth" at
	 * http://HOST/.well-known/acme-challenge/TOKEN on every load
	 * balancer; returns once it does (0) or -1 with cause.
	 */
	int (*publish)(void *, const char *token, const char *keyauth,
	    char **cause);
	void (*unpublish)(void *, const char *token);
	void *arg;
};
struct acme_result {
	char *cert_pem;		/* new: leaf first, then the chain */
	char *key_pem;		/* new: the certificate's key, PKCS#8 PEM, P-256 */
	long long not_after;	/* Unix time */
	char *failed_host;	/* new, on failure: the identifier whose authorization failed, or NULL */
	char *problem;		/* new, on failure: the CA's problem type and detail, or NULL */
};
char *acme_key_new(char **cause);
char *acme_thumbprint(const char *account_key_pem, char **cause);
int acme_order(const struct acme_opts *, const char *account_key_pem,
    const char *const *hosts, size_t nhosts, const struct acme_hooks *,
    struct acme_result *, char **cause);
void acme_result_free(struct acme_result *);
/* Its pure pieces, for the tests. */
struct acme_signer {
	int (*sign)(void *, const void *data, size_t len,
	    unsigned char sig[64], char **cause);
	void *arg;
};
int acme_token_valid(const char *);
char *acme_jws(const struct acme_signer *, const char *jwk, const char *kid,
    const char *nonce, const char *url, const char *payload, char **cause);
int acme_problem_parse(const char *body, size_t len, char **type,
    char **detail);

/* acmecrypto.c: ACME's keys, signatures and requests (no I/O) */
char *acme_b64url(const void *, size_t);
int acme_sig_raw(const unsigned char *der, size_t len, unsigned char raw[64]);
int acme_sign_es256(void *key_pem, const void *data, size_t len,
    unsigned char sig[64], char **cause);
char *acme_jwk(const char *key_pem, char **cause);
int acme_key_matches(const char *cert_pem, const char *key_pem,
    char **cause);
int acme_csr(const char *key_pem, const char *const *hosts, size_t nhosts,
    struct buf *der, char **cause);

/* acmeorder.c: one ACME order, in a child process (I/O) */
#define ACME_LOCK_SLACK_S 60	/* a lock lives [acme] timeout and this */
char *acme_store_query(const char *label);
int acme_store_remove(struct docker *, const char *name, const char *id,
    char **cause);
int acme_read_key(const struct config *, unsigned char key[32],
    char **cause);
void acme_order_child(const struct config *, const struct acme_want *,
    int fd);

/* certify.c: ACME in the loop: the store read, an order in a child */
struct certify;
struct metrics;
struct certify *certify_new(void);
void certify_stop(struct certify *, struct docker *);
void certify_free(struct certify *);
void certify_touch(struct certify *);
long long certify_deadline(const struct certify *, long long now);
const struct acme_store *certify_store(const struct certify *);
int certify_sync(struct certify *, struct docker *, const struct config *,
    long long now_ms, unsigned audit_ms, char **cause);
int certify_reap(struct certify *, const struct config *, struct docker *);
void certify_schedule(struct certify *, const struct config *,
    const struct desired *, long long now);
void certify_metrics(const struct certify *, const struct config *,
    const struct desired *, long long now, struct metrics *);

/* agent.c: the reconcile loop */
struct config_override {
	size_t key;		/* index into config_keys */
	const char *value;	/* borrowed from argv */
};
int agent_run(struct config *, const char *config_path,
    const struct config_override *, size_t, int once);

/* apply.c: when an idle reconcile may stop early (pure) */
int reconcile_may_skip(int reuse, int file_stale, int in_flight,
    int was_quiet);
int reconcile_quiet(const char *reload_why, int put_off, size_t planned);

#endif /* DOVETAIL_H */
