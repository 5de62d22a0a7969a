/*
 * weights.c - mixing weights: building W from a graph, validating explicit weights, and the
 * spectral gap.
 *
 * Every row of W is made by macc_weights_row() from degrees alone, in ascending neighbour
 * index, with the self weight computed last as 1 - sum of the neighbour weights in that order.
 * The daemon only knows its own row (it learns its neighbours' degrees in the handshake) and calls
 * the same function, so the simulator's W and the daemon's row are the same doubles bit for bit.
 *
 * The spectral gap 1 - |lambda_2(W)| uses LAPACK from OpenBLAS: dsyev for a symmetric W (the
 * normal case: Metropolis weights are symmetric), dgeev for a merely row-stochastic one (the
 * eigenvalues of W and W^T agree, so the row-major matrix is handed to column-major LAPACK as
 * is). There is no LAPACKE header in the build, so the Fortran prototypes are declared here,
 * with gfortran's hidden string-length arguments passed explicitly.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"

void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
	    double *w, double *work, const int *lwork, int *info, size_t jobz_len,
	    size_t uplo_len);
void dgeev_(const char *jobvl, const char *jobvr, const int *n, double *a, const int *lda,
	    double *wr, double *wi, double *vl, const int *ldvl, double *vr, const int *ldvr,
	    double *work, const int *lwork, int *info, size_t jobvl_len, size_t jobvr_len);

enum {
	MAX_EIG_N = 8192, /* n*n doubles for LAPACK: 512 MiB at this bound */
};

static const double ROW_TOL = 1e-9;

int macc_weights_parse(const char *name, enum macc_weights_kind *ret)
{
	if (name == NULL) {
		return MACC_ESPEC;
	}
	if (strcmp(name, "metropolis") == 0 || strcmp(name, "metropolis-hastings") == 0) {
		*ret = MACC_WEIGHTS_METROPOLIS;
		return 0;
	}
	if (strcmp(name, "uniform") == 0) {
		*ret = MACC_WEIGHTS_UNIFORM;
		return 0;
	}
	return MACC_ESPEC;
}

double macc_metropolis_weight(uint32_t deg_j, uint32_t deg_l)
{
	uint32_t m = deg_j > deg_l ? deg_j : deg_l;

	return 1.0 / (1.0 + (double)m);
}

void macc_weights_row(enum macc_weights_kind kind, uint32_t self_deg, const uint32_t *nb_deg,
		      size_t nnb, double *ret_self_w, double *w_nb)
{
	double sum = 0.0;

	for (size_t i = 0; i < nnb; i++) {
		if (kind == MACC_WEIGHTS_UNIFORM) {
			w_nb[i] = 1.0 / (1.0 + (double)self_deg);
		} else {
			w_nb[i] = macc_metropolis_weight(self_deg, nb_deg[i]);
		}
		sum += w_nb[i];
	}
	*ret_self_w = 1.0 - sum;
}

int macc_weights_build(const struct macc_graph *g, enum macc_weights_kind kind, double *W)
{
	uint32_t n = g->n;
	uint32_t *deg = malloc(((size_t)n + 1) * sizeof(*deg));
	uint32_t *nbdeg = malloc(((size_t)n + 1) * sizeof(*nbdeg));
	double *wnb = malloc(((size_t)n + 1) * sizeof(*wnb));
	int rc = 0;

	if (deg == NULL || nbdeg == NULL || wnb == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (kind != MACC_WEIGHTS_METROPOLIS && kind != MACC_WEIGHTS_UNIFORM) {
		rc = MACC_ESPEC;
		goto out;
	}
	for (uint32_t j = 0; j < n; j++) {
		deg[j] = macc_graph_degree(g, j);
	}
	memset(W, 0, (size_t)n * n * sizeof(*W));
	for (uint32_t j = 0; j < n; j++) {
		const uint8_t *row = g->adj + (size_t)j * n;
		size_t k = 0;
		double self_w;

		for (uint32_t l = 0; l < n; l++) {
			if (row[l]) {
				nbdeg[k++] = deg[l];
			}
		}
		macc_weights_row(kind, deg[j], nbdeg, k, &self_w, wnb);
		W[(size_t)j * n + j] = self_w;
		k = 0;
		for (uint32_t l = 0; l < n; l++) {
			if (row[l]) {
				W[(size_t)j * n + l] = wnb[k++];
			}
		}
	}
out:
	free(deg);
	free(nbdeg);
	free(wnb);
	return rc;
}

/* Strong connectivity of the directed support of W (w_jl > 0, j != l): a BFS forwards and one
 * backwards from agent 0. Returns the first agent not reached, or n if all are. */
static uint32_t unreached(const double *W, uint32_t n, uint32_t *queue, uint8_t *seen, bool back)
{
	uint32_t head = 0, tail = 0;

	memset(seen, 0, n);
	seen[0] = 1;
	queue[tail++] = 0;
	while (head < tail) {
		uint32_t a = queue[head++];

		for (uint32_t b = 0; b < n; b++) {
			double w = back ? W[(size_t)b * n + a] : W[(size_t)a * n + b];

			if (w > 0.0 && !seen[b]) {
				seen[b] = 1;
				queue[tail++] = b;
			}
		}
	}
	for (uint32_t j = 0; j < n; j++) {
		if (!seen[j]) {
			return j;
		}
	}
	return n;
}

int macc_weights_validate(const struct macc_graph *g, const double *W, bool need_doubly,
			  struct macc_errmsg *err)
{
	uint32_t n = g->n;
	uint32_t *queue;
	uint8_t *seen;
	int rc = 0;

	if (!macc_graph_connected(g)) {
		return macc_errf(err, MACC_EGRAPH, "mixing weights: the graph on %u agents is not "
				 "connected", n);
	}
	for (uint32_t j = 0; j < n; j++) {
		double sum = 0.0;

		for (uint32_t l = 0; l < n; l++) {
			double w = W[(size_t)j * n + l];

			if (!isfinite(w) || w < 0.0) {
				return macc_errf(err, MACC_EGRAPH, "mixing weights: W[%u][%u] = %g must "
						 "be a finite number >= 0", j, l, w);
			}
			if (w > 0.0 && l != j && !g->adj[(size_t)j * n + l]) {
				return macc_errf(err, MACC_EGRAPH, "mixing weights: W[%u][%u] = %g but "
						 "agents %u and %u are not neighbours", j, l, w, j, l);
			}
			sum += w;
		}
		if (fabs(sum - 1.0) > ROW_TOL) {
			return macc_errf(err, MACC_EGRAPH, "mixing weights: row %u sums to %.12g, "
					 "must be 1 (within %g)", j, sum, ROW_TOL);
		}
	}
	for (uint32_t l = 0; need_doubly && l < n; l++) {
		double sum = 0.0;

		for (uint32_t j = 0; j < n; j++) {
			sum += W[(size_t)j * n + l];
		}
		if (fabs(sum - 1.0) > ROW_TOL) {
			return macc_errf(err, MACC_EGRAPH, "mixing weights: column %u sums to %.12g, "
					 "must be 1 (within %g) for a doubly stochastic W", l, sum,
					 ROW_TOL);
		}
	}
	queue = malloc((size_t)n * sizeof(*queue));
	seen = malloc(n);
	if (queue == NULL || seen == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (int back = 0; back < 2; back++) {
		uint32_t u = unreached(W, n, queue, seen, back);

		if (u < n) {
			rc = macc_errf(err, MACC_EGRAPH, "mixing weights: zero weights cut agent %u "
				       "off (%s agent 0)", u, back ? "cannot reach" : "unreachable from");
			goto out;
		}
	}
out:
	free(queue);
	free(seen);
	return rc;
}

static int cmp_desc(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x < y) - (x > y);
}

int macc_spectral_gap(const double *W, uint32_t n, double *ret_gap)
{
	int nn = (int)n, info = 0, lwork = -1;
	double *a = NULL, *wr = NULL, *wi = NULL, *work = NULL, query = 0.0;
	bool sym = true;
	int rc = 0;

	if (n == 0 || n > MAX_EIG_N) {
		return -EINVAL;
	}
	if (n == 1) {
		*ret_gap = 1.0;
		return 0;
	}
	for (uint32_t j = 0; j < n && sym; j++) {
		for (uint32_t l = j + 1; l < n && sym; l++) {
			sym = W[(size_t)j * n + l] == W[(size_t)l * n + j];
		}
	}
	a = malloc((size_t)n * n * sizeof(*a));
	wr = malloc((size_t)n * sizeof(*wr));
	wi = malloc((size_t)n * sizeof(*wi));
	if (a == NULL || wr == NULL || wi == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(a, W, (size_t)n * n * sizeof(*a));
	/* Workspace query, then the real call. */
	if (sym) {
		dsyev_("N", "U", &nn, a, &nn, wr, &query, &lwork, &info, 1, 1);
	} else {
		dgeev_("N", "N", &nn, a, &nn, wr, wi, NULL, &nn, NULL, &nn, &query, &lwork, &info, 1,
		       1);
	}
	if (info != 0) {
		rc = -EDOM;
		goto out;
	}
	lwork = (int)query;
	if (lwork < 4 * nn) {
		lwork = 4 * nn;
	}
	work = malloc((size_t)lwork * sizeof(*work));
	if (work == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (sym) {
		dsyev_("N", "U", &nn, a, &nn, wr, work, &lwork, &info, 1, 1);
		for (uint32_t i = 0; i < n; i++) {
			wr[i] = fabs(wr[i]);
		}
	} else {
		dgeev_("N", "N", &nn, a, &nn, wr, wi, NULL, &nn, NULL, &nn, work, &lwork, &info, 1,
		       1);
		for (uint32_t i = 0; i < n; i++) {
			wr[i] = hypot(wr[i], wi[i]);
		}
	}
	if (info != 0) {
		rc = -EDOM; /* LAPACK did not converge */
		goto out;
	}
	/* The largest modulus is 1 (a stochastic matrix); the second one sets the gap. */
	qsort(wr, n, sizeof(*wr), cmp_desc);
	*ret_gap = 1.0 - wr[1];
out:
	free(a);
	free(wr);
	free(wi);
	free(work);
	return rc;
}
