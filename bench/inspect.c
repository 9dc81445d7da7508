/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - how fast bin/wsync-inspect reads a large session log.
 *
 * Writes a hub's session log of WSYNC_BENCH_INSPECT_MB megabytes (default
 * 1024) under /tmp: sessions of 8 sites, each a HELLO and an ADD both
 * ways, then batches of 20 changes (a mix of inserts, updates and
 * deletes with 8-200 byte texts) received from one site and forwarded to
 * the others, with consecutive dots and a CLOCK every 16 batches, so
 * --check follows every session and dot.  Then it times, as real
 * processes, each view reading the whole log: --check, the timeline and
 * --json (output to /dev/null, the JSON also to a file), and `jq -c .`
 * reading that JSON back (its first WSYNC_BENCH_JQ_MB megabytes, default
 * 256, cut at a line, since jq is slow).  Figures are MB/s of input
 * (MB = 10^6 bytes), one run each (the log is large), and the ratio of
 * the rate --json writes JSON to the rate jq reads it.  Goal: --check at
 * least 200 MB/s, --json writing no slower than jq reads.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BENCH_NAME "inspect"
#include "common.h"

#define NSITES 8
#define CHANGES 20

static struct ws_siteid sites[NSITES], hub;

static void put_record(struct ws_buf *out, uint64_t t, unsigned dir, int peer,
    uint8_t type, uint8_t flags, uint32_t ch, const struct ws_buf *pl)
{
	struct ws_log_record r;
	struct ws_buf rec = WS_BUF_INIT;
	char name[32];

	snprintf(name, sizeof(name), "unix#%d", peer + 1);
	memset(&r, 0, sizeof(r));
	r.time_us = t;
	r.dir = dir;
	r.peer = name;
	r.peerlen = strlen(name);
	r.frame.type = type;
	r.frame.flags = flags;
	r.frame.channel = ch;
	r.frame.payload = pl->p;
	r.frame.len = (uint32_t)pl->len;
	CK("ws_log_record_encode", ws_log_record_encode(&r, &rec));
	CK("ws_frame_put", ws_frame_put(out, WS_FRAME_LOG, 0, 0, rec.p, rec.len));
	ws_buf_release(&rec);
}

static void write_all(int fd, struct ws_buf *b)
{
	size_t off = 0;
	ssize_t k;

	while (off < b->len) {
		k = write(fd, b->p + off, b->len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die("write: %s", strerror(errno));
		off += (size_t)k;
	}
	b->len = 0;
}

/* Write the log; returns its size. */
static uint64_t make_log(const char *path, uint64_t want)
{
	static const char *const cols[] = {"id", "title", "body", "n"};
	static const uint32_t pk[] = {0};
	struct ws_buf out = WS_BUF_INIT, pl = WS_BUF_INIT;
	struct ws_vclock vc = WS_VCLOCK_INIT;
	uint64_t counter[NSITES] = {0}, t = 1795307098000000ull, size = 0, row = 1;
	char text[256];
	int fd, i, s, k;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) < 0)
		die("cannot create '%s': %s", path, strerror(errno));
	CK("preamble", ws_frame_put_preamble(&out));
	for (i = 0; i < NSITES; i++) {
		struct ws_hello h = {WS_PROTOCOL_VERSION, WS_ROLE_SITE, sites[i]};
		struct ws_add a = {.clock = WS_VCLOCK_INIT};

		pl.len = 0;
		CK("hello", ws_hello_encode(&h, &pl));
		put_record(&out, t, WS_LOG_IN, i, WS_FRAME_HELLO, 0, 0, &pl);
		h.role = WS_ROLE_HUB;
		h.site = hub;
		pl.len = 0;
		CK("hello", ws_hello_encode(&h, &pl));
		put_record(&out, t, WS_LOG_OUT, i, WS_FRAME_HELLO, 0, 0, &pl);
		snprintf(a.wsid, sizeof(a.wsid), "notes");
		pl.len = 0;
		CK("add", ws_add_encode(&a, &pl));
		put_record(&out, t, WS_LOG_IN, i, WS_FRAME_ADD, 0, 1, &pl);
		a.has_guid = 1;
		memset(a.guid, 7, 16);
		pl.len = 0;
		CK("add", ws_add_encode(&a, &pl));
		put_record(&out, t, WS_LOG_OUT, i, WS_FRAME_ADD, 0, 1, &pl);
	}
	while (size + out.len < want) {
		struct ws_batch b;
		uint32_t ti;

		s = (int)rnd_below(NSITES);
		ws_batch_init(&b);
		CK("table", ws_batch_add_table(&b, "notes", 4, cols, 1, pk, &ti, errbuf));
		counter[s]++;
		CK("vclock", ws_vclock_set(&vc, &sites[s], counter[s]));
		CK("clock", ws_batch_set_clock(&b, &vc));
		CK("dot", ws_batch_set_dot(&b, &sites[s], counter[s]));
		for (k = 0; k < CHANGES; k++) {
			struct ws_value key = {.type = WS_INTEGER}, vals[3];
			uint8_t mask[1] = {0};
			struct ws_change c = {0};
			uint64_t op = rnd_below(10);
			size_t tl = 8 + rnd_below(192), j;
			uint32_t si;

			for (j = 0; j < tl; j++)
				text[j] = (char)('a' + rnd_below(26));
			CK("site", ws_batch_site(&b, &sites[s], &si));
			c.table = ti;
			c.site = si;
			c.counter = counter[s];
			c.op = op < 3 ? WS_OP_INSERT : op < 8 ? WS_OP_UPDATE : WS_OP_DELETE;
			key.i = (int64_t)(c.op == WS_OP_INSERT ? row++ : 1 + rnd_below(row));
			c.pk = &key;
			if (c.op != WS_OP_DELETE) {
				vals[0] = (struct ws_value){.type = WS_TEXT, .p = (const uint8_t *)text, .n = tl};
				vals[1] = (struct ws_value){.type = WS_TEXT, .p = (const uint8_t *)text, .n = tl / 2};
				vals[2] = (struct ws_value){.type = WS_INTEGER, .i = (int64_t)rnd_below(100000)};
				mask[0] = 0x2 | 0x4 | 0x8;
				c.mask = mask;
				c.vals = vals;
				c.nvals = 3;
			}
			CK("change", ws_batch_add_change(&b, &c, errbuf));
		}
		pl.len = 0;
		CK("encode", ws_batch_encode(&b, &pl));
		ws_batch_release(&b);
		t += 1000;
		put_record(&out, t, WS_LOG_IN, s, WS_FRAME_BATCH, 0, 1, &pl);
		for (i = 0; i < NSITES; i++)
			if (i != s)
				put_record(&out, t, WS_LOG_OUT, i, WS_FRAME_BATCH, 0, 1, &pl);
		if (counter[s] % 16 == 0) {
			pl.len = 0;
			CK("clock", ws_vclock_encode(&vc, &pl));
			put_record(&out, t, WS_LOG_OUT, s, WS_FRAME_CLOCK, 0, 1, &pl);
		}
		if (out.len >= (4u << 20)) {
			size += out.len;
			write_all(fd, &out);
		}
	}
	size += out.len;
	write_all(fd, &out);
	if (close(fd) < 0)
		die("cannot write '%s': %s", path, strerror(errno));
	ws_buf_release(&out);
	ws_buf_release(&pl);
	ws_vclock_release(&vc);
	return size;
}

/* Run sh -c cmd; die unless it exits 0.  Returns the seconds it took. */
static double timed(const char *cmd)
{
	double t0 = now();
	int st = system(cmd);

	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("'%s' failed (status %d)", cmd, st);
	return now() - t0;
}

static uint64_t file_size(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		die("stat '%s': %s", path, strerror(errno));
	return (uint64_t)st.st_size;
}

int main(void)
{
	const char *env = getenv("WSYNC_BENCH_INSPECT_MB");
	const char *jenv = getenv("WSYNC_BENCH_JQ_MB");
	uint64_t mb = env ? strtoull(env, NULL, 10) : 1024;
	uint64_t jqmb = jenv ? strtoull(jenv, NULL, 10) : 256;
	char dir[] = "/tmp/wsync-bench-inspect.XXXXXX", log[64], json[64], cut[64];
	char cmd[512];
	const char *bin = "../bin/wsync-inspect";
	uint64_t size, jsize, csize;
	double tg, tc, tt, tj, tq;
	int i;

	if (mb == 0 || jqmb == 0)
		die("WSYNC_BENCH_INSPECT_MB and WSYNC_BENCH_JQ_MB must be positive");
	if (access(bin, X_OK) != 0)
		die("no %s: run make first", bin);
	if (!mkdtemp(dir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(log, sizeof(log), "%s/hub.log", dir);
	snprintf(json, sizeof(json), "%s/hub.jsonl", dir);
	snprintf(cut, sizeof(cut), "%s/cut.jsonl", dir);
	CK("ws_init", ws_init());
	rnd_seed(42);
	for (i = 0; i < NSITES; i++)
		for (size_t j = 0; j < WS_SITEID_LEN; j++)
			sites[i].b[j] = (uint8_t)rnd();
	memset(hub.b, 0xab, sizeof(hub.b));

	tg = now();
	size = make_log(log, mb * 1000000);
	tg = now() - tg;
	snprintf(cmd, sizeof(cmd), "%s --check %s >/dev/null", bin, log);
	tc = timed(cmd);
	snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", bin, log);
	tt = timed(cmd);
	snprintf(cmd, sizeof(cmd), "%s --json %s >%s", bin, log, json);
	tj = timed(cmd);
	jsize = file_size(json);
	/* jq is slow: give it the first jqmb MB, cut after a whole line. */
	snprintf(cmd, sizeof(cmd), "head -c %" PRIu64 " %s | sed '$d' >%s", jqmb * 1000000,
	    json, cut);
	timed(cmd);
	csize = file_size(cut);
	snprintf(cmd, sizeof(cmd), "jq -c . %s >/dev/null", cut);
	tq = timed(cmd);

	printf("wsync %s inspect benchmark: one run each; MB = 10^6 bytes\n", WSYNC_VERSION);
	printf("a hub's session log of %.1f MB (WSYNC_BENCH_INSPECT_MB=%" PRIu64 "), written in %.1f s:\n",
	    (double)size / 1e6, mb, tg);
	printf("  %d sites, batches of %d changes (30%% insert, 50%% update, 20%% delete),\n"
	    "  each received once and forwarded to the other %d sites\n\n", NSITES,
	    CHANGES, NSITES - 1);
	printf("                                              seconds       MB/s  goal\n");
	printf("  wsync-inspect --check                      %8.2f %10.1f  >= 200\n", tc,
	    (double)size / 1e6 / tc);
	printf("  wsync-inspect (timeline) > /dev/null       %8.2f %10.1f\n", tt,
	    (double)size / 1e6 / tt);
	printf("  wsync-inspect --json > file                %8.2f %10.1f  (log read)\n", tj,
	    (double)size / 1e6 / tj);
	printf("    JSON written: %.1f MB                    %8.2f %10.1f  (JSON written)\n",
	    (double)jsize / 1e6, tj, (double)jsize / 1e6 / tj);
	printf("  jq -c . reading the first %.1f MB of it    %8.2f %10.1f  (JSON read)\n",
	    (double)csize / 1e6, tq, (double)csize / 1e6 / tq);
	printf("  ratio: --json writes / jq reads              %10.2f  >= 1\n",
	    ((double)jsize / tj) / ((double)csize / tq));
	unlink(log);
	unlink(json);
	unlink(cut);
	rmdir(dir);
	return 0;
}
