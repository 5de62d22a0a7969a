/*
 * proto.h - the peer protocol: stream framing, message codec and session security.
 *
 * Layers, bottom up (macc-protocol(7)):
 *   1. framing (frame.c): every frame is a u32 big-endian payload length + payload. The stream
 *      decoder takes bytes in arbitrary chunks and yields whole payloads; a length above the
 *      configured maximum is refused (MACC_ETOOBIG) before anything is allocated.
 *   2. sealing (seal.c): once the handshake is done, every frame payload is sealed with an AEAD
 *      (XChaCha20-Poly1305, or AES-256-GCM when both CPUs run AES in hardware) under
 *      X25519-derived, per-direction session keys, negotiated by the HELLO flags
 *      MACC_HELLO_F_SEAL and MACC_HELLO_F_AES256GCM. It sits between 1 and 3 and changes
 *      neither: a sealed frame is an ordinary frame whose payload is ciphertext || 16-byte tag
 *      (section 2 below).
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
 *   round, degree, name, flags (MACC_HELLO_F_*: seal, AES-256-GCM offered, SHA-256 digests
 *   checked, SHA-256 digests sent), and when flags has MACC_HELLO_F_SEAL: eph (a fresh
 *   ephemeral X25519 public key), rk_bytes, rk_frames (the sender's rekey schedule); optionally
 *   arch and blas, the sender's platform, informational (wire.c)}. On the peer's HELLO: check version (decode), allow-list, model and encryption setting, and fix the
 *   AEAD suite (section 2) and each direction's STATE digest from both HELLOs' flags
 *   (macc_session_accept_hello), then send HELLO_ACK {key, sig}, where sig is our Ed25519
 *   signature of
 *       "macc/2/hello" || signer key || verifier key || signer nonce || verifier nonce
 *       || signer flags (u32 BE) || verifier flags || signer eph || verifier eph
 *       || signer rk_bytes (u64 BE) || signer rk_frames || verifier rk_bytes || verifier rk_frames
 *   (eph and rk_* are zero for a side that does not seal), i.e. of the peer's fresh nonce, bound
 *   to both keys, both nonces and both ephemeral keys. On the peer's HELLO_ACK verify it
 *   (macc_session_verify_ack): the peer proved its key in this very session, and that the
 *   ephemeral key we derived our session keys from is its own. The session is established when
 *   both HELLO and a valid HELLO_ACK from the peer were seen.
 *
 * STATE, built for one sender and many neighbours without copying the parameters per neighbour:
 *   frame = u32 length || map { ver, type, from, sig, body: bin(BODY) }
 *   BODY  = map { round, n, enc, x: bin(n*4 LE f32), [mom: bin(n*4)], [w: f64] }
 * With enc != 0 (compressed exchange) x and mom are compressor blobs instead of raw
 * float32 (the layout of macc_compress_encode in consensus.h: u8 enc | u8 0 | u16 0 | u32 n |
 * u32 count | payload, scales alongside the codes); the signature covers the body, so exactly
 * what is sent.
 * The body is encoded ONCE per round (macc_state_body_encode) together with its digest
 * (BLAKE2b-256, or SHA-256: "STATE digests" below). Each neighbour then gets a small prefix
 * (macc_session_state_prefix): frame length, map header, ver, type, from, the signature over
 *       domain || sender key || receiver key || sender nonce || receiver nonce
 *       || type (1 byte) || round (u64 BE) || digest
 * (domain "macc/2/state" for a BLAKE2b-256 digest, "macc/2/stsha" for SHA-256) and the "body"
 * key with the bin header. The daemon writes prefix and body as two buffers
 * (uv_write with 2 uv_buf_t); frame bytes are prefix.bytes[0..len) followed by body.buf.
 * Decoding returns pointers into the frame for x and mom (raw LE float32, possibly unaligned):
 * copy them with macc_f32le_load (one memcpy on little-endian hosts).
 *
 * STATE digests. A sender signs with BLAKE2b-256 unless both HELLOs allow SHA-256: the sender's
 * with MACC_HELLO_F_SHA256 (it digests its bodies with SHA-256, chosen where its CPU has SHA-256
 * instructions) and the receiver's with MACC_HELLO_F_SHA256_OK (it can check SHA-256 digests).
 * So each direction of a session has one digest, known to both sides from the two HELLOs
 * (macc_session.tx_digest/rx_digest), and an agent that never announced MACC_HELLO_F_SHA256_OK
 * (an older one) only ever sees BLAKE2b-256. The proof of the HELLO_ACK covers both sides'
 * flags, so neither bit can be stripped or added in transit. Both digests are collision
 * resistant and 32 bytes, so the signed text keeps its length and offsets; its domain names
 * the digest, so the text alone says how to check it (the audit trail).
 *
 * STATS, the standardisation agreement before training (macc/agree.h; a handful per
 * neighbour and run, so nothing is shared between neighbours): signed like a STATE, with its own
 * domain and type in the signed text, and checked like one (signature on plaintext sessions,
 * the AEAD on sealed ones; sender; steps strictly increasing per session):
 *   frame = u32 length || map { ver, type 7, from, sig, body: bin(BODY) }
 *   BODY  = map { step, avg, exact, n, v: bin(n*8 LE f64) }
 * avg and exact are the sender's S and D (a receiver configured otherwise refuses it: the
 * agents of a fleet must agree on them), v the n values of macc_agree_outgoing for `step`.
 *
 * PING/PONG {seq, time_ns} measure RTT and keep the connection alive; BYE {reason, text} says why
 * a side closes (reason: a MACC_E* code such as MACC_EMODEL). They carry no training state and
 * are not signed (the sealing layer authenticates them when the session is sealed).
 */
#ifndef MACC_PROTO_H
#define MACC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/buf.h"
#include "macc/crypto.h"
#include "macc/err.h"

/* 2: HELLO gained the sealing fields and the proof covers them. */
#define MACC_PROTO_VERSION 2

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
	MACC_MSG_STATS = 7,
};

/* "hello", "hello_ack", "state", "ping", "pong", "bye", "stats" or "unknown". */
const char *macc_msg_type_name(int type);

/* HELLO flags. Bits not understood are ignored (but signed by the proof, so none can be added
 * or stripped in transit). MACC_HELLO_F_SEAL: the sender seals the session (config encrypt =
 * yes); both sides must agree (MACC_EENCRYPT). MACC_HELLO_F_AES256GCM, meaningful only with
 * MACC_HELLO_F_SEAL: the sender offers the AES-256-GCM suite (its CPU runs AES and carry-less
 * multiply in hardware, macc_aead_aes_fast); the session uses it when both HELLOs carry the
 * bit, XChaCha20-Poly1305 otherwise (section 2). MACC_HELLO_F_SHA256_OK and MACC_HELLO_F_SHA256
 * choose each direction's STATE digest ("STATE digests" at the top of this file).
 * MACC_HELLO_F_STANDARDIZE: the sender runs the standardisation agreement (STATS). */
enum {
	MACC_HELLO_F_SEAL = 1u << 0,
	MACC_HELLO_F_AES256GCM = 1u << 1,
	MACC_HELLO_F_SHA256_OK = 1u << 2, /* the sender checks SHA-256 STATE digests */
	MACC_HELLO_F_SHA256 = 1u << 3,    /* the sender's STATEs are digested with SHA-256 */
	/* the sender standardises its features before training (macc/agree.h, STATS): peers
	 * must agree on it, or the agreement would wait for one that never sends STATS */
	MACC_HELLO_F_STANDARDIZE = 1u << 4,
};

/* When a direction of a sealed session moves to its next key: after `bytes` plaintext payload
 * bytes or `frames` frames under the current key, whichever comes first (0: that count never
 * triggers). Each side picks the schedule of what it SENDS and announces it in its HELLO, so
 * the two sides need not be configured alike. Under AES-256-GCM a byte count of 0 or above
 * MACC_SEAL_GCM_REKEY_BYTES_MAX counts as that maximum (both sides apply the same rule). */
struct macc_seal_limits {
	uint64_t bytes;
	uint64_t frames;
};
#define MACC_SEAL_REKEY_BYTES_DEFAULT ((uint64_t)1 << 30) /* 1 GiB */
#define MACC_SEAL_REKEY_FRAMES_DEFAULT ((uint64_t)1 << 20)
/* 2^36 bytes (64 GiB) under one AES-256-GCM key: at most 2^32 AES blocks, so the bound on a
 * distinguisher's advantage ((blocks + frames + 1)^2 / 2^129, CFRG AEAD usage limits) stays
 * below 2^-64. ChaCha20-Poly1305 needs no such cap at macc's sizes. */
#define MACC_SEAL_GCM_REKEY_BYTES_MAX ((uint64_t)1 << 36)

#define MACC_NAME_MAX 64  /* agent name, including the NUL */
#define MACC_ALGO_MAX 32  /* algorithm name ("dmsgd"), including the NUL */
#define MACC_BYE_TEXT_MAX 256
#define MACC_PLATFORM_MAX 32 /* HELLO "arch" / "blas", including the NUL */

struct macc_hello {
	struct macc_pubkey key;           /* sender's public key */
	uint8_t nonce[MACC_NONCE_BYTES];  /* sender's fresh session nonce */
	uint64_t model_hash;              /* macc_model_hash() */
	uint64_t nparams;                 /* parameter count (also inside the hash; for messages) */
	char algo[MACC_ALGO_MAX];         /* macc_algo_name(), e.g. "dmsgd" */
	uint64_t round;                   /* sender's current round */
	uint32_t degree;                  /* sender's number of configured peers (Metropolis) */
	char name[MACC_NAME_MAX];         /* sender's name, informational only */
	uint32_t flags;                   /* MACC_HELLO_F_* */
	/* Present on the wire iff flags has MACC_HELLO_F_SEAL (zero otherwise): */
	uint8_t eph[MACC_KX_PUBKEY_BYTES]; /* sender's fresh ephemeral X25519 public key */
	struct macc_seal_limits rekey;     /* sender's rekey schedule for what it sends */
	/* Optional, informational (wire.c): sent when non-empty, "" when the peer sent none. */
	char arch[MACC_PLATFORM_MAX]; /* machine, uname(2): "x86_64", "aarch64" */
	char blas[MACC_PLATFORM_MAX]; /* BLAS kernel: "Haswell", "ARMV8" */
};

struct macc_hello_ack {
	struct macc_pubkey key;     /* signer's public key */
	uint8_t sig[MACC_SIG_BYTES]; /* proof, see the top of this file */
};

/* Vector encodings of STATE ("enc"): F32 raw little-endian float32, the others a compressor blob
 * per vector (same tag values as enum macc_compress_kind). Decoding checks a blob's structure
 * (tag equal to enc, reserved bytes zero, n equal to the body's n, count and exact length for
 * the encoding) and refuses anything else, or an unknown enc, with MACC_EMALFORMED; the values
 * (finite scales, code range, ascending indices) are checked by macc_compress_check. */
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
	bool has_weight; /* push-sum weight present (push-sum algorithms) */
	double weight;
	const uint8_t *x;   /* F32: nparams * 4 bytes; else a compressor blob of x_len bytes */
	const uint8_t *mom; /* the same for the momentum, or NULL when the sender sends none */
	size_t x_len, mom_len;
};

/* A decoded STATS (standardisation agreement). Pointers point into the frame given to
 * macc_msg_decode, valid as long as that frame is; values are n * 8 bytes of little-endian f64,
 * not necessarily aligned: copy them with macc_f64le_load. */
#define MACC_STATS_MAX_VALUES ((UINT64_C(1) << 25) + 1) /* 1 + 2d for d up to 2^24 features */
struct macc_stats {
	struct macc_pubkey from;
	uint8_t sig[MACC_SIG_BYTES];
	const uint8_t *body; /* the signed body bytes */
	size_t body_len;
	uint64_t step;
	uint32_t avg_steps;   /* the sender's S */
	uint32_t exact_steps; /* the sender's D */
	uint64_t n;           /* values, at most MACC_STATS_MAX_VALUES */
	const uint8_t *values; /* n * 8 bytes */
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
		struct macc_stats stats;
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
/* The same for little-endian f64 (STATS values). */
void macc_f64le_load(double *dst, const uint8_t *src, size_t n);
void macc_f64le_store(uint8_t *dst, const double *src, size_t n);

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
	bool has_weight;   /* push-sum weight (push-sum algorithms) */
	double weight;
	/* enc != MACC_ENC_F32: x and mom are ignored and these compressor blobs are sent as they
	 * are (mom_blob NULL: no momentum); the caller made them with macc_compress_encode. */
	uint32_t enc;
	const uint8_t *x_blob, *mom_blob;
	size_t x_len, mom_len;
	/* The digest to compute (enum macc_digest_alg; 0, BLAKE2b-256, in zeroed storage): the
	 * one the sender's sessions sign with (macc_session_set_digest), usually
	 * macc_digest_preferred(). */
	int digest_alg;
};

struct macc_state_body {
	struct macc_buf buf; /* msgpack body bytes, sent as the second buffer of every frame */
	uint8_t digest[MACC_DIGEST_BYTES]; /* digest of buf, computed once */
	int digest_alg;                    /* which digest (enum macc_digest_alg) */
	uint64_t round;
};

/* Encode (replacing any previous content, reusing the allocation) and hash the body. A
 * session whose tx digest is not the body's (an older peer) has the other one computed for
 * its prefix, at the cost of a second pass over the body. MACC_EMALFORMED for an unknown
 * digest. */
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

/* One direction of a sealed session (see section 2 at the end of this file). */
struct macc_seal_dir {
	uint8_t key[MACC_AEAD_KEY_BYTES]; /* key of the current epoch; wiped at every rekey */
	int aead;         /* the session's suite, enum macc_aead (the same both ways) */
	uint64_t counter; /* frames sealed (tx) or opened (rx) so far: the next frame's nonce */
	uint64_t epoch;   /* rekeys so far */
	uint64_t frames;  /* frames under the current key */
	uint64_t bytes;   /* plaintext payload bytes under the current key */
	struct macc_seal_limits limits; /* this direction's schedule (the sender's HELLO) */
	bool on;          /* frames in this direction are sealed from now on */
	int error;        /* rx: sticky once a frame failed to open */
};

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
	uint64_t last_stats_step;              /* last accepted STATS step, valid if have_stats */
	bool have_stats;
	/* Sealing. Everything below is wiped by macc_session_finish. */
	bool seal;                                 /* macc_session_enable_seal was called */
	int aead;                                  /* negotiated suite, valid once have_hello */
	/* STATE digests (enum macc_digest_alg) of what we send and what we receive, valid once
	 * have_hello; BLAKE2b-256 unless both HELLOs allow SHA-256 (top of this file). */
	int tx_digest, rx_digest;
	uint32_t self_flags;                       /* flags of our HELLO */
	uint32_t peer_flags;                       /* flags of the peer's HELLO */
	uint8_t self_eph[MACC_KX_PUBKEY_BYTES];    /* our ephemeral public key */
	uint8_t eph_secret[MACC_KX_SECRET_BYTES];  /* wiped as soon as the keys are derived */
	uint8_t peer_eph[MACC_KX_PUBKEY_BYTES];
	struct macc_seal_limits self_rekey;        /* what we announced (our tx schedule) */
	struct macc_seal_limits peer_rekey;        /* what the peer announced (our rx schedule) */
	struct macc_seal_dir tx, rx;               /* keyed when the peer's HELLO is accepted */
};

/* Start a session with our identity and our nonce (the one sent in our HELLO). */
void macc_session_init(struct macc_session *s, const struct macc_identity *self,
		       const uint8_t self_nonce[MACC_NONCE_BYTES]);

/* Wipe the session: session keys, the ephemeral secret (if still there) and nonces. Zeroed
 * storage ok. Call it when the connection closes. */
void macc_session_finish(struct macc_session *s);

/*
 * Accept the peer's HELLO: its key must be in `allow[0..nallow)` (MACC_EUNKNOWNPEER), and its
 * model hash, parameter count and algorithm must equal ours (MACC_EMODEL; the message names
 * both values). If `expect` is not NULL, the key must also be that one (an outgoing connection
 * to a configured peer; MACC_EUNKNOWNPEER otherwise). A second HELLO in the same session, or a
 * HELLO that carries our own nonce, is refused (MACC_EREPLAY). Its MACC_HELLO_F_SEAL must equal
 * ours (MACC_EENCRYPT, naming both settings). When sealing, the suite is chosen from both
 * HELLOs' flags and both directional keys are derived here (X25519 via crypto_kx, then
 * crypto_kdf, section 2) and the ephemeral secret is wiped; a reflected or low-order ephemeral
 * key is MACC_ECRYPTO. On success returns the index of the key in `allow` and binds the session
 * to it; nothing changes on failure.
 */
int macc_session_accept_hello(struct macc_session *s, const struct macc_hello *h,
			      const struct macc_pubkey *allow, size_t nallow,
			      const struct macc_pubkey *expect, uint64_t model_hash,
			      uint64_t nparams, const char *algo, struct macc_errmsg *err);

/* Append our HELLO_ACK frame (our proof over the peer's nonce). Needs have_hello
 * (MACC_ESTATE otherwise). On a sealed session this is the last plaintext frame we send: from
 * the next one on every frame we send must go through macc_session_seal_frame/_state. */
int macc_session_ack_encode(struct macc_session *s, struct macc_buf *out);

/* Verify the peer's HELLO_ACK: needs have_hello (MACC_ESTATE), the key must be the session's
 * peer (MACC_EUNKNOWNPEER), the proof must verify (MACC_EBADSIG). Sets `proven`. On a sealed
 * session the ACK is the peer's last plaintext frame: macc_session_open opens every later one. */
int macc_session_verify_ack(struct macc_session *s, const struct macc_hello_ack *a,
			    struct macc_errmsg *err);

/* Build the per-neighbour prefix for `body` on this session (needs have_hello; sending before the
 * peer is proven is allowed, the peer will not accept it before it saw our ACK). The signature
 * is over the session's tx digest: the body's own when they agree, else computed here. */
int macc_session_state_prefix(const struct macc_session *s, const struct macc_state_body *body,
			      struct macc_state_prefix *ret_prefix);

/*
 * Check a decoded STATE on this session: session established (MACC_ESTATE), sender is the
 * session's peer (MACC_EUNKNOWNPEER), signature over the header and the body digest
 * (MACC_EBADSIG), parameter count equals `nparams` (MACC_EMODEL), round strictly greater than
 * the last accepted one (MACC_EREPLAY). On success records the round and returns 0; on failure
 * the session is unchanged and the caller must not use the message.
 *
 * On a session whose receive direction is sealed (macc_session_rx_sealed) the digest and the
 * signature are NOT checked here: the frame opened under a key that only the peer shares with
 * us (its ephemeral key, bound to its Ed25519 identity by the HELLO_ACK proof), in stream order,
 * so the AEAD tag already authenticated every byte of it as the peer's. That saves one BLAKE2b
 * pass over every received body (most of a sealed agent's network-path CPU). The signature is
 * still there for a third party: whoever needs proof of what the peer sent (the audit trail)
 * checks it at that moment with macc_session_verify_state, or later, off the session, from the
 * fields that macc_session_state_proof keeps.
 */
int macc_session_accept_state(struct macc_session *s, const struct macc_state *st,
			      size_t nparams, struct macc_errmsg *err);

/*
 * The text a STATE signature covers, for a third party (the audit trail, macc/audit.h):
 *   domain (12) || sender key (32) || receiver key (32) || sender nonce (32)
 *   || receiver nonce (32) || type 3 (1) || round (u64 BE, 8) || digest of the body (32)
 * = MACC_STATE_SIGNED_BYTES bytes, signed with the sender's Ed25519 key, where the domain is
 * "macc/2/state" for a BLAKE2b-256 digest and "macc/2/stsha" for SHA-256. Anyone holding the
 * sender's public key can check the signature over it and, given the body bytes, that the body
 * hashes to the digest at its end: proof of what the sender sent, independent of the session.
 */
#define MACC_STATE_SIGNED_BYTES 181
/* Offsets of the fields in the signed text. */
#define MACC_STATE_SIGNED_SENDER 12
#define MACC_STATE_SIGNED_RECEIVER 44
#define MACC_STATE_SIGNED_ROUND 141
#define MACC_STATE_SIGNED_DIGEST 149

/*
 * STATS (the standardisation agreement). The signed text has the STATE text's layout, with the
 * domain "macc/2/stats", the type byte 7, the step in place of the round and always the
 * BLAKE2b-256 of the body (STATS are small: no digest is negotiated for them):
 *   "macc/2/stats" (12) || sender key (32) || receiver key (32) || sender nonce (32)
 *   || receiver nonce (32) || 7 (1) || step (u64 BE, 8) || BLAKE2b-256 of the body (32)
 */
struct macc_stats_out {
	uint64_t step;
	uint32_t avg_steps, exact_steps; /* S and D */
	const double *values;            /* n values (macc_agree_outgoing); borrowed for the call */
	size_t n;                        /* at most MACC_STATS_MAX_VALUES */
};

/* Append one STATS frame, signed for this session's peer (needs have_hello: MACC_ESTATE; a
 * loaded identity). Plaintext: on a sealed session pass it to macc_session_seal_frame, like a
 * PING. 0, -ENOMEM, MACC_ETOOBIG (n too large, or the frame), MACC_ECRYPTO. */
int macc_session_stats_encode(const struct macc_session *s, const struct macc_stats_out *st,
			      struct macc_buf *out);

/* The signed text of a STATS from `sender` to `receiver` (MACC_STATE_SIGNED_BYTES bytes). */
void macc_stats_signed_text(const struct macc_pubkey *sender, const struct macc_pubkey *receiver,
			    const uint8_t sender_nonce[MACC_NONCE_BYTES],
			    const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t step,
			    const uint8_t digest[MACC_DIGEST_BYTES],
			    uint8_t out[MACC_STATE_SIGNED_BYTES]);

/*
 * Check a decoded STATS on this session, in the order of STATE: session established
 * (MACC_ESTATE), sender is the peer (MACC_EUNKNOWNPEER), signature (MACC_EBADSIG; on a
 * plaintext receive direction only, as for STATE), step strictly greater than the last
 * accepted one (MACC_EREPLAY). Records the step on success; nothing changes on failure. The
 * values themselves are the agreement's to check (macc_agree_check), S and D the caller's.
 */
int macc_session_accept_stats(struct macc_session *s, const struct macc_stats *st,
			      struct macc_errmsg *err);

/* Build the signed text of a STATE of `round` with the BLAKE2b-256 body digest `digest`. */
void macc_state_signed_text(const struct macc_pubkey *sender, const struct macc_pubkey *receiver,
			    const uint8_t sender_nonce[MACC_NONCE_BYTES],
			    const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t round,
			    const uint8_t digest[MACC_DIGEST_BYTES],
			    uint8_t out[MACC_STATE_SIGNED_BYTES]);

/* The same for a digest of algorithm `alg` (enum macc_digest_alg; an unknown one is taken as
 * BLAKE2b-256, whose text then does not verify). */
void macc_state_signed_text_alg(int alg, const struct macc_pubkey *sender,
				const struct macc_pubkey *receiver,
				const uint8_t sender_nonce[MACC_NONCE_BYTES],
				const uint8_t receiver_nonce[MACC_NONCE_BYTES], uint64_t round,
				const uint8_t digest[MACC_DIGEST_BYTES],
				uint8_t out[MACC_STATE_SIGNED_BYTES]);

/*
 * Check a signed STATE text on its own: the length and domain prefix (either digest), the type
 * byte, that the sender field is `sender` (MACC_EMALFORMED otherwise), and the Ed25519
 * signature `sig` with `sender` (MACC_EBADSIG). When body is not NULL, also that the digest the
 * domain names, of the body, is the digest in the text (MACC_EBADSIG). On success *ret_round
 * (may be NULL) is the round in the text.
 */
int macc_state_signed_verify(const struct macc_pubkey *sender, const uint8_t *text, size_t len,
			     const uint8_t sig[MACC_SIG_BYTES], const uint8_t *body,
			     size_t body_len, uint64_t *ret_round, struct macc_errmsg *err);

/*
 * The explicit check of a STATE's signature on this session, whatever the sealing: sender is the
 * session's peer (MACC_EUNKNOWNPEER), and the Ed25519 signature verifies over the signed header
 * with the session's rx digest of the body (MACC_EBADSIG). Changes nothing. 0 on success.
 */
int macc_session_verify_state(const struct macc_session *s, const struct macc_state *st,
			      struct macc_errmsg *err);

/*
 * What is needed, besides the body bytes and the two public keys, to prove a received STATE to
 * a third party after its session is gone: the signature, both session nonces (sender's first,
 * as in the signed header) and the round. `checked` records whether the signature was verified
 * on receipt (a plaintext session) or not (a sealed one: verify it before relying on it).
 */
struct macc_state_proof {
	uint8_t sig[MACC_SIG_BYTES];
	uint8_t sender_nonce[MACC_NONCE_BYTES];
	uint8_t receiver_nonce[MACC_NONCE_BYTES];
	uint64_t round;
	int digest_alg; /* the digest in the signed text (the session's rx_digest) */
	bool checked;
};

/* Fill *ret from a STATE that macc_session_accept_state accepted on this session. */
void macc_session_state_proof(const struct macc_session *s, const struct macc_state *st,
			      struct macc_state_proof *ret);

/* ---------------------------------------------------------------------------------------- */
/* 2. Sealing (seal.c)                                                                       */
/* ---------------------------------------------------------------------------------------- */

/*
 * A sealed frame is an ordinary frame:  u32 BE L || ciphertext (L - 16 bytes) || tag (16)
 * where ciphertext || tag is the session's AEAD (suite below) of the plaintext payload, with
 *   associated data = the 4 header bytes (so the length cannot be changed),
 *   nonce           = a u64 BE counter, the number of frames sealed before it in this
 *                     direction of this session, after zero bytes: 16 || counter (24 bytes) for
 *                     XChaCha20-Poly1305, 4 || counter (12 bytes) for AES-256-GCM. It is never
 *                     sent: the receiver counts too, so a replayed, reordered, dropped or foreign
 *                     frame does not open,
 *   key             = the direction's key of the current epoch.
 * Suite: AES-256-GCM (enum macc_aead 1) when both HELLOs carry MACC_HELLO_F_AES256GCM,
 * otherwise XChaCha20-Poly1305 (0; the IETF construction: ChaCha20-Poly1305 of RFC 8439 under
 * HChaCha20(key, first 16 nonce bytes), nonce 0^4 || last 8 nonce bytes; with the nonce above
 * that subkey is HChaCha20(key, 0^16), one per epoch). The proof of the HELLO_ACK covers both
 * sides' flags, so a bit added or stripped in transit makes the handshake fail (MACC_EBADSIG)
 * instead of changing the suite. A side offers AES-256-GCM when macc_aead_aes_fast() (by
 * default, see macc_session_seal_offer_aes).
 * Keys: (rx, tx) = crypto_kx(our ephemeral key pair, the peer's ephemeral public key), roles by
 * comparing the two public keys; epoch 0 key = crypto_kdf(id 0, context, kx key) with the
 * context "maccseal" for XChaCha20-Poly1305 and "maccsgcm" for AES-256-GCM (so no key is ever
 * used by both suites); after a frame that reaches the direction's rekey schedule (the
 * sender's HELLO rk_bytes/rk_frames, counted in plaintext payload bytes and frames since the
 * last rekey; for AES-256-GCM the byte count is capped at MACC_SEAL_GCM_REKEY_BYTES_MAX), both
 * sides step
 *   key(e+1) = crypto_kdf(id e+1, "maccrkey", key(e))
 * and wipe key(e): no message is exchanged, and a later key does not reveal an earlier one. The
 * counter is never reset. An empty payload seals to a 16-byte tag.
 *
 * Direction switches: tx is sealed from the first frame after our HELLO_ACK
 * (macc_session_ack_encode), rx from the first frame after the peer's HELLO_ACK
 * (macc_session_verify_ack). TCP keeps each direction in order, so both sides agree.
 */
#define MACC_SEAL_OVERHEAD MACC_AEAD_TAG_BYTES /* bytes a payload grows by when sealed */

/* Seal this session (config encrypt = yes): call after macc_session_init, before sending our
 * HELLO. Makes a fresh ephemeral X25519 key pair (from `eph_seed` when not NULL: tests and
 * golden vectors only) and records our rekey schedule (`rekey` NULL: the defaults). Returns 0,
 * MACC_ESTATE (the peer's HELLO was already accepted) or MACC_ECRYPTO. */
int macc_session_enable_seal(struct macc_session *s, const struct macc_seal_limits *rekey,
			     const uint8_t *eph_seed);

/* Offer AES-256-GCM in our HELLO or not (macc_session_enable_seal offers it when
 * macc_aead_aes_fast()): for tests, and for an operator who wants XChaCha20-Poly1305 only.
 * Offering it on a CPU without AES instructions works, but slowly, and software AES may not be
 * free of timing side channels on every platform: do not. Returns 0, or MACC_ESTATE when
 * sealing is not enabled or the peer's HELLO was already accepted. */
int macc_session_seal_offer_aes(struct macc_session *s, bool offer);

/* The suite of a sealed session (enum macc_aead), once the peer's HELLO was accepted;
 * MACC_ESTATE before that or on a session that does not seal. */
int macc_session_aead(const struct macc_session *s);

/* Announce in our HELLO that we check SHA-256 STATE digests (MACC_HELLO_F_SHA256_OK) and sign
 * ours with `alg` (MACC_HELLO_F_SHA256 for SHA-256), on a sealed session or not: call after
 * macc_session_init, before sending our HELLO, with the digest the bodies will be encoded with
 * (struct macc_state_out.digest_alg), usually macc_digest_preferred(). Without this call a
 * session announces neither and uses BLAKE2b-256 both ways, as older agents do. 0, MACC_ESTATE
 * (the peer's HELLO was already accepted) or MACC_EMALFORMED (unknown digest). */
int macc_session_set_digest(struct macc_session *s, int alg);

/* Put the session's sealing fields into the HELLO we are about to send (after
 * macc_hello_init): flags, ephemeral public key and rekey schedule. Without
 * macc_session_enable_seal it clears them (encrypt = no). The flags include the digest bits of
 * macc_session_set_digest. */
void macc_session_hello_prepare(const struct macc_session *s, struct macc_hello *h);

/* True when frames we send now must be sealed / frames we receive now are sealed. */
bool macc_session_tx_sealed(const struct macc_session *s);
bool macc_session_rx_sealed(const struct macc_session *s);

/*
 * Seal, in place, the whole plaintext frame (header + payload) that starts at out->data[start]
 * and ends at out->len, as the encoders append it: the payload is encrypted where it is, the tag
 * appended and the header rewritten. A no-op returning 0 while tx is not sealed, so the daemon
 * can call it on every small frame it encodes (PING, PONG, BYE, ...). Returns 0, -ENOMEM,
 * MACC_ETOOBIG or MACC_EMALFORMED (not one whole frame); on failure the frame is removed from
 * `out` (out->len = start) and the session's counters are unchanged. MACC_ECRYPTO (the AEAD
 * library failed, e.g. out of memory) also removes the frame, but the frame's slot is gone:
 * close the connection.
 */
int macc_session_seal_frame(struct macc_session *s, struct macc_buf *out, size_t start);

/*
 * Append to `out` one sealed STATE frame for `body` on this session: the per-neighbour prefix
 * (signed as in macc_session_state_prefix) and the shared body are encrypted in one pass
 * straight into `out`, without copying the body first. `out` is per neighbour; reuse it from
 * round to round (macc_buf_reset keeps the allocation). Needs tx sealed (MACC_ESTATE otherwise:
 * on an unsealed session send prefix + shared body as before). 0, -ENOMEM, MACC_ETOOBIG or
 * MACC_ECRYPTO (close the connection, as for macc_session_seal_frame).
 */
int macc_session_seal_state(struct macc_session *s, const struct macc_state_body *body,
			    struct macc_buf *out);

/*
 * For sealing off the event-loop thread: reserve, on the loop thread and in stream order, the
 * slot of the next frame we send (its nonce and key; the session's counters and rekey advance
 * now), then seal it anywhere with macc_seal_ticket_run. Frames must reach the stream in
 * reservation order. `plen` is the plaintext payload length the ticket will be run with.
 * A ticket holds a copy of a key: run it, or wipe it with macc_seal_ticket_discard (and then
 * the session is unusable, since the peer expects that frame). 0, MACC_ESTATE (tx not
 * sealed), MACC_ETOOBIG or MACC_ECRYPTO (rekey).
 */
struct macc_seal_ticket {
	uint8_t key[MACC_AEAD_KEY_BYTES];
	int aead;
	uint64_t counter;
	size_t plen;
	bool valid;
};
int macc_session_seal_reserve(struct macc_session *s, size_t plen, struct macc_seal_ticket *t);

/* Append the sealed frame (header, ciphertext of the concatenated segments, tag) to `out`
 * and wipe the ticket. The segments must add up to the reserved `plen` (MACC_EMALFORMED
 * otherwise). 0, -ENOMEM, MACC_ESTATE (ticket not valid), MACC_EMALFORMED or MACC_ECRYPTO (the
 * library failed; the session is then unusable, as for a discarded ticket). */
int macc_seal_ticket_run(struct macc_seal_ticket *t, const struct macc_iov *m, size_t nm,
			 struct macc_buf *out);
void macc_seal_ticket_discard(struct macc_seal_ticket *t);

/*
 * Open one received frame payload in place (as macc_frame_decoder_take hands it over) and store
 * the plaintext length in *ret_len; the plaintext is payload[0..*ret_len), ready for
 * macc_msg_decode. While rx is not sealed it returns 0 with *ret_len = len (call it on every
 * frame). A frame that does not open (tampered, truncated, replayed, reordered or from another
 * session: MACC_EBADSIG; shorter than a tag: MACC_EMALFORMED) is wiped, and the rx direction
 * stays failed (every later call returns the same error): close the connection.
 */
int macc_session_open(struct macc_session *s, uint8_t *payload, size_t len, size_t *ret_len,
		      struct macc_errmsg *err);

#endif
