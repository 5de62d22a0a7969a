/*
 * rng.c - xoshiro256** (Blackman and Vigna), seeded with splitmix64.
 *
 * Chosen because it is tiny, fast, has a 256-bit state that checkpoints store as-is, and has no
 * hidden global state, so every agent, thread and purpose owns its own generator.
 */
#include <math.h>
#include <stddef.h>

#include "macc/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void macc_rng_seed(struct macc_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull);

	for (int i = 0; i < 4; i++) {
		r->s[i] = splitmix64(&x);
	}
}

uint64_t macc_rng_next(struct macc_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t macc_rng_below(struct macc_rng *r, uint64_t n)
{
	/* Rejection sampling on the top of the range: unbiased for every n. */
	uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
	uint64_t x;

	do {
		x = macc_rng_next(r);
	} while (x >= limit);
	return x % n;
}

double macc_rng_uniform(struct macc_rng *r)
{
	return (double)(macc_rng_next(r) >> 11) * 0x1.0p-53;
}

double macc_rng_normal(struct macc_rng *r)
{
	double u1, u2;

	do {
		u1 = macc_rng_uniform(r);
	} while (u1 <= 0.0);
	u2 = macc_rng_uniform(r);
	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double macc_rng_gamma(struct macc_rng *r, double shape)
{
	if (shape < 1.0) {
		/* Boost: Gamma(a) = Gamma(a + 1) * U^(1/a). */
		double u;

		do {
			u = macc_rng_uniform(r);
		} while (u <= 0.0);
		return macc_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
	}
	double d = shape - 1.0 / 3.0;
	double c = 1.0 / sqrt(9.0 * d);

	for (;;) {
		double x = macc_rng_normal(r);
		double v = 1.0 + c * x;

		if (v <= 0.0) {
			continue;
		}
		v = v * v * v;
		double u = macc_rng_uniform(r);

		if (u < 1.0 - 0.0331 * x * x * x * x) {
			return d * v;
		}
		if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) {
			return d * v;
		}
	}
}

void macc_rng_shuffle_u32(struct macc_rng *r, uint32_t *a, size_t n)
{
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)macc_rng_below(r, i);
		uint32_t t = a[i - 1];

		a[i - 1] = a[j];
		a[j] = t;
	}
}
