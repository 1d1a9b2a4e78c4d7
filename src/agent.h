/* SPDX-License-Identifier: ISC */
/*
 * The agent's private header: struct agent, the small types it holds,
 * and what the files of the agent share (agent.c, follow.c, apply.c,
 * files.c, certfiles.c).  Included after dovetail.h, whose types it uses;
 * ownership is written as there ("new", "borrowed"; "steals": the
 * function frees its argument).
 */
#ifndef AGENT_H
#define AGENT_H

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000
#define RELOAD_TIMEOUT_MS 15000

struct fastpoll {
	char *service_id;
	long long until;
	long long since;	/* the event that started it */
};

/* A task whose container this node is stopping: out of rotation now. */
struct doomed {
	char *task_id;
	long long until;
};

#define SIDE_CRT_LIST MAP_COUNT
#define NSIDE (MAP_COUNT + 1)

/* A certificate warned of: again a day later, or once it is renewed. */
struct cert_warned {
	char *file;
	long long not_after;
	long long at;		/* Unix time of the warning */
};
#define CERT_WARN_EVERY (24 * 3600)

/* What the files held before a write, to put back. */
struct saved_files {
	char *config;
	char *side[NSIDE];
};

/*
 * A check and reload running beside the loop.  Task changes go on through
 * the runtime API meanwhile, to the backends of the file HAProxy runs.
 */
struct flight {
	struct reload_job *job;
	const char *why;	/* reload_reason's */
	long long started;
	char *config;		/* the file checked */
	struct saved_files old;	/* what the files held before */
	char **known;		/* backends of the file before: HAProxy's */
	size_t nknown;
	char **certs;		/* certificate files the file names, sorted */
	size_t ncerts;
	size_t nbackends, nhosts;
	long master;		/* the master's PID when it started */
};

/* A combined certificate and what haproxy -c said of it (NULL: fine). */
struct cert_check {
	char *pem;
	char *error;
	int used;
};

struct agent {
	struct config *cfg;
	const char *config_path;
	const struct config_override *overrides;
	size_t noverrides;
	/* Files beside the generated one: the maps, then the crt-list. */
	char *side_path[NSIDE];
	char *disk_side[NSIDE];		/* what they hold on disk */
	char *certs_dir;
	char *default_cert;
	char *tls_socket;
	char ws_timeout[24];
	struct render_opts ro;		/* borrows the paths above */
	struct cert_check *checks;	/* certificate pairs HAProxy judged */
	size_t nchecks;

	struct docker *docker;
	int docker_up;
	long long docker_retry_at;
	unsigned docker_backoff_ms;
	char *docker_error;	/* last reported, to log changes once */
	char *file_error;	/* a file dovetail could not write, or NULL */

	struct swarm *swarm;
	int have_snapshot;
	uint64_t sync_hash;	/* Docker's replies the model was built from */
	int sync_hash_valid;	/* 0: the model changed since, by an event */
	uint64_t secrets_hash;	/* the list of secrets in the model */
	long long next_full_sync;
	size_t audit_bytes;	/* what the last full read read */
	long long next_fast_poll;
	struct fastpoll *fast;
	size_t nfast;
	struct doomed *doomed;
	size_t ndoomed;

	int dirty;		/* the next reconcile builds everything */
	/* Services whose tasks alone changed since (ids): the next
	 * reconcile touches their backends only, unless dirty. */
	char **tasks_changed;
	size_t ntasks_changed;
	int file_stale;		/* servers changed since the file was written */
	long long file_due;	/* when it is written again, if stale */
	long long next_reconcile;
	char *haproxy_error;	/* last reported */
	char *reload_error;	/* last reported */
	char *refused_config;	/* a file haproxy -c refused: not retried */
	int reload_pending;	/* a checked file is on disk, not yet loaded */
	long pending_master;	/* master PID when it was written, -1: none */
	struct flight *flight;	/* a check and reload under way, or NULL */
	long long reload_settle_until;	/* after a reload: see reconcile */
	int once;		/* --once: no retries to announce */
	int ready;		/* READY=1 sent to the supervisor */
	struct metrics metrics;
	struct metrics_server *http;
	char *status;		/* last STATUS= sent */
	struct desired *last;	/* the previous desired state, for names */
	int in_sync;		/* HAProxy and the files matched last */
	int quiet;		/* the last reconcile found nothing to do */
	uint64_t quiet_digest;	/* HAProxy's state and the certificates then */
	long long next_rebuild;	/* when last is built again regardless */
	char *disk_config;	/* what the file on disk holds */
	struct hold hold;	/* commands HAProxy refused, held back */
	/* Services whose part of the file haproxy -c refused, left out
	 * until their labels change: problems, and the labels they had. */
	struct problem *quarantine;
	char **quarantine_labels;
	size_t nquarantine;
	char **problems;	/* reported label problems, sorted */
	size_t nproblems;
	struct ctl_server *ctl;	/* dovetailctl's socket, or NULL */
	struct running *seen;	/* what HAProxy ran at the last read */
	struct ctl_reloads reloads;	/* the last reloads, for dovetailctl */
	struct cert_warned *warned;	/* sorted by file */
	size_t nwarned;
	struct certify *acme;	/* [acme]: the store and the orders */
	char *acme_error;	/* the store's last read error, reported */
};

/* agent.c: the loop, signals, deadlines, status and dovetailctl */
/* Logs msg unless *slot holds the same, the last reported; steals msg. */
void report_once(char **slot, char *msg);
/* Logs recovered when *slot holds an error, and clears it. */
void report_clear(char **slot, const char *recovered);
/* Tells the supervisor how things are after a reconcile's rc. */
void update_status(struct agent *, const struct desired *d, int rc);

/* files.c: the files HAProxy loads, written, checked, put back */
/* A file HAProxy would load could not be written; steals cause. */
void file_failed(struct agent *, char *cause);
/* Writes text to path unless *disk (what it holds) is the same. */
int write_if_changed(const char *path, char **disk, const char *text,
    char **cause);
/* Writes the side files (the maps, the crt-list) that changed. */
int write_sides(struct agent *, char *const *want, char **cause);
/* Lets the i-th quarantined service back in. */
void unquarantine(struct agent *, size_t i);
/* Lets back in the quarantined services whose labels changed. */
void prune_quarantine(struct agent *);
/* Frees what the saved files hold and zeroes them. */
void saved_files_free(struct saved_files *old);
/* Puts the file and the side files back as old has them. */
void restore_files(struct agent *, const struct saved_files *old);
/* Writes d's files, what they held into *old (new); -1: reported. */
int write_files(struct agent *, const struct desired *d, const char *config,
    char *const *sides, struct saved_files *old);
/* haproxy -c refused config: logged, services quarantined; -2/-1. */
int check_refused(struct agent *, const char *config, const char *cause,
    const struct buf *out);
/* Writes the files and waits for haproxy -c (HAProxy away); 0/-1/-2. */
int write_checked(struct agent *, const struct desired *d, const char *config,
    char *const *sides);

/* certfiles.c: certificate files, their checks and expiry warnings */
/* Warns of each certificate served that expires soon, once a day. */
void warn_certs(struct agent *, const struct desired *d);
/* Writes d's certificate files; an existing one only with overwrite. */
int write_certs(struct agent *, const struct desired *d, int overwrite,
    char **cause);
/* A certificate command HAProxy took is followed on disk. */
void cert_applied(struct agent *, const struct cmd *c);
/* Reads, combines and checks the pairs the services name into st. */
void load_certs(struct agent *, struct cert_store *st);
/* Adds to r what the certificate files of d hold on disk. */
uint64_t committed_digest(const struct agent *, const struct desired *);
void read_committed(struct agent *, const struct desired *d,
    struct running *r);
/* Removes the certificate files neither d nor keep (sorted) names. */
void prune_certs(struct agent *, const struct desired *d, char *const *keep,
    size_t nkeep);

/* follow.c: following the swarm (Docker reads, events, polls) */
/* Docker is away: reported once, retried with backoff; steals why. */
void docker_down(struct agent *, char *why);
/* Connects to Docker and opens its events; a full read is due. */
void docker_up(struct agent *);
/* Reads the whole swarm into a->swarm if it changed; -1: Docker away. */
int full_sync(struct agent *);
/* Polls the services whose servers went down between a->seen and r. */
void poll_fallen(struct agent *, const struct running *r);
/* Reads again each service that changes, until it settles. */
void fast_polls(struct agent *);
/* Marks what a Docker event changed: a service to poll, a read due. */
void handle_event(struct agent *, const struct docker_event *ev);

/* apply.c: applying to HAProxy (reconcile, runtime API, reloads) */
/* Frees a flight; NULL is a no-op. */
void flight_free(struct flight *f);
/* Stopping: ends a flight under way, keeping only a loaded file. */
void flight_abandon(struct agent *);
/* --once: waits for the flight to end; 0, -1 or -2 as it ended. */
int flight_land(struct agent *);
/* Makes HAProxy equal to the snapshot; 0 when it (or the file) does. */
int reconcile(struct agent *);
/* Writes the files again after task changes patched the last state. */
void file_catch_up(struct agent *);
/* Takes in a flight that ended (returns 1); 0 while none did. */
int flight_check(struct agent *, long long now);

#endif /* AGENT_H */
