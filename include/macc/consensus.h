/*
 * consensus.h - communication graphs, mixing weights and the update equations of every
 * algorithm, as pure functions over flat float vectors. macc-algorithms(7) is the contract.
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
#include <sys/types.h>

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
 * Missing neighbours (macc-algorithms(7)): given the configured weights (self_w, w[i]) and which
 * neighbours arrived, return the round's self weight w_jj + sum of missing w_jl and zero the
 * missing entries in w_out. Returns the number of missing neighbours.
 */
size_t macc_fold_missing(double self_w, const double *w, const bool *arrived, size_t nnb,
			 double *ret_self_w, double *w_out);

/* ======================================================================================== */
/* Beyond a fixed undirected graph (macc-algorithms(7), second part)                    */
/* ======================================================================================== */

/*
 * Local steps (option local_steps H, default 1): a round is H - 1 purely local heavy-ball steps
 * with macc_sgd_step() from macc/nn.h (v <- beta v - alpha g; x <- x + v, each on a fresh
 * mini-batch), then one step of the chosen algorithm. The learner (macc/learner.h) takes them
 * for the simulator and the daemon alike; H = 1 is the algorithm unchanged. Nothing else is
 * needed here. How these leaves make a round is mixer.h's (the one composition).
 */

/* ---- Directed graphs (push-sum) ---------------------------------------------------------- */

/* A directed graph on n agents: adj[a*n+b] = 1 iff a -> b (a sends to b); no self loops. */
struct macc_digraph {
	uint32_t n;
	uint8_t *adj; /* [n][n], owned */
};

/*
 * Edge list with directed edges: one "a -> b" (a sends to b) or "a b" (both directions) per
 * line, '#' comments, otherwise the format of macc_graph_parse_edgelist. The graph must be
 * strongly connected (MACC_EGRAPH). The undirected parser refuses "a -> b" lines (MACC_ESPEC).
 */
int macc_digraph_parse_edgelist(const char *text, size_t len, uint32_t n, const char *name,
				struct macc_digraph *ret, struct macc_errmsg *err);
/* Any topology spec of macc_graph_create: "file:PATH" is read with the directed parser, every
 * other spec is the undirected graph with both directions of each edge. */
int macc_digraph_create(const char *spec, uint32_t n, uint64_t seed, struct macc_digraph *ret,
			struct macc_errmsg *err);
void macc_digraph_finish(struct macc_digraph *g); /* zeroed ok */
uint32_t macc_digraph_outdeg(const struct macc_digraph *g, uint32_t j);
uint32_t macc_digraph_indeg(const struct macc_digraph *g, uint32_t j);
bool macc_digraph_strongly_connected(const struct macc_digraph *g);

/*
 * Push-sum (Kempe et al. 2003; SGP, Assran et al. 2019). P = [p_lj] is column-stochastic: sender
 * j keeps p_jj = 1/(outdeg_j + 1) of its mass and gives each out-neighbour the same share. Agent
 * j holds numerators z (parameters), u (momentum) and a weight w (double, starts at 1); its
 * parameters are the de-biased x = z / w, where gradients are taken. Every round j sends
 * (z, u for dmsgd, w) to its out-neighbours, and the receiver scales by the SENDER's share
 * p_jl = 1/(outdeg_l + 1): in the daemon the sender's out-degree is the HELLO "degree" field.
 * Summation order: self first, then in-neighbours in ascending agent index, as for mix().
 * Push-sum must not lose mass: a missing message must not be folded into the self weight the
 * way macc_fold_missing does for mix(); the daemon has to wait for it or resend it.
 */
double macc_pushsum_share(uint32_t outdeg); /* 1 / (outdeg + 1), in double */
/* Agent j's incoming row of P: self share from its own out-degree, p_in[i] = share of the i-th
 * in-neighbour (ascending index) from that neighbour's out-degree. */
void macc_pushsum_row(uint32_t self_outdeg, const uint32_t *in_outdeg, size_t nin,
		      double *ret_self_p, double *p_in);
/* The whole P as [n][n] doubles, row j = what j receives: P[j*n+l] = p_jl (simulator, tests). */
int macc_pushsum_matrix(const struct macc_digraph *g, double *P);
/* w_j^{k+1} = push(w)_j = self_p * self_w + sum_i p_in[i] * w_in[i], in that order, in double. */
double macc_pushsum_weight(double self_p, double self_w, const double *p_in, const double *w_in,
			   size_t nin);
/*
 * Which push-sum algorithm a name means: "sgp" is cdmsgd in push-sum form (u = beta u - alpha g;
 * z = push(z) + u), "dmsgd" is dmsgd in push-sum form (u and z both pushed). Others: MACC_ESPEC.
 */
int macc_pushsum_algo_parse(const char *name, enum macc_algo *ret_base);
/*
 * One push-sum step on the numerators (z, u in place, round k -> k+1), for base = MACC_ALGO_CDMSGD
 * (sgp) or MACC_ALGO_DMSGD: exactly macc_consensus_step() with the mixing weights replaced by the
 * push shares, nb[i] = {(float)p_jl, z_l, u_l} for in-neighbours ascending, self_p = (float)p_jj.
 * So on a graph where the shares equal the undirected weights, it equals cdmsgd / dmsgd bit for
 * bit. g is the gradient at the de-biased x (macc_pushsum_debias). The weight is advanced
 * separately with macc_pushsum_weight. Returns MACC_ESPEC for any other base algorithm.
 */
int macc_pushsum_step(enum macc_algo base, const struct macc_hparams *hp, size_t n, float *z,
		      float *u, const float *g, float self_p, const struct macc_neighbour *nb,
		      size_t nnb, float *scratch);
/* x = z / w elementwise, divided in float by (float)w (w == 1 gives x == z bit for bit). */
void macc_pushsum_debias(size_t n, const float *z, double w, float *x);

/* ---- Time-varying schedules ---------------------------------------------------------------- */

/*
 * A schedule picks round r's graph, a subgraph of the configured one, as a pure function of
 * (seed, r, configured graph); W^r is the Metropolis matrix of that graph. Both non-static
 * schedules are matchings (every agent has at most one partner per round), so agent j's row is
 * {self 1/2, partner 1/2} when matched and {self 1} when idle (macc_schedule_weights).
 *   static     the configured graph every round: callers keep today's code path (configured W).
 *   matching   a random maximal matching of the configured graph: agents in a random order
 *              (macc_rng on MACC_STREAM_SCHEDULE, seeded from seed and r), each still unmatched
 *              agent takes a uniformly random still-unmatched neighbour. Every edge has a positive
 *              chance every round. The daemon must know the WHOLE configured graph (topology
 *              spec + number of agents, agents numbered like the simulator, e.g. from config),
 *              not just its neighbours, to compute it; cost O(N + E) per round.
 *   exp-pairs  N = 2^k agents whose configured graph holds the hypercube's edges: round r pairs
 *              j with j XOR 2^(r mod k). O(1) per agent, needs only N and j.
 */
enum macc_schedule_kind {
	MACC_SCHEDULE_STATIC,
	MACC_SCHEDULE_MATCHING,
	MACC_SCHEDULE_EXP_PAIRS,
};
#define MACC_NO_PARTNER UINT32_MAX

int macc_schedule_parse(const char *name, enum macc_schedule_kind *ret);
const char *macc_schedule_name(enum macc_schedule_kind k);

struct macc_schedule {
	enum macc_schedule_kind kind;
	uint32_t n;
	uint64_t seed;
	uint32_t k;    /* exp-pairs: log2(n) */
	uint32_t *off; /* matching: CSR offsets [n+1] into nbr, owned */
	uint32_t *nbr; /* matching: neighbours of each agent, ascending, owned */
};

/* Checks the graph against the schedule (exp-pairs: n a power of two >= 2 and every hypercube
 * edge configured, else MACC_EGRAPH naming the missing edge) and builds what the rounds need. */
int macc_schedule_init(struct macc_schedule *s, enum macc_schedule_kind kind,
		       const struct macc_graph *g, uint64_t seed, struct macc_errmsg *err);
void macc_schedule_finish(struct macc_schedule *s); /* zeroed ok */
/*
 * Round r's pairing of every agent: partner[j] (n entries) = j's partner or MACC_NO_PARTNER;
 * symmetric. work holds n uint32 (matching only; may be NULL otherwise). MACC_ESTATE for static.
 */
int macc_schedule_round(const struct macc_schedule *s, uint64_t round, uint32_t *partner,
			uint32_t *work);
/* Agent j's partner in round r (exp-pairs: O(1); matching: computes the round, allocating n
 * words). MACC_NO_PARTNER when idle or on allocation failure (treated as idle) or for static. */
uint32_t macc_schedule_partner(const struct macc_schedule *s, uint64_t round, uint32_t j);
/* Metropolis row on the round's graph: partner != MACC_NO_PARTNER gives self 1/2, partner 1/2
 * (via macc_weights_row, the same doubles as everywhere); idle gives self 1, *ret_w 0. */
void macc_schedule_weights(uint32_t partner, double *ret_self_w, double *ret_w);
/* Round r's graph as a macc_graph (not necessarily connected; for W^r, tests, the simulator). */
int macc_schedule_graph(const struct macc_schedule *s, uint64_t round, struct macc_graph *ret);

/* ---- Compressed exchange with error feedback (CHOCO-gossip) ------------------------------- */

enum macc_compress_kind {
	MACC_COMPRESS_NONE = 0, /* today's uncompressed path, unchanged */
	MACC_COMPRESS_BF16 = 1, /* round-to-nearest-even bfloat16 */
	MACC_COMPRESS_INT8 = 2, /* blocks of 256, scale = max|x|/127, q = roundf(x / scale) */
	MACC_COMPRESS_TOPK = 3, /* the round(F*n) (>= 1) largest |x|: u32 index + f32 value */
};
/* The tag values equal proto.h's enum macc_enc (BF16 1, INT8 2, TOPK 3). */
#define MACC_COMPRESS_INT8_BLOCK 256
#define MACC_COMPRESS_HEADER 12

struct macc_compressor {
	enum macc_compress_kind kind;
	double frac; /* topk: F in (0, 1] */
};

/* "none", "bf16", "int8", "topk:F" with 0 < F <= 1. MACC_ESPEC with a message otherwise. */
int macc_compress_parse(const char *spec, struct macc_compressor *ret, struct macc_errmsg *err);
/* Default gossip step gamma per compressor (measured, see compress.c): none 1, bf16 1, int8 1,
 * topk 0.2 (topk:F with F < 0.1 is not recommended: it needs a smaller gamma). */
float macc_compress_default_gamma(const struct macc_compressor *c);
/* topk: entries kept for n values; other kinds: n. */
size_t macc_compress_count(const struct macc_compressor *c, size_t n);
/* Exact blob size for n values (0 for none). */
size_t macc_compress_size(const struct macc_compressor *c, size_t n);

/*
 * The wire blob (little-endian, carried in a msgpack bin):
 *   u8 enc (1 bf16, 2 int8, 3 topk) | u8 0 | u16 0 | u32 n | u32 count | payload
 *   bf16: count = n, n x u16 (the top half of the float bits, rounded to nearest even)
 *   int8: count = ceil(n / 256) blocks, count x f32 scale (0 <= s <= FLT_MAX/127), then n x i8 in
 *         [-127, 127]; value = scale * (float)q
 *   topk: count = k <= n, k x u32 index (strictly ascending, < n), then k x f32 value (finite)
 * Encode d[0..n) (finite values, n < 2^32) into out (cap bytes, at least macc_compress_size).
 * Returns the length written, or -ERANGE (non-finite input, or a value that rounds to infinity
 * in bf16), -ENOSPC, -EINVAL (none, or n too large). Top-k picks the k largest |d| with ties
 * going to the lower index (a radix select on the float bits: O(n), no allocation).
 */
ssize_t macc_compress_encode(const struct macc_compressor *c, size_t n, const float *d,
			     uint8_t *out, size_t cap, struct macc_errmsg *err);
/*
 * Validates a blob completely (tag, reserved bytes, n == the expected n, count, exact length,
 * finite scales and values, int8 codes in range, topk indices strictly ascending and < n), and
 * only then adds its values into acc[0..n): acc += q (dense for bf16/int8, sparse for topk).
 * On error acc is untouched and the code is MACC_EMALFORMED with a message naming the field.
 * If ret_kind is not NULL it receives the blob's compressor kind.
 */
int macc_compress_decode_add(const uint8_t *blob, size_t len, size_t n, float *acc,
			     enum macc_compress_kind *ret_kind, struct macc_errmsg *err);

/* The validation of macc_compress_decode_add alone (nothing is added): 0 or MACC_EMALFORMED
 * naming the field. The daemon checks a received blob with it when it arrives, and adds it to
 * its public copy only at the round's step. */
int macc_compress_check(const uint8_t *blob, size_t len, size_t n, struct macc_errmsg *err);

/*
 * CHOCO state of one agent: public copies of its own sent vector and of each neighbour's,
 * all starting at x^0 (vhat at v^0 = 0). In round k agent j:
 *   1. macc_choco_send: q = C(x_j - xhat_j) encoded into a blob, and xhat_j += q by decoding that
 *      same blob (so the sender's copy is bit for bit what every receiver holds); the same for
 *      v with vhat for dmsgd. x is what macc_algo_outgoing returns (y for dsgd).
 *   2. every neighbour l's blob that arrived: macc_compress_decode_add into xhat_nb[l]
 *      (macc_choco_peer_x / _v give the pointers).
 *   3. macc_choco_step: the algorithm's step with mixhat in place of mix:
 *      mixhat(x)_j = x_j + gamma * sum_l w_jl * (xhat_l - xhat_j), l ascending, skipping w == 0.
 * Every holder of j's copy must apply every q of j, so a neighbour's blob that never arrives
 * leaves that copy stale for good (the daemon must resend it or resynchronise). With a
 * time-varying schedule the blob must still reach every configured neighbour each round (only
 * the mixing is restricted to the round's partners), otherwise the copies diverge.
 */
struct macc_choco {
	size_t n;
	size_t nnb;
	bool mom;         /* momentum copies too (dmsgd) */
	float *xhat_self; /* n, owned */
	float *vhat_self; /* n or NULL */
	float *xhat_nb;   /* [nnb][n] */
	float *vhat_nb;   /* [nnb][n] or NULL */
};
int macc_choco_init(struct macc_choco *c, size_t n, size_t nnb, bool mom, const float *x0);
void macc_choco_finish(struct macc_choco *c); /* zeroed ok */
float *macc_choco_peer_x(const struct macc_choco *c, size_t i);
float *macc_choco_peer_v(const struct macc_choco *c, size_t i);
/* Step 1 for one vector (x or v): encodes C(val - hat) into out (no temporary: the difference
 * is formed on the fly) and applies it to hat. Returns the blob length or a negative code (see
 * macc_compress_encode); hat is untouched on error. */
ssize_t macc_choco_send(const struct macc_compressor *c, size_t n, const float *val, float *hat,
			uint8_t *out, size_t cap, struct macc_errmsg *err);
/*
 * Step 3: agent j's step of algorithm a (not centralized) with mixhat. w[i] is the round's
 * weight of neighbour i (float, 0 = left out), in the order of the copies. scratch: 2n floats.
 * mixhat(x) (and mixhat(v) for dmsgd with omega != 0) are formed into scratch, then
 * macc_consensus_step runs with self weight 0 and one neighbour of weight 1 holding them, so
 * the algorithm's equations are the very same code as the uncompressed path.
 */
void macc_choco_step(enum macc_algo a, const struct macc_hparams *hp, float gamma, size_t n,
		     float *x, float *v, const float *g, const struct macc_choco *c, const float *w,
		     float *scratch);

/* ---- Robust mixing: screening, aggregation rules, quarantine, attacks ---------- */

/*
 * Robust mixing sits between "what arrived" and macc_consensus_step (src/consensus/robust.c has
 * the rules and why they hold). Per round, agent j:
 *   1. fills one struct macc_arrival per configured neighbour (configured double weight, the
 *      neighbour's round-k x -- y for dsgd -- and v for dmsgd; x NULL = did not arrive);
 *   2. calls macc_robust_prepare: quarantined neighbours are skipped, non-finite states and
 *      states too far from its own (a bound learned from recent rounds) are excluded, their
 *      weight folded into its own with macc_fold_missing exactly as for a missing neighbour, the
 *      aggregation rule is applied, and the effective neighbour list is written;
 *   3. calls macc_consensus_step unchanged with that list (or uses macc_robust_step, which does
 *      2 and 3). With rule `mean` and nothing excluded the list is the plain one: bit for bit
 *      today's path.
 * Everything is deterministic and allocation-free; the learned state is a flat struct the
 * caller owns (and may checkpoint verbatim).
 */
enum macc_agg_kind {
	MACC_AGG_MEAN = 0,      /* the algorithm as written (default) */
	MACC_AGG_CLIP = 1,      /* clip:TAU, clipped gossip (He, Karimireddy, Jaggi 2022) */
	MACC_AGG_CLIP_AUTO = 2, /* clip:auto, TAU = median of recent accepted distances */
	MACC_AGG_TRIMMED = 3,   /* trimmed:B, coordinate-wise trimmed mean */
};

struct macc_agg {
	enum macc_agg_kind kind;
	double tau; /* clip: TAU > 0, finite */
	uint32_t b; /* trimmed: B >= 1 */
};

/* "mean", "clip:TAU" (TAU > 0 finite), "clip:auto", "trimmed:B" (1 <= B <= 64). MACC_ESPEC with a
 * message naming the spec otherwise; *ret untouched on error. */
int macc_agg_parse(const char *spec, struct macc_agg *ret, struct macc_errmsg *err);
/* The spec string back ("clip:0.5" with %g), NUL-terminated; -ENOSPC if cap is too small. */
int macc_agg_format(const struct macc_agg *a, char *buf, size_t cap);
/* trimmed:B needs at least 2B+1 neighbours: MACC_ECONFIG naming B and deg otherwise. */
int macc_agg_check_degree(const struct macc_agg *a, uint32_t deg, struct macc_errmsg *err);

/* Quarantine of a neighbour that keeps failing screening (one struct per neighbour, zeroed). */
struct macc_quarantine_cfg {
	uint32_t fails; /* failed rounds in a row that start a quarantine; 0 = never quarantine */
	uint32_t base;  /* first back-off in rounds (>= 1); each new quarantine doubles it */
	uint32_t cap;   /* back-off cap in rounds (>= base); also the clean rounds that forgive */
};
struct macc_quarantine {
	uint32_t streak;  /* failed rounds in a row */
	uint32_t clean;   /* clean rounds in a row */
	uint32_t backoff; /* length of the last quarantine (0 = none, or forgiven) */
	bool probation;   /* released, fewer than `backoff` clean rounds since: one fail re-quarantines */
	uint64_t until;   /* quarantined while round < until */
	uint64_t times;   /* quarantines started (metrics) */
};
/* Whether the neighbour is quarantined in `round` (its state is then not even inspected). */
bool macc_quarantine_active(const struct macc_quarantine *q, uint64_t round);
/*
 * Records the outcome of `round` for a neighbour that was inspected (not missing, not
 * quarantined). A fail extends the streak; at c->fails in a row, or at the first fail while on
 * probation, a quarantine starts for rounds round+1 .. round+backoff with backoff = base, then
 * doubled each time, at most cap. A clean round resets the streak; `backoff` clean rounds end
 * probation and `cap` clean rounds forget the back-off. Returns true iff a quarantine started.
 */
bool macc_quarantine_record(struct macc_quarantine *q, const struct macc_quarantine_cfg *c,
			    uint64_t round, bool failed);

#define MACC_ROBUST_WINDOW_MAX 256 /* most distances a history can remember */
#define MACC_ROBUST_MAX_NB 256     /* most neighbours macc_robust_prepare takes */

struct macc_robust_cfg {
	struct macc_agg agg;
	double factor;   /* distance bound = factor * median; 0 = no distance screening */
	uint32_t window; /* accepted distances remembered, 1 .. MACC_ROBUST_WINDOW_MAX */
	uint32_t warmup; /* history entries before the learned bound applies, 1 .. window */
	struct macc_quarantine_cfg quarantine;
};
/* mean, factor 10, window 64, warmup 32, quarantine after 3 fails, back-off 4 doubling to 256. */
void macc_robust_cfg_default(struct macc_robust_cfg *c);
/* Ranges above; MACC_ECONFIG naming the field. */
int macc_robust_cfg_validate(const struct macc_robust_cfg *c, struct macc_errmsg *err);

/* A ring of the last `window` accepted distances (pooled over all neighbours of one agent). */
struct macc_robust_hist {
	uint32_t count; /* entries held */
	uint32_t next;  /* next slot to overwrite */
	float d[MACC_ROBUST_WINDOW_MAX];
};
/* What one agent learned from recent rounds: distances of x and of v (dmsgd). Zeroed = fresh. */
struct macc_robust {
	struct macc_robust_hist x, v;
};
/* The lower median of a history (element (count-1)/2 in ascending order), 0 when empty. */
double macc_robust_hist_median(const struct macc_robust_hist *h);

/* Why a neighbour's state was or was not mixed this round. */
enum macc_robust_reason {
	MACC_ROBUST_OK = 0,          /* mixed (possibly clipped or trimmed) */
	MACC_ROBUST_MISSING = 1,     /* did not arrive, or weight 0: folded, not counted as a fail */
	MACC_ROBUST_NONFINITE = 2,   /* NaN or infinity in x or v: folded, a fail */
	MACC_ROBUST_DISTANCE = 3,    /* ||x_l - x_j|| or ||v_l - v_j|| above the bound: folded, a fail */
	MACC_ROBUST_QUARANTINED = 4, /* in quarantine, not inspected: folded */
	MACC_ROBUST_NREASONS = 5,
};
/* "ok", "missing", "nonfinite", "distance", "quarantined" (metrics labels); never NULL. */
const char *macc_robust_reason_name(enum macc_robust_reason r);

/* One configured neighbour's round-k arrival, in ascending agent index. */
struct macc_arrival {
	double w;       /* configured weight w_jl for this round (0: not in this round's graph) */
	const float *x; /* n floats: x_l (y_l for dsgd); NULL = did not arrive */
	const float *v; /* n floats: v_l for dmsgd, else ignored; NULL for dmsgd = did not arrive */
};

/* What a round did, for counters and metrics. */
struct macc_robust_report {
	uint32_t count[MACC_ROBUST_NREASONS]; /* neighbours per reason */
	uint32_t clipped;      /* mixed neighbours whose x or v difference was clipped */
	uint32_t quarantined;  /* quarantines started this round */
	bool fallback;         /* learned bound would have excluded a majority: round bound used */
	double bound_x, bound_v; /* distance bounds applied (INFINITY = none) */
	double tau_x, tau_v;     /* clip thresholds applied (INFINITY = no clipping) */
};

/* Floats of `buf` macc_robust_prepare needs: clip nnb*n (2*nnb*n with v), trimmed n (2n). */
size_t macc_robust_buf_floats(const struct macc_agg *agg, size_t n, size_t nnb, bool mom);

/*
 * Step 2 above for agent j in `round`. x = its own outgoing vector (x, or y for dsgd, n floats),
 * v = its own v (read only for dmsgd, may be NULL otherwise), self_w = configured w_jj, nb[0..nnb)
 * the arrivals, q[0..nnb) their quarantine states (NULL: no quarantine). Writes *ret_self_w and
 * out[0..returned count) for macc_consensus_step (out needs nnb entries), reasons[0..nnb) (may be
 * NULL) and *report (may be NULL); updates st and q. Pointers in out point into nb or into buf
 * (macc_robust_buf_floats), valid until either changes. Returns the number of entries of out
 * (nnb for mean and clip, with w = 0 for excluded ones; 1 or 0 for trimmed), or -EINVAL (bad
 * config, nnb > MACC_ROBUST_MAX_NB), MACC_ENONFINITE (the agent's OWN x or v is not finite);
 * on error st, q and the outputs are untouched.
 */
int macc_robust_prepare(const struct macc_robust_cfg *cfg, struct macc_robust *st,
			struct macc_quarantine *q, enum macc_algo a, uint64_t round, size_t n,
			const float *x, const float *v, double self_w, const struct macc_arrival *nb,
			size_t nnb, float *buf, float *ret_self_w, struct macc_neighbour *out,
			uint8_t *reasons, struct macc_robust_report *report);

/*
 * Steps 2 and 3 in one call: macc_algo_outgoing (y for dsgd, formed in scratch), then
 * macc_robust_prepare, then macc_consensus_step on x, v in place. scratch: 2n floats; out: nnb
 * entries of caller storage. Returns what macc_robust_prepare returns (x, v untouched on error).
 */
int macc_robust_step(const struct macc_robust_cfg *cfg, struct macc_robust *st,
		     struct macc_quarantine *q, enum macc_algo a, const struct macc_hparams *hp,
		     uint64_t round, size_t n, float *x, float *v, const float *g, double self_w,
		     const struct macc_arrival *nb, size_t nnb, float *buf, float *scratch,
		     struct macc_neighbour *out, uint8_t *reasons, struct macc_robust_report *report);

/*
 * Byzantine attacks for macc-sim --byzantine K:ATTACK: what a poisoned agent sends in place of
 * its honest vector z (x, y or v; applied to each vector it sends, the same message to every
 * neighbour).
 *   signflip   out = -z
 *   scale:S    out = S * z (S finite)
 *   noise:SIGMA out = z + SIGMA * N(0, 1) per value (SIGMA > 0; draws from the rng)
 *   nan        out = z with one value NaN and one +infinity (positions drawn from the rng)
 *   stale      out = `stale`, a vector the caller keeps from an earlier round (macc-sim: x^0, and
 *              v^0 = 0): a peer that stopped training but still answers
 */
struct macc_rng; /* macc/rng.h */

enum macc_attack_kind {
	MACC_ATTACK_NONE = 0,
	MACC_ATTACK_SIGNFLIP = 1,
	MACC_ATTACK_SCALE = 2,
	MACC_ATTACK_NOISE = 3,
	MACC_ATTACK_NAN = 4,
	MACC_ATTACK_STALE = 5,
};
struct macc_attack {
	enum macc_attack_kind kind;
	double s; /* scale: S; noise: SIGMA */
};
/* "none", "signflip", "scale:S", "noise:SIGMA", "nan", "stale"; MACC_ESPEC with a message. */
int macc_attack_parse(const char *spec, struct macc_attack *ret, struct macc_errmsg *err);
/* "K:ATTACK" with K >= 0 (macc-sim --byzantine); the caller checks K < number of agents. */
int macc_byzantine_parse(const char *spec, uint32_t *ret_k, struct macc_attack *ret,
			 struct macc_errmsg *err);
/* The spec string back, NUL-terminated; -ENOSPC if cap is too small. */
int macc_attack_format(const struct macc_attack *a, char *buf, size_t cap);
/* out[0..n) = the attack applied to z (out may equal z; stale must be non-NULL for stale and
 * may equal out; rng is used by noise and nan only). none copies z. */
void macc_attack_apply(const struct macc_attack *a, size_t n, const float *z, const float *stale,
		       float *out, struct macc_rng *rng);

#endif
