/*
 * proto.h - the peer protocol: stream framing, message codec and session security.
 *
 * Layers, bottom up (DESIGN.md section 6):
 *   1. framing (frame.c): every frame is a u32 big-endian payload length + payload. The stream
 *      decoder takes bytes in arbitrary chunks and yields whole payloads; a length above the
 *      configured maximum is refused (MACC_ETOOBIG) before anything is allocated.
 *   2. sealing (issue 12, not yet): XChaCha20-Poly1305 over the payload under X25519-derived
 *      session keys, negotiated by HELLO flags. It will sit between 1 and 3 and change neither.
 *   3. codec (wire.c): the payload is one msgpack map. Every message has "ver" (protocol
 *      version) and "type". Decoding turns the bytes into the plain structs below at once with a
 *      small validating reader (bounded depth, container counts checked against the bytes left,
 *      so a 4 GiB array header costs nothing); unknown map keys are ignored; a missing or
 *      mistyped required field is MACC_EMALFORMED. No msgpack type leaves src/proto/.
 *   4. session (wire.c): struct macc_session binds a connection to our identity, the peer's
 *      public key and both random nonces, and verifies in this order: size, version, type,
 *      sender, signature, freshness. Only then does a payload reach the caller.
 *
 * Handshake (symmetric: both sides do the same, in any order):
 *   each side sends HELLO {ver, type, key, nonce (32 random bytes), model hash, nparams, algo,
 *   round, degree, name, flags}. On the peer's HELLO: check version (decode), allow-list and
 *   model (macc_session_accept_hello), then send HELLO_ACK {key, sig}, where sig is our
 *   Ed25519 signature of
 *       "macc/1/hello" || signer key || verifier key || signer nonce || verifier nonce
 *   i.e. of the peer's fresh nonce, bound to both keys and both nonces. On the peer's HELLO_ACK
 *   verify it (macc_session_verify_ack): the peer proved its key in this very session. The
 *   session is established when both HELLO and a valid HELLO_ACK from the peer were seen.
 *
 * STATE, built for one sender and many neighbours without copying the parameters per neighbour:
 *   frame = u32 length || map { ver, type, from, sig, body: bin(BODY) }
 *   BODY  = map { round, n, enc, x: bin(n*4 LE f32), [mom: bin(n*4)], [w: f64] }
 * The body is encoded ONCE per round (macc_state_body_encode) together with its BLAKE2b-256
 * digest. Each neighbour then gets a small prefix (macc_session_state_prefix): frame length,
 * map header, ver, type, from, the signature over
 *       "macc/1/state" || sender key || receiver key || sender nonce || receiver nonce
 *       || type (1 byte) || round (u64 BE) || digest
 * and the "body" key with the bin header. The daemon writes prefix and body as two buffers
 * (uv_write with 2 uv_buf_t); frame bytes are prefix.bytes[0..len) followed by body.buf.
 * Decoding returns pointers into the frame for x and mom (raw LE float32, possibly unaligned):
 * copy them with macc_f32le_load (one memcpy on little-endian hosts).
 *
 * PING/PONG {seq, time_ns} measure RTT and keep the connection alive; BYE {reason, text} says why
 * a side closes (reason: a MACC_E* code such as MACC_EMODEL). They carry no training state and
 * are not signed (the sealing layer will authenticate them).
 */
#ifndef MACC_PROTO_H
#define MACC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/buf.h"
#include "macc/crypto.h"
#include "macc/err.h"

#define MACC_PROTO_VERSION 1

/* ---------------------------------------------------------------------------------------- */
/* 1. Framing                                                                                */
/* ---------------------------------------------------------------------------------------- */

#define MACC_FRAME_HDR 4
/* Default payload limit when the configuration gives none (a 2M-parameter model with
 * momentum is ~16 MB); see macc_state_frame_max() to size it from the model. */
#define MACC_FRAME_MAX_DEFAULT ((size_t)64 << 20)
/* Limit before the handshake completed: HELLO, HELLO_ACK and BYE are a few hundred bytes. The
 * decoder allocates the announced length once it accepts it, so an unauthenticated connection
 * must not be allowed to announce (and make us allocate) a whole STATE: start every connection
 * at this limit and raise it with macc_frame_decoder_set_max() once the peer is proven. */
#define MACC_FRAME_MAX_HANDSHAKE ((size_t)4096)

/* Stream decoder; one per connection. Caller storage. */
struct macc_frame_decoder {
	size_t max;      /* payload limit in bytes */
	uint8_t hdr[MACC_FRAME_HDR];
	size_t hdr_have; /* header bytes received of the current frame */
	uint8_t *payload; /* allocated once the length is known and accepted */
	size_t need;     /* payload length of the current frame */
	size_t have;     /* payload bytes received */
	bool ready;      /* a whole frame waits in payload[0..need) */
	int error;       /* sticky: once a stream is bad it stays bad */
};

void macc_frame_decoder_init(struct macc_frame_decoder *d, size_t max);
void macc_frame_decoder_finish(struct macc_frame_decoder *d); /* frees; zeroed storage ok */

/* Change the payload limit; applies from the next frame header on. */
void macc_frame_decoder_set_max(struct macc_frame_decoder *d, size_t max);

/*
 * Feed bytes from the stream. Consumes bytes until one frame is complete or the input runs out,
 * and stores the number consumed in *ret_used. Returns 1 when a frame is ready (take it with
 * macc_frame_decoder_take before feeding more), 0 when more bytes are needed, or a negative
 * error that is sticky (MACC_ETOOBIG for a length above max, -ENOMEM): close the connection.
 * Typical loop:
 *   while (len > 0) { rc = feed(d, p, len, &used); if (rc < 0) drop;
 *                     p += used; len -= used; if (rc == 1) { f = take(d, &n); ...; free(f); } }
 */
int macc_frame_decoder_feed(struct macc_frame_decoder *d, const void *data, size_t len,
			    size_t *ret_used);

/* Hand over the ready frame's payload (caller frees with free(); never NULL when a frame was
 * ready, even for length 0) and reset for the next frame. Returns NULL if no frame is ready. */
uint8_t *macc_frame_decoder_take(struct macc_frame_decoder *d, size_t *ret_len);

/* Append a frame header for a payload of `len` bytes. MACC_ETOOBIG above UINT32_MAX. */
int macc_frame_put_header(struct macc_buf *out, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* 3. Messages                                                                               */
/* ---------------------------------------------------------------------------------------- */

enum macc_msg_type {
	MACC_MSG_HELLO = 1,
	MACC_MSG_HELLO_ACK = 2,
	MACC_MSG_STATE = 3,
	MACC_MSG_PING = 4,
	MACC_MSG_PONG = 5,
	MACC_MSG_BYE = 6,
};

/* "hello", "hello_ack", "state", "ping", "pong", "bye" or "unknown". */
const char *macc_msg_type_name(int type);

/* HELLO flags. Bits not understood are ignored; MACC_HELLO_F_SEAL is reserved for issue 12. */
enum {
	MACC_HELLO_F_SEAL = 1u << 0,
};

#define MACC_NAME_MAX 64  /* agent name, including the NUL */
#define MACC_ALGO_MAX 32  /* algorithm name ("dmsgd"), including the NUL */
#define MACC_BYE_TEXT_MAX 256

struct macc_hello {
	struct macc_pubkey key;           /* sender's public key */
	uint8_t nonce[MACC_NONCE_BYTES];  /* sender's fresh session nonce */
	uint64_t model_hash;              /* macc_model_hash() */
	uint64_t nparams;                 /* parameter count (also inside the hash; for messages) */
	char algo[MACC_ALGO_MAX];         /* macc_algo_name(), e.g. "dmsgd" */
	uint64_t round;                   /* sender's current round */
	uint32_t degree;                  /* sender's number of configured peers (Metropolis) */
	char name[MACC_NAME_MAX];         /* sender's name, informational only */
	uint32_t flags;                   /* MACC_HELLO_F_*; 0 today */
};

struct macc_hello_ack {
	struct macc_pubkey key;     /* signer's public key */
	uint8_t sig[MACC_SIG_BYTES]; /* proof, see the top of this file */
};

/* Vector encodings of STATE ("enc"). Only F32 is implemented; the others are reserved so that
 * compressed exchange changes no message layout. Decoding refuses them with MACC_EMALFORMED. */
enum macc_enc {
	MACC_ENC_F32 = 0,
	MACC_ENC_BF16 = 1,
	MACC_ENC_INT8 = 2,
	MACC_ENC_TOPK = 3,
};

/* A decoded STATE. Pointers point into the frame given to macc_msg_decode and are valid as long
 * as that frame is. x/mom are n*4 bytes of little-endian float32, not necessarily aligned. */
struct macc_state {
	struct macc_pubkey from;
	uint8_t sig[MACC_SIG_BYTES];
	const uint8_t *body; /* the signed body bytes */
	size_t body_len;
	uint64_t round;
	uint64_t nparams;
	uint32_t enc;
	bool has_weight; /* push-sum weight present (absent today) */
	double weight;
	const uint8_t *x;   /* nparams * 4 bytes */
	const uint8_t *mom; /* nparams * 4 bytes, or NULL when the sender sends no momentum */
};

struct macc_ping {
	uint64_t seq;
	uint64_t time_ns; /* sender's clock; a PONG echoes the PING's values */
};

struct macc_bye {
	int32_t reason; /* a MACC_E* code (or 0 for a normal shutdown) */
	char text[MACC_BYE_TEXT_MAX];
};

/* Any decoded message. */
struct macc_msg {
	uint32_t version;
	int type; /* enum macc_msg_type */
	union {
		struct macc_hello hello;
		struct macc_hello_ack ack;
		struct macc_state state;
		struct macc_ping ping; /* PING and PONG */
		struct macc_bye bye;
	} u;
};

/*
 * Decode one frame payload. Checks, in order: size (len > max: MACC_ETOOBIG), msgpack structure
 * and the "ver" field (MACC_EMALFORMED / MACC_EVERSION), "type" (unknown: MACC_EMALFORMED), then
 * the fields of that type (missing/mistyped: MACC_EMALFORMED; STATE bins whose length is not
 * n*4: MACC_EMALFORMED). *ret_msg is written only on success. `max` 0 means no size check.
 * Signatures are NOT checked here: STATE and HELLO_ACK go through a struct macc_session.
 */
int macc_msg_decode(const uint8_t *p, size_t len, size_t max, struct macc_msg *ret_msg,
		    struct macc_errmsg *err);

/* Encoders: each appends one whole frame (length prefix + payload) to `out`. Return 0, -ENOMEM,
 * MACC_ETOOBIG (buffer limit) or MACC_EMALFORMED (a string field without NUL or too long). */
int macc_hello_encode(struct macc_buf *out, const struct macc_hello *h);
int macc_ping_encode(struct macc_buf *out, int type, const struct macc_ping *p); /* PING/PONG */
int macc_bye_encode(struct macc_buf *out, int32_t reason, const char *text);

/* Fill a HELLO for `id` with the given nonce (usually fresh macc_random_bytes) and fields. */
void macc_hello_init(struct macc_hello *h, const struct macc_identity *id,
		     const uint8_t nonce[MACC_NONCE_BYTES], uint64_t model_hash, uint64_t nparams,
		     const char *algo, uint64_t round, uint32_t degree, const char *name);

/* Copy n little-endian float32 values (possibly unaligned) into dst: one memcpy on LE hosts. */
void macc_f32le_load(float *dst, const uint8_t *src, size_t n);
/* And the other way (used by the encoder). */
void macc_f32le_store(uint8_t *dst, const float *src, size_t n);

/* Upper bound on the payload size of a STATE for n parameters (with momentum if `mom`), to size
 * the frame decoder's limit. */
size_t macc_state_frame_max(size_t nparams, bool mom);

/* ---------------------------------------------------------------------------------------- */
/* STATE body: one per round, shared by every neighbour                                      */
/* ---------------------------------------------------------------------------------------- */

/* What to send in one round. x and mom are borrowed for the duration of the encode call. */
struct macc_state_out {
	uint64_t round;
	size_t nparams;
	const float *x;
	const float *mom;  /* NULL: no momentum (every algorithm but dmsgd) */
	bool has_weight;   /* push-sum weight; false today */
	double weight;
};

struct macc_state_body {
	struct macc_buf buf; /* msgpack body bytes, sent as the second buffer of every frame */
	uint8_t digest[MACC_DIGEST_BYTES]; /* BLAKE2b-256 of buf, computed once */
	uint64_t round;
};

/* Encode (replacing any previous content, reusing the allocation) and hash the body. */
int macc_state_body_encode(struct macc_state_body *b, const struct macc_state_out *st);
void macc_state_body_finish(struct macc_state_body *b); /* frees; zeroed storage ok */

/* Per-neighbour prefix: everything before the body bytes. Small and fixed-size. */
#define MACC_STATE_PREFIX_MAX 160
struct macc_state_prefix {
	uint8_t bytes[MACC_STATE_PREFIX_MAX];
	size_t len;
};

/* ---------------------------------------------------------------------------------------- */
/* 4. Sessions                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* One per connection. Caller storage; the identity is borrowed for the session's lifetime. */
struct macc_session {
	const struct macc_identity *self;
	uint8_t self_nonce[MACC_NONCE_BYTES];
	struct macc_pubkey peer;               /* valid once have_hello */
	uint8_t peer_nonce[MACC_NONCE_BYTES];  /* valid once have_hello */
	uint64_t peer_hello_round;             /* the round the peer announced in HELLO */
	uint32_t peer_degree;
	uint64_t last_round;                   /* last accepted STATE round, valid if have_round */
	bool have_hello;  /* the peer's HELLO passed the checks */
	bool proven;      /* the peer's HELLO_ACK verified: session established */
	bool have_round;
};

/* Start a session with our identity and our nonce (the one sent in our HELLO). */
void macc_session_init(struct macc_session *s, const struct macc_identity *self,
		       const uint8_t self_nonce[MACC_NONCE_BYTES]);

/* Wipe the session (no secrets are held, but nonces go too). Zeroed storage ok. */
void macc_session_finish(struct macc_session *s);

/*
 * Accept the peer's HELLO: its key must be in `allow[0..nallow)` (MACC_EUNKNOWNPEER), and its
 * model hash, parameter count and algorithm must equal ours (MACC_EMODEL; the message names
 * both values). If `expect` is not NULL, the key must also be that one (an outgoing connection
 * to a configured peer; MACC_EUNKNOWNPEER otherwise). A second HELLO in the same session, or a
 * HELLO that carries our own nonce, is refused (MACC_EREPLAY). On success returns the index of
 * the key in `allow` and binds the session to it; nothing changes on failure.
 */
int macc_session_accept_hello(struct macc_session *s, const struct macc_hello *h,
			      const struct macc_pubkey *allow, size_t nallow,
			      const struct macc_pubkey *expect, uint64_t model_hash,
			      uint64_t nparams, const char *algo, struct macc_errmsg *err);

/* Append our HELLO_ACK frame (our proof over the peer's nonce). Needs have_hello
 * (MACC_ESTATE otherwise). */
int macc_session_ack_encode(struct macc_session *s, struct macc_buf *out);

/* Verify the peer's HELLO_ACK: needs have_hello (MACC_ESTATE), the key must be the session's
 * peer (MACC_EUNKNOWNPEER), the proof must verify (MACC_EBADSIG). Sets `proven`. */
int macc_session_verify_ack(struct macc_session *s, const struct macc_hello_ack *a,
			    struct macc_errmsg *err);

/* Build the per-neighbour prefix for `body` on this session (needs have_hello; sending before the
 * peer is proven is allowed, the peer will not accept it before it saw our ACK). */
int macc_session_state_prefix(const struct macc_session *s, const struct macc_state_body *body,
			      struct macc_state_prefix *ret_prefix);

/*
 * Check a decoded STATE on this session: session established (MACC_ESTATE), sender is the
 * session's peer (MACC_EUNKNOWNPEER), signature over the header and the body digest
 * (MACC_EBADSIG), parameter count equals `nparams` (MACC_EMODEL), round strictly greater than
 * the last accepted one (MACC_EREPLAY). On success records the round and returns 0; on failure
 * the session is unchanged and the caller must not use the message.
 */
int macc_session_accept_state(struct macc_session *s, const struct macc_state *st,
			      size_t nparams, struct macc_errmsg *err);

#endif
