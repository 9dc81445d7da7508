/* SPDX-License-Identifier: MIT */
/*
 * replicate.h - one table from a publisher into a replicator's table.
 *
 * A publisher exposes one table of its database: the columns it
 * publishes (under remote names), which of them a replicator may update,
 * and whether a replicator may add and delete rows.  Its changes come
 * from the store (store.h): triggers capture every write, whatever the
 * writer, and each capture has a usn.  The publisher's guid is its
 * store's dataset guid.
 *
 * A replicator keeps the publisher's guid and the last usn it applied in
 * its own database (table wsync_replica) and resumes from there.  A new
 * guid, or a usn the publisher no longer holds changes for, makes it
 * replicate the whole table again and then remove the rows the publisher
 * no longer has (wsync_replica_full holds the keys seen in that pass).
 * A removal has two phases, recorded in wsync_replica_deleted: deleted,
 * then confirmed (by the event handler, or by the application), then
 * removed.
 *
 * The two sides exchange JSON objects, each with a message type "mt";
 * on byte streams one object a line, over HTTP one POST per exchange.
 * The messages and the HTTP mapping are in wsync-replicate(1), so that
 * anything speaking them can be a publisher.
 *
 * A stream session may instead be secure (secure.h): the replicator
 * starts it with the wsync preamble and the handshake, the replicator as
 * the site and the publisher as the hub, and then each JSON object
 * travels, without its newline, as the payload of one WS_FRAME_MESSAGE
 * frame inside a sealed frame.  The publisher tells the two kinds apart
 * by the first byte (0x89 starts the preamble; a JSON line starts with
 * '{').  A keyed publisher checks the replicator's key against its
 * authorized keys: the first glob matching the published table's name
 * gives the right, read (pull only) or write (and send changes up, as
 * --add, --del and the :update columns allow); a key with none is
 * refused during the handshake.  Plain sessions have every right the
 * publisher grants, and a keyed publisher takes them on unix sockets and
 * stdio only, unless insecure.
 *
 * Over HTTP a client is anonymous, with the right to read only, unless
 * it sends a bearer token from the publisher's tokens file, whose globs
 * give its right as an authorized key's do; with a tokens file every
 * request needs a token.  Plain HTTP listens on loopback only, unless
 * insecure; HTTPS (a certificate and its key) anywhere.
 *
 * The library never prints: events, progress and log lines go through
 * callbacks.
 */
#ifndef WSYNC_REPLICATE_H
#define WSYNC_REPLICATE_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secure.h"
#include "session.h"

/* Rows a replicator asks for in one ReplicateNext by default. */
#define WS_REPLICATE_BATCH 1000
/* Live messages a publisher sends before it waits for their results. */
#define WS_REPLICATE_WINDOW 1000
/* Longest JSON line either side accepts. */
#define WS_REPLICATE_MAX_LINE (64u << 20)
/* Longest column or table name. */
#define WS_REPLICATE_MAX_NAME 256

/*
 * One column specification, "NAME[=OTHER][:update]".  For a publisher
 * NAME is the table's column and OTHER the name it is published under;
 * for a replicator NAME is the remote name and OTHER the local column.
 * The strings point into the spec given to ws_replicate_parse_column
 * (which is modified), so they live as long as it.
 */
struct ws_replicate_col {
	const char *name;
	const char *other;    /* == name when no "=OTHER" */
	int update;           /* ":update" given */
};

/*
 * An array column: the published column `remote` holds a JSON array of
 * objects; each object becomes a row of table `child`, whose column
 * `ref` holds the parent row's key.  Parsed from "REMOTE=CHILD:REF".
 */
struct ws_replicate_array {
	const char *remote;
	const char *child;
	const char *ref;
};

/*
 * Parse "NAME[=OTHER][:update]" in place (spec is modified; the result
 * points into it).  WS_EINVAL with a detail for an empty name, an empty
 * OTHER, a suffix other than ":update", or a name longer than
 * WS_REPLICATE_MAX_NAME.
 */
int ws_replicate_parse_column(char *spec, struct ws_replicate_col *c, char *err) WS_MUST_CHECK;
/* Parse "REMOTE=CHILD:REF" in place, the same way. */
int ws_replicate_parse_array(char *spec, struct ws_replicate_array *a, char *err) WS_MUST_CHECK;

/*
 * Parse one message as either side reads it from the network: the line
 * p[0..n), without its '\n' (a trailing CR, spaces and tabs are ignored),
 * must be a JSON object with a string member "mt".  On success *out is a
 * new reference that the caller owns (json_decref); otherwise *out is
 * NULL and the result is WS_EJSON with a detail in err (may be NULL).
 * Nothing points into p afterwards.
 */
int ws_replicate_parse_msg(const char *p, size_t n, json_t **out, char *err) WS_MUST_CHECK;

/*
 * The publisher's HTTP side (libmicrohttpd, run from the publisher's own
 * poll loop, so the store is only ever used from one thread).  Requests
 * are POSTs whose bodies are JSON lines; these bound what one may cost.
 */
/* Longest request body by default (ws_replicate_pub_opts.http_max_body). */
#define WS_REPLICATE_HTTP_MAX_BODY (8u << 20)
/* Seconds a connection may stay idle, or take to send its request, by default. */
#define WS_REPLICATE_HTTP_TIMEOUT 30
/* Connections at once, and from one address. */
#define WS_REPLICATE_HTTP_MAX_CONN 256
#define WS_REPLICATE_HTTP_MAX_PER_IP 64
/* Bytes of a request's head and read buffer (per connection). */
#define WS_REPLICATE_HTTP_MEMORY (64u << 10)
/* Longest Wsync-Wait honoured, in seconds. */
#define WS_REPLICATE_HTTP_MAX_WAIT 300
/* A bearer token: 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + / (then '='s). */
#define WS_REPLICATE_TOKEN_MIN 16
#define WS_REPLICATE_TOKEN_MAX 256
/* The size of a token's hash (BLAKE2b), which is all the publisher keeps. */
#define WS_REPLICATE_TOKEN_HASHBYTES 32

/*
 * What the publisher takes from a request's own headers, parsed by
 * ws_replicate_http_headers.
 */
struct ws_replicate_http_req {
	char session[65];     /* Wsync-Session, "" when absent */
	unsigned wait_s;      /* Wsync-Wait, 0 when absent (capped) */
	int has_token;        /* Authorization: Bearer TOKEN was sent */
	uint8_t token_hash[WS_REPLICATE_TOKEN_HASHBYTES]; /* its BLAKE2b-256 */
};

/*
 * Parse the values of the headers Wsync-Session, Wsync-Wait and
 * Authorization (each NUL-terminated, NULL when absent) into *r.  A
 * session name is 1 to 64 of A-Z a-z 0-9 _ -; a wait is 1 to 6 digits,
 * capped at WS_REPLICATE_HTTP_MAX_WAIT; an Authorization with a scheme
 * other than Bearer is ignored (a proxy in front may use it), and a
 * Bearer one must carry a token as ws_replicate_token_ok accepts.  Only
 * the token's hash is kept, and the copy hashed is wiped.  WS_ECORRUPT
 * with a detail that never quotes the token.
 */
int ws_replicate_http_headers(const char *session, const char *wait, const char *auth,
    struct ws_replicate_http_req *r, char *err) WS_MUST_CHECK;

/* 1 when s[0..n) is a well-formed token (see WS_REPLICATE_TOKEN_MIN). */
int ws_replicate_token_ok(const char *s, size_t n);

/* The token's hash, as the publisher compares it. */
void ws_replicate_token_hash(uint8_t out[WS_REPLICATE_TOKEN_HASHBYTES], const char *s,
    size_t n);

/*
 * An HTTP tokens file, in the format of the authorized keys (secure.h)
 * with a token in place of the key:
 *     TOKEN GLOB=read|write|create... [# comment]
 * The first glob matching the published table gives the token's right.
 * It is read into a struct ws_authkeys whose entries' pk holds the
 * token's hash (WS_REPLICATE_TOKEN_HASHBYTES == WS_KEY_PUBLICBYTES), so
 * ws_authkey_right() and ws_authkeys_release() apply to it; the tokens
 * themselves are wiped once hashed.  WS_EPERM when group or others may
 * read or write the file (as for a secret key), WS_ENOTFOUND, WS_EIO,
 * WS_ECONFIG with "FILE:LINE: ..." (never quoting a token) for a bad
 * line or a token given twice.
 */
int ws_replicate_tokens_load(struct ws_authkeys *t, const char *path, char *err) WS_MUST_CHECK;

/*
 * The entry of t whose hash is h, or NULL.  Every entry is compared, in
 * constant time (sodium_memcmp), whichever matches.
 */
const struct ws_authkey *ws_replicate_tokens_find(const struct ws_authkeys *t,
    const uint8_t h[WS_REPLICATE_TOKEN_HASHBYTES]);

/*
 * Read a replicator's token from the first line of path into
 * out[WS_REPLICATE_TOKEN_MAX + 1] (NUL-terminated).  The same refusals
 * as ws_replicate_tokens_load: WS_EPERM for a file others may read,
 * WS_ECONFIG for a line that is not a token.  The caller wipes out.
 */
int ws_replicate_token_read(char out[WS_REPLICATE_TOKEN_MAX + 1], const char *path,
    char *err) WS_MUST_CHECK;

/* How progress is reported: rows so far, rows expected (0: unknown). */
typedef void ws_replicate_progress_fn(void *clientData, uint64_t rows, uint64_t total,
    uint64_t elapsed_ms);

/*
 * An event, as one JSON object (compact, no newline): {"event":NAME,...}
 * with NAME one of started, added, updated, deleted, removed,
 * initialized, closed, or (follow only) waiting: no session, the next
 * attempt to connect in "retry_ms", after "error".  Return 0 when
 * handled; for "deleted", 0 also
 * confirms the delete (unless hold_deletes), and non-zero leaves the row
 * marked deleted.  `name` is the event's NAME.
 */
typedef int ws_replicate_event_fn(void *clientData, const char *name, const char *json);

struct ws_replicate_pub_opts {
	const char *db;            /* the publisher's database */
	const char *table;         /* the published table */
	const struct ws_replicate_col *cols; /* published columns; n == 0: all */
	size_t ncols;
	int add, del;              /* rights granted to replicators */
	const char *const *listen; /* stream addresses (HOST:PORT, unix:PATH) */
	size_t nlisten;
	const char *http;          /* HTTP address, or NULL */
	/* HTTPS: PEM files of the certificate (chain) and its key (the key
	 * file may not be readable by group or others).  Both or neither. */
	const char *tls_cert, *tls_key;
	/* HTTP bearer tokens (ws_replicate_tokens_load); NULL: none, and every
	 * HTTP client is anonymous, with the right to read only.  With
	 * tokens, every HTTP request needs one. */
	const struct ws_authkeys *http_tokens;
	size_t http_max_body;      /* longest request body; 0: the default */
	unsigned http_timeout;     /* seconds; 0: WS_REPLICATE_HTTP_TIMEOUT */
	int use_stdio;             /* one stream session on stdin/stdout */
	int compact;               /* collect the whole change log before serving */
	const struct ws_keypair *key;        /* secure stream sessions; NULL: none */
	const struct ws_authkeys *authkeys;  /* with key: the replicators' keys */
	/* Plain stream sessions on TCP: listening there without a key, and
	 * a keyed publisher taking plain sessions there too.  HTTP without
	 * TLS: on an address other than loopback too. */
	int insecure;
	volatile sig_atomic_t *stop;
	ws_log_fn *log;            /* sessions and their errors; may be NULL */
	void *log_cd;
	/* Called once listening, with the bound address of each (stream
	 * addresses first, then HTTP); may be NULL. */
	void (*ready)(void *clientData, const char *const *bound, size_t n);
};

/*
 * Publish until *stop is set, or, with use_stdio, until that session
 * ends.  With compact, the change log is garbage-collected first
 * (ws_store_gc up to the store's own clock): a replicator whose usn is
 * older than the current one then replicates in full; one that is up to
 * date goes on incrementally.  0, or the error that stopped the publisher itself (cannot open
 * the database, no such table, cannot listen).  A session's errors end
 * that session only; the replicator is told, and they are logged.  A
 * missing database file is WS_ENOTFOUND, like a missing table: it is
 * never created.  A stream address other than unix: without a key is
 * WS_ECONFIG unless insecure (ws_transport_check_keys()), before the
 * database is touched.
 */
int ws_replicate_publish(const struct ws_replicate_pub_opts *o, char *err) WS_MUST_CHECK;

struct ws_replicate_pull_opts {
	const char *source;        /* transport.h address, or http(s)://URL */
	const char *db;            /* the replicator's database */
	const char *table;         /* the local table */
	const struct ws_replicate_col *cols; /* requested; n == 0: all */
	size_t ncols;
	const struct ws_replicate_array *arrays;
	size_t narrays;
	int add, del;              /* rights requested */
	/* A secure stream session (not HTTP): this replicator's key, and the
	 * publisher's, given (has_pub_key) or pinned in known_hubs for the
	 * source address (accept_new_pub: pinned on first use). */
	const struct ws_keypair *key;
	int has_pub_key;
	uint8_t pub_key[WS_KEY_PUBLICBYTES];
	const char *known_hubs;
	int accept_new_pub;
	/* A plain stream session on TCP (no key), which the keys policy
	 * (transport.h) refuses otherwise.  HTTP: unused. */
	int insecure;
	/* HTTP: the bearer token sent in every request, or NULL.  Sent over
	 * https:// only, or to a loopback host over http://. */
	const char *http_token;
	int follow;                /* stay live instead of exiting up to date */
	int hold_deletes;          /* the application confirms deletes */
	unsigned batch;            /* rows per ReplicateNext; 0: default */
	volatile sig_atomic_t *stop;
	ws_replicate_event_fn *event; /* may be NULL: deletes are confirmed */
	void *event_cd;
	ws_replicate_progress_fn *progress; /* full replication; may be NULL */
	void *progress_cd;
	ws_log_fn *log;            /* reconnects, refused changes; may be NULL */
	void *log_cd;
	/* Bytes received from and sent to the publisher (HTTP: bodies),
	 * added to, for measurement; may be NULL. */
	uint64_t *bytes_in;
	uint64_t *bytes_out;
};

/*
 * Replicate into o->table of o->db, creating them if missing.  A file
 * this call created is removed again when it fails before a session set
 * the table up (cannot connect, refused), so no empty database is left
 * behind.  Without
 * follow: return 0 once the table is up to date.  With follow: until
 * *stop.  Errors: WS_EPERM (the publisher refused the rights asked for,
 * or the key; a secure session failed its handshake or was tampered with),
 * WS_ESCHEMA (a column it does not publish, a table that cannot take the
 * rows), WS_EUNSUPP (the publisher is unavailable), WS_EIO, WS_ECORRUPT
 * (a malformed message), WS_EBUSY, WS_ECONFIG (a stream source on TCP
 * without a key, unless insecure: ws_transport_check_keys_for(), before
 * the database is touched).  The database is never left half
 * written: each message's effect and the usn it reaches commit together.
 */
int ws_replicate_pull(const struct ws_replicate_pull_opts *o, char *err) WS_MUST_CHECK;

#endif
