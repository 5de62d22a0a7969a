/*
 * main.c - macc-agentd's command line: parse options, check or start the agent, exit with its
 * status.
 *
 *   macc-agentd [-c FILE] [-s SOCKET] [--foreground] [--exit-when-done] [--log-level L]
 *               [--blas-kernel K]
 *   macc-agentd --check-config [-c FILE] [-s SOCKET] [--user USER]
 *   macc-agentd --version | --help
 *
 * --check-config runs the same validation as start-up (check.c) and prints every problem, one
 * line each, then one summary line. With --user it runs that validation in a child process that
 * became USER (only root may ask), so that files and directories are judged by the kernel for
 * the user the daemon will run as (systemd's User=macc), not for the operator who typed it.
 *
 * Before the agent starts the OpenBLAS kernel is chosen (macc_nn_blas_select: --blas-kernel,
 * else MACC_BLAS_KERNEL, else the config's [train] blas_kernel, else automatic); that may
 * re-execute the program once or twice, with the same arguments.
 *
 * Exit status: 0 success (including a graceful SIGTERM), 1 a runtime or configuration error,
 * 2 a usage error (one line on stderr, like macc-ctl and macc-sim). The daemon always runs in the
 * foreground (systemd supervises it; --foreground is accepted for init scripts).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macc/nn.h"

#include "agent.h"
#include "check.h"

#ifndef MACC_VERSION
#define MACC_VERSION "0.1.0"
#endif

#define PROG "macc-agentd"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [OPTION]...\n"
		"The macc agent: trains on local data and reaches consensus with the neighbours\n"
		"named in its configuration.\n"
		"\n"
		"  -c, --config FILE     configuration file (default " MACC_CONFIG_DEFAULT_PATH ")\n"
		"      --check-config    check the configuration as start-up would (key, data, model,\n"
		"                        topology, directories), print every problem and exit 0/1\n"
		"  -u, --user USER       with --check-config: check for the user the daemon runs as\n"
		"                        (root only; systemd's unit runs it as macc)\n"
		"  -s, --socket PATH     control socket (overrides [agent] control_socket)\n"
		"  -f, --foreground      run in the foreground (always the case; for init scripts)\n"
		"      --exit-when-done  exit 0 once the configured epochs/rounds are done\n"
		"  -l, --log-level L     error, warn, info or debug (overrides the config)\n"
		"      --blas-kernel K   OpenBLAS kernel: auto or a name such as Haswell, Zen,\n"
		"                        SkylakeX (overrides MACC_BLAS_KERNEL and the config)\n"
		"  -V, --version         print the version and the BLAS kernel, and exit\n"
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 success, 1 runtime or configuration error, 2 usage error.\n");
}

enum { OPT_CHECK = 256, OPT_EXIT_DONE, OPT_BLAS_KERNEL };

struct cmdline {
	struct agent_opts o;
	bool check, version;
	const char *user;
	const char *blas_cli;
};

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s '%s'; see '" PROG " --help'.\n", what, arg);
	return 2;
}

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
		fprintf(stderr, PROG ": BLAS kernel: %s\n", e.text);
	}
	macc_config_finish(&c);
	return rc;
}

static int become(const struct passwd *pw);

/*
 * Checked as root without --user: the daemon itself most likely runs as someone else (systemd's
 * User=macc), and root reads every file. The likeliest such user is the owner of state_dir (the
 * daemon writes there; tmpfiles makes it theirs). If that user cannot open key_file, which is
 * the usual mistake (a key made by root with umask 077), say so, naming the user and --user:
 * a warning, since root may also mean to run the daemon as root.
 */
static void warn_service_user(const struct macc_config *c)
{
	struct stat st;
	struct passwd *pw;
	char name[64];
	pid_t pid;
	int wst;

	if (geteuid() != 0 || stat(c->state_dir, &st) != 0 || st.st_uid == 0 ||
	    (pw = getpwuid(st.st_uid)) == NULL) {
		return;
	}
	snprintf(name, sizeof(name), "%s", pw->pw_name);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		return;
	}
	if (pid == 0) {
		int fd;

		if (become(pw) < 0) {
			_exit(2);
		}
		fd = open(c->key_file, O_RDONLY | O_CLOEXEC);
		_exit(fd >= 0 ? 0 : errno == EACCES ? 3 : 2);
	}
	while (waitpid(pid, &wst, 0) < 0) {
		if (errno != EINTR) {
			return;
		}
	}
	if (WIFEXITED(wst) && WEXITSTATUS(wst) == 3) {
		fprintf(stderr,
			PROG ": warning: key_file %s: user %s, who owns state_dir %s and so most "
			"likely runs the daemon, cannot read it (permission denied); make the key "
			"theirs (chown %s), or check as them with --user %s\n",
			c->key_file, name, c->state_dir, name, name);
	}
}

/* The check, as the current user: problems on stderr, the verdict on stdout (ok) or stderr. */
static int check_config(const struct cmdline *cl)
{
	struct macc_config c;
	struct macc_errmsg e;
	struct agentd_check chk;
	struct agentd_check_opts co = { .keep_data = false, .socket_option = false };
	char who[64], why[600];
	struct passwd *pw = getpwuid(geteuid());
	int rc;

	snprintf(who, sizeof(who), "%s", pw != NULL ? pw->pw_name : "?");
	rc = macc_config_load(cl->o.config_path, &c, &e);
	if (rc == -EACCES) {
		fprintf(stderr, PROG ": %s\n",
			agentd_check_denied(cl->o.config_path, "read", why, sizeof(why)));
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, PROG ": %s\n", e.text);
		return 1;
	}
	if (cl->o.socket_path != NULL) {
		snprintf(c.control_socket, sizeof(c.control_socket), "%s", cl->o.socket_path);
		co.socket_option = true;
	}
	rc = agentd_check_config(&c, &co, &chk);
	for (size_t i = 0; i < chk.nproblems; i++) {
		fprintf(stderr, PROG ": %s%s\n", chk.problems[i].warning ? "warning: " : "",
			chk.problems[i].text);
	}
	if (rc == 0 && cl->user == NULL) {
		warn_service_user(&c);
	}
	if (rc == 0) {
		printf("%s: ok (agent %s, %zu peer%s, model %s with %zu parameters, data %s; checked "
		       "as user %s)\n", cl->o.config_path, c.name, c.npeers, c.npeers == 1 ? "" : "s",
		       chk.model, chk.nparams, c.data, who);
	} else if (rc > 0) {
		fprintf(stderr, PROG ": %s: %d error%s (checked as user %s)\n", cl->o.config_path,
			rc, rc == 1 ? "" : "s", who);
	} else {
		fprintf(stderr, PROG ": out of memory\n");
	}
	agentd_check_finish(&chk);
	macc_config_finish(&c);
	return rc == 0 ? 0 : 1;
}

/* Become `pw` in this (child) process: groups, then gid, then uid. */
static int become(const struct passwd *pw)
{
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		fprintf(stderr, PROG ": cannot become user %s: %s\n", pw->pw_name, strerror(errno));
		return -1;
	}
	return 0;
}

/* --check-config --user USER: run the check in a child that is USER. */
static int check_config_as(const struct cmdline *cl)
{
	struct passwd *pw = getpwnam(cl->user);
	pid_t pid;
	int st;

	if (pw == NULL) {
		fprintf(stderr, PROG ": --user: no user '%s' on this system\n", cl->user);
		return 1;
	}
	if (pw->pw_uid == geteuid()) {
		return check_config(cl);
	}
	if (geteuid() != 0) {
		fprintf(stderr, PROG ": --user %s: only root can check as another user\n",
			cl->user);
		return 1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		_exit(become(pw) < 0 ? 1 : check_config(cl));
	}
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waitpid: %s\n", strerror(errno));
			return 1;
		}
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* Returns -1 to go on, or an exit status. */
static int parse(int argc, char **argv, struct cmdline *cl)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, OPT_CHECK},
		{"user", required_argument, NULL, 'u'},
		{"socket", required_argument, NULL, 's'},
		{"foreground", no_argument, NULL, 'f'},
		{"exit-when-done", no_argument, NULL, OPT_EXIT_DONE},
		{"log-level", required_argument, NULL, 'l'},
		{"blas-kernel", required_argument, NULL, OPT_BLAS_KERNEL},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:u:s:fl:Vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			cl->o.config_path = optarg;
			break;
		case OPT_CHECK:
			cl->check = true;
			break;
		case 'u':
			cl->user = optarg;
			break;
		case 's':
			cl->o.socket_path = optarg;
			break;
		case 'f':
			break;
		case OPT_EXIT_DONE:
			cl->o.exit_when_done = true;
			break;
		case 'l':
			if (macc_log_level_parse(optarg, &cl->o.log_level) < 0) {
				return usage_error("unknown log level (error, warn, info, debug)",
						   optarg);
			}
			cl->o.have_log_level = true;
			break;
		case OPT_BLAS_KERNEL:
			cl->blas_cli = optarg;
			break;
		case 'V':
			cl->version = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return usage_error("option needs a value:", argv[optind - 1]);
		default:
			return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc) {
		return usage_error("unexpected argument", argv[optind]);
	}
	if (cl->user != NULL && !cl->check) {
		return usage_error("option needs --check-config:", "--user");
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct cmdline cl;
	static struct macc_agent agent;
	struct macc_errmsg e;
	struct macc_blas_report blas;
	char line[512];
	int rc;

	memset(&cl, 0, sizeof(cl));
	cl.o.config_path = MACC_CONFIG_DEFAULT_PATH;
	rc = parse(argc, argv, &cl);
	if (rc >= 0) {
		return rc;
	}
	if (cl.check) {
		return cl.user != NULL ? check_config_as(&cl) : check_config(&cl);
	}
	if (blas_setup(cl.o.config_path, cl.blas_cli, argv, &blas) < 0) {
		return cl.blas_cli != NULL ? 2 : 1;
	}
	macc_nn_blas_describe(&blas, line, sizeof(line));
	if (cl.version) {
		printf(PROG " %s\nBLAS kernel %s\n", MACC_VERSION, line);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Every round allocates and frees one received frame per neighbour (megabytes each). Keep
	 * such blocks on the heap instead of mmap/munmap per frame, so a round costs no page faults
	 * or page zeroing, and do not give the freed memory back to the kernel between rounds. */
	mallopt(M_MMAP_THRESHOLD, 256 << 20);
	mallopt(M_TRIM_THRESHOLD, 512 << 20);
	if (cl.o.have_log_level) {
		macc_log_set_level(cl.o.log_level);
	}
	macc_info(NULL, "BLAS kernel %s", line);
	e.text[0] = '\0';
	rc = agent_init(&agent, &cl.o, &e);
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
