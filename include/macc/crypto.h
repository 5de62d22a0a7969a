/*
 * crypto.h - identities (Ed25519), hashing (BLAKE2b), randomness and key files.
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
 * Planned (issue 12, not implemented here): an X25519 ephemeral key agreement and an
 * XChaCha20-Poly1305 sealing layer between framing and the message codec; those primitives will
 * be added to this header, next to the ones below, without changing them.
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
#define MACC_DIGEST_BYTES 32 /* BLAKE2b-256 */
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

/* Initialise libsodium (idempotent, thread-safe). Every function below calls it itself when
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

#endif
