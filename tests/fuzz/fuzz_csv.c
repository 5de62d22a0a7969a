/*
 * fuzz_csv.c - fuzzes the CSV parser, macc_dataset_parse_csv(), and what consumes its output.
 *
 * The first byte picks the options, the rest is the file text: bits 0-2 the label column
 * (-4..3); bit 3 regression instead, with the targets of bits 4-5 (the column "a" by name,
 * "0:-1", "1", or "b:0"); bits 6-7 the header mode (auto, yes, no, auto). The parser must return
 * 0 or a negative code; on success labels must be in [0, nclasses) (classification) or the
 * targets finite (regression), and features finite. A parsed dataset is then fed to the
 * partitioner (dirichlet or iid, 3 agents), the feature statistics and the standardiser,
 * which must accept anything the parser accepts.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "macc/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const targets[] = {"a", "0:-1", "1", "b:0"};
	static const enum macc_csv_header headers[] = {MACC_CSV_HEADER_AUTO, MACC_CSV_HEADER_YES,
						       MACC_CSV_HEADER_NO, MACC_CSV_HEADER_AUTO};
	struct macc_dataset d = {0};
	struct macc_errmsg err;
	struct macc_csv_opts o = {0};
	char label[8];
	int rc;

	if (size == 0) {
		return 0;
	}
	snprintf(label, sizeof(label), "%d", (int)(data[0] % 8) - 4);
	if (data[0] & 8) {
		o.targets = targets[(data[0] >> 4) & 3];
	} else {
		o.label = label;
	}
	o.header = headers[data[0] >> 6];
	rc = macc_dataset_parse_csv_opts((const char *)data + 1, size - 1, "fuzz.csv", &o, &d,
					 &err);
	if (rc > 0) {
		abort();
	}
	if (rc == 0) {
		if (d.n == 0 || d.dim == 0 || d.width != d.dim) {
			abort();
		}
		if ((d.ntargets > 0) != (d.t != NULL) || (d.ntargets > 0) == (d.y != NULL)) {
			abort();
		}
		for (size_t i = 0; d.y != NULL && i < d.n; i++) {
			if (d.y[i] < 0 || (uint32_t)d.y[i] >= d.nclasses) {
				abort();
			}
		}
		for (size_t i = 0; i < d.n * d.ntargets; i++) {
			if (!isfinite(d.t[i])) {
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

			if (macc_partition_make(d.y, d.n, d.nclasses, 3,
						d.y != NULL ? "dirichlet:0.5" : "iid", 1, &p,
						&err) == 0) {
				if (p.offsets[3] != d.n) {
					abort();
				}
			}
			macc_partition_finish(&p);
			double *st = malloc(macc_feature_stats_len(d.dim) * sizeof(double));

			if (m != NULL && s != NULL && st != NULL) {
				macc_dataset_feature_stats(&d, m, s);
				macc_dataset_standardize_features(&d, m, s);
				macc_feature_stats_compute(&d, NULL, 0, st);
				macc_standardizer_from_stats(st, d.dim, m, s);
				for (size_t k = 0; k < d.dim; k++) {
					if (!isfinite(m[k]) || !(s[k] > 0.0f) || !isfinite(s[k])) {
						abort();
					}
				}
			}
			free(st);
			free(m);
			free(s);
		}
	}
	macc_dataset_finish(&d);
	return 0;
}
