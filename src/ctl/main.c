/*
 * main.c - macc-ctl: the operator's command-line tool for macc-agentd (like wg or chronyc).
 *
 *   macc-ctl [-s SOCKET] [--json] COMMAND [ARGS]
 *   macc-ctl --version | --help
 *
 * The subcommand table below maps each name to one function in commands.c, with its argument
 * count; main() only parses the options, checks arity and dispatches. The socket is -s, else
 * $MACC_CTL_SOCKET, else /run/macc/agentd.sock. The options -s, --json and --help may come
 * before or after the command (`macc-ctl status -s SOCK` like `systemctl status -H HOST`); `--`
 * ends them. With --json every run prints exactly one JSON document on stdout (watch: one per
 * line), usage and connection errors included.
 * Exit codes: 0 ok, 1 the daemon reported an error, 2 usage error, 3 cannot connect.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macc/ctl.h"

#include "cli.h"

struct subcommand {
	const char *name;
	int (*fn)(struct cli *c);
	int min_args, max_args;
	const char *args;
	const char *help; /* NULL: take it from the protocol's command table */
};

static const struct subcommand subcommands[] = {
	{ "status", cmd_status, 0, 0, "", NULL },
	{ "peers", cmd_peers, 0, 0, "", NULL },
	{ "start", cmd_start, 0, 0, "", NULL },
	{ "stop", cmd_stop, 0, 0, "", NULL },
	{ "pause", cmd_pause, 0, 0, "", NULL },
	{ "resume", cmd_resume, 0, 0, "", NULL },
	{ "checkpoint", cmd_checkpoint, 0, 0, "", NULL },
	{ "eval", cmd_eval, 0, 0, "", NULL },
	{ "metrics", cmd_metrics, 0, 0, "", NULL },
	{ "watch", cmd_watch, 0, 0, "", NULL },
	{ "reload", cmd_reload, 0, 0, "", NULL },
	{ "log-level", cmd_log_level, 1, 1, " LEVEL", NULL },
	{ "version", cmd_version, 0, 0, "", "show macc-ctl's and the daemon's versions" },
	{ "audit", cmd_audit, 0, 1, " [COUNT]", NULL },
	{ "verify-audit", cmd_verify_audit, 1, 1, " FILE",
	  "check every audit trail entry of FILE offline (signatures, body digests)" },
	{ "export", cmd_export, 1, 5, " FILE [SOURCE]",
	  "write the live model as ONNX (SOURCE: config CONF [checkpoint DIR])" },
	{ "predict", cmd_predict, 1, 5, " DATA [SOURCE]",
	  "score rows with the live model (SOURCE: model FILE.onnx, or as for export)" },
	{ "genkey", cmd_genkey, 0, 0, "", "print a new secret key (base64) on stdout" },
	{ "pubkey", cmd_pubkey, 0, 0, "",
	  "read a secret key on stdin, print its public key" },
	{ "help", cmd_help, 0, 1, " [COMMAND]", "show this help" },
};

#define NSUB (sizeof(subcommands) / sizeof(subcommands[0]))

static const char *help_of(const struct subcommand *s)
{
	const struct macc_ctl_cmdinfo *ci;

	if (s->help != NULL) {
		return s->help;
	}
	ci = macc_ctl_cmd_find(s->name);
	return ci != NULL ? ci->help : "";
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: macc-ctl [-s SOCKET] [--json] COMMAND [ARGS]\n"
		   "Control and inspect a macc-agentd over its control socket.\n\n"
		   "Options (before or after the command):\n"
		   "  -s, --socket PATH  control socket (default $MACC_CTL_SOCKET or %s)\n"
		   "  -j, --json         print one JSON document (watch: one per line)\n"
		   "  -h, --help         show this help (after a command: that command's)\n"
		   "  -V, --version      print macc-ctl's version and exit\n\n"
		   "Commands:\n",
		MACC_CTL_DEFAULT_SOCKET);
	int width = 0;

	for (size_t i = 0; i < NSUB; i++) {
		int w = (int)(strlen(subcommands[i].name) + strlen(subcommands[i].args));

		width = w > width ? w : width;
	}
	for (size_t i = 0; i < NSUB; i++) {
		char left[40];
		const struct macc_ctl_cmdinfo *ci = macc_ctl_cmd_find(subcommands[i].name);

		snprintf(left, sizeof(left), "%s%s", subcommands[i].name, subcommands[i].args);
		fprintf(f, "  %-*s  %s%s\n", width, left, help_of(&subcommands[i]),
			ci != NULL && ci->mutating ? " [privileged]" : "");
	}
	fprintf(f, "\nExit status: 0 ok, 1 the daemon reported an error, 2 usage error, "
		   "3 cannot connect.\n");
}

/* `--json help`: the command table as one JSON document, for scripts and completion. */
static int help_json(const struct subcommand *only)
{
	struct json j;

	json_init(&j, stdout);
	json_obj(&j, NULL);
	json_arr(&j, "commands");
	for (size_t i = 0; i < NSUB; i++) {
		const struct macc_ctl_cmdinfo *ci = macc_ctl_cmd_find(subcommands[i].name);

		if (only != NULL && only != &subcommands[i]) {
			continue;
		}
		json_obj(&j, NULL);
		json_str(&j, "name", subcommands[i].name);
		json_str(&j, "args", subcommands[i].args);
		json_str(&j, "help", help_of(&subcommands[i]));
		json_bool(&j, "privileged", ci != NULL && ci->mutating);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_arr(&j, "exit_codes");
	for (int code = 0; code < 4; code++) {
		static const char *const meaning[] = { "ok", "the daemon reported an error",
						       "usage error", "cannot connect" };

		json_obj(&j, NULL);
		json_i64(&j, "exit_code", code);
		json_str(&j, "meaning", meaning[code]);
		json_end_obj(&j);
	}
	json_end_arr(&j);
	json_end_obj(&j);
	json_done(&j);
	return CLI_OK;
}

static int help_one(struct cli *c, const struct subcommand *sub)
{
	if (c->json) {
		return help_json(sub);
	}
	printf("Usage: macc-ctl [-s SOCKET] [--json] %s%s\n  %s\n", sub->name, sub->args,
	       help_of(sub));
	return CLI_OK;
}

static const struct subcommand *find_sub(const char *name)
{
	for (size_t i = 0; i < NSUB; i++) {
		if (strcmp(subcommands[i].name, name) == 0) {
			return &subcommands[i];
		}
	}
	return NULL;
}

int cmd_help(struct cli *c)
{
	if (c->argc == 1) {
		const struct subcommand *sub = find_sub(c->argv[0]);

		if (sub == NULL) {
			cli_err(c, "unknown command '%s'; see 'macc-ctl --help'.", c->argv[0]);
			return CLI_EUSAGE;
		}
		return help_one(c, sub);
	}
	if (c->json) {
		return help_json(NULL);
	}
	usage(stdout);
	return CLI_OK;
}

static int version(const struct cli *c)
{
	if (c->json) {
		struct json j;

		json_init(&j, stdout);
		json_obj(&j, NULL);
		json_str(&j, "macc_ctl", MACC_VERSION);
		json_i64(&j, "protocol", MACC_CTL_PROTO_VERSION);
		json_end_obj(&j);
		json_done(&j);
	} else {
		printf("macc-ctl %s (control protocol %d)\n", MACC_VERSION, MACC_CTL_PROTO_VERSION);
	}
	return CLI_OK;
}

/* --json anywhere on the line (but not as the argument of -s), looked for before anything
 * else, so that even a usage error in front of it is reported as a JSON document. */
static bool wants_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			return false;
		}
		if (strcmp(argv[i], "-s") == 0 || strcmp(argv[i], "--socket") == 0) {
			i++;
		} else if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0) {
			return true;
		}
	}
	return false;
}

/*
 * The words after the command: -s/--socket PATH (also -sPATH, --socket=PATH), -j/--json,
 * -h/--help and `--`; everything else is an argument. Returns CLI_OK, CLI_EUSAGE (reported),
 * or 1 + CLI_OK when --help asked for the command's help.
 */
static int parse_tail(struct cli *c, int n, char **w, char **args, int *ret_nargs)
{
	int nargs = 0;
	bool opts = true;

	for (int i = 0; i < n; i++) {
		const char *a = w[i];

		if (!opts || a[0] != '-' || a[1] == '\0') {
			args[nargs++] = w[i];
		} else if (strcmp(a, "--") == 0) {
			opts = false;
		} else if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
			c->json = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			return 1;
		} else if (strcmp(a, "-s") == 0 || strcmp(a, "--socket") == 0) {
			if (i + 1 >= n) {
				cli_err(c, "option %s needs a socket path.", a);
				return CLI_EUSAGE;
			}
			c->socket_path = w[++i];
		} else if (strncmp(a, "--socket=", 9) == 0) {
			c->socket_path = a + 9;
		} else if (strncmp(a, "-s", 2) == 0) {
			c->socket_path = a + 2;
		} else {
			cli_err(c, "unknown option '%s'; see 'macc-ctl --help'.", a);
			return CLI_EUSAGE;
		}
	}
	*ret_nargs = nargs;
	return CLI_OK;
}

/* Global options before the command. Returns CLI_OK with *ret_done false to go on, or an exit
 * code with *ret_done true. */
static int parse_head(struct cli *c, int argc, char **argv, bool *ret_done)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	*ret_done = true;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:s:jhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c->socket_path = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case 'h':
			if (c->json) {
				return help_json(NULL);
			}
			usage(stdout);
			return CLI_OK;
		case 'V':
			return version(c);
		case ':':
			cli_err(c, "option %s needs a socket path.", argv[optind - 1]);
			return CLI_EUSAGE;
		default:
			cli_err(c, "unknown option '%s'; see 'macc-ctl --help'.", argv[optind - 1]);
			return CLI_EUSAGE;
		}
	}
	if (optind >= argc) {
		if (c->json) {
			cli_err(c, "no command given; see 'macc-ctl --help'.");
		} else {
			usage(stderr);
		}
		return CLI_EUSAGE;
	}
	*ret_done = false;
	return CLI_OK;
}

static int run(struct cli *c, int argc, char **argv, char **args)
{
	const struct subcommand *sub;
	bool done;
	int nargs = 0, r;

	r = parse_head(c, argc, argv, &done);
	if (done) {
		return r;
	}
	sub = find_sub(argv[optind]);
	if (sub == NULL) {
		cli_err(c, "unknown command '%s'; see 'macc-ctl --help'.", argv[optind]);
		return CLI_EUSAGE;
	}
	c->command = sub->name;
	r = parse_tail(c, argc - optind - 1, argv + optind + 1, args, &nargs);
	if (r == 1) {
		return help_one(c, sub);
	}
	if (r != CLI_OK) {
		return r;
	}
	if (nargs < sub->min_args || nargs > sub->max_args) {
		cli_err(c, "usage: macc-ctl %s%s", sub->name, sub->args);
		return CLI_EUSAGE;
	}
	c->argc = nargs;
	c->argv = args;
	c->tty = isatty(STDOUT_FILENO) == 1;
	return sub->fn(c);
}

int main(int argc, char **argv)
{
	struct cli c;
	char **args;
	int r;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.next_id = 1;
	c.socket_path = getenv("MACC_CTL_SOCKET");
	if (c.socket_path == NULL || c.socket_path[0] == '\0') {
		c.socket_path = MACC_CTL_DEFAULT_SOCKET;
	}
	c.json = wants_json(argc, argv);
	args = calloc((size_t)argc + 1, sizeof(*args));
	if (args == NULL) {
		cli_err(&c, "out of memory.");
		r = CLI_EUSAGE;
	} else {
		r = run(&c, argc, argv, args);
	}
	cli_disconnect(&c);
	free(args);
	if (fflush(stdout) != 0 && r == CLI_OK) {
		r = CLI_EDAEMON;
	}
	if (c.json && r != CLI_OK && !c.error_printed) {
		cli_json_error(&c, r, -1, c.errmsg[0] != '\0' ? c.errmsg : "failed");
	}
	return r;
}
