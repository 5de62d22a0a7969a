/*
 * guard.c - the rules of macc/guard.h: value screening of received vectors and the round-jump
 * rule. Pure functions (no state, no logging, no allocation).
 *
 * Screening works on magnitude bits: the bits of a binary32 value with the sign cleared order
 * like its magnitude, with infinity (0x7f800000) above every finite value and NaN above
 * infinity. A vector that passes, the common case, costs one loop (any_over): an OR of
 * "magnitude > bound" over the lanes. Magnitude bits are below 2^31, so a signed compare orders
 * them, which SSE2 has (pcmpgtd); a running unsigned maximum has no SSE2 instruction and its
 * emulation is a chain of dependent instructions, about 1 value a cycle against 4. Only a vector
 * that fails is read again: its maximum classifies it (non-finite before out of range), then a
 * scan finds its first offending index. The library is built with -O3, which vectorises them.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "macc/err.h"
#include "macc/guard.h"

#define ABS_MASK 0x7fffffffu
#define INF_BITS 0x7f800000u

static uint32_t bits_of(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* The magnitude bits (sign cleared) of value i of b: little-endian bytes when le (swapped on a
 * big-endian host), else native floats. */
static inline uint32_t mag_bits(const uint8_t *b, size_t i, bool le)
{
	uint32_t u;

	memcpy(&u, b + 4 * i, sizeof(u));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	if (le) {
		u = __builtin_bswap32(u);
	}
#else
	(void)le;
#endif
	return u & ABS_MASK;
}

/* The bound's magnitude bits, or INF_BITS when the bound only asks for finiteness. */
static uint32_t bound_bits(float bound)
{
	if (!(bound > 0.0f) || !isfinite(bound)) {
		return INF_BITS;
	}
	return bits_of(bound);
}

/* The verdict for a maximum of magnitude bits. */
static int classify(uint32_t maxbits, uint32_t lim)
{
	if (maxbits >= INF_BITS) {
		return MACC_ENONFINITE;
	}
	return maxbits > lim ? MACC_ERANGE : 0;
}

/* Whether any value fails: its magnitude above lim, or not finite (lim is INF_BITS for a
 * finiteness-only check, and infinity must fail that too). */
static bool any_over(const uint8_t *b, bool le, size_t n, uint32_t lim)
{
	const int32_t l = (int32_t)(lim < INF_BITS ? lim : INF_BITS - 1); /* < 2^31 */
	int32_t over = 0;

	for (size_t i = 0; i < n; i++) {
		over |= -(int32_t)((int32_t)mag_bits(b, i, le) > l);
	}
	return over != 0;
}

/* The first index whose magnitude bits are of the failure `rc` (the vector failed). */
static size_t first_bad(const uint8_t *b, bool le, size_t n, uint32_t lim, int rc)
{
	uint32_t over = rc == MACC_ENONFINITE ? INF_BITS - 1 : lim;

	for (size_t i = 0; i < n; i++) {
		if (mag_bits(b, i, le) > over) {
			return i;
		}
	}
	return 0;
}

static int screen(const uint8_t *b, bool le, size_t n, float bound, size_t *ret_index)
{
	const uint32_t lim = bound_bits(bound);
	uint32_t m = 0;
	int rc;

	if (!any_over(b, le, n, lim)) {
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t u = mag_bits(b, i, le);

		m = u > m ? u : m;
	}
	rc = classify(m, lim);
	if (rc != 0 && ret_index != NULL) {
		*ret_index = first_bad(b, le, n, lim, rc);
	}
	return rc;
}

int macc_guard_values(const float *v, size_t n, float bound, size_t *ret_index)
{
	return screen((const uint8_t *)v, false, n, bound, ret_index);
}

int macc_guard_values_le(const uint8_t *p, size_t n, float bound, size_t *ret_index)
{
	return screen(p, true, n, bound, ret_index);
}

/* ---- round jumps ---------------------------------------------------------------------- */

const char *macc_rejoin_verdict_name(enum macc_rejoin_verdict v)
{
	static const char *const names[] = {"stay", "no_quorum", "at_end", "too_soon", "jump"};

	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "unknown";
}

uint32_t macc_rejoin_quorum(const struct macc_rejoin *r, uint32_t nneighbours)
{
	uint32_t q = r->quorum != 0 ? r->quorum : nneighbours / 2 + 1;

	if (q > nneighbours) {
		q = nneighbours;
	}
	return q > 0 ? q : 1;
}

uint64_t macc_rejoin_limit(uint64_t total_rounds)
{
	uint64_t reserve = total_rounds / 10 + (total_rounds % 10 != 0);

	if (reserve < 1) {
		reserve = 1;
	}
	return total_rounds > reserve ? total_rounds - reserve : 0;
}

/* The k-th largest (k >= 1) of a[0..n), n >= k: the largest value v with at least k entries
 * >= v. n is at most a few hundred neighbours, so the quadratic scan needs no scratch space. */
static uint64_t kth_largest(const uint64_t *a, size_t n, size_t k)
{
	uint64_t best = 0;

	for (size_t i = 0; i < n; i++) {
		size_t ge = 0;

		if (a[i] <= best) {
			continue;
		}
		for (size_t j = 0; j < n; j++) {
			ge += a[j] >= a[i];
		}
		if (ge >= k) {
			best = a[i];
		}
	}
	return best;
}

enum macc_rejoin_verdict macc_rejoin_decide(const struct macc_rejoin *r,
					    const struct macc_rejoin_in *in, uint64_t *ret_round)
{
	const uint64_t t = in->round + 1 + r->lag;
	uint32_t q = macc_rejoin_quorum(r, in->nneighbours);
	uint64_t target, limit;
	size_t ahead = 0;

	for (size_t i = 0; i < in->nattested; i++) {
		ahead += in->attested[i] > t;
	}
	if (ahead == 0) {
		return MACC_REJOIN_STAY;
	}
	if (ahead < q) {
		return MACC_REJOIN_NO_QUORUM;
	}
	target = kth_largest(in->attested, in->nattested, q);
	limit = macc_rejoin_limit(in->total_rounds);
	if (target > limit) {
		target = limit;
	}
	if (target <= in->round + 1) {
		return MACC_REJOIN_AT_END;
	}
	if (in->jumped && r->interval_ms > 0 && in->now_ms >= in->last_jump_ms &&
	    in->now_ms - in->last_jump_ms < r->interval_ms) {
		return MACC_REJOIN_TOO_SOON;
	}
	*ret_round = target;
	return MACC_REJOIN_JUMP;
}
