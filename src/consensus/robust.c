/*
 * robust.c - robust mixing: screening of neighbours' states, the aggregation rules
 * mean / clip:TAU / clip:auto / trimmed:B, the quarantine back-off rule, and the Byzantine
 * attack generators that macc-sim --byzantine uses. Pure functions over flat vectors: the
 * simulator and the daemon call the same code and get the same bits.
 *
 * Where it sits. The caller gathers the round's arrivals with their CONFIGURED double weights;
 * macc_robust_prepare decides who is mixed and folds everyone else (missing, quarantined,
 * non-finite, too far) into the self weight with ONE call of macc_fold_missing, then hands back
 * an effective neighbour list for macc_consensus_step. With rule `mean` and nothing excluded
 * that call returns the configured weights unchanged and the list holds the arrivals' own
 * pointers, so the step is bit for bit today's path (folding once, not twice, matters: double
 * sums in a different order may round differently).
 *
 * Screening, per neighbour l of agent j, in this order:
 *   - quarantined (macc_quarantine_active): excluded without looking at it;
 *   - did not arrive (x NULL, or v NULL for dmsgd, or weight 0): folded, not a fail;
 *   - any NaN/infinity in x_l (or v_l): excluded, reason "nonfinite";
 *   - d_x = ||x_l - x_j|| (and d_v = ||v_l - v_j|| for dmsgd, each against its own bound) above
 *     the bound: excluded, reason "distance". x_j is what j itself sends (y_j for dsgd).
 * The bound. Each agent keeps the last W (window) distances it ACCEPTED, pooled over all its
 * neighbours (struct macc_robust, one ring for x and one for v). Once the ring holds `warmup`
 * entries the bound is factor * median(ring). Before that (warm-up), and in a round where the
 * learned bound would exclude a strict majority of the finite arrivals (then the agent itself is
 * the odd one out -- it restarted from a checkpoint, the learning rate jumped -- not its
 * neighbours), the bound is factor * the lower median of this round's finite distances, if at
 * least 3 arrived; with fewer, anything finite passes. At round 0 every honest agent holds x^0,
 * so honest distances are 0 and the round bound rejects anything else.
 * Why a slowly growing attack cannot climb the bound: the median is over a pool in which the
 * honest neighbours own most entries. If a fraction f < 1/2 of an agent's neighbours lie, they
 * hold at most a fraction f of the accepted distances in the ring, so its median lies below the
 * honest distances' quantile 1 / (2 (1 - f)) (2/3 for one liar among 4 neighbours). Whatever the
 * liars send, and however slowly they grow it, the bound stays within `factor` times that honest
 * quantile; it does not compound from window to window as a per-neighbour history would. What a
 * liar can still do is stay just under the bound: with `mean` it then moves the agent by up to
 * w * factor * (honest scale) per round, which is what clipping caps. (Honest distances also
 * grow when liars pull agents apart, so the scale itself is only as honest as the mixing: use
 * screening together with clip:auto.)
 * Updating: the learned state and the quarantine states change only when prepare succeeds
 * (validate into temporaries, then commit). Missing and quarantined neighbours change nothing.
 *
 * Aggregation rules (v is treated exactly as x, with its own distances and threshold, so the
 * momentum that dmsgd mixes cannot carry what the parameters may not):
 *   mean      the effective list is the arrivals themselves.
 *   clip:TAU  each accepted neighbour's difference is clipped to norm TAU:
 *             z_l' = z_j + min(1, TAU / ||z_l - z_j||) (z_l - z_j), written into buf when the
 *             factor is below 1, otherwise the arrival's pointer is passed through -- so with a
 *             huge TAU the result equals `mean` BIT FOR BIT. One neighbour then moves x_j by at
 *             most w_jl * TAU through mix(x) (dmsgd: w_jl * TAU (1 + beta) adding mix(v)).
 *   clip:auto TAU_x = median of the x ring after this round's accepted distances entered it
 *             (TAU_v from the v ring): the honest majority sets the scale, by the argument
 *             above. This is the rule of the "clipped gossip" paper in spirit (choose TAU so that
 *             honest neighbours are barely clipped): the median clips at most about half the
 *             honest neighbours, and only by the factor their distance exceeds the median.
 *   trimmed:B per coordinate, the B largest and B smallest of the m accepted neighbours' values
 *             are dropped; the rest and the agent's own value are averaged with their round
 *             weights renormalised over what is kept (own weight includes the folded ones):
 *             T_i = (w'_jj z_j,i + sum_kept w'_jl z_l,i) / (w'_jj + sum_kept w'_jl), in double.
 *             On a regular graph with Metropolis weights this is the uniform mean over the
 *             m - 2B + 1 kept values; ties go to the lower index as "smaller", the kept
 *             values are summed self first then in ascending agent index. The agent's own
 *             value is never trimmed. It needs m >= 2B+1
 *             accepted neighbours (macc_agg_check_degree checks deg >= 2B+1 at config time); a
 *             round with fewer keeps the agent's own state (self weight 1, no neighbour), since
 *             the B liars may be among the ones that did arrive. T_x (and T_v) go to the step as
 *             one neighbour of weight 1 with self weight 0: 0*z + 1*T == T exactly, so the
 *             algorithm's equations are the same code as for every other rule.
 *
 * Quarantine (macc_quarantine_record): `fails` failed rounds in a row, or one fail while on
 * probation, quarantine the neighbour for a back-off of base rounds, doubled on each new
 * quarantine up to cap; after release it is on probation until it has passed as many clean
 * rounds as the last back-off, and after cap clean rounds the back-off is forgotten.
 *
 * Measured (test_robust.c: 8 agents, random 4-regular graph, quadratics, dmsgd alpha 0.02 beta
 * 0.9, 400 rounds, one attacker; honest agents' max ||x_j - x*|| / ||x*||): attack-free, mean
 * 0.010, clip:auto 0.024 (clipping at the median slows honest mixing: the price of the rule),
 * trimmed:1 0.029. Without screening, mean ends at 0.83 under signflip, 1e36 under scale:10,
 * 0.61 under noise:1 and 0.58 under stale, while clip:auto stays at 0.018 - 0.038 for every
 * attack; with screening (factor 10) every rule stays within 0.011 - 0.042. TAU = c * median
 * with c = 1.5, 2, 3, 5 lowered the attack-free cost to the mean's but let scale:10 / signflip
 * through up to 0.07, 0.04, 0.07, 0.49: the median is kept. Cost on a 235k-parameter dmsgd step
 * with 4 neighbours (CPU time, busy 2-core host): plain step ~1-2 ms, mean with screening
 * +~1.5 ms (one pass per received vector), clip:auto +~2.5 ms, trimmed:1 ~4x the plain step.
 * Stack: prepare keeps ~35 KB of per-neighbour arrays on the stack, no allocation.
 *
 * Built with -ffp-contract=off like algo.c, so the clipped vectors round the same everywhere.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"
#include "macc/rng.h"

enum {
	TRIM_B_MAX = 64,
	TRIM_BLOCK = 256, /* coordinates per block of the trimmed mean */
};

/* ---- spec parsing ---- */

/* A whole-string finite double (no leading space, no trailing junk). */
static int parse_double(const char *a, double *ret)
{
	char *e = NULL;
	double d;

	if (a == NULL || *a == '\0' || !((*a >= '0' && *a <= '9') || *a == '.' || *a == '-' ||
					 *a == '+')) {
		return -1;
	}
	d = strtod(a, &e);
	if (e == a || *e != '\0' || !isfinite(d)) {
		return -1;
	}
	*ret = d;
	return 0;
}

/* A whole-string decimal unsigned integer <= max. */
static int parse_u32(const char *a, size_t len, uint32_t max, uint32_t *ret)
{
	uint64_t v = 0;

	if (len == 0 || len > 10) {
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (a[i] < '0' || a[i] > '9') {
			return -1;
		}
		v = v * 10 + (uint64_t)(a[i] - '0');
	}
	if (v > max) {
		return -1;
	}
	*ret = (uint32_t)v;
	return 0;
}

/* Shortest of %.15g / %.17g that reads back as d. */
static int format_double(char *buf, size_t cap, const char *prefix, double d)
{
	char tmp[64];
	int len = snprintf(tmp, sizeof(tmp), "%s%.15g", prefix, d);

	if (len > 0 && strtod(tmp + strlen(prefix), NULL) != d) {
		len = snprintf(tmp, sizeof(tmp), "%s%.17g", prefix, d);
	}
	if (len < 0 || (size_t)len >= cap) {
		return -ENOSPC;
	}
	memcpy(buf, tmp, (size_t)len + 1);
	return 0;
}

static int copy_str(char *buf, size_t cap, const char *s)
{
	size_t len = strlen(s);

	if (len >= cap) {
		return -ENOSPC;
	}
	memcpy(buf, s, len + 1);
	return 0;
}

int macc_agg_parse(const char *spec, struct macc_agg *ret, struct macc_errmsg *err)
{
	struct macc_agg a = {.kind = MACC_AGG_MEAN, .tau = 0.0, .b = 0};

	if (spec == NULL) {
		return macc_errf(err, MACC_ESPEC, "aggregation: no spec given");
	}
	if (strcmp(spec, "mean") == 0) {
		a.kind = MACC_AGG_MEAN;
	} else if (strcmp(spec, "clip:auto") == 0) {
		a.kind = MACC_AGG_CLIP_AUTO;
	} else if (strncmp(spec, "clip:", 5) == 0) {
		if (parse_double(spec + 5, &a.tau) != 0 || !(a.tau > 0.0)) {
			return macc_errf(err, MACC_ESPEC, "aggregation '%s': expected clip:TAU with "
					 "a finite TAU > 0, or clip:auto", spec);
		}
		a.kind = MACC_AGG_CLIP;
	} else if (strncmp(spec, "trimmed:", 8) == 0) {
		if (parse_u32(spec + 8, strlen(spec + 8), TRIM_B_MAX, &a.b) != 0 || a.b == 0) {
			return macc_errf(err, MACC_ESPEC, "aggregation '%s': expected trimmed:B with "
					 "1 <= B <= %d", spec, TRIM_B_MAX);
		}
		a.kind = MACC_AGG_TRIMMED;
	} else {
		return macc_errf(err, MACC_ESPEC, "unknown aggregation '%s' (mean, clip:TAU, "
				 "clip:auto, trimmed:B)", spec);
	}
	*ret = a;
	return 0;
}

int macc_agg_format(const struct macc_agg *a, char *buf, size_t cap)
{
	char tmp[32];

	switch (a->kind) {
	case MACC_AGG_MEAN:
		return copy_str(buf, cap, "mean");
	case MACC_AGG_CLIP:
		return format_double(buf, cap, "clip:", a->tau);
	case MACC_AGG_CLIP_AUTO:
		return copy_str(buf, cap, "clip:auto");
	case MACC_AGG_TRIMMED:
		snprintf(tmp, sizeof(tmp), "trimmed:%u", (unsigned)a->b);
		return copy_str(buf, cap, tmp);
	}
	return -EINVAL;
}

int macc_agg_check_degree(const struct macc_agg *a, uint32_t deg, struct macc_errmsg *err)
{
	if (a->kind == MACC_AGG_TRIMMED && (uint64_t)deg < 2 * (uint64_t)a->b + 1) {
		return macc_errf(err, MACC_ECONFIG, "aggregation trimmed:%u needs at least %u "
				 "neighbours (2B+1), this agent has %u", (unsigned)a->b,
				 (unsigned)(2 * a->b + 1), (unsigned)deg);
	}
	return 0;
}

/* ---- quarantine ---- */

bool macc_quarantine_active(const struct macc_quarantine *q, uint64_t round)
{
	return round < q->until;
}

bool macc_quarantine_record(struct macc_quarantine *q, const struct macc_quarantine_cfg *c,
			    uint64_t round, bool failed)
{
	if (!failed) {
		q->streak = 0;
		if (q->clean < UINT32_MAX) {
			q->clean++;
		}
		if (q->clean >= q->backoff) {
			q->probation = false;
		}
		if (q->clean >= c->cap) {
			q->backoff = 0;
		}
		return false;
	}
	q->clean = 0;
	if (q->streak < UINT32_MAX) {
		q->streak++;
	}
	if (c->fails == 0 || (q->streak < c->fails && !q->probation)) {
		return false;
	}
	if (q->backoff == 0) {
		q->backoff = c->base;
	} else {
		q->backoff = q->backoff > c->cap / 2 ? c->cap : 2 * q->backoff;
	}
	if (q->backoff > c->cap) {
		q->backoff = c->cap;
	}
	q->until = round + 1 + q->backoff;
	q->streak = 0;
	q->probation = true;
	q->times++;
	return true;
}

/* ---- configuration and learned state ---- */

void macc_robust_cfg_default(struct macc_robust_cfg *c)
{
	memset(c, 0, sizeof(*c));
	c->agg.kind = MACC_AGG_MEAN;
	c->factor = 10.0;
	c->window = 64;
	c->warmup = 32;
	c->quarantine.fails = 3;
	c->quarantine.base = 4;
	c->quarantine.cap = 256;
}

int macc_robust_cfg_validate(const struct macc_robust_cfg *c, struct macc_errmsg *err)
{
	if (c->agg.kind == MACC_AGG_CLIP && !(isfinite(c->agg.tau) && c->agg.tau > 0.0)) {
		return macc_errf(err, MACC_ECONFIG, "aggregation clip: TAU %g is not finite and > 0",
				 c->agg.tau);
	}
	if (c->agg.kind == MACC_AGG_TRIMMED && (c->agg.b == 0 || c->agg.b > TRIM_B_MAX)) {
		return macc_errf(err, MACC_ECONFIG, "aggregation trimmed: B %u not in 1..%d",
				 (unsigned)c->agg.b, TRIM_B_MAX);
	}
	if ((unsigned)c->agg.kind > MACC_AGG_TRIMMED) {
		return macc_errf(err, MACC_ECONFIG, "aggregation: unknown kind %d", (int)c->agg.kind);
	}
	if (!(isfinite(c->factor) && c->factor >= 0.0)) {
		return macc_errf(err, MACC_ECONFIG, "screen factor %g: must be finite and >= 0 "
				 "(0 = no distance screening)", c->factor);
	}
	if (c->window == 0 || c->window > MACC_ROBUST_WINDOW_MAX) {
		return macc_errf(err, MACC_ECONFIG, "screen window %u: must be 1..%d",
				 (unsigned)c->window, MACC_ROBUST_WINDOW_MAX);
	}
	if (c->warmup == 0 || c->warmup > c->window) {
		return macc_errf(err, MACC_ECONFIG, "screen warmup %u: must be 1..window (%u)",
				 (unsigned)c->warmup, (unsigned)c->window);
	}
	if (c->quarantine.fails > 0 &&
	    (c->quarantine.base == 0 || c->quarantine.cap < c->quarantine.base)) {
		return macc_errf(err, MACC_ECONFIG, "quarantine back-off %u..%u: need 1 <= base <= "
				 "cap", (unsigned)c->quarantine.base, (unsigned)c->quarantine.cap);
	}
	return 0;
}

static int cmp_float(const void *a, const void *b)
{
	const float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* Lower median of a[0..m), sorting a in place; 0 when m == 0. */
static double lower_median(float *a, size_t m)
{
	if (m == 0) {
		return 0.0;
	}
	qsort(a, m, sizeof(*a), cmp_float);
	return a[(m - 1) / 2];
}

double macc_robust_hist_median(const struct macc_robust_hist *h)
{
	float tmp[MACC_ROBUST_WINDOW_MAX];
	size_t m = h->count > MACC_ROBUST_WINDOW_MAX ? MACC_ROBUST_WINDOW_MAX : h->count;

	memcpy(tmp, h->d, m * sizeof(*tmp));
	return lower_median(tmp, m);
}

/* Appends d to the ring of `window` entries (the window may have shrunk since the last call). */
static void hist_push(struct macc_robust_hist *h, uint32_t window, float d)
{
	if (h->count > window) {
		h->count = window;
	}
	if (h->next >= window) {
		h->next = 0;
	}
	h->d[h->next] = d;
	h->next = (h->next + 1) % window;
	if (h->count < window) {
		h->count++;
	}
}

static const char *const reason_names[MACC_ROBUST_NREASONS] = {
	[MACC_ROBUST_OK] = "ok",
	[MACC_ROBUST_MISSING] = "missing",
	[MACC_ROBUST_NONFINITE] = "nonfinite",
	[MACC_ROBUST_DISTANCE] = "distance",
	[MACC_ROBUST_QUARANTINED] = "quarantined",
};

const char *macc_robust_reason_name(enum macc_robust_reason r)
{
	if ((unsigned)r < MACC_ROBUST_NREASONS) {
		return reason_names[r];
	}
	return "unknown";
}

size_t macc_robust_buf_floats(const struct macc_agg *agg, size_t n, size_t nnb, bool mom)
{
	const size_t k = mom ? 2 : 1;

	switch (agg->kind) {
	case MACC_AGG_CLIP:
	case MACC_AGG_CLIP_AUTO:
		return k * nnb * n;
	case MACC_AGG_TRIMMED:
		return k * n;
	case MACC_AGG_MEAN:
		break;
	}
	return 0;
}

/* ---- the round ---- */

static bool all_finite(const float *z, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(z[i])) {
			return false;
		}
	}
	return true;
}

/*
 * ||b - a|| in double, rounded to float; false if b holds a NaN or infinity. a is known to be
 * finite, so the sum is finite exactly when b is (a squared float difference is below 2^257,
 * far from overflowing a double sum): one test at the end, no branch per value. Eight partial
 * sums in a fixed order break the add latency chain and stay deterministic.
 */
static bool distance(size_t n, const float *a, const float *b, float *ret)
{
	double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		for (size_t k = 0; k < 8; k++) {
			const double d = (double)b[i + k] - (double)a[i + k];

			acc[k] += d * d;
		}
	}
	for (size_t k = 0; i < n; i++, k++) {
		const double d = (double)b[i] - (double)a[i];

		acc[k] += d * d;
	}
	s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
	if (!isfinite(s)) {
		return false;
	}
	*ret = (float)sqrt(s);
	return true;
}

/* out = own + s (z - own), s = tau / d in float. */
static void clip_into(size_t n, const float *own, const float *z, double tau, float d, float *out)
{
	const float s = (float)(tau / (double)d);

	for (size_t i = 0; i < n; i++) {
		out[i] = own[i] + s * (z[i] - own[i]);
	}
}

/*
 * Coordinate-wise trimmed mean of own (weight sw) and the m accepted vectors z[k] (weights
 * wk[k], ascending agent index), dropping the b largest and b smallest neighbour values per
 * coordinate (m >= 2b+1). Ties: among equal values the lower index counts as smaller (the order
 * of a stable sort). The kept values are summed self first, then in ascending index, in double.
 * A value's rank (how many neighbour values sort before it) decides: kept iff b <= rank < m-b.
 * Ranks are counted by branch-free comparisons over blocks of TRIM_BLOCK coordinates, loops
 * the compiler vectorises across coordinates; every coordinate still sees the same operations
 * in the same order, so the result does not depend on the blocking.
 */
static void trim_into(size_t n, const float *own, double sw, const float *const *z,
		      const double *wk, size_t m, uint32_t b, float *out)
{
	double num[TRIM_BLOCK], den[TRIM_BLOCK];
	uint32_t rank[TRIM_BLOCK];
	int32_t kept[TRIM_BLOCK];
	const uint32_t keep = (uint32_t)(m - 2 * (size_t)b);

	/* weights from a validated row are positive; anything else keeps the own state */
	for (size_t k = 0; k < m; k++) {
		if (!(wk[k] > 0.0) || !(sw >= 0.0)) {
			memmove(out, own, n * sizeof(*out));
			return;
		}
	}

	for (size_t off = 0; off < n; off += TRIM_BLOCK) {
		const size_t len = n - off < TRIM_BLOCK ? n - off : TRIM_BLOCK;

		for (size_t i = 0; i < len; i++) {
			num[i] = sw * (double)own[off + i];
			den[i] = sw;
		}
		for (size_t k = 0; k < m; k++) {
			const float *zk = z[k] + off;
			const double w = wk[k];

			memset(rank, 0, len * sizeof(*rank));
			for (size_t j = 0; j < m; j++) {
				const float *zj = z[j] + off;

				/* j sorts before k if smaller, or equal with the lower index */
				if (j < k) {
					for (size_t i = 0; i < len; i++) {
						rank[i] += zj[i] <= zk[i];
					}
				} else if (j > k) {
					for (size_t i = 0; i < len; i++) {
						rank[i] += zj[i] < zk[i];
					}
				}
			}
			/* kept iff b <= rank < m - b, as one unsigned compare: a 0/1 factor
			 * (integer first: a float select would not vectorise under the default
			 * -ftrapping-math) */
			for (size_t i = 0; i < len; i++) {
				kept[i] = (int32_t)(rank[i] - b < keep);
			}
			for (size_t i = 0; i < len; i++) {
				const double wkeep = (double)kept[i] * w;

				num[i] += wkeep * (double)zk[i];
				den[i] += wkeep;
			}
		}
		/* den >= the smallest kept weight > 0 (checked above) */
		for (size_t i = 0; i < len; i++) {
			out[off + i] = (float)(num[i] / den[i]);
		}
	}
}

/* One macc_robust_prepare() call in progress: its inputs, and the per-neighbour verdicts,
 * distances, weights and the learned state it works on in temporaries until it commits */
struct prep {
	const struct macc_robust_cfg *cfg;
	bool mom;
	size_t n, nnb;
	const float *x, *v;
	const struct macc_arrival *nb;
	uint8_t why[MACC_ROBUST_MAX_NB];
	float dx[MACC_ROBUST_MAX_NB], dv[MACC_ROBUST_MAX_NB];
	double w[MACC_ROBUST_MAX_NB], wout[MACC_ROBUST_MAX_NB];
	bool accepted[MACC_ROBUST_MAX_NB];
	struct macc_quarantine nq[MACC_ROBUST_MAX_NB];
	struct macc_robust nst;
	struct macc_robust_report rep;
	size_t cand;
	double sw;
};

static bool prepare_args_ok(const struct macc_robust_cfg *cfg, const struct macc_robust *st,
			    enum macc_algo a, size_t n, const float *x, const float *v,
			    const struct macc_arrival *nb, size_t nnb, const float *buf,
			    const float *ret_self_w, const struct macc_neighbour *out)
{
	const bool mom = macc_algo_sends_momentum(a);

	return !(cfg == NULL || st == NULL || macc_robust_cfg_validate(cfg, NULL) != 0 ||
		 nnb > MACC_ROBUST_MAX_NB || (nnb > 0 && (nb == NULL || out == NULL)) ||
		 x == NULL || ret_self_w == NULL || (mom && v == NULL) ||
		 a == MACC_ALGO_CENTRALIZED ||
		 (buf == NULL && macc_robust_buf_floats(&cfg->agg, n, nnb, mom) > 0));
}

/* 1. quarantine, arrival, finiteness; distances of the finite arrivals */
static void prep_classify(struct prep *p, bool quarantine, uint64_t round)
{
	const struct macc_arrival *nb = p->nb;

	for (size_t i = 0; i < p->nnb; i++) {
		p->w[i] = nb[i].w;
		p->dx[i] = p->dv[i] = 0.0f;
		if (quarantine && macc_quarantine_active(&p->nq[i], round)) {
			p->why[i] = MACC_ROBUST_QUARANTINED;
		} else if (nb[i].w == 0.0 || nb[i].x == NULL || (p->mom && nb[i].v == NULL)) {
			p->why[i] = MACC_ROBUST_MISSING;
		} else if (!distance(p->n, p->x, nb[i].x, &p->dx[i]) ||
			   (p->mom && !distance(p->n, p->v, nb[i].v, &p->dv[i]))) {
			p->why[i] = MACC_ROBUST_NONFINITE;
		} else {
			p->why[i] = MACC_ROBUST_OK;
			p->cand++;
		}
	}
}

/* The learned bounds, or false (and the report's fallback flag) when the window is still
 * warming up or more than half the candidates lie beyond them */
static bool prep_learned_bounds(struct prep *p, double *bx, double *bv)
{
	const struct macc_robust_cfg *cfg = p->cfg;
	size_t far = 0;

	if (p->nst.x.count < cfg->warmup) {
		return false;
	}
	*bx = cfg->factor * macc_robust_hist_median(&p->nst.x);
	*bv = p->mom ? cfg->factor * macc_robust_hist_median(&p->nst.v) : INFINITY;
	for (size_t i = 0; i < p->nnb; i++) {
		if (p->why[i] == MACC_ROBUST_OK && (p->dx[i] > *bx || p->dv[i] > *bv)) {
			far++;
		}
	}
	if (2 * far > p->cand) {
		p->rep.fallback = true;
		return false;
	}
	return true;
}

/* factor times the lower median of the candidates' distances d */
static double prep_round_bound(const struct prep *p, const float *d)
{
	float tmp[MACC_ROBUST_MAX_NB];
	size_t m = 0;

	for (size_t i = 0; i < p->nnb; i++) {
		if (p->why[i] == MACC_ROBUST_OK) {
			tmp[m++] = d[i];
		}
	}
	return p->cfg->factor * lower_median(tmp, m);
}

/* 2. distance screening against the learned bound, or this round's */
static void prep_screen(struct prep *p)
{
	double bx = INFINITY, bv = INFINITY;

	if (!(p->cfg->factor > 0.0 && p->cand > 0)) {
		return;
	}
	if (!prep_learned_bounds(p, &bx, &bv)) {
		bx = bv = INFINITY;
		if (p->cand >= 3) {
			bx = prep_round_bound(p, p->dx);
			if (p->mom) {
				bv = prep_round_bound(p, p->dv);
			}
		}
	}
	for (size_t i = 0; i < p->nnb; i++) {
		if (p->why[i] == MACC_ROBUST_OK && (p->dx[i] > bx || p->dv[i] > bv)) {
			p->why[i] = MACC_ROBUST_DISTANCE;
		}
	}
	p->rep.bound_x = bx;
	p->rep.bound_v = p->mom ? bv : INFINITY;
}

/* 3. learn: accepted distances enter the rings, fails and passes the quarantine states */
static void prep_learn(struct prep *p, bool quarantine, uint64_t round)
{
	const struct macc_robust_cfg *cfg = p->cfg;

	for (size_t i = 0; i < p->nnb; i++) {
		const uint8_t why = p->why[i];

		p->accepted[i] = why == MACC_ROBUST_OK;
		p->rep.count[why]++;
		if (p->accepted[i]) {
			hist_push(&p->nst.x, cfg->window, p->dx[i]);
			if (p->mom) {
				hist_push(&p->nst.v, cfg->window, p->dv[i]);
			}
		}
		if (quarantine && (why == MACC_ROBUST_OK || why == MACC_ROBUST_NONFINITE ||
				   why == MACC_ROBUST_DISTANCE)) {
			if (macc_quarantine_record(&p->nq[i], &cfg->quarantine, round,
						   why != MACC_ROBUST_OK)) {
				p->rep.quarantined++;
			}
		}
	}
}

/* 4a. the coordinate-wise trimmed mean: one synthetic neighbour in buf, or none (the own
 * state kept) when too few arrived to trim B from each side; returns the count */
static size_t prep_trimmed(struct prep *p, float *buf, struct macc_neighbour *out)
{
	const float *zx[MACC_ROBUST_MAX_NB], *zv[MACC_ROBUST_MAX_NB];
	double wk[MACC_ROBUST_MAX_NB];
	const size_t n = p->n;
	const uint32_t b = p->cfg->agg.b;
	size_t m = 0;

	for (size_t i = 0; i < p->nnb; i++) {
		if (p->accepted[i]) {
			zx[m] = p->nb[i].x;
			zv[m] = p->mom ? p->nb[i].v : NULL;
			wk[m++] = p->wout[i];
		}
	}
	if (m < 2 * (size_t)b + 1) {
		/* too few to trim B from each side: keep the own state */
		p->sw = 1.0;
		return 0;
	}
	trim_into(n, p->x, p->sw, zx, wk, m, b, buf);
	if (p->mom) {
		trim_into(n, p->v, p->sw, zv, wk, m, b, buf + n);
	}
	out[0].w = 1.0f;
	out[0].x = buf;
	out[0].v = p->mom ? buf + n : NULL;
	p->sw = 0.0;
	return 1;
}

/* Clips accepted neighbour i towards the own state into its slots of buf where it lies
 * beyond tau */
static void prep_clip_one(struct prep *p, size_t i, float *buf, struct macc_neighbour *out)
{
	const size_t n = p->n;
	bool clipped = false;

	if ((double)p->dx[i] > p->rep.tau_x) {
		float *cx = buf + i * n;

		clip_into(n, p->x, p->nb[i].x, p->rep.tau_x, p->dx[i], cx);
		out[i].x = cx;
		clipped = true;
	}
	if (p->mom && (double)p->dv[i] > p->rep.tau_v) {
		float *cv = buf + (p->nnb + i) * n;

		clip_into(n, p->v, p->nb[i].v, p->rep.tau_v, p->dv[i], cv);
		out[i].v = cv;
		clipped = true;
	}
	p->rep.clipped += clipped;
}

/* 4b. the weighted mean of the accepted, each clipped first under clip and clip-auto */
static void prep_mean(struct prep *p, float *buf, struct macc_neighbour *out)
{
	const enum macc_agg_kind kind = p->cfg->agg.kind;
	const bool clip = kind == MACC_AGG_CLIP || kind == MACC_AGG_CLIP_AUTO;

	if (kind == MACC_AGG_CLIP) {
		p->rep.tau_x = p->cfg->agg.tau;
		p->rep.tau_v = p->mom ? p->cfg->agg.tau : INFINITY;
	} else if (kind == MACC_AGG_CLIP_AUTO) {
		p->rep.tau_x = macc_robust_hist_median(&p->nst.x);
		p->rep.tau_v = p->mom ? macc_robust_hist_median(&p->nst.v) : INFINITY;
	}
	for (size_t i = 0; i < p->nnb; i++) {
		const bool acc = p->accepted[i];

		out[i].w = acc ? (float)p->wout[i] : 0.0f;
		out[i].x = acc ? p->nb[i].x : NULL;
		out[i].v = acc && p->mom ? p->nb[i].v : NULL;
		if (clip && acc) {
			prep_clip_one(p, i, buf, out);
		}
	}
}

int macc_robust_prepare(const struct macc_robust_cfg *cfg, struct macc_robust *st,
			struct macc_quarantine *q, enum macc_algo a, uint64_t round, size_t n,
			const float *x, const float *v, double self_w, const struct macc_arrival *nb,
			size_t nnb, float *buf, float *ret_self_w, struct macc_neighbour *out,
			uint8_t *reasons, struct macc_robust_report *report)
{
	struct prep p;
	size_t count;

	if (!prepare_args_ok(cfg, st, a, n, x, v, nb, nnb, buf, ret_self_w, out)) {
		return -EINVAL;
	}
	p.mom = macc_algo_sends_momentum(a);
	if (!all_finite(x, n) || (p.mom && !all_finite(v, n))) {
		return MACC_ENONFINITE;
	}
	p.cfg = cfg;
	p.n = n;
	p.nnb = nnb;
	p.x = x;
	p.v = v;
	p.nb = nb;
	p.cand = 0;
	p.sw = self_w;
	memset(&p.rep, 0, sizeof(p.rep));
	p.rep.bound_x = p.rep.bound_v = INFINITY;
	p.rep.tau_x = p.rep.tau_v = INFINITY;
	memcpy(&p.nst, st, sizeof(p.nst));
	if (q != NULL && nnb > 0) {
		memcpy(p.nq, q, nnb * sizeof(*p.nq));
	}

	prep_classify(&p, q != NULL, round);
	prep_screen(&p);
	prep_learn(&p, q != NULL, round);
	(void)macc_fold_missing(self_w, p.w, p.accepted, nnb, &p.sw, p.wout);

	/* 4. the aggregation rule */
	if (cfg->agg.kind == MACC_AGG_TRIMMED) {
		count = prep_trimmed(&p, buf, out);
	} else {
		prep_mean(&p, buf, out);
		count = nnb;
	}

	/* 5. commit */
	memcpy(st, &p.nst, sizeof(p.nst));
	if (q != NULL && nnb > 0) {
		memcpy(q, p.nq, nnb * sizeof(*p.nq));
	}
	if (reasons != NULL && nnb > 0) {
		memcpy(reasons, p.why, nnb);
	}
	if (report != NULL) {
		*report = p.rep;
	}
	*ret_self_w = (float)p.sw;
	return (int)count;
}

int macc_robust_step(const struct macc_robust_cfg *cfg, struct macc_robust *st,
		     struct macc_quarantine *q, enum macc_algo a, const struct macc_hparams *hp,
		     uint64_t round, size_t n, float *x, float *v, const float *g, double self_w,
		     const struct macc_arrival *nb, size_t nnb, float *buf, float *scratch,
		     struct macc_neighbour *out, uint8_t *reasons, struct macc_robust_report *report)
{
	const float *own;
	float sw = 0.0f;
	int rc;

	if (a == MACC_ALGO_CENTRALIZED || (a == MACC_ALGO_DSGD && scratch == NULL)) {
		return -EINVAL;
	}
	own = macc_algo_outgoing(a, hp, n, x, g, scratch);
	rc = macc_robust_prepare(cfg, st, q, a, round, n, own, v, self_w, nb, nnb, buf, &sw, out,
				 reasons, report);
	if (rc < 0) {
		return rc;
	}
	macc_consensus_step(a, hp, n, x, v, g, sw, out, (size_t)rc, scratch);
	return rc;
}

/* ---- attacks ---- */

int macc_attack_parse(const char *spec, struct macc_attack *ret, struct macc_errmsg *err)
{
	struct macc_attack a = {.kind = MACC_ATTACK_NONE, .s = 0.0};

	if (spec == NULL) {
		return macc_errf(err, MACC_ESPEC, "attack: no spec given");
	}
	if (strcmp(spec, "none") == 0) {
		a.kind = MACC_ATTACK_NONE;
	} else if (strcmp(spec, "signflip") == 0) {
		a.kind = MACC_ATTACK_SIGNFLIP;
	} else if (strcmp(spec, "nan") == 0) {
		a.kind = MACC_ATTACK_NAN;
	} else if (strcmp(spec, "stale") == 0) {
		a.kind = MACC_ATTACK_STALE;
	} else if (strncmp(spec, "scale:", 6) == 0) {
		if (parse_double(spec + 6, &a.s) != 0) {
			return macc_errf(err, MACC_ESPEC, "attack '%s': expected scale:S with a "
					 "finite S", spec);
		}
		a.kind = MACC_ATTACK_SCALE;
	} else if (strncmp(spec, "noise:", 6) == 0) {
		if (parse_double(spec + 6, &a.s) != 0 || !(a.s > 0.0)) {
			return macc_errf(err, MACC_ESPEC, "attack '%s': expected noise:SIGMA with a "
					 "finite SIGMA > 0", spec);
		}
		a.kind = MACC_ATTACK_NOISE;
	} else {
		return macc_errf(err, MACC_ESPEC, "unknown attack '%s' (signflip, scale:S, "
				 "noise:SIGMA, nan, stale)", spec);
	}
	*ret = a;
	return 0;
}

int macc_byzantine_parse(const char *spec, uint32_t *ret_k, struct macc_attack *ret,
			 struct macc_errmsg *err)
{
	const char *colon = spec != NULL ? strchr(spec, ':') : NULL;
	struct macc_attack a;
	uint32_t k = 0;
	int rc;

	if (colon == NULL || parse_u32(spec, (size_t)(colon - spec), UINT32_MAX, &k) != 0) {
		return macc_errf(err, MACC_ESPEC, "byzantine '%s': expected K:ATTACK with K a "
				 "number of agents, e.g. 1:signflip", spec != NULL ? spec : "");
	}
	rc = macc_attack_parse(colon + 1, &a, err);
	if (rc != 0) {
		return rc;
	}
	*ret_k = k;
	*ret = a;
	return 0;
}

int macc_attack_format(const struct macc_attack *a, char *buf, size_t cap)
{
	switch (a->kind) {
	case MACC_ATTACK_NONE:
		return copy_str(buf, cap, "none");
	case MACC_ATTACK_SIGNFLIP:
		return copy_str(buf, cap, "signflip");
	case MACC_ATTACK_SCALE:
		return format_double(buf, cap, "scale:", a->s);
	case MACC_ATTACK_NOISE:
		return format_double(buf, cap, "noise:", a->s);
	case MACC_ATTACK_NAN:
		return copy_str(buf, cap, "nan");
	case MACC_ATTACK_STALE:
		return copy_str(buf, cap, "stale");
	}
	return -EINVAL;
}

void macc_attack_apply(const struct macc_attack *a, size_t n, const float *z, const float *stale,
		       float *out, struct macc_rng *rng)
{
	switch (a->kind) {
	case MACC_ATTACK_SIGNFLIP:
		for (size_t i = 0; i < n; i++) {
			out[i] = -z[i];
		}
		return;
	case MACC_ATTACK_SCALE: {
		const float s = (float)a->s;

		for (size_t i = 0; i < n; i++) {
			out[i] = s * z[i];
		}
		return;
	}
	case MACC_ATTACK_NOISE:
		for (size_t i = 0; i < n; i++) {
			out[i] = (float)((double)z[i] + a->s * macc_rng_normal(rng));
		}
		return;
	case MACC_ATTACK_NAN:
		if (out != z) {
			memmove(out, z, n * sizeof(*out));
		}
		if (n > 0) {
			const size_t p = (size_t)macc_rng_below(rng, n);

			out[p] = NAN;
			if (n > 1) {
				out[(p + 1 + (size_t)macc_rng_below(rng, n - 1)) % n] = INFINITY;
			}
		}
		return;
	case MACC_ATTACK_STALE:
		if (out != stale) {
			memmove(out, stale, n * sizeof(*out));
		}
		return;
	case MACC_ATTACK_NONE:
		break;
	}
	if (out != z) {
		memmove(out, z, n * sizeof(*out));
	}
}
