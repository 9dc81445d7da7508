/* SPDX-License-Identifier: MIT */
/*
 * inspect.h - what wsync-inspect shows: delta streams and session logs
 * as a timeline, JSON lines, a binary stream, statistics or an integrity
 * check, and working-set databases as a summary of their state.
 *
 * ws_inspect_run() reads its inputs in order: files, "-" for standard
 * input, and URLs (http, https, sftp and file, through libcurl, streamed
 * as they arrive).  Each input may hold a binary wsync stream (frame.h),
 * JSON lines (json.h) or, for a file, an SQLite database; the kind is
 * detected from the first bytes.  Session logs are binary streams of
 * WS_FRAME_LOG records; every view unwraps them and shows each record's
 * time, direction and peer.
 *
 * What the views need to know about sessions is worked out from the
 * frames themselves, keyed by the record's peer and direction: a HELLO
 * starts a session and names its site, an ADD maps a channel to a
 * working-set id, CLOCK and ADD frames carry the sender's clock, and
 * BATCH frames carry dots.  Frames outside log records (a plain delta
 * stream) all belong to one anonymous session.
 *
 * The library never prints on stderr: data goes to opts->out_fd, and
 * notes about damage skipped by WS_INSPECT_SALVAGE or problems found by
 * WS_INSPECT_CHECK go to opts->warn, one line each.
 *
 * Escaping.  Every string that came from an input (peers, working sets,
 * tables, columns, error texts, a database's names) is escaped
 * (escape.h) in what goes to out_fd as text: the timeline, the stats
 * and the database view.  JSON output keeps the exact bytes in JSON's
 * own escapes.  The lines given to opts->warn, and err, may quote such
 * strings as they are: whoever prints them escapes them, as cli_warn()
 * does, so that nothing is escaped twice.
 *
 * https: the server's certificate is checked against the system's
 * authorities, or those in the file named by the environment variable
 * CURL_CA_BUNDLE when it is set and not empty (as curl(1) does).
 */
#ifndef WSYNC_INSPECT_H
#define WSYNC_INSPECT_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "delta.h"
#include "error.h"
#include "session.h"

enum ws_inspect_mode {
	WS_INSPECT_TIMELINE = 1, /* one readable line per frame (default) */
	WS_INSPECT_JSON = 2,     /* JSON lines, json.h's mapping */
	WS_INSPECT_ENCODE = 3,   /* a binary stream: preamble, then frames */
	WS_INSPECT_STATS = 4,    /* a summary at the end */
	WS_INSPECT_CHECK = 5,    /* framing, checksums, clocks and dots */
};

/* Flags for struct ws_inspect_opts. */
#define WS_INSPECT_SALVAGE 0x1  /* skip damage, resynchronize, go on */
#define WS_INSPECT_FOLLOW 0x2   /* wait for the last input to grow */
#define WS_INSPECT_COLOR 0x4    /* ANSI colours in the timeline */
#define WS_INSPECT_AS_JSON 0x8  /* --stats and databases as JSON */

/* No time bound. */
#define WS_INSPECT_NO_TIME UINT64_MAX

/*
 * Which frames are shown.  A frame is shown when it passes every filter
 * that is set.  Session state is updated from every frame, shown or not.
 */
struct ws_inspect_filter {
	const char *wsid;      /* NULL, or the working-set id */
	const char *site;      /* NULL, or a prefix of hex digits (lowercase) */
	int has_types;         /* types[] is set */
	uint8_t types[32];     /* bitmap of frame types (bit t: type t) */
	uint64_t since_us;     /* 0, or the earliest record time shown */
	uint64_t until_us;     /* WS_INSPECT_NO_TIME, or the latest */
};

struct ws_inspect_opts {
	int mode;              /* enum ws_inspect_mode */
	unsigned flags;        /* WS_INSPECT_* */
	size_t max;            /* largest payload accepted; 0 for the default */
	struct ws_inspect_filter filter;
	int out_fd;            /* where data goes; not closed */
	const char *out_name;  /* its name in messages; NULL is "-" */
	ws_log_fn *warn;       /* NULL, or gets one line per problem found */
	void *warn_cd;         /* clientData for warn */
	volatile sig_atomic_t *stop; /* NULL, or set (by a signal) to stop */
};

/* Prepare o: timeline mode, no filter, stdout.  Owns nothing. */
void ws_inspect_opts_init(struct ws_inspect_opts *o);

/*
 * Show inputs[0..n) ("-" is stdin; n == 0 reads stdin) as o says.
 * Returns 0, or:
 *   WS_ECORRUPT and friends (65): damaged input.  Without
 *     WS_INSPECT_SALVAGE the run stops at the first damage, err naming
 *     the input and the byte offset (or JSON line); what came before it
 *     was written.  With it, each damaged range is passed to o->warn and
 *     skipped, and the run returns WS_ECORRUPT at its end.
 *   WS_ECORRUPT from WS_INSPECT_CHECK when the frames are intact but a
 *     clock (or a hub's collected horizon, in STABLE clocks) went back or
 *     a site's dots have a gap (each one was passed to o->warn); the
 *     batches of a full copy (STABLE|SNAPSHOT up to the next clock) have
 *     no dots to check, and after it the receiver holds the horizon;
 *   WS_ENOTFOUND (66) for a missing file or URL, WS_EPERM, WS_EIO (a read
 *     or a write failed, EPIPE included; err names the file), WS_EUNSUPP
 *     (a server that cannot be reached), WS_EINVAL (an unsupported URL
 *     scheme, a database where a stream is needed, --follow on a URL).
 * With WS_INSPECT_FOLLOW, the run returns 0 once *o->stop is set.
 */
int ws_inspect_run(const struct ws_inspect_opts *o, const char *const *inputs,
    size_t n, char *err) WS_MUST_CHECK;

/* True if p[0..n) starts with SQLite's file header (n >= 16). */
int ws_inspect_is_database(const uint8_t *p, size_t n);

/*
 * True if name is a URL ("scheme://..."), which ws_inspect_run() fetches
 * with libcurl; only http, https, sftp and file are allowed.
 */
int ws_inspect_is_url(const char *name);

/*
 * Parse a time for --since/--until into microseconds since the epoch:
 * seconds since the epoch ("1763800000", "1763800000.25"), or ISO-8601
 * "YYYY-MM-DD", "YYYY-MM-DDTHH:MM", "...:SS" and "...:SS.fff" (up to 6
 * fraction digits), with a space allowed for 'T' and an optional "Z" or
 * "+HH:MM"/"-HH:MM" (no zone means UTC).  0 or WS_EINVAL.
 */
int ws_inspect_parse_time(const char *s, uint64_t *us) WS_MUST_CHECK;

/*
 * Parse a time for --until, as ws_inspect_parse_time() does, into the
 * last microsecond it includes: a time given to the millisecond or less
 * precisely (up to 3 fraction digits, or none) includes the whole of its
 * millisecond, as the timeline shows times cut to the millisecond, so
 * "...:02.123" gives ...:02.123999 and "...:02" ...:02.000999; with 4 to
 * 6 fraction digits the time is exact.  0 or WS_EINVAL.
 */
int ws_inspect_parse_until(const char *s, uint64_t *us) WS_MUST_CHECK;

/*
 * Append t (microseconds since the epoch) as "2026-11-22T10:15:02.123Z"
 * (UTC, milliseconds) to out.  0 or WS_ENOMEM.
 */
int ws_inspect_put_time(struct ws_buf *out, uint64_t us) WS_MUST_CHECK;

/*
 * Append the timeline form of a value to out: NULL, 42, 1.5, 'it''s'
 * (a newline, tab and CR as \n, \t, \r; other characters through
 * ws_escape_char(): control characters, C1 ones included, and bytes that
 * are not UTF-8 as \xNN, a backslash as \\), x'00ff'.  Text over 64 bytes and blobs over 32 are
 * cut, followed by their full size: 'abc...'(1000 bytes).
 */
int ws_inspect_put_value(struct ws_buf *out, const struct ws_value *v) WS_MUST_CHECK;

/*
 * Add the frame types named in list (comma-separated names such as
 * "batch,clock", or numbers 1..255) to f->types.  WS_EINVAL with the bad
 * name in err.
 */
int ws_inspect_add_types(struct ws_inspect_filter *f, const char *list,
    char *err) WS_MUST_CHECK;

#endif
