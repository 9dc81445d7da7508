/* SPDX-License-Identifier: MIT */
/*
 * store-snap.c - full copies.  Sending: ws_store_snapshot() hands every
 * tracked row out as batches of at most SNAP_ROWS rows (and about
 * SNAP_BYTES), with the conflicts and the horizon they stand at.
 * Receiving: ws_store_snapshot_begin(), _add() for each batch, then
 * _end() or _abort().  Each row is taken in through the merge's own
 * steps (store-merge.c), keeping the cells whose versions lie outside the
 * copy's horizon (local changes its sender may not have); at the end the
 * rows the copy did not name are swept, the versions outside the horizon
 * that lost here to versions within it brought back (they won where the
 * copy came from), orphans of its foreign keys removed, and the conflicts
 * it settled forgotten.
 */
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

#define SNAP_ROWS 1000          /* rows a snapshot batch holds at most */
#define SNAP_BYTES (1u << 20)   /* and about this many bytes of values */

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
	if ((rc = sto_stable_get(s, &gc, err)))
		goto out;
	for (i = 0; i < s->nt; i++) {
		struct tbl *t = &s->t[i];
		sqlite3_str *q = sqlite3_str_new(s->db);

		sto_str_select(q, t, 1);
		if ((rc = sto_str_prep(s->db, q, &st, err)))
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
	    (rc = sto_stmt(s, "INSERT INTO temp.wsync_snap(batch) VALUES(?1)", &st, err)))
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
	if ((rc = sto_load_history(a, t, pk, &h)))
		return rc;
	for (i = 0; i < t->ncols; i++)
		if (((h.known >> i) & 1) && !sto_seen(a, &h.cell[i]))
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
	if ((rc = sto_batch_map(a, c->table, &m)))
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
		rc = sto_write_row(a, t, c, exists ? TS_UPD : TS_INS, put, val);
		/* A new row whose own cells this site keeps may lack one that
		 * NOT NULL or a CHECK wants: the copy's whole row, then. */
		if (rc == CLASH && !exists && a->clash != KIND_UNIQUE && put != full)
			rc = sto_write_row(a, t, c, TS_INS, full, val);
		a->origin = me.site;
		a->counter = me.counter;
		a->lamport = me.lamport;
		a->gone.len = 0; /* removals are not logged: the hub never had them */
		a->ngone = 0;
		/* Still in the way: its values are kept as conflicts, and the
		 * site goes on (never stalled by a full copy). */
		if (rc == CLASH)
			rc = sto_lose_change(a, t, c, val);
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
	struct ws_buf found = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *st = NULL, *row = NULL, *act = NULL;
	struct history h;
	sqlite3_str *q;
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
			q = sqlite3_str_new(s->db);
			sto_str_select(q, t, 0);
			sqlite3_str_appendall(q, " WHERE rowid = ?1");
			if ((rc = sto_str_prep(s->db, q, &row, a->err)))
				break;
			sqlite3_bind_int64(row, 1, rid);
			if (sqlite3_step(row) != SQLITE_ROW) {
				sqlite3_finalize(row);
				row = NULL;
				continue;
			}
			for (i = 0; i < t->npk; i++)
				sto_value_of(sqlite3_column_value(row, (int)i), &kv[i]);
			if ((rc = sto_load_history(a, t, kv, &h)))
				break;
			for (i = 0; i < t->ncols && !h.cell[i].site; i++)
				;
			setnull = 0;
			if (i < t->ncols) {
				/* Written here since the copy's horizon: it loses. */
				a->pk.len = 0;
				if ((rc = sto_key_blob(t, kv, &a->pk)) ||
				    (rc = sto_lose_row(a, t, kv, &h, KIND_FK, t->allmask)))
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
			if (setnull && (rc = sto_prep(s->db, "SELECT \"from\" FROM "
			    "pragma_foreign_key_list(?1) WHERE id = ?2", &act, a->err)))
				break;
			q = sqlite3_str_new(s->db);
			if (setnull) {
				sqlite3_str_appendf(q, "UPDATE \"%w\" SET (", t->name);
				sqlite3_bind_text(act, 1, t->name, -1, SQLITE_STATIC);
				sqlite3_bind_int64(act, 2, fkid);
				for (i = 0; sqlite3_step(act) == SQLITE_ROW; i++)
					sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "",
					    (const char *)sqlite3_column_text(act, 0));
				sqlite3_finalize(act);
				act = NULL;
				sqlite3_str_appendall(q, ") = (SELECT NULL");
				while (i-- > 1)
					sqlite3_str_appendall(q, ", NULL");
				sqlite3_str_appendall(q, ")");
			} else {
				sqlite3_str_appendf(q, "DELETE FROM \"%w\"", t->name);
			}
			sqlite3_str_appendf(q, " WHERE rowid = %lld", (long long)rid);
			rc = sto_str_exec(s->db, q, a->err);
		}
	}
	sqlite3_finalize(st);
	sqlite3_finalize(row);
	sqlite3_finalize(act);
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
	if ((rc = sto_batch_map(a, c->table, &m)))
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
	if ((rc = sto_site_index(s, &a->b->sites[c->site], &site, a->err)))
		return rc;
	a->pk.len = 0;
	for (i = 0; i < t->npk; i++)
		if ((rc = ws_value_encode(&c->pk[i], &a->pk)))
			return rc;
	if ((rc = sto_stmt(s, "SELECT 1 FROM wsync_conflicts WHERE tbl = ?1 AND pk = ?2 "
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
	return sto_add_conflict(a, t, (int)col, c->op == WS_OP_INSERT, &v, NULL, &c->vals[0]);
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
		rc = sto_exec_int(s, "DELETE FROM wsync_conflicts WHERE id = ?1", ids[i], a->err);
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
	sqlite3_str *q = sqlite3_str_new(s->db);
	sqlite3_stmt *st = NULL, *probe = NULL, *gone = NULL, *row, *w;
	struct ws_rd r;
	int64_t keep;
	uint32_t i;
	int rc, dead;

	/* First the keys the copy lacks, then the rows: never write while
	 * reading the same table. */
	sto_str_select(q, t, 0);
	if ((rc = sto_str_prep(s->db, q, &st, a->err)) ||
	    (rc = sto_stmt(s, "SELECT 1 FROM temp.wsync_snap_keys WHERE tbl = ?1 AND "
	    "pk = ?2", &probe, a->err)) ||
	    (rc = sto_stmt(s, "INSERT INTO temp.wsync_snap_gone(pk) VALUES(?1)", &gone,
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
		if ((rc = sto_step_write(a, t, w)))
			goto out;
		if (keep && (rc = sto_tstmt(s, t, TS_INS, keep, &w, a->err)) == 0) {
			sto_bind_write(w, t, TS_INS, keep, val, pk);
			rc = sto_step_write(a, t, w);
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
	return rc;
}

/*
 * --- versions outside the horizon that lost here ---------------------
 *
 * Where the copy comes from, every version outside its horizon has won
 * over the versions within it: this site's own batches the sender lacks
 * reach it after it collected the horizon (a collected version counts as
 * seen by all), and any other batch it holds outside the horizon has seen
 * the horizon (the hub collects no further, ws_store_gc_bound()).  Here
 * such a version may have lost to one within the horizon, merged before
 * the copy (this site's writes, made while away, to a concurrent write
 * or delete that the sender has collected since).  snap_keep() keeps only
 * the cells whose winning version is outside the horizon, so those
 * versions would stay conflicts here while they are the values there,
 * for good once the horizon moves past them.  snap_revive() brings them
 * back as the sender has them: the strongest such version of each cell
 * (kinds value and delete) becomes its value again, and its log entry
 * sets the cell, so that later merges weigh it as the sender does.
 */

/* A conflict whose version is outside the horizon (snap_revive()). */
struct lost {
	int64_t id, tbl;
	int col;
	struct ver v;
	size_t at, n; /* its key blob, in the keys buffer */
};

/*
 * Let the log say that version v sets cell col of t's row pk again: the
 * newest entry of v's batch for the row that set or lost col sets it (no
 * longer lost, to a delete or otherwise).  Nothing when the batch's
 * entries are gone.
 */
static int snap_relog(struct apply *a, const struct tbl *t, const struct ws_value *pk,
    const struct ver *v, int col)
{
	struct ws_store *s = a->s;
	sqlite3_stmt *rg, *up;
	sqlite3_str *q;
	int64_t first, last;
	uint32_t i;
	int rc;

	if ((rc = sto_stmt(s, "SELECT first_usn, last_usn FROM wsync_batches WHERE "
	    "site = ?1 AND counter = ?2", &rg, a->err)))
		return rc;
	sqlite3_bind_int64(rg, 1, v->site);
	sqlite3_bind_int64(rg, 2, (int64_t)v->counter);
	rc = sqlite3_step(rg);
	first = sqlite3_column_int64(rg, 0);
	last = sqlite3_column_int64(rg, 1);
	sqlite3_reset(rg);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "batches", a->err);
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "UPDATE wsync_log SET op = op & ~?1, mask = mask | ?2, "
	    "lost = lost & ~?2 WHERE usn = (SELECT max(usn) FROM wsync_log WHERE tbl = ?3 "
	    "AND usn BETWEEN ?4 AND ?5 AND (mask | lost) & ?2");
	for (i = 0; i < s->nk; i++)
		sqlite3_str_appendf(q, " AND k%u IS ?%u", i + 1, i + 6);
	sqlite3_str_appendall(q, ")");
	if ((rc = sto_str_stmt(s, q, &up, a->err)))
		return rc;
	sqlite3_bind_int(up, 1, OP_LOSTDEL);
	sqlite3_bind_int64(up, 2, (int64_t)1 << col);
	sqlite3_bind_int64(up, 3, t->id);
	sqlite3_bind_int64(up, 4, first);
	sqlite3_bind_int64(up, 5, last);
	for (i = 0; i < s->nk; i++)
		if (i < t->npk)
			sto_bind_value(up, (int)i + 6, &pk[i]);
		else
			sqlite3_bind_null(up, (int)i + 6);
	rc = sqlite3_step(up);
	sqlite3_reset(up);
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "log", a->err);
}

/*
 * One row's conflicts outside the horizon, l[0..n) (one table and key,
 * whose blob is key): each cell whose winning version here is within the
 * horizon (or gone with a delete within it) takes the strongest of them,
 * which is no conflict any more, nor are those within the horizon that
 * it has seen.  Nothing when a delete outside the horizon ended the row
 * (it wins over them there too), or when a constraint refuses the row.
 */
static int snap_revive_row(struct apply *a, const struct lost *l, size_t n,
    const uint8_t *key)
{
	struct ws_store *s = a->s;
	const struct ws_value *val[MAX_TRACKED_COLS] = {0};
	struct ws_value pk[MAX_TRACKED_COLS], kept[MAX_TRACKED_COLS];
	sqlite3_value *dup[MAX_TRACKED_COLS] = {0};
	struct ws_buf ids = WS_BUF_INIT;
	size_t best[MAX_TRACKED_COLS] = {0}, i;
	sqlite3_stmt *st, *w;
	struct history h;
	struct tbl *t;
	struct ws_rd r;
	int64_t mask = 0, id;
	uint32_t k;
	int rc = 0, col, exists;

	if (!(t = sto_tbl_by_id(s, l[0].tbl)))
		return 0;
	ws_rd_init(&r, key, l[0].n);
	for (k = 0; k < t->npk; k++)
		if (ws_value_decode(&r, &pk[k]))
			return ws_error(a->err, WS_ECORRUPT, "wsync_conflicts is damaged");
	for (i = 0; i < n; i++) {
		col = l[i].col;
		if (col < 0 || col >= (int)t->ncols || !((t->allmask >> col) & 1))
			continue;
		if (!((mask >> col) & 1) || sto_wins(s, &l[i].v, &l[best[col]].v))
			best[col] = i;
		mask |= (int64_t)1 << col;
	}
	if (!mask || (rc = sto_load_history(a, t, pk, &h)))
		return rc;
	if (h.unseen_delete)
		return 0;
	for (k = 0; k < t->ncols; k++)
		if (((mask >> k) & 1) && ((h.known >> k) & 1) && !sto_seen(a, &h.cell[k]))
			mask &= ~((int64_t)1 << k); /* its winner is outside too */
	if (!mask)
		return 0;
	/* The values, then the row with them. */
	if ((rc = sto_stmt(s, "SELECT value FROM wsync_conflicts WHERE id = ?1", &st,
	    a->err)))
		return rc;
	for (k = 0; rc == 0 && k < t->ncols; k++) {
		if (!((mask >> k) & 1))
			continue;
		sqlite3_bind_int64(st, 1, l[best[k]].id);
		if (sqlite3_step(st) != SQLITE_ROW)
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", a->err);
		else if (!(dup[k] = sqlite3_value_dup(sqlite3_column_value(st, 0))))
			rc = WS_ENOMEM;
		sqlite3_reset(st);
		if (rc == 0) {
			sto_value_of(dup[k], &kept[k]);
			val[k] = &kept[k];
		}
	}
	if (rc || (rc = sto_tstmt(s, t, TS_ROW, 0, &st, a->err)))
		goto out;
	for (k = 0; k < t->npk; k++)
		sto_bind_value(st, (int)k + 1, &pk[k]);
	exists = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	if ((rc = sto_tstmt(s, t, exists ? TS_UPD : TS_INS, mask, &w, a->err)))
		goto out;
	sto_bind_write(w, t, exists ? TS_UPD : TS_INS, mask, val, pk);
	if ((rc = sto_step_write(a, t, w)) == CLASH) {
		rc = 0; /* left as it was: still conflicts */
		goto out;
	}
	for (k = 0; rc == 0 && k < t->ncols; k++)
		if ((mask >> k) & 1)
			rc = snap_relog(a, t, pk, &l[best[k]].v, (int)k);
	if (rc)
		goto out;
	/* The conflicts it replaces: itself, and those within the horizon. */
	sqlite3_reset(a->conf);
	sqlite3_bind_int64(a->conf, 1, t->id);
	sqlite3_bind_blob(a->conf, 2, key, (int)l[0].n, SQLITE_STATIC);
	while (rc == 0 && sqlite3_step(a->conf) == SQLITE_ROW) {
		struct ver cv = {sqlite3_column_int64(a->conf, 2),
		    (uint64_t)sqlite3_column_int64(a->conf, 3), 0};

		col = sqlite3_column_int(a->conf, 1);
		id = sqlite3_column_int64(a->conf, 0);
		if (col < 0 || col >= (int)t->ncols || !((mask >> col) & 1) ||
		    cv.site < 1 || (size_t)cv.site >= s->nsites)
			continue;
		if (id == l[best[col]].id || sto_seen(a, &cv))
			rc = ws_buf_append(&ids, &id, sizeof(id));
	}
	sqlite3_reset(a->conf);
	for (i = 0; rc == 0 && i < ids.len; i += sizeof(id)) {
		memcpy(&id, ids.p + i, sizeof(id));
		rc = sto_exec_int(s, "DELETE FROM wsync_conflicts WHERE id = ?1", id, a->err);
	}
out:
	for (k = 0; k < MAX_TRACKED_COLS; k++)
		sqlite3_value_free(dup[k]);
	ws_buf_release(&ids);
	return rc;
}

/*
 * Bring back the versions outside the horizon that lost here to versions
 * within it (see above), row by row.  a->b's clock is the horizon.
 */
static int snap_revive(struct apply *a)
{
	struct ws_store *s = a->s;
	struct ws_buf keys = WS_BUF_INIT;
	struct lost *l = NULL, *p;
	sqlite3_stmt *st = NULL;
	size_t n = 0, i, j;
	int rc;

	if ((rc = sto_prep(s->db, "SELECT id, tbl, pk, col, site, counter, lamport FROM "
	    "wsync_conflicts WHERE lostdel IN (0, 1) ORDER BY tbl, pk", &st, a->err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct ver v = {sqlite3_column_int64(st, 4),
		    (uint64_t)sqlite3_column_int64(st, 5),
		    (uint64_t)sqlite3_column_int64(st, 6)};

		if (v.site < 1 || (size_t)v.site >= s->nsites || sto_seen(a, &v))
			continue;
		if (!(p = realloc(l, (n + 1) * sizeof(*l)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		l = p;
		l[n].id = sqlite3_column_int64(st, 0);
		l[n].tbl = sqlite3_column_int64(st, 1);
		l[n].col = sqlite3_column_int(st, 3);
		l[n].v = v;
		l[n].at = keys.len;
		l[n].n = (size_t)sqlite3_column_bytes(st, 2);
		if (l[n].n && (rc = ws_buf_append(&keys, sqlite3_column_blob(st, 2), l[n].n)))
			goto out;
		n++;
	}
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "conflicts", a->err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	rc = 0;
	for (i = 0; rc == 0 && i < n; i = j) {
		for (j = i + 1; j < n && l[j].tbl == l[i].tbl && l[j].n == l[i].n &&
		    memcmp(keys.p + l[j].at, keys.p + l[i].at, l[i].n) == 0; j++)
			;
		rc = snap_revive_row(a, l + i, j - i, keys.p + l[i].at);
	}
out:
	sqlite3_finalize(st);
	free(l);
	ws_buf_release(&keys);
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
	if ((rc = sto_fk_policy(s, err)) || (rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)) ||
	    (rc = sto_exec(s->db, "PRAGMA defer_foreign_keys = ON", err)))
		goto done;
	/* Local writes not sealed yet are newer than the copy: keep them. */
	if ((rc = sto_seal_locked(s, NULL, err)) || (rc = ws_store_usn(s, &usn, err)) ||
	    (rc = sto_exec(s->db, "CREATE TEMP TABLE IF NOT EXISTS wsync_snap_keys(tbl "
	    "INTEGER NOT NULL, pk BLOB NOT NULL, PRIMARY KEY(tbl, pk)) WITHOUT ROWID;"
	    "CREATE TEMP TABLE IF NOT EXISTS wsync_snap_gone(pk BLOB NOT NULL);"
	    "DELETE FROM temp.wsync_snap_keys", err)) ||
	    (rc = sto_apply_init(&a, s, err)))
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
	    (rc = sto_stmt(s, "INSERT OR IGNORE INTO temp.wsync_snap_keys VALUES(?1, ?2)",
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
		rc = snap_revive(&a);
	if (rc == 0)
		rc = snap_orphans(&a);
	/* Now every batch within the horizon counts as held here. */
	for (i = 0; rc == 0 && i < s->snap.n; i++)
		if ((rc = sto_site_index(s, &s->snap.e[i].site, &site, err)) == 0 &&
		    (rc = ws_store_clock(s, &clock, err)) == 0 &&
		    ws_vclock_get(&clock, &s->snap.e[i].site) < s->snap.e[i].counter)
			rc = sto_clock_set(s, site, s->snap.e[i].counter, err);
	if (rc == 0 && (rc = sto_gc_locked(s, &s->snap, &dropped, err)) == 0 &&
	    (rc = ws_store_clock(s, &clock, err)) == 0 &&
	    (rc = sto_drain(s, &clock, err)) == 0 &&
	    (rc = sto_fts_rebuild(s, usn + 1, err)) == 0 &&
	    (rc = sto_scan_rebuild(s, err)) == 0 &&
	    (rc = sto_exec(s->db, "UPDATE wsync_state SET applying = 0", err)) == 0)
		rc = sto_exec(s->db, "COMMIT", err);
out:
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	if (inited)
		sto_apply_release(&a);
	sqlite3_finalize(st);
done:
	sqlite3_exec(s->db, "DELETE FROM temp.wsync_snap; DELETE FROM "
	    "temp.wsync_snap_gone", NULL, NULL, NULL);
	s->in_snap = 0;
	ws_batch_release(&b);
	ws_vclock_release(&clock);
	return rc;
}
