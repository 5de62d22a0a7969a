/*
 * fuzz_frame.c - fuzzes the stream frame decoder and, behind it, the message decoder.
 *
 * The first input byte picks the chunk size (1..64; chunk 1 exercises the header collected one
 * byte at a time), the rest is the stream. The decoder must never consume more than it was
 * given, must stop after each whole frame, must refuse a length over its limit with
 * MACC_ETOOBIG and stay failed, and every frame it yields has exactly the announced length.
 * Each frame is then decoded as a peer message; any return other than 0 or a negative code
 * aborts.
 */
#include <stdint.h>
#include <stdlib.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_frame_decoder d;
	size_t chunk, off = 1;

	if (size == 0) {
		return 0;
	}
	chunk = 1 + data[0] % 64;
	macc_frame_decoder_init(&d, FUZZ_MAX);
	while (off < size) {
		size_t n = size - off < chunk ? size - off : chunk;
		size_t used = (size_t)-1;
		int rc = macc_frame_decoder_feed(&d, data + off, n, &used);

		if (used > n) {
			abort();
		}
		off += used;
		if (rc < 0) {
			if (rc != MACC_ETOOBIG || d.payload != NULL ||
			    macc_frame_decoder_feed(&d, data, 1, &used) != rc || used != 0) {
				abort();
			}
			break;
		}
		if (rc == 1) {
			struct macc_msg m;
			size_t plen = (size_t)-1;
			uint8_t *p = macc_frame_decoder_take(&d, &plen);

			if (p == NULL || plen > FUZZ_MAX) {
				abort();
			}
			if (macc_msg_decode(p, plen, FUZZ_MAX, &m, NULL) > 0) {
				abort();
			}
			free(p);
		} else if (used != n || rc != 0) {
			abort();
		}
	}
	macc_frame_decoder_finish(&d);
	return 0;
}
