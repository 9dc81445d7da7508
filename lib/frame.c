/* SPDX-License-Identifier: MIT */
/*
 * frame.c - the stream preamble, frame encoding and the incremental
 * decoder.  See frame.h for the layout.
 *
 * The decoder keeps no copy of a frame whose bytes all arrive in one
 * call: the frame it returns points into the caller's input.  Only a frame
 * cut across calls is gathered in d->part, which never grows beyond one
 * frame and is sized only after the header's length passed the maximum.
 */
#include <inttypes.h>
#include <string.h>

#include "wsync/crc32c.h"
#include "wsync/frame.h"

enum { ST_PREAMBLE, ST_FRAME, ST_RETURNED };

static const char *const type_names[256] = {
	[WS_FRAME_HELLO] = "hello",
	[WS_FRAME_ERROR] = "error",
	[WS_FRAME_HEARTBEAT] = "heartbeat",
	[WS_FRAME_BATCH] = "batch",
	[WS_FRAME_CLOCK] = "clock",
	[WS_FRAME_SCHEMA] = "schema",
	[WS_FRAME_ADD] = "add",
	[WS_FRAME_REMOVE] = "remove",
	[WS_FRAME_NOTICE] = "notice",
	[WS_FRAME_AUTH] = "auth",
	[WS_FRAME_SEALED] = "sealed",
	[WS_FRAME_MESSAGE] = "message",
	[WS_FRAME_LOG] = "log",
};

const char *ws_frame_type_name(unsigned type)
{
	return type < 256 ? type_names[type] : NULL;
}

unsigned ws_frame_type_from_name(const char *name)
{
	unsigned t;

	for (t = 1; t < 256; t++)
		if (type_names[t] && strcmp(type_names[t], name) == 0)
			return t;
	return 0;
}

int ws_frame_put_preamble(struct ws_buf *out)
{
	uint8_t pre[WS_FRAME_PREAMBLE];

	memcpy(pre, WS_FRAME_MAGIC, WS_FRAME_MAGICLEN);
	pre[8] = WS_FRAME_VERSION;
	pre[9] = 0;
	return ws_buf_append(out, pre, sizeof(pre));
}

int ws_frame_put(struct ws_buf *out, uint8_t type, uint8_t flags,
    uint32_t channel, const void *payload, size_t len)
{
	uint8_t *h;
	uint32_t crc;

	if (type == 0 || len > WS_FRAME_MAX_LIMIT)
		return WS_EINVAL;
	if (ws_buf_reserve(out, WS_FRAME_OVERHEAD + len))
		return WS_ENOMEM;
	h = out->p + out->len;
	h[0] = type;
	h[1] = flags;
	ws_put_u32le(h + 2, channel);
	ws_put_u32le(h + 6, (uint32_t)len);
	if (len)
		memcpy(h + WS_FRAME_HDRLEN, payload, len);
	crc = ws_crc32c(0, h, WS_FRAME_HDRLEN + len);
	ws_put_u32le(h + WS_FRAME_HDRLEN + len, crc);
	out->len += WS_FRAME_OVERHEAD + len;
	return 0;
}

/*
 * Check the first k bytes of a preamble (k <= WS_FRAME_PREAMBLE).  On a
 * mismatch return its code and store the index of the bad byte in *bad.
 */
static int check_preamble_prefix(const uint8_t *p, size_t k, size_t *bad)
{
	size_t i;

	for (i = 0; i < k; i++) {
		if (i < WS_FRAME_MAGICLEN && p[i] != (uint8_t)WS_FRAME_MAGIC[i]) {
			*bad = i;
			return WS_EMAGIC;
		}
		if ((i == 8 && p[i] != WS_FRAME_VERSION) || (i == 9 && p[i] != 0)) {
			/* A set reserved byte means a newer format, like a version. */
			*bad = i;
			return WS_EVERSION;
		}
	}
	return 0;
}

int ws_frame_check_preamble(const uint8_t *p, size_t n, unsigned *version)
{
	size_t bad, k = n < WS_FRAME_PREAMBLE ? n : WS_FRAME_PREAMBLE;
	int rc = check_preamble_prefix(p, k, &bad);

	if (version && (rc == 0 || rc == WS_EVERSION) && k > 8)
		*version = p[8];
	if (rc)
		return rc;
	return n < WS_FRAME_PREAMBLE ? WS_ETRUNC : 0;
}

/* Validate a header; fill *f except the payload. */
static int parse_header(const uint8_t *h, size_t max, struct ws_frame *f)
{
	f->type = h[0];
	f->flags = h[1];
	f->channel = ws_get_u32le(h + 2);
	f->len = ws_get_u32le(h + 6);
	if (f->type == 0)
		return WS_ECORRUPT;
	if (f->len > max)
		return WS_ETOOBIG;
	return 0;
}

/* Check the CRC of a whole frame at p (header first) and set the payload. */
static int check_body(const uint8_t *p, struct ws_frame *f)
{
	uint32_t want = ws_get_u32le(p + WS_FRAME_HDRLEN + f->len);

	if (ws_crc32c(0, p, WS_FRAME_HDRLEN + f->len) != want)
		return WS_ECHECKSUM;
	f->payload = p + WS_FRAME_HDRLEN;
	return 0;
}

static const char *frame_problem(int rc)
{
	switch (rc) {
	case WS_ECORRUPT: return "frame type 0";
	case WS_ETOOBIG: return "frame larger than the maximum";
	default: return ws_strerror(rc);
	}
}

int ws_frame_parse(const uint8_t *p, size_t n, size_t max, struct ws_frame *f,
    size_t *used)
{
	int rc;

	if (n < WS_FRAME_HDRLEN)
		return WS_ETRUNC;
	if ((rc = parse_header(p, max, f)))
		return rc;
	if (n - WS_FRAME_HDRLEN < (size_t)f->len + WS_FRAME_TRAILER)
		return WS_ETRUNC;
	if ((rc = check_body(p, f)))
		return rc;
	*used = WS_FRAME_OVERHEAD + f->len;
	return 0;
}

void ws_frame_decoder_init(struct ws_frame_decoder *d, size_t max, unsigned opts)
{
	memset(d, 0, sizeof(*d));
	if (max == 0)
		max = WS_FRAME_MAX_DEFAULT;
	d->max = max > WS_FRAME_MAX_LIMIT ? WS_FRAME_MAX_LIMIT : max;
	d->opts = opts;
	d->state = opts & WS_FRAME_NO_PREAMBLE ? ST_FRAME : ST_PREAMBLE;
	ws_buf_init(&d->part);
}

void ws_frame_decoder_release(struct ws_frame_decoder *d)
{
	ws_buf_release(&d->part);
}

static int fail(struct ws_frame_decoder *d, int rc, uint64_t at, char *err)
{
	d->error = rc;
	d->error_offset = at;
	if (rc == WS_EMAGIC || rc == WS_EVERSION)
		return ws_error(err, rc, "byte %" PRIu64 ": %s", at,
		    rc == WS_EMAGIC ? "not a wsync stream (bad magic)" :
		    at == 9 ? "unsupported stream format (reserved byte is not 0)" :
		    "unsupported stream version");
	if (rc == WS_ENOMEM)
		return ws_error(err, rc, "out of memory");
	return ws_error(err, rc, "frame at byte %" PRIu64 ": %s", at,
	    frame_problem(rc));
}

int ws_frame_decoder_feed(struct ws_frame_decoder *d, const uint8_t *p,
    size_t n, size_t *used, struct ws_frame *f, char *err)
{
	size_t pos = 0, take, need, bad;
	int rc;

	*used = 0;
	if (d->error)
		return ws_error(err, d->error, "stream already failed at byte %"
		    PRIu64 ": %s", d->error_offset, ws_strerror(d->error));
	if (d->state == ST_RETURNED) {
		d->part.len = 0;
		d->state = ST_FRAME;
	}
	while (d->state == ST_PREAMBLE && pos < n) {
		take = WS_FRAME_PREAMBLE - d->part.len;
		if (take > n - pos)
			take = n - pos;
		if (ws_buf_append(&d->part, p + pos, take))
			return fail(d, WS_ENOMEM, d->offset, err);
		if ((rc = check_preamble_prefix(d->part.p, d->part.len, &bad)))
			return fail(d, rc, (uint64_t)bad, err);
		pos += take;
		d->offset += take;
		if (d->part.len == WS_FRAME_PREAMBLE) {
			d->version = d->part.p[8];
			d->part.len = 0;
			d->state = ST_FRAME;
		}
	}
	while (pos < n) {
		if (d->part.len == 0) {
			/* Fast path: a whole frame in the input, no copy. */
			d->frame_start = d->offset;
			if (n - pos < WS_FRAME_HDRLEN)
				goto gather;
			if ((rc = parse_header(p + pos, d->max, f)))
				return fail(d, rc, d->offset, err);
			need = WS_FRAME_OVERHEAD + (size_t)f->len;
			if (n - pos < need)
				goto gather;
			if ((rc = check_body(p + pos, f)))
				return fail(d, rc, d->offset, err);
			*used = pos + need;
			d->offset += need;
			return 1;
		}
gather:
		/* Slow path: gather the header, then the rest. */
		need = WS_FRAME_HDRLEN;
		if (d->part.len >= WS_FRAME_HDRLEN)
			need = WS_FRAME_OVERHEAD + (size_t)ws_get_u32le(d->part.p + 6);
		take = need - d->part.len;
		if (take > n - pos)
			take = n - pos;
		if (ws_buf_append(&d->part, p + pos, take))
			return fail(d, WS_ENOMEM, d->offset, err);
		pos += take;
		d->offset += take;
		if (d->part.len == WS_FRAME_HDRLEN) {
			/* Checked, but not reserved: the buffer grows with the
			 * bytes that come, never with what a header announces. */
			if ((rc = parse_header(d->part.p, d->max, f)))
				return fail(d, rc, d->frame_start, err);
			continue;
		}
		if (d->part.len == need && need > WS_FRAME_HDRLEN) {
			(void)parse_header(d->part.p, d->max, f);
			if ((rc = check_body(d->part.p, f)))
				return fail(d, rc, d->frame_start, err);
			d->state = ST_RETURNED;
			*used = pos;
			return 1;
		}
	}
	*used = pos;
	return 0;
}

int ws_frame_decoder_finish(struct ws_frame_decoder *d, char *err)
{
	if (d->error)
		return ws_error(err, d->error, "stream already failed at byte %"
		    PRIu64 ": %s", d->error_offset, ws_strerror(d->error));
	if (d->state == ST_RETURNED || d->part.len == 0)
		return 0;
	d->error = WS_ETRUNC;
	if (d->state == ST_PREAMBLE) {
		d->error_offset = 0;
		return ws_error(err, WS_ETRUNC, "byte 0: truncated preamble "
		    "(%zu of %d bytes)", d->part.len, WS_FRAME_PREAMBLE);
	}
	d->error_offset = d->frame_start;
	return ws_error(err, WS_ETRUNC, "frame at byte %" PRIu64 ": truncated "
	    "(stream ends after %zu bytes of it)", d->frame_start, d->part.len);
}

int ws_log_record_encode(const struct ws_log_record *r, struct ws_buf *out)
{
	int rc;

	if (r->dir > WS_LOG_OUT || r->peerlen > 255 || r->frame.type == 0)
		return WS_EINVAL;
	if ((rc = ws_buf_put_varint(out, r->time_us)) ||
	    (rc = ws_buf_putc(out, (uint8_t)r->dir)) ||
	    (rc = ws_buf_put_bytes(out, r->peer, r->peerlen)) ||
	    (rc = ws_buf_putc(out, r->frame.type)) ||
	    (rc = ws_buf_putc(out, r->frame.flags)) ||
	    (rc = ws_buf_put_varint(out, r->frame.channel)))
		return rc;
	return ws_buf_append(out, r->frame.payload, r->frame.len);
}

int ws_log_record_decode(struct ws_log_record *r, const uint8_t *p, size_t n)
{
	const uint8_t *peer;
	struct ws_rd rd;
	uint64_t ch;
	uint8_t dir;

	ws_rd_init(&rd, p, n);
	if (ws_rd_varint(&rd, &r->time_us) || ws_rd_u8(&rd, &dir) ||
	    dir > WS_LOG_OUT || ws_rd_bytes(&rd, 255, &peer, &r->peerlen) ||
	    ws_rd_u8(&rd, &r->frame.type) || r->frame.type == 0 ||
	    r->frame.type == WS_FRAME_LOG || ws_rd_u8(&rd, &r->frame.flags) ||
	    ws_rd_varint(&rd, &ch) || ch > UINT32_MAX)
		return WS_ECORRUPT;
	r->dir = dir;
	r->peer = (const char *)peer;
	r->frame.channel = (uint32_t)ch;
	r->frame.len = (uint32_t)ws_rd_left(&rd);
	r->frame.payload = rd.p;
	return 0;
}
