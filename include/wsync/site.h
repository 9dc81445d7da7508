/* SPDX-License-Identifier: MIT */
/*
 * site.h - a site's side of the star (wsync-join): offer working sets to
 * a hub, send what it lacks, apply what it sends, and with follow stay
 * and push local commits live, reconnecting with backoff.  See hub.h for
 * the other side, session.h for the protocol.
 *
 * The library never prints: it reports through callbacks.
 */
#ifndef WSYNC_SITE_H
#define WSYNC_SITE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "secure.h"
#include "session.h"

/* One working set of a site: its id and database file. */
struct ws_site_set {
	const char *wsid;
	const char *path;
};

/*
 * Split s, a "WSID=DBFILE" operand or sets-file line, at its first '=':
 * the working-set id is s[0..*idlen), the database file *path, pointing
 * into s (which is not changed).  0; WS_EINVAL when s has no '=' or
 * nothing after it; WS_ECONFIG when s[0..*idlen) is not a working-set id
 * (ws_wsid_valid()).  The caller words the message, naming s or the id.
 */
int ws_site_set_parse(const char *s, size_t *idlen, const char **path) WS_MUST_CHECK;

struct ws_site_opts {
	const char *hub;           /* address (transport.h) */
	const struct ws_site_set *sets;
	size_t nsets;
	const char *sets_file;     /* more sets, WSID=DBFILE a line; with
	                              follow, edits to it add and remove sets
	                              mid-session; may be NULL */
	int follow;                /* stay connected, push and pull live */
	int local_views;           /* views and triggers stay local
	                              (ws_store_keep_views_local()) */
	int scan;                  /* capture by comparison too, for writers
	                              with triggers off (ws_store_scan()) */
	ws_log_fn *status;         /* follow: the session's state in one line
	                              ("connected to HUB: 2 sets, 2 caught up;
	                              3 batches sent, 5 received"), each time
	                              it changes; may be NULL */
	const struct ws_keypair *key;  /* a secure session; NULL: plain */
	int has_hub_key;           /* pin the hub's key to hub_key ... */
	uint8_t hub_key[WS_KEY_PUBLICBYTES];
	const char *known_hubs;    /* ... else check it against this file */
	int accept_new_hub;        /* add an unknown hub's key to known_hubs */
	int insecure;              /* allow a plain session with a hub on TCP
	                              (ws_transport_check_keys()) */
	size_t max_frame;
	unsigned heartbeat_ms;     /* follow: heartbeat when idle; 0: 15 s */
	unsigned idle_timeout_ms;  /* the hub silent this long is gone; 0: 60 s */
	volatile sig_atomic_t *stop;
	ws_log_fn *log;
	void *log_cd;
	struct ws_session_log *session_log; /* every frame; may be NULL */
};

/*
 * Sync the sets with the hub.  Without follow: until both sides hold the
 * same changes, then return 0.  A working set the hub refuses is logged
 * and the others go on; the return is then that refusal's code.  With
 * follow: until *stop, reconnecting with backoff.
 */
int ws_site_run(const struct ws_site_opts *o, char *err) WS_MUST_CHECK;

#endif
