/* SPDX-License-Identifier: MIT */
/*
 * store.c - a working set in SQLite, the core every other file of the
 * store builds on: closing a store, meta values, site numbers, the
 * tracked tables' records, the vector clock, usns, and the
 * prepared-statement caches (by SQL, and per tracked table:
 * sto_tstmt()).  It calls none of the others.
 *
 * The store's other files, behind store-int.h:
 *   store-open.c       opening a store: the metadata tables (their schema,
 *                      and the one list of every wsync_* table)
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
