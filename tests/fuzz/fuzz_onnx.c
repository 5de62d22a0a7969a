/*
 * fuzz_onnx.c - the ONNX reader (src/export/onnx.c, macc_onnx_decode) on arbitrary bytes.
 *
 * Whatever the reader accepts must be a model macc can run and write again: it is exported
 * once more, that export must decode, and both must hold the same spec, parameters and
 * metadata (the writer and the reader are each other's oracle). The seeds are small exports
 * (tests/fuzz/corpus/onnx/), so mutations reach the graph check, the initializers and the
 * digest, not only protobuf-c's unpacker.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "macc/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct macc_onnx_model a = {0}, b = {0};
	struct macc_onnx_info info;
	struct macc_errmsg err;
	uint8_t *buf = NULL;
	size_t len = 0, np;

	if (macc_onnx_decode(data, size, "fuzz", 4, &a, &err) != 0) {
		return 0;
	}
	np = macc_model_nparams(a.model);
	info.agent = a.agent;
	info.round = a.round;
	if (macc_onnx_encode(a.model, a.params, &info, &buf, &len, &err) != 0 ||
	    macc_onnx_decode(buf, len, "again", 4, &b, &err) != 0 ||
	    strcmp(macc_model_spec(a.model), macc_model_spec(b.model)) != 0 ||
	    memcmp(a.params, b.params, np * sizeof(float)) != 0 || a.digest != b.digest ||
	    a.round != b.round || strcmp(a.agent, b.agent) != 0) {
		abort();
	}
	free(buf);
	macc_onnx_model_finish(&a);
	macc_onnx_model_finish(&b);
	return 0;
}
