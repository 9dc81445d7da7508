/* SPDX-License-Identifier: MIT */
/*
 * store.h - a working set in one SQLite database file.
 *
 * A store tracks tables of one database: triggers capture every insert,
 * update and delete made by any writer (the sqlite3 CLI, an application)
 * into the change log wsync_log, even while no wsync program runs.  Each
 * log entry has a usn (update sequence number, site-local, monotonic)
 * and the bitmask of the columns that changed.  ws_store_seal() gives
 * the entries captured since the last seal one dot (site, counter): they
 * become one batch.  A wsync process seals at each commit it notices; a
 * database written while no wsync ran seals the writes of several
 * transactions into one batch, which keeps them atomic all the same.
 *
 * Remote batches are merged by ws_store_apply(): atomically (one SQLite
 * transaction), idempotently (a batch whose dot the clock already holds
 * is skipped) and in causal order (a batch that arrives before one it
 * depends on waits in wsync_pending and is applied once it can be).
 *
 * Merge rule, per cell (row, column).  A batch carries its origin's
 * vector clock after the transaction (its causal context).  A change
 * replaces a cell version (s, c) it has seen (context[s] >= c).  Versions
 * neither has seen are concurrent: all of them are kept, the winner is
 * the one with the higher Lamport number (the sum of its batch's
 * context), then the higher site id, and the others are listed as
 * conflicts in wsync_conflicts, so nothing a user wrote is lost.  A
 * delete wins over every write concurrent with it; the values of those
 * writes are kept as conflicts.  A later write to the cell, such as a
 * local one, has seen all of them and clears them.
 *
 * Metadata lives in the same file, in tables prefixed wsync_; see
 * wsync(7).  One struct ws_store is one SQLite connection: use it from
 * one thread at a time.
 */
#ifndef WSYNC_STORE_H
#define WSYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "delta.h"
#include "error.h"
#include "schema.h"
#include "vclock.h"

/* Batches of one site that may wait for batches they depend on. */
#define WS_PENDING_MAX 1024

#define WS_GUID_LEN 16

struct ws_store;

/* Options for ws_store_open(). */
#define WS_STORE_CREATE 0x1   /* create the file and the metadata if missing */
#define WS_STORE_READONLY 0x2 /* open read-only (inspection) */

/*
 * Open the working set `wsid` in the database at path.  A database that
 * has no wsync metadata gets it (with a new random site id and no guid)
 * when WS_STORE_CREATE is given; without it that is WS_ENOTFOUND.  A
 * database that belongs to another working-set id is WS_ECONFIG.
 * *out is owned by the caller and freed with ws_store_close().
 * Errors: WS_ENOTFOUND, WS_EPERM, WS_EBUSY, WS_ECONFIG, WS_EIO, WS_ECORRUPT.
 */
int ws_store_open(struct ws_store **out, const char *path, const char *wsid,
    unsigned flags, char *err) WS_MUST_CHECK;
/*
 * Remove database file path and SQLite's companions of it (-wal, -shm,
 * -journal): what a run that created the file and then failed before it
 * did any work leaves no trace of.  Close the store first.
 */
void ws_store_remove_files(const char *path);
/* Close the connection and free s.  NULL is allowed. */
void ws_store_close(struct ws_store *s);

/*
 * Track tables[0..n), or, when n is 0, every ordinary table that can
 * be: views, virtual tables and their shadow tables, and the internal
 * sqlite_ and wsync_ tables are left out.  A rowid table without a
 * declared primary key is keyed by its rowid, which goes first among its
 * columns (see ROWID KEYS in wsync(7)).  Idempotent.  A listed table that
 * cannot be tracked is refused with WS_ESCHEMA and its name in err: a
 * virtual table, one with generated columns or more than 63 columns, one
 * whose columns hide its rowid; a missing one is WS_ENOTFOUND.  Nothing is tracked then.  Rows a table already
 * holds are logged as inserts, so they reach the peers.
 */
int ws_store_track(struct ws_store *s, const char *const *tables, size_t n,
    char *err) WS_MUST_CHECK;

/*
 * Callback for ws_store_untracked(): one table of the database that is
 * not tracked, and why ("it is a virtual table", ...).  Strings are valid during the call only.  Return 0 to go
 * on, or a negative WS_E* code to stop (it is passed back).
 */
typedef int ws_store_untracked_cb(const char *table, const char *why, void *clientData);

/*
 * Call cb, by name, for each table of the database that the working set
 * does not track: ordinary and virtual tables, but not SQLite's or
 * wsync's own, nor a virtual table's shadow tables.
 */
int ws_store_untracked(struct ws_store *s, ws_store_untracked_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/*
 * The working set's schema as it stands here (schema.h): the CREATE text
 * of the tracked tables, their indexes, and the views and triggers that
 * touch only tracked tables, with the last agreed generation.  out is
 * replaced; the caller releases it.
 */
int ws_store_schema(struct ws_store *s, struct ws_schema *out, char *err) WS_MUST_CHECK;

/*
 * 1 when the schema here changed since it was last agreed with the hub,
 * and has not been reported by this function since (out then holds it,
 * to send); 0 otherwise.  Cheap while PRAGMA schema_version stays put.
 */
int ws_store_schema_pending(struct ws_store *s, struct ws_schema *out, char *err) WS_MUST_CHECK;

/*
 * Keep this copy's views and triggers to itself (on != 0), for the
 * life of s: they are not in its schema record (which names the working
 * set's, as last agreed, instead), and a peer's are neither created,
 * replaced nor dropped here.  Tables and indexes travel as ever.
 */
void ws_store_keep_views_local(struct ws_store *s, int on);

/*
 * Adopt a peer's schema record, atomically: every change it makes here
 * or none (see the rule in store-schema.c and wsync(7)).  `hub` is 1 on
 * the hub, which numbers each schema it adopts.  *changed (may be NULL)
 * is set to 1 when this copy's schema changed (the hub then sends its
 * record to every site).  WS_ESCHEMA, naming the object and the first
 * difference, for a record this copy cannot take.
 */
int ws_store_adopt_schema(struct ws_store *s, const struct ws_schema *in, int hub,
    int *changed, char *err) WS_MUST_CHECK;

/* This site's id. */
const struct ws_siteid *ws_store_site(const struct ws_store *s);
/* The working-set id. */
const char *ws_store_wsid(const struct ws_store *s);
/*
 * The dataset guid into guid[16]: 1 if set, 0 if the set has none yet
 * (a brand-new set adopts its first peer's guid with ws_store_set_guid).
 */
int ws_store_guid(const struct ws_store *s, uint8_t guid[WS_GUID_LEN]);
/* Set the guid; WS_ECONFIG if a different one is already set. */
int ws_store_set_guid(struct ws_store *s, const uint8_t guid[WS_GUID_LEN], char *err) WS_MUST_CHECK;
/* Give the set a fresh random guid if it has none. */
int ws_store_new_guid(struct ws_store *s, char *err) WS_MUST_CHECK;

/* Copy the vector clock into out (replacing it). */
int ws_store_clock(struct ws_store *s, struct ws_vclock *out, char *err) WS_MUST_CHECK;
/* Highest usn in the log (0 when empty). */
int ws_store_usn(struct ws_store *s, uint64_t *usn, char *err) WS_MUST_CHECK;
/*
 * Highest usn a batch covers (sealed, or applied from a peer): entries
 * above it are local writes not sealed yet.  A site that has sent every
 * batch up to now resumes local_since() from here, not from
 * ws_store_usn(): a write committed in between is not sealed yet and
 * must still go out.
 */
int ws_store_sealed_usn(struct ws_store *s, uint64_t *usn, char *err) WS_MUST_CHECK;

/*
 * Seal the local changes captured since the last seal into one batch
 * with the next local dot.  Also notices columns added to tracked tables
 * and follows them.  *sealed (may be NULL) is set to 1 if a batch was
 * made.  Clears the conflicts of every cell the batch writes.
 */
int ws_store_seal(struct ws_store *s, int *sealed, char *err) WS_MUST_CHECK;

/*
 * Copies.  A database copied from another site's (scp, a backup restored,
 * a VM snapshot) carries that site's id; its writes would take the dots
 * of the original's and be skipped as duplicates.  ws_store_check_copy()
 * compares the file with the one the site id was made in (device and
 * inode, kept in wsync_meta): a different file is a copy, and gets a new
 * site id (*renewed set).  ws_store_renew_site() gives the new id: the
 * batches up to own counter `keep` stay the old site's (shared history),
 * later ones are stamped anew as the new site's.  A site notes how far
 * it has sent its own batches (ws_store_note_sent(); ws_store_own_sent()
 * is 0 while nothing was ever noted), and when the hub holds more of its
 * dots than that, the file is an old restore or a copy: it renews with
 * keep = what it had sent.
 */
int ws_store_check_copy(struct ws_store *s, int *renewed, char *err) WS_MUST_CHECK;
int ws_store_renew_site(struct ws_store *s, uint64_t keep, char *err) WS_MUST_CHECK;
int ws_store_own_sent(struct ws_store *s, uint64_t *sent);
int ws_store_note_sent(struct ws_store *s, uint64_t counter, char *err) WS_MUST_CHECK;

/*
 * Capture by comparison as well, from now on and in later runs (the
 * choice is kept in the database).  Some writers turn triggers off for
 * their connection (fossil, Chromium, programs that follow SQLite's
 * security advice), so the capture triggers never see their writes.  With
 * scanning on, the store keeps a hash of each column of each row
 * (wsync_scan), and a seal first compares every row with it when another
 * connection has written since the store last looked: a new row is
 * logged as an insert, a changed one as an update of the columns that
 * changed, a missing one as a delete.  The first seal knows no state and
 * logs every row.  Costs a read of every tracked row per such seal.
 */
int ws_store_scan(struct ws_store *s, char *err) WS_MUST_CHECK;

/*
 * Merge a remote batch (see above).  *applied (may be NULL) is set to 1
 * if it was applied now, 0 if it was a duplicate or must wait for a
 * batch it depends on.  Batches waiting are applied as soon as they can,
 * within this call.  Errors: WS_ESCHEMA (a table unknown here, or columns
 * that differ), WS_ECORRUPT (a batch without its causal context, or
 * whose dots disagree), WS_EBUSY, WS_EIO.  On error nothing is applied.
 */
int ws_store_apply(struct ws_store *s, const struct ws_batch *b, int *applied,
    char *err) WS_MUST_CHECK;

/* Number of batches waiting for a batch they depend on. */
int ws_store_pending(struct ws_store *s, size_t *n, char *err) WS_MUST_CHECK;

/*
 * Callback for extraction: one batch, valid during the call only.
 * `usn` is the highest usn the batch covers.  Return 0 to go on, or a
 * negative WS_E* code to stop (it is passed back).
 */
typedef int ws_store_batch_cb(const struct ws_batch *b, uint64_t usn, void *clientData);

/*
 * Call cb, in usn order, for each batch holding log entries with a usn
 * above `usn`, as it stands now: each change with the values it set,
 * those a later change replaced from what that change noted (the
 * wsync_prior table), so that a peer weighs it as its origin made it; a
 * value known no more (replaced without a note, as by a write found by
 * scanning) is left out of the older change (an insert then keeps the
 * row's current value, so the row stays whole).
 * Every batch is given, even one left empty, so the peer's clock moves
 * on.  Seal first to include local changes.  WS_ERANGE when entries
 * after `usn` were garbage-collected (the peer needs a full copy).
 */
int ws_store_changes_since(struct ws_store *s, uint64_t usn, ws_store_batch_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/*
 * The same, for this site's own batches only: what a site pushes.  The
 * batches it received are skipped before any row is read.
 */
int ws_store_local_since(struct ws_store *s, uint64_t usn, ws_store_batch_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/*
 * Call cb for each batch whose dot `peer` has not seen, in the order they
 * were applied here (a causal order).  WS_ERANGE if the peer lacks
 * batches this store has garbage-collected.
 */
int ws_store_changes_missing(struct ws_store *s, const struct ws_vclock *peer,
    ws_store_batch_cb *cb, void *clientData, char *err) WS_MUST_CHECK;

/* One conflict: a value that lost, and the cell it lost in. */
struct ws_conflict {
	int64_t id;                /* handle for ws_store_resolve() */
	const char *table;
	const struct ws_value *pk; /* the table's primary-key values */
	uint32_t npk;
	const char *column;
	int lost_to_delete;        /* 1: the value is not in the row: it was
	                              deleted concurrently, or lost to a
	                              constraint (kind) */
	const char *kind;          /* "value" (a concurrent write won),
	                              "delete", or the constraint a merge
	                              would have broken: "unique", "check",
	                              "fk" */
	struct ws_value value;     /* the losing value */
	struct ws_siteid site;     /* the losing version's dot */
	uint64_t counter;
};

typedef int ws_store_conflict_cb(const struct ws_conflict *c, void *clientData);

/*
 * Call cb for each conflict, ordered by table, key, column and dot, so
 * replicas holding the same conflicts list them identically.  Pointers
 * in *c are valid during the call only.
 */
int ws_store_conflicts(struct ws_store *s, ws_store_conflict_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/*
 * Resolve conflict `id` as a local change that replicates: make its
 * value the cell's value (for a value that lost to a delete, re-insert
 * the row with the values that lost with it), or, with keep != 0, keep
 * the current value.  Either way the write has seen every version of the
 * cell, so every replica drops the cell's conflicts when it arrives.
 * WS_ENOTFOUND for an unknown id.
 */
int ws_store_resolve(struct ws_store *s, int64_t id, int keep, char *err) WS_MUST_CHECK;

/*
 * Garbage-collect: drop the log entries and batch records of the batches
 * within `stable`, a clock every site has reached.  Their cells count as
 * seen everywhere from then on (any new change replaces them).  Conflicts
 * stay until resolved.  *dropped (may be NULL) receives the number of log
 * entries removed.
 */
int ws_store_gc(struct ws_store *s, const struct ws_vclock *stable,
    uint64_t *dropped, char *err) WS_MUST_CHECK;

/*
 * Lower a proposed collection horizon *h (what every site holds) until
 * every batch this store holds outside it has seen all of it: its
 * context clock, with the collected horizon, reaches *h.  A batch made
 * concurrently with a version within the horizon must not be merged at a
 * replica that has collected that version, where it would count as seen
 * and be replaced, while the replicas that merged the batch earlier kept
 * it (and the batch lost); so that version waits until every site holds
 * the batch too.  For the hub, before ws_store_gc().
 */
int ws_store_gc_bound(struct ws_store *s, struct ws_vclock *h, char *err) WS_MUST_CHECK;

/*
 * The collected horizon into *out (replacing it): the union of every
 * clock given to ws_store_gc().  A peer whose clock does not reach it
 * lacks batches this store no longer has, and needs a full copy
 * (ws_store_snapshot).
 */
int ws_store_stable(struct ws_store *s, struct ws_vclock *out, char *err) WS_MUST_CHECK;

/*
 * A full copy, for a peer that lacks batches garbage-collected here: cb
 * gets every row of every tracked table as inserts, in batches of up to
 * 1,000 rows (or about 1 MiB), without a dot (each change names this
 * site, counter 1) and with the collected horizon as clock.  A table
 * with no rows gives no batch.  Then the conflicts whose losing version
 * is within the horizon, in batches that carry a Lamport number (the
 * conflicts' own, one number and one table a batch): a change per
 * conflict, an update of its one column (an insert for a value that lost
 * to a delete) with the losing version's dot.  Read in one transaction,
 * so the copy is one consistent state.
 */
int ws_store_snapshot(struct ws_store *s, ws_store_batch_cb *cb, void *clientData,
    char *err) WS_MUST_CHECK;

/*
 * Receive a full copy made at horizon `stable` (the sender's
 * ws_store_stable): begin, add each batch (its tables are adopted, and
 * it is kept aside), then end, which merges it all in one transaction:
 * - a cell whose version here is within the horizon, or that has none,
 *   takes the copy's value; a newer one (a local change the sender may
 *   lack, or one it will send after the copy) stays;
 * - a row the copy has that was deleted here outside the horizon stays
 *   deleted; one it lacks is deleted, or keeps only its newer cells;
 * - the conflicts whose losing version is within the horizon are the
 *   copy's, but on cells and rows with a newer version here;
 * - the clock then covers the horizon, and the log within it is
 *   collected, as the sender's is.
 * Abort (or an error) leaves the store as it was.  The batches after the
 * copy are merged with ws_store_apply() as usual.
 */
int ws_store_snapshot_begin(struct ws_store *s, const struct ws_vclock *stable,
    char *err) WS_MUST_CHECK;
int ws_store_snapshot_add(struct ws_store *s, const struct ws_batch *b, char *err) WS_MUST_CHECK;
int ws_store_snapshot_end(struct ws_store *s, char *err) WS_MUST_CHECK;
void ws_store_snapshot_abort(struct ws_store *s);

/*
 * Reading a database file as it stands, for inspection (store-info.c):
 * any SQLite file, a working set or not, opened read-only without
 * opening a store.  One struct ws_store_file is one connection, freed
 * with ws_store_file_close() (NULL is allowed).  Messages in err do not
 * name the file: the caller does.
 */
struct ws_store_file;

/* Open path read-only.  WS_ECORRUPT ("cannot open database: why"). */
int ws_store_file_open(struct ws_store_file **out, const char *path,
    char *err) WS_MUST_CHECK;
void ws_store_file_close(struct ws_store_file *f);
/*
 * SQLite's quick check of the whole file: 0 when it passes; WS_ECORRUPT
 * with "damaged database: what" or "cannot check: why" in err.
 */
int ws_store_file_check(struct ws_store_file *f, char *err) WS_MUST_CHECK;
/* The working-set id into wsid[0..size), or "" when the file is not one. */
void ws_store_file_wsid(struct ws_store_file *f, char *wsid, size_t size);

/* Sizes of a working set's metadata; each is -1 when it cannot be read. */
struct ws_store_stats {
	int64_t tables;    /* tracked tables */
	int64_t entries;   /* change-log entries */
	int64_t first_usn; /* lowest usn in the log (-1: empty) */
	int64_t last_usn;  /* highest usn in the log (-1: empty) */
	int64_t batches;   /* batch records */
	int64_t bytes;     /* bytes of the log and batch tables (dbstat) */
	int64_t conflicts; /* conflicts not resolved */
};
void ws_store_file_stats(struct ws_store_file *f, struct ws_store_stats *out);

/*
 * A tracked table as wsync_tables records it: cols[0..ncols) its
 * columns, pk[0..npk) its key's ("?" for a name the record lacks).
 */
struct ws_store_table {
	const char *name;
	size_t ncols;
	const char *const *cols;
	size_t npk;
	const char *const *pk;
};
/* Callback: strings valid during the call only; non-zero stops (passed back). */
typedef int ws_store_table_cb(const struct ws_store_table *t, void *clientData);
/*
 * Call cb for each tracked table, by name.  WS_ECORRUPT ("cannot read
 * wsync_tables: why") when the file has no such record.
 */
int ws_store_file_tables(struct ws_store_file *f, ws_store_table_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/* One table a replicator fills (replicate.h); NULL for a field not set. */
struct ws_store_replica {
	const char *table;   /* the local table */
	const char *source;
	const char *guid;
	int64_t usn;
	const char *updated;
};
typedef int ws_store_replica_cb(const struct ws_store_replica *r, void *clientData);
/*
 * The replicator's state: *n is the number of its tables, or -1 when the
 * file has no replicator state (cb is not called then); cb (may be NULL
 * to count only) gets each table, by local name.  Non-zero from cb stops
 * and is passed back.  WS_ECORRUPT ("cannot read wsync_replica: why").
 */
int ws_store_file_replica(struct ws_store_file *f, int64_t *n,
    ws_store_replica_cb *cb, void *clientData, char *err) WS_MUST_CHECK;

/*
 * The hub's tables (store-info.c).  A hub remembers, per working set,
 * how far each site has got (wsync_members: the site's clock and when it
 * was last seen), so that collection keeps counting a site after it
 * leaves, and which key owns which site id (wsync_site_keys).  Errors are
 * WS_EIO with SQLite's reason in err, unless said otherwise.
 *
 * ws_store_hub_init(): make the tables (idempotent) and put the file in
 * WAL mode, one sync a commit instead of a journal's four (the hub
 * commits every batch before it forwards it); err names the working set.
 */
int ws_store_hub_init(struct ws_store *s, char *err) WS_MUST_CHECK;
/*
 * A write transaction around several member updates: begin (BEGIN
 * IMMEDIATE), commit; rollback undoes an open one and does nothing when
 * none is open.  Not around the store's other calls, which run their own.
 */
int ws_store_hub_begin(struct ws_store *s, char *err) WS_MUST_CHECK;
int ws_store_hub_commit(struct ws_store *s, char *err) WS_MUST_CHECK;
void ws_store_hub_rollback(struct ws_store *s);
/* Record that site has reached clock, seen at `seen` (seconds since the epoch). */
int ws_store_member_put(struct ws_store *s, const struct ws_siteid *site,
    const struct ws_vclock *clock, int64_t seen, char *err) WS_MUST_CHECK;
/* Forget site (absent is fine). */
int ws_store_member_forget(struct ws_store *s, const struct ws_siteid *site,
    char *err) WS_MUST_CHECK;
/* Forget the sites last seen before `before`, or every site when all != 0. */
int ws_store_members_expire(struct ws_store *s, int64_t before, int all,
    char *err) WS_MUST_CHECK;
/*
 * Lower *h to what every remembered site holds (ws_vclock_meet with each
 * member's clock); *any is 1 when there was at least one member.  A
 * member's clock that does not decode is its decoder's error.
 */
int ws_store_members_meet(struct ws_store *s, struct ws_vclock *h, int *any,
    char *err) WS_MUST_CHECK;
/*
 * Bind site to the public key key[0..keylen), or check it: a site id
 * belongs to the first key that used it, and a key holds at most `max`
 * site ids.  WS_EPERM with the reason (naming the working set) when the
 * site is another key's or the key holds `max` already.
 */
int ws_store_site_key_bind(struct ws_store *s, const struct ws_siteid *site,
    const uint8_t *key, size_t keylen, size_t max, char *err) WS_MUST_CHECK;
/*
 * Forget site in the hub's database at path, opened for this call only
 * (wsync-serve --forget): both tables; a file without them is left
 * alone.  *changed is 1 when a row went.  err names the file.
 */
int ws_store_forget_site(const char *path, const struct ws_siteid *site,
    int *changed, char *err) WS_MUST_CHECK;

#endif
