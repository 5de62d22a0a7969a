/*
 * bench_msg.c - throughput of the signed STATE path against raw BLAKE2b and memcpy.
 *
 * For a 1 MB and a 10 MB parameter vector (x only, as DSGD sends; and x + momentum, as DMSGD
 * sends) it times, on the same machine in one run:
 *   memcpy            the floor: one copy of the payload
 *   blake2b           the floor of any signed path: one hash of the payload
 *   ed25519 whole     signing the whole payload directly (what the design avoids)
 *   send              macc_state_body_encode (copy + BLAKE2b, once per round) + one
 *                     per-neighbour prefix (Ed25519 over a 181-byte header)
 *   prefix            one more neighbour: prefix only
 *   receive           frame decoder (one copy into the frame buffer) + macc_msg_decode +
 *                     macc_session_accept_state (BLAKE2b + verify) + macc_f32le_load
 * and prints MB/s of payload and the ratio to BLAKE2b and memcpy. Each figure is the best of
 * several repetitions, so a busy shared machine disturbs it less.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/log.h"
#include "macc/proto.h"

#define REPS 7

static double best_of(double *t, int n)
{
	double b = t[0];

	for (int i = 1; i < n; i++) {
		b = t[i] < b ? t[i] : b;
	}
	return b;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_msg: %s: %s\n", what, macc_strerror(rc));
	exit(1);
}

/* Handshake two sessions in memory (A sends, B receives). */
static void pair(struct macc_session *sa, struct macc_identity *a, struct macc_session *sb,
		 struct macc_identity *b, size_t n)
{
	uint8_t na[MACC_NONCE_BYTES], nb[MACC_NONCE_BYTES];
	struct macc_hello ha, hb;
	struct macc_buf buf;
	struct macc_msg m;
	int rc;

	macc_random_bytes(na, sizeof(na));
	macc_random_bytes(nb, sizeof(nb));
	macc_session_init(sa, a, na);
	macc_session_init(sb, b, nb);
	macc_hello_init(&ha, a, na, 1, n, "dmsgd", 0, 1, "a");
	macc_hello_init(&hb, b, nb, 1, n, "dmsgd", 0, 1, "b");
	if ((rc = macc_session_accept_hello(sa, &hb, &b->pub, 1, NULL, 1, n, "dmsgd", NULL)) < 0 ||
	    (rc = macc_session_accept_hello(sb, &ha, &a->pub, 1, NULL, 1, n, "dmsgd", NULL)) < 0) {
		die("hello", rc);
	}
	macc_buf_init(&buf, 0);
	if ((rc = macc_session_ack_encode(sa, &buf)) != 0 ||
	    (rc = macc_msg_decode(buf.data + 4, buf.len - 4, 0, &m, NULL)) != 0 ||
	    (rc = macc_session_verify_ack(sb, &m.u.ack, NULL)) != 0) {
		die("ack", rc);
	}
	macc_buf_reset(&buf);
	if ((rc = macc_session_ack_encode(sb, &buf)) != 0 ||
	    (rc = macc_msg_decode(buf.data + 4, buf.len - 4, 0, &m, NULL)) != 0 ||
	    (rc = macc_session_verify_ack(sa, &m.u.ack, NULL)) != 0) {
		die("ack", rc);
	}
	macc_buf_finish(&buf);
}

static void row(const char *name, double mb, double sec, double t_hash, double t_copy)
{
	printf("  %-22s %9.1f MB/s   %6.2fx blake2b time   %6.2fx memcpy time\n", name,
	       mb / sec, sec / t_hash, sec / t_copy);
}

static void bench_size(size_t bytes, bool with_mom, struct macc_identity *a,
		       struct macc_identity *b)
{
	size_t n = bytes / 4;
	size_t payload = with_mom ? 2 * bytes : bytes;
	double mb = (double)payload / 1e6;
	float *x = malloc(bytes), *v = malloc(bytes), *out = malloc(bytes);
	uint8_t *copy = malloc(payload);
	uint8_t digest[MACC_DIGEST_BYTES], sig[MACC_SIG_BYTES];
	double t_copy[REPS], t_hash[REPS], t_whole[REPS], t_send[REPS], t_prefix[REPS],
		t_recv[REPS];
	struct macc_session sa, sb;
	struct macc_state_body body = {0};
	struct macc_state_prefix pre;
	struct macc_frame_decoder d;
	uint8_t *frame;
	size_t flen;
	int rc;

	if (x == NULL || v == NULL || out == NULL || copy == NULL) {
		die("malloc", -12);
	}
	for (size_t i = 0; i < n; i++) {
		x[i] = (float)i * 1e-3f;
		v[i] = -(float)i * 1e-4f;
	}
	pair(&sa, a, &sb, b, n);
	struct macc_state_out so = {.nparams = n, .x = x, .mom = with_mom ? v : NULL};

	for (int r = 0; r < REPS; r++) {
		uint64_t t0 = macc_now_ns();

		memcpy(copy, x, bytes);
		if (with_mom) {
			memcpy(copy + bytes, v, bytes);
		}
		uint64_t t1 = macc_now_ns();

		macc_blake2b(digest, sizeof(digest), copy, payload);
		uint64_t t2 = macc_now_ns();

		macc_sign(a, copy, payload, sig);
		uint64_t t3 = macc_now_ns();

		so.round = (uint64_t)r + 1;
		if ((rc = macc_state_body_encode(&body, &so)) != 0 ||
		    (rc = macc_session_state_prefix(&sa, &body, &pre)) != 0) {
			die("encode", rc);
		}
		uint64_t t4 = macc_now_ns();

		if ((rc = macc_session_state_prefix(&sa, &body, &pre)) != 0) {
			die("prefix", rc);
		}
		uint64_t t5 = macc_now_ns();

		/* Receive: the frame arrives in two writes (prefix, body). */
		struct macc_msg m;
		size_t used;

		macc_frame_decoder_init(&d, macc_state_frame_max(n, with_mom));
		if (macc_frame_decoder_feed(&d, pre.bytes, pre.len, &used) != 0 ||
		    macc_frame_decoder_feed(&d, body.buf.data, body.buf.len, &used) != 1) {
			die("frame", MACC_EMALFORMED);
		}
		frame = macc_frame_decoder_take(&d, &flen);
		if ((rc = macc_msg_decode(frame, flen, 0, &m, NULL)) != 0 ||
		    (rc = macc_session_accept_state(&sb, &m.u.state, n, NULL)) != 0) {
			die("receive", rc);
		}
		macc_f32le_load(out, m.u.state.x, n);
		if (with_mom) {
			macc_f32le_load(out, m.u.state.mom, n);
		}
		free(frame);
		macc_frame_decoder_finish(&d);
		uint64_t t6 = macc_now_ns();

		t_copy[r] = (double)(t1 - t0) * 1e-9;
		t_hash[r] = (double)(t2 - t1) * 1e-9;
		t_whole[r] = (double)(t3 - t2) * 1e-9;
		t_send[r] = (double)(t4 - t3) * 1e-9;
		t_prefix[r] = (double)(t5 - t4) * 1e-9;
		t_recv[r] = (double)(t6 - t5) * 1e-9;
	}
	if (memcmp(out, with_mom ? v : x, bytes) != 0) {
		die("round trip", MACC_ECORRUPT);
	}
	double th = best_of(t_hash, REPS), tc = best_of(t_copy, REPS);

	printf("STATE %zu MB%s (payload %.1f MB):\n", bytes >> 20, with_mom ? " x + mom" : " x",
	       mb);
	row("memcpy", mb, tc, th, tc);
	row("blake2b", mb, th, th, tc);
	row("ed25519 whole payload", mb, best_of(t_whole, REPS), th, tc);
	row("send (body + 1 prefix)", mb, best_of(t_send, REPS), th, tc);
	row("receive (verify+load)", mb, best_of(t_recv, REPS), th, tc);
	row("sign+verify path", mb, best_of(t_send, REPS) + best_of(t_recv, REPS), th, tc);
	printf("  %-22s %9.1f us per extra neighbour\n", "prefix", best_of(t_prefix, REPS) * 1e6);
	macc_state_body_finish(&body);
	free(x);
	free(v);
	free(out);
	free(copy);
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
