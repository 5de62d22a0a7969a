/*
 * digest.c - a fast 64-bit digest of a parameter block, for comparing runs bit for bit.
 *
 * The simulator and the daemon print macc_params_digest() of their parameters so that a test
 * can check that two runs (different thread counts, sim against daemons) ended with exactly the
 * same floats without shipping megabytes around. It is not cryptographic (peers sign with
 * BLAKE2b + Ed25519 elsewhere); it only has to be fast, deterministic on every host and
 * sensitive to every bit.
 *
 * Definition (stable across machines and builds): the block is read as bytes, the IEEE-754
 * bit patterns of the floats in little-endian order, grouped into little-endian 64-bit words
 * (the last word zero-padded). Starting from h = 0xcbf29ce484222325 ^ (n * 0x9e3779b97f4a7c15),
 * each word w is absorbed as h = rotl64(h ^ (w * 0x9e3779b97f4a7c15), 29) * 0x100000001b3, and
 * the result is finalised with splitmix64's mixer, so a single flipped bit changes about half of
 * the output bits. n (the float count) is part of the seed, so blocks that differ only by
 * trailing zeros have different digests.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "macc/nn.h"

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t absorb(uint64_t h, uint64_t w)
{
	return rotl64(h ^ (w * 0x9e3779b97f4a7c15ull), 29) * 0x100000001b3ull;
}

/* Little-endian load of 8 bytes, whatever the host byte order. */
static inline uint64_t load_le64(const unsigned char *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 |
	       (uint64_t)p[3] << 24 | (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 |
	       (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

/* The float at index i as its little-endian bytes. */
static inline void float_le_bytes(const float *x, size_t i, unsigned char out[4])
{
	uint32_t u;

	memcpy(&u, &x[i], sizeof(u));
	out[0] = (unsigned char)u;
	out[1] = (unsigned char)(u >> 8);
	out[2] = (unsigned char)(u >> 16);
	out[3] = (unsigned char)(u >> 24);
}

/* Digest of n floats; x may be NULL when n == 0. See the definition at the top of the file. */
uint64_t macc_params_digest(const float *x, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull);
	size_t i = 0;
	unsigned char b[8];

	for (; i + 2 <= n; i += 2) {
		float_le_bytes(x, i, b);
		float_le_bytes(x, i + 1, b + 4);
		h = absorb(h, load_le64(b));
	}
	if (i < n) {
		float_le_bytes(x, i, b);
		memset(b + 4, 0, 4);
		h = absorb(h, load_le64(b));
	}
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	h ^= h >> 31;
	return h;
}
