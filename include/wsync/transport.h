/* SPDX-License-Identifier: MIT */
/*
 * transport.h - byte streams between a site and a hub.
 *
 * An address is one of:
 *     HOST:PORT        TCP; HOST a name or an IPv4 address
 *     [IPv6]:PORT      TCP over IPv6
 *     unix:PATH        a Unix-domain stream socket
 *     exec:COMMAND     (connect only) COMMAND run by "sh -c", spoken to
 *                      over its stdin and stdout, as rsync runs ssh
 *     -                (connect only) this process's stdin and stdout
 * A connection has a read fd and a write fd (the same fd for sockets).
 * Every fd is close-on-exec.  The library never prints.
 */
#ifndef WSYNC_TRANSPORT_H
#define WSYNC_TRANSPORT_H

#include <sys/types.h>

#include "error.h"

#define WS_CONN_NAMELEN 128

/* What carries a connection: secure sessions are the default on TCP. */
enum { WS_CONN_TCP = 0, WS_CONN_UNIX = 1, WS_CONN_EXEC = 2, WS_CONN_STDIO = 3 };

struct ws_conn {
	int rfd;                      /* read side, -1 when closed */
	int wfd;                      /* write side; may equal rfd */
	pid_t pid;                    /* exec: the child, else 0 */
	int kind;                     /* WS_CONN_TCP, _UNIX, _EXEC or _STDIO */
	char name[WS_CONN_NAMELEN];   /* for messages: "127.0.0.1:4000" */
};

/*
 * Connect to addr.  On success fill *c (the caller closes it with
 * ws_conn_close).  Errors: WS_EINVAL (a malformed address), WS_EUNSUPP
 * (connection refused, no such host: the hub is unavailable), WS_EIO.
 */
int ws_transport_connect(const char *addr, struct ws_conn *c, char *err) WS_MUST_CHECK;

/* The mode of a listening unix socket's file unless told otherwise. */
#define WS_SOCKET_MODE 0600

/*
 * Listen on addr (HOST:PORT, [IPv6]:PORT or unix:PATH; port 0 picks a
 * free port).  *fd receives the listening socket; the address actually
 * bound is written to bound[WS_CONN_NAMELEN] when bound is not NULL.
 *
 * A unix socket's file is created with mode (0 means WS_SOCKET_MODE,
 * 0600: only its owner may connect), whatever the umask; a mode above
 * 0777 is WS_EINVAL.  A stale socket file at PATH (nobody listening) is
 * replaced; anything else there, a regular file say, is left alone and
 * refused with WS_ECONFIG.  A live socket is WS_EBUSY.
 */
int ws_transport_listen_mode(const char *addr, unsigned mode, int *fd,
    char bound[WS_CONN_NAMELEN], char *err) WS_MUST_CHECK;
/* ws_transport_listen_mode() with mode 0 (WS_SOCKET_MODE). */
int ws_transport_listen(const char *addr, int *fd, char bound[WS_CONN_NAMELEN],
    char *err) WS_MUST_CHECK;

/* Accept one connection from listening socket lfd into *c. */
int ws_transport_accept(int lfd, struct ws_conn *c, char *err) WS_MUST_CHECK;

/* The kind of connection addr names (WS_CONN_*), without using it:
 * anything but "-", exec: and unix: is TCP. */
int ws_transport_kind(const char *addr);

/*
 * The keys policy, the same for every program: a session over TCP is
 * authenticated (keyed) unless plain ones are allowed (insecure).  0, or
 * WS_ECONFIG saying so, for listening on addr (anything but unix: is
 * TCP there, as ws_transport_listen() takes it) or connecting to it (a
 * connect address without a port passes: it is reported when used).
 * peer names the other end of a connection in the message: "hub",
 * "publisher" (NULL: "hub").
 */
int ws_transport_check_keys_for(const char *addr, int listening, int keyed,
    int insecure, const char *peer, char *err) WS_MUST_CHECK;
/* ws_transport_check_keys_for() with peer "hub". */
int ws_transport_check_keys(const char *addr, int listening, int keyed, int insecure,
    char *err) WS_MUST_CHECK;

/* Put fd in non-blocking mode. */
int ws_fd_nonblock(int fd) WS_MUST_CHECK;

/*
 * Close c's fds (stdio fds are left open) and, for exec:, reap the child.
 * Safe to call twice.
 */
void ws_conn_close(struct ws_conn *c);

#endif
