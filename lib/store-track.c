/* SPDX-License-Identifier: MIT */
/*
 * store-track.c - tracking tables: reading a table's columns and key
 * (sto_describe()), the capture triggers that log every write into
 * wsync_log (and the pin trigger that keeps a tracked table's
 * definition), registering a table in wsync_tables, ws_store_track()
 * and ws_store_untracked(), and following the schema: columns added at
 * the end of a tracked table are tracked from the next seal on
 * (sto_follow_schema()), and the capture triggers stay last in
 * sqlite_schema.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

/*
 * Read a table's columns and primary key from SQLite into t (not yet
 * registered).  WS_ESCHEMA with the table's name for what cannot be
 * tracked.
 */
/*
 * A rowid table without a declared key is keyed by its rowid: SQLite's
 * own implicit key.  It goes first in t->cols, under the first of its
 * names that no column hides.
 */
static int key_by_rowid(struct tbl *t, char *err)
{
	static const char *const alias[] = {"rowid", "_rowid_", "oid"};
	char **c;
	uint32_t i, a;

	for (a = 0; a < 3; a++) {
		for (i = 0; i < t->ncols && sqlite3_stricmp(t->cols[i], alias[a]); i++)
			;
		if (i == t->ncols)
			break;
	}
	if (a == 3)
		return ws_error(err, WS_ESCHEMA, "cannot track '%s': it has no primary "
		    "key, and columns named rowid, _rowid_ and oid hide its rowid",
		    t->name);
	if (t->ncols == MAX_TRACKED_COLS)
		return ws_error(err, WS_ESCHEMA, "cannot track '%s': more than %d "
		    "columns (without a primary key, its rowid counts as one)",
		    t->name, MAX_TRACKED_COLS);
	if (!(c = realloc(t->cols, (t->ncols + 1) * sizeof(*c))))
		return WS_ENOMEM;
	t->cols = c;
	memmove(c + 1, c, t->ncols * sizeof(*c));
	t->ncols++;
	if (!(c[0] = strdup(alias[a]))) {
		memmove(c, c + 1, --t->ncols * sizeof(*c));
		return WS_ENOMEM;
	}
	t->pk[t->npk++] = 0;
	t->rowid_key = 1;
	t->intkey = 1;
	return 0;
}

int sto_describe(struct ws_store *s, const char *name, struct tbl *t, char *err)
{
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	uint32_t pkpos[MAX_TRACKED_COLS + 1] = {0}, i;
	const char *sql;
	int rc, hidden, nullable = 0, intkey = 0, wr = 0;

	memset(t, 0, sizeof(*t));
	if ((rc = sto_prep(s->db, "SELECT sql FROM sqlite_schema WHERE type = 'table' "
	    "AND name = ?1", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		rc = ws_error(err, WS_ENOTFOUND, "no table '%s'", name);
		goto out;
	}
	sql = (const char *)sqlite3_column_text(st, 0);
	if (sql && sqlite3_strnicmp(sql, "CREATE VIRTUAL", 14) == 0) {
		rc = ws_error(err, WS_ESCHEMA, "cannot track '%s': it is a "
		    "virtual table", name);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendf(q, "PRAGMA table_xinfo(\"%w\")", name);
	if ((rc = sto_str_prep(s->db, q, &st, err)))
		goto out;
	t->name = strdup(name);
	if (!t->name) {
		rc = WS_ENOMEM;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		hidden = sqlite3_column_int(st, 6);
		if (hidden == 2 || hidden == 3) {
			rc = ws_error(err, WS_ESCHEMA, "cannot track '%s': column '%s' "
			    "is generated", name, sqlite3_column_text(st, 1));
			goto out;
		}
		if (hidden)
			continue;
		if (t->ncols == MAX_TRACKED_COLS) {
			rc = ws_error(err, WS_ESCHEMA, "cannot track '%s': more than %d "
			    "columns", name, MAX_TRACKED_COLS);
			goto out;
		}
		char **c = realloc(t->cols, (t->ncols + 1) * sizeof(*c));
		if (!c || !(c[t->ncols] = strdup((const char *)sqlite3_column_text(st, 1)))) {
			if (c)
				t->cols = c;
			rc = WS_ENOMEM;
			goto out;
		}
		t->cols = c;
		if (sqlite3_column_int(st, 5) > 0 && sqlite3_column_int(st, 5) <= MAX_TRACKED_COLS) {
			pkpos[sqlite3_column_int(st, 5)] = t->ncols + 1;
			nullable |= !sqlite3_column_int(st, 3);
			intkey = sqlite3_column_text(st, 2) && sqlite3_stricmp(
			    (const char *)sqlite3_column_text(st, 2), "INTEGER") == 0;
		}
		t->ncols++;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "table_xinfo", err);
		goto out;
	}
	rc = 0;
	if (!(t->pk = calloc(MAX_TRACKED_COLS, sizeof(*t->pk)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 1; i <= MAX_TRACKED_COLS && pkpos[i]; i++)
		t->pk[t->npk++] = pkpos[i] - 1;
	/* Only a rowid table's key other than an INTEGER PRIMARY KEY, with a
	 * column not declared NOT NULL, can hold NULL. */
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = sto_prep(s->db, "SELECT wr FROM pragma_table_list WHERE "
	    "schema = 'main' AND name = ?1", &st, err)))
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	wr = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
	if (t->npk == 0 && (rc = key_by_rowid(t, err)))
		goto out;
	t->allmask = (int64_t)((1ull << t->ncols) - 1);
	t->null_key = !wr && nullable && !(t->npk == 1 && intkey);
	for (i = 0; i < t->npk; i++)
		t->allmask &= ~(int64_t)(1ull << t->pk[i]);
out:
	sqlite3_finalize(st);
	if (rc)
		sto_tbl_release(t);
	return rc;
}

/*
 * Append "<prefix>k1, <prefix>k2, ..." for n key columns: to a ws_buf
 * (for callers not yet on sqlite3_str), or to q.
 */
void sto_str_ks(sqlite3_str *q, unsigned n, const char *prefix)
{
	unsigned i;

	for (i = 1; i <= n; i++)
		sqlite3_str_appendf(q, "%s%sk%u", i > 1 ? ", " : "", prefix, i);
}

/* Make wsync_log hold n key columns, and its index cover them. */
static int grow_k(struct ws_store *s, unsigned n, char *err)
{
	sqlite3_str *q;
	int rc;

	if (n <= s->nk)
		return 0;
	while (s->nk < n) {
		q = sqlite3_str_new(s->db);
		sqlite3_str_appendf(q, "ALTER TABLE wsync_log ADD COLUMN k%u", s->nk + 1);
		if ((rc = sto_str_exec(s->db, q, err)))
			return rc;
		s->nk++;
	}
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "DROP INDEX wsync_log_key;"
	    "CREATE INDEX wsync_log_key ON wsync_log(tbl, ");
	sto_str_ks(q, s->nk, "");
	sqlite3_str_appendall(q, ")");
	return sto_str_exec(s->db, q, err);
}

/* Append ", <row>.<pk col>..." for t's key columns; row is NEW or OLD. */
static void put_keys(sqlite3_str *q, const struct tbl *t, const char *row)
{
	uint32_t i;

	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", %s.\"%w\"", row, t->cols[t->pk[i]]);
}

/*
 * Append "(OLD.c IS NOT NEW.c COLLATE BINARY OR typeof(OLD.c) <>
 * typeof(NEW.c))": true when an update changed column c at all, even in
 * ways the column's own comparison calls equal (2.0 to 2, 'A' to 'a'
 * under NOCASE).
 */
static void put_changed(sqlite3_str *q, const char *col)
{
	sqlite3_str_appendf(q, "(OLD.\"%w\" IS NOT NEW.\"%w\" COLLATE BINARY OR "
	    "typeof(OLD.\"%w\") <> typeof(NEW.\"%w\"))", col, col, col, col);
}

/* Append "0 OR <key column changed> ...": true when an update moves the key. */
static void put_key_moved(sqlite3_str *q, const struct tbl *t)
{
	uint32_t i;

	sqlite3_str_appendall(q, "0");
	for (i = 0; i < t->npk; i++) {
		sqlite3_str_appendall(q, " OR ");
		put_changed(q, t->cols[t->pk[i]]);
	}
}

/*
 * Append the name of t's capture trigger for kind, "wsync_<kind>_<table>",
 * quoted as one identifier.
 */
static void put_trigger_name(sqlite3_str *q, const struct tbl *t, const char *kind)
{
	sqlite3_str_appendf(q, "\"wsync_%w_%w\"", kind, t->name);
}

/*
 * Append the head of a capture trigger: "CREATE TRIGGER wsync_<kind>_<table>
 * AFTER <event> ON <table> WHEN ... BEGIN".  The trigger does nothing
 * while this store applies remote changes (wsync_state.applying), so they
 * are not captured again.  Its text names the table, never this copy's
 * number for it, so every copy's schema reads alike (.schema TABLE).
 */
static void put_trigger_head(sqlite3_str *q, const struct tbl *t,
    const char *kind, const char *event)
{
	sqlite3_str_appendall(q, "CREATE TRIGGER ");
	put_trigger_name(q, t, kind);
	sqlite3_str_appendf(q, " AFTER %s ON \"%w\" WHEN (SELECT applying FROM "
	    "wsync_state) = 0 BEGIN ", event, t->name);
}

/*
 * Append a capture trigger's note of the values the log entry it just
 * wrote (if it wrote one: changes()) replaced: the OLD value of each
 * column of its mask, or of every column for a delete (op 3).  moved:
 * the entry is an update's delete of the old key, written only when the
 * key moved; the same test, which SQLite weighs once before it looks at
 * any row, spares every other update the statement's work.
 */
static void put_prior(sqlite3_str *q, const struct tbl *t, int op, int moved)
{
	uint32_t i, n = 0;

	sqlite3_str_appendall(q, "INSERT INTO wsync_prior(usn, col, value) SELECT "
	    "l.usn, v.c, v.v FROM wsync_log AS l, (");
	/* (A multi-row VALUES cannot name OLD inside a trigger.) */
	for (i = 0; i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1))
			continue;
		if (n++)
			sqlite3_str_appendf(q, " UNION ALL SELECT %u, OLD.\"%w\"", i,
			    t->cols[i]);
		else
			sqlite3_str_appendf(q, "SELECT %u AS c, OLD.\"%w\" AS v", i,
			    t->cols[i]);
	}
	sqlite3_str_appendf(q, ") AS v WHERE changes() = 1 AND l.usn = "
	    "last_insert_rowid() AND l.op = %d%s", op,
	    op == 3 ? "" : " AND (l.mask >> v.c) & 1");
	if (moved) {
		sqlite3_str_appendall(q, " AND (");
		put_key_moved(q, t);
		sqlite3_str_appendchar(q, 1, ')');
	}
	sqlite3_str_appendall(q, "; ");
}

/*
 * Append "INSERT INTO wsync_log(tbl, op, mask, k1..kN) SELECT (the
 * table's number)": the head of a capture trigger's log write.
 */
static void put_log_head(sqlite3_str *q, const struct tbl *t)
{
	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask, ");
	sto_str_ks(q, t->npk, "");
	sqlite3_str_appendf(q, ") SELECT (SELECT id FROM wsync_tables "
	    "WHERE name = %Q)", t->name);
}

/*
 * Append, for a table whose key SQLite lets hold NULL, a statement that
 * refuses such a row: a NULL key can never be matched on another copy.
 * Its message is "wsync: NULL in the primary key of table 'NAME'", as one
 * SQL literal (so its quotes doubled: those around NAME here, those in
 * NAME by %q).
 */
static void put_null_key_check(sqlite3_str *q, const struct tbl *t)
{
	uint32_t i;

	if (!t->null_key)
		return;
	sqlite3_str_appendf(q, "SELECT RAISE(ABORT, 'wsync: NULL in the primary key "
	    "of table ''%q''') WHERE 0", t->name);
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, " OR NEW.\"%w\" IS NULL", t->cols[t->pk[i]]);
	sqlite3_str_appendall(q, "; ");
}

/*
 * Append the DROP and CREATE of the pin of a table keyed by its rowid:
 * an index that holds no entry ("WHERE 0"), so costs nothing.  VACUUM
 * gives new rowids to the rows of a rowid table that has no INTEGER
 * PRIMARY KEY and no index at all; with an index it copies them as they
 * are.  A renumbered row would take another copy's changes for another
 * row, so every such table keeps its pin (and ws_store_check_pins()
 * finds one that went).
 */
static void put_pin(sqlite3_str *q, const struct tbl *t)
{
	sqlite3_str_appendf(q, "DROP INDEX IF EXISTS \"wsync_pin_%w\"; CREATE INDEX "
	    "\"wsync_pin_%w\" ON \"%w\"(\"%w\") WHERE 0; ", t->name, t->name, t->name,
	    t->cols[1]);
}

/*
 * DROP and CREATE the three capture triggers of t.  An insert logs every
 * non-key column; an update the columns whose value changed (IS NOT), or,
 * when the key itself changed, a delete of the old key and an insert of
 * the new one; a delete logs the key.  The triggers of older versions
 * (named by the table's number) go too.
 */
static int make_triggers(struct ws_store *s, const struct tbl *t, char *err)
{
	static const char *const kinds[] = {"ins", "upd", "del"};
	sqlite3_str *q;
	uint32_t i;
	int rc, k, prior;

	/* Only a constrained table keeps what its changes replaced. */
	if ((rc = sto_constrained(s, t, &prior, err)))
		return rc;
	prior = prior && t->allmask;

	q = sqlite3_str_new(s->db);
	for (k = 0; k < 3; k++) {
		sqlite3_str_appendf(q, "DROP TRIGGER IF EXISTS wsync_%" PRId64 "_%s; "
		    "DROP TRIGGER IF EXISTS ", t->id, kinds[k]);
		put_trigger_name(q, t, kinds[k]);
		sqlite3_str_appendall(q, "; ");
	}
	if (t->rowid_key)
		put_pin(q, t);
	put_trigger_head(q, t, "ins", "INSERT");
	put_null_key_check(q, t);
	put_log_head(q, t);
	sqlite3_str_appendf(q, ", 1, %" PRId64, t->allmask);
	put_keys(q, t, "NEW");
	sqlite3_str_appendall(q, "; END;");
	put_trigger_head(q, t, "del", "DELETE");
	put_log_head(q, t);
	sqlite3_str_appendall(q, ", 3, 0");
	put_keys(q, t, "OLD");
	sqlite3_str_appendall(q, "; ");
	if (prior)
		put_prior(q, t, 3, 0);
	sqlite3_str_appendall(q, "END;");
	put_trigger_head(q, t, "upd", "UPDATE");
	put_null_key_check(q, t);
	put_log_head(q, t);
	sqlite3_str_appendall(q, ", 3, 0");
	put_keys(q, t, "OLD");
	sqlite3_str_appendall(q, " WHERE ");
	put_key_moved(q, t);
	sqlite3_str_appendall(q, "; ");
	if (prior)
		put_prior(q, t, 3, 1);
	put_log_head(q, t);
	sqlite3_str_appendf(q, ", CASE WHEN m < 0 THEN 1 ELSE 2 END,"
	    " CASE WHEN m < 0 THEN %" PRId64 " ELSE m END", t->allmask);
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", k%u", i + 1);
	sqlite3_str_appendall(q, " FROM (SELECT CASE WHEN ");
	put_key_moved(q, t);
	sqlite3_str_appendall(q, " THEN -1 ELSE 0");
	for (i = 0; i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1))
			continue;
		sqlite3_str_appendall(q, " | (");
		put_changed(q, t->cols[i]);
		sqlite3_str_appendf(q, " << %u)", i);
	}
	sqlite3_str_appendall(q, " END AS m");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", NEW.\"%w\" AS k%u", t->cols[t->pk[i]], i + 1);
	sqlite3_str_appendall(q, ") WHERE m != 0; ");
	if (prior)
		put_prior(q, t, 2, 0);
	sqlite3_str_appendall(q, "END;");
	return sto_str_exec(s->db, q, err);
}

static json_t *cols_json(const struct tbl *t)
{
	json_t *a = json_array();
	uint32_t i;

	for (i = 0; a && i < t->ncols; i++)
		if (json_array_append_new(a, json_string(t->cols[i]))) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Insert or update t's row in wsync_tables; sets t->id for a new one. */
static int save_table(struct ws_store *s, struct tbl *t, char *err)
{
	json_t *cols = cols_json(t), *pk = json_array();
	char *cs = NULL, *ps = NULL;
	sqlite3_stmt *st = NULL;
	uint32_t i;
	int rc = WS_ENOMEM;

	for (i = 0; pk && i < t->npk; i++)
		if (json_array_append_new(pk, json_integer(t->pk[i])))
			goto out;
	if (!cols || !pk || !(cs = json_dumps(cols, JSON_COMPACT)) ||
	    !(ps = json_dumps(pk, JSON_COMPACT)))
		goto out;
	if ((rc = sto_prep(s->db, t->id ? "UPDATE wsync_tables SET cols = ?2, pk = ?3 "
	    "WHERE id = ?4" : "INSERT INTO wsync_tables(name, cols, pk) "
	    "VALUES(?1, ?2, ?3)", &st, err)))
		goto out;
	if (!t->id)
		sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cs, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ps, -1, SQLITE_STATIC);
	if (t->id)
		sqlite3_bind_int64(st, 4, t->id);
	if (sqlite3_step(st) != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "tables", err);
		goto out;
	}
	if (!t->id)
		t->id = sqlite3_last_insert_rowid(s->db);
	rc = 0;
out:
	sqlite3_finalize(st);
	json_decref(cols);
	json_decref(pk);
	free(cs);
	free(ps);
	return rc;
}

/*
 * Log an insert for every row t holds now, so rows that were there before
 * tracking began reach the peers with the next batch.
 */
static int log_existing(struct ws_store *s, const struct tbl *t, char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);
	uint32_t i;

	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask, ");
	sto_str_ks(q, t->npk, "");
	sqlite3_str_appendf(q, ") SELECT %" PRId64 ", 1, %" PRId64, t->id, t->allmask);
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", \"%w\"", t->cols[t->pk[i]]);
	sqlite3_str_appendf(q, " FROM \"%w\"", t->name);
	return sto_str_exec(s->db, q, err);
}

/* Register t (described, not yet saved) with triggers; takes ownership. */
int sto_register_table(struct ws_store *s, struct tbl *t, char *err)
{
	struct tbl *p;
	int rc;

	if ((rc = grow_k(s, t->npk, err)) || (rc = save_table(s, t, err)) ||
	    (rc = make_triggers(s, t, err)) || (rc = log_existing(s, t, err)))
		return rc;
	if (!(p = realloc(s->t, (s->nt + 1) * sizeof(*p))))
		return WS_ENOMEM;
	s->t = p;
	s->t[s->nt++] = *t;
	memset(t, 0, sizeof(*t));
	return 0;
}

/* Names wsync and SQLite keep for themselves: never tracked or created. */
int sto_reserved_name(const char *name)
{
	return strncmp(name, "wsync_", 6) == 0 || strncmp(name, "sqlite_", 7) == 0;
}

int ws_store_untracked(struct ws_store *s, ws_store_untracked_cb *cb,
    void *clientData, char *err)
{
	char why[WS_ERRLEN];
	sqlite3_stmt *st = NULL;
	const char *name, *reason;
	struct tbl t;
	int rc;

	if ((rc = sto_prep(s->db, "SELECT l.name, l.type, m.sql FROM pragma_table_list "
	    "AS l LEFT JOIN sqlite_schema AS m ON m.type = 'table' AND m.name = "
	    "l.name WHERE l.schema = 'main' AND l.type IN ('table', 'virtual') AND "
	    "l.name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND l.name NOT LIKE 'wsync\\_%' "
	    "ESCAPE '\\' AND l.name NOT IN (SELECT name FROM wsync_tables) "
	    "ORDER BY l.name", &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		why[0] = 0;
		if (sto_fts_travels(s, (const char *)sqlite3_column_text(st, 2))) {
			continue; /* travels, and is rebuilt from its content table */
		} else if (strcmp((const char *)sqlite3_column_text(st, 1), "virtual") == 0) {
			reason = "it is a virtual table (of those, only FTS5 tables with a "
			    "tracked content table travel)";
		} else if (sto_describe(s, name, &t, why) == 0) {
			sto_tbl_release(&t);
			reason = "it is not in the working set";
		} else {
			/* "cannot track 'NAME': REASON" */
			reason = strstr(why, "': ") ? strstr(why, "': ") + 3 : why;
		}
		if ((rc = cb(name, reason, clientData)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "tables", err);
out:
	sqlite3_finalize(st);
	return rc;
}

/* Free a list of names. */
static void free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * The ordinary tables that are not tracked yet (not views, virtual tables or their shadow tables, nor SQLite's or wsync's
 * own), by name.  The list is read whole before anything is tracked: a
 * cursor on the schema must not stay open while triggers are made.
 * *names is the caller's, freed with free_names().
 */
static int untracked_tables(struct ws_store *s, char ***names, size_t *n, char *err)
{
	sqlite3_stmt *st;
	char **p;
	int rc;

	*names = NULL;
	*n = 0;
	if ((rc = sto_prep(s->db, "SELECT l.name FROM pragma_table_list AS l WHERE "
	    "l.schema = 'main' AND l.type = 'table' AND l.name NOT LIKE "
	    "'sqlite\\_%' ESCAPE '\\' AND l.name NOT LIKE 'wsync\\_%' ESCAPE '\\'"
	    " AND l.name NOT IN (SELECT name FROM wsync_tables) "
	    "ORDER BY l.name", &st, err)))
		return rc;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (!(p = realloc(*names, (*n + 1) * sizeof(*p))) ||
		    !(p[*n] = strdup((const char *)sqlite3_column_text(st, 0)))) {
			if (p)
				*names = p;
			rc = WS_ENOMEM;
			break;
		}
		*names = p;
		(*n)++;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Track every table untracked_tables() lists that can be tracked; one that
 * cannot (generated columns, too many columns) is left out, and
 * ws_store_untracked() says why.  Inside a write transaction.
 */
static int track_all_tables(struct ws_store *s, char *err)
{
	char **names, why[WS_ERRLEN];
	size_t n, i;
	struct tbl t;
	int rc;

	if ((rc = untracked_tables(s, &names, &n, err)))
		return rc;
	for (i = 0; rc == 0 && i < n; i++) {
		if ((rc = sto_describe(s, names[i], &t, why)) == WS_ESCHEMA) {
			rc = 0;
			continue;
		}
		if (rc)
			ws_error(err, rc, "%s", why);
		else
			rc = sto_register_table(s, &t, err);
		sto_tbl_release(&t);
	}
	free_names(names, n);
	return rc;
}

int ws_store_track(struct ws_store *s, const char *const *tables, size_t n,
    char *err)
{
	struct tbl t;
	size_t i;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if (n == 0) {
		if ((rc = sto_meta_set_int(s, "track_all", 1, err)) == 0)
			rc = track_all_tables(s, err);
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (sto_reserved_name(tables[i])) {
			rc = ws_error(err, WS_ESCHEMA, "cannot track '%s': the name is "
			    "reserved", tables[i]);
			goto out;
		}
		if (sto_find_tbl(s, tables[i]))
			continue; /* tracking is idempotent */
		if ((rc = sto_describe(s, tables[i], &t, err)))
			goto out;
		rc = sto_register_table(s, &t, err);
		sto_tbl_release(&t);
		if (rc)
			goto out;
	}
out:
	return sto_tables_end(s, rc, err);
}

int sto_tables_end(struct ws_store *s, int rc, char *err)
{
	if (rc == 0)
		rc = sto_exec(s->db, "COMMIT", err);
	if (rc) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		sto_load_tables(s, NULL);
		sto_count_k(s, NULL);
	}
	return rc;
}

int sto_schema_version(struct ws_store *s, int *ver, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_prep(s->db, "PRAGMA schema_version", &st, err)))
		return rc;
	rc = sqlite3_step(st);
	*ver = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : sto_sqlerr(s->db, rc, "schema version", err);
}

/*
 * After ALTER TABLE ADD COLUMN: the rows whose new columns hold other
 * than the column's DEFAULT were written before the capture triggers
 * knew the columns, so log those values now as updates.  (Rows holding
 * the DEFAULT need nothing: every copy adds the column with it.)
 */
static int log_new_columns(struct ws_store *s, const struct tbl *t, uint32_t from,
    char *err)
{
	sqlite3_stmt *st = NULL;
	sqlite3_str *q, *w;
	char *where = NULL;
	int64_t mask = 0;
	uint32_t i;
	int rc;

	q = sqlite3_str_new(s->db);
	sqlite3_str_appendf(q, "SELECT cid, dflt_value FROM pragma_table_xinfo(%Q) "
	    "WHERE hidden = 0 ORDER BY cid", t->name);
	if ((rc = sto_str_prep(s->db, q, &st, err)))
		return rc;
	w = sqlite3_str_new(s->db);
	sqlite3_str_appendall(w, " WHERE 0");
	for (i = t->rowid_key; sqlite3_step(st) == SQLITE_ROW; i++) {
		const char *d = (const char *)sqlite3_column_text(st, 1);

		if (i < from || i >= t->ncols)
			continue;
		mask |= (int64_t)1 << i;
		sqlite3_str_appendf(w, " OR \"%w\" IS NOT (%s)", t->cols[i], d ? d : "NULL");
	}
	sqlite3_finalize(st);
	if ((rc = sto_str_finish(w, &where, err)) || !mask)
		goto out;
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask, ");
	sto_str_ks(q, t->npk, "");
	sqlite3_str_appendf(q, ") SELECT %" PRId64 ", 2, %" PRId64, t->id, mask);
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", \"%w\"", t->cols[t->pk[i]]);
	sqlite3_str_appendf(q, " FROM \"%w\"%s", t->name, where);
	rc = sto_str_exec(s->db, q, err);
out:
	sqlite3_free(where);
	return rc;
}

/* Describe t again and re-make its triggers; t keeps its number. */
int sto_retrack(struct ws_store *s, struct tbl *t, char *err)
{
	struct tbl n;
	int rc;

	if ((rc = sto_describe(s, t->name, &n, err)))
		return rc;
	n.id = t->id;
	if ((rc = save_table(s, &n, err)) || (rc = make_triggers(s, &n, err))) {
		sto_tbl_release(&n);
		return rc;
	}
	sto_tbl_release(t);
	*t = n;
	return 0;
}

int sto_triggers_last(struct ws_store *s, int force, char *err)
{
	size_t i;
	int rc;

	if (!force && !sto_meta_exists(s, "SELECT 1 WHERE (SELECT max(rowid) FROM "
	    "sqlite_schema WHERE name NOT LIKE 'wsync\\_%' ESCAPE '\\' AND name NOT "
	    "LIKE 'sqlite\\_%' ESCAPE '\\') > (SELECT min(rowid) FROM sqlite_schema "
	    "WHERE type = 'trigger' AND name LIKE 'wsync\\_%' ESCAPE '\\')"))
		return 0;
	for (i = 0; i < s->nt; i++)
		if ((rc = sto_retrack(s, &s->t[i], err)))
			return rc;
	return 0;
}

/*
 * WS_ESCHEMA when the pin of t, a table keyed by its rowid, is gone (see
 * put_pin()): a VACUUM since then may have renumbered its rows, and
 * nothing tells for sure.  wsync does not guess; the message says how
 * to go on.
 */
static int check_pin(struct ws_store *s, const struct tbl *t, char *err)
{
	sqlite3_stmt *st;
	char *name = sqlite3_mprintf("wsync_pin_%s", t->name);
	int rc, found;

	if (!name)
		return WS_ENOMEM;
	if ((rc = sto_stmt(s, "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND "
	    "name = ?1 AND tbl_name = ?2", &st, err))) {
		sqlite3_free(name);
		return rc;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, t->name, -1, SQLITE_STATIC);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	sqlite3_free(name);
	if (found)
		return 0;
	return ws_error(err, WS_ESCHEMA, "table '%s' has no primary key and lost "
	    "its index wsync_pin_%s: a VACUUM since may have renumbered its rows "
	    "(see ROWID KEYS in wsync(7))", t->name, t->name);
}

/*
 * Follow schema changes of tracked tables: columns added at the end are
 * tracked from now on; anything else is WS_ESCHEMA.  Cheap when the
 * schema did not change.  Call inside a write transaction.
 */
int sto_follow_schema(struct ws_store *s, char *err)
{
	struct tbl t;
	size_t i;
	uint32_t k, was;
	int rc, ver = 0;

	if ((rc = sto_schema_version(s, &ver, err)))
		return rc;
	if (ver == s->schema_version)
		return 0;
	/* Only ADD COLUMN may change a tracked table's agreed definition. */
	if ((rc = sto_schema_check_local(s, err)))
		return rc;
	for (i = 0; i < s->nt; i++) {
		if ((rc = sto_describe(s, s->t[i].name, &t, err)))
			return rc == WS_ENOTFOUND ? ws_error(err, WS_ESCHEMA,
			    "tracked table '%s' was dropped: DROP TABLE does not "
			    "replicate (see MIGRATION in wsync(7))", s->t[i].name) : rc;
		if (t.rowid_key && (rc = check_pin(s, &t, err))) {
			sto_tbl_release(&t);
			return rc;
		}
		rc = t.ncols < s->t[i].ncols || t.npk != s->t[i].npk;
		for (k = 0; !rc && k < s->t[i].ncols; k++)
			rc = strcmp(t.cols[k], s->t[i].cols[k]) != 0;
		for (k = 0; !rc && k < t.npk; k++)
			rc = t.pk[k] != s->t[i].pk[k];
		if (rc) {
			rc = ws_error(err, WS_ESCHEMA, "tracked table '%s' changed: "
			    "only ALTER TABLE ADD COLUMN replicates (see MIGRATION in "
			    "wsync(7))", t.name);
			sto_tbl_release(&t);
			return rc;
		}
		if (t.ncols > s->t[i].ncols) {
			t.id = s->t[i].id;
			was = s->t[i].ncols;
			if ((rc = save_table(s, &t, err)) ||
			    (rc = make_triggers(s, &t, err)) ||
			    (rc = log_new_columns(s, &t, was, err))) {
				sto_tbl_release(&t);
				return rc;
			}
			sto_tbl_release(&s->t[i]);
			s->t[i] = t;
		} else {
			sto_tbl_release(&t);
		}
	}
	/* A working set of every table takes the tables made since. */
	if (sto_meta_int(s, "track_all") && (rc = track_all_tables(s, err)))
		return rc;
	if ((rc = sto_triggers_last(s, 0, err)))
		return rc;
	/* Our own trigger changes moved schema_version: read it again. */
	return sto_schema_version(s, &s->schema_version, err);
}
