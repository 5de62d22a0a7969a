/*
 * batcher.c - reproducible mini-batches over one agent's shard.
 *
 * The order of an epoch is a pure function of the generator state at the start of the epoch:
 * order = the shard's indices, Fisher-Yates shuffled by a copy of epoch_rng. At the end of an
 * epoch the next epoch's generator is reseeded from two draws of the current one (splitmix64
 * inside macc_rng_seed decorrelates it), rather than continued from where the shuffle stopped,
 * so the state needed to resume is just (epoch_rng, epoch, pos) and a restored batcher
 * rebuilds the same order with one shuffle. Each epoch serves floor(shard_n / batch) full
 * batches; the tail is dropped (a different tail every epoch, since the order changes).
 *
 * The hot path copies one sample row per memcpy; rows are contiguous in the dataset block.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/data.h"

static void shuffle_epoch(struct macc_batcher *b)
{
	struct macc_rng r = b->epoch_rng;

	if (b->shard != NULL) {
		memcpy(b->order, b->shard, b->shard_n * sizeof(uint32_t));
	} else {
		for (size_t i = 0; i < b->shard_n; i++) {
			b->order[i] = (uint32_t)i;
		}
	}
	macc_rng_shuffle_u32(&r, b->order, b->shard_n);
}

int macc_batcher_init(struct macc_batcher *b, const struct macc_dataset *data,
		      const uint32_t *shard, size_t shard_n, size_t batch, uint64_t seed,
		      uint64_t stream)
{
	if (b == NULL || data == NULL || batch == 0) {
		return -EINVAL;
	}
	memset(b, 0, sizeof(*b));
	if (shard == NULL) {
		shard_n = data->n;
	}
	if (shard_n > UINT32_MAX) {
		return MACC_EDATA;
	}
	for (size_t i = 0; shard != NULL && i < shard_n; i++) {
		if (shard[i] >= data->n) {
			return MACC_EDATA;
		}
	}
	if (shard_n < batch) {
		return MACC_ECONFIG;
	}
	b->order = malloc(shard_n * sizeof(uint32_t));
	if (b->order == NULL) {
		return -ENOMEM;
	}
	b->data = data;
	b->shard = shard;
	b->shard_n = shard_n;
	b->batch = batch;
	macc_rng_seed(&b->epoch_rng, seed, stream);
	b->epoch = 0;
	b->pos = 0;
	shuffle_epoch(b);
	return 0;
}

void macc_batcher_finish(struct macc_batcher *b)
{
	if (b == NULL) {
		return;
	}
	free(b->order);
	memset(b, 0, sizeof(*b));
}

size_t macc_batcher_batches_per_epoch(const struct macc_batcher *b)
{
	return b->batch > 0 ? b->shard_n / b->batch : 0;
}

void macc_batcher_next_t(struct macc_batcher *b, float *x, int32_t *y, float *t)
{
	const struct macc_dataset *d = b->data;
	const uint32_t *ord = b->order + b->pos * b->batch;
	size_t row = d->dim * sizeof(float);

	for (size_t i = 0; i < b->batch; i++) {
		uint32_t s = ord[i];

		memcpy(x + i * d->dim, d->x + (size_t)s * d->dim, row);
		if (y != NULL && d->y != NULL) {
			y[i] = d->y[s];
		}
		if (t != NULL && d->t != NULL) {
			memcpy(t + i * d->ntargets, d->t + (size_t)s * d->ntargets,
			       d->ntargets * sizeof(float));
		}
	}
	if (++b->pos == macc_batcher_batches_per_epoch(b)) {
		uint64_t a = macc_rng_next(&b->epoch_rng);
		uint64_t c = macc_rng_next(&b->epoch_rng);

		macc_rng_seed(&b->epoch_rng, a, c);
		b->epoch++;
		b->pos = 0;
		shuffle_epoch(b);
	}
}

void macc_batcher_next(struct macc_batcher *b, float *x, int32_t *y)
{
	macc_batcher_next_t(b, x, y, NULL);
}

void macc_batcher_get_state(const struct macc_batcher *b, struct macc_batcher_state *ret)
{
	ret->epoch_rng = b->epoch_rng;
	ret->epoch = b->epoch;
	ret->pos = b->pos;
}

int macc_batcher_set_state(struct macc_batcher *b, const struct macc_batcher_state *s)
{
	if (s->pos >= macc_batcher_batches_per_epoch(b)) {
		return MACC_ESTATE;
	}
	b->epoch_rng = s->epoch_rng;
	b->epoch = s->epoch;
	b->pos = (size_t)s->pos;
	shuffle_epoch(b);
	return 0;
}
