/*
 * guard.h - pure rules that keep hostile neighbours from steering an agent: how far an agent's
 * round may move on its neighbours' word, and which received values may enter a mix at all.
 *
 * The daemon (src/agentd) calls these; the simulator and the tests can call them too. Like the
 * rest of src/consensus they hold no state, never log and never allocate: every input is an
 * argument, so a rule can be checked in one process with hand-made inputs (tests/unit).
 *
 * Round jumps. An agent that is behind its neighbours (it restarted from a checkpoint, or it was
 * frozen) skips ahead to their round instead of replaying every missed round alone: the
 * rejoin of macc-protocol(7). Every neighbour's round comes from that neighbour alone (its
 * HELLO, its STATEs), so one liar could end everybody's run by announcing the last round. The
 * rule (macc_rejoin_decide) therefore:
 *   - takes the rounds attested by live neighbours and jumps only as far as a QUORUM of them
 *     attests: the q-th largest attested round, q a majority of the neighbours the agent waits
 *     for (or a configured number). One neighbour among two or more can never move it; with a
 *     single neighbour q is 1, since there is nobody else to ask;
 *   - jumps only when that round is more than lag + 1 ahead (lag: how far a neighbour may run
 *     ahead without any fault: idle rounds of a schedule, directed cycles);
 *   - never lands in the last tenth of the run (macc_rejoin_limit): a jump always leaves rounds
 *     to train, and a quorum of liars cannot end the run;
 *   - jumps at most once per interval_ms.
 *
 * Value screening. A STATE whose values are finite but huge (all 1e30, say) passes a finiteness
 * check yet overflows the mix or the next forward pass. macc_guard_values() refuses a vector
 * holding NaN, an infinity (MACC_ENONFINITE) or a value whose magnitude exceeds a bound
 * (MACC_ERANGE), in one branch-free pass at memory speed: for IEEE-754 binary32 the magnitude
 * bits (sign cleared) order like the magnitudes, and NaN and infinity sort above every finite
 * value, so one maximum over the bits answers both questions.
 */
#ifndef MACC_GUARD_H
#define MACC_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default bound on the magnitude of a received parameter or momentum value (config
 * state_value_max): no model macc trains comes near it, and values below it cannot overflow a
 * mix (at most 257 terms of weight <= 1) or the heavy-ball step. */
#define MACC_GUARD_VALUE_MAX_DEFAULT 1e6

/*
 * Screen n float values: 0 when every value is finite and |value| <= bound; MACC_ENONFINITE when
 * one is NaN or infinite; MACC_ERANGE when all are finite and one exceeds the bound. A bound
 * that is not a positive finite number (0, NaN, infinity) checks finiteness only. On failure
 * *ret_index (may be NULL) is the index of the first offending value; unchanged on success.
 */
int macc_guard_values(const float *v, size_t n, float bound, size_t *ret_index);

/* The same over n little-endian float32 values at p, not necessarily aligned (a STATE's bytes
 * as they arrived). */
int macc_guard_values_le(const uint8_t *p, size_t n, float bound, size_t *ret_index);

/* ---- round jumps ---------------------------------------------------------------------- */

struct macc_rejoin {
	uint32_t quorum;      /* attestations needed; 0 = a majority of the neighbours */
	uint64_t lag;         /* rounds a neighbour may be ahead without a fault */
	uint64_t interval_ms; /* at least this long between two jumps (0: no limit) */
};

/* One decision's inputs. */
struct macc_rejoin_in {
	uint64_t round;           /* the agent's current round */
	uint64_t total_rounds;    /* rounds in the run */
	uint32_t nneighbours;     /* neighbours the agent waits for (configured in-neighbours) */
	const uint64_t *attested; /* rounds claimed by the live ones, in any order */
	size_t nattested;
	uint64_t now_ms;
	uint64_t last_jump_ms;    /* when the last jump happened (only with `jumped`) */
	bool jumped;              /* a jump happened before */
};

enum macc_rejoin_verdict {
	MACC_REJOIN_STAY,      /* no neighbour is far enough ahead */
	MACC_REJOIN_NO_QUORUM, /* some are, but fewer than the quorum */
	MACC_REJOIN_AT_END,    /* a quorum is ahead, but the agent is at the jump limit already */
	MACC_REJOIN_TOO_SOON,  /* a jump is due, but the last one was less than interval_ms ago */
	MACC_REJOIN_JUMP,      /* jump: *ret_round is the new round */
};

/* "stay", "no_quorum", "at_end", "too_soon", "jump". */
const char *macc_rejoin_verdict_name(enum macc_rejoin_verdict v);

/* The quorum in force for n neighbours: r->quorum clamped to [1, n], or n / 2 + 1 when 0. */
uint32_t macc_rejoin_quorum(const struct macc_rejoin *r, uint32_t nneighbours);

/* The last round a jump may land on: total - max(1, ceil(total / 10)) (0 for total 0). */
uint64_t macc_rejoin_limit(uint64_t total_rounds);

/*
 * Decide whether to jump (see the top of this file). With q = macc_rejoin_quorum() and
 * t = round + 1 + lag: target = the q-th largest attested round; no jump unless at least q
 * rounds were attested and target > t; target is capped at macc_rejoin_limit(), and no jump
 * unless it is still > round + 1; then the interval is checked. *ret_round is written only for
 * MACC_REJOIN_JUMP.
 */
enum macc_rejoin_verdict macc_rejoin_decide(const struct macc_rejoin *r,
					    const struct macc_rejoin_in *in, uint64_t *ret_round);

#endif
