/*
 * fuzz_wire_misc.c - fuzzes the decoding of PING, PONG, BYE and STATS (and whatever else the
 * bytes turn out to be). Decoded PING/PONG/BYE must re-encode and decode to the same values; a
 * BYE text is always NUL-terminated within its buffer. A decoded STATS must point inside the
 * input, hold exactly n values (read them all: the sanitizers see any overrun), and, signed
 * again by a fixed identity for a fixed peer, decode to the same step, S, D and values bit for
 * bit; its session check on a session that never saw a HELLO must refuse it.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A session able to sign (our HELLO seen by a fixed peer), made once. */
static struct macc_identity me;
static struct macc_session signer;
static bool ready;

static void setup(void)
{
	uint8_t seed[MACC_SEED_BYTES], nonce[MACC_NONCE_BYTES];

	memset(seed, 0x0a, sizeof(seed));
	memset(nonce, 0xa0, sizeof(nonce));
	if (macc_identity_from_seed(&me, seed) != 0) {
		abort();
	}
	macc_session_init(&signer, &me, nonce);
	memset(signer.peer.bytes, 0x0b, sizeof(signer.peer.bytes));
	memset(signer.peer_nonce, 0xb0, sizeof(signer.peer_nonce));
	signer.have_hello = true;
	ready = true;
}

static void check_stats(const uint8_t *data, size_t size, const struct macc_stats *st)
{
	struct macc_stats_out so;
	struct macc_session fresh;
	struct macc_msg m2;
	struct macc_buf b;
	double *v;

	if (st->n > MACC_STATS_MAX_VALUES || st->values < data ||
	    st->values + st->n * 8 > data + size || st->body < data ||
	    st->body + st->body_len > data + size) {
		abort();
	}
	v = malloc(st->n ? st->n * sizeof(double) : 1);
	if (v == NULL) {
		return;
	}
	macc_f64le_load(v, st->values, st->n);
	memset(&fresh, 0, sizeof(fresh));
	if (macc_session_accept_stats(&fresh, st, NULL) != MACC_ESTATE) {
		abort();
	}
	if (!ready) {
		setup();
	}
	so = (struct macc_stats_out){st->step, st->avg_steps, st->exact_steps, v, st->n};
	macc_buf_init(&b, 0);
	if (macc_session_stats_encode(&signer, &so, &b) == 0) {
		if (macc_msg_decode(b.data + MACC_FRAME_HDR, b.len - MACC_FRAME_HDR, 0, &m2,
				    NULL) != 0 ||
		    m2.type != MACC_MSG_STATS || m2.u.stats.step != st->step ||
		    m2.u.stats.avg_steps != st->avg_steps ||
		    m2.u.stats.exact_steps != st->exact_steps || m2.u.stats.n != st->n ||
		    memcmp(m2.u.stats.values, st->values, st->n * 8) != 0) {
			abort();
		}
	}
	macc_buf_finish(&b);
	free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_msg m, m2;
	struct macc_buf b;
	int rc = macc_msg_decode(data, size, 0, &m, NULL);

	if (rc > 0) {
		abort();
	}
	if (rc != 0) {
		return 0;
	}
	if (m.type == MACC_MSG_STATS) {
		check_stats(data, size, &m.u.stats);
		return 0;
	}
	macc_buf_init(&b, 0);
	if (m.type == MACC_MSG_PING || m.type == MACC_MSG_PONG) {
		if (macc_ping_encode(&b, m.type, &m.u.ping) != 0) {
			abort();
		}
	} else if (m.type == MACC_MSG_BYE) {
		if (memchr(m.u.bye.text, '\0', sizeof(m.u.bye.text)) == NULL ||
		    macc_bye_encode(&b, m.u.bye.reason, m.u.bye.text) != 0) {
			abort();
		}
	}
	if (b.len > 0) {
		if (macc_msg_decode(b.data + MACC_FRAME_HDR, b.len - MACC_FRAME_HDR, 0, &m2, NULL) !=
			    0 ||
		    m2.type != m.type) {
			abort();
		}
		if (m.type == MACC_MSG_BYE ? (m2.u.bye.reason != m.u.bye.reason ||
					       strcmp(m2.u.bye.text, m.u.bye.text) != 0)
					    : memcmp(&m2.u.ping, &m.u.ping, sizeof(m.u.ping)) != 0) {
			abort();
		}
	}
	macc_buf_finish(&b);
	return 0;
}
