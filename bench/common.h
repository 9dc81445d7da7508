/* SPDX-License-Identifier: MIT */
/*
 * common.h - what the benchmark programs share: messages that end the
 * program ("<BENCH_NAME>: ..." and status 70), the CK() check around
 * libwsync calls, a fixed-seed xorshift64* generator, and the monotonic
 * clock, and summary_add(), a line of the B1-B7 summary table.  Define
 * BENCH_NAME before including it, and BENCH_EXIT(status) to end the
 * program some other way than exit(3); include it once.
 */
#ifndef WSYNC_BENCH_COMMON_H
#define WSYNC_BENCH_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <sqlite3.h>
#include <wsync/wsync.h>

#ifndef BENCH_EXIT
#define BENCH_EXIT(status) exit(status)
#endif

/* Not every program uses every helper. */
#define BENCH_UNUSED __attribute__((unused))

static char errbuf[WS_ERRLEN];

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(BENCH_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	BENCH_EXIT(EX_SOFTWARE);
}

static void fail(const char *what, int rc) __attribute__((noreturn)) BENCH_UNUSED;

static void fail(const char *what, int rc)
{
	if (errbuf[0] != '\0')
		die("%s: %s: %s", what, ws_strerror(rc), errbuf);
	die("%s: %s", what, ws_strerror(rc));
}

/* Run a libwsync call; die naming it on a negative result. */
#define CK(what, call) do { \
	int ck_rc_; \
	errbuf[0] = '\0'; \
	ck_rc_ = (call); \
	if (ck_rc_ < 0) \
		fail(what, ck_rc_); \
} while (0)

BENCH_UNUSED static void *xmalloc(size_t n)
{
	void *p = malloc(n);

	if (p == NULL)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* xorshift64*, fixed seeds: every run sees the same inputs. */
static uint64_t rng = 1;

BENCH_UNUSED static void rnd_seed(uint64_t s)
{
	rng = s ? s : 0x9e3779b97f4a7c15u;
}

BENCH_UNUSED static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * UINT64_C(2685821657736338717);
}

BENCH_UNUSED static uint64_t rnd_below(uint64_t n)
{
	return rnd() % n;
}

BENCH_UNUSED static double now(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* SQLite calls that end the program, naming what failed. */

BENCH_UNUSED static void sql_die(sqlite3 *db, const char *what)
{
	die("%s: %s", what, sqlite3_errmsg(db));
}

BENCH_UNUSED static void sql_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		die("sqlite '%s': %s", sql, msg ? msg : sqlite3_errmsg(db));
}

BENCH_UNUSED static sqlite3_stmt *sql_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		sql_die(db, "sqlite3_prepare_v2");
	return st;
}

/* The integer the one-row, one-column query sql returns. */
BENCH_UNUSED static int64_t sql_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = sql_prepare(db, sql);
	int64_t v;

	if (sqlite3_step(st) != SQLITE_ROW)
		die("sqlite '%s': %s", sql, sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * One line of the summary table that bench/Makefile prints and puts at the
 * top of RESULTS.md: the benchmark (B1..B7 or a name), what the figure is,
 * its median, min and max (min and max NAN for a single value), the unit,
 * and the goal with whether it was met (goal NULL: no goal).  Appended as
 * tab-separated fields to the file named by WSYNC_BENCH_SUMMARY; nothing
 * when that is unset.
 */
BENCH_UNUSED static void summary_add(const char *b, const char *what, double med,
    double min, double max, int prec, const char *unit, const char *goal, int met)
{
	const char *path = getenv("WSYNC_BENCH_SUMMARY");
	FILE *f;

	if (path == NULL || *path == '\0')
		return;
	if ((f = fopen(path, "a")) == NULL)
		die("cannot open '%s': %s", path, strerror(errno));
	fprintf(f, "%s\t%s\t%.*f\t", b, what, prec, med);
	if (min != min || max != max)
		fprintf(f, "-\t-\t");
	else
		fprintf(f, "%.*f\t%.*f\t", prec, min, prec, max);
	fprintf(f, "%s\t%s\t%s\n", unit, goal ? goal : "-",
	    goal ? (met ? "met" : "MISSED") : "-");
	if (fclose(f) != 0)
		die("cannot write '%s': %s", path, strerror(errno));
}

#endif
