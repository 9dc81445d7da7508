/* SPDX-License-Identifier: MIT */
/*
 * sql.c - the SQLite helpers of the store and of table replication
 * (sql.h): result codes as WS_E* codes with text, prepare and exec,
 * identifiers quoted by SQLite's own %w, and values bound and read.
 */
#include <errno.h>
#include <string.h>

#include "sql.h"
#include "wsync/error.h"

/* The database file's base name for messages (a hub sends them to its peer). */
static const char *db_name(sqlite3 *db, const char *fallback)
{
	const char *f = sqlite3_db_filename(db, "main"), *b;

	if (!f || !*f)
		return fallback;
	b = strrchr(f, '/');
	return b ? b + 1 : f;
}

int sto_sqlerr(sqlite3 *db, int src, const char *what, char *err)
{
	int rc;

	switch (src & 0xff) {
	case SQLITE_BUSY: case SQLITE_LOCKED: rc = WS_EBUSY; break;
	case SQLITE_FULL: rc = WS_ENOSPC; break;
	case SQLITE_PERM: case SQLITE_READONLY: case SQLITE_AUTH: rc = WS_EPERM; break;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: rc = WS_ECORRUPT; break;
	case SQLITE_NOMEM: rc = WS_ENOMEM; break;
	case SQLITE_CONSTRAINT: case SQLITE_MISMATCH: rc = WS_ESCHEMA; break;
	case SQLITE_CANTOPEN: rc = errno == EACCES ? WS_EPERM : WS_EIO; break;
	default: rc = WS_EIO; break;
	}
	/*
	 * A write that failed: say why (disk full, file too large).  SQLite
	 * keeps no errno for a short write, which is how a file-size limit
	 * shows, so errno is taken when it tells of exactly those.
	 */
	if ((src & 0xff) == SQLITE_IOERR || (src & 0xff) == SQLITE_FULL) {
		int e = db ? sqlite3_system_errno(db) : 0;
		char buf[64];

		if (!e && (errno == ENOSPC || errno == EFBIG || errno == EDQUOT))
			e = errno;
		if (e == ENOSPC || e == EFBIG || e == EDQUOT)
			rc = WS_ENOSPC;
		if (e && db)
			return ws_error(err, rc, "cannot write '%s': %s (%s)",
			    db_name(db, what), sqlite3_errmsg(db),
			    ws_errno_text(e, buf));
	}
	if (rc == WS_EBUSY && db)
		return ws_error(err, rc, "'%s' is locked by another writer",
		    db_name(db, what));
	/* Which file, when the file is the trouble. */
	if (rc == WS_EPERM && db && sqlite3_db_filename(db, "main") &&
	    *sqlite3_db_filename(db, "main"))
		return ws_error(err, rc, "cannot write '%s': %s", db_name(db, what),
		    sqlite3_errmsg(db));
	return ws_error(err, rc, "%s: %s", what, db ?
	    sqlite3_errmsg(db) : sqlite3_errstr(src));
}

int sto_exec(sqlite3 *db, const char *sql, char *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sto_sqlerr(db, rc, "sqlite", err);
}

int sto_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : sto_sqlerr(db, rc, "sqlite", err);
}

int sto_str_finish(sqlite3_str *q, char **sql, char *err)
{
	int rc = sqlite3_str_errcode(q);

	*sql = sqlite3_str_finish(q);
	if (rc == SQLITE_OK && *sql)
		return 0;
	sqlite3_free(*sql);
	*sql = NULL;
	return ws_error(err, WS_ENOMEM, "building SQL: %s", rc == SQLITE_TOOBIG ?
	    "text too long" : "out of memory");
}

int sto_str_exec(sqlite3 *db, sqlite3_str *q, char *err)
{
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = sto_exec(db, sql, err);
	sqlite3_free(sql);
	return rc;
}

int sto_str_prep(sqlite3 *db, sqlite3_str *q, sqlite3_stmt **st, char *err)
{
	char *sql;
	int rc;

	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = sto_prep(db, sql, st, err);
	sqlite3_free(sql);
	return rc;
}

void sto_value_of(sqlite3_value *x, struct ws_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (sqlite3_value_type(x)) {
	case SQLITE_INTEGER:
		v->type = WS_INTEGER;
		v->i = sqlite3_value_int64(x);
		break;
	case SQLITE_FLOAT:
		v->type = WS_REAL;
		v->r = sqlite3_value_double(x);
		break;
	case SQLITE_TEXT:
		v->type = WS_TEXT;
		v->p = sqlite3_value_text(x);
		v->n = (size_t)sqlite3_value_bytes(x);
		break;
	case SQLITE_BLOB:
		v->type = WS_BLOB;
		v->p = sqlite3_value_blob(x);
		v->n = (size_t)sqlite3_value_bytes(x);
		break;
	default:
		v->type = WS_NULL;
		break;
	}
}

int sto_bind_value(sqlite3_stmt *st, int i, const struct ws_value *v)
{
	switch (v->type) {
	case WS_INTEGER: return sqlite3_bind_int64(st, i, v->i);
	case WS_REAL: return sqlite3_bind_double(st, i, v->r);
	case WS_TEXT: return sqlite3_bind_text(st, i, (const char *)(v->p ? v->p :
	    (const uint8_t *)""), (int)v->n, SQLITE_STATIC);
	case WS_BLOB: return sqlite3_bind_blob(st, i, v->p ? v->p :
	    (const uint8_t *)"", (int)v->n, SQLITE_STATIC);
	default: return sqlite3_bind_null(st, i);
	}
}
