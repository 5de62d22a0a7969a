/*
 * ckpt_check.c - does a macc-agentd checkpoint file load? (fault suite helper)
 *
 * For each file named on the command line: read it with the daemon's own reader
 * (macc_ckpt_read_file: magic, version, header length, exact size, CRC-32), then read the
 * parameter and momentum vectors and check that every value is finite. Prints one line per
 * file ("PATH: round R, N parameters, finite") and exits 0 when all files pass, 1 when any
 * does not (the reason is printed on stderr), 2 on a usage error.
 *
 * `ckpt_check --dist A B` prints the squared distance ||x_A - x_B||^2 between the parameters of
 * two checkpoints of the same model (the partition test compares agents across the cut).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"

/* Read a whole checkpoint (header and vectors) into *c; the caller frees the vectors. */
static int load(const char *path, struct macc_ckpt *c)
{
	struct macc_errmsg e;
	int rc;

	memset(c, 0, sizeof(*c));
	e.text[0] = '\0';
	rc = macc_ckpt_read_file(path, c, &e);
	if (rc == 0) {
		c->params = calloc(c->nparams + 1, sizeof(float));
		c->momentum = calloc(c->nparams + 1, sizeof(float));
		rc = c->params != NULL && c->momentum != NULL ? macc_ckpt_read_file(path, c, &e)
							       : -1;
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", e.text[0] ? e.text : "out of memory");
	}
	return rc;
}

static int dist(const char *pa, const char *pb)
{
	struct macc_ckpt a, b;
	double d = 0.0;
	int rc = 1;

	memset(&b, 0, sizeof(b));
	if (load(pa, &a) == 0 && load(pb, &b) == 0) {
		if (a.nparams != b.nparams) {
			fprintf(stderr, "%s and %s hold different models\n", pa, pb);
		} else {
			for (size_t i = 0; i < a.nparams; i++) {
				double t = (double)a.params[i] - (double)b.params[i];
				d += t * t;
			}
			printf("%.9g\n", d);
			rc = 0;
		}
	}
	free(a.params);
	free(a.momentum);
	free(b.params);
	free(b.momentum);
	return rc;
}

static int check(const char *path)
{
	struct macc_ckpt c;
	struct macc_errmsg e;
	size_t bad = 0;
	int rc;

	memset(&c, 0, sizeof(c));
	e.text[0] = '\0';
	rc = macc_ckpt_read_file(path, &c, &e);
	if (rc < 0) {
		fprintf(stderr, "%s\n", e.text[0] ? e.text : macc_strerror(rc));
		return 1;
	}
	c.params = calloc(c.nparams + 1, sizeof(float));
	c.momentum = calloc(c.nparams + 1, sizeof(float));
	if (c.params == NULL || c.momentum == NULL) {
		fprintf(stderr, "%s: no memory for %zu parameters\n", path, c.nparams);
		rc = -1;
		goto out;
	}
	rc = macc_ckpt_read_file(path, &c, &e);
	if (rc < 0) {
		fprintf(stderr, "%s\n", e.text[0] ? e.text : macc_strerror(rc));
		goto out;
	}
	for (size_t i = 0; i < c.nparams; i++) {
		bad += !isfinite(c.params[i]) + !isfinite(c.momentum[i]);
	}
	if (bad > 0) {
		fprintf(stderr, "%s: %zu non-finite values\n", path, bad);
		rc = -1;
		goto out;
	}
	printf("%s: round %llu, %zu parameters, finite\n", path, (unsigned long long)c.round,
	       c.nparams);
out:
	free(c.params);
	free(c.momentum);
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	int status = 0;

	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fprintf(argc < 2 ? stderr : stdout, "usage: ckpt_check CHECKPOINT...\n");
		return argc < 2 ? 2 : 0;
	}
	if (strcmp(argv[1], "--dist") == 0) {
		if (argc != 4) {
			fprintf(stderr, "usage: ckpt_check --dist A B\n");
			return 2;
		}
		return dist(argv[2], argv[3]);
	}
	for (int i = 1; i < argc; i++) {
		status |= check(argv[i]);
	}
	return status;
}
