/*
 * agent.h - the state of one macc-agentd (internal to src/agentd).
 *
 * Ownership: struct macc_agent owns the libuv loop, the config, the identity, the peers, the
 * connections, the control server, the model, the data and the training buffers. A struct peer
 * (one per configured neighbour) owns its reconnect timer, backoff, receive slots and counters; a
 * struct conn (one per TCP connection, either direction) owns its handle, frame decoder and
 * session, and is bound to a peer once the peer's HELLO passed the allow-list. A peer's adopted
 * connection (`peer->conn`) is the one it sends on; there is at most one.
 *
 * Threads: everything here is touched by the loop thread only, except the training buffers
 * (x, v, g, the batcher, the model), which belong to the worker job in flight while one is
 * (agent.c keeps at most one job in flight, and the loop does not touch those buffers then).
 *
 * Files: agent.c (lifecycle, rounds, worker jobs, control callbacks, signals), peer.c
 * (connections, handshake, messages, keepalive, tie-break), main.c (command line).
 */
#ifndef MACC_AGENTD_AGENT_H
#define MACC_AGENTD_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "macc/config.h"
#include "macc/consensus.h"
#include "macc/crypto.h"
#include "macc/ctl.h"
#include "macc/data.h"
#include "macc/log.h"
#include "macc/nn.h"
#include "macc/proto.h"

#include "backoff.h"
#include "control.h"

struct macc_agent;
struct peer;

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
	/* Signature and nonces of the STATE it came in: with the body (re-encoded from x and v,
	 * macc_state_body_encode is canonical) and both keys, proof of what the peer sent. On a
	 * sealed session the signature was not checked on receipt (proof.checked false). */
	struct macc_state_proof proof;
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
	bool connected;
	bool closing;
	bool adopted;
	bool hello_sent;
	uint64_t opened_ms;
	uint64_t last_tx_ms;
	uint64_t last_ping_ms; /* RTT is measured every keepalive period, busy link or not */
	uint64_t ping_seq;
	uint64_t ping_window_ms;  /* start of the current one-second PING window */
	unsigned pings_in_window; /* PINGs answered in it (peer.c: PING_PER_S_MAX) */
	struct macc_buf sealspare; /* sealed STATE buffer kept from round to round (peer.c) */
	char addr[80];
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

	struct conn *conn; /* adopted session, or NULL */
	bool resolving;
	uv_getaddrinfo_t gai;
	uv_timer_t reconnect_timer;
	bool timer_init;
	unsigned open_handles;
	struct macc_backoff backoff;

	uint64_t last_rx_ms;
	bool dead;
	bool known_round_valid;
	uint64_t known_round; /* the peer's current round, from HELLO or its STATEs */
	int64_t last_round;   /* last round whose state arrived, -1 none */
	struct slot cur, next;

	double rtt_ms;
	uint64_t bytes_in, bytes_out;
	uint64_t rejected[32]; /* by MACC_EMALFORMED - code */
	uint64_t rejected_errno;
	struct macc_ratelimit rl;
};

enum phase {
	PH_NONE,  /* between rounds / not training */
	PH_GRAD,  /* worker computing the gradient at x_k */
	PH_WAIT,  /* waiting for neighbours' round-k states */
	PH_STEP,  /* worker applying the step (and eval / checkpoint) */
	PH_JOB,   /* a standalone job (eval, checkpoint) outside a round */
};

struct agent_opts {
	const char *config_path;
	const char *socket_path; /* -s overrides the config */
	bool exit_when_done;
	bool have_log_level;
	enum macc_log_level log_level;
};

struct macc_agent {
	uv_loop_t loop;
	struct agent_opts opts;
	struct macc_config cfg;
	struct macc_identity id;
	char keyb64[MACC_KEY_B64_SIZE];

	/* Peers sorted by ascending public key: the agent index order of ALGORITHMS.md. */
	struct peer **peers;
	size_t npeers;
	struct macc_pubkey *allow; /* keys of peers[], same order */
	struct peer **graveyard;   /* removed peers waiting for their handles to close */
	size_t ngraveyard;
	struct conn *conns;
	uv_tcp_t listener;
	bool listening;
	unsigned nconns_unbound;

	/* Learning. */
	struct macc_model *model;
	struct macc_model *eval_model;
	struct macc_dataset train, test;
	struct macc_partition part;
	bool part_made;
	const uint32_t *shard;
	size_t shard_n;
	struct macc_batcher batcher;
	struct macc_rng dropout_rng;
	struct macc_lr_schedule lr;
	struct macc_hparams hp;
	enum macc_algo algo;
	bool sends_v, after_grad;
	size_t nparams;
	uint64_t model_hash, config_hash;
	float *x, *v, *g, *y, *scratch, *bx;
	int32_t *by;
	uint64_t epoch_rounds, total_rounds;
	size_t frame_max;

	/* Round machinery. */
	enum macc_ctl_state state;
	enum phase phase;
	uint64_t round; /* current round k = completed rounds */
	uint64_t round_started_ms;
	bool round_timed_out;
	uv_timer_t round_timer;
	uv_timer_t tick_timer;
	uv_timer_t watchdog_timer;
	uv_work_t work;
	struct shared_body *body; /* this round's outgoing state, or NULL */
	uint64_t body_round;
	bool pause_req, stop_req, shutdown_req, ckpt_req, eval_req, stopped_training;
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
	char last_error[256];
	struct macc_ctl_metrics metrics;
	uint64_t last_publish_ms;
	uint64_t rejected_unbound;
	struct macc_ratelimit rl_unbound;

	struct macc_ctl_server *ctl;
};

/* peer.c */
int peers_setup(struct macc_agent *a, struct macc_errmsg *err);
int peer_listen(struct macc_agent *a, struct macc_errmsg *err);
void peer_close_listener(struct macc_agent *a);
struct peer *peer_create(struct macc_agent *a, const struct macc_config_peer *cp);
void peer_start(struct peer *p);
void peer_remove(struct peer *p);
void peer_reconnect(struct peer *p);
void peers_sort(struct macc_agent *a);
void peer_send_body(struct peer *p);
void peers_tick(struct macc_agent *a);
void peers_say_bye(struct macc_agent *a, int reason, const char *text);
void peer_reject(struct peer *p, int code, const char *what);
enum macc_ctl_session peer_session_state(const struct peer *p);
void shared_body_unref(struct shared_body *b);
void slot_free(struct slot *s);

/* agent.c, called by peer.c */
void agent_on_state(struct peer *p, uint64_t round, const uint8_t *x, const uint8_t *v,
		    const struct macc_state_proof *proof);
void agent_on_peer_change(struct macc_agent *a);
void agent_on_session_up(struct peer *p);

/* agent.c, called by main.c */
int agent_init(struct macc_agent *a, const struct agent_opts *o, struct macc_errmsg *err);
int agent_run(struct macc_agent *a);
void agent_finish(struct macc_agent *a);

#endif
