/*
 * fuzz_cifar.c - fuzzes the CIFAR-10 batch parser, macc_dataset_parse_cifar10().
 *
 * The input is one batch file (inflated first when it starts with the gzip magic, capped at
 * 4 MiB). The parser must return 0 or a negative code; on success the shape must be 3x32x32,
 * labels in [0, 10) and pixels in [0, 1], else the harness aborts.
 */
#include <stdint.h>
#include <stdlib.h>

#include "macc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_dataset d = {0};
	struct macc_errmsg err;
	uint8_t *raw = NULL;
	size_t rawlen;
	int rc;

	if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b &&
	    macc_dataset_gunzip(data, size, "fuzz.gz", 4u << 20, &raw, &rawlen, &err) == 0) {
		data = raw;
		size = rawlen;
	}
	rc = macc_dataset_parse_cifar10(data, size, "fuzz", &d, &err);
	if (rc > 0) {
		abort();
	}
	if (rc == 0) {
		if (d.n == 0 || d.dim != 3072 || d.channels != 3 || d.height != 32 ||
		    d.width != 32 || d.nclasses != 10) {
			abort();
		}
		for (size_t i = 0; i < d.n; i++) {
			if (d.y[i] < 0 || d.y[i] >= 10) {
				abort();
			}
		}
		for (size_t i = 0; i < d.n * d.dim; i++) {
			if (!(d.x[i] >= 0.0f && d.x[i] <= 1.0f)) {
				abort();
			}
		}
	}
	macc_dataset_finish(&d);
	free(raw);
	return 0;
}
