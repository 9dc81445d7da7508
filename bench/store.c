/* SPDX-License-Identifier: MIT */
/*
 * store.c - store benchmarks for libwsync: ws_store_apply() against plain
 * SQLite, the cost of capture triggers, and metadata bytes per row.
 *
 * 1. (B2) Apply 100k remote row changes into a 1M-row table with
 *    ws_store_apply(), with a loop of prepared INSERT OR REPLACE and
 *    DELETE statements, with sqlite3changeset_apply() of the changeset
 *    SQLite's session extension records for the same changes, and with
 *    the sqlite3 shell reading the SQL that sqldiff writes for them.
 * 2. (B7) Capture overhead: single-row UPDATEs on a tracked table against
 *    the same on an untracked copy, in one transaction and in autocommit.
 * 3. Metadata bytes per tracked row, before and after ws_store_gc().
 * 4. (B2c, B7c) The cost of a constrained schema: the apply of figure 1
 *    and the capture of figure 2, scaled down by SCHEMA_SCALE, on a table
 *    whose schema carries UNIQUE, NOT NULL, CHECK and a FOREIGN KEY with
 *    an action, against the same workload on a copy with none of them.
 *    (Smaller, because tracking a constrained table writes a UNIQUE claim
 *    for every row at the first seal and then collects them all: for 1M
 *    rows that setup alone took two minutes on the shared 2-core machine.)
 *
 * Prints one table on stdout and nothing else.  The databases live in a
 * directory under /tmp that is removed at exit.  The 1M-row base file is
 * built once, and tracked copies of it are made once (tracking, sealing
 * and GC are timed there, not in the runs); every run works on a fresh
 * byte copy of one of them (fsync'ed, so no write-back of the copy falls
 * into a timed section), and every
 * connection uses journal_mode=WAL and synchronous=NORMAL with SQLite's
 * other defaults.  Each timing is run REPS times, the contenders taking
 * turns within a repetition, and shown as median, min and max; a ratio is
 * taken within each repetition, then summarised the same way.  Inputs
 * come from a fixed-seed xorshift generator, and every contender's final
 * table is checked against a model of the expected rows.  Any failing
 * call prints "store: ..." on stderr and exits 70.
 */
/*
 * sqlite3.h declares sqlite3session_* and sqlite3changeset_* only under
 * these; Debian's libsqlite3 is built with both.
 */
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wsync/wsync.h>
#include <wsync/store.h>
#include <wsync/store-test.h>

#define EX_SOFTWARE 70
#define REPS 5                  /* runs per timing */

#define BASE_ROWS 1000000       /* rows in the figure 1 and 2 table */
#define APPLY_CHANGES 100000    /* remote changes applied in figure 1 */
#define CAP_TX 100000           /* updates in one transaction, figure 2 */
#define CAP_AUTO 10000          /* updates in autocommit, figure 2 */
#define META_ROWS 100000        /* rows in the figure 3 table */
#define META_ROUNDS 10          /* sealed local transactions, figure 3 */
#define META_CHANGES 100000     /* changes over all rounds, figure 3 */
#define PARENT_ROWS 100         /* rows of parent, figure 4 */
#define SCHEMA_SCALE 4          /* figure 4 runs figures 1 and 2 at 1/4 */
#define SCHEMA_ROWS (BASE_ROWS / SCHEMA_SCALE)
#define SCHEMA_CHANGES (APPLY_CHANGES / SCHEMA_SCALE)
#define SCHEMA_UPDATES (CAP_TX / SCHEMA_SCALE)

#define TEXT_POOL (1u << 20)
#define PATHLEN_SQL 256
#define B_MIN 10                /* bytes in column b */
#define B_MAX 40
#define WSID "bench"

/* Goals, from the design notes. */
#define GOAL_VS_PLAIN 0.5       /* wsync apply speed / prepared-statement loop */
#define GOAL_VS_SESSION 1.0     /* wsync apply speed / changeset_apply */
#define GOAL_VS_SQLDIFF 1.0     /* wsync apply speed / sqlite3 < sqldiff's SQL */
#define GOAL_CAPTURE 2.0        /* tracked time / untracked time */
#define GOAL_META 16.0          /* wsync_* bytes per row after GC */
#define GOAL_SCHEMA 1.10        /* constrained time / plain time (issue 13) */

#define BENCH_NAME "store"
#include "common.h"


/* ------------------------------------------------------------ temp files */

/*
 * Every database is one of these names in a fresh directory under /tmp.
 * The full paths, with SQLite's -wal, -shm and -journal companions, are
 * made once, so the signal handler can unlink them without formatting.
 */
enum {
	F_BASE, F_HBASE, F_TBASE, F_SBASE, F_RUN, F_SCRATCH, F_META_BASE, F_META,
	F_META_PLAIN, F_DIFF, F_PBASE, F_PTBASE, F_KBASE, F_KTBASE, NFILES
};

static const char *const file_names[NFILES] = {
	"base.db", "hbase.db", "tbase.db", "sbase.db", "run.db", "scratch.db", "meta-base.db",
	"meta.db", "meta-plain.db", "diff.sql", "pbase.db", "ptbase.db", "kbase.db",
	"ktbase.db",
};
static const char *const file_suffixes[] = {"", "-wal", "-shm", "-journal"};
#define NSUFFIXES (sizeof file_suffixes / sizeof file_suffixes[0])

static char tmp_dir[64];
static char tmp_path[NFILES][NSUFFIXES][128];

/* Remove the temp files and their directory; safe in a signal handler. */
static void tmp_cleanup(void)
{
	if (tmp_dir[0] == '\0')
		return;
	for (int f = 0; f < NFILES; f++)
		for (size_t s = 0; s < NSUFFIXES; s++)
			unlink(tmp_path[f][s]);
	rmdir(tmp_dir);
}

static void on_signal(int sig)
{
	tmp_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void tmp_init(void)
{
	strcpy(tmp_dir, "/tmp/wsync-bench-XXXXXX");
	if (mkdtemp(tmp_dir) == NULL) {
		tmp_dir[0] = '\0';
		die("cannot create a directory under /tmp: %s", strerror(errno));
	}
	for (int f = 0; f < NFILES; f++)
		for (size_t s = 0; s < NSUFFIXES; s++)
			snprintf(tmp_path[f][s], sizeof tmp_path[f][s], "%s/%s%s", tmp_dir,
			    file_names[f], file_suffixes[s]);
	atexit(tmp_cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
}

static const char *path_of(int f)
{
	return tmp_path[f][0];
}

static void tmp_remove(int f)
{
	for (size_t s = 0; s < NSUFFIXES; s++)
		if (unlink(tmp_path[f][s]) != 0 && errno != ENOENT)
			die("cannot remove '%s': %s", tmp_path[f][s], strerror(errno));
}

/*
 * Make file dst a byte copy of the closed database src, on disk (fsync'ed)
 * before it returns.
 */
static void tmp_copy(int src, int dst)
{
	static char buf[1 << 20];
	int in, out;
	ssize_t n;

	tmp_remove(dst);
	if ((in = open(path_of(src), O_RDONLY)) < 0)
		die("cannot open '%s': %s", path_of(src), strerror(errno));
	if ((out = open(path_of(dst), O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		die("cannot create '%s': %s", path_of(dst), strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0)
				die("cannot write '%s': %s", path_of(dst), strerror(errno));
			off += w;
		}
	if (n < 0)
		die("cannot read '%s': %s", path_of(src), strerror(errno));
	if (fsync(out) != 0 || close(out) != 0)
		die("cannot write '%s': %s", path_of(dst), strerror(errno));
	close(in);
}

/* ---------------------------------------------------------------- sqlite */

/* Step a DML statement once and reset it; it must change exactly one row. */
static void sql_step1(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		sql_die(db, "sqlite3_step");
	if (sqlite3_changes(db) != 1)
		die("sqlite: statement changed %d rows, expected 1", sqlite3_changes(db));
	if (sqlite3_reset(st) != SQLITE_OK)
		sql_die(db, "sqlite3_reset");
}

/* The settings every connection of every contender runs with. */
static void sql_settings(sqlite3 *db)
{
	sqlite3_stmt *st = sql_prepare(db, "PRAGMA journal_mode=WAL");

	if (sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		die("sqlite: cannot set journal_mode=WAL");
	sqlite3_finalize(st);
	sql_exec(db, "PRAGMA synchronous=NORMAL");
}

static sqlite3 *db_open(int f)
{
	sqlite3 *db;

	if (sqlite3_open_v2(path_of(f), &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
		die("sqlite3_open '%s': %s", path_of(f),
		    db ? sqlite3_errmsg(db) : "out of memory");
	sql_settings(db);
	return db;
}

static void db_close(sqlite3 *db)
{
	if (sqlite3_close(db) != SQLITE_OK)
		sql_die(db, "sqlite3_close");
}

/*
 * Open file f as a store, tracking bench if track (which logs an insert
 * for every row already there).
 */
static struct ws_store *store_open(int f, int track)
{
	static const char *const tables[] = {"bench"};
	struct ws_store *s;

	CK("ws_store_open", ws_store_open(&s, path_of(f), WSID, WS_STORE_CREATE, errbuf));
	sql_settings(ws_store_db(s));
	if (track)
		CK("ws_store_track", ws_store_track(s, tables, 1, errbuf));
	return s;
}

/* ------------------------------------------------------------ the table */

/*
 * bench(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL).  Column i of
 * a mask is bench_cols[i]; b points into text_pool.
 */
static const char *const bench_cols[] = {"id", "a", "b", "c", "owner"};
static const uint32_t bench_pk[1] = {0};
enum { C_ID, C_A, C_B, C_C, NCOLS, C_OWNER = NCOLS };

/*
 * The schemas a bench table is built with.  K_BENCH is the table above,
 * for figures 1-3.  Figure 4 adds a column owner, set on insert to
 * owner_of(id) and never changed, naming a row of a PARENT_ROWS-row
 * parent table: K_PLAIN with no constraint, K_CONSTRAINED with one of
 * each kind wsync keeps bookkeeping for (claims for the UNIQUE index,
 * prior values for every constrained table, the merge's ON DELETE
 * action).  The changes keep to the constraints: no value of c repeats,
 * a >= 0, b is never NULL, owner always names a parent.
 */
enum { K_BENCH, K_PLAIN, K_CONSTRAINED };

static const char *const kind_schema[] = {
	"CREATE TABLE bench(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)",
	"CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);"
	"CREATE TABLE bench(id INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL, "
	"owner INTEGER)",
	"CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);"
	"CREATE TABLE bench(id INTEGER PRIMARY KEY, a INTEGER CHECK (a >= 0), "
	"b TEXT NOT NULL, c REAL UNIQUE, "
	"owner INTEGER REFERENCES parent(id) ON DELETE CASCADE)",
};

static int64_t owner_of(int64_t id)
{
	return 1 + id % PARENT_ROWS;
}

/* Does file f hold a figure 4 table (with owner and parent)? */
static int has_owner(int f)
{
	return f == F_PBASE || f == F_PTBASE || f == F_KBASE || f == F_KTBASE;
}

static uint8_t text_pool[TEXT_POOL];

struct brow {
	int64_t a;
	double c;
	uint32_t boff;
	uint8_t blen;
	uint8_t alive;
};

/* One planned change: the row's id, and its whole new row. */
struct change {
	uint8_t op;     /* enum ws_op */
	uint8_t mask;   /* columns the change sets (bits C_A..C_C) */
	int64_t id;
	struct brow nw; /* the row after the change (insert, update) */
};

static void text_pool_init(void)
{
	rnd_seed(2);
	for (size_t i = 0; i < TEXT_POOL; i++)
		text_pool[i] = rnd_below(6) == 0 ? ' ' : (uint8_t)('a' + rnd_below(26));
}

static void gen_col(struct brow *r, int col)
{
	switch (col) {
	case C_A:
		r->a = (int64_t)rnd_below(1000000000);
		break;
	case C_B:
		r->blen = (uint8_t)(B_MIN + rnd_below(B_MAX - B_MIN + 1));
		r->boff = (uint32_t)rnd_below(TEXT_POOL - B_MAX);
		break;
	case C_C:
		r->c = (double)(rnd() >> 11) * 0x1.0p-53 * 1000.0;
		break;
	}
}

static int col_eq(const struct brow *x, const struct brow *y, int col)
{
	switch (col) {
	case C_A:
		return x->a == y->a;
	case C_B:
		return x->blen == y->blen &&
		    memcmp(text_pool + x->boff, text_pool + y->boff, x->blen) == 0;
	case C_C:
		return memcmp(&x->c, &y->c, sizeof x->c) == 0;
	}
	return 1;
}

/* Rows 1..n of a table; room for `extra` inserted rows after them. */
static struct brow *rows_init(size_t n, size_t extra, uint64_t seed)
{
	struct brow *rows = xmalloc((n + extra) * sizeof *rows);

	memset(rows, 0, (n + extra) * sizeof *rows);
	rnd_seed(seed);
	for (size_t i = 0; i < n; i++) {
		for (int col = C_A; col < NCOLS; col++)
			gen_col(&rows[i], col);
		rows[i].alive = 1;
	}
	return rows;
}

/*
 * Plan n changes against rows 1..nrows: 80% updates of one or two
 * columns (to values that differ), 10% inserts of new ids from nrows+1,
 * 10% deletes.  Every change has its own row id, so SQLite's session
 * records exactly these n changes.
 */
static void plan(const struct brow *rows, size_t nrows, size_t n, struct change *out)
{
	int32_t *perm = xmalloc(nrows * sizeof *perm);
	int64_t next_id = (int64_t)nrows + 1;
	size_t used = 0;

	for (size_t i = 0; i < nrows; i++)
		perm[i] = (int32_t)i + 1;
	for (size_t i = nrows - 1; i > 0; i--) {
		size_t j = rnd_below(i + 1);
		int32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (size_t k = 0; k < n; k++) {
		struct change *c = &out[k];
		unsigned r = (unsigned)rnd_below(100);

		memset(c, 0, sizeof *c);
		c->op = r < 80 ? WS_OP_UPDATE : r < 90 ? WS_OP_INSERT : WS_OP_DELETE;
		if (c->op != WS_OP_INSERT && used == nrows)
			c->op = WS_OP_INSERT;
		if (c->op == WS_OP_INSERT) {
			c->id = next_id++;
			c->mask = 1u << C_A | 1u << C_B | 1u << C_C;
			for (int col = C_A; col < NCOLS; col++)
				gen_col(&c->nw, col);
			c->nw.alive = 1;
			continue;
		}
		c->id = perm[used++];
		if (c->op == WS_OP_DELETE)
			continue;
		c->nw = rows[c->id - 1];
		int x = (int)rnd_below(3); /* one column, maybe one more */

		c->mask = (uint8_t)(1u << (C_A + x));
		if (rnd_below(2))
			c->mask |= (uint8_t)(1u << (C_A + (x + 1 + (int)rnd_below(2)) % 3));
		for (int col = C_A; col < NCOLS; col++)
			if (c->mask & (1u << col))
				do
					gen_col(&c->nw, col);
				while (col_eq(&c->nw, &rows[c->id - 1], col));
	}
	free(perm);
}

/* Apply the planned changes to the in-memory model of the table. */
static void model_apply(struct brow *rows, const struct change *ch, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (ch[k].op == WS_OP_DELETE)
			rows[ch[k].id - 1].alive = 0;
		else
			rows[ch[k].id - 1] = ch[k].nw;
}

/* FNV-1a over the bytes of one row, as both digests see it. */
static uint64_t fold(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

static uint64_t fold_row(uint64_t h, int64_t id, int64_t a, const void *b,
    uint32_t blen, double c)
{
	h = fold(h, &id, sizeof id);
	h = fold(h, &a, sizeof a);
	h = fold(h, &blen, sizeof blen);
	h = fold(h, b, blen);
	return fold(h, &c, sizeof c);
}

static uint64_t model_digest(const struct brow *rows, size_t n)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);

	for (size_t i = 0; i < n; i++)
		if (rows[i].alive)
			h = fold_row(h, (int64_t)i + 1, rows[i].a, text_pool + rows[i].boff,
			    rows[i].blen, rows[i].c);
	return h;
}

/* Digest of the table's rows in id order; they must have the right types. */
static uint64_t db_digest(sqlite3 *db)
{
	sqlite3_stmt *st = sql_prepare(db, "SELECT id, a, b, c FROM bench ORDER BY id");
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, 1) != SQLITE_INTEGER ||
		    sqlite3_column_type(st, 2) != SQLITE_TEXT ||
		    sqlite3_column_type(st, 3) != SQLITE_FLOAT)
			die("bench row %lld has values of the wrong types",
			    (long long)sqlite3_column_int64(st, 0));
		h = fold_row(h, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
		    sqlite3_column_text(st, 2), (uint32_t)sqlite3_column_bytes(st, 2),
		    sqlite3_column_double(st, 3));
	}
	if (rc != SQLITE_DONE)
		sql_die(db, "digest");
	sqlite3_finalize(st);
	return h;
}

static void bind_row(sqlite3 *db, sqlite3_stmt *st, int i, const struct brow *r, int col)
{
	int rc = SQLITE_MISUSE;

	switch (col) {
	case C_A:
		rc = sqlite3_bind_int64(st, i, r->a);
		break;
	case C_B:
		rc = sqlite3_bind_text(st, i, (const char *)text_pool + r->boff, r->blen,
		    SQLITE_STATIC);
		break;
	case C_C:
		rc = sqlite3_bind_double(st, i, r->c);
		break;
	}
	if (rc != SQLITE_OK)
		sql_die(db, "sqlite3_bind");
}

/*
 * Write rows 1..n into a new database file f with the schema of `kind`
 * (with the parent rows and each row's owner, for figure 4), then close
 * it.
 */
static void db_build(int f, const struct brow *rows, size_t n, int kind)
{
	sqlite3 *db;
	sqlite3_stmt *st;

	tmp_remove(f);
	db = db_open(f);
	sql_exec(db, kind_schema[kind]);
	sql_exec(db, "BEGIN");
	if (kind != K_BENCH) {
		st = sql_prepare(db, "INSERT INTO parent VALUES(?1, 'parent ' || ?1)");
		for (int64_t id = 1; id <= PARENT_ROWS; id++) {
			sqlite3_bind_int64(st, 1, id);
			sql_step1(db, st);
		}
		sqlite3_finalize(st);
	}
	st = sql_prepare(db, kind == K_BENCH ? "INSERT INTO bench VALUES(?1, ?2, ?3, ?4)" :
	    "INSERT INTO bench VALUES(?1, ?2, ?3, ?4, ?5)");
	for (size_t i = 0; i < n; i++) {
		if (sqlite3_bind_int64(st, 1, (int64_t)i + 1) != SQLITE_OK ||
		    (kind != K_BENCH && sqlite3_bind_int64(st, C_OWNER + 1,
		    owner_of((int64_t)i + 1)) != SQLITE_OK))
			sql_die(db, "sqlite3_bind");
		for (int col = C_A; col < NCOLS; col++)
			bind_row(db, st, col + 1, &rows[i], col);
		sql_step1(db, st);
	}
	sqlite3_finalize(st);
	sql_exec(db, "COMMIT");
	db_close(db);
}

/* Plain SQL apply modes. */
enum { PLAIN_REPLACE, PLAIN_UPDATE };

/*
 * Apply the planned changes with prepared statements in one transaction:
 * deletes with DELETE, inserts with INSERT OR REPLACE, and updates either
 * the same way with the whole new row (PLAIN_REPLACE) or with an UPDATE
 * of only the changed columns (PLAIN_UPDATE).  With owner, the table is
 * figure 4's, and an inserted row gets its owner.
 */
static void plain_apply(sqlite3 *db, const struct change *ch, size_t n, int mode,
    int owner)
{
	sqlite3_stmt *ins, *del, *upd[1u << NCOLS] = {NULL};

	ins = sql_prepare(db, owner ? "INSERT OR REPLACE INTO bench(id, a, b, c, owner) "
	    "VALUES(?1, ?2, ?3, ?4, ?5)" : "INSERT OR REPLACE INTO bench(id, a, b, c) "
	    "VALUES(?1, ?2, ?3, ?4)");
	del = sql_prepare(db, "DELETE FROM bench WHERE id = ?1");
	sql_exec(db, "BEGIN");
	for (size_t k = 0; k < n; k++) {
		const struct change *c = &ch[k];
		sqlite3_stmt *st;
		int i = 1;

		if (c->op == WS_OP_DELETE) {
			sqlite3_bind_int64(del, 1, c->id);
			sql_step1(db, del);
			continue;
		}
		if (c->op == WS_OP_INSERT || mode == PLAIN_REPLACE) {
			sqlite3_bind_int64(ins, 1, c->id);
			if (owner)
				sqlite3_bind_int64(ins, C_OWNER + 1, owner_of(c->id));
			for (int col = C_A; col < NCOLS; col++)
				bind_row(db, ins, col + 1, &c->nw, col);
			sql_step1(db, ins);
			continue;
		}
		if ((st = upd[c->mask]) == NULL) {
			char sql[128];
			size_t len = (size_t)snprintf(sql, sizeof sql, "UPDATE bench SET ");
			int p = 1;

			for (int col = C_A; col < NCOLS; col++)
				if (c->mask & (1u << col)) {
					len += (size_t)snprintf(sql + len, sizeof sql - len,
					    "%s%s = ?%d", p > 1 ? ", " : "", bench_cols[col], p);
					p++;
				}
			snprintf(sql + len, sizeof sql - len, " WHERE id = ?%d", p);
			st = upd[c->mask] = sql_prepare(db, sql);
		}
		for (int col = C_A; col < NCOLS; col++)
			if (c->mask & (1u << col))
				bind_row(db, st, i++, &c->nw, col);
		sqlite3_bind_int64(st, i, c->id);
		sql_step1(db, st);
	}
	sql_exec(db, "COMMIT");
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	for (size_t m = 0; m < sizeof upd / sizeof upd[0]; m++)
		sqlite3_finalize(upd[m]);
}

/*
 * The planned changes as one batch from `site` with dot (site, counter)
 * and context {site:counter}, plus {local:1} when local is not NULL; for
 * figure 4's table (with owner), inserts set owner too.
 */
static void build_batch_at(struct ws_batch *b, const struct change *ch, size_t n,
    const struct ws_siteid *site, const struct ws_siteid *local, uint64_t counter,
    int owner)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	uint32_t t, s;

	ws_batch_init(b);
	CK("ws_vclock_set", ws_vclock_set(&clock, site, counter));
	if (local)
		CK("ws_vclock_set", ws_vclock_set(&clock, local, 1));
	CK("ws_batch_set_clock", ws_batch_set_clock(b, &clock));
	CK("ws_batch_set_dot", ws_batch_set_dot(b, site, counter));
	CK("ws_batch_add_table", ws_batch_add_table(b, "bench", owner ? NCOLS + 1 :
	    NCOLS, bench_cols, 1, bench_pk, &t, errbuf));
	for (size_t k = 0; k < n; k++) {
		struct ws_value pk = {.type = WS_INTEGER, .i = ch[k].id};
		struct ws_value vals[NCOLS + 1];
		struct ws_change c;
		uint32_t nv = 0;
		uint8_t mask = ch[k].mask;

		for (int col = C_A; col < NCOLS; col++) {
			struct ws_value *v = &vals[nv];

			if (!(ch[k].mask & (1u << col)))
				continue;
			memset(v, 0, sizeof *v);
			switch (col) {
			case C_A:
				v->type = WS_INTEGER;
				v->i = ch[k].nw.a;
				break;
			case C_B:
				v->type = WS_TEXT;
				v->p = text_pool + ch[k].nw.boff;
				v->n = ch[k].nw.blen;
				break;
			case C_C:
				v->type = WS_REAL;
				v->r = ch[k].nw.c;
				break;
			}
			nv++;
		}
		if (owner && ch[k].op == WS_OP_INSERT) {
			memset(&vals[nv], 0, sizeof vals[nv]);
			vals[nv].type = WS_INTEGER;
			vals[nv++].i = owner_of(ch[k].id);
			mask |= 1u << C_OWNER;
		}
		CK("ws_batch_site", ws_batch_site(b, site, &s));
		memset(&c, 0, sizeof c);
		c.table = t;
		c.op = ch[k].op;
		c.site = s;
		c.counter = counter;
		c.pk = &pk;
		c.mask = ch[k].op == WS_OP_DELETE ? NULL : &mask;
		c.vals = vals;
		c.nvals = nv;
		CK("ws_batch_add_change", ws_batch_add_change(b, &c, errbuf));
	}
	ws_vclock_release(&clock);
}

static void build_batch(struct ws_batch *b, const struct change *ch, size_t n,
    const struct ws_siteid *site, const struct ws_siteid *local)
{
	build_batch_at(b, ch, n, site, local, 1, 0);
}

/* ---------------------------------------------------------------- output */

struct figure {
	double med, min, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static struct figure summary(const double v[REPS])
{
	double s[REPS];
	struct figure f;

	memcpy(s, v, sizeof s);
	qsort(s, REPS, sizeof s[0], cmp_double);
	f.med = s[REPS / 2];
	f.min = s[0];
	f.max = s[REPS - 1];
	return f;
}

/* Per-repetition ratios num[i] / den[i], summarised. */
static struct figure ratio(const double num[REPS], const double den[REPS])
{
	double r[REPS];

	for (int i = 0; i < REPS; i++)
		r[i] = num[i] / den[i];
	return summary(r);
}

/*
 * One line: a name, median-min-max with prec decimals (or one value, when
 * single), a unit, and a goal with "met" or "MISSED" (goal may be NULL).
 */
static void row(const char *name, struct figure f, int single, int prec,
    const char *unit, const char *goal, int met)
{
	if (single)
		printf("  %-40s %10.*f %10s %10s  ", name, prec, f.med, "-", "-");
	else
		printf("  %-40s %10.*f %10.*f %10.*f  ", name, prec, f.med, prec,
		    f.min, prec, f.max);
	if (goal)
		printf("%-7s %-7s %s\n", unit, goal, met ? "met" : "MISSED");
	else
		printf("%s\n", unit);
	fflush(stdout);
}

/* --------------------------------------------------- figure 1: apply */

struct apply_ctx {
	const struct change *ch;
	size_t n;
	struct ws_batch batch;      /* context {remote:1}, for F_TBASE */
	struct ws_batch hbatch;     /* context {remote:1, local:1}, for F_HBASE */
	void *cset;                 /* the session's changeset */
	int ncset;
	uint64_t want;              /* digest of the expected table */
	size_t conflicts;           /* seen by the changeset conflict handler */
};

/* Verify the table in db, once per contender. */
static void check_digest(sqlite3 *db, const struct apply_ctx *c, const char *who)
{
	if (db_digest(db) != c->want)
		die("%s: the table differs from the expected rows after the apply", who);
}

/* In figure 4's table, every row's owner must be owner_of(id). */
static void check_owner(sqlite3 *db, const char *who)
{
	char sql[128];

	snprintf(sql, sizeof sql, "SELECT count(*) FROM bench WHERE owner IS NOT "
	    "1 + id %% %d", PARENT_ROWS);
	if (sql_int(db, sql) != 0)
		die("%s: rows with the wrong owner after the apply", who);
}

/*
 * The bookkeeping rows the last verified apply into a figure 4 table
 * added: UNIQUE claims and prior values.
 */
static int64_t kept_claims, kept_prior;

/* Apply batch b into a copy of the tracked base file `from`. */
static double run_wsync(struct apply_ctx *c, int from, const struct ws_batch *b,
    int verify)
{
	struct ws_store *s;
	double t0, t;
	int applied;
	size_t pending;
	int64_t logged = 0;

	tmp_copy(from, F_RUN);
	s = store_open(F_RUN, 0);
	if (verify) {
		logged = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_log");
		kept_claims = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_claims");
		kept_prior = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_prior");
	}
	t0 = now();
	CK("ws_store_apply", ws_store_apply(s, b, &applied, errbuf));
	t = now() - t0;
	CK("ws_store_pending", ws_store_pending(s, &pending, errbuf));
	if (!applied || pending != 0)
		die("ws_store_apply: batch not applied (applied %d, %zu pending)",
		    applied, pending);
	if (verify) {
		logged = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_log") -
		    logged;
		if (logged != (int64_t)c->n)
			die("ws_store_apply: %lld log entries for %zu changes",
			    (long long)logged, c->n);
		if (sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_conflicts") != 0)
			die("ws_store_apply: conflicts from changes that saw every "
			    "version");
		check_digest(ws_store_db(s), c, "ws_store_apply");
		if (has_owner(from))
			check_owner(ws_store_db(s), "ws_store_apply");
		kept_claims = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_claims") -
		    kept_claims;
		kept_prior = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_prior") -
		    kept_prior;
	}
	ws_store_close(s);
	tmp_remove(F_RUN);
	return t;
}

/*
 * The prepared-statement loop into a copy of the untracked base `from`
 * (for figure 4's, with foreign_keys on, as the merge has it there).
 */
static double run_plain(struct apply_ctx *c, int from, int mode, int verify)
{
	const char *who = mode == PLAIN_REPLACE ? "INSERT OR REPLACE loop" :
	    "UPDATE loop";
	sqlite3 *db;
	double t0, t;

	tmp_copy(from, F_RUN);
	db = db_open(F_RUN);
	if (has_owner(from))
		sql_exec(db, "PRAGMA foreign_keys = ON");
	t0 = now();
	plain_apply(db, c->ch, c->n, mode, has_owner(from));
	t = now() - t0;
	if (verify) {
		check_digest(db, c, who);
		if (has_owner(from))
			check_owner(db, who);
	}
	db_close(db);
	tmp_remove(F_RUN);
	return t;
}

/* A row already there or missing: take the changeset's version. */
static int cset_conflict(void *ctx, int type, sqlite3_changeset_iter *it)
{
	struct apply_ctx *c = ctx;

	(void)it;
	c->conflicts++;
	switch (type) {
	case SQLITE_CHANGESET_DATA:
	case SQLITE_CHANGESET_CONFLICT:
		return SQLITE_CHANGESET_REPLACE;
	case SQLITE_CHANGESET_NOTFOUND:
		return SQLITE_CHANGESET_OMIT;
	default:
		return SQLITE_CHANGESET_ABORT;
	}
}

static double run_session(struct apply_ctx *c, int verify)
{
	sqlite3 *db;
	double t0, t;
	int rc;

	tmp_copy(F_BASE, F_RUN);
	db = db_open(F_RUN);
	t0 = now();
	rc = sqlite3changeset_apply(db, c->ncset, c->cset, NULL, cset_conflict, c);
	t = now() - t0;
	if (rc != SQLITE_OK)
		sql_die(db, "sqlite3changeset_apply");
	if (verify)
		check_digest(db, c, "sqlite3changeset_apply");
	db_close(db);
	tmp_remove(F_RUN);
	return t;
}

/*
 * Record the changeset of the planned changes on a scratch copy, which
 * is kept (F_SCRATCH) as the expected result for sqldiff.
 */
static void record_changeset(struct apply_ctx *c)
{
	sqlite3 *db;
	sqlite3_session *sess;
	sqlite3_changeset_iter *it;
	size_t count = 0;
	int rc;

	tmp_copy(F_BASE, F_SCRATCH);
	db = db_open(F_SCRATCH);
	if (sqlite3session_create(db, "main", &sess) != SQLITE_OK)
		sql_die(db, "sqlite3session_create");
	if (sqlite3session_attach(sess, "bench") != SQLITE_OK)
		sql_die(db, "sqlite3session_attach");
	plain_apply(db, c->ch, c->n, PLAIN_UPDATE, 0);
	if (sqlite3session_changeset(sess, &c->ncset, &c->cset) != SQLITE_OK)
		sql_die(db, "sqlite3session_changeset");
	sqlite3session_delete(sess);
	db_close(db);
	if (sqlite3changeset_start(&it, c->ncset, c->cset) != SQLITE_OK)
		die("sqlite3changeset_start failed");
	while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW)
		count++;
	if (rc != SQLITE_DONE || sqlite3changeset_finalize(it) != SQLITE_OK)
		die("sqlite3changeset_next: error %d", rc);
	if (count != c->n)
		die("session recorded %zu changes, expected %zu", count, c->n);
}

/*
 * Run argv (found on PATH) with stdin from the file `in` and stdout to the
 * file `out` (either NULL: /dev/null), stderr inherited; die unless it
 * exits 0.
 */
static void run_prog(char *const argv[], const char *in, const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rc;

	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 0, in ? in : "/dev/null", O_RDONLY,
	    0) != 0 ||
	    posix_spawn_file_actions_addopen(&fa, 1, out ? out : "/dev/null",
	    O_WRONLY | O_CREAT | O_TRUNC, 0600) != 0)
		die("posix_spawn_file_actions: out of memory");
	if ((rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ)) != 0)
		die("cannot run %s: %s", argv[0], strerror(rc));
	posix_spawn_file_actions_destroy(&fa);
	if (waitpid(pid, &st, 0) != pid)
		die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s %s failed (wait status %#x)", argv[0], argv[1], st);
}

/*
 * sqldiff --transaction of the base and the expected result, into
 * F_DIFF: the SQL text that turns one into the other.  Its time.
 */
static double make_sqldiff(void)
{
	char *argv[] = {"sqldiff", "--transaction", (char *)path_of(F_BASE),
	    (char *)path_of(F_SCRATCH), NULL};
	double t0 = now();

	run_prog(argv, NULL, path_of(F_DIFF));
	return now() - t0;
}

/*
 * Check the table of db against the expected result F_SCRATCH, allowing
 * for sqldiff's SQL text, which writes REALs with 15 significant digits
 * (so c may differ in its last bits); the number of rows whose c is not
 * bit-exact goes to *inexact.
 */
static int64_t sqldiff_rows; /* rows of the expected table */

static void check_sqldiff(sqlite3 *db, int64_t *inexact)
{
	char sql[PATHLEN_SQL];
	sqlite3_stmt *st;

	snprintf(sql, sizeof sql, "ATTACH '%s' AS want", path_of(F_SCRATCH));
	sql_exec(db, sql);
	st = sql_prepare(db, "SELECT (SELECT count(*) FROM main.bench), "
	    "(SELECT count(*) FROM want.bench), (SELECT count(*) FROM main.bench x "
	    "JOIN want.bench y USING(id) WHERE x.a IS y.a AND x.b IS y.b AND "
	    "typeof(x.c) = 'real' AND abs(x.c - y.c) <= 1e-9), (SELECT count(*) FROM "
	    "main.bench x JOIN want.bench y USING(id) WHERE x.c IS NOT y.c)");
	if (sqlite3_step(st) != SQLITE_ROW)
		sql_die(db, "check sqldiff");
	if (sqlite3_column_int64(st, 0) != sqlite3_column_int64(st, 1) ||
	    sqlite3_column_int64(st, 2) != sqlite3_column_int64(st, 1))
		die("sqlite3 < sqldiff SQL: %lld rows, %lld as expected, of %lld",
		    (long long)sqlite3_column_int64(st, 0),
		    (long long)sqlite3_column_int64(st, 2),
		    (long long)sqlite3_column_int64(st, 1));
	*inexact = sqlite3_column_int64(st, 3);
	sqldiff_rows = sqlite3_column_int64(st, 1);
	sqlite3_finalize(st);
	sql_exec(db, "DETACH want");
}

/*
 * The sqlite3 shell reading F_DIFF into a fresh copy of the untracked
 * base, with the same synchronous=NORMAL (the copy is WAL already): wall
 * time of the process, from spawn to exit.
 */
static double run_sqldiff(int verify, int64_t *inexact)
{
	char *argv[] = {"sqlite3", "-bail", "-cmd", "PRAGMA synchronous=NORMAL",
	    (char *)path_of(F_RUN), NULL};
	sqlite3 *db;
	double t0, t;

	tmp_copy(F_BASE, F_RUN);
	t0 = now();
	run_prog(argv, path_of(F_DIFF), NULL);
	t = now() - t0;
	if (verify) {
		db = db_open(F_RUN);
		check_sqldiff(db, inexact);
		db_close(db);
	}
	tmp_remove(F_RUN);
	return t;
}

/*
 * The tracked base files, made once from F_BASE: F_HBASE is tracked and
 * sealed, so each row has the log entry of its first insert, batch
 * (local, 1); F_TBASE is that after ws_store_gc() with the store's own
 * clock and a VACUUM, the state of a store whose history is collected.
 * Prints the one-off times of tracking, sealing and collecting.
 */
static void make_tracked_bases(struct ws_siteid *local)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_store *s;
	struct figure f = {0, 0, 0};
	uint64_t dropped;
	double t0;
	int sealed;

	tmp_copy(F_BASE, F_HBASE);
	s = store_open(F_HBASE, 0);
	t0 = now();
	CK("ws_store_track", ws_store_track(s, (const char *const[]){"bench"}, 1,
	    errbuf));
	f.med = now() - t0;
	row("ws_store_track of the 1M rows", f, 1, 3, "s", NULL, 0);
	t0 = now();
	CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
	f.med = now() - t0;
	row("ws_store_seal of their 1M inserts", f, 1, 3, "s", NULL, 0);
	if (!sealed)
		die("ws_store_seal: tracking logged nothing to seal");
	*local = *ws_store_site(s);
	ws_store_close(s);

	tmp_copy(F_HBASE, F_TBASE);
	s = store_open(F_TBASE, 0);
	CK("ws_store_clock", ws_store_clock(s, &clock, errbuf));
	t0 = now();
	CK("ws_store_gc", ws_store_gc(s, &clock, &dropped, errbuf));
	f.med = now() - t0;
	row("ws_store_gc of those 1M log entries", f, 1, 3, "s", NULL, 0);
	if (dropped + 1 < BASE_ROWS)
		die("ws_store_gc: dropped %" PRIu64 " of %d log entries", dropped,
		    BASE_ROWS);
	sql_exec(ws_store_db(s), "VACUUM");
	ws_store_close(s);
	ws_vclock_release(&clock);
}

/*
 * How long a site holds the database's write lock for one applied batch
 * of one change (ws_store_apply() is one IMMEDIATE transaction, and its
 * time is the lock's): an application writing meanwhile waits that long,
 * given a busy timeout.  LOCK_BATCHES batches in a row on one copy.
 */
#define LOCK_BATCHES 2000

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void bench_lock_hold(const struct change *ch)
{
	double *t = xmalloc(LOCK_BATCHES * sizeof *t);
	struct ws_siteid site;
	struct ws_store *s;
	struct ws_batch b;
	struct figure f;
	int applied;

	for (size_t i = 0; i < sizeof site.b; i++)
		site.b[i] = (uint8_t)(rnd() >> 56);
	tmp_copy(F_TBASE, F_RUN);
	s = store_open(F_RUN, 0);
	for (int k = 0; k < LOCK_BATCHES; k++) {
		double t0;

		build_batch_at(&b, &ch[k], 1, &site, NULL, (uint64_t)k + 1, 0);
		t0 = now();
		CK("ws_store_apply", ws_store_apply(s, &b, &applied, errbuf));
		t[k] = (now() - t0) * 1e3;
		if (!applied)
			die("ws_store_apply: batch %d not applied", k + 1);
		ws_batch_release(&b);
	}
	ws_store_close(s);
	tmp_remove(F_RUN);
	qsort(t, LOCK_BATCHES, sizeof *t, cmp_dbl);
	printf("\nB2. the write lock a site holds per applied batch of one change:\n"
	    "   %d batches (dots 1, 2, ...) applied in a row into the tracked base\n"
	    "   after GC, each ws_store_apply() (one IMMEDIATE transaction) timed\n",
	    LOCK_BATCHES);
	f.med = t[LOCK_BATCHES / 2];
	f.min = t[0];
	f.max = t[LOCK_BATCHES - 1];
	row("write lock held, median (min, max)", f, 0, 3, "ms", NULL, 0);
	summary_add("B2", "write lock held per applied 1-change batch: median", f.med,
	    f.min, f.max, 3, "ms", NULL, 0);
	f.med = t[LOCK_BATCHES * 99 / 100];
	row("write lock held, p99", f, 1, 3, "ms", NULL, 0);
	summary_add("B2", "write lock held per applied 1-change batch: p99", f.med,
	    NAN, NAN, 3, "ms", NULL, 0);
	free(t);
}

/*
 * Figure 4's base files, made once from the first SCHEMA_ROWS rows of
 * figure 1: F_PBASE (K_PLAIN) and F_KBASE (K_CONSTRAINED), untracked, and F_PTBASE and
 * F_KTBASE, those with parent and bench tracked, sealed, collected with
 * the store's own clock and VACUUMed, as F_TBASE is.  Prints the time
 * each took.
 */
static void make_schema_bases(const struct brow *base)
{
	static const char *const tables[] = {"parent", "bench"};
	static const char *const what[] = {"plain: build, track, seal, GC",
	    "constrained: build, track, seal, GC"};
	const int untracked[] = {F_PBASE, F_KBASE}, tracked[] = {F_PTBASE, F_KTBASE};
	struct figure f = {0, 0, 0};

	for (int k = 0; k < 2; k++) {
		struct ws_vclock clock = WS_VCLOCK_INIT;
		struct ws_store *s;
		uint64_t dropped;
		double t0 = now();
		int sealed;

		db_build(untracked[k], base, SCHEMA_ROWS, k ? K_CONSTRAINED : K_PLAIN);
		tmp_copy(untracked[k], tracked[k]);
		s = store_open(tracked[k], 0);
		CK("ws_store_track", ws_store_track(s, tables, 2, errbuf));
		CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
		if (!sealed)
			die("ws_store_seal: tracking logged nothing to seal");
		CK("ws_store_clock", ws_store_clock(s, &clock, errbuf));
		CK("ws_store_gc", ws_store_gc(s, &clock, &dropped, errbuf));
		if (dropped < SCHEMA_ROWS)
			die("ws_store_gc: dropped %" PRIu64 " of %d log entries", dropped,
			    SCHEMA_ROWS + PARENT_ROWS);
		sql_exec(ws_store_db(s), "VACUUM");
		ws_store_close(s);
		ws_vclock_release(&clock);
		f.med = now() - t0;
		row(what[k], f, 1, 3, "s", NULL, 0);
	}
}

/*
 * Plan n changes against the first nrows rows of base (seed: the
 * generator's) into ch (room for n), for c, with the digest of the rows
 * they must leave.
 */
static void plan_checked(struct apply_ctx *c, struct change *ch, unsigned seed,
    const struct brow *base, size_t nrows, size_t n)
{
	struct brow *model = xmalloc((nrows + n) * sizeof *model);

	rnd_seed(seed);
	plan(base, nrows, n, ch);
	memcpy(model, base, nrows * sizeof *model);
	memset(model + nrows, 0, n * sizeof *model);
	model_apply(model, ch, n);
	c->ch = ch;
	c->n = n;
	c->want = model_digest(model, nrows + n);
	free(model);
}

/*
 * B2c: the apply of figure 1 at 1/SCHEMA_SCALE (changes planned alike
 * against the first SCHEMA_ROWS rows), on figure 4's plain and
 * constrained tables, tracked, and the loop (b') on untracked copies of
 * both for SQLite's own cost of the constraints.
 */
static void bench_apply_schema(const struct brow *base, const struct ws_siteid *site)
{
	static struct apply_ctx c;
	struct change *ch = xmalloc(SCHEMA_CHANGES * sizeof *ch);
	double wp[REPS], wk[REPS], lp[REPS], lk[REPS], net[REPS];
	int64_t claims = 0, prior = 0;
	struct ws_batch b;
	struct figure f;
	char goal[16], what[96];

	plan_checked(&c, ch, 14, base, SCHEMA_ROWS, SCHEMA_CHANGES);

	printf("\nB2c. the cost of a constrained schema to the apply, B2 at 1/%d:\n"
	    "   %d changes (the same mix, inserts setting owner too) into %d rows\n"
	    "   (the first of B2's), in bench(id, a, b, c, owner) beside a %d-row\n"
	    "   parent, both tracked and collected as for (a): \"plain\" without\n"
	    "   constraints, \"constrained\" with a INTEGER CHECK (a >= 0),\n"
	    "   b TEXT NOT NULL, c REAL UNIQUE, owner INTEGER REFERENCES parent(id)\n"
	    "   ON DELETE CASCADE (owner = 1 + id %% %d; no change breaks a\n"
	    "   constraint).  (b') the loop above, into untracked copies of both\n"
	    "   with foreign_keys on (as merges have it for the constrained table):\n"
	    "   SQLite's own cost of the constraints.  wsync less SQLite's own =\n"
	    "   (wsync constrained - ((b') constrained - (b') plain)) / wsync plain.\n"
	    "   Bases made once, untimed (B2 is 1M rows: not tracked here, see\n"
	    "   notes.md):\n", SCHEMA_SCALE, SCHEMA_CHANGES, SCHEMA_ROWS, PARENT_ROWS,
	    PARENT_ROWS);
	make_schema_bases(base);
	build_batch_at(&b, ch, SCHEMA_CHANGES, site, NULL, 1, 1);
	for (int i = 0; i < REPS; i++) {
		wp[i] = run_wsync(&c, F_PTBASE, &b, i == 0);
		if (i == 0 && (kept_claims != 0 || kept_prior != 0))
			die("ws_store_apply: bookkeeping of constraints on the plain table");
		wk[i] = run_wsync(&c, F_KTBASE, &b, i == 0);
		if (i == 0 && kept_claims == 0)
			die("ws_store_apply: no claims for the constrained table's changes");
		if (i == 0) {
			claims = kept_claims;
			prior = kept_prior;
		}
		lp[i] = run_plain(&c, F_PBASE, PLAIN_UPDATE, i == 0);
		lk[i] = run_plain(&c, F_KBASE, PLAIN_UPDATE, i == 0);
		net[i] = (wk[i] - (lk[i] - lp[i])) / wp[i];
	}
	printf("   (the constrained apply kept %lld UNIQUE claims and %lld prior values)\n",
	    (long long)claims, (long long)prior);
	row("(a) wsync, plain", summary(wp), 0, 3, "s", NULL, 0);
	row("(a) wsync, constrained", summary(wk), 0, 3, "s", NULL, 0);
	row("(b') loop, plain, untracked", summary(lp), 0, 3, "s", NULL, 0);
	row("(b') loop, constrained, untracked", summary(lk), 0, 3, "s", NULL, 0);
	f = ratio(wk, wp);
	snprintf(goal, sizeof goal, "<= %.2f", GOAL_SCHEMA);
	row("time wsync constrained / plain", f, 0, 2, "x", goal, f.med <= GOAL_SCHEMA);
	snprintf(what, sizeof what, "apply, B2 at 1/%d (%dk into %dk rows): time, "
	    "constrained schema / plain", SCHEMA_SCALE, SCHEMA_CHANGES / 1000,
	    SCHEMA_ROWS / 1000);
	summary_add("B2", what, f.med, f.min, f.max, 2, "x", goal, f.med <= GOAL_SCHEMA);
	row("time (b') constrained / plain", ratio(lk, lp), 0, 2, "x", NULL, 0);
	row("wsync less SQLite's own / plain", summary(net), 0, 2, "x", NULL, 0);
	ws_batch_release(&b);
	free(ch);
}

static void bench_apply(const struct brow *base)
{
	static struct apply_ctx c;
	struct change *ch = xmalloc(APPLY_CHANGES * sizeof *ch);
	struct ws_buf enc = WS_BUF_INIT;
	struct ws_siteid site, local;
	double ta[REPS], th[REPS], tb[REPS], tu[REPS], tc[REPS], td[REPS], tdiff;
	int64_t inexact = 0;
	struct stat sb;
	struct figure f;
	char goal[16];

	plan_checked(&c, ch, 11, base, BASE_ROWS, APPLY_CHANGES);

	printf("\n0. setup, once (not timed below): track the %d-row table, which\n"
	    "   logs every row as an insert, seal, then GC with the store's clock\n",
	    BASE_ROWS);
	make_tracked_bases(&local);
	for (size_t i = 0; i < sizeof site.b; i++)
		site.b[i] = (uint8_t)(rnd() >> 56);
	build_batch(&c.batch, ch, APPLY_CHANGES, &site, NULL);
	build_batch(&c.hbatch, ch, APPLY_CHANGES, &site, &local);
	CK("ws_batch_encode", ws_batch_encode(&c.batch, &enc));
	record_changeset(&c);
	tdiff = make_sqldiff();
	if (stat(path_of(F_DIFF), &sb) != 0)
		die("cannot stat '%s': %s", path_of(F_DIFF), strerror(errno));

	printf("\nB2. apply %d remote changes into %d rows: 80%% updates of 1-2\n"
	    "   columns, 10%% inserts, 10%% deletes, distinct rows; wsync batch "
	    "%zu B,\n   changeset %d B, sqldiff SQL %lld B (sqldiff took %.2f s, "
	    "untimed).\n   Time of the apply call with its commit, "
	    "on a fresh copy each run.\n   (a) the batch, dot (remote,1) and "
	    "context {remote:1},\n   into the tracked base after GC; (a') context "
	    "{remote:1, local:1} into\n   the tracked base before GC, where each "
	    "row's insert is still logged;\n   (b), (b'), (c) into the untracked "
	    "base; (d) the sqlite3 shell process\n   reading sqldiff --transaction's "
	    "SQL on stdin into the untracked base.\n   Speed = baseline time / "
	    "wsync time: above 1 wsync is faster\n", APPLY_CHANGES, BASE_ROWS,
	    enc.len, c.ncset, (long long)sb.st_size, tdiff);
	ws_buf_release(&enc);
	for (int i = 0; i < REPS; i++) {
		ta[i] = run_wsync(&c, F_TBASE, &c.batch, i == 0);
		th[i] = run_wsync(&c, F_HBASE, &c.hbatch, i == 0);
		tb[i] = run_plain(&c, F_BASE, PLAIN_REPLACE, i == 0);
		tu[i] = run_plain(&c, F_BASE, PLAIN_UPDATE, i == 0);
		c.conflicts = 0;
		tc[i] = run_session(&c, i == 0);
		if (c.conflicts != 0)
			die("sqlite3changeset_apply: %zu conflicts on a copy of the "
			    "recorded base", c.conflicts);
		td[i] = run_sqldiff(i == 0, &inexact);
	}
	row("(a) wsync ws_store_apply", summary(ta), 0, 3, "s", NULL, 0);
	row("(a') wsync, history not collected", summary(th), 0, 3, "s", NULL, 0);
	row("(b) INSERT OR REPLACE + DELETE loop", summary(tb), 0, 3, "s", NULL, 0);
	row("(b') UPDATE changed cols, INSERT, DELETE", summary(tu), 0, 3, "s", NULL, 0);
	row("(c) sqlite3changeset_apply", summary(tc), 0, 3, "s", NULL, 0);
	row("(d) sqlite3 db < sqldiff.sql", summary(td), 0, 3, "s", NULL, 0);
	f = ratio(tb, ta);
	snprintf(goal, sizeof goal, ">= %.1f", GOAL_VS_PLAIN);
	row("speed wsync / (b)", f, 0, 2, "x", goal, f.med >= GOAL_VS_PLAIN);
	row("speed wsync / (b')", ratio(tu, ta), 0, 2, "x", NULL, 0);
	f = ratio(tc, ta);
	snprintf(goal, sizeof goal, ">= %.1f", GOAL_VS_SESSION);
	row("speed wsync / (c)", f, 0, 2, "x", goal, f.med >= GOAL_VS_SESSION);
	summary_add("B2", "apply 100k changes into 1M rows: speed vs "
	    "sqlite3changeset_apply (its time / wsync's)", f.med, f.min, f.max, 2, "x",
	    goal, f.med >= GOAL_VS_SESSION);
	f = ratio(td, ta);
	snprintf(goal, sizeof goal, ">= %.1f", GOAL_VS_SQLDIFF);
	row("speed wsync / (d)", f, 0, 2, "x", goal, f.med >= GOAL_VS_SQLDIFF);
	summary_add("B2", "apply 100k changes into 1M rows: speed vs sqlite3 db < "
	    "sqldiff.sql (its time / wsync's)", f.med, f.min, f.max, 2, "x", goal,
	    f.med >= GOAL_VS_SQLDIFF);
	f = ratio(tb, th);
	snprintf(goal, sizeof goal, ">= %.1f", GOAL_VS_PLAIN);
	row("speed wsync (a') / (b)", f, 0, 2, "x", goal, f.med >= GOAL_VS_PLAIN);
	f = ratio(tc, th);
	snprintf(goal, sizeof goal, ">= %.1f", GOAL_VS_SESSION);
	row("speed wsync (a') / (c)", f, 0, 2, "x", goal, f.med >= GOAL_VS_SESSION);
	{
		double r[REPS];

		for (int i = 0; i < REPS; i++)
			r[i] = ta[i] / APPLY_CHANGES * 1e6;
		row("wsync per change", summary(r), 0, 1, "us", NULL, 0);
	}
	printf("   (d) left %lld of %lld rows with a REAL not bit-exact: sqldiff writes\n"
	    "   REALs with 15 significant digits; checked to 1e-9 instead\n",
	    (long long)inexact, (long long)sqldiff_rows);
	tmp_remove(F_SCRATCH);
	tmp_remove(F_DIFF);
	bench_lock_hold(ch);
	bench_apply_schema(base, &site);

	ws_batch_release(&c.batch);
	ws_batch_release(&c.hbatch);
	sqlite3_free(c.cset);
	free(ch);
}

/* ------------------------------------------------- figure 2: capture */

struct upd {
	int64_t id, a;
	double c;
};

/*
 * Run n single-row updates on a fresh copy of the base `from`, tracked
 * or not, in one transaction or each in its own; return the time.  For
 * a tracked copy, check that the log captured them and, if seal_t, time
 * the seal after; kept_prior and kept_claims get the rows the capture
 * and the seal added to wsync_prior and wsync_claims.  Figure 4's tables
 * are written with foreign_keys on, as an application that declares an
 * ON DELETE action would.
 */
static double run_capture(const struct upd *u, size_t n, int from, int autocommit,
    double *seal_t)
{
	int tracked = from == F_TBASE || from == F_PTBASE || from == F_KTBASE;
	sqlite3 *db;
	sqlite3_stmt *st;
	struct ws_store *s;
	double t0, t;
	int sealed;
	int64_t logged;

	tmp_copy(from, F_RUN);
	db = db_open(F_RUN);
	if (has_owner(from))
		sql_exec(db, "PRAGMA foreign_keys = ON");
	logged = tracked ? sql_int(db, "SELECT count(*) FROM wsync_log") : 0;
	kept_prior = tracked ? sql_int(db, "SELECT count(*) FROM wsync_prior") : 0;
	kept_claims = tracked ? sql_int(db, "SELECT count(*) FROM wsync_claims") : 0;
	st = sql_prepare(db, "UPDATE bench SET a = ?1, c = ?2 WHERE id = ?3");
	t0 = now();
	if (!autocommit)
		sql_exec(db, "BEGIN");
	for (size_t k = 0; k < n; k++) {
		sqlite3_bind_int64(st, 1, u[k].a);
		sqlite3_bind_double(st, 2, u[k].c);
		sqlite3_bind_int64(st, 3, u[k].id);
		sql_step1(db, st);
	}
	if (!autocommit)
		sql_exec(db, "COMMIT");
	t = now() - t0;
	sqlite3_finalize(st);
	if (tracked && sql_int(db, "SELECT count(*) FROM wsync_log") - logged !=
	    (int64_t)n)
		die("capture: wsync_log does not hold the %zu updates", n);
	if (tracked)
		kept_prior = sql_int(db, "SELECT count(*) FROM wsync_prior") - kept_prior;
	db_close(db);
	if (tracked && seal_t) {
		s = store_open(F_RUN, 0);
		t0 = now();
		CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
		*seal_t = now() - t0;
		if (!sealed)
			die("ws_store_seal: nothing sealed after %zu updates", n);
		kept_claims = sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_claims") -
		    kept_claims;
		ws_store_close(s);
	}
	tmp_remove(F_RUN);
	return t;
}

/*
 * The same updates made with triggers off (as fossil makes its writes)
 * on a copy of F_SBASE, the tracked base with scanning on; return the
 * time of the seal that finds them by comparing every row.
 */
static double run_scan(const struct upd *u, size_t n)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	struct ws_store *s;
	int64_t logged;
	double t0, t;
	int sealed;

	tmp_copy(F_SBASE, F_RUN);
	db = db_open(F_RUN);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, NULL);
	logged = sql_int(db, "SELECT count(*) FROM wsync_log");
	st = sql_prepare(db, "UPDATE bench SET a = ?1, c = ?2 WHERE id = ?3");
	sql_exec(db, "BEGIN");
	for (size_t k = 0; k < n; k++) {
		sqlite3_bind_int64(st, 1, u[k].a);
		sqlite3_bind_double(st, 2, u[k].c);
		sqlite3_bind_int64(st, 3, u[k].id);
		sql_step1(db, st);
	}
	sql_exec(db, "COMMIT");
	sqlite3_finalize(st);
	if (sql_int(db, "SELECT count(*) FROM wsync_log") != logged)
		die("scan: the triggers ran with triggers off");
	db_close(db);
	s = store_open(F_RUN, 0);
	t0 = now();
	CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
	t = now() - t0;
	if (!sealed || sql_int(ws_store_db(s), "SELECT count(*) FROM wsync_log") -
	    logged != (int64_t)n)
		die("scan: the seal did not find the %zu updates", n);
	ws_store_close(s);
	tmp_remove(F_RUN);
	return t;
}

/* F_SBASE: F_TBASE with scanning on, its state of every row recorded. */
static void make_scan_base(void)
{
	struct ws_store *s;
	struct figure f = {0, 0, 0};
	double t0;
	int sealed;

	tmp_copy(F_TBASE, F_SBASE);
	s = store_open(F_SBASE, 0);
	CK("ws_store_scan", ws_store_scan(s, errbuf));
	t0 = now();
	CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
	f.med = now() - t0;
	row("first scan of the 1M rows (each logged)", f, 1, 3, "s", NULL, 0);
	ws_store_close(s);
}

/* n updates of distinct rows of 1..nrows, each to a new a and c. */
static void plan_updates(struct upd *u, size_t n, size_t nrows, uint64_t seed)
{
	int32_t *perm = xmalloc(nrows * sizeof *perm);

	rnd_seed(seed);
	for (size_t i = 0; i < nrows; i++)
		perm[i] = (int32_t)i + 1;
	for (size_t i = 0; i < n; i++) {
		size_t j = i + rnd_below(nrows - i);
		int32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
		u[i].id = perm[i];
		u[i].a = (int64_t)rnd_below(1000000000);
		u[i].c = (double)(rnd() >> 11) * 0x1.0p-53 * 1000.0;
	}
	free(perm);
}

/*
 * B7c: the capture of figure 2 at 1/SCHEMA_SCALE, on figure 4's plain
 * and constrained tables (made by B2c), tracked, with the seal after,
 * and untracked, for SQLite's own cost of the constraints.
 */
static void bench_capture_schema(void)
{
	struct upd *u = xmalloc(SCHEMA_UPDATES * sizeof *u);
	double tp[REPS], tk[REPS], sp[REPS], sk[REPS], up[REPS], uk[REPS];
	double net[REPS], sump[REPS], sumk[REPS];
	int64_t prior = 0, claims = 0;
	struct figure f;
	char goal[16], what[96];

	plan_updates(u, SCHEMA_UPDATES, SCHEMA_ROWS, 15);
	for (int i = 0; i < REPS; i++) {
		tp[i] = run_capture(u, SCHEMA_UPDATES, F_PTBASE, 0, &sp[i]);
		if (i == 0 && (kept_prior != 0 || kept_claims != 0))
			die("capture: bookkeeping of constraints on the plain table");
		tk[i] = run_capture(u, SCHEMA_UPDATES, F_KTBASE, 0, &sk[i]);
		if (i == 0 && (kept_prior == 0 || kept_claims == 0))
			die("capture: no bookkeeping of the constrained table's updates");
		if (i == 0) {
			prior = kept_prior;
			claims = kept_claims;
		}
		up[i] = run_capture(u, SCHEMA_UPDATES, F_PBASE, 0, NULL);
		uk[i] = run_capture(u, SCHEMA_UPDATES, F_KBASE, 0, NULL);
		net[i] = (tk[i] - (uk[i] - up[i])) / tp[i];
		sump[i] = tp[i] + sp[i];
		sumk[i] = tk[i] + sk[i];
	}
	printf("\nB7c. the cost of a constrained schema to capture, B7 at 1/%d: %d\n"
	    "   updates in 1 tx of distinct rows of B2c's %d, the statement of B7\n"
	    "   (a is under a CHECK, c under the UNIQUE index), on B2c's plain and\n"
	    "   constrained tables, with foreign_keys on; tracked (the seal runs\n"
	    "   after, in its own transaction) and untracked, for SQLite's own cost\n"
	    "   of the constraints.  wsync less SQLite's own = (tracked constrained\n"
	    "   - (untracked constrained - untracked plain)) / tracked plain.  The\n"
	    "   constrained capture noted %lld prior values, its seal %lld claims\n",
	    SCHEMA_SCALE, SCHEMA_UPDATES, SCHEMA_ROWS, (long long)prior,
	    (long long)claims);
	row("updates, tracked, plain", summary(tp), 0, 3, "s", NULL, 0);
	row("updates, tracked, constrained", summary(tk), 0, 3, "s", NULL, 0);
	row("updates, untracked, plain", summary(up), 0, 3, "s", NULL, 0);
	row("updates, untracked, constrained", summary(uk), 0, 3, "s", NULL, 0);
	f = ratio(tk, tp);
	snprintf(goal, sizeof goal, "<= %.2f", GOAL_SCHEMA);
	row("capture, constrained / plain", f, 0, 2, "x", goal, f.med <= GOAL_SCHEMA);
	snprintf(what, sizeof what, "%dk updates in 1 tx of %dk rows (B7 at 1/%d), tracked: "
	    "constrained / plain", SCHEMA_UPDATES / 1000, SCHEMA_ROWS / 1000, SCHEMA_SCALE);
	summary_add("B7", what, f.med, f.min, f.max, 2, "x", goal, f.med <= GOAL_SCHEMA);
	row("untracked, constrained / plain", ratio(uk, up), 0, 2, "x", NULL, 0);
	row("wsync less SQLite's own / plain", summary(net), 0, 2, "x", NULL, 0);
	row("ws_store_seal after, plain", summary(sp), 0, 3, "s", NULL, 0);
	row("ws_store_seal after, constrained", summary(sk), 0, 3, "s", NULL, 0);
	row("capture + seal, constrained / plain", ratio(sumk, sump), 0, 2, "x", NULL, 0);
	free(u);
}

static void bench_capture(void)
{
	struct upd *u = xmalloc(CAP_TX * sizeof *u);
	double tt[REPS], tp[REPS], ts[REPS], at[REPS], ap[REPS], sum[REPS], sc[REPS];
	struct figure f;
	char goal[16];

	plan_updates(u, CAP_TX, BASE_ROWS, 12);

	printf("\nB7. capture: UPDATE bench SET a = ?, c = ? WHERE id = ?, one "
	    "prepared\n   statement stepped once per row, distinct rows of %d, "
	    "on a copy of\n   the tracked base after GC vs a copy of the untracked "
	    "base; the seal\n   runs after, in its own transaction\n", BASE_ROWS);
	make_scan_base();
	for (int i = 0; i < REPS; i++) {
		tt[i] = run_capture(u, CAP_TX, F_TBASE, 0, &ts[i]);
		tp[i] = run_capture(u, CAP_TX, F_BASE, 0, NULL);
		at[i] = run_capture(u, CAP_AUTO, F_TBASE, 1, NULL);
		ap[i] = run_capture(u, CAP_AUTO, F_BASE, 1, NULL);
		sc[i] = run_scan(u, CAP_TX);
		sum[i] = tt[i] + ts[i];
	}
	snprintf(goal, sizeof goal, "<= %.1f", GOAL_CAPTURE);
	row("100k updates, 1 tx, tracked", summary(tt), 0, 3, "s", NULL, 0);
	row("100k updates, 1 tx, untracked", summary(tp), 0, 3, "s", NULL, 0);
	f = ratio(tt, tp);
	row("capture overhead, 1 tx", f, 0, 2, "x", goal, f.med <= GOAL_CAPTURE);
	summary_add("B7", "100k single-row updates in 1 tx: time tracked / "
	    "untracked", f.med, f.min, f.max, 2, "x", goal, f.med <= GOAL_CAPTURE);
	row("ws_store_seal of those 100k", summary(ts), 0, 3, "s", NULL, 0);
	row("(capture + seal) / untracked", ratio(sum, tp), 0, 2, "x", NULL, 0);
	row("10k updates, autocommit, tracked", summary(at), 0, 3, "s", NULL, 0);
	row("10k updates, autocommit, untracked", summary(ap), 0, 3, "s", NULL, 0);
	f = ratio(at, ap);
	row("capture overhead, autocommit", f, 0, 2, "x", goal, f.med <= GOAL_CAPTURE);
	summary_add("B7", "10k single-row updates, autocommit: time tracked / "
	    "untracked", f.med, f.min, f.max, 2, "x", goal, f.med <= GOAL_CAPTURE);
	row("seal finding the 100k by --scan", summary(sc), 0, 3, "s", NULL, 0);
	f = ratio(sc, sum);
	row("--scan seal / (capture + seal)", f, 0, 2, "x", NULL, 0);
	summary_add("B7", "100k updates in 1 tx, triggers off: --scan seal / "
	    "trigger capture + seal", f.med, f.min, f.max, 2, "x", NULL, 0);
	free(u);
	bench_capture_schema();
}

/* ----------------------------------------------- figure 3: metadata */

/* Bytes of the pages of wsync_* tables and indexes (autoindexes too). */
static int64_t meta_bytes(sqlite3 *db, const char *like)
{
	char sql[256];

	snprintf(sql, sizeof sql, "SELECT coalesce(sum(pgsize), 0) FROM dbstat "
	    "WHERE name LIKE '%s' OR name LIKE 'sqlite_autoindex_%s'", like, like);
	return sql_int(db, sql);
}

/* Bytes of the file after VACUUM. */
static int64_t vacuumed_bytes(sqlite3 *db)
{
	sql_exec(db, "VACUUM");
	return sql_int(db, "PRAGMA page_count") * sql_int(db, "PRAGMA page_size");
}

static void bench_meta(const struct brow *base)
{
	struct change *ch = xmalloc(META_CHANGES * sizeof *ch);
	struct brow *model = xmalloc((META_ROWS + META_CHANGES) * sizeof *model);
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_store *s;
	sqlite3 *db, *plain;
	int64_t rows, total, log, logkey, tracked_file, plain_file;
	uint64_t dropped;
	size_t per = META_CHANGES / META_ROUNDS;
	struct figure f = {0, 0, 0};
	char goal[16];
	int sealed;

	db_build(F_META_BASE, base, META_ROWS, K_BENCH);
	tmp_copy(F_META_BASE, F_META);
	tmp_copy(F_META_BASE, F_META_PLAIN);
	tmp_remove(F_META_BASE);
	rnd_seed(13);
	plan(base, META_ROWS, META_CHANGES, ch);
	memcpy(model, base, META_ROWS * sizeof *model);
	memset(model + META_ROWS, 0, META_CHANGES * sizeof *model);
	model_apply(model, ch, META_CHANGES);

	s = store_open(F_META, 1);
	db = ws_store_db(s);
	plain = db_open(F_META_PLAIN);
	for (size_t r = 0; r < META_ROUNDS; r++) {
		plain_apply(db, ch + r * per, per, PLAIN_UPDATE, 0);
		CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
		if (!sealed)
			die("ws_store_seal: nothing sealed after %zu changes", per);
		plain_apply(plain, ch + r * per, per, PLAIN_UPDATE, 0);
	}
	if (db_digest(db) != model_digest(model, META_ROWS + META_CHANGES) ||
	    db_digest(plain) != model_digest(model, META_ROWS + META_CHANGES))
		die("metadata: the table differs from the expected rows");
	rows = sql_int(db, "SELECT count(*) FROM bench");

	printf("\n3. metadata: track %d rows, make %d local changes (same mix) in "
	    "%d\n   sealed transactions, then ws_store_gc with the store's own "
	    "clock.\n   Pages of wsync_* tables and indexes (dbstat) per row of "
	    "bench\n   (%lld rows); one run, as the sizes are deterministic\n",
	    META_ROWS, META_CHANGES, META_ROUNDS, (long long)rows);
	total = meta_bytes(db, "wsync%");
	log = meta_bytes(db, "wsync_log");
	logkey = meta_bytes(db, "wsync_log_key");
	f.med = (double)total / (double)rows;
	row("wsync_* bytes/row before GC", f, 1, 2, "B/row", NULL, 0);
	f.med = (double)log / (double)rows;
	row("  of which wsync_log", f, 1, 2, "B/row", NULL, 0);
	f.med = (double)logkey / (double)rows;
	row("  of which wsync_log_key", f, 1, 2, "B/row", NULL, 0);

	CK("ws_store_clock", ws_store_clock(s, &clock, errbuf));
	CK("ws_store_gc", ws_store_gc(s, &clock, &dropped, errbuf));
	total = meta_bytes(db, "wsync%");
	f.med = (double)total / (double)rows;
	snprintf(goal, sizeof goal, "<= %.0f", GOAL_META);
	row("wsync_* bytes/row after GC", f, 1, 2, "B/row", goal, f.med <= GOAL_META);
	f.med = (double)dropped;
	row("log entries dropped by GC", f, 1, 0, "entries", NULL, 0);
	tracked_file = vacuumed_bytes(db);
	plain_file = vacuumed_bytes(plain);
	f.med = (double)(tracked_file - plain_file) / (double)rows;
	row("file size diff after GC + VACUUM", f, 1, 2, "B/row", NULL, 0);

	ws_vclock_release(&clock);
	ws_store_close(s);
	db_close(plain);
	tmp_remove(F_META);
	tmp_remove(F_META_PLAIN);
	free(model);
	free(ch);
}

int main(int argc, char **argv)
{
	struct brow *base;
	double t0 = now(), t;
	sqlite3 *db;
	int64_t bytes, page_size, cache_size;

	(void)argv;
	if (argc > 1) {
		fputs("usage: store\n", stderr);
		return 64;
	}
	CK("ws_init", ws_init());
	tmp_init();
	text_pool_init();
	base = rows_init(BASE_ROWS, 0, 3);
	db_build(F_BASE, base, BASE_ROWS, K_BENCH);
	t = now() - t0;
	db = db_open(F_BASE);
	page_size = sql_int(db, "PRAGMA page_size");
	cache_size = sql_int(db, "PRAGMA cache_size");
	bytes = sql_int(db, "PRAGMA page_count") * page_size;
	if (db_digest(db) != model_digest(base, BASE_ROWS))
		die("base: the table differs from the expected rows");
	db_close(db);

	printf("wsync %s store benchmark: median of %d runs, min, max; SQLite %s\n",
	    WSYNC_VERSION, REPS, sqlite3_libversion());
	printf("bench(id INTEGER PRIMARY KEY, a INTEGER, b TEXT %d-%d B, c REAL)\n"
	    "with %d rows, a %.1f MB file built in %.1f s.  Files under /tmp;\n"
	    "every connection journal_mode=WAL, synchronous=NORMAL, otherwise\n"
	    "SQLite's defaults (page_size %lld, cache_size %lld).  Each result "
	    "table\nis checked against a model of the expected rows once per "
	    "contender.\n\n", B_MIN, B_MAX, BASE_ROWS, (double)bytes / 1e6, t,
	    (long long)page_size, (long long)cache_size);
	printf("  %-40s %10s %10s %10s  %-7s %s\n", "", "median", "min", "max",
	    "unit", "goal");
	fflush(stdout);
	bench_apply(base);
	bench_capture();
	bench_meta(base);
	tmp_remove(F_BASE);
	tmp_remove(F_HBASE);
	tmp_remove(F_TBASE);
	tmp_remove(F_PBASE);
	tmp_remove(F_PTBASE);
	tmp_remove(F_KBASE);
	tmp_remove(F_KTBASE);

	printf("\n%.1f s\n", now() - t0);
	free(base);
	return 0;
}
