/*
 * pacer.h - a token bucket for the daemon's send-rate caps (internal to macc-agentd).
 *
 * `max_rate` (bytes per second, per agent and per peer, macc.conf(5)) is enforced by the
 * daemon itself, so that a fleet sharing a link with other traffic takes no more than it was
 * given. The transport hands a connection's bytes to the kernel in slices of at most
 * MACC_PACER_SLICE bytes, each only once every bucket it is subject to (its peer's and the
 * agent's) holds the tokens for it. Tokens accrue at `rate` bytes per second up to `burst`
 * bytes; a slice may take the bucket below zero by at most one slice (the debt is repaid before
 * the next slice), so a long transfer averages exactly `rate` whatever the slice size.
 *
 * Pure: the clock is an argument (nanoseconds, monotonic), so tests drive it.
 */
#ifndef MACC_AGENTD_PACER_H
#define MACC_AGENTD_PACER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MACC_PACER_SLICE ((size_t)16384)

struct macc_pacer {
	uint64_t rate;   /* bytes per second; 0: unlimited */
	double burst;    /* bytes */
	double tokens;   /* may go down to -MACC_PACER_SLICE */
	uint64_t last_ns;
	uint64_t sent;   /* bytes let through since init */
};

/* Unlimited until macc_pacer_set_rate. */
void macc_pacer_init(struct macc_pacer *p, uint64_t now_ns);

/* Change the rate (reload); tokens are kept, capped at the new burst. The burst is 50 ms of
 * the rate, at least two slices. */
void macc_pacer_set_rate(struct macc_pacer *p, uint64_t rate, uint64_t now_ns);

/* Nanoseconds until `p` lets a slice through (0: now). Unlimited buckets always answer 0. */
uint64_t macc_pacer_wait_ns(struct macc_pacer *p, uint64_t now_ns);

/* Take `bytes` (at most one slice) from the bucket: call only when wait_ns() said 0. */
void macc_pacer_take(struct macc_pacer *p, size_t bytes, uint64_t now_ns);

#endif
