/*
 * fuzz_wire_misc.c - fuzzes the decoding of PING, PONG and BYE (and whatever else the bytes
 * turn out to be). Decoded PING/PONG/BYE must re-encode and decode to the same values; a BYE
 * text is always NUL-terminated within its buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "macc/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_msg m, m2;
	struct macc_buf b;
	int rc = macc_msg_decode(data, size, 0, &m, NULL);

	if (rc > 0) {
		abort();
	}
	if (rc != 0) {
		return 0;
	}
	macc_buf_init(&b, 0);
	if (m.type == MACC_MSG_PING || m.type == MACC_MSG_PONG) {
		if (macc_ping_encode(&b, m.type, &m.u.ping) != 0) {
			abort();
		}
	} else if (m.type == MACC_MSG_BYE) {
		if (memchr(m.u.bye.text, '\0', sizeof(m.u.bye.text)) == NULL ||
		    macc_bye_encode(&b, m.u.bye.reason, m.u.bye.text) != 0) {
			abort();
		}
	}
	if (b.len > 0) {
		if (macc_msg_decode(b.data + MACC_FRAME_HDR, b.len - MACC_FRAME_HDR, 0, &m2, NULL) !=
			    0 ||
		    m2.type != m.type) {
			abort();
		}
		if (m.type == MACC_MSG_BYE ? (m2.u.bye.reason != m.u.bye.reason ||
					       strcmp(m2.u.bye.text, m.u.bye.text) != 0)
					    : memcmp(&m2.u.ping, &m.u.ping, sizeof(m.u.ping)) != 0) {
			abort();
		}
	}
	macc_buf_finish(&b);
	return 0;
}
