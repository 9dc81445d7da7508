/* SPDX-License-Identifier: MIT */
/*
 * micro.c - micro-benchmarks for libwsync.
 *
 * Measures the frame codec (ws_frame_put, ws_frame_decoder_feed), the
 * delta batch codec (ws_batch_encode, ws_batch_decode) and vector-clock
 * operations, then compares the size of a wsync batch with the patchset
 * and changeset SQLite's session extension records for the same changes.
 *
 * Prints one table on stdout and nothing else.  Each timing is run REPS
 * times and shown as median, min and max, because the machine may be
 * shared.  Inputs come from a fixed-seed xorshift generator, so every run
 * measures the same work and the sizes are reproducible.  A checksum of
 * the results is printed in the footer so the compiler cannot drop work.
 * Any failing call prints "micro: ..." on stderr and exits 70.
 */
/*
 * sqlite3.h declares sqlite3session_* only under these; Debian's
 * libsqlite3 is built with both, so the symbols are there to link.
 */
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wsync/wsync.h>

#define EX_SOFTWARE 70
#define REPS 5              /* runs per figure */
#define TARGET_SECS 0.1     /* length of one calibrated run */

#define FRAME_CHUNK (64u << 10)    /* bytes per decoder_feed call */
#define FRAME_ROUND (8u << 20)     /* payload bytes per iteration */
#define FRAME_PER_RUN (200u << 20) /* payload bytes per run */

#define NCOLS 5
#define NROWS 10000                /* rows in the pre-populated table */
#define DELTA_BATCHES 8            /* distinct batches in the codec runs */
#define DELTA_CHANGES 1000         /* changes per batch in the codec runs */
#define TEXT_POOL (1u << 20)

static uint64_t checksum; /* folds in results of every timed loop */
#define BENCH_NAME "micro"
#include "common.h"


static void rnd_fill(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(rnd() >> 56);
}


/* ---------------------------------------------------------------- timing */

/* One benchmark body: do `iters` iterations of the work on ctx. */
typedef void bench_fn(void *ctx, uint64_t iters);

struct figure {
	double med, min, max;
};

static double time_run(bench_fn *fn, void *ctx, uint64_t iters)
{
	double t0 = now(), t;

	fn(ctx, iters);
	t = now() - t0;
	return t > 1e-9 ? t : 1e-9;
}

/* Iterations that make one run last about TARGET_SECS. */
static uint64_t calibrate(bench_fn *fn, void *ctx)
{
	uint64_t iters = 1;
	double t, scaled;

	for (;;) {
		t = time_run(fn, ctx, iters);
		if (t >= 0.01 || iters >= (UINT64_C(1) << 40))
			break;
		iters *= t < 0.001 ? 16 : 2;
	}
	scaled = (double)iters * (TARGET_SECS / t);
	return scaled < 1 ? 1 : (uint64_t)scaled;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Time REPS runs of `iters` iterations each; t[] comes back sorted. */
static void measure(bench_fn *fn, void *ctx, uint64_t iters, double t[REPS])
{
	for (int i = 0; i < REPS; i++)
		t[i] = time_run(fn, ctx, iters);
	qsort(t, REPS, sizeof t[0], cmp_double);
}

/* Rates, in units per second, of the sorted run times t[]. */
static struct figure rate(const double t[REPS], double units)
{
	struct figure f;

	f.med = units / t[REPS / 2];
	f.min = units / t[REPS - 1];
	f.max = units / t[0];
	return f;
}

static void row(const char *name, struct figure f, double scale, const char *unit)
{
	printf("  %-36s %10.1f %10.1f %10.1f  %s\n", name, f.med / scale,
	    f.min / scale, f.max / scale, unit);
	fflush(stdout);
}

/* ---------------------------------------------------------------- frames */

struct frame_ctx {
	size_t plen;          /* payload bytes per frame */
	size_t nframes;       /* frames per iteration */
	const uint8_t *src;   /* FRAME_ROUND random bytes */
	struct ws_buf out;    /* encode target */
	struct ws_buf stream; /* one pre-encoded iteration, for decoding */
};

/* Encode a preamble and nframes frames, as a writer fills its buffer. */
static void frame_encode(struct frame_ctx *c, struct ws_buf *out)
{
	out->len = 0;
	CK("ws_frame_put_preamble", ws_frame_put_preamble(out));
	for (size_t k = 0; k < c->nframes; k++)
		CK("ws_frame_put", ws_frame_put(out, WS_FRAME_BATCH, 0, 1,
		    c->src + k * c->plen, c->plen));
}

static void frame_encode_run(void *vctx, uint64_t iters)
{
	struct frame_ctx *c = vctx;

	for (uint64_t i = 0; i < iters; i++) {
		frame_encode(c, &c->out);
		checksum += c->out.len + c->out.p[c->out.len - 1];
	}
}

/*
 * Decode the stream fed in FRAME_CHUNK pieces, like a read() loop.  The
 * pieces are slices of the in-memory stream, so no read() copy is timed;
 * 64 KiB frames straddle pieces and are copied by the decoder.
 */
static void frame_decode_run(void *vctx, uint64_t iters)
{
	struct frame_ctx *c = vctx;
	struct ws_frame_decoder d;
	struct ws_frame f;
	uint64_t sum = 0;

	for (uint64_t i = 0; i < iters; i++) {
		size_t got = 0;

		ws_frame_decoder_init(&d, 0, 0);
		for (size_t off = 0; off < c->stream.len; off += FRAME_CHUNK) {
			const uint8_t *p = c->stream.p + off;
			size_t n = c->stream.len - off, used;
			int rc;

			if (n > FRAME_CHUNK)
				n = FRAME_CHUNK;
			for (;;) {
				errbuf[0] = '\0';
				rc = ws_frame_decoder_feed(&d, p, n, &used, &f, errbuf);
				if (rc < 0)
					fail("ws_frame_decoder_feed", rc);
				if (used > n)
					die("ws_frame_decoder_feed: used %zu of %zu bytes", used, n);
				p += used;
				n -= used;
				if (rc == 0)
					break;
				if (f.len != c->plen)
					die("decoded a %" PRIu32 "-byte frame, expected %zu",
					    f.len, c->plen);
				sum += f.len + f.payload[f.len - 1];
				got++;
			}
		}
		CK("ws_frame_decoder_finish", ws_frame_decoder_finish(&d, errbuf));
		ws_frame_decoder_release(&d);
		if (got != c->nframes)
			die("decoded %zu frames, expected %zu", got, c->nframes);
	}
	checksum += sum;
}

static void bench_frames(void)
{
	static const size_t sizes[] = {4096, 65536};
	struct frame_ctx c;
	uint8_t *src = xmalloc(FRAME_ROUND);
	uint64_t iters = FRAME_PER_RUN / FRAME_ROUND;
	char name[64];

	rnd_seed(1);
	rnd_fill(src, FRAME_ROUND);
	printf("frames: payload MB/s, %u MiB per run, decoder fed %u KiB at a time\n",
	    FRAME_PER_RUN >> 20, FRAME_CHUNK >> 10);
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		double t[REPS];

		memset(&c, 0, sizeof c);
		c.plen = sizes[s];
		c.nframes = FRAME_ROUND / c.plen;
		c.src = src;
		frame_encode(&c, &c.stream);
		measure(frame_encode_run, &c, iters, t);
		snprintf(name, sizeof name, "encode, %zu KiB payloads", c.plen >> 10);
		row(name, rate(t, (double)FRAME_ROUND * (double)iters), 1e6, "MB/s");
		measure(frame_decode_run, &c, iters, t);
		snprintf(name, sizeof name, "decode, %zu KiB payloads", c.plen >> 10);
		row(name, rate(t, (double)FRAME_ROUND * (double)iters), 1e6, "MB/s");
		ws_buf_release(&c.out);
		ws_buf_release(&c.stream);
	}
	free(src);
}

/* ------------------------------------------------------- generated changes */

/*
 * The table of every delta benchmark:
 *   notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, score REAL, n INTEGER)
 * Column i of the mask is note_cols[i]; the key travels in pk, never in it.
 */
static const char *const note_cols[NCOLS] = {"id", "title", "body", "score", "n"};
static const uint32_t note_pk[1] = {0};
enum { C_ID, C_TITLE, C_BODY, C_SCORE, C_N };

static uint8_t text_pool[TEXT_POOL]; /* lowercase words; values point here */

struct row {
	struct ws_value v[NCOLS];
};

/* One planned change: the net effect on one row. */
struct gchange {
	uint8_t op;
	uint8_t mask;
	uint32_t nvals;
	struct ws_value pk;
	struct ws_value vals[NCOLS - 1]; /* in column order */
};

static void text_pool_init(void)
{
	rnd_seed(2);
	for (size_t i = 0; i < TEXT_POOL; i++)
		text_pool[i] = rnd_below(6) == 0 ? ' ' : (uint8_t)('a' + rnd_below(26));
}

static struct ws_value text_value(size_t min, size_t max)
{
	struct ws_value v = {.type = WS_TEXT};

	v.n = min + rnd_below(max - min + 1);
	v.p = text_pool + rnd_below(TEXT_POOL - max);
	return v;
}

/* A fresh value for column col, as an application would write it. */
static struct ws_value gen_value(int col)
{
	struct ws_value v = {.type = WS_NULL};

	switch (col) {
	case C_TITLE:
		return text_value(8, 60);
	case C_BODY:
		if (rnd_below(10) == 0)
			return v;
		return text_value(40, 400);
	case C_SCORE:
		v.type = WS_REAL;
		v.r = (double)(rnd() >> 11) * 0x1.0p-53 * 100.0;
		return v;
	case C_N:
		v.type = WS_INTEGER;
		v.i = (int64_t)rnd_below(10000);
		return v;
	}
	die("no generator for column %d", col);
}

static int value_eq(const struct ws_value *a, const struct ws_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case WS_INTEGER:
		return a->i == b->i;
	case WS_REAL:
		return memcmp(&a->r, &b->r, sizeof a->r) == 0;
	case WS_TEXT:
	case WS_BLOB:
		return a->n == b->n && memcmp(a->p, b->p, a->n) == 0;
	}
	return 1;
}

static void rows_init(struct row *rows)
{
	rnd_seed(3);
	for (size_t i = 0; i < NROWS; i++) {
		rows[i].v[C_ID].type = WS_INTEGER;
		rows[i].v[C_ID].i = (int64_t)i + 1;
		for (int col = 1; col < NCOLS; col++)
			rows[i].v[col] = gen_value(col);
	}
}

/* Percentages of inserts and updates in a plan; the rest are deletes. */
struct mix {
	unsigned ins, upd;
};

static const struct mix mix_default = {30, 50};

/*
 * Plan n changes against rows (ids 1..NROWS) in the proportions of mix:
 * inserts of new ids from *next_id, updates of one or two columns, and
 * deletes.  Each existing row is touched at most once and an update
 * always changes its values, so SQLite's session records exactly these n
 * changes.
 */
static void plan(const struct row *rows, size_t n, struct mix mix,
    int64_t *next_id, struct gchange *out)
{
	static int64_t perm[NROWS];
	size_t used = 0;

	for (size_t i = 0; i < NROWS; i++)
		perm[i] = (int64_t)i + 1;
	for (size_t i = NROWS - 1; i > 0; i--) {
		size_t j = rnd_below(i + 1);
		int64_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t k = 0; k < n; k++) {
		struct gchange *c = &out[k];
		unsigned r = (unsigned)rnd_below(100);

		memset(c, 0, sizeof *c);
		c->op = r < mix.ins ? WS_OP_INSERT :
		    r < mix.ins + mix.upd ? WS_OP_UPDATE : WS_OP_DELETE;
		if (c->op != WS_OP_INSERT && used == NROWS)
			c->op = WS_OP_INSERT;
		c->pk.type = WS_INTEGER;
		if (c->op == WS_OP_INSERT) {
			c->pk.i = (*next_id)++;
			for (int col = 1; col < NCOLS; col++) {
				c->mask |= (uint8_t)(1u << col);
				c->vals[c->nvals++] = gen_value(col);
			}
			continue;
		}
		c->pk.i = perm[used++];
		if (c->op == WS_OP_DELETE)
			continue;
		const struct row *old = &rows[c->pk.i - 1];
		unsigned a = 1 + (unsigned)rnd_below(NCOLS - 1);

		c->mask |= (uint8_t)(1u << a);
		if (rnd_below(2)) {
			unsigned b = 1 + (unsigned)rnd_below(NCOLS - 2);

			if (b >= a)
				b++;
			c->mask |= (uint8_t)(1u << b);
		}
		for (int col = 1; col < NCOLS; col++) {
			struct ws_value v;

			if (!(c->mask & (1u << col)))
				continue;
			do
				v = gen_value(col);
			while (value_eq(&v, &old->v[col]));
			c->vals[c->nvals++] = v;
		}
	}
}

/* Build a batch of the planned changes, all from one site. */
static void build_batch(struct ws_batch *b, const struct gchange *ch, size_t n,
    const struct ws_siteid *site, uint64_t counter)
{
	uint32_t t, s;

	ws_batch_init(b);
	CK("ws_batch_add_table", ws_batch_add_table(b, "notes", NCOLS, note_cols,
	    1, note_pk, &t, errbuf));
	for (size_t k = 0; k < n; k++) {
		struct ws_change c;

		CK("ws_batch_site", ws_batch_site(b, site, &s));
		memset(&c, 0, sizeof c);
		c.table = t;
		c.op = ch[k].op;
		c.site = s;
		c.counter = counter + k;
		c.pk = &ch[k].pk;
		c.mask = ch[k].op == WS_OP_DELETE ? NULL : &ch[k].mask;
		c.vals = ch[k].vals;
		c.nvals = ch[k].nvals;
		CK("ws_batch_add_change", ws_batch_add_change(b, &c, errbuf));
	}
}

static void site_init(struct ws_siteid *site)
{
	rnd_fill(site->b, sizeof site->b);
}

/* ----------------------------------------------------------- delta codec */

struct delta_ctx {
	struct ws_batch b[DELTA_BATCHES];
	struct ws_buf enc[DELTA_BATCHES];
	struct ws_buf out;
	struct ws_batch dec;
};

static void delta_encode_run(void *vctx, uint64_t iters)
{
	struct delta_ctx *c = vctx;

	for (uint64_t i = 0; i < iters; i++) {
		for (size_t k = 0; k < DELTA_BATCHES; k++) {
			c->out.len = 0;
			CK("ws_batch_encode", ws_batch_encode(&c->b[k], &c->out));
			checksum += c->out.len;
		}
	}
}

static void delta_decode_run(void *vctx, uint64_t iters)
{
	struct delta_ctx *c = vctx;

	for (uint64_t i = 0; i < iters; i++) {
		for (size_t k = 0; k < DELTA_BATCHES; k++) {
			CK("ws_batch_decode", ws_batch_decode(&c->dec, c->enc[k].p,
			    c->enc[k].len, errbuf));
			checksum += c->dec.nchanges;
		}
	}
}

static void bench_delta(const struct row *rows)
{
	static struct delta_ctx c;
	struct gchange *ch = xmalloc(DELTA_CHANGES * sizeof *ch);
	struct ws_siteid site;
	double t[REPS];
	uint64_t iters;
	double bytes = 0, changes = (double)DELTA_BATCHES * DELTA_CHANGES;

	rnd_seed(4);
	site_init(&site);
	for (size_t k = 0; k < DELTA_BATCHES; k++) {
		int64_t next_id = NROWS + 1;

		plan(rows, DELTA_CHANGES, mix_default, &next_id, ch);
		build_batch(&c.b[k], ch, DELTA_CHANGES, &site, 1 + k * DELTA_CHANGES);
		CK("ws_batch_encode", ws_batch_encode(&c.b[k], &c.enc[k]));
		bytes += (double)c.enc[k].len;
	}
	ws_batch_init(&c.dec);
	printf("\ndelta batches: %d batches of %d changes, %.0f bytes/change\n",
	    DELTA_BATCHES, DELTA_CHANGES, bytes / changes);

	iters = calibrate(delta_encode_run, &c);
	measure(delta_encode_run, &c, iters, t);
	row("encode", rate(t, bytes * (double)iters), 1e6, "MB/s");
	row("encode", rate(t, changes * (double)iters), 1e6, "Mchanges/s");

	iters = calibrate(delta_decode_run, &c);
	measure(delta_decode_run, &c, iters, t);
	row("decode", rate(t, bytes * (double)iters), 1e6, "MB/s");
	row("decode", rate(t, changes * (double)iters), 1e6, "Mchanges/s");

	for (size_t k = 0; k < DELTA_BATCHES; k++) {
		ws_batch_release(&c.b[k]);
		ws_buf_release(&c.enc[k]);
	}
	ws_batch_release(&c.dec);
	ws_buf_release(&c.out);
	free(ch);
}

/* ---------------------------------------------------------- vector clocks */

#define VC_SET 8

struct vc_ctx {
	size_t n;
	struct ws_siteid *sites;
	struct ws_vclock c[VC_SET]; /* equal, before, after and concurrent */
	struct ws_vclock dst, tmp;
	struct ws_buf buf;
};

static void vc_increment_run(void *vctx, uint64_t iters)
{
	struct vc_ctx *c = vctx;
	uint64_t v, sum = 0;

	for (uint64_t i = 0; i < iters; i++) {
		CK("ws_vclock_increment", ws_vclock_increment(&c->dst,
		    &c->sites[i % c->n], &v));
		sum += v;
	}
	checksum += sum;
}

static void vc_merge_run(void *vctx, uint64_t iters)
{
	struct vc_ctx *c = vctx;

	for (uint64_t i = 0; i < iters; i++)
		CK("ws_vclock_merge", ws_vclock_merge(&c->dst, &c->c[i % VC_SET]));
	checksum += c->dst.n;
}

static void vc_compare_run(void *vctx, uint64_t iters)
{
	struct vc_ctx *c = vctx;
	uint64_t sum = 0;

	for (uint64_t i = 0; i < iters; i++)
		sum += ws_vclock_compare(&c->c[i % VC_SET], &c->c[(i / VC_SET) % VC_SET]);
	checksum += sum;
}

static void vc_codec_run(void *vctx, uint64_t iters)
{
	struct vc_ctx *c = vctx;
	uint64_t sum = 0;

	for (uint64_t i = 0; i < iters; i++) {
		c->buf.len = 0;
		CK("ws_vclock_encode", ws_vclock_encode(&c->c[i % VC_SET], &c->buf));
		CK("ws_vclock_decode_all", ws_vclock_decode_all(&c->tmp, c->buf.p,
		    c->buf.len, errbuf));
		sum += c->tmp.n + c->buf.len;
	}
	checksum += sum;
}

static void vc_setup(struct vc_ctx *c, size_t n)
{
	memset(c, 0, sizeof *c);
	c->n = n;
	c->sites = xmalloc(n * sizeof *c->sites);
	for (size_t i = 0; i < n; i++)
		site_init(&c->sites[i]);
	for (int k = 0; k < VC_SET; k++)
		ws_vclock_init(&c->c[k]);
	ws_vclock_init(&c->dst);
	ws_vclock_init(&c->tmp);
	for (size_t i = 0; i < n; i++)
		CK("ws_vclock_set", ws_vclock_set(&c->c[0], &c->sites[i],
		    2 + rnd_below(1000000)));
	/* 1 equal, 2 after, 3 before, 4 concurrent, 5..7 independent. */
	for (int k = 1; k < 5; k++)
		CK("ws_vclock_copy", ws_vclock_copy(&c->c[k], &c->c[0]));
	CK("ws_vclock_increment", ws_vclock_increment(&c->c[2], &c->sites[n - 1], NULL));
	CK("ws_vclock_set", ws_vclock_set(&c->c[3], &c->sites[0],
	    ws_vclock_get(&c->c[0], &c->sites[0]) - 1));
	CK("ws_vclock_increment", ws_vclock_increment(&c->c[4], &c->sites[0], NULL));
	CK("ws_vclock_set", ws_vclock_set(&c->c[4], &c->sites[n - 1],
	    ws_vclock_get(&c->c[0], &c->sites[n - 1]) - 1));
	for (int k = 5; k < VC_SET; k++)
		for (size_t i = 0; i < n; i++)
			CK("ws_vclock_set", ws_vclock_set(&c->c[k], &c->sites[i],
			    1 + rnd_below(1000000)));
	if (ws_vclock_compare(&c->c[0], &c->c[1]) != WS_VCLOCK_EQUAL ||
	    ws_vclock_compare(&c->c[0], &c->c[2]) != WS_VCLOCK_BEFORE ||
	    ws_vclock_compare(&c->c[0], &c->c[3]) != WS_VCLOCK_AFTER ||
	    ws_vclock_compare(&c->c[0], &c->c[4]) != WS_VCLOCK_CONCURRENT)
		die("ws_vclock_compare: wrong order for a %zu-site test clock", n);
}

static void vc_teardown(struct vc_ctx *c)
{
	for (int k = 0; k < VC_SET; k++)
		ws_vclock_release(&c->c[k]);
	ws_vclock_release(&c->dst);
	ws_vclock_release(&c->tmp);
	ws_buf_release(&c->buf);
	free(c->sites);
}

static void bench_vclock(void)
{
	static const size_t sizes[] = {4, 64};
	static const struct {
		const char *name;
		bench_fn *fn;
	} ops[] = {
		{"increment", vc_increment_run},
		{"merge", vc_merge_run},
		{"compare", vc_compare_run},
		{"encode+decode", vc_codec_run},
	};
	struct vc_ctx c;
	char name[64];

	rnd_seed(5);
	printf("\nvector clocks: operations per second\n");
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		vc_setup(&c, sizes[s]);
		for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
			uint64_t iters;
			double t[REPS];

			CK("ws_vclock_copy", ws_vclock_copy(&c.dst, &c.c[0]));
			iters = calibrate(ops[o].fn, &c);
			measure(ops[o].fn, &c, iters, t);
			snprintf(name, sizeof name, "%s, %zu sites", ops[o].name, sizes[s]);
			row(name, rate(t, (double)iters), 1e6, "Mop/s");
		}
		vc_teardown(&c);
	}
}

/* ------------------------------------------------- delta vs SQLite session */

static void sql_bind(sqlite3 *db, sqlite3_stmt *st, int i, const struct ws_value *v)
{
	int rc = SQLITE_MISUSE;

	switch (v->type) {
	case WS_NULL:
		rc = sqlite3_bind_null(st, i);
		break;
	case WS_INTEGER:
		rc = sqlite3_bind_int64(st, i, v->i);
		break;
	case WS_REAL:
		rc = sqlite3_bind_double(st, i, v->r);
		break;
	case WS_TEXT:
		rc = sqlite3_bind_text(st, i, (const char *)v->p, (int)v->n, SQLITE_STATIC);
		break;
	case WS_BLOB:
		rc = sqlite3_bind_blob(st, i, v->p, (int)v->n, SQLITE_STATIC);
		break;
	}
	if (rc != SQLITE_OK)
		sql_die(db, "sqlite3_bind");
}

/* Step a DML statement once and reset it; it must change exactly one row. */
static void sql_step1(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		sql_die(db, "sqlite3_step");
	if (sqlite3_changes(db) != 1)
		die("sqlite: statement changed %d rows, expected 1", sqlite3_changes(db));
	if (sqlite3_reset(st) != SQLITE_OK || sqlite3_clear_bindings(st) != SQLITE_OK)
		sql_die(db, "sqlite3_reset");
}

/* An in-memory database holding rows in notes. */
static sqlite3 *db_open(const struct row *rows)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	if (sqlite3_open(":memory:", &db) != SQLITE_OK)
		die("sqlite3_open: %s", db ? sqlite3_errmsg(db) : "out of memory");
	sql_exec(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, "
	    "body TEXT, score REAL, n INTEGER)");
	sql_exec(db, "BEGIN");
	st = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3, ?4, ?5)");
	for (size_t i = 0; i < NROWS; i++) {
		for (int col = 0; col < NCOLS; col++)
			sql_bind(db, st, col + 1, &rows[i].v[col]);
		sql_step1(db, st);
	}
	sqlite3_finalize(st);
	sql_exec(db, "COMMIT");
	return db;
}

/* Apply the planned changes in one transaction. */
static void db_apply(sqlite3 *db, const struct gchange *ch, size_t n)
{
	sqlite3_stmt *ins, *del, *upd[1u << NCOLS] = {NULL};

	ins = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3, ?4, ?5)");
	del = sql_prepare(db, "DELETE FROM notes WHERE id = ?1");
	sql_exec(db, "BEGIN");
	for (size_t k = 0; k < n; k++) {
		const struct gchange *c = &ch[k];
		int i = 1;

		switch (c->op) {
		case WS_OP_INSERT:
			sql_bind(db, ins, i++, &c->pk);
			for (uint32_t v = 0; v < c->nvals; v++)
				sql_bind(db, ins, i++, &c->vals[v]);
			sql_step1(db, ins);
			break;
		case WS_OP_DELETE:
			sql_bind(db, del, 1, &c->pk);
			sql_step1(db, del);
			break;
		case WS_OP_UPDATE:
			if (upd[c->mask] == NULL) {
				char sql[256];
				size_t len = 0;
				int p = 1;

				len += (size_t)snprintf(sql, sizeof sql, "UPDATE notes SET ");
				for (int col = 1; col < NCOLS; col++) {
					if (!(c->mask & (1u << col)))
						continue;
					len += (size_t)snprintf(sql + len, sizeof sql - len,
					    "%s%s = ?%d", p > 1 ? ", " : "", note_cols[col], p);
					p++;
				}
				snprintf(sql + len, sizeof sql - len, " WHERE id = ?%d", p);
				upd[c->mask] = sql_prepare(db, sql);
			}
			for (uint32_t v = 0; v < c->nvals; v++)
				sql_bind(db, upd[c->mask], i++, &c->vals[v]);
			sql_bind(db, upd[c->mask], i, &c->pk);
			sql_step1(db, upd[c->mask]);
			break;
		}
	}
	sql_exec(db, "COMMIT");
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	for (size_t m = 0; m < sizeof upd / sizeof upd[0]; m++)
		sqlite3_finalize(upd[m]);
}

/* Changes recorded in a changeset or patchset. */
static size_t changeset_count(int n, void *p)
{
	sqlite3_changeset_iter *it;
	size_t count = 0;
	int rc;

	if (sqlite3changeset_start(&it, n, p) != SQLITE_OK)
		die("sqlite3changeset_start failed");
	while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW)
		count++;
	if (rc != SQLITE_DONE)
		die("sqlite3changeset_next: error %d", rc);
	if (sqlite3changeset_finalize(it) != SQLITE_OK)
		die("sqlite3changeset_finalize failed");
	return count;
}

/*
 * Plan n changes in the proportions of mix, apply them to a fresh copy of
 * the table under a session, and print the session's patchset and
 * changeset sizes beside the wsync batch for the same changes.
 */
static void session_case(const struct row *rows, const char *label, size_t n,
    struct mix mix, const struct ws_siteid *site, struct gchange *ch)
{
	int64_t next_id = NROWS + 1;
	sqlite3 *db = db_open(rows);
	sqlite3_session *sess;
	int npatch, nchange;
	size_t cpatch, cchange;
	void *patch, *change;
	struct ws_batch b, dec;
	struct ws_buf enc = WS_BUF_INIT;

	plan(rows, n, mix, &next_id, ch);
	if (sqlite3session_create(db, "main", &sess) != SQLITE_OK)
		sql_die(db, "sqlite3session_create");
	if (sqlite3session_attach(sess, "notes") != SQLITE_OK)
		sql_die(db, "sqlite3session_attach");
	db_apply(db, ch, n);
	if (sqlite3session_patchset(sess, &npatch, &patch) != SQLITE_OK)
		sql_die(db, "sqlite3session_patchset");
	if (sqlite3session_changeset(sess, &nchange, &change) != SQLITE_OK)
		sql_die(db, "sqlite3session_changeset");
	cpatch = changeset_count(npatch, patch);
	cchange = changeset_count(nchange, change);
	if (cpatch != n || cchange != n)
		die("session recorded %zu/%zu changes, expected %zu", cpatch, cchange, n);

	build_batch(&b, ch, n, site, 1);
	CK("ws_batch_encode", ws_batch_encode(&b, &enc));
	ws_batch_init(&dec);
	CK("ws_batch_decode", ws_batch_decode(&dec, enc.p, enc.len, errbuf));
	if (dec.nchanges != n)
		die("ws_batch_decode: %zu changes, expected %zu", dec.nchanges, n);
	checksum += enc.len + (uint64_t)npatch + (uint64_t)nchange;

	printf("  %-9s %7zu %11zu %11d %11d %10.1f %10.3f %10.3f\n", label, n,
	    enc.len, npatch, nchange, (double)enc.len / (double)n,
	    (double)enc.len / npatch, (double)enc.len / nchange);
	fflush(stdout);

	ws_batch_release(&dec);
	ws_batch_release(&b);
	ws_buf_release(&enc);
	sqlite3_free(patch);
	sqlite3_free(change);
	sqlite3session_delete(sess);
	if (sqlite3_close(db) != SQLITE_OK)
		sql_die(db, "sqlite3_close");
}

static void bench_session(const struct row *rows)
{
	static const size_t counts[] = {1, 100, 1000, 10000};
	static const struct {
		const char *label;
		struct mix mix;
	} kinds[] = {
		{"inserts", {100, 0}},
		{"updates", {0, 100}},
		{"deletes", {0, 0}},
	};
	struct gchange *ch = xmalloc(counts[3] * sizeof *ch);
	struct ws_siteid site;

	printf("\ndelta size vs SQLite %s session: same net changes to notes "
	    "(%d rows), one site, no clock\n", sqlite3_libversion(), NROWS);
	printf("  %-9s %7s %11s %11s %11s %10s %10s %10s\n", "kind", "changes",
	    "wsync B", "patchset B", "changeset B", "wsync B/ch", "wsync/pset",
	    "wsync/cset");
	rnd_seed(6);
	site_init(&site);
	for (size_t t = 0; t < sizeof counts / sizeof counts[0]; t++)
		session_case(rows, "mixed", counts[t], mix_default, &site, ch);
	for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
		session_case(rows, kinds[k].label, 1, kinds[k].mix, &site, ch);
		session_case(rows, kinds[k].label, 1000, kinds[k].mix, &site, ch);
	}
	free(ch);
}

int main(int argc, char **argv)
{
	struct row *rows;
	double t0 = now();

	(void)argv;
	if (argc > 1) {
		fputs("usage: micro\n", stderr);
		return 64;
	}
	CK("ws_init", ws_init());
	rows = xmalloc(NROWS * sizeof *rows);
	text_pool_init();
	rows_init(rows);

	printf("wsync %s micro-benchmark: median of %d runs, min, max; MB = 10^6 bytes\n",
	    WSYNC_VERSION, REPS);
	printf("changes: notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, "
	    "score REAL, n INTEGER),\n"
	    "  mixed = %u%% insert, %u%% update of 1-2 columns, %u%% delete; "
	    "title 8-60 B, body 40-400 B\n  or NULL (10%%), score a REAL, "
	    "n an INTEGER below 10000; each row touched at most once\n\n",
	    mix_default.ins, mix_default.upd, 100 - mix_default.ins - mix_default.upd);
	printf("  %-36s %10s %10s %10s  %s\n", "", "median", "min", "max", "unit");
	bench_frames();
	bench_delta(rows);
	bench_vclock();
	bench_session(rows);

	printf("\nchecksum %016" PRIx64 ", %.1f s\n", checksum, now() - t0);
	free(rows);
	return 0;
}
