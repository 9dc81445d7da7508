/* SPDX-License-Identifier: MIT */
/*
 * store-int.h - the store's private parts, shared by its files: store.c
 * (tracking, the log, merge, GC, snapshots) and store-schema.c (the
 * working set's schema record).  Nothing outside lib/store*.c includes
 * this.
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
	int fk_ver;             /* schema_version when fk_policy() last ran */
	int fk_on;              /* merges enforce foreign keys (fk_policy()) */
	int scan;               /* capture by comparison too (ws_store_scan()) */
	int64_t scan_dv;        /* PRAGMA data_version at the last scan, or -1 */
	int schema_told;        /* schema_version when the schema was last
	                           compared with the agreed one (-1: never) */
	struct cached {         /* prepared statements, by their SQL */
		char *sql;
		sqlite3_stmt *st;
	} cache[STMT_CACHE];
};


/* Helpers of store.c that store-schema.c uses too (see their comments). */
/* A statement from the store's cache, by its SQL: reset, never finalized. */
int sto_stmt(struct ws_store *s, const char *sql, sqlite3_stmt **st, char *err);
void sto_tbl_release(struct tbl *t);
void sto_tables_release(struct ws_store *s);
int sto_meta_get(struct ws_store *s, const char *key, void **val, size_t *n,
    char *err);
int sto_meta_set(struct ws_store *s, const char *key, const void *val,
    size_t n, int text, char *err);
int64_t sto_meta_int(struct ws_store *s, const char *key);
int sto_meta_set_int(struct ws_store *s, const char *key, int64_t v, char *err);
int sto_count_k(struct ws_store *s, char *err);
int sto_load_tables(struct ws_store *s, char *err);
struct tbl *sto_find_tbl(struct ws_store *s, const char *name);
int sto_describe(struct ws_store *s, const char *name, struct tbl *t, char *err);
int sto_save_table(struct ws_store *s, struct tbl *t, char *err);
int sto_make_triggers(struct ws_store *s, const struct tbl *t, char *err);
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

/* Encode the npk key values of st's current row (columns from..) into out. */
int sto_pk_blob(sqlite3_stmt *st, int from, uint32_t npk, struct ws_buf *out);
struct tbl *sto_tbl_by_id(struct ws_store *s, int64_t id);
/* A cached statement of t (TS_ROW, ...): see its comment in store.c. */
int sto_tstmt(struct ws_store *s, struct tbl *t, int kind, int64_t mask,
    sqlite3_stmt **st, char *err);

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
void sto_uniq_release(struct tbl *t);
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

#endif
