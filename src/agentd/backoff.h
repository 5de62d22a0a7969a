/*
 * backoff.h - reconnect delays: exponential with full jitter, capped (internal to macc-agentd).
 *
 * Attempt a (0-based) waits a uniformly random time in [base/2, min(cap, base * 2^a)], so that
 * many agents restarting together do not reconnect in lockstep. The jitter comes from a macc_rng
 * seeded from the OS (not the training seed): reconnect timing must never influence training.
 */
#ifndef MACC_AGENTD_BACKOFF_H
#define MACC_AGENTD_BACKOFF_H

#include <stdint.h>

#include "macc/rng.h"

struct macc_backoff {
	uint64_t base_ms;
	uint64_t cap_ms;
	uint32_t attempt;
};

void macc_backoff_init(struct macc_backoff *b, uint64_t base_ms, uint64_t cap_ms);
/* Delay before the next attempt; advances the attempt counter. */
uint64_t macc_backoff_next(struct macc_backoff *b, struct macc_rng *jitter);
/* A connection succeeded: start again from base. */
void macc_backoff_reset(struct macc_backoff *b);

#endif
