/*
 * control.h - the daemon's control socket server (libuv), speaking the protocol of macc/ctl.h.
 *
 * The server owns a listening Unix stream socket and its clients. It never touches agent state
 * itself: every command is dispatched through a table of callbacks (struct macc_ctl_ops) with
 * the agent as `ctx`, called on the loop thread. Progress for `watch` clients is pushed by the
 * agent with macc_ctl_server_publish().
 *
 * Socket: created with the given mode (default 0660) and, when the group (default "macc")
 * exists, chowned to it. A stale socket file (nothing listening) is replaced; a live one is an
 * error (another daemon). Permission for mutating commands (SO_PEERCRED): uid 0, the daemon's
 * uid (opts.owner_uid), or a member (primary or supplementary group, from /proc/PID/status) of
 * the socket's group. Read-only commands are open to anyone who can connect.
 *
 * Robustness: request frames above MACC_CTL_MAX_REQUEST are refused from the header alone; a
 * client that has not completed a request within idle_timeout_ms is closed (watchers are
 * exempt); beyond max_clients new clients get a `busy` reply and are closed, and the last
 * reserved_clients of those slots are kept for privileged callers (uid 0 or the daemon's uid,
 * from SO_PEERCRED), so clients of other users, idle or watching, cannot lock the operator out;
 * at most a few requests per client are handled per loop iteration (fairness), and a client
 * whose unsent replies exceed a limit is not read until they drain (slow watchers skip events
 * instead).
 */
#ifndef MACC_AGENTD_CONTROL_H
#define MACC_AGENTD_CONTROL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "macc/ctl.h"
#include "macc/err.h"

/*
 * The agent's side. Every callback runs on the loop thread and must not block. Return 0 or a
 * negative macc code (mapped with macc_ctl_status_from_err; err's text becomes the reply's
 * error). Any callback may be NULL: the command then fails with status `failed` ("not
 * supported"). start/stop/pause/resume/checkpoint/eval/reload return once the action is done
 * or accepted; the result shows up in status.
 */
struct macc_ctl_ops {
	/* Fill *ret (already initialised with macc_ctl_status_init). */
	int (*status)(void *ctx, struct macc_ctl_status *ret);
	/* Allocate (malloc/calloc) an array of peers in *ret_peers; the server frees it with
	 * free(). Zero peers: *ret_peers may be NULL. */
	int (*peers)(void *ctx, struct macc_ctl_peer **ret_peers, size_t *ret_n);
	int (*start)(void *ctx, struct macc_errmsg *err);
	int (*stop)(void *ctx, struct macc_errmsg *err);
	int (*pause)(void *ctx, struct macc_errmsg *err);
	int (*resume)(void *ctx, struct macc_errmsg *err);
	int (*checkpoint)(void *ctx, struct macc_errmsg *err);
	int (*eval)(void *ctx, struct macc_errmsg *err);
	/* Fill *ret (zeroed by the server); the server formats the Prometheus text from status,
	 * peers and these counters (macc_ctl_metrics_format). */
	int (*metrics)(void *ctx, struct macc_ctl_metrics *ret);
	int (*reload)(void *ctx, struct macc_errmsg *err);
	int (*log_level)(void *ctx, enum macc_log_level level, struct macc_errmsg *err);
	/* Fill *ret (zeroed by the server) with the newest `limit` audit entries (limit >= 1);
	 * ret->entries is malloc'ed, the server frees it. */
	int (*audit)(void *ctx, uint32_t limit, struct macc_ctl_audit *ret, struct macc_errmsg *err);
	/* Fill *ret (zeroed by the server) from the published snapshot of the model: its
	 * description and the floats [req->offset, + req->count) of its stream (macc/ctl.h).
	 * ret->data is malloc'ed and freed by the server; ret->spec is borrowed until the reply
	 * is sent. A generation other than the snapshot's: MACC_ESTATE. */
	int (*model)(void *ctx, const struct macc_ctl_request *req, struct macc_ctl_model *ret,
		     struct macc_errmsg *err);
	/* Score the rows of req->inputs with the published snapshot into *ret (zeroed by the
	 * server); ret->values is malloc'ed and freed by the server. Runs on the loop thread:
	 * its cost is bounded by MACC_CTL_PREDICT_MAX_ROWS and MACC_CTL_MAX_REQUEST. */
	int (*predict)(void *ctx, const struct macc_ctl_request *req, struct macc_ctl_predict *ret,
		       struct macc_errmsg *err);
};

struct macc_ctl_server_opts {
	const char *path;          /* socket path; NULL = MACC_CTL_DEFAULT_SOCKET */
	unsigned mode;             /* 0 = 0660 */
	const char *group;         /* NULL = "macc"; "" = do not chown */
	uid_t owner_uid;           /* the daemon's user; set by macc_ctl_server_opts_init */
	uint32_t max_clients;      /* 0 = 64 */
	uint32_t reserved_clients; /* of max_clients, kept for uid 0 / owner_uid (< max_clients) */
	uint32_t idle_timeout_ms;  /* 0 = 30000 */
	const char *version;       /* reported by `version`; NULL = the build's version */
};

/* Defaults: path NULL, mode 0660, group "macc", owner_uid geteuid(), 64 clients of which 4 are
 * reserved, 30 s. */
void macc_ctl_server_opts_init(struct macc_ctl_server_opts *o);

struct macc_ctl_server;

/*
 * Create the socket and start listening on `loop`. ops and ctx are borrowed until the close
 * callback. Returns 0 and *ret_server, or -errno / MACC_E* with err naming the path.
 */
int macc_ctl_server_create(uv_loop_t *loop, const struct macc_ctl_server_opts *opts,
			   const struct macc_ctl_ops *ops, void *ctx,
			   struct macc_ctl_server **ret_server, struct macc_errmsg *err);

/*
 * Push a progress event to every `watch` client. With p->final the event is the last one: each
 * watcher gets it as its final reply and is then an ordinary client again (macc-ctl exits).
 */
void macc_ctl_server_publish(struct macc_ctl_server *s, const struct macc_ctl_progress *p);

/* Number of connected clients / of watchers (for tests and metrics). */
unsigned macc_ctl_server_nclients(const struct macc_ctl_server *s);
unsigned macc_ctl_server_nwatchers(const struct macc_ctl_server *s);

/*
 * Close the listener and every client, unlink the socket file, and free the server after the
 * last handle's close callback; then call done(arg) (done may be NULL). s may be NULL (nothing
 * happens, done is not called). Run the loop afterwards so the close callbacks can run.
 */
void macc_ctl_server_close(struct macc_ctl_server *s, void (*done)(void *arg), void *arg);

/*
 * The permission rule, exposed for tests: may a caller with (uid, groups) run mutating
 * commands on a socket owned by owner_uid with group sock_gid?
 */
bool macc_ctl_caller_allowed(uid_t uid, const gid_t *groups, size_t ngroups, uid_t owner_uid,
			     gid_t sock_gid);

#endif
