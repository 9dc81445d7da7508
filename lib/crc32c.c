/* SPDX-License-Identifier: MIT */
/*
 * crc32c.c - CRC-32C.  None of our dependencies offers it (libsodium has
 * no CRC), so it lives here: the SSE4.2 crc32 instruction when the CPU
 * has it, slicing-by-8 tables otherwise.
 */
#include <string.h>

#include "wsync/crc32c.h"

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int have_table;

static void make_table(void)
{
	uint32_t c;
	int i, k;

	for (i = 0; i < 256; i++) {
		c = (uint32_t)i;
		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
		table[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (k = 1; k < 8; k++)
			table[k][i] = (table[k - 1][i] >> 8) ^
			    table[0][table[k - 1][i] & 0xff];
	have_table = 1;
}

static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t lo, hi;

	if (!have_table)
		make_table();
	while (n && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
		n--;
	}
	while (n >= 8) {
		memcpy(&lo, p, 4);
		memcpy(&hi, p + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= crc;
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		    table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
		    table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^
		    table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <nmmintrin.h>

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n)
{
	uint64_t c = crc, w;

	while (n && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		n--;
	}
	while (n >= 8) {
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		n -= 8;
	}
	while (n--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}

static int have_hw = -1;

uint32_t ws_crc32c(uint32_t crc, const void *p, size_t n)
{
	if (have_hw < 0) {
		__builtin_cpu_init();
		have_hw = __builtin_cpu_supports("sse4.2");
	}
	crc = ~crc;
	crc = have_hw ? crc_hw(crc, p, n) : crc_sw(crc, p, n);
	return ~crc;
}
#else
uint32_t ws_crc32c(uint32_t crc, const void *p, size_t n)
{
	return ~crc_sw(~crc, p, n);
}
#endif
