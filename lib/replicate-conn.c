/* SPDX-License-Identifier: MIT */
/*
 * replicate-conn.c - the replicator's connection to its publisher: a
 * byte stream of JSON lines (plain, or secure: one WS_FRAME_MESSAGE
 * frame a line, secure.h), or HTTP, one POST per exchange through
 * lib/http.c.  It queues the lines to send, and reads the publisher's
 * messages one at a time.  A stream connection waits on its own event
 * loop (loop.h): the replicator is a client that waits for one thing at
 * a time, so it runs one round of the loop for each wait, the stream's
 * fd watched for reading throughout.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "replicate-int.h"

/* Seconds an HTTP request may take beyond the long poll it asks for. */
#define POST_SLACK_S 120L

/* The handshake's check of the publisher's key: given, or in known hubs. */
static int check_pub(void *cd, const uint8_t pk[WS_KEY_PUBLICBYTES], char *err)
{
	struct rconn *r = cd;
	const struct ws_replicate_pull_opts *o = r->o;
	char text[WS_KEY_TEXTMAX];
	int rc, added;

	ws_key_text(pk, text);
	if (o->has_pub_key) {
		if (sodium_memcmp(pk, o->pub_key, WS_KEY_PUBLICBYTES) == 0)
			return 0;
		return ws_error(err, WS_EPERM, "the publisher presented key %s, not the "
		    "one given with --hub-key: refusing it", text);
	}
	if (!o->known_hubs)
		return ws_error(err, WS_EPERM, "cannot check the publisher's key %s: "
		    "give --hub-key or a known-hubs file", text);
	if ((rc = ws_known_hubs_check(o->known_hubs, o->source, pk, o->accept_new_pub,
	    &added, err)))
		return rc;
	if (added)
		ws_log_printf(o->log, o->log_cd, "added the key of the publisher at %s "
		    "to %s: %s", o->source, o->known_hubs, text);
	return 0;
}

/* A frame from a secure publisher: its message goes to the lines read. */
static int rep_frame(struct ws_peer *pp, const struct ws_frame *f, void *cd)
{
	struct rconn *r = cd;
	struct ws_rd rd;
	int64_t code;

	(void)pp;
	if (f->type == WS_FRAME_MESSAGE)
		return rpl_message_line(&r->in, f, r->err);
	if (f->type == WS_FRAME_ERROR) {
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_svarint(&rd, &code) || code >= 0 || code < WS_ERROR_MIN)
			code = WS_EIO;
		return ws_error(r->err, (int)code, "the publisher ends the session: %.*s",
		    (int)ws_rd_left(&rd), (const char *)rd.p);
	}
	if (f->type == WS_FRAME_HEARTBEAT)
		return 0;
	return ws_error(r->err, WS_ECORRUPT, "unexpected %s frame from the publisher",
	    ws_frame_type_name(f->type) ? ws_frame_type_name(f->type) : "unknown");
}

/* What a round of the loop found ready (rconn.ready). */
#define READY_IN 1                /* the publisher's stream */
#define READY_EXTRA 2             /* the caller's extra fd */

static void on_ready(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct rconn *r = cd;

	(void)l;
	if ((mask & WS_LOOP_READ) && fd == r->conn.rfd)
		r->ready |= READY_IN;
	if ((mask & WS_LOOP_READ) && fd == r->extra_fd)
		r->ready |= READY_EXTRA;
}

/* Watch fd for mask too. */
static int watch(struct rconn *r, int fd, int mask)
{
	int rc = ws_loop_add_fd(r->loop, fd, mask, on_ready, r);

	return rc ? ws_error(r->err, rc, "cannot wait for the publisher: %s",
	    ws_strerror(rc)) : 0;
}

/* One round of the loop, waiting at most wait_ms (-1: no limit): r->ready. */
static int wait_round(struct rconn *r, int wait_ms)
{
	int rc;

	r->ready = 0;
	ws_loop_set_max_wait(r->loop, wait_ms);
	if ((rc = ws_loop_once(r->loop, 1, r->err)) < 0)
		return rc;
	return r->ready;
}

/*
 * Wait at most wait_ms for the publisher's bytes or for extra_fd (may be
 * -1) to be readable: READY_IN and READY_EXTRA as they came, 0 when time
 * is up or a signal came, or <0.
 */
static int wait_in(struct rconn *r, int wait_ms, int extra_fd)
{
	int rc;

	if (extra_fd >= 0 && (rc = watch(r, extra_fd, WS_LOOP_READ)))
		return rc;
	r->extra_fd = extra_fd;
	rc = wait_round(r, wait_ms);
	r->extra_fd = -1;
	if (extra_fd >= 0)
		ws_loop_del_fd(r->loop, extra_fd, WS_LOOP_READ);
	return rc;
}

/* Wait for room to write to the publisher: 0 or <0.  The stream's input
 * is not watched meanwhile, so that its bytes do not end every round. */
static int wait_out(struct rconn *r)
{
	int rc, rc2;

	ws_loop_del_fd(r->loop, r->conn.rfd, WS_LOOP_READ);
	if ((rc = watch(r, r->conn.wfd, WS_LOOP_WRITE)) == 0)
		rc = wait_round(r, -1);
	ws_loop_del_fd(r->loop, r->conn.wfd, WS_LOOP_WRITE);
	if ((rc2 = watch(r, r->conn.rfd, WS_LOOP_READ)) && rc >= 0)
		rc = rc2;
	return rc < 0 ? rc : 0;
}

int rconn_open(struct rconn *r, const struct ws_replicate_pull_opts *o, char *err)
{
	const char *source = o->source;
	int rc;

	memset(r, 0, sizeof(*r));
	r->conn.rfd = r->conn.wfd = r->extra_fd = -1;
	r->err = err;
	r->o = o;
	if (strncasecmp(source, "http://", 7) == 0 || strncasecmp(source, "https://", 8) == 0) {
		r->http = 1;
		if (ws_http_client_init(&r->web, source, "wsync-replicate"))
			return ws_error(err, WS_ENOMEM, "cannot start libcurl");
		curl_easy_setopt(r->web.curl, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(r->web.curl, CURLOPT_HTTPAUTH, (long)CURLAUTH_ANY);
		return 0;
	}
	if ((rc = ws_transport_connect(source, &r->conn, err)) ||
	    (rc = ws_loop_new(&r->loop, err)) ||
	    (rc = watch(r, r->conn.rfd, WS_LOOP_READ)) || !o->key)
		return rc;
	/* Secure: the handshake's first step is queued now, sent with the first flush. */
	if (ws_fd_nonblock(r->conn.rfd) || ws_fd_nonblock(r->conn.wfd))
		return ws_error(err, WS_EIO, "cannot set up the connection");
	if (!(r->peer = malloc(sizeof(*r->peer))))
		return WS_ENOMEM;
	ws_peer_init(r->peer, &r->conn, SECURE_MAX_FRAME, 0);
	return ws_peer_secure(r->peer, 1, o->key, check_pub, r);
}

void rconn_close(struct rconn *r)
{
	ws_http_client_release(&r->web);
	ws_loop_free(r->loop);
	rpl_peer_free(r->peer); /* its conn is closed below */
	if (!r->http)
		ws_conn_close(&r->conn);
	ws_buf_release(&r->in);
	ws_buf_release(&r->raw);
	ws_buf_release(&r->resp);
	ws_buf_release(&r->out);
	memset(r, 0, sizeof(*r));
	r->conn.rfd = r->conn.wfd = r->extra_fd = -1;
}

int rconn_send(struct rconn *r, json_t *m)
{
	return rpl_send(&r->out, m);
}

/* Streams: write every queued line. */
int rconn_flush(struct rconn *r)
{
	char buf[64];
	size_t off = 0;
	ssize_t w;

	if (r->http)
		return 0;
	if (r->peer) {
		/* Secure: one MESSAGE frame a line, then write them all. */
		size_t before = ws_peer_pending(r->peer);
		int rc;

		if ((rc = rpl_frame_lines(r->peer, &r->out, &off)))
			return rc;
		if (r->bytes_out && ws_peer_pending(r->peer) > before)
			*r->bytes_out += ws_peer_pending(r->peer) - before;
		while (ws_peer_pending(r->peer)) {
			if ((rc = ws_peer_flush(r->peer, r->err)))
				return rc;
			if (ws_peer_pending(r->peer) && (rc = wait_out(r)))
				return rc;
		}
		return 0;
	}
	while (off < r->out.len) {
		w = write(r->conn.wfd, r->out.p + off, r->out.len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ws_error(r->err, WS_EIO, "cannot write to the publisher: %s",
			    ws_errno_text(errno, buf));
		off += (size_t)w;
	}
	if (r->bytes_out)
		*r->bytes_out += r->out.len;
	r->out.len = 0;
	return 0;
}

/* HTTP: POST the queued lines; the response's lines are queued to read. */
static int rconn_post(struct rconn *r, unsigned wait_s)
{
	char hs[128], hw[128], a[WS_REPLICATE_TOKEN_MAX + 32];
	const char *hdrs[6];
	long status = 0;
	size_t k = 0, n, off;
	CURLcode cc;
	const char *line;
	json_t *m;

	hdrs[k++] = "Content-Type: application/x-ndjson";
	hdrs[k++] = "Expect:";
	if (r->session[0]) {
		snprintf(hs, sizeof(hs), "Wsync-Session: %s", r->session);
		hdrs[k++] = hs;
	}
	snprintf(hw, sizeof(hw), "Wsync-Wait: %u", wait_s);
	hdrs[k++] = hw;
	if (r->o->http_token) {
		snprintf(a, sizeof(a), "Authorization: Bearer %s", r->o->http_token);
		hdrs[k++] = a;
	}
	hdrs[k] = NULL;
	r->resp.len = r->resp_off = 0;
	cc = ws_http_post(&r->web, hdrs, r->out.p, r->out.len, (long)wait_s + POST_SLACK_S,
	    &r->resp, &status);
	sodium_memzero(a, sizeof(a));
	if (r->bytes_out)
		*r->bytes_out += r->out.len;
	r->out.len = 0;
	if (cc == CURLE_OUT_OF_MEMORY && status == 0)
		return WS_ENOMEM;
	if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CACERT_BADFILE)
		return ws_error(r->err, WS_EPERM, "cannot verify the publisher's TLS "
		    "certificate: %s (name its CA in CURL_CA_BUNDLE)",
		    ws_http_client_error(&r->web, cc));
	if (cc != CURLE_OK)
		return ws_error(r->err, cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_RESOLVE_PROXY ?
		    WS_EUNSUPP : cc == CURLE_LOGIN_DENIED ? WS_EPERM : WS_EIO,
		    "HTTP request failed: %s", curl_easy_strerror(cc));
	if (r->bytes_in)
		*r->bytes_in += r->resp.len;
	if (status != 200) {
		char why[WS_ERRLEN] = "";

		off = 0;
		if (rpl_next_line(&r->resp, &off, &line, &n) &&
		    ws_replicate_parse_msg(line, n, &m, NULL) == 0) {
			snprintf(why, sizeof(why), ": %s",
			    json_string_value(json_object_get(m, "error")) ?
			    json_string_value(json_object_get(m, "error")) : "");
			json_decref(m);
		}
		return ws_error(r->err, status == 401 || status == 403 ? WS_EPERM :
		    status == 404 ? WS_ENOTFOUND : status >= 500 ? WS_EIO : WS_ECORRUPT,
		    "the publisher answered HTTP %ld%s", status, why);
	}
	if (r->resp.len && r->resp.p[r->resp.len - 1] != '\n' && ws_buf_putc(&r->resp, '\n'))
		return WS_ENOMEM;
	return 0;
}

/*
 * The next message from the publisher into *m: 1, 0 when none came
 * within wait_ms (0: only what is already here), 2 when extra_fd (may
 * be -1) became readable first, or <0.
 */
int rconn_recv(struct rconn *r, json_t **m, int wait_ms, int extra_fd)
{
	const char *line;
	size_t n;
	ssize_t got;
	int rc;

	*m = NULL;
	for (;;) {
		struct ws_buf *b = r->http ? &r->resp : &r->in;
		size_t *off = r->http ? &r->resp_off : &r->in_off;


		while (rpl_next_line(b, off, &line, &n)) {
			if (n == 0 || (n == 1 && line[0] == '\r'))
				continue;
			return ws_replicate_parse_msg(line, n, m, r->err) ? WS_ECORRUPT : 1;
		}
		if (r->http) {
			r->resp.len = r->resp_off = 0;
			if (wait_ms == 0)
				return 0;
			if ((rc = rconn_post(r, (unsigned)(wait_ms / 1000))))
				return rc;
			if (r->resp.len == 0)
				return 0;
			continue;
		}
		rpl_compact(&r->in, &r->in_off);
		if (r->in.len > WS_REPLICATE_MAX_LINE)
			return ws_error(r->err, WS_ETOOBIG, "a message longer than %u bytes",
			    WS_REPLICATE_MAX_LINE);
		if ((rc = rconn_flush(r)))
			return rc;
		if ((rc = wait_in(r, wait_ms, extra_fd)) <= 0)
			return rc;
		if (!(rc & READY_IN))
			return 2;
		b = r->peer ? &r->raw : &r->in;
		if (ws_buf_reserve(b, 65536))
			return WS_ENOMEM;
		got = read(r->conn.rfd, b->p + b->len, b->cap - b->len);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got < 0)
			return ws_error(r->err, WS_EIO, "cannot read from the publisher: %s",
			    strerror(errno));
		if (got == 0 && r->peer && !ws_secure_ready(r->peer))
			return ws_error(r->err, WS_EPERM, "%s closed the connection during "
			    "the handshake", r->conn.name);
		if (got == 0)
			return ws_error(r->err, WS_EIO, "the publisher closed the connection");
		b->len += (size_t)got;
		if (r->bytes_in)
			*r->bytes_in += (uint64_t)got;
		if (r->peer) {
			/* Unframe: the messages become lines of r->in. */
			rc = rpl_frames_feed(r->peer, r->raw.p, r->raw.len, rep_frame, r, r->err);
			r->raw.len = 0;
			if (rc)
				return rc;
		}
	}
}

