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
/* sqlite3.h declares sqlite3session_* only under these (Debian builds them in). */
#ifndef SQLITE_ENABLE_SESSION
#define SQLITE_ENABLE_SESSION 1
#endif
#ifndef SQLITE_ENABLE_PREUPDATE_HOOK
#define SQLITE_ENABLE_PREUPDATE_HOOK 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
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
#include <wsync/store.h>
#include <wsync/store-test.h>

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

#define B1_ROWS 100000          /* rows of items in B1 */
#define B1_CHUNK 25000          /* rows per transaction and sync when building */
#define B1_UPDATES 1000         /* the change of B1 */
#define B1_DELETES 100
#define B1_INSERTS 100
#define B1_BODY_MIN 90          /* bytes of items.body */
#define B1_BODY_MAX 170
#define B1_REPS 3

#define B4_TX 200               /* transactions made while the site is away */
#define B4_ROWS_TX 1000         /* rows per transaction */
#define B4_REPS 3

#define INIT_REPS 3             /* B6 runs */

/* Goals, from the task. */
#define GOAL_B1_PATCHSET 1.0    /* wsync bytes / session patchset */
#define GOAL_B1_RSYNC 150.0     /* rsync bytes / wsync bytes */
#define GOAL_B4_BATCHES 1.0     /* bytes sent again after a kill, in batches */
#define GOAL_INIT_VS_DUMP 1.0   /* initial sync time / dump-load time */
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
static char bin_keygen[PATH_MAX + 16];

/*
 * How hubs and sites talk: unix sockets (the default), or loopback TCP,
 * plain (--insecure) or with keys.  The fan-out runs on TCP both ways, to
 * measure what encryption costs.
 */
enum { NET_UNIX, NET_TCP_PLAIN, NET_TCP_SECURE };
static int net_mode = NET_UNIX;
static char *hub_key_path, *authorized_path, *site_key_path, hub_pub[128];

struct hub {
	pid_t pid;
	char *sock, *dir, *log;
	char addr[PATHLEN];     /* unix:SOCK */
};

/*
 * Start a hub with --create on the unix socket NAME.sock and the data
 * directory NAME (which may hold data from an earlier hub), with
 * --heartbeat heartbeat unless that is NULL; wait until it listens.  Its
 * log is NAME-K.log, K counting the starts.
 */
static void hub_start_hb(struct hub *h, const char *name, const char *heartbeat)
{
	static int starts;
	double end = now() + READY_SECS;
	int st, i = 0;
	char *argv[16];
	const char *p;

	h->sock = tmp("%s.sock", name);
	h->dir = tmp("%s", name);
	h->log = tmp("%s-%d.log", name, ++starts);
	if (net_mode == NET_UNIX)
		snprintf(h->addr, sizeof h->addr, "unix:%s", h->sock);
	else
		snprintf(h->addr, sizeof h->addr, "127.0.0.1:0");
	argv[i++] = bin_serve;
	argv[i++] = "-l";
	argv[i++] = h->addr;
	argv[i++] = "-d";
	argv[i++] = h->dir;
	argv[i++] = "--create";
	if (net_mode == NET_TCP_PLAIN) {
		argv[i++] = "--insecure";
	} else if (net_mode == NET_TCP_SECURE) {
		argv[i++] = "--key";
		argv[i++] = hub_key_path;
		argv[i++] = "--authorized-keys";
		argv[i++] = authorized_path;
	}
	if (heartbeat != NULL) {
		argv[i++] = "--heartbeat";
		argv[i++] = (char *)heartbeat;
	}
	argv[i] = NULL;
	h->pid = spawn(h->log, argv);
	for (;;) {
		if ((p = strstr(log_tail(h->log), "wsync-serve: listening on ")) != NULL) {
			/* TCP: the port the hub got. */
			if (net_mode != NET_UNIX)
				snprintf(h->addr, sizeof h->addr, "%.*s",
				    (int)strcspn(p + 26, "\n"), p + 26);
			return;
		}
		if (pid_wait(h->pid, 0, &st))
			die("wsync-serve exited with %s before listening; log:\n%s",
			    status_str(st), log_tail(h->log));
		if (now() > end)
			die("wsync-serve not listening after %d s; log:\n%s", READY_SECS,
			    log_tail(h->log));
		sleep_s(0.002);
	}
}

static void hub_start(struct hub *h, const char *name)
{
	hub_start_hb(h, name, NULL);
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

/* wsync-join [-f] [the net mode's options] HUB OP into argv[10]. */
static void site_argv(char **argv, int follow, const char *hub, char *op)
{
	int i = 0;

	argv[i++] = bin_join;
	if (follow)
		argv[i++] = "-f";
	if (net_mode == NET_TCP_PLAIN) {
		argv[i++] = "--insecure";
	} else if (net_mode == NET_TCP_SECURE) {
		argv[i++] = "--key";
		argv[i++] = site_key_path;
		argv[i++] = "--hub-key";
		argv[i++] = hub_pub;
	}
	argv[i++] = (char *)hub;
	argv[i++] = op;
	argv[i] = NULL;
}

/* Make the hub's and the site's keys, and the authorized keys. */
static void make_keys(void)
{
	char *argv[] = {bin_keygen, "-q", "-f", NULL, NULL};
	char line[256];
	FILE *f;
	int st;

	hub_key_path = tmp("hub.key");
	site_key_path = tmp("site.key");
	authorized_path = tmp("authorized");
	argv[3] = hub_key_path;
	if (!pid_wait(spawn(tmp("keygen.log"), argv), 10, &st) || st != 0)
		die("wsync-keygen failed: %s", log_tail(tmp("keygen.log")));
	argv[3] = site_key_path;
	if (!pid_wait(spawn(tmp("keygen.log"), argv), 10, &st) || st != 0)
		die("wsync-keygen failed: %s", log_tail(tmp("keygen.log")));
	if (!(f = fopen(tmp("hub.key.pub"), "r")) || !fgets(hub_pub, sizeof hub_pub, f))
		die("cannot read hub.key.pub");
	fclose(f);
	hub_pub[strcspn(hub_pub, " \n")] = 0;
	if (!(f = fopen(tmp("site.key.pub"), "r")) || !fgets(line, sizeof line, f))
		die("cannot read site.key.pub");
	fclose(f);
	line[strcspn(line, " \n")] = 0;
	if (!(f = fopen(authorized_path, "w")) || fprintf(f, "%s *=create\n", line) < 0 ||
	    fclose(f) != 0)
		die("cannot write %s", authorized_path);
}

/* Start wsync-join -f HUB WSID=DB, its stderr going to log. */
static pid_t follow_start(const char *hub, const char *wsid, const char *db,
    const char *log)
{
	char op[PATHLEN + 160];
	char *argv[10];

	snprintf(op, sizeof op, "%s=%s", wsid, db);
	site_argv(argv, 1, hub, op);
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
	char *argv[10];
	double t0;
	pid_t pid;
	int st;

	snprintf(op, sizeof op, "%s=%s", wsid, db);
	site_argv(argv, 0, hub, op);
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

/* Summary of a figure for the B1-B7 table. */
static void sum_fig(const char *b, const char *what, struct figure f, int prec,
    const char *unit, const char *goal, int met)
{
	summary_add(b, what, f.med, f.min, f.max, prec, unit, goal, met);
}

/* Per-repetition ratios num[i] / den[i], summarised. */
static struct figure ratio_of(const double *num, const double *den, int n)
{
	double r[16];

	for (int i = 0; i < n; i++)
		r[i] = num[i] / den[i];
	return summary(r, n);
}

/* --------------------------------------------------- B5: fan-out */

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
static void fanout_setup(struct fanout *F, const char *pfx)
{
	double end;
	sqlite3 *db;

	hub_start(&F->hub, pfx);
	F->wdb = tmp("%s-writer.db", pfx);
	F->wlog = tmp("%s-writer.log", pfx);
	db = db_open(F->wdb);
	db_make_wal(db);
	sql_exec(db, NOTES_SQL);
	sql_exec(db, "INSERT INTO notes VALUES(1, 0, 'seed')");
	db_close(db);
	F->next_id = 2;
	join_once(F->hub.addr, "notes", F->wdb, F->wlog);
	for (int f = 0; f < FOLLOWERS; f++) {
		F->fdb[f] = tmp("%s-follower%d.db", pfx, f + 1);
		F->flog[f] = tmp("%s-follower%d.log", pfx, f + 1);
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

/* The medians of one fan-out run, for the encryption ratios. */
struct fanout_fig {
	double p50[LAT_REPS], p99[LAT_REPS], rate[TP_REPS];
	int nrate;
};

/*
 * B5: the fan-out over loopback TCP; secure: with keys (authenticated,
 * encrypted sessions), else plain (--insecure).  Figures into *out.
 */
static void bench_fanout_mode(int secure, struct fanout_fig *out)
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

	memset(&F, 0, sizeof(F));
	net_mode = secure ? NET_TCP_SECURE : NET_TCP_PLAIN;
	fanout_setup(&F, secure ? "fan-secure" : "fan-plain");
	printf("\nB5%s. fan-out over loopback TCP, %s: one hub, %d following sites\n"
	    "   and one writer site, each a wsync-join -f on its own database; a\n"
	    "   separate process writes the writer's database (WAL,\n"
	    "   synchronous=NORMAL)\n", secure ? "s" : "",
	    secure ? "authenticated and encrypted sessions (--key)" :
	    "plain sessions (--insecure)", FOLLOWERS);
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
	memcpy(out->p50, p50, sizeof(p50));
	memcpy(out->p99, p99, sizeof(p99));
	if (!secure) {
		sum_fig("B5", "fan-out to 8 followers at 100 tx/s: commit -> applied, p50",
		    summary(p50, LAT_REPS), 2, "ms", NULL, 0);
		sum_fig("B5", "fan-out to 8 followers at 100 tx/s: commit -> applied, p99",
		    summary(p99, LAT_REPS), 2, "ms", NULL, 0);
	}
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
		memcpy(out->rate, rate, sizeof(rate));
		out->nrate = ok;
		if (!secure)
			sum_fig("B5", "fan-out to 8 followers: max sustained rate, at all "
			    "of them", summary(rate, ok), 0, "ch/s", NULL, 0);
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
	net_mode = NET_UNIX;
}

/* B5 plain and with keys, and what encryption costs (goal: at most 1.3x). */
static void bench_fanout(void)
{
	struct fanout_fig plain, sec;
	struct figure f;
	int n;

	make_keys();
	bench_fanout_mode(0, &plain);
	bench_fanout_mode(1, &sec);
	printf("\nB5c. the cost of encryption: encrypted / plain, run by run\n");
	f = ratio_of(sec.p50, plain.p50, LAT_REPS);
	row("latency p50, encrypted / plain", f, 2, "x", "<= 1.3", f.med <= 1.3);
	sum_fig("B5", "cost of encryption: fan-out latency p50, encrypted / plain", f,
	    2, "x", "<= 1.3", f.med <= 1.3);
	f = ratio_of(sec.p99, plain.p99, LAT_REPS);
	row("latency p99, encrypted / plain", f, 2, "x", "<= 1.3", f.med <= 1.3);
	if ((n = plain.nrate < sec.nrate ? plain.nrate : sec.nrate) > 0) {
		f = ratio_of(plain.rate, sec.rate, n);
		row("max rate, plain / encrypted", f, 2, "x", "<= 1.3", f.med <= 1.3);
		sum_fig("B5", "cost of encryption: max fan-out rate, plain / encrypted",
		    f, 2, "x", "<= 1.3", f.med <= 1.3);
	}
}

/* ------------------------------------------- files and the peer tools */

/* Make dst a byte copy of the closed file src. */
static void copy_file(const char *src, const char *dst)
{
	static uint8_t buf[1 << 20];
	int in, out;
	ssize_t n;

	if ((in = open(src, O_RDONLY)) < 0)
		die("cannot open '%s': %s", src, strerror(errno));
	if ((out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
		die("cannot create '%s': %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));

			if (w < 0)
				die("cannot write '%s': %s", dst, strerror(errno));
			off += w;
		}
	if (n < 0)
		die("cannot read '%s': %s", src, strerror(errno));
	if (close(out) != 0)
		die("cannot write '%s': %s", dst, strerror(errno));
	close(in);
}

/* Remove a database file and its companions. */
static void db_remove(const char *path)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[PATHLEN + 16];

	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		snprintf(p, sizeof p, "%s%s", path, sfx[i]);
		if (unlink(p) != 0 && errno != ENOENT)
			die("cannot remove '%s': %s", p, strerror(errno));
	}
}

static double file_size(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) != 0)
		die("cannot stat '%s': %s", path, strerror(errno));
	return (double)sb.st_size;
}

/*
 * Run argv[0] (found on PATH) with stdin from `in` and stdout to `out`
 * (NULL: /dev/null), stderr appended to log; it must exit 0 within
 * JOIN_SECS.  Returns its wall time, fork to exit, in seconds.
 */
static double run_tool(char *const argv[], const char *in, const char *out,
    const char *log)
{
	double t0 = now();
	pid_t pid = fork_kid();
	int fd, st;

	if (pid == 0) {
		if ((fd = open(in ? in : "/dev/null", O_RDONLY)) < 0 || dup2(fd, 0) < 0 ||
		    (fd = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
		    0600)) < 0 || dup2(fd, 1) < 0 ||
		    (fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600)) < 0 ||
		    dup2(fd, 2) < 0)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "sync: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (!pid_wait(pid, JOIN_SECS, &st)) {
		kill(pid, SIGKILL);
		pid_wait(pid, 10, &st);
		die("%s: still running after %d s", argv[0], JOIN_SECS);
	}
	t0 = now() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("%s %s: %s; log:\n%s", argv[0], argv[1] ? argv[1] : "", status_str(st),
		    log_tail(log));
	return t0;
}

/* The number after `key` in the file path (rsync --stats: "1,234"), or die. */
static double stats_num(const char *path, const char *key)
{
	char line[512], *p;
	FILE *f = fopen(path, "r");
	double v = 0;

	if (f == NULL)
		die("cannot read '%s': %s", path, strerror(errno));
	while (fgets(line, sizeof line, f) != NULL)
		if ((p = strstr(line, key)) != NULL) {
			for (p += strlen(key); *p == ' ' || *p == ':'; p++)
				;
			if (*p < '0' || *p > '9')
				break;
			for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
				if (*p != ',')
					v = v * 10 + (*p - '0');
			fclose(f);
			return v;
		}
	fclose(f);
	die("no '%s' in '%s'", key, path);
}

/*
 * Run rsync with the options opts (a NULL-terminated list) and --stats,
 * from src to dst; its wall time, and from its statistics the bytes sent
 * plus received, and the literal data (NULL: not wanted).
 */
static double rsync_run(char *const opts[], const char *src, const char *dst,
    const char *log, double *wire, double *literal)
{
	char *argv[16], *st = tmp("rsync.stats");
	int i = 0;
	double t;

	argv[i++] = "rsync";
	for (; *opts != NULL && i < 12; opts++)
		argv[i++] = *opts;
	argv[i++] = "--stats";
	argv[i++] = (char *)src;
	argv[i++] = (char *)dst;
	argv[i] = NULL;
	t = run_tool(argv, NULL, st, log);
	*wire = stats_num(st, "Total bytes sent") + stats_num(st, "Total bytes received");
	if (literal != NULL)
		*literal = stats_num(st, "Literal data");
	unlink(st);
	free(st);
	return t;
}

/*
 * A plain database holding only table `table` of the database src, rows
 * in key order, without wsync's tables and triggers: the file a user of
 * rsync or sqldiff would have.  Rollback journal.
 */
static void make_plain(const char *src, const char *dst, const char *table)
{
	char sql[2 * PATHLEN + 256], *create;
	sqlite3 *db;
	sqlite3_stmt *st;

	db_remove(dst);
	db = db_open(src);
	snprintf(sql, sizeof sql, "SELECT sql FROM sqlite_schema WHERE name = '%s'",
	    table);
	st = sql_prepare(db, sql);
	if (sqlite3_step(st) != SQLITE_ROW)
		die("no table '%s' in '%s'", table, src);
	create = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	db_close(db);
	db = db_open(dst);
	sql_exec(db, create);
	snprintf(sql, sizeof sql, "ATTACH '%s' AS src", src);
	sql_exec(db, sql);
	snprintf(sql, sizeof sql, "INSERT INTO main.%s SELECT * FROM src.%s ORDER BY 1",
	    table, table);
	sql_exec(db, "BEGIN");
	sql_exec(db, sql);
	sql_exec(db, "COMMIT");
	sql_exec(db, "DETACH src");
	db_close(db);
	free(create);
}

/*
 * Tables src and dst.table hold the same rows (compared with EXCEPT both
 * ways and counted); die naming what otherwise.  Their row count.
 */
static int64_t same_rows(const char *a, const char *b, const char *table,
    const char *what)
{
	char sql[2 * PATHLEN + 256];
	int64_t n, m, d;
	sqlite3 *db = db_open(a);

	snprintf(sql, sizeof sql, "ATTACH '%s' AS b", b);
	sql_exec(db, sql);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM main.%s", table);
	n = sql_int(db, sql);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM b.%s", table);
	m = sql_int(db, sql);
	snprintf(sql, sizeof sql, "SELECT (SELECT count(*) FROM (SELECT * FROM main.%s "
	    "EXCEPT SELECT * FROM b.%s)) + (SELECT count(*) FROM (SELECT * FROM b.%s "
	    "EXCEPT SELECT * FROM main.%s))", table, table, table, table);
	d = sql_int(db, sql);
	if (n != m || d != 0)
		die("%s: %" PRId64 " rows and %" PRId64 " rows, %" PRId64 " differ", what,
		    n, m, d);
	sql_exec(db, "DETACH b");
	db_close(db);
	return n;
}

/* Remove directory dst and make it a copy of directory src (cp -a). */
static void copy_dir(const char *src, const char *dst, const char *log)
{
	char *rm[] = {"rm", "-rf", "--", (char *)dst, NULL};
	char *cp[] = {"cp", "-a", "--", (char *)src, (char *)dst, NULL};

	run_tool(rm, NULL, NULL, log);
	run_tool(cp, NULL, NULL, log);
}

/* ---------------------------------------------------- B3: no-op */

/*
 * Counts written by the relay: bytes site->hub, hub->site, and of those
 * the bytes the site's end of the pipe took (*delivered, may be NULL).
 */
static void counts_read3(const char *path, double *up, double *down, double *delivered)
{
	double end = now() + 5;
	FILE *f;
	unsigned long long u, d, w;

	/* wsync-join may exit before its exec: child has written them. */
	while ((f = fopen(path, "r")) == NULL) {
		if (now() > end)
			die("the relay wrote no counts to '%s'", path);
		sleep_s(0.001);
	}
	if (fscanf(f, "%llu %llu %llu", &u, &d, &w) != 3)
		die("bad counts in '%s'", path);
	fclose(f);
	unlink(path);
	*up = (double)u;
	*down = (double)d;
	if (delivered != NULL)
		*delivered = (double)w;
}

static void counts_read(const char *path, double *up, double *down)
{
	counts_read3(path, up, down, NULL);
}

/* What B3 leaves for B6: its hub, still running, and the 1M-row files. */
static struct hub noop_hub;
static char *noop_db1m, *noop_plain1m;

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
	double rq[NSETS][NOOP_REPS], rqb[NSETS][NOOP_REPS], ri[NSETS][NOOP_REPS];
	double rib[NSETS][NOOP_REPS], sd[NSETS][NOOP_REPS], sdb[NSETS][NOOP_REPS];
	char *db[NSETS], *plain[NSETS], *copy[NSETS], *log = tmp("noop.log");
	char *cnt = tmp("counts"), *sdout = tmp("sqldiff.out");
	char relay[3 * PATHLEN + 64], name[80], goal[16];
	char *quick[] = {"-a", NULL};
	char *full[] = {"-a", "--no-whole-file", "--ignore-times", NULL};
	struct hub h;
	double t0;
	struct figure f;

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
	/* The baselines' files: notes alone, and a copy with the same mtime. */
	for (int s = 0; s < NSETS; s++) {
		plain[s] = tmp("%s-plain.db", sets[s].wsid);
		copy[s] = tmp("%s-copy.db", sets[s].wsid);
		make_plain(db[s], plain[s], "notes");
		rsync_run(quick, plain[s], copy[s], log, &rqb[s][0], NULL);
	}
	printf("\nB3. no-op sync: one-shot wsync-join over a unix socket when the site\n"
	    "   and the hub both hold every row of notes (built %d rows per\n"
	    "   transaction and sync, in %.1f s, untimed); wall time from fork to\n"
	    "   exit; bytes counted by an exec: relay, the preamble included.\n"
	    "   Baselines on a file holding only notes (%.1f, %.1f and %.1f MB) and an\n"
	    "   identical copy with the same mtime: rsync -a (which skips a file\n"
	    "   whose size and mtime match), rsync -a --no-whole-file --ignore-times\n"
	    "   (which checksums every block, as when the mtime changed but the data\n"
	    "   did not), both local, bytes = its \"Total bytes sent\" + \"received\";\n"
	    "   and sqldiff of the two files, which prints nothing (it needs both\n"
	    "   files on one machine)\n",
	    CHUNK_ROWS, now() - t0, file_size(plain[0]) / 1e6, file_size(plain[1]) / 1e6,
	    file_size(plain[2]) / 1e6);

	/* The sizes and the contenders take turns within each repetition. */
	for (int r = 0; r < NOOP_REPS; r++)
		for (int s = 0; s < NSETS; s++) {
			char *diff[] = {"sqldiff", plain[s], copy[s], NULL};

			wall[s][r] = 1000.0 * join_once(h.addr, sets[s].wsid, db[s], log);
			rq[s][r] = 1000.0 * rsync_run(quick, plain[s], copy[s], log,
			    &rqb[s][r], NULL);
			ri[s][r] = 1000.0 * rsync_run(full, plain[s], copy[s], log,
			    &rib[s][r], NULL);
			sd[s][r] = 1000.0 * run_tool(diff, NULL, sdout, log);
			sdb[s][r] = file_size(sdout);
			if (sdb[s][r] != 0)
				die("sqldiff found differences between two copies of '%s'",
				    plain[s]);
		}
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
		if (s == NSETS - 1)
			sum_fig("B3", "no-op sync at 1M rows: bytes, both ways", f, 0, "B",
			    goal, f.med < GOAL_NOOP_BYTES);
		snprintf(name, sizeof name, "%s rows: rsync -a, time", sets[s].label);
		row(name, summary(rq[s], NOOP_REPS), 2, "ms", NULL, 0);
		snprintf(name, sizeof name, "%s rows: rsync -a, bytes", sets[s].label);
		row(name, summary(rqb[s], NOOP_REPS), 0, "B", NULL, 0);
		snprintf(name, sizeof name, "%s rows: rsync --ignore-times, time",
		    sets[s].label);
		row(name, summary(ri[s], NOOP_REPS), 2, "ms", NULL, 0);
		snprintf(name, sizeof name, "%s rows: rsync --ignore-times, bytes",
		    sets[s].label);
		row(name, summary(rib[s], NOOP_REPS), 0, "B", NULL, 0);
		snprintf(name, sizeof name, "%s rows: sqldiff, time", sets[s].label);
		row(name, summary(sd[s], NOOP_REPS), 2, "ms", NULL, 0);
	}
	for (int s = 0; s < NSETS; s++) {
		f = summary(wall[s], NOOP_REPS);
		snprintf(name, sizeof name, "no-op sync at %s rows: wall time of wsync-join",
		    sets[s].label);
		snprintf(goal, sizeof goal, "< %.0f", GOAL_NOOP_MS);
		sum_fig("B3", name, f, 2, "ms", goal, f.med < GOAL_NOOP_MS);
	}
	/* Of the medians: a ratio per repetition would be mostly noise. */
	flat = summary(wall[NSETS - 1], NOOP_REPS).med / summary(wall[0], NOOP_REPS).med;
	snprintf(goal, sizeof goal, "<= %.1f", GOAL_NOOP_FLAT);
	row_single("wall time 1M / 10k, of the medians", flat, 2, "x", goal,
	    flat <= GOAL_NOOP_FLAT);
	summary_add("B3", "no-op sync: wall time at 1M rows / at 10k rows (flat)", flat,
	    NAN, NAN, 2, "x", goal, flat <= GOAL_NOOP_FLAT);
	printf("   the baselines against wsync at 1M rows (time ratios per repetition;\n"
	    "   above 1 wsync is faster); and each tool's 1M / 10k time (medians)\n");
	f = ratio_of(rq[NSETS - 1], wall[NSETS - 1], NOOP_REPS);
	row("rsync -a time / wsync time", f, 2, "x", NULL, 0);
	sum_fig("B3", "no-op at 1M rows: rsync -a (size+mtime check) time / wsync's", f,
	    2, "x", NULL, 0);
	f = ratio_of(ri[NSETS - 1], wall[NSETS - 1], NOOP_REPS);
	row("rsync --ignore-times time / wsync time", f, 2, "x", NULL, 0);
	sum_fig("B3", "no-op at 1M rows: rsync --ignore-times time / wsync's", f, 2, "x",
	    NULL, 0);
	f = ratio_of(rib[NSETS - 1], both[NSETS - 1], BYTES_REPS);
	row("rsync --ignore-times bytes / wsync bytes", f, 1, "x", NULL, 0);
	sum_fig("B3", "no-op at 1M rows: rsync --ignore-times bytes / wsync's", f, 1, "x",
	    NULL, 0);
	f = ratio_of(sd[NSETS - 1], wall[NSETS - 1], NOOP_REPS);
	row("sqldiff time / wsync time", f, 2, "x", NULL, 0);
	sum_fig("B3", "no-op at 1M rows: sqldiff time / wsync's", f, 2, "x", NULL, 0);
	row_single("rsync -a: time 1M / 10k", summary(rq[NSETS - 1], NOOP_REPS).med /
	    summary(rq[0], NOOP_REPS).med, 2, "x", NULL, 0);
	row_single("rsync --ignore-times: time 1M / 10k", summary(ri[NSETS - 1],
	    NOOP_REPS).med / summary(ri[0], NOOP_REPS).med, 2, "x", NULL, 0);
	row_single("sqldiff: time 1M / 10k", summary(sd[NSETS - 1], NOOP_REPS).med /
	    summary(sd[0], NOOP_REPS).med, 2, "x", NULL, 0);
	for (int s = 0; s < NSETS - 1; s++) {
		db_remove(plain[s]);
		db_remove(copy[s]);
	}
	db_remove(copy[NSETS - 1]);
	noop_hub = h;
	noop_db1m = db[NSETS - 1];
	noop_plain1m = plain[NSETS - 1];
}

/*
 * The exec: relay (sync --relay SOCKET COUNTFILE): connect to the hub's
 * socket, copy stdin to it and it to stdout, and write the byte counts,
 * "UP DOWN DELIVERED", to COUNTFILE when the hub closes: DELIVERED is the
 * part of DOWN written to stdout before the site went away.  Bounded to
 * 60 s.
 */
static int relay(const char *sock, const char *cntfile)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned long long up = 0, down = 0, delivered = 0;
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
			for (ssize_t o = 0, w; out_open && o < n; o += w) {
				if ((w = write(1, buf + o, (size_t)(n - o))) < 0)
					out_open = 0; /* the site is gone; go on counting */
				else
					delivered += (unsigned long long)w;
			}
		}
	}
	close(1);
	close(s);
	snprintf(tmpf, sizeof tmpf, "%s.tmp", cntfile);
	if ((f = fopen(tmpf, "w")) == NULL || fprintf(f, "%llu %llu %llu\n", up, down, delivered) < 0 ||
	    fclose(f) != 0 || rename(tmpf, cntfile) != 0)
		die("cannot write '%s': %s", cntfile, strerror(errno));
	return 0;
}

/* ----------------------------------------- B1: bytes for one change */

#define ITEMS_SQL "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, " \
	"email TEXT, n INTEGER, score REAL, body TEXT)"

enum { I_NAME, I_EMAIL, I_N, I_SCORE, I_BODY, I_NCOLS };
static const char *const item_cols[I_NCOLS] = {"name", "email", "n", "score", "body"};

struct item {
	char name[32], email[64], body[192];
	int64_t n;
	double score;
};

/* min..max random lowercase letters, with spaces when words. */
static void rnd_text(char *p, int min, int max, int words)
{
	int len = min + (int)rnd_below((uint64_t)(max - min + 1));

	for (int i = 0; i < len; i++)
		p[i] = words && rnd_below(7) == 0 ? ' ' : (char)('a' + rnd_below(26));
	p[len] = '\0';
}

static void gen_item_col(struct item *it, int col)
{
	switch (col) {
	case I_NAME:
		rnd_text(it->name, 8, 24, 1);
		break;
	case I_EMAIL:
		rnd_text(it->email, 8, 30, 0);
		strcat(it->email, "@example.org");
		break;
	case I_N:
		it->n = (int64_t)rnd_below(1000000);
		break;
	case I_SCORE:
		it->score = (double)(rnd() >> 11) * 0x1.0p-53 * 100.0;
		break;
	case I_BODY:
		rnd_text(it->body, B1_BODY_MIN, B1_BODY_MAX, 1);
		break;
	}
}

static void bind_item_col(sqlite3 *db, sqlite3_stmt *st, int i, const struct item *it,
    int col)
{
	int rc = SQLITE_MISUSE;

	switch (col) {
	case I_NAME:
		rc = sqlite3_bind_text(st, i, it->name, -1, SQLITE_STATIC);
		break;
	case I_EMAIL:
		rc = sqlite3_bind_text(st, i, it->email, -1, SQLITE_STATIC);
		break;
	case I_N:
		rc = sqlite3_bind_int64(st, i, it->n);
		break;
	case I_SCORE:
		rc = sqlite3_bind_double(st, i, it->score);
		break;
	case I_BODY:
		rc = sqlite3_bind_text(st, i, it->body, -1, SQLITE_STATIC);
		break;
	}
	if (rc != SQLITE_OK)
		sql_die(db, "sqlite3_bind");
}

/* One row change of B1: the new values of the columns in mask. */
struct ichange {
	int op;                 /* enum ws_op */
	unsigned mask;          /* bit I_* set: the change writes that column */
	int64_t id;
	struct item v;
};

/* Step a DML statement that must change exactly one row, and reset it. */
static void step_one(sqlite3 *db, sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		sql_die(db, "sqlite3_step");
	if (sqlite3_changes(db) != 1)
		die("sqlite: a statement changed %d rows, expected 1", sqlite3_changes(db));
	sqlite3_reset(st);
}

/* Make the change, all of ch[0..n), in one transaction of db. */
static void b1_apply(sqlite3 *db, const struct ichange *ch, size_t n)
{
	sqlite3_stmt *ins = sql_prepare(db, "INSERT INTO items VALUES(?1, ?2, ?3, ?4, "
	    "?5, ?6)");
	sqlite3_stmt *del = sql_prepare(db, "DELETE FROM items WHERE id = ?1");
	sqlite3_stmt *upd[1u << I_NCOLS] = {NULL};

	sql_exec(db, "BEGIN");
	for (size_t k = 0; k < n; k++) {
		const struct ichange *c = &ch[k];
		sqlite3_stmt *st;
		int i = 1;

		if (c->op == WS_OP_DELETE) {
			sqlite3_bind_int64(del, 1, c->id);
			step_one(db, del);
			continue;
		}
		if (c->op == WS_OP_INSERT) {
			sqlite3_bind_int64(ins, 1, c->id);
			for (int col = 0; col < I_NCOLS; col++)
				bind_item_col(db, ins, col + 2, &c->v, col);
			step_one(db, ins);
			continue;
		}
		if ((st = upd[c->mask]) == NULL) {
			char sql[160];
			size_t len = (size_t)snprintf(sql, sizeof sql, "UPDATE items SET ");

			for (int col = 0; col < I_NCOLS; col++)
				if (c->mask & (1u << col)) {
					len += (size_t)snprintf(sql + len, sizeof sql - len,
					    "%s%s = ?%d", i > 1 ? ", " : "", item_cols[col], i);
					i++;
				}
			snprintf(sql + len, sizeof sql - len, " WHERE id = ?%d", i);
			st = upd[c->mask] = sql_prepare(db, sql);
			i = 1;
		}
		for (int col = 0; col < I_NCOLS; col++)
			if (c->mask & (1u << col))
				bind_item_col(db, st, i++, &c->v, col);
		sqlite3_bind_int64(st, i, c->id);
		step_one(db, st);
	}
	sql_exec(db, "COMMIT");
	sqlite3_finalize(ins);
	sqlite3_finalize(del);
	for (size_t m = 0; m < sizeof upd / sizeof upd[0]; m++)
		sqlite3_finalize(upd[m]);
}

/*
 * The change: B1_UPDATES updates of one or two columns, B1_DELETES
 * deletes and B1_INSERTS inserts of new ids, on distinct rows, in a
 * shuffled order.  Returns the number of changes.
 */
static size_t b1_plan(struct ichange *ch)
{
	int32_t *perm = xmalloc(B1_ROWS * sizeof *perm);
	size_t n = 0;

	rnd_seed(41);
	for (int i = 0; i < B1_ROWS; i++)
		perm[i] = i + 1;
	for (int i = 0; i < B1_UPDATES + B1_DELETES; i++) {
		int j = i + (int)rnd_below((uint64_t)(B1_ROWS - i));
		int32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (int i = 0; i < B1_UPDATES; i++, n++) {
		int x = (int)rnd_below(I_NCOLS);

		memset(&ch[n], 0, sizeof ch[n]);
		ch[n].op = WS_OP_UPDATE;
		ch[n].id = perm[i];
		ch[n].mask = 1u << x;
		if (rnd_below(2))
			ch[n].mask |= 1u << (x + 1 + (int)rnd_below(I_NCOLS - 1)) % I_NCOLS;
		for (int col = 0; col < I_NCOLS; col++)
			if (ch[n].mask & (1u << col))
				gen_item_col(&ch[n].v, col);
	}
	for (int i = 0; i < B1_DELETES; i++, n++) {
		memset(&ch[n], 0, sizeof ch[n]);
		ch[n].op = WS_OP_DELETE;
		ch[n].id = perm[B1_UPDATES + i];
	}
	for (int i = 0; i < B1_INSERTS; i++, n++) {
		memset(&ch[n], 0, sizeof ch[n]);
		ch[n].op = WS_OP_INSERT;
		ch[n].id = B1_ROWS + 1 + i;
		for (int col = 0; col < I_NCOLS; col++)
			gen_item_col(&ch[n].v, col);
	}
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rnd_below(i + 1);
		struct ichange t = ch[i];

		ch[i] = ch[j];
		ch[j] = t;
	}
	free(perm);
	return n;
}

static void bench_one_change(void)
{
	enum { NCH = B1_UPDATES + B1_DELETES + B1_INSERTS };
	static struct ichange ch[NCH];
	char *log = tmp("b1.log"), *cnt = tmp("counts"), *site = tmp("b1site.db");
	char *site_tpl = tmp("b1site-tpl.db"), *hub_tpl = tmp("b1hub-tpl");
	char *before = tmp("b1-before.db"), *after = tmp("b1-after.db");
	char *rdst = tmp("b1-rsync.db"), *cset = tmp("b1.sqldiff-changeset");
	char *hubdb, relay[3 * PATHLEN + 64], goal[16];
	char *ropts[] = {"--no-whole-file", "--ignore-times", NULL};
	char *diff[] = {"sqldiff", "--changeset", cset, before, after, NULL};
	double up[B1_REPS], down[B1_REPS], both[B1_REPS], up0[B1_REPS], down0[B1_REPS];
	double extra[B1_REPS], tj[B1_REPS], rw[B1_REPS], rl[B1_REPS], tr[B1_REPS];
	double sdb[B1_REPS], tsd[B1_REPS], pset[B1_REPS], cs[B1_REPS];
	double t0, tbuild;
	int npatch, nchange;
	void *patch, *change;
	struct item it;
	struct hub h;
	struct figure f;
	sqlite3_session *sess;
	sqlite3_stmt *ins;
	sqlite3 *db;
	size_t n;

	/* The site and the hub hold the 100k rows, synced in chunks. */
	t0 = now();
	hub_start(&h, "b1");
	hubdb = tmp("b1/b1.db");
	db = db_open(site);
	sql_exec(db, ITEMS_SQL);
	db_close(db);
	join_once(h.addr, "b1", site, log);
	rnd_seed(40);
	for (int id = 1; id <= B1_ROWS;) {
		db = db_open(site);
		ins = sql_prepare(db, "INSERT INTO items VALUES(?1, ?2, ?3, ?4, ?5, ?6)");
		sql_exec(db, "BEGIN");
		for (int k = 0; k < B1_CHUNK && id <= B1_ROWS; k++, id++) {
			for (int col = 0; col < I_NCOLS; col++)
				gen_item_col(&it, col);
			sqlite3_bind_int64(ins, 1, id);
			for (int col = 0; col < I_NCOLS; col++)
				bind_item_col(db, ins, col + 2, &it, col);
			step_one(db, ins);
		}
		sql_exec(db, "COMMIT");
		sqlite3_finalize(ins);
		db_close(db);
		join_once(h.addr, "b1", site, log);
	}
	hub_stop(&h);
	copy_dir(h.dir, hub_tpl, log);
	copy_file(site, site_tpl);
	make_plain(site, before, "items");
	tbuild = now() - t0;

	/* The same change, on the plain file under a session. */
	n = b1_plan(ch);
	copy_file(before, after);
	db = db_open(after);
	if (sqlite3session_create(db, "main", &sess) != SQLITE_OK ||
	    sqlite3session_attach(sess, "items") != SQLITE_OK)
		sql_die(db, "sqlite3session");
	b1_apply(db, ch, n);
	if (sqlite3session_patchset(sess, &npatch, &patch) != SQLITE_OK ||
	    sqlite3session_changeset(sess, &nchange, &change) != SQLITE_OK)
		sql_die(db, "sqlite3session_patchset");
	sqlite3session_delete(sess);
	sqlite3_free(patch);
	sqlite3_free(change);
	db_close(db);

	for (int r = 0; r < B1_REPS; r++) {
		/* wsync: the site makes the change and syncs once. */
		copy_dir(hub_tpl, h.dir, log);
		hub_start(&h, "b1");
		snprintf(relay, sizeof relay, "exec:'%s' --relay '%s' '%s'", self_exe,
		    h.sock, cnt);
		db_remove(site);
		copy_file(site_tpl, site);
		db = db_open(site);
		b1_apply(db, ch, n);
		db_close(db);
		tj[r] = 1000.0 * join_once(relay, "b1", site, log);
		counts_read(cnt, &up[r], &down[r]);
		both[r] = up[r] + down[r];
		join_once(relay, "b1", site, log);
		counts_read(cnt, &up0[r], &down0[r]);
		extra[r] = both[r] - up0[r] - down0[r];
		if (r == 0) {
			same_rows(site, hubdb, "items", "B1: the site and the hub");
			same_rows(site, after, "items", "B1: the site and the plain file");
		}
		hub_stop(&h);
		pset[r] = npatch;
		cs[r] = nchange;

		/* sqldiff --changeset of the two plain files. */
		unlink(cset);
		tsd[r] = 1000.0 * run_tool(diff, NULL, NULL, log);
		sdb[r] = file_size(cset);

		/* rsync of the plain file onto its old copy. */
		db_remove(rdst);
		copy_file(before, rdst);
		tr[r] = 1000.0 * rsync_run(ropts, after, rdst, log, &rw[r], &rl[r]);
		if (r == 0)
			same_rows(rdst, after, "items", "B1: rsync's copy");
	}

	printf("\nB1. bytes for one change: %d updates of 1-2 columns, %d deletes and\n"
	    "   %d inserts in one transaction on items (%d rows, id, name, email,\n"
	    "   n, score, body %d-%d B): the site's file %.1f MB, the same rows\n"
	    "   alone in a plain file %.1f MB (built and synced in %d-row\n"
	    "   transactions in %.1f s, untimed).  wsync: the site makes the change\n"
	    "   and runs one one-shot wsync-join through a counting exec: relay to\n"
	    "   the hub (a fresh copy of both each run); every byte both ways, the\n"
	    "   preamble and handshake included.  The session's patchset and\n"
	    "   changeset of the same transaction on the plain file; sqldiff\n"
	    "   --changeset of the plain file before and after; rsync --no-whole-file\n"
	    "   --ignore-times --stats of the plain file onto its old copy (local),\n"
	    "   bytes = \"Total bytes sent\" + \"Total bytes received\"\n",
	    B1_UPDATES, B1_DELETES, B1_INSERTS, B1_ROWS, B1_BODY_MIN, B1_BODY_MAX,
	    file_size(site_tpl) / 1e6, file_size(before) / 1e6, B1_CHUNK, tbuild);
	row("wsync, both ways", summary(both, B1_REPS), 0, "B", NULL, 0);
	row("  site -> hub", summary(up, B1_REPS), 0, "B", NULL, 0);
	row("  hub -> site", summary(down, B1_REPS), 0, "B", NULL, 0);
	for (int r = 0; r < B1_REPS; r++)
		up0[r] += down0[r];
	row("  a no-op sync after it, both ways", summary(up0, B1_REPS), 0, "B", NULL, 0);
	row("  over a no-op sync (the batch)", summary(extra, B1_REPS), 0, "B", NULL, 0);
	row_single("session patchset", npatch, 0, "B", NULL, 0);
	row_single("session changeset", nchange, 0, "B", NULL, 0);
	row("sqldiff --changeset", summary(sdb, B1_REPS), 0, "B", NULL, 0);
	row("rsync, sent + received", summary(rw, B1_REPS), 0, "B", NULL, 0);
	row("  of which literal data", summary(rl, B1_REPS), 0, "B", NULL, 0);
	f = ratio_of(both, pset, B1_REPS);
	snprintf(goal, sizeof goal, "<= %.1f", GOAL_B1_PATCHSET);
	row("bytes wsync / patchset", f, 3, "x", goal, f.med <= GOAL_B1_PATCHSET);
	sum_fig("B1", "one change: bytes, wsync on the wire / session patchset", f, 3,
	    "x", goal, f.med <= GOAL_B1_PATCHSET);
	f = ratio_of(both, cs, B1_REPS);
	row("bytes wsync / changeset", f, 3, "x", NULL, 0);
	sum_fig("B1", "one change: bytes, wsync on the wire / session changeset", f, 3,
	    "x", NULL, 0);
	f = ratio_of(both, sdb, B1_REPS);
	row("bytes wsync / sqldiff --changeset", f, 3, "x", NULL, 0);
	sum_fig("B1", "one change: bytes, wsync on the wire / sqldiff --changeset", f, 3,
	    "x", NULL, 0);
	f = ratio_of(rw, both, B1_REPS);
	snprintf(goal, sizeof goal, ">= %.0f", GOAL_B1_RSYNC);
	row("bytes rsync / wsync", f, 1, "x", goal, f.med >= GOAL_B1_RSYNC);
	sum_fig("B1", "one change: bytes, rsync sent+received / wsync on the wire", f, 1,
	    "x", goal, f.med >= GOAL_B1_RSYNC);
	row("time: wsync-join (through the relay)", summary(tj, B1_REPS), 1, "ms", NULL, 0);
	row("time: sqldiff --changeset", summary(tsd, B1_REPS), 1, "ms", NULL, 0);
	row("time: rsync", summary(tr, B1_REPS), 1, "ms", NULL, 0);
	db_remove(site);
	db_remove(site_tpl);
	db_remove(before);
	db_remove(after);
	db_remove(rdst);
	unlink(cset);
}

/* ----------------------------------------- B4: resume after a kill */

/* Make dst a copy of the closed database src, which must have no WAL left. */
static void copy_db(const char *src, const char *dst)
{
	char wal[PATHLEN + 8];

	snprintf(wal, sizeof wal, "%s-wal", src);
	if (access(wal, F_OK) == 0)
		die("'%s' still has a WAL file", src);
	db_remove(dst);
	copy_file(src, dst);
}

static int64_t max_id(const char *path)
{
	sqlite3 *db = db_open(path);
	int64_t v = sql_int(db, "SELECT coalesce(max(id), 0) FROM notes");

	db_close(db);
	return v;
}

/*
 * A site that comes back after being away while B4_TX transactions of
 * B4_ROWS_TX rows each were made elsewhere catches up through a counting
 * relay; it is killed (SIGKILL) once it holds half of them, and started
 * again.  A second site that stays away keeps the hub from collecting
 * that history, so the catch-up is the logged batches, one per
 * transaction, each applied in its own transaction at the site.
 */
static void bench_resume(void)
{
	static const char *const tables[] = {"notes"};
	char *log = tmp("b4.log"), *cnt = tmp("counts"), *w = tmp("b4writer.db");
	char *lag[2] = {tmp("b4away1.db"), tmp("b4away2.db")};
	char *tpl = tmp("b4away1-tpl.db"), *run = tmp("b4run.db");
	char *half = tmp("b4half.db"), *half_tpl = tmp("b4half-tpl.db");
	char relay[3 * PATHLEN + 64], op[PATHLEN + 16], goal[16];
	char *argv[] = {bin_join, relay, op, NULL};
	double sent[B4_REPS], batches[B4_REPS], committed[B4_REPS], inflight[B4_REPS];
	double again[B4_REPS], tk[B4_REPS], tres[B4_REPS], d1, d2, u, down, full, noop;
	double per, t0, tfull, dhalf, first;
	struct ws_store *s;
	struct hub h;
	struct figure f;
	sqlite3_stmt *ins;
	sqlite3 *db;
	int64_t id = 2, top = 1 + (int64_t)B4_TX * B4_ROWS_TX, rows;
	int sealed, st;
	pid_t pid;

	hub_start(&h, "b4");
	snprintf(relay, sizeof relay, "exec:'%s' --relay '%s' '%s'", self_exe, h.sock, cnt);
	snprintf(op, sizeof op, "b4=%s", run);

	/* The writer's first row, then the two sites that go away. */
	db = db_open(w);
	db_make_wal(db);
	sql_exec(db, NOTES_SQL);
	db_close(db);
	CK("ws_store_open", ws_store_open(&s, w, "b4", WS_STORE_CREATE, errbuf));
	CK("ws_store_track", ws_store_track(s, tables, 1, errbuf));
	sql_exec(ws_store_db(s), "INSERT INTO notes VALUES(1, 0, 'seed')");
	CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
	ws_store_close(s);
	join_once(h.addr, "b4", w, log);
	for (int i = 0; i < 2; i++) {
		db = db_open(lag[i]);
		db_make_wal(db);
		db_close(db);
		join_once(h.addr, "b4", lag[i], log);
	}
	copy_db(lag[0], tpl);

	/*
	 * The transactions made while they are away, each sealed as a batch.
	 * A third site syncs half way, when the first B4_TX / 2 are at the
	 * hub: it holds exactly what a killed site holds after committing
	 * them, so a catch-up from a copy of it counts the bytes of the rest.
	 */
	t0 = now();
	CK("ws_store_open", ws_store_open(&s, w, "b4", 0, errbuf));
	db = ws_store_db(s);
	ins = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3)");
	rnd_seed(51);
	for (int t = 0; t < B4_TX; t++) {
		if (t == B4_TX / 2) {
			sqlite3_finalize(ins);
			ws_store_close(s);
			join_once(h.addr, "b4", w, log);
			db = db_open(half);
			db_make_wal(db);
			db_close(db);
			join_once(h.addr, "b4", half, log);
			copy_db(half, half_tpl);
			CK("ws_store_open", ws_store_open(&s, w, "b4", 0, errbuf));
			db = ws_store_db(s);
			ins = sql_prepare(db, "INSERT INTO notes VALUES(?1, ?2, ?3)");
		}
		sql_exec(db, "BEGIN");
		for (int k = 0; k < B4_ROWS_TX; k++, id++) {
			sqlite3_bind_int64(ins, 1, id);
			sqlite3_bind_int64(ins, 2, (int64_t)(rnd() >> 20));
			bind_body(db, ins, 3);
			step_done(db, ins);
		}
		sql_exec(db, "COMMIT");
		CK("ws_store_seal", ws_store_seal(s, &sealed, errbuf));
		if (!sealed)
			die("ws_store_seal: nothing to seal after a transaction");
	}
	sqlite3_finalize(ins);
	ws_store_close(s);
	join_once(h.addr, "b4", w, log);
	t0 = now() - t0;

	/* The whole catch-up once, uninterrupted, and a no-op sync after it. */
	copy_db(tpl, run);
	tfull = join_once(relay, "b4", run, log);
	counts_read(cnt, &u, &full);
	if (max_id(run) != top)
		die("B4: the site holds rows up to %" PRId64 " of %" PRId64, max_id(run), top);
	join_once(relay, "b4", run, log);
	counts_read(cnt, &u, &noop);
	per = (full - noop) / B4_TX;
	copy_db(half_tpl, run);
	join_once(relay, "b4", run, log);
	counts_read(cnt, &u, &dhalf);
	if (max_id(run) != top)
		die("B4: the half-way site holds rows up to %" PRId64, max_id(run));
	/* The bytes of the first half of the batches, exactly. */
	first = full - dhalf;

	for (int r = 0; r < B4_REPS; r++) {
		double end = now() + JOIN_SECS, tstart = now();

		copy_db(tpl, run);
		pid = spawn(log, argv);
		while (max_id(run) < 1 + (int64_t)B4_TX * B4_ROWS_TX / 2) {
			if (pid_wait(pid, 0, &st))
				die("B4: wsync-join ended (%s) before it was killed; the site holds "
				    "rows up to %" PRId64 "; log:\n%s", status_str(st), max_id(run),
				    log_tail(log));
			if (now() > end)
				die("B4: the catch-up is not half done after %d s", JOIN_SECS);
			sleep_s(0.001);
		}
		kill(pid, SIGKILL);
		if (!pid_wait(pid, 10, &st) || !WIFSIGNALED(st))
			die("B4: wsync-join did not die of SIGKILL");
		tk[r] = now() - tstart;
		counts_read3(cnt, &u, &down, &d1);
		db = db_open(run);
		rows = sql_int(db, "SELECT count(*) FROM notes");
		db_close(db);
		tres[r] = join_once(relay, "b4", run, log);
		counts_read(cnt, &u, &d2);
		if (max_id(run) != top || same_rows(run, w, "notes", "B4: after the resume") !=
		    top)
			die("B4: the resumed site lacks rows");
		/*
		 * Whole batches the site had committed when it was killed: the
		 * first half, unless the poll was late (then the batches past
		 * it count at their mean size).
		 */
		committed[r] = (double)((rows - 1) / B4_ROWS_TX);
		sent[r] = d1 + d2 - full;
		batches[r] = sent[r] / per;
		/* What the hub sent again of the batches the site had committed. */
		again[r] = d2 - dhalf + (committed[r] - B4_TX / 2) * per;
		inflight[r] = d1 - first - (committed[r] - B4_TX / 2) * per;
	}

	printf("\nB4. resume after a kill: a site away while %d transactions of %d rows\n"
	    "   were made elsewhere (made and synced in %.1f s, untimed) catches up,\n"
	    "   one batch per transaction (%.0f B each on the wire), through a\n"
	    "   counting exec: relay; it is killed with SIGKILL once its database\n"
	    "   holds half the rows, and run again to the end.  Whole catch-up,\n"
	    "   uninterrupted: %.0f B hub -> site in %.2f s; a no-op sync %.0f B.\n"
	    "   Sent again = bytes the relay passed on to the killed site + bytes\n"
	    "   of the second run - bytes of the uninterrupted run: what was in\n"
	    "   flight at the kill (the batch being applied and whatever sat in the\n"
	    "   relay's and the pipe's buffers) and the second handshake.  In\n"
	    "   flight = bytes passed on to the killed site - the bytes of the\n"
	    "   batches it had committed (the uninterrupted run - a catch-up from a\n"
	    "   site that synced when the hub held exactly the first %d: %.0f B).\n"
	    "   Of committed batches = the second run - that catch-up: what the hub\n"
	    "   sent again of what the site held\n",
	    B4_TX, B4_ROWS_TX, t0, per, full, tfull, noop, B4_TX / 2, dhalf);
	row("killed after", summary(tk, B4_REPS), 2, "s", NULL, 0);
	row("batches committed at the kill", summary(committed, B4_REPS), 0, "batches",
	    NULL, 0);
	row("in flight at the kill, not committed", summary(inflight, B4_REPS), 0, "B",
	    NULL, 0);
	row("resume: the rest of the catch-up", summary(tres, B4_REPS), 2, "s", NULL, 0);
	row("sent again", summary(sent, B4_REPS), 0, "B", NULL, 0);
	f = summary(batches, B4_REPS);
	snprintf(goal, sizeof goal, "<= %.0f", GOAL_B4_BATCHES);
	row("sent again, in batches", f, 2, "batches", goal, f.med <= GOAL_B4_BATCHES);
	sum_fig("B4", "resume after a kill: bytes sent again, in batches", f, 2,
	    "batches", goal, f.med <= GOAL_B4_BATCHES);
	f = summary(again, B4_REPS);
	row("  of committed batches", f, 0, "B", NULL, 0);
	sum_fig("B4", "resume after a kill: bytes of batches the site held, sent again",
	    f, 0, "B", NULL, 0);
	hub_stop(&h);
	db_remove(run);
	db_remove(tpl);
	db_remove(half_tpl);
}

/* ------------------------------------------- B6: full initial sync */

/* The lines of the log file that hold the string s. */
static int log_count(const char *path, const char *s)
{
	char line[1024];
	FILE *f = fopen(path, "r");
	int n = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f) != NULL)
		n += strstr(line, s) != NULL;
	fclose(f);
	return n;
}

/*
 * A fresh site's first one-shot sync of the 1M-row set B3 built, against
 * the sqlite3 shell's .dump piped into another sqlite3 and a local rsync
 * of the file, from notes alone in a file of their own.  The hub is
 * restarted with a heartbeat of 1 s, so it has collected the history
 * every site holds (as a hub that has run a while has), and a new site
 * gets the full copy.
 */
static void bench_initial(void)
{
	struct hub *h = &noop_hub;
	char *log = tmp("initial.log"), *cnt = tmp("counts"), *dst = tmp("initial.db");
	char *pd = tmp("dump.db"), *rdst = tmp("rsync-copy.db"), *dump = tmp("dump.sql");
	char relay[3 * PATHLEN + 64], goal[16];
	char *pipe[] = {"sh", "-c", "sqlite3 \"$1\" .dump | sqlite3 \"$2\"", "sh",
	    noop_plain1m, pd, NULL};
	char *dumpone[] = {"sqlite3", noop_plain1m, ".dump", NULL};
	char *none[] = {NULL};
	double tw[INIT_REPS], td[INIT_REPS], tr[INIT_REPS], rb[INIT_REPS];
	double up, down, tc;
	int copies, paths;
	struct figure f;

	hub_stop(h);
	hub_start_hb(h, "noop", "1");
	sleep_s(2.5);
	snprintf(relay, sizeof relay, "exec:'%s' --relay '%s' '%s'", self_exe, h->sock, cnt);
	copies = log_count(h->log, "sending a full copy of working set 'n1m'");
	for (int r = 0; r < INIT_REPS; r++) {
		db_remove(dst);
		tw[r] = join_once(h->addr, "n1m", dst, log);
		if (r == 0)
			same_rows(dst, noop_plain1m, "notes", "B6: the new site");
		db_remove(dst);
		db_remove(pd);
		td[r] = run_tool(pipe, NULL, NULL, log);
		if (r == 0)
			same_rows(pd, noop_plain1m, "notes", "B6: sqlite3 .dump | sqlite3");
		db_remove(pd);
		db_remove(rdst);
		tr[r] = rsync_run(none, noop_plain1m, rdst, log, &rb[r], NULL);
		db_remove(rdst);
	}
	/* The bytes, once, through the relay; the size of the dump text. */
	tc = join_once(relay, "n1m", dst, log);
	counts_read(cnt, &up, &down);
	db_remove(dst);
	run_tool(dumpone, NULL, dump, log);
	paths = log_count(h->log, "sending a full copy of working set 'n1m'") - copies;

	printf("\nB6. full initial sync of 1M rows: a new, empty site's one-shot\n"
	    "   wsync-join from the hub holding the 1M-row set of B3, its history\n"
	    "   collected (heartbeat 1 s, so it sends the full copy: it did %d of\n"
	    "   %d times), against \"sqlite3 src.db .dump | sqlite3 dst.db\" and a\n"
	    "   local rsync --stats of the file (no basis: it sends it all), both\n"
	    "   from a %.1f MB file holding only notes; wall times; new files each\n"
	    "   time, default journal mode\n", paths, INIT_REPS + 1,
	    file_size(noop_plain1m) / 1e6);
	row("wsync-join, full copy of 1M rows", summary(tw, INIT_REPS), 2, "s", NULL, 0);
	row("sqlite3 .dump | sqlite3", summary(td, INIT_REPS), 2, "s", NULL, 0);
	row("rsync of the file", summary(tr, INIT_REPS), 2, "s", NULL, 0);
	f = ratio_of(tw, td, INIT_REPS);
	snprintf(goal, sizeof goal, "<= %.1f", GOAL_INIT_VS_DUMP);
	row("time wsync / dump-load", f, 2, "x", goal, f.med <= GOAL_INIT_VS_DUMP);
	sum_fig("B6", "initial sync of 1M rows: time wsync / sqlite3 .dump | sqlite3", f,
	    2, "x", goal, f.med <= GOAL_INIT_VS_DUMP);
	f = ratio_of(tw, tr, INIT_REPS);
	row("time wsync / rsync", f, 2, "x", NULL, 0);
	sum_fig("B6", "initial sync of 1M rows: time wsync / rsync of the file", f, 2,
	    "x", NULL, 0);
	row_single("wsync bytes, hub -> site", down, 0, "B", NULL, 0);
	row_single("wsync bytes, site -> hub", up, 0, "B", NULL, 0);
	row_single("  (that run, through the relay)", tc, 2, "s", NULL, 0);
	row_single("dump text", file_size(dump), 0, "B", NULL, 0);
	row("rsync bytes sent + received", summary(rb, INIT_REPS), 0, "B", NULL, 0);
	row_single("bytes wsync / rsync", (up + down) / summary(rb, INIT_REPS).med, 2,
	    "x", NULL, 0);
	row_single("bytes wsync / dump text", (up + down) / file_size(dump), 2, "x",
	    NULL, 0);
	unlink(dump);
	hub_stop(h);
}

/* ---------------------------------------------------- B5: scale */

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
	printf("\nB5. scale: %d connections to one hub, each a handshake for one\n"
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
		sum_fig("B5", "hub memory per idle site, 1,000 sites connected", f, 1,
		    "KiB", goal, f.med <= GOAL_SITE_KIB);
	}
	row("handshake, one after another", summary(hs, SCALE_REPS), 0, "us", NULL, 0);
	row("sent to joined sites as others joined", summary(rxmb, SCALE_REPS), 2, "MB",
	    NULL, 0);
	free(c);
}

/*
 * The hub's memory for connections that never say hello: each sends the
 * preamble and half a frame header, and waits (the hub may hold nothing
 * for what a header announces, and drops them at its handshake deadline,
 * 10 s, far beyond this measurement).
 */
static void bench_preauth(void)
{
	static const uint8_t half[5] = {0x01, 0, 0, 0, 0};
	int *fd = xmalloc(IDLE_SITES * sizeof *fd);
	double before[SCALE_REPS], after[SCALE_REPS], per[SCALE_REPS];
	struct ws_buf pre = WS_BUF_INIT;

	nofile_raise();
	CK("ws_frame_put_preamble", ws_frame_put_preamble(&pre));
	for (int r = 0; r < SCALE_REPS; r++) {
		struct hub h;
		char name[16];

		snprintf(name, sizeof name, "preauth%d", r + 1);
		hub_start(&h, name);
		sleep_s(0.2);
		before[r] = (double)hub_rss_kib(&h);
		for (int i = 0; i < IDLE_SITES; i++) {
			fd[i] = conn_open(h.sock);
			if (write(fd[i], pre.p, pre.len) != (ssize_t)pre.len ||
			    write(fd[i], half, sizeof half) != (ssize_t)sizeof half)
				die("write to the hub: %s", strerror(errno));
		}
		sleep_s(0.5);
		if (hub_fds(&h) < IDLE_SITES)
			die("the hub holds %d descriptors with %d connections open",
			    hub_fds(&h), IDLE_SITES);
		after[r] = (double)hub_rss_kib(&h);
		per[r] = (after[r] - before[r]) / IDLE_SITES;
		for (int i = 0; i < IDLE_SITES; i++)
			close(fd[i]);
		hub_stop(&h);
	}
	printf("\nB5. %d connections that never say hello (the preamble and half a\n"
	    "   frame header each), held open; the hub's VmRSS before and 0.5 s after;\n"
	    "   a fresh hub per run\n", IDLE_SITES);
	row("hub VmRSS before", summary(before, SCALE_REPS), 0, "KiB", NULL, 0);
	row("hub VmRSS with them", summary(after, SCALE_REPS), 0, "KiB", NULL, 0);
	{
		struct figure f = summary(per, SCALE_REPS);

		row("hub memory per connection before its hello", f, 2, "KiB", NULL, 0);
		sum_fig("B5", "hub memory per connection before its hello, 1,000 open",
		    f, 2, "KiB", NULL, 0);
	}
	ws_buf_release(&pre);
	free(fd);
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
	snprintf(bin_keygen, sizeof bin_keygen, "%s/wsync-keygen", dir);
	if (access(bin_serve, X_OK) != 0 || access(bin_join, X_OK) != 0)
		die("no wsync-serve and wsync-join in '%s' (run 'make' first)", dir);
	if ((n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1)) < 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self_exe[n] = '\0';
}

/*
 * 1 if the part named p (b1, b3, b4, b5, b6) is to run: all of them,
 * unless WSYNC_BENCH_ONLY lists some, separated by commas (for working
 * on one; b6 runs b3 first).
 */
static int part(const char *p)
{
	const char *only = getenv("WSYNC_BENCH_ONLY");
	size_t n = strlen(p);

	if (only == NULL || *only == '\0')
		return 1;
	for (const char *q = only; (q = strstr(q, p)) != NULL; q += n)
		if ((q == only || q[-1] == ',') && (q[n] == '\0' || q[n] == ','))
			return 1;
	return 0;
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
	printf("real wsync-serve and wsync-join processes on unix-domain sockets (the\n"
	    "fan-out on loopback TCP), files\n"
	    "under /tmp; notes(id INTEGER PRIMARY KEY, t INTEGER, body TEXT %d B)\n"
	    "in every working set; the sites' databases are WAL, the programs' own\n"
	    "connections use SQLite's defaults otherwise\n\n", BODY_LEN);
	printf("  %-40s %10s %10s %10s  %-7s %s\n", "", "median", "min", "max",
	    "unit", "goal");
	fflush(stdout);
	if (part("b1"))
		bench_one_change();
	if (part("b3") || part("b6")) {
		bench_noop();
		if (part("b6"))
			bench_initial();
		else
			hub_stop(&noop_hub);
	}
	if (part("b4"))
		bench_resume();
	if (part("b5")) {
		bench_fanout();
		bench_scale();
		bench_preauth();
	}
	printf("\n%.1f s\n", now() - t0);
	return 0;
}
