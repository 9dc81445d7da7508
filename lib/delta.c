/* SPDX-License-Identifier: MIT */
/*
 * delta.c - batches of changes: building, encoding, decoding.
 *
 * A batch owns all its memory through a chunked arena, so a decoded
 * batch is freed with one call and nothing points into the input.  The
 * builder (ws_batch_add_*) and the decoder share one set of checks, so a
 * batch that can be built can be encoded and decoded, and the decoder
 * accepts exactly the canonical encodings the encoder writes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wsync/delta.h"

#define ARENA_FIRST 4096
#define ARENA_MAX_CHUNK (1u << 20)

struct ws_arena_chunk {
	struct ws_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

/* A name as it appears on the wire: bytes and a length. */
struct name {
	const uint8_t *p;
	size_t n;
};

static const char *const op_names[] = {
	[WS_OP_INSERT] = "insert",
	[WS_OP_UPDATE] = "update",
	[WS_OP_DELETE] = "delete",
};

const char *ws_op_name(unsigned op)
{
	return op >= WS_OP_INSERT && op <= WS_OP_DELETE ? op_names[op] : NULL;
}

unsigned ws_op_from_name(const char *name)
{
	unsigned op;

	for (op = WS_OP_INSERT; op <= WS_OP_DELETE; op++)
		if (strcmp(op_names[op], name) == 0)
			return op;
	return 0;
}

/* n bytes from the arena, aligned for any type; NULL when out of memory. */
static void *arena_alloc(struct ws_batch *b, size_t n)
{
	struct ws_arena_chunk *c = b->arena;
	size_t cap;
	void *p;

	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	if (!c || c->cap - c->used < n) {
		cap = c ? c->cap * 2 : ARENA_FIRST;
		if (cap > ARENA_MAX_CHUNK)
			cap = ARENA_MAX_CHUNK;
		if (cap < n)
			cap = n;
		if (cap > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->next = b->arena;
		c->used = 0;
		c->cap = cap;
		b->arena = c;
	}
	p = (uint8_t *)c->data + c->used;
	c->used += n;
	return p;
}

/* Copy n bytes and a NUL into the arena. */
static uint8_t *arena_dup(struct ws_batch *b, const void *p, size_t n)
{
	uint8_t *q;

	if (n == SIZE_MAX || !(q = arena_alloc(b, n + 1)))
		return NULL;
	if (n)
		memcpy(q, p, n);
	q[n] = 0;
	return q;
}

/* Make room for one more element in an array of size elements. */
static int grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	if (ncap > SIZE_MAX / size)
		return WS_ENOMEM;
	p = realloc(*arr, ncap * size);
	if (!p)
		return WS_ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

void ws_batch_init(struct ws_batch *b)
{
	memset(b, 0, sizeof(*b));
	ws_vclock_init(&b->clock);
}

void ws_batch_release(struct ws_batch *b)
{
	struct ws_arena_chunk *c, *next;

	for (c = b->arena; c; c = next) {
		next = c->next;
		free(c);
	}
	free(b->tables);
	free(b->sites);
	free(b->changes);
	ws_vclock_release(&b->clock);
	ws_batch_init(b);
}

void ws_batch_clear(struct ws_batch *b)
{
	ws_batch_release(b);
}

int ws_batch_set_clock(struct ws_batch *b, const struct ws_vclock *clock)
{
	int rc = ws_vclock_copy(&b->clock, clock);

	if (rc == 0)
		b->has_clock = 1;
	return rc;
}

void ws_batch_set_lamport(struct ws_batch *b, uint64_t lamport)
{
	b->has_lamport = 1;
	b->lamport = lamport;
}

int ws_batch_set_dot(struct ws_batch *b, const struct ws_siteid *site, uint64_t counter)
{
	if (counter == 0 || counter > WS_VCLOCK_COUNTER_MAX)
		return WS_EINVAL;
	b->has_dot = 1;
	b->dot_site = *site;
	b->dot_counter = counter;
	return 0;
}

static int check_name(const struct name *nm, const char *what, char *err)
{
	if (nm->n == 0)
		return ws_error(err, WS_EINVAL, "empty %s name", what);
	if (nm->n > WS_DELTA_MAX_NAME)
		return ws_error(err, WS_EINVAL, "%s name longer than %d bytes",
		    what, WS_DELTA_MAX_NAME);
	if (memchr(nm->p, 0, nm->n) || !ws_utf8_valid(nm->p, nm->n))
		return ws_error(err, WS_EINVAL, "%s name is not NUL-free UTF-8",
		    what);
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The one place tables are added, from the builder and the decoder.
 * Names are copied into the arena.  WS_EINVAL with a detail on any rule
 * broken (see delta.h), WS_ENOMEM.
 */
static int table_add(struct ws_batch *b, const struct name *name,
    uint32_t ncols, const struct name *cols, uint32_t npk,
    const uint32_t *pk, char *err)
{
	struct ws_table *t;
	const char **names, **sorted = NULL;
	uint32_t *pkc, i, j;
	int rc = 0;

	if ((rc = check_name(name, "table", err)))
		return rc;
	for (i = 0; i < b->ntables; i++)
		if (strlen(b->tables[i].name) == name->n &&
		    memcmp(b->tables[i].name, name->p, name->n) == 0)
			return ws_error(err, WS_EINVAL, "table '%.*s' described "
			    "twice", (int)name->n, name->p);
	if (b->ntables >= WS_DELTA_MAX_TABLES)
		return ws_error(err, WS_EINVAL, "more than %d tables",
		    WS_DELTA_MAX_TABLES);
	if (ncols == 0 || ncols > WS_DELTA_MAX_COLUMNS)
		return ws_error(err, WS_EINVAL, "table '%.*s' has %" PRIu32
		    " columns (1 to %d allowed)", (int)name->n, name->p, ncols,
		    WS_DELTA_MAX_COLUMNS);
	if (npk == 0 || npk > ncols)
		return ws_error(err, WS_EINVAL, "table '%.*s' has %" PRIu32
		    " primary-key columns", (int)name->n, name->p, npk);
	for (i = 0; i < npk; i++) {
		if (pk[i] >= ncols)
			return ws_error(err, WS_EINVAL, "table '%.*s': primary-key "
			    "column %" PRIu32 " out of range", (int)name->n, name->p, pk[i]);
		for (j = 0; j < i; j++)
			if (pk[j] == pk[i])
				return ws_error(err, WS_EINVAL, "table '%.*s': "
				    "primary-key column %" PRIu32 " repeated",
				    (int)name->n, name->p, pk[i]);
	}
	if (grow((void **)&b->tables, &b->tables_cap, b->ntables, sizeof(*b->tables)))
		return WS_ENOMEM;
	names = arena_alloc(b, ncols * sizeof(*names));
	pkc = arena_alloc(b, npk * sizeof(*pkc));
	sorted = malloc(ncols * sizeof(*sorted));
	if (!names || !pkc || !sorted) {
		rc = WS_ENOMEM;
		goto out;
	}
	for (i = 0; i < ncols; i++) {
		if ((rc = check_name(&cols[i], "column", err)))
			goto out;
		if (!(names[i] = (const char *)arena_dup(b, cols[i].p, cols[i].n))) {
			rc = WS_ENOMEM;
			goto out;
		}
		sorted[i] = names[i];
	}
	qsort(sorted, ncols, sizeof(*sorted), cmp_names);
	for (i = 1; i < ncols; i++)
		if (strcmp(sorted[i - 1], sorted[i]) == 0) {
			rc = ws_error(err, WS_EINVAL, "table '%.*s': column '%s' "
			    "repeated", (int)name->n, name->p, sorted[i]);
			goto out;
		}
	memcpy(pkc, pk, npk * sizeof(*pkc));
	t = &b->tables[b->ntables];
	if (!(t->name = (const char *)arena_dup(b, name->p, name->n))) {
		rc = WS_ENOMEM;
		goto out;
	}
	t->ncols = ncols;
	t->cols = names;
	t->npk = npk;
	t->pk = pkc;
	b->ntables++;
out:
	free(sorted);
	return rc;
}

int ws_batch_add_table(struct ws_batch *b, const char *name, uint32_t ncols,
    const char *const *cols, uint32_t npk, const uint32_t *pk,
    uint32_t *index, char *err)
{
	struct name nm = {(const uint8_t *)name, name ? strlen(name) : 0};
	struct name *cn;
	uint32_t i;
	int rc;

	if (!name || !cols || !pk || ncols > WS_DELTA_MAX_COLUMNS)
		return ws_error(err, WS_EINVAL, "bad table description");
	if (!(cn = malloc((ncols ? ncols : 1) * sizeof(*cn))))
		return WS_ENOMEM;
	for (i = 0; i < ncols; i++) {
		cn[i].p = (const uint8_t *)(cols[i] ? cols[i] : "");
		cn[i].n = strlen((const char *)cn[i].p);
	}
	rc = table_add(b, &nm, ncols, cn, npk, pk, err);
	free(cn);
	if (rc == 0 && index)
		*index = (uint32_t)(b->ntables - 1);
	return rc;
}

long ws_batch_find_table(const struct ws_batch *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->ntables; i++)
		if (strcmp(b->tables[i].name, name) == 0)
			return (long)i;
	return -1;
}

int ws_batch_site(struct ws_batch *b, const struct ws_siteid *site, uint32_t *index)
{
	size_t i;

	/* Batches name few sites, most often one: a scan from the end wins. */
	for (i = b->nsites; i-- > 0;)
		if (memcmp(b->sites[i].b, site->b, WS_SITEID_LEN) == 0) {
			*index = (uint32_t)i;
			return 0;
		}
	if (grow((void **)&b->sites, &b->sites_cap, b->nsites, sizeof(*b->sites)))
		return WS_ENOMEM;
	b->sites[b->nsites] = *site;
	*index = (uint32_t)b->nsites++;
	return 0;
}

static int cmp_sites(const void *a, const void *b)
{
	return memcmp(a, b, WS_SITEID_LEN);
}

/* WS_ECORRUPT if b->sites holds the same id twice. */
static int check_sites_distinct(const struct ws_batch *b)
{
	struct ws_siteid *sorted;
	size_t i;
	int rc = 0;

	if (b->nsites < 2)
		return 0;
	if (!(sorted = malloc(b->nsites * sizeof(*sorted))))
		return WS_ENOMEM;
	memcpy(sorted, b->sites, b->nsites * sizeof(*sorted));
	qsort(sorted, b->nsites, sizeof(*sorted), cmp_sites);
	for (i = 1; i < b->nsites && rc == 0; i++)
		if (memcmp(&sorted[i - 1], &sorted[i], WS_SITEID_LEN) == 0)
			rc = WS_ECORRUPT;
	free(sorted);
	return rc;
}

static uint32_t popcount_mask(const uint8_t *mask, size_t len)
{
	uint32_t n = 0;
	size_t i;

	for (i = 0; i < len; i++)
		n += (uint32_t)__builtin_popcount(mask[i]);
	return n;
}

static int check_value(const struct ws_value *v)
{
	if (v->type > WS_BLOB)
		return WS_EINVAL;
	if ((v->type == WS_TEXT || v->type == WS_BLOB) && v->n && !v->p)
		return WS_EINVAL;
	return 0;
}

/* The rules every change obeys, for the builder and the decoder alike. */
static int check_change(const struct ws_batch *b, const struct ws_change *c,
    char *err)
{
	const struct ws_table *t;
	uint32_t i;

	if (c->table >= b->ntables)
		return ws_error(err, WS_EINVAL, "change names table %" PRIu32
		    " of %zu", c->table, b->ntables);
	t = &b->tables[c->table];
	if (c->op < WS_OP_INSERT || c->op > WS_OP_DELETE)
		return ws_error(err, WS_EINVAL, "bad operation %u", c->op);
	if (c->site >= b->nsites)
		return ws_error(err, WS_EINVAL, "change names site %" PRIu32
		    " of %zu", c->site, b->nsites);
	if (c->counter == 0 || c->counter > WS_VCLOCK_COUNTER_MAX)
		return ws_error(err, WS_EINVAL, "dot counter %" PRIu64
		    " out of range", c->counter);
	for (i = 0; i < t->npk; i++)
		if (check_value(&c->pk[i]))
			return ws_error(err, WS_EINVAL, "bad primary-key value");
	if (c->op == WS_OP_DELETE) {
		if (c->nvals)
			return ws_error(err, WS_EINVAL, "a delete carries no values");
		return 0;
	}
	if (!c->mask)
		return ws_error(err, WS_EINVAL, "%s without a column mask",
		    ws_op_name(c->op));
	for (i = 0; i < t->npk; i++)
		if (ws_mask_test(c->mask, t->pk[i]))
			return ws_error(err, WS_EINVAL, "mask sets primary-key "
			    "column '%s'", t->cols[t->pk[i]]);
	if (t->ncols % 8 && c->mask[t->ncols / 8] >> (t->ncols % 8))
		return ws_error(err, WS_EINVAL, "mask sets bits beyond column %"
		    PRIu32, t->ncols);
	if (popcount_mask(c->mask, ws_mask_len(t->ncols)) != c->nvals)
		return ws_error(err, WS_EINVAL, "%" PRIu32 " values for the mask's "
		    "%" PRIu32 " columns", c->nvals,
		    popcount_mask(c->mask, ws_mask_len(t->ncols)));
	for (i = 0; i < c->nvals; i++)
		if (check_value(&c->vals[i]))
			return ws_error(err, WS_EINVAL, "bad value type");
	return 0;
}

/* Copy n values into the arena, with their bytes. */
static struct ws_value *copy_values(struct ws_batch *b, const struct ws_value *v,
    size_t n)
{
	struct ws_value *out;
	size_t i;

	if (!(out = arena_alloc(b, (n ? n : 1) * sizeof(*out))))
		return NULL;
	for (i = 0; i < n; i++) {
		out[i] = v[i];
		if (v[i].type == WS_TEXT || v[i].type == WS_BLOB) {
			if (!(out[i].p = arena_dup(b, v[i].p, v[i].n)))
				return NULL;
		} else {
			out[i].p = NULL;
			out[i].n = 0;
		}
	}
	return out;
}

int ws_batch_add_change(struct ws_batch *b, const struct ws_change *c, char *err)
{
	const struct ws_table *t;
	struct ws_change *d;
	int rc;

	if ((rc = check_change(b, c, err)))
		return rc;
	if (grow((void **)&b->changes, &b->changes_cap, b->nchanges,
	    sizeof(*b->changes)))
		return WS_ENOMEM;
	t = &b->tables[c->table];
	d = &b->changes[b->nchanges];
	*d = *c;
	d->mask = NULL;
	if (!(d->pk = copy_values(b, c->pk, t->npk)) ||
	    !(d->vals = copy_values(b, c->vals, c->nvals)))
		return WS_ENOMEM;
	if (c->op != WS_OP_DELETE &&
	    !(d->mask = arena_dup(b, c->mask, ws_mask_len(t->ncols))))
		return WS_ENOMEM;
	b->nchanges++;
	return 0;
}

int ws_value_encode(const struct ws_value *v, struct ws_buf *out)
{
	uint64_t bits;
	int rc;

	if (v->type > WS_BLOB)
		return WS_EINVAL;
	if ((rc = ws_buf_putc(out, v->type)))
		return rc;
	switch (v->type) {
	case WS_INTEGER:
		return ws_buf_put_svarint(out, v->i);
	case WS_REAL:
		memcpy(&bits, &v->r, 8);
		return ws_buf_put_u64le(out, bits);
	case WS_TEXT:
	case WS_BLOB:
		return ws_buf_put_bytes(out, v->p, v->n);
	default:
		return 0;
	}
}

int ws_batch_encode(const struct ws_batch *b, struct ws_buf *out)
{
	const struct ws_table *t;
	const struct ws_change *c;
	uint64_t prev = 0;
	size_t i, seen = 0, start = out->len;
	uint32_t k;
	int rc = 0;

	for (i = 0; i < b->nchanges; i++) {
		if (b->changes[i].site > seen)
			return WS_EINVAL;
		if (b->changes[i].site == seen)
			seen++;
	}
	if (seen != b->nsites)
		return WS_EINVAL;
#define PUT(x) do { if ((rc = (x))) goto out; } while (0)
	PUT(ws_buf_put_varint(out, (b->has_clock ? WS_BATCH_HAS_CLOCK : 0) |
	    (b->has_dot ? WS_BATCH_HAS_DOT : 0) |
	    (b->has_lamport ? WS_BATCH_HAS_LAMPORT : 0)));
	if (b->has_clock)
		PUT(ws_vclock_encode(&b->clock, out));
	if (b->has_dot) {
		PUT(ws_buf_append(out, b->dot_site.b, WS_SITEID_LEN));
		PUT(ws_buf_put_varint(out, b->dot_counter));
	}
	if (b->has_lamport)
		PUT(ws_buf_put_varint(out, b->lamport));
	PUT(ws_buf_put_varint(out, b->ntables));
	for (i = 0; i < b->ntables; i++) {
		t = &b->tables[i];
		PUT(ws_buf_put_bytes(out, t->name, strlen(t->name)));
		PUT(ws_buf_put_varint(out, t->ncols));
		for (k = 0; k < t->ncols; k++)
			PUT(ws_buf_put_bytes(out, t->cols[k], strlen(t->cols[k])));
		PUT(ws_buf_put_varint(out, t->npk));
		for (k = 0; k < t->npk; k++)
			PUT(ws_buf_put_varint(out, t->pk[k]));
	}
	PUT(ws_buf_put_varint(out, b->nsites));
	for (i = 0; i < b->nsites; i++)
		PUT(ws_buf_append(out, b->sites[i].b, WS_SITEID_LEN));
	PUT(ws_buf_put_varint(out, b->nchanges));
	for (i = 0; i < b->nchanges; i++) {
		c = &b->changes[i];
		t = &b->tables[c->table];
		PUT(ws_buf_put_varint(out, (uint64_t)c->table << 2 | c->op));
		if (b->nsites > 1)
			PUT(ws_buf_put_varint(out, c->site));
		PUT(ws_buf_put_svarint(out, (int64_t)(c->counter - prev)));
		prev = c->counter;
		for (k = 0; k < t->npk; k++)
			PUT(ws_value_encode(&c->pk[k], out));
		if (c->op == WS_OP_DELETE)
			continue;
		PUT(ws_buf_append(out, c->mask, ws_mask_len(t->ncols)));
		for (k = 0; k < c->nvals; k++)
			PUT(ws_value_encode(&c->vals[k], out));
	}
#undef PUT
out:
	if (rc)
		out->len = start;
	return rc;
}

/* Decoding.  Every failure names the byte offset within the payload. */

static int bad(const struct ws_rd *r, int rc, const char *what, char *err)
{
	if (rc == WS_ETRUNC)
		return ws_error(err, rc, "batch byte %zu: truncated %s",
		    ws_rd_offset(r), what);
	if (rc == WS_ETOOBIG)
		return ws_error(err, rc, "batch byte %zu: %s too large",
		    ws_rd_offset(r), what);
	if (rc == WS_ENOMEM)
		return ws_error(err, rc, "out of memory");
	return ws_error(err, rc == WS_ERANGE ? rc : WS_ECORRUPT,
	    "batch byte %zu: bad %s", ws_rd_offset(r), what);
}

/*
 * Read a count of items of at least `unit` bytes each: WS_ETOOBIG above
 * max, WS_ETRUNC when the bytes left cannot hold that many, so nothing
 * is allocated for a count the input cannot back.
 */
static int rd_count(struct ws_rd *r, uint64_t max, size_t unit, uint64_t *v,
    const char *what, char *err)
{
	const uint8_t *at = r->p;
	int rc;

	if ((rc = ws_rd_varint(r, v)))
		return bad(r, rc, what, err);
	if (*v > max || *v > ws_rd_left(r) / unit) {
		r->p = at;
		return bad(r, *v > max ? WS_ETOOBIG : WS_ETRUNC, what, err);
	}
	return 0;
}

int ws_value_decode(struct ws_rd *r, struct ws_value *v)
{
	const uint8_t *at = r->p;
	uint64_t bits;
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = ws_rd_u8(r, &v->type)))
		return rc;
	switch (v->type) {
	case WS_NULL:
		return 0;
	case WS_INTEGER:
		rc = ws_rd_svarint(r, &v->i);
		break;
	case WS_REAL:
		if ((rc = ws_rd_u64le(r, &bits)) == 0)
			memcpy(&v->r, &bits, 8);
		break;
	case WS_TEXT:
	case WS_BLOB:
		rc = ws_rd_bytes(r, SIZE_MAX, &v->p, &v->n);
		break;
	default:
		rc = WS_ECORRUPT;
		break;
	}
	if (rc)
		r->p = at;
	return rc;
}

/* Decode a value into the batch's arena. */
static int rd_value(struct ws_batch *b, struct ws_rd *r, struct ws_value *v,
    char *err)
{
	int rc = ws_value_decode(r, v);

	if (rc)
		return bad(r, rc, v->type > WS_BLOB ? "value type" : "value", err);
	if ((v->type == WS_TEXT || v->type == WS_BLOB) &&
	    !(v->p = arena_dup(b, v->p, v->n)))
		return WS_ENOMEM;
	return 0;
}

static int rd_tables(struct ws_batch *b, struct ws_rd *r, char *err)
{
	struct name name, *cols = NULL;
	uint32_t *pk = NULL;
	uint64_t nt, nc, np, v;
	const uint8_t *at;
	size_t i, k;
	int rc = 0;

	if ((rc = rd_count(r, WS_DELTA_MAX_TABLES, 1, &nt, "table count", err)))
		return rc;
	for (i = 0; i < nt; i++) {
		at = r->p;
		if ((rc = ws_rd_bytes(r, WS_DELTA_MAX_NAME, &name.p, &name.n))) {
			rc = bad(r, rc, "table name", err);
			goto out;
		}
		if ((rc = rd_count(r, WS_DELTA_MAX_COLUMNS, 1, &nc, "column count", err)))
			goto out;
		free(cols);
		if (!(cols = malloc((nc ? nc : 1) * sizeof(*cols)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		for (k = 0; k < nc; k++)
			if ((rc = ws_rd_bytes(r, WS_DELTA_MAX_NAME, &cols[k].p, &cols[k].n))) {
				rc = bad(r, rc, "column name", err);
				goto out;
			}
		if ((rc = rd_count(r, nc, 1, &np, "primary-key column count", err))) {
			if (rc == WS_ETOOBIG)
				rc = ws_error(err, WS_ECORRUPT, "batch byte %zu: more "
				    "primary-key columns than columns", ws_rd_offset(r));
			goto out;
		}
		free(pk);
		if (!(pk = malloc((np ? np : 1) * sizeof(*pk)))) {
			rc = WS_ENOMEM;
			goto out;
		}
		for (k = 0; k < np; k++) {
			if ((rc = ws_rd_varint(r, &v)) || v >= nc) {
				rc = bad(r, rc ? rc : WS_ECORRUPT,
				    "primary-key column", err);
				goto out;
			}
			pk[k] = (uint32_t)v;
		}
		if ((rc = table_add(b, &name, (uint32_t)nc, cols, (uint32_t)np, pk,
		    err))) {
			char why[WS_ERRLEN];

			if (rc == WS_ENOMEM)
				goto out;
			snprintf(why, sizeof(why), "%s", err ? err : "bad table");
			rc = ws_error(err, WS_ECORRUPT, "batch byte %zu: %s",
			    (size_t)(at - r->base), why);
			goto out;
		}
	}
out:
	free(cols);
	free(pk);
	return rc;
}

static int rd_change(struct ws_batch *b, struct ws_rd *r, uint64_t *prev,
    char *err)
{
	struct ws_change c = {0};
	const struct ws_table *t;
	struct ws_value *pk, *vals;
	const uint8_t *at = r->p, *mask;
	uint64_t v;
	int64_t delta;
	uint32_t k;
	int rc;

	if ((rc = ws_rd_varint(r, &v)))
		return bad(r, rc, "change", err);
	c.op = (uint8_t)(v & 3);
	if ((v >> 2) >= b->ntables || c.op == 0)
		return bad(r, WS_ECORRUPT, "change table or operation", err);
	c.table = (uint32_t)(v >> 2);
	t = &b->tables[c.table];
	if (b->nsites > 1) {
		if ((rc = ws_rd_varint(r, &v)))
			return bad(r, rc, "site index", err);
		if (v >= b->nsites)
			return bad(r, WS_ECORRUPT, "site index", err);
		c.site = (uint32_t)v;
	}
	if ((rc = ws_rd_svarint(r, &delta)))
		return bad(r, rc, "dot counter", err);
	c.counter = *prev + (uint64_t)delta;
	if (c.counter == 0 || c.counter > WS_VCLOCK_COUNTER_MAX)
		return bad(r, c.counter ? WS_ERANGE : WS_ECORRUPT, "dot counter", err);
	if (t->npk > ws_rd_left(r))
		return bad(r, WS_ETRUNC, "primary key", err);
	if (!(pk = arena_alloc(b, t->npk * sizeof(*pk))))
		return WS_ENOMEM;
	for (k = 0; k < t->npk; k++)
		if ((rc = rd_value(b, r, &pk[k], err)))
			return rc;
	c.pk = pk;
	if (c.op != WS_OP_DELETE) {
		if ((rc = ws_rd_raw(r, ws_mask_len(t->ncols), &mask)))
			return bad(r, rc, "column mask", err);
		c.nvals = popcount_mask(mask, ws_mask_len(t->ncols));
		if (c.nvals > ws_rd_left(r))
			return bad(r, WS_ETRUNC, "values", err);
		if (!(c.mask = arena_dup(b, mask, ws_mask_len(t->ncols))) ||
		    !(vals = arena_alloc(b, (c.nvals ? c.nvals : 1) * sizeof(*vals))))
			return WS_ENOMEM;
		for (k = 0; k < c.nvals; k++)
			if ((rc = rd_value(b, r, &vals[k], err)))
				return rc;
		c.vals = vals;
	}
	if ((rc = check_change(b, &c, err))) {
		char why[WS_ERRLEN];

		snprintf(why, sizeof(why), "%s", err ? err : "bad change");
		return ws_error(err, WS_ECORRUPT, "batch byte %zu: %s",
		    (size_t)(at - r->base), why);
	}
	if (grow((void **)&b->changes, &b->changes_cap, b->nchanges,
	    sizeof(*b->changes)))
		return WS_ENOMEM;
	b->changes[b->nchanges++] = c;
	*prev = c.counter;
	return 0;
}

int ws_batch_decode(struct ws_batch *b, const uint8_t *p, size_t n, char *err)
{
	struct ws_rd r;
	uint64_t flags, ns, nch, prev = 0;
	size_t i, seen = 0;
	const uint8_t *at;
	int rc;

	ws_batch_release(b);
	ws_rd_init(&r, p, n);
	if ((rc = ws_rd_varint(&r, &flags)))
		goto fail_rd;
	if (flags & ~(uint64_t)(WS_BATCH_HAS_CLOCK | WS_BATCH_HAS_DOT |
	    WS_BATCH_HAS_LAMPORT)) {
		r.p = r.base;
		rc = bad(&r, WS_ECORRUPT, "flags", err);
		goto out;
	}
	if (flags & WS_BATCH_HAS_CLOCK) {
		b->has_clock = 1;
		if ((rc = ws_vclock_decode(&b->clock, &r, err)))
			goto out;
	}
	if (flags & WS_BATCH_HAS_DOT) {
		const uint8_t *s;
		uint64_t c;

		if ((rc = ws_rd_raw(&r, WS_SITEID_LEN, &s)) ||
		    (rc = ws_rd_varint(&r, &c)))
			goto fail_rd;
		memcpy(b->dot_site.b, s, WS_SITEID_LEN);
		if (ws_batch_set_dot(b, &b->dot_site, c)) {
			rc = bad(&r, c ? WS_ERANGE : WS_ECORRUPT, "batch dot counter", err);
			goto out;
		}
	}
	if (flags & WS_BATCH_HAS_LAMPORT) {
		if ((rc = ws_rd_varint(&r, &b->lamport)))
			goto fail_rd;
		b->has_lamport = 1;
	}
	if ((rc = rd_tables(b, &r, err)))
		goto out;
	if ((rc = rd_count(&r, UINT32_MAX, WS_SITEID_LEN, &ns, "site count", err)))
		goto out;
	for (i = 0; i < ns; i++) {
		const uint8_t *s;

		if ((rc = ws_rd_raw(&r, WS_SITEID_LEN, &s)))
			goto fail_rd;
		if (grow((void **)&b->sites, &b->sites_cap, b->nsites,
		    sizeof(*b->sites))) {
			rc = WS_ENOMEM;
			goto out;
		}
		memcpy(b->sites[b->nsites++].b, s, WS_SITEID_LEN);
	}
	if ((rc = check_sites_distinct(b))) {
		rc = rc == WS_ENOMEM ? rc : bad(&r, rc, "site list (a site id "
		    "appears twice)", err);
		goto out;
	}
	if ((rc = rd_count(&r, UINT32_MAX, 1, &nch, "change count", err)))
		goto out;
	for (i = 0; i < nch; i++) {
		at = r.p;
		if ((rc = rd_change(b, &r, &prev, err)))
			goto out;
		if (b->changes[i].site > seen) {
			r.p = at;
			rc = bad(&r, WS_ECORRUPT, "site order (sites must be "
			    "listed in order of first use)", err);
			goto out;
		}
		if (b->changes[i].site == seen)
			seen++;
	}
	if (seen != b->nsites) {
		rc = bad(&r, WS_ECORRUPT, "site list (a site is never used)", err);
		goto out;
	}
	if (ws_rd_left(&r)) {
		rc = bad(&r, WS_ECORRUPT, "batch end (trailing bytes)", err);
		goto out;
	}
	return 0;
fail_rd:
	rc = bad(&r, rc, "batch", err);
out:
	ws_batch_release(b);
	return rc;
}
