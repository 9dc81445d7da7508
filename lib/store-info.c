/* SPDX-License-Identifier: MIT */
/*
 * store-info.c - what callers outside the store read and write of its
 * tables, so that no file but the store's runs SQL on a store's database.
 *
 * Two parts:
 * - A database file read as it stands (struct ws_store_file): its
 *   integrity, its working-set id, the sizes of the change log, the
 *   tracked tables and the replicator's state.  wsync-inspect shows
 *   these for any SQLite file, a working set or not, without opening a
 *   store (which would want the file to be one).
 * - The hub's tables, wsync_members (how far each site of the set has
 *   got, for collection) and wsync_site_keys (which key owns which site
 *   id), and the journal mode the hub runs its stores in.
 *
 * The messages match what the callers printed before they moved here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "store-int.h"

/* --- a database file, read as it stands ---------------------------------- */

struct ws_store_file {
	sqlite3 *db;
};

int ws_store_file_open(struct ws_store_file **out, const char *path, char *err)
{
	struct ws_store_file *f;
	int rc;

	*out = NULL;
	if (!(f = calloc(1, sizeof(*f))))
		return WS_ENOMEM;
	if (sqlite3_open_v2(path, &f->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		rc = ws_error(err, WS_ECORRUPT, "cannot open database: %s",
		    f->db ? sqlite3_errmsg(f->db) : "cannot open");
		ws_store_file_close(f);
		return rc;
	}
	sqlite3_busy_timeout(f->db, WS_SQL_BUSY_MS);
	*out = f;
	return 0;
}

void ws_store_file_close(struct ws_store_file *f)
{
	if (!f)
		return;
	sqlite3_close(f->db);
	free(f);
}

int ws_store_file_check(struct ws_store_file *f, char *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *res;
	int rc = 0;

	if (sqlite3_prepare_v2(f->db, "PRAGMA quick_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		rc = ws_error(err, WS_ECORRUPT, "cannot check: %s", sqlite3_errmsg(f->db));
	else if (strcmp((res = sqlite3_column_text(st, 0)) ? (const char *)res : "",
	    "ok") != 0)
		rc = ws_error(err, WS_ECORRUPT, "damaged database: %s",
		    res ? (const char *)res : "");
	sqlite3_finalize(st);
	return rc;
}

/* 1 when the database has a table called name. */
static int has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st;
	int yes;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' "
	    "AND name = ?1", -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	yes = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return yes;
}

/* Scalar integer query; -1 when it fails or gives NULL. */
static int64_t one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

void ws_store_file_wsid(struct ws_store_file *f, char *wsid, size_t size)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *v;

	if (size)
		wsid[0] = '\0';
	if (size && has_table(f->db, "wsync_meta") &&
	    sqlite3_prepare_v2(f->db, "SELECT value FROM wsync_meta WHERE key = 'wsid'",
	    -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		snprintf(wsid, size, "%s", (v = sqlite3_column_text(st, 0)) ?
		    (const char *)v : "");
	sqlite3_finalize(st);
}

void ws_store_file_stats(struct ws_store_file *f, struct ws_store_stats *out)
{
	sqlite3 *db = f->db;

	out->tables = one_int(db, "SELECT count(*) FROM wsync_tables");
	out->entries = one_int(db, "SELECT count(*) FROM wsync_log");
	out->first_usn = one_int(db, "SELECT min(usn) FROM wsync_log");
	out->last_usn = one_int(db, "SELECT max(usn) FROM wsync_log");
	out->batches = one_int(db, "SELECT count(*) FROM wsync_batches");
	out->bytes = one_int(db, "SELECT sum(pgsize) FROM dbstat WHERE name IN "
	    "('wsync_log', 'wsync_log_key', 'wsync_batches', 'wsync_batches_usn')");
	out->conflicts = one_int(db, "SELECT count(*) FROM wsync_conflicts");
}

/* Text of column i, or "". */
static const char *coltext(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? (const char *)s : "";
}

/* Column i as text, or NULL when it is NULL. */
static const char *coltext_null(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NULL : coltext(st, i);
}

/* The string at index i of JSON array a, or "?" when there is none. */
static const char *json_name(const json_t *a, size_t i)
{
	const char *s = json_string_value(json_array_get(a, i));

	return s ? s : "?";
}

int ws_store_file_tables(struct ws_store_file *f, ws_store_table_cb *cb,
    void *clientData, char *err)
{
	struct ws_store_table t;
	sqlite3_stmt *st;
	json_t *cols = NULL, *pk = NULL;
	const char **names = NULL;
	size_t i;
	int rc = 0;

	if (sqlite3_prepare_v2(f->db, "SELECT name, cols, pk FROM wsync_tables "
	    "ORDER BY name", -1, &st, NULL) != SQLITE_OK)
		return ws_error(err, WS_ECORRUPT, "cannot read wsync_tables: %s",
		    sqlite3_errmsg(f->db));
	while (!rc && sqlite3_step(st) == SQLITE_ROW) {
		cols = json_loads(coltext(st, 1), 0, NULL);
		pk = json_loads(coltext(st, 2), 0, NULL);
		t.name = coltext(st, 0);
		t.ncols = json_array_size(cols);
		t.npk = json_array_size(pk);
		/* One array: the columns' names, then the key's. */
		if (!cols || !(names = calloc(t.ncols + t.npk + 1, sizeof(*names)))) {
			rc = WS_ENOMEM;
			break;
		}
		for (i = 0; i < t.ncols; i++)
			names[i] = json_name(cols, i);
		for (i = 0; i < t.npk; i++)
			names[t.ncols + i] = json_name(cols,
			    (size_t)json_integer_value(json_array_get(pk, i)));
		t.cols = names;
		t.pk = names + t.ncols;
		rc = cb(&t, clientData);
		free(names);
		names = NULL;
		json_decref(cols);
		json_decref(pk);
		cols = pk = NULL;
	}
	json_decref(cols);
	json_decref(pk);
	sqlite3_finalize(st);
	return rc;
}

int ws_store_file_replica(struct ws_store_file *f, int64_t *n,
    ws_store_replica_cb *cb, void *clientData, char *err)
{
	struct ws_store_replica r;
	sqlite3_stmt *st;
	int64_t count;
	int rc = 0;

	if (!has_table(f->db, "wsync_replica")) {
		*n = -1;
		return 0;
	}
	if (sqlite3_prepare_v2(f->db, "SELECT local_table, source, guid, usn, updated "
	    "FROM wsync_replica ORDER BY local_table", -1, &st, NULL) != SQLITE_OK)
		return ws_error(err, WS_ECORRUPT, "cannot read wsync_replica: %s",
		    sqlite3_errmsg(f->db));
	*n = (count = one_int(f->db, "SELECT count(*) FROM wsync_replica")) < 0 ? 0 : count;
	while (cb && !rc && sqlite3_step(st) == SQLITE_ROW) {
		r.table = coltext(st, 0);
		r.source = coltext_null(st, 1);
		r.guid = coltext_null(st, 2);
		r.usn = sqlite3_column_int64(st, 3);
		r.updated = coltext_null(st, 4);
		rc = cb(&r, clientData);
	}
	sqlite3_finalize(st);
	return rc;
}

/* --- the hub's tables ------------------------------------------------------ */

/* WS_EIO with the connection's last message, prefixed with the set's id
 * when `named`. */
static int hub_fail(struct ws_store *s, int named, char *err)
{
	if (named)
		return ws_error(err, WS_EIO, "working set '%s': %s", s->wsid,
		    sqlite3_errmsg(s->db));
	return ws_error(err, WS_EIO, "%s", sqlite3_errmsg(s->db));
}

int ws_store_hub_init(struct ws_store *s, char *err)
{
	/* One sync a commit instead of a journal's four: the hub commits
	 * every batch before it forwards it.  Durable across kill -9.  A
	 * file that cannot take WAL keeps its journal: not an error. */
	sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (sqlite3_exec(s->db, "CREATE TABLE IF NOT EXISTS "
	    "wsync_members(site BLOB PRIMARY KEY, clock BLOB NOT NULL, seen INTEGER "
	    "NOT NULL) WITHOUT ROWID; CREATE TABLE IF NOT EXISTS wsync_site_keys("
	    "site BLOB PRIMARY KEY, key BLOB NOT NULL) WITHOUT ROWID; CREATE INDEX "
	    "IF NOT EXISTS wsync_site_keys_key ON wsync_site_keys(key)",
	    NULL, NULL, NULL) != SQLITE_OK)
		return hub_fail(s, 1, err);
	return 0;
}

int ws_store_hub_begin(struct ws_store *s, char *err)
{
	return sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ?
	    0 : hub_fail(s, 0, err);
}

int ws_store_hub_commit(struct ws_store *s, char *err)
{
	return sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ?
	    0 : hub_fail(s, 0, err);
}

void ws_store_hub_rollback(struct ws_store *s)
{
	if (sqlite3_get_autocommit(s->db) == 0)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int ws_store_member_put(struct ws_store *s, const struct ws_siteid *site,
    const struct ws_vclock *clock, int64_t seen, char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *up = NULL;
	int rc;

	if ((rc = ws_vclock_encode(clock, &enc)))
		return rc;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO wsync_members VALUES(?1, ?2, ?3) ON "
	    "CONFLICT(site) DO UPDATE SET clock = excluded.clock, seen = excluded.seen",
	    -1, &up, NULL) == SQLITE_OK) {
		sqlite3_bind_blob(up, 1, site->b, WS_SITEID_LEN, SQLITE_STATIC);
		sqlite3_bind_blob(up, 2, enc.p ? enc.p : (const uint8_t *)"",
		    (int)enc.len, SQLITE_STATIC);
		sqlite3_bind_int64(up, 3, seen);
		rc = sqlite3_step(up) == SQLITE_DONE ? 0 : WS_EIO;
	} else {
		rc = WS_EIO;
	}
	if (rc)
		hub_fail(s, 0, err);
	sqlite3_finalize(up);
	ws_buf_release(&enc);
	return rc;
}

int ws_store_member_forget(struct ws_store *s, const struct ws_siteid *site,
    char *err)
{
	sqlite3_stmt *up = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "DELETE FROM wsync_members WHERE site = ?1",
	    -1, &up, NULL) != SQLITE_OK)
		return hub_fail(s, 0, err);
	sqlite3_bind_blob(up, 1, site->b, WS_SITEID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(up) == SQLITE_DONE ? 0 : hub_fail(s, 0, err);
	sqlite3_finalize(up);
	return rc;
}

int ws_store_members_expire(struct ws_store *s, int64_t before, int all, char *err)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(s->db, "DELETE FROM wsync_members WHERE seen < ?1 OR ?2",
	    -1, &st, NULL) != SQLITE_OK || sqlite3_bind_int64(st, 1, before) ||
	    sqlite3_bind_int(st, 2, all != 0) || sqlite3_step(st) != SQLITE_DONE)
		rc = hub_fail(s, 0, err);
	sqlite3_finalize(st);
	return rc;
}

int ws_store_members_meet(struct ws_store *s, struct ws_vclock *h, int *any,
    char *err)
{
	struct ws_vclock c = WS_VCLOCK_INIT;
	sqlite3_stmt *sel = NULL;
	int rc;

	*any = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT clock FROM wsync_members", -1, &sel,
	    NULL) != SQLITE_OK)
		return hub_fail(s, 0, err);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		if ((rc = ws_vclock_decode_all(&c, sqlite3_column_blob(sel, 0),
		    (size_t)sqlite3_column_bytes(sel, 0), err)))
			goto out;
		ws_vclock_meet(h, &c);
		*any = 1;
	}
	rc = rc == SQLITE_DONE ? 0 : hub_fail(s, 0, err);
out:
	sqlite3_finalize(sel);
	ws_vclock_release(&c);
	return rc;
}

int ws_store_site_key_bind(struct ws_store *s, const struct ws_siteid *site,
    const uint8_t *key, size_t keylen, size_t max, char *err)
{
	sqlite3_stmt *st = NULL;
	char hex[WS_SITEID_HEXLEN + 1];
	int rc = 0, n;

	ws_siteid_hex(site, hex);
	if (sqlite3_prepare_v2(s->db, "SELECT key = ?2 FROM wsync_site_keys WHERE "
	    "site = ?1", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_blob(st, 1, site->b, WS_SITEID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, key, (int)keylen, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (!sqlite3_column_int(st, 0))
			rc = ws_error(err, WS_EPERM, "working set '%s': site %s belongs to "
			    "another key", s->wsid, hex);
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM wsync_site_keys WHERE "
	    "key = ?1", -1, &st, NULL) != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_blob(st, 1, key, (int)keylen, SQLITE_STATIC);
	n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	if ((size_t)n >= max) {
		rc = ws_error(err, WS_EPERM, "working set '%s': this key already holds "
		    "%zu site ids, the most one may (wsync-serve --forget lets one go)",
		    s->wsid, max);
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->db, "INSERT INTO wsync_site_keys VALUES(?1, ?2)", -1,
	    &st, NULL) != SQLITE_OK)
		goto sqlfail;
	sqlite3_bind_blob(st, 1, site->b, WS_SITEID_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, key, (int)keylen, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		goto out;
sqlfail:
	rc = hub_fail(s, 1, err);
out:
	sqlite3_finalize(st);
	return rc;
}

int ws_store_forget_site(const char *path, const struct ws_siteid *site,
    int *changed, char *err)
{
	static const char *const forget_sql[2] = {
	    "DELETE FROM wsync_members WHERE site = ?1",
	    "DELETE FROM wsync_site_keys WHERE site = ?1"};
	sqlite3 *db = NULL;
	sqlite3_stmt *st;
	size_t k;
	int rc = 0, n = 0;

	*changed = 0;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(db, WS_SQL_BUSY_MS) != SQLITE_OK) {
		rc = ws_error(err, WS_EIO, "'%s': %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return rc;
	}
	/* A database without these tables is not a hub's: left alone. */
	for (k = 0; rc == 0 && k < 2; k++) {
		if (sqlite3_prepare_v2(db, forget_sql[k], -1, &st, NULL) != SQLITE_OK)
			continue;
		sqlite3_bind_blob(st, 1, site->b, WS_SITEID_LEN, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = ws_error(err, WS_EIO, "'%s': %s", path, sqlite3_errmsg(db));
		n += sqlite3_changes(db);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	*changed = n > 0;
	return rc;
}
