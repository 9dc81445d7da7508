/* SPDX-License-Identifier: MIT */
/*
 * golden.h - the golden wire vector the unit tests share, spelled out
 * byte by byte.  It must equal tests/data/batch-small.bin, which the tests
 * check.  Include it once per test file.
 */
#ifndef WSYNC_TEST_GOLDEN_H
#define WSYNC_TEST_GOLDEN_H

#include <stdint.h>

/*
 * tests/data/batch-small.bin: table notes(id, title, body) keyed by id,
 * a clock {A: 5}, and three changes:
 *   insert id=1 title="hi" body=x'00ff'  dot A:6
 *   update id=-1 title=1.5 body=NULL     dot B:3
 *   delete id=2                          dot A:7
 */
static const uint8_t batch_small[] = {
	/* 0 */ 0x01,                       /* flags: clock follows */
	/* 1 */ 0x01,                       /* clock: one entry */
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	/* 18 */ 0x05,                      /* counter 5 */
	/* 19 */ 0x01,                      /* one table */
	/* 20 */ 0x05, 'n', 'o', 't', 'e', 's',
	/* 26 */ 0x03,                      /* three columns */
	/* 27 */ 0x02, 'i', 'd',
	/* 30 */ 0x05, 't', 'i', 't', 'l', 'e',
	/* 36 */ 0x04, 'b', 'o', 'd', 'y',
	/* 41 */ 0x01, 0x00,                /* key: column 0 */
	/* 43 */ 0x02,                      /* two sites */
	/* 44 */ 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	/* 60 */ 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
	/* 76 */ 0x03,                      /* three changes */
	/* 77 */ 0x01,                      /* table 0, insert */
	/* 78 */ 0x00,                      /* site 0 */
	/* 79 */ 0x0c,                      /* svarint +6: counter 6 */
	/* 80 */ 0x01, 0x02,                /* key INTEGER 1 */
	/* 82 */ 0x06,                      /* mask: title, body */
	/* 83 */ 0x03, 0x02, 'h', 'i',      /* TEXT "hi" */
	/* 87 */ 0x04, 0x02, 0x00, 0xff,    /* BLOB 00 ff */
	/* 91 */ 0x02,                      /* table 0, update */
	/* 92 */ 0x01,                      /* site 1 */
	/* 93 */ 0x05,                      /* svarint -3: counter 3 */
	/* 94 */ 0x01, 0x01,                /* key INTEGER -1 */
	/* 96 */ 0x06,                      /* mask: title, body */
	/* 97 */ 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f, /* 1.5 */
	/* 106 */ 0x00,                     /* NULL */
	/* 107 */ 0x03,                     /* table 0, delete */
	/* 108 */ 0x00,                     /* site 0 */
	/* 109 */ 0x08,                     /* svarint +4: counter 7 */
	/* 110 */ 0x01, 0x04,               /* key INTEGER 2 */
};

#endif
