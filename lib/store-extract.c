/* SPDX-License-Identifier: MIT */
/*
 * store-extract.c - batches out of the log: ws_store_changes_since(),
 * ws_store_local_since() and ws_store_changes_missing() rebuild each
 * batch from its log entries, with the values its cells hold now, or
 * those that later entries replaced (wsync_prior), or those it set where
 * it lost (wsync_prior, negative columns), so that an older entry
 * travels with what it set.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"

struct extract {
	struct ws_store *s;
	struct ws_batch b;
	long map[4096];          /* tracked-table position -> batch table + 1 */
	struct ws_buf pk;
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
	if ((rc = sto_stmt(x->s, "SELECT site, counter, first_usn FROM wsync_batches WHERE "
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
 * The values log entry usn of t set in the columns of mask where it lost
 * (wsync_prior, negative columns: kept for constrained tables only), into
 * the empty slots of cv; the caller frees them.
 */
static int lost_values(struct extract *x, const struct tbl *t, uint64_t usn,
    int64_t mask, sqlite3_value **cv)
{
	sqlite3_stmt *st;
	int rc, col;

	if (!t->constrained || !mask)
		return 0;
	if ((rc = sto_stmt(x->s, "SELECT col, value FROM wsync_prior WHERE usn = ?1 AND "
	    "col < 0", &st, x->err)))
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)usn);
	while (rc == 0 && sqlite3_step(st) == SQLITE_ROW) {
		col = -1 - sqlite3_column_int(st, 0);
		if (col < (int)t->ncols && ((mask >> col) & 1) && !cv[col] &&
		    !(cv[col] = sqlite3_value_dup(sqlite3_column_value(st, 1))))
			rc = WS_ENOMEM;
	}
	sqlite3_reset(st);
	return rc;
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
	sqlite3_str *q;
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
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "SELECT op, mask, lost, usn FROM wsync_log WHERE "
	    "tbl = ?1 AND usn > ?2");
	for (i = 0; i < s->nk; i++)
		sqlite3_str_appendf(q, " AND k%u IS ?%u", i + 1, i + 3);
	sqlite3_str_appendall(q, " ORDER BY usn");
	if ((rc = sto_str_stmt(s, q, &later, x->err)))
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
	/* ... what it set where it lost, noted with it (store-merge.c) ... */
	if ((rc = lost_values(x, t, (uint64_t)sqlite3_column_int64(e, 0),
	    emask & ~win, cv)))
		goto out;
	/* ... the conflicts table where it lost and still stands ... */
	if ((rc = sto_stmt(s, "SELECT col, value FROM wsync_conflicts WHERE tbl = ?1 "
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
	if ((rc = sto_stmt(s, "SELECT value FROM wsync_prior WHERE usn = ?1 AND col = ?2",
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
	sqlite3_str *q;
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
	if ((uint64_t)sqlite3_column_int64(bs, 5) != sto_lamport_of(&ctx))
		ws_batch_set_lamport(&x->b, (uint64_t)sqlite3_column_int64(bs, 5));
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "SELECT usn, tbl, op, mask, lost");
	if (s->nk)
		sqlite3_str_appendall(q, ", ");
	sto_str_ks(q, s->nk, "");
	sqlite3_str_appendall(q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2"
	    " ORDER BY usn");
	/* Not cached: extract_entry's statements run while this one steps. */
	if ((rc = sto_str_prep(s->db, q, &e, x->err)))
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
	if ((rc = sto_stable_get(s, &gc, err)))
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
