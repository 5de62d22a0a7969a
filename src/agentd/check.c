/*
 * check.c - one validation of the daemon's configuration, run by `macc-agentd --check-config`
 * and by the daemon's start-up before it builds anything (see check.h).
 *
 * Design. The config parser (src/common/config.c) checks what one file can say about itself:
 * syntax, ranges, required keys, option combinations. What only the layers above can judge is
 * judged here by those layers' own code, never by a copy of their grammar: the model spec by the
 * model layer (macc_model_create), the topology by the consensus layer's graph parsers, the data
 * spec by the data layer, which loads both splits, the learning-rate schedule and compressor by
 * their parsers, the partition by macc_partition_make on the real labels, the checkpoint by the
 * checkpoint loader. Then the facts that
 * tie the layers together: the model's input size and outputs against the data, this agent's
 * neighbours in the topology against its [peer] sections, the smallest shard against one batch.
 * Files and directories are checked as the process that runs the check (start-up runs as the
 * daemon's user; main.c runs --check-config --user NAME in a child that became NAME), so the
 * answer is the kernel's own, ACLs included, and a refusal names the user and the file's mode.
 *
 * Every check runs even after a failure (a problem is recorded, not returned), except those that
 * need what failed: one run of --check-config lists everything start-up would trip over.
 *
 * Messages: "FILE:LINE: " + a sentence, LINE being the key's line (or its section's, marked
 * "(default)" for a key the file does not set). The layers' messages usually quote the value
 * already ("topology 'torus:2x': ..."); then it is not quoted a second time.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macc/agree.h"
#include "macc/config.h"
#include "macc/consensus.h"
#include "macc/crypto.h"
#include "macc/data.h"
#include "macc/mixer.h"
#include "macc/nn.h"

#include "check.h"
#include "checkpoint.h"

/* The key a problem is about: section ("agent"/"train") and key, and the value in force. NULL
 * section: the problem has its own location (the message starts with it). */
struct where {
	const char *section;
	const char *key;
	const char *value;
};

/* Record one problem; text already complete. */
static void add_text(struct agentd_check *chk, bool warning, const char *text)
{
	struct agentd_problem *p;

	if (chk->nproblems == chk->cap) {
		size_t ncap = chk->cap ? chk->cap * 2 : 8;
		struct agentd_problem *np = realloc(chk->problems, ncap * sizeof(*np));

		if (np == NULL) {
			chk->nerrors++; /* counted even when it cannot be listed */
			return;
		}
		chk->problems = np;
		chk->cap = ncap;
	}
	p = &chk->problems[chk->nproblems++];
	p->warning = warning;
	snprintf(p->text, sizeof(p->text), "%.*s", (int)sizeof(p->text) - 1, text);
	if (warning) {
		chk->nwarnings++;
	} else {
		chk->nerrors++;
	}
}

static bool starts_with_word(const char *msg, const char *key)
{
	size_t n = strlen(key);

	return strncmp(msg, key, n) == 0 && (msg[n] == ' ' || msg[n] == ':');
}

/* A problem about w's key: "FILE:LINE: key 'K' = 'V': MSG", or "FILE:LINE: K: MSG" when the
 * message names the value, or "FILE:LINE: MSG" when it also starts with the key's name. */
static void vadd(struct agentd_check *chk, const struct macc_config *cfg, const struct where *w,
		 bool warning, const char *fmt, va_list ap)
{
	char msg[600], text[2048], loc[1100];
	unsigned line = macc_config_key_line(cfg, w->section, w->key);
	const char *dflt = "";

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line == 0) {
		line = macc_config_key_line(cfg, w->section, NULL);
		dflt = " (default)";
	}
	if (line > 0) {
		snprintf(loc, sizeof(loc), "%s:%u", cfg->file, line);
	} else {
		snprintf(loc, sizeof(loc), "%s", cfg->file);
	}
	if (strstr(msg, w->value) == NULL) {
		snprintf(text, sizeof(text), "%s: key '%s' = '%s'%s: %s", loc, w->key, w->value,
			 dflt, msg);
	} else if (starts_with_word(msg, w->key)) {
		snprintf(text, sizeof(text), "%s: %s", loc, msg);
	} else {
		snprintf(text, sizeof(text), "%s: %s: %s", loc, w->key, msg);
	}
	add_text(chk, warning, text);
}

static void add(struct agentd_check *chk, const struct macc_config *cfg, const struct where *w,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void add_warning(struct agentd_check *chk, const struct macc_config *cfg,
			const struct where *w, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* An error about w's key. */
static void add(struct agentd_check *chk, const struct macc_config *cfg, const struct where *w,
		const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(chk, cfg, w, false, fmt, ap);
	va_end(ap);
}

/* A warning about w's key: reported, the daemon starts anyway. */
static void add_warning(struct agentd_check *chk, const struct macc_config *cfg,
			const struct where *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(chk, cfg, w, true, fmt, ap);
	va_end(ap);
}

/* --- files and users ------------------------------------------------------------------------ */

static const char *user_name(uid_t uid, char *buf, size_t n)
{
	struct passwd *pw = getpwuid(uid);

	if (pw != NULL) {
		snprintf(buf, n, "%s", pw->pw_name);
	} else {
		snprintf(buf, n, "%u", (unsigned)uid);
	}
	return buf;
}

static const char *group_name(gid_t gid, char *buf, size_t n)
{
	struct group *gr = getgrgid(gid);

	if (gr != NULL) {
		snprintf(buf, n, "%s", gr->gr_name);
	} else {
		snprintf(buf, n, "%u", (unsigned)gid);
	}
	return buf;
}

/* "(mode 0600 root:root)" of path, or "" when it cannot be stat'ed. */
static const char *mode_of(const char *path, char *buf, size_t n)
{
	struct stat st;
	char u[64], g[64];

	if (stat(path, &st) != 0) {
		buf[0] = '\0';
		return buf;
	}
	snprintf(buf, n, " (mode %04o %s:%s)", (unsigned)(st.st_mode & 07777),
		 user_name(st.st_uid, u, sizeof(u)), group_name(st.st_gid, g, sizeof(g)));
	return buf;
}

char *agentd_check_denied(const char *path, const char *verb, char *buf, size_t n)
{
	char me[64], dir[MACC_CONFIG_PATH_MAX], mode[200];

	user_name(geteuid(), me, sizeof(me));
	/* The first directory on the way that this user may not search. */
	for (const char *s = strchr(path + 1, '/'); s != NULL; s = strchr(s + 1, '/')) {
		size_t k = (size_t)(s - path);

		if (k >= sizeof(dir)) {
			break;
		}
		memcpy(dir, path, k);
		dir[k] = '\0';
		if (access(dir, X_OK) != 0 && errno == EACCES) {
			snprintf(buf, n, "user %s cannot reach %s: no search permission on %s%s", me,
				 path, dir, mode_of(dir, mode, sizeof(mode)));
			return buf;
		}
	}
	snprintf(buf, n, "user %s cannot %s %s%s", me, verb, path, mode_of(path, mode, sizeof(mode)));
	return buf;
}

/* The directory part of path ("." for a bare name). */
static void dir_of(const char *path, char *buf, size_t n)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL) {
		snprintf(buf, n, ".");
	} else if (slash == path) {
		snprintf(buf, n, "/");
	} else {
		snprintf(buf, n, "%.*s", (int)(slash - path), path);
	}
}

/* 0 when `dir` is a directory this user may create files in; else a message in buf. */
static int writable_dir(const char *dir, char *buf, size_t n)
{
	struct stat st;

	if (stat(dir, &st) != 0) {
		if (errno == EACCES) {
			agentd_check_denied(dir, "reach", buf, n);
		} else if (errno == ENOENT) {
			snprintf(buf, n, "directory %s does not exist", dir);
		} else {
			snprintf(buf, n, "%s: %s", dir, strerror(errno));
		}
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(buf, n, "%s is not a directory", dir);
		return -1;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		agentd_check_denied(dir, "create files in", buf, n);
		return -1;
	}
	return 0;
}

/* --- the checks ----------------------------------------------------------------------------- */

int agentd_check_peers(const struct macc_config *cfg, struct macc_errmsg *err)
{
	unsigned line = macc_config_key_line(cfg, "agent", "standalone");

	if (cfg->npeers == 0 && !cfg->standalone) {
		return macc_errf(err, MACC_ECONFIG, "%s:%u: [agent] '%s' has no [peer] section, so it "
				 "would train alone: add its neighbours as [peer] sections, or set "
				 "standalone = yes in [agent] to train alone on purpose", cfg->file,
				 cfg->agent_line, cfg->name);
	}
	if (cfg->npeers > 0 && cfg->standalone) {
		return macc_errf(err, MACC_ECONFIG, "%s:%u: key 'standalone' = 'yes', but the config "
				 "has %zu [peer] section%s (the first at line %u): remove one or the "
				 "other", cfg->file, line, cfg->npeers, cfg->npeers > 1 ? "s" : "",
				 cfg->peers[0].line);
	}
	return 0;
}

static void check_key(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "agent", "key_file", cfg->key_file };
	struct macc_identity id;
	struct macc_errmsg e;
	char why[600];
	int rc;

	memset(&id, 0, sizeof(id));
	rc = macc_identity_load(&id, cfg->key_file, &e);
	if (rc == -EACCES) {
		add(chk, cfg, &w, "%s", agentd_check_denied(cfg->key_file, "read", why, sizeof(why)));
	} else if (rc < 0) {
		add(chk, cfg, &w, "%s", e.text);
	} else if (macc_config_check_own_key(cfg, &id.pub, &e) < 0) {
		add_text(chk, false, e.text);
	}
	macc_identity_finish(&id);
}

static void check_socket(struct agentd_check *chk, const struct macc_config *cfg,
			 const struct agentd_check_opts *o)
{
	const struct where w = { "agent", "control_socket", cfg->control_socket };
	const char *path = cfg->control_socket;
	char dir[MACC_CONFIG_PATH_MAX], why[600], text[768];
	struct stat st;

	dir_of(path, dir, sizeof(dir));
	if (writable_dir(dir, why, sizeof(why)) < 0) {
		/* (the libuv bind would say "permission denied" for a missing directory) */
		if (o->socket_option) {
			snprintf(text, sizeof(text), "control socket %s (option -s): %s", path, why);
			add_text(chk, false, text);
		} else {
			add(chk, cfg, &w, "%s", why);
		}
		return;
	}
	if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
		if (o->socket_option) {
			snprintf(text, sizeof(text), "control socket %s (option -s) exists and is not "
				 "a socket", path);
			add_text(chk, false, text);
		} else {
			add(chk, cfg, &w, "%s exists and is not a socket", path);
		}
	}
}

/* The state directory exists and is writable, or start-up can make it (one mkdir). */
static void check_state_dir(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "agent", "state_dir", cfg->state_dir };
	char parent[MACC_CONFIG_PATH_MAX], why[600];
	struct stat st;

	if (stat(cfg->state_dir, &st) == 0 || errno != ENOENT) {
		if (writable_dir(cfg->state_dir, why, sizeof(why)) < 0) {
			add(chk, cfg, &w, "%s", why);
		}
		return;
	}
	dir_of(cfg->state_dir, parent, sizeof(parent));
	if (writable_dir(parent, why, sizeof(why)) < 0) {
		add(chk, cfg, &w, "%s cannot be created: %s", cfg->state_dir, why);
	}
}

static struct macc_model *check_model(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "train", "model", cfg->model };
	struct macc_model *m = NULL;
	struct macc_errmsg e;

	if (macc_model_create(cfg->model, 1, &m, &e) < 0) {
		add(chk, cfg, &w, "%s", e.text);
		return NULL;
	}
	chk->nparams = macc_model_nparams(m);
	snprintf(chk->model, sizeof(chk->model), "%s", macc_model_spec(m));
	return m;
}

/* Neighbours of agent j in the topology: the agents it sends to or hears from. Undirected
 * specs are tried first; a "file:" edge list with arrows, or algorithm sgp, is a digraph. This
 * is the choice edge.c makes when it builds the graph. */
static int topology_degree(const struct macc_config *cfg, size_t *ret, struct macc_errmsg *err)
{
	uint32_t n = cfg->shard_count, j = cfg->shard_index;
	struct macc_graph g;
	struct macc_digraph dg;
	struct macc_errmsg e1;
	size_t k = 0;
	int rc = MACC_ESPEC;

	memset(&g, 0, sizeof(g));
	memset(&dg, 0, sizeof(dg));
	if (!cfg->sgp) {
		rc = macc_graph_create(cfg->topology, n, cfg->seed, &g, &e1);
		if (rc < 0 && !(rc == MACC_ESPEC && strncmp(cfg->topology, "file:", 5) == 0)) {
			*err = e1;
			return rc;
		}
	}
	if (rc < 0) {
		rc = macc_digraph_create(cfg->topology, n, cfg->seed, &dg, err);
		if (rc < 0) {
			if (!cfg->sgp) {
				*err = e1; /* the undirected parser's message is the clearer one */
			}
			return rc;
		}
	}
	for (uint32_t l = 0; l < n; l++) {
		bool nb = g.adj != NULL ? g.adj[(size_t)j * n + l] != 0
					: dg.adj[(size_t)j * n + l] || dg.adj[(size_t)l * n + j];

		k += nb && l != j;
	}
	macc_graph_finish(&g);
	macc_digraph_finish(&dg);
	*ret = k;
	return 0;
}

static void check_topology(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "train", "topology", cfg->topology };
	struct macc_errmsg e;
	size_t deg;

	if (cfg->topology[0] == '\0' || !cfg->has_shard) {
		return; /* (topology without shard: the parser's error already) */
	}
	if (topology_degree(cfg, &deg, &e) < 0) {
		add(chk, cfg, &w, "%s", e.text);
		return;
	}
	if (deg != cfg->npeers) {
		add(chk, cfg, &w, "topology '%s' of %u agents gives agent %u (shard %u/%u) %zu "
		    "neighbour%s, but the config has %zu [peer] section%s", cfg->topology,
		    cfg->shard_count, cfg->shard_index, cfg->shard_index, cfg->shard_count, deg,
		    deg == 1 ? "" : "s", cfg->npeers, cfg->npeers == 1 ? "" : "s");
	}
}

static bool standardizes(const struct macc_config *cfg)
{
	return cfg->standardize == MACC_CONFIG_STD_YES ||
	       (cfg->standardize == MACC_CONFIG_STD_AUTO && macc_agree_default_on(cfg->data));
}

/* The standardisation agreement needs D, the exact steps (standardize.c): configured, or from
 * the topology or the shard count; an agent alone needs none. */
static void check_standardize(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "train", "standardize", cfg->standardize == MACC_CONFIG_STD_YES
								? "yes" : "auto" };

	if (standardizes(cfg) && cfg->npeers > 0 && cfg->standardize_diameter == 0 &&
	    cfg->topology[0] == '\0' && !cfg->has_shard) {
		add(chk, cfg, &w, "standardize needs standardize_diameter (or topology, or shard): "
		    "the agreement's exact steps must cover the fleet's diameter");
	}
}

/* The learning-rate schedule and the compressor, by their own parsers. */
static void check_specs(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where wl = { "train", "lr_schedule", cfg->lr_schedule };
	const struct where wc = { "train", "compress", cfg->compress };
	struct macc_lr_schedule lr;
	struct macc_compressor comp;
	struct macc_errmsg e;

	if (macc_lr_parse(cfg->lr_schedule, (float)cfg->lr, &lr, &e) < 0) {
		add(chk, cfg, &wl, "%s", e.text);
	}
	if (macc_compress_parse(cfg->compress, &comp, &e) < 0) {
		add(chk, cfg, &wc, "%s", e.text);
	}
}

/* Which mixing options combine: the mixer's one table (macc_mixer_check_opts, which macc-sim
 * and reload use too) on what the file says (push-sum = algorithm sgp; a directed topology file
 * is known once edge.c has read it, which checks again). Reported at the line of [train]. A
 * compress spec that does not parse is check_specs' error. */
static void check_mixing(struct agentd_check *chk, const struct macc_config *cfg)
{
	struct macc_compressor comp = {.kind = MACC_COMPRESS_NONE};
	struct macc_robust_cfg rcfg;
	struct macc_mix_opts o = {
		.algo = cfg->algorithm,
		.pushsum = cfg->sgp,
		.no_graph = cfg->topology[0] == '\0',
		.schedule = cfg->schedule,
		.local_steps = cfg->local_steps,
		.gossip_step = cfg->gossip_step > 0,
		.explicit_weights = cfg->weights == MACC_CONFIG_WEIGHTS_EXPLICIT,
	};
	unsigned line = macc_config_key_line(cfg, "train", NULL);
	struct macc_errmsg e;
	char text[2048];
	int rc;

	if (macc_compress_parse(cfg->compress, &comp, &e) < 0) {
		return;
	}
	o.compress = comp.kind;
	rc = macc_mixer_robust_cfg(cfg->aggregation, cfg->has_screen_factor, cfg->screen_factor,
				   &rcfg, &o.robust, &e);
	if (rc == 0) {
		rc = macc_mixer_check_opts(&o, MACC_MIX_CONF, &e);
	}
	if (rc < 0) {
		snprintf(text, sizeof(text), "%.1000s:%u: [train]: %.600s", cfg->file, line,
			 e.text);
		add_text(chk, false, text);
	}
}

static int load_data(struct agentd_check *chk, const struct macc_config *cfg,
		     struct macc_dataset *train, struct macc_dataset *test)
{
	const struct where w = { "train", "data", cfg->data };
	struct macc_errmsg e;
	char me[64];
	int rc;

	rc = macc_dataset_load(cfg->data, MACC_SPLIT_TRAIN, train, &e);
	if (rc == 0) {
		rc = macc_dataset_load(cfg->data, MACC_SPLIT_TEST, test, &e);
		if (rc < 0) {
			macc_dataset_finish(train);
		}
	}
	if (rc == -EACCES) {
		add(chk, cfg, &w, "%s (as user %s)", e.text, user_name(geteuid(), me, sizeof(me)));
	} else if (rc == -ENOENT && strcmp(cfg->data, "fashion-mnist") == 0) {
		add(chk, cfg, &w, "%s (Fashion-MNIST is not installed: Debian's dataset-fashion-mnist "
		    "package provides it, or set MACC_DATA_DIR)", e.text);
	} else if (rc < 0) {
		add(chk, cfg, &w, "%s", e.text);
	}
	return rc;
}

/* The model against the data, and the shards against one batch. */
static void check_fit(struct agentd_check *chk, const struct macc_config *cfg,
		      const struct macc_model *m, const struct macc_dataset *train,
		      const struct macc_dataset *test)
{
	const struct where wm = { "train", "model", cfg->model };
	const struct where wp = { "train", "partition", cfg->partition };
	const struct where wb = { "train", "batch", "" };
	struct macc_partition part;
	struct macc_errmsg e;
	size_t min_n = train->n;
	uint32_t at = 0;

	/* The model's own check (nn.h): inputs and image shape, classes or regression targets,
	 * naming both sides. */
	if (m != NULL && macc_model_check_data(m, cfg->model, train, test, cfg->data, &e) < 0) {
		add(chk, cfg, &wm, "%s", e.text);
	}
	if (cfg->has_shard && cfg->shard_count > 1) {
		if (macc_partition_make(train->y, train->n, train->nclasses, cfg->shard_count,
					cfg->partition, cfg->seed, &part, &e) < 0) {
			add(chk, cfg, &wp, "%s", e.text);
			return;
		}
		min_n = SIZE_MAX;
		for (uint32_t j = 0; j < cfg->shard_count; j++) {
			size_t sn = part.offsets[j + 1] - part.offsets[j];

			if (sn < min_n) {
				min_n = sn;
				at = j;
			}
		}
		macc_partition_finish(&part);
	}
	if (min_n < cfg->batch) {
		add(chk, cfg, &wb, "shard %u of %u has %zu samples of data '%s', fewer than one batch "
		    "of %u", at, cfg->has_shard ? cfg->shard_count : 1, min_n, cfg->data,
		    cfg->batch);
	}
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (uint8_t)*s;
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t agentd_config_hash(const struct macc_config *c)
{
	char buf[3 * MACC_CONFIG_SPEC_MAX];

	int n;

	n = snprintf(buf, sizeof(buf), "%s|%s|%d:%u/%u|%s|%llu|%u|%s", c->model, c->data,
		     (int)c->has_shard, c->shard_index, c->shard_count, c->partition,
		     (unsigned long long)c->seed, c->batch, macc_algo_name(c->algorithm));
	/* A run that standardises trains on other inputs: its checkpoints belong to it alone
	 * (and to its S). Runs that do not keep the hash they always had. */
	if (standardizes(c) && n > 0 && (size_t)n < sizeof(buf)) {
		snprintf(buf + n, sizeof(buf) - (size_t)n, "|standardize:%u", c->standardize_rounds);
	}
	return fnv1a(0xcbf29ce484222325ull, buf);
}

/* The checkpoint start-up would resume from: none is fine; one of another model or setup, or
 * only corrupt ones, stop start-up (checkpoint.c's loader decides, as at start-up). */
static void check_checkpoint(struct agentd_check *chk, const struct macc_config *cfg,
			     const struct macc_model *m)
{
	const struct where w = { "agent", "state_dir", cfg->state_dir };
	struct macc_ckpt c;
	struct macc_errmsg warn, e;
	char used[1100];
	int rc;

	memset(&c, 0, sizeof(c));
	c.config_hash = agentd_config_hash(cfg);
	c.model_hash = macc_model_hash(m);
	c.nparams = macc_model_nparams(m);
	c.params = malloc(c.nparams * sizeof(float));
	c.momentum = malloc(c.nparams * sizeof(float));
	if (c.params == NULL || c.momentum == NULL) {
		add(chk, cfg, &w, "out of memory to read the checkpoint");
	} else {
		warn.text[0] = '\0';
		rc = macc_ckpt_load(cfg->state_dir, &c, used, sizeof(used), &warn, &e);
		if (rc < 0 && rc != -ENOENT) {
			add(chk, cfg, &w, "%s", e.text);
		}
	}
	free(c.params);
	free(c.momentum);
}

/* --- TCP congestion control ------------------------------------------------------------------ */

/* Whether `name` is a word of the first line of `path` (a /proc list); -1 when unreadable. */
static int in_proc_list(const char *path, const char *name, char *list, size_t n)
{
	FILE *f = fopen(path, "r");
	char *tok, *save = NULL, copy[512];

	list[0] = '\0';
	if (f == NULL) {
		return -1;
	}
	if (fgets(list, (int)n, f) == NULL) {
		list[0] = '\0';
	}
	fclose(f);
	list[strcspn(list, "\n")] = '\0';
	snprintf(copy, sizeof(copy), "%s", list);
	for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
		if (strcmp(tok, name) == 0) {
			return 1;
		}
	}
	return 0;
}

/* tcp_congestion names an algorithm the kernel has loaded (else it loads tcp_NAME only for a
 * process that may load modules), and one that an unprivileged process may choose (else only a
 * daemon with CAP_NET_ADMIN may): warnings, since the kernel decides per connection; a
 * connection where the kernel refuses keeps the system's default (logged, conn.c). */
static void check_tcp_congestion(struct agentd_check *chk, const struct macc_config *cfg)
{
	const struct where w = { "agent", "tcp_congestion", cfg->tcp_congestion };
	char list[512];

	if (cfg->tcp_congestion[0] == '\0') {
		return;
	}
	if (in_proc_list("/proc/sys/net/ipv4/tcp_available_congestion_control",
			 cfg->tcp_congestion, list, sizeof(list)) == 0) {
		add_warning(chk, cfg, &w, "not loaded in this kernel (available: %s); connections "
			    "keep the system's default unless the kernel can load tcp_%s", list,
			    cfg->tcp_congestion);
		return;
	}
	if (in_proc_list("/proc/sys/net/ipv4/tcp_allowed_congestion_control",
			 cfg->tcp_congestion, list, sizeof(list)) == 0) {
		add_warning(chk, cfg, &w, "not in net.ipv4.tcp_allowed_congestion_control (%s): "
			    "only a daemon with CAP_NET_ADMIN may use it", list);
	}
}

int agentd_check_config(const struct macc_config *cfg, const struct agentd_check_opts *o,
			struct agentd_check *ret)
{
	struct agentd_check *chk = ret;
	struct macc_model *m;
	struct macc_dataset train, test;
	struct macc_errmsg e;

	memset(chk, 0, sizeof(*chk));
	memset(&train, 0, sizeof(train));
	memset(&test, 0, sizeof(test));
	if (agentd_check_peers(cfg, &e) < 0) {
		add_text(chk, false, e.text);
	}
	check_key(chk, cfg);
	check_socket(chk, cfg, o);
	check_state_dir(chk, cfg);
	check_specs(chk, cfg);
	check_mixing(chk, cfg);
	check_topology(chk, cfg);
	check_standardize(chk, cfg);
	check_tcp_congestion(chk, cfg);
	m = check_model(chk, cfg);
	if (m != NULL) {
		check_checkpoint(chk, cfg, m);
	}
	if (load_data(chk, cfg, &train, &test) == 0) {
		check_fit(chk, cfg, m, &train, &test);
		if (o->keep_data && chk->nerrors == 0) {
			chk->train = train;
			chk->test = test;
			chk->have_data = true;
		} else {
			macc_dataset_finish(&train);
			macc_dataset_finish(&test);
		}
	}
	macc_model_destroy(m);
	if (chk->nproblems < chk->nerrors + chk->nwarnings) {
		return -ENOMEM;
	}
	return (int)chk->nerrors;
}

void agentd_check_finish(struct agentd_check *chk)
{
	if (chk == NULL) {
		return;
	}
	free(chk->problems);
	if (chk->have_data) {
		macc_dataset_finish(&chk->train);
		macc_dataset_finish(&chk->test);
	}
	memset(chk, 0, sizeof(*chk));
}
