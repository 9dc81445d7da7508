/* SPDX-License-Identifier: MIT */
/*
 * replicate-int.h - the private parts of table replication (replicate.h),
 * shared by its files.  Nothing outside lib/replicate*.c includes this.
 *
 *   replicate-msg.c    the message codecs, the HTTP request heads and the
 *                      tokens: what reads untrusted bytes (the fuzzable part)
 *   replicate-sql.c    what both sides do with SQLite: errors, statements,
 *                      values, and the replicated table's columns
 *   replicate-pub.c    the publisher: its sessions and its loop
 *   replicate-http.c   the publisher's HTTP mapping (over lib/http.c)
 *   replicate-conn.c   the replicator's connection: stream, secure or HTTP
 *   replicate-apply.c  the replicator's writes: rows, arrays, the two-phase
 *                      delete, its transactions and events
 *   replicate-pull.c   the replicator's session: the tables and the capture
 *                      of local changes, the initial transfer, live
 *
 * The publisher's names start pub_, the replicator's rep_ (and rconn_ for
 * its connection), and those of both sides rpl_.
 */
#ifndef WSYNC_REPLICATE_INT_H
#define WSYNC_REPLICATE_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>

#include "http.h"
#include "sql.h"        /* sto_str_finish(), sto_value_of() */
#include "store-int.h"  /* MAX_TRACKED_COLS */
#include "wsync/buf.h"
#include "wsync/delta.h"
#include "wsync/loop.h"
#include "wsync/replicate.h"
#include "wsync/store.h"
#include "wsync/transport.h"

/* Largest frame of a secure session: a whole message, sealed. */
#define SECURE_MAX_FRAME (WS_REPLICATE_MAX_LINE + 1024)
/* Most columns of a replicated table: a change's mask has 63 bits. */
#define RPL_MAX_COLS MAX_TRACKED_COLS
/* Room for the key columns (positions 1 to RPL_MAX_COLS). */
#define RPL_MAX_KEY (RPL_MAX_COLS + 1)

/* --- replicate-msg.c: messages, lines and frames ------------------------- */

/* Append one compact JSON line for m to out; m is not consumed. */
int rpl_put_msg(struct ws_buf *out, const json_t *m);
/* Queue message m (consumed; NULL is out of memory) as a line of out. */
int rpl_send(struct ws_buf *out, json_t *m);
/* A message's "mt". */
const char *rpl_mt_of(const json_t *m);
/* A JSON object's member as a bool (absent: 0); -1 if not a bool. */
int rpl_get_bool(const json_t *m, const char *key);
/* A non-negative integer member into *v; WS_EJSON if absent or wrong. */
int rpl_get_u64(const json_t *m, const char *key, uint64_t *v, char *err);
/* A column or table name a message may carry. */
int rpl_name_ok(const char *s);
/*
 * A declared column type a message may carry: it goes into CREATE TABLE
 * and ALTER TABLE as it is, so only SQLite's type-name form passes:
 * words that are not SQL keywords, then at most "(n)" or "(n, m)" of
 * signed numbers; or nothing.
 */
int rpl_type_ok(const char *s);
void rpl_guid_hex(const uint8_t g[WS_GUID_LEN], char out[2 * WS_GUID_LEN + 1]);
/* Split the next complete line off in[off..len) into (line, n); 0 if none. */
int rpl_next_line(struct ws_buf *in, size_t *off, const char **line, size_t *n);
/* Drop in[0..off) once it is used. */
void rpl_compact(struct ws_buf *in, size_t *off);
/* Hand the frames in b[0..n) of a framed session to cb (secure.h). */
int rpl_frames_feed(struct ws_peer *pp, const uint8_t *b, size_t n, ws_frame_cb *cb,
    void *cd, char *err);
/* A MESSAGE frame's payload as a line of in. */
int rpl_message_line(struct ws_buf *in, const struct ws_frame *f, char *err);
/* Queue each line of out[*off..) as a MESSAGE frame on pp; out is emptied. */
int rpl_frame_lines(struct ws_peer *pp, struct ws_buf *out, size_t *off);
/* Release a session's secure peer, whose conn its owner closes. */
void rpl_peer_free(struct ws_peer *pp);
/* Open path for reading a secret: WS_EPERM if group or others may use it. */
int rpl_open_secret(const char *path, const char *what, FILE **f, char *err);
/* An inotify descriptor that wakes when the database or its WAL is written. */
int rpl_watch_db(const char *path);

/* --- replicate-sql.c: SQLite, and the replicated table's columns ---------- */

/*
 * SQLite's result src as a WS_E* code, with "what: <sqlite's message>".
 * Not sto_sqlerr() (sql.h): replication's messages never name the file,
 * and rpl_exec() and rpl_prepare() say "database", where the store's
 * say "sqlite"; the exact text is what its tests and users see.
 */
int rpl_sqlfail(sqlite3 *db, int src, const char *what, char *err);
/*
 * Open the database at path (sqlite3_open_v2's flags) into *db, with
 * the busy timeout (WS_SQL_BUSY_MS); the caller closes it.  On failure
 * *db is NULL.
 */
int rpl_db_open(const char *path, int flags, sqlite3 **db, char *err);
int rpl_exec(sqlite3 *db, const char *sql, char *err);
int rpl_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err);
/*
 * End the builder q (it is freed, whatever happens) and run its text, or
 * prepare it into *st (the caller finalizes it): the errors of rpl_exec()
 * and rpl_prepare(), or WS_ENOMEM when building the text ran out of
 * memory (sto_str_finish()).
 */
int rpl_str_exec(sqlite3 *db, sqlite3_str *q, char *err);
int rpl_str_prep(sqlite3 *db, sqlite3_str *q, sqlite3_stmt **st, char *err);
/* Result column i of st in the wire form (ws_json_from_value). */
json_t *rpl_col_json(sqlite3_stmt *st, int i);
/* Bind the JSON value j (the wire form of a value) to parameter i. */
int rpl_bind_json(sqlite3_stmt *st, int i, const json_t *j, struct ws_buf *tmp,
    const char *name, char *err);
/* Prepare "PRAGMA table_info(TABLE)" into *st, as rpl_str_prep(). */
int rpl_table_info(sqlite3 *db, const char *table, sqlite3_stmt **st, char *err);

/* One column of the replicated table, on either side. */
struct rpl_col {
	char *name;     /* the local table's column (the publisher's own) */
	char *remote;   /* published under this name */
	char *type;     /* declared type, "" if none */
	int key;        /* position in the primary key from 1, or 0 */
	int update;     /* publisher: replicators may update it;
	                   replicator: asked for, and granted */
	int array;      /* replicator: 1 + index into o->arrays, or 0 */
};

/* The columns of the replicated table, and its key. */
struct rpl_cols {
	struct rpl_col *v;
	size_t n;
	size_t nkey;
	size_t keys[RPL_MAX_KEY];     /* indexes into v, key order */
};

/* Free the columns (the set is empty after). */
void rpl_cols_release(struct rpl_cols *cs);
/* Fill keys[] and nkey from the columns' key positions. */
void rpl_cols_order_keys(struct rpl_cols *cs);
/* Who sent a key: it decides what a bad key is (a refusal, or corrupt). */
enum { RPL_KEY_FROM_REPLICATOR, RPL_KEY_FROM_PUBLISHER };
/* Bind key object k (remote names) from parameter `from` on. */
int rpl_cols_bind_key(const struct rpl_cols *cs, sqlite3_stmt *st, int from,
    const json_t *k, struct ws_buf *tmp, int sender, char *err);
/* Append " WHERE "k1" = ?from AND ..." (local names) to q. */
void rpl_cols_put_where(const struct rpl_cols *cs, sqlite3_str *q, int from);

/* --- the publisher (replicate-pub.c, replicate-http.c) --------------------- */

enum { S_START, S_INITIAL, S_LIVE };

struct pub;

/* One replicator's session, over a stream or over HTTP requests. */
struct psess {
	struct psess *next;
	struct pub *p;
	int http;
	struct ws_conn conn;          /* streams */
	struct ws_buf in, out;
	size_t in_off, out_off;
	char id[33];                  /* HTTP: the session's name */
	uint64_t last_ms;
	uint64_t since_ms;            /* when it connected */
	int state;
	int full;
	size_t *cols;                 /* session columns: indexes into p->cols */
	size_t ncols;
	size_t keypos[RPL_MAX_KEY];   /* key column j is session column keypos[j] */
	int add, del;
	int positional;               /* ReplicateUpdate columns as an array */
	sqlite3_stmt *first, *page;
	json_t *cursor;               /* the last key sent, in key order */
	uint64_t start_usn, sent_usn, synced_usn;
	int synced;
	unsigned unacked;
	int closing;                  /* send what is queued, then end */
	int dead;                     /* end now */
	char name[WS_CONN_NAMELEN];
	int sniffed;                  /* streams: the first byte told plain from framed */
	struct ws_peer *peer;         /* framed (secure) sessions: frames in and out */
	struct ws_buf raw;            /* framed: bytes read, before unframing */
	enum ws_right right;          /* a secure session's key's; plain: all */
	int who;                      /* HTTP: its token's entry + 1; 0 anonymous */
};

struct hreq;

/*
 * What the HTTP side (replicate-http.c) asks of the publisher's sessions:
 * replicate-pub.c fills it in, and the HTTP side calls nothing of that
 * file by name.
 */
struct pub_sess_ops {
	struct psess *(*open)(struct pub *p);          /* a new HTTP session */
	void (*close)(struct pub *p, struct psess *s); /* unlink and free it */
	int (*run)(struct psess *s);                   /* its lines, then a pump */
};

struct pub {
	const struct ws_replicate_pub_opts *o;
	const struct pub_sess_ops *sops; /* for the HTTP side */
	struct ws_store *st;          /* the change log of the table */
	sqlite3 *db;                  /* the table itself: the application's */
	struct rpl_cols cols;
	char guid[2 * WS_GUID_LEN + 1];
	struct psess *sess;
	struct hreq *hr;              /* HTTP requests under way */
	struct ws_http_server http;   /* the HTTP side (http.mhd NULL: none) */
	size_t max_body;
	int dirty;                    /* the table changed: pump every session */
	struct ws_buf tmp;            /* the bytes of a value being bound */
	char err[WS_ERRLEN];          /* a session's framing or handshake error */
	struct ws_loop *loop;         /* the publisher's loop (replicate-pub.c) */
	int ifd;                      /* the database's inotify watch, or -1 */
	size_t max_sessions;          /* stream sessions at most */
	uint64_t refused_ms;          /* when a refusal was last logged */
	int waited;                   /* the loop has waited once */
	int rc;                       /* what ends the loop, when not its own error */
};

#define plog(p, ...) ws_log_printf((p)->o->log, (p)->o->log_cd, __VA_ARGS__)

struct psess *pub_sess_new(struct pub *p, int http, const struct ws_conn *c);
/* Unlink session s from p and free it. */
void pub_sess_unlink(struct pub *p, struct psess *s);
/* Feed the complete lines of s->in to the session. */
int pub_feed_lines(struct psess *s);
/* Live: queue the changes after the session's usn, then a sync. */
int pub_pump(struct psess *s);

/*
 * replicate-http.c: start the HTTP side on listening socket fd (the
 * server owns it from then on); resume the long polls that are due (all:
 * every one); lower *timeout to the next deadline; stop it.
 */
int pub_http_start(struct pub *p, int fd, const char *bound, char *err);
void pub_http_wake(struct pub *p, int all);
void pub_http_timeout(struct pub *p, int *timeout);
void pub_http_stop(struct pub *p);
/* Session s is ending: no request waits on it any more. */
void pub_http_forget(struct pub *p, struct psess *s);

/* --- the replicator's connection (replicate-conn.c) ------------------------- */

struct rconn {
	int http;
	struct ws_conn conn;          /* streams */
	struct ws_buf in;
	size_t in_off;
	struct ws_http_client web;    /* HTTP */
	char session[65];
	struct ws_buf resp;
	size_t resp_off;
	struct ws_buf out;            /* lines not sent yet */
	uint64_t *bytes_in, *bytes_out;
	char *err;
	struct ws_peer *peer;         /* a secure stream session */
	struct ws_buf raw;            /* secure: bytes read, before unframing */
	struct ws_loop *loop;         /* streams: waits for the publisher */
	int extra_fd;                 /* rconn_recv()'s extra fd, while it waits */
	int ready;                    /* what the loop's round found ready */
	const struct ws_replicate_pull_opts *o;
};

int rconn_open(struct rconn *r, const struct ws_replicate_pull_opts *o, char *err);
void rconn_close(struct rconn *r);
/* Queue message m (consumed). */
int rconn_send(struct rconn *r, json_t *m);
/* Streams: write every queued line. */
int rconn_flush(struct rconn *r);
/*
 * The next message from the publisher into *m: 1, 0 when none came
 * within wait_ms (0: only what is already here), 2 when extra_fd (may
 * be -1) became readable first, or <0.
 */
int rconn_recv(struct rconn *r, json_t **m, int wait_ms, int extra_fd);

/* --- the replicator (replicate-apply.c, replicate-pull.c) ------------------- */

/* A statement for one set of present columns. */
struct rstmt {
	int kind;                     /* 0 upsert, 1 update */
	uint64_t mask;
	sqlite3_stmt *st;
};

#define RCACHE 16

struct child {
	json_t *known;                /* the child table's columns, as keys */
};

struct rep {
	const struct ws_replicate_pull_opts *o;
	sqlite3 *db;
	struct rconn c;
	char guid[2 * WS_GUID_LEN + 1];  /* stored; "" if none */
	uint64_t usn;                 /* stored */
	char pguid[2 * WS_GUID_LEN + 1];
	uint64_t start_usn, count, rows;
	int full, sweep;
	struct rpl_cols cols;         /* name: the local column */
	struct child *child;          /* one per o->arrays */
	struct rstmt cache[RCACHE];
	size_t ncache;
	sqlite3_stmt *sel, *sweep_ins, *mark, *unmark, *getmark;
	sqlite3_stmt *pend;           /* a row's changes still to go up */
	struct ws_buf tmp;            /* the bytes of a value being bound */
	json_t *events;               /* [[name, object], ...] after commit */
	uint64_t new_usn;
	int have_usn, got_sync, initialized;
	int64_t ndeleted;             /* markers of this table */
	int created;                  /* this run made the database file */
	int bound;                    /* a session set the table up (rep_setup()) */
	unsigned inflight;            /* upward changes waiting for a result */
	uint64_t t0;
	char *mapping;                /* the requested columns, as mapping_of() */
	char *err;
};

#define rlog(x, ...) ws_log_printf((x)->o->log, (x)->o->log_cd, __VA_ARGS__)

/* A column of the parent table (not an array's). */
static inline int rep_parent_col(const struct rpl_col *c)
{
	return !c->array;
}

/* Free the columns, the child tables' and the statements of a session. */
void rep_release_cols(struct rep *x);
/* Queue an event; it is delivered after the transaction commits. */
int rep_event(struct rep *x, const char *name, json_t *obj);
/* Step st once and reset it: 0, or the error about `what`. */
int rep_step_done(struct rep *x, sqlite3_stmt *st, const char *what);
/* The local row with key (remote names) in x->sel: 1, 0 when none, or <0. */
int rep_find_row(struct rep *x, const json_t *key);
/* The pending local changes of a row (see its comment). */
int rep_pending_cols(struct rep *x, const json_t *key, uint64_t *mask, int *gone);
int rep_apply_row(struct rep *x, const json_t *cols, uint64_t usn);
int rep_apply_update(struct rep *x, const json_t *m, uint64_t usn);
int rep_apply_del(struct rep *x, const json_t *m, uint64_t usn);
/* Phase one of a delete: the row in `row` (key at keypos) is marked deleted. */
int rep_mark_deleted(struct rep *x, sqlite3_stmt *row, const int *keypos, uint64_t usn);
/* Phase three: remove the rows whose delete is confirmed. */
int rep_remove_confirmed(struct rep *x);
int rep_tx_begin(struct rep *x);
/* Record the usn reached (if any) and commit. */
int rep_tx_commit(struct rep *x);
void rep_tx_abort(struct rep *x);
/* Deliver the queued events; confirm the deletes they handled. */
int rep_deliver(struct rep *x);

#endif
