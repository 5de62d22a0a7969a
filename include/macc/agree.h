/*
 * agree.h - feature standardisation agreed by the agents before training, without sharing data.
 *
 * Features of tabular data have unrelated scales (a column around 20 beside columns around
 * 0.01), and a model trains badly on them as written. The cure is to standardise each feature
 * with the mean and standard deviation of the WHOLE training set, which no agent holds. Agents
 * can agree on them anyway, exchanging only a summary of their shard and never a row:
 *
 *   1. average phase, S steps. Agent j starts from s_j = [count, sum[d], sumsq[d]] of its shard
 *      (macc_feature_stats_compute, data.h) and, each step, replaces it by the mix of its own
 *      and its neighbours' vectors with the weights of a training round: the configured row of
 *      W (Metropolis by default; push-sum: the row of P), a neighbour whose vector did not
 *      arrive folded into the agent's own weight (macc_fold_missing), summed in double, self
 *      first, then neighbours in ascending agent index. sum/count and sumsq/count are ratios,
 *      so they do not care that a fold or a column-stochastic P changes the scale of s: every
 *      agent's vector stays a positive combination of the shards' vectors, i.e. the statistics
 *      of the union of all shards with each shard reweighted. With W doubly stochastic those
 *      weights tend to equal (rate |lambda_2(W)| per step).
 *   2. each agent turns its vector into a float32 transform (mean, inv_std) by the rule of
 *      macc_standardizer_from_stats (data.h). After finitely many steps the agents' vectors
 *      still differ in their last bits, so these transforms differ slightly.
 *   3. exact phase, D steps: each agent replaces each of its 2d float32 values by the least of
 *      its own and its neighbours' (a total order on the bit patterns, so -0 < +0 and the order
 *      of arrival does not matter). After D >= the graph's diameter steps with every message
 *      delivered, every agent holds the least value of the fleet: the transforms are identical
 *      bit for bit, and each value is one of the agents' own estimates (so within the error
 *      bound of the average phase).
 * The result is set on the model (macc_model_set_standardizer, nn.h): it is part of the model,
 * applied to every input, carried by every checkpoint and export.
 *
 * Error of the average phase (macc-algorithms(7), STANDARDISATION): with W doubly stochastic,
 * lambda = |lambda_2(W)| = 1 - spectral gap and no message missing, after S steps agent j's
 * statistics are those of the union of all N shards with shard i's samples weighted by N c_ji,
 * |N c_ji - 1| <= eps = N lambda^S. Hence, per feature, with mu_i / q_i the mean / mean square of
 * shard i and mu / q the global ones, for eps < 1:
 *     |mean_j - mu| <= 2 eps / (1 - eps) * max_i |mu_i - mu|
 *     |msq_j  - q | <= 2 eps / (1 - eps) * max_i |q_i - q|
 * and the exact phase picks one agent's value per entry, rounded to float32. iid shards have
 * mu_i ~ mu, so even a loose eps costs little; shards split by label need eps well below 1.
 *
 * Screening (a neighbour may lie, macc.conf(5) THREAT MODEL): every received vector is checked
 * before it is used, and a vector that fails is treated like a missing one (folded in the
 * average phase, left out of the exact one) and counted by reason:
 *   average phase  finite; 0 <= count <= MACC_AGREE_MAX_COUNT (count 0 only with all sums 0);
 *                  |sum/count| <= FLT_MAX; 0 <= sumsq/count <= FLT_MAX^2; and a variance that
 *                  is not negative: sum^2 <= count * sumsq * (1 + 1e-9) per feature (Cauchy-
 *                  Schwarz holds for every positive combination of honest shards);
 *   exact phase    every value a finite float32; inv_std in (0, MACC_AGREE_MAX_INV_STD]; and,
 *                  against the agent's own estimate at the end of the average phase (mean_0,
 *                  inv_0): |mean - mean_0| * inv_0 <= MACC_AGREE_TOL_MEAN and inv_std within a
 *                  factor MACC_AGREE_TOL_SCALE of inv_0.
 * What a liar can still do: in the average phase it can claim up to MACC_AGREE_MAX_COUNT samples
 * and any statistics within the bounds, which outweighs every honest shard, so it can move the
 * transform of every agent it reaches to almost anything; in the exact phase it can pull each
 * value of its neighbours down, within the tolerances above; and by telling different neighbours
 * different things it can leave agents with different transforms. It cannot make a transform
 * non-finite or zero-scale, stall the phase (it has a fixed number of steps) or touch any other
 * state: the damage is a badly scaled input, i.e. slower or worse training.
 *
 * Messages (proto.h STATS): step t < S carries s (1 + 2d values), S <= t < S + D the transform
 * [mean[d], inv_std[d]] (2d float32 values carried as doubles), and step S + D the agreed
 * transform, for a neighbour that joins after the agreement (macc_agree_adopt).
 *
 * Like mixer.h: one agent's state; no sockets, threads, files or logging; every operation in a
 * fixed order, so macc-sim and macc-agentd compute the same bits; nothing is allocated after
 * macc_agree_init.
 */
#ifndef MACC_AGREE_H
#define MACC_AGREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"

/* Screening bounds (see above). */
#define MACC_AGREE_MAX_COUNT 1099511627776.0 /* 2^40 samples */
#define MACC_AGREE_MAX_INV_STD 1e6           /* the zero-variance rule's limit (data.h) */
#define MACC_AGREE_TOL_MEAN 4.0              /* exact phase: own standard deviations */
#define MACC_AGREE_TOL_SCALE 4.0             /* exact phase: factor on the own inv_std */
#define MACC_AGREE_MAX_STEPS 100000u         /* S + D at most */

/* Why a neighbour's vector was or was not used in a step. */
enum macc_agree_reason {
	MACC_AGREE_OK = 0,        /* used */
	MACC_AGREE_MISSING = 1,   /* due, not there: folded (average) or left out (exact) */
	MACC_AGREE_MALFORMED = 2, /* not as many values as the step carries, or not float32 */
	MACC_AGREE_NONFINITE = 3, /* NaN or infinity */
	MACC_AGREE_RANGE = 4,     /* outside the bounds, or a negative variance */
	MACC_AGREE_FAR = 5,       /* exact phase: too far from the agent's own estimate */
	MACC_AGREE_NREASONS = 6,
};
/* "ok", "missing", "malformed", "nonfinite", "range", "far" (metrics labels); never NULL. */
const char *macc_agree_reason_name(enum macc_agree_reason r);

struct macc_agree_cfg {
	size_t dim;           /* features d (the model's input size), >= 1 */
	uint32_t avg_steps;   /* S */
	uint32_t exact_steps; /* D: at least the graph's diameter (0 only for one agent) */
	size_t nnb;           /* configured neighbours, ascending agent index */
};

/* The default of `standardize = auto` (macc.conf(5)) and macc-sim --standardize auto: on for
 * CSV data ("csv:..."), whose columns have unrelated scales; off for images (IDX, CIFAR), whose
 * pixels are already scaled to [0, 1] on one scale, and where scaling each pixel by its own
 * deviation would blow up the noise of nearly constant border pixels. */
bool macc_agree_default_on(const char *data_spec);

/* Values a message of `step` carries: 1 + 2d below S, 2d from S to S + D, 0 beyond. */
size_t macc_agree_nvalues(const struct macc_agree_cfg *c, uint64_t step);

/* One neighbour's vector for the step as it arrived (read only during macc_agree_step). */
struct macc_agree_in {
	bool arrived;    /* false: not there (late, dropped, down, not due) */
	const double *v; /* n values (doubles, aligned; copy wire bytes in first) */
	size_t n;
};

/* What one step did. */
struct macc_agree_report {
	uint32_t count[MACC_AGREE_NREASONS]; /* due neighbours per outcome */
	uint32_t lowered;                    /* exact phase: own values a neighbour lowered */
};

/* Private fields; one agent, one thread at a time. */
struct macc_agree {
	struct macc_agree_cfg cfg;
	size_t len;          /* 1 + 2d */
	uint64_t step;       /* steps done: 0 .. S + D */
	double self_w;       /* the configured row */
	double *w;           /* [nnb] (0: not due, e.g. an out-only push-sum neighbour) */
	double *wout;        /* [nnb] this step's, after folding */
	bool *ok;            /* [nnb] */
	const double **nbv;  /* [nnb] */
	uint8_t *reasons;    /* [nnb] this step's outcome per neighbour */
	double *s;           /* [len] statistics (average phase) */
	double *out;         /* [len] this step's outgoing values */
	float *cur;          /* [2d] the transform: mean[d], inv_std[d] (exact phase, result) */
	float *ref;          /* [2d] own estimate at the end of the average phase */
	bool adopted;        /* the result came from macc_agree_adopt */
	uint64_t totals[MACC_AGREE_NREASONS]; /* over all steps */
};

/*
 * Start one agent's agreement from the statistics of its shard (`stats`: 1 + 2d doubles, copied;
 * macc_feature_stats_compute). With S = 0 the own estimate is made at once. The row is all zero
 * until macc_agree_set_row. Errors: MACC_ECONFIG (dim 0 or above MACC_DATA_MAX_DIM, S + D above
 * MACC_AGREE_MAX_STEPS), MACC_EDATA (the own statistics fail the screening: err says which),
 * -ENOMEM. On error *a is zeroed.
 */
int macc_agree_init(struct macc_agree *a, const struct macc_agree_cfg *c, const double *stats,
		    struct macc_errmsg *err);
void macc_agree_finish(struct macc_agree *a); /* zeroed ok */

/* The configured row: self_w and w[0..nnb) in ascending agent index, as macc_mixer_set_row
 * (push-sum: the row of P, 0 for out-only neighbours). A neighbour with w[i] == 0 is not due:
 * what it sends is never used. */
void macc_agree_set_row(struct macc_agree *a, double self_w, const double *w);

/* Steps done (the step the next macc_agree_outgoing is for), and whether all S + D are done. */
uint64_t macc_agree_step_no(const struct macc_agree *a);
bool macc_agree_done(const struct macc_agree *a);

/* This step's values (macc_agree_nvalues of it; after the last step, the agreed transform for a
 * neighbour that joins late). They are copied into agent-owned storage that the step does not
 * touch, so every agent can form its message before any agent steps (the simulator does). Valid
 * until the next outgoing. */
size_t macc_agree_outgoing(struct macc_agree *a, const double **ret_values);

/*
 * Screening of a neighbour's vector for `step` (see the top of this file); the exact phase
 * compares with the agent's own estimate, so it is only meaningful from step S on. 0 (OK) or a
 * reason, with err (may be NULL) naming the value that failed.
 */
enum macc_agree_reason macc_agree_check(const struct macc_agree *a, uint64_t step,
					const double *v, size_t n, struct macc_errmsg *err);

/*
 * One step, macc_agree_step_no -> + 1: in[0..nnb) what arrived from each neighbour for this
 * step (every vector is screened again here; only due neighbours count). Average phase: fold,
 * then s = self_w s + sum_i w_i s_i in double; when the phase ends, the own estimate. Exact
 * phase: the least values. ret may be NULL. Does nothing once done.
 */
void macc_agree_step(struct macc_agree *a, const struct macc_agree_in *in,
		     struct macc_agree_report *ret);

/* The agreed transform into mean[d] and inv_std[d] once done (MACC_ESTATE before). */
int macc_agree_result(const struct macc_agree *a, float *mean, float *inv_std);

/*
 * A late joiner: take a neighbour's agreed transform (the values of its step S + D message)
 * instead of agreeing. Checks the shape and bounds (no comparison with the own estimate: a
 * joiner's own shard may be far from the fleet's); then the agreement is done. 0, or
 * MACC_EMALFORMED / MACC_ENONFINITE / MACC_ECONFIG (out of bounds) with err; nothing changes on
 * error.
 */
int macc_agree_adopt(struct macc_agree *a, const double *v, size_t n, struct macc_errmsg *err);

/* The statistics now (1 + 2d doubles; the average phase's result once it ended). */
const double *macc_agree_stats(const struct macc_agree *a);
/* Per reason, over every step so far (count[MACC_AGREE_NREASONS]). */
void macc_agree_counts(const struct macc_agree *a, uint64_t *count);
/* Neighbour i's outcome in the last step. */
enum macc_agree_reason macc_agree_outcome(const struct macc_agree *a, size_t i);

/* ---- leaves, exposed for tests --------------------------------------------------------- */

/* s[k] <- self_w s[k] + sum_i w[i] nb[i][k], in double, self first then i ascending; an entry
 * with w[i] == 0 is skipped (nb[i] may then be NULL). nb[i] must not alias s. */
void macc_agree_mix(size_t len, double *s, double self_w, const double *w,
		    const double *const *nb, size_t nnb);
/* v[k] <- the least of v[k] and (float)nb[i][k] over the non-NULL nb[i], in the total order of
 * the bit patterns (-0 < +0). Returns how many entries of v were lowered. Values must be
 * finite float32 (macc_agree_check). */
size_t macc_agree_min(size_t n, float *v, const double *const *nb, size_t nnb);

/*
 * The diameter of a graph given as an n x n adjacency (adj[a * n + b] != 0: a sends to b;
 * symmetric for an undirected graph, struct macc_graph; struct macc_digraph as it is): the
 * longest shortest path, along the direction of the edges. MACC_EGRAPH when some agent cannot
 * reach another; -ENOMEM. O(n (n + E)).
 */
int macc_agree_diameter(const uint8_t *adj, uint32_t n, uint32_t *ret);

#endif
