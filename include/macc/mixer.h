/*
 * mixer.h - one agent's side of a round of consensus: what it sends, and how it mixes what it
 * received. The ONE composition of the update equations of macc-algorithms(7) (consensus.h has the
 * leaves) that macc-sim, macc-agentd and the unit tests all call, so that they cannot drift.
 *
 * A struct macc_mixer owns the mixing state of one agent: the public copies of compressed
 * exchange (CHOCO) and whether each neighbour's copy is in sync, the push-sum weight and the
 * de-biased parameters, the learned distances and quarantine states of robust mixing, this
 * round's schedule partner, and the buffers a round needs (nothing is allocated per round). It
 * knows nothing of sockets, threads or files; it never logs.
 *
 * Neighbours are the agent's configured neighbours in ascending agent index (the daemon: peers
 * sorted by public key), in- and out-neighbours together on a directed graph; entry i of every
 * per-neighbour array below is neighbour i.
 *
 * A round k of agent j:
 *   1. macc_mixer_begin(round k, its partner under the schedule);
 *   2. the learner takes its local steps and gradient at macc_mixer_model() (learner.h; pass
 *      macc_mixer_moved as the point's callback);
 *   3. macc_mixer_outgoing(): what travels this round (x, or dsgd's y = x - alpha g; v for dmsgd;
 *      the push-sum weight; the compressed differences, applied to its own public copies);
 *      macc_mixer_sends_to() says to whom;
 *   4. the caller gathers, per neighbour, what arrived for round k (struct macc_mixer_in) and
 *      calls macc_mixer_step(): x, v go from round k to k+1 in place, and a report says what was
 *      mixed, missed, excluded, clipped, resynchronised.
 * The caller sets the row of the mixing matrix (macc_mixer_set_row) whenever it changes.
 *
 * Which options combine is decided here too, once: macc_mixer_check_opts() is called by config
 * parsing, the daemon and macc-sim with the facts each knows, and names the options in the
 * spelling of the caller (command line or config file).
 *
 * Determinism: every float operation happens in a fixed order (consensus.h); given the same
 * inputs the daemon and the simulator compute the same bits.
 */
#ifndef MACC_MIXER_H
#define MACC_MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "macc/consensus.h"
#include "macc/err.h"

/* ---- which options combine ---------------------------------------------------------------- */

/* How option names are spelled in messages: macc-sim's flags or macc.conf(5)'s keys. */
enum macc_mix_dialect {
	MACC_MIX_CLI = 0,
	MACC_MIX_CONF = 1,
};

/* The facts a caller knows about a run; false/0 for what does not apply to it. */
struct macc_mix_opts {
	enum macc_algo algo;              /* the base algorithm (sgp: cdmsgd with pushsum) */
	bool pushsum;                     /* sgp, or a directed topology */
	bool single;                      /* one agent (macc-sim --agents 1) */
	bool no_graph;                    /* the whole graph is unknown (config without topology) */
	enum macc_schedule_kind schedule;
	uint32_t local_steps;             /* H (0 is taken as 1) */
	enum macc_compress_kind compress;
	bool gossip_step;                 /* a gossip step was given */
	bool robust;                      /* macc_mixer_robust_cfg said robust mixing is on */
	bool byzantine;                   /* macc-sim --byzantine with K > 0 */
	bool drops;                       /* macc-sim --drop-prob > 0 */
	bool explicit_weights;            /* weights = explicit */
};

/*
 * The one table of option combinations (macc-sim(1) and macc.conf(5) print it): 0, or
 * MACC_ECONFIG with a message naming both options and why, in the caller's dialect. Refused:
 *   centralized     with local steps, a schedule, compression, robust mixing, byzantine agents
 *   one agent       with local steps, robust mixing, byzantine agents
 *   a schedule or push-sum without the whole graph (no topology)
 *   push-sum        with an algorithm other than dmsgd / cdmsgd (sgp), a schedule, compression,
 *                   message drops, robust mixing, byzantine agents
 *   compression     with message drops, robust mixing, byzantine agents
 *   a schedule      with robust mixing, explicit weights
 *   a gossip step   without compression
 * Everything else combines (local steps with every mode, robust mixing included).
 */
int macc_mixer_check_opts(const struct macc_mix_opts *o, enum macc_mix_dialect d,
			  struct macc_errmsg *err);

/*
 * Robust mixing from its two settings, the one rule of both programs: aggregation spec
 * (macc_agg_parse; NULL = mean) and the screening factor when given (has_factor), else 0 for
 * mean and 10 for every other rule; quarantine and window from macc_robust_cfg_default. *ret_on
 * says whether robust mixing is on (a rule other than mean, or a factor > 0): off is the plain
 * mean path, bit for bit. MACC_ESPEC / MACC_ECONFIG with a message; outputs untouched on error.
 */
int macc_mixer_robust_cfg(const char *aggregation, bool has_factor, double factor,
			  struct macc_robust_cfg *ret, bool *ret_on, struct macc_errmsg *err);

/* ---- the mixer ---------------------------------------------------------------------------- */

struct macc_mixer_cfg {
	enum macc_algo algo;           /* not centralized; with pushsum dmsgd or cdmsgd (sgp) */
	bool pushsum;
	enum macc_schedule_kind schedule;
	struct macc_compressor comp;   /* kind none: uncompressed */
	float gamma;                   /* CHOCO gossip step; 0: the compressor's default */
	bool robust;                   /* with rcfg (macc_mixer_robust_cfg) */
	struct macc_robust_cfg rcfg;
	size_t n;                      /* parameters */
	size_t nnb;                    /* configured neighbours */
};

/* Per neighbour: what the last macc_mixer_step did with it. */
struct macc_mixer_outcome {
	uint8_t reason;    /* enum macc_robust_reason: OK = mixed, MISSING = not (or not due) */
	bool expected;     /* its state was due this round */
	bool clipped;      /* robust: its difference was clipped */
	bool quarantined;  /* robust: a quarantine started */
	bool resynced;     /* CHOCO: a full state replaced our copy of it (now in sync) */
	bool sync_lost;    /* CHOCO: no difference arrived while in sync: the copy is now stale */
	bool out_of_sync;  /* CHOCO: a difference that does not follow our copy: not used; ask the
			    * sender for a full state */
};

/* Per configured neighbour (private: use the functions). */
struct macc_mixer_link {
	uint32_t idx;      /* agent number (schedules) */
	bool in, out;      /* it sends to us / we send to it */
	bool hat_ok;       /* CHOCO: our copy of its public vectors is in sync ... */
	uint64_t hat_next; /* ... and expects the difference of this round next */
	uint64_t qtimes;   /* robust: quarantines started before this step */
	struct macc_mixer_outcome last;
};

/* Private fields; one agent's state, used by one thread at a time. */
struct macc_mixer {
	struct macc_mixer_cfg cfg;
	bool sends_v, after_grad, compressed, varying;
	size_t nnb, cap;                  /* neighbours, and room for that many */
	struct macc_mixer_link *nb;       /* [cap] */
	double *w, *wout;                 /* [cap] the row, and this round's after folding */
	bool *ok;                         /* [cap] this round's usable states */
	struct macc_quarantine *q;        /* [cap] robust */
	uint8_t *reasons;                 /* [cap] robust */
	struct macc_arrival *arr;         /* [cap] */
	struct macc_neighbour *list;      /* [cap] the round's effective neighbour list */
	double *w_in;                     /* [cap] push-sum: the senders' weights */
	float *cw;                        /* [cap] CHOCO weights */
	double self_w;
	uint64_t round;
	uint32_t partner;
	float *y;                         /* dsgd: the half-step sent (n) */
	float *scratch;                   /* CHOCO: 2n */
	struct macc_choco choco;
	bool choco_made;
	uint8_t *blob_x, *blob_v;         /* CHOCO: this round's differences */
	size_t blob_cap;
	double pw;                        /* push-sum weight */
	float *xdb;                       /* push-sum: de-biased x = z / w (n) */
	struct macc_robust rob;           /* robust: learned distances */
	float *rbuf;
	size_t rbuf_floats;
};

/*
 * Set up for c->nnb neighbours (all in- and out-neighbours, agent numbers 0..nnb-1 until
 * macc_mixer_set_link; row weights 0 until macc_mixer_set_row) from parameters x0 (the CHOCO
 * public copies and the de-biased x start there; the push-sum weight at 1). Round `round0` is
 * the first round stepped; `fresh` says every neighbour's public copy may be taken as x0 (all
 * agents start at round 0 from the shared x0); otherwise (a restart) every copy is out of sync
 * until a full state arrives. Checks the configuration (MACC_ECONFIG: an algorithm without a
 * push-sum form, robust mixing with more than MACC_ROBUST_MAX_NB neighbours or too few for
 * trimmed:B, a bad robust cfg) and -ENOMEM. On error *m is zeroed.
 */
int macc_mixer_init(struct macc_mixer *m, const struct macc_mixer_cfg *c, const float *x0,
		    uint64_t round0, bool fresh, struct macc_errmsg *err);
void macc_mixer_finish(struct macc_mixer *m); /* zeroed ok */

/* Neighbour i's agent number and edges (push-sum: in, out; otherwise both true). */
void macc_mixer_set_link(struct macc_mixer *m, size_t i, uint32_t idx, bool in, bool out);
/* The row of W (push-sum: of P, self share and the in-neighbours' shares, 0 for out-only
 * neighbours): self_w and w[0..nnb). Doubles, cast to float once at the step. */
void macc_mixer_set_row(struct macc_mixer *m, double self_w, const double *w);
/*
 * Change the number of neighbours (the daemon's reload; plain or robust mixing on a static
 * graph only: MACC_ESTATE otherwise). New neighbours start with fresh state; the caller reloads
 * per-neighbour state it keeps (macc_mixer_quarantine) and the row. -ENOMEM leaves m as it was.
 */
int macc_mixer_set_nnb(struct macc_mixer *m, size_t nnb);
/* Switch robust mixing on, off or to another rule (static plain graph only, MACC_ESTATE
 * otherwise; -ENOMEM leaves m as it was). The learned distances are kept. */
int macc_mixer_set_robust(struct macc_mixer *m, bool on, const struct macc_robust_cfg *rcfg);
size_t macc_mixer_nnb(const struct macc_mixer *m);
/* Neighbour i's quarantine state (robust mixing), caller-readable and -writable between steps. */
struct macc_quarantine *macc_mixer_quarantine(struct macc_mixer *m, size_t i);
const struct macc_mixer_outcome *macc_mixer_outcome(const struct macc_mixer *m, size_t i);

/* Round k starts: `partner` is the agent's partner under the schedule (MACC_NO_PARTNER when
 * idle, or for the static schedule). */
void macc_mixer_begin(struct macc_mixer *m, uint64_t round, uint32_t partner);
/* Whether this round's state goes to / is due from a neighbour with agent number idx joined by
 * an out- / in-edge: push-sum follows the edges, a schedule (uncompressed) only the partner,
 * otherwise every neighbour. */
bool macc_mixer_sends_to(const struct macc_mixer *m, uint32_t idx, bool out_edge);
bool macc_mixer_expects(const struct macc_mixer *m, uint32_t idx, bool in_edge);

/* Where gradients are taken, and what is evaluated, digested and checkpointed: x itself, or in
 * push-sum form the de-biased x (mixer-owned, n floats). */
const float *macc_mixer_model(const struct macc_mixer *m, const float *x);
/* The push-sum weight w (1 outside push-sum). */
double macc_mixer_pushsum_weight(const struct macc_mixer *m);
/* x (push-sum: the numerators) changed outside a step (a local step): refresh the de-biased x.
 * `mixer` is a struct macc_mixer *, typed void so that this is a macc_learner_point callback. */
void macc_mixer_moved(void *mixer, const float *x);
/* x was replaced outside a step by parameters that are not numerators (the daemon's rollback to
 * a checkpoint, which holds the de-biased x): push-sum restarts from them with weight 1, as
 * macc_mixer_init does for a restarted agent. Nothing else changes (CHOCO's public copies stay
 * what the neighbours hold; the next difference carries the change). */
void macc_mixer_restart(struct macc_mixer *m, const float *x);

/* What this agent sends in a round. Pointers are valid until the next outgoing or step. */
struct macc_mixer_out {
	const float *x;  /* x, dsgd's y, push-sum's numerators z (n floats) */
	const float *v;  /* dmsgd: v (numerators u); else NULL */
	bool has_weight; /* push-sum: */
	double weight;   /* ... its weight */
	enum macc_compress_kind enc; /* none: x and v travel as floats; else the blobs do */
	const uint8_t *x_blob, *v_blob; /* CHOCO: C(x - xhat), C(v - vhat) (v_blob NULL without v) */
	size_t x_len, v_len;
};
/*
 * Form this round's outgoing state from x, v and (dsgd) the gradient g at x. With compression
 * the differences are encoded and applied to the agent's own public copies: call it exactly once
 * per round. Errors (compression only: -ERANGE for a non-finite value, the model diverged):
 * the public copies are untouched.
 */
int macc_mixer_outgoing(struct macc_mixer *m, const struct macc_hparams *hp, const float *x,
			const float *v, const float *g, struct macc_mixer_out *ret,
			struct macc_errmsg *err);
/* The agent's own public copies as of its last outgoing state (CHOCO; NULL otherwise, v NULL
 * without momentum): the full resync state a neighbour whose copy is stale needs. */
const float *macc_mixer_public_x(const struct macc_mixer *m);
const float *macc_mixer_public_v(const struct macc_mixer *m);

/* One neighbour's round-k state as it arrived (everything read only during the step). */
struct macc_mixer_in {
	bool arrived;          /* false: not there (late, dead, dropped, not due) */
	const float *x, *v;    /* floats: x (y for dsgd, z for push-sum) and v for dmsgd; with
				* compression, when `full`, the sender's public copies */
	double weight;         /* push-sum: the sender's weight */
	bool full;             /* compression: a full resync state in x, v instead of blobs */
	const uint8_t *x_blob, *v_blob; /* compression: the differences (checked on arrival with
					 * macc_compress_check, or made by a macc_mixer_outgoing) */
	size_t x_len, v_len;
};

#define MACC_MIXER_MEASURE 1u /* step flag: fill report.dist */

struct macc_mixer_report {
	uint32_t missed;      /* due this round, not there or not usable: folded / left out */
	uint32_t count[MACC_ROBUST_NREASONS]; /* neighbours per outcome: OK = taken in (mixed;
					       * CHOCO: its difference reached our copy) */
	uint32_t clipped, quarantined;        /* robust */
	uint32_t resynced, sync_lost, out_of_sync; /* CHOCO */
	int rc;               /* robust mixing refused the agent's OWN state (MACC_ENONFINITE): it
			       * mixed with nobody this round */
	double dist;          /* MACC_MIXER_MEASURE: mean over the mixed neighbours of
			       * ||x_j - x_l||^2 before the step (NaN with none) */
};

/*
 * Round k -> k+1 of this agent, in place: x, v (v may be NULL for cdsgd and dsgd), g its
 * gradient at macc_mixer_model(x), in[0..nnb) what arrived. A neighbour that is due and
 * missing is folded into the agent's own weight (push-sum: its share; CHOCO: left out of the
 * round), robust mixing screens what arrived first. Never fails: the report says what happened
 * (per neighbour: macc_mixer_outcome).
 */
void macc_mixer_step(struct macc_mixer *m, const struct macc_hparams *hp, float *x, float *v,
		     const float *g, const struct macc_mixer_in *in, unsigned flags,
		     struct macc_mixer_report *ret);

#endif
