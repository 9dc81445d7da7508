/* SPDX-License-Identifier: MIT */
/*
 * inspect-fetch.c - URLs as inputs: http, https, sftp and file, through
 * the library's HTTP client (http.h), each piece handed to the sink as
 * it arrives.
 */
#include <strings.h>

#include "http.h"
#include "inspect-int.h"
#include "wsync/wsync.h"

/* Where a fetched body goes: the input's sink, piece by piece. */
struct fetch {
	struct insp *x;
	struct sink *k;
	int rc;
};

/* ws_http_sink_fn: hand p[0..n) to the sink; nonzero stops the transfer. */
static int fetch_piece(void *cd, const void *p, size_t n)
{
	struct fetch *c = cd;

	if (c->rc)
		return 1;
	if (ws_buf_append(&c->k->w, p, n)) {
		c->rc = WS_ENOMEM;
		return 1;
	}
	if ((c->rc = insp_sink_process(c->x, c->k, 0)))
		return 1;
	if (c->k->kind == K_DATABASE) {
		c->rc = ws_error(c->x->err, WS_EINVAL, "'%s' is an SQLite database: "
		    "give its file name", c->k->name);
		return 1;
	}
	return 0;
}

int insp_run_url(struct insp *x, struct sink *k)
{
	struct fetch c = {x, k, 0};
	struct ws_http_client h;
	CURLcode cc;
	long code = 0;
	int rc;

	if (strncasecmp(k->name, "http://", 7) && strncasecmp(k->name, "https://", 8) &&
	    strncasecmp(k->name, "sftp://", 7) && strncasecmp(k->name, "file://", 7))
		return ws_error(x->err, WS_EINVAL, "'%s': unsupported URL scheme (want "
		    "http, https, sftp or file)", k->name);
	if (ws_http_client_init(&h, k->name, "wsync-inspect/" WSYNC_VERSION))
		return ws_error(x->err, WS_EINTERNAL, "cannot initialise libcurl");
	ws_http_client_follow(&h, "http,https,sftp,file");
	cc = ws_http_get(&h, fetch_piece, &c, &code);
	if (c.rc) {
		rc = c.rc;
	} else if (cc == CURLE_HTTP_RETURNED_ERROR) {
		rc = ws_error(x->err, code == 401 || code == 403 ? WS_EPERM :
		    WS_ENOTFOUND, "cannot fetch '%s': HTTP %ld", k->name, code);
	} else if (cc != CURLE_OK) {
		rc = cc == CURLE_FILE_COULDNT_READ_FILE || cc == CURLE_REMOTE_FILE_NOT_FOUND ?
		    WS_ENOTFOUND : cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_OPERATION_TIMEDOUT ?
		    WS_EUNSUPP : cc == CURLE_LOGIN_DENIED || cc == CURLE_REMOTE_ACCESS_DENIED ||
		    cc == CURLE_PEER_FAILED_VERIFICATION ? WS_EPERM :
		    cc == CURLE_UNSUPPORTED_PROTOCOL ? WS_EINVAL : WS_EIO;
		rc = ws_error(x->err, rc, "cannot fetch '%s': %s", k->name,
		    ws_http_client_error(&h, cc));
	} else if (!(rc = insp_sink_process(x, k, 1)) && k->kind == K_DATABASE) {
		rc = ws_error(x->err, WS_EINVAL, "'%s' is an SQLite database: give its "
		    "file name", k->name);
	}
	ws_http_client_release(&h);
	return rc;
}
