/* SPDX-License-Identifier: MIT */
/*
 * fuzz_replicate.c - what wsync-replicate reads from the network
 * (replicate.h) on hostile bytes: the input is split into lines, each
 * parsed as a message (ws_replicate_parse_msg), the column values of a
 * message's "columns", "key" and "rows" are converted as the replicator
 * binds them (ws_json_to_value).  The HTTP side has fuzz_http.c.
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/json.h"
#include "wsync/replicate.h"

/* Each member of an object of column values, as bind_json() takes them. */
static void values(const json_t *obj)
{
	struct ws_buf tmp = WS_BUF_INIT;
	struct ws_value v;
	const char *key;
	json_t *val;

	if (!json_is_object(obj))
		return;
	json_object_foreach((json_t *)obj, key, val) {
		tmp.len = 0;
		if (ws_json_to_value(val, &tmp, &v, NULL) == 0 &&
		    (v.type == WS_TEXT || v.type == WS_BLOB))
			FUZZ_CHECK(v.n == 0 || (v.p >= tmp.p && v.p + v.n <= tmp.p + tmp.len));
	}
	ws_buf_release(&tmp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *nl;
	char err[WS_ERRLEN];
	json_t *m, *rows;
	size_t off = 0, n, i;
	int rc;

	while (off < size) {
		nl = memchr(p + off, '\n', size - off);
		n = nl ? (size_t)(nl - (p + off)) : size - off;
		rc = ws_replicate_parse_msg(p + off, n, &m, err);
		if (rc == 0) {
			FUZZ_CHECK(json_is_object(m));
			FUZZ_CHECK(json_is_string(json_object_get(m, "mt")));
			values(json_object_get(m, "columns"));
			values(json_object_get(m, "key"));
			rows = json_object_get(m, "rows");
			for (i = 0; json_is_array(rows) && i < json_array_size(rows); i++)
				values(json_array_get(rows, i));
			json_decref(m);
		} else {
			FUZZ_CHECK(rc == WS_EJSON && m == NULL);
		}
		off += n + 1;
	}
	return 0;
}
