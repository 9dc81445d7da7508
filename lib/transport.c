/* SPDX-License-Identifier: MIT */
/*
 * transport.c - TCP, Unix sockets, exec: pipes and stdio.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "wsync/transport.h"

int ws_fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? WS_EIO : 0;
}

int ws_transport_kind(const char *addr)
{
	if (strcmp(addr, "-") == 0)
		return WS_CONN_STDIO;
	if (strncmp(addr, "exec:", 5) == 0)
		return WS_CONN_EXEC;
	return strncmp(addr, "unix:", 5) == 0 ? WS_CONN_UNIX : WS_CONN_TCP;
}

int ws_transport_check_keys_for(const char *addr, int listening, int keyed,
    int insecure, const char *peer, char *err)
{
	int kind = ws_transport_kind(addr);

	if (keyed || insecure)
		return 0;
	/* ws_transport_listen() takes anything but unix: for TCP. */
	if (listening)
		return kind == WS_CONN_UNIX ? 0 : ws_error(err, WS_ECONFIG,
		    "listening on TCP needs --key FILE and --authorized-keys FILE "
		    "(make a key with wsync-keygen -f FILE), or --insecure for plain "
		    "sessions");
	if (kind != WS_CONN_TCP || !strchr(addr, ':'))
		return 0;
	return ws_error(err, WS_ECONFIG, "a %s on TCP needs --key FILE (make one "
	    "with wsync-keygen -f FILE), or --insecure for a plain session",
	    peer ? peer : "hub");
}

int ws_transport_check_keys(const char *addr, int listening, int keyed, int insecure,
    char *err)
{
	return ws_transport_check_keys_for(addr, listening, keyed, insecure, "hub", err);
}

static void conn_init(struct ws_conn *c, const char *name)
{
	c->rfd = c->wfd = -1;
	c->pid = 0;
	c->kind = WS_CONN_TCP;
	snprintf(c->name, sizeof(c->name), "%s", name);
}

/* Split "HOST:PORT" or "[V6]:PORT" into host and port. */
static int split_hostport(const char *addr, char *host, size_t hn, char *port,
    size_t pn, char *err)
{
	const char *colon;
	size_t len;

	if (addr[0] == '[') {
		const char *close = strchr(addr, ']');

		if (!close || close[1] != ':')
			goto bad;
		len = (size_t)(close - addr - 1);
		colon = close + 1;
		if (len >= hn)
			goto bad;
		memcpy(host, addr + 1, len);
	} else {
		colon = strrchr(addr, ':');
		if (!colon)
			goto bad;
		len = (size_t)(colon - addr);
		if (len >= hn || memchr(addr, ':', len))
			goto bad;
		memcpy(host, addr, len);
	}
	host[len] = 0;
	if (!colon[1] || strlen(colon + 1) >= pn ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1))
		goto bad;
	strcpy(port, colon + 1);
	return 0;
bad:
	return ws_error(err, WS_EINVAL, "bad address '%s' (want HOST:PORT, "
	    "[IPv6]:PORT, unix:PATH, exec:COMMAND or -)", addr);
}

/*
 * Resolve a TCP address for connecting, or (passive) for listening; an
 * empty host then means every address.  The caller frees *res.
 */
static int resolve(const char *addr, int passive, struct addrinfo **res, char *err)
{
	char host[256], port[16];
	struct addrinfo hints;
	int rc;

	if ((rc = split_hostport(addr, host, sizeof(host), port, sizeof(port), err)))
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = passive ? AI_PASSIVE | AI_NUMERICSERV : 0;
	if ((rc = getaddrinfo(passive && !*host ? NULL : host, port, &hints, res)) != 0)
		return ws_error(err, passive ? WS_EINVAL : WS_EUNSUPP, "cannot %s '%s': %s",
		    passive ? "listen on" : "connect to", addr, gai_strerror(rc));
	return 0;
}

static int unix_addr(const char *path, struct sockaddr_un *sa, char *err)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!*path || strlen(path) >= sizeof(sa->sun_path))
		return ws_error(err, WS_EINVAL, "bad unix socket path '%s'", path);
	strcpy(sa->sun_path, path);
	return 0;
}

static int exec_connect(const char *cmd, struct ws_conn *c, char *err)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1};
	char buf[64];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		goto fail;
	pid = fork();
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		/* child: stdin from in[0], stdout to out[1] */
		signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	c->wfd = in[1];
	c->rfd = out[0];
	c->pid = pid;
	return 0;
fail:
	ws_error(err, WS_EIO, "cannot run '%s': %s", cmd, ws_errno_text(errno, buf));
	if (in[0] >= 0) { close(in[0]); close(in[1]); }
	if (out[0] >= 0) { close(out[0]); close(out[1]); }
	return WS_EIO;
}

int ws_transport_connect(const char *addr, struct ws_conn *c, char *err)
{
	char buf[64];
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_un sa;
	int fd = -1, rc, one = 1, e = 0;

	conn_init(c, addr);
	if (strcmp(addr, "-") == 0) {
		c->rfd = 0;
		c->wfd = 1;
		c->kind = WS_CONN_STDIO;
		snprintf(c->name, sizeof(c->name), "stdio");
		return 0;
	}
	if (strncmp(addr, "exec:", 5) == 0) {
		c->kind = WS_CONN_EXEC;
		return exec_connect(addr + 5, c, err);
	}
	if (strncmp(addr, "unix:", 5) == 0) {
		c->kind = WS_CONN_UNIX;
		if ((rc = unix_addr(addr + 5, &sa, err)))
			return rc;
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			e = errno;
			if (fd >= 0)
				close(fd);
			return ws_error(err, e == ENOENT || e == ECONNREFUSED ?
			    WS_EUNSUPP : e == EACCES ? WS_EPERM : WS_EIO,
			    "cannot connect to '%s': %s", addr, ws_errno_text(e, buf));
		}
		c->rfd = c->wfd = fd;
		return 0;
	}
	if ((rc = resolve(addr, 0, &res, err)))
		return rc;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return ws_error(err, e == ECONNREFUSED || e == EHOSTUNREACH ||
		    e == ENETUNREACH || e == ETIMEDOUT ? WS_EUNSUPP : WS_EIO,
		    "cannot connect to '%s': %s", addr, ws_errno_text(e, buf));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->rfd = c->wfd = fd;
	return 0;
}

/* True if nobody listens on the unix socket at sa (connection refused). */
static int stale_socket(const struct sockaddr_un *sa)
{
	int t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), stale;

	if (t < 0)
		return 0;
	stale = connect(t, (const struct sockaddr *)sa, sizeof(*sa)) < 0 &&
	    errno == ECONNREFUSED;
	close(t);
	errno = EADDRINUSE;
	return stale;
}

/*
 * Bind s to the unix socket path at sa, its file created with mode
 * whatever the umask: the socket file is made by bind(2) itself, with
 * 0777 & ~umask (fchmod on the socket before bind does nothing on
 * Linux), so bind runs under the umask that gives mode, and the old one
 * comes back at once.  The library is used from one thread when it
 * listens.  0, or -1 with errno.
 */
static int bind_unix(int s, const struct sockaddr_un *sa, unsigned mode)
{
	mode_t old = umask((mode_t)(~mode & 0777));
	int r = bind(s, (const struct sockaddr *)sa, sizeof(*sa)), e = errno;

	umask(old);
	errno = e;
	return r;
}

static int listen_unix(const char *addr, unsigned mode, int *fd,
    char bound[WS_CONN_NAMELEN], char *err)
{
	struct sockaddr_un sa;
	struct stat st;
	char buf[64];
	int s, rc, e;

	if ((rc = unix_addr(addr + 5, &sa, err)))
		return rc;
	if ((s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		goto fail;
	if (bind_unix(s, &sa, mode) < 0) {
		e = errno;
		/* Only a socket is ever removed: a file of another kind at
		 * PATH is somebody's data, not a stale socket. */
		if (e == EADDRINUSE && lstat(sa.sun_path, &st) == 0 &&
		    !S_ISSOCK(st.st_mode)) {
			close(s);
			return ws_error(err, WS_ECONFIG, "cannot listen on '%s': '%s' "
			    "exists and is not a socket: refusing to remove it", addr,
			    sa.sun_path);
		}
		if (e != EADDRINUSE || !stale_socket(&sa)) {
			errno = e;
			goto fail_s;
		}
		/* A stale socket file nobody listens on is replaced. */
		unlink(sa.sun_path);
		if (bind_unix(s, &sa, mode) < 0)
			goto fail_s;
	}
	if (listen(s, 128) < 0) {
		e = errno;
		unlink(sa.sun_path);
		errno = e;
		goto fail_s;
	}
	if (bound)
		snprintf(bound, WS_CONN_NAMELEN, "%s", addr);
	*fd = s;
	return 0;
fail_s:
	e = errno;
	close(s);
	errno = e;
fail:
	e = errno;
	return ws_error(err, e == EACCES ? WS_EPERM : e == EADDRINUSE ? WS_EBUSY :
	    WS_EIO, "cannot listen on '%s': %s", addr, ws_errno_text(e, buf));
}

int ws_transport_listen(const char *addr, int *fd, char bound[WS_CONN_NAMELEN],
    char *err)
{
	return ws_transport_listen_mode(addr, 0, fd, bound, err);
}

int ws_transport_listen_mode(const char *addr, unsigned mode, int *fd,
    char bound[WS_CONN_NAMELEN], char *err)
{
	char buf[64], h[128], p[16];
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int s, rc, one = 1, e;

	*fd = -1;
	if (strncmp(addr, "unix:", 5) == 0) {
		if (mode > 0777)
			return ws_error(err, WS_EINVAL, "bad socket mode %04o", mode);
		return listen_unix(addr, mode ? mode : WS_SOCKET_MODE, fd, bound, err);
	}
	if ((rc = resolve(addr, 1, &res, err)))
		return rc;
	s = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (s < 0) {
		freeaddrinfo(res);
		goto fail;
	}
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, res->ai_addr, res->ai_addrlen) < 0 || listen(s, 128) < 0) {
		freeaddrinfo(res);
		goto fail_s;
	}
	freeaddrinfo(res);
	if (bound) {
		if (getsockname(s, (struct sockaddr *)&ss, &sl) == 0 &&
		    getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
		    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(bound, WS_CONN_NAMELEN, ss.ss_family == AF_INET6 ?
			    "[%s]:%s" : "%s:%s", h, p);
		else
			snprintf(bound, WS_CONN_NAMELEN, "%s", addr);
	}
	*fd = s;
	return 0;
fail_s:
	e = errno;
	close(s);
	errno = e;
fail:
	e = errno;
	return ws_error(err, e == EACCES ? WS_EPERM : e == EADDRINUSE ? WS_EBUSY :
	    WS_EIO, "cannot listen on '%s': %s", addr, ws_errno_text(e, buf));
}

int ws_transport_accept(int lfd, struct ws_conn *c, char *err)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char h[128], p[16], buf[64];
	int fd, one = 1;

	conn_init(c, "?");
	fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
	if (fd < 0)
		return ws_error(err, errno == EAGAIN || errno == EWOULDBLOCK ?
		    WS_EAGAIN : WS_EIO, "accept: %s", ws_errno_text(errno, buf));
	if (ss.ss_family == AF_UNIX) {
		c->kind = WS_CONN_UNIX;
		snprintf(c->name, sizeof(c->name), "unix");
	} else {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (getnameinfo((struct sockaddr *)&ss, sl, h, sizeof(h), p, sizeof(p),
		    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(c->name, sizeof(c->name), ss.ss_family == AF_INET6 ?
			    "[%s]:%s" : "%s:%s", h, p);
	}
	c->rfd = c->wfd = fd;
	return 0;
}

void ws_conn_close(struct ws_conn *c)
{
	struct timespec tick = {0, 10000000};
	int status, i;

	if (c->rfd > 2)
		close(c->rfd);
	if (c->wfd > 2 && c->wfd != c->rfd)
		close(c->wfd);
	c->rfd = c->wfd = -1;
	if (c->pid > 0) {
		/* Its stdin is closed: give it 2 s to finish, then end it. */
		for (i = 0; i < 200 && waitpid(c->pid, &status, WNOHANG) == 0; i++)
			nanosleep(&tick, NULL);
		if (i == 200) {
			kill(c->pid, SIGTERM);
			waitpid(c->pid, &status, 0);
		}
		c->pid = 0;
	}
}
