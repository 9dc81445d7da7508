/* SPDX-License-Identifier: MIT */
/*
 * fuzz_replicate.c - what wsync-replicate reads from the network
 * (replicate.h) on hostile bytes: the input is split into lines, each
 * parsed as a message (ws_replicate_parse_msg), and the whole input is
 * also parsed as the head of an HTTP request (ws_replicate_http_parse).
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/replicate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_replicate_http_req req;
	const char *p = (const char *)data, *nl;
	char err[WS_ERRLEN];
	json_t *m;
	size_t off = 0, n;
	int rc;

	while (off < size) {
		nl = memchr(p + off, '\n', size - off);
		n = nl ? (size_t)(nl - (p + off)) : size - off;
		rc = ws_replicate_parse_msg(p + off, n, &m, err);
		if (rc == 0) {
			FUZZ_CHECK(json_is_object(m));
			FUZZ_CHECK(json_is_string(json_object_get(m, "mt")));
			json_decref(m);
		} else {
			FUZZ_CHECK(rc == WS_EJSON && m == NULL);
		}
		off += n + 1;
	}

	rc = ws_replicate_http_parse(p, size, &req, err);
	if (rc == 1) {
		FUZZ_CHECK(req.head_len <= size);
		FUZZ_CHECK(req.method == p && req.method_len > 0);
		FUZZ_CHECK(req.path > p && req.path + req.path_len <= p + req.head_len);
		FUZZ_CHECK(strlen(req.session) < sizeof(req.session));
		FUZZ_CHECK(req.wait_s <= 300);
	} else {
		FUZZ_CHECK(rc == 0 || rc == WS_ECORRUPT || rc == WS_ETOOBIG);
	}
	return 0;
}
