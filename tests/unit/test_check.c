/*
 * test_check.c - the daemon's configuration check (src/agentd/check.c) in one process, on a
 * small CSV dataset and a logreg model written to a scratch directory: a valid config passes and
 * hands its data over; each broken variant yields exactly the expected problems (with the key's
 * line, the layer's message quoted once); one problem does not hide another; the [peer] rule;
 * and the message for a file this user may not read. Every path runs under valgrind in CI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macc/config.h"
#include "macc/crypto.h"

#include "check.h"

struct fixture {
	char dir[64];
	char key[128], pub1[64], pub2[64];
};

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char path[128], csv[2048], key[MACC_KEY_B64_SIZE], sec[MACC_KEY_B64_SIZE + 2];
	size_t off = 0;

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/macc-test-check.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	/* 24 samples of 4 features, labels 0..2 */
	for (int i = 0; i < 24; i++) {
		off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%d,%d.5,%d,%d,%d\n", i, i % 5,
					i % 2, 24 - i, i % 3);
	}
	snprintf(path, sizeof(path), "%s/data.csv", fx->dir);
	write_file(path, csv, 0644);
	assert_int_equal(macc_key_generate_b64(key), 0);
	snprintf(fx->key, sizeof(fx->key), "%s/agent.key", fx->dir);
	snprintf(sec, sizeof(sec), "%s\n", key);
	write_file(fx->key, sec, 0600);
	for (int k = 0; k < 2; k++) {
		char other[MACC_KEY_B64_SIZE];

		assert_int_equal(macc_key_generate_b64(key), 0);
		assert_int_equal(macc_key_pubkey_from_secret_b64(key, other, NULL), 0);
		snprintf(k == 0 ? fx->pub1 : fx->pub2, sizeof(fx->pub1), "%s", other);
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* A config: [agent] and [train] lines of the base plus `train_extra` (at the end of [train])
 * and `peers` [peer] sections (0, 1 or 2). */
static void config(const struct fixture *fx, const char *agent_extra, const char *train_extra,
		   int peers, struct macc_config *ret)
{
	char text[4096];
	struct macc_errmsg e;
	int n;

	n = snprintf(text, sizeof(text),
		     "[agent]\nname = a0\nkey_file = %s\nstate_dir = %s/state\n"
		     "control_socket = %s/ctl.sock\n%s"
		     "[train]\nmodel = logreg:4-3\ndata = csv:%s/data.csv\nbatch = 4\n%s",
		     fx->key, fx->dir, fx->dir, agent_extra, fx->dir, train_extra);
	for (int k = 0; k < peers; k++) {
		n += snprintf(text + n, sizeof(text) - (size_t)n,
			      "[peer]\nname = p%d\nendpoint = 127.0.0.1:%d\npublic_key = %s\n", k,
			      7000 + k, k == 0 ? fx->pub1 : fx->pub2);
	}
	if (macc_config_parse_string(text, (size_t)n, "t.conf", ret, &e) != 0) {
		fail_msg("config does not parse: %s", e.text);
	}
}

/* Run the check; the problems joined by newlines into out. Returns the error count. */
static int run(const struct macc_config *c, bool keep, char *out, size_t n,
	       struct agentd_check *ret)
{
	struct agentd_check_opts o = { .keep_data = keep, .socket_option = false };
	size_t off = 0;
	int r = agentd_check_config(c, &o, ret);

	out[0] = '\0';
	for (size_t i = 0; i < ret->nproblems && off < n; i++) {
		off += (size_t)snprintf(out + off, n - off, "%s\n", ret->problems[i].text);
	}
	return r;
}

static void expect(const struct fixture *fx, const char *agent_extra, const char *train_extra,
		   int peers, int nerrors, const char *needle)
{
	struct macc_config c;
	struct agentd_check chk;
	char out[4096];
	int r;

	config(fx, agent_extra, train_extra, peers, &c);
	r = run(&c, false, out, sizeof(out), &chk);
	if (r != nerrors || (needle != NULL && strstr(out, needle) == NULL)) {
		fail_msg("wanted %d error(s) with '%s', got %d:\n%s", nerrors, needle ? needle : "",
			 r, out);
	}
	assert_false(chk.have_data);
	agentd_check_finish(&chk);
	macc_config_finish(&c);
}

static void test_valid(void **state)
{
	struct fixture *fx = *state;
	struct macc_config c;
	struct agentd_check chk;
	char out[4096];

	config(fx, "standalone = yes\n", "", 0, &c);
	assert_int_equal(run(&c, true, out, sizeof(out), &chk), 0);
	assert_string_equal(out, "");
	assert_int_equal(chk.nparams, 15);
	assert_string_equal(chk.model, "logreg:4-3");
	assert_true(chk.have_data);
	assert_int_equal(chk.train.n, 24);
	assert_int_equal(chk.train.dim, 4);
	assert_int_equal(chk.test.n, 24); /* no ;TEST: the training file */
	agentd_check_finish(&chk);
	assert_false(chk.have_data);
	macc_config_finish(&c);
}

static void test_layers(void **state)
{
	struct fixture *fx = *state;

	/* The graph parsers, on the key's line: [train]'s extra lines start at line 10, or 11
	 * after a standalone line in [agent]. */
	expect(fx, "standalone = yes\n", "topology = ring\nshard = 0/4\n", 0, 1,
	       "t.conf:11: topology 'ring' of 4 agents gives agent 0 (shard 0/4) 2 neighbours, "
	       "but the config has 0 [peer] sections");
	expect(fx, "", "topology = torus:2x\nshard = 0/4\n", 2, 1,
	       "t.conf:10: topology 'torus:2x': expected torus:RxC");
	expect(fx, "", "topology = ring\nshard = 0/4\n", 2, 0, NULL);
	expect(fx, "", "topology = ring\nshard = 0/4\n", 1, 1, "gives agent 0 (shard 0/4) 2 "
	       "neighbours, but the config has 1 [peer] section");
	expect(fx, "", "topology = hexagon\nshard = 0/4\n", 2, 1,
	       "t.conf:10: topology: unknown topology 'hexagon'");
}

/* Which mixing options combine: the mixer's one table, reported at the line of [train] (line 6:
 * no extra [agent] line). The parser no longer decides it (config.c is a parser). */
static void test_mixing(void **state)
{
	struct fixture *fx = *state;
	const char *sa = "standalone = yes\n";

	expect(fx, sa, "schedule = matching\n", 0, 1, "t.conf:7: [train]: ");
	expect(fx, sa, "schedule = matching\n", 0, 1, "needs key 'topology'");
	expect(fx, sa, "algorithm = sgp\n", 0, 1,
	       "algorithm = sgp, or a directed topology) needs key 'topology'");
	expect(fx, sa, "gossip_step = 0.5\n", 0, 1, "gossip_step needs compress");
	expect(fx, "", "shard = 0/4\ntopology = ring\nalgorithm = sgp\ncompress = int8\n", 2, 1,
	       "push-sum (algorithm = sgp, or a directed topology) does not support compress");
	/* robust mixing with local steps combines, with compress not */
	expect(fx, sa, "aggregation = clip:auto\nlocal_steps = 2\n", 0, 0, NULL);
	expect(fx, sa, "aggregation = clip:auto\ncompress = int8\n", 0, 1,
	       "compress does not support aggregation other than mean");
}

static void test_data_and_model(void **state)
{
	struct fixture *fx = *state;

	/* the shards of the real data against one batch of 4; the partition by the data layer */
	expect(fx, "standalone = yes\n", "partition = iid\nshard = 0/8\n", 0, 1,
	       "t.conf:10: batch: shard 0 of 8 has 3 samples of data 'csv:");
	expect(fx, "standalone = yes\n", "partition = iid\nshard = 0/6\n", 0, 0, NULL);
	expect(fx, "standalone = yes\n", "partition = label-shards:9\nshard = 0/2\n", 0, 1,
	       "t.conf:11: ");
}

static void test_model_fit(void **state)
{
	struct fixture *fx = *state;
	struct macc_config c;
	struct agentd_check chk;
	char out[4096];

	config(fx, "standalone = yes\n", "", 0, &c);
	snprintf(c.model, sizeof(c.model), "logreg:5-3");
	assert_int_equal(run(&c, true, out, sizeof(out), &chk), 1);
	assert_non_null(strstr(out, "t.conf:8: model 'logreg:5-3' takes 5 inputs per sample but "
				    "data 'csv:"));
	assert_false(chk.have_data); /* an error: nothing handed over */
	agentd_check_finish(&chk);
	snprintf(c.model, sizeof(c.model), "logreg:4-2");
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 1);
	assert_non_null(strstr(out, "has 2 outputs but data"));
	agentd_check_finish(&chk);
	snprintf(c.model, sizeof(c.model), "mlp:4-3:relu6");
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 1);
	assert_non_null(strstr(out, "t.conf:8: model spec 'mlp:4-3:relu6': unknown activation"));
	assert_null(strstr(out, "model: model")); /* no doubled prefix */
	agentd_check_finish(&chk);
	snprintf(c.data, sizeof(c.data), "csv:%s", fx->dir);
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 2);
	assert_non_null(strstr(out, "t.conf:9: key 'data' = 'csv:"));
	assert_non_null(strstr(out, ": not a regular file\n"));
	agentd_check_finish(&chk);
	macc_config_finish(&c);
}

static void test_peers_rule(void **state)
{
	struct fixture *fx = *state;
	struct macc_config c;
	struct macc_errmsg e;

	expect(fx, "", "", 0, 1, "t.conf:1: [agent] 'a0' has no [peer] section, so it would "
	       "train alone");
	expect(fx, "standalone = yes\n", "standardize = no\n", 2, 1, "t.conf:6: key 'standalone' = "
	       "'yes', but the config has 2 [peer] sections (the first at line ");
	expect(fx, "", "standardize = no\n", 2, 0, NULL);
	config(fx, "", "", 0, &c);
	assert_int_equal(agentd_check_peers(&c, &e), MACC_ECONFIG);
	c.standalone = true;
	assert_int_equal(agentd_check_peers(&c, &e), 0);
	macc_config_finish(&c);
}

/* csv: data standardises (auto): with peers, the agreement needs its exact steps D, which
 * neither topology nor shard gives here. */
static void test_standardize_rule(void **state)
{
	struct fixture *fx = *state;

	expect(fx, "", "", 2, 1, "standardize needs standardize_diameter (or topology, or shard)");
	expect(fx, "", "standardize = yes\n", 1, 1, "standardize needs standardize_diameter");
	expect(fx, "", "standardize_diameter = 2\n", 2, 0, NULL);
	expect(fx, "", "standardize = no\n", 2, 0, NULL);
	expect(fx, "standalone = yes\n", "", 0, 0, NULL);
}

static void test_dirs_and_key(void **state)
{
	struct fixture *fx = *state;
	struct macc_config c;
	struct agentd_check chk;
	char out[4096], path[160];

	config(fx, "standalone = yes\n", "", 0, &c);
	snprintf(c.control_socket, sizeof(c.control_socket), "%s/no/ctl.sock", fx->dir);
	snprintf(c.state_dir, sizeof(c.state_dir), "%s/no/state", fx->dir);
	snprintf(c.key_file, sizeof(c.key_file), "%s/no.key", fx->dir);
	/* three problems, all listed, none hiding another; the data still loads */
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 3);
	snprintf(path, sizeof(path), "directory %s/no does not exist", fx->dir);
	assert_non_null(strstr(out, path));
	assert_non_null(strstr(out, "t.conf:5: key 'control_socket' = '"));
	assert_non_null(strstr(out, "t.conf:4: state_dir: "));
	assert_non_null(strstr(out, "t.conf:3: key_file: "));
	assert_non_null(strstr(out, "cannot open key file: No such file or directory"));
	assert_int_equal(chk.nparams, 15);
	agentd_check_finish(&chk);
	/* a socket path that exists and is not a socket */
	snprintf(c.control_socket, sizeof(c.control_socket), "%s/data.csv", fx->dir);
	snprintf(c.state_dir, sizeof(c.state_dir), "%s/state", fx->dir);
	snprintf(c.key_file, sizeof(c.key_file), "%s", fx->key);
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 1);
	assert_non_null(strstr(out, "data.csv exists and is not a socket"));
	agentd_check_finish(&chk);
	/* a key readable by others is refused by the key loader */
	assert_int_equal(chmod(fx->key, 0644), 0);
	assert_int_equal(run(&c, false, out, sizeof(out), &chk), 2);
	assert_non_null(strstr(out, "key file has mode 0644"));
	agentd_check_finish(&chk);
	assert_int_equal(chmod(fx->key, 0600), 0);
	macc_config_finish(&c);
}

static void test_denied(void **state)
{
	struct fixture *fx = *state;
	char buf[512], path[128], want[300];

	snprintf(path, sizeof(path), "%s/secret", fx->dir);
	write_file(path, "x\n", 0640);
	agentd_check_denied(path, "read", buf, sizeof(buf));
	snprintf(want, sizeof(want), " cannot read %s (mode 0640 ", path);
	assert_non_null(strstr(buf, want));
	assert_true(strncmp(buf, "user ", 5) == 0);
	if (getuid() == 0 && getgid() == 0) {
		snprintf(want, sizeof(want), "user root cannot read %s (mode 0640 root:root)", path);
		assert_string_equal(buf, want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_layers),
		cmocka_unit_test(test_mixing),
		cmocka_unit_test(test_data_and_model),
		cmocka_unit_test(test_model_fit),
		cmocka_unit_test(test_peers_rule),
		cmocka_unit_test(test_standardize_rule),
		cmocka_unit_test(test_dirs_and_key),
		cmocka_unit_test(test_denied),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
