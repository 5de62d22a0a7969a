/*
 * main.c - macc-sim: train one agent, or N agents of a decentralized algorithm, in one process.
 *
 * This file is the thin shell: it parses the command line (getopt_long; any bad flag or value is
 * a clear message and exit status 2), creates the engine (sim.c), runs it epoch by epoch, and
 * reports. Reporting is three things, all on stdout except errors:
 *   - one progress line per epoch, as key=value pairs (suppressed by --quiet);
 *   - with --csv, one CSV row per epoch under a fixed header (the paper scripts read it);
 *   - a last line of key=value pairs that scripts and tests parse (always printed).
 *
 * Time: wall_s is the whole time since training started (evaluation included); samples/s counts
 * training samples over training time only (data loading and evaluation excluded).
 *
 * Exit status: 0 success, 1 runtime failure (data files, memory, I/O), 2 usage error (flags,
 * values, specs that do not parse, a graph impossible for N agents).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macc/consensus.h"
#include "macc/err.h"
#include "macc/log.h"
#include "macc/nn.h"
#include "macc/onnx.h"
#include "sim.h"

#define PROG "macc-sim"

static const char usage_text[] =
	"Usage: " PROG " [OPTION]...\n"
	"Train a model on one agent, or N agents of a decentralized algorithm in synchronous\n"
	"rounds, in one process.\n"
	"\n"
	"Setup:\n"
	"  --agents N            number of agents (default 1; 1 = plain local momentum SGD,\n"
	"                        and --topology/--weights/--algorithm/--partition are ignored)\n"
	"  --topology SPEC       ring (default), full, bipartite, star, torus:RxC, regular:D,\n"
	"                        er:P, file:PATH (lines 'a b', or 'a -> b' for a directed\n"
	"                        graph: push-sum, --weights ignored)\n"
	"  --schedule KIND       static (default: every configured edge every round), matching\n"
	"                        (a random maximal matching of the graph each round), exp-pairs\n"
	"                        (N = 2^k on a graph holding the hypercube: j pairs with\n"
	"                        j XOR 2^(r mod k)); Metropolis weights of the round's graph\n"
	"  --weights KIND        metropolis (default) or uniform\n"
	"  --algorithm NAME      dmsgd (default), cdmsgd, cdsgd, dsgd, centralized, sgp\n"
	"                        (sgp: stochastic gradient push; on a directed file: topology\n"
	"                        dmsgd and sgp run in push-sum form)\n"
	"  --partition SCHEME    iid (default), label-shards:K, dirichlet:ALPHA\n"
	"  --model SPEC          a layer stack (input:8,dense:64,gelu,dense:3[,loss:mse]), @FILE,\n"
	"                        or mlp:784-256-128-10 (default), logreg:IN-OUT, mlp:...[:tanh],\n"
	"                        cnn:lenet5, cnn:cifar (macc.conf(5), MODELS)\n"
	"  --data SPEC           fashion-mnist (default), idx:DIR, mnist:DIR, cifar10:DIR,\n"
	"                        csv:TRAIN[;TEST][,label=COL|,target=COL[:COL]][,header=yes|no];\n"
	"                        any may end in ,val=F[:SEED] (a validation split)\n"
	"  --seed S              run seed (default 1): initial parameters, partition, batches,\n"
	"                        drops and random graphs all derive from it\n"
	"  --standardize MODE    auto (default: yes for csv: data, no for images), yes, no:\n"
	"                        standardise every feature with the mean and deviation of the\n"
	"                        whole training split, agreed by the agents before round 0\n"
	"                        from sums of their shards (no rows exchanged); the transform is\n"
	"                        part of the model\n"
	"  --standardize-rounds S  average-consensus rounds of that agreement (default 50),\n"
	"                        followed by as many exact rounds as the graph's diameter\n"
	"\n"
	"Length:\n"
	"  --epochs E            epochs to train (default 1)\n"
	"  --epoch-rounds K      rounds per epoch (default: floor(smallest shard / batch), the\n"
	"                        smallest shard's number of full batches, so no agent sees a\n"
	"                        sample twice in an epoch; for one agent, floor(training set /\n"
	"                        batch)); each agent's batcher reshuffles at the end of its own\n"
	"                        shard, independently of these epochs\n"
	"  --rounds R            stop after R rounds in total instead of after --epochs epochs\n"
	"                        (the last, partial, epoch gets its own report)\n"
	"\n"
	"Optimisation:\n"
	"  --batch B             mini-batch size per agent (default 64)\n"
	"  --lr A                step size alpha (default 0.05)\n"
	"  --lr-schedule S       const (default), step:EVERY:GAMMA, cosine\n"
	"  --momentum B          momentum beta (default 0.9)\n"
	"  --nesterov            Nesterov look-ahead step (local SGD, dmsgd, cdmsgd)\n"
	"  --omega W             dmsgd: share of momentum taken from neighbours (default 1)\n"
	"  --weight-decay WD     L2 weight decay (default 0)\n"
	"  --drop-prob P         drop each directed message independently with probability P\n"
	"                        (seeded); the receiver folds the weight into its own\n"
	"  --local-steps H       H-1 local momentum steps, then one step of the algorithm, per\n"
	"                        round (default 1); the default epoch stays one pass over the\n"
	"                        data\n"
	"  --compress C          none (default), bf16, int8, topk:F: send compressed differences\n"
	"                        with error feedback (CHOCO-gossip; dmsgd compresses x and v)\n"
	"  --gossip-step G       CHOCO gossip step in (0, 1] (default per compressor: 1; topk:\n"
	"                        0.2)\n"
	"\n"
	"Robust mixing and attacks (static graph, uncompressed, not push-sum):\n"
	"  --aggregation RULE    mean (default: the algorithm as written), clip:TAU (each\n"
	"                        neighbour's difference to the agent's own state clipped to\n"
	"                        norm TAU), clip:auto (TAU = median of recent accepted\n"
	"                        distances), trimmed:B (coordinate-wise trimmed mean, needs\n"
	"                        degree >= 2B+1)\n"
	"  --screen-factor F     exclude a neighbour whose distance to the agent's own state is\n"
	"                        above F times the median of recent ones (non-finite states are\n"
	"                        always excluded when robust mixing is on); 0 = off. Default: 0\n"
	"                        with mean (today's path, bit for bit), 10 with the other rules\n"
	"  --byzantine K:ATTACK  agents 0..K-1 send poisoned states: signflip, scale:S,\n"
	"                        noise:SIGMA, nan, stale (x^0, v^0 = 0); they train and mix\n"
	"                        honestly themselves\n"
	"\n"
	"Execution and output:\n"
	"  --threads T           worker threads (default 1): agents are spread over T threads with\n"
	"                        OpenBLAS at 1 thread; for one agent, OpenBLAS threads. Results are\n"
	"                        bit-identical whatever T is for several agents\n"
	"  --csv FILE            write one CSV row per epoch: epoch,round,algorithm,topology,\n"
	"                        train_loss,test_acc_avg,test_acc_mean,test_acc_min,test_acc_max,\n"
	"                        consensus_dist,wall_s,bytes_per_agent\n"
	"  --eval-every-agent    evaluate every agent's model each epoch (default: only after the\n"
	"                        last epoch; earlier rows leave the per-agent columns empty)\n"
	"  --eval-samples N      evaluate on the first N test samples only (default: all)\n"
	"  --quiet               no per-epoch progress lines\n"
	"  --print-digest        print a 64-bit digest of the final parameters (digest= over all\n"
	"                        agents' x as one block, and one agent=J digest= line per agent)\n"
	"  --export FILE         write the final average model (the one test_acc_avg is measured\n"
	"                        on; the model itself for one agent) as ONNX, with its\n"
	"                        standardiser and the macc metadata (macc-ctl predict reads it)\n"
	"  --export-agent J      with --export: agent J's model instead of the average\n"
	"  --dump-params FILE    write the final parameters as raw float32, little-endian, no\n"
	"                        header: nparams floats per agent, agent after agent (one block\n"
	"                        for one agent or centralized)\n"
	"  --blas-kernel K       OpenBLAS kernel: auto (default: OpenBLAS's pick, or the CPU's\n"
	"                        best when OpenBLAS fell back below it) or a name such as\n"
	"                        Haswell, Zen, SkylakeX (also MACC_BLAS_KERNEL)\n"
	"  -h, --help            this help\n"
	"  -V, --version         print the version and exit\n"
	"\n"
	"The last line of output is key=value pairs: test_acc, train_loss, samples_per_s (one agent)\n"
	"or test_acc_avg, test_acc_mean, test_acc_min, test_acc_max, consensus_dist, spectral_gap\n"
	"(several agents; with --byzantine also test_acc_honest, test_acc_honest_min; with\n"
	"robust mixing or --byzantine the excluded_* counts), bytes_per_agent (STATE bytes each\n"
	"agent sent, as macc-agentd would, framing included), and when standardising\n"
	"standardize=consensus|exact with the transform's distance to the exact one\n"
	"(standardize_mean_err, standardize_scale_err). For a regression model (loss:mse) every\n"
	"test_acc key is test_rmse instead. Exit status: 0 success, 1 runtime error, 2 usage\n"
	"error.\n";

enum {
	OPT_AGENTS = 256,
	OPT_TOPOLOGY,
	OPT_WEIGHTS,
	OPT_ALGORITHM,
	OPT_PARTITION,
	OPT_MODEL,
	OPT_DATA,
	OPT_EPOCHS,
	OPT_EPOCH_ROUNDS,
	OPT_ROUNDS,
	OPT_BATCH,
	OPT_LR,
	OPT_LR_SCHEDULE,
	OPT_MOMENTUM,
	OPT_NESTEROV,
	OPT_OMEGA,
	OPT_WEIGHT_DECAY,
	OPT_DROP_PROB,
	OPT_SEED,
	OPT_THREADS,
	OPT_CSV,
	OPT_EVAL_EVERY_AGENT,
	OPT_EVAL_SAMPLES,
	OPT_QUIET,
	OPT_PRINT_DIGEST,
	OPT_DUMP_PARAMS,
	OPT_SCHEDULE,
	OPT_LOCAL_STEPS,
	OPT_COMPRESS,
	OPT_GOSSIP_STEP,
	OPT_AGGREGATION,
	OPT_SCREEN_FACTOR,
	OPT_BYZANTINE,
	OPT_BLAS_KERNEL,
	OPT_STANDARDIZE,
	OPT_STANDARDIZE_ROUNDS,
	OPT_EXPORT,
	OPT_EXPORT_AGENT,
};

static const struct option long_opts[] = {
	{"agents", required_argument, NULL, OPT_AGENTS},
	{"topology", required_argument, NULL, OPT_TOPOLOGY},
	{"weights", required_argument, NULL, OPT_WEIGHTS},
	{"algorithm", required_argument, NULL, OPT_ALGORITHM},
	{"partition", required_argument, NULL, OPT_PARTITION},
	{"model", required_argument, NULL, OPT_MODEL},
	{"data", required_argument, NULL, OPT_DATA},
	{"epochs", required_argument, NULL, OPT_EPOCHS},
	{"epoch-rounds", required_argument, NULL, OPT_EPOCH_ROUNDS},
	{"rounds", required_argument, NULL, OPT_ROUNDS},
	{"batch", required_argument, NULL, OPT_BATCH},
	{"lr", required_argument, NULL, OPT_LR},
	{"lr-schedule", required_argument, NULL, OPT_LR_SCHEDULE},
	{"momentum", required_argument, NULL, OPT_MOMENTUM},
	{"nesterov", no_argument, NULL, OPT_NESTEROV},
	{"omega", required_argument, NULL, OPT_OMEGA},
	{"weight-decay", required_argument, NULL, OPT_WEIGHT_DECAY},
	{"drop-prob", required_argument, NULL, OPT_DROP_PROB},
	{"seed", required_argument, NULL, OPT_SEED},
	{"threads", required_argument, NULL, OPT_THREADS},
	{"csv", required_argument, NULL, OPT_CSV},
	{"eval-every-agent", no_argument, NULL, OPT_EVAL_EVERY_AGENT},
	{"eval-samples", required_argument, NULL, OPT_EVAL_SAMPLES},
	{"quiet", no_argument, NULL, OPT_QUIET},
	{"print-digest", no_argument, NULL, OPT_PRINT_DIGEST},
	{"dump-params", required_argument, NULL, OPT_DUMP_PARAMS},
	{"schedule", required_argument, NULL, OPT_SCHEDULE},
	{"local-steps", required_argument, NULL, OPT_LOCAL_STEPS},
	{"compress", required_argument, NULL, OPT_COMPRESS},
	{"gossip-step", required_argument, NULL, OPT_GOSSIP_STEP},
	{"aggregation", required_argument, NULL, OPT_AGGREGATION},
	{"screen-factor", required_argument, NULL, OPT_SCREEN_FACTOR},
	{"byzantine", required_argument, NULL, OPT_BYZANTINE},
	{"blas-kernel", required_argument, NULL, OPT_BLAS_KERNEL},
	{"standardize", required_argument, NULL, OPT_STANDARDIZE},
	{"standardize-rounds", required_argument, NULL, OPT_STANDARDIZE_ROUNDS},
	{"export", required_argument, NULL, OPT_EXPORT},
	{"export-agent", required_argument, NULL, OPT_EXPORT_AGENT},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

struct cli {
	struct sim_opts o;
	const char *csv_path;
	const char *dump_path;
	const char *blas_kernel;
	const char *export_path;
	int64_t export_agent; /* -1: the average model */
	bool eval_every_agent;
	bool quiet;
	bool print_digest;
};

/* A usage error is one line on stderr, as for macc-ctl and macc-agentd. */
static int usage_error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "; see '" PROG " --help'.\n");
	return 2;
}

/* Whole-string unsigned integer in [lo, hi]. */
static int parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;
	char range[96];

	snprintf(range, sizeof(range), "an integer in [%" PRIu64 ", %" PRIu64 "]", lo, hi);
	errno = 0;
	if (s[0] == '-' || s[0] == '+' || s[0] == '\0') {
		goto bad;
	}
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
		goto bad;
	}
	*ret = v;
	return 0;
bad:
	fprintf(stderr, PROG ": --%s: expected %s, got '%s'; see '" PROG " --help'.\n", flag, range,
		s);
	return -1;
}

/* Whole-string finite number in [lo, hi] (hi_open: strictly below hi). */
static int parse_double(const char *flag, const char *s, double lo, double hi, bool hi_open,
			double *ret)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi ||
	    (hi_open && v >= hi)) {
		fprintf(stderr, PROG ": --%s: expected a number in [%g, %g%s, got '%s'; see '" PROG
			" --help'.\n", flag, lo, hi, hi_open ? ")" : "]", s);
		return -1;
	}
	*ret = v;
	return 0;
}

/* --standardize: auto (-1), yes (1), no (0). */
static int parse_mode(const char *s, int *ret)
{
	if (strcmp(s, "auto") == 0) {
		*ret = -1;
	} else if (strcmp(s, "yes") == 0) {
		*ret = 1;
	} else if (strcmp(s, "no") == 0) {
		*ret = 0;
	} else {
		usage_error("--standardize: expected auto, yes or no, got '%s'%s", s, "");
		return -1;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct cli *c)
{
	struct sim_opts *o = &c->o;
	uint64_t u;
	double d;
	int opt;

	*o = (struct sim_opts){
		.agents = 1,
		.topology = "ring",
		.weights = "metropolis",
		.algorithm = "dmsgd",
		.partition = "iid",
		.model = "mlp:784-256-128-10",
		.data = "fashion-mnist",
		.lr_schedule = "const",
		.epochs = 1,
		.batch = 64,
		.lr = 0.05f,
		.momentum = 0.9f,
		.omega = 1.0f,
		.seed = 1,
		.threads = 1,
		.schedule = "static",
		.local_steps = 1,
		.compress = "none",
		.screen_factor = -1.0,
		.standardize = -1,
		.standardize_rounds = 50,
	};
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":hV", long_opts, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *lo = long_opts; lo->name != NULL; lo++) {
			if (lo->val == opt) {
				name = lo->name;
			}
		}
		switch (opt) {
		case 'h':
			fputs(usage_text, stdout);
			return 1;
		case 'V':
			printf(PROG " %s\n", MACC_VERSION);
			return 1;
		case OPT_AGENTS:
			if (parse_u64(name, optarg, 1, 4096, &u) < 0) {
				return -1;
			}
			o->agents = (uint32_t)u;
			break;
		case OPT_TOPOLOGY:
			o->topology = optarg;
			break;
		case OPT_WEIGHTS:
			o->weights = optarg;
			break;
		case OPT_ALGORITHM:
			o->algorithm = optarg;
			break;
		case OPT_PARTITION:
			o->partition = optarg;
			break;
		case OPT_MODEL:
			o->model = optarg;
			break;
		case OPT_DATA:
			o->data = optarg;
			break;
		case OPT_LR_SCHEDULE:
			o->lr_schedule = optarg;
			break;
		case OPT_EPOCHS:
			if (parse_u64(name, optarg, 1, 1000000, &u) < 0) {
				return -1;
			}
			o->epochs = (uint32_t)u;
			break;
		case OPT_EPOCH_ROUNDS:
			if (parse_u64(name, optarg, 1, UINT32_MAX, &u) < 0) {
				return -1;
			}
			o->epoch_rounds = u;
			break;
		case OPT_ROUNDS:
			if (parse_u64(name, optarg, 1, UINT32_MAX, &u) < 0) {
				return -1;
			}
			o->rounds = u;
			break;
		case OPT_BATCH:
			if (parse_u64(name, optarg, 1, 65536, &u) < 0) {
				return -1;
			}
			o->batch = (uint32_t)u;
			break;
		case OPT_LR:
			if (parse_double(name, optarg, 0.0, 1e3, false, &d) < 0) {
				return -1;
			}
			o->lr = (float)d;
			break;
		case OPT_MOMENTUM:
			if (parse_double(name, optarg, 0.0, 1.0, true, &d) < 0) {
				return -1;
			}
			o->momentum = (float)d;
			break;
		case OPT_NESTEROV:
			o->nesterov = true;
			break;
		case OPT_OMEGA:
			if (parse_double(name, optarg, 0.0, 1.0, false, &d) < 0) {
				return -1;
			}
			o->omega = (float)d;
			break;
		case OPT_WEIGHT_DECAY:
			if (parse_double(name, optarg, 0.0, 1.0, false, &d) < 0) {
				return -1;
			}
			o->weight_decay = (float)d;
			break;
		case OPT_DROP_PROB:
			if (parse_double(name, optarg, 0.0, 1.0, true, &d) < 0) {
				return -1;
			}
			o->drop_prob = d;
			break;
		case OPT_SEED:
			if (parse_u64(name, optarg, 0, UINT64_MAX, &u) < 0) {
				return -1;
			}
			o->seed = u;
			break;
		case OPT_THREADS:
			if (parse_u64(name, optarg, 1, 256, &u) < 0) {
				return -1;
			}
			o->threads = (uint32_t)u;
			break;
		case OPT_CSV:
			c->csv_path = optarg;
			break;
		case OPT_EVAL_EVERY_AGENT:
			c->eval_every_agent = true;
			break;
		case OPT_EVAL_SAMPLES:
			if (parse_u64(name, optarg, 1, SIZE_MAX, &u) < 0) {
				return -1;
			}
			o->eval_samples = (size_t)u;
			break;
		case OPT_QUIET:
			c->quiet = true;
			break;
		case OPT_PRINT_DIGEST:
			c->print_digest = true;
			break;
		case OPT_DUMP_PARAMS:
			c->dump_path = optarg;
			break;
		case OPT_SCHEDULE:
			o->schedule = optarg;
			break;
		case OPT_LOCAL_STEPS:
			if (parse_u64(name, optarg, 1, 1000000, &u) < 0) {
				return -1;
			}
			o->local_steps = (uint32_t)u;
			break;
		case OPT_COMPRESS:
			o->compress = optarg;
			break;
		case OPT_GOSSIP_STEP:
			if (parse_double(name, optarg, 0.0, 1.0, false, &d) < 0) {
				return -1;
			}
			if (d == 0.0) {
				usage_error("--gossip-step: must be above 0, got '%s'%s", optarg,
					    "");
				return -1;
			}
			o->gossip_step = (float)d;
			break;
		case OPT_AGGREGATION:
			o->aggregation = optarg;
			break;
		case OPT_SCREEN_FACTOR:
			if (parse_double(name, optarg, 0.0, 1e6, false, &d) < 0) {
				return -1;
			}
			o->screen_factor = d;
			break;
		case OPT_BYZANTINE:
			o->byzantine = optarg;
			break;
		case OPT_BLAS_KERNEL:
			c->blas_kernel = optarg;
			break;
		case OPT_STANDARDIZE:
			if (parse_mode(optarg, &o->standardize) < 0) {
				return -1;
			}
			break;
		case OPT_STANDARDIZE_ROUNDS:
			if (parse_u64(name, optarg, 0, 10000, &u) < 0) {
				return -1;
			}
			o->standardize_rounds = (uint32_t)u;
			break;
		case OPT_EXPORT:
			c->export_path = optarg;
			break;
		case OPT_EXPORT_AGENT:
			if (parse_u64(name, optarg, 0, 4095, &u) < 0) {
				return -1;
			}
			c->export_agent = (int64_t)u;
			break;
		case ':':
			usage_error("option '%s' needs a value%s", argv[optind - 1], "");
			return -1;
		default:
			usage_error("unknown option '%s'%s", argv[optind - 1], "");
			return -1;
		}
	}
	if (optind < argc) {
		usage_error("unexpected argument '%s'%s", argv[optind], "");
		return -1;
	}
	if (c->export_agent >= 0 && c->export_path == NULL) {
		usage_error("--export-agent needs --export FILE%s%s", "", "");
		return -1;
	}
	if (c->export_agent >= (int64_t)o->agents) {
		char j[24], n[24];

		snprintf(j, sizeof(j), "%" PRId64, c->export_agent);
		snprintf(n, sizeof(n), "%u", o->agents - 1);
		usage_error("--export-agent %s: the agents are numbered 0 to %s", j, n);
		return -1;
	}
	return 0;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static void csv_cell_acc(FILE *f, const struct sim_eval *e, double v)
{
	if (e->per_agent) {
		fprintf(f, ",%.6f", v);
	} else {
		fputc(',', f);
	}
}

/* Robust-mixing keys of the last line, only with robust mixing or --byzantine (so the line
 * of every other run is unchanged). */
static void print_robust(const struct sim *s, const struct cli *c, const struct sim_eval *ev)
{
	uint64_t cnt[MACC_ROBUST_NREASONS], quar, clip;
	const char *attack;
	uint32_t k = sim_byzantine(s, &attack);
	double factor;
	bool robust = sim_robust(s, &factor);

	if (!robust && c->o.byzantine == NULL) {
		return;
	}
	sim_robust_counts(s, cnt, &quar, &clip);
	printf(" aggregation=%s screen_factor=%g byzantine=%u:%s",
	       c->o.aggregation != NULL ? c->o.aggregation : "mean", factor, k, attack);
	if (robust) {
		printf(" excluded_nonfinite=%" PRIu64 " excluded_distance=%" PRIu64
		       " quarantined=%" PRIu64 " quarantines=%" PRIu64 " clipped=%" PRIu64,
		       cnt[MACC_ROBUST_NONFINITE], cnt[MACC_ROBUST_DISTANCE],
		       cnt[MACC_ROBUST_QUARANTINED], quar, clip);
	}
	if (ev->honest) {
		const char *mk = sim_regression(s) ? "rmse" : "acc";

		printf(" test_%s_honest=%.4f test_%s_honest_min=%.4f", mk, ev->acc_honest, mk,
		       ev->acc_honest_min);
	}
}

/* Where the transform came from and how far it is from the exact one (stderr). */
static void print_std_source(const struct sim *s)
{
	struct sim_std st;

	if (!sim_standardize(s, &st)) {
		return;
	}
	fprintf(stderr, PROG ": standardisation %s", st.source);
	if (!st.exact) {
		fprintf(stderr, "; distance to the exact transform: means %.3g deviations, scales "
			"%.3g", st.err_mean, st.err_scale);
		if (!isnan(st.eps)) {
			fprintf(stderr, " (bound factor eps = N lambda^S = %.3g)", st.eps);
		}
		if (st.dropped > 0 || st.refused > 0) {
			fprintf(stderr, "; %" PRIu64 " vectors dropped, %" PRIu64 " refused",
				st.dropped, st.refused);
		}
		if (!st.agreed) {
			fprintf(stderr, "; WARNING: the agents do not all hold the same transform "
				"(raise --standardize-rounds)");
		}
	}
	fputc('\n', stderr);
}

/* The standardisation keys of the last line, only when standardising (so the line of every
 * other run is unchanged). */
static void print_std_keys(const struct sim *s)
{
	struct sim_std st;

	if (!sim_standardize(s, &st)) {
		return;
	}
	printf(" standardize=%s", st.exact ? "exact" : "consensus");
	if (!st.exact) {
		printf(" standardize_rounds=%u standardize_exact_rounds=%u standardize_agreed=%d",
		       st.avg_rounds, st.exact_rounds, st.agreed ? 1 : 0);
	}
	printf(" standardize_mean_err=%.3g standardize_scale_err=%.3g", st.err_mean,
	       st.err_scale);
	printf(" standardize_digest=%016" PRIx64, st.digest);
}

/* Choose the OpenBLAS kernel; may re-execute this program (nn.h). 0, or an exit status. */
static int blas_setup(const struct cli *c, char **argv, struct macc_blas_report *ret)
{
	struct macc_errmsg err = {{0}};
	int rc = macc_nn_blas_select(c->blas_kernel, NULL, argv, ret, &err);

	if (rc < 0) {
		fprintf(stderr, PROG ": BLAS kernel: %s\n", err.text);
		return rc == MACC_ECONFIG ? 2 : 1;
	}
	return 0;
}

/* --export: the average model (or agent J's) as ONNX, named after what it is. */
static int export_model(const struct sim *s, const struct cli *c, struct macc_errmsg *err)
{
	const struct macc_model *m = sim_model(s);
	size_t np = sim_nparams(s);
	float *x = malloc(np * sizeof(float));
	char who[96];
	struct macc_onnx_info info = {.agent = who, .round = sim_round(s)};
	int rc;

	if (x == NULL) {
		return macc_errf(err, -ENOMEM, "--export: out of memory");
	}
	if (sim_nmodels(s) == 1) {
		snprintf(who, sizeof(who), "macc-sim (%s, %u agent%s)", sim_algo_name(s),
			 c->o.agents, c->o.agents == 1 ? "" : "s");
	} else if (c->export_agent < 0) {
		snprintf(who, sizeof(who), "macc-sim average of %u agents (%s)", c->o.agents,
			 sim_algo_name(s));
	} else {
		snprintf(who, sizeof(who), "macc-sim agent %" PRId64 " of %u (%s)", c->export_agent,
			 c->o.agents, sim_algo_name(s));
	}
	sim_params(s, sim_nmodels(s) == 1 ? 0 : c->export_agent, x);
	rc = macc_onnx_save(c->export_path, m, x, &info, err);
	if (rc == 0) {
		fprintf(stderr, PROG ": exported %s, round %" PRIu64 ", digest %016" PRIx64
			", to %s\n", who, info.round, macc_params_digest(x, np), c->export_path);
	}
	free(x);
	return rc;
}

/* One run of the simulation: what main() reports as it goes and at the end */
struct run {
	const struct cli *c;
	struct sim *s;
	const struct macc_blas_report *blas;
	FILE *csv;
	const char *topo, *mk; /* topology name; "acc" or "rmse" */
	uint64_t total, er;    /* rounds in all, rounds per epoch */
	uint64_t t_start, train_ns, done;
	double loss, gap, wall;
	bool have_gap;
	struct sim_eval ev;
};

/* The opening lines on stderr (not under --quiet) */
static void print_banner(const struct run *u)
{
	const struct cli *c = u->c;
	struct sim *s = u->s;
	char line[512];

	fprintf(stderr, PROG ": %u agent(s), %s, %s, model %s (%zu parameters), %" PRIu64
		" rounds per epoch, %" PRIu64 " rounds", c->o.agents, sim_algo_name(s), u->topo,
		c->o.model, sim_nparams(s), u->er, u->total);
	if (u->have_gap) {
		fprintf(stderr, ", spectral gap %.6f", u->gap);
	}
	fprintf(stderr, "\n" PROG ": test figures (%s) on %s\n",
		sim_regression(s) ? "RMSE" : "accuracy", sim_test_origin(s));
	macc_nn_blas_describe(u->blas, line, sizeof(line));
	fprintf(stderr, "\n" PROG ": BLAS kernel %s\n", line);
	print_std_source(s);
}

/* --csv: creates the file and writes its header; false (said on stderr) when it cannot */
static bool open_csv(struct run *u)
{
	const char *mk = u->mk;

	u->csv = fopen(u->c->csv_path, "w");
	if (u->csv == NULL) {
		fprintf(stderr, PROG ": %s: cannot create: %s\n", u->c->csv_path, strerror(errno));
		return false;
	}
	fprintf(u->csv, "epoch,round,algorithm,topology,train_loss,test_%s_avg,test_%s_mean,"
		"test_%s_min,test_%s_max,consensus_dist,wall_s,bytes_per_agent\n", mk, mk, mk, mk);
	fflush(u->csv);
	return true;
}

/* The progress line of one epoch of r rounds that took dt ns to train (stdout) */
static void print_epoch(const struct run *u, uint64_t epoch, uint64_t r, uint64_t dt)
{
	const struct sim_eval *ev = &u->ev;
	const char *mk = u->mk;

	if (sim_single(u->s)) {
		printf("epoch=%" PRIu64 " round=%" PRIu64 " loss=%.4f test_%s=%.4f "
		       "samples_per_s=%.0f elapsed_s=%.2f\n", epoch, u->done, u->loss, mk,
		       ev->acc_avg, (double)(r * sim_samples_per_round(u->s)) / secs(dt), u->wall);
		return;
	}
	printf("epoch=%" PRIu64 " round=%" PRIu64 " train_loss=%.4f test_%s_avg=%.4f", epoch,
	       u->done, u->loss, mk, ev->acc_avg);
	if (ev->per_agent) {
		printf(" test_%s_mean=%.4f test_%s_min=%.4f test_%s_max=%.4f", mk, ev->acc_mean, mk,
		       ev->acc_min, mk, ev->acc_max);
	}
	printf(" consensus_dist=%.6g wall_s=%.2f\n", ev->consensus, u->wall);
}

/* The CSV row of one epoch; false (said on stderr) when it cannot be written */
static bool write_csv_row(const struct run *u, uint64_t epoch)
{
	const struct sim_eval *ev = &u->ev;
	double bpa = 0.0;
	uint64_t rmax = 0, crounds = 0;

	fprintf(u->csv, "%" PRIu64 ",%" PRIu64 ",%s,%s,%.6f,%.6f", epoch, u->done,
		sim_algo_name(u->s), u->topo, u->loss, ev->acc_avg);
	csv_cell_acc(u->csv, ev, ev->acc_mean);
	csv_cell_acc(u->csv, ev, ev->acc_min);
	csv_cell_acc(u->csv, ev, ev->acc_max);
	sim_traffic(u->s, &bpa, &rmax, &crounds);
	fprintf(u->csv, ",%.6g,%.3f,%.0f\n", ev->consensus, u->wall, bpa);
	if (fflush(u->csv) != 0) {
		fprintf(stderr, PROG ": %s: write failed: %s\n", u->c->csv_path, strerror(errno));
		return false;
	}
	return true;
}

/* Trains all the rounds, epoch by epoch, reporting each; false (said on stderr) on failure */
static bool train_all(struct run *u)
{
	struct macc_errmsg err = {{0}};

	u->t_start = macc_now_ns();
	for (uint64_t epoch = 1; u->done < u->total; epoch++) {
		uint64_t r = u->total - u->done < u->er ? u->total - u->done : u->er;
		uint64_t t0 = macc_now_ns(), dt;
		bool last;

		u->loss = sim_train(u->s, r);
		if (sim_failed(u->s, &err)) {
			fprintf(stderr, PROG ": %s\n", err.text);
			return false;
		}
		dt = macc_now_ns() - t0;
		u->train_ns += dt;
		u->done += r;
		last = u->done >= u->total;
		sim_evaluate(u->s, u->c->eval_every_agent || last, &u->ev);
		u->wall = secs(macc_now_ns() - u->t_start);
		if (!u->c->quiet) {
			print_epoch(u, epoch, r, dt);
		}
		fflush(stdout);
		if (u->csv != NULL && !write_csv_row(u, epoch)) {
			return false;
		}
	}
	return true;
}

/* --dump, --export, --digest's per-agent lines; false (said on stderr) on failure */
static bool write_outputs(const struct run *u)
{
	const struct cli *c = u->c;
	struct macc_errmsg err = {{0}};

	if (c->dump_path != NULL && sim_dump_params(u->s, c->dump_path, &err) < 0) {
		fprintf(stderr, PROG ": %s\n", err.text);
		return false;
	}
	if (c->export_path != NULL && export_model(u->s, c, &err) < 0) {
		fprintf(stderr, PROG ": %s\n", err.text);
		return false;
	}
	if (c->print_digest) {
		for (uint32_t j = 0; j < sim_nmodels(u->s); j++) {
			printf("agent=%u digest=%016" PRIx64 "\n", j, sim_agent_digest(u->s, j));
		}
	}
	return true;
}

/* The fleet keys of the last line (N > 1) */
static void print_fleet_keys(const struct run *u, double sps)
{
	const struct cli *c = u->c;
	struct sim *s = u->s;
	const struct sim_eval *ev = &u->ev;
	const char *mk = u->mk;
	double bpa = 0.0;
	uint64_t rmax = 0, crounds = 0;

	printf("algorithm=%s topology=%s weights=%s partition=%s agents=%u model=%s "
	       "threads=%u batch=%u epochs=%.6g rounds=%" PRIu64 " test_%s_avg=%.4f "
	       "test_%s_mean=%.4f test_%s_min=%.4f test_%s_max=%.4f "
	       "consensus_dist=%.6g", sim_algo_name(s), u->topo,
	       sim_pushsum(s) ? "push-sum" : c->o.weights,
	       c->o.partition, c->o.agents, c->o.model, c->o.threads, c->o.batch,
	       (double)u->done / (double)u->er, u->done, mk, ev->acc_avg, mk, ev->acc_mean, mk,
	       ev->acc_min, mk, ev->acc_max, ev->consensus);
	if (u->have_gap) {
		printf(" spectral_gap=%.6f", u->gap);
	}
	if (c->o.drop_prob > 0.0) {
		uint64_t dropped, messages;

		sim_drop_counts(s, &dropped, &messages);
		printf(" dropped=%" PRIu64 " messages=%" PRIu64, dropped, messages);
	}
	printf(" train_loss=%.4f samples_per_s=%.0f train_s=%.2f wall_s=%.2f", u->loss,
	       sps, secs(u->train_ns), u->wall);
	sim_traffic(s, &bpa, &rmax, &crounds);
	printf(" schedule=%s local_steps=%u compress=%s", sim_schedule_name(s),
	       c->o.local_steps, c->o.compress);
	if (sim_gossip_step(s) > 0.0f) {
		printf(" gossip_step=%g", (double)sim_gossip_step(s));
	}
	if (sim_pushsum(s)) {
		printf(" pushsum=1");
	}
	printf(" bytes_per_agent=%.0f bytes_round_max_sum=%" PRIu64
	       " comm_rounds=%" PRIu64, bpa, rmax, crounds);
	print_robust(s, c, ev);
}

/* The last line, key=value (stdout) */
static void print_summary(const struct run *u)
{
	const struct cli *c = u->c;
	struct sim *s = u->s;
	double sps = u->train_ns ? (double)(u->done * sim_samples_per_round(s)) /
					   secs(u->train_ns)
				 : 0.0;

	if (sim_single(s)) {
		printf("model=%s agents=1 threads=%u batch=%u epochs=%.6g rounds=%" PRIu64
		       " test_%s=%.4f train_loss=%.4f samples_per_s=%.0f train_s=%.2f "
		       "wall_s=%.2f", c->o.model, c->o.threads, c->o.batch,
		       (double)u->done / (double)u->er, u->done, u->mk, u->ev.acc_avg, u->loss, sps,
		       secs(u->train_ns), u->wall);
		printf(" bytes_per_agent=0");
	} else {
		print_fleet_keys(u, sps);
	}
	print_std_keys(s);
	if (c->print_digest) {
		printf(" digest=%016" PRIx64, sim_digest(s));
	}
	printf(" blas=%s\n", u->blas->kernel);
}

/* Creates the simulation and the figures of the run; 0, or the exit status (said on stderr) */
static int start(struct run *u)
{
	struct macc_errmsg err = {{0}};
	int rc = sim_create(&u->c->o, &u->s, &err);

	if (rc < 0) {
		bool usage = rc == MACC_ESPEC || rc == MACC_EGRAPH || rc == MACC_ECONFIG ||
			     rc == MACC_EMODEL;

		fprintf(stderr, PROG ": %s\n", err.text[0] ? err.text : macc_strerror(rc));
		return usage ? 2 : 1;
	}
	u->topo = sim_single(u->s) ? "single" : u->c->o.topology;
	u->mk = sim_regression(u->s) ? "rmse" : "acc";
	u->have_gap = sim_spectral_gap(u->s, &u->gap);
	u->total = sim_total_rounds(u->s);
	u->er = sim_epoch_rounds(u->s);
	return 0;
}

int main(int argc, char **argv)
{
	struct cli c = {.export_agent = -1};
	struct macc_blas_report blas;
	struct run u = {.c = &c, .blas = &blas};
	int rc, status = 1;

	rc = parse_args(argc, argv, &c);
	if (rc != 0) {
		return rc > 0 ? 0 : 2;
	}
	rc = blas_setup(&c, argv, &blas);
	if (rc != 0) {
		return rc;
	}
	rc = start(&u);
	if (rc != 0) {
		return rc;
	}
	if (!c.quiet) {
		print_banner(&u);
	}
	if (c.csv_path != NULL && !open_csv(&u)) {
		goto out;
	}
	if (!train_all(&u) || !write_outputs(&u)) {
		goto out;
	}
	print_summary(&u);
	if (fflush(stdout) != 0) {
		goto out;
	}
	status = 0;
out:
	if (u.csv != NULL && fclose(u.csv) != 0 && status == 0) {
		fprintf(stderr, PROG ": %s: write failed: %s\n", c.csv_path, strerror(errno));
		status = 1;
	}
	sim_destroy(u.s);
	return status;
}
