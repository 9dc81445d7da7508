/* SPDX-License-Identifier: MIT */
/*
 * test_schema.c - schema records (schema.h): the builder (record order,
 * replacing, names taken once), the binary codec and its canonical-form
 * decoder, and the JSON twin (json.h) of the record and of a
 * WS_FRAME_SCHEMA frame.
 *
 * rec_small is a golden vector derived by hand from the layout in
 * schema.h (spelled out byte by byte below); the refusals are edits of
 * it.  Decoding always reads a heap copy that is scribbled over and freed
 * before the result is looked at, so under ASan a pointer kept into the
 * input shows up.  Every decoded record must re-encode to the same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/wsync.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define SQL_T "CREATE TABLE t(a)"
#define SQL_I "CREATE INDEX i ON t(a)"

/* Generation 3: table t, then index i on t; 54 bytes. */
static const uint8_t rec_small[] = {
	0x01,                   /* format 1 */
	0x03,                   /* generation 3 */
	0x02,                   /* 2 objects */
	0x01,                   /* [3] table */
	0x01, 't',              /* [4] name */
	0x01, 't',              /* [6] table */
	0x11, 'C', 'R', 'E', 'A', 'T', 'E', ' ', 'T', 'A', 'B', 'L', 'E', ' ',
	't', '(', 'a', ')',     /* [8] sql, 17 bytes */
	0x02,                   /* [26] index */
	0x01, 'i',              /* [27] name */
	0x01, 't',              /* [29] table */
	0x16, 'C', 'R', 'E', 'A', 'T', 'E', ' ', 'I', 'N', 'D', 'E', 'X', ' ',
	'i', ' ', 'O', 'N', ' ', 't', '(', 'a', ')', /* [31] sql, 22 bytes */
};

/* The same record as a JSON line's members. */
#define REC_SMALL_JSON "\"generation\":3,\"objects\":[" \
	"{\"type\":\"table\",\"name\":\"t\",\"table\":\"t\",\"sql\":\"" SQL_T "\"}," \
	"{\"type\":\"index\",\"name\":\"i\",\"table\":\"t\",\"sql\":\"" SQL_I "\"}]"

static int is_empty(const struct ws_schema *sc)
{
	return sc->n == 0 && sc->gen == 0 && sc->obj == NULL;
}

/* Decode from a heap copy that is scribbled over and freed at once. */
static int decode_copy(struct ws_schema *sc, const uint8_t *p, size_t n,
    char *err)
{
	uint8_t *c = malloc(n ? n : 1);
	int rc;

	if (!c)
		return WS_ENOMEM;
	if (n)
		memcpy(c, p, n);
	rc = ws_schema_decode(sc, c, n, err);
	memset(c, 0xa5, n);
	free(c);
	return rc;
}

/* Decode p[0..n) and check it re-encodes to exactly those bytes. */
static int reencodes(const uint8_t *p, size_t n)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_buf out = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	int rc, ok;

	if ((rc = decode_copy(&sc, p, n, err))) {
		fprintf(stderr, "  decode: %d (%s)\n", rc, err);
		return 0;
	}
	ok = ws_schema_encode(&sc, &out) == 0 && out.len == n &&
	    memcmp(out.p, p, n) == 0;
	ws_buf_release(&out);
	ws_schema_release(&sc);
	return ok;
}

/* out = p with del bytes at off replaced by ins[0..nins). */
static size_t splice(uint8_t *out, const uint8_t *p, size_t n, size_t off,
    size_t del, const void *ins, size_t nins)
{
	memcpy(out, p, off);
	memcpy(out + off, ins, nins);
	memcpy(out + off + nins, p + off + del, n - off - del);
	return n - del + nins;
}

static void build_small(struct ws_schema *sc)
{
	CHECK_INT(ws_schema_add(sc, WS_OBJ_TABLE, "t", "t", SQL_T, NULL), 0);
	CHECK_INT(ws_schema_add(sc, WS_OBJ_INDEX, "i", "t", SQL_I, NULL), 0);
	sc->gen = 3;
}

/* ---- the builder ---- */

TEST(objtype_names)
{
	CHECK_STR(ws_objtype_name(WS_OBJ_TABLE), "table");
	CHECK_STR(ws_objtype_name(WS_OBJ_INDEX), "index");
	CHECK_STR(ws_objtype_name(WS_OBJ_VIEW), "view");
	CHECK_STR(ws_objtype_name(WS_OBJ_TRIGGER), "trigger");
	CHECK(ws_objtype_name(0) == NULL);
	CHECK(ws_objtype_name(5) == NULL);
	CHECK(ws_objtype_name(~0u) == NULL);
	CHECK_INT(ws_objtype_from_name("table"), WS_OBJ_TABLE);
	CHECK_INT(ws_objtype_from_name("trigger"), WS_OBJ_TRIGGER);
	CHECK_INT(ws_objtype_from_name("TABLE"), 0);
	CHECK_INT(ws_objtype_from_name(""), 0);
	CHECK_INT(ws_objtype_from_name(NULL), 0);
	CHECK_STR(ws_frame_type_name(WS_FRAME_SCHEMA), "schema");
	CHECK_INT(ws_frame_type_from_name("schema"), 0x12);
}

/*
 * Objects stay in the order they were added (the sender's sqlite_schema
 * order), through the codec too; names are taken once, whatever the type,
 * ASCII case aside, as SQLite compares them.
 */
TEST(record_order)
{
	static const struct {
		unsigned type;
		const char *name, *table, *sql;
	} in[] = {
		{WS_OBJ_TABLE, "b", "b", "CREATE TABLE b(x)"},
		{WS_OBJ_TRIGGER, "tr", "b", "CREATE TRIGGER tr AFTER INSERT ON b BEGIN SELECT 1; END"},
		{WS_OBJ_INDEX, "b_x", "b", "CREATE INDEX b_x ON b(x)"},
		{WS_OBJ_TABLE, "a", "a", "CREATE TABLE a(x)"},
		{WS_OBJ_VIEW, "v", "v", "CREATE VIEW v AS SELECT * FROM a"},
		{WS_OBJ_TABLE, "B2", "B2", "CREATE TABLE \"B2\"(x)"},
		{WS_OBJ_INDEX, "a_x", "a", "CREATE INDEX a_x ON a(x)"},
		/* Only ASCII letters fold: these two are distinct. */
		{WS_OBJ_TABLE, "caf\xc3\xa9", "caf\xc3\xa9", "CREATE TABLE caf\xc3\xa9(x)"},
		{WS_OBJ_TABLE, "caf\xc3\x89", "caf\xc3\x89", "CREATE TABLE caf\xc3\x89(x)"},
	};
	struct ws_schema sc = WS_SCHEMA_INIT, d = WS_SCHEMA_INIT;
	struct ws_buf out = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	size_t i;

	for (i = 0; i < NELEM(in); i++)
		CHECK_INT(ws_schema_add(&sc, in[i].type, in[i].name, in[i].table,
		    in[i].sql, err), 0);
	CHECK_INT(sc.n, NELEM(in));
	for (i = 0; i < sc.n && i < NELEM(in); i++) {
		CHECK_INT(sc.obj[i].type, in[i].type);
		CHECK_STR(sc.obj[i].name, in[i].name);
		CHECK_STR(sc.obj[i].table, in[i].table);
		CHECK_STR(sc.obj[i].sql, in[i].sql);
	}
	CHECK_INT(ws_schema_encode(&sc, &out), 0);
	CHECK(reencodes(out.p, out.len));
	CHECK_INT(decode_copy(&d, out.p, out.len, err), 0);
	CHECK(ws_schema_same(&sc, &d));
	/* Another order is another record. */
	ws_schema_release(&d);
	for (i = NELEM(in); i-- > 0;)
		CHECK_INT(ws_schema_add(&d, in[i].type, in[i].name, in[i].table,
		    in[i].sql, err), 0);
	CHECK_INT(d.n, NELEM(in));
	CHECK(!ws_schema_same(&sc, &d));
	CHECK_STR(d.obj[0].name, in[NELEM(in) - 1].name);
	/* Lookups: the type must match; ASCII case does not count. */
	CHECK(ws_schema_find(&sc, WS_OBJ_INDEX, "a_x") != NULL);
	CHECK(ws_schema_find(&sc, WS_OBJ_INDEX, "A_X") != NULL);
	CHECK_STR(ws_schema_find(&sc, WS_OBJ_TABLE, "a")->sql, "CREATE TABLE a(x)");
	CHECK(ws_schema_find(&sc, WS_OBJ_VIEW, "a") == NULL);
	CHECK(ws_schema_find(&sc, WS_OBJ_TABLE, "c") == NULL);
	CHECK_STR(ws_schema_find(&sc, WS_OBJ_TABLE, "CAF\xc3\x89")->sql,
	    "CREATE TABLE caf\xc3\x89(x)");
	/* A name another object has, in any case, is refused. */
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_INDEX, "a", "a", "CREATE INDEX a ON a(x)",
	    err), WS_EINVAL);
	CHECK(err[0] != 0);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_VIEW, "TR", "TR", "CREATE VIEW TR AS "
	    "SELECT 1", err), WS_EINVAL);
	CHECK_INT(sc.n, NELEM(in));
	CHECK(ws_schema_same(&sc, &d) == 0);
	ws_schema_release(&sc);
	CHECK(is_empty(&sc));
	ws_schema_release(&d);
	ws_buf_release(&out);
}

/* The same type and name again replaces the object's table and SQL. */
TEST(replace)
{
	struct ws_schema sc = WS_SCHEMA_INIT, before = WS_SCHEMA_INIT;
	struct ws_buf out = WS_BUF_INIT;

	build_small(&sc);
	build_small(&before);
	CHECK(ws_schema_same(&sc, &before));
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "t",
	    "CREATE TABLE t(a, b)", NULL), 0);
	CHECK_INT(sc.n, 2);
	CHECK_STR(sc.obj[0].sql, "CREATE TABLE t(a, b)");
	CHECK(!ws_schema_same(&sc, &before));
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_INDEX, "i", "u", SQL_I, NULL), 0);
	CHECK_INT(sc.n, 2);
	CHECK_STR(sc.obj[1].table, "u");
	/* In place, and another ASCII case names the same object. */
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "T", "t", SQL_T, NULL), 0);
	CHECK_INT(sc.n, 2);
	CHECK_INT(sc.obj[0].type, WS_OBJ_TABLE);
	CHECK_INT(sc.obj[1].type, WS_OBJ_INDEX);
	/* Back to what it was: the same record again, byte for byte. */
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "t", SQL_T, NULL), 0);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_INDEX, "i", "t", SQL_I, NULL), 0);
	CHECK(ws_schema_same(&sc, &before));
	/* Generations do not count for sameness. */
	sc.gen = 99;
	CHECK(ws_schema_same(&sc, &before));
	sc.gen = 3;
	CHECK_INT(ws_schema_encode(&sc, &out), 0);
	CHECK_MEM(out.p, out.len, rec_small, sizeof rec_small);
	ws_schema_release(&sc);
	ws_schema_release(&before);
	ws_buf_release(&out);
}

TEST(add_refusals)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	char *big = malloc(WS_SCHEMA_MAX_SQL + 2), err[WS_ERRLEN];
	char name[16];
	size_t i;

	if (!big) {
		CHECK(0);
		return;
	}
	CHECK_INT(ws_schema_add(&sc, 0, "t", "t", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, 5, "t", "t", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "", "t", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "t", "", err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, NULL, "t", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t\xff", "t", SQL_T, err),
	    WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", "t", "CREATE \xc0\xaf", err),
	    WS_EINVAL);
	/* Names of 1024 bytes, SQL of 256 KiB: fine; one more byte is not. */
	memset(big, 'a', WS_SCHEMA_MAX_SQL + 1);
	big[WS_SCHEMA_MAX_NAME] = 0;
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, big, big, SQL_T, err), 0);
	big[WS_SCHEMA_MAX_NAME] = 'a';
	big[WS_SCHEMA_MAX_NAME + 1] = 0;
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, big, "t", SQL_T, err), WS_EINVAL);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t", big, SQL_T, err), WS_EINVAL);
	big[WS_SCHEMA_MAX_NAME + 1] = 'a';
	big[WS_SCHEMA_MAX_SQL] = 0;
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_VIEW, "v", "v", big, err), 0);
	big[WS_SCHEMA_MAX_SQL] = 'a';
	big[WS_SCHEMA_MAX_SQL + 1] = 0;
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_VIEW, "w", "w", big, err), WS_EINVAL);
	CHECK_INT(sc.n, 2);
	ws_schema_release(&sc);
	/* At most WS_SCHEMA_MAX_OBJECTS objects; replacing one still works. */
	for (i = 0; i < WS_SCHEMA_MAX_OBJECTS; i++) {
		snprintf(name, sizeof name, "t%05zu", i);
		if (ws_schema_add(&sc, WS_OBJ_TABLE, name, name, SQL_T, err) != 0) {
			CHECK(0);
			break;
		}
	}
	CHECK_INT(sc.n, WS_SCHEMA_MAX_OBJECTS);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "u", "u", SQL_T, err), WS_ERANGE);
	CHECK_INT(ws_schema_add(&sc, WS_OBJ_TABLE, "t00007", "t00007", SQL_I, err), 0);
	CHECK_INT(sc.n, WS_SCHEMA_MAX_OBJECTS);
	{
		struct ws_buf out = WS_BUF_INIT;

		CHECK_INT(ws_schema_encode(&sc, &out), 0);
		CHECK(reencodes(out.p, out.len));
		ws_buf_release(&out);
	}
	ws_schema_release(&sc);
	free(big);
}

/* ---- the codec ---- */

TEST(golden_small)
{
	struct ws_schema sc = WS_SCHEMA_INIT, d = WS_SCHEMA_INIT;
	struct ws_buf out = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";

	build_small(&sc);
	CHECK_INT(ws_schema_encode(&sc, &out), 0);
	CHECK_MEM(out.p, out.len, rec_small, sizeof rec_small);
	CHECK_INT(decode_copy(&d, rec_small, sizeof rec_small, err), 0);
	CHECK_INT(d.gen, 3);
	CHECK_INT(d.n, 2);
	if (d.n == 2) {
		CHECK_INT(d.obj[0].type, WS_OBJ_TABLE);
		CHECK_STR(d.obj[0].name, "t");
		CHECK_STR(d.obj[0].table, "t");
		CHECK_STR(d.obj[0].sql, SQL_T);
		CHECK_INT(d.obj[1].type, WS_OBJ_INDEX);
		CHECK_STR(d.obj[1].name, "i");
		CHECK_STR(d.obj[1].table, "t");
		CHECK_STR(d.obj[1].sql, SQL_I);
	}
	CHECK(ws_schema_same(&sc, &d));
	CHECK(reencodes(rec_small, sizeof rec_small));
	/* The empty record of generation 0, and a large generation. */
	ws_schema_release(&sc);
	out.len = 0;
	CHECK_INT(ws_schema_encode(&sc, &out), 0);
	CHECK_MEM(out.p, out.len, "\x01\x00\x00", 3);
	CHECK(reencodes((const uint8_t *)"\x01\x00\x00", 3));
	CHECK(reencodes((const uint8_t *)"\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x00",
	    12));
	/* Decoding replaces what was there. */
	CHECK_INT(decode_copy(&d, (const uint8_t *)"\x01\x07\x00", 3, err), 0);
	CHECK_INT(d.gen, 7);
	CHECK_INT(d.n, 0);
	ws_schema_release(&d);
	ws_buf_release(&out);
}

struct bad {
	const char *what;
	size_t off, del;
	const char *ins;
	size_t nins;
	int rc;
};

/* Edits of rec_small that the decoder must refuse, leaving sc empty. */
TEST(decoder_refusals)
{
	static const struct bad bad[] = {
		{"format 0", 0, 1, "\x00", 1, WS_EVERSION},
		{"format 2", 0, 1, "\x02", 1, WS_EVERSION},
		{"format 128", 0, 1, "\x80\x01", 2, WS_EVERSION},
		{"non-minimal format", 0, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"non-minimal generation", 1, 1, "\x83\x00", 2, WS_ECORRUPT},
		{"non-minimal count", 2, 1, "\x82\x00", 2, WS_ECORRUPT},
		{"type 0", 3, 1, "\x00", 1, WS_ECORRUPT},
		{"type 5", 26, 1, "\x05", 1, WS_ECORRUPT},
		{"type 2^32+1", 3, 1, "\x81\x80\x80\x80\x10", 5, WS_ECORRUPT},
		{"non-minimal type", 3, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"empty name", 4, 2, "\x00", 1, WS_ECORRUPT},
		{"empty table", 6, 2, "\x00", 1, WS_ECORRUPT},
		{"empty sql", 8, 18, "\x00", 1, WS_ECORRUPT},
		{"NUL in name", 4, 2, "\x02t\0", 3, WS_ECORRUPT},
		{"NUL in table", 6, 2, "\x02\0t", 3, WS_ECORRUPT},
		{"NUL in sql", 9, 1, "\0", 1, WS_ECORRUPT},
		{"name not UTF-8", 4, 2, "\x02t\xff", 3, WS_ECORRUPT},
		{"overlong UTF-8", 27, 2, "\x02\xc0\xaf", 3, WS_ECORRUPT},
		{"surrogate", 29, 2, "\x03\xed\xa0\x80", 4, WS_ECORRUPT},
		{"sql not UTF-8", 31, 1, "\x17\x80", 2, WS_ECORRUPT},
		{"non-minimal name length", 4, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"name 1025 bytes", 4, 1, "\x81\x08", 2, 0},
		/* Each name once, whatever the type and ASCII case. */
		{"repeated object", 26, 28,
		    "\x01\x01t\x01t\x11" SQL_T, 23, WS_ECORRUPT},
		{"name of another type", 27, 2, "\x01t", 2, WS_ECORRUPT},
		{"name in another case", 27, 2, "\x01T", 2, WS_ECORRUPT},
		{"trailing byte", 54, 0, "\x00", 1, WS_ECORRUPT},
		{"trailing bytes", 54, 0, "\x01\x01x\x01x\x01x", 7, WS_ECORRUPT},
		{"count one short", 2, 1, "\x01", 1, WS_ECORRUPT},
		{"count one over", 2, 1, "\x03", 1, 0},
		{"count 4097", 2, 1, "\x81\x20", 2, 0},
		{"count 2^64-1", 2, 1,
		    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, 0},
	};
	uint8_t buf[256];
	size_t i, n;

	for (i = 0; i < NELEM(bad); i++) {
		struct ws_schema sc = WS_SCHEMA_INIT;
		char err[WS_ERRLEN] = "";
		int rc;

		n = splice(buf, rec_small, sizeof rec_small, bad[i].off, bad[i].del,
		    bad[i].ins, bad[i].nins);
		build_small(&sc); /* decode must replace, and empty on error */
		rc = decode_copy(&sc, buf, n, err);
		if (bad[i].rc ? rc != bad[i].rc : rc >= 0 || rc == WS_ENOMEM) {
			fprintf(stderr, "  %s: got %d (%s), expected %d\n",
			    bad[i].what, rc, err, bad[i].rc);
			CHECK(0);
		}
		if (rc && !err[0]) {
			fprintf(stderr, "  %s: no message\n", bad[i].what);
			CHECK(0);
		}
		if (!is_empty(&sc)) {
			fprintf(stderr, "  %s: record not empty after error\n",
			    bad[i].what);
			CHECK(0);
		}
		ws_schema_release(&sc);
	}
}

/* Any order of distinct names decodes, and re-encodes to the same bytes. */
TEST(decoder_orders)
{
	static const uint8_t rev[] = {
		0x01, 0x03, 0x02,
		0x02, 0x01, 'i', 0x01, 't', 0x16, 'C', 'R', 'E', 'A', 'T', 'E', ' ',
		'I', 'N', 'D', 'E', 'X', ' ', 'i', ' ', 'O', 'N', ' ', 't', '(', 'a',
		')',
		0x01, 0x01, 't', 0x01, 't', 0x11, 'C', 'R', 'E', 'A', 'T', 'E', ' ',
		'T', 'A', 'B', 'L', 'E', ' ', 't', '(', 'a', ')',
	};
	struct ws_schema sc = WS_SCHEMA_INIT;
	uint8_t buf[sizeof rec_small];

	CHECK(reencodes(rev, sizeof rev));
	CHECK_INT(decode_copy(&sc, rev, sizeof rev, NULL), 0);
	CHECK_INT(sc.n, 2);
	CHECK_STR(sc.obj[0].name, "i");
	/* A view named t, then an index i: types in any order. */
	memcpy(buf, rec_small, sizeof buf);
	buf[3] = WS_OBJ_VIEW;
	CHECK(reencodes(buf, sizeof buf));
	ws_schema_release(&sc);
}

/* Object counts over the limit are refused before anything is allocated. */
TEST(count_limit)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_buf b = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	size_t i;
	int rc;

	/* 4097 well-formed, ordered objects: still too many. */
	CHECK_INT(ws_buf_append(&b, "\x01\x00", 2), 0);
	CHECK_INT(ws_buf_put_varint(&b, WS_SCHEMA_MAX_OBJECTS + 1), 0);
	for (i = 0; i <= WS_SCHEMA_MAX_OBJECTS; i++) {
		char name[32];

		snprintf(name, sizeof name, "t%05zu", i);
		CHECK_INT(ws_buf_append(&b, "\x01\x06", 2), 0);
		CHECK_INT(ws_buf_append(&b, name, 6), 0);
		CHECK_INT(ws_buf_putc(&b, 6), 0);
		CHECK_INT(ws_buf_append(&b, name, 6), 0);
		CHECK_INT(ws_buf_put_varint(&b, strlen(SQL_T)), 0);
		CHECK_INT(ws_buf_append(&b, SQL_T, strlen(SQL_T)), 0);
	}
	rc = decode_copy(&sc, b.p, b.len, err);
	CHECK(rc == WS_ERANGE || rc == WS_ETOOBIG);
	CHECK(is_empty(&sc));
	/* One fewer is fine. */
	b.len = 0;
	CHECK_INT(ws_buf_append(&b, "\x01\x00", 2), 0);
	CHECK_INT(ws_buf_put_varint(&b, WS_SCHEMA_MAX_OBJECTS), 0);
	for (i = 0; i < WS_SCHEMA_MAX_OBJECTS; i++) {
		char name[32];

		snprintf(name, sizeof name, "t%05zu", i);
		CHECK_INT(ws_buf_append(&b, "\x01\x06", 2), 0);
		CHECK_INT(ws_buf_append(&b, name, 6), 0);
		CHECK_INT(ws_buf_putc(&b, 6), 0);
		CHECK_INT(ws_buf_append(&b, name, 6), 0);
		CHECK_INT(ws_buf_put_varint(&b, strlen(SQL_T)), 0);
		CHECK_INT(ws_buf_append(&b, SQL_T, strlen(SQL_T)), 0);
	}
	CHECK(reencodes(b.p, b.len));
	ws_schema_release(&sc);
	ws_buf_release(&b);
}

/* Random records through the builder: encode, decode, encode. */
static void gen_record(struct ws_schema *sc)
{
	static const char *const bits[] = {"a", "b", "_", "Z", "9", "\xc3\xa9",
	    "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "\"", "'", "\n", "\x1b"};
	size_t n = (size_t)t_below(20), i, k, len;

	/* "o<i>." makes every name distinct, whatever the bits after it. */
	char name[64], table[64], sql[256];
	unsigned type;

	sc->gen = t_below(3) ? t_below(1000) : t_rand();
	for (i = 0; i < n; i++) {
		type = (unsigned)(1 + t_below(4));
		len = (size_t)snprintf(name, sizeof name, "o%zu.", i);
		for (k = (size_t)t_below(6); k > 0; k--) {
			const char *b = bits[t_below(NELEM(bits))];

			memcpy(name + len, b, strlen(b));
			len += strlen(b);
		}
		name[len] = 0;
		snprintf(table, sizeof table, "%s", type == WS_OBJ_INDEX ||
		    type == WS_OBJ_TRIGGER ? "t" : name);
		snprintf(sql, sizeof sql, "CREATE %s \"%s\" -- %llu",
		    ws_objtype_name(type), name, (unsigned long long)t_rand());
		CHECK_INT(ws_schema_add(sc, type, name, table, sql, NULL), 0);
	}
}

TEST(random_roundtrips)
{
	int round, failed = 0;

	for (round = 0; round < 500 && failed < 3; round++) {
		struct ws_schema sc = WS_SCHEMA_INIT, d = WS_SCHEMA_INIT;
		struct ws_buf out = WS_BUF_INIT;
		char err[WS_ERRLEN] = "";

		gen_record(&sc);
		CHECK_INT(ws_schema_encode(&sc, &out), 0);
		if (decode_copy(&d, out.p, out.len, err) != 0 ||
		    !ws_schema_same(&sc, &d) || d.gen != sc.gen ||
		    !reencodes(out.p, out.len)) {
			fprintf(stderr, "  round %d: %s\n", round, err);
			failed++;
		}
		ws_schema_release(&sc);
		ws_schema_release(&d);
		ws_buf_release(&out);
	}
	CHECK_INT(failed, 0);
}

/* Every proper prefix of a record is refused and leaves sc empty. */
TEST(truncations)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	char err[WS_ERRLEN];
	size_t k;
	int round, failed = 0, rc;

	for (k = 0; k < sizeof rec_small; k++) {
		rc = decode_copy(&sc, rec_small, k, err);
		/* WS_ERANGE: the object count is more than the bytes left hold. */
		if ((rc != WS_ETRUNC && rc != WS_ERANGE) || !is_empty(&sc)) {
			fprintf(stderr, "  prefix %zu: %d (%s)\n", k, rc, err);
			failed++;
		}
	}
	for (round = 0; round < 200 && failed < 5; round++) {
		struct ws_schema g = WS_SCHEMA_INIT;
		struct ws_buf out = WS_BUF_INIT;

		gen_record(&g);
		CHECK_INT(ws_schema_encode(&g, &out), 0);
		for (k = 0; k < out.len && failed < 5; k++) {
			rc = decode_copy(&sc, out.p, k, err);
			if ((rc != WS_ETRUNC && rc != WS_ERANGE) || !is_empty(&sc)) {
				fprintf(stderr, "  round %d prefix %zu of %zu: %d (%s)\n",
				    round, k, out.len, rc, err);
				failed++;
			}
		}
		ws_buf_release(&out);
		ws_schema_release(&g);
	}
	CHECK_INT(failed, 0);
	ws_schema_release(&sc);
}

/* Whatever a flipped bit leaves, the decoder accepts only canonical bytes. */
TEST(bitflips)
{
	uint8_t buf[sizeof rec_small];
	size_t pos;
	int bit, failed = 0;

	for (pos = 0; pos < sizeof rec_small; pos++)
		for (bit = 0; bit < 8; bit++) {
			struct ws_schema sc = WS_SCHEMA_INIT;
			char err[WS_ERRLEN] = "";
			int rc;

			memcpy(buf, rec_small, sizeof buf);
			buf[pos] ^= (uint8_t)(1u << bit);
			rc = decode_copy(&sc, buf, sizeof buf, err);
			if (rc == 0 ? !reencodes(buf, sizeof buf) :
			    rc == WS_ENOMEM || rc == WS_EINVAL || !is_empty(&sc)) {
				fprintf(stderr, "  byte %zu bit %d: %d (%s)\n", pos,
				    bit, rc, err);
				failed++;
			}
			ws_schema_release(&sc);
		}
	CHECK_INT(failed, 0);
}

/* ---- JSON ---- */

/* The JSON line of a schema frame on channel ch holding p[0..n). */
static int frame_line(const uint8_t *p, size_t n, uint32_t ch, uint8_t flags,
    struct ws_buf *line, struct ws_buf *frame, char *err)
{
	struct ws_frame f;
	size_t used;
	int rc;

	frame->len = line->len = 0;
	if ((rc = ws_frame_put(frame, WS_FRAME_SCHEMA, flags, ch, p, n)) ||
	    (rc = ws_frame_parse(frame->p, frame->len, WS_FRAME_MAX_LIMIT, &f,
	    &used)))
		return rc;
	return ws_json_put_frame(&f, line, err);
}

/* Frame -> JSON line -> frame: the same bytes. */
static int line_roundtrip(const uint8_t *p, size_t n, uint32_t ch,
    uint8_t flags, const char *want)
{
	struct ws_buf line = WS_BUF_INIT, frame = WS_BUF_INIT, back = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	int rc, ok = 0;

	if ((rc = frame_line(p, n, ch, flags, &line, &frame, err))) {
		fprintf(stderr, "  to JSON: %d (%s)\n", rc, err);
		goto out;
	}
	if (want && (line.len != strlen(want) || memcmp(line.p, want, line.len))) {
		fprintf(stderr, "  line is\n    %.*s  expected\n    %s", (int)line.len,
		    (const char *)line.p, want);
		goto out;
	}
	if ((rc = ws_json_parse_line((const char *)line.p, line.len - 1, &back,
	    err))) {
		fprintf(stderr, "  back: %d (%s)\n", rc, err);
		goto out;
	}
	ok = back.len == frame.len && memcmp(back.p, frame.p, frame.len) == 0;
	if (!ok)
		fprintf(stderr, "  frame to JSON to frame differs\n");
out:
	ws_buf_release(&line);
	ws_buf_release(&frame);
	ws_buf_release(&back);
	return ok;
}

TEST(json_record)
{
	struct ws_schema sc = WS_SCHEMA_INIT, back = WS_SCHEMA_INIT;
	char err[WS_ERRLEN] = "", *s;
	json_t *o = json_object();

	build_small(&sc);
	CHECK_INT(ws_json_from_schema(&sc, o, err), 0);
	s = json_dumps(o, JSON_COMPACT);
	CHECK_STR(s, "{" REC_SMALL_JSON "}");
	free(s);
	CHECK_INT(ws_json_to_schema(o, &back, err), 0);
	CHECK(ws_schema_same(&sc, &back));
	CHECK_INT(back.gen, 3);
	json_decref(o);
	/* A generation above 2^63-1 has no JSON form. */
	o = json_object();
	sc.gen = (uint64_t)INT64_MAX + 1;
	CHECK_INT(ws_json_from_schema(&sc, o, err), WS_ERANGE);
	sc.gen = INT64_MAX;
	CHECK_INT(ws_json_from_schema(&sc, o, err), 0);
	CHECK_INT(ws_json_to_schema(o, &back, err), 0);
	CHECK_INT(back.gen, INT64_MAX);
	json_decref(o);
	ws_schema_release(&sc);
	ws_schema_release(&back);
}

TEST(json_frames)
{
	static const char want[] = "{\"type\":\"schema\",\"ch\":1," REC_SMALL_JSON "}\n";
	struct ws_buf line = WS_BUF_INIT, frame = WS_BUF_INIT, raw = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	int round, failed = 0;

	CHECK(line_roundtrip(rec_small, sizeof rec_small, 1, 0, want));
	CHECK(line_roundtrip(rec_small, sizeof rec_small, 0xffffffffu, 0x81, NULL));
	CHECK(line_roundtrip((const uint8_t *)"\x01\x00\x00", 3, 0, 0,
	    "{\"type\":\"schema\",\"ch\":0,\"generation\":0,\"objects\":[]}\n"));
	/* Another format travels raw, and still round-trips. */
	CHECK(line_roundtrip((const uint8_t *)"\x02\x00\x00", 3, 2, 0,
	    "{\"type\":\"schema\",\"ch\":2,\"payload\":\"AgAA\"}\n"));
	/* A bad record, or a generation JSON cannot hold, has no JSON form. */
	CHECK_INT(frame_line(rec_small, sizeof rec_small - 1, 1, 0, &line, &frame,
	    err), WS_ECORRUPT);
	CHECK_INT(frame_line((const uint8_t *)"\x01\x80\x80\x80\x80\x80\x80\x80\x80"
	    "\x80\x01\x00", 12, 1, 0, &line, &frame, err), WS_ECORRUPT);
	CHECK(strstr(err, "generation") != NULL);
	/* ...but may still be written raw, as any type may. */
	{
		static const char in[] = "{\"type\":\"schema\",\"ch\":1,"
		    "\"payload\":\"AQMC\"}";

		CHECK_INT(ws_json_parse_line(in, strlen(in), &raw, err), 0);
		frame.len = 0;
		CHECK_INT(ws_frame_put(&frame, WS_FRAME_SCHEMA, 0, 1, "\x01\x03\x02",
		    3), 0);
		CHECK_MEM(raw.p, raw.len, frame.p, frame.len);
	}
	/* Members in any order, the type by number; the objects keep theirs. */
	{
		static const char in[] = "{\"ch\":1,\"objects\":["
		    "{\"sql\":\"" SQL_T "\",\"table\":\"t\",\"name\":\"t\",\"type\":\"table\"},"
		    "{\"type\":\"index\",\"name\":\"i\",\"table\":\"t\",\"sql\":\"" SQL_I "\"}"
		    "],\"generation\":3,\"type\":18}";
		struct ws_buf f = WS_BUF_INIT, g = WS_BUF_INIT;

		CHECK_INT(ws_json_parse_line(in, strlen(in), &f, err), 0);
		CHECK_INT(ws_frame_put(&g, WS_FRAME_SCHEMA, 0, 1, rec_small,
		    sizeof rec_small), 0);
		CHECK_MEM(f.p, f.len, g.p, g.len);
		ws_buf_release(&f);
		ws_buf_release(&g);
	}
	/* Random records. */
	for (round = 0; round < 300 && failed < 3; round++) {
		struct ws_schema sc = WS_SCHEMA_INIT;
		struct ws_buf p = WS_BUF_INIT;

		gen_record(&sc);
		sc.gen &= INT64_MAX;
		CHECK_INT(ws_schema_encode(&sc, &p), 0);
		if (!line_roundtrip(p.p, p.len, (uint32_t)t_rand(),
		    (uint8_t)(t_below(4) ? 0 : t_rand()), NULL))
			failed++;
		ws_schema_release(&sc);
		ws_buf_release(&p);
	}
	CHECK_INT(failed, 0);
	ws_buf_release(&line);
	ws_buf_release(&frame);
	ws_buf_release(&raw);
}

/* Bad shapes: WS_EJSON with a message, and nothing written. */
TEST(json_refusals)
{
#define OBJ(t, n, tb, s) "{\"type\":" t ",\"name\":" n ",\"table\":" tb ",\"sql\":" s "}"
#define T_OK OBJ("\"table\"", "\"t\"", "\"t\"", "\"" SQL_T "\"")
#define REC(objs) "{\"type\":\"schema\",\"ch\":1,\"generation\":3,\"objects\":[" objs "]}"
	static const struct {
		const char *what, *line;
	} bad[] = {
		{"no generation", "{\"type\":\"schema\",\"ch\":1,\"objects\":[]}"},
		{"negative generation",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":-1,\"objects\":[]}"},
		{"real generation",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":1.0,\"objects\":[]}"},
		{"string generation",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":\"1\",\"objects\":[]}"},
		{"no objects", "{\"type\":\"schema\",\"ch\":1,\"generation\":1}"},
		{"objects an object",
		    "{\"type\":\"schema\",\"ch\":1,\"generation\":1,\"objects\":{}}"},
		{"unknown member", "{\"type\":\"schema\",\"ch\":1,\"generation\":1,"
		    "\"objects\":[],\"gen\":1}"},
		{"no ch", "{\"type\":\"schema\",\"generation\":1,\"objects\":[]}"},
		{"object not an object", REC("[]")},
		{"object a string", REC("\"t\"")},
		{"unknown object type", REC(OBJ("\"column\"", "\"t\"", "\"t\"", "\"x\""))},
		{"object type by number", REC(OBJ("1", "\"t\"", "\"t\"", "\"x\""))},
		{"object type in capitals", REC(OBJ("\"TABLE\"", "\"t\"", "\"t\"", "\"x\""))},
		{"no name", REC("{\"type\":\"table\",\"table\":\"t\",\"sql\":\"x\"}")},
		{"no table", REC("{\"type\":\"table\",\"name\":\"t\",\"sql\":\"x\"}")},
		{"no sql", REC("{\"type\":\"table\",\"name\":\"t\",\"table\":\"t\"}")},
		{"unknown object member", REC("{\"type\":\"table\",\"name\":\"t\","
		    "\"table\":\"t\",\"sql\":\"x\",\"cols\":[]}")},
		{"name a number", REC(OBJ("\"table\"", "1", "\"t\"", "\"x\""))},
		{"name null", REC(OBJ("\"table\"", "null", "\"t\"", "\"x\""))},
		{"empty name", REC(OBJ("\"table\"", "\"\"", "\"t\"", "\"x\""))},
		{"empty table", REC(OBJ("\"table\"", "\"t\"", "\"\"", "\"x\""))},
		{"empty sql", REC(OBJ("\"table\"", "\"t\"", "\"t\"", "\"\""))},
		{"NUL in name", REC(OBJ("\"table\"", "\"t\\u0000\"", "\"t\"", "\"x\""))},
		{"NUL in table", REC(OBJ("\"index\"", "\"i\"", "\"\\u0000\"", "\"x\""))},
		{"NUL in sql", REC(OBJ("\"table\"", "\"t\"", "\"t\"", "\"x\\u0000y\""))},
		{"repeated object", REC(T_OK "," T_OK)},
		{"name of another type", REC(T_OK "," OBJ("\"index\"", "\"t\"", "\"t\"",
		    "\"CREATE INDEX t ON t(a)\""))},
		{"name in another case", REC(T_OK "," OBJ("\"view\"", "\"T\"", "\"T\"",
		    "\"CREATE VIEW T AS SELECT 1\""))},
		{"repeated, other sql", REC(T_OK "," OBJ("\"table\"", "\"t\"", "\"t\"",
		    "\"CREATE TABLE t(b)\""))},
	};
	struct ws_buf out = WS_BUF_INIT;
	size_t i;

	for (i = 0; i < NELEM(bad); i++) {
		char err[WS_ERRLEN] = "";
		int rc = ws_json_parse_line(bad[i].line, strlen(bad[i].line), &out, err);

		if (rc != WS_EJSON || !err[0] || out.len) {
			fprintf(stderr, "  %s: %d (%s), %zu bytes\n", bad[i].what, rc,
			    err, out.len);
			CHECK(0);
		}
		out.len = 0;
	}
	/* Names over 1024 bytes, SQL over 256 KiB, more than 4096 objects. */
	{
		struct ws_schema sc = WS_SCHEMA_INIT;
		char err[WS_ERRLEN] = "", *big = malloc(WS_SCHEMA_MAX_SQL + 2);
		json_t *o, *objs;
		size_t k;

		if (!big) {
			CHECK(0);
			return;
		}
		memset(big, 'a', WS_SCHEMA_MAX_SQL + 1);
		big[WS_SCHEMA_MAX_SQL + 1] = 0;
		o = json_pack("{sis[{ssssssss}]}", "generation", 1, "objects",
		    "type", "view", "name", "v", "table", "v", "sql", big);
		CHECK(o != NULL);
		CHECK_INT(ws_json_to_schema(o, &sc, err), WS_EJSON);
		CHECK(is_empty(&sc));
		json_decref(o);
		big[WS_SCHEMA_MAX_SQL] = 0;
		o = json_pack("{sis[{ssssssss}]}", "generation", 1, "objects",
		    "type", "view", "name", "v", "table", "v", "sql", big);
		CHECK_INT(ws_json_to_schema(o, &sc, err), 0);
		CHECK_INT(sc.n, 1);
		json_decref(o);
		big[WS_SCHEMA_MAX_NAME + 1] = 0;
		o = json_pack("{sis[{ssssssss}]}", "generation", 1, "objects",
		    "type", "view", "name", big, "table", "v", "sql", "x");
		CHECK_INT(ws_json_to_schema(o, &sc, err), WS_EJSON);
		CHECK(is_empty(&sc));
		json_decref(o);
		o = json_pack("{sis[{ssssssss}]}", "generation", 1, "objects",
		    "type", "index", "name", "i", "table", big, "sql", "x");
		CHECK_INT(ws_json_to_schema(o, &sc, err), WS_EJSON);
		json_decref(o);
		free(big);
		o = json_pack("{sis[]}", "generation", 1, "objects");
		objs = json_object_get(o, "objects");
		for (k = 0; k <= WS_SCHEMA_MAX_OBJECTS; k++) {
			char name[16];

			snprintf(name, sizeof name, "t%05zu", k);
			json_array_append_new(objs, json_pack("{ssssssss}", "type",
			    "table", "name", name, "table", name, "sql", SQL_T));
		}
		CHECK_INT(ws_json_to_schema(o, &sc, err), WS_EJSON);
		CHECK(strstr(err, "4096") != NULL);
		json_array_remove(objs, 0);
		CHECK_INT(ws_json_to_schema(o, &sc, err), 0);
		CHECK_INT(sc.n, WS_SCHEMA_MAX_OBJECTS);
		json_decref(o);
		ws_schema_release(&sc);
	}
	ws_buf_release(&out);
#undef OBJ
#undef T_OK
#undef REC
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(objtype_names);
	RUN(record_order);
	RUN(replace);
	RUN(add_refusals);
	RUN(golden_small);
	RUN(decoder_refusals);
	RUN(decoder_orders);
	RUN(count_limit);
	RUN(random_roundtrips);
	RUN(truncations);
	RUN(bitflips);
	RUN(json_record);
	RUN(json_frames);
	RUN(json_refusals);
	TEST_MAIN_END();
}
