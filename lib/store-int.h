/* SPDX-License-Identifier: MIT */
/*
 * store-int.h - the store's private parts, shared by its files
 * (lib/store*.c; store.c lists them and what each holds): the store and
 * tracked-table structs, the helpers more than one file calls (each
 * declared here with the file that defines it), and the state of a
 * merge, which store-snap.c shares with store-merge.c.  Everything else
 * stays static in its file.  Nothing outside lib/store*.c includes this
 * but replicate-int.h, for MAX_TRACKED_COLS.  The SQLite helpers the
 * store shares with replication are in sql.h.
 */
#ifndef WSYNC_STORE_INT_H
#define WSYNC_STORE_INT_H

#include <sqlite3.h>

#include "sql.h"
#include "wsync/buf.h"
#include "wsync/schema.h"
#include "wsync/store.h"

#define OP_LOSTDEL 0x10 /* op flag in wsync_log: the change lost to a delete */
/*
 * op flag in wsync_log, with WS_OP_DELETE: a removal made here on behalf
 * of another batch (the write of this key lost a UNIQUE clash to that
 * batch's, see store-claims.c).  Its lost column holds a usn of that
 * batch, whose version the removal takes.  Never sent: every copy makes
 * it alike.
 */
#define OP_BY 0x20
#define MAX_TRACKED_COLS 63
#define STMT_CACHE 128 /* slots in the prepared-statement cache */

/* Statements that read or write a tracked table, cached per table. */
enum { TS_ROW, TS_DEL, TS_UPD, TS_INS };
#define TSTMT_CACHE 16

/* A UNIQUE index of a tracked table (store-claims.c). */
struct sto_uniq {
	char *name;
	int skip;                      /* on an expression: makes no claims */
	uint32_t ncols;
	uint32_t col[MAX_TRACKED_COLS]; /* t->cols indexes, index order */
};

/* A foreign key of a tracked table to a tracked parent's key (store-claims.c). */
struct sto_fk {
	char *parent;
	int action;                     /* its ON DELETE: STO_FK_* */
	uint32_t ncols;
	uint32_t col[MAX_TRACKED_COLS]; /* child columns, in the parent key's order */
};
enum { STO_FK_NONE, STO_FK_CASCADE, STO_FK_SET_NULL };

struct tbl {
	int64_t id;
	char *name;
	uint32_t ncols;
	char **cols;
	uint32_t npk;
	uint32_t *pk;
	int64_t allmask; /* every non-pk column */
	int null_key;    /* SQLite lets the key hold NULL (sto_describe only) */
	int rules;       /* 1 once notnull and intkey were read (tbl_rules()) */
	int64_t notnull; /* columns declared NOT NULL */
	int intkey;      /* the key is the rowid: an INTEGER PRIMARY KEY */
	int rowid_key;   /* no declared key: cols[0] names the rowid itself
	                    ("rowid", or "_rowid_" or "oid" when a column
	                    hides it) and the table's columns follow */
	struct sto_uniq *uniq; /* its UNIQUE indexes but the key's */
	uint32_t nuniq;
	int64_t uniq_at;       /* 1 + schema_version when uniq was read; 0 never */
	struct sto_fk *fk;     /* its foreign keys that act on a parent's delete */
	uint32_t nfk;
	int constrained;       /* sto_constrained(), read with uniq */
	struct {
		int kind;
		int64_t mask;
		sqlite3_stmt *st;
	} tc[TSTMT_CACHE];
	unsigned tc_next;
};

struct ws_store {
	sqlite3 *db;
	char *wsid;
	struct ws_siteid site;
	int64_t self;
	uint8_t guid[WS_GUID_LEN];
	int has_guid;
	struct tbl *t;
	size_t nt;
	unsigned nk;            /* k columns in wsync_log */
	int schema_version;     /* PRAGMA schema_version when tables were checked */
	struct ws_siteid *sites;/* wsync_sites, by id (1-based; [0] unused) */
	size_t nsites;
	struct ws_vclock snap;  /* horizon of the full copy being received */
	int in_snap;
	int local_views;         /* views and triggers stay local (schema.h) */
	int fk_ver;             /* schema_version when sto_fk_policy() last ran */
	int fk_on;              /* merges enforce foreign keys (sto_fk_policy()) */
	int scan;               /* capture by comparison too (ws_store_scan()) */
	int64_t scan_dv;        /* PRAGMA data_version at the last scan, or -1 */
	int schema_told;        /* schema_version when the schema was last
	                           compared with the agreed one (-1: never) */
	struct cached {         /* prepared statements, by their SQL */
		char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
};

/*
 * --- shared by the store's files (each defined in the file named) --------
 * store.c: the statement caches, meta values, the tracked tables' records.
 */
/* A statement from the store's cache, by its SQL: reset, never finalized. */
int sto_stmt(struct ws_store *s, const char *sql, sqlite3_stmt **st, char *err);
/* The same for the text of q, which it ends (see sto_str_prep() in sql.h). */
int sto_str_stmt(struct ws_store *s, sqlite3_str *q, sqlite3_stmt **st, char *err);
/* A cached statement of t (TS_ROW, ...): see its comment in store.c. */
int sto_tstmt(struct ws_store *s, struct tbl *t, int kind, int64_t mask,
    sqlite3_stmt **st, char *err);
/* Run sql, which takes one integer ?1, once (a cached statement). */
int sto_exec_int(struct ws_store *s, const char *sql, int64_t v, char *err);
/* Run sql, which gives one integer, into *v. */
int sto_query_u64(struct ws_store *s, const char *sql, uint64_t *v, char *err);
int sto_meta_get(struct ws_store *s, const char *key, void **val, size_t *n,
    char *err);
int sto_meta_set(struct ws_store *s, const char *key, const void *val,
    size_t n, int text, char *err);
int64_t sto_meta_int(struct ws_store *s, const char *key);
int sto_meta_set_int(struct ws_store *s, const char *key, int64_t v, char *err);
/* 1 if the query sql gives a row (errors count as a row: the safe side). */
int sto_meta_exists(struct ws_store *s, const char *sql);
/* The local number of a site id into *out, adding it if new. */
int sto_site_index(struct ws_store *s, const struct ws_siteid *id, int64_t *out,
    char *err);
/* Set site's counter in the vector clock (wsync_clock). */
int sto_clock_set(struct ws_store *s, int64_t site, uint64_t counter, char *err);
/* Free what sto_uniq() read of t (store.c, with the rest of t). */
void sto_uniq_release(struct tbl *t);
void sto_tbl_release(struct tbl *t);
int sto_count_k(struct ws_store *s, char *err);
int sto_load_tables(struct ws_store *s, char *err);
struct tbl *sto_find_tbl(struct ws_store *s, const char *name);
struct tbl *sto_tbl_by_id(struct ws_store *s, int64_t id);
/* Encode the npk key values of st's current row (columns from..) into out. */
int sto_pk_blob(sqlite3_stmt *st, int from, uint32_t npk, struct ws_buf *out);
/* Append " WHERE "k1col" IS ?n AND ..." for t's key, numbering from n. */
void sto_str_pk_where(sqlite3_str *q, const struct tbl *t, unsigned n);

/* store-track.c: describing, registering and re-tracking tables. */
int sto_describe(struct ws_store *s, const char *name, struct tbl *t, char *err);
int sto_register_table(struct ws_store *s, struct tbl *t, char *err);
int sto_reserved_name(const char *name);
int sto_retrack(struct ws_store *s, struct tbl *t, char *err);
/* PRAGMA schema_version into *ver: it moves with every schema change. */
int sto_schema_version(struct ws_store *s, int *ver, char *err);
/*
 * Keep the capture triggers after every other object in sqlite_schema
 * (re-made when one came after them, or always with force), so that
 * `.schema TABLE` lists the same text in the same order on every copy.
 */
int sto_triggers_last(struct ws_store *s, int force, char *err);
/* Append "<prefix>k1, <prefix>k2, ..." for n key columns. */
void sto_str_ks(sqlite3_str *q, unsigned n, const char *prefix);
/*
 * Follow schema changes of tracked tables: columns added at the end are
 * tracked from now on; anything else is WS_ESCHEMA.  Cheap when the
 * schema did not change.  Call inside a write transaction.
 */
int sto_follow_schema(struct ws_store *s, char *err);
/*
 * End a transaction that changed the tracked tables: COMMIT when rc is 0;
 * otherwise, or when COMMIT fails, ROLLBACK and reload the tables and
 * the log's key columns as the database holds them.  Returns rc.
 */
int sto_tables_end(struct ws_store *s, int rc, char *err);

/* store-seal.c: the sum of a clock's counters, the Lamport number of a batch. */
uint64_t sto_lamport_of(const struct ws_vclock *vc);
/* store-seal.c: record a batch row: dot, usn range, Lamport number, context. */
int sto_add_batch_row(struct ws_store *s, int64_t site, uint64_t counter,
    uint64_t first, uint64_t last, const struct ws_vclock *ctx, uint64_t lamport,
    char *err);
/*
 * store-seal.c: ws_store_seal() inside an open write transaction: seal
 * the local changes logged since the last seal into a batch of this
 * site's (*sealed 1), after following schema changes.
 */
int sto_seal_locked(struct ws_store *s, int *sealed, char *err);

/* store-gc.c: the collected horizon (meta "gc") into *out, replacing it. */
int sto_stable_get(struct ws_store *s, struct ws_vclock *out, char *err);
/* store-gc.c: ws_store_gc() inside an open write transaction, after a seal. */
int sto_gc_locked(struct ws_store *s, const struct ws_vclock *stable,
    uint64_t *dropped, char *err);

/*
 * store-scan.c: capture by comparison (ws_store_scan()).  Within a write
 * transaction: sto_scan() logs what writers with triggers off changed
 * since the store last looked (when scanning is on and another connection
 * wrote since); sto_scan_refresh() records the state of the rows that the
 * log entries usn first..last name, which this store wrote or logged
 * itself; sto_scan_rebuild() records every row anew (after a full copy).
 */
int sto_scan(struct ws_store *s, char *err);
int sto_scan_refresh(struct ws_store *s, uint64_t first, uint64_t last, char *err);
int sto_scan_rebuild(struct ws_store *s, char *err);

/*
 * store-schema.c: rebuild each FTS5 table of the working set whose
 * content table has log entries from usn first on (after a merge; the
 * triggers that keep such an index do not run then).
 */
int sto_fts_rebuild(struct ws_store *s, uint64_t first, char *err);
/* Does this CREATE VIRTUAL TABLE text travel (FTS5 on a tracked table)? */
int sto_fts_travels(struct ws_store *s, const char *sql);

/* store-schema.c: WS_ESCHEMA when a tracked table changed here other
 * than by columns added at the end of its last agreed definition. */
int sto_schema_check_local(struct ws_store *s, char *err);

/*
 * store-claims.c: claims on the values of UNIQUE indexes.  sto_uniq()
 * reads t's UNIQUE indexes (again after a schema change); sto_uniq_touched()
 * tells whether a write of mask sets a column of index u; sto_claim_value()
 * encodes index u's values for a write (val: the values it sets, by column,
 * or NULL; pk its key; row the row as it stands, stepped, or NULL), *ok 0
 * when one is NULL or unknown (no claim); sto_claim_add() records one;
 * sto_claims_seal() records those of the local log entries first..last.
 */
int sto_uniq(struct ws_store *s, struct tbl *t, char *err);
/*
 * sto_uniq() reads t's foreign keys too (t->fk): those whose ON DELETE is
 * CASCADE or SET NULL and whose parent columns are the parent's key.
 */
int sto_uniq_touched(const struct tbl *t, uint32_t u, int64_t mask);
int sto_claim_value(const struct tbl *t, uint32_t u, const struct ws_value *const *val,
    const struct ws_value *pk, sqlite3_stmt *row, struct ws_buf *out, int *ok);
int sto_claim_add(struct ws_store *s, const struct tbl *t, uint32_t u,
    const struct ws_buf *val, const struct ws_buf *pk, uint64_t usn, char *err);
int sto_claims_seal(struct ws_store *s, uint64_t first, uint64_t last, char *err);
/*
 * Has t a constraint a merge weighs (UNIQUE but the key, FOREIGN KEY,
 * NOT NULL but the key, CHECK)?  Then the values its changes replace are
 * kept (wsync_prior), for the older entries that set them to travel with
 * their own; a table without needs only each cell's newest value.
 */
int sto_constrained(struct ws_store *s, const struct tbl *t, int *yes, char *err);

/*
 * --- the merge's state (store-merge.c) ---------------------------------
 * store-snap.c takes a full copy in through the merge's own steps, so
 * the state of one batch's merge and the steps it uses are shared.
 */

/* A version of a cell: a dot and its Lamport number; site 0 = none. */
struct ver {
	int64_t site;
	uint64_t counter;
	uint64_t lamport;
};

/* A batch table mapped onto a tracked one, worked out once per batch. */
struct bmap {
	struct tbl *t;
	uint32_t col[MAX_TRACKED_COLS]; /* local index of each batch column */
	int history;                   /* the log holds older entries of t */
};

/* Per-apply state: prepared statements and the batch being applied. */
struct apply {
	struct ws_store *s;
	const struct ws_batch *b;
	int64_t origin;          /* local site number of the batch's dot */
	uint64_t counter, lamport;
	uint64_t first_usn;      /* the batch's first log entry */
	int any_conflicts;       /* wsync_conflicts may hold rows */
	struct ws_vclock gc;     /* versions within it count as seen by all */
	struct bmap *map;        /* per batch table; t NULL until first use */
	sqlite3_stmt *hist, *dot, *conf, *addconf, *delconf, *killconf, *log;
	struct ws_buf pk, q;
	int clash;               /* CLASH: the kind of constraint it broke */
	struct ws_buf gone;      /* keys of the rows a UNIQUE contest removed, */
	uint32_t ngone;          /* logged as deletes after the change itself */
	/* The change's claims (store-claims.c; see claims_contest()): */
	struct ws_buf cl;        /* u32 index, u32 length, values; each claim */
	struct ws_buf by;        /* usns of the stronger claims it lost to */
	struct ws_buf killed;    /* keys of the rows its claims removed */
	struct ws_buf again;     /* int64 mask, u64 usn: cells of its row that */
	uint32_t ncl, nby, nkilled, nagain; /* outlive that removal */
	struct ws_buf killed_prior; /* prior_read() of each row in killed */
	struct ws_buf lose_prior; /* prior_read() of its own row, if removed */
	sqlite3_value *prior[MAX_TRACKED_COLS]; /* what the change replaced, */
	int64_t prior_mask;      /* noted in wsync_prior with its entry */
	char *err;
};

/*
 * What sto_step_write() returns when a write broke a constraint that only
 * concurrency can break here (UNIQUE, CHECK, FOREIGN KEY, a NOT NULL
 * column left empty by a merge); a->clash holds the kind, as stored in
 * wsync_conflicts.lostdel.  Positive: never a WS_E* code.
 */
#define CLASH 1
enum { KIND_VALUE, KIND_DELETE, KIND_UNIQUE, KIND_CHECK, KIND_FK };

/* What a row's log says, newest first. */
struct history {
	int state;                      /* 0 unknown, 1 alive, 2 deleted */
	struct ver del;                 /* the delete's version when deleted */
	int unseen_delete;              /* a delete the change has not seen */
	uint64_t unseen_usn;            /* a log entry of that delete's batch */
	struct ver cell[MAX_TRACKED_COLS]; /* winning version per column */
	uint64_t usn[MAX_TRACKED_COLS]; /* the log entry that set it */
	int64_t known;                  /* columns whose version was found */
};

/*
 * store-merge.c: the merge's steps, which store-apply.c and store-snap.c
 * use too (their comments in store-merge.c say more).
 */
/* Set up a for merging into s (statements, the collected horizon). */
int sto_apply_init(struct apply *a, struct ws_store *s, char *err);
void sto_apply_release(struct apply *a);
/* Has the batch's context seen version v? */
int sto_seen(const struct apply *a, const struct ver *v);
/* Does version x win over y, both concurrent (Lamport number, then site id)? */
int sto_wins(const struct ws_store *s, const struct ver *x, const struct ver *y);
/*
 * Read the row's history as change `a` sees it: each cell's version
 * since the row's last delete, whether the row is alive, and whether a
 * delete in its whole history is concurrent with the change.
 */
int sto_load_history(struct apply *a, const struct tbl *t,
    const struct ws_value *pk, struct history *h);
/* Record value (column col of sv, or v) as a conflict of cell col. */
int sto_add_conflict(struct apply *a, const struct tbl *t, int col, int lostdel,
    const struct ver *ver, sqlite3_value *sv, const struct ws_value *v);
/* Bind the values a TS_INS or TS_UPD statement of t takes for mask. */
void sto_bind_write(sqlite3_stmt *w, const struct tbl *t, int kind, int64_t mask,
    const struct ws_value *const *val, const struct ws_value *pk);
/* Step a cached write statement once: 0, CLASH or a WS_E* code. */
int sto_step_write(struct apply *a, const struct tbl *t, sqlite3_stmt *w);
/* Encode the key values pk of t into out (a conflict's pk blob). */
int sto_key_blob(const struct tbl *t, const struct ws_value *pk, struct ws_buf *out);
/*
 * Keep the values row pk holds now in the columns of mask as conflicts
 * of `kind` (they are about to go).  a->pk must hold pk's blob.
 */
int sto_lose_row(struct apply *a, const struct tbl *t, const struct ws_value *pk,
    const struct history *h, int kind, int64_t mask);
/* Append "SELECT <columns> FROM <t>": every column (all), or the key's. */
void sto_str_select(sqlite3_str *q, const struct tbl *t, int all);
/*
 * Write change c to t with the statement of `kind` (TS_INS, TS_UPD or
 * TS_DEL), a UNIQUE clash contested once; CLASH when c loses to a
 * constraint.
 */
int sto_write_row(struct apply *a, struct tbl *t, const struct ws_change *c,
    int kind, int64_t mask, const struct ws_value *const *val);
/* Change c lost to a constraint (a->clash): keep its values as conflicts. */
int sto_lose_change(struct apply *a, const struct tbl *t, const struct ws_change *c,
    const struct ws_value *const *val);
/* The mapping of batch table i onto a tracked table, made on first use. */
int sto_batch_map(struct apply *a, uint32_t i, struct bmap **out);
/*
 * Map batch table rt onto the tracked table of its name (*out), col[i]
 * the local index of its column i; WS_ESCHEMA naming what differs.
 */
int sto_map_table(struct ws_store *s, const struct ws_table *rt, struct tbl **out,
    uint32_t *col, char *err);
/*
 * Merge ready batch b, change by change, inside the open transaction,
 * and record it (its log range, its dot in the clock).
 */
int sto_apply_batch(struct ws_store *s, const struct ws_batch *b, char *err);

/* store-apply.c: apply every parked batch that has become ready, until none is. */
int sto_drain(struct ws_store *s, struct ws_vclock *clock, char *err);
/*
 * store-merge.c: decide whether merges enforce foreign keys (some tracked
 * table declares an action); outside a transaction.
 */
int sto_fk_policy(struct ws_store *s, char *err);

#endif
