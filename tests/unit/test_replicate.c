/* SPDX-License-Identifier: MIT */
/*
 * test_replicate.c - the pure parts of the replicate module: column and
 * array specifications, the HTTP headers the publisher reads, and its
 * bearer tokens (their form, the tokens file, a replicator's token file);
 * and the keys policy, which the library keeps itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

TEST(http_headers)
{
	struct ws_replicate_http_req r;
	uint8_t h[WS_REPLICATE_TOKEN_HASHBYTES];
	char err[WS_ERRLEN];

	CHECK_INT(ws_replicate_http_headers(NULL, NULL, NULL, &r, NULL), 0);
	CHECK_STR(r.session, "");
	CHECK_INT(r.wait_s, 0);
	CHECK_INT(r.has_token, 0);
	CHECK_INT(ws_replicate_http_headers("abc-123_X", "25",
	    "bearer  0123456789abcdef~+/=", &r, NULL), 0);
	CHECK_STR(r.session, "abc-123_X");
	CHECK_INT(r.wait_s, 25);
	CHECK_INT(r.has_token, 1);
	ws_replicate_token_hash(h, "0123456789abcdef~+/=", 20);
	CHECK_MEM(r.token_hash, sizeof(h), h, sizeof(h));
	/* Waits are capped; another scheme is a proxy's, not ours. */
	CHECK_INT(ws_replicate_http_headers(NULL, "999999", "Basic dXNlcjpwYXNz", &r, NULL), 0);
	CHECK_INT(r.wait_s, WS_REPLICATE_HTTP_MAX_WAIT);
	CHECK_INT(r.has_token, 0);
	CHECK_INT(ws_replicate_http_headers(NULL, NULL, "Bearerish 0123456789abcdef", &r,
	    NULL), 0);
	CHECK_INT(r.has_token, 0);
	err[0] = 0;
	CHECK_INT(ws_replicate_http_headers(NULL, NULL, "Bearer short-secret", &r, err),
	    WS_ECORRUPT);
	/* The message never quotes the token. */
	CHECK_STR(err, "bad Authorization: want Bearer and a token of 16 to 256 characters");
}

TEST(http_headers_bad)
{
	static const char *const session[] = {"", "a b", "x\r\ny", "\xc3\xa9t\xc3\xa9",
	    "0123456789012345678901234567890123456789012345678901234567890123456789"};
	static const char *const wait[] = {"", "-1", "soon", "1234567", " 5"};
	static const char *const auth[] = {"Bearer", "Bearer ", "Bearer 0123456789abcde",
	    "Bearer 0123456789abcdef=x", "Bearer 0123456789 abcdef",
	    "Bearer 0123456789abcdef\"", "BEARER 0123456789abcdef\x01"};
	struct ws_replicate_http_req r;
	size_t i;

	for (i = 0; i < sizeof(session) / sizeof(session[0]); i++)
		CHECK_INT(ws_replicate_http_headers(session[i], NULL, NULL, &r, NULL),
		    WS_ECORRUPT);
	for (i = 0; i < sizeof(wait) / sizeof(wait[0]); i++)
		CHECK_INT(ws_replicate_http_headers(NULL, wait[i], NULL, &r, NULL), WS_ECORRUPT);
	for (i = 0; i < sizeof(auth) / sizeof(auth[0]); i++)
		CHECK_INT(ws_replicate_http_headers(NULL, NULL, auth[i], &r, NULL), WS_ECORRUPT);
}

TEST(token_ok)
{
	char big[WS_REPLICATE_TOKEN_MAX + 2];

	CHECK_INT(ws_replicate_token_ok("0123456789abcdef", 16), 1);
	CHECK_INT(ws_replicate_token_ok("0123456789abcde", 15), 0);
	CHECK_INT(ws_replicate_token_ok("A-._~+/0123456789==", 19), 1);
	CHECK_INT(ws_replicate_token_ok("0123456789abcdef=a", 18), 0);
	CHECK_INT(ws_replicate_token_ok("0123456789abcdef#", 17), 0);
	CHECK_INT(ws_replicate_token_ok("0123456789abcdef\0x", 18), 0);
	memset(big, 'a', sizeof(big));
	CHECK_INT(ws_replicate_token_ok(big, WS_REPLICATE_TOKEN_MAX), 1);
	CHECK_INT(ws_replicate_token_ok(big, WS_REPLICATE_TOKEN_MAX + 1), 0);
}

/* Write text to a new temporary file of that mode; its path into path. */
static void tmpfile_with(char path[64], const char *text, mode_t mode)
{
	int fd;

	snprintf(path, 64, "/tmp/wsync-test-tokens-XXXXXX");
	fd = mkstemp(path);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0);
	close(fd);
}

TEST(tokens_file)
{
	struct ws_authkeys t;
	const struct ws_authkey *k;
	uint8_t h[WS_REPLICATE_TOKEN_HASHBYTES];
	char path[64], err[WS_ERRLEN], tok[WS_REPLICATE_TOKEN_MAX + 1];

	tmpfile_with(path, "# tills\n\nTILL-0123456789abcdef users=write *=read  # till 1\n"
	    "READER-0123456789abc *=read\n", 0600);
	CHECK_INT(ws_replicate_tokens_load(&t, path, err), 0);
	CHECK_INT(t.n, 2);
	ws_replicate_token_hash(h, "TILL-0123456789abcdef", 21);
	k = ws_replicate_tokens_find(&t, h);
	CHECK(k == &t.k[0]);
	CHECK_STR(k ? k->comment : "", "till 1");
	CHECK_INT(k ? (int)ws_authkey_right(k, "users") : -1, WS_RIGHT_WRITE);
	CHECK_INT(k ? (int)ws_authkey_right(k, "prices") : -1, WS_RIGHT_READ);
	ws_replicate_token_hash(h, "READER-0123456789abc", 20);
	CHECK(ws_replicate_tokens_find(&t, h) == &t.k[1]);
	ws_replicate_token_hash(h, "READER-0123456789abd", 20);
	CHECK(ws_replicate_tokens_find(&t, h) == NULL);
	ws_authkeys_release(&t);
	/* A file others may read is refused, as a secret key is. */
	CHECK(chmod(path, 0640) == 0);
	CHECK_INT(ws_replicate_tokens_load(&t, path, err), WS_EPERM);
	CHECK(strstr(err, "is accessible by others (mode 0640)") != NULL);
	CHECK_INT(ws_replicate_token_read(tok, path, err), WS_EPERM);
	unlink(path);
	CHECK_INT(ws_replicate_tokens_load(&t, path, err), WS_ENOTFOUND);
}

TEST(tokens_file_bad)
{
	static const char *const bad[] = {
		"short users=write\n",
		"0123456789abcdef users=own\n",
		"0123456789abcdef =write\n",
		"0123456789abcdef users=read\n0123456789abcdef *=read\n",
	};
	static const char *const why[] = {
		":1: not a token (want 16 to 256 characters",
		":1: bad right 'users=own'",
		":1: bad right '=write'",
		":2: the same token as an earlier line",
	};
	struct ws_authkeys t;
	char path[64], err[WS_ERRLEN];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		tmpfile_with(path, bad[i], 0600);
		err[0] = 0;
		CHECK_INT(ws_replicate_tokens_load(&t, path, err), WS_ECONFIG);
		CHECK(strstr(err, why[i]) != NULL);
		/* No token is quoted in a message. */
		CHECK(strstr(err, "0123456789abcdef") == NULL);
		unlink(path);
	}
}

TEST(token_read)
{
	char path[64], err[WS_ERRLEN], tok[WS_REPLICATE_TOKEN_MAX + 1];

	tmpfile_with(path, "TILL-0123456789abcdef\nignored\n", 0600);
	CHECK_INT(ws_replicate_token_read(tok, path, err), 0);
	CHECK_STR(tok, "TILL-0123456789abcdef");
	unlink(path);
	tmpfile_with(path, "not a token at all\n", 0600);
	CHECK_INT(ws_replicate_token_read(tok, path, err), WS_ECONFIG);
	CHECK_STR(tok, "");
	unlink(path);
}

/*
 * A library caller does not get plain TCP silently: the publisher keeps
 * the keys policy for every listening address before it opens the
 * database (a missing one is WS_ENOTFOUND once the policy passes).
 */
TEST(publish_refuses_plain_tcp)
{
	const char *tcp[] = {"127.0.0.1:0"}, *unix_addr[] = {"unix:/nonexistent/p.sock"};
	struct ws_replicate_pub_opts o = {.db = "/nonexistent/pub.db", .table = "t",
	    .listen = tcp, .nlisten = 1};
	char err[WS_ERRLEN];

	CHECK_INT(ws_replicate_publish(&o, err), WS_ECONFIG);
	CHECK_STR(err, "listening on TCP needs --key FILE and --authorized-keys FILE "
	    "(make a key with wsync-keygen -f FILE), or --insecure for plain sessions");
	o.insecure = 1;
	CHECK_INT(ws_replicate_publish(&o, err), WS_ENOTFOUND);
	o.insecure = 0;
	o.listen = unix_addr;
	CHECK_INT(ws_replicate_publish(&o, err), WS_ENOTFOUND);
}

/*
 * The replicator keeps the policy too, for a stream source, before it
 * opens (or creates) its database; an http:// source is not its business.
 */
TEST(pull_refuses_plain_tcp)
{
	struct ws_replicate_pull_opts o = {.source = "127.0.0.1:9",
	    .db = "/nonexistent/rep.db", .table = "t"};
	char err[WS_ERRLEN];

	CHECK_INT(ws_replicate_pull(&o, err), WS_ECONFIG);
	CHECK_STR(err, "a publisher on TCP needs --key FILE (make one with "
	    "wsync-keygen -f FILE), or --insecure for a plain session");
	o.insecure = 1;
	CHECK(ws_replicate_pull(&o, err) != WS_ECONFIG);
	o.insecure = 0;
	o.source = "unix:/nonexistent/p.sock";
	CHECK(ws_replicate_pull(&o, err) != WS_ECONFIG);
	o.source = "http://127.0.0.1:9/";
	CHECK(ws_replicate_pull(&o, err) != WS_ECONFIG);
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
	RUN(http_headers);
	RUN(http_headers_bad);
	RUN(token_ok);
	RUN(tokens_file);
	RUN(tokens_file_bad);
	RUN(token_read);
	RUN(publish_refuses_plain_tcp);
	RUN(pull_refuses_plain_tcp);
	TEST_MAIN_END();
}
