/* SPDX-License-Identifier: MIT */
/*
 * store-claims.c - claims on the values of UNIQUE indexes.
 *
 * Two sites can each write a row that takes the same value in a UNIQUE
 * index (two accounts, one email).  Every copy must settle such a clash
 * alike, whatever order the two writes reach it in, and whatever became
 * of either row meanwhile (changed again, deleted, lost to a delete).  So
 * the clash is judged between the writes themselves, not between the
 * rows a copy happens to hold when the second write arrives:
 *
 *   - every write that sets a column of a UNIQUE index (a local one when
 *     it is sealed, a remote one when it is applied, whether it wins or
 *     loses) leaves a claim: the index, the values of its columns, the
 *     row's key and the write's log entry (whose batch gives its version);
 *   - a write whose claim meets a concurrent claim of another row on the
 *     same values is weighed against it by version (Lamport number, then
 *     site id): the weaker claim's row is removed, its values kept as
 *     conflicts of kind unique, and the removal counts as a delete made
 *     by the stronger write (store.c, claims_contest()).
 *
 * Each pair of concurrent claims is judged once on every copy, when the
 * second of the two arrives, by the same rule: the result does not depend
 * on the order.  A claim that every site has seen can no longer be
 * concurrent with anything, so claims go with their batches at garbage
 * collection.  Partial indexes and indexes on expressions make no claims
 * (a clash on one is settled by the rows, see store.c contest()).
 *
 *   wsync_claims(tbl, idx, val, pk, usn)
 *     idx names the index, val encodes its columns' values (wire value
 *     encoding, in index order), pk the row's key, usn the write's entry.
 */
#include <stdlib.h>
#include <string.h>

#include "wsync/error.h"
#include "store-int.h"

/*
 * t's foreign keys with an action on a parent's delete, whose parent
 * columns are the parent's key (a missing "to" names it).  Each child
 * column is placed at its parent key column's position.
 */
static int read_fks(struct ws_store *s, struct tbl *t, char *err)
{
	sqlite3_stmt *st = NULL;
	struct sto_fk *f = NULL;
	int rc, id = -1;
	uint32_t i, k;

	if ((rc = sto_prep(s->db, "SELECT id, \"table\", \"from\", \"to\", on_delete "
	    "FROM pragma_foreign_key_list(?1) WHERE on_delete IN ('CASCADE', "
	    "'SET NULL') ORDER BY id, seq", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *from = (const char *)sqlite3_column_text(st, 2);
		const char *to = (const char *)sqlite3_column_text(st, 3);
		struct tbl *p = sto_find_tbl(s, (const char *)sqlite3_column_text(st, 1));

		if (sqlite3_column_int(st, 0) != id) {
			struct sto_fk *more = realloc(t->fk, (t->nfk + 1) * sizeof(*more));

			if (!more)
				goto nomem;
			t->fk = more;
			f = &t->fk[t->nfk++];
			memset(f, 0, sizeof(*f));
			id = sqlite3_column_int(st, 0);
			f->action = strcmp((const char *)sqlite3_column_text(st, 4),
			    "CASCADE") == 0 ? STO_FK_CASCADE : STO_FK_SET_NULL;
			if (!p || !(f->parent = strdup(p->name)))
				f->action = STO_FK_NONE; /* an untracked parent */
		}
		if (f->action == STO_FK_NONE || !from)
			continue;
		for (i = 0; i < t->ncols && strcmp(t->cols[i], from) != 0; i++)
			;
		/* The parent key column it names: "to", or the key's in order. */
		for (k = 0; to && k < p->npk && strcmp(p->cols[p->pk[k]], to) != 0; k++)
			;
		if (!to)
			k = f->ncols;
		if (i == t->ncols || k >= p->npk || f->ncols == p->npk)
			f->action = STO_FK_NONE;
		else {
			f->col[k] = i;
			f->ncols++;
		}
	}
	sqlite3_finalize(st);
	/* Only keys that name the parent's whole key. */
	for (i = 0; i < t->nfk; i++) {
		struct tbl *p = t->fk[i].parent ? sto_find_tbl(s, t->fk[i].parent) : NULL;

		if (!p || t->fk[i].ncols != p->npk)
			t->fk[i].action = STO_FK_NONE;
	}
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "foreign keys", err);
nomem:
	sqlite3_finalize(st);
	return WS_ENOMEM;
}

int sto_uniq(struct ws_store *s, struct tbl *t, char *err)
{
	sqlite3_stmt *st = NULL;
	struct sto_uniq *u = NULL;
	const char *name;
	int rc, cid;

	if (t->uniq_at == (int64_t)s->schema_version + 1)
		return 0;
	sto_uniq_release(t);
	/* Indexes the key itself makes (origin pk) are the key's business. */
	if ((rc = sto_prep(s->db, "SELECT l.name, i.cid FROM pragma_index_list(?1) AS l, "
	    "pragma_index_info(l.name) AS i WHERE l.\"unique\" AND l.origin <> 'pk' "
	    "AND NOT l.partial ORDER BY l.seq, i.seqno", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		cid = sqlite3_column_int(st, 1);
		if (!u || strcmp(u->name, name) != 0) {
			struct sto_uniq *more = realloc(t->uniq, (t->nuniq + 1) * sizeof(*more));

			if (!more)
				goto nomem;
			t->uniq = more;
			u = &t->uniq[t->nuniq++];
			memset(u, 0, sizeof(*u));
			if (!(u->name = strdup(name)))
				goto nomem;
		}
		/* t->cols[0] is the rowid itself when it is the key. */
		cid += cid >= 0 ? t->rowid_key : 0;
		if (cid < 0 || cid >= (int)t->ncols || u->ncols == MAX_TRACKED_COLS)
			u->skip = 1; /* an expression, or the rowid */
		else
			u->col[u->ncols++] = (uint32_t)cid;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		sto_uniq_release(t);
		return sto_sqlerr(s->db, rc, "indexes", err);
	}
	if ((rc = read_fks(s, t, err)) || (rc = sto_constrained(s, t, &t->constrained,
	    err))) {
		sto_uniq_release(t);
		return rc;
	}
	t->uniq_at = (int64_t)s->schema_version + 1;
	return 0;
nomem:
	sqlite3_finalize(st);
	sto_uniq_release(t);
	return WS_ENOMEM;
}

int sto_constrained(struct ws_store *s, const struct tbl *t, int *yes, char *err)
{
	sqlite3_stmt *st;
	int rc;

	*yes = 0;
	if ((rc = sto_stmt(s, "SELECT EXISTS(SELECT 1 FROM pragma_index_list(?1) "
	    "WHERE \"unique\" AND origin <> 'pk') OR EXISTS(SELECT 1 FROM "
	    "pragma_foreign_key_list(?1)) OR EXISTS(SELECT 1 FROM "
	    "pragma_table_info(?1) WHERE \"notnull\" AND pk = 0) OR coalesce((SELECT "
	    "sql FROM sqlite_schema WHERE type = 'table' AND name = ?1) LIKE "
	    "'%CHECK%', 0)", &st, err)))
		return rc;
	sqlite3_bind_text(st, 1, t->name, -1, SQLITE_STATIC);
	if ((rc = sqlite3_step(st)) == SQLITE_ROW)
		*yes = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 0 : sto_sqlerr(s->db, rc, t->name, err);
}

int sto_uniq_touched(const struct tbl *t, uint32_t u, int64_t mask)
{
	const struct sto_uniq *x = &t->uniq[u];
	uint32_t i;

	if (x->skip)
		return 0;
	for (i = 0; i < x->ncols; i++)
		if ((mask >> x->col[i]) & 1)
			return 1;
	return 0;
}

int sto_claim_value(const struct tbl *t, uint32_t u, const struct ws_value *const *val,
    const struct ws_value *pk, sqlite3_stmt *row, struct ws_buf *out, int *ok)
{
	const struct sto_uniq *x = &t->uniq[u];
	struct ws_value v;
	uint32_t i, c, k;
	int rc = 0;

	out->len = 0;
	*ok = 0;
	for (i = 0; rc == 0 && i < x->ncols; i++) {
		c = x->col[i];
		if (val && val[c])
			v = *val[c];
		else {
			for (k = 0; k < t->npk && t->pk[k] != c; k++)
				;
			if (k < t->npk)
				v = pk[k];
			else if (row)
				sto_value_of(sqlite3_column_value(row, (int)c), &v);
			else
				return 0;
		}
		if (v.type == WS_NULL)
			return 0; /* NULLs never clash */
		rc = ws_value_encode(&v, out);
	}
	*ok = rc == 0;
	return rc;
}

int sto_claim_add(struct ws_store *s, const struct tbl *t, uint32_t u,
    const struct ws_buf *val, const struct ws_buf *pk, uint64_t usn, char *err)
{
	sqlite3_stmt *st;
	int rc;

	if ((rc = sto_stmt(s, "INSERT INTO wsync_claims(tbl, idx, val, pk, usn) "
	    "VALUES(?1, ?2, ?3, ?4, ?5)", &st, err)))
		return rc;
	sqlite3_bind_int64(st, 1, t->id);
	sqlite3_bind_text(st, 2, t->uniq[u].name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, val->p, (int)val->len, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, pk->p, (int)pk->len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)usn);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "claims", err);
}

/*
 * What row pk of t held in each column just after log entry usn, for the
 * claims of a local write sealed with entries up to last: for a column a
 * later entry (up to last) set or removed, the value it replaced
 * (wsync_prior), else the row's (row: stepped on it, or NULL when gone).
 * As a batch carries the entry (store-extract.c).  vals[c] points into
 * v[c], whose values the caller frees; NULL: not known.
 */
static int held_after(struct ws_store *s, const struct tbl *t, sqlite3_stmt *e,
    uint64_t last, sqlite3_stmt *row, sqlite3_value **v, const struct ws_value **vals,
    struct ws_value *tmp, char *err)
{
	sqlite3_str *q = sqlite3_str_new(s->db);
	uint64_t by[MAX_TRACKED_COLS] = {0};
	sqlite3_stmt *later, *prior;
	int64_t left = t->allmask;
	uint32_t i;
	int rc;

	sqlite3_str_appendall(q, "SELECT op, mask, usn FROM wsync_log WHERE tbl = ?1 AND "
	    "usn > ?2 AND usn <= ?3");
	for (i = 0; i < t->npk; i++)
		sqlite3_str_appendf(q, " AND k%u IS ?%u", i + 1, i + 4);
	sqlite3_str_appendall(q, " ORDER BY usn");
	if ((rc = sto_str_stmt(s, q, &later, err)))
		return rc;
	sqlite3_bind_int64(later, 1, t->id);
	sqlite3_bind_int64(later, 2, sqlite3_column_int64(e, 0));
	sqlite3_bind_int64(later, 3, (int64_t)last);
	for (i = 0; i < t->npk; i++)
		sqlite3_bind_value(later, (int)i + 4, sqlite3_column_value(e, 4 + (int)i));
	while (left && sqlite3_step(later) == SQLITE_ROW) {
		int64_t m = (sqlite3_column_int(later, 0) & 0xf) == WS_OP_DELETE ?
		    t->allmask : sqlite3_column_int64(later, 1);

		for (i = 0; i < t->ncols; i++)
			if ((left & m) >> i & 1)
				by[i] = (uint64_t)sqlite3_column_int64(later, 2);
		left &= ~m;
	}
	sqlite3_reset(later);
	if ((rc = sto_stmt(s, "SELECT value FROM wsync_prior WHERE usn = ?1 AND col = ?2",
	    &prior, err)))
		return rc;
	for (i = 0; rc == 0 && i < t->ncols; i++) {
		vals[i] = NULL;
		if (!((t->allmask >> i) & 1))
			continue;
		if (by[i]) {
			sqlite3_bind_int64(prior, 1, (int64_t)by[i]);
			sqlite3_bind_int(prior, 2, (int)i);
			if (sqlite3_step(prior) == SQLITE_ROW &&
			    !(v[i] = sqlite3_value_dup(sqlite3_column_value(prior, 0))))
				rc = WS_ENOMEM;
			sqlite3_reset(prior);
		} else if (row && !(v[i] = sqlite3_value_dup(sqlite3_column_value(row,
		    (int)i)))) {
			rc = WS_ENOMEM;
		}
		if (v[i]) {
			sto_value_of(v[i], &tmp[i]);
			vals[i] = &tmp[i];
		}
	}
	return rc;
}

/*
 * The claims of local writes: log entries first..last, just sealed, each
 * with the values it set, as the batch carries them (held_after()).
 */
int sto_claims_seal(struct ws_store *s, uint64_t first, uint64_t last, char *err)
{
	struct ws_buf pk = WS_BUF_INIT, val = WS_BUF_INIT;
	struct ws_value kv[MAX_TRACKED_COLS], tmp[MAX_TRACKED_COLS];
	const struct ws_value *vals[MAX_TRACKED_COLS];
	sqlite3_value *v[MAX_TRACKED_COLS] = {0};
	sqlite3_stmt *st = NULL, *row;
	sqlite3_str *q;
	uint32_t i, u;
	int rc, ok, exists;

	for (i = 0, u = 0; i < s->nt; i++)
		if ((rc = sto_uniq(s, &s->t[i], err)))
			return rc;
		else
			u += s->t[i].nuniq;
	if (u == 0)
		return 0; /* no tracked table has a UNIQUE index */
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "SELECT usn, tbl, op, mask");
	for (i = 1; i <= s->nk; i++)
		sqlite3_str_appendf(q, ", k%u", i);
	sqlite3_str_appendall(q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2");
	if ((rc = sto_str_prep(s->db, q, &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tbl *t = sto_tbl_by_id(s, sqlite3_column_int64(st, 1));
		int64_t mask = sqlite3_column_int64(st, 3);

		if (!t || !t->nuniq || sqlite3_column_int(st, 2) == WS_OP_DELETE)
			continue;
		for (u = 0; u < t->nuniq && !sto_uniq_touched(t, u, mask); u++)
			;
		if (u == t->nuniq)
			continue;
		if ((rc = sto_pk_blob(st, 4, t->npk, &pk)) ||
		    (rc = sto_tstmt(s, t, TS_ROW, 0, &row, err)))
			goto out;
		for (i = 0; i < t->npk; i++) {
			sto_value_of(sqlite3_column_value(st, 4 + (int)i), &kv[i]);
			sto_bind_value(row, (int)i + 1, &kv[i]);
		}
		exists = sqlite3_step(row) == SQLITE_ROW;
		rc = held_after(s, t, st, last, exists ? row : NULL, v, vals, tmp, err);
		sqlite3_reset(row);
		for (u = 0; rc == 0 && u < t->nuniq; u++)
			if (sto_uniq_touched(t, u, mask) &&
			    (rc = sto_claim_value(t, u, vals, kv, NULL, &val, &ok)) == 0 && ok)
				rc = sto_claim_add(s, t, u, &val, &pk,
				    (uint64_t)sqlite3_column_int64(st, 0), err);
		for (i = 0; i < MAX_TRACKED_COLS; i++) {
			sqlite3_value_free(v[i]);
			v[i] = NULL;
		}
		if (rc)
			goto out;
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "log", err);
out:
	sqlite3_finalize(st);
	ws_buf_release(&pk);
	ws_buf_release(&val);
	return rc;
}
