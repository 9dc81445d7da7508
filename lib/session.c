/* SPDX-License-Identifier: MIT */
/*
 * session.c - buffered frame I/O on a connection, and the payloads of
 * the session frames (HELLO, ADD).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "wsync/session.h"

#include "secure-int.h"

#define READ_CHUNK 65536

int ws_hello_encode(const struct ws_hello *h, struct ws_buf *out)
{
	int rc;

	if ((rc = ws_buf_put_varint(out, h->version)) ||
	    (rc = ws_buf_put_varint(out, h->role)))
		return rc;
	return ws_buf_append(out, h->site.b, WS_SITEID_LEN);
}

int ws_hello_decode(struct ws_hello *h, const uint8_t *p, size_t n, char *err)
{
	const uint8_t *site;
	uint64_t role;
	struct ws_rd r;

	ws_rd_init(&r, p, n);
	if (ws_rd_varint(&r, &h->version))
		return ws_error(err, WS_ECORRUPT, "bad hello frame");
	if (h->version != WS_PROTOCOL_VERSION)
		return ws_error(err, WS_EVERSION, "peer speaks protocol version %llu, "
		    "this program speaks %d", (unsigned long long)h->version,
		    WS_PROTOCOL_VERSION);
	if (ws_rd_varint(&r, &role) || role > WS_ROLE_HUB ||
	    ws_rd_raw(&r, WS_SITEID_LEN, &site) || ws_rd_left(&r))
		return ws_error(err, WS_ECORRUPT, "bad hello frame");
	h->role = (unsigned)role;
	memcpy(h->site.b, site, WS_SITEID_LEN);
	return 0;
}

int ws_wsid_valid(const char *wsid)
{
	size_t n = strlen(wsid);

	return n > 0 && n <= WS_WSID_MAX && wsid[0] != '.' &&
	    strspn(wsid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") == n;
}

int ws_add_encode(const struct ws_add *a, struct ws_buf *out)
{
	int rc;

	if ((rc = ws_buf_put_bytes(out, a->wsid, strlen(a->wsid))) ||
	    (rc = ws_buf_put_varint(out, (a->has_guid ? 1 : 0) | (a->has_site ? 2 : 0))))
		return rc;
	if (a->has_guid && (rc = ws_buf_append(out, a->guid, 16)))
		return rc;
	if (a->has_site && (rc = ws_buf_append(out, a->site.b, WS_SITEID_LEN)))
		return rc;
	return ws_vclock_encode(&a->clock, out);
}

int ws_add_decode(struct ws_add *a, const uint8_t *p, size_t n, char *err)
{
	const uint8_t *s, *g;
	uint64_t flags;
	struct ws_rd r;
	size_t len;
	int rc;

	ws_rd_init(&r, p, n);
	if (ws_rd_bytes(&r, WS_WSID_MAX, &s, &len) || ws_rd_varint(&r, &flags) ||
	    flags > 3)
		return ws_error(err, WS_ECORRUPT, "bad add frame");
	memcpy(a->wsid, s, len);
	a->wsid[len] = 0;
	/* A NUL inside would cut the id short: "n\0x" is not "n". */
	if (strlen(a->wsid) != len || !ws_wsid_valid(a->wsid))
		return ws_error(err, WS_ECORRUPT, "bad working-set id in add frame");
	a->has_guid = (int)(flags & 1);
	if (a->has_guid) {
		if (ws_rd_raw(&r, 16, &g))
			return ws_error(err, WS_ECORRUPT, "bad add frame");
		memcpy(a->guid, g, 16);
	}
	a->has_site = (int)(flags >> 1);
	if (a->has_site) {
		if (ws_rd_raw(&r, WS_SITEID_LEN, &g))
			return ws_error(err, WS_ECORRUPT, "bad add frame");
		memcpy(a->site.b, g, WS_SITEID_LEN);
	}
	if ((rc = ws_vclock_decode(&a->clock, &r, err)))
		return rc == WS_ENOMEM ? rc : WS_ECORRUPT;
	if (ws_rd_left(&r))
		return ws_error(err, WS_ECORRUPT, "bad add frame");
	return 0;
}

void ws_log_printf(ws_log_fn *fn, void *clientData, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!fn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fn(clientData, line);
}

int ws_session_log_open(struct ws_session_log *l, const char *path, char *err)
{
	struct stat st;
	char buf[64];

	memset(l, 0, sizeof(*l));
	ws_buf_init(&l->b);
	errno = 0;
	l->fd = strcmp(path, "-") == 0 ? dup(STDOUT_FILENO) :
	    open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (l->fd < 0)
		return ws_error(err, errno == EACCES ? WS_EPERM : WS_EIO,
		    "cannot open log '%s': %s", path, ws_errno_text(errno, buf));
	if (fstat(l->fd, &st) == 0 && (st.st_size == 0 || !S_ISREG(st.st_mode)) &&
	    (ws_frame_put_preamble(&l->b) ||
	    write(l->fd, l->b.p, l->b.len) != (ssize_t)l->b.len)) {
		int e = errno;

		close(l->fd);
		l->fd = -1;
		return ws_error(err, WS_EIO, "cannot write log '%s': %s", path,
		    ws_errno_text(e ? e : EIO, buf));
	}
	return 0;
}

void ws_session_log_close(struct ws_session_log *l)
{
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	ws_buf_release(&l->b);
}

void ws_session_log_frame(struct ws_session_log *l, unsigned dir, const char *peer,
    const struct ws_frame *f)
{
	struct ws_log_record r;
	struct ws_buf pl = WS_BUF_INIT;
	struct timeval tv;

	if (!l || l->fd < 0 || l->failed)
		return;
	gettimeofday(&tv, NULL);
	r.time_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
	r.dir = dir;
	r.peer = peer;
	r.peerlen = strnlen(peer, 255);
	while (r.peerlen && !ws_utf8_valid((const uint8_t *)peer, r.peerlen))
		r.peerlen--; /* a name cut inside a character */
	r.frame = *f;
	l->b.len = 0;
	if (ws_log_record_encode(&r, &pl) ||
	    ws_frame_put(&l->b, WS_FRAME_LOG, 0, 0, pl.p, pl.len) ||
	    write(l->fd, l->b.p, l->b.len) != (ssize_t)l->b.len)
		l->failed = 1;
	ws_buf_release(&pl);
}

uint64_t ws_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ws_peer_send_heartbeat(struct ws_peer *p, const uint32_t *ch,
    const struct ws_vclock *clocks, size_t n)
{
	struct ws_buf pl = WS_BUF_INIT;
	struct timeval tv;
	size_t i;
	int rc;

	gettimeofday(&tv, NULL);
	if ((rc = ws_buf_put_varint(&pl, (uint64_t)tv.tv_sec * 1000u +
	    (uint64_t)tv.tv_usec / 1000u)) == 0)
		rc = ws_peer_send(p, WS_FRAME_HEARTBEAT, 0, 0, pl.p, pl.len);
	for (i = 0; rc == 0 && i < n; i++)
		rc = ws_peer_send_clock(p, ch[i], 0, &clocks[i]);
	ws_buf_release(&pl);
	return rc;
}

void ws_peer_init(struct ws_peer *p, const struct ws_conn *conn, size_t max_frame,
    size_t out_max)
{
	memset(p, 0, sizeof(*p));
	p->conn = *conn;
	ws_frame_decoder_init(&p->dec, max_frame, 0);
	ws_buf_init(&p->out);
	p->out_max = out_max;
	p->last_rx_ms = p->last_tx_ms = ws_now_ms();
}

void ws_peer_release(struct ws_peer *p)
{
	ws_sec_free(p->sec);
	p->sec = NULL;
	ws_conn_close(&p->conn);
	ws_frame_decoder_release(&p->dec);
	ws_buf_release(&p->out);
}

/*
 * Whether queueing n more bytes of a frame of this type passes the bound.
 * Any frame fits an empty queue, so a batch larger than the bound is not
 * stuck for good.  Batches: out_max waiting bytes.  The small frames that
 * keep a session going (clocks, notices, heartbeats) are counted apart,
 * out_max of them since the queue was last empty, so that a peer whose
 * batches wait (behind one large batch, say) still hears from this side,
 * and one that asks without reading cannot grow the queue for ever.
 */
static int over(struct ws_peer *p, uint8_t type, size_t n)
{
	/* A sealed frame's inner frame was weighed (ws_peer_send()). */
	if (!p->out_max || !ws_peer_pending(p) || type == WS_FRAME_SEALED)
		return 0;
	if (type == WS_FRAME_BATCH)
		return ws_peer_pending(p) + n > p->out_max;
	return p->ctl_queued + n > p->out_max;
}

/* Count a frame of this type as queued (see over()). */
static void queued(struct ws_peer *p, uint8_t type, size_t n)
{
	if (type != WS_FRAME_BATCH && type != WS_FRAME_SEALED)
		p->ctl_queued += n;
}

int ws_peer_send_raw(struct ws_peer *p, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n)
{
	int rc;

	if (p->out_off && p->out_off == p->out.len)
		p->out.len = p->out_off = p->ctl_queued = 0;
	if (over(p, type, n))
		return WS_EBUSY;
	if (!p->sent_preamble) {
		if ((rc = ws_frame_put_preamble(&p->out)))
			return rc;
		p->sent_preamble = 1;
	}
	if ((rc = ws_frame_put(&p->out, type, flags, ch, payload, n)))
		return rc;
	queued(p, type, n);
	p->last_tx_ms = ws_now_ms();
	/* Sealed frames are logged as what they hold, when it is queued. */
	if (p->log && type != WS_FRAME_SEALED) {
		struct ws_frame f = {type, flags, ch, (uint32_t)n, payload};

		ws_session_log_frame(p->log, WS_LOG_OUT, p->conn.name, &f);
	}
	return 0;
}

int ws_peer_send(struct ws_peer *p, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n)
{
	int rc;

	if (!p->sec)
		return ws_peer_send_raw(p, type, flags, ch, payload, n);
	if (over(p, type, n))
		return WS_EBUSY;
	/* A secure session: the whole frame goes inside a sealed one. */
	if ((rc = ws_sec_seal(p->sec, type, flags, ch, payload, n)) == 0)
		queued(p, type, n);
	if (rc == 0 && p->log) {
		struct ws_frame f = {type, flags, ch, (uint32_t)n, payload};

		ws_session_log_frame(p->log, WS_LOG_OUT, p->conn.name, &f);
	}
	return rc;
}

int ws_peer_send_error(struct ws_peer *p, uint32_t ch, int code, const char *msg)
{
	struct ws_buf pl = WS_BUF_INIT;
	int rc;

	if (!(rc = ws_buf_put_svarint(&pl, code)) &&
	    !(rc = ws_buf_append(&pl, msg, strlen(msg))))
		rc = ws_peer_send(p, WS_FRAME_ERROR, 0, ch, pl.p, pl.len);
	ws_buf_release(&pl);
	return rc;
}

int ws_peer_send_clock(struct ws_peer *p, uint32_t ch, uint8_t flags,
    const struct ws_vclock *vc)
{
	struct ws_buf pl = WS_BUF_INIT;
	int rc;

	if (!(rc = ws_vclock_encode(vc, &pl)))
		rc = ws_peer_send(p, WS_FRAME_CLOCK, flags, ch, pl.p, pl.len);
	ws_buf_release(&pl);
	return rc;
}

int ws_peer_flush(struct ws_peer *p, char *err)
{
	char buf[64];
	ssize_t k;

	while (ws_peer_pending(p)) {
		k = write(p->conn.wfd, p->out.p + p->out_off, ws_peer_pending(p));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (k < 0)
			return ws_error(err, WS_EIO, "cannot write to %s: %s",
			    p->conn.name, ws_errno_text(errno, buf));
		p->out_off += (size_t)k;
	}
	p->out.len = p->out_off = p->ctl_queued = 0;
	return 0;
}

int ws_peer_read(struct ws_peer *p, ws_frame_cb *cb, void *clientData, char *err)
{
	uint8_t chunk[READ_CHUNK];
	struct ws_frame f;
	size_t off, used;
	char buf[64];
	ssize_t n;
	int rc;

	for (;;) {
		n = read(p->conn.rfd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return ws_error(err, WS_EIO, "cannot read from %s: %s",
			    p->conn.name, ws_errno_text(errno, buf));
		p->last_rx_ms = ws_now_ms();
		if (n == 0) {
			p->eof = 1;
			/* A refusal comes as an error frame first; a bare end is
			 * the network's or a stopped peer's: worth another try. */
			if ((rc = ws_frame_decoder_finish(&p->dec, err)) == 0 && p->sec &&
			    !ws_sec_ready(p->sec))
				rc = ws_error(err, WS_EIO, "%s closed the connection "
				    "during the handshake", p->conn.name);
			return rc;
		}
		for (off = 0; off < (size_t)n; off += used) {
			rc = ws_frame_decoder_feed(&p->dec, chunk + off, (size_t)n - off,
			    &used, &f, err);
			if (rc < 0)
				return rc;
			if (rc == 1 && (rc = ws_peer_take(p, &f, cb, clientData, err)))
				return rc;
		}
		if ((size_t)n < sizeof(chunk))
			return 0;
	}
}

int ws_peer_take(struct ws_peer *p, const struct ws_frame *f, ws_frame_cb *cb,
    void *clientData, char *err)
{
	struct ws_frame in;
	int rc = WS_SEC_CLEAR;

	if (p->sec && f->type == WS_FRAME_AUTH) {
		/* A handshake step, logged before its answer is. */
		if (p->log)
			ws_session_log_frame(p->log, WS_LOG_IN, p->conn.name, f);
		return ws_sec_open(p->sec, f, &in, err);
	}
	if (p->sec && (rc = ws_sec_open(p->sec, f, &in, err)) < 0)
		return rc;
	if (rc == WS_SEC_INNER) {
		f = &in;
	} else if (rc == WS_SEC_PLAIN) {
		ws_sec_free(p->sec);
		p->sec = NULL;
	}
	if (p->log)
		ws_session_log_frame(p->log, WS_LOG_IN, p->conn.name, f);
	return cb(p, f, clientData);
}

/* The filter's frames go out as they are. */
static int emit_raw(void *cd, uint8_t type, const void *payload, size_t n)
{
	return ws_peer_send_raw(cd, type, 0, 0, payload, n);
}

int ws_peer_secure(struct ws_peer *p, int initiator, const struct ws_keypair *me,
    ws_secure_check_fn *check, void *clientData)
{
	return ws_sec_new(&p->sec, initiator, me, check, clientData, emit_raw, p);
}

const uint8_t *ws_peer_key(const struct ws_peer *p)
{
	return p->sec ? ws_sec_peer_key(p->sec) : NULL;
}

int ws_secure_ready(const struct ws_peer *p)
{
	return p->sec && ws_sec_ready(p->sec);
}
