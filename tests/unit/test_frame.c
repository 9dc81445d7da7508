/* SPDX-License-Identifier: MIT */
/*
 * test_frame.c - the stream preamble, frame encoding, ws_frame_parse()
 * and the incremental decoder.
 *
 * The golden vectors in tests/data were written by hand from the layout
 * in frame.h (their CRCs come from an independent bit-by-bit CRC-32C);
 * the same bytes are spelled out below, so the files, the encoder and the
 * decoder are each checked against the others.
 *
 * The decoder is driven by run_decode(), which copies every chunk into
 * its own exactly-sized heap block and frees it after the chunk is used,
 * so under ASan a decoder that keeps pointers into old input is caught.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/crc32c.h"
#include "wsync/frame.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t preamble[WS_FRAME_PREAMBLE] = {
	0x89, 0x57, 0x53, 0x59, 0x4e, 0x43, 0x0d, 0x0a, 0x01, 0x00,
};

/* tests/data/frame-empty.bin: preamble, then type 0x20 with no payload. */
static const uint8_t frame_empty[] = {
	0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0xa2, 0x2a, 0x5a, 0xfd,
};

/* Heartbeat on channel 0: varint 1763700000000. */
static const uint8_t hb_payload[] = {0x80, 0x8a, 0xd9, 0xa5, 0xaa, 0x33};
static const uint8_t frame_hb[] = {
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
	0x80, 0x8a, 0xd9, 0xa5, 0xaa, 0x33,
	0x06, 0xbc, 0x7f, 0x51,
};

/* Clock on channel 7: {00112233..eeff: 5, 01234567..3210: 300}. */
static const uint8_t clock_payload[] = {
	0x02,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x05,
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xac, 0x02,
};
static const uint8_t frame_clock_crc[4] = {0x23, 0x83, 0xfb, 0x87};

/* Unknown type 0x7f, flags 0x81, channel 0xfffffffe, opaque payload. */
static const uint8_t opq_payload[] = "opaque\0bytes"; /* 12 bytes used */
static const uint8_t frame_opq[] = {
	0x7f, 0x81, 0xfe, 0xff, 0xff, 0xff, 0x0c, 0x00, 0x00, 0x00,
	'o', 'p', 'a', 'q', 'u', 'e', 0x00, 'b', 'y', 't', 'e', 's',
	0xdb, 0xb0, 0x31, 0xb8,
};

#include "golden.h"
static const uint8_t frame_batch_hdr[WS_FRAME_HDRLEN] = {
	0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x70, 0x00, 0x00, 0x00,
};
static const uint8_t frame_batch_crc[4] = {0x36, 0xaf, 0x24, 0x7e};

/* An expected frame and where it starts in its stream. */
struct xf {
	uint8_t type, flags;
	uint32_t channel;
	const uint8_t *payload;
	uint32_t len;
	size_t at;
};

/* The frames of tests/data/frame-multi.bin (120 bytes). */
static const struct xf multi[] = {
	{0x03, 0x00, 0, hb_payload, sizeof hb_payload, 10},
	{0x11, 0x00, 7, clock_payload, sizeof clock_payload, 30},
	{0x7f, 0x81, 0xfffffffeu, opq_payload, 12, 80},
	{0x20, 0x00, 0, NULL, 0, 106},
};
#define MULTI_LEN 120

/* Read a file from tests/data, whichever directory the test runs in. */
static uint8_t *read_data(const char *name, size_t *n)
{
	static const char *const dirs[] = {"tests/data/", "../tests/data/",
	    "../../tests/data/", "../../../tests/data/"};
	char path[512];
	size_t i;
	uint8_t *p;

	for (i = 0; i < NELEM(dirs); i++) {
		snprintf(path, sizeof path, "%s%s", dirs[i], name);
		if ((p = t_read_file(path, n)))
			return p;
	}
	fprintf(stderr, "cannot read tests/data/%s\n", name);
	return NULL;
}

/* Build the multi-frame stream with the library's encoder. */
static void build_multi(struct ws_buf *b)
{
	size_t i;

	CHECK_INT(ws_frame_put_preamble(b), 0);
	for (i = 0; i < NELEM(multi); i++)
		CHECK_INT(ws_frame_put(b, multi[i].type, multi[i].flags,
		    multi[i].channel, multi[i].payload, multi[i].len), 0);
	CHECK_INT(b->len, MULTI_LEN);
}

/* ---- the decoder driver ---- */

#define MAXF 256

struct gf {
	uint8_t type, flags;
	uint32_t channel, len;
	uint8_t *payload;
	int zero_copy; /* payload pointed into the chunk just fed */
	size_t in_chunk_at; /* its offset in that chunk, when zero_copy */
};

struct run {
	size_t n;
	struct gf f[MAXF];
	int rc;          /* 0, or the first error from feed or finish */
	int in_finish;   /* rc came from ws_frame_decoder_finish() */
	int bad;         /* the decoder broke the feed contract */
	uint64_t error_offset;
	uint64_t offset;
	unsigned version;
	size_t part_cap; /* d.part.cap when the run ended */
	char err[WS_ERRLEN];
};

static void run_free(struct run *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->f[i].payload);
	r->n = 0;
}

/*
 * Decode p[0..n) fed as chunks ending at cuts[0..ncuts) (ascending, may
 * repeat for empty chunks) and at n, then call finish when `finish`.
 */
static void run_decode(struct run *r, const uint8_t *p, size_t n,
    const size_t *cuts, size_t ncuts, size_t max, unsigned opts, int finish)
{
	struct ws_frame_decoder d;
	size_t start = 0, c;
	int rc;

	memset(r, 0, sizeof *r);
	ws_frame_decoder_init(&d, max, opts);
	for (c = 0; c <= ncuts && r->rc == 0 && !r->bad; c++) {
		size_t end = c < ncuts ? cuts[c] : n;
		size_t len = end - start, off = 0, loops = 0;
		uint8_t *chunk = malloc(len ? len : 1);

		if (!chunk) {
			r->bad = 1;
			break;
		}
		memcpy(chunk, p + start, len);
		for (;;) {
			struct ws_frame f;
			size_t used = SIZE_MAX;

			memset(&f, 0, sizeof f);
			rc = ws_frame_decoder_feed(&d, chunk + off, len - off,
			    &used, &f, r->err);
			if (rc < 0) {
				r->rc = rc;
				r->error_offset = d.error_offset;
				break;
			}
			if (used > len - off || ++loops > 100000) {
				fprintf(stderr, "  feed: used %zu of %zu\n",
				    used, len - off);
				r->bad = 1;
				break;
			}
			off += used;
			if (rc == 0) {
				if (off != len) {
					fprintf(stderr, "  feed returned 0 "
					    "with %zu bytes left\n", len - off);
					r->bad = 1;
				}
				break;
			}
			if (rc != 1 || r->n == MAXF) {
				fprintf(stderr, "  feed returned %d\n", rc);
				r->bad = 1;
				break;
			}
			{
				struct gf *g = &r->f[r->n++];

				g->type = f.type;
				g->flags = f.flags;
				g->channel = f.channel;
				g->len = f.len;
				g->payload = malloc(f.len ? f.len : 1);
				if (f.len && f.payload)
					memcpy(g->payload, f.payload, f.len);
				else if (f.len)
					r->bad = 1;
				if (f.len && f.payload >= chunk &&
				    f.payload + f.len <= chunk + len) {
					g->zero_copy = 1;
					g->in_chunk_at = (size_t)(f.payload - chunk);
				}
			}
		}
		free(chunk);
		start = end;
	}
	if (r->rc == 0 && !r->bad && finish) {
		rc = ws_frame_decoder_finish(&d, r->err);
		if (rc != 0) {
			r->rc = rc;
			r->in_finish = 1;
			r->error_offset = d.error_offset;
		}
	}
	r->offset = d.offset;
	r->version = d.version;
	r->part_cap = d.part.cap;
	ws_frame_decoder_release(&d);
}

/* Do the first n_expected frames of r match x? */
static int frames_match(const struct run *r, const struct xf *x, size_t nx)
{
	size_t i;

	if (r->n != nx)
		return 0;
	for (i = 0; i < nx; i++) {
		const struct gf *g = &r->f[i];

		if (g->type != x[i].type || g->flags != x[i].flags ||
		    g->channel != x[i].channel || g->len != x[i].len ||
		    (x[i].len && memcmp(g->payload, x[i].payload, x[i].len)))
			return 0;
	}
	return 1;
}

/* ---- tests ---- */

TEST(type_names)
{
	static const struct {
		unsigned type;
		const char *name;
	} known[] = {
		{WS_FRAME_BATCH, "batch"},
		{WS_FRAME_CLOCK, "clock"},
		{WS_FRAME_ERROR, "error"},
		{WS_FRAME_HEARTBEAT, "heartbeat"},
	};
	size_t i;
	unsigned t;

	for (i = 0; i < NELEM(known); i++) {
		CHECK_STR(ws_frame_type_name(known[i].type), known[i].name);
		CHECK_INT(ws_frame_type_from_name(known[i].name), known[i].type);
	}
	CHECK(ws_frame_type_name(WS_FRAME_HELLO) != NULL);
	if (ws_frame_type_name(WS_FRAME_HELLO))
		CHECK_INT(ws_frame_type_from_name(ws_frame_type_name(WS_FRAME_HELLO)),
		    WS_FRAME_HELLO);
	CHECK(ws_frame_type_name(0) == NULL);
	CHECK(ws_frame_type_name(0x20) == NULL);
	CHECK(ws_frame_type_name(0xff) == NULL);
	CHECK(ws_frame_type_name(0x110) == NULL);
	CHECK(ws_frame_type_name(UINT32_MAX) == NULL);
	CHECK_INT(ws_frame_type_from_name("nosuch"), 0);
	CHECK_INT(ws_frame_type_from_name(""), 0);
	CHECK_INT(ws_frame_type_from_name("Batch"), 0);
	CHECK_INT(ws_frame_type_from_name("batch "), 0);
	/* Every name maps back to its type. */
	for (t = 0; t < 256; t++) {
		const char *name = ws_frame_type_name(t);

		if (name)
			CHECK_INT(ws_frame_type_from_name(name), t);
	}
}

TEST(preamble_check)
{
	struct ws_buf b = WS_BUF_INIT;
	uint8_t p[16];
	unsigned v = 99;
	size_t k;
	int i;

	CHECK_INT(ws_frame_put_preamble(&b), 0);
	CHECK_MEM(b.p, b.len, preamble, sizeof preamble);
	CHECK_MEM(WS_FRAME_MAGIC, WS_FRAME_MAGICLEN, preamble, 8);

	CHECK_INT(ws_frame_check_preamble(preamble, sizeof preamble, &v), 0);
	CHECK_INT(v, WS_FRAME_VERSION);
	CHECK_INT(ws_frame_check_preamble(preamble, sizeof preamble, NULL), 0);
	/* Extra bytes after it are the caller's business. */
	memcpy(p, preamble, 10);
	memset(p + 10, 0xee, 6);
	CHECK_INT(ws_frame_check_preamble(p, 16, NULL), 0);

	/* Short input. */
	for (k = 0; k < sizeof preamble; k++)
		CHECK_INT(ws_frame_check_preamble(preamble, k, NULL), WS_ETRUNC);

	/* Every byte of the magic matters. */
	for (k = 0; k < WS_FRAME_MAGICLEN; k++) {
		for (i = 0; i < 8; i++) {
			memcpy(p, preamble, 10);
			p[k] ^= (uint8_t)(1u << i);
			CHECK_INT(ws_frame_check_preamble(p, 10, NULL), WS_EMAGIC);
		}
	}
	/* Text is not a stream. */
	CHECK_INT(ws_frame_check_preamble((const uint8_t *)"{\"type\":1}\n", 11,
	    NULL), WS_EMAGIC);
	/* Line endings mangled to LF. */
	memcpy(p, "\x89WSYNC\n\x01\x00\x00", 10);
	CHECK_INT(ws_frame_check_preamble(p, 10, NULL), WS_EMAGIC);

	/* A reserved byte that is not 0 is an unsupported version. */
	memcpy(p, preamble, 10);
	p[9] = 0x01;
	CHECK_INT(ws_frame_check_preamble(p, 10, NULL), WS_EVERSION);
	p[9] = 0x80;
	CHECK_INT(ws_frame_check_preamble(p, 10, NULL), WS_EVERSION);

	/* Other versions. */
	memcpy(p, preamble, 10);
	p[8] = 2;
	v = 0;
	CHECK_INT(ws_frame_check_preamble(p, 10, &v), WS_EVERSION);
	CHECK_INT(v, 2);
	p[8] = 0;
	CHECK_INT(ws_frame_check_preamble(p, 10, &v), WS_EVERSION);
	CHECK_INT(v, 0);
	p[8] = 0xff;
	CHECK_INT(ws_frame_check_preamble(p, 10, &v), WS_EVERSION);
	CHECK_INT(v, 0xff);
	ws_buf_release(&b);
}

TEST(put_golden)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t len;

	CHECK_INT(ws_frame_put(&b, 0x20, 0, 0, NULL, 0), 0);
	CHECK_MEM(b.p, b.len, frame_empty, sizeof frame_empty);
	b.len = 0;
	CHECK_INT(ws_frame_put(&b, 0x20, 0, 0, "ignored", 0), 0);
	CHECK_MEM(b.p, b.len, frame_empty, sizeof frame_empty);
	b.len = 0;
	CHECK_INT(ws_frame_put(&b, WS_FRAME_HEARTBEAT, 0, 0, hb_payload,
	    sizeof hb_payload), 0);
	CHECK_MEM(b.p, b.len, frame_hb, sizeof frame_hb);
	b.len = 0;
	CHECK_INT(ws_frame_put(&b, 0x7f, 0x81, 0xfffffffeu, opq_payload, 12), 0);
	CHECK_MEM(b.p, b.len, frame_opq, sizeof frame_opq);
	b.len = 0;
	CHECK_INT(ws_frame_put(&b, WS_FRAME_CLOCK, 0, 7, clock_payload,
	    sizeof clock_payload), 0);
	CHECK_INT(b.len, 14 + sizeof clock_payload);
	if (b.len == 14 + sizeof clock_payload) {
		CHECK(b.p[0] == 0x11 && b.p[1] == 0 && ws_get_u32le(b.p + 2) == 7);
		CHECK(ws_get_u32le(b.p + 6) == sizeof clock_payload);
		CHECK_MEM(b.p + 10, sizeof clock_payload, clock_payload,
		    sizeof clock_payload);
		CHECK_MEM(b.p + b.len - 4, 4, frame_clock_crc, 4);
		/* The trailer is the CRC-32C of header and payload. */
		CHECK(ws_get_u32le(b.p + b.len - 4) == ws_crc32c(0, b.p, b.len - 4));
	}

	/* Appends, after what is there. */
	b.len = 0;
	CHECK_INT(ws_buf_append(&b, "xyz", 3), 0);
	CHECK_INT(ws_frame_put(&b, 0x20, 0, 0, NULL, 0), 0);
	CHECK_MEM(b.p + 3, b.len - 3, frame_empty, sizeof frame_empty);

	/* Type 0 and oversize payloads are refused; nothing is appended. */
	len = b.len;
	CHECK_INT(ws_frame_put(&b, 0, 0, 0, "x", 1), WS_EINVAL);
	CHECK_INT(ws_frame_put(&b, 0, 0, 0, NULL, 0), WS_EINVAL);
	CHECK_INT(ws_frame_put(&b, 1, 0, 0, "x", (size_t)WS_FRAME_MAX_LIMIT + 1),
	    WS_EINVAL);
	CHECK_INT(b.len, len);
	ws_buf_release(&b);
}

TEST(golden_files)
{
	struct ws_buf b = WS_BUF_INIT;
	uint8_t *file;
	size_t n = 0;
	struct run r;

	/* frame-empty.bin */
	file = read_data("frame-empty.bin", &n);
	CHECK(file != NULL);
	CHECK_INT(ws_frame_put_preamble(&b), 0);
	CHECK_INT(ws_frame_put(&b, 0x20, 0, 0, NULL, 0), 0);
	if (file) {
		CHECK_MEM(file, n, b.p, b.len);
		CHECK_INT(n, 24);
		CHECK_MEM(file, 10, preamble, 10);
		CHECK_MEM(file + 10, n - 10, frame_empty, sizeof frame_empty);
		run_decode(&r, file, n, NULL, 0, 0, 0, 1);
		CHECK_INT(r.rc, 0);
		CHECK(!r.bad);
		CHECK_INT(r.n, 1);
		CHECK(frames_match(&r, &multi[3], 1));
		CHECK_INT(r.version, 1);
		CHECK_INT(r.offset, 24);
		run_free(&r);
	}
	free(file);

	/* frame-multi.bin */
	b.len = 0;
	build_multi(&b);
	file = read_data("frame-multi.bin", &n);
	CHECK(file != NULL);
	if (file) {
		CHECK_MEM(file, n, b.p, b.len);
		CHECK_MEM(file + 10, 20, frame_hb, sizeof frame_hb);
		CHECK_MEM(file + 80, 26, frame_opq, sizeof frame_opq);
		CHECK_MEM(file + 76, 4, frame_clock_crc, 4);
		run_decode(&r, file, n, NULL, 0, 0, 0, 1);
		CHECK_INT(r.rc, 0);
		CHECK(!r.bad);
		CHECK(frames_match(&r, multi, NELEM(multi)));
		CHECK_INT(r.offset, MULTI_LEN);
		run_free(&r);
	}
	free(file);

	/* frame-batch.bin and its payload batch-small.bin */
	b.len = 0;
	CHECK_INT(ws_frame_put_preamble(&b), 0);
	CHECK_INT(ws_frame_put(&b, WS_FRAME_BATCH, 0, 1, batch_small,
	    sizeof batch_small), 0);
	CHECK_INT(b.len, 10 + 14 + 112);
	file = read_data("frame-batch.bin", &n);
	CHECK(file != NULL);
	if (file) {
		CHECK_MEM(file, n, b.p, b.len);
		CHECK_MEM(file + 10, 10, frame_batch_hdr, 10);
		CHECK_MEM(file + 20, 112, batch_small, sizeof batch_small);
		CHECK_MEM(file + n - 4, 4, frame_batch_crc, 4);
		run_decode(&r, file, n, NULL, 0, 0, 0, 1);
		CHECK_INT(r.rc, 0);
		CHECK_INT(r.n, 1);
		if (r.n == 1) {
			CHECK_INT(r.f[0].type, WS_FRAME_BATCH);
			CHECK_INT(r.f[0].flags, 0);
			CHECK_INT(r.f[0].channel, 1);
			CHECK_MEM(r.f[0].payload, r.f[0].len, batch_small,
			    sizeof batch_small);
		}
		run_free(&r);
	}
	free(file);
	file = read_data("batch-small.bin", &n);
	CHECK(file != NULL);
	if (file)
		CHECK_MEM(file, n, batch_small, sizeof batch_small);
	free(file);
	ws_buf_release(&b);
}

TEST(parse)
{
	struct ws_buf b = WS_BUF_INIT;
	struct ws_frame f;
	size_t used, k, i;
	uint8_t h[64];

	/* Each frame of the multi stream, alone and with junk after it. */
	build_multi(&b);
	for (i = 0; i < NELEM(multi); i++) {
		const uint8_t *p = b.p + multi[i].at;
		size_t flen = WS_FRAME_OVERHEAD + multi[i].len;

		memset(&f, 0, sizeof f);
		used = 0;
		CHECK_INT(ws_frame_parse(p, flen, WS_FRAME_MAX_DEFAULT, &f, &used), 0);
		CHECK_INT(used, flen);
		CHECK_INT(f.type, multi[i].type);
		CHECK_INT(f.flags, multi[i].flags);
		CHECK_INT(f.channel, multi[i].channel);
		CHECK_INT(f.len, multi[i].len);
		if (multi[i].len) {
			CHECK(f.payload == p + WS_FRAME_HDRLEN);
			CHECK_MEM(f.payload, f.len, multi[i].payload, multi[i].len);
		}
		/* The rest of the stream after it does not matter. */
		CHECK_INT(ws_frame_parse(p, b.len - multi[i].at, WS_FRAME_MAX_DEFAULT,
		    &f, &used), 0);
		CHECK_INT(used, flen);
		/* A length exactly at the maximum is fine. */
		CHECK_INT(ws_frame_parse(p, flen, multi[i].len, &f, &used), 0);
		/* Every proper prefix is WS_ETRUNC. */
		for (k = 0; k < flen; k++)
			CHECK_INT(ws_frame_parse(p, k, WS_FRAME_MAX_DEFAULT, &f,
			    &used), WS_ETRUNC);
		/* One byte over the maximum. */
		if (multi[i].len) {
			CHECK_INT(ws_frame_parse(p, flen, multi[i].len - 1, &f,
			    &used), WS_ETOOBIG);
			/* The header alone is enough to refuse it. */
			CHECK_INT(ws_frame_parse(p, WS_FRAME_HDRLEN,
			    multi[i].len - 1, &f, &used), WS_ETOOBIG);
		}
	}

	/* A bad checksum, in the trailer or anywhere else. */
	memcpy(h, frame_hb, sizeof frame_hb);
	h[sizeof frame_hb - 1] ^= 0x01;
	CHECK_INT(ws_frame_parse(h, sizeof frame_hb, 1024, &f, &used), WS_ECHECKSUM);
	memcpy(h, frame_hb, sizeof frame_hb);
	h[12] ^= 0x40;
	CHECK_INT(ws_frame_parse(h, sizeof frame_hb, 1024, &f, &used), WS_ECHECKSUM);
	memcpy(h, frame_hb, sizeof frame_hb);
	h[1] = 0x01; /* flags */
	CHECK_INT(ws_frame_parse(h, sizeof frame_hb, 1024, &f, &used), WS_ECHECKSUM);
	memcpy(h, frame_hb, sizeof frame_hb);
	h[2] = 0x01; /* channel */
	CHECK_INT(ws_frame_parse(h, sizeof frame_hb, 1024, &f, &used), WS_ECHECKSUM);

	/* Type 0 with a correct checksum is malformed. */
	memcpy(h, frame_hb, sizeof frame_hb);
	h[0] = 0;
	ws_put_u32le(h + 16, ws_crc32c(0, h, 16));
	CHECK_INT(ws_frame_parse(h, sizeof frame_hb, 1024, &f, &used), WS_ECORRUPT);

	/* A header claiming 4 GiB - 1. */
	memcpy(h, frame_hb, 10);
	ws_put_u32le(h + 6, UINT32_MAX);
	CHECK_INT(ws_frame_parse(h, 10, WS_FRAME_MAX_DEFAULT, &f, &used),
	    WS_ETOOBIG);
	CHECK_INT(ws_frame_parse(h, sizeof h, WS_FRAME_MAX_LIMIT, &f, &used),
	    WS_ETOOBIG);
	ws_buf_release(&b);
}

TEST(decoder_init)
{
	struct ws_frame_decoder d;

	ws_frame_decoder_init(&d, 0, 0);
	CHECK_INT(d.max, WS_FRAME_MAX_DEFAULT);
	CHECK_INT(d.error, 0);
	CHECK_INT(d.offset, 0);
	ws_frame_decoder_release(&d);
	ws_frame_decoder_init(&d, SIZE_MAX, WS_FRAME_NO_PREAMBLE);
	CHECK_INT(d.max, WS_FRAME_MAX_LIMIT);
	CHECK_INT(d.opts, WS_FRAME_NO_PREAMBLE);
	ws_frame_decoder_release(&d);
	ws_frame_decoder_init(&d, (size_t)WS_FRAME_MAX_LIMIT + 1, 0);
	CHECK_INT(d.max, WS_FRAME_MAX_LIMIT);
	ws_frame_decoder_release(&d);
	ws_frame_decoder_init(&d, 5, 0);
	CHECK_INT(d.max, 5);
	/* Released twice, or never fed: fine. */
	ws_frame_decoder_release(&d);
	ws_frame_decoder_release(&d);
}

TEST(decoder_empty_streams)
{
	struct run r;

	/* Nothing at all. */
	run_decode(&r, preamble, 0, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 0);
	run_decode(&r, preamble, 0, NULL, 0, 0, WS_FRAME_NO_PREAMBLE, 1);
	CHECK_INT(r.rc, 0);
	/* The preamble alone. */
	run_decode(&r, preamble, 10, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 0);
	CHECK_INT(r.version, WS_FRAME_VERSION);
	CHECK_INT(r.offset, 10);
}

/* Whole input in one call: frames point into it, no copy. */
TEST(decoder_zero_copy)
{
	struct ws_buf b = WS_BUF_INIT;
	struct run r;
	size_t i;

	build_multi(&b);
	run_decode(&r, b.p, b.len, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, 0);
	CHECK(!r.bad);
	CHECK(frames_match(&r, multi, NELEM(multi)));
	for (i = 0; i < r.n && i < NELEM(multi); i++) {
		if (!multi[i].len)
			continue;
		CHECK(r.f[i].zero_copy);
		CHECK_INT(r.f[i].in_chunk_at, multi[i].at + WS_FRAME_HDRLEN);
	}
	CHECK_INT(r.offset, MULTI_LEN);
	CHECK_INT(r.version, 1);
	run_free(&r);

	/* Cut inside the clock frame: the frames before and after the cut
	 * still come straight from their chunk; the cut one is whole. */
	{
		size_t cut = 50;

		run_decode(&r, b.p, b.len, &cut, 1, 0, 0, 1);
		CHECK_INT(r.rc, 0);
		CHECK(frames_match(&r, multi, NELEM(multi)));
		if (r.n == NELEM(multi)) {
			CHECK(r.f[0].zero_copy);
			CHECK(r.f[2].zero_copy);
			CHECK_INT(r.f[2].in_chunk_at, 80 - cut + WS_FRAME_HDRLEN);
		}
		run_free(&r);
	}

	/* With WS_FRAME_NO_PREAMBLE, frames alone. */
	run_decode(&r, b.p + 10, b.len - 10, NULL, 0, 0, WS_FRAME_NO_PREAMBLE, 1);
	CHECK_INT(r.rc, 0);
	CHECK(frames_match(&r, multi, NELEM(multi)));
	if (r.n)
		CHECK(r.f[0].zero_copy && r.f[0].in_chunk_at == 10);
	CHECK_INT(r.offset, MULTI_LEN - 10);
	run_free(&r);
	ws_buf_release(&b);
}

/* Every way to cut the multi stream in three (empty pieces included). */
TEST(decoder_all_two_cuts)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t cuts[2];
	struct run r;
	int failed = 0;

	build_multi(&b);
	for (cuts[0] = 0; cuts[0] <= b.len && !failed; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= b.len && !failed; cuts[1]++) {
			run_decode(&r, b.p, b.len, cuts, 2, 0, 0, 1);
			if (r.rc != 0 || r.bad || r.offset != b.len ||
			    !frames_match(&r, multi, NELEM(multi))) {
				fprintf(stderr, "  cuts %zu %zu: rc %d (%s), %zu "
				    "frames\n", cuts[0], cuts[1], r.rc, r.err, r.n);
				failed = 1;
			}
			run_free(&r);
		}
	}
	CHECK(!failed);

	/* And the frames alone, without a preamble. */
	for (cuts[0] = 0; cuts[0] <= b.len - 10 && !failed; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= b.len - 10 && !failed; cuts[1]++) {
			run_decode(&r, b.p + 10, b.len - 10, cuts, 2, 0,
			    WS_FRAME_NO_PREAMBLE, 1);
			if (r.rc != 0 || r.bad ||
			    !frames_match(&r, multi, NELEM(multi))) {
				fprintf(stderr, "  no preamble, cuts %zu %zu: rc "
				    "%d\n", cuts[0], cuts[1], r.rc);
				failed = 1;
			}
			run_free(&r);
		}
	}
	CHECK(!failed);
	ws_buf_release(&b);
}

TEST(decoder_byte_at_a_time)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t cuts[MULTI_LEN], i;
	struct run r;

	build_multi(&b);
	for (i = 0; i < b.len; i++)
		cuts[i] = i + 1;
	run_decode(&r, b.p, b.len, cuts, b.len - 1, 0, 0, 1);
	CHECK_INT(r.rc, 0);
	CHECK(!r.bad);
	CHECK(frames_match(&r, multi, NELEM(multi)));
	CHECK_INT(r.offset, MULTI_LEN);
	run_free(&r);
	ws_buf_release(&b);
}

/* A longer stream with big and small frames, in random pieces. */
TEST(decoder_random_chunkings)
{
	enum { NF = 40 };
	struct ws_buf b = WS_BUF_INIT;
	struct xf x[NF];
	uint8_t *pl[NF];
	size_t *cuts, ncuts, i, j;
	struct run r;
	int round, failed = 0;

	CHECK_INT(ws_frame_put_preamble(&b), 0);
	for (i = 0; i < NF; i++) {
		size_t len = i % 10 == 3 ? 70000 + (size_t)t_below(5000) :
		    (size_t)t_below(300);

		pl[i] = malloc(len ? len : 1);
		for (j = 0; j < len; j++)
			pl[i][j] = (uint8_t)t_rand();
		x[i].type = (uint8_t)(1 + t_below(255));
		x[i].flags = (uint8_t)t_rand();
		x[i].channel = (uint32_t)t_rand();
		x[i].payload = pl[i];
		x[i].len = (uint32_t)len;
		x[i].at = b.len;
		CHECK_INT(ws_frame_put(&b, x[i].type, x[i].flags, x[i].channel,
		    pl[i], len), 0);
	}
	cuts = malloc(b.len * sizeof *cuts);
	for (round = 0; round < 300 && !failed; round++) {
		size_t at = 0;
		uint64_t scale = round % 3 == 0 ? 8 : round % 3 == 1 ? 200 : 20000;

		ncuts = 0;
		for (;;) {
			at += (size_t)t_below(scale);
			if (at >= b.len)
				break;
			cuts[ncuts++] = at;
		}
		run_decode(&r, b.p, b.len, cuts, ncuts, 80000, 0, 1);
		if (r.rc || r.bad || !frames_match(&r, x, NF) || r.offset != b.len) {
			fprintf(stderr, "  round %d: rc %d (%s), %zu frames\n",
			    round, r.rc, r.err, r.n);
			failed = 1;
		}
		/* The decoder's buffer holds at most one frame. */
		if (r.part_cap > 2 * 80000 + 4096) {
			fprintf(stderr, "  part grew to %zu\n", r.part_cap);
			failed = 1;
		}
		run_free(&r);
	}
	CHECK(!failed);

	/* A 1 MiB payload exactly at the maximum, fed in 4 KiB pieces. */
	{
		size_t len = 1u << 20;
		uint8_t *big = malloc(len);
		struct xf bx = {0x10, 0, 3, big, (uint32_t)len, 10};

		for (i = 0; i < len; i++)
			big[i] = (uint8_t)(i * 31 + 7);
		b.len = 0;
		CHECK_INT(ws_frame_put_preamble(&b), 0);
		CHECK_INT(ws_frame_put(&b, 0x10, 0, 3, big, len), 0);
		ncuts = 0;
		for (i = 4096; i < b.len; i += 4096)
			cuts[ncuts++] = i;
		run_decode(&r, b.p, b.len, cuts, ncuts, len, 0, 1);
		CHECK_INT(r.rc, 0);
		CHECK(frames_match(&r, &bx, 1));
		run_free(&r);
		/* One byte less allowed: refused. */
		run_decode(&r, b.p, b.len, cuts, ncuts, len - 1, 0, 1);
		CHECK_INT(r.rc, WS_ETOOBIG);
		CHECK_INT(r.error_offset, 10);
		CHECK_INT(r.n, 0);
		run_free(&r);
		free(big);
	}
	free(cuts);
	for (i = 0; i < NF; i++)
		free(pl[i]);
	ws_buf_release(&b);
}

/* A header claiming a huge payload is refused as soon as it is read. */
TEST(decoder_max_before_alloc)
{
	uint8_t s[64];
	struct ws_frame_decoder d;
	struct ws_frame f;
	size_t used, i;
	char err[WS_ERRLEN];
	int rc;

	memcpy(s, preamble, 10);
	s[10] = WS_FRAME_BATCH;
	s[11] = 0;
	ws_put_u32le(s + 12, 1);
	ws_put_u32le(s + 16, 1u << 30); /* 1 GiB */

	/* Whole header in one call, nothing after it. */
	ws_frame_decoder_init(&d, 1u << 20, 0);
	err[0] = '\0';
	rc = ws_frame_decoder_feed(&d, s, 20, &used, &f, err);
	CHECK_INT(rc, WS_ETOOBIG);
	CHECK_INT(d.error_offset, 10);
	CHECK_INT(d.error, WS_ETOOBIG);
	CHECK(d.part.cap <= (1u << 20));
	CHECK(err[0] != '\0');
	ws_frame_decoder_release(&d);

	/* One byte at a time: accepted up to the last header byte. */
	ws_frame_decoder_init(&d, 1u << 20, 0);
	for (i = 0; i < 20; i++) {
		rc = ws_frame_decoder_feed(&d, s + i, 1, &used, &f, NULL);
		if (i < 19)
			CHECK_INT(rc, 0);
		else
			CHECK_INT(rc, WS_ETOOBIG);
		if (rc < 0)
			break;
	}
	CHECK_INT(i, 19);
	CHECK_INT(d.error_offset, 10);
	CHECK(d.part.cap <= (1u << 20));
	ws_frame_decoder_release(&d);

	/* The same after a good frame: the offset is that of the bad one. */
	{
		uint8_t t[128];

		memcpy(t, preamble, 10);
		memcpy(t + 10, frame_hb, sizeof frame_hb);
		memcpy(t + 30, s + 10, 10);
		ws_frame_decoder_init(&d, 1u << 20, 0);
		rc = ws_frame_decoder_feed(&d, t, 40, &used, &f, NULL);
		CHECK_INT(rc, 1);
		CHECK_INT(used, 30);
		rc = ws_frame_decoder_feed(&d, t + used, 40 - used, &used, &f, err);
		CHECK_INT(rc, WS_ETOOBIG);
		CHECK_INT(d.error_offset, 30);
		ws_frame_decoder_release(&d);
	}

	/* max + 1, and the largest length against the default maximum and
	 * against the absolute limit. */
	{
		static const struct {
			size_t max;
			uint32_t len;
		} cases[] = {
			{1000, 1001},
			{0, WS_FRAME_MAX_DEFAULT + 1},
			{0, UINT32_MAX},
			{SIZE_MAX, WS_FRAME_MAX_LIMIT + 1},
			{SIZE_MAX, UINT32_MAX},
		};

		for (i = 0; i < NELEM(cases); i++) {
			ws_put_u32le(s + 16, cases[i].len);
			ws_frame_decoder_init(&d, cases[i].max, 0);
			rc = ws_frame_decoder_feed(&d, s, 20, &used, &f, NULL);
			CHECK_INT(rc, WS_ETOOBIG);
			CHECK_INT(d.error_offset, 10);
			CHECK(d.part.cap <= (1u << 20));
			ws_frame_decoder_release(&d);
		}
	}

	/* Exactly at max, header alone: more input needed. */
	ws_put_u32le(s + 16, 1000);
	ws_frame_decoder_init(&d, 1000, 0);
	rc = ws_frame_decoder_feed(&d, s, 20, &used, &f, NULL);
	CHECK_INT(rc, 0);
	CHECK_INT(used, 20);
	CHECK_INT(ws_frame_decoder_finish(&d, NULL), WS_ETRUNC);
	CHECK_INT(d.error_offset, 10);
	ws_frame_decoder_release(&d);
}

/* Index of the region of the multi stream holding byte pos: 0 for the
 * preamble, i + 1 for frame i. */
static size_t multi_region(size_t pos)
{
	size_t i;

	for (i = NELEM(multi); i-- > 0;)
		if (pos >= multi[i].at)
			return i + 1;
	return 0;
}

static size_t region_start(size_t region)
{
	return region ? multi[region - 1].at : 0;
}

/* Every single-bit flip is detected, one-shot or byte by byte, and the
 * frames before the damage still come out intact. */
TEST(decoder_bitflips)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t pos, cuts[MULTI_LEN], i;
	struct run r1, r2;
	int bit, failed = 0;

	build_multi(&b);
	for (i = 0; i < b.len; i++)
		cuts[i] = i + 1;
	for (pos = 0; pos < b.len; pos++) {
		size_t region = multi_region(pos);

		for (bit = 0; bit < 8; bit++) {
			int rcok;

			b.p[pos] ^= (uint8_t)(1u << bit);
			/* A small maximum, so length flips hit it too. */
			run_decode(&r1, b.p, b.len, NULL, 0, 4096, 0, 1);
			run_decode(&r2, b.p, b.len, cuts, b.len - 1, 4096, 0, 1);
			b.p[pos] ^= (uint8_t)(1u << bit);

			rcok = r1.rc == WS_ECHECKSUM || r1.rc == WS_EMAGIC ||
			    r1.rc == WS_EVERSION || r1.rc == WS_ETOOBIG ||
			    r1.rc == WS_ECORRUPT ||
			    (r1.rc == WS_ETRUNC && r1.in_finish);
			if (!rcok || r1.bad || r2.bad ||
			    !frames_match(&r1, multi, region ? region - 1 : 0) ||
			    r1.error_offset < region_start(region) ||
			    r1.error_offset > pos) {
				fprintf(stderr, "  flip byte %zu bit %d: rc %d "
				    "(%s) at %" PRIu64 ", %zu frames\n", pos, bit,
				    r1.rc, r1.err, r1.error_offset, r1.n);
				failed++;
			} else if (r2.rc != r1.rc || r2.n != r1.n ||
			    r2.error_offset != r1.error_offset ||
			    !frames_match(&r2, multi, r1.n)) {
				fprintf(stderr, "  flip byte %zu bit %d: byte by "
				    "byte gives rc %d at %" PRIu64 ", one-shot rc "
				    "%d at %" PRIu64 "\n", pos, bit, r2.rc,
				    r2.error_offset, r1.rc, r1.error_offset);
				failed++;
			}
			if (r1.rc < 0 && r1.err[0] == '\0') {
				fprintf(stderr, "  flip byte %zu bit %d: no "
				    "message\n", pos, bit);
				failed++;
			}
			run_free(&r1);
			run_free(&r2);
			if (failed > 10)
				goto out;
		}
	}
out:
	CHECK_INT(failed, 0);
	ws_buf_release(&b);
}

/* Every truncation is reported by finish at the start of the unfinished
 * item, after the frames that were whole. */
TEST(decoder_truncations)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t k, i, cuts[MULTI_LEN];
	struct run r;
	int failed = 0;

	build_multi(&b);
	for (i = 0; i < b.len; i++)
		cuts[i] = i + 1;
	for (k = 0; k <= b.len; k++) {
		size_t whole = 0, region = multi_region(k);
		int boundary = k == 0 || k == 10 || k == b.len;
		int pass;

		for (i = 0; i < NELEM(multi); i++) {
			if (multi[i].at + WS_FRAME_OVERHEAD + multi[i].len <= k)
				whole++;
			if (multi[i].at == k)
				boundary = 1;
		}
		for (pass = 0; pass < 2; pass++) {
			if (pass == 0)
				run_decode(&r, b.p, k, NULL, 0, 0, 0, 1);
			else
				run_decode(&r, b.p, k, cuts, k ? k - 1 : 0, 0, 0, 1);
			if (r.bad || !frames_match(&r, multi, whole) ||
			    (boundary && r.rc != 0) ||
			    (!boundary && (r.rc != WS_ETRUNC || !r.in_finish ||
			    r.error_offset != region_start(region) ||
			    r.err[0] == '\0'))) {
				fprintf(stderr, "  prefix %zu (pass %d): rc %d (%s) "
				    "at %" PRIu64 ", %zu frames\n", k, pass, r.rc,
				    r.err, r.error_offset, r.n);
				failed = 1;
			}
			run_free(&r);
		}
	}
	CHECK(!failed);
	ws_buf_release(&b);
}

TEST(decoder_sticky)
{
	struct ws_buf b = WS_BUF_INIT;
	struct ws_frame_decoder d;
	struct ws_frame f;
	size_t used;
	int rc;

	build_multi(&b);
	b.p[35] ^= 0x10; /* the clock frame's channel */
	ws_frame_decoder_init(&d, 0, 0);
	rc = ws_frame_decoder_feed(&d, b.p, b.len, &used, &f, NULL);
	CHECK_INT(rc, 1);
	CHECK_INT(used, 30);
	rc = ws_frame_decoder_feed(&d, b.p + 30, b.len - 30, &used, &f, NULL);
	CHECK_INT(rc, WS_ECHECKSUM);
	CHECK_INT(d.error, WS_ECHECKSUM);
	CHECK_INT(d.error_offset, 30);
	/* Good bytes later do not clear it. */
	rc = ws_frame_decoder_feed(&d, frame_hb, sizeof frame_hb, &used, &f, NULL);
	CHECK_INT(rc, WS_ECHECKSUM);
	rc = ws_frame_decoder_feed(&d, frame_hb, 0, &used, &f, NULL);
	CHECK_INT(rc, WS_ECHECKSUM);
	CHECK_INT(d.error_offset, 30);
	CHECK_INT(ws_frame_decoder_finish(&d, NULL), WS_ECHECKSUM);
	ws_frame_decoder_release(&d);

	/* A bad magic is sticky too. */
	ws_frame_decoder_init(&d, 0, 0);
	rc = ws_frame_decoder_feed(&d, (const uint8_t *)"{\"type\"", 7, &used,
	    &f, NULL);
	CHECK_INT(rc, WS_EMAGIC);
	CHECK_INT(d.error_offset, 0);
	rc = ws_frame_decoder_feed(&d, preamble, 10, &used, &f, NULL);
	CHECK_INT(rc, WS_EMAGIC);
	ws_frame_decoder_release(&d);

	/* A finished truncated stream stays truncated. */
	ws_frame_decoder_init(&d, 0, 0);
	b.p[35] ^= 0x10;
	rc = ws_frame_decoder_feed(&d, b.p, 35, &used, &f, NULL);
	CHECK_INT(rc, 1);
	rc = ws_frame_decoder_feed(&d, b.p + used, 35 - used, &used, &f, NULL);
	CHECK_INT(rc, 0);
	CHECK_INT(ws_frame_decoder_finish(&d, NULL), WS_ETRUNC);
	CHECK_INT(d.error_offset, 30);
	CHECK_INT(ws_frame_decoder_finish(&d, NULL), WS_ETRUNC);
	ws_frame_decoder_release(&d);
	ws_buf_release(&b);
}

TEST(decoder_preamble_errors)
{
	uint8_t s[64];
	struct run r;

	/* Frames with no preamble, when one is expected. */
	memcpy(s, frame_hb, sizeof frame_hb);
	run_decode(&r, s, sizeof frame_hb, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, WS_EMAGIC);
	CHECK_INT(r.error_offset, 0);
	CHECK_INT(r.n, 0);
	/* Version 2. */
	memcpy(s, preamble, 10);
	s[8] = 2;
	memcpy(s + 10, frame_hb, sizeof frame_hb);
	run_decode(&r, s, 30, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, WS_EVERSION);
	CHECK_INT(r.n, 0);
	CHECK(r.error_offset <= 8);
	CHECK(r.err[0] != '\0');
	/* JSON is not a binary stream. */
	run_decode(&r, (const uint8_t *)"{}\n", 3, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, WS_EMAGIC);
	/* A type-0 frame with a correct checksum. */
	memcpy(s, preamble, 10);
	memcpy(s + 10, frame_hb, sizeof frame_hb);
	s[10] = 0;
	ws_put_u32le(s + 26, ws_crc32c(0, s + 10, 16));
	run_decode(&r, s, 30, NULL, 0, 0, 0, 1);
	CHECK_INT(r.rc, WS_ECORRUPT);
	CHECK_INT(r.error_offset, 10);
	CHECK_INT(r.n, 0);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(type_names);
	RUN(preamble_check);
	RUN(put_golden);
	RUN(golden_files);
	RUN(parse);
	RUN(decoder_init);
	RUN(decoder_empty_streams);
	RUN(decoder_zero_copy);
	RUN(decoder_all_two_cuts);
	RUN(decoder_byte_at_a_time);
	RUN(decoder_random_chunkings);
	RUN(decoder_max_before_alloc);
	RUN(decoder_bitflips);
	RUN(decoder_truncations);
	RUN(decoder_sticky);
	RUN(decoder_preamble_errors);
	TEST_MAIN_END();
}
