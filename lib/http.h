/* SPDX-License-Identifier: MIT */
/*
 * http.h - HTTP in one module, private to the library: a libmicrohttpd
 * server in external-polling mode (its epoll descriptor is polled by the
 * caller's loop, so every callback runs in the caller's thread), and a
 * libcurl client for one URL.  The protocols spoken over them (the
 * replicate mapping, a fetched file) are the callers': this module knows
 * nothing of messages, sessions or tokens, and it never prints.
 *
 * The types of the two libraries stay visible (struct MHD_Connection in
 * the handlers, CURL for a caller's extra options): the module owns the
 * set-up, the limits and the error text that both callers would
 * otherwise write twice.
 */
#ifndef WSYNC_HTTP_H
#define WSYNC_HTTP_H

#include <curl/curl.h>
#include <microhttpd.h>
#include <stddef.h>

#include "wsync/buf.h"
#include "wsync/error.h"
#include "wsync/session.h"

/* --- server ----------------------------------------------------------------- */

struct ws_http_server_opts {
	int fd;                       /* listening socket, non-blocking */
	const char *cert_pem;         /* HTTPS: the certificate (chain), PEM */
	const char *key_pem;          /* and its key; both NULL: plain HTTP */
	unsigned timeout_s;           /* drop a connection idle this long */
	unsigned max_conn, max_per_ip;
	size_t memory;                /* per connection */
	MHD_AccessHandlerCallback on_request;
	MHD_RequestCompletedCallback on_done;
	void *cd;                     /* both handlers' clientData */
	ws_log_fn *log;               /* libmicrohttpd's messages once running */
	void *log_cd;
};

struct ws_http_server {
	struct MHD_Daemon *mhd;       /* NULL: not serving */
	char err[WS_ERRLEN];          /* why starting failed, as libmicrohttpd
	                                 said it ("" when it said nothing) */
	ws_log_fn *log;
	void *log_cd;
};

/*
 * Serve on o->fd, which the server owns once it started (it closes it
 * when stopped; the caller's still if not).  0, or WS_EIO with h->err saying
 * why when libmicrohttpd did.  Its messages once running go to o->log as
 * "HTTP: message", lowercased and without a final period.  h must stay
 * where it is until ws_http_stop().
 */
int ws_http_serve(struct ws_http_server *h, const struct ws_http_server_opts *o)
    WS_MUST_CHECK;
/* The descriptor to poll for reading, or -1. */
int ws_http_fd(const struct ws_http_server *h);
/* Lower *timeout_ms to when the server next needs to run. */
void ws_http_timeout(const struct ws_http_server *h, int *timeout_ms);
/* Let the server do what is ready (its descriptor read, or a timeout up). */
void ws_http_run(struct ws_http_server *h);
/* Stop serving (no request may be suspended); h may be stopped twice. */
void ws_http_stop(struct ws_http_server *h);

/*
 * Queue a response with status, Content-Type type and body[0..n)
 * (copied), Cache-Control: no-store, and the extra headers: name and
 * value pairs, NULL-ended (may be NULL).
 */
enum MHD_Result ws_http_respond(struct MHD_Connection *c, unsigned status,
    const char *type, const char *const *headers, const void *body, size_t n);
/* The client's address as text, for a log ("?" if unknown). */
const char *ws_http_peer(struct MHD_Connection *c, char buf[64]);
/* 1 when listening socket fd is reachable from this host only. */
int ws_http_local_only(int fd);

/* --- client ------------------------------------------------------------------ */

/* Once per process, before any client: 0 or WS_EINTERNAL. */
int ws_http_global_init(char *err) WS_MUST_CHECK;

struct ws_http_client {
	CURL *curl;
	struct curl_slist *hdrs;
	char cerr[CURL_ERROR_SIZE];   /* libcurl's detail of a failure */
};

/*
 * A client for url, sending User-Agent agent: no signals, 30 s to
 * connect, and the CA bundle of CURL_CA_BUNDLE as curl(1) takes it.
 * 0, or WS_ENOMEM when libcurl cannot start (the caller words it).
 * Other options go on c->curl.  Release it with ws_http_client_release.
 */
int ws_http_client_init(struct ws_http_client *c, const char *url, const char *agent)
    WS_MUST_CHECK;
void ws_http_client_release(struct ws_http_client *c);

/*
 * Follow redirects (up to 10, to http and https only), take the URL's
 * scheme only among protocols ("http,https,sftp,file"), and fail on an
 * HTTP status of 400 or more (CURLE_HTTP_RETURNED_ERROR).
 */
void ws_http_client_follow(struct ws_http_client *c, const char *protocols);

/* Where a response's body goes: 0 to go on, nonzero to stop the transfer. */
typedef int ws_http_sink_fn(void *clientData, const void *p, size_t n);

/*
 * GET the client's URL, its body to sink(clientData, ...).  Returns
 * libcurl's code (CURLE_WRITE_ERROR when the sink stopped it) and the
 * HTTP status in *status (0 if none).
 */
CURLcode ws_http_get(struct ws_http_client *c, ws_http_sink_fn *sink, void *clientData,
    long *status);

/*
 * POST body[0..n) to the client's URL with the extra header lines
 * ("Name: value", NULL-ended), allowing timeout_s for the whole request;
 * the response's body is appended to resp.  Returns libcurl's code
 * (CURLE_OUT_OF_MEMORY when the headers cannot be built) and the HTTP
 * status in *status.
 */
CURLcode ws_http_post(struct ws_http_client *c, const char *const *headers,
    const void *body, size_t n, long timeout_s, struct ws_buf *resp, long *status);

/* What failed: libcurl's detail of the last request, or the code's text. */
const char *ws_http_client_error(const struct ws_http_client *c, CURLcode cc);

/* 1 when URL u names this host: localhost, 127.0.0.0/8 or [::1]. */
int ws_http_loopback_url(const char *u);

#endif
