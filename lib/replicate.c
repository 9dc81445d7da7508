/* SPDX-License-Identifier: MIT */
/*
 * replicate.c - table replication: the publisher (a poll(2) loop over
 * stream and HTTP sessions, its changes read from the store) and the
 * replicator (a client that writes into its own table, keeping the
 * publisher's guid and usn beside it).  The messages are JSON objects
 * with an "mt"; wsync-replicate(1) documents them and the HTTP mapping.
 *
 * Publisher, per session: ReplicateStart checks the rights and says
 * whether the replication is full; ReplicateNext pages through the table
 * in key order (keyset pagination, so no read transaction stays open);
 * then the session is live: the changes after its usn, as the store
 * gives them, go out as ReplicateAdd/Update/Del, at most a window of
 * them unacknowledged, and a ReplicateSync says when it has sent all.
 * Over HTTP a session lives in memory between requests and a response
 * carries what the session has queued.
 *
 * Secure stream sessions carry the same messages, one a
 * WS_FRAME_MESSAGE frame, through a struct ws_peer made secure
 * (secure.h); the JSON lines go on being read from and queued in the
 * session's buffers, and are framed and unframed at its edge.
 *
 * Replicator: one transaction per group of messages, holding their
 * effects and the usn they reach, so a run killed at any point resumes
 * correctly.  A full pass leaves guid NULL in wsync_replica until it
 * ends, so a killed full pass starts again.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wsync/delta.h"
#include "wsync/escape.h"
#include "wsync/json.h"
#include "wsync/hub.h"
#include "wsync/replicate.h"
#include "wsync/store.h"
#include "wsync/transport.h"

#define WSID "replicate"
#define HTTP_IDLE_MS (600u * 1000u)
#define OUT_HIGH (4u << 20)        /* stop reading the log past this many queued bytes */
#define MAX_PAGE 10000             /* rows in one ReplicateNextResult */
#define STOP_PUMP WS_EAGAIN        /* a callback's way to stop the store's loop */

/* --- shared helpers ----------------------------------------------------- */

/* Append name as a quoted SQL identifier. */
static int qid(struct ws_buf *b, const char *name)
{
	const char *p;

	if (ws_buf_putc(b, '"'))
		return WS_ENOMEM;
	for (p = name; *p; p++)
		if ((*p == '"' && ws_buf_putc(b, '"')) || ws_buf_putc(b, (uint8_t)*p))
			return WS_ENOMEM;
	return ws_buf_putc(b, '"');
}

/* The buffer as a NUL-terminated string (NUL not counted). */
static const char *cstr(struct ws_buf *b)
{
	if (ws_buf_reserve(b, 1))
		return NULL;
	b->p[b->len] = 0;
	return (const char *)b->p;
}

static int sqlfail(sqlite3 *db, int src, const char *what, char *err)
{
	int rc = src == SQLITE_BUSY || src == SQLITE_LOCKED ? WS_EBUSY :
	    src == SQLITE_PERM || src == SQLITE_READONLY || src == SQLITE_AUTH ? WS_EPERM :
	    src == SQLITE_FULL ? WS_ENOSPC :
	    src == SQLITE_CORRUPT || src == SQLITE_NOTADB ? WS_ECORRUPT :
	    src == SQLITE_CONSTRAINT || src == SQLITE_MISMATCH ? WS_ESCHEMA : WS_EIO;

	return ws_error(err, rc, "%s: %s", what, db ? sqlite3_errmsg(db) :
	    sqlite3_errstr(src));
}

static int exec_sql(sqlite3 *db, const char *sql, char *err)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sqlfail(db, rc, "database", err);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err)
{
	int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);

	return rc == SQLITE_OK ? 0 : sqlfail(db, rc, "database", err);
}

/* A value from a result column; TEXT and BLOB point into the statement. */
static void col_value(sqlite3_stmt *st, int i, struct ws_value *v)
{
	memset(v, 0, sizeof(*v));
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		v->type = WS_INTEGER;
		v->i = sqlite3_column_int64(st, i);
		break;
	case SQLITE_FLOAT:
		v->type = WS_REAL;
		v->r = sqlite3_column_double(st, i);
		break;
	case SQLITE_TEXT:
		v->type = WS_TEXT;
		v->p = sqlite3_column_text(st, i);
		v->n = (size_t)sqlite3_column_bytes(st, i);
		break;
	case SQLITE_BLOB:
		v->type = WS_BLOB;
		v->p = sqlite3_column_blob(st, i);
		v->n = (size_t)sqlite3_column_bytes(st, i);
		break;
	default:
		v->type = WS_NULL;
	}
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	struct ws_value v;

	col_value(st, i, &v);
	return ws_json_from_value(&v);
}

static int bind_value(sqlite3_stmt *st, int i, const struct ws_value *v)
{
	switch (v->type) {
	case WS_INTEGER: return sqlite3_bind_int64(st, i, v->i);
	case WS_REAL: return sqlite3_bind_double(st, i, v->r);
	case WS_TEXT: return sqlite3_bind_text64(st, i, (const char *)v->p, v->n,
	    SQLITE_TRANSIENT, SQLITE_UTF8);
	case WS_BLOB: return sqlite3_bind_blob64(st, i, v->p, v->n, SQLITE_TRANSIENT);
	default: return sqlite3_bind_null(st, i);
	}
}

/* Bind the JSON value j (the wire form of a value) to parameter i. */
static int bind_json(sqlite3_stmt *st, int i, const json_t *j, struct ws_buf *tmp,
    const char *name, char *err)
{
	struct ws_value v;
	char why[WS_ERRLEN];
	int rc;

	tmp->len = 0;
	if ((rc = ws_json_to_value(j, tmp, &v, why)))
		return ws_error(err, rc, "bad value of column '%s': %s", name, why);
	return bind_value(st, i, &v) == SQLITE_OK ? 0 : WS_ENOMEM;
}

/* Append one compact JSON line for m to out; m is not consumed. */
static int put_msg(struct ws_buf *out, const json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);
	int rc;

	if (!s)
		return WS_ENOMEM;
	rc = ws_buf_append(out, s, strlen(s));
	if (!rc)
		rc = ws_buf_putc(out, '\n');
	free(s);
	return rc;
}

static void guid_hex(const uint8_t g[WS_GUID_LEN], char out[2 * WS_GUID_LEN + 1])
{
	sodium_bin2hex(out, 2 * WS_GUID_LEN + 1, g, WS_GUID_LEN);
}

/* A JSON object's member as a bool (absent: 0); -1 if not a bool. */
static int get_bool(const json_t *m, const char *key)
{
	const json_t *j = json_object_get(m, key);

	if (!j)
		return 0;
	return json_is_boolean(j) ? json_is_true(j) : -1;
}

/* A non-negative integer member into *v; WS_EJSON if absent or wrong. */
static int get_u64(const json_t *m, const char *key, uint64_t *v, char *err)
{
	const json_t *j = json_object_get(m, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return ws_error(err, WS_EJSON, "\"%s\" must be a non-negative integer", key);
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

/* Split the next complete line off in[off..len) into (line, n); 0 if none. */
static int next_line(struct ws_buf *in, size_t *off, const char **line, size_t *n)
{
	uint8_t *nl;

	if (*off >= in->len)
		return 0;
	nl = memchr(in->p + *off, '\n', in->len - *off);
	if (!nl)
		return 0;
	*line = (const char *)in->p + *off;
	*n = (size_t)(nl - (in->p + *off));
	*off = (size_t)(nl - in->p) + 1;
	return 1;
}

/* Drop in[0..off) once it is used. */
static void compact(struct ws_buf *in, size_t *off)
{
	if (*off == 0)
		return;
	memmove(in->p, in->p + *off, in->len - *off);
	in->len -= *off;
	*off = 0;
}

/* Largest frame of a secure session: a whole message, sealed. */
#define SECURE_MAX_FRAME (WS_REPLICATE_MAX_LINE + 1024)

/*
 * Hand the frames in b[0..n) of a framed session to cb, through the
 * secure layer while there is one (ws_peer_read does the same, reading
 * the fd itself).
 */
static int frames_feed(struct ws_peer *pp, const uint8_t *b, size_t n, ws_frame_cb *cb,
    void *cd, char *err)
{
	struct ws_frame f;
	size_t off, used;
	int rc;

	for (off = 0; off < n; off += used) {
		if ((rc = ws_frame_decoder_feed(&pp->dec, b + off, n - off, &used, &f,
		    err)) < 0)
			return rc;
		if (rc == 1 && (rc = pp->sec ? ws_secure_recv(pp, &f, cb, cd, err) :
		    cb(pp, &f, cd)))
			return rc;
	}
	return 0;
}

/* A MESSAGE frame's payload as a line of in. */
static int message_line(struct ws_buf *in, const struct ws_frame *f, char *err)
{
	if (memchr(f->payload, '\n', f->len))
		return ws_error(err, WS_ECORRUPT, "a message frame holding a newline");
	if (ws_buf_append(in, f->payload, f->len) || ws_buf_putc(in, '\n'))
		return WS_ENOMEM;
	return 0;
}

/* Queue each line of out[*off..) as a MESSAGE frame on pp; out is emptied. */
static int frame_lines(struct ws_peer *pp, struct ws_buf *out, size_t *off)
{
	const char *line;
	size_t n;
	int rc;

	while (next_line(out, off, &line, &n))
		if (n && (rc = ws_peer_send(pp, WS_FRAME_MESSAGE, 0, 0, line, n)))
			return rc;
	out->len = *off = 0;
	return 0;
}

/* Parse one line into an object with a string "mt" (replicate.h). */
int ws_replicate_parse_msg(const char *line, size_t n, json_t **out, char *err)
{
	json_error_t je;
	json_t *m;

	*out = NULL;
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	m = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!m)
		return ws_error(err, WS_EJSON, "bad JSON message: %s%s",
		    json_error_code(&je) == json_error_invalid_utf8 ?
		    "invalid UTF-8: " : "", je.text);
	if (!json_is_object(m) || !json_is_string(json_object_get(m, "mt"))) {
		json_decref(m);
		return ws_error(err, WS_EJSON, "a message must be an object with a "
		    "string \"mt\"");
	}
	*out = m;
	return 0;
}

static const char *mt_of(const json_t *m)
{
	return json_string_value(json_object_get(m, "mt"));
}

/* --- pure codecs --------------------------------------------------------- */

static int name_ok(const char *s)
{
	return *s && strlen(s) <= WS_REPLICATE_MAX_NAME;
}

int ws_replicate_parse_column(char *spec, struct ws_replicate_col *c, char *err)
{
	char *colon = strrchr(spec, ':'), *eq;
	const char *orig = spec;

	memset(c, 0, sizeof(*c));
	if (colon) {
		if (strcmp(colon, ":update") != 0)
			return ws_error(err, WS_EINVAL, "bad column '%s': want "
			    "NAME[=OTHER][:update]", orig);
		*colon = 0;
		c->update = 1;
	}
	eq = strchr(spec, '=');
	if (eq)
		*eq = 0;
	c->name = spec;
	c->other = eq ? eq + 1 : spec;
	if (!name_ok(c->name) || !name_ok(c->other)) {
		if (eq)
			*eq = '=';
		if (colon)
			*colon = ':';
		return ws_error(err, WS_EINVAL, "bad column '%s': want "
		    "NAME[=OTHER][:update]", orig);
	}
	return 0;
}

int ws_replicate_parse_array(char *spec, struct ws_replicate_array *a, char *err)
{
	char *eq = strchr(spec, '='), *colon;

	memset(a, 0, sizeof(*a));
	colon = eq ? strchr(eq + 1, ':') : NULL;
	if (!eq || !colon)
		return ws_error(err, WS_EINVAL, "bad array '%s': want REMOTE=CHILD:REF", spec);
	*eq = 0;
	*colon = 0;
	a->remote = spec;
	a->child = eq + 1;
	a->ref = colon + 1;
	if (!name_ok(a->remote) || !name_ok(a->child) || !name_ok(a->ref) ||
	    strchr(a->ref, ':')) {
		*eq = '=';
		*colon = ':';
		return ws_error(err, WS_EINVAL, "bad array '%s': want REMOTE=CHILD:REF", spec);
	}
	return 0;
}

/* --- HTTP requests and tokens ----------------------------------------------- */

int ws_replicate_token_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n < WS_REPLICATE_TOKEN_MIN || n > WS_REPLICATE_TOKEN_MAX)
		return 0;
	/* token68 (RFC 7235): the characters, then '='s only. */
	while (i < n && (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
	    (s[i] >= '0' && s[i] <= '9') || strchr("-._~+/", s[i])) && s[i])
		i++;
	while (i < n && s[i] == '=')
		i++;
	return i == n;
}

void ws_replicate_token_hash(uint8_t out[WS_REPLICATE_TOKEN_HASHBYTES], const char *s,
    size_t n)
{
	crypto_generichash(out, WS_REPLICATE_TOKEN_HASHBYTES, (const unsigned char *)s, n,
	    NULL, 0);
}

int ws_replicate_http_headers(const char *session, const char *wait, const char *auth,
    struct ws_replicate_http_req *r, char *err)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	if (session) {
		n = strlen(session);
		if (n == 0 || n >= sizeof(r->session) || strspn(session, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
			return ws_error(err, WS_ECORRUPT, "bad Wsync-Session: want the "
			    "session's name");
		memcpy(r->session, session, n + 1);
	}
	if (wait) {
		n = strlen(wait);
		if (n == 0 || n > 6 || strspn(wait, "0123456789") != n)
			return ws_error(err, WS_ECORRUPT, "bad Wsync-Wait: want seconds");
		r->wait_s = (unsigned)strtoul(wait, NULL, 10);
		if (r->wait_s > WS_REPLICATE_HTTP_MAX_WAIT)
			r->wait_s = WS_REPLICATE_HTTP_MAX_WAIT;
	}
	/* Bearer is ours; another scheme may be a proxy's, and is not. */
	if (auth && strncasecmp(auth, "Bearer", 6) == 0 && (auth[6] == ' ' || !auth[6])) {
		auth += 6;
		auth += strspn(auth, " ");
		n = strlen(auth);
		while (n && auth[n - 1] == ' ')
			n--;
		if (!ws_replicate_token_ok(auth, n))
			return ws_error(err, WS_ECORRUPT, "bad Authorization: want Bearer "
			    "and a token of %d to %d characters", WS_REPLICATE_TOKEN_MIN,
			    WS_REPLICATE_TOKEN_MAX);
		ws_replicate_token_hash(r->token_hash, auth, n);
		r->has_token = 1;
	}
	return 0;
}

/* Open path for reading a secret: WS_EPERM if group or others may read or write it. */
static int open_secret(const char *path, const char *what, FILE **f, char *err)
{
	struct stat st;
	char buf[64];
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : errno == EACCES ?
		    WS_EPERM : WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return ws_error(err, WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	}
	if (st.st_mode & 077) {
		close(fd);
		return ws_error(err, WS_EPERM, "%s '%s' is accessible by others (mode "
		    "%04o): it must be 0600 (chmod 600 '%s')", what, path,
		    (unsigned)(st.st_mode & 07777), path);
	}
	if (!(*f = fdopen(fd, "r"))) {
		close(fd);
		return WS_ENOMEM;
	}
	return 0;
}

/* One line of a tokens file into a new entry of t; the token is wiped. */
static int token_line(struct ws_authkeys *t, char *line, const char *path, size_t lineno,
    char *err)
{
	struct ws_authkey *k, *nk;
	char *hash = strchr(line, '#'), *tok, *save = NULL;
	size_t i;

	if (hash)
		*hash++ = 0;
	if (!(tok = strtok_r(line, " \t\r\n", &save)))
		return 0; /* blank or a comment */
	if (!(nk = realloc(t->k, (t->n + 1) * sizeof(*nk))))
		return WS_ENOMEM;
	t->k = nk;
	k = &t->k[t->n];
	memset(k, 0, sizeof(*k));
	if (!ws_replicate_token_ok(tok, strlen(tok)))
		return ws_error(err, WS_ECONFIG, "%s:%zu: not a token (want %d to %d "
		    "characters of A-Z a-z 0-9 - . _ ~ + /)", path, lineno,
		    WS_REPLICATE_TOKEN_MIN, WS_REPLICATE_TOKEN_MAX);
	ws_replicate_token_hash(k->pk, tok, strlen(tok));
	sodium_memzero(tok, strlen(tok));
	for (i = 0; i < t->n; i++)
		if (sodium_memcmp(t->k[i].pk, k->pk, sizeof(k->pk)) == 0)
			return ws_error(err, WS_ECONFIG, "%s:%zu: the same token as an "
			    "earlier line", path, lineno);
	t->n++;
	return ws_authkey_rest(k, hash, &save, path, lineno, err);
}

int ws_replicate_tokens_load(struct ws_authkeys *t, const char *path, char *err)
{
	char line[4096];
	size_t lineno = 0;
	FILE *f;
	int rc;

	memset(t, 0, sizeof(*t));
	if ((rc = open_secret(path, "tokens file", &f, err)))
		return rc;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			rc = ws_error(err, WS_ECONFIG, "%s:%zu: line too long", path, lineno);
		else
			rc = token_line(t, line, path, lineno, err);
	}
	if (rc == 0 && ferror(f))
		rc = ws_error(err, WS_EIO, "cannot read tokens file '%s'", path);
	sodium_memzero(line, sizeof(line));
	fclose(f);
	if (rc)
		ws_authkeys_release(t);
	return rc;
}

const struct ws_authkey *ws_replicate_tokens_find(const struct ws_authkeys *t,
    const uint8_t h[WS_REPLICATE_TOKEN_HASHBYTES])
{
	const struct ws_authkey *found = NULL;
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (sodium_memcmp(t->k[i].pk, h, WS_REPLICATE_TOKEN_HASHBYTES) == 0 && !found)
			found = &t->k[i];
	return found;
}

int ws_replicate_token_read(char out[WS_REPLICATE_TOKEN_MAX + 1], const char *path,
    char *err)
{
	char line[WS_REPLICATE_TOKEN_MAX + 8];
	size_t n = 0;
	FILE *f;
	int rc;

	out[0] = 0;
	if ((rc = open_secret(path, "token file", &f, err)))
		return rc;
	if (fgets(line, sizeof(line), f))
		n = strcspn(line, "\r\n");
	if (!ws_replicate_token_ok(line, n))
		rc = ws_error(err, WS_ECONFIG, "'%s' does not hold a token (want %d to %d "
		    "characters of A-Z a-z 0-9 - . _ ~ + / on its first line)", path,
		    WS_REPLICATE_TOKEN_MIN, WS_REPLICATE_TOKEN_MAX);
	else {
		memcpy(out, line, n);
		out[n] = 0;
	}
	sodium_memzero(line, sizeof(line));
	fclose(f);
	return rc;
}

/* --- publisher ----------------------------------------------------------- */

struct pcol {
	char *name;     /* the table's column */
	char *remote;   /* published under this name */
	char *type;     /* declared type, "" if none */
	int key;        /* position in the primary key from 1, or 0 */
	int update;     /* replicators may update it */
};

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
	size_t keypos[64];            /* key column j is session column keypos[j] */
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

/*
 * One HTTP request, from its head to its response (libmicrohttpd's
 * per-request context).  A long poll (Wsync-Wait) is a suspended
 * request waiting for its session's messages or its deadline.
 */
struct hreq {
	struct hreq *next;
	struct MHD_Connection *conn;
	struct ws_buf body;
	size_t want;                  /* Content-Length */
	struct ws_replicate_http_req r;
	int who;                      /* the token: its entry + 1; 0 anonymous */
	enum ws_right right;          /* what it may do on the table */
	int state;                    /* HR_* */
	struct psess *s;              /* HR_WAIT: the session waited on */
	uint64_t deadline;
};

enum { HR_BODY, HR_WAIT, HR_READY };

struct pub {
	const struct ws_replicate_pub_opts *o;
	struct ws_store *st;
	sqlite3 *db;
	struct pcol *cols;
	size_t ncols;
	size_t nkey;
	size_t keys[64];              /* indexes into cols, key order */
	char guid[2 * WS_GUID_LEN + 1];
	struct psess *sess;
	struct hreq *hr;              /* HTTP requests under way */
	struct MHD_Daemon *mhd;       /* the HTTP side, or NULL */
	size_t max_body;
	int dirty;                    /* the table changed: pump every session */
	struct ws_buf q, tmp;
	char err[WS_ERRLEN];          /* a session's framing or handshake error */
};

#define plog(p, ...) ws_log_printf((p)->o->log, (p)->o->log_cd, __VA_ARGS__)

static void pcols_free(struct pub *p)
{
	size_t i;

	for (i = 0; i < p->ncols; i++) {
		free(p->cols[i].name);
		free(p->cols[i].remote);
		free(p->cols[i].type);
	}
	free(p->cols);
	p->cols = NULL;
	p->ncols = 0;
}

/* Read the table's columns and choose the published ones. */
static int pub_columns(struct pub *p, char *err)
{
	const struct ws_replicate_pub_opts *o = p->o;
	sqlite3_stmt *st = NULL;
	struct pcol *c;
	size_t i, n = 0, cap = 0;
	int rc = 0, pk, found;

	p->q.len = 0;
	if (ws_buf_printf(&p->q, "PRAGMA table_info(") || qid(&p->q, o->table) ||
	    ws_buf_putc(&p->q, ')') || !cstr(&p->q))
		return WS_ENOMEM;
	if ((rc = prepare(p->db, cstr(&p->q), &st, err)))
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
			if (!(c = realloc(p->cols, cap * sizeof(*c)))) {
				rc = WS_ENOMEM;
				goto out;
			}
			p->cols = c;
		}
		c = &p->cols[n];
		memset(c, 0, sizeof(*c));
		p->ncols = ++n;
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
		rc = sqlfail(p->db, rc, "table", err);
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
			found |= strcmp(p->cols[j].name, o->cols[i].name) == 0;
		if (!found) {
			rc = ws_error(err, WS_ESCHEMA, "no column '%s' in table '%s'",
			    o->cols[i].name, o->table);
			goto out;
		}
		if (o->cols[i].update) {
			for (j = 0; j < n; j++)
				if (strcmp(p->cols[j].name, o->cols[i].name) == 0 &&
				    p->cols[j].key) {
					rc = ws_error(err, WS_EINVAL, "key column '%s' "
					    "cannot be updated", o->cols[i].name);
					goto out;
				}
		}
	}
	for (i = 0; i < n; i++) {
		size_t j;

		for (j = i + 1; j < n; j++)
			if (strcmp(p->cols[i].remote, p->cols[j].remote) == 0) {
				rc = ws_error(err, WS_EINVAL, "two columns published as '%s'",
				    p->cols[i].remote);
				goto out;
			}
	}
	p->nkey = 0;
	for (pk = 1; pk < 64; pk++)
		for (i = 0; i < n; i++)
			if (p->cols[i].key == pk)
				p->keys[p->nkey++] = i;
	if (p->nkey == 0)
		rc = ws_error(err, WS_ESCHEMA, "table '%s' has no primary key", o->table);
out:
	sqlite3_finalize(st);
	return rc;
}

static void psess_free(struct psess *s)
{
	if (!s)
		return;
	if (s->peer) {
		/* The session's conn is closed below. */
		s->peer->conn.rfd = s->peer->conn.wfd = -1;
		ws_peer_release(s->peer);
		free(s->peer);
	}
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
	int rc;

	if (!m)
		return WS_ENOMEM;
	rc = put_msg(&s->out, m);
	json_decref(m);
	return rc;
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

static struct pcol *by_remote(struct pub *p, const char *remote, size_t *idx)
{
	size_t i;

	for (i = 0; i < p->ncols; i++)
		if (strcmp(p->cols[i].remote, remote) == 0) {
			if (idx)
				*idx = i;
			return &p->cols[i];
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
	struct ws_buf *q = &p->q;
	size_t i;
	int rc, pass;

	for (pass = 0; pass < 2; pass++) {
		q->len = 0;
		rc = ws_buf_printf(q, "SELECT ");
		for (i = 0; rc == 0 && i < s->ncols; i++)
			if ((i && ws_buf_putc(q, ',')) || qid(q, p->cols[s->cols[i]].name))
				rc = WS_ENOMEM;
		if (rc || ws_buf_printf(q, " FROM ") || qid(q, p->o->table))
			return WS_ENOMEM;
		if (pass == 1) {
			if (ws_buf_printf(q, " WHERE ("))
				return WS_ENOMEM;
			for (i = 0; i < p->nkey; i++)
				if ((i && ws_buf_putc(q, ',')) || qid(q, p->cols[p->keys[i]].name))
					return WS_ENOMEM;
			if (ws_buf_printf(q, ") > ("))
				return WS_ENOMEM;
			for (i = 0; i < p->nkey; i++)
				if (ws_buf_printf(q, "%s?%zu", i ? "," : "", i + 2))
					return WS_ENOMEM;
			if (ws_buf_putc(q, ')'))
				return WS_ENOMEM;
		}
		if (ws_buf_printf(q, " ORDER BY "))
			return WS_ENOMEM;
		for (i = 0; i < p->nkey; i++)
			if ((i && ws_buf_putc(q, ',')) || qid(q, p->cols[p->keys[i]].name))
				return WS_ENOMEM;
		if (ws_buf_printf(q, " LIMIT ?1") || !cstr(q))
			return WS_ENOMEM;
		if ((rc = prepare(p->db, cstr(q), pass ? &s->page : &s->first, err)))
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

static int on_start(struct psess *s, const json_t *m)
{
	struct pub *p = s->p;
	const json_t *jg = json_object_get(m, "guid"), *jc = json_object_get(m, "columns");
	const json_t *e;
	char err[WS_ERRLEN] = "";
	uint64_t usn = 0, cur, count = 0;
	unsigned char want[64] = {0};
	json_t *r, *cols;
	size_t i, idx;
	int add = get_bool(m, "add"), del = get_bool(m, "del"), rc;
	int positional = get_bool(m, "positional"), any_update = 0;
	sqlite3_stmt *st = NULL;

	if (s->state != S_START)
		return sess_error(s, "ReplicateStartResult", NULL, "ReplicateStart twice");
	if ((jg && !json_is_null(jg) && !json_is_string(jg)) || add < 0 || del < 0 ||
	    positional < 0 ||
	    (json_object_get(m, "usn") && get_u64(m, "usn", &usn, err)) ||
	    (jc && !json_is_array(jc)))
		return sess_error(s, "ReplicateStartResult", NULL, "bad ReplicateStart: "
		    "want guid (string or null), usn, add, del and columns");
	if (jc && json_array_size(jc)) {
		json_array_foreach(jc, i, e) {
			const char *name = json_is_string(e) ? json_string_value(e) :
			    json_string_value(json_object_get(e, "name"));
			int upd = json_is_object(e) ? get_bool(e, "update") : 0;
			struct pcol *c;

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
	for (i = 0; i < p->nkey; i++)
		want[p->keys[i]] = 1;
	if (!(s->cols = calloc(p->ncols, sizeof(*s->cols))))
		return WS_ENOMEM;
	for (i = 0; i < p->ncols; i++)
		if (want[i])
			s->cols[s->ncols++] = i;
	for (i = 0; i < p->nkey; i++)
		s->keypos[i] = (size_t)sess_col(s, p->keys[i]);
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
		p->q.len = 0;
		if (ws_buf_printf(&p->q, "SELECT count(*) FROM ") ||
		    qid(&p->q, p->o->table) || !cstr(&p->q))
			return WS_ENOMEM;
		if ((rc = prepare(p->db, cstr(&p->q), &st, err)))
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
		const struct pcol *c = &p->cols[s->cols[i]];

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
		if (json_object_set_new(o, s->p->cols[s->cols[i]].remote, col_json(st, (int)i))) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static int pump(struct psess *s);

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
		for (i = 0; s->cursor && i < p->nkey; i++)
			if ((rc = bind_json(st, (int)i + 2, json_array_get(s->cursor, i),
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

				for (i = 0; k && i < p->nkey; i++)
					json_array_append_new(k, col_json(st, (int)s->keypos[i]));
				if (!k)
					goto nomem;
				json_decref(s->cursor);
				s->cursor = k;
			}
		}
		if (rc != SQLITE_DONE) {
			sqlfail(p->db, rc, "table", err);
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
		return pump(s);
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
		if (strcmp(s->p->cols[s->cols[i]].name, name) == 0)
			return (long)i;
	return -1;
}

static int pump_cb(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct pumpctx *x = cd;
	struct psess *s = x->s;
	struct pub *p = s->p;
	long ti = ws_batch_find_table(b, p->o->table), map[64];
	const struct ws_value *pos[64];
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
				json_object_set_new(key, p->cols[s->cols[map[t->pk[j]]]].remote,
				    ws_json_from_value(&c->pk[j]));
		memset(pos, 0, sizeof(pos));
		for (k = 0, vi = 0; cols && c->mask && k < t->ncols; k++) {
			if (!ws_mask_test(c->mask, k))
				continue;
			if (map[k] >= 0) {
				if (s->positional && c->op == WS_OP_UPDATE)
					pos[map[k]] = &c->vals[vi];
				else
					json_object_set_new(cols, p->cols[s->cols[map[k]]].remote,
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
		rc = put_msg(&s->out, m);
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
static int pump(struct psess *s)
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

/* Bind key object k (remote key names) from parameter `from` on. */
static int bind_key(struct psess *s, sqlite3_stmt *st, int from, const json_t *k,
    char *err)
{
	struct pub *p = s->p;
	size_t i;
	int rc;

	if (!json_is_object(k))
		return ws_error(err, WS_EJSON, "\"key\" must be an object");
	for (i = 0; i < p->nkey; i++) {
		const json_t *v = json_object_get(k, p->cols[p->keys[i]].remote);

		if (!v)
			return ws_error(err, WS_EJSON, "the key lacks column '%s'",
			    p->cols[p->keys[i]].remote);
		if ((rc = bind_json(st, from + (int)i, v, &p->tmp,
		    p->cols[p->keys[i]].remote, err)))
			return rc;
	}
	return 0;
}

/*
 * Append the i-th term of a key's WHERE clause: " WHERE " or " AND ",
 * then "name" = ?n.  Both sides use it, with their own column names.
 */
static int put_key_term(struct ws_buf *q, size_t i, const char *name, int n)
{
	return ws_buf_printf(q, i ? " AND " : " WHERE ") || qid(q, name) ||
	    ws_buf_printf(q, " = ?%d", n) ? WS_ENOMEM : 0;
}

static int put_key_where(struct pub *p, struct ws_buf *q, int from)
{
	size_t i;

	for (i = 0; i < p->nkey; i++)
		if (put_key_term(q, i, p->cols[p->keys[i]].name, from + (int)i))
			return WS_ENOMEM;
	return 0;
}

/* ReplicateAdd, ReplicateUpdate or ReplicateDel from a replicator. */
static int on_upward(struct psess *s, const json_t *m, int op)
{
	static const char *const res[] = {NULL, "ReplicateAddResult",
	    "ReplicateUpdateResult", "ReplicateDelResult"};
	struct pub *p = s->p;
	struct ws_buf *q = &p->q;
	const json_t *cols = json_object_get(m, "columns"), *v;
	const char *name;
	char err[WS_ERRLEN] = "";
	sqlite3_stmt *st = NULL;
	struct pcol *c;
	size_t idx;
	int rc, n = 0;

	if (s->state == S_START)
		return sess_error(s, res[op], NULL, "%s before ReplicateStart", mt_of(m));
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
	q->len = 0;
	if (op == WS_OP_INSERT) {
		rc = ws_buf_printf(q, "INSERT INTO ") || qid(q, p->o->table) ||
		    ws_buf_putc(q, '(');
		json_object_foreach((json_t *)cols, name, v) {
			if (!(c = by_remote(p, name, &idx)) || sess_col(s, idx) < 0) {
				snprintf(err, sizeof(err), "no column '%s'", name);
				goto refuse;
			}
			rc |= (n++ && ws_buf_putc(q, ',')) || qid(q, c->name);
		}
		rc |= ws_buf_printf(q, ") VALUES (");
		for (idx = 0; idx < (size_t)n; idx++)
			rc |= ws_buf_printf(q, "%s?%zu", idx ? "," : "", idx + 1);
		rc |= ws_buf_putc(q, ')');
	} else if (op == WS_OP_UPDATE) {
		rc = ws_buf_printf(q, "UPDATE ") || qid(q, p->o->table) ||
		    ws_buf_printf(q, " SET ");
		json_object_foreach((json_t *)cols, name, v) {
			if (!(c = by_remote(p, name, &idx)) || sess_col(s, idx) < 0) {
				snprintf(err, sizeof(err), "no column '%s'", name);
				goto refuse;
			}
			if (!c->update) {
				snprintf(err, sizeof(err), "column '%s' may not be updated",
				    name);
				goto refuse;
			}
			rc |= (n && ws_buf_putc(q, ',')) || qid(q, c->name) ||
			    ws_buf_printf(q, " = ?%d", n + 1);
			n++;
		}
		rc |= put_key_where(p, q, n + 1);
	} else {
		rc = ws_buf_printf(q, "DELETE FROM ") || qid(q, p->o->table) ||
		    put_key_where(p, q, 1);
	}
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(p->db, cstr(q), &st, err)))
		goto refuse;
	n = 0;
	if (op != WS_OP_DELETE)
		json_object_foreach((json_t *)cols, name, v)
			if ((rc = bind_json(st, ++n, v, &p->tmp, name, err)))
				goto refuse;
	if (op != WS_OP_INSERT && (rc = bind_key(s, st, n + 1, json_object_get(m, "key"), err)))
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
	const char *mt = mt_of(m);

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
		return pump(s);
	}
	return sess_error(s, "ReplicateError", NULL, "unknown message type '%s'", mt);
}

/* Feed the complete lines of s->in to handle(). */
static int feed_lines(struct psess *s)
{
	const char *line;
	char err[WS_ERRLEN];
	json_t *m;
	size_t n;
	int rc = 0;

	while (!s->closing && next_line(&s->in, &s->in_off, &line, &n)) {
		if (n == 0 || (n == 1 && line[0] == '\r'))
			continue;
		if (ws_replicate_parse_msg(line, n, &m, err))
			return sess_error(s, "ReplicateError", NULL, "%s", err);
		rc = handle(s, m);
		json_decref(m);
		if (rc)
			return rc;
	}
	compact(&s->in, &s->in_off);
	if (s->in.len > WS_REPLICATE_MAX_LINE)
		return sess_error(s, "ReplicateError", NULL, "a message longer than %u bytes",
		    WS_REPLICATE_MAX_LINE);
	return 0;
}

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

static struct psess *psess_new(struct pub *p, int http, const struct ws_conn *c)
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

static void psess_unlink(struct pub *p, struct psess *s)
{
	struct psess **pp;
	struct hreq *h;

	for (pp = &p->sess; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	for (h = p->hr; h; h = h->next)
		if (h->s == s)
			h->s = NULL;
	psess_free(s);
}

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
		return message_line(&s->in, f, err);
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
		rc = frames_feed(s->peer, s->raw.p, s->raw.len, pub_frame, s, s->p->err);
		s->raw.len = 0;
		if (rc == WS_ENOMEM)
			return rc;
		if (rc) {
			/* Say why (a refused key was told in the handshake). */
			plog(s->p, "%s: %s", s->name, s->p->err[0] ? s->p->err :
			    ws_strerror(rc));
			if (!s->peer->sec || ws_secure_ready(s->peer))
				(void)!ws_peer_send_error(s->peer, 0, rc, s->p->err);
			s->closing = 1;
			return 0;
		}
	}
	rc = feed_lines(s);
	return rc;
}

static int stream_write(struct psess *s)
{
	ssize_t w;

	if (s->peer) {
		if (frame_lines(s->peer, &s->out, &s->out_off) ||
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

/* --- the publisher's HTTP mapping ----------------------------------------- */

/*
 * libmicrohttpd parses the requests, bounds them (connections, memory,
 * timeouts) and speaks TLS; it runs in external-polling mode from the
 * publisher's loop (its epoll descriptor is one of the loop's), so every
 * callback below runs in the loop's thread, between two polls.  A request
 * is authorized from its head, before its body is read: the body of a
 * refused one never is.
 */

/* The client's address as text, for the log. */
static const char *http_peer(struct MHD_Connection *c, char buf[64])
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, 64, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    buf, 64);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		    buf, 64);
	else if (sa && sa->sa_family == AF_UNIX)
		snprintf(buf, 64, "unix");
	return buf;
}

/* Queue a response: status, body[0..n) as JSON lines, the session's name. */
static enum MHD_Result http_respond(struct MHD_Connection *c, unsigned status,
    const char *session, const void *body, size_t n)
{
	struct MHD_Response *r;
	enum MHD_Result ok;

	if (!(r = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY)))
		return MHD_NO;
	ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	if (ok == MHD_YES)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (ok == MHD_YES && session)
		ok = MHD_add_response_header(r, "Wsync-Session", session);
	if (ok == MHD_YES && status == MHD_HTTP_METHOD_NOT_ALLOWED)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
	if (ok == MHD_YES && status == MHD_HTTP_UNAUTHORIZED)
		ok = MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    "Bearer realm=\"wsync-replicate\"");
	if (ok == MHD_YES)
		ok = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Refuse a request: a ReplicateError line with the message, also logged. */
static enum MHD_Result http_error(struct pub *p, struct MHD_Connection *c, unsigned status,
    const char *fmt, ...) WS_PRINTF(4, 5);

static enum MHD_Result http_error(struct pub *p, struct MHD_Connection *c, unsigned status,
    const char *fmt, ...)
{
	char msg[WS_ERRLEN], peer[64];
	struct ws_buf b = WS_BUF_INIT;
	enum MHD_Result ok = MHD_NO;
	va_list ap;
	json_t *m;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	plog(p, "HTTP %s: %u: %s", http_peer(c, peer), status, msg);
	m = json_pack("{s:s,s:s}", "mt", "ReplicateError", "error", msg);
	if (m && put_msg(&b, m) == 0)
		ok = http_respond(c, status, NULL, b.p, b.len);
	json_decref(m);
	ws_buf_release(&b);
	return ok;
}

/*
 * Who sends request h, and its right on the table: 0, or the status that
 * refuses it, with the reason in msg.
 */
static unsigned http_right(struct pub *p, struct hreq *h, char msg[WS_ERRLEN])
{
	const struct ws_authkeys *t = p->o->http_tokens;
	const struct ws_authkey *k;

	if (!h->r.has_token) {
		if (t) {
			snprintf(msg, WS_ERRLEN, "this publisher takes HTTP requests with a "
			    "token only: send Authorization: Bearer TOKEN");
			return MHD_HTTP_UNAUTHORIZED;
		}
		h->right = WS_RIGHT_READ;
		return 0;
	}
	if (!t) {
		snprintf(msg, WS_ERRLEN, "this publisher takes no tokens (it has no "
		    "tokens file)");
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (!(k = ws_replicate_tokens_find(t, h->r.token_hash))) {
		snprintf(msg, WS_ERRLEN, "unknown token");
		return MHD_HTTP_UNAUTHORIZED;
	}
	h->who = (int)(k - t->k) + 1;
	if ((h->right = ws_authkey_right(k, p->o->table)) == WS_RIGHT_NONE) {
		snprintf(msg, WS_ERRLEN, "this token has no rights on table '%s'", p->o->table);
		return MHD_HTTP_FORBIDDEN;
	}
	return 0;
}

/* The head of a request: check it, authorize it, make its context. */
static enum MHD_Result http_head(struct pub *p, struct MHD_Connection *c, const char *method,
    void **ctx)
{
	const char *cl, *te;
	char msg[WS_ERRLEN], *end;
	unsigned long long n;
	struct hreq *h;
	unsigned status;

	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return http_error(p, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST with JSON lines");
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te || !cl)
		return http_error(p, c, MHD_HTTP_LENGTH_REQUIRED, "send a Content-Length");
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (!*cl || *end || errno || strspn(cl, "0123456789") != strlen(cl))
		return http_error(p, c, MHD_HTTP_BAD_REQUEST, "bad Content-Length");
	if (n > p->max_body)
		return http_error(p, c, MHD_HTTP_CONTENT_TOO_LARGE, "a request body longer "
		    "than %zu bytes", p->max_body);
	if (!(h = calloc(1, sizeof(*h))))
		return MHD_NO;
	h->conn = c;
	h->want = (size_t)n;
	if (ws_replicate_http_headers(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Wsync-Session"), MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Wsync-Wait"),
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
	    &h->r, msg)) {
		free(h);
		return http_error(p, c, MHD_HTTP_BAD_REQUEST, "%s", msg);
	}
	if ((status = http_right(p, h, msg))) {
		free(h);
		return http_error(p, c, status, "%s", msg);
	}
	h->next = p->hr;
	p->hr = h;
	*ctx = h;
	return MHD_YES;
}

/* Answer with what session s has queued; a closing session ends. */
static enum MHD_Result http_flush(struct pub *p, struct hreq *h, struct psess *s)
{
	enum MHD_Result ok;

	ok = http_respond(h->conn, MHD_HTTP_OK, s->id, s->out.p + s->out_off,
	    s->out.len - s->out_off);
	s->out.len = s->out_off = 0;
	h->s = NULL;
	if (s->closing)
		psess_unlink(p, s);
	return ok;
}

/* A whole request: run its messages on its session, answer or wait. */
static enum MHD_Result http_run(struct pub *p, struct hreq *h)
{
	struct psess *s = NULL;
	int rc;

	if (h->r.session[0]) {
		for (s = p->sess; s; s = s->next)
			if (s->http && strcmp(s->id, h->r.session) == 0)
				break;
		if (!s)
			return http_error(p, h->conn, MHD_HTTP_NOT_FOUND, "no such session: "
			    "start again with ReplicateStart");
		if (s->who != h->who)
			return http_error(p, h->conn, MHD_HTTP_FORBIDDEN, "session %s was "
			    "started with another token", s->id);
	} else {
		if (!(s = psess_new(p, 1, NULL)))
			return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "out of memory");
		s->right = h->right;
		s->who = h->who;
	}
	if (ws_buf_append(&s->in, h->body.p, h->body.len) || ws_buf_putc(&s->in, '\n')) {
		psess_unlink(p, s);
		return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	s->last_ms = ws_now_ms();
	if ((rc = feed_lines(s)) == 0)
		rc = pump(s);
	s->in.len = s->in_off = 0;
	if (rc) {
		psess_unlink(p, s);
		return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s",
		    ws_strerror(rc));
	}
	if (s->out.len == s->out_off && h->r.wait_s && !s->closing && s->state == S_LIVE) {
		/* A long poll: http_wake() resumes it. */
		h->state = HR_WAIT;
		h->s = s;
		h->deadline = ws_now_ms() + h->r.wait_s * 1000ull;
		MHD_suspend_connection(h->conn);
		return MHD_YES;
	}
	return http_flush(p, h, s);
}

/* libmicrohttpd's handler: the head, then the body in parts, then the end. */
static enum MHD_Result http_request(void *cd, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *data, size_t *size, void **ctx)
{
	struct pub *p = cd;
	struct hreq *h = *ctx;

	(void)url;
	(void)version;
	if (!h)
		return http_head(p, c, method, ctx);
	if (*size) {
		/* libmicrohttpd keeps to the Content-Length, checked in http_head. */
		if (h->state != HR_BODY || *size > h->want - h->body.len ||
		    ws_buf_append(&h->body, data, *size))
			return MHD_NO;
		*size = 0;
		return MHD_YES;
	}
	if (h->state == HR_WAIT)
		return MHD_YES;
	if (h->state == HR_READY) {
		h->state = HR_BODY;
		if (!h->s)
			return http_error(p, c, MHD_HTTP_NOT_FOUND, "the session ended");
		return http_flush(p, h, h->s);
	}
	return http_run(p, h);
}

/* A request is over (answered, or its connection gone): free its context. */
static void http_done(void *cd, struct MHD_Connection *c, void **ctx,
    enum MHD_RequestTerminationCode why)
{
	struct pub *p = cd;
	struct hreq *h = *ctx, **hp;

	(void)c;
	(void)why;
	if (!h)
		return;
	for (hp = &p->hr; *hp; hp = &(*hp)->next)
		if (*hp == h) {
			*hp = h->next;
			break;
		}
	ws_buf_release(&h->body);
	free(h);
	*ctx = NULL;
}

/* libmicrohttpd's messages: while starting, the reason it cannot; then the log. */
static void http_log(void *cd, const char *fmt, va_list ap) WS_PRINTF(2, 0);

static void http_log(void *cd, const char *fmt, va_list ap)
{
	struct pub *p = cd;
	char msg[WS_ERRLEN];
	size_t n;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.'))
		msg[--n] = 0;
	/* Our messages start lowercase ("Failed to ...", not "TLS ..."). */
	if (msg[0] >= 'A' && msg[0] <= 'Z' && msg[1] >= 'a' && msg[1] <= 'z')
		msg[0] = (char)(msg[0] - 'A' + 'a');
	if (!p->mhd)
		snprintf(p->err, sizeof(p->err), "%s", msg);
	else
		plog(p, "HTTP: %s", msg);
}

/*
 * Resume the long polls that have something to send, whose session
 * ended, or whose time is up, then let libmicrohttpd answer them.
 * With all, every one (the publisher stops).
 */
static void http_wake(struct pub *p, int all)
{
	uint64_t now = ws_now_ms();
	struct hreq *h;
	int any = 0;

	for (h = p->hr; h; h = h->next)
		if (h->state == HR_WAIT && (all || !h->s || h->s->closing ||
		    h->s->out.len > h->s->out_off || now >= h->deadline)) {
			h->state = HR_READY;
			MHD_resume_connection(h->conn);
			any = 1;
		}
	if (any)
		MHD_run(p->mhd);
}

/* 1 when listening socket fd is reachable from this host only. */
static int local_only(int fd)
{
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);
	const struct sockaddr_in6 *a6 = (const void *)&ss;
	const struct sockaddr_in *a4 = (const void *)&ss;

	if (getsockname(fd, (struct sockaddr *)&ss, &n) < 0)
		return 0;
	if (ss.ss_family == AF_UNIX)
		return 1;
	if (ss.ss_family == AF_INET)
		return (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
	if (ss.ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr) && a6->sin6_addr.s6_addr[12] == 127);
	return 0;
}

/* Read a whole PEM file into a new string (*out, the caller frees). */
static int read_pem(const char *path, const char *what, int secret, char **out, char *err)
{
	char buf[64], *s = NULL;
	size_t n = 0, cap = 0, got;
	FILE *f = NULL;
	int rc = 0;

	*out = NULL;
	if (secret) {
		if ((rc = open_secret(path, what, &f, err)))
			return rc;
	} else if (!(f = fopen(path, "r"))) {
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : errno == EACCES ?
		    WS_EPERM : WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	}
	do {
		if (n + 4096 + 1 > cap) {
			char *t;

			if (cap >= (1u << 20)) {
				rc = ws_error(err, WS_ECONFIG, "%s '%s' is longer than 1 MiB",
				    what, path);
				goto out;
			}
			cap = cap ? 2 * cap : 8192;
			/* Grown by copying, so that a secret leaves no copy behind. */
			if (!(t = sodium_malloc(cap))) {
				rc = WS_ENOMEM;
				goto out;
			}
			if (s) {
				memcpy(t, s, n);
				sodium_free(s);
			}
			s = t;
		}
		got = fread(s + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		rc = ws_error(err, WS_EIO, "cannot read %s '%s'", what, path);
		goto out;
	}
	s[n] = 0;
	*out = s;
	s = NULL;
out:
	if (s)
		sodium_free(s);
	fclose(f);
	return rc;
}

/*
 * Start the HTTP side on listening socket fd (libmicrohttpd owns it from
 * then on, and closes it when stopped).  HTTPS with a certificate and
 * key; plain HTTP only on loopback unless insecure.
 */
static int http_start(struct pub *p, int fd, const char *bound, char *err)
{
	const struct ws_replicate_pub_opts *o = p->o;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
	char *cert = NULL, *key = NULL;
	int rc = 0;

	if (!o->tls_cert != !o->tls_key)
		return ws_error(err, WS_EINVAL, "HTTPS needs a certificate and its key");
	if (!o->tls_cert && !o->insecure && !local_only(fd))
		return ws_error(err, WS_ECONFIG, "plain HTTP on %s would be reachable from "
		    "other hosts: serve HTTPS (--tls-cert and --tls-key), listen on "
		    "loopback, or give --insecure", o->http);
	if (o->tls_cert) {
		if ((rc = read_pem(o->tls_cert, "TLS certificate", 0, &cert, err)) ||
		    (rc = read_pem(o->tls_key, "TLS key file", 1, &key, err)))
			goto out;
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
	}
	p->err[0] = 0;
	p->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_request, p,
	    MHD_OPTION_EXTERNAL_LOGGER, http_log, p,
	    MHD_OPTION_NOTIFY_COMPLETED, http_done, p,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->http_timeout ? o->http_timeout :
	    WS_REPLICATE_HTTP_TIMEOUT),
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)WS_REPLICATE_HTTP_MAX_CONN,
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)WS_REPLICATE_HTTP_MAX_PER_IP,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WS_REPLICATE_HTTP_MEMORY,
	    MHD_OPTION_STRICT_FOR_CLIENT, 1,
	    MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
	if (!p->mhd)
		rc = o->tls_cert ? ws_error(err, WS_ECONFIG, "cannot serve HTTPS with "
		    "certificate '%s' and key '%s': %s", o->tls_cert, o->tls_key,
		    p->err[0] ? p->err : "libmicrohttpd refused them") :
		    ws_error(err, WS_EIO, "cannot serve HTTP on %s: %s", bound,
		    p->err[0] ? p->err : "libmicrohttpd failed");
out:
	if (key) {
		sodium_memzero(key, strlen(key));
		sodium_free(key);
	}
	if (cert)
		sodium_free(cert);
	return rc;
}

/* --- the publisher's loop -------------------------------------------------- */

static int watch_db(const char *path)
{
	char wal[PATH_MAX];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	inotify_add_watch(fd, path, IN_MODIFY | IN_CLOSE_WRITE);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	inotify_add_watch(fd, wal, IN_MODIFY);
	return fd;
}

static void pump_all(struct pub *p)
{
	struct psess *s, *nx;

	for (s = p->sess; s; s = nx) {
		nx = s->next;
		if (pump(s) < 0)
			s->dead = 1;
	}
	p->dirty = 0;
}

enum { K_LISTEN, K_HTTP, K_INOTIFY, K_SESS };

int ws_replicate_publish(const struct ws_replicate_pub_opts *o, char *err)
{
	struct pub p;
	struct pollfd *pfd = NULL;
	struct { int kind; void *ptr; } *what = NULL;
	const char **bound = NULL;
	char (*names)[WS_CONN_NAMELEN] = NULL;
	char hname[WS_CONN_NAMELEN] = "";
	int *lfd = NULL, hfd = -1, mfd = -1, ifd = -1, rc, timeout;
	size_t i, n, cap = 0, nl = 0, max_sessions = ws_hub_default_max_sessions();
	uint64_t refused_ms = 0;
	uint8_t g[WS_GUID_LEN];
	struct psess *s, *nx;
	struct hreq *h;
	struct ws_conn c;
	char buf[4096];

	memset(&p, 0, sizeof(p));
	p.o = o;
	p.max_body = o->http_max_body ? o->http_max_body : WS_REPLICATE_HTTP_MAX_BODY;
	if (!o->db || !o->table)
		return ws_error(err, WS_EINVAL, "publish needs a database and a table");
	/* The table is in the database: a missing file is a missing table,
	 * and no reason to create the file. */
	if (access(o->db, F_OK) != 0)
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : WS_EIO,
		    "cannot open '%s': %s", o->db, ws_errno_text(errno, buf));
	/* HTTP first: a refused address or certificate leaves the database be. */
	if (o->http) {
		const union MHD_DaemonInfo *di;

		if ((rc = ws_transport_listen(o->http, &hfd, hname, err)))
			goto out;
		(void)!ws_fd_nonblock(hfd);
		if ((rc = http_start(&p, hfd, hname, err)))
			goto out;
		hfd = -1; /* libmicrohttpd's now */
		if (!(di = MHD_get_daemon_info(p.mhd, MHD_DAEMON_INFO_EPOLL_FD))) {
			rc = ws_error(err, WS_EIO, "cannot serve HTTP: no epoll descriptor");
			goto out;
		}
		mfd = di->epoll_fd;
	}
	if ((rc = ws_store_open(&p.st, o->db, WSID, WS_STORE_CREATE, err)))
		goto out;
	p.db = ws_store_db(p.st);
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
	guid_hex(g, p.guid);
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
		(void)!ws_fd_nonblock(lfd[i]);
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
		if (ws_fd_nonblock(0) || ws_fd_nonblock(1) || !psess_new(&p, 0, &c)) {
			rc = ws_error(err, WS_EIO, "cannot set up stdin and stdout");
			goto out;
		}
	}
	ifd = watch_db(o->db);
	if (o->ready)
		o->ready(o->log_cd, bound, nl);
	for (;;) {
		if (o->stop && *o->stop)
			break;
		/* Sessions that are over go first; a stream that has not started
		 * within PUB_START_MS (no ReplicateStart: on a keyed publisher,
		 * no finished handshake either) is over too. */
		for (s = p.sess; s; s = nx) {
			nx = s->next;
			if (!s->http && !s->dead && s->state == S_START && s->conn.rfd != 0 &&
			    ws_now_ms() - s->since_ms > PUB_START_MS) {
				plog(&p, "%s: no ReplicateStart within %u s: dropped", s->name,
				    PUB_START_MS / 1000);
				s->dead = 1;
			}
			if (s->dead || (s->closing && !s->http && !sess_pending(s)) ||
			    (s->http && ws_now_ms() - s->last_ms > HTTP_IDLE_MS)) {
				if (!s->http && !s->dead)
					plog(&p, "%s: session ended", s->name);
				if (s->conn.rfd == 0 && !s->http) {
					psess_unlink(&p, s);
					rc = 0;
					goto out; /* --stdio: its one session is over */
				}
				psess_unlink(&p, s);
			}
		}
		n = o->nlisten + 3;
		for (s = p.sess; s; s = s->next)
			n += 2;
		if (n > cap) {
			void *a = realloc(pfd, n * sizeof(*pfd)), *b;

			if (!a) {
				rc = WS_ENOMEM;
				goto out;
			}
			pfd = a;
			if (!(b = realloc(what, n * sizeof(*what)))) {
				rc = WS_ENOMEM;
				goto out;
			}
			what = b;
			cap = n;
		}
		n = 0;
		timeout = ifd < 0 ? 500 : 1000;
		for (i = 0; i < o->nlisten; i++) {
			pfd[n] = (struct pollfd){lfd[i], POLLIN, 0};
			what[n].kind = K_LISTEN;
			what[n++].ptr = NULL;
		}
		if (p.mhd) {
			MHD_UNSIGNED_LONG_LONG ms;
			uint64_t now = ws_now_ms();

			http_wake(&p, 0);
			if (MHD_get_timeout(p.mhd, &ms) == MHD_YES && ms < (unsigned)timeout)
				timeout = (int)ms;
			for (h = p.hr; h; h = h->next)
				if (h->state == HR_WAIT && h->deadline > now &&
				    h->deadline - now < (uint64_t)timeout)
					timeout = (int)(h->deadline - now);
			pfd[n] = (struct pollfd){mfd, POLLIN, 0};
			what[n].kind = K_HTTP;
			what[n++].ptr = NULL;
		}
		if (ifd >= 0) {
			pfd[n] = (struct pollfd){ifd, POLLIN, 0};
			what[n].kind = K_INOTIFY;
			what[n++].ptr = NULL;
		}
		for (s = p.sess; s; s = s->next) {
			if (s->http)
				continue;
			pfd[n] = (struct pollfd){s->conn.rfd, s->closing ? 0 : POLLIN, 0};
			if (sess_pending(s) && s->conn.wfd == s->conn.rfd)
				pfd[n].events |= POLLOUT;
			what[n].kind = K_SESS;
			what[n++].ptr = s;
			if (sess_pending(s) && s->conn.wfd != s->conn.rfd) {
				/* stdio: the write side is another fd */
				pfd[n] = (struct pollfd){s->conn.wfd, POLLOUT, 0};
				what[n].kind = K_SESS;
				what[n++].ptr = s;
			}
		}
		rc = poll(pfd, n, timeout);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0) {
			rc = ws_error(err, WS_EIO, "poll: %s", strerror(errno));
			goto out;
		}
		if (ifd < 0)
			p.dirty = 1;
		for (i = 0; i < n; i++) {
			short re = pfd[i].revents;

			if (!re)
				continue;
			switch (what[i].kind) {
			case K_LISTEN:
				if (ws_transport_accept(pfd[i].fd, &c, NULL) == 0) {
					/* Bounded before anyone is known: a cap on
					 * sessions, as the hub has (wsync-serve(1)). */
					if (stream_sessions(&p) >= max_sessions) {
						ws_conn_close(&c);
						if (ws_now_ms() - refused_ms >= 1000) {
							refused_ms = ws_now_ms();
							plog(&p, "refusing connections: %zu sessions "
							    "already", max_sessions);
						}
					} else if (ws_fd_nonblock(c.rfd) ||
					    !(s = psess_new(&p, 0, &c))) {
						ws_conn_close(&c);
					} else {
						plog(&p, "%s: session started", s->name);
					}
				}
				break;
			case K_HTTP:
				break; /* MHD_run below */
			case K_INOTIFY:
				while (read(ifd, buf, sizeof(buf)) > 0)
					;
				p.dirty = 1;
				break;
			case K_SESS:
				s = what[i].ptr;
				if (s->dead)
					break;
				if (pfd[i].fd == s->conn.rfd && !s->closing &&
				    (re & (POLLIN | POLLHUP | POLLERR))) {
					if ((rc = stream_read(s)) < 0) {
						if (rc != WS_ETRUNC)
							plog(&p, "%s: %s", s->name, ws_strerror(rc));
						else
							plog(&p, "%s: session ended", s->name);
						s->dead = 1;
						break;
					}
				}
				if ((re & POLLOUT) && pfd[i].fd == s->conn.wfd &&
				    stream_write(s) < 0)
					s->dead = 1;
				break;
			}
		}
		/* Its descriptor readable or its timeout up: libmicrohttpd's turn. */
		if (p.mhd)
			MHD_run(p.mhd);
		if (p.dirty)
			pump_all(&p);
		if (p.mhd)
			http_wake(&p, 0);
		/* Streams: write what is queued without waiting for a poll. */
		for (s = p.sess; s; s = s->next)
			if (!s->http && !s->dead && sess_pending(s) &&
			    stream_write(s) < 0)
				s->dead = 1;
	}
	rc = 0;
out:
	if (p.mhd) {
		/* No suspended request may outlive the daemon. */
		http_wake(&p, 1);
		MHD_stop_daemon(p.mhd);
		p.mhd = NULL;
	}
	while (p.sess)
		psess_unlink(&p, p.sess);
	for (i = 0; lfd && i < o->nlisten; i++)
		if (lfd[i] >= 0)
			close(lfd[i]);
	if (hfd >= 0)
		close(hfd);
	if (ifd >= 0)
		close(ifd);
	free(lfd);
	free(bound);
	free(names);
	free(pfd);
	free(what);
	pcols_free(&p);
	ws_buf_release(&p.q);
	ws_buf_release(&p.tmp);
	ws_store_close(p.st);
	return rc;
}

/* --- replicator: the connection ------------------------------------------ */

struct rconn {
	int http;
	struct ws_conn conn;          /* streams */
	struct ws_buf in;
	size_t in_off;
	CURL *curl;                   /* HTTP */
	struct curl_slist *hdrs;
	char session[65];
	struct ws_buf resp;
	size_t resp_off;
	struct ws_buf out;            /* lines not sent yet */
	char cerr[CURL_ERROR_SIZE];   /* libcurl's detail of a failure */
	uint64_t *bytes_in, *bytes_out;
	char *err;
	struct ws_peer *peer;         /* a secure stream session */
	struct ws_buf raw;            /* secure: bytes read, before unframing */
	const struct ws_replicate_pull_opts *o;
};

static size_t curl_write(char *p, size_t size, size_t n, void *cd)
{
	struct ws_buf *b = cd;

	if (ws_buf_append(b, p, size * n))
		return 0;
	return size * n;
}

/* The handshake's check of the publisher's key: given, or in known hubs. */
static int check_pub(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	struct rconn *r = cd;
	const struct ws_replicate_pull_opts *o = r->o;
	char text[WS_KEY_TEXTMAX];
	int rc, added;

	ws_key_text(pk, text);
	if (o->has_pub_key) {
		if (sodium_memcmp(pk, o->pub_key, WS_KEY_PUBLICBYTES) == 0)
			return 0;
		return ws_error(err, WS_EPERM, "the publisher presented key %s, not the "
		    "one given with --hub-key: refusing it", text);
	}
	if (!o->known_hubs)
		return ws_error(err, WS_EPERM, "cannot check the publisher's key %s: "
		    "give --hub-key or a known-hubs file", text);
	if ((rc = ws_known_hubs_check(o->known_hubs, o->source, pk, o->accept_new_pub,
	    &added, err)))
		return rc;
	if (added)
		ws_log_printf(o->log, o->log_cd, "added the key of the publisher at %s "
		    "to %s: %s", o->source, o->known_hubs, text);
	return 0;
}

/* A frame from a secure publisher: its message goes to the lines read. */
static int rep_frame(struct ws_peer *pp, const struct ws_frame *f, void *cd)
{
	struct rconn *r = cd;
	struct ws_rd rd;
	int64_t code;

	(void)pp;
	if (f->type == WS_FRAME_MESSAGE)
		return message_line(&r->in, f, r->err);
	if (f->type == WS_FRAME_ERROR) {
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_svarint(&rd, &code) || code >= 0 || code < WS_ERROR_MIN)
			code = WS_EIO;
		return ws_error(r->err, (int)code, "the publisher ends the session: %.*s",
		    (int)ws_rd_left(&rd), (const char *)rd.p);
	}
	if (f->type == WS_FRAME_HEARTBEAT)
		return 0;
	return ws_error(r->err, WS_ECORRUPT, "unexpected %s frame from the publisher",
	    ws_frame_type_name(f->type) ? ws_frame_type_name(f->type) : "unknown");
}

/* 1 when URL u names this host: localhost, 127.0.0.0/8 or ::1. */
static int loopback_url(const char *u)
{
	CURLU *h = curl_url();
	char *host = NULL;
	int yes = 0;

	if (h && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		yes = strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
		    (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") ==
		    strlen(host));
	curl_free(host);
	curl_url_cleanup(h);
	return yes;
}

static int rconn_open(struct rconn *r, const struct ws_replicate_pull_opts *o, char *err)
{
	const char *source = o->source;
	int rc;

	memset(r, 0, sizeof(*r));
	r->conn.rfd = r->conn.wfd = -1;
	r->err = err;
	r->o = o;
	if (strncasecmp(source, "http://", 7) == 0 || strncasecmp(source, "https://", 8) == 0) {
		const char *ca = getenv("CURL_CA_BUNDLE");

		r->http = 1;
		if (!(r->curl = curl_easy_init()))
			return ws_error(err, WS_ENOMEM, "cannot start libcurl");
		curl_easy_setopt(r->curl, CURLOPT_URL, source);
		curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(r->curl, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(r->curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_ANY);
		curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, curl_write);
		curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &r->resp);
		curl_easy_setopt(r->curl, CURLOPT_USERAGENT, "wsync-replicate");
		curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT, 30L);
		curl_easy_setopt(r->curl, CURLOPT_ERRORBUFFER, r->cerr);
		if (ca && *ca)
			curl_easy_setopt(r->curl, CURLOPT_CAINFO, ca);
		return 0;
	}
	if ((rc = ws_transport_connect(source, &r->conn, err)) || !o->key)
		return rc;
	/* Secure: the handshake's first step is queued now, sent with the first flush. */
	if (ws_fd_nonblock(r->conn.rfd) || ws_fd_nonblock(r->conn.wfd))
		return ws_error(err, WS_EIO, "cannot set up the connection");
	if (!(r->peer = malloc(sizeof(*r->peer))))
		return WS_ENOMEM;
	ws_peer_init(r->peer, &r->conn, SECURE_MAX_FRAME, 0);
	return ws_peer_secure(r->peer, 1, o->key, check_pub, r);
}

static void rconn_close(struct rconn *r)
{
	if (r->curl)
		curl_easy_cleanup(r->curl);
	curl_slist_free_all(r->hdrs);
	if (r->peer) {
		/* The conn is closed below. */
		r->peer->conn.rfd = r->peer->conn.wfd = -1;
		ws_peer_release(r->peer);
		free(r->peer);
	}
	if (!r->http)
		ws_conn_close(&r->conn);
	ws_buf_release(&r->in);
	ws_buf_release(&r->raw);
	ws_buf_release(&r->resp);
	ws_buf_release(&r->out);
	memset(r, 0, sizeof(*r));
	r->conn.rfd = r->conn.wfd = -1;
}

static int rconn_send(struct rconn *r, json_t *m)
{
	int rc;

	if (!m)
		return WS_ENOMEM;
	rc = put_msg(&r->out, m);
	json_decref(m);
	return rc;
}

/* Streams: write every queued line. */
static int rconn_flush(struct rconn *r)
{
	char buf[64];
	size_t off = 0;
	ssize_t w;

	if (r->http)
		return 0;
	if (r->peer) {
		/* Secure: one MESSAGE frame a line, then write them all. */
		size_t before = ws_peer_pending(r->peer);
		struct pollfd pfd;
		int rc;

		if ((rc = frame_lines(r->peer, &r->out, &off)))
			return rc;
		if (r->bytes_out && ws_peer_pending(r->peer) > before)
			*r->bytes_out += ws_peer_pending(r->peer) - before;
		while (ws_peer_pending(r->peer)) {
			if ((rc = ws_peer_flush(r->peer, r->err)))
				return rc;
			pfd = (struct pollfd){r->conn.wfd, POLLOUT, 0};
			if (ws_peer_pending(r->peer) && poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return ws_error(r->err, WS_EIO, "poll: %s", strerror(errno));
		}
		return 0;
	}
	while (off < r->out.len) {
		w = write(r->conn.wfd, r->out.p + off, r->out.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ws_error(r->err, WS_EIO, "cannot write to the publisher: %s",
			    ws_errno_text(errno, buf));
		off += (size_t)w;
	}
	if (r->bytes_out)
		*r->bytes_out += r->out.len;
	r->out.len = 0;
	return 0;
}

/* HTTP: POST the queued lines; the response's lines are queued to read. */
static int rconn_post(struct rconn *r, unsigned wait_s)
{
	char h[128];
	long status = 0;
	CURLcode cc;
	const char *line;
	size_t n, off;
	json_t *m;

	curl_slist_free_all(r->hdrs);
	r->hdrs = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
	r->hdrs = curl_slist_append(r->hdrs, "Expect:");
	if (r->session[0]) {
		snprintf(h, sizeof(h), "Wsync-Session: %s", r->session);
		r->hdrs = curl_slist_append(r->hdrs, h);
	}
	snprintf(h, sizeof(h), "Wsync-Wait: %u", wait_s);
	r->hdrs = curl_slist_append(r->hdrs, h);
	if (r->o->http_token) {
		char a[WS_REPLICATE_TOKEN_MAX + 32];

		snprintf(a, sizeof(a), "Authorization: Bearer %s", r->o->http_token);
		r->hdrs = curl_slist_append(r->hdrs, a);
		sodium_memzero(a, sizeof(a));
	}
	if (!r->hdrs)
		return WS_ENOMEM;
	r->resp.len = r->resp_off = 0;
	curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, r->out.len ? (char *)r->out.p : "");
	curl_easy_setopt(r->curl, CURLOPT_POSTFIELDSIZE, (long)r->out.len);
	curl_easy_setopt(r->curl, CURLOPT_TIMEOUT, (long)wait_s + 120L);
	r->cerr[0] = 0;
	cc = curl_easy_perform(r->curl);
	if (r->bytes_out)
		*r->bytes_out += r->out.len;
	r->out.len = 0;
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		return ws_error(r->err, WS_EPERM, "cannot verify the publisher's TLS "
		    "certificate: %s (name its CA in CURL_CA_BUNDLE)",
		    r->cerr[0] ? r->cerr : curl_easy_strerror(cc));
	if (cc != CURLE_OK)
		return ws_error(r->err, cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ?
		    WS_EUNSUPP : cc == CURLE_LOGIN_DENIED ? WS_EPERM : WS_EIO,
		    "HTTP request failed: %s", curl_easy_strerror(cc));
	if (r->bytes_in)
		*r->bytes_in += r->resp.len;
	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		char why[WS_ERRLEN] = "";

		off = 0;
		if (next_line(&r->resp, &off, &line, &n) &&
		    ws_replicate_parse_msg(line, n, &m, NULL) == 0) {
			snprintf(why, sizeof(why), ": %s",
			    json_string_value(json_object_get(m, "error")) ?
			    json_string_value(json_object_get(m, "error")) : "");
			json_decref(m);
		}
		return ws_error(r->err, status == 401 || status == 403 ? WS_EPERM :
		    status == 404 ? WS_ENOTFOUND : status >= 500 ? WS_EIO : WS_ECORRUPT,
		    "the publisher answered HTTP %ld%s", status, why);
	}
	if (r->resp.len && r->resp.p[r->resp.len - 1] != '\n' && ws_buf_putc(&r->resp, '\n'))
		return WS_ENOMEM;
	return 0;
}

/*
 * The next message from the publisher into *m: 1, 0 when none came
 * within wait_ms (0: only what is already here), 2 when extra_fd (may
 * be -1) became readable first, or <0.
 */
static int rconn_recv(struct rconn *r, json_t **m, int wait_ms, int extra_fd)
{
	struct pollfd pfd[2];
	const char *line;
	size_t n;
	ssize_t got;
	int rc;

	*m = NULL;
	for (;;) {
		struct ws_buf *b = r->http ? &r->resp : &r->in;
		size_t *off = r->http ? &r->resp_off : &r->in_off;


		while (next_line(b, off, &line, &n)) {
			if (n == 0 || (n == 1 && line[0] == '\r'))
				continue;
			return ws_replicate_parse_msg(line, n, m, r->err) ? WS_ECORRUPT : 1;
		}
		if (r->http) {
			r->resp.len = r->resp_off = 0;
			if (wait_ms == 0)
				return 0;
			if ((rc = rconn_post(r, (unsigned)(wait_ms / 1000))))
				return rc;
			if (r->resp.len == 0)
				return 0;
			continue;
		}
		compact(&r->in, &r->in_off);
		if (r->in.len > WS_REPLICATE_MAX_LINE)
			return ws_error(r->err, WS_ETOOBIG, "a message longer than %u bytes",
			    WS_REPLICATE_MAX_LINE);
		if ((rc = rconn_flush(r)))
			return rc;
		pfd[0] = (struct pollfd){r->conn.rfd, POLLIN, 0};
		pfd[1] = (struct pollfd){extra_fd, POLLIN, 0};
		rc = poll(pfd, extra_fd >= 0 ? 2 : 1, wait_ms);
		if (rc < 0 && errno == EINTR)
			return 0;
		if (rc < 0)
			return ws_error(r->err, WS_EIO, "poll: %s", strerror(errno));
		if (rc == 0)
			return 0;
		if (extra_fd >= 0 && (pfd[1].revents & POLLIN) && !(pfd[0].revents))
			return 2;
		b = r->peer ? &r->raw : &r->in;
		if (ws_buf_reserve(b, 65536))
			return WS_ENOMEM;
		got = read(r->conn.rfd, b->p + b->len, b->cap - b->len);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return ws_error(r->err, WS_EIO, "cannot read from the publisher: %s",
			    strerror(errno));
		if (got == 0 && r->peer && !ws_secure_ready(r->peer))
			return ws_error(r->err, WS_EPERM, "%s closed the connection during "
			    "the handshake", r->conn.name);
		if (got == 0)
			return ws_error(r->err, WS_EIO, "the publisher closed the connection");
		b->len += (size_t)got;
		if (r->bytes_in)
			*r->bytes_in += (uint64_t)got;
		if (r->peer) {
			/* Unframe: the messages become lines of r->in. */
			rc = frames_feed(r->peer, r->raw.p, r->raw.len, rep_frame, r, r->err);
			r->raw.len = 0;
			if (rc)
				return rc;
		}
	}
}

/* --- replicator ------------------------------------------------------------ */

struct rcol {
	char *remote;
	char *local;
	char *type;
	int key;                      /* position in the key from 1, or 0 */
	int update;                   /* asked for, and granted */
	int array;                    /* 1 + index into o->arrays, or 0 */
};

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
	struct rcol *cols;
	size_t ncols;
	size_t nkey;
	size_t keys[64];              /* indexes into cols, key order */
	struct child *child;          /* one per o->arrays */
	struct rstmt cache[RCACHE];
	size_t ncache;
	sqlite3_stmt *sel, *sweep_ins, *mark, *unmark, *getmark;
	sqlite3_stmt *pend;           /* a row's changes still to go up */
	struct ws_buf q, tmp;
	json_t *events;               /* [[name, object], ...] after commit */
	uint64_t new_usn;
	int have_usn, got_sync, initialized;
	int64_t ndeleted;             /* markers of this table */
	int created;                  /* this run made the database file */
	int bound;                    /* a session set the table up (setup()) */
	unsigned inflight;            /* upward changes waiting for a result */
	uint64_t t0;
	char *mapping;                /* the requested columns, as mapping_of() */
	char *err;
};

#define rlog(x, ...) ws_log_printf((x)->o->log, (x)->o->log_cd, __VA_ARGS__)

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

static void rcols_free(struct rep *x)
{
	size_t i;

	for (i = 0; i < x->ncols; i++) {
		free(x->cols[i].remote);
		free(x->cols[i].local);
		free(x->cols[i].type);
	}
	free(x->cols);
	x->cols = NULL;
	x->ncols = 0;
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
		if (rc == 0 && !cstr(&b))
			rc = WS_ENOMEM;
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

/* Append s as an SQL string literal. */
static int sqlstr(struct ws_buf *b, const char *s)
{
	if (ws_buf_putc(b, '\''))
		return WS_ENOMEM;
	for (; *s; s++)
		if ((*s == '\'' && ws_buf_putc(b, '\'')) || ws_buf_putc(b, (uint8_t)*s))
			return WS_ENOMEM;
	return ws_buf_putc(b, '\'');
}

/* Queue an event; it is delivered after the transaction commits. */
static int event(struct rep *x, const char *name, json_t *obj)
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

static int parent_col(const struct rcol *c)
{
	return !c->array;
}

/* The local key of the row in st (key columns from `from`), as JSON. */
static json_t *key_obj_from(struct rep *x, sqlite3_stmt *st, const int *colpos)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; o && i < x->nkey; i++)
		json_object_set_new(o, x->cols[x->keys[i]].local, col_json(st, colpos[i]));
	return o;
}

/* Bind the key, given as an object of remote names, from parameter `from`. */
static int bind_rkey(struct rep *x, sqlite3_stmt *st, int from, const json_t *key)
{
	size_t i;
	int rc;

	if (!json_is_object(key))
		return ws_error(x->err, WS_ECORRUPT, "a message without its key");
	for (i = 0; i < x->nkey; i++) {
		const struct rcol *c = &x->cols[x->keys[i]];
		const json_t *v = json_object_get(key, c->remote);

		if (!v)
			return ws_error(x->err, WS_ECORRUPT, "a message without key "
			    "column '%s'", c->remote);
		if ((rc = bind_json(st, from + (int)i, v, &x->tmp, c->remote, x->err)))
			return rc == WS_EJSON ? WS_ECORRUPT : rc;
	}
	return 0;
}

static int put_where_key(struct rep *x, struct ws_buf *q, int from)
{
	size_t i;

	for (i = 0; i < x->nkey; i++)
		if (put_key_term(q, i, x->cols[x->keys[i]].local, from + (int)i))
			return WS_ENOMEM;
	return 0;
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
static int put_key_text(struct rep *x, struct ws_buf *q, const char *row)
{
	size_t i;
	int rc = ws_buf_printf(q, "'['");

	for (i = 0; i < x->nkey; i++) {
		const char *c = x->cols[x->keys[i]].local;
		int k;

		for (k = 0; k < 4; k++) {
			static const char *const pre[] = {"||CASE typeof(",
			    ") WHEN 'real' THEN '{\"q\":\"'||quote(",
			    ")||'\"}' WHEN 'blob' THEN '{\"x\":\"'||hex(",
			    ")||'\"}' ELSE json_quote("};

			rc |= ws_buf_printf(q, "%s%s", k == 0 && i ? "||','" : "", pre[k]);
			if (row)
				rc |= ws_buf_printf(q, "%s.", row) || qid(q, c);
			else
				rc |= ws_buf_printf(q, "?%zu", i + 1);
		}
		rc |= ws_buf_printf(q, ") END");
	}
	rc |= ws_buf_printf(q, "||']'");
	return rc ? WS_ENOMEM : 0;
}

/*
 * The local changes of the row with key (remote names) that still wait
 * to go up, as a mask of the columns they hold (*mask) and whether the
 * row was deleted (*gone).  A change from the publisher leaves those
 * columns as they are: the local change goes up after it, and the
 * publisher echoes it back; written over, the newer local value would
 * be lost (and sent up as the older one).
 */
static int pending_cols(struct rep *x, const json_t *key, uint64_t *mask, int *gone)
{
	size_t i;
	int rc;

	*mask = 0;
	*gone = 0;
	if (!x->pend)
		return 0;
	sqlite3_reset(x->pend);
	if ((rc = bind_rkey(x, x->pend, 1, key)))
		return rc;
	while ((rc = sqlite3_step(x->pend)) == SQLITE_ROW) {
		const char *op = (const char *)sqlite3_column_text(x->pend, 0);

		if (op && strcmp(op, "del") == 0)
			*gone = 1;
		else if (op && strcmp(op, "add") == 0)
			for (i = 0; i < x->ncols; i++)
				*mask |= x->cols[i].key ? 0 : 1ull << i;
		else
			*mask |= (uint64_t)sqlite3_column_int64(x->pend, 1);
	}
	sqlite3_reset(x->pend);
	return rc == SQLITE_DONE ? 0 : sqlfail(x->db, rc, "wsync_replica_out", x->err);
}

/* The upsert (kind 0) or update (kind 1) statement for the columns in mask. */
static int rstmt_get(struct rep *x, int kind, uint64_t mask, sqlite3_stmt **out)
{
	struct ws_buf *q = &x->q;
	size_t i, n = 0;
	int rc = 0, first = 1;

	for (i = 0; i < x->ncache; i++)
		if (x->cache[i].kind == kind && x->cache[i].mask == mask) {
			*out = x->cache[i].st;
			sqlite3_reset(*out);
			sqlite3_clear_bindings(*out);
			return 0;
		}
	q->len = 0;
	if (kind == 0) {
		rc |= ws_buf_printf(q, "INSERT INTO ") || qid(q, x->o->table) ||
		    ws_buf_putc(q, '(');
		for (i = 0; i < x->ncols; i++)
			if (mask & (1ull << i))
				rc |= (n++ && ws_buf_putc(q, ',')) || qid(q, x->cols[i].local);
		rc |= ws_buf_printf(q, ") VALUES (");
		for (i = 0; i < n; i++)
			rc |= ws_buf_printf(q, "%s?%zu", i ? "," : "", i + 1);
		rc |= ws_buf_printf(q, ") ON CONFLICT(");
		for (i = 0; i < x->nkey; i++)
			rc |= (i && ws_buf_putc(q, ',')) || qid(q, x->cols[x->keys[i]].local);
		rc |= ws_buf_printf(q, ") DO ");
		for (i = 0; i < x->ncols; i++)
			if ((mask & (1ull << i)) && !x->cols[i].key) {
				rc |= ws_buf_printf(q, first ? "UPDATE SET " : ", ") ||
				    qid(q, x->cols[i].local) || ws_buf_printf(q, " = excluded.") ||
				    qid(q, x->cols[i].local);
				first = 0;
			}
		if (first)
			rc |= ws_buf_printf(q, "NOTHING");
	} else {
		rc |= ws_buf_printf(q, "UPDATE ") || qid(q, x->o->table) ||
		    ws_buf_printf(q, " SET ");
		for (i = 0; i < x->ncols; i++)
			if (mask & (1ull << i)) {
				rc |= (n && ws_buf_putc(q, ',')) || qid(q, x->cols[i].local) ||
				    ws_buf_printf(q, " = ?%zu", n + 1);
				n++;
			}
		rc |= put_where_key(x, q, (int)n + 1);
	}
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if (x->ncache == RCACHE) {
		sqlite3_finalize(x->cache[0].st);
		memmove(x->cache, x->cache + 1, (RCACHE - 1) * sizeof(x->cache[0]));
		x->ncache--;
	}
	if (sqlite3_prepare_v2(x->db, cstr(q), -1, out, NULL) != SQLITE_OK)
		return ws_error(x->err, WS_ESCHEMA, "table '%s' cannot take the rows: %s",
		    x->o->table, sqlite3_errmsg(x->db));
	x->cache[x->ncache++] = (struct rstmt){kind, mask, *out};
	return 0;
}

static int step_done(struct rep *x, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : sqlfail(x->db, rc, what, x->err);
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

/* Replace the child rows of the row whose key is `ref` with array `v`. */
static int apply_array(struct rep *x, size_t ai, const json_t *ref, const json_t *v)
{
	const struct ws_replicate_array *a = &x->o->arrays[ai];
	struct child *ch = &x->child[ai];
	struct ws_buf *q = &x->q;
	sqlite3_stmt *st = NULL;
	json_error_t je;
	json_t *arr = NULL, *el, *fv;
	const char *k;
	size_t i;
	int rc, n;

	q->len = 0;
	if (ws_buf_printf(q, "DELETE FROM ") || qid(q, a->child) ||
	    ws_buf_printf(q, " WHERE ") || qid(q, a->ref) || ws_buf_printf(q, " = ?1") ||
	    !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &st, x->err)) ||
	    (rc = bind_json(st, 1, ref, &x->tmp, a->ref, x->err)) ||
	    (rc = step_done(x, st, a->child)))
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
			q->len = 0;
			if (ws_buf_printf(q, "ALTER TABLE ") || qid(q, a->child) ||
			    ws_buf_printf(q, " ADD COLUMN ") || qid(q, k) || !cstr(q)) {
				rc = WS_ENOMEM;
				goto out;
			}
			if ((rc = exec_sql(x->db, cstr(q), x->err)))
				goto out;
			json_object_set_new(ch->known, k, json_true());
		}
		q->len = 0;
		rc = ws_buf_printf(q, "INSERT INTO ") || qid(q, a->child) ||
		    ws_buf_putc(q, '(') || qid(q, a->ref);
		json_object_foreach(el, k, fv)
			if (strcmp(k, a->ref) != 0)
				rc |= ws_buf_putc(q, ',') || qid(q, k);
		rc |= ws_buf_printf(q, ") VALUES (?1");
		n = 1;
		json_object_foreach(el, k, fv)
			if (strcmp(k, a->ref) != 0)
				rc |= ws_buf_printf(q, ",?%d", ++n);
		if (rc || ws_buf_putc(q, ')') || !cstr(q)) {
			rc = WS_ENOMEM;
			goto out;
		}
		if ((rc = prepare(x->db, cstr(q), &st, x->err)) ||
		    (rc = bind_json(st, 1, ref, &x->tmp, a->ref, x->err)))
			goto out;
		n = 1;
		json_object_foreach(el, k, fv)
			if (strcmp(k, a->ref) != 0)
				bind_elem(st, ++n, fv);
		if ((rc = step_done(x, st, a->child)))
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
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < x->o->narrays; i++) {
		x->q.len = 0;
		if (ws_buf_printf(&x->q, "DELETE FROM ") || qid(&x->q, x->o->arrays[i].child) ||
		    ws_buf_printf(&x->q, " WHERE ") || qid(&x->q, x->o->arrays[i].ref) ||
		    ws_buf_printf(&x->q, " = ?1") || !cstr(&x->q))
			return WS_ENOMEM;
		if ((rc = prepare(x->db, cstr(&x->q), &st, x->err)))
			break;
		sqlite3_bind_value(st, 1, sqlite3_column_value(keyrow, keycol));
		rc = step_done(x, st, x->o->arrays[i].child);
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

	for (i = 0; a && i < x->nkey; i++)
		json_array_append(a, json_object_get(key, x->cols[x->keys[i]].remote));
	s = a ? json_dumps(a, JSON_COMPACT) : NULL;
	json_decref(a);
	return s;
}

/*
 * A row from the publisher (ReplicateNextResult, ReplicateAdd): insert
 * it or update it, with its array columns.
 */
static int apply_row(struct rep *x, const json_t *cols, uint64_t usn)
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
	for (i = 0; i < x->ncols; i++) {
		if (!(v = json_object_get(cols, x->cols[i].remote)))
			continue;
		if (parent_col(&x->cols[i]))
			mask |= 1ull << i;
		if (x->cols[i].key)
			json_object_set(key, x->cols[i].remote, v);
	}
	if (json_object_size(key) != x->nkey) {
		json_decref(key);
		return ws_error(x->err, WS_ECORRUPT, "a row without its whole key");
	}
	/* Columns with a local change still to go up keep their value. */
	if ((rc = pending_cols(x, key, &keep, &gone)))
		goto out;
	if (gone) {
		x->rows++;
		goto out; /* deleted here: the delete goes up */
	}
	mask &= ~keep;
	if (x->o->event) {
		/* Added or updated, and which columns changed. */
		sqlite3_reset(x->sel);
		if ((rc = bind_rkey(x, x->sel, 1, key)))
			goto out;
		rc = sqlite3_step(x->sel);
		if (rc == SQLITE_ROW) {
			existed = 1;
			changed = json_array();
			for (i = 0, n = 0; changed && i < x->ncols; i++) {
				if (!parent_col(&x->cols[i]))
					continue;
				v = json_object_get(cols, x->cols[i].remote);
				if (v && !(keep & (1ull << i))) {
					json_t *old = col_json(x->sel, n);

					if (!json_equal(old, v))
						json_array_append_new(changed,
						    json_string(x->cols[i].local));
					json_decref(old);
				}
				n++;
			}
		}
		sqlite3_reset(x->sel);
	}
	if ((rc = rstmt_get(x, 0, mask, &st)))
		goto out;
	for (i = 0, n = 0; i < x->ncols; i++)
		if (mask & (1ull << i) && (rc = bind_json(st, ++n,
		    json_object_get(cols, x->cols[i].remote), &x->tmp, x->cols[i].remote,
		    x->err)))
			goto out;
	if ((rc = step_done(x, st, x->o->table)))
		goto out;
	for (i = 0; i < x->ncols; i++)
		if (x->cols[i].array && !(keep & (1ull << i)) &&
		    (v = json_object_get(cols, x->cols[i].remote)) &&
		    (rc = apply_array(x, (size_t)x->cols[i].array - 1,
		    json_object_get(key, x->cols[x->keys[0]].remote), v)))
			goto out;
	if (x->sweep) {
		sqlite3_reset(x->sweep_ins);
		if ((rc = bind_rkey(x, x->sweep_ins, 1, key)) ||
		    (rc = step_done(x, x->sweep_ins, "wsync_replica_full")))
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
		if ((rc = step_done(x, x->unmark, "wsync_replica_deleted")))
			goto out;
		x->ndeleted -= sqlite3_changes(x->db);
	}
	x->rows++;
	if (x->o->event && (!existed || json_array_size(changed))) {
		json_t *lk = json_object();
		size_t j;

		for (j = 0; lk && j < x->nkey; j++)
			json_object_set(lk, x->cols[x->keys[j]].local,
			    json_object_get(key, x->cols[x->keys[j]].remote));
		rc = existed ? event(x, "updated", json_pack("{s:o,s:O,s:I}", "key", lk,
		    "columns", changed, "usn", (json_int_t)usn)) :
		    event(x, "added", json_pack("{s:o,s:I}", "key", lk, "usn", (json_int_t)usn));
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

	for (i = 0; o && i < x->ncols && i < 63; i++) {
		if (!(mask & ((json_int_t)1 << i)))
			continue;
		if (k >= json_array_size(arr) ||
		    json_object_set(o, x->cols[i].remote, json_array_get(arr, k)))
			break;
		k++;
	}
	if (!o || mask <= 0 || (mask >> (x->ncols < 63 ? x->ncols : 63)) ||
	    k != json_array_size(arr) || i < x->ncols) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int apply_update(struct rep *x, const json_t *m, uint64_t usn)
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
	if ((rc = pending_cols(x, key, &keep, &gone)))
		goto out;
	if (gone)
		goto out; /* deleted here: the delete goes up */
	if (x->o->event) {
		/* The row as it is, to report only the columns that change. */
		sqlite3_reset(x->sel);
		if ((rc = bind_rkey(x, x->sel, 1, key)))
			goto out;
		have = sqlite3_step(x->sel) == SQLITE_ROW;
	}
	for (i = 0, j = 0; i < x->ncols; i++) {
		if (!parent_col(&x->cols[i])) {
			if ((keep & (1ull << i)))
				continue;
			if ((v = json_object_get(cols, x->cols[i].remote))) {
				json_array_append_new(changed, json_string(x->cols[i].local));
				arrays = 1;
			}
			continue;
		}
		j++;
		if (!(v = json_object_get(cols, x->cols[i].remote)) || x->cols[i].key ||
		    (keep & (1ull << i)))
			continue;
		mask |= 1ull << i;
		if (have) {
			/*
			 * The same value is no change: so the publisher's echo of
			 * an update this replicator sent is not reported again.
			 */
			json_t *old = col_json(x->sel, j - 1);
			int same = json_equal(old, v);

			json_decref(old);
			if (same)
				continue;
		}
		json_array_append_new(changed, json_string(x->cols[i].local));
	}
	if (have)
		sqlite3_reset(x->sel);
	rc = 0;
	if (mask) {
		if ((rc = rstmt_get(x, 1, mask, &st)))
			goto out;
		for (i = 0; i < x->ncols; i++)
			if ((mask & (1ull << i)) && (rc = bind_json(st, ++n,
			    json_object_get(cols, x->cols[i].remote), &x->tmp,
			    x->cols[i].remote, x->err)))
				goto out;
		if ((rc = bind_rkey(x, st, n + 1, key)) || (rc = step_done(x, st, x->o->table)))
			goto out;
	}
	for (i = 0; arrays && i < x->ncols; i++)
		if (x->cols[i].array && !(keep & (1ull << i)) &&
		    (v = json_object_get(cols, x->cols[i].remote)) &&
		    (rc = apply_array(x, (size_t)x->cols[i].array - 1,
		    json_object_get(key, x->cols[x->keys[0]].remote), v)))
			goto out;
	if (x->o->event && json_array_size(changed)) {
		if (!(lk = json_object()))
			goto out;
		for (i = 0; i < x->nkey; i++)
			json_object_set(lk, x->cols[x->keys[i]].local,
			    json_object_get(key, x->cols[x->keys[i]].remote));
		rc = event(x, "updated", json_pack("{s:o,s:O,s:I}", "key", lk, "columns",
		    changed, "usn", (json_int_t)usn));
	}
out:
	json_decref(changed);
	json_decref(named);
	return rc;
}

/* Phase one of a delete: the row is marked deleted. */
static int mark_deleted(struct rep *x, sqlite3_stmt *row, const int *keypos, uint64_t usn)
{
	json_t *lk = key_obj_from(x, row, keypos), *a = json_array();
	char *k = NULL;
	size_t i;
	int rc = WS_ENOMEM;

	for (i = 0; lk && a && i < x->nkey; i++)
		json_array_append_new(a, col_json(row, keypos[i]));
	if (!lk || !a || !(k = json_dumps(a, JSON_COMPACT)))
		goto out;
	sqlite3_bind_text(x->mark, 1, k, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(x->mark, 2, (int64_t)usn);
	if ((rc = step_done(x, x->mark, "wsync_replica_deleted")))
		goto out;
	x->ndeleted++;
	rc = event(x, "deleted", json_pack("{s:O,s:I,s:s}", "key", lk, "usn",
	    (json_int_t)usn, "k", k));
out:
	free(k);
	json_decref(lk);
	json_decref(a);
	return rc;
}

static int apply_del(struct rep *x, const json_t *m, uint64_t usn)
{
	const json_t *key = json_object_get(m, "key");
	int keypos[64], rc;
	size_t i;

	for (i = 0; i < x->nkey; i++)
		keypos[i] = (int)i;
	sqlite3_reset(x->getmark);
	if ((rc = bind_rkey(x, x->getmark, 1, key)))
		return rc;
	rc = sqlite3_step(x->getmark);
	if (rc == SQLITE_ROW)
		rc = mark_deleted(x, x->getmark, keypos, usn);
	else if (rc == SQLITE_DONE)
		rc = 0;
	else
		rc = sqlfail(x->db, rc, x->o->table, x->err);
	sqlite3_reset(x->getmark);
	return rc;
}

/* Phase three: remove the rows whose delete is confirmed. */
static int remove_confirmed(struct rep *x)
{
	sqlite3_stmt *st = NULL, *del = NULL;
	struct ws_buf *q = &x->q;
	json_error_t je;
	json_t *a, *lk;
	size_t i;
	int rc;

	q->len = 0;
	if (ws_buf_printf(q, "DELETE FROM ") || qid(q, x->o->table) ||
	    put_where_key(x, q, 1) || ws_buf_printf(q, " RETURNING ") ||
	    qid(q, x->cols[x->keys[0]].local) || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &del, x->err)) ||
	    (rc = prepare(x->db, "SELECT k FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed'", &st, x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		a = json_loads(k, 0, &je);
		if (!json_is_array(a) || json_array_size(a) != x->nkey) {
			json_decref(a);
			continue;
		}
		sqlite3_reset(del);
		for (i = 0; rc == SQLITE_ROW && i < x->nkey; i++)
			if (bind_json(del, (int)i + 1, json_array_get(a, i), &x->tmp, "key", NULL))
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
		for (i = 0; lk && i < x->nkey; i++)
			json_object_set(lk, x->cols[x->keys[i]].local, json_array_get(a, i));
		json_decref(a);
		if (rc != SQLITE_DONE) {
			json_decref(lk);
			rc = sqlfail(x->db, rc, x->o->table, x->err);
			goto out;
		}
		if ((rc = event(x, "removed", json_pack("{s:o}", "key", lk))))
			goto out;
	}
	if (rc != SQLITE_DONE) {
		rc = sqlfail(x->db, rc, "wsync_replica_deleted", x->err);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((rc = prepare(x->db, "DELETE FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed'", &st, x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	rc = step_done(x, st, "wsync_replica_deleted");
	x->ndeleted -= sqlite3_changes(x->db);
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return rc;
}

static int tx_begin(struct rep *x)
{
	int rc = exec_sql(x->db, "BEGIN IMMEDIATE; INSERT INTO wsync_replica_applying "
	    "VALUES (1)", x->err);

	if (rc)
		sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	x->have_usn = 0;
	return rc;
}

/* Record the usn reached (if any) and commit. */
static int tx_commit(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (x->have_usn && x->initialized) {
		if ((rc = prepare(x->db, "UPDATE wsync_replica SET usn = ?1, "
		    "updated = datetime('now') WHERE local_table = ?2", &st, x->err)))
			goto fail;
		sqlite3_bind_int64(st, 1, (int64_t)x->new_usn);
		sqlite3_bind_text(st, 2, x->o->table, -1, SQLITE_STATIC);
		rc = step_done(x, st, "wsync_replica");
		sqlite3_finalize(st);
		if (rc)
			goto fail;
		x->usn = x->new_usn;
	}
	if ((rc = exec_sql(x->db, "DELETE FROM wsync_replica_applying; COMMIT", x->err)))
		goto fail;
	return 0;
fail:
	sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static void tx_abort(struct rep *x)
{
	sqlite3_exec(x->db, "ROLLBACK", NULL, NULL, NULL);
	json_array_clear(x->events);
}

/* Deliver the queued events; confirm the deletes they handled. */
static int deliver(struct rep *x)
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
		if ((rc = tx_begin(x)))
			goto out;
		if ((rc = prepare(x->db, "UPDATE wsync_replica_deleted SET state = "
		    "'confirmed' WHERE local_table = ?1 AND k = ?2 AND state = 'deleted'",
		    &st, x->err)))
			goto fail;
		json_array_foreach(conf, i, e) {
			sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, json_string_value(e), -1, SQLITE_TRANSIENT);
			if ((rc = step_done(x, st, "wsync_replica_deleted")))
				goto fail;
		}
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = remove_confirmed(x)) || (rc = tx_commit(x)))
			goto fail;
		rc = deliver(x);
	}
	goto out;
fail:
	tx_abort(x);
out:
	sqlite3_finalize(st);
	json_decref(conf);
	return rc;
}

/*
 * Append the quoted name of a capture trigger of table (which 0 insert,
 * 1 update, 2 delete), or (3) of the index on a child table's reference.
 */
static int trig_name(struct ws_buf *q, const char *table, size_t which)
{
	static const char *const sfx[] = {"ins", "upd", "del", "ref"};
	char *name;
	int rc;

	if (asprintf(&name, "wsync_replica_%s_%s", table, sfx[which]) < 0)
		return WS_ENOMEM;
	rc = qid(q, name);
	free(name);
	return rc;
}

/* The columns the publisher sends, mapped to local names; the tables. */
static int setup(struct rep *x, const json_t *sr)
{
	const struct ws_replicate_pull_opts *o = x->o;
	const json_t *cols = json_object_get(sr, "columns"), *e;
	struct ws_buf *q = &x->q;
	sqlite3_stmt *st = NULL;
	size_t i, j, n = json_array_size(cols);
	int rc = 0, exists = 0, pos, found;

	if (!json_is_array(cols) || n == 0 || n > 63)
		return ws_error(x->err, WS_ECORRUPT, "ReplicateStartResult without "
		    "1 to 63 columns");
	if (!(x->cols = calloc(n, sizeof(*x->cols))) ||
	    !(x->child = calloc(o->narrays + 1, sizeof(*x->child))))
		return WS_ENOMEM;
	json_array_foreach(cols, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		const char *type = json_string_value(json_object_get(e, "type"));
		const json_t *jk = json_object_get(e, "key");
		const struct ws_replicate_col *spec = NULL;
		struct rcol *c = &x->cols[i];
		int upd = get_bool(e, "update");

		if (!name || !name_ok(name) || upd < 0 || (jk && !json_is_integer(jk) &&
		    !json_is_boolean(jk)))
			return ws_error(x->err, WS_ECORRUPT, "a bad column in "
			    "ReplicateStartResult");
		for (j = 0; j < o->ncols; j++)
			if (strcmp(o->cols[j].name, name) == 0)
				spec = &o->cols[j];
		x->ncols = i + 1;
		c->remote = strdup(name);
		c->local = strdup(spec ? spec->other : name);
		c->type = strdup(type ? type : "");
		if (!c->remote || !c->local || !c->type)
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
	for (pos = 1, x->nkey = 0; pos < 64; pos++)
		for (i = 0; i < n; i++)
			if (x->cols[i].key == pos)
				x->keys[x->nkey++] = i;
	if (x->nkey == 0)
		return ws_error(x->err, WS_ECORRUPT, "the publisher names no key column");
	for (j = 0; j < o->ncols + o->narrays; j++) {
		const char *want = j < o->ncols ? o->cols[j].name : o->arrays[j - o->ncols].remote;

		for (i = 0, found = 0; i < n; i++)
			found |= strcmp(x->cols[i].remote, want) == 0;
		if (!found)
			return ws_error(x->err, WS_ESCHEMA, "the publisher does not publish "
			    "column '%s'", want);
	}
	if (o->narrays && x->nkey != 1)
		return ws_error(x->err, WS_ESCHEMA, "array columns need a key of one column");
	if ((rc = exec_sql(x->db, "BEGIN IMMEDIATE", x->err)))
		return rc;
	q->len = 0;
	if (ws_buf_printf(q, "PRAGMA table_info(") || qid(q, o->table) ||
	    ws_buf_putc(q, ')') || !cstr(q))
		goto nomem;
	if ((rc = prepare(x->db, cstr(q), &st, x->err)))
		goto fail;
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *have = (const char *)sqlite3_column_text(st, 1);

		exists = 1;
		for (i = 0; i < n; i++)
			if (have && strcasecmp(have, x->cols[i].local) == 0)
				x->cols[i].array = x->cols[i].array ? x->cols[i].array : -1;
	}
	sqlite3_finalize(st);
	st = NULL;
	q->len = 0;
	if (!exists) {
		rc = ws_buf_printf(q, "CREATE TABLE ") || qid(q, o->table) || ws_buf_putc(q, '(');
		for (i = 0, j = 0; i < n; i++) {
			if (x->cols[i].array)
				continue;
			rc |= (j++ && ws_buf_putc(q, ',')) || qid(q, x->cols[i].local);
			if (x->cols[i].type[0])
				rc |= ws_buf_printf(q, " %s", x->cols[i].type);
		}
		rc |= ws_buf_printf(q, ", PRIMARY KEY(");
		for (i = 0; i < x->nkey; i++)
			rc |= (i && ws_buf_putc(q, ',')) || qid(q, x->cols[x->keys[i]].local);
		rc |= ws_buf_printf(q, "));");
	} else {
		for (i = 0; i < n; i++)
			if (!x->cols[i].array) {
				rc |= ws_buf_printf(q, "ALTER TABLE ") || qid(q, o->table) ||
				    ws_buf_printf(q, " ADD COLUMN ") || qid(q, x->cols[i].local) ||
				    ws_buf_printf(q, " %s;", x->cols[i].type);
			}
	}
	/* -1 marked the columns the table has: they are plain columns. */
	for (i = 0; i < n; i++)
		if (x->cols[i].array < 0)
			x->cols[i].array = 0;
	for (i = 0; i < n; i++)
		for (j = 0; j < o->narrays; j++)
			if (strcmp(o->arrays[j].remote, x->cols[i].remote) == 0)
				x->cols[i].array = (int)j + 1;
	for (j = 0; j < o->narrays; j++) {
		rc |= ws_buf_printf(q, "CREATE TABLE IF NOT EXISTS ") ||
		    qid(q, o->arrays[j].child) || ws_buf_putc(q, '(') ||
		    qid(q, o->arrays[j].ref) || ws_buf_printf(q, ");CREATE INDEX IF NOT EXISTS ");
		rc |= trig_name(q, o->arrays[j].child, 3) || ws_buf_printf(q, " ON ") ||
		    qid(q, o->arrays[j].child) || ws_buf_putc(q, '(') ||
		    qid(q, o->arrays[j].ref) || ws_buf_printf(q, ");");
	}
	/* The capture of local changes that go up, as the rights allow. */
	for (j = 0; j < 3; j++)
		rc |= ws_buf_printf(q, "DROP TRIGGER IF EXISTS ") ||
		    trig_name(q, o->table, j) || ws_buf_putc(q, ';');
	if (rc || !cstr(q))
		goto nomem;
	if (exists) {
		/* ADD COLUMN of a column that is there fails: run them one by one. */
		char *sql = strdup(cstr(q)), *p1, *semi;

		if (!sql)
			goto nomem;
		for (p1 = sql; (semi = strstr(p1, ";")); p1 = semi + 1) {
			*semi = 0;
			if (strncmp(p1, "ALTER", 5) == 0)
				sqlite3_exec(x->db, p1, NULL, NULL, NULL);
			else if ((rc = exec_sql(x->db, p1, x->err))) {
				free(sql);
				goto fail;
			}
		}
		free(sql);
	} else if ((rc = exec_sql(x->db, cstr(q), x->err))) {
		goto fail;
	}
	q->len = 0;
	for (j = 0; j < 3; j++) {
		static const char *const ev[] = {"INSERT", "UPDATE", "DELETE"};
		const char *row = j == 2 ? "OLD" : "NEW";
		int any = 0;

		if ((j == 0 && !o->add) || (j == 2 && !o->del))
			continue;
		for (i = 0; i < n; i++)
			any |= x->cols[i].update;
		if (j == 1 && !any)
			continue;
		rc |= ws_buf_printf(q, "CREATE TRIGGER ") || trig_name(q, o->table, j) ||
		    ws_buf_printf(q, " AFTER %s ON ", ev[j]) || qid(q, o->table) ||
		    ws_buf_printf(q, " WHEN NOT EXISTS (SELECT 1 FROM wsync_replica_applying)");
		if (j == 1) {
			rc |= ws_buf_printf(q, " AND (0");
			for (i = 0; i < n; i++)
				if (x->cols[i].update)
					rc |= ws_buf_printf(q, " OR OLD.") || qid(q, x->cols[i].local) ||
					    ws_buf_printf(q, " IS NOT NEW.") || qid(q, x->cols[i].local);
			rc |= ws_buf_putc(q, ')');
		}
		rc |= ws_buf_printf(q, " BEGIN INSERT INTO wsync_replica_out(local_table, op,"
		    " k, mask) VALUES (") || sqlstr(q, o->table) ||
		    ws_buf_printf(q, ", '%s', ", j == 0 ? "add" : j == 1 ? "update" :
		    "del") || put_key_text(x, q, row);
		rc |= ws_buf_printf(q, ", 0");
		for (i = 0; j == 1 && i < n; i++)
			if (x->cols[i].update)
				rc |= ws_buf_printf(q, " | (CASE WHEN OLD.") || qid(q, x->cols[i].local) ||
				    ws_buf_printf(q, " IS NOT NEW.") || qid(q, x->cols[i].local) ||
				    ws_buf_printf(q, " THEN %llu ELSE 0 END)", 1ull << i);
		rc |= ws_buf_printf(q, "); END;");
	}
	rc |= ws_buf_printf(q, "INSERT OR IGNORE INTO wsync_replica(local_table, source, "
	    "guid, usn) VALUES (") || sqlstr(q, o->table) || ws_buf_putc(q, ',') ||
	    sqlstr(q, o->source) || ws_buf_printf(q, ", NULL, 0);");
	if (rc || !cstr(q))
		goto nomem;
	if ((rc = exec_sql(x->db, cstr(q), x->err)) ||
	    (rc = exec_sql(x->db, "COMMIT", x->err)))
		goto fail;
	for (j = 0; j < o->narrays; j++) {
		if (!(x->child[j].known = json_object()))
			return WS_ENOMEM;
		q->len = 0;
		if (ws_buf_printf(q, "PRAGMA table_info(") || qid(q, o->arrays[j].child) ||
		    ws_buf_putc(q, ')') || !cstr(q))
			return WS_ENOMEM;
		if ((rc = prepare(x->db, cstr(q), &st, x->err)))
			return rc;
		while (sqlite3_step(st) == SQLITE_ROW)
			json_object_set_new(x->child[j].known,
			    (const char *)sqlite3_column_text(st, 1), json_true());
		sqlite3_finalize(st);
		st = NULL;
	}
	/* The statements every message uses. */
	q->len = 0;
	rc = ws_buf_printf(q, "SELECT ");
	for (i = 0, j = 0; i < n; i++)
		if (parent_col(&x->cols[i]))
			rc |= (j++ && ws_buf_putc(q, ',')) || qid(q, x->cols[i].local);
	rc |= ws_buf_printf(q, " FROM ") || qid(q, o->table) || put_where_key(x, q, 1);
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &x->sel, x->err)))
		return rc;
	q->len = 0;
	rc = ws_buf_printf(q, "SELECT ");
	for (i = 0; i < x->nkey; i++)
		rc |= (i && ws_buf_putc(q, ',')) || qid(q, x->cols[x->keys[i]].local);
	rc |= ws_buf_printf(q, " FROM ") || qid(q, o->table) || put_where_key(x, q, 1);
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &x->getmark, x->err)))
		return rc;
	q->len = 0;
	rc = ws_buf_printf(q, "INSERT OR IGNORE INTO wsync_replica_full(local_table, k) "
	    "SELECT ") || sqlstr(q, o->table) || ws_buf_putc(q, ',');
	for (i = 0; i < x->nkey; i++)
		rc |= ws_buf_printf(q, "%squote(", i ? "||','||" : "") ||
		    qid(q, x->cols[x->keys[i]].local) || ws_buf_putc(q, ')');
	rc |= ws_buf_printf(q, " FROM ") || qid(q, o->table) || put_where_key(x, q, 1);
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &x->sweep_ins, x->err)))
		return rc;
	q->len = 0;
	if (ws_buf_printf(q, "INSERT OR REPLACE INTO wsync_replica_deleted(local_table, k, "
	    "usn, state) VALUES (") || sqlstr(q, o->table) ||
	    ws_buf_printf(q, ", ?1, ?2, 'deleted')") || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &x->mark, x->err)))
		return rc;
	q->len = 0;
	if (ws_buf_printf(q, "DELETE FROM wsync_replica_deleted WHERE local_table = ") ||
	    sqlstr(q, o->table) || ws_buf_printf(q, " AND k = ?1") || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &x->unmark, x->err)))
		return rc;
	for (i = 0, j = o->add || o->del; i < n; i++)
		j |= (size_t)x->cols[i].update;
	if (j) {
		/* Local changes go up: what the publisher sends must not undo them. */
		q->len = 0;
		if (ws_buf_printf(q, "SELECT op, mask FROM wsync_replica_out WHERE "
		    "local_table = ") || sqlstr(q, o->table) ||
		    ws_buf_printf(q, " AND k = ") || put_key_text(x, q, NULL) || !cstr(q))
			return WS_ENOMEM;
		if ((rc = prepare(x->db, cstr(q), &x->pend, x->err)))
			return rc;
	}
	if ((rc = prepare(x->db, "SELECT count(*) FROM wsync_replica_deleted WHERE "
	    "local_table = ?1", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, o->table, -1, SQLITE_STATIC);
	x->ndeleted = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return 0;
nomem:
	rc = WS_ENOMEM;
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
		rc = rconn_recv(&x->c, m, x->c.http ? 60000 : 1000, -1);
		if (rc == 1 || rc < 0)
			return rc;
		if (ws_now_ms() - t0 > 120000)
			return ws_error(x->err, WS_EAGAIN, "the publisher was silent for "
			    "120 seconds");
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
	struct ws_buf *q = &x->q;
	sqlite3_stmt *st = NULL;
	int keypos[64], rc;
	size_t i;

	q->len = 0;
	rc = ws_buf_printf(q, "SELECT ");
	for (i = 0; i < x->nkey; i++) {
		keypos[i] = (int)i;
		rc |= (i && ws_buf_putc(q, ',')) || qid(q, x->cols[x->keys[i]].local);
	}
	rc |= ws_buf_printf(q, " FROM ") || qid(q, x->o->table) ||
	    ws_buf_printf(q, " AS t WHERE NOT EXISTS (SELECT 1 FROM wsync_replica_full f "
	    "WHERE f.local_table = ") || sqlstr(q, x->o->table) ||
	    ws_buf_printf(q, " AND f.k = ");
	for (i = 0; i < x->nkey; i++)
		rc |= ws_buf_printf(q, "%squote(t.", i ? "||','||" : "") ||
		    qid(q, x->cols[x->keys[i]].local) || ws_buf_putc(q, ')');
	rc |= ws_buf_printf(q, ") AND NOT EXISTS (SELECT 1 FROM wsync_replica_out o WHERE "
	    "o.local_table = ") || sqlstr(q, x->o->table) || ws_buf_printf(q, " AND o.op = 'add')");
	if (rc || !cstr(q))
		return WS_ENOMEM;
	if ((rc = prepare(x->db, cstr(q), &st, x->err)))
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if ((rc = mark_deleted(x, st, keypos, x->start_usn)))
			goto out;
	rc = rc == SQLITE_DONE ? 0 : sqlfail(x->db, rc, x->o->table, x->err);
out:
	sqlite3_finalize(st);
	return rc;
}

/* The initial transfer: ReplicateNext until a result without rows. */
static int initial(struct rep *x)
{
	sqlite3_stmt *st = NULL;
	const json_t *rows, *row;
	json_t *m = NULL;
	unsigned batch = x->o->batch ? x->o->batch : WS_REPLICATE_BATCH;
	size_t i;
	int rc;

	if (x->full) {
		if ((rc = tx_begin(x)))
			return rc;
		if ((rc = prepare(x->db, "UPDATE wsync_replica SET guid = NULL, usn = 0, "
		    "source = ?2, updated = datetime('now') WHERE local_table = ?1; ", &st,
		    x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, x->o->source, -1, SQLITE_STATIC);
		if ((rc = step_done(x, st, "wsync_replica")))
			goto fail;
		sqlite3_finalize(st);
		if ((rc = prepare(x->db, "DELETE FROM wsync_replica_full WHERE local_table = ?1",
		    &st, x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		if ((rc = step_done(x, st, "wsync_replica_full")))
			goto fail;
		sqlite3_finalize(st);
		x->q.len = 0;
		if (ws_buf_printf(&x->q, "SELECT EXISTS (SELECT 1 FROM ") ||
		    qid(&x->q, x->o->table) || ws_buf_putc(&x->q, ')') || !cstr(&x->q)) {
			rc = WS_ENOMEM;
			goto fail;
		}
		if ((rc = prepare(x->db, cstr(&x->q), &st, x->err)))
			goto fail;
		/* Rows of an empty table cannot be stale: no sweep is needed. */
		x->sweep = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		st = NULL;
		if ((rc = tx_commit(x)))
			return rc;
	}
	for (;;) {
		if ((rc = rconn_send(&x->c, json_pack("{s:s,s:i}", "mt", "ReplicateNext",
		    "max", (int)batch))) || (rc = recv_one(x, &m)) < 0)
			return rc;
		if ((rc = check_error(x, m)))
			goto out;
		if (strcmp(mt_of(m), "ReplicateNextResult") != 0) {
			rc = ws_error(x->err, WS_ECORRUPT, "expected ReplicateNextResult, "
			    "got %s", mt_of(m));
			goto out;
		}
		rows = json_object_get(m, "rows");
		row = json_object_get(m, "columns");
		if (!row && !json_array_size(rows))
			break;
		if ((rc = tx_begin(x)))
			goto out;
		if (row && (rc = apply_row(x, row, x->start_usn)))
			goto fail;
		json_array_foreach(rows, i, row)
			if ((rc = apply_row(x, row, x->start_usn)))
				goto fail;
		if ((rc = tx_commit(x)) || (rc = deliver(x)))
			goto out;
		json_decref(m);
		m = NULL;
		progress(x);
	}
	json_decref(m);
	m = NULL;
	if (x->full) {
		if ((rc = tx_begin(x)))
			return rc;
		if (x->sweep && (rc = sweep_stale(x)))
			goto fail;
		if ((rc = prepare(x->db, "DELETE FROM wsync_replica_full WHERE local_table = ?1;",
		    &st, x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		if ((rc = step_done(x, st, "wsync_replica_full")))
			goto fail;
		sqlite3_finalize(st);
		if ((rc = prepare(x->db, "UPDATE wsync_replica SET guid = ?2, usn = ?3, "
		    "mapping = ?4, updated = datetime('now') WHERE local_table = ?1", &st,
		    x->err)))
			goto fail;
		sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, x->pguid, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (int64_t)x->start_usn);
		sqlite3_bind_text(st, 4, x->mapping, -1, SQLITE_STATIC);
		if ((rc = step_done(x, st, "wsync_replica")))
			goto fail;
		sqlite3_finalize(st);
		st = NULL;
		x->sweep = 0;
		if ((rc = tx_commit(x)))
			return rc;
		snprintf(x->guid, sizeof(x->guid), "%s", x->pguid);
		x->usn = x->start_usn;
		x->initialized = 1;
		progress(x);
		return deliver(x);
	}
	return 0;
fail:
	tx_abort(x);
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

	for (i = 0; i < x->ncols; i++)
		any |= x->cols[i].update;
	if (!any || x->inflight)
		return 0;
	if ((rc = prepare(x->db, "SELECT seq, op, k, mask FROM wsync_replica_out WHERE "
	    "local_table = ?1 ORDER BY seq LIMIT 256", &st, x->err)) ||
	    (rc = prepare(x->db, "DELETE FROM wsync_replica_out WHERE seq = ?1", &drop,
	    x->err)))
		goto out;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
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
		for (i = 0; json_is_array(a) && json_array_size(a) == x->nkey && i < x->nkey;
		    i++) {
			json_t *v = key_value(x, json_array_get(a, i));

			if (!v || json_object_set_new(key, x->cols[x->keys[i]].remote, v))
				break;
		}
		m = NULL;
		if (json_object_size(key) != x->nkey) {
			/* Not a key the trigger wrote: drop it, say so. */
			rlog(x, "dropped a local change with a bad key: %s",
			    (const char *)sqlite3_column_text(st, 2));
			json_decref(a);
			json_decref(key);
			a = key = NULL;
			sqlite3_bind_int64(drop, 1, seq);
			if ((rc = step_done(x, drop, "wsync_replica_out")))
				goto out;
			continue;
		}
		if (strcmp(op, "del") == 0) {
			m = json_pack("{s:s,s:I,s:O}", "mt", "ReplicateDel", "id", (json_int_t)seq,
			    "key", key);
		} else {
			sqlite3_reset(x->sel);
			if ((rc = bind_rkey(x, x->sel, 1, key)))
				goto out;
			have = sqlite3_step(x->sel) == SQLITE_ROW;
			cols = json_object();
			for (i = 0, j = 0; have && cols && i < x->ncols; i++) {
				if (!parent_col(&x->cols[i]))
					continue;
				if (op[0] == 'a' || (x->cols[i].update && (mask & (1ull << i))))
					json_object_set_new(cols, x->cols[i].remote,
					    col_json(x->sel, j));
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
			if ((rc = step_done(x, drop, "wsync_replica_out")))
				goto out;
			continue;
		}
		if ((rc = rconn_send(&x->c, m)))
			goto out;
		sent++;
	}
	rc = rc == SQLITE_DONE ? 0 : sqlfail(x->db, rc, "wsync_replica_out", x->err);
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
	const char *mt = mt_of(m);
	uint64_t usn = 0;
	int rc, op = strcmp(mt, "ReplicateAdd") == 0 ? 1 : strcmp(mt, "ReplicateUpdate") == 0 ?
	    2 : strcmp(mt, "ReplicateDel") == 0 ? 3 : strcmp(mt, "ReplicateSync") == 0 ? 4 : 0;

	if (op) {
		int has_usn = json_object_get(m, "usn") != NULL;

		if ((has_usn || op == 4) && get_u64(m, "usn", &usn, x->err))
			return ws_error(x->err, WS_ECORRUPT, "%s without a usn", mt);
		if (!has_usn)
			usn = x->have_usn ? x->new_usn : x->usn;
		rc = op == 1 ? apply_row(x, json_object_get(m, "columns"), usn) :
		    op == 2 ? apply_update(x, m, usn) : op == 3 ? apply_del(x, m, usn) : 0;
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
		if ((rc = prepare(x->db, "DELETE FROM wsync_replica_out WHERE seq = ?1", &st,
		    x->err)))
			return rc;
		sqlite3_bind_int64(st, 1, json_integer_value(id));
		rc = step_done(x, st, "wsync_replica_out");
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

	if ((rc = prepare(x->db, "SELECT 1 FROM wsync_replica_deleted WHERE local_table = ?1"
	    " AND state = 'confirmed' LIMIT 1", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 :
	    sqlfail(x->db, rc, "wsync_replica_deleted", x->err);
	sqlite3_finalize(st);
	return rc;
}

/*
 * Remove the deletes the application confirmed (--hold-deletes).  Only
 * when there is one does it write: a write of its own would wake the
 * watch on the database (watch_db()) and call it again, a busy loop
 * holding the write lock that locked the application out.
 */
static int settle(struct rep *x)
{
	int rc;

	if (x->ndeleted <= 0 || (rc = any_confirmed(x)) == 0)
		return 0;
	if (rc < 0)
		return rc;
	if ((rc = tx_begin(x)))
		return rc;
	if ((rc = remove_confirmed(x)) || (rc = tx_commit(x))) {
		tx_abort(x);
		return rc;
	}
	return deliver(x);
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
	if ((rc = prepare(x->db, "SELECT k, usn FROM wsync_replica_deleted WHERE "
	    "local_table = ?1 AND state = 'deleted'", &st, x->err)))
		return rc;
	sqlite3_bind_text(st, 1, x->o->table, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);

		a = json_loads(k, 0, &je);
		lk = json_object();
		for (i = 0; lk && json_is_array(a) && i < x->nkey; i++)
			json_object_set(lk, x->cols[x->keys[i]].local, json_array_get(a, i));
		json_decref(a);
		if ((rc = event(x, "deleted", json_pack("{s:o,s:I,s:s}", "key", lk, "usn",
		    (json_int_t)sqlite3_column_int64(st, 1), "k", k))))
			break;
	}
	sqlite3_finalize(st);
	return rc ? rc : deliver(x);
}

static int live(struct rep *x, int ifd)
{
	const struct ws_replicate_pull_opts *o = x->o;
	int upward = o->add || o->del, wait, rc, rc2 = 0;
	uint64_t quiet_since = ws_now_ms();
	json_t *m = NULL, *acks = json_array(), *a;
	char buf[4096];
	size_t i, n;

	for (i = 0; i < x->ncols; i++)
		upward |= x->cols[i].update;
	wait = !x->c.http ? 1000 : o->follow ? (upward || o->hold_deletes ? 2000 : 25000) : 10000;
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
			if (!o->follow && ws_now_ms() - quiet_since > 120000) {
				rc = ws_error(x->err, WS_EAGAIN, "the publisher was silent for "
				    "120 seconds");
				break;
			}
			continue;
		}
		quiet_since = ws_now_ms();
		if ((rc = tx_begin(x)))
			break;
		n = 0;
		do {
			rc = live_msg(x, m, acks);
			json_decref(m);
			m = NULL;
			n++;
		} while (rc == 0 && n < 4096 && (rc2 = rconn_recv(&x->c, &m, 0, -1)) == 1);
		if (rc == 0 && rc2 < 0)
			rc = rc2;
		if (rc || (rc = tx_commit(x))) {
			tx_abort(x);
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
			if ((rc = event(x, "initialized", json_pack("{s:I,s:I,s:b}", "usn",
			    (json_int_t)x->usn, "rows", (json_int_t)x->rows, "full", x->full))))
				break;
		}
		if ((rc = deliver(x)))
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
	if ((rc = prepare(x->db, "SELECT guid, usn, mapping FROM wsync_replica WHERE "
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
	if (strcmp(mt_of(sr), "ReplicateStartResult") != 0) {
		rc = ws_error(x->err, WS_ECORRUPT, "expected ReplicateStartResult, got %s",
		    mt_of(sr));
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
	    get_u64(sr, "usn", &x->start_usn, x->err) || get_bool(sr, "full") < 0) {
		rc = ws_error(x->err, WS_ECORRUPT, "a bad ReplicateStartResult: want guid, "
		    "usn and full");
		goto out;
	}
	snprintf(x->pguid, sizeof(x->pguid), "%s", g);
	x->full = get_bool(sr, "full");
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
	rcols_free(x);
	if ((rc = setup(x, sr)))
		goto out;
	x->bound = 1;
	x->initialized = !x->full;
	if ((rc = event(x, "started", json_pack("{s:s,s:s,s:I,s:b,s:I}", "source", o->source,
	    "guid", x->pguid, "usn", (json_int_t)x->start_usn, "full", x->full, "count",
	    (json_int_t)x->count))) || (rc = deliver(x)) || (rc = settle(x)) ||
	    (rc = redeliver(x)) || (rc = initial(x)))
		goto out;
	if (o->follow)
		ifd = watch_db(o->db);
	rc = live(x, ifd);
	if (rc == 0 && (rc = event(x, "closed", json_pack("{s:I}", "usn", (json_int_t)x->usn))) == 0)
		rc = deliver(x);
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
	if (event(x, "waiting", json_pack("{s:s,s:s,s:i}", "source", x->o->source,
	    "error", text, "retry_ms", retry_ms)))
		return WS_ENOMEM;
	return deliver(x);
}

int ws_replicate_pull(const struct ws_replicate_pull_opts *o, char *err)
{
	static int curl_ready;
	struct rep x;
	struct timespec ts;
	int rc, backoff = 250;

	memset(&x, 0, sizeof(x));
	x.o = o;
	x.err = err;
	if (!o->source || !o->db || !o->table || !*o->table)
		return ws_error(err, WS_EINVAL, "pull needs a source, a database and a table");
	if (strncmp(o->table, "wsync_", 6) == 0 || strncmp(o->table, "sqlite_", 7) == 0)
		return ws_error(err, WS_EINVAL, "table '%s' has a reserved name", o->table);
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return ws_error(err, WS_EINTERNAL, "cannot initialise libcurl");
		curl_ready = 1;
	}
	if (o->http_token && (strncasecmp(o->source, "https://", 8) != 0 &&
	    (strncasecmp(o->source, "http://", 7) != 0 || !loopback_url(o->source))))
		return ws_error(err, strncasecmp(o->source, "http://", 7) == 0 ? WS_ECONFIG :
		    WS_EINVAL, "a token would cross the network in clear: use an https:// "
		    "URL");
	if (!(x.events = json_array()))
		return WS_ENOMEM;
	x.created = access(o->db, F_OK) != 0 && errno == ENOENT;
	rc = sqlite3_open_v2(o->db, &x.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		rc = sqlfail(x.db, rc, "cannot open database", err);
		goto out;
	}
	sqlite3_busy_timeout(x.db, 5000);
	if ((rc = exec_sql(x.db, meta_sql, err)))
		goto out;
	/* A wsync_replica made before the mapping was kept gets its column. */
	if (sqlite3_exec(x.db, "SELECT mapping FROM wsync_replica LIMIT 0", NULL, NULL,
	    NULL) != SQLITE_OK && (rc = exec_sql(x.db, "ALTER TABLE wsync_replica ADD "
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
		if (ws_now_ms() - t0 > 10000)
			backoff = 250; /* it worked for a while: start over */
		ws_log_printf(o->log, o->log_cd, "%s; reconnecting in %d ms", err, backoff);
		if ((rc = waiting(&x, rc, backoff)))
			break;
		ts.tv_sec = backoff / 1000;
		ts.tv_nsec = (long)(backoff % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if ((backoff *= 2) > 30000)
			backoff = 30000;
	}
	if (o->stop && *o->stop && o->follow)
		rc = 0;
out:
	rcols_free(&x);
	free(x.mapping);
	json_decref(x.events);
	ws_buf_release(&x.q);
	ws_buf_release(&x.tmp);
	sqlite3_close(x.db);
	/* A run that failed before any session set the table up, in a file
	 * it made, leaves no file behind: not one bound to no publisher. */
	if (rc && x.created && !x.bound)
		ws_store_remove_files(o->db);
	return rc;
}
