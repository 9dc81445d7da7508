/* SPDX-License-Identifier: MIT */
/*
 * store-test.h - a way around the store, for tests and benchmarks only.
 *
 * The store owns its connection to the database: no library module runs
 * SQL on it (the publisher, inspect and the hub each use the store's API,
 * or a connection of their own to the application's tables).  Tests and
 * benchmarks that check what a store wrote, or write behind its back as
 * an application would, reach the connection here.  wsync.h does not
 * include this header, so a program does not get it by accident.
 */
#ifndef WSYNC_STORE_TEST_H
#define WSYNC_STORE_TEST_H

#include "store.h"

struct sqlite3;

/*
 * The store's own connection to its database, owned by s: valid until
 * ws_store_close(s).  Whatever a caller does on it (a transaction left
 * open, a pragma) the store sees, so keep to reading and to the writes
 * an application could make.
 */
struct sqlite3 *ws_store_db(struct ws_store *s);

#endif
