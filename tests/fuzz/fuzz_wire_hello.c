/*
 * fuzz_wire_hello.c - fuzzes the decoding of handshake messages (HELLO and HELLO_ACK) and the
 * session checks behind them.
 *
 * The input is one frame payload. A decoded HELLO must re-encode and decode to the same struct
 * (the codec is lossless for everything it accepts) and then goes through
 * macc_session_accept_hello; a decoded HELLO_ACK goes through macc_session_verify_ack on a
 * session that has seen a HELLO. Neither may ever succeed for a random key or signature.
 */
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct macc_identity self;
static struct macc_pubkey allow[2];

static void setup(void)
{
	uint8_t seed[MACC_SEED_BYTES];

	if (self.loaded) {
		return;
	}
	memset(seed, 0x0b, sizeof(seed));
	if (macc_identity_from_seed(&self, seed) != 0) {
		abort();
	}
	memset(seed, 0x0a, sizeof(seed));
	{
		struct macc_identity a;

		if (macc_identity_from_seed(&a, seed) != 0) {
			abort();
		}
		allow[0] = a.pub;
		macc_identity_finish(&a);
	}
	memset(allow[1].bytes, 0x42, sizeof(allow[1].bytes));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_session s;
	struct macc_msg m, m2;
	uint8_t nonce[MACC_NONCE_BYTES] = {1};
	int rc;

	setup();
	rc = macc_msg_decode(data, size, 0, &m, NULL);
	if (rc > 0) {
		abort();
	}
	if (rc != 0) {
		return 0;
	}
	macc_session_init(&s, &self, nonce);
	if (m.type == MACC_MSG_HELLO) {
		struct macc_buf b;
		size_t plen;

		macc_buf_init(&b, 0);
		if (macc_hello_encode(&b, &m.u.hello) != 0 || b.len < MACC_FRAME_HDR) {
			abort();
		}
		plen = macc_get_be32(b.data);
		if (plen != b.len - MACC_FRAME_HDR ||
		    macc_msg_decode(b.data + MACC_FRAME_HDR, plen, 0, &m2, NULL) != 0 ||
		    memcmp(&m2.u.hello, &m.u.hello, sizeof(m.u.hello)) != 0) {
			abort();
		}
		macc_buf_finish(&b);
		rc = macc_session_accept_hello(&s, &m.u.hello, allow, 2, NULL, 1, 2, "dmsgd", NULL);
		if (rc > 1 || (rc >= 0 && !s.have_hello) || (rc < 0 && s.have_hello)) {
			abort();
		}
	} else if (m.type == MACC_MSG_HELLO_ACK) {
		struct macc_hello h;
		uint8_t pn[MACC_NONCE_BYTES] = {2};
		struct macc_identity a;
		uint8_t seed[MACC_SEED_BYTES];

		memset(seed, 0x0a, sizeof(seed));
		if (macc_identity_from_seed(&a, seed) != 0) {
			abort();
		}
		macc_hello_init(&h, &a, pn, 1, 2, "dmsgd", 0, 1, "a");
		macc_identity_finish(&a);
		if (macc_session_accept_hello(&s, &h, allow, 2, NULL, 1, 2, "dmsgd", NULL) != 0) {
			abort();
		}
		/* A random signature over this session's fresh nonces never verifies. */
		if (macc_session_verify_ack(&s, &m.u.ack, NULL) == 0) {
			abort();
		}
	}
	macc_session_finish(&s);
	return 0;
}
