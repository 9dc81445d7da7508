/* SPDX-License-Identifier: MIT */
/*
 * proto.c - the protocol that both ends of a session speak alike: the
 * hello exchange and its rule (hello first), ADD's decoding, the ERROR
 * payload, heartbeats of an idle session and the timeouts.  The hub and
 * the site (hub.c, site.c) give what differs through struct
 * ws_proto_ops.  See session.h and wsync-protocol(5).
 *
 * Messages name the peer by role: a hub's speak of the site by its
 * address (the caller prefixes it), a site's of "the hub".
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "wsync/delta.h"
#include "wsync/schema.h"
#include "wsync/session.h"

void ws_proto_init(struct ws_proto *s, const struct ws_conn *conn, size_t max_frame,
    size_t out_max, unsigned role, const struct ws_siteid *id,
    const struct ws_proto_ops *ops, void *clientData)
{
	memset(s, 0, sizeof(*s));
	ws_peer_init(&s->p, conn, max_frame, out_max);
	ws_buf_init(&s->enc);
	s->role = role;
	s->id = *id;
	s->ops = ops;
	s->clientData = clientData;
	s->since_ms = s->p.last_rx_ms;
}

void ws_proto_release(struct ws_proto *s)
{
	ws_peer_release(&s->p);
	ws_buf_release(&s->enc);
}

/* Queue this side's hello. */
static int say_hello(struct ws_proto *s)
{
	struct ws_hello me = {WS_PROTOCOL_VERSION, s->role, s->id};
	int rc;

	s->enc.len = 0;
	if ((rc = ws_hello_encode(&me, &s->enc)) == 0 &&
	    (rc = ws_peer_send(&s->p, WS_FRAME_HELLO, 0, 0, s->enc.p, s->enc.len)) == 0)
		s->said_hello = 1;
	return rc;
}

int ws_proto_start(struct ws_proto *s)
{
	return s->role == WS_ROLE_SITE ? say_hello(s) : 0;
}

static int on_hello(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct ws_hello h = {0};
	int rc;

	if (s->hello)
		return ws_error(err, WS_ECORRUPT, "a second hello frame");
	if ((rc = ws_hello_decode(&h, f->payload, f->len, err)))
		return rc;
	s->hello = 1;
	s->peer_site = h.site;
	if (s->ops->hello && (rc = s->ops->hello(s, &h, err)))
		return rc;
	return s->said_hello ? 0 : say_hello(s);
}

static int on_add(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct ws_add a = {.clock = WS_VCLOCK_INIT};
	int rc;

	if (f->channel == 0)
		return ws_error(err, WS_ECORRUPT, "add frame on channel 0");
	if ((rc = ws_add_decode(&a, f->payload, f->len, err)) == 0)
		rc = s->ops->add(s, f->channel, &a, err);
	ws_vclock_release(&a.clock);
	return rc;
}

static int on_error(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	struct ws_rd r;
	int64_t code = 0;
	int has_code;

	ws_rd_init(&r, f->payload, f->len);
	has_code = ws_rd_svarint(&r, &code) == 0;
	return s->ops->error(s, f->channel, has_code, code, (const char *)r.p,
	    ws_rd_left(&r), err);
}

int ws_proto_frame(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	int rc;

	/* The initiator may be refused before any hello; the responder's
	 * peer starts with one. */
	if (!s->hello && f->type != WS_FRAME_HELLO &&
	    !(f->type == WS_FRAME_ERROR && s->role == WS_ROLE_SITE))
		return s->role == WS_ROLE_HUB ?
		    ws_error(err, WS_ECORRUPT, "the session must start with a hello frame") :
		    ws_error(err, WS_ECORRUPT, "the hub did not start with hello");
	if (s->ops->channel && (rc = s->ops->channel(s, f, err)))
		return rc > 0 ? 0 : rc;
	switch (f->type) {
	case WS_FRAME_HELLO:
		return on_hello(s, f, err);
	case WS_FRAME_ADD:
		return on_add(s, f, err);
	case WS_FRAME_ERROR:
		return on_error(s, f, err);
	case WS_FRAME_HEARTBEAT:
		return 0;
	default:
		if ((rc = s->ops->frame(s, f, err)) != WS_PROTO_UNKNOWN)
			return rc;
		return s->role == WS_ROLE_HUB ?
		    ws_error(err, WS_EUNSUPP, "unknown frame type %u", f->type) :
		    ws_error(err, WS_EUNSUPP, "unknown frame type %u from the hub",
		    f->type);
	}
}

/* Queue a HEARTBEAT and each channel's clock. */
static int heartbeat(struct ws_proto *s, char *err)
{
	size_t i, k = 0, max = s->ops->nchan(s);
	struct ws_vclock *clocks;
	uint32_t *chs;
	int rc = 0;

	if (!(clocks = calloc(max + 1, sizeof(*clocks))) ||
	    !(chs = calloc(max + 1, sizeof(*chs)))) {
		free(clocks);
		return WS_ENOMEM;
	}
	for (i = 0; rc == 0 && i < max; i++)
		if ((rc = s->ops->clock(s, i, &chs[k], &clocks[k], err)) == 0)
			k++;
		else if (rc == 1)
			rc = 0;
	if (rc == 0)
		rc = ws_peer_send_heartbeat(&s->p, chs, clocks, k);
	for (i = 0; i <= max; i++)
		ws_vclock_release(&clocks[i]);
	free(clocks);
	free(chs);
	return rc;
}

int ws_proto_keepalive(struct ws_proto *s, uint64_t now, char *err)
{
	if (!s->hello && s->handshake_ms && now - s->since_ms > s->handshake_ms) {
		s->expired = 1;
		return ws_error(err, WS_EAGAIN, "no hello within %u s: dropped",
		    s->handshake_ms / 1000);
	}
	if (s->idle_ms && now - s->p.last_rx_ms > s->idle_ms) {
		s->expired = 1;
		return s->role == WS_ROLE_HUB ?
		    ws_error(err, WS_EAGAIN, "silent for %u s: presumed gone",
		    s->idle_ms / 1000) :
		    ws_error(err, WS_EAGAIN, "the hub was silent for %u seconds",
		    s->idle_ms / 1000);
	}
	/* A site heartbeats during its catch-up too: a long one stays alive. */
	if (!s->said_hello || !s->heartbeat_ms || now - s->p.last_tx_ms < s->heartbeat_ms)
		return 0;
	return heartbeat(s, err);
}

int ws_proto_send_batch(struct ws_proto *s, uint32_t ch, const struct ws_batch *b)
{
	int rc;

	s->enc.len = 0;
	if ((rc = ws_batch_encode(b, &s->enc)))
		return rc;
	return ws_peer_send(&s->p, WS_FRAME_BATCH, 0, ch, s->enc.p, s->enc.len);
}

int ws_proto_send_schema(struct ws_proto *s, uint32_t ch, const struct ws_schema *sc)
{
	int rc;

	s->enc.len = 0;
	if ((rc = ws_schema_encode(sc, &s->enc)))
		return rc;
	return ws_peer_send(&s->p, WS_FRAME_SCHEMA, 0, ch, s->enc.p, s->enc.len);
}
