/* SPDX-License-Identifier: MIT */
/*
 * hub.h - the star's centre (wsync-serve).  A site's side of it
 * (wsync-join) is in site.h.
 *
 * The hub keeps one SQLite file per working set in its data directory
 * (<dir>/<wsid>.db), applies every batch a site sends (durably, before it
 * acknowledges) and forwards it to the other sites of that working set.
 * One thread runs a poll(2) loop over every connection; each site has a
 * bounded outgoing queue, and a site whose queue overflows is
 * disconnected (it catches up when it reconnects), so a slow site never
 * stalls the others.
 *
 * The library never prints: it reports through a callback.
 */
#ifndef WSYNC_HUB_H
#define WSYNC_HUB_H

#define WS_HEARTBEAT_MS_DEFAULT 15000
#define WS_IDLE_TIMEOUT_MS_DEFAULT 60000
#define WS_RETAIN_S_DEFAULT (7L * 86400)
#define WS_HANDSHAKE_MS_DEFAULT 10000
/* The largest frame before a session's hello: a handshake frame is under
 * 200 bytes, so nobody unauthenticated makes the hub hold more. */
#define WS_PREAUTH_MAX_FRAME 4096
/* Site ids one key may hold in a working set (wsync-serve --forget frees one). */
#define WS_SITES_PER_KEY 64

#include <signal.h>
#include <stddef.h>

#include "error.h"
#include "secure.h"
#include "session.h"

struct ws_hub_opts {
	const char *const *listen; /* addresses to listen on */
	size_t nlisten;
	int use_stdio;             /* serve one session on stdin/stdout */
	const char *datadir;       /* where the working sets live */
	int create;                /* accept working sets it does not hold */
	size_t max_frame;          /* 0: the default */
	size_t queue_max;          /* per-site outgoing bytes; 0: 64 MiB */
	unsigned heartbeat_ms;     /* heartbeat an idle session; 0: 15 s */
	unsigned idle_timeout_ms;  /* drop a session this silent; 0: 60 s */
	unsigned handshake_ms;     /* drop a session without a hello (and, on
	                              a keyed hub, its key) this long; 0: 10 s */
	size_t max_sessions;       /* refuse connections past this many
	                              sessions; 0: from RLIMIT_NOFILE */
	size_t sites_per_key;      /* site ids a key may hold in a working
	                              set; 0: WS_SITES_PER_KEY */
	const struct ws_keypair *key;        /* secure sessions; NULL: none */
	const struct ws_authkeys *authkeys;  /* who may connect, with rights */
	int insecure;              /* allow plain sessions on TCP too */
	unsigned socket_mode;      /* unix sockets' file mode; 0: 0600 */
	long retain_s;             /* keep the history a departed site lacks
	                              this long after it was last seen; 0: for
	                              connected sites only; < 0: 7 days */
	volatile sig_atomic_t *stop; /* set by a signal handler to stop */
	ws_log_fn *log;            /* session events and errors; may be NULL */
	void *log_cd;
	struct ws_session_log *session_log; /* every frame; may be NULL */
	void (*ready)(void *clientData, const char *const *bound, size_t n);
	                           /* called once listening, with the addresses */
};

/*
 * wsync-serve --forget: in every working set of datadir, forget site:
 * the record of how far it got (which holds collection back for
 * --retain) and the key it is bound to.  *n: the working sets that knew
 * it.  Safe while the hub runs: the hub reads both from the database.
 */
int ws_hub_forget(const char *datadir, const struct ws_siteid *site, size_t *n,
    char *err) WS_MUST_CHECK;

/* --max-sessions when not given: RLIMIT_NOFILE less room for databases. */
size_t ws_hub_default_max_sessions(void);

/*
 * Serve until *stop is set (or, with use_stdio, until that session
 * ends).  Returns 0, or an error that stopped the hub itself (cannot
 * listen, cannot open the data directory).  A session's errors end that
 * session only and are logged.
 */
int ws_hub_run(const struct ws_hub_opts *o, char *err) WS_MUST_CHECK;

#endif
