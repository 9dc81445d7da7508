/* SPDX-License-Identifier: MIT */
/*
 * secure-int.h - the secure frame filter, for the session layer
 * (session.c) only; not installed.
 *
 * A filter holds one side of a secure session's handshake and its two
 * secretstreams, and knows nothing of peers: the frames it makes (the
 * handshake's AUTH frames, SEALED frames, an ERROR refusing the peer
 * before any key exists) go to an emit callback, which queues them
 * unencrypted.  ws_sec_seal() seals one outgoing frame; ws_sec_open()
 * takes one incoming frame and says what became of it.  See secure.h
 * for the handshake.
 */
#ifndef WSYNC_SECURE_INT_H
#define WSYNC_SECURE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "wsync/frame.h"
#include "wsync/secure.h"

/* Queue one frame of type on channel 0, as is (never sealed). */
typedef int ws_secure_emit_fn(void *clientData, uint8_t type, const void *payload,
    size_t n);

/* What ws_sec_open() made of a frame. */
enum {
	WS_SEC_NONE = 0,   /* taken: a handshake step */
	WS_SEC_INNER = 1,  /* a sealed frame: the inner frame is in *in */
	WS_SEC_PLAIN = 2,  /* the peer speaks plain (a responder's first frame):
	                      free the filter, and the frame is as it came */
	WS_SEC_CLEAR = 3,  /* an ERROR before any key: the frame is as it came */
};

/*
 * A new filter into *s (freed with ws_sec_free, even on error).  The
 * initiator emits its first handshake frame now.  me must outlive it;
 * check (may be NULL) vets the peer's key with clientData.
 */
int ws_sec_new(struct ws_secure **s, int initiator, const struct ws_keypair *me,
    ws_secure_check_fn *check, void *clientData, ws_secure_emit_fn *emit,
    void *emit_cd) WS_MUST_CHECK;
/* Wipe and free s (NULL is fine). */
void ws_sec_free(struct ws_secure *s);

/* Seal one frame and emit it; before the keys exist it waits, then goes. */
int ws_sec_seal(struct ws_secure *s, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n) WS_MUST_CHECK;
/*
 * Take one received frame: a WS_SEC_* value, or a negative code (the
 * session is over).  An inner frame in *in points into s, valid until
 * the next call.
 */
int ws_sec_open(struct ws_secure *s, const struct ws_frame *f, struct ws_frame *in,
    char *err) WS_MUST_CHECK;
/* Whether both directions are keyed. */
int ws_sec_ready(const struct ws_secure *s);
/* The peer's long-term key once its step arrived, else NULL. */
const uint8_t *ws_sec_peer_key(const struct ws_secure *s);

#endif
