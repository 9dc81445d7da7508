/* SPDX-License-Identifier: MIT */
/*
 * test_loop.c - the event loop (loop.h): timers fire in the order they
 * are due, fd callbacks see their events, and an fd or timer removed
 * during a dispatch gets no more calls.  Real pipes, no mocks.
 */
#include <fcntl.h>
#include <unistd.h>

#include "harness.h"
#include "wsync/loop.h"

static char order[16];
static size_t norder;

static long mark(struct ws_loop *l, long long id, void *cd)
{
	(void)l;
	(void)id;
	if (norder < sizeof(order) - 1)
		order[norder++] = *(const char *)cd;
	return WS_LOOP_NOMORE;
}

static long last(struct ws_loop *l, long long id, void *cd)
{
	mark(l, id, cd);
	ws_loop_stop(l);
	return WS_LOOP_NOMORE;
}

TEST(timers_fire_in_order)
{
	struct ws_loop *l;
	char err[WS_ERRLEN];

	norder = 0;
	memset(order, 0, sizeof(order));
	CHECK_INT(ws_loop_new(&l, err), 0);
	CHECK(ws_loop_add_timer(l, 30, mark, "c") >= 0);
	CHECK(ws_loop_add_timer(l, 10, mark, "a") >= 0);
	CHECK(ws_loop_add_timer(l, 20, mark, "b") >= 0);
	CHECK(ws_loop_add_timer(l, 40, last, "d") >= 0);
	CHECK_INT(ws_loop_run(l, err), 0);
	CHECK_STR(order, "abcd");
	ws_loop_free(l);
}

static int repeats;

static long again(struct ws_loop *l, long long id, void *cd)
{
	(void)id;
	(void)cd;
	if (++repeats == 3) {
		ws_loop_stop(l);
		return WS_LOOP_NOMORE;
	}
	return 1;
}

TEST(timer_repeats_and_del)
{
	struct ws_loop *l;
	char err[WS_ERRLEN];
	long long id;

	repeats = 0;
	norder = 0;
	memset(order, 0, sizeof(order));
	CHECK_INT(ws_loop_new(&l, err), 0);
	id = ws_loop_add_timer(l, 1, mark, "x");
	CHECK_INT(ws_loop_del_timer(l, id), 0);
	CHECK_INT(ws_loop_del_timer(l, id), WS_ENOTFOUND);
	CHECK(ws_loop_add_timer(l, 1, again, NULL) >= 0);
	CHECK_INT(ws_loop_run(l, err), 0);
	CHECK_INT(repeats, 3);
	CHECK_INT((long long)norder, 0);
	ws_loop_free(l);
}

struct fdctx {
	int fds[2][2];
	int calls[2];
	int masks[2];
};

/* Reading fd 0 or 1's pipe; the first call removes the other pipe. */
static void on_fd(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct fdctx *c = cd;
	int k = fd == c->fds[0][0] ? 0 : 1;
	char b[8];

	c->calls[k]++;
	c->masks[k] = mask;
	if (read(fd, b, sizeof(b)) < 0)
		c->masks[k] = -1;
	ws_loop_del_fd(l, c->fds[!k][0], WS_LOOP_READ);
	ws_loop_del_fd(l, fd, WS_LOOP_READ);
}

TEST(fd_callbacks_and_removal_during_dispatch)
{
	struct ws_loop *l;
	struct fdctx c;
	char err[WS_ERRLEN];
	int rc;

	memset(&c, 0, sizeof(c));
	CHECK(pipe(c.fds[0]) == 0 && pipe(c.fds[1]) == 0);
	CHECK_INT(ws_loop_new(&l, err), 0);
	CHECK_INT(ws_loop_add_fd(l, c.fds[0][0], WS_LOOP_READ, on_fd, &c), 0);
	CHECK_INT(ws_loop_add_fd(l, c.fds[1][0], WS_LOOP_READ, on_fd, &c), 0);
	CHECK_INT(ws_loop_fd_mask(l, c.fds[0][0]), WS_LOOP_READ);
	/* Both ready at once: whichever runs first removes the other. */
	CHECK(write(c.fds[0][1], "a", 1) == 1 && write(c.fds[1][1], "b", 1) == 1);
	rc = ws_loop_once(l, 1, err);
	CHECK_INT(rc, 1);
	CHECK_INT(c.calls[0] + c.calls[1], 1);
	CHECK(c.masks[0] == WS_LOOP_READ || c.masks[1] == WS_LOOP_READ);
	CHECK_INT(ws_loop_fd_mask(l, c.fds[0][0]), 0);
	CHECK_INT(ws_loop_fd_mask(l, c.fds[1][0]), 0);
	/* Nothing watched, no timers, no blocking: nothing runs. */
	CHECK_INT(ws_loop_once(l, 0, err), 0);
	/* Blocking, but never longer than the most it may wait. */
	ws_loop_set_max_wait(l, 10);
	CHECK_INT(ws_loop_once(l, 1, err), 0);
	ws_loop_free(l);
	close(c.fds[0][0]);
	close(c.fds[0][1]);
	close(c.fds[1][0]);
	close(c.fds[1][1]);
}

static int writable;

static void on_write(struct ws_loop *l, int fd, void *cd, int mask)
{
	(void)cd;
	writable = mask;
	ws_loop_del_fd(l, fd, WS_LOOP_WRITE);
}

static int befores;

static void before(struct ws_loop *l, void *cd)
{
	(void)cd;
	if (++befores == 2)
		ws_loop_stop(l);
}

TEST(write_events_and_before_hook)
{
	struct ws_loop *l;
	char err[WS_ERRLEN];
	int p[2];

	writable = befores = 0;
	CHECK(pipe(p) == 0);
	CHECK_INT(ws_loop_new(&l, err), 0);
	ws_loop_set_before(l, before, NULL);
	CHECK_INT(ws_loop_add_fd(l, p[1], WS_LOOP_WRITE, on_write, NULL), 0);
	CHECK_INT(ws_loop_run(l, err), 0);
	CHECK_INT(writable, WS_LOOP_WRITE);
	CHECK_INT(befores, 2);
	ws_loop_free(l);
	close(p[0]);
	close(p[1]);
}

static int file_calls;

static void on_file(struct ws_loop *l, int fd, void *cd, int mask)
{
	(void)cd;
	(void)mask;
	file_calls++;
	ws_loop_del_fd(l, fd, WS_LOOP_READ);
}

TEST(regular_file_is_always_ready)
{
	struct ws_loop *l;
	char err[WS_ERRLEN], path[] = "/tmp/test_loop_XXXXXX";
	int fd = mkstemp(path);

	file_calls = 0;
	CHECK(fd >= 0);
	unlink(path);
	CHECK_INT(ws_loop_new(&l, err), 0);
	CHECK_INT(ws_loop_add_fd(l, fd, WS_LOOP_READ, on_file, NULL), 0);
	CHECK_INT(ws_loop_once(l, 1, err), 1);
	CHECK_INT(file_calls, 1);
	CHECK_INT(ws_loop_fd_mask(l, fd), 0);
	ws_loop_free(l);
	close(fd);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(timers_fire_in_order);
	RUN(timer_repeats_and_del);
	RUN(fd_callbacks_and_removal_during_dispatch);
	RUN(write_events_and_before_hook);
	RUN(regular_file_is_always_ready);
	TEST_MAIN_END();
}
