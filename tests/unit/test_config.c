/*
 * test_config.c - the agent config parser: a full valid file, every default, every error path
 * (each error must name file, line, key and value), streaming use, file loading and the reload
 * diff.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "macc/config.h"

#define K1 "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
#define K2 "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="
#define K3 "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="

static const char full[] =
	"# reference config\n"
	"[agent]\n"
	"name = alpha\n"
	"listen = [::1]:7001   # loopback v6\n"
	"key_file = /tmp/k.key\n"
	"state_dir = /tmp/state\n"
	"control_socket = /tmp/a.sock\n"
	"log_level = debug\n"
	"\n"
	"[train]\n"
	"model = mlp:784-64-10\n"
	"data = csv:/tmp/a.csv;/tmp/b.csv\n"
	"shard = 1/4\n"
	"partition = dirichlet:0.5\n"
	"algorithm = cdmsgd\n"
	"lr = 0.05\n"
	"lr_schedule = step:10:0.5\n"
	"momentum = 0.8\n"
	"omega = 0.5\n"
	"nesterov = yes\n"
	"weight_decay = 1e-4\n"
	"batch = 32\n"
	"rounds = 500\n"
	"seed = 42\n"
	"threads = 2\n"
	"round_timeout_ms = 1000\n"
	"dead_peer_timeout_ms = 9000\n"
	"reconnect_grace_ms = 0\n"
	"checkpoint_every = 10\n"
	"eval_every = 50\n"
	"weights = explicit\n"
	"\n"
	"[peer]\r\n"
	"name = beta\n"
	"endpoint = 127.0.0.1:7002\n"
	"public_key = " K1 "\n"
	"weight = 0.25\n"
	"; another\n"
	"[peer]\n"
	"name = gamma\n"
	"endpoint = host-3.example:7003\n"
	"public_key = " K2 "\n"
	"weight = 0.5\n";

static int parse(const char *text, struct macc_config *c, struct macc_errmsg *e)
{
	memset(e, 0, sizeof(*e));
	return macc_config_parse_string(text, strlen(text), "t.conf", c, e);
}

static void test_full(void **state)
{
	struct macc_config c;
	struct macc_errmsg e;
	char ep[300];

	(void)state;
	assert_int_equal(parse(full, &c, &e), 0);
	assert_string_equal(c.file, "t.conf");
	assert_string_equal(c.name, "alpha");
	assert_string_equal(c.listen.host, "::1");
	assert_true(c.listen.v6);
	assert_int_equal(c.listen.port, 7001);
	assert_string_equal(macc_endpoint_format(&c.listen, ep, sizeof(ep)), "[::1]:7001");
	assert_string_equal(c.key_file, "/tmp/k.key");
	assert_string_equal(c.state_dir, "/tmp/state");
	assert_string_equal(c.control_socket, "/tmp/a.sock");
	assert_int_equal(c.log_level, MACC_LOG_DEBUG);
	assert_string_equal(c.model, "mlp:784-64-10");
	assert_string_equal(c.data, "csv:/tmp/a.csv;/tmp/b.csv");
	assert_true(c.has_shard);
	assert_int_equal(c.shard_index, 1);
	assert_int_equal(c.shard_count, 4);
	assert_string_equal(c.partition, "dirichlet:0.5");
	assert_int_equal(c.algorithm, MACC_ALGO_CDMSGD);
	assert_true(c.lr == 0.05);
	assert_string_equal(c.lr_schedule, "step:10:0.5");
	assert_true(c.momentum == 0.8);
	assert_true(c.omega == 0.5);
	assert_true(c.nesterov);
	assert_true(c.weight_decay == 1e-4);
	assert_int_equal(c.batch, 32);
	assert_int_equal(c.rounds, 500);
	assert_int_equal(c.epochs, 0);
	assert_int_equal(c.seed, 42);
	assert_int_equal(c.threads, 2);
	assert_int_equal(c.round_timeout_ms, 1000);
	assert_int_equal(c.dead_peer_timeout_ms, 9000);
	assert_int_equal(c.reconnect_grace_ms, 0);
	assert_int_equal(c.checkpoint_every, 10);
	assert_int_equal(c.eval_every, 50);
	assert_int_equal(c.weights, MACC_CONFIG_WEIGHTS_EXPLICIT);
	assert_int_equal(c.npeers, 2);
	assert_string_equal(c.peers[0].name, "beta");
	assert_string_equal(c.peers[0].endpoint.host, "127.0.0.1");
	assert_int_equal(c.peers[0].endpoint.port, 7002);
	assert_false(c.peers[0].endpoint.v6);
	assert_int_equal(c.peers[0].public_key.bytes[0], 1);
	assert_int_equal(c.peers[0].public_key.bytes[31], 1);
	assert_string_equal(c.peers[0].public_key_b64, K1);
	assert_true(c.peers[0].has_weight);
	assert_true(c.peers[0].weight == 0.25);
	assert_int_equal(c.peers[0].line, 33);
	assert_string_equal(c.peers[1].name, "gamma");
	assert_string_equal(c.peers[1].endpoint.host, "host-3.example");
	assert_int_equal(c.peers[1].public_key.bytes[5], 2);
	assert_int_equal(c.peers[1].line, 39);
	assert_int_equal(macc_config_find_peer(&c, &c.peers[1].public_key), 1);
	macc_config_finish(&c);
	assert_null(c.peers);
}

static void test_defaults(void **state)
{
	struct macc_config c;
	struct macc_errmsg e;

	(void)state;
	assert_int_equal(parse("[agent]\nname=solo\n", &c, &e), 0);
	assert_string_equal(c.name, "solo");
	assert_string_equal(c.listen.host, "0.0.0.0");
	assert_int_equal(c.listen.port, MACC_CONFIG_DEFAULT_PORT);
	assert_string_equal(c.key_file, "/etc/macc/agent.key");
	assert_string_equal(c.state_dir, "/var/lib/macc");
	assert_string_equal(c.control_socket, MACC_CONFIG_DEFAULT_SOCKET);
	assert_int_equal(c.log_level, MACC_LOG_INFO);
	assert_string_equal(c.model, "mlp:784-256-128-10");
	assert_string_equal(c.data, "fashion-mnist");
	assert_false(c.has_shard);
	assert_string_equal(c.partition, "iid");
	assert_int_equal(c.algorithm, MACC_ALGO_DMSGD);
	assert_true(c.lr == 0.01);
	assert_string_equal(c.lr_schedule, "const");
	assert_true(c.momentum == 0.9);
	assert_true(c.omega == 1.0);
	assert_false(c.nesterov);
	assert_true(c.weight_decay == 0);
	assert_int_equal(c.batch, 64);
	assert_int_equal(c.epochs, 1);
	assert_int_equal(c.rounds, 0);
	assert_int_equal(c.seed, 1);
	assert_int_equal(c.threads, 1);
	assert_int_equal(c.round_timeout_ms, 5000);
	assert_int_equal(c.dead_peer_timeout_ms, 30000);
	assert_int_equal(c.reconnect_grace_ms, 500);
	assert_int_equal(c.checkpoint_every, 100);
	assert_int_equal(c.eval_every, 0);
	assert_int_equal(c.weights, MACC_CONFIG_WEIGHTS_METROPOLIS);
	assert_int_equal(c.npeers, 0);
	assert_null(c.peers);
	macc_config_finish(&c);
	macc_config_finish(NULL);
}

/* Each bad input: the text, and substrings the error must contain (file:line, key, value). */
struct bad {
	const char *text;
	const char *expect[4];
};

#define A "[agent]\nname = a\n"
#define P(n, port, key) "[peer]\nname = " n "\nendpoint = 10.0.0.1:" port "\npublic_key = " key "\n"

static const struct bad bads[] = {
	/* structure */
	{ "name = a\n", { "t.conf:1:", "'name'", "outside a section" } },
	{ "[agent\nname = a\n", { "t.conf:1:", "bad section header" } },
	{ "[agent] x\n", { "t.conf:1:", "bad section header" } },
	{ "[agents]\n", { "t.conf:1:", "unknown section [agents]" } },
	{ A "[agent]\n", { "t.conf:3:", "repeated (first at line 1)" } },
	{ A "[train]\n[train]\n", { "t.conf:4:", "[train] repeated" } },
	{ A "justtext\n", { "t.conf:3:", "expected 'key = value'", "justtext" } },
	{ A " = 5\n", { "t.conf:3:", "missing key", "'5'" } },
	{ A "name = b\n", { "t.conf:3:", "'name' = 'b'", "duplicate key" } },
	{ A "nmae = b\n", { "t.conf:3:", "'nmae' = 'b'", "unknown key in [agent]" } },
	{ A "log_level =\n", { "t.conf:3:", "'log_level'", "empty value" } },
	{ "", { "t.conf:", "missing section [agent]" } },
	{ "[agent]\nlisten = 1.2.3.4:5\n", { "t.conf:1:", "missing key 'name'" } },
	/* [agent] values */
	{ "[agent]\nname = a b\n", { "t.conf:2:", "'name' = 'a b'", "A-Z a-z" } },
	{ "[agent]\nname = a/b\n", { "t.conf:2:", "a/b" } },
	{ "[agent]\nname = "
	  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	  { "t.conf:2:", "'name'", "1 to 63" } },
	{ A "listen = 1.2.3.4\n", { "t.conf:3:", "'listen' = '1.2.3.4'", "HOST:PORT" } },
	{ A "listen = 1.2.3.4:0\n", { "t.conf:3:", "'listen'", "port must be 1 to 65535" } },
	{ A "listen = 1.2.3.4:65536\n", { "t.conf:3:", "port must be" } },
	{ A "listen = 1.2.3.4:8x\n", { "t.conf:3:", "port must be" } },
	{ A "listen = ::1:80\n", { "t.conf:3:", "'::1:80'", "need brackets" } },
	{ A "listen = [::1:80\n", { "t.conf:3:", "missing ']'" } },
	{ A "listen = []:80\n", { "t.conf:3:", "IPv6 address length" } },
	{ A "listen = [::1]80\n", { "t.conf:3:", "expected ':PORT'" } },
	{ A "listen = [1.2.3.4]:80\n", { "t.conf:3:", "not an IPv6 address" } },
	{ A "listen = [::1/]:80\n", { "t.conf:3:", "bad character '/'" } },
	{ A "listen = :80\n", { "t.conf:3:", "host is empty" } },
	{ A "listen = ho$t:80\n", { "t.conf:3:", "bad character '$'" } },
	{ A "log_level = loud\n", { "t.conf:3:", "'log_level' = 'loud'", "error, warn" } },
	{ A "control_socket = /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
	  { "t.conf:3:", "'control_socket'", "too long (at most 107" } },
	{ A "key_file = a\tb\n", { "t.conf:3:", "'key_file'", "control character" } },
	/* [train] values */
	{ A "[train]\nmodel = mlp 1\n", { "t.conf:4:", "'model' = 'mlp 1'", "space" } },
	{ A "[train]\nshard = 3\n", { "t.conf:4:", "'shard' = '3'", "INDEX/COUNT" } },
	{ A "[train]\nshard = 4/4\n", { "t.conf:4:", "'4/4'", "less than the count" } },
	{ A "[train]\nshard = 0/0\n", { "t.conf:4:", "COUNT 1 to" } },
	{ A "[train]\nshard = /4\n", { "t.conf:4:", "INDEX/COUNT" } },
	{ A "[train]\nshard = -1/4\n", { "t.conf:4:", "INDEX/COUNT" } },
	{ A "[train]\npartition = random\n", { "t.conf:4:", "'random'", "iid, label-shards" } },
	{ A "[train]\npartition = label-shards:0\n", { "t.conf:4:", "K >= 1" } },
	{ A "[train]\npartition = label-shards:x\n", { "t.conf:4:", "K >= 1" } },
	{ A "[train]\npartition = dirichlet:0\n", { "t.conf:4:", "ALPHA > 0" } },
	{ A "[train]\npartition = dirichlet:nan\n", { "t.conf:4:", "ALPHA > 0" } },
	{ A "[train]\nalgorithm = adam\n", { "t.conf:4:", "'adam'", "dmsgd, cdmsgd" } },
	{ A "[train]\nalgorithm = centralized\n", { "t.conf:4:", "only in macc-sim" } },
	{ A "[train]\nlr = 0\n", { "t.conf:4:", "'lr' = '0'", "out of range" } },
	{ A "[train]\nlr = -1\n", { "t.conf:4:", "out of range" } },
	{ A "[train]\nlr = fast\n", { "t.conf:4:", "'fast'", "finite number" } },
	{ A "[train]\nlr = inf\n", { "t.conf:4:", "finite number" } },
	{ A "[train]\nlr = 1e999\n", { "t.conf:4:", "finite number" } },
	{ A "[train]\nlr = 0.1x\n", { "t.conf:4:", "finite number" } },
	{ A "[train]\nlr_schedule = linear\n", { "t.conf:4:", "'linear'", "const, cosine" } },
	{ A "[train]\nlr_schedule = step:0:0.5\n", { "t.conf:4:", "EVERY (epochs) >= 1" } },
	{ A "[train]\nlr_schedule = step:5\n", { "t.conf:4:", "step:EVERY:GAMMA" } },
	{ A "[train]\nlr_schedule = step::0.5\n", { "t.conf:4:", "step:EVERY:GAMMA" } },
	{ A "[train]\nlr_schedule = step:5:2\n", { "t.conf:4:", "GAMMA in (0, 1]" } },
	{ A "[train]\nmomentum = 1\n", { "t.conf:4:", "'momentum' = '1'", "[0, 1)" } },
	{ A "[train]\nomega = 1.5\n", { "t.conf:4:", "'omega'", "[0, 1]" } },
	{ A "[train]\nnesterov = maybe\n", { "t.conf:4:", "'maybe'", "true or false" } },
	{ A "[train]\nweight_decay = -0.1\n", { "t.conf:4:", "'weight_decay'" } },
	{ A "[train]\nbatch = 0\n", { "t.conf:4:", "'batch' = '0'", "1 to 65536" } },
	{ A "[train]\nbatch = 70000\n", { "t.conf:4:", "1 to 65536" } },
	{ A "[train]\nbatch = -5\n", { "t.conf:4:", "non-negative integer" } },
	{ A "[train]\nbatch = 5.5\n", { "t.conf:4:", "non-negative integer" } },
	{ A "[train]\nseed = 99999999999999999999999\n", { "t.conf:4:", "non-negative integer" } },
	{ A "[train]\nepochs = 0\n", { "t.conf:4:", "'epochs'" } },
	{ A "[train]\nepochs = 2\nrounds = 5\n", { "t.conf:5:", "'rounds' = '5'",
						     "cannot both be set" } },
	{ A "[train]\nrounds = 5\nepochs = 2\n", { "t.conf:5:", "'epochs'", "cannot both" } },
	{ A "[train]\nthreads = 5000\n", { "t.conf:4:", "'threads'", "0 to 1024" } },
	{ A "[train]\nround_timeout_ms = 0\n", { "t.conf:4:", "'round_timeout_ms'" } },
	{ A "[train]\ndead_peer_timeout_ms = 0\n", { "t.conf:4:", "'dead_peer_timeout_ms'" } },
	{ A "[train]\nreconnect_grace_ms = 3600001\n", { "t.conf:4:", "'reconnect_grace_ms'" } },
	{ A "[train]\ncheckpoint_every = 4294967296\n", { "t.conf:4:", "'checkpoint_every'" } },
	{ A "[train]\neval_every = x\n", { "t.conf:4:", "'eval_every'" } },
	{ A "[train]\nweights = random\n", { "t.conf:4:", "'weights' = 'random'",
					     "metropolis, uniform" } },
	{ A "[train]\nround_timeout_ms = 5000\ndead_peer_timeout_ms = 100\n",
	  { "t.conf:3:", "dead_peer_timeout_ms (100) must be at least round_timeout_ms" } },
	{ A "[train]\nbogus = 1\n", { "t.conf:4:", "'bogus' = '1'", "unknown key in [train]" } },
	/* [peer] */
	{ A "[peer]\nname = b\nendpoint = 1.2.3.4:5\n", { "t.conf:3:", "'b'",
							  "missing key 'public_key'" } },
	{ A "[peer]\nname = b\npublic_key = " K1 "\n", { "t.conf:3:",
							 "missing key 'endpoint'" } },
	{ A "[peer]\nendpoint = 1.2.3.4:5\n", { "t.conf:3:", "missing key 'name'" } },
	{ A "[peer]\npublic_key = AQEB\n", { "t.conf:4:", "'public_key' = 'AQEB'",
					     "44 characters" } },
	{ A "[peer]\npublic_key = AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ!=\n",
	  { "t.conf:4:", "'public_key'", "not a base64 public key" } },
	{ A "[peer]\nendpoint = 1.2.3.4\n", { "t.conf:4:", "'endpoint' = '1.2.3.4'" } },
	{ A "[peer]\nweight = 2\n", { "t.conf:4:", "'weight' = '2'", "(0, 1]" } },
	{ A "[peer]\nname = b\nname = c\n", { "t.conf:5:", "'name' = 'c'", "duplicate key" } },
	{ A "[peer]\ncolour = red\n", { "t.conf:4:", "'colour' = 'red'",
					"unknown key in [peer]" } },
	{ A P("a", "1", K1), { "t.conf:3:", "agent's own name" } },
	{ A P("b", "1", K1) P("b", "2", K2), { "t.conf:7:", "'b'", "duplicate peer name",
					       "line 3" } },
	{ A P("b", "1", K1) P("c", "2", K1),
	  { "t.conf:7:", "'c'", "same public_key as peer 'b'" } },
	{ A P("b", "1", K1) P("c", "1", K2), { "t.conf:7:", "same endpoint 10.0.0.1:1" } },
	{ A "[train]\nweights = explicit\n" P("b", "1", K1),
	  { "t.conf:5:", "missing key 'weight'" } },
	{ A P("b", "1", K1) "weight = 0.5\n", { "t.conf:3:", "needs weights = explicit" } },
	{ A "[train]\nweights = explicit\n" P("b", "1", K1) "weight = 0.7\n" P("c", "2", K2)
	    "weight = 0.7\n",
	  { "t.conf:3:", "sum to 1.4" } },
	{ A P("b", "1", K1) "weight = 0\n", { "t.conf:7:", "'weight' = '0'", "(0, 1]" } },
};

static void test_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct macc_config c;
		struct macc_errmsg e;
		int r = parse(bads[i].text, &c, &e);

		if (r != MACC_ECONFIG) {
			fail_msg("case %zu: expected MACC_ECONFIG, got %d for:\n%s", i, r,
				 bads[i].text);
		}
		for (size_t k = 0; k < 4 && bads[i].expect[k] != NULL; k++) {
			if (strstr(e.text, bads[i].expect[k]) == NULL) {
				fail_msg("case %zu: error '%s' lacks '%s'", i, e.text,
					 bads[i].expect[k]);
			}
		}
		/* On failure the struct is released. */
		assert_null(c.peers);
		assert_int_equal(c.npeers, 0);
	}
}

static void test_value_trimming_and_comments(void **state)
{
	struct macc_config c;
	struct macc_errmsg e;

	(void)state;
	assert_int_equal(parse("  [ agent ]  # hdr\n\tname\t=\tx-1.y_2\t# c\n"
			       "   ; comment\n   # comment\n"
			       "key_file = /a#b\n[train]\nnesterov = OFF\n",
			       &c, &e),
			 0);
	assert_string_equal(c.name, "x-1.y_2");
	assert_string_equal(c.key_file, "/a#b");
	assert_false(c.nesterov);
	macc_config_finish(&c);
}

static void test_long_line_and_nul(void **state)
{
	struct macc_config c;
	struct macc_errmsg e;
	size_t n = MACC_CONFIG_LINE_MAX + 100;
	char *t = malloc(n + 32);

	(void)state;
	assert_non_null(t);
	strcpy(t, "[agent]\nname = ");
	memset(t + strlen(t), 'a', n);
	t[15 + n] = '\0';
	assert_int_equal(macc_config_parse_string(t, strlen(t), "t.conf", &c, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "t.conf:2: line too long"));
	free(t);

	static const char nul[] = "[agent]\nname = a\0b\n";
	assert_int_equal(macc_config_parse_string(nul, sizeof(nul) - 1, "t.conf", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "t.conf:2: NUL byte"));
}

static void test_streaming(void **state)
{
	struct macc_config_parser p;
	struct macc_config c;
	struct macc_errmsg e;

	(void)state;
	macc_config_parser_init(&p, &c, "stream");
	assert_int_equal(macc_config_parser_line(&p, "[agent]", &e), 0);
	assert_int_equal(macc_config_parser_line(&p, "name = s\r\n", &e), 0);
	assert_int_equal(macc_config_parser_line(&p, "[peer]", &e), 0);
	assert_int_equal(macc_config_parser_line(&p, "name = p", &e), 0);
	assert_int_equal(macc_config_parser_line(&p, "endpoint = [fe80::1%eth0]:9", &e), 0);
	assert_int_equal(macc_config_parser_line(&p, "public_key = " K3, &e), 0);
	assert_int_equal(macc_config_parser_finish(&p, &e), 0);
	assert_string_equal(c.name, "s");
	assert_int_equal(c.npeers, 1);
	assert_string_equal(c.peers[0].endpoint.host, "fe80::1%eth0");
	assert_true(c.peers[0].endpoint.v6);
	macc_config_finish(&c);

	/* After an error, later lines return the same error and do not change it. */
	macc_config_parser_init(&p, &c, "stream");
	assert_int_equal(macc_config_parser_line(&p, "[oops]", &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "stream:1:"));
	assert_int_equal(macc_config_parser_line(&p, "[agent]", &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "stream:1:"));
	assert_int_equal(macc_config_parser_finish(&p, &e), MACC_ECONFIG);
	assert_null(c.peers);
}

static void test_many_peers(void **state)
{
	size_t cap = 200000;
	char *t = malloc(cap);
	size_t len = 0;
	struct macc_config c;
	struct macc_errmsg e;

	(void)state;
	assert_non_null(t);
	len += (size_t)snprintf(t + len, cap - len, "[agent]\nname = a\n");
	for (int i = 0; i <= MACC_CONFIG_MAX_PEERS; i++) {
		len += (size_t)snprintf(t + len, cap - len,
					"[peer]\nname = p%d\nendpoint = h:%d\npublic_key = "
					"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%04dA=\n",
					i, i + 1, i);
	}
	assert_int_equal(macc_config_parse_string(t, len, "t.conf", &c, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "too many [peer] sections"));
	/* Exactly the maximum is fine. */
	len = (size_t)(strstr(t, "[peer]\nname = p256\n") - t);
	assert_int_equal(macc_config_parse_string(t, len, "t.conf", &c, &e), 0);
	assert_int_equal(c.npeers, MACC_CONFIG_MAX_PEERS);
	macc_config_finish(&c);
	free(t);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/macc-test-config-XXXXXX";
	struct macc_config c;
	struct macc_errmsg e;
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, full, sizeof(full) - 1), (ssize_t)(sizeof(full) - 1));
	close(fd);
	assert_int_equal(macc_config_load(path, &c, &e), 0);
	assert_string_equal(c.file, path);
	assert_int_equal(c.npeers, 2);
	macc_config_finish(&c);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[agent]\nname = x\nlisten = 1:2:3\n", 32), 32);
	close(fd);
	assert_int_equal(macc_config_load(path, &c, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, path));
	assert_non_null(strstr(e.text, ":3: key 'listen' = '1:2:3'"));
	unlink(path);

	assert_int_equal(macc_config_load("/nonexistent/macc.conf", &c, &e), -ENOENT);
	assert_non_null(strstr(e.text, "/nonexistent/macc.conf"));
	assert_null(c.peers);
}

static void test_own_key(void **state)
{
	struct macc_config c;
	struct macc_errmsg e;
	struct macc_pubkey own;

	(void)state;
	assert_int_equal(parse(A P("b", "1", K1) P("c", "2", K2), &c, &e), 0);
	memset(own.bytes, 3, sizeof(own.bytes));
	assert_int_equal(macc_config_check_own_key(&c, &own, &e), 0);
	assert_int_equal(macc_config_find_peer(&c, &own), -1);
	memset(own.bytes, 2, sizeof(own.bytes));
	assert_int_equal(macc_config_check_own_key(&c, &own, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "t.conf:7: [peer] 'c': public_key is the agent's own key"));
	macc_config_finish(&c);
}

static void test_diff(void **state)
{
	struct macc_config a, b;
	struct macc_errmsg e;
	struct macc_config_diff d;
	bool seen_added = false, seen_removed = false, seen_rew = false;

	(void)state;
	assert_int_equal(parse(A "[train]\nweights = explicit\n" P("b", "1", K1) "weight = 0.2\n"
			       P("c", "2", K2) "weight = 0.2\n",
			       &a, &e),
			 0);
	/* b re-weighted and moved, c removed, d added. */
	assert_int_equal(parse(A "log_level = debug\n[train]\nweights = explicit\n"
			       "round_timeout_ms = 100\n"
			       P("b", "9", K1) "weight = 0.3\n" P("d", "3", K3) "weight = 0.1\n",
			       &b, &e),
			 0);
	assert_int_equal(macc_config_diff(&a, &b, &d), 0);
	assert_int_equal(d.nchanges, 3);
	for (size_t i = 0; i < d.nchanges; i++) {
		const struct macc_peer_change *ch = &d.changes[i];

		if (ch->kind == MACC_PEER_ADDED) {
			seen_added = true;
			assert_int_equal(ch->old_index, -1);
			assert_string_equal(b.peers[ch->new_index].name, "d");
		} else if (ch->kind == MACC_PEER_REMOVED) {
			seen_removed = true;
			assert_int_equal(ch->new_index, -1);
			assert_string_equal(a.peers[ch->old_index].name, "c");
		} else {
			assert_int_equal(ch->kind, MACC_PEER_REWEIGHTED | MACC_PEER_CHANGED);
			seen_rew = true;
			assert_string_equal(a.peers[ch->old_index].name, "b");
			assert_string_equal(b.peers[ch->new_index].name, "b");
		}
	}
	assert_true(seen_added && seen_removed && seen_rew);
	assert_string_equal(d.restart_key, "");
	assert_true(d.log_level_changed);
	assert_true(d.timeouts_changed);
	assert_false(d.weights_changed);
	macc_config_diff_finish(&d);
	macc_config_diff_finish(&d);

	/* Identical configs: nothing. */
	assert_int_equal(macc_config_diff(&a, &a, &d), 0);
	assert_int_equal(d.nchanges, 0);
	assert_false(d.log_level_changed || d.timeouts_changed || d.weights_changed);
	assert_string_equal(d.restart_key, "");
	macc_config_diff_finish(&d);
	macc_config_finish(&b);

	/* A key that needs a restart is named. */
	assert_int_equal(parse(A "[train]\nweights = explicit\nlr = 0.5\n" P("b", "1", K1)
			       "weight = 0.2\n" P("c", "2", K2) "weight = 0.2\n",
			       &b, &e),
			 0);
	assert_int_equal(macc_config_diff(&a, &b, &d), 0);
	assert_string_equal(d.restart_key, "lr");
	assert_int_equal(d.nchanges, 0);
	macc_config_diff_finish(&d);
	macc_config_finish(&b);
	assert_int_equal(parse(A "[train]\nweights = uniform\n" P("b", "1", K1) P("c", "2", K2),
			       &b, &e),
			 0);
	assert_int_equal(macc_config_diff(&a, &b, &d), 0);
	assert_true(d.weights_changed);
	assert_int_equal(d.nchanges, 2); /* both lost their explicit weight */
	macc_config_diff_finish(&d);
	macc_config_finish(&b);
	macc_config_finish(&a);
}

/* encrypt: default, both spellings, rekey schedule, bad values, restart on reload. */
static void test_encrypt(void **state)
{
	struct macc_config c, d;
	struct macc_errmsg e;
	struct macc_config_diff df;

	(void)state;
	assert_int_equal(parse("[agent]\nname=solo\n", &c, &e), 0);
	assert_true(c.encrypt); /* private by default */
	assert_true(c.rekey_bytes == (uint64_t)1 << 30);
	assert_true(c.rekey_frames == (uint64_t)1 << 20);
	macc_config_finish(&c);
	assert_int_equal(parse("[agent]\nname=solo\nencrypt = yes\nrekey_bytes = 4096\n"
			       "rekey_frames = 0\n", &c, &e), 0);
	assert_true(c.encrypt);
	assert_true(c.rekey_bytes == 4096);
	assert_true(c.rekey_frames == 0);
	assert_int_equal(parse("[agent]\nname=solo\nencrypt = no\n", &d, &e), 0);
	assert_false(d.encrypt);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "encrypt");
	macc_config_diff_finish(&df);
	macc_config_finish(&c);
	macc_config_finish(&d);
	assert_int_equal(parse("[agent]\nname=solo\nencrypt = maybe\n", &c, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "encrypt"));
	assert_non_null(strstr(e.text, "expected yes or no"));
	assert_int_equal(parse("[agent]\nname=solo\nrekey_bytes = -1\n", &c, &e), MACC_ECONFIG);
	assert_non_null(strstr(e.text, "rekey_bytes"));
	assert_int_equal(parse("[agent]\nname=solo\nencrypt = yes\nencrypt = no\n", &c, &e),
			 MACC_ECONFIG);
}

/* Robust mixing and the audit trail: defaults, good values, clear errors, which keys
 * a reload applies and which need a restart. */
static void test_robust_audit(void **state)
{
	static const char *const bad[][2] = {
		{ "[train]\naggregation = median\n", "expected mean, clip:TAU" },
		{ "[train]\naggregation = clip:0\n", "TAU > 0" },
		{ "[train]\naggregation = clip:nan\n", "TAU > 0" },
		{ "[train]\naggregation = clip:\n", "TAU > 0" },
		{ "[train]\naggregation = trimmed:0\n", "B from 1 to 64" },
		{ "[train]\naggregation = trimmed:65\n", "B from 1 to 64" },
		{ "[train]\naggregation = trimmed:1\n", "needs at least 3 peers" },
		{ "[train]\nscreen_factor = -1\n", "screen_factor" },
		{ "[train]\nscreen_factor = inf\n", "finite" },
		{ "audit = sometimes\n", "expected yes or no" },
		{ "audit_max_bytes = 100\n", "out of range" },
		{ "audit_files = 0\n", "audit_files" },
		{ "audit_evidence = yes\n", "needs audit = yes" },
	};
	struct macc_config c, d;
	struct macc_errmsg e;
	struct macc_config_diff df;
	char text[512];

	(void)state;
	assert_int_equal(parse("[agent]\nname=solo\n", &c, &e), 0);
	assert_string_equal(c.aggregation, "mean");
	assert_false(c.has_screen_factor);
	assert_int_equal(c.trim_b, 0);
	assert_false(c.audit);
	assert_false(c.audit_evidence);
	assert_true(c.audit_max_bytes == 1u << 20);
	assert_int_equal(c.audit_files, 4);
	macc_config_finish(&c);
	assert_int_equal(parse("[agent]\nname=solo\naudit = yes\naudit_max_bytes = 8192\n"
			       "audit_files = 2\naudit_evidence = yes\n"
			       "audit_evidence_max_bytes = 1000000\n[train]\n"
			       "aggregation = clip:0.5\nscreen_factor = 4\n", &c, &e), 0);
	assert_string_equal(c.aggregation, "clip:0.5");
	assert_true(c.has_screen_factor && c.screen_factor == 4.0);
	assert_true(c.audit && c.audit_evidence);
	assert_true(c.audit_max_bytes == 8192 && c.audit_files == 2);
	assert_true(c.audit_evidence_max_bytes == 1000000);
	/* a reload may change the rule and the factor ... */
	assert_int_equal(parse("[agent]\nname=solo\naudit = yes\naudit_max_bytes = 8192\n"
			       "audit_files = 2\naudit_evidence = yes\n"
			       "audit_evidence_max_bytes = 1000000\n[train]\n"
			       "aggregation = clip:auto\n", &d, &e), 0);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	/* ... but not the audit trail */
	assert_int_equal(parse("[agent]\nname=solo\n[train]\naggregation = clip:0.5\n"
			       "screen_factor = 4\n", &d, &e), 0);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "audit");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	macc_config_finish(&c);
	/* trimmed:1 with three peers */
	snprintf(text, sizeof(text), "[agent]\nname=solo\n[train]\naggregation = trimmed:1\n"
		 "[peer]\nname=a\nendpoint=h:1\npublic_key=%s\n[peer]\nname=b\nendpoint=h:2\n"
		 "public_key=%s\n[peer]\nname=c\nendpoint=h:3\npublic_key=%s\n", K1, K2, K3);
	assert_int_equal(parse(text, &c, &e), 0);
	assert_int_equal(c.trim_b, 1);
	macc_config_finish(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[agent]\nname=solo\n%s", bad[i][0]);
		assert_int_equal(parse(text, &c, &e), MACC_ECONFIG);
		if (strstr(e.text, bad[i][1]) == NULL) {
			fail_msg("'%s': error '%s' does not say '%s'", bad[i][0], e.text, bad[i][1]);
		}
	}
}

/* Each bad[i][0] as the value of [agent] key (line 3) is refused, naming the key, the line and
 * bad[i][1]. */
static void expect_refused(const char *key, const char *const (*bad)[2], size_t n)
{
	struct macc_config c;
	struct macc_errmsg e;
	char text[512], quoted[64];

	snprintf(quoted, sizeof(quoted), "'%s'", key);
	for (size_t i = 0; i < n; i++) {
		snprintf(text, sizeof(text), A "%s = %s\n", key, bad[i][0]);
		assert_int_equal(parse(text, &c, &e), MACC_ECONFIG);
		if (strstr(e.text, "t.conf:3:") == NULL || strstr(e.text, quoted) == NULL ||
		    strstr(e.text, bad[i][1]) == NULL) {
			fail_msg("%s = '%s': error '%s' does not say '%s'", key, bad[i][0], e.text,
				 bad[i][1]);
		}
	}
}

/* The change from config text `before` to `after` applies on reload (no restart key). */
static void expect_reloadable(const char *before, const char *after)
{
	struct macc_config c, d;
	struct macc_config_diff df;
	struct macc_errmsg e;

	assert_int_equal(parse(before, &c, &e), 0);
	assert_int_equal(parse(after, &d, &e), 0);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	macc_config_finish(&c);
}

/* max_rate in [agent] and [peer]: bytes/s, k/M/G powers of ten, 0 = unlimited, reloadable. */
static void test_max_rate(void **state)
{
	static const struct {
		const char *v;
		uint64_t want;
	} good[] = {
		{ "0", 0 }, { "1000", 1000 }, { "2000000", 2000000 }, { "1k", 1000 },
		{ "10M", 10000000 }, { "2.5M", 2500000 }, { "1G", 1000000000 },
		{ "1000G", 1000000000000ULL },
	};
	static const char *const bad[][2] = {
		{ "-1", "bytes per second" }, { "10K", "bytes per second" },
		{ "10 M", "bytes per second" }, { "1.5", "bytes per second" },
		{ "1e6", "bytes per second" }, { "0x100", "bytes per second" },
		{ "M", "bytes per second" }, { "", "empty value" },
		{ "999", "out of range" }, { "0.5k", "out of range" }, { "1001G", "out of range" },
		{ "10Mi", "bytes per second" },
	};
	struct macc_config c;
	struct macc_errmsg e;
	char text[512];

	(void)state;
	assert_int_equal(parse(A, &c, &e), 0);
	assert_true(c.max_rate == 0);
	macc_config_finish(&c);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), A "max_rate = %s\n[peer]\nname = b\nendpoint = "
			 "127.0.0.1:7001\npublic_key = " K1 "\nmax_rate = %s\n", good[i].v, good[i].v);
		if (parse(text, &c, &e) != 0) {
			fail_msg("max_rate = %s: %s", good[i].v, e.text);
		}
		assert_true(c.max_rate == good[i].want);
		assert_true(c.peers[0].max_rate == good[i].want);
		macc_config_finish(&c);
	}
	expect_refused("max_rate", bad, sizeof(bad) / sizeof(bad[0]));
	/* Both apply on reload. */
	expect_reloadable(A "[peer]\nname = b\nendpoint = 127.0.0.1:7001\npublic_key = " K1 "\n",
			  A "max_rate = 5M\n[peer]\nname = b\nendpoint = 127.0.0.1:7001\n"
			  "public_key = " K1 "\nmax_rate = 2M\n");
}

/* tcp_congestion: unset by default, a kernel-style name (checked against the kernel by the
 * daemon, not the parser), too long or other characters refused, applies on reload. */
static void test_tcp_congestion(void **state)
{
	static const char *const good[] = { "cubic", "reno", "bbr", "htcp", "x_y-2" };
	static const char *const bad[][2] = {
		{ "Cubic", "expected the name" }, { "cu bic", "expected the name" },
		{ "cubic;", "expected the name" }, { "a23456789012345x", "too long" },
		{ "", "empty value" },
	};
	struct macc_config c;
	struct macc_errmsg e;
	char text[512];

	(void)state;
	assert_int_equal(parse(A, &c, &e), 0);
	assert_string_equal(c.tcp_congestion, "");
	macc_config_finish(&c);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(text, sizeof(text), A "tcp_congestion = %s\n", good[i]);
		if (parse(text, &c, &e) != 0) {
			fail_msg("tcp_congestion = %s: %s", good[i], e.text);
		}
		assert_string_equal(c.tcp_congestion, good[i]);
		macc_config_finish(&c);
	}
	expect_refused("tcp_congestion", bad, sizeof(bad) / sizeof(bad[0]));
	expect_reloadable(A, A "tcp_congestion = reno\n");
}

/* Hostile-peer keys: defaults, values, ranges and cross-checks, and which need a restart. */
static void test_hostile_keys(void **state)
{
	static const char *const bad[][2] = {
		{ "handshake_timeout_ms = 50\n", "out of range" },
		{ "max_unauthenticated = 0\n", "out of range" },
		{ "ping_rate = 0\n", "out of range" },
		{ "send_queue_max_bytes = 1000\n", "at least 65536" },
		{ "control_max_clients = 1\n", "out of range" },
		{ "control_max_clients = 8\ncontrol_reserved_clients = 8\n",
		  "control_reserved_clients (8) must be less than control_max_clients (8)" },
		{ "control_idle_timeout_ms = 10\n", "out of range" },
		{ "[train]\nrejoin_quorum = 257\n", "out of range" },
		{ "[train]\nrejoin_interval_ms = -1\n", "non-negative integer" },
		{ "[train]\nstate_value_max = -1\n", "out of range" },
		{ "[train]\nstate_value_max = 1e39\n", "out of range" },
		{ "[train]\nstate_value_max = nan\n", "finite" },
	};
	struct macc_config c, d;
	struct macc_config_diff df;
	struct macc_errmsg e;
	char text[512];

	(void)state;
	assert_int_equal(parse("[agent]\nname=solo\n", &c, &e), 0);
	assert_int_equal(c.handshake_timeout_ms, 10000);
	assert_int_equal(c.max_unauthenticated, 32);
	assert_int_equal(c.ping_rate, 20);
	assert_true(c.send_queue_max_bytes == 0);
	assert_int_equal(c.control_max_clients, 64);
	assert_int_equal(c.control_reserved_clients, 4);
	assert_int_equal(c.control_idle_timeout_ms, 30000);
	assert_int_equal(c.rejoin_quorum, 0);
	assert_int_equal(c.rejoin_interval_ms, 10000);
	assert_true(c.state_value_max == 1e6);
	macc_config_finish(&c);
	assert_int_equal(parse("[agent]\nname=solo\nhandshake_timeout_ms = 1500\n"
			       "max_unauthenticated = 8\nping_rate = 5\n"
			       "send_queue_max_bytes = 65536\ncontrol_max_clients = 8\n"
			       "control_reserved_clients = 0\ncontrol_idle_timeout_ms = 1500\n"
			       "[train]\nrejoin_quorum = 1\nrejoin_interval_ms = 0\n"
			       "state_value_max = 0\n", &c, &e), 0);
	assert_int_equal(c.handshake_timeout_ms, 1500);
	assert_int_equal(c.max_unauthenticated, 8);
	assert_int_equal(c.ping_rate, 5);
	assert_true(c.send_queue_max_bytes == 65536);
	assert_int_equal(c.control_max_clients, 8);
	assert_int_equal(c.control_reserved_clients, 0);
	assert_int_equal(c.control_idle_timeout_ms, 1500);
	assert_int_equal(c.rejoin_quorum, 1);
	assert_int_equal(c.rejoin_interval_ms, 0);
	assert_true(c.state_value_max == 0.0);
	/* The peer limits and the rules reload; the control server's limits need a restart. */
	assert_int_equal(parse("[agent]\nname=solo\nhandshake_timeout_ms = 2500\n"
			       "control_max_clients = 8\ncontrol_reserved_clients = 0\n"
			       "control_idle_timeout_ms = 1500\n[train]\nrejoin_quorum = 2\n"
			       "state_value_max = 1e7\n", &d, &e), 0);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	assert_int_equal(parse("[agent]\nname=solo\ncontrol_max_clients = 9\n"
			       "control_reserved_clients = 0\ncontrol_idle_timeout_ms = 1500\n",
			       &d, &e), 0);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "control_max_clients");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	macc_config_finish(&c);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "[agent]\nname=solo\n%s", bad[i][0]);
		assert_int_equal(parse(text, &c, &e), MACC_ECONFIG);
		if (strstr(e.text, bad[i][1]) == NULL) {
			fail_msg("'%s': error '%s' does not say '%s'", bad[i][0], e.text,
				 bad[i][1]);
		}
	}
}

/* Schedule, push-sum and compression keys: defaults, values, the cross-key checks (each error
 * names what is wrong), and
 * that they need a restart on reload. */
static void test_edge_keys(void **state)
{
	struct macc_config c, d;
	struct macc_errmsg e;
	struct macc_config_diff df;
	const char *ok = "[agent]\nname=a\n[train]\nshard = 1/4\ntopology = ring\n"
			 "schedule = exp-pairs\nlocal_steps = 4\ncompress = topk:0.1\n"
			 "gossip_step = 0.3\n";

	(void)state;
	assert_int_equal(parse("[agent]\nname=solo\n", &c, &e), 0);
	assert_int_equal(c.schedule, MACC_SCHEDULE_STATIC);
	assert_int_equal(c.local_steps, 1);
	assert_string_equal(c.compress, "none");
	assert_string_equal(c.topology, "");
	assert_false(c.sgp);
	macc_config_finish(&c);
	assert_int_equal(parse(ok, &c, &e), 0);
	assert_int_equal(c.schedule, MACC_SCHEDULE_EXP_PAIRS);
	assert_string_equal(c.topology, "ring");
	assert_int_equal(c.local_steps, 4);
	assert_string_equal(c.compress, "topk:0.1");
	assert_true(c.gossip_step == 0.3);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nshard = 1/4\ntopology = file:/x\n"
			       "algorithm = sgp\n", &d, &e), 0);
	assert_true(d.sgp);
	assert_int_equal(d.algorithm, MACC_ALGO_CDMSGD);
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "algorithm"); /* sgp is cdmsgd in push-sum form */
	macc_config_diff_finish(&df);
	macc_config_finish(&c);
	macc_config_finish(&d);

	assert_int_equal(parse("[agent]\nname=a\n[train]\ntopology = ring\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "needs key 'shard'"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\nschedule = random\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "expected static, matching or exp-pairs"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\ncompress = topk:1.5\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "topk:F needs a fraction F in (0, 1]"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\ncompress = gzip\n", &c, &e),
			 MACC_ECONFIG);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nlocal_steps = 0\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "local_steps"));
	/* Which options combine is the mixer's rule, checked by the daemon's start-up check
	 * (test_check): the parser takes what parses. */
	assert_int_equal(parse("[agent]\nname=a\n[train]\naggregation = clip:auto\n"
			       "compress = int8\n", &c, &e), 0);
	macc_config_finish(&c);
}

/* [train] blas_kernel: auto by default, OpenBLAS's names in any case, spelled back
 * canonically; anything else is an error naming key and value; a change needs a restart. */
static void test_blas_kernel(void **state)
{
	struct macc_config c, d;
	struct macc_errmsg e;
	struct macc_config_diff df;

	(void)state;
	assert_int_equal(parse("[agent]\nname=a\n", &c, &e), 0);
	assert_string_equal(c.blas_kernel, "auto");
	macc_config_finish(&c);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nblas_kernel = skylakex\n", &d, &e), 0);
	assert_string_equal(d.blas_kernel, "SkylakeX");
	assert_int_equal(parse("[agent]\nname=a\n[train]\nblas_kernel = AUTO\n", &c, &e), 0);
	assert_string_equal(c.blas_kernel, "auto");
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "blas_kernel");
	macc_config_diff_finish(&df);
	macc_config_finish(&c);
	macc_config_finish(&d);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nblas_kernel = Skylake\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "t.conf:4"));
	assert_non_null(strstr(e.text, "'blas_kernel' = 'Skylake'"));
	assert_non_null(strstr(e.text, "expected auto or an OpenBLAS kernel name"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\nblas_kernel = Cooperlake\n", &c, &e),
			 MACC_ECONFIG);
}

static void test_standardize_keys(void **state)
{
	struct macc_config c, d;
	struct macc_errmsg e;
	struct macc_config_diff df;

	(void)state;
	assert_int_equal(parse("[agent]\nname=a\n", &c, &e), 0);
	assert_int_equal(c.standardize, MACC_CONFIG_STD_AUTO);
	assert_int_equal(c.standardize_rounds, 50);
	assert_int_equal(c.standardize_diameter, 0);
	assert_int_equal(macc_config_key_line(&c, "train", "standardize"), 0);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize = no\nstandardize_rounds = 0\n"
			       "standardize_diameter = 7\n", &d, &e), 0);
	assert_int_equal(d.standardize, MACC_CONFIG_STD_NO);
	assert_int_equal(d.standardize_rounds, 0);
	assert_int_equal(d.standardize_diameter, 7);
	assert_int_equal(macc_config_key_line(&d, "train", "standardize_diameter"), 6);
	/* A restart is needed to change them (they shape the model's inputs). */
	assert_int_equal(macc_config_diff(&c, &d, &df), 0);
	assert_string_equal(df.restart_key, "standardize");
	macc_config_diff_finish(&df);
	macc_config_finish(&d);
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize = yes\n", &d, &e), 0);
	assert_int_equal(d.standardize, MACC_CONFIG_STD_YES);
	macc_config_finish(&d);
	macc_config_finish(&c);
	/* Errors name file, line, key and value. */
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize = maybe\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "t.conf:4"));
	assert_non_null(strstr(e.text, "'standardize' = 'maybe'"));
	assert_non_null(strstr(e.text, "expected auto, yes or no"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize_rounds = 10001\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "'standardize_rounds' = '10001'"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize_diameter = 0\n", &c, &e),
			 MACC_ECONFIG);
	assert_non_null(strstr(e.text, "'standardize_diameter' = '0'"));
	assert_int_equal(parse("[agent]\nname=a\n[train]\nstandardize = yes\nstandardize = no\n",
			       &c, &e),
			 MACC_ECONFIG);
}

static void test_endpoint(void **state)
{
	struct macc_endpoint ep;
	struct macc_errmsg e;
	char buf[300];

	(void)state;
	assert_int_equal(macc_endpoint_parse("localhost:80", &ep, &e), 0);
	assert_string_equal(macc_endpoint_format(&ep, buf, sizeof(buf)), "localhost:80");
	assert_int_equal(macc_endpoint_parse("[2001:db8::1]:65535", &ep, &e), 0);
	assert_int_equal(ep.port, 65535);
	assert_string_equal(macc_endpoint_format(&ep, buf, sizeof(buf)), "[2001:db8::1]:65535");
	assert_int_equal(macc_endpoint_parse("x:", &ep, &e), MACC_ECONFIG);
	assert_int_equal(macc_endpoint_parse("x:+5", &ep, &e), MACC_ECONFIG);
	assert_string_equal(macc_config_weights_name(MACC_CONFIG_WEIGHTS_UNIFORM), "uniform");
	assert_string_equal(macc_config_weights_name((enum macc_config_weights)7), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_value_trimming_and_comments),
		cmocka_unit_test(test_long_line_and_nul),
		cmocka_unit_test(test_streaming),
		cmocka_unit_test(test_many_peers),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_own_key),
		cmocka_unit_test(test_diff),
		cmocka_unit_test(test_encrypt),
		cmocka_unit_test(test_robust_audit),
		cmocka_unit_test(test_edge_keys),
		cmocka_unit_test(test_blas_kernel),
		cmocka_unit_test(test_hostile_keys),
		cmocka_unit_test(test_standardize_keys),
		cmocka_unit_test(test_max_rate),
		cmocka_unit_test(test_tcp_congestion),
		cmocka_unit_test(test_endpoint),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
