/* SPDX-License-Identifier: MIT */
/*
 * replicate.c - table replication against the obvious baselines, with
 * ../bin/wsync-replicate publishing from a real process over a unix
 * socket under /tmp and the replicator running in this process (so the
 * bytes on the wire can be counted):
 *
 *   full     the initial full replication of a 1M-row table, against
 *            "sqlite3 src.db .dump | sqlite3 dst.db" on the same rows;
 *   1%       an incremental run after 1% of the rows changed: bytes both
 *            ways, against what "rsync --no-whole-file --ignore-times --stats" sends
 *            and receives for the same change to a plain copy of the
 *            database file.
 *
 * ROWS in the environment overrides the row count (default 1000000).
 * One run each: a full replication of a million rows is long, and its
 * time dwarfs the noise.
 */
#define BENCH_NAME "bench/replicate"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static char dir[64];
static pid_t pub_pid;

/* A benchmark that dies leaves no publisher behind. */
static void stop_publisher(void)
{
	if (pub_pid > 0)
		kill(pub_pid, SIGTERM);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Run a shell command in dir; die if it fails. */
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	int n;
	va_list ap;

	n = snprintf(cmd, sizeof(cmd), "cd '%s' && ", dir);
	va_start(ap, fmt);
	vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		die("'%s' failed", cmd);
}

/* The first number after `key` in file path, or die. */
static unsigned long long number_after(const char *path, const char *key)
{
	char line[512], *p;
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;
	int found = 0;

	if (!f)
		die("cannot read %s: %s", path, strerror(errno));
	while (!found && fgets(line, sizeof(line), f))
		if ((p = strstr(line, key))) {
			p += strlen(key);
			while (*p && (*p < '0' || *p > '9'))
				p++;
			for (; (*p >= '0' && *p <= '9') || *p == ','; p++)
				if (*p != ',')
					v = v * 10 + (unsigned long long)(*p - '0');
			found = 1;
		}
	fclose(f);
	if (!found)
		die("no '%s' in %s", key, path);
	return v;
}

static pid_t start_publisher(const char *sock)
{
	char db[128], addr[160];
	pid_t pid;
	int i;

	snprintf(db, sizeof(db), "%s/pub.db", dir);
	snprintf(addr, sizeof(addr), "unix:%s", sock);
	pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		execl("../bin/wsync-replicate", "wsync-replicate", "publish", "-q", "-d", db,
		    "-t", "items", "-l", addr, (char *)NULL);
		_exit(127);
	}
	pub_pid = pid;
	atexit(stop_publisher);
	for (i = 0; i < 6000 && access(sock, F_OK) != 0; i++)
		usleep(10000);
	if (access(sock, F_OK) != 0)
		die("the publisher did not start");
	return pid;
}

static void pull(const char *sock, uint64_t *in, uint64_t *out)
{
	char db[128], src[160], err[WS_ERRLEN];
	struct ws_replicate_pull_opts o;
	int rc;

	snprintf(db, sizeof(db), "%s/rep.db", dir);
	snprintf(src, sizeof(src), "unix:%s", sock);
	memset(&o, 0, sizeof(o));
	o.source = src;
	o.db = db;
	o.table = "items";
	o.bytes_in = in;
	o.bytes_out = out;
	if ((rc = ws_replicate_pull(&o, err)) != 0)
		die("pull: %s: %s", ws_strerror(rc), err);
}

int main(void)
{
	const char *env = getenv("ROWS");
	long rows = env ? atol(env) : 1000000;
	char sock[128];
	double t, t_dump, t_track, t_full, t_inc, t_rsync;
	uint64_t in = 0, out = 0, inc_in = 0, inc_out = 0;
	unsigned long long rs_sent, rs_recv;
	pid_t pub;
	int status;

	if (rows < 100)
		die("ROWS must be at least 100");
	if (ws_init())
		die("ws_init failed");
	snprintf(dir, sizeof(dir), "/tmp/wsync-bench-repl.XXXXXX");
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(sock, sizeof(sock), "%s/pub.sock", dir);
	printf("wsync %s replication benchmark: one run each, %ld rows\n", WSYNC_VERSION, rows);
	printf("items(id INTEGER PRIMARY KEY, name TEXT, email TEXT, n INTEGER, score REAL),"
	    " about 60 B a row\n\n");
	fflush(stdout);
	sh("sqlite3 plain.db \"PRAGMA journal_mode=WAL; CREATE TABLE items(id INTEGER PRIMARY KEY,"
	    " name TEXT, email TEXT, n INTEGER, score REAL); WITH RECURSIVE c(i) AS (SELECT 1"
	    " UNION ALL SELECT i + 1 FROM c WHERE i < %ld) INSERT INTO items SELECT i,"
	    " 'name-' || i, 'user' || i || '@example.org', i * 7 %% 1000, i / 3.0 FROM c;"
	    " PRAGMA journal_mode=DELETE\" >/dev/null", rows);
	sh("cp plain.db pub.db");

	/* Baseline: dump and load. */
	t = now();
	sh("sqlite3 plain.db .dump | sqlite3 dump.db");
	t_dump = now() - t;

	/* The publisher's first start tracks the table (logs every row once). */
	t = now();
	pub = start_publisher(sock);
	t_track = now() - t;

	t = now();
	pull(sock, &in, &out);
	t_full = now() - t;
	{
		sqlite3 *db;
		char path[128];

		snprintf(path, sizeof(path), "%s/rep.db", dir);
		if (sqlite3_open(path, &db) != SQLITE_OK)
			die("cannot open %s", path);
		if (sql_int(db, "SELECT count(*) FROM items") != rows)
			die("the replica does not hold %ld rows", rows);
		sqlite3_close(db);
	}

	/* 1% of the rows change, in both the published and the plain copy. */
	sh("cp plain.db before.db");
	rnd_seed(42);
	{
		char upd[128];
		long i, n = rows / 100;
		FILE *f;
		char path[128];

		snprintf(path, sizeof(path), "%s/change.sql", dir);
		if (!(f = fopen(path, "w")))
			die("cannot write %s", path);
		fputs("BEGIN;\n", f);
		for (i = 0; i < n; i++) {
			long id = (long)rnd_below((uint64_t)rows) + 1;

			snprintf(upd, sizeof(upd), "UPDATE items SET name = 'changed-%ld', n = n + 1"
			    " WHERE id = %ld;\n", i, id);
			fputs(upd, f);
		}
		fputs("COMMIT;\n", f);
		fclose(f);
	}
	sh("sqlite3 pub.db < change.sql && sqlite3 plain.db < change.sql");
	t = now();
	pull(sock, &inc_in, &inc_out);
	t_inc = now() - t;
	t = now();
	sh("rsync --no-whole-file --ignore-times --stats plain.db before.db > rsync.txt");
	t_rsync = now() - t;
	{
		char path[128];

		snprintf(path, sizeof(path), "%s/rsync.txt", dir);
		rs_sent = number_after(path, "Total bytes sent:");
		rs_recv = number_after(path, "Total bytes received:");
	}
	kill(pub, SIGTERM);
	waitpid(pub, &status, 0);
	pub_pid = 0;

	printf("full replication                       seconds     rows/s\n");
	printf("  sqlite3 .dump | sqlite3 (baseline)  %8.2f  %9.0f\n", t_dump, rows / t_dump);
	printf("  wsync-replicate pull                %8.2f  %9.0f\n", t_full, rows / t_full);
	printf("  ratio pull / dump                   %8.2f\n", t_full / t_dump);
	printf("  bytes from the publisher            %10llu (%.1f B/row)\n",
	    (unsigned long long)in, (double)in / (double)rows);
	printf("  (the publisher's first start, tracking the table: %.2f s)\n\n", t_track);
	printf("incremental, 1%% of the rows updated (%ld UPDATEs, one transaction)\n",
	    rows / 100);
	printf("                                         bytes   seconds\n");
	printf("  rsync --no-whole-file (baseline)  %10llu  %8.2f  (sent %llu + received %llu)\n",
	    rs_sent + rs_recv, t_rsync, rs_sent, rs_recv);
	printf("  wsync-replicate pull              %10llu  %8.2f  (in %llu + out %llu)\n",
	    (unsigned long long)(inc_in + inc_out), t_inc, (unsigned long long)inc_in,
	    (unsigned long long)inc_out);
	printf("  ratio rsync / pull                %10.1f  (goal >= 50)\n",
	    (double)(rs_sent + rs_recv) / (double)(inc_in + inc_out));
	sh("rm -rf '%s'", dir);
	return 0;
}
