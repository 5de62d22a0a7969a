/*
 * algo.c - the update equations of macc-algorithms(7) as pure functions over flat float vectors.
 *
 * Bit-identical results on every path. The mix sum_l w_jl z_l is always formed the same way:
 * acc = self_w * z_self, then acc += w * z_l for the neighbours in the order given (ascending
 * agent index), every product and sum rounded to float32. This file is built with
 * -ffp-contract=off, so no compiler may fuse w * z + acc into an FMA behind our back, and the
 * kernels are fixed C loops rather than BLAS calls: OpenBLAS picks its kernel by CPU at run time
 * (FMA or not), a fixed loop gives the same bits everywhere, and for these memory-bound O(n)
 * sweeps it is as fast. The simulator and the daemon both call macc_consensus_step(), so they
 * agree bit for bit for the same inputs.
 *
 * Performance: a step is one pass over memory. Vectors are processed in blocks of BLOCK floats;
 * for each block the mixes are accumulated in two small stack buffers (which stay in L1), then
 * the new v and x are written in place. Every input stream is read once and x, v are written
 * once, so no n-sized temporaries are needed (the caller's 2n scratch is not touched). Because a
 * block's mixes are complete before that block is written, a neighbour pointer may even alias
 * the agent's own x or v.
 *
 * Special cases that are exact by construction: omega == 0 takes the cdmsgd momentum path (the
 * neighbours' v are not read), so dmsgd with omega = 0 equals cdmsgd bit for bit; omega == 1
 * skips the (1 - omega) * v term. A neighbour with weight 0 is skipped (its x may be NULL), so a
 * folded neighbour left in the list and a removed one give the same bits.
 */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "macc/consensus.h"

enum {
	BLOCK = 512,
};

static const char *const names[] = {
	[MACC_ALGO_DMSGD] = "dmsgd",
	[MACC_ALGO_CDMSGD] = "cdmsgd",
	[MACC_ALGO_CDSGD] = "cdsgd",
	[MACC_ALGO_DSGD] = "dsgd",
	[MACC_ALGO_CENTRALIZED] = "centralized",
};

int macc_algo_parse(const char *name, enum macc_algo *ret)
{
	for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(name, names[i]) == 0) {
			*ret = (enum macc_algo)i;
			return 0;
		}
	}
	return MACC_ESPEC;
}

const char *macc_algo_name(enum macc_algo a)
{
	if ((unsigned)a < sizeof(names) / sizeof(names[0])) {
		return names[a];
	}
	return "unknown";
}

bool macc_algo_sends_momentum(enum macc_algo a)
{
	return a == MACC_ALGO_DMSGD;
}

bool macc_algo_sends_after_grad(enum macc_algo a)
{
	return a == MACC_ALGO_DSGD;
}

/* The dsgd half-step y = x - alpha * g, one expression shared by the sender and the step. */
static inline float half_step(float x, float alpha, float g)
{
	return x - alpha * g;
}

const float *macc_algo_outgoing(enum macc_algo a, const struct macc_hparams *hp, size_t n,
				const float *x, const float *g, float *out)
{
	if (a != MACC_ALGO_DSGD) {
		return x;
	}
	for (size_t i = 0; i < n; i++) {
		out[i] = half_step(x[i], hp->alpha, g[i]);
	}
	return out;
}

/* acc[0..m) += w * z[0..m) for every neighbour with w != 0, in the given order. `mom` selects
 * the neighbours' v instead of their x. */
static void mix_add(float *acc, size_t off, size_t m, const struct macc_neighbour *nb, size_t nnb,
		    bool mom)
{
	for (size_t k = 0; k < nnb; k++) {
		const float w = nb[k].w;

		if (w == 0.0f) {
			continue;
		}
		const float *z = (mom ? nb[k].v : nb[k].x) + off;

		for (size_t i = 0; i < m; i++) {
			acc[i] += w * z[i];
		}
	}
}

static void scale(float *acc, float w, const float *z, size_t m)
{
	for (size_t i = 0; i < m; i++) {
		acc[i] = w * z[i];
	}
}

void macc_consensus_step(enum macc_algo a, const struct macc_hparams *hp, size_t n, float *x,
			 float *v, const float *g, float self_w, const struct macc_neighbour *nb,
			 size_t nnb, float *scratch)
{
	const float alpha = hp->alpha, beta = hp->beta, omega = hp->omega;
	const float keep = 1.0f - omega;
	const bool mix_v = a == MACC_ALGO_DMSGD && omega != 0.0f;
	const bool momentum = a == MACC_ALGO_DMSGD || a == MACC_ALGO_CDMSGD;
	float mx[BLOCK], mv[BLOCK];

	(void)scratch;
	assert(a != MACC_ALGO_CENTRALIZED); /* a programming error: use macc_centralized_step */
	for (size_t off = 0; off < n; off += BLOCK) {
		const size_t m = n - off < BLOCK ? n - off : BLOCK;
		float *xb = x + off;
		const float *gb = g + off;

		/* mix(x)_j, or mix(y)_j for dsgd with the own half-step formed on the fly. */
		if (a == MACC_ALGO_DSGD) {
			for (size_t i = 0; i < m; i++) {
				mx[i] = self_w * half_step(xb[i], alpha, gb[i]);
			}
		} else {
			scale(mx, self_w, xb, m);
		}
		mix_add(mx, off, m, nb, nnb, false);

		if (!momentum) {
			if (a == MACC_ALGO_DSGD) {
				memcpy(xb, mx, m * sizeof(*xb));
			} else {
				/* cdsgd: x = mix(x) - alpha * g */
				for (size_t i = 0; i < m; i++) {
					xb[i] = mx[i] - alpha * gb[i];
				}
			}
			continue;
		}

		float *vb = v + off;

		if (mix_v) {
			scale(mv, self_w, vb, m);
			mix_add(mv, off, m, nb, nnb, true);
			if (omega != 1.0f) {
				for (size_t i = 0; i < m; i++) {
					mv[i] = omega * mv[i] + keep * vb[i];
				}
			}
		} else {
			memcpy(mv, vb, m * sizeof(*mv));
		}
		/* v = beta * m - alpha * g; x = mix(x) + v, or with Nesterov
		 * x = mix(x) + beta * v - alpha * g. */
		if (hp->nesterov) {
			for (size_t i = 0; i < m; i++) {
				const float nv = beta * mv[i] - alpha * gb[i];

				vb[i] = nv;
				xb[i] = mx[i] + beta * nv - alpha * gb[i];
			}
		} else {
			for (size_t i = 0; i < m; i++) {
				const float nv = beta * mv[i] - alpha * gb[i];

				vb[i] = nv;
				xb[i] = mx[i] + nv;
			}
		}
	}
}

void macc_centralized_step(const struct macc_hparams *hp, size_t n, float *x, float *v,
			   const float *gbar)
{
	const float alpha = hp->alpha, beta = hp->beta;

	for (size_t i = 0; i < n; i++) {
		const float nv = beta * v[i] - alpha * gbar[i];

		v[i] = nv;
		x[i] = hp->nesterov ? x[i] + beta * nv - alpha * gbar[i] : x[i] + nv;
	}
}

size_t macc_fold_missing(double self_w, const double *w, const bool *arrived, size_t nnb,
			 double *ret_self_w, double *w_out)
{
	double s = self_w;
	size_t missing = 0;

	for (size_t i = 0; i < nnb; i++) {
		if (arrived[i]) {
			w_out[i] = w[i];
		} else {
			s += w[i];
			w_out[i] = 0.0;
			missing++;
		}
	}
	*ret_self_w = s;
	return missing;
}
