/*
 * partition.c - splitting one dataset among agents: iid, label shards, Dirichlet.
 *
 * Every scheme first decides an owner agent for each sample (owner[i]), from one generator
 * seeded with (seed, MACC_STREAM_PARTITION), so all agents compute the same partition from the
 * shared config without talking. The owners are then turned into the offsets/indices layout in
 * one counting pass, which makes each shard's indices ascending (good for cache locality; the
 * batcher shuffles them per epoch anyway) and makes "disjoint and covering" true by
 * construction.
 *
 *   iid             a seeded permutation cut into nagents near-equal blocks.
 *   label-shards:K  pathological non-IID (McMahan et al. 2017). Samples are grouped by class
 *                   (shuffled within the class, classes in a seeded order) and cut into
 *                   S = nagents*K shards; shard s goes to agent sigma(s mod nagents), for a
 *                   seeded permutation sigma. If S is a multiple of the class count C, each
 *                   class is cut into m = S/C shards of its own, so shard s is pure class
 *                   pi(s / m); an agent's shards s, s+N, s+2N, ... are N >= m apart and hence
 *                   of K distinct classes. Otherwise the label-sorted list is cut into S equal
 *                   shards (a shard may straddle two classes).
 *   dirichlet:A     for each class, agent proportions p ~ Dirichlet(A, ..., A) (normalised
 *                   Gamma(A) draws; if all underflow, the class goes to one random agent), and
 *                   counts by largest remainder so they sum exactly to the class size. Small A
 *                   gives skewed shards, large A nearly IID. Agents left under the minimum
 *                   (",min=M", default 1) take random samples from the currently largest shard.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macc/data.h"

static int parse_ulong(const char *s, unsigned long *ret)
{
	char *end;

	if (*s < '0' || *s > '9') {
		return -1;
	}
	errno = 0;
	*ret = strtoul(s, &end, 10);
	return errno != 0 || *end != '\0' ? -1 : 0;
}

static void perm_init(uint32_t *a, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		a[i] = (uint32_t)i;
	}
}

static void assign_iid(size_t n, uint32_t nagents, struct macc_rng *r, uint32_t *perm,
		       uint32_t *owner)
{
	perm_init(perm, n);
	macc_rng_shuffle_u32(r, perm, n);
	for (uint32_t a = 0; a < nagents; a++) {
		size_t lo = a * n / nagents, hi = (a + 1) * n / nagents;

		for (size_t i = lo; i < hi; i++) {
			owner[perm[i]] = a;
		}
	}
}

/* Indices grouped by class (classes in the order `corder`), shuffled within each class.
 * cls_off[c] .. cls_off[c + 1] index the samples of class c in `sorted` (before reordering). */
static int group_by_class(const int32_t *labels, size_t n, uint32_t nclasses, struct macc_rng *r,
			  uint32_t *sorted, size_t *cls_off)
{
	size_t *fill = calloc(nclasses, sizeof(size_t));

	if (fill == NULL) {
		return -ENOMEM;
	}
	memset(cls_off, 0, (nclasses + 1) * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		cls_off[labels[i] + 1]++;
	}
	for (uint32_t c = 0; c < nclasses; c++) {
		cls_off[c + 1] += cls_off[c];
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t c = (uint32_t)labels[i];

		sorted[cls_off[c] + fill[c]++] = (uint32_t)i;
	}
	free(fill);
	for (uint32_t c = 0; c < nclasses; c++) {
		macc_rng_shuffle_u32(r, sorted + cls_off[c], cls_off[c + 1] - cls_off[c]);
	}
	return 0;
}

static int assign_shards(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
			 uint32_t k, struct macc_rng *r, uint32_t *sorted, uint32_t *owner)
{
	size_t *cls_off = malloc((nclasses + 1) * sizeof(size_t));
	uint32_t *pi = malloc(nclasses * sizeof(uint32_t));
	uint32_t *sigma = malloc(nagents * sizeof(uint32_t));
	uint64_t nshards = (uint64_t)nagents * k;
	int rc = -ENOMEM;

	if (cls_off == NULL || pi == NULL || sigma == NULL) {
		goto out;
	}
	rc = group_by_class(labels, n, nclasses, r, sorted, cls_off);
	if (rc < 0) {
		goto out;
	}
	perm_init(pi, nclasses);
	macc_rng_shuffle_u32(r, pi, nclasses);
	perm_init(sigma, nagents);
	macc_rng_shuffle_u32(r, sigma, nagents);
	if (nshards % nclasses == 0) {
		uint64_t m = nshards / nclasses;

		for (uint64_t s = 0; s < nshards; s++) {
			uint32_t c = pi[s / m];
			size_t nc = cls_off[c + 1] - cls_off[c];
			size_t piece = (size_t)(s % m);
			size_t lo = piece * nc / m, hi = (piece + 1) * nc / m;

			for (size_t i = lo; i < hi; i++) {
				owner[sorted[cls_off[c] + i]] = sigma[s % nagents];
			}
		}
	} else {
		/* One list in the seeded class order, cut into equal shards. */
		uint32_t *seq = malloc(n * sizeof(uint32_t));
		size_t at = 0;

		if (seq == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		for (uint32_t j = 0; j < nclasses; j++) {
			uint32_t c = pi[j];
			size_t nc = cls_off[c + 1] - cls_off[c];

			memcpy(seq + at, sorted + cls_off[c], nc * sizeof(uint32_t));
			at += nc;
		}
		for (uint64_t s = 0; s < nshards; s++) {
			size_t lo = (size_t)(s * n / nshards), hi = (size_t)((s + 1) * n / nshards);

			for (size_t i = lo; i < hi; i++) {
				owner[seq[i]] = sigma[s % nagents];
			}
		}
		free(seq);
	}
	rc = 0;
out:
	free(cls_off);
	free(pi);
	free(sigma);
	return rc;
}

struct frac {
	double f;
	uint32_t a;
};

static int frac_cmp(const void *pa, const void *pb)
{
	const struct frac *x = pa, *y = pb;

	if (x->f != y->f) {
		return x->f > y->f ? -1 : 1;
	}
	return x->a < y->a ? -1 : (x->a > y->a ? 1 : 0);
}

static int assign_dirichlet(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
			    double alpha, size_t minimum, struct macc_rng *r, uint32_t *sorted,
			    uint32_t *owner, size_t *counts)
{
	size_t *cls_off = malloc((nclasses + 1) * sizeof(size_t));
	double *g = malloc(nagents * sizeof(double));
	struct frac *fr = malloc(nagents * sizeof(struct frac));
	size_t *cnt = malloc(nagents * sizeof(size_t));
	int rc = -ENOMEM;

	if (cls_off == NULL || g == NULL || fr == NULL || cnt == NULL) {
		goto out;
	}
	rc = group_by_class(labels, n, nclasses, r, sorted, cls_off);
	if (rc < 0) {
		goto out;
	}
	memset(counts, 0, nagents * sizeof(size_t));
	for (uint32_t c = 0; c < nclasses; c++) {
		size_t nc = cls_off[c + 1] - cls_off[c], given = 0, at = cls_off[c];
		double sum = 0.0;

		for (uint32_t a = 0; a < nagents; a++) {
			g[a] = macc_rng_gamma(r, alpha);
			sum += g[a];
		}
		if (!(sum > 0.0) || !isfinite(sum)) {
			/* Every draw underflowed (tiny alpha): the class goes to one agent. */
			uint32_t pick = (uint32_t)macc_rng_below(r, nagents);

			for (uint32_t a = 0; a < nagents; a++) {
				g[a] = a == pick ? 1.0 : 0.0;
			}
			sum = 1.0;
		}
		for (uint32_t a = 0; a < nagents; a++) {
			double q = (double)nc * (g[a] / sum);

			cnt[a] = (size_t)floor(q);
			if (cnt[a] > nc) {
				cnt[a] = nc;
			}
			fr[a].f = q - floor(q);
			fr[a].a = a;
			given += cnt[a];
		}
		if (given > nc) { /* rounding cannot do this, but stay safe */
			given = nc;
		}
		qsort(fr, nagents, sizeof(*fr), frac_cmp);
		for (size_t j = 0; given < nc; j = (j + 1) % nagents) {
			cnt[fr[j].a]++;
			given++;
		}
		for (uint32_t a = 0; a < nagents && at < cls_off[c + 1]; a++) {
			size_t take = cnt[a];

			if (take > cls_off[c + 1] - at) {
				take = cls_off[c + 1] - at;
			}
			for (size_t i = 0; i < take; i++) {
				owner[sorted[at + i]] = a;
			}
			counts[a] += take;
			at += take;
		}
	}
	/* Top up starving agents from the largest shard, one random sample at a time. */
	for (uint32_t a = 0; a < nagents; a++) {
		while (counts[a] < minimum) {
			uint32_t donor = 0;

			for (uint32_t b = 1; b < nagents; b++) {
				if (counts[b] > counts[donor]) {
					donor = b;
				}
			}
			if (counts[donor] <= minimum) {
				rc = -EAGAIN; /* cannot happen when nagents * minimum <= n */
				goto out;
			}
			size_t i;

			do {
				i = (size_t)macc_rng_below(r, n);
			} while (owner[i] != donor);
			owner[i] = a;
			counts[donor]--;
			counts[a]++;
		}
	}
	rc = 0;
out:
	free(cls_off);
	free(g);
	free(fr);
	free(cnt);
	return rc;
}

/* A parsed partition scheme */
struct scheme {
	enum { IID, SHARDS, DIRICHLET } kind;
	unsigned long k, minimum;
	double alpha;
};

/* dirichlet:ALPHA[,min=M], at a = the text after "dirichlet:" */
static int parse_dirichlet(const char *scheme, const char *a, struct scheme *s,
			   struct macc_errmsg *err)
{
	char *end;
	const char *mp;

	errno = 0;
	s->alpha = strtod(a, &end);
	if (errno != 0 || end == a || !(s->alpha > 0.0) || s->alpha > 1e6) {
		return macc_errf(err, MACC_ESPEC,
				 "partition '%s': ALPHA must be a number in (0, 1e6]", scheme);
	}
	if (*end != '\0') {
		mp = end;
		if (strncmp(mp, ",min=", 5) != 0 || parse_ulong(mp + 5, &s->minimum) < 0 ||
		    s->minimum == 0) {
			return macc_errf(err, MACC_ESPEC,
					 "partition '%s': expected dirichlet:ALPHA[,min=M] "
					 "with M >= 1",
					 scheme);
		}
	}
	return 0;
}

static int parse_scheme(const char *scheme, uint32_t nclasses, struct scheme *s,
			struct macc_errmsg *err)
{
	s->kind = IID;
	s->k = 0;
	s->minimum = 1;
	s->alpha = 0.0;
	if (strcmp(scheme, "iid") == 0) {
		s->kind = IID;
	} else if (strncmp(scheme, "label-shards:", 13) == 0) {
		s->kind = SHARDS;
		if (parse_ulong(scheme + 13, &s->k) < 0 || s->k == 0 || s->k > nclasses) {
			return macc_errf(err, MACC_ESPEC,
					 "partition '%s': K must be an integer in [1, %u] (classes)",
					 scheme, nclasses);
		}
	} else if (strncmp(scheme, "dirichlet:", 10) == 0) {
		s->kind = DIRICHLET;
		return parse_dirichlet(scheme, scheme + 10, s, err);
	} else {
		return macc_errf(err, MACC_ESPEC,
				 "unknown partition scheme '%s' (expected iid, label-shards:K or "
				 "dirichlet:ALPHA)",
				 scheme);
	}
	return 0;
}

/* The sizes and labels fit the scheme */
static int check_data(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
		      const char *scheme, const struct scheme *s, struct macc_errmsg *err)
{
	if (nagents == 0) {
		return macc_errf(err, MACC_ESPEC, "partition '%s': no agents", scheme);
	}
	if (n > UINT32_MAX) {
		return macc_errf(err, MACC_EDATA, "partition: %zu samples is too many", n);
	}
	if (n < nagents || (s->kind == DIRICHLET && s->minimum > n / nagents)) {
		return macc_errf(err, MACC_ESPEC,
				 "partition '%s': %zu samples cannot give each of %u agents %lu",
				 scheme, n, nagents, s->kind == DIRICHLET ? s->minimum : 1ul);
	}
	if (s->kind == IID) {
		return 0;
	}
	if (labels == NULL || nclasses == 0) {
		return macc_errf(err, -EINVAL, "partition '%s': needs labels", scheme);
	}
	for (size_t i = 0; i < n; i++) {
		if (labels[i] < 0 || (uint32_t)labels[i] >= nclasses) {
			return macc_errf(err, MACC_EDATA,
					 "partition: label %d of sample %zu out of range [0, %u)",
					 labels[i], i, nclasses);
		}
	}
	return 0;
}

/* Gives each sample an owner in owner[] by the scheme */
static int assign(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
		  const char *scheme, const struct scheme *s, uint64_t seed, uint32_t *sorted,
		  uint32_t *owner, size_t *counts, struct macc_errmsg *err)
{
	struct macc_rng r;
	int rc;

	macc_rng_seed(&r, seed, MACC_STREAM_PARTITION);
	if (s->kind == IID) {
		assign_iid(n, nagents, &r, sorted, owner);
		rc = 0;
	} else if (s->kind == SHARDS) {
		rc = assign_shards(labels, n, nclasses, nagents, (uint32_t)s->k, &r, sorted, owner);
	} else {
		rc = assign_dirichlet(labels, n, nclasses, nagents, s->alpha, s->minimum, &r,
				      sorted, owner, counts);
	}
	if (rc < 0) {
		macc_errf(err, rc, "partition '%s': %s", scheme,
			  rc == -ENOMEM ? "out of memory" : "cannot meet the minimum shard size");
	}
	return rc;
}

/* p's offsets and indices from owner[], in sample order within each agent; an agent with no
 * sample is an error */
static int fill_index(const uint32_t *owner, size_t n, uint32_t nagents, const char *scheme,
		      size_t *counts, struct macc_partition *p, struct macc_errmsg *err)
{
	memset(counts, 0, nagents * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		counts[owner[i]]++;
	}
	for (uint32_t a = 0; a < nagents; a++) {
		if (counts[a] == 0) {
			return macc_errf(err, MACC_ESPEC,
					 "partition '%s': agent %u gets no samples (%zu samples are "
					 "too few for %u agents)",
					 scheme, a, n, nagents);
		}
		p->offsets[a + 1] = p->offsets[a] + (uint32_t)counts[a];
	}
	memset(counts, 0, nagents * sizeof(size_t));
	for (size_t i = 0; i < n; i++) {
		uint32_t a = owner[i];

		p->indices[p->offsets[a] + counts[a]++] = (uint32_t)i;
	}
	return 0;
}

int macc_partition_make(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
			const char *scheme, uint64_t seed, struct macc_partition *ret,
			struct macc_errmsg *err)
{
	struct scheme s;
	struct macc_partition p = {0};
	uint32_t *owner = NULL, *sorted = NULL;
	size_t *counts = NULL;
	int rc;

	if (scheme == NULL || ret == NULL) {
		return macc_errf(err, -EINVAL, "partition: no scheme");
	}
	if (labels == NULL && strcmp(scheme, "iid") != 0) {
		return macc_errf(err, MACC_ESPEC, "partition '%s' needs class labels; the data has "
				 "regression targets (use iid)", scheme);
	}
	rc = parse_scheme(scheme, nclasses, &s, err);
	if (rc < 0) {
		return rc;
	}
	rc = check_data(labels, n, nclasses, nagents, scheme, &s, err);
	if (rc < 0) {
		return rc;
	}

	owner = malloc(n * sizeof(uint32_t));
	sorted = malloc(n * sizeof(uint32_t));
	counts = calloc(nagents, sizeof(size_t));
	p.offsets = calloc((size_t)nagents + 1, sizeof(uint32_t));
	p.indices = malloc(n * sizeof(uint32_t));
	if (owner == NULL || sorted == NULL || counts == NULL || p.offsets == NULL ||
	    p.indices == NULL) {
		rc = macc_errf(err, -ENOMEM, "partition: out of memory for %zu samples", n);
		goto out;
	}
	rc = assign(labels, n, nclasses, nagents, scheme, &s, seed, sorted, owner, counts, err);
	if (rc < 0) {
		goto out;
	}
	rc = fill_index(owner, n, nagents, scheme, counts, &p, err);
	if (rc < 0) {
		goto out;
	}
	p.nagents = nagents;
	*ret = p;
	p.offsets = NULL;
	p.indices = NULL;
	rc = 0;
out:
	free(owner);
	free(sorted);
	free(counts);
	free(p.offsets);
	free(p.indices);
	return rc;
}

void macc_partition_finish(struct macc_partition *p)
{
	if (p == NULL) {
		return;
	}
	free(p->offsets);
	free(p->indices);
	memset(p, 0, sizeof(*p));
}
