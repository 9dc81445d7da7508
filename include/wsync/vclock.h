/* SPDX-License-Identifier: MIT */
/*
 * vclock.h - site ids and vector clocks.
 *
 * A site id is 128 bits.  Site ids are totally ordered by comparing their
 * 16 bytes as an unsigned big-endian number (memcmp order); that order
 * breaks ties everywhere in wsync.  Their text form is 32 lowercase hex
 * digits.
 *
 * A vector clock maps site ids to counters: the highest counter seen from
 * each site.  A missing entry counts as 0, so entries are never stored
 * with counter 0.  Entries are kept sorted by site id.  Counters are at
 * most WS_VCLOCK_COUNTER_MAX (2^63-1) so they fit a JSON integer.
 *
 * Binary encoding (canonical: decode→encode gives the same bytes):
 *     varint n, then n times: 16-byte site id, varint counter
 * with site ids strictly increasing and every counter in 1..2^63-1.
 *
 * Text form, for messages: "<site-hex>:<counter>,<site-hex>:<counter>"
 * in site order, the empty string for the empty clock.  It is written,
 * never read: JSON lines carry a clock as an object (json.h).
 */
#ifndef WSYNC_VCLOCK_H
#define WSYNC_VCLOCK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

#define WS_SITEID_LEN 16
#define WS_SITEID_HEXLEN 32
#define WS_VCLOCK_COUNTER_MAX INT64_MAX
/* Most entries a decoded clock may hold. */
#define WS_VCLOCK_MAX_ENTRIES 65536

struct ws_siteid {
	uint8_t b[WS_SITEID_LEN];
};

/* <0, 0, >0 as a orders before, equal to, after b. */
int ws_siteid_cmp(const struct ws_siteid *a, const struct ws_siteid *b);
/* Write 32 hex digits and a NUL into out[WS_SITEID_HEXLEN + 1]. */
void ws_siteid_hex(const struct ws_siteid *id, char out[WS_SITEID_HEXLEN + 1]);
/* Parse exactly 32 hex digits (either case).  0 or WS_EINVAL. */
int ws_siteid_parse(struct ws_siteid *id, const char *hex, size_t len) WS_MUST_CHECK;
/* Fill id with random bytes (libsodium's randombytes_buf). */
void ws_siteid_random(struct ws_siteid *id);

struct ws_vclock_entry {
	struct ws_siteid site;
	uint64_t counter;
};

/* Owns the entry array e[0..n). */
struct ws_vclock {
	struct ws_vclock_entry *e;
	size_t n;
	size_t cap;
};

#define WS_VCLOCK_INIT {NULL, 0, 0}

/* Result of ws_vclock_compare(). */
enum ws_vclock_order {
	WS_VCLOCK_EQUAL = 0,
	WS_VCLOCK_BEFORE = 1,     /* a < b: every a[s] <= b[s], one strictly */
	WS_VCLOCK_AFTER = 2,      /* a > b */
	WS_VCLOCK_CONCURRENT = 3, /* neither */
};

/* Make vc empty, owning nothing (as WS_VCLOCK_INIT does). */
void ws_vclock_init(struct ws_vclock *vc);
/* Free the entries and make vc empty. */
void ws_vclock_release(struct ws_vclock *vc);
/* Remove all entries but keep the allocation, for reuse. */
void ws_vclock_reset(struct ws_vclock *vc);
/* Make dst a copy of src.  0 or WS_ENOMEM (dst unchanged). */
int ws_vclock_copy(struct ws_vclock *dst, const struct ws_vclock *src) WS_MUST_CHECK;

/* Counter for site, 0 if absent. */
uint64_t ws_vclock_get(const struct ws_vclock *vc, const struct ws_siteid *site);
/*
 * Set site's counter; counter 0 removes the entry.  WS_ERANGE above
 * WS_VCLOCK_COUNTER_MAX, WS_ENOMEM.
 */
int ws_vclock_set(struct ws_vclock *vc, const struct ws_siteid *site, uint64_t counter) WS_MUST_CHECK;
/*
 * Add one to site's counter and store the new value in *out (may be
 * NULL).  WS_ERANGE if it would pass WS_VCLOCK_COUNTER_MAX.
 */
int ws_vclock_increment(struct ws_vclock *vc, const struct ws_siteid *site, uint64_t *out) WS_MUST_CHECK;
/* dst[s] = max(dst[s], src[s]) for every s.  0 or WS_ENOMEM (dst unchanged). */
int ws_vclock_merge(struct ws_vclock *dst, const struct ws_vclock *src) WS_MUST_CHECK;
/*
 * dst[s] = min(dst[s], src[s]) for every s (the clock both have reached);
 * entries that become 0 go.  Never allocates.
 */
void ws_vclock_meet(struct ws_vclock *dst, const struct ws_vclock *src);
/* 1 if a has reached b: a[s] >= b[s] for every s (a >= b). */
int ws_vclock_reaches(const struct ws_vclock *a, const struct ws_vclock *b);
/* Compare a with b; see enum ws_vclock_order. */
enum ws_vclock_order ws_vclock_compare(const struct ws_vclock *a, const struct ws_vclock *b);
/* Drop site's entry (the hub prunes departed sites).  Absent is fine. */
void ws_vclock_remove(struct ws_vclock *vc, const struct ws_siteid *site);
/* True if vc has seen dot (site, counter): vc[site] >= counter. */
int ws_vclock_has(const struct ws_vclock *vc, const struct ws_siteid *site, uint64_t counter);

/* Append the binary encoding to out.  0 or WS_ENOMEM. */
int ws_vclock_encode(const struct ws_vclock *vc, struct ws_buf *out) WS_MUST_CHECK;
/*
 * Decode from the cursor r (which advances past the clock), replacing
 * vc's contents.  WS_ETRUNC, WS_ECORRUPT (unsorted or duplicate sites, a
 * zero counter, a non-minimal varint), WS_ERANGE, WS_ETOOBIG (more than
 * WS_VCLOCK_MAX_ENTRIES), WS_ENOMEM.  On error vc is left empty.
 */
int ws_vclock_decode(struct ws_vclock *vc, struct ws_rd *r, char *err) WS_MUST_CHECK;
/* Decode a whole buffer; trailing bytes are WS_ECORRUPT. */
int ws_vclock_decode_all(struct ws_vclock *vc, const uint8_t *p, size_t n, char *err) WS_MUST_CHECK;

/* Append the text form (no NUL) to out.  0 or WS_ENOMEM. */
int ws_vclock_format(const struct ws_vclock *vc, struct ws_buf *out) WS_MUST_CHECK;

#endif
