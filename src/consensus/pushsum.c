/*
 * pushsum.c - push-sum forms of the algorithms for directed graphs (macc-algorithms(7), "Push-sum
 * forms"; Kempe et al. 2003, Assran et al. 2019).
 *
 * P is column-stochastic: sender j splits its mass equally among itself and its out-neighbours,
 * p_lj = 1/(outdeg_j + 1). The receiver applies the sender's share, so agent j's incoming row is
 * built from out-degrees alone (its own and its in-neighbours'), like macc_weights_row builds the
 * undirected row from degrees.
 *
 * The steps are taken on the numerators z (parameters) and u (momentum), never on the de-biased
 * x = z / w (see macc-algorithms(7): a step on x followed by z = w x weights each agent's
 * gradient by its w and converges to a biased point). Written that way, sgp is exactly cdmsgd's
 * equations and push-sum dmsgd exactly dmsgd's, with push(.) for mix(.), so macc_pushsum_step is
 * macc_consensus_step with the push shares as weights: one code path, one summation order (self
 * first, then in-neighbours ascending), and bit-equality with the undirected algorithms whenever
 * the shares equal the undirected weights (e.g. a ring: 1/3 everywhere).
 *
 * The weight w is a double (the STATE message carries it as f64). sum_j w_j is conserved to
 * double rounding; sum_j z_j to float rounding of the mix.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"

double macc_pushsum_share(uint32_t outdeg)
{
	return 1.0 / (1.0 + (double)outdeg);
}

void macc_pushsum_row(uint32_t self_outdeg, const uint32_t *in_outdeg, size_t nin,
		      double *ret_self_p, double *p_in)
{
	for (size_t i = 0; i < nin; i++) {
		p_in[i] = macc_pushsum_share(in_outdeg[i]);
	}
	*ret_self_p = macc_pushsum_share(self_outdeg);
}

int macc_pushsum_matrix(const struct macc_digraph *g, double *P)
{
	uint32_t n = g->n;
	uint32_t *outdeg = malloc(((size_t)n + 1) * sizeof(*outdeg));

	if (outdeg == NULL) {
		return -ENOMEM;
	}
	for (uint32_t j = 0; j < n; j++) {
		outdeg[j] = macc_digraph_outdeg(g, j);
	}
	memset(P, 0, (size_t)n * n * sizeof(*P));
	for (uint32_t j = 0; j < n; j++) {
		P[(size_t)j * n + j] = macc_pushsum_share(outdeg[j]);
		for (uint32_t l = 0; l < n; l++) {
			if (g->adj[(size_t)l * n + j]) {
				P[(size_t)j * n + l] = macc_pushsum_share(outdeg[l]);
			}
		}
	}
	free(outdeg);
	return 0;
}

double macc_pushsum_weight(double self_p, double self_w, const double *p_in, const double *w_in,
			   size_t nin)
{
	double w = self_p * self_w;

	for (size_t i = 0; i < nin; i++) {
		w += p_in[i] * w_in[i];
	}
	return w;
}

int macc_pushsum_algo_parse(const char *name, enum macc_algo *ret_base)
{
	if (name == NULL) {
		return MACC_ESPEC;
	}
	if (strcmp(name, "sgp") == 0) {
		*ret_base = MACC_ALGO_CDMSGD;
		return 0;
	}
	if (strcmp(name, "dmsgd") == 0) {
		*ret_base = MACC_ALGO_DMSGD;
		return 0;
	}
	return MACC_ESPEC;
}

int macc_pushsum_step(enum macc_algo base, const struct macc_hparams *hp, size_t n, float *z,
		      float *u, const float *g, float self_p, const struct macc_neighbour *nb,
		      size_t nnb, float *scratch)
{
	if (base != MACC_ALGO_CDMSGD && base != MACC_ALGO_DMSGD) {
		return MACC_ESPEC;
	}
	macc_consensus_step(base, hp, n, z, u, g, self_p, nb, nnb, scratch);
	return 0;
}

void macc_pushsum_debias(size_t n, const float *z, double w, float *x)
{
	const float wf = (float)w;

	for (size_t i = 0; i < n; i++) {
		x[i] = z[i] / wf;
	}
}
