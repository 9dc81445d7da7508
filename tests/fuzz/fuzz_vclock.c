/* SPDX-License-Identifier: MIT */
/*
 * fuzz_vclock.c - the vector-clock decoders (vclock.h) on hostile bytes.
 *
 * The input is tried as the binary encoding (what decodes must re-encode
 * to the same bytes, and its text form must parse back to an equal
 * clock) and as the text form, with a few known site ids so that hex
 * prefixes resolve or are ambiguous.
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/vclock.h"

static const struct ws_siteid known[] = {
	{{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	  0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}},
	{{0xab, 0xcd, 0xef, 0x00, 0x11, 0x22, 0x33, 0x44,
	  0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc}},
	{{0xab, 0xce, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01}},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT;
	struct ws_buf enc = WS_BUF_INIT, txt = WS_BUF_INIT;
	char err[WS_ERRLEN];
	size_t i;
	int rc;

	rc = ws_vclock_decode_all(&a, data, size, err);
	if (rc == 0) {
		FUZZ_CHECK(ws_vclock_encode(&a, &enc) == 0);
		FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);
		FUZZ_CHECK(ws_vclock_format(&a, &txt) == 0);
		rc = ws_vclock_parse(&b, (const char *)txt.p, txt.len, NULL, 0, err);
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(ws_vclock_compare(&a, &b) == WS_VCLOCK_EQUAL);
	} else {
		FUZZ_CHECK(a.n == 0);
	}

	/* The same bytes as text. */
	rc = ws_vclock_parse(&b, (const char *)data, size, known,
	    sizeof(known) / sizeof(known[0]), err);
	if (rc == 0) {
		for (i = 0; i + 1 < b.n; i++)
			FUZZ_CHECK(ws_siteid_cmp(&b.e[i].site, &b.e[i + 1].site) < 0);
		for (i = 0; i < b.n; i++)
			FUZZ_CHECK(b.e[i].counter >= 1 &&
			    b.e[i].counter <= WS_VCLOCK_COUNTER_MAX);
		/* Its text form parses to the same clock. */
		txt.len = 0;
		FUZZ_CHECK(ws_vclock_format(&b, &txt) == 0);
		FUZZ_CHECK(ws_vclock_parse(&a, (const char *)txt.p, txt.len, NULL, 0,
		    err) == 0);
		FUZZ_CHECK(ws_vclock_compare(&a, &b) == WS_VCLOCK_EQUAL);
	}
	ws_vclock_release(&a);
	ws_vclock_release(&b);
	ws_buf_release(&enc);
	ws_buf_release(&txt);
	return 0;
}
