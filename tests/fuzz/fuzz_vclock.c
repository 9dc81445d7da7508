/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vclock.c - the vector-clock decoders on hostile bytes: the binary
 * encoding (vclock.h) and the JSON object of JSON lines (json.h).
 *
 * The input is tried as the binary encoding (what decodes must re-encode
 * to the same bytes, and its JSON object must read back to an equal
 * clock) and as JSON text (a clock read from it is sorted, holds no zero
 * counter, and survives the binary encoding and its own JSON).  The
 * text form (ws_vclock_format) is only written, for messages.
 */
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "wsync/json.h"
#include "wsync/vclock.h"

/* b holds a's entries: to JSON and back gives an equal clock. */
static void json_roundtrip(const struct ws_vclock *a, struct ws_vclock *b)
{
	char err[WS_ERRLEN];
	json_t *j = ws_json_from_vclock(a);

	FUZZ_CHECK(j != NULL);
	FUZZ_CHECK(json_object_size(j) == a->n);
	FUZZ_CHECK(ws_json_to_vclock(j, b, err) == 0);
	FUZZ_CHECK(ws_vclock_compare(a, b) == WS_VCLOCK_EQUAL);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT;
	struct ws_buf enc = WS_BUF_INIT, txt = WS_BUF_INIT;
	char err[WS_ERRLEN];
	json_t *j;
	size_t i;
	int rc;

	rc = ws_vclock_decode_all(&a, data, size, err);
	if (rc == 0) {
		FUZZ_CHECK(ws_vclock_encode(&a, &enc) == 0);
		FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);
		FUZZ_CHECK(ws_vclock_format(&a, &txt) == 0);
		FUZZ_CHECK(txt.len >= a.n * (WS_SITEID_HEXLEN + 2));
		json_roundtrip(&a, &b);
	} else {
		FUZZ_CHECK(a.n == 0);
	}

	/* The same bytes as a JSON clock. */
	j = json_loadb((const char *)data, size, 0, NULL);
	if (j && ws_json_to_vclock(j, &b, err) == 0) {
		for (i = 0; i + 1 < b.n; i++)
			FUZZ_CHECK(ws_siteid_cmp(&b.e[i].site, &b.e[i + 1].site) < 0);
		for (i = 0; i < b.n; i++)
			FUZZ_CHECK(b.e[i].counter >= 1 &&
			    b.e[i].counter <= WS_VCLOCK_COUNTER_MAX);
		/* Its binary encoding decodes to the same clock (the JSON
		 * reader has no entry limit; the binary decoder has). */
		enc.len = 0;
		FUZZ_CHECK(ws_vclock_encode(&b, &enc) == 0);
		if (b.n <= WS_VCLOCK_MAX_ENTRIES) {
			FUZZ_CHECK(ws_vclock_decode_all(&a, enc.p, enc.len, err) == 0);
			FUZZ_CHECK(ws_vclock_compare(&a, &b) == WS_VCLOCK_EQUAL);
		}
		json_roundtrip(&b, &a);
	}
	json_decref(j);
	ws_vclock_release(&a);
	ws_vclock_release(&b);
	ws_buf_release(&enc);
	ws_buf_release(&txt);
	return 0;
}
