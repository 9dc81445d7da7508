/* SPDX-License-Identifier: MIT */
/*
 * crc32c.h - CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).
 *
 * Neither libsodium nor the other dependencies provide CRC-32C, so it is
 * implemented here: SSE4.2's crc32 instruction when the CPU has it, a
 * slicing-by-8 table otherwise.  Both give identical results.
 */
#ifndef WSYNC_CRC32C_H
#define WSYNC_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extend `crc` (0 to start) over n bytes at p and return the new value.
 * ws_crc32c(0, "123456789", 9) == 0xE3069283.
 */
uint32_t ws_crc32c(uint32_t crc, const void *p, size_t n);

#endif
