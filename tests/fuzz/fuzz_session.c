/* SPDX-License-Identifier: MIT */
/*
 * fuzz_session.c - the payloads of the session frames a hub reads before
 * anything else (session.h): HELLO and ADD.  They stand in for the
 * handshake until the encrypted one lands (then fuzz_handshake.c).
 * What decodes must re-encode to the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_hello h;
	struct ws_add a;
	struct ws_buf enc = WS_BUF_INIT;
	char err[WS_ERRLEN];

	if (ws_hello_decode(&h, data, size, err) == 0) {
		FUZZ_CHECK(h.version == WS_PROTOCOL_VERSION && h.role <= WS_ROLE_HUB);
		FUZZ_CHECK(ws_hello_encode(&h, &enc) == 0);
		FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);
	}
	memset(&a, 0, sizeof(a));
	ws_vclock_init(&a.clock);
	if (ws_add_decode(&a, data, size, err) == 0) {
		FUZZ_CHECK(ws_wsid_valid(a.wsid));
		enc.len = 0;
		FUZZ_CHECK(ws_add_encode(&a, &enc) == 0);
		FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);
	}
	ws_vclock_release(&a.clock);
	ws_buf_release(&enc);
	return 0;
}
