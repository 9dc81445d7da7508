/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the event loop: epoll for file events, a short list of
 * timers, a hook before each wait.  See loop.h.
 *
 * Files are kept in an array indexed by fd; timers in an array scanned
 * for the nearest (programs have a few).  A removed timer is marked and
 * swept after the round, so the dispatch never walks freed memory.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "wsync/loop.h"

struct file {
	int mask;           /* WS_LOOP_READ | WS_LOOP_WRITE; 0: unused */
	int always;         /* epoll refused it: always ready */
	ws_file_fn *fn;
	void *cd;
};

struct timer {
	long long id;       /* -1: removed */
	uint64_t when;      /* ms, monotonic */
	ws_timer_fn *fn;
	void *cd;
};

struct ws_loop {
	int epfd;
	struct file *f;
	int nf;             /* room in f */
	int nalways;        /* files that are always ready */
	int nwatched;       /* files with a mask */
	struct epoll_event *ev;
	int nev;
	struct timer *t;
	size_t nt, capt;
	long long next_id;
	ws_before_fn *before;
	void *before_cd;
	int max_wait;       /* ms, or -1 */
	int stop;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int ws_loop_new(struct ws_loop **out, char *err)
{
	struct ws_loop *l;
	char buf[64];

	*out = NULL;
	if (!(l = calloc(1, sizeof(*l))))
		return WS_ENOMEM;
	if ((l->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		free(l);
		return ws_error(err, WS_EIO, "epoll: %s", ws_errno_text(errno, buf));
	}
	l->max_wait = -1;
	*out = l;
	return 0;
}

void ws_loop_free(struct ws_loop *l)
{
	if (!l)
		return;
	close(l->epfd);
	free(l->f);
	free(l->ev);
	free(l->t);
	free(l);
}

static uint32_t events_of(int mask)
{
	return (mask & WS_LOOP_READ ? EPOLLIN : 0) | (mask & WS_LOOP_WRITE ? EPOLLOUT : 0);
}

int ws_loop_add_fd(struct ws_loop *l, int fd, int mask, ws_file_fn *fn, void *cd)
{
	struct epoll_event ee;
	struct file *fe;
	int old, n;

	if (fd < 0)
		return WS_EINVAL;
	if (fd >= l->nf) {
		n = fd < 64 ? 64 : 2 * fd;
		if (!(fe = realloc(l->f, (size_t)n * sizeof(*fe))))
			return WS_ENOMEM;
		memset(fe + l->nf, 0, (size_t)(n - l->nf) * sizeof(*fe));
		l->f = fe;
		l->nf = n;
	}
	fe = &l->f[fd];
	old = fe->mask;
	fe->fn = fn;
	fe->cd = cd;
	if ((old | mask) == old)
		return 0;
	memset(&ee, 0, sizeof(ee));
	ee.events = events_of(old | mask);
	ee.data.fd = fd;
	if (fe->always) {
		/* poll(2) says such a file is always ready: so does the loop. */
	} else if (epoll_ctl(l->epfd, old ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ee) < 0) {
		if (errno != EPERM || old)
			return WS_EIO;
		fe->always = 1;
		l->nalways++;
	}
	if (!old)
		l->nwatched++;
	fe->mask = old | mask;
	return 0;
}

void ws_loop_del_fd(struct ws_loop *l, int fd, int mask)
{
	struct epoll_event ee;
	struct file *fe;

	if (fd < 0 || fd >= l->nf || !l->f[fd].mask)
		return;
	fe = &l->f[fd];
	if ((fe->mask & ~mask) == fe->mask)
		return;
	fe->mask &= ~mask;
	memset(&ee, 0, sizeof(ee));
	ee.events = events_of(fe->mask);
	ee.data.fd = fd;
	if (!fe->always)
		epoll_ctl(l->epfd, fe->mask ? EPOLL_CTL_MOD : EPOLL_CTL_DEL, fd, &ee);
	if (!fe->mask) {
		l->nwatched--;
		if (fe->always)
			l->nalways--;
		fe->always = 0;
	}
}

int ws_loop_fd_mask(const struct ws_loop *l, int fd)
{
	return fd >= 0 && fd < l->nf ? l->f[fd].mask : 0;
}

long long ws_loop_add_timer(struct ws_loop *l, long ms, ws_timer_fn *fn, void *cd)
{
	struct timer *t;

	if (l->nt == l->capt) {
		size_t n = l->capt ? 2 * l->capt : 8;

		if (!(t = realloc(l->t, n * sizeof(*t))))
			return WS_ENOMEM;
		l->t = t;
		l->capt = n;
	}
	t = &l->t[l->nt++];
	t->id = l->next_id++;
	t->when = now_ms() + (uint64_t)(ms > 0 ? ms : 0);
	t->fn = fn;
	t->cd = cd;
	return t->id;
}

int ws_loop_del_timer(struct ws_loop *l, long long id)
{
	size_t i;

	for (i = 0; i < l->nt; i++)
		if (l->t[i].id == id && id >= 0) {
			l->t[i].id = -1;
			return 0;
		}
	return WS_ENOTFOUND;
}

void ws_loop_set_before(struct ws_loop *l, ws_before_fn *fn, void *cd)
{
	l->before = fn;
	l->before_cd = cd;
}

void ws_loop_set_max_wait(struct ws_loop *l, int ms)
{
	l->max_wait = ms;
}

void ws_loop_stop(struct ws_loop *l)
{
	l->stop = 1;
}

/* Milliseconds until the nearest timer, or -1 when there is none. */
static int wait_ms(const struct ws_loop *l, uint64_t now)
{
	uint64_t best = UINT64_MAX;
	size_t i;

	for (i = 0; i < l->nt; i++)
		if (l->t[i].id >= 0 && l->t[i].when < best)
			best = l->t[i].when;
	if (best == UINT64_MAX)
		return -1;
	return best <= now ? 0 : best - now > 86400000u ? 86400000 : (int)(best - now);
}

/* Run the timers due, in the order they are due; sweep removed ones. */
static int run_timers(struct ws_loop *l)
{
	uint64_t now = now_ms();
	long long id, horizon = l->next_id;
	size_t i, k, best;
	long again;
	int ran = 0;

	for (;;) {
		/* The earliest due timer that existed when the round began. */
		best = l->nt;
		for (i = 0; i < l->nt; i++)
			if (l->t[i].id >= 0 && l->t[i].id < horizon && l->t[i].when <= now &&
			    (best == l->nt || l->t[i].when < l->t[best].when))
				best = i;
		if (best == l->nt || l->stop)
			break;
		id = l->t[best].id;
		/* Not again this round, whatever it returns. */
		l->t[best].when = UINT64_MAX;
		again = l->t[best].fn(l, id, l->t[best].cd);
		ran++;
		/* The callback may have added timers: find it again. */
		for (i = 0; i < l->nt && l->t[i].id != id; i++)
			;
		if (i == l->nt)
			continue;
		if (again == WS_LOOP_NOMORE)
			l->t[i].id = -1;
		else
			l->t[i].when = now_ms() + (uint64_t)(again > 0 ? again : 0);
	}
	for (i = k = 0; i < l->nt; i++)
		if (l->t[i].id >= 0)
			l->t[k++] = l->t[i];
	l->nt = k;
	return ran;
}

int ws_loop_once(struct ws_loop *l, int block, char *err)
{
	struct epoll_event *ev;
	int n, i, fd, mask, timeout, ran = 0;
	char buf[64];

	if (l->before)
		l->before(l, l->before_cd);
	if (l->stop)
		return 0;
	if (l->nev < l->nwatched + 1) {
		if (!(ev = realloc(l->ev, (size_t)(l->nwatched + 16) * sizeof(*ev))))
			return WS_ENOMEM;
		l->ev = ev;
		l->nev = l->nwatched + 16;
	}
	timeout = !block || l->nalways ? 0 : wait_ms(l, now_ms());
	if (l->max_wait >= 0 && (timeout < 0 || timeout > l->max_wait))
		timeout = l->max_wait;
	n = epoll_wait(l->epfd, l->ev, l->nev, timeout);
	if (n < 0 && errno != EINTR)
		return ws_error(err, WS_EIO, "epoll_wait: %s", ws_errno_text(errno, buf));
	for (i = 0; i < n; i++) {
		fd = l->ev[i].data.fd;
		mask = (l->ev[i].events & EPOLLIN ? WS_LOOP_READ : 0) |
		    (l->ev[i].events & EPOLLOUT ? WS_LOOP_WRITE : 0) |
		    (l->ev[i].events & (EPOLLERR | EPOLLHUP) ? WS_LOOP_READ |
		    WS_LOOP_WRITE : 0);
		/* Removed, or narrowed, by an earlier callback of this round. */
		if (fd >= l->nf || !(mask &= l->f[fd].mask))
			continue;
		l->f[fd].fn(l, fd, l->f[fd].cd, mask);
		ran++;
	}
	for (fd = 0; l->nalways && fd < l->nf; fd++)
		if (l->f[fd].always && l->f[fd].mask) {
			l->f[fd].fn(l, fd, l->f[fd].cd, l->f[fd].mask);
			ran++;
		}
	return ran + run_timers(l);
}

int ws_loop_run(struct ws_loop *l, char *err)
{
	int rc;

	l->stop = 0;
	while (!l->stop)
		if ((rc = ws_loop_once(l, 1, err)) < 0)
			return rc;
	return 0;
}
