/* SPDX-License-Identifier: MIT */
/*
 * test_vclock.c - unit tests for site ids and vector clocks (vclock.c).
 *
 * Randomised tests check the operations against a plain array model over
 * a small pool of site ids (so that sites collide often), the algebraic
 * laws of merge and compare, byte-exact encode/decode round trips, a
 * golden wire vector (tests/data/vclock-2.bin, or $WS_TEST_DATA), every
 * truncation and random corruption of encodings, and the text form
 * (written for messages, never read: JSON lines carry a clock as an
 * object, tested in test_json.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "harness.h"
#include "wsync/vclock.h"

#define NPOOL 12
#define MAXC WS_VCLOCK_COUNTER_MAX

static struct ws_siteid pool[NPOOL];

/* The golden clock: site 00..0f at 1, site f0..ff at 300. */
static const uint8_t golden[] = {
	0x02,
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x01,
	0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7,
	0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
	0xac, 0x02,
};
static const char golden_text[] =
    "000102030405060708090a0b0c0d0e0f:1,f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff:300";

/*
 * Fixed pool of sites: some random-looking, some differing from another
 * only in the last byte or in the low nibble of the first byte, and the
 * all-zero and all-ones ids at the ends of the order.
 */
static void pool_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	int i, k;

	for (i = 0; i < NPOOL; i++) {
		for (k = 0; k < WS_SITEID_LEN; k++) {
			x ^= x >> 31;
			x *= 0xbf58476d1ce4e5b9ull;
			x ^= x >> 29;
			pool[i].b[k] = (uint8_t)x;
		}
	}
	pool[1] = pool[0];
	pool[1].b[15] ^= 1;
	pool[2] = pool[0];
	pool[2].b[0] ^= 0x01;
	memset(pool[3].b, 0, WS_SITEID_LEN);
	memset(pool[4].b, 0xff, WS_SITEID_LEN);
}

static void site_seq(struct ws_siteid *s, uint8_t first)
{
	int k;

	for (k = 0; k < WS_SITEID_LEN; k++)
		s->b[k] = (uint8_t)(first + k);
}

static void site_rand(struct ws_siteid *s)
{
	uint64_t a = t_rand(), b = t_rand();

	memcpy(s->b, &a, 8);
	memcpy(s->b + 8, &b, 8);
}

/* A counter: mostly tiny (so equal counters are common), sometimes huge. */
static uint64_t rand_counter(void)
{
	switch (t_below(8)) {
	case 0:
		return MAXC - t_below(3);
	case 1:
		return 1 + t_below(MAXC);
	case 2:
		return 1 + t_below(1u << 20);
	default:
		return 1 + t_below(4);
	}
}

/* Sorted, no zero counters, counters in range, n <= cap. */
static int well_formed(const struct ws_vclock *vc)
{
	size_t i;

	if (vc->n > vc->cap || (vc->n && !vc->e))
		return 0;
	for (i = 0; i < vc->n; i++) {
		if (vc->e[i].counter == 0 || vc->e[i].counter > MAXC)
			return 0;
		if (i && ws_siteid_cmp(&vc->e[i - 1].site, &vc->e[i].site) >= 0)
			return 0;
	}
	return 1;
}

static int clock_eq(const struct ws_vclock *a, const struct ws_vclock *b)
{
	size_t i;

	if (a->n != b->n)
		return 0;
	for (i = 0; i < a->n; i++) {
		if (ws_siteid_cmp(&a->e[i].site, &b->e[i].site) != 0 ||
		    a->e[i].counter != b->e[i].counter)
			return 0;
	}
	return 1;
}

/* Random clock over the pool; model m[] receives the counters. */
static void rand_pool_clock(struct ws_vclock *vc, uint64_t m[NPOOL])
{
	int i;

	ws_vclock_reset(vc);
	for (i = 0; i < NPOOL; i++) {
		m[i] = t_below(2) ? rand_counter() : 0;
		CHECK_INT(ws_vclock_set(vc, &pool[i], m[i]), 0);
	}
}

/* Random clock of up to maxn random sites. */
static void rand_big_clock(struct ws_vclock *vc, size_t maxn)
{
	struct ws_siteid s;
	size_t i, n = t_below(maxn + 1);

	ws_vclock_reset(vc);
	for (i = 0; i < n; i++) {
		site_rand(&s);
		CHECK_INT(ws_vclock_set(vc, &s, rand_counter()), 0);
	}
}

static int matches_model(const struct ws_vclock *vc, const uint64_t m[NPOOL])
{
	size_t i, nz = 0;

	for (i = 0; i < NPOOL; i++) {
		if (ws_vclock_get(vc, &pool[i]) != m[i])
			return 0;
		nz += m[i] != 0;
	}
	return vc->n == nz && well_formed(vc);
}

static void golden_clock(struct ws_vclock *vc)
{
	struct ws_siteid a, b;

	site_seq(&a, 0x00);
	site_seq(&b, 0xf0);
	ws_vclock_reset(vc);
	/* Insert out of order: the clock sorts. */
	CHECK_INT(ws_vclock_set(vc, &b, 300), 0);
	CHECK_INT(ws_vclock_set(vc, &a, 1), 0);
}

/* A detail message: non-empty, lowercase first, no final period. */
static int good_msg(const char *err)
{
	size_t n = strlen(err);

	return n > 0 && !(err[0] >= 'A' && err[0] <= 'Z') && err[n - 1] != '.';
}

TEST(test_siteid)
{
	struct ws_siteid a, b, c;
	char hex[WS_SITEID_HEXLEN + 1];
	int i;

	site_seq(&a, 0x00);
	ws_siteid_hex(&a, hex);
	CHECK_STR(hex, "000102030405060708090a0b0c0d0e0f");
	site_seq(&a, 0xa0);
	ws_siteid_hex(&a, hex);
	CHECK_STR(hex, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");

	CHECK_INT(ws_siteid_parse(&b, "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF", 32), 0);
	CHECK(ws_siteid_cmp(&a, &b) == 0);
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 32), 0);
	CHECK(ws_siteid_cmp(&a, &b) == 0);

	/* Failures leave the id alone. */
	b = a;
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7a8a9aaabacadaea", 31), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0", 33), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "g0a1a2a3a4a5a6a7a8a9aaabacadaeaf", 32), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7a8a9aaabacadae f", 32), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7\0a9aaabacadaeaf", 32), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "0xa1a2a3a4a5a6a7a8a9aaabacadaeaf", 32), WS_EINVAL);
	CHECK_INT(ws_siteid_parse(&b, "", 0), WS_EINVAL);
	CHECK(ws_siteid_cmp(&a, &b) == 0);
	/* Only len digits are read: a longer string is fine. */
	CHECK_INT(ws_siteid_parse(&b, "a0a1a2a3a4a5a6a7a8a9aaabacadaeafXYZ", 32), 0);
	CHECK(ws_siteid_cmp(&a, &b) == 0);

	/* memcmp order: the first byte dominates. */
	memset(a.b, 0xff, 16);
	a.b[0] = 0x00;
	memset(b.b, 0x00, 16);
	b.b[0] = 0x01;
	CHECK(ws_siteid_cmp(&a, &b) < 0);
	CHECK(ws_siteid_cmp(&b, &a) > 0);
	b = a;
	b.b[15] = 0xfe;
	CHECK(ws_siteid_cmp(&b, &a) < 0);

	for (i = 0; i < 2000; i++) {
		site_rand(&a);
		ws_siteid_hex(&a, hex);
		CHECK_INT(strlen(hex), 32);
		CHECK(strspn(hex, "0123456789abcdef") == 32);
		CHECK_INT(ws_siteid_parse(&b, hex, 32), 0);
		CHECK(ws_siteid_cmp(&a, &b) == 0);
		site_rand(&c);
		CHECK((ws_siteid_cmp(&a, &c) > 0) == (memcmp(a.b, c.b, 16) > 0));
		CHECK((ws_siteid_cmp(&a, &c) < 0) == (memcmp(a.b, c.b, 16) < 0));
	}

	ws_siteid_random(&a);
	ws_siteid_random(&b);
	CHECK(ws_siteid_cmp(&a, &b) != 0);
	memset(c.b, 0, 16);
	CHECK(ws_siteid_cmp(&a, &c) != 0);
}

TEST(test_set_get)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_siteid s = pool[5], t = pool[6];

	CHECK_INT(ws_vclock_get(&vc, &s), 0);
	CHECK(ws_vclock_has(&vc, &s, 0));
	CHECK(!ws_vclock_has(&vc, &s, 1));
	ws_vclock_remove(&vc, &s);
	CHECK_INT(vc.n, 0);
	CHECK_INT(ws_vclock_set(&vc, &s, 0), 0);
	CHECK_INT(vc.n, 0);

	CHECK_INT(ws_vclock_set(&vc, &s, 7), 0);
	CHECK_INT(ws_vclock_get(&vc, &s), 7);
	CHECK_INT(ws_vclock_get(&vc, &t), 0);
	CHECK(ws_vclock_has(&vc, &s, 7));
	CHECK(ws_vclock_has(&vc, &s, 6));
	CHECK(!ws_vclock_has(&vc, &s, 8));
	CHECK(ws_vclock_has(&vc, &t, 0));

	CHECK_INT(ws_vclock_set(&vc, &s, 3), 0); /* set may lower */
	CHECK_INT(ws_vclock_get(&vc, &s), 3);
	CHECK_INT(ws_vclock_set(&vc, &s, MAXC), 0);
	CHECK(ws_vclock_get(&vc, &s) == (uint64_t)MAXC);
	CHECK_INT(ws_vclock_set(&vc, &s, (uint64_t)MAXC + 1), WS_ERANGE);
	CHECK_INT(ws_vclock_set(&vc, &t, UINT64_MAX), WS_ERANGE);
	CHECK(ws_vclock_get(&vc, &s) == (uint64_t)MAXC);
	CHECK_INT(vc.n, 1);

	CHECK_INT(ws_vclock_set(&vc, &t, 1), 0);
	CHECK_INT(vc.n, 2);
	CHECK(well_formed(&vc));
	CHECK_INT(ws_vclock_set(&vc, &s, 0), 0); /* 0 removes */
	CHECK_INT(vc.n, 1);
	CHECK_INT(ws_vclock_get(&vc, &s), 0);
	CHECK_INT(ws_vclock_get(&vc, &t), 1);
	ws_vclock_remove(&vc, &t);
	CHECK_INT(vc.n, 0);
	ws_vclock_remove(&vc, &t);
	CHECK_INT(vc.n, 0);

	ws_vclock_release(&vc);
	CHECK(vc.e == NULL && vc.n == 0 && vc.cap == 0);
	ws_vclock_release(&vc); /* twice is fine */
}

TEST(test_increment)
{
	struct ws_vclock vc;
	uint64_t out = 0;
	int i;

	ws_vclock_init(&vc);
	CHECK_INT(ws_vclock_increment(&vc, &pool[0], &out), 0);
	CHECK_INT(out, 1);
	CHECK_INT(ws_vclock_increment(&vc, &pool[0], NULL), 0);
	CHECK_INT(ws_vclock_get(&vc, &pool[0]), 2);
	for (i = 0; i < 100; i++)
		CHECK_INT(ws_vclock_increment(&vc, &pool[1], &out), 0);
	CHECK_INT(out, 100);
	CHECK_INT(ws_vclock_get(&vc, &pool[1]), 100);

	CHECK_INT(ws_vclock_set(&vc, &pool[0], MAXC - 1), 0);
	CHECK_INT(ws_vclock_increment(&vc, &pool[0], &out), 0);
	CHECK(out == (uint64_t)MAXC);
	out = 42;
	CHECK_INT(ws_vclock_increment(&vc, &pool[0], &out), WS_ERANGE);
	CHECK_INT(out, 42); /* untouched on error */
	CHECK(ws_vclock_get(&vc, &pool[0]) == (uint64_t)MAXC);
	CHECK_INT(ws_vclock_increment(&vc, &pool[0], NULL), WS_ERANGE);
	CHECK(ws_vclock_get(&vc, &pool[0]) == (uint64_t)MAXC);
	CHECK_INT(vc.n, 2);
	CHECK(well_formed(&vc));
	ws_vclock_release(&vc);
}

/* Random set/increment/remove/get/has against an array model. */
TEST(test_ops_vs_model)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	uint64_t m[NPOOL] = {0}, c, out;
	int i, k, rc;

	for (i = 0; i < 20000; i++) {
		k = (int)t_below(NPOOL);
		switch (t_below(6)) {
		case 0:
			c = t_below(4) ? rand_counter() : 0;
			if (t_below(20) == 0)
				c = (uint64_t)MAXC + 1 + t_below(1000);
			rc = ws_vclock_set(&vc, &pool[k], c);
			if (c > (uint64_t)MAXC) {
				CHECK_INT(rc, WS_ERANGE);
			} else {
				CHECK_INT(rc, 0);
				m[k] = c;
			}
			break;
		case 1:
		case 2:
			out = 12345;
			rc = ws_vclock_increment(&vc, &pool[k], &out);
			if (m[k] == (uint64_t)MAXC) {
				CHECK_INT(rc, WS_ERANGE);
				CHECK_INT(out, 12345);
			} else {
				CHECK_INT(rc, 0);
				m[k]++;
				CHECK(out == m[k]);
			}
			break;
		case 3:
			ws_vclock_remove(&vc, &pool[k]);
			m[k] = 0;
			break;
		case 4:
			c = m[k] + t_below(3) - 1;
			if (m[k] == 0)
				c = t_below(2);
			CHECK(ws_vclock_has(&vc, &pool[k], c) == (m[k] >= c));
			break;
		default:
			CHECK(ws_vclock_get(&vc, &pool[k]) == m[k]);
			break;
		}
		CHECK(matches_model(&vc, m));
		if (t_below(500) == 0) {
			ws_vclock_reset(&vc);
			memset(m, 0, sizeof m);
		}
	}
	ws_vclock_release(&vc);
}

TEST(test_copy_clear)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT;
	uint64_t m[NPOOL], m2[NPOOL];
	size_t cap;
	int i;

	for (i = 0; i < 500; i++) {
		rand_pool_clock(&a, m);
		rand_pool_clock(&b, m2);
		CHECK_INT(ws_vclock_copy(&b, &a), 0);
		CHECK(clock_eq(&a, &b));
		CHECK(matches_model(&b, m));
		CHECK_INT(ws_vclock_copy(&a, &a), 0);
		CHECK(matches_model(&a, m));
	}
	cap = a.cap;
	ws_vclock_reset(&a);
	CHECK_INT(a.n, 0);
	CHECK_INT(a.cap, cap);
	CHECK_INT(ws_vclock_copy(&b, &a), 0);
	CHECK_INT(b.n, 0);
	ws_vclock_release(&a);
	ws_vclock_release(&b);
}

/* Merge is commutative, associative, idempotent and the pointwise max. */
TEST(test_merge_laws)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT, c = WS_VCLOCK_INIT;
	struct ws_vclock ab = WS_VCLOCK_INIT, ba = WS_VCLOCK_INIT, x = WS_VCLOCK_INIT,
	    y = WS_VCLOCK_INIT, e = WS_VCLOCK_INIT;
	uint64_t ma[NPOOL], mb[NPOOL], mc[NPOOL], mx[NPOOL];
	int i, k;

	for (i = 0; i < 3000; i++) {
		rand_pool_clock(&a, ma);
		rand_pool_clock(&b, mb);
		rand_pool_clock(&c, mc);

		CHECK_INT(ws_vclock_copy(&ab, &a), 0);
		CHECK_INT(ws_vclock_merge(&ab, &b), 0);
		CHECK_INT(ws_vclock_copy(&ba, &b), 0);
		CHECK_INT(ws_vclock_merge(&ba, &a), 0);
		CHECK(clock_eq(&ab, &ba));
		for (k = 0; k < NPOOL; k++)
			mx[k] = ma[k] > mb[k] ? ma[k] : mb[k];
		CHECK(matches_model(&ab, mx));

		/* (a ∨ b) ∨ c == a ∨ (b ∨ c) */
		CHECK_INT(ws_vclock_copy(&x, &ab), 0);
		CHECK_INT(ws_vclock_merge(&x, &c), 0);
		CHECK_INT(ws_vclock_copy(&y, &b), 0);
		CHECK_INT(ws_vclock_merge(&y, &c), 0);
		CHECK_INT(ws_vclock_merge(&y, &a), 0);
		CHECK(clock_eq(&x, &y));
		CHECK(well_formed(&x));

		/* a ∨ a == a, a ∨ (a ∨ b) == a ∨ b, a ∨ 0 == 0 ∨ a == a */
		CHECK_INT(ws_vclock_copy(&x, &a), 0);
		CHECK_INT(ws_vclock_merge(&x, &a), 0);
		CHECK(clock_eq(&x, &a));
		CHECK_INT(ws_vclock_merge(&x, &x), 0);
		CHECK(clock_eq(&x, &a));
		CHECK_INT(ws_vclock_merge(&x, &ab), 0);
		CHECK(clock_eq(&x, &ab));
		CHECK_INT(ws_vclock_merge(&x, &e), 0);
		CHECK(clock_eq(&x, &ab));
		ws_vclock_reset(&y);
		CHECK_INT(ws_vclock_merge(&y, &a), 0);
		CHECK(clock_eq(&y, &a));
	}
	/* Larger clocks of random sites, merged in place and growing. */
	for (i = 0; i < 500; i++) {
		rand_big_clock(&a, 60);
		rand_big_clock(&b, 60);
		CHECK_INT(ws_vclock_copy(&ab, &a), 0);
		CHECK_INT(ws_vclock_merge(&ab, &b), 0);
		CHECK_INT(ws_vclock_copy(&ba, &b), 0);
		CHECK_INT(ws_vclock_merge(&ba, &a), 0);
		CHECK(clock_eq(&ab, &ba));
		CHECK(well_formed(&ab));
		CHECK_INT(ab.n, a.n + b.n); /* random sites never collide */
		for (k = 0; k < (int)a.n; k++)
			CHECK(ws_vclock_get(&ab, &a.e[k].site) == a.e[k].counter);
	}
	ws_vclock_release(&a);
	ws_vclock_release(&b);
	ws_vclock_release(&c);
	ws_vclock_release(&ab);
	ws_vclock_release(&ba);
	ws_vclock_release(&x);
	ws_vclock_release(&y);
}

static enum ws_vclock_order model_order(const uint64_t a[NPOOL], const uint64_t b[NPOOL])
{
	int lt = 0, gt = 0, k;

	for (k = 0; k < NPOOL; k++) {
		lt |= a[k] < b[k];
		gt |= a[k] > b[k];
	}
	return lt && gt ? WS_VCLOCK_CONCURRENT : lt ? WS_VCLOCK_BEFORE :
	    gt ? WS_VCLOCK_AFTER : WS_VCLOCK_EQUAL;
}

static enum ws_vclock_order mirror(enum ws_vclock_order o)
{
	return o == WS_VCLOCK_BEFORE ? WS_VCLOCK_AFTER :
	    o == WS_VCLOCK_AFTER ? WS_VCLOCK_BEFORE : o;
}

/* Compare agrees with the model and with merge. */
TEST(test_compare_laws)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT, ab = WS_VCLOCK_INIT,
	    e = WS_VCLOCK_INIT;
	uint64_t ma[NPOOL], mb[NPOOL];
	enum ws_vclock_order o;
	int i, k, eq, counts[4] = {0};

	for (i = 0; i < 6000; i++) {
		rand_pool_clock(&a, ma);
		if (t_below(4) == 0) {
			/* b near a: a few entries nudged, so EQUAL/BEFORE/AFTER happen. */
			memcpy(mb, ma, sizeof mb);
			for (k = (int)t_below(3); k > 0; k--) {
				int s = (int)t_below(NPOOL);

				mb[s] = t_below(2) && mb[s] ? mb[s] - 1 :
				    mb[s] < (uint64_t)MAXC ? mb[s] + 1 : mb[s];
			}
			ws_vclock_reset(&b);
			for (k = 0; k < NPOOL; k++)
				CHECK_INT(ws_vclock_set(&b, &pool[k], mb[k]), 0);
		} else {
			rand_pool_clock(&b, mb);
		}
		o = ws_vclock_compare(&a, &b);
		CHECK_INT(o, model_order(ma, mb));
		CHECK_INT(ws_vclock_compare(&b, &a), mirror(o));
		CHECK_INT(ws_vclock_compare(&a, &a), WS_VCLOCK_EQUAL);
		counts[o]++;

		CHECK_INT(ws_vclock_copy(&ab, &a), 0);
		CHECK_INT(ws_vclock_merge(&ab, &b), 0);
		eq = clock_eq(&a, &b);
		CHECK((o == WS_VCLOCK_EQUAL) == eq);
		CHECK((o == WS_VCLOCK_BEFORE) == (clock_eq(&ab, &b) && !eq));
		CHECK((o == WS_VCLOCK_AFTER) == (clock_eq(&ab, &a) && !eq));
		CHECK((o == WS_VCLOCK_CONCURRENT) ==
		    (!clock_eq(&ab, &a) && !clock_eq(&ab, &b)));
		/* a <= a ∨ b and b <= a ∨ b */
		o = ws_vclock_compare(&a, &ab);
		CHECK(o == WS_VCLOCK_EQUAL || o == WS_VCLOCK_BEFORE);
		o = ws_vclock_compare(&ab, &b);
		CHECK(o == WS_VCLOCK_EQUAL || o == WS_VCLOCK_AFTER);
		/* The empty clock is below every non-empty clock. */
		CHECK_INT(ws_vclock_compare(&e, &a), a.n ? WS_VCLOCK_BEFORE : WS_VCLOCK_EQUAL);
	}
	/* Every outcome was exercised. */
	for (k = 0; k < 4; k++)
		CHECK(counts[k] > 100);

	/* A missing entry counts as 0. */
	ws_vclock_reset(&a);
	ws_vclock_reset(&b);
	CHECK_INT(ws_vclock_set(&a, &pool[0], 1), 0);
	CHECK_INT(ws_vclock_compare(&a, &b), WS_VCLOCK_AFTER);
	CHECK_INT(ws_vclock_set(&b, &pool[1], 1), 0);
	CHECK_INT(ws_vclock_compare(&a, &b), WS_VCLOCK_CONCURRENT);
	CHECK_INT(ws_vclock_set(&b, &pool[0], 1), 0);
	CHECK_INT(ws_vclock_compare(&a, &b), WS_VCLOCK_BEFORE);
	CHECK_INT(ws_vclock_set(&a, &pool[1], 2), 0);
	CHECK_INT(ws_vclock_compare(&a, &b), WS_VCLOCK_AFTER);
	CHECK_INT(ws_vclock_set(&a, &pool[1], 1), 0);
	CHECK_INT(ws_vclock_compare(&a, &b), WS_VCLOCK_EQUAL);
	CHECK_INT(ws_vclock_compare(&e, &e), WS_VCLOCK_EQUAL);
	ws_vclock_release(&a);
	ws_vclock_release(&b);
	ws_vclock_release(&ab);
}

/* meet is the pointwise minimum; reaches is >= everywhere; both against a model. */
TEST(test_meet_reaches)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT;
	uint64_t ma[NPOOL], mb[NPOOL];
	enum ws_vclock_order o;
	int i, k, ge;

	for (i = 0; i < 4000; i++) {
		rand_pool_clock(&a, ma);
		rand_pool_clock(&b, mb);
		ge = 1;
		for (k = 0; k < NPOOL; k++)
			ge &= ma[k] >= mb[k];
		CHECK_INT(ws_vclock_reaches(&a, &b), ge);
		o = ws_vclock_compare(&b, &a);
		CHECK_INT(ws_vclock_reaches(&a, &b), o == WS_VCLOCK_EQUAL ||
		    o == WS_VCLOCK_BEFORE);
		ws_vclock_meet(&a, &b);
		for (k = 0; k < NPOOL; k++)
			CHECK(ws_vclock_get(&a, &pool[k]) == (ma[k] < mb[k] ? ma[k] : mb[k]));
		/* No zero entries are kept. */
		for (k = 0; k < (int)a.n; k++)
			CHECK(a.e[k].counter > 0);
		CHECK(ws_vclock_reaches(&b, &a));
	}
	ws_vclock_release(&a);
	ws_vclock_release(&b);
}

TEST(test_encode_golden)
{
	struct ws_vclock vc = WS_VCLOCK_INIT, back = WS_VCLOCK_INIT;
	struct ws_buf b = WS_BUF_INIT;
	static const uint8_t empty[] = {0x00};
	static const uint8_t max1[] = {
		0x01,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
	};
	const char *dir = getenv("WS_TEST_DATA");
	char path[512], err[WS_ERRLEN];
	uint8_t *file;
	size_t n = 0;

	golden_clock(&vc);
	CHECK_INT(ws_vclock_encode(&vc, &b), 0);
	CHECK_MEM(b.p, b.len, golden, sizeof golden);
	CHECK_INT(ws_vclock_decode_all(&back, golden, sizeof golden, err), 0);
	CHECK(clock_eq(&vc, &back));

	snprintf(path, sizeof path, "%s/vclock-2.bin", dir && *dir ? dir : "tests/data");
	file = t_read_file(path, &n);
	CHECK(file != NULL);
	if (file)
		CHECK_MEM(file, n, golden, sizeof golden);
	else
		fprintf(stderr, "cannot read '%s' (run from the top of the tree "
		    "or set WS_TEST_DATA)\n", path);
	free(file);

	/* Encoding appends. */
	b.len = 0;
	CHECK_INT(ws_buf_putc(&b, 0x55), 0);
	ws_vclock_reset(&vc);
	CHECK_INT(ws_vclock_encode(&vc, &b), 0);
	CHECK_MEM(b.p + 1, b.len - 1, empty, sizeof empty);
	CHECK_INT(b.p[0], 0x55);

	b.len = 0;
	CHECK_INT(ws_vclock_set(&vc, &pool[4], MAXC), 0); /* pool[4] is all ones */
	CHECK_INT(ws_vclock_encode(&vc, &b), 0);
	CHECK_MEM(b.p, b.len, max1, sizeof max1);
	CHECK_INT(ws_vclock_decode_all(&back, max1, sizeof max1, err), 0);
	CHECK(clock_eq(&vc, &back));

	ws_buf_release(&b);
	ws_vclock_release(&vc);
	ws_vclock_release(&back);
}

/* An exact-size heap copy, so ASan sees any read past the end. */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

TEST(test_roundtrip)
{
	struct ws_vclock a = WS_VCLOCK_INIT, b = WS_VCLOCK_INIT, c = WS_VCLOCK_INIT;
	struct ws_buf x = WS_BUF_INIT, y = WS_BUF_INIT;
	struct ws_rd r;
	char err[WS_ERRLEN];
	uint8_t *p;
	size_t alen;
	int i;

	for (i = 0; i < 3000; i++) {
		rand_big_clock(&a, i % 10 == 0 ? 300 : 20);
		rand_big_clock(&b, 5);
		x.len = y.len = 0;
		CHECK_INT(ws_vclock_encode(&a, &x), 0);
		alen = x.len;
		p = dup_exact(x.p, x.len);
		CHECK_INT(ws_vclock_decode_all(&c, p, alen, err), 0);
		CHECK(clock_eq(&a, &c));
		CHECK(well_formed(&c));
		CHECK_INT(ws_vclock_encode(&c, &y), 0);
		CHECK_MEM(y.p, y.len, x.p, x.len);
		free(p);

		/* Two clocks back to back through one cursor. */
		CHECK_INT(ws_vclock_encode(&b, &x), 0);
		ws_rd_init(&r, x.p, x.len);
		CHECK_INT(ws_vclock_decode(&c, &r, err), 0);
		CHECK(clock_eq(&a, &c));
		CHECK_INT(ws_rd_offset(&r), alen);
		CHECK_INT(ws_vclock_decode(&c, &r, err), 0);
		CHECK(clock_eq(&b, &c));
		CHECK_INT(ws_rd_left(&r), 0);

		/* decode_all rejects the trailing second clock. */
		CHECK_INT(ws_vclock_decode_all(&c, x.p, x.len, err), WS_ECORRUPT);
		CHECK_INT(c.n, 0);
		CHECK(good_msg(err));
	}
	ws_buf_release(&x);
	ws_buf_release(&y);
	ws_vclock_release(&a);
	ws_vclock_release(&b);
	ws_vclock_release(&c);
}

/* Every proper prefix of a valid encoding is WS_ETRUNC. */
TEST(test_truncation)
{
	struct ws_vclock a = WS_VCLOCK_INIT, c = WS_VCLOCK_INIT;
	struct ws_buf x = WS_BUF_INIT;
	struct ws_rd r;
	char err[WS_ERRLEN];
	uint8_t *p;
	size_t len;
	int i;

	for (i = 0; i < 300; i++) {
		x.len = 0;
		if (i == 0)
			golden_clock(&a);
		else
			rand_big_clock(&a, i % 30 == 0 ? 200 : 12);
		CHECK_INT(ws_vclock_encode(&a, &x), 0);
		for (len = 0; len < x.len; len++) {
			p = dup_exact(x.p, len);
			CHECK_INT(ws_vclock_set(&c, &pool[0], 1), 0); /* must be emptied */
			err[0] = '\0';
			CHECK_INT(ws_vclock_decode_all(&c, p, len, err), WS_ETRUNC);
			CHECK_INT(c.n, 0);
			CHECK(good_msg(err));
			ws_rd_init(&r, p, len);
			CHECK_INT(ws_vclock_decode(&c, &r, NULL), WS_ETRUNC);
			CHECK(r.p == p); /* cursor back at the start */
			free(p);
		}
	}
	ws_buf_release(&x);
	ws_vclock_release(&a);
	ws_vclock_release(&c);
}

/* Build an encoding by hand: count, then (site, counter) pairs. */
static void put_entry(struct ws_buf *b, const struct ws_siteid *s, uint64_t c)
{
	CHECK_INT(ws_buf_append(b, s->b, WS_SITEID_LEN), 0);
	CHECK_INT(ws_buf_put_varint(b, c), 0);
}

static int decode_buf(struct ws_vclock *vc, const struct ws_buf *b, char *err)
{
	uint8_t *p = dup_exact(b->p, b->len);
	int rc;

	err[0] = '\0';
	CHECK_INT(ws_vclock_set(vc, &pool[7], 9), 0); /* must be emptied on error */
	rc = ws_vclock_decode_all(vc, p, b->len, err);
	free(p);
	if (rc) {
		CHECK_INT(vc->n, 0);
		CHECK(good_msg(err));
	}
	return rc;
}

TEST(test_decode_corrupt)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_buf b = WS_BUF_INIT;
	struct ws_siteid lo, hi;
	char err[WS_ERRLEN];

	site_seq(&lo, 0x10);
	site_seq(&hi, 0x20);

	/* The valid baseline. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 2), 0);
	put_entry(&b, &lo, 5);
	put_entry(&b, &hi, 6);
	CHECK_INT(decode_buf(&vc, &b, err), 0);
	CHECK_INT(vc.n, 2);

	/* Unsorted. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 2), 0);
	put_entry(&b, &hi, 5);
	put_entry(&b, &lo, 6);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	CHECK(strstr(err, "entry 2 at byte 18") != NULL);

	/* Duplicate. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 2), 0);
	put_entry(&b, &lo, 5);
	put_entry(&b, &lo, 6);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	CHECK(strstr(err, "duplicate") != NULL);

	/* Zero counter, first and later entries. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	put_entry(&b, &lo, 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	CHECK(strstr(err, "zero counter") != NULL);
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 2), 0);
	put_entry(&b, &lo, 1);
	put_entry(&b, &hi, 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);

	/* Counter above 2^63-1: 2^63 and 2^64-1. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	put_entry(&b, &lo, (uint64_t)MAXC + 1);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ERANGE);
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	put_entry(&b, &lo, UINT64_MAX);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ERANGE);
	/* ...but exactly 2^63-1 is fine. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	put_entry(&b, &lo, MAXC);
	CHECK_INT(decode_buf(&vc, &b, err), 0);

	/* Non-minimal count: 1 as 81 00, 0 as 80 00. */
	b.len = 0;
	CHECK_INT(ws_buf_append(&b, "\x81\x00", 2), 0);
	put_entry(&b, &lo, 1);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	b.len = 0;
	CHECK_INT(ws_buf_append(&b, "\x80\x00", 2), 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);

	/* Non-minimal counter: 5 as 85 00, 1 as 81 80 00. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	CHECK_INT(ws_buf_append(&b, lo.b, 16), 0);
	CHECK_INT(ws_buf_append(&b, "\x85\x00", 2), 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	CHECK(strstr(err, "byte 17") != NULL);
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	CHECK_INT(ws_buf_append(&b, lo.b, 16), 0);
	CHECK_INT(ws_buf_append(&b, "\x81\x80\x00", 3), 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);

	/* Over-long counter varint (11 bytes). */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	CHECK_INT(ws_buf_append(&b, lo.b, 16), 0);
	CHECK_INT(ws_buf_append(&b, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11), 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);

	/* Trailing byte after a valid clock. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 1), 0);
	put_entry(&b, &lo, 1);
	CHECK_INT(ws_buf_putc(&b, 0), 0);
	CHECK_INT(decode_buf(&vc, &b, err), WS_ECORRUPT);
	CHECK(strstr(err, "trailing") != NULL);

	/* A NULL detail buffer is fine. */
	CHECK_INT(ws_vclock_decode_all(&vc, b.p, b.len, NULL), WS_ECORRUPT);
	CHECK_INT(ws_vclock_decode_all(&vc, b.p, 3, NULL), WS_ETRUNC);

	ws_buf_release(&b);
	ws_vclock_release(&vc);
}

/*
 * Counts beyond the limit, or beyond what the bytes could hold, fail
 * before anything is allocated: a fresh clock still owns no memory.
 */
TEST(test_decode_huge_count)
{
	static const uint64_t toobig[] = {
		WS_VCLOCK_MAX_ENTRIES + 1, 1u << 20, (uint64_t)1 << 32,
		(uint64_t)1 << 63, UINT64_MAX,
	};
	struct ws_vclock vc = WS_VCLOCK_INIT, big = WS_VCLOCK_INIT;
	struct ws_buf b = WS_BUF_INIT;
	struct ws_siteid s;
	char err[WS_ERRLEN];
	uint8_t *p;
	size_t i;

	for (i = 0; i < sizeof toobig / sizeof toobig[0]; i++) {
		b.len = 0;
		CHECK_INT(ws_buf_put_varint(&b, toobig[i]), 0);
		put_entry(&b, &pool[0], 1);
		p = dup_exact(b.p, b.len);
		CHECK_INT(ws_vclock_decode_all(&vc, p, b.len, err), WS_ETOOBIG);
		CHECK(vc.e == NULL && vc.cap == 0);
		CHECK(good_msg(err));
		free(p);
	}
	/* Within the limit but more than the bytes can hold. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, WS_VCLOCK_MAX_ENTRIES), 0);
	for (i = 0; i < 5; i++)
		put_entry(&b, &pool[0], 1);
	p = dup_exact(b.p, b.len);
	CHECK_INT(ws_vclock_decode_all(&vc, p, b.len, err), WS_ETRUNC);
	CHECK(vc.e == NULL && vc.cap == 0);
	free(p);
	/* Three entries need 51 bytes after the count; give 50. */
	b.len = 0;
	CHECK_INT(ws_buf_put_varint(&b, 3), 0);
	for (i = 0; i < 50; i++)
		CHECK_INT(ws_buf_putc(&b, 0x01), 0);
	CHECK_INT(ws_vclock_decode_all(&vc, b.p, b.len, err), WS_ETRUNC);
	CHECK(vc.e == NULL && vc.cap == 0);

	/* Exactly the limit decodes; one more entry does not. */
	for (i = 0; i < WS_VCLOCK_MAX_ENTRIES; i++) {
		memset(s.b, 0, sizeof s.b);
		s.b[12] = (uint8_t)(i >> 24);
		s.b[13] = (uint8_t)(i >> 16);
		s.b[14] = (uint8_t)(i >> 8);
		s.b[15] = (uint8_t)i;
		CHECK_INT(ws_vclock_set(&big, &s, 1 + i), 0);
	}
	b.len = 0;
	CHECK_INT(ws_vclock_encode(&big, &b), 0);
	CHECK_INT(ws_vclock_decode_all(&vc, b.p, b.len, err), 0);
	CHECK(clock_eq(&vc, &big));
	memset(s.b, 0xff, sizeof s.b);
	CHECK_INT(ws_vclock_set(&big, &s, 1), 0);
	b.len = 0;
	CHECK_INT(ws_vclock_encode(&big, &b), 0);
	CHECK_INT(ws_vclock_decode_all(&vc, b.p, b.len, err), WS_ETOOBIG);
	CHECK_INT(vc.n, 0);

	ws_buf_release(&b);
	ws_vclock_release(&vc);
	ws_vclock_release(&big);
}

/*
 * Random damage never crashes, and whatever still decodes is canonical:
 * it re-encodes to exactly the damaged bytes.
 */
TEST(test_decode_fuzz)
{
	struct ws_vclock a = WS_VCLOCK_INIT, c = WS_VCLOCK_INIT;
	struct ws_buf x = WS_BUF_INIT, y = WS_BUF_INIT;
	char err[WS_ERRLEN];
	uint8_t *p;
	size_t len, k, at;
	int i, rc, ok = 0;

	for (i = 0; i < 30000; i++) {
		x.len = 0;
		rand_big_clock(&a, 6);
		CHECK_INT(ws_vclock_encode(&a, &x), 0);
		len = x.len;
		switch (t_below(4)) {
		case 0: /* garbage */
			len = t_below(80);
			CHECK_INT(ws_buf_reserve(&x, len), 0);
			for (k = 0; k < len; k++)
				x.p[k] = (uint8_t)t_rand();
			break;
		case 1: /* drop a byte */
			at = t_below(len);
			memmove(x.p + at, x.p + at + 1, len - at - 1);
			len--;
			break;
		default: /* flip 1-3 bytes, favouring the varints */
			for (k = t_below(3) + 1; k > 0; k--) {
				at = t_below(2) ? t_below(len) : t_below(2) ? 0 : len - 1;
				x.p[at] ^= (uint8_t)(1 + t_below(255));
			}
			break;
		}
		p = dup_exact(x.p, len);
		err[0] = '\0';
		rc = ws_vclock_decode_all(&c, p, len, err);
		if (rc == 0) {
			ok++;
			CHECK(well_formed(&c));
			y.len = 0;
			CHECK_INT(ws_vclock_encode(&c, &y), 0);
			CHECK_MEM(y.p, y.len, p, len);
		} else {
			CHECK(rc == WS_ETRUNC || rc == WS_ECORRUPT || rc == WS_ERANGE ||
			    rc == WS_ETOOBIG);
			CHECK_INT(c.n, 0);
			CHECK(good_msg(err));
		}
		free(p);
	}
	CHECK(ok > 100); /* some damage (e.g. to a site id) stays valid */
	ws_buf_release(&x);
	ws_buf_release(&y);
	ws_vclock_release(&a);
	ws_vclock_release(&c);
}

/* The text form of vc built by hand: "<hex>:<counter>" joined by ','. */
static void text_of(const struct ws_vclock *vc, struct ws_buf *out)
{
	char hex[WS_SITEID_HEXLEN + 1];
	size_t k;

	out->len = 0;
	for (k = 0; k < vc->n; k++) {
		ws_siteid_hex(&vc->e[k].site, hex);
		CHECK_INT(ws_buf_printf(out, "%s%s:%" PRIu64, k ? "," : "", hex,
		    vc->e[k].counter), 0);
	}
}

/* The text form is written (for messages), never read. */
TEST(test_format)
{
	struct ws_vclock a = WS_VCLOCK_INIT;
	struct ws_buf x = WS_BUF_INIT, y = WS_BUF_INIT;
	int i;

	golden_clock(&a);
	CHECK_INT(ws_vclock_format(&a, &x), 0);
	CHECK_MEM(x.p, x.len, golden_text, strlen(golden_text));

	/* The empty clock is the empty string. */
	ws_vclock_reset(&a);
	x.len = 0;
	CHECK_INT(ws_vclock_format(&a, &x), 0);
	CHECK_INT(x.len, 0);

	/* format appends */
	CHECK_INT(ws_buf_printf(&x, "x="), 0);
	golden_clock(&a);
	CHECK_INT(ws_vclock_format(&a, &x), 0);
	CHECK_INT(x.len, 2 + strlen(golden_text));
	CHECK(memcmp(x.p, "x=", 2) == 0);

	/* In site order, lowercase, no blanks, the largest counter whole. */
	for (i = 0; i < 3000; i++) {
		rand_big_clock(&a, 12);
		x.len = 0;
		CHECK_INT(ws_vclock_format(&a, &x), 0);
		text_of(&a, &y);
		CHECK_MEM(x.p, x.len, y.p, y.len);
		CHECK(memchr(x.p, ' ', x.len) == NULL);
	}
	ws_vclock_reset(&a);
	CHECK_INT(ws_vclock_set(&a, &pool[0], (uint64_t)MAXC), 0);
	x.len = 0;
	CHECK_INT(ws_vclock_format(&a, &x), 0);
	CHECK(x.len > 19 && memcmp(x.p + x.len - 20, ":9223372036854775807", 20) == 0);

	ws_buf_release(&x);
	ws_buf_release(&y);
	ws_vclock_release(&a);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	if (sodium_init() < 0) {
		fprintf(stderr, "sodium_init failed\n");
		return 1;
	}
	pool_init();
	RUN(test_siteid);
	RUN(test_set_get);
	RUN(test_increment);
	RUN(test_ops_vs_model);
	RUN(test_copy_clear);
	RUN(test_merge_laws);
	RUN(test_compare_laws);
	RUN(test_meet_reaches);
	RUN(test_encode_golden);
	RUN(test_roundtrip);
	RUN(test_truncation);
	RUN(test_decode_corrupt);
	RUN(test_decode_huge_count);
	RUN(test_decode_fuzz);
	RUN(test_format);
	TEST_MAIN_END();
}
