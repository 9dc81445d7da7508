/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http.c - what the publisher's HTTP side parses itself, on hostile
 * bytes (libmicrohttpd parses the requests): the values of the headers
 * Wsync-Session, Wsync-Wait and Authorization (ws_replicate_http_headers)
 * and the body's JSON lines, one message each (ws_replicate_parse_msg),
 * as a request brings them.
 *
 * Input: one byte whose bits 0, 1 and 2 say which of the three headers
 * are present, then their values, each ended by '\n', then the body.
 */
#include <string.h>

#include "fuzz.h"
#include "wsync/replicate.h"

/* The next '\n'-ended value of p[*off..n) as a new string (the rest if none). */
static char *value(const uint8_t *p, size_t n, size_t *off)
{
	const uint8_t *nl = memchr(p + *off, '\n', n - *off);
	size_t len = nl ? (size_t)(nl - (p + *off)) : n - *off;
	char *v = malloc(len + 1);

	FUZZ_CHECK(v != NULL);
	memcpy(v, p + *off, len);
	v[len] = 0;
	*off += len + (nl != NULL);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_replicate_http_req r;
	char *v[3] = {NULL, NULL, NULL}, err[WS_ERRLEN];
	const char *p, *nl, *tok;
	size_t off = 1, i, n;
	uint8_t flags;
	json_t *m;
	int rc;

	if (size == 0)
		return 0;
	flags = data[0];
	for (i = 0; i < 3; i++)
		if (flags & (1u << i))
			v[i] = value(data, size, &off);
	err[0] = 0;
	rc = ws_replicate_http_headers(v[0], v[1], v[2], &r, err);
	if (rc == 0) {
		n = strlen(r.session);
		FUZZ_CHECK(n < sizeof(r.session));
		FUZZ_CHECK(strspn(r.session, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTU"
		    "VWXYZ0123456789_-") == n);
		FUZZ_CHECK(v[0] ? n > 0 && strcmp(r.session, v[0]) == 0 : n == 0);
		FUZZ_CHECK(r.wait_s <= WS_REPLICATE_HTTP_MAX_WAIT);
		FUZZ_CHECK(r.has_token == 0 || r.has_token == 1);
	} else {
		FUZZ_CHECK(rc == WS_ECORRUPT && err[0]);
		/* A refusal never quotes what followed "Bearer". */
		tok = v[2] && strlen(v[2]) > 7 ? v[2] + 7 : NULL;
		FUZZ_CHECK(!tok || strlen(tok) < 8 || !strstr(err, tok));
	}
	/* The body: one message a line, blank lines (and a lone CR) skipped. */
	p = (const char *)data + off;
	n = size - off;
	while (n) {
		size_t len;

		nl = memchr(p, '\n', n);
		len = nl ? (size_t)(nl - p) : n;
		if (len && !(len == 1 && p[0] == '\r')) {
			rc = ws_replicate_parse_msg(p, len, &m, NULL);
			FUZZ_CHECK(rc == 0 ? json_is_string(json_object_get(m, "mt")) :
			    rc == WS_EJSON && m == NULL);
			json_decref(m);
		}
		p += len + (nl != NULL);
		n -= len + (nl != NULL);
	}
	for (i = 0; i < 3; i++)
		free(v[i]);
	return 0;
}
