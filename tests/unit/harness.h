/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the tiny unit-test harness.
 *
 * A test is a function declared with TEST(name) and run with RUN(name)
 * from main().  Checks inside it record failures and go on; a test passes
 * when none of its checks failed.  TEST_MAIN_END prints the closing line
 * "N passed, N failed" and returns non-zero if anything failed.
 * Randomised tests use t_rand(), a xorshift64* generator seeded with a
 * fixed value (override with the WS_TEST_SEED environment variable); the
 * seed is printed when a test fails.
 */
#ifndef WSYNC_TEST_HARNESS_H
#define WSYNC_TEST_HARNESS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_passed, t_failed, t_cur_failed;
static const char *t_cur_name;
static uint64_t t_seed = 0x5eed5eed12345678ull, t_state;

static inline uint64_t t_rand(void)
{
	t_state ^= t_state >> 12;
	t_state ^= t_state << 25;
	t_state ^= t_state >> 27;
	return t_state * 0x2545F4914F6CDD1Dull;
}

/* Uniform-ish value in [0, n). */
static inline uint64_t t_below(uint64_t n)
{
	return n ? t_rand() % n : 0;
}

#define TEST(name) static void name(void)

#define CHECK(cond) do { \
	if (!(cond)) { \
		t_cur_failed++; \
		fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, \
		    __LINE__, t_cur_name, #cond); \
	} \
} while (0)

#define CHECK_INT(a, b) do { \
	long long t_a_ = (long long)(a), t_b_ = (long long)(b); \
	if (t_a_ != t_b_) { \
		t_cur_failed++; \
		fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", \
		    __FILE__, __LINE__, t_cur_name, #a, t_a_, #b, t_b_); \
	} \
} while (0)

#define CHECK_STR(a, b) do { \
	const char *t_a_ = (a), *t_b_ = (b); \
	if (t_a_ == NULL || t_b_ == NULL || strcmp(t_a_, t_b_) != 0) { \
		t_cur_failed++; \
		fprintf(stderr, "%s:%d: %s: %s is \"%s\", expected \"%s\"\n", \
		    __FILE__, __LINE__, t_cur_name, #a, t_a_ ? t_a_ : "(null)", \
		    t_b_ ? t_b_ : "(null)"); \
	} \
} while (0)

#define CHECK_MEM(a, an, b, bn) do { \
	size_t t_an_ = (an), t_bn_ = (bn); \
	if (t_an_ != t_bn_ || memcmp((a), (b), t_an_) != 0) { \
		t_cur_failed++; \
		fprintf(stderr, "%s:%d: %s: %s (%zu bytes) differs from %s (%zu bytes)\n", \
		    __FILE__, __LINE__, t_cur_name, #a, t_an_, #b, t_bn_); \
	} \
} while (0)

#define RUN(name) do { \
	t_cur_name = #name; \
	t_cur_failed = 0; \
	t_state = t_seed; \
	name(); \
	if (t_cur_failed) { \
		t_failed++; \
		fprintf(stderr, "FAIL %s (seed %" PRIu64 ")\n", #name, t_seed); \
	} else { \
		t_passed++; \
	} \
} while (0)

#define TEST_MAIN_BEGIN() do { \
	const char *t_env_ = getenv("WS_TEST_SEED"); \
	if (t_env_ && *t_env_) \
		t_seed = strtoull(t_env_, NULL, 0); \
	if (t_seed == 0) \
		t_seed = 1; \
} while (0)

#define TEST_MAIN_END() do { \
	printf("%d passed, %d failed\n", t_passed, t_failed); \
	return t_failed ? 1 : 0; \
} while (0)

/* Read a whole file from tests/data into a malloc'd block; NULL on error. */
static inline uint8_t *t_read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL;
	long len;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 && (p = malloc((size_t)len + 1)) &&
	    fread(p, 1, (size_t)len, f) == (size_t)len) {
		*n = (size_t)len;
	} else {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

#endif
