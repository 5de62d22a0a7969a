/*
 * sim.h - the engine of macc-sim: N agents in one process, synchronous rounds.
 *
 * main.c parses the command line into a struct sim_opts, creates a struct sim, and drives it
 * epoch by epoch (sim_train(), then sim_evaluate()), printing progress and writing the CSV. The
 * engine owns the datasets, the partition, the graph and weights, every agent's learner and
 * mixer (macc/learner.h, macc/mixer.h: the round that macc-agentd runs too) and buffers, and a
 * small pool of worker threads; it allocates everything up front, so a round allocates nothing.
 *
 * Determinism: every random choice comes from macc_rng streams derived from the run seed, every
 * agent's computation is done by one thread with OpenBLAS at one thread, and every reduction over
 * agents (mean loss, gradient average, average model, consensus distance, message drops) is done
 * in agent order. The parameters after R rounds are therefore bit-identical whatever --threads.
 */
#ifndef MACC_SIM_H
#define MACC_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"
#include "macc/nn.h"

struct sim_opts {
	uint32_t agents;
	const char *topology;    /* graph spec (macc_graph_create) */
	const char *weights;     /* "metropolis" | "uniform" */
	const char *algorithm;   /* macc_algo_parse */
	const char *partition;   /* macc_partition_make scheme */
	const char *model;       /* model spec */
	const char *data;        /* dataset spec */
	const char *lr_schedule; /* macc_lr_parse */
	uint32_t epochs;
	uint64_t rounds;       /* total rounds; 0: epochs * epoch_rounds */
	uint64_t epoch_rounds; /* rounds per epoch; 0: the learner's rule (learner.h) */
	uint32_t batch;
	float lr, momentum, omega, weight_decay;
	bool nesterov;
	double drop_prob;
	uint64_t seed;
	uint32_t threads;
	size_t eval_samples; /* 0: whole test set */
	/* time-varying graphs, push-sum and compression (macc-algorithms(7), second part) */
	const char *schedule;  /* "static" (NULL too), "matching", "exp-pairs" */
	uint32_t local_steps;  /* H >= 1 (0 is taken as 1) */
	const char *compress;  /* macc_compress_parse spec; NULL or "none": uncompressed */
	float gossip_step;     /* CHOCO gamma in (0, 1]; 0: the compressor's default */
	/* robust mixing and attacks */
	const char *aggregation; /* macc_agg_parse spec; NULL or "mean": the plain path */
	double screen_factor;    /* distance bound factor; < 0: default (0 for mean, 10 else) */
	const char *byzantine;   /* "K:ATTACK" (macc_byzantine_parse); NULL: none */
	/* feature standardisation agreed before round 0 (macc/agree.h) */
	int standardize;             /* -1 auto (on for csv: data), 0 off, 1 on */
	uint32_t standardize_rounds; /* S, average-consensus steps */
};

struct sim;

/* Per-agent and average-model evaluation results. */
/* For a regression model (loss:mse) every acc_ figure is the test RMSE instead (lower is
 * better; min and max are still the smallest and largest). */
struct sim_eval {
	double acc_avg;    /* test accuracy of the average model (the model itself for N = 1) */
	double consensus;  /* mean over agents of ||x_j - x_bar||^2 */
	bool per_agent;    /* whether the next three are filled */
	double acc_mean, acc_min, acc_max;
	bool honest;       /* --byzantine with K > 0 and per_agent: the next two are filled */
	double acc_honest;     /* test accuracy of the average of the honest agents' models */
	double acc_honest_min; /* worst honest agent */
};

/* Load data, build the graph, weights, models and threads. Usage errors (bad specs, graph
 * impossible for N) return MACC_ESPEC / MACC_EGRAPH / MACC_ECONFIG, others as they come; err names
 * what was wrong. */
int sim_create(const struct sim_opts *o, struct sim **ret, struct macc_errmsg *err);
void sim_destroy(struct sim *s); /* NULL ok */

/* Whether the model is a regression model (the acc_ figures are RMSE). */
bool sim_regression(const struct sim *s);
/* Which data the "test" figures are measured on (the test split's origin, for output). */
const char *sim_test_origin(const struct sim *s);
uint64_t sim_epoch_rounds(const struct sim *s);
uint64_t sim_total_rounds(const struct sim *s);
uint64_t sim_round(const struct sim *s); /* rounds done */
size_t sim_nparams(const struct sim *s);
const char *sim_algo_name(const struct sim *s); /* "sgd" for a single agent */
bool sim_single(const struct sim *s);
/* Spectral gap of W; false when there is none (single agent, centralized). */
bool sim_spectral_gap(const struct sim *s, double *ret_gap);
uint64_t sim_samples_per_round(const struct sim *s);
/* Messages dropped by --drop-prob so far, out of the directed messages drawn for. */
void sim_drop_counts(const struct sim *s, uint64_t *ret_dropped, uint64_t *ret_messages);

/* Run `rounds` rounds. Returns the mean training loss over agents and those rounds (and over
 * the local steps of each round). On a runtime failure (a compressor refusing a non-finite value
 * after divergence) it stops early: check sim_failed() after every call. */
double sim_train(struct sim *s, uint64_t rounds);
/* Whether training stopped on an error; err (may be NULL) receives its message. */
bool sim_failed(const struct sim *s, struct macc_errmsg *err);

/*
 * Traffic so far (wiresize.h: what macc-agentd would put on the wire for the same run, STATE
 * frames with framing, header and signature; the handshake and pings are not counted).
 * bytes_per_agent: total bytes sent over all agents divided by N. round_max_sum: over rounds,
 * the largest number of bytes one agent sent in that round, summed (the link model of
 * examples/bandwidth: a round lasts until the busiest uplink is done). comm_rounds: rounds in
 * which at least one message was sent. Zero for one agent and centralized (no messages).
 */
void sim_traffic(const struct sim *s, double *ret_bytes_per_agent, uint64_t *ret_round_max_sum,
		 uint64_t *ret_comm_rounds);
/* What the run is: push-sum form (directed graph or sgp), schedule name, compressor spec and
 * gossip step actually used, local steps. */
bool sim_pushsum(const struct sim *s);
const char *sim_schedule_name(const struct sim *s);
float sim_gossip_step(const struct sim *s); /* 0 when uncompressed */

/* Robust mixing in use (not the plain mean path), and the screening factor applied. */
bool sim_robust(const struct sim *s, double *ret_factor);
/* Byzantine agents (0 .. K-1) and their attack spec ("none" when K = 0). */
uint32_t sim_byzantine(const struct sim *s, const char **ret_attack);
/* Neighbour states excluded so far, summed over agents and rounds, per macc_robust_reason
 * (count[MACC_ROBUST_NREASONS]), and the quarantines started and states clipped. */
void sim_robust_counts(const struct sim *s, uint64_t *count, uint64_t *ret_quarantines,
		       uint64_t *ret_clipped);

/*
 * Feature standardisation (agree.h), done once by sim_create before round 0: each agent's
 * statistics of its shard of the training split, S steps of average consensus with the weights
 * of a round (W, or P in push-sum form; --drop-prob loses vectors of this phase too, folded, from
 * a stream of its own so the rounds' drops do not move), the own estimate, then D = the graph's
 * diameter steps of exact min-consensus without losses (the daemon waits longer for those).
 * One agent and centralized take the exact transform of the whole training split. Serial: the
 * same bits for every --threads. Each agent's model gets its own result (the same one when `agreed`).
 */
struct sim_std {
	bool on;
	bool agreed;        /* every agent holds the same transform, bit for bit */
	bool exact;         /* computed from the whole training split (one agent, centralized) */
	uint32_t avg_rounds, exact_rounds; /* S, D */
	double err_mean;    /* max over agents and features of |mean - exact| * exact inv_std */
	double err_scale;   /* max over agents and features of |inv_std / exact inv_std - 1| */
	double eps;         /* N lambda^S of the error bound; NaN where none applies (push-sum) */
	uint64_t dropped;   /* vectors of the average phase lost to --drop-prob */
	uint64_t refused;   /* vectors the screening refused (far, range, ...) */
	uint64_t digest;    /* macc_params_digest over agent 0's mean then inv_std (the line
			     * each macc-agentd logs) */
	const char *source; /* which data it came from, for output */
};
/* The run's standardisation into *ret; false when the run does not standardise. */
bool sim_standardize(const struct sim *s, struct sim_std *ret);

/* Evaluate on the test set: always the average model and the consensus distance, each agent's
 * model too when per_agent. */
void sim_evaluate(struct sim *s, bool per_agent, struct sim_eval *ret);

/* Digest (macc_params_digest) of all agents' parameters, agent after agent as one block (the
 * one shared model for centralized and single-agent runs). */
uint64_t sim_digest(const struct sim *s);
/* Digest of one agent's parameters (what that agent's daemon would print). */
uint64_t sim_agent_digest(const struct sim *s, uint32_t j);
uint32_t sim_nmodels(const struct sim *s); /* agents with their own x: N, or 1 */
/* Write the same block as raw float32 (host byte order) to path. */
int sim_dump_params(const struct sim *s, const char *path, struct macc_errmsg *err);

/* The model the parameters belong to (its spec, layers and standardiser), for exporters. */
const struct macc_model *sim_model(const struct sim *s);
/* Into out[nparams]: agent j's parameters (j < sim_nmodels), or with j < 0 the average model
 * (mean over agents in double, agent order: the model test_acc_avg is measured on). */
void sim_params(const struct sim *s, int64_t j, float *out);

#endif
