/* SPDX-License-Identifier: MIT */
/*
 * store.c - a working set in SQLite: opening and closing a store, its
 * metadata tables (their schema, and the one list of every wsync_* table
 * below), meta values, site numbers, the tracked tables' records, the
 * vector clock, usns, and the prepared-statement caches (by SQL, and per
 * tracked table: sto_tstmt()).
 *
 * The store's other files, behind store-int.h:
 *   store-track.c      tracking: describing a table, capture triggers,
 *                      following schema changes
 *   store-seal.c       sealing local batches; renewing a copy's site id
 *   store-apply.c      a remote batch's way in: schema fit, causal order,
 *                      waiting in wsync_pending, the transaction
 *   store-merge.c      the merge rule, change by change
 *   store-claims.c     claims on UNIQUE values, for the merge's contests
 *   store-extract.c    batches out of the log (changes since, missing)
 *   store-conflicts.c  listing and resolving conflicts
 *   store-gc.c         garbage collection and the collected horizon
 *   store-snap.c       full copies, sent and received
 *   store-scan.c       capture by comparison, for writers without triggers
 *   store-schema.c     the working set's agreed schema record
 *   store-info.c       what callers outside the store read and write
 *
 * Metadata tables (all in the tracked database):
 *   wsync_meta(key, value)          site id, working-set id, guid, gc clock,
 *                                   sealed usn
 *   wsync_state(id, applying)       1 while this store applies remote changes,
 *                                   so the triggers do not capture them again
 *   wsync_tables(id, name, cols, pk)  tracked tables; cols and pk as JSON
 *   wsync_sites(id, site)           site ids, numbered locally
 *   wsync_clock(site, counter)      the vector clock
 *   wsync_batches(site, counter, first_usn, last_usn, lamport, clock)
 *                                   one row a batch: its dot, its log range,
 *                                   its Lamport number and causal context
 *   wsync_log(usn, tbl, op, mask, lost, k1..kN)
 *                                   one row a change: mask holds the columns
 *                                   whose value it set, lost those where it
 *                                   lost to a concurrent version; k1..kN the
 *                                   primary key.  tbl 0 marks an empty batch.
 *   wsync_conflicts(id, tbl, pk, col, lostdel, site, counter, lamport, value)
 *                                   the losing concurrent versions
 *   wsync_pending(site, counter, batch)  remote batches waiting for the
 *                                   batches they depend on
 *   wsync_schema(seq, type, name, tbl, sql)  the schema record last agreed
 *                                   with the hub, in its order (seq)
 *   wsync_prior(usn, col, value)    the value column col held before log
 *                                   entry usn replaced it (an update's
 *                                   columns, a delete's every column): an
 *                                   older entry travels with the values it
 *                                   set, not those that replaced them;
 *                                   col -1 - N: what entry usn set in
 *                                   column N where it lost (no row holds
 *                                   it); constrained tables only
 *   wsync_claims(tbl, idx, val, pk, usn)  the values writes took in UNIQUE
 *                                   indexes (store-claims.c)
 *   wsync_scan(tbl, key, h)         each row's last known state, for
 *                                   capture by comparison (store-scan.c)
 *   wsync_members(site, clock, seen), wsync_site_keys(site, key)
 *                                   a hub's only: how far each site of the
 *                                   set has got, and which key owns which
 *                                   site id (store-info.c)
 *   temp.wsync_snap, temp.wsync_snap_keys, temp.wsync_snap_gone
 *                                   a full copy being received, on this
 *                                   connection only (store-snap.c)
 * Table replication (replicate-pull.c) keeps its own state beside them:
 *   wsync_replica, wsync_replica_full, wsync_replica_deleted,
 *   wsync_replica_applying, wsync_replica_out.
 *
 * A cell's version is the dot of the newest log entry that set it (mask),
 * unless a newer delete removed the row.  A cell with no entry has a
 * version every site has seen (it was garbage-collected), which any new
 * change replaces.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsync/store-test.h"
#include "store-int.h"

/*
 * A prepared statement for sql from the cache, reset and unbound, or
 * prepared now and kept.  The statement stays owned by the cache: never
 * finalize it, and do not hold it across a call that may use the same
 * SQL.
 */
int sto_stmt(struct ws_store *s, const char *sql, sqlite3_stmt **st, char *err)
{
	uint32_t h = 2166136261u;
	const char *p;
	struct cached *c;
	size_t i;
	int rc;

	for (p = sql; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	for (i = 0; i < STMT_CACHE; i++) {
		c = &s->cache[(h + i) % STMT_CACHE];
		if (!c->sql)
			break;
		if (strcmp(c->sql, sql) == 0) {
			sqlite3_reset(c->st);
			sqlite3_clear_bindings(c->st);
			*st = c->st;
			return 0;
		}
	}
	if (i == STMT_CACHE) { /* full: evict the home slot */
		c = &s->cache[h % STMT_CACHE];
		sqlite3_finalize(c->st);
		free(c->sql);
		c->sql = NULL;
	}
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
	if (rc != SQLITE_OK)
		return sto_sqlerr(s->db, rc, "sqlite", err);
	if (!(c->sql = strdup(sql))) {
		sqlite3_finalize(*st);
		return WS_ENOMEM;
	}
	c->st = *st;
	return 0;
}

int sto_str_stmt(struct ws_store *s, sqlite3_str *q, sqlite3_stmt **st, char *err)
{
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = sto_stmt(s, sql, st, err);
	sqlite3_free(sql);
	return rc;
}

static void stmt_clear(struct ws_store *s)
{
	size_t i;

	for (i = 0; i < STMT_CACHE; i++) {
		sqlite3_finalize(s->cache[i].st);
		free(s->cache[i].sql);
		s->cache[i].st = NULL;
		s->cache[i].sql = NULL;
	}
}

/* Run sql, which takes one integer ?1, once. */
int sto_exec_int(struct ws_store *s, const char *sql, int64_t v, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_stmt(s, sql, &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, v);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "sqlite", err);
}

void sto_uniq_release(struct tbl *t)
{
	uint32_t i;

	for (i = 0; i < t->nuniq; i++)
		free(t->uniq[i].name);
	free(t->uniq);
	t->uniq = NULL;
	t->nuniq = 0;
	for (i = 0; i < t->nfk; i++)
		free(t->fk[i].parent);
	free(t->fk);
	t->fk = NULL;
	t->nfk = 0;
	t->uniq_at = 0;
}

void sto_tbl_release(struct tbl *t)
{
	uint32_t i;

	for (i = 0; i < TSTMT_CACHE; i++)
		sqlite3_finalize(t->tc[i].st);
	sto_uniq_release(t);
	for (i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t->pk);
	free(t->name);
	memset(t, 0, sizeof(*t));
}

static void tables_release(struct ws_store *s)
{
	size_t i;

	for (i = 0; i < s->nt; i++)
		sto_tbl_release(&s->t[i]);
	free(s->t);
	s->t = NULL;
	s->nt = 0;
}

void ws_store_close(struct ws_store *s)
{
	if (!s)
		return;
	tables_release(s);
	stmt_clear(s);
	sqlite3_close(s->db);
	ws_vclock_release(&s->snap);
	free(s->wsid);
	free(s->sites);
	free(s);
}

struct sqlite3 *ws_store_db(struct ws_store *s)
{
	return s->db;
}

const struct ws_siteid *ws_store_site(const struct ws_store *s)
{
	return &s->site;
}

const char *ws_store_wsid(const struct ws_store *s)
{
	return s->wsid;
}

int ws_store_guid(const struct ws_store *s, uint8_t guid[WS_GUID_LEN])
{
	if (s->has_guid)
		memcpy(guid, s->guid, WS_GUID_LEN);
	return s->has_guid;
}

/* Meta values: get a blob/text into a malloc'd copy, or set one. */
int sto_meta_get(struct ws_store *s, const char *key, void **val, size_t *n,
    char *err)
{
	sqlite3_stmt *st;
	int rc;

	*val = NULL;
	*n = 0;
	if ((rc = sto_prep(s->db, "SELECT value FROM wsync_meta WHERE key = ?1", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*n = (size_t)sqlite3_column_bytes(st, 0);
		if ((*val = malloc(*n + 1))) {
			memcpy(*val, sqlite3_column_blob(st, 0), *n);
			((char *)*val)[*n] = 0;
		}
		rc = *val ? 0 : WS_ENOMEM;
	} else {
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "meta", err);
	}
	sqlite3_finalize(st);
	return rc;
}

/* Set meta key to value v (any type). */
static int meta_put(struct ws_store *s, const char *key, const struct ws_value *v,
    char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_stmt(s, "INSERT OR REPLACE INTO wsync_meta(key, value) "
	    "VALUES(?1, ?2)", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sto_bind_value(st, 2, v);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "meta", err);
}

int sto_meta_set(struct ws_store *s, const char *key, const void *val,
    size_t n, int text, char *err)
{
	struct ws_value v = {.type = text ? WS_TEXT : WS_BLOB, .p = val, .n = n};

	return meta_put(s, key, &v, err);
}

int64_t sto_meta_int(struct ws_store *s, const char *key)
{
	sqlite3_stmt *st;
	int64_t v = 0;

	if (sqlite3_prepare_v2(s->db, "SELECT value FROM wsync_meta WHERE key = ?1",
	    -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* 1 if the query sql gives a row (errors count as a row: the safe side). */
int sto_meta_exists(struct ws_store *s, const char *sql)
{
	sqlite3_stmt *st;
	int rc;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return 1;
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc != SQLITE_DONE;
}

int sto_meta_set_int(struct ws_store *s, const char *key, int64_t v, char *err)
{
	struct ws_value x = {.type = WS_INTEGER, .i = v};

	return meta_put(s, key, &x, err);
}

/* Local number of a site id, adding it if new. */
int sto_site_index(struct ws_store *s, const struct ws_siteid *id, int64_t *out,
    char *err)
{
	struct ws_siteid *p;
	sqlite3_stmt *st;
	size_t i;
	int rc;

	for (i = 1; i < s->nsites; i++)
		if (memcmp(s->sites[i].b, id->b, WS_SITEID_LEN) == 0) {
			*out = (int64_t)i;
			return 0;
		}
	if ((rc = sto_prep(s->db, "INSERT INTO wsync_sites(id, site) VALUES(?1, ?2)", &st, err)))
		return rc;
	i = s->nsites ? s->nsites : 1;
	sqlite3_bind_int64(st, 1, (int64_t)i);
	sqlite3_bind_blob(st, 2, id->b, WS_SITEID_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 : sto_sqlerr(s->db, sqlite3_errcode(s->db),
	    "sites", err);
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (!(p = realloc(s->sites, (i + 1) * sizeof(*p))))
		return WS_ENOMEM;
	s->sites = p;
	s->sites[i] = *id;
	s->nsites = i + 1;
	*out = (int64_t)i;
	return 0;
}

static int load_sites(struct ws_store *s, char *err)
{
	sqlite3_stmt *st;
	struct ws_siteid *p;
	int64_t id;
	int rc;

	free(s->sites);
	s->sites = NULL;
	s->nsites = 0;
	if ((rc = sto_prep(s->db, "SELECT id, site FROM wsync_sites ORDER BY id", &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (id < 1 || id > 1 << 24 || sqlite3_column_bytes(st, 1) != WS_SITEID_LEN) {
			rc = ws_error(err, WS_ECORRUPT, "wsync_sites is damaged");
			goto out;
		}
		if ((size_t)id >= s->nsites) {
			if (!(p = realloc(s->sites, ((size_t)id + 1) * sizeof(*p)))) {
				rc = WS_ENOMEM;
				goto out;
			}
			memset(p + s->nsites, 0, ((size_t)id + 1 - s->nsites) * sizeof(*p));
			s->sites = p;
			s->nsites = (size_t)id + 1;
		}
		memcpy(s->sites[id].b, sqlite3_column_blob(st, 1), WS_SITEID_LEN);
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "sites", err);
out:
	sqlite3_finalize(st);
	return rc;
}

static const char schema_sql[] =
    "CREATE TABLE IF NOT EXISTS wsync_meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS wsync_state(id INTEGER PRIMARY KEY CHECK (id = 0),"
    " applying INTEGER NOT NULL);"
    "INSERT OR IGNORE INTO wsync_state VALUES(0, 0);"
    "CREATE TABLE IF NOT EXISTS wsync_tables(id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE, cols TEXT NOT NULL, pk TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS wsync_sites(id INTEGER PRIMARY KEY,"
    " site BLOB NOT NULL UNIQUE);"
    "CREATE TABLE IF NOT EXISTS wsync_clock(site INTEGER PRIMARY KEY,"
    " counter INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS wsync_batches(site INTEGER NOT NULL,"
    " counter INTEGER NOT NULL, first_usn INTEGER NOT NULL,"
    " last_usn INTEGER NOT NULL, lamport INTEGER NOT NULL, clock BLOB NOT NULL,"
    " PRIMARY KEY(site, counter)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS wsync_batches_usn ON wsync_batches(last_usn);"
    "CREATE TABLE IF NOT EXISTS wsync_log(usn INTEGER PRIMARY KEY,"
    " tbl INTEGER NOT NULL, op INTEGER NOT NULL, mask INTEGER NOT NULL,"
    " lost INTEGER NOT NULL DEFAULT 0, k1);"
    /* usn is the rowid, which every index entry ends with already */
    "CREATE INDEX IF NOT EXISTS wsync_log_key ON wsync_log(tbl, k1);"
    "CREATE TABLE IF NOT EXISTS wsync_conflicts(id INTEGER PRIMARY KEY,"
    " tbl INTEGER NOT NULL, pk BLOB NOT NULL, col INTEGER NOT NULL,"
    " lostdel INTEGER NOT NULL, site INTEGER NOT NULL, counter INTEGER NOT NULL,"
    " lamport INTEGER NOT NULL, value);"
    "CREATE INDEX IF NOT EXISTS wsync_conflicts_cell ON wsync_conflicts(tbl, pk, col);"
    "CREATE TABLE IF NOT EXISTS wsync_pending(site BLOB NOT NULL,"
    " counter INTEGER NOT NULL, batch BLOB NOT NULL, PRIMARY KEY(site, counter))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS wsync_schema(seq INTEGER PRIMARY KEY,"
    " type INTEGER NOT NULL, name TEXT NOT NULL UNIQUE, tbl TEXT NOT NULL,"
    " sql TEXT NOT NULL);"
    /* the values a change replaced, for the older entries that set them */
    "CREATE TABLE IF NOT EXISTS wsync_prior(usn INTEGER NOT NULL,"
    " col INTEGER NOT NULL, value, PRIMARY KEY(usn, col)) WITHOUT ROWID;"
    /* store-claims.c: the values each write took in a UNIQUE index */
    "CREATE TABLE IF NOT EXISTS wsync_claims(tbl INTEGER NOT NULL,"
    " idx TEXT NOT NULL, val BLOB NOT NULL, pk BLOB NOT NULL,"
    " usn INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS wsync_claims_val ON wsync_claims(tbl, idx, val);"
    "CREATE INDEX IF NOT EXISTS wsync_claims_usn ON wsync_claims(usn);"
    /* store-scan.c: the last known state of each row, with scanning on */
    "CREATE TABLE IF NOT EXISTS wsync_scan(tbl INTEGER NOT NULL,"
    " key BLOB NOT NULL, h BLOB NOT NULL, PRIMARY KEY(tbl, key)) WITHOUT ROWID;";

/* Count the k columns of wsync_log. */
int sto_count_k(struct ws_store *s, char *err)
{
	sqlite3_stmt *st;
	const char *name;
	int rc;

	s->nk = 0;
	if ((rc = sto_prep(s->db, "PRAGMA table_info(wsync_log)", &st, err)))
		return rc;
	while (sqlite3_step(st) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 1);
		if (name && name[0] == 'k')
			s->nk++;
	}
	sqlite3_finalize(st);
	return 0;
}

static int parse_table_row(struct tbl *t, int64_t id, const char *name,
    const char *cols, const char *pk)
{
	json_t *jc = json_loads(cols, 0, NULL), *jp = json_loads(pk, 0, NULL);
	size_t i;
	int rc = WS_ECORRUPT;

	memset(t, 0, sizeof(*t));
	t->id = id;
	if (!json_is_array(jc) || !json_is_array(jp) || json_array_size(jc) == 0 ||
	    json_array_size(jc) > MAX_TRACKED_COLS || json_array_size(jp) == 0)
		goto out;
	t->ncols = (uint32_t)json_array_size(jc);
	t->npk = (uint32_t)json_array_size(jp);
	t->name = strdup(name);
	t->cols = calloc(t->ncols, sizeof(*t->cols));
	t->pk = calloc(t->npk, sizeof(*t->pk));
	if (!t->name || !t->cols || !t->pk) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < t->ncols; i++)
		if (!json_is_string(json_array_get(jc, i)) ||
		    !(t->cols[i] = strdup(json_string_value(json_array_get(jc, i)))))
			goto out;
	t->allmask = (int64_t)((1ull << t->ncols) - 1);
	for (i = 0; i < t->npk; i++) {
		json_int_t k = json_integer_value(json_array_get(jp, i));

		if (!json_is_integer(json_array_get(jp, i)) || k < 0 || k >= t->ncols)
			goto out;
		t->pk[i] = (uint32_t)k;
		t->allmask &= ~(int64_t)(1ull << k);
	}
	rc = 0;
out:
	json_decref(jc);
	json_decref(jp);
	return rc;
}

int sto_load_tables(struct ws_store *s, char *err)
{
	sqlite3_stmt *st;
	struct tbl *p;
	int rc;

	tables_release(s);
	if ((rc = sto_prep(s->db, "SELECT id, name, cols, pk FROM wsync_tables ORDER BY id",
	    &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!(p = realloc(s->t, (s->nt + 1) * sizeof(*p)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		s->t = p;
		if ((rc = parse_table_row(&s->t[s->nt], sqlite3_column_int64(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    (const char *)sqlite3_column_text(st, 2),
		    (const char *)sqlite3_column_text(st, 3)))) {
			sto_tbl_release(&s->t[s->nt]);
			rc = ws_error(err, rc, "wsync_tables is damaged");
			goto out;
		}
		s->nt++;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "tables", err);
out:
	sqlite3_finalize(st);
	return rc;
}

struct tbl *sto_find_tbl(struct ws_store *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nt; i++)
		if (strcmp(s->t[i].name, name) == 0)
			return &s->t[i];
	return NULL;
}

struct tbl *sto_tbl_by_id(struct ws_store *s, int64_t id)
{
	size_t i;

	for (i = 0; i < s->nt; i++)
		if (s->t[i].id == id)
			return &s->t[i];
	return NULL;
}

/* Encode the k values of the current row of st (columns from..) as a pk blob. */
int sto_pk_blob(sqlite3_stmt *st, int from, uint32_t npk, struct ws_buf *out)
{
	struct ws_value v;
	uint32_t i;
	int rc = 0;

	out->len = 0;
	for (i = 0; rc == 0 && i < npk; i++) {
		sto_value_of(sqlite3_column_value(st, from + (int)i), &v);
		rc = ws_value_encode(&v, out);
	}
	return rc;
}

void ws_store_remove_files(const char *path)
{
	static const char *const ext[] = {"", "-wal", "-shm", "-journal"};
	char name[PATH_MAX];
	size_t i;

	for (i = 0; i < 4; i++)
		if ((size_t)snprintf(name, sizeof(name), "%s%s", path, ext[i]) <
		    sizeof(name))
			unlink(name);
}

int ws_store_open(struct ws_store **out, const char *path, const char *wsid,
    unsigned flags, char *err)
{
	struct ws_store *s;
	void *val = NULL;
	size_t n;
	int rc, oflags;

	*out = NULL;
	if (!path || !wsid || !*wsid)
		return ws_error(err, WS_EINVAL, "a store needs a file and a working-set id");
	if (!(flags & WS_STORE_CREATE) && access(path, F_OK) != 0) {
		char buf[64];

		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : WS_EIO,
		    "cannot open '%s': %s", path, ws_errno_text(errno, buf));
	}
	if (!(s = calloc(1, sizeof(*s))) || !(s->wsid = strdup(wsid))) {
		free(s);
		return WS_ENOMEM;
	}
	s->schema_told = -1;
	s->fk_ver = -1;
	s->scan_dv = -1;
	oflags = flags & WS_STORE_READONLY ? SQLITE_OPEN_READONLY :
	    SQLITE_OPEN_READWRITE | (flags & WS_STORE_CREATE ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
	if (rc != SQLITE_OK) {
		int e = s->db ? sqlite3_system_errno(s->db) : 0, there = access(path, F_OK) == 0;
		char buf[64], dir[PATH_MAX], *slash;

		/* SQLite's errno may be a later call's: ask the directory too. */
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = 0;
		if (!there && access(slash ? dir : ".", W_OK) != 0 &&
		    (errno == EACCES || errno == EPERM || errno == EROFS))
			e = errno;

		rc = sto_sqlerr(s->db, rc, "cannot open database", err);
		/* Name the file, and say whether it was opening or creating. */
		if (rc == WS_EPERM || e == EACCES || e == EPERM)
			rc = ws_error(err, WS_EPERM, "cannot %s '%s': permission denied",
			    there ? "open" : "create", path);
		else if (e)
			rc = ws_error(err, rc, "cannot %s '%s': %s", there ? "open" : "create",
			    path, ws_errno_text(e, buf));
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 0);
	sqlite3_busy_timeout(s->db, WS_SQL_BUSY_MS);
	if (!(flags & WS_STORE_READONLY)) {
		if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
			goto fail_tx;
		if ((rc = sto_exec(s->db, schema_sql, err)) ||
		    (rc = sto_meta_get(s, "wsid", &val, &n, err)))
			goto fail_tx;
		if (!val && !(flags & WS_STORE_CREATE)) {
			rc = ws_error(err, WS_ENOTFOUND, "'%s' holds no wsync working "
			    "set", path);
			goto fail_tx;
		}
		if (!val) {
			ws_siteid_random(&s->site);
			if ((rc = sto_meta_set(s, "wsid", wsid, strlen(wsid), 1, err)) ||
			    (rc = sto_meta_set(s, "site", s->site.b, WS_SITEID_LEN, 0, err)) ||
			    (rc = sto_meta_set_int(s, "format", 2, err)) ||
			    (rc = load_sites(s, err)) ||
			    (rc = sto_site_index(s, &s->site, &s->self, err)))
				goto fail_tx;
		}
		if ((rc = sto_exec(s->db, "COMMIT", err)))
			goto fail_tx;
	} else if ((rc = sto_meta_get(s, "wsid", &val, &n, err))) {
		goto fail;
	}
	free(val);
	if ((rc = sto_meta_get(s, "wsid", &val, &n, err)))
		goto fail;
	if (!val || strcmp(val, wsid) != 0) {
		rc = ws_error(err, WS_ECONFIG, "'%s' holds working set '%s', not '%s'",
		    path, val ? (char *)val : "(none)", wsid);
		goto fail;
	}
	free(val);
	if ((rc = sto_meta_get(s, "site", &val, &n, err)))
		goto fail;
	if (!val || n != WS_SITEID_LEN) {
		rc = ws_error(err, WS_ECORRUPT, "'%s': bad wsync site id", path);
		goto fail;
	}
	memcpy(s->site.b, val, WS_SITEID_LEN);
	free(val);
	if ((rc = sto_meta_get(s, "guid", &val, &n, err)))
		goto fail;
	if (val && n == WS_GUID_LEN) {
		memcpy(s->guid, val, WS_GUID_LEN);
		s->has_guid = 1;
	}
	free(val);
	val = NULL;
	if ((rc = load_sites(s, err)) || (rc = sto_load_tables(s, err)) ||
	    (rc = sto_count_k(s, err)))
		goto fail;
	if ((rc = sto_site_index(s, &s->site, &s->self, err)))
		goto fail;
	s->scan = sto_meta_int(s, "scan") != 0;
	/* Format 1 named capture triggers by table number: make them anew. */
	if (!(flags & WS_STORE_READONLY) && s->nt && sto_meta_int(s, "format") < 2 &&
	    ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)) ||
	    (rc = sto_triggers_last(s, 1, err)) ||
	    (rc = sto_meta_set_int(s, "format", 2, err)) ||
	    (rc = sto_exec(s->db, "COMMIT", err))))
		goto fail_tx;
	*out = s;
	return 0;
fail_tx:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (rc == WS_EBUSY)
		ws_error(err, rc, "'%s' is locked by another writer", path);
	else if (rc == WS_EPERM)
		ws_error(err, rc, "cannot write '%s': permission denied", path);
fail:
	free(val);
	ws_store_close(s);
	return rc;
}

int ws_store_set_guid(struct ws_store *s, const uint8_t guid[WS_GUID_LEN], char *err)
{
	int rc;

	if (s->has_guid) {
		if (memcmp(s->guid, guid, WS_GUID_LEN) != 0)
			return ws_error(err, WS_ECONFIG, "working set '%s' has another "
			    "dataset guid", s->wsid);
		return 0;
	}
	if ((rc = sto_meta_set(s, "guid", guid, WS_GUID_LEN, 0, err)))
		return rc;
	memcpy(s->guid, guid, WS_GUID_LEN);
	s->has_guid = 1;
	return 0;
}

int ws_store_new_guid(struct ws_store *s, char *err)
{
	struct ws_siteid g;

	if (s->has_guid)
		return 0;
	ws_siteid_random(&g);
	return ws_store_set_guid(s, g.b, err);
}

int ws_store_clock(struct ws_store *s, struct ws_vclock *out, char *err)
{
	sqlite3_stmt *st;
	int64_t id;
	int rc;

	ws_vclock_reset(out);
	if ((rc = sto_prep(s->db, "SELECT site, counter FROM wsync_clock", &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		id = sqlite3_column_int64(st, 0);
		if (id < 1 || (size_t)id >= s->nsites) {
			rc = ws_error(err, WS_ECORRUPT, "wsync_clock names an unknown site");
			goto out;
		}
		if ((rc = ws_vclock_set(out, &s->sites[id],
		    (uint64_t)sqlite3_column_int64(st, 1))))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "clock", err);
out:
	sqlite3_finalize(st);
	return rc;
}

int sto_clock_set(struct ws_store *s, int64_t site, uint64_t counter, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_prep(s->db, "INSERT OR REPLACE INTO wsync_clock VALUES(?1, ?2)", &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, site);
	sqlite3_bind_int64(st, 2, (int64_t)counter);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "clock", err);
	sqlite3_finalize(st);
	return rc;
}

/* Run sql, which gives one integer, into *v. */
int sto_query_u64(struct ws_store *s, const char *sql, uint64_t *v, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_stmt(s, sql, &st, err)))
		return rc;
	rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sto_sqlerr(s->db, rc, "sqlite", err);
}

int ws_store_usn(struct ws_store *s, uint64_t *usn, char *err)
{
	return sto_query_u64(s, "SELECT coalesce(max(usn), 0) FROM wsync_log", usn, err);
}

int ws_store_sealed_usn(struct ws_store *s, uint64_t *usn, char *err)
{
	return sto_query_u64(s, "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM "
	    "wsync_meta WHERE key = 'sealed_usn'), 0)", usn, err);
}

void sto_str_pk_where(sqlite3_str *q, const struct tbl *t, unsigned n)
{
	uint32_t i;

	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, "%s\"%w\" IS ?%u", i ? " AND " : " WHERE ",
		    t->cols[t->pk[i]], n + i);
}

/*
 * The statement of `kind` for t, from t's cache or prepared now:
 *   TS_ROW  SELECT every column WHERE key IS ?1..
 *   TS_DEL  DELETE WHERE key IS ?1..
 *   TS_UPD  UPDATE SET the columns of mask (in column order) = ?1.., then
 *           WHERE key IS ?..
 *   TS_INS  INSERT the key columns and those of mask, in column order
 * The cache owns the statement: reset it after use, never finalize it.
 */
int sto_tstmt(struct ws_store *s, struct tbl *t, int kind, int64_t mask,
    sqlite3_stmt **st, char *err)
{
	sqlite3_str *q;
	uint32_t i, n = 0;
	unsigned slot;
	int rc;

	for (slot = 0; slot < TSTMT_CACHE; slot++)
		if (t->tc[slot].st && t->tc[slot].kind == kind && t->tc[slot].mask == mask) {
			*st = t->tc[slot].st;
			sqlite3_reset(*st);
			sqlite3_clear_bindings(*st);
			return 0;
		}
	q = sqlite3_str_new(s->db);
	switch (kind) {
	case TS_ROW:
		sqlite3_str_appendall(q, "SELECT ");
		for (i = 0; i < t->ncols; i++)
			sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "", t->cols[i]);
		sqlite3_str_appendf(q, " FROM \"%w\"", t->name);
		sto_str_pk_where(q, t, 1);
		break;
	case TS_DEL:
		sqlite3_str_appendf(q, "DELETE FROM \"%w\"", t->name);
		sto_str_pk_where(q, t, 1);
		break;
	case TS_UPD:
		sqlite3_str_appendf(q, "UPDATE \"%w\"", t->name);
		for (i = 0; i < t->ncols; i++)
			if ((mask >> i) & 1) {
				sqlite3_str_appendf(q, "%s\"%w\" = ?%u", n ? ", " : " SET ",
				    t->cols[i], n + 1);
				n++;
			}
		sto_str_pk_where(q, t, n + 1);
		break;
	default:
		sqlite3_str_appendf(q, "INSERT INTO \"%w\"(", t->name);
		for (i = 0; i < t->ncols; i++)
			if (((mask >> i) & 1) || !((t->allmask >> i) & 1))
				sqlite3_str_appendf(q, "%s\"%w\"", n++ ? ", " : "", t->cols[i]);
		sqlite3_str_appendall(q, ") VALUES(");
		for (i = 0; i < n; i++)
			sqlite3_str_appendall(q, i ? ", ?" : "?");
		sqlite3_str_appendall(q, ")");
		break;
	}
	if ((rc = sto_str_prep(s->db, q, st, err)))
		return rc;
	/*
	 * Slot 0 is TS_ROW's alone: apply_change() holds that statement, stepped,
	 * while it gets the others, so making room for them must never finalize
	 * it.
	 */
	slot = kind == TS_ROW ? 0 : 1 + t->tc_next++ % (TSTMT_CACHE - 1);
	sqlite3_finalize(t->tc[slot].st);
	t->tc[slot].kind = kind;
	t->tc[slot].mask = mask;
	t->tc[slot].st = *st;
	return 0;
}
