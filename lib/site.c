/* SPDX-License-Identifier: MIT */
/*
 * site.c - wsync-join's side of a session: offer the working sets, send
 * what the hub lacks, apply what it sends, and, with follow, stay and
 * push local commits as they happen (inotify on the database files, no
 * polling loop), reconnecting with backoff.  Working sets listed in a
 * sets file join and leave the session as the file changes.  See hub.h
 * and session.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "wsync/delta.h"
#include "wsync/hub.h"
#include "wsync/site.h"
#include "wsync/loop.h"
#include "wsync/session.h"
#include "wsync/store.h"

#define BACKOFF_MAX_MS 30000

struct sset {
	char *wsid, *path;       /* owned copies */
	int created;             /* this run made the file (it goes again if
	                            the hub never took the set) */
	int taken;               /* the hub accepted the set at least once */
	int from_file;           /* listed in the sets file, not an operand */
	int gone;                /* removed: its channel is retired */
	struct ws_store *st;     /* NULL when it could not be opened, or gone */
	uint32_t ch;
	int accepted, refused, caught_up, acked;
	int in_copy;             /* a full copy is arriving */
	uint64_t sent_usn;       /* follow: local batches sent up to here */
};

struct site {
	const struct ws_site_opts *o;
	struct sset *s;
	size_t n;
	uint32_t last_ch;        /* channels are never reused in a process */
	struct ws_siteid anon;   /* the hello's site id when no set is open */
	struct ws_proto sess;    /* the session, while connected */
	struct ws_loop *loop;
	int rc;                  /* why the session's loop stopped */
	int reported;            /* one-shot: the last progress report went */
	int connected;           /* sess is a live session */
	int ifd;                 /* inotify: the databases and the sets file */
	int sets_wd;             /* the sets file's directory, or -1 */
	int result;              /* first refusal's code, for one-shot */
	int was_live;            /* the last session completed its catch-up */
	int fatal;               /* the session is over */
	struct sset *cur;        /* the set add_set() reports on */
	uint64_t sent, received; /* batches, this session */
	char said[160];          /* the last status line given */
	char *err;
};

#define slog(x, ...) ws_log_printf((x)->o->log, (x)->o->log_cd, __VA_ARGS__)

/* Give the session's state to o->status when it changed. */
static void status(struct site *x)
{
	char line[sizeof(x->said)];
	size_t i, sets = 0, up = 0;

	if (!x->o->status || !x->o->follow)
		return;
	for (i = 0; i < x->n; i++)
		if (x->s[i].st && !x->s[i].refused && !x->s[i].gone) {
			sets++;
			up += x->s[i].caught_up;
		}
	if (!x->connected || !x->sess.hello)
		snprintf(line, sizeof(line), "connecting to %s", x->o->hub);
	else
		snprintf(line, sizeof(line), "connected to %s: %zu set%s, %zu caught up; "
		    "%llu batch%s sent, %llu received", x->o->hub, sets,
		    sets == 1 ? "" : "s", up, (unsigned long long)x->sent,
		    x->sent == 1 ? "" : "es", (unsigned long long)x->received);
	if (strcmp(line, x->said) == 0)
		return;
	snprintf(x->said, sizeof(x->said), "%s", line);
	x->o->status(x->o->log_cd, line);
}

static struct sset *by_chan(struct site *x, uint32_t ch)
{
	size_t i;

	for (i = 0; ch && i < x->n; i++)
		if (x->s[i].ch == ch)
			return &x->s[i];
	return NULL;
}

struct sendctx {
	struct site *x;
	struct sset *ss;
};

static int send_one(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct sendctx *c = cd;

	c->ss->sent_usn = usn;
	c->x->sent++;
	return ws_proto_send_batch(&c->x->sess, c->ss->ch, b);
}

/* Note every batch this set sealed as sent (before it is sent). */
static int note_own(struct sset *ss, char *err)
{
	struct ws_vclock mine = WS_VCLOCK_INIT;
	int rc;

	if ((rc = ws_store_clock(ss->st, &mine, err)) == 0)
		rc = ws_store_note_sent(ss->st, ws_vclock_get(&mine, ws_store_site(ss->st)),
		    err);
	ws_vclock_release(&mine);
	return rc;
}

/* Follow: seal local commits and send the new batches of every set. */
static int push_local(struct site *x, char *err)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct sendctx c = {x, NULL};
	size_t i;
	int rc = 0;

	for (i = 0; i < x->n; i++) {
		c.ss = &x->s[i];
		if (!c.ss->st || !c.ss->accepted || c.ss->refused)
			continue;
		/* A schema change goes first: the batches after it need it. */
		if ((rc = ws_store_seal(c.ss->st, NULL, err)) ||
		    (rc = ws_store_schema_pending(c.ss->st, &sc, err)) < 0 ||
		    (rc && (rc = ws_proto_send_schema(&x->sess, c.ss->ch, &sc))))
			break;
		/* Not only what this seal made: applying a remote batch seals
		 * local writes too, and those must go out as well.  Noted as
		 * sent before they go: a kill between the send and the note
		 * must not make this file look like a copy next time. */
		if ((rc = note_own(c.ss, err)) ||
		    (rc = ws_store_local_since(c.ss->st, c.ss->sent_usn, send_one,
		    &c, err)))
			break;
	}
	ws_schema_release(&sc);
	status(x);
	return rc;
}

static int offer(struct site *x, struct sset *ss);

/*
 * The hub holds more of this set's own dots than its database does: the
 * file is an old copy or a restored backup, and its later writes would
 * take dots the hub already has.  It becomes a new site (its batches past
 * the last it sent stamped anew), leaves the channel, and is offered again
 * on a new one.
 */
static int renew(struct site *x, struct sset *ss, uint64_t hub_own, uint64_t sent)
{
	char was[WS_SITEID_HEXLEN + 1], now[WS_SITEID_HEXLEN + 1];
	struct sset *p, *n;
	size_t at = (size_t)(ss - x->s);
	int rc;

	ws_siteid_hex(ws_store_site(ss->st), was);
	if ((rc = ws_store_renew_site(ss->st, sent, x->err)))
		return rc;
	ws_siteid_hex(ws_store_site(ss->st), now);
	slog(x, "%s: the hub holds %llu change batches of site %s that %s never "
	    "sent: it is an old copy or a restored backup, so it is site %s now, and "
	    "sends its changes as such", ss->wsid, (unsigned long long)(hub_own - sent),
	    was, ss->path, now);
	if ((rc = ws_peer_send(&x->sess.p, WS_FRAME_REMOVE, 0, ss->ch, NULL, 0)))
		return rc;
	if (!(p = realloc(x->s, (x->n + 1) * sizeof(*p))))
		return WS_ENOMEM;
	x->s = p;
	n = &x->s[x->n];
	*n = x->s[at];
	/* The old entry keeps the retired channel (its frames are ignored). */
	if (!(x->s[at].wsid = strdup(n->wsid)) || !(x->s[at].path = strdup(n->path)))
		return WS_ENOMEM;
	x->s[at].st = NULL;
	x->s[at].gone = 1;
	n->ch = ++x->last_ch;
	n->accepted = n->refused = n->caught_up = n->acked = 0;
	x->n++;
	return offer(x, n);
}

/* The hub accepted a set: adopt its guid if new, send what it lacks. */
static int on_add(struct ws_proto *s, uint32_t ch, struct ws_add *a, char *err)
{
	struct site *x = s->clientData;
	struct sset *ss = by_chan(x, ch);
	struct ws_vclock mine = WS_VCLOCK_INIT;
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct sendctx c = {x, ss};
	uint64_t hub_own, own, sent;
	uint8_t guid[16];
	int rc;

	(void)err; /* x->err */
	if (strcmp(a->wsid, ss->wsid) != 0 || !a->has_guid) {
		rc = ws_error(x->err, WS_ECORRUPT, "the hub answered for another "
		    "working set");
		goto out;
	}
	if ((rc = ws_store_clock(ss->st, &mine, x->err)))
		goto out;
	/* The hub holding own batches this file never sent: a copy. */
	hub_own = ws_vclock_get(&a->clock, ws_store_site(ss->st));
	own = ws_vclock_get(&mine, ws_store_site(ss->st));
	if (!ws_store_own_sent(ss->st, &sent))
		sent = own; /* nothing noted yet: all it holds went out before */
	if (hub_own > sent) {
		rc = renew(x, ss, hub_own, sent);
		goto out;
	}
	if (!ws_store_guid(ss->st, guid) &&
	    (rc = ws_store_set_guid(ss->st, a->guid, x->err)))
		goto out;
	ss->accepted = ss->taken = 1;
	/* This copy's schema, then what the hub lacks (noted as sent first). */
	if ((rc = ws_store_seal(ss->st, NULL, x->err)) ||
	    (rc = ws_store_schema(ss->st, &sc, x->err)) ||
	    (rc = ws_proto_send_schema(&x->sess, ss->ch, &sc)) ||
	    (rc = note_own(ss, x->err)) ||
	    (rc = ws_store_changes_missing(ss->st, &a->clock, send_one, &c, x->err)) ||
	    (rc = ws_store_sealed_usn(ss->st, &ss->sent_usn, x->err)) ||
	    (rc = ws_store_clock(ss->st, &mine, x->err)))
		goto out;
	rc = ws_peer_send_clock(&x->sess.p, ss->ch, WS_CLOCK_SYNC, &mine);
out:
	ws_schema_release(&sc);
	ws_vclock_release(&mine);
	return rc;
}

/*
 * The hub's collected horizon: collect as far (a full copy, when flagged
 * SNAPSHOT, comes first, and the next STABLE clock ends it).
 */
static int on_stable(struct site *x, struct sset *ss, const struct ws_frame *f)
{
	struct ws_vclock h = WS_VCLOCK_INIT, mine = WS_VCLOCK_INIT;
	int rc;

	if ((rc = ws_vclock_decode_all(&h, f->payload, f->len, x->err)))
		goto out;
	if (f->flags & WS_CLOCK_SNAPSHOT) {
		ws_store_snapshot_abort(ss->st);
		if ((rc = ws_store_snapshot_begin(ss->st, &h, x->err)) == 0)
			ss->in_copy = 1;
	} else if (ss->in_copy) {
		ss->in_copy = 0;
		rc = ws_store_snapshot_end(ss->st, x->err);
	} else if ((rc = ws_store_clock(ss->st, &mine, x->err)) == 0) {
		/* Never claim more than this copy holds; and a horizon already
		 * collected (each sync starts with one) costs no transaction. */
		ws_vclock_meet(&h, &mine);
		if ((rc = ws_store_stable(ss->st, &mine, x->err)) == 0 &&
		    !ws_vclock_reaches(&mine, &h))
			rc = ws_store_gc(ss->st, &h, NULL, x->err);
	}
out:
	ws_vclock_release(&h);
	ws_vclock_release(&mine);
	return rc;
}

/* The hub's hello. */
static int on_hello(struct ws_proto *s, const struct ws_hello *hello, char *err)
{
	if (hello->role != WS_ROLE_HUB)
		return ws_error(err, WS_ECORRUPT, "the peer is not a hub");
	status(s->clientData);
	return 0;
}

/* Frames on a channel: one retired is ignored, one never given is wrong. */
static int on_channel(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct sset *ss = by_chan(s->clientData, f->channel);

	if (ss && ss->gone)
		return 1; /* sent before the hub had our remove */
	if (f->channel && !ss && f->type != WS_FRAME_HEARTBEAT)
		return ws_error(err, WS_ECORRUPT, "frame on unknown channel %" PRIu32,
		    f->channel);
	return 0;
}

/* On channel 0 the hub ends the session; on a set's, it refuses the set. */
static int on_error(struct ws_proto *s, uint32_t ch, int has_code, int64_t code,
    const char *msg, size_t n, char *err)
{
	struct site *x = s->clientData;
	struct sset *ss = by_chan(x, ch);

	if (!has_code || code > 0 || code < WS_ERROR_MIN)
		code = WS_EIO;
	if (!ss) {
		/* Busy or timed out is worth another try; the rest is not. */
		x->fatal = code != WS_EAGAIN && code != WS_EBUSY && code != WS_EIO;
		return ws_error(err, (int)code, "the hub ends the session: %.*s",
		    (int)n, msg);
	}
	slog(x, "%s: %.*s", ss->wsid, (int)n, msg);
	ss->refused = 1;
	if (!x->result)
		x->result = (int)code ? (int)code : WS_EIO;
	return 0;
}

/* A CLOCK from the hub: its horizon, the end of catch-up, or an ACK. */
static int on_clock(struct site *x, struct sset *ss, const struct ws_frame *f,
    char *err)
{
	struct ws_vclock h = WS_VCLOCK_INIT;
	int rc;

	if (ss && ss->accepted && (f->flags & WS_CLOCK_STABLE))
		return on_stable(x, ss, f);
	if (ss && (f->flags & WS_CLOCK_CAUGHT_UP)) {
		ss->caught_up = 1;
		status(x);
	}
	if (!ss || !ss->st || !(f->flags & WS_CLOCK_ACK))
		return 0;
	ss->acked = 1;
	/* How far the hub holds this site's own batches. */
	if ((rc = ws_vclock_decode_all(&h, f->payload, f->len, err)) == 0)
		rc = ws_store_note_sent(ss->st, ws_vclock_get(&h, ws_store_site(ss->st)),
		    err);
	ws_vclock_release(&h);
	return rc;
}

static int on_other(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct site *x = s->clientData;
	struct sset *ss = by_chan(x, f->channel);
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_batch b;
	int rc;

	switch (f->type) {
	case WS_FRAME_BATCH:
		if (!ss || !ss->accepted)
			return ws_error(err, WS_ECORRUPT, "batch before the working "
			    "set was accepted");
		ws_batch_init(&b);
		if ((rc = ws_batch_decode(&b, f->payload, f->len, err)) == 0)
			rc = ss->in_copy ? ws_store_snapshot_add(ss->st, &b, err) :
			    ws_store_apply(ss->st, &b, NULL, err);
		ws_batch_release(&b);
		x->received++;
		status(x);
		return rc;
	case WS_FRAME_SCHEMA:
		if (!ss)
			return ws_error(err, WS_ECORRUPT, "schema on channel 0");
		if ((rc = ws_schema_decode(&sc, f->payload, f->len, err)) == 0)
			rc = ws_store_adopt_schema(ss->st, &sc, 0, NULL, err);
		ws_schema_release(&sc);
		return rc;
	case WS_FRAME_CLOCK:
		return on_clock(x, ss, f, err);
	case WS_FRAME_REMOVE:
		if (ss) {
			slog(x, "%s: the hub dropped the working set", ss->wsid);
			ss->refused = 1;
		}
		return 0;
	case WS_FRAME_NOTICE:
		/* Recorded in the session log (--log); nothing to do here. */
		if (ss && f->len == 1 + WS_SITEID_LEN &&
		    (f->payload[0] == WS_NOTICE_JOINED || f->payload[0] == WS_NOTICE_LEFT))
			return 0;
		return ws_error(err, WS_ECORRUPT, "bad notice frame from the hub");
	default:
		return WS_PROTO_UNKNOWN;
	}
}

/* The heartbeat's channels: the sets the hub took. */
static size_t nchan(struct ws_proto *s)
{
	return ((struct site *)s->clientData)->n;
}

static int set_clock(struct ws_proto *s, size_t i, uint32_t *ch, struct ws_vclock *vc,
    char *err)
{
	const struct sset *ss = &((struct site *)s->clientData)->s[i];

	if (!ss->st || !ss->accepted || ss->refused)
		return 1;
	*ch = ss->ch;
	return ws_store_clock(ss->st, vc, err);
}

static const struct ws_proto_ops site_ops = {
	.hello = on_hello,
	.channel = on_channel,
	.add = on_add,
	.error = on_error,
	.frame = on_other,
	.nchan = nchan,
	.clock = set_clock,
};

static int on_frame(struct ws_peer *p, const struct ws_frame *f, void *cd)
{
	struct site *x = cd;

	(void)p;
	return ws_proto_frame(&x->sess, f, x->err);
}

/* One-shot is done when every set was refused or is caught up and acked. */
static int all_done(const struct site *x)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (x->s[i].st && !x->s[i].refused &&
		    !(x->s[i].caught_up && x->s[i].acked))
			return 0;
	return 1;
}

/* Watch a set's database file (and its WAL) for commits. */
static void watch_set(struct site *x, const struct sset *ss)
{
	char wal[PATH_MAX];

	if (x->ifd < 0 || !ss->st)
		return;
	inotify_add_watch(x->ifd, ss->path, IN_MODIFY | IN_CLOSE_WRITE);
	snprintf(wal, sizeof(wal), "%s-wal", ss->path);
	inotify_add_watch(x->ifd, wal, IN_MODIFY);
}

/* Offer ss to the hub on its channel. */
static int offer(struct site *x, struct sset *ss)
{
	struct ws_add add = {.clock = WS_VCLOCK_INIT};
	int rc;

	snprintf(add.wsid, sizeof(add.wsid), "%s", ss->wsid);
	add.has_guid = ws_store_guid(ss->st, add.guid);
	add.has_site = 1;
	add.site = *ws_store_site(ss->st);
	x->sess.enc.len = 0;
	if ((rc = ws_store_seal(ss->st, NULL, x->err)) == 0 &&
	    (rc = ws_store_clock(ss->st, &add.clock, x->err)) == 0 &&
	    (rc = ws_add_encode(&add, &x->sess.enc)) == 0)
		rc = ws_peer_send(&x->sess.p, WS_FRAME_ADD, 0, ss->ch, x->sess.enc.p,
		    x->sess.enc.len);
	ws_vclock_release(&add.clock);
	return rc;
}

/* Say on stderr which table of the set being added is not tracked, and why. */
static int say_untracked(const char *table, const char *why, void *cd)
{
	struct site *x = cd;

	slog(x, "%s: table '%s' is not tracked: %s", x->cur->wsid, table, why);
	return 0;
}

/*
 * A new set: open its database (tracking every keyed table), give it the
 * next channel, and offer it when a session is up.  A database that
 * cannot be opened is reported, and counts for one-shot's exit status.
 */
static int add_set(struct site *x, const char *wsid, const char *path, int from_file)
{
	char why[WS_ERRLEN];
	struct sset *ss, *ns;
	int rc, renewed = 0;

	if (!(ns = realloc(x->s, (x->n + 1) * sizeof(*ns))))
		return WS_ENOMEM;
	x->s = ns;
	ss = &x->s[x->n];
	memset(ss, 0, sizeof(*ss));
	if (!(ss->wsid = strdup(wsid)) || !(ss->path = strdup(path))) {
		free(ss->wsid);
		return WS_ENOMEM;
	}
	x->n++;
	ss->from_file = from_file;
	ss->ch = ++x->last_ch;
	ss->created = access(path, F_OK) != 0;
	if ((rc = ws_store_open(&ss->st, path, wsid, WS_STORE_CREATE, why)) ||
	    (rc = ws_store_track(ss->st, NULL, 0, why)) ||
	    (x->o->scan && (rc = ws_store_scan(ss->st, why)))) {
		slog(x, "%s: %s", wsid, why);
		ws_store_close(ss->st);
		ss->st = NULL;
		if (!x->result)
			x->result = rc;
		return 0;
	}
	ws_store_keep_views_local(ss->st, x->o->local_views);
	x->cur = ss;
	if ((rc = ws_store_check_copy(ss->st, &renewed, why))) {
		slog(x, "%s: %s", wsid, why);
		if (!x->result)
			x->result = rc;
	} else if (renewed) {
		char hex[WS_SITEID_HEXLEN + 1];

		ws_siteid_hex(ws_store_site(ss->st), hex);
		slog(x, "%s: %s is a copy of another site's database (it is not the "
		    "file its site id was made in), so it is site %s now", wsid, path,
		    hex);
	}
	if ((rc = ws_store_untracked(ss->st, say_untracked, x, why)))
		slog(x, "%s: %s", wsid, why);
	watch_set(x, ss);
	return x->connected && x->sess.hello ? offer(x, ss) : 0;
}

/* Take ss out of the session (the hub is told) and close its database. */
static int remove_set(struct site *x, struct sset *ss)
{
	int rc = 0;

	if (ss->in_copy)
		ws_store_snapshot_abort(ss->st);
	if (x->connected && ss->st && !ss->refused)
		rc = ws_peer_send(&x->sess.p, WS_FRAME_REMOVE, 0, ss->ch, NULL, 0);
	ws_store_close(ss->st);
	ss->st = NULL;
	ss->gone = 1;
	ss->in_copy = 0;
	return rc;
}

/* The set in use for wsid, or NULL. */
static struct sset *by_wsid(struct site *x, const char *wsid)
{
	size_t i;

	for (i = 0; i < x->n; i++)
		if (!x->s[i].gone && strcmp(x->s[i].wsid, wsid) == 0)
			return &x->s[i];
	return NULL;
}

/*
 * Read the sets file: WSID=DBFILE a line; blank lines and lines starting
 * with '#' are skipped.  Then make the session's sets what it says: a set
 * it no longer lists leaves, a new one joins, and one listed with another
 * file is replaced (the last word wins).  Sets given as operands stay
 * unless the file names their id.  A file that cannot be read or holds a
 * bad line changes nothing (WS_ECONFIG, WS_ENOTFOUND or WS_EIO).
 */
int ws_site_set_parse(const char *s, size_t *idlen, const char **path)
{
	const char *eq = strchr(s, '=');
	char id[WS_WSID_MAX + 1];

	*idlen = eq ? (size_t)(eq - s) : strlen(s);
	*path = eq ? eq + 1 : NULL;
	if (!eq || !eq[1])
		return WS_EINVAL;
	if (*idlen > WS_WSID_MAX)
		return WS_ECONFIG;
	memcpy(id, s, *idlen);
	id[*idlen] = 0;
	return ws_wsid_valid(id) ? 0 : WS_ECONFIG;
}

static int read_sets(struct site *x)
{
	const char *file = x->o->sets_file, *path;
	char line[PATH_MAX + WS_WSID_MAX + 8], *e, buf[64];
	char **ids = NULL, **paths = NULL, **t;
	size_t n = 0, i, k, idlen, lineno = 0;
	struct sset *ss;
	FILE *f = fopen(file, "r");
	int rc = 0;

	if (!f)
		return ws_error(x->err, errno == ENOENT ? WS_ENOTFOUND : WS_EIO,
		    "cannot read sets file '%s': %s", file, ws_errno_text(errno, buf));
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = ws_error(x->err, WS_ECONFIG, "%s:%zu: line too long", file, lineno);
			break;
		}
		for (e = line + strlen(line); e > line && strchr(" \t\r\n", e[-1]); e--)
			;
		*e = 0;
		if (!line[0] || line[0] == '#')
			continue;
		if ((rc = ws_site_set_parse(line, &idlen, &path))) {
			if (rc == WS_EINVAL)
				rc = ws_error(x->err, WS_ECONFIG, "%s:%zu: want WSID=DBFILE",
				    file, lineno);
			else
				rc = ws_error(x->err, WS_ECONFIG, "%s:%zu: bad working-set id "
				    "'%.*s'", file, lineno, (int)idlen, line);
			break;
		}
		line[idlen] = 0;
		/* The last line for an id wins. */
		for (k = 0; k < n && strcmp(ids[k], line); k++)
			;
		if (k == n) {
			if (!(t = realloc(ids, (n + 1) * sizeof(*t)))) {
				rc = WS_ENOMEM;
				break;
			}
			ids = t;
			if (!(t = realloc(paths, (n + 1) * sizeof(*t)))) {
				rc = WS_ENOMEM;
				break;
			}
			paths = t;
			ids[n] = paths[n] = NULL;
			n++;
		}
		free(ids[k]);
		free(paths[k]);
		ids[k] = strdup(line);
		paths[k] = strdup(path);
		if (!ids[k] || !paths[k])
			rc = WS_ENOMEM;
	}
	if (rc == 0 && ferror(f))
		rc = ws_error(x->err, WS_EIO, "cannot read sets file '%s'", file);
	fclose(f);
	/* Leave: file sets no longer listed, or listed with another file. */
	for (i = 0; rc == 0 && i < x->n; i++) {
		ss = &x->s[i];
		if (ss->gone)
			continue;
		for (k = 0; k < n && strcmp(ids[k], ss->wsid); k++)
			;
		if (k == n ? ss->from_file : strcmp(paths[k], ss->path) != 0) {
			slog(x, "%s: leaving the session (sets file)", ss->wsid);
			rc = remove_set(x, ss);
		}
	}
	/* Join: the ones not in use yet. */
	for (k = 0; rc == 0 && k < n; k++)
		if (!by_wsid(x, ids[k])) {
			if (x->connected)
				slog(x, "%s: joining the session (sets file)", ids[k]);
			rc = add_set(x, ids[k], paths[k], 1);
		}
	for (k = 0; k < n; k++) {
		free(ids[k]);
		free(paths[k]);
	}
	free(ids);
	free(paths);
	return rc;
}

/*
 * Watch the directory of the sets file (an editor may replace the file
 * rather than write it); -1 without inotify.
 */
static void watch_sets(struct site *x)
{
	char dir[PATH_MAX];
	const char *slash;

	x->sets_wd = -1;
	if (x->ifd < 0 || !x->o->sets_file)
		return;
	slash = strrchr(x->o->sets_file, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == x->o->sets_file ? 1 :
		    (int)(slash - x->o->sets_file), x->o->sets_file);
	x->sets_wd = inotify_add_watch(x->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO |
	    IN_DELETE);
}

/*
 * Drain the inotify events: *commit when a database changed, *sets when
 * the sets file did.
 */
static void read_events(struct site *x, int *commit, int *sets)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const char *base = x->o->sets_file ? strrchr(x->o->sets_file, '/') : NULL;
	const struct inotify_event *ev;
	ssize_t k, off;

	base = base ? base + 1 : x->o->sets_file;
	while ((k = read(x->ifd, buf, sizeof(buf))) > 0)
		for (off = 0; off < k; off += (ssize_t)sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)(buf + off);
			if (ev->wd != x->sets_wd)
				*commit = 1;
			else if (ev->len && base && strcmp(ev->name, base) == 0)
				*sets = 1;
		}
}

/* The handshake's check of the hub's key: pinned, or in known hubs. */
static int check_hub(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	struct site *x = cd;
	char text[WS_KEY_TEXTMAX];
	int rc, added;

	ws_key_text(pk, text);
	if (x->o->has_hub_key) {
		if (sodium_memcmp(pk, x->o->hub_key, WS_KEY_PUBLICBYTES) == 0)
			return 0;
		return ws_error(err, WS_EPERM, "the hub presented key %s, not the "
		    "one given with --hub-key: refusing it", text);
	}
	if (!x->o->known_hubs)
		return ws_error(err, WS_EPERM, "cannot check the hub's key %s: give "
		    "--hub-key or a known-hubs file", text);
	if ((rc = ws_known_hubs_check(x->o->known_hubs, x->o->hub, pk,
	    x->o->accept_new_hub, &added, err)))
		return rc;
	if (added)
		slog(x, "added the key of the hub at %s to %s: %s", x->o->hub,
		    x->o->known_hubs, text);
	return 0;
}

/* The inotify fd: a commit to push, or the sets file edited. */
static int on_inotify(struct site *x)
{
	int rc, commit = 0, sets = 0;

	/* Drain the events; one seal covers them all. */
	read_events(x, &commit, &sets);
	if (sets && (rc = read_sets(x))) {
		if (rc == WS_ENOMEM || rc == WS_EBUSY)
			return rc;
		/* A bad edit: keep the sets as they are. */
		slog(x, "%s", x->err);
	}
	return commit ? push_local(x, x->err) : 0;
}

/* The hub's connection is readable: take its frames. */
static int on_readable(struct site *x)
{
	int rc;

	/* The hub gone in the middle of a frame is a lost connection (74),
	 * not bad data (65). */
	if ((rc = ws_peer_read(&x->sess.p, on_frame, x, x->err)) == WS_ETRUNC &&
	    x->sess.p.eof)
		return ws_error(x->err, WS_EIO, "the hub closed the connection in the "
		    "middle of a frame");
	if (rc == 0 && x->sess.p.eof)
		rc = ws_error(x->err, WS_EIO, "the hub closed the connection");
	return rc;
}

static void site_io(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct site *x = cd;
	int rc = 0;

	if (fd == x->ifd)
		rc = on_inotify(x);
	else if (fd == x->sess.p.conn.rfd && (mask & WS_LOOP_READ))
		rc = on_readable(x);
	if (rc) {
		x->rc = rc;
		ws_loop_stop(l);
	}
}

/*
 * The keepalive; write what is queued (when that fails, read why the hub
 * closed); see whether a one-shot sync is done (1).  *live: the catch-up
 * is over.
 */
static int step(struct site *x, int *live)
{
	char why[WS_ERRLEN] = "";
	int rc;

	if ((rc = ws_proto_keepalive(&x->sess, ws_now_ms(), x->err)))
		return rc;
	for (;;) {
		if ((rc = ws_peer_flush(&x->sess.p, x->err))) {
			int rrc = ws_peer_read(&x->sess.p, on_frame, x, why);

			if (rrc) {
				/* on_frame's errors are in x->err already */
				rc = rrc;
				if (why[0])
					snprintf(x->err, WS_ERRLEN, "%s", why);
			} else if (x->sess.p.eof) {
				rc = ws_error(x->err, WS_EIO, "the hub closed the "
				    "connection");
			}
			return rc;
		}
		*live = all_done(x);
		x->was_live |= *live;
		if (!*live || x->o->follow || x->reported)
			break;
		/* One last progress report: the hub may collect what this site
		 * now holds. */
		x->reported = 1;
		x->sess.p.last_tx_ms = 0;
		if ((rc = ws_proto_keepalive(&x->sess, ws_now_ms(), x->err)))
			return rc;
	}
	/* One-shot: both sides hold the same changes. */
	if (*live && !x->o->follow && !ws_peer_pending(&x->sess.p))
		return 1;
	return x->o->stop && *x->o->stop;
}

/*
 * Before each wait: step(), then wait for output room only while output
 * waits, and for commits only once live.
 */
static void before_wait(struct ws_loop *l, void *cd)
{
	struct site *x = cd;
	int rc, live = 0;

	if ((rc = step(x, &live)) == 0) {
		if (!ws_peer_pending(&x->sess.p))
			ws_loop_del_fd(l, x->sess.p.conn.wfd, WS_LOOP_WRITE);
		else
			rc = ws_loop_add_fd(l, x->sess.p.conn.wfd, WS_LOOP_WRITE, site_io, x);
	}
	if (rc == 0) {
		if (!live || !x->o->follow)
			ws_loop_del_fd(l, x->ifd, WS_LOOP_READ);
		else
			rc = ws_loop_add_fd(l, x->ifd, WS_LOOP_READ, site_io, x);
	}
	if (rc) {
		x->rc = rc > 0 ? 0 : rc;
		ws_loop_stop(l);
	}
}

/* One session: connect, sync, and (follow) stay until it ends. */
static int session(struct site *x)
{
	struct ws_siteid me;
	struct ws_conn c;
	size_t i;
	int rc;

	x->sess.hello = 0;
	x->fatal = 0;
	x->was_live = 0;
	x->reported = 0;
	x->sent = x->received = 0;
	status(x);
	for (i = 0; i < x->n; i++) {
		x->s[i].accepted = x->s[i].refused = 0;
		x->s[i].caught_up = x->s[i].acked = 0;
	}
	if ((rc = ws_transport_connect(x->o->hub, &c, x->err)))
		return rc;
	if (ws_fd_nonblock(c.rfd) || ws_fd_nonblock(c.wfd)) {
		ws_conn_close(&c);
		return ws_error(x->err, WS_EIO, "cannot set up the connection");
	}
	/* The hello names the site by its first open set's id. */
	me = x->anon;
	for (i = 0; i < x->n; i++)
		if (x->s[i].st) {
			me = *ws_store_site(x->s[i].st);
			break;
		}
	ws_proto_init(&x->sess, &c, x->o->max_frame ? x->o->max_frame :
	    WS_FRAME_MAX_DEFAULT, 0, WS_ROLE_SITE, &me, &site_ops, x);
	x->sess.heartbeat_ms = x->o->heartbeat_ms ? x->o->heartbeat_ms :
	    WS_HEARTBEAT_MS_DEFAULT;
	x->sess.idle_ms = x->o->idle_timeout_ms ? x->o->idle_timeout_ms :
	    WS_IDLE_TIMEOUT_MS_DEFAULT;
	x->sess.p.log = x->o->session_log;
	x->connected = 1;
	if ((x->o->key && (rc = ws_peer_secure(&x->sess.p, 1, x->o->key, check_hub,
	    x))) || (rc = ws_proto_start(&x->sess)))
		goto out;
	for (i = 0; i < x->n; i++)
		if (x->s[i].st && (rc = offer(x, &x->s[i])))
			goto out;
	x->rc = 0;
	if ((rc = ws_loop_add_fd(x->loop, c.rfd, WS_LOOP_READ, site_io, x)) ||
	    (rc = ws_loop_run(x->loop, x->err)) == 0)
		rc = x->rc;
out:
	/* A key refused, or a session tampered with, does not mend itself. */
	if (rc == WS_EPERM)
		x->fatal = 1;
	for (i = 0; i < x->n; i++)
		if (x->s[i].in_copy) {
			ws_store_snapshot_abort(x->s[i].st);
			x->s[i].in_copy = 0;
		}
	x->connected = 0;
	ws_loop_del_fd(x->loop, x->sess.p.conn.rfd, WS_LOOP_READ | WS_LOOP_WRITE);
	ws_loop_del_fd(x->loop, x->sess.p.conn.wfd, WS_LOOP_READ | WS_LOOP_WRITE);
	ws_loop_del_fd(x->loop, x->ifd, WS_LOOP_READ);
	ws_proto_release(&x->sess);
	return rc;
}

int ws_site_run(const struct ws_site_opts *o, char *err)
{
	struct site x;
	size_t i, open = 0;
	int rc = 0, backoff = 250;
	struct timespec ts;

	if ((rc = ws_transport_check_keys(o->hub, 0, o->key != NULL, o->insecure, err)))
		return rc;
	memset(&x, 0, sizeof(x));
	x.o = o;
	x.err = err;
	x.ifd = o->follow ? inotify_init1(IN_NONBLOCK | IN_CLOEXEC) : -1;
	x.sets_wd = -1;
	if ((rc = ws_loop_new(&x.loop, err)))
		goto out;
	/* The keepalive runs at least once a second. */
	ws_loop_set_max_wait(x.loop, 1000);
	ws_loop_set_before(x.loop, before_wait, &x);
	ws_siteid_random(&x.anon);
	for (i = 0; i < o->nsets; i++)
		if ((rc = add_set(&x, o->sets[i].wsid, o->sets[i].path, 0)))
			goto out;
	if (o->sets_file) {
		watch_sets(&x);
		if ((rc = read_sets(&x)))
			goto out;
	}
	for (i = 0; i < x.n; i++)
		open += x.s[i].st != NULL;
	/* A follow site with a sets file may start with none, and wait. */
	if (!open && !(o->follow && o->sets_file)) {
		rc = ws_error(err, x.result ? x.result : WS_EINVAL,
		    "no working set could be opened");
		goto out;
	}
	for (;;) {
		rc = session(&x);
		if (!o->follow || (o->stop && *o->stop) || x.fatal)
			break;
		if (x.was_live)
			backoff = 250; /* it worked for a while: start over */
		/* Follow: log, back off, reconnect. */
		slog(&x, "%s; reconnecting in %d ms", err, backoff);
		ts.tv_sec = backoff / 1000;
		ts.tv_nsec = (long)(backoff % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		if ((backoff *= 2) > BACKOFF_MAX_MS)
			backoff = BACKOFF_MAX_MS;
	}
	if (rc == 0 && x.result)
		rc = ws_error(err, x.result, "some working sets were not synced");
out:
	for (i = 0; i < x.n; i++) {
		ws_store_close(x.s[i].st);
		/* A run that failed before the hub took a set leaves no new file. */
		if (x.s[i].created && !x.s[i].taken && !x.s[i].gone)
			ws_store_remove_files(x.s[i].path);
		free(x.s[i].wsid);
		free(x.s[i].path);
	}
	if (x.ifd >= 0)
		close(x.ifd);
	ws_loop_free(x.loop);
	free(x.s);
	return rc;
}
