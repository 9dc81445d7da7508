/* SPDX-License-Identifier: MIT */
/*
 * inspect-fetch.c - URLs as inputs: http, https, sftp and file, through
 * libcurl, each piece handed to the sink as it arrives.
 */
#include <curl/curl.h>
#include <strings.h>

#include "inspect-int.h"
#include "wsync/wsync.h"

struct curlctx {
	struct insp *x;
	struct sink *k;
	int rc;
};

static size_t curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct curlctx *c = ud;
	size_t n = size * nmemb;

	if (c->rc)
		return 0;
	if (ws_buf_append(&c->k->w, p, n)) {
		c->rc = WS_ENOMEM;
		return 0;
	}
	if ((c->rc = insp_sink_process(c->x, c->k, 0)))
		return 0;
	if (c->k->kind == K_DATABASE) {
		c->rc = ws_error(c->x->err, WS_EINVAL, "'%s' is an SQLite database: "
		    "give its file name", c->k->name);
		return 0;
	}
	return n;
}

int insp_run_url(struct insp *x, struct sink *k)
{
	struct curlctx c = {x, k, 0};
	char cerr[CURL_ERROR_SIZE] = "";
	const char *ca;
	CURL *h;
	CURLcode cc;
	long code = 0;
	int rc;

	if (strncasecmp(k->name, "http://", 7) && strncasecmp(k->name, "https://", 8) &&
	    strncasecmp(k->name, "sftp://", 7) && strncasecmp(k->name, "file://", 7))
		return ws_error(x->err, WS_EINVAL, "'%s': unsupported URL scheme (want "
		    "http, https, sftp or file)", k->name);
	if (!(h = curl_easy_init()))
		return ws_error(x->err, WS_EINTERNAL, "cannot initialise libcurl");
	curl_easy_setopt(h, CURLOPT_URL, k->name);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,sftp,file");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "wsync-inspect/" WSYNC_VERSION);
	/* As curl(1) does: libcurl itself does not read CURL_CA_BUNDLE. */
	if ((ca = getenv("CURL_CA_BUNDLE")) && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (c.rc)
		return c.rc;
	if (cc == CURLE_HTTP_RETURNED_ERROR)
		return ws_error(x->err, code == 401 || code == 403 ? WS_EPERM :
		    WS_ENOTFOUND, "cannot fetch '%s': HTTP %ld", k->name, code);
	if (cc != CURLE_OK) {
		rc = cc == CURLE_FILE_COULDNT_READ_FILE || cc == CURLE_REMOTE_FILE_NOT_FOUND ?
		    WS_ENOTFOUND : cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_OPERATION_TIMEDOUT ?
		    WS_EUNSUPP : cc == CURLE_LOGIN_DENIED || cc == CURLE_REMOTE_ACCESS_DENIED ||
		    cc == CURLE_PEER_FAILED_VERIFICATION ? WS_EPERM :
		    cc == CURLE_UNSUPPORTED_PROTOCOL ? WS_EINVAL : WS_EIO;
		return ws_error(x->err, rc, "cannot fetch '%s': %s", k->name,
		    cerr[0] ? cerr : curl_easy_strerror(cc));
	}
	if ((rc = insp_sink_process(x, k, 1)))
		return rc;
	if (k->kind == K_DATABASE)
		return ws_error(x->err, WS_EINVAL, "'%s' is an SQLite database: give its "
		    "file name", k->name);
	return 0;
}
