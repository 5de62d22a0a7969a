/*
 * wire.c - the peer message codec and the session checks (see proto.h for the wire layout).
 *
 * Encoding uses msgpack-c's packer, writing straight into a struct macc_buf (or a fixed prefix
 * array), so every byte on the wire is ordinary msgpack that any implementation can read.
 *
 * Decoding does NOT use msgpack-c's unpacker: it builds an object tree and sizes its allocations
 * from the array/map headers, so a 5-byte input announcing 2^32 elements would ask for tens of
 * gigabytes. Instead the bounded reader of src/proto (mpread.c, shared with the control codec)
 * walks the bytes once: it accepts a map at the top,
 * records where each known key's value starts, and skips everything else with a bounded
 * recursion depth; every container count is checked against the bytes left (each element needs
 * at least one byte), so hostile headers cost O(1). Only after the whole map is known to be
 * well-formed are the known fields converted into the plain C structs of proto.h. Bins (x, mom,
 * body) are returned as pointers into the input: no float is touched until the caller copies
 * the vector with macc_f32le_load, after the session checks passed.
 *
 * Session checks run in macc-protocol(7)'s order: size, version, type (macc_msg_decode), then
 * sender, signature, model, freshness (macc_session_accept_state). State is only written when
 * every check passed. On a sealed receive direction the signature step is left out (the AEAD
 * already authenticated the frame as the peer's); macc_session_verify_state does it on demand.
 *
 * STATE digests: each direction's digest (BLAKE2b-256, or SHA-256 when the sender announced
 * MACC_HELLO_F_SHA256 and the receiver MACC_HELLO_F_SHA256_OK) is fixed when the peer's HELLO
 * is accepted; the signed text's domain names it, so macc_state_signed_verify needs no session.
 *
 * Optional HELLO platform fields: "arch" (str, the sender's machine as uname(2) names it:
 * "x86_64", "aarch64") and "blas" (str, the BLAS kernel it computes with: "Haswell", "ARMV8").
 * Informational only, for `macc-ctl status` / `peers`: agents on different architectures or
 * kernels agree on the model but not bit for bit, and this is how an operator sees which peer
 * is which. Each is sent only when non-empty, so the HELLO of a sender without them is the one
 * older daemons send, and older daemons ignore them as unknown keys (backward compatible both
 * ways). On receipt: absent = ""; present but not a str = MACC_EMALFORMED; longer than
 * MACC_PLATFORM_MAX - 1 bytes = truncated; any byte outside [A-Za-z0-9._+-] becomes '?', so a
 * hostile peer cannot put control characters into an operator's terminal. They are not part
 * of the HELLO proof (like "name"): a peer can claim any platform.
 *
 * STATS (the standardisation agreement before training) reuse STATE's machinery on a small
 * scale: a body map encoded and hashed (always BLAKE2b-256: a few hundred bytes, a few times per
 * run), a signed text of STATE's layout under the domain "macc/2/stats" with type byte 7 and the
 * step in place of the round, the same checks in the same order. The values are f64 LE in one
 * bin, copied out with macc_f64le_load; decoding checks only that the bin holds exactly n of
 * them, the agreement checks what they say.
 *
 * Sealed sessions: the handshake part lives here (HELLO fields, the proof over both
 * ephemeral keys and both sides' flags, the choice of the AEAD suite and key derivation when
 * the peer's HELLO is accepted, switching each direction on at the HELLO_ACKs); sealing and
 * opening frames is seal.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "mpread.h"

#include "macc/proto.h"

#define MAX_DEPTH 8     /* nesting allowed in ignored (unknown) values */
#define MAX_ENTRIES 64  /* keys per map: far more than any message has */

static const char hello_ctx[] = "macc/2/hello";
static const char state_ctx[] = "macc/2/state";    /* STATE signed with a BLAKE2b-256 digest */
static const char state_sha_ctx[] = "macc/2/stsha"; /* the same with a SHA-256 digest */
static const char stats_ctx[] = "macc/2/stats";     /* STATS, BLAKE2b-256 */
_Static_assert(sizeof(state_ctx) == sizeof(state_sha_ctx), "one signed STATE text length");
_Static_assert(sizeof(state_ctx) == sizeof(stats_ctx), "STATS text has STATE's layout");

/* ---------------------------------------------------------------------------------------- */
/* Floats                                                                                    */
/* ---------------------------------------------------------------------------------------- */

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

void macc_f32le_load(float *dst, const uint8_t *src, size_t n)
{
	if (n == 0) {
		return;
	}
#if HOST_LE
	memcpy(dst, src, n * sizeof(float));
#else
	for (size_t i = 0; i < n; i++) {
		const uint8_t *b = src + 4 * i;
		uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
			     (uint32_t)b[3] << 24;

		memcpy(&dst[i], &u, sizeof(u));
	}
#endif
}

void macc_f32le_store(uint8_t *dst, const float *src, size_t n)
{
	if (n == 0) {
		return;
	}
#if HOST_LE
	memcpy(dst, src, n * sizeof(float));
#else
	for (size_t i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &src[i], sizeof(u));
		dst[4 * i] = (uint8_t)u;
		dst[4 * i + 1] = (uint8_t)(u >> 8);
		dst[4 * i + 2] = (uint8_t)(u >> 16);
		dst[4 * i + 3] = (uint8_t)(u >> 24);
	}
#endif
}

void macc_f64le_load(double *dst, const uint8_t *src, size_t n)
{
	if (n == 0) {
		return;
	}
#if HOST_LE
	memcpy(dst, src, n * sizeof(double));
#else
	for (size_t i = 0; i < n; i++) {
		uint64_t u = 0;

		for (int b = 7; b >= 0; b--) {
			u = u << 8 | src[8 * i + (size_t)b];
		}
		memcpy(&dst[i], &u, sizeof(u));
	}
#endif
}

void macc_f64le_store(uint8_t *dst, const double *src, size_t n)
{
	if (n == 0) {
		return;
	}
#if HOST_LE
	memcpy(dst, src, n * sizeof(double));
#else
	for (size_t i = 0; i < n; i++) {
		uint64_t u;

		memcpy(&u, &src[i], sizeof(u));
		for (int b = 0; b < 8; b++) {
			dst[8 * i + (size_t)b] = (uint8_t)(u >> (8 * b));
		}
	}
#endif
}

const char *macc_msg_type_name(int type)
{
	switch (type) {
	case MACC_MSG_HELLO:
		return "hello";
	case MACC_MSG_HELLO_ACK:
		return "hello_ack";
	case MACC_MSG_STATE:
		return "state";
	case MACC_MSG_PING:
		return "ping";
	case MACC_MSG_PONG:
		return "pong";
	case MACC_MSG_BYE:
		return "bye";
	case MACC_MSG_STATS:
		return "stats";
	default:
		return "unknown";
	}
}

/* ---------------------------------------------------------------------------------------- */
/* Encoding                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Destination of the packer: a growable buffer, or a fixed array (the STATE prefix). */
struct writer {
	struct macc_buf *buf;
	uint8_t *fixed;
	size_t cap;
	size_t len;
	int err;
};

static int writer_cb(void *data, const char *p, size_t n)
{
	struct writer *w = data;
	int rc;

	if (w->err != 0) {
		return -1;
	}
	if (w->buf != NULL) {
		rc = macc_buf_append(w->buf, p, n);
		if (rc != 0) {
			w->err = rc;
			return -1;
		}
		return 0;
	}
	if (n > w->cap - w->len) {
		w->err = MACC_ETOOBIG;
		return -1;
	}
	memcpy(w->fixed + w->len, p, n);
	w->len += n;
	return 0;
}

static void pack_key(msgpack_packer *pk, const char *key)
{
	size_t n = strlen(key);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, key, n);
}

static void pack_kv_uint(msgpack_packer *pk, const char *key, uint64_t v)
{
	pack_key(pk, key);
	msgpack_pack_uint64(pk, v);
}

static void pack_kv_bin(msgpack_packer *pk, const char *key, const void *p, size_t n)
{
	pack_key(pk, key);
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, p, n);
}

static void pack_kv_str(msgpack_packer *pk, const char *key, const char *s)
{
	size_t n = strlen(s);

	pack_key(pk, key);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Start a frame in `out`: reserve the length prefix and set up the packer. */
static size_t frame_begin(struct macc_buf *out, struct writer *w, msgpack_packer *pk)
{
	static const uint8_t zero[MACC_FRAME_HDR];
	size_t start = out->len;

	memset(w, 0, sizeof(*w));
	w->buf = out;
	w->err = macc_buf_append(out, zero, sizeof(zero));
	msgpack_packer_init(pk, w, writer_cb);
	return start;
}

/* Finish the frame: patch its length, or roll `out` back to where it was on error. */
static int frame_end(struct macc_buf *out, struct writer *w, size_t start)
{
	size_t plen;

	if (w->err == 0) {
		plen = out->len - start - MACC_FRAME_HDR;
		if (plen > UINT32_MAX) {
			w->err = MACC_ETOOBIG;
		} else {
			macc_put_be32(out->data + start, (uint32_t)plen);
		}
	}
	if (w->err != 0) {
		out->len = start;
	}
	return w->err;
}

static bool str_fits(const char *s, size_t max)
{
	return s != NULL && memchr(s, '\0', max) != NULL;
}

int macc_hello_encode(struct macc_buf *out, const struct macc_hello *h)
{
	struct writer w;
	msgpack_packer pk;
	size_t start;

	if (!str_fits(h->algo, sizeof(h->algo)) || !str_fits(h->name, sizeof(h->name))) {
		return MACC_EMALFORMED;
	}
	if (!str_fits(h->arch, sizeof(h->arch)) || !str_fits(h->blas, sizeof(h->blas))) {
		return MACC_EMALFORMED;
	}
	start = frame_begin(out, &w, &pk);
	msgpack_pack_map(&pk, ((h->flags & MACC_HELLO_F_SEAL) != 0 ? 14 : 11) +
				      (h->arch[0] != '\0') + (h->blas[0] != '\0'));
	pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
	pack_kv_uint(&pk, "type", MACC_MSG_HELLO);
	pack_kv_bin(&pk, "key", h->key.bytes, sizeof(h->key.bytes));
	pack_kv_bin(&pk, "nonce", h->nonce, sizeof(h->nonce));
	pack_kv_uint(&pk, "model", h->model_hash);
	pack_kv_uint(&pk, "n", h->nparams);
	pack_kv_str(&pk, "algo", h->algo);
	pack_kv_uint(&pk, "round", h->round);
	pack_kv_uint(&pk, "degree", h->degree);
	pack_kv_str(&pk, "name", h->name);
	pack_kv_uint(&pk, "flags", h->flags);
	if ((h->flags & MACC_HELLO_F_SEAL) != 0) {
		pack_kv_bin(&pk, "eph", h->eph, sizeof(h->eph));
		pack_kv_uint(&pk, "rk_bytes", h->rekey.bytes);
		pack_kv_uint(&pk, "rk_frames", h->rekey.frames);
	}
	if (h->arch[0] != '\0') {
		pack_kv_str(&pk, "arch", h->arch);
	}
	if (h->blas[0] != '\0') {
		pack_kv_str(&pk, "blas", h->blas);
	}
	return frame_end(out, &w, start);
}

static int ack_encode(struct macc_buf *out, const struct macc_pubkey *key,
		      const uint8_t sig[MACC_SIG_BYTES])
{
	struct writer w;
	msgpack_packer pk;
	size_t start = frame_begin(out, &w, &pk);

	msgpack_pack_map(&pk, 4);
	pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
	pack_kv_uint(&pk, "type", MACC_MSG_HELLO_ACK);
	pack_kv_bin(&pk, "key", key->bytes, sizeof(key->bytes));
	pack_kv_bin(&pk, "sig", sig, MACC_SIG_BYTES);
	return frame_end(out, &w, start);
}

int macc_ping_encode(struct macc_buf *out, int type, const struct macc_ping *p)
{
	struct writer w;
	msgpack_packer pk;
	size_t start;

	if (type != MACC_MSG_PING && type != MACC_MSG_PONG) {
		return MACC_EMALFORMED;
	}
	start = frame_begin(out, &w, &pk);
	msgpack_pack_map(&pk, 4);
	pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
	pack_kv_uint(&pk, "type", (uint64_t)type);
	pack_kv_uint(&pk, "seq", p->seq);
	pack_kv_uint(&pk, "time", p->time_ns);
	return frame_end(out, &w, start);
}

int macc_bye_encode(struct macc_buf *out, int32_t reason, const char *text)
{
	char t[MACC_BYE_TEXT_MAX];
	struct writer w;
	msgpack_packer pk;
	size_t start;

	/* Informational text: truncated rather than refused. */
	snprintf(t, sizeof(t), "%s", text != NULL ? text : "");
	start = frame_begin(out, &w, &pk);
	msgpack_pack_map(&pk, 4);
	pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
	pack_kv_uint(&pk, "type", MACC_MSG_BYE);
	pack_key(&pk, "reason");
	msgpack_pack_int32(&pk, reason);
	pack_kv_str(&pk, "text", t);
	return frame_end(out, &w, start);
}

void macc_hello_init(struct macc_hello *h, const struct macc_identity *id,
		     const uint8_t nonce[MACC_NONCE_BYTES], uint64_t model_hash, uint64_t nparams,
		     const char *algo, uint64_t round, uint32_t degree, const char *name)
{
	memset(h, 0, sizeof(*h));
	h->key = id->pub;
	memcpy(h->nonce, nonce, MACC_NONCE_BYTES);
	h->model_hash = model_hash;
	h->nparams = nparams;
	snprintf(h->algo, sizeof(h->algo), "%s", algo != NULL ? algo : "");
	h->round = round;
	h->degree = degree;
	snprintf(h->name, sizeof(h->name), "%s", name != NULL ? name : "");
	h->flags = 0;
}

size_t macc_state_frame_max(size_t nparams, bool mom)
{
	size_t vec = nparams > SIZE_MAX / 16 ? SIZE_MAX / 4 : nparams * 4;

	/* Two bins at most, plus map keys and headers (well under 512 bytes). */
	return 512 + (mom ? 2 * vec : vec);
}

/* Append one vector bin: raw float32 (blob NULL) or a compressor blob as it is. The room was
 * reserved by the caller, so the vector bypasses the packer: one copy into the buffer. */
static void pack_vec(msgpack_packer *pk, struct writer *w, struct macc_buf *buf, const char *key,
		     const float *v, size_t n, const uint8_t *blob, size_t blen)
{
	size_t len = blob != NULL ? blen : n * 4;

	pack_key(pk, key);
	msgpack_pack_bin(pk, len);
	if (w->err != 0) {
		return;
	}
	if (blob != NULL) {
		memcpy(buf->data + buf->len, blob, blen);
	} else {
		macc_f32le_store(buf->data + buf->len, v, n);
	}
	buf->len += len;
}

int macc_state_body_encode(struct macc_state_body *b, const struct macc_state_out *st)
{
	struct writer w;
	msgpack_packer pk;
	bool raw = st->enc == MACC_ENC_F32;
	bool mom = raw ? st->mom != NULL : st->mom_blob != NULL;
	size_t xbytes, mbytes;
	uint32_t nmap = 4;
	int rc;

	if (st->nparams > UINT32_MAX / 4 || (raw ? st->x == NULL : st->x_blob == NULL)) {
		return MACC_ETOOBIG;
	}
	if (st->enc > MACC_ENC_TOPK ||
	    (st->digest_alg != MACC_DIGEST_BLAKE2B256 && st->digest_alg != MACC_DIGEST_SHA256)) {
		return MACC_EMALFORMED;
	}
	xbytes = raw ? st->nparams * 4 : st->x_len;
	mbytes = !mom ? 0 : raw ? st->nparams * 4 : st->mom_len;
	if (xbytes > UINT32_MAX || mbytes > UINT32_MAX) {
		return MACC_ETOOBIG;
	}
	macc_buf_reset(&b->buf);
	rc = macc_buf_reserve(&b->buf, 128 + xbytes + mbytes);
	if (rc != 0) {
		return rc;
	}
	nmap += mom ? 1 : 0;
	nmap += st->has_weight ? 1 : 0;
	memset(&w, 0, sizeof(w));
	w.buf = &b->buf;
	msgpack_packer_init(&pk, &w, writer_cb);
	msgpack_pack_map(&pk, nmap);
	pack_kv_uint(&pk, "round", st->round);
	pack_kv_uint(&pk, "n", st->nparams);
	pack_kv_uint(&pk, "enc", st->enc);
	pack_vec(&pk, &w, &b->buf, "x", st->x, st->nparams, raw ? NULL : st->x_blob, st->x_len);
	if (mom) {
		pack_vec(&pk, &w, &b->buf, "mom", st->mom, st->nparams, raw ? NULL : st->mom_blob,
			 st->mom_len);
	}
	if (st->has_weight) {
		pack_key(&pk, "w");
		msgpack_pack_double(&pk, st->weight);
	}
	if (w.err != 0) {
		macc_buf_reset(&b->buf);
		return w.err;
	}
	rc = macc_digest(st->digest_alg, b->digest, b->buf.data, b->buf.len);
	if (rc != 0) {
		macc_buf_reset(&b->buf);
		return rc;
	}
	b->round = st->round;
	b->digest_alg = st->digest_alg;
	return 0;
}

void macc_state_body_finish(struct macc_state_body *b)
{
	if (b == NULL) {
		return;
	}
	macc_buf_finish(&b->buf);
	memset(b, 0, sizeof(*b));
}

/* One map, indexed: the value offset of each key (keys are strings, unique). */
struct map_index {
	size_t n;
	struct {
		const uint8_t *key;
		size_t key_len;
		size_t val_off;
	} e[MAX_ENTRIES];
};

/* Read a whole map that must span exactly p[0..len). */
static int map_read(const uint8_t *p, size_t len, struct map_index *m)
{
	struct macc_mp_rd r = {p, len, 0};
	bool is_map;
	size_t count;
	int rc;

	rc = macc_mp_container(&r, &is_map, &count);
	if (rc != 0) {
		return rc;
	}
	if (!is_map || count > MAX_ENTRIES) {
		return MACC_EMALFORMED;
	}
	m->n = 0;
	for (size_t i = 0; i < count; i++) {
		const uint8_t *k;
		size_t klen;

		rc = macc_mp_bytes(&r, false, &k, &klen);
		if (rc != 0) {
			return rc;
		}
		for (size_t j = 0; j < m->n; j++) {
			if (m->e[j].key_len == klen && memcmp(m->e[j].key, k, klen) == 0) {
				return MACC_EMALFORMED; /* duplicate key: ambiguous */
			}
		}
		m->e[m->n].key = k;
		m->e[m->n].key_len = klen;
		m->e[m->n].val_off = r.off;
		m->n++;
		rc = macc_mp_skip(&r, 1, MAX_DEPTH);
		if (rc != 0) {
			return rc;
		}
	}
	if (r.off != len) {
		return MACC_EMALFORMED; /* trailing bytes */
	}
	return 0;
}

/* A reader positioned at the value of `key`, or false when the key is absent. */
static bool map_find(const struct map_index *m, const uint8_t *p, size_t len, const char *key,
		     struct macc_mp_rd *ret)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < m->n; i++) {
		if (m->e[i].key_len == klen && memcmp(m->e[i].key, key, klen) == 0) {
			ret->p = p;
			ret->len = len;
			ret->off = m->e[i].val_off;
			return true;
		}
	}
	return false;
}

/* Field getters: absent or mistyped required fields are MACC_EMALFORMED naming the field. */
struct fields {
	const struct map_index *m;
	const uint8_t *p;
	size_t len;
	const char *what;
	struct macc_errmsg *err;
};

static int get_uint(const struct fields *f, const char *key, uint64_t max, uint64_t *ret)
{
	struct macc_mp_rd r;
	uint64_t v;

	if (!map_find(f->m, f->p, f->len, key, &r)) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: missing field '%s'", f->what, key);
	}
	if (macc_mp_uint(&r, &v) != 0 || v > max) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: field '%s' is not an unsigned integer"
				 " up to %llu", f->what, key, (unsigned long long)max);
	}
	*ret = v;
	return 0;
}

/* bin of exactly `want` bytes (want == SIZE_MAX: any length). */
static int get_bin(const struct fields *f, const char *key, size_t want, const uint8_t **ret_p,
		   size_t *ret_n)
{
	struct macc_mp_rd r;

	if (!map_find(f->m, f->p, f->len, key, &r)) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: missing field '%s'", f->what, key);
	}
	if (macc_mp_bytes(&r, true, ret_p, ret_n) != 0 || (want != SIZE_MAX && *ret_n != want)) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: field '%s' is not a bin of %zu bytes",
				 f->what, key, want);
	}
	return 0;
}

/* str copied into out[cap] with a NUL; longer strings or embedded NULs are refused unless
 * `truncate` (informational text). */
static int get_str(const struct fields *f, const char *key, char *out, size_t cap,
		   bool truncate)
{
	struct macc_mp_rd r;
	const uint8_t *s;
	size_t n;

	if (!map_find(f->m, f->p, f->len, key, &r)) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: missing field '%s'", f->what, key);
	}
	if (macc_mp_bytes(&r, false, &s, &n) != 0) {
		return macc_errf(f->err, MACC_EMALFORMED, "%s: field '%s' is not a string", f->what,
				 key);
	}
	if (memchr(s, '\0', n) != NULL || n >= cap) {
		if (!truncate) {
			return macc_errf(f->err, MACC_EMALFORMED,
					 "%s: field '%s' is longer than %zu bytes or has a NUL",
					 f->what, key, cap - 1);
		}
		const uint8_t *z = memchr(s, '\0', n);

		n = z != NULL ? (size_t)(z - s) : n;
		n = n >= cap ? cap - 1 : n;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

/* An optional informational str (the HELLO platform fields, see the top of this file): ""
 * when absent, truncated to cap - 1 bytes, bytes outside [A-Za-z0-9._+-] replaced by '?'. */
static int get_opt_token(const struct fields *f, const char *key, char *out, size_t cap)
{
	struct macc_mp_rd r;
	int rc;

	out[0] = '\0';
	if (!map_find(f->m, f->p, f->len, key, &r)) {
		return 0;
	}
	rc = get_str(f, key, out, cap, true);
	if (rc != 0) {
		return rc;
	}
	for (char *c = out; *c != '\0'; c++) {
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || strchr("._+-", *c) != NULL)) {
			*c = '?';
		}
	}
	return 0;
}

static int decode_hello(const struct fields *f, struct macc_hello *h)
{
	const uint8_t *b;
	size_t n;
	uint64_t v;
	int rc;

	if ((rc = get_bin(f, "key", MACC_PUBKEY_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(h->key.bytes, b, n);
	if ((rc = get_bin(f, "nonce", MACC_NONCE_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(h->nonce, b, n);
	if ((rc = get_uint(f, "model", UINT64_MAX, &h->model_hash)) != 0 ||
	    (rc = get_uint(f, "n", UINT64_MAX, &h->nparams)) != 0 ||
	    (rc = get_str(f, "algo", h->algo, sizeof(h->algo), false)) != 0 ||
	    (rc = get_uint(f, "round", UINT64_MAX, &h->round)) != 0 ||
	    (rc = get_str(f, "name", h->name, sizeof(h->name), false)) != 0) {
		return rc;
	}
	if ((rc = get_uint(f, "degree", UINT32_MAX, &v)) != 0) {
		return rc;
	}
	h->degree = (uint32_t)v;
	if ((rc = get_uint(f, "flags", UINT32_MAX, &v)) != 0) {
		return rc;
	}
	h->flags = (uint32_t)v;
	if ((rc = get_opt_token(f, "arch", h->arch, sizeof(h->arch))) != 0 ||
	    (rc = get_opt_token(f, "blas", h->blas, sizeof(h->blas))) != 0) {
		return rc;
	}
	memset(h->eph, 0, sizeof(h->eph));
	memset(&h->rekey, 0, sizeof(h->rekey));
	if ((h->flags & MACC_HELLO_F_SEAL) != 0) {
		if ((rc = get_bin(f, "eph", MACC_KX_PUBKEY_BYTES, &b, &n)) != 0) {
			return rc;
		}
		memcpy(h->eph, b, n);
		if ((rc = get_uint(f, "rk_bytes", UINT64_MAX, &h->rekey.bytes)) != 0 ||
		    (rc = get_uint(f, "rk_frames", UINT64_MAX, &h->rekey.frames)) != 0) {
			return rc;
		}
	}
	return 0;
}

static int decode_ack(const struct fields *f, struct macc_hello_ack *a)
{
	const uint8_t *b;
	size_t n;
	int rc;

	if ((rc = get_bin(f, "key", MACC_PUBKEY_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(a->key.bytes, b, n);
	if ((rc = get_bin(f, "sig", MACC_SIG_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(a->sig, b, n);
	return 0;
}

/* A little-endian u32 of a compressor blob header. */
static uint32_t blob_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The structure of a compressed vector (enc != F32): the blob layout of macc_compress_encode
 * (consensus.h), checked without looking at the values. F32 vectors were sized by get_bin. */
static int state_blob_check(const struct fields *f, const struct macc_state *st, const char *key,
			    const uint8_t *b, size_t len)
{
	uint64_t n = st->nparams, count, want;

	if (st->enc == MACC_ENC_F32) {
		return 0;
	}
	if (len < 12) {
		return macc_errf(f->err, MACC_EMALFORMED, "state: field '%s': %zu bytes, shorter "
				 "than a compressed vector header (12)", key, len);
	}
	if (b[0] != st->enc || b[1] != 0 || b[2] != 0 || b[3] != 0) {
		return macc_errf(f->err, MACC_EMALFORMED, "state: field '%s': header tag %u with "
				 "enc %u, or reserved bytes not zero", key, b[0], st->enc);
	}
	if (blob_le32(b + 4) != n) {
		return macc_errf(f->err, MACC_EMALFORMED, "state: field '%s' holds %u values, the "
				 "body says n = %llu", key, blob_le32(b + 4),
				 (unsigned long long)n);
	}
	count = blob_le32(b + 8);
	switch (st->enc) {
	case MACC_ENC_BF16:
		want = count == n ? 12 + 2 * n : 0;
		break;
	case MACC_ENC_INT8:
		want = count == (n + 255) / 256 ? 12 + 4 * count + n : 0;
		break;
	default: /* MACC_ENC_TOPK */
		want = count <= n ? 12 + 8 * count : 0;
		break;
	}
	if (want == 0 || len != want) {
		return macc_errf(f->err, MACC_EMALFORMED, "state: field '%s': count %llu and %zu "
				 "bytes do not fit encoding %u for n = %llu", key,
				 (unsigned long long)count, len, st->enc, (unsigned long long)n);
	}
	return 0;
}

/* The signed envelope that STATE and STATS share: the sender's key, its signature and the body
 * (a msgpack map of its own, indexed into *ret_body). */
static int decode_signed(const struct fields *f, const char *what, uint8_t *from, uint8_t *sig,
			 const uint8_t **ret_body, size_t *ret_len, struct map_index *ret_body_map)
{
	const uint8_t *b;
	size_t n;
	int rc;

	if ((rc = get_bin(f, "from", MACC_PUBKEY_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(from, b, n);
	if ((rc = get_bin(f, "sig", MACC_SIG_BYTES, &b, &n)) != 0) {
		return rc;
	}
	memcpy(sig, b, n);
	if ((rc = get_bin(f, "body", SIZE_MAX, ret_body, ret_len)) != 0) {
		return rc;
	}
	rc = map_read(*ret_body, *ret_len, ret_body_map);
	if (rc != 0) {
		return macc_errf(f->err, rc, "%s: body is not a well-formed msgpack map", what);
	}
	return 0;
}

static int decode_state(const struct fields *f, struct macc_state *st)
{
	struct map_index body;
	struct fields bf;
	struct macc_mp_rd r;
	size_t vbytes;
	uint64_t v;
	int rc;

	if ((rc = decode_signed(f, "state", st->from.bytes, st->sig, &st->body, &st->body_len,
				&body)) != 0) {
		return rc;
	}
	bf = (struct fields){&body, st->body, st->body_len, "state body", f->err};
	if ((rc = get_uint(&bf, "round", UINT64_MAX, &st->round)) != 0 ||
	    (rc = get_uint(&bf, "n", UINT32_MAX / 4, &st->nparams)) != 0) {
		return rc;
	}
	if ((rc = get_uint(&bf, "enc", UINT32_MAX, &v)) != 0) {
		return rc;
	}
	if (v > MACC_ENC_TOPK) {
		return macc_errf(f->err, MACC_EMALFORMED,
				 "state: vector encoding %llu unknown (0 f32, 1 bf16, 2 int8, 3 topk)",
				 (unsigned long long)v);
	}
	st->enc = (uint32_t)v;
	vbytes = st->enc == MACC_ENC_F32 ? (size_t)st->nparams * 4 : SIZE_MAX;
	if ((rc = get_bin(&bf, "x", vbytes, &st->x, &st->x_len)) != 0 ||
	    (rc = state_blob_check(f, st, "x", st->x, st->x_len)) != 0) {
		return rc;
	}
	st->mom = NULL;
	st->mom_len = 0;
	if (map_find(&body, st->body, st->body_len, "mom", &r) &&
	    ((rc = get_bin(&bf, "mom", vbytes, &st->mom, &st->mom_len)) != 0 ||
	     (rc = state_blob_check(f, st, "mom", st->mom, st->mom_len)) != 0)) {
		return rc;
	}
	st->has_weight = false;
	st->weight = 0;
	if (map_find(&body, st->body, st->body_len, "w", &r)) {
		if (macc_mp_f64(&r, &st->weight) != 0) {
			return macc_errf(f->err, MACC_EMALFORMED, "state: field 'w' is not a float");
		}
		st->has_weight = true;
	}
	return 0;
}

static int decode_stats(const struct fields *f, struct macc_stats *st)
{
	struct map_index body;
	struct fields bf;
	size_t n;
	uint64_t v;
	int rc;

	if ((rc = decode_signed(f, "stats", st->from.bytes, st->sig, &st->body, &st->body_len,
				&body)) != 0) {
		return rc;
	}
	bf = (struct fields){&body, st->body, st->body_len, "stats body", f->err};
	if ((rc = get_uint(&bf, "step", UINT64_MAX, &st->step)) != 0 ||
	    (rc = get_uint(&bf, "n", MACC_STATS_MAX_VALUES, &st->n)) != 0) {
		return rc;
	}
	if ((rc = get_uint(&bf, "avg", UINT32_MAX, &v)) != 0) {
		return rc;
	}
	st->avg_steps = (uint32_t)v;
	if ((rc = get_uint(&bf, "exact", UINT32_MAX, &v)) != 0) {
		return rc;
	}
	st->exact_steps = (uint32_t)v;
	return get_bin(&bf, "v", (size_t)st->n * 8, &st->values, &n);
}

static int decode_ping(const struct fields *f, struct macc_ping *p)
{
	int rc;

	if ((rc = get_uint(f, "seq", UINT64_MAX, &p->seq)) != 0 ||
	    (rc = get_uint(f, "time", UINT64_MAX, &p->time_ns)) != 0) {
		return rc;
	}
	return 0;
}

static int decode_bye(const struct fields *f, struct macc_bye *b)
{
	struct macc_mp_rd r;

	if (!map_find(f->m, f->p, f->len, "reason", &r)) {
		return macc_errf(f->err, MACC_EMALFORMED, "bye: missing field 'reason'");
	}
	if (macc_mp_int32(&r, &b->reason) != 0) {
		return macc_errf(f->err, MACC_EMALFORMED, "bye: field 'reason' is not an int32");
	}
	return get_str(f, "text", b->text, sizeof(b->text), true);
}

int macc_msg_decode(const uint8_t *p, size_t len, size_t max, struct macc_msg *ret_msg,
		    struct macc_errmsg *err)
{
	/* Large (64 entries); static storage is not an option for a reentrant codec, and 1.6 KB on
	 * the stack is fine. */
	struct map_index m;
	struct macc_msg msg;
	struct fields f;
	uint64_t ver, type;
	int rc;

	if (max != 0 && len > max) {
		return macc_errf(err, MACC_ETOOBIG, "message of %zu bytes exceeds the limit of %zu",
				 len, max);
	}
	rc = map_read(p, len, &m);
	if (rc != 0) {
		return macc_errf(err, rc, "message is not a well-formed msgpack map");
	}
	memset(&msg, 0, sizeof(msg));
	f = (struct fields){&m, p, len, "message", err};
	if ((rc = get_uint(&f, "ver", UINT32_MAX, &ver)) != 0) {
		return rc;
	}
	if (ver != MACC_PROTO_VERSION) {
		return macc_errf(err, MACC_EVERSION, "protocol version %llu not supported (want %d)",
				 (unsigned long long)ver, MACC_PROTO_VERSION);
	}
	if ((rc = get_uint(&f, "type", UINT32_MAX, &type)) != 0) {
		return rc;
	}
	msg.version = (uint32_t)ver;
	msg.type = (int)type;
	f.what = macc_msg_type_name(msg.type);
	switch (type) {
	case MACC_MSG_HELLO:
		rc = decode_hello(&f, &msg.u.hello);
		break;
	case MACC_MSG_HELLO_ACK:
		rc = decode_ack(&f, &msg.u.ack);
		break;
	case MACC_MSG_STATE:
		rc = decode_state(&f, &msg.u.state);
		break;
	case MACC_MSG_PING:
	case MACC_MSG_PONG:
		rc = decode_ping(&f, &msg.u.ping);
		break;
	case MACC_MSG_BYE:
		rc = decode_bye(&f, &msg.u.bye);
		break;
	case MACC_MSG_STATS:
		rc = decode_stats(&f, &msg.u.stats);
		break;
	default:
		return macc_errf(err, MACC_EMALFORMED, "unknown message type %llu",
				 (unsigned long long)type);
	}
	if (rc != 0) {
		return rc;
	}
	*ret_msg = msg;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Sessions                                                                                  */
/* ---------------------------------------------------------------------------------------- */

#define HELLO_PROOF_LEN                                                                          \
	(sizeof(hello_ctx) - 1 + 2 * MACC_PUBKEY_BYTES + 2 * MACC_NONCE_BYTES + 2 * 4 +            \
	 2 * MACC_KX_PUBKEY_BYTES + 4 * 8)
#define STATE_HDR_LEN                                                                            \
	(sizeof(state_ctx) - 1 + 2 * MACC_PUBKEY_BYTES + 2 * MACC_NONCE_BYTES + 1 + 8 +           \
	 MACC_DIGEST_BYTES)

static uint8_t *put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		*p++ = (uint8_t)(v >> (8 * i));
	}
	return p;
}

/* Append n bytes; returns the position after them (the signed texts are built field by field). */
static uint8_t *put_bytes(uint8_t *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

/* What a HELLO_ACK signs: the verifier's fresh nonce, bound to both keys, both nonces, both
 * flags and both sides' sealing parameters (ephemeral keys, rekey schedules). `we_sign`: the
 * proof we sign (we are the signer) or the one we verify (the peer is). */
static void hello_proof(uint8_t out[HELLO_PROOF_LEN], const struct macc_session *s, bool we_sign)
{
	const struct macc_pubkey *signer = we_sign ? &s->self->pub : &s->peer;
	const struct macc_pubkey *verifier = we_sign ? &s->peer : &s->self->pub;
	const uint8_t *sn = we_sign ? s->self_nonce : s->peer_nonce;
	const uint8_t *vn = we_sign ? s->peer_nonce : s->self_nonce;
	uint32_t sf = we_sign ? s->self_flags : s->peer_flags;
	uint32_t vf = we_sign ? s->peer_flags : s->self_flags;
	const uint8_t *se = we_sign ? s->self_eph : s->peer_eph;
	const uint8_t *ve = we_sign ? s->peer_eph : s->self_eph;
	const struct macc_seal_limits *sl = we_sign ? &s->self_rekey : &s->peer_rekey;
	const struct macc_seal_limits *vl = we_sign ? &s->peer_rekey : &s->self_rekey;
	uint8_t *p = out;

	p = put_bytes(p, hello_ctx, sizeof(hello_ctx) - 1);
	p = put_bytes(p, signer->bytes, MACC_PUBKEY_BYTES);
	p = put_bytes(p, verifier->bytes, MACC_PUBKEY_BYTES);
	p = put_bytes(p, sn, MACC_NONCE_BYTES);
	p = put_bytes(p, vn, MACC_NONCE_BYTES);
	macc_put_be32(p, sf);
	p += 4;
	macc_put_be32(p, vf);
	p += 4;
	p = put_bytes(p, se, MACC_KX_PUBKEY_BYTES);
	p = put_bytes(p, ve, MACC_KX_PUBKEY_BYTES);
	p = put_be64(p, sl->bytes);
	p = put_be64(p, sl->frames);
	p = put_be64(p, vl->bytes);
	p = put_be64(p, vl->frames);
	if (p != out + HELLO_PROOF_LEN) {
		abort(); /* programming error: layout and length disagree */
	}
}

/* A signed text of STATE's layout: domain, both keys, both nonces, type, round (STATS: step),
 * digest. */
static void signed_header(uint8_t out[STATE_HDR_LEN], const char *ctx, uint8_t type,
			  const struct macc_pubkey *sender, const struct macc_pubkey *receiver,
			  const uint8_t *sender_nonce, const uint8_t *receiver_nonce, uint64_t round,
			  const uint8_t digest[MACC_DIGEST_BYTES])
{
	uint8_t *p = out;

	p = put_bytes(p, ctx, sizeof(state_ctx) - 1);
	p = put_bytes(p, sender->bytes, MACC_PUBKEY_BYTES);
	p = put_bytes(p, receiver->bytes, MACC_PUBKEY_BYTES);
	p = put_bytes(p, sender_nonce, MACC_NONCE_BYTES);
	p = put_bytes(p, receiver_nonce, MACC_NONCE_BYTES);
	*p++ = type;
	p = put_be64(p, round);
	memcpy(p, digest, MACC_DIGEST_BYTES);
}

/* What a STATE signature covers; the domain names the digest algorithm. */
static void state_header(uint8_t out[STATE_HDR_LEN], int alg, const struct macc_pubkey *sender,
			 const struct macc_pubkey *receiver, const uint8_t *sender_nonce,
			 const uint8_t *receiver_nonce, uint64_t round,
			 const uint8_t digest[MACC_DIGEST_BYTES])
{
	signed_header(out, alg == MACC_DIGEST_SHA256 ? state_sha_ctx : state_ctx, MACC_MSG_STATE,
		      sender, receiver, sender_nonce, receiver_nonce, round, digest);
}

void macc_state_signed_text(const struct macc_pubkey *sender, const struct macc_pubkey *receiver,
			    const uint8_t sender_nonce[MACC_NONCE_BYTES],
			    const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t round,
			    const uint8_t digest[MACC_DIGEST_BYTES],
			    uint8_t out[MACC_STATE_SIGNED_BYTES])
{
	_Static_assert(STATE_HDR_LEN == MACC_STATE_SIGNED_BYTES, "signed STATE text length");
	state_header(out, MACC_DIGEST_BLAKE2B256, sender, receiver, sender_nonce, receiver_nonce,
		     round, digest);
}

void macc_state_signed_text_alg(int alg, const struct macc_pubkey *sender,
				const struct macc_pubkey *receiver,
				const uint8_t sender_nonce[MACC_NONCE_BYTES],
				const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t round,
				const uint8_t digest[MACC_DIGEST_BYTES],
				uint8_t out[MACC_STATE_SIGNED_BYTES])
{
	state_header(out, alg, sender, receiver, sender_nonce, receiver_nonce, round, digest);
}

int macc_state_signed_verify(const struct macc_pubkey *sender, const uint8_t *text, size_t len,
			     const uint8_t sig[MACC_SIG_BYTES], const uint8_t *body,
			     size_t body_len, uint64_t *ret_round, struct macc_errmsg *err)
{
	uint8_t digest[MACC_DIGEST_BYTES];
	uint64_t round = 0;
	int alg = MACC_DIGEST_BLAKE2B256;

	if (len == STATE_HDR_LEN && memcmp(text, state_sha_ctx, sizeof(state_sha_ctx) - 1) == 0) {
		alg = MACC_DIGEST_SHA256;
	} else if (len != STATE_HDR_LEN || memcmp(text, state_ctx, sizeof(state_ctx) - 1) != 0) {
		return macc_errf(err, MACC_EMALFORMED, "not a signed STATE text (%zu bytes)", len);
	}
	if (text[MACC_STATE_SIGNED_ROUND - 1] != MACC_MSG_STATE) {
		return macc_errf(err, MACC_EMALFORMED, "not a signed STATE text (%zu bytes)", len);
	}
	if (memcmp(text + MACC_STATE_SIGNED_SENDER, sender->bytes, MACC_PUBKEY_BYTES) != 0) {
		return macc_errf(err, MACC_EMALFORMED, "the signed text names another sender");
	}
	for (int i = 0; i < 8; i++) {
		round = round << 8 | text[MACC_STATE_SIGNED_ROUND + i];
	}
	if (macc_verify(sender, text, len, sig) != 0) {
		return macc_errf(err, MACC_EBADSIG, "STATE of round %llu: bad signature",
				 (unsigned long long)round);
	}
	if (body != NULL) {
		if (macc_digest(alg, digest, body, body_len) != 0) {
			return macc_errf(err, MACC_ECRYPTO, "STATE of round %llu: cannot compute "
					 "its %s digest", (unsigned long long)round,
					 macc_digest_name(alg));
		}
		if (!macc_ct_equal(digest, text + MACC_STATE_SIGNED_DIGEST, sizeof(digest))) {
			return macc_errf(err, MACC_EBADSIG, "STATE of round %llu: the payload does "
					 "not match the signed digest", (unsigned long long)round);
		}
	}
	if (ret_round != NULL) {
		*ret_round = round;
	}
	return 0;
}

/* The STATE digest from a sender to a receiver, from their HELLOs' flags (proto.h). */
static int digest_of(uint32_t sender_flags, uint32_t receiver_flags)
{
	if ((sender_flags & MACC_HELLO_F_SHA256) != 0 &&
	    (receiver_flags & MACC_HELLO_F_SHA256_OK) != 0) {
		return MACC_DIGEST_SHA256;
	}
	return MACC_DIGEST_BLAKE2B256;
}

int macc_session_set_digest(struct macc_session *s, int alg)
{
	if (s->have_hello) {
		return MACC_ESTATE;
	}
	if (alg != MACC_DIGEST_BLAKE2B256 && alg != MACC_DIGEST_SHA256) {
		return MACC_EMALFORMED;
	}
	s->self_flags |= MACC_HELLO_F_SHA256_OK;
	if (alg == MACC_DIGEST_SHA256) {
		s->self_flags |= MACC_HELLO_F_SHA256;
	} else {
		s->self_flags &= ~(uint32_t)MACC_HELLO_F_SHA256;
	}
	return 0;
}

/* The suite of a session from both HELLOs' flags (proto.h, section 2). */
static int seal_suite(uint32_t self_flags, uint32_t peer_flags)
{
	return (self_flags & peer_flags & MACC_HELLO_F_AES256GCM) != 0 ? MACC_AEAD_AES256GCM
									: MACC_AEAD_XCHACHA20POLY1305;
}

/* A direction's rekey schedule as the suite applies it: GCM caps the bytes under one key. */
static struct macc_seal_limits seal_limits(int aead, struct macc_seal_limits l)
{
	if (aead == MACC_AEAD_AES256GCM &&
	    (l.bytes == 0 || l.bytes > MACC_SEAL_GCM_REKEY_BYTES_MAX)) {
		l.bytes = MACC_SEAL_GCM_REKEY_BYTES_MAX;
	}
	return l;
}

/* Both directions' epoch-0 keys from our ephemeral key pair and the peer's ephemeral key, for
 * the suite both HELLOs' flags choose (a context per suite: no key serves two ciphers). */
static int seal_derive(const struct macc_session *s, const struct macc_hello *h,
		       struct macc_seal_dir *rx, struct macc_seal_dir *tx)
{
	uint8_t krx[MACC_AEAD_KEY_BYTES], ktx[MACC_AEAD_KEY_BYTES];
	int aead = seal_suite(s->self_flags, h->flags);
	const char *ctx = aead == MACC_AEAD_AES256GCM ? "maccsgcm" : "maccseal";
	int rc;

	memset(rx, 0, sizeof(*rx));
	memset(tx, 0, sizeof(*tx));
	rc = macc_kx_session_keys(krx, ktx, s->self_eph, s->eph_secret, h->eph);
	if (rc == 0) {
		rc = macc_kdf_derive(rx->key, sizeof(rx->key), 0, ctx, krx);
	}
	if (rc == 0) {
		rc = macc_kdf_derive(tx->key, sizeof(tx->key), 0, ctx, ktx);
	}
	macc_memzero(krx, sizeof(krx));
	macc_memzero(ktx, sizeof(ktx));
	if (rc != 0) {
		macc_memzero(rx, sizeof(*rx));
		macc_memzero(tx, sizeof(*tx));
		return rc;
	}
	rx->aead = aead;
	tx->aead = aead;
	rx->limits = seal_limits(aead, h->rekey);
	tx->limits = seal_limits(aead, s->self_rekey);
	return 0;
}

void macc_session_init(struct macc_session *s, const struct macc_identity *self,
		       const uint8_t self_nonce[MACC_NONCE_BYTES])
{
	memset(s, 0, sizeof(*s));
	s->self = self;
	memcpy(s->self_nonce, self_nonce, MACC_NONCE_BYTES);
}

void macc_session_finish(struct macc_session *s)
{
	if (s != NULL) {
		macc_memzero(s, sizeof(*s));
	}
}

int macc_session_accept_hello(struct macc_session *s, const struct macc_hello *h,
			      const struct macc_pubkey *allow, size_t nallow,
			      const struct macc_pubkey *expect, uint64_t model_hash,
			      uint64_t nparams, const char *algo, struct macc_errmsg *err)
{
	char kb[MACC_KEY_B64_SIZE];
	struct macc_seal_dir rx, tx;
	int idx, rc;

	if (s->have_hello) {
		return macc_errf(err, MACC_EREPLAY, "second HELLO in one session");
	}
	macc_pubkey_to_b64(&h->key, kb);
	idx = macc_pubkey_find(allow, nallow, &h->key);
	if (idx < 0) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "public key %s (name '%s') is not allowed",
				 kb, h->name);
	}
	if (expect != NULL && !macc_pubkey_equal(expect, &h->key)) {
		return macc_errf(err, MACC_EUNKNOWNPEER,
				 "public key %s (name '%s') is not the peer this connection is for",
				 kb, h->name);
	}
	if (macc_pubkey_equal(&s->self->pub, &h->key)) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "peer presents our own public key");
	}
	if (macc_ct_equal(h->nonce, s->self_nonce, MACC_NONCE_BYTES)) {
		return macc_errf(err, MACC_EREPLAY, "peer echoed our own session nonce");
	}
	if (h->model_hash != model_hash || h->nparams != nparams || algo == NULL ||
	    strcmp(h->algo, algo) != 0) {
		return macc_errf(err, MACC_EMODEL,
				 "peer '%s' runs model %016llx with %llu parameters and algorithm "
				 "'%s', we run %016llx with %llu and '%s'",
				 h->name, (unsigned long long)h->model_hash,
				 (unsigned long long)h->nparams, h->algo,
				 (unsigned long long)model_hash, (unsigned long long)nparams,
				 algo != NULL ? algo : "");
	}
	if (((h->flags & MACC_HELLO_F_SEAL) != 0) != s->seal) {
		return macc_errf(err, MACC_EENCRYPT,
				 "peer '%s' has encrypt = %s, we have encrypt = %s; both agents "
				 "must use the same setting",
				 h->name, s->seal ? "no" : "yes", s->seal ? "yes" : "no");
	}
	if (s->seal) {
		rc = seal_derive(s, h, &rx, &tx);
		if (rc != 0) {
			return macc_errf(err, rc, "peer '%s': its ephemeral key is ours or invalid",
					 h->name);
		}
		s->rx = rx;
		s->tx = tx;
		s->aead = rx.aead;
		macc_memzero(&rx, sizeof(rx));
		macc_memzero(&tx, sizeof(tx));
		/* Forward secrecy: the ephemeral secret is not needed any more. */
		macc_memzero(s->eph_secret, sizeof(s->eph_secret));
		memcpy(s->peer_eph, h->eph, sizeof(s->peer_eph));
		s->peer_rekey = h->rekey;
	}
	s->peer_flags = h->flags;
	s->tx_digest = digest_of(s->self_flags, h->flags);
	s->rx_digest = digest_of(h->flags, s->self_flags);
	s->peer = h->key;
	memcpy(s->peer_nonce, h->nonce, MACC_NONCE_BYTES);
	s->peer_hello_round = h->round;
	s->peer_degree = h->degree;
	s->have_hello = true;
	return idx;
}

int macc_session_ack_encode(struct macc_session *s, struct macc_buf *out)
{
	uint8_t proof[HELLO_PROOF_LEN];
	uint8_t sig[MACC_SIG_BYTES];
	int rc;

	if (!s->have_hello || s->self == NULL || !s->self->loaded) {
		return MACC_ESTATE;
	}
	hello_proof(proof, s, true);
	macc_sign(s->self, proof, sizeof(proof), sig);
	rc = ack_encode(out, &s->self->pub, sig);
	if (rc == 0 && s->seal) {
		s->tx.on = true; /* the ACK was our last plaintext frame */
	}
	return rc;
}

int macc_session_verify_ack(struct macc_session *s, const struct macc_hello_ack *a,
			    struct macc_errmsg *err)
{
	uint8_t proof[HELLO_PROOF_LEN];

	if (!s->have_hello) {
		return macc_errf(err, MACC_ESTATE, "HELLO_ACK before HELLO");
	}
	if (!macc_pubkey_equal(&a->key, &s->peer)) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "HELLO_ACK from a key other than the peer's");
	}
	if (s->proven) {
		return macc_errf(err, MACC_EREPLAY, "second HELLO_ACK in one session");
	}
	hello_proof(proof, s, false);
	if (macc_verify(&s->peer, proof, sizeof(proof), a->sig) != 0) {
		return macc_errf(err, MACC_EBADSIG, "HELLO_ACK proof of key possession is invalid");
	}
	s->proven = true;
	if (s->seal) {
		s->rx.on = true; /* the ACK was the peer's last plaintext frame */
	}
	return 0;
}

int macc_session_state_prefix(const struct macc_session *s, const struct macc_state_body *body,
			      struct macc_state_prefix *ret_prefix)
{
	uint8_t hdr[STATE_HDR_LEN];
	uint8_t sig[MACC_SIG_BYTES];
	uint8_t other[MACC_DIGEST_BYTES];
	const uint8_t *digest = body->digest;
	struct writer w;
	msgpack_packer pk;
	size_t plen;
	int rc;

	if (!s->have_hello || s->self == NULL || !s->self->loaded) {
		return MACC_ESTATE;
	}
	if (s->tx_digest != body->digest_alg) {
		/* A peer that cannot check the body's digest (an older agent): the other one. */
		rc = macc_digest(s->tx_digest, other, body->buf.data, body->buf.len);
		if (rc != 0) {
			return rc;
		}
		digest = other;
	}
	state_header(hdr, s->tx_digest, &s->self->pub, &s->peer, s->self_nonce, s->peer_nonce,
		     body->round, digest);
	macc_sign(s->self, hdr, sizeof(hdr), sig);

	memset(&w, 0, sizeof(w));
	w.fixed = ret_prefix->bytes;
	w.cap = sizeof(ret_prefix->bytes);
	w.len = MACC_FRAME_HDR;
	msgpack_packer_init(&pk, &w, writer_cb);
	msgpack_pack_map(&pk, 5);
	pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
	pack_kv_uint(&pk, "type", MACC_MSG_STATE);
	pack_kv_bin(&pk, "from", s->self->pub.bytes, MACC_PUBKEY_BYTES);
	pack_kv_bin(&pk, "sig", sig, sizeof(sig));
	pack_key(&pk, "body");
	msgpack_pack_bin(&pk, body->buf.len);
	if (w.err != 0) {
		return w.err;
	}
	plen = w.len - MACC_FRAME_HDR + body->buf.len;
	if (plen > UINT32_MAX) {
		return MACC_ETOOBIG;
	}
	macc_put_be32(ret_prefix->bytes, (uint32_t)plen);
	ret_prefix->len = w.len;
	return 0;
}

int macc_session_accept_state(struct macc_session *s, const struct macc_state *st,
			      size_t nparams, struct macc_errmsg *err)
{
	if (!s->proven) {
		return macc_errf(err, MACC_ESTATE, "STATE before the peer proved its key");
	}
	if (!macc_pubkey_equal(&st->from, &s->peer)) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "STATE from a key other than the peer's");
	}
	/* Sealed: the AEAD tag authenticated the whole frame as the peer's (proto.h). */
	if (!macc_session_rx_sealed(s)) {
		int rc = macc_session_verify_state(s, st, err);
		if (rc < 0) {
			return rc;
		}
	}
	if (st->nparams != nparams) {
		return macc_errf(err, MACC_EMODEL, "STATE has %llu parameters, the model has %zu",
				 (unsigned long long)st->nparams, nparams);
	}
	if (s->have_round && st->round <= s->last_round) {
		return macc_errf(err, MACC_EREPLAY,
				 "STATE of round %llu is not newer than round %llu",
				 (unsigned long long)st->round, (unsigned long long)s->last_round);
	}
	s->last_round = st->round;
	s->have_round = true;
	return 0;
}

int macc_session_verify_state(const struct macc_session *s, const struct macc_state *st,
			      struct macc_errmsg *err)
{
	uint8_t digest[MACC_DIGEST_BYTES];
	uint8_t hdr[STATE_HDR_LEN];

	if (!s->have_hello || s->self == NULL) {
		return macc_errf(err, MACC_ESTATE, "STATE before the peer's HELLO");
	}
	if (!macc_pubkey_equal(&st->from, &s->peer)) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "STATE from a key other than the peer's");
	}
	if (macc_digest(s->rx_digest, digest, st->body, st->body_len) != 0) {
		return macc_errf(err, MACC_ECRYPTO, "STATE of round %llu: cannot compute its %s "
				 "digest", (unsigned long long)st->round,
				 macc_digest_name(s->rx_digest));
	}
	state_header(hdr, s->rx_digest, &s->peer, &s->self->pub, s->peer_nonce, s->self_nonce,
		     st->round, digest);
	if (macc_verify(&s->peer, hdr, sizeof(hdr), st->sig) != 0) {
		return macc_errf(err, MACC_EBADSIG, "STATE of round %llu: bad signature",
				 (unsigned long long)st->round);
	}
	return 0;
}

void macc_session_state_proof(const struct macc_session *s, const struct macc_state *st,
			      struct macc_state_proof *ret)
{
	memcpy(ret->sig, st->sig, MACC_SIG_BYTES);
	memcpy(ret->sender_nonce, s->peer_nonce, MACC_NONCE_BYTES);
	memcpy(ret->receiver_nonce, s->self_nonce, MACC_NONCE_BYTES);
	ret->round = st->round;
	ret->digest_alg = s->rx_digest;
	ret->checked = !macc_session_rx_sealed(s);
}

/* ---------------------------------------------------------------------------------------- */
/* STATS: the standardisation agreement                                                      */
/* ---------------------------------------------------------------------------------------- */

void macc_stats_signed_text(const struct macc_pubkey *sender, const struct macc_pubkey *receiver,
			    const uint8_t sender_nonce[MACC_NONCE_BYTES],
			    const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t step,
			    const uint8_t digest[MACC_DIGEST_BYTES],
			    uint8_t out[MACC_STATE_SIGNED_BYTES])
{
	signed_header(out, stats_ctx, MACC_MSG_STATS, sender, receiver, sender_nonce,
		      receiver_nonce, step, digest);
}

/* The body map { step, avg, exact, n, v } into b (reset first). */
static int stats_body(struct macc_buf *b, const struct macc_stats_out *st)
{
	struct writer w;
	msgpack_packer pk;
	int rc;

	macc_buf_reset(b);
	rc = macc_buf_reserve(b, 96 + st->n * 8);
	if (rc != 0) {
		return rc;
	}
	memset(&w, 0, sizeof(w));
	w.buf = b;
	msgpack_packer_init(&pk, &w, writer_cb);
	msgpack_pack_map(&pk, 5);
	pack_kv_uint(&pk, "step", st->step);
	pack_kv_uint(&pk, "avg", st->avg_steps);
	pack_kv_uint(&pk, "exact", st->exact_steps);
	pack_kv_uint(&pk, "n", st->n);
	pack_key(&pk, "v");
	msgpack_pack_bin(&pk, st->n * 8);
	if (w.err == 0) {
		macc_f64le_store(b->data + b->len, st->values, st->n);
		b->len += st->n * 8;
	}
	return w.err;
}

int macc_session_stats_encode(const struct macc_session *s, const struct macc_stats_out *st,
			      struct macc_buf *out)
{
	uint8_t digest[MACC_DIGEST_BYTES], hdr[STATE_HDR_LEN], sig[MACC_SIG_BYTES];
	struct macc_buf body;
	struct writer w;
	msgpack_packer pk;
	size_t start;
	int rc;

	if (!s->have_hello || s->self == NULL || !s->self->loaded) {
		return MACC_ESTATE;
	}
	if (st->n > MACC_STATS_MAX_VALUES || (st->n > 0 && st->values == NULL)) {
		return MACC_ETOOBIG;
	}
	macc_buf_init(&body, 0);
	rc = stats_body(&body, st);
	if (rc == 0 && macc_digest(MACC_DIGEST_BLAKE2B256, digest, body.data, body.len) != 0) {
		rc = MACC_ECRYPTO;
	}
	if (rc == 0) {
		macc_stats_signed_text(&s->self->pub, &s->peer, s->self_nonce, s->peer_nonce,
				       st->step, digest, hdr);
		macc_sign(s->self, hdr, sizeof(hdr), sig);
		start = frame_begin(out, &w, &pk);
		msgpack_pack_map(&pk, 5);
		pack_kv_uint(&pk, "ver", MACC_PROTO_VERSION);
		pack_kv_uint(&pk, "type", MACC_MSG_STATS);
		pack_kv_bin(&pk, "from", s->self->pub.bytes, MACC_PUBKEY_BYTES);
		pack_kv_bin(&pk, "sig", sig, sizeof(sig));
		pack_kv_bin(&pk, "body", body.data, body.len);
		rc = frame_end(out, &w, start);
	}
	macc_buf_finish(&body);
	return rc;
}

int macc_session_accept_stats(struct macc_session *s, const struct macc_stats *st,
			      struct macc_errmsg *err)
{
	uint8_t digest[MACC_DIGEST_BYTES], hdr[STATE_HDR_LEN];

	if (!s->proven) {
		return macc_errf(err, MACC_ESTATE, "STATS before the peer proved its key");
	}
	if (!macc_pubkey_equal(&st->from, &s->peer)) {
		return macc_errf(err, MACC_EUNKNOWNPEER, "STATS from a key other than the peer's");
	}
	/* Sealed: the AEAD tag authenticated the whole frame as the peer's, as for STATE. */
	if (!macc_session_rx_sealed(s)) {
		if (macc_digest(MACC_DIGEST_BLAKE2B256, digest, st->body, st->body_len) != 0) {
			return macc_errf(err, MACC_ECRYPTO, "STATS of step %llu: cannot compute its "
					 "digest", (unsigned long long)st->step);
		}
		macc_stats_signed_text(&s->peer, &s->self->pub, s->peer_nonce, s->self_nonce,
				       st->step, digest, hdr);
		if (macc_verify(&s->peer, hdr, sizeof(hdr), st->sig) != 0) {
			return macc_errf(err, MACC_EBADSIG, "STATS of step %llu: bad signature",
					 (unsigned long long)st->step);
		}
	}
	if (s->have_stats && st->step <= s->last_stats_step) {
		return macc_errf(err, MACC_EREPLAY, "STATS of step %llu is not newer than step "
				 "%llu", (unsigned long long)st->step,
				 (unsigned long long)s->last_stats_step);
	}
	s->last_stats_step = st->step;
	s->have_stats = true;
	return 0;
}
