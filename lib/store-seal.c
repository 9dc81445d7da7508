/* SPDX-License-Identifier: MIT */
/*
 * store-seal.c - local batches: sealing the log entries captured since
 * the last seal into one batch with the next local dot (ws_store_seal(),
 * which clears the conflicts of every cell the batch writes), and a
 * copied database's site id: a file that is a copy of another site's
 * (ws_store_check_copy()) renews its id, its own batches past what it
 * had sent stamped anew (ws_store_renew_site()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store-int.h"


/* Sum of a clock's counters: the Lamport number of a batch. */
uint64_t sto_lamport_of(const struct ws_vclock *vc)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < vc->n; i++)
		sum += vc->e[i].counter;
	return sum;
}

/* Record a batch row: dot, usn range, Lamport number, context clock. */
int sto_add_batch_row(struct ws_store *s, int64_t site, uint64_t counter,
    uint64_t first, uint64_t last, const struct ws_vclock *ctx, uint64_t lamport,
    char *err)
{
	struct ws_buf enc = WS_BUF_INIT;
	sqlite3_stmt *st;
	int rc;

	if ((rc = ws_vclock_encode(ctx, &enc)))
		return rc;
	if ((rc = sto_prep(s->db, "INSERT INTO wsync_batches VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	    &st, err)) == 0) {
		sqlite3_bind_int64(st, 1, site);
		sqlite3_bind_int64(st, 2, (int64_t)counter);
		sqlite3_bind_int64(st, 3, (int64_t)first);
		sqlite3_bind_int64(st, 4, (int64_t)last);
		sqlite3_bind_int64(st, 5, (int64_t)lamport);
		sqlite3_bind_blob(st, 6, enc.p ? enc.p : (const uint8_t *)"", (int)enc.len,
		    SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
		sqlite3_finalize(st);
	}
	ws_buf_release(&enc);
	return rc;
}

int sto_seal_locked(struct ws_store *s, int *sealed, char *err)
{
	struct ws_vclock clock = WS_VCLOCK_INIT;
	struct ws_buf pk = WS_BUF_INIT;
	sqlite3_stmt *st = NULL, *del = NULL;
	uint64_t first, last, counter;
	sqlite3_str *q;
	int rc;

	if (sealed)
		*sealed = 0;
	/* Writers with triggers off first (with the columns known so far). */
	if ((rc = sto_scan(s, err)) || (rc = sto_follow_schema(s, err)))
		return rc;
	first = (uint64_t)sto_meta_int(s, "sealed_usn") + 1;
	if ((rc = ws_store_usn(s, &last, err)) || last < first ||
	    (rc = sto_scan_refresh(s, first, last, err)))
		return rc;
	if ((rc = ws_store_clock(s, &clock, err)) ||
	    (rc = ws_vclock_increment(&clock, &s->site, &counter)) ||
	    (rc = sto_clock_set(s, s->self, counter, err)) ||
	    (rc = sto_add_batch_row(s, s->self, counter, first, last, &clock,
	    sto_lamport_of(&clock), err)) ||
	    (rc = sto_claims_seal(s, first, last, err)) ||
	    (rc = sto_meta_set_int(s, "sealed_usn", (int64_t)last, err)))
		goto out;
	/* A local write has seen every version of the cells it wrote. */
	q = sqlite3_str_new(s->db);
	sqlite3_str_appendall(q, "SELECT tbl, op, mask, ");
	sto_str_ks(q, s->nk, "");
	sqlite3_str_appendall(q, " FROM wsync_log WHERE usn BETWEEN ?1 AND ?2");
	if ((rc = sto_str_prep(s->db, q, &st, err)) ||
	    (rc = sto_prep(s->db, "DELETE FROM wsync_conflicts WHERE tbl = ?1 AND pk = ?2 "
	    "AND (?3 OR (?4 >> col) & 1)", &del, err)))
		goto out;
	sqlite3_bind_int64(st, 1, (int64_t)first);
	sqlite3_bind_int64(st, 2, (int64_t)last);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tbl *t = sto_tbl_by_id(s, sqlite3_column_int64(st, 0));

		if (!t)
			continue;
		if ((rc = sto_pk_blob(st, 3, t->npk, &pk)))
			goto out;
		sqlite3_bind_int64(del, 1, t->id);
		sqlite3_bind_blob(del, 2, pk.p, (int)pk.len, SQLITE_STATIC);
		sqlite3_bind_int(del, 3, sqlite3_column_int(st, 1) != WS_OP_UPDATE);
		sqlite3_bind_int64(del, 4, sqlite3_column_int64(st, 2));
		if (sqlite3_step(del) != SQLITE_DONE) {
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", err);
			goto out;
		}
		sqlite3_reset(del);
	}
	rc = rc == SQLITE_DONE ? 0 : sto_sqlerr(s->db, rc, "log", err);
	if (rc == 0 && sealed)
		*sealed = 1;
out:
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	ws_buf_release(&pk);
	ws_vclock_release(&clock);
	return rc;
}

/*
 * This database is a copy (or an old restore) of another site's: give it
 * a site id of its own.  Its batches up to `keep` are shared history and
 * stay the old site's; the later ones (sealed here since it was copied)
 * are stamped anew as the new site's, 1, 2, ..., with their contexts
 * rewritten to match; unsealed writes seal under the new id.  The old
 * site's later batches then arrive from the hub like any other site's.
 */
int ws_store_renew_site(struct ws_store *s, uint64_t keep, char *err)
{
	struct ws_vclock ctx = WS_VCLOCK_INIT, clock = WS_VCLOCK_INIT;
	struct ws_siteid old = s->site, id;
	struct ws_buf enc = WS_BUF_INIT, list = WS_BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t oldix = s->self, newix;
	uint64_t mine, k = 0, c;
	size_t at;
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = ws_store_clock(s, &clock, err)))
		goto out;
	mine = ws_vclock_get(&clock, &old);
	if (keep > mine)
		keep = mine;
	ws_siteid_random(&id);
	if ((rc = sto_site_index(s, &id, &newix, err)))
		goto out;
	/* The counters to stamp anew, in order (an UPDATE may not run under
	 * a cursor on the same rows). */
	if ((rc = sto_prep(s->db, "SELECT counter FROM wsync_batches WHERE site = ?1 AND "
	    "counter > ?2 ORDER BY counter", &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, oldix);
	sqlite3_bind_int64(st, 2, (int64_t)keep);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		c = (uint64_t)sqlite3_column_int64(st, 0);
		if ((rc = ws_buf_append(&list, &c, sizeof(c))))
			goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc != SQLITE_DONE) {
		rc = sto_sqlerr(s->db, rc, "batches", err);
		goto out;
	}
	rc = 0;
	for (at = 0; at < list.len; at += sizeof(c)) {
		memcpy(&c, list.p + at, sizeof(c));
		k++;
		if ((rc = sto_prep(s->db, "SELECT clock FROM wsync_batches WHERE site = ?1 AND "
		    "counter = ?2", &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, oldix);
		sqlite3_bind_int64(st, 2, (int64_t)c);
		if (sqlite3_step(st) != SQLITE_ROW) {
			rc = sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
			goto out;
		}
		rc = ws_vclock_decode_all(&ctx, sqlite3_column_blob(st, 0),
		    (size_t)sqlite3_column_bytes(st, 0), err);
		sqlite3_finalize(st);
		st = NULL;
		enc.len = 0;
		if (rc || (rc = ws_vclock_set(&ctx, &old, keep)) ||
		    (rc = ws_vclock_set(&ctx, &id, k)) ||
		    (rc = ws_vclock_encode(&ctx, &enc)) ||
		    (rc = sto_prep(s->db, "UPDATE wsync_batches SET site = ?3, counter = ?4, "
		    "clock = ?5 WHERE site = ?1 AND counter = ?2", &st, err)))
			goto out;
		sqlite3_bind_int64(st, 1, oldix);
		sqlite3_bind_int64(st, 2, (int64_t)c);
		sqlite3_bind_int64(st, 3, newix);
		sqlite3_bind_int64(st, 4, (int64_t)k);
		sqlite3_bind_blob(st, 5, enc.p ? enc.p : (const uint8_t *)"", (int)enc.len,
		    SQLITE_STATIC);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
		    sto_sqlerr(s->db, sqlite3_errcode(s->db), "batches", err);
		sqlite3_finalize(st);
		st = NULL;
		if (rc)
			goto out;
	}
	/* Conflicts this site's own stamped batches lost keep their dots. */
	if ((rc = sto_prep(s->db, "UPDATE wsync_conflicts SET site = ?3, counter = "
	    "counter - ?2 WHERE site = ?1 AND counter > ?2", &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, oldix);
	sqlite3_bind_int64(st, 2, (int64_t)keep);
	sqlite3_bind_int64(st, 3, newix);
	rc = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    sto_sqlerr(s->db, sqlite3_errcode(s->db), "conflicts", err);
	sqlite3_finalize(st);
	st = NULL;
	if (rc || (rc = sto_clock_set(s, oldix, keep, err)) ||
	    (k && (rc = sto_clock_set(s, newix, k, err))) ||
	    (rc = sto_meta_set(s, "site", id.b, WS_SITEID_LEN, 0, err)) ||
	    (rc = sto_meta_set_int(s, "own_sent", 0, err)) ||
	    (rc = sto_exec(s->db, "COMMIT", err)))
		goto out;
	s->site = id;
	s->self = newix;
out:
	if (rc)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(st);
	ws_buf_release(&enc);
	ws_buf_release(&list);
	ws_vclock_release(&ctx);
	ws_vclock_release(&clock);
	return rc;
}

/* "DEV:INODE" of this database's file, into out. */
static int file_id(struct ws_store *s, char *out, size_t n)
{
	const char *path = sqlite3_db_filename(s->db, "main");
	struct stat sb;

	if (!path || !*path || stat(path, &sb) != 0)
		return -1;
	snprintf(out, n, "%llu:%llu", (unsigned long long)sb.st_dev,
	    (unsigned long long)sb.st_ino);
	return 0;
}

int ws_store_check_copy(struct ws_store *s, int *renewed, char *err)
{
	char now[64];
	void *val = NULL;
	size_t n = 0;
	int rc;

	*renewed = 0;
	if (file_id(s, now, sizeof(now)))
		return 0; /* not a file here: nothing to compare */
	if ((rc = sto_meta_get(s, "file", &val, &n, err)))
		return rc;
	if (val && (n != strlen(now) || memcmp(val, now, n) != 0)) {
		/* A copy: what it sealed was sealed before it was copied. */
		if ((rc = ws_store_renew_site(s, UINT64_MAX >> 1, err)))
			goto out;
		*renewed = 1;
	}
	if (!val || *renewed)
		rc = sto_meta_set(s, "file", now, strlen(now), 1, err);
out:
	free(val);
	return rc;
}

int ws_store_own_sent(struct ws_store *s, uint64_t *sent)
{
	void *val = NULL;
	size_t n;
	int known;

	if (sto_meta_get(s, "own_sent", &val, &n, NULL))
		return 0;
	known = val != NULL;
	free(val);
	*sent = known ? (uint64_t)sto_meta_int(s, "own_sent") : 0;
	return known;
}

int ws_store_note_sent(struct ws_store *s, uint64_t counter, char *err)
{
	uint64_t was;

	if (ws_store_own_sent(s, &was) && counter <= was)
		return 0;
	return sto_meta_set_int(s, "own_sent", (int64_t)counter, err);
}

int ws_store_seal(struct ws_store *s, int *sealed, char *err)
{
	int rc;

	if ((rc = sto_exec(s->db, "BEGIN IMMEDIATE", err)))
		return rc;
	if ((rc = sto_seal_locked(s, sealed, err)) || (rc = sto_exec(s->db, "COMMIT", err)))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}
