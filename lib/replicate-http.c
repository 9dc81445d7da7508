/* SPDX-License-Identifier: MIT */
/*
 * replicate-http.c - the publisher's HTTP mapping (wsync-replicate(1)):
 * one POST of JSON lines per exchange, its session named by the
 * Wsync-Session header, a long poll by Wsync-Wait, the client's right by
 * its bearer token.  lib/http.c runs the server (libmicrohttpd, in
 * external-polling mode from the publisher's loop, so every callback
 * below runs in the loop's thread, between two polls).  A request is
 * authorized from its head, before its body is read: the body of a
 * refused one never is.
 */
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replicate-int.h"

/* Most bytes of a PEM file (a certificate chain or its key). */
#define PEM_MAX (1u << 20)

/*
 * One HTTP request, from its head to its response (libmicrohttpd's
 * per-request context).  A long poll (Wsync-Wait) is a suspended
 * request waiting for its session's messages or its deadline.
 */
struct hreq {
	struct hreq *next;
	struct MHD_Connection *conn;
	struct ws_buf body;
	size_t want;                  /* Content-Length */
	struct ws_replicate_http_req r;
	int who;                      /* the token: its entry + 1; 0 anonymous */
	enum ws_right right;          /* what it may do on the table */
	int state;                    /* HR_* */
	struct psess *s;              /* HR_WAIT: the session waited on */
	uint64_t deadline;
};

enum { HR_BODY, HR_WAIT, HR_READY };

/* Queue a response: status, body[0..n) as JSON lines, the session's name. */
static enum MHD_Result http_respond(struct MHD_Connection *c, unsigned status,
    const char *session, const void *body, size_t n)
{
	const char *h[8];
	size_t k = 0;

	if (session) {
		h[k++] = "Wsync-Session";
		h[k++] = session;
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
		h[k++] = MHD_HTTP_HEADER_ALLOW;
		h[k++] = "POST";
	}
	if (status == MHD_HTTP_UNAUTHORIZED) {
		h[k++] = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
		h[k++] = "Bearer realm=\"wsync-replicate\"";
	}
	h[k] = NULL;
	return ws_http_respond(c, status, "application/x-ndjson", h, body, n);
}

/* Refuse a request: a ReplicateError line with the message, also logged. */
static enum MHD_Result http_error(struct pub *p, struct MHD_Connection *c, unsigned status,
    const char *fmt, ...) WS_PRINTF(4, 5);

static enum MHD_Result http_error(struct pub *p, struct MHD_Connection *c, unsigned status,
    const char *fmt, ...)
{
	char msg[WS_ERRLEN], peer[64];
	struct ws_buf b = WS_BUF_INIT;
	enum MHD_Result ok = MHD_NO;
	va_list ap;
	json_t *m;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	plog(p, "HTTP %s: %u: %s", ws_http_peer(c, peer), status, msg);
	m = json_pack("{s:s,s:s}", "mt", "ReplicateError", "error", msg);
	if (m && rpl_put_msg(&b, m) == 0)
		ok = http_respond(c, status, NULL, b.p, b.len);
	json_decref(m);
	ws_buf_release(&b);
	return ok;
}

/*
 * Who sends request h, and its right on the table: 0, or the status that
 * refuses it, with the reason in msg.
 */
static unsigned http_right(struct pub *p, struct hreq *h, char msg[WS_ERRLEN])
{
	const struct ws_authkeys *t = p->o->http_tokens;
	const struct ws_authkey *k;

	if (!h->r.has_token) {
		if (t) {
			snprintf(msg, WS_ERRLEN, "this publisher takes HTTP requests with a "
			    "token only: send Authorization: Bearer TOKEN");
			return MHD_HTTP_UNAUTHORIZED;
		}
		h->right = WS_RIGHT_READ;
		return 0;
	}
	if (!t) {
		snprintf(msg, WS_ERRLEN, "this publisher takes no tokens (it has no "
		    "tokens file)");
		return MHD_HTTP_UNAUTHORIZED;
	}
	if (!(k = ws_replicate_tokens_find(t, h->r.token_hash))) {
		snprintf(msg, WS_ERRLEN, "unknown token");
		return MHD_HTTP_UNAUTHORIZED;
	}
	h->who = (int)(k - t->k) + 1;
	if ((h->right = ws_authkey_right(k, p->o->table)) == WS_RIGHT_NONE) {
		snprintf(msg, WS_ERRLEN, "this token has no rights on table '%s'", p->o->table);
		return MHD_HTTP_FORBIDDEN;
	}
	return 0;
}

/* The head of a request: check it, authorize it, make its context. */
static enum MHD_Result http_head(struct pub *p, struct MHD_Connection *c, const char *method,
    void **ctx)
{
	const char *cl, *te;
	char msg[WS_ERRLEN], *end;
	unsigned long long n;
	struct hreq *h;
	unsigned status;

	if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
		return http_error(p, c, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST with JSON lines");
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te || !cl)
		return http_error(p, c, MHD_HTTP_LENGTH_REQUIRED, "send a Content-Length");
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (!*cl || *end || errno || strspn(cl, "0123456789") != strlen(cl))
		return http_error(p, c, MHD_HTTP_BAD_REQUEST, "bad Content-Length");
	if (n > p->max_body)
		return http_error(p, c, MHD_HTTP_CONTENT_TOO_LARGE, "a request body longer "
		    "than %zu bytes", p->max_body);
	if (!(h = calloc(1, sizeof(*h))))
		return MHD_NO;
	h->conn = c;
	h->want = (size_t)n;
	if (ws_replicate_http_headers(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
	    "Wsync-Session"), MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Wsync-Wait"),
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
	    &h->r, msg)) {
		free(h);
		return http_error(p, c, MHD_HTTP_BAD_REQUEST, "%s", msg);
	}
	if ((status = http_right(p, h, msg))) {
		free(h);
		return http_error(p, c, status, "%s", msg);
	}
	h->next = p->hr;
	p->hr = h;
	*ctx = h;
	return MHD_YES;
}

/* Answer with what session s has queued; a closing session ends. */
static enum MHD_Result http_flush(struct pub *p, struct hreq *h, struct psess *s)
{
	enum MHD_Result ok;

	ok = http_respond(h->conn, MHD_HTTP_OK, s->id, s->out.p + s->out_off,
	    s->out.len - s->out_off);
	s->out.len = s->out_off = 0;
	h->s = NULL;
	if (s->closing)
		p->sops->close(p, s);
	return ok;
}

/* A whole request: run its messages on its session, answer or wait. */
static enum MHD_Result http_run(struct pub *p, struct hreq *h)
{
	struct psess *s = NULL;
	int rc;

	if (h->r.session[0]) {
		for (s = p->sess; s; s = s->next)
			if (s->http && strcmp(s->id, h->r.session) == 0)
				break;
		if (!s)
			return http_error(p, h->conn, MHD_HTTP_NOT_FOUND, "no such session: "
			    "start again with ReplicateStart");
		if (s->who != h->who)
			return http_error(p, h->conn, MHD_HTTP_FORBIDDEN, "session %s was "
			    "started with another token", s->id);
	} else {
		if (!(s = p->sops->open(p)))
			return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
			    "out of memory");
		s->right = h->right;
		s->who = h->who;
	}
	if (ws_buf_append(&s->in, h->body.p, h->body.len) || ws_buf_putc(&s->in, '\n')) {
		p->sops->close(p, s);
		return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
	}
	s->last_ms = ws_now_ms();
	rc = p->sops->run(s);
	s->in.len = s->in_off = 0;
	if (rc) {
		p->sops->close(p, s);
		return http_error(p, h->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s",
		    ws_strerror(rc));
	}
	if (s->out.len == s->out_off && h->r.wait_s && !s->closing && s->state == S_LIVE) {
		/* A long poll: pub_http_wake() resumes it. */
		h->state = HR_WAIT;
		h->s = s;
		h->deadline = ws_now_ms() + h->r.wait_s * 1000ull;
		MHD_suspend_connection(h->conn);
		return MHD_YES;
	}
	return http_flush(p, h, s);
}

/* libmicrohttpd's handler: the head, then the body in parts, then the end. */
static enum MHD_Result http_request(void *cd, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *data, size_t *size, void **ctx)
{
	struct pub *p = cd;
	struct hreq *h = *ctx;

	(void)url;
	(void)version;
	if (!h)
		return http_head(p, c, method, ctx);
	if (*size) {
		/* libmicrohttpd keeps to the Content-Length, checked in http_head. */
		if (h->state != HR_BODY || *size > h->want - h->body.len ||
		    ws_buf_append(&h->body, data, *size))
			return MHD_NO;
		*size = 0;
		return MHD_YES;
	}
	if (h->state == HR_WAIT)
		return MHD_YES;
	if (h->state == HR_READY) {
		h->state = HR_BODY;
		if (!h->s)
			return http_error(p, c, MHD_HTTP_NOT_FOUND, "the session ended");
		return http_flush(p, h, h->s);
	}
	return http_run(p, h);
}

/* A request is over (answered, or its connection gone): free its context. */
static void http_done(void *cd, struct MHD_Connection *c, void **ctx,
    enum MHD_RequestTerminationCode why)
{
	struct pub *p = cd;
	struct hreq *h = *ctx, **hp;

	(void)c;
	(void)why;
	if (!h)
		return;
	for (hp = &p->hr; *hp; hp = &(*hp)->next)
		if (*hp == h) {
			*hp = h->next;
			break;
		}
	ws_buf_release(&h->body);
	free(h);
	*ctx = NULL;
}

/*
 * Resume the long polls that have something to send, whose session
 * ended, or whose time is up, then let libmicrohttpd answer them.
 * With all, every one (the publisher stops).
 */
void pub_http_wake(struct pub *p, int all)
{
	uint64_t now = ws_now_ms();
	struct hreq *h;
	int any = 0;

	for (h = p->hr; h; h = h->next)
		if (h->state == HR_WAIT && (all || !h->s || h->s->closing ||
		    h->s->out.len > h->s->out_off || now >= h->deadline)) {
			h->state = HR_READY;
			MHD_resume_connection(h->conn);
			any = 1;
		}
	if (any)
		ws_http_run(&p->http);
}

void pub_http_timeout(struct pub *p, int *timeout)
{
	uint64_t now = ws_now_ms();
	struct hreq *h;

	ws_http_timeout(&p->http, timeout);
	for (h = p->hr; h; h = h->next)
		if (h->state == HR_WAIT && h->deadline > now &&
		    h->deadline - now < (uint64_t)*timeout)
			*timeout = (int)(h->deadline - now);
}

void pub_http_forget(struct pub *p, struct psess *s)
{
	struct hreq *h;

	for (h = p->hr; h; h = h->next)
		if (h->s == s)
			h->s = NULL;
}

void pub_http_stop(struct pub *p)
{
	if (!p->http.mhd)
		return;
	/* No suspended request may outlive the daemon. */
	pub_http_wake(p, 1);
	ws_http_stop(&p->http);
}

/* Read a whole PEM file into a new string (*out, the caller frees). */
static int read_pem(const char *path, const char *what, int secret, char **out, char *err)
{
	char buf[64], *s = NULL;
	size_t n = 0, cap = 0, got;
	FILE *f = NULL;
	int rc = 0;

	*out = NULL;
	if (secret) {
		if ((rc = rpl_open_secret(path, what, &f, err)))
			return rc;
	} else if (!(f = fopen(path, "r"))) {
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : errno == EACCES ?
		    WS_EPERM : WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	}
	do {
		if (n + 4096 + 1 > cap) {
			char *t;

			if (cap >= PEM_MAX) {
				rc = ws_error(err, WS_ECONFIG, "%s '%s' is longer than 1 MiB",
				    what, path);
				goto out;
			}
			cap = cap ? 2 * cap : 8192;
			/* Grown by copying, so that a secret leaves no copy behind. */
			if (!(t = sodium_malloc(cap))) {
				rc = WS_ENOMEM;
				goto out;
			}
			if (s) {
				memcpy(t, s, n);
				sodium_free(s);
			}
			s = t;
		}
		got = fread(s + n, 1, cap - n - 1, f);
		n += got;
	} while (got > 0);
	if (ferror(f)) {
		rc = ws_error(err, WS_EIO, "cannot read %s '%s'", what, path);
		goto out;
	}
	s[n] = 0;
	*out = s;
	s = NULL;
out:
	if (s)
		sodium_free(s);
	fclose(f);
	return rc;
}

/*
 * Start the HTTP side on listening socket fd (libmicrohttpd owns it from
 * then on, and closes it when stopped).  HTTPS with a certificate and
 * key; plain HTTP only on loopback unless insecure.
 */
int pub_http_start(struct pub *p, int fd, const char *bound, char *err)
{
	const struct ws_replicate_pub_opts *o = p->o;
	struct ws_http_server_opts so = {
		.fd = fd,
		.timeout_s = o->http_timeout ? o->http_timeout : WS_REPLICATE_HTTP_TIMEOUT,
		.max_conn = WS_REPLICATE_HTTP_MAX_CONN,
		.max_per_ip = WS_REPLICATE_HTTP_MAX_PER_IP,
		.memory = WS_REPLICATE_HTTP_MEMORY,
		.on_request = http_request,
		.on_done = http_done,
		.cd = p,
		.log = o->log,
		.log_cd = o->log_cd,
	};
	char *cert = NULL, *key = NULL;
	int rc = 0;

	if (!o->tls_cert != !o->tls_key)
		return ws_error(err, WS_EINVAL, "HTTPS needs a certificate and its key");
	if (!o->tls_cert && !o->insecure && !ws_http_local_only(fd))
		return ws_error(err, WS_ECONFIG, "plain HTTP on %s would be reachable from "
		    "other hosts: serve HTTPS (--tls-cert and --tls-key), listen on "
		    "loopback, or give --insecure", o->http);
	if (o->tls_cert) {
		if ((rc = read_pem(o->tls_cert, "TLS certificate", 0, &cert, err)) ||
		    (rc = read_pem(o->tls_key, "TLS key file", 1, &key, err)))
			goto out;
		so.cert_pem = cert;
		so.key_pem = key;
	}
	if (ws_http_serve(&p->http, &so))
		rc = o->tls_cert ? ws_error(err, WS_ECONFIG, "cannot serve HTTPS with "
		    "certificate '%s' and key '%s': %s", o->tls_cert, o->tls_key,
		    p->http.err[0] ? p->http.err : "libmicrohttpd refused them") :
		    ws_error(err, WS_EIO, "cannot serve HTTP on %s: %s", bound,
		    p->http.err[0] ? p->http.err : "libmicrohttpd failed");
out:
	if (key) {
		sodium_memzero(key, strlen(key));
		sodium_free(key);
	}
	if (cert)
		sodium_free(cert);
	return rc;
}
