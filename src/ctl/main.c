/*
 * main.c - macc-ctl: the operator's command-line tool for macc-agentd (like wg or chronyc).
 *
 *   macc-ctl [-s SOCKET] [--json] COMMAND [ARGS]
 *
 * The subcommand table below maps each name to one function in commands.c, with its argument
 * count; main() only parses the global options, checks arity and dispatches. The socket is
 * -s, else $MACC_CTL_SOCKET, else /run/macc/agentd.sock. `--json` may also follow the command.
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
	  "score rows with the live model (SOURCE: model FILE.onnx | config CONF "
	  "[checkpoint DIR])" },
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
	fprintf(f, "Usage: macc-ctl [-s SOCKET] [--json] COMMAND [ARGS]\n\n"
		   "Options:\n"
		   "  -s, --socket PATH  control socket (default $MACC_CTL_SOCKET or %s)\n"
		   "  -j, --json         print one JSON document (watch: one per line)\n"
		   "  -h, --help         show this help\n\n"
		   "Commands:\n",
		MACC_CTL_DEFAULT_SOCKET);
	for (size_t i = 0; i < NSUB; i++) {
		char left[40];
		const struct macc_ctl_cmdinfo *ci = macc_ctl_cmd_find(subcommands[i].name);

		snprintf(left, sizeof(left), "%s%s", subcommands[i].name, subcommands[i].args);
		fprintf(f, "  %-18s %s%s\n", left, help_of(&subcommands[i]),
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
	json_obj(&j, "exit_codes");
	json_str(&j, "0", "ok");
	json_str(&j, "1", "the daemon reported an error");
	json_str(&j, "2", "usage error");
	json_str(&j, "3", "cannot connect");
	json_end_obj(&j);
	json_end_obj(&j);
	json_done(&j);
	return CLI_OK;
}

int cmd_help(struct cli *c)
{
	if (c->argc == 1) {
		for (size_t i = 0; i < NSUB; i++) {
			if (strcmp(subcommands[i].name, c->argv[0]) == 0) {
				if (c->json) {
					return help_json(&subcommands[i]);
				}
				printf("Usage: macc-ctl [-s SOCKET] [--json] %s%s\n  %s\n",
				       subcommands[i].name, subcommands[i].args,
				       help_of(&subcommands[i]));
				return CLI_OK;
			}
		}
		cli_err("unknown command '%s'; see 'macc-ctl help'.", c->argv[0]);
		return CLI_EUSAGE;
	}
	if (c->json) {
		return help_json(NULL);
	}
	usage(stdout);
	return CLI_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c;
	const struct subcommand *sub = NULL;
	int opt, r, nargs = 0;
	char **args;

	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.next_id = 1;
	c.socket_path = getenv("MACC_CTL_SOCKET");
	if (c.socket_path == NULL || c.socket_path[0] == '\0') {
		c.socket_path = MACC_CTL_DEFAULT_SOCKET;
	}
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+s:jh", longopts, NULL)) != -1) {
		switch (opt) {
		case 's':
			c.socket_path = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			if (optopt == 's') {
				cli_err("option -s needs a socket path.");
			} else {
				cli_err("unknown option '%s'; see 'macc-ctl help'.",
					argv[optind - 1]);
			}
			return CLI_EUSAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_EUSAGE;
	}
	for (size_t i = 0; i < NSUB; i++) {
		if (strcmp(subcommands[i].name, argv[optind]) == 0) {
			sub = &subcommands[i];
		}
	}
	if (sub == NULL) {
		cli_err("unknown command '%s'; see 'macc-ctl help'.", argv[optind]);
		return CLI_EUSAGE;
	}
	/* Arguments after the command; --json / -j may appear there too. */
	args = calloc((size_t)argc, sizeof(*args));
	if (args == NULL) {
		cli_err("out of memory.");
		return CLI_EUSAGE;
	}
	for (int i = optind + 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0) {
			c.json = true;
		} else {
			args[nargs++] = argv[i];
		}
	}
	if (nargs < sub->min_args || nargs > sub->max_args) {
		cli_err("usage: macc-ctl %s%s", sub->name, sub->args);
		free(args);
		return CLI_EUSAGE;
	}
	c.argc = nargs;
	c.argv = args;
	c.tty = isatty(STDOUT_FILENO) == 1;
	r = sub->fn(&c);
	cli_disconnect(&c);
	free(args);
	if (fflush(stdout) != 0 && r == CLI_OK) {
		r = CLI_EDAEMON;
	}
	return r;
}
