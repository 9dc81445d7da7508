/* SPDX-License-Identifier: MIT */
/*
 * fuzz_delta.c - the batch decoder (delta.h) on hostile bytes.
 *
 * The input is a batch payload.  What decodes must re-encode to exactly
 * the input (the decoder accepts only the canonical form), and must map
 * to JSON and back (json.h) to the same batch, hence the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/delta.h"
#include "wsync/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_batch b, b2;
	struct ws_buf enc = WS_BUF_INIT, enc2 = WS_BUF_INIT;
	char err[WS_ERRLEN];
	json_t *obj = NULL;
	int rc;

	ws_batch_init(&b);
	ws_batch_init(&b2);
	rc = ws_batch_decode(&b, data, size, err);
	if (rc) {
		FUZZ_CHECK(rc < 0 && b.nchanges == 0 && b.ntables == 0);
		goto out;
	}
	FUZZ_CHECK(ws_batch_encode(&b, &enc) == 0);
	FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);

	obj = json_object();
	FUZZ_CHECK(obj != NULL);
	FUZZ_CHECK(ws_json_from_batch(&b, obj) == 0);
	rc = ws_json_to_batch(obj, &b2, err);
	if (rc)
		fprintf(stderr, "json back to batch: %s\n", err);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(ws_batch_encode(&b2, &enc2) == 0);
	FUZZ_CHECK(enc2.len == size && memcmp(enc2.p, data, size) == 0);
out:
	json_decref(obj);
	ws_buf_release(&enc);
	ws_buf_release(&enc2);
	ws_batch_release(&b);
	ws_batch_release(&b2);
	return 0;
}
