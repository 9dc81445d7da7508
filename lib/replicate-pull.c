/* SPDX-License-Identifier: MIT */
/*
 * replicate-pull.c - the replicator (replicate.h): a client that writes
 * into its own table, keeping the publisher's guid and usn beside it in
 * wsync_replica.  A session sets the table up (rep_setup()), replicates
 * in full or from its usn (initial()), then stays live, sending the
 * local changes its rights let go up (push_local()); ws_replicate_pull()
 * runs sessions, and with --follow reconnects.  A full pass leaves guid
 * NULL in wsync_replica until it ends, so a killed full pass starts
 * again.
 *
 * The outbox, wsync_replica_out, is a capture of its own, not the
 * store's (store.h): the replicator's database is the application's, and
 * no working set.  The store's capture would make it one (its wsync_*
 * tables, a site id, a guid, a log of every tracked table with a usn
 * per change, kept until a hub's GC), where the outbox needs only the
 * keys and columns of the rows written here that are still to go up, by
 * whatever connection wrote them, and forgets each once the publisher
 * answered.  The triggers are the replicator's own (rep_setup()),
 * made as the rights allow, and the changes applied from the publisher
 * are kept out of it (wsync_replica_applying).
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "replicate-int.h"
#include "wsync/escape.h"
#include "wsync/json.h"

/* A stream session looks at stop and at the local changes this often. */
#define STREAM_POLL_MS 1000
/* The long poll over HTTP: a run that ends once up to date, ... */
#define HTTP_POLL_MS 10000
/* ... a follower with local changes or confirmations to look for, ... */
#define HTTP_POLL_BUSY_MS 2000
/* ... and a follower that only receives. */
#define HTTP_POLL_IDLE_MS 25000
/* An HTTP long poll while waiting for one message (recv_one()). */
#define HTTP_RECV_MS 60000
/* A publisher silent this long (not following) ends the session. */
#define SILENCE_MS 120000
/* Live messages applied in one transaction at most. */
#define LIVE_GROUP 4096
/* Local changes sent up in one go at most. */
#define PUSH_MAX 256
/* Reconnecting: the first wait, the longest, and how long a session
 * must have lasted for the wait to start over. */
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define BACKOFF_RESET_MS 10000

static const char meta_sql[] =
    "CREATE TABLE IF NOT EXISTS wsync_replica(local_table TEXT PRIMARY KEY,"
    " source TEXT, guid TEXT, usn INTEGER NOT NULL, updated TEXT, mapping TEXT);"
    "CREATE TABLE IF NOT EXISTS wsync_replica_full(local_table TEXT NOT NULL,"
    " k TEXT NOT NULL, PRIMARY KEY(local_table, k)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS wsync_replica_deleted(local_table TEXT NOT NULL,"
    " k TEXT NOT NULL, usn INTEGER, state TEXT NOT NULL DEFAULT 'deleted'"
    " CHECK (state IN ('deleted', 'confirmed')), PRIMARY KEY(local_table, k))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS wsync_replica_applying(x);"
    "CREATE TABLE IF NOT EXISTS wsync_replica_out(seq INTEGER PRIMARY KEY,"
    " local_table TEXT NOT NULL, op TEXT NOT NULL, k TEXT NOT NULL,"
    " mask INTEGER NOT NULL DEFAULT 0);";

static int strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The columns a replicator asks for, as text that does not depend on the
 * order of the options: "*" for every column, else the sorted
 * "REMOTE=LOCAL" of each -c and "REMOTE=CHILD:REF" of each --array, one
 * a line.  Update rights are left out: they need no refill.  Kept in
 * wsync_replica.mapping; another mapping forces a full replication, so
 * new columns are filled.  malloc'd; NULL when out of memory.
 */
static char *mapping_of(const struct ws_replicate_pull_opts *o)
{
	struct ws_buf b = WS_BUF_INIT;
	char **v;
	size_t i, n = o->ncols + o->narrays;
	int rc = 0;

	if (!(v = calloc(n + 1, sizeof(*v))))
		return NULL;
	for (i = 0; rc == 0 && i < o->ncols; i++)
		rc = asprintf(&v[i], "%s=%s", o->cols[i].name, o->cols[i].other) < 0;
	for (i = 0; rc == 0 && i < o->narrays; i++)
		rc = asprintf(&v[o->ncols + i], "[]%s=%s:%s", o->arrays[i].remote,
		    o->arrays[i].child, o->arrays[i].ref) < 0;
	if (rc == 0) {
		qsort(v, n, sizeof(*v), strcmp_p);
		if (!o->ncols)
			rc = ws_buf_printf(&b, "*\n");
		for (i = 0; rc == 0 && i < n; i++)
			rc = ws_buf_printf(&b, "%s\n", v[i]);
		if (rc == 0)
			rc = ws_buf_putc(&b, '\0');
	}
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	if (rc) {
		ws_buf_release(&b);
		return NULL;
	}
	return (char *)b.p;
}

/*
 * Append the key of a row as the text wsync_replica_out keeps, a JSON
 * array built with SQL alone (the application's own connection runs the
 * capture triggers): json_array() cannot hold a blob and writes reals
 * with 15 digits, so a REAL is kept as its exact SQL literal,
 * {"q":"<quote()>"}, and a BLOB as {"x":"<hex()>"}; key_value() reads
 * them back.  The key columns are row.COLUMN, or, when row is NULL,
 * parameters ?1..?nkey.
 */
static void put_key_text(struct rep *x, sqlite3_str *q, const char *row)
{
	size_t i;

	sqlite3_str_appendall(q, "'['");
	for (i = 0; i < x->cols.nkey; i++) {
		const char *c = x->cols.v[x->cols.keys[i]].name;
		int k;

		for (k = 0; k < 4; k++) {
			static const char *const pre[] = {"||CASE typeof(",
			    ") WHEN 'real' THEN '{\"q\":\"'||quote(",
			    ")||'\"}' WHEN 'blob' THEN '{\"x\":\"'||hex(",
			    ")||'\"}' ELSE json_quote("};

			sqlite3_str_appendf(q, "%s%s", k == 0 && i ? "||','" : "", pre[k]);
			if (row)
				sqlite3_str_appendf(q, "%s.\"%w\"", row, c);
			else
				sqlite3_str_appendf(q, "?%d", (int)i + 1);
		}
		sqlite3_str_appendall(q, ") END");
	}
	sqlite3_str_appendall(q, "||']'");
}

/*
 * Append the key columns to q, each name after prefix ("" or "t."): as a
 * list, "k1","k2", or, with quoted, as the text that wsync_replica_full
 * keeps, quote("k1")||','||quote("k2").
 */
static void put_keys(struct rep *x, sqlite3_str *q, int quoted, const char *prefix)
{
	size_t i;

	for (i = 0; i < x->cols.nkey; i++)
		sqlite3_str_appendf(q, "%s%s%s\"%w\"%s", !i ? "" : quoted ? "||','||" : ",",
		    quoted ? "quote(" : "", prefix, x->cols.v[x->cols.keys[i]].name,
		    quoted ? ")" : "");
}

/*
 * Append the quoted name of a capture trigger of table (which 0 insert,
 * 1 update, 2 delete), or (3) of the index on a child table's reference.
 */
static void trig_name(sqlite3_str *q, const char *table, size_t which)
{
	static const char *const sfx[] = {"ins", "upd", "del", "ref"};

	/* Only table can hold a '"', so %w of it alone quotes the whole name. */
	sqlite3_str_appendf(q, "\"wsync_replica_%w_%s\"", table, sfx[which]);
}

/* The columns the publisher sends, mapped to local names; the tables. */
static int rep_setup(struct rep *x, const json_t *sr)
{
	const struct ws_replicate_pull_opts *o = x->o;
	const json_t *cols = json_object_get(sr, "columns"), *e;
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	char *sql;
	size_t i, j, n = json_array_size(cols);
	int rc = 0, exists = 0, found;

	if (!json_is_array(cols) || n == 0 || n > RPL_MAX_COLS)
		return ws_error(x->err, WS_ECORRUPT, "ReplicateStartResult without "
		    "1 to %d columns", RPL_MAX_COLS);
	if (!(x->cols.v = calloc(n, sizeof(*x->cols.v))) ||
	    !(x->child = calloc(o->narrays + 1, sizeof(*x->child))))
		return WS_ENOMEM;
	json_array_foreach(cols, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *type = json_string_value(json_object_get(e, "type"));
		const json_t *jk = json_object_get(e, "key");
		const struct ws_replicate_col *spec = NULL;
		struct rpl_col *c = &x->cols.v[i];
		int upd = rpl_get_bool(e, "update");

		if (!name || !rpl_name_ok(name) || upd < 0 || (jk && !json_is_integer(jk) &&
		    !json_is_boolean(jk)))
			return ws_error(x->err, WS_ECORRUPT, "a bad column in "
			    "ReplicateStartResult");
		if (type && !rpl_type_ok(type))
			return ws_error(x->err, WS_ECORRUPT, "ReplicateStartResult gives "
			    "column '%s' a type that is not an SQL type name", name);
		for (j = 0; j < o->ncols; j++)
			if (strcmp(o->cols[j].name, name) == 0)
				spec = &o->cols[j];
		x->cols.n = i + 1;
		c->remote = strdup(name);
		c->name = strdup(spec ? spec->other : name);
		c->type = strdup(type ? type : "");
		if (!c->remote || !c->name || !c->type)
			return WS_ENOMEM;
		c->key = json_is_integer(jk) ? (int)json_integer_value(jk) :
		    json_is_true(jk) ? (int)i + 1 : 0;
		c->update = spec && spec->update;
		if (c->update && !upd)
			return ws_error(x->err, WS_EPERM, "the publisher does not let "
			    "replicators update column '%s'", name);
		for (j = 0; j < o->narrays; j++)
			if (strcmp(o->arrays[j].remote, name) == 0)
				c->array = (int)j + 1;
		if (c->array && c->key)
			return ws_error(x->err, WS_ESCHEMA, "key column '%s' cannot be an "
			    "array column", name);
	}
	rpl_cols_order_keys(&x->cols);
	if (x->cols.nkey == 0)
		return ws_error(x->err, WS_ECORRUPT, "the publisher names no key column");
	for (j = 0; j < o->ncols + o->narrays; j++) {
		const char *want = j < o->ncols ? o->cols[j].name : o->arrays[j - o->ncols].remote;

		for (i = 0, found = 0; i < n; i++)
			found |= strcmp(x->cols.v[i].remote, want) == 0;
		if (!found)
			return ws_error(x->err, WS_ESCHEMA, "the publisher does not publish "
			    "column '%s'", want);
	}
	if (o->narrays && x->cols.nkey != 1)
		return ws_error(x->err, WS_ESCHEMA, "array columns need a key of one column");
	if ((rc = rpl_exec(x->db, "BEGIN IMMEDIATE", x->err)))
		return rc;
	if ((rc = rpl_table_info(x->db, o->table, &st, x->err)))
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(st, 1);

		exists = 1;
		for (i = 0; i < n; i++)
			if (have && strcasecmp(have, x->cols.v[i].name) == 0)
				x->cols.v[i].array = x->cols.v[i].array ? x->cols.v[i].array : -1;
	}
	sqlite3_finalize(st);
	st = NULL;
	q = sqlite3_str_new(x->db);
	if (!exists) {
		sqlite3_str_appendf(q, "CREATE TABLE \"%w\"(", o->table);
		for (i = 0, j = 0; i < n; i++) {
			if (x->cols.v[i].array)
				continue;
			sqlite3_str_appendf(q, "%s\"%w\"", j++ ? "," : "", x->cols.v[i].name);
			if (x->cols.v[i].type[0])
				sqlite3_str_appendf(q, " %s", x->cols.v[i].type);
		}
		sqlite3_str_appendall(q, ", PRIMARY KEY(");
		put_keys(x, q, 0, "");
		sqlite3_str_appendall(q, "));");
	} else {
		/* ADD COLUMN of a column that is there fails: each on its own,
		 * its failure ignored. */
		for (i = 0; i < n; i++) {
			sqlite3_str *a;
			char *add;

			if (x->cols.v[i].array)
				continue;
			a = sqlite3_str_new(x->db);
			sqlite3_str_appendf(a, "ALTER TABLE \"%w\" ADD COLUMN \"%w\" %s",
			    o->table, x->cols.v[i].name, x->cols.v[i].type);
			if ((rc = sto_str_finish(a, &add, x->err))) {
				sqlite3_free(sqlite3_str_finish(q));
				goto fail;
			}
			sqlite3_exec(x->db, add, NULL, NULL, NULL);
			sqlite3_free(add);
		}
	}
	/* -1 marked the columns the table has: they are plain columns. */
	for (i = 0; i < n; i++)
		if (x->cols.v[i].array < 0)
			x->cols.v[i].array = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < o->narrays; j++)
			if (strcmp(o->arrays[j].remote, x->cols.v[i].remote) == 0)
				x->cols.v[i].array = (int)j + 1;
	for (j = 0; j < o->narrays; j++) {
		sqlite3_str_appendf(q, "CREATE TABLE IF NOT EXISTS \"%w\"(\"%w\");"
		    "CREATE INDEX IF NOT EXISTS ", o->arrays[j].child, o->arrays[j].ref);
		trig_name(q, o->arrays[j].child, 3);
		sqlite3_str_appendf(q, " ON \"%w\"(\"%w\");", o->arrays[j].child,
		    o->arrays[j].ref);
	}
	/* The capture of local changes that go up, as the rights allow. */
	for (j = 0; j < 3; j++) {
		sqlite3_str_appendall(q, "DROP TRIGGER IF EXISTS ");
		trig_name(q, o->table, j);
		sqlite3_str_appendchar(q, 1, ';');
	}
	if ((rc = sto_str_finish(q, &sql, x->err)))
		goto fail;
	rc = rpl_exec(x->db, sql, x->err);
	sqlite3_free(sql);
	if (rc)
		goto fail;
	q = sqlite3_str_new(x->db);
	for (j = 0; j < 3; j++) {
		static const char *const ev[] = {"INSERT", "UPDATE", "DELETE"};
		const char *row = j == 2 ? "OLD" : "NEW";
		int any = 0;

		if ((j == 0 && !o->add) || (j == 2 && !o->del))
			continue;
		for (i = 0; i < n; i++)
			any |= x->cols.v[i].update;
		if (j == 1 && !any)
			continue;
		sqlite3_str_appendall(q, "CREATE TRIGGER ");
		trig_name(q, o->table, j);
		sqlite3_str_appendf(q, " AFTER %s ON \"%w\" WHEN NOT EXISTS (SELECT 1 FROM "
		    "wsync_replica_applying)", ev[j], o->table);
		if (j == 1) {
			sqlite3_str_appendall(q, " AND (0");
			for (i = 0; i < n; i++)
				if (x->cols.v[i].update)
					sqlite3_str_appendf(q, " OR OLD.\"%w\" IS NOT NEW.\"%w\"",
					    x->cols.v[i].name, x->cols.v[i].name);
			sqlite3_str_appendchar(q, 1, ')');
		}
		sqlite3_str_appendf(q, " BEGIN INSERT INTO wsync_replica_out(local_table, op,"
		    " k, mask) VALUES (%Q, '%s', ", o->table, j == 0 ? "add" : j == 1 ?
		    "update" : "del");
		put_key_text(x, q, row);
		sqlite3_str_appendall(q, ", 0");
		for (i = 0; j == 1 && i < n; i++)
			if (x->cols.v[i].update)
				sqlite3_str_appendf(q, " | (CASE WHEN OLD.\"%w\" IS NOT NEW.\"%w\" "
				    "THEN %llu ELSE 0 END)", x->cols.v[i].name, x->cols.v[i].name,
				    1ull << i);
		sqlite3_str_appendall(q, "); END;");
	}
	sqlite3_str_appendf(q, "INSERT OR IGNORE INTO wsync_replica(local_table, source, "
	    "guid, usn) VALUES (%Q,%Q, NULL, 0);", o->table, o->source);
	if ((rc = rpl_str_exec(x->db, q, x->err)) ||
	    (rc = rpl_exec(x->db, "COMMIT", x->err)))
		goto fail;
	for (j = 0; j < o->narrays; j++) {
		if (!(x->child[j].known = json_object()))
			return WS_ENOMEM;
		if ((rc = rpl_table_info(x->db, o->arrays[j].child, &st, x->err)))
			return rc;
		while (sqlite3_step(st) == SQLITE_ROW)
			json_object_set_new(x->child[j].known,
			    (const char *)sqlite3_column_text(st, 1), json_true());
		sqlite3_finalize(st);
		st = NULL;
	}
	/* The statements every message uses. */
	q = sqlite3_str_new(x->db);
	sqlite3_str_appendall(q, "SELECT ");
	for (i = 0, j = 0; i < n; i++)
		if (rep_parent_col(&x->cols.v[i]))
			sqlite3_str_appendf(q, "%s\"%w\"", j++ ? "," : "", x->cols.v[i].name);
	sqlite3_str_appendf(q, " FROM \"%w\"", o->table);
	rpl_cols_put_where(&x->cols, q, 1);
	if ((rc = rpl_str_prep(x->db, q, &x->sel, x->err)))
		return rc;
	q = sqlite3_str_new(x->db);
	sqlite3_str_appendall(q, "SELECT ");
	put_keys(x, q, 0, "");
	sqlite3_str_appendf(q, " FROM \"%w\"", o->table);
	rpl_cols_put_where(&x->cols, q, 1);
	if ((rc = rpl_str_prep(x->db, q, &x->getmark, x->err)))
		return rc;
	q = sqlite3_str_new(x->db);
	sqlite3_str_appendf(q, "INSERT OR IGNORE INTO wsync_replica_full(local_table, k) "
	    "SELECT %Q,", o->table);
	put_keys(x, q, 1, "");
	sqlite3_str_appendf(q, " FROM \"%w\"", o->table);
	rpl_cols_put_where(&x->cols, q, 1);
	if ((rc = rpl_str_prep(x->db, q, &x->sweep_ins, x->err)))
		return rc;
	q = sqlite3_str_new(x->db);
	sqlite3_str_appendf(q, "INSERT OR REPLACE INTO wsync_replica_deleted(local_table, k, "
	    "usn, state) VALUES (%Q, ?1, ?2, 'deleted')", o->table);
	if ((rc = rpl_str_prep(x->db, q, &x->mark, x->err)))
		return rc;
	q = sqlite3_str_new(x->db);
	sqlite3_str_appendf(q, "DELETE FROM wsync_replica_deleted WHERE local_table = %Q "
	    "AND k = ?1", o->table);
	if ((rc = rpl_str_prep(x->db, q, &x->unmark, x->err)))
		return rc;
	for (i = 0, j = o->add || o->del; i < n; i++)
		j |= (size_t)x->cols.v[i].update;
	if (j) {
		/* Local changes go up: what the publisher sends must not undo them. */
		q = sqlite3_str_new(x->db);
		sqlite3_str_appendf(q, "SELECT op, mask FROM wsync_replica_out WHERE "
		    "local_table = %Q AND k = ", o->table);
		put_key_text(x, q, NULL);
		if ((rc = rpl_str_prep(x->db, q, &x->pend, x->err)))
			return rc;
	}
	if ((rc = rpl_prepare(x->db, "SELECT count(*) FROM wsync_replica_deleted WHERE "
	    "local_table = ?1", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, o->table, -1, SQLITE_STATIC);
	x->ndeleted = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
fail:
	sqlite3_finalize(st);
	sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Wait for the publisher's next message, up to a silence of 120 s. */
static int recv_one(struct rep *x, json_t **m)
{
	uint64_t t0 = ws_now_ms();
	int rc;

	for (;;) {
		if (x->o->stop && *x->o->stop)
			return ws_error(x->err, WS_EAGAIN, "stopped");
		rc = rconn_recv(&x->c, m, x->c.http ? HTTP_RECV_MS : STREAM_POLL_MS, -1);
		if (rc == 1 || rc < 0)
			return rc;
		if (ws_now_ms() - t0 > SILENCE_MS)
			return ws_error(x->err, WS_EAGAIN, "the publisher was silent for "
			    "%d seconds", SILENCE_MS / 1000);
	}
}

/* A message that reports an error ends the session with it. */
static int check_error(struct rep *x, const json_t *m)
{
	const char *e = json_string_value(json_object_get(m, "error"));

	if (!json_object_get(m, "error"))
		return 0;
	return ws_error(x->err, WS_EIO, "the publisher ends the session: %s",
	    e ? e : "unknown error");
}

static void progress(struct rep *x)
{
	if (x->o->progress)
		x->o->progress(x->o->progress_cd, x->rows, x->count, ws_now_ms() - x->t0);
}

/* Mark every local row the full pass did not see as deleted. */
static int sweep_stale(struct rep *x)
{
	sqlite3_str *q = sqlite3_str_new(x->db);
	sqlite3_stmt *st = NULL;
	int keypos[RPL_MAX_KEY], rc;
	size_t i;

	for (i = 0; i < x->cols.nkey; i++)
		keypos[i] = (int)i;
	sqlite3_str_appendall(q, "SELECT ");
	put_keys(x, q, 0, "");
	sqlite3_str_appendf(q, " FROM \"%w\" AS t WHERE NOT EXISTS (SELECT 1 FROM "
	    "wsync_replica_full f WHERE f.local_table = %Q AND f.k = ", x->o->table,
	    x->o->table);
	put_keys(x, q, 1, "t.");
	sqlite3_str_appendf(q, ") AND NOT EXISTS (SELECT 1 FROM wsync_replica_out o WHERE "
	    "o.local_table = %Q AND o.op = 'add')", x->o->table);
	if ((rc = rpl_str_prep(x->db, q, &st, x->err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = rep_mark_deleted(x, st, keypos, x->start_usn)))
			goto out;
	rc = rc == SQLITE_DONE ? 0 : rpl_sqlfail(x->db, rc, x->o->table, x->err);
out:
	sqlite3_finalize(st);
	return rc;
}

/* Forget the keys a full pass saw (wsync_replica_full): it starts, or it ended. */
static int forget_seen(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = rpl_prepare(x->db, "DELETE FROM wsync_replica_full WHERE local_table = ?1",
	    &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	rc = rep_step_done(x, st, "wsync_replica_full");
	sqlite3_finalize(st);
	return rc;
}

/* The initial transfer: ReplicateNext until a result without rows. */
static int initial(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	sqlite3_str *q;
	const json_t *rows, *row;
	json_t *m = NULL;
	unsigned batch = x->o->batch ? x->o->batch : WS_REPLICATE_BATCH;
	size_t i;
	int rc;

	if (x->full) {
		if ((rc = rep_tx_begin(x)))
			return rc;
		if ((rc = rpl_prepare(x->db, "UPDATE wsync_replica SET guid = NULL, usn = 0, "
		    "source = ?2, updated = datetime('now') WHERE local_table = ?1; ", &st,
		    x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, x->o->source, -1, SQLITE_STATIC);
		if ((rc = rep_step_done(x, st, "wsync_replica")))
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = forget_seen(x)))
			goto fail;
		q = sqlite3_str_new(x->db);
		sqlite3_str_appendf(q, "SELECT EXISTS (SELECT 1 FROM \"%w\")", x->o->table);
		if ((rc = rpl_str_prep(x->db, q, &st, x->err)))
			goto fail;
		/* Rows of an empty table cannot be stale: no sweep is needed. */
		x->sweep = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = rep_tx_commit(x)))
			return rc;
	}
	for (;;) {
		if ((rc = rconn_send(&x->c, json_pack("{s:s,s:i}", "mt", "ReplicateNext",
		    "max", (int)batch))) || (rc = recv_one(x, &m)) < 0)
			return rc;
		if ((rc = check_error(x, m)))
			goto out;
		if (strcmp(rpl_mt_of(m), "ReplicateNextResult") != 0) {
			rc = ws_error(x->err, WS_ECORRUPT, "expected ReplicateNextResult, "
			    "got %s", rpl_mt_of(m));
			goto out;
		}
		rows = json_object_get(m, "rows");
		row = json_object_get(m, "columns");
		if (!row && !json_array_size(rows))
			break;
		if ((rc = rep_tx_begin(x)))
			goto out;
		if (row && (rc = rep_apply_row(x, row, x->start_usn)))
			goto fail;
		json_array_foreach(rows, i, row)
			if ((rc = rep_apply_row(x, row, x->start_usn)))
				goto fail;
		if ((rc = rep_tx_commit(x)) || (rc = rep_deliver(x)))
			goto out;
		json_decref(m);
		m = NULL;
		progress(x);
	}
	json_decref(m);
	m = NULL;
	if (x->full) {
		if ((rc = rep_tx_begin(x)))
			return rc;
		if (x->sweep && (rc = sweep_stale(x)))
			goto fail;
		if ((rc = forget_seen(x)))
			goto fail;
		if ((rc = rpl_prepare(x->db, "UPDATE wsync_replica SET guid = ?2, usn = ?3, "
		    "mapping = ?4, updated = datetime('now') WHERE local_table = ?1", &st,
		    x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, x->pguid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)x->start_usn);
		sqlite3_bind_text(st, 4, x->mapping, -1, SQLITE_STATIC);
		if ((rc = rep_step_done(x, st, "wsync_replica")))
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
		x->sweep = 0;
		if ((rc = rep_tx_commit(x)))
			return rc;
		snprintf(x->guid, sizeof(x->guid), "%s", x->pguid);
		x->usn = x->start_usn;
		x->initialized = 1;
		progress(x);
		return rep_deliver(x);
	}
	return 0;
fail:
	rep_tx_abort(x);
out:
	sqlite3_finalize(st);
	json_decref(m);
	return rc;
}

/*
 * One element of a key the capture trigger wrote, as a value in the wire
 * form (ws_json_from_value): {"q":LITERAL} is a REAL as quote() wrote
 * it, {"x":HEX} a BLOB; anything else is already in the wire form.  A
 * new reference, or NULL for a bad element.
 */
static json_t *key_value(struct rep *x, const json_t *e)
{
	const char *s, *end;
	struct ws_value v;
	json_t *j;
	size_t n;
	char *e2;

	if (!json_is_object(e))
		return json_is_array(e) ? NULL : json_incref((json_t *)e);
	memset(&v, 0, sizeof(v));
	if ((s = json_string_value(json_object_get(e, "q")))) {
		v.type = WS_REAL;
		v.r = strtod(s, &e2);
		if (e2 == s || *e2)
			return NULL;
	} else if ((s = json_string_value(json_object_get(e, "x")))) {
		n = strlen(s);
		x->tmp.len = 0;
		if (n % 2 || ws_buf_reserve(&x->tmp, n / 2 + 1) ||
		    sodium_hex2bin(x->tmp.p, n / 2 + 1, s, n, NULL, &v.n, &end) || *end)
			return NULL;
		v.type = WS_BLOB;
		v.p = x->tmp.p;
	} else {
		return NULL;
	}
	j = ws_json_from_value(&v);
	return j;
}

/* Send the local changes the rights let go up; the number sent. */
static int push_local(struct rep *x)
{
	sqlite3_stmt *st = NULL, *drop = NULL;
	json_error_t je;
	json_t *key = NULL, *cols = NULL, *a = NULL, *m;
	size_t i, n;
	int rc, sent = 0, j;
	int any = x->o->add || x->o->del;

	for (i = 0; i < x->cols.n; i++)
		any |= x->cols.v[i].update;
	if (!any || x->inflight)
		return 0;
	if ((rc = rpl_prepare(x->db, "SELECT seq, op, k, mask FROM wsync_replica_out WHERE "
	    "local_table = ?1 ORDER BY seq LIMIT ?2", &st, x->err)) ||
	    (rc = rpl_prepare(x->db, "DELETE FROM wsync_replica_out WHERE seq = ?1", &drop,
	    x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, PUSH_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *op = (const char *)sqlite3_column_text(st, 1);
		uint64_t mask = (uint64_t)sqlite3_column_int64(st, 3);
		int have = 0;

		a = json_loads((const char *)sqlite3_column_text(st, 2), 0, &je);
		if (!(key = json_object())) {
			rc = WS_ENOMEM;
			goto out;
		}
		for (i = 0; json_is_array(a) && json_array_size(a) == x->cols.nkey && i < x->cols.nkey;
		    i++) {
			json_t *v = key_value(x, json_array_get(a, i));

			if (!v || json_object_set_new(key, x->cols.v[x->cols.keys[i]].remote, v))
				break;
		}
		m = NULL;
		if (json_object_size(key) != x->cols.nkey) {
			/* Not a key the trigger wrote: drop it, say so. */
			rlog(x, "dropped a local change with a bad key: %s",
			    (const char *)sqlite3_column_text(st, 2));
			json_decref(a);
			json_decref(key);
			a = key = NULL;
			sqlite3_bind_int64(drop, 1, seq);
			if ((rc = rep_step_done(x, drop, "wsync_replica_out")))
				goto out;
			continue;
		}
		if (strcmp(op, "del") == 0) {
			m = json_pack("{s:s,s:I,s:O}", "mt", "ReplicateDel", "id", (json_int_t)seq,
			    "key", key);
		} else {
			if ((have = rep_find_row(x, key)) < 0) {
				rc = have;
				goto out;
			}
			cols = json_object();
			for (i = 0, j = 0; have && cols && i < x->cols.n; i++) {
				if (!rep_parent_col(&x->cols.v[i]))
					continue;
				if (op[0] == 'a' || (x->cols.v[i].update && (mask & (1ull << i))))
					json_object_set_new(cols, x->cols.v[i].remote,
					    rpl_col_json(x->sel, j));
				j++;
			}
			sqlite3_reset(x->sel);
			if (have && json_object_size(cols))
				m = op[0] == 'a' ? json_pack("{s:s,s:I,s:O}", "mt", "ReplicateAdd",
				    "id", (json_int_t)seq, "columns", cols) :
				    json_pack("{s:s,s:I,s:O,s:I,s:O}", "mt", "ReplicateUpdate",
				    "id", (json_int_t)seq, "key", key, "mask", (json_int_t)mask,
				    "columns", cols);
			json_decref(cols);
			cols = NULL;
		}
		json_decref(a);
		json_decref(key);
		a = key = NULL;
		if (!m) {
			/* The row is gone since: nothing to send for it. */
			sqlite3_bind_int64(drop, 1, seq);
			if ((rc = rep_step_done(x, drop, "wsync_replica_out")))
				goto out;
			continue;
		}
		if ((rc = rconn_send(&x->c, m)))
			goto out;
		sent++;
	}
	rc = rc == SQLITE_DONE ? 0 : rpl_sqlfail(x->db, rc, "wsync_replica_out", x->err);
	n = (size_t)sent;
	x->inflight = (unsigned)n;
	if (rc == 0)
		rc = rconn_flush(&x->c);
out:
	json_decref(a);
	json_decref(key);
	json_decref(cols);
	sqlite3_finalize(st);
	sqlite3_finalize(drop);
	return rc ? rc : sent;
}

/* Apply one live message inside the open transaction; queue its ack. */
static int live_msg(struct rep *x, const json_t *m, json_t *acks)
{
	const char *mt = rpl_mt_of(m);
	uint64_t usn = 0;
	int rc, op = strcmp(mt, "ReplicateAdd") == 0 ? 1 : strcmp(mt, "ReplicateUpdate") == 0 ?
	    2 : strcmp(mt, "ReplicateDel") == 0 ? 3 : strcmp(mt, "ReplicateSync") == 0 ? 4 : 0;

	if (op) {
		int has_usn = json_object_get(m, "usn") != NULL;

		if ((has_usn || op == 4) && rpl_get_u64(m, "usn", &usn, x->err))
			return ws_error(x->err, WS_ECORRUPT, "%s without a usn", mt);
		if (!has_usn)
			usn = x->have_usn ? x->new_usn : x->usn;
		rc = op == 1 ? rep_apply_row(x, json_object_get(m, "columns"), usn) :
		    op == 2 ? rep_apply_update(x, m, usn) : op == 3 ? rep_apply_del(x, m, usn) : 0;
		if (rc)
			return rc;
		if (op == 4) {
			x->got_sync = 1;
			if (!x->initialized)
				return ws_error(x->err, WS_ECORRUPT, "ReplicateSync before "
				    "the initial transfer ended");
		}
		if (has_usn || op == 4) {
			x->new_usn = usn;
			x->have_usn = 1;
		}
		/* One result answers the group: the last message's, with "n". */
		if (json_array_size(acks) == 0 &&
		    json_array_append_new(acks, json_object()))
			return WS_ENOMEM;
		{
			json_t *a = json_array_get(acks, 0);
			json_int_t n = json_integer_value(json_object_get(a, "n")) + 1;
			char rmt[32];

			snprintf(rmt, sizeof(rmt), "%sResult", mt);
			json_object_set_new(a, "mt", json_string(rmt));
			json_object_set_new(a, "usn", json_integer((json_int_t)usn));
			json_object_set_new(a, "n", json_integer(n));
		}
		return 0;
	}
	if (strcmp(mt, "ReplicateAddResult") == 0 || strcmp(mt, "ReplicateUpdateResult") == 0 ||
	    strcmp(mt, "ReplicateDelResult") == 0) {
		const json_t *id = json_object_get(m, "id");
		sqlite3_stmt *st;

		if (json_object_get(m, "error"))
			rlog(x, "the publisher refused a local change: %s",
			    json_string_value(json_object_get(m, "error")) ?
			    json_string_value(json_object_get(m, "error")) : "?");
		if (x->inflight)
			x->inflight--;
		if (!json_is_integer(id))
			return 0;
		if ((rc = rpl_prepare(x->db, "DELETE FROM wsync_replica_out WHERE seq = ?1", &st,
		    x->err)))
			return rc;
		sqlite3_bind_int64(st, 1, json_integer_value(id));
		rc = rep_step_done(x, st, "wsync_replica_out");
		sqlite3_finalize(st);
		return rc;
	}
	if ((rc = check_error(x, m)))
		return rc;
	return ws_error(x->err, WS_ECORRUPT, "unexpected message '%s' from the publisher", mt);
}

/*
 * Whether the application confirmed a held delete: 1, 0 or <0.  A plain
 * read, its statement finalized at once, so that a replicator waiting
 * for the confirmation holds no lock between its looks.
 */
static int any_confirmed(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = rpl_prepare(x->db, "SELECT 1 FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed' LIMIT 1", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 :
	    rpl_sqlfail(x->db, rc, "wsync_replica_deleted", x->err);
	sqlite3_finalize(st);
	return rc;
}

/*
 * Remove the deletes the application confirmed (--hold-deletes).  Only
 * when there is one does it write: a write of its own would wake the
 * watch on the database (rpl_watch_db()) and call it again, a busy loop
 * holding the write lock that locked the application out.
 */
static int settle(struct rep *x)
{
	int rc;

	if (x->ndeleted <= 0 || (rc = any_confirmed(x)) == 0)
		return 0;
	if (rc < 0)
		return rc;
	if ((rc = rep_tx_begin(x)))
		return rc;
	if ((rc = rep_remove_confirmed(x)) || (rc = rep_tx_commit(x))) {
		rep_tx_abort(x);
		return rc;
	}
	return rep_deliver(x);
}

/* Re-deliver "deleted" for the marks a killed run left unconfirmed. */
static int redeliver(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	json_error_t je;
	json_t *a, *lk;
	size_t i;
	int rc;

	if (x->ndeleted <= 0 || x->o->hold_deletes)
		return 0;
	if ((rc = rpl_prepare(x->db, "SELECT k, usn FROM wsync_replica_deleted WHERE "
	    "local_table = ?1 AND state = 'deleted'", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		a = json_loads(k, 0, &je);
		lk = json_object();
		for (i = 0; lk && json_is_array(a) && i < x->cols.nkey; i++)
			json_object_set(lk, x->cols.v[x->cols.keys[i]].name, json_array_get(a, i));
		json_decref(a);
		if ((rc = rep_event(x, "deleted", json_pack("{s:o,s:I,s:s}", "key", lk, "usn",
		    (json_int_t)sqlite3_column_int64(st, 1), "k", k))))
			break;
	}
	sqlite3_finalize(st);
	return rc ? rc : rep_deliver(x);
}

static int live(struct rep *x, int ifd)
{
	const struct ws_replicate_pull_opts *o = x->o;
	int upward = o->add || o->del, wait, rc, rc2 = 0;
	uint64_t quiet_since = ws_now_ms();
	json_t *m = NULL, *acks = json_array(), *a;
	char buf[4096];
	size_t i, n;

	for (i = 0; i < x->cols.n; i++)
		upward |= x->cols.v[i].update;
	if (!x->c.http)
		wait = STREAM_POLL_MS;
	else if (!o->follow)
		wait = HTTP_POLL_MS;
	else
		wait = upward || o->hold_deletes ? HTTP_POLL_BUSY_MS : HTTP_POLL_IDLE_MS;
	if (!acks)
		return WS_ENOMEM;
	for (;;) {
		if (o->stop && *o->stop) {
			rc = 0;
			break;
		}
		if (x->got_sync && !x->inflight) {
			if ((rc = push_local(x)) < 0)
				break;
			if (rc == 0 && !o->follow) {
				rc = rconn_flush(&x->c);
				break;
			}
		}
		rc = rconn_recv(&x->c, &m, wait, ifd);
		if (rc < 0)
			break;
		if (rc != 1) {
			if (rc == 2)
				while (read(ifd, buf, sizeof(buf)) > 0)
					;
			if (o->follow && x->got_sync) {
				if ((rc = settle(x)) || ((rc = push_local(x)) < 0))
					break;
			}
			if (!o->follow && ws_now_ms() - quiet_since > SILENCE_MS) {
				rc = ws_error(x->err, WS_EAGAIN, "the publisher was silent for "
				    "%d seconds", SILENCE_MS / 1000);
				break;
			}
			continue;
		}
		quiet_since = ws_now_ms();
		if ((rc = rep_tx_begin(x)))
			break;
		n = 0;
		do {
			rc = live_msg(x, m, acks);
			json_decref(m);
			m = NULL;
			n++;
		} while (rc == 0 && n < LIVE_GROUP && (rc2 = rconn_recv(&x->c, &m, 0, -1)) == 1);
		if (rc == 0 && rc2 < 0)
			rc = rc2;
		if (rc || (rc = rep_tx_commit(x))) {
			rep_tx_abort(x);
			break;
		}
		json_array_foreach(acks, i, a)
			if ((rc = rconn_send(&x->c, json_incref(a))))
				goto out;
		json_array_clear(acks);
		if (!x->c.http && (rc = rconn_flush(&x->c)))
			break;
		if (x->got_sync && x->initialized == 1) {
			x->initialized = 2;
			if ((rc = rep_event(x, "initialized", json_pack("{s:I,s:I,s:b}", "usn",
			    (json_int_t)x->usn, "rows", (json_int_t)x->rows, "full", x->full))))
				break;
		}
		if ((rc = rep_deliver(x)))
			break;
		progress(x);
	}
out:
	json_decref(m);
	json_decref(acks);
	return rc;
}

/* One session with the publisher. */
static int session(struct rep *x)
{
	const struct ws_replicate_pull_opts *o = x->o;
	sqlite3_stmt *st = NULL;
	json_t *m = NULL, *cols = NULL, *sr = NULL;
	const char *g, *refused;
	size_t i;
	int rc, ifd = -1;

	x->guid[0] = 0;
	x->usn = 0;
	x->rows = 0;
	x->got_sync = x->initialized = 0;
	x->inflight = 0;
	x->t0 = ws_now_ms();
	if ((rc = rpl_prepare(x->db, "SELECT guid, usn, mapping FROM wsync_replica WHERE "
	    "local_table = ?1", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, o->table, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *mp = (const char *)sqlite3_column_text(st, 2);

		g = (const char *)sqlite3_column_text(st, 0);
		snprintf(x->guid, sizeof(x->guid), "%s", g ? g : "");
		x->usn = (uint64_t)sqlite3_column_int64(st, 1);
		if (x->guid[0] && (!mp || strcmp(mp, x->mapping) != 0)) {
			/* Other columns than the replica holds: fill them all. */
			rlog(x, "the columns asked for changed: replicating in full");
			x->guid[0] = 0;
			x->usn = 0;
		}
	}
	sqlite3_finalize(st);
	if ((rc = rconn_open(&x->c, o, x->err))) {
		rconn_close(&x->c);
		return rc;
	}
	x->c.bytes_in = o->bytes_in;
	x->c.bytes_out = o->bytes_out;
	if (!(cols = json_array()))
		goto nomem;
	for (i = 0; i < o->ncols; i++)
		json_array_append_new(cols, json_pack("{s:s,s:b}", "name", o->cols[i].name,
		    "update", o->cols[i].update));
	for (i = 0; o->ncols && i < o->narrays; i++)
		json_array_append_new(cols, json_pack("{s:s,s:b}", "name",
		    o->arrays[i].remote, "update", 0));
	m = json_pack("{s:s,s:o,s:I,s:b,s:b,s:O,s:b}", "mt", "ReplicateStart", "guid",
	    x->guid[0] ? json_string(x->guid) : json_null(), "usn", (json_int_t)x->usn,
	    "add", o->add, "del", o->del, "columns", cols, "positional", 1);
	rc = rconn_send(&x->c, m);
	m = NULL;
	if (rc || (rc = recv_one(x, &sr)) < 0)
		goto out;
	if (strcmp(rpl_mt_of(sr), "ReplicateStartResult") != 0) {
		rc = ws_error(x->err, WS_ECORRUPT, "expected ReplicateStartResult, got %s",
		    rpl_mt_of(sr));
		goto out;
	}
	if (json_object_get(sr, "error")) {
		refused = json_string_value(json_object_get(sr, "refused"));
		rc = ws_error(x->err, !refused ? WS_EIO : strcmp(refused, "column") == 0 ?
		    WS_ESCHEMA : WS_EPERM, "the publisher refused: %s",
		    json_string_value(json_object_get(sr, "error")) ?
		    json_string_value(json_object_get(sr, "error")) : "no reason given");
		goto out;
	}
	g = json_string_value(json_object_get(sr, "guid"));
	if (!g || strlen(g) == 0 || strlen(g) > 2 * WS_GUID_LEN ||
	    rpl_get_u64(sr, "usn", &x->start_usn, x->err) || rpl_get_bool(sr, "full") < 0) {
		rc = ws_error(x->err, WS_ECORRUPT, "a bad ReplicateStartResult: want guid, "
		    "usn and full");
		goto out;
	}
	snprintf(x->pguid, sizeof(x->pguid), "%s", g);
	x->full = rpl_get_bool(sr, "full");
	if (!x->full && strcmp(x->pguid, x->guid) != 0) {
		rc = ws_error(x->err, WS_ECORRUPT, "the publisher offers changes of "
		    "another guid");
		goto out;
	}
	if (!x->full)
		x->start_usn = x->usn;
	if (json_is_integer(json_object_get(sr, "count")))
		x->count = (uint64_t)json_integer_value(json_object_get(sr, "count"));
	if (json_is_string(json_object_get(sr, "session")))
		snprintf(x->c.session, sizeof(x->c.session), "%s",
		    json_string_value(json_object_get(sr, "session")));
	rep_release_cols(x);
	if ((rc = rep_setup(x, sr)))
		goto out;
	x->bound = 1;
	x->initialized = !x->full;
	if ((rc = rep_event(x, "started", json_pack("{s:s,s:s,s:I,s:b,s:I}", "source", o->source,
	    "guid", x->pguid, "usn", (json_int_t)x->start_usn, "full", x->full, "count",
	    (json_int_t)x->count))) || (rc = rep_deliver(x)) || (rc = settle(x)) ||
	    (rc = redeliver(x)) || (rc = initial(x)))
		goto out;
	if (o->follow)
		ifd = rpl_watch_db(o->db);
	rc = live(x, ifd);
	if (rc == 0 && (rc = rep_event(x, "closed", json_pack("{s:I}", "usn", (json_int_t)x->usn))) == 0)
		rc = rep_deliver(x);
	goto out;
nomem:
	rc = WS_ENOMEM;
out:
	if (ifd >= 0)
		close(ifd);
	json_decref(m);
	json_decref(cols);
	json_decref(sr);
	rconn_close(&x->c);
	return rc;
}

/*
 * The "waiting" event: no session, the next attempt in retry_ms.  What a
 * failed session left queued is dropped (its deletes come again).
 */
static int waiting(struct rep *x, int why, int retry_ms)
{
	char text[4 * WS_ERRLEN];

	json_array_clear(x->events);
	ws_escape_str(text, sizeof(text), x->err && *x->err ? x->err : ws_strerror(why));
	if (rep_event(x, "waiting", json_pack("{s:s,s:s,s:i}", "source", x->o->source,
	    "error", text, "retry_ms", retry_ms)))
		return WS_ENOMEM;
	return rep_deliver(x);
}

int ws_replicate_pull(const struct ws_replicate_pull_opts *o, char *err)
{
	struct rep x;
	struct timespec ts;
	int rc, backoff = BACKOFF_MIN_MS;

	memset(&x, 0, sizeof(x));
	x.o = o;
	x.err = err;
	if (!o->source || !o->db || !o->table || !*o->table)
		return ws_error(err, WS_EINVAL, "pull needs a source, a database and a table");
	if (strncmp(o->table, "wsync_", 6) == 0 || strncmp(o->table, "sqlite_", 7) == 0)
		return ws_error(err, WS_EINVAL, "table '%s' has a reserved name", o->table);
	/* The keys policy (transport.h), as ws_site_run() keeps it, for a
	 * stream source; over HTTP the keys do not apply (https:, tokens). */
	if (strncasecmp(o->source, "http://", 7) != 0 &&
	    strncasecmp(o->source, "https://", 8) != 0 &&
	    (rc = ws_transport_check_keys_for(o->source, 0, o->key != NULL, o->insecure,
	    "publisher", err)))
		return rc;
	if ((rc = ws_http_global_init(err)))
		return rc;
	if (o->http_token && (strncasecmp(o->source, "https://", 8) != 0 &&
	    (strncasecmp(o->source, "http://", 7) != 0 || !ws_http_loopback_url(o->source))))
		return ws_error(err, strncasecmp(o->source, "http://", 7) == 0 ? WS_ECONFIG :
		    WS_EINVAL, "a token would cross the network in clear: use an https:// "
		    "URL");
	if (!(x.events = json_array()))
		return WS_ENOMEM;
	x.created = access(o->db, F_OK) != 0 && errno == ENOENT;
	if ((rc = rpl_db_open(o->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &x.db,
	    err)) || (rc = rpl_exec(x.db, meta_sql, err)))
		goto out;
	/* A wsync_replica made before the mapping was kept gets its column. */
	if (sqlite3_exec(x.db, "SELECT mapping FROM wsync_replica LIMIT 0", NULL, NULL,
	    NULL) != SQLITE_OK && (rc = rpl_exec(x.db, "ALTER TABLE wsync_replica ADD "
	    "COLUMN mapping TEXT", err)))
		goto out;
	if (!(x.mapping = mapping_of(o))) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (;;) {
		uint64_t t0 = ws_now_ms();

		rc = session(&x);
		if (!o->follow || (o->stop && *o->stop) || rc == WS_EPERM || rc == WS_ESCHEMA ||
		    rc == WS_EINVAL || rc == WS_ENOMEM || rc == WS_ENOSPC || rc == WS_ECONFIG)
			break;
		if (ws_now_ms() - t0 > BACKOFF_RESET_MS)
			backoff = BACKOFF_MIN_MS; /* it worked for a while: start over */
		ws_log_printf(o->log, o->log_cd, "%s; reconnecting in %d ms", err, backoff);
		if ((rc = waiting(&x, rc, backoff)))
			break;
		ts.tv_sec = backoff / 1000;
		ts.tv_nsec = (long)(backoff % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if ((backoff *= 2) > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
	}
	if (o->stop && *o->stop && o->follow)
		rc = 0;
out:
	rep_release_cols(&x);
	free(x.mapping);
	json_decref(x.events);
	ws_buf_release(&x.tmp);
	sqlite3_close(x.db);
	/* A run that failed before any session set the table up, in a file
	 * it made, leaves no file behind: not one bound to no publisher. */
	if (rc && x.created && !x.bound)
		ws_store_remove_files(o->db);
	return rc;
}
