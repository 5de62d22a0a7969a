/*
 * main.c - macc-agentd's command line: parse options, start the agent, exit with its status.
 *
 *   macc-agentd [-c FILE] [--check-config] [-s SOCKET] [--foreground] [--exit-when-done]
 *               [--log-level L] [--blas-kernel K] [--version] [--help]
 *
 * Before anything else the OpenBLAS kernel is chosen (macc_nn_blas_select: --blas-kernel, else
 * MACC_BLAS_KERNEL, else the config's [train] blas_kernel, else automatic); that may re-execute
 * the program once or twice, with the same arguments, before the agent starts.
 *
 * Exit status: 0 success (including a graceful SIGTERM), 1 a runtime or configuration error,
 * 2 a usage error. The daemon always runs in the foreground (systemd supervises it; --foreground
 * is accepted for compatibility with init scripts).
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "macc/nn.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: macc-agentd [options]\n"
		"\n"
		"The macc agent: trains on local data and reaches consensus with the neighbours\n"
		"named in its configuration.\n"
		"\n"
		"  -c, --config FILE     configuration file (default " MACC_CONFIG_DEFAULT_PATH ")\n"
		"      --check-config    validate the configuration (and key file) and exit 0/1\n"
		"  -s, --socket PATH     control socket (overrides [agent] control_socket)\n"
		"  -f, --foreground      run in the foreground (always the case; for init scripts)\n"
		"      --exit-when-done  exit 0 once the configured epochs/rounds are done\n"
		"  -l, --log-level L     error, warn, info or debug (overrides the config)\n"
		"      --blas-kernel K   OpenBLAS kernel: auto or a name such as Haswell, Zen,\n"
		"                        SkylakeX (overrides MACC_BLAS_KERNEL and the config)\n"
		"  -V, --version         print the version and the BLAS kernel, and exit\n"
		"  -h, --help            this text\n");
}

enum { OPT_CHECK = 256, OPT_EXIT_DONE, OPT_BLAS_KERNEL };

/* Choose the OpenBLAS kernel (may re-execute the program). The config is read here only for
 * its blas_kernel key; one that does not load is reported by agent_init() later. */
static int blas_setup(const char *config_path, const char *cli, char **argv,
		      struct macc_blas_report *ret)
{
	static struct macc_config c; /* large; main() runs once */
	struct macc_errmsg e;
	const char *conf = NULL;
	int rc;

	if (macc_config_load(config_path, &c, &e) == 0) {
		conf = c.blas_kernel;
	}
	rc = macc_nn_blas_select(cli, conf, argv, ret, &e);
	if (rc < 0) {
		fprintf(stderr, "macc-agentd: BLAS kernel: %s\n", e.text);
	}
	macc_config_finish(&c);
	return rc;
}

static int check_config(const char *path)
{
	struct macc_config c;
	struct macc_identity id;
	struct macc_errmsg e;
	int rc;

	memset(&id, 0, sizeof(id));
	rc = macc_config_load(path, &c, &e);
	if (rc < 0) {
		fprintf(stderr, "macc-agentd: %s\n", e.text);
		return 1;
	}
	rc = macc_identity_load(&id, c.key_file, &e);
	if (rc == 0) {
		rc = macc_config_check_own_key(&c, &id.pub, &e);
	}
	macc_identity_finish(&id);
	if (rc < 0) {
		fprintf(stderr, "macc-agentd: %s\n", e.text);
		macc_config_finish(&c);
		return 1;
	}
	printf("%s: ok (agent %s, %zu peers, model %s)\n", path, c.name, c.npeers, c.model);
	macc_config_finish(&c);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, OPT_CHECK},
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"exit-when-done", no_argument, NULL, OPT_EXIT_DONE},
		{"log-level", required_argument, NULL, 'l'},
		{"blas-kernel", required_argument, NULL, OPT_BLAS_KERNEL},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct agent_opts o;
	static struct macc_agent agent;
	struct macc_errmsg e;
	struct macc_blas_report blas;
	const char *blas_cli = NULL;
	char line[512];
	bool check = false, version = false;
	int opt, rc;

	memset(&o, 0, sizeof(o));
	o.config_path = MACC_CONFIG_DEFAULT_PATH;
	while ((opt = getopt_long(argc, argv, "c:s:fl:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o.config_path = optarg;
			break;
		case OPT_CHECK:
			check = true;
			break;
		case 's':
			o.socket_path = optarg;
			break;
		case 'f':
			break;
		case OPT_EXIT_DONE:
			o.exit_when_done = true;
			break;
		case 'l':
			if (macc_log_level_parse(optarg, &o.log_level) < 0) {
				fprintf(stderr, "macc-agentd: unknown log level '%s' (error, warn, info, "
						"debug)\n", optarg);
				return 2;
			}
			o.have_log_level = true;
			break;
		case OPT_BLAS_KERNEL:
			blas_cli = optarg;
			break;
		case 'V':
			version = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "macc-agentd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (check) {
		return check_config(o.config_path);
	}
	if (blas_setup(o.config_path, blas_cli, argv, &blas) < 0) {
		return blas_cli != NULL ? 2 : 1;
	}
	macc_nn_blas_describe(&blas, line, sizeof(line));
	if (version) {
		printf("macc-agentd %s\nBLAS kernel %s\n", MACC_VERSION, line);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Every round allocates and frees one received frame per neighbour (megabytes each). Keep
	 * such blocks on the heap instead of mmap/munmap per frame, so a round costs no page faults
	 * or page zeroing, and do not give the freed memory back to the kernel between rounds. */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	if (o.have_log_level) {
		macc_log_set_level(o.log_level);
	}
	macc_info(NULL, "BLAS kernel %s", line);
	e.text[0] = '\0';
	rc = agent_init(&agent, &o, &e);
	if (rc < 0) {
		macc_error(NULL, "%s", e.text[0] ? e.text : macc_strerror(rc));
		agent_finish(&agent);
		return 1;
	}
	rc = agent_run(&agent);
	agent_finish(&agent);
	macc_info(NULL, "exit %d", rc);
	return rc;
}
