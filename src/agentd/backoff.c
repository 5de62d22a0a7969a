/*
 * backoff.c - capped exponential backoff with jitter (see backoff.h).
 */
#include "backoff.h"

void macc_backoff_init(struct macc_backoff *b, uint64_t base_ms, uint64_t cap_ms)
{
	b->base_ms = base_ms == 0 ? 1 : base_ms;
	b->cap_ms = cap_ms < b->base_ms ? b->base_ms : cap_ms;
	b->attempt = 0;
}

uint64_t macc_backoff_next(struct macc_backoff *b, struct macc_rng *jitter)
{
	uint64_t hi = b->base_ms;
	uint64_t lo = b->base_ms / 2;

	for (uint32_t i = 0; i < b->attempt && hi < b->cap_ms; i++) {
		hi *= 2;
	}
	if (hi > b->cap_ms) {
		hi = b->cap_ms;
	}
	if (b->attempt < 64) {
		b->attempt++;
	}
	if (hi <= lo) {
		return hi;
	}
	return lo + macc_rng_below(jitter, hi - lo + 1);
}

void macc_backoff_reset(struct macc_backoff *b)
{
	b->attempt = 0;
}
