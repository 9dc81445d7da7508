/* SPDX-License-Identifier: MIT */
/*
 * test_inspect.c - the pure parts of inspect.h (times, values, type
 * lists, URL and database detection) and ws_inspect_run() on real files:
 * a stream cut into every possible prefix, damage found at its exact
 * offset, --salvage resynchronizing, dots with a gap, the filters, and
 * schema frames in every view, with hostile names escaped.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "wsync/wsync.h"

static char tmpdir[] = "/tmp/wsync-test-inspect.XXXXXX";

TEST(parse_time)
{
	uint64_t us = 0;

	CHECK_INT(ws_inspect_parse_time("0", &us), 0);
	CHECK_INT(us, 0);
	CHECK_INT(ws_inspect_parse_time("1795307098", &us), 0);
	CHECK_INT(us, 1795307098000000ll);
	CHECK_INT(ws_inspect_parse_time("1795307098.25", &us), 0);
	CHECK_INT(us, 1795307098250000ll);
	CHECK_INT(ws_inspect_parse_time("1970-01-01", &us), 0);
	CHECK_INT(us, 0);
	CHECK_INT(ws_inspect_parse_time("2026-11-22T00:24:58.651587Z", &us), 0);
	CHECK_INT(us, 1795307098651587ll);
	CHECK_INT(ws_inspect_parse_time("2026-11-22 00:24:58.651", &us), 0);
	CHECK_INT(us, 1795307098651000ll);
	CHECK_INT(ws_inspect_parse_time("2026-11-22T01:24:58+01:00", &us), 0);
	CHECK_INT(us, 1795307098000000ll);
	CHECK_INT(ws_inspect_parse_time("2026-11-21T23:24-0100", &us), 0);
	CHECK_INT(us, 1795307040000000ll);
	CHECK_INT(ws_inspect_parse_time("", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("yesterday", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("2026-13-01", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("2026-11-22T25:00", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("2026-11-22T10:00:00.1234567", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("12x", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("1.", &us), WS_EINVAL);
	CHECK_INT(ws_inspect_parse_time("99999999999999999999", &us), WS_EINVAL);

	/* --until: a time to the millisecond includes all of it. */
	CHECK_INT(ws_inspect_parse_until("2026-11-22T00:24:58.651Z", &us), 0);
	CHECK_INT(us, 1795307098651999ll);
	CHECK_INT(ws_inspect_parse_until("2026-11-22T00:24:58.6Z", &us), 0);
	CHECK_INT(us, 1795307098600999ll);
	CHECK_INT(ws_inspect_parse_until("2026-11-22T00:24:58", &us), 0);
	CHECK_INT(us, 1795307098000999ll);
	CHECK_INT(ws_inspect_parse_until("1795307098.651", &us), 0);
	CHECK_INT(us, 1795307098651999ll);
	CHECK_INT(ws_inspect_parse_until("2026-11-22T00:24:58.6515Z", &us), 0);
	CHECK_INT(us, 1795307098651500ll);
	CHECK_INT(ws_inspect_parse_until("1795307098.651587", &us), 0);
	CHECK_INT(us, 1795307098651587ll);
	CHECK_INT(ws_inspect_parse_until("1795307098.", &us), WS_EINVAL);
}

TEST(put_time)
{
	struct ws_buf b = WS_BUF_INIT;

	CHECK_INT(ws_inspect_put_time(&b, 1795307098651587ull), 0);
	CHECK_MEM(b.p, b.len, "2026-11-22T00:24:58.651Z", 24);
	b.len = 0;
	CHECK_INT(ws_inspect_put_time(&b, 0), 0);
	CHECK_MEM(b.p, b.len, "1970-01-01T00:00:00.000Z", 24);
	ws_buf_release(&b);
}

/* The timeline form of v, in a static buffer. */
static const char *value_text(const struct ws_value *v)
{
	static char s[256];
	struct ws_buf b = WS_BUF_INIT;

	if (ws_inspect_put_value(&b, v) || b.len >= sizeof(s))
		snprintf(s, sizeof(s), "(error)");
	else
		snprintf(s, sizeof(s), "%.*s", (int)b.len, (const char *)b.p);
	ws_buf_release(&b);
	return s;
}

TEST(put_value)
{
	struct ws_value v = {0};
	uint8_t blob[40];
	char long_text[100];

	v.type = WS_NULL;
	CHECK_STR(value_text(&v), "NULL");
	v.type = WS_INTEGER;
	v.i = INT64_MIN;
	CHECK_STR(value_text(&v), "-9223372036854775808");
	v.type = WS_REAL;
	v.r = 1.0;
	CHECK_STR(value_text(&v), "1.0");
	v.r = 0.1;
	CHECK_STR(value_text(&v), "0.1");
	v.r = -0.0;
	CHECK_STR(value_text(&v), "-0.0");
	v.r = 1e300;
	CHECK_STR(value_text(&v), "1e+300");
	v.r = NAN;
	CHECK_STR(value_text(&v), "NaN");
	v.r = -INFINITY;
	CHECK_STR(value_text(&v), "-Inf");
	v.type = WS_TEXT;
	v.p = (const uint8_t *)"it's a\\b\n\t\x01 \xc3\xa9 \xff";
	v.n = strlen((const char *)v.p);
	CHECK_STR(value_text(&v), "'it''s a\\\\b\\n\\t\\x01 \xc3\xa9 \\xff'");
	v.p = (const uint8_t *)"a\0b";
	v.n = 3;
	CHECK_STR(value_text(&v), "'a\\x00b'");
	memset(long_text, 'x', sizeof(long_text));
	v.p = (const uint8_t *)long_text;
	v.n = sizeof(long_text);
	CHECK_STR(value_text(&v), "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "...'(100 bytes)");
	v.type = WS_BLOB;
	v.p = (const uint8_t *)"\x00\xff\x10";
	v.n = 3;
	CHECK_STR(value_text(&v), "x'00ff10'");
	v.n = 0;
	CHECK_STR(value_text(&v), "x''");
	memset(blob, 0xab, sizeof(blob));
	v.p = blob;
	v.n = sizeof(blob);
	CHECK_STR(value_text(&v), "x'abababababababababababababababababababababababababababababababab"
	    "...'(40 bytes)");
}

TEST(types_urls_databases)
{
	struct ws_inspect_filter f;
	char err[WS_ERRLEN];

	memset(&f, 0, sizeof(f));
	CHECK_INT(ws_inspect_add_types(&f, "batch,CLOCK,32", err), 0);
	CHECK_INT(f.has_types, 1);
	CHECK(f.types[WS_FRAME_BATCH / 8] & (1u << (WS_FRAME_BATCH % 8)));
	CHECK(f.types[WS_FRAME_CLOCK / 8] & (1u << (WS_FRAME_CLOCK % 8)));
	CHECK(f.types[32 / 8] & 1u);
	CHECK(!(f.types[WS_FRAME_HELLO / 8] & (1u << (WS_FRAME_HELLO % 8))));
	CHECK_INT(ws_inspect_add_types(&f, "nope", err), WS_EINVAL);
	CHECK_STR(err, "unknown frame type 'nope'");
	CHECK_INT(ws_inspect_add_types(&f, "batch,", err), WS_EINVAL);
	CHECK_INT(ws_inspect_add_types(&f, "256", err), WS_EINVAL);
	CHECK_INT(ws_inspect_add_types(&f, "0", err), WS_EINVAL);

	CHECK(ws_inspect_is_url("http://h/x"));
	CHECK(ws_inspect_is_url("file:///tmp/x"));
	CHECK(ws_inspect_is_url("svn+ssh://h/x"));
	CHECK(!ws_inspect_is_url("hub.log"));
	CHECK(!ws_inspect_is_url("://x"));
	CHECK(!ws_inspect_is_url("a b://x"));
	CHECK(!ws_inspect_is_url("./x://y"));

	CHECK(ws_inspect_is_database((const uint8_t *)"SQLite format 3\0...", 19));
	CHECK(!ws_inspect_is_database((const uint8_t *)"SQLite format 3", 15));
	CHECK(!ws_inspect_is_database((const uint8_t *)"SQLite format 4\0", 16));
}

/* --- ws_inspect_run on files ------------------------------------------------ */

struct lines {
	char text[4096];
	int n;
};

static void collect(void *cd, const char *line)
{
	struct lines *l = cd;
	size_t k = strlen(l->text);

	snprintf(l->text + k, sizeof(l->text) - k, "%s\n", line);
	l->n++;
}

static void write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(p, 1, n, f), n);
	fclose(f);
}

/* A plain stream: ADD on channel 1, then batches of site s with these dots. */
static void make_stream(struct ws_buf *out, const uint64_t *dots, size_t n)
{
	static const char *const cols[] = {"id", "v"};
	static const uint32_t pk[] = {0};
	struct ws_add a = {.clock = WS_VCLOCK_INIT};
	struct ws_buf pl = WS_BUF_INIT;
	struct ws_siteid s;
	size_t i;

	memset(s.b, 0x11, sizeof(s.b));
	CHECK_INT(ws_frame_put_preamble(out), 0);
	snprintf(a.wsid, sizeof(a.wsid), "notes");
	CHECK_INT(ws_add_encode(&a, &pl), 0);
	CHECK_INT(ws_frame_put(out, WS_FRAME_ADD, 0, 1, pl.p, pl.len), 0);
	for (i = 0; i < n; i++) {
		struct ws_batch b;
		struct ws_value key = {.type = WS_INTEGER, .i = (int64_t)i};
		struct ws_value val = {.type = WS_TEXT, .p = (const uint8_t *)"v", .n = 1};
		uint8_t mask = 2;
		struct ws_change c = {0};
		uint32_t ti, si;

		ws_batch_init(&b);
		CHECK_INT(ws_batch_add_table(&b, "t", 2, cols, 1, pk, &ti, NULL), 0);
		CHECK_INT(ws_batch_set_dot(&b, &s, dots[i]), 0);
		CHECK_INT(ws_batch_site(&b, &s, &si), 0);
		c.table = ti;
		c.site = si;
		c.counter = dots[i];
		c.op = WS_OP_INSERT;
		c.pk = &key;
		c.mask = &mask;
		c.vals = &val;
		c.nvals = 1;
		CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
		pl.len = 0;
		CHECK_INT(ws_batch_encode(&b, &pl), 0);
		CHECK_INT(ws_frame_put(out, WS_FRAME_BATCH, 0, 1, pl.p, pl.len), 0);
		ws_batch_release(&b);
	}
	ws_buf_release(&pl);
	ws_vclock_release(&a.clock);
}

/* Run mode on path, showing only the frame types listed in types (NULL
 * for all); the output goes to out (a file read back). */
static int run_types(int mode, unsigned flags, const char *types,
    const char *path, struct lines *warn, struct ws_buf *out, char *err)
{
	struct ws_inspect_opts o;
	char outpath[128];
	const char *in[] = {path};
	uint8_t *p;
	size_t n = 0;
	int fd, rc;

	snprintf(outpath, sizeof(outpath), "%s/out", tmpdir);
	fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ws_inspect_opts_init(&o);
	o.mode = mode;
	o.flags = flags;
	if (types)
		CHECK_INT(ws_inspect_add_types(&o.filter, types, err), 0);
	o.out_fd = fd;
	o.warn = collect;
	o.warn_cd = warn;
	memset(warn, 0, sizeof(*warn));
	err[0] = 0;
	rc = ws_inspect_run(&o, in, 1, err);
	close(fd);
	out->len = 0;
	if ((p = t_read_file(outpath, &n))) {
		CHECK_INT(ws_buf_append(out, p, n), 0);
		free(p);
	}
	return rc;
}

static int run(int mode, unsigned flags, const char *path, struct lines *warn,
    struct ws_buf *out, char *err)
{
	return run_types(mode, flags, NULL, path, warn, out, err);
}

TEST(run_check)
{
	static const uint64_t good[] = {1, 2, 3}, gap[] = {1, 2, 5}, back[] = {1, 3, 2};
	struct ws_buf s = WS_BUF_INIT, out = WS_BUF_INIT;
	struct lines w;
	char path[128], err[WS_ERRLEN], want[256];
	size_t cut;

	snprintf(path, sizeof(path), "%s/s.ws", tmpdir);
	make_stream(&s, good, 3);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), 0);
	snprintf(want, sizeof(want), "%s: ok, 4 frames, %zu bytes\n", path, s.len);
	CHECK_MEM(out.p, out.len, want, strlen(want));
	CHECK_INT(w.n, 0);

	/* Every prefix that ends inside a frame is truncated at that frame. */
	for (cut = 1; cut < s.len; cut++) {
		int rc;

		write_file(path, s.p, cut);
		rc = run(WS_INSPECT_CHECK, 0, path, &w, &out, err);
		if (cut == WS_FRAME_PREAMBLE)
			CHECK_INT(rc, 0);
		else if (rc != 0)
			CHECK_INT(rc, WS_ETRUNC);
	}

	s.len = 0;
	make_stream(&s, gap, 3);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), WS_ECORRUPT);
	CHECK_INT(w.n, 1);
	CHECK(strstr(w.text, "site 11111111: batch 5 after batch 2: batches 3 to 4 are missing") != NULL);
	CHECK_STR(err, "1 problem found");

	s.len = 0;
	make_stream(&s, back, 3);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), WS_ECORRUPT);
	CHECK(strstr(w.text, "batch 2 after batch 3: the counter went back") != NULL);
	ws_buf_release(&s);
	ws_buf_release(&out);
}

TEST(run_salvage)
{
	static const uint64_t good[] = {1, 2, 3};
	struct ws_buf s = WS_BUF_INIT, out = WS_BUF_INIT, bad = WS_BUF_INIT;
	struct lines w;
	char path[128], err[WS_ERRLEN], want[256];
	size_t i, at;
	struct ws_frame f;
	size_t used;

	snprintf(path, sizeof(path), "%s/d.ws", tmpdir);
	make_stream(&s, good, 3);
	/* Find the second batch (the third frame). */
	at = WS_FRAME_PREAMBLE;
	for (i = 0; i < 2; i++) {
		CHECK_INT(ws_frame_parse(s.p + at, s.len - at, WS_FRAME_MAX_DEFAULT, &f,
		    &used), 0);
		at += used;
	}
	/* Every single flipped byte of that frame is found at its start. */
	for (i = 0; i < WS_FRAME_OVERHEAD + 10; i++) {
		int rc;

		bad.len = 0;
		CHECK_INT(ws_buf_append(&bad, s.p, s.len), 0);
		bad.p[at + i] ^= 0x40;
		write_file(path, bad.p, bad.len);
		rc = run(WS_INSPECT_CHECK, 0, path, &w, &out, err);
		CHECK(rc == WS_ECHECKSUM || rc == WS_ETOOBIG || rc == WS_ECORRUPT ||
		    rc == WS_ETRUNC);
		snprintf(want, sizeof(want), "'%s': frame at byte %zu: ", path, at);
		CHECK(strncmp(err, want, strlen(want)) == 0);
		/* --salvage: the other frames are all still checked, and
		 * batch 3 after batch 1 is a gap. */
		rc = run(WS_INSPECT_CHECK, WS_INSPECT_SALVAGE, path, &w, &out, err);
		CHECK_INT(rc, WS_ECORRUPT);
		CHECK_INT(w.n, 2);
		CHECK(strstr(w.text, "batch 3 after batch 1: batch 2 is missing") != NULL);
		snprintf(want, sizeof(want), "%s: 2 problems, 3 frames, %zu bytes\n",
		    path, s.len);
		CHECK_MEM(out.p, out.len, want, strlen(want));
	}
	/* Timeline with --salvage: batches 1 and 3 shown. */
	bad.p[at + 12] ^= 0x40;
	bad.p[at + 20] ^= 0x01;
	write_file(path, bad.p, bad.len);
	CHECK_INT(run(WS_INSPECT_TIMELINE, WS_INSPECT_SALVAGE, path, &w, &out, err),
	    WS_ECORRUPT);
	CHECK(out.len > 0 && memmem(out.p, out.len, "dot=11111111:1", 14) != NULL);
	CHECK(memmem(out.p, out.len, "dot=11111111:3", 14) != NULL);
	CHECK(memmem(out.p, out.len, "dot=11111111:2", 14) == NULL);
	ws_buf_release(&s);
	ws_buf_release(&bad);
	ws_buf_release(&out);
}

/* Does out hold the text s? */
static int has(const struct ws_buf *out, const char *s)
{
	return memmem(out->p, out->len, s, strlen(s)) != NULL;
}

/* Append a schema frame on channel ch: generation gen, and tables named
 * names[0..n) (each with its own CREATE TABLE), then an index and a view. */
static void put_schema_frame(struct ws_buf *out, uint32_t ch, uint64_t gen,
    const char *const *names, size_t n, int extras)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_buf pl = WS_BUF_INIT;
	char sql[128];
	size_t i;

	for (i = 0; i < n; i++) {
		snprintf(sql, sizeof sql, "CREATE TABLE \"%s\"(id INTEGER PRIMARY KEY)",
		    names[i]);
		CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, names[i], names[i], sql,
		    NULL), 0);
	}
	if (extras) {
		CHECK_INT(ws_schema_add(&sc, WS_OBJ_INDEX, "bi", names[0],
		    "CREATE INDEX bi ON books(id)", NULL), 0);
		CHECK_INT(ws_schema_add(&sc, WS_OBJ_VIEW, "v", "v",
		    "CREATE VIEW v AS SELECT 1", NULL), 0);
	}
	sc.gen = gen;
	CHECK_INT(ws_schema_encode(&sc, &pl), 0);
	CHECK_INT(ws_frame_put(out, WS_FRAME_SCHEMA, 0, ch, pl.p, pl.len), 0);
	ws_schema_release(&sc);
	ws_buf_release(&pl);
}

TEST(run_schema)
{
	static const uint64_t dots[] = {1};
	static const char *const two[] = {"books", "my table\x1b[2J,x"};
	static const char *const many[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6",
	    "t7", "t8", "t9"};
	struct ws_buf s = WS_BUF_INIT, out = WS_BUF_INIT;
	struct lines w;
	char path[128], err[WS_ERRLEN], want[256];
	size_t bad_at;

	snprintf(path, sizeof(path), "%s/schema.ws", tmpdir);
	make_stream(&s, dots, 1);
	put_schema_frame(&s, 1, 3, two, 2, 1);
	put_schema_frame(&s, 1, 4, many, 10, 0);
	put_schema_frame(&s, 0, 0, NULL, 0, 0);
	/* A record in another format: shown, not damage. */
	CHECK_INT(ws_frame_put(&s, WS_FRAME_SCHEMA, 0, 1, "\x02\x07", 2), 0);
	write_file(path, s.p, s.len);

	CHECK_INT(run(WS_INSPECT_TIMELINE, 0, path, &w, &out, err), 0);
	CHECK(has(&out, "-  -  -  notes  SCHEMA  gen=3 2 tables "
	    "(books,'my table\\x1b[2J,x'), 1 index, 1 view, 0 triggers\n"));
	CHECK(has(&out, "SCHEMA  gen=4 10 tables (t0,t1,t2,t3,t4,t5,"
	    "t6,t7,...), 0 indexes, 0 views, 0 triggers\n"));
	CHECK(has(&out, "-  -  -  -  SCHEMA  gen=0 0 tables, 0 indexes, "
	    "0 views, 0 triggers\n"));
	CHECK(has(&out, "notes  SCHEMA  format 2 not supported\n"));
	/* No byte from the wire reaches the terminal as a control. */
	CHECK(memchr(out.p, 0x1b, out.len) == NULL);

	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), 0);
	snprintf(want, sizeof(want), "%s: ok, 6 frames, %zu bytes\n", path, s.len);
	CHECK_MEM(out.p, out.len, want, strlen(want));
	CHECK_INT(w.n, 0);

	CHECK_INT(run(WS_INSPECT_STATS, 0, path, &w, &out, err), 0);
	CHECK(has(&out, "\n  schema                                    4 "));

	CHECK_INT(run_types(WS_INSPECT_TIMELINE, 0, "schema", path, &w, &out, err), 0);
	{
		size_t i, nl = 0;

		for (i = 0; i < out.len; i++)
			nl += out.p[i] == '\n';
		CHECK_INT(nl, 4);
		CHECK(!has(&out, "BATCH"));
	}

	CHECK_INT(run(WS_INSPECT_JSON, 0, path, &w, &out, err), 0);
	CHECK(has(&out, "{\"type\":\"schema\",\"ch\":1,\"generation\":3,"
	    "\"objects\":[{\"type\":\"table\",\"name\":\"books\","));
	CHECK(has(&out, "\"name\":\"my table\\u001B[2J,x\""));
	CHECK(has(&out, "{\"type\":\"schema\",\"ch\":1,\"payload\":"
	    "\"Agc=\"}\n"));

	/* A record that does not decode is damage, found at its frame. */
	bad_at = s.len;
	CHECK_INT(ws_frame_put(&s, WS_FRAME_SCHEMA, 0, 1, "\x01\x00\x01\x05\x01t\x01t"
	    "\x01x", 10), 0);
	put_schema_frame(&s, 1, 5, two, 1, 0);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), WS_ECORRUPT);
	snprintf(want, sizeof(want), "'%s': frame at byte %zu: schema record: ", path,
	    bad_at);
	CHECK(strncmp(err, want, strlen(want)) == 0);
	CHECK_INT(run(WS_INSPECT_TIMELINE, WS_INSPECT_SALVAGE, path, &w, &out, err),
	    WS_ECORRUPT);
	CHECK_INT(w.n, 1);
	CHECK(strstr(w.text, "frame skipped") != NULL);
	CHECK(has(&out, "SCHEMA  gen=5 1 table (books), 0 indexes"));
	CHECK_INT(run(WS_INSPECT_JSON, 0, path, &w, &out, err), WS_ECORRUPT);
	ws_buf_release(&s);
	ws_buf_release(&out);
}

/* One log record of frame (type, flags, ch, payload) from/to peer,
 * appended to out. */
static void put_logged_flags(struct ws_buf *out, const char *peer, unsigned dir,
    uint8_t type, uint8_t flags, uint32_t ch, const void *pl, size_t n)
{
	struct ws_log_record r = {.time_us = 1763800000000000ull, .dir = dir,
	    .peer = peer, .peerlen = strlen(peer)};
	struct ws_buf rec = WS_BUF_INIT;

	r.frame.type = type;
	r.frame.flags = flags;
	r.frame.channel = ch;
	r.frame.payload = pl;
	r.frame.len = (uint32_t)n;
	CHECK_INT(ws_log_record_encode(&r, &rec), 0);
	CHECK_INT(ws_frame_put(out, WS_FRAME_LOG, 0, 0, rec.p, rec.len), 0);
	ws_buf_release(&rec);
}

static void put_logged(struct ws_buf *out, const char *peer, unsigned dir,
    uint8_t type, uint32_t ch, const void *pl, size_t n)
{
	put_logged_flags(out, peer, dir, type, 0, ch, pl, n);
}

/* A CLOCK frame from the hub with these flags and the clock {s: counter}. */
static void put_hub_clock(struct ws_buf *out, uint8_t flags,
    const struct ws_siteid *s, uint64_t counter)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_buf pl = WS_BUF_INIT;

	CHECK_INT(ws_vclock_set(&vc, s, counter), 0);
	CHECK_INT(ws_vclock_encode(&vc, &pl), 0);
	put_logged_flags(out, "hub", WS_LOG_IN, WS_FRAME_CLOCK, flags, 1, pl.p, pl.len);
	ws_vclock_release(&vc);
	ws_buf_release(&pl);
}

/*
 * A BATCH frame from the hub: one insert of site s, counter c; with the
 * batch's own dot and clock {s: c}, or (a full copy's) without them.
 */
static void put_hub_batch(struct ws_buf *out, const struct ws_siteid *s,
    uint64_t c, int dot)
{
	static const char *const cols[] = {"id", "v"};
	static const uint32_t pk[] = {0};
	struct ws_value key = {.type = WS_INTEGER, .i = (int64_t)c};
	struct ws_value val = {.type = WS_TEXT, .p = (const uint8_t *)"v", .n = 1};
	struct ws_change ch = {0};
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_buf pl = WS_BUF_INIT;
	struct ws_batch b;
	uint8_t mask = 2;
	uint32_t ti, si;

	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "t", 2, cols, 1, pk, &ti, NULL), 0);
	if (dot) {
		CHECK_INT(ws_batch_set_dot(&b, s, c), 0);
		CHECK_INT(ws_vclock_set(&vc, s, c), 0);
		CHECK_INT(ws_batch_set_clock(&b, &vc), 0);
	}
	CHECK_INT(ws_batch_site(&b, s, &si), 0);
	ch.table = ti;
	ch.site = si;
	ch.counter = c;
	ch.op = WS_OP_INSERT;
	ch.pk = &key;
	ch.mask = &mask;
	ch.vals = &val;
	ch.nvals = 1;
	CHECK_INT(ws_batch_add_change(&b, &ch, NULL), 0);
	CHECK_INT(ws_batch_encode(&b, &pl), 0);
	put_logged(out, "hub", WS_LOG_IN, WS_FRAME_BATCH, 1, pl.p, pl.len);
	ws_batch_release(&b);
	ws_vclock_release(&vc);
	ws_buf_release(&pl);
}

/*
 * A site's log of a catch-up after the hub collected history: a STABLE
 * clock is the collected horizon, not the hub's clock, and a full copy's
 * batches (STABLE|SNAPSHOT up to the next clock) carry no dots of their
 * own; after the copy the site holds the horizon.  None of that is a
 * problem; a horizon that goes back and a gap after the copy are.
 */
TEST(run_check_full_copy)
{
	struct ws_add a = {.clock = WS_VCLOCK_INIT};
	struct ws_buf s = WS_BUF_INIT, pl = WS_BUF_INIT, out = WS_BUF_INIT;
	struct ws_siteid site, copy;
	struct lines w;
	char path[128], err[WS_ERRLEN];

	snprintf(path, sizeof(path), "%s/copy.log", tmpdir);
	memset(site.b, 0x11, sizeof(site.b));
	memset(copy.b, 0x99, sizeof(copy.b));
	CHECK_INT(ws_frame_put_preamble(&s), 0);
	snprintf(a.wsid, sizeof(a.wsid), "notes");
	CHECK_INT(ws_add_encode(&a, &pl), 0);
	put_logged(&s, "hub", WS_LOG_OUT, WS_FRAME_ADD, 1, pl.p, pl.len);
	CHECK_INT(ws_vclock_set(&a.clock, &site, 5), 0);
	pl.len = 0;
	CHECK_INT(ws_add_encode(&a, &pl), 0);
	put_logged(&s, "hub", WS_LOG_IN, WS_FRAME_ADD, 1, pl.p, pl.len);
	put_hub_clock(&s, 0, &site, 5);
	put_hub_clock(&s, WS_CLOCK_STABLE | WS_CLOCK_SNAPSHOT, &site, 3);
	put_hub_batch(&s, &copy, 1, 0);
	put_hub_batch(&s, &copy, 1, 0);
	put_hub_clock(&s, WS_CLOCK_STABLE, &site, 3);
	put_hub_batch(&s, &site, 4, 1);
	put_hub_batch(&s, &site, 5, 1);
	put_hub_clock(&s, WS_CLOCK_CAUGHT_UP, &site, 5);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), 0);
	CHECK_INT(w.n, 0);
	if (w.n)
		fprintf(stderr, "%s", w.text);

	/* Real damage is still found. */
	put_hub_clock(&s, WS_CLOCK_STABLE, &site, 2);
	put_hub_batch(&s, &site, 7, 1);
	write_file(path, s.p, s.len);
	CHECK_INT(run(WS_INSPECT_CHECK, 0, path, &w, &out, err), WS_ECORRUPT);
	CHECK_INT(w.n, 2);
	CHECK(strstr(w.text, "the collected horizon went back: site 11111111 "
	    "from 3 to 2\n") != NULL);
	CHECK(strstr(w.text, "site 11111111: batch 7 after batch 5: batch 6 is "
	    "missing\n") != NULL);
	ws_buf_release(&s);
	ws_buf_release(&pl);
	ws_buf_release(&out);
	ws_vclock_release(&a.clock);
}

/*
 * A session log whose peer, table, column, working set and error text
 * hold ESC [2J, an 8-bit CSI and "\nforged line": every view but --json
 * shows them escaped, one line a frame; --json keeps the exact bytes.
 */
TEST(run_hostile_names)
{
	static const char peer[] = "p\x1b[2J\nforged line";
	static const char table[] = "t\x1b[2J\nforged line";
	static const char *const cols[] = {"id", "c\xc2\x9b" "31m"};
	static const char msg[] = "bye\x1b[2J\nforged line";
	static const uint32_t pk[] = {0};
	struct ws_add a = {.clock = WS_VCLOCK_INIT};
	struct ws_buf s = WS_BUF_INIT, pl = WS_BUF_INIT, out = WS_BUF_INIT;
	struct ws_value key = {.type = WS_INTEGER, .i = 7};
	struct ws_value val = {.type = WS_TEXT, .p = (const uint8_t *)"v\\", .n = 2};
	struct ws_change c = {0};
	struct ws_batch b;
	struct ws_siteid site;
	struct lines w;
	uint8_t mask = 2;
	uint32_t ti, si;
	char path[128], err[WS_ERRLEN];
	size_t i, nl;

	snprintf(path, sizeof(path), "%s/hostile.ws", tmpdir);
	memset(site.b, 0x22, sizeof(site.b));
	CHECK_INT(ws_frame_put_preamble(&s), 0);
	snprintf(a.wsid, sizeof(a.wsid), "notes");
	CHECK_INT(ws_add_encode(&a, &pl), 0);
	put_logged(&s, peer, WS_LOG_IN, WS_FRAME_ADD, 1, pl.p, pl.len);
	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, table, 2, cols, 1, pk, &ti, NULL), 0);
	CHECK_INT(ws_batch_set_dot(&b, &site, 1), 0);
	CHECK_INT(ws_batch_site(&b, &site, &si), 0);
	c.table = ti;
	c.site = si;
	c.counter = 1;
	c.op = WS_OP_INSERT;
	c.pk = &key;
	c.mask = &mask;
	c.vals = &val;
	c.nvals = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
	pl.len = 0;
	CHECK_INT(ws_batch_encode(&b, &pl), 0);
	ws_batch_release(&b);
	put_logged(&s, peer, WS_LOG_IN, WS_FRAME_BATCH, 1, pl.p, pl.len);
	pl.len = 0;
	CHECK_INT(ws_buf_put_svarint(&pl, -16), 0);
	CHECK_INT(ws_buf_append(&pl, msg, strlen(msg)), 0);
	put_logged(&s, peer, WS_LOG_OUT, WS_FRAME_ERROR, 0, pl.p, pl.len);
	write_file(path, s.p, s.len);

	CHECK_INT(run(WS_INSPECT_TIMELINE, 0, path, &w, &out, err), 0);
	CHECK(has(&out, "  <  'p\\x1b[2J\\nforged line'  notes  BATCH  site=22222222 "
	    "dot=22222222:1 1 change\n"));
	CHECK(has(&out, "  't\\x1b[2J\\nforged line' pk=(7) insert "
	    "'c\\xc2\\x9b31m'='v\\\\'\n"));
	CHECK(has(&out, "  >  'p\\x1b[2J\\nforged line'  -  ERROR  code=-16 "
	    "(schema mismatch) message='bye\\x1b[2J\\nforged line'\n"));
	for (i = nl = 0; i < out.len; i++)
		nl += out.p[i] == '\n';
	CHECK_INT(nl, 4); /* ADD, BATCH, its change, ERROR */
	CHECK(memchr(out.p, 0x1b, out.len) == NULL);
	CHECK(!has(&out, "\xc2\x9b"));

	CHECK_INT(run(WS_INSPECT_STATS, 0, path, &w, &out, err), 0);
	{
		char row[128];

		snprintf(row, sizeof(row), "\n  %-32s %10d %10d %10d\n",
		    "'t\\x1b[2J\\nforged line'", 1, 0, 0);
		CHECK(has(&out, row));
	}
	CHECK(memchr(out.p, 0x1b, out.len) == NULL);
	CHECK(!has(&out, "\nforged"));

	/* --json: the exact bytes, in JSON's own escapes. */
	CHECK_INT(run(WS_INSPECT_JSON, 0, path, &w, &out, err), 0);
	CHECK(has(&out, "\"peer\":\"p\\u001B[2J\\nforged line\""));
	CHECK(has(&out, "\"t\\u001B[2J\\nforged line\""));
	CHECK(has(&out, "\"bye\\u001B[2J\\nforged line\""));
	CHECK(has(&out, "\"c\xc2\x9b" "31m\""));
	ws_buf_release(&s);
	ws_buf_release(&pl);
	ws_buf_release(&out);
	ws_vclock_release(&a.clock);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	if (!mkdtemp(tmpdir) || ws_init()) {
		fprintf(stderr, "cannot set up\n");
		return 1;
	}
	RUN(parse_time);
	RUN(put_time);
	RUN(put_value);
	RUN(types_urls_databases);
	RUN(run_check);
	RUN(run_check_full_copy);
	RUN(run_salvage);
	RUN(run_schema);
	RUN(run_hostile_names);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", tmpdir);
	}
	TEST_MAIN_END();
}
