/* SPDX-License-Identifier: MIT */
/*
 * sql.h - the SQLite helpers that the store (lib/store*.c) and table
 * replication (lib/replicate*.c) share, private to the library: SQLite
 * result codes as WS_E* codes with error text, prepare and exec, SQL text
 * built with sqlite3_str, and a struct ws_value bound to a parameter or
 * read from a column.
 *
 * The helpers take a bare connection, so that they serve a store's
 * connection and the replicator's and publisher's own alike.  They keep
 * the sto_ names the store has always called them by.
 */
#ifndef WSYNC_SQL_H
#define WSYNC_SQL_H

#include <sqlite3.h>

#include "wsync/buf.h"
#include "wsync/delta.h"

/*
 * How long a connection of the library waits for another writer's lock
 * before SQLITE_BUSY (sqlite3_busy_timeout), in milliseconds: a store's,
 * a file read for inspection, and replication's own connections.
 */
#define WS_SQL_BUSY_MS 5000

/*
 * SQLite result src (from db, which may be NULL) as a WS_E* code, with
 * text in err: "what: <sqlite's message>", or, when the file is the
 * trouble, a message that names db's file (a short write, a full disk,
 * a lock held by another writer, no permission).  Returns the code.
 */
int sto_sqlerr(sqlite3 *db, int src, const char *what, char *err);
/* Run sql (any number of statements) on db; errors as sto_sqlerr(). */
int sto_exec(sqlite3 *db, const char *sql, char *err);
/* Prepare sql into *st, which the caller finalizes; errors as sto_sqlerr(). */
int sto_prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err);

/*
 * SQL text is built with SQLite's own string builder: q = sqlite3_str_new(db),
 * then sqlite3_str_appendf(q, ...) with "\"%w\"" for an identifier and %Q
 * for a literal; its errors are sticky, so the appends go unchecked and
 * the end checks once.  Each of these ends q (it is freed, whatever
 * happens): its text run, prepared into *st (the caller finalizes it),
 * or handed over in *sql (the caller sqlite3_free()s it).  WS_ENOMEM when
 * building the text ran out of memory (or it grew past SQLite's limit).
 */
int sto_str_exec(sqlite3 *db, sqlite3_str *q, char *err);
int sto_str_prep(sqlite3 *db, sqlite3_str *q, sqlite3_stmt **st, char *err);
int sto_str_finish(sqlite3_str *q, char **sql, char *err);


/* An SQLite value as a ws_value; text and blobs point into x. */
void sto_value_of(sqlite3_value *x, struct ws_value *v);
/*
 * Bind v to parameter i of st in place (SQLITE_STATIC): v's bytes must
 * stay put until st is reset or rebound.  Returns SQLite's code.
 */
int sto_bind_value(sqlite3_stmt *st, int i, const struct ws_value *v);

#endif
