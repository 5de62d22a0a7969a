/*
 * agent.h - the state of one macc-agentd (internal to src/agentd).
 *
 * Ownership: struct macc_agent owns its libuv loop (unless opts.loop lends one), the config, the
 * identity, the peers, the connections, the control server, the model, the data and the
 * training buffers. A struct peer
 * (one per configured neighbour) owns its reconnect timer, backoff, receive slots and counters; a
 * struct conn (one per TCP connection, either direction) owns its handle, frame decoder and
 * session, and is bound to a peer once the peer's HELLO passed the allow-list. A peer's adopted
 * connection (`peer->conn`) is the one it sends on; there is at most one.
 *
 * Threads: everything here is touched by the loop thread only, except the training state (x,
 * v, g, the learner, the mixer), which belongs to the worker job in flight while one is
 * (jobs.c keeps at most one job in flight, and the loop does not touch that state then).
 *
 * Rooms (one job each; the round itself is composed by the learner, macc/learner.h, and the
 * mixer, macc/mixer.h, the modules macc-sim runs):
 *   agent.c    lifecycle: start-up, run, shutdown, teardown; the agent's own handles (every
 *              timer of the daemon is listed above handles_init); deferred events (agent_post);
 *              the progress published to the control socket and systemd.
 *   round.c    the round driver: phases, who a round waits for, the round timer, the jump rule
 *              (macc/guard.h), the requests that wait for a round boundary; what arrives
 *              (agent_on_state) goes to the peer's round slots.
 *   inbox.c    the neighbours' round slots: what arrived for which round (no libuv).
 *   jobs.c     the worker jobs, one function per kind, inputs and outputs in struct agent_job.
 *   reload.c   a new configuration: plan (everything that can fail) then commit (cannot fail).
 *   ctlops.c   the control-socket operations (status, peers, metrics, audit, requests).
 *   control.c  the control protocol server (framing, clients, limits).
 *   peer.c     the configured neighbours: dialing and backoff, listening and the cap on unproven
 *              connections, liveness (keepalive, dead); the design of conn/session/peer.
 *   session.c  one session: handshake, tie-break (adopt, retire, drain), closing, dispatch.
 *   conn.c     one connection's bytes: the bounded send path (plain and sealed, paced by the
 *              max_rate buckets, pacer.h), the read path.
 *   standardize.c  the standardisation agreement before round 0 (a few hooks, each marked).
 *   edge.c     the daemon's side of the mixer: topology, schedules, compression, what goes in
 *              and out of a step, the per-peer slots beyond the next round.
 *   check.c    the start-up check (also --check-config); checkpoint.c, notify.c, backoff.c,
 *              publish.c (the published model for `model` and `predict`), pacer.c: the
 *              loop-free helpers; main.c: the command line.
 * Callbacks never call back into their caller: the network posts events (agent_post) that the
 * loop handles on its next turn; several agents can share a process and a loop (opts.loop).
 */
#ifndef MACC_AGENTD_AGENT_H
#define MACC_AGENTD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "macc/audit.h"
#include "macc/config.h"
#include "macc/consensus.h"
#include "macc/crypto.h"
#include "macc/ctl.h"
#include "macc/data.h"
#include "macc/learner.h"
#include "macc/log.h"
#include "macc/mixer.h"
#include "macc/nn.h"
#include "macc/proto.h"

#include "backoff.h"
#include "control.h"
#include "publish.h"
#include "standardize.h"
#include "pacer.h"

struct macc_agent;
struct peer;
struct wreq; /* session.h */

/* A STATE body encoded once per round and shared by every neighbour's write (refcounted). */
struct shared_body {
	unsigned refs;
	struct macc_state_body body;
};

/* One received round state of a neighbour. */
struct slot {
	bool full;
	uint64_t round;
	float *x; /* nparams */
	float *v; /* nparams, dmsgd only */
	/* What the sender signed, so that the mixing step can put a state it
	 * excludes in the audit trail: the signature, both session nonces, and the body bytes
	 * (kept only when audit = yes). */
	bool has_sig;
	uint8_t sig[MACC_SIG_BYTES];
	uint8_t snonce[MACC_NONCE_BYTES]; /* the sender's (the peer's) session nonce */
	uint8_t rnonce[MACC_NONCE_BYTES]; /* ours */
	int digest_alg;                   /* the digest it signed (enum macc_digest_alg) */
	struct macc_buf body;
	/* edge.c: push-sum weight; compressed exchange: enc (MACC_ENC_F32 = a full resync state in
	 * x/v, else the blobs, checked on arrival and added to the public copy at the step) */
	double weight;
	uint32_t enc;
	uint8_t *bx, *bv; /* compressed only: blob_cap bytes each */
	size_t lx, lv;
};

/*
 * The state of a connection (session.c): one enter_<state>() per state sets it and arms what the
 * state needs; what a state's deadline ends is session.c conn_deadline (checked by peers_tick).
 *   CONNECTING  outbound: TCP connect in flight (inbound: accepted, not set up yet).
 *               Deadline: handshake_timeout_ms from the connection's start.
 *   HELLO       TCP up, reading, our HELLO sent; the peer's HELLO awaited. Deadline: handshake.
 *   AWAIT_ACK   the peer's HELLO passed the allow-list, our HELLO_ACK sent; its HELLO_ACK (the
 *               proof of its key) awaited. Deadline: handshake.
 *   UP          proven and adopted: the peer's session (peer->conn). No deadline: keepalive
 *               PINGs (peers_tick) and the peer's liveness (dead_peer_timeout_ms).
 *   RETIRED     proven, lost the duplicate-session choice: BYE sent, write side shut, still read
 *               for the STATE the peer sent on it. Deadline: DRAIN_TIMEOUT_MS.
 *   CLOSING     refused or closed on purpose: BYE sent and flushed; only a BYE is read.
 *               Deadline: SHUT_TIMEOUT_MS.
 *   CLOSED      its handle is closing: nothing is read or written; freed by the close callback.
 */
enum conn_state {
	CONN_CONNECTING,
	CONN_HELLO,
	CONN_AWAIT_ACK,
	CONN_UP,
	CONN_RETIRED,
	CONN_CLOSING,
	CONN_CLOSED,
};

struct conn {
	struct macc_agent *agent;
	struct peer *peer; /* outbound: from the start; inbound: after HELLO; else NULL */
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct macc_frame_decoder dec;
	struct macc_session session;
	uint8_t nonce[MACC_NONCE_BYTES];
	bool outbound;
	enum conn_state state;
	uint64_t deadline_ms; /* the state's deadline (monotonic ms), 0 none */
	bool unproven;        /* inbound, not proven yet: counted in agent.nconns_unproven */
	uint64_t opened_ms;
	uint64_t last_tx_ms;
	uint64_t last_ping_ms; /* RTT is measured every keepalive period, busy link or not */
	uint64_t ping_seq;
	uint64_t ping_window_ms;  /* start of the current one-second PING window */
	unsigned pings_in_window; /* PINGs answered in it (session.c: ping_rate) */
	struct macc_buf sealspare; /* sealed STATE buffer kept from round to round (conn.c) */
	/* max_rate (conn.c): writes waiting for tokens, in order; bytes of them not yet handed
	 * to libuv. Once anything waits here, every later write queues behind it. */
	struct wreq *pq_head, *pq_tail;
	size_t pq_bytes;
	uint64_t pace_seq; /* when it last sent a slice (agent.pace_seq then): turns */
	char addr[80];
	char arch[MACC_PLATFORM_MAX], blas[MACC_PLATFORM_MAX]; /* from the peer's HELLO */
	struct conn *next; /* agent's list */
};

struct peer {
	struct macc_agent *agent;
	char name[MACC_CONFIG_NAME_MAX];
	struct macc_endpoint endpoint;
	struct macc_pubkey key;
	double cfg_weight;
	bool has_weight;
	bool removed;      /* dropped by a reload; freed once its handles closed */
	uint32_t degree;   /* learned in HELLO */
	bool degree_known;
	char arch[MACC_PLATFORM_MAX], blas[MACC_PLATFORM_MAX]; /* its HELLO's platform, "" unknown */

	struct conn *conn; /* adopted session, or NULL */
	bool resolving;
	uv_getaddrinfo_t gai;
	uv_timer_t reconnect_timer;
	bool timer_init;
	unsigned open_handles;
	struct macc_backoff backoff;

	uint64_t last_rx_ms;
	bool dead;
	bool was_up;       /* a session was adopted once (so a lost one is a real loss) */
	uint64_t down_ms;  /* when its adopted session went down (peer_gone) */
	bool known_round_valid;
	uint64_t known_round; /* the peer's current round, from HELLO or its STATEs */
	int64_t last_round;   /* last round whose state arrived, -1 none */
	struct slot cur, next;

	/* edge.c */
	uint32_t idx;        /* agent number in the topology (with topology set) */
	bool in_nb, out_nb;  /* it sends to us / we send to it (both unless push-sum) */
	uint32_t outdeg;     /* push-sum: its out-degree, from the topology */
	bool tx_any;         /* compressed: a STATE went to it in this life */
	bool tx_full;        /* compressed: its next STATE is a full f32 resync */
	bool resync_asked;   /* we closed the session to get a resync; cleared by one */
	int64_t tx_round;    /* last round whose STATE went to it, -1 none */
	struct slot *later;  /* push-sum: more future rounds (an in-neighbour may run ahead) */
	size_t nlater;
	uint64_t state_bytes_in, state_bytes_out; /* STATE frames, in the clear */

	double rtt_ms;
	uint64_t bytes_in, bytes_out;
	/* max_rate (conn.c paces, peer.c measures): this neighbour's bucket (kept across
	 * sessions) and the measured rate of bytes handed to its sessions, over windows of about
	 * a second (peers_tick) */
	uint64_t max_rate;
	struct macc_pacer pacer;
	double send_rate;        /* bytes/s, last window */
	uint64_t rate_win_ms, rate_win_bytes;
	uint64_t rejected[32]; /* by MACC_EMALFORMED - code */
	uint64_t rejected_errno;
	struct macc_ratelimit rl;
	struct macc_ratelimit rl_lost; /* "never arrived" folds (edge.c): not eaten by dial errors */
	struct macc_ratelimit rl_dial; /* dial and resolve failures: they do not eat rl's budget */

	/* Robust mixing: quarantine state (the mixer's, copied in before a step and
	 * out after it) and exclusions by macc_robust_reason. */
	struct macc_quarantine q;
	uint64_t excluded[MACC_ROBUST_NREASONS];
	uint64_t clipped;
};

enum phase {
	PH_NONE,  /* between rounds / not training */
	PH_GRAD,  /* worker computing the gradient at x_k */
	PH_WAIT,  /* waiting for neighbours' round-k states */
	PH_STEP,  /* worker applying the step (and eval / checkpoint) */
	PH_JOB,   /* a standalone job (eval, checkpoint) outside a round */
};

/* Worker jobs (jobs.c): one function per kind, run in this order when several are asked for. */
enum {
	JOB_STEP = 1,      /* the mixer's step, and the audit trail of what it excluded */
	JOB_EVAL = 2,      /* test loss and accuracy */
	JOB_CKPT = 4,      /* the checkpoint (not when the own parameters are not sane) */
	JOB_ENCODE = 8,    /* this round's outgoing STATE body */
	JOB_GRAD = 16,     /* the learner's round: local steps and the gradient */
	JOB_DIST = 32,     /* consensus distance and parameter digest (shown, not used) */
	JOB_ROLLBACK = 64, /* x, v back from the last good checkpoint */
};

/* The job in flight (jobs.c), owned by the agent: inputs set by the loop before queueing, outputs
 * read on the loop after it. While flags != 0 the worker owns it and x, v, g, the learner and the
 * mixer. */
struct agent_job {
	unsigned flags;
	/* step: what arrived from peer[i] (edge_inbound) */
	struct macc_mixer_in in[MACC_CONFIG_MAX_PEERS];
	size_t nnb;
	uint64_t ckpt_round; /* the round a checkpoint or an encoded body is for */
	/* outputs */
	struct macc_mixer_report rep;
	double dist;
	uint64_t digest;
	double eval_loss, eval_acc;
	int ckpt_rc;
	struct macc_errmsg ckpt_err;
	struct shared_body *body;
	struct shared_body *spare; /* a body no write holds any more, for the next encode */
	int body_rc;
	/* the audit trail of the states robust mixing excludes: inputs copied on the loop */
	uint64_t round;
	struct peer *peer[MACC_CONFIG_MAX_PEERS];
	const struct slot *slot[MACC_CONFIG_MAX_PEERS];
	struct macc_pubkey key[MACC_CONFIG_MAX_PEERS];
	char name[MACC_CONFIG_MAX_PEERS][MACC_CONFIG_NAME_MAX];
	uint64_t audit_written, audit_errors, audit_unsigned;
	struct macc_errmsg audit_err;
	struct macc_errmsg body_err;
	/* own parameters non-finite: found after the step or before an encode or a checkpoint;
	 * the rollback job's outcome */
	bool own_bad;
	int rb_rc;
	uint64_t rb_round;
	char rb_used[1100];
	struct macc_errmsg rb_err;
};

/* Events posted by callbacks (session.c, peer.c) and handled from the loop (agent.c
 * agent_post): a callback never calls back into the code that called it. */
enum {
	EV_CHECK_ROUND = 1, /* a state arrived, a session came up or went: may the round end? */
	EV_STD_CHECK = 2,   /* standardize.c: may an agreement step end? */
	EV_START_ROUND = 4, /* standardize.c: the transform is known, round 0 may start */
};

struct agent_opts {
	const char *config_path;
	const char *socket_path; /* -s overrides the config */
	bool exit_when_done;
	bool have_log_level;
	enum macc_log_level log_level;
	uv_loop_t *loop;  /* the in-process tests: several agents on one loop; NULL: its own */
	bool no_signals;  /* the in-process tests: no SIGTERM/SIGINT/SIGHUP handlers */
};

struct macc_agent {
	uv_loop_t *loop;   /* opts.loop, or own_loop */
	uv_loop_t own_loop;
	struct agent_opts opts;
	struct macc_config cfg;
	struct macc_identity id;
	char keyb64[MACC_KEY_B64_SIZE];
	char arch[MACC_PLATFORM_MAX], blas[MACC_PLATFORM_MAX]; /* ours, sent in HELLO */

	/* Peers sorted by ascending public key: the agent index order of macc-algorithms(7). */
	struct peer **peers;
	size_t npeers;
	struct macc_pubkey *allow; /* keys of peers[], same order */
	struct peer **graveyard;   /* removed peers waiting for their handles to close */
	size_t ngraveyard;
	struct conn *conns;
	uv_tcp_t listener;
	char rbuf[1 << 16];       /* conn.c: the read buffer of small frames (all connections) */
	bool listening;
	unsigned nconns_unproven; /* inbound connections whose peer has not proven its key */

	/* Learning: the learner (model, shard, batcher, rngs, epochs) and the mixer (edge.c). */
	struct macc_learner learner;
	struct macc_mixer mixer;
	struct macc_model *eval_model;
	struct macc_dataset train, test;
	struct macc_partition part;
	bool part_made;
	struct macc_hparams hp;
	enum macc_algo algo;
	bool sends_v, after_grad;
	size_t nparams;
	uint64_t model_hash, config_hash;
	bool regression; /* loss:mse: test_acc is NaN; the test RMSE is sqrt(test_loss) */
	float *x, *v, *g;
	uint64_t epoch_rounds, total_rounds; /* the learner's */
	size_t frame_max;

	/* Round machinery. */
	enum macc_ctl_state state;
	enum phase phase;
	uint64_t round; /* current round k = completed rounds */
	uint64_t round_started_ms;
	bool round_timed_out;
	uv_timer_t round_timer;
	uv_timer_t grace_timer; /* ends a wait when a down neighbour's reconnect grace runs out */
	uv_timer_t pace_timer;  /* conn.c: releases paced writes when the buckets allow */
	struct macc_pacer pacer; /* [agent] max_rate: all sessions' writes together */
	double send_rate;        /* bytes/s handed to all sessions, last window (peers_tick) */
	uint64_t rate_win_ms, rate_win_bytes;
	uint64_t pace_seq;       /* slices sent (conn.c: which connection's turn) */
	uv_timer_t tick_timer;
	uv_timer_t watchdog_timer;
	bool handles_made;        /* the timers, defer and signals above are initialised */
	uv_work_t work;
	struct agent_job job;     /* the worker job in flight (jobs.c) */
	uv_idle_t defer;          /* runs the posted events (agent_post) */
	unsigned pending;         /* posted events, EV_* */
	struct shared_body *body; /* this round's outgoing state, or NULL */
	uint64_t body_round;
	bool pause_req, stop_req, shutdown_req, ckpt_req, eval_req, stopped_training;
	/* Round jumps (macc/guard.h, round.c rejoin()). */
	bool jumped;
	uint64_t last_jump_ms;
	struct macc_ratelimit rl_jump;
	/* Own parameters that went non-finite (jobs.c): rolled back, degraded until the next
	 * checkpoint taken after degraded_round. */
	bool rollback_req;
	bool degraded;
	uint64_t degraded_round;
	uint64_t rollbacks;
	struct macc_ratelimit rl_rollback;
	bool shutting_down;
	int exit_code;
	uv_signal_t sig_term, sig_int, sig_hup;
	struct macc_rng jitter;

	/* Results shown in status. */
	double train_loss, loss_acc;
	uint64_t loss_n;
	double test_loss, test_acc;
	bool have_eval;
	double round_time_s, consensus_distance;
	uint64_t last_dist_ms; /* when consensus_distance was last computed */
	uint64_t digest;
	uint64_t samples_total;
	uint64_t train_ms; /* wall time spent in rounds */
	uint64_t start_ms;
	double start_wall_s; /* the same moment on the wall clock, for process_start_time_seconds */
	char last_error[256];
	struct macc_ctl_metrics metrics;
	uint64_t last_publish_ms;
	uint64_t last_status_ms;	  /* last STATUS= line sent to systemd */
	enum macc_ctl_state status_state; /* the state that line showed */
	/* Refused before the peer was identified, by enum macc_ctl_connrej (conn.c). */
	uint64_t conn_rejected[MACC_CTL_CONNREJ_COUNT];
	struct macc_ratelimit rl_unbound;
	/* tcp_congestion (conn_set_congestion): the last algorithm whose refusal by the kernel
	 * was logged (one warning per algorithm, not one per connection). */
	char tcp_congestion_warned[MACC_CONFIG_TCP_CC_MAX];

	struct macc_ctl_server *ctl;
	struct macc_pub *pub; /* the published model: `model` and `predict` read it (publish.h) */

	/* Robust mixing and the audit trail. `robust`, `rcfg`: the configured rule
	 * (macc_mixer_robust_cfg); a reload changes them and the mixer takes them at the next
	 * step (edge_inbound). */
	bool robust;
	struct macc_robust_cfg rcfg;
	struct macc_audit *audit;  /* NULL unless audit = yes; used by the worker job only */
	struct macc_ratelimit rl_audit;
	/* Beyond a fixed undirected graph (edge.c, macc-algorithms(7)). */
	struct edge {
		bool pushsum;        /* sgp, or dmsgd on a directed topology */
		bool varying;        /* schedule matching / exp-pairs */
		bool compressed;     /* compress != none */
		bool late_send;      /* the body is encoded after the gradient (dsgd, H > 1) */
		bool fresh;          /* started at round 0 without a checkpoint */
		bool robust_dirty;   /* a reload changed the robust rule: the mixer takes it next */
		uint32_t H;          /* local steps */
		uint32_t self_idx, nagents;
		struct macc_graph graph;
		struct macc_digraph dg;
		bool graph_made, dg_made;
		struct macc_schedule sched;
		struct macc_compressor comp;
		float gamma;
		float *snap_x, *snap_v; /* public copies of our own vectors as of body_round */
		size_t blob_cap;
		struct shared_body *full; /* full f32 resync body for full_round, or NULL */
		uint64_t full_round;
		uint64_t bytes_out, bytes_in; /* STATE frames sent / accepted, in the clear */
		uint64_t resyncs_sent, resyncs_asked;
	} edge;
	/* The standardisation phase before round 0 (standardize.c). */
	struct std_phase std;
};

/* peer.c, session.c, conn.c */
int peers_setup(struct macc_agent *a, struct macc_errmsg *err);
int peer_listen(struct macc_agent *a, struct macc_errmsg *err);
void peer_close_listener(struct macc_agent *a);
struct peer *peer_create(struct macc_agent *a, const struct macc_config_peer *cp);
struct peer *peer_new(struct macc_agent *a, const struct macc_config_peer *cp);
void peer_attach(struct peer *p);
void peer_free(struct peer *p);
void peer_start(struct peer *p);
void peer_remove(struct peer *p);
void peer_reconnect(struct peer *p);
void peers_sort(struct macc_agent *a);
void peer_send_body(struct peer *p);
bool peer_draining(const struct peer *p);
uint64_t peer_grace_end(const struct peer *p);
void peers_set_rates(struct macc_agent *a); /* max_rate from a->cfg (start, reload) */
void peers_pace(uv_timer_t *t);             /* pace_timer's callback */
bool peer_gone(const struct peer *p, uint64_t now);
void peers_tick(struct macc_agent *a);
void peers_say_bye(struct macc_agent *a, int reason, const char *text);
void peer_reject(struct peer *p, int code, const char *what);
enum macc_ctl_session peer_session_state(const struct peer *p);
void shared_body_unref(struct shared_body *b);
void slot_free(struct slot *s);

/* edge.c: see the top of edge.c */
int edge_config(struct macc_agent *a, struct macc_errmsg *err);
int edge_check_reload(const struct macc_agent *a, const struct macc_config *nc,
		      struct macc_robust_cfg *ret_rcfg, bool *ret_robust, struct macc_errmsg *err);
int edge_setup(struct macc_agent *a, bool fresh, struct macc_errmsg *err);
int edge_map_peers(struct macc_agent *a, struct macc_errmsg *err);
void edge_finish(struct macc_agent *a);
int edge_peer_init(struct macc_agent *a, struct peer *p);
void edge_peer_finish(struct peer *p);
const float *edge_model(const struct macc_agent *a);
bool edge_sends_to(const struct macc_agent *a, const struct peer *p);
bool edge_expects(const struct macc_agent *a, const struct peer *p);
void edge_row(const struct macc_agent *a, double *ret_self, double *w);
bool edge_owes(const struct macc_agent *a, const struct peer *p);
void edge_round_start(struct macc_agent *a);
int edge_encode(struct macc_agent *a, struct macc_state_out *so, struct macc_errmsg *err);
struct shared_body *edge_body_for(struct macc_agent *a, struct peer *p);
int edge_check_state(const struct macc_agent *a, const struct macc_state *st,
		     struct macc_errmsg *err);
void edge_store_state(struct macc_agent *a, struct slot *s, const struct macc_state *st);
struct slot *edge_future_slot(struct peer *p, uint64_t round);
void edge_advance_slots(struct peer *p, uint64_t r);
uint64_t edge_lag(const struct macc_agent *a);
size_t edge_inbound(struct macc_agent *a, struct macc_mixer_in *in);
void edge_after_step(struct macc_agent *a, struct peer *const *peers, size_t n,
		     const struct macc_mixer_report *rep);
void peer_resync(struct peer *p, const char *why);
/* conn.c, for standardize.c: one STATS on p's adopted session (sealed when it is). */
int peer_send_stats(struct peer *p, const struct macc_stats_out *so);

/* round.c: the round driver (phases, the wait, the jump rule, requests) */
enum round_req {
	ROUND_REQ_START,
	ROUND_REQ_STOP,
	ROUND_REQ_PAUSE,
	ROUND_REQ_RESUME,
	ROUND_REQ_CHECKPOINT,
	ROUND_REQ_EVAL,
};
void round_start(struct macc_agent *a);
void round_check(struct macc_agent *a);
bool round_waits_for(const struct macc_agent *a, const struct peer *p);
void round_after_job(struct macc_agent *a, unsigned flags, enum phase ph);
void round_finish_run(struct macc_agent *a);
int round_request(struct macc_agent *a, enum round_req r, struct macc_errmsg *err);
void round_request_shutdown(struct macc_agent *a, const char *why);
void agent_on_state(struct peer *p, const struct macc_state *st, const struct macc_session *sess);
void agent_on_peer_change(struct macc_agent *a);
void agent_on_session_up(struct peer *p);
/* round.c, called by standardize.c when the transform is known: round 0 may start. */
void agent_on_standardized(struct macc_agent *a);

/* inbox.c: the neighbours' round slots (no libuv) */
enum inbox_verdict {
	INBOX_LATE,   /* for a round already stepped: only the neighbour's round is noted */
	INBOX_HAVE,   /* that round's state is held already */
	INBOX_STORED, /* stored for its round */
};
enum inbox_verdict inbox_accept(struct macc_agent *a, struct peer *p, const struct macc_state *st,
				const struct macc_session *sess);
void inbox_advance(struct macc_agent *a, uint64_t r);
bool inbox_arrived(const struct macc_agent *a, const struct peer *p);

/* jobs.c: the worker jobs */
int job_queue(struct macc_agent *a, unsigned flags, enum phase ph);
void job_set_step_inputs(struct macc_agent *a);
void jobs_finish(struct macc_agent *a);

/* reload.c */
int agent_reload(struct macc_agent *a, struct macc_errmsg *err);

/* ctlops.c: the control-socket operations */
extern const struct macc_ctl_ops agent_ctl_ops;

/* agent.c: lifecycle and what the other rooms share */
void agent_post(struct macc_agent *a, unsigned ev);
void agent_publish(struct macc_agent *a, bool final);
void agent_publish_model(struct macc_agent *a, bool request, bool idle);
void agent_shutdown(struct macc_agent *a);
void agent_log_robust(const struct macc_agent *a);
double agent_epoch(const struct macc_agent *a, uint64_t round);
uint32_t agent_peers_up(const struct macc_agent *a);

/* agent.c, called by main.c and the in-process tests */
int agent_init(struct macc_agent *a, const struct agent_opts *o, struct macc_errmsg *err);
int agent_run(struct macc_agent *a);
void agent_finish(struct macc_agent *a);

#endif
