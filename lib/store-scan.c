/* SPDX-License-Identifier: MIT */
/*
 * store-scan.c - capture by comparison, for writers that turn triggers
 * off.
 *
 * The capture triggers see every writer that lets triggers run.  Some do
 * not: fossil, Chromium and programs that follow SQLite's security advice
 * turn them off for their connection (SQLITE_DBCONFIG_ENABLE_TRIGGER),
 * and their writes would never leave the database.  With scanning on, the
 * store keeps, for each row of each tracked table, a hash of each of its
 * columns (table wsync_scan), and before it seals it compares every row
 * with what it kept, when another connection has written since it last
 * looked (PRAGMA data_version).  What differs is logged as if a trigger
 * had seen it: a row it did not know as an insert, a changed row as an
 * update of the columns that changed, a row that is gone as a delete.
 *
 * The store keeps wsync_scan up to date with its own writes: the rows it
 * logs (sealed local changes, peers' batches it applies) are recorded
 * again once written, so they never come back as local changes.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

#define COL_HASH 8 /* bytes of hash per column */

/* The column hashes of the ncols values of st's current row, from column
 * `from`, into h (ncols * COL_HASH bytes). */
static int row_hashes(sqlite3_stmt *st, int from, uint32_t ncols,
    struct ws_buf *tmp, uint8_t *h)
{
	struct ws_value v;
	uint32_t i;
	int rc;

	for (i = 0; i < ncols; i++) {
		tmp->len = 0;
		sto_value_of(sqlite3_column_value(st, from + (int)i), &v);
		if ((rc = ws_value_encode(&v, tmp)))
			return rc;
		crypto_generichash(h + (size_t)i * COL_HASH, COL_HASH, tmp->p,
		    tmp->len, NULL, 0);
	}
	return 0;
}

/*
 * The columns whose hash in now (ncols of them) differs from old (nold
 * bytes, as recorded; a column added since counts as unchanged: the
 * schema's follower logged the values it holds).
 */
static int64_t changed_mask(const uint8_t *now, uint32_t ncols, const uint8_t *old,
    size_t nold)
{
	int64_t mask = 0;
	uint32_t i;

	for (i = 0; i < ncols && ((size_t)i + 1) * COL_HASH <= nold; i++)
		if (memcmp(now + (size_t)i * COL_HASH, old + (size_t)i * COL_HASH, COL_HASH))
			mask |= (int64_t)1 << i;
	return mask;
}

/*
 * The statement that logs changes of t (prepared once for a pass over t;
 * the caller finalizes it).
 */
static int log_stmt(struct ws_store *s, const struct tbl *t, sqlite3_stmt **ins,
    char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);
	uint32_t i;

	*ins = NULL;
	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", k%u", i + 1);
	sqlite3_str_appendall(q, ") VALUES(?1, ?2, ?3");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", ?%u", i + 4);
	sqlite3_str_appendall(q, ")");
	return sto_str_prep(s->db, q, ins, err);
}

/* Log one change of t with ins, its key the npk values of st from column from. */
static int log_change(struct ws_store *s, sqlite3_stmt *ins, const struct tbl *t,
    int op, int64_t mask, sqlite3_stmt *st, int from, char *err)
{
	uint32_t i;
	int rc;

	sqlite3_bind_int64(ins, 1, t->id);
	sqlite3_bind_int(ins, 2, op);
	sqlite3_bind_int64(ins, 3, mask);
	for (i = 0; i < t->npk; i++)
		sqlite3_bind_value(ins, (int)i + 4, sqlite3_column_value(st, from + (int)i));
	rc = sqlite3_step(ins) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "log", err);
	sqlite3_reset(ins);
	return rc;
}

/* Record (h non-NULL) or forget the state of t's row with key `key`. */
static int keep(struct ws_store *s, const struct tbl *t, const struct ws_buf *key,
    const uint8_t *h, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_stmt(s, h ? "INSERT OR REPLACE INTO wsync_scan VALUES(?1, ?2, ?3)" :
	    "DELETE FROM wsync_scan WHERE tbl = ?1 AND key = ?2", &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_blob(st, 2, key->p ? key->p : (const uint8_t *)"", (int)key->len,
	    SQLITE_STATIC);
	if (h)
		sqlite3_bind_blob(st, 3, h, (int)(t->ncols * COL_HASH), SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "scan", err);
	sqlite3_reset(st);
	return rc;
}

/* "SELECT key columns, every column FROM t". */
static int rows_stmt(struct ws_store *s, const struct tbl *t, sqlite3_stmt **st,
    char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);
	uint32_t i;

	sqlite3_str_appendall(q, "SELECT ");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "", t->cols[t->pk[i]]);
	for (i = 0; i < t->ncols; i++)
		sqlite3_str_appendf(q, ", \"%w\"", t->cols[i]);
	sqlite3_str_appendf(q, " FROM \"%w\"", t->name);
	return sto_str_prep(s->db, q, st, err);
}

/*
 * Compare every row of t with its recorded state: log (when `log`) and
 * record each row that is new or changed.  Rows recorded but gone are
 * left to gone_rows().
 */
static int new_rows(struct ws_store *s, const struct tbl *t, int log, char *err)
{
	struct ws_buf key = WS_BUF_INIT, tmp = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *old = NULL, *ins = NULL;
	uint8_t *h = NULL;
	int64_t mask;
	int rc;

	if (!(h = malloc((size_t)t->ncols * COL_HASH)))
		return WS_ENOMEM;
	if ((rc = rows_stmt(s, t, &st, err)) || (rc = sto_prep(s->db, "SELECT h FROM "
	    "wsync_scan WHERE tbl = ?1 AND key = ?2", &old, err)) ||
	    (log && (rc = log_stmt(s, t, &ins, err))))
		goto out;
	sqlite3_bind_int64(old, 1, t->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = sto_pk_blob(st, 0, t->npk, &key)) ||
		    (rc = row_hashes(st, (int)t->npk, t->ncols, &tmp, h)))
			goto out;
		sqlite3_reset(old);
		sqlite3_bind_blob(old, 2, key.p ? key.p : (const uint8_t *)"",
		    (int)key.len, SQLITE_STATIC);
		if (sqlite3_step(old) != SQLITE_ROW) {
			if (log && (rc = log_change(s, ins, t, WS_OP_INSERT, t->allmask, st, 0, err)))
				goto out;
		} else {
			size_t nold = (size_t)sqlite3_column_bytes(old, 0);

			if (nold == (size_t)t->ncols * COL_HASH &&
			    memcmp(sqlite3_column_blob(old, 0), h, nold) == 0)
				continue;
			mask = changed_mask(h, t->ncols, sqlite3_column_blob(old, 0), nold) &
			    t->allmask;
			if (log && mask && (rc = log_change(s, ins, t, WS_OP_UPDATE, mask, st, 0, err)))
				goto out;
		}
		sqlite3_reset(old);
		if ((rc = keep(s, t, &key, h, err)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, t->name, err);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(old);
	sqlite3_finalize(ins);
	ws_buf_release(&key);
	ws_buf_release(&tmp);
	free(h);
	return rc;
}

/* Log a delete of, and forget, each recorded row of t that is gone. */
static int gone_rows(struct ws_store *s, struct tbl *t, char *err)
{
	struct ws_buf gone = WS_BUF_INIT, key = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *row, *vals = NULL, *ins = NULL;
	struct ws_value v;
	struct ws_rd r;
	uint32_t i;
	size_t at, n;
	int rc;

	/* Find them first (as length-prefixed keys), then change the tables. */
	if ((rc = sto_prep(s->db, "SELECT key FROM wsync_scan WHERE tbl = ?1", &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		n = (size_t)sqlite3_column_bytes(st, 0);
		ws_rd_init(&r, sqlite3_column_blob(st, 0), n);
		if ((rc = sto_tstmt(s, t, TS_ROW, 0, &row, err)))
			goto out;
		for (i = 0; rc == 0 && i < t->npk; i++)
			if ((rc = ws_value_decode(&r, &v)) == 0)
				sto_bind_value(row, (int)i + 1, &v);
		if (rc) {
			rc = ws_error(err, WS_ECORRUPT, "wsync_scan: a bad key for '%s'",
			    t->name);
			goto out;
		}
		rc = sqlite3_step(row);
		sqlite3_reset(row);
		if (rc == SQLITE_ROW)
			continue;
		if (rc != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, rc, t->name, err);
			goto out;
		}
		if ((rc = ws_buf_append(&gone, &n, sizeof(n))) ||
		    (rc = ws_buf_append(&gone, sqlite3_column_blob(st, 0), n)))
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "scan", err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* The key's values, as columns a log entry can take them from. */
	if ((rc = sto_prep(s->db, "SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, "
	    "?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, "
	    "?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38, ?39, "
	    "?40, ?41, ?42, ?43, ?44, ?45, ?46, ?47, ?48, ?49, ?50, ?51, ?52, ?53, "
	    "?54, ?55, ?56, ?57, ?58, ?59, ?60, ?61, ?62, ?63", &vals, err)) ||
	    (gone.len && (rc = log_stmt(s, t, &ins, err))))
		goto out;
	for (at = 0; rc == 0 && at < gone.len; at += n) {
		memcpy(&n, gone.p + at, sizeof(n));
		at += sizeof(n);
		key.len = 0;
		if ((rc = ws_buf_append(&key, gone.p + at, n)))
			break;
		ws_rd_init(&r, key.p, key.len);
		sqlite3_reset(vals);
		sqlite3_clear_bindings(vals);
		for (i = 0; rc == 0 && i < t->npk; i++)
			if ((rc = ws_value_decode(&r, &v)) == 0)
				sto_bind_value(vals, (int)i + 1, &v);
		if (rc || sqlite3_step(vals) != SQLITE_ROW) {
			rc = rc ? rc : sto_sqlerr(s->db, sqlite3_errcode(s->db), "scan", err);
			break;
		}
		if ((rc = log_change(s, ins, t, WS_OP_DELETE, 0, vals, 0, err)) == 0)
			rc = keep(s, t, &key, NULL, err);
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(vals);
	sqlite3_finalize(ins);
	ws_buf_release(&gone);
	ws_buf_release(&key);
	return rc;
}

int sto_scan(struct ws_store *s, char *err)
{
	sqlite3_stmt *st;
	int64_t dv = -1;
	size_t i;
	int rc;

	if (!s->scan)
		return 0;
	if ((rc = sto_prep(s->db, "PRAGMA data_version", &st, err)))
		return rc;
	if (sqlite3_step(st) == SQLITE_ROW)
		dv = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (dv >= 0 && dv == s->scan_dv)
		return 0;
	/* What the triggers logged since the last seal is known already. */
	if ((rc = sto_scan_refresh(s, (uint64_t)sto_meta_int(s, "sealed_usn") + 1,
	    UINT64_MAX >> 1, err)))
		return rc;
	for (i = 0; i < s->nt; i++)
		if ((rc = new_rows(s, &s->t[i], 1, err)) ||
		    (rc = gone_rows(s, &s->t[i], err)))
			return rc;
	s->scan_dv = dv;
	return 0;
}

int sto_scan_refresh(struct ws_store *s, uint64_t first, uint64_t last, char *err)
{
	struct ws_buf key = WS_BUF_INIT, tmp = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *row;
	sqlite3_str *q;
	uint8_t h[MAX_TRACKED_COLS * COL_HASH];
	struct tbl *t;
	uint32_t i;
	int rc;

	if (!s->scan || last < first)
		return 0;
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "SELECT DISTINCT tbl");
	for (i = 0; i < s->nk; i++)
		sqlite3_str_appendf(q, ", k%u", i + 1);
	sqlite3_str_appendall(q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2");
	if ((rc = sto_str_prep(s->db, q, &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(t = sto_tbl_by_id(s, sqlite3_column_int64(st, 0))))
			continue;
		if ((rc = sto_pk_blob(st, 1, t->npk, &key)) ||
		    (rc = sto_tstmt(s, t, TS_ROW, 0, &row, err)))
			goto out;
		for (i = 0; i < t->npk; i++)
			sqlite3_bind_value(row, (int)i + 1, sqlite3_column_value(st, 1 + (int)i));
		rc = sqlite3_step(row);
		if (rc == SQLITE_ROW)
			rc = row_hashes(row, 0, t->ncols, &tmp, h);
		else
			rc = rc == SQLITE_DONE ? 1 : sto_sqlerr(s->db, rc, t->name, err);
		sqlite3_reset(row);
		if (rc < 0 || (rc = keep(s, t, &key, rc ? NULL : h, err)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "log", err);
out:
	sqlite3_finalize(st);
	ws_buf_release(&key);
	ws_buf_release(&tmp);
	return rc;
}

int sto_scan_rebuild(struct ws_store *s, char *err)
{
	size_t i;
	int rc;

	if (!s->scan)
		return 0;
	if ((rc = sto_exec(s->db, "DELETE FROM wsync_scan", err)))
		return rc;
	for (i = 0; i < s->nt; i++)
		if ((rc = new_rows(s, &s->t[i], 0, err)))
			return rc;
	return 0;
}

int ws_store_scan(struct ws_store *s, char *err)
{
	int rc;

	if (s->scan)
		return 0;
	if ((rc = sto_meta_set_int(s, "scan", 1, err)))
		return rc;
	s->scan = 1;
	s->scan_dv = -1;
	return 0;
}
