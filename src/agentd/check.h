/*
 * check.h - the one validation of a configuration that `macc-agentd --check-config` and the
 * daemon's start-up both run (src/agentd/check.c), so that the two can never disagree.
 *
 * Ownership: struct agentd_check owns its list of problems and, when asked to keep them, the
 * datasets it loaded (start-up adopts them instead of loading the data twice).
 */
#ifndef MACC_AGENTD_CHECK_H
#define MACC_AGENTD_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macc/config.h"
#include "macc/data.h"

/* One thing that is wrong (or, for a warning, suspicious), as one sentence that starts with
 * "FILE:LINE: " (or "FILE: " when no line is to blame). */
struct agentd_problem {
	bool warning;
	char text[1024];
};

struct agentd_check {
	struct agentd_problem *problems; /* owned, in the order found */
	size_t nproblems, cap;
	size_t nerrors, nwarnings;
	/* What the check learned, for the summary line. */
	size_t nparams;                  /* 0 when the model spec did not build */
	char model[128];                 /* the model's canonical spec */
	/* Kept only with agentd_check_opts.keep_data and no errors: */
	bool have_data;
	struct macc_dataset train, test;
};

struct agentd_check_opts {
	bool keep_data;     /* hand the loaded datasets over in struct agentd_check */
	bool socket_option; /* control_socket came from -s, not from the file */
};

/*
 * Check `cfg` (already parsed; control_socket already overridden by -s) as start-up would:
 * [peer] sections (none needs standalone = yes), the key file (readable by this process's user,
 * mode, not a peer's key), the control socket's directory and the state directory (exist, or can
 * be made, and are writable by this user), the model spec (the model layer's parser), the
 * topology and its neighbours of this agent against the [peer] sections (the consensus layer's
 * graph parsers), the data (loaded by the data layer, both splits), the model's input size and
 * outputs against the data, the partition of the data into shards against the batch, and the
 * checkpoint in the state directory, if any (readable, intact, of this model and setup).
 * Everything is checked: one problem does not hide the others (except what depends on it).
 * Runs as the current user: to check for another user, run it in a process of that user.
 * Returns the number of errors (0: start-up gets past its configuration), or -ENOMEM.
 * *ret is initialised here; release it with agentd_check_finish() in every case.
 */
int agentd_check_config(const struct macc_config *cfg, const struct agentd_check_opts *o,
			struct agentd_check *ret);
void agentd_check_finish(struct agentd_check *chk); /* zeroed ok */

/* The hash of the [train] keys a checkpoint belongs to (model, data, shard, partition, seed,
 * batch, algorithm, and standardize with standardize_rounds when the run standardises): a
 * checkpoint of another setup is refused, by start-up and by the check. */
uint64_t agentd_config_hash(const struct macc_config *cfg);

/*
 * The [peer] rule alone (reload applies it too): a config with no [peer] section is an error
 * unless it says standalone = yes, and standalone = yes with [peer] sections is one too.
 * Returns 0 or MACC_ECONFIG with err naming file and line.
 */
int agentd_check_peers(const struct macc_config *cfg, struct macc_errmsg *err);

/*
 * Why this process cannot `verb` ("read", "write in") `path`, for messages: "user macc cannot
 * read /etc/macc/agent.key (mode 0600 root:root)", or, when a directory on the way is closed,
 * "user macc cannot reach /etc/macc/agent.key: no search permission on /etc/macc (mode 0700
 * root:root)". Writes into buf (size n) and returns it.
 */
char *agentd_check_denied(const char *path, const char *verb, char *buf, size_t n);

#endif
