/* SPDX-License-Identifier: MIT */
/*
 * replicate-sql.c - what both sides of table replication do with SQLite:
 * errors as WS_E* codes, statements, values in the wire form, and the
 * replicated table's columns and key (struct rpl_cols), which the
 * publisher reads from its table and the replicator from the publisher's
 * ReplicateStartResult.
 */
#include <stdlib.h>
#include <string.h>

#include "replicate-int.h"
#include "wsync/json.h"

int rpl_sqlfail(sqlite3 *db, int src, const char *what, char *err)
{
	int rc = src == SQLITE_BUSY || src == SQLITE_LOCKED ? WS_EBUSY :
	    src == SQLITE_PERM || src == SQLITE_READONLY || src == SQLITE_AUTH ? WS_EPERM :
	    src == SQLITE_FULL ? WS_ENOSPC :
	    src == SQLITE_CORRUPT || src == SQLITE_NOTADB ? WS_ECORRUPT :
	    src == SQLITE_CONSTRAINT || src == SQLITE_MISMATCH ? WS_ESCHEMA : WS_EIO;

	return ws_error(err, rc, "%s: %s", what, db ? sqlite3_errmsg(db) :
	    sqlite3_errstr(src));
}

int rpl_db_open(const char *path, int flags, sqlite3 **db, char *err)
{
	int rc = sqlite3_open_v2(path, db, flags, NULL);

	if (rc != SQLITE_OK) {
		rc = rpl_sqlfail(*db, rc, "cannot open database", err);
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	sqlite3_busy_timeout(*db, WS_SQL_BUSY_MS);
	return 0;
}

int rpl_exec(sqlite3 *db, const char *sql, char *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : rpl_sqlfail(db, rc, "database", err);
}

int rpl_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : rpl_sqlfail(db, rc, "database", err);
}

int rpl_str_exec(sqlite3 *db, sqlite3_str *q, char *err)
{
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = rpl_exec(db, sql, err);
	sqlite3_free(sql);
	return rc;
}

int rpl_str_prep(sqlite3 *db, sqlite3_str *q, sqlite3_stmt **st, char *err)
{
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = rpl_prepare(db, sql, st, err);
	sqlite3_free(sql);
	return rc;
}

/* Result column i of st in the wire form (ws_json_from_value). */
json_t *rpl_col_json(sqlite3_stmt *st, int i)
{
	struct ws_value v;

	sto_value_of(sqlite3_column_value(st, i), &v);
	return ws_json_from_value(&v);
}

/*
 * Bind v to parameter i, a copy of its bytes (SQLITE_TRANSIENT: tmp,
 * which holds them, is reused for the next parameter), its length 64-bit.
 * Not sto_bind_value(), which binds in place for the store's own
 * statements.
 */
static int bind_value(sqlite3_stmt *st, int i, const struct ws_value *v)
{
	switch (v->type) {
	case WS_INTEGER: return sqlite3_bind_int64(st, i, v->i);
	case WS_REAL: return sqlite3_bind_double(st, i, v->r);
	case WS_TEXT: return sqlite3_bind_text64(st, i, (const char *)v->p, v->n,
	    SQLITE_TRANSIENT, SQLITE_UTF8);
	case WS_BLOB: return sqlite3_bind_blob64(st, i, v->p, v->n, SQLITE_TRANSIENT);
	default: return sqlite3_bind_null(st, i);
	}
}

/* Bind the JSON value j (the wire form of a value) to parameter i. */
int rpl_bind_json(sqlite3_stmt *st, int i, const json_t *j, struct ws_buf *tmp,
    const char *name, char *err)
{
	struct ws_value v;
	char why[WS_ERRLEN];
	int rc;

	tmp->len = 0;
	if ((rc = ws_json_to_value(j, tmp, &v, why)))
		return ws_error(err, rc, "bad value of column '%s': %s", name, why);
	return bind_value(st, i, &v) == SQLITE_OK ? 0 : WS_ENOMEM;
}


int rpl_table_info(sqlite3 *db, const char *table, sqlite3_stmt **st, char *err)
{
	sqlite3_str *q = sqlite3_str_new(db);

	sqlite3_str_appendf(q, "PRAGMA table_info(\"%w\")", table);
	return rpl_str_prep(db, q, st, err);
}

/* --- the replicated table's columns ------------------------------------------ */

void rpl_cols_release(struct rpl_cols *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++) {
		free(cs->v[i].name);
		free(cs->v[i].remote);
		free(cs->v[i].type);
	}
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
}

void rpl_cols_order_keys(struct rpl_cols *cs)
{
	size_t i;
	int pos;

	cs->nkey = 0;
	for (pos = 1; pos < RPL_MAX_KEY; pos++)
		for (i = 0; i < cs->n; i++)
			if (cs->v[i].key == pos)
				cs->keys[cs->nkey++] = i;
}

int rpl_cols_bind_key(const struct rpl_cols *cs, sqlite3_stmt *st, int from,
    const json_t *k, struct ws_buf *tmp, int sender, char *err)
{
	/* From a replicator, a bad key refuses its request; from the
	 * publisher, it is a corrupt stream. */
	int pub = sender == RPL_KEY_FROM_PUBLISHER, bad = pub ? WS_ECORRUPT : WS_EJSON;
	size_t i;
	int rc;

	if (!json_is_object(k))
		return ws_error(err, bad, pub ? "a message without its key" :
		    "\"key\" must be an object");
	for (i = 0; i < cs->nkey; i++) {
		const struct rpl_col *c = &cs->v[cs->keys[i]];
		const json_t *v = json_object_get(k, c->remote);

		if (!v)
			return ws_error(err, bad, pub ? "a message without key column "
			    "'%s'" : "the key lacks column '%s'", c->remote);
		if ((rc = rpl_bind_json(st, from + (int)i, v, tmp, c->remote, err)))
			return rc == WS_EJSON ? bad : rc;
	}
	return 0;
}

void rpl_cols_put_where(const struct rpl_cols *cs, sqlite3_str *q, int from)
{
	size_t i;

	for (i = 0; i < cs->nkey; i++)
		sqlite3_str_appendf(q, "%s\"%w\" = ?%d", i ? " AND " : " WHERE ",
		    cs->v[cs->keys[i]].name, from + (int)i);
}
