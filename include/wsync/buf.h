/* SPDX-License-Identifier: MIT */
/*
 * buf.h - the one growable byte buffer, and bounds-checked readers.
 *
 * struct ws_buf owns a heap block: p[0..len) is data, cap is the size of
 * the block.  A zeroed struct (WS_BUF_INIT) is a valid empty buffer.
 * Appending functions return 0 or WS_ENOMEM and leave the buffer
 * unchanged on failure.  ws_buf_release() frees the block.
 *
 * struct ws_rd is a cursor over caller-owned bytes used by every decoder:
 * every read checks the remaining length first and never touches memory
 * outside [p, end).  Varints are unsigned LEB128 (7 bits a byte, least
 * significant first); decoders accept only the minimal encoding, so each
 * value has exactly one encoding and decode→encode gives the same bytes.
 */
#ifndef WSYNC_BUF_H
#define WSYNC_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Longest LEB128 encoding of a uint64_t. */
#define WS_VARINT_MAX 10

struct ws_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

#define WS_BUF_INIT {NULL, 0, 0}

/* Make `b` an empty buffer that owns nothing. */
void ws_buf_init(struct ws_buf *b);
/* Free the block owned by `b` and make it empty again. */
void ws_buf_release(struct ws_buf *b);
/* Ensure room for `n` more bytes after len.  0 or WS_ENOMEM. */
int ws_buf_reserve(struct ws_buf *b, size_t n) WS_MUST_CHECK;
/* Append n bytes copied from p. */
int ws_buf_append(struct ws_buf *b, const void *p, size_t n) WS_MUST_CHECK;
/* Append one byte. */
int ws_buf_putc(struct ws_buf *b, uint8_t c) WS_MUST_CHECK;
/* Append v as an unsigned LEB128 varint. */
int ws_buf_put_varint(struct ws_buf *b, uint64_t v) WS_MUST_CHECK;
/* Append v zigzag-encoded ((v << 1) ^ (v >> 63)) as a varint. */
int ws_buf_put_svarint(struct ws_buf *b, int64_t v) WS_MUST_CHECK;
/* Append a varint length followed by the n bytes. */
int ws_buf_put_bytes(struct ws_buf *b, const void *p, size_t n) WS_MUST_CHECK;
/* Append v as 4 or 8 little-endian bytes. */
int ws_buf_put_u32le(struct ws_buf *b, uint32_t v) WS_MUST_CHECK;
int ws_buf_put_u64le(struct ws_buf *b, uint64_t v) WS_MUST_CHECK;
/* Append printf-formatted text (no NUL is appended to len). */
int ws_buf_printf(struct ws_buf *b, const char *fmt, ...) WS_PRINTF(2, 3) WS_MUST_CHECK;

/*
 * Encode v into out (at least WS_VARINT_MAX bytes); return the length.
 */
size_t ws_varint_encode(uint8_t *out, uint64_t v);

static inline void ws_put_u32le(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t ws_get_u32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 |
	    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * True if p[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF).  NUL bytes are allowed; callers that
 * forbid them check separately.
 */
int ws_utf8_valid(const uint8_t *p, size_t n);

/* A read cursor over caller-owned bytes; the reader owns nothing. */
struct ws_rd {
	const uint8_t *base; /* start, for byte offsets in messages */
	const uint8_t *p;    /* next byte */
	const uint8_t *end;  /* one past the last byte */
};

static inline void ws_rd_init(struct ws_rd *r, const uint8_t *p, size_t n)
{
	r->base = r->p = p;
	r->end = p + n;
}

static inline size_t ws_rd_left(const struct ws_rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline size_t ws_rd_offset(const struct ws_rd *r)
{
	return (size_t)(r->p - r->base);
}

/*
 * Each reader returns 0, WS_ETRUNC when the input ends early, or
 * WS_ECORRUPT for a non-minimal or over-long varint.  On error the cursor
 * is left where the bad item starts.
 */
int ws_rd_u8(struct ws_rd *r, uint8_t *v) WS_MUST_CHECK;
int ws_rd_varint(struct ws_rd *r, uint64_t *v) WS_MUST_CHECK;
int ws_rd_svarint(struct ws_rd *r, int64_t *v) WS_MUST_CHECK;
int ws_rd_u64le(struct ws_rd *r, uint64_t *v) WS_MUST_CHECK;
/* Point *p at the next n bytes (no copy) and skip them. */
int ws_rd_raw(struct ws_rd *r, size_t n, const uint8_t **p) WS_MUST_CHECK;
/* Read a varint length, refuse it above max (WS_ETOOBIG), then ws_rd_raw. */
int ws_rd_bytes(struct ws_rd *r, size_t max, const uint8_t **p, size_t *n) WS_MUST_CHECK;

#endif
