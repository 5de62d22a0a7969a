/*
 * data.h - datasets, partitioning among agents, and reproducible mini-batching.
 *
 * A dataset is loaded whole into one float block (n x dim, normalised to [0, 1], optionally
 * standardised) and one label array. Loaders validate everything they read (magic, dimensions,
 * truncation, label range, CSV cells) and fail with MACC_EDATA and a message naming the file and
 * what was wrong; they never crash on a bad file.
 *
 * Dataset specs:
 *   fashion-mnist          IDX gzip files in $MACC_DATA_DIR/fashion-mnist, or
 *                          /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist);
 *                          MACC_FASHION_MNIST_DIR overrides the directory itself
 *   mnist:DIR / idx:DIR    a directory with {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *   idx:IMAGES,LABELS      explicit IDX files (test split: same files unless given twice with ';')
 *   idx:IMAGES             one IDX images file (not a directory): images without labels (y
 *                          NULL, nclasses 0), rows to score
 *   cifar10:DIR            CIFAR-10 binary batches data_batch_{1..5}.bin / test_batch.bin
 *   csv:TRAIN[;TEST][,OPTION...]   numeric CSV; options (see macc_csv_opts below):
 *                          label=COL         the class label column (default: the last);
 *                                            label=none: no label, every column a feature
 *                                            (rows to score, not to train on)
 *                          target=COL[:COL]  regression targets instead of a label
 *                          header=auto|yes|no   whether the first line names the columns
 *                          COL is a 0-based index (negative counts from the end) or a name
 *                          from the header row
 *   cifar10:DIR also accepts the parent of the archive's cifar-10-batches-bin/ directory.
 * Any spec may end with ",val=F[:SEED]" (F in (0, 1)): the test split is then a validation
 * split, round(F n) rows drawn (seeded shuffle, SEED default 0) from the TRAIN file, and the
 * train split is the other rows; a test file given as well is an error. Without a test file
 * and without val=, the "test" split is the training file itself; d->origin says so (the
 * programs print it beside every test figure).
 *
 * Pixels (IDX ubyte, CIFAR) are divided by 255; CSV features are kept as written (standardise
 * them with macc_dataset_feature_stats() + macc_dataset_standardize_features()). IDX images may
 * have 2 (n, dim), 3 (n, rows, cols) or 4 (n, channels, rows, cols) dimensions; labels are
 * ubyte, signed byte or int32 IDX vectors. nclasses is max label + 1 (10 for CIFAR-10). Files
 * starting with the gzip magic 1f 8b are inflated in memory first (whole file at once).
 * Declared sizes are checked against the file size and the limits below before any allocation.
 */
#ifndef MACC_DATA_H
#define MACC_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/err.h"
#include "macc/rng.h"

/* Where the samples of a split come from (for output: which set the "test" figures are on). */
enum macc_data_origin {
	MACC_ORIGIN_FILE,       /* the split's own file(s) (train file, or a separate test file) */
	MACC_ORIGIN_TRAIN,      /* test split without a test file: the training file itself */
	MACC_ORIGIN_VALIDATION, /* a val= split held out of the training file */
};

struct macc_dataset {
	size_t n;                          /* samples */
	size_t dim;                        /* floats per sample = channels * height * width */
	uint32_t channels, height, width;  /* CSV: 1, 1, dim */
	uint32_t nclasses;                 /* classification: max label + 1 (or the format's
					    * class count); regression: 0 */
	float *x;                          /* [n][dim], owned */
	int32_t *y;                        /* [n], owned, each in [0, nclasses); NULL for
					    * regression data */
	/* Regression (CSV target=...): ntargets values per sample, else 0 and t NULL. */
	uint32_t ntargets;
	float *t;                          /* [n][ntargets], owned */
	/* Set by macc_dataset_load (zero/empty from the parse and load_* functions). */
	enum macc_data_origin origin;
	char origin_text[256];             /* e.g. "validation split: 200 of 1000 rows of
					    * /data/a.csv (val=0.2, seed 0)" */
};

/* How to read a CSV file (all fields may be left zero/NULL for the defaults). */
enum macc_csv_header { MACC_CSV_HEADER_AUTO, MACC_CSV_HEADER_YES, MACC_CSV_HEADER_NO };
struct macc_csv_opts {
	const char *label;   /* class label column: name or index ("-1" = last); NULL: last;
			      * "none": unlabelled (y NULL, nclasses 0) */
	const char *targets; /* regression target columns, ':'-separated names or indices;
			      * NULL: classification */
	enum macc_csv_header header; /* AUTO: a header when the first cell is not a number */
};

enum macc_split { MACC_SPLIT_TRAIN, MACC_SPLIT_TEST };

/* Limits the loaders enforce (larger declared sizes fail with MACC_EDATA before allocating). */
#define MACC_DATA_MAX_BYTES ((size_t)1 << 31)  /* float block n * dim * 4, raw and inflated files */
#define MACC_DATA_MAX_DIM ((size_t)1 << 24)    /* floats per sample */
#define MACC_DATA_MAX_CLASSES 65536u           /* labels must be in [0, MACC_DATA_MAX_CLASSES) */

/* Load by spec (see above). On failure *ret is untouched and err names file and problem. */
int macc_dataset_load(const char *spec, enum macc_split split, struct macc_dataset *ret,
		      struct macc_errmsg *err);
/* labels_path NULL: images only (y NULL, nclasses 0); parse_idx likewise with lbl NULL. */
int macc_dataset_load_idx(const char *images_path, const char *labels_path,
			  struct macc_dataset *ret, struct macc_errmsg *err);
int macc_dataset_load_cifar10(const char *const *paths, size_t npaths, struct macc_dataset *ret,
			      struct macc_errmsg *err);
/* label_col < 0 counts from the end (-1 = last column). An optional header line is skipped when
 * its first cell is not numeric. */
int macc_dataset_load_csv(const char *path, int label_col, struct macc_dataset *ret,
			  struct macc_errmsg *err);
void macc_dataset_finish(struct macc_dataset *d); /* NULL / zeroed ok */

/*
 * In-memory forms of the loaders (the file loaders read, gunzip and call these; fuzz harnesses
 * call them directly). Buffers are borrowed and need not be NUL-terminated; the names are only
 * used in error messages. Same contract as the loaders: MACC_EDATA + message, *ret untouched.
 */
int macc_dataset_parse_idx(const uint8_t *img, size_t img_len, const char *img_name,
			   const uint8_t *lbl, size_t lbl_len, const char *lbl_name,
			   struct macc_dataset *ret, struct macc_errmsg *err);
int macc_dataset_parse_cifar10(const uint8_t *buf, size_t len, const char *name,
			       struct macc_dataset *ret, struct macc_errmsg *err);
int macc_dataset_parse_csv(const char *text, size_t len, const char *name, int label_col,
			   struct macc_dataset *ret, struct macc_errmsg *err);
/* The general form: label or targets by name or index, header handling (see csv.c). Every
 * column that is neither the label nor a target is a feature. */
int macc_dataset_parse_csv_opts(const char *text, size_t len, const char *name,
				const struct macc_csv_opts *o, struct macc_dataset *ret,
				struct macc_errmsg *err);
/* Inflate a whole gzip buffer (all members) into a malloc'ed block the caller frees. Output over
 * `max` bytes fails with MACC_EDATA (no gzip bombs); corrupt or truncated input: MACC_EDATA. */
int macc_dataset_gunzip(const uint8_t *in, size_t len, const char *name, size_t max,
			uint8_t **ret_out, size_t *ret_len, struct macc_errmsg *err);

/* Standardise each feature with the given mean/std (per channel; pass the training set's).
 * mean and std have d->channels entries; a std of 0 is treated as 1. */
void macc_dataset_standardize(struct macc_dataset *d, const float *mean, const float *std);
/* Per-channel mean and standard deviation (d->channels entries each), e.g. of the train set. */
void macc_dataset_channel_stats(const struct macc_dataset *d, float *ret_mean, float *ret_std);
/* Per-feature forms (d->dim entries each), for CSV data whose columns have unrelated scales. */
void macc_dataset_feature_stats(const struct macc_dataset *d, float *ret_mean, float *ret_std);
void macc_dataset_standardize_features(struct macc_dataset *d, const float *mean,
				       const float *std);

/*
 * Feature standardisation without sharing data. Each agent summarises its shard as one flat
 * block of macc_feature_stats_len(dim) doubles, [count, sum[dim], sumsq[dim]] (sums of x and
 * x^2 per feature); averaging such blocks (consensus, with any weights that sum to 1) keeps
 * sum/count and sumsq/count exact, so every agent can turn the agreed block into the global
 * mean and standard deviation. The transform is (x - mean) * inv_std, per feature.
 *
 * Zero-variance rule: a feature whose variance, var = sumsq/count - mean^2, is not above
 * 1e-12 * max(1, mean^2) (constant, up to rounding in double) gets inv_std = 1: it is centred
 * but not scaled, so it becomes ~0 instead of noise blown up by 1/~0. count <= 0 gives the
 * identity (mean 0, inv_std 1). Precision: var is a difference of two sums, good to about
 * 1e-16 * mean^2 absolute.
 */
static inline size_t macc_feature_stats_len(size_t dim)
{
	return 1 + 2 * dim;
}
/* Statistics of rows idx[0..n) of d (idx NULL: all d->n rows) into stats (stats_len doubles,
 * overwritten). */
void macc_feature_stats_compute(const struct macc_dataset *d, const uint32_t *idx, size_t n,
				double *stats);
/* mean and inv_std (dim floats each) from a stats block, by the rule above. */
void macc_standardizer_from_stats(const double *stats, size_t dim, float *ret_mean,
				  float *ret_inv_std);
/* x <- (x - mean) * inv_std on every row of d (for callers that transform the data instead of
 * setting the standardiser on the model: do one or the other, not both). */
void macc_dataset_apply_standardizer(struct macc_dataset *d, const float *mean,
				     const float *inv_std);

/*
 * Partition of a dataset among agents: agent a owns indices[offsets[a] .. offsets[a+1]).
 * Schemes: "iid" (seeded shuffle, equal shares), "label-shards:K" (each agent sees K classes:
 * sort by label, cut into nagents*K shards, deal K to each), "dirichlet:ALPHA" (per class,
 * proportions among agents drawn from Dirichlet(ALPHA)). Deterministic for a seed; shards are
 * disjoint and together cover every sample; each shard lists its indices in ascending order.
 *
 * Every agent gets at least one sample (n < nagents fails with MACC_ESPEC). label-shards: K in
 * [1, nclasses]; when nagents * K is a multiple of nclasses every class is cut into
 * nagents * K / nclasses shards and each agent gets exactly K distinct classes (when every class
 * is present); otherwise the label-sorted samples are cut into nagents * K equal shards, dealt
 * K apart, so an agent sees about K classes. dirichlet: "dirichlet:ALPHA[,min=M]"; a small ALPHA
 * can starve an agent, so agents below M samples (default 1) take random samples, one at a
 * time, from the currently largest shard until they have M (fails if nagents * M > n).
 */
struct macc_partition {
	uint32_t nagents;
	uint32_t *offsets; /* nagents + 1 */
	uint32_t *indices; /* n */
};
/* labels may be NULL (regression data) for "iid" only. */
int macc_partition_make(const int32_t *labels, size_t n, uint32_t nclasses, uint32_t nagents,
			const char *scheme, uint64_t seed, struct macc_partition *ret,
			struct macc_errmsg *err);
void macc_partition_finish(struct macc_partition *p);

/*
 * Mini-batches over one agent's shard: each epoch is a fresh seeded shuffle of the shard, cut
 * into floor(n / batch) full batches (a partial last batch is dropped, as the PyTorch
 * reference does). The whole state is (rng at epoch start, epoch, position), so a checkpoint
 * restores the exact batch sequence.
 */
struct macc_batcher {
	const struct macc_dataset *data; /* borrowed */
	const uint32_t *shard;           /* borrowed */
	size_t shard_n;
	size_t batch;
	uint32_t *order;                 /* owned, shard_n */
	struct macc_rng epoch_rng;       /* state at the start of the current epoch */
	uint64_t epoch;                  /* completed epochs */
	size_t pos;                      /* next batch index within the epoch */
};

struct macc_batcher_state {
	struct macc_rng epoch_rng;
	uint64_t epoch;
	uint64_t pos;
};

/* shard may be NULL for "all samples" (then shard_n is ignored). Seeds the rng with (seed,
 * stream). Fails with -EINVAL (batch 0, no data), MACC_EDATA (a shard index >= data->n) or
 * MACC_ECONFIG (shard smaller than one batch), -ENOMEM. */
int macc_batcher_init(struct macc_batcher *b, const struct macc_dataset *data,
		      const uint32_t *shard, size_t shard_n, size_t batch, uint64_t seed,
		      uint64_t stream);
void macc_batcher_finish(struct macc_batcher *b);
size_t macc_batcher_batches_per_epoch(const struct macc_batcher *b);
/* Copy the next batch into x [batch][dim] and y [batch]; advances (and reshuffles at the end of
 * an epoch). y is left alone when the data has no labels (regression). */
void macc_batcher_next(struct macc_batcher *b, float *x, int32_t *y);
/* The same with regression targets into t [batch][ntargets] (either of y, t may be NULL). */
void macc_batcher_next_t(struct macc_batcher *b, float *x, int32_t *y, float *t);
void macc_batcher_get_state(const struct macc_batcher *b, struct macc_batcher_state *ret);
/* Restore a state from get_state (MACC_ESTATE if pos is not below batches_per_epoch). */
int macc_batcher_set_state(struct macc_batcher *b, const struct macc_batcher_state *s);

#endif
