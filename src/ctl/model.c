/*
 * model.c - macc-ctl export and predict: the trained model out of macc, and new rows scored
 * with it.
 *
 *   export FILE [config CONF [checkpoint DIR]]
 *   predict DATA [model FILE | config CONF [checkpoint DIR]]
 *
 * Where the model comes from (wg-style keywords after the positional argument):
 *   (nothing)          the running daemon's live model, over the control socket (`model`
 *                      command: a published copy taken at a round boundary, sent in chunks,
 *                      all from one snapshot; predictions with `predict`, rows in batches)
 *   model FILE         an ONNX file macc exported (macc/onnx.h: rebuilt from its spec and
 *                      checked), scored here
 *   config CONF        the agent that CONF configures, from its checkpoint (state_dir, or
 *                      checkpoint DIR): model spec from CONF, parameters from the newest good
 *                      checkpoint file (checkpoint.bin, else checkpoint.prev), scored here
 *
 * DATA is a dataset spec as in macc.conf(5) (csv:..., idx:..., fashion-mnist, ...: its test
 * split, read exactly as training reads it), a CSV file, an IDX images file (optionally gzip),
 * or "-" for CSV rows on standard input. A CSV file or stdin may carry, after the model's
 * inputs, a label (classification) or the targets (regression): that is told from the column
 * count, and then the accuracy or RMSE is reported too.
 *
 * Output: CSV by default, one line per row after a header: "row,class,p0,...,pK-1"
 * (classification: the arg-max class and the softmax probabilities) or "row,value0,..."
 * (regression), with "label" / "target0,..." columns after "row" when the data has them. With
 * --json, one document: {"source","model","agent","round","digest","task","rows","outputs",
 * "predictions":[{"row","class","probabilities","logits"[,"label"]} or {"row","values"
 * [,"targets"]}], "accuracy_ratio" or "rmse" (null without labels)}. A summary line goes to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macc/config.h"
#include "macc/ctl.h"
#include "macc/data.h"
#include "macc/nn.h"
#include "macc/onnx.h"

#include "checkpoint.h"
#include "cli.h"

#define MODEL_TIMEOUT_MS 60000
#define TRANSFER_TRIES 5
#define LOCAL_BATCH MACC_CTL_PREDICT_BATCH /* the daemon's: the same outputs (macc/ctl.h) */

/* A string from the daemon or a file (names, specs, digests, error texts quoting them) made safe
 * for the terminal: macc_escape(), as every daemon-supplied string macc-ctl prints. */
struct safe {
	char s[1100];
};
#define SAFE(buf, str) cli_safe((buf).s, sizeof((buf).s), (str))

/* Where the model comes from (the keywords after the positional argument). */
struct source {
	const char *onnx;       /* model FILE */
	const char *config;     /* config CONF */
	const char *checkpoint; /* checkpoint DIR */
};

/* A model with its parameters, and where they come from. */
struct held {
	struct macc_model *m;
	float *params;
	char agent[256];
	uint64_t round;
	char digest[24];
	const char *source; /* "daemon", "onnx", "checkpoint" */
};

static void held_finish(struct held *h)
{
	macc_model_destroy(h->m);
	free(h->params);
	memset(h, 0, sizeof(*h));
}

static int parse_source(struct cli *c, int first, struct source *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = first; i < c->argc; i += 2) {
		const char *k = c->argv[i];
		const char **slot = strcmp(k, "model") == 0	   ? &s->onnx
				    : strcmp(k, "config") == 0	   ? &s->config
				    : strcmp(k, "checkpoint") == 0 ? &s->checkpoint
								   : NULL;

		if (slot == NULL) {
			cli_err(c, "unknown keyword '%s' (want model FILE, config CONF or "
				"checkpoint DIR).", k);
			return CLI_EUSAGE;
		}
		if (i + 1 >= c->argc || *slot != NULL) {
			cli_err(c, "'%s' needs exactly one value, given once.", k);
			return CLI_EUSAGE;
		}
		*slot = c->argv[i + 1];
	}
	if (s->onnx != NULL && (s->config != NULL || s->checkpoint != NULL)) {
		cli_err(c, "model FILE and config CONF are two different sources: give one.");
		return CLI_EUSAGE;
	}
	if (s->checkpoint != NULL && s->config == NULL) {
		cli_err(c, "checkpoint DIR needs config CONF (the model spec is in the config).");
		return CLI_EUSAGE;
	}
	return CLI_OK;
}

static bool offline(const struct source *s)
{
	return s->onnx != NULL || s->config != NULL;
}

/* --- models from files ---------------------------------------------------------------- */

static int load_onnx(struct cli *c, const char *path, struct held *h)
{
	struct macc_onnx_model om;
	struct macc_errmsg err = {{0}};

	if (macc_onnx_load(path, LOCAL_BATCH, &om, &err) < 0) {
		struct safe e;

		cli_err(c, "%s", SAFE(e, err.text));
		return CLI_EDAEMON;
	}
	h->m = om.model;
	h->params = om.params;
	snprintf(h->agent, sizeof(h->agent), "%s", om.agent);
	h->round = om.round;
	snprintf(h->digest, sizeof(h->digest), "%016" PRIx64, om.digest);
	h->source = "onnx";
	return CLI_OK;
}

/* The newest good checkpoint file of dir (checkpoint.bin, else checkpoint.prev) into h. */
static int read_checkpoint(struct cli *c, const char *dir, struct held *h)
{
	static const char *const names[2] = {MACC_CKPT_NAME, MACC_CKPT_PREV};
	struct macc_errmsg first = {{0}};
	size_t np = macc_model_nparams(h->m), dim = macc_model_input_dim(h->m);
	/* momentum, then the standardiser's mean and inv_std (a version 2 file has them) */
	float *mom = malloc((np + 2 * dim + 1) * sizeof(float));

	if (mom == NULL) {
		cli_err(c, "out of memory for %zu parameters.", np);
		return CLI_EDAEMON;
	}
	for (int i = 0; i < 2; i++) {
		struct macc_ckpt ck = {.nparams = np, .params = h->params, .momentum = mom,
				       .std_dim = dim, .std_mean = mom + np,
				       .std_inv = mom + np + dim};
		struct macc_errmsg err = {{0}};
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (macc_ckpt_read_file(path, &ck, &err) < 0) {
			first = first.text[0] ? first : err;
			continue;
		}
		if (ck.model_hash != macc_model_hash(h->m)) {
			snprintf(first.text, sizeof(first.text), "%.200s: the checkpoint belongs to "
				 "another model (hash %016" PRIx64 "; model %.100s has %016" PRIx64
				 ")", path, ck.model_hash, macc_model_spec(h->m),
				 macc_model_hash(h->m));
			break;
		}
		if (ck.has_std && macc_model_set_standardizer(h->m, ck.std_mean, ck.std_inv) < 0) {
			snprintf(first.text, sizeof(first.text), "%.200s: the checkpoint's feature "
				 "standardiser does not fit model %.100s", path,
				 macc_model_spec(h->m));
			break;
		}
		if (i == 1) {
			fprintf(stderr, "macc-ctl: %s; using %s\n", first.text, path);
		}
		free(mom);
		h->round = ck.round;
		snprintf(h->digest, sizeof(h->digest), "%016" PRIx64,
			 macc_params_digest(h->params, np));
		return CLI_OK;
	}
	free(mom);
	cli_err(c, "%s", first.text);
	return CLI_EDAEMON;
}

static int load_checkpoint(struct cli *c, const struct source *s, struct held *h)
{
	struct macc_config *cfg = calloc(1, sizeof(*cfg));
	struct macc_errmsg err = {{0}};
	int r = CLI_EDAEMON;

	if (cfg == NULL) {
		cli_err(c, "out of memory.");
		return CLI_EDAEMON;
	}
	if (macc_config_load(s->config, cfg, &err) < 0) {
		cli_err(c, "%s", err.text);
		goto out;
	}
	if (macc_model_create(cfg->model, LOCAL_BATCH, &h->m, &err) < 0) {
		cli_err(c, "%s: model '%s': %s", s->config, cfg->model, err.text);
		goto out;
	}
	h->params = malloc((macc_model_nparams(h->m) + 1) * sizeof(float));
	if (h->params == NULL) {
		cli_err(c, "out of memory.");
		goto out;
	}
	snprintf(h->agent, sizeof(h->agent), "%s", cfg->name);
	h->source = "checkpoint";
	r = read_checkpoint(c, s->checkpoint != NULL ? s->checkpoint : cfg->state_dir, h);
out:
	macc_config_finish(cfg);
	free(cfg);
	return r;
}

/* --- the daemon's model --------------------------------------------------------------- */

static void request_model(struct cli *c, struct macc_ctl_request *r, uint64_t off,
			  uint64_t count, uint64_t gen)
{
	memset(r, 0, sizeof(*r));
	r->v = MACC_CTL_PROTO_VERSION;
	r->id = c->next_id++;
	r->cmd = MACC_CTL_CMD_MODEL;
	r->offset = off;
	r->count = count;
	r->generation = gen;
}

/* The description (count 0) or a chunk; a daemon error is reported and CLI_EDAEMON
 * returned, except bad-state (the snapshot moved on), returned as -1 for a retry. */
static int call_model(struct cli *c, uint64_t off, uint64_t count, uint64_t gen,
		      struct macc_ctl_reply *rep)
{
	struct macc_ctl_request req;
	int r;

	request_model(c, &req, off, count, gen);
	r = cli_call(c, &req, rep, MODEL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep->status == MACC_CTL_ESTATE && gen != 0) {
		macc_ctl_reply_finish(rep);
		return -1;
	}
	if (rep->status != MACC_CTL_OK) {
		r = cli_daemon_error(c, "model", rep);
		macc_ctl_reply_finish(rep);
		return r;
	}
	return CLI_OK;
}

/* One whole snapshot's stream into buf (total floats); -1: it moved on, try again. */
static int transfer(struct cli *c, const struct macc_ctl_model *first, float *buf)
{
	uint64_t off = 0;

	memcpy(buf, first->data, first->data_len);
	off = first->data_len / sizeof(float);
	while (off < first->total) {
		struct macc_ctl_reply rep;
		int r = call_model(c, off, MACC_CTL_MODEL_CHUNK, first->generation, &rep);

		if (r != CLI_OK) {
			return r;
		}
		if (rep.model.offset != off || rep.model.data_len == 0 ||
		    rep.model.data_len / sizeof(float) > first->total - off) {
			macc_ctl_reply_finish(&rep);
			cli_err(c, "the daemon sent a chunk that does not fit the model stream.");
			return CLI_ECONNECT;
		}
		memcpy(buf + off, rep.model.data, rep.model.data_len);
		off += rep.model.data_len / sizeof(float);
		macc_ctl_reply_finish(&rep);
	}
	return CLI_OK;
}

/* Build the model the daemon described (into h->m) and check the stream's size against it,
 * before anything is allocated for the stream. */
static int described(struct cli *c, const struct macc_ctl_model *d, struct held *h)
{
	struct macc_errmsg err = {{0}};
	size_t np, dim;

	macc_model_destroy(h->m);
	h->m = NULL;
	struct safe e;

	if (d->spec == NULL || macc_model_create(d->spec, LOCAL_BATCH, &h->m, &err) < 0) {
		cli_err(c, "the daemon's model spec does not build here: %s", SAFE(e, err.text));
		return CLI_EDAEMON;
	}
	np = macc_model_nparams(h->m);
	dim = macc_model_input_dim(h->m);
	if (d->nparams != np || d->total != np + (d->standardized ? 2 * dim : 0) ||
	    d->offset != 0 || d->data_len / sizeof(float) > d->total) {
		cli_err(c, "the daemon's model stream does not match its spec %s.",
			SAFE(e, d->spec));
		return CLI_EDAEMON;
	}
	return CLI_OK;
}

/* The whole stream received: check its digest, keep it as h's parameters. */
static int adopt(struct cli *c, const struct macc_ctl_model *d, float *stream, struct held *h)
{
	size_t np = macc_model_nparams(h->m), dim = macc_model_input_dim(h->m);

	snprintf(h->digest, sizeof(h->digest), "%016" PRIx64, macc_params_digest(stream, np));
	if (strcmp(h->digest, d->digest) != 0) {
		struct safe e;

		cli_err(c, "the parameters received do not match the daemon's digest (%s, got %s).",
			SAFE(e, d->digest), h->digest);
		return CLI_EDAEMON;
	}
	if (d->standardized &&
	    macc_model_set_standardizer(h->m, stream + np, stream + np + dim) < 0) {
		cli_err(c, "the daemon's standardiser is not finite.");
		return CLI_EDAEMON;
	}
	h->params = stream;
	snprintf(h->agent, sizeof(h->agent), "%s", d->name);
	h->round = d->round;
	h->source = "daemon";
	return CLI_OK;
}

static int load_daemon(struct cli *c, struct held *h)
{
	for (int tries = 0; tries < TRANSFER_TRIES; tries++) {
		struct macc_ctl_reply rep;
		float *stream = NULL;
		int r = call_model(c, 0, MACC_CTL_MODEL_CHUNK, 0, &rep);

		if (r != CLI_OK) {
			return r;
		}
		r = described(c, &rep.model, h);
		if (r == CLI_OK && !(stream = malloc((rep.model.total + 1) * sizeof(float)))) {
			cli_err(c, "out of memory for %llu parameters.",
				(unsigned long long)rep.model.total);
			r = CLI_EDAEMON;
		}
		r = r == CLI_OK ? transfer(c, &rep.model, stream) : r;
		r = r == CLI_OK ? adopt(c, &rep.model, stream, h) : r;
		if (r == CLI_OK) {
			stream = NULL; /* h->params now */
		}
		free(stream);
		macc_ctl_reply_finish(&rep);
		if (r != -1) {
			return r;
		}
	}
	cli_err(c, "the daemon's model changed under %d transfers in a row; try again.",
		TRANSFER_TRIES);
	return CLI_EDAEMON;
}

static int load_model(struct cli *c, const struct source *s, struct held *h)
{
	if (s->onnx != NULL) {
		return load_onnx(c, s->onnx, h);
	}
	if (s->config != NULL) {
		return load_checkpoint(c, s, h);
	}
	return load_daemon(c, h);
}

/* --- export --------------------------------------------------------------------------- */

int cmd_export(struct cli *c)
{
	struct source s;
	struct held h = {0};
	struct macc_errmsg err = {{0}};
	int r = parse_source(c, 1, &s);

	if (r != CLI_OK) {
		return r;
	}
	if (s.onnx != NULL) {
		cli_err(c, "export writes ONNX; it reads a daemon (no keyword) or a checkpoint "
			"(config CONF).");
		return CLI_EUSAGE;
	}
	if (c->json && strcmp(c->argv[0], "-") == 0) {
		cli_err(c, "export - writes the model to standard output: no room for --json "
			"there.");
		return CLI_EUSAGE;
	}
	r = load_model(c, &s, &h);
	if (r == CLI_OK) {
		struct macc_onnx_info info = {.agent = h.agent, .round = h.round};

		if (macc_onnx_save(c->argv[0], h.m, h.params, &info, &err) < 0) {
			cli_err(c, "%s", err.text);
			r = CLI_EDAEMON;
		}
	}
	if (r == CLI_OK && c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_bool(&j, "ok", true);
		json_str(&j, "file", c->argv[0]);
		json_str(&j, "source", h.source);
		json_str(&j, "model", macc_model_spec(h.m));
		json_str(&j, "agent", h.agent);
		json_u64(&j, "round", h.round);
		json_str(&j, "digest", h.digest);
		json_u64(&j, "nparams", macc_model_nparams(h.m));
		json_end_obj(&j);
		json_done(&j);
	} else if (r == CLI_OK && strcmp(c->argv[0], "-") != 0) {
		struct safe a;

		printf("exported model %s of %s (round %" PRIu64 ", digest %s, %zu parameters) "
		       "to %s\n", macc_model_spec(h.m), SAFE(a, h.agent), h.round, h.digest,
		       macc_model_nparams(h.m), c->argv[0]);
	}
	held_finish(&h);
	return r;
}

/* --- predict: data -------------------------------------------------------------------- */

/* What the rows must look like, from the model or the daemon's description. */
struct shape {
	size_t dim;
	struct macc_shape in;
	uint32_t nout;
	bool regression;
};

/* A CSV file or stdin: read without a label, then told apart by the column count. */
static int load_csv_auto(struct cli *c, const char *path, struct macc_dataset *d)
{
	struct macc_csv_opts o = {.label = "none"};
	struct macc_errmsg err = {{0}};
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc;

	if (strcmp(path, "-") != 0) {
		char spec[PATH_MAX + 32];

		snprintf(spec, sizeof(spec), "csv:%s,label=none", path);
		rc = macc_dataset_load(spec, MACC_SPLIT_TEST, d, &err);
	} else {
		for (;;) {
			if (len == cap) {
				uint8_t *nb = cap < MACC_DATA_MAX_BYTES ? realloc(buf, cap * 2 + 65536)
									: NULL;

				if (nb == NULL) {
					free(buf);
					cli_err(c, "standard input: too large or out of memory.");
					return CLI_EDAEMON;
				}
				buf = nb;
				cap = cap * 2 + 65536;
			}
			size_t n = fread(buf + len, 1, cap - len, stdin);

			len += n;
			if (n == 0) {
				break;
			}
		}
		rc = macc_dataset_parse_csv_opts((const char *)buf, len, "standard input", &o, d,
						 &err);
		free(buf);
	}
	if (rc < 0) {
		cli_err(c, "%s", err.text);
		return CLI_EDAEMON;
	}
	return CLI_OK;
}

/* Move the columns after the first `dim` of every row into labels or targets. */
static int split_columns(struct cli *c, const char *name, const struct shape *sh,
			 struct macc_dataset *d)
{
	size_t extra = d->dim - sh->dim, n = d->n;
	float *x = d->x;

	if (sh->regression) {
		d->t = malloc(n * extra * sizeof(float));
		d->ntargets = (uint32_t)extra;
	} else {
		d->y = malloc(n * sizeof(int32_t));
	}
	if ((sh->regression && d->t == NULL) || (!sh->regression && d->y == NULL)) {
		cli_err(c, "out of memory.");
		return CLI_EDAEMON;
	}
	for (size_t i = 0; i < n; i++) {
		const float *row = x + i * d->dim;

		if (sh->regression) {
			memcpy(d->t + i * extra, row + sh->dim, extra * sizeof(float));
		} else if (row[sh->dim] < 0 || row[sh->dim] >= MACC_DATA_MAX_CLASSES ||
			   row[sh->dim] != floorf(row[sh->dim])) {
			cli_err(c, "%s: row %zu: the label %g (the column after the %zu inputs) is "
				"not a class number.", name, i + 1, (double)row[sh->dim], sh->dim);
			return CLI_EDAEMON;
		} else {
			d->y[i] = (int32_t)row[sh->dim];
		}
		memmove(x + i * sh->dim, row, sh->dim * sizeof(float));
	}
	d->dim = sh->dim;
	d->width = (uint32_t)sh->dim;
	return CLI_OK;
}

/* A CSV file or stdin: the model's inputs, then optionally the label or the targets. */
static int load_csv_columns(struct cli *c, const char *data, const struct shape *sh,
			    struct macc_dataset *d)
{
	size_t want = sh->regression ? sh->nout : 1;
	int r = load_csv_auto(c, data, d);

	if (r != CLI_OK) {
		return r;
	}
	if (d->dim != sh->dim && d->dim != sh->dim + want) {
		cli_err(c, "%s has %zu columns; the model takes %zu inputs (then %zu more "
			"column%s for the %s, optionally).", data, d->dim, sh->dim, want,
			want == 1 ? "" : "s",
			sh->regression ? "targets" : "label");
		return CLI_EDAEMON;
	}
	return d->dim > sh->dim ? split_columns(c, data, sh, d) : CLI_OK;
}

static bool is_spec(const char *s)
{
	static const char *const pre[] = {"csv:", "idx:", "mnist:", "cifar10:"};

	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		if (strncmp(s, pre[i], strlen(pre[i])) == 0) {
			return true;
		}
	}
	return strcmp(s, "fashion-mnist") == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int load_data(struct cli *c, const char *data, const struct shape *sh,
		     struct macc_dataset *d)
{
	struct macc_errmsg err = {{0}};
	char spec[PATH_MAX + 8];
	int r;

	if (is_spec(data) || !(strcmp(data, "-") == 0 || ends_with(data, ".csv"))) {
		snprintf(spec, sizeof(spec), "%s%s", is_spec(data) ? "" : "idx:", data);
		if (macc_dataset_load(spec, MACC_SPLIT_TEST, d, &err) < 0) {
			cli_err(c, "%s", err.text);
			return CLI_EDAEMON;
		}
	} else if ((r = load_csv_columns(c, data, sh, d)) != CLI_OK) {
		return r;
	}
	if (d->dim != sh->dim) {
		cli_err(c, "%s has %zu values per row; the model takes %zu.", data, d->dim,
			sh->dim);
		return CLI_EDAEMON;
	}
	if (!sh->in.flat && (d->channels > 1 || d->height > 1) &&
	    (d->channels != sh->in.c || d->height != sh->in.h || d->width != sh->in.w)) {
		cli_err(c, "%s has %ux%ux%u images; the model takes %ux%ux%u.", data, d->channels,
			d->height, d->width, sh->in.c, sh->in.h, sh->in.w);
		return CLI_EDAEMON;
	}
	if (sh->regression && d->t != NULL && d->ntargets != sh->nout) {
		cli_err(c, "%s has %u targets; the model has %u outputs.", data, d->ntargets,
			sh->nout);
		return CLI_EDAEMON;
	}
	return CLI_OK;
}

/* --- predict: scoring ----------------------------------------------------------------- */

/* What the run scored with, and its outputs (n x nout raw: logits or values). */
struct scored {
	const char *source;
	char spec[256];
	char agent[256];
	uint64_t round, round_last;
	char digest[24];
	float *out;
};

static int score_local(struct cli *c, const struct source *s, const char *data,
		       struct macc_dataset *d, struct shape *sh, struct scored *sc)
{
	struct held h = {0};
	int r = load_model(c, s, &h);

	if (r != CLI_OK) {
		return r;
	}
	sh->dim = macc_model_input_dim(h.m);
	sh->in = macc_model_input_shape(h.m);
	sh->nout = macc_model_nclasses(h.m);
	sh->regression = macc_model_loss(h.m) == MACC_LOSS_MSE;
	r = load_data(c, data, sh, d);
	if (r == CLI_OK) {
		sc->out = malloc((d->n * sh->nout + 1) * sizeof(float));
		if (sc->out == NULL) {
			cli_err(c, "out of memory for %zu rows.", d->n);
			r = CLI_EDAEMON;
		}
	}
	if (r == CLI_OK) {
		/* one BLAS thread, as the daemon by default (threads = 1): another split of the
		 * products rounds differently, and the outputs would not be the daemon's */
		macc_nn_set_threads(1);
		macc_model_predict(h.m, h.params, d->x, d->n, sc->out);
		sc->source = h.source;
		snprintf(sc->spec, sizeof(sc->spec), "%s", macc_model_spec(h.m));
		snprintf(sc->agent, sizeof(sc->agent), "%s", h.agent);
		sc->round = sc->round_last = h.round;
		snprintf(sc->digest, sizeof(sc->digest), "%s", h.digest);
	}
	held_finish(&h);
	return r;
}

/* One batch of rows through the daemon's `predict`. */
static int predict_batch(struct cli *c, const float *x, size_t rows, const struct shape *sh,
			 float *out, struct scored *sc, bool first)
{
	struct macc_ctl_request req;
	struct macc_ctl_reply rep;
	int r;

	memset(&req, 0, sizeof(req));
	req.v = MACC_CTL_PROTO_VERSION;
	req.id = c->next_id++;
	req.cmd = MACC_CTL_CMD_PREDICT;
	req.inputs = (const uint8_t *)x;
	req.inputs_len = rows * sh->dim * sizeof(float);
	r = cli_call(c, &req, &rep, MODEL_TIMEOUT_MS);
	if (r != CLI_OK) {
		return r;
	}
	if (rep.status != MACC_CTL_OK) {
		r = cli_daemon_error(c, "predict", &rep);
	} else if (rep.predict.rows != rows || rep.predict.outputs != sh->nout ||
		   rep.predict.values_len != rows * sh->nout * sizeof(float)) {
		cli_err(c, "the daemon answered %u rows of %u values for %zu rows of %u.",
			rep.predict.rows, rep.predict.outputs, rows, sh->nout);
		r = CLI_ECONNECT;
	} else {
		memcpy(out, rep.predict.values, rep.predict.values_len);
		if (first) {
			sc->round = rep.predict.round;
			snprintf(sc->digest, sizeof(sc->digest), "%s", rep.predict.digest);
		}
		sc->round_last = rep.predict.round;
	}
	macc_ctl_reply_finish(&rep);
	return r;
}

static int score_daemon(struct cli *c, const char *data, struct macc_dataset *d,
			struct shape *sh, struct scored *sc)
{
	struct macc_ctl_reply rep;
	size_t per;
	int r = call_model(c, 0, 0, 0, &rep);

	if (r != CLI_OK) {
		return r;
	}
	sh->in = (struct macc_shape){rep.model.input_c, rep.model.input_h, rep.model.input_w,
				     rep.model.input_flat};
	sh->dim = (uint64_t)sh->in.c * sh->in.h > MACC_DATA_MAX_DIM ? 0
		  : (size_t)sh->in.c * sh->in.h * sh->in.w;
	sh->dim = sh->dim > MACC_DATA_MAX_DIM ? 0 : sh->dim;
	sh->nout = rep.model.outputs;
	sh->regression = strcmp(rep.model.task, "regression") == 0;
	sc->source = "daemon";
	snprintf(sc->spec, sizeof(sc->spec), "%s", rep.model.spec ? rep.model.spec : "");
	snprintf(sc->agent, sizeof(sc->agent), "%s", rep.model.name);
	macc_ctl_reply_finish(&rep);
	/* rows per request: the request limit (with room for the envelope) and the row bound */
	per = sh->dim > 0 ? (MACC_CTL_MAX_REQUEST - 256) / (sh->dim * sizeof(float)) : 0;
	per = per < MACC_CTL_PREDICT_MAX_ROWS ? per : MACC_CTL_PREDICT_MAX_ROWS;
	/* whole forward batches per request: the daemon's outputs are then the offline ones */
	per = per >= MACC_CTL_PREDICT_BATCH ? per / MACC_CTL_PREDICT_BATCH * MACC_CTL_PREDICT_BATCH
					    : per;
	if (sh->nout == 0 || sh->nout > MACC_DATA_MAX_CLASSES || sh->dim == 0) {
		cli_err(c, "the daemon describes a model of %ux%ux%u inputs and %u outputs: not "
			"one this macc-ctl can score with.", sh->in.c, sh->in.h, sh->in.w,
			sh->nout);
		return CLI_EDAEMON;
	}
	if (per == 0) {
		cli_err(c, "the daemon's model takes %zu inputs: too many for one control request; "
			"export it and predict offline.", sh->dim);
		return CLI_EDAEMON;
	}
	r = load_data(c, data, sh, d);
	if (r == CLI_OK && !(sc->out = malloc((d->n * sh->nout + 1) * sizeof(float)))) {
		cli_err(c, "out of memory for %zu rows.", d->n);
		r = CLI_EDAEMON;
	}
	for (size_t i = 0; r == CLI_OK && i < d->n; i += per) {
		size_t k = d->n - i < per ? d->n - i : per;

		r = predict_batch(c, d->x + i * sh->dim, k, sh, sc->out + i * sh->nout, sc, i == 0);
	}
	return r;
}

/* --- predict: output ------------------------------------------------------------------ */

/* Softmax of one row of logits (in double, then float) and its arg-max. */
static size_t softmax(const float *z, size_t k, float *p)
{
	size_t best = 0;
	double sum = 0.0;

	for (size_t j = 1; j < k; j++) {
		best = z[j] > z[best] ? j : best;
	}
	for (size_t j = 0; j < k; j++) {
		sum += exp((double)z[j] - (double)z[best]);
	}
	for (size_t j = 0; j < k; j++) {
		p[j] = (float)(exp((double)z[j] - (double)z[best]) / sum);
	}
	return best;
}

static void print_csv_header(const struct shape *sh, const struct macc_dataset *d)
{
	fputs("row", stdout);
	if (!sh->regression) {
		fputs(d->y ? ",label,class" : ",class", stdout);
	}
	for (uint32_t j = 0; sh->regression && d->t && j < sh->nout; j++) {
		printf(",target%u", j);
	}
	for (uint32_t j = 0; j < sh->nout; j++) {
		printf(sh->regression ? ",value%u" : ",p%u", j);
	}
	putchar('\n');
}

static void print_row_csv(const struct shape *sh, const struct macc_dataset *d, size_t i,
			  const float *vals, size_t cls)
{
	printf("%zu", i);
	if (!sh->regression) {
		if (d->y) {
			printf(",%d", d->y[i]);
		}
		printf(",%zu", cls);
	}
	for (uint32_t j = 0; sh->regression && d->t && j < sh->nout; j++) {
		printf(",%.9g", (double)d->t[i * sh->nout + j]);
	}
	for (uint32_t j = 0; j < sh->nout; j++) {
		printf(",%.9g", (double)vals[j]);
	}
	putchar('\n');
}

static void json_floats(struct json *j, const char *key, const float *v, size_t n)
{
	json_arr(j, key);
	for (size_t i = 0; i < n; i++) {
		json_num(j, NULL, (double)v[i]);
	}
	json_end_arr(j);
}

static void print_row_json(struct json *j, const struct shape *sh, const struct macc_dataset *d,
			   size_t i, const float *vals, const float *logits, size_t cls)
{
	json_obj(j, NULL);
	json_u64(j, "row", i);
	if (sh->regression) {
		json_floats(j, "values", vals, sh->nout);
		if (d->t) {
			json_floats(j, "targets", d->t + i * sh->nout, sh->nout);
		}
	} else {
		json_u64(j, "class", cls);
		json_floats(j, "probabilities", vals, sh->nout);
		json_floats(j, "logits", logits, sh->nout);
		if (d->y) {
			json_i64(j, "label", d->y[i]);
		}
	}
	json_end_obj(j);
}

static void json_head(struct json *j, const struct scored *sc, const struct shape *sh, size_t n)
{
	json_init(j, stdout);
	json_obj(j, NULL);
	json_str(j, "source", sc->source);
	json_str(j, "model", sc->spec);
	json_str(j, "agent", sc->agent);
	json_u64(j, "round", sc->round);
	if (sc->round_last != sc->round) {
		json_u64(j, "round_last", sc->round_last);
	}
	json_str(j, "digest", sc->digest);
	json_str(j, "task", sh->regression ? "regression" : "classification");
	json_u64(j, "rows", n);
	json_u64(j, "outputs", sh->nout);
	json_arr(j, "predictions");
}

/* Print every row; returns the accuracy or RMSE over the labels/targets (NaN: none). */
static double print_all(struct cli *c, const struct shape *sh, const struct macc_dataset *d,
			const struct scored *sc)
{
	float *p = malloc(sh->nout * sizeof(float));
	double sum = 0.0;
	struct json j;
	bool known = sh->regression ? d->t != NULL : d->y != NULL;

	if (p == NULL) {
		cli_err(c, "out of memory.");
		return NAN;
	}
	if (c->json) {
		json_head(&j, sc, sh, d->n);
	} else {
		print_csv_header(sh, d);
	}
	for (size_t i = 0; i < d->n; i++) {
		const float *z = sc->out + i * sh->nout;
		size_t cls = sh->regression ? 0 : softmax(z, sh->nout, p);

		for (uint32_t k = 0; sh->regression && d->t && k < sh->nout; k++) {
			double e = (double)z[k] - (double)d->t[i * sh->nout + k];

			sum += e * e;
		}
		sum += !sh->regression && d->y && (size_t)d->y[i] == cls;
		if (c->json) {
			print_row_json(&j, sh, d, i, sh->regression ? z : p, z, cls);
		} else {
			print_row_csv(sh, d, i, sh->regression ? z : p, cls);
		}
	}
	free(p);
	double metric = !known || d->n == 0 ? NAN
			: sh->regression ? sqrt(sum / (double)(d->n * sh->nout))
					 : sum / (double)d->n;

	if (c->json) {
		json_end_arr(&j);
		json_num(&j, sh->regression ? "rmse" : "accuracy_ratio", metric);
		json_end_obj(&j);
		json_done(&j);
	}
	return metric;
}

int cmd_predict(struct cli *c)
{
	struct source s;
	struct macc_dataset d = {0};
	struct shape sh = {0};
	struct scored sc = {0};
	int r = parse_source(c, 1, &s);

	if (r != CLI_OK) {
		return r;
	}
	r = offline(&s) ? score_local(c, &s, c->argv[0], &d, &sh, &sc)
			: score_daemon(c, c->argv[0], &d, &sh, &sc);
	if (r == CLI_OK) {
		double metric = print_all(c, &sh, &d, &sc);
		struct safe m, a, g;

		fprintf(stderr, "macc-ctl: %zu rows scored with %s (%s of %s, round %" PRIu64
			", digest %s)", d.n, SAFE(m, sc.spec), sc.source, SAFE(a, sc.agent), sc.round,
			SAFE(g, sc.digest));
		if (sc.round_last != sc.round) {
			fprintf(stderr, "; the daemon's model moved on to round %" PRIu64
				" during the run", sc.round_last);
		}
		if (!isnan(metric)) {
			fprintf(stderr, "; %s %.4f on the %s in the data", sh.regression ? "RMSE"
				: "accuracy", metric, sh.regression ? "targets" : "labels");
		}
		fputc('\n', stderr);
	}
	free(sc.out);
	macc_dataset_finish(&d);
	return r;
}
