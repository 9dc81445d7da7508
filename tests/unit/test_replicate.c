/* SPDX-License-Identifier: MIT */
/*
 * test_replicate.c - the pure parts of the replicate module: column and
 * array specifications, and the HTTP request heads the publisher reads.
 */
#include <string.h>

#include "harness.h"
#include "wsync/replicate.h"

TEST(column_plain)
{
	char s[] = "name";
	struct ws_replicate_col c;

	CHECK_INT(ws_replicate_parse_column(s, &c, NULL), 0);
	CHECK_STR(c.name, "name");
	CHECK_STR(c.other, "name");
	CHECK_INT(c.update, 0);
}

TEST(column_renamed_update)
{
	char s[] = "full_name=nm:update";
	struct ws_replicate_col c;

	CHECK_INT(ws_replicate_parse_column(s, &c, NULL), 0);
	CHECK_STR(c.name, "full_name");
	CHECK_STR(c.other, "nm");
	CHECK_INT(c.update, 1);
}

TEST(column_update_only)
{
	char s[] = "stock:update";
	struct ws_replicate_col c;

	CHECK_INT(ws_replicate_parse_column(s, &c, NULL), 0);
	CHECK_STR(c.name, "stock");
	CHECK_STR(c.other, "stock");
	CHECK_INT(c.update, 1);
}

TEST(column_bad)
{
	static const char *const bad[] = {"", "=x", "a=", "a:write", "a:", ":update",
	    "a=:update", "a=b:UPDATE"};
	char s[64], err[WS_ERRLEN];
	struct ws_replicate_col c;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(s, sizeof(s), "%s", bad[i]);
		err[0] = 0;
		CHECK_INT(ws_replicate_parse_column(s, &c, err), WS_EINVAL);
		CHECK(strstr(err, "want NAME[=OTHER][:update]") != NULL);
		/* The spec is given back as it was, for the message. */
		CHECK_STR(s, bad[i]);
	}
}

TEST(column_too_long)
{
	char s[WS_REPLICATE_MAX_NAME + 8];

	memset(s, 'a', sizeof(s) - 1);
	s[sizeof(s) - 1] = 0;
	struct ws_replicate_col c;
	CHECK_INT(ws_replicate_parse_column(s, &c, NULL), WS_EINVAL);
	s[WS_REPLICATE_MAX_NAME] = 0;
	CHECK_INT(ws_replicate_parse_column(s, &c, NULL), 0);
}

TEST(array_spec)
{
	char s[] = "tags=user_tags:user_id", b1[] = "tags", b2[] = "tags=child",
	    b3[] = "=c:r", b4[] = "t=c:", b5[] = "t=:r", b6[] = "t=c:r:x";
	struct ws_replicate_array a;

	CHECK_INT(ws_replicate_parse_array(s, &a, NULL), 0);
	CHECK_STR(a.remote, "tags");
	CHECK_STR(a.child, "user_tags");
	CHECK_STR(a.ref, "user_id");
	CHECK_INT(ws_replicate_parse_array(b1, &a, NULL), WS_EINVAL);
	CHECK_INT(ws_replicate_parse_array(b2, &a, NULL), WS_EINVAL);
	CHECK_INT(ws_replicate_parse_array(b3, &a, NULL), WS_EINVAL);
	CHECK_INT(ws_replicate_parse_array(b4, &a, NULL), WS_EINVAL);
	CHECK_INT(ws_replicate_parse_array(b5, &a, NULL), WS_EINVAL);
	CHECK_INT(ws_replicate_parse_array(b6, &a, NULL), WS_EINVAL);
	CHECK_STR(b6, "t=c:r:x");
}

static int parse(const char *req, struct ws_replicate_http_req *r, char *err)
{
	return ws_replicate_http_parse(req, strlen(req), r, err);
}

TEST(http_request)
{
	const char *req = "POST /replicate HTTP/1.1\r\nHost: x\r\n"
	    "content-length: 42\r\nWsync-Session:  abc123 \r\nWSYNC-WAIT: 25\r\n\r\nbody";
	struct ws_replicate_http_req r;

	CHECK_INT(parse(req, &r, NULL), 1);
	CHECK_INT(r.method_len, 4);
	CHECK(strncmp(r.method, "POST", 4) == 0);
	CHECK_INT(r.path_len, 10);
	CHECK(strncmp(r.path, "/replicate", 10) == 0);
	CHECK_INT(r.content_length, 42);
	CHECK_STR(r.session, "abc123");
	CHECK_INT(r.wait_s, 25);
	CHECK_INT(r.chunked, 0);
	CHECK_INT(r.head_len, strlen(req) - 4);
}

TEST(http_bare_lf_and_defaults)
{
	const char *req = "GET / HTTP/1.0\nTransfer-Encoding: chunked\nWsync-Wait: 9999\n\n";
	struct ws_replicate_http_req r;

	CHECK_INT(parse(req, &r, NULL), 1);
	CHECK_INT(r.content_length, -1);
	CHECK_INT(r.chunked, 1);
	CHECK_INT(r.wait_s, 300);
	CHECK_STR(r.session, "");
	CHECK_INT(r.head_len, strlen(req));
}

TEST(http_incomplete)
{
	struct ws_replicate_http_req r;

	CHECK_INT(parse("", &r, NULL), 0);
	CHECK_INT(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n", &r, NULL), 0);
	CHECK_INT(parse("POST / HTTP/1.1\r\n\r", &r, NULL), 0);
}

TEST(http_malformed)
{
	static const char *const bad[] = {
		"POST\r\n\r\n",
		" / HTTP/1.1\r\n\r\n",
		"POST / SPDY/3\r\n\r\n",
		"POST /\r\n\r\n",
		"POST / HTTP/1.1\r\nno colon\r\n\r\n",
		"POST / HTTP/1.1\r\n: empty name\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length: 9999999999999999999999\r\n\r\n",
		"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
		"POST / HTTP/1.1\r\nWsync-Wait: soon\r\n\r\n",
	};
	struct ws_replicate_http_req r;
	char err[WS_ERRLEN];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		CHECK_INT(parse(bad[i], &r, err), WS_ECORRUPT);
		CHECK(err[0] != 0);
	}
}

TEST(http_too_long)
{
	size_t n = (64u << 10) + 16;
	char *big = malloc(n + 1);
	struct ws_replicate_http_req r;

	if (!big)
		return;
	memcpy(big, "POST / HTTP/1.1\r\nX-Pad: ", 24);
	memset(big + 24, 'a', n - 24);
	big[n] = 0;
	/* No end of head within 64 KiB: refused rather than buffered. */
	CHECK_INT(ws_replicate_http_parse(big, n, &r, NULL), WS_ETOOBIG);
	memcpy(big + n - 4, "\r\n\r\n", 4);
	CHECK_INT(ws_replicate_http_parse(big, n, &r, NULL), WS_ETOOBIG);
	free(big);
}

TEST(http_random_bytes_never_crash)
{
	char buf[256];
	struct ws_replicate_http_req r;
	size_t n, i, k, bad = 0;
	int rc;

	for (k = 0; k < 20000; k++) {
		n = (size_t)t_below(sizeof(buf));
		for (i = 0; i < n; i++)
			buf[i] = "PST /H1.\r\n: aCLW-0123"[t_below(21)];
		rc = ws_replicate_http_parse(buf, n, &r, NULL);
		/* A whole head lies within the input and starts with a method. */
		if (!(rc == 0 || rc == WS_ECORRUPT || (rc == 1 && r.head_len <= n &&
		    r.method == buf && r.method_len > 0 && r.path > buf &&
		    r.path + r.path_len <= buf + n)))
			bad++;
	}
	CHECK_INT(bad, 0);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(column_plain);
	RUN(column_renamed_update);
	RUN(column_update_only);
	RUN(column_bad);
	RUN(column_too_long);
	RUN(array_spec);
	RUN(http_request);
	RUN(http_bare_lf_and_defaults);
	RUN(http_incomplete);
	RUN(http_malformed);
	RUN(http_too_long);
	RUN(http_random_bytes_never_crash);
	TEST_MAIN_END();
}
