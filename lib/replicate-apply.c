/* SPDX-License-Identifier: MIT */
/*
 * replicate-apply.c - the replicator's writes into its own table: a row
 * from the publisher inserted or updated with its array columns (child
 * tables), an update of some columns, and the delete in two phases,
 * recorded in wsync_replica_deleted: deleted (and an event), then
 * confirmed (by the event handler, or by the application with
 * --hold-deletes), then removed.  One transaction holds a group of
 * messages' effects and the usn they reach, so a run killed at any point
 * resumes correctly; the events it queued are delivered after it
 * commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replicate-int.h"

void rep_release_cols(struct rep *x)
{
	size_t i;

	rpl_cols_release(&x->cols);
	for (i = 0; x->child && i < x->o->narrays; i++)
		json_decref(x->child[i].known);
	free(x->child);
	x->child = NULL;
	for (i = 0; i < x->ncache; i++)
		sqlite3_finalize(x->cache[i].st);
	x->ncache = 0;
	sqlite3_finalize(x->sel);
	sqlite3_finalize(x->sweep_ins);
	sqlite3_finalize(x->mark);
	sqlite3_finalize(x->unmark);
	sqlite3_finalize(x->getmark);
	sqlite3_finalize(x->pend);
	x->sel = x->sweep_ins = x->mark = x->unmark = x->getmark = x->pend = NULL;
}

int rep_event(struct rep *x, const char *name, json_t *obj)
{
	json_t *e;

	if (!obj)
		return WS_ENOMEM;
	if (!x->o->event && strcmp(name, "deleted") != 0) {
		json_decref(obj);
		return 0;
	}
	e = json_pack("{s:s,s:s}", "event", name, "table", x->o->table);
	if (!e || json_object_update(e, obj)) {
		json_decref(e);
		json_decref(obj);
		return WS_ENOMEM;
	}
	json_decref(obj);
	return json_array_append_new(x->events, json_pack("[s,o]", name, e)) ? WS_ENOMEM : 0;
}

/* The local key of the row in st (key columns from `from`), as JSON. */
static json_t *key_obj_from(struct rep *x, sqlite3_stmt *st, const int *colpos)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < x->cols.nkey; i++)
		json_object_set_new(o, x->cols.v[x->cols.keys[i]].name, rpl_col_json(st, colpos[i]));
	return o;
}

/*
 * Read the local row whose key (remote names) is key into x->sel: 1 when
 * it is there, 0 when not, or <0.  The caller resets x->sel.
 */
int rep_find_row(struct rep *x, const json_t *key)
{
	int rc;

	sqlite3_reset(x->sel);
	if ((rc = rpl_cols_bind_key(&x->cols, x->sel, 1, key, &x->tmp,
	    RPL_KEY_FROM_PUBLISHER, x->err)))
		return rc;
	return sqlite3_step(x->sel) == SQLITE_ROW;
}

/* A message's key (remote names) with the local names (new reference). */
static json_t *local_key(struct rep *x, const json_t *key)
{
	json_t *lk = json_object();
	size_t i;

	for (i = 0; lk && i < x->cols.nkey; i++)
		json_object_set(lk, x->cols.v[x->cols.keys[i]].name,
		    json_object_get(key, x->cols.v[x->cols.keys[i]].remote));
	return lk;
}

/*
 * The local changes of the row with key (remote names) that still wait
 * to go up, as a mask of the columns they hold (*mask) and whether the
 * row was deleted (*gone).  A change from the publisher leaves those
 * columns as they are: the local change goes up after it, and the
 * publisher echoes it back; written over, the newer local value would
 * be lost (and sent up as the older one).
 */
int rep_pending_cols(struct rep *x, const json_t *key, uint64_t *mask, int *gone)
{
	size_t i;
	int rc;

	*mask = 0;
	*gone = 0;
	if (!x->pend)
		return 0;
	sqlite3_reset(x->pend);
	if ((rc = rpl_cols_bind_key(&x->cols, x->pend, 1, key, &x->tmp,
	    RPL_KEY_FROM_PUBLISHER, x->err)))
		return rc;
	while ((rc = sqlite3_step(x->pend)) == SQLITE_ROW) {
		const char *op = (const char *)sqlite3_column_text(x->pend, 0);

		if (op && strcmp(op, "del") == 0)
			*gone = 1;
		else if (op && strcmp(op, "add") == 0)
			for (i = 0; i < x->cols.n; i++)
				*mask |= x->cols.v[i].key ? 0 : 1ull << i;
		else
			*mask |= (uint64_t)sqlite3_column_int64(x->pend, 1);
	}
	sqlite3_reset(x->pend);
	return rc == SQLITE_DONE ? 0 : rpl_sqlfail(x->db, rc, "wsync_replica_out", x->err);
}

/* The upsert (kind 0) or update (kind 1) statement for the columns in mask. */
static int rstmt_get(struct rep *x, int kind, uint64_t mask, sqlite3_stmt **out)
{
	sqlite3_str *q;
	size_t i;
	int first = 1, n = 0, rc;
	char *sql;

	for (i = 0; i < x->ncache; i++)
		if (x->cache[i].kind == kind && x->cache[i].mask == mask) {
			*out = x->cache[i].st;
			sqlite3_reset(*out);
			sqlite3_clear_bindings(*out);
			return 0;
		}
	q = sqlite3_str_new(x->db);
	if (kind == 0) {
		sqlite3_str_appendf(q, "INSERT INTO \"%w\"(", x->o->table);
		for (i = 0; i < x->cols.n; i++)
			if (mask & (1ull << i))
				sqlite3_str_appendf(q, "%s\"%w\"", n++ ? "," : "",
				    x->cols.v[i].name);
		sqlite3_str_appendall(q, ") VALUES (");
		for (i = 0; i < (size_t)n; i++)
			sqlite3_str_appendf(q, "%s?%d", i ? "," : "", (int)i + 1);
		sqlite3_str_appendall(q, ") ON CONFLICT(");
		for (i = 0; i < x->cols.nkey; i++)
			sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "",
			    x->cols.v[x->cols.keys[i]].name);
		sqlite3_str_appendall(q, ") DO ");
		for (i = 0; i < x->cols.n; i++)
			if ((mask & (1ull << i)) && !x->cols.v[i].key) {
				sqlite3_str_appendf(q, "%s\"%w\" = excluded.\"%w\"",
				    first ? "UPDATE SET " : ", ", x->cols.v[i].name,
				    x->cols.v[i].name);
				first = 0;
			}
		if (first)
			sqlite3_str_appendall(q, "NOTHING");
	} else {
		sqlite3_str_appendf(q, "UPDATE \"%w\" SET ", x->o->table);
		for (i = 0; i < x->cols.n; i++)
			if (mask & (1ull << i)) {
				sqlite3_str_appendf(q, "%s\"%w\" = ?%d", n ? "," : "",
				    x->cols.v[i].name, n + 1);
				n++;
			}
		rpl_cols_put_where(&x->cols, q, n + 1);
	}
	if ((rc = sto_str_finish(q, &sql, x->err)))
		return rc;
	if (x->ncache == RCACHE) {
		sqlite3_finalize(x->cache[0].st);
		memmove(x->cache, x->cache + 1, (RCACHE - 1) * sizeof(x->cache[0]));
		x->ncache--;
	}
	rc = sqlite3_prepare_v2(x->db, sql, -1, out, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK)
		return ws_error(x->err, WS_ESCHEMA, "table '%s' cannot take the rows: %s",
		    x->o->table, sqlite3_errmsg(x->db));
	x->cache[x->ncache++] = (struct rstmt){kind, mask, *out};
	return 0;
}

int rep_step_done(struct rep *x, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : rpl_sqlfail(x->db, rc, what, x->err);
}

/* One value of an array element, bound as SQLite keeps it. */
static int bind_elem(sqlite3_stmt *st, int i, const json_t *v)
{
	char *s;
	int rc;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return sqlite3_bind_text64(st, i, json_string_value(v), json_string_length(v),
		    SQLITE_TRANSIENT, SQLITE_UTF8);
	case JSON_INTEGER:
		return sqlite3_bind_int64(st, i, json_integer_value(v));
	case JSON_REAL:
		return sqlite3_bind_double(st, i, json_real_value(v));
	case JSON_TRUE:
	case JSON_FALSE:
		return sqlite3_bind_int(st, i, json_is_true(v));
	case JSON_NULL:
		return sqlite3_bind_null(st, i);
	default:
		if (!(s = json_dumps(v, JSON_COMPACT)))
			return SQLITE_NOMEM;
		rc = sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
		free(s);
		return rc;
	}
}

/*
 * Append to q the INSERT of array element el (an object) into a's child
 * table: the reference as ?1, then el's other members in its order, as
 * bind_elem() binds them.
 */
static void put_child_insert(sqlite3_str *q, const struct ws_replicate_array *a,
    json_t *el)
{
	const char *k;
	json_t *fv;
	int n = 1;

	sqlite3_str_appendf(q, "INSERT INTO \"%w\"(\"%w\"", a->child, a->ref);
	json_object_foreach(el, k, fv)
		if (strcmp(k, a->ref) != 0)
			sqlite3_str_appendf(q, ",\"%w\"", k);
	sqlite3_str_appendall(q, ") VALUES (?1");
	json_object_foreach(el, k, fv)
		if (strcmp(k, a->ref) != 0)
			sqlite3_str_appendf(q, ",?%d", ++n);
	sqlite3_str_appendchar(q, 1, ')');
}

/* Replace the child rows of the row whose key is `ref` with array `v`. */
static int apply_array(struct rep *x, size_t ai, const json_t *ref, const json_t *v)
{
	const struct ws_replicate_array *a = &x->o->arrays[ai];
	struct child *ch = &x->child[ai];
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	json_error_t je;
	json_t *arr = NULL, *el, *fv;
	const char *k;
	size_t i;
	int rc, n;

	q = sqlite3_str_new(x->db);
	sqlite3_str_appendf(q, "DELETE FROM \"%w\" WHERE \"%w\" = ?1", a->child, a->ref);
	if ((rc = rpl_str_prep(x->db, q, &st, x->err)) ||
	    (rc = rpl_bind_json(st, 1, ref, &x->tmp, a->ref, x->err)) ||
	    (rc = rep_step_done(x, st, a->child)))
		goto out;
	sqlite3_finalize(st);
	st = NULL;
	if (json_is_string(v)) {
		arr = json_loadb(json_string_value(v), json_string_length(v), 0, &je);
	} else if (json_is_array(v)) {
		arr = json_incref((json_t *)v);
	} else if (json_is_null(v)) {
		return 0;
	}
	if (!json_is_array(arr)) {
		rlog(x, "column '%s' does not hold a JSON array: its rows are left out",
		    a->remote);
		rc = 0;
		goto out;
	}
	json_array_foreach(arr, i, el) {
		if (!json_is_object(el))
			continue;
		json_object_foreach(el, k, fv) {
			if (json_object_get(ch->known, k) || strcmp(k, a->ref) == 0)
				continue;
			q = sqlite3_str_new(x->db);
			sqlite3_str_appendf(q, "ALTER TABLE \"%w\" ADD COLUMN \"%w\"",
			    a->child, k);
			if ((rc = rpl_str_exec(x->db, q, x->err)))
				goto out;
			json_object_set_new(ch->known, k, json_true());
		}
		q = sqlite3_str_new(x->db);
		put_child_insert(q, a, el);
		if ((rc = rpl_str_prep(x->db, q, &st, x->err)) ||
		    (rc = rpl_bind_json(st, 1, ref, &x->tmp, a->ref, x->err)))
			goto out;
		n = 1;
		json_object_foreach(el, k, fv)
			if (strcmp(k, a->ref) != 0)
				bind_elem(st, ++n, fv);
		if ((rc = rep_step_done(x, st, a->child)))
			goto out;
		sqlite3_finalize(st);
		st = NULL;
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	json_decref(arr);
	return rc;
}

/* Delete the children of the row whose single key column holds ref. */
static int drop_children(struct rep *x, sqlite3_stmt *keyrow, int keycol)
{
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < x->o->narrays; i++) {
		q = sqlite3_str_new(x->db);
		sqlite3_str_appendf(q, "DELETE FROM \"%w\" WHERE \"%w\" = ?1",
		    x->o->arrays[i].child, x->o->arrays[i].ref);
		if ((rc = rpl_str_prep(x->db, q, &st, x->err)))
			break;
		sqlite3_bind_value(st, 1, sqlite3_column_value(keyrow, keycol));
		rc = rep_step_done(x, st, x->o->arrays[i].child);
		sqlite3_finalize(st);
	}
	return rc;
}

/* The key of a message (remote names) as the JSON text of a marker. */
static char *marker_of(struct rep *x, const json_t *key)
{
	json_t *a = json_array();
	char *s;
	size_t i;

	for (i = 0; a && i < x->cols.nkey; i++)
		json_array_append(a, json_object_get(key, x->cols.v[x->cols.keys[i]].remote));
	s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	return s;
}

/*
 * A row from the publisher (ReplicateNextResult, ReplicateAdd): insert
 * it or update it, with its array columns.
 */
int rep_apply_row(struct rep *x, const json_t *cols, uint64_t usn)
{
	sqlite3_stmt *st;
	json_t *key, *changed = NULL, *v;
	uint64_t mask = 0, keep;
	size_t i;
	int rc, n = 0, existed = 0, gone;

	if (!json_is_object(cols))
		return ws_error(x->err, WS_ECORRUPT, "a row that is not an object");
	if (!(key = json_object()))
		return WS_ENOMEM;
	for (i = 0; i < x->cols.n; i++) {
		if (!(v = json_object_get(cols, x->cols.v[i].remote)))
			continue;
		if (rep_parent_col(&x->cols.v[i]))
			mask |= 1ull << i;
		if (x->cols.v[i].key)
			json_object_set(key, x->cols.v[i].remote, v);
	}
	if (json_object_size(key) != x->cols.nkey) {
		json_decref(key);
		return ws_error(x->err, WS_ECORRUPT, "a row without its whole key");
	}
	/* Columns with a local change still to go up keep their value. */
	if ((rc = rep_pending_cols(x, key, &keep, &gone)))
		goto out;
	if (gone) {
		x->rows++;
		goto out; /* deleted here: the delete goes up */
	}
	mask &= ~keep;
	if (x->o->event) {
		/* Added or updated, and which columns changed. */
		if ((rc = rep_find_row(x, key)) < 0)
			goto out;
		if (rc == 1) {
			existed = 1;
			changed = json_array();
			for (i = 0, n = 0; changed && i < x->cols.n; i++) {
				if (!rep_parent_col(&x->cols.v[i]))
					continue;
				v = json_object_get(cols, x->cols.v[i].remote);
				if (v && !(keep & (1ull << i))) {
					json_t *old = rpl_col_json(x->sel, n);

					if (!json_equal(old, v))
						json_array_append_new(changed,
						    json_string(x->cols.v[i].name));
					json_decref(old);
				}
				n++;
			}
		}
		sqlite3_reset(x->sel);
	}
	if ((rc = rstmt_get(x, 0, mask, &st)))
		goto out;
	for (i = 0, n = 0; i < x->cols.n; i++)
		if (mask & (1ull << i) && (rc = rpl_bind_json(st, ++n,
		    json_object_get(cols, x->cols.v[i].remote), &x->tmp, x->cols.v[i].remote,
		    x->err)))
			goto out;
	if ((rc = rep_step_done(x, st, x->o->table)))
		goto out;
	for (i = 0; i < x->cols.n; i++)
		if (x->cols.v[i].array && !(keep & (1ull << i)) &&
		    (v = json_object_get(cols, x->cols.v[i].remote)) &&
		    (rc = apply_array(x, (size_t)x->cols.v[i].array - 1,
		    json_object_get(key, x->cols.v[x->cols.keys[0]].remote), v)))
			goto out;
	if (x->sweep) {
		sqlite3_reset(x->sweep_ins);
		if ((rc = rpl_cols_bind_key(&x->cols, x->sweep_ins, 1, key, &x->tmp,
		    RPL_KEY_FROM_PUBLISHER, x->err)) ||
		    (rc = rep_step_done(x, x->sweep_ins, "wsync_replica_full")))
			goto out;
	}
	if (x->ndeleted > 0) {
		char *k = marker_of(x, key);

		if (!k) {
			rc = WS_ENOMEM;
			goto out;
		}
		sqlite3_bind_text(x->unmark, 1, k, -1, SQLITE_TRANSIENT);
		free(k);
		if ((rc = rep_step_done(x, x->unmark, "wsync_replica_deleted")))
			goto out;
		x->ndeleted -= sqlite3_changes(x->db);
	}
	x->rows++;
	if (x->o->event && (!existed || json_array_size(changed))) {
		json_t *lk = local_key(x, key);

		rc = existed ? rep_event(x, "updated", json_pack("{s:o,s:O,s:I}", "key", lk,
		    "columns", changed, "usn", (json_int_t)usn)) :
		    rep_event(x, "added", json_pack("{s:o,s:I}", "key", lk, "usn", (json_int_t)usn));
	}
out:
	json_decref(changed);
	json_decref(key);
	return rc;
}

/*
 * The positional form of ReplicateUpdate's columns, [values in mask
 * order], as an object of remote names (new reference); NULL for a bad
 * one.
 */
static json_t *named_cols(struct rep *x, const json_t *m, const json_t *arr)
{
	const json_t *jm = json_object_get(m, "mask");
	json_int_t mask = json_is_integer(jm) ? json_integer_value(jm) : 0;
	json_t *o = json_object();
	size_t i, k = 0;

	for (i = 0; o && i < x->cols.n && i < RPL_MAX_COLS; i++) {
		if (!(mask & ((json_int_t)1 << i)))
			continue;
		if (k >= json_array_size(arr) ||
		    json_object_set(o, x->cols.v[i].remote, json_array_get(arr, k)))
			break;
		k++;
	}
	if (!o || mask <= 0 || (mask >> (x->cols.n < RPL_MAX_COLS ? x->cols.n : RPL_MAX_COLS)) ||
	    k != json_array_size(arr) || i < x->cols.n) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int rep_apply_update(struct rep *x, const json_t *m, uint64_t usn)
{
	const json_t *key = json_object_get(m, "key"), *cols = json_object_get(m, "columns");
	json_t *changed, *v, *lk, *named = NULL;
	uint64_t mask = 0, keep;
	sqlite3_stmt *st;
	size_t i, j;
	int rc, n = 0, arrays = 0, have = 0, gone;

	if (json_is_array(cols)) {
		if (!(named = named_cols(x, m, cols)))
			return ws_error(x->err, WS_ECORRUPT, "ReplicateUpdate: \"columns\" "
			    "as an array needs a value for each bit of \"mask\"");
		cols = named;
	}
	if (!json_is_object(cols) || !json_is_object(key)) {
		json_decref(named);
		return ws_error(x->err, WS_ECORRUPT, "ReplicateUpdate needs \"key\" and "
		    "\"columns\" objects");
	}
	if (!(changed = json_array())) {
		json_decref(named);
		return WS_ENOMEM;
	}
	if ((rc = rep_pending_cols(x, key, &keep, &gone)))
		goto out;
	if (gone)
		goto out; /* deleted here: the delete goes up */
	if (x->o->event) {
		/* The row as it is, to report only the columns that change. */
		if ((have = rep_find_row(x, key)) < 0) {
			rc = have;
			goto out;
		}
	}
	for (i = 0, j = 0; i < x->cols.n; i++) {
		if (!rep_parent_col(&x->cols.v[i])) {
			if ((keep & (1ull << i)))
				continue;
			if ((v = json_object_get(cols, x->cols.v[i].remote))) {
				json_array_append_new(changed, json_string(x->cols.v[i].name));
				arrays = 1;
			}
			continue;
		}
		j++;
		if (!(v = json_object_get(cols, x->cols.v[i].remote)) || x->cols.v[i].key ||
		    (keep & (1ull << i)))
			continue;
		mask |= 1ull << i;
		if (have) {
			/*
			 * The same value is no change: so the publisher's echo of
			 * an update this replicator sent is not reported again.
			 */
			json_t *old = rpl_col_json(x->sel, j - 1);
			int same = json_equal(old, v);

			json_decref(old);
			if (same)
				continue;
		}
		json_array_append_new(changed, json_string(x->cols.v[i].name));
	}
	if (have)
		sqlite3_reset(x->sel);
	rc = 0;
	if (mask) {
		if ((rc = rstmt_get(x, 1, mask, &st)))
			goto out;
		for (i = 0; i < x->cols.n; i++)
			if ((mask & (1ull << i)) && (rc = rpl_bind_json(st, ++n,
			    json_object_get(cols, x->cols.v[i].remote), &x->tmp,
			    x->cols.v[i].remote, x->err)))
				goto out;
		if ((rc = rpl_cols_bind_key(&x->cols, st, n + 1, key, &x->tmp,
		    RPL_KEY_FROM_PUBLISHER, x->err)) || (rc = rep_step_done(x, st, x->o->table)))
			goto out;
	}
	for (i = 0; arrays && i < x->cols.n; i++)
		if (x->cols.v[i].array && !(keep & (1ull << i)) &&
		    (v = json_object_get(cols, x->cols.v[i].remote)) &&
		    (rc = apply_array(x, (size_t)x->cols.v[i].array - 1,
		    json_object_get(key, x->cols.v[x->cols.keys[0]].remote), v)))
			goto out;
	if (x->o->event && json_array_size(changed)) {
		if (!(lk = local_key(x, key)))
			goto out;
		rc = rep_event(x, "updated", json_pack("{s:o,s:O,s:I}", "key", lk, "columns",
		    changed, "usn", (json_int_t)usn));
	}
out:
	json_decref(changed);
	json_decref(named);
	return rc;
}

/* Phase one of a delete: the row is marked deleted. */
int rep_mark_deleted(struct rep *x, sqlite3_stmt *row, const int *keypos, uint64_t usn)
{
	json_t *lk = key_obj_from(x, row, keypos), *a = json_array();
	char *k = NULL;
	size_t i;
	int rc = WS_ENOMEM;

	for (i = 0; lk && a && i < x->cols.nkey; i++)
		json_array_append_new(a, rpl_col_json(row, keypos[i]));
	if (!lk || !a || !(k = json_dumps(a, JSON_COMPACT)))
		goto out;
	sqlite3_bind_text(x->mark, 1, k, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(x->mark, 2, (int64_t)usn);
	if ((rc = rep_step_done(x, x->mark, "wsync_replica_deleted")))
		goto out;
	x->ndeleted++;
	rc = rep_event(x, "deleted", json_pack("{s:O,s:I,s:s}", "key", lk, "usn",
	    (json_int_t)usn, "k", k));
out:
	free(k);
	json_decref(lk);
	json_decref(a);
	return rc;
}

int rep_apply_del(struct rep *x, const json_t *m, uint64_t usn)
{
	const json_t *key = json_object_get(m, "key");
	int keypos[RPL_MAX_KEY], rc;
	size_t i;

	for (i = 0; i < x->cols.nkey; i++)
		keypos[i] = (int)i;
	sqlite3_reset(x->getmark);
	if ((rc = rpl_cols_bind_key(&x->cols, x->getmark, 1, key, &x->tmp,
	    RPL_KEY_FROM_PUBLISHER, x->err)))
		return rc;
	rc = sqlite3_step(x->getmark);
	if (rc == SQLITE_ROW)
		rc = rep_mark_deleted(x, x->getmark, keypos, usn);
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = rpl_sqlfail(x->db, rc, x->o->table, x->err);
	sqlite3_reset(x->getmark);
	return rc;
}

/* Phase three: remove the rows whose delete is confirmed. */
int rep_remove_confirmed(struct rep *x)
{
	sqlite3_stmt *st = NULL, *del = NULL;
	sqlite3_str *q = sqlite3_str_new(x->db);
	json_error_t je;
	json_t *a, *lk;
	size_t i;
	int rc;

	sqlite3_str_appendf(q, "DELETE FROM \"%w\"", x->o->table);
	rpl_cols_put_where(&x->cols, q, 1);
	sqlite3_str_appendf(q, " RETURNING \"%w\"", x->cols.v[x->cols.keys[0]].name);
	if ((rc = rpl_str_prep(x->db, q, &del, x->err)) ||
	    (rc = rpl_prepare(x->db, "SELECT k FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed'", &st, x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		a = json_loads(k, 0, &je);
		if (!json_is_array(a) || json_array_size(a) != x->cols.nkey) {
			json_decref(a);
			continue;
		}
		sqlite3_reset(del);
		for (i = 0; rc == SQLITE_ROW && i < x->cols.nkey; i++)
			if (rpl_bind_json(del, (int)i + 1, json_array_get(a, i), &x->tmp, "key", NULL))
				rc = SQLITE_MISMATCH;
		if (rc == SQLITE_ROW) {
			rc = sqlite3_step(del);
			if (rc == SQLITE_ROW && x->o->narrays)
				drop_children(x, del, 0);
			while (rc == SQLITE_ROW)
				rc = sqlite3_step(del);
			sqlite3_reset(del);
		}
		lk = json_object();
		for (i = 0; lk && i < x->cols.nkey; i++)
			json_object_set(lk, x->cols.v[x->cols.keys[i]].name, json_array_get(a, i));
		json_decref(a);
		if (rc != SQLITE_DONE) {
			json_decref(lk);
			rc = rpl_sqlfail(x->db, rc, x->o->table, x->err);
			goto out;
		}
		if ((rc = rep_event(x, "removed", json_pack("{s:o}", "key", lk))))
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = rpl_sqlfail(x->db, rc, "wsync_replica_deleted", x->err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = rpl_prepare(x->db, "DELETE FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed'", &st, x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	rc = rep_step_done(x, st, "wsync_replica_deleted");
	x->ndeleted -= sqlite3_changes(x->db);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return rc;
}

int rep_tx_begin(struct rep *x)
{
	int rc = rpl_exec(x->db, "BEGIN IMMEDIATE; INSERT INTO wsync_replica_applying "
	    "VALUES (1)", x->err);

	if (rc)
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	x->have_usn = 0;
	return rc;
}

/* Record the usn reached (if any) and commit. */
int rep_tx_commit(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (x->have_usn && x->initialized) {
		if ((rc = rpl_prepare(x->db, "UPDATE wsync_replica SET usn = ?1, "
		    "updated = datetime('now') WHERE local_table = ?2", &st, x->err)))
			goto fail;
		sqlite3_bind_int64(st, 1, (int64_t)x->new_usn);
		sqlite3_bind_text(st, 2, x->o->table, -1, SQLITE_STATIC);
		rc = rep_step_done(x, st, "wsync_replica");
		sqlite3_finalize(st);
		if (rc)
			goto fail;
		x->usn = x->new_usn;
	}
	if ((rc = rpl_exec(x->db, "DELETE FROM wsync_replica_applying; COMMIT", x->err)))
		goto fail;
	return 0;
fail:
	sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

void rep_tx_abort(struct rep *x)
{
	sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	json_array_clear(x->events);
}

/* Deliver the queued events; confirm the deletes they handled. */
int rep_deliver(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	json_t *e, *obj, *conf = json_array();
	size_t i;
	int rc = 0, ok;
	char *s;

	if (!conf)
		return WS_ENOMEM;
	json_array_foreach(x->events, i, e) {
		const char *name = json_string_value(json_array_get(e, 0));
		json_t *k;

		obj = json_array_get(e, 1);
		k = json_incref(json_object_get(obj, "k"));
		json_object_del(obj, "k");
		ok = 1;
		if (x->o->event) {
			if (!(s = json_dumps(obj, JSON_COMPACT))) {
				json_decref(k);
				rc = WS_ENOMEM;
				break;
			}
			ok = x->o->event(x->o->event_cd, name, s) == 0;
			free(s);
		}
		if (k && ok && !x->o->hold_deletes && strcmp(name, "deleted") == 0)
			json_array_append(conf, k);
		json_decref(k);
	}
	json_array_clear(x->events);
	if (rc == 0 && json_array_size(conf)) {
		if ((rc = rep_tx_begin(x)))
			goto out;
		if ((rc = rpl_prepare(x->db, "UPDATE wsync_replica_deleted SET state = "
		    "'confirmed' WHERE local_table = ?1 AND k = ?2 AND state = 'deleted'",
		    &st, x->err)))
			goto fail;
		json_array_foreach(conf, i, e) {
			sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, json_string_value(e), -1, SQLITE_TRANSIENT);
			if ((rc = rep_step_done(x, st, "wsync_replica_deleted")))
				goto fail;
		}
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = rep_remove_confirmed(x)) || (rc = rep_tx_commit(x)))
			goto fail;
		rc = rep_deliver(x);
	}
	goto out;
fail:
	rep_tx_abort(x);
out:
	sqlite3_finalize(st);
	json_decref(conf);
	return rc;
}
