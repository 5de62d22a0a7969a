/*
 * fuzz_ctlproto.c - the control protocol decoders (src/proto/ctlproto.c) on arbitrary bytes.
 *
 * Input: byte 0 picks the decoder (even: request; odd: reply to command byte0/2 mod the
 * command count), the rest is a frame body. Whatever decodes is re-encoded and decoded again,
 * and the two decodings must agree (the codec is its own oracle). Also exercises the frame
 * header check on the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/buf.h"
#include "macc/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_request(const uint8_t *body, size_t n)
{
	struct macc_ctl_request a, b;
	struct macc_errmsg err;
	struct macc_buf buf;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	if (macc_ctl_request_decode(body, n, &a, &err) != 0) {
		return;
	}
	macc_buf_init(&buf, 0);
	if (macc_ctl_request_encode(&a, &buf) != 0 ||
	    macc_ctl_request_decode(buf.data + 4, buf.len - 4, &b, &err) != 0 || b.id != a.id ||
	    b.cmd != a.cmd || (a.cmd == MACC_CTL_CMD_LOG_LEVEL && a.level != b.level) ||
	    b.limit != a.limit || b.offset != a.offset || b.count != a.count ||
	    b.generation != a.generation || b.inputs_len != a.inputs_len ||
	    (a.inputs_len > 0 && memcmp(a.inputs, b.inputs, a.inputs_len) != 0)) {
		abort();
	}
	macc_buf_finish(&buf);
}

static void check_reply(const uint8_t *body, size_t n, enum macc_ctl_cmd cmd)
{
	struct macc_ctl_reply a, b;
	struct macc_errmsg err;
	struct macc_buf buf;

	if (macc_ctl_reply_decode(body, n, cmd, &a, &err) != 0) {
		return;
	}
	macc_buf_init(&buf, 0);
	if (macc_ctl_reply_encode(&a, &buf) != 0 ||
	    macc_ctl_reply_decode(buf.data + 4, buf.len - 4, cmd, &b, &err) != 0) {
		abort();
	}
	if (b.id != a.id || b.status != a.status || strcmp(a.error, b.error) != 0 ||
	    b.kind != a.kind || b.npeers != a.npeers || b.text_len != a.text_len ||
	    memcmp(a.st.name, b.st.name, sizeof(a.st.name)) != 0 || a.st.round != b.st.round ||
	    a.progress.final != b.progress.final) {
		abort();
	}
	for (size_t i = 0; i < a.npeers; i++) {
		if (strcmp(a.peers[i].name, b.peers[i].name) != 0 ||
		    a.peers[i].nrejected != b.peers[i].nrejected ||
		    a.peers[i].last_round != b.peers[i].last_round) {
			abort();
		}
	}
	if (a.text_len > 0 && memcmp(a.text, b.text, a.text_len) != 0) {
		abort();
	}
	if (a.model.data_len != b.model.data_len || a.model.total != b.model.total ||
	    a.model.generation != b.model.generation ||
	    (a.model.spec != NULL) != (b.model.spec != NULL) ||
	    (a.model.spec != NULL && strcmp(a.model.spec, b.model.spec) != 0) ||
	    (a.model.data_len > 0 && memcmp(a.model.data, b.model.data, a.model.data_len) != 0) ||
	    a.predict.values_len != b.predict.values_len || a.predict.rows != b.predict.rows ||
	    (a.predict.values_len > 0 &&
	     memcmp(a.predict.values, b.predict.values, a.predict.values_len) != 0)) {
		abort();
	}
	if (a.audit.nentries != b.audit.nentries || a.audit.entries_kept != b.audit.entries_kept ||
	    a.audit.enabled != b.audit.enabled || strcmp(a.audit.file, b.audit.file) != 0) {
		abort();
	}
	for (size_t i = 0; i < a.audit.nentries; i++) {
		if (memcmp(&a.audit.entries[i], &b.audit.entries[i], sizeof(a.audit.entries[i])) != 0) {
			abort();
		}
	}
	macc_ctl_reply_finish(&a);
	macc_ctl_reply_finish(&b);
	macc_buf_finish(&buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t blen;

	if (size < 1) {
		return 0;
	}
	(void)macc_ctl_frame_next(data + 1, size - 1, MACC_CTL_MAX_REQUEST, &blen);
	if (data[0] % 2 == 0) {
		check_request(data + 1, size - 1);
	} else {
		enum macc_ctl_cmd cmd = (enum macc_ctl_cmd)((data[0] / 2) % MACC_CTL_CMD_COUNT);

		check_reply(data + 1, size - 1, cmd);
	}
	return 0;
}
