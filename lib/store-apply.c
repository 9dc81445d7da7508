/* SPDX-License-Identifier: MIT */
/*
 * store-apply.c - a remote batch's way in (ws_store_apply()): whether it
 * fits the working set's schema (batch_fits()), whether it is new, ready
 * or must wait for a batch it depends on (readiness(); a batch that
 * waits is parked in wsync_pending and applied by sto_drain() once it
 * can be), whether its Lamport number is explained by its context, and
 * the one transaction a batch is applied in, foreign keys enforced or
 * not (sto_fk_policy()).  Each ready batch is merged change by change by
 * sto_apply_batch(), under the rule stated in store-merge.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

/* A site id as text, in a static buffer (for one message at a time). */
static const char *hex_of(const struct ws_siteid *id)
{
	static char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(id, hex);
	return hex;
}

/*
 * A batch's Lamport number is the sum of its causal context's counters
 * (sto_lamport_of()).  A hub that forwards it may drop context entries every
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

/*
 * Where a batch stands against clock: 1 apply now, 0 already applied,
 * 2 must wait for a batch it depends on.  WS_ECORRUPT for a batch that
 * is not a store batch (no dot or context, or dots that disagree).
 */
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

/* Keep a batch that must wait. */
static int park(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *st;
	int rc, n;

	/* A bounded wait: a site's batches cannot pile up here. */
	if ((rc = sto_stmt(s, "SELECT count(*) FROM wsync_pending WHERE site = ?1", &st,
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
int sto_drain(struct ws_store *s, struct ws_vclock *clock, char *err)
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
			if (r == 1 && ((rc = sto_apply_batch(s, &b, err)) ||
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
	if ((rc = sto_stmt(s, "SELECT x.cid, x.\"notnull\", x.pk, x.type, l.wr FROM "
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
		else if ((rc = sto_map_table(s, &b->tables[j], &fit[j].t, fit[j].col, err)) == 0)
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

int ws_store_apply(struct ws_store *s, const struct ws_batch *b, int *applied,
    char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	uint64_t usn;
	int rc, r;

	if (applied)
		*applied = 0;
	if ((rc = sto_fk_policy(s, err)) || (rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = sto_seal_locked(s, NULL, err)) || (rc = ws_store_clock(s, &clock, err)))
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
	    (rc = sto_apply_batch(s, b, err)) == 0 &&
	    (rc = ws_vclock_set(&clock, &b->dot_site, b->dot_counter)) == 0) {
		if (applied)
			*applied = 1;
		if ((rc = sto_drain(s, &clock, err)) == 0 &&
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
	int rc = sto_query_u64(s, "SELECT count(*) FROM wsync_pending", &v, err);

	*n = (size_t)v;
	return rc;
}
