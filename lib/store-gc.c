/* SPDX-License-Identifier: MIT */
/*
 * store-gc.c - garbage collection: dropping the log entries and batch
 * records within a clock every site has reached (ws_store_gc()), the
 * collected horizon kept in wsync_meta ("gc", read by ws_store_stable()),
 * and the bound of what may be collected (ws_store_gc_bound()).
 */
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

/* The collected horizon (meta "gc") into *out, replacing it. */
int sto_stable_get(struct ws_store *s, struct ws_vclock *out, char *err)
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
	return sto_stable_get(s, out, err);
}

/* ws_store_gc inside an open write transaction, after a seal. */
int sto_gc_locked(struct ws_store *s, const struct ws_vclock *stable,
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
	if (maxusn && (rc = sto_exec_int(s, "INSERT OR IGNORE INTO wsync_log(usn, tbl, "
	    "op, mask) VALUES(?1, 0, 0, 0)", (int64_t)maxusn, err)))
		goto out;
	if (sqlite3_changes(s->db) == 1 && n > 0)
		n--; /* counted as dropped, but a marker took its place */
	if ((rc = sto_stable_get(s, &gc, err)) || (rc = ws_vclock_merge(&gc, stable)) ||
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

	if ((rc = sto_stable_get(s, &gc, err)) ||
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
	if ((rc = sto_seal_locked(s, NULL, err)) || (rc = sto_gc_locked(s, stable, &n, err)) ||
	    (rc = sto_exec(s->db, "COMMIT", err))) {
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	if (dropped)
		*dropped = n;
	return 0;
}
