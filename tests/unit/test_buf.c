/* SPDX-License-Identifier: MIT */
/*
 * test_buf.c - the growable buffer and the bounds-checked read cursor.
 *
 * Covers growth against a reference copy, the little-endian helpers,
 * printf, varint and zigzag encodings against hand-written vectors, the
 * canonical-form rules of the readers (non-minimal and over-long varints
 * are WS_ECORRUPT, short input is WS_ETRUNC, the cursor stays at the bad
 * item) and the maximum enforced by ws_rd_bytes().
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/buf.h"

/* One hand-checked varint encoding. */
struct vec {
	uint64_t v;
	size_t n;
	uint8_t b[WS_VARINT_MAX];
};

static const struct vec uvecs[] = {
	{0, 1, {0x00}},
	{1, 1, {0x01}},
	{127, 1, {0x7f}},
	{128, 2, {0x80, 0x01}},
	{129, 2, {0x81, 0x01}},
	{255, 2, {0xff, 0x01}},
	{300, 2, {0xac, 0x02}},
	{16383, 2, {0xff, 0x7f}},
	{16384, 3, {0x80, 0x80, 0x01}},
	{0xffffffffu, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
	{0x100000000ull, 5, {0x80, 0x80, 0x80, 0x80, 0x10}},
	{(1ull << 56) - 1, 8, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	{1ull << 56, 9, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
	{(1ull << 63) - 1, 9, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}},
	{1ull << 63, 10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
	{UINT64_MAX, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
};

struct svec {
	int64_t v;
	size_t n;
	uint8_t b[WS_VARINT_MAX];
};

static const struct svec svecs[] = {
	{0, 1, {0x00}},
	{-1, 1, {0x01}},
	{1, 1, {0x02}},
	{-2, 1, {0x03}},
	{2, 1, {0x04}},
	{63, 1, {0x7e}},
	{-64, 1, {0x7f}},
	{64, 2, {0x80, 0x01}},
	{-65, 2, {0x81, 0x01}},
	{INT32_MAX, 5, {0xfe, 0xff, 0xff, 0xff, 0x0f}},
	{INT32_MIN, 5, {0xff, 0xff, 0xff, 0xff, 0x0f}},
	{INT64_MAX, 10, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{INT64_MIN, 10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{INT64_MIN + 1, 10, {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Bytes a minimal LEB128 encoding of v takes. */
static size_t varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* A random value with a random bit width, so every length is common. */
static uint64_t rand_width(void)
{
	unsigned bits = (unsigned)t_below(65);

	if (bits == 0)
		return 0;
	if (bits == 64)
		return t_rand();
	return t_rand() & ((1ull << bits) - 1);
}

TEST(buf_empty)
{
	struct ws_buf a = WS_BUF_INIT, b;

	CHECK(a.p == NULL && a.len == 0 && a.cap == 0);
	memset(&b, 0xa5, sizeof b);
	ws_buf_init(&b);
	CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
	/* Releasing an empty buffer is fine, twice too. */
	ws_buf_release(&a);
	ws_buf_release(&a);
	CHECK(a.p == NULL && a.len == 0 && a.cap == 0);
	/* Appending nothing keeps it empty. */
	CHECK_INT(ws_buf_append(&a, "x", 0), 0);
	CHECK_INT(a.len, 0);
	ws_buf_release(&a);
}

TEST(buf_reserve)
{
	struct ws_buf b = WS_BUF_INIT;
	uint8_t *p;
	size_t cap;

	CHECK_INT(ws_buf_reserve(&b, 100), 0);
	CHECK(b.p != NULL);
	CHECK(b.cap >= 100);
	CHECK_INT(b.len, 0);
	/* The promised room can be written without further calls. */
	memset(b.p, 'z', 100);
	CHECK_INT(ws_buf_append(&b, "abc", 3), 0);
	CHECK_INT(b.len, 3);
	CHECK_MEM(b.p, 3, "abc", 3);
	/* Reserving what is already there does not move the block. */
	p = b.p;
	cap = b.cap;
	CHECK_INT(ws_buf_reserve(&b, cap - b.len), 0);
	CHECK(b.p == p);
	CHECK_INT(b.cap, cap);
	/* An impossible request fails and leaves the buffer as it was. */
	CHECK_INT(ws_buf_reserve(&b, SIZE_MAX), WS_ENOMEM);
	CHECK_INT(ws_buf_reserve(&b, SIZE_MAX - 1), WS_ENOMEM);
	CHECK(b.p == p);
	CHECK_INT(b.cap, cap);
	CHECK_INT(b.len, 3);
	CHECK_MEM(b.p, 3, "abc", 3);
	ws_buf_release(&b);
	CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
}

/* Random appends of every kind, checked against a plain reference copy. */
TEST(buf_grow_random)
{
	enum { MAXLEN = 1 << 18 };
	uint8_t *ref = malloc(MAXLEN + 64), chunk[3000];
	struct ws_buf b = WS_BUF_INIT;
	size_t n = 0, k, i;

	CHECK(ref != NULL);
	if (!ref)
		return;
	while (n < MAXLEN) {
		switch (t_below(3)) {
		case 0:
			chunk[0] = (uint8_t)t_rand();
			CHECK_INT(ws_buf_putc(&b, chunk[0]), 0);
			ref[n++] = chunk[0];
			break;
		case 1:
			k = (size_t)t_below(sizeof chunk);
			if (n + k > MAXLEN)
				k = MAXLEN - n;
			for (i = 0; i < k; i++)
				chunk[i] = (uint8_t)t_rand();
			CHECK_INT(ws_buf_append(&b, chunk, k), 0);
			memcpy(ref + n, chunk, k);
			n += k;
			break;
		default:
			k = (size_t)t_below(200);
			CHECK_INT(ws_buf_reserve(&b, k), 0);
			CHECK(b.cap - b.len >= k);
			break;
		}
		CHECK(b.len <= b.cap);
		if (b.len != n)
			break;
	}
	CHECK_INT(b.len, n);
	CHECK_MEM(b.p, b.len, ref, n);
	ws_buf_release(&b);
	free(ref);
}

TEST(buf_le)
{
	struct ws_buf b = WS_BUF_INIT;
	uint8_t p[4];
	struct ws_rd r;
	uint64_t v;
	static const uint8_t want[] = {
		0x78, 0x56, 0x34, 0x12,
		0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff,
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,
	};

	CHECK_INT(ws_buf_put_u32le(&b, 0x12345678u), 0);
	CHECK_INT(ws_buf_put_u32le(&b, 0), 0);
	CHECK_INT(ws_buf_put_u32le(&b, UINT32_MAX), 0);
	CHECK_INT(ws_buf_put_u64le(&b, 0x0102030405060708ull), 0);
	CHECK_INT(ws_buf_put_u64le(&b, 0), 0);
	CHECK_INT(ws_buf_put_u64le(&b, UINT64_MAX), 0);
	CHECK_INT(ws_buf_put_u64le(&b, 0x8000000000000001ull), 0);
	CHECK_MEM(b.p, b.len, want, sizeof want);

	CHECK(ws_get_u32le(want) == 0x12345678u);
	CHECK(ws_get_u32le(want + 8) == UINT32_MAX);
	ws_put_u32le(p, 0xdeadbeefu);
	CHECK(p[0] == 0xef && p[1] == 0xbe && p[2] == 0xad && p[3] == 0xde);
	CHECK(ws_get_u32le(p) == 0xdeadbeefu);

	ws_rd_init(&r, want + 12, sizeof want - 12);
	CHECK_INT(ws_rd_u64le(&r, &v), 0);
	CHECK(v == 0x0102030405060708ull);
	CHECK_INT(ws_rd_u64le(&r, &v), 0);
	CHECK(v == 0);
	CHECK_INT(ws_rd_u64le(&r, &v), 0);
	CHECK(v == UINT64_MAX);
	CHECK_INT(ws_rd_u64le(&r, &v), 0);
	CHECK(v == 0x8000000000000001ull);
	CHECK_INT(ws_rd_left(&r), 0);
	CHECK_INT(ws_rd_offset(&r), 32);

	/* Each short length is WS_ETRUNC and leaves the cursor alone. */
	for (size_t k = 0; k < 8; k++) {
		ws_rd_init(&r, want, k);
		v = 42;
		CHECK_INT(ws_rd_u64le(&r, &v), WS_ETRUNC);
		CHECK_INT(ws_rd_offset(&r), 0);
		CHECK(v == 42);
	}
	ws_buf_release(&b);
}

TEST(buf_printf)
{
	struct ws_buf b = WS_BUF_INIT;
	char big[1000];

	CHECK_INT(ws_buf_printf(&b, "%s=%d", "x", 42), 0);
	CHECK_INT(b.len, 4);
	CHECK_MEM(b.p, b.len, "x=42", 4);
	CHECK_INT(ws_buf_printf(&b, "%s", ""), 0);
	CHECK_INT(b.len, 4);
	/* Long output grows the buffer; no NUL is counted. */
	memset(big, 'q', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK_INT(ws_buf_printf(&b, "[%s]", big), 0);
	CHECK_INT(b.len, 4 + 2 + sizeof big - 1);
	CHECK(b.p[4] == '[' && b.p[b.len - 1] == ']');
	CHECK(b.p[5] == 'q' && b.p[b.len - 2] == 'q');
	CHECK_INT(ws_buf_putc(&b, '!'), 0);
	CHECK(b.p[b.len - 1] == '!' && b.p[b.len - 2] == ']');
	ws_buf_release(&b);
}

TEST(varint_vectors)
{
	size_t i, k;

	for (i = 0; i < NELEM(uvecs); i++) {
		const struct vec *t = &uvecs[i];
		uint8_t out[WS_VARINT_MAX + 4];
		struct ws_buf b = WS_BUF_INIT;
		struct ws_rd r;
		uint64_t v = 0;

		memset(out, 0xee, sizeof out);
		CHECK_INT(ws_varint_encode(out, t->v), t->n);
		CHECK_MEM(out, t->n, t->b, t->n);
		CHECK(out[t->n] == 0xee);
		CHECK_INT(varint_len(t->v), t->n);

		CHECK_INT(ws_buf_putc(&b, 0x55), 0);
		CHECK_INT(ws_buf_put_varint(&b, t->v), 0);
		CHECK_MEM(b.p + 1, b.len - 1, t->b, t->n);

		ws_rd_init(&r, t->b, t->n);
		CHECK_INT(ws_rd_varint(&r, &v), 0);
		CHECK(v == t->v);
		CHECK_INT(ws_rd_left(&r), 0);
		CHECK_INT(ws_rd_offset(&r), t->n);

		/* Every proper prefix is truncated; the cursor does not move. */
		for (k = 0; k < t->n; k++) {
			ws_rd_init(&r, t->b, k);
			v = 7;
			CHECK_INT(ws_rd_varint(&r, &v), WS_ETRUNC);
			CHECK_INT(ws_rd_offset(&r), 0);
			CHECK(v == 7);
		}
		ws_buf_release(&b);
	}
}

TEST(svarint_vectors)
{
	size_t i, k;

	for (i = 0; i < NELEM(svecs); i++) {
		const struct svec *t = &svecs[i];
		struct ws_buf b = WS_BUF_INIT;
		struct ws_rd r;
		int64_t v = 0;
		uint64_t u = 0;

		CHECK_INT(ws_buf_put_svarint(&b, t->v), 0);
		CHECK_MEM(b.p, b.len, t->b, t->n);

		ws_rd_init(&r, t->b, t->n);
		CHECK_INT(ws_rd_svarint(&r, &v), 0);
		CHECK(v == t->v);
		CHECK_INT(ws_rd_left(&r), 0);

		/* The zigzag form is an ordinary varint. */
		ws_rd_init(&r, t->b, t->n);
		CHECK_INT(ws_rd_varint(&r, &u), 0);
		CHECK(u == (((uint64_t)t->v << 1) ^ (uint64_t)(t->v < 0 ? -1 : 0)));

		for (k = 0; k < t->n; k++) {
			ws_rd_init(&r, t->b, k);
			CHECK_INT(ws_rd_svarint(&r, &v), WS_ETRUNC);
			CHECK_INT(ws_rd_offset(&r), 0);
		}
		ws_buf_release(&b);
	}
}

TEST(varint_random)
{
	struct ws_buf b = WS_BUF_INIT;
	uint64_t *uv = malloc(20000 * sizeof *uv);
	int64_t *sv = malloc(20000 * sizeof *sv);
	size_t i, total = 0;
	struct ws_rd r;

	CHECK(uv && sv);
	if (!uv || !sv)
		goto out;
	for (i = 0; i < 20000; i++) {
		uint8_t tmp[WS_VARINT_MAX];

		uv[i] = rand_width();
		sv[i] = (int64_t)rand_width();
		if (t_below(2))
			sv[i] = -sv[i] - (int64_t)t_below(2);
		CHECK_INT(ws_varint_encode(tmp, uv[i]), varint_len(uv[i]));
		CHECK_INT(ws_buf_put_varint(&b, uv[i]), 0);
		CHECK_INT(ws_buf_put_svarint(&b, sv[i]), 0);
		total += varint_len(uv[i]) +
		    varint_len(((uint64_t)sv[i] << 1) ^ (uint64_t)(sv[i] >> 63));
	}
	CHECK_INT(b.len, total);
	ws_rd_init(&r, b.p, b.len);
	for (i = 0; i < 20000; i++) {
		uint64_t u = 0;
		int64_t s = 0;

		CHECK_INT(ws_rd_varint(&r, &u), 0);
		CHECK_INT(ws_rd_svarint(&r, &s), 0);
		if (u != uv[i] || s != sv[i]) {
			CHECK(u == uv[i]);
			CHECK(s == sv[i]);
			break;
		}
	}
	CHECK_INT(ws_rd_left(&r), 0);
out:
	ws_buf_release(&b);
	free(uv);
	free(sv);
}

/* Malformed varints: non-minimal encodings and more than 64 bits. */
TEST(varint_corrupt)
{
	static const struct {
		size_t n;
		uint8_t b[24];
	} bad[] = {
		{2, {0x80, 0x00}},                   /* 0 in two bytes */
		{2, {0x81, 0x00}},                   /* 1 in two bytes */
		{2, {0xff, 0x00}},                   /* 127 in two bytes */
		{3, {0x80, 0x80, 0x00}},
		{3, {0xff, 0xff, 0x00}},
		{3, {0x80, 0x81, 0x00}},             /* 128 in three bytes */
		{10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}},
		{10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}},
		/* Ten bytes whose last one carries bits past bit 63. */
		{10, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f}},
		{10, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x03}},
		/* Eleven bytes and more. */
		{11, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
		{11, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00}},
		{11, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x01}},
		{12, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}},
		{20, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	};
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		uint8_t copy[32];
		struct ws_rd r;
		uint64_t u = 99;
		int64_t s = 99;
		const uint8_t *p = NULL;
		size_t n = 0;
		int rc;

		/* Put a byte in front so "left where the bad item starts"
		 * is a non-zero offset, and junk behind it. */
		copy[0] = 0x05;
		memcpy(copy + 1, bad[i].b, bad[i].n);
		memset(copy + 1 + bad[i].n, 0x01, sizeof copy - 1 - bad[i].n);

		ws_rd_init(&r, copy, sizeof copy);
		CHECK_INT(ws_rd_varint(&r, &u), 0);
		CHECK(u == 5);
		rc = ws_rd_varint(&r, &u);
		if (rc != WS_ECORRUPT)
			fprintf(stderr, "  bad varint #%zu\n", i);
		CHECK_INT(rc, WS_ECORRUPT);
		CHECK_INT(ws_rd_offset(&r), 1);
		CHECK(u == 5);

		ws_rd_init(&r, copy + 1, sizeof copy - 1);
		CHECK_INT(ws_rd_svarint(&r, &s), WS_ECORRUPT);
		CHECK_INT(ws_rd_offset(&r), 0);
		CHECK(s == 99);

		/* A bad length is as bad as a bad value. */
		ws_rd_init(&r, copy + 1, sizeof copy - 1);
		CHECK_INT(ws_rd_bytes(&r, SIZE_MAX, &p, &n), WS_ECORRUPT);
		CHECK_INT(ws_rd_offset(&r), 0);

		/* Exactly the bad bytes, nothing after them. */
		ws_rd_init(&r, bad[i].b, bad[i].n);
		CHECK_INT(ws_rd_varint(&r, &u), WS_ECORRUPT);
		CHECK_INT(ws_rd_offset(&r), 0);
	}
}

/* Every valid value of every length decodes from exactly its bytes. */
TEST(varint_canonical_all_lengths)
{
	unsigned len;

	for (len = 1; len <= WS_VARINT_MAX; len++) {
		uint64_t lo = len == 1 ? 0 : 1ull << (7 * (len - 1));
		uint8_t b[WS_VARINT_MAX];
		struct ws_rd r;
		uint64_t v;

		CHECK_INT(ws_varint_encode(b, lo), len);
		ws_rd_init(&r, b, len);
		CHECK_INT(ws_rd_varint(&r, &v), 0);
		CHECK(v == lo);
		/* The previous value, one byte shorter, padded with a zero
		 * continuation byte to this length, is non-minimal. */
		if (len > 1) {
			size_t k = ws_varint_encode(b, lo - 1);

			CHECK_INT(k, len - 1);
			b[k - 1] |= 0x80;
			b[k] = 0x00;
			ws_rd_init(&r, b, k + 1);
			CHECK_INT(ws_rd_varint(&r, &v), WS_ECORRUPT);
		}
	}
}

TEST(rd_u8_raw)
{
	static const uint8_t d[] = {1, 2, 3, 4, 5};
	struct ws_rd r;
	const uint8_t *p = NULL;
	uint8_t c = 0;

	ws_rd_init(&r, d, sizeof d);
	CHECK_INT(ws_rd_left(&r), 5);
	CHECK_INT(ws_rd_u8(&r, &c), 0);
	CHECK(c == 1);
	CHECK_INT(ws_rd_raw(&r, 3, &p), 0);
	CHECK(p == d + 1);
	CHECK_INT(ws_rd_offset(&r), 4);
	CHECK_INT(ws_rd_raw(&r, 2, &p), WS_ETRUNC);
	CHECK_INT(ws_rd_offset(&r), 4);
	CHECK_INT(ws_rd_raw(&r, SIZE_MAX, &p), WS_ETRUNC);
	CHECK_INT(ws_rd_offset(&r), 4);
	CHECK_INT(ws_rd_u8(&r, &c), 0);
	CHECK(c == 5);
	CHECK_INT(ws_rd_left(&r), 0);
	c = 77;
	CHECK_INT(ws_rd_u8(&r, &c), WS_ETRUNC);
	CHECK(c == 77);
	/* Zero bytes are always there. */
	p = NULL;
	CHECK_INT(ws_rd_raw(&r, 0, &p), 0);
	CHECK(p == d + 5);
	CHECK_INT(ws_rd_offset(&r), 5);

	/* An empty input. */
	ws_rd_init(&r, d, 0);
	CHECK_INT(ws_rd_u8(&r, &c), WS_ETRUNC);
	CHECK_INT(ws_rd_raw(&r, 1, &p), WS_ETRUNC);
	CHECK_INT(ws_rd_left(&r), 0);
}

TEST(rd_bytes)
{
	struct ws_buf b = WS_BUF_INIT;
	struct ws_rd r;
	const uint8_t *p = NULL;
	size_t n = 0;
	uint8_t big[300], raw[16];
	size_t i, k;

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7);
	CHECK_INT(ws_buf_put_bytes(&b, "hello", 5), 0);
	CHECK_INT(ws_buf_put_bytes(&b, "", 0), 0);
	CHECK_INT(ws_buf_put_bytes(&b, big, sizeof big), 0);
	CHECK_INT(ws_buf_put_bytes(&b, "\0x\0", 3), 0);
	/* 5 "hello", 0, 300 = ac 02 and the bytes, 3 and the bytes. */
	CHECK_INT(b.len, 1 + 5 + 1 + 2 + 300 + 1 + 3);
	CHECK(b.p[0] == 5 && b.p[6] == 0 && b.p[7] == 0xac && b.p[8] == 0x02);

	ws_rd_init(&r, b.p, b.len);
	CHECK_INT(ws_rd_bytes(&r, 5, &p, &n), 0); /* max is inclusive */
	CHECK_MEM(p, n, "hello", 5);
	CHECK(p == b.p + 1);
	CHECK_INT(ws_rd_bytes(&r, 0, &p, &n), 0);
	CHECK_INT(n, 0);
	/* Over the maximum: WS_ETOOBIG, and the cursor stays on the length. */
	k = ws_rd_offset(&r);
	CHECK_INT(ws_rd_bytes(&r, 299, &p, &n), WS_ETOOBIG);
	CHECK_INT(ws_rd_offset(&r), k);
	CHECK_INT(ws_rd_bytes(&r, 0, &p, &n), WS_ETOOBIG);
	CHECK_INT(ws_rd_offset(&r), k);
	CHECK_INT(ws_rd_bytes(&r, 300, &p, &n), 0);
	CHECK_MEM(p, n, big, sizeof big);
	CHECK_INT(ws_rd_bytes(&r, SIZE_MAX, &p, &n), 0);
	CHECK_MEM(p, n, "\0x\0", 3);
	CHECK_INT(ws_rd_left(&r), 0);
	CHECK_INT(ws_rd_bytes(&r, SIZE_MAX, &p, &n), WS_ETRUNC);

	/* Every truncation of the sequence is WS_ETRUNC at an item start. */
	for (k = 0; k < b.len; k++) {
		int rc = 0;

		ws_rd_init(&r, b.p, k);
		for (i = 0; i < 4 && rc == 0; i++)
			rc = ws_rd_bytes(&r, SIZE_MAX, &p, &n);
		CHECK_INT(rc, WS_ETRUNC);
		CHECK(ws_rd_offset(&r) == 0 || ws_rd_offset(&r) == 6 ||
		    ws_rd_offset(&r) == 7 || ws_rd_offset(&r) == 309);
	}

	/* A length far beyond the input: truncated, not a wild read. */
	k = ws_varint_encode(raw, UINT64_MAX);
	raw[k] = 'a';
	ws_rd_init(&r, raw, k + 1);
	CHECK_INT(ws_rd_bytes(&r, SIZE_MAX, &p, &n), WS_ETRUNC);
	CHECK_INT(ws_rd_offset(&r), 0);
	/* The maximum is checked before the length is compared with the
	 * input, so a huge claim is WS_ETOOBIG. */
	ws_rd_init(&r, raw, k + 1);
	CHECK_INT(ws_rd_bytes(&r, 1 << 20, &p, &n), WS_ETOOBIG);
	CHECK_INT(ws_rd_offset(&r), 0);
	k = ws_varint_encode(raw, 1000);
	ws_rd_init(&r, raw, k);
	CHECK_INT(ws_rd_bytes(&r, 999, &p, &n), WS_ETOOBIG);
	ws_rd_init(&r, raw, k);
	CHECK_INT(ws_rd_bytes(&r, 1000, &p, &n), WS_ETRUNC);
	ws_buf_release(&b);
}

/* A random mix of items written and read back in order. */
TEST(mixed_random)
{
	enum { N = 3000 };
	struct item {
		int kind;
		uint64_t u;
		uint8_t blob[40];
		size_t n;
	} *it = calloc(N, sizeof *it);
	struct ws_buf b = WS_BUF_INIT;
	struct ws_rd r;
	size_t i, j;

	CHECK(it != NULL);
	if (!it)
		return;
	for (i = 0; i < N; i++) {
		it[i].kind = (int)t_below(6);
		it[i].u = rand_width();
		it[i].n = (size_t)t_below(sizeof it[i].blob + 1);
		for (j = 0; j < it[i].n; j++)
			it[i].blob[j] = (uint8_t)t_rand();
		switch (it[i].kind) {
		case 0: CHECK_INT(ws_buf_put_varint(&b, it[i].u), 0); break;
		case 1: CHECK_INT(ws_buf_put_svarint(&b, (int64_t)it[i].u), 0); break;
		case 2: CHECK_INT(ws_buf_put_u64le(&b, it[i].u), 0); break;
		case 3: CHECK_INT(ws_buf_putc(&b, (uint8_t)it[i].u), 0); break;
		case 4: CHECK_INT(ws_buf_put_bytes(&b, it[i].blob, it[i].n), 0); break;
		default: CHECK_INT(ws_buf_put_u32le(&b, (uint32_t)it[i].u), 0); break;
		}
	}
	ws_rd_init(&r, b.p, b.len);
	for (i = 0; i < N; i++) {
		uint64_t u = 0;
		int64_t s = 0;
		uint8_t c = 0;
		const uint8_t *p = NULL;
		size_t n = 0;
		int ok = 0;

		switch (it[i].kind) {
		case 0:
			ok = ws_rd_varint(&r, &u) == 0 && u == it[i].u;
			break;
		case 1:
			ok = ws_rd_svarint(&r, &s) == 0 && s == (int64_t)it[i].u;
			break;
		case 2:
			ok = ws_rd_u64le(&r, &u) == 0 && u == it[i].u;
			break;
		case 3:
			ok = ws_rd_u8(&r, &c) == 0 && c == (uint8_t)it[i].u;
			break;
		case 4:
			ok = ws_rd_bytes(&r, sizeof it[i].blob, &p, &n) == 0 &&
			    n == it[i].n && memcmp(p, it[i].blob, n) == 0;
			break;
		default:
			ok = ws_rd_raw(&r, 4, &p) == 0 &&
			    ws_get_u32le(p) == (uint32_t)it[i].u;
			break;
		}
		if (!ok) {
			fprintf(stderr, "  item %zu kind %d\n", i, it[i].kind);
			CHECK(ok);
			break;
		}
	}
	CHECK_INT(ws_rd_left(&r), 0);
	ws_buf_release(&b);
	free(it);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(buf_empty);
	RUN(buf_reserve);
	RUN(buf_grow_random);
	RUN(buf_le);
	RUN(buf_printf);
	RUN(varint_vectors);
	RUN(svarint_vectors);
	RUN(varint_random);
	RUN(varint_corrupt);
	RUN(varint_canonical_all_lengths);
	RUN(rd_u8_raw);
	RUN(rd_bytes);
	RUN(mixed_random);
	TEST_MAIN_END();
}
