/*
 * fuzz_compress.c - fuzzes the compressed-vector decoder, macc_compress_decode_add().
 *
 * The input is the blob itself. The expected n is the blob's own n field when that is at most
 * 2^16 (so valid-looking blobs reach the payload checks), else the low byte of the input length.
 * Whatever the bytes, the decoder must return 0 or MACC_EMALFORMED; on error the accumulator must
 * be untouched, on success every value must be finite (the decoder refuses non-finite values and
 * scales that overflow), else the harness aborts so the fuzzer reports it. A successful bf16 or
 * int8 blob is also re-encoded from its decoded values and must decode to the same values again.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	MAX_N = 1 << 16,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_errmsg err;
	enum macc_compress_kind kind = MACC_COMPRESS_NONE;
	size_t n = size & 0xff;
	float *acc, *again;
	uint8_t *blob;
	int rc;

	if (size >= 8) {
		uint32_t bn = (uint32_t)data[4] | (uint32_t)data[5] << 8 | (uint32_t)data[6] << 16 |
			      (uint32_t)data[7] << 24;

		if (bn <= MAX_N) {
			n = bn;
		}
	}
	acc = calloc(n + 1, sizeof(float));
	again = calloc(n + 1, sizeof(float));
	if (acc == NULL || again == NULL) {
		abort();
	}
	rc = macc_compress_decode_add(data, size, n, acc, &kind, &err);
	if (rc != 0 && rc != MACC_EMALFORMED) {
		abort();
	}
	for (size_t i = 0; i < n; i++) {
		if (rc != 0 ? acc[i] != 0.0f || signbit(acc[i]) : !isfinite(acc[i])) {
			abort();
		}
	}
	if (rc == 0 && kind != MACC_COMPRESS_BF16 && kind != MACC_COMPRESS_INT8 &&
	    kind != MACC_COMPRESS_TOPK) {
		abort();
	}
	if (rc == 0 && (kind == MACC_COMPRESS_BF16 || kind == MACC_COMPRESS_INT8)) {
		struct macc_compressor c = {.kind = kind};
		size_t cap = macc_compress_size(&c, n);
		ssize_t len;

		blob = malloc(cap + 1);
		if (blob == NULL) {
			abort();
		}
		len = macc_compress_encode(&c, n, acc, blob, cap, &err);
		/* bf16 values re-encode exactly; int8 values within a block's new scale */
		if (len != (ssize_t)cap ||
		    macc_compress_decode_add(blob, (size_t)len, n, again, NULL, &err) != 0) {
			abort();
		}
		for (size_t i = 0; kind == MACC_COMPRESS_BF16 && i < n; i++) {
			if (again[i] != acc[i]) {
				abort();
			}
		}
		free(blob);
	}
	free(acc);
	free(again);
	return 0;
}
