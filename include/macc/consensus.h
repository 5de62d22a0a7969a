/*
 * consensus.h - communication graphs, mixing weights and the update equations of every
 * algorithm, as pure functions over flat float vectors. ../shared/ALGORITHMS.md is the contract.
 *
 * The simulator and the daemon call the same macc_consensus_step(), in the same summation order
 * (self first, then neighbours in ascending agent index, each term w * z accumulated in float32
 * by the same fixed loops, built with -ffp-contract=off), so for the same config and seeds they
 * produce bit-identical parameters. Weights are computed in double (macc_weights_row,
 * macc_fold_missing) and converted to float once, as (float)w, just before the step.
 */
#ifndef MACC_CONSENSUS_H
#define MACC_CONSENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"

/* An undirected graph on n agents (adjacency matrix, no self loops). */
struct macc_graph {
	uint32_t n;
	uint8_t *adj; /* [n][n], owned, adj[i*n+j] = 1 iff edge i-j; symmetric */
};

/*
 * Topology specs: "ring", "full", "bipartite" (complete bipartite between the first and second
 * half; n even), "star" (agent 0 is the hub), "torus:RxC" (R*C == n), "regular:D" (random
 * D-regular, seeded; n*D even, D < n), "er:P" (Erdos-Renyi with edge probability P, seeded,
 * resampled until connected, bounded attempts), "file:PATH" (edge list: one "a b" pair of 0-based
 * agent numbers per line, '#' comments). Errors MACC_ESPEC / MACC_EGRAPH with a message.
 */
int macc_graph_create(const char *spec, uint32_t n, uint64_t seed, struct macc_graph *ret,
		      struct macc_errmsg *err);
void macc_graph_finish(struct macc_graph *g); /* zeroed ok */
/*
 * The edge-list format of "file:PATH", parsed from memory (len bytes, need not be NUL-terminated;
 * `name` is used in messages, e.g. the path). Errors name the line: MACC_ESPEC for syntax, agent
 * numbers >= n or self loops, MACC_EGRAPH if the graph is not connected. Duplicate edges (in
 * either orientation) are accepted once.
 */
int macc_graph_parse_edgelist(const char *text, size_t len, uint32_t n, const char *name,
			      struct macc_graph *ret, struct macc_errmsg *err);
uint32_t macc_graph_degree(const struct macc_graph *g, uint32_t j);
bool macc_graph_connected(const struct macc_graph *g);

/* Mixing weights. W is [n][n] doubles, row j = agent j's weights. */
enum macc_weights_kind {
	MACC_WEIGHTS_METROPOLIS, /* w_jl = 1 / (1 + max(deg_j, deg_l)), w_jj = 1 - sum */
	MACC_WEIGHTS_UNIFORM,    /* w_jl = 1 / (deg_j + 1) for l in N(j) and l = j */
};
int macc_weights_parse(const char *name, enum macc_weights_kind *ret);
int macc_weights_build(const struct macc_graph *g, enum macc_weights_kind kind, double *W);
/* The Metropolis-Hastings weight of an edge, from the two degrees (the daemon learns its
 * neighbours' degrees in the handshake and computes its row with this). */
double macc_metropolis_weight(uint32_t deg_j, uint32_t deg_l);
/*
 * One agent's row of W from degrees alone: the ONE function that both macc_weights_build (the
 * simulator) and the daemon use, so both get identical doubles. nb_deg[0..nnb) are the
 * neighbours' degrees in ascending agent index; w_nb[i] receives w_jl for the i-th of them and
 * *ret_self_w = 1 - sum(w_nb), summed in that order. Uniform uses self_deg (= nnb normally).
 */
void macc_weights_row(enum macc_weights_kind kind, uint32_t self_deg, const uint32_t *nb_deg,
		      size_t nnb, double *ret_self_w, double *w_nb);
/* Valid: non-negative, weight only on edges and the diagonal, rows sum to 1 (tolerance 1e-9),
 * columns too when need_doubly; graph connected. MACC_EGRAPH with a message naming the row. */
int macc_weights_validate(const struct macc_graph *g, const double *W, bool need_doubly,
			  struct macc_errmsg *err);
/* 1 - |lambda_2(W)| (second largest eigenvalue modulus), via LAPACK from OpenBLAS. */
int macc_spectral_gap(const double *W, uint32_t n, double *ret_gap);

enum macc_algo {
	MACC_ALGO_DMSGD,       /* mix x and v, heavy-ball step (default) */
	MACC_ALGO_CDMSGD,      /* mix x, local momentum */
	MACC_ALGO_CDSGD,       /* mix x, plain SGD step (combine-then-adapt) */
	MACC_ALGO_DSGD,        /* local step, then mix the half-steps (adapt-then-combine) */
	MACC_ALGO_CENTRALIZED, /* exact global average of gradients (simulator only) */
};
int macc_algo_parse(const char *name, enum macc_algo *ret);
const char *macc_algo_name(enum macc_algo a);

struct macc_hparams {
	float alpha;   /* step size after the schedule */
	float beta;    /* momentum */
	float omega;   /* dmsgd: share of momentum taken from the neighbourhood, default 1 */
	bool nesterov; /* dmsgd, cdmsgd: look-ahead parameter step */
};

/* Whether the algorithm sends momentum (dmsgd only), and whether what it sends depends on the
 * gradient (dsgd sends y = x - alpha*g, so it cannot overlap communication with compute). */
bool macc_algo_sends_momentum(enum macc_algo a);
bool macc_algo_sends_after_grad(enum macc_algo a);

/* The parameter vector agent j sends in round k: x itself, or for dsgd y = x - alpha * g
 * (written to `out`, n floats). Returns the pointer to send (x or out). */
const float *macc_algo_outgoing(enum macc_algo a, const struct macc_hparams *hp, size_t n,
				const float *x, const float *g, float *out);

/* One neighbour's round-k state as it arrived: x (or y for dsgd), and v (dmsgd only). */
struct macc_neighbour {
	float w;        /* mixing weight w_jl for this round (0 if it did not arrive: fold it) */
	const float *x; /* n floats */
	const float *v; /* n floats, dmsgd only, else NULL */
};

/*
 * One step of agent j for algorithm a (not centralized): reads x, v (own, round k), g (own
 * gradient at x), self_w = w_jj for this round, and nb[0..nnb) in ascending agent index; writes
 * x, v in place with round k+1. scratch holds 2*n floats (kept for later compressed paths; the
 * current step needs no n-sized temporaries and accepts NULL). Neighbours whose values did not
 * arrive must already have been removed and their weight folded into self_w (macc_fold_missing);
 * an entry with w == 0 is skipped (its pointers may be NULL), giving the same bits. v may be NULL
 * for cdsgd and dsgd, nb[i].v may be NULL unless a is dmsgd with omega != 0. nb[i].x, .v hold
 * round-k values and are only read (passing the agent's own x or v as one is harmless).
 */
void macc_consensus_step(enum macc_algo a, const struct macc_hparams *hp, size_t n, float *x,
			 float *v, const float *g, float self_w, const struct macc_neighbour *nb,
			 size_t nnb, float *scratch);

/* Centralized heavy-ball on the exact average gradient: v <- beta v - alpha gbar; x <- x + v
 * (with hp->nesterov, x <- x + beta v - alpha gbar, the look-ahead form of dmsgd/cdmsgd). */
void macc_centralized_step(const struct macc_hparams *hp, size_t n, float *x, float *v,
			   const float *gbar);

/*
 * Missing neighbours (ALGORITHMS.md): given the configured weights (self_w, w[i]) and which
 * neighbours arrived, return the round's self weight w_jj + sum of missing w_jl and zero the
 * missing entries in w_out. Returns the number of missing neighbours.
 */
size_t macc_fold_missing(double self_w, const double *w, const bool *arrived, size_t nnb,
			 double *ret_self_w, double *w_out);

#endif
