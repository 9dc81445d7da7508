/* SPDX-License-Identifier: MIT */
/*
 * test_session.c - the session and protocol layers (session.h) over a
 * real socket pair: a site and a hub exchange hellos, an ADD reaches the
 * hub's callback, the hello-first rule and unknown types are refused,
 * and an idle session heartbeats and then times out.
 */
#include <sys/socket.h>

#include "harness.h"
#include "wsync/wsync.h"

struct seen {
	int hellos, adds, errors, others;
	char wsid[WS_WSID_MAX + 1];
};

static int on_hello(struct ws_proto *s, const struct ws_hello *h, char *err)
{
	(void)h;
	(void)err;
	((struct seen *)s->clientData)->hellos++;
	return 0;
}

static int on_add(struct ws_proto *s, uint32_t ch, struct ws_add *a, char *err)
{
	struct seen *n = s->clientData;

	(void)ch;
	(void)err;
	n->adds++;
	snprintf(n->wsid, sizeof(n->wsid), "%s", a->wsid);
	return 0;
}

static int on_error(struct ws_proto *s, uint32_t ch, int has_code, int64_t code,
    const char *msg, size_t len, char *err)
{
	(void)ch;
	(void)has_code;
	(void)code;
	(void)msg;
	(void)len;
	(void)err;
	((struct seen *)s->clientData)->errors++;
	return 0;
}

static int on_other(struct ws_proto *s, const struct ws_frame *f, char *err)
{
	(void)err;
	if (f->type != WS_FRAME_CLOCK)
		return WS_PROTO_UNKNOWN;
	((struct seen *)s->clientData)->others++;
	return 0;
}

static size_t nchan(struct ws_proto *s)
{
	(void)s;
	return 1;
}

static int one_clock(struct ws_proto *s, size_t i, uint32_t *ch, struct ws_vclock *vc,
    char *err)
{
	(void)s;
	(void)i;
	(void)vc;
	(void)err;
	*ch = 1;
	return 0;
}

static const struct ws_proto_ops ops = {
	.hello = on_hello, .add = on_add, .error = on_error, .frame = on_other,
	.nchan = nchan, .clock = one_clock,
};

static int take(struct ws_peer *p, const struct ws_frame *f, void *cd)
{
	return ws_proto_frame((struct ws_proto *)p, f, cd);
}

/* Write what from queued, read it at to; to's protocol errors back. */
static int deliver(struct ws_proto *from, struct ws_proto *to, char *err)
{
	char e2[WS_ERRLEN];

	if (ws_peer_flush(&from->p, e2))
		return WS_EIO;
	return ws_peer_read(&to->p, take, err, e2);
}

static void pair(struct ws_proto *site, struct ws_proto *hub, struct seen *ss,
    struct seen *hs)
{
	struct ws_conn a = {-1, -1, 0, WS_CONN_UNIX, "site"}, b = a;
	struct ws_siteid id1 = {{1}}, id2 = {{2}};
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	a.rfd = a.wfd = sv[0];
	b.rfd = b.wfd = sv[1];
	snprintf(b.name, sizeof(b.name), "hub");
	ws_proto_init(site, &a, 1u << 20, 0, WS_ROLE_SITE, &id1, &ops, ss);
	ws_proto_init(hub, &b, 1u << 20, 0, WS_ROLE_HUB, &id2, &ops, hs);
}

TEST(hello_then_add)
{
	struct ws_proto site, hub;
	struct seen ss = {0}, hs = {0};
	struct ws_add add = {.clock = WS_VCLOCK_INIT};
	char err[WS_ERRLEN] = "";

	pair(&site, &hub, &ss, &hs);
	CHECK_INT(ws_proto_start(&hub), 0);
	CHECK_INT((long long)ws_peer_pending(&hub.p), 0); /* the hub waits */
	CHECK_INT(ws_proto_start(&site), 0);
	CHECK_INT(deliver(&site, &hub, err), 0);
	CHECK(hub.hello && hs.hellos == 1 && hub.said_hello);
	CHECK_INT(deliver(&hub, &site, err), 0);
	CHECK(site.hello && ss.hellos == 1);
	CHECK(memcmp(hub.peer_site.b, site.id.b, WS_SITEID_LEN) == 0);
	snprintf(add.wsid, sizeof(add.wsid), "notes");
	site.enc.len = 0;
	CHECK_INT(ws_add_encode(&add, &site.enc), 0);
	CHECK_INT(ws_peer_send(&site.p, WS_FRAME_ADD, 0, 1, site.enc.p, site.enc.len), 0);
	CHECK_INT(deliver(&site, &hub, err), 0);
	CHECK_INT(hs.adds, 1);
	CHECK_STR(hs.wsid, "notes");
	/* ADD on channel 0, an unknown type, a second hello: refused. */
	CHECK_INT(ws_peer_send(&site.p, WS_FRAME_ADD, 0, 0, site.enc.p, site.enc.len), 0);
	CHECK_INT(deliver(&site, &hub, err), WS_ECORRUPT);
	CHECK_STR(err, "add frame on channel 0");
	CHECK_INT(ws_peer_send(&site.p, 0x7f, 0, 0, NULL, 0), 0);
	CHECK_INT(deliver(&site, &hub, err), WS_EUNSUPP);
	CHECK_STR(err, "unknown frame type 127");
	ws_proto_release(&site);
	ws_proto_release(&hub);
}

TEST(hello_first)
{
	struct ws_proto site, hub;
	struct seen ss = {0}, hs = {0};
	char err[WS_ERRLEN] = "";

	pair(&site, &hub, &ss, &hs);
	CHECK_INT(ws_peer_send(&site.p, WS_FRAME_HEARTBEAT, 0, 0, NULL, 0), 0);
	CHECK_INT(deliver(&site, &hub, err), WS_ECORRUPT);
	CHECK_STR(err, "the session must start with a hello frame");
	/* The initiator may be refused before any hello. */
	CHECK_INT(ws_peer_send_error(&hub.p, 0, WS_EPERM, "no"), 0);
	CHECK_INT(deliver(&hub, &site, err), 0);
	CHECK_INT(ss.errors, 1);
	ws_proto_release(&site);
	ws_proto_release(&hub);
}

TEST(keepalive_heartbeats_then_times_out)
{
	struct ws_proto site, hub;
	struct seen ss = {0}, hs = {0};
	char err[WS_ERRLEN] = "";
	uint64_t now = ws_now_ms();

	pair(&site, &hub, &ss, &hs);
	site.heartbeat_ms = 1000;
	site.idle_ms = 5000;
	hub.handshake_ms = 2000;
	CHECK_INT(ws_proto_start(&site), 0);
	CHECK_INT(deliver(&site, &hub, err), 0);
	CHECK_INT(deliver(&hub, &site, err), 0);
	/* Idle past the heartbeat: a HEARTBEAT and the channel's CLOCK. */
	CHECK_INT(ws_proto_keepalive(&site, now + 1500, err), 0);
	CHECK_INT(deliver(&site, &hub, err), 0);
	CHECK_INT(hs.others, 1);
	CHECK_INT(ws_proto_keepalive(&site, now + 6000, err), WS_EAGAIN);
	CHECK(site.expired);
	CHECK_STR(err, "the hub was silent for 5 seconds");
	ws_proto_release(&site);
	ws_proto_release(&hub);
	/* A responder whose peer never says hello. */
	pair(&site, &hub, &ss, &hs);
	hub.handshake_ms = 2000;
	CHECK_INT(ws_proto_keepalive(&hub, hub.since_ms + 3000, err), WS_EAGAIN);
	CHECK_STR(err, "no hello within 2 s: dropped");
	ws_proto_release(&site);
	ws_proto_release(&hub);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(hello_then_add);
	RUN(hello_first);
	RUN(keepalive_heartbeats_then_times_out);
	TEST_MAIN_END();
}
