/*
 * test_core.c - the daemon's core in one process: two and three agents (struct macc_agent,
 * agent.h) on ONE libuv loop over loopback TCP, with a small synthetic dataset and a tiny model
 * (logreg:4-3, 96 samples), so that a run of 20 rounds takes a fraction of a second.
 *
 * - A ring of three, plain sessions: every agent runs to its last round, and each one's
 *   parameter digest equals macc-sim's for the same agent with the same settings (MACC_SIM, the
 *   simulator built alongside; skipped without it): the core composes the round like the
 *   simulator, through the network path, in one process.
 * - A pair, plain then sealed (encrypt = yes, both ends): the handshake adopts one session per
 *   peer, both runs end, and the sealed run's digests equal the plain run's (sealing changes
 *   the bytes on the wire, not the arithmetic). Mid-run, every agent has exactly one adopted
 *   session per peer, the same connection at both ends (both dial at once: the tie-break).
 * - Reload mid-run (plan, then commit): refused for a key that needs a restart (nothing
 *   changes), a peer added and removed again (the graveyard); the digests equal a run without.
 * - A lost state: one agent pauses for a second; its neighbour's rounds end at the round
 *   timeout, the missing state is folded (neighbours_missed_total), and both runs still end.
 * Every run ends with every handle of the loop closed: uv_loop_close() == 0 (no file-scope state
 * and no handle left behind by an agent, so agents can share a loop and a process).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macc/crypto.h"

#include "agent.h"

#define MAX_AGENTS 3
#define ROUNDS 20
#define MID_ROUND 5
#define RUN_LIMIT_MS 120000 /* generous: valgrind and a busy machine */

struct fleet {
	char dir[64];
	int n;
	bool encrypt;
	char key[MAX_AGENTS][MACC_KEY_B64_SIZE]; /* secret keys, in public-key order */
	char pub[MAX_AGENTS][MACC_KEY_B64_SIZE];
	int port[MAX_AGENTS];
	char conf[MAX_AGENTS][128];
	uv_loop_t loop;
	struct macc_agent *agent[MAX_AGENTS];
	uv_timer_t limit;
	bool timed_out;
	char train_extra[256];
	unsigned round_timeout_ms;
	uv_check_t hook;        /* runs mid_run once agent 0 reached round MID_ROUND */
	void (*mid_run)(struct fleet *fl);
	bool mid_run_done;
	uv_timer_t later;       /* a test's own deferred action (lost state: the resume) */
	struct macc_ctl_metrics metrics[MAX_AGENTS];
	uint64_t digest[MAX_AGENTS];
};

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_true(fputs(text, f) >= 0);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* A loopback port nothing listens on now (bound, read, closed: the agents bind it next). */
static int free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int cmp_pub(const void *x, const void *y)
{
	struct macc_pubkey a, b;
	struct macc_errmsg e;

	assert_int_equal(macc_pubkey_from_b64(&a, x, &e), 0);
	assert_int_equal(macc_pubkey_from_b64(&b, y, &e), 0);
	return memcmp(a.bytes, b.bytes, MACC_PUBKEY_BYTES);
}

/* Agent j's config: its ring neighbours, then `more` (more [peer] sections). */
static void write_conf(const struct fleet *fl, int j, const char *train_extra, const char *more)
{
	char text[4096];
	int n = fl->n, len;

	len = snprintf(text, sizeof(text),
		       "[agent]\nname = a%d\nlisten = 127.0.0.1:%d\nkey_file = %s/a%d.key\n"
		       "state_dir = %s/state%d\ncontrol_socket = %s/ctl%d.sock\nencrypt = %s\n"
		       "[train]\nmodel = logreg:4-3\ndata = csv:%s/data.csv\nbatch = 4\n"
		       "rounds = %d\nlr = 0.05\nmomentum = 0.9\nseed = 7\nshard = %d/%d\n"
		       "round_timeout_ms = %u\ndead_peer_timeout_ms = 60000\n%s",
		       j, fl->port[j], fl->dir, j, fl->dir, j, fl->dir, j,
		       fl->encrypt ? "yes" : "no", fl->dir, ROUNDS, j, n,
		       fl->round_timeout_ms ? fl->round_timeout_ms : 20000, train_extra);
	for (int d = -1; d <= 1; d += 2) {
		int k = (j + d + n) % n;

		if (k == j || (n == 2 && d == 1)) {
			continue; /* a pair: one neighbour, not the same one twice */
		}
		len += snprintf(text + len, sizeof(text) - (size_t)len,
				"[peer]\nname = a%d\nendpoint = 127.0.0.1:%d\npublic_key = %s\n", k,
				fl->port[k], fl->pub[k]);
	}
	snprintf(text + len, sizeof(text) - (size_t)len, "%s", more);
	write_file(fl->conf[j], text, 0644);
}

/* Keys (agent J holds the J-th smallest public key, the agent order of the mixer and of
 * macc-sim), the data and one config per agent: a ring (each agent's neighbours are J-1 and
 * J+1; with two agents, the other one). */
static void fleet_make(struct fleet *fl, int n, bool encrypt, const char *train_extra)
{
	char path[160], csv[4096], text[200], pubs[MAX_AGENTS][2 * MACC_KEY_B64_SIZE];
	size_t off = 0;

	memset(fl, 0, sizeof(*fl));
	snprintf(fl->train_extra, sizeof(fl->train_extra), "%s", train_extra);
	fl->n = n;
	fl->encrypt = encrypt;
	snprintf(fl->dir, sizeof(fl->dir), "/tmp/macc-test-core.XXXXXX");
	assert_non_null(mkdtemp(fl->dir));
	/* 96 samples of 4 features, labels 0..2, separable enough to learn something */
	for (int i = 0; i < 96; i++) {
		off += (size_t)snprintf(csv + off, sizeof(csv) - off, "%d.%d,%d.5,%d,%d,%d\n",
					i % 3 * 2, i % 7, i % 5, i % 2, (i * 7) % 11, i % 3);
	}
	snprintf(path, sizeof(path), "%s/data.csv", fl->dir);
	write_file(path, csv, 0644);
	for (int j = 0; j < n; j++) {
		char sec[MACC_KEY_B64_SIZE], pub[MACC_KEY_B64_SIZE];

		assert_int_equal(macc_key_generate_b64(sec), 0);
		assert_int_equal(macc_key_pubkey_from_secret_b64(sec, pub, NULL), 0);
		snprintf(pubs[j], sizeof(pubs[j]), "%s", pub);
		memcpy(pubs[j] + MACC_KEY_B64_SIZE, sec, MACC_KEY_B64_SIZE);
	}
	qsort(pubs, (size_t)n, sizeof(pubs[0]), cmp_pub);
	for (int j = 0; j < n; j++) {
		memcpy(fl->pub[j], pubs[j], MACC_KEY_B64_SIZE);
		memcpy(fl->key[j], pubs[j] + MACC_KEY_B64_SIZE, MACC_KEY_B64_SIZE);
		fl->port[j] = free_port();
	}
	for (int j = 0; j < n; j++) {
		snprintf(path, sizeof(path), "%s/a%d.key", fl->dir, j);
		snprintf(text, sizeof(text), "%s\n", fl->key[j]);
		write_file(path, text, 0600);
		snprintf(fl->conf[j], sizeof(fl->conf[j]), "%s/a%d.conf", fl->dir, j);
		write_conf(fl, j, train_extra, "");
	}
}

/* Mid-run, every agent has exactly one adopted session per peer (both ends dial at once: the
 * tie-break keeps one connection, the same one at both ends: outbound at one, inbound at the
 * other), sealed exactly when the fleet encrypts. */
static void check_sessions(struct fleet *fl)
{
	for (int j = 0; j < fl->n; j++) {
		struct macc_agent *a = fl->agent[j];

		for (size_t i = 0; i < a->npeers; i++) {
			struct peer *p = a->peers[i];
			unsigned adopted = 0;

			for (struct conn *c = a->conns; c != NULL; c = c->next) {
				adopted += c->peer == p && c->state == CONN_UP;
			}
			if (p->conn == NULL || adopted != 1) {
				fail_msg("agent %d, peer %s: %u adopted sessions", j, p->name, adopted);
			}
			assert_int_equal(p->conn->session.seal, fl->encrypt);
			for (int k = 0; k < fl->n; k++) {
				struct macc_agent *b = fl->agent[k];

				for (size_t m = 0; m < b->npeers; m++) {
					if (k != j && b->peers[m]->conn != NULL &&
					    macc_pubkey_equal(&b->peers[m]->key, &a->id.pub) &&
					    macc_pubkey_equal(&p->key, &b->id.pub)) {
						assert_true(b->peers[m]->conn->outbound !=
							    p->conn->outbound);
					}
				}
			}
		}
	}
}

static void on_hook(uv_check_t *h)
{
	struct fleet *fl = h->data;

	if (fl->mid_run_done || fl->agent[0]->round < MID_ROUND) {
		return;
	}
	fl->mid_run_done = true;
	uv_check_stop(h);
	uv_close((uv_handle_t *)h, NULL);
	check_sessions(fl);
	if (fl->mid_run != NULL) {
		fl->mid_run(fl);
	}
}

static void on_limit(uv_timer_t *t)
{
	struct fleet *fl = t->data;

	fl->timed_out = true;
	fail_msg("the run did not end within %d ms", RUN_LIMIT_MS);
}

/* Start every agent on the fleet's loop, run the loop until every agent finished its run and
 * closed its handles, tear down, close the loop. */
static void fleet_run(struct fleet *fl)
{
	struct macc_errmsg e;

	assert_int_equal(uv_loop_init(&fl->loop), 0);
	for (int j = 0; j < fl->n; j++) {
		struct agent_opts o = {
			.config_path = fl->conf[j],
			.exit_when_done = true,
			.have_log_level = true,
			.log_level = MACC_LOG_WARN,
			.loop = &fl->loop,
			.no_signals = true,
		};

		fl->agent[j] = calloc(1, sizeof(struct macc_agent));
		assert_non_null(fl->agent[j]);
		if (agent_init(fl->agent[j], &o, &e) < 0) {
			fail_msg("agent %d: %s", j, e.text);
		}
	}
	for (int j = 0; j < fl->n; j++) {
		assert_int_equal(agent_run(fl->agent[j]), 0);
	}
	/* A bound on the run that does not keep the loop alive by itself. */
	uv_timer_init(&fl->loop, &fl->limit);
	fl->limit.data = fl;
	uv_timer_start(&fl->limit, on_limit, RUN_LIMIT_MS, 0);
	uv_unref((uv_handle_t *)&fl->limit);
	uv_check_init(&fl->loop, &fl->hook);
	fl->hook.data = fl;
	uv_check_start(&fl->hook, on_hook);
	uv_run(&fl->loop, UV_RUN_DEFAULT);
	assert_true(fl->mid_run_done);
	uv_close((uv_handle_t *)&fl->limit, NULL);
	for (int j = 0; j < fl->n; j++) {
		struct macc_agent *a = fl->agent[j];

		assert_int_equal(a->state, MACC_CTL_STATE_DONE);
		assert_int_equal(a->round, ROUNDS);
		fl->digest[j] = a->digest;
		fl->metrics[j] = a->metrics;
		agent_finish(a);
		free(a);
		fl->agent[j] = NULL;
	}
	assert_false(fl->timed_out);
	assert_int_equal(uv_run(&fl->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&fl->loop), 0);
}

static void fleet_remove(struct fleet *fl)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fl->dir);
	assert_int_equal(system(cmd), 0);
}

/* macc-sim's digest of agent j for the fleet's settings; false when the simulator is absent. */
static bool sim_digests(const struct fleet *fl, uint64_t *ret)
{
	const char *sim = getenv("MACC_SIM");
	char cmd[1024], line[256];
	int got = 0;
	FILE *p;
	int rc;

	if (sim == NULL || access(sim, X_OK) != 0) {
		return false;
	}
	snprintf(cmd, sizeof(cmd), "'%s' --agents %d --topology ring --model logreg:4-3 "
		 "--data csv:%s/data.csv --rounds %d --algorithm dmsgd --lr 0.05 --momentum 0.9 "
		 "--batch 4 --seed 7 --print-digest --quiet", sim, fl->n, fl->dir, ROUNDS);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p) != NULL) {
		int j;
		unsigned long long d;

		if (sscanf(line, "agent=%d digest=%llx", &j, &d) == 2 && j >= 0 && j < fl->n) {
			ret[j] = d;
			got++;
		}
	}
	rc = pclose(p);
	if (WIFEXITED(rc) && WEXITSTATUS(rc) == 126) {
		/* the shell cannot execute macc-sim: a cross build run under qemu-user, whose
		 * wrapper covers this test but not the programs it starts */
		skip();
	}
	assert_int_equal(rc, 0);
	assert_int_equal(got, fl->n);
	return true;
}

static void test_ring3_matches_sim(void **state)
{
	struct fleet *fl = calloc(1, sizeof(*fl));
	uint64_t want[MAX_AGENTS];

	(void)state;
	assert_non_null(fl);
	fleet_make(fl, 3, false, "");
	fleet_run(fl);
	if (!sim_digests(fl, want)) {
		fleet_remove(fl);
		free(fl);
		skip(); /* MACC_SIM unset: the simulator is not built */
	}
	{
		for (int j = 0; j < fl->n; j++) {
			if (getenv("TEST_CORE_VERBOSE") != NULL) {
				printf("agent %d digest %016llx sim %016llx\n", j,
				       (unsigned long long)fl->digest[j], (unsigned long long)want[j]);
			}
			if (fl->digest[j] != want[j]) {
				fail_msg("agent %d: digest %016llx, macc-sim %016llx", j,
					 (unsigned long long)fl->digest[j],
					 (unsigned long long)want[j]);
			}
		}
	}
	/* The agents learned something different from each other (their shards differ): a
	 * digest that ignored the parameters would not pass. */
	assert_true(fl->digest[0] != fl->digest[1] && fl->digest[1] != fl->digest[2]);
	fleet_remove(fl);
	free(fl);
}

/* The reference: a plain pair run to the end, its digests in plain[]; the fleet (its directory
 * removed, its metrics kept) is reused by the caller. */
static struct fleet *plain_pair(uint64_t plain[MAX_AGENTS])
{
	struct fleet *fl = calloc(1, sizeof(*fl));

	assert_non_null(fl);
	fleet_make(fl, 2, false, "");
	fleet_run(fl);
	memcpy(plain, fl->digest, MAX_AGENTS * sizeof(plain[0]));
	fleet_remove(fl);
	return fl;
}

static void test_pair_sealed_equals_plain(void **state)
{
	uint64_t plain[MAX_AGENTS];
	struct fleet *fl = plain_pair(plain);

	(void)state;
	fleet_make(fl, 2, true, "");
	fleet_run(fl);
	for (int j = 0; j < 2; j++) {
		if (fl->digest[j] != plain[j]) {
			fail_msg("agent %d: sealed digest %016llx, plain %016llx", j,
				 (unsigned long long)fl->digest[j], (unsigned long long)plain[j]);
		}
	}
	fleet_remove(fl);
	free(fl);
}

/* Mid-run reloads of agent 0: one that would change the algorithm is refused and changes nothing;
 * one that adds a peer (its endpoint answers nobody) and one that removes it again are applied
 * (plan, then commit); the removed peer waits in the graveyard until its handles closed. */
static void reload_mid_run(struct fleet *fl)
{
	struct macc_agent *a = fl->agent[0];
	char sec[MACC_KEY_B64_SIZE], pub[MACC_KEY_B64_SIZE], more[300];
	char model[sizeof(fl->agent[0]->cfg.model)];
	struct macc_errmsg e;
	snprintf(model, sizeof(model), "%s", a->cfg.model);
	/* refused: a key that needs a restart (nothing changes) */
	write_conf(fl, 0, "algorithm = dsgd\n", "");
	assert_true(agent_reload(a, &e) < 0);
	assert_non_null(strstr(e.text, "needs a restart"));
	assert_int_equal(a->npeers, 1);
	assert_int_equal(a->ngraveyard, 0);
	/* a peer added */
	assert_int_equal(macc_key_generate_b64(sec), 0);
	assert_int_equal(macc_key_pubkey_from_secret_b64(sec, pub, NULL), 0);
	snprintf(more, sizeof(more), "[peer]\nname = extra\nendpoint = 127.0.0.1:%d\n"
		 "public_key = %s\n", free_port(), pub);
	write_conf(fl, 0, fl->train_extra, more);
	if (agent_reload(a, &e) < 0) {
		fail_msg("reload adding a peer: %s", e.text);
	}
	assert_int_equal(a->npeers, 2);
	/* and removed again before any step counted it */
	write_conf(fl, 0, fl->train_extra, "");
	if (agent_reload(a, &e) < 0) {
		fail_msg("reload removing a peer: %s", e.text);
	}
	assert_int_equal(a->npeers, 1);
	assert_int_equal(a->ngraveyard, 1);
	assert_string_equal(a->graveyard[0]->name, "extra");
	assert_string_equal(a->cfg.model, model);
}

static void test_pair_reload(void **state)
{
	uint64_t plain[MAX_AGENTS];
	struct fleet *fl = plain_pair(plain);

	(void)state;
	fleet_make(fl, 2, false, "");
	fl->mid_run = reload_mid_run;
	fleet_run(fl);
	/* The maths did not change: the added peer never took part in a step. */
	for (int j = 0; j < 2; j++) {
		assert_true(fl->digest[j] == plain[j]);
	}
	fleet_remove(fl);
	free(fl);
}

static void on_resume(uv_timer_t *t)
{
	struct fleet *fl = t->data;
	struct macc_errmsg e;

	assert_int_equal(fl->agent[1]->state, MACC_CTL_STATE_PAUSED);
	assert_int_equal(round_request(fl->agent[1], ROUND_REQ_RESUME, &e), 0);
	uv_close((uv_handle_t *)t, NULL);
}

/* Agent 1 pauses at the end of its round for a second: agent 0's next rounds end at their
 * timeout without its state, which is folded (counted as missed); then agent 1 resumes, catches
 * up (a single neighbour's round may be adopted) and both runs end. */
static void pause_one(struct fleet *fl)
{
	struct macc_errmsg e;

	assert_int_equal(round_request(fl->agent[1], ROUND_REQ_PAUSE, &e), 0);
	uv_timer_init(&fl->loop, &fl->later);
	fl->later.data = fl;
	uv_timer_start(&fl->later, on_resume, 1000, 0);
}

static void test_pair_lost_state(void **state)
{
	uint64_t plain[MAX_AGENTS];
	struct fleet *fl = plain_pair(plain);

	(void)state;
	assert_int_equal(fl->metrics[0].neighbours_missed_total, 0);
	fleet_make(fl, 2, false, "");
	fl->round_timeout_ms = 300;
	for (int j = 0; j < 2; j++) {
		write_conf(fl, j, "", "");
	}
	fl->mid_run = pause_one;
	fleet_run(fl);
	assert_true(fl->metrics[0].neighbours_missed_total > 0);
	assert_true(fl->digest[0] != plain[0]); /* what was folded changed the model */
	fleet_remove(fl);
	free(fl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring3_matches_sim),
		cmocka_unit_test(test_pair_sealed_equals_plain),
		cmocka_unit_test(test_pair_reload),
		cmocka_unit_test(test_pair_lost_state),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
