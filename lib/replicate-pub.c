/* SPDX-License-Identifier: MIT */
/*
 * replicate-pub.c - the publisher of table replication (replicate.h): an
 * event loop (loop.h) over stream and HTTP sessions, its changes read
 * from the store.  The messages are JSON objects with an "mt";
 * wsync-replicate(1) documents them and the HTTP mapping
 * (replicate-http.c).
 *
 * Per session: ReplicateStart checks the rights and says whether the
 * replication is full; ReplicateNext pages through the table in key
 * order (keyset pagination, so no read transaction stays open); then the
 * session is live: the changes after its usn, as the store gives them,
 * go out as ReplicateAdd/Update/Del, at most a window of them
 * unacknowledged, and a ReplicateSync says when it has sent all.  Over
 * HTTP a session lives in memory between requests and a response carries
 * what the session has queued.
 *
 * Secure stream sessions carry the same messages, one a WS_FRAME_MESSAGE
 * frame, through a struct ws_peer made secure (secure.h); the JSON lines
 * go on being read from and queued in the session's buffers, and are
 * framed and unframed at its edge.
 *
 * The store is opened under the fixed working-set id "replicate", so a
 * database that is a working set cannot also be published: a store keeps
 * one working set's tables, triggers and log per database, and
 * publishing a working set's table would take it into a second set
 * whose log, guid and GC horizon the working set's sites know nothing
 * of (a ws_store_gc() here would drop history a site still needs, and
 * --compact would do so on purpose).  Publishing a working set means
 * reading the working set's own log, with its guid and usn, under the
 * hub's GC horizon: a change of behaviour, not of layout, left to its
 * own issue.
 *
 * The publisher has two connections to the database.  The store's
 * (p->st) keeps the change log: the store alone runs SQL on it, and the
 * publisher asks it only for the guid, the usn and the changes since a
 * usn.  Its own (p->db) reads and writes the published table, which is
 * the application's data, not one of the store's wsync_* tables: its
 * columns (PRAGMA table_info), its rows in key order for a full
 * replication, and the rows a replicator adds, updates or deletes.  The
 * publisher writes them as any application writing its table does,
 * through its own connection; the store's capture triggers log them, and
 * the next seal sees them.  Neither connection holds a transaction
 * between two events of the loop, so neither waits for the other.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "replicate-int.h"
#include "wsync/hub.h"
#include "wsync/json.h"

#define WSID "replicate"
#define HTTP_IDLE_MS (600u * 1000u) /* an HTTP session unused this long ends */
#define OUT_HIGH (4u << 20)        /* stop reading the log past this many queued bytes */
#define MAX_PAGE 10000             /* rows in one ReplicateNextResult */
#define STOP_PUMP WS_EAGAIN        /* a callback's way to stop the store's loop */
/* The loop looks at its sessions this often, watching the database ... */
#define POLL_MS 1000
/* ... or twice as often without inotify, when it also pumps every time. */
#define POLL_UNWATCHED_MS 500
/* Refusals of a connection over the session cap: one log line this often. */
#define REFUSED_LOG_MS 1000


/* --- the published columns and the sessions --------------------------------- */

/* Read the table's columns and choose the published ones. */
static int pub_columns(struct pub *p, char *err)
{
	const struct ws_replicate_pub_opts *o = p->o;
	sqlite3_stmt *st = NULL;
	struct rpl_col *c;
	size_t i, n = 0, cap = 0;
	int rc = 0, pk, found;

	if ((rc = rpl_table_info(p->db, o->table, &st, err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *type = (const char *)sqlite3_column_text(st, 2);
		const struct ws_replicate_col *spec = NULL;

		pk = sqlite3_column_int(st, 5);
		for (i = 0; i < o->ncols; i++)
			if (strcmp(o->cols[i].name, name) == 0)
				spec = &o->cols[i];
		if (o->ncols && !spec && !pk)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			if (!(c = realloc(p->cols.v, cap * sizeof(*c)))) {
				rc = WS_ENOMEM;
				goto out;
			}
			p->cols.v = c;
		}
		c = &p->cols.v[n];
		memset(c, 0, sizeof(*c));
		p->cols.n = ++n;
		c->name = strdup(name);
		c->remote = strdup(spec ? spec->other : name);
		c->type = strdup(type ? type : "");
		c->key = pk;
		c->update = spec && spec->update && !pk;
		if (!c->name || !c->remote || !c->type) {
			rc = WS_ENOMEM;
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		rc = rpl_sqlfail(p->db, rc, "table", err);
		goto out;
	}
	rc = 0;
	if (n == 0) {
		rc = ws_error(err, WS_ENOTFOUND, "no table '%s' in '%s'", o->table, o->db);
		goto out;
	}
	for (i = 0; i < o->ncols; i++) {
		size_t j;

		for (j = 0, found = 0; j < n; j++)
			found |= strcmp(p->cols.v[j].name, o->cols[i].name) == 0;
		if (!found) {
			rc = ws_error(err, WS_ESCHEMA, "no column '%s' in table '%s'",
			    o->cols[i].name, o->table);
			goto out;
		}
		if (o->cols[i].update) {
			for (j = 0; j < n; j++)
				if (strcmp(p->cols.v[j].name, o->cols[i].name) == 0 &&
				    p->cols.v[j].key) {
					rc = ws_error(err, WS_EINVAL, "key column '%s' "
					    "cannot be updated", o->cols[i].name);
					goto out;
				}
		}
	}
	for (i = 0; i < n; i++) {
		size_t j;

		for (j = i + 1; j < n; j++)
			if (strcmp(p->cols.v[i].remote, p->cols.v[j].remote) == 0) {
				rc = ws_error(err, WS_EINVAL, "two columns published as '%s'",
				    p->cols.v[i].remote);
				goto out;
			}
	}
	rpl_cols_order_keys(&p->cols);
	if (p->cols.nkey == 0)
		rc = ws_error(err, WS_ESCHEMA, "table '%s' has no primary key", o->table);
out:
	sqlite3_finalize(st);
	return rc;
}

static void psess_free(struct psess *s)
{
	if (!s)
		return;
	rpl_peer_free(s->peer); /* its conn is closed below */
	ws_buf_release(&s->raw);
	if (!s->http)
		ws_conn_close(&s->conn);
	ws_buf_release(&s->in);
	ws_buf_release(&s->out);
	sqlite3_finalize(s->first);
	sqlite3_finalize(s->page);
	json_decref(s->cursor);
	free(s->cols);
	free(s);
}

/* Bytes the session has still to send (framed: the frames too). */
static size_t sess_pending(const struct psess *s)
{
	return s->out.len - s->out_off + (s->peer ? ws_peer_pending(s->peer) : 0);
}

/* Queue message m (consumed) on the session. */
static int send_msg(struct psess *s, json_t *m)
{
	return rpl_send(&s->out, m);
}

/* Queue an error reply and end the session once it is written. */
static int sess_error(struct psess *s, const char *mt, const char *refused,
    const char *fmt, ...) WS_PRINTF(4, 5);

static int sess_error(struct psess *s, const char *mt, const char *refused,
    const char *fmt, ...)
{
	char msg[WS_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	plog(s->p, "%s: %s", s->name, msg);
	s->closing = 1;
	return send_msg(s, refused ? json_pack("{s:s,s:s,s:s}", "mt", mt, "error",
	    msg, "refused", refused) : json_pack("{s:s,s:s}", "mt", mt, "error", msg));
}

static struct rpl_col *by_remote(struct pub *p, const char *remote, size_t *idx)
{
	size_t i;

	for (i = 0; i < p->cols.n; i++)
		if (strcmp(p->cols.v[i].remote, remote) == 0) {
			if (idx)
				*idx = i;
			return &p->cols.v[i];
		}
	return NULL;
}

/* The session column that is table column `ci`, or -1. */
static long sess_col(const struct psess *s, size_t ci)
{
	size_t i;

	for (i = 0; i < s->ncols; i++)
		if (s->cols[i] == ci)
			return (long)i;
	return -1;
}

/* Prepare the page queries of a full replication. */
static int prepare_pages(struct psess *s, char *err)
{
	struct pub *p = s->p;
	sqlite3_str *q;
	size_t i;
	int rc, pass;

	for (pass = 0; pass < 2; pass++) {
		q = sqlite3_str_new(p->db);
		sqlite3_str_appendall(q, "SELECT ");
		for (i = 0; i < s->ncols; i++)
			sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "",
			    p->cols.v[s->cols[i]].name);
		sqlite3_str_appendf(q, " FROM \"%w\"", p->o->table);
		if (pass == 1) {
			sqlite3_str_appendall(q, " WHERE (");
			for (i = 0; i < p->cols.nkey; i++)
				sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "",
				    p->cols.v[p->cols.keys[i]].name);
			sqlite3_str_appendall(q, ") > (");
			for (i = 0; i < p->cols.nkey; i++)
				sqlite3_str_appendf(q, "%s?%d", i ? "," : "", (int)i + 2);
			sqlite3_str_appendchar(q, 1, ')');
		}
		sqlite3_str_appendall(q, " ORDER BY ");
		for (i = 0; i < p->cols.nkey; i++)
			sqlite3_str_appendf(q, "%s\"%w\"", i ? "," : "",
			    p->cols.v[p->cols.keys[i]].name);
		sqlite3_str_appendall(q, " LIMIT ?1");
		if ((rc = rpl_str_prep(p->db, q, pass ? &s->page : &s->first, err)))
			return rc;
	}
	return 0;
}

/* A store callback that stops at the first batch: the log reaches usn. */
static int probe_cb(const struct ws_batch *b, uint64_t usn, void *cd)
{
	(void)b;
	(void)usn;
	(void)cd;
	return STOP_PUMP;
}

/* --- the messages of a session --------------------------------------------- */

static int on_start(struct psess *s, const json_t *m)
{
	struct pub *p = s->p;
	const json_t *jg = json_object_get(m, "guid"), *jc = json_object_get(m, "columns");
	const json_t *e;
	char err[WS_ERRLEN] = "";
	uint64_t usn = 0, cur, count = 0;
	unsigned char want[RPL_MAX_KEY] = {0};
	json_t *r, *cols;
	size_t i, idx;
	int add = rpl_get_bool(m, "add"), del = rpl_get_bool(m, "del"), rc;
	int positional = rpl_get_bool(m, "positional"), any_update = 0;
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	char *sql;

	if (s->state != S_START)
		return sess_error(s, "ReplicateStartResult", NULL, "ReplicateStart twice");
	if ((jg && !json_is_null(jg) && !json_is_string(jg)) || add < 0 || del < 0 ||
	    positional < 0 ||
	    (json_object_get(m, "usn") && rpl_get_u64(m, "usn", &usn, err)) ||
	    (jc && !json_is_array(jc)))
		return sess_error(s, "ReplicateStartResult", NULL, "bad ReplicateStart: "
		    "want guid (string or null), usn, add, del and columns");
	if (jc && json_array_size(jc)) {
		json_array_foreach(jc, i, e) {
			const char *name = json_is_string(e) ? json_string_value(e) :
			    json_string_value(json_object_get(e, "name"));
			int upd = json_is_object(e) ? rpl_get_bool(e, "update") : 0;
			struct rpl_col *c;

			if (!name || upd < 0)
				return sess_error(s, "ReplicateStartResult", NULL, "bad "
				    "column in ReplicateStart: want a name or "
				    "{\"name\":...,\"update\":bool}");
			if (!(c = by_remote(p, name, &idx)))
				return sess_error(s, "ReplicateStartResult", "column",
				    "no published column '%s'", name);
			if (upd && !c->update)
				return sess_error(s, "ReplicateStartResult", "update",
				    "column '%s' may not be updated", name);
			any_update |= upd;
			want[idx] = 1;
		}
	} else {
		memset(want, 1, sizeof(want));
	}
	if (s->right < WS_RIGHT_WRITE && (add || del || any_update)) {
		char text[WS_KEY_TEXTMAX];
		const char *refused = add ? "add" : del ? "del" : "update";

		if (s->http && !s->who)
			return sess_error(s, "ReplicateStartResult", refused, "an anonymous "
			    "HTTP client may only read table '%s': send a token with the "
			    "right to write", p->o->table);
		if (s->http)
			return sess_error(s, "ReplicateStartResult", refused, "this token may "
			    "only read table '%s': it cannot send changes", p->o->table);
		ws_key_text(ws_peer_key(s->peer), text);
		return sess_error(s, "ReplicateStartResult", refused, "key %s may only read "
		    "table '%s': it cannot send changes", text, p->o->table);
	}
	if (add && !p->o->add)
		return sess_error(s, "ReplicateStartResult", "add", "the right to add "
		    "rows is not granted");
	if (del && !p->o->del)
		return sess_error(s, "ReplicateStartResult", "del", "the right to "
		    "delete rows is not granted");
	for (i = 0; i < p->cols.nkey; i++)
		want[p->cols.keys[i]] = 1;
	if (!(s->cols = calloc(p->cols.n, sizeof(*s->cols))))
		return WS_ENOMEM;
	for (i = 0; i < p->cols.n; i++)
		if (want[i])
			s->cols[s->ncols++] = i;
	for (i = 0; i < p->cols.nkey; i++)
		s->keypos[i] = (size_t)sess_col(s, p->cols.keys[i]);
	s->add = add;
	s->del = del;
	s->positional = positional;
	if ((rc = ws_store_seal(p->st, NULL, err)) || (rc = ws_store_usn(p->st, &cur, err)))
		goto fail;
	s->full = !jg || json_is_null(jg) || strcmp(json_string_value(jg), p->guid) != 0 ||
	    usn > cur;
	if (!s->full) {
		rc = ws_store_changes_since(p->st, usn, probe_cb, NULL, err);
		if (rc == WS_ERANGE)
			s->full = 1;
		else if (rc && rc != STOP_PUMP)
			goto fail;
	}
	if (s->full) {
		q = sqlite3_str_new(p->db);
		sqlite3_str_appendf(q, "SELECT count(*) FROM \"%w\"", p->o->table);
		if ((rc = sto_str_finish(q, &sql, err)))
			return rc;
		rc = rpl_prepare(p->db, sql, &st, err);
		sqlite3_free(sql);
		if (rc)
			goto fail;
		if (sqlite3_step(st) == SQLITE_ROW)
			count = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
		if ((rc = prepare_pages(s, err)))
			goto fail;
	}
	s->start_usn = s->sent_usn = s->full ? cur : usn;
	s->state = S_INITIAL;
	if (!(cols = json_array()))
		return WS_ENOMEM;
	for (i = 0; i < s->ncols; i++) {
		const struct rpl_col *c = &p->cols.v[s->cols[i]];

		if (json_array_append_new(cols, json_pack("{s:s,s:i,s:b,s:s}", "name",
		    c->remote, "key", c->key, "update", c->update, "type", c->type))) {
			json_decref(cols);
			return WS_ENOMEM;
		}
	}
	r = json_pack("{s:s,s:s,s:I,s:b,s:I,s:b,s:b,s:o}", "mt", "ReplicateStartResult",
	    "guid", p->guid, "usn", (json_int_t)cur, "full", s->full,
	    "count", (json_int_t)count, "add", p->o->add, "del", p->o->del,
	    "columns", cols);
	if (r && s->http)
		json_object_set_new(r, "session", json_string(s->id));
	if (r && positional)
		json_object_set_new(r, "positional", json_true());
	plog(p, "%s: %s replication from usn %" PRIu64, s->name, s->full ? "full" :
	    "incremental", s->start_usn);
	return send_msg(s, r);
fail:
	return sess_error(s, "ReplicateStartResult", NULL, "%s", err);
}

/* The row in st as {remote: value}, for the session's columns. */
static json_t *row_json(struct psess *s, sqlite3_stmt *st)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < s->ncols; i++)
		if (json_object_set_new(o, s->p->cols.v[s->cols[i]].remote, rpl_col_json(st, (int)i))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int on_next(struct psess *s, const json_t *m)
{
	struct pub *p = s->p;
	const json_t *jm = json_object_get(m, "max");
	json_int_t max = jm ? json_integer_value(jm) : 1;
	sqlite3_stmt *st;
	json_t *rows = NULL, *row, *r;
	char err[WS_ERRLEN];
	size_t i, n = 0;
	int rc;

	if (s->state != S_INITIAL)
		return sess_error(s, "ReplicateNextResult", NULL, "ReplicateNext %s",
		    s->state == S_START ? "before ReplicateStart" : "after the initial "
		    "transfer ended");
	if ((jm && !json_is_integer(jm)) || max < 1)
		return sess_error(s, "ReplicateNextResult", NULL, "bad ReplicateNext: "
		    "\"max\" must be a positive integer");
	if (max > MAX_PAGE)
		max = MAX_PAGE;
	if (s->full) {
		st = s->cursor ? s->page : s->first;
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, max);
		for (i = 0; s->cursor && i < p->cols.nkey; i++)
			if ((rc = rpl_bind_json(st, (int)i + 2, json_array_get(s->cursor, i),
			    &p->tmp, "key", err)))
				return rc;
		if (!(rows = json_array()))
			return WS_ENOMEM;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (!(row = row_json(s, st)) || json_array_append_new(rows, row))
				goto nomem;
			n++;
			if (sqlite3_column_count(st) > 0) {
				json_t *k = json_array();

				for (i = 0; k && i < p->cols.nkey; i++)
					json_array_append_new(k, rpl_col_json(st, (int)s->keypos[i]));
				if (!k)
					goto nomem;
				json_decref(s->cursor);
				s->cursor = k;
			}
		}
		if (rc != SQLITE_DONE) {
			rpl_sqlfail(p->db, rc, "table", err);
			sqlite3_reset(st);
			json_decref(rows);
			return sess_error(s, "ReplicateNextResult", NULL, "%s", err);
		}
		sqlite3_reset(st);
	}
	if (n == 0) {
		json_decref(rows);
		s->state = S_LIVE;
		if ((rc = send_msg(s, json_pack("{s:s,s:I}", "mt", "ReplicateNextResult",
		    "usn", (json_int_t)s->start_usn))))
			return rc;
		return pub_pump(s);
	}
	if (max == 1) {
		r = json_pack("{s:s,s:O}", "mt", "ReplicateNextResult", "columns",
		    json_array_get(rows, 0));
		json_decref(rows);
	} else {
		r = json_pack("{s:s,s:o}", "mt", "ReplicateNextResult", "rows", rows);
	}
	return send_msg(s, r);
nomem:
	json_decref(rows);
	return WS_ENOMEM;
}

/* What a pump gathers from the store for one session. */
struct pumpctx {
	struct psess *s;
	int rc;
};

/* Set obj[remote of table column `name`] = v, if the session has it. */
static long map_col(struct psess *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->ncols; i++)
		if (strcmp(s->p->cols.v[s->cols[i]].name, name) == 0)
			return (long)i;
	return -1;
}

static int pump_cb(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct pumpctx *x = cd;
	struct psess *s = x->s;
	struct pub *p = s->p;
	long ti = ws_batch_find_table(b, p->o->table), map[RPL_MAX_KEY];
	const struct ws_value *pos[RPL_MAX_KEY];
	const struct ws_table *t;
	json_t *msgs, *m, *cols, *key;
	size_t i, j, nmsg;
	uint32_t k, vi;
	int64_t mask;
	int rc = 0;

	if (ti < 0) {
		s->sent_usn = usn;
		return 0;
	}
	t = &b->tables[ti];
	if (t->ncols > 64)
		return ws_error(NULL, WS_ESCHEMA, "too many columns");
	for (k = 0; k < t->ncols; k++)
		map[k] = map_col(s, t->cols[k]);
	if (!(msgs = json_array()))
		return WS_ENOMEM;
	for (i = 0; i < b->nchanges; i++) {
		const struct ws_change *c = &b->changes[i];

		if ((long)c->table != ti)
			continue;
		key = json_object();
		cols = json_object();
		mask = 0;
		for (j = 0; key && j < t->npk; j++)
			if (map[t->pk[j]] >= 0)
				json_object_set_new(key, p->cols.v[s->cols[map[t->pk[j]]]].remote,
				    ws_json_from_value(&c->pk[j]));
		memset(pos, 0, sizeof(pos));
		for (k = 0, vi = 0; cols && c->mask && k < t->ncols; k++) {
			if (!ws_mask_test(c->mask, k))
				continue;
			if (map[k] >= 0) {
				if (s->positional && c->op == WS_OP_UPDATE)
					pos[map[k]] = &c->vals[vi];
				else
					json_object_set_new(cols, p->cols.v[s->cols[map[k]]].remote,
					    ws_json_from_value(&c->vals[vi]));
				mask |= (int64_t)1 << map[k];
			}
			vi++;
		}
		if (s->positional && c->op == WS_OP_UPDATE) {
			/* The values in mask order: their names are in the mask. */
			json_decref(cols);
			cols = json_array();
			for (j = 0; cols && j < s->ncols; j++)
				if (pos[j] && json_array_append_new(cols,
				    ws_json_from_value(pos[j]))) {
					json_decref(cols);
					cols = NULL;
				}
		}
		if (!key || !cols) {
			json_decref(key);
			json_decref(cols);
			rc = WS_ENOMEM;
			break;
		}
		if (c->op == WS_OP_INSERT) {
			json_object_update(cols, key);
			m = json_pack("{s:s,s:o}", "mt", "ReplicateAdd", "columns", cols);
			json_decref(key);
		} else if (c->op == WS_OP_UPDATE) {
			if (!mask) {
				json_decref(key);
				json_decref(cols);
				continue;
			}
			m = json_pack("{s:s,s:o,s:I,s:o}", "mt", "ReplicateUpdate", "key", key,
			    "mask", (json_int_t)mask, "columns", cols);
		} else {
			json_decref(cols);
			m = json_pack("{s:s,s:o}", "mt", "ReplicateDel", "key", key);
		}
		if (!m || json_array_append_new(msgs, m)) {
			rc = WS_ENOMEM;
			break;
		}
	}
	nmsg = json_array_size(msgs);
	for (i = 0; rc == 0 && i < nmsg; i++) {
		m = json_array_get(msgs, i);
		/* Only the last change of a batch reaches the batch's usn. */
		if (i + 1 == nmsg)
			json_object_set_new(m, "usn", json_integer((json_int_t)usn));
		rc = rpl_put_msg(&s->out, m);
	}
	json_decref(msgs);
	if (rc)
		return rc;
	s->sent_usn = usn;
	s->unacked += (unsigned)nmsg;
	if (s->unacked >= WS_REPLICATE_WINDOW || sess_pending(s) > OUT_HIGH)
		return STOP_PUMP;
	return 0;
}

/* Live: queue the changes after the session's usn, then a sync. */
int pub_pump(struct psess *s)
{
	struct pumpctx x = {s, 0};
	char err[WS_ERRLEN];
	int rc;

	if (s->state != S_LIVE || s->closing || s->unacked >= WS_REPLICATE_WINDOW ||
	    sess_pending(s) > OUT_HIGH)
		return 0;
	if ((rc = ws_store_seal(s->p->st, NULL, err)))
		return sess_error(s, "ReplicateError", NULL, "%s", err);
	rc = ws_store_changes_since(s->p->st, s->sent_usn, pump_cb, &x, err);
	if (rc == STOP_PUMP)
		return 0;
	if (rc == WS_ERANGE)
		return sess_error(s, "ReplicateError", NULL, "changes after usn %" PRIu64
		    " are gone: start again", s->sent_usn);
	if (rc)
		return sess_error(s, "ReplicateError", NULL, "%s", err);
	if (!s->synced || s->synced_usn != s->sent_usn) {
		s->synced = 1;
		s->synced_usn = s->sent_usn;
		s->unacked++;
		return send_msg(s, json_pack("{s:s,s:I}", "mt", "ReplicateSync", "usn",
		    (json_int_t)s->sent_usn));
	}
	return 0;
}

/* Reply to an upward change; the id is echoed when given. */
static int up_reply(struct psess *s, const char *mt, const json_t *m, const char *error)
{
	json_t *r = json_pack("{s:s}", "mt", mt), *id = json_object_get(m, "id");

	if (r && id)
		json_object_set(r, "id", id);
	if (r && error)
		json_object_set_new(r, "error", json_string(error));
	if (error)
		plog(s->p, "%s: refused %.*s: %s", s->name, (int)(strlen(mt) - 6), mt, error);
	return send_msg(s, r);
}

/*
 * Append to q the statement of an upward change (WS_OP_*) of cols, whose
 * names on_upward() found published: their values bind from ?1 in cols'
 * order, then the key.
 */
static void put_upward(struct pub *p, sqlite3_str *q, int op, const json_t *cols)
{
	const json_t *v;
	const char *name;
	int i, n = 0;

	if (op == WS_OP_DELETE) {
		sqlite3_str_appendf(q, "DELETE FROM \"%w\"", p->o->table);
		rpl_cols_put_where(&p->cols, q, 1);
		return;
	}
	sqlite3_str_appendf(q, "%s\"%w\"%s", op == WS_OP_INSERT ? "INSERT INTO " :
	    "UPDATE ", p->o->table, op == WS_OP_INSERT ? "(" : " SET ");
	json_object_foreach((json_t *)cols, name, v) {
		sqlite3_str_appendf(q, "%s\"%w\"", n ? "," : "",
		    by_remote(p, name, NULL)->name);
		if (op == WS_OP_UPDATE)
			sqlite3_str_appendf(q, " = ?%d", n + 1);
		n++;
	}
	if (op == WS_OP_UPDATE) {
		rpl_cols_put_where(&p->cols, q, n + 1);
		return;
	}
	sqlite3_str_appendall(q, ") VALUES (");
	for (i = 0; i < n; i++)
		sqlite3_str_appendf(q, "%s?%d", i ? "," : "", i + 1);
	sqlite3_str_appendchar(q, 1, ')');
}

/* ReplicateAdd, ReplicateUpdate or ReplicateDel from a replicator. */
static int on_upward(struct psess *s, const json_t *m, int op)
{
	static const char *const res[] = {NULL, "ReplicateAddResult",
	    "ReplicateUpdateResult", "ReplicateDelResult"};
	struct pub *p = s->p;
	const json_t *cols = json_object_get(m, "columns"), *v;
	const char *name;
	char err[WS_ERRLEN] = "", *sql;
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	struct rpl_col *c;
	size_t idx;
	int rc, n = 0;

	if (s->state == S_START)
		return sess_error(s, res[op], NULL, "%s before ReplicateStart", rpl_mt_of(m));
	if (s->right < WS_RIGHT_WRITE)
		return up_reply(s, res[op], m, !s->http ? "this replicator's key may only "
		    "read" : s->who ? "this token may only read" : "an anonymous HTTP "
		    "client may only read");
	if (op == WS_OP_INSERT && !s->add)
		return up_reply(s, res[op], m, "this session has no add rights");
	if (op == WS_OP_DELETE && !s->del)
		return up_reply(s, res[op], m, "this session has no delete rights");
	if (op != WS_OP_DELETE && (!json_is_object(cols) || !json_object_size(cols)))
		return up_reply(s, res[op], m, "\"columns\" must be a non-empty object");
	if (op != WS_OP_DELETE)
		json_object_foreach((json_t *)cols, name, v) {
			if (!(c = by_remote(p, name, &idx)) || sess_col(s, idx) < 0) {
				snprintf(err, sizeof(err), "no column '%s'", name);
				goto refuse;
			}
			if (op == WS_OP_UPDATE && !c->update) {
				snprintf(err, sizeof(err), "column '%s' may not be updated",
				    name);
				goto refuse;
			}
		}
	q = sqlite3_str_new(p->db);
	put_upward(p, q, op, cols);
	if ((rc = sto_str_finish(q, &sql, err)))
		return rc;
	rc = rpl_prepare(p->db, sql, &st, err);
	sqlite3_free(sql);
	if (rc)
		goto refuse;
	if (op != WS_OP_DELETE)
		json_object_foreach((json_t *)cols, name, v)
			if ((rc = rpl_bind_json(st, ++n, v, &p->tmp, name, err)))
				goto refuse;
	if (op != WS_OP_INSERT && (rc = rpl_cols_bind_key(&p->cols, st, n + 1,
	    json_object_get(m, "key"), &p->tmp, RPL_KEY_FROM_REPLICATOR, err)))
		goto refuse;
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		snprintf(err, sizeof(err), "%s", sqlite3_errmsg(p->db));
		goto refuse;
	}
	if (op != WS_OP_INSERT && sqlite3_changes(p->db) == 0) {
		snprintf(err, sizeof(err), "no such row");
		goto refuse;
	}
	sqlite3_finalize(st);
	p->dirty = 1;
	return up_reply(s, res[op], m, NULL);
refuse:
	sqlite3_finalize(st);
	return up_reply(s, res[op], m, err[0] ? err : "refused");
}

/* One message from a replicator. */
static int handle(struct psess *s, const json_t *m)
{
	const char *mt = rpl_mt_of(m);

	s->last_ms = ws_now_ms();
	if (!s->http && !s->peer && s->conn.kind == WS_CONN_TCP && s->p->o->key &&
	    !s->p->o->insecure)
		return sess_error(s, strcmp(mt, "ReplicateStart") == 0 ?
		    "ReplicateStartResult" : "ReplicateError", "key", "this publisher "
		    "takes authenticated sessions only: pull with --key");
	if (strcmp(mt, "ReplicateStart") == 0)
		return on_start(s, m);
	if (strcmp(mt, "ReplicateNext") == 0)
		return on_next(s, m);
	if (strcmp(mt, "ReplicateAdd") == 0)
		return on_upward(s, m, WS_OP_INSERT);
	if (strcmp(mt, "ReplicateUpdate") == 0)
		return on_upward(s, m, WS_OP_UPDATE);
	if (strcmp(mt, "ReplicateDel") == 0)
		return on_upward(s, m, WS_OP_DELETE);
	if (strcmp(mt, "ReplicateAddResult") == 0 || strcmp(mt, "ReplicateUpdateResult") == 0 ||
	    strcmp(mt, "ReplicateDelResult") == 0 || strcmp(mt, "ReplicateSyncResult") == 0) {
		if (json_object_get(m, "error"))
			plog(s->p, "%s: the replicator refused a change: %s", s->name,
			    json_string_value(json_object_get(m, "error")));
		{
			/* "n": one result may answer several messages. */
			const json_t *jn = json_object_get(m, "n");
			json_int_t k = json_is_integer(jn) && json_integer_value(jn) > 0 ?
			    json_integer_value(jn) : 1;

			s->unacked = (json_int_t)s->unacked > k ? s->unacked - (unsigned)k : 0;
		}
		return pub_pump(s);
	}
	return sess_error(s, "ReplicateError", NULL, "unknown message type '%s'", mt);
}

/* Feed the complete lines of s->in to handle(). */
int pub_feed_lines(struct psess *s)
{
	const char *line;
	char err[WS_ERRLEN];
	json_t *m;
	size_t n;
	int rc = 0;

	while (!s->closing && rpl_next_line(&s->in, &s->in_off, &line, &n)) {
		if (n == 0 || (n == 1 && line[0] == '\r'))
			continue;
		if (ws_replicate_parse_msg(line, n, &m, err))
			return sess_error(s, "ReplicateError", NULL, "%s", err);
		rc = handle(s, m);
		json_decref(m);
		if (rc)
			return rc;
	}
	rpl_compact(&s->in, &s->in_off);
	if (s->in.len > WS_REPLICATE_MAX_LINE)
		return sess_error(s, "ReplicateError", NULL, "a message longer than %u bytes",
		    WS_REPLICATE_MAX_LINE);
	return 0;
}

/* --- stream sessions ------------------------------------------------------- */

/* A stream session must start (ReplicateStart) within this long. */
#define PUB_START_MS 10000u

/* The stream sessions open now (HTTP ones have libmicrohttpd's limits). */
static size_t stream_sessions(const struct pub *p)
{
	const struct psess *s;
	size_t n = 0;

	for (s = p->sess; s; s = s->next)
		n += !s->http;
	return n;
}

struct psess *pub_sess_new(struct pub *p, int http, const struct ws_conn *c)
{
	struct psess *s = calloc(1, sizeof(*s));
	uint8_t rnd[16];

	if (!s)
		return NULL;
	s->p = p;
	s->http = http;
	s->conn.rfd = s->conn.wfd = -1;
	if (c)
		s->conn = *c;
	s->last_ms = s->since_ms = ws_now_ms();
	s->right = WS_RIGHT_CREATE;
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(s->id, sizeof(s->id), rnd, sizeof(rnd));
	snprintf(s->name, sizeof(s->name), "%s", http ? s->id : c ? c->name : "?");
	s->next = p->sess;
	p->sess = s;
	return s;
}

void pub_sess_unlink(struct pub *p, struct psess *s)
{
	struct psess **pp;

	for (pp = &p->sess; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pub_http_forget(p, s);
	if (!s->http && p->loop) {
		ws_loop_del_fd(p->loop, s->conn.rfd, WS_LOOP_READ | WS_LOOP_WRITE);
		ws_loop_del_fd(p->loop, s->conn.wfd, WS_LOOP_READ | WS_LOOP_WRITE);
	}
	psess_free(s);
}

/* The HTTP side's sessions (struct pub_sess_ops). */
static struct psess *http_open(struct pub *p)
{
	return pub_sess_new(p, 1, NULL);
}

static int http_run(struct psess *s)
{
	int rc = pub_feed_lines(s);

	return rc ? rc : pub_pump(s);
}

static const struct pub_sess_ops http_sess_ops = {http_open, pub_sess_unlink, http_run};

/* The handshake's check of a replicator's key: listed, with a right on the table. */
static int pub_check_key(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	struct psess *s = cd;
	const struct ws_replicate_pub_opts *o = s->p->o;
	const struct ws_authkey *ak = ws_authkeys_find(o->authkeys, pk);
	char text[WS_KEY_TEXTMAX];

	ws_key_text(pk, text);
	if (!ak)
		return ws_error(err, WS_EPERM, "key %s is not authorized on this "
		    "publisher", text);
	if ((s->right = ws_authkey_right(ak, o->table)) == WS_RIGHT_NONE)
		return ws_error(err, WS_EPERM, "key %s has no rights on table '%s'", text,
		    o->table);
	plog(s->p, "%s: key %s%s%s%s may %s", s->name, text, ak->comment[0] ? " (" : "",
	    ak->comment, ak->comment[0] ? ")" : "", s->right == WS_RIGHT_READ ? "read" :
	    "read and write");
	return 0;
}

/* A frame of a framed session: its message goes to the lines read. */
static int pub_frame(struct ws_peer *pp, const struct ws_frame *f, void *cd)
{
	struct psess *s = cd;
	char *err = s->p->err;

	if (!pp->sec)
		return ws_error(err, WS_EPERM, "a framed session must start with the "
		    "handshake (a plain session speaks JSON lines)");
	if (f->type == WS_FRAME_MESSAGE)
		return rpl_message_line(&s->in, f, err);
	if (f->type == WS_FRAME_HEARTBEAT)
		return 0;
	return ws_error(err, WS_ECORRUPT, "unexpected %s frame from the replicator",
	    ws_frame_type_name(f->type) ? ws_frame_type_name(f->type) : "unknown");
}

/*
 * The first bytes of a stream session are the wsync preamble: frame it,
 * secure when the publisher has a key.  A publisher without one says so,
 * in a plain error frame, and ends the session.
 */
static int make_framed(struct psess *s)
{
	struct pub *p = s->p;
	int rc;

	if (!(s->peer = malloc(sizeof(*s->peer))))
		return WS_ENOMEM;
	ws_peer_init(s->peer, &s->conn, SECURE_MAX_FRAME, 0);
	if (!p->o->key) {
		plog(p, "%s: a secure session, but this publisher has no key", s->name);
		s->closing = 1;
		return ws_peer_send_error(s->peer, 0, WS_EPERM, "this publisher has no "
		    "key: it takes plain sessions only");
	}
	if ((rc = ws_peer_secure(s->peer, 0, p->o->key, pub_check_key, s)))
		return rc;
	return 0;
}

/* Stream session: read what is there and handle it.  <0 ends it. */
static int stream_read(struct psess *s)
{
	struct ws_buf *b = s->peer ? &s->raw : &s->in;
	ssize_t r;
	int rc;

	if (ws_buf_reserve(b, 65536))
		return WS_ENOMEM;
	r = read(s->conn.rfd, b->p + b->len, b->cap - b->len);
	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : WS_EIO;
	if (r == 0) {
		if (s->peer && s->peer->sec && !ws_secure_ready(s->peer))
			plog(s->p, "%s: closed the connection during the handshake", s->name);
		return WS_ETRUNC;
	}
	b->len += (size_t)r;
	if (!s->sniffed) {
		s->sniffed = 1;
		if ((uint8_t)b->p[0] == (uint8_t)WS_FRAME_MAGIC[0]) {
			/* What was read is the start of a framed stream. */
			if ((rc = ws_buf_append(&s->raw, b->p, b->len)))
				return rc;
			s->in.len = 0;
			if ((rc = make_framed(s)) || s->closing)
				return rc;
			b = &s->raw;
		}
	}
	if (s->peer) {
		s->p->err[0] = 0;
		rc = rpl_frames_feed(s->peer, s->raw.p, s->raw.len, pub_frame, s, s->p->err);
		s->raw.len = 0;
		if (rc == WS_ENOMEM)
			return rc;
		if (rc) {
			/* Say why (a refused key was told in the handshake). */
			plog(s->p, "%s: %s", s->name, s->p->err[0] ? s->p->err :
			    ws_strerror(rc));
			/* Unable to queue the error frame, the session ends now. */
			if ((!s->peer->sec || ws_secure_ready(s->peer)) &&
			    (rc = ws_peer_send_error(s->peer, 0, rc, s->p->err)))
				return rc;
			s->closing = 1;
			return 0;
		}
	}
	rc = pub_feed_lines(s);
	return rc;
}

static int stream_write(struct psess *s)
{
	ssize_t w;

	if (s->peer) {
		if (rpl_frame_lines(s->peer, &s->out, &s->out_off) ||
		    ws_peer_flush(s->peer, NULL))
			return WS_EIO;
		return 0;
	}
	while (s->out_off < s->out.len) {
		w = write(s->conn.wfd, s->out.p + s->out_off, s->out.len - s->out_off);
		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : WS_EIO;
		s->out_off += (size_t)w;
	}
	s->out.len = s->out_off = 0;
	return 0;
}


/* --- the publisher's loop --------------------------------------------------- */

/*
 * The publisher runs on the event loop (loop.h).  File events: the
 * listening sockets accept, the inotify watch of the database marks the
 * table changed, libmicrohttpd's descriptor only ends the wait, and each
 * stream session reads and writes.  Everything else is the hook before
 * each wait, pub_before(): first what follows a wait (libmicrohttpd's
 * turn, the pump, the streams' writes), then what precedes the next one
 * (the sessions that are over go, the fds to watch, the most-wait).  The
 * most-wait is POLL_MS (POLL_UNWATCHED_MS without inotify), lowered to
 * libmicrohttpd's next deadline: deadlines and idle ends are looked at
 * that often.
 */

static void pump_all(struct pub *p)
{
	struct psess *s, *nx;

	for (s = p->sess; s; s = nx) {
		nx = s->next;
		if (pub_pump(s) < 0)
			s->dead = 1;
	}
	p->dirty = 0;
}

/* A listening socket is ready: take one connection, up to the cap. */
static void on_listen(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct pub *p = cd;
	struct psess *s;
	struct ws_conn c;

	(void)l;
	(void)mask;
	if (ws_transport_accept(fd, &c, NULL) != 0)
		return;
	/* Bounded before anyone is known: a cap on sessions, as the hub has
	 * (wsync-serve(1)). */
	if (stream_sessions(p) >= p->max_sessions) {
		ws_conn_close(&c);
		if (ws_now_ms() - p->refused_ms >= REFUSED_LOG_MS) {
			p->refused_ms = ws_now_ms();
			plog(p, "refusing connections: %zu sessions already",
			    p->max_sessions);
		}
	} else if (ws_fd_nonblock(c.rfd) || !(s = pub_sess_new(p, 0, &c))) {
		ws_conn_close(&c);
	} else {
		plog(p, "%s: session started", s->name);
	}
}

/* The database was written: every session has something to pump. */
static void on_db_change(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct pub *p = cd;
	char buf[4096];

	(void)l;
	(void)mask;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	p->dirty = 1;
}

/* libmicrohttpd has work: it runs after the wait, in pub_before(). */
static void on_http(struct ws_loop *l, int fd, void *cd, int mask)
{
	(void)l;
	(void)fd;
	(void)cd;
	(void)mask;
}

/* A stream session's fd is ready: read, write, or both. */
static void on_stream(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct psess *s = cd;
	int rc;

	(void)l;
	if (s->dead)
		return;
	if (fd == s->conn.rfd && !s->closing && (mask & WS_LOOP_READ) &&
	    (rc = stream_read(s)) < 0) {
		if (rc != WS_ETRUNC)
			plog(s->p, "%s: %s", s->name, ws_strerror(rc));
		else
			plog(s->p, "%s: session ended", s->name);
		s->dead = 1;
		return;
	}
	if ((mask & WS_LOOP_WRITE) && fd == s->conn.wfd && stream_write(s) < 0)
		s->dead = 1;
}

/* After a wait: libmicrohttpd's turn, the pump, and the streams' writes. */
static void after_wait(struct pub *p)
{
	struct psess *s;

	if (p->ifd < 0)
		p->dirty = 1;
	/* Its descriptor readable or its timeout up: libmicrohttpd's turn. */
	ws_http_run(&p->http);
	if (p->dirty)
		pump_all(p);
	if (p->http.mhd)
		pub_http_wake(p, 0);
	/* Streams: write what is queued without waiting for the loop. */
	for (s = p->sess; s; s = s->next)
		if (!s->http && !s->dead && sess_pending(s) && stream_write(s) < 0)
			s->dead = 1;
}

/*
 * End the sessions that are over: 1 when the --stdio session was one of
 * them (the publisher ends with it).  A stream that has not started
 * within PUB_START_MS (no ReplicateStart: on a keyed publisher, no
 * finished handshake either) is over too.
 */
static int sweep(struct pub *p)
{
	struct psess *s, *nx;

	for (s = p->sess; s; s = nx) {
		nx = s->next;
		if (!s->http && !s->dead && s->state == S_START && s->conn.rfd != 0 &&
		    ws_now_ms() - s->since_ms > PUB_START_MS) {
			plog(p, "%s: no ReplicateStart within %u s: dropped", s->name,
			    PUB_START_MS / 1000);
			s->dead = 1;
		}
		if (s->dead || (s->closing && !s->http && !sess_pending(s)) ||
		    (s->http && ws_now_ms() - s->last_ms > HTTP_IDLE_MS)) {
			if (!s->http && !s->dead)
				plog(p, "%s: session ended", s->name);
			if (s->conn.rfd == 0 && !s->http) {
				pub_sess_unlink(p, s);
				return 1; /* --stdio: its one session is over */
			}
			pub_sess_unlink(p, s);
		}
	}
	return 0;
}

/* Watch each stream for input unless it is closing, for output room
 * while it has something to send. */
static int watch_streams(struct pub *p)
{
	struct psess *s;
	int rc;

	for (s = p->sess; s; s = s->next) {
		if (s->http)
			continue;
		if (s->closing)
			ws_loop_del_fd(p->loop, s->conn.rfd, WS_LOOP_READ);
		else if ((rc = ws_loop_add_fd(p->loop, s->conn.rfd, WS_LOOP_READ,
		    on_stream, s)))
			return rc;
		if (!sess_pending(s))
			ws_loop_del_fd(p->loop, s->conn.wfd, WS_LOOP_WRITE);
		else if ((rc = ws_loop_add_fd(p->loop, s->conn.wfd, WS_LOOP_WRITE,
		    on_stream, s)))
			return rc;
	}
	return 0;
}

static void pub_before(struct ws_loop *l, void *cd)
{
	struct pub *p = cd;
	int timeout;

	if (p->o->stop && *p->o->stop) {
		ws_loop_stop(l);
		return;
	}
	if (p->waited)
		after_wait(p);
	p->waited = 1;
	if (p->o->stop && *p->o->stop) {
		ws_loop_stop(l);
		return;
	}
	if (sweep(p) || (p->rc = watch_streams(p))) {
		ws_loop_stop(l);
		return;
	}
	timeout = p->ifd < 0 ? POLL_UNWATCHED_MS : POLL_MS;
	if (p->http.mhd) {
		pub_http_wake(p, 0);
		pub_http_timeout(p, &timeout);
	}
	ws_loop_set_max_wait(l, timeout);
}

int ws_replicate_publish(const struct ws_replicate_pub_opts *o, char *err)
{
	struct pub p;
	const char **bound = NULL;
	char (*names)[WS_CONN_NAMELEN] = NULL;
	char hname[WS_CONN_NAMELEN] = "";
	int *lfd = NULL, hfd = -1, mfd = -1, rc;
	size_t i, nl = 0;
	uint8_t g[WS_GUID_LEN];
	struct ws_conn c;
	char buf[64];

	memset(&p, 0, sizeof(p));
	p.o = o;
	p.ifd = -1;
	p.max_body = o->http_max_body ? o->http_max_body : WS_REPLICATE_HTTP_MAX_BODY;
	p.max_sessions = ws_hub_default_max_sessions();
	if (!o->db || !o->table)
		return ws_error(err, WS_EINVAL, "publish needs a database and a table");
	/* The keys policy (transport.h), as ws_hub_run() keeps it: a stream
	 * address other than unix: is TCP, whose sessions are keyed unless
	 * plain ones are allowed.  Before the database is touched. */
	for (i = 0; i < o->nlisten; i++)
		if ((rc = ws_transport_check_keys(o->listen[i], 1, o->key != NULL,
		    o->insecure, err)))
			return rc;
	/* The table is in the database: a missing file is a missing table,
	 * and no reason to create the file. */
	if (access(o->db, F_OK) != 0)
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : WS_EIO,
		    "cannot open '%s': %s", o->db, ws_errno_text(errno, buf));
	if ((rc = ws_loop_new(&p.loop, err)))
		return rc;
	ws_loop_set_before(p.loop, pub_before, &p);
	/* HTTP first: a refused address or certificate leaves the database be. */
	if (o->http) {
		if ((rc = ws_transport_listen(o->http, &hfd, hname, err)))
			goto out;
		if ((rc = ws_fd_nonblock(hfd))) {
			rc = ws_error(err, rc, "cannot listen on '%s': %s", o->http,
			    ws_errno_text(errno, buf));
			goto out;
		}
		p.sops = &http_sess_ops;
		if ((rc = pub_http_start(&p, hfd, hname, err)))
			goto out;
		hfd = -1; /* libmicrohttpd's now */
		if ((mfd = ws_http_fd(&p.http)) < 0) {
			rc = ws_error(err, WS_EIO, "cannot serve HTTP: no epoll descriptor");
			goto out;
		}
		if ((rc = ws_loop_add_fd(p.loop, mfd, WS_LOOP_READ, on_http, &p)))
			goto out;
	}
	if ((rc = ws_store_open(&p.st, o->db, WSID, WS_STORE_CREATE, err)) ||
	    (rc = rpl_db_open(o->db, SQLITE_OPEN_READWRITE, &p.db, err)))
		goto out;
	if ((rc = pub_columns(&p, err)) ||
	    (rc = ws_store_track(p.st, &o->table, 1, err)) ||
	    (rc = ws_store_new_guid(p.st, err)) ||
	    (rc = ws_store_seal(p.st, NULL, err)))
		goto out;
	if (o->compact) {
		struct ws_vclock vc = WS_VCLOCK_INIT;
		uint64_t dropped = 0;

		/* Everything up to the store's own clock: the whole log. */
		rc = ws_store_clock(p.st, &vc, err);
		if (rc == 0)
			rc = ws_store_gc(p.st, &vc, &dropped, err);
		ws_vclock_release(&vc);
		if (rc)
			goto out;
		plog(&p, "compacted the change log: %" PRIu64 " entries collected", dropped);
	}
	ws_store_guid(p.st, g);
	rpl_guid_hex(g, p.guid);
	if (!(lfd = calloc(o->nlisten + 1, sizeof(*lfd))) ||
	    !(bound = calloc(o->nlisten + 2, sizeof(*bound))) ||
	    !(names = calloc(o->nlisten + 2, sizeof(*names)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < o->nlisten; i++)
		lfd[i] = -1;
	for (i = 0; i < o->nlisten; i++) {
		if ((rc = ws_transport_listen(o->listen[i], &lfd[i], names[nl], err)))
			goto out;
		if ((rc = ws_fd_nonblock(lfd[i]))) {
			rc = ws_error(err, rc, "cannot listen on '%s': %s", o->listen[i],
			    ws_errno_text(errno, buf));
			goto out;
		}
		if ((rc = ws_loop_add_fd(p.loop, lfd[i], WS_LOOP_READ, on_listen, &p)))
			goto out;
		bound[nl] = names[nl];
		nl++;
	}
	if (o->http) {
		snprintf(names[nl], sizeof(names[nl]), "%s", hname);
		bound[nl] = names[nl];
		nl++;
	}
	if (o->use_stdio) {
		memset(&c, 0, sizeof(c));
		c.rfd = 0;
		c.wfd = 1;
		snprintf(c.name, sizeof(c.name), "stdio");
		if (ws_fd_nonblock(0) || ws_fd_nonblock(1) || !pub_sess_new(&p, 0, &c)) {
			rc = ws_error(err, WS_EIO, "cannot set up stdin and stdout");
			goto out;
		}
	}
	if ((p.ifd = rpl_watch_db(o->db)) >= 0 &&
	    (rc = ws_loop_add_fd(p.loop, p.ifd, WS_LOOP_READ, on_db_change, &p)))
		goto out;
	if (o->ready)
		o->ready(o->log_cd, bound, nl);
	if ((rc = ws_loop_run(p.loop, err)) == 0)
		rc = p.rc;
out:
	pub_http_stop(&p);
	while (p.sess)
		pub_sess_unlink(&p, p.sess);
	ws_loop_free(p.loop);
	p.loop = NULL;
	for (i = 0; lfd && i < o->nlisten; i++)
		if (lfd[i] >= 0)
			close(lfd[i]);
	if (hfd >= 0)
		close(hfd);
	if (p.ifd >= 0)
		close(p.ifd);
	free(lfd);
	free(bound);
	free(names);
	rpl_cols_release(&p.cols);
	ws_buf_release(&p.tmp);
	sqlite3_close(p.db);
	ws_store_close(p.st);
	return rc;
}
