/* SPDX-License-Identifier: MIT */
/*
 * store-merge.c - the merge: a ready remote batch applied change by
 * change (sto_apply_batch()).  How a batch gets here (atomically, once,
 * in causal order, only if it fits the schema) is store-apply.c's.
 *
 * The rule, per change, the same on every copy whatever the order the
 * batches came in:
 *
 * 1. Per-cell versions.  A cell's version is the dot of the newest log
 *    entry that set it (its mask), with that batch's Lamport number (the
 *    sum of its causal context).  A change replaces a version its batch
 *    has seen (context[site] >= counter, or within the collected
 *    horizon); versions neither has seen are concurrent, and the one
 *    with the higher Lamport number, then the higher site id, wins
 *    (sto_wins()).  The losers are kept in wsync_conflicts (kind value), so
 *    nothing a user wrote is lost; a later write that has seen them,
 *    such as a local one, clears them (store-seal.c).
 * 2. Deletes win over unseen writes.  A delete wins over every write
 *    concurrent with it, even once the row was inserted again; those
 *    writes' values are kept as conflicts (kind delete, OP_LOSTDEL in
 *    the log).
 * 3. UNIQUE contests.  A write whose values clash in a UNIQUE index with
 *    another row's is judged by claims (store-claims.c), not by the rows
 *    this copy happens to hold: the stronger claim (Lamport number, then
 *    site id) keeps the values, the rows of weaker ones are removed here
 *    as deletes of this batch (claims_contest(), claim_kill()), and a
 *    change that lost is removed as the stronger claims' deletes would
 *    remove it (claim_lose(), OP_BY); the values are kept as conflicts of
 *    kind unique.  contest() holds the same contest for a clash that
 *    claims did not foresee.
 * 4. Foreign-key actions.  When merges enforce foreign keys (some tracked
 *    table declares an action: sto_fk_policy()), a remote delete of a
 *    parent runs its ON DELETE CASCADE or SET NULL here, each write
 *    logged as this batch's (cascade()), since the triggers do not
 *    capture a merge's writes; a change that named a parent a delete it
 *    had not seen removed gets that action too (fk_parent_deleted()).
 * 5. CHECK reverts.  A change that breaks a CHECK or NOT NULL only by
 *    what it merges with (cells written concurrently) puts those cells
 *    back to what they held before when it is stronger than every
 *    concurrent version in the row, keeping theirs as conflicts of kind
 *    check (check_revert()); otherwise it loses (kind check).  Other
 *    clashes only concurrency can make (CLASH) make the change lose whole
 *    (sto_lose_change()).
 * 6. wsync_prior notes.  For a table with such constraints
 *    (sto_constrained()), the values a change replaces are noted with its
 *    log entry, so an older entry still travels with the values it set
 *    (store-extract.c) and a revert knows what a cell held.
 *
 * The state of one batch's merge (struct apply) and the steps that a
 * full copy is taken in by are shared with store-snap.c (store-int.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store-int.h"



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
int sto_fk_policy(struct ws_store *s, char *err)
{
	int rc, ver, on;

	if ((rc = sto_schema_version(s, &ver, err)) || ver == s->fk_ver)
		return rc;
	on = sto_meta_exists(s, "SELECT 1 FROM wsync_tables AS t, "
	    "pragma_foreign_key_list(t.name) AS f WHERE f.on_delete <> 'NO ACTION' "
	    "OR f.on_update <> 'NO ACTION'");
	if ((rc = sto_exec(s->db, on ? "PRAGMA foreign_keys = ON" :
	    "PRAGMA foreign_keys = OFF", err)) == 0) {
		s->fk_ver = ver;
		s->fk_on = on;
	}
	return rc;
}

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
int sto_seen(const struct apply *a, const struct ver *v)
{
	return v->site == 0 || ws_vclock_get(&a->b->clock, &a->s->sites[v->site]) >=
	    v->counter || ws_vclock_get(&a->gc, &a->s->sites[v->site]) >= v->counter;
}

int sto_wins(const struct ws_store *s, const struct ver *x, const struct ver *y)
{
	if (x->lamport != y->lamport)
		return x->lamport > y->lamport;
	return memcmp(s->sites[x->site].b, s->sites[y->site].b, WS_SITEID_LEN) > 0;
}

/*
 * Read the row's history as change `a` sees it: the version of each
 * cell since the row's last delete, whether the row is alive, and
 * whether any delete in its whole history is concurrent with the change
 * (a delete wins over every write it has not seen, even once the row
 * was inserted again).
 */
int sto_load_history(struct apply *a, const struct tbl *t,
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
			if (!sto_seen(a, &v)) {
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
int sto_add_conflict(struct apply *a, const struct tbl *t, int col, int lostdel,
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
int sto_map_table(struct ws_store *s, const struct ws_table *rt, struct tbl **out,
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
void sto_bind_write(sqlite3_stmt *w, const struct tbl *t, int kind, int64_t mask,
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
int sto_step_write(struct apply *a, const struct tbl *t, sqlite3_stmt *w)
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
int sto_key_blob(const struct tbl *t, const struct ws_value *pk, struct ws_buf *out)
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
int sto_lose_row(struct apply *a, const struct tbl *t, const struct ws_value *pk,
    const struct history *h, int kind, int64_t mask)
{
	struct ver newest = {0};
	sqlite3_stmt *st;
	sqlite3_str *q;
	uint32_t i;
	int rc;

	for (i = 0; i < t->ncols; i++)
		if (h->cell[i].site && (!newest.site || sto_wins(a->s, &h->cell[i], &newest)))
			newest = h->cell[i];
	if (!newest.site)
		return 0; /* nothing known of it: nothing to name as lost */
	q = sqlite3_str_new(a->s->db);
	sto_str_select(q, t, 1);
	sto_str_pk_where(q, t, 1);
	if ((rc = sto_str_prep(a->s->db, q, &st, a->err)))
		return rc;
	for (i = 0; i < t->npk; i++)
		sto_bind_value(st, (int)i + 1, &pk[i]);
	if (sqlite3_step(st) == SQLITE_ROW)
		for (i = 0; rc == 0 && i < t->ncols; i++)
			if ((t->allmask & mask) >> i & 1)
				rc = sto_add_conflict(a, t, (int)i, kind, h->cell[i].site ?
				    &h->cell[i] : &newest, sqlite3_column_value(st, (int)i),
				    NULL);
	sqlite3_finalize(st);
	return rc;
}

/* Append "SELECT key columns FROM t". */
void sto_str_select(sqlite3_str *q, const struct tbl *t, int all)
{
	uint32_t i, n = all ? t->ncols : t->npk;

	sqlite3_str_appendall(q, "SELECT ");
	for (i = 0; i < n; i++)
		sqlite3_str_appendf(q, "%s\"%w\"", i ? ", " : "",
		    t->cols[all ? i : t->pk[i]]);
	sqlite3_str_appendf(q, " FROM \"%w\"", t->name);
}

static int cascade(struct apply *a, struct tbl *t, const struct ws_value *pk,
    int depth, uint64_t by);

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
	struct ws_buf blob = WS_BUF_INIT, keys = WS_BUF_INIT, saved;
	struct ver me = {a->origin, a->counter, a->lamport}, best;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *ix = NULL, *cols = NULL, *find = NULL, *del;
	struct history h;
	sqlite3_str *q;
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
	while (rc == 0 && sqlite3_step(ix) == SQLITE_ROW) {
		sqlite3_reset(cols);
		sqlite3_bind_text(cols, 1, (const char *)sqlite3_column_text(ix, 0), -1,
		    SQLITE_TRANSIENT);
		q = sqlite3_str_new(s->db);
		sto_str_select(q, t, 0);
		sqlite3_str_appendall(q, " WHERE NOT (1");
		for (i = 0; i < t->npk; i++)
			sqlite3_str_appendf(q, " AND \"%w\" IS ?%u", t->cols[t->pk[i]], i + 1);
		sqlite3_str_appendall(q, ")");
		n = 0;
		bound = 1;
		while (sqlite3_step(cols) == SQLITE_ROW) {
			/* t->cols[0] is the rowid itself when it is the key. */
			int cid = sqlite3_column_int(cols, 0);

			cid += cid >= 0 ? t->rowid_key : 0;
			/* Only indexes of plain columns this change sets (or keys). */
			if (cid < 0 || cid >= (int)t->ncols)
				bound = 0;
			else if (!val[cid] || val[cid]->type == WS_NULL)
				bound = 0;
			else
				sqlite3_str_appendf(q, " AND \"%w\" IS ?%u", t->cols[cid],
				    t->npk + 1 + n++);
		}
		if (!bound || !n) {
			sqlite3_free(sqlite3_str_finish(q));
			continue;
		}
		if ((rc = sto_str_prep(s->db, q, &find, a->err)))
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
			if ((rc = sto_load_history(a, t, kv, &h)))
				goto out;
			memset(&best, 0, sizeof(best));
			for (i = 0; i < t->ncols; i++)
				if (h.cell[i].site && (!best.site || sto_wins(s, &h.cell[i], &best)))
					best = h.cell[i];
			if (j == 0) {
				/* A version every copy holds (collected) was there first. */
				if (!best.site || !sto_wins(s, &me, &best))
					goto out;
				continue;
			}
			/* Keep its values, then remove it, logged. */
			saved = a->pk;
			a->pk = (struct ws_buf)WS_BUF_INIT;
			if ((rc = sto_key_blob(t, kv, &a->pk)) == 0)
				rc = sto_lose_row(a, t, kv, &h, KIND_UNIQUE, t->allmask);
			ws_buf_release(&a->pk);
			a->pk = saved;
			if (rc || (rc = cascade(a, (struct tbl *)t, kv, 0, 0)) ||
			    (rc = sto_tstmt(s, (struct tbl *)t, TS_DEL, 0, &del, a->err)))
				goto out;
			for (i = 0; i < t->npk; i++)
				sto_bind_value(del, (int)i + 1, &kv[i]);
			if ((rc = sto_step_write(a, t, del)) || (rc = sto_key_blob(t, kv, &blob)) ||
			    (rc = ws_buf_append(&a->gone, blob.p, blob.len)))
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
	ws_buf_release(&blob);
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
 * as a delete of this batch after the change (claim_kill()).  The actions
 * of the foreign keys that name it run first, logged (cascade()): as this
 * batch's (by 0), or as made by the log entry by, whose removal this is
 * on a copy where it came second.
 */
static int claim_remove(struct apply *a, struct tbl *t, const struct ws_value *kv,
    int keep_values, int kind, struct ws_buf *prior, uint64_t by)
{
	struct history h;
	sqlite3_stmt *del;
	int rc;

	if ((keep_values && ((rc = sto_load_history(a, t, kv, &h)) ||
	    (rc = sto_key_blob(t, kv, &a->pk)) ||
	    (rc = sto_lose_row(a, t, kv, &h, kind, t->allmask)))) ||
	    (prior && (rc = prior_read(a, t, kv, prior))))
		return rc;
	if ((rc = cascade(a, t, kv, 0, by)) ||
	    (rc = sto_tstmt(a->s, t, TS_DEL, 0, &del, a->err)))
		return rc;
	for (uint32_t i = 0; i < t->npk; i++)
		sto_bind_value(del, (int)i + 1, &kv[i]);
	/* A removal refused (a RESTRICT foreign key) leaves the row; the
	 * delete is logged all the same, as every copy logs it. */
	if ((rc = sto_step_write(a, t, del)) == CLASH)
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

/* The log entry of the first stronger claim change a lost to (a->by). */
static uint64_t first_by(const struct apply *a)
{
	uint64_t by = 0;

	if (a->nby)
		memcpy(&by, a->by.p, sizeof(by));
	return by;
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

	if ((rc = sto_load_history(a, t, pk, &h)) || (rc = sto_key_blob(t, pk, &a->pk)) ||
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
	if (rc || (rc = sto_lose_row(a, t, pk, &h, KIND_UNIQUE, ~mask)) ||
	    (rc = claim_remove(a, t, pk, 0, KIND_UNIQUE, &a->lose_prior, first_by(a))))
		goto out;
	if (mask) {
		for (i = 0; i < t->ncols; i++)
			if (keep[i]) {
				sto_value_of(keep[i], &kv[i]);
				val[i] = &kv[i];
			}
		if ((rc = sto_tstmt(a->s, t, TS_INS, mask, &row, a->err)))
			goto out;
		sto_bind_write(row, t, TS_INS, mask, val, pk);
		if ((rc = sto_step_write(a, t, row)) == CLASH) {
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

	if ((rc = claim_remove(a, t, kv, 1, KIND_UNIQUE, &a->killed_prior, 0)) == 0 &&
	    (rc = sto_key_blob(t, kv, &a->q)) == 0 &&
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
	int rc = 0, ok, stepped = 0, exists = 0;
	size_t off;

	a->cl.len = a->by.len = 0;
	a->ncl = a->nby = 0;
	if (!t->nuniq)
		return 0; /* apply_change() read t's indexes (sto_uniq()) */
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
	if (rc || a->ncl == 0 || (rc = sto_key_blob(t, c->pk, &mine)) ||
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

			if ((rc = dot_of(a, usn, &v)) || sto_seen(a, &v))
				continue; /* it knew of that claim: no contest */
			if (sto_wins(s, &v, &me)) {
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
 * Only with foreign keys enforced (sto_fk_policy()).
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
		if ((rc = sto_load_history(a, p, kv, &h)))
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
int sto_write_row(struct apply *a, struct tbl *t, const struct ws_change *c,
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
			sto_bind_write(w, t, kind, mask, val, c->pk);
		rc = sto_step_write(a, t, w);
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
int sto_lose_change(struct apply *a, const struct tbl *t, const struct ws_change *c,
    const struct ws_value *const *val)
{
	struct ver me = {a->origin, a->counter, a->lamport};
	uint32_t i;
	int rc;

	if ((rc = sto_key_blob(t, c->pk, &a->pk)))
		return rc;
	for (i = 0; i < t->ncols; i++)
		if (val[i] && (rc = sto_add_conflict(a, t, (int)i, a->clash, &me, NULL, val[i])))
			return rc;
	return 0;
}

/*
 * The mapping of batch table i, worked out on its first use in the batch:
 * the tracked table, its columns, and whether the log holds entries of it
 * older than this batch (after garbage collection it mostly does not, and
 * then no change of the batch needs to read history).
 */
int sto_batch_map(struct apply *a, uint32_t i, struct bmap **out)
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
	if ((rc = sto_map_table(a->s, rt, &m->t, m->col, a->err)))
		return rc;
	if ((rc = sto_stmt(a->s, "SELECT 1 FROM wsync_log WHERE tbl = ?1 AND usn < ?2 "
	    "LIMIT 1", &st, a->err)))
		return rc;
	sqlite3_bind_int64(st, 1, m->t->id);
	sqlite3_bind_int64(st, 2, (int64_t)a->first_usn);
	rc = sqlite3_step(st);
	m->history = rc != SQLITE_DONE;
	sqlite3_reset(st);
	return 0;
}

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

	if (!a->prior_mask)
		return 0; /* prior_keep() kept nothing: every slot is empty */
	if (usn)
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
 * Note value v as what log entry usn set in column i where it lost
 * (wsync_prior, column -1 - i): no row holds it, and a copy that gets the
 * entry from here must still weigh what it claimed (store-extract.c).
 * Only for a constrained table (see sto_constrained()).
 */
static int lost_note(struct apply *a, const struct tbl *t, uint64_t usn, uint32_t i,
    const struct ws_value *v)
{
	sqlite3_stmt *st;
	int rc;

	if (!t->constrained || !v)
		return 0;
	if ((rc = sto_stmt(a->s, "INSERT OR REPLACE INTO wsync_prior(usn, col, value) "
	    "VALUES(?1, ?2, ?3)", &st, a->err)))
		return rc;
	sqlite3_bind_int64(st, 1, (int64_t)usn);
	sqlite3_bind_int(st, 2, -1 - (int)i);
	sto_bind_value(st, 3, v);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(a->s->db, sqlite3_errcode(a->s->db), "prior", a->err);
	sqlite3_reset(st);
	return rc;
}

/*
 * Write row key of ct by a foreign key's action (del: remove it, else set
 * the columns of mask to NULL), logged as this batch's (or as made by log
 * entry by: see cascade()), with the values
 * it replaced (wsync_prior): a copy that gets this batch from here then
 * learns of it, and an older entry of the row still travels whole.  A
 * write SQLite refuses (a NOT NULL column to set to NULL) is skipped.
 */
static int cascade_write(struct apply *a, struct tbl *ct, const struct ws_value *key,
    int del, int64_t mask, uint64_t by)
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
		sto_bind_write(st, ct, TS_UPD, mask, val, key);
	}
	if ((rc = sto_step_write(a, ct, st)) == CLASH) {
		a->clash = 0;
		rc = 0;
		goto out;
	}
	if (rc || (rc = log_entry(a, ct, (del ? WS_OP_DELETE : WS_OP_UPDATE) |
	    (by ? OP_BY : 0), mask, (int64_t)by, key)))
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
 * Row pk of t is about to be deleted by a remote change, or removed by a
 * contest: run the actions of the foreign keys that name it (CASCADE, SET
 * NULL) here, each logged (cascade_write()), children before their
 * parent; as this batch's writes, or (by) as made by that log entry's
 * (OP_BY, as claim removals are).  SQLite would run them unseen: the
 * triggers do not capture a merge's writes.
 */
static int cascade(struct apply *a, struct tbl *t, const struct ws_value *pk,
    int depth, uint64_t by)
{
	struct ws_buf keys = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS];
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
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
			keys.len = 0;
			q = sqlite3_str_new(a->s->db);
			sto_str_select(q, ct, 0);
			for (k = 0; k < fk->ncols; k++)
				sqlite3_str_appendf(q, "%s\"%w\" = ?%u", k ? " AND " : " WHERE ",
				    ct->cols[fk->col[k]], k + 1);
			if ((rc = sto_str_prep(a->s->db, q, &st, a->err)))
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
					rc = cascade(a, ct, kv, depth + 1, by);
				if (rc == 0)
					rc = cascade_write(a, ct, kv, fk->action == STO_FK_CASCADE,
					    mask, by);
			}
		}
	}
	sqlite3_finalize(st);
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
		rc = sto_key_blob(t, c->pk, &a->q);
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
		    sto_seen(a, &h->cell[i]))
			continue;
		if (sto_wins(a->s, &h->cell[i], &me))
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
			rc = sto_add_conflict(a, t, (int)i, KIND_CHECK, &h->cell[i],
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
			/* What that entry set, now lost: the row holds it still. */
			if (rc == 0) {
				struct ws_value v;

				sto_value_of(sqlite3_column_value(row, (int)i), &v);
				rc = lost_note(a, t, h->usn[i], i, &v);
			}
		}
	if (rc == 0 && (rc = prior_keep(a, t, row, back)) == 0)
		rc = sto_write_row(a, t, c, TS_UPD, win | back, val);
	for (i = 0; i < t->ncols; i++) {
		if ((back >> i) & 1)
			val[i] = NULL; /* old[] goes with this frame */
		sqlite3_value_free(keep[i]);
	}
	return rc;
}

/*
 * Apply one change; see the rule at the top of this file.  A row with no
 * history and no conflicts (the common case once history is
 * garbage-collected) takes the short way: no read of the current row,
 * just the write.
 */
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

	if ((rc = sto_batch_map(a, c->table, &m)))
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
			if (val[i] && (rc = sto_add_conflict(a, t, (int)i, KIND_UNIQUE, &me,
			    NULL, val[i])))
				return rc;
		lost = cmask;
		op |= OP_LOSTDEL;
		m->history = 1;
		goto log;
	}
	if (m->history && (rc = sto_load_history(a, t, c->pk, &h)))
		return rc;
	if (!m->history)
		memset(&h, 0, sizeof(h)); /* nothing older than this batch */
	memset(best, 0, sizeof(best));
	if (h.state == 0 && h.known == 0 && !a->any_conflicts) {
		/* Nothing concurrent can stand: every cell is this change's. */
		if (op == WS_OP_DELETE) {
			if ((rc = cascade(a, t, c->pk, 0, 0)) == 0)
				rc = sto_write_row(a, t, c, TS_DEL, 0, val);
		} else {
			if ((rc = fk_parent_deleted(a, t, val, &fk_act, &fk_cols, &fk_by)))
				return rc;
			if (fk_act == STO_FK_CASCADE)
				goto fk_lost;
			win = cmask | fk_cols;
			if (win)
				rc = sto_write_row(a, t, c, TS_UPD, win, val);
			if (rc == 0 && (!win || sqlite3_changes(s->db) == 0))
				rc = sto_write_row(a, t, c, TS_INS, win, val);
		}
		goto log;
	}
	if ((rc = sto_key_blob(t, c->pk, &a->pk)))
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
		if (sto_seen(a, &cv))
			fix = a->delconf;  /* replaced by this change */
		else if (op == WS_OP_DELETE && !lostdel)
			fix = a->killconf; /* it loses to this delete too */
		else if (!lostdel && (best[cc].site == 0 || sto_wins(s, &cv, &best[cc])))
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
			if (((t->allmask >> i) & 1) && h.cell[i].site && !sto_seen(a, &h.cell[i]) &&
			    (rc = sto_add_conflict(a, t, (int)i, 1, &h.cell[i],
			    sqlite3_column_value(row, (int)i), NULL)))
				goto out;
		if (exists && (rc = prior_keep(a, t, row, t->allmask)) == 0 &&
		    (rc = cascade(a, t, c->pk, 0, 0)) == 0)
			rc = sto_write_row(a, t, c, TS_DEL, 0, val);
		goto out;
	}
	if (h.unseen_delete) {
		/* The row was deleted concurrently: the delete wins. */
		for (i = 0; i < t->ncols; i++)
			if (val[i] && (rc = sto_add_conflict(a, t, (int)i, 1, &me, NULL, val[i])))
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
		me_wins = !(v.site && !sto_seen(a, &v) && sto_wins(s, &v, &me)) &&
		    !(best[i].site && sto_wins(s, &best[i], &me));
		if (me_wins) {
			win |= (int64_t)1 << i;
			if (v.site && !sto_seen(a, &v) && exists &&
			    (rc = sto_add_conflict(a, t, (int)i, 0, &v,
			    sqlite3_column_value(row, (int)i), NULL)))
				goto out;
		} else {
			lost |= (int64_t)1 << i;
			if ((rc = sto_add_conflict(a, t, (int)i, 0, &me, NULL, val[i])))
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
		rc = sto_write_row(a, t, c, TS_INS, win, val);
	else if (win && (rc = prior_keep(a, t, row, win)) == 0)
		rc = sto_write_row(a, t, c, TS_UPD, win, val);
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
	if ((rc = claim_remove(a, t, c->pk, 1, KIND_FK, &a->lose_prior, fk_by)) ||
	    (rc = ws_buf_append(&a->by, &fk_by, sizeof(fk_by))))
		return rc;
	a->nby++;
	for (i = 0; i < t->ncols; i++)
		if (val[i] && (rc = sto_add_conflict(a, t, (int)i, KIND_FK, &me, NULL,
		    val[i])))
			return rc;
	lost = cmask;
	win = 0;
	op |= OP_LOSTDEL;
	m->history = 1;
log:
	if (rc == CLASH) {
		/* It broke a constraint only concurrency could: it loses. */
		if ((rc = sto_lose_change(a, t, c, val)))
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
	for (i = 0; lost && i < t->ncols; i++)
		if ((lost >> i) & 1 && (rc = lost_note(a, t, usn, i, val[i])))
			return rc;
	if ((rc = log_deletes(a, t, &a->gone, &a->ngone, NULL)) ||
	    (rc = log_deletes(a, t, &a->killed, &a->nkilled, &a->killed_prior)))
		return rc;
	if (a->ncl || a->nby)
		rc = log_claims(a, t, c, usn);
	return rc;
}

void sto_apply_release(struct apply *a)
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

int sto_apply_init(struct apply *a, struct ws_store *s, char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);
	unsigned i;
	int rc;

	memset(a, 0, sizeof(*a));
	a->s = s;
	a->err = err;
	sqlite3_str_appendall(q, "SELECT usn, op, mask, lost FROM wsync_log WHERE tbl = ?1");
	for (i = 1; i <= s->nk; i++)
		sqlite3_str_appendf(q, " AND k%u IS ?%u", i, i + 1);
	sqlite3_str_appendall(q, " ORDER BY usn DESC");
	if ((rc = sto_str_stmt(s, q, &a->hist, err)))
		goto out;
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "INSERT INTO wsync_log(tbl, op, mask, lost, ");
	sto_str_ks(q, s->nk, "");
	sqlite3_str_appendall(q, ") VALUES(?1, ?2, ?3, ?4");
	for (i = 1; i <= s->nk; i++)
		sqlite3_str_appendf(q, ", ?%u", i + 4);
	sqlite3_str_appendall(q, ")");
	if ((rc = sto_str_stmt(s, q, &a->log, err)) ||
	    (rc = sto_stmt(s, "SELECT site, counter, lamport, first_usn FROM wsync_batches"
	    " WHERE last_usn >= ?1 ORDER BY last_usn LIMIT 1", &a->dot, err)) ||
	    (rc = sto_stmt(s, "SELECT id, col, site, counter, lamport, lostdel FROM "
	    "wsync_conflicts WHERE tbl = ?1 AND pk = ?2", &a->conf, err)) ||
	    (rc = sto_stmt(s, "UPDATE wsync_conflicts SET lostdel = 1 WHERE id = ?1",
	    &a->killconf, err)) ||
	    (rc = sto_stmt(s, "INSERT INTO wsync_conflicts(tbl, pk, col, lostdel, site,"
	    " counter, lamport, value) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	    &a->addconf, err)) ||
	    (rc = sto_stmt(s, "DELETE FROM wsync_conflicts WHERE id = ?1", &a->delconf, err)))
		goto out;
	a->any_conflicts = sto_meta_exists(s, "SELECT 1 FROM wsync_conflicts LIMIT 1");
	rc = sto_stable_get(s, &a->gc, err);
out:
	if (rc)
		sto_apply_release(a);
	return rc;
}

/* Apply a ready batch inside the open transaction. */
int sto_apply_batch(struct ws_store *s, const struct ws_batch *b, char *err)
{
	struct apply a;
	uint64_t first, last;
	size_t i;
	int rc;

	if ((rc = ws_store_usn(s, &first, err)) || (rc = sto_apply_init(&a, s, err)))
		return rc;
	first++;
	a.b = b;
	a.first_usn = first;
	if (!(a.map = calloc(b->ntables ? b->ntables : 1, sizeof(*a.map)))) {
		sto_apply_release(&a);
		return WS_ENOMEM;
	}
	a.counter = b->dot_counter;
	a.lamport = b->has_lamport ? b->lamport : sto_lamport_of(&b->clock);
	if ((rc = sto_site_index(s, &b->dot_site, &a.origin, err)) ||
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
	    (rc = sto_add_batch_row(s, a.origin, b->dot_counter, first, last, &b->clock,
	    a.lamport, err)) == 0 && (rc = sto_clock_set(s, a.origin, b->dot_counter, err)) == 0)
		rc = sto_meta_set_int(s, "sealed_usn", (int64_t)last, err);
out:
	sto_apply_release(&a);
	return rc;
}
