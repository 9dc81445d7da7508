/* SPDX-License-Identifier: MIT */
/*
 * loop.h - one event loop for every program, in the manner of Redis's
 * ae.c: file events (epoll) and timers, with named callback types.
 *
 * A program registers the fds it waits on with the callback that takes
 * them (ws_loop_add_fd), its timers (ws_loop_add_timer), and optionally
 * a hook run before each wait (ws_loop_set_before: flush queues, update
 * what to wait for, decide to stop).  ws_loop_run() then waits and
 * dispatches until ws_loop_stop().  Callbacks may add and remove fds and
 * timers, their own included, at any time: an event of an fd removed
 * during the dispatch is not delivered.
 *
 * An fd that epoll cannot watch (a regular file as stdin, say) counts as
 * always ready, as poll(2) reports such files.
 *
 * The loop is single-threaded and never prints.
 */
#ifndef WSYNC_LOOP_H
#define WSYNC_LOOP_H

#include <stdint.h>

#include "error.h"

/* File event masks. */
#define WS_LOOP_READ 1
#define WS_LOOP_WRITE 2

/* A timer callback's return that ends the timer. */
#define WS_LOOP_NOMORE (-1)

struct ws_loop;

/* fd is ready for mask (READ, WRITE or both; an error or hang-up counts
 * as both, limited to what was asked for). */
typedef void ws_file_fn(struct ws_loop *l, int fd, void *clientData, int mask);
/* A timer fired: return the milliseconds until it fires again, or
 * WS_LOOP_NOMORE to end it. */
typedef long ws_timer_fn(struct ws_loop *l, long long id, void *clientData);
/* Run before each wait. */
typedef void ws_before_fn(struct ws_loop *l, void *clientData);

/* A new loop into *l (ws_loop_free frees it).  WS_EIO or WS_ENOMEM. */
int ws_loop_new(struct ws_loop **l, char *err) WS_MUST_CHECK;
/* Free l; the fds it watched are not closed. */
void ws_loop_free(struct ws_loop *l);

/*
 * Wait for mask on fd too (added to what fd already waits for), and give
 * its events to fn with clientData (replacing fd's earlier callback).
 * 0, WS_ENOMEM or WS_EIO.
 */
int ws_loop_add_fd(struct ws_loop *l, int fd, int mask, ws_file_fn *fn,
    void *clientData) WS_MUST_CHECK;
/* Stop waiting for mask on fd (the fd is forgotten when nothing is left). */
void ws_loop_del_fd(struct ws_loop *l, int fd, int mask);
/* What fd waits for now (0: not watched). */
int ws_loop_fd_mask(const struct ws_loop *l, int fd);

/* Call fn in ms milliseconds.  Its id (>= 0), or WS_ENOMEM. */
long long ws_loop_add_timer(struct ws_loop *l, long ms, ws_timer_fn *fn,
    void *clientData);
/* Cancel timer id: 0, or WS_ENOTFOUND. */
int ws_loop_del_timer(struct ws_loop *l, long long id);

/* Never wait longer than ms (-1, the default: until an event or timer),
 * as poll(2)'s timeout: the before hook then runs at least that often. */
void ws_loop_set_max_wait(struct ws_loop *l, int ms);

/* Run fn before each wait (NULL: nothing). */
void ws_loop_set_before(struct ws_loop *l, ws_before_fn *fn, void *clientData);

/*
 * One round: the before hook, then wait (at most until the next timer;
 * not at all unless block), then the file events, then the timers due.
 * The number of callbacks run, or WS_EIO (err says why).  A signal ends
 * the wait early without an error.
 */
int ws_loop_once(struct ws_loop *l, int block, char *err) WS_MUST_CHECK;
/* Rounds until ws_loop_stop(): 0, or ws_loop_once()'s error. */
int ws_loop_run(struct ws_loop *l, char *err) WS_MUST_CHECK;
/* Make ws_loop_run() return after the current round. */
void ws_loop_stop(struct ws_loop *l);

#endif
