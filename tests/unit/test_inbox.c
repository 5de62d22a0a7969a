/*
 * test_inbox.c - the neighbours' round slots (inbox.c) and who a round waits for (round.c
 * round_waits_for), fed fake inbound states: no socket, no loop, no worker. An agent at round 3
 * with one neighbour (dmsgd: x and momentum travel) receives states for the current round, the
 * next round and a past one, a copy of one it holds, and a state during its step; then the round
 * moves on and the next round's state becomes the current one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define NP 4

struct fake {
	struct macc_agent *a;
	struct peer *p;
	struct peer *list[1];
	struct macc_session sess;
	uint8_t x[NP * 4], v[NP * 4];
};

static int setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->a = calloc(1, sizeof(*f->a));
	f->p = calloc(1, sizeof(*f->p));
	assert_non_null(f->a);
	assert_non_null(f->p);
	f->a->nparams = NP;
	f->a->sends_v = true;
	f->a->round = 3;
	f->a->phase = PH_WAIT;
	f->p->agent = f->a;
	f->p->last_round = -1;
	f->p->in_nb = f->p->out_nb = true;
	snprintf(f->p->name, sizeof(f->p->name), "nb");
	f->p->cur.x = calloc(NP, sizeof(float));
	f->p->cur.v = calloc(NP, sizeof(float));
	f->p->next.x = calloc(NP, sizeof(float));
	f->p->next.v = calloc(NP, sizeof(float));
	f->list[0] = f->p;
	f->a->peers = f->list;
	f->a->npeers = 1;
	f->sess.rx_digest = 1;
	memset(f->sess.peer_nonce, 0xab, sizeof(f->sess.peer_nonce));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;

	slot_free(&f->p->cur);
	slot_free(&f->p->next);
	free(f->p);
	free(f->a);
	free(f);
	return 0;
}

/* A state for `round` whose x is (round, round, ...) and momentum (-round, ...). */
static struct macc_state state_for(struct fake *f, uint64_t round)
{
	struct macc_state st;

	memset(&st, 0, sizeof(st));
	for (int i = 0; i < NP; i++) {
		float x = (float)round, v = -(float)round;

		memcpy(f->x + 4 * i, &x, 4); /* little-endian hosts: the wire's byte order */
		memcpy(f->v + 4 * i, &v, 4);
	}
	st.round = round;
	st.nparams = NP;
	st.enc = MACC_ENC_F32;
	st.x = f->x;
	st.mom = f->v;
	st.x_len = st.mom_len = sizeof(f->x);
	memset(st.sig, (int)round, sizeof(st.sig));
	return st;
}

static void test_current_next_late(void **state)
{
	struct fake *f = *state;
	struct macc_state st;

	/* Nothing yet: round 3 waits for its neighbour. */
	assert_false(inbox_arrived(f->a, f->p));
	assert_true(round_waits_for(f->a, f->p));
	/* Round 4 first (a neighbour ahead by one): kept in next, round 3 still awaited. */
	st = state_for(f, 4);
	assert_int_equal(inbox_accept(f->a, f->p, &st, &f->sess), INBOX_STORED);
	assert_true(f->p->next.full);
	assert_int_equal(f->p->next.round, 4);
	assert_true(f->p->known_round_valid);
	assert_int_equal(f->p->known_round, 4);
	/* It says it is past round 3 now: round 3 does not wait for it (its state for 3 was lost
	 * on the way, or will be folded). */
	assert_false(round_waits_for(f->a, f->p));
	f->p->known_round = 3;
	assert_true(round_waits_for(f->a, f->p));
	/* Round 3's state: in cur, with what was signed; the round's wait is over. */
	st = state_for(f, 3);
	assert_int_equal(inbox_accept(f->a, f->p, &st, &f->sess), INBOX_STORED);
	assert_true(inbox_arrived(f->a, f->p));
	assert_false(round_waits_for(f->a, f->p));
	assert_true(f->p->cur.x[0] == 3.0f && f->p->cur.v[NP - 1] == -3.0f);
	assert_true(f->p->cur.has_sig);
	assert_int_equal(f->p->cur.sig[0], 3);
	assert_int_equal(f->p->cur.snonce[0], 0xab);
	assert_int_equal(f->p->last_round, 3);
	assert_int_equal(f->p->known_round, 3); /* never lowered by an older round */
	/* The same round again (re-sent on a new session): not stored twice. */
	st = state_for(f, 3);
	st.x = f->v; /* other bytes: must not land */
	assert_int_equal(inbox_accept(f->a, f->p, &st, &f->sess), INBOX_HAVE);
	assert_true(f->p->cur.x[0] == 3.0f);
	/* A past round: late, only its round noted. */
	st = state_for(f, 2);
	assert_int_equal(inbox_accept(f->a, f->p, &st, &f->sess), INBOX_LATE);
	assert_int_equal(f->p->last_round, 2);
	/* The step: from now on round 3's state is late too. */
	f->a->phase = PH_STEP;
	f->p->cur.full = false;
	st = state_for(f, 3);
	assert_int_equal(inbox_accept(f->a, f->p, &st, &f->sess), INBOX_LATE);
	assert_false(f->p->cur.full);
	/* The round moves on: round 4's state (held in next) becomes the current one. */
	f->a->round = 4;
	f->a->phase = PH_WAIT;
	inbox_advance(f->a, 4);
	assert_true(inbox_arrived(f->a, f->p));
	assert_false(f->p->next.full);
	assert_true(f->p->cur.x[1] == 4.0f && f->p->cur.v[0] == -4.0f);
	/* And past round 5 (a jump): what is held is dropped. */
	inbox_advance(f->a, 6);
	assert_false(f->p->cur.full);
	assert_false(f->p->next.full);
}

/* Who the round waits for: not a dead neighbour, not one in quarantine under robust mixing. */
static void test_waits_for(void **state)
{
	struct fake *f = *state;

	assert_true(round_waits_for(f->a, f->p));
	f->p->dead = true;
	assert_false(round_waits_for(f->a, f->p));
	f->p->dead = false;
	f->a->robust = true;
	f->p->q.until = f->a->round + 2; /* quarantined while round < until */
	assert_false(round_waits_for(f->a, f->p));
	f->p->q.until = f->a->round; /* over */
	assert_true(round_waits_for(f->a, f->p));
	f->p->q.until = f->a->round + 2;
	f->a->robust = false; /* the plain path keeps no quarantine */
	assert_true(round_waits_for(f->a, f->p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_current_next_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_waits_for, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
