/*
 * learner.c - one agent's local learning (learner.h): a thin owner of a model object, a
 * batcher over the agent's shard and its dropout rng, which runs the local part of a round and
 * holds the one epoch rule and learning-rate rule of macc-sim and macc-agentd.
 *
 * Kept thin on purpose: the model is used through macc_model_create / _train_batch /
 * _input_dim only, the data through the batcher, so that changes to the model API stay in
 * model.c. Everything is seeded from (seed, agent): two learners built with the same options
 * produce the same batches, dropout masks and gradients, whichever program builds them.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "macc/learner.h"

int macc_learner_epoch_rule(const struct macc_partition *part, size_t n, uint32_t batch,
			    uint32_t local_steps, uint64_t *ret, struct macc_errmsg *err)
{
	uint32_t h = local_steps ? local_steps : 1, smallest = 0;
	size_t min_n = n;
	uint64_t batches;

	for (uint32_t a = 0; part != NULL && a < part->nagents; a++) {
		size_t sn = part->offsets[a + 1] - part->offsets[a];

		if (a == 0 || sn < min_n) {
			min_n = sn;
			smallest = a;
		}
	}
	batches = batch ? min_n / batch : 0;
	if (batches == 0) {
		return macc_errf(err, MACC_ECONFIG, "shard %u has %zu samples, fewer than one batch "
				 "of %u", smallest, min_n, batch);
	}
	if (batches < h) {
		return macc_errf(err, MACC_ECONFIG, "local steps %u are more than the %" PRIu64
				 " batches of the smallest shard (shard %u, %zu samples, batch %u): "
				 "an epoch would have no round", h, batches, smallest, min_n, batch);
	}
	*ret = batches / h;
	return 0;
}

/* Model, shard and batcher, rng and batch buffers. */
static int setup_data(struct macc_learner *l, const struct macc_learner_opts *o,
		      struct macc_errmsg *err)
{
	const uint32_t *shard = NULL;
	size_t shard_n = o->train->n, dim;
	int rc;

	rc = macc_model_create(o->model, o->batch, &l->model, err);
	if (rc < 0) {
		return rc;
	}
	if (o->part != NULL) {
		shard = o->part->indices + o->part->offsets[o->agent];
		shard_n = o->part->offsets[o->agent + 1] - o->part->offsets[o->agent];
	}
	if (shard_n < o->batch) {
		return macc_errf(err, MACC_ECONFIG, "shard %u has %zu samples, fewer than one batch "
				 "of %u", o->agent, shard_n, o->batch);
	}
	rc = macc_batcher_init(&l->batcher, o->train, shard, shard_n, o->batch, o->seed,
			       MACC_STREAM_BATCH + (uint64_t)o->agent);
	if (rc < 0) {
		return macc_errf(err, rc, "shard %u: cannot set up the batcher", o->agent);
	}
	l->batcher_ready = true;
	l->shard_n = shard_n;
	macc_rng_seed(&l->dropout_rng, o->seed, MACC_STREAM_DROPOUT + (uint64_t)o->agent);
	dim = macc_model_input_dim(l->model);
	l->bx = calloc((size_t)o->batch * dim, sizeof(float));
	l->by = calloc(o->batch, sizeof(int32_t));
	if (macc_model_loss(l->model) == MACC_LOSS_MSE) {
		l->bt = calloc((size_t)o->batch * macc_model_nclasses(l->model), sizeof(float));
	}
	if (l->bx == NULL || l->by == NULL ||
	    (macc_model_loss(l->model) == MACC_LOSS_MSE && l->bt == NULL)) {
		return macc_errf(err, -ENOMEM, "out of memory for a batch of %u", o->batch);
	}
	return 0;
}

int macc_learner_init(struct macc_learner *l, const struct macc_learner_opts *o,
		      struct macc_errmsg *err)
{
	int rc;

	memset(l, 0, sizeof(*l));
	if (o->part != NULL && o->agent >= o->part->nagents) {
		return macc_errf(err, -EINVAL, "agent %u of a partition of %u", o->agent,
				 o->part->nagents);
	}
	l->batch = o->batch;
	l->H = o->local_steps ? o->local_steps : 1;
	l->weight_decay = o->weight_decay;
	l->beta = o->beta;
	l->nesterov = o->nesterov;
	rc = macc_lr_parse(o->lr_schedule != NULL ? o->lr_schedule : "const", o->lr, &l->lr, err);
	if (rc == 0) {
		rc = setup_data(l, o, err);
	}
	if (rc == 0 && o->epoch_rounds > 0) {
		l->epoch_rounds = o->epoch_rounds;
	} else if (rc == 0) {
		rc = macc_learner_epoch_rule(o->part, o->train->n, o->batch, l->H, &l->epoch_rounds,
					     err);
	}
	if (rc < 0) {
		macc_learner_finish(l);
		return rc;
	}
	l->total_rounds = o->rounds ? o->rounds : (uint64_t)o->epochs * l->epoch_rounds;
	return 0;
}

void macc_learner_finish(struct macc_learner *l)
{
	if (l == NULL) {
		return;
	}
	macc_model_destroy(l->model);
	if (l->batcher_ready) {
		macc_batcher_finish(&l->batcher);
	}
	free(l->bx);
	free(l->by);
	free(l->bt);
	memset(l, 0, sizeof(*l));
}

struct macc_model *macc_learner_model(const struct macc_learner *l)
{
	return l->model;
}

size_t macc_learner_shard_n(const struct macc_learner *l)
{
	return l->shard_n;
}

uint64_t macc_learner_epoch_rounds(const struct macc_learner *l)
{
	return l->epoch_rounds;
}

uint64_t macc_learner_total_rounds(const struct macc_learner *l)
{
	return l->total_rounds;
}

double macc_learner_epoch(const struct macc_learner *l, uint64_t round)
{
	return (double)round / (double)l->epoch_rounds;
}

float macc_learner_lr(const struct macc_learner *l, uint64_t round)
{
	return macc_lr_at(&l->lr, macc_learner_epoch(l, round),
			  macc_learner_epoch(l, l->total_rounds));
}

uint64_t macc_learner_samples_per_round(const struct macc_learner *l)
{
	return (uint64_t)l->batch * l->H;
}

/* One mini-batch: the gradient at `at` into g; returns the batch's mean loss. */
static float batch_grad(struct macc_learner *l, const float *at, float *g)
{
	float loss;

	macc_batcher_next_t(&l->batcher, l->bx, l->by, l->bt);
	loss = macc_model_train_batch_t(l->model, at, g, l->bx, l->by, l->bt, l->batch,
					l->weight_decay, &l->dropout_rng);
	l->loss_sum += loss;
	l->batches++;
	return loss;
}

float macc_learner_round(struct macc_learner *l, float alpha, float *x, float *v, float *g,
			 const struct macc_learner_point *pt)
{
	size_t n = macc_model_nparams(l->model);
	double loss = 0.0;

	for (uint32_t h = 1; h < l->H; h++) {
		loss += batch_grad(l, pt->at, g);
		macc_sgd_step(n, x, v, g, alpha, l->beta, l->nesterov);
		if (pt->moved != NULL) {
			pt->moved(pt->ctx, x);
		}
	}
	loss += batch_grad(l, pt->at, g);
	return (float)(loss / (double)l->H);
}

void macc_learner_take_loss(struct macc_learner *l, double *ret_sum, uint64_t *ret_batches)
{
	*ret_sum = l->loss_sum;
	*ret_batches = l->batches;
	l->loss_sum = 0.0;
	l->batches = 0;
}

void macc_learner_get_state(const struct macc_learner *l, struct macc_batcher_state *ret_batcher,
			    struct macc_rng *ret_rng)
{
	macc_batcher_get_state(&l->batcher, ret_batcher);
	*ret_rng = l->dropout_rng;
}

int macc_learner_set_state(struct macc_learner *l, const struct macc_batcher_state *batcher,
			   const struct macc_rng *rng)
{
	int rc = macc_batcher_set_state(&l->batcher, batcher);

	if (rc < 0) {
		return rc;
	}
	l->dropout_rng = *rng;
	return 0;
}
