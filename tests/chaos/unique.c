/* SPDX-License-Identifier: MIT */
/*
 * unique.c - convergence of a working set whose schema has UNIQUE,
 * CHECK and FOREIGN KEY constraints, through a hub.
 *
 * A world is a hub and 3 to 4 sites, each a real SQLite file tracking
 *     owner(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)
 *     acct(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,
 *          owner INTEGER REFERENCES owner(id) ON DELETE CASCADE,
 *          n INTEGER NOT NULL DEFAULT 0 CHECK(n >= 0))
 * over 6 keys and 4 emails, so concurrent writes take the same email all
 * the time (two accounts, one address), delete owners that others add
 * accounts for, and so on.  Every round each site runs a few transactions
 * as an application would (one its own copy refuses is rolled back);
 * then some sites send their new batches to the hub, and some take a
 * part of what the hub holds, as the hub would send it (rebuilt from its
 * log by ws_store_changes_since()).  At the end everything reaches
 * everyone, and every copy, the hub's included, must hold identical
 * tables, with PRAGMA integrity_check "ok" and foreign_key_check empty.
 *
 * Not part of make check: wsync(7) lists the clashes that do not
 * converge yet, and these worlds find them (make unique).  WS_TEST_SEED
 * runs one world, WS_UNIQUE_TRACE=1 prints its writes and deliveries,
 * WS_UNIQUE_WORLDS sets the number of worlds (default 40).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"
#include "rbytes.h"
#include "wsync/wsync.h"
#include "wsync/store.h"
#include "wsync/store-test.h"

#define MAXSITE 5
#define ROUNDS 12

static const char *const schema =
    "CREATE TABLE owner(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
    "CREATE TABLE acct(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
    " owner INTEGER REFERENCES owner(id) ON DELETE CASCADE,"
    " n INTEGER NOT NULL DEFAULT 0 CHECK(n >= 0));";
static const char *const tables[] = {"owner", "acct"};

struct node {
	struct ws_store *s;
	char path[128];
	uint64_t sent;       /* own batches up to this usn went to the hub */
	uint64_t got;        /* hub batches up to this usn came here */
};

struct world {
	char dir[64];
	int nsite;
	struct node hub, site[MAXSITE];
	int dead;
	uint64_t seed;
};

static uint64_t rng;
static int trace; /* WS_UNIQUE_TRACE: print every write and delivery */

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

static void fail(struct world *w, const char *what, const char *err)
{
	if (!w->dead)
		fprintf(stderr, "seed %llu: %s: %s\n", (unsigned long long)w->seed,
		    what, err);
	w->dead = 1;
}

static int open_node(struct world *w, struct node *n, const char *name)
{
	char err[WS_ERRLEN] = "";

	snprintf(n->path, sizeof(n->path), "%s/%s.db", w->dir, name);
	if (ws_store_open(&n->s, n->path, "uniq", WS_STORE_CREATE, err) ||
	    sqlite3_exec(ws_store_db(n->s), schema, NULL, NULL, NULL) != SQLITE_OK ||
	    ws_store_track(n->s, tables, 2, err)) {
		fail(w, name, err);
		return -1;
	}
	return 0;
}

/* One application transaction at site i. */
static void write_site(struct world *w, int i)
{
	sqlite3 *db = ws_store_db(w->site[i].s);
	char sql[256];
	int k = 1 + (int)rnd(6), r = (int)rnd(100);
	static const char *const emails[] = {"ann@x", "bob@x", "cy@x", "dee@x"};
	static const char *const names[] = {"ada", "bo", "cat"};

	if (r < 10)
		snprintf(sql, sizeof(sql), "DELETE FROM acct WHERE id = %d", k);
	else if (r < 45)
		snprintf(sql, sizeof(sql), "INSERT INTO acct(id, email, owner) "
		    "VALUES(%d, '%s', %u) ON CONFLICT(id) DO UPDATE SET email = "
		    "excluded.email", k, emails[rnd(4)], 1 + rnd(3));
	else if (r < 60)
		snprintf(sql, sizeof(sql), "UPDATE acct SET owner = %u WHERE id = %d",
		    1 + rnd(3), k);
	else if (r < 72)
		snprintf(sql, sizeof(sql), "UPDATE acct SET n = n + 1 WHERE id = %d", k);
	else if (r < 80)
		snprintf(sql, sizeof(sql), "UPDATE acct SET n = n - 1 WHERE id = %d", k);
	else if (r < 92)
		snprintf(sql, sizeof(sql), "INSERT INTO owner VALUES(%u, '%s') ON "
		    "CONFLICT(id) DO UPDATE SET name = excluded.name", 1 + rnd(3),
		    names[rnd(3)]);
	else
		snprintf(sql, sizeof(sql), "DELETE FROM owner WHERE id = %u", 1 + rnd(3));
	sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
	if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		if (trace)
			printf("s%d: %s -- refused\n", i, sql);
	} else if (trace) {
		printf("s%d: %s\n", i, sql);
	}
}

struct pass {
	struct world *w;
	struct ws_store *to;
	const struct ws_siteid *only;   /* only batches of this origin */
	const struct ws_siteid *skip;   /* not batches of this origin */
	size_t left;                    /* batches still to pass */
	uint64_t *usn;
	const char *name;               /* of the receiver, for the trace */
};

static int pass_cb(const struct ws_batch *b, uint64_t usn, void *cd)
{
	struct pass *p = cd;
	struct ws_buf enc = WS_BUF_INIT;
	struct ws_batch copy;
	char err[WS_ERRLEN] = "";
	int rc, applied;

	if (p->left == 0)
		return 1; /* stop here */
	if (b->has_dot && p->only && ws_siteid_cmp(&b->dot_site, p->only) != 0)
		goto next;
	if (b->has_dot && p->skip && ws_siteid_cmp(&b->dot_site, p->skip) == 0)
		goto next;
	if (trace) {
		size_t c;

		uint64_t lam = b->lamport;

		for (c = 0; !b->has_lamport && c < b->clock.n; c++)
			lam += b->clock.e[c].counter;
		printf("  %s <- %02x%02x:%llu L=%llu:", p->name, b->dot_site.b[0],
		    b->dot_site.b[1], (unsigned long long)b->dot_counter,
		    (unsigned long long)lam);
		for (c = 0; c < b->nchanges; c++) {
			const struct ws_change *ch = &b->changes[c];

			printf(" %s %s %lld", b->tables[ch->table].name, ch->op == 1 ?
			    "ins" : ch->op == 2 ? "upd" : "del", (long long)ch->pk[0].i);
		}
		printf("\n");
	}
	/* Through the wire encoding, as a peer would get it. */
	ws_batch_init(&copy);
	if ((rc = ws_batch_encode(b, &enc)) == 0 &&
	    (rc = ws_batch_decode(&copy, enc.p, enc.len, err)) == 0)
		rc = ws_store_apply(p->to, &copy, &applied, err);
	ws_batch_release(&copy);
	ws_buf_release(&enc);
	if (rc) {
		fail(p->w, "apply", err);
		return rc;
	}
	p->left--;
next:
	*p->usn = usn;
	return 0;
}

/* Site i sends its new batches to the hub (up to max of them). */
static void push(struct world *w, int i, size_t max)
{
	struct node *n = &w->site[i];
	struct pass p = {w, w->hub.s, ws_store_site(n->s), NULL, max, &n->sent, "hub"};
	char err[WS_ERRLEN] = "";
	int sealed, rc;

	if (ws_store_seal(n->s, &sealed, err)) {
		fail(w, "seal", err);
		return;
	}
	rc = ws_store_changes_since(n->s, n->sent, pass_cb, &p, err);
	if (rc < 0 && !w->dead)
		fail(w, "push", err);
}

/* Site i takes up to max of the hub's batches it lacks. */
static void pull(struct world *w, int i, size_t max)
{
	struct node *n = &w->site[i];
	char name[16];
	struct pass p = {w, n->s, NULL, ws_store_site(n->s), max, &n->got, name};
	char err[WS_ERRLEN] = "";
	int rc;

	snprintf(name, sizeof(name), "s%d", i);
	rc = ws_store_changes_since(w->hub.s, n->got, pass_cb, &p, err);
	if (rc < 0 && !w->dead)
		fail(w, "pull", err);
}

static char *dump(struct world *w, struct node *n)
{
	sqlite3 *db = ws_store_db(n->s);
	sqlite3_stmt *st;
	sqlite3_str *out = sqlite3_str_new(NULL);
	const char *q[] = {"SELECT id, name FROM owner ORDER BY id",
	    "SELECT id, email, owner, n FROM acct ORDER BY id",
	    "PRAGMA integrity_check", "PRAGMA foreign_key_check"};
	size_t i;
	int c;

	for (i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		if (sqlite3_prepare_v2(db, q[i], -1, &st, NULL) != SQLITE_OK) {
			fail(w, q[i], sqlite3_errmsg(db));
			break;
		}
		sqlite3_str_appendf(out, "%s:", i < 2 ? tables[i] : q[i] + 7);
		while (sqlite3_step(st) == SQLITE_ROW)
			for (c = 0; c < sqlite3_column_count(st); c++)
				sqlite3_str_appendf(out, "%s%s", c ? "|" : " ",
				    sqlite3_column_text(st, c) ?
				    (const char *)sqlite3_column_text(st, c) : "NULL");
		sqlite3_str_appendf(out, "\n");
		sqlite3_finalize(st);
	}
	return sqlite3_str_finish(out);
}

static int run_world(uint64_t seed)
{
	struct world w;
	char name[16], *want = NULL, *got;
	int i, r, k, ok = 1;

	memset(&w, 0, sizeof(w));
	w.seed = seed;
	rng = seed * 0x9e3779b97f4a7c15ull + 1;
	rb_state = seed ^ 0x5173c0de5173c0deull; /* site ids follow the seed */
	w.nsite = 3 + (int)rnd(2);
	snprintf(w.dir, sizeof(w.dir), "/tmp/wsync-unique.XXXXXX");
	if (!mkdtemp(w.dir))
		return 0;
	if (open_node(&w, &w.hub, "hub"))
		goto out;
	for (i = 0; i < w.nsite; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		if (open_node(&w, &w.site[i], name))
			goto out;
	}
	for (r = 0; r < ROUNDS && !w.dead; r++) {
		for (i = 0; i < w.nsite; i++)
			for (k = (int)rnd(4); k > 0; k--) {
				write_site(&w, i);
				if (rnd(2) && ws_store_seal(w.site[i].s, NULL, name))
					fail(&w, "seal", name);
			}
		for (i = 0; i < w.nsite && !w.dead; i++) {
			if (rnd(3))
				push(&w, i, 1 + rnd(4));
			if (rnd(3))
				pull(&w, i, 1 + rnd(6));
		}
	}
	for (r = 0; r < 2 && !w.dead; r++)
		for (i = 0; i < w.nsite; i++) {
			push(&w, i, (size_t)-1);
			pull(&w, (i + 1) % w.nsite, (size_t)-1);
		}
	for (i = 0; i < w.nsite && !w.dead; i++)
		pull(&w, i, (size_t)-1);
	if (w.dead) {
		ok = 0;
		goto out;
	}
	want = dump(&w, &w.hub);
	if (strstr(want, "integrity_check: ok\n") == NULL ||
	    strstr(want, "foreign_key_check:\n") == NULL) {
		fprintf(stderr, "seed %llu: the hub's copy is not sound:\n%s",
		    (unsigned long long)seed, want);
		ok = 0;
	}
	for (i = 0; i < w.nsite; i++) {
		got = dump(&w, &w.site[i]);
		if (strcmp(got, want) != 0) {
			if (ok)
				fprintf(stderr, "seed %llu: site %d differs from the hub:\n"
				    "hub:\n%ssite:\n%s", (unsigned long long)seed, i, want, got);
			ok = 0;
		}
		sqlite3_free(got);
	}
out:
	sqlite3_free(want);
	ws_store_close(w.hub.s);
	for (i = 0; i < w.nsite; i++)
		ws_store_close(w.site[i].s);
	if (ok) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", w.dir);
	} else {
		fprintf(stderr, "  copies kept in %s\n", w.dir);
	}
	return ok && !w.dead;
}

TEST(test_unique_converges)
{
	const char *e = getenv("WS_TEST_SEED");
	int n = 40, i, bad = 0;

	if (getenv("WS_UNIQUE_WORLDS") && atoi(getenv("WS_UNIQUE_WORLDS")) > 0)
		n = atoi(getenv("WS_UNIQUE_WORLDS"));
	if (e && *e)
		n = 1; /* that seed alone (the harness read it into t_seed) */
	trace = getenv("WS_UNIQUE_TRACE") != NULL;
	for (i = 0; i < n; i++)
		if (!run_world(t_seed + (uint64_t)i)) {
			bad++;
			if (bad == 1)
				fprintf(stderr, "replay: WS_TEST_SEED=%llu "
				    "WS_UNIQUE_TRACE=1 make unique\n",
				    (unsigned long long)(t_seed + (uint64_t)i));
		}
	printf("unique: %d worlds, %d diverged\n", n, bad);
	CHECK(bad == 0);
}

int main(void)
{
	if (randombytes_set_implementation(&rb_impl) != 0 || ws_init() != 0)
		return 1;
	TEST_MAIN_BEGIN();
	RUN(test_unique_converges);
	TEST_MAIN_END();
}
