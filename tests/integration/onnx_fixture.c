/*
 * onnx_fixture.c - a model with a standardiser, exported to ONNX, and rows to score with it,
 * for test_export_ort.sh: the simulator and the daemons do not set a standardiser on their own
 * yet, so this makes one the way they will (macc_feature_stats_compute over the rows, then
 * macc_standardizer_from_stats), so that ONNX Runtime's Sub/Mul can be compared with macc's.
 *
 *   onnx_fixture SPEC ROWS SEED OUT.onnx OUT.csv
 *
 * The rows have raw features on unrelated scales (feature k around 10 k, spread k + 1) and are
 * written with 9 significant digits, so the CSV reads back as the same float32 values. The
 * parameters are the model's seeded initialisation. Exit status 0, or 1 with a message.
 */
#include <stdio.h>
#include <stdlib.h>

#include "macc/data.h"
#include "macc/nn.h"
#include "macc/onnx.h"
#include "macc/rng.h"

static int run(const char *spec, size_t rows, uint64_t seed, const char *onnx, const char *csv)
{
	struct macc_errmsg err = {{0}};
	struct macc_model *m = NULL;
	struct macc_dataset d = {0};
	struct macc_rng rng;
	struct macc_onnx_info info = {.agent = "onnx_fixture", .round = 0};
	double *stats = NULL;
	float *params = NULL, *mean = NULL, *inv = NULL;
	FILE *f = NULL;
	int rc = 1;

	if (macc_model_create(spec, 16, &m, &err) < 0) {
		fprintf(stderr, "onnx_fixture: %s\n", err.text);
		return 1;
	}
	d.n = rows;
	d.dim = macc_model_input_dim(m);
	d.channels = d.height = 1;
	d.width = (uint32_t)d.dim;
	d.x = malloc(rows * d.dim * sizeof(float));
	params = malloc(macc_model_nparams(m) * sizeof(float));
	stats = malloc(macc_feature_stats_len(d.dim) * sizeof(double));
	mean = malloc(d.dim * sizeof(float));
	inv = malloc(d.dim * sizeof(float));
	f = fopen(csv, "w");
	if (!d.x || !params || !stats || !mean || !inv || !f) {
		fprintf(stderr, "onnx_fixture: out of memory or cannot create %s\n", csv);
		goto out;
	}
	macc_rng_seed(&rng, seed, 99);
	for (size_t i = 0; i < rows; i++) {
		for (size_t k = 0; k < d.dim; k++) {
			float v = (float)(10.0 * (double)k +
					  (double)(k + 1) * (2.0 * macc_rng_uniform(&rng) - 1.0));

			d.x[i * d.dim + k] = v;
			fprintf(f, "%s%.9g", k ? "," : "", (double)v);
		}
		fputc('\n', f);
	}
	macc_feature_stats_compute(&d, NULL, rows, stats);
	macc_standardizer_from_stats(stats, d.dim, mean, inv);
	macc_model_init_params(m, params, seed);
	if (fclose(f) != 0 || macc_model_set_standardizer(m, mean, inv) < 0 ||
	    macc_onnx_save(onnx, m, params, &info, &err) < 0) {
		fprintf(stderr, "onnx_fixture: %s\n", err.text[0] ? err.text : "write failed");
		f = NULL;
		goto out;
	}
	f = NULL;
	rc = 0;
out:
	if (f) {
		fclose(f);
	}
	macc_dataset_finish(&d);
	macc_model_destroy(m);
	free(params);
	free(stats);
	free(mean);
	free(inv);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: onnx_fixture SPEC ROWS SEED OUT.onnx OUT.csv\n");
		return 2;
	}
	return run(argv[1], (size_t)strtoul(argv[2], NULL, 10), strtoull(argv[3], NULL, 10),
		   argv[4], argv[5]);
}
