/*
 * crypto.h - identities (Ed25519), hashing (BLAKE2b, SHA-256), randomness, key files and the
 * session encryption primitives.
 *
 * crypto.c is the only file in macc that includes sodium.h; everything else sees the plain
 * structs and fixed-size byte arrays below. An agent's identity is an Ed25519 key pair. The
 * secret lives in exactly one struct macc_identity, owned by the agent, and is wiped with
 * sodium_memzero by macc_identity_finish() and on every error path that touched it.
 *
 * Key text format (like wg): one line of standard base64 with padding (44 characters) of the
 * 32-byte Ed25519 seed (secret key file) or of the 32-byte public key. Key files are written with
 * mode 0600 and refused at load (MACC_EKEYPERM) when any group or other permission bit is set.
 *
 * Session encryption primitives (the protocol use is in proto.h and src/proto/seal.c):
 * ephemeral X25519 key pairs and libsodium's crypto_kx to turn two of them into a pair of
 * directional keys, crypto_kdf to derive a key from a key (epoch keys, rekeying), and two AEAD
 * suites with a detached tag:
 *   MACC_AEAD_XCHACHA20POLY1305  XChaCha20-Poly1305 (the IETF construction, byte-compatible with
 *                                libsodium's crypto_aead_xchacha20poly1305_ietf_*): the suite
 *                                every agent runs. It is computed as HChaCha20 (libsodium) of
 *                                the key and the first 16 nonce bytes, then ChaCha20-Poly1305
 *                                IETF (RFC 8439) under that subkey with the nonce 0^4 || last 8
 *                                nonce bytes, on OpenSSL's libcrypto, whose ChaCha20-Poly1305
 *                                runs about twice as fast as libsodium 1.0.18's XChaCha
 *                                (tests/bench/bench_crypto.c).
 *   MACC_AEAD_AES256GCM          AES-256-GCM (NIST SP 800-38D, 12-byte nonce, 16-byte tag) on
 *                                libcrypto, which uses the CPU's AES and carry-less multiply
 *                                instructions (AES-NI/VAES and PCLMULQDQ/VPCLMULQDQ, ARMv8 AES
 *                                and PMULL). Only where they exist (macc_aead_aes_fast) is it
 *                                faster than ChaCha20, and much slower where they do not, so a
 *                                session uses it only when both ends offer it (proto.h).
 * libsodium keeps the identities (Ed25519), the key exchange (X25519), the KDF, BLAKE2b and the
 * randomness; libcrypto is used for the two bulk AEADs and SHA-256 only, and only here. The sealing
 * function takes its plaintext as a list of segments, so a STATE made of a per-neighbour
 * prefix and a body shared by every neighbour is encrypted in one pass straight into the
 * per-neighbour ciphertext buffer, without first being copied into one contiguous plaintext.
 */
#ifndef MACC_CRYPTO_H
#define MACC_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"

#define MACC_PUBKEY_BYTES 32
#define MACC_SEED_BYTES 32      /* the secret that key files hold */
#define MACC_SECRETKEY_BYTES 64 /* libsodium's expanded form: seed || public key */
#define MACC_SIG_BYTES 64
#define MACC_DIGEST_BYTES 32 /* BLAKE2b-256 or SHA-256 */
#define MACC_NONCE_BYTES 32
#define MACC_KEY_B64_LEN 44  /* base64 of 32 bytes, without the NUL */
#define MACC_KEY_B64_SIZE 45 /* buffer size for one key in base64 with the NUL */

/* A public key by value (copyable, comparable with macc_pubkey_equal). */
struct macc_pubkey {
	uint8_t bytes[MACC_PUBKEY_BYTES];
};

/* An identity: the secret key and its public key. Caller storage; macc_identity_finish() wipes
 * it. `loaded` is false for zeroed storage and after finish. */
struct macc_identity {
	uint8_t secret[MACC_SECRETKEY_BYTES];
	struct macc_pubkey pub;
	bool loaded;
};

/* Initialise libsodium (idempotent, thread-safe; libcrypto initialises itself). Every function below calls it itself when
 * needed; programs may call it early to fail fast. Returns 0 or MACC_ECRYPTO. */
int macc_crypto_init(void);

/* --- identities ------------------------------------------------------------------------- */

/* Fresh random identity. Returns 0 or MACC_ECRYPTO. */
int macc_identity_generate(struct macc_identity *id);

/* Identity from a 32-byte seed (deterministic: tests and golden vectors). */
int macc_identity_from_seed(struct macc_identity *id, const uint8_t seed[MACC_SEED_BYTES]);

/* Identity from the base64 text of a secret key (surrounding whitespace allowed). Returns 0 or
 * MACC_EMALFORMED ("not a base64 key of 32 bytes"). */
int macc_identity_from_b64(struct macc_identity *id, const char *b64, struct macc_errmsg *err);

/* The base64 text of the secret seed (44 chars + NUL). The caller must wipe `out` after use
 * (macc_memzero). */
void macc_identity_to_b64(const struct macc_identity *id, char out[MACC_KEY_B64_SIZE]);

/* Load a key file: refuses a file whose mode has any group/other bit (MACC_EKEYPERM, the message
 * names the file and its mode), a symlink-free open failing (-errno), or content that is not one
 * base64 key (MACC_EMALFORMED). Temporary copies of the secret are wiped. */
int macc_identity_load(struct macc_identity *id, const char *path, struct macc_errmsg *err);

/* Write the secret key as one base64 line to `path`, created (or truncated) with mode 0600.
 * Returns 0 or -errno with a message naming the file. */
int macc_identity_save(const struct macc_identity *id, const char *path, struct macc_errmsg *err);

/* Wipe the secret (sodium_memzero). Accepts zeroed or already finished storage. */
void macc_identity_finish(struct macc_identity *id);

/* --- public keys ------------------------------------------------------------------------ */

void macc_pubkey_to_b64(const struct macc_pubkey *pk, char out[MACC_KEY_B64_SIZE]);

/* Parse a base64 public key (surrounding whitespace allowed). 0 or MACC_EMALFORMED. */
int macc_pubkey_from_b64(struct macc_pubkey *ret_pk, const char *b64, struct macc_errmsg *err);

/* Constant-time equality of two public keys. */
bool macc_pubkey_equal(const struct macc_pubkey *a, const struct macc_pubkey *b);

/* Index of `pk` in the allow-list `keys[0..n)`, or MACC_EUNKNOWNPEER. */
int macc_pubkey_find(const struct macc_pubkey *keys, size_t n, const struct macc_pubkey *pk);

/* --- macc-ctl genkey / pubkey ----------------------------------------------------------- */

/* `macc-ctl genkey`: a fresh secret key as base64 text (44 chars + NUL). Wipe `out` after use.
 * Returns 0 or MACC_ECRYPTO. */
int macc_key_generate_b64(char out[MACC_KEY_B64_SIZE]);

/* `macc-ctl pubkey`: the public key text of a secret key text (as read from stdin, trailing
 * newline allowed). Returns 0 or MACC_EMALFORMED. Intermediate secrets are wiped. */
int macc_key_pubkey_from_secret_b64(const char *secret_b64, char out[MACC_KEY_B64_SIZE],
				    struct macc_errmsg *err);

/* --- signatures ------------------------------------------------------------------------- */

/* Ed25519 detached signature of msg[0..len). `id` must be loaded. */
void macc_sign(const struct macc_identity *id, const void *msg, size_t len,
	       uint8_t sig[MACC_SIG_BYTES]);

/* 0 when `sig` is a valid signature of msg by `pk`, else MACC_EBADSIG. */
int macc_verify(const struct macc_pubkey *pk, const void *msg, size_t len,
		const uint8_t sig[MACC_SIG_BYTES]);

/* --- hashing, randomness, helpers ------------------------------------------------------- */

/*
 * STATE digests (values are protocol constants: proto.h). A STATE's signature covers a digest
 * of its body, so the digest must be collision resistant (the audit trail holds it against the
 * sender): BLAKE2b-256 (libsodium), which every agent computes and checks, or SHA-256
 * (libcrypto), which runs 1.6 to 1.8 times as fast where the CPU has SHA-256 instructions (x86
 * SHA extensions, ARMv8 SHA2) and 2 to 3 times slower where it has not
 * (tests/bench/bench_crypto.c). Both are 32 bytes.
 */
enum macc_digest_alg {
	MACC_DIGEST_BLAKE2B256 = 0,
	MACC_DIGEST_SHA256 = 1,
};

/* "blake2b256", "sha256", or "unknown". */
const char *macc_digest_name(int alg);

/* out = digest `alg` of in[0..len). 0, MACC_EMALFORMED (unknown alg; out untouched) or
 * MACC_ECRYPTO (the library failed). */
int macc_digest(int alg, uint8_t out[MACC_DIGEST_BYTES], const void *in, size_t len);

/* True when this CPU has SHA-256 instructions (x86 SHA extensions; ARMv8 SHA2, AT_HWCAP). */
bool macc_sha256_fast(void);

/* The digest an agent on this CPU signs its STATEs with: SHA-256 where macc_sha256_fast(),
 * else BLAKE2b-256. */
int macc_digest_preferred(void);

/* BLAKE2b with a digest of `outlen` bytes (16..64; MACC_DIGEST_BYTES for STATE digests). */
void macc_blake2b(uint8_t *out, size_t outlen, const void *in, size_t len);

/* Incremental BLAKE2b: opaque storage big enough for libsodium's state (checked at build). */
struct macc_blake2b {
	_Alignas(64) uint8_t opaque[384];
	size_t outlen;
};
void macc_blake2b_init(struct macc_blake2b *h, size_t outlen);
void macc_blake2b_update(struct macc_blake2b *h, const void *in, size_t len);
void macc_blake2b_final(struct macc_blake2b *h, uint8_t *out); /* wipes the state */

/* Cryptographically secure random bytes (session nonces, keys). Training randomness uses
 * macc_rng instead, which is deterministic. */
void macc_random_bytes(void *p, size_t n);

/* Constant-time comparison of n bytes. */
bool macc_ct_equal(const void *a, const void *b, size_t n);

/* Wipe memory in a way the compiler does not remove. */
void macc_memzero(void *p, size_t n);

/* --- session encryption ---------------------------------------------------------------- */

#define MACC_KX_PUBKEY_BYTES 32  /* X25519 public key */
#define MACC_KX_SECRET_BYTES 32  /* X25519 secret key */
#define MACC_KX_SEED_BYTES 32    /* seed of a deterministic key pair (tests, golden vectors) */
#define MACC_AEAD_KEY_BYTES 32
#define MACC_AEAD_NONCE_BYTES 24     /* XChaCha20-Poly1305; the largest nonce of any suite */
#define MACC_AEAD_GCM_NONCE_BYTES 12 /* AES-256-GCM */
#define MACC_AEAD_TAG_BYTES 16
#define MACC_KDF_CTX_BYTES 8     /* crypto_kdf context: exactly 8 characters */

/* One plaintext segment of a scattered message. */
struct macc_iov {
	const void *base;
	size_t len;
};

/* A fresh ephemeral X25519 key pair, or a deterministic one from `seed` when it is not NULL
 * (tests only). The caller wipes `sk` (macc_memzero) as soon as it has been used. Returns 0 or
 * MACC_ECRYPTO. */
int macc_kx_keypair(uint8_t pk[MACC_KX_PUBKEY_BYTES], uint8_t sk[MACC_KX_SECRET_BYTES],
		    const uint8_t *seed);

/*
 * Directional session keys from our ephemeral key pair and the peer's ephemeral public key
 * (libsodium crypto_kx). The roles crypto_kx needs are decided without a message: the side
 * whose ephemeral public key is smaller (memcmp order) is the client, so both sides agree and
 * our `tx` is the peer's `rx`. Refused with MACC_ECRYPTO when both public keys are equal (a
 * reflected HELLO) or the peer's key is a low-order point (the shared secret would be zero).
 * Nothing is written on failure. Intermediate secrets are wiped.
 */
int macc_kx_session_keys(uint8_t rx[MACC_AEAD_KEY_BYTES], uint8_t tx[MACC_AEAD_KEY_BYTES],
			 const uint8_t self_pk[MACC_KX_PUBKEY_BYTES],
			 const uint8_t self_sk[MACC_KX_SECRET_BYTES],
			 const uint8_t peer_pk[MACC_KX_PUBKEY_BYTES]);

/* crypto_kdf_derive_from_key: subkey number `id` of `key` under the 8-character context `ctx`
 * (outlen 16..64). `out` may alias `key` (the key is copied first), so a chain can be stepped
 * in place: macc_kdf_derive(k, 32, e + 1, "maccrkey", k). Returns 0 or MACC_ECRYPTO. */
int macc_kdf_derive(uint8_t *out, size_t outlen, uint64_t id, const char ctx[MACC_KDF_CTX_BYTES],
		    const uint8_t key[MACC_AEAD_KEY_BYTES]);

/* AEAD suites (values are protocol constants: see proto.h). */
enum macc_aead {
	MACC_AEAD_XCHACHA20POLY1305 = 0,
	MACC_AEAD_AES256GCM = 1,
};

/* "xchacha20poly1305", "aes256gcm", or "unknown". */
const char *macc_aead_name(int aead);

/* Nonce length of a suite: MACC_AEAD_NONCE_BYTES or MACC_AEAD_GCM_NONCE_BYTES (0: unknown). */
size_t macc_aead_nonce_bytes(int aead);

/* Largest message one key may seal under a suite in one call (the frame limit keeps macc far
 * below both): 2^38 - 64 bytes for ChaCha20's 32-bit block counter, 2^36 - 32 for GCM. */
uint64_t macc_aead_max_bytes(int aead);

/*
 * True when this CPU runs AES-256-GCM in hardware, so that offering it is worth it: x86 with
 * AES-NI, PCLMULQDQ and AVX (what libcrypto's stitched AES-GCM code needs; VAES and
 * VPCLMULQDQ make it faster still), or ARMv8 with the AES and PMULL extensions (AT_HWCAP).
 * False everywhere else (Raspberry Pi 4's Cortex-A72, for one, lacks them): there
 * XChaCha20-Poly1305 is the faster suite by far.
 */
bool macc_aead_aes_fast(void);

/*
 * Encrypt the concatenation of m[0..nm) into c under suite `aead`, with a detached tag over
 * `ad` and the ciphertext: c receives exactly sum(m[i].len) bytes. For XChaCha20-Poly1305 it is
 * byte for byte what crypto_aead_xchacha20poly1305_ietf_encrypt_detached gives for the
 * concatenated message (24-byte nonce); for AES-256-GCM what any GCM gives (12-byte nonce).
 * One pass over the data, in cache-sized pieces. c may equal m[0].base when nm == 1 (in place);
 * otherwise c must not overlap any segment. Returns 0, MACC_ETOOBIG (above
 * macc_aead_max_bytes), MACC_EMALFORMED (unknown suite) or MACC_ECRYPTO (the library failed,
 * e.g. out of memory; c and tag are then undefined).
 */
int macc_aead_seal_iov(int aead, uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES],
		       const struct macc_iov *m, size_t nm, const void *ad, size_t adlen,
		       const uint8_t *nonce, const uint8_t key[MACC_AEAD_KEY_BYTES]);

/* Verify and decrypt c[0..len) into m under suite `aead` (m may equal c: in place). On
 * MACC_EBADSIG (the tag does not match the key, nonce, associated data and ciphertext) and on
 * MACC_ECRYPTO (the library failed) m[0..len) is zeroed, so nothing of a forgery is released;
 * MACC_ETOOBIG and MACC_EMALFORMED (as for sealing) are refused before anything is written. */
int macc_aead_open(int aead, uint8_t *m, const uint8_t *c, size_t len,
		   const uint8_t tag[MACC_AEAD_TAG_BYTES], const void *ad, size_t adlen,
		   const uint8_t *nonce, const uint8_t key[MACC_AEAD_KEY_BYTES]);

/* libsodium's own one-shot XChaCha20-Poly1305 encrypt_detached (contiguous message; c may
 * equal m): an independent implementation the tests hold the XChaCha suite against. Returns
 * 0. */
int macc_aead_seal(uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES], const void *m, size_t len,
		   const void *ad, size_t adlen, const uint8_t nonce[MACC_AEAD_NONCE_BYTES],
		   const uint8_t key[MACC_AEAD_KEY_BYTES]);

/* libsodium's AES-256-GCM encrypt_detached, the independent implementation the tests hold the
 * AES-256-GCM suite against. MACC_ECRYPTO where libsodium does not run it (it needs AES-NI and
 * PCLMULQDQ on x86), else 0. */
int macc_aead_seal_ref_aes256gcm(uint8_t *c, uint8_t tag[MACC_AEAD_TAG_BYTES], const void *m,
				 size_t len, const void *ad, size_t adlen,
				 const uint8_t nonce[MACC_AEAD_GCM_NONCE_BYTES],
				 const uint8_t key[MACC_AEAD_KEY_BYTES]);

#endif
