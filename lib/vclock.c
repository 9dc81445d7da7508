/* SPDX-License-Identifier: MIT */
/*
 * vclock.c - site ids and vector clocks.
 *
 * A clock is a sorted array of (site id, counter) entries with no zero
 * counters, so lookups are binary searches and merge and compare are
 * single linear passes over two sorted arrays.  The binary decoder takes
 * untrusted input: it checks every length and every limit before
 * allocating, and accepts only what the encoder could have produced.
 * The text form is written, never read (json.c reads a clock as a JSON
 * object).  Hex conversion and random ids come from libsodium.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "wsync/vclock.h"

/* Fewest bytes one encoded entry takes: a site id and a 1-byte varint. */
#define ENTRY_MIN_BYTES (WS_SITEID_LEN + 1)

/* WS_VCLOCK_COUNTER_MAX is signed (INT64_MAX); counters are uint64_t. */
#define COUNTER_MAX ((uint64_t)WS_VCLOCK_COUNTER_MAX)

int ws_siteid_cmp(const struct ws_siteid *a, const struct ws_siteid *b)
{
	return memcmp(a->b, b->b, WS_SITEID_LEN);
}

void ws_siteid_hex(const struct ws_siteid *id, char out[WS_SITEID_HEXLEN + 1])
{
	sodium_bin2hex(out, WS_SITEID_HEXLEN + 1, id->b, WS_SITEID_LEN);
}

/* On error id is left unchanged. */
int ws_siteid_parse(struct ws_siteid *id, const char *hex, size_t len)
{
	struct ws_siteid tmp;
	size_t n;

	if (len != WS_SITEID_HEXLEN)
		return WS_EINVAL;
	if (sodium_hex2bin(tmp.b, sizeof tmp.b, hex, len, NULL, &n, NULL) != 0 ||
	    n != WS_SITEID_LEN)
		return WS_EINVAL;
	*id = tmp;
	return 0;
}

void ws_siteid_random(struct ws_siteid *id)
{
	randombytes_buf(id->b, sizeof id->b);
}

void ws_vclock_init(struct ws_vclock *vc)
{
	vc->e = NULL;
	vc->n = vc->cap = 0;
}

void ws_vclock_release(struct ws_vclock *vc)
{
	free(vc->e);
	ws_vclock_init(vc);
}

void ws_vclock_reset(struct ws_vclock *vc)
{
	vc->n = 0;
}

/*
 * Make room for at least `need` entries in total, growing geometrically
 * so that repeated inserts stay amortised O(1) in allocations.  0 or
 * WS_ENOMEM, in which case vc is unchanged.
 */
static int vclock_reserve(struct ws_vclock *vc, size_t need)
{
	struct ws_vclock_entry *e;
	size_t cap;

	if (need <= vc->cap)
		return 0;
	if (need > SIZE_MAX / sizeof *e)
		return WS_ENOMEM;
	cap = vc->cap <= SIZE_MAX / sizeof *e / 2 ? vc->cap * 2 : need;
	if (cap < need)
		cap = need;
	if (cap < 4)
		cap = 4;
	e = realloc(vc->e, cap * sizeof *e);
	if (!e)
		return WS_ENOMEM;
	vc->e = e;
	vc->cap = cap;
	return 0;
}

/*
 * Binary search for site.  Return 1 and its index in *at if it has an
 * entry; otherwise return 0 and, in *at, the index where it would go.
 */
static int vclock_find(const struct ws_vclock *vc, const struct ws_siteid *site,
    size_t *at)
{
	size_t lo = 0, hi = vc->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = ws_siteid_cmp(&vc->e[mid].site, site);
		if (c == 0) {
			*at = mid;
			return 1;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*at = lo;
	return 0;
}

/* Copying a clock onto itself is a no-op. */
int ws_vclock_copy(struct ws_vclock *dst, const struct ws_vclock *src)
{
	if (dst == src)
		return 0;
	if (vclock_reserve(dst, src->n))
		return WS_ENOMEM;
	if (src->n)
		memcpy(dst->e, src->e, src->n * sizeof *src->e);
	dst->n = src->n;
	return 0;
}

uint64_t ws_vclock_get(const struct ws_vclock *vc, const struct ws_siteid *site)
{
	size_t at;

	return vclock_find(vc, site, &at) ? vc->e[at].counter : 0;
}

/* On error vc is unchanged. */
int ws_vclock_set(struct ws_vclock *vc, const struct ws_siteid *site, uint64_t counter)
{
	size_t at;

	if (counter > COUNTER_MAX)
		return WS_ERANGE;
	if (vclock_find(vc, site, &at)) {
		if (counter)
			vc->e[at].counter = counter;
		else
			ws_vclock_remove(vc, site);
		return 0;
	}
	if (counter == 0)
		return 0;
	if (vclock_reserve(vc, vc->n + 1))
		return WS_ENOMEM;
	memmove(vc->e + at + 1, vc->e + at, (vc->n - at) * sizeof *vc->e);
	vc->e[at].site = *site;
	vc->e[at].counter = counter;
	vc->n++;
	return 0;
}

/* On error vc and *out are unchanged. */
int ws_vclock_increment(struct ws_vclock *vc, const struct ws_siteid *site, uint64_t *out)
{
	uint64_t c = ws_vclock_get(vc, site);
	int rc;

	if (c >= COUNTER_MAX)
		return WS_ERANGE;
	if ((rc = ws_vclock_set(vc, site, c + 1)))
		return rc;
	if (out)
		*out = c + 1;
	return 0;
}

/*
 * Count the union of the two site sets, grow dst once, then merge from
 * the back of both arrays into dst's own storage.  Writing backwards is
 * safe in place: k - i is the number of src-only entries still to be
 * placed, so the write index k never falls below the read index i.
 * Merging a clock into itself is a no-op.
 */
void ws_vclock_meet(struct ws_vclock *dst, const struct ws_vclock *src)
{
	size_t i, k;
	uint64_t c;

	for (i = k = 0; i < dst->n; i++) {
		c = ws_vclock_get(src, &dst->e[i].site);
		if (c < dst->e[i].counter)
			dst->e[i].counter = c;
		if (dst->e[i].counter)
			dst->e[k++] = dst->e[i];
	}
	dst->n = k;
}

int ws_vclock_merge(struct ws_vclock *dst, const struct ws_vclock *src)
{
	struct ws_vclock_entry e;
	size_t i, j, k, m;
	int c;

	if (dst == src || src->n == 0)
		return 0;
	m = dst->n + src->n;
	for (i = j = 0; i < dst->n && j < src->n;) {
		c = ws_siteid_cmp(&dst->e[i].site, &src->e[j].site);
		if (c == 0) {
			m--;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	if (vclock_reserve(dst, m))
		return WS_ENOMEM;
	i = dst->n;
	j = src->n;
	k = m;
	while (j > 0) {
		c = i > 0 ? ws_siteid_cmp(&dst->e[i - 1].site, &src->e[j - 1].site) : -1;
		if (c > 0) {
			dst->e[--k] = dst->e[--i];
		} else if (c < 0) {
			dst->e[--k] = src->e[--j];
		} else {
			e = dst->e[--i];
			if (src->e[--j].counter > e.counter)
				e.counter = src->e[j].counter;
			dst->e[--k] = e;
		}
	}
	dst->n = m;
	return 0;
}

/*
 * One pass over both sorted arrays, noting whether some site is ahead in
 * a and whether some site is ahead in b; an entry only one side has is
 * ahead of the missing (zero) one.  Stops early once both are seen.
 */
int ws_vclock_reaches(const struct ws_vclock *a, const struct ws_vclock *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (ws_vclock_get(a, &b->e[i].site) < b->e[i].counter)
			return 0;
	return 1;
}

enum ws_vclock_order ws_vclock_compare(const struct ws_vclock *a, const struct ws_vclock *b)
{
	size_t i = 0, j = 0;
	int a_ahead = 0, b_ahead = 0, c;

	while (i < a->n && j < b->n && !(a_ahead && b_ahead)) {
		c = ws_siteid_cmp(&a->e[i].site, &b->e[j].site);
		if (c < 0) {
			a_ahead = 1;
			i++;
		} else if (c > 0) {
			b_ahead = 1;
			j++;
		} else {
			if (a->e[i].counter > b->e[j].counter)
				a_ahead = 1;
			else if (a->e[i].counter < b->e[j].counter)
				b_ahead = 1;
			i++;
			j++;
		}
	}
	if (i < a->n)
		a_ahead = 1;
	if (j < b->n)
		b_ahead = 1;
	if (a_ahead && b_ahead)
		return WS_VCLOCK_CONCURRENT;
	if (a_ahead)
		return WS_VCLOCK_AFTER;
	if (b_ahead)
		return WS_VCLOCK_BEFORE;
	return WS_VCLOCK_EQUAL;
}

void ws_vclock_remove(struct ws_vclock *vc, const struct ws_siteid *site)
{
	size_t at;

	if (!vclock_find(vc, site, &at))
		return;
	memmove(vc->e + at, vc->e + at + 1, (vc->n - at - 1) * sizeof *vc->e);
	vc->n--;
}

/* A counter of 0 is always seen. */
int ws_vclock_has(const struct ws_vclock *vc, const struct ws_siteid *site, uint64_t counter)
{
	return ws_vclock_get(vc, site) >= counter;
}

/* On error out is unchanged. */
int ws_vclock_encode(const struct ws_vclock *vc, struct ws_buf *out)
{
	size_t start = out->len, i;
	int rc;

	if ((rc = ws_buf_put_varint(out, vc->n)))
		goto out;
	for (i = 0; i < vc->n; i++) {
		if ((rc = ws_buf_append(out, vc->e[i].site.b, WS_SITEID_LEN)) ||
		    (rc = ws_buf_put_varint(out, vc->e[i].counter)))
			goto out;
	}
out:
	if (rc)
		out->len = start;
	return rc;
}

/*
 * The count is checked against WS_VCLOCK_MAX_ENTRIES (WS_ETOOBIG) and
 * against the bytes left in r (WS_ETRUNC: each entry needs at least
 * ENTRY_MIN_BYTES) before anything is allocated, so a forged count
 * costs nothing.  Entry numbers in the detail count from 1; byte offsets
 * are from r->base.  On error vc is empty (it keeps its allocation) and
 * r is back where the clock starts.
 */
int ws_vclock_decode(struct ws_vclock *vc, struct ws_rd *r, char *err)
{
	const uint8_t *start = r->p, *site;
	uint64_t n, i, counter;
	size_t off;
	int rc;

	ws_vclock_reset(vc);
	off = ws_rd_offset(r);
	if ((rc = ws_rd_varint(r, &n))) {
		if (rc == WS_ETRUNC)
			ws_error(err, rc, "vclock at byte %zu: truncated entry count", off);
		else
			ws_error(err, rc, "vclock at byte %zu: bad varint entry count", off);
		goto out;
	}
	if (n > WS_VCLOCK_MAX_ENTRIES) {
		rc = ws_error(err, WS_ETOOBIG, "vclock at byte %zu: %" PRIu64
		    " entries, more than %d", off, n, WS_VCLOCK_MAX_ENTRIES);
		goto out;
	}
	if (n > ws_rd_left(r) / ENTRY_MIN_BYTES) {
		rc = ws_error(err, WS_ETRUNC, "vclock at byte %zu: %" PRIu64
		    " entries need at least %" PRIu64 " bytes, %zu left", off, n,
		    n * ENTRY_MIN_BYTES, ws_rd_left(r));
		goto out;
	}
	if ((rc = vclock_reserve(vc, (size_t)n))) {
		ws_error(err, rc, "vclock at byte %zu: out of memory for %" PRIu64
		    " entries", off, n);
		goto out;
	}
	for (i = 0; i < n; i++) {
		off = ws_rd_offset(r);
		if ((rc = ws_rd_raw(r, WS_SITEID_LEN, &site))) {
			ws_error(err, rc, "vclock entry %" PRIu64 " at byte %zu: "
			    "truncated site id", i + 1, off);
			goto out;
		}
		if (i > 0) {
			int c = memcmp(site, vc->e[i - 1].site.b, WS_SITEID_LEN);

			if (c <= 0) {
				rc = ws_error(err, WS_ECORRUPT, "vclock entry %" PRIu64
				    " at byte %zu: %s site id", i + 1, off,
				    c == 0 ? "duplicate" : "out-of-order");
				goto out;
			}
		}
		off = ws_rd_offset(r);
		if ((rc = ws_rd_varint(r, &counter))) {
			if (rc == WS_ETRUNC)
				ws_error(err, rc, "vclock entry %" PRIu64 " at byte %zu: "
				    "truncated counter", i + 1, off);
			else
				ws_error(err, rc, "vclock entry %" PRIu64 " at byte %zu: "
				    "bad varint counter", i + 1, off);
			goto out;
		}
		if (counter == 0) {
			rc = ws_error(err, WS_ECORRUPT, "vclock entry %" PRIu64
			    " at byte %zu: zero counter", i + 1, off);
			goto out;
		}
		if (counter > COUNTER_MAX) {
			rc = ws_error(err, WS_ERANGE, "vclock entry %" PRIu64
			    " at byte %zu: counter %" PRIu64 " above %" PRId64,
			    i + 1, off, counter, WS_VCLOCK_COUNTER_MAX);
			goto out;
		}
		memcpy(vc->e[i].site.b, site, WS_SITEID_LEN);
		vc->e[i].counter = counter;
		vc->n++;
	}
out:
	if (rc) {
		ws_vclock_reset(vc);
		r->p = start;
	}
	return rc;
}

int ws_vclock_decode_all(struct ws_vclock *vc, const uint8_t *p, size_t n, char *err)
{
	struct ws_rd r;
	int rc;

	ws_rd_init(&r, p, n);
	if ((rc = ws_vclock_decode(vc, &r, err)))
		return rc;
	if (ws_rd_left(&r)) {
		ws_vclock_reset(vc);
		return ws_error(err, WS_ECORRUPT, "vclock: %zu trailing bytes at byte %zu",
		    ws_rd_left(&r), ws_rd_offset(&r));
	}
	return 0;
}

/* On error out is unchanged. */
int ws_vclock_format(const struct ws_vclock *vc, struct ws_buf *out)
{
	char hex[WS_SITEID_HEXLEN + 1];
	size_t start = out->len, i;
	int rc = 0;

	for (i = 0; i < vc->n; i++) {
		ws_siteid_hex(&vc->e[i].site, hex);
		if ((rc = ws_buf_printf(out, "%s%s:%" PRIu64, i ? "," : "", hex,
		    vc->e[i].counter)))
			goto out;
	}
out:
	if (rc)
		out->len = start;
	return rc;
}
