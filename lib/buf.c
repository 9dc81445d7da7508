/* SPDX-License-Identifier: MIT */
/*
 * buf.c - the growable buffer and the bounds-checked read cursor.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsync/buf.h"

void ws_buf_init(struct ws_buf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
}

void ws_buf_release(struct ws_buf *b)
{
	free(b->p);
	ws_buf_init(b);
}

int ws_buf_reserve(struct ws_buf *b, size_t n)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= n)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return WS_ENOMEM;
	cap = b->cap ? b->cap : 64;
	while (cap - b->len < n)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return WS_ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int ws_buf_append(struct ws_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (ws_buf_reserve(b, n))
		return WS_ENOMEM;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int ws_buf_putc(struct ws_buf *b, uint8_t c)
{
	if (b->len == b->cap && ws_buf_reserve(b, 1))
		return WS_ENOMEM;
	b->p[b->len++] = c;
	return 0;
}

size_t ws_varint_encode(uint8_t *out, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

int ws_buf_put_varint(struct ws_buf *b, uint64_t v)
{
	if (b->cap - b->len < WS_VARINT_MAX && ws_buf_reserve(b, WS_VARINT_MAX))
		return WS_ENOMEM;
	b->len += ws_varint_encode(b->p + b->len, v);
	return 0;
}

int ws_buf_put_svarint(struct ws_buf *b, int64_t v)
{
	return ws_buf_put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

int ws_buf_put_bytes(struct ws_buf *b, const void *p, size_t n)
{
	if (ws_buf_reserve(b, WS_VARINT_MAX + n))
		return WS_ENOMEM;
	b->len += ws_varint_encode(b->p + b->len, n);
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

int ws_buf_put_u32le(struct ws_buf *b, uint32_t v)
{
	if (ws_buf_reserve(b, 4))
		return WS_ENOMEM;
	ws_put_u32le(b->p + b->len, v);
	b->len += 4;
	return 0;
}

int ws_buf_put_u64le(struct ws_buf *b, uint64_t v)
{
	if (ws_buf_reserve(b, 8))
		return WS_ENOMEM;
	ws_put_u32le(b->p + b->len, (uint32_t)v);
	ws_put_u32le(b->p + b->len + 4, (uint32_t)(v >> 32));
	b->len += 8;
	return 0;
}

int ws_buf_printf(struct ws_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return WS_EINVAL;
	if (ws_buf_reserve(b, (size_t)n + 1))
		return WS_ENOMEM;
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int ws_rd_u8(struct ws_rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return WS_ETRUNC;
	*v = *r->p++;
	return 0;
}

int ws_rd_varint(struct ws_rd *r, uint64_t *v)
{
	const uint8_t *p = r->p;
	uint64_t x = 0;
	unsigned shift = 0;
	uint8_t c;

	for (;;) {
		if (p >= r->end)
			return WS_ETRUNC;
		c = *p++;
		if (shift == 63 && c > 1)
			return WS_ECORRUPT; /* more than 64 bits */
		x |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80))
			break;
		shift += 7;
		if (shift > 63)
			return WS_ECORRUPT;
	}
	if (c == 0 && p - r->p > 1)
		return WS_ECORRUPT; /* not minimal: a trailing zero byte */
	r->p = p;
	*v = x;
	return 0;
}

int ws_rd_svarint(struct ws_rd *r, int64_t *v)
{
	uint64_t u;
	int rc = ws_rd_varint(r, &u);

	if (rc)
		return rc;
	*v = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
	return 0;
}

int ws_rd_u64le(struct ws_rd *r, uint64_t *v)
{
	if (ws_rd_left(r) < 8)
		return WS_ETRUNC;
	*v = (uint64_t)ws_get_u32le(r->p) |
	    (uint64_t)ws_get_u32le(r->p + 4) << 32;
	r->p += 8;
	return 0;
}

int ws_rd_raw(struct ws_rd *r, size_t n, const uint8_t **p)
{
	if (ws_rd_left(r) < n)
		return WS_ETRUNC;
	*p = r->p;
	r->p += n;
	return 0;
}

int ws_rd_bytes(struct ws_rd *r, size_t max, const uint8_t **p, size_t *n)
{
	const uint8_t *start = r->p;
	uint64_t len;
	int rc;

	if ((rc = ws_rd_varint(r, &len)))
		return rc;
	if (len > max) {
		r->p = start;
		return WS_ETOOBIG;
	}
	if (ws_rd_left(r) < len) {
		r->p = start;
		return WS_ETRUNC;
	}
	*p = r->p;
	*n = (size_t)len;
	r->p += len;
	return 0;
}

int ws_utf8_valid(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	uint32_t cp, min;
	int k;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((*p & 0xe0) == 0xc0) {
			k = 1, cp = *p & 0x1f, min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			k = 2, cp = *p & 0x0f, min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			k = 3, cp = *p & 0x07, min = 0x10000;
		} else {
			return 0;
		}
		if (end - p <= k)
			return 0;
		for (p++; k > 0; k--, p++) {
			if ((*p & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	return 1;
}
