/*
 * agree.c - the standardisation agreement of one agent (agree.h has the contract and the maths).
 *
 * The state is a step counter and two vectors: s, the statistics of the average phase, and cur,
 * the float32 transform of the exact phase. A step screens every due neighbour's vector first
 * (validate, then commit: a vector that fails is handled exactly like one that did not arrive),
 * then applies one leaf: macc_agree_mix after macc_fold_missing (the fold of a training round),
 * or macc_agree_min. At the boundary between the phases the own estimate is made once with
 * data.h's rule (macc_standardizer_from_stats), so the simulator and the daemon turn the same
 * doubles into the same floats; it is also the reference that the exact phase screens against.
 *
 * Outgoing values are copied into `out` when asked for, and a step never writes `out`: the
 * simulator forms every agent's message first and then steps every agent, like a round.
 *
 * Build flags: the consensus library is built with -ffp-contract=off, so a * b + c is two
 * roundings on every machine (no fused multiply-add) and the mix gives the same bits everywhere.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/agree.h"
#include "macc/consensus.h"
#include "macc/data.h"

/* Cauchy-Schwarz slack: rounding of the sums and of the mixing, far above both. */
#define CS_SLACK 1e-9

static const char *const reason_names[MACC_AGREE_NREASONS] = {
	"ok", "missing", "malformed", "nonfinite", "range", "far",
};

const char *macc_agree_reason_name(enum macc_agree_reason r)
{
	return (unsigned)r < MACC_AGREE_NREASONS ? reason_names[r] : "unknown";
}

bool macc_agree_default_on(const char *data_spec)
{
	return data_spec != NULL && strncmp(data_spec, "csv:", 4) == 0;
}

size_t macc_agree_nvalues(const struct macc_agree_cfg *c, uint64_t step)
{
	if (step < c->avg_steps) {
		return 1 + 2 * c->dim;
	}
	if (step <= (uint64_t)c->avg_steps + c->exact_steps) {
		return 2 * c->dim;
	}
	return 0;
}

/* ---- screening ------------------------------------------------------------------------------ */

static bool all_finite(const double *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!isfinite(v[i])) {
			return false;
		}
	}
	return true;
}

/* One feature k of a statistics vector: mean, mean square and the sign of the variance. */
static enum macc_agree_reason check_feature(const double *v, size_t dim, size_t k,
					    struct macc_errmsg *err)
{
	const double cnt = v[0], sum = v[1 + k], sq = v[1 + dim + k];
	const double fmax = (double)FLT_MAX;

	if (cnt == 0.0) {
		if (sum != 0.0 || sq != 0.0) {
			macc_errf(err, MACC_EMALFORMED, "feature %zu: sums %g, %g with count 0", k,
				  sum, sq);
			return MACC_AGREE_RANGE;
		}
		return MACC_AGREE_OK;
	}
	if (!(fabs(sum / cnt) <= fmax) || !(sq >= 0.0) || !(sq / cnt <= fmax * fmax)) {
		macc_errf(err, MACC_EMALFORMED, "feature %zu: mean %g or mean square %g out of "
			  "range", k, sum / cnt, sq / cnt);
		return MACC_AGREE_RANGE;
	}
	if (sum * sum > cnt * sq * (1.0 + CS_SLACK)) {
		macc_errf(err, MACC_EMALFORMED, "feature %zu: negative variance (sum %g, sum of "
			  "squares %g, count %g)", k, sum, sq, cnt);
		return MACC_AGREE_RANGE;
	}
	return MACC_AGREE_OK;
}

/* A statistics vector [count, sum[d], sumsq[d]] (average phase, and the own one at init). */
static enum macc_agree_reason check_stats(const double *v, size_t dim, struct macc_errmsg *err)
{
	enum macc_agree_reason r = MACC_AGREE_OK;

	if (!all_finite(v, 1 + 2 * dim)) {
		macc_errf(err, MACC_ENONFINITE, "statistics with a NaN or an infinity");
		return MACC_AGREE_NONFINITE;
	}
	if (!(v[0] >= 0.0 && v[0] <= MACC_AGREE_MAX_COUNT)) {
		macc_errf(err, MACC_EMALFORMED, "count %g outside [0, 2^40]", v[0]);
		return MACC_AGREE_RANGE;
	}
	for (size_t k = 0; k < dim && r == MACC_AGREE_OK; k++) {
		r = check_feature(v, dim, k, err);
	}
	return r;
}

/* A transform [mean[d], inv_std[d]] carried as doubles: finite float32 values in bounds. */
static enum macc_agree_reason check_transform(const double *v, size_t dim,
					      struct macc_errmsg *err)
{
	if (!all_finite(v, 2 * dim)) {
		macc_errf(err, MACC_ENONFINITE, "transform with a NaN or an infinity");
		return MACC_AGREE_NONFINITE;
	}
	for (size_t i = 0; i < 2 * dim; i++) {
		if ((double)(float)v[i] != v[i]) {
			macc_errf(err, MACC_EMALFORMED, "value %zu (%.17g) is not a float32", i,
				  v[i]);
			return MACC_AGREE_MALFORMED;
		}
	}
	for (size_t k = 0; k < dim; k++) {
		double inv = v[dim + k];

		if (!(inv > 0.0 && inv <= MACC_AGREE_MAX_INV_STD)) {
			macc_errf(err, MACC_EMALFORMED, "feature %zu: inverse deviation %g outside "
				  "(0, %g]", k, inv, MACC_AGREE_MAX_INV_STD);
			return MACC_AGREE_RANGE;
		}
	}
	return MACC_AGREE_OK;
}

/* The exact phase's tolerance against the agent's own estimate ref = [mean_0[d], inv_0[d]]. */
static enum macc_agree_reason check_near(const float *ref, const double *v, size_t dim,
					 struct macc_errmsg *err)
{
	for (size_t k = 0; k < dim; k++) {
		double m0 = ref[k], i0 = ref[dim + k], inv = v[dim + k];

		if (!(fabs(v[k] - m0) * i0 <= MACC_AGREE_TOL_MEAN) ||
		    !(inv * MACC_AGREE_TOL_SCALE >= i0 && inv <= i0 * MACC_AGREE_TOL_SCALE)) {
			macc_errf(err, MACC_EMALFORMED, "feature %zu: mean %g, inverse deviation "
				  "%g too far from this agent's %g, %g", k, v[k], inv, m0, i0);
			return MACC_AGREE_FAR;
		}
	}
	return MACC_AGREE_OK;
}

enum macc_agree_reason macc_agree_check(const struct macc_agree *a, uint64_t step,
					const double *v, size_t n, struct macc_errmsg *err)
{
	const size_t dim = a->cfg.dim;
	size_t want = macc_agree_nvalues(&a->cfg, step);
	enum macc_agree_reason r;

	if (want == 0 || n != want || v == NULL) {
		macc_errf(err, MACC_EMALFORMED, "%zu values for step %llu, which carries %zu", n,
			  (unsigned long long)step, want);
		return MACC_AGREE_MALFORMED;
	}
	if (step < a->cfg.avg_steps) {
		return check_stats(v, dim, err);
	}
	r = check_transform(v, dim, err);
	if (r == MACC_AGREE_OK && step < (uint64_t)a->cfg.avg_steps + a->cfg.exact_steps) {
		r = check_near(a->ref, v, dim, err);
	}
	return r;
}

/* ---- leaves --------------------------------------------------------------------------------- */

void macc_agree_mix(size_t len, double *s, double self_w, const double *w,
		    const double *const *nb, size_t nnb)
{
	for (size_t k = 0; k < len; k++) {
		double acc = self_w * s[k];

		for (size_t i = 0; i < nnb; i++) {
			if (w[i] != 0.0) {
				acc += w[i] * nb[i][k];
			}
		}
		s[k] = acc;
	}
}

/* The bits of a float as an unsigned key in the IEEE-754 total order (NaNs aside). */
static uint32_t order_key(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return (u & 0x80000000u) != 0 ? ~u : u | 0x80000000u;
}

size_t macc_agree_min(size_t n, float *v, const double *const *nb, size_t nnb)
{
	size_t lowered = 0;

	for (size_t k = 0; k < n; k++) {
		float best = v[k];

		for (size_t i = 0; i < nnb; i++) {
			if (nb[i] != NULL) {
				float c = (float)nb[i][k];

				best = order_key(c) < order_key(best) ? c : best;
			}
		}
		lowered += order_key(best) != order_key(v[k]);
		v[k] = best;
	}
	return lowered;
}

int macc_agree_diameter(const uint8_t *adj, uint32_t n, uint32_t *ret)
{
	uint32_t *dist = NULL, *queue = NULL, diam = 0;
	int rc = 0;

	dist = malloc((n ? n : 1) * sizeof(*dist));
	queue = malloc((n ? n : 1) * sizeof(*queue));
	if (dist == NULL || queue == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t src = 0; src < n && rc == 0; src++) {
		uint32_t head = 0, tail = 0, seen = 1;

		for (uint32_t j = 0; j < n; j++) {
			dist[j] = UINT32_MAX;
		}
		dist[src] = 0;
		queue[tail++] = src;
		while (head < tail) {
			uint32_t a = queue[head++];

			for (uint32_t b = 0; b < n; b++) {
				if (adj[(size_t)a * n + b] != 0 && dist[b] == UINT32_MAX) {
					dist[b] = dist[a] + 1;
					diam = dist[b] > diam ? dist[b] : diam;
					queue[tail++] = b;
					seen++;
				}
			}
		}
		rc = seen == n ? 0 : MACC_EGRAPH;
	}
	if (rc == 0) {
		*ret = diam;
	}
out:
	free(dist);
	free(queue);
	return rc;
}

/* ---- one agent ------------------------------------------------------------------------------ */

static void *xcalloc(size_t n, size_t size, int *rc)
{
	void *p = *rc == 0 ? calloc(n ? n : 1, size) : NULL;

	if (*rc == 0 && p == NULL) {
		*rc = -ENOMEM;
	}
	return p;
}

/* The own estimate from s, at the end of the average phase (S = 0: at init). */
static void estimate(struct macc_agree *a)
{
	const size_t dim = a->cfg.dim;

	macc_standardizer_from_stats(a->s, dim, a->cur, a->cur + dim);
	memcpy(a->ref, a->cur, 2 * dim * sizeof(float));
}

int macc_agree_init(struct macc_agree *a, const struct macc_agree_cfg *c, const double *stats,
		    struct macc_errmsg *err)
{
	struct macc_errmsg why = {{0}};
	int rc = 0;

	memset(a, 0, sizeof(*a));
	if (c->dim == 0 || c->dim > MACC_DATA_MAX_DIM ||
	    (uint64_t)c->avg_steps + c->exact_steps > MACC_AGREE_MAX_STEPS) {
		return macc_errf(err, MACC_ECONFIG, "standardisation: %zu features, %u + %u steps "
				 "(at most %u)", c->dim, c->avg_steps, c->exact_steps,
				 MACC_AGREE_MAX_STEPS);
	}
	if (check_stats(stats, c->dim, &why) != MACC_AGREE_OK) {
		return macc_errf(err, MACC_EDATA, "standardisation: the statistics of this agent's "
				 "data: %.400s", why.text);
	}
	a->cfg = *c;
	a->len = 1 + 2 * c->dim;
	a->w = xcalloc(c->nnb, sizeof(double), &rc);
	a->wout = xcalloc(c->nnb, sizeof(double), &rc);
	a->ok = xcalloc(c->nnb, sizeof(bool), &rc);
	a->nbv = xcalloc(c->nnb, sizeof(*a->nbv), &rc);
	a->reasons = xcalloc(c->nnb, 1, &rc);
	a->s = xcalloc(a->len, sizeof(double), &rc);
	a->out = xcalloc(a->len, sizeof(double), &rc);
	a->cur = xcalloc(2 * c->dim, sizeof(float), &rc);
	a->ref = xcalloc(2 * c->dim, sizeof(float), &rc);
	if (rc < 0) {
		macc_agree_finish(a);
		return macc_errf(err, rc, "standardisation: out of memory");
	}
	memcpy(a->s, stats, a->len * sizeof(double));
	a->self_w = 1.0;
	if (c->avg_steps == 0) {
		estimate(a);
	}
	return 0;
}

void macc_agree_finish(struct macc_agree *a)
{
	if (a == NULL) {
		return;
	}
	free(a->w);
	free(a->wout);
	free(a->ok);
	free(a->nbv);
	free(a->reasons);
	free(a->s);
	free(a->out);
	free(a->cur);
	free(a->ref);
	memset(a, 0, sizeof(*a));
}

void macc_agree_set_row(struct macc_agree *a, double self_w, const double *w)
{
	a->self_w = self_w;
	memcpy(a->w, w, a->cfg.nnb * sizeof(double));
}

uint64_t macc_agree_step_no(const struct macc_agree *a)
{
	return a->step;
}

bool macc_agree_done(const struct macc_agree *a)
{
	return a->adopted || a->step >= (uint64_t)a->cfg.avg_steps + a->cfg.exact_steps;
}

size_t macc_agree_outgoing(struct macc_agree *a, const double **ret_values)
{
	size_t n = macc_agree_done(a) ? 2 * a->cfg.dim : macc_agree_nvalues(&a->cfg, a->step);

	if (!macc_agree_done(a) && a->step < a->cfg.avg_steps) {
		memcpy(a->out, a->s, n * sizeof(double));
	} else {
		for (size_t i = 0; i < n; i++) {
			a->out[i] = (double)a->cur[i];
		}
	}
	*ret_values = a->out;
	return n;
}

/* Screen every due neighbour's vector for this step into ok[] / nbv[] / reasons[]. */
static void screen(struct macc_agree *a, const struct macc_agree_in *in,
		   struct macc_agree_report *rep)
{
	for (size_t i = 0; i < a->cfg.nnb; i++) {
		enum macc_agree_reason r = MACC_AGREE_MISSING;

		a->ok[i] = false;
		a->nbv[i] = NULL;
		if (a->w[i] == 0.0) {
			a->reasons[i] = MACC_AGREE_MISSING; /* not due: not counted */
			continue;
		}
		if (in[i].arrived) {
			r = macc_agree_check(a, a->step, in[i].v, in[i].n, NULL);
		}
		if (r == MACC_AGREE_OK) {
			a->ok[i] = true;
			a->nbv[i] = in[i].v;
		}
		a->reasons[i] = (uint8_t)r;
		rep->count[r]++;
		a->totals[r]++;
	}
}

void macc_agree_step(struct macc_agree *a, const struct macc_agree_in *in,
		     struct macc_agree_report *ret)
{
	struct macc_agree_report rep;
	const size_t dim = a->cfg.dim;

	memset(&rep, 0, sizeof(rep));
	if (!macc_agree_done(a)) {
		screen(a, in, &rep);
		if (a->step < a->cfg.avg_steps) {
			double self_w;

			macc_fold_missing(a->self_w, a->w, a->ok, a->cfg.nnb, &self_w, a->wout);
			macc_agree_mix(a->len, a->s, self_w, a->wout, a->nbv, a->cfg.nnb);
			if (a->step + 1 == a->cfg.avg_steps) {
				estimate(a);
			}
		} else {
			rep.lowered = (uint32_t)macc_agree_min(2 * dim, a->cur, a->nbv, a->cfg.nnb);
		}
		a->step++;
	}
	if (ret != NULL) {
		*ret = rep;
	}
}

int macc_agree_result(const struct macc_agree *a, float *mean, float *inv_std)
{
	if (!macc_agree_done(a)) {
		return MACC_ESTATE;
	}
	memcpy(mean, a->cur, a->cfg.dim * sizeof(float));
	memcpy(inv_std, a->cur + a->cfg.dim, a->cfg.dim * sizeof(float));
	return 0;
}

int macc_agree_adopt(struct macc_agree *a, const double *v, size_t n, struct macc_errmsg *err)
{
	const size_t dim = a->cfg.dim;
	enum macc_agree_reason r;

	if (n != 2 * dim || v == NULL) {
		return macc_errf(err, MACC_EMALFORMED, "agreed transform of %zu values, expected "
				 "%zu", n, 2 * dim);
	}
	r = check_transform(v, dim, err);
	if (r != MACC_AGREE_OK) {
		return r == MACC_AGREE_NONFINITE ? MACC_ENONFINITE
		       : r == MACC_AGREE_RANGE	 ? MACC_ECONFIG
						 : MACC_EMALFORMED;
	}
	for (size_t i = 0; i < n; i++) {
		a->cur[i] = (float)v[i];
	}
	a->adopted = true;
	return 0;
}

const double *macc_agree_stats(const struct macc_agree *a)
{
	return a->s;
}

void macc_agree_counts(const struct macc_agree *a, uint64_t *count)
{
	memcpy(count, a->totals, sizeof(a->totals));
}

enum macc_agree_reason macc_agree_outcome(const struct macc_agree *a, size_t i)
{
	return (enum macc_agree_reason)a->reasons[i];
}
