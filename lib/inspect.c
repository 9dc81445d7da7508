/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - the views of wsync-inspect (inspect.h): a timeline, JSON
 * lines, a binary stream, statistics and an integrity check of delta
 * streams and session logs, and a summary of a working-set database.
 * This file holds the run, the sessions and the handling of one frame;
 * the helpers all the parts share are in inspect-text.c, and
 * inspect-int.h lists the files of the others.
 *
 * Reading.  Every input goes through one "sink": bytes are appended to a
 * window (a file's read(2) goes straight into it; libcurl's callback
 * copies), the kind is detected from the first bytes, and then:
 *   - binary streams are cut into frames here, with ws_frame_parse() on
 *     the window, so that the byte offset of any damage is known and
 *     --salvage can scan forward from it for the next preamble or frame
 *     of a known type whose checksum holds;
 *   - JSON lines go through struct ws_reader (stream.h), which resumes
 *     after a bad line with --salvage;
 *   - an SQLite file is shown by the database view instead.
 *
 * Sessions.  Each frame is unwrapped from its log record (if any) and
 * updates the state of its session, keyed by (peer, direction): HELLO
 * resets it and names the sender's site, ADD maps a channel to a working
 * set and gives the sender's clock, CLOCK gives the sender's clock, and
 * BATCH gives dots.  SCHEMA frames are decoded (--check finds a bad one)
 * and shown, but change no session state.  --check compares each clock with the previous one
 * of the same session and working set (no coordinate may go back), and
 * each batch's dot with the previous dot of the same origin site (no
 * repeat, no gap; the first one must follow the clock the receiver
 * announced in its ADD, or the horizon of a full copy).  A STABLE clock
 * is the hub's collected horizon, compared only with the horizon before
 * it; the batches of a full copy (STABLE|SNAPSHOT, up to the next clock)
 * carry no dots of their own and are not checked.  Batch clocks are not
 * compared, so the entries a hub prunes from them do not matter.
 */
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "inspect-int.h"

/* --- sessions -------------------------------------------------------------- */

static void sess_reset(struct sess *s)
{
	size_t i;

	for (i = 0; i < s->nws; i++) {
		ws_vclock_release(&s->ws[i].clock);
		ws_vclock_release(&s->ws[i].dots);
		ws_vclock_release(&s->ws[i].adv);
		ws_vclock_release(&s->ws[i].stable);
		ws_vclock_release(&s->ws[i].snap);
	}
	free(s->ws);
	free(s->ch);
	s->ws = NULL;
	s->ch = NULL;
	s->nws = s->nch = 0;
	s->has_site = 0;
}

/* The state for wsid in s, created if missing; NULL when out of memory. */
static struct wsstate *sess_ws(struct sess *s, const char *wsid, size_t *index)
{
	struct wsstate *p;
	size_t i;

	for (i = 0; i < s->nws; i++)
		if (strcmp(s->ws[i].wsid, wsid) == 0)
			goto found;
	if (!(p = realloc(s->ws, (s->nws + 1) * sizeof(*p))))
		return NULL;
	s->ws = p;
	memset(&p[i], 0, sizeof(*p));
	snprintf(p[i].wsid, sizeof(p[i].wsid), "%s", wsid);
	s->nws++;
found:
	if (index)
		*index = i;
	return &s->ws[i];
}

static struct wsstate *sess_chan(struct sess *s, uint32_t ch)
{
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < s->nch; i++)
		if (s->ch[i].ch == ch)
			return &s->ws[s->ch[i].ws];
	return NULL;
}

static int sess_map(struct sess *s, uint32_t ch, size_t ws)
{
	struct chmap *p;
	size_t i;

	for (i = 0; i < s->nch; i++)
		if (s->ch[i].ch == ch) {
			s->ch[i].ws = ws;
			return 0;
		}
	if (!(p = realloc(s->ch, (s->nch + 1) * sizeof(*p))))
		return WS_ENOMEM;
	s->ch = p;
	p[s->nch].ch = ch;
	p[s->nch].ws = ws;
	s->nch++;
	return 0;
}

/* --- the inspector ----------------------------------------------------------- */

static int maybe_flush(struct insp *x)
{
	return x->out.len >= OUT_FLUSH ? insp_flush(x) : 0;
}

static struct sess *sess_get(struct insp *x, const char *peer, size_t peerlen,
    unsigned dir)
{
	uint64_t h;
	struct sess **b, *s;

	if (dir == DIR_NONE)
		return &x->plain;
	h = insp_fnv(insp_fnv(FNV0, peer, peerlen), &dir, sizeof(dir));
	b = &x->buckets[h % SESS_BUCKETS];
	for (s = *b; s; s = s->next)
		if (s->dir == dir && s->peerlen == peerlen &&
		    memcmp(s->peer, peer, peerlen) == 0)
			return s;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	memcpy(s->peer, peer, peerlen);
	s->peerlen = peerlen;
	s->dir = dir;
	s->next = *b;
	*b = s;
	return s;
}

static struct sess *sess_other(struct insp *x, const struct rec *r)
{
	if (r->dir == DIR_NONE)
		return NULL;
	return sess_get(x, r->peer, r->peerlen, r->dir == WS_LOG_IN ? WS_LOG_OUT :
	    WS_LOG_IN);
}

/* Decode the payload of r->f.  WS_ECORRUPT with why on a bad one. */
static int decode(struct insp *x, const struct rec *r, struct dec *d, char *why)
{
	const struct ws_frame *f = &r->f;
	struct ws_rd rd;
	char e[WS_ERRLEN] = "";
	int rc = 0;

	memset(d, 0, sizeof(*d));
	switch (f->type) {
	case WS_FRAME_HELLO:
		rc = ws_hello_decode(&d->hello, f->payload, f->len, e);
		if (rc == WS_EVERSION)
			return 0; /* another protocol version: shown, not followed */
		if (rc)
			return ws_error(why, WS_ECORRUPT, "bad hello frame");
		d->hello_ok = 1;
		break;
	case WS_FRAME_ADD:
		if ((rc = ws_add_decode(&x->add, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad add frame");
		break;
	case WS_FRAME_CLOCK:
		if ((rc = ws_vclock_decode_all(&x->vc, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad clock frame: %s", e);
		break;
	case WS_FRAME_BATCH:
		if (!x->need_batch)
			break;
		if ((rc = ws_batch_decode(&x->b, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad batch: %s", e);
		break;
	case WS_FRAME_SCHEMA:
		/* Another record format: shown, as a HELLO of another protocol
		 * version is, and not followed. */
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_varint(&rd, &d->schema_fmt) == 0 &&
		    d->schema_fmt != WS_SCHEMA_FORMAT)
			break;
		rc = ws_schema_decode(&x->sc, f->payload, f->len, e);
		if (rc)  /* e says "schema record: ..." */
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT, "%s",
			    e[0] ? e : "bad schema record");
		d->schema_ok = 1;
		break;
	case WS_FRAME_NOTICE:
		if (f->len != 1 + WS_SITEID_LEN || (f->payload[0] != WS_NOTICE_JOINED &&
		    f->payload[0] != WS_NOTICE_LEFT))
			return ws_error(why, WS_ECORRUPT, "bad notice frame");
		d->notice = f->payload[0];
		memcpy(d->notice_site.b, f->payload + 1, WS_SITEID_LEN);
		break;
	case WS_FRAME_ERROR:
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_svarint(&rd, &d->code) || d->code < INT32_MIN ||
		    d->code > INT32_MAX || !ws_utf8_valid(rd.p, ws_rd_left(&rd)))
			return ws_error(why, WS_ECORRUPT, "bad error frame payload");
		d->msg = (const char *)rd.p;
		d->msglen = ws_rd_left(&rd);
		break;
	case WS_FRAME_HEARTBEAT:
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_varint(&rd, &d->hb) || ws_rd_left(&rd) || d->hb > INT64_MAX)
			return ws_error(why, WS_ECORRUPT, "bad heartbeat frame payload");
		break;
	case WS_FRAME_LOG:
		return ws_error(why, WS_ECORRUPT, "a log record inside a log record");
	default:
		break;
	}
	d->ok = 1;
	return 0;
}

/* Update the session state from a decoded frame; NULL-safe on w. */
static int follow_session(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d, struct wsstate **wp)
{
	struct wsstate *w = NULL;
	size_t wi;
	int rc = 0;

	switch (r->f.type) {
	case WS_FRAME_HELLO:
		sess_reset(s);
		if (d->hello_ok) {
			s->has_site = 1;
			s->site = d->hello.site;
		}
		break;
	case WS_FRAME_ADD:
		if (!(w = sess_ws(s, x->add.wsid, &wi)) || sess_map(s, r->f.channel, wi))
			return WS_ENOMEM;
		if (x->o->mode == WS_INSPECT_CHECK && (rc = insp_check_clock(x, r, w,
		    &x->add.clock)))
			return rc;
		if ((rc = ws_vclock_copy(&w->adv, &x->add.clock)))
			return rc;
		w->has_adv = 1;
		break;
	default:
		if (r->f.channel == 0)
			break;
		w = sess_chan(s, r->f.channel);
		if (!w) {
			/* Only the other side's ADD may have been logged. */
			struct wsstate *o = sess_chan(sess_other(x, r), r->f.channel);

			if (o && (!(w = sess_ws(s, o->wsid, &wi)) ||
			    sess_map(s, r->f.channel, wi)))
				return WS_ENOMEM;
		}
		if (!w || x->o->mode != WS_INSPECT_CHECK)
			break;
		if (r->f.type == WS_FRAME_CLOCK) {
			w->copy = 0; /* any clock frame ends a full copy */
			if (r->f.flags & WS_CLOCK_STABLE)
				rc = insp_check_stable(x, r, w, &x->vc,
				    r->f.flags & WS_CLOCK_SNAPSHOT);
			else
				rc = insp_check_clock(x, r, w, &x->vc);
		} else if (r->f.type == WS_FRAME_BATCH && !w->copy) {
			/* A full copy's batches carry no dot of their own: their
			 * changes name the hub's copy, or a conflict's loser. */
			struct sess *o = sess_other(x, r);

			rc = insp_check_batch(x, r, w, o ? sess_chan(o, r->f.channel) : NULL);
		}
		break;
	}
	*wp = w;
	return rc;
}

static int hex_prefix(const struct ws_siteid *s, const char *prefix)
{
	char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(s, hex);
	return strncmp(hex, prefix, strlen(prefix)) == 0;
}

/* Does the frame carry, or travel on a session with, a matching site? */
static int site_matches(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d)
{
	const char *p = x->o->filter.site;
	struct sess *remote = r->dir == DIR_NONE ? s :
	    sess_get(x, r->peer, r->peerlen, WS_LOG_IN);
	size_t i;

	if (remote && remote->has_site && hex_prefix(&remote->site, p))
		return 1;
	switch (r->f.type) {
	case WS_FRAME_HELLO:
		return d->hello_ok && hex_prefix(&d->hello.site, p);
	case WS_FRAME_NOTICE:
		return hex_prefix(&d->notice_site, p);
	case WS_FRAME_BATCH:
		if (!x->need_batch)
			return 0;
		if (x->b.has_dot && hex_prefix(&x->b.dot_site, p))
			return 1;
		for (i = 0; i < x->b.nsites; i++)
			if (hex_prefix(&x->b.sites[i], p))
				return 1;
		return 0;
	default:
		return 0;
	}
}

static int shown(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d, const char *wsid)
{
	const struct ws_inspect_filter *F = &x->o->filter;

	if (F->has_types && !(F->types[r->f.type / 8] & (1u << (r->f.type % 8))))
		return 0;
	if (F->since_us || F->until_us != WS_INSPECT_NO_TIME) {
		if (!r->has_time || r->time < F->since_us || r->time > F->until_us)
			return 0;
	}
	if (F->wsid && (!wsid || strcmp(wsid, F->wsid) != 0))
		return 0;
	if (F->site && !site_matches(x, r, s, d))
		return 0;
	return 1;
}

/* --- one frame ---------------------------------------------------------------- */

/* Damage inside one intact frame (its payload): skip it or stop. */
static int frame_damage(struct insp *x, int rc, const char *why)
{
	char pos[64];

	if (rc == WS_ENOMEM)
		return rc;
	if (!(x->o->flags & WS_INSPECT_SALVAGE))
		return ws_error(x->err, rc, "'%s': %s: %s", x->sk->name, insp_where(x, pos), why);
	x->damages++;
	insp_warn(x, "'%s': %s: %s; frame skipped", x->sk->name, insp_where(x, pos), why);
	return 0;
}

/* Handle one frame (outer: as read, maybe a log record) of `bytes` bytes. */
static int on_frame(struct insp *x, const struct ws_frame *outer, size_t bytes)
{
	struct ws_log_record lr;
	char why[WS_ERRLEN] = "";
	struct rec r;
	struct dec d;
	struct sess *s;
	struct wsstate *w = NULL;
	int rc;

	x->frames++;
	x->bytes += bytes;
	x->sk->frames++;
	x->sk->bytes += bytes;
	if (!x->need_state) {
		if (x->o->mode == WS_INSPECT_JSON) {
			if ((rc = ws_json_put_frame(outer, &x->out, why)))
				return frame_damage(x, rc, why);
		} else if ((rc = ws_frame_put(&x->out, outer->type, outer->flags,
		    outer->channel, outer->payload, outer->len))) {
			return rc;
		}
		return maybe_flush(x);
	}
	memset(&r, 0, sizeof(r));
	r.bytes = bytes;
	if (outer->type == WS_FRAME_LOG) {
		if (ws_log_record_decode(&lr, outer->payload, outer->len) ||
		    lr.time_us > INT64_MAX ||
		    !ws_utf8_valid((const uint8_t *)lr.peer, lr.peerlen))
			return frame_damage(x, WS_ECORRUPT, "bad log record");
		r.has_time = 1;
		r.time = lr.time_us;
		r.dir = lr.dir;
		r.peer = lr.peer;
		r.peerlen = lr.peerlen;
		r.f = lr.frame;
	} else {
		r.dir = DIR_NONE;
		r.peer = "";
		r.f = *outer;
	}
	if ((rc = decode(x, &r, &d, why)))
		return frame_damage(x, rc, why);
	if (!(s = sess_get(x, r.peer, r.peerlen, r.dir)))
		return WS_ENOMEM;
	if ((rc = follow_session(x, &r, s, &d, &w)))
		return rc;
	if (!shown(x, &r, s, &d, w ? w->wsid : NULL))
		return 0;
	switch (x->o->mode) {
	case WS_INSPECT_TIMELINE:
		rc = insp_put_line(x, &r, &d, w ? w->wsid : NULL);
		break;
	case WS_INSPECT_JSON:
		if ((rc = ws_json_put_frame(outer, &x->out, why)))
			return frame_damage(x, rc, why);
		break;
	case WS_INSPECT_ENCODE:
		rc = ws_frame_put(&x->out, outer->type, outer->flags, outer->channel,
		    outer->payload, outer->len);
		break;
	case WS_INSPECT_STATS:
		rc = insp_stats_frame(x, &r, s, w ? w->wsid : NULL);
		break;
	default:
		break;
	}
	return rc ? rc : maybe_flush(x);
}

/* --- the run ------------------------------------------------------------------ */

static void insp_release(struct insp *x)
{
	size_t i;
	struct sess *s, *n;

	for (i = 0; i < SESS_BUCKETS; i++)
		for (s = x->buckets[i]; s; s = n) {
			n = s->next;
			sess_reset(s);
			free(s);
		}
	sess_reset(&x->plain);
	ws_batch_release(&x->b);
	ws_vclock_release(&x->vc);
	ws_vclock_release(&x->add.clock);
	ws_schema_release(&x->sc);
	ws_buf_release(&x->tmp);
	ws_buf_release(&x->out);
	insp_stats_release(&x->st);
}

int ws_inspect_run(const struct ws_inspect_opts *o, const char *const *inputs,
    size_t n, char *err)
{
	static const char *const stdin_only[] = {"-"};
	const struct ws_inspect_filter *F = &o->filter;
	struct insp *x;
	struct sink k;
	char tmp[WS_ERRLEN];
	size_t i;
	int rc = 0, wrc, curl = 0, summary = 0;

	if (o->mode < WS_INSPECT_TIMELINE || o->mode > WS_INSPECT_CHECK)
		return ws_error(err, WS_EINVAL, "bad inspect mode");
	if (n == 0) {
		inputs = stdin_only;
		n = 1;
	}
	for (i = 0; i < n; i++)
		curl |= ws_inspect_is_url(inputs[i]);
	if ((o->flags & WS_INSPECT_FOLLOW) && ws_inspect_is_url(inputs[n - 1]))
		return ws_error(err, WS_EINVAL, "--follow needs a file, not a URL");
	if (!(x = calloc(1, sizeof(*x))))
		return WS_ENOMEM;
	x->o = o;
	x->err = err;
	x->on_frame = on_frame;
	x->need_state = o->mode == WS_INSPECT_TIMELINE || o->mode == WS_INSPECT_STATS ||
	    o->mode == WS_INSPECT_CHECK || F->wsid || F->site || F->has_types ||
	    F->since_us || F->until_us != WS_INSPECT_NO_TIME;
	x->need_batch = o->mode == WS_INSPECT_TIMELINE || o->mode == WS_INSPECT_STATS ||
	    o->mode == WS_INSPECT_CHECK || F->site;
	ws_batch_init(&x->b);
	if (curl && (rc = ws_http_global_init(err)))
		goto out;
	if (o->mode == WS_INSPECT_ENCODE && (rc = ws_frame_put_preamble(&x->out)))
		goto out;
	for (i = 0; i < n && rc == 0; i++) {
		unsigned long problems = x->problems, damages = x->damages;

		insp_sink_init(&k, inputs[i], o->max);
		x->sk = &k;
		x->st.inputs++;
		if (ws_inspect_is_url(inputs[i]))
			rc = insp_run_url(x, &k);
		else
			rc = insp_run_file(x, &k, (o->flags & WS_INSPECT_FOLLOW) && i == n - 1);
		if (!rc && o->mode == WS_INSPECT_CHECK && k.kind != K_DATABASE) {
			unsigned long bad = x->problems - problems + x->damages - damages;

			if ((rc = ws_escape_append(&x->out, k.name, strlen(k.name))))
				;
			else if (bad)
				rc = ws_buf_printf(&x->out, ": %lu problem%s, %" PRIu64 " frames, %"
				    PRIu64 " bytes\n", bad, bad == 1 ? "" : "s",
				    k.frames, k.base + k.w.len);
			else
				rc = ws_buf_printf(&x->out, ": ok, %" PRIu64 " frames, %"
				    PRIu64 " bytes\n", k.frames, k.base + k.w.len);
		}
		insp_sink_release(&k);
		x->sk = NULL;
		if (!rc)
			rc = maybe_flush(x);
		if (o->stop && *o->stop)
			break;
	}
	if (!rc && o->mode == WS_INSPECT_STATS)
		rc = insp_put_stats(x);
	if (!rc && (x->problems || x->damages)) {
		summary = 1;
		if (!x->problems)
			rc = ws_error(err, WS_ECORRUPT, "%lu damaged range%s skipped",
			    x->damages, x->damages == 1 ? "" : "s");
		else if (!x->damages)
			rc = ws_error(err, WS_ECORRUPT, "%lu problem%s found",
			    x->problems, x->problems == 1 ? "" : "s");
		else
			rc = ws_error(err, WS_ECORRUPT, "%lu damaged range%s skipped, "
			    "%lu problem%s found", x->damages, x->damages == 1 ? "" : "s",
			    x->problems, x->problems == 1 ? "" : "s");
	}
out:
	/* What came before any damage is still written. */
	if ((wrc = insp_flush_to(x, tmp)) && (rc == 0 || summary)) {
		rc = ws_error(err, wrc, "%s", tmp);
	}
	if (rc && err && !*err)
		ws_error(err, rc, "%s", ws_strerror(rc));
	insp_release(x);
	free(x);
	return rc;
}
