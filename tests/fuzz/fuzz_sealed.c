/*
 * fuzz_sealed.c - fuzzes the sealed frame path: stream decoder, macc_session_open, message
 * decoder, on an established sealed session between two fixed agents.
 *
 * The first input byte picks the mode, the second a chunk size or a bit to flip.
 *  - Even mode byte: the rest is a byte stream fed to the frame decoder in chunks; every frame
 *    it yields is opened on the receiving session and, if it opens, decoded. The ephemeral
 *    seeds are those of the golden sealed frames (tests/data/golden/sealed_*.bin), so seeds
 *    made from them open and reach the codec; their mutations must not. A failure must be
 *    MACC_EBADSIG or MACC_EMALFORMED with the frame wiped, and the receiver stays failed.
 *  - Odd mode byte: the rest is a plaintext payload that the sending session seals (through
 *    macc_session_seal_frame) and the receiver opens and decodes, so the fuzzer reaches the
 *    codec behind a valid seal; it must come back byte for byte. With the mode's bit 1 set,
 *    one bit of the sealed frame (chosen by the second byte) is flipped first, and then it must
 *    not open.
 * The mode's bit 2 picks the suite: clear, XChaCha20-Poly1305 (the golden sealed_*.bin seeds);
 * set, AES-256-GCM (sealed_*_gcm.bin). Both are pinned, so an input does the same on every
 * CPU. Sessions are copied from a pair established once per suite, so every input starts at
 * the same counter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 4096

static struct macc_identity ida, idb;
static struct macc_session sa[2], sb[2]; /* per suite: sa sends, sb receives; both sealed */
static bool ready;

static void die_if(bool bad)
{
	if (bad) {
		abort();
	}
}

/* Decode one frame that `enc` wrote into b, as the peer would (no stream decoder needed). */
static int take_msg(struct macc_buf *b, struct macc_msg *m)
{
	return macc_msg_decode(b->data + MACC_FRAME_HDR, b->len - MACC_FRAME_HDR, 0, m, NULL);
}

/* Establish the sealed pair of suite `aead` (0 or 1) into sa[aead], sb[aead]. */
static void setup_pair(int aead)
{
	uint8_t seed[32], na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	struct macc_seal_limits lim = {.bytes = 4096, .frames = 2};
	struct macc_session *a = &sa[aead], *b = &sb[aead];
	struct macc_hello ha, hb;
	struct macc_buf f;
	struct macc_msg m;

	memset(na, 0xa0, sizeof(na));
	memset(nb, 0xb0, sizeof(nb));
	macc_session_init(a, &ida, na);
	macc_session_init(b, &idb, nb);
	/* As in test_seal.c's golden vectors: rekey every 2 frames, so streams cross epochs. */
	memset(seed, 0x5a, sizeof(seed));
	die_if(macc_session_enable_seal(a, &lim, seed) != 0);
	die_if(macc_session_seal_offer_aes(a, aead == MACC_AEAD_AES256GCM) != 0);
	memset(seed, 0x5b, sizeof(seed));
	die_if(macc_session_enable_seal(b, &lim, seed) != 0);
	die_if(macc_session_seal_offer_aes(b, aead == MACC_AEAD_AES256GCM) != 0);
	macc_hello_init(&ha, &ida, na, 1, 8, "dmsgd", 0, 1, "a");
	macc_hello_init(&hb, &idb, nb, 1, 8, "dmsgd", 0, 1, "b");
	macc_session_hello_prepare(a, &ha);
	macc_session_hello_prepare(b, &hb);
	die_if(macc_session_accept_hello(b, &ha, &ida.pub, 1, NULL, 1, 8, "dmsgd", NULL) < 0);
	die_if(macc_session_accept_hello(a, &hb, &idb.pub, 1, NULL, 1, 8, "dmsgd", NULL) < 0);
	macc_buf_init(&f, 0);
	die_if(macc_session_ack_encode(a, &f) != 0 || take_msg(&f, &m) != 0 ||
	       macc_session_verify_ack(b, &m.u.ack, NULL) != 0);
	macc_buf_reset(&f);
	die_if(macc_session_ack_encode(b, &f) != 0 || take_msg(&f, &m) != 0 ||
	       macc_session_verify_ack(a, &m.u.ack, NULL) != 0);
	macc_buf_finish(&f);
	die_if(!macc_session_tx_sealed(a) || !macc_session_rx_sealed(b));
	die_if(macc_session_aead(a) != aead || macc_session_aead(b) != aead);
}

static void setup(void)
{
	uint8_t seed[32];

	if (ready) {
		return;
	}
	memset(seed, 0x0a, sizeof(seed));
	die_if(macc_identity_from_seed(&ida, seed) != 0);
	memset(seed, 0x0b, sizeof(seed));
	die_if(macc_identity_from_seed(&idb, seed) != 0);
	setup_pair(MACC_AEAD_XCHACHA20POLY1305);
	setup_pair(MACC_AEAD_AES256GCM);
	ready = true;
}

static bool zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

/* Byte stream: after the first frame that fails, every frame fails the same way. */
static void stream(int aead, const uint8_t *data, size_t size, size_t chunk)
{
	struct macc_session rx = sb[aead];
	struct macc_frame_decoder d;
	size_t off = 0;
	int failed = 0;

	macc_frame_decoder_init(&d, FUZZ_MAX);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t used = (size_t)-1, plen, len;
		int rc = macc_frame_decoder_feed(&d, data + off, n, &used);
		uint8_t *p;

		die_if(used > n);
		off += used;
		if (rc < 0) {
			break;
		}
		if (rc == 0) {
			continue;
		}
		p = macc_frame_decoder_take(&d, &plen);
		die_if(p == NULL);
		rc = macc_session_open(&rx, p, plen, &len, NULL);
		if (rc == 0) {
			struct macc_msg m;

			die_if(failed != 0 || len != plen - MACC_SEAL_OVERHEAD);
			die_if(macc_msg_decode(p, len, FUZZ_MAX, &m, NULL) > 0);
			free(p);
			continue;
		}
		die_if(failed == 0 && rc != MACC_EBADSIG && rc != MACC_EMALFORMED);
		die_if(failed != 0 && rc != failed);
		die_if(failed == 0 && !zero(p, plen));
		failed = rc;
		free(p);
	}
	macc_frame_decoder_finish(&d);
	macc_session_finish(&rx);
}

/* Seal `size` bytes as one payload, optionally flip one bit, open and decode. */
static void roundtrip(int aead, const uint8_t *data, size_t size, bool flip, uint8_t where)
{
	struct macc_session tx = sa[aead], rx = sb[aead];
	struct macc_buf b;
	struct macc_msg m;
	size_t len;
	int rc;

	macc_buf_init(&b, 0);
	die_if(macc_frame_put_header(&b, size) != 0 || macc_buf_append(&b, data, size) != 0);
	die_if(macc_session_seal_frame(&tx, &b, 0) != 0);
	die_if(b.len != MACC_FRAME_HDR + size + MACC_SEAL_OVERHEAD);
	if (flip) {
		/* Any bit after the header (a header flip changes the length the stream
		 * decoder reads, tested in stream mode and the unit tests). */
		size_t body = b.len - MACC_FRAME_HDR;
		size_t bit = (size_t)where * 8 + where % 8;

		bit %= 8 * body;
		b.data[MACC_FRAME_HDR + bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	rc = macc_session_open(&rx, b.data + MACC_FRAME_HDR, b.len - MACC_FRAME_HDR, &len, NULL);
	if (flip) {
		die_if(rc != MACC_EBADSIG);
		die_if(!zero(b.data + MACC_FRAME_HDR, b.len - MACC_FRAME_HDR));
	} else {
		die_if(rc != 0 || len != size);
		die_if(size > 0 && memcmp(b.data + MACC_FRAME_HDR, data, size) != 0);
		die_if(rx.rx.counter != 1 || tx.tx.counter != 1 || rx.rx.epoch != tx.tx.epoch);
		die_if(macc_msg_decode(b.data + MACC_FRAME_HDR, len, FUZZ_MAX, &m, NULL) > 0);
	}
	macc_buf_finish(&b);
	macc_session_finish(&tx);
	macc_session_finish(&rx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2) {
		return 0;
	}
	int aead = (data[0] & 4) != 0 ? MACC_AEAD_AES256GCM : MACC_AEAD_XCHACHA20POLY1305;

	setup();
	if ((data[0] & 1) == 0) {
		stream(aead, data + 2, size - 2, 1 + data[1] % 64);
	} else if (size - 2 <= FUZZ_MAX) {
		roundtrip(aead, data + 2, size - 2, (data[0] & 2) != 0, data[1]);
	}
	return 0;
}
