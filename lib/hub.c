/* SPDX-License-Identifier: MIT */
/*
 * hub.c - wsync-serve's event loop: sessions, working sets, catch-up,
 * forwarding.  See hub.h and session.h.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "wsync/delta.h"
#include "wsync/hub.h"
#include "wsync/loop.h"
#include "wsync/session.h"
#include "wsync/store.h"

#define QUEUE_MAX_DEFAULT (64u << 20)

/* An open working set. */
struct hws {
	char wsid[WS_WSID_MAX + 1];
	struct ws_store *st;
	struct ws_vclock stable; /* collected up to here, everywhere */
	uint64_t gc_ms;          /* when collection was last considered */
};

/* A working set a session has on one of its channels. */
struct chan {
	uint32_t ch;
	struct hws *ws;
	struct ws_siteid site;   /* its add's site id: every batch's dot names it */
	int has_known;
	struct ws_vclock known;  /* the site's last clock report to go by */
	enum ws_right right;     /* what the site may do with it */
	int told_readonly;       /* it was told its changes are refused */
	int behind;              /* its queue was full: batches come from the store */
	int catching;            /* its catch-up is not all queued yet */
	uint64_t sent_usn;       /* when behind: the store's batches up to here
	                          * are queued for it (0: not known) */
	struct ws_vclock had;    /* batches it holds or has queued (its add's
	                          * clock, those sent since, and its own) */
};

struct hpeer {
	struct ws_proto s;      /* first: the frame callback's peer is hp */
	const struct ws_hub_opts *o;
	int closing;            /* flush what is queued, then close */
	const struct ws_authkey *ak; /* a secure session's key entry */
	int dead;               /* close now */
	struct chan *ch;
	size_t nch;
};

struct hub {
	const struct ws_hub_opts *o;
	struct ws_siteid id;
	struct hws **ws;
	size_t nws;
	struct hpeer **peers;
	size_t npeers;
	int *lfd;
	size_t nlfd;
	struct ws_loop *loop;
	size_t max_sessions;
	int had_peer;            /* --stdio: its session started */
	unsigned long sessions;  /* sessions accepted so far */
	unsigned long refused;   /* connections refused past --max-sessions */
	uint64_t refused_ms;     /* when that was last logged */
	char *err;
};

#define hlog(h, ...) ws_log_printf((h)->o->log, (h)->o->log_cd, __VA_ARGS__)

/* End a session: log why, tell the peer (best effort), close after flush. */
static void drop(struct hub *h, struct hpeer *hp, int code, const char *why)
{
	size_t n = strlen(hp->s.p.conn.name);

	/* Messages from the session layer name the peer already: once is
	 * enough ("PEER: closed the connection", not "PEER: PEER closed"). */
	if (strncmp(why, hp->s.p.conn.name, n) == 0 && why[n] == ' ')
		hlog(h, "%s: %s", hp->s.p.conn.name, why + n + 1);
	else
		hlog(h, "%s: %s", hp->s.p.conn.name, why);
	if (!hp->closing && !hp->dead && code &&
	    ws_peer_send_error(&hp->s.p, 0, code, why) == 0)
		hp->closing = 1;
	else
		hp->dead = 1;
}

/* The handshake's key check: only keys in the authorized-keys file. */
static int check_key(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	struct hpeer *hp = cd;
	const struct ws_hub_opts *o = hp->o;
	char text[WS_KEY_TEXTMAX];

	if ((hp->ak = ws_authkeys_find(o->authkeys, pk)))
		return 0;
	ws_key_text(pk, text);
	return ws_error(err, WS_EPERM, "key %s is not authorized on this hub", text);
}

static struct chan *find_chan(struct hpeer *hp, uint32_t ch)
{
	size_t i;

	for (i = 0; i < hp->nch; i++)
		if (hp->ch[i].ch == ch)
			return &hp->ch[i];
	return NULL;
}

/* The open working set wsid, opened (or created) now if need be. */
static int get_ws(struct hub *h, const char *wsid, int create, struct hws **out,
    char *err)
{
	struct hws *w, **p;
	char path[PATH_MAX];
	size_t i;
	int rc;

	for (i = 0; i < h->nws; i++)
		if (strcmp(h->ws[i]->wsid, wsid) == 0) {
			*out = h->ws[i];
			return 0;
		}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.db", h->o->datadir, wsid) >=
	    sizeof(path))
		return ws_error(err, WS_EINVAL, "working-set path too long");
	if (!create && access(path, F_OK) != 0)
		return ws_error(err, WS_ENOTFOUND, "unknown working set '%s' (%s)", wsid,
		    h->o->key ? "this site's key may not create it" :
		    "the hub accepts new ones with --create");
	if (!(w = calloc(1, sizeof(*w))))
		return WS_ENOMEM;
	snprintf(w->wsid, sizeof(w->wsid), "%s", wsid);
	if ((rc = ws_store_open(&w->st, path, wsid, WS_STORE_CREATE, err))) {
		free(w);
		return rc;
	}
	/* The WAL journal, and the sites of the set and how far each has
	 * got, for collection (store.h). */
	if ((rc = ws_store_hub_init(w->st, err)) ||
	    (rc = ws_store_stable(w->st, &w->stable, err))) {
		ws_store_close(w->st);
		ws_vclock_release(&w->stable);
		free(w);
		return rc;
	}
	if (!(p = realloc(h->ws, (h->nws + 1) * sizeof(*p)))) {
		ws_store_close(w->st);
		ws_vclock_release(&w->stable);
		free(w);
		return WS_ENOMEM;
	}
	h->ws = p;
	h->ws[h->nws++] = w;
	*out = w;
	return 0;
}

/* End hp's session over working set traffic on ch: the reason names it. */
static void drop_ws(struct hub *h, struct hpeer *hp, const struct chan *ch, int rc,
    const char *err)
{
	char why[WS_ERRLEN + WS_WSID_MAX + 32];

	snprintf(why, sizeof(why), "working set '%s': %s", ch ? ch->ws->wsid : "?",
	    err);
	drop(h, hp, rc, why);
}

/* The message for a session dropped because its queue overflowed. */
#define QUEUE_FULL "outgoing queue full: disconnected (it catches up when it " \
	"reconnects)"

/*
 * Queue a frame for every session but `from` (NULL: none is left out)
 * that carries working set w, each on its own channel; a session whose
 * queue overflows is dropped.  Batches go by forward().
 */
static void broadcast(struct hub *h, struct hpeer *from, struct hws *w,
    uint8_t type, const uint8_t *p, size_t n)
{
	size_t i, k;

	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];

		if (hp == from || hp->dead || hp->closing)
			continue;
		for (k = 0; k < hp->nch; k++)
			if (hp->ch[k].ws == w &&
			    ws_peer_send(&hp->s.p, type, 0, hp->ch[k].ch, p, n))
				drop(h, hp, 0, QUEUE_FULL);
	}
}

/*
 * Forward batch b, just applied to w (p: its encoding), to every session
 * of w but `from`.  A session whose queue is full is not dropped: it
 * falls behind, and pump() sends it the store's batches it lacks (those
 * not in ch->had) as its queue drains, so a slow site is paced and the
 * others go on at their own speed.
 */
static void forward(struct hub *h, struct hpeer *from, struct hws *w,
    const struct ws_batch *b, const uint8_t *p, size_t n)
{
	size_t i, k;

	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];

		if (hp == from || hp->dead || hp->closing)
			continue;
		for (k = 0; k < hp->nch; k++) {
			struct chan *ch = &hp->ch[k];

			if (ch->ws != w || ch->behind)
				continue;
			if (ws_peer_send(&hp->s.p, WS_FRAME_BATCH, 0, ch->ch, p, n)) {
				ch->behind = 1;
				ch->sent_usn = 0; /* not known: by ch->had, at first */
			} else if (b->has_dot && ws_vclock_set(&ch->had, &b->dot_site,
			    b->dot_counter)) {
				drop(h, hp, WS_ENOMEM, ws_strerror(WS_ENOMEM));
			}
		}
	}
}

/* Tell the other sessions of w that hp's site joined or left it. */
static void notice(struct hub *h, struct hpeer *hp, const struct chan *ch,
    uint8_t kind)
{
	uint8_t pl[1 + WS_SITEID_LEN];

	pl[0] = kind;
	memcpy(pl + 1, ch->site.b, WS_SITEID_LEN);
	broadcast(h, hp, ch->ws, WS_FRAME_NOTICE, pl, sizeof(pl));
}

/*
 * Leave out of b's clock every coordinate the whole star holds: those
 * within the collected horizon (the hub's own, a departed site's, any
 * site's old ones), but the batch's own dot.  Every receiver has
 * collected that far (it got the STABLE clock first) and counts those
 * versions as seen, so the merge is unchanged; the Lamport number the
 * whole clock gave goes with the batch.  1 if b changed.
 */
static int prune(const struct hws *w, struct ws_batch *b)
{
	uint64_t lamport = 0;
	size_t i, k;

	if (!b->has_clock || !b->has_dot || !w->stable.n)
		return 0;
	for (i = 0; i < b->clock.n; i++)
		lamport += b->clock.e[i].counter;
	for (i = k = 0; i < b->clock.n; i++)
		if (b->clock.e[i].counter > ws_vclock_get(&w->stable, &b->clock.e[i].site) ||
		    memcmp(b->clock.e[i].site.b, b->dot_site.b, WS_SITEID_LEN) == 0)
			b->clock.e[k++] = b->clock.e[i];
	if (k == b->clock.n)
		return 0;
	b->clock.n = k;
	if (!b->has_lamport)
		ws_batch_set_lamport(b, lamport);
	return 1;
}

struct catchup {
	struct hpeer *hp;
	struct hws *w;
	uint32_t ch;
};

static int send_batch(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct catchup *c = cd;

	(void)usn;
	/* The store lends b for the call: prune it in place, it is not reused. */
	prune(c->w, (struct ws_batch *)b);
	return ws_proto_send_batch(&c->hp->s, c->ch, b);
}

/* A paced channel's batch from the store: not its own, and not past its queue. */
struct paced {
	struct catchup c;
	struct chan *ch;
};

static int send_paced(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct paced *pc = cd;
	int rc;

	if (ws_peer_pending(&pc->c.hp->s.p) >= pc->c.hp->s.p.out_max / 2)
		return WS_EBUSY; /* enough for now: on when it drains */
	if (!b->has_dot || ws_vclock_get(&pc->ch->had, &b->dot_site) < b->dot_counter) {
		if ((rc = send_batch(b, usn, &pc->c)) ||
		    (b->has_dot && (rc = ws_vclock_set(&pc->ch->had, &b->dot_site,
		    b->dot_counter))))
			return rc;
	}
	pc->ch->sent_usn = usn;
	return 0;
}

/* Whether a channel of hp is behind. */
static int paced(const struct hpeer *hp)
{
	size_t k;

	for (k = 0; k < hp->nch; k++)
		if (hp->ch[k].behind)
			return 1;
	return 0;
}

/* Tell ch's site its catch-up is all sent: the marker, with the hub's clock. */
static int caught_up(const struct chan *ch, struct ws_peer *p, char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	int rc;

	if ((rc = ws_store_clock(ch->ws->st, &clock, err)) == 0)
		rc = ws_peer_send_clock(p, ch->ch, WS_CLOCK_CAUGHT_UP, &clock);
	ws_vclock_release(&clock);
	return rc;
}

/*
 * Send each channel that fell behind the store's batches it lacks, while
 * its queue has room; one that has them all is live again.  A channel
 * whose next batches were collected meanwhile is dropped, and catches up
 * when it reconnects.
 */
static void pump(struct hub *h, struct hpeer *hp)
{
	char err[WS_ERRLEN] = "";
	size_t k;
	int rc;

	for (k = 0; k < hp->nch && !hp->dead && !hp->closing; k++) {
		struct paced pc = {{hp, hp->ch[k].ws, hp->ch[k].ch}, &hp->ch[k]};

		if (!hp->ch[k].behind ||
		    ws_peer_pending(&hp->s.p) >= hp->s.p.out_max / 2)
			continue;
		/* From the last batch queued, when known (and not collected
		 * since: the site holds those); else by what the site holds,
		 * which skips those batches before reading them. */
		rc = pc.ch->sent_usn ? ws_store_changes_since(pc.c.w->st,
		    pc.ch->sent_usn, send_paced, &pc, err) : WS_ERANGE;
		if (rc == WS_ERANGE)
			rc = ws_store_changes_missing(pc.c.w->st, &pc.ch->had, send_paced,
			    &pc, err);
		if (rc == 0) {
			pc.ch->behind = 0;
			if (pc.ch->catching && (rc = caught_up(pc.ch, &hp->s.p, err)) == 0)
				pc.ch->catching = 0;
		}
		if (rc == WS_ERANGE)
			drop(h, hp, 0, "the changes it lacks were collected: it gets a full "
			    "copy when it reconnects");
		else if (rc && rc != WS_EBUSY)
			drop_ws(h, hp, pc.ch, rc, err);
	}
}

/*
 * Take a site's clock report (its add, its SYNC, a heartbeat's clock) as
 * a bound for collection, unless it counts batches the hub does not hold
 * yet: such a batch (the site's own, still on its way) may not have seen
 * what the report says the site holds.
 */
static int report(struct chan *ch, const struct ws_vclock *c, char *err)
{
	struct ws_vclock mine = WS_VCLOCK_INIT;
	int rc;

	if ((rc = ws_store_clock(ch->ws->st, &mine, err)) == 0 && ws_vclock_reaches(&mine, c) &&
	    (rc = ws_vclock_copy(&ch->known, c)) == 0)
		ch->has_known = 1;
	ws_vclock_release(&mine);
	return rc;
}

/*
 * Remember how far the site on ch has got (in wsync_members, with the
 * time), so collection keeps counting it after it leaves, for --retain
 * (with a retention of 0, a site stops counting when it leaves).
 */
static int remember(const struct hub *h, const struct hpeer *hp,
    const struct chan *ch, int departing, char *err)
{
	if (departing && ch->right < WS_RIGHT_WRITE) {
		/* A reader left nothing unsent: it may come back to a full
		 * copy, so it holds nothing back once gone (and a read-only key
		 * cannot pin the history by inventing site ids). */
		return ws_store_member_forget(ch->ws->st, &ch->site, err);
	}
	if (!ch->has_known)
		return 0;
	if (departing && h->o->retain_s == 0)
		return 0; /* only connected sites count */
	(void)hp;
	return ws_store_member_put(ch->ws->st, &ch->site, &ch->known,
	    (int64_t)time(NULL), err);
}

/* Encode w's schema record into pl (replacing it). */
static int schema_payload(struct hws *w, struct ws_buf *pl, char *err)
{
	struct ws_schema sc = WS_SCHEMA_INIT;
	int rc;

	pl->len = 0;
	if ((rc = ws_store_schema(w->st, &sc, err)) == 0)
		rc = ws_schema_encode(&sc, pl);
	ws_schema_release(&sc);
	return rc;
}

/*
 * A site's schema record: adopt it (all or nothing), and when that
 * changed the working set's schema, send the new one to every site of
 * the set, the sender included, ahead of any batch that needs it.  A
 * record the set cannot take ends the session with the reason.
 */
static int on_schema(struct hub *h, struct hpeer *hp, const struct ws_frame *f)
{
	struct chan *ch = find_chan(hp, f->channel);
	struct ws_schema sc = WS_SCHEMA_INIT;
	struct ws_buf pl = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	int rc, changed = 0;

	if (!ch) {
		rc = ws_error(err, WS_ECORRUPT, "schema on channel %" PRIu32 ", which "
		    "carries no working set", f->channel);
		goto out;
	}
	if (ch->right < WS_RIGHT_WRITE)
		return 0; /* a reader's schema changes nothing here */
	if ((rc = ws_schema_decode(&sc, f->payload, f->len, err)) ||
	    (rc = ws_store_adopt_schema(ch->ws->st, &sc, 1, &changed, err)) ||
	    !changed || (rc = schema_payload(ch->ws, &pl, err)))
		goto out;
	hlog(h, "%s: working set '%s' has a new schema", hp->s.p.conn.name, ch->ws->wsid);
	broadcast(h, NULL, ch->ws, WS_FRAME_SCHEMA, pl.p, pl.len);
out:
	if (rc)
		drop_ws(h, hp, ch, rc, err);
	ws_schema_release(&sc);
	ws_buf_release(&pl);
	return 0;
}

/*
 * Bind site id `site` of working set w to the session's key, or check it:
 * a site id is bound to the first key that used it, and a key holds at
 * most `max` of them (each holds collection back while it is
 * remembered; wsync-serve --forget lets one go).  0, or WS_EPERM with
 * the reason in err.
 */
static int bind_site(struct hws *w, const struct ws_siteid *site,
    const struct ws_authkey *ak, size_t max, char *err)
{
	return ws_store_site_key_bind(w->st, site, ak->pk, WS_KEY_PUBLICBYTES, max,
	    err);
}

/*
 * A site offers working set a on channel chn: refuse it (the session goes
 * on), or take it: the schema, the hub's add, then the catch-up.
 */
static int on_add(struct ws_proto *s, uint32_t chn, struct ws_add *a, char *unused)
{
	struct hub *h = s->clientData;
	struct hpeer *hp = (struct hpeer *)s;
	struct ws_add reply = {.clock = WS_VCLOCK_INIT};
	struct catchup c = {hp, NULL, chn};
	struct ws_buf pl = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	struct chan *ch, *nc;
	struct hws *w = NULL;
	int rc = 0, full;
	enum ws_right right;

	(void)unused; /* errors are dealt with here: the session may go on */
	if ((ch = find_chan(hp, chn)) && strcmp(ch->ws->wsid, a->wsid) == 0)
		goto out; /* already synced: ignored */
	if (ch) {
		rc = ws_error(err, WS_ECORRUPT, "channel %" PRIu32 " already carries "
		    "'%s'", chn, ch->ws->wsid);
		goto out;
	}
	right = hp->ak ? ws_authkey_right(hp->ak, a->wsid) : WS_RIGHT_CREATE;
	if (right == WS_RIGHT_NONE) {
		snprintf(err, sizeof(err), "working set '%s': this site's key%s%s%s has "
		    "no rights on it", a->wsid, hp->ak->comment[0] ? " (" : "",
		    hp->ak->comment, hp->ak->comment[0] ? ")" : "");
		hlog(h, "%s: %s", hp->s.p.conn.name, err);
		rc = ws_peer_send_error(&hp->s.p, chn, WS_EPERM, err);
		goto out;
	}
	if ((rc = get_ws(h, a->wsid, hp->ak ? right == WS_RIGHT_CREATE : h->o->create,
	    &w, err))) {
		/* Refuse this working set only; the session goes on. */
		hlog(h, "%s: %s", hp->s.p.conn.name, err);
		rc = ws_peer_send_error(&hp->s.p, chn, rc, err);
		goto out;
	}
	if (!a->has_site)
		a->site = hp->s.peer_site; /* an older site: its hello's id */
	if (hp->ak && (rc = bind_site(w, &a->site, hp->ak, h->o->sites_per_key ?
	    h->o->sites_per_key : WS_SITES_PER_KEY, err))) {
		hlog(h, "%s: %s", hp->s.p.conn.name, err);
		rc = ws_peer_send_error(&hp->s.p, chn, rc, err);
		goto out;
	}
	reply.has_guid = ws_store_guid(w->st, reply.guid);
	if (a->has_guid && reply.has_guid && memcmp(a->guid, reply.guid, 16) != 0) {
		snprintf(err, sizeof(err), "working set '%s': the site's dataset guid "
		    "differs from the hub's: different data, not synced", a->wsid);
		hlog(h, "%s: %s", hp->s.p.conn.name, err);
		rc = ws_peer_send_error(&hp->s.p, chn, WS_ECONFIG, err);
		goto out;
	}
	if (!reply.has_guid) {
		/* A new set adopts the site's guid, or gets a fresh one. */
		if ((rc = a->has_guid ? ws_store_set_guid(w->st, a->guid, err) :
		    ws_store_new_guid(w->st, err)))
			goto out;
		reply.has_guid = ws_store_guid(w->st, reply.guid);
	}
	snprintf(reply.wsid, sizeof(reply.wsid), "%s", a->wsid);
	/* The working set's schema comes first: every batch needs it. */
	if ((rc = schema_payload(w, &pl, err)) ||
	    (rc = ws_peer_send(&hp->s.p, WS_FRAME_SCHEMA, 0, chn, pl.p, pl.len)))
		goto out;
	pl.len = 0;
	if ((rc = ws_store_clock(w->st, &reply.clock, err)) ||
	    (rc = ws_add_encode(&reply, &pl)) ||
	    (rc = ws_peer_send(&hp->s.p, WS_FRAME_ADD, 0, chn, pl.p, pl.len)))
		goto out;
	/*
	 * Catch-up: the collected horizon first (the site collects as far),
	 * with a full copy when the site lacks batches collected here; then
	 * the batches it lacks, and the marker.  The full copy is queued
	 * whole; the batches go as the queue has room, the rest from the
	 * store as it drains (pump()), live ones after them, so none is lost
	 * and none comes first.
	 */
	c.w = w;
	/* Another hub process on the same data (--stdio) may have collected. */
	if ((rc = ws_store_stable(w->st, &w->stable, err)))
		goto out;
	full = !ws_vclock_reaches(&a->clock, &w->stable);
	hp->s.p.out_max = 0;
	if (w->stable.n)
		rc = ws_peer_send_clock(&hp->s.p, chn, WS_CLOCK_STABLE |
		    (full ? WS_CLOCK_SNAPSHOT : 0), &w->stable);
	if (rc == 0 && full) {
		hlog(h, "%s: sending a full copy of working set '%s' (the site lacks "
		    "history collected here)", hp->s.p.conn.name, a->wsid);
		if ((rc = ws_store_snapshot(w->st, send_batch, &c, err)) == 0 &&
		    (rc = ws_peer_send_clock(&hp->s.p, chn, WS_CLOCK_STABLE,
		    &w->stable)) == 0)
			rc = ws_vclock_merge(&a->clock, &w->stable);
	}
	hp->s.p.out_max = h->o->queue_max ? h->o->queue_max : QUEUE_MAX_DEFAULT;
	if (rc)
		goto out;
	if (!(nc = realloc(hp->ch, (hp->nch + 1) * sizeof(*nc)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	hp->ch = nc;
	ch = &hp->ch[hp->nch++];
	memset(ch, 0, sizeof(*ch));
	ch->ch = chn;
	ch->site = a->site;
	ch->right = right;
	ch->ws = w;
	ch->catching = 1;
	if ((rc = ws_vclock_copy(&ch->had, &a->clock)))
		goto out;
	{
		struct paced pc = {c, ch};

		rc = ws_store_changes_missing(w->st, &a->clock, send_paced, &pc, err);
	}
	if (rc == WS_EBUSY) {
		ch->behind = 1; /* the rest as the queue drains */
		rc = 0;
	} else if (rc == 0 && (rc = ws_peer_send_clock(&hp->s.p, chn, WS_CLOCK_CAUGHT_UP,
	    &reply.clock)) == 0) {
		ch->catching = 0;
	}
	if (rc)
		goto out;
	if ((rc = report(ch, &a->clock, err)))
		goto out;
	notice(h, hp, ch, WS_NOTICE_JOINED);
	hlog(h, "%s: joined working set '%s' on channel %" PRIu32, hp->s.p.conn.name,
	    a->wsid, chn);
out:
	if (rc && rc != WS_EBUSY && err[0])
		drop(h, hp, rc, err);
	else if (rc == WS_EBUSY)
		drop(h, hp, 0, QUEUE_FULL);
	ws_vclock_release(&reply.clock);
	ws_buf_release(&pl);
	return rc && rc != WS_EBUSY && !err[0] ? rc : 0;
}


static int on_batch(struct hub *h, struct hpeer *hp, const struct ws_frame *f)
{
	struct chan *ch = find_chan(hp, f->channel);
	struct ws_vclock clock = WS_VCLOCK_INIT;
	char err[WS_ERRLEN] = "";
	struct ws_batch b;
	int rc, applied, dup = 0;

	ws_batch_init(&b);
	if (!ch) {
		rc = ws_error(err, WS_ECORRUPT, "batch on channel %" PRIu32 ", which "
		    "carries no working set", f->channel);
		goto out;
	}
	if (ch->right < WS_RIGHT_WRITE) {
		/* Never applied, never forwarded; the site is told once. */
		if (!ch->told_readonly) {
			ch->told_readonly = 1;
			snprintf(err, sizeof(err), "working set '%s' is read-only for "
			    "this site: its changes are refused", ch->ws->wsid);
			hlog(h, "%s: %s", hp->s.p.conn.name, err);
			if (ws_peer_send_error(&hp->s.p, f->channel, WS_EPERM, err))
				drop(h, hp, 0, QUEUE_FULL);
		}
		return 0;
	}
	/* The batch must fit the working set's schema: ws_store_apply()
	 * refuses it whole otherwise, and it is never forwarded. */
	if ((rc = ws_batch_decode(&b, f->payload, f->len, err)) ||
	    (rc = ws_store_clock(ch->ws->st, &clock, err)))
		goto out;
	/* A site sends its own batches only: a dot naming another site would
	 * take that site's place, and its real batch would be skipped. */
	if (b.has_dot && memcmp(b.dot_site.b, ch->site.b, WS_SITEID_LEN) != 0) {
		char mine[WS_SITEID_HEXLEN + 1], other[WS_SITEID_HEXLEN + 1];

		ws_siteid_hex(&ch->site, mine);
		ws_siteid_hex(&b.dot_site, other);
		rc = ws_error(err, WS_EPERM, "a batch of site %s from site %s: "
		    "refused", other, mine);
		goto out;
	}
	dup = b.has_dot && ws_vclock_get(&clock, &b.dot_site) >= b.dot_counter;
	/* Its own batch is held by the site: never sent back when paced. */
	if ((rc = ws_store_apply(ch->ws->st, &b, &applied, err)) ||
	    (b.has_dot && (rc = ws_vclock_set(&ch->had, &b.dot_site, b.dot_counter))))
		goto out;
	if (!dup && prune(ch->ws, &b)) {
		struct ws_buf enc = WS_BUF_INIT;

		if ((rc = ws_batch_encode(&b, &enc)) == 0)
			forward(h, hp, ch->ws, &b, enc.p, enc.len);
		ws_buf_release(&enc);
	} else if (!dup) {
		forward(h, hp, ch->ws, &b, f->payload, f->len);
	}
out:
	if (rc)
		drop_ws(h, hp, ch, rc, err);
	ws_batch_release(&b);
	ws_vclock_release(&clock);
	return 0;
}

/* The site's hello: on TCP a plain session only with --insecure. */
static int on_hello(struct ws_proto *s, const struct ws_hello *hello, char *err)
{
	const struct ws_hub_opts *o = ((struct hpeer *)s)->o;

	(void)hello;
	if (!s->p.sec && s->p.conn.kind == WS_CONN_TCP && !o->insecure)
		return ws_error(err, WS_EPERM, "this hub takes authenticated sessions "
		    "only: connect with wsync-join --key");
	s->p.dec.max = o->max_frame ? o->max_frame : WS_FRAME_MAX_DEFAULT;
	return 0;
}

/* The site's error ends its session; nothing is sent back. */
static int on_error(struct ws_proto *s, uint32_t chn, int has_code, int64_t code,
    const char *msg, size_t n, char *err)
{
	(void)chn;
	(void)code;
	snprintf(err, WS_ERRLEN, "the site reports: %.*s", has_code ? (int)n : 0, msg);
	drop(s->clientData, (struct hpeer *)s, 0, err);
	return 0;
}

/* A site's REMOVE: it leaves the working set on that channel. */
static void on_remove(struct hub *h, struct hpeer *hp, uint32_t chn)
{
	struct chan *ch = find_chan(hp, chn);
	char err[WS_ERRLEN];

	if (!ch)
		return;
	notice(h, hp, ch, WS_NOTICE_LEFT);
	if (remember(h, hp, ch, 1, err))
		hlog(h, "%s: %s", hp->s.p.conn.name, err);
	ws_vclock_release(&ch->known);
	ws_vclock_release(&ch->had);
	*ch = hp->ch[--hp->nch];
	hlog(h, "%s: left channel %" PRIu32, hp->s.p.conn.name, chn);
}

/* A site's CLOCK: a progress report, and with SYNC a request for an ACK. */
static int on_clock(struct hub *h, struct hpeer *hp, const struct ws_frame *f,
    char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct chan *ch;
	int rc;

	if (f->flags & ~WS_CLOCK_SYNC)
		return 0; /* not a site's */
	if (!(ch = find_chan(hp, f->channel))) {
		/* A progress report may cross a refusal: only SYNC must not. */
		if (f->flags & WS_CLOCK_SYNC)
			drop(h, hp, WS_ECORRUPT, "clock on a channel without a "
			    "working set");
		return 0;
	}
	if ((rc = ws_vclock_decode_all(&clock, f->payload, f->len, err)) == 0 &&
	    (rc = report(ch, &clock, err)) == 0 && (f->flags & WS_CLOCK_SYNC) &&
	    (rc = ws_store_clock(ch->ws->st, &clock, err)) == 0)
		rc = ws_peer_send_clock(&hp->s.p, f->channel, WS_CLOCK_ACK, &clock);
	ws_vclock_release(&clock);
	return rc;
}

static int on_other(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct hub *h = s->clientData;
	struct hpeer *hp = (struct hpeer *)s;

	switch (f->type) {
	case WS_FRAME_REMOVE:
		on_remove(h, hp, f->channel);
		return 0;
	case WS_FRAME_BATCH:
		return on_batch(h, hp, f);
	case WS_FRAME_SCHEMA:
		return on_schema(h, hp, f);
	case WS_FRAME_CLOCK:
		return on_clock(h, hp, f, err);
	default:
		return WS_PROTO_UNKNOWN;
	}
}

/* The heartbeat's channels: every working set of the session. */
static size_t nchan(struct ws_proto *s)
{
	return ((struct hpeer *)s)->nch;
}

static int chan_clock(struct ws_proto *s, size_t i, uint32_t *chn,
    struct ws_vclock *vc, char *err)
{
	const struct chan *ch = &((struct hpeer *)s)->ch[i];

	*chn = ch->ch;
	return ws_store_clock(ch->ws->st, vc, err);
}

static const struct ws_proto_ops hub_ops = {
	.hello = on_hello,
	.add = on_add,
	.error = on_error,
	.frame = on_other,
	.nchan = nchan,
	.clock = chan_clock,
};

/* A frame from a site: a session's errors drop that session only. */
static int on_frame(struct ws_peer *p, const struct ws_frame *f, void *cd)
{
	struct hpeer *hp = (struct hpeer *)p;
	char err[WS_ERRLEN] = "";
	int rc;

	if (hp->dead || hp->closing)
		return 0;
	if ((rc = ws_proto_frame(&hp->s, f, err)) == WS_EBUSY)
		drop(cd, hp, 0, QUEUE_FULL);
	else if (rc)
		drop(cd, hp, rc, err[0] ? err : ws_strerror(rc));
	return 0;
}

/*
 * Heartbeat the sessions the hub has not written to for a while, and
 * drop those without a hello in time or silent for longer than the idle
 * timeout: dead peers are noticed without waiting for TCP.
 */
static void keepalive(struct hub *h)
{
	uint64_t now = ws_now_ms();
	char err[WS_ERRLEN];
	size_t i;

	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];

		if (hp->dead || hp->closing || !ws_proto_keepalive(&hp->s, now, err))
			continue;
		if (hp->s.expired)
			drop(h, hp, WS_EAGAIN, err);
		else
			drop(h, hp, 0, "cannot send a heartbeat");
	}
}

/*
 * Record how far each connected site of w has got, forget the sites not
 * seen for the retention time, and collect what every remaining one
 * holds; then tell every session of w the new horizon, before any batch
 * pruned to it.  A connected site that has not reported yet holds
 * collection back.
 */
static int collect_ws(struct hub *h, struct hws *w, char *err)
{
	struct ws_vclock horizon = WS_VCLOCK_INIT;
	long retain = h->o->retain_s < 0 ? WS_RETAIN_S_DEFAULT : h->o->retain_s;
	int64_t now = (int64_t)time(NULL);
	uint64_t dropped = 0;
	size_t i, k;
	int rc, any = 0, blocked = 0;

	if ((rc = ws_store_hub_begin(w->st, err)))
		return rc;
	if ((rc = ws_store_members_expire(w->st, now - retain, retain == 0, err)))
		goto out;
	for (i = 0; i < h->npeers; i++)
		for (k = 0; k < h->peers[i]->nch; k++) {
			struct chan *ch = &h->peers[i]->ch[k];

			if (ch->ws != w || h->peers[i]->dead)
				continue;
			if (!ch->has_known)
				blocked = 1;
			else if ((rc = remember(h, h->peers[i], ch, 0, err)))
				goto out;
		}
	if ((rc = ws_store_hub_commit(w->st, err)))
		goto out;
	if (blocked)
		goto out;
	/* The horizon: what the hub and every remembered site hold. */
	if ((rc = ws_store_clock(w->st, &horizon, err)))
		goto out;
	if ((rc = ws_store_members_meet(w->st, &horizon, &any, err)))
		goto out;
	/* Not beyond what a batch outside it has seen (store.h). */
	if (any && (rc = ws_store_gc_bound(w->st, &horizon, err)))
		goto out;
	if (!any || ws_vclock_reaches(&w->stable, &horizon))
		goto out;
	if ((rc = ws_store_gc(w->st, &horizon, &dropped, err)) ||
	    (rc = ws_store_stable(w->st, &w->stable, err)))
		goto out;
	if (dropped)
		hlog(h, "working set '%s': collected %" PRIu64 " change-log entries "
		    "every site holds", w->wsid, dropped);
	for (i = 0; i < h->npeers; i++)
		for (k = 0; k < h->peers[i]->nch; k++) {
			struct hpeer *hp = h->peers[i];

			if (hp->ch[k].ws == w && !hp->dead && !hp->closing &&
			    ws_peer_send_clock(&hp->s.p, hp->ch[k].ch, WS_CLOCK_STABLE,
			    &w->stable))
				drop(h, hp, 0, QUEUE_FULL);
		}
out:
	if (rc)
		ws_store_hub_rollback(w->st);
	ws_vclock_release(&horizon);
	return rc;
}

/* Consider collecting each working set, once a heartbeat interval. */
static void collect(struct hub *h)
{
	unsigned iv = h->o->heartbeat_ms ? h->o->heartbeat_ms : WS_HEARTBEAT_MS_DEFAULT;
	uint64_t now = ws_now_ms();
	char err[WS_ERRLEN];
	size_t i;

	for (i = 0; i < h->nws; i++) {
		if (now - h->ws[i]->gc_ms < iv)
			continue;
		h->ws[i]->gc_ms = now;
		err[0] = 0;
		if (collect_ws(h, h->ws[i], err))
			hlog(h, "working set '%s': cannot collect: %s", h->ws[i]->wsid, err);
	}
}

int ws_hub_forget(const char *datadir, const struct ws_siteid *site, size_t *n,
    char *err)
{
	struct dirent *e;
	char path[PATH_MAX];
	DIR *d;
	size_t len;
	int rc = 0, changed;

	*n = 0;
	if (!(d = opendir(datadir)))
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : WS_EIO, "cannot "
		    "read data directory '%s': %s", datadir, strerror(errno));
	while (rc == 0 && (e = readdir(d))) {
		len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".db") != 0 ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", datadir, e->d_name) >=
		    sizeof(path))
			continue;
		rc = ws_store_forget_site(path, site, &changed, err);
		*n += changed > 0;
	}
	closedir(d);
	return rc;
}

size_t ws_hub_default_max_sessions(void)
{
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return 4096;
	/* Each working set open takes three (database, WAL, shared memory),
	 * and the listeners a few: keep room for them. */
	n = rl.rlim_cur > 192 ? rl.rlim_cur - 128 : rl.rlim_cur / 2;
	return n ? (size_t)n : 1;
}

/* Say, at most once a second, that connections are being refused. */
static void refuse_session(struct hub *h, size_t max)
{
	uint64_t now = ws_now_ms();

	h->refused++;
	if (now - h->refused_ms < 1000)
		return;
	h->refused_ms = now;
	hlog(h, "refusing connections: %zu sessions already (--max-sessions); %lu "
	    "refused so far", max, h->refused);
}

/* A peer's fd is ready: read what it sent (the before hook writes). */
static void peer_io(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct hpeer *hp = cd;
	struct hub *h = hp->s.clientData;
	char why[WS_ERRLEN] = "";
	int rc;

	(void)l;
	if (hp->closing || hp->dead || fd != hp->s.p.conn.rfd || !(mask & WS_LOOP_READ))
		return;
	if ((rc = ws_peer_read(&hp->s.p, on_frame, h, why)))
		drop(h, hp, rc, why);
	else if (hp->s.p.eof)
		hp->dead = 1;
}

static int add_peer(struct hub *h, const struct ws_conn *c)
{
	struct hpeer *hp, **p;

	if (ws_fd_nonblock(c->rfd) || ws_fd_nonblock(c->wfd))
		return WS_EIO;
	if (!(hp = calloc(1, sizeof(*hp))))
		return WS_ENOMEM;
	if (!(p = realloc(h->peers, (h->npeers + 1) * sizeof(*p)))) {
		free(hp);
		return WS_ENOMEM;
	}
	h->peers = p;
	/* Until its hello (after the key exchange, on a keyed hub), a peer
	 * may send only frames a handshake needs: it holds next to nothing. */
	ws_proto_init(&hp->s, c, WS_PREAUTH_MAX_FRAME, h->o->queue_max ?
	    h->o->queue_max : QUEUE_MAX_DEFAULT, WS_ROLE_HUB, &h->id, &hub_ops, h);
	hp->s.heartbeat_ms = h->o->heartbeat_ms ? h->o->heartbeat_ms :
	    WS_HEARTBEAT_MS_DEFAULT;
	hp->s.idle_ms = h->o->idle_timeout_ms ? h->o->idle_timeout_ms :
	    WS_IDLE_TIMEOUT_MS_DEFAULT;
	hp->s.handshake_ms = h->o->handshake_ms ? h->o->handshake_ms :
	    WS_HANDSHAKE_MS_DEFAULT;
	hp->s.p.log = h->o->session_log;
	hp->o = h->o;
	if (h->o->key && ws_peer_secure(&hp->s.p, 0, h->o->key, check_key, hp)) {
		hp->s.p.conn.rfd = hp->s.p.conn.wfd = -1; /* the caller closes c */
		ws_proto_release(&hp->s);
		free(hp);
		return WS_ENOMEM;
	}
	/* Unix peers have no address: number the sessions instead. */
	h->sessions++;
	if (strcmp(c->name, "unix") == 0)
		snprintf(hp->s.p.conn.name, sizeof(hp->s.p.conn.name), "unix#%lu",
		    h->sessions);
	if (ws_loop_add_fd(h->loop, hp->s.p.conn.rfd, WS_LOOP_READ, peer_io, hp)) {
		hp->s.p.conn.rfd = hp->s.p.conn.wfd = -1; /* the caller closes c */
		ws_proto_release(&hp->s);
		free(hp);
		return WS_ENOMEM;
	}
	h->peers[h->npeers++] = hp;
	hlog(h, "%s: connected", hp->s.p.conn.name);
	return 0;
}

static void free_peer(struct hub *h, size_t i)
{
	struct hpeer *hp = h->peers[i];
	char err[WS_ERRLEN];
	size_t k;

	for (k = 0; k < hp->nch; k++) {
		notice(h, hp, &hp->ch[k], WS_NOTICE_LEFT);
		if (remember(h, hp, &hp->ch[k], 1, err))
			hlog(h, "%s: %s", hp->s.p.conn.name, err);
		ws_vclock_release(&hp->ch[k].known);
		ws_vclock_release(&hp->ch[k].had);
	}
	hlog(h, "%s: disconnected", hp->s.p.conn.name);
	ws_loop_del_fd(h->loop, hp->s.p.conn.rfd, WS_LOOP_READ | WS_LOOP_WRITE);
	ws_loop_del_fd(h->loop, hp->s.p.conn.wfd, WS_LOOP_READ | WS_LOOP_WRITE);
	ws_proto_release(&hp->s);
	free(hp->ch);
	free(hp);
	h->peers[i] = h->peers[--h->npeers];
}

/* A listening socket is ready: take the connections, up to the cap. */
static void on_accept(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct hub *h = cd;
	char why[WS_ERRLEN];
	struct ws_conn c;

	(void)l;
	(void)mask;
	while (ws_transport_accept(fd, &c, why) == 0) {
		if (h->npeers >= h->max_sessions) {
			/* Refused cleanly: the hub goes on. */
			refuse_session(h, h->max_sessions);
			ws_conn_close(&c);
		} else if (add_peer(h, &c)) {
			ws_conn_close(&c);
		}
	}
}

/*
 * Before each wait: write what is queued, end the sessions that are
 * over, heartbeat and collect, and wait for output room only where
 * output waits.
 */
static void before_wait(struct ws_loop *l, void *cd)
{
	struct hub *h = cd;
	char why[WS_ERRLEN];
	size_t i;

	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];

		pump(h, hp);
		if (ws_peer_flush(&hp->s.p, why)) {
			hlog(h, "%s: %s", hp->s.p.conn.name, why);
			hp->dead = 1;
		}
		if (hp->closing && !ws_peer_pending(&hp->s.p))
			hp->dead = 1;
	}
	keepalive(h);
	collect(h);
	for (i = h->npeers; i-- > 0;)
		if (h->peers[i]->dead)
			free_peer(h, i);
	if ((h->o->stop && *h->o->stop) || (h->o->use_stdio && h->had_peer &&
	    h->npeers == 0)) {
		ws_loop_stop(l);
		return;
	}
	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];
		int rfd = hp->s.p.conn.rfd, wfd = hp->s.p.conn.wfd;

		if (hp->closing)
			ws_loop_del_fd(l, rfd, WS_LOOP_READ);
		/* A channel behind waits for room too: pump() goes on then. */
		if (!ws_peer_pending(&hp->s.p) && !paced(hp))
			ws_loop_del_fd(l, wfd, WS_LOOP_WRITE);
		else if (ws_loop_add_fd(l, wfd, WS_LOOP_WRITE, peer_io, hp))
			hp->dead = 1;
	}
}

int ws_hub_run(const struct ws_hub_opts *o, char *err)
{
	char bound[WS_CONN_NAMELEN];
	const char **names = NULL;
	struct ws_conn c;
	struct hub h;
	size_t i;
	int rc = 0;

	memset(&h, 0, sizeof(h));
	h.o = o;
	h.err = err;
	h.max_sessions = o->max_sessions ? o->max_sessions :
	    ws_hub_default_max_sessions();
	ws_siteid_random(&h.id);
	for (i = 0; i < o->nlisten; i++)
		if ((rc = ws_transport_check_keys(o->listen[i], 1, o->key != NULL,
		    o->insecure, err)))
			return rc;
	if (!o->datadir || mkdir(o->datadir, 0777) < 0) {
		char buf[64];

		struct stat sb;

		if (!o->datadir || errno != EEXIST)
			return ws_error(err, o->datadir && errno == EACCES ? WS_EPERM :
			    WS_EIO, "cannot create data directory '%s': %s",
			    o->datadir ? o->datadir : "", ws_errno_text(errno, buf));
		/* There already: it must be a directory the hub can use. */
		if (stat(o->datadir, &sb) != 0 || !S_ISDIR(sb.st_mode))
			return ws_error(err, WS_ECONFIG, "data directory '%s' is not a "
			    "directory", o->datadir);
	}
	if ((rc = ws_loop_new(&h.loop, err)))
		goto out;
	/* Keepalive and collection run at least once a second. */
	ws_loop_set_max_wait(h.loop, 1000);
	ws_loop_set_before(h.loop, before_wait, &h);
	if (!(h.lfd = calloc(o->nlisten + 1, sizeof(*h.lfd))) ||
	    !(names = calloc(o->nlisten + 1, sizeof(*names)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < o->nlisten; i++) {
		if ((rc = ws_transport_listen_mode(o->listen[i], o->socket_mode,
		    &h.lfd[i], bound, err)))
			goto out;
		h.nlfd++;
		if (ws_fd_nonblock(h.lfd[i]) || !(names[i] = strdup(bound)) ||
		    ws_loop_add_fd(h.loop, h.lfd[i], WS_LOOP_READ, on_accept, &h)) {
			rc = WS_ENOMEM;
			goto out;
		}
	}
	if (o->use_stdio) {
		memset(&c, 0, sizeof(c));
		c.rfd = 0;
		c.wfd = 1;
		c.kind = WS_CONN_STDIO;
		snprintf(c.name, sizeof(c.name), "stdio");
		if ((rc = add_peer(&h, &c)))
			goto out;
		h.had_peer = 1;
	}
	if (o->ready)
		o->ready(o->log_cd, names, o->nlisten);
	rc = ws_loop_run(h.loop, err);
out:
	while (h.npeers)
		free_peer(&h, h.npeers - 1);
	ws_loop_free(h.loop);
	for (i = 0; i < h.nlfd; i++)
		close(h.lfd[i]);
	for (i = 0; names && i < o->nlisten; i++)
		free((char *)names[i]);
	for (i = 0; i < h.nws; i++) {
		ws_store_close(h.ws[i]->st);
		ws_vclock_release(&h.ws[i]->stable);
		free(h.ws[i]);
	}
	free(h.ws);
	free(h.peers);
	free(h.lfd);
	free(names);
	return rc;
}
