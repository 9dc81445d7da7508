/* SPDX-License-Identifier: MIT */
/*
 * stream.c - one reader for binary frames and JSON lines (stream.h):
 * every tool that reads a delta stream goes through it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsync/json.h"
#include "wsync/stream.h"

static int is_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int ws_stream_detect(const uint8_t *p, size_t n)
{
	size_t i;

	if (n > 0 && p[0] == (uint8_t)WS_FRAME_MAGIC[0])
		return WS_STREAM_BINARY;
	for (i = 0; i < n && is_space(p[i]); i++)
		;
	if (i == n)
		return WS_EAGAIN;
	return p[i] == '{' ? WS_STREAM_JSON : WS_EMAGIC;
}

void ws_reader_init(struct ws_reader *r, size_t max)
{
	memset(r, 0, sizeof(*r));
	ws_frame_decoder_init(&r->dec, max, 0);
	r->max = r->dec.max;
	ws_buf_init(&r->line);
	ws_buf_init(&r->frame);
}

void ws_reader_release(struct ws_reader *r)
{
	ws_frame_decoder_release(&r->dec);
	ws_buf_release(&r->line);
	ws_buf_release(&r->frame);
}

static int fail(struct ws_reader *r, int rc, uint64_t at)
{
	r->error = rc;
	r->error_offset = at;
	return rc;
}

/*
 * Turn the JSON line p[0..n) into r->frame and *f.  0 for a blank line
 * (no frame), 1 with a frame, <0 on error.
 */
static int json_line(struct ws_reader *r, const uint8_t *p, size_t n,
    uint64_t start, struct ws_frame *f, char *err)
{
	char why[WS_ERRLEN] = "";
	size_t i, used;
	int rc;

	r->line_no++;
	for (i = 0; i < n && is_space(p[i]); i++)
		;
	if (i == n)
		return 0;
	r->frame.len = 0;
	rc = ws_json_parse_line((const char *)p, n, &r->frame, why);
	if (rc == 0 && r->frame.len - WS_FRAME_OVERHEAD > r->max)
		rc = ws_error(why, WS_ETOOBIG, "frame larger than the maximum");
	if (rc == 0)
		rc = ws_frame_parse(r->frame.p, r->frame.len, WS_FRAME_MAX_LIMIT,
		    f, &used);
	if (rc)
		return fail(r, ws_error(err, rc == WS_ENOMEM ? rc :
		    rc == WS_ETOOBIG ? rc : WS_EJSON, "line %" PRIu64 ": %s",
		    r->line_no, why), start);
	return 1;
}

static int feed_json(struct ws_reader *r, const uint8_t *p, size_t n,
    size_t *used, struct ws_frame *f, char *err)
{
	const uint8_t *nl;
	uint64_t start;
	size_t take;
	int rc;

	*used = 0;
	while (r->skip_line && *used < n) {
		nl = memchr(p + *used, '\n', n - *used);
		take = nl ? (size_t)(nl - (p + *used)) + 1 : n - *used;
		*used += take;
		r->offset += take;
		if (nl) {
			r->skip_line = 0;
			r->line_no++;
		}
	}
	while (*used < n) {
		nl = memchr(p + *used, '\n', n - *used);
		take = nl ? (size_t)(nl - (p + *used)) : n - *used;
		start = r->offset - r->line.len;
		if (r->line.len + take > WS_JSON_MAX_LINE)
			return fail(r, ws_error(err, WS_ETOOBIG, "line %" PRIu64
			    ": longer than %u bytes", r->line_no + 1,
			    WS_JSON_MAX_LINE), start);
		if (!nl) {
			if (ws_buf_append(&r->line, p + *used, take))
				return fail(r, WS_ENOMEM, start);
			*used += take;
			r->offset += take;
			return 0;
		}
		if (r->line.len == 0) {
			/* The whole line is in p: parse it in place. */
			rc = json_line(r, p + *used, take, start, f, err);
		} else {
			if (ws_buf_append(&r->line, p + *used, take))
				return fail(r, WS_ENOMEM, start);
			rc = json_line(r, r->line.p, r->line.len, start, f, err);
			r->line.len = 0;
		}
		*used += take + 1;
		r->offset += take + 1;
		if (rc)
			return rc;
	}
	return 0;
}

int ws_reader_feed(struct ws_reader *r, const uint8_t *p, size_t n,
    size_t *used, struct ws_frame *f, char *err)
{
	size_t skip;
	int rc;

	*used = 0;
	if (r->error)
		return ws_error(err, r->error, "input already failed at byte %"
		    PRIu64, r->error_offset);
	if (r->kind == WS_STREAM_UNKNOWN) {
		/* Only white space so far: keep it for the JSON reader. */
		rc = ws_stream_detect(p, n);
		if (rc == WS_EAGAIN)
			return feed_json(r, p, n, used, f, err);
		if (rc == WS_EMAGIC) {
			for (skip = 0; skip < n && is_space(p[skip]); skip++)
				;
			return fail(r, ws_error(err, WS_EMAGIC, "byte %" PRIu64
			    ": neither a wsync stream nor JSON lines",
			    r->offset + skip), r->offset + skip);
		}
		if (rc == WS_STREAM_BINARY && r->offset > 0)
			return fail(r, ws_error(err, WS_EMAGIC, "byte %" PRIu64
			    ": binary data after white space", r->offset), r->offset);
		r->kind = rc;
	}
	if (r->kind == WS_STREAM_JSON)
		return feed_json(r, p, n, used, f, err);
	rc = ws_frame_decoder_feed(&r->dec, p, n, used, f, err);
	r->offset += *used;
	if (rc < 0)
		return fail(r, rc, r->dec.error_offset);
	return rc;
}

int ws_reader_resume(struct ws_reader *r)
{
	if (!r->error || r->kind != WS_STREAM_JSON || r->error == WS_ENOMEM)
		return WS_EINVAL;
	/* A line that was too long was not consumed: drop the rest of it. */
	if (r->error == WS_ETOOBIG && r->error_offset + r->line.len >= r->offset)
		r->skip_line = 1;
	r->line.len = 0;
	r->error = 0;
	return 0;
}

int ws_reader_finish(struct ws_reader *r, struct ws_frame *f, char *err)
{
	uint64_t start;
	int rc;

	if (r->error)
		return ws_error(err, r->error, "input already failed at byte %"
		    PRIu64, r->error_offset);
	if (r->kind == WS_STREAM_BINARY) {
		if ((rc = ws_frame_decoder_finish(&r->dec, err)))
			return fail(r, rc, r->dec.error_offset);
		return 0;
	}
	if (r->line.len == 0)
		return 0;
	start = r->offset - r->line.len;
	rc = json_line(r, r->line.p, r->line.len, start, f, err);
	r->line.len = 0;
	return rc;
}
