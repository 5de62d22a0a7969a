/*
 * standardize.h - the daemon's standardisation phase (internal to macc-agentd): before round 0
 * the agents agree on the feature transform (macc/agree.h) over STATS messages, or take it from
 * a checkpoint, or adopt a neighbour's; see the top of standardize.c.
 *
 * The rest of the daemon calls it through a few hooks only (each marked "standardize.c" where
 * it is called): agent.c (set-up, checkpoint load, timer, finish), jobs.c (checkpoint save),
 * round.c (round_start's gate, session up, peer change via EV_STD_CHECK), ctlops.c (status),
 * conn.c (HELLO flag), session.c (HELLO check, STATS dispatch).
 */
#ifndef MACC_AGENTD_STANDARDIZE_H
#define MACC_AGENTD_STANDARDIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "macc/agree.h"
#include "macc/config.h"
#include "macc/crypto.h"
#include "macc/ctl.h"
#include "macc/err.h"
#include "macc/log.h"
#include "macc/proto.h"

struct macc_agent;
struct macc_ckpt;
struct conn;
struct peer;

/* Where the model's transform came from (status "standardize"). */
enum std_source {
	STD_OFF = 0,      /* the run does not standardise */
	STD_PENDING,      /* not agreed yet: the agreement runs (or has not begun) */
	STD_AGREED,       /* agreed with the neighbours in this life */
	STD_CHECKPOINT,   /* taken from the checkpoint it resumed from */
	STD_ADOPTED,      /* a neighbour's agreed transform (this agent joined late) */
};

struct std_phase {
	bool on;                  /* standardize = yes, or auto on csv: data */
	enum std_source source;
	uint32_t S, D;            /* average and exact steps */
	size_t dim, len;          /* features; values of an average-phase vector (1 + 2d) */
	bool begun, ag_made;
	struct macc_agree ag;
	size_t nnb;               /* neighbours when it began, ascending public key */
	struct macc_pubkey *keys; /* [nnb] */
	unsigned nslot;           /* received vectors kept per neighbour (steps t .. t+nslot-1) */
	double *slot;             /* [nnb][nslot][len] */
	uint64_t *slot_step;      /* [nnb][nslot]: the step held, UINT64_MAX none */
	const struct conn **sent_on; /* [nnb]: session the current step's vector went on */
	uint64_t *sent_step;      /* [nnb]: that step + 1 (0 none) */
	bool *skip;               /* [nnb]: runs another S or D: not waited for */
	bool *hello_off;          /* [nnb]: its HELLO says standardize differs: not waited for
				   * until a session with it is up */
	uint64_t step_ms;         /* when the current step began */
	uint64_t refused_total;   /* neighbours' vectors refused by the screening or for S, D */
	uint64_t stats_sent_total, stats_received_total;
	uint64_t digest;          /* macc_params_digest over mean then inv_std, once known */
	float *mean, *inv;        /* [dim] each: the result, set on the models at the gate */
	bool pending_apply;       /* result known, not yet set on the models */
	char from[MACC_CONFIG_NAME_MAX]; /* STD_ADOPTED: the neighbour */
	uv_timer_t timer;         /* 100 ms while the agreement runs (timeouts) */
	bool timer_init;
	struct macc_ratelimit rl;
};

/* agent.c, agent_init after the learner exists: resolve on, S and D (MACC_ECONFIG when D cannot
 * be known), size the buffers, raise the frame limit for STATS. */
int std_setup(struct macc_agent *a, struct macc_errmsg *err);
/* agent.c, load_checkpoint: buffers for the file's transform before macc_ckpt_load ... */
void std_ckpt_prepare(struct macc_agent *a, struct macc_ckpt *c);
/* ... and after it loaded: the file's transform on every model (no agreement then). */
int std_ckpt_loaded(struct macc_agent *a, const struct macc_ckpt *c, struct macc_errmsg *err);
/* agent.c, worker (checkpoint job): the model's transform into the checkpoint (version 2). */
void std_ckpt_fill(const struct macc_agent *a, struct macc_ckpt *c);
/* agent.c, start_round's gate (loop thread, no job in flight): true once training may start;
 * false while the agreement runs (it begins it the first time). */
bool std_ready(struct macc_agent *a);
/* agent.c: a session came up / a peer's liveness changed. */
void std_on_session_up(struct peer *p);
void std_on_peer_change(struct macc_agent *a);
/* agent.c, ctl_status. */
void std_status(const struct macc_agent *a, struct macc_ctl_status *st);
/* agent.c, do_shutdown: close the timer. */
void std_shutdown(struct macc_agent *a);
/* agent.c, agent_finish. */
void std_finish(struct macc_agent *a);

/* peer.c: our HELLO flags (MACC_HELLO_F_STANDARDIZE when on), set before the HELLO is made. */
uint32_t std_hello_flags(const struct macc_agent *a);
/* peer.c, a peer's HELLO: MACC_ECONFIG with err when it standardises and we do not or the
 * reverse (refused at the handshake, so it cannot stall the agreement). */
int std_check_hello(struct macc_agent *a, const struct macc_hello *h, struct macc_errmsg *err);
/* peer.c: a STATS on a proven session. */
void std_on_stats(struct conn *c, const struct macc_stats *st);

#endif
