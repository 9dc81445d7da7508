/* SPDX-License-Identifier: MIT */
/*
 * inspect-int.h - the private parts of wsync-inspect's views (inspect.h),
 * shared by their files:
 *   inspect.c           the run, sessions, one frame
 *   inspect-text.c      the helpers all of them use (times, values,
 *                       names, warnings, output), calling none of them
 *   inspect-check.c     --check: clocks that go back, dots with gaps
 *   inspect-timeline.c  the timeline, one line per frame
 *   inspect-stats.c     --stats: what is counted, and the summary
 *   inspect-input.c     reading: files (and --follow), binary frames,
 *                       JSON lines, and the resync of --salvage
 *   inspect-fetch.c     URLs, through libcurl
 *   inspect-db.c        the database view
 * Nothing outside lib/inspect*.c includes this.
 */
#ifndef WSYNC_INSPECT_INT_H
#define WSYNC_INSPECT_INT_H

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wsync/crc32c.h"
#include "wsync/escape.h"
#include "wsync/inspect.h"
#include "wsync/json.h"
#include "wsync/schema.h"
#include "wsync/store.h"
#include "wsync/stream.h"

#define CHUNK (256u << 10)        /* bytes read at a time */
#define OUT_FLUSH (256u << 10)    /* output is written in pieces this big */
#define SESS_BUCKETS 1024
#define DIR_NONE 2                /* a frame outside any log record */
#define TEXT_CUT 64               /* text longer than this is cut */
#define BLOB_CUT 32
#define SCHEMA_NAMES 8            /* table names shown for a SCHEMA frame */
#define FNV0 0xcbf29ce484222325ull /* FNV-1a's offset basis (insp_fnv) */

/* ANSI colours, used only with WS_INSPECT_COLOR. */
#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BLUE "\033[34m"

/* A map from 64-bit keys to 64-bit values (open addressing; inspect-stats.c). */
struct u64map {
	uint64_t *k, *v; /* key 0 is an empty slot */
	size_t cap, n;
};

/* What one session knows about one working set. */
struct wsstate {
	char wsid[WS_WSID_MAX + 1];
	int has_clock;
	struct ws_vclock clock; /* the sender's last clock */
	struct ws_vclock dots;  /* last dot counter seen per origin site */
	int has_adv;
	struct ws_vclock adv;   /* the clock this side announced in its ADD */
	int has_stable;
	struct ws_vclock stable; /* the last collected horizon (STABLE) sent */
	int has_snap;
	struct ws_vclock snap;  /* the horizon of the last full copy sent */
	int copy;               /* a full copy is under way (SNAPSHOT seen) */
};

struct chmap {
	uint32_t ch;
	size_t ws; /* index into ws[] */
};

/* One direction of one peer's session. */
struct sess {
	struct sess *next;
	char peer[256];
	size_t peerlen;
	unsigned dir;
	int has_site;
	struct ws_siteid site; /* the sender's site, from its HELLO */
	struct chmap *ch;
	size_t nch;
	struct wsstate *ws;
	size_t nws;
};

/* Frames and bytes under one name (a site, a working set, a table). */
struct count {
	char *name;
	uint64_t frames, bytes;
	uint64_t ops[4]; /* tables: changes per op */
};

struct counts {
	struct count *c;
	size_t n;
	size_t last;
};

/* What --stats counts. */
struct dot {
	struct ws_siteid site;
	uint64_t counter;
};

struct stats {
	uint64_t frames, bytes, inputs;
	uint64_t type_frames[256], type_bytes[256];
	struct counts sites, wsids, tables;
	uint64_t batches, distinct, copies;  /* batch frames: all, first, again */
	uint64_t changes, dchanges;          /* in all batches, in distinct ones */
	uint64_t conflicts;
	int has_time;
	uint64_t t_first, t_last;
	struct u64map seen;  /* distinct batches: hash of (wsid, dot) */
	struct u64map cells; /* hash of (wsid, table, pk, column) -> dots[i] + 1 */
	struct dot *dots;
	size_t ndots, capdots;
};

/* A frame as the views see it: unwrapped from its log record, if any. */
struct rec {
	int has_time;
	uint64_t time;
	unsigned dir;        /* WS_LOG_IN, WS_LOG_OUT or DIR_NONE */
	const char *peer;
	size_t peerlen;
	struct ws_frame f;   /* the frame (inside the record) */
	size_t bytes;        /* bytes of the whole frame in the input */
};

/* Decoded payload of the frame being handled. */
struct dec {
	int ok;              /* the payload was decoded */
	struct ws_hello hello;
	int hello_ok;
	unsigned notice;
	struct ws_siteid notice_site;
	int64_t code;
	const char *msg;
	size_t msglen;
	uint64_t hb;
	int schema_ok;       /* x->sc holds the record (else: unknown format) */
	uint64_t schema_fmt;
};

/* The kind of an input, and the state of a binary one. */
enum { K_UNKNOWN, K_BINARY, K_JSON, K_DATABASE };
enum { SC_PRE, SC_FRAMES, SC_RESYNC };

/* One input being read. */
struct sink {
	const char *name;
	int kind;
	struct ws_buf w;      /* unprocessed bytes */
	size_t pos;           /* processed up to here in w */
	uint64_t base;        /* stream offset of w.p[0] */
	int state;            /* SC_* for binary input */
	uint64_t dmg_at;      /* resync: where the damage starts */
	uint64_t q;           /* resync: next candidate offset */
	char dmg_why[WS_ERRLEN];
	struct ws_reader rd;  /* JSON input */
	uint64_t frames, bytes;
	int db;               /* it is a database (kind K_DATABASE) */
};

/* One run of ws_inspect_run(): options, output, sessions, stats. */
struct insp {
	const struct ws_inspect_opts *o;
	char *err;
	struct ws_buf out;
	int need_state;       /* decode frames and follow sessions */
	int need_batch;       /* decode batch payloads */
	struct sess *buckets[SESS_BUCKETS];
	struct sess plain;    /* frames outside log records */
	struct ws_batch b;
	struct ws_vclock vc;
	struct ws_add add;
	struct ws_schema sc;
	struct ws_buf tmp;
	struct stats st;
	struct sink *sk;      /* the input being read */
	/* inspect.c's handling of one frame (outer: as read, maybe a log
	 * record) of `bytes` bytes, which the readers call. */
	int (*on_frame)(struct insp *x, const struct ws_frame *outer, size_t bytes);
	int json_pos;         /* where: a JSON line (1) or a byte offset (0) */
	uint64_t at;          /* the frame's byte offset or line number */
	unsigned long problems, damages;
	uint64_t frames, bytes;
};

/* inspect-text.c: helpers that call nothing else of inspect. */
/* FNV-1a of p[0..n), continuing from h (FNV0 to start). */
uint64_t insp_fnv(uint64_t h, const void *p, size_t n);
/* Append a name from an input (s[0..n), or all of s): bare when plain,
 * else quoted and escaped. */
int insp_put_name(struct ws_buf *o, const char *s, size_t n);
int insp_put_names(struct ws_buf *o, const char *s);
/* insp_put_names(), then blanks up to width bytes. */
int insp_put_cell(struct ws_buf *o, const char *s, size_t width);
/* One line to opts->warn, when set. */
void insp_warn(struct insp *x, const char *fmt, ...) WS_PRINTF(2, 3);
/* Write x->out to opts->out_fd; a failure is described in x->err. */
int insp_flush(struct insp *x);
/* The same, the failure described in err. */
int insp_flush_to(struct insp *x, char *err);
/* "frame at byte N" or "line N", for messages about the current frame. */
const char *insp_where(const struct insp *x, char buf[64]);
/* Short form of a site id: its first 8 hex digits. */
void insp_short_site(const struct ws_siteid *s, char out[9]);

/* inspect-check.c: --check's comparisons, each problem to insp_warn(). */
/* No coordinate of the sender's clock goes back; w then holds vc. */
int insp_check_clock(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc);
/* A STABLE clock (with `snapshot`, a full copy follows): see there. */
int insp_check_stable(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc, int snapshot);
/* The dots of x->b, against those before them (recv: the receiver's side). */
int insp_check_batch(struct insp *x, const struct rec *r, struct wsstate *w,
    struct wsstate *recv);

/* inspect-timeline.c: the timeline line (and changes) of one frame. */
int insp_put_line(struct insp *x, const struct rec *r, const struct dec *d,
    const char *wsid);

/* inspect-stats.c: count one frame; the summary at the end; free st. */
int insp_stats_frame(struct insp *x, const struct rec *r, struct sess *s,
    const char *wsid);
int insp_put_stats(struct insp *x);
void insp_stats_release(struct stats *st);

/* inspect-input.c */
void insp_sink_init(struct sink *k, const char *name, size_t max);
void insp_sink_release(struct sink *k);
/* Process what k holds (frames go to x->on_frame()); at eof it ended. */
int insp_sink_process(struct insp *x, struct sink *k, int eof);
/* Read the file (or "-") k names; with follow, wait for it to grow. */
int insp_run_file(struct insp *x, struct sink *k, int follow);

/* inspect-fetch.c: read the URL k names, as it arrives. */
int insp_run_url(struct insp *x, struct sink *k);

/* inspect-db.c: the view of the SQLite database at path. */
int insp_db_view(struct insp *x, const char *path);

#endif
