/*
 * test_guard.c - the rules of macc/guard.h (src/consensus/guard.c): value screening (finite,
 * NaN, infinities, the bound and its edges, unaligned little-endian bytes, the index of the
 * first offender) and the round-jump rule, on the cases the daemon meets: a restarted agent
 * behind honest neighbours, one liar among honest neighbours (the attack of a HELLO or a STATE
 * announcing a far round), a quorum of liars (bounded by the limit), schedules that let
 * neighbours run ahead (lag), the single-neighbour case, the interval and the quorum setting.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/err.h"
#include "macc/guard.h"

/* ---- values ---- */

static void test_values_ok(void **state)
{
	float v[67];
	size_t idx = 12345;

	(void)state;
	for (size_t i = 0; i < 67; i++) {
		v[i] = (float)((int)i - 33) * 0.25f;
	}
	assert_int_equal(macc_guard_values(v, 67, 1e6f, &idx), 0);
	assert_int_equal(idx, 12345); /* untouched on success */
	assert_int_equal(macc_guard_values(v, 0, 1e6f, NULL), 0);
	/* Exactly at the bound, either sign, is allowed; the next float up is not. */
	v[5] = 8.25f;
	v[6] = -8.25f;
	assert_int_equal(macc_guard_values(v, 67, 8.25f, NULL), 0);
	v[40] = nextafterf(8.25f, 100.0f);
	assert_int_equal(macc_guard_values(v, 67, 8.25f, &idx), MACC_ERANGE);
	assert_int_equal(idx, 40);
	/* Subnormals and signed zeros are fine. */
	v[40] = -0.0f;
	v[41] = 1e-42f;
	assert_int_equal(macc_guard_values(v, 67, 8.25f, NULL), 0);
}

static void test_values_bad(void **state)
{
	float v[33];
	size_t idx = 0;

	(void)state;
	for (size_t i = 0; i < 33; i++) {
		v[i] = 1.0f;
	}
	/* The poisoning of the hostile-peer defences: all 1e30, finite. */
	for (size_t i = 0; i < 33; i++) {
		v[i] = i % 2 ? 1e30f : -1e30f;
	}
	assert_int_equal(macc_guard_values(v, 33, (float)MACC_GUARD_VALUE_MAX_DEFAULT, &idx),
			 MACC_ERANGE);
	assert_int_equal(idx, 0);
	/* Non-finite wins over out of range, whatever comes first. */
	v[20] = NAN;
	assert_int_equal(macc_guard_values(v, 33, 1e6f, &idx), MACC_ENONFINITE);
	assert_int_equal(idx, 20);
	v[20] = -INFINITY;
	assert_int_equal(macc_guard_values(v, 33, 1e6f, &idx), MACC_ENONFINITE);
	assert_int_equal(idx, 20);
	/* A bound of 0 (or not finite) checks finiteness only. */
	v[20] = 3e38f;
	assert_int_equal(macc_guard_values(v, 33, 0.0f, NULL), 0);
	assert_int_equal(macc_guard_values(v, 33, INFINITY, NULL), 0);
	assert_int_equal(macc_guard_values(v, 33, NAN, NULL), 0);
	v[32] = INFINITY;
	assert_int_equal(macc_guard_values(v, 33, 0.0f, &idx), MACC_ENONFINITE);
	assert_int_equal(idx, 32);
	/* A NaN with the sign bit set and any payload. */
	{
		uint32_t u = 0xffc00001u;
		memcpy(&v[32], &u, sizeof(u));
	}
	assert_int_equal(macc_guard_values(v, 33, 0.0f, &idx), MACC_ENONFINITE);
	assert_int_equal(idx, 32);
}

static void put_le(uint8_t *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	p[0] = (uint8_t)u;
	p[1] = (uint8_t)(u >> 8);
	p[2] = (uint8_t)(u >> 16);
	p[3] = (uint8_t)(u >> 24);
}

static void test_values_le(void **state)
{
	enum { N = 101 };
	uint8_t raw[4 * N + 3];
	uint8_t *p = raw + 3; /* unaligned on purpose */
	size_t idx = 0;

	(void)state;
	for (size_t i = 0; i < N; i++) {
		put_le(p + 4 * i, (float)i - 50.0f);
	}
	assert_int_equal(macc_guard_values_le(p, N, 50.0f, NULL), 0);
	assert_int_equal(macc_guard_values_le(p, N, 49.5f, &idx), MACC_ERANGE);
	assert_int_equal(idx, 0); /* -50 */
	put_le(p + 4 * 77, NAN);
	assert_int_equal(macc_guard_values_le(p, N, 1e6f, &idx), MACC_ENONFINITE);
	assert_int_equal(idx, 77);
	/* The byte layout matters: the same bits big-endian would read as a small value. */
	put_le(p + 4 * 77, 1.0f);
	put_le(p + 4 * 90, 1e30f);
	assert_int_equal(macc_guard_values_le(p, N, 1e6f, &idx), MACC_ERANGE);
	assert_int_equal(idx, 90);
}

/* ---- round jumps ---- */

static enum macc_rejoin_verdict decide(const struct macc_rejoin *r, uint64_t round,
				       uint64_t total, uint32_t nnb, const uint64_t *att,
				       size_t natt, uint64_t *ret)
{
	struct macc_rejoin_in in = {
		.round = round, .total_rounds = total, .nneighbours = nnb,
		.attested = att, .nattested = natt, .now_ms = 100000,
	};

	return macc_rejoin_decide(r, &in, ret);
}

static void test_rejoin_quorum_and_limit(void **state)
{
	struct macc_rejoin r = {0};

	(void)state;
	assert_int_equal(macc_rejoin_quorum(&r, 1), 1);
	assert_int_equal(macc_rejoin_quorum(&r, 2), 2);
	assert_int_equal(macc_rejoin_quorum(&r, 3), 2);
	assert_int_equal(macc_rejoin_quorum(&r, 4), 3);
	assert_int_equal(macc_rejoin_quorum(&r, 0), 1);
	r.quorum = 5;
	assert_int_equal(macc_rejoin_quorum(&r, 3), 3); /* clamped to the neighbours */
	r.quorum = 1;
	assert_int_equal(macc_rejoin_quorum(&r, 8), 1);
	assert_int_equal(macc_rejoin_limit(0), 0);
	assert_int_equal(macc_rejoin_limit(1), 0);
	assert_int_equal(macc_rejoin_limit(10), 9);
	assert_int_equal(macc_rejoin_limit(11), 9);
	assert_int_equal(macc_rejoin_limit(200), 180);
	assert_int_equal(macc_rejoin_limit(1000000), 900000);
	assert_string_equal(macc_rejoin_verdict_name(MACC_REJOIN_JUMP), "jump");
	assert_string_equal(macc_rejoin_verdict_name(MACC_REJOIN_NO_QUORUM), "no_quorum");
}

static void test_rejoin_restart(void **state)
{
	/* A restarted agent at its checkpoint round 300; its ring neighbours are at 451 and 452. */
	struct macc_rejoin r = {0};
	const uint64_t att[] = {452, 451};
	uint64_t to = 0;

	(void)state;
	assert_int_equal(decide(&r, 300, 800, 2, att, 2, &to), MACC_REJOIN_JUMP);
	assert_int_equal(to, 451); /* the 2nd largest: both attest at least 451 */
	/* Four neighbours, one still down (not attested): 3 of 4 is a majority. */
	{
		const uint64_t a4[] = {452, 451, 453};
		assert_int_equal(decide(&r, 300, 800, 4, a4, 3, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 451);
	}
	/* Two of four up: no majority, no jump (the agent catches up alone). */
	assert_int_equal(decide(&r, 300, 800, 4, att, 2, &to), MACC_REJOIN_NO_QUORUM);
	/* A neighbour one round ahead is normal: no jump. */
	{
		const uint64_t a[] = {301, 301};
		assert_int_equal(decide(&r, 300, 800, 2, a, 2, &to), MACC_REJOIN_STAY);
	}
	/* Two rounds ahead is a jump. */
	{
		const uint64_t a[] = {302, 302};
		assert_int_equal(decide(&r, 300, 800, 2, a, 2, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 302);
	}
}

static void test_rejoin_one_liar(void **state)
{
	/* Hostile peers: one neighbour announces end - 2 (in HELLO) or a far round (in a STATE). */
	struct macc_rejoin r = {0};
	uint64_t to = 777;

	(void)state;
	{
		const uint64_t a[] = {999998, 41}; /* liar, honest at our round + 1 */
		assert_int_equal(decide(&r, 40, 1000000, 2, a, 2, &to), MACC_REJOIN_NO_QUORUM);
	}
	{
		const uint64_t a[] = {100040, 41, 40}; /* three neighbours, one liar */
		assert_int_equal(decide(&r, 40, 1000000, 3, a, 3, &to), MACC_REJOIN_NO_QUORUM);
	}
	{
		/* Restart with a liar among three: the jump goes where the honest two are. */
		const uint64_t a[] = {999998, 500, 501};
		assert_int_equal(decide(&r, 40, 1000000, 3, a, 3, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 501);
	}
	assert_int_equal(to, 501);
}

static void test_rejoin_liars_bounded(void **state)
{
	/* A quorum of liars (or honest neighbours near the end) cannot end the run: a jump stops
	 * at the limit, and an agent at the limit does not jump at all. */
	struct macc_rejoin r = {0};
	const uint64_t a[] = {199, 199};
	uint64_t to = 0;

	(void)state;
	assert_int_equal(decide(&r, 40, 200, 2, a, 2, &to), MACC_REJOIN_JUMP);
	assert_int_equal(to, 180);
	assert_int_equal(decide(&r, 179, 200, 2, a, 2, &to), MACC_REJOIN_AT_END);
	assert_int_equal(decide(&r, 180, 200, 2, a, 2, &to), MACC_REJOIN_AT_END);
	assert_int_equal(decide(&r, 185, 200, 2, a, 2, &to), MACC_REJOIN_AT_END);
	/* Past the run altogether (a HELLO the daemon refuses anyway). */
	{
		const uint64_t b[] = {UINT64_MAX, UINT64_MAX - 1};
		assert_int_equal(decide(&r, 0, 1000, 2, b, 2, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 900);
	}
}

static void test_rejoin_lag_interval_single(void **state)
{
	struct macc_rejoin r = {.lag = 4};
	uint64_t to = 0;
	struct macc_rejoin_in in;

	(void)state;
	{
		/* A schedule lets neighbours run up to `lag` rounds ahead without a fault. */
		const uint64_t a[] = {105, 105};
		assert_int_equal(decide(&r, 100, 1000, 2, a, 2, &to), MACC_REJOIN_STAY);
		const uint64_t b[] = {106, 106};
		assert_int_equal(decide(&r, 100, 1000, 2, b, 2, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 106);
	}
	/* One jump per interval. */
	r.lag = 0;
	r.interval_ms = 10000;
	{
		const uint64_t a[] = {300, 300};
		memset(&in, 0, sizeof(in));
		in.round = 100;
		in.total_rounds = 1000;
		in.nneighbours = 2;
		in.attested = a;
		in.nattested = 2;
		in.now_ms = 50000;
		in.jumped = true;
		in.last_jump_ms = 45000;
		assert_int_equal(macc_rejoin_decide(&r, &in, &to), MACC_REJOIN_TOO_SOON);
		in.last_jump_ms = 40000;
		assert_int_equal(macc_rejoin_decide(&r, &in, &to), MACC_REJOIN_JUMP);
		in.jumped = false;
		in.last_jump_ms = 49999;
		assert_int_equal(macc_rejoin_decide(&r, &in, &to), MACC_REJOIN_JUMP);
	}
	/* A single neighbour: quorum 1 (nobody else to ask), still bounded by the limit. */
	r.interval_ms = 0;
	{
		const uint64_t a[] = {640};
		assert_int_equal(decide(&r, 10, 1000, 1, a, 1, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 640);
		const uint64_t b[] = {999};
		assert_int_equal(decide(&r, 10, 1000, 1, b, 1, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 900);
	}
	/* rejoin_quorum = 1 with three neighbours: the operator chose to follow any single one. */
	r.quorum = 1;
	{
		const uint64_t a[] = {500, 11, 11};
		assert_int_equal(decide(&r, 10, 1000, 3, a, 3, &to), MACC_REJOIN_JUMP);
		assert_int_equal(to, 500);
	}
	/* Nobody attested. */
	assert_int_equal(decide(&r, 10, 1000, 3, NULL, 0, &to), MACC_REJOIN_STAY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values_ok),
		cmocka_unit_test(test_values_bad),
		cmocka_unit_test(test_values_le),
		cmocka_unit_test(test_rejoin_quorum_and_limit),
		cmocka_unit_test(test_rejoin_restart),
		cmocka_unit_test(test_rejoin_one_liar),
		cmocka_unit_test(test_rejoin_liars_bounded),
		cmocka_unit_test(test_rejoin_lag_interval_single),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
