/*
 * test_pacer.c - the arithmetic of max_rate (src/agentd/pacer.c) as the daemon uses it
 * (peer.c: a slice goes when neither the peer's bucket nor the agent's is in debt, and is taken
 * from both; connections take turns). Deterministic: a fake clock in nanoseconds advances to
 * whenever the buckets say the next slice may go, as the daemon's pace timer does.
 *
 * The promise checked: over any one-second window the bytes a bucket let through are at most
 * its rate + its burst + one slice, and over a long transfer the rate is met within 1 %.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pacer.h"

#define NS 1000000000ULL
#define MAXEV 200000

/* What went when: one entry per slice and stream. */
struct trace {
	uint64_t t[MAXEV];
	size_t bytes[MAXEV];
	int who[MAXEV];
	size_t n;
};

/* A greedy sender per stream (always more to send), each stream subject to its own bucket
 * (peer[i], NULL: none) and the shared one (agent, may be unlimited), for `dur_ns` from `t0`.
 * As pace_all in peer.c: a slice at a time, to the ready stream served longest ago; when none
 * is ready, the clock goes to the first bucket's time. Returns the end. */
static uint64_t run(struct trace *tr, struct macc_pacer **peer, int nstreams,
		    struct macc_pacer *agent, uint64_t t0, uint64_t dur_ns)
{
	uint64_t now = t0, seq[8] = { 0 }, turn = 0;

	assert_true(nstreams <= 8);
	while (now < t0 + dur_ns) {
		uint64_t wait = 0;
		int best = -1;

		for (int i = 0; i < nstreams; i++) {
			uint64_t wp = peer[i] != NULL ? macc_pacer_wait_ns(peer[i], now) : 0;
			uint64_t wa = macc_pacer_wait_ns(agent, now);
			uint64_t w = wp > wa ? wp : wa;

			if (w > 0) {
				wait = wait == 0 || w < wait ? w : wait;
			} else if (best < 0 || seq[i] < seq[best]) {
				best = i;
			}
		}
		if (best >= 0) {
			if (peer[best] != NULL) {
				macc_pacer_take(peer[best], MACC_PACER_SLICE, now);
			}
			macc_pacer_take(agent, MACC_PACER_SLICE, now);
			seq[best] = ++turn;
			assert_true(tr->n < MAXEV);
			tr->t[tr->n] = now;
			tr->bytes[tr->n] = MACC_PACER_SLICE;
			tr->who[tr->n] = best;
			tr->n++;
		} else {
			assert_true(wait > 0);
			/* the daemon's timer counts whole milliseconds, rounded up */
			now += (wait + 999999) / 1000000 * 1000000;
		}
	}
	return now;
}

/* The most bytes of stream `who` (-1: all) in any window [t, t + win) that starts at a slice. */
static uint64_t max_window(const struct trace *tr, int who, uint64_t from, uint64_t win)
{
	uint64_t best = 0, sum = 0;
	size_t j = 0;

	for (size_t i = 0; i < tr->n; i++) {
		if (tr->t[i] < from) {
			j = i + 1;
			continue;
		}
		if (who < 0 || tr->who[i] == who) {
			sum += tr->bytes[i];
		}
		while (tr->t[j] + win <= tr->t[i]) {
			if (who < 0 || tr->who[j] == who) {
				sum -= tr->bytes[j];
			}
			j++;
		}
		best = sum > best ? sum : best;
	}
	return best;
}

static uint64_t total(const struct trace *tr, int who, uint64_t from, uint64_t to)
{
	uint64_t s = 0;

	for (size_t i = 0; i < tr->n; i++) {
		if (tr->t[i] >= from && tr->t[i] < to && (who < 0 || tr->who[i] == who)) {
			s += tr->bytes[i];
		}
	}
	return s;
}

static struct trace *trace_new(void)
{
	struct trace *tr = calloc(1, sizeof(*tr));

	assert_non_null(tr);
	return tr;
}

/* One bucket at 2 MB/s: every second within rate + burst + slice, 10 s within 1 %. */
static void test_one_bucket(void **state)
{
	struct trace *tr = trace_new();
	struct macc_pacer p, none;
	struct macc_pacer *peers[1] = { &p };
	uint64_t t0 = 5 * NS, rate = 2000000, got;
	double burst = 0.05 * (double)rate;

	(void)state;
	macc_pacer_init(&p, t0);
	macc_pacer_init(&none, t0);
	macc_pacer_set_rate(&p, rate, t0);
	run(tr, peers, 1, &none, t0, 10 * NS);
	assert_true(max_window(tr, 0, t0, NS) <= rate + burst + MACC_PACER_SLICE);
	got = total(tr, 0, t0, t0 + 10 * NS);
	assert_true(got >= rate * 10 * 99 / 100 && got <= rate * 10 * 101 / 100);
	free(tr);
}

/* Unlimited buckets never ask to wait, and a bucket set back to 0 is unlimited again. */
static void test_unlimited(void **state)
{
	struct macc_pacer p;

	(void)state;
	macc_pacer_init(&p, 0);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(macc_pacer_wait_ns(&p, 0), 0);
		macc_pacer_take(&p, MACC_PACER_SLICE, 0);
	}
	macc_pacer_set_rate(&p, 1000, 0);
	macc_pacer_take(&p, MACC_PACER_SLICE, 0);
	macc_pacer_take(&p, MACC_PACER_SLICE, 0);
	macc_pacer_take(&p, MACC_PACER_SLICE, 0);
	assert_true(macc_pacer_wait_ns(&p, 0) > 0);
	macc_pacer_set_rate(&p, 0, 0);
	assert_int_equal(macc_pacer_wait_ns(&p, 0), 0);
}

/* Two streams: A capped at 1 MB/s, B uncapped, the agent at 3 MB/s: A keeps its cap, both
 * together the agent's, and B gets the rest (2 MB/s), within 2 %. */
static void test_peer_and_agent(void **state)
{
	struct trace *tr = trace_new();
	struct macc_pacer a, ag;
	struct macc_pacer *peers[2] = { &a, NULL };
	uint64_t t0 = 1, ra = 1000000, rag = 3000000, ta, tb;

	(void)state;
	macc_pacer_init(&a, t0);
	macc_pacer_init(&ag, t0);
	macc_pacer_set_rate(&a, ra, t0);
	macc_pacer_set_rate(&ag, rag, t0);
	run(tr, peers, 2, &ag, t0, 10 * NS);
	assert_true(max_window(tr, 0, t0, NS) <= ra + 0.05 * ra + MACC_PACER_SLICE);
	assert_true(max_window(tr, -1, t0, NS) <= rag + 0.05 * rag + MACC_PACER_SLICE);
	ta = total(tr, 0, t0, t0 + 10 * NS);
	tb = total(tr, 1, t0, t0 + 10 * NS);
	assert_true(ta >= ra * 10 * 98 / 100 && ta <= ra * 10 * 102 / 100);
	assert_true(tb >= (rag - ra) * 10 * 96 / 100 && tb <= (rag - ra) * 10 * 104 / 100);
	free(tr);
}

/* Two capped streams sharing an agent cap below their sum take turns: each about half. */
static void test_fair_share(void **state)
{
	struct trace *tr = trace_new();
	struct macc_pacer a, b, ag;
	struct macc_pacer *peers[2] = { &a, &b };
	uint64_t ta, tb;

	(void)state;
	macc_pacer_init(&a, 0);
	macc_pacer_init(&b, 0);
	macc_pacer_init(&ag, 0);
	macc_pacer_set_rate(&a, 5000000, 0);
	macc_pacer_set_rate(&b, 5000000, 0);
	macc_pacer_set_rate(&ag, 2000000, 0);
	run(tr, peers, 2, &ag, 0, 10 * NS);
	ta = total(tr, 0, 0, 10 * NS);
	tb = total(tr, 1, 0, 10 * NS);
	assert_true(ta + tb <= 2000000ULL * 10 * 101 / 100);
	assert_true(ta >= tb * 95 / 100 && tb >= ta * 95 / 100);
	free(tr);
}

/* A reload that changes the rate of a live stream: the next seconds follow the new rate. */
static void test_reload(void **state)
{
	struct trace *tr = trace_new();
	struct macc_pacer p, none;
	struct macc_pacer *peers[1] = { &p };
	uint64_t t, got;

	(void)state;
	macc_pacer_init(&p, 0);
	macc_pacer_init(&none, 0);
	macc_pacer_set_rate(&p, 1000000, 0);
	t = run(tr, peers, 1, &none, 0, 3 * NS);
	macc_pacer_set_rate(&p, 4000000, t);
	run(tr, peers, 1, &none, t, 5 * NS);
	assert_true(max_window(tr, 0, t, NS) <= 4000000 + 200000 + MACC_PACER_SLICE);
	got = total(tr, 0, t + NS, t + 5 * NS);
	assert_true(got >= 4000000ULL * 4 * 98 / 100 && got <= 4000000ULL * 4 * 102 / 100);
	macc_pacer_set_rate(&p, 500000, t + 5 * NS);
	tr->n = 0;
	run(tr, peers, 1, &none, t + 5 * NS, 4 * NS);
	assert_true(max_window(tr, 0, t + 5 * NS, NS) <= 500000 + 2 * MACC_PACER_SLICE +
							 MACC_PACER_SLICE);
	free(tr);
}

/* Idle time banks at most a burst (50 ms of the rate, at least two slices). */
static void test_idle_burst(void **state)
{
	struct macc_pacer p;
	uint64_t t = 0, sent = 0, rate = 10000000;

	(void)state;
	macc_pacer_init(&p, 0);
	macc_pacer_set_rate(&p, rate, 0);
	t = 60 * NS; /* a minute idle */
	while (macc_pacer_wait_ns(&p, t) == 0) {
		macc_pacer_take(&p, MACC_PACER_SLICE, t);
		sent += MACC_PACER_SLICE;
		assert_true(sent < 10 * rate);
	}
	assert_true(sent <= 0.05 * rate + MACC_PACER_SLICE);
	assert_true(sent >= 0.05 * rate);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_bucket),
		cmocka_unit_test(test_unlimited),
		cmocka_unit_test(test_peer_and_agent),
		cmocka_unit_test(test_fair_share),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_idle_burst),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
