/* SPDX-License-Identifier: MIT */
/*
 * store-open.c - opening a store (ws_store_open()): the metadata tables
 * made or checked, this site's id and number, the tracked tables' records
 * loaded, and capture triggers of an old format made anew.  It sits above
 * store.c (the core) and store-track.c, which call nothing here.
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
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store-int.h"

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
