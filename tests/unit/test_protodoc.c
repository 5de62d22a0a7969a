/*
 * test_protodoc.c - macc-protocol(7) held against the code, so the page cannot drift from it.
 *
 * The page's TEST VECTORS section prints every vector as a named block of hex:
 *
 *     hello.bin (158 bytes)
 *       0000009a 8ba37665 ...
 *
 * This test computes each of them here with the library, from the inputs the page states
 * (fixed Ed25519 seeds, session nonces, ephemeral X25519 seeds, payloads), and checks that
 *   1. the page holds exactly the vectors computed here, each with the computed bytes (a vector
 *      missing from the page, an unknown one, or one byte off fails, naming the vector and the
 *      first differing offset);
 *   2. every vector that is a golden file (tests/data/golden/) equals that file, so the page, the
 *      golden files and the code are one and the same.
 * Texts the library does not export (the HELLO_ACK proof) are built here field by field as the
 * page describes them and must verify under the signature the code produced, and so must the
 * signed STATE texts; the key-exchange hash is put together from the directional keys by the
 * page's role rule.
 *
 * Nothing here may depend on the machine the test runs on: an agent offers AES-256-GCM and
 * signs with SHA-256 only where its CPU has the instructions (macc_aead_aes_fast,
 * macc_digest_preferred), so every session below says explicitly what it offers
 * (macc_session_seal_offer_aes, macc_session_set_digest) and checks that the suite and the
 * digests the page names are the ones negotiated.
 *
 * MACC_PROTODOC_DUMP=1 prints every computed vector in the page's format instead of checking,
 * to paste into the page after a deliberate wire change (then regenerate the golden files with
 * MACC_UPDATE_GOLDEN=1 test_proto / test_seal, and check the diff).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "macc/consensus.h"
#include "macc/nn.h"
#include "macc/proto.h"

#define MODEL_HASH 0x1234abcd5678ef01ull
#define ALGO "dmsgd"
#define NPARAMS 8
#define MAX_VECS 64
#define MAX_PAGE ((size_t)1 << 20)
#define INT8_N 260

struct vec {
	char name[48];
	uint8_t *p;
	size_t len;
	const char *golden; /* file under tests/data/golden/ it must equal, or NULL */
};

struct vecs {
	struct vec v[MAX_VECS];
	size_t n;
	int err;        /* first failure while computing */
	char why[1024]; /* what failed */
};

/* ---------------------------------------------------------------------------------------- */
/* Vector table                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void fail_compute(struct vecs *vs, int rc, const char *what)
{
	if (vs->err == 0) {
		vs->err = rc != 0 ? rc : -EINVAL;
		snprintf(vs->why, sizeof(vs->why), "%s (%s)", what, macc_strerror(rc));
	}
}

static void add(struct vecs *vs, const char *name, const void *p, size_t len, const char *golden)
{
	struct vec *v;

	if (vs->n == MAX_VECS) {
		fail_compute(vs, -ENOSPC, "too many vectors");
		return;
	}
	v = &vs->v[vs->n];
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->p = malloc(len > 0 ? len : 1);
	if (v->p == NULL) {
		fail_compute(vs, -ENOMEM, name);
		return;
	}
	memcpy(v->p, p, len);
	v->len = len;
	v->golden = golden;
	vs->n++;
}

/* A whole frame in `b` as a vector. */
static void add_buf(struct vecs *vs, const char *name, const struct macc_buf *b,
		    const char *golden)
{
	add(vs, name, b->data, b->len, golden);
}

static void vecs_finish(struct vecs *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i].p);
	}
	memset(vs, 0, sizeof(*vs));
}

static const struct vec *vec_find(const struct vecs *vs, const char *name)
{
	for (size_t i = 0; i < vs->n; i++) {
		if (strcmp(vs->v[i].name, name) == 0) {
			return &vs->v[i];
		}
	}
	return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The inputs the page states                                                                */
/* ---------------------------------------------------------------------------------------- */

static int identity(struct macc_identity *id, uint8_t fill)
{
	uint8_t seed[MACC_SEED_BYTES];

	memset(seed, fill, sizeof(seed));
	return macc_identity_from_seed(id, seed);
}

/* Nonce bytes fill, fill+1, ... (step 1) or fill repeated (step 0). */
static void nonce_fill(uint8_t n[MACC_NONCE_BYTES], uint8_t fill, uint8_t step)
{
	for (int i = 0; i < MACC_NONCE_BYTES; i++) {
		n[i] = (uint8_t)(fill + step * i);
	}
}

/* The STATE payload of the examples: x_i = i/2 - 1, v_i = -x_i/4. */
static void example_state(float x[NPARAMS], float v[NPARAMS])
{
	for (int i = 0; i < NPARAMS; i++) {
		x[i] = 0.5f * (float)i - 1.0f;
		v[i] = -x[i] / 4;
	}
}

/* Decode the single frame in b (header + payload) into m; the payload stays in *ret_payload. */
static int decode_frame(const struct macc_buf *b, struct macc_msg *m, uint8_t **ret_payload)
{
	uint8_t *p;
	int rc;

	if (b->len < MACC_FRAME_HDR || macc_get_be32(b->data) != b->len - MACC_FRAME_HDR) {
		return MACC_EMALFORMED;
	}
	p = malloc(b->len);
	if (p == NULL) {
		return -ENOMEM;
	}
	memcpy(p, b->data + MACC_FRAME_HDR, b->len - MACC_FRAME_HDR);
	rc = macc_msg_decode(p, b->len - MACC_FRAME_HDR, 0, m, NULL);
	if (rc != 0) {
		free(p);
		return rc;
	}
	*ret_payload = p;
	return 0;
}

/* What one side of a session offers, beyond its identity and HELLO fields. */
struct side_opts {
	uint8_t eph_fill;                     /* 0: no sealing; else the ephemeral seed's fill */
	const struct macc_seal_limits *lim;   /* rekey schedule when sealing */
	bool aes;                             /* offer AES-256-GCM (when sealing) */
	int digest;                           /* -1: no digest bits (flags 2, 3 clear); else the
					       * enum macc_digest_alg it signs with */
};

static const struct side_opts plain_opts = {.digest = -1};

struct side {
	struct macc_identity *id;
	struct macc_session s;
	struct macc_hello h;
	struct macc_buf hello, ack;
};

/* Our HELLO's sealing and digest settings, as `o` says: never this CPU's defaults. */
static int side_offer(struct side *x, const struct side_opts *o)
{
	uint8_t seed[MACC_KX_SEED_BYTES];
	int rc = 0;

	if (o->eph_fill != 0) {
		memset(seed, o->eph_fill, sizeof(seed));
		rc = macc_session_enable_seal(&x->s, o->lim, seed);
		rc = rc != 0 ? rc : macc_session_seal_offer_aes(&x->s, o->aes);
	}
	if (rc == 0 && o->digest >= 0) {
		rc = macc_session_set_digest(&x->s, o->digest);
	}
	return rc;
}

/* HELLO for one side. */
static int side_start(struct side *x, struct macc_identity *id, const uint8_t *nonce,
		      uint64_t round, uint32_t degree, const char *name, const struct side_opts *o)
{
	int rc;

	x->id = id;
	macc_buf_init(&x->hello, 0);
	macc_buf_init(&x->ack, 0);
	macc_session_init(&x->s, id, nonce);
	rc = side_offer(x, o);
	if (rc != 0) {
		return rc;
	}
	macc_hello_init(&x->h, id, nonce, MODEL_HASH, NPARAMS, ALGO, round, degree, name);
	macc_session_hello_prepare(&x->s, &x->h);
	return macc_hello_encode(&x->hello, &x->h);
}

static void side_finish(struct side *x)
{
	macc_buf_finish(&x->hello);
	macc_buf_finish(&x->ack);
	macc_session_finish(&x->s);
}

/* `to` receives `from`'s HELLO and answers with its HELLO_ACK. */
static int take_hello(struct side *to, const struct side *from)
{
	struct macc_msg m;
	uint8_t *p = NULL;
	int rc = decode_frame(&from->hello, &m, &p);

	if (rc == 0) {
		rc = macc_session_accept_hello(&to->s, &m.u.hello, &from->id->pub, 1, NULL,
					       MODEL_HASH, NPARAMS, ALGO, NULL);
	}
	if (rc >= 0) {
		rc = macc_session_ack_encode(&to->s, &to->ack);
	}
	free(p);
	return rc;
}

/* `to` verifies `from`'s HELLO_ACK. */
static int take_ack(struct side *to, const struct side *from)
{
	struct macc_msg m;
	uint8_t *p = NULL;
	int rc = decode_frame(&from->ack, &m, &p);

	if (rc == 0) {
		rc = m.type == MACC_MSG_HELLO_ACK ? macc_session_verify_ack(&to->s, &m.u.ack, NULL)
						  : MACC_EMALFORMED;
	}
	free(p);
	return rc;
}

static int handshake(struct side *a, struct side *b)
{
	int rc = take_hello(b, a);

	if (rc >= 0) {
		rc = take_hello(a, b);
	}
	if (rc >= 0) {
		rc = take_ack(b, a);
	}
	if (rc >= 0) {
		rc = take_ack(a, b);
	}
	return rc < 0 ? rc : 0;
}

static uint8_t *put(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

static uint8_t *put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		*p++ = (uint8_t)(v >> (8 * i));
	}
	return p;
}

#define ACK_TEXT_BYTES 244

/* The HELLO_ACK proof signed by `signer` towards `verifier`, built as the page describes it. */
static void ack_text(uint8_t out[ACK_TEXT_BYTES], const struct side *signer,
		     const struct side *verifier)
{
	uint8_t *p = out;

	p = put(p, "macc/2/hello", 12);
	p = put(p, signer->id->pub.bytes, MACC_PUBKEY_BYTES);
	p = put(p, verifier->id->pub.bytes, MACC_PUBKEY_BYTES);
	p = put(p, signer->h.nonce, MACC_NONCE_BYTES);
	p = put(p, verifier->h.nonce, MACC_NONCE_BYTES);
	macc_put_be32(p, signer->h.flags);
	macc_put_be32(p + 4, verifier->h.flags);
	p += 8;
	p = put(p, signer->h.eph, MACC_KX_PUBKEY_BYTES);
	p = put(p, verifier->h.eph, MACC_KX_PUBKEY_BYTES);
	p = put_be64(p, signer->h.rekey.bytes);
	p = put_be64(p, signer->h.rekey.frames);
	p = put_be64(p, verifier->h.rekey.bytes);
	p = put_be64(p, verifier->h.rekey.frames);
	assert_true(p == out + ACK_TEXT_BYTES);
}

/* The page's ACK text must be what the code signed: verify the signature in signer's ACK. */
static void add_ack_text(struct vecs *vs, const char *name, const struct side *signer,
			 const struct side *verifier)
{
	uint8_t text[ACK_TEXT_BYTES];
	struct macc_msg m;
	uint8_t *p = NULL;
	int rc;

	ack_text(text, signer, verifier);
	rc = decode_frame(&signer->ack, &m, &p);
	if (rc == 0) {
		rc = macc_verify(&signer->id->pub, text, sizeof(text), m.u.ack.sig);
	}
	free(p);
	if (rc != 0) {
		fail_compute(vs, rc, "the HELLO_ACK text as the page builds it does not verify");
		return;
	}
	add(vs, name, text, sizeof(text), NULL);
}

/* A STATE frame (prefix and body, in the clear) from `from` on its session. */
static int plain_state(struct side *from, struct macc_state_body *body,
		       const struct macc_state_out *so, struct macc_buf *out)
{
	struct macc_state_prefix pre;
	int rc;

	macc_buf_reset(out);
	rc = macc_state_body_encode(body, so);
	rc = rc != 0 ? rc : macc_session_state_prefix(&from->s, body, &pre);
	rc = rc != 0 ? rc : macc_buf_append(out, pre.bytes, pre.len);
	return rc != 0 ? rc : macc_buf_append(out, body->buf.data, body->buf.len);
}

/* The signed STATE text as the page builds it (`alg` names the digest and the domain), from
 * `sender` to `receiver`: it must verify under the signature of `frame`, the code's STATE. */
static void add_state_text(struct vecs *vs, const char *name, int alg, const struct side *sender,
			   const struct side *receiver, const struct macc_state_body *body,
			   const struct macc_buf *frame)
{
	uint8_t text[MACC_STATE_SIGNED_BYTES], *p = NULL;
	struct macc_msg m;
	int rc;

	macc_state_signed_text_alg(alg, &sender->id->pub, &receiver->id->pub, sender->h.nonce,
				   receiver->h.nonce, body->round, body->digest, text);
	rc = decode_frame(frame, &m, &p);
	if (rc == 0) {
		rc = m.type == MACC_MSG_STATE ? macc_verify(&sender->id->pub, text, sizeof(text),
							    m.u.state.sig)
					      : MACC_EMALFORMED;
	}
	free(p);
	if (rc != 0) {
		fail_compute(vs, rc, "the signed STATE text as the page builds it does not verify");
		return;
	}
	add(vs, name, text, sizeof(text), NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Computing the vectors                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* A's HELLO of hello.bin, and the same with the optional platform fields. */
static void hello_vectors(struct vecs *vs, struct macc_identity *ia)
{
	struct side solo;
	uint8_t na[MACC_NONCE_BYTES];
	int rc;

	nonce_fill(na, 0xa0, 1);
	rc = side_start(&solo, ia, na, 42, 2, "agent-a", &plain_opts);
	if (rc == 0) {
		add_buf(vs, "hello.bin", &solo.hello, "hello.bin");
		snprintf(solo.h.arch, sizeof(solo.h.arch), "%s", "x86_64");
		snprintf(solo.h.blas, sizeof(solo.h.blas), "%s", "Haswell");
		macc_buf_reset(&solo.hello);
		rc = macc_hello_encode(&solo.hello, &solo.h);
	}
	if (rc == 0) {
		add_buf(vs, "hello-platform", &solo.hello, NULL);
	} else {
		fail_compute(vs, rc, "HELLO");
	}
	side_finish(&solo);
}

/* Plaintext session A <-> B (test_proto.c's golden files). */
static void plain_vectors(struct vecs *vs, struct macc_identity *ia, struct macc_identity *ib)
{
	struct side a = {0}, b = {0};
	struct macc_state_body body = {0};
	struct macc_buf out;
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	float x[NPARAMS], v[NPARAMS];
	struct macc_state_out so = {.round = 42, .nparams = NPARAMS, .x = x, .mom = v};
	struct macc_ping ping = {.seq = 7, .time_ns = 1234567890123ull};
	int rc;

	example_state(x, v);
	nonce_fill(na, 0xa0, 1);
	nonce_fill(nb, 0xb0, 1);
	macc_buf_init(&out, 0);
	hello_vectors(vs, ia);
	rc = side_start(&a, ia, na, 0, 2, "x", &plain_opts);
	rc = rc != 0 ? rc : side_start(&b, ib, nb, 0, 2, "y", &plain_opts);
	rc = rc != 0 ? rc : handshake(&a, &b);
	if (rc != 0) {
		fail_compute(vs, rc, "plaintext handshake");
		goto out;
	}
	add_ack_text(vs, "ack-text", &a, &b);
	add_buf(vs, "hello_ack.bin", &a.ack, "hello_ack.bin");
	rc = plain_state(&a, &body, &so, &out);
	if (rc != 0 || a.s.tx_digest != MACC_DIGEST_BLAKE2B256) {
		fail_compute(vs, rc, "STATE (or a digest other than BLAKE2b-256)");
		goto out;
	}
	add(vs, "state-digest", body.digest, sizeof(body.digest), NULL);
	add_state_text(vs, "state-text", MACC_DIGEST_BLAKE2B256, &a, &b, &body, &out);
	add_buf(vs, "state.bin", &out, "state.bin");
	so.round = 43;
	so.mom = NULL;
	rc = plain_state(&a, &body, &so, &out);
	if (rc != 0) {
		fail_compute(vs, rc, "STATE without momentum");
		goto out;
	}
	add_buf(vs, "state_nomom.bin", &out, "state_nomom.bin");
	macc_buf_reset(&out);
	rc = macc_ping_encode(&out, MACC_MSG_PING, &ping);
	add_buf(vs, "ping.bin", &out, "ping.bin");
	macc_buf_reset(&out);
	rc = rc != 0 ? rc : macc_ping_encode(&out, MACC_MSG_PONG, &ping);
	add_buf(vs, "pong.bin", &out, "pong.bin");
	macc_buf_reset(&out);
	rc = rc != 0 ? rc : macc_bye_encode(&out, MACC_EMODEL, "model mismatch");
	add_buf(vs, "bye.bin", &out, "bye.bin");
	if (rc != 0) {
		fail_compute(vs, rc, "PING, PONG or BYE");
	}
out:
	side_finish(&a);
	side_finish(&b);
	macc_state_body_finish(&body);
	macc_buf_finish(&out);
}

/* Plaintext session A <-> B where both check and send SHA-256 digests (test_seal.c's golden
 * files hello_sha256.bin and state_sha256.bin). */
static void sha256_vectors(struct vecs *vs, struct macc_identity *ia, struct macc_identity *ib)
{
	const struct side_opts sha = {.digest = MACC_DIGEST_SHA256};
	struct side a = {0}, b = {0};
	struct macc_state_body body = {0};
	struct macc_buf out;
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	float x[NPARAMS], v[NPARAMS];
	struct macc_state_out so = {.round = 42, .nparams = NPARAMS, .x = x, .mom = v,
				    .digest_alg = MACC_DIGEST_SHA256};
	int rc;

	example_state(x, v);
	nonce_fill(na, 0xa0, 0);
	nonce_fill(nb, 0xb0, 0);
	macc_buf_init(&out, 0);
	rc = side_start(&a, ia, na, 0, 1, "a", &sha);
	rc = rc != 0 ? rc : side_start(&b, ib, nb, 0, 1, "b", &sha);
	if (rc != 0) {
		fail_compute(vs, rc, "SHA-256 HELLO");
		goto out;
	}
	add_buf(vs, "hello_sha256.bin", &a.hello, "hello_sha256.bin");
	rc = handshake(&a, &b);
	if (rc != 0 || a.s.tx_digest != MACC_DIGEST_SHA256 ||
	    b.s.rx_digest != MACC_DIGEST_SHA256) {
		fail_compute(vs, rc, "SHA-256 handshake (or another digest negotiated)");
		goto out;
	}
	rc = plain_state(&a, &body, &so, &out);
	if (rc != 0) {
		fail_compute(vs, rc, "SHA-256 STATE");
		goto out;
	}
	add(vs, "state-sha256-digest", body.digest, sizeof(body.digest), NULL);
	add_state_text(vs, "state-sha256-text", MACC_DIGEST_SHA256, &a, &b, &body, &out);
	add_buf(vs, "state_sha256.bin", &out, "state_sha256.bin");
out:
	side_finish(&a);
	side_finish(&b);
	macc_state_body_finish(&body);
	macc_buf_finish(&out);
}

/* One sealed PING from `from`, opened by `to`. */
static int sealed_ping(struct side *from, struct side *to, uint64_t seq, struct macc_buf *out)
{
	struct macc_ping pg = {.seq = seq, .time_ns = 1000 + seq};
	size_t n = 0;
	uint8_t *p;
	int rc;

	macc_buf_reset(out);
	rc = macc_ping_encode(out, MACC_MSG_PING, &pg);
	rc = rc != 0 ? rc : macc_session_seal_frame(&from->s, out, 0);
	if (rc != 0) {
		return rc;
	}
	p = malloc(out->len);
	if (p == NULL) {
		return -ENOMEM;
	}
	memcpy(p, out->data + MACC_FRAME_HDR, out->len - MACC_FRAME_HDR);
	rc = macc_session_open(&to->s, p, out->len - MACC_FRAME_HDR, &n, NULL);
	free(p);
	return rc;
}

/* The names of one suite's vectors on the page. */
struct suite_names {
	const char *hello, *ack_text, *key_ab0, *key_ba0, *ping, *key_ab1, *state;
};

static const struct suite_names xchacha_names = {
	"hello_sealed.bin", "sealed-ack-text", "key-a-to-b-0", "key-b-to-a-0",
	"sealed_ping.bin",  "key-a-to-b-1",    "sealed_state.bin",
};

static const struct suite_names gcm_names = {
	"hello_sealed_gcm.bin", "sealed-gcm-ack-text", "key-a-to-b-0-gcm",     "key-b-to-a-0-gcm",
	"sealed_ping_gcm.bin",  "key-a-to-b-1-gcm",    "sealed_state_gcm.bin",
};

/* The key-exchange hash h of the page, from A's ephemeral seed and B's public key, put
 * together from libsodium's directional keys by the page's role rule: the smaller ephemeral
 * key is the client, whose rx is the first half of h and tx the second. */
static int kx_hash(uint8_t h[2 * MACC_AEAD_KEY_BYTES], const struct side *a,
		   const struct side *b)
{
	uint8_t kx_rx[MACC_AEAD_KEY_BYTES], kx_tx[MACC_AEAD_KEY_BYTES], sk[32], pk[32];
	uint8_t seed[32];
	bool a_client = memcmp(a->h.eph, b->h.eph, MACC_KX_PUBKEY_BYTES) < 0;
	int rc;

	memset(seed, 0x5a, sizeof(seed));
	rc = macc_kx_keypair(pk, sk, seed);
	rc = rc != 0 ? rc : macc_kx_session_keys(kx_rx, kx_tx, pk, sk, b->h.eph);
	macc_memzero(sk, sizeof(sk));
	if (rc == 0) {
		memcpy(h, a_client ? kx_rx : kx_tx, MACC_AEAD_KEY_BYTES);
		memcpy(h + MACC_AEAD_KEY_BYTES, a_client ? kx_tx : kx_rx, MACC_AEAD_KEY_BYTES);
	}
	macc_memzero(kx_rx, sizeof(kx_rx));
	macc_memzero(kx_tx, sizeof(kx_tx));
	return rc;
}

/* After the handshake: two sealed PINGs from A (the second ends A's epoch 0), then A's STATE
 * of round 42, the first frame under the stepped key. */
static void sealed_frames(struct vecs *vs, struct side *a, struct side *b,
			  const struct suite_names *nm)
{
	struct macc_state_body body = {0};
	struct macc_buf out;
	float x[NPARAMS], v[NPARAMS];
	struct macc_state_out so = {.round = 42, .nparams = NPARAMS, .x = x, .mom = v};
	int rc;

	example_state(x, v);
	macc_buf_init(&out, 0);
	add(vs, nm->key_ab0, a->s.tx.key, MACC_AEAD_KEY_BYTES, NULL);
	add(vs, nm->key_ba0, a->s.rx.key, MACC_AEAD_KEY_BYTES, NULL);
	rc = sealed_ping(a, b, 9, &out);
	if (rc != 0) {
		fail_compute(vs, rc, "sealed PING");
		goto out;
	}
	add_buf(vs, nm->ping, &out, nm->ping);
	rc = sealed_ping(a, b, 10, &out);
	if (rc != 0 || a->s.tx.epoch != 1) {
		fail_compute(vs, rc, "second sealed PING and the rekey after it");
		goto out;
	}
	add(vs, nm->key_ab1, a->s.tx.key, MACC_AEAD_KEY_BYTES, NULL);
	macc_buf_reset(&out);
	rc = macc_state_body_encode(&body, &so);
	rc = rc != 0 ? rc : macc_session_seal_state(&a->s, &body, &out);
	if (rc != 0) {
		fail_compute(vs, rc, "sealed STATE");
		goto out;
	}
	add_buf(vs, nm->state, &out, nm->state);
out:
	macc_state_body_finish(&body);
	macc_buf_finish(&out);
}

/* Sealed session A <-> B under suite `aead` (test_seal.c's golden files): both sides offer
 * AES-256-GCM for that suite, neither for XChaCha20-Poly1305, whatever this CPU has. */
static void sealed_vectors(struct vecs *vs, struct macc_identity *ia, struct macc_identity *ib,
			   int aead)
{
	const struct macc_seal_limits lim = {.bytes = 4096, .frames = 2};
	const bool gcm = aead == MACC_AEAD_AES256GCM;
	const struct suite_names *nm = gcm ? &gcm_names : &xchacha_names;
	const struct side_opts oa = {.eph_fill = 0x5a, .lim = &lim, .aes = gcm, .digest = -1};
	const struct side_opts ob = {.eph_fill = 0x5b, .lim = &lim, .aes = gcm, .digest = -1};
	struct side a = {0}, b = {0};
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES], h[2 * MACC_AEAD_KEY_BYTES];
	int rc;

	nonce_fill(na, 0xa0, 0);
	nonce_fill(nb, 0xb0, 0);
	rc = side_start(&a, ia, na, 0, 1, "a", &oa);
	rc = rc != 0 ? rc : side_start(&b, ib, nb, 0, 1, "b", &ob);
	if (rc != 0) {
		fail_compute(vs, rc, "sealed HELLO");
		goto out;
	}
	if (!gcm) {
		add(vs, "a-eph-public-key", a.h.eph, MACC_KX_PUBKEY_BYTES, NULL);
		add(vs, "b-eph-public-key", b.h.eph, MACC_KX_PUBKEY_BYTES, NULL);
	}
	add_buf(vs, nm->hello, &a.hello, nm->hello);
	rc = handshake(&a, &b);
	if (rc != 0 || macc_session_aead(&a.s) != aead || macc_session_aead(&b.s) != aead) {
		fail_compute(vs, rc, gcm ? "AES-256-GCM handshake (or another suite negotiated)"
					 : "XChaCha20-Poly1305 handshake (or another suite)");
		goto out;
	}
	add_ack_text(vs, nm->ack_text, &a, &b);
	if (!gcm) {
		rc = kx_hash(h, &a, &b);
		if (rc != 0) {
			fail_compute(vs, rc, "key exchange");
			goto out;
		}
		add(vs, "kx-hash", h, sizeof(h), NULL);
	}
	sealed_frames(vs, &a, &b, nm);
out:
	side_finish(&a);
	side_finish(&b);
}

/* The compressor input of the page: eight float32 values, one that needs rounding in bf16 and
 * a tie in |value| for top-k. */
static const float compress_in[NPARAMS] = {
	1.0f / 3.0f, -2.5f, 0.1f, 0.001f, -0.75f, 3.0f, 0.0f, -1.0f / 3.0f,
};

static void add_blob(struct vecs *vs, const char *name, const char *spec, size_t n,
		     const float *d)
{
	struct macc_compressor c;
	struct macc_errmsg err = {{0}};
	uint8_t blob[4096];
	ssize_t len;
	int rc = macc_compress_parse(spec, &c, &err);

	if (rc != 0) {
		fail_compute(vs, rc, spec);
		return;
	}
	len = macc_compress_encode(&c, n, d, blob, sizeof(blob), &err);
	if (len < 0) {
		fail_compute(vs, (int)len, err.text);
		return;
	}
	add(vs, name, blob, (size_t)len, NULL);
}

static void compress_vectors(struct vecs *vs)
{
	uint8_t in[4 * NPARAMS];
	float d[INT8_N];

	macc_f32le_store(in, compress_in, NPARAMS);
	add(vs, "compress-input", in, sizeof(in), NULL);
	add_blob(vs, "bf16-blob", "bf16", NPARAMS, compress_in);
	add_blob(vs, "topk-blob", "topk:0.5", NPARAMS, compress_in);
	for (int i = 0; i < INT8_N; i++) {
		d[i] = (float)(i - 130) / 64.0f;
	}
	add_blob(vs, "int8-blob", "int8", INT8_N, d);
}

/* Model hashes, as the u64 travels in HELLO: 8 bytes, big-endian. */
static void add_model(struct vecs *vs, const char *name, const char *spec)
{
	struct macc_model *m = NULL;
	struct macc_errmsg err = {{0}};
	uint8_t be[8];
	uint64_t h;
	int rc = macc_model_create(spec, 1, &m, &err);

	if (rc != 0) {
		fail_compute(vs, rc, err.text);
		return;
	}
	h = macc_model_hash(m);
	for (int i = 0; i < 8; i++) {
		be[i] = (uint8_t)(h >> (56 - 8 * i));
	}
	add(vs, name, be, sizeof(be), NULL);
	macc_model_destroy(m);
}

/* STATS (the standardisation agreement, the page's STANDARDISATION section): A to B on the
 * plaintext session of hello_ack.bin, step 3 of S = 50 and D = 2, the values of an average
 * step for d = 3 features. The signed text is the library's, checked against the frame's
 * signature. */
static void stats_vectors(struct vecs *vs, struct macc_identity *ia, struct macc_identity *ib)
{
	static const double values[7] = {4.0, 8.0, -0.0, 20.0, 20.0, 0.1, 1e300};
	struct macc_stats_out so = {.step = 3, .avg_steps = 50, .exact_steps = 2,
				    .values = values, .n = 7};
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	uint8_t digest[MACC_DIGEST_BYTES], text[MACC_STATE_SIGNED_BYTES];
	struct side a, b;
	struct macc_buf out;
	struct macc_msg m;
	uint8_t *p = NULL;
	int rc;

	nonce_fill(na, 0xa0, 1);
	nonce_fill(nb, 0xb0, 1);
	macc_buf_init(&out, 0);
	rc = side_start(&a, ia, na, 0, 2, "x", &plain_opts);
	rc = rc != 0 ? rc : side_start(&b, ib, nb, 0, 2, "y", &plain_opts);
	rc = rc != 0 ? rc : handshake(&a, &b);
	rc = rc != 0 ? rc : macc_session_stats_encode(&a.s, &so, &out);
	rc = rc != 0 ? rc : decode_frame(&out, &m, &p);
	if (rc == 0 && m.type != MACC_MSG_STATS) {
		rc = MACC_EMALFORMED;
	}
	rc = rc != 0 ? rc
		     : macc_digest(MACC_DIGEST_BLAKE2B256, digest, m.u.stats.body,
				   m.u.stats.body_len);
	if (rc == 0) {
		macc_stats_signed_text(&ia->pub, &ib->pub, na, nb, 3, digest, text);
		rc = macc_verify(&ia->pub, text, sizeof(text), m.u.stats.sig) == 0 ? 0
										 : MACC_EBADSIG;
	}
	if (rc != 0) {
		fail_compute(vs, rc, "STATS");
	} else {
		add(vs, "stats-text", text, sizeof(text), NULL);
		add_buf(vs, "stats.bin", &out, "stats.bin");
	}
	free(p);
	side_finish(&a);
	side_finish(&b);
	macc_buf_finish(&out);
}

static void compute_all(struct vecs *vs)
{
	struct macc_identity ia, ib;
	int rc;

	memset(vs, 0, sizeof(*vs));
	memset(&ia, 0, sizeof(ia));
	memset(&ib, 0, sizeof(ib));
	rc = identity(&ia, 0x0a);
	rc = rc != 0 ? rc : identity(&ib, 0x0b);
	if (rc != 0) {
		fail_compute(vs, rc, "identities");
		goto out;
	}
	add(vs, "a-public-key", ia.pub.bytes, MACC_PUBKEY_BYTES, NULL);
	add(vs, "b-public-key", ib.pub.bytes, MACC_PUBKEY_BYTES, NULL);
	plain_vectors(vs, &ia, &ib);
	sha256_vectors(vs, &ia, &ib);
	sealed_vectors(vs, &ia, &ib, MACC_AEAD_XCHACHA20POLY1305);
	sealed_vectors(vs, &ia, &ib, MACC_AEAD_AES256GCM);
	compress_vectors(vs);
	stats_vectors(vs, &ia, &ib);
	add_model(vs, "model-hash-mlp", "mlp:784-256-128-10");
	add_model(vs, "model-hash-lenet5", "cnn:lenet5,dropout=0.25");
out:
	macc_identity_finish(&ia);
	macc_identity_finish(&ib);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading the page                                                                          */
/* ---------------------------------------------------------------------------------------- */

struct page_vec {
	char name[48];
	uint8_t *p;
	size_t len, declared;
	int line;
};

struct page {
	struct page_vec v[MAX_VECS + 16];
	size_t n;
};

static void page_finish(struct page *pg)
{
	for (size_t i = 0; i < pg->n; i++) {
		free(pg->v[i].p);
	}
	memset(pg, 0, sizeof(*pg));
}

/* "NAME (N bytes)" with NAME of [a-z0-9._-]: the start of a vector. */
static bool vec_header(const char *line, char *name, size_t cap, size_t *ret_n)
{
	size_t k = 0;
	unsigned long n;
	char *end;

	while (islower((unsigned char)line[k]) || isdigit((unsigned char)line[k]) ||
	       line[k] == '.' || line[k] == '_' || line[k] == '-') {
		k++;
	}
	if (k == 0 || k >= cap || strncmp(line + k, " (", 2) != 0) {
		return false;
	}
	n = strtoul(line + k + 2, &end, 10);
	if (end == line + k + 2 || (strcmp(end, " bytes)") != 0 && strcmp(end, " byte)") != 0)) {
		return false;
	}
	memcpy(name, line, k);
	name[k] = '\0';
	*ret_n = n;
	return true;
}

/* Append the hex of a data line ("  0011aabb 2233..."); false if it is not one. */
static bool hex_line(const char *line, struct page_vec *v)
{
	const char *s = line;
	size_t digits = 0;

	while (*s == ' ') {
		s++;
	}
	if (*s == '\0') {
		return false;
	}
	for (const char *q = s; *q != '\0'; q++) {
		if (!isxdigit((unsigned char)*q) && *q != ' ') {
			return false;
		}
		digits += *q != ' ';
	}
	if (digits % 2 != 0) {
		return false;
	}
	v->p = realloc(v->p, v->len + digits / 2 + 1);
	assert_non_null(v->p);
	for (const char *q = s; *q != '\0';) {
		unsigned int byte;

		if (*q == ' ') {
			q++;
			continue;
		}
		assert_int_equal(sscanf(q, "%2x", &byte), 1);
		v->p[v->len++] = (uint8_t)byte;
		q += 2;
	}
	return true;
}

static void page_read(struct page *pg)
{
	const char *path = getenv("MACC_PROTOCOL_PAGE");
	char line[512];
	struct page_vec *cur = NULL;
	int lineno = 0;
	FILE *f;

	memset(pg, 0, sizeof(*pg));
	if (path == NULL) {
		fail_msg("MACC_PROTOCOL_PAGE is not set (meson sets it to man/macc-protocol.7)");
	}
	f = fopen(path, "r");
	if (f == NULL) {
		fail_msg("%s: %s", path, strerror(errno));
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t l = strlen(line);
		char name[48];
		size_t n;

		lineno++;
		while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r')) {
			line[--l] = '\0';
		}
		if (cur != NULL && hex_line(line, cur)) {
			continue;
		}
		cur = NULL;
		if (vec_header(line, name, sizeof(name), &n)) {
			if (pg->n == sizeof(pg->v) / sizeof(pg->v[0])) {
				fail_msg("%s:%d: too many vectors", path, lineno);
			}
			cur = &pg->v[pg->n++];
			snprintf(cur->name, sizeof(cur->name), "%s", name);
			cur->declared = n;
			cur->line = lineno;
		}
	}
	fclose(f);
}

/* ---------------------------------------------------------------------------------------- */
/* Tests                                                                                     */
/* ---------------------------------------------------------------------------------------- */

static void dump(const struct vecs *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		const struct vec *v = &vs->v[i];

		printf("%s (%zu byte%s)\n", v->name, v->len, v->len == 1 ? "" : "s");
		for (size_t j = 0; j < v->len; j++) {
			printf("%s%02x", j % 32 == 0 ? "  " : j % 4 == 0 ? " " : "", v->p[j]);
			if (j % 32 == 31 || j + 1 == v->len) {
				printf("\n");
			}
		}
	}
}

/* Every vector of the page is computed here with the same bytes, and the other way round. */
static void test_page_vectors(void **state)
{
	struct vecs vs;
	struct page pg;
	int bad = 0;

	(void)state;
	compute_all(&vs);
	if (vs.err != 0) {
		fail_msg("computing the vectors: %s", vs.why);
	}
	if (getenv("MACC_PROTODOC_DUMP") != NULL) {
		dump(&vs);
		vecs_finish(&vs);
		skip();
	}
	page_read(&pg);
	for (size_t i = 0; i < pg.n; i++) {
		const struct page_vec *p = &pg.v[i];
		const struct vec *v = vec_find(&vs, p->name);
		size_t k = 0;

		if (p->len != p->declared) {
			printf("page line %d: %s says %zu bytes and has %zu\n", p->line, p->name,
			       p->declared, p->len);
			bad++;
		}
		if (v == NULL) {
			printf("page line %d: vector %s is not computed by this test\n", p->line,
			       p->name);
			bad++;
			continue;
		}
		while (k < p->len && k < v->len && p->p[k] == v->p[k]) {
			k++;
		}
		if (k != p->len || k != v->len) {
			printf("page line %d: %s differs from the code at byte %zu (page %zu bytes, "
			       "code %zu)\n", p->line, p->name, k, p->len, v->len);
			bad++;
		}
	}
	for (size_t i = 0; i < vs.n; i++) {
		bool found = false;

		for (size_t j = 0; j < pg.n; j++) {
			found = found || strcmp(pg.v[j].name, vs.v[i].name) == 0;
		}
		if (!found) {
			printf("vector %s is missing from the page\n", vs.v[i].name);
			bad++;
		}
	}
	page_finish(&pg);
	vecs_finish(&vs);
	if (bad != 0) {
		fail_msg("%d difference(s) between macc-protocol(7) and the code "
			 "(MACC_PROTODOC_DUMP=1 prints the code's vectors)", bad);
	}
}

/* The golden files are the code's bytes too. */
static void test_golden_files(void **state)
{
	const char *dir = getenv("MACC_TESTDATA");
	struct vecs vs;
	size_t ngolden = 0;

	(void)state;
	assert_non_null(dir);
	compute_all(&vs);
	if (vs.err != 0) {
		fail_msg("computing the vectors: %s", vs.why);
	}
	for (size_t i = 0; i < vs.n; i++) {
		const struct vec *v = &vs.v[i];
		char path[1024];
		uint8_t buf[4096];
		size_t n;
		FILE *f;

		if (v->golden == NULL) {
			continue;
		}
		ngolden++;
		snprintf(path, sizeof(path), "%s/golden/%s", dir, v->golden);
		f = fopen(path, "rb");
		if (f == NULL) {
			fail_msg("%s: %s", path, strerror(errno));
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if (n != v->len || memcmp(buf, v->p, n) != 0) {
			fail_msg("%s: %zu bytes, not the %zu bytes of vector %s", path, n, v->len,
				 v->name);
		}
	}
	/* Every file of tests/data/golden is a vector of the page. */
	{
		char path[1024];
		struct dirent *e;
		size_t nfiles = 0;
		DIR *d;

		snprintf(path, sizeof(path), "%s/golden", dir);
		d = opendir(path);
		assert_non_null(d);
		while ((e = readdir(d)) != NULL) {
			bool known = false;

			if (e->d_name[0] == '.') {
				continue;
			}
			nfiles++;
			for (size_t i = 0; i < vs.n; i++) {
				known = known || (vs.v[i].golden != NULL &&
						  strcmp(vs.v[i].golden, e->d_name) == 0);
			}
			if (!known) {
				closedir(d);
				fail_msg("%s/%s is not a vector of macc-protocol(7)", path, e->d_name);
			}
		}
		closedir(d);
		assert_int_equal(nfiles, ngolden);
	}
	vecs_finish(&vs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_vectors),
		cmocka_unit_test(test_golden_files),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
