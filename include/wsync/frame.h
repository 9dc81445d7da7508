/* SPDX-License-Identifier: MIT */
/*
 * frame.h - the byte-stream format: a preamble, then frames.
 *
 * The same format is used on sockets, pipes and log files.
 *
 * A stream starts with a 10-byte preamble:
 *
 *     89 57 53 59 4E 43 0D 0A  vv  00
 *     \x89 'W' 'S' 'Y' 'N' 'C' CR LF  version  reserved
 *
 * The first byte is not ASCII, so a stream is never mistaken for text (or
 * for JSON lines, which start with '{'), and the CR LF catches transfers
 * that mangle line endings.  The version is WS_FRAME_VERSION.
 *
 * After it come frames.  A frame is a 10-byte header, the payload and a
 * 4-byte trailer; all integers are little-endian:
 *
 *     offset  size  field
 *     0       1     type     (enum ws_frame_type; 0 is invalid)
 *     1       1     flags    (type-specific; 0 when unused)
 *     2       4     channel  (working-set channel, 0 = the session itself)
 *     6       4     length   (payload bytes)
 *     10      len   payload
 *     10+len  4     CRC-32C of the header and payload
 *
 * A decoder refuses a length above its configured maximum before it
 * allocates anything, and refuses a frame whose checksum does not match.
 */
#ifndef WSYNC_FRAME_H
#define WSYNC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define WS_FRAME_MAGIC "\x89WSYNC\r\n"
#define WS_FRAME_MAGICLEN 8
#define WS_FRAME_PREAMBLE 10 /* magic, version, reserved */
#define WS_FRAME_VERSION 1
#define WS_FRAME_HDRLEN 10
#define WS_FRAME_TRAILER 4
#define WS_FRAME_OVERHEAD (WS_FRAME_HDRLEN + WS_FRAME_TRAILER)
/*
 * Default and absolute maximum payload sizes.  One default for every
 * reader and every session, so each tool reads what any other wrote: a
 * batch is one local transaction, and big transactions make big batches.
 */
#define WS_FRAME_MAX_DEFAULT (256u << 20)
#define WS_FRAME_MAX_LIMIT (1u << 30)

/*
 * Frame types.  The payload of each is described in wsync-protocol(5);
 * each has a JSON-lines twin (json.h).  Types not listed here are legal on
 * the wire and are carried as opaque payloads, so old readers can pass
 * new frames through.
 */
enum ws_frame_type {
	WS_FRAME_HELLO = 0x01,     /* session handshake */
	WS_FRAME_ERROR = 0x02,     /* svarint code, then UTF-8 message */
	WS_FRAME_HEARTBEAT = 0x03, /* varint sender time, ms since epoch */
	WS_FRAME_BATCH = 0x10,     /* a delta batch (delta.h) */
	WS_FRAME_CLOCK = 0x11,     /* a vector clock (vclock.h) */
	WS_FRAME_SCHEMA = 0x12,    /* a working set's schema record (schema.h) */
	WS_FRAME_ADD = 0x04,       /* offer or accept a working set (session.h) */
	WS_FRAME_REMOVE = 0x05,    /* drop a working set from the session */
	WS_FRAME_NOTICE = 0x06,    /* hub: a site joined or left (session.h) */
	WS_FRAME_AUTH = 0x07,      /* a handshake step of a secure session (secure.h) */
	WS_FRAME_SEALED = 0x08,    /* a frame encrypted in a secure session */
	WS_FRAME_MESSAGE = 0x09,   /* one JSON message of a secure replicate
	                              stream (replicate.h), without its newline */
	WS_FRAME_LOG = 0x30,       /* a session-log record wrapping a frame */
};

/* One decoded frame.  `payload` is owned by the decoder or the input. */
struct ws_frame {
	uint8_t type;
	uint8_t flags;
	uint32_t channel;
	uint32_t len;
	const uint8_t *payload;
};

/* Name of a known frame type ("batch"), or NULL. */
const char *ws_frame_type_name(unsigned type);
/* Type for a name ("batch"), or 0 if unknown. */
unsigned ws_frame_type_from_name(const char *name);

/*
 * A session-log record: the payload of a WS_FRAME_LOG frame, which wraps
 * one frame a program sent or received:
 *     varint  time, microseconds since the epoch
 *     u8      direction: 0 received, 1 sent
 *     str     peer (UTF-8, at most 255 bytes)
 *     u8      the frame's type, u8 its flags, varint its channel
 *     ...     the frame's payload, to the end
 */
#define WS_LOG_IN 0
#define WS_LOG_OUT 1

struct ws_log_record {
	uint64_t time_us;
	unsigned dir;
	const char *peer;     /* not NUL-terminated when decoded */
	size_t peerlen;
	struct ws_frame frame;
};

/* Append the payload of a WS_FRAME_LOG frame for r to out. */
int ws_log_record_encode(const struct ws_log_record *r, struct ws_buf *out) WS_MUST_CHECK;
/* Decode one; pointers point into p.  WS_ECORRUPT on a malformed record. */
int ws_log_record_decode(struct ws_log_record *r, const uint8_t *p, size_t n) WS_MUST_CHECK;

/* Append the stream preamble to out.  0 or WS_ENOMEM. */
int ws_frame_put_preamble(struct ws_buf *out) WS_MUST_CHECK;

/*
 * Append one whole frame to out.  WS_EINVAL for type 0 or a payload over
 * WS_FRAME_MAX_LIMIT; 0 or WS_ENOMEM otherwise.
 */
int ws_frame_put(struct ws_buf *out, uint8_t type, uint8_t flags,
    uint32_t channel, const void *payload, size_t len) WS_MUST_CHECK;

/*
 * Check a preamble held whole in p[0..n): 0, WS_ETRUNC if n is short,
 * WS_EMAGIC, or WS_EVERSION.  The version found is stored in *version
 * when it is not NULL and the magic matched.
 */
int ws_frame_check_preamble(const uint8_t *p, size_t n, unsigned *version) WS_MUST_CHECK;

/*
 * Decode one frame held whole at p[0..n) (no preamble).  On success fill
 * *f (payload points into p) and *used with the frame's total size.
 * WS_ETRUNC when p holds less than a whole frame, WS_ECORRUPT for type 0,
 * WS_ETOOBIG for a length above max, WS_ECHECKSUM for a bad checksum.
 */
int ws_frame_parse(const uint8_t *p, size_t n, size_t max, struct ws_frame *f,
    size_t *used) WS_MUST_CHECK;

/* Decoder option: the stream has no preamble (e.g. one frame in a file). */
#define WS_FRAME_NO_PREAMBLE 0x1

/*
 * The incremental decoder.  It accepts input cut at any point, down to
 * one byte at a time, and copies only frames that arrive in pieces; a
 * frame whose bytes are all in one call is returned without a copy.
 */
struct ws_frame_decoder {
	size_t max;           /* largest payload accepted */
	unsigned opts;        /* WS_FRAME_NO_PREAMBLE */
	unsigned version;     /* from the preamble, once seen */
	int state;            /* internal */
	int error;            /* sticky error code, 0 while healthy */
	uint64_t offset;      /* stream bytes consumed so far */
	uint64_t frame_start; /* stream offset of the frame being decoded */
	uint64_t error_offset;/* stream offset of the first damaged byte */
	struct ws_buf part;   /* bytes of a frame that arrived in pieces */
};

/*
 * Prepare d.  `max` is the largest payload accepted (0 means
 * WS_FRAME_MAX_DEFAULT, values above WS_FRAME_MAX_LIMIT are clamped).
 * Owns nothing until fed; release with ws_frame_decoder_release().
 */
void ws_frame_decoder_init(struct ws_frame_decoder *d, size_t max, unsigned opts);
void ws_frame_decoder_release(struct ws_frame_decoder *d);

/*
 * Feed bytes p[0..n).  Sets *used to the bytes consumed (always <= n).
 * Returns:
 *   1  a frame is ready in *f; its payload stays valid until the next
 *      call on d, and (when it points into p) as long as p does;
 *   0  all n bytes were consumed and more input is needed;
 *   <0 an error (WS_EMAGIC, WS_EVERSION, WS_ETOOBIG, WS_ECHECKSUM,
 *      WS_ECORRUPT, WS_ENOMEM).  d->error_offset holds the stream offset
 *      of the damage and err (may be NULL) a message naming it.  The
 *      error is sticky: later calls return it again.
 * Call again with the unconsumed rest until it returns 0.
 */
int ws_frame_decoder_feed(struct ws_frame_decoder *d, const uint8_t *p,
    size_t n, size_t *used, struct ws_frame *f, char *err) WS_MUST_CHECK;

/*
 * Declare end of input.  0 if the stream ended between frames (an empty
 * stream is fine), WS_ETRUNC with d->error_offset at the start of the
 * unfinished preamble or frame otherwise.
 */
int ws_frame_decoder_finish(struct ws_frame_decoder *d, char *err) WS_MUST_CHECK;

#endif
