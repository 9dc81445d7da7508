/* SPDX-License-Identifier: MIT */
/*
 * store-conflicts.c - the losing concurrent versions in wsync_conflicts:
 * listing them (ws_store_conflicts()) and resolving one to the kept or
 * the chosen value (ws_store_resolve()), which is a local write that is
 * logged and sealed like any, so that the resolution replicates.
 */
#include <inttypes.h>
#include <string.h>

#include "store-int.h"

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
	sqlite3_str *q = sqlite3_str_new(s->db);
	sqlite3_stmt *st;
	uint32_t i;
	int rc;

	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask, ");
	sto_str_ks(q, t->npk, "");
	sqlite3_str_appendall(q, ") VALUES(?1, ?2, ?3");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, ", ?%u", i + 4);
	sqlite3_str_appendall(q, ")");
	if ((rc = sto_str_stmt(s, q, &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_int(st, 2, op);
	sqlite3_bind_int64(st, 3, mask);
	for (i = 0; i < t->npk; i++)
		sto_bind_value(st, (int)i + 4, &pk[i]);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "log", err);
	sqlite3_reset(st);
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
	sqlite3_str *q;
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
		q = sqlite3_str_new(s->db);
		sqlite3_str_appendf(q, "INSERT INTO \"%w\"(", t->name);
		for (i = 0; i < t->npk; i++)
			sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "", t->cols[t->pk[i]]);
		while (sqlite3_step(lost) == SQLITE_ROW) {
			int lc = sqlite3_column_int(lost, 0);

			if (lc < 0 || lc >= (int)t->ncols || ((mask >> lc) & 1))
				continue;
			mask |= (int64_t)1 << lc;
			sqlite3_str_appendf(q, ", \"%w\"", t->cols[lc]);
			n++;
		}
		sqlite3_str_appendall(q, ") VALUES(");
		for (i = 0; i < t->npk + (uint32_t)n; i++)
			sqlite3_str_appendall(q, i ? ", ?" : "?");
		sqlite3_str_appendall(q, ")");
		if ((rc = sto_str_prep(s->db, q, &w, err)))
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
			q = sqlite3_str_new(s->db);
			sqlite3_str_appendf(q, "UPDATE \"%w\" SET \"%w\" = ?%u", t->name,
			    t->cols[col], t->npk + 1);
			sto_str_pk_where(q, t, 1);
			if ((rc = sto_str_prep(s->db, q, &w, err)))
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
	return rc;
}

int ws_store_resolve(struct ws_store *s, int64_t id, int keep, char *err)
{
	sqlite3_stmt *cf = NULL;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = sto_seal_locked(s, NULL, err)) ||
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
	if ((rc = sto_seal_locked(s, NULL, err)) == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
	sqlite3_finalize(cf);
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
