/*
 * inbox.c - what the neighbours sent, by round: each peer's receive slots (cur for the round in
 * progress, next for the one after, edge.c's later slots for push-sum in-neighbours that run
 * further ahead), the round each neighbour is known to be at, and the moving of slots from round
 * to round. No libuv: the round driver (round.c) asks, the sessions (session.c) deliver, and the
 * unit tests feed it fake states (tests/unit/test_inbox.c).
 *
 * Rules. A state for a round already stepped (or for the current round once its step was
 * queued) is late: only the neighbour's round is noted. A state already held for its round is
 * not stored again, except that a full f32 resync replaces a compressed one (compressed
 * exchange). What was signed is kept with the slot (the signature, both session nonces, the
 * digest algorithm, and the body bytes when the audit trail is on) so that robust mixing can
 * put a state it excludes in the audit trail.
 */
#include <string.h>

#include "agent.h"

bool inbox_arrived(const struct macc_agent *a, const struct peer *p)
{
	return p->cur.full && p->cur.round == a->round;
}

enum inbox_verdict inbox_accept(struct macc_agent *a, struct peer *p, const struct macc_state *st,
				const struct macc_session *sess)
{
	uint64_t round = st->round;
	struct slot *s;

	p->last_round = (int64_t)round;
	if (!p->known_round_valid || round > p->known_round) {
		p->known_round = round;
		p->known_round_valid = true;
	}
	if (round < a->round || (round == a->round && a->phase == PH_STEP)) {
		return INBOX_LATE;
	}
	s = round == a->round ? &p->cur : edge_future_slot(p, round);
	if (s->full && s->round == round &&
	    !(a->edge.compressed && st->enc == MACC_ENC_F32 && s->enc != MACC_ENC_F32)) {
		return INBOX_HAVE; /* re-sent on a new session; a resync state replaces */
	}
	edge_store_state(a, s, st);
	s->round = round;
	s->full = true;
	memcpy(s->sig, st->sig, sizeof(s->sig));
	memcpy(s->snonce, sess->peer_nonce, sizeof(s->snonce));
	memcpy(s->rnonce, sess->self_nonce, sizeof(s->rnonce));
	s->digest_alg = sess->rx_digest;
	s->has_sig = true;
	macc_buf_reset(&s->body);
	if (a->audit != NULL && macc_buf_append(&s->body, st->body, st->body_len) < 0) {
		s->has_sig = false;
	}
	return INBOX_STORED;
}

/* The round moved to r (a step, a jump): drop what is older, bring round r's state into cur. */
void inbox_advance(struct macc_agent *a, uint64_t r)
{
	for (size_t i = 0; i < a->npeers; i++) {
		struct peer *p = a->peers[i];

		if (p->cur.full && p->cur.round < r) {
			p->cur.full = false;
		}
		if (p->next.full && p->next.round <= r) {
			if (p->next.round == r) {
				struct slot t = p->cur;

				p->cur = p->next;
				p->next = t;
			}
			p->next.full = false;
		}
		edge_advance_slots(p, r);
	}
}
