/* SPDX-License-Identifier: MIT */
/*
 * store.c - working sets in SQLite: tracking triggers, the change log,
 * sealing local batches, merging remote ones, conflicts and GC.
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
 *                                   set, not those that replaced them
 *   wsync_claims(tbl, idx, val, pk, usn)  the values writes took in UNIQUE
 *                                   indexes (store-claims.c)
 *   wsync_scan(tbl, key, h)         each row's last known state, for
 *                                   capture by comparison (store-scan.c)
 *
 * A cell's version is the dot of the newest log entry that set it (mask),
 * unless a newer delete removed the row.  A cell with no entry has a
 * version every site has seen (it was garbage-collected), which any new
 * change replaces.
 */
#include <errno.h>
#include <limits.h>
#include <inttypes.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wsync/store.h"
#include "wsync/store-test.h"
#include "store-int.h"

/* A version of a cell: a dot and its Lamport number; site 0 = none. */
struct ver {
	int64_t site;
	uint64_t counter;
	uint64_t lamport;
};

/*
 * A prepared statement for sql from the cache, reset and unbound, or
 * prepared now and kept.  The statement stays owned by the cache: never
 * finalize it, and do not hold it across a call that may use the same
 * SQL.
 */
static int stmt(struct ws_store *s, const char *sql, sqlite3_stmt **st, char *err)
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

int sto_stmt(struct ws_store *s, const char *sql, sqlite3_stmt **st, char *err)
{
	return stmt(s, sql, st, err);
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
static int exec_int(struct ws_store *s, const char *sql, int64_t v, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = stmt(s, sql, &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, v);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "sqlite", err);
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

void sto_tables_release(struct ws_store *s)
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
	sto_tables_release(s);
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

	if ((rc = stmt(s, "INSERT OR REPLACE INTO wsync_meta(key, value) "
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
static int meta_exists(struct ws_store *s, const char *sql)
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

/* The collected horizon (meta "gc") into *out, replacing it. */
static int stable_get(struct ws_store *s, struct ws_vclock *out, char *err)
{
	void *val = NULL;
	size_t n;
	int rc;

	ws_vclock_reset(out);
	if ((rc = sto_meta_get(s, "gc", &val, &n, err)) == 0 && val && n)
		rc = ws_vclock_decode_all(out, val, n, err);
	free(val);
	return rc;
}

int ws_store_stable(struct ws_store *s, struct ws_vclock *out, char *err)
{
	return stable_get(s, out, err);
}

/* Local number of a site id, adding it if new. */
static int site_index(struct ws_store *s, const struct ws_siteid *id, int64_t *out,
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

	sto_tables_release(s);
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
			    (rc = site_index(s, &s->site, &s->self, err)))
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
	if ((rc = site_index(s, &s->site, &s->self, err)))
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

static int clock_set(struct ws_store *s, int64_t site, uint64_t counter, char *err)
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
static int query_u64(struct ws_store *s, const char *sql, uint64_t *v, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = stmt(s, sql, &st, err)))
		return rc;
	rc = sqlite3_step(st);
	*v = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sto_sqlerr(s->db, rc, "sqlite", err);
}

int ws_store_usn(struct ws_store *s, uint64_t *usn, char *err)
{
	return query_u64(s, "SELECT coalesce(max(usn), 0) FROM wsync_log", usn, err);
}

int ws_store_sealed_usn(struct ws_store *s, uint64_t *usn, char *err)
{
	return query_u64(s, "SELECT coalesce((SELECT CAST(value AS INTEGER) FROM "
	    "wsync_meta WHERE key = 'sealed_usn'), 0)", usn, err);
}

/* Tracking. */

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
	struct ws_buf q = WS_BUF_INIT;
	sqlite3_stmt *st = NULL;
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
	if ((rc = ws_buf_printf(&q, "PRAGMA table_xinfo(")) || (rc = sto_qid(&q, name)) ||
	    (rc = ws_buf_putc(&q, ')')) || !sto_cstr(&q) ||
	    (rc = sto_prep(s->db, sto_cstr(&q), &st, err)))
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
	ws_buf_release(&q);
	if (rc)
		sto_tbl_release(t);
	return rc;
}

/* Append "k1, k2, ..." for n columns (with a leading ", " when lead). */
static int put_ks(struct ws_buf *b, unsigned n, const char *prefix)
{
	unsigned i;
	int rc = 0;

	for (i = 1; rc == 0 && i <= n; i++)
		rc = ws_buf_printf(b, "%s%sk%u", i > 1 ? ", " : "", prefix, i);
	return rc;
}

/* Make wsync_log hold n key columns, and its index cover them. */
static int grow_k(struct ws_store *s, unsigned n, char *err)
{
	struct ws_buf q = WS_BUF_INIT;
	int rc = 0;

	if (n <= s->nk)
		return 0;
	while (rc == 0 && s->nk < n) {
		q.len = 0;
		if ((rc = ws_buf_printf(&q, "ALTER TABLE wsync_log ADD COLUMN k%u",
		    s->nk + 1)) == 0 && sto_cstr(&q) && (rc = sto_exec(s->db, sto_cstr(&q), err)) == 0)
			s->nk++;
	}
	q.len = 0;
	if (rc == 0 && (rc = ws_buf_printf(&q, "DROP INDEX wsync_log_key;"
	    "CREATE INDEX wsync_log_key ON wsync_log(tbl, ")) == 0 &&
	    (rc = put_ks(&q, s->nk, "")) == 0 && (rc = ws_buf_printf(&q, ")")) == 0)
		rc = sto_cstr(&q) ? sto_exec(s->db, sto_cstr(&q), err) : WS_ENOMEM;
	ws_buf_release(&q);
	return rc;
}

/* Append ", <row>.<pk col>..." for t's key columns; row is NEW or OLD. */
static int put_keys(struct ws_buf *q, const struct tbl *t, const char *row)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(q, ", %s.", row);
		if (rc == 0) rc = sto_qid(q, t->cols[t->pk[i]]);
	}
	return rc;
}

/*
 * Append "(OLD.c IS NOT NEW.c COLLATE BINARY OR typeof(OLD.c) <>
 * typeof(NEW.c))": true when an update changed column c at all, even in
 * ways the column's own comparison calls equal (2.0 to 2, 'A' to 'a'
 * under NOCASE).
 */
static int put_changed(struct ws_buf *q, const char *col)
{
	int rc = ws_buf_printf(q, "(OLD.");

	if (rc == 0) rc = sto_qid(q, col);
	if (rc == 0) rc = ws_buf_printf(q, " IS NOT NEW.");
	if (rc == 0) rc = sto_qid(q, col);
	if (rc == 0) rc = ws_buf_printf(q, " COLLATE BINARY OR typeof(OLD.");
	if (rc == 0) rc = sto_qid(q, col);
	if (rc == 0) rc = ws_buf_printf(q, ") <> typeof(NEW.");
	if (rc == 0) rc = sto_qid(q, col);
	if (rc == 0) rc = ws_buf_printf(q, "))");
	return rc;
}

/* Append "0 OR <key column changed> ...": true when an update moves the key. */
static int put_key_moved(struct ws_buf *q, const struct tbl *t)
{
	uint32_t i;
	int rc = ws_buf_printf(q, "0");

	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(q, " OR ");
		if (rc == 0) rc = put_changed(q, t->cols[t->pk[i]]);
	}
	return rc;
}

/* Append SQL literal text: 'it''s'. */
static int put_lit(struct ws_buf *q, const char *text)
{
	char *lit = sqlite3_mprintf("%Q", text);
	int rc = lit ? ws_buf_printf(q, "%s", lit) : WS_ENOMEM;

	sqlite3_free(lit);
	return rc;
}

/* Append the name of t's capture trigger for kind: "wsync_<kind>_<table>". */
static int put_trigger_name(struct ws_buf *q, const struct tbl *t, const char *kind)
{
	char *name = sqlite3_mprintf("wsync_%s_%s", kind, t->name);
	int rc = name ? sto_qid(q, name) : WS_ENOMEM;

	sqlite3_free(name);
	return rc;
}

/*
 * Append the head of a capture trigger: "CREATE TRIGGER wsync_<kind>_<table>
 * AFTER <event> ON <table> WHEN ... BEGIN".  The trigger does nothing
 * while this store applies remote changes (wsync_state.applying), so they
 * are not captured again.  Its text names the table, never this copy's
 * number for it, so every copy's schema reads alike (.schema TABLE).
 */
static int put_trigger_head(struct ws_buf *q, const struct tbl *t,
    const char *kind, const char *event)
{
	int rc = ws_buf_printf(q, "CREATE TRIGGER ");

	if (rc == 0) rc = put_trigger_name(q, t, kind);
	if (rc == 0) rc = ws_buf_printf(q, " AFTER %s ON ", event);
	if (rc == 0) rc = sto_qid(q, t->name);
	if (rc == 0) rc = ws_buf_printf(q, " WHEN (SELECT applying FROM wsync_state)"
	    " = 0 BEGIN ");
	return rc;
}

/*
 * Append a capture trigger's note of the values the log entry it just
 * wrote (if it wrote one: changes()) replaced: the OLD value of each
 * column of its mask, or of every column for a delete (op 3).
 */
static int put_prior(struct ws_buf *q, const struct tbl *t, int op)
{
	uint32_t i, n = 0;
	int rc = ws_buf_printf(q, "INSERT INTO wsync_prior(usn, col, value) SELECT "
	    "l.usn, v.c, v.v FROM wsync_log AS l, (");

	/* (A multi-row VALUES cannot name OLD inside a trigger.) */
	for (i = 0; rc == 0 && i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1))
			continue;
		rc = ws_buf_printf(q, n++ ? " UNION ALL SELECT %u, OLD." :
		    "SELECT %u AS c, OLD.", i);
		if (rc == 0) rc = sto_qid(q, t->cols[i]);
		if (rc == 0 && n == 1) rc = ws_buf_printf(q, " AS v");
	}
	if (rc == 0) rc = ws_buf_printf(q, ") AS v WHERE changes() = 1 AND l.usn = "
	    "last_insert_rowid() AND l.op = %d%s; ", op,
	    op == 3 ? "" : " AND (l.mask >> v.c) & 1");
	return rc;
}

/*
 * Append "INSERT INTO wsync_log(tbl, op, mask, k1..kN) SELECT (the
 * table's number)": the head of a capture trigger's log write.
 */
static int put_log_head(struct ws_buf *q, const struct tbl *t)
{
	int rc = ws_buf_printf(q, "INSERT INTO wsync_log(tbl, op, mask, ");

	if (rc == 0) rc = put_ks(q, t->npk, "");
	if (rc == 0) rc = ws_buf_printf(q, ") SELECT (SELECT id FROM wsync_tables "
	    "WHERE name = ");
	if (rc == 0) rc = put_lit(q, t->name);
	if (rc == 0) rc = ws_buf_printf(q, ")");
	return rc;
}

/*
 * Append, for a table whose key SQLite lets hold NULL, a statement that
 * refuses such a row: a NULL key can never be matched on another copy.
 */
static int put_null_key_check(struct ws_buf *q, const struct tbl *t)
{
	char *msg;
	uint32_t i;
	int rc = 0;

	if (!t->null_key)
		return 0;
	if (!(msg = sqlite3_mprintf("wsync: NULL in the primary key of table '%s'",
	    t->name)))
		return WS_ENOMEM;
	rc = ws_buf_printf(q, "SELECT RAISE(ABORT, ");
	if (rc == 0) rc = put_lit(q, msg);
	if (rc == 0) rc = ws_buf_printf(q, ") WHERE 0");
	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(q, " OR NEW.");
		if (rc == 0) rc = sto_qid(q, t->cols[t->pk[i]]);
		if (rc == 0) rc = ws_buf_printf(q, " IS NULL");
	}
	if (rc == 0) rc = ws_buf_printf(q, "; ");
	sqlite3_free(msg);
	return rc;
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
static int put_pin(struct ws_buf *q, const struct tbl *t)
{
	char *name = sqlite3_mprintf("wsync_pin_%s", t->name);
	int rc = name ? 0 : WS_ENOMEM;

	if (rc == 0) rc = ws_buf_printf(q, "DROP INDEX IF EXISTS ");
	if (rc == 0) rc = sto_qid(q, name);
	if (rc == 0) rc = ws_buf_printf(q, "; CREATE INDEX ");
	if (rc == 0) rc = sto_qid(q, name);
	if (rc == 0) rc = ws_buf_printf(q, " ON ");
	if (rc == 0) rc = sto_qid(q, t->name);
	if (rc == 0) rc = ws_buf_printf(q, "(");
	if (rc == 0) rc = sto_qid(q, t->cols[1]);
	if (rc == 0) rc = ws_buf_printf(q, ") WHERE 0; ");
	sqlite3_free(name);
	return rc;
}

/*
 * DROP and CREATE the three capture triggers of t.  An insert logs every
 * non-key column; an update the columns whose value changed (IS NOT), or,
 * when the key itself changed, a delete of the old key and an insert of
 * the new one; a delete logs the key.  The triggers of older versions
 * (named by the table's number) go too.
 */
int sto_make_triggers(struct ws_store *s, const struct tbl *t, char *err)
{
	struct ws_buf q = WS_BUF_INIT;
	static const char *const kinds[] = {"ins", "upd", "del"};
	uint32_t i;
	int rc, k, prior;

	/* Only a constrained table keeps what its changes replaced. */
	if ((rc = sto_constrained(s, t, &prior, err)))
		return rc;
	prior = prior && t->allmask;

#define P(...) do { if (rc == 0) rc = ws_buf_printf(&q, __VA_ARGS__); } while (0)
	for (k = 0; k < 3; k++) {
		P("DROP TRIGGER IF EXISTS wsync_%" PRId64 "_%s; DROP TRIGGER IF EXISTS ",
		    t->id, kinds[k]);
		if (rc == 0) rc = put_trigger_name(&q, t, kinds[k]);
		P("; ");
	}
	if (rc == 0 && t->rowid_key) rc = put_pin(&q, t);
	if (rc == 0) rc = put_trigger_head(&q, t, "ins", "INSERT");
	if (rc == 0) rc = put_null_key_check(&q, t);
	if (rc == 0) rc = put_log_head(&q, t);
	P(", 1, %" PRId64, t->allmask);
	if (rc == 0) rc = put_keys(&q, t, "NEW");
	P("; END;");
	if (rc == 0) rc = put_trigger_head(&q, t, "del", "DELETE");
	if (rc == 0) rc = put_log_head(&q, t);
	P(", 3, 0");
	if (rc == 0) rc = put_keys(&q, t, "OLD");
	P("; ");
	if (rc == 0 && prior) rc = put_prior(&q, t, 3);
	P("END;");
	if (rc == 0) rc = put_trigger_head(&q, t, "upd", "UPDATE");
	if (rc == 0) rc = put_null_key_check(&q, t);
	if (rc == 0) rc = put_log_head(&q, t);
	P(", 3, 0");
	if (rc == 0) rc = put_keys(&q, t, "OLD");
	P(" WHERE ");
	if (rc == 0) rc = put_key_moved(&q, t);
	P("; ");
	if (rc == 0 && prior) rc = put_prior(&q, t, 3);
	if (rc == 0) rc = put_log_head(&q, t);
	P(", CASE WHEN m < 0 THEN 1 ELSE 2 END,"
	    " CASE WHEN m < 0 THEN %" PRId64 " ELSE m END", t->allmask);
	for (i = 0; i < t->npk; i++)
		P(", k%u", i + 1);
	P(" FROM (SELECT CASE WHEN ");
	if (rc == 0) rc = put_key_moved(&q, t);
	P(" THEN -1 ELSE 0");
	for (i = 0; i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1))
			continue;
		P(" | (");
		if (rc == 0) rc = put_changed(&q, t->cols[i]);
		P(" << %u)", i);
	}
	P(" END AS m");
	for (i = 0; i < t->npk; i++) {
		P(", NEW.");
		if (rc == 0) rc = sto_qid(&q, t->cols[t->pk[i]]);
		P(" AS k%u", i + 1);
	}
	P(") WHERE m != 0; ");
	if (rc == 0 && prior) rc = put_prior(&q, t, 2);
	P("END;");
#undef P
	if (rc == 0)
		rc = sto_cstr(&q) ? sto_exec(s->db, sto_cstr(&q), err) : WS_ENOMEM;
	ws_buf_release(&q);
	return rc;
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
int sto_save_table(struct ws_store *s, struct tbl *t, char *err)
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
	struct ws_buf q = WS_BUF_INIT;
	uint32_t i;
	int rc;

	rc = ws_buf_printf(&q, "INSERT INTO wsync_log(tbl, op, mask, ");
	if (rc == 0) rc = put_ks(&q, t->npk, "");
	if (rc == 0) rc = ws_buf_printf(&q, ") SELECT %" PRId64 ", 1, %" PRId64,
	    t->id, t->allmask);
	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(&q, ", ");
		if (rc == 0) rc = sto_qid(&q, t->cols[t->pk[i]]);
	}
	if (rc == 0) rc = ws_buf_printf(&q, " FROM ");
	if (rc == 0) rc = sto_qid(&q, t->name);
	if (rc == 0)
		rc = sto_cstr(&q) ? sto_exec(s->db, sto_cstr(&q), err) : WS_ENOMEM;
	ws_buf_release(&q);
	return rc;
}

/* Register t (described, not yet saved) with triggers; takes ownership. */
int sto_register_table(struct ws_store *s, struct tbl *t, char *err)
{
	struct tbl *p;
	int rc;

	if ((rc = grow_k(s, t->npk, err)) || (rc = sto_save_table(s, t, err)) ||
	    (rc = sto_make_triggers(s, t, err)) || (rc = log_existing(s, t, err)))
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
		goto done;
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
done:
	if (rc == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
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
	struct ws_buf q = WS_BUF_INIT, w = WS_BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t mask = 0;
	uint32_t i;
	int rc;

	rc = ws_buf_printf(&q, "SELECT cid, dflt_value FROM pragma_table_xinfo(");
	if (rc == 0) rc = put_lit(&q, t->name);
	if (rc == 0) rc = ws_buf_printf(&q, ") WHERE hidden = 0 ORDER BY cid");
	if (rc || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &st, err)))
		goto out;
	for (i = t->rowid_key; sqlite3_step(st) == SQLITE_ROW; i++) {
		const char *d = (const char *)sqlite3_column_text(st, 1);

		if (i < from || i >= t->ncols)
			continue;
		mask |= (int64_t)1 << i;
		rc = ws_buf_printf(&w, " OR ");
		if (rc == 0) rc = sto_qid(&w, t->cols[i]);
		if (rc == 0) rc = ws_buf_printf(&w, " IS NOT (%s)", d ? d : "NULL");
		if (rc)
			goto out;
	}
	if (!mask)
		goto out;
	q.len = 0;
	rc = ws_buf_printf(&q, "INSERT INTO wsync_log(tbl, op, mask, ");
	if (rc == 0) rc = put_ks(&q, t->npk, "");
	if (rc == 0) rc = ws_buf_printf(&q, ") SELECT %" PRId64 ", 2, %" PRId64,
	    t->id, mask);
	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(&q, ", ");
		if (rc == 0) rc = sto_qid(&q, t->cols[t->pk[i]]);
	}
	if (rc == 0) rc = ws_buf_printf(&q, " FROM ");
	if (rc == 0) rc = sto_qid(&q, t->name);
	if (rc == 0) rc = ws_buf_printf(&q, " WHERE 0%s", sto_cstr(&w) ? sto_cstr(&w) : "");
	if (rc == 0)
		rc = sto_cstr(&q) ? sto_exec(s->db, sto_cstr(&q), err) : WS_ENOMEM;
out:
	sqlite3_finalize(st);
	ws_buf_release(&q);
	ws_buf_release(&w);
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
	if ((rc = sto_save_table(s, &n, err)) || (rc = sto_make_triggers(s, &n, err))) {
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

	if (!force && !meta_exists(s, "SELECT 1 WHERE (SELECT max(rowid) FROM "
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
	if ((rc = stmt(s, "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND "
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
static int follow_schema(struct ws_store *s, char *err)
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
			if ((rc = sto_save_table(s, &t, err)) ||
			    (rc = sto_make_triggers(s, &t, err)) ||
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

/* Sum of a clock's counters: the Lamport number of a batch. */
static uint64_t lamport_of(const struct ws_vclock *vc)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < vc->n; i++)
		sum += vc->e[i].counter;
	return sum;
}

/* Record a batch row: dot, usn range, Lamport number, context clock. */
static int add_batch_row(struct ws_store *s, int64_t site, uint64_t counter,
    uint64_t first, uint64_t last, const struct ws_vclock *ctx, uint64_t lamport,
    char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *st;
	int rc;

	if ((rc = ws_vclock_encode(ctx, &enc)))
		return rc;
	if ((rc = sto_prep(s->db, "INSERT INTO wsync_batches VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	    &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, site);
		sqlite3_bind_int64(st, 2, (int64_t)counter);
		sqlite3_bind_int64(st, 3, (int64_t)first);
		sqlite3_bind_int64(st, 4, (int64_t)last);
		sqlite3_bind_int64(st, 5, (int64_t)lamport);
		sqlite3_bind_blob(st, 6, enc.p ? enc.p : (const uint8_t *)"", (int)enc.len,
		    SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
		sqlite3_finalize(st);
	}
	ws_buf_release(&enc);
	return rc;
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

static int seal_locked(struct ws_store *s, int *sealed, char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_buf pk = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *del = NULL;
	uint64_t first, last, counter;
	struct ws_buf q = WS_BUF_INIT;
	int rc;

	if (sealed)
		*sealed = 0;
	/* Writers with triggers off first (with the columns known so far). */
	if ((rc = sto_scan(s, err)) || (rc = follow_schema(s, err)))
		return rc;
	first = (uint64_t)sto_meta_int(s, "sealed_usn") + 1;
	if ((rc = ws_store_usn(s, &last, err)) || last < first ||
	    (rc = sto_scan_refresh(s, first, last, err)))
		return rc;
	if ((rc = ws_store_clock(s, &clock, err)) ||
	    (rc = ws_vclock_increment(&clock, &s->site, &counter)) ||
	    (rc = clock_set(s, s->self, counter, err)) ||
	    (rc = add_batch_row(s, s->self, counter, first, last, &clock,
	    lamport_of(&clock), err)) ||
	    (rc = sto_claims_seal(s, first, last, err)) ||
	    (rc = sto_meta_set_int(s, "sealed_usn", (int64_t)last, err)))
		goto out;
	/* A local write has seen every version of the cells it wrote. */
	if ((rc = ws_buf_printf(&q, "SELECT tbl, op, mask, ")) ||
	    (rc = put_ks(&q, s->nk, "")) ||
	    (rc = ws_buf_printf(&q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2")) ||
	    !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &st, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_conflicts WHERE tbl = ?1 AND pk = ?2 "
	    "AND (?3 OR (?4 >> col) & 1)", &del, err)))
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tbl *t = sto_tbl_by_id(s, sqlite3_column_int64(st, 0));

		if (!t)
			continue;
		if ((rc = sto_pk_blob(st, 3, t->npk, &pk)))
			goto out;
		sqlite3_bind_int64(del, 1, t->id);
		sqlite3_bind_blob(del, 2, pk.p, (int)pk.len, SQLITE_STATIC);
		sqlite3_bind_int(del, 3, sqlite3_column_int(st, 1) != WS_OP_UPDATE);
		sqlite3_bind_int64(del, 4, sqlite3_column_int64(st, 2));
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", err);
			goto out;
		}
		sqlite3_reset(del);
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "log", err);
	if (rc == 0 && sealed)
		*sealed = 1;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	ws_buf_release(&q);
	ws_buf_release(&pk);
	ws_vclock_release(&clock);
	return rc;
}

/*
 * This database is a copy (or an old restore) of another site's: give it
 * a site id of its own.  Its batches up to `keep` are shared history and
 * stay the old site's; the later ones (sealed here since it was copied)
 * are stamped anew as the new site's, 1, 2, ..., with their contexts
 * rewritten to match; unsealed writes seal under the new id.  The old
 * site's later batches then arrive from the hub like any other site's.
 */
int ws_store_renew_site(struct ws_store *s, uint64_t keep, char *err)
{
	struct ws_vclock ctx = WS_VCLOCK_INIT, clock = WS_VCLOCK_INIT;
	struct ws_siteid old = s->site, id;
	struct ws_buf enc = WS_BUF_INIT, list = WS_BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t oldix = s->self, newix;
	uint64_t mine, k = 0, c;
	size_t at;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = ws_store_clock(s, &clock, err)))
		goto out;
	mine = ws_vclock_get(&clock, &old);
	if (keep > mine)
		keep = mine;
	ws_siteid_random(&id);
	if ((rc = site_index(s, &id, &newix, err)))
		goto out;
	/* The counters to stamp anew, in order (an UPDATE may not run under
	 * a cursor on the same rows). */
	if ((rc = sto_prep(s->db, "SELECT counter FROM wsync_batches WHERE site = ?1 AND "
	    "counter > ?2 ORDER BY counter", &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, oldix);
	sqlite3_bind_int64(st, 2, (int64_t)keep);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		c = (uint64_t)sqlite3_column_int64(st, 0);
		if ((rc = ws_buf_append(&list, &c, sizeof(c))))
			goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "batches", err);
		goto out;
	}
	rc = 0;
	for (at = 0; at < list.len; at += sizeof(c)) {
		memcpy(&c, list.p + at, sizeof(c));
		k++;
		if ((rc = sto_prep(s->db, "SELECT clock FROM wsync_batches WHERE site = ?1 AND "
		    "counter = ?2", &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, oldix);
		sqlite3_bind_int64(st, 2, (int64_t)c);
		if (sqlite3_step(st) != SQLITE_ROW) {
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
			goto out;
		}
		rc = ws_vclock_decode_all(&ctx, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), err);
		sqlite3_finalize(st);
		st = NULL;
		enc.len = 0;
		if (rc || (rc = ws_vclock_set(&ctx, &old, keep)) ||
		    (rc = ws_vclock_set(&ctx, &id, k)) ||
		    (rc = ws_vclock_encode(&ctx, &enc)) ||
		    (rc = sto_prep(s->db, "UPDATE wsync_batches SET site = ?3, counter = ?4, "
		    "clock = ?5 WHERE site = ?1 AND counter = ?2", &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, oldix);
		sqlite3_bind_int64(st, 2, (int64_t)c);
		sqlite3_bind_int64(st, 3, newix);
		sqlite3_bind_int64(st, 4, (int64_t)k);
		sqlite3_bind_blob(st, 5, enc.p ? enc.p : (const uint8_t *)"", (int)enc.len,
		    SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
		sqlite3_finalize(st);
		st = NULL;
		if (rc)
			goto out;
	}
	/* Conflicts this site's own stamped batches lost keep their dots. */
	if ((rc = sto_prep(s->db, "UPDATE wsync_conflicts SET site = ?3, counter = "
	    "counter - ?2 WHERE site = ?1 AND counter > ?2", &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, oldix);
	sqlite3_bind_int64(st, 2, (int64_t)keep);
	sqlite3_bind_int64(st, 3, newix);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", err);
	sqlite3_finalize(st);
	st = NULL;
	if (rc || (rc = clock_set(s, oldix, keep, err)) ||
	    (k && (rc = clock_set(s, newix, k, err))) ||
	    (rc = sto_meta_set(s, "site", id.b, WS_SITEID_LEN, 0, err)) ||
	    (rc = sto_meta_set_int(s, "own_sent", 0, err)) ||
	    (rc = sto_exec(s->db, "COMMIT", err)))
		goto out;
	s->site = id;
	s->self = newix;
out:
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	ws_buf_release(&enc);
	ws_buf_release(&list);
	ws_vclock_release(&ctx);
	ws_vclock_release(&clock);
	return rc;
}

/* "DEV:INODE" of this database's file, into out. */
static int file_id(struct ws_store *s, char *out, size_t n)
{
	const char *path = sqlite3_db_filename(s->db, "main");
	struct stat sb;

	if (!path || !*path || stat(path, &sb) != 0)
		return -1;
	snprintf(out, n, "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino);
	return 0;
}

int ws_store_check_copy(struct ws_store *s, int *renewed, char *err)
{
	char now[64];
	void *val = NULL;
	size_t n = 0;
	int rc;

	*renewed = 0;
	if (file_id(s, now, sizeof(now)))
		return 0; /* not a file here: nothing to compare */
	if ((rc = sto_meta_get(s, "file", &val, &n, err)))
		return rc;
	if (val && (n != strlen(now) || memcmp(val, now, n) != 0)) {
		/* A copy: what it sealed was sealed before it was copied. */
		if ((rc = ws_store_renew_site(s, UINT64_MAX >> 1, err)))
			goto out;
		*renewed = 1;
	}
	if (!val || *renewed)
		rc = sto_meta_set(s, "file", now, strlen(now), 1, err);
out:
	free(val);
	return rc;
}

int ws_store_own_sent(struct ws_store *s, uint64_t *sent)
{
	void *val = NULL;
	size_t n;
	int known;

	if (sto_meta_get(s, "own_sent", &val, &n, NULL))
		return 0;
	known = val != NULL;
	free(val);
	*sent = known ? (uint64_t)sto_meta_int(s, "own_sent") : 0;
	return known;
}

int ws_store_note_sent(struct ws_store *s, uint64_t counter, char *err)
{
	uint64_t was;

	if (ws_store_own_sent(s, &was) && counter <= was)
		return 0;
	return sto_meta_set_int(s, "own_sent", (int64_t)counter, err);
}

int ws_store_seal(struct ws_store *s, int *sealed, char *err)
{
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = seal_locked(s, sealed, err)) || (rc = sto_exec(s->db, "COMMIT", err)))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Append " WHERE "k1col" IS ?n AND ..." for t's key, numbering from n. */
static int put_pk_where(struct ws_buf *q, const struct tbl *t, unsigned n)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(q, i ? " AND " : " WHERE ");
		if (rc == 0) rc = sto_qid(q, t->cols[t->pk[i]]);
		if (rc == 0) rc = ws_buf_printf(q, " IS ?%u", n + i);
	}
	return rc;
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
	struct ws_buf q = WS_BUF_INIT;
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
	switch (kind) {
	case TS_ROW:
		rc = ws_buf_printf(&q, "SELECT ");
		for (i = 0; rc == 0 && i < t->ncols; i++) {
			rc = i ? ws_buf_printf(&q, ", ") : 0;
			if (rc == 0) rc = sto_qid(&q, t->cols[i]);
		}
		if (rc == 0) rc = ws_buf_printf(&q, " FROM ");
		if (rc == 0) rc = sto_qid(&q, t->name);
		if (rc == 0) rc = put_pk_where(&q, t, 1);
		break;
	case TS_DEL:
		rc = ws_buf_printf(&q, "DELETE FROM ");
		if (rc == 0) rc = sto_qid(&q, t->name);
		if (rc == 0) rc = put_pk_where(&q, t, 1);
		break;
	case TS_UPD:
		rc = ws_buf_printf(&q, "UPDATE ");
		if (rc == 0) rc = sto_qid(&q, t->name);
		for (i = 0; rc == 0 && i < t->ncols; i++)
			if ((mask >> i) & 1) {
				rc = ws_buf_printf(&q, n++ ? ", " : " SET ");
				if (rc == 0) rc = sto_qid(&q, t->cols[i]);
				if (rc == 0) rc = ws_buf_printf(&q, " = ?%u", n);
			}
		if (rc == 0) rc = put_pk_where(&q, t, n + 1);
		break;
	default:
		rc = ws_buf_printf(&q, "INSERT INTO ");
		if (rc == 0) rc = sto_qid(&q, t->name);
		if (rc == 0) rc = ws_buf_printf(&q, "(");
		for (i = 0; rc == 0 && i < t->ncols; i++)
			if (((mask >> i) & 1) || !((t->allmask >> i) & 1)) {
				rc = ws_buf_printf(&q, n++ ? ", " : "");
				if (rc == 0) rc = sto_qid(&q, t->cols[i]);
			}
		if (rc == 0) rc = ws_buf_printf(&q, ") VALUES(");
		for (i = 0; rc == 0 && i < n; i++)
			rc = ws_buf_printf(&q, i ? ", ?" : "?");
		if (rc == 0) rc = ws_buf_printf(&q, ")");
		break;
	}
	if (rc == 0 && !sto_cstr(&q))
		rc = WS_ENOMEM;
	if (rc == 0)
		rc = sto_prep(s->db, sto_cstr(&q), st, err);
	ws_buf_release(&q);
	if (rc)
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

/* Merging. */

/* Per-apply state: prepared statements and the batch being applied. */
/* A batch table mapped onto a tracked one, worked out once per batch. */
struct bmap {
	struct tbl *t;
	uint32_t col[MAX_TRACKED_COLS]; /* local index of each batch column */
	int history;                   /* the log holds older entries of t */
};

struct apply {
	struct ws_store *s;
	const struct ws_batch *b;
	int64_t origin;          /* local site number of the batch's dot */
	uint64_t counter, lamport;
	uint64_t first_usn;      /* the batch's first log entry */
	int any_conflicts;       /* wsync_conflicts may hold rows */
	struct ws_vclock gc;     /* versions within it count as seen by all */
	struct bmap *map;        /* per batch table; t NULL until first use */
	sqlite3_stmt *hist, *dot, *conf, *addconf, *delconf, *killconf, *log;
	struct ws_buf pk, q;
	int clash;               /* CLASH: the kind of constraint it broke */
	struct ws_buf gone;      /* keys of the rows a UNIQUE contest removed, */
	uint32_t ngone;          /* logged as deletes after the change itself */
	/* The change's claims (store-claims.c; see claims_contest()): */
	struct ws_buf cl;        /* u32 index, u32 length, values; each claim */
	struct ws_buf by;        /* usns of the stronger claims it lost to */
	struct ws_buf killed;    /* keys of the rows its claims removed */
	struct ws_buf again;     /* int64 mask, u64 usn: cells of its row that */
	uint32_t ncl, nby, nkilled, nagain; /* outlive that removal */
	struct ws_buf killed_prior; /* prior_read() of each row in killed */
	struct ws_buf lose_prior; /* prior_read() of its own row, if removed */
	sqlite3_value *prior[MAX_TRACKED_COLS]; /* what the change replaced, */
	int64_t prior_mask;      /* noted in wsync_prior with its entry */
	char *err;
};

/*
 * What step_write() returns when a write broke a constraint that only
 * concurrency can break here (UNIQUE, CHECK, FOREIGN KEY, a NOT NULL
 * column left empty by a merge); a->clash holds the kind, as stored in
 * wsync_conflicts.lostdel.  Positive: never a WS_E* code.
 */
#define CLASH 1
enum { KIND_VALUE, KIND_DELETE, KIND_UNIQUE, KIND_CHECK, KIND_FK };


/* The version (dot, Lamport) of log entry usn; site 0 when collected. */
static int dot_of(struct apply *a, uint64_t usn, struct ver *v)
{
	int rc;

	memset(v, 0, sizeof(*v));
	sqlite3_reset(a->dot);
	sqlite3_bind_int64(a->dot, 1, (int64_t)usn);
	rc = sqlite3_step(a->dot);
	if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(a->dot, 3) <= usn) {
		v->site = sqlite3_column_int64(a->dot, 0);
		v->counter = (uint64_t)sqlite3_column_int64(a->dot, 1);
		v->lamport = (uint64_t)sqlite3_column_int64(a->dot, 2);
	}
	sqlite3_reset(a->dot);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	    sto_sqlerr(a->s->db, rc, "batches", a->err);
}

/* Has the batch's context seen version v? */
static int seen(const struct apply *a, const struct ver *v)
{
	return v->site == 0 || ws_vclock_get(&a->b->clock, &a->s->sites[v->site]) >=
	    v->counter || ws_vclock_get(&a->gc, &a->s->sites[v->site]) >= v->counter;
}

/* Does version x win over y (both concurrent)? */
static int wins(const struct ws_store *s, const struct ver *x, const struct ver *y)
{
	if (x->lamport != y->lamport)
		return x->lamport > y->lamport;
	return memcmp(s->sites[x->site].b, s->sites[y->site].b, WS_SITEID_LEN) > 0;
}

/* What a row's log says, newest first. */
struct history {
	int state;                      /* 0 unknown, 1 alive, 2 deleted */
	struct ver del;                 /* the delete's version when deleted */
	int unseen_delete;              /* a delete the change has not seen */
	uint64_t unseen_usn;            /* a log entry of that delete's batch */
	struct ver cell[MAX_TRACKED_COLS]; /* winning version per column */
	uint64_t usn[MAX_TRACKED_COLS]; /* the log entry that set it */
	int64_t known;                  /* columns whose version was found */
};

/*
 * Read the row's history as change `a` sees it: the version of each
 * cell since the row's last delete, whether the row is alive, and
 * whether any delete in its whole history is concurrent with the change
 * (a delete wins over every write it has not seen, even once the row
 * was inserted again).
 */
static int load_history(struct apply *a, const struct tbl *t,
    const struct ws_value *pk, struct history *h)
{
	uint64_t usn;
	int64_t mask;
	uint32_t i;
	int rc, op, life_over = 0;
	struct ver v;

	memset(h, 0, sizeof(*h));
	sqlite3_reset(a->hist);
	sqlite3_bind_int64(a->hist, 1, t->id);
	for (i = 0; i < a->s->nk; i++)
		if (i < t->npk)
			sto_bind_value(a->hist, (int)i + 2, &pk[i]);
		else
			sqlite3_bind_null(a->hist, (int)i + 2);
	while ((rc = sqlite3_step(a->hist)) == SQLITE_ROW) {
		usn = (uint64_t)sqlite3_column_int64(a->hist, 0);
		op = sqlite3_column_int(a->hist, 1);
		if (op & OP_LOSTDEL)
			continue; /* lost entirely: it set nothing */
		if ((op & 0xf) == WS_OP_DELETE) {
			/* A removal on behalf of another batch has its version. */
			if ((rc = dot_of(a, op & OP_BY ? (uint64_t)sqlite3_column_int64(
			    a->hist, 3) : usn, &v)))
				return rc;
			if (h->state == 0) {
				h->state = 2;
				h->del = v;
			}
			if (!seen(a, &v)) {
				h->unseen_delete = 1;
				h->unseen_usn = op & OP_BY ? (uint64_t)sqlite3_column_int64(
				    a->hist, 3) : usn;
				rc = SQLITE_DONE;
				break;
			}
			life_over = 1; /* older versions belong to an earlier life */
			continue;
		}
		if (life_over)
			continue;
		/* Alive: an insert, or an update that put the row back (one
		 * whose own insert this store never got, see apply_change). */
		if (h->state == 0)
			h->state = 1;
		mask = sqlite3_column_int64(a->hist, 2) & t->allmask & ~h->known;
		if (mask) {
			if ((rc = dot_of(a, op & OP_BY ? (uint64_t)sqlite3_column_int64(
			    a->hist, 3) : usn, &v)))
				return rc;
			for (i = 0; i < t->ncols; i++)
				if ((mask >> i) & 1) {
					h->cell[i] = v;
					h->usn[i] = usn;
				}
			h->known |= mask;
		}
	}
	sqlite3_reset(a->hist);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	    sto_sqlerr(a->s->db, rc, "log", a->err);
}

/* Record value (column col of st, or v) as a conflict of cell col. */
static int add_conflict(struct apply *a, const struct tbl *t, int col, int lostdel,
    const struct ver *ver, sqlite3_value *sv, const struct ws_value *v)
{
	sqlite3_stmt *st = a->addconf;
	int rc;

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_blob(st, 2, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, col);
	sqlite3_bind_int(st, 4, lostdel);
	sqlite3_bind_int64(st, 5, ver->site);
	sqlite3_bind_int64(st, 6, (int64_t)ver->counter);
	sqlite3_bind_int64(st, 7, (int64_t)ver->lamport);
	if (sv)
		sqlite3_bind_value(st, 8, sv);
	else
		sto_bind_value(st, 8, v);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	a->any_conflicts = 1;
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(a->s->db, rc, "conflicts", a->err);
}

/* Map a batch table onto a tracked one: col[i] = local index of remote i. */
static int map_table(struct ws_store *s, const struct ws_table *rt, struct tbl **out,
    uint32_t *col, char *err)
{
	struct tbl *t = sto_find_tbl(s, rt->name);
	uint32_t i, k;

	if (!t)
		return ws_error(err, WS_ESCHEMA, "table '%s' is not tracked here",
		    rt->name);
	for (i = 0; i < rt->ncols; i++) {
		for (k = 0; k < t->ncols && strcmp(t->cols[k], rt->cols[i]) != 0; k++)
			;
		if (k == t->ncols)
			return ws_error(err, WS_ESCHEMA, "table '%s': column '%s' is "
			    "unknown here", rt->name, rt->cols[i]);
		col[i] = k;
	}
	if (rt->npk != t->npk)
		return ws_error(err, WS_ESCHEMA, "table '%s': primary keys differ",
		    rt->name);
	for (i = 0; i < t->npk; i++)
		if (col[rt->pk[i]] != t->pk[i])
			return ws_error(err, WS_ESCHEMA, "table '%s': primary keys "
			    "differ", rt->name);
	*out = t;
	return 0;
}

/* Bind the values a TS_INS or TS_UPD statement of t takes for mask. */
static void bind_write(sqlite3_stmt *w, const struct tbl *t, int kind, int64_t mask,
    const struct ws_value *const *val, const struct ws_value *pk)
{
	uint32_t i, k;
	int bi = 1;

	for (i = 0; i < t->ncols; i++) {
		if ((mask >> i) & 1)
			sto_bind_value(w, bi++, val[i]);
		else if (kind == TS_INS && !((t->allmask >> i) & 1))
			for (k = 0; k < t->npk; k++)
				if (t->pk[k] == i)
					sto_bind_value(w, bi++, &pk[k]);
	}
	if (kind == TS_UPD)
		for (k = 0; k < t->npk; k++)
			sto_bind_value(w, bi++, &pk[k]);
}

/*
 * Step a cached write statement once.  A constraint that concurrency can
 * break gives CLASH (see above); a value the schema refuses outright (a
 * STRICT type, a key of the wrong type) is WS_ESCHEMA naming the table;
 * other errors name the table too.
 */
static int step_write(struct apply *a, const struct tbl *t, sqlite3_stmt *w)
{
	int rc = sqlite3_step(w), ext = sqlite3_extended_errcode(a->s->db);
	char msg[WS_ERRLEN];

	if (rc == SQLITE_DONE) {
		sqlite3_reset(w);
		return 0;
	}
	snprintf(msg, sizeof(msg), "%s", sqlite3_errmsg(a->s->db));
	sqlite3_reset(w);
	switch (ext) {
	case SQLITE_CONSTRAINT_UNIQUE: case SQLITE_CONSTRAINT_PRIMARYKEY:
		a->clash = KIND_UNIQUE;
		return CLASH;
	case SQLITE_CONSTRAINT_CHECK: case SQLITE_CONSTRAINT_NOTNULL:
	case SQLITE_CONSTRAINT_TRIGGER:
		a->clash = KIND_CHECK;
		return CLASH;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		a->clash = KIND_FK;
		return CLASH;
	case SQLITE_CONSTRAINT_DATATYPE: case SQLITE_MISMATCH:
		return ws_error(a->err, WS_ESCHEMA, "table '%s': %s", t->name, msg);
	default:
		return sto_sqlerr(a->s->db, rc, t->name, a->err);
	}
}

/* Encode the key values pk of t into out (a conflict's pk blob). */
static int key_blob(const struct tbl *t, const struct ws_value *pk, struct ws_buf *out)
{
	uint32_t i;
	int rc = 0;

	out->len = 0;
	for (i = 0; rc == 0 && i < t->npk; i++)
		rc = ws_value_encode(&pk[i], out);
	return rc;
}

/* Log one entry of the batch being applied. */
static int log_entry(struct apply *a, const struct tbl *t, int op, int64_t win,
    int64_t lost, const struct ws_value *pk)
{
	uint32_t i;
	int rc;

	sqlite3_reset(a->log);
	sqlite3_bind_int64(a->log, 1, t->id);
	sqlite3_bind_int(a->log, 2, op);
	sqlite3_bind_int64(a->log, 3, (op & 0xf) == WS_OP_DELETE ? 0 : win);
	sqlite3_bind_int64(a->log, 4, lost);
	for (i = 0; i < a->s->nk; i++)
		if (i < t->npk)
			sto_bind_value(a->log, (int)i + 5, &pk[i]);
		else
			sqlite3_bind_null(a->log, (int)i + 5);
	rc = sqlite3_step(a->log) == SQLITE_DONE ? 0 :
	    sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "log", a->err);
	sqlite3_reset(a->log);
	return rc;
}

/*
 * Keep the values row pk holds now in the columns of mask as conflicts
 * of `kind` (they are about to go): each cell with its version from h,
 * or the row's newest.  a->pk must hold pk's blob.
 */
static int lose_row(struct apply *a, const struct tbl *t, const struct ws_value *pk,
    const struct history *h, int kind, int64_t mask)
{
	struct ws_buf q = WS_BUF_INIT;
	sqlite3_stmt *st = NULL;
	struct ver newest = {0};
	uint32_t i;
	int rc;

	for (i = 0; i < t->ncols; i++)
		if (h->cell[i].site && (!newest.site || wins(a->s, &h->cell[i], &newest)))
			newest = h->cell[i];
	if (!newest.site)
		return 0; /* nothing known of it: nothing to name as lost */
	rc = ws_buf_printf(&q, "SELECT ");
	for (i = 0; rc == 0 && i < t->ncols; i++) {
		rc = ws_buf_printf(&q, i ? ", " : "");
		if (rc == 0) rc = sto_qid(&q, t->cols[i]);
	}
	if (rc == 0) rc = ws_buf_printf(&q, " FROM ");
	if (rc == 0) rc = sto_qid(&q, t->name);
	if (rc == 0) rc = put_pk_where(&q, t, 1);
	if (rc || !sto_cstr(&q) || (rc = sto_prep(a->s->db, sto_cstr(&q), &st, a->err)))
		goto out;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(st, (int)i + 1, &pk[i]);
	if (sqlite3_step(st) == SQLITE_ROW)
		for (i = 0; rc == 0 && i < t->ncols; i++)
			if ((t->allmask & mask) >> i & 1)
				rc = add_conflict(a, t, (int)i, kind, h->cell[i].site ?
				    &h->cell[i] : &newest, sqlite3_column_value(st, (int)i),
				    NULL);
out:
	sqlite3_finalize(st);
	ws_buf_release(&q);
	return rc;
}

/* Append "SELECT key columns FROM t". */
static int put_select_key(struct ws_buf *q, const struct tbl *t)
{
	uint32_t i;
	int rc = ws_buf_printf(q, "SELECT ");

	for (i = 0; rc == 0 && i < t->npk; i++) {
		rc = ws_buf_printf(q, i ? ", " : "");
		if (rc == 0) rc = sto_qid(q, t->cols[t->pk[i]]);
	}
	if (rc == 0) rc = ws_buf_printf(q, " FROM ");
	if (rc == 0) rc = sto_qid(q, t->name);
	return rc;
}

/*
 * A write of change c (values val) broke a UNIQUE constraint: find the
 * rows that hold its values in a unique index, and hold the contest the
 * same way on every copy.  The row version that wins (higher Lamport
 * number, then site id) stays: when c wins, each row in its way is
 * removed here, its values kept as conflicts of kind unique, and its
 * removal logged as a delete of this batch (later writes to it that have
 * not seen this batch lose to that delete, as to any).  *won is 1 then,
 * and the write may be tried again; 0 when c loses.
 */
static int contest(struct apply *a, const struct tbl *t, const struct ws_change *c,
    const struct ws_value *const *val, int *won)
{
	struct ws_store *s = a->s;
	struct ws_buf q = WS_BUF_INIT, keys = WS_BUF_INIT, saved;
	struct ver me = {a->origin, a->counter, a->lamport}, best;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *ix = NULL, *cols = NULL, *find = NULL, *del;
	struct history h;
	uint32_t i, n, nkeys = 0;
	int rc, bound, j;

	*won = 0;
	if ((rc = sto_prep(s->db, "SELECT l.name FROM pragma_index_list(?1) AS l WHERE "
	    "l.\"unique\"", &ix, a->err)) ||
	    (rc = sto_prep(s->db, "SELECT cid FROM pragma_index_info(?1) ORDER BY seqno",
	    &cols, a->err)))
		goto out;
	sqlite3_bind_text(ix, 1, t->name, -1, SQLITE_STATIC);
	/* Gather the keys of the rows in the way, as value blobs. */
	while (sqlite3_step(ix) == SQLITE_ROW) {
		sqlite3_reset(cols);
		sqlite3_bind_text(cols, 1, (const char *)sqlite3_column_text(ix, 0), -1,
		    SQLITE_TRANSIENT);
		q.len = 0;
		rc = put_select_key(&q, t);
		if (rc == 0) rc = ws_buf_printf(&q, " WHERE NOT (1");
		for (i = 0; rc == 0 && i < t->npk; i++) {
			rc = ws_buf_printf(&q, " AND ");
			if (rc == 0) rc = sto_qid(&q, t->cols[t->pk[i]]);
			if (rc == 0) rc = ws_buf_printf(&q, " IS ?%u", i + 1);
		}
		if (rc == 0) rc = ws_buf_printf(&q, ")");
		n = 0;
		bound = 1;
		while (rc == 0 && sqlite3_step(cols) == SQLITE_ROW) {
			/* t->cols[0] is the rowid itself when it is the key. */
			int cid = sqlite3_column_int(cols, 0);

			cid += cid >= 0 ? t->rowid_key : 0;
			/* Only indexes of plain columns this change sets (or keys). */
			if (cid < 0 || cid >= (int)t->ncols)
				bound = 0;
			else if (!val[cid] || val[cid]->type == WS_NULL)
				bound = 0;
			else {
				rc = ws_buf_printf(&q, " AND ");
				if (rc == 0) rc = sto_qid(&q, t->cols[cid]);
				if (rc == 0) rc = ws_buf_printf(&q, " IS ?%u",
				    t->npk + 1 + n++);
			}
		}
		if (rc || !bound || !n || !sto_cstr(&q))
			continue;
		if ((rc = sto_prep(s->db, sto_cstr(&q), &find, a->err)))
			goto out;
		for (i = 0; i < t->npk; i++)
			sto_bind_value(find, (int)i + 1, &c->pk[i]);
		sqlite3_reset(cols);
		n = 0;
		while (sqlite3_step(cols) == SQLITE_ROW)
			sto_bind_value(find, (int)(t->npk + 1 + n++),
			    val[sqlite3_column_int(cols, 0) + t->rowid_key]);
		while (rc == 0 && sqlite3_step(find) == SQLITE_ROW) {
			struct ws_value v;

			for (i = 0; rc == 0 && i < t->npk; i++) {
				sto_value_of(sqlite3_column_value(find, (int)i), &v);
				rc = ws_value_encode(&v, &keys);
			}
			nkeys++;
		}
		sqlite3_finalize(find);
		find = NULL;
	}
	if (rc || nkeys == 0)
		goto out;
	/* c must beat every row in its way (their newest cell versions). */
	for (j = 0; j < 2; j++) {
		struct ws_rd r;
		uint32_t kk;

		ws_rd_init(&r, keys.p, keys.len);
		for (kk = 0; kk < nkeys; kk++) {
			for (i = 0; i < t->npk; i++)
				if ((rc = ws_value_decode(&r, &kv[i])))
					goto out;
			if ((rc = load_history(a, t, kv, &h)))
				goto out;
			memset(&best, 0, sizeof(best));
			for (i = 0; i < t->ncols; i++)
				if (h.cell[i].site && (!best.site || wins(s, &h.cell[i], &best)))
					best = h.cell[i];
			if (j == 0) {
				/* A version every copy holds (collected) was there first. */
				if (!best.site || !wins(s, &me, &best))
					goto out;
				continue;
			}
			/* Keep its values, then remove it, logged. */
			saved = a->pk;
			a->pk = (struct ws_buf)WS_BUF_INIT;
			if ((rc = key_blob(t, kv, &a->pk)) == 0)
				rc = lose_row(a, t, kv, &h, KIND_UNIQUE, t->allmask);
			ws_buf_release(&a->pk);
			a->pk = saved;
			if (rc || (rc = sto_tstmt(s, (struct tbl *)t, TS_DEL, 0, &del, a->err)))
				goto out;
			for (i = 0; i < t->npk; i++)
				sto_bind_value(del, (int)i + 1, &kv[i]);
			if ((rc = step_write(a, t, del)) || (rc = key_blob(t, kv, &q)) ||
			    (rc = ws_buf_append(&a->gone, q.p, q.len)))
				goto out;
			a->ngone++;
		}
	}
	*won = 1;
out:
	if (rc == CLASH)
		rc = 0; /* a removal that could not be made: c loses */
	sqlite3_finalize(ix);
	sqlite3_finalize(cols);
	sqlite3_finalize(find);
	ws_buf_release(&q);
	ws_buf_release(&keys);
	return rc;
}

/*
 * Append to out what row kv of t holds (a count, then each column's
 * number and value), for the wsync_prior rows of the entry that removes
 * it (prior_write()); a count of 0 when there is no such row.
 */
static int prior_read(struct apply *a, struct tbl *t, const struct ws_value *kv,
    struct ws_buf *out)
{
	sqlite3_stmt *st;
	struct ws_value v;
	uint32_t i, n = 0;
	size_t at = out->len;
	int rc;

	if ((rc = sto_tstmt(a->s, t, TS_ROW, 0, &st, a->err)) ||
	    (rc = ws_buf_append(out, &n, sizeof(n))))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(st, (int)i + 1, &kv[i]);
	if (sqlite3_step(st) == SQLITE_ROW)
		for (i = 0; rc == 0 && i < t->ncols; i++) {
			if (!((t->allmask >> i) & 1))
				continue;
			sto_value_of(sqlite3_column_value(st, (int)i), &v);
			if ((rc = ws_buf_append(out, &i, sizeof(i))) == 0)
				rc = ws_value_encode(&v, out);
			n++;
		}
	sqlite3_reset(st);
	memcpy(out->p + at, &n, sizeof(n));
	return rc;
}

/* Note the next record of prior_read() in r as replaced by entry usn. */
static int prior_write(struct apply *a, struct ws_rd *r, uint64_t usn)
{
	sqlite3_stmt *st;
	struct ws_value v;
	uint32_t n, col;
	int rc;

	if ((size_t)(r->end - r->p) < sizeof(n))
		return 0; /* none kept */
	memcpy(&n, r->p, sizeof(n));
	r->p += sizeof(n);
	if (n && (rc = sto_stmt(a->s, "INSERT OR REPLACE INTO wsync_prior(usn, col, "
	    "value) VALUES(?1, ?2, ?3)", &st, a->err)))
		return rc;
	for (rc = 0; rc == 0 && n > 0; n--) {
		memcpy(&col, r->p, sizeof(col));
		r->p += sizeof(col);
		if ((rc = ws_value_decode(r, &v)))
			break;
		sqlite3_bind_int64(st, 1, (int64_t)usn);
		sqlite3_bind_int(st, 2, (int)col);
		sto_bind_value(st, 3, &v);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "prior", a->err);
		sqlite3_reset(st);
	}
	return rc;
}

/*
 * Remove row kv of t because a stronger claim beat its write: keep its
 * values as conflicts of kind unique and delete it (claim_remove()); a
 * row this change's claim beat has its key noted in a->killed too, logged
 * as a delete of this batch after the change (claim_kill()).
 */
static int claim_remove(struct apply *a, struct tbl *t, const struct ws_value *kv,
    int keep_values, int kind, struct ws_buf *prior)
{
	struct history h;
	sqlite3_stmt *del;
	int rc;

	if ((keep_values && ((rc = load_history(a, t, kv, &h)) ||
	    (rc = key_blob(t, kv, &a->pk)) ||
	    (rc = lose_row(a, t, kv, &h, kind, t->allmask)))) ||
	    (prior && (rc = prior_read(a, t, kv, prior))))
		return rc;
	if ((rc = sto_tstmt(a->s, t, TS_DEL, 0, &del, a->err)))
		return rc;
	for (uint32_t i = 0; i < t->npk; i++)
		sto_bind_value(del, (int)i + 1, &kv[i]);
	/* A removal refused (a RESTRICT foreign key) leaves the row; the
	 * delete is logged all the same, as every copy logs it. */
	if ((rc = step_write(a, t, del)) == CLASH)
		rc = 0;
	a->clash = 0;
	return rc;
}

/*
 * Has the batch of version v seen every claim that change a lost to
 * (a->by)?  *usn: one of that batch's log entries.  A collected version
 * has seen none.
 */
static int saw_winners(struct apply *a, const struct ver *v, int *yes, uint64_t *usn)
{
	struct ws_vclock ctx = WS_VCLOCK_INIT;
	struct ver w;
	sqlite3_stmt *st;
	uint64_t by;
	uint32_t n;
	int rc;

	*yes = 0;
	if (!v->site)
		return 0;
	if ((rc = sto_stmt(a->s, "SELECT clock, first_usn FROM wsync_batches WHERE "
	    "site = ?1 AND counter = ?2", &st, a->err)))
		return rc;
	sqlite3_bind_int64(st, 1, v->site);
	sqlite3_bind_int64(st, 2, (int64_t)v->counter);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	*usn = (uint64_t)sqlite3_column_int64(st, 1);
	rc = ws_vclock_decode_all(&ctx, sqlite3_column_blob(st, 0),
	    (size_t)sqlite3_column_bytes(st, 0), a->err);
	sqlite3_reset(st);
	for (n = 0, *yes = rc == 0; rc == 0 && *yes && n < a->nby; n++) {
		memcpy(&by, a->by.p + n * sizeof(by), sizeof(by));
		if ((rc = dot_of(a, by, &w)) == 0 && w.site &&
		    ws_vclock_get(&ctx, &a->s->sites[w.site]) < w.counter)
			*yes = 0;
	}
	ws_vclock_release(&ctx);
	return rc;
}

/*
 * Change c lost a UNIQUE clash to the stronger claims a->by: its row goes
 * as a delete made by each of them would take it, wherever it came in
 * the order.  Such a delete wins over every write it had not seen, so
 * the cells written by batches that had seen all of them stay (the row
 * is made again with those alone, the others taking their DEFAULT, as on
 * a copy where the removal came first and those writes put the row
 * back); a->again notes them, logged after the removal (log_claims()).
 */
static int claim_lose(struct apply *a, struct tbl *t, const struct ws_value *pk)
{
	sqlite3_value *keep[MAX_TRACKED_COLS] = {0};
	struct ws_value kv[MAX_TRACKED_COLS];
	const struct ws_value *val[MAX_TRACKED_COLS] = {0};
	struct history h;
	sqlite3_stmt *row;
	uint64_t usn[MAX_TRACKED_COLS];
	int64_t mask = 0, m;
	uint32_t i, j;
	int rc, yes;

	if ((rc = load_history(a, t, pk, &h)) || (rc = key_blob(t, pk, &a->pk)) ||
	    (rc = sto_tstmt(a->s, t, TS_ROW, 0, &row, a->err)))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(row, (int)i + 1, &pk[i]);
	if (sqlite3_step(row) != SQLITE_ROW) {
		sqlite3_reset(row);
		return 0; /* no row: the removal is logged all the same */
	}
	for (i = 0; rc == 0 && i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1) || h.state == 2 ||
		    (rc = saw_winners(a, &h.cell[i], &yes, &usn[i])) || !yes)
			continue;
		if (!(keep[i] = sqlite3_value_dup(sqlite3_column_value(row, (int)i))))
			rc = WS_ENOMEM;
		mask |= (int64_t)1 << i;
	}
	sqlite3_reset(row);
	if (rc || (rc = lose_row(a, t, pk, &h, KIND_UNIQUE, ~mask)) ||
	    (rc = claim_remove(a, t, pk, 0, KIND_UNIQUE, &a->lose_prior)))
		goto out;
	if (mask) {
		for (i = 0; i < t->ncols; i++)
			if (keep[i]) {
				sto_value_of(keep[i], &kv[i]);
				val[i] = &kv[i];
			}
		if ((rc = sto_tstmt(a->s, t, TS_INS, mask, &row, a->err)))
			goto out;
		bind_write(row, t, TS_INS, mask, val, pk);
		if ((rc = step_write(a, t, row)) == CLASH) {
			rc = 0; /* what outlives it cannot stand either */
			a->clash = 0;
			goto out;
		}
		/* One entry a version, with the cells it keeps. */
		for (i = 0; rc == 0 && i < t->ncols; i++) {
			if (!((mask >> i) & 1))
				continue;
			for (m = 0, j = i; j < t->ncols; j++)
				if (((mask >> j) & 1) && h.cell[j].site == h.cell[i].site &&
				    h.cell[j].counter == h.cell[i].counter)
					m |= (int64_t)1 << j;
			mask &= ~m;
			if ((rc = ws_buf_append(&a->again, &m, sizeof(m))) == 0 &&
			    (rc = ws_buf_append(&a->again, &usn[i], sizeof(usn[i]))) == 0)
				a->nagain++;
		}
	}
out:
	for (i = 0; i < t->ncols; i++)
		sqlite3_value_free(keep[i]);
	return rc;
}

static int claim_kill(struct apply *a, struct tbl *t, const struct ws_value *kv)
{
	int rc;

	if ((rc = claim_remove(a, t, kv, 1, KIND_UNIQUE, &a->killed_prior)) == 0 &&
	    (rc = key_blob(t, kv, &a->q)) == 0 &&
	    (rc = ws_buf_append(&a->killed, a->q.p, a->q.len)) == 0)
		a->nkilled++;
	return rc;
}

/*
 * The claims of change c (values val, columns cmask) on t's UNIQUE
 * indexes, weighed against the concurrent claims of other rows on the
 * same values (see store-claims.c).  The rows of the weaker ones are
 * removed now (claim_kill()); the usns of the stronger ones go to a->by,
 * and c loses to them.  The claims themselves wait in a->cl until c's
 * log entry gives them their usn.
 */
static int claims_contest(struct apply *a, struct bmap *m, const struct ws_change *c,
    const struct ws_value *const *val, int64_t cmask)
{
	struct ws_store *s = a->s;
	struct tbl *t = m->t;
	struct ver me = {a->origin, a->counter, a->lamport}, v;
	struct ws_buf one = WS_BUF_INIT, mine = WS_BUF_INIT, kills = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *row = NULL, *find;
	uint32_t u, n, nkills = 0, len, i;
	int rc, ok, stepped = 0, exists = 0;
	size_t off;

	a->cl.len = a->by.len = 0;
	a->ncl = a->nby = 0;
	if ((rc = sto_uniq(s, t, a->err)) || !t->nuniq)
		return rc;
	for (u = 0; rc == 0 && u < t->nuniq; u++) {
		if (!sto_uniq_touched(t, u, cmask))
			continue;
		if (!stepped) {
			/* Columns the change leaves come from the row. */
			if ((rc = sto_tstmt(s, t, TS_ROW, 0, &row, a->err)))
				goto out;
			for (i = 0; i < t->npk; i++)
				sto_bind_value(row, (int)i + 1, &c->pk[i]);
			exists = sqlite3_step(row) == SQLITE_ROW;
			stepped = 1;
		}
		if ((rc = sto_claim_value(t, u, val, c->pk, exists ? row : NULL, &one,
		    &ok)) || !ok)
			continue;
		len = (uint32_t)one.len;
		if ((rc = ws_buf_append(&a->cl, &u, sizeof(u))) ||
		    (rc = ws_buf_append(&a->cl, &len, sizeof(len))) ||
		    (rc = ws_buf_append(&a->cl, one.p, one.len)))
			goto out;
		a->ncl++;
	}
	if (row)
		sqlite3_reset(row);
	if (rc || a->ncl == 0 || (rc = key_blob(t, c->pk, &mine)) ||
	    (rc = sto_stmt(s, "SELECT pk, usn FROM wsync_claims WHERE tbl = ?1 AND "
	    "idx = ?2 AND val = ?3 AND pk <> ?4", &find, a->err)))
		goto out;
	for (n = 0, off = 0; n < a->ncl; n++) {
		memcpy(&u, a->cl.p + off, sizeof(u));
		memcpy(&len, a->cl.p + off + sizeof(u), sizeof(len));
		off += sizeof(u) + sizeof(len);
		sqlite3_bind_int64(find, 1, t->id);
		sqlite3_bind_text(find, 2, t->uniq[u].name, -1, SQLITE_STATIC);
		sqlite3_bind_blob(find, 3, a->cl.p + off, (int)len, SQLITE_STATIC);
		sqlite3_bind_blob(find, 4, mine.p, (int)mine.len, SQLITE_STATIC);
		off += len;
		while (rc == 0 && sqlite3_step(find) == SQLITE_ROW) {
			uint64_t usn = (uint64_t)sqlite3_column_int64(find, 1);
			const void *pk = sqlite3_column_blob(find, 0);
			uint32_t pklen = (uint32_t)sqlite3_column_bytes(find, 0);

			if ((rc = dot_of(a, usn, &v)) || seen(a, &v))
				continue; /* it knew of that claim: no contest */
			if (wins(s, &v, &me)) {
				rc = ws_buf_append(&a->by, &usn, sizeof(usn));
				a->nby++;
				continue;
			}
			/* Each row it beats is removed once. */
			for (i = 0, one.len = 0; i < kills.len; i += sizeof(len) + len) {
				memcpy(&len, kills.p + i, sizeof(len));
				if (len == pklen && memcmp(kills.p + i + sizeof(len), pk, len) == 0)
					break;
			}
			if (i < kills.len)
				continue;
			if ((rc = ws_buf_append(&kills, &pklen, sizeof(pklen))) == 0 &&
			    (rc = ws_buf_append(&kills, pk, pklen)) == 0)
				nkills++;
		}
		sqlite3_reset(find);
		if (rc)
			goto out;
	}
	for (n = 0, off = 0; rc == 0 && n < nkills; n++) {
		struct ws_rd k;

		memcpy(&len, kills.p + off, sizeof(len));
		ws_rd_init(&k, kills.p + off + sizeof(len), len);
		off += sizeof(len) + len;
		for (i = 0; rc == 0 && i < t->npk; i++)
			rc = ws_value_decode(&k, &kv[i]);
		if (rc == 0)
			rc = claim_kill(a, t, kv);
		m->history = 1; /* this batch's later changes must see it */
	}
out:
	if (row)
		sqlite3_reset(row);
	ws_buf_release(&one);
	ws_buf_release(&mine);
	ws_buf_release(&kills);
	return rc;
}

/*
 * Did change c (values val) name, in a foreign key with an action on
 * delete, a parent that a delete c had not seen removed?  That delete
 * acts on c as it would have on a copy where c came first: *action is
 * STO_FK_CASCADE (c goes with its parent) or STO_FK_SET_NULL (those
 * columns of c are NULL), even where the parent was made again since.
 * Only with foreign keys enforced (fk_policy()).
 */
static int fk_parent_deleted(struct apply *a, struct tbl *t,
    const struct ws_value **val, int *action, int64_t *cols, uint64_t *by)
{
	static const struct ws_value null = {WS_NULL, 0, 0, NULL, 0};
	struct ws_value kv[MAX_TRACKED_COLS];
	struct history h;
	uint32_t f, k;
	int rc;

	*action = STO_FK_NONE;
	*cols = 0;
	if (!a->s->fk_on)
		return 0;
	for (f = 0; f < t->nfk; f++) {
		const struct sto_fk *fk = &t->fk[f];
		struct tbl *p = fk->action ? sto_find_tbl(a->s, fk->parent) : NULL;

		for (k = 0; p && k < fk->ncols; k++)
			if (!val[fk->col[k]] || val[fk->col[k]]->type == WS_NULL)
				p = NULL; /* not set by c, or no parent named */
			else
				kv[k] = *val[fk->col[k]];
		if (!p)
			continue;
		if ((rc = load_history(a, p, kv, &h)))
			return rc;
		if (!h.unseen_delete)
			continue;
		if (fk->action == STO_FK_CASCADE) {
			*action = STO_FK_CASCADE;
			*by = h.unseen_usn;
			return 0;
		}
		*action = STO_FK_SET_NULL;
		for (k = 0; k < fk->ncols; k++) {
			val[fk->col[k]] = &null;
			*cols |= (int64_t)1 << fk->col[k];
		}
	}
	return 0;
}

/*
 * Write change c to t with the statement of `kind` (TS_INS, TS_UPD or
 * TS_DEL): a UNIQUE clash is contested once (see contest()).  CLASH
 * when the change loses to a constraint.
 */
static int write_row(struct apply *a, struct tbl *t, const struct ws_change *c,
    int kind, int64_t mask, const struct ws_value *const *val)
{
	sqlite3_stmt *w;
	uint32_t i;
	int rc, won, tries;

	for (tries = 0; ; tries++) {
		if ((rc = sto_tstmt(a->s, t, kind, mask, &w, a->err)))
			return rc;
		if (kind == TS_DEL)
			for (i = 0; i < t->npk; i++)
				sto_bind_value(w, (int)i + 1, &c->pk[i]);
		else
			bind_write(w, t, kind, mask, val, c->pk);
		rc = step_write(a, t, w);
		if (rc != CLASH || a->clash != KIND_UNIQUE || tries || kind == TS_DEL)
			return rc;
		if ((rc = contest(a, t, c, val, &won)))
			return rc;
		if (!won) {
			a->clash = KIND_UNIQUE;
			return CLASH;
		}
	}
}

/*
 * Change c lost to a constraint (a->clash): its values are kept as
 * conflicts of that kind, and nothing of it is written.
 */
static int lose_change(struct apply *a, const struct tbl *t, const struct ws_change *c,
    const struct ws_value *const *val)
{
	struct ver me = {a->origin, a->counter, a->lamport};
	uint32_t i;
	int rc;

	if ((rc = key_blob(t, c->pk, &a->pk)))
		return rc;
	for (i = 0; i < t->ncols; i++)
		if (val[i] && (rc = add_conflict(a, t, (int)i, a->clash, &me, NULL, val[i])))
			return rc;
	return 0;
}

/*
 * The mapping of batch table i, worked out on its first use in the batch:
 * the tracked table, its columns, and whether the log holds entries of it
 * older than this batch (after garbage collection it mostly does not, and
 * then no change of the batch needs to read history).
 */
static int batch_map(struct apply *a, uint32_t i, struct bmap **out)
{
	const struct ws_table *rt = &a->b->tables[i];
	struct bmap *m = &a->map[i];
	sqlite3_stmt *st;
	int rc;

	*out = m;
	if (m->t)
		return 0;
	if (rt->ncols > MAX_TRACKED_COLS)
		return ws_error(a->err, WS_ESCHEMA, "table '%s': too many columns",
		    rt->name);
	if ((rc = map_table(a->s, rt, &m->t, m->col, a->err)))
		return rc;
	if ((rc = stmt(a->s, "SELECT 1 FROM wsync_log WHERE tbl = ?1 AND usn < ?2 "
	    "LIMIT 1", &st, a->err)))
		return rc;
	sqlite3_bind_int64(st, 1, m->t->id);
	sqlite3_bind_int64(st, 2, (int64_t)a->first_usn);
	rc = sqlite3_step(st);
	m->history = rc != SQLITE_DONE;
	sqlite3_reset(st);
	return 0;
}

/*
 * Apply one change; see store.h for the rule.  A row with no history
 * and no conflicts (the common case once history is garbage-collected)
 * takes the short way: no read of the current row, just the write.
 */
/* Keep the values of row's columns in mask: the change replaces them. */
static int prior_keep(struct apply *a, const struct tbl *t, sqlite3_stmt *row,
    int64_t mask)
{
	uint32_t i;

	if (!t->constrained)
		return 0; /* see sto_constrained() */
	for (i = 0; i < t->ncols; i++)
		if ((t->allmask & mask) >> i & 1) {
			sqlite3_value_free(a->prior[i]);
			if (!(a->prior[i] = sqlite3_value_dup(sqlite3_column_value(row,
			    (int)i))))
				return WS_ENOMEM;
			a->prior_mask |= (int64_t)1 << i;
		}
	return 0;
}

/* Note the kept values as replaced by log entry usn (0: forget them). */
static int prior_note(struct apply *a, uint64_t usn)
{
	sqlite3_stmt *st = NULL;
	uint32_t i;
	int rc = 0;

	if (usn && a->prior_mask)
		rc = sto_stmt(a->s, "INSERT OR REPLACE INTO wsync_prior(usn, col, value) "
		    "VALUES(?1, ?2, ?3)", &st, a->err);
	for (i = 0; i < MAX_TRACKED_COLS; i++) {
		if (rc == 0 && st && a->prior[i]) {
			sqlite3_bind_int64(st, 1, (int64_t)usn);
			sqlite3_bind_int(st, 2, (int)i);
			sqlite3_bind_value(st, 3, a->prior[i]);
			if (sqlite3_step(st) != SQLITE_DONE)
				rc = sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "prior", a->err);
			sqlite3_reset(st);
		}
		sqlite3_value_free(a->prior[i]);
		a->prior[i] = NULL;
	}
	a->prior_mask = 0;
	return rc;
}

/*
 * Write row key of ct by a foreign key's action (del: remove it, else set
 * the columns of mask to NULL), logged as this batch's, with the values
 * it replaced (wsync_prior): a copy that gets this batch from here then
 * learns of it, and an older entry of the row still travels whole.  A
 * write SQLite refuses (a NOT NULL column to set to NULL) is skipped.
 */
static int cascade_write(struct apply *a, struct tbl *ct, const struct ws_value *key,
    int del, int64_t mask)
{
	static const struct ws_value null = {WS_NULL, 0, 0, NULL, 0};
	const struct ws_value *val[MAX_TRACKED_COLS] = {0};
	sqlite3_value *old[MAX_TRACKED_COLS] = {0};
	sqlite3_stmt *st;
	uint64_t usn;
	uint32_t i;
	int rc;

	if (del)
		mask = ct->allmask;
	if ((rc = sto_tstmt(a->s, ct, TS_ROW, 0, &st, a->err)))
		return rc;
	for (i = 0; i < ct->npk; i++)
		sto_bind_value(st, (int)i + 1, &key[i]);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_reset(st);
		return 0;
	}
	for (i = 0; rc == 0 && i < ct->ncols; i++)
		if ((mask >> i) & 1 && !(old[i] = sqlite3_value_dup(sqlite3_column_value(st,
		    (int)i))))
			rc = WS_ENOMEM;
	sqlite3_reset(st);
	if (rc || (rc = sto_tstmt(a->s, ct, del ? TS_DEL : TS_UPD, del ? 0 : mask, &st,
	    a->err)))
		goto out;
	if (del)
		for (i = 0; i < ct->npk; i++)
			sto_bind_value(st, (int)i + 1, &key[i]);
	else {
		for (i = 0; i < ct->ncols; i++)
			if ((mask >> i) & 1)
				val[i] = &null;
		bind_write(st, ct, TS_UPD, mask, val, key);
	}
	if ((rc = step_write(a, ct, st)) == CLASH) {
		a->clash = 0;
		rc = 0;
		goto out;
	}
	if (rc || (rc = log_entry(a, ct, del ? WS_OP_DELETE : WS_OP_UPDATE, mask, 0, key)))
		goto out;
	usn = (uint64_t)sqlite3_last_insert_rowid(a->s->db);
	if ((rc = sto_stmt(a->s, "INSERT OR REPLACE INTO wsync_prior(usn, col, value) "
	    "VALUES(?1, ?2, ?3)", &st, a->err)))
		goto out;
	for (i = 0; rc == 0 && i < ct->ncols; i++) {
		if (!old[i])
			continue;
		sqlite3_bind_int64(st, 1, (int64_t)usn);
		sqlite3_bind_int(st, 2, (int)i);
		sqlite3_bind_value(st, 3, old[i]);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "prior", a->err);
		sqlite3_reset(st);
	}
out:
	for (i = 0; i < ct->ncols; i++)
		sqlite3_value_free(old[i]);
	return rc;
}

/*
 * Row pk of t is about to be deleted by a remote change: run the actions
 * of the foreign keys that name it (CASCADE, SET NULL) here, each logged
 * (cascade_write()), children before their parent.  SQLite would run
 * them unseen: the triggers do not capture a merge's writes.
 */
static int cascade(struct apply *a, struct tbl *t, const struct ws_value *pk, int depth)
{
	struct ws_buf q = WS_BUF_INIT, keys = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *st = NULL;
	uint32_t j, f, k, n;
	int rc = 0;

	if (!a->s->fk_on || depth > 32)
		return 0;
	for (j = 0; rc == 0 && j < a->s->nt; j++) {
		struct tbl *ct = &a->s->t[j];

		if ((rc = sto_uniq(a->s, ct, a->err)))
			break;
		for (f = 0; rc == 0 && f < ct->nfk; f++) {
			const struct sto_fk *fk = &ct->fk[f];
			struct ws_rd r;

			if (!fk->action || strcmp(fk->parent, t->name) != 0)
				continue;
			q.len = keys.len = 0;
			rc = put_select_key(&q, ct);
			for (k = 0; rc == 0 && k < fk->ncols; k++) {
				rc = ws_buf_printf(&q, k ? " AND " : " WHERE ");
				if (rc == 0) rc = sto_qid(&q, ct->cols[fk->col[k]]);
				if (rc == 0) rc = ws_buf_printf(&q, " = ?%u", k + 1);
			}
			if (rc || !sto_cstr(&q) || (rc = sto_prep(a->s->db, sto_cstr(&q), &st,
			    a->err)))
				break;
			for (k = 0; k < fk->ncols; k++)
				sto_bind_value(st, (int)k + 1, &pk[k]);
			for (n = 0; rc == 0 && sqlite3_step(st) == SQLITE_ROW; n++)
				for (k = 0; rc == 0 && k < ct->npk; k++) {
					struct ws_value v;

					sto_value_of(sqlite3_column_value(st, (int)k), &v);
					rc = ws_value_encode(&v, &keys);
				}
			sqlite3_finalize(st);
			st = NULL;
			ws_rd_init(&r, keys.p, keys.len);
			while (rc == 0 && n-- > 0) {
				int64_t mask = 0;

				for (k = 0; rc == 0 && k < ct->npk; k++)
					rc = ws_value_decode(&r, &kv[k]);
				for (k = 0; k < fk->ncols; k++)
					mask |= (int64_t)1 << fk->col[k];
				if (rc == 0 && fk->action == STO_FK_CASCADE)
					rc = cascade(a, ct, kv, depth + 1);
				if (rc == 0)
					rc = cascade_write(a, ct, kv, fk->action == STO_FK_CASCADE,
					    mask);
			}
		}
	}
	sqlite3_finalize(st);
	ws_buf_release(&q);
	ws_buf_release(&keys);
	return rc;
}

/* Log a delete of each of the *n keys encoded one after another in keys. */
static int log_deletes(struct apply *a, const struct tbl *t, struct ws_buf *keys,
    uint32_t *n, struct ws_buf *prior)
{
	struct ws_value kv[MAX_TRACKED_COLS];
	struct ws_rd r, pr;
	uint32_t k, i;
	int rc = 0;

	ws_rd_init(&r, keys->p, keys->len);
	if (prior)
		ws_rd_init(&pr, prior->p, prior->len);
	for (k = 0; rc == 0 && k < *n; k++) {
		for (i = 0; rc == 0 && i < t->npk; i++)
			rc = ws_value_decode(&r, &kv[i]);
		if (rc == 0)
			rc = log_entry(a, t, WS_OP_DELETE, 0, 0, kv);
		if (rc == 0 && prior)
			rc = prior_write(a, &pr, (uint64_t)sqlite3_last_insert_rowid(a->s->db));
	}
	keys->len = 0;
	*n = 0;
	if (prior)
		prior->len = 0;
	return rc;
}

/*
 * After change c's log entry (usn): the removals of its row on behalf of
 * the stronger claims it lost to (OP_BY, each with that claim's version),
 * and its own claims, whatever became of it.
 */
static int log_claims(struct apply *a, struct tbl *t, const struct ws_change *c,
    uint64_t usn)
{
	uint64_t by;
	uint32_t n, u, len;
	size_t off;
	int rc = 0;

	for (n = 0; rc == 0 && n < a->nby; n++) {
		memcpy(&by, a->by.p + n * sizeof(by), sizeof(by));
		rc = log_entry(a, t, WS_OP_DELETE | OP_BY, 0, (int64_t)by, c->pk);
		if (rc == 0 && n == 0 && a->lose_prior.len) {
			struct ws_rd r;

			ws_rd_init(&r, a->lose_prior.p, a->lose_prior.len);
			rc = prior_write(a, &r, (uint64_t)sqlite3_last_insert_rowid(a->s->db));
		}
	}
	a->lose_prior.len = 0;
	for (n = 0; rc == 0 && n < a->nagain; n++) {
		int64_t m;

		memcpy(&m, a->again.p + n * 16, sizeof(m));
		memcpy(&by, a->again.p + n * 16 + 8, sizeof(by));
		rc = log_entry(a, t, WS_OP_UPDATE | OP_BY, m, (int64_t)by, c->pk);
	}
	a->again.len = 0;
	a->nagain = 0;
	if (rc == 0 && a->ncl)
		rc = key_blob(t, c->pk, &a->q);
	for (n = 0, off = 0; rc == 0 && n < a->ncl; n++) {
		struct ws_buf v = WS_BUF_INIT;

		memcpy(&u, a->cl.p + off, sizeof(u));
		memcpy(&len, a->cl.p + off + sizeof(u), sizeof(len));
		off += sizeof(u) + sizeof(len);
		v.p = a->cl.p + off; /* borrowed, never released */
		v.len = len;
		off += len;
		rc = sto_claim_add(a->s, t, u, &v, &a->q, usn, a->err);
	}
	a->ncl = a->nby = 0;
	return rc;
}

/*
 * Change c (values val, writing the columns of win over row, as it stands)
 * broke a CHECK or a NOT NULL by what it merges with: cells of the row
 * written concurrently by other changes (a CHECK over several columns).
 * On a copy where c came first, those changes were the ones to break it,
 * and lost.  So when c is stronger than every concurrent version in the
 * row, those cells go back to what they held before (wsync_prior), their
 * values are kept as conflicts of kind check, and their entries count as
 * lost there; then c is written.  CLASH when that cannot be done (c is
 * the weaker, a value before is not known, or the row still breaks it).
 */
static int check_revert(struct apply *a, struct tbl *t, const struct ws_change *c,
    const struct history *h, const struct ws_value **val, int64_t win,
    sqlite3_stmt *row)
{
	struct ver me = {a->origin, a->counter, a->lamport};
	struct ws_value old[MAX_TRACKED_COLS];
	sqlite3_value *keep[MAX_TRACKED_COLS] = {0};
	sqlite3_stmt *pr, *fix;
	int64_t back = 0;
	uint32_t i;
	int rc = 0;

	for (i = 0; i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1) || ((win >> i) & 1) || !h->cell[i].site ||
		    seen(a, &h->cell[i]))
			continue;
		if (wins(a->s, &h->cell[i], &me))
			return CLASH; /* the concurrent edit is the stronger */
		back |= (int64_t)1 << i;
	}
	if (!back || !t->constrained || (rc = sto_stmt(a->s, "SELECT value FROM "
	    "wsync_prior WHERE usn = ?1 AND col = ?2", &pr, a->err)))
		return rc ? rc : CLASH;
	for (i = 0; rc == 0 && i < t->ncols; i++) {
		if (!((back >> i) & 1))
			continue;
		sqlite3_bind_int64(pr, 1, (int64_t)h->usn[i]);
		sqlite3_bind_int(pr, 2, (int)i);
		if (sqlite3_step(pr) != SQLITE_ROW)
			rc = CLASH; /* what it held before is not known */
		else if (!(keep[i] = sqlite3_value_dup(sqlite3_column_value(pr, 0))))
			rc = WS_ENOMEM;
		sqlite3_reset(pr);
		if (rc == 0) {
			sto_value_of(keep[i], &old[i]);
			val[i] = &old[i];
		}
	}
	/* The reverted edits lose, as where they came second. */
	for (i = 0; rc == 0 && i < t->ncols; i++)
		if ((back >> i) & 1)
			rc = add_conflict(a, t, (int)i, KIND_CHECK, &h->cell[i],
			    sqlite3_column_value(row, (int)i), NULL);
	if (rc == 0 && (rc = sto_stmt(a->s, "UPDATE wsync_log SET mask = mask & ~?2, "
	    "lost = lost | ?2 WHERE usn = ?1", &fix, a->err)) == 0)
		for (i = 0; rc == 0 && i < t->ncols; i++) {
			if (!((back >> i) & 1))
				continue;
			sqlite3_bind_int64(fix, 1, (int64_t)h->usn[i]);
			sqlite3_bind_int64(fix, 2, (int64_t)1 << i);
			if (sqlite3_step(fix) != SQLITE_DONE)
				rc = sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "log", a->err);
			sqlite3_reset(fix);
		}
	if (rc == 0 && (rc = prior_keep(a, t, row, back)) == 0)
		rc = write_row(a, t, c, TS_UPD, win | back, val);
	for (i = 0; i < t->ncols; i++) {
		if ((back >> i) & 1)
			val[i] = NULL; /* old[] goes with this frame */
		sqlite3_value_free(keep[i]);
	}
	return rc;
}

static int apply_change(struct apply *a, const struct ws_change *c)
{
	const struct ws_table *rt = &a->b->tables[c->table];
	struct ws_store *s = a->s;
	struct bmap *m;
	uint32_t i, k;
	const struct ws_value *val[MAX_TRACKED_COLS] = {0}, *wval[MAX_TRACKED_COLS];
	struct ver me = {a->origin, a->counter, a->lamport}, v;
	struct ver best[MAX_TRACKED_COLS];
	struct history h;
	struct tbl *t = NULL;
	sqlite3_stmt *row = NULL;
	int64_t win = 0, lost = 0, cmask = 0, fk_cols = 0;
	uint64_t fk_by = 0;
	int rc, exists = 0, op = c->op, me_wins, sp = 0, fk_act = STO_FK_NONE;
	uint64_t usn;

	if ((rc = batch_map(a, c->table, &m)))
		return rc;
	t = m->t;
	if (op != WS_OP_DELETE)
		for (i = 0, k = 0; i < rt->ncols; i++)
			if (ws_mask_test(c->mask, i)) {
				val[m->col[i]] = &c->vals[k++];
				cmask |= (int64_t)1 << m->col[i];
			}
	a->ncl = a->nby = 0;
	if ((rc = sto_uniq(s, t, a->err)) ||
	    (op != WS_OP_DELETE && (rc = claims_contest(a, m, c, val, cmask))))
		return rc;
	if (a->nby) {
		/* A stronger concurrent claim took one of its UNIQUE values:
		 * the row goes, as on the copies where that claim came second,
		 * and the change loses (kind unique). */
		if ((rc = claim_lose(a, t, c->pk)))
			return rc;
		for (i = 0; i < t->ncols; i++)
			if (val[i] && (rc = add_conflict(a, t, (int)i, KIND_UNIQUE, &me,
			    NULL, val[i])))
				return rc;
		lost = cmask;
		op |= OP_LOSTDEL;
		m->history = 1;
		goto log;
	}
	if (m->history && (rc = load_history(a, t, c->pk, &h)))
		return rc;
	if (!m->history)
		memset(&h, 0, sizeof(h)); /* nothing older than this batch */
	memset(best, 0, sizeof(best));
	if (h.state == 0 && h.known == 0 && !a->any_conflicts) {
		/* Nothing concurrent can stand: every cell is this change's. */
		if (op == WS_OP_DELETE) {
			if ((rc = cascade(a, t, c->pk, 0)) == 0)
				rc = write_row(a, t, c, TS_DEL, 0, val);
		} else {
			if ((rc = fk_parent_deleted(a, t, val, &fk_act, &fk_cols, &fk_by)))
				return rc;
			if (fk_act == STO_FK_CASCADE)
				goto fk_lost;
			win = cmask | fk_cols;
			if (win)
				rc = write_row(a, t, c, TS_UPD, win, val);
			if (rc == 0 && (!win || sqlite3_changes(s->db) == 0))
				rc = write_row(a, t, c, TS_INS, win, val);
		}
		goto log;
	}
	if ((rc = key_blob(t, c->pk, &a->pk)))
		return rc;
	/* The current row, for the values that lose. */
	if ((rc = sto_tstmt(s, t, TS_ROW, 0, &row, a->err)))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(row, (int)i + 1, &c->pk[i]);
	exists = sqlite3_step(row) == SQLITE_ROW;
	/* What follows is undone if the write loses to a constraint. */
	if ((rc = sto_exec(s->db, "SAVEPOINT wsync_change", a->err)))
		goto out;
	sp = 1;
	if (!exists)
		/* Versions from before the row went (its delete may have been
		 * garbage-collected) no longer stand. */
		memset(h.cell, 0, sizeof(h.cell));
	/* Drop the conflicts this change has seen; keep the others. */
	sqlite3_reset(a->conf);
	sqlite3_bind_int64(a->conf, 1, t->id);
	sqlite3_bind_blob(a->conf, 2, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
	while ((rc = sqlite3_step(a->conf)) == SQLITE_ROW) {
		int cc = sqlite3_column_int(a->conf, 1);
		struct ver cv = {sqlite3_column_int64(a->conf, 2),
		    (uint64_t)sqlite3_column_int64(a->conf, 3),
		    (uint64_t)sqlite3_column_int64(a->conf, 4)};

		int lostdel = sqlite3_column_int(a->conf, 5);
		sqlite3_stmt *fix = NULL;

		if (cc < 0 || cc >= (int)t->ncols ||
		    !(((cmask >> cc) & 1) || op == WS_OP_DELETE))
			continue;
		if (seen(a, &cv))
			fix = a->delconf;  /* replaced by this change */
		else if (op == WS_OP_DELETE && !lostdel)
			fix = a->killconf; /* it loses to this delete too */
		else if (!lostdel && (best[cc].site == 0 || wins(s, &cv, &best[cc])))
			best[cc] = cv;     /* the strongest loser still standing */
		if (fix) {
			sqlite3_reset(fix);
			sqlite3_bind_int64(fix, 1, sqlite3_column_int64(a->conf, 0));
			if (sqlite3_step(fix) != SQLITE_DONE) {
				rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", a->err);
				goto out;
			}
			sqlite3_reset(fix);
		}
	}
	sqlite3_reset(a->conf);
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "conflicts", a->err);
		goto out;
	}
	rc = 0;
	if (op == WS_OP_DELETE) {
		/* A delete wins over the writes it has not seen. */
		for (i = 0; exists && i < t->ncols; i++)
			if (((t->allmask >> i) & 1) && h.cell[i].site && !seen(a, &h.cell[i]) &&
			    (rc = add_conflict(a, t, (int)i, 1, &h.cell[i],
			    sqlite3_column_value(row, (int)i), NULL)))
				goto out;
		if (exists && (rc = prior_keep(a, t, row, t->allmask)) == 0 &&
		    (rc = cascade(a, t, c->pk, 0)) == 0)
			rc = write_row(a, t, c, TS_DEL, 0, val);
		goto out;
	}
	if (h.unseen_delete) {
		/* The row was deleted concurrently: the delete wins. */
		for (i = 0; i < t->ncols; i++)
			if (val[i] && (rc = add_conflict(a, t, (int)i, 1, &me, NULL, val[i])))
				goto out;
		lost = cmask;
		op |= OP_LOSTDEL;
		goto out;
	}
	for (i = 0; i < t->ncols; i++) {
		if (!val[i])
			continue;
		/* The versions left standing: v unless seen, and best[i]. */
		v = h.state == 2 ? (struct ver){0} : h.cell[i];
		me_wins = !(v.site && !seen(a, &v) && wins(s, &v, &me)) &&
		    !(best[i].site && wins(s, &best[i], &me));
		if (me_wins) {
			win |= (int64_t)1 << i;
			if (v.site && !seen(a, &v) && exists &&
			    (rc = add_conflict(a, t, (int)i, 0, &v,
			    sqlite3_column_value(row, (int)i), NULL)))
				goto out;
		} else {
			lost |= (int64_t)1 << i;
			if ((rc = add_conflict(a, t, (int)i, 0, &me, NULL, val[i])))
				goto out;
		}
	}
	/* The foreign keys it sets (where it wins) name a live parent? */
	for (i = 0; i < t->ncols; i++)
		wval[i] = (win >> i) & 1 ? val[i] : NULL;
	if ((rc = fk_parent_deleted(a, t, wval, &fk_act, &fk_cols, &fk_by)))
		goto out;
	if (fk_act == STO_FK_CASCADE) {
		if ((rc = sto_exec(s->db, "ROLLBACK TO wsync_change", a->err)) ||
		    (rc = sto_exec(s->db, "RELEASE wsync_change", a->err)))
			goto out;
		sp = 0;
		sqlite3_reset(row);
		row = NULL;
		goto fk_lost;
	}
	for (i = 0; i < t->ncols; i++)
		if ((fk_cols >> i) & 1)
			val[i] = wval[i]; /* SET NULL */
	if (!exists || h.state == 2)
		rc = write_row(a, t, c, TS_INS, win, val);
	else if (win && (rc = prior_keep(a, t, row, win)) == 0)
		rc = write_row(a, t, c, TS_UPD, win, val);
	if (rc == CLASH && a->clash == KIND_CHECK && exists && h.state != 2 && win) {
		a->clash = 0;
		if ((rc = check_revert(a, t, c, &h, val, win, row)) == CLASH)
			a->clash = KIND_CHECK;
	}
out:
	if (row)
		sqlite3_reset(row);
	if (sp) {
		int clash = rc == CLASH;

		if (rc && !clash)
			return rc; /* the caller rolls the whole batch back */
		if (clash) {
			a->gone.len = 0; /* its removals are undone too */
			a->ngone = 0;
		}
		if ((clash && (rc = sto_exec(s->db, "ROLLBACK TO wsync_change", a->err))) ||
		    (rc = sto_exec(s->db, "RELEASE wsync_change", a->err)))
			return rc;
		rc = clash ? CLASH : 0;
	}
	goto log;
fk_lost:
	/* A parent it names was deleted concurrently: it goes too (kind
	 * fk), removed as by that delete (its version), as on a copy where
	 * it came first and the delete's cascade took it. */
	if ((rc = claim_remove(a, t, c->pk, 1, KIND_FK, &a->lose_prior)) ||
	    (rc = ws_buf_append(&a->by, &fk_by, sizeof(fk_by))))
		return rc;
	a->nby++;
	for (i = 0; i < t->ncols; i++)
		if (val[i] && (rc = add_conflict(a, t, (int)i, KIND_FK, &me, NULL,
		    val[i])))
			return rc;
	lost = cmask;
	win = 0;
	op |= OP_LOSTDEL;
	m->history = 1;
log:
	if (rc == CLASH) {
		/* It broke a constraint only concurrency could: it loses. */
		if ((rc = lose_change(a, t, c, val)))
			return rc;
		lost = op == WS_OP_DELETE ? 0 : cmask;
		win = 0;
		op |= OP_LOSTDEL;
	}
	a->clash = 0;
	if (rc)
		return rc;
	/* Log the change: what it set, and where it lost; then the removals
	 * it won (after it, so a copy that gets this batch rebuilt from the
	 * log holds the same contest, and records the same conflicts). */
	if ((rc = log_entry(a, t, op, win, lost, c->pk))) {
		prior_note(a, 0);
		return rc;
	}
	usn = (uint64_t)sqlite3_last_insert_rowid(s->db);
	if ((rc = prior_note(a, op & OP_LOSTDEL ? 0 : usn)))
		return rc;
	if ((rc = log_deletes(a, t, &a->gone, &a->ngone, NULL)) ||
	    (rc = log_deletes(a, t, &a->killed, &a->nkilled, &a->killed_prior)))
		return rc;
	if (a->ncl || a->nby)
		rc = log_claims(a, t, c, usn);
	return rc;
}

static void apply_release(struct apply *a)
{
	/* The statements belong to the store's cache. */
	free(a->map);
	a->map = NULL;
	ws_vclock_release(&a->gc);
	ws_buf_release(&a->pk);
	ws_buf_release(&a->q);
	ws_buf_release(&a->gone);
	ws_buf_release(&a->cl);
	ws_buf_release(&a->by);
	ws_buf_release(&a->killed);
	ws_buf_release(&a->again);
	ws_buf_release(&a->killed_prior);
	ws_buf_release(&a->lose_prior);
	prior_note(a, 0);
}

static int apply_init(struct apply *a, struct ws_store *s, char *err)
{
	struct ws_buf q = WS_BUF_INIT;
	unsigned i;
	int rc;

	memset(a, 0, sizeof(*a));
	a->s = s;
	a->err = err;
	rc = ws_buf_printf(&q, "SELECT usn, op, mask, lost FROM wsync_log WHERE tbl = ?1");
	for (i = 1; rc == 0 && i <= s->nk; i++)
		rc = ws_buf_printf(&q, " AND k%u IS ?%u", i, i + 1);
	if (rc == 0)
		rc = ws_buf_printf(&q, " ORDER BY usn DESC");
	if (rc || !sto_cstr(&q) || (rc = stmt(s, sto_cstr(&q), &a->hist, err)))
		goto out;
	q.len = 0;
	rc = ws_buf_printf(&q, "INSERT INTO wsync_log(tbl, op, mask, lost, ");
	if (rc == 0) rc = put_ks(&q, s->nk, "");
	if (rc == 0) rc = ws_buf_printf(&q, ") VALUES(?1, ?2, ?3, ?4");
	for (i = 1; rc == 0 && i <= s->nk; i++)
		rc = ws_buf_printf(&q, ", ?%u", i + 4);
	if (rc == 0) rc = ws_buf_printf(&q, ")");
	if (rc || !sto_cstr(&q) || (rc = stmt(s, sto_cstr(&q), &a->log, err)) ||
	    (rc = stmt(s, "SELECT site, counter, lamport, first_usn FROM wsync_batches"
	    " WHERE last_usn >= ?1 ORDER BY last_usn LIMIT 1", &a->dot, err)) ||
	    (rc = stmt(s, "SELECT id, col, site, counter, lamport, lostdel FROM "
	    "wsync_conflicts WHERE tbl = ?1 AND pk = ?2", &a->conf, err)) ||
	    (rc = stmt(s, "UPDATE wsync_conflicts SET lostdel = 1 WHERE id = ?1",
	    &a->killconf, err)) ||
	    (rc = stmt(s, "INSERT INTO wsync_conflicts(tbl, pk, col, lostdel, site,"
	    " counter, lamport, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	    &a->addconf, err)) ||
	    (rc = stmt(s, "DELETE FROM wsync_conflicts WHERE id = ?1", &a->delconf, err)))
		goto out;
	a->any_conflicts = meta_exists(s, "SELECT 1 FROM wsync_conflicts LIMIT 1");
	rc = stable_get(s, &a->gc, err);
out:
	ws_buf_release(&q);
	if (rc)
		apply_release(a);
	return rc;
}

/*
 * Where a batch stands against clock: 1 apply now, 0 already applied,
 * 2 must wait for a batch it depends on.  WS_ECORRUPT for a batch that
 * is not a store batch (no dot or context, or dots that disagree).
 */
/* A site id as text, in a static buffer (for one message at a time). */
static const char *hex_of(const struct ws_siteid *id)
{
	static char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(id, hex);
	return hex;
}

/*
 * A batch's Lamport number is the sum of its causal context's counters
 * (lamport_of()).  A hub that forwards it may drop context entries every
 * copy holds (hub.c prune()) and state the number instead, so it must lie
 * between the sum of what is left and the sum, per site, of the larger of
 * that and what this copy holds (every dropped entry is held here).  One
 * outside wins conflicts it never saw: refused.
 */
static int lamport_explained(const struct ws_batch *b, const struct ws_vclock *mine)
{
	uint64_t low = 0, high = 0, c, m;
	size_t i;

	for (i = 0; i < b->clock.n; i++) {
		c = b->clock.e[i].counter;
		m = ws_vclock_get(mine, &b->clock.e[i].site);
		if (c > WS_VCLOCK_COUNTER_MAX - low ||
		    (c > m ? c : m) > WS_VCLOCK_COUNTER_MAX - high)
			return 0;
		low += c;
		high += c > m ? c : m;
	}
	for (i = 0; i < mine->n; i++) {
		if (ws_vclock_get(&b->clock, &mine->e[i].site))
			continue;
		m = mine->e[i].counter;
		if (m > WS_VCLOCK_COUNTER_MAX - high)
			return 0;
		high += m;
	}
	return b->lamport >= low && b->lamport <= high;
}

static int readiness(const struct ws_batch *b, const struct ws_vclock *clock,
    char *err)
{
	size_t i;

	if (!b->has_dot || !b->has_clock ||
	    ws_vclock_get(&b->clock, &b->dot_site) != b->dot_counter)
		return ws_error(err, WS_ECORRUPT, "a batch to apply needs its dot and "
		    "causal context");
	for (i = 0; i < b->nchanges; i++)
		if (b->changes[i].counter != b->dot_counter ||
		    memcmp(b->sites[b->changes[i].site].b, b->dot_site.b, WS_SITEID_LEN))
			return ws_error(err, WS_ECORRUPT, "change %zu's dot differs from "
			    "its batch's", i);
	if (ws_vclock_get(clock, &b->dot_site) >= b->dot_counter)
		return 0;
	if (b->has_lamport && !lamport_explained(b, clock))
		return ws_error(err, WS_ECORRUPT, "a batch's Lamport number (%" PRIu64
		    ") does not follow from its causal context", b->lamport);
	if (b->dot_counter - ws_vclock_get(clock, &b->dot_site) > WS_PENDING_MAX)
		return ws_error(err, WS_ECORRUPT, "a batch of site %s is %" PRIu64
		    " batches ahead of the last one held here (at most %d may wait)",
		    hex_of(&b->dot_site), b->dot_counter - ws_vclock_get(clock,
		    &b->dot_site), WS_PENDING_MAX);
	if (ws_vclock_get(clock, &b->dot_site) != b->dot_counter - 1)
		return 2;
	for (i = 0; i < b->clock.n; i++)
		if (memcmp(b->clock.e[i].site.b, b->dot_site.b, WS_SITEID_LEN) &&
		    ws_vclock_get(clock, &b->clock.e[i].site) < b->clock.e[i].counter)
			return 2;
	return 1;
}

/* Apply a ready batch inside the open transaction. */
static int apply_batch(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct apply a;
	uint64_t first, last;
	size_t i;
	int rc;

	if ((rc = ws_store_usn(s, &first, err)) || (rc = apply_init(&a, s, err)))
		return rc;
	first++;
	a.b = b;
	a.first_usn = first;
	if (!(a.map = calloc(b->ntables ? b->ntables : 1, sizeof(*a.map)))) {
		apply_release(&a);
		return WS_ENOMEM;
	}
	a.counter = b->dot_counter;
	a.lamport = b->has_lamport ? b->lamport : lamport_of(&b->clock);
	if ((rc = site_index(s, &b->dot_site, &a.origin, err)) ||
	    (rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 1", err)))
		goto out;
	/* The user's triggers ran at the origin, and what they wrote there
	 * arrives as changes of its own: they must not run again here. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 0, (int *)NULL);
	for (i = 0; rc == 0 && i < b->nchanges; i++)
		rc = apply_change(&a, &b->changes[i]);
	if (rc == 0 && b->nchanges == 0) {
		/* An empty batch still takes a usn, so batch ranges never touch. */
		sqlite3_reset(a.log);
		sqlite3_clear_bindings(a.log);
		sqlite3_bind_int(a.log, 1, 0);
		sqlite3_bind_int(a.log, 2, 0);
		sqlite3_bind_int(a.log, 3, 0);
		sqlite3_bind_int(a.log, 4, 0);
		rc = sqlite3_step(a.log) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "log", err);
	}
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_ENABLE_TRIGGER, 1, (int *)NULL);
	if (rc == 0)
		rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 0", err);
	if (rc == 0 && (rc = ws_store_usn(s, &last, err)) == 0 &&
	    (rc = add_batch_row(s, a.origin, b->dot_counter, first, last, &b->clock,
	    a.lamport, err)) == 0 && (rc = clock_set(s, a.origin, b->dot_counter, err)) == 0)
		rc = sto_meta_set_int(s, "sealed_usn", (int64_t)last, err);
out:
	apply_release(&a);
	return rc;
}

/* Keep a batch that must wait. */
static int park(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *st;
	int rc, n;

	/* A bounded wait: a site's batches cannot pile up here. */
	if ((rc = stmt(s, "SELECT count(*) FROM wsync_pending WHERE site = ?1", &st,
	    err)))
		return rc;
	sqlite3_bind_blob(st, 1, b->dot_site.b, WS_SITEID_LEN, SQLITE_STATIC);
	n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_reset(st);
	if (n >= WS_PENDING_MAX)
		return ws_error(err, WS_ETOOBIG, "%d batches of site %s wait here already "
		    "for batches they depend on: no more", n, hex_of(&b->dot_site));
	if ((rc = ws_batch_encode(b, &enc)) ||
	    (rc = sto_prep(s->db, "INSERT OR IGNORE INTO wsync_pending VALUES(?1, ?2, ?3)",
	    &st, err)))
		goto out;
	sqlite3_bind_blob(st, 1, b->dot_site.b, WS_SITEID_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)b->dot_counter);
	sqlite3_bind_blob(st, 3, enc.p, (int)enc.len, SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "pending", err);
	sqlite3_finalize(st);
out:
	ws_buf_release(&enc);
	return rc;
}

/* Apply every parked batch that has become ready, until none is. */
static int drain(struct ws_store *s, struct ws_vclock *clock, char *err)
{
	struct ws_batch b;
	sqlite3_stmt *st = NULL, *del = NULL;
	int rc, progress = 1, r;

	ws_batch_init(&b);
	if ((rc = sto_prep(s->db, "SELECT site, counter, batch FROM wsync_pending", &st, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_pending WHERE site = ?1 AND counter = ?2",
	    &del, err)))
		goto out;
	while (progress && rc == 0) {
		progress = 0;
		sqlite3_reset(st);
		while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
			if ((rc = ws_batch_decode(&b, sqlite3_column_blob(st, 2),
			    (size_t)sqlite3_column_bytes(st, 2), err)))
				break;
			if ((r = readiness(&b, clock, err)) < 0) {
				rc = r;
				break;
			}
			if (r == 2)
				continue;
			if (r == 1 && ((rc = apply_batch(s, &b, err)) ||
			    (rc = ws_vclock_set(clock, &b.dot_site, b.dot_counter))))
				break;
			sqlite3_reset(del);
			sqlite3_bind_blob(del, 1, b.dot_site.b, WS_SITEID_LEN, SQLITE_TRANSIENT);
			sqlite3_bind_int64(del, 2, (int64_t)b.dot_counter);
			if (sqlite3_step(del) != SQLITE_DONE)
				rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "pending", err);
			progress = 1;
			break; /* the table changed under the cursor: start over */
		}
	}
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	ws_batch_release(&b);
	return rc;
}

/*
 * Read what batch_fits() checks values against into t, once for the
 * struct's life (a schema change describes the table anew).
 */
static int tbl_rules(struct ws_store *s, struct tbl *t, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if (t->rules)
		return 0;
	if ((rc = stmt(s, "SELECT x.cid, x.\"notnull\", x.pk, x.type, l.wr FROM "
	    "pragma_table_xinfo(?1) AS x, pragma_table_list(?1) AS l WHERE "
	    "l.schema = 'main' AND x.hidden = 0", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	t->notnull = 0;
	t->intkey = t->rowid_key;
	while (sqlite3_step(st) == SQLITE_ROW) {
		int cid = sqlite3_column_int(st, 0) + t->rowid_key;

		if (sqlite3_column_int(st, 1) && cid >= 0 && cid < MAX_TRACKED_COLS)
			t->notnull |= (int64_t)1 << cid;
		if (sqlite3_column_int(st, 2) && t->npk == 1 &&
		    !sqlite3_column_int(st, 4) && sqlite3_column_text(st, 3) &&
		    sqlite3_stricmp((const char *)sqlite3_column_text(st, 3),
		    "INTEGER") == 0)
			t->intkey = 1;
	}
	sqlite3_reset(st);
	t->rules = 1;
	return 0;
}

/*
 * Does b fit the working set's schema?  Every table it names must be
 * tracked here with its columns and key, and no change may carry a value
 * the schema refuses: a NULL in a key (it could never be matched on
 * another copy), a key of another type in an INTEGER PRIMARY KEY, a NULL
 * (or a NaN, which SQLite stores as NULL) for a NOT NULL column.  Checked
 * before a batch waits or is applied.  WS_ESCHEMA naming the table and
 * column otherwise.
 */
static int batch_fits(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct fit {
		struct tbl *t;
		uint32_t col[MAX_TRACKED_COLS]; /* local index of each batch column */
	} *fit;
	uint32_t i, n;
	size_t j;
	int rc = 0;

	if (!(fit = calloc(b->ntables ? b->ntables : 1, sizeof(*fit))))
		return WS_ENOMEM;
	for (j = 0; rc == 0 && j < b->ntables; j++) {
		if (b->tables[j].ncols > MAX_TRACKED_COLS)
			rc = ws_error(err, WS_ESCHEMA, "table '%s': more than %d columns",
			    b->tables[j].name, MAX_TRACKED_COLS);
		else if ((rc = map_table(s, &b->tables[j], &fit[j].t, fit[j].col, err)) == 0)
			rc = tbl_rules(s, fit[j].t, err);
	}
	for (j = 0; rc == 0 && j < b->nchanges; j++) {
		const struct ws_change *c = &b->changes[j];
		const struct ws_table *rt = &b->tables[c->table];
		const struct fit *f = &fit[c->table];

		for (i = 0; rc == 0 && i < rt->npk; i++)
			if (c->pk[i].type == WS_NULL)
				rc = ws_error(err, WS_ESCHEMA, "table '%s': NULL in key "
				    "column '%s'", rt->name, rt->cols[rt->pk[i]]);
			else if (f->t->intkey && c->pk[i].type != WS_INTEGER)
				rc = ws_error(err, WS_ESCHEMA, "table '%s': key column '%s' "
				    "is an INTEGER PRIMARY KEY: %s given", rt->name,
				    rt->cols[rt->pk[i]], c->pk[i].type == WS_TEXT ? "text" :
				    c->pk[i].type == WS_REAL ? "a real" : "a blob");
		if (c->op == WS_OP_DELETE)
			continue;
		for (i = 0, n = 0; rc == 0 && i < rt->ncols; i++) {
			const struct ws_value *v;

			if (!ws_mask_test(c->mask, i))
				continue;
			v = &c->vals[n++];
			if (((f->t->notnull >> f->col[i]) & 1) && (v->type == WS_NULL ||
			    (v->type == WS_REAL && v->r != v->r)))
				rc = ws_error(err, WS_ESCHEMA, "table '%s': NULL in NOT "
				    "NULL column '%s'", rt->name, rt->cols[i]);
		}
	}
	free(fit);
	return rc;
}

/*
 * Do merges enforce foreign keys?  SQLite leaves that to each connection,
 * and many applications never turn it on: their data may break their own
 * REFERENCES clauses (fossil's does), and a merge that enforced them
 * would drop rows the application holds valid.  A schema that declares
 * an action (ON DELETE or ON UPDATE CASCADE, SET NULL, SET DEFAULT,
 * RESTRICT) is written for enforcement, and its actions mean nothing
 * without it.  So merges enforce foreign keys when some tracked table
 * declares an action.  The schema is the same on every copy, so every
 * copy decides alike.  Outside a transaction: the pragma is a no-op
 * inside one.
 */
static int fk_policy(struct ws_store *s, char *err)
{
	int rc, ver, on;

	if ((rc = sto_schema_version(s, &ver, err)) || ver == s->fk_ver)
		return rc;
	on = meta_exists(s, "SELECT 1 FROM wsync_tables AS t, "
	    "pragma_foreign_key_list(t.name) AS f WHERE f.on_delete <> 'NO ACTION' "
	    "OR f.on_update <> 'NO ACTION'");
	if ((rc = sto_exec(s->db, on ? "PRAGMA foreign_keys = ON" :
	    "PRAGMA foreign_keys = OFF", err)) == 0) {
		s->fk_ver = ver;
		s->fk_on = on;
	}
	return rc;
}

int ws_store_apply(struct ws_store *s, const struct ws_batch *b, int *applied,
    char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	uint64_t usn;
	int rc, r;

	if (applied)
		*applied = 0;
	if ((rc = fk_policy(s, err)) || (rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = seal_locked(s, NULL, err)) || (rc = ws_store_clock(s, &clock, err)))
		goto out;
	/* A batch must fit the working set's schema, even to wait. */
	if ((rc = batch_fits(s, b, err)))
		goto out;
	if ((r = readiness(b, &clock, err)) < 0) {
		rc = r;
		goto out;
	}
	if (r == 2)
		rc = park(s, b, err);
	else if (r == 1 && (rc = ws_store_usn(s, &usn, err)) == 0 &&
	    (rc = apply_batch(s, b, err)) == 0 &&
	    (rc = ws_vclock_set(&clock, &b->dot_site, b->dot_counter)) == 0) {
		if (applied)
			*applied = 1;
		if ((rc = drain(s, &clock, err)) == 0 &&
		    (rc = sto_fts_rebuild(s, usn + 1, err)) == 0)
			rc = sto_scan_refresh(s, usn + 1, UINT64_MAX >> 1, err);
	}
	if (rc == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	ws_vclock_release(&clock);
	return rc;
}

int ws_store_pending(struct ws_store *s, size_t *n, char *err)
{
	uint64_t v = 0;
	int rc = query_u64(s, "SELECT count(*) FROM wsync_pending", &v, err);

	*n = (size_t)v;
	return rc;
}

/* Extraction. */

struct extract {
	struct ws_store *s;
	struct ws_batch b;
	long map[4096];          /* tracked-table position -> batch table + 1 */
	struct ws_buf q, pk;
	ws_store_batch_cb *cb;
	void *cd;
	char *err;
	uint64_t first, last;    /* the log range of the batch being built */
};

/*
 * Does later entry `later` (op, mask, lost) of a row end the standing of
 * an earlier entry of batch x->b there?  A removal made on behalf of a
 * claim (OP_BY) ends it only if that batch had not seen the claim's, and
 * the cells such a removal left standing are the earlier batch's own when
 * they name it.
 */
static int later_ends(struct extract *x, sqlite3_stmt *later, int *del, int64_t *mask)
{
	int op = sqlite3_column_int(later, 0);
	uint64_t lost = (uint64_t)sqlite3_column_int64(later, 2);
	sqlite3_stmt *st;
	int rc;

	*del = 0;
	*mask = 0;
	if (!(op & OP_BY)) {
		*del = (op & 0xf) == WS_OP_DELETE;
		if (!(op & OP_LOSTDEL))
			*mask = sqlite3_column_int64(later, 1);
		return 0;
	}
	if ((op & 0xf) != WS_OP_DELETE) {
		if (lost < x->first || lost > x->last)
			*mask = sqlite3_column_int64(later, 1);
		return 0;
	}
	if ((rc = stmt(x->s, "SELECT site, counter, first_usn FROM wsync_batches WHERE "
	    "last_usn >= ?1 ORDER BY last_usn LIMIT 1", &st, x->err)))
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)lost);
	if (sqlite3_step(st) == SQLITE_ROW &&
	    (uint64_t)sqlite3_column_int64(st, 2) <= lost) {
		int64_t site = sqlite3_column_int64(st, 0);

		*del = site >= 1 && (size_t)site < x->s->nsites &&
		    ws_vclock_get(&x->b.clock, &x->s->sites[site]) <
		    (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return 0;
}

/* The batch table index for t, describing t on first use. */
static int batch_table(struct extract *x, const struct tbl *t, uint32_t *index)
{
	size_t pos = (size_t)(t - x->s->t);
	int rc;

	if (pos < 4096 && x->map[pos]) {
		*index = (uint32_t)(x->map[pos] - 1);
		return 0;
	}
	if ((rc = ws_batch_add_table(&x->b, t->name, t->ncols,
	    (const char *const *)t->cols, t->npk, t->pk, index, x->err)))
		return rc;
	if (pos < 4096)
		x->map[pos] = (long)*index + 1;
	return 0;
}

/*
 * Add change c of table t to the batch, describing the table and naming
 * the site on first use only, so that a batch whose changes were all
 * written over stays empty (and encodable).
 */
static int add_extracted(struct extract *x, const struct tbl *t, int64_t site,
    struct ws_change *c)
{
	int rc;

	if ((rc = batch_table(x, t, &c->table)) ||
	    (rc = ws_batch_site(&x->b, &x->s->sites[site], &c->site)))
		return rc;
	return ws_batch_add_change(&x->b, c, x->err);
}

/*
 * Add log entry `e` (a row of the range query: usn, tbl, op, mask, lost,
 * k1..) to x->b as it stands now; see ws_store_changes_since().
 */
static int extract_entry(struct extract *x, sqlite3_stmt *e, int64_t site,
    uint64_t counter)
{
	struct ws_store *s = x->s;
	struct tbl *t = sto_tbl_by_id(s, sqlite3_column_int64(e, 1));
	struct ws_value pk[MAX_TRACKED_COLS], vals[MAX_TRACKED_COLS];
	uint64_t replaced_by[MAX_TRACKED_COLS] = {0};
	sqlite3_stmt *later, *row = NULL, *conf, *prior;
	sqlite3_value *cv[MAX_TRACKED_COLS] = {0};
	uint8_t mask[8] = {0};
	struct ws_change c = {0};
	int64_t emask, win, later_mask = 0;
	uint32_t i, n = 0;
	int rc, op, later_delete = 0, exists = 0;

	if (!t)
		return 0; /* an empty batch's marker */
	op = sqlite3_column_int(e, 2);
	if (op & OP_BY)
		return 0; /* every copy makes it itself */
	emask = sqlite3_column_int64(e, 3) | sqlite3_column_int64(e, 4);
	for (i = 0; i < t->npk; i++)
		sto_value_of(sqlite3_column_value(e, 5 + (int)i), &pk[i]);
	if ((rc = sto_pk_blob(e, 5, t->npk, &x->pk)))
		return rc;
	/* What later entries did to this row. */
	x->q.len = 0;
	rc = ws_buf_printf(&x->q, "SELECT op, mask, lost, usn FROM wsync_log WHERE "
	    "tbl = ?1 AND usn > ?2");
	for (i = 0; rc == 0 && i < s->nk; i++)
		rc = ws_buf_printf(&x->q, " AND k%u IS ?%u", i + 1, i + 3);
	if (rc == 0) rc = ws_buf_printf(&x->q, " ORDER BY usn");
	if (rc || !sto_cstr(&x->q) || (rc = stmt(s, sto_cstr(&x->q), &later, x->err)))
		return rc;
	sqlite3_bind_int64(later, 1, t->id);
	sqlite3_bind_int64(later, 2, sqlite3_column_int64(e, 0));
	for (i = 0; i < t->npk; i++)
		sto_bind_value(later, (int)i + 3, &pk[i]);
	while ((rc = sqlite3_step(later)) == SQLITE_ROW) {
		int64_t lmask;
		int ldel;

		if ((rc = later_ends(x, later, &ldel, &lmask))) {
			sqlite3_reset(later);
			return rc;
		}
		/* The first entry to replace each cell noted what it held. */
		for (i = 0; i < t->ncols; i++)
			if (!replaced_by[i] && (ldel || ((lmask >> i) & 1)))
				replaced_by[i] = (uint64_t)sqlite3_column_int64(later, 3);
		later_delete |= ldel;
		later_mask |= lmask;
	}
	sqlite3_reset(later);
	if (rc != SQLITE_DONE)
		return sto_sqlerr(s->db, rc, "log", x->err);
	c.op = (uint8_t)(op & 0xf);
	c.counter = counter;
	c.pk = pk;
	if (c.op == WS_OP_DELETE)
		return add_extracted(x, t, site, &c);
	/* Values: the current row where this entry still wins ... */
	win = later_delete ? 0 : sqlite3_column_int64(e, 3) & ~later_mask;
	if ((rc = sto_tstmt(s, t, TS_ROW, 0, &row, x->err)))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(row, (int)i + 1, &pk[i]);
	exists = sqlite3_step(row) == SQLITE_ROW;
	/* ... the conflicts table where it lost and still stands ... */
	if ((rc = stmt(s, "SELECT col, value FROM wsync_conflicts WHERE tbl = ?1 "
	    "AND pk = ?2 AND site = ?3 AND counter = ?4", &conf, x->err)))
		goto out;
	sqlite3_bind_int64(conf, 1, t->id);
	sqlite3_bind_blob(conf, 2, x->pk.p, (int)x->pk.len, SQLITE_STATIC);
	sqlite3_bind_int64(conf, 3, site);
	sqlite3_bind_int64(conf, 4, (int64_t)counter);
	while (sqlite3_step(conf) == SQLITE_ROW) {
		int col = sqlite3_column_int(conf, 0);

		/* A copy: stepping conf again invalidates its values. */
		if (col >= 0 && col < (int)t->ncols && ((emask >> col) & 1) &&
		    !((win >> col) & 1) && !cv[col] &&
		    !(cv[col] = sqlite3_value_dup(sqlite3_column_value(conf, 1)))) {
			rc = WS_ENOMEM;
			goto out;
		}
	}
	/* ... what it set where a later entry replaced it since ... */
	if ((rc = stmt(s, "SELECT value FROM wsync_prior WHERE usn = ?1 AND col = ?2",
	    &prior, x->err)))
		goto out;
	for (i = 0; i < t->ncols; i++) {
		if (cv[i] || !replaced_by[i] || ((win >> i) & 1) ||
		    !((sqlite3_column_int64(e, 3) >> i) & 1))
			continue;
		sqlite3_bind_int64(prior, 1, (int64_t)replaced_by[i]);
		sqlite3_bind_int(prior, 2, (int)i);
		if (sqlite3_step(prior) == SQLITE_ROW &&
		    !(cv[i] = sqlite3_value_dup(sqlite3_column_value(prior, 0))))
			rc = WS_ENOMEM;
		sqlite3_reset(prior);
		if (rc)
			goto out;
	}
	/* ... and, for an insert into a row that lives on, its current value. */
	for (i = 0; i < t->ncols; i++) {
		if (!((t->allmask >> i) & 1))
			continue;
		if (exists && ((win >> i) & 1))
			sto_value_of(sqlite3_column_value(row, (int)i), &vals[n]);
		else if (cv[i])
			sto_value_of(cv[i], &vals[n]);
		else if (c.op == WS_OP_INSERT && exists && !later_delete)
			sto_value_of(sqlite3_column_value(row, (int)i), &vals[n]);
		else
			continue;
		mask[i / 8] |= (uint8_t)(1u << (i % 8));
		n++;
	}
	rc = 0;
	if (n || (c.op == WS_OP_INSERT && !later_delete)) {
		c.mask = mask;
		c.vals = vals;
		c.nvals = n;
		rc = add_extracted(x, t, site, &c);
	}
	sqlite3_reset(conf);
out:
	for (i = 0; i < t->ncols; i++)
		sqlite3_value_free(cv[i]);
	sqlite3_reset(row);
	return rc;
}

/* Build and hand over one batch (a row of wsync_batches in bs). */
static int extract_batch(struct extract *x, sqlite3_stmt *bs)
{
	struct ws_store *s = x->s;
	struct ws_vclock ctx = WS_VCLOCK_INIT;
	int64_t site = sqlite3_column_int64(bs, 0);
	uint64_t counter = (uint64_t)sqlite3_column_int64(bs, 1);
	uint64_t last = (uint64_t)sqlite3_column_int64(bs, 3);
	sqlite3_stmt *e = NULL;
	struct ws_buf q = WS_BUF_INIT;
	int rc;

	ws_batch_release(&x->b);
	memset(x->map, 0, sizeof(x->map));
	if (site < 1 || (size_t)site >= s->nsites)
		return ws_error(x->err, WS_ECORRUPT, "wsync_batches names an unknown site");
	if ((rc = ws_vclock_decode_all(&ctx, sqlite3_column_blob(bs, 4),
	    (size_t)sqlite3_column_bytes(bs, 4), x->err)) ||
	    (rc = ws_batch_set_clock(&x->b, &ctx)) ||
	    (rc = ws_batch_set_dot(&x->b, &s->sites[site], counter)))
		goto out;
	/* A context pruned on its way here keeps its original number. */
	if ((uint64_t)sqlite3_column_int64(bs, 5) != lamport_of(&ctx))
		ws_batch_set_lamport(&x->b, (uint64_t)sqlite3_column_int64(bs, 5));
	rc = ws_buf_printf(&q, "SELECT usn, tbl, op, mask, lost");
	if (rc == 0 && s->nk)
		rc = ws_buf_printf(&q, ", ");
	if (rc == 0) rc = put_ks(&q, s->nk, "");
	if (rc == 0) rc = ws_buf_printf(&q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2"
	    " ORDER BY usn");
	/* Not cached: extract_entry's statements run while this one steps. */
	if (rc || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &e, x->err)))
		goto out;
	sqlite3_bind_int64(e, 1, sqlite3_column_int64(bs, 2));
	sqlite3_bind_int64(e, 2, (int64_t)last);
	x->first = (uint64_t)sqlite3_column_int64(bs, 2);
	x->last = last;
	while ((rc = sqlite3_step(e)) == SQLITE_ROW)
		if ((rc = extract_entry(x, e, site, counter)))
			goto out;
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "log", x->err);
		goto out;
	}
	rc = x->cb(&x->b, last, x->cd);
out:
	sqlite3_finalize(e);
	ws_buf_release(&q);
	ws_vclock_release(&ctx);
	return rc;
}

/*
 * Run the extraction over the batches bs yields (site, counter,
 * first_usn, last_usn, clock), keeping those `want` accepts.
 */
static int extract(struct ws_store *s, sqlite3_stmt *bs, const struct ws_vclock *peer,
    ws_store_batch_cb *cb, void *cd, char *err)
{
	struct extract *x;
	int rc;

	if (!(x = calloc(1, sizeof(*x))))
		return WS_ENOMEM;
	x->s = s;
	x->cb = cb;
	x->cd = cd;
	x->err = err;
	ws_batch_init(&x->b);
	while ((rc = sqlite3_step(bs)) == SQLITE_ROW) {
		int64_t site = sqlite3_column_int64(bs, 0);

		if (peer && site >= 1 && (size_t)site < s->nsites &&
		    ws_vclock_get(peer, &s->sites[site]) >=
		    (uint64_t)sqlite3_column_int64(bs, 1))
			continue;
		if ((rc = extract_batch(x, bs)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "batches", err);
out:
	ws_batch_release(&x->b);
	ws_buf_release(&x->q);
	ws_buf_release(&x->pk);
	free(x);
	return rc;
}

/* changes_since, of every site's batches (own 0) or only this site's. */
static int since(struct ws_store *s, uint64_t usn, int own, ws_store_batch_cb *cb,
    void *clientData, char *err)
{
	sqlite3_stmt *bs = NULL;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN", err)))
		return rc;
	/* A collected batch of this site's was stable: its hub has it. */
	if (!own && (uint64_t)sto_meta_int(s, "gc_usn") > usn) {
		rc = ws_error(err, WS_ERANGE, "changes after usn %" PRIu64 " were "
		    "garbage-collected: a full copy is needed", usn);
		goto out;
	}
	if ((rc = sto_prep(s->db, "SELECT site, counter, first_usn, last_usn, clock, lamport "
	    "FROM wsync_batches WHERE last_usn > ?1 AND (?2 = 0 OR site = ?2) "
	    "ORDER BY last_usn", &bs, err)))
		goto out;
	sqlite3_bind_int64(bs, 1, (int64_t)usn);
	sqlite3_bind_int64(bs, 2, own ? s->self : 0);
	rc = extract(s, bs, NULL, cb, clientData, err);
out:
	sqlite3_finalize(bs);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int ws_store_changes_since(struct ws_store *s, uint64_t usn, ws_store_batch_cb *cb,
    void *clientData, char *err)
{
	return since(s, usn, 0, cb, clientData, err);
}

int ws_store_local_since(struct ws_store *s, uint64_t usn, ws_store_batch_cb *cb,
    void *clientData, char *err)
{
	return since(s, usn, 1, cb, clientData, err);
}

int ws_store_changes_missing(struct ws_store *s, const struct ws_vclock *peer,
    ws_store_batch_cb *cb, void *clientData, char *err)
{
	struct ws_vclock gc = WS_VCLOCK_INIT;
	sqlite3_stmt *bs = NULL;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN", err)))
		return rc;
	if ((rc = stable_get(s, &gc, err)))
		goto out;
	if (!ws_vclock_reaches(peer, &gc)) {
		rc = ws_error(err, WS_ERANGE, "the peer lacks changes that were "
		    "garbage-collected here: a full copy is needed");
		goto out;
	}
	if ((rc = sto_prep(s->db, "SELECT site, counter, first_usn, last_usn, clock, lamport "
	    "FROM wsync_batches ORDER BY last_usn", &bs, err)))
		goto out;
	rc = extract(s, bs, peer, cb, clientData, err);
out:
	ws_vclock_release(&gc);
	sqlite3_finalize(bs);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

/* Conflicts. */

/* The name of a conflict kind (wsync_conflicts.lostdel). */
static const char *kind_name(int kind)
{
	static const char *const names[] = {"value", "delete", "unique", "check", "fk"};

	return kind >= 0 && kind <= KIND_FK ? names[kind] : "delete";
}

int ws_store_conflicts(struct ws_store *s, ws_store_conflict_cb *cb,
    void *clientData, char *err)
{
	struct ws_value pk[MAX_TRACKED_COLS];
	struct ws_conflict c;
	sqlite3_stmt *st = NULL;
	struct ws_rd r;
	const struct tbl *t;
	uint32_t i;
	int rc, col;

	if ((rc = sto_prep(s->db, "SELECT c.id, c.tbl, c.pk, c.col, c.lostdel, s.site, "
	    "c.counter, c.value FROM wsync_conflicts c JOIN wsync_sites s ON "
	    "s.id = c.site JOIN wsync_tables t ON t.id = c.tbl "
	    "ORDER BY t.name, c.pk, c.col, s.site, c.counter", &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&c, 0, sizeof(c));
		t = sto_tbl_by_id(s, sqlite3_column_int64(st, 1));
		col = sqlite3_column_int(st, 3);
		if (!t || col < 0 || col >= (int)t->ncols ||
		    sqlite3_column_bytes(st, 5) != WS_SITEID_LEN) {
			rc = ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
			goto out;
		}
		ws_rd_init(&r, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
		for (i = 0; i < t->npk; i++)
			if (ws_value_decode(&r, &pk[i])) {
				rc = ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
				goto out;
			}
		c.id = sqlite3_column_int64(st, 0);
		c.table = t->name;
		c.pk = pk;
		c.npk = t->npk;
		c.column = t->cols[col];
		c.lost_to_delete = sqlite3_column_int(st, 4) != KIND_VALUE;
		c.kind = kind_name(sqlite3_column_int(st, 4));
		memcpy(c.site.b, sqlite3_column_blob(st, 5), WS_SITEID_LEN);
		c.counter = (uint64_t)sqlite3_column_int64(st, 6);
		sto_value_of(sqlite3_column_value(st, 7), &c.value);
		if ((rc = cb(&c, clientData)))
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "conflicts", err);
out:
	sqlite3_finalize(st);
	return rc;
}

/* Append a local log entry by hand: a write the triggers would not see. */
static int log_local(struct ws_store *s, const struct tbl *t, int op, int64_t mask,
    const struct ws_value *pk, char *err)
{
	struct ws_buf q = WS_BUF_INIT;
	sqlite3_stmt *st;
	uint32_t i;
	int rc;

	rc = ws_buf_printf(&q, "INSERT INTO wsync_log(tbl, op, mask, ");
	if (rc == 0) rc = put_ks(&q, t->npk, "");
	if (rc == 0) rc = ws_buf_printf(&q, ") VALUES(?1, ?2, ?3");
	for (i = 0; rc == 0 && i < t->npk; i++)
		rc = ws_buf_printf(&q, ", ?%u", i + 4);
	if (rc == 0) rc = ws_buf_printf(&q, ")");
	if (rc == 0 && !sto_cstr(&q))
		rc = WS_ENOMEM;
	if (rc == 0 && (rc = stmt(s, sto_cstr(&q), &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, t->id);
		sqlite3_bind_int(st, 2, op);
		sqlite3_bind_int64(st, 3, mask);
		for (i = 0; i < t->npk; i++)
			sto_bind_value(st, (int)i + 4, &pk[i]);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "log", err);
		sqlite3_reset(st);
	}
	ws_buf_release(&q);
	return rc;
}

/*
 * Write the resolution of conflict row cf (tbl, pk, col, lostdel, site,
 * counter, value) inside the open transaction.
 */
static int resolve_locked(struct ws_store *s, sqlite3_stmt *cf, int keep, char *err)
{
	struct tbl *t = sto_tbl_by_id(s, sqlite3_column_int64(cf, 0));
	struct ws_value pk[MAX_TRACKED_COLS];
	sqlite3_stmt *row, *w = NULL, *lost = NULL;
	struct ws_buf q = WS_BUF_INIT;
	int col = sqlite3_column_int(cf, 2), rc, exists, n = 0;
	int64_t mask = 0;
	struct ws_rd r;
	uint32_t i;

	if (!t || col < 0 || col >= (int)t->ncols)
		return ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
	ws_rd_init(&r, sqlite3_column_blob(cf, 1), (size_t)sqlite3_column_bytes(cf, 1));
	for (i = 0; i < t->npk; i++)
		if (ws_value_decode(&r, &pk[i]))
			return ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
	if ((rc = sto_tstmt(s, t, TS_ROW, 0, &row, err)))
		goto out;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(row, (int)i + 1, &pk[i]);
	exists = sqlite3_step(row) == SQLITE_ROW;
	sqlite3_reset(row);
	if ((rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 1", err)))
		goto out;
	if (!exists && !keep) {
		/* Lost to a delete: bring the row back with what was lost with it. */
		if ((rc = sto_prep(s->db, "SELECT col, value FROM wsync_conflicts WHERE tbl = ?1 "
		    "AND pk = ?2 AND site = ?3 AND counter = ?4 AND lostdel", &lost, err)))
			goto out;
		for (i = 1; i <= 4; i++)
			sqlite3_bind_value(lost, (int)i, sqlite3_column_value(cf,
			    i == 1 ? 0 : i == 2 ? 1 : (int)i + 1));
		rc = ws_buf_printf(&q, "INSERT INTO ");
		if (rc == 0) rc = sto_qid(&q, t->name);
		if (rc == 0) rc = ws_buf_printf(&q, "(");
		for (i = 0; rc == 0 && i < t->npk; i++) {
			rc = ws_buf_printf(&q, i ? ", " : "");
			if (rc == 0) rc = sto_qid(&q, t->cols[t->pk[i]]);
		}
		while (rc == 0 && sqlite3_step(lost) == SQLITE_ROW) {
			int lc = sqlite3_column_int(lost, 0);

			if (lc < 0 || lc >= (int)t->ncols || ((mask >> lc) & 1))
				continue;
			mask |= (int64_t)1 << lc;
			rc = ws_buf_printf(&q, ", ");
			if (rc == 0) rc = sto_qid(&q, t->cols[lc]);
			n++;
		}
		if (rc == 0) rc = ws_buf_printf(&q, ") VALUES(");
		for (i = 0; rc == 0 && i < t->npk + (uint32_t)n; i++)
			rc = ws_buf_printf(&q, i ? ", ?" : "?");
		if (rc == 0) rc = ws_buf_printf(&q, ")");
		if (rc || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &w, err)))
			goto out;
		for (i = 0; i < t->npk; i++)
			sto_bind_value(w, (int)i + 1, &pk[i]);
		sqlite3_reset(lost);
		for (i = t->npk + 1; sqlite3_step(lost) == SQLITE_ROW;) {
			int lc = sqlite3_column_int(lost, 0);

			if (lc >= 0 && lc < (int)t->ncols && ((mask >> lc) & 1) &&
			    i <= t->npk + (uint32_t)n)
				sqlite3_bind_value(w, (int)i++, sqlite3_column_value(lost, 1));
		}
		if (sqlite3_step(w) != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), t->name, err);
			goto out;
		}
		rc = log_local(s, t, WS_OP_INSERT, t->allmask, pk, err);
	} else {
		if (!keep && exists) {
			rc = ws_buf_printf(&q, "UPDATE ");
			if (rc == 0) rc = sto_qid(&q, t->name);
			if (rc == 0) rc = ws_buf_printf(&q, " SET ");
			if (rc == 0) rc = sto_qid(&q, t->cols[col]);
			if (rc == 0) rc = ws_buf_printf(&q, " = ?%u", t->npk + 1);
			if (rc == 0) rc = put_pk_where(&q, t, 1);
			if (rc || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &w, err)))
				goto out;
			for (i = 0; i < t->npk; i++)
				sto_bind_value(w, (int)i + 1, &pk[i]);
			sqlite3_bind_value(w, (int)t->npk + 1, sqlite3_column_value(cf, 6));
			if (sqlite3_step(w) != SQLITE_DONE) {
				rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), t->name, err);
				goto out;
			}
		}
		/* Keeping a deleted row deleted: a delete that has seen it all. */
		rc = exists ? log_local(s, t, WS_OP_UPDATE, (int64_t)1 << col, pk, err) :
		    log_local(s, t, WS_OP_DELETE, 0, pk, err);
	}
	if (rc == 0)
		rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 0", err);
out:
	sqlite3_finalize(w);
	sqlite3_finalize(lost);
	ws_buf_release(&q);
	return rc;
}

int ws_store_resolve(struct ws_store *s, int64_t id, int keep, char *err)
{
	sqlite3_stmt *cf = NULL;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = seal_locked(s, NULL, err)) ||
	    (rc = sto_prep(s->db, "SELECT tbl, pk, col, lostdel, site, counter, value FROM "
	    "wsync_conflicts WHERE id = ?1", &cf, err)))
		goto out;
	sqlite3_bind_int64(cf, 1, id);
	if (sqlite3_step(cf) != SQLITE_ROW) {
		rc = ws_error(err, WS_ENOTFOUND, "no conflict %" PRId64, id);
		goto out;
	}
	if ((rc = resolve_locked(s, cf, keep, err)))
		goto out;
	sqlite3_finalize(cf);
	cf = NULL;
	if ((rc = seal_locked(s, NULL, err)) == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
	sqlite3_finalize(cf);
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Garbage collection. */

/* ws_store_gc inside an open write transaction, after a seal. */
static int gc_locked(struct ws_store *s, const struct ws_vclock *stable,
    uint64_t *dropped, char *err)
{
	struct ws_vclock gc = WS_VCLOCK_INIT;
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *bs = NULL, *del = NULL, *delb = NULL, *delc = NULL, *delp = NULL;
	uint64_t maxusn, gcusn, n = 0;
	int rc;

	*dropped = 0;
	if ((rc = ws_store_usn(s, &maxusn, err)))
		return rc;
	gcusn = (uint64_t)sto_meta_int(s, "gc_usn");
	if ((rc = sto_prep(s->db, "SELECT b.site, b.counter, b.first_usn, b.last_usn, s.site "
	    "FROM wsync_batches b JOIN wsync_sites s ON s.id = b.site", &bs, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_log WHERE usn BETWEEN ?1 AND ?2",
	    &del, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_batches WHERE site = ?1 AND counter = ?2",
	    &delb, err)) ||
	    /* Every site has seen them: they can meet no concurrent claim. */
	    (rc = sto_prep(s->db, "DELETE FROM wsync_claims WHERE usn BETWEEN ?1 AND ?2",
	    &delc, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_prior WHERE usn BETWEEN ?1 AND ?2",
	    &delp, err)))
		goto out;
	while ((rc = sqlite3_step(bs)) == SQLITE_ROW) {
		struct ws_siteid site;

		memcpy(site.b, sqlite3_column_blob(bs, 4), WS_SITEID_LEN);
		if (ws_vclock_get(stable, &site) < (uint64_t)sqlite3_column_int64(bs, 1))
			continue;
		sqlite3_bind_int64(del, 1, sqlite3_column_int64(bs, 2));
		sqlite3_bind_int64(del, 2, sqlite3_column_int64(bs, 3));
		if (sqlite3_step(del) != SQLITE_DONE)
			goto sqlfail;
		n += (uint64_t)sqlite3_changes(s->db);
		sqlite3_reset(del);
		sqlite3_bind_int64(delc, 1, sqlite3_column_int64(bs, 2));
		sqlite3_bind_int64(delc, 2, sqlite3_column_int64(bs, 3));
		sqlite3_bind_int64(delp, 1, sqlite3_column_int64(bs, 2));
		sqlite3_bind_int64(delp, 2, sqlite3_column_int64(bs, 3));
		if (sqlite3_step(delc) != SQLITE_DONE || sqlite3_step(delp) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_reset(delc);
		sqlite3_reset(delp);
		if ((uint64_t)sqlite3_column_int64(bs, 3) > gcusn)
			gcusn = (uint64_t)sqlite3_column_int64(bs, 3);
		sqlite3_bind_int64(delb, 1, sqlite3_column_int64(bs, 0));
		sqlite3_bind_int64(delb, 2, sqlite3_column_int64(bs, 1));
		if (sqlite3_step(delb) != SQLITE_DONE)
			goto sqlfail;
		sqlite3_reset(delb);
	}
	if (rc != SQLITE_DONE)
		goto sqlfail;
	/*
	 * The log keeps its newest usn, as a marker (table 0) if its entry
	 * went, so usns are never handed out twice.
	 */
	if (maxusn && (rc = exec_int(s, "INSERT OR IGNORE INTO wsync_log(usn, tbl, "
	    "op, mask) VALUES(?1, 0, 0, 0)", (int64_t)maxusn, err)))
		goto out;
	if (sqlite3_changes(s->db) == 1 && n > 0)
		n--; /* counted as dropped, but a marker took its place */
	if ((rc = stable_get(s, &gc, err)) || (rc = ws_vclock_merge(&gc, stable)) ||
	    (rc = ws_vclock_encode(&gc, &enc)) ||
	    (rc = sto_meta_set(s, "gc", enc.p ? enc.p : (const uint8_t *)"", enc.len, 0, err)) ||
	    (rc = sto_meta_set_int(s, "gc_usn", (int64_t)gcusn, err)))
		goto out;
	*dropped = n;
	goto out;
sqlfail:
	rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "gc", err);
out:
	sqlite3_finalize(bs);
	sqlite3_finalize(del);
	sqlite3_finalize(delb);
	sqlite3_finalize(delc);
	sqlite3_finalize(delp);
	ws_vclock_release(&gc);
	ws_buf_release(&enc);
	return rc;
}

int ws_store_gc_bound(struct ws_store *s, struct ws_vclock *h, char *err)
{
	struct ws_vclock gc = WS_VCLOCK_INIT, ctx = WS_VCLOCK_INIT;
	struct ws_siteid site;
	sqlite3_stmt *bs = NULL;
	enum ws_vclock_order ord;
	int rc, lowered = 1;

	if ((rc = stable_get(s, &gc, err)) ||
	    (rc = sto_prep(s->db, "SELECT s.site, b.counter, b.clock FROM wsync_batches b "
	    "JOIN wsync_sites s ON s.id = b.site", &bs, err)))
		goto out;
	/* Lowering h leaves more batches outside it: repeat until none does. */
	while (lowered && h->n) {
		lowered = 0;
		sqlite3_reset(bs);
		while ((rc = sqlite3_step(bs)) == SQLITE_ROW) {
			if (sqlite3_column_bytes(bs, 0) != WS_SITEID_LEN) {
				rc = ws_error(err, WS_ECORRUPT, "batches: bad site id");
				goto out;
			}
			memcpy(site.b, sqlite3_column_blob(bs, 0), WS_SITEID_LEN);
			if (ws_vclock_get(h, &site) >= (uint64_t)sqlite3_column_int64(bs, 1))
				continue; /* within h */
			ws_vclock_release(&ctx);
			if ((sqlite3_column_bytes(bs, 2) > 0 &&
			    (rc = ws_vclock_decode_all(&ctx, sqlite3_column_blob(bs, 2),
			    (size_t)sqlite3_column_bytes(bs, 2), err))) ||
			    (rc = ws_vclock_merge(&ctx, &gc)))
				goto out;
			ord = ws_vclock_compare(h, &ctx);
			if (ord != WS_VCLOCK_BEFORE && ord != WS_VCLOCK_EQUAL) {
				ws_vclock_meet(h, &ctx);
				lowered = 1;
			}
		}
		if (rc != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, rc, "batches", err);
			goto out;
		}
		rc = 0;
	}
out:
	sqlite3_finalize(bs);
	ws_vclock_release(&gc);
	ws_vclock_release(&ctx);
	return rc;
}

int ws_store_gc(struct ws_store *s, const struct ws_vclock *stable,
    uint64_t *dropped, char *err)
{
	uint64_t n = 0;
	int rc;

	if (dropped)
		*dropped = 0;
	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = seal_locked(s, NULL, err)) || (rc = gc_locked(s, stable, &n, err)) ||
	    (rc = sto_exec(s->db, "COMMIT", err))) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (dropped)
		*dropped = n;
	return 0;
}

/* Full copies. */

#define SNAP_ROWS 1000          /* rows a snapshot batch holds at most */
#define SNAP_BYTES (1u << 20)   /* and about this many bytes of values */

/* Append "SELECT <cols> FROM <t>" to q: every column (all) or the key. */
static int put_select(struct ws_buf *q, const struct tbl *t, int all)
{
	uint32_t i, n = all ? t->ncols : t->npk;
	int rc = ws_buf_printf(q, "SELECT ");

	for (i = 0; rc == 0 && i < n; i++) {
		rc = i ? ws_buf_printf(q, ", ") : 0;
		if (rc == 0) rc = sto_qid(q, t->cols[all ? i : t->pk[i]]);
	}
	if (rc == 0) rc = ws_buf_printf(q, " FROM ");
	if (rc == 0) rc = sto_qid(q, t->name);
	return rc;
}

/*
 * The conflicts of a full copy: those whose losing version is within the
 * horizon gc (the receiver can no longer learn them from the batches;
 * the others come back with the batches after the copy).  Batches that
 * carry a Lamport number, one number and one table each; a change per
 * conflict: an update (or, for a value that lost to a delete, an insert)
 * of its one column, with the losing version's dot.
 */
static int snapshot_conflicts(struct ws_store *s, const struct ws_vclock *gc,
    ws_store_batch_cb *cb, void *clientData, char *err)
{
	struct ws_value pk[MAX_TRACKED_COLS], val;
	const struct tbl *t, *cur = NULL;
	struct ws_siteid site;
	struct ws_change c;
	struct ws_batch b;
	sqlite3_stmt *st = NULL;
	struct ws_rd r;
	uint64_t lamport, cur_lamport = 0, counter;
	uint8_t mask[8];
	size_t rows = 0;
	uint32_t k;
	int rc, col;

	ws_batch_init(&b);
	if ((rc = sto_prep(s->db, "SELECT c.tbl, c.pk, c.col, c.lostdel, s.site, c.counter, "
	    "c.lamport, c.value FROM wsync_conflicts c JOIN wsync_sites s ON "
	    "s.id = c.site ORDER BY c.tbl, c.lamport, c.id", &st, err)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sto_tbl_by_id(s, sqlite3_column_int64(st, 0));
		col = sqlite3_column_int(st, 2);
		if (!t || col < 0 || col >= (int)t->ncols || !((t->allmask >> col) & 1) ||
		    sqlite3_column_bytes(st, 4) != WS_SITEID_LEN) {
			rc = ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
			goto out;
		}
		memcpy(site.b, sqlite3_column_blob(st, 4), WS_SITEID_LEN);
		counter = (uint64_t)sqlite3_column_int64(st, 5);
		lamport = (uint64_t)sqlite3_column_int64(st, 6);
		if (ws_vclock_get(gc, &site) < counter)
			continue;
		if (rows && (t != cur || lamport != cur_lamport || rows >= SNAP_ROWS)) {
			if ((rc = cb(&b, 0, clientData)))
				goto out;
			rows = 0;
		}
		memset(&c, 0, sizeof(c));
		if (rows == 0) {
			ws_batch_release(&b);
			if ((rc = ws_batch_set_clock(&b, gc)) ||
			    (rc = ws_batch_add_table(&b, t->name, t->ncols,
			    (const char *const *)t->cols, t->npk, t->pk, NULL, err)))
				goto out;
			ws_batch_set_lamport(&b, lamport);
			cur = t;
			cur_lamport = lamport;
		}
		ws_rd_init(&r, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1));
		for (k = 0; k < t->npk; k++)
			if (ws_value_decode(&r, &pk[k])) {
				rc = ws_error(err, WS_ECORRUPT, "wsync_conflicts is damaged");
				goto out;
			}
		sto_value_of(sqlite3_column_value(st, 7), &val);
		memset(mask, 0, sizeof(mask));
		ws_mask_set(mask, (uint32_t)col);
		if ((rc = ws_batch_site(&b, &site, &c.site)))
			goto out;
		c.op = sqlite3_column_int(st, 3) ? WS_OP_INSERT : WS_OP_UPDATE;
		c.counter = counter;
		c.pk = pk;
		c.mask = mask;
		c.vals = &val;
		c.nvals = 1;
		if ((rc = ws_batch_add_change(&b, &c, err)))
			goto out;
		rows++;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "conflicts", err);
		goto out;
	}
	rc = rows ? cb(&b, 0, clientData) : 0;
out:
	sqlite3_finalize(st);
	ws_batch_release(&b);
	return rc;
}

int ws_store_snapshot(struct ws_store *s, ws_store_batch_cb *cb, void *clientData,
    char *err)
{
	struct ws_value pk[MAX_TRACKED_COLS], vals[MAX_TRACKED_COLS];
	struct ws_vclock gc = WS_VCLOCK_INIT;
	struct ws_buf q = WS_BUF_INIT;
	struct ws_change c;
	struct ws_batch b;
	sqlite3_stmt *st = NULL;
	uint8_t mask[8];
	size_t i, rows, bytes;
	uint32_t k;
	int rc;

	ws_batch_init(&b);
	if ((rc = sto_exec(s->db, "BEGIN", err)))
		return rc;
	if ((rc = stable_get(s, &gc, err)))
		goto out;
	for (i = 0; i < s->nt; i++) {
		struct tbl *t = &s->t[i];

		q.len = 0;
		if ((rc = put_select(&q, t, 1)) || !sto_cstr(&q) ||
		    (rc = sto_prep(s->db, sto_cstr(&q), &st, err)))
			goto out;
		rows = bytes = 0;
		memset(&c, 0, sizeof(c));
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (rows == 0) {
				ws_batch_release(&b);
				if ((rc = ws_batch_set_clock(&b, &gc)) ||
				    (rc = ws_batch_add_table(&b, t->name, t->ncols,
				    (const char *const *)t->cols, t->npk, t->pk, &c.table,
				    err)) || (rc = ws_batch_site(&b, &s->site, &c.site)))
					goto out;
			}
			memset(mask, 0, sizeof(mask));
			c.nvals = 0;
			for (k = 0; k < t->npk; k++)
				sto_value_of(sqlite3_column_value(st, (int)t->pk[k]), &pk[k]);
			for (k = 0; k < t->ncols; k++)
				if ((t->allmask >> k) & 1) {
					ws_mask_set(mask, k);
					sto_value_of(sqlite3_column_value(st, (int)k), &vals[c.nvals]);
					bytes += vals[c.nvals++].n + 9;
				}
			c.op = WS_OP_INSERT;
			c.counter = 1;
			c.pk = pk;
			c.mask = mask;
			c.vals = vals;
			if ((rc = ws_batch_add_change(&b, &c, err)))
				goto out;
			if (++rows >= SNAP_ROWS || bytes >= SNAP_BYTES) {
				if ((rc = cb(&b, 0, clientData)))
					goto out;
				rows = bytes = 0;
			}
		}
		if (rc != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, rc, t->name, err);
			goto out;
		}
		rc = rows ? cb(&b, 0, clientData) : 0;
		sqlite3_finalize(st);
		st = NULL;
		if (rc)
			goto out;
	}
	rc = snapshot_conflicts(s, &gc, cb, clientData, err);
out:
	sqlite3_finalize(st);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	ws_batch_release(&b);
	ws_buf_release(&q);
	ws_vclock_release(&gc);
	return rc;
}

int ws_store_snapshot_begin(struct ws_store *s, const struct ws_vclock *stable,
    char *err)
{
	int rc;

	if ((rc = sto_exec(s->db, "CREATE TEMP TABLE IF NOT EXISTS wsync_snap(seq INTEGER "
	    "PRIMARY KEY, batch BLOB NOT NULL); DELETE FROM temp.wsync_snap", err)) ||
	    (rc = ws_vclock_copy(&s->snap, stable)))
		return rc;
	s->in_snap = 1;
	return 0;
}

int ws_store_snapshot_add(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *st;
	int rc;

	if (!s->in_snap)
		return ws_error(err, WS_EINVAL, "no full copy is being received");
	if ((rc = ws_batch_encode(b, &enc)) ||
	    (rc = stmt(s, "INSERT INTO temp.wsync_snap(batch) VALUES(?1)", &st, err)))
		goto out;
	sqlite3_bind_blob(st, 1, enc.p ? enc.p : (const uint8_t *)"", (int)enc.len,
	    SQLITE_STATIC);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "snapshot", err);
	sqlite3_reset(st);
out:
	ws_buf_release(&enc);
	return rc;
}

void ws_store_snapshot_abort(struct ws_store *s)
{
	if (s->in_snap)
		sqlite3_exec(s->db, "DELETE FROM temp.wsync_snap", NULL, NULL, NULL);
	s->in_snap = 0;
}

/*
 * The columns of a row whose version here is outside the horizon (the
 * batch context a->b->clock): local or other changes the copy's sender
 * may not have.  They are kept; every other cell takes the copy's value.
 * *gone is set when the row was deleted outside the horizon.
 */
static int snap_keep(struct apply *a, const struct tbl *t, const struct ws_value *pk,
    int64_t *keep, int *gone)
{
	struct history h;
	uint32_t i;
	int rc;

	*keep = 0;
	if ((rc = load_history(a, t, pk, &h)))
		return rc;
	for (i = 0; i < t->ncols; i++)
		if (((h.known >> i) & 1) && !seen(a, &h.cell[i]))
			*keep |= (int64_t)1 << i;
	*gone = h.unseen_delete;
	return 0;
}

/* One row of a full copy: write the cells that have no newer version here. */
static int snap_row(struct apply *a, const struct ws_change *c, sqlite3_stmt *key)
{
	const struct ws_value *val[MAX_TRACKED_COLS] = {0};
	struct ws_store *s = a->s;
	struct bmap *m;
	struct tbl *t;
	sqlite3_stmt *row;
	int64_t keep, put = 0, full;
	uint32_t i, k;
	int rc, gone, exists;

	if (c->op == WS_OP_DELETE)
		return ws_error(a->err, WS_ECORRUPT, "a full copy holds a delete");
	if ((rc = batch_map(a, c->table, &m)))
		return rc;
	t = m->t;
	for (i = 0, k = 0; i < a->b->tables[c->table].ncols; i++)
		if (ws_mask_test(c->mask, i)) {
			val[m->col[i]] = &c->vals[k++];
			put |= (int64_t)1 << m->col[i];
		}
	if ((rc = snap_keep(a, t, c->pk, &keep, &gone)) ||
	    (rc = sto_tstmt(s, t, TS_ROW, 0, &row, a->err)))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(row, (int)i + 1, &c->pk[i]);
	exists = sqlite3_step(row) == SQLITE_ROW;
	sqlite3_reset(row);
	full = put & t->allmask;
	put &= t->allmask & ~keep;
	if ((!exists && !gone) || (exists && put)) {
		/*
		 * The copy's rows were there first: a row of this site's own
		 * in the way of a UNIQUE index loses to one, as it does on the
		 * hub when it arrives there (see contest()).
		 */
		struct ver me = {a->origin, a->counter, a->lamport};

		a->lamport = UINT64_MAX;
		rc = write_row(a, t, c, exists ? TS_UPD : TS_INS, put, val);
		/* A new row whose own cells this site keeps may lack one that
		 * NOT NULL or a CHECK wants: the copy's whole row, then. */
		if (rc == CLASH && !exists && a->clash != KIND_UNIQUE && put != full)
			rc = write_row(a, t, c, TS_INS, full, val);
		a->origin = me.site;
		a->counter = me.counter;
		a->lamport = me.lamport;
		a->gone.len = 0; /* removals are not logged: the hub never had them */
		a->ngone = 0;
		/* Still in the way: its values are kept as conflicts, and the
		 * site goes on (never stalled by a full copy). */
		if (rc == CLASH)
			rc = lose_change(a, t, c, val);
		if (rc)
			return rc;
	}
	/* Remember the key: rows the copy lacks go at the end. */
	a->pk.len = 0;
	for (i = 0; i < t->npk; i++)
		if ((rc = ws_value_encode(&c->pk[i], &a->pk)))
			return rc;
	sqlite3_reset(key);
	sqlite3_bind_int64(key, 1, t->id);
	sqlite3_bind_blob(key, 2, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
	rc = sqlite3_step(key) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "snapshot", a->err);
	sqlite3_reset(key);
	return rc;
}

/*
 * Rows a full copy left without their parent, with foreign keys enforced
 * (checked at the end: a copy writes its tables in any order).  A row of
 * the copy whose parent this site deleted since gets what the delete's
 * action does on the hub when the delete arrives there (SET NULL: its
 * column emptied; otherwise it goes).  A row this site wrote itself whose
 * parent the copy lacks loses, as it will on the hub: its values are
 * kept as conflicts of kind fk, and it goes.  Not logged: every other
 * copy ends the same way by itself.
 */
static int snap_orphans(struct apply *a)
{
	struct ws_store *s = a->s;
	struct ws_buf q = WS_BUF_INIT, found = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *st = NULL, *row = NULL, *act = NULL;
	struct history h;
	struct tbl *t;
	int64_t rid, fkid, *e;
	size_t at;
	uint32_t i;
	int rc = 0, round, setnull;

	for (round = 0; rc == 0 && round < 16; round++) {
		found.len = 0;
		if ((rc = sto_prep(s->db, "SELECT t.id, c.rowid, c.fkid FROM "
		    "pragma_foreign_key_check AS c JOIN wsync_tables AS t ON t.name = "
		    "c.\"table\" WHERE c.rowid IS NOT NULL", &st, a->err)))
			break;
		while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
			int64_t three[3] = {sqlite3_column_int64(st, 0),
			    sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)};

			rc = ws_buf_append(&found, three, sizeof(three));
		}
		sqlite3_finalize(st);
		st = NULL;
		if (rc || found.len == 0)
			break;
		for (at = 0; rc == 0 && at < found.len; at += 3 * sizeof(int64_t)) {
			e = (int64_t *)(void *)(found.p + at);
			rid = e[1];
			fkid = e[2];
			if (!(t = sto_tbl_by_id(s, e[0])))
				continue;
			/* The row's key, and its history here. */
			q.len = 0;
			rc = put_select_key(&q, t);
			if (rc == 0) rc = ws_buf_printf(&q, " WHERE rowid = ?1");
			if (rc || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &row, a->err)))
				break;
			sqlite3_bind_int64(row, 1, rid);
			if (sqlite3_step(row) != SQLITE_ROW) {
				sqlite3_finalize(row);
				row = NULL;
				continue;
			}
			for (i = 0; i < t->npk; i++)
				sto_value_of(sqlite3_column_value(row, (int)i), &kv[i]);
			if ((rc = load_history(a, t, kv, &h)))
				break;
			for (i = 0; i < t->ncols && !h.cell[i].site; i++)
				;
			setnull = 0;
			if (i < t->ncols) {
				/* Written here since the copy's horizon: it loses. */
				a->pk.len = 0;
				if ((rc = key_blob(t, kv, &a->pk)) ||
				    (rc = lose_row(a, t, kv, &h, KIND_FK, t->allmask)))
					break;
			} else {
				if ((rc = sto_prep(s->db, "SELECT on_delete = 'SET NULL' FROM "
				    "pragma_foreign_key_list(?1) WHERE id = ?2", &act, a->err)))
					break;
				sqlite3_bind_text(act, 1, t->name, -1, SQLITE_STATIC);
				sqlite3_bind_int64(act, 2, fkid);
				setnull = sqlite3_step(act) == SQLITE_ROW && sqlite3_column_int(act, 0);
				sqlite3_finalize(act);
				act = NULL;
			}
			sqlite3_finalize(row);
			row = NULL;
			q.len = 0;
			if (setnull) {
				rc = ws_buf_printf(&q, "UPDATE ");
				if (rc == 0) rc = sto_qid(&q, t->name);
				if (rc == 0) rc = ws_buf_printf(&q, " SET (");
				if (rc == 0 && (rc = sto_prep(s->db, "SELECT \"from\" FROM "
				    "pragma_foreign_key_list(?1) WHERE id = ?2", &act, a->err)) == 0) {
					sqlite3_bind_text(act, 1, t->name, -1, SQLITE_STATIC);
					sqlite3_bind_int64(act, 2, fkid);
					for (i = 0; rc == 0 && sqlite3_step(act) == SQLITE_ROW; i++) {
						rc = ws_buf_printf(&q, i ? ", " : "");
						if (rc == 0) rc = sto_qid(&q, (const char *)
						    sqlite3_column_text(act, 0));
					}
					sqlite3_finalize(act);
					act = NULL;
					if (rc == 0) rc = ws_buf_printf(&q, ") = (SELECT NULL");
					while (rc == 0 && i-- > 1)
						rc = ws_buf_printf(&q, ", NULL");
					if (rc == 0) rc = ws_buf_printf(&q, ")");
				}
			} else {
				rc = ws_buf_printf(&q, "DELETE FROM ");
				if (rc == 0) rc = sto_qid(&q, t->name);
			}
			if (rc == 0) rc = ws_buf_printf(&q, " WHERE rowid = %lld", (long long)rid);
			if (rc == 0)
				rc = sto_cstr(&q) ? sto_exec(s->db, sto_cstr(&q), a->err) : WS_ENOMEM;
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(row);
	sqlite3_finalize(act);
	ws_buf_release(&q);
	ws_buf_release(&found);
	return rc;
}

/*
 * One conflict of a full copy (see snapshot_conflicts): listed here too,
 * unless the cell has a version newer than the horizon (it replaces the
 * conflict, here and where the copy came from once it arrives there) or
 * the conflict is listed already.
 */
static int snap_conflict(struct apply *a, const struct ws_change *c)
{
	const struct ws_table *rt = &a->b->tables[c->table];
	struct ws_store *s = a->s;
	struct bmap *m;
	struct tbl *t;
	struct ver v;
	sqlite3_stmt *st;
	int64_t keep, site;
	uint32_t i, col = UINT32_MAX;
	int rc, gone;

	if ((c->op != WS_OP_INSERT && c->op != WS_OP_UPDATE) || c->nvals != 1)
		return ws_error(a->err, WS_ECORRUPT, "a full copy holds a bad conflict");
	if ((rc = batch_map(a, c->table, &m)))
		return rc;
	t = m->t;
	for (i = 0; i < rt->ncols; i++)
		if (ws_mask_test(c->mask, i)) {
			col = m->col[i];
			break;
		}
	if (col == UINT32_MAX || !((t->allmask >> col) & 1))
		return ws_error(a->err, WS_ECORRUPT, "a full copy holds a bad conflict");
	if ((rc = snap_keep(a, t, c->pk, &keep, &gone)))
		return rc;
	if (gone || ((keep >> col) & 1))
		return 0;
	if ((rc = site_index(s, &a->b->sites[c->site], &site, a->err)))
		return rc;
	a->pk.len = 0;
	for (i = 0; i < t->npk; i++)
		if ((rc = ws_value_encode(&c->pk[i], &a->pk)))
			return rc;
	if ((rc = stmt(s, "SELECT 1 FROM wsync_conflicts WHERE tbl = ?1 AND pk = ?2 "
	    "AND col = ?3 AND site = ?4 AND counter = ?5", &st, a->err)))
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_blob(st, 2, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)col);
	sqlite3_bind_int64(st, 4, site);
	sqlite3_bind_int64(st, 5, (int64_t)c->counter);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return sto_sqlerr(s->db, rc, "conflicts", a->err);
	v.site = site;
	v.counter = c->counter;
	v.lamport = a->b->lamport;
	return add_conflict(a, t, (int)col, c->op == WS_OP_INSERT, &v, NULL, &c->vals[0]);
}

/*
 * Before a full copy is merged: forget the conflicts whose losing version
 * is within the horizon, on the cells that take the copy's value; the
 * copy lists those that still stand where it came from.
 */
static int snap_forget_conflicts(struct apply *a)
{
	struct ws_store *s = a->s;
	struct ws_value pk[MAX_TRACKED_COLS];
	sqlite3_stmt *st = NULL;
	int64_t *ids = NULL, *p, keep, site;
	size_t n = 0, i;
	const struct tbl *t;
	struct ws_rd r;
	uint32_t k;
	int rc, col, gone;

	if ((rc = sto_prep(s->db, "SELECT id, tbl, pk, col, site, counter FROM wsync_conflicts",
	    &st, a->err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		t = sto_tbl_by_id(s, sqlite3_column_int64(st, 1));
		col = sqlite3_column_int(st, 3);
		site = sqlite3_column_int64(st, 4);
		if (!t || col < 0 || col >= (int)t->ncols || site < 1 ||
		    (size_t)site >= s->nsites)
			continue;
		if (ws_vclock_get(&s->snap, &s->sites[site]) <
		    (uint64_t)sqlite3_column_int64(st, 5))
			continue; /* newer than the horizon: the batches tell */
		ws_rd_init(&r, sqlite3_column_blob(st, 2), (size_t)sqlite3_column_bytes(st, 2));
		for (k = 0; k < t->npk; k++)
			if (ws_value_decode(&r, &pk[k])) {
				rc = ws_error(a->err, WS_ECORRUPT, "wsync_conflicts is damaged");
				goto out;
			}
		if ((rc = snap_keep(a, t, pk, &keep, &gone)))
			goto out;
		if (gone || ((keep >> col) & 1))
			continue;
		if (!(p = realloc(ids, (n + 1) * sizeof(*ids)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		ids = p;
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "conflicts", a->err);
		goto out;
	}
	rc = 0;
	for (i = 0; rc == 0 && i < n; i++)
		rc = exec_int(s, "DELETE FROM wsync_conflicts WHERE id = ?1", ids[i], a->err);
out:
	sqlite3_finalize(st);
	free(ids);
	return rc;
}

/*
 * The rows of t the copy lacks: deleted where the sender is, unless they
 * hold cells newer than the horizon.  Those rows keep just those cells,
 * as the sender will once their change reaches it (it inserts the row
 * with them alone).
 */
static int snap_sweep(struct apply *a, struct tbl *t)
{
	struct ws_store *s = a->s;
	struct ws_value pk[MAX_TRACKED_COLS];
	const struct ws_value *val[MAX_TRACKED_COLS] = {0};
	struct ws_value kept[MAX_TRACKED_COLS];
	sqlite3_value *dup[MAX_TRACKED_COLS] = {0};
	struct ws_buf q = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *probe = NULL, *gone = NULL, *row, *w;
	struct ws_rd r;
	int64_t keep;
	uint32_t i;
	int rc, dead;

	/* First the keys the copy lacks, then the rows: never write while
	 * reading the same table. */
	if ((rc = put_select(&q, t, 0)) || !sto_cstr(&q) || (rc = sto_prep(s->db, sto_cstr(&q), &st, a->err)) ||
	    (rc = stmt(s, "SELECT 1 FROM temp.wsync_snap_keys WHERE tbl = ?1 AND "
	    "pk = ?2", &probe, a->err)) ||
	    (rc = stmt(s, "INSERT INTO temp.wsync_snap_gone(pk) VALUES(?1)", &gone,
	    a->err)) ||
	    (rc = sto_exec(s->db, "DELETE FROM temp.wsync_snap_gone", a->err)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = sto_pk_blob(st, 0, t->npk, &a->pk)))
			goto out;
		sqlite3_reset(probe);
		sqlite3_bind_int64(probe, 1, t->id);
		sqlite3_bind_blob(probe, 2, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
		if (sqlite3_step(probe) == SQLITE_ROW)
			continue;
		sqlite3_reset(gone);
		sqlite3_bind_blob(gone, 1, a->pk.p, (int)a->pk.len, SQLITE_STATIC);
		if (sqlite3_step(gone) != SQLITE_DONE)
			goto sqlfail;
	}
	sqlite3_reset(probe);
	sqlite3_reset(gone);
	if (rc != SQLITE_DONE)
		goto sqlfail;
	sqlite3_finalize(st);
	if ((rc = sto_prep(s->db, "SELECT pk FROM temp.wsync_snap_gone", &st, a->err)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		ws_rd_init(&r, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0));
		for (i = 0; i < t->npk; i++)
			if (ws_value_decode(&r, &pk[i])) {
				rc = ws_error(a->err, WS_ECORRUPT, "snapshot key");
				goto out;
			}
		if ((rc = snap_keep(a, t, pk, &keep, &dead)) ||
		    (rc = sto_tstmt(s, t, TS_ROW, 0, &row, a->err)))
			goto out;
		keep &= t->allmask;
		for (i = 0; i < t->npk; i++)
			sto_bind_value(row, (int)i + 1, &pk[i]);
		if (sqlite3_step(row) == SQLITE_ROW)
			for (i = 0; i < t->ncols; i++)
				if ((keep >> i) & 1) {
					if (!(dup[i] = sqlite3_value_dup(
					    sqlite3_column_value(row, (int)i)))) {
						sqlite3_reset(row);
						rc = WS_ENOMEM;
						goto out;
					}
					sto_value_of(dup[i], &kept[i]);
					val[i] = &kept[i];
				}
		sqlite3_reset(row);
		if ((rc = sto_tstmt(s, t, TS_DEL, 0, &w, a->err)))
			goto out;
		for (i = 0; i < t->npk; i++)
			sto_bind_value(w, (int)i + 1, &pk[i]);
		if ((rc = step_write(a, t, w)))
			goto out;
		if (keep && (rc = sto_tstmt(s, t, TS_INS, keep, &w, a->err)) == 0) {
			bind_write(w, t, TS_INS, keep, val, pk);
			rc = step_write(a, t, w);
		}
		for (i = 0; i < t->ncols; i++) {
			sqlite3_value_free(dup[i]);
			dup[i] = NULL;
			val[i] = NULL;
		}
		if (rc)
			goto out;
	}
	if (rc == SQLITE_DONE) {
		rc = 0;
		goto out;
	}
sqlfail:
	rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "snapshot", a->err);
out:
	for (i = 0; i < MAX_TRACKED_COLS; i++)
		sqlite3_value_free(dup[i]);
	sqlite3_finalize(st);
	ws_buf_release(&q);
	return rc;
}

int ws_store_snapshot_end(struct ws_store *s, char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_batch b;
	struct apply a;
	sqlite3_stmt *st = NULL, *key = NULL;
	uint64_t usn, dropped;
	size_t i;
	int64_t site;
	int rc, inited = 0;

	ws_batch_init(&b);
	if (!s->in_snap)
		return ws_error(err, WS_EINVAL, "no full copy is being received");
	/* Foreign keys as merges enforce them, checked at the end (orphans). */
	if ((rc = fk_policy(s, err)) || (rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)) ||
	    (rc = sto_exec(s->db, "PRAGMA defer_foreign_keys = ON", err)))
		goto done;
	/* Local writes not sealed yet are newer than the copy: keep them. */
	if ((rc = seal_locked(s, NULL, err)) || (rc = ws_store_usn(s, &usn, err)) ||
	    (rc = sto_exec(s->db, "CREATE TEMP TABLE IF NOT EXISTS wsync_snap_keys(tbl "
	    "INTEGER NOT NULL, pk BLOB NOT NULL, PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
	    "CREATE TEMP TABLE IF NOT EXISTS wsync_snap_gone(pk BLOB NOT NULL);"
	    "DELETE FROM temp.wsync_snap_keys", err)) ||
	    (rc = apply_init(&a, s, err)))
		goto out;
	inited = 1;
	a.first_usn = usn + 1;
	/* The copy's conflicts replace those of the history it covers. */
	if ((rc = ws_batch_set_clock(&b, &s->snap)))
		goto out;
	a.b = &b;
	if ((rc = snap_forget_conflicts(&a)))
		goto out;
	ws_batch_release(&b);
	if ((rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 1", err)) ||
	    (rc = sto_prep(s->db, "SELECT batch FROM temp.wsync_snap ORDER BY seq", &st, err)) ||
	    (rc = stmt(s, "INSERT OR IGNORE INTO temp.wsync_snap_keys VALUES(?1, ?2)",
	    &key, err)))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((rc = ws_batch_decode(&b, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), err)) ||
		    (rc = ws_batch_set_clock(&b, &s->snap)))
			goto out;
		free(a.map);
		if (!(a.map = calloc(b.ntables ? b.ntables : 1, sizeof(*a.map)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		a.b = &b;
		for (i = 0; rc == 0 && i < b.nchanges; i++)
			rc = b.has_lamport ? snap_conflict(&a, &b.changes[i]) :
			    snap_row(&a, &b.changes[i], key);
		if (rc)
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "snapshot", err);
		goto out;
	}
	/* The sweep judges rows against the horizon alone. */
	ws_batch_release(&b);
	if ((rc = ws_batch_set_clock(&b, &s->snap)))
		goto out;
	a.b = &b;
	for (i = 0; rc == 0 && i < s->nt; i++)
		rc = snap_sweep(&a, &s->t[i]);
	if (rc == 0)
		rc = snap_orphans(&a);
	/* Now every batch within the horizon counts as held here. */
	for (i = 0; rc == 0 && i < s->snap.n; i++)
		if ((rc = site_index(s, &s->snap.e[i].site, &site, err)) == 0 &&
		    (rc = ws_store_clock(s, &clock, err)) == 0 &&
		    ws_vclock_get(&clock, &s->snap.e[i].site) < s->snap.e[i].counter)
			rc = clock_set(s, site, s->snap.e[i].counter, err);
	if (rc == 0 && (rc = gc_locked(s, &s->snap, &dropped, err)) == 0 &&
	    (rc = ws_store_clock(s, &clock, err)) == 0 &&
	    (rc = drain(s, &clock, err)) == 0 &&
	    (rc = sto_fts_rebuild(s, usn + 1, err)) == 0 &&
	    (rc = sto_scan_rebuild(s, err)) == 0 &&
	    (rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 0", err)) == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (inited)
		apply_release(&a);
	sqlite3_finalize(st);
done:
	sqlite3_exec(s->db, "DELETE FROM temp.wsync_snap; DELETE FROM "
	    "temp.wsync_snap_gone", NULL, NULL, NULL);
	s->in_snap = 0;
	ws_batch_release(&b);
	ws_vclock_release(&clock);
	return rc;
}
