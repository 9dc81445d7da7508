/* SPDX-License-Identifier: MIT */
/*
 * rbytes.h - deterministic random bytes for libsodium, so that the site
 * ids a test's stores make follow its seed and a seed replays exactly:
 * set rb_state, then randombytes_set_implementation(&rb_impl) before
 * ws_init().
 */
#ifndef WSYNC_TEST_RBYTES_H
#define WSYNC_TEST_RBYTES_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

static uint64_t rb_state;

static uint64_t rb_next(void)
{
	uint64_t z = (rb_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *rb_name(void)
{
	return "wsync-test";
}

static uint32_t rb_random(void)
{
	return (uint32_t)rb_next();
}

static void rb_buf(void *const buf, const size_t size)
{
	uint8_t *p = buf;
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < size; i++) {
		if (i % 8 == 0)
			x = rb_next();
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
}

static randombytes_implementation rb_impl = {
	rb_name, rb_random, NULL, NULL, rb_buf, NULL
};

#endif
