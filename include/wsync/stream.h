/* SPDX-License-Identifier: MIT */
/*
 * stream.h - read frames from either binary streams or JSON lines.
 *
 * Every tool that reads a delta stream goes through struct ws_reader, so
 * users may pipe binary frames or JSON lines (edited with jq, say) into
 * any of them.  The kind is detected from the first bytes: 0x89 starts a
 * binary stream (frame.h), '{' or white space starts JSON lines (json.h).
 */
#ifndef WSYNC_STREAM_H
#define WSYNC_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "frame.h"

enum ws_stream_kind {
	WS_STREAM_UNKNOWN = 0,
	WS_STREAM_BINARY = 1,
	WS_STREAM_JSON = 2,
};

/*
 * Detect the kind from the first n bytes: WS_STREAM_BINARY or
 * WS_STREAM_JSON, WS_EAGAIN when n is 0 or only white space so far, or
 * WS_EMAGIC for anything else.
 */
int ws_stream_detect(const uint8_t *p, size_t n);

/*
 * A reader.  Binary input goes through a ws_frame_decoder; JSON lines are
 * split at '\n', parsed and encoded into frames.  Either way the caller
 * receives struct ws_frame.  Blank lines are skipped.
 */
struct ws_reader {
	int kind;                     /* enum ws_stream_kind, once known */
	size_t max;                   /* largest payload accepted */
	struct ws_frame_decoder dec;  /* binary input */
	struct ws_buf line;           /* JSON: the current partial line */
	struct ws_buf frame;          /* JSON: the frame built from a line */
	uint64_t offset;              /* input bytes consumed */
	uint64_t line_no;             /* JSON: number of the current line */
	uint64_t error_offset;        /* where the damage starts */
	int error;                    /* sticky error */
	int skip_line;                /* JSON: drop bytes up to the next '\n' */
};

/* Prepare r; max as for ws_frame_decoder_init().  Owns nothing yet. */
void ws_reader_init(struct ws_reader *r, size_t max);
/* Free what r holds; r may be initialised again. */
void ws_reader_release(struct ws_reader *r);

/*
 * Same contract as ws_frame_decoder_feed(): 1 with a frame in *f (valid
 * until the next call), 0 when p is used up, <0 on error (sticky, with
 * r->error_offset and a detail in err; for JSON the detail names the
 * line).  WS_EMAGIC if the input is neither kind.
 */
int ws_reader_feed(struct ws_reader *r, const uint8_t *p, size_t n,
    size_t *used, struct ws_frame *f, char *err) WS_MUST_CHECK;

/*
 * Go on after an error in JSON lines: the bad line is dropped (the rest
 * of an over-long line too) and reading resumes at the next one.  0, or
 * WS_EINVAL when r has not failed or holds a binary stream, whose
 * framing cannot be resumed here (see wsync-inspect --salvage, inspect.h).
 */
int ws_reader_resume(struct ws_reader *r) WS_MUST_CHECK;

/*
 * End of input.  For JSON a last line without '\n' may still give a
 * frame: returns 1 with *f then, and 0 on the next call.  0 at a clean
 * end; WS_ETRUNC (binary) or a parse error otherwise.
 */
int ws_reader_finish(struct ws_reader *r, struct ws_frame *f, char *err) WS_MUST_CHECK;

#endif
