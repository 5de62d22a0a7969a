/*
 * fuzz_csv.c - fuzzes the CSV parser, macc_dataset_parse_csv(), and what consumes its output.
 *
 * The first byte picks the label column (-4..3), the rest is the file text. The parser must
 * return 0 or a negative code; on success labels must be in [0, nclasses) and features finite.
 * A parsed dataset is then fed to the partitioner (dirichlet, 3 agents) and the feature
 * statistics, which must accept anything the parser accepts.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "macc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_dataset d = {0};
	struct macc_errmsg err;
	int label_col, rc;

	if (size == 0) {
		return 0;
	}
	label_col = (int)(data[0] % 8) - 4;
	rc = macc_dataset_parse_csv((const char *)data + 1, size - 1, "fuzz.csv", label_col, &d,
				    &err);
	if (rc > 0) {
		abort();
	}
	if (rc == 0) {
		if (d.n == 0 || d.dim == 0 || d.width != d.dim) {
			abort();
		}
		for (size_t i = 0; i < d.n; i++) {
			if (d.y[i] < 0 || (uint32_t)d.y[i] >= d.nclasses) {
				abort();
			}
		}
		for (size_t i = 0; i < d.n * d.dim; i++) {
			if (!isfinite(d.x[i])) {
				abort();
			}
		}
		if (d.n >= 3 && d.dim <= 4096) {
			struct macc_partition p = {0};
			float *m = malloc(d.dim * sizeof(float)), *s = malloc(d.dim * sizeof(float));

			if (macc_partition_make(d.y, d.n, d.nclasses, 3, "dirichlet:0.5", 1, &p,
						&err) == 0) {
				if (p.offsets[3] != d.n) {
					abort();
				}
			}
			macc_partition_finish(&p);
			if (m != NULL && s != NULL) {
				macc_dataset_feature_stats(&d, m, s);
				macc_dataset_standardize_features(&d, m, s);
			}
			free(m);
			free(s);
		}
	}
	macc_dataset_finish(&d);
	return 0;
}
