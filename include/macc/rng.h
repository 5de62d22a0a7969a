/*
 * rng.h - the one deterministic random number generator used everywhere in macc.
 *
 * xoshiro256** seeded through splitmix64. Everything random in training (initialisation,
 * shuffling, partitioning, random graphs, simulated drops) draws from a struct macc_rng whose
 * seed is derived from the run seed and a purpose, so results are reproducible bit for bit and
 * independent of thread count. The state is four words, so checkpoints store it verbatim.
 */
#ifndef MACC_RNG_H
#define MACC_RNG_H

#include <stddef.h>
#include <stdint.h>

struct macc_rng {
	uint64_t s[4];
};

/* Seed from (seed, stream): different streams give independent sequences for the same seed,
 * e.g. macc_rng_seed(&r, seed, MACC_STREAM_BATCH + agent_index). */
void macc_rng_seed(struct macc_rng *r, uint64_t seed, uint64_t stream);

uint64_t macc_rng_next(struct macc_rng *r);

/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t macc_rng_below(struct macc_rng *r, uint64_t n);

/* Uniform double in [0, 1) (53 random bits). */
double macc_rng_uniform(struct macc_rng *r);

/* Standard normal (Box-Muller, one value per call: deterministic given the state). */
double macc_rng_normal(struct macc_rng *r);

/* Gamma(shape, 1) for shape > 0 (Marsaglia-Tsang), used for Dirichlet partitions. */
double macc_rng_gamma(struct macc_rng *r, double shape);

/* Fisher-Yates shuffle of an index array. */
void macc_rng_shuffle_u32(struct macc_rng *r, uint32_t *a, size_t n);

/* Stream identifiers, so distinct purposes never share a sequence. */
enum {
	MACC_STREAM_INIT = 1,         /* model initialisation (same on every agent) */
	MACC_STREAM_PARTITION = 2,    /* dataset partitioning (same on every agent) */
	MACC_STREAM_GRAPH = 3,        /* random topologies, schedules */
	MACC_STREAM_DROP = 4,         /* simulated message drops */
	MACC_STREAM_SCHEDULE = 5,     /* per-round graphs of time-varying schedules */
	MACC_STREAM_STATS_DROP = 6,   /* simulated drops in the standardisation agreement */
	MACC_STREAM_BATCH = 1000,     /* + agent index: per-agent mini-batch order */
	MACC_STREAM_DROPOUT = 100000, /* + agent index: dropout masks */
	MACC_STREAM_ATTACK = 200000,  /* + agent index: macc-sim --byzantine noise / nan draws */
};

#endif
