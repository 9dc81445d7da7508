/* SPDX-License-Identifier: MIT */
/*
 * hub.c - wsync-serve's event loop: sessions, working sets, catch-up,
 * forwarding.  See hub.h and session.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "wsync/delta.h"
#include "wsync/hub.h"
#include "wsync/session.h"
#include "wsync/store.h"

#define QUEUE_MAX_DEFAULT (64u << 20)

/* An open working set. */
struct hws {
	char wsid[WS_WSID_MAX + 1];
	struct ws_store *st;
};

/* A working set a session has on one of its channels. */
struct chan {
	uint32_t ch;
	struct hws *ws;
};

struct hpeer {
	struct ws_peer p;
	int hello;              /* its HELLO arrived */
	struct ws_siteid site;  /* the site id its HELLO gave */
	int closing;            /* flush what is queued, then close */
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
	unsigned long sessions;  /* sessions accepted so far */
	char *err;
};

#define hlog(h, ...) ws_log_printf((h)->o->log, (h)->o->log_cd, __VA_ARGS__)

/* End a session: log why, tell the peer (best effort), close after flush. */
static void drop(struct hub *h, struct hpeer *hp, int code, const char *why)
{
	hlog(h, "%s: %s", hp->p.conn.name, why);
	if (!hp->closing && !hp->dead && code &&
	    ws_peer_send_error(&hp->p, 0, code, why) == 0)
		hp->closing = 1;
	else
		hp->dead = 1;
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
static int get_ws(struct hub *h, const char *wsid, struct hws **out, char *err)
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
	if (!h->o->create && access(path, F_OK) != 0)
		return ws_error(err, WS_ENOTFOUND, "unknown working set '%s' (the hub "
		    "accepts new ones with --create)", wsid);
	if (!(w = calloc(1, sizeof(*w))))
		return WS_ENOMEM;
	snprintf(w->wsid, sizeof(w->wsid), "%s", wsid);
	if ((rc = ws_store_open(&w->st, path, wsid, WS_STORE_CREATE, err))) {
		free(w);
		return rc;
	}
	/* One sync a commit instead of a journal's four: the hub commits
	 * every batch before it forwards it.  Durable across kill -9. */
	sqlite3_exec(ws_store_db(w->st), "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
	if (!(p = realloc(h->ws, (h->nws + 1) * sizeof(*p)))) {
		ws_store_close(w->st);
		free(w);
		return WS_ENOMEM;
	}
	h->ws = p;
	h->ws[h->nws++] = w;
	*out = w;
	return 0;
}

/* The message for a session dropped because its queue overflowed. */
#define QUEUE_FULL "outgoing queue full: disconnected (it catches up when it " \
	"reconnects)"

/*
 * Queue a frame for every session but `from` that carries working set w,
 * each on its own channel; a session whose queue overflows is dropped.
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
			    ws_peer_send(&hp->p, type, 0, hp->ch[k].ch, p, n))
				drop(h, hp, 0, QUEUE_FULL);
	}
}

/* Tell the other sessions of w that hp's site joined or left it. */
static void notice(struct hub *h, struct hpeer *hp, struct hws *w, uint8_t kind)
{
	uint8_t pl[1 + WS_SITEID_LEN];

	pl[0] = kind;
	memcpy(pl + 1, hp->site.b, WS_SITEID_LEN);
	broadcast(h, hp, w, WS_FRAME_NOTICE, pl, sizeof(pl));
}

struct catchup {
	struct hpeer *hp;
	uint32_t ch;
	struct ws_buf enc;
};

static int send_batch(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct catchup *c = cd;
	int rc;

	(void)usn;
	c->enc.len = 0;
	if ((rc = ws_batch_encode(b, &c->enc)))
		return rc;
	return ws_peer_send(&c->hp->p, WS_FRAME_BATCH, 0, c->ch, c->enc.p, c->enc.len);
}

/* A site offers a working set on channel ch. */
static int on_add(struct hub *h, struct hpeer *hp, const struct ws_frame *f)
{
	struct ws_add a = {.clock = WS_VCLOCK_INIT}, reply = {.clock = WS_VCLOCK_INIT};
	struct catchup c = {hp, f->channel, WS_BUF_INIT};
	struct ws_buf pl = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	struct chan *ch, *nc;
	struct hws *w = NULL;
	int rc;

	if ((rc = ws_add_decode(&a, f->payload, f->len, err)))
		goto out;
	if (f->channel == 0) {
		rc = ws_error(err, WS_ECORRUPT, "add frame on channel 0");
		goto out;
	}
	if ((ch = find_chan(hp, f->channel)) && strcmp(ch->ws->wsid, a.wsid) == 0)
		goto out; /* already synced: ignored */
	if (ch) {
		rc = ws_error(err, WS_ECORRUPT, "channel %" PRIu32 " already carries "
		    "'%s'", f->channel, ch->ws->wsid);
		goto out;
	}
	if ((rc = get_ws(h, a.wsid, &w, err))) {
		/* Refuse this working set only; the session goes on. */
		hlog(h, "%s: %s", hp->p.conn.name, err);
		rc = ws_peer_send_error(&hp->p, f->channel, rc, err);
		goto out;
	}
	reply.has_guid = ws_store_guid(w->st, reply.guid);
	if (a.has_guid && reply.has_guid && memcmp(a.guid, reply.guid, 16) != 0) {
		snprintf(err, sizeof(err), "working set '%s': the site's dataset guid "
		    "differs from the hub's: different data, not synced", a.wsid);
		hlog(h, "%s: %s", hp->p.conn.name, err);
		rc = ws_peer_send_error(&hp->p, f->channel, WS_ECONFIG, err);
		goto out;
	}
	if (!reply.has_guid) {
		/* A new set adopts the site's guid, or gets a fresh one. */
		if ((rc = a.has_guid ? ws_store_set_guid(w->st, a.guid, err) :
		    ws_store_new_guid(w->st, err)))
			goto out;
		reply.has_guid = ws_store_guid(w->st, reply.guid);
	}
	snprintf(reply.wsid, sizeof(reply.wsid), "%s", a.wsid);
	if ((rc = ws_store_clock(w->st, &reply.clock, err)) ||
	    (rc = ws_add_encode(&reply, &pl)) ||
	    (rc = ws_peer_send(&hp->p, WS_FRAME_ADD, 0, f->channel, pl.p, pl.len)))
		goto out;
	/* Catch-up: what the site lacks, then the marker; live batches queue
	 * behind them, so none is lost and none comes first. */
	/* The bound is for live traffic: a catch-up may be larger. */
	hp->p.out_max = 0;
	rc = ws_store_changes_missing(w->st, &a.clock, send_batch, &c, err);
	hp->p.out_max = h->o->queue_max ? h->o->queue_max : QUEUE_MAX_DEFAULT;
	if (rc == WS_ERANGE) {
		rc = ws_peer_send_error(&hp->p, f->channel, WS_ERANGE, err);
		goto out;
	}
	if (rc || (rc = ws_peer_send_clock(&hp->p, f->channel, WS_CLOCK_CAUGHT_UP,
	    &reply.clock)))
		goto out;
	if (!(nc = realloc(hp->ch, (hp->nch + 1) * sizeof(*nc)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	hp->ch = nc;
	hp->ch[hp->nch].ch = f->channel;
	hp->ch[hp->nch++].ws = w;
	notice(h, hp, w, WS_NOTICE_JOINED);
	hlog(h, "%s: joined working set '%s' on channel %" PRIu32, hp->p.conn.name,
	    a.wsid, f->channel);
out:
	if (rc && rc != WS_EBUSY && err[0])
		drop(h, hp, rc, err);
	else if (rc == WS_EBUSY)
		drop(h, hp, 0, QUEUE_FULL);
	ws_vclock_release(&a.clock);
	ws_vclock_release(&reply.clock);
	ws_buf_release(&pl);
	ws_buf_release(&c.enc);
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
	if ((rc = ws_batch_decode(&b, f->payload, f->len, err)) ||
	    (rc = ws_store_adopt_tables(ch->ws->st, &b, err)) ||
	    (rc = ws_store_clock(ch->ws->st, &clock, err)))
		goto out;
	dup = b.has_dot && ws_vclock_get(&clock, &b.dot_site) >= b.dot_counter;
	if ((rc = ws_store_apply(ch->ws->st, &b, &applied, err)))
		goto out;
	if (!dup)
		broadcast(h, hp, ch->ws, WS_FRAME_BATCH, f->payload, f->len);
out:
	if (rc) {
		char why[WS_ERRLEN + WS_WSID_MAX + 32];

		snprintf(why, sizeof(why), "working set '%s': %s",
		    ch ? ch->ws->wsid : "?", err);
		drop(h, hp, rc, why);
	}
	ws_batch_release(&b);
	ws_vclock_release(&clock);
	return 0;
}

static int on_frame(struct ws_peer *p, const struct ws_frame *f, void *cd)
{
	struct hub *h = cd;
	struct hpeer *hp = (struct hpeer *)p;
	struct ws_hello hello = {0}, me = {WS_PROTOCOL_VERSION, WS_ROLE_HUB, h->id};
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_buf pl = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	struct chan *ch;
	int rc = 0;

	if (hp->dead || hp->closing)
		return 0;
	if (!hp->hello && f->type != WS_FRAME_HELLO) {
		drop(h, hp, WS_ECORRUPT, "the session must start with a hello frame");
		return 0;
	}
	switch (f->type) {
	case WS_FRAME_HELLO:
		if (hp->hello) {
			drop(h, hp, WS_ECORRUPT, "a second hello frame");
			break;
		}
		if ((rc = ws_hello_decode(&hello, f->payload, f->len, err))) {
			drop(h, hp, rc, err);
			rc = 0; /* dropped once is enough */
			break;
		}
		hp->hello = 1;
		hp->site = hello.site;
		if ((rc = ws_hello_encode(&me, &pl)) == 0)
			rc = ws_peer_send(p, WS_FRAME_HELLO, 0, 0, pl.p, pl.len);
		break;
	case WS_FRAME_ADD:
		rc = on_add(h, hp, f);
		break;
	case WS_FRAME_REMOVE:
		if ((ch = find_chan(hp, f->channel))) {
			notice(h, hp, ch->ws, WS_NOTICE_LEFT);
			*ch = hp->ch[--hp->nch];
			hlog(h, "%s: left channel %" PRIu32, p->conn.name, f->channel);
		}
		break;
	case WS_FRAME_BATCH:
		rc = on_batch(h, hp, f);
		break;
	case WS_FRAME_CLOCK:
		if (!(f->flags & WS_CLOCK_SYNC))
			break;
		if (!(ch = find_chan(hp, f->channel))) {
			drop(h, hp, WS_ECORRUPT, "clock on a channel without a working set");
			break;
		}
		if ((rc = ws_store_clock(ch->ws->st, &clock, err)) == 0)
			rc = ws_peer_send_clock(p, f->channel, WS_CLOCK_ACK, &clock);
		break;
	case WS_FRAME_HEARTBEAT:
		break;
	case WS_FRAME_ERROR: {
		struct ws_rd r;
		int64_t code;

		ws_rd_init(&r, f->payload, f->len);
		if (ws_rd_svarint(&r, &code))
			ws_rd_init(&r, f->payload, 0);
		snprintf(err, sizeof(err), "the site reports: %.*s",
		    (int)ws_rd_left(&r), (const char *)r.p);
		drop(h, hp, 0, err);
		break;
	}
	default:
		snprintf(err, sizeof(err), "unknown frame type %u", f->type);
		drop(h, hp, WS_EUNSUPP, err);
		break;
	}
	if (rc == WS_EBUSY)
		drop(h, hp, 0, QUEUE_FULL);
	else if (rc)
		drop(h, hp, rc, err[0] ? err : ws_strerror(rc));
	ws_buf_release(&pl);
	ws_vclock_release(&clock);
	return 0;
}

/*
 * Heartbeat the sessions the hub has not written to for a while, with the
 * clock of each working set they carry, and drop those silent for longer
 * than the idle timeout: dead peers are noticed without waiting for TCP.
 */
static void keepalive(struct hub *h)
{
	unsigned hb = h->o->heartbeat_ms ? h->o->heartbeat_ms : WS_HEARTBEAT_MS_DEFAULT;
	unsigned idle = h->o->idle_timeout_ms ? h->o->idle_timeout_ms :
	    WS_IDLE_TIMEOUT_MS_DEFAULT;
	uint64_t now = ws_now_ms();
	struct ws_vclock *clocks;
	uint32_t *chs;
	char err[WS_ERRLEN];
	size_t i, k;

	for (i = 0; i < h->npeers; i++) {
		struct hpeer *hp = h->peers[i];

		if (hp->dead || hp->closing)
			continue;
		if (now - hp->p.last_rx_ms > idle) {
			snprintf(err, sizeof(err), "silent for %u s: presumed gone",
			    idle / 1000);
			drop(h, hp, WS_EAGAIN, err);
			continue;
		}
		if (now - hp->p.last_tx_ms < hb || !hp->hello)
			continue;
		clocks = calloc(hp->nch + 1, sizeof(*clocks));
		chs = calloc(hp->nch + 1, sizeof(*chs));
		for (k = 0; clocks && chs && k < hp->nch; k++) {
			chs[k] = hp->ch[k].ch;
			if (ws_store_clock(hp->ch[k].ws->st, &clocks[k], err))
				break;
		}
		if (!clocks || !chs || k < hp->nch ||
		    ws_peer_send_heartbeat(&hp->p, chs, clocks, hp->nch))
			drop(h, hp, 0, "cannot send a heartbeat");
		for (k = 0; clocks && k < hp->nch; k++)
			ws_vclock_release(&clocks[k]);
		free(clocks);
		free(chs);
	}
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
	ws_peer_init(&hp->p, c, h->o->max_frame ? h->o->max_frame : WS_SESSION_MAX_FRAME,
	    h->o->queue_max ? h->o->queue_max :
	    QUEUE_MAX_DEFAULT);
	hp->p.log = h->o->session_log;
	/* Unix peers have no address: number the sessions instead. */
	h->sessions++;
	if (strcmp(c->name, "unix") == 0)
		snprintf(hp->p.conn.name, sizeof(hp->p.conn.name), "unix#%lu",
		    h->sessions);
	h->peers[h->npeers++] = hp;
	hlog(h, "%s: connected", hp->p.conn.name);
	return 0;
}

static void free_peer(struct hub *h, size_t i)
{
	struct hpeer *hp = h->peers[i];
	size_t k;

	for (k = 0; k < hp->nch; k++)
		notice(h, hp, hp->ch[k].ws, WS_NOTICE_LEFT);
	hlog(h, "%s: disconnected", hp->p.conn.name);
	ws_peer_release(&hp->p);
	free(hp->ch);
	free(hp);
	h->peers[i] = h->peers[--h->npeers];
}

int ws_hub_run(const struct ws_hub_opts *o, char *err)
{
	char bound[WS_CONN_NAMELEN], why[WS_ERRLEN];
	const char **names = NULL;
	struct pollfd *pfd = NULL;
	struct ws_conn c;
	struct hub h;
	size_t i, n, np, polled;
	int rc = 0, had_peer = 0;

	memset(&h, 0, sizeof(h));
	h.o = o;
	h.err = err;
	ws_siteid_random(&h.id);
	if (!o->datadir || mkdir(o->datadir, 0777) < 0) {
		char buf[64];

		if (!o->datadir || errno != EEXIST)
			return ws_error(err, o->datadir && errno == EACCES ? WS_EPERM :
			    WS_EIO, "cannot create data directory '%s': %s",
			    o->datadir ? o->datadir : "", ws_errno_text(errno, buf));
	}
	if (!(h.lfd = calloc(o->nlisten + 1, sizeof(*h.lfd))) ||
	    !(names = calloc(o->nlisten + 1, sizeof(*names)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < o->nlisten; i++) {
		if ((rc = ws_transport_listen(o->listen[i], &h.lfd[i], bound, err)))
			goto out;
		h.nlfd++;
		if (ws_fd_nonblock(h.lfd[i]) || !(names[i] = strdup(bound))) {
			rc = WS_ENOMEM;
			goto out;
		}
	}
	if (o->use_stdio) {
		memset(&c, 0, sizeof(c));
		c.rfd = 0;
		c.wfd = 1;
		snprintf(c.name, sizeof(c.name), "stdio");
		if ((rc = add_peer(&h, &c)))
			goto out;
		had_peer = 1;
	}
	if (o->ready)
		o->ready(o->log_cd, names, o->nlisten);
	while (!(o->stop && *o->stop)) {
		if (o->use_stdio && had_peer && h.npeers == 0)
			break;
		free(pfd);
		if (!(pfd = calloc(h.nlfd + 2 * h.npeers + 1, sizeof(*pfd)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		for (n = 0; n < h.nlfd; n++) {
			pfd[n].fd = h.lfd[n];
			pfd[n].events = POLLIN;
		}
		/* Two slots a peer: its read fd, and its write fd while output waits. */
		for (i = 0, np = n; i < h.npeers; i++) {
			struct hpeer *hp = h.peers[i];

			pfd[np].fd = hp->closing ? -1 : hp->p.conn.rfd;
			pfd[np++].events = POLLIN;
			pfd[np].fd = ws_peer_pending(&hp->p) ? hp->p.conn.wfd : -1;
			pfd[np++].events = POLLOUT;
		}
		polled = h.npeers; /* peers accepted below have no slots yet */
		if (poll(pfd, np, 1000) < 0) {
			if (errno == EINTR)
				continue;
			rc = ws_error(err, WS_EIO, "poll: %s", strerror(errno));
			goto out;
		}
		for (i = 0; i < h.nlfd; i++)
			if (pfd[i].revents & POLLIN) {
				while (ws_transport_accept(h.lfd[i], &c, why) == 0)
					if (add_peer(&h, &c))
						ws_conn_close(&c);
			}
		for (i = 0; i < polled; i++) {
			struct hpeer *hp = h.peers[i];
			short re = pfd[n + 2 * i].revents;

			if (!hp->closing && (re & (POLLIN | POLLHUP | POLLERR))) {
				why[0] = 0;
				if ((rc = ws_peer_read(&hp->p, on_frame, &h, why)))
					drop(&h, hp, rc, why);
				else if (hp->p.eof)
					hp->dead = 1;
			}
			if ((rc = ws_peer_flush(&hp->p, why))) {
				hlog(&h, "%s: %s", hp->p.conn.name, why);
				hp->dead = 1;
			}
			if (hp->closing && !ws_peer_pending(&hp->p))
				hp->dead = 1;
		}
		rc = 0;
		keepalive(&h);
		for (i = h.npeers; i-- > 0;)
			if (h.peers[i]->dead)
				free_peer(&h, i);
	}
out:
	while (h.npeers)
		free_peer(&h, h.npeers - 1);
	for (i = 0; i < h.nlfd; i++)
		close(h.lfd[i]);
	for (i = 0; names && i < o->nlisten; i++)
		free((char *)names[i]);
	for (i = 0; i < h.nws; i++) {
		ws_store_close(h.ws[i]->st);
		free(h.ws[i]);
	}
	free(h.ws);
	free(h.peers);
	free(h.lfd);
	free(names);
	free(pfd);
	return rc;
}
