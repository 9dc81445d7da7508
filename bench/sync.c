/* SPDX-License-Identifier: MIT */
/*
 * sync.c - end-to-end benchmarks of the wsync programs: real wsync-serve
 * and wsync-join processes talking over unix-domain sockets.
 *
 * 1. Fan-out: one hub, FOLLOWERS sites running wsync-join -f, and one
 *    writer site running wsync-join -f on a database that a separate
 *    process (a fork of this one) writes through its own SQLite
 *    connection.  (a) Latency: LAT_RATE single-row transactions a second
 *    for LAT_SECS; each row's id is looked up in memory shared with the
 *    writer, which stores the CLOCK_REALTIME at which its COMMIT returned
 *    (the row itself carries the time its transaction began), and this
 *    process polls every follower database every POLL_US to see when the
 *    row is there.  p50, p99 and max over all followers' rows.  (b)
 *    Sustained rate: the writer commits TP_BATCH-row transactions as fast
 *    as it can for TP_SECS; rows / (time the last follower holds the last
 *    row - time the writer began).
 * 2. No-op sync: a one-shot wsync-join when nothing has changed, on
 *    working sets of 10k, 100k and 1M rows that the site and the hub both
 *    hold.  Wall time from fork to exit, and the bytes each way, counted
 *    by this program run as an exec: relay (sync --relay SOCKET FILE)
 *    between the site and the hub's socket.
 * 3. Scale: the hub's VmRSS before and after IDLE_SITES connections that
 *    each complete a handshake (HELLO, ADD, CAUGHT_UP, SYNC, ACK) for one
 *    working set and stay idle; this process is the client for all of
 *    them, through libwsync's frame and session codecs, and reads what
 *    the hub sends them (join notices) as idle sites would.
 *
 * Prints one table on stdout and nothing else.  Everything lives in a
 * directory under /tmp that is removed at exit, and every process this
 * program starts is killed at exit or on SIGINT, SIGTERM or SIGHUP (and
 * dies with it, through PR_SET_PDEATHSIG, if it is killed outright).
 * Every wait is bounded.  Each figure is run several times and shown as
 * median, min and max; row contents come from a fixed-seed generator.
 * A failing step, including a wsync program that exits with an unexpected
 * status, prints "sync: ..." on stderr and exits 70, with one exception:
 * a program that fails under the load of a sustained-rate run is a
 * result, so that run is reported as FAILED in the table, with the
 * program's last log line, and the rest of the benchmark goes on.  With
 * WSYNC_BENCH_KEEP set in the environment the directory, with the
 * programs' logs, is kept.
 *
 * Usage: sync [BINDIR]   (default ../bin, where wsync-serve and wsync-join are)
 *        sync --relay SOCKET COUNTFILE   (internal: the exec: relay)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <wsync/wsync.h>

#define EX_SOFTWARE 70

#define FOLLOWERS 8             /* following sites in figure 1 */
#define LAT_REPS 3              /* latency runs */
#define LAT_RATE 100            /* transactions per second */
#define LAT_SECS 10             /* length of one latency run */
#define LAT_TX (LAT_RATE * LAT_SECS)
#define POLL_US 1000            /* follower poll period */
#define TP_REPS 3               /* sustained-rate runs */
#define TP_SECS 5               /* writing time of one run */
#define TP_BATCH 100            /* rows per transaction */
#define DRAIN_SECS 120          /* longest wait for followers after a run */

#define NOOP_REPS 5             /* timed no-op syncs per size */
#define BYTES_REPS 3            /* counted no-op syncs per size */
#define CHUNK_ROWS 100000       /* rows per transaction and sync when building */

#define SCALE_REPS 3            /* fresh hubs in figure 3 */
#define IDLE_SITES 1000         /* connections per hub */
#define IDLE_WSID "idle"
#define DRAIN_EVERY 10          /* handshakes between reads of the joined sites */

#define BODY_LEN 32             /* bytes of notes.body */
#define JOIN_SECS 300           /* longest one-shot wsync-join */
#define READY_SECS 30           /* longest wait for a process to get ready */
#define IO_SECS 10              /* socket timeouts of the figure 3 client */

/* Goals, from the task. */
#define GOAL_NOOP_MS 10.0       /* no-op wall time */
#define GOAL_NOOP_BYTES 1024.0  /* no-op bytes, both ways together */
#define GOAL_NOOP_FLAT 1.5      /* no-op wall time 1M rows / 10k rows ("flat") */
#define GOAL_SITE_KIB 64.0      /* hub memory per idle site */

#define PATHLEN 512

static pid_t main_pid;          /* the others are forks: writers, the relay */

/* A fork ends with _exit(2): the atexit cleanup is the main process's. */
#define BENCH_NAME "sync"
#define BENCH_EXIT(status) do { \
	if (getpid() != main_pid) \
		_exit(status); \
	exit(status); \
} while (0)
#include "common.h"

/* ------------------------------------------------------------- processes */

#define MAX_KIDS 32
static pid_t kids[MAX_KIDS];    /* started and not yet reaped; 0 is a free slot */

static char tmp_dir[64];
static char *rm_argv[] = {"rm", "-rf", "--", tmp_dir, NULL};
static int keep_tmp;            /* WSYNC_BENCH_KEEP set: leave tmp_dir */

/*
 * Kill every child and remove the temp directory.  Only async-signal-safe
 * calls, as the signal handler runs it; does nothing in a forked child.
 */
static void cleanup(void)
{
	pid_t pid;

	if (getpid() != main_pid)
		return;
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] > 0) {
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
	if (tmp_dir[0] == '\0' || keep_tmp)
		return;
	if ((pid = fork()) == 0) {
		execv("/bin/rm", rm_argv);
		_exit(127);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
	tmp_dir[0] = '\0';
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}


/* CLOCK_REALTIME in microseconds, the time the rows carry. */
static int64_t rt_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_s(double s)
{
	struct timespec ts;

	if (s <= 0)
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Sleep until the CLOCK_MONOTONIC time t (seconds), as now() reads it. */
static void sleep_until(double t)
{
	struct timespec ts;

	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static void kid_add(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] == 0) {
			kids[i] = pid;
			return;
		}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	die("more than %d child processes", MAX_KIDS);
}

static void kid_forget(pid_t pid)
{
	for (int i = 0; i < MAX_KIDS; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

/*
 * Fork a child that dies with this process; in it, restore the default
 * signal dispositions.  Returns as fork() does; the parent records it.
 */
static pid_t fork_kid(void)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != main_pid)
			_exit(EX_SOFTWARE);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		return 0;
	}
	kid_add(pid);
	return pid;
}

/* Start argv[0] with stdin and stdout on /dev/null, stderr appended to log. */
static pid_t spawn(const char *log, char *const argv[])
{
	pid_t pid = fork_kid();
	int fd;

	if (pid > 0)
		return pid;
	if ((fd = open("/dev/null", O_RDWR)) < 0 || dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
		_exit(127);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0 || dup2(fd, 2) < 0)
		_exit(127);
	execv(argv[0], argv);
	dprintf(2, "sync: cannot run '%s': %s\n", argv[0], strerror(errno));
	_exit(127);
}

/*
 * Wait up to secs for child pid to exit; 1 with its status in *status
 * (and the child reaped and forgotten), 0 if it is still running.
 */
static int pid_wait(pid_t pid, double secs, int *status)
{
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	double end = now() + secs;

	if (fd >= 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r;

		for (;;) {
			double left = end - now();

			r = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
			if (r >= 0 || errno != EINTR)
				break;
		}
		close(fd);
		if (r == 0)
			return 0;
	} else {
		for (;;) {
			pid_t w = waitpid(pid, status, WNOHANG);

			if (w == pid) {
				kid_forget(pid);
				return 1;
			}
			if (w < 0)
				die("waitpid: %s", strerror(errno));
			if (now() >= end)
				return 0;
			sleep_s(0.0005);
		}
	}
	if (waitpid(pid, status, 0) != pid)
		die("waitpid: %s", strerror(errno));
	kid_forget(pid);
	return 1;
}

/* The last bytes of a log file, for error messages. */
static const char *log_tail(const char *path)
{
	static char buf[600];
	int fd = open(path, O_RDONLY);
	off_t end;
	ssize_t n = 0;

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	end = lseek(fd, 0, SEEK_END);
	if (end > (off_t)sizeof buf - 1)
		lseek(fd, end - (off_t)sizeof buf + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static const char *status_str(int st)
{
	static char buf[64];

	if (WIFEXITED(st))
		snprintf(buf, sizeof buf, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sizeof buf, "signal %d", WTERMSIG(st));
	else
		snprintf(buf, sizeof buf, "wait status %#x", st);
	return buf;
}

/* Stop a program with SIGTERM, as a user would; it must exit 0. */
static void stop(pid_t pid, const char *what, const char *log)
{
	int st;

	kill(pid, SIGTERM);
	if (!pid_wait(pid, 10, &st)) {
		kill(pid, SIGKILL);
		pid_wait(pid, 10, &st);
		die("%s did not stop within 10 s of SIGTERM; log:\n%s", what, log_tail(log));
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s stopped with %s; log:\n%s", what, status_str(st), log_tail(log));
}

static void tmp_init(void)
{
	strcpy(tmp_dir, "/tmp/wsync-sync-XXXXXX");
	if (mkdtemp(tmp_dir) == NULL) {
		tmp_dir[0] = '\0';
		die("cannot create a directory under /tmp: %s", strerror(errno));
	}
	keep_tmp = getenv("WSYNC_BENCH_KEEP") != NULL;
	if (keep_tmp)
		fprintf(stderr, "sync: keeping '%s'\n", tmp_dir);
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
}

static char *tmp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A path under the temp directory; the result is malloc'ed, never freed. */
static char *tmp(const char *fmt, ...)
{
	char name[256], *p = xmalloc(PATHLEN);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof name, fmt, ap);
	va_end(ap);
	snprintf(p, PATHLEN, "%s/%s", tmp_dir, name);
	return p;
}

/* ------------------------------------------------------- wsync programs */

static char bin_serve[PATH_MAX + 16], bin_join[PATH_MAX + 16], self_exe[PATHLEN];

struct hub {
	pid_t pid;
	char *sock, *dir, *log;
	char addr[PATHLEN];     /* unix:SOCK */
};

/* Start a hub with --create on a fresh unix socket; wait until it listens. */
static void hub_start(struct hub *h, const char *name)
{
	char *argv[8];
	double end = now() + READY_SECS;
	int st;

	h->sock = tmp("%s.sock", name);
	h->dir = tmp("%s", name);
	h->log = tmp("%s.log", name);
	snprintf(h->addr, sizeof h->addr, "unix:%s", h->sock);
	argv[0] = bin_serve;
	argv[1] = "-l";
	argv[2] = h->addr;
	argv[3] = "-d";
	argv[4] = h->dir;
	argv[5] = "--create";
	argv[6] = NULL;
	h->pid = spawn(h->log, argv);
	for (;;) {
		if (strstr(log_tail(h->log), "wsync-serve: listening on ") != NULL)
			return;
		if (pid_wait(h->pid, 0, &st))
			die("wsync-serve exited with %s before listening; log:\n%s",
			    status_str(st), log_tail(h->log));
		if (now() > end)
			die("wsync-serve not listening after %d s; log:\n%s", READY_SECS,
			    log_tail(h->log));
		sleep_s(0.002);
	}
}

static void hub_stop(struct hub *h)
{
	stop(h->pid, "wsync-serve", h->log);
}

/* The hub's resident set, in KiB. */
static long hub_rss_kib(const struct hub *h)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	snprintf(path, sizeof path, "/proc/%ld/status", (long)h->pid);
	if ((f = fopen(path, "r")) == NULL)
		die("cannot open '%s': %s", path, strerror(errno));
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	if (kib < 0)
		die("no VmRSS in '%s'", path);
	return kib;
}

/* The number of file descriptors the hub holds. */
static int hub_fds(const struct hub *h)
{
	char path[64];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%ld/fd", (long)h->pid);
	if ((d = opendir(path)) == NULL)
		die("cannot open '%s': %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Start wsync-join -f HUB WSID=DB, its stderr going to log. */
static pid_t follow_start(const char *hub, const char *wsid, const char *db,
    const char *log)
{
	char op[PATHLEN + 160];
	char *argv[] = {bin_join, "-f", (char *)hub, op, NULL};

	snprintf(op, sizeof op, "%s=%s", wsid, db);
	return spawn(log, argv);
}

/*
 * Run a one-shot wsync-join HUB WSID=DB to its end; it must exit 0.
 * Returns its wall time, from fork to exit, in seconds.
 */
static double join_once(const char *hub, const char *wsid, const char *db,
    const char *log)
{
	char op[PATHLEN + 160];
	char *argv[] = {bin_join, (char *)hub, op, NULL};
	double t0;
	pid_t pid;
	int st;

	snprintf(op, sizeof op, "%s=%s", wsid, db);
	t0 = now();
	pid = spawn(log, argv);
	if (!pid_wait(pid, JOIN_SECS, &st)) {
		kill(pid, SIGKILL);
		pid_wait(pid, 10, &st);
		die("wsync-join %s: still running after %d s; log:\n%s", op, JOIN_SECS,
		    log_tail(log));
	}
	t0 = now() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("wsync-join %s: %s; log:\n%s", op, status_str(st), log_tail(log));
	return t0;
}

/* ---------------------------------------------------------------- sqlite */

/* Open (creating) a database, waiting up to 5 s on a lock. */
static sqlite3 *db_open(const char *path)
{
	sqlite3 *db;

	if (sqlite3_open(path, &db) != SQLITE_OK)
		die("sqlite3_open '%s': %s", path, db ? sqlite3_errmsg(db) : "out of memory");
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void db_close(sqlite3 *db)
{
	if (sqlite3_close(db) != SQLITE_OK)
		sql_die(db, "sqlite3_close");
}

/* Make path a WAL database, so that readers never block the site's writes. */
static void db_make_wal(sqlite3 *db)
{
	sqlite3_stmt *st = sql_prepare(db, "PRAGMA journal_mode=WAL");

	if (sqlite3_step(st) != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
		die("sqlite: cannot set journal_mode=WAL");
	sqlite3_finalize(st);
}

#define NOTES_SQL "CREATE TABLE notes(id INTEGER PRIMARY KEY, t INTEGER, body TEXT)"


/* Bind a fresh BODY_LEN-letter body to parameter i. */
static void bind_body(sqlite3 *db, sqlite3_stmt *st, int i)
{
	char body[BODY_LEN];

	for (int k = 0; k < BODY_LEN; k++)
		body[k] = (char)('a' + (rnd() >> 32) % 26);
	if (sqlite3_bind_text(st, i, body, BODY_LEN, SQLITE_TRANSIENT) != SQLITE_OK)
		sql_die(db, "sqlite3_bind_text");
}

static void step_done(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		sql_die(db, "sqlite3_step");
	sqlite3_reset(st);
}

/* ---------------------------------------------------------------- output */

struct figure {
	double med, min, max;
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

static struct figure summary(const double *v, int n)
{
	double s[16];
	struct figure f;

	memcpy(s, v, (size_t)n * sizeof s[0]);
	qsort(s, (size_t)n, sizeof s[0], cmp_double);
	f.med = s[n / 2];
	f.min = s[0];
	f.max = s[n - 1];
	return f;
}

/*
 * One line: a name, median-min-max with prec decimals, a unit, and a goal
 * with "met" or "MISSED" (goal may be NULL).
 */
static void row(const char *name, struct figure f, int prec, const char *unit,
    const char *goal, int met)
{
	printf("  %-40s %10.*f %10.*f %10.*f  ", name, prec, f.med, prec, f.min,
	    prec, f.max);
	if (goal)
		printf("%-7s %-7s %s\n", unit, goal, met ? "met" : "MISSED");
	else
		printf("%s\n", unit);
	fflush(stdout);
}

/* The same for a single value. */
static void row_single(const char *name, double v, int prec, const char *unit,
    const char *goal, int met)
{
	printf("  %-40s %10.*f %10s %10s  ", name, prec, v, "-", "-");
	if (goal)
		printf("%-7s %-7s %s\n", unit, goal, met ? "met" : "MISSED");
	else
		printf("%s\n", unit);
	fflush(stdout);
}

/* --------------------------------------------------- figure 1: fan-out */

struct fanout {
	struct hub hub;
	char *wdb, *wlog;               /* the writer site */
	pid_t wsite;
	char *fdb[FOLLOWERS], *flog[FOLLOWERS];
	pid_t site[FOLLOWERS];
	sqlite3 *rdb[FOLLOWERS];        /* this process's readers */
	sqlite3_stmt *since[FOLLOWERS]; /* SELECT id, t ... WHERE id > ?1 */
	sqlite3_stmt *maxid[FOLLOWERS]; /* SELECT max(id) */
	int64_t next_id;                /* the writer's next row id */
};

/* Memory shared with a writer fork. */
struct wshared {
	double t0, t1;                  /* CLOCK_MONOTONIC, first BEGIN, last COMMIT */
	int64_t rows;                   /* committed */
	int64_t done[];                 /* LAT: realtime us when COMMIT of row k returned */
};

static struct wshared *wshared_new(size_t ndone)
{
	size_t n = sizeof(struct wshared) + ndone * sizeof(int64_t);
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	return p;
}

static sqlite3 *writer_open(const char *path)
{
	sqlite3 *db = db_open(path);

	sql_exec(db, "PRAGMA synchronous=NORMAL");
	return db;
}

/*
 * The writer of a latency run (in a fork): n single-row transactions,
 * one every 1/LAT_RATE s on a fixed schedule, rows base..base+n-1.
 */
static void writer_paced(const char *path, int64_t base, int n, struct wshared *w)
{
	sqlite3 *db = writer_open(path);
	sqlite3_stmt *ins = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3)");
	sqlite3_stmt *begin = sql_prepare(db, "BEGIN IMMEDIATE");
	sqlite3_stmt *commit = sql_prepare(db, "COMMIT");
	double t0 = now();

	rnd_seed(11);
	w->t0 = t0;
	for (int k = 0; k < n; k++) {
		sleep_until(t0 + (double)k / LAT_RATE);
		step_done(db, begin);
		sqlite3_bind_int64(ins, 1, base + k);
		sqlite3_bind_int64(ins, 2, rt_us());
		bind_body(db, ins, 3);
		step_done(db, ins);
		step_done(db, commit);
		__atomic_store_n(&w->done[k], rt_us(), __ATOMIC_RELEASE);
	}
	w->t1 = now();
	w->rows = n;
	sqlite3_finalize(ins);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	db_close(db);
}

/* The writer of a sustained-rate run: TP_BATCH-row transactions for TP_SECS. */
static void writer_fast(const char *path, int64_t base, struct wshared *w)
{
	sqlite3 *db = writer_open(path);
	sqlite3_stmt *ins = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3)");
	sqlite3_stmt *begin = sql_prepare(db, "BEGIN IMMEDIATE");
	sqlite3_stmt *commit = sql_prepare(db, "COMMIT");
	int64_t id = base;
	double t0 = now();

	rnd_seed(12);
	w->t0 = t0;
	while (now() - t0 < TP_SECS) {
		step_done(db, begin);
		for (int k = 0; k < TP_BATCH; k++) {
			sqlite3_bind_int64(ins, 1, id++);
			sqlite3_bind_int64(ins, 2, rt_us());
			bind_body(db, ins, 3);
			step_done(db, ins);
		}
		step_done(db, commit);
		__atomic_store_n(&w->rows, id - base, __ATOMIC_RELEASE);
	}
	w->t1 = now();
	sqlite3_finalize(ins);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	db_close(db);
}

static void writer_reap(pid_t pid)
{
	int st;

	if (!pid_wait(pid, 30, &st))
		die("the writer is still running 30 s after its last commit");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("the writer failed: %s", status_str(st));
}

/* The last non-empty line of a log file. */
static const char *log_last_line(const char *path)
{
	static char line[600];
	const char *t = log_tail(path);
	size_t n = strlen(t);

	while (n > 0 && t[n - 1] == '\n')
		n--;
	for (size_t b = n; ; b--)
		if (b == 0 || t[b - 1] == '\n') {
			snprintf(line, sizeof line, "%.*s", (int)(n - b), t + b);
			return line;
		}
}

static int dead(pid_t *pid, const char *what, const char *log, char *why, size_t n)
{
	int st;

	if (*pid == 0 || !pid_wait(*pid, 0, &st))
		return 0;
	*pid = 0;
	snprintf(why, n, "%s exited with %s: %s", what, status_str(st), log_last_line(log));
	return 1;
}

/*
 * If a program of the fan-out has exited, reap it, zero its pid, describe
 * it in why[0..n) and return 1.
 */
static int fanout_dead(struct fanout *F, char *why, size_t n)
{
	char what[64];

	if (dead(&F->hub.pid, "wsync-serve", F->hub.log, why, n) ||
	    dead(&F->wsite, "wsync-join -f (writer site)", F->wlog, why, n))
		return 1;
	for (int f = 0; f < FOLLOWERS; f++) {
		snprintf(what, sizeof what, "wsync-join -f (follower %d)", f + 1);
		if (dead(&F->site[f], what, F->flog[f], why, n))
			return 1;
	}
	return 0;
}

static void fanout_check(struct fanout *F)
{
	char why[800];

	if (fanout_dead(F, why, sizeof why))
		die("%s", why);
}

/* The largest id in follower f's notes, or 0 while it has none. */
static int64_t follower_max(struct fanout *F, int f)
{
	int64_t v = 0;
	int rc = sqlite3_step(F->maxid[f]);

	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(F->maxid[f], 0);
	else
		sql_die(F->rdb[f], "SELECT max(id)");
	sqlite3_reset(F->maxid[f]);
	return v;
}

/*
 * Start the hub, seed the writer's database with one row and sync it
 * once, then start the followers and the writer's own wsync-join -f, and
 * wait until every follower holds the seed row.
 */
static void fanout_setup(struct fanout *F)
{
	double end;
	sqlite3 *db;

	hub_start(&F->hub, "fan");
	F->wdb = tmp("writer.db");
	F->wlog = tmp("writer.log");
	db = db_open(F->wdb);
	db_make_wal(db);
	sql_exec(db, NOTES_SQL);
	sql_exec(db, "INSERT INTO notes VALUES(1, 0, 'seed')");
	db_close(db);
	F->next_id = 2;
	join_once(F->hub.addr, "notes", F->wdb, F->wlog);
	for (int f = 0; f < FOLLOWERS; f++) {
		F->fdb[f] = tmp("follower%d.db", f + 1);
		F->flog[f] = tmp("follower%d.log", f + 1);
		db = db_open(F->fdb[f]);
		db_make_wal(db);
		db_close(db);
		F->site[f] = follow_start(F->hub.addr, "notes", F->fdb[f], F->flog[f]);
	}
	F->wsite = follow_start(F->hub.addr, "notes", F->wdb, F->wlog);

	/* The followers create notes when the seed arrives. */
	end = now() + READY_SECS;
	for (int f = 0; f < FOLLOWERS; f++) {
		F->rdb[f] = db_open(F->fdb[f]);
		for (;;) {
			if (sqlite3_prepare_v2(F->rdb[f],
			    "SELECT id, t FROM notes WHERE id > ?1 ORDER BY id", -1,
			    &F->since[f], NULL) == SQLITE_OK)
				break;
			if (now() > end)
				die("follower %d has no notes table after %d s; log:\n%s",
				    f + 1, READY_SECS, log_tail(F->flog[f]));
			sleep_s(0.005);
		}
		F->maxid[f] = sql_prepare(F->rdb[f], "SELECT max(id) FROM notes");
		while (follower_max(F, f) < 1) {
			if (now() > end)
				die("follower %d lacks the seed row after %d s; log:\n%s",
				    f + 1, READY_SECS, log_tail(F->flog[f]));
			sleep_s(0.005);
		}
	}
}

/*
 * One latency run.  Poll every follower every POLL_US for rows above the
 * last one seen; a row's latency is the time of the poll that found it
 * minus the time its writer's COMMIT returned.  Sorted latencies (us) of
 * all followers' rows go to lat[0..FOLLOWERS*LAT_TX).
 */
static void latency_run(struct fanout *F, int64_t *lat, double *rate)
{
	struct wshared *w = wshared_new(LAT_TX);
	int64_t base = F->next_id, last[FOLLOWERS], top = base + LAT_TX - 1;
	size_t m = 0;
	double next, end;
	pid_t pid;
	int pending = FOLLOWERS, reaped = 0, st;
	unsigned polls = 0;

	for (int f = 0; f < FOLLOWERS; f++)
		last[f] = base - 1;
	if ((pid = fork_kid()) == 0) {
		writer_paced(F->wdb, base, LAT_TX, w);
		_exit(0);
	}
	next = now();
	end = next + LAT_SECS + DRAIN_SECS;
	while (pending > 0) {
		next += POLL_US * 1e-6;
		if (next < now())
			next = now();
		sleep_until(next);
		for (int f = 0; f < FOLLOWERS; f++) {
			sqlite3_stmt *st = F->since[f];
			int64_t t;
			int rc;

			if (last[f] == top)
				continue;
			t = rt_us();
			sqlite3_bind_int64(st, 1, last[f]);
			while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
				int64_t id = sqlite3_column_int64(st, 0), done;

				if (id < base || id > top || m == (size_t)FOLLOWERS * LAT_TX)
					die("follower %d: unexpected row %" PRId64, f + 1, id);
				done = __atomic_load_n(&w->done[id - base], __ATOMIC_ACQUIRE);
				if (done == 0) /* seen before COMMIT returned: use BEGIN */
					done = sqlite3_column_int64(st, 1);
				lat[m++] = t - done;
				last[f] = id;
			}
			if (rc != SQLITE_DONE)
				sql_die(F->rdb[f], "SELECT id, t");
			sqlite3_reset(st);
			if (last[f] == top)
				pending--;
		}
		if (++polls % 100 == 0) {
			fanout_check(F);
			if (!reaped && pid_wait(pid, 0, &st)) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
					die("the writer failed: %s", status_str(st));
				reaped = 1;
			}
		}
		if (now() > end)
			for (int f = 0; f < FOLLOWERS; f++)
				if (last[f] != top)
					die("follower %d holds rows up to %" PRId64 " of %" PRId64
					    " %d s after the writer began; log:\n%s", f + 1, last[f],
					    top, LAT_SECS + DRAIN_SECS, log_tail(F->flog[f]));
	}
	if (!reaped)
		writer_reap(pid);
	if (m != (size_t)FOLLOWERS * LAT_TX)
		die("latency run: %zu rows seen, expected %d", m, FOLLOWERS * LAT_TX);
	qsort(lat, m, sizeof lat[0], cmp_i64);
	*rate = LAT_TX / (w->t1 - w->t0);
	F->next_id = top + 1;
	munmap(w, sizeof *w + LAT_TX * sizeof(int64_t));
}

/* Nearest-rank percentile q of the n sorted values v, in ms. */
static double pct_ms(const int64_t *v, size_t n, double q)
{
	size_t k = (size_t)(q * (double)n + 0.999999);

	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return (double)v[k - 1] / 1000.0;
}

struct tp_result {
	double rows, writer_rate, rate, lag;
};

/*
 * One sustained-rate run: the writer commits as fast as it can for
 * TP_SECS while this process polls each follower's max(id) every 5 ms.
 */
static int throughput_run(struct fanout *F, struct tp_result *r, char *why, size_t n)
{
	struct wshared *w = wshared_new(0);
	int64_t base = F->next_id, top = -1;
	double tdone[FOLLOWERS] = {0}, last = 0, end = 0;
	int pending = FOLLOWERS, st, rc = 0;
	unsigned polls = 0;
	pid_t pid;

	if ((pid = fork_kid()) == 0) {
		writer_fast(F->wdb, base, w);
		_exit(0);
	}
	while (pending > 0) {
		sleep_s(0.005);
		if (top < 0 && pid_wait(pid, 0, &st)) {
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				die("the writer failed: %s", status_str(st));
			top = base + w->rows - 1;
			end = now() + DRAIN_SECS;
		}
		if (++polls % 20 == 0 && fanout_dead(F, why, n)) {
			rc = -1;
			break;
		}
		if (top < 0)
			continue;
		for (int f = 0; f < FOLLOWERS; f++) {
			if (tdone[f] == 0 && follower_max(F, f) >= top) {
				tdone[f] = now();
				pending--;
			}
		}
		if (pending > 0 && now() > end) {
			for (int f = 0; f < FOLLOWERS; f++)
				if (tdone[f] == 0) {
					snprintf(why, n, "follower %d holds rows up to %" PRId64
					    " of %" PRId64 " %d s after the writer stopped", f + 1,
					    follower_max(F, f), top, DRAIN_SECS);
					break;
				}
			rc = -1;
			break;
		}
	}
	if (top < 0)
		writer_reap(pid);
	if (rc == 0) {
		for (int f = 0; f < FOLLOWERS; f++)
			if (tdone[f] > last)
				last = tdone[f];
		r->rows = (double)w->rows;
		r->writer_rate = r->rows / (w->t1 - w->t0);
		r->rate = r->rows / (last - w->t0);
		r->lag = last - w->t1;
		F->next_id = top + 1;
	}
	munmap(w, sizeof *w);
	return rc;
}

static void bench_fanout(void)
{
	static struct fanout F;
	int64_t *lat = xmalloc((size_t)FOLLOWERS * LAT_TX * sizeof *lat);
	double p50[LAT_REPS], p99[LAT_REPS], pmax[LAT_REPS], wrate[LAT_REPS];
	double rows[TP_REPS], wr[TP_REPS], rate[TP_REPS], lag[TP_REPS];
	struct rusage ru0, ru1;
	double t0, cpu;
	sqlite3 *db;
	int64_t total;
	char why[800];
	int ok;

	fanout_setup(&F);
	printf("\n1. fan-out: one hub, %d following sites and one writer site, each a\n"
	    "   wsync-join -f on its own database; a separate process writes\n"
	    "   the writer's database (WAL, synchronous=NORMAL)\n", FOLLOWERS);
	printf("   (a) %d single-row transactions/s for %d s; latency from the\n"
	    "   writer's COMMIT returning to the row being readable at a follower,\n"
	    "   every follower polled each %d us; over all %d followers' rows\n",
	    LAT_RATE, LAT_SECS, POLL_US, FOLLOWERS);

	getrusage(RUSAGE_SELF, &ru0);
	t0 = now();
	for (int r = 0; r < LAT_REPS; r++) {
		size_t n = (size_t)FOLLOWERS * LAT_TX;

		latency_run(&F, lat, &wrate[r]);
		p50[r] = pct_ms(lat, n, 0.50);
		p99[r] = pct_ms(lat, n, 0.99);
		pmax[r] = (double)lat[n - 1] / 1000.0;
	}
	getrusage(RUSAGE_SELF, &ru1);
	cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec +
	    ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
	    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec +
	    ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
	row("commit -> follower, p50", summary(p50, LAT_REPS), 2, "ms", NULL, 0);
	row("commit -> follower, p99", summary(p99, LAT_REPS), 2, "ms", NULL, 0);
	row("commit -> follower, max", summary(pmax, LAT_REPS), 2, "ms", NULL, 0);
	row("writer's rate achieved", summary(wrate, LAT_REPS), 1, "tx/s", NULL, 0);
	printf("   (the poller used %.0f%% of one core)\n", 100.0 * cpu / (now() - t0));

	printf("   (b) the writer commits %d-row transactions as fast as it can for\n"
	    "   %d s; rate = rows / (last follower holds the last row - first BEGIN)\n",
	    TP_BATCH, TP_SECS);
	/*
	 * A program that fails under this load is a result, not a broken
	 * benchmark: the run is reported as failed, with the program's last
	 * words, and the runs after it are skipped.
	 */
	for (ok = 0; ok < TP_REPS; ok++) {
		struct tp_result t;

		if (throughput_run(&F, &t, why, sizeof why) != 0)
			break;
		rows[ok] = t.rows;
		wr[ok] = t.writer_rate;
		rate[ok] = t.rate;
		lag[ok] = t.lag;
	}
	if (ok > 0) {
		row("rows written", summary(rows, ok), 0, "rows", NULL, 0);
		row("writer's local commit rate", summary(wr, ok), 0, "rows/s", NULL, 0);
		row("sustained, at all followers", summary(rate, ok), 0, "changes/s",
		    NULL, 0);
		row("last follower done after writer", summary(lag, ok), 2, "s", NULL, 0);
	}
	if (ok < TP_REPS)
		printf("  run %d of %d FAILED (%s%d runs skipped): %s\n", ok + 1, TP_REPS,
		    ok > 0 ? "figures above from the runs before it; " : "",
		    TP_REPS - ok - 1, why);

	/* Every follower holds exactly the writer's rows. */
	if (ok == TP_REPS) {
		db = db_open(F.wdb);
		total = sql_int(db, "SELECT count(*) FROM notes");
		db_close(db);
		for (int f = 0; f < FOLLOWERS; f++) {
			int64_t n = sql_int(F.rdb[f], "SELECT count(*) FROM notes");

			if (n != total)
				die("follower %d holds %" PRId64 " rows, the writer %" PRId64,
				    f + 1, n, total);
		}
	}
	for (int f = 0; f < FOLLOWERS; f++) {
		sqlite3_finalize(F.since[f]);
		sqlite3_finalize(F.maxid[f]);
		db_close(F.rdb[f]);
	}
	if (F.wsite != 0)
		stop(F.wsite, "wsync-join -f (writer)", F.wlog);
	for (int f = 0; f < FOLLOWERS; f++)
		if (F.site[f] != 0)
			stop(F.site[f], "wsync-join -f (follower)", F.flog[f]);
	if (F.hub.pid != 0)
		hub_stop(&F.hub);
	free(lat);
}

/* ---------------------------------------------------- figure 2: no-op */

/* Counts written by the relay: bytes site->hub and hub->site. */
static void counts_read(const char *path, double *up, double *down)
{
	double end = now() + 5;
	FILE *f;
	unsigned long long u, d;

	/* wsync-join may exit before its exec: child has written them. */
	while ((f = fopen(path, "r")) == NULL) {
		if (now() > end)
			die("the relay wrote no counts to '%s'", path);
		sleep_s(0.001);
	}
	if (fscanf(f, "%llu %llu", &u, &d) != 2)
		die("bad counts in '%s'", path);
	fclose(f);
	unlink(path);
	*up = (double)u;
	*down = (double)d;
}

static void bench_noop(void)
{
	static const struct {
		const char *wsid, *label;
		int rows;
	} sets[] = {
		{"n10k", "10k", 10000},
		{"n100k", "100k", 100000},
		{"n1m", "1M", 1000000},
	};
	enum { NSETS = sizeof sets / sizeof sets[0] };
	double wall[NSETS][NOOP_REPS], up[NSETS][BYTES_REPS], down[NSETS][BYTES_REPS];
	double both[NSETS][BYTES_REPS], flat;
	char *db[NSETS], *log = tmp("noop.log"), *cnt = tmp("counts");
	char relay[3 * PATHLEN + 64], name[64], goal[16];
	struct hub h;
	double t0;

	if (strchr(self_exe, '\'') != NULL)
		die("cannot quote '%s' for exec:", self_exe);
	hub_start(&h, "noop");
	snprintf(relay, sizeof relay, "exec:'%s' --relay '%s' '%s'", self_exe, h.sock, cnt);

	/*
	 * Build each set as an application would grow it, CHUNK_ROWS per
	 * transaction with a sync after each.  (A single first sync of 1M
	 * rows that a table already holds fails: the site sends them as one
	 * batch, which is over the hub's 16 MiB frame limit.)
	 */
	t0 = now();
	rnd_seed(21);
	for (int s = 0; s < NSETS; s++) {
		sqlite3 *d;
		sqlite3_stmt *ins;

		db[s] = tmp("%s.db", sets[s].wsid);
		d = db_open(db[s]);
		db_make_wal(d);
		sql_exec(d, NOTES_SQL);
		join_once(h.addr, sets[s].wsid, db[s], log);
		ins = sql_prepare(d, "INSERT INTO notes VALUES(?1, ?2, ?3)");
		for (int id = 1; id <= sets[s].rows;) {
			sql_exec(d, "BEGIN");
			for (int k = 0; k < CHUNK_ROWS && id <= sets[s].rows; k++, id++) {
				sqlite3_bind_int64(ins, 1, id);
				sqlite3_bind_int64(ins, 2, (int64_t)(rnd() >> 20));
				bind_body(d, ins, 3);
				step_done(d, ins);
			}
			sql_exec(d, "COMMIT");
			join_once(h.addr, sets[s].wsid, db[s], log);
		}
		sqlite3_finalize(ins);
		db_close(d);
	}
	printf("\n2. no-op sync: one-shot wsync-join over a unix socket when the site\n"
	    "   and the hub both hold every row of notes (built %d rows per\n"
	    "   transaction and sync, in %.1f s, untimed); wall time from fork to\n"
	    "   exit; bytes counted by an exec: relay, the preamble included\n",
	    CHUNK_ROWS, now() - t0);

	/* The sizes take turns within each repetition. */
	for (int r = 0; r < NOOP_REPS; r++)
		for (int s = 0; s < NSETS; s++)
			wall[s][r] = 1000.0 * join_once(h.addr, sets[s].wsid, db[s], log);
	for (int r = 0; r < BYTES_REPS; r++)
		for (int s = 0; s < NSETS; s++) {
			join_once(relay, sets[s].wsid, db[s], log);
			counts_read(cnt, &up[s][r], &down[s][r]);
			both[s][r] = up[s][r] + down[s][r];
		}
	for (int s = 0; s < NSETS; s++) {
		struct figure f = summary(wall[s], NOOP_REPS);

		snprintf(name, sizeof name, "%s rows: wall time", sets[s].label);
		snprintf(goal, sizeof goal, "< %.0f", GOAL_NOOP_MS);
		row(name, f, 2, "ms", goal, f.med < GOAL_NOOP_MS);
		snprintf(name, sizeof name, "%s rows: bytes site -> hub", sets[s].label);
		row(name, summary(up[s], BYTES_REPS), 0, "B", NULL, 0);
		snprintf(name, sizeof name, "%s rows: bytes hub -> site", sets[s].label);
		row(name, summary(down[s], BYTES_REPS), 0, "B", NULL, 0);
		f = summary(both[s], BYTES_REPS);
		snprintf(name, sizeof name, "%s rows: bytes, both ways", sets[s].label);
		snprintf(goal, sizeof goal, "< %.0f", GOAL_NOOP_BYTES);
		row(name, f, 0, "B", goal, f.med < GOAL_NOOP_BYTES);
	}
	/* Of the medians: a ratio per repetition would be mostly noise. */
	flat = summary(wall[NSETS - 1], NOOP_REPS).med / summary(wall[0], NOOP_REPS).med;
	snprintf(goal, sizeof goal, "<= %.1f", GOAL_NOOP_FLAT);
	row_single("wall time 1M / 10k, of the medians", flat, 2, "x", goal,
	    flat <= GOAL_NOOP_FLAT);
	hub_stop(&h);
}

/*
 * The exec: relay (sync --relay SOCKET COUNTFILE): connect to the hub's
 * socket, copy stdin to it and it to stdout, and write the byte counts,
 * "UP DOWN", to COUNTFILE when the hub closes.  Bounded to 60 s.
 */
static int relay(const char *sock, const char *cntfile)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned long long up = 0, down = 0;
	static uint8_t buf[1 << 16];
	char tmpf[PATHLEN + 8];
	int s, in_open = 1, out_open = 1;
	double end = now() + 60;
	FILE *f;

	signal(SIGPIPE, SIG_IGN);
	if (strlen(sock) >= sizeof sa.sun_path)
		die("socket path too long: '%s'", sock);
	strcpy(sa.sun_path, sock);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(s, (struct sockaddr *)&sa, sizeof sa) != 0)
		die("cannot connect to '%s': %s", sock, strerror(errno));
	for (;;) {
		struct pollfd p[2] = {
			{.fd = in_open ? 0 : -1, .events = POLLIN},
			{.fd = s, .events = POLLIN},
		};
		ssize_t n;

		if (now() > end)
			die("relay: still open after 60 s");
		if (poll(p, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents) {
			n = read(0, buf, sizeof buf);
			if (n <= 0) {
				in_open = 0;
				shutdown(s, SHUT_WR);
			} else {
				up += (unsigned long long)n;
				for (ssize_t o = 0, w; o < n; o += w)
					if ((w = write(s, buf + o, (size_t)(n - o))) < 0)
						die("write to the hub: %s", strerror(errno));
			}
		}
		if (p[1].revents) {
			n = read(s, buf, sizeof buf);
			if (n <= 0)
				break;
			down += (unsigned long long)n;
			for (ssize_t o = 0, w; out_open && o < n; o += w)
				if ((w = write(1, buf + o, (size_t)(n - o))) < 0)
					out_open = 0; /* the site is gone; go on counting */
		}
	}
	close(1);
	close(s);
	snprintf(tmpf, sizeof tmpf, "%s.tmp", cntfile);
	if ((f = fopen(tmpf, "w")) == NULL || fprintf(f, "%llu %llu\n", up, down) < 0 ||
	    fclose(f) != 0 || rename(tmpf, cntfile) != 0)
		die("cannot write '%s': %s", cntfile, strerror(errno));
	return 0;
}

/* ---------------------------------------------------- figure 3: scale */

/* One connection of the figure 3 client. */
struct conn {
	int fd;
	struct ws_frame_decoder d;
	size_t off, len;
	uint8_t buf[2048];
};

static int conn_open(const char *sock)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = IO_SECS};
	double end = now() + IO_SECS;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket: %s", strerror(errno));
	strcpy(sa.sun_path, sock);
	/* Non-blocking, so a full backlog (EAGAIN) is retried with a bound. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		if (errno != EAGAIN || now() > end)
			die("cannot connect to '%s': %s", sock, strerror(errno));
		sleep_s(0.001);
	}
	if (fcntl(fd, F_SETFL, 0) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
		die("socket options: %s", strerror(errno));
	return fd;
}

static void conn_send(struct conn *c, const struct ws_buf *b)
{
	for (size_t o = 0; o < b->len;) {
		ssize_t w = write(c->fd, b->p + o, b->len - o);

		if (w < 0)
			die("write to the hub: %s", strerror(errno));
		o += (size_t)w;
	}
}

/* The next frame from the hub; blocks up to IO_SECS for input. */
static void conn_frame(struct conn *c, struct ws_frame *f)
{
	for (;;) {
		if (c->off < c->len) {
			size_t used;
			int rc;

			errbuf[0] = '\0';
			rc = ws_frame_decoder_feed(&c->d, c->buf + c->off, c->len - c->off,
			    &used, f, errbuf);
			if (rc < 0)
				fail("ws_frame_decoder_feed", rc);
			c->off += used;
			if (rc == 1)
				return;
			continue;
		}
		ssize_t n = read(c->fd, c->buf, sizeof c->buf);

		if (n == 0)
			die("the hub closed a connection");
		if (n < 0)
			die("read from the hub: %s", errno == EAGAIN ?
			    "nothing for " "10 s" : strerror(errno));
		c->off = 0;
		c->len = (size_t)n;
	}
}

/*
 * Read frames until a CLOCK on channel 1 flagged `flag`.  On the way,
 * an ADD on channel 1 fills *hub_add (when not NULL); batches are
 * skipped; an ERROR ends the benchmark.
 */
static void conn_until(struct conn *c, unsigned flag, struct ws_add *hub_add)
{
	struct ws_frame f;

	for (;;) {
		conn_frame(c, &f);
		switch (f.type) {
		case WS_FRAME_ERROR:
			die("the hub sent an error on channel %" PRIu32 ": %.*s", f.channel,
			    f.len > 1 ? (int)f.len - 1 : 0, (const char *)f.payload + 1);
		case WS_FRAME_ADD:
			if (hub_add != NULL)
				CK("ws_add_decode", ws_add_decode(hub_add, f.payload, f.len,
				    errbuf));
			break;
		case WS_FRAME_CLOCK:
			if (f.channel == 1 && (f.flags & flag))
				return;
			break;
		}
	}
}

/*
 * Connect as a site with id `site`, offer IDLE_WSID with guid/clock (or
 * with neither when guid is NULL) and complete the handshake: read the
 * hub's HELLO, ADD and catch-up to CAUGHT_UP, send SYNC with the hub's
 * clock, read the ACK.  The connection stays open.
 */
static void idle_connect(struct conn *c, const char *sock, const struct ws_siteid *site,
    const uint8_t *guid, const struct ws_vclock *clock, struct ws_add *hub_add)
{
	static const struct ws_vclock empty = WS_VCLOCK_INIT;
	struct ws_buf out = WS_BUF_INIT, p = WS_BUF_INIT;
	struct ws_hello hello = {.version = WS_PROTOCOL_VERSION, .role = WS_ROLE_SITE};
	struct ws_add add;

	c->fd = conn_open(sock);
	ws_frame_decoder_init(&c->d, 0, 0);
	c->off = c->len = 0;

	hello.site = *site;
	memset(&add, 0, sizeof add);
	strcpy(add.wsid, IDLE_WSID);
	if (guid != NULL) {
		add.has_guid = 1;
		memcpy(add.guid, guid, sizeof add.guid);
	}
	add.clock = guid != NULL ? *clock : empty; /* shallow: not released */
	CK("ws_frame_put_preamble", ws_frame_put_preamble(&out));
	CK("ws_hello_encode", ws_hello_encode(&hello, &p));
	CK("ws_frame_put", ws_frame_put(&out, WS_FRAME_HELLO, 0, 0, p.p, p.len));
	p.len = 0;
	CK("ws_add_encode", ws_add_encode(&add, &p));
	CK("ws_frame_put", ws_frame_put(&out, WS_FRAME_ADD, 0, 1, p.p, p.len));
	conn_send(c, &out);
	conn_until(c, WS_CLOCK_CAUGHT_UP, hub_add);

	out.len = p.len = 0;
	CK("ws_vclock_encode", ws_vclock_encode(hub_add ? &hub_add->clock : clock, &p));
	CK("ws_frame_put", ws_frame_put(&out, WS_FRAME_CLOCK, WS_CLOCK_SYNC, 1, p.p,
	    p.len));
	conn_send(c, &out);
	conn_until(c, WS_CLOCK_ACK, NULL);
	ws_buf_release(&out);
	ws_buf_release(&p);
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	ws_frame_decoder_release(&c->d);
}

/*
 * Read and drop whatever the hub has sent to connections c[0..n), whose
 * handshakes are complete, as idle sites would; the bytes read.
 */
static uint64_t conns_drain(struct conn *c, int n)
{
	static uint8_t buf[1 << 16];
	uint64_t total = 0;

	for (int i = 0; i < n; i++) {
		ssize_t got;

		while ((got = recv(c[i].fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
			total += (uint64_t)got;
		if (got == 0)
			die("the hub closed an idle connection");
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			die("read from the hub: %s", strerror(errno));
	}
	return total;
}

/* Raise the open-file limit to cover IDLE_SITES sockets here and at the hub. */
static void nofile_raise(void)
{
	struct rlimit rl;
	rlim_t want = IDLE_SITES + 256;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		die("the open-file limit is %llu; %d sites need %llu",
		    (unsigned long long)rl.rlim_max, IDLE_SITES, (unsigned long long)want);
	rl.rlim_cur = want < 4096 && (rl.rlim_max == RLIM_INFINITY ||
	    rl.rlim_max >= 4096) ? 4096 : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		die("setrlimit: %s", strerror(errno));
}

static void bench_scale(void)
{
	struct conn *c = xmalloc(IDLE_SITES * sizeof *c);
	double before[SCALE_REPS], after[SCALE_REPS], per[SCALE_REPS], hs[SCALE_REPS];
	double rxmb[SCALE_REPS], tdrain;
	uint64_t rx;
	char *seed = tmp("idle.db"), *log = tmp("idle.log"), goal[16];
	sqlite3 *db;

	nofile_raise();
	db = db_open(seed);
	db_make_wal(db);
	sql_exec(db, NOTES_SQL);
	for (int i = 1; i <= 10; i++)
		sql_exec(db, "INSERT INTO notes(t, body) VALUES(0, 'idle site seed row')");
	db_close(db);

	for (int r = 0; r < SCALE_REPS; r++) {
		struct ws_add hub_add;
		struct ws_siteid site;
		struct hub h;
		char name[16];
		double t0;

		snprintf(name, sizeof name, "scale%d", r + 1);
		hub_start(&h, name);
		join_once(h.addr, IDLE_WSID, seed, log);

		/* One session first, so the working set is open and warm. */
		ws_vclock_init(&hub_add.clock);
		rnd_seed(31 + (uint64_t)r);
		for (size_t k = 0; k < sizeof site.b; k++)
			site.b[k] = (uint8_t)(rnd() >> 56);
		idle_connect(&c[0], h.sock, &site, NULL, NULL, &hub_add);
		conn_close(&c[0]);
		sleep_s(0.2);
		before[r] = (double)hub_rss_kib(&h);

		/*
		 * The sites joined so far read what the hub sends them every
		 * DRAIN_EVERY handshakes (the hub tells every session of a
		 * working set when another joins); the time that takes is not
		 * part of the handshakes'.
		 */
		t0 = now();
		tdrain = 0;
		rx = 0;
		for (int i = 0; i < IDLE_SITES; i++) {
			for (size_t k = 0; k < sizeof site.b; k++)
				site.b[k] = (uint8_t)(rnd() >> 56);
			idle_connect(&c[i], h.sock, &site, hub_add.guid, &hub_add.clock, NULL);
			if ((i + 1) % DRAIN_EVERY == 0) {
				double td = now();

				rx += conns_drain(c, i + 1);
				tdrain += now() - td;
			}
		}
		hs[r] = (now() - t0 - tdrain) * 1e6 / IDLE_SITES;
		/* Until the hub has sent everything, then idle. */
		for (int quiet = 0, k = 0; quiet < 5; k++) {
			uint64_t got = conns_drain(c, IDLE_SITES);

			rx += got;
			quiet = got == 0 ? quiet + 1 : 0;
			if (k == 500)
				die("the hub still sends to idle sites after 10 s");
			sleep_s(0.02);
		}
		sleep_s(0.2);
		after[r] = (double)hub_rss_kib(&h);
		rx += conns_drain(c, IDLE_SITES);
		rxmb[r] = (double)rx / 1e6;
		if (hub_fds(&h) < IDLE_SITES)
			die("the hub holds %d descriptors with %d sites connected",
			    hub_fds(&h), IDLE_SITES);
		per[r] = (after[r] - before[r]) / IDLE_SITES;
		for (int i = 0; i < IDLE_SITES; i++)
			conn_close(&c[i]);
		ws_vclock_release(&hub_add.clock);
		hub_stop(&h);
	}
	printf("\n3. scale: %d connections to one hub, each a handshake for one\n"
	    "   working set (HELLO, ADD, CAUGHT_UP, SYNC, ACK) made one after\n"
	    "   another by one client process, then idle; the joined sites read\n"
	    "   what the hub sends them every %d handshakes.  The hub's VmRSS after\n"
	    "   a first session and 0.2 s after it last sent; a fresh hub per run\n",
	    IDLE_SITES, DRAIN_EVERY);
	row("hub VmRSS before", summary(before, SCALE_REPS), 0, "KiB", NULL, 0);
	row("hub VmRSS with the idle sites", summary(after, SCALE_REPS), 0, "KiB", NULL, 0);
	snprintf(goal, sizeof goal, "<= %.0f", GOAL_SITE_KIB);
	{
		struct figure f = summary(per, SCALE_REPS);

		row("hub memory per idle site", f, 1, "KiB", goal, f.med <= GOAL_SITE_KIB);
	}
	row("handshake, one after another", summary(hs, SCALE_REPS), 0, "us", NULL, 0);
	row("sent to joined sites as others joined", summary(rxmb, SCALE_REPS), 2, "MB",
	    NULL, 0);
	free(c);
}

/* ------------------------------------------------------------------ main */

static void find_programs(const char *bindir)
{
	char dir[PATH_MAX];
	ssize_t n;

	if (realpath(bindir, dir) == NULL)
		die("cannot find '%s': %s (run 'make' first)", bindir, strerror(errno));
	snprintf(bin_serve, sizeof bin_serve, "%s/wsync-serve", dir);
	snprintf(bin_join, sizeof bin_join, "%s/wsync-join", dir);
	if (access(bin_serve, X_OK) != 0 || access(bin_join, X_OK) != 0)
		die("no wsync-serve and wsync-join in '%s' (run 'make' first)", dir);
	if ((n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1)) < 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[n] = '\0';
}

int main(int argc, char **argv)
{
	double t0 = now();

	main_pid = getpid();
	if (argc == 4 && strcmp(argv[1], "--relay") == 0)
		return relay(argv[2], argv[3]);
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fputs("usage: sync [BINDIR]\n", stderr);
		return 64;
	}
	CK("ws_init", ws_init());
	find_programs(argc == 2 ? argv[1] : "../bin");
	tmp_init();

	printf("wsync %s sync benchmark: median of several runs, min, max; SQLite %s\n",
	    WSYNC_VERSION, sqlite3_libversion());
	printf("real wsync-serve and wsync-join processes on unix-domain sockets, files\n"
	    "under /tmp; notes(id INTEGER PRIMARY KEY, t INTEGER, body TEXT %d B)\n"
	    "in every working set; the sites' databases are WAL, the programs' own\n"
	    "connections use SQLite's defaults otherwise\n\n", BODY_LEN);
	printf("  %-40s %10s %10s %10s  %-7s %s\n", "", "median", "min", "max",
	    "unit", "goal");
	fflush(stdout);
	bench_fanout();
	bench_noop();
	bench_scale();
	printf("\n%.1f s\n", now() - t0);
	return 0;
}
