/* SPDX-License-Identifier: MIT */
/*
 * test_crc32c.c - CRC-32C against published vectors and a bit-by-bit
 * reference.
 *
 * The reference below is the textbook definition (reflected polynomial
 * 0x82F63B78, initial and final inversion) written one bit at a time, so
 * it shares nothing with either of the library's paths (SSE4.2 or
 * slicing-by-8).  Buffers are allocated at their exact size and offset
 * to every alignment, so a read past the end shows up under ASan.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/crc32c.h"

/* The definition, one bit at a time; chains like ws_crc32c(). */
static uint32_t ref_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	size_t i;
	int k;

	crc = ~crc;
	for (i = 0; i < n; i++) {
		crc ^= p[i];
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

/* A block of exactly `align + n` bytes; the data starts at `align`. */
static uint8_t *alloc_at(size_t align, size_t n)
{
	uint8_t *p = malloc(align + n ? align + n : 1);

	if (p)
		memset(p, 0xcc, align);
	return p;
}

TEST(check_value)
{
	CHECK(ws_crc32c(0, "123456789", 9) == 0xE3069283u);
	CHECK(ref_crc32c(0, (const uint8_t *)"123456789", 9) == 0xE3069283u);
}

TEST(empty)
{
	uint8_t b = 0;

	CHECK(ws_crc32c(0, &b, 0) == 0);
	CHECK(ws_crc32c(0, "", 0) == 0);
	/* No bytes leave any running value unchanged. */
	CHECK(ws_crc32c(0xE3069283u, "", 0) == 0xE3069283u);
	CHECK(ws_crc32c(0xffffffffu, &b, 0) == 0xffffffffu);
	CHECK(ws_crc32c(0x12345678u, &b, 0) == 0x12345678u);
}

/* Published vectors: RFC 3720 (iSCSI) B.4 and common test strings. */
TEST(known_vectors)
{
	uint8_t b[48];
	size_t i;
	static const uint8_t iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
		0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};

	memset(b, 0, 32);
	CHECK(ws_crc32c(0, b, 32) == 0x8A9136AAu);
	memset(b, 0xff, 32);
	CHECK(ws_crc32c(0, b, 32) == 0x62A8AB43u);
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	CHECK(ws_crc32c(0, b, 32) == 0x46DD794Eu);
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	CHECK(ws_crc32c(0, b, 32) == 0x113FDB5Cu);
	CHECK(ws_crc32c(0, iscsi_read, sizeof iscsi_read) == 0xD9963A56u);

	CHECK(ws_crc32c(0, "a", 1) == 0xC1D04330u);
	CHECK(ws_crc32c(0, "abc", 3) == 0x364B3FB7u);
	CHECK(ws_crc32c(0, "The quick brown fox jumps over the lazy dog", 43) ==
	    0x22620404u);

	/* The reference agrees with the same vectors. */
	memset(b, 0, 32);
	CHECK(ref_crc32c(0, b, 32) == 0x8A9136AAu);
	memset(b, 0xff, 32);
	CHECK(ref_crc32c(0, b, 32) == 0x62A8AB43u);
	CHECK(ref_crc32c(0, iscsi_read, sizeof iscsi_read) == 0xD9963A56u);
}

/* Extending a CRC piece by piece equals one call over the whole. */
TEST(incremental)
{
	enum { N = 5000 };
	uint8_t *p = alloc_at(0, N);
	uint32_t whole, crc;
	size_t i, at, k;
	int round;

	CHECK(p != NULL);
	if (!p)
		return;
	for (i = 0; i < N; i++)
		p[i] = (uint8_t)t_rand();
	whole = ws_crc32c(0, p, N);
	CHECK(whole == ref_crc32c(0, p, N));

	/* Every two-piece split of the first 300 bytes. */
	for (k = 0; k <= 300; k++) {
		uint32_t w = ws_crc32c(0, p, 300);

		crc = ws_crc32c(0, p, k);
		crc = ws_crc32c(crc, p + k, 300 - k);
		if (crc != w) {
			fprintf(stderr, "  split at %zu\n", k);
			CHECK(crc == w);
			break;
		}
	}

	/* Random splits into many pieces, including empty ones. */
	for (round = 0; round < 500; round++) {
		crc = 0;
		at = 0;
		while (at < N) {
			k = (size_t)t_below(t_below(2) ? 16 : 700);
			if (k > N - at)
				k = N - at;
			crc = ws_crc32c(crc, p + at, k);
			at += k;
		}
		if (crc != whole) {
			CHECK(crc == whole);
			break;
		}
	}

	/* One byte at a time. */
	crc = 0;
	for (i = 0; i < N; i++)
		crc = ws_crc32c(crc, p + i, 1);
	CHECK(crc == whole);
	free(p);
}

/* Random lengths, contents, alignments and starting values. */
TEST(random_vs_reference)
{
	int round;

	for (round = 0; round < 4000; round++) {
		size_t align = (size_t)t_below(16);
		size_t n = (size_t)(t_below(4) ? t_below(80) : t_below(5000));
		uint32_t init = t_below(4) ? 0 : (uint32_t)t_rand();
		uint8_t *p = alloc_at(align, n);
		uint32_t got, want;
		size_t i;

		CHECK(p != NULL);
		if (!p)
			return;
		for (i = 0; i < n; i++)
			p[align + i] = (uint8_t)t_rand();
		got = ws_crc32c(init, p + align, n);
		want = ref_crc32c(init, p + align, n);
		free(p);
		if (got != want) {
			fprintf(stderr, "  n %zu align %zu init %08x: %08x, "
			    "expected %08x\n", n, align, init, got, want);
			CHECK(got == want);
			break;
		}
	}
}

/* Every length 0..512 at every alignment 0..15 for one fixed pattern. */
TEST(all_small_lengths)
{
	size_t n, align, i;
	int bad = 0;

	for (n = 0; n <= 512 && !bad; n++) {
		for (align = 0; align < 16 && !bad; align++) {
			uint8_t *p = alloc_at(align, n);

			CHECK(p != NULL);
			if (!p)
				return;
			for (i = 0; i < n; i++)
				p[align + i] = (uint8_t)(i * 131 + n);
			if (ws_crc32c(0, p + align, n) !=
			    ref_crc32c(0, p + align, n)) {
				fprintf(stderr, "  n %zu align %zu\n", n, align);
				bad = 1;
			}
			free(p);
		}
	}
	CHECK(!bad);
}

/* A large buffer, and a single flipped bit always changes the CRC. */
TEST(large_and_bitflips)
{
	enum { N = 1 << 20 };
	uint8_t *p = alloc_at(0, N);
	uint32_t base;
	size_t i;
	int k;

	CHECK(p != NULL);
	if (!p)
		return;
	for (i = 0; i < N; i++)
		p[i] = (uint8_t)t_rand();
	base = ws_crc32c(0, p, N);
	CHECK(base == ref_crc32c(0, p, N));

	/* Every single-bit flip in the first 64 bytes changes a short CRC
	 * (CRC-32 detects all of them), and a sample changes the long one. */
	for (i = 0; i < 64; i++) {
		uint32_t shortcrc = ws_crc32c(0, p, 64);

		for (k = 0; k < 8; k++) {
			p[i] ^= (uint8_t)(1u << k);
			CHECK(ws_crc32c(0, p, 64) != shortcrc);
			CHECK(ws_crc32c(0, p, 64) == ref_crc32c(0, p, 64));
			if (i % 8 == 0 && k % 4 == 0)
				CHECK(ws_crc32c(0, p, N) != base);
			p[i] ^= (uint8_t)(1u << k);
		}
	}
	p[N - 1] ^= 0x80;
	CHECK(ws_crc32c(0, p, N) != base);
	p[N - 1] ^= 0x80;
	CHECK(ws_crc32c(0, p, N) == base);
	free(p);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(check_value);
	RUN(empty);
	RUN(known_vectors);
	RUN(incremental);
	RUN(random_vs_reference);
	RUN(all_small_lengths);
	RUN(large_and_bitflips);
	TEST_MAIN_END();
}
