/* SPDX-License-Identifier: MIT */
/*
 * fuzz_handshake.c - the handshake and the sealed frames of a secure
 * session (secure.h), driven in memory: two struct ws_peer, a site and a
 * hub, whose queued bytes are handed to each other, never to a socket.
 *
 * The first byte picks what the rest is:
 *   0  frames the hub reads from a site it has never heard from: a
 *      handshake step 1 (or a plain frame, which makes the session
 *      plain), then whatever follows
 *   1  frames a site reads after sending step 1: the hub's answer
 *   2  frames the hub reads after a real handshake completed: sealed
 *      frames it cannot have been sent, plain ones (downgrades), more
 *      handshake steps
 *   3  (type, length, payload) records the site sends through the real
 *      encrypted channel after a real handshake: the hub must get each
 *      back whole, in order, as sent, but refuse an auth or sealed frame
 *      inside a sealed one
 * The rest is cut into frames with ws_frame_parse (no preamble).  Nothing
 * may crash or leak; in mode 3 every frame must arrive unchanged.
 */
#include <string.h>

#include <sodium.h>

#include "fuzz.h"
#include "wsync/frame.h"
#include "wsync/secure.h"
#include "wsync/session.h"

static struct ws_keypair site_key, hub_key;
static int keys_made;

struct got {
	const uint8_t *want;   /* mode 3: what the next frame must hold */
	size_t wantlen;
	unsigned type;
	int n;
};

static int take(struct ws_peer *p, const struct ws_frame *f, void *cd)
{
	struct got *g = cd;

	(void)p;
	if (g->want) {
		FUZZ_CHECK(f->type == g->type && f->len == g->wantlen &&
		    (f->len == 0 || memcmp(f->payload, g->want, f->len) == 0));
		g->want = NULL;
	}
	g->n++;
	return 0;
}

static int accept_any(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	(void)cd;
	(void)pk;
	(void)err;
	return 0;
}

static void peer_new(struct ws_peer *p)
{
	struct ws_conn c;

	memset(&c, 0, sizeof(c));
	c.rfd = c.wfd = -1;
	ws_peer_init(p, &c, 1u << 20, 0);
}

/* Hand every whole frame `from` has queued to `to`; then `from` is empty. */
static int deliver(struct ws_peer *from, struct ws_peer *to, struct got *g, char *err)
{
	size_t off = from->out_off, used;
	struct ws_frame f;
	int rc = 0;

	if (from->out.len - off >= WS_FRAME_PREAMBLE &&
	    memcmp(from->out.p + off, WS_FRAME_MAGIC, WS_FRAME_MAGICLEN) == 0)
		off += WS_FRAME_PREAMBLE;
	while (rc == 0 && off < from->out.len) {
		if (ws_frame_parse(from->out.p + off, from->out.len - off, 1u << 21, &f,
		    &used))
			break;
		rc = ws_peer_take(to, &f, take, g, err);
		off += used;
	}
	from->out.len = from->out_off = 0;
	return rc;
}

/* A real handshake between site s and hub h; 0 when both are keyed. */
static int handshake(struct ws_peer *s, struct ws_peer *h, struct got *g, char *err)
{
	int i;

	if (ws_peer_secure(s, 1, &site_key, accept_any, NULL) ||
	    ws_peer_secure(h, 0, &hub_key, accept_any, NULL))
		return -1;
	for (i = 0; i < 3; i++)
		if (deliver(s, h, g, err) || deliver(h, s, g, err))
			return -1;
	FUZZ_CHECK(ws_secure_ready(s) && ws_secure_ready(h));
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_peer s, h;
	struct got g = {0};
	struct ws_frame f;
	char err[WS_ERRLEN];
	size_t off, used, n;
	unsigned mode;

	if (!keys_made) {
		uint8_t seed[crypto_sign_SEEDBYTES];

		if (sodium_init() < 0)
			abort();
		memset(seed, 1, sizeof(seed));
		crypto_sign_seed_keypair(site_key.pk, site_key.sk, seed);
		memset(seed, 2, sizeof(seed));
		crypto_sign_seed_keypair(hub_key.pk, hub_key.sk, seed);
		keys_made = 1;
	}
	if (size < 1)
		return 0;
	mode = data[0] % 4;
	data++;
	size--;
	peer_new(&s);
	peer_new(&h);
	if (mode == 0 && ws_peer_secure(&h, 0, &hub_key, accept_any, NULL))
		goto out;
	if (mode == 1 && ws_peer_secure(&s, 1, &site_key, accept_any, NULL))
		goto out;
	if (mode >= 2 && handshake(&s, &h, &g, err))
		goto out;
	if (mode == 3) {
		/* Records: type, 2-byte length, payload, sent sealed. */
		for (off = 0; off + 3 <= size; off += 3 + n) {
			n = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
			if (n > size - off - 3)
				n = size - off - 3;
			if (data[off] == 0 || ws_peer_send(&s, data[off], 0, 1,
			    data + off + 3, n))
				break;
			if (data[off] == WS_FRAME_AUTH || data[off] == WS_FRAME_SEALED) {
				/* Never nested: the hub must refuse it. */
				FUZZ_CHECK(deliver(&s, &h, &g, err) != 0);
				break;
			}
			g.want = data + off + 3;
			g.wantlen = n;
			g.type = data[off];
			FUZZ_CHECK(deliver(&s, &h, &g, err) == 0 && g.want == NULL);
		}
		goto out;
	}
	for (off = 0; off < size; off += used) {
		if (ws_frame_parse(data + off, size - off, 1u << 20, &f, &used))
			break;
		if (mode == 1) {
			if (ws_peer_take(&s, &f, take, &g, err) != 0)
				break;
			s.out.len = s.out_off = 0; /* its answers go nowhere */
		} else {
			if (ws_peer_take(&h, &f, take, &g, err) != 0)
				break;
			h.out.len = h.out_off = 0;
		}
	}
out:
	ws_peer_release(&s);
	ws_peer_release(&h);
	return 0;
}
