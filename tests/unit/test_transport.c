/* SPDX-License-Identifier: MIT */
/*
 * test_transport.c - transport.h on real sockets: a unix socket and TCP
 * loopback, listen, connect, accept, bytes both ways; the kind of an
 * address and the keys policy (its wording for a hub or a publisher, and
 * listening, where anything but unix: is TCP).
 */
#include <stdio.h>
#include <unistd.h>

#include "harness.h"
#include "wsync/wsync.h"

/* Listen on addr, connect to what was bound, pass a byte each way. */
static void round_trip(const char *addr, int kind)
{
	char bound[WS_CONN_NAMELEN], err[WS_ERRLEN], b = 0;
	struct ws_conn c, s;
	int lfd;

	CHECK_INT(ws_transport_listen(addr, &lfd, bound, err), 0);
	CHECK_INT(ws_transport_connect(bound, &c, err), 0);
	CHECK_INT(ws_transport_accept(lfd, &s, err), 0);
	CHECK_INT(c.kind, kind);
	CHECK_INT(s.kind, kind);
	CHECK(write(c.wfd, "x", 1) == 1 && read(s.rfd, &b, 1) == 1 && b == 'x');
	CHECK(write(s.wfd, "y", 1) == 1 && read(c.rfd, &b, 1) == 1 && b == 'y');
	ws_conn_close(&c);
	ws_conn_close(&s);
	close(lfd);
}

TEST(unix_socket)
{
	char addr[64];

	snprintf(addr, sizeof(addr), "unix:/tmp/test_transport.%ld.sock", (long)getpid());
	round_trip(addr, WS_CONN_UNIX);
	unlink(addr + 5);
}

TEST(tcp_loopback)
{
	round_trip("127.0.0.1:0", WS_CONN_TCP);
}

TEST(kinds_and_keys_policy)
{
	char err[WS_ERRLEN];

	CHECK_INT(ws_transport_kind("-"), WS_CONN_STDIO);
	CHECK_INT(ws_transport_kind("exec:ssh h"), WS_CONN_EXEC);
	CHECK_INT(ws_transport_kind("unix:/x"), WS_CONN_UNIX);
	CHECK_INT(ws_transport_kind("127.0.0.1:1"), WS_CONN_TCP);
	/* TCP needs keys unless plain sessions are allowed, on both sides. */
	CHECK_INT(ws_transport_check_keys("h:1", 0, 0, 0, err), WS_ECONFIG);
	CHECK_STR(err, "a hub on TCP needs --key FILE (make one with wsync-keygen "
	    "-f FILE), or --insecure for a plain session");
	CHECK_INT(ws_transport_check_keys("h:1", 1, 0, 0, err), WS_ECONFIG);
	CHECK_INT(ws_transport_check_keys("h:1", 0, 1, 0, err), 0);
	CHECK_INT(ws_transport_check_keys("h:1", 1, 0, 1, err), 0);
	CHECK_INT(ws_transport_check_keys("unix:/x", 1, 0, 0, err), 0);
	CHECK_INT(ws_transport_check_keys("exec:x", 0, 0, 0, err), 0);
	CHECK_INT(ws_transport_check_keys("-", 0, 0, 0, err), 0);
	/* A connect address without a port is reported when it is used. */
	CHECK_INT(ws_transport_check_keys("localhost", 0, 0, 0, err), 0);
}

TEST(keys_policy_names_the_peer)
{
	char err[WS_ERRLEN];

	/* A replicator's other end is a publisher: the message says so. */
	CHECK_INT(ws_transport_check_keys_for("h:1", 0, 0, 0, "publisher", err), WS_ECONFIG);
	CHECK_STR(err, "a publisher on TCP needs --key FILE (make one with "
	    "wsync-keygen -f FILE), or --insecure for a plain session");
	CHECK_INT(ws_transport_check_keys_for("[::1]:1", 0, 0, 0, NULL, err), WS_ECONFIG);
	CHECK_STR(err, "a hub on TCP needs --key FILE (make one with wsync-keygen "
	    "-f FILE), or --insecure for a plain session");
	CHECK_INT(ws_transport_check_keys_for("h:1", 0, 1, 0, "publisher", err), 0);
	CHECK_INT(ws_transport_check_keys_for("h:1", 0, 0, 1, "publisher", err), 0);
	CHECK_INT(ws_transport_check_keys_for("unix:/x", 0, 0, 0, "publisher", err), 0);
	/* Listening names no peer: the same words for every program. */
	CHECK_INT(ws_transport_check_keys_for("h:1", 1, 0, 0, "publisher", err), WS_ECONFIG);
	CHECK_STR(err, "listening on TCP needs --key FILE and --authorized-keys FILE "
	    "(make a key with wsync-keygen -f FILE), or --insecure for plain sessions");
}

TEST(keys_policy_listening_on_stdio_or_exec)
{
	char err[WS_ERRLEN];

	/*
	 * ws_transport_listen() takes anything but unix: for TCP, so "-" and
	 * exec: are TCP addresses when listening, and need keys.
	 */
	CHECK_INT(ws_transport_check_keys("-", 1, 0, 0, err), WS_ECONFIG);
	CHECK_STR(err, "listening on TCP needs --key FILE and --authorized-keys FILE "
	    "(make a key with wsync-keygen -f FILE), or --insecure for plain sessions");
	err[0] = 0;
	CHECK_INT(ws_transport_check_keys("exec:x", 1, 0, 0, err), WS_ECONFIG);
	CHECK_STR(err, "listening on TCP needs --key FILE and --authorized-keys FILE "
	    "(make a key with wsync-keygen -f FILE), or --insecure for plain sessions");
	CHECK_INT(ws_transport_check_keys("-", 1, 1, 0, err), 0);
	CHECK_INT(ws_transport_check_keys("exec:x", 1, 0, 1, err), 0);
}

TEST(site_refuses_plain_tcp)
{
	struct ws_site_set set = {"notes", "/nonexistent/notes.db"};
	struct ws_site_opts o = {.hub = "127.0.0.1:9", .sets = &set, .nsets = 1};
	char err[WS_ERRLEN];

	/* A library caller no longer gets plain TCP silently. */
	CHECK_INT(ws_site_run(&o, err), WS_ECONFIG);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(unix_socket);
	RUN(tcp_loopback);
	RUN(kinds_and_keys_policy);
	RUN(keys_policy_names_the_peer);
	RUN(keys_policy_listening_on_stdio_or_exec);
	RUN(site_refuses_plain_tcp);
	TEST_MAIN_END();
}
