/* SPDX-License-Identifier: MIT */
/*
 * fuzz_schema.c - the schema-record decoder (schema.h) on hostile bytes.
 *
 * The input is a schema record.  What decodes must re-encode to exactly
 * the input (the decoder accepts only the canonical form), and must map
 * to JSON and back (json.h) to the same record, hence the same bytes;
 * a generation above 2^63-1 has no JSON form and must say so.  The input
 * is also the payload of a WS_FRAME_SCHEMA frame, whose JSON line must
 * come back as the same frame, or be refused as malformed when the
 * payload is neither a record nor one of another format (which travels
 * raw).
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/frame.h"
#include "wsync/json.h"
#include "wsync/schema.h"

/* The frame's JSON line, and back. */
static void frame_roundtrip(const uint8_t *data, size_t size, int decoded,
    int json_ok)
{
	struct ws_buf fb = WS_BUF_INIT, line = WS_BUF_INIT, back = WS_BUF_INIT;
	struct ws_frame f;
	struct ws_rd r;
	char err[WS_ERRLEN];
	uint64_t fmt;
	size_t used;
	int rc, other_format;

	ws_rd_init(&r, data, size);
	other_format = ws_rd_varint(&r, &fmt) == 0 && fmt != WS_SCHEMA_FORMAT;
	FUZZ_CHECK(ws_frame_put(&fb, WS_FRAME_SCHEMA, 0, 1, data, size) == 0);
	FUZZ_CHECK(ws_frame_parse(fb.p, fb.len, WS_FRAME_MAX_LIMIT, &f, &used) == 0);
	rc = ws_json_put_frame(&f, &line, err);
	if (other_format || (decoded && json_ok))
		FUZZ_CHECK(rc == 0);
	else
		FUZZ_CHECK(rc == WS_ECORRUPT && line.len == 0);
	if (rc == 0) {
		FUZZ_CHECK(line.len > 0 && line.p[line.len - 1] == '\n');
		rc = ws_json_parse_line((const char *)line.p, line.len - 1, &back, err);
		if (rc)
			fprintf(stderr, "json line back to a frame: %s\n", err);
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(back.len == fb.len && memcmp(back.p, fb.p, fb.len) == 0);
	}
	ws_buf_release(&fb);
	ws_buf_release(&line);
	ws_buf_release(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_schema sc = WS_SCHEMA_INIT, sc2 = WS_SCHEMA_INIT;
	struct ws_buf enc = WS_BUF_INIT, enc2 = WS_BUF_INIT;
	char err[WS_ERRLEN];
	json_t *obj = NULL;
	int rc, decoded, json_ok = 0;

	rc = ws_schema_decode(&sc, data, size, err);
	decoded = rc == 0;
	if (rc) {
		FUZZ_CHECK(rc < 0 && sc.n == 0 && sc.obj == NULL && sc.gen == 0);
		goto frame;
	}
	FUZZ_CHECK(ws_schema_encode(&sc, &enc) == 0);
	FUZZ_CHECK(enc.len == size && memcmp(enc.p, data, size) == 0);

	obj = json_object();
	FUZZ_CHECK(obj != NULL);
	rc = ws_json_from_schema(&sc, obj, err);
	if (sc.gen > INT64_MAX) {
		FUZZ_CHECK(rc == WS_ERANGE);
		goto frame;
	}
	FUZZ_CHECK(rc == 0);
	json_ok = 1;
	rc = ws_json_to_schema(obj, &sc2, err);
	if (rc)
		fprintf(stderr, "json back to a schema record: %s\n", err);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(sc2.gen == sc.gen && ws_schema_same(&sc, &sc2));
	FUZZ_CHECK(ws_schema_encode(&sc2, &enc2) == 0);
	FUZZ_CHECK(enc2.len == size && memcmp(enc2.p, data, size) == 0);
frame:
	frame_roundtrip(data, size, decoded, json_ok);
	json_decref(obj);
	ws_buf_release(&enc);
	ws_buf_release(&enc2);
	ws_schema_release(&sc);
	ws_schema_release(&sc2);
	return 0;
}
