/*
 * wiresize.c - STATE frame sizes computed from the documented layout (see wiresize.h).
 *
 * The encoder (src/proto/wire.c) writes map headers as fixmap (fewer than 16 entries), keys as
 * fixstr (shorter than 32 bytes: one byte of header), unsigned integers in msgpack's smallest
 * form (positive fixint below 128, then uint8/16/32/64), blobs as bin8/bin16/bin32 and the
 * push-sum weight as float64. The per-neighbour prefix holds the 4-byte frame length, the outer
 * map header, "ver", "type", "from" (32-byte key), "sig" (64-byte Ed25519 signature) and the
 * "body" key with its bin header.
 */
#include "wiresize.h"

#define PUBKEY_BYTES 32
#define SIG_BYTES 64
#define FRAME_HDR 4
#define PROTO_VERSION 1
#define MSG_STATE 3

/* A fixstr key: one header byte plus the characters. */
static size_t key_size(size_t len)
{
	return 1 + len;
}

size_t sim_wire_uint_size(uint64_t v)
{
	if (v < 128) {
		return 1;
	}
	if (v <= UINT8_MAX) {
		return 2;
	}
	if (v <= UINT16_MAX) {
		return 3;
	}
	if (v <= UINT32_MAX) {
		return 5;
	}
	return 9;
}

size_t sim_wire_bin_header(size_t len)
{
	if (len <= UINT8_MAX) {
		return 2;
	}
	if (len <= UINT16_MAX) {
		return 3;
	}
	return 5;
}

size_t sim_wire_state_body(uint64_t round, size_t nparams, unsigned enc, size_t xlen,
			   bool has_mom, size_t vlen, bool has_weight)
{
	size_t s = 1; /* fixmap of 4 to 6 entries */

	s += key_size(5) + sim_wire_uint_size(round);
	s += key_size(1) + sim_wire_uint_size(nparams);
	s += key_size(3) + sim_wire_uint_size(enc);
	s += key_size(1) + sim_wire_bin_header(xlen) + xlen;
	if (has_mom) {
		s += key_size(3) + sim_wire_bin_header(vlen) + vlen;
	}
	if (has_weight) {
		s += key_size(1) + 9;
	}
	return s;
}

size_t sim_wire_state_frame(size_t body_len)
{
	size_t s = FRAME_HDR + 1; /* length prefix, fixmap of 5 */

	s += key_size(3) + sim_wire_uint_size(PROTO_VERSION);
	s += key_size(4) + sim_wire_uint_size(MSG_STATE);
	s += key_size(4) + sim_wire_bin_header(PUBKEY_BYTES) + PUBKEY_BYTES;
	s += key_size(3) + sim_wire_bin_header(SIG_BYTES) + SIG_BYTES;
	s += key_size(4) + sim_wire_bin_header(body_len);
	return s + body_len;
}
