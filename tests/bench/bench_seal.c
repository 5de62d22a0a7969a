/*
 * bench_seal.c - what sealing costs on the STATE path, next to signing and the raw digest.
 *
 * For a 1 MB and a 10 MB STATE (x only) and a 10 MB x + momentum, on session pairs in memory
 * (one plain, one sealed per AEAD suite: XChaCha20-Poly1305 and AES-256-GCM, each forced, so
 * both are measured on any CPU), with bodies digested as the daemon does on this CPU
 * (macc_digest_preferred: SHA-256 with SHA instructions, else BLAKE2b-256), it times (best of
 * several repetitions, so a busy shared machine disturbs it less):
 *   digest             one digest of the body: the floor of any signed path
 *   sign+verify        the unsealed path: body encode (copy + digest) + prefix (Ed25519), then
 *                      frame decoder + decode + accept_state (digest + verify) + load
 *   seal 1 neighbour   macc_session_seal_state: prefix + one-pass XChaCha20-Poly1305 of prefix
 *                      and shared body into the neighbour's buffer (what every extra neighbour
 *                      costs on top of the body encode)
 *   copy+seal          prefix and body first copied into one plaintext buffer, then sealed by
 *                      libsodium's one-shot (no signature): the copy the one-pass seal avoids
 *   open               macc_session_open in place
 *   seal+open          seal 1 neighbour + open
 *   sealed path        the whole sealed path: body encode + seal + frame decoder + open + decode
 *                      + accept_state + load, to compare with sign+verify (accept_state does
 *                      not hash the body on a sealed session: the AEAD authenticated it)
 * and prints MB/s of body bytes, the ratio to the digest's time and to the sign+verify path,
 * for each suite. A path's time is the sum of the best times of its parts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/log.h"
#include "macc/proto.h"

#define REPS 11

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_seal: %s: %s\n", what, macc_strerror(rc));
	exit(1);
}

static double best(const double *t)
{
	double b = t[0];

	for (int i = 1; i < REPS; i++) {
		b = t[i] < b ? t[i] : b;
	}
	return b;
}

static double secs(uint64_t a, uint64_t b)
{
	return (double)(b - a) * 1e-9;
}

/* Decode the frame in b (one whole frame) and hand it to `to`. */
static void deliver_ack(struct macc_session *to, struct macc_buf *b)
{
	struct macc_msg m;
	int rc;

	if ((rc = macc_msg_decode(b->data + 4, b->len - 4, 0, &m, NULL)) != 0 ||
	    (rc = macc_session_verify_ack(to, &m.u.ack, NULL)) != 0) {
		die("ack", rc);
	}
}

/* Handshake two sessions in memory (A sends, B receives), sealed (with suite aead) or not
 * (aead < 0), both signing with digest `dig`. */
static void pair(struct macc_session *sa, struct macc_identity *a, struct macc_session *sb,
		 struct macc_identity *b, size_t n, int aead, int dig)
{
	bool seal = aead >= 0;

	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	struct macc_hello ha, hb;
	struct macc_buf buf;
	int rc;

	macc_random_bytes(na, sizeof(na));
	macc_random_bytes(nb, sizeof(nb));
	macc_session_init(sa, a, na);
	macc_session_init(sb, b, nb);
	if (seal && ((rc = macc_session_enable_seal(sa, NULL, NULL)) != 0 ||
		     (rc = macc_session_enable_seal(sb, NULL, NULL)) != 0)) {
		die("enable_seal", rc);
	}
	if (seal && ((rc = macc_session_seal_offer_aes(sa, aead == MACC_AEAD_AES256GCM)) != 0 ||
		     (rc = macc_session_seal_offer_aes(sb, aead == MACC_AEAD_AES256GCM)) != 0)) {
		die("offer", rc);
	}
	if ((rc = macc_session_set_digest(sa, dig)) != 0 ||
	    (rc = macc_session_set_digest(sb, dig)) != 0) {
		die("set_digest", rc);
	}
	macc_hello_init(&ha, a, na, 1, n, "dmsgd", 0, 1, "a");
	macc_hello_init(&hb, b, nb, 1, n, "dmsgd", 0, 1, "b");
	macc_session_hello_prepare(sa, &ha);
	macc_session_hello_prepare(sb, &hb);
	if ((rc = macc_session_accept_hello(sa, &hb, &b->pub, 1, NULL, 1, n, "dmsgd", NULL)) < 0 ||
	    (rc = macc_session_accept_hello(sb, &ha, &a->pub, 1, NULL, 1, n, "dmsgd", NULL)) < 0) {
		die("hello", rc);
	}
	macc_buf_init(&buf, 0);
	if ((rc = macc_session_ack_encode(sa, &buf)) != 0) {
		die("ack", rc);
	}
	deliver_ack(sb, &buf);
	macc_buf_reset(&buf);
	if ((rc = macc_session_ack_encode(sb, &buf)) != 0) {
		die("ack", rc);
	}
	deliver_ack(sa, &buf);
	macc_buf_finish(&buf);
	if (seal && macc_session_aead(sa) != aead) {
		die("suite", MACC_ESTATE);
	}
}

/* Frame decoder + (open) + decode + accept_state + load: the receive side. */
static void receive(struct macc_session *s, const uint8_t *p1, size_t n1, const uint8_t *p2,
		    size_t n2, size_t n, bool mom, float *out, double *t_open)
{
	struct macc_frame_decoder d;
	struct macc_msg m;
	uint8_t *frame;
	size_t used, flen, plen;
	int rc;

	macc_frame_decoder_init(&d, macc_state_frame_max(n, mom));
	if (macc_frame_decoder_feed(&d, p1, n1, &used) < 0 ||
	    (n2 > 0 && macc_frame_decoder_feed(&d, p2, n2, &used) != 1)) {
		die("frame", MACC_EMALFORMED);
	}
	frame = macc_frame_decoder_take(&d, &flen);
	if (frame == NULL) {
		die("frame", MACC_EMALFORMED);
	}
	uint64_t t0 = macc_now_ns();

	if ((rc = macc_session_open(s, frame, flen, &plen, NULL)) != 0) {
		die("open", rc);
	}
	if (t_open != NULL) {
		*t_open = secs(t0, macc_now_ns());
	}
	if ((rc = macc_msg_decode(frame, plen, 0, &m, NULL)) != 0 ||
	    (rc = macc_session_accept_state(s, &m.u.state, n, NULL)) != 0) {
		die("receive", rc);
	}
	macc_f32le_load(out, m.u.state.x, n);
	if (mom) {
		macc_f32le_load(out, m.u.state.mom, n);
	}
	free(frame);
	macc_frame_decoder_finish(&d);
}

static void row(const char *name, double mb, double sec, double t_hash, double t_sv)
{
	printf("  %-30s %9.1f MB/s  %6.2fx digest time  %6.2fx sign+verify time\n", name,
	       mb / sec, sec / t_hash, sec / t_sv);
}

static const int suites[2] = {MACC_AEAD_XCHACHA20POLY1305, MACC_AEAD_AES256GCM};

static void bench_size(size_t bytes, bool mom, struct macc_identity *a, struct macc_identity *b)
{
	size_t n = bytes / 4;
	float *x = malloc(bytes), *v = malloc(bytes), *out = malloc(bytes);
	double t_enc[REPS], t_prefix[REPS], t_recv[REPS], t_hash[REPS], t_seal[2][REPS],
		t_srecv[2][REPS], t_copyseal[REPS], t_open[2][REPS];
	struct macc_session pa, pb, sa[2], sb[2];
	struct macc_state_body body = {0};
	struct macc_state_prefix pre;
	struct macc_buf sealed, plain, ct;
	uint8_t digest[MACC_DIGEST_BYTES], tag[MACC_AEAD_TAG_BYTES], key[32], nonce[24] = {0};
	int dig = macc_digest_preferred();
	double mb;
	int rc;

	if (x == NULL || v == NULL || out == NULL) {
		die("malloc", -12);
	}
	for (size_t i = 0; i < n; i++) {
		x[i] = (float)i * 1e-3f;
		v[i] = -(float)i * 1e-4f;
	}
	macc_random_bytes(key, sizeof(key));
	pair(&pa, a, &pb, b, n, -1, dig);
	for (int k = 0; k < 2; k++) {
		pair(&sa[k], a, &sb[k], b, n, suites[k], dig);
	}
	macc_buf_init(&sealed, 0);
	macc_buf_init(&plain, 0);
	macc_buf_init(&ct, 0);
	struct macc_state_out so = {.nparams = n, .x = x, .mom = mom ? v : NULL, .digest_alg = dig};

	for (int r = 0; r < REPS; r++) {
		so.round = (uint64_t)r + 1;
		/* Unsealed: sign (encode + prefix) and verify (receive). */
		uint64_t t0 = macc_now_ns();

		if ((rc = macc_state_body_encode(&body, &so)) != 0) {
			die("encode", rc);
		}
		uint64_t t1 = macc_now_ns();

		if ((rc = macc_session_state_prefix(&pa, &body, &pre)) != 0) {
			die("prefix", rc);
		}
		uint64_t t2 = macc_now_ns();

		receive(&pb, pre.bytes, pre.len, body.buf.data, body.buf.len, n, mom, out, NULL);
		uint64_t t3 = macc_now_ns();

		if ((rc = macc_digest(dig, digest, body.buf.data, body.buf.len)) != 0) {
			die("digest", rc);
		}
		t_hash[r] = secs(t3, macc_now_ns());

		/* Sealed, each suite: one neighbour's seal (prefix included), then the receive
		 * side with its open. */
		for (int k = 0; k < 2; k++) {
			uint64_t t4 = macc_now_ns();

			macc_buf_reset(&sealed);
			if ((rc = macc_session_seal_state(&sa[k], &body, &sealed)) != 0) {
				die("seal", rc);
			}
			uint64_t t5 = macc_now_ns();

			receive(&sb[k], sealed.data, sealed.len, NULL, 0, n, mom, out,
				&t_open[k][r]);
			t_seal[k][r] = secs(t4, t5);
			t_srecv[k][r] = secs(t5, macc_now_ns());
		}

		/* The alternative: copy prefix + body into one plaintext, libsodium one-shot. */
		uint64_t t6 = macc_now_ns();

		macc_buf_reset(&plain);
		macc_buf_reset(&ct);
		if (macc_buf_append(&plain, pre.bytes + 4, pre.len - 4) != 0 ||
		    macc_buf_append(&plain, body.buf.data, body.buf.len) != 0 ||
		    macc_buf_reserve(&ct, plain.len + 20) != 0) {
			die("copy", -12);
		}
		macc_aead_seal(ct.data + 4, tag, plain.data, plain.len, ct.data, 4, nonce, key);
		t_copyseal[r] = secs(t6, macc_now_ns());
		t_enc[r] = secs(t0, t1);
		t_prefix[r] = secs(t1, t2);
		t_recv[r] = secs(t2, t3);
	}
	if (memcmp(out, mom ? v : x, bytes) != 0) {
		die("round trip", MACC_ECORRUPT);
	}
	mb = (double)body.buf.len / 1e6;
	/* Each path is the sum of the best of its parts (a loaded machine rarely gives one
	 * undisturbed run of a whole path). */
	double th = best(t_hash), tsv = best(t_enc) + best(t_prefix) + best(t_recv);

	printf("STATE %zu MB%s (body %.1f MB, digest %s):\n", bytes >> 20, mom ? " x + mom" : " x",
	       mb, macc_digest_name(dig));
	row("digest", mb, th, th, tsv);
	row("sign+verify path", mb, tsv, th, tsv);
	row("copy+seal, libsodium (avoided)", mb, best(t_copyseal), th, tsv);
	for (int k = 0; k < 2; k++) {
		double tsealed = best(t_enc) + best(t_seal[k]) + best(t_srecv[k]);
		char name[64];

		printf("  %s:\n", macc_aead_name(suites[k]));
		row("seal 1 neighbour", mb, best(t_seal[k]), th, tsv);
		row("open", mb, best(t_open[k]), th, tsv);
		row("seal+open", mb, best(t_seal[k]) + best(t_open[k]), th, tsv);
		snprintf(name, sizeof(name), "sealed path");
		row(name, mb, tsealed, th, tsv);
		printf("  sealed path (%s) / sign+verify path = %.2f\n", macc_aead_name(suites[k]),
		       tsealed / tsv);
		macc_session_finish(&sa[k]);
		macc_session_finish(&sb[k]);
	}
	macc_session_finish(&pa);
	macc_session_finish(&pb);
	macc_state_body_finish(&body);
	macc_buf_finish(&sealed);
	macc_buf_finish(&plain);
	macc_buf_finish(&ct);
	free(x);
	free(v);
	free(out);
}

int main(void)
{
	struct macc_identity a, b;

	if (macc_identity_generate(&a) != 0 || macc_identity_generate(&b) != 0) {
		die("identity", MACC_ECRYPTO);
	}
	bench_size((size_t)1 << 20, false, &a, &b);
	bench_size((size_t)10 << 20, false, &a, &b);
	bench_size((size_t)10 << 20, true, &a, &b);
	macc_identity_finish(&a);
	macc_identity_finish(&b);
	return 0;
}
