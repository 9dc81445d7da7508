/* SPDX-License-Identifier: MIT */
/*
 * session.h - one connection between a site and a hub: buffered,
 * non-blocking frame I/O, and the session frames' payloads.
 *
 * A session starts with each side sending the stream preamble and a
 * HELLO frame (protocol version, role, site id).  A site then offers
 * working sets with ADD frames on channels of its choosing (1, 2, ...);
 * the hub answers each with an ADD on the same channel carrying its own
 * guid and clock, or with an ERROR frame on that channel (the session
 * goes on for the others).  Then each side sends the BATCH frames the
 * other lacks, and a CLOCK frame: flag WS_CLOCK_CAUGHT_UP from the hub
 * ends its catch-up; flag WS_CLOCK_SYNC from a site asks the hub to
 * confirm, with a CLOCK flagged WS_CLOCK_ACK, that it has stored all the
 * site sent before.  Live batches follow.  REMOVE drops a working set
 * from the session.  See wsync-protocol(5).
 */
#ifndef WSYNC_SESSION_H
#define WSYNC_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "frame.h"
#include "secure.h"
#include "transport.h"
#include "vclock.h"

#define WS_PROTOCOL_VERSION 1

/* HELLO roles. */
#define WS_ROLE_SITE 0
#define WS_ROLE_HUB 1

/* CLOCK frame flags. */
#define WS_CLOCK_CAUGHT_UP 0x1 /* hub: everything you lacked was sent */
#define WS_CLOCK_SYNC 0x2      /* site: confirm you stored what I sent */
#define WS_CLOCK_ACK 0x4       /* hub: stored; my clock is this */
#define WS_CLOCK_STABLE 0x8    /* hub: every site holds this much: collect it */
#define WS_CLOCK_SNAPSHOT 0x10 /* hub, with STABLE: a full copy follows, up to
                                  the next clock frame on the channel */

/* NOTICE payload: u8 kind, then the 16-byte site id it is about. */
#define WS_NOTICE_JOINED 1
#define WS_NOTICE_LEFT 2


/* Largest working-set id. */
#define WS_WSID_MAX 128

struct ws_hello {
	uint64_t version;
	unsigned role;
	struct ws_siteid site;
};

/* An ADD frame: a working set offered (site) or accepted (hub). */
struct ws_add {
	char wsid[WS_WSID_MAX + 1];
	int has_guid;
	uint8_t guid[16];
	int has_site;           /* a site's add: the site id of its database, */
	struct ws_siteid site;  /* the only one its batches on the channel may name */
	struct ws_vclock clock; /* owned; release with ws_vclock_release */
};

/*
 * Append h as a HELLO payload to out: varint version, varint role, the
 * 16-byte site id.  0 or WS_ENOMEM (out may then hold part of it).
 */
int ws_hello_encode(const struct ws_hello *h, struct ws_buf *out) WS_MUST_CHECK;
/*
 * Decode the HELLO payload p[0..n) into *h (which owns nothing).
 * WS_EVERSION when the peer speaks another protocol version (err says
 * which), WS_ECORRUPT for anything else amiss: a bad varint, a role
 * other than WS_ROLE_SITE or WS_ROLE_HUB, a short site id, trailing
 * bytes.  On error *h holds nothing to rely on.
 */
int ws_hello_decode(struct ws_hello *h, const uint8_t *p, size_t n, char *err) WS_MUST_CHECK;
/*
 * Append a as an ADD payload to out: the working-set id (varint length
 * and bytes), a varint of flags (1: a guid follows, 2: a site id
 * follows), the guid and the site id when flagged, then a's clock in
 * its binary encoding.  a->wsid is not checked here (ws_wsid_valid()).
 * 0 or WS_ENOMEM (out may then hold part of it).
 */
int ws_add_encode(const struct ws_add *a, struct ws_buf *out) WS_MUST_CHECK;
/*
 * Decode the ADD payload p[0..n) into *a.  a->clock must be initialised;
 * its entries are replaced (the caller still releases it, on error too).
 * WS_ECORRUPT for a bad payload or working-set id, WS_ENOMEM.
 */
int ws_add_decode(struct ws_add *a, const uint8_t *p, size_t n, char *err) WS_MUST_CHECK;
/* A working-set id: 1 to 128 bytes of [A-Za-z0-9._-], not starting with '.'. */
int ws_wsid_valid(const char *wsid);

/* How a program is told about sessions: one line, no newline. */
typedef void ws_log_fn(void *clientData, const char *line);

/* Format a line and hand it to fn (nothing when fn is NULL). */
void ws_log_printf(ws_log_fn *fn, void *clientData, const char *fmt, ...) WS_PRINTF(3, 4);

/*
 * A session log: every frame sent and received, each wrapped in a
 * WS_FRAME_LOG record (frame.h) with its time, direction and peer, in a
 * wsync stream that wsync-inspect reads.  A file is appended to (a new or
 * empty one gets the preamble first); each record is one write(2), so
 * several programs may append to the same file.
 */
struct ws_session_log {
	int fd;
	int failed;            /* a write failed; later ones are skipped */
	struct ws_buf b;
};

/* Open path ("-" is stdout) for appending.  WS_EPERM, WS_EIO. */
int ws_session_log_open(struct ws_session_log *l, const char *path, char *err) WS_MUST_CHECK;
void ws_session_log_close(struct ws_session_log *l);
/* Append one record; a failure only sets l->failed. */
void ws_session_log_frame(struct ws_session_log *l, unsigned dir, const char *peer,
    const struct ws_frame *f);

/* One end of a connection. */
struct ws_peer {
	struct ws_conn conn;
	struct ws_frame_decoder dec;
	struct ws_buf out;     /* bytes waiting to be written */
	size_t out_off;        /* of which this many are written */
	size_t out_max;        /* past this many waiting bytes: WS_EBUSY */
	size_t ctl_queued;     /* bytes of frames other than batches queued
	                        * since the queue was last empty */
	int sent_preamble;
	int eof;               /* the other side closed */
	struct ws_session_log *log; /* NULL, or where frames are logged */
	uint64_t last_rx_ms;   /* when bytes last arrived (ws_now_ms) */
	uint64_t last_tx_ms;   /* when a frame was last queued */
	struct ws_secure *sec; /* NULL: a plain session (secure.h) */
};

/* Milliseconds on the monotonic clock. */
uint64_t ws_now_ms(void);

/*
 * Queue a HEARTBEAT (the time) and, for each of the n channels, a CLOCK
 * (no flags) with clocks[i]: an idle session's sign of life, which also
 * tells the other side how far this one has got.
 */
int ws_peer_send_heartbeat(struct ws_peer *p, const uint32_t *ch,
    const struct ws_vclock *clocks, size_t n) WS_MUST_CHECK;

/* Prepare p for conn (taken over); max_frame as for the decoder. */
void ws_peer_init(struct ws_peer *p, const struct ws_conn *conn, size_t max_frame,
    size_t out_max);
/* Close the connection and free the buffers. */
void ws_peer_release(struct ws_peer *p);

/*
 * Queue one frame (and, first, the preamble).  WS_EBUSY when the queue
 * would pass out_max (for a frame other than a batch: when such frames
 * queued since the queue was last empty would): the peer is slow, and
 * the caller holds back what it has for it.
 */
int ws_peer_send(struct ws_peer *p, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n) WS_MUST_CHECK;
/* Queue an ERROR frame with a message. */
int ws_peer_send_error(struct ws_peer *p, uint32_t ch, int code, const char *msg) WS_MUST_CHECK;
/* Queue a CLOCK frame. */
int ws_peer_send_clock(struct ws_peer *p, uint32_t ch, uint8_t flags,
    const struct ws_vclock *vc) WS_MUST_CHECK;

/* Bytes still to write. */
static inline size_t ws_peer_pending(const struct ws_peer *p)
{
	return p->out.len - p->out_off;
}

/* Write what the fd takes now.  0 (maybe some left), or WS_EIO. */
int ws_peer_flush(struct ws_peer *p, char *err) WS_MUST_CHECK;

/* Called for each frame read; return 0 to go on, <0 to stop. */
typedef int ws_frame_cb(struct ws_peer *p, const struct ws_frame *f, void *clientData);

/*
 * Queue one frame as is, never encrypted (the preamble first): the
 * handshake's frames, and what goes before it.  As ws_peer_send.
 */
int ws_peer_send_raw(struct ws_peer *p, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n) WS_MUST_CHECK;

/*
 * Read what the fd has now and hand each whole frame to cb.  Sets
 * p->eof at end of stream (WS_ETRUNC if it ends inside a frame).
 * Decoding errors come back with the byte offset in err.
 */
int ws_peer_read(struct ws_peer *p, ws_frame_cb *cb, void *clientData, char *err) WS_MUST_CHECK;

/*
 * One frame decoded from p's stream, for a caller that reads the stream
 * itself: through p's secure filter when it has one, then logged, then
 * to cb (a handshake frame is taken by the filter).  ws_peer_read() does
 * this for each frame.
 */
int ws_peer_take(struct ws_peer *p, const struct ws_frame *f, ws_frame_cb *cb,
    void *clientData, char *err) WS_MUST_CHECK;

/*
 * Make p a secure session (secure.h).  The initiator (a site) queues its
 * first handshake frame now; the responder (a hub) waits for one, and if
 * the peer's first frame is anything else the session stays plain
 * (p->sec becomes NULL) and that frame goes to the frame callback, so
 * the caller decides whether plain sessions are allowed.  Frames queued
 * with ws_peer_send() before the handshake is done wait, then go
 * encrypted.  `me` must outlive p.  check (may be NULL) vets the peer's
 * key.  The filter is freed with p (ws_peer_release).
 */
int ws_peer_secure(struct ws_peer *p, int initiator, const struct ws_keypair *me,
    ws_secure_check_fn *check, void *clientData) WS_MUST_CHECK;
/* The peer's long-term key once its step arrived, else NULL. */
const uint8_t *ws_peer_key(const struct ws_peer *p);
/* Whether p is a secure session whose handshake is complete. */
int ws_secure_ready(const struct ws_peer *p);

/*
 * The protocol (proto.c): what both ends of a session do alike.  A
 * session is a struct ws_proto, whose first member is its peer, so a
 * frame callback's peer is the session.  The protocol layer owns the
 * hello exchange (the initiator, a site, says hello first; the
 * responder, a hub, answers the peer's), the hello-first rule, ADD's
 * decoding, the ERROR payload, HEARTBEAT, unknown frame types, the
 * heartbeat of an idle session with each channel's clock, and the
 * timeouts (no hello in time, a silent peer).  What differs between hub
 * and site comes in through struct ws_proto_ops.
 */
struct ws_proto;
struct ws_batch;
struct ws_schema;

/* From ws_proto_ops.frame: a frame type this role does not take. */
#define WS_PROTO_UNKNOWN 1

/*
 * A role's callbacks.  Each returns 0, or a negative WS_E* code (with a
 * message in err) that ends the session.
 */
struct ws_proto_ops {
	/* The peer's hello arrived (s->hello is set): vet it.  May be NULL. */
	int (*hello)(struct ws_proto *s, const struct ws_hello *h, char *err);
	/* Every frame after the hello check, before dispatch: 1 ignores f.
	 * May be NULL. */
	int (*channel)(struct ws_proto *s, const struct ws_frame *f, char *err);
	/* An ADD on channel ch (never 0), decoded; a is released after. */
	int (*add)(struct ws_proto *s, uint32_t ch, struct ws_add *a, char *err);
	/* An ERROR on channel ch: its code (has_code 0: the payload had none,
	 * and msg is all of it), and its message msg[0..n). */
	int (*error)(struct ws_proto *s, uint32_t ch, int has_code, int64_t code,
	    const char *msg, size_t n, char *err);
	/* Any other frame (REMOVE, BATCH, SCHEMA, CLOCK, NOTICE, ...), or
	 * WS_PROTO_UNKNOWN for a type the role does not take. */
	int (*frame)(struct ws_proto *s, const struct ws_frame *f, char *err);
	/* The heartbeat's channels: at most nchan(s); clock(s, i, ...) gives
	 * the i-th one's channel and clock (vc is initialised), or returns 1
	 * to leave it out. */
	size_t (*nchan)(struct ws_proto *s);
	int (*clock)(struct ws_proto *s, size_t i, uint32_t *ch, struct ws_vclock *vc,
	    char *err);
};

struct ws_proto {
	struct ws_peer p;          /* first: see above */
	const struct ws_proto_ops *ops;
	void *clientData;          /* the role's, for the callbacks */
	unsigned role;             /* this side's: WS_ROLE_SITE initiates */
	struct ws_siteid id;       /* this side's hello names it */
	int hello;                 /* the peer's hello arrived */
	int said_hello;            /* this side's hello is queued */
	struct ws_siteid peer_site;/* the peer's hello named it */
	int expired;               /* ws_proto_keepalive ended it: a timeout */
	uint64_t since_ms;         /* when the session started */
	unsigned heartbeat_ms;     /* heartbeat when idle this long */
	unsigned idle_ms;          /* the peer silent this long is gone */
	unsigned handshake_ms;     /* no hello this long: gone; 0: no limit */
	struct ws_buf enc;         /* scratch for the frames it encodes */
};

/*
 * Prepare s on conn (taken over, as ws_peer_init): role is this side's,
 * id its hello's site id.  The timings are the caller's to set after
 * the call (all 0: no heartbeat, no timeouts).
 */
void ws_proto_init(struct ws_proto *s, const struct ws_conn *conn, size_t max_frame,
    size_t out_max, unsigned role, const struct ws_siteid *id,
    const struct ws_proto_ops *ops, void *clientData);
/* Close the connection and free the buffers. */
void ws_proto_release(struct ws_proto *s);
/* Start the session: the initiator queues its hello now. */
int ws_proto_start(struct ws_proto *s) WS_MUST_CHECK;
/* Take one frame the peer sent; a negative code ends the session. */
int ws_proto_frame(struct ws_proto *s, const struct ws_frame *f, char *err) WS_MUST_CHECK;
/*
 * At time now (ws_now_ms): end a session without a hello past
 * handshake_ms, or a silent one past idle_ms (WS_EAGAIN, s->expired
 * set, the reason in err); heartbeat one this side has not written to
 * for heartbeat_ms, with each channel's clock (a failure to is returned
 * as is).
 */
int ws_proto_keepalive(struct ws_proto *s, uint64_t now, char *err) WS_MUST_CHECK;
/* Queue a BATCH of b, or a SCHEMA of sc, on channel ch. */
int ws_proto_send_batch(struct ws_proto *s, uint32_t ch, const struct ws_batch *b) WS_MUST_CHECK;
int ws_proto_send_schema(struct ws_proto *s, uint32_t ch, const struct ws_schema *sc) WS_MUST_CHECK;

#endif
