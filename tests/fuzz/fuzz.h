/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h - shared by the fuzz targets in tests/fuzz/fuzz_<name>.c.
 *
 * Each target defines LLVMFuzzerTestOneInput(), which libFuzzer calls
 * with hostile bytes (make fuzz) and replay.c calls with every file of
 * the checked-in corpus (make check).  A target must never crash, leak
 * or read out of bounds on any input; beyond that it checks the
 * decoders' documented promises (a canonical encoding re-encodes to the
 * same bytes, a lossless mapping round-trips) with FUZZ_CHECK, which
 * aborts, so libFuzzer records the input as a crash.
 */
#ifndef WSYNC_FUZZ_H
#define WSYNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, \
		    __LINE__, #cond); \
		abort(); \
	} \
} while (0)

#endif
