/* SPDX-License-Identifier: MIT */
/*
 * test_secure.c - the secure frame filter (lib/secure-int.h): two
 * filters run the handshake through their emit callbacks, a sealed frame
 * opens to what was sealed, and a tampered one is refused.
 */
#include "harness.h"
#include "wsync/wsync.h"
#include "../../lib/secure-int.h"

/* One side's outgoing frames, as a stream of frames without preamble. */
struct side {
	struct ws_secure *s;
	struct ws_buf out;
};

static int emit(void *cd, uint8_t type, const void *payload, size_t n)
{
	return ws_frame_put(&((struct side *)cd)->out, type, 0, 0, payload, n);
}

/* Hand every frame a emitted to b; the last inner frame into *got. */
static int pump(struct side *a, struct side *b, struct ws_buf *got, int tamper)
{
	struct ws_frame f, in;
	char err[WS_ERRLEN];
	size_t off, used;
	int rc = 0;

	for (off = 0; rc >= 0 && off < a->out.len; off += used) {
		if (ws_frame_parse(a->out.p + off, a->out.len - off, WS_FRAME_MAX_LIMIT,
		    &f, &used))
			return WS_ECORRUPT;
		if (tamper && f.type == WS_FRAME_SEALED)
			((uint8_t *)f.payload)[f.len / 2] ^= 1;
		if ((rc = ws_sec_open(b->s, &f, &in, err)) == WS_SEC_INNER && got) {
			got->len = 0;
			if (ws_buf_append(got, in.payload, in.len))
				return WS_ENOMEM;
		}
	}
	a->out.len = 0;
	return rc < 0 ? rc : 0;
}

TEST(seal_open_round_trip_and_tamper)
{
	struct ws_keypair hk, sk;
	struct side site = {NULL, WS_BUF_INIT}, hub = {NULL, WS_BUF_INIT};
	struct ws_buf got = WS_BUF_INIT;

	ws_keypair_generate(&hk);
	ws_keypair_generate(&sk);
	CHECK_INT(ws_sec_new(&hub.s, 0, &hk, NULL, NULL, emit, &hub), 0);
	CHECK_INT(ws_sec_new(&site.s, 1, &sk, NULL, NULL, emit, &site), 0);
	/* Sealed before the keys exist: it waits, then goes. */
	CHECK_INT(ws_sec_seal(site.s, WS_FRAME_HELLO, 0, 0, "early", 5), 0);
	CHECK_INT(pump(&site, &hub, NULL, 0), 0);   /* step 1 */
	CHECK_INT(pump(&hub, &site, NULL, 0), 0);   /* step 2 */
	CHECK_INT(pump(&site, &hub, &got, 0), 0);   /* step 3, then "early" */
	CHECK_MEM(got.p, got.len, "early", 5);
	CHECK_INT(pump(&hub, &site, NULL, 0), 0);   /* step 4 */
	CHECK(ws_sec_ready(site.s) && ws_sec_ready(hub.s));
	CHECK_MEM(ws_sec_peer_key(hub.s), 32, sk.pk, 32);
	CHECK_MEM(ws_sec_peer_key(site.s), 32, hk.pk, 32);
	CHECK_INT(ws_sec_seal(hub.s, WS_FRAME_BATCH, 0, 3, "payload", 7), 0);
	CHECK_INT(pump(&hub, &site, &got, 0), 0);
	CHECK_MEM(got.p, got.len, "payload", 7);
	/* One bit flipped in transit: refused, and for good. */
	CHECK_INT(ws_sec_seal(hub.s, WS_FRAME_BATCH, 0, 3, "payload", 7), 0);
	CHECK_INT(pump(&hub, &site, &got, 1), WS_EPERM);
	ws_sec_free(site.s);
	ws_sec_free(hub.s);
	ws_buf_release(&site.out);
	ws_buf_release(&hub.out);
	ws_buf_release(&got);
}

TEST(plain_peer_and_downgrade)
{
	struct ws_keypair hk;
	struct side hub = {NULL, WS_BUF_INIT};
	struct ws_frame f = {WS_FRAME_HELLO, 0, 0, 0, (const uint8_t *)""}, in;
	char err[WS_ERRLEN];

	ws_keypair_generate(&hk);
	CHECK_INT(ws_sec_new(&hub.s, 0, &hk, NULL, NULL, emit, &hub), 0);
	/* A responder's peer that starts plain: the caller decides. */
	CHECK_INT(ws_sec_open(hub.s, &f, &in, err), WS_SEC_PLAIN);
	ws_sec_free(hub.s);
	ws_buf_release(&hub.out);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	if (ws_init())
		return 1;
	RUN(seal_open_round_trip_and_tamper);
	RUN(plain_peer_and_downgrade);
	TEST_MAIN_END();
}
