/* SPDX-License-Identifier: MIT */
/*
 * test_converge.c - randomised convergence of the store (store.c).
 *
 * A "world" is 3 to 5 replicas of one working set, each a real SQLite
 * file in a mkdtemp() directory, tracking
 *     t1(id INTEGER PRIMARY KEY, a, b NUMERIC, c TEXT COLLATE NOCASE)
 *     t2(k1 TEXT, k2 INTEGER, v COLLATE RTRIM, w REAL,
 *        PRIMARY KEY(k2, k1)) WITHOUT ROWID
 * over a small key space, so that concurrent writes hit the same cells
 * all the time.  In each round every replica writes through its own
 * connection (inserts, updates of 1-3 columns, deletes, re-inserts of
 * deleted keys, INSERT OR REPLACE, key changes, multi-row statements,
 * several statements in a transaction, rolled-back transactions, values
 * of every SQLite type, among them changes SQL calls equal: 1 to 1.0,
 * 'a' to 'A' under NOCASE, 0.0 to -0.0), seals, and collects its own
 * batches with ws_store_changes_since(), encoded.  Some replicas seal
 * late (a remote batch's apply then seals for them) or collect late
 * (after remote batches changed the cells they wrote).  The exchange
 * delivers a random subset of the batches a replica lacks, shuffled
 * across origins (so a batch often arrives before one it depends on and
 * must wait), with random duplicates and echoes to the origin.  Now and
 * then a random conflict is resolved somewhere.  At the end everything
 * reaches everyone, and every replica must hold:
 *   - no pending batches, and a clock equal to every other's, with each
 *     batch recorded exactly once;
 *   - byte-identical tracked tables and identical conflict lists;
 *   - PRAGMA integrity_check "ok";
 *   - no value nobody wrote, in a cell or a conflict (the model records
 *     what each local write stored, read back after the statement);
 *   - what a model of the merge rule (store.h) says.  Per cell, the
 *     writes that no later write of the cell or delete of the row has
 *     seen (causally) all stand: the winner (highest Lamport number, then
 *     site id) among those that no delete of the row is concurrent with
 *     is the value, the others are conflicts, lost_to_delete when a
 *     delete is concurrent with them.  A row exists while such a winner
 *     stands for it (so a row is gone while a delete nothing has seen
 *     stands).  A delete and re-insert of a row in one batch count as a
 *     delete followed by an insert.
 * A second test replays every delivery order of three batches (two from
 * one replica, one concurrent from another, random writes) to fresh
 * replicas, 60 times; a third does the same for scripted scenarios, the
 * shapes of write the random tests found mishandled.  These two check the
 * agreement of every replica (and the model, for the random writes).
 *
 * Site ids come from a deterministic libsodium randombytes
 * implementation seeded from the test seed, so a seed replays exactly.
 * Each seed prints a line of counts; a failing one prints how to replay
 * it alone: WS_TEST_SEED=<seed> build/tests/test_converge.
 * WS_CONVERGE_SEEDS and WS_CONVERGE_ROUNDS change the amount of work.
 */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "harness.h"
#include "rbytes.h"
#include "wsync/wsync.h"
#include "wsync/store.h"
#include "wsync/store-test.h"

#define NT 2         /* tracked tables */
#define NC 4         /* columns per table */
#define MAXK 20      /* keys per table at most */
#define MAXREP 26    /* replicas in a world at most */
#define MAXB 4096    /* batches in a world at most */
#define MAXFAILS 40  /* diagnostics printed per world at most */
#define LOUD_WORLDS 4 /* failing worlds per test that print details */

/* The tracked tables. */

struct tdef {
	const char *name;
	const char *create;
	const char *cols[NC];
	const char *coll[NC]; /* each column's collation */
	int npk;
	int pk[2];         /* column indexes in key order */
	unsigned data;     /* bitmask of the non-key columns */
	const char *order; /* ORDER BY for a canonical dump */
};

static const struct tdef tdefs[NT] = {
	{"t1", "CREATE TABLE t1(id INTEGER PRIMARY KEY, a, b NUMERIC,"
	    " c TEXT COLLATE NOCASE)", {"id", "a", "b", "c"},
	    {"BINARY", "BINARY", "BINARY", "NOCASE"}, 1, {0, 0}, 0xe, "id"},
	{"t2", "CREATE TABLE t2(k1 TEXT, k2 INTEGER, v COLLATE RTRIM, w REAL,"
	    " PRIMARY KEY(k2, k1)) WITHOUT ROWID", {"k1", "k2", "v", "w"},
	    {"BINARY", "BINARY", "RTRIM", "BINARY"}, 2, {1, 0}, 0xc, "k2, k1"},
};

/* Key spaces: the first nkeys[t] of each pool are used. */
static const int64_t k1pool[MAXK] = {
	1, INT64_MAX, 2, INT64_MIN, 3, 0, -1, 4, 5, 6,
	7, 8, 9, 10, 11, 12, 42, -7, 1000000007, 13,
};
static const struct {
	const char *s;
	int64_t i;
} k2pool[MAXK] = {
	{"a", 1}, {"b", 1}, {"a", 2}, {"\xc3\xa9", 1}, {"", 0},
	{"\xe6\x97\xa5\xe6\x9c\xac", -5}, {"a", INT64_MAX}, {"zz", 1},
	{"b", 2}, {"\xf0\x9f\x98\x80", 3}, {"it's", 4}, {"A", 1},
	{"a ", 1}, {"c", INT64_MIN}, {"d", 7}, {"e", 8}, {"f", 9},
	{"g", 10}, {"h", 11}, {"i", 12},
};

/* A value to write; TEXT and BLOB bytes are held inline. */
struct val {
	uint8_t type;
	int64_t i;
	double r;
	uint8_t p[48];
	size_t n;
};

/* What one transaction or batch did to one row, net. */
struct rowfx {
	int touched;
	int had_delete;    /* deleted at some point (maybe inserted again after) */
	int deleted;       /* the row is gone */
	int insert;        /* inserted: every data column set */
	unsigned mask;     /* data columns set */
	struct ws_buf v[NC]; /* encoded values of the columns set */
};

/*
 * One write of the model: a cell set (col >= 0) or a row deleted (-1).
 * Within a batch a row's delete (seq 0) comes before the cells set by a
 * later insert of the row (seq 1).
 */
struct event {
	int batch;         /* index into world.b */
	int seq;
	int t, k, col;
	uint8_t *v;        /* encoded value */
	size_t vn;
};

/* The model writes of one batch yet to be collected. */
struct group {
	struct event *ev;
	size_t n;
	size_t arr;        /* its entry in the replica's arrival log */
};

/* What reached a replica, in order: own batches and deliveries. */
struct arrival {
	int b;             /* batch index; -1 while an own batch is uncollected */
	char kind;         /* 'o' own, 'a' applied at once, 'p' parked or duplicate */
};

struct rep {
	struct ws_store *s;
	char path[128];
	uint64_t last_usn;
	uint64_t own;      /* own batches collected */
	struct rowfx acc[NT][MAXK]; /* unsealed writes */
	int dirty;
	struct group *fifo; /* sealed, not yet collected */
	size_t nfifo, fifo_head, fifo_cap;
	uint8_t got[MAXB];
	struct arrival *arr;
	size_t narr, arr_cap;
};

struct brec {
	int origin;
	uint64_t counter;
	struct ws_vclock ctx;
	uint64_t lamport;
	uint8_t *enc;
	size_t n;
};

struct stats {
	unsigned long stmts, txns, rollbacks, deliveries, applied, notapplied;
	unsigned long resolved, maxpending, sqlequal;
};

struct world {
	const char *label;
	uint64_t seed;
	char dir[64];
	int nrep;
	int nkeys[NT];
	struct rep rep[MAXREP];
	struct brec b[MAXB];
	size_t nb;
	struct event *ev;
	size_t nev, evcap;
	struct rowfx tx[NT][MAXK]; /* the open transaction's writes */
	int fails;
	int quiet;         /* print no details (enough failing worlds shown) */
	int nomodel;       /* scripted writes: no model bookkeeping */
	struct stats st;
	int dead;          /* a fatal error: stop the world */
};

/* Failing worlds so far in the current test, and whether to stay loud. */
static int failed_worlds;
static int one_seed;        /* WS_TEST_SEED given: run that seed only */

/* Failures. */

static void wfail(struct world *w, const char *fmt, ...) WS_PRINTF(2, 3);

static void wfail(struct world *w, const char *fmt, ...)
{
	va_list ap;

	t_cur_failed++;
	if (w->quiet) {
		w->fails++;
		return;
	}
	if (w->fails++ >= MAXFAILS) {
		if (w->fails == MAXFAILS + 1)
			fprintf(stderr, "%s seed %" PRIu64 ": more failures not shown\n",
			    w->label, w->seed);
		return;
	}
	fprintf(stderr, "%s seed %" PRIu64 ": ", w->label, w->seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print more lines of detail for the last failure (if it was printed). */
static void wmore(struct world *w, const char *fmt, ...) WS_PRINTF(2, 3);

static void wmore(struct world *w, const char *fmt, ...)
{
	va_list ap;

	if (w->fails > MAXFAILS || w->quiet)
		return;
	fputs("    ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void must(struct world *w, int rc, const char *what)
{
	if (rc) {
		wfail(w, "%s: %s", what, ws_strerror(rc));
		w->dead = 1;
	}
}

/* Buffers and values. */

static void buf_set(struct world *w, struct ws_buf *dst, const uint8_t *p, size_t n)
{
	dst->len = 0;
	must(w, ws_buf_append(dst, p ? p : (const uint8_t *)"", n), "buffer");
}

static void sqlv_wsv(sqlite3_value *s, struct ws_value *x)
{
	memset(x, 0, sizeof(*x));
	switch (sqlite3_value_type(s)) {
	case SQLITE_INTEGER:
		x->type = WS_INTEGER;
		x->i = sqlite3_value_int64(s);
		break;
	case SQLITE_FLOAT:
		x->type = WS_REAL;
		x->r = sqlite3_value_double(s);
		break;
	case SQLITE_TEXT:
		x->type = WS_TEXT;
		x->p = sqlite3_value_text(s);
		x->n = (size_t)sqlite3_value_bytes(s);
		break;
	case SQLITE_BLOB:
		x->type = WS_BLOB;
		x->p = sqlite3_value_blob(s);
		x->n = (size_t)sqlite3_value_bytes(s);
		break;
	default:
		x->type = WS_NULL;
		break;
	}
}

/*
 * Append the encoding of v, as the checks compare it.  SQL cannot tell
 * -0.0 from 0.0 (they compare equal, quote() and printf() print both as
 * 0.0), so the capture triggers cannot see a change between them, as
 * wsync(7) documents: zeros compare as SQL compares them; every other
 * value is compared bit for bit.
 */
static int enc_value(const struct ws_value *v, struct ws_buf *out)
{
	struct ws_value x = *v;

	if (x.type == WS_REAL && x.r == 0.0)
		x.r = 0.0;
	return ws_value_encode(&x, out);
}

static void col_enc(struct world *w, sqlite3_stmt *st, int col, struct ws_buf *out)
{
	struct ws_value x;

	sqlv_wsv(sqlite3_column_value(st, col), &x);
	out->len = 0;
	must(w, enc_value(&x, out), "encode value");
}

/* Append a readable form of an encoded value to out. */
static void fmt_enc(const uint8_t *p, size_t n, char *out, size_t cap)
{
	struct ws_value x;
	struct ws_rd r;
	size_t i, o;

	ws_rd_init(&r, p, n);
	if (ws_value_decode(&r, &x)) {
		snprintf(out, cap, "(undecodable)");
		return;
	}
	switch (x.type) {
	case WS_NULL:
		snprintf(out, cap, "NULL");
		break;
	case WS_INTEGER:
		snprintf(out, cap, "%" PRId64, x.i);
		break;
	case WS_REAL:
		snprintf(out, cap, "%.17g (real)", x.r);
		break;
	case WS_TEXT:
	case WS_BLOB:
		o = (size_t)snprintf(out, cap, x.type == WS_TEXT ? "'" : "x'");
		for (i = 0; i < x.n && o + 4 < cap; i++) {
			if (x.type == WS_TEXT && x.p[i] >= 0x20 && x.p[i] != '\'')
				out[o++] = (char)x.p[i];
			else
				o += (size_t)snprintf(out + o, cap - o, x.type == WS_TEXT ?
				    "\\x%02x" : "%02x", x.p[i]);
		}
		snprintf(out + o, cap - o, "'");
		break;
	default:
		snprintf(out, cap, "(type %u)", x.type);
	}
}

/* Random values of every type, with awkward ones often. */
static void gen_val(struct val *v)
{
	/* -0.0 equals 0.0 in SQL; NaN is stored as NULL */
	static const double reals[] = {0.5, -1.25, 1e300, -1e-300, 3.141592653589793,
	    2.0, 1.0, 5e-324, 0.1, DBL_MAX, -DBL_MAX, 1e-5, 0.0, -0.0, NAN};
	static const char *const texts[] = {"", "a", "h\xc3\xa9llo",
	    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xf0\x9f\x8e\x89", "it's", "x\ty",
	    "NULL", "1", "2.0", "a\"b", "\xce\xb1\xce\xb2\xce\xb3", "A", "a ", "IT'S",
	    " 2", "1e3", "0x10"};
	size_t i;

	memset(v, 0, sizeof(*v));
	switch (t_below(15)) {
	case 0:
		v->type = WS_NULL;
		break;
	case 1:
		v->type = WS_INTEGER;
		v->i = (int64_t)t_below(7) - 3;
		break;
	case 2: {
		static const int64_t ints[] = {INT64_MIN, INT64_MAX, -1, 0, 1, 2,
		    INT64_MIN + 1, INT64_MAX - 1, 1LL << 53, -(1LL << 31)};

		v->type = WS_INTEGER;
		v->i = ints[t_below(sizeof(ints) / sizeof(ints[0]))];
		break;
	}
	case 3:
		v->type = WS_INTEGER;
		v->i = (int64_t)t_rand();
		break;
	case 4:
		v->type = WS_REAL;
		v->r = reals[t_below(sizeof(reals) / sizeof(reals[0]))];
		break;
	case 5:
		v->type = WS_REAL;
		v->r = (double)(int64_t)t_rand() / (double)(1ull << t_below(60));
		if (v->r == 0)
			v->r = 0.25;
		break;
	case 6:
	case 7:
		v->type = WS_TEXT;
		i = t_below(sizeof(texts) / sizeof(texts[0]));
		v->n = strlen(texts[i]);
		memcpy(v->p, texts[i], v->n);
		break;
	case 8:
		v->type = WS_TEXT;
		v->n = 1 + t_below(12);
		for (i = 0; i < v->n; i++)
			v->p[i] = (uint8_t)(' ' + t_below(95));
		break;
	case 9:
	case 10:
		v->type = WS_BLOB;
		v->n = t_below(13);
		for (i = 0; i < v->n; i++)
			v->p[i] = t_below(3) ? (uint8_t)t_rand() : 0;
		break;
	case 11:
		v->type = WS_BLOB;
		v->n = t_below(3);
		break; /* x'', x'00', x'0000' */
	default:
		/* 1, 2, 1.0 or 2.0: equal in SQL, of different types */
		v->i = 1 + (int64_t)t_below(2);
		v->type = t_below(2) ? WS_INTEGER : WS_REAL;
		v->r = (double)v->i;
		break;
	}
}

static void bind_val(sqlite3_stmt *st, int at, const struct val *v)
{
	switch (v->type) {
	case WS_INTEGER: sqlite3_bind_int64(st, at, v->i); break;
	case WS_REAL: sqlite3_bind_double(st, at, v->r); break;
	case WS_TEXT: sqlite3_bind_text(st, at, (const char *)v->p, (int)v->n,
	    SQLITE_TRANSIENT); break;
	case WS_BLOB: sqlite3_bind_blob(st, at, v->p, (int)v->n, SQLITE_TRANSIENT); break;
	default: sqlite3_bind_null(st, at); break;
	}
}

/* Keys. */

static void bind_key(sqlite3_stmt *st, int t, int k, int at)
{
	if (t == 0) {
		sqlite3_bind_int64(st, at, k1pool[k]);
	} else {
		sqlite3_bind_int64(st, at, k2pool[k].i);
		sqlite3_bind_text(st, at + 1, k2pool[k].s, -1, SQLITE_STATIC);
	}
}

/* " WHERE key IS ?at ..." for table t. */
static const char *key_where(int t, int at, char *out, size_t cap)
{
	if (t == 0)
		snprintf(out, cap, " WHERE id IS ?%d", at);
	else
		snprintf(out, cap, " WHERE k2 IS ?%d AND k1 IS ?%d", at, at + 1);
	return out;
}

static void key_name(int t, int k, char *out, size_t cap)
{
	if (t == 0)
		snprintf(out, cap, "t1(id=%" PRId64 ")", k1pool[k]);
	else
		snprintf(out, cap, "t2(k2=%" PRId64 ", k1='%s')", k2pool[k].i, k2pool[k].s);
}

/* The key index of primary-key values (key order), or -1. */
static int find_key(const struct world *w, int t, const struct ws_value *pk, uint32_t npk)
{
	int k;

	if ((int)npk != tdefs[t].npk)
		return -1;
	for (k = 0; k < w->nkeys[t]; k++) {
		if (t == 0 && pk[0].type == WS_INTEGER && pk[0].i == k1pool[k])
			return k;
		if (t == 1 && pk[0].type == WS_INTEGER && pk[0].i == k2pool[k].i &&
		    pk[1].type == WS_TEXT && pk[1].n == strlen(k2pool[k].s) &&
		    memcmp(pk[1].p, k2pool[k].s, pk[1].n) == 0)
			return k;
	}
	return -1;
}

static int find_table(const char *name)
{
	int t;

	for (t = 0; t < NT; t++)
		if (strcmp(tdefs[t].name, name) == 0)
			return t;
	return -1;
}

static int find_col(int t, const char *name)
{
	int c;

	for (c = 0; c < NC; c++)
		if (strcmp(tdefs[t].cols[c], name) == 0)
			return c;
	return -1;
}

static int find_origin(const struct world *w, const struct ws_siteid *site)
{
	int r;

	for (r = 0; r < w->nrep; r++)
		if (ws_siteid_cmp(ws_store_site(w->rep[r].s), site) == 0)
			return r;
	return -1;
}

/* SQL helpers. */

static sqlite3_stmt *prepf(struct world *w, sqlite3 *db, const char *fmt, ...)
    WS_PRINTF(3, 4);

static sqlite3_stmt *prepf(struct world *w, sqlite3 *db, const char *fmt, ...)
{
	char sql[1024];
	sqlite3_stmt *st = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		wfail(w, "prepare \"%s\": %s", sql, sqlite3_errmsg(db));
		w->dead = 1;
		return NULL;
	}
	return st;
}

static void step_done(struct world *w, sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		wfail(w, "\"%s\": %s", sqlite3_sql(st), sqlite3_errmsg(db));
		w->dead = 1;
	}
	sqlite3_finalize(st);
}

static void execw(struct world *w, sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		wfail(w, "\"%s\": %s", sql, sqlite3_errmsg(db));
		w->dead = 1;
	}
}

/*
 * Read row k of table t: 1 if it exists, with the encoded data columns in
 * v[] (when v is not NULL).
 */
static int read_row(struct world *w, sqlite3 *db, int t, int k, struct ws_buf *v)
{
	char wh[64];
	sqlite3_stmt *st = prepf(w, db, "SELECT * FROM %s%s", tdefs[t].name,
	    key_where(t, 1, wh, sizeof(wh)));
	int c, ex;

	if (!st)
		return 0;
	bind_key(st, t, k, 1);
	ex = sqlite3_step(st) == SQLITE_ROW;
	for (c = 0; ex && v && c < NC; c++)
		if ((tdefs[t].data >> c) & 1)
			col_enc(w, st, c, &v[c]);
	sqlite3_finalize(st);
	return ex;
}

static void bind_enc(sqlite3_stmt *st, int at, const struct ws_buf *e)
{
	struct ws_value x;
	struct ws_rd r;

	ws_rd_init(&r, e->p, e->len);
	if (ws_value_decode(&r, &x) != 0)
		x.type = WS_NULL;
	switch (x.type) {
	case WS_INTEGER: sqlite3_bind_int64(st, at, x.i); break;
	case WS_REAL: sqlite3_bind_double(st, at, x.r); break;
	case WS_TEXT: sqlite3_bind_text(st, at, (const char *)x.p, (int)x.n,
	    SQLITE_TRANSIENT); break;
	case WS_BLOB: sqlite3_bind_blob(st, at, x.p, (int)x.n, SQLITE_TRANSIENT); break;
	default: sqlite3_bind_null(st, at); break;
	}
}

/*
 * A column's stored value changed from o to n (different types or
 * bytes): count the changes that SQL, in the column's collation, calls
 * no change (1 to 1.0, 'a' to 'A' under NOCASE, 'a' to 'a ' under
 * RTRIM): a capture by "OLD.x IS NOT NEW.x" would miss them.
 */
static void count_sql_equal(struct world *w, sqlite3 *db, int t, int c,
    const struct ws_buf *o, const struct ws_buf *n)
{
	sqlite3_stmt *st = prepf(w, db, "SELECT ?1 IS ?2 COLLATE %s", tdefs[t].coll[c]);

	if (!st)
		return;
	bind_enc(st, 1, o);
	bind_enc(st, 2, n);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0))
		w->st.sqlequal++;
	sqlite3_finalize(st);
}

static int enc_eq(const struct ws_buf *a, const struct ws_buf *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* The model's bookkeeping of row effects. */

static void fx_release(struct rowfx *f)
{
	int c;

	for (c = 0; c < NC; c++)
		ws_buf_release(&f->v[c]);
	memset(f, 0, sizeof(*f));
}

static void fx_delete(struct rowfx *f)
{
	f->touched = 1;
	f->had_delete = 1;
	f->deleted = 1;
	f->insert = 0;
	f->mask = 0;
}

static void fx_insert(struct world *w, struct rowfx *f, int t, const struct ws_buf *v)
{
	int c;

	f->touched = 1;
	f->deleted = 0;
	f->insert = 1;
	f->mask = tdefs[t].data;
	for (c = 0; c < NC; c++)
		if ((tdefs[t].data >> c) & 1)
			buf_set(w, &f->v[c], v[c].p, v[c].len);
}

static void fx_set(struct world *w, struct rowfx *f, int c, const struct ws_buf *v)
{
	f->touched = 1;
	f->mask |= 1u << c;
	buf_set(w, &f->v[c], v->p, v->len);
}

/* Compose effect src after dst, into dst. */
static void fx_merge(struct world *w, struct rowfx *dst, int t, const struct rowfx *src)
{
	int c;

	if (!src->touched)
		return;
	if (src->had_delete)
		fx_delete(dst);
	if (src->deleted) {
		fx_delete(dst);
	} else if (src->insert) {
		fx_insert(w, dst, t, src->v);
	} else {
		for (c = 0; c < NC; c++)
			if ((src->mask >> c) & 1)
				fx_set(w, dst, c, &src->v[c]);
	}
}

static void push_event(struct world *w, struct group *g, int t, int k, int col,
    int seq, const struct ws_buf *v)
{
	struct event *e;

	if (g->n % 16 == 0) {
		struct event *p = realloc(g->ev, (g->n + 16) * sizeof(*p));

		if (!p) {
			must(w, WS_ENOMEM, "events");
			return;
		}
		g->ev = p;
	}
	e = &g->ev[g->n++];
	memset(e, 0, sizeof(*e));
	e->batch = -1;
	e->seq = seq;
	e->t = t;
	e->k = k;
	e->col = col;
	if (v) {
		e->v = malloc(v->len ? v->len : 1);
		if (e->v)
			memcpy(e->v, v->p, v->len);
		e->vn = v->len;
	}
}

static void group_release(struct group *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->ev[i].v);
	free(g->ev);
	memset(g, 0, sizeof(*g));
}

static void arrive(struct world *w, int r, int b, char kind)
{
	struct rep *p = &w->rep[r];

	if (p->narr == p->arr_cap) {
		size_t cap = p->arr_cap ? 2 * p->arr_cap : 64;
		struct arrival *a = realloc(p->arr, cap * sizeof(*a));

		if (!a) {
			must(w, WS_ENOMEM, "arrivals");
			return;
		}
		p->arr = a;
		p->arr_cap = cap;
	}
	p->arr[p->narr].b = b;
	p->arr[p->narr].kind = kind;
	p->narr++;
}

/* Turn the replica's unsealed writes into a group: they were just sealed. */
static void close_group(struct world *w, int r)
{
	struct rep *p = &w->rep[r];
	struct group g = {0};
	int t, k, c;

	for (t = 0; t < NT; t++)
		for (k = 0; k < w->nkeys[t]; k++) {
			struct rowfx *f = &p->acc[t][k];

			if (!f->touched)
				continue;
			if (f->had_delete)
				push_event(w, &g, t, k, -1, 0, NULL);
			for (c = 0; !f->deleted && c < NC; c++)
				if ((f->mask >> c) & 1)
					push_event(w, &g, t, k, c, 1, &f->v[c]);
			fx_release(f);
		}
	p->dirty = 0;
	if (p->nfifo == p->fifo_cap) {
		size_t cap = p->fifo_cap ? 2 * p->fifo_cap : 16;
		struct group *q = realloc(p->fifo, cap * sizeof(*q));

		if (!q) {
			group_release(&g);
			must(w, WS_ENOMEM, "groups");
			return;
		}
		p->fifo = q;
		p->fifo_cap = cap;
	}
	g.arr = p->narr;
	arrive(w, r, -1, 'o');
	p->fifo[p->nfifo++] = g;
}

/* Drop the replica's unsealed writes, saying why. */
static void drop_acc(struct world *w, int r, const char *why)
{
	struct rep *p = &w->rep[r];
	char kn[96], vs[160];
	int t, k, c;

	wfail(w, "replica %c: %s; the writes were:", 'A' + r, why);
	for (t = 0; t < NT; t++)
		for (k = 0; k < w->nkeys[t]; k++) {
			struct rowfx *f = &p->acc[t][k];

			if (!f->touched)
				continue;
			key_name(t, k, kn, sizeof(kn));
			if (f->had_delete)
				wmore(w, "%s deleted", kn);
			for (c = 0; !f->deleted && c < NC; c++)
				if ((f->mask >> c) & 1) {
					fmt_enc(f->v[c].p, f->v[c].len, vs, sizeof(vs));
					wmore(w, "%s.%s = %s", kn, tdefs[t].cols[c], vs);
				}
			fx_release(f);
		}
	p->dirty = 0;
}

/* Local writes. */

/* Record the open transaction's writes into the replica's unsealed ones. */
static void tx_end(struct world *w, int r, int commit)
{
	struct rep *p = &w->rep[r];
	int t, k;

	for (t = 0; t < NT; t++)
		for (k = 0; k < w->nkeys[t]; k++) {
			if (commit && w->tx[t][k].touched) {
				fx_merge(w, &p->acc[t][k], t, &w->tx[t][k]);
				p->dirty = 1;
			}
			fx_release(&w->tx[t][k]);
		}
}

/*
 * Record an update of columns `cols` of row k: those whose stored value
 * (type and bytes) differs between before[] and after[].
 */
static void note_update(struct world *w, sqlite3 *db, int t, int k, unsigned cols,
    const struct ws_buf *before, const struct ws_buf *after)
{
	int c;

	for (c = 0; c < NC; c++)
		if ((cols >> c) & 1 && !enc_eq(&before[c], &after[c])) {
			count_sql_equal(w, db, t, c, &before[c], &after[c]);
			fx_set(w, &w->tx[t][k], c, &after[c]);
		}
}

static void bufs_release(struct ws_buf *v)
{
	int c;

	for (c = 0; c < NC; c++)
		ws_buf_release(&v[c]);
}

/* Update 1-3 data columns of row k (which may not exist). */
static void op_update(struct world *w, sqlite3 *db, int t, int k)
{
	struct ws_buf before[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	struct ws_buf after[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	struct val v[NC];
	unsigned cols = 0;
	char set[256], wh[64];
	size_t o = 0;
	int c, n = 0, ex;
	sqlite3_stmt *st;

	while (!cols)
		cols = (unsigned)t_rand() & tdefs[t].data;
	for (c = 0; c < NC; c++)
		if ((cols >> c) & 1) {
			gen_val(&v[c]);
			o += (size_t)snprintf(set + o, sizeof(set) - o, "%s\"%s\" = ?%d",
			    n ? ", " : "", tdefs[t].cols[c], n + 1);
			n++;
		}
	ex = read_row(w, db, t, k, before);
	if ((st = prepf(w, db, "UPDATE %s SET %s%s", tdefs[t].name, set,
	    key_where(t, n + 1, wh, sizeof(wh))))) {
		for (c = 0, n = 0; c < NC; c++)
			if ((cols >> c) & 1)
				bind_val(st, ++n, &v[c]);
		bind_key(st, t, k, n + 1);
		step_done(w, db, st);
		if (ex && read_row(w, db, t, k, after))
			note_update(w, db, t, k, cols, before, after);
	}
	bufs_release(before);
	bufs_release(after);
}

/* Insert row k with a random subset of the data columns (the rest NULL). */
static void op_insert(struct world *w, sqlite3 *db, int t, int k, int replace)
{
	struct ws_buf enc[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	struct val v[NC];
	unsigned cols = (unsigned)t_rand() & tdefs[t].data;
	char names[256], qs[64];
	size_t o = 0, oq = 0;
	int c, i, n = 0;
	sqlite3_stmt *st;

	if (replace)
		cols = tdefs[t].data;
	for (i = 0; i < tdefs[t].npk; i++) {
		o += (size_t)snprintf(names + o, sizeof(names) - o, "%s\"%s\"", n ? ", " : "",
		    tdefs[t].cols[tdefs[t].pk[i]]);
		oq += (size_t)snprintf(qs + oq, sizeof(qs) - oq, "%s?", n ? ", " : "");
		n++;
	}
	for (c = 0; c < NC; c++)
		if ((cols >> c) & 1) {
			gen_val(&v[c]);
			o += (size_t)snprintf(names + o, sizeof(names) - o, ", \"%s\"",
			    tdefs[t].cols[c]);
			oq += (size_t)snprintf(qs + oq, sizeof(qs) - oq, ", ?");
		}
	if (!(st = prepf(w, db, "INSERT %sINTO %s(%s) VALUES(%s)", replace ?
	    "OR REPLACE " : "", tdefs[t].name, names, qs)))
		return;
	bind_key(st, t, k, 1);
	n = tdefs[t].npk;
	for (c = 0; c < NC; c++)
		if ((cols >> c) & 1)
			bind_val(st, ++n, &v[c]);
	step_done(w, db, st);
	/* What the row holds now (after type affinity), in every column. */
	if (read_row(w, db, t, k, enc))
		fx_insert(w, &w->tx[t][k], t, enc);
	bufs_release(enc);
}

static void op_delete(struct world *w, sqlite3 *db, int t, int k, int exists)
{
	char wh[64];
	sqlite3_stmt *st = prepf(w, db, "DELETE FROM %s%s", tdefs[t].name,
	    key_where(t, 1, wh, sizeof(wh)));

	if (!st)
		return;
	bind_key(st, t, k, 1);
	step_done(w, db, st);
	if (exists)
		fx_delete(&w->tx[t][k]);
}

/* Change row k's key to k2 (absent): a delete and an insert. */
static void op_move(struct world *w, sqlite3 *db, int t, int k, int k2)
{
	struct ws_buf v[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	char wh[64];
	sqlite3_stmt *st;

	st = t == 0 ? prepf(w, db, "UPDATE t1 SET id = ?1%s", key_where(t, 2, wh, sizeof(wh))) :
	    prepf(w, db, "UPDATE t2 SET k2 = ?1, k1 = ?2%s", key_where(t, 3, wh, sizeof(wh)));
	if (st) {
		bind_key(st, t, k2, 1);
		bind_key(st, t, k, t == 0 ? 2 : 3);
		step_done(w, db, st);
		fx_delete(&w->tx[t][k]);
		if (read_row(w, db, t, k2, v))
			fx_insert(w, &w->tx[t][k2], t, v);
	}
	bufs_release(v);
}

/* One statement on several rows of t1: an update of one column, or a delete. */
static void op_multi(struct world *w, sqlite3 *db, int del)
{
	struct ws_buf before[4][NC], after[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT,
	    WS_BUF_INIT};
	int keys[4], n = 2 + (int)t_below(3), i, j, c = 1 + (int)t_below(3);
	int ex[4];
	char in[64];
	size_t o = 0;
	struct val v;
	sqlite3_stmt *st;

	if (n > w->nkeys[0])
		n = w->nkeys[0];
	for (i = 0; i < n; i++) {
		do {
			keys[i] = (int)t_below((uint64_t)w->nkeys[0]);
			for (j = 0; j < i && keys[j] != keys[i]; j++)
				;
		} while (j < i);
		o += (size_t)snprintf(in + o, sizeof(in) - o, "%s?%d", i ? ", " : "",
		    i + 2);
	}
	gen_val(&v);
	memset(before, 0, sizeof(before));
	for (i = 0; i < n; i++)
		ex[i] = read_row(w, db, 0, keys[i], before[i]);
	st = del ? prepf(w, db, "DELETE FROM t1 WHERE id IN (%s)", in) :
	    prepf(w, db, "UPDATE t1 SET \"%s\" = ?1 WHERE id IN (%s)", tdefs[0].cols[c], in);
	if (st) {
		if (del)
			sqlite3_bind_null(st, 1); /* ?1 unused */
		else
			bind_val(st, 1, &v);
		for (i = 0; i < n; i++)
			bind_key(st, 0, keys[i], i + 2);
		step_done(w, db, st);
	}
	for (i = 0; st && i < n; i++) {
		if (del && ex[i])
			fx_delete(&w->tx[0][keys[i]]);
		else if (ex[i] && read_row(w, db, 0, keys[i], after))
			note_update(w, db, 0, keys[i], 1u << c, before[i], after);
	}
	for (i = 0; i < n; i++)
		bufs_release(before[i]);
	bufs_release(after);
}

static void local_op(struct world *w, sqlite3 *db)
{
	int t = t_below(10) < 6 ? 0 : 1;
	int k = (int)t_below((uint64_t)w->nkeys[t]);
	int ex = read_row(w, db, t, k, NULL), roll = (int)t_below(100), k2;

	w->st.stmts++;
	if (ex) {
		if (roll < 45) {
			op_update(w, db, t, k);
		} else if (roll < 63) {
			op_delete(w, db, t, k, 1);
		} else if (roll < 73) {
			op_insert(w, db, t, k, 1);
		} else if (roll < 80) {
			k2 = (int)t_below((uint64_t)w->nkeys[t]);
			if (read_row(w, db, t, k2, NULL))
				op_update(w, db, t, k);
			else
				op_move(w, db, t, k, k2);
		} else if (roll < 88 && t == 0) {
			op_multi(w, db, 0);
		} else if (roll < 92 && t == 0) {
			op_multi(w, db, 1);
		} else {
			op_update(w, db, t, k);
		}
	} else {
		if (roll < 75)
			op_insert(w, db, t, k, 0);
		else if (roll < 88)
			op_insert(w, db, t, k, 1);
		else if (roll < 94)
			op_delete(w, db, t, k, 0); /* no row: nothing happens */
		else
			op_update(w, db, t, k);    /* no row: nothing happens */
	}
}

/* One local transaction of 1-4 statements, now and then rolled back. */
static void local_txn(struct world *w, int r)
{
	sqlite3 *db = ws_store_db(w->rep[r].s);
	int n = 1 + (int)t_below(4), i, explicit_tx = n > 1 || t_below(3) == 0;
	int rollback = explicit_tx && t_below(12) == 0;

	w->st.txns++;
	if (explicit_tx)
		execw(w, db, "BEGIN");
	for (i = 0; i < n && !w->dead; i++)
		local_op(w, db);
	if (explicit_tx)
		execw(w, db, rollback ? "ROLLBACK" : "COMMIT");
	if (rollback)
		w->st.rollbacks++;
	tx_end(w, r, !rollback);
}

/* Sealing, collecting and delivering batches. */

static uint64_t own_counter(struct world *w, int r)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	char err[WS_ERRLEN] = "";
	uint64_t n = 0;
	int rc = ws_store_clock(w->rep[r].s, &vc, err);

	if (rc)
		wfail(w, "replica %c: clock: %s", 'A' + r, err);
	else
		n = ws_vclock_get(&vc, ws_store_site(w->rep[r].s));
	ws_vclock_release(&vc);
	return n;
}

static void seal_rep(struct world *w, int r)
{
	char err[WS_ERRLEN] = "";
	int sealed = 0, rc = ws_store_seal(w->rep[r].s, &sealed, err);

	if (rc) {
		wfail(w, "replica %c: seal: %s", 'A' + r, err);
		w->dead = 1;
		return;
	}
	if (w->rep[r].dirty && !sealed)
		drop_acc(w, r, "writes the store did not capture (seal made no batch)");
	else if (w->rep[r].dirty)
		close_group(w, r);
	/* sealed with nothing the model knows of: collect() reports it. */
}

struct collect_cx {
	struct world *w;
	int r;
};

static int collect_cb(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct collect_cx *cx = cd;
	struct world *w = cx->w;
	struct rep *p = &w->rep[cx->r];
	struct ws_buf enc = WS_BUF_INIT;
	struct brec *br;
	struct group g;
	size_t i;
	int rc;

	if (usn > p->last_usn)
		p->last_usn = usn;
	if (!b->has_dot || ws_siteid_cmp(&b->dot_site, ws_store_site(p->s)) != 0)
		return 0; /* applied here from elsewhere: its origin sends it */
	if (w->nb == MAXB) {
		wfail(w, "more than %d batches", MAXB);
		return WS_ERANGE;
	}
	if ((rc = ws_batch_encode(b, &enc))) {
		wfail(w, "replica %c: encode own batch: %s", 'A' + cx->r, ws_strerror(rc));
		return rc;
	}
	br = &w->b[w->nb];
	memset(br, 0, sizeof(*br));
	br->origin = cx->r;
	br->counter = b->dot_counter;
	br->enc = enc.p;
	br->n = enc.len;
	ws_vclock_init(&br->ctx);
	if (!b->has_clock || (rc = ws_vclock_copy(&br->ctx, &b->clock))) {
		wfail(w, "replica %c: own batch without a clock", 'A' + cx->r);
		ws_vclock_release(&br->ctx);
		free(enc.p);
		return WS_ECORRUPT;
	}
	for (i = 0; i < br->ctx.n; i++)
		br->lamport += br->ctx.e[i].counter;
	if (b->dot_counter != p->own + 1)
		wfail(w, "replica %c: own batch counter %" PRIu64 ", expected %" PRIu64,
		    'A' + cx->r, b->dot_counter, p->own + 1);
	p->own = b->dot_counter;
	p->got[w->nb] = 1;
	if (w->nomodel) {
		arrive(w, cx->r, (int)w->nb, 'o');
	} else if (p->fifo_head == p->nfifo) {
		wfail(w, "replica %c: own batch %c:%" PRIu64 " (%zu changes) holds writes "
		    "the test did not make", 'A' + cx->r, 'A' + cx->r, b->dot_counter,
		    b->nchanges);
		arrive(w, cx->r, (int)w->nb, 'o');
	} else {
		g = p->fifo[p->fifo_head++];
		p->arr[g.arr].b = (int)w->nb;
		for (i = 0; i < g.n; i++) {
			if (w->nev == w->evcap) {
				size_t cap = w->evcap ? 2 * w->evcap : 256;
				struct event *e = realloc(w->ev, cap * sizeof(*e));

				if (!e)
					break;
				w->ev = e;
				w->evcap = cap;
			}
			g.ev[i].batch = (int)w->nb;
			w->ev[w->nev++] = g.ev[i];
			g.ev[i].v = NULL;
		}
		group_release(&g);
	}
	w->nb++;
	return 0;
}

/* Seal and collect the replica's own new batches. */
static void collect(struct world *w, int r)
{
	struct collect_cx cx = {w, r};
	struct rep *p = &w->rep[r];
	char err[WS_ERRLEN] = "";
	int rc;

	seal_rep(w, r);
	if (w->dead)
		return;
	if ((rc = ws_store_changes_since(p->s, p->last_usn, collect_cb, &cx, err))) {
		wfail(w, "replica %c: changes since %" PRIu64 ": %s (%s)", 'A' + r,
		    p->last_usn, ws_strerror(rc), err);
		w->dead = 1;
	}
	while (p->fifo_head < p->nfifo) {
		wfail(w, "replica %c: sealed writes without a batch", 'A' + r);
		group_release(&p->fifo[p->fifo_head++]);
	}
	p->nfifo = p->fifo_head = 0;
}

static void deliver(struct world *w, int r, size_t bi)
{
	struct rep *p = &w->rep[r];
	struct ws_batch b;
	char err[WS_ERRLEN] = "";
	int applied = 0, rc, dirty = p->dirty;
	uint64_t before = 0, after;
	size_t pend = 0;

	if (dirty)
		before = own_counter(w, r);
	ws_batch_init(&b);
	if ((rc = ws_batch_decode(&b, w->b[bi].enc, w->b[bi].n, err))) {
		wfail(w, "decode batch %c:%" PRIu64 ": %s", 'A' + w->b[bi].origin,
		    w->b[bi].counter, err);
		w->dead = 1;
	} else if ((rc = ws_store_apply(p->s, &b, &applied, err))) {
		wfail(w, "replica %c: apply %c:%" PRIu64 ": %s (%s)", 'A' + r,
		    'A' + w->b[bi].origin, w->b[bi].counter, ws_strerror(rc), err);
		w->dead = 1;
	}
	ws_batch_release(&b);
	if (w->dead)
		return;
	/* The apply sealed the replica's unsealed writes first. */
	if (dirty) {
		after = own_counter(w, r);
		if (after == before + 1)
			close_group(w, r);
		else
			drop_acc(w, r, "writes the store did not capture (apply sealed "
			    "no batch)");
	}
	w->st.deliveries++;
	if (applied)
		w->st.applied++;
	else
		w->st.notapplied++;
	arrive(w, r, (int)bi, applied ? 'a' : 'p');
	p->got[bi] = 1;
	if ((rc = ws_store_pending(p->s, &pend, err)))
		wfail(w, "replica %c: pending: %s", 'A' + r, err);
	if (pend > w->st.maxpending)
		w->st.maxpending = pend;
}

struct pair {
	int r;
	int b;
};

/*
 * Deliver the batches replicas lack: each with probability pct (all when
 * 100), shuffled across origins and destinations, with duplicates.
 */
static void exchange(struct world *w, int pct)
{
	struct pair *l;
	size_t n = 0, cap = (size_t)w->nrep * (w->nb + 1) * 2 + 64, i, j, ndup;
	int r;

	if (!(l = malloc(cap * sizeof(*l)))) {
		must(w, WS_ENOMEM, "exchange");
		return;
	}
	for (r = 0; r < w->nrep; r++)
		for (i = 0; i < w->nb; i++)
			if (w->b[i].origin != r && !w->rep[r].got[i] &&
			    (pct >= 100 || (int)t_below(100) < pct))
				l[n++] = (struct pair){r, (int)i};
	/* Duplicates: again within this exchange, or of an older delivery. */
	ndup = t_below(n / 3 + 3);
	for (j = 0; j < ndup && n < cap && w->nb; j++) {
		if (n && t_below(2)) {
			l[n] = l[t_below(n)];
			n++;
			continue;
		}
		r = (int)t_below((uint64_t)w->nrep);
		i = t_below(w->nb);
		if (w->rep[r].got[i] && (w->b[i].origin != r || t_below(4) == 0))
			l[n++] = (struct pair){r, (int)i};
	}
	for (i = n; i > 1; i--) {
		struct pair tmp;

		j = t_below(i);
		tmp = l[i - 1];
		l[i - 1] = l[j];
		l[j] = tmp;
	}
	for (i = 0; i < n && !w->dead; i++)
		deliver(w, l[i].r, (size_t)l[i].b);
	free(l);
}

/* Resolve a random conflict at replica r, as a local change. */
struct conf_pick {
	struct world *w;
	uint64_t n, pick;
	int64_t id;
	int t, k, col;
};

static int pick_cb(const struct ws_conflict *c, void *cd)
{
	struct conf_pick *cp = cd;

	if (cp->n++ == cp->pick) {
		cp->id = c->id;
		cp->t = find_table(c->table);
		cp->k = cp->t < 0 ? -1 : find_key(cp->w, cp->t, c->pk, c->npk);
		cp->col = cp->t < 0 ? -1 : find_col(cp->t, c->column);
	}
	return 0;
}

static void resolve_random(struct world *w, int r)
{
	struct ws_buf v[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	struct conf_pick cp = {w, 0, UINT64_MAX, -1, -1, -1, -1};
	struct rep *p = &w->rep[r];
	sqlite3 *db = ws_store_db(p->s);
	char err[WS_ERRLEN] = "";
	int rc, keep = (int)t_below(2), before, after, c;

	collect(w, r);
	if (w->dead)
		return;
	if ((rc = ws_store_conflicts(p->s, pick_cb, &cp, err)))
		goto count;
	if (cp.n == 0)
		return;
	cp.pick = t_below(cp.n);
	cp.n = 0;
	if ((rc = ws_store_conflicts(p->s, pick_cb, &cp, err)))
		goto count;
	if (cp.t < 0 || cp.k < 0 || cp.col < 0) {
		wfail(w, "replica %c: a conflict outside the tables and keys written", 'A' + r);
		return;
	}
	before = read_row(w, db, cp.t, cp.k, NULL);
	if ((rc = ws_store_resolve(p->s, cp.id, keep, err)))
		goto count;
	after = read_row(w, db, cp.t, cp.k, v);
	w->st.resolved++;
	/* What the resolution wrote, for the model. */
	if (after && !before)
		fx_insert(w, &p->acc[cp.t][cp.k], cp.t, v);
	else if (after)
		fx_set(w, &p->acc[cp.t][cp.k], cp.col, &v[cp.col]);
	else
		fx_delete(&p->acc[cp.t][cp.k]);
	p->dirty = 1;
	close_group(w, r); /* ws_store_resolve() sealed it */
	collect(w, r);
	for (c = 0; c < NC; c++)
		ws_buf_release(&v[c]);
	return;
count:
	wfail(w, "replica %c: conflicts/resolve: %s (%s)", 'A' + r, ws_strerror(rc), err);
	w->dead = 1;
}

/* Worlds. */

static void rm_dir(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d) {
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
				snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
				unlink(path);
			}
		closedir(d);
	}
	rmdir(dir);
}

static struct world *world_new(const char *label, uint64_t seed, int nrep,
    int nk1, int nk2)
{
	static const char *const names[NT] = {"t1", "t2"};
	struct world *w = calloc(1, sizeof(*w));
	char err[WS_ERRLEN] = "";
	int r, t, rc;

	if (!w)
		return NULL;
	w->label = label;
	w->seed = seed;
	w->quiet = !one_seed && failed_worlds >= LOUD_WORLDS;
	w->nrep = nrep;
	w->nkeys[0] = nk1;
	w->nkeys[1] = nk2;
	rb_state = seed ^ 0x5173c0de5173c0deull;
	snprintf(w->dir, sizeof(w->dir), "/tmp/wsync-converge.XXXXXX");
	if (!mkdtemp(w->dir)) {
		wfail(w, "mkdtemp: %s", strerror(errno));
		w->dir[0] = 0;
		w->dead = 1;
		return w;
	}
	for (r = 0; r < nrep && !w->dead; r++) {
		struct rep *p = &w->rep[r];
		sqlite3 *db;

		snprintf(p->path, sizeof(p->path), "%s/r%d.db", w->dir, r);
		if ((rc = ws_store_open(&p->s, p->path, "conv", WS_STORE_CREATE, err))) {
			wfail(w, "open %s: %s", p->path, err);
			w->dead = 1;
			break;
		}
		db = ws_store_db(p->s);
		execw(w, db, "PRAGMA synchronous = OFF");
		if (t_below(2))
			execw(w, db, "PRAGMA journal_mode = WAL");
		for (t = 0; t < NT; t++)
			execw(w, db, tdefs[t].create);
		if (!w->dead && (rc = ws_store_track(p->s, names, NT, err))) {
			wfail(w, "track: %s", err);
			w->dead = 1;
		}
	}
	return w;
}

static void world_free(struct world *w)
{
	size_t i;
	int r, t, k;

	if (!w)
		return;
	if (w->fails)
		failed_worlds++;
	for (r = 0; r < w->nrep; r++) {
		struct rep *p = &w->rep[r];

		ws_store_close(p->s);
		for (t = 0; t < NT; t++)
			for (k = 0; k < MAXK; k++)
				fx_release(&p->acc[t][k]);
		for (i = p->fifo_head; i < p->nfifo; i++)
			group_release(&p->fifo[i]);
		free(p->fifo);
		free(p->arr);
	}
	for (t = 0; t < NT; t++)
		for (k = 0; k < MAXK; k++)
			fx_release(&w->tx[t][k]);
	for (i = 0; i < w->nb; i++) {
		ws_vclock_release(&w->b[i].ctx);
		free(w->b[i].enc);
	}
	for (i = 0; i < w->nev; i++)
		free(w->ev[i].v);
	free(w->ev);
	if (w->dir[0])
		rm_dir(w->dir);
	free(w);
}

/* Checks. */

/* A canonical dump of table t: every row, every column, type and exact bytes. */
static void dump_table(struct world *w, sqlite3 *db, int t, struct ws_buf *out)
{
	sqlite3_stmt *st = prepf(w, db, "SELECT * FROM %s ORDER BY %s", tdefs[t].name,
	    tdefs[t].order);
	struct ws_buf e = WS_BUF_INIT;
	size_t i;
	int c, rc = 0;

	out->len = 0;
	if (!st)
		return;
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		for (c = 0; rc == 0 && c < sqlite3_column_count(st); c++) {
			col_enc(w, st, c, &e);
			for (i = 0; rc == 0 && i < e.len; i++)
				rc = ws_buf_printf(out, "%02x", e.p[i]);
			if (rc == 0)
				rc = ws_buf_putc(out, '|');
		}
		if (rc == 0)
			rc = ws_buf_putc(out, '\n');
	}
	must(w, rc, "dump");
	sqlite3_finalize(st);
	ws_buf_release(&e);
}

/* A conflict as seen by a replica. */
struct aconf {
	int t, k, col, lostdel, origin;
	uint64_t counter;
	struct ws_buf v;
};

struct conf_list {
	struct world *w;
	struct ws_buf dump;
	struct aconf *c;
	size_t n, cap;
	int bad;
};

static int list_cb(const struct ws_conflict *c, void *cd)
{
	struct conf_list *cl = cd;
	struct ws_buf pk = WS_BUF_INIT, v = WS_BUF_INIT;
	char hex[WS_SITEID_HEXLEN + 1];
	struct aconf *a;
	uint32_t i;
	size_t j;
	int rc = 0;

	for (i = 0; rc == 0 && i < c->npk; i++)
		rc = ws_value_encode(&c->pk[i], &pk);
	if (rc == 0)
		rc = enc_value(&c->value, &v);
	ws_siteid_hex(&c->site, hex);
	if (rc == 0)
		rc = ws_buf_printf(&cl->dump, "%s|", c->table);
	for (j = 0; rc == 0 && j < pk.len; j++)
		rc = ws_buf_printf(&cl->dump, "%02x", pk.p[j]);
	if (rc == 0)
		rc = ws_buf_printf(&cl->dump, "|%s|%d|", c->column, c->lost_to_delete);
	for (j = 0; rc == 0 && j < v.len; j++)
		rc = ws_buf_printf(&cl->dump, "%02x", v.p[j]);
	if (rc == 0)
		rc = ws_buf_printf(&cl->dump, "|%s:%" PRIu64 "\n", hex, c->counter);
	if (rc == 0 && cl->n == cl->cap) {
		size_t cap = cl->cap ? 2 * cl->cap : 32;
		struct aconf *p = realloc(cl->c, cap * sizeof(*p));

		if (p) {
			cl->c = p;
			cl->cap = cap;
		} else {
			rc = WS_ENOMEM;
		}
	}
	if (rc == 0) {
		a = &cl->c[cl->n++];
		memset(a, 0, sizeof(*a));
		a->t = find_table(c->table);
		a->k = a->t < 0 ? -1 : find_key(cl->w, a->t, c->pk, c->npk);
		a->col = a->t < 0 ? -1 : find_col(a->t, c->column);
		a->lostdel = c->lost_to_delete;
		a->origin = find_origin(cl->w, &c->site);
		a->counter = c->counter;
		a->v = v;
		v.p = NULL;
		if (a->t < 0 || a->k < 0 || a->col < 0 || a->origin < 0)
			cl->bad++;
	}
	ws_buf_release(&pk);
	ws_buf_release(&v);
	return rc;
}

static void conf_list_release(struct conf_list *cl)
{
	size_t i;

	for (i = 0; i < cl->n; i++)
		ws_buf_release(&cl->c[i].v);
	free(cl->c);
	ws_buf_release(&cl->dump);
	memset(cl, 0, sizeof(*cl));
}

static void fmt_clock(const struct world *w, const struct ws_vclock *vc, char *out,
    size_t cap)
{
	size_t i, o = 0;
	int r;

	out[0] = 0;
	for (i = 0; i < vc->n && o + 24 < cap; i++) {
		r = find_origin(w, &vc->e[i].site);
		o += (size_t)snprintf(out + o, cap - o, "%s%c:%" PRIu64, i ? "," : "",
		    r < 0 ? '?' : 'A' + r, vc->e[i].counter);
	}
}

/* What batch bi sends for row (t, k), as text. */
static void batch_row_text(struct world *w, size_t bi, int t, int k, char *out, size_t cap)
{
	struct ws_batch b;
	char vs[160];
	size_t i, o = 0;
	uint32_t c, n;

	out[0] = 0;
	ws_batch_init(&b);
	if (ws_batch_decode(&b, w->b[bi].enc, w->b[bi].n, NULL)) {
		snprintf(out, cap, "(undecodable)");
		return;
	}
	for (i = 0; i < b.nchanges && o + 8 < cap; i++) {
		const struct ws_change *ch = &b.changes[i];
		const struct ws_table *tb = &b.tables[ch->table];

		if (strcmp(tb->name, tdefs[t].name) != 0 ||
		    find_key(w, t, ch->pk, tb->npk) != k)
			continue;
		o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? "; " : "",
		    ws_op_name(ch->op));
		for (c = 0, n = 0; ch->op != WS_OP_DELETE && c < tb->ncols && o + 8 < cap; c++)
			if (ws_mask_test(ch->mask, c)) {
				struct ws_buf e = WS_BUF_INIT;

				if (ws_value_encode(&ch->vals[n++], &e) == 0) {
					fmt_enc(e.p, e.len, vs, sizeof(vs));
					o += (size_t)snprintf(out + o, cap - o, " %s=%s",
					    tb->cols[c], vs);
				}
				ws_buf_release(&e);
			}
	}
	ws_batch_release(&b);
}

/*
 * Print, for every batch touching row (t, k), what it sends and what the
 * model says it wrote, then the order those batches reached r1 and r2.
 */
static void show_row(struct world *w, int t, int k, int r1, int r2)
{
	char vs[160], cs[256], sent[1024], model[1024];
	size_t i, a, bi, m;
	int rr, r;

	for (bi = 0; bi < w->nb; bi++) {
		const struct brec *b = &w->b[bi];

		m = 0;
		model[0] = 0;
		for (i = 0; i < w->nev && m + 8 < sizeof(model); i++) {
			const struct event *e = &w->ev[i];

			if (e->batch != (int)bi || e->t != t || e->k != k)
				continue;
			if (e->col < 0) {
				m += (size_t)snprintf(model + m, sizeof(model) - m, "deleted;");
			} else {
				fmt_enc(e->v, e->vn, vs, sizeof(vs));
				m += (size_t)snprintf(model + m, sizeof(model) - m, "%s%s=%s",
				    m ? " " : "", tdefs[t].cols[e->col], vs);
			}
		}
		batch_row_text(w, bi, t, k, sent, sizeof(sent));
		if (!model[0] && !sent[0])
			continue;
		fmt_clock(w, &b->ctx, cs, sizeof(cs));
		wmore(w, "  %c:%" PRIu64 " (lamport %" PRIu64 ", context {%s}) sends [%s]; "
		    "model: [%s]", 'A' + b->origin, b->counter, b->lamport, cs, sent, model);
	}
	for (rr = 0; rr < 2; rr++) {
		char line[1024];
		size_t o = 0;

		r = rr ? r2 : r1;
		if (r < 0 || (rr && r2 == r1))
			continue;
		line[0] = 0;
		for (a = 0; a < w->rep[r].narr && o + 32 < sizeof(line); a++) {
			const struct arrival *ar = &w->rep[r].arr[a];

			if (ar->b < 0)
				continue;
			batch_row_text(w, (size_t)ar->b, t, k, sent, sizeof(sent));
			for (i = 0; i < w->nev; i++)
				if (w->ev[i].batch == ar->b && w->ev[i].t == t && w->ev[i].k == k)
					break;
			if (i == w->nev && !sent[0])
				continue;
			o += (size_t)snprintf(line + o, sizeof(line) - o, " %c:%" PRIu64 "%s",
			    'A' + w->b[ar->b].origin, w->b[ar->b].counter,
			    ar->kind == 'o' ? "(own)" : ar->kind == 'p' ? "(parked/dup)" : "");
		}
		wmore(w, "  these reached %c in the order:%s", 'A' + r, line);
	}
}

/* Has write f seen write e (e happened before f)? */
static int ev_seen(const struct world *w, const struct event *f, const struct event *e)
{
	const struct brec *fb = &w->b[f->batch], *eb = &w->b[e->batch];

	if (f->batch == e->batch)
		return f->seq > e->seq;
	return ws_vclock_get(&fb->ctx, ws_store_site(w->rep[eb->origin].s)) >= eb->counter;
}

static int ev_wins(const struct world *w, const struct event *x, const struct event *y)
{
	const struct brec *xb = &w->b[x->batch], *yb = &w->b[y->batch];

	if (xb->lamport != yb->lamport)
		return xb->lamport > yb->lamport;
	return ws_siteid_cmp(ws_store_site(w->rep[xb->origin].s),
	    ws_store_site(w->rep[yb->origin].s)) > 0;
}

struct xconf {
	int origin;
	uint64_t counter;
	int lostdel;
	const uint8_t *v;
	size_t vn;
};

static int xconf_cmp(const void *a, const void *b)
{
	const struct xconf *x = a, *y = b;

	if (x->origin != y->origin)
		return x->origin < y->origin ? -1 : 1;
	if (x->counter != y->counter)
		return x->counter < y->counter ? -1 : 1;
	if (x->lostdel != y->lostdel)
		return x->lostdel - y->lostdel;
	if (x->vn != y->vn)
		return x->vn < y->vn ? -1 : 1;
	return x->vn ? memcmp(x->v, y->v, x->vn) : 0;
}

static void fmt_xconfs(const struct xconf *x, size_t n, char *out, size_t cap)
{
	char vs[160];
	size_t i, o = 0;

	out[0] = 0;
	for (i = 0; i < n && o + 8 < cap; i++) {
		fmt_enc(x[i].v, x[i].vn, vs, sizeof(vs));
		o += (size_t)snprintf(out + o, cap - o, "%s%c:%" PRIu64 "%s=%s", i ? ", " : "",
		    'A' + x[i].origin, x[i].counter, x[i].lostdel ? "(lost to delete)" : "",
		    vs);
	}
	if (!n)
		snprintf(out, cap, "none");
}

/* The writes of one row, for the model. */
struct rowmodel {
	struct world *w;
	int r, t, k, verbose;
	char kn[96];
	const struct event **e; /* the row's writes */
	size_t n;
	struct xconf *want, *have;
};

/* Is v one of the values written to column c of the row? */
static int written(const struct rowmodel *m, int c, const uint8_t *v, size_t n)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->e[i]->col == c && m->e[i]->vn == n && memcmp(m->e[i]->v, v, n) == 0)
			return 1;
	return 0;
}

/* Has some write of cell c (or delete of the row) seen write e? */
static int overwritten(const struct rowmodel *m, int c, const struct event *e)
{
	size_t j;

	for (j = 0; j < m->n; j++)
		if ((m->e[j]->col == c || m->e[j]->col < 0) && ev_seen(m->w, m->e[j], e))
			return 1;
	return 0;
}

/* Is a delete of the row concurrent with write e? */
static int lost_to_delete(const struct rowmodel *m, const struct event *e)
{
	size_t j;

	for (j = 0; j < m->n; j++)
		if (m->e[j]->col < 0 && !ev_seen(m->w, m->e[j], e) &&
		    !ev_seen(m->w, e, m->e[j]))
			return 1;
	return 0;
}

/*
 * Check cell c of the row: its value (actual, when the row exists) and
 * its conflicts in cl.  Return 1 if it differs from the model.
 */
static int check_cell(struct rowmodel *m, int c, int exists, int want_exists,
    const struct ws_buf *actual, const struct conf_list *cl)
{
	struct world *w = m->w;
	const struct event *win = NULL, *e;
	char vs[160], vs2[160], l1[1024], l2[1024];
	const char *col = tdefs[m->t].cols[c];
	size_t i, nw = 0, nh = 0;
	int bad = 0;

	/* The writes of the cell that stand, and the winner among them. */
	for (i = 0; i < m->n; i++) {
		e = m->e[i];
		if (e->col != c || overwritten(m, c, e))
			continue;
		m->want[nw].origin = w->b[e->batch].origin;
		m->want[nw].counter = w->b[e->batch].counter;
		m->want[nw].lostdel = lost_to_delete(m, e);
		m->want[nw].v = e->v;
		m->want[nw].vn = e->vn;
		if (!m->want[nw].lostdel && (!win || ev_wins(w, e, win)))
			win = e;
		nw++;
	}
	if (want_exists && !win) {
		bad = 1;
		if (m->verbose)
			wfail(w, "replica %c: %s.%s: the model has no write standing for a "
			    "row it says exists", 'A' + m->r, m->kn, col);
	}
	/* The winner is the value; the others are conflicts. */
	for (i = 0; win && i < nw; i++)
		if (m->want[i].origin == w->b[win->batch].origin &&
		    m->want[i].counter == w->b[win->batch].counter) {
			m->want[i] = m->want[--nw];
			break;
		}
	if (exists && want_exists && win && (actual->len != win->vn ||
	    memcmp(actual->p, win->v, win->vn) != 0)) {
		bad = 1;
		if (m->verbose) {
			fmt_enc(actual->p, actual->len, vs, sizeof(vs));
			fmt_enc(win->v, win->vn, vs2, sizeof(vs2));
			wfail(w, "replica %c: %s.%s is %s, the model expects %s (from %c:%"
			    PRIu64 ")", 'A' + m->r, m->kn, col, vs, vs2,
			    'A' + w->b[win->batch].origin, w->b[win->batch].counter);
		}
	}
	/* No value nobody wrote. */
	if (exists && !written(m, c, actual->p, actual->len)) {
		bad = 1;
		if (m->verbose) {
			fmt_enc(actual->p, actual->len, vs, sizeof(vs));
			wfail(w, "replica %c: %s.%s is %s, which nobody wrote there",
			    'A' + m->r, m->kn, col, vs);
		}
	}
	for (i = 0; i < cl->n; i++) {
		const struct aconf *a = &cl->c[i];

		if (a->t != m->t || a->k != m->k || a->col != c)
			continue;
		m->have[nh].origin = a->origin;
		m->have[nh].counter = a->counter;
		m->have[nh].lostdel = a->lostdel;
		m->have[nh].v = a->v.p;
		m->have[nh].vn = a->v.len;
		nh++;
		if (!written(m, c, a->v.p, a->v.len)) {
			bad = 1;
			if (m->verbose)
				wfail(w, "replica %c: %s.%s has a conflict value nobody wrote "
				    "there", 'A' + m->r, m->kn, col);
		}
	}
	qsort(m->want, nw, sizeof(*m->want), xconf_cmp);
	qsort(m->have, nh, sizeof(*m->have), xconf_cmp);
	for (i = 0; nw == nh && i < nw && xconf_cmp(&m->want[i], &m->have[i]) == 0; i++)
		;
	if (nw != nh || i < nw) {
		bad = 1;
		if (m->verbose) {
			fmt_xconfs(m->have, nh, l1, sizeof(l1));
			fmt_xconfs(m->want, nw, l2, sizeof(l2));
			wfail(w, "replica %c: %s.%s has conflicts [%s], the model expects "
			    "[%s]", 'A' + m->r, m->kn, col, l1, l2);
		}
	}
	return bad;
}

/*
 * Check replica r's rows and conflicts (cl) against the model; return the
 * number of rows that differ.  Prints details (of 4 rows at most) when
 * verbose.
 */
static int check_model(struct world *w, int r, const struct conf_list *cl, int verbose)
{
	struct ws_buf actual[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	struct rowmodel m;
	int c, bad = 0, rowbad, exists, want_exists;
	size_t i;

	memset(&m, 0, sizeof(m));
	m.w = w;
	m.r = r;
	m.verbose = verbose;
	m.e = malloc((w->nev + 1) * sizeof(*m.e));
	m.want = malloc((w->nev + 1) * sizeof(*m.want));
	m.have = malloc((cl->n + 1) * sizeof(*m.have));
	if (!m.e || !m.want || !m.have) {
		must(w, WS_ENOMEM, "model");
		goto out;
	}
	for (m.t = 0; m.t < NT; m.t++)
		for (m.k = 0; m.k < w->nkeys[m.t]; m.k++) {
			key_name(m.t, m.k, m.kn, sizeof(m.kn));
			for (m.n = 0, i = 0; i < w->nev; i++)
				if (w->ev[i].t == m.t && w->ev[i].k == m.k)
					m.e[m.n++] = &w->ev[i];
			exists = read_row(w, ws_store_db(w->rep[r].s), m.t, m.k, actual);
			/* The row exists while a write of it stands that no delete
			 * is concurrent with. */
			for (want_exists = 0, i = 0; i < m.n && !want_exists; i++)
				want_exists = m.e[i]->col >= 0 &&
				    !overwritten(&m, m.e[i]->col, m.e[i]) &&
				    !lost_to_delete(&m, m.e[i]);
			rowbad = exists != want_exists;
			if (rowbad && m.verbose)
				wfail(w, "replica %c: %s %s, the model says it %s", 'A' + r, m.kn,
				    exists ? "exists" : "is missing",
				    want_exists ? "exists" : "is deleted");
			for (c = 0; c < NC; c++)
				if ((tdefs[m.t].data >> c) & 1)
					rowbad |= check_cell(&m, c, exists, want_exists, &actual[c],
					    cl);
			if (rowbad) {
				bad++;
				if (m.verbose)
					show_row(w, m.t, m.k, r, -1);
			}
			if (bad >= 4)
				m.verbose = 0;
		}
out:
	for (c = 0; c < NC; c++)
		ws_buf_release(&actual[c]);
	free(m.e);
	free(m.want);
	free(m.have);
	return bad;
}

/* Conflict i of list cl as text, for messages. */
static void conf_text(const struct conf_list *cl, size_t i, char *out, size_t cap)
{
	const struct aconf *a = &cl->c[i];
	char kn[96], vs[160];

	if (i >= cl->n) {
		snprintf(out, cap, "(no more conflicts)");
		return;
	}
	if (a->t < 0 || a->k < 0 || a->col < 0) {
		snprintf(out, cap, "(a conflict outside the tables and keys written)");
		return;
	}
	key_name(a->t, a->k, kn, sizeof(kn));
	fmt_enc(a->v.p, a->v.len, vs, sizeof(vs));
	snprintf(out, cap, "%s.%s = %s, dot %c:%" PRIu64 "%s", kn, tdefs[a->t].cols[a->col],
	    vs, a->origin < 0 ? '?' : 'A' + a->origin, a->counter,
	    a->lostdel ? ", lost to delete" : "");
}

/* Row (t, k) of replica r as text, for messages. */
static void row_text(struct world *w, int r, int t, int k, char *out, size_t cap)
{
	struct ws_buf v[NC] = {WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT, WS_BUF_INIT};
	char vs[160];
	size_t o = 0;
	int c;

	if (!read_row(w, ws_store_db(w->rep[r].s), t, k, v)) {
		snprintf(out, cap, "(no row)");
	} else {
		out[0] = 0;
		for (c = 0; c < NC; c++)
			if ((tdefs[t].data >> c) & 1) {
				fmt_enc(v[c].p, v[c].len, vs, sizeof(vs));
				o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s=%s",
				    o ? " " : "", tdefs[t].cols[c], vs);
				if (o >= cap)
					break;
			}
	}
	for (c = 0; c < NC; c++)
		ws_buf_release(&v[c]);
}

/* Everything has reached everyone: check the invariants. */
static void check_world(struct world *w, int *rows, size_t *nconf)
{
	struct ws_vclock c0 = WS_VCLOCK_INIT, c1 = WS_VCLOCK_INIT;
	struct conf_list cl[MAXREP];
	struct ws_buf d0 = WS_BUF_INIT, d1 = WS_BUF_INIT;
	char err[WS_ERRLEN] = "", s1[512], s2[512], kn[96];
	size_t line;
	sqlite3_stmt *st;
	size_t pend;
	int r, t, k, rc, bad[MAXREP], shown = 0;
	uint64_t expect;

	memset(cl, 0, sizeof(cl));
	*rows = 0;
	*nconf = 0;
	for (r = 0; r < w->nrep; r++) {
		struct rep *p = &w->rep[r];
		sqlite3 *db = ws_store_db(p->s);

		if ((rc = ws_store_pending(p->s, &pend, err)) || pend)
			wfail(w, "replica %c: %zu batches still pending %s", 'A' + r, pend, err);
		/* Clocks: equal everywhere, each origin at its number of batches. */
		if ((rc = ws_store_clock(p->s, r ? &c1 : &c0, err)))
			wfail(w, "replica %c: clock: %s", 'A' + r, err);
		if (r && ws_vclock_compare(&c0, &c1) != WS_VCLOCK_EQUAL) {
			fmt_clock(w, &c0, s1, sizeof(s1));
			fmt_clock(w, &c1, s2, sizeof(s2));
			wfail(w, "replica %c's clock {%s} differs from A's {%s}", 'A' + r, s2, s1);
		}
		if (r == 0) {
			int o;

			for (o = 0; o < w->nrep; o++) {
				expect = w->rep[o].own;
				if (ws_vclock_get(&c0, ws_store_site(w->rep[o].s)) != expect)
					wfail(w, "replica A's clock has %c at %" PRIu64 ", but %c made "
					    "%" PRIu64 " batches", 'A' + o, ws_vclock_get(&c0,
					    ws_store_site(w->rep[o].s)), 'A' + o, expect);
			}
		}
		/* Exactly once: every batch recorded once. */
		if ((st = prepf(w, db, "SELECT count(*) FROM wsync_batches"))) {
			if (sqlite3_step(st) == SQLITE_ROW &&
			    (size_t)sqlite3_column_int64(st, 0) != w->nb)
				wfail(w, "replica %c records %lld batches, %zu were made", 'A' + r,
				    sqlite3_column_int64(st, 0), w->nb);
			sqlite3_finalize(st);
		}
		if ((st = prepf(w, db, "PRAGMA integrity_check"))) {
			if (sqlite3_step(st) != SQLITE_ROW ||
			    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
				wfail(w, "replica %c: integrity_check: %s", 'A' + r,
				    sqlite3_column_text(st, 0) ? (const char *)
				    sqlite3_column_text(st, 0) : "(nothing)");
			sqlite3_finalize(st);
		}
		cl[r].w = w;
		if ((rc = ws_store_conflicts(p->s, list_cb, &cl[r], err)))
			wfail(w, "replica %c: conflicts: %s (%s)", 'A' + r, ws_strerror(rc), err);
		if (cl[r].bad)
			wfail(w, "replica %c: %d conflicts outside the tables, keys and sites "
			    "written", 'A' + r, cl[r].bad);
	}
	/* Identical tables. */
	for (t = 0; t < NT; t++) {
		dump_table(w, ws_store_db(w->rep[0].s), t, &d0);
		for (r = 1; r < w->nrep; r++) {
			dump_table(w, ws_store_db(w->rep[r].s), t, &d1);
			if (d0.len == d1.len && (d0.len == 0 || memcmp(d0.p, d1.p, d0.len) == 0))
				continue;
			wfail(w, "table %s differs between replicas A and %c", tdefs[t].name,
			    'A' + r);
			for (k = 0; k < w->nkeys[t]; k++) {
				row_text(w, 0, t, k, s1, sizeof(s1));
				row_text(w, r, t, k, s2, sizeof(s2));
				if (strcmp(s1, s2) == 0)
					continue;
				key_name(t, k, kn, sizeof(kn));
				wmore(w, "%s at A: %s", kn, s1);
				wmore(w, "%s at %c: %s", kn, 'A' + r, s2);
				if (shown++ < 3)
					show_row(w, t, k, 0, r);
			}
		}
		for (line = 0; line < d0.len; line++)
			*rows += d0.p[line] == '\n';
	}
	/* Identical conflicts. */
	for (r = 1; r < w->nrep; r++) {
		size_t i0 = 0, i1 = 0, e0, e1;
		struct ws_buf *a = &cl[0].dump, *b = &cl[r].dump;

		if (a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0))
			continue;
		wfail(w, "the conflicts at replica %c (%zu) differ from those at A (%zu)",
		    'A' + r, cl[r].n, cl[0].n);
		/* The first conflict that differs. */
		for (line = 0; i0 < a->len || i1 < b->len; line++) {
			for (e0 = i0; e0 < a->len && a->p[e0] != '\n'; e0++)
				;
			for (e1 = i1; e1 < b->len && b->p[e1] != '\n'; e1++)
				;
			if (e0 - i0 != e1 - i1 || memcmp(a->p + i0, b->p + i1, e0 - i0)) {
				conf_text(&cl[0], line, s1, sizeof(s1));
				conf_text(&cl[r], line, s2, sizeof(s2));
				wmore(w, "conflict #%zu at A: %s", line + 1, s1);
				wmore(w, "conflict #%zu at %c: %s", line + 1, 'A' + r, s2);
				break;
			}
			i0 = e0 < a->len ? e0 + 1 : e0;
			i1 = e1 < b->len ? e1 + 1 : e1;
		}
	}
	*nconf = cl[0].n;
	/* The model, at every replica; details for the first that differs. */
	for (shown = 0, r = 0; r < w->nrep && !w->nomodel; r++) {
		bad[r] = check_model(w, r, &cl[r], 0);
		if (bad[r] && !shown) {
			shown = 1;
			check_model(w, r, &cl[r], 1);
		}
	}
	if (shown) {
		size_t o = 0;

		for (r = 0; r < w->nrep; r++)
			o += (size_t)snprintf(s1 + o, sizeof(s1) - o, " %c:%d", 'A' + r, bad[r]);
		wfail(w, "rows differing from the model, per replica:%s", s1);
	}
	for (r = 0; r < w->nrep; r++)
		conf_list_release(&cl[r]);
	ws_vclock_release(&c0);
	ws_vclock_release(&c1);
	ws_buf_release(&d0);
	ws_buf_release(&d1);
}

static void summary(struct world *w, int rounds)
{
	int rows;
	size_t nconf;
	unsigned long total;

	check_world(w, &rows, &nconf);
	total = (unsigned long)w->nb * (unsigned long)(w->nrep - 1);
	printf("%s seed %" PRIu64 ": %d replicas, %d rounds, keys %d+%d: %lu "
	    "statements in %lu transactions (%lu rolled back), %zu model writes in "
	    "%zu batches; %lu deliveries: %lu applied at once, %lu applied from "
	    "pending, %lu duplicate or early (max %lu pending); %lu resolved; %lu "
	    "changes SQL calls equal; end: %d rows, %zu conflicts: %s\n", w->label, w->seed,
	    w->nrep, rounds, w->nkeys[0], w->nkeys[1], w->st.stmts, w->st.txns,
	    w->st.rollbacks, w->nev, w->nb, w->st.deliveries, w->st.applied,
	    total > w->st.applied ? total - w->st.applied : 0, w->st.notapplied,
	    w->st.maxpending, w->st.resolved, w->st.sqlequal, rows, nconf,
	    w->fails ? "FAILED" : "ok");
	if (w->fails)
		fprintf(stderr, "%s seed %" PRIu64 " FAILED: replay it with WS_TEST_SEED=%"
		    PRIu64 " build/tests/test_converge\n", w->label, w->seed, w->seed);
}

/* The randomised convergence test. */

static int nseeds = 20;
static int nrounds = 10;

static void converge_seed(uint64_t seed)
{
	struct world *w;
	int r, round, nrep, order[MAXREP], i, j, tmp, n;

	t_state = seed ? seed : 1;
	nrep = 3 + (int)t_below(3);
	w = world_new("converge", seed, nrep, 6 + (int)t_below(7), 3 + (int)t_below(6));
	if (!w) {
		CHECK(w != NULL);
		return;
	}
	for (round = 0; round < nrounds && !w->dead; round++) {
		for (r = 0; r < nrep; r++)
			order[r] = r;
		for (i = nrep; i > 1; i--) {
			j = (int)t_below((uint64_t)i);
			tmp = order[i - 1];
			order[i - 1] = order[j];
			order[j] = tmp;
		}
		for (i = 0; i < nrep && !w->dead; i++) {
			r = order[i];
			n = (int)t_below(4);
			for (j = 0; j < n && !w->dead; j++) {
				local_txn(w, r);
				if (t_below(10) < 6)
					seal_rep(w, r);
			}
			if (t_below(2))
				collect(w, r); /* else later: after remote batches arrived */
		}
		if (t_below(10) < 4 && !w->dead)
			resolve_random(w, (int)t_below((uint64_t)nrep));
		if (!w->dead)
			exchange(w, t_below(4) == 0 ? 100 : 15 + (int)t_below(70));
		for (r = 0; r < nrep && !w->dead; r++)
			if (t_below(4))
				collect(w, r);
	}
	/* Everything to everyone, in random order, with duplicates. */
	for (r = 0; r < nrep && !w->dead; r++)
		collect(w, r);
	if (!w->dead)
		exchange(w, 100);
	if (!w->dead)
		exchange(w, 100); /* only duplicates are left */
	for (r = 0; r < nrep && !w->dead; r++)
		collect(w, r);    /* nothing new may appear */
	if (!w->dead)
		summary(w, nrounds);
	else
		fprintf(stderr, "converge seed %" PRIu64 " FAILED: replay it with "
		    "WS_TEST_SEED=%" PRIu64 " build/tests/test_converge\n", seed, seed);
	world_free(w);
}

TEST(test_converge_random)
{
	int i;

	failed_worlds = 0;
	for (i = 0; i < (one_seed ? 1 : nseeds); i++)
		converge_seed(t_seed + (uint64_t)i);
}

/* Random local transactions at r until they make one batch. */
static int make_batch(struct world *w, int r)
{
	size_t nb = w->nb;
	int i;

	for (i = 0; i < 20 && !w->dead && w->nb == nb; i++) {
		local_txn(w, r);
		collect(w, r);
	}
	if (w->nb != nb + 1) {
		wfail(w, "replica %c made %zu batches, not one", 'A' + r, w->nb - nb);
		w->dead = 1;
		return -1;
	}
	return (int)nb;
}

/* Deliver batches bs[0..n) to replica r in the order of perm. */
static void deliver_perm(struct world *w, int r, const int *bs, const int *perm, int n)
{
	int i;

	for (i = 0; i < n && !w->dead; i++)
		deliver(w, r, (size_t)bs[perm[i]]);
}

/* The next permutation in lexicographic order; 0 after the last. */
static int next_perm(int *p, int n)
{
	int i = n - 2, j, tmp;

	while (i >= 0 && p[i] >= p[i + 1])
		i--;
	if (i < 0)
		return 0;
	for (j = n - 1; p[j] <= p[i]; j--)
		;
	tmp = p[i];
	p[i] = p[j];
	p[j] = tmp;
	for (i++, j = n - 1; i < j; i++, j--) {
		tmp = p[i];
		p[i] = p[j];
		p[j] = tmp;
	}
	return 1;
}

/* Collect everywhere, check, and say how to replay a failure. */
static void finish_small(struct world *w, const char *what)
{
	int r, rows;
	size_t nconf;

	for (r = 0; r < w->nrep && !w->dead; r++)
		collect(w, r);
	if (!w->dead)
		check_world(w, &rows, &nconf);
	if (w->fails && what)
		fprintf(stderr, "%s %s seed %" PRIu64 " FAILED: replay it with "
		    "WS_TEST_SEED=%" PRIu64 " build/tests/test_converge\n", w->label,
		    what, w->seed, w->seed);
}

static void perm_scenario(uint64_t seed)
{
	int perm[3] = {0, 1, 2}, bs[3], rev[2] = {1, 0}, r, k, o;
	struct world *w;
	sqlite3 *db;

	t_state = seed ? seed : 1;
	w = world_new("orders", seed, 8, 3, 2);
	if (!w) {
		CHECK(w != NULL);
		return;
	}
	if (w->dead)
		goto out;
	/* The base: rows 0 and 1 of t1, row 0 of t2, at everyone. */
	db = ws_store_db(w->rep[0].s);
	execw(w, db, "BEGIN");
	for (k = 0; k < 2; k++)
		op_insert(w, db, 0, k, 1);
	op_insert(w, db, 1, 0, 1);
	execw(w, db, "COMMIT");
	tx_end(w, 0, 1);
	collect(w, 0);
	if (w->dead || w->nb != 1) {
		wfail(w, "the base made %zu batches", w->nb);
		goto out;
	}
	for (r = 1; r < w->nrep; r++)
		deliver(w, r, 0);
	bs[0] = make_batch(w, 0);
	bs[1] = make_batch(w, 0);
	bs[2] = make_batch(w, 1);
	if (w->dead)
		goto out;
	/* A gets b1; B gets a1 and a2, a2 first every other seed. */
	deliver(w, 0, (size_t)bs[2]);
	deliver_perm(w, 1, bs, seed & 1 ? rev : perm, 2);
	/* Fresh replicas get all six orders. */
	for (o = 0; o < 6 && !w->dead; o++) {
		deliver_perm(w, 2 + o, bs, perm, 3);
		next_perm(perm, 3);
	}
out:
	finish_small(w, "scenario");
	world_free(w);
}

/*
 * Every delivery order of three batches: A makes a base batch that
 * everyone gets first, then a1 and a2 (a2 after a1); B makes b1 after the
 * base only, concurrent with both.  Six fresh replicas get a1, a2, b1 in
 * each of the six orders; A gets b1, B gets a1 and a2.  All eight must
 * agree, and agree with the model.  Random writes, 60 scenarios.
 */
TEST(test_all_delivery_orders)
{
	int i, n = one_seed ? 1 : 60;

	failed_worlds = 0;
	for (i = 0; i < n; i++)
		perm_scenario(one_seed ? t_seed : t_seed + 1000 + (uint64_t)i);
	printf("orders: %d scenarios x 6 delivery orders (+ both writers), %d failed\n",
	    n, failed_worlds);
}

/*
 * Scripted scenarios: the shapes of write that the random tests found
 * mishandled, small enough to read.  A runs `base` (one batch everyone
 * gets first), then each of a[] (one batch each); B runs each of b[]
 * concurrently.  B's site id is the higher one, so B wins Lamport ties.
 * Fresh replicas get the batches of a[] and b[] in every order; A gets
 * B's, B gets A's newest first.  Every replica must hold the same rows and
 * the same conflicts.  (No model here: only agreement is checked.)
 */
struct script {
	const char *name;
	const char *base;
	const char *a[3];
	const char *b[3];
};

static const struct script scripts[] = {
	{"concurrent inserts of a new key, then an update (the losing insert must "
	    "not hide the winner)",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"INSERT INTO t1 VALUES(2, 'a1', 'a1', 'a1')",
	     "UPDATE t1 SET a = 'a2' WHERE id = 2"},
	    {"INSERT INTO t1 VALUES(2, 'b1', 'b1', 'b1')"}},
	{"an insert and an update of the same new row in one batch, concurrent "
	    "with another insert",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"INSERT INTO t1 VALUES(2, 'a1', 'a1', 'a1')",
	     "UPDATE t1 SET a = 'a2' WHERE id = 2"},
	    {"INSERT INTO t1 VALUES(2, 'b1', 'b1', 'b1');"
	     "UPDATE t1 SET a = 'b1x' WHERE id = 2"}},
	{"a delete and re-insert in one batch, concurrent with a delete",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"DELETE FROM t1 WHERE id = 1; INSERT INTO t1 VALUES(1, 'a1', 'a1', 'a1')",
	     "UPDATE t1 SET b = 'a2' WHERE id = 1"},
	    {"DELETE FROM t1 WHERE id = 1"}},
	{"a delete, then a re-insert, concurrent with a delete",
	    "INSERT INTO t2 VALUES('a', 1, 'base', 'base')",
	    {"DELETE FROM t2 WHERE k1 = 'a'",
	     "INSERT INTO t2 VALUES('a', 1, 'a2', 'a2')"},
	    {"DELETE FROM t2 WHERE k1 = 'a'"}},
	{"an update that lost to a write, then to a delete: lost_to_delete "
	    "must not depend on the order",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"UPDATE t1 SET b = 'a1' WHERE id = 1",
	     "UPDATE t1 SET a = 'a2' WHERE id = 1",
	     "DELETE FROM t1 WHERE id = 1"},
	    {"UPDATE t1 SET a = 'b1' WHERE id = 1"}},
	{"a delete and re-insert, concurrent with updates that lost to the "
	    "delete",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"DELETE FROM t1 WHERE id = 1",
	     "INSERT INTO t1 VALUES(1, 'a2', 'a2', 'a2')"},
	    {"UPDATE t1 SET c = 'b1' WHERE id = 1",
	     "UPDATE t1 SET a = 'b2' WHERE id = 1"}},
	{"an update that changes only a value's type (2.0 to 2)",
	    "INSERT INTO t1 VALUES(1, 2.0, 'base', 'base')",
	    {"UPDATE t1 SET a = 2, b = 'a1' WHERE id = 1"},
	    {"UPDATE t1 SET c = 'b1' WHERE id = 1"}},
	{"an update that changes only case in a NOCASE column",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'abc')",
	    {"UPDATE t1 SET c = 'ABC', b = 'a1' WHERE id = 1"},
	    {"UPDATE t1 SET a = 'b1' WHERE id = 1"}},
	{"an update that adds a trailing space in an RTRIM column",
	    "INSERT INTO t2 VALUES('a', 1, 'abc', 1.5)",
	    {"UPDATE t2 SET v = 'abc ', w = 2.5 WHERE k1 = 'a'"},
	    {"UPDATE t2 SET w = 3.5 WHERE k1 = 'a'"}},
	{"an update from 0.0 to -0.0 (the sign of a zero is not captured, as "
	    "wsync(7) says; the update's other column must still converge)",
	    "INSERT INTO t1 VALUES(1, 0.0, 'base', 'base')",
	    {"UPDATE t1 SET a = -0.0, b = 'a1' WHERE id = 1"},
	    {"UPDATE t1 SET c = 'b1' WHERE id = 1"}},
	{"concurrent INSERT OR REPLACE of a row that exists",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"INSERT OR REPLACE INTO t1 VALUES(1, 'a1', 'a1', NULL)",
	     "UPDATE t1 SET c = 'a2' WHERE id = 1"},
	    {"INSERT OR REPLACE INTO t1 VALUES(1, 'b1', NULL, 'b1')"}},
	{"a key change (an UPDATE of the primary key) concurrent with an update "
	    "of the old row",
	    "INSERT INTO t1 VALUES(1, 'base', 'base', 'base')",
	    {"UPDATE t1 SET id = 2 WHERE id = 1",
	     "UPDATE t1 SET a = 'a2' WHERE id = 2"},
	    {"UPDATE t1 SET b = 'b1' WHERE id = 1"}},
};

static int script_step(struct world *w, int r, const char *sql)
{
	size_t nb = w->nb;

	execw(w, ws_store_db(w->rep[r].s), sql);
	collect(w, r);
	if (!w->dead && w->nb != nb + 1) {
		wfail(w, "\"%s\" made %zu batches, not one", sql, w->nb - nb);
		w->dead = 1;
	}
	return (int)nb;
}

static void run_script(const struct script *sc, uint64_t seed)
{
	int bs[6], perm[6], na, nb, n, i, o, ra = 0, rb = 1, nobs = 1;
	/* ra is A, with the lower site id; rb is B. */
	struct world *w;

	for (na = 0; na < 3 && sc->a[na]; na++)
		;
	for (nb = 0; nb < 3 && sc->b[nb]; nb++)
		;
	n = na + nb;
	for (i = 2; i <= n; i++)
		nobs *= i;
	if (nobs > MAXREP - 2)
		nobs = MAXREP - 2;
	t_state = seed ? seed : 1;
	w = world_new("scripted", seed, 2 + nobs, 3, 2);
	if (!w) {
		CHECK(w != NULL);
		return;
	}
	w->nomodel = 1;
	w->quiet = 0;
	if (w->dead)
		goto out;
	if (ws_siteid_cmp(ws_store_site(w->rep[0].s), ws_store_site(w->rep[1].s)) > 0) {
		struct rep tmp = w->rep[0]; /* nothing happened yet: swap them */

		w->rep[0] = w->rep[1];
		w->rep[1] = tmp;
	}
	script_step(w, ra, sc->base);
	for (i = 0; i < w->nrep && !w->dead; i++)
		if (i != ra)
			deliver(w, i, 0);
	for (i = 0; i < na && !w->dead; i++)
		bs[i] = script_step(w, ra, sc->a[i]);
	for (i = 0; i < nb && !w->dead; i++)
		bs[na + i] = script_step(w, rb, sc->b[i]);
	if (w->dead)
		goto out;
	for (i = 0; i < nb; i++)
		deliver(w, ra, (size_t)bs[na + i]);
	for (i = na - 1; i >= 0; i--)
		deliver(w, rb, (size_t)bs[i]);
	for (i = 0; i < n; i++)
		perm[i] = i;
	for (o = 0; o < nobs && !w->dead; o++) {
		deliver_perm(w, 2 + o, bs, perm, n);
		next_perm(perm, n);
	}
out:
	finish_small(w, NULL);
	if (w->fails) {
		fprintf(stderr, "  (the scenario: base at A: %s\n", sc->base);
		for (i = 0; i < na; i++)
			fprintf(stderr, "   A, batch %d: %s\n", i + 1, sc->a[i]);
		for (i = 0; i < nb; i++)
			fprintf(stderr, "   B, batch %d: %s\n", i + 1, sc->b[i]);
		fprintf(stderr, "   B's site id is above A's; C.. got every order)\n");
	}
	world_free(w);
}

TEST(test_scripted_orders)
{
	size_t i, n = sizeof(scripts) / sizeof(scripts[0]);
	int before;

	failed_worlds = 0;
	for (i = 0; i < n; i++) {
		before = t_cur_failed;
		run_script(&scripts[i], t_seed + 2000 + i);
		if (t_cur_failed != before)
			fprintf(stderr, "FAIL scripted scenario %zu: %s\n", i + 1,
			    scripts[i].name);
	}
	printf("scripted: %zu scenarios, every delivery order, %d failed\n", n,
	    failed_worlds);
}

int main(void)
{
	const char *e;

	if (randombytes_set_implementation(&rb_impl) != 0 || ws_init() != 0) {
		fprintf(stderr, "cannot set up libsodium\n");
		return 1;
	}
	TEST_MAIN_BEGIN();
	e = getenv("WS_TEST_SEED");
	one_seed = e && *e;
	if ((e = getenv("WS_CONVERGE_SEEDS")) && atoi(e) > 0)
		nseeds = atoi(e);
	if ((e = getenv("WS_CONVERGE_ROUNDS")) && atoi(e) > 0)
		nrounds = atoi(e);
	RUN(test_converge_random);
	RUN(test_all_delivery_orders);
	RUN(test_scripted_orders);
	TEST_MAIN_END();
}
