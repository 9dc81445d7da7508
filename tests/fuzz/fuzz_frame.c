/* SPDX-License-Identifier: MIT */
/*
 * fuzz_frame.c - the frame decoder (frame.h) on hostile bytes.
 *
 * The input is a stream (preamble, frames).  It is decoded three ways:
 * whole, one byte at a time, and in pieces whose sizes come from the
 * input itself; all three must give the same frames and the same result.
 * Each frame must re-encode to the bytes it was decoded from.  The same
 * bytes also go to ws_frame_parse() (no preamble) and every LOG frame's
 * payload to ws_log_record_decode().
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/frame.h"

/* Small, so that size checks are exercised without large allocations. */
#define MAX_PAYLOAD 4096

struct seen {
	struct ws_buf frames; /* each frame re-encoded, back to back */
	size_t n;
	int rc;
};

/* Decode p[0..n) fed in pieces of step(i) bytes; record into *s. */
static void decode(const uint8_t *p, size_t n, unsigned opts,
    size_t (*step)(size_t, const uint8_t *, size_t),
    struct seen *s)
{
	struct ws_frame_decoder d;
	struct ws_frame f;
	struct ws_log_record lr;
	size_t off = 0, used, k = 0, piece;
	int rc = 0;

	ws_frame_decoder_init(&d, MAX_PAYLOAD, opts);
	s->n = 0;
	while (off < n && rc >= 0) {
		piece = step(k++, p, n);
		if (piece > n - off)
			piece = n - off;
		while (piece > 0) {
			rc = ws_frame_decoder_feed(&d, p + off, piece, &used, &f, NULL);
			FUZZ_CHECK(used <= piece);
			off += used;
			piece -= used;
			if (rc < 0)
				break;
			if (rc == 0) {
				FUZZ_CHECK(piece == 0);
				break;
			}
			FUZZ_CHECK(f.type != 0 && f.len <= MAX_PAYLOAD);
			FUZZ_CHECK(ws_frame_put(&s->frames, f.type, f.flags, f.channel,
			    f.payload, f.len) == 0);
			s->n++;
			if (f.type == WS_FRAME_LOG &&
			    ws_log_record_decode(&lr, f.payload, f.len) == 0)
				FUZZ_CHECK(lr.dir <= 1 && lr.peerlen <= 255);
		}
	}
	if (rc >= 0)
		rc = ws_frame_decoder_finish(&d, NULL);
	else
		FUZZ_CHECK(d.error_offset <= n);
	s->rc = rc;
	ws_frame_decoder_release(&d);
}

static size_t whole(size_t k, const uint8_t *p, size_t n)
{
	(void)k; (void)p;
	return n;
}

static size_t bytewise(size_t k, const uint8_t *p, size_t n)
{
	(void)k; (void)p; (void)n;
	return 1;
}

static size_t chosen(size_t k, const uint8_t *p, size_t n)
{
	return n ? (size_t)p[k % n] % 17 + 1 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct seen a = {WS_BUF_INIT, 0, 0}, b = {WS_BUF_INIT, 0, 0},
	    c = {WS_BUF_INIT, 0, 0};
	struct ws_frame f;
	unsigned version, opts;
	size_t used;
	int rc;

	/* Frames with and without a preamble: the first byte decides. */
	opts = size && data[0] != 0x89 ? WS_FRAME_NO_PREAMBLE : 0;
	decode(data, size, opts, whole, &a);
	decode(data, size, opts, bytewise, &b);
	decode(data, size, opts, chosen, &c);
	FUZZ_CHECK(a.rc == b.rc && a.rc == c.rc);
	FUZZ_CHECK(a.n == b.n && a.n == c.n);
	FUZZ_CHECK(a.frames.len == b.frames.len && a.frames.len == c.frames.len);
	if (a.frames.len) {
		FUZZ_CHECK(memcmp(a.frames.p, b.frames.p, a.frames.len) == 0);
		FUZZ_CHECK(memcmp(a.frames.p, c.frames.p, a.frames.len) == 0);
		/* Re-encoded frames are the input's frames, byte for byte. */
		used = opts ? 0 : WS_FRAME_PREAMBLE;
		FUZZ_CHECK(size >= used + a.frames.len);
		FUZZ_CHECK(memcmp(data + used, a.frames.p, a.frames.len) == 0);
	}
	ws_buf_release(&a.frames);
	ws_buf_release(&b.frames);
	ws_buf_release(&c.frames);

	rc = ws_frame_check_preamble(data, size, &version);
	FUZZ_CHECK(rc == 0 || rc == WS_ETRUNC || rc == WS_EMAGIC || rc == WS_EVERSION);
	rc = ws_frame_parse(data, size, MAX_PAYLOAD, &f, &used);
	if (rc == 0)
		FUZZ_CHECK(used == WS_FRAME_OVERHEAD + (size_t)f.len && used <= size);
	return 0;
}
