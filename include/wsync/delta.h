/* SPDX-License-Identifier: MIT */
/*
 * delta.h - changes and batches, and their compact binary encoding.
 *
 * A change is one row-level edit: a table, the primary key, an operation,
 * a column bitmask, the new values of only the columns in the mask, and
 * its dot (origin site id, counter).  Changes from one local transaction
 * travel together as a batch, which is applied atomically.
 *
 * A batch carries, once each, the descriptions of the tables it touches
 * (name, column names in declared order, primary-key columns in key order)
 * and the site ids its dots name, so rows never repeat names or ids.
 * Bit i of a change's mask is the i-th column in declared order (byte
 * i/8, bit i%8).  Primary-key columns travel in the pk values, never in
 * the mask, so their bits are always clear.
 *
 * Binary encoding of a batch (the payload of a WS_FRAME_BATCH frame);
 * "varint" is unsigned LEB128, "svarint" zigzag, "str" a varint length
 * and that many bytes:
 *
 *     varint  flags            bit 0: a causal-context clock follows
 *                              bit 1: the batch's own dot follows
 *     [vclock clock]           vclock.h encoding
 *     [16-byte site, varint counter]   the batch's dot (counter >= 1)
 *     varint  ntables
 *       str     name
 *       varint  ncols,  ncols x str column name
 *       varint  npk,    npk x varint column index (key order)
 *     varint  nsites, nsites x 16-byte site id (in order of first use)
 *     varint  nchanges
 *       varint  table << 2 | op
 *       varint  site index     (only when nsites > 1)
 *       svarint counter - previous change's counter (0 before the first)
 *       npk x value            the primary key
 *       if op != delete:
 *         (ncols+7)/8 bytes    mask
 *         one value per set bit, in column order
 *
 * A value is a type byte and its body: 0 NULL; 1 INTEGER + svarint;
 * 2 REAL + 8 bytes IEEE-754 little-endian (the exact bits, NaN payloads
 * included); 3 TEXT + str; 4 BLOB + str.
 *
 * The decoder accepts only the canonical form (minimal varints, no
 * unknown flags, sites in order of first use and all used, clear unused
 * mask bits), so decode→encode reproduces the input byte for byte.
 */
#ifndef WSYNC_DELTA_H
#define WSYNC_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "vclock.h"

/* Limits enforced by the decoder and the builder. */
#define WS_DELTA_MAX_NAME 1024     /* bytes in a table or column name */
#define WS_DELTA_MAX_COLUMNS 32767 /* SQLite's own hard limit */
#define WS_DELTA_MAX_TABLES 4096

/* Batch flags on the wire. */
#define WS_BATCH_HAS_CLOCK 0x1
#define WS_BATCH_HAS_DOT 0x2
#define WS_BATCH_HAS_LAMPORT 0x4

enum ws_op {
	WS_OP_INSERT = 1,
	WS_OP_UPDATE = 2,
	WS_OP_DELETE = 3,
};

/* SQLite's value types, numbered as on the wire. */
enum ws_vtype {
	WS_NULL = 0,
	WS_INTEGER = 1,
	WS_REAL = 2,
	WS_TEXT = 3,
	WS_BLOB = 4,
};

/*
 * One value.  For TEXT and BLOB, p[0..n) are the bytes (TEXT may hold any
 * bytes, NUL included); a value stored in a batch is followed by a NUL
 * that n does not count.  Who owns p is said where a value is returned.
 */
struct ws_value {
	uint8_t type;
	int64_t i;
	double r;
	const uint8_t *p;
	size_t n;
};

/* A table as a batch describes it.  All memory is owned by the batch. */
struct ws_table {
	const char *name;
	uint32_t ncols;
	const char *const *cols; /* ncols names, declared order */
	uint32_t npk;
	const uint32_t *pk;      /* npk column indexes, key order */
};

/*
 * One change.  In a batch, all pointers are owned by the batch.  As an
 * argument to ws_batch_add_change() they are the caller's and are copied.
 */
struct ws_change {
	uint32_t table;                /* index into batch->tables */
	uint8_t op;                    /* enum ws_op */
	uint32_t site;                 /* index into batch->sites */
	uint64_t counter;              /* dot counter, 1..2^63-1 */
	const struct ws_value *pk;     /* table's npk values */
	const uint8_t *mask;           /* (ncols+7)/8 bytes; NULL for delete */
	const struct ws_value *vals;   /* one per set bit of mask */
	uint32_t nvals;
};

struct ws_arena_chunk;

/*
 * A batch.  Read the public arrays directly; change them only through the
 * functions below.  Everything it points to lives in its arena and is
 * freed by ws_batch_release() or ws_batch_clear().
 */
struct ws_batch {
	int has_clock;
	struct ws_vclock clock;      /* causal context when has_clock */
	int has_dot;                 /* the batch as a whole has one dot: */
	struct ws_siteid dot_site;   /* a store's batches carry it, so that */
	uint64_t dot_counter;        /* even an empty one advances clocks */
	int has_lamport;             /* the Lamport number is given, because */
	uint64_t lamport;            /* the clock was pruned (else its sum) */
	struct ws_table *tables;
	size_t ntables;
	struct ws_siteid *sites;
	size_t nsites;
	struct ws_change *changes;
	size_t nchanges;
	/* private */
	size_t tables_cap, sites_cap, changes_cap;
	struct ws_arena_chunk *arena;
};

/* Bytes in the mask of a table with ncols columns. */
static inline size_t ws_mask_len(uint32_t ncols)
{
	return ((size_t)ncols + 7) / 8;
}

static inline int ws_mask_test(const uint8_t *mask, uint32_t i)
{
	return (mask[i / 8] >> (i % 8)) & 1;
}

static inline void ws_mask_set(uint8_t *mask, uint32_t i)
{
	mask[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* "insert", "update", "delete", or NULL for an unknown op. */
const char *ws_op_name(unsigned op);
/* Op for a name, or 0. */
unsigned ws_op_from_name(const char *name);

/* Make b an empty batch that owns nothing. */
void ws_batch_init(struct ws_batch *b);
/* Free everything the batch owns; b is empty afterwards. */
void ws_batch_release(struct ws_batch *b);
/*
 * The same: free everything, leaving b empty and ready for reuse, which
 * is what _clear means throughout (to keep memory, a type has _reset).
 */
void ws_batch_clear(struct ws_batch *b);

/* Set the batch's own dot.  WS_EINVAL for a counter out of range. */
int ws_batch_set_dot(struct ws_batch *b, const struct ws_siteid *site, uint64_t counter) WS_MUST_CHECK;

/*
 * Encode one value (type byte and body, as in a batch) / decode one from
 * r; a decoded TEXT or BLOB points into r's bytes.  Encoding a value of
 * an unknown type is WS_EINVAL.
 */
int ws_value_encode(const struct ws_value *v, struct ws_buf *out) WS_MUST_CHECK;
int ws_value_decode(struct ws_rd *r, struct ws_value *v) WS_MUST_CHECK;

/*
 * Give the batch's Lamport number explicitly: a hub that prunes
 * coordinates from a forwarded clock keeps the number the whole clock
 * gave, so every replica breaks ties alike.
 */
void ws_batch_set_lamport(struct ws_batch *b, uint64_t lamport);

/* Set the causal-context clock (copied).  0 or WS_ENOMEM. */
int ws_batch_set_clock(struct ws_batch *b, const struct ws_vclock *clock) WS_MUST_CHECK;

/*
 * Add a table description, copying the names.  *index (may be NULL)
 * receives its index.  WS_EINVAL for an empty or over-long name, a name
 * that is not UTF-8 or holds NUL, ncols of 0 or above the limit, npk of 0,
 * a pk index out of range or repeated, or too many tables.
 */
int ws_batch_add_table(struct ws_batch *b, const char *name, uint32_t ncols,
    const char *const *cols, uint32_t npk, const uint32_t *pk,
    uint32_t *index, char *err) WS_MUST_CHECK;
/* Index of the table named name, or -1. */
long ws_batch_find_table(const struct ws_batch *b, const char *name);

/*
 * Index of site in b->sites, adding it at the end if missing.
 * 0 or WS_ENOMEM.
 */
int ws_batch_site(struct ws_batch *b, const struct ws_siteid *site, uint32_t *index) WS_MUST_CHECK;

/*
 * Append a copy of *c.  c->site must come from ws_batch_site().  Checks
 * what the decoder checks (see above) and returns WS_EINVAL with a detail
 * otherwise.  nvals must equal the number of set mask bits.
 */
int ws_batch_add_change(struct ws_batch *b, const struct ws_change *c, char *err) WS_MUST_CHECK;

/*
 * Append the binary encoding of b to out.  WS_EINVAL if a site is never
 * used or sites are not in order of first use (build batches by calling
 * ws_batch_site() just before each change, and this holds); WS_ENOMEM.
 */
int ws_batch_encode(const struct ws_batch *b, struct ws_buf *out) WS_MUST_CHECK;

/*
 * Decode a whole batch from p[0..n), replacing b's contents.  Nothing
 * points into p afterwards.  Errors: WS_ETRUNC, WS_ECORRUPT, WS_ERANGE,
 * WS_ETOOBIG, WS_ENOMEM, each with the byte offset in err.  On error b is
 * left empty.
 */
int ws_batch_decode(struct ws_batch *b, const uint8_t *p, size_t n, char *err) WS_MUST_CHECK;

#endif
