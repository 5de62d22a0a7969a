/*
 * learner.h - one agent's local learning: its model object, its shard of the training set, the
 * batcher and the dropout rng, the local steps of a round, the loss it saw, and the ONE rule for
 * how long an epoch is and what the learning rate is in a round. macc-sim (one learner per
 * agent) and macc-agentd (one) both use it, so their rounds, epochs and rates cannot drift.
 *
 * The epoch rule: an epoch is the number of rounds in which every agent passes once over its
 * shard. A round consumes H mini-batches (H - 1 local steps, then the round's gradient), so
 *     rounds per epoch = floor(floor(smallest shard / batch) / H)
 * over the shards of ALL agents (the smallest bounds everyone; macc_learner_epoch_rule). The
 * learning rate of round r is the schedule at epoch r / rounds-per-epoch of a run of
 * total / rounds-per-epoch epochs (macc_lr_at). Each batcher still reshuffles at the end of its
 * own shard, independently of these epochs.
 *
 * A learner holds no parameters: x, v and g are the caller's flat blocks (nn.h), and the
 * gradient is taken where the caller's struct macc_learner_point says (x itself, or for push-sum
 * the de-biased x that the mixer keeps, mixer.h). One thread at a time.
 */
#ifndef MACC_LEARNER_H
#define MACC_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/data.h"
#include "macc/err.h"
#include "macc/nn.h"
#include "macc/rng.h"

struct macc_learner_opts {
	const char *model;                 /* spec (macc_model_create) */
	uint32_t batch;
	const struct macc_dataset *train;  /* borrowed for the learner's life */
	const struct macc_partition *part; /* borrowed; NULL: all of train is this agent's */
	uint32_t agent;                    /* its shard (with part) and its rng streams */
	uint64_t seed;
	float weight_decay;
	float beta;                        /* local steps: heavy-ball momentum ... */
	bool nesterov;                     /* ... and its look-ahead form (macc_sgd_step) */
	uint32_t local_steps;              /* H >= 1 (0 is taken as 1) */
	const char *lr_schedule;           /* macc_lr_parse; NULL: const */
	float lr;
	uint32_t epochs;                   /* run length: epochs, unless rounds > 0 */
	uint64_t rounds;
	uint64_t epoch_rounds;             /* 0: the epoch rule; else this many rounds */
};

/* Where the gradient is taken: `at` (x itself, or a view of it refreshed by `moved` after every
 * local step changed x; moved may be NULL when at is x). */
struct macc_learner_point {
	const float *at;
	void (*moved)(void *ctx, const float *x);
	void *ctx;
};

/* Private fields. */
struct macc_learner {
	struct macc_model *model;
	struct macc_batcher batcher;
	bool batcher_ready;
	struct macc_rng dropout_rng;
	float *bx;       /* [batch][dim] */
	int32_t *by;     /* [batch] */
	float *bt;       /* [batch][targets]: regression models (loss:mse) only, else NULL */
	uint32_t batch, H;
	float weight_decay, beta;
	bool nesterov;
	size_t shard_n;
	struct macc_lr_schedule lr;
	uint64_t epoch_rounds, total_rounds;
	double loss_sum; /* since the last macc_learner_take_loss */
	uint64_t batches;
};

/*
 * The epoch rule above from the shards (part, or one shard of n samples when part is NULL):
 * *ret = rounds per epoch. MACC_ECONFIG when the smallest shard holds no full batch, or fewer
 * than H of them (err names the shard, its size, the batch and H).
 */
int macc_learner_epoch_rule(const struct macc_partition *part, size_t n, uint32_t batch,
			    uint32_t local_steps, uint64_t *ret, struct macc_errmsg *err);

/*
 * Model (MACC_ESPEC for a bad spec), shard (MACC_ECONFIG when smaller than one batch), batcher
 * (seed, stream MACC_STREAM_BATCH + agent), dropout rng (MACC_STREAM_DROPOUT + agent), lr
 * schedule, and the run's length by the epoch rule. On error *l is zeroed.
 */
int macc_learner_init(struct macc_learner *l, const struct macc_learner_opts *o,
		      struct macc_errmsg *err);
void macc_learner_finish(struct macc_learner *l); /* zeroed ok */

struct macc_model *macc_learner_model(const struct macc_learner *l);
size_t macc_learner_shard_n(const struct macc_learner *l);
uint64_t macc_learner_epoch_rounds(const struct macc_learner *l);
uint64_t macc_learner_total_rounds(const struct macc_learner *l);
/* Round r in epochs (r / rounds per epoch). */
double macc_learner_epoch(const struct macc_learner *l, uint64_t round);
/* The learning rate of round r. */
float macc_learner_lr(const struct macc_learner *l, uint64_t round);
/* Training samples a round consumes (batch * H). */
uint64_t macc_learner_samples_per_round(const struct macc_learner *l);

/*
 * A round's local work: H - 1 heavy-ball steps on x, v (macc_sgd_step at rate alpha, each on a
 * fresh mini-batch with the gradient at pt->at, pt->moved after each), then the round's gradient
 * into g at pt->at on one more mini-batch. Returns the mean loss of its H batches (also
 * accumulated for macc_learner_take_loss).
 */
float macc_learner_round(struct macc_learner *l, float alpha, float *x, float *v, float *g,
			 const struct macc_learner_point *pt);
/* The summed batch losses and the number of batches since the last call, then resets. */
void macc_learner_take_loss(struct macc_learner *l, double *ret_sum, uint64_t *ret_batches);

/* Checkpoints: the batcher's position and the dropout rng. set: MACC_ESTATE when the batcher
 * state does not fit the shard (nothing changed then). */
void macc_learner_get_state(const struct macc_learner *l, struct macc_batcher_state *ret_batcher,
			    struct macc_rng *ret_rng);
int macc_learner_set_state(struct macc_learner *l, const struct macc_batcher_state *batcher,
			   const struct macc_rng *rng);

#endif
