/* SPDX-License-Identifier: MIT */
/*
 * fuzz_json.c - JSON-lines import (stream.h, json.h) on hostile bytes.
 *
 * The input goes through struct ws_reader, as wsync-inspect reads it
 * (JSON lines or a binary stream, detected from the first bytes), and on
 * errors in JSON lines the reader resumes at the next line.  Every frame
 * that comes out must map to a JSON line and back to the same bytes
 * (json.h: the mapping is lossless).
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/json.h"
#include "wsync/stream.h"

#define MAX_PAYLOAD 65536

static void roundtrip(const struct ws_frame *f)
{
	struct ws_buf line = WS_BUF_INIT, frame = WS_BUF_INIT, want = WS_BUF_INIT;
	char err[WS_ERRLEN];
	int rc;

	FUZZ_CHECK(ws_frame_put(&want, f->type, f->flags, f->channel, f->payload,
	    f->len) == 0);
	rc = ws_json_put_frame(f, &line, err);
	/* A frame read from binary input may hold a payload that does not decode. */
	if (rc == 0) {
		FUZZ_CHECK(line.len > 0 && line.p[line.len - 1] == '\n');
		rc = ws_json_parse_line((const char *)line.p, line.len - 1, &frame, err);
		if (rc)
			fprintf(stderr, "json line back to a frame: %s\n", err);
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(frame.len == want.len && memcmp(frame.p, want.p, want.len) == 0);
	}
	ws_buf_release(&line);
	ws_buf_release(&frame);
	ws_buf_release(&want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_reader r;
	struct ws_frame f;
	size_t off = 0, used;
	int rc = 0, resumes = 0;

	ws_reader_init(&r, MAX_PAYLOAD);
	while (off < size) {
		rc = ws_reader_feed(&r, data + off, size - off, &used, &f, NULL);
		FUZZ_CHECK(used <= size - off);
		off += used;
		if (rc == 1) {
			roundtrip(&f);
			continue;
		}
		if (rc == 0)
			break;
		if (++resumes > 1000 || ws_reader_resume(&r) != 0)
			goto out;
	}
	while ((rc = ws_reader_finish(&r, &f, NULL)) == 1)
		roundtrip(&f);
out:
	ws_reader_release(&r);
	return 0;
}
