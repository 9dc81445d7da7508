/* SPDX-License-Identifier: MIT */
/*
 * test_json.c - the JSON-lines twin of every frame.
 *
 * Checks the exact lines of wsync-protocol(5)'s examples (writers emit
 * compact JSON with keys in the documented order), the value mapping of
 * json.h one case at a time, both round trips (frame → JSON → frame gives
 * the same bytes, JSON → frame → JSON the same object) for every frame
 * type and for thousands of random frames, and that bad shapes are
 * refused with WS_EJSON without crashing.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/wsync.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SA "00112233445566778899aabbccddeeff"
#define SB "0123456789abcdeffedcba9876543210"

static const struct ws_siteid site_a = {{0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}};

#include "golden.h"

static const char batch_small_line[] =
    "{\"type\":\"batch\",\"ch\":1,\"clock\":{\"" SA "\":5},"
    "\"tables\":[{\"name\":\"notes\",\"cols\":[\"id\",\"title\",\"body\"],"
    "\"pk\":[\"id\"]}],"
    "\"changes\":["
    "{\"table\":\"notes\",\"op\":\"insert\",\"dot\":\"" SA ":6\",\"pk\":[1],"
    "\"set\":{\"title\":\"hi\",\"body\":{\"blob\":\"AP8=\"}}},"
    "{\"table\":\"notes\",\"op\":\"update\",\"dot\":\"" SB ":3\",\"pk\":[-1],"
    "\"set\":{\"title\":1.5,\"body\":null}},"
    "{\"table\":\"notes\",\"op\":\"delete\",\"dot\":\"" SA ":7\",\"pk\":[2]}"
    "]}\n";

/* The examples of wsync-protocol(5): whole frames and their lines. */
static const uint8_t man_hb[] = {
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
	0x80, 0x8a, 0xd9, 0xa5, 0xaa, 0x33, 0x06, 0xbc, 0x7f, 0x51,
};
static const uint8_t man_clock[] = {
	0x11, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x07,
	0x7b, 0xb8, 0x0f, 0x26,
};
static const uint8_t man_error[] = {
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
	0x0f, 0x62, 0x61, 0x64, 0xf0, 0x54, 0x10, 0x4c,
};
static const uint8_t man_batch[] = {
	0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x44, 0x00, 0x00, 0x00,
	0x01, 0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x07,
	0x01, 0x05, 'n', 'o', 't', 'e', 's',
	0x02, 0x02, 'i', 'd', 0x05, 't', 'i', 't', 'l', 'e',
	0x01, 0x00,
	0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	0x01, 0x02, 0x0e, 0x01, 0x02, 0x02, 0x03, 0x05, 'h', 'e', 'l', 'l', 'o',
	0xcc, 0xaa, 0xf8, 0x8c,
};

/* Generation 3 of "notes", with its index "nt", on channel 1. */
static const uint8_t man_schema[] = {
	0x12, 0x00, 0x01, 0x00, 0x00, 0x00, 0x6c, 0x00, 0x00, 0x00, 0x01, 0x03,
	0x02, 0x01, 0x05, 0x6e, 0x6f, 0x74, 0x65, 0x73, 0x05, 0x6e, 0x6f, 0x74,
	0x65, 0x73, 0x31, 0x43, 0x52, 0x45, 0x41, 0x54, 0x45, 0x20, 0x54, 0x41,
	0x42, 0x4c, 0x45, 0x20, 0x6e, 0x6f, 0x74, 0x65, 0x73, 0x28, 0x69, 0x64,
	0x20, 0x49, 0x4e, 0x54, 0x45, 0x47, 0x45, 0x52, 0x20, 0x50, 0x52, 0x49,
	0x4d, 0x41, 0x52, 0x59, 0x20, 0x4b, 0x45, 0x59, 0x2c, 0x20, 0x74, 0x69,
	0x74, 0x6c, 0x65, 0x29, 0x02, 0x02, 0x6e, 0x74, 0x05, 0x6e, 0x6f, 0x74,
	0x65, 0x73, 0x1f, 0x43, 0x52, 0x45, 0x41, 0x54, 0x45, 0x20, 0x49, 0x4e,
	0x44, 0x45, 0x58, 0x20, 0x6e, 0x74, 0x20, 0x4f, 0x4e, 0x20, 0x6e, 0x6f,
	0x74, 0x65, 0x73, 0x28, 0x74, 0x69, 0x74, 0x6c, 0x65, 0x29, 0x09, 0x11,
	0xcb, 0xe3,
};

static const struct {
	const char *name;
	const uint8_t *frame;
	size_t n;
	const char *line;
} man[] = {
	{"heartbeat", man_hb, sizeof man_hb,
	    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":1763700000000}\n"},
	{"clock", man_clock, sizeof man_clock,
	    "{\"type\":\"clock\",\"ch\":1,\"clock\":{\"" SA "\":7}}\n"},
	{"error", man_error, sizeof man_error,
	    "{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":\"bad\"}\n"},
	{"batch", man_batch, sizeof man_batch,
	    "{\"type\":\"batch\",\"ch\":1,\"clock\":{\"" SA "\":7},"
	    "\"tables\":[{\"name\":\"notes\",\"cols\":[\"id\",\"title\"],"
	    "\"pk\":[\"id\"]}],"
	    "\"changes\":[{\"table\":\"notes\",\"op\":\"update\","
	    "\"dot\":\"" SA ":7\",\"pk\":[1],\"set\":{\"title\":\"hello\"}}]}\n"},
	{"schema", man_schema, sizeof man_schema,
	    "{\"type\":\"schema\",\"ch\":1,\"generation\":3,\"objects\":["
	    "{\"type\":\"table\",\"name\":\"notes\",\"table\":\"notes\","
	    "\"sql\":\"CREATE TABLE notes(id INTEGER PRIMARY KEY, title)\"},"
	    "{\"type\":\"index\",\"name\":\"nt\",\"table\":\"notes\","
	    "\"sql\":\"CREATE INDEX nt ON notes(title)\"}]}\n"},
};

static uint64_t dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof u);
	return u;
}

static double bitsd(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof d);
	return d;
}

static json_t *load(const char *s, size_t n)
{
	json_error_t e;

	return json_loadb(s, n, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
}

/* Dump compactly, for messages and exact comparisons; caller frees. */
static char *dump(const json_t *j)
{
	return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
}

/* The JSON line of one whole frame held in fb[0..n). */
static int line_of(const uint8_t *fb, size_t n, struct ws_buf *line,
    char *err)
{
	struct ws_frame f;
	size_t used;
	int rc = ws_frame_parse(fb, n, WS_FRAME_MAX_LIMIT, &f, &used);

	if (rc)
		return rc;
	if (used != n)
		return WS_EINTERNAL;
	return ws_json_put_frame(&f, line, err);
}

/*
 * Both round trips for the frame fb[0..n), and the exact line when
 * want_line is not NULL.  Returns 1 when all is well; says why otherwise.
 */
static int frame_roundtrip(const uint8_t *fb, size_t n, const char *want_line,
    const char *what)
{
	struct ws_buf line = WS_BUF_INIT, back = WS_BUF_INIT, back2 = WS_BUF_INIT;
	struct ws_buf line2 = WS_BUF_INIT;
	struct ws_frame f;
	json_t *obj = NULL, *parsed = NULL, *again = NULL;
	char err[WS_ERRLEN] = "";
	size_t used;
	int rc, ok = 0;

	if ((rc = line_of(fb, n, &line, err))) {
		fprintf(stderr, "  %s: frame to line: %d (%s)\n", what, rc, err);
		goto out;
	}
	if (line.len == 0 || line.p[line.len - 1] != '\n' ||
	    memchr(line.p, '\n', line.len - 1)) {
		fprintf(stderr, "  %s: not one line\n", what);
		goto out;
	}
	if (want_line && (line.len != strlen(want_line) ||
	    memcmp(line.p, want_line, line.len) != 0)) {
		fprintf(stderr, "  %s: line is\n    %.*s  expected\n    %s", what,
		    (int)line.len, (const char *)line.p, want_line);
		goto out;
	}
	/* Line back to frame: the same bytes. */
	if ((rc = ws_json_parse_line((const char *)line.p, line.len - 1, &back,
	    err))) {
		fprintf(stderr, "  %s: line to frame: %d (%s)\n    %.*s", what, rc,
		    err, (int)line.len, (const char *)line.p);
		goto out;
	}
	if (back.len != n || memcmp(back.p, fb, n) != 0) {
		fprintf(stderr, "  %s: frame to JSON to frame differs\n    %.*s",
		    what, (int)line.len, (const char *)line.p);
		goto out;
	}
	/* The same through the json_t functions. */
	if (ws_frame_parse(fb, n, WS_FRAME_MAX_LIMIT, &f, &used) ||
	    (rc = ws_json_from_frame(&f, &obj, err)) != 0) {
		fprintf(stderr, "  %s: from_frame: %d (%s)\n", what, rc, err);
		goto out;
	}
	if ((rc = ws_json_to_frame(obj, &back2, err)) != 0 || back2.len != n ||
	    memcmp(back2.p, fb, n) != 0) {
		fprintf(stderr, "  %s: to_frame: %d (%s) or bytes differ\n", what,
		    rc, err);
		goto out;
	}
	/* JSON to frame to JSON: the same object. */
	parsed = load((const char *)line.p, line.len);
	if (!parsed || !json_equal(parsed, obj)) {
		fprintf(stderr, "  %s: the line and from_frame disagree\n", what);
		goto out;
	}
	if ((rc = ws_json_put_frame(&f, &line2, err)) != 0 ||
	    line2.len != line.len || memcmp(line2.p, line.p, line.len)) {
		fprintf(stderr, "  %s: put_frame is not deterministic\n", what);
		goto out;
	}
	again = load((const char *)line2.p, line2.len);
	if (!again || !json_equal(again, parsed)) {
		fprintf(stderr, "  %s: JSON to frame to JSON differs\n", what);
		goto out;
	}
	ok = 1;
out:
	json_decref(obj);
	json_decref(parsed);
	json_decref(again);
	ws_buf_release(&line);
	ws_buf_release(&line2);
	ws_buf_release(&back);
	ws_buf_release(&back2);
	return ok;
}

/*
 * JSON → frame → JSON for a hand-written line: the object must come back
 * equal (up to key order), and the frame when want is not NULL.
 */
static int json_roundtrip(const char *s, const uint8_t *want, size_t wn)
{
	struct ws_buf fb = WS_BUF_INIT, line = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	json_t *a = NULL, *b = NULL;
	int rc, ok = 0;
	size_t n = strlen(s);

	if (n && s[n - 1] == '\n')
		n--;
	if ((rc = ws_json_parse_line(s, n, &fb, err))) {
		fprintf(stderr, "  parse_line: %d (%s)\n    %s\n", rc, err, s);
		goto out;
	}
	if (want && (fb.len != wn || memcmp(fb.p, want, wn))) {
		fprintf(stderr, "  frame bytes differ for\n    %s\n", s);
		goto out;
	}
	if ((rc = line_of(fb.p, fb.len, &line, err))) {
		fprintf(stderr, "  back to JSON: %d (%s)\n    %s\n", rc, err, s);
		goto out;
	}
	a = load(s, n);
	b = load((const char *)line.p, line.len);
	if (!a || !b || !json_equal(a, b)) {
		fprintf(stderr, "  JSON to frame to JSON differs:\n    %s\n    "
		    "%.*s", s, (int)line.len, (const char *)line.p);
		goto out;
	}
	ok = 1;
out:
	json_decref(a);
	json_decref(b);
	ws_buf_release(&fb);
	ws_buf_release(&line);
	return ok;
}

/* Build one frame with the library's encoder into out (emptied first). */
static void mkframe(struct ws_buf *out, uint8_t type, uint8_t flags,
    uint32_t ch, const void *p, size_t n)
{
	out->len = 0;
	CHECK_INT(ws_frame_put(out, type, flags, ch, p, n), 0);
}

/* ---- tests ---- */

TEST(init)
{
	CHECK_INT(ws_init(), 0);
	CHECK_INT(ws_init(), 0);
}

TEST(manpage_examples)
{
	size_t i;

	for (i = 0; i < NELEM(man); i++) {
		if (!frame_roundtrip(man[i].frame, man[i].n, man[i].line,
		    man[i].name))
			CHECK(0);
		if (!json_roundtrip(man[i].line, man[i].frame, man[i].n))
			CHECK(0);
	}
	/* A frame of unknown type 0x20 with payload 01 02 03. */
	{
		struct ws_buf b = WS_BUF_INIT;

		mkframe(&b, 0x20, 0, 0, "\x01\x02\x03", 3);
		CHECK(frame_roundtrip(b.p, b.len,
		    "{\"type\":32,\"ch\":0,\"payload\":\"AQID\"}\n", "type 32"));
		CHECK(json_roundtrip("{\"type\":32,\"ch\":0,\"payload\":\"AQID\"}",
		    b.p, b.len));
		ws_buf_release(&b);
	}
}

TEST(golden_batch)
{
	struct ws_buf b = WS_BUF_INIT;

	mkframe(&b, WS_FRAME_BATCH, 0, 1, batch_small, sizeof batch_small);
	CHECK(frame_roundtrip(b.p, b.len, batch_small_line, "batch-small"));
	CHECK(json_roundtrip(batch_small_line, b.p, b.len));
	ws_buf_release(&b);
}

/* Every frame type, with and without flags and odd channels. */
TEST(every_frame_type)
{
	struct ws_buf b = WS_BUF_INIT, p = WS_BUF_INIT;
	struct ws_vclock vc = WS_VCLOCK_INIT;
	unsigned t;

	/* Flags on a known type come out as "flags", after "ch". */
	mkframe(&b, WS_FRAME_HEARTBEAT, 0x81, 0xffffffffu, man_hb + 10, 6);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"heartbeat\","
	    "\"ch\":4294967295,\"flags\":129,\"time\":1763700000000}\n",
	    "heartbeat with flags"));
	mkframe(&b, WS_FRAME_BATCH, 0x01, 7, batch_small, sizeof batch_small);
	CHECK(frame_roundtrip(b.p, b.len, NULL, "batch with flags"));
	/* Heartbeat times 0 and 2^63-1. */
	mkframe(&b, WS_FRAME_HEARTBEAT, 0, 0, "\x00", 1);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":0}\n", "time 0"));
	mkframe(&b, WS_FRAME_HEARTBEAT, 0, 0,
	    "\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"heartbeat\",\"ch\":0,"
	    "\"time\":9223372036854775807}\n", "time max"));
	/* Error codes: negative, positive, INT64_MIN; messages with NUL,
	 * with quotes and with multi-byte characters, and empty. */
	mkframe(&b, WS_FRAME_ERROR, 0, 3, "\x0f", 1);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"error\",\"ch\":3,\"code\":-8,\"message\":\"\"}\n",
	    "error, empty message"));
	mkframe(&b, WS_FRAME_ERROR, 0, 0, "\x02" "a\0b", 4);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"a\\u0000b\"}\n",
	    "error with NUL"));
	mkframe(&b, WS_FRAME_ERROR, 0, 0,
	    "\xff\xff\xff\xff\x0f" "\"caf\xc3\xa9\"\n", 13);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"error\",\"ch\":0,"
	    "\"code\":-2147483648,\"message\":\"\\\"caf\xc3\xa9\\\"\\n\"}\n",
	    "error INT32_MIN"));
	mkframe(&b, WS_FRAME_ERROR, 0, 0, "\xfe\xff\xff\xff\x0f", 5);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"error\",\"ch\":0,"
	    "\"code\":2147483647,\"message\":\"\"}\n", "error INT32_MAX"));
	/* A batch with its own dot. */
	{
		struct ws_batch bb;

		ws_batch_init(&bb);
		CHECK_INT(ws_batch_decode(&bb, batch_small, sizeof batch_small,
		    NULL), 0);
		CHECK_INT(ws_batch_set_dot(&bb, &site_a, 8), 0);
		p.len = 0;
		CHECK_INT(ws_batch_encode(&bb, &p), 0);
		mkframe(&b, WS_FRAME_BATCH, 0, 1, p.p, p.len);
		CHECK(frame_roundtrip(b.p, b.len, NULL, "batch with dot"));
		ws_batch_release(&bb);
		ws_batch_init(&bb);
		CHECK_INT(ws_batch_set_dot(&bb, &site_a, 1), 0);
		p.len = 0;
		CHECK_INT(ws_batch_encode(&bb, &p), 0);
		mkframe(&b, WS_FRAME_BATCH, 0, 1, p.p, p.len);
		CHECK(frame_roundtrip(b.p, b.len, NULL, "empty batch with dot"));
		ws_batch_release(&bb);
	}
	/* Clocks: empty, one entry, several. */
	p.len = 0;
	CHECK_INT(ws_vclock_encode(&vc, &p), 0);
	mkframe(&b, WS_FRAME_CLOCK, 0, 0, p.p, p.len);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"clock\",\"ch\":0,\"clock\":{}}\n", "empty clock"));
	for (t = 0; t < 5; t++) {
		struct ws_siteid s = site_a;

		s.b[0] = (uint8_t)(t * 50);
		CHECK_INT(ws_vclock_set(&vc, &s, t == 4 ? (uint64_t)INT64_MAX :
		    t + 1), 0);
	}
	p.len = 0;
	CHECK_INT(ws_vclock_encode(&vc, &p), 0);
	mkframe(&b, WS_FRAME_CLOCK, 0, 9, p.p, p.len);
	CHECK(frame_roundtrip(b.p, b.len, NULL, "clock of 5"));
	/* Schema records: empty, with flags, every object type, and one in
	 * a format this build does not know, which travels raw. */
	mkframe(&b, WS_FRAME_SCHEMA, 0, 1, "\x01\x00\x00", 3);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"schema\",\"ch\":1,"
	    "\"generation\":0,\"objects\":[]}\n", "empty schema"));
	mkframe(&b, WS_FRAME_SCHEMA, 0x40, 2, man_schema + 10, sizeof man_schema - 14);
	CHECK(frame_roundtrip(b.p, b.len, NULL, "schema with flags"));
	{
		struct ws_schema sc = WS_SCHEMA_INIT;

		CHECK_INT(ws_schema_add(&sc, WS_OBJ_TRIGGER, "tr", "t", "CREATE "
		    "TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", NULL), 0);
		CHECK_INT(ws_schema_add(&sc, WS_OBJ_VIEW, "v\"\\", "v\"\\",
		    "CREATE VIEW \"v\"\"\\\" AS SELECT '\n\xc3\xa9'", NULL), 0);
		CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "t",
		    "CREATE TABLE t(a)", NULL), 0);
		sc.gen = INT64_MAX;
		p.len = 0;
		CHECK_INT(ws_schema_encode(&sc, &p), 0);
		mkframe(&b, WS_FRAME_SCHEMA, 0, 3, p.p, p.len);
		CHECK(frame_roundtrip(b.p, b.len, NULL, "schema of 3 objects"));
		ws_schema_release(&sc);
	}
	mkframe(&b, WS_FRAME_SCHEMA, 0, 1, "\x02\x07", 2);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":\"schema\",\"ch\":1,"
	    "\"payload\":\"Agc=\"}\n", "schema, format 2"));
	/* Hello is carried like an unknown type. */
	mkframe(&b, WS_FRAME_HELLO, 0, 0, "hi", 2);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"hello\",\"ch\":0,\"payload\":\"aGk=\"}\n", "hello"));
	mkframe(&b, WS_FRAME_HELLO, 0, 0, NULL, 0);
	CHECK(frame_roundtrip(b.p, b.len,
	    "{\"type\":\"hello\",\"ch\":0,\"payload\":\"\"}\n", "empty hello"));
	/* Every unknown type, with and without flags and payload. */
	for (t = 1; t < 256; t++) {
		char what[32], want[128];

		if (ws_frame_type_name(t))
			continue;
		snprintf(what, sizeof what, "type %u", t);
		mkframe(&b, (uint8_t)t, (uint8_t)(t * 7), t * 1000003u,
		    "opaque\0bytes", t % 13);
		CHECK(frame_roundtrip(b.p, b.len, NULL, what));
		mkframe(&b, (uint8_t)t, 0, 0, NULL, 0);
		snprintf(want, sizeof want,
		    "{\"type\":%u,\"ch\":0,\"payload\":\"\"}\n", t);
		CHECK(frame_roundtrip(b.p, b.len, want, what));
	}
	mkframe(&b, 0x7f, 0x81, 0xfffffffeu, "opaque\0bytes", 12);
	CHECK(frame_roundtrip(b.p, b.len, "{\"type\":127,\"ch\":4294967294,"
	    "\"flags\":129,\"payload\":\"b3BhcXVlAGJ5dGVz\"}\n", "type 127"));
	ws_vclock_release(&vc);
	ws_buf_release(&b);
	ws_buf_release(&p);
}

/* ---- values ---- */

/* Check ws_json_from_value(v) dumps exactly as want. */
static int value_dumps(const struct ws_value *v, const char *want)
{
	json_t *j = ws_json_from_value(v);
	char *s = j ? dump(j) : NULL;
	int ok = s && strcmp(s, want) == 0;

	if (!ok)
		fprintf(stderr, "  value dumps as %s, expected %s\n",
		    s ? s : "(null)", want);
	free(s);
	json_decref(j);
	return ok;
}

static struct ws_value mkv(uint8_t type, int64_t i, double r, const void *p,
    size_t n)
{
	struct ws_value v;

	memset(&v, 0, sizeof v);
	v.type = type;
	v.i = i;
	v.r = r;
	v.p = p;
	v.n = n;
	return v;
}

/* Parse JSON text s to a value. */
static int value_of(const char *s, struct ws_buf *tmp, struct ws_value *v,
    char *err)
{
	json_t *j = load(s, strlen(s));
	int rc;

	if (!j) {
		fprintf(stderr, "  test JSON does not load: %s\n", s);
		return WS_EINTERNAL;
	}
	rc = ws_json_to_value(j, tmp, v, err);
	json_decref(j);
	return rc;
}

TEST(value_to_json)
{
	struct ws_value v;
	json_t *j;

	v = mkv(WS_NULL, 0, 0, NULL, 0);
	CHECK(value_dumps(&v, "null"));
	v = mkv(WS_INTEGER, 0, 0, NULL, 0);
	CHECK(value_dumps(&v, "0"));
	v = mkv(WS_INTEGER, -3, 0, NULL, 0);
	CHECK(value_dumps(&v, "-3"));
	v = mkv(WS_INTEGER, INT64_MIN, 0, NULL, 0);
	CHECK(value_dumps(&v, "-9223372036854775808"));
	v = mkv(WS_INTEGER, INT64_MAX, 0, NULL, 0);
	CHECK(value_dumps(&v, "9223372036854775807"));
	v = mkv(WS_REAL, 0, 0.5, NULL, 0);
	CHECK(value_dumps(&v, "0.5"));
	v = mkv(WS_REAL, 0, 1.5, NULL, 0);
	CHECK(value_dumps(&v, "1.5"));
	/* Integral reals still read back as REAL. */
	v = mkv(WS_REAL, 0, 2.0, NULL, 0);
	j = ws_json_from_value(&v);
	CHECK(j && json_is_real(j) && json_real_value(j) == 2.0);
	json_decref(j);
	v = mkv(WS_REAL, 0, -0.0, NULL, 0);
	j = ws_json_from_value(&v);
	CHECK(j && json_is_real(j) && json_real_value(j) == 0 &&
	    signbit(json_real_value(j)));
	json_decref(j);
	v = mkv(WS_REAL, 0, 1e300, NULL, 0);
	j = ws_json_from_value(&v);
	CHECK(j && json_is_real(j) && json_real_value(j) == 1e300);
	json_decref(j);
	/* Non-finite reals. */
	v = mkv(WS_REAL, 0, bitsd(0x7ff8000000000000ull), NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"nan\"}"));
	v = mkv(WS_REAL, 0, bitsd(0xfff8000000000000ull), NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"nan:fff8000000000000\"}"));
	v = mkv(WS_REAL, 0, bitsd(0x7ff0000000000001ull), NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"nan:7ff0000000000001\"}"));
	v = mkv(WS_REAL, 0, bitsd(0x7ff4000000000abcull), NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"nan:7ff4000000000abc\"}"));
	v = mkv(WS_REAL, 0, bitsd(0xffffffffffffffffull), NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"nan:ffffffffffffffff\"}"));
	v = mkv(WS_REAL, 0, INFINITY, NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"inf\"}"));
	v = mkv(WS_REAL, 0, -INFINITY, NULL, 0);
	CHECK(value_dumps(&v, "{\"real\":\"-inf\"}"));
	/* Text: UTF-8 as a string, NUL escaped; anything else in base64. */
	v = mkv(WS_TEXT, 0, 0, "", 0);
	CHECK(value_dumps(&v, "\"\""));
	v = mkv(WS_TEXT, 0, 0, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e", 14);
	CHECK(value_dumps(&v, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9d\x84\x9e\""));
	v = mkv(WS_TEXT, 0, 0, "a\0b", 3);
	CHECK(value_dumps(&v, "\"a\\u0000b\""));
	v = mkv(WS_TEXT, 0, 0, "\xff\xfe", 2);
	CHECK(value_dumps(&v, "{\"text\":\"//4=\"}"));
	v = mkv(WS_TEXT, 0, 0, "\xc0\x80", 2);           /* overlong */
	CHECK(value_dumps(&v, "{\"text\":\"wIA=\"}"));
	v = mkv(WS_TEXT, 0, 0, "\xed\xa0\x80", 3);       /* surrogate */
	CHECK(value_dumps(&v, "{\"text\":\"7aCA\"}"));
	v = mkv(WS_TEXT, 0, 0, "\xf4\x90\x80\x80", 4);   /* above U+10FFFF */
	CHECK(value_dumps(&v, "{\"text\":\"9JCAgA==\"}"));
	v = mkv(WS_TEXT, 0, 0, "\xe2\x82", 2);           /* cut short */
	CHECK(value_dumps(&v, "{\"text\":\"4oI=\"}"));
	v = mkv(WS_TEXT, 0, 0, "\xff", 1);
	CHECK(value_dumps(&v, "{\"text\":\"/w==\"}"));
	/* Blobs, whatever their bytes. */
	v = mkv(WS_BLOB, 0, 0, "", 0);
	CHECK(value_dumps(&v, "{\"blob\":\"\"}"));
	v = mkv(WS_BLOB, 0, 0, "\x00\xff", 2);
	CHECK(value_dumps(&v, "{\"blob\":\"AP8=\"}"));
	v = mkv(WS_BLOB, 0, 0, "hello", 5);
	CHECK(value_dumps(&v, "{\"blob\":\"aGVsbG8=\"}"));
}

TEST(value_from_json)
{
	struct ws_buf tmp = WS_BUF_INIT;
	struct ws_value v;
	char err[WS_ERRLEN];

#define VOK(s) (memset(&v, 0xa5, sizeof v), value_of((s), &tmp, &v, err) == 0)
	CHECK(VOK("null") && v.type == WS_NULL);
	CHECK(VOK("1") && v.type == WS_INTEGER && v.i == 1);
	CHECK(VOK("-9223372036854775808") && v.type == WS_INTEGER &&
	    v.i == INT64_MIN);
	CHECK(VOK("9223372036854775807") && v.type == WS_INTEGER &&
	    v.i == INT64_MAX);
	CHECK(VOK("1.0") && v.type == WS_REAL && v.r == 1.0);
	CHECK(VOK("1e2") && v.type == WS_REAL && v.r == 100.0);
	CHECK(VOK("0.5") && v.type == WS_REAL && v.r == 0.5);
	CHECK(VOK("-0.0") && v.type == WS_REAL && dbits(v.r) == dbits(-0.0));
	CHECK(VOK("{\"real\":1}") && v.type == WS_REAL && v.r == 1.0);
	CHECK(VOK("{\"real\":2}") && v.type == WS_REAL && v.r == 2.0);
	CHECK(VOK("{\"real\":-0.0}") && v.type == WS_REAL &&
	    dbits(v.r) == dbits(-0.0));
	CHECK(VOK("{\"real\":0.25}") && v.type == WS_REAL && v.r == 0.25);
	CHECK(VOK("{\"real\":\"nan\"}") && v.type == WS_REAL &&
	    dbits(v.r) == 0x7ff8000000000000ull);
	CHECK(VOK("{\"real\":\"nan:fff8000000000000\"}") && v.type == WS_REAL &&
	    dbits(v.r) == 0xfff8000000000000ull);
	CHECK(VOK("{\"real\":\"nan:7ff0000000000001\"}") && v.type == WS_REAL &&
	    dbits(v.r) == 0x7ff0000000000001ull);
	CHECK(VOK("{\"real\":\"inf\"}") && v.type == WS_REAL && v.r == INFINITY);
	CHECK(VOK("{\"real\":\"-inf\"}") && v.type == WS_REAL && v.r == -INFINITY);
	CHECK(VOK("\"\"") && v.type == WS_TEXT && v.n == 0);
	CHECK(VOK("\"caf\\u00e9\"") && v.type == WS_TEXT && v.n == 5 &&
	    memcmp(v.p, "caf\xc3\xa9", 5) == 0);
	CHECK(VOK("\"x\\u0000y\"") && v.type == WS_TEXT && v.n == 3 &&
	    memcmp(v.p, "x\0y", 3) == 0);
	CHECK(VOK("\"\\ud834\\udd1e\"") && v.type == WS_TEXT && v.n == 4 &&
	    memcmp(v.p, "\xf0\x9d\x84\x9e", 4) == 0);
	CHECK(VOK("{\"text\":\"/w==\"}") && v.type == WS_TEXT && v.n == 1 &&
	    v.p[0] == 0xff);
	CHECK(VOK("{\"text\":\"\"}") && v.type == WS_TEXT && v.n == 0);
	CHECK(VOK("{\"blob\":\"AAEC\"}") && v.type == WS_BLOB && v.n == 3 &&
	    memcmp(v.p, "\x00\x01\x02", 3) == 0);
	CHECK(VOK("{\"blob\":\"\"}") && v.type == WS_BLOB && v.n == 0);
#undef VOK

	/* Shapes that are not values. */
	{
		static const char *const bad[] = {
			"true", "false", "[]", "[1]", "{}", "{\"x\":1}",
			"{\"blob\":5}", "{\"blob\":null}", "{\"blob\":\"!!\"}",
			"{\"blob\":\"AP8\"}", "{\"blob\":\"A P8=\"}",
			"{\"blob\":[\"AA==\"]}", "{\"text\":1}", "{\"text\":\"*\"}",
			"{\"real\":\"foo\"}", "{\"real\":\"NaN\"}",
			"{\"real\":\"nan:123\"}",
			"{\"real\":\"nan:zzzzzzzzzzzzzzzz\"}",
			"{\"real\":\"nan:7ff80000000000000\"}",
			"{\"real\":\"nan:0000000000000000\"}",
			"{\"real\":\"nan:3ff0000000000000\"}",
			"{\"real\":\"nan:7ff0000000000000\"}",
			"{\"real\":true}", "{\"real\":null}", "{\"real\":{}}",
			"{\"real\":[1]}", "{\"real\":\"\"}",
			"{\"real\":\"nan:FFF8000000000000\"}",
			"{\"blob\":\"\",\"text\":\"\"}", "{\"real\":1,\"x\":1}",
			"{\"blob\":\"AA==\",\"blob2\":\"\"}",
		};
		size_t i;

		for (i = 0; i < NELEM(bad); i++) {
			int rc;

			err[0] = '\0';
			rc = value_of(bad[i], &tmp, &v, err);
			if (rc != WS_EJSON || err[0] == '\0') {
				fprintf(stderr, "  %s: %d (%s)\n", bad[i], rc, err);
				CHECK(0);
			}
		}
	}
	ws_buf_release(&tmp);
}

/* The "set" example of wsync-protocol(5), value by value and back. */
TEST(value_manpage_set)
{
	static const char *const ex =
	    "{\"a\":null,\"b\":-3,\"c\":0.5,\"d\":{\"real\":2},"
	    "\"e\":{\"real\":\"-inf\"},\"f\":\"caf\\u00e9\","
	    "\"g\":{\"text\":\"/w==\"},\"h\":{\"blob\":\"AAEC\"}}";
	json_t *o = load(ex, strlen(ex)), *j;
	struct ws_buf tmp = WS_BUF_INIT;
	struct ws_value v;
	char err[WS_ERRLEN];
	char *s;

	CHECK(o != NULL);
	if (!o)
		return;
#define GET(k) (ws_json_to_value(json_object_get(o, k), &tmp, &v, err) == 0)
	CHECK(GET("a") && v.type == WS_NULL);
	CHECK(GET("b") && v.type == WS_INTEGER && v.i == -3);
	CHECK(GET("c") && v.type == WS_REAL && v.r == 0.5);
	CHECK(GET("d") && v.type == WS_REAL && v.r == 2.0);
	j = ws_json_from_value(&v);
	s = j ? dump(j) : NULL;
	CHECK(s && strcmp(s, "2.0") == 0);
	free(s);
	json_decref(j);
	CHECK(GET("e") && v.type == WS_REAL && v.r == -INFINITY);
	CHECK(GET("f") && v.type == WS_TEXT && v.n == 5 &&
	    memcmp(v.p, "caf\xc3\xa9", 5) == 0);
	CHECK(GET("g") && v.type == WS_TEXT && v.n == 1 && v.p[0] == 0xff);
	CHECK(GET("h") && v.type == WS_BLOB && v.n == 3);
#undef GET
	json_decref(o);
	ws_buf_release(&tmp);
}

/* Values through the whole line round trip: -0.0, NaN payloads, ... */
TEST(values_through_lines)
{
	static const char *const vals[] = {
		"null", "0", "-1", "-9223372036854775808", "9223372036854775807",
		"0.5", "-0.0", "1.0", "1e+300", "-1.5e-300", "4.9406564584124654e-324",
		"1.7976931348623157e+308", "0.10000000000000001",
		"{\"real\":\"nan\"}", "{\"real\":\"nan:fff8000000000000\"}",
		"{\"real\":\"nan:7ff0000000000001\"}",
		"{\"real\":\"nan:fff0000000000001\"}",
		"{\"real\":\"inf\"}", "{\"real\":\"-inf\"}",
		"\"\"", "\"a\\u0000b\"", "\"\\u0000\"", "\"caf\\u00e9 \\u20ac\"",
		"\"\\ud834\\udd1e\"", "\"tab\\tnl\\nquote\\\"bs\\\\\"",
		"{\"text\":\"//4=\"}", "{\"text\":\"wIA=\"}", "{\"text\":\"7aCA\"}",
		"{\"blob\":\"\"}", "{\"blob\":\"AP8=\"}", "{\"blob\":\"AAAA\"}",
	};
	size_t i;
	char line[512];

	for (i = 0; i < NELEM(vals); i++) {
		snprintf(line, sizeof line,
		    "{\"type\":\"batch\",\"ch\":0,"
		    "\"tables\":[{\"name\":\"t\",\"cols\":[\"k\",\"v\"],"
		    "\"pk\":[\"k\"]}],"
		    "\"changes\":[{\"table\":\"t\",\"op\":\"update\","
		    "\"dot\":\"" SA ":1\",\"pk\":[%s],\"set\":{\"v\":%s}}]}",
		    vals[i], vals[i]);
		if (!json_roundtrip(line, NULL, 0)) {
			fprintf(stderr, "  value %s\n", vals[i]);
			CHECK(0);
		}
	}
	/* -0.0 keeps its sign through JSON (json_equal cannot tell). */
	{
		struct ws_buf fb = WS_BUF_INIT, out = WS_BUF_INIT;
		struct ws_batch b;
		struct ws_frame f;
		size_t used;
		char err[WS_ERRLEN];

		snprintf(line, sizeof line,
		    "{\"type\":\"batch\",\"ch\":0,"
		    "\"tables\":[{\"name\":\"t\",\"cols\":[\"k\",\"v\"],"
		    "\"pk\":[\"k\"]}],"
		    "\"changes\":[{\"table\":\"t\",\"op\":\"insert\","
		    "\"dot\":\"" SA ":1\",\"pk\":[1],\"set\":{\"v\":-0.0}}]}");
		CHECK_INT(ws_json_parse_line(line, strlen(line), &fb, err), 0);
		ws_batch_init(&b);
		if (fb.len && ws_frame_parse(fb.p, fb.len, WS_FRAME_MAX_LIMIT, &f,
		    &used) == 0) {
			CHECK_INT(ws_batch_decode(&b, f.payload, f.len, err), 0);
			if (b.nchanges == 1 && b.changes[0].nvals == 1)
				CHECK(dbits(b.changes[0].vals[0].r) ==
				    0x8000000000000000ull);
			else
				CHECK(0);
			CHECK_INT(ws_json_put_frame(&f, &out, err), 0);
			CHECK(out.len && memmem(out.p, out.len, "\"v\":-0.0", 8));
		} else {
			CHECK(0);
		}
		ws_batch_release(&b);
		ws_buf_release(&fb);
		ws_buf_release(&out);
	}
}

TEST(vclock_json)
{
	struct ws_vclock vc = WS_VCLOCK_INIT, back = WS_VCLOCK_INIT;
	struct ws_siteid s = site_a;
	json_t *j;
	char *d;
	char err[WS_ERRLEN];

	j = ws_json_from_vclock(&vc);
	d = j ? dump(j) : NULL;
	CHECK(d && strcmp(d, "{}") == 0);
	free(d);
	json_decref(j);

	CHECK_INT(ws_vclock_set(&vc, &s, 7), 0);
	s.b[0] = 0xff;
	CHECK_INT(ws_vclock_set(&vc, &s, (uint64_t)INT64_MAX), 0);
	s.b[0] = 0x00;
	s.b[15] = 0x00;
	CHECK_INT(ws_vclock_set(&vc, &s, 1), 0);
	j = ws_json_from_vclock(&vc);
	d = j ? dump(j) : NULL;
	CHECK_STR(d, "{\"00112233445566778899aabbccddee00\":1,"
	    "\"" SA "\":7,\"ff112233445566778899aabbccddeeff\":"
	    "9223372036854775807}");
	CHECK_INT(ws_json_to_vclock(j, &back, err), 0);
	CHECK_INT(ws_vclock_compare(&vc, &back), WS_VCLOCK_EQUAL);
	CHECK_INT(back.n, 3);
	free(d);
	json_decref(j);

	/* Readers accept uppercase hex and any key order. */
	{
		static const char up[] =
		    "{\"FF112233445566778899AABBCCDDEEFF\":2,\"" SA "\":3}";

		j = load(up, strlen(up));
	}
	CHECK(j != NULL);
	CHECK_INT(ws_json_to_vclock(j, &back, err), 0);
	CHECK_INT(back.n, 2);
	CHECK_INT(ws_vclock_get(&back, &site_a), 3);
	json_decref(j);

	{
		static const char *const bad[] = {
			"[]", "1", "null", "{\"" SA "\":0}", "{\"" SA "\":-1}",
			"{\"" SA "\":\"1\"}", "{\"" SA "\":1.0}", "{\"" SA "\":null}",
			"{\"0011223344556677889900aabbccddee\":1,\"zz\":1}",
			"{\"0011223344556677889900aabbccdde\":1}",
			"{\"0011223344556677889900aabbccddeef\":1}",
			"{\"0011223344556677889900aabbccddeg\":1}", "{\"\":1}",
		};
		size_t i;

		for (i = 0; i < NELEM(bad); i++) {
			int rc;

			j = load(bad[i], strlen(bad[i]));
			CHECK(j != NULL);
			err[0] = '\0';
			rc = j ? ws_json_to_vclock(j, &back, err) : 0;
			if (rc != WS_EJSON || err[0] == '\0') {
				fprintf(stderr, "  clock %s: %d (%s)\n", bad[i], rc,
				    err);
				CHECK(0);
			}
			json_decref(j);
		}
	}
	ws_vclock_release(&vc);
	ws_vclock_release(&back);
}

/* ws_json_from_batch / ws_json_to_batch directly. */
TEST(batch_objects)
{
	struct ws_batch b, c;
	struct ws_buf out = WS_BUF_INIT;
	json_t *obj = json_object(), *want, *x;
	char err[WS_ERRLEN] = "";

	ws_batch_init(&b);
	ws_batch_init(&c);
	CHECK_INT(ws_batch_decode(&b, batch_small, sizeof batch_small, err), 0);
	CHECK_INT(ws_json_from_batch(&b, obj), 0);
	want = load(batch_small_line, strlen(batch_small_line));
	CHECK(want != NULL);
	if (want) {
		CHECK(json_equal(json_object_get(obj, "clock"),
		    json_object_get(want, "clock")));
		CHECK(json_equal(json_object_get(obj, "tables"),
		    json_object_get(want, "tables")));
		CHECK(json_equal(json_object_get(obj, "changes"),
		    json_object_get(want, "changes")));
		/* A delete has no "set"; the others have one. */
		x = json_array_get(json_object_get(obj, "changes"), 2);
		CHECK(x && json_object_get(x, "set") == NULL);
		x = json_array_get(json_object_get(obj, "changes"), 0);
		CHECK(x && json_object_get(x, "set") != NULL);
	}
	/* And back: the same bytes; c is emptied first. */
	CHECK_INT(ws_batch_decode(&c, batch_small, sizeof batch_small, err), 0);
	CHECK_INT(ws_json_to_batch(want ? want : obj, &c, err), 0);
	CHECK_INT(ws_batch_encode(&c, &out), 0);
	CHECK_MEM(out.p, out.len, batch_small, sizeof batch_small);

	/* No clock member when the batch carries none. */
	json_decref(obj);
	obj = json_object();
	{
		uint8_t noclock[sizeof batch_small];

		noclock[0] = 0x00;
		memcpy(noclock + 1, batch_small + 19, sizeof batch_small - 19);
		CHECK_INT(ws_batch_decode(&b, noclock, 1 + sizeof batch_small - 19,
		    err), 0);
	}
	CHECK_INT(ws_json_from_batch(&b, obj), 0);
	CHECK(json_object_get(obj, "clock") == NULL);
	CHECK_INT(ws_json_to_batch(obj, &c, err), 0);
	CHECK(!c.has_clock);
	CHECK_INT(c.nchanges, 3);
	json_decref(obj);
	json_decref(want);
	ws_batch_release(&b);
	ws_batch_release(&c);
	ws_buf_release(&out);
}

/* ---- random frames ---- */

static const char *const name_bits[] = {
	"", "x", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", " ", "\"",
	"\\", "\t", "/", "_", "Z", "\xe4\xb8\xad", "\n",
};

static void rand_name(char *out, size_t cap, const char *prefix, unsigned n)
{
	size_t len = (size_t)snprintf(out, cap, "%s%u", prefix, n);
	unsigned k = (unsigned)t_below(t_below(8) ? 4 : 40), i;

	for (i = 0; i < k; i++) {
		const char *bit = name_bits[t_below(NELEM(name_bits))];
		size_t bl = strlen(bit);

		if (len + bl + 1 > cap)
			break;
		memcpy(out + len, bit, bl + 1);
		len += bl;
	}
}

static double rand_real(void)
{
	static const uint64_t special[] = {
		0x7ff8000000000000ull, 0xfff8000000000000ull,
		0x7ff0000000000001ull, 0x7fffffffffffffffull,
		0x7ff0000000000000ull, 0xfff0000000000000ull,
		0x8000000000000000ull, 0x0000000000000000ull,
		0x0000000000000001ull, 0x7fefffffffffffffull,
		0x3ff0000000000000ull, 0xc000000000000000ull,
	};

	switch (t_below(4)) {
	case 0:
		return bitsd(special[t_below(NELEM(special))]);
	case 1:
		return bitsd(t_rand());
	case 2:
		return (double)(int64_t)t_rand() / (double)(1 + t_below(1000));
	default:
		return (double)(int64_t)(t_below(2000)) - 1000.0;
	}
}

static int64_t rand_int(void)
{
	static const int64_t special[] = {0, 1, -1, INT64_MIN, INT64_MAX,
	    INT64_MIN + 1, INT64_MAX - 1, 63, 64, -64, -65};

	switch (t_below(3)) {
	case 0:
		return special[t_below(NELEM(special))];
	case 1:
		return (int64_t)t_rand();
	default:
		return (int64_t)t_below(200) - 100;
	}
}

static size_t rand_bytes(uint8_t *p, size_t cap)
{
	size_t n = (size_t)t_below(t_below(10) ? 12 : cap), i = 0;

	switch (t_below(3)) {
	case 0:
		for (i = 0; i < n; i++)
			p[i] = (uint8_t)t_rand();
		return n;
	case 1:
		while (i < n) {
			const char *bit = name_bits[t_below(NELEM(name_bits))];
			size_t bl = strlen(bit);

			if (i + bl > n)
				break;
			memcpy(p + i, bit, bl);
			i += bl;
		}
		return i;
	default:
		for (i = 0; i < n; i++)
			p[i] = t_below(3) ? (uint8_t)('a' + t_below(26)) : 0;
		return n;
	}
}

static struct ws_value rand_value(uint8_t *buf, size_t cap)
{
	struct ws_value v;

	memset(&v, 0, sizeof v);
	v.type = (uint8_t)t_below(5);
	switch (v.type) {
	case WS_INTEGER:
		v.i = rand_int();
		break;
	case WS_REAL:
		v.r = rand_real();
		break;
	case WS_TEXT:
	case WS_BLOB:
		v.n = rand_bytes(buf, cap);
		v.p = buf;
		break;
	}
	return v;
}

static void rand_site(struct ws_siteid *s)
{
	size_t i;

	for (i = 0; i < WS_SITEID_LEN; i++)
		s->b[i] = (uint8_t)t_rand();
	if (t_below(3) == 0)
		memset(s->b, 0, 8);
}

static uint64_t rand_counter(uint64_t prev)
{
	switch (t_below(4)) {
	case 0:
		return 1 + t_below(20);
	case 1:
		return prev < (uint64_t)INT64_MAX ? prev + 1 : 1;
	case 2:
		return t_below(2) ? (uint64_t)INT64_MAX : 1;
	default:
		return 1 + t_below((uint64_t)INT64_MAX);
	}
}

static void rand_clock(struct ws_vclock *vc)
{
	unsigned n = (unsigned)t_below(5), i;
	struct ws_siteid s;

	ws_vclock_reset(vc);
	for (i = 0; i < n; i++) {
		rand_site(&s);
		CHECK_INT(ws_vclock_set(vc, &s, rand_counter(0)), 0);
	}
}

/* A random batch through the builder (distinct UTF-8 names). */
static void gen_batch(struct ws_batch *b)
{
	struct ws_siteid pool[6];
	unsigned npool = 1 + (unsigned)t_below(NELEM(pool));
	unsigned ntables = 1 + (unsigned)t_below(t_below(4) ? 3 : 6), i, j;
	unsigned nchanges = (unsigned)t_below(t_below(4) ? 8 : 25);
	uint64_t prev = 0;
	static uint8_t bufs[3 + 70][300];

	for (i = 0; i < npool; i++)
		rand_site(&pool[i]);
	if (t_below(2)) {
		struct ws_vclock vc = WS_VCLOCK_INIT;

		rand_clock(&vc);
		CHECK_INT(ws_batch_set_clock(b, &vc), 0);
		ws_vclock_release(&vc);
	}
	if (t_below(3) == 0) {
		struct ws_siteid s;

		rand_site(&s);
		CHECK_INT(ws_batch_set_dot(b, &s, rand_counter(0)), 0);
	}
	for (i = 0; i < ntables; i++) {
		static const uint32_t widths[] = {1, 2, 3, 5, 8, 9, 16, 64, 65};
		uint32_t ncols = widths[t_below(NELEM(widths))];
		uint32_t npk = 1 + (uint32_t)t_below(ncols < 3 ? ncols : 3);
		static char names[65][200];
		const char *cols[65];
		char tname[200];
		uint32_t pk[3];
		char err[WS_ERRLEN] = "";

		for (j = 0; j < ncols; j++) {
			rand_name(names[j], sizeof names[j], "c", j);
			cols[j] = names[j];
		}
		for (j = 0; j < npk; j++) {
			uint32_t c, q;
			int dup;

			do {
				c = (uint32_t)t_below(ncols);
				dup = 0;
				for (q = 0; q < j; q++)
					dup |= pk[q] == c;
			} while (dup);
			pk[j] = c;
		}
		rand_name(tname, sizeof tname, "t", i);
		CHECK_INT(ws_batch_add_table(b, tname, ncols, cols, npk, pk,
		    NULL, err), 0);
	}
	for (i = 0; i < nchanges && b->ntables; i++) {
		struct ws_change c;
		const struct ws_table *t;
		struct ws_value pkv[3], vals[65];
		uint8_t mask[9];
		unsigned k, nb = 0;
		uint32_t s = 0;
		char err[WS_ERRLEN] = "";

		memset(&c, 0, sizeof c);
		c.table = (uint32_t)t_below(b->ntables);
		t = &b->tables[c.table];
		c.op = (uint8_t)(1 + t_below(3));
		CHECK_INT(ws_batch_site(b, &pool[t_below(npool)], &s), 0);
		c.site = s;
		c.counter = prev = rand_counter(prev);
		for (k = 0; k < t->npk; k++, nb++)
			pkv[k] = rand_value(bufs[nb], sizeof bufs[nb]);
		c.pk = pkv;
		if (c.op != WS_OP_DELETE) {
			unsigned density = (unsigned)t_below(4);

			memset(mask, 0, sizeof mask);
			for (k = 0; k < t->ncols; k++) {
				int key = 0;
				uint32_t q;

				for (q = 0; q < t->npk; q++)
					key |= t->pk[q] == k;
				if (key || (density == 0 ? 1 : density == 3 ?
				    0 : t_below(density + 1) != 0))
					continue;
				ws_mask_set(mask, k);
				vals[c.nvals++] = rand_value(bufs[nb], sizeof bufs[nb]);
				nb++;
			}
			c.mask = mask;
			c.vals = vals;
		}
		CHECK_INT(ws_batch_add_change(b, &c, err), 0);
	}
}

/* A random frame of any type into out (emptied first). */
static void gen_frame(struct ws_buf *out)
{
	struct ws_buf p = WS_BUF_INIT;
	uint8_t flags = t_below(5) ? 0 : (uint8_t)(1 + t_below(255));
	uint32_t ch = t_below(2) ? (uint32_t)t_below(4) : (uint32_t)t_rand();
	uint8_t type;

	switch (t_below(7)) {
	case 0:
	case 1: {
		struct ws_batch b;

		ws_batch_init(&b);
		gen_batch(&b);
		CHECK_INT(ws_batch_encode(&b, &p), 0);
		ws_batch_release(&b);
		type = WS_FRAME_BATCH;
		break;
	}
	case 2: {
		struct ws_vclock vc = WS_VCLOCK_INIT;

		rand_clock(&vc);
		CHECK_INT(ws_vclock_encode(&vc, &p), 0);
		ws_vclock_release(&vc);
		type = WS_FRAME_CLOCK;
		break;
	}
	case 3: {
		uint8_t msg[200];
		size_t n = 0;

		CHECK_INT(ws_buf_put_svarint(&p, t_below(2) ? (int64_t)t_below(40) - 30 :
		    (int64_t)(int32_t)(uint32_t)t_rand()), 0);
		while (n < 150 && t_below(8)) {
			const char *bit = name_bits[t_below(NELEM(name_bits))];

			if (t_below(10) == 0)
				msg[n++] = 0;
			memcpy(msg + n, bit, strlen(bit));
			n += strlen(bit);
		}
		CHECK_INT(ws_buf_append(&p, msg, n), 0);
		type = WS_FRAME_ERROR;
		break;
	}
	case 4:
		CHECK_INT(ws_buf_put_varint(&p, t_below(2) ? t_below(INT64_MAX) :
		    1763700000000ull + t_below(1u << 30)), 0);
		type = WS_FRAME_HEARTBEAT;
		break;
	case 5: {
		struct ws_schema sc = WS_SCHEMA_INIT;
		size_t n = (size_t)t_below(6), i;
		char name[64], sql[160];

		sc.gen = t_below(2) ? t_below(10) : t_below(INT64_MAX);
		for (i = 0; i < n; i++) {
			unsigned ot = (unsigned)(1 + t_below(4));

			/* "o<i>": names are distinct (i is one digit). */
			rand_name(name, sizeof name, "o", (unsigned)i);
			snprintf(sql, sizeof sql, "CREATE %s \"%s\"%s",
			    ws_objtype_name(ot), name, t_below(2) ? "" : " -- \t\xc3\xa9");
			CHECK_INT(ws_schema_add(&sc, ot, name, ot == WS_OBJ_INDEX ||
			    ot == WS_OBJ_TRIGGER ? "t" : name, sql, NULL), 0);
		}
		CHECK_INT(ws_schema_encode(&sc, &p), 0);
		ws_schema_release(&sc);
		type = WS_FRAME_SCHEMA;
		break;
	}
	default: {
		uint8_t raw[300];
		size_t n = (size_t)t_below(sizeof raw), i;

		for (i = 0; i < n; i++)
			raw[i] = (uint8_t)t_rand();
		do
			type = (uint8_t)(1 + t_below(255));
		while (type != WS_FRAME_HELLO && ws_frame_type_name(type));
		CHECK_INT(ws_buf_append(&p, raw, n), 0);
		break;
	}
	}
	out->len = 0;
	CHECK_INT(ws_frame_put(out, type, flags, ch, p.p, p.len), 0);
	ws_buf_release(&p);
}

TEST(random_roundtrips)
{
	struct ws_buf fb = WS_BUF_INIT;
	int round, failed = 0;

	for (round = 0; round < 3000 && failed < 3; round++) {
		char what[32];

		gen_frame(&fb);
		snprintf(what, sizeof what, "round %d", round);
		if (!frame_roundtrip(fb.p, fb.len, NULL, what))
			failed++;
	}
	CHECK_INT(failed, 0);
	ws_buf_release(&fb);
}

/* ---- bad input ---- */

#define TBL "\"tables\":[{\"name\":\"t\",\"cols\":[\"id\",\"v\"],\"pk\":[\"id\"]}]"
#define BATCH(x) "{\"type\":\"batch\",\"ch\":0," TBL ",\"changes\":[" x "]}"
#define CHG(rest) "{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA ":1\"," rest "}"
#define TABLES(x) "{\"type\":\"batch\",\"ch\":0,\"tables\":[" x "],\"changes\":[]}"

TEST(good_shapes)
{
	static const char *const good[] = {
		BATCH(CHG("\"pk\":[1],\"set\":{\"v\":2}")),
		BATCH(CHG("\"pk\":[1],\"set\":{}")),
		BATCH(""),
		TABLES(""),
		("{\"type\":\"batch\",\"ch\":0,\"clock\":{},\"tables\":[],"
		"\"changes\":[]}"),
		"{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":\"x\\u0000y\"}",
		"{\"type\":255,\"ch\":0,\"flags\":255,\"payload\":\"\"}",
		"{\"type\":\"clock\",\"ch\":4294967295,\"clock\":{}}",
	};
	/* Spellings readers accept besides the written form: each gives the
	 * same frame as its canonical twin. */
	static const struct {
		const char *in, *canon;
	} alt[] = {
		{"{ \"changes\" : [ ] , \"tables\" : [ ] , \"ch\" : 5 , "
		    "\"type\" : \"batch\" }",
		    "{\"type\":\"batch\",\"ch\":5,\"tables\":[],\"changes\":[]}"},
		{"{\"time\":5,\"ch\":0,\"type\":\"heartbeat\"}",
		    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}"},
		{"{\"type\":\"error\",\"ch\":0,\"message\":\"x\"}",
		    "{\"type\":\"error\",\"ch\":0,\"code\":0,\"message\":\"x\"}"},
		{"{\"type\":\"heartbeat\",\"ch\":0,\"flags\":0,\"time\":5}",
		    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}"},
		{"{\"type\":3,\"ch\":0,\"time\":5}",
		    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}"},
		{"{\"type\":\"heartbeat\",\"ch\":0,\"payload\":\"BQ==\"}",
		    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}"},
		{"{\"type\":\"schema\",\"ch\":1,\"generation\":2,\"objects\":["
		    "{\"sql\":\"CREATE VIEW v AS SELECT 1\",\"table\":\"v\","
		    "\"name\":\"v\",\"type\":\"view\"}]}",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":2,\"objects\":["
		    "{\"type\":\"view\",\"name\":\"v\",\"table\":\"v\","
		    "\"sql\":\"CREATE VIEW v AS SELECT 1\"}]}"},
		{"{\"type\":\"schema\",\"ch\":1,\"payload\":\"AQAA\"}",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":0,\"objects\":[]}"},
		{"{\"type\":16,\"ch\":0,\"tables\":[],\"changes\":[]}",
		    "{\"type\":\"batch\",\"ch\":0,\"tables\":[],\"changes\":[]}"},
		{"{\"type\":\"clock\",\"ch\":1,\"clock\":"
		    "{\"00112233445566778899AABBCCDDEEFF\":7}}",
		    "{\"type\":\"clock\",\"ch\":1,\"clock\":{\"" SA "\":7}}"},
		{"{\"type\":\"batch\",\"ch\":0," TBL ",\"changes\":[{\"table\":"
		    "\"t\",\"op\":\"update\",\"dot\":"
		    "\"00112233445566778899AABBCCDDEEFF:1\",\"pk\":[1],\"set\":{}}]}",
		    BATCH(CHG("\"pk\":[1],\"set\":{}"))},
		{"{\"type\":\"batch\",\"ch\":0,\"tables\":[{\"name\":\"t\","
		    "\"cols\":[\"id\",\"a\",\"b\"],\"pk\":[\"id\"]}],\"changes\":"
		    "[{\"table\":\"t\",\"op\":\"insert\",\"dot\":\"" SA ":2\","
		    "\"pk\":[1],\"set\":{\"b\":2,\"a\":{\"real\":1}}}]}",
		    "{\"type\":\"batch\",\"ch\":0,\"tables\":[{\"name\":\"t\","
		    "\"cols\":[\"id\",\"a\",\"b\"],\"pk\":[\"id\"]}],\"changes\":"
		    "[{\"table\":\"t\",\"op\":\"insert\",\"dot\":\"" SA ":2\","
		    "\"pk\":[1],\"set\":{\"a\":1.0,\"b\":2}}]}"},
	};
	size_t i;

	for (i = 0; i < NELEM(good); i++)
		if (!json_roundtrip(good[i], NULL, 0))
			CHECK(0);
	for (i = 0; i < NELEM(alt); i++) {
		struct ws_buf a = WS_BUF_INIT, c = WS_BUF_INIT;
		char err[WS_ERRLEN] = "";
		int rc;

		rc = ws_json_parse_line(alt[i].in, strlen(alt[i].in), &a, err);
		if (rc) {
			fprintf(stderr, "  %s\n    gives %d (%s)\n", alt[i].in, rc,
			    err);
			CHECK(0);
		}
		CHECK_INT(ws_json_parse_line(alt[i].canon, strlen(alt[i].canon), &c,
		    err), 0);
		if (rc == 0 && (a.len != c.len || memcmp(a.p, c.p, a.len))) {
			fprintf(stderr, "  %s\n    differs from %s\n", alt[i].in,
			    alt[i].canon);
			CHECK(0);
		}
		if (!json_roundtrip(alt[i].canon, c.p, c.len))
			CHECK(0);
		ws_buf_release(&a);
		ws_buf_release(&c);
	}
}

TEST(bad_shapes)
{
	static const char *const bad[] = {
		/* Not an object at all. */
		"{", "}", "[]", "1", "null", "\"batch\"", "{}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1} x",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1}{}",
		/* type */
		"{\"ch\":0,\"time\":1}",
		"{\"type\":true,\"ch\":0}",
		"{\"type\":null,\"ch\":0}",
		"{\"type\":\"nosuch\",\"ch\":0,\"payload\":\"\"}",
		"{\"type\":\"Heartbeat\",\"ch\":0,\"time\":1}",
		"{\"type\":0,\"ch\":0,\"payload\":\"\"}",
		"{\"type\":256,\"ch\":0,\"payload\":\"\"}",
		"{\"type\":-1,\"ch\":0,\"payload\":\"\"}",
		"{\"type\":32.0,\"ch\":0,\"payload\":\"\"}",
		"{\"type\":[32],\"ch\":0,\"payload\":\"\"}",
		/* ch */
		"{\"type\":\"heartbeat\",\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":-1,\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":4294967296,\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":\"0\",\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":1.0,\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":null,\"time\":1}",
		/* flags */
		"{\"type\":\"heartbeat\",\"ch\":0,\"flags\":256,\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"flags\":-1,\"time\":1}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"flags\":\"1\",\"time\":1}",
		/* schema records (tests/unit/test_schema.c has more) */
		"{\"type\":\"schema\",\"ch\":1,\"objects\":[]}",
		"{\"type\":\"schema\",\"ch\":1,\"generation\":0}",
		"{\"type\":\"schema\",\"ch\":1,\"generation\":0,\"objects\":[],"
		"\"x\":1}",
		"{\"type\":\"schema\",\"ch\":1,\"generation\":0,\"objects\":"
		"[{\"type\":\"table\",\"name\":\"t\",\"table\":\"t\"}]}",
		/* members the schema does not name */
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1,\"x\":1}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1,\"Time\":1}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{},\"time\":1}",
		"{\"type\":32,\"ch\":0,\"payload\":\"\",\"x\":null}",
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[\"id\"],\"x\":1}"),
		BATCH(CHG("\"pk\":[1],\"set\":{},\"x\":1")),
		BATCH("{\"table\":\"t\",\"op\":\"delete\",\"dot\":\"" SA
		    ":1\",\"pk\":[1],\"set\":{}}"),
		"{\"type\":\"batch\",\"ch\":0,\"tables\":[],\"changes\":[],\"x\":1}",
		/* the batch's own dot */
		"{\"type\":\"batch\",\"ch\":0,\"dot\":\"xyz\",\"tables\":[],"
		"\"changes\":[]}",
		"{\"type\":\"batch\",\"ch\":0,\"dot\":\"" SA ":0\",\"tables\":[],"
		"\"changes\":[]}",
		"{\"type\":\"batch\",\"ch\":0,\"dot\":5,\"tables\":[],"
		"\"changes\":[]}",
		/* heartbeat */
		"{\"type\":\"heartbeat\",\"ch\":0}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":\"1\"}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":-1}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1.5}",
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":9223372036854775808}",
		/* error */
		"{\"type\":\"error\",\"ch\":0,\"code\":2147483648,\"message\":\"\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":-2147483649,\"message\":\"\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":\"x\",\"message\":\"x\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":1.5,\"message\":\"x\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":-8}",
		"{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":5}",
		"{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":null}",
		/* clock */
		"{\"type\":\"clock\",\"ch\":0}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":[]}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{\"zz\":1}}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{\"" SA "\":0}}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{\"" SA "\":-1}}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{\"" SA "\":\"1\"}}",
		"{\"type\":\"clock\",\"ch\":0,\"clock\":{\"" SA "0\":1}}",
		/* opaque payloads */
		"{\"type\":32,\"ch\":0}",
		"{\"type\":32,\"ch\":0,\"payload\":5}",
		"{\"type\":32,\"ch\":0,\"payload\":\"!!!!\"}",
		"{\"type\":32,\"ch\":0,\"payload\":\"AQI\"}",
		"{\"type\":\"hello\",\"ch\":0,\"payload\":\"A\"}",
		"{\"type\":\"hello\",\"ch\":0}",
		/* batch: tables */
		"{\"type\":\"batch\",\"ch\":0,\"changes\":[]}",
		"{\"type\":\"batch\",\"ch\":0,\"tables\":{},\"changes\":[]}",
		"{\"type\":\"batch\",\"ch\":0,\"tables\":[]}",
		"{\"type\":\"batch\",\"ch\":0,\"tables\":[],\"changes\":{}}",
		"{\"type\":\"batch\",\"ch\":0,\"clock\":[],\"tables\":[],\"changes\":[]}",
		TABLES("1"),
		TABLES("{\"cols\":[\"id\"],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":5,\"cols\":[\"id\"],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"\",\"cols\":[\"id\"],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":\"id\",\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[],\"pk\":[]}"),
		TABLES("{\"name\":\"t\",\"cols\":[1],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"\"],\"pk\":[\"\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[\"x\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[0]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\",\"v\"],\"pk\":[\"id\",\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\",\"id\"],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[\"id\"]},"
		    "{\"name\":\"t\",\"cols\":[\"id\"],\"pk\":[\"id\"]}"),
		TABLES("{\"name\":\"a\\u0000b\",\"cols\":[\"id\"],\"pk\":[\"id\"]}"),
		/* batch: changes */
		BATCH("1"),
		BATCH("{\"op\":\"update\",\"dot\":\"" SA ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"nosuch\",\"op\":\"update\",\"dot\":\"" SA
		    ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":5,\"op\":\"update\",\"dot\":\"" SA
		    ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"upsert\",\"dot\":\"" SA
		    ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"dot\":\"" SA ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":2,\"dot\":\"" SA
		    ":1\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"abc\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA "\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA ":0\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA ":-1\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA ":x\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA ":\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"" SA
		    ":9223372036854775808\",\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":\"00112233:1\","
		    "\"pk\":[1],\"set\":{}}"),
		BATCH("{\"table\":\"t\",\"op\":\"update\",\"dot\":5,"
		    "\"pk\":[1],\"set\":{}}"),
		BATCH(CHG("\"set\":{}")),
		BATCH(CHG("\"pk\":1,\"set\":{}")),
		BATCH(CHG("\"pk\":[],\"set\":{}")),
		BATCH(CHG("\"pk\":[1,2],\"set\":{}")),
		BATCH(CHG("\"pk\":[true],\"set\":{}")),
		BATCH(CHG("\"pk\":[1]")),
		BATCH(CHG("\"pk\":[1],\"set\":[]")),
		BATCH(CHG("\"pk\":[1],\"set\":{\"nosuch\":1}")),
		BATCH(CHG("\"pk\":[1],\"set\":{\"id\":1}")),
		BATCH(CHG("\"pk\":[1],\"set\":{\"v\":true}")),
		BATCH(CHG("\"pk\":[1],\"set\":{\"v\":{\"blob\":\"!\"}}")),
		BATCH(CHG("\"pk\":[1],\"set\":{\"v\":{\"real\":\"x\"}}")),
		BATCH(CHG("\"pk\":[{\"text\":\"***\"}],\"set\":{}")),
		/* Invalid UTF-8, raw control bytes, integer overflow in the
		 * line itself. */
		"{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"\xff\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"\xc0\x80\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"\xed\xa0\x80\"}",
		BATCH(CHG("\"pk\":[1],\"set\":{\"v\":\"\xe2\x82\"}")),
		"{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"a\tb\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":9223372036854775808,"
		"\"message\":\"\"}",
		"{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"\\ud800\"}",
	};
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		struct ws_buf out = WS_BUF_INIT;
		char err[WS_ERRLEN] = "";
		int rc;

		CHECK_INT(ws_buf_append(&out, "keep", 4), 0);
		rc = ws_json_parse_line(bad[i], strlen(bad[i]), &out, err);
		if (rc != WS_EJSON || err[0] == '\0' || out.len != 4) {
			fprintf(stderr, "  %s\n    gives %d (%s), %zu bytes out\n",
			    bad[i], rc, err, out.len);
			CHECK(0);
		}
		ws_buf_release(&out);
	}

	/* A raw NUL byte inside the line. */
	{
		static const char withnul[] =
		    "{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"a\0b\"}";
		struct ws_buf out = WS_BUF_INIT;
		char err[WS_ERRLEN] = "";

		CHECK_INT(ws_json_parse_line(withnul, sizeof withnul - 1, &out, err),
		    WS_EJSON);
		CHECK_INT(out.len, 0);
		ws_buf_release(&out);
	}
	/* Very deep nesting: refused, not a stack overflow. */
	{
		size_t depth = 100000, k;
		char *deep = malloc(2 * depth + 64);
		size_t n = 0;
		struct ws_buf out = WS_BUF_INIT;
		char err[WS_ERRLEN] = "";

		n += (size_t)sprintf(deep, "{\"type\":32,\"ch\":0,\"payload\":");
		for (k = 0; k < depth; k++)
			deep[n++] = '[';
		for (k = 0; k < depth; k++)
			deep[n++] = ']';
		deep[n++] = '}';
		CHECK_INT(ws_json_parse_line(deep, n, &out, err), WS_EJSON);
		free(deep);
		ws_buf_release(&out);
	}
}

/* Frames whose payload does not decode cannot become JSON. */
TEST(bad_payloads)
{
	static const struct {
		uint8_t type;
		size_t n;
		const char *p;
	} bad[] = {
		{WS_FRAME_HEARTBEAT, 0, ""},
		{WS_FRAME_HEARTBEAT, 2, "\x05\x00"},         /* trailing byte */
		{WS_FRAME_HEARTBEAT, 2, "\x80\x00"},         /* non-minimal */
		{WS_FRAME_HEARTBEAT, 1, "\x80"},             /* cut short */
		{WS_FRAME_HEARTBEAT, 10,
		    "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"}, /* 2^63 */
		{WS_FRAME_ERROR, 10,
		    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"}, /* INT64_MIN */
		{WS_FRAME_ERROR, 5, "\x80\x80\x80\x80\x10"},  /* 2^31 */
		{WS_FRAME_ERROR, 0, ""},
		{WS_FRAME_ERROR, 2, "\x0f\xff"},             /* not UTF-8 */
		{WS_FRAME_ERROR, 3, "\x0f\xc0\x80"},
		{WS_FRAME_ERROR, 3, "\x8f\x00x"},
		{WS_FRAME_CLOCK, 0, ""},
		{WS_FRAME_CLOCK, 2, "\x00\x00"},
		{WS_FRAME_CLOCK, 2, "\x01\x00"},
		{WS_FRAME_BATCH, 0, ""},
		{WS_FRAME_BATCH, 3, "\x00\x00\x00"},
		{WS_FRAME_BATCH, 5, "\x00\x00\x00\x00\x00"},
		{WS_FRAME_BATCH, 4, "\x04\x00\x00\x00"},
		{WS_FRAME_SCHEMA, 0, ""},
		{WS_FRAME_SCHEMA, 2, "\x01\x00"},             /* cut short */
		{WS_FRAME_SCHEMA, 4, "\x01\x00\x00\x00"},     /* trailing byte */
		{WS_FRAME_SCHEMA, 4, "\x81\x00\x00\x00"},     /* non-minimal */
		{WS_FRAME_SCHEMA, 12,
		    "\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01\x00"}, /* 2^63 */
		{WS_FRAME_SCHEMA, 10, "\x01\x00\x01\x05\x01t\x01t\x01x"}, /* type 5 */
		{WS_FRAME_SCHEMA, 10, "\x01\x00\x01\x01\x01\0\x01t\x01x"}, /* NUL */
	};
	size_t i, cutfail = 0;

	for (i = 0; i < NELEM(bad); i++) {
		struct ws_buf fb = WS_BUF_INIT, line = WS_BUF_INIT;
		struct ws_frame f;
		json_t *obj = NULL;
		char err[WS_ERRLEN] = "";
		size_t used;
		int rc;

		mkframe(&fb, bad[i].type, 0, 0, bad[i].p, bad[i].n);
		CHECK_INT(ws_frame_parse(fb.p, fb.len, WS_FRAME_MAX_LIMIT, &f,
		    &used), 0);
		rc = ws_json_from_frame(&f, &obj, err);
		if (rc != WS_ECORRUPT || err[0] == '\0') {
			fprintf(stderr, "  type %u payload #%zu: %d (%s)\n",
			    bad[i].type, i, rc, err);
			CHECK(0);
		}
		CHECK(obj == NULL);
		json_decref(rc ? NULL : obj);
		CHECK_INT(ws_json_put_frame(&f, &line, err), WS_ECORRUPT);
		CHECK_INT(line.len, 0);
		ws_buf_release(&fb);
		ws_buf_release(&line);
	}
	/* Every truncation of the golden batch payload. */
	for (i = 0; i < sizeof batch_small; i++) {
		struct ws_buf fb = WS_BUF_INIT;
		struct ws_frame f;
		json_t *obj = NULL;
		size_t used;
		int rc;

		mkframe(&fb, WS_FRAME_BATCH, 0, 0, batch_small, i);
		CHECK_INT(ws_frame_parse(fb.p, fb.len, WS_FRAME_MAX_LIMIT, &f,
		    &used), 0);
		rc = ws_json_from_frame(&f, &obj, NULL);
		if (rc != WS_ECORRUPT && ++cutfail <= 3)
			fprintf(stderr, "  batch cut at %zu: %d\n", i, rc);
		if (rc == 0)
			json_decref(obj);
		ws_buf_release(&fb);
	}
	CHECK_INT(cutfail, 0);
}

/*
 * Random damage to valid lines: never a crash; what is accepted must be a
 * frame that converts back; what is refused is WS_EJSON.
 */
TEST(fuzz_lines)
{
	struct ws_buf fb = WS_BUF_INIT, line = WS_BUF_INIT, out = WS_BUF_INIT;
	int round, failed = 0;

	for (round = 0; round < 4000 && failed < 5; round++) {
		char err[WS_ERRLEN] = "";
		size_t n, k, edits;
		int rc;

		gen_frame(&fb);
		line.len = 0;
		if (line_of(fb.p, fb.len, &line, err) != 0) {
			CHECK(0);
			continue;
		}
		n = line.len - 1;
		edits = 1 + (size_t)t_below(3);
		for (k = 0; k < edits && n; k++) {
			size_t at = (size_t)t_below(n);

			switch (t_below(4)) {
			case 0:
				line.p[at] = (uint8_t)t_rand();
				break;
			case 1:
				line.p[at] = "{}[]\":,0123456789-.eE \\u"[t_below(25)];
				break;
			case 2:
				n = at; /* cut */
				break;
			default:
				memmove(line.p + at, line.p + at + 1, n - at - 1);
				n--;
				break;
			}
		}
		out.len = 0;
		rc = ws_json_parse_line((const char *)line.p, n, &out, err);
		if (rc == 0) {
			struct ws_frame f;
			size_t used;
			json_t *obj = NULL;

			if (ws_frame_parse(out.p, out.len, WS_FRAME_MAX_LIMIT, &f,
			    &used) != 0 || used != out.len ||
			    ws_json_from_frame(&f, &obj, err) != 0) {
				fprintf(stderr, "  round %d: accepted line gives a "
				    "bad frame (%s)\n", round, err);
				failed++;
			}
			json_decref(obj);
		} else if (rc != WS_EJSON) {
			fprintf(stderr, "  round %d: %d (%s)\n    %.*s\n", round, rc,
			    err, (int)n, (const char *)line.p);
			failed++;
		}
	}
	CHECK_INT(failed, 0);
	ws_buf_release(&fb);
	ws_buf_release(&line);
	ws_buf_release(&out);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(init);
	RUN(manpage_examples);
	RUN(golden_batch);
	RUN(every_frame_type);
	RUN(value_to_json);
	RUN(value_from_json);
	RUN(value_manpage_set);
	RUN(values_through_lines);
	RUN(vclock_json);
	RUN(batch_objects);
	RUN(random_roundtrips);
	RUN(good_shapes);
	RUN(bad_shapes);
	RUN(bad_payloads);
	RUN(fuzz_lines);
	TEST_MAIN_END();
}
