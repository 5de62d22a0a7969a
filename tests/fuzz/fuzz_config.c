/*
 * fuzz_config.c - the agent config parser (src/common/config.c) on arbitrary text.
 *
 * A config that parses must also diff cleanly against itself (no changes) and against the
 * defaults, and every error must come with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_config c, d;
	struct macc_config_diff diff;
	struct macc_errmsg err;
	int r;

	err.text[0] = '\0';
	r = macc_config_parse_string((const char *)data, size, "fuzz.conf", &c, &err);
	if (r != 0) {
		if (err.text[0] == '\0' || c.peers != NULL) {
			abort();
		}
		return 0;
	}
	if (macc_config_diff(&c, &c, &diff) != 0 || diff.nchanges != 0 ||
	    diff.restart_key[0] != '\0') {
		abort();
	}
	macc_config_diff_finish(&diff);
	macc_config_defaults(&d);
	if (macc_config_diff(&d, &c, &diff) != 0 || diff.nchanges != c.npeers) {
		abort();
	}
	macc_config_diff_finish(&diff);
	macc_config_finish(&c);
	return 0;
}
