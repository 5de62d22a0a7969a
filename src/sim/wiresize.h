/*
 * wiresize.h - the exact size of a peer-protocol STATE frame, for macc-sim's bytes accounting.
 *
 * macc-sim does not link the protocol library (no keys, no signatures, no msgpack): it computes
 * what macc-agentd would put on the wire for the same round from the layout documented in
 * include/macc/proto.h and the msgpack rules (smallest integer form, fixstr keys, bin8/16/32
 * headers). tests/unit/test_simwire.c checks these numbers against the real encoder.
 *
 *   frame = u32 length || map{ver, type, from: bin(32), sig: bin(64), body: bin(BODY)}
 *   BODY  = map{round, n, enc, x: bin(X), [mom: bin(V)], [w: f64]}
 * X and V are 4*n bytes for f32, or the compressed blob (macc_compress_encode) for bf16, int8
 * and top-k: the daemon carries the blob in the same bin, with the blob's tag in enc.
 * These are plaintext frames: a sealed session (proto.h section 2) adds
 * MACC_SEAL_OVERHEAD (16 bytes, the Poly1305 tag) to every frame, which is not counted here.
 */
#ifndef MACC_SIM_WIRESIZE_H
#define MACC_SIM_WIRESIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a msgpack unsigned integer in its smallest form. */
size_t sim_wire_uint_size(uint64_t v);
/* Bytes of a msgpack bin header for a payload of len bytes. */
size_t sim_wire_bin_header(size_t len);
/* Bytes of a STATE body. has_mom adds the "mom" bin of vlen bytes, has_weight the push-sum
 * weight (a msgpack float64). */
size_t sim_wire_state_body(uint64_t round, size_t nparams, unsigned enc, size_t xlen,
			   bool has_mom, size_t vlen, bool has_weight);
/* Bytes of a whole STATE frame (length prefix, per-neighbour header and signature, body). */
size_t sim_wire_state_frame(size_t body_len);

#endif
