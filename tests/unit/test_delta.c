/* SPDX-License-Identifier: MIT */
/*
 * test_delta.c - batches: the builder, the binary encoding and the
 * canonical-form decoder.
 *
 * tests/data/batch-small.bin is a golden vector derived by hand from the
 * layout in delta.h (spelled out byte by byte below); the canonical-form
 * checks are edits of it.  Randomised round trips build batches through
 * the public builder, free every input buffer right after it is copied,
 * and decode from a heap copy that is scribbled over and freed before the
 * result is compared, so under ASan any pointer kept into caller memory
 * shows up.  Every decoded batch must re-encode to the very same bytes.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/delta.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct ws_siteid site_a = {{0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
    0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}};
static const struct ws_siteid site_b = {{0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10}};

#include "golden.h"

/* The example batch of wsync-protocol(5), 68 bytes. */
static const uint8_t batch_manpage[] = {
	0x01, 0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x07,
	0x01, 0x05, 'n', 'o', 't', 'e', 's',
	0x02, 0x02, 'i', 'd', 0x05, 't', 'i', 't', 'l', 'e',
	0x01, 0x00,
	0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
	0x01, 0x02, 0x0e, 0x01, 0x02, 0x02, 0x03, 0x05, 'h', 'e', 'l', 'l', 'o',
};

static uint8_t *read_data(const char *name, size_t *n)
{
	static const char *const dirs[] = {"tests/data/", "../tests/data/",
	    "../../tests/data/", "../../../tests/data/"};
	char path[512];
	size_t i;
	uint8_t *p;

	for (i = 0; i < NELEM(dirs); i++) {
		snprintf(path, sizeof path, "%s%s", dirs[i], name);
		if ((p = t_read_file(path, n)))
			return p;
	}
	fprintf(stderr, "cannot read tests/data/%s\n", name);
	return NULL;
}

static uint64_t dbits(double d)
{
	uint64_t u;

	memcpy(&u, &d, sizeof u);
	return u;
}

static double bitsd(uint64_t u)
{
	double d;

	memcpy(&d, &u, sizeof d);
	return d;
}

static struct ws_value vnull(void)
{
	struct ws_value v;

	memset(&v, 0, sizeof v);
	v.type = WS_NULL;
	return v;
}

static struct ws_value vint(int64_t i)
{
	struct ws_value v = vnull();

	v.type = WS_INTEGER;
	v.i = i;
	return v;
}

static struct ws_value vreal(double r)
{
	struct ws_value v = vnull();

	v.type = WS_REAL;
	v.r = r;
	return v;
}

static struct ws_value vbytes(uint8_t type, const void *p, size_t n)
{
	struct ws_value v = vnull();

	v.type = type;
	v.p = p;
	v.n = n;
	return v;
}

/* Equal as stored values: same type and same bits. */
static int value_eq(const struct ws_value *a, const struct ws_value *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case WS_NULL:
		return 1;
	case WS_INTEGER:
		return a->i == b->i;
	case WS_REAL:
		return dbits(a->r) == dbits(b->r);
	case WS_TEXT:
	case WS_BLOB:
		return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
	default:
		return 0;
	}
}

/* A value held by a batch: TEXT and BLOB are followed by a NUL. */
static int value_stored_ok(const struct ws_value *v)
{
	if (v->type == WS_TEXT || v->type == WS_BLOB)
		return v->p != NULL && v->p[v->n] == 0;
	return v->type <= WS_BLOB;
}

static unsigned popcount_mask(const uint8_t *mask, uint32_t ncols)
{
	unsigned n = 0;
	uint32_t i;

	for (i = 0; i < ncols; i++)
		n += (unsigned)ws_mask_test(mask, i);
	return n;
}

/* Compare change a (in batch ba) with change c, as given to the builder. */
static int change_eq(const struct ws_batch *ba, const struct ws_change *a,
    const struct ws_change *c, const char **why)
{
	const struct ws_table *t;
	uint32_t i;

	if (a->table != c->table || a->op != c->op || a->site != c->site ||
	    a->counter != c->counter)
		return *why = "table/op/site/counter", 0;
	if (a->table >= ba->ntables)
		return *why = "table index", 0;
	t = &ba->tables[a->table];
	for (i = 0; i < t->npk; i++) {
		if (!value_eq(&a->pk[i], &c->pk[i]))
			return *why = "key value", 0;
		if (!value_stored_ok(&a->pk[i]))
			return *why = "key value storage", 0;
	}
	if (a->op == WS_OP_DELETE) {
		if (a->nvals != 0)
			return *why = "delete with values", 0;
		return 1;
	}
	if (!a->mask || memcmp(a->mask, c->mask, ws_mask_len(t->ncols)) != 0)
		return *why = "mask", 0;
	if (a->nvals != c->nvals ||
	    a->nvals != popcount_mask(a->mask, t->ncols))
		return *why = "nvals", 0;
	for (i = 0; i < a->nvals; i++) {
		if (!value_eq(&a->vals[i], &c->vals[i]))
			return *why = "value", 0;
		if (!value_stored_ok(&a->vals[i]))
			return *why = "value storage", 0;
	}
	return 1;
}

/* Structural equality of two batches; *why names the first difference. */
static int batch_eq(const struct ws_batch *a, const struct ws_batch *b,
    const char **why)
{
	size_t i, j;

	if (a->has_clock != b->has_clock)
		return *why = "has_clock", 0;
	if (a->has_clock) {
		if (a->clock.n != b->clock.n)
			return *why = "clock size", 0;
		for (i = 0; i < a->clock.n; i++)
			if (memcmp(&a->clock.e[i].site, &b->clock.e[i].site,
			    WS_SITEID_LEN) || a->clock.e[i].counter !=
			    b->clock.e[i].counter)
				return *why = "clock entry", 0;
	}
	if (a->has_dot != b->has_dot)
		return *why = "has_dot", 0;
	if (a->has_dot && (memcmp(&a->dot_site, &b->dot_site, WS_SITEID_LEN) ||
	    a->dot_counter != b->dot_counter))
		return *why = "batch dot", 0;
	if (a->ntables != b->ntables)
		return *why = "ntables", 0;
	for (i = 0; i < a->ntables; i++) {
		const struct ws_table *x = &a->tables[i], *y = &b->tables[i];

		if (strcmp(x->name, y->name) || x->ncols != y->ncols ||
		    x->npk != y->npk)
			return *why = "table", 0;
		for (j = 0; j < x->ncols; j++)
			if (strcmp(x->cols[j], y->cols[j]))
				return *why = "column name", 0;
		for (j = 0; j < x->npk; j++)
			if (x->pk[j] != y->pk[j])
				return *why = "key column", 0;
	}
	if (a->nsites != b->nsites)
		return *why = "nsites", 0;
	for (i = 0; i < a->nsites; i++)
		if (memcmp(&a->sites[i], &b->sites[i], sizeof a->sites[i]))
			return *why = "site", 0;
	if (a->nchanges != b->nchanges)
		return *why = "nchanges", 0;
	for (i = 0; i < a->nchanges; i++)
		if (!change_eq(a, &a->changes[i], &b->changes[i], why))
			return 0;
	return 1;
}

static int batch_is_empty(const struct ws_batch *b)
{
	return b->ntables == 0 && b->nsites == 0 && b->nchanges == 0 &&
	    !b->has_clock && !b->has_dot;
}

/*
 * Decode p[0..n) from a heap copy that is scribbled over and freed
 * before returning, so nothing may point into it afterwards.
 */
static int decode_copy(struct ws_batch *b, const uint8_t *p, size_t n,
    char *err)
{
	uint8_t *copy = malloc(n ? n : 1);
	int rc;

	if (!copy)
		return WS_ENOMEM;
	if (n)
		memcpy(copy, p, n);
	rc = ws_batch_decode(b, copy, n, err);
	memset(copy, 0xa5, n ? n : 1);
	free(copy);
	return rc;
}

/* Decode, compare with `want` (when not NULL) and re-encode to p. */
static int roundtrip_ok(const struct ws_batch *want, const uint8_t *p,
    size_t n)
{
	struct ws_batch d;
	struct ws_buf out = WS_BUF_INIT;
	const char *why = NULL;
	char err[WS_ERRLEN] = "";
	int rc, ok = 1;

	ws_batch_init(&d);
	rc = decode_copy(&d, p, n, err);
	if (rc) {
		fprintf(stderr, "  decode: %d (%s)\n", rc, err);
		ok = 0;
	} else if (want && !batch_eq(want, &d, &why)) {
		fprintf(stderr, "  decoded batch differs: %s\n", why);
		ok = 0;
	} else if ((rc = ws_batch_encode(&d, &out)) != 0) {
		fprintf(stderr, "  re-encode: %d\n", rc);
		ok = 0;
	} else if (out.len != n || memcmp(out.p, p, n) != 0) {
		fprintf(stderr, "  re-encoded bytes differ (%zu vs %zu)\n",
		    out.len, n);
		ok = 0;
	}
	ws_buf_release(&out);
	ws_batch_release(&d);
	return ok;
}

/* p[0..n) with del bytes at off replaced by ins[0..nins). */
static size_t splice(uint8_t *out, const uint8_t *p, size_t n, size_t off,
    size_t del, const void *ins, size_t nins)
{
	memcpy(out, p, off);
	if (nins)
		memcpy(out + off, ins, nins);
	memcpy(out + off + nins, p + off + del, n - off - del);
	return n - del + nins;
}

/* Build the batch of batch-small.bin through the builder. */
static void build_small(struct ws_batch *b)
{
	static const char *const cols[] = {"id", "title", "body"};
	static const uint32_t pk[] = {0};
	static const uint8_t blob[] = {0x00, 0xff};
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_value k, v[2];
	struct ws_change c;
	uint8_t mask[1];
	uint32_t t = 99, s = 99;
	char err[WS_ERRLEN];

	CHECK_INT(ws_vclock_set(&vc, &site_a, 5), 0);
	CHECK_INT(ws_batch_set_clock(b, &vc), 0);
	ws_vclock_release(&vc);
	CHECK_INT(ws_batch_add_table(b, "notes", 3, cols, 1, pk, &t, err), 0);
	CHECK_INT(t, 0);

	memset(&c, 0, sizeof c);
	CHECK_INT(ws_batch_site(b, &site_a, &s), 0);
	CHECK_INT(s, 0);
	k = vint(1);
	mask[0] = 0x06;
	v[0] = vbytes(WS_TEXT, "hi", 2);
	v[1] = vbytes(WS_BLOB, blob, 2);
	c.table = 0;
	c.op = WS_OP_INSERT;
	c.site = s;
	c.counter = 6;
	c.pk = &k;
	c.mask = mask;
	c.vals = v;
	c.nvals = 2;
	CHECK_INT(ws_batch_add_change(b, &c, err), 0);

	CHECK_INT(ws_batch_site(b, &site_b, &s), 0);
	CHECK_INT(s, 1);
	k = vint(-1);
	v[0] = vreal(1.5);
	v[1] = vnull();
	c.op = WS_OP_UPDATE;
	c.site = s;
	c.counter = 3;
	CHECK_INT(ws_batch_add_change(b, &c, err), 0);

	CHECK_INT(ws_batch_site(b, &site_a, &s), 0);
	CHECK_INT(s, 0);
	k = vint(2);
	c.op = WS_OP_DELETE;
	c.site = s;
	c.counter = 7;
	c.mask = NULL;
	c.vals = NULL;
	c.nvals = 0;
	CHECK_INT(ws_batch_add_change(b, &c, err), 0);
}

/* ---- tests ---- */

TEST(op_names)
{
	CHECK_STR(ws_op_name(WS_OP_INSERT), "insert");
	CHECK_STR(ws_op_name(WS_OP_UPDATE), "update");
	CHECK_STR(ws_op_name(WS_OP_DELETE), "delete");
	CHECK(ws_op_name(0) == NULL);
	CHECK(ws_op_name(4) == NULL);
	CHECK(ws_op_name(1000) == NULL);
	CHECK_INT(ws_op_from_name("insert"), WS_OP_INSERT);
	CHECK_INT(ws_op_from_name("update"), WS_OP_UPDATE);
	CHECK_INT(ws_op_from_name("delete"), WS_OP_DELETE);
	CHECK_INT(ws_op_from_name("upsert"), 0);
	CHECK_INT(ws_op_from_name(""), 0);
	CHECK_INT(ws_op_from_name("INSERT"), 0);
	CHECK_INT(ws_mask_len(1), 1);
	CHECK_INT(ws_mask_len(8), 1);
	CHECK_INT(ws_mask_len(9), 2);
	CHECK_INT(ws_mask_len(64), 8);
	CHECK_INT(ws_mask_len(65), 9);
}

TEST(empty_batch)
{
	struct ws_batch b;
	struct ws_buf out = WS_BUF_INIT;
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x00};
	static const uint8_t want_clock[] = {0x01, 0x00, 0x00, 0x00, 0x00};
	struct ws_vclock vc = WS_VCLOCK_INIT;

	ws_batch_init(&b);
	CHECK(batch_is_empty(&b));
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, want, sizeof want);
	CHECK(roundtrip_ok(&b, want, sizeof want));
	/* The empty clock is distinct from no clock. */
	CHECK_INT(ws_batch_set_clock(&b, &vc), 0);
	CHECK(b.has_clock);
	out.len = 0;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, want_clock, sizeof want_clock);
	CHECK(roundtrip_ok(&b, want_clock, sizeof want_clock));
	ws_batch_release(&b);
	CHECK(batch_is_empty(&b));
	ws_batch_clear(&b);
	ws_batch_release(&b);
	ws_buf_release(&out);
}

TEST(golden_small)
{
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	uint8_t *file;
	size_t n = 0;
	char err[WS_ERRLEN] = "";
	const struct ws_change *c;

	ws_batch_init(&b);
	build_small(&b);
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, batch_small, sizeof batch_small);
	file = read_data("batch-small.bin", &n);
	CHECK(file != NULL);
	if (file)
		CHECK_MEM(file, n, batch_small, sizeof batch_small);
	CHECK(roundtrip_ok(&b, batch_small, sizeof batch_small));

	/* The decoded fields, one by one. */
	ws_batch_init(&d);
	CHECK_INT(decode_copy(&d, file ? file : batch_small,
	    file ? n : sizeof batch_small, err), 0);
	CHECK(d.has_clock);
	CHECK_INT(d.clock.n, 1);
	if (d.clock.n == 1) {
		CHECK_MEM(d.clock.e[0].site.b, 16, site_a.b, 16);
		CHECK_INT(d.clock.e[0].counter, 5);
	}
	CHECK_INT(d.ntables, 1);
	if (d.ntables == 1) {
		CHECK_STR(d.tables[0].name, "notes");
		CHECK_INT(d.tables[0].ncols, 3);
		if (d.tables[0].ncols == 3) {
			CHECK_STR(d.tables[0].cols[0], "id");
			CHECK_STR(d.tables[0].cols[1], "title");
			CHECK_STR(d.tables[0].cols[2], "body");
		}
		CHECK_INT(d.tables[0].npk, 1);
		if (d.tables[0].npk == 1)
			CHECK_INT(d.tables[0].pk[0], 0);
	}
	CHECK_INT(ws_batch_find_table(&d, "notes"), 0);
	CHECK_INT(ws_batch_find_table(&d, "note"), -1);
	CHECK_INT(ws_batch_find_table(&d, "notesx"), -1);
	CHECK_INT(ws_batch_find_table(&d, ""), -1);
	CHECK_INT(d.nsites, 2);
	if (d.nsites == 2) {
		CHECK_MEM(d.sites[0].b, 16, site_a.b, 16);
		CHECK_MEM(d.sites[1].b, 16, site_b.b, 16);
	}
	CHECK_INT(d.nchanges, 3);
	if (d.nchanges == 3 && d.ntables == 1) {
		c = &d.changes[0];
		CHECK(c->table == 0 && c->op == WS_OP_INSERT && c->site == 0 &&
		    c->counter == 6);
		CHECK(c->pk[0].type == WS_INTEGER && c->pk[0].i == 1);
		CHECK(c->mask && c->mask[0] == 0x06);
		CHECK_INT(c->nvals, 2);
		if (c->nvals == 2) {
			CHECK(c->vals[0].type == WS_TEXT);
			CHECK_MEM(c->vals[0].p, c->vals[0].n, "hi", 2);
			CHECK(c->vals[0].p[2] == 0);
			CHECK(c->vals[1].type == WS_BLOB);
			CHECK_MEM(c->vals[1].p, c->vals[1].n, "\x00\xff", 2);
			CHECK(c->vals[1].p[2] == 0);
		}
		c = &d.changes[1];
		CHECK(c->table == 0 && c->op == WS_OP_UPDATE && c->site == 1 &&
		    c->counter == 3);
		CHECK(c->pk[0].type == WS_INTEGER && c->pk[0].i == -1);
		CHECK(c->mask && c->mask[0] == 0x06);
		CHECK_INT(c->nvals, 2);
		if (c->nvals == 2) {
			CHECK(c->vals[0].type == WS_REAL && c->vals[0].r == 1.5);
			CHECK(c->vals[1].type == WS_NULL);
		}
		c = &d.changes[2];
		CHECK(c->table == 0 && c->op == WS_OP_DELETE && c->site == 0 &&
		    c->counter == 7);
		CHECK(c->pk[0].type == WS_INTEGER && c->pk[0].i == 2);
		CHECK_INT(c->nvals, 0);
	}
	ws_batch_release(&d);
	ws_batch_release(&b);
	ws_buf_release(&out);
	free(file);
}

/* The example in wsync-protocol(5). */
TEST(golden_manpage)
{
	static const char *const cols[] = {"id", "title"};
	static const uint32_t pk[] = {0};
	struct ws_batch b;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_change c;
	struct ws_value k = vint(1), v = vbytes(WS_TEXT, "hello", 5);
	uint8_t mask = 0x02;
	uint32_t s;

	ws_batch_init(&b);
	CHECK_INT(ws_vclock_set(&vc, &site_a, 7), 0);
	CHECK_INT(ws_batch_set_clock(&b, &vc), 0);
	CHECK_INT(ws_batch_add_table(&b, "notes", 2, cols, 1, pk, NULL, NULL), 0);
	CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
	memset(&c, 0, sizeof c);
	c.op = WS_OP_UPDATE;
	c.site = s;
	c.counter = 7;
	c.pk = &k;
	c.mask = &mask;
	c.vals = &v;
	c.nvals = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_INT(sizeof batch_manpage, 68);
	CHECK_MEM(out.p, out.len, batch_manpage, sizeof batch_manpage);
	CHECK(roundtrip_ok(&b, batch_manpage, sizeof batch_manpage));
	ws_vclock_release(&vc);
	ws_batch_release(&b);
	ws_buf_release(&out);
}

/* Values of every kind and edge, kept exactly. */
TEST(values_exact)
{
	enum { NV = 34 };
	static const uint8_t nul3[] = {0, 0, 0};
	uint8_t big[300], mask[(NV + 8) / 8];
	struct ws_value v[NV], k;
	const char *cols[NV + 1];
	char names[NV + 1][16];
	uint32_t pk = 5, s, i, j;
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_change c;
	char err[WS_ERRLEN] = "";

	for (i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 37 + 11);
	i = 0;
	v[i++] = vnull();
	v[i++] = vint(0);
	v[i++] = vint(-1);
	v[i++] = vint(INT64_MIN);
	v[i++] = vint(INT64_MAX);
	v[i++] = vreal(bitsd(0x7ff8000000000000ull)); /* default quiet NaN */
	v[i++] = vreal(bitsd(0xfff8000000000000ull)); /* negative NaN */
	v[i++] = vreal(bitsd(0x7ff0000000000001ull)); /* signalling NaN */
	v[i++] = vreal(bitsd(0x7fffffffffffffffull));
	v[i++] = vreal(bitsd(0xfff0000000000001ull));
	v[i++] = vreal(bitsd(0x7ff4000000000abcull));
	v[i++] = vreal(INFINITY);
	v[i++] = vreal(-INFINITY);
	v[i++] = vreal(-0.0);
	v[i++] = vreal(0.0);
	v[i++] = vreal(bitsd(1));                     /* smallest denormal */
	v[i++] = vreal(1.7976931348623157e308);
	v[i++] = vreal(0.1);
	v[i++] = vbytes(WS_TEXT, "", 0);
	v[i++] = vbytes(WS_TEXT, "a\0b", 3);
	v[i++] = vbytes(WS_TEXT, "\0", 1);
	v[i++] = vbytes(WS_TEXT, "h\xc3\xa9llo \xe2\x82\xac\xf0\x9d\x84\x9e", 14);
	v[i++] = vbytes(WS_TEXT, "\xff\xfe", 2);
	v[i++] = vbytes(WS_TEXT, "\xc0\x80", 2);      /* overlong NUL */
	v[i++] = vbytes(WS_TEXT, "\xed\xa0\x80", 3);  /* surrogate */
	v[i++] = vbytes(WS_TEXT, big, sizeof big);
	v[i++] = vbytes(WS_BLOB, "", 0);
	v[i++] = vbytes(WS_BLOB, nul3, 3);
	v[i++] = vbytes(WS_BLOB, big, sizeof big);
	v[i++] = vbytes(WS_BLOB, "text", 4);
	v[i++] = vint(1);
	v[i++] = vint(-64);
	v[i++] = vint(64);
	v[i++] = vreal(-1.5e-300);
	CHECK_INT(i, NV);

	/* NV value columns plus the key at index 5. */
	for (i = 0; i <= NV; i++) {
		snprintf(names[i], sizeof names[i], "c%u", (unsigned)i);
		cols[i] = names[i];
	}
	memset(mask, 0, sizeof mask);
	for (i = 0; i <= NV; i++)
		if (i != pk)
			ws_mask_set(mask, i);

	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "v", NV + 1, cols, 1, &pk, NULL, err), 0);
	CHECK_INT(ws_batch_site(&b, &site_b, &s), 0);
	memset(&c, 0, sizeof c);
	c.op = WS_OP_INSERT;
	c.site = s;
	c.counter = INT64_MAX;
	c.pk = &k;
	c.mask = mask;
	c.vals = v;
	c.nvals = NV;
	/* Each value once as the key too. */
	for (j = 0; j < NV; j++) {
		k = v[j];
		c.counter = j == 0 ? (uint64_t)INT64_MAX : j;
		c.op = j % 3 == 2 ? WS_OP_DELETE : (uint8_t)(1 + j % 2);
		c.mask = c.op == WS_OP_DELETE ? NULL : mask;
		c.vals = c.op == WS_OP_DELETE ? NULL : v;
		c.nvals = c.op == WS_OP_DELETE ? 0 : NV;
		CHECK_INT(ws_batch_add_change(&b, &c, err), 0);
		if (b.nchanges == j + 1) {
			const char *why = "";

			if (!change_eq(&b, &b.changes[j], &c, &why)) {
				fprintf(stderr, "  builder copy of change %u: %s\n",
				    (unsigned)j, why);
				CHECK(0);
			}
		}
	}
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK(roundtrip_ok(&b, out.p, out.len));

	ws_batch_init(&d);
	CHECK_INT(decode_copy(&d, out.p, out.len, err), 0);
	CHECK_INT(d.nchanges, NV);
	if (d.nchanges == NV && d.changes[0].nvals == NV) {
		const struct ws_change *dc = &d.changes[0];

		for (i = 0; i < NV; i++) {
			if (!value_eq(&dc->vals[i], &v[i]) ||
			    !value_stored_ok(&dc->vals[i])) {
				fprintf(stderr, "  value %u differs\n", (unsigned)i);
				CHECK(0);
			}
		}
		/* -0.0 kept its sign, NaN its payload. */
		CHECK(signbit(dc->vals[13].r) && dc->vals[13].r == 0);
		CHECK(dbits(dc->vals[6].r) == 0xfff8000000000000ull);
		CHECK(dbits(dc->vals[7].r) == 0x7ff0000000000001ull);
		CHECK(dc->vals[3].i == INT64_MIN && dc->vals[4].i == INT64_MAX);
		CHECK(dc->vals[19].n == 3 && memcmp(dc->vals[19].p, "a\0b", 3) == 0);
	}
	ws_batch_release(&d);
	ws_batch_release(&b);
	ws_buf_release(&out);
}

/* Hand-checked encodings of single values in a one-column-plus-key table. */
TEST(values_bytes)
{
	static const char *const cols[] = {"k", "v"};
	static const uint32_t pk[] = {0};
	static const struct {
		struct ws_value v;
		size_t n;
		uint8_t b[12];
	} t[] = {
		{{WS_NULL, 0, 0, NULL, 0}, 1, {0x00}},
		{{WS_INTEGER, INT64_MIN, 0, NULL, 0}, 11,
		    {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{{WS_INTEGER, -65, 0, NULL, 0}, 3, {0x01, 0x81, 0x01}},
		{{WS_REAL, 0, -0.0, NULL, 0}, 9,
		    {0x02, 0, 0, 0, 0, 0, 0, 0, 0x80}},
		{{WS_REAL, 0, 1.0, NULL, 0}, 9,
		    {0x02, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f}},
		{{WS_TEXT, 0, 0, (const uint8_t *)"a\0b", 3}, 5,
		    {0x03, 0x03, 'a', 0x00, 'b'}},
		{{WS_TEXT, 0, 0, (const uint8_t *)"", 0}, 2, {0x03, 0x00}},
		{{WS_BLOB, 0, 0, (const uint8_t *)"", 0}, 2, {0x04, 0x00}},
		{{WS_BLOB, 0, 0, (const uint8_t *)"\xff", 1}, 3, {0x04, 0x01, 0xff}},
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		struct ws_batch b;
		struct ws_buf out = WS_BUF_INIT;
		struct ws_change c;
		struct ws_value k = vint(0);
		uint8_t mask = 0x02;
		uint32_t s;
		/* flags, ntables, table, nsites, site, nchanges, change head */
		static const uint8_t head[] = {0x00, 0x01, 0x01, 't', 0x02,
		    0x01, 'k', 0x01, 'v', 0x01, 0x00, 0x01};
		uint8_t want[64];
		size_t n = 0;

		memcpy(want, head, sizeof head);
		n = sizeof head;
		memcpy(want + n, site_a.b, 16);
		n += 16;
		want[n++] = 0x01;              /* one change */
		want[n++] = 0x02;              /* table 0, update */
		want[n++] = 0x02;              /* counter 1 */
		want[n++] = 0x01;              /* key INTEGER 0 */
		want[n++] = 0x00;
		want[n++] = 0x02;              /* mask: v */
		memcpy(want + n, t[i].b, t[i].n);
		n += t[i].n;

		ws_batch_init(&b);
		CHECK_INT(ws_batch_add_table(&b, "t", 2, cols, 1, pk, NULL, NULL), 0);
		CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
		memset(&c, 0, sizeof c);
		c.op = WS_OP_UPDATE;
		c.site = s;
		c.counter = 1;
		c.pk = &k;
		c.mask = &mask;
		c.vals = &t[i].v;
		c.nvals = 1;
		CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
		CHECK_INT(ws_batch_encode(&b, &out), 0);
		CHECK_MEM(out.p, out.len, want, n);
		CHECK(roundtrip_ok(&b, want, n));
		ws_batch_release(&b);
		ws_buf_release(&out);
	}
}

/* A composite key in an order other than the declared one. */
TEST(multi_column_key)
{
	static const char *const cols[] = {"a", "b", "c", "d", "e"};
	static const uint32_t pk[] = {3, 0, 2}; /* d, a, c */
	struct ws_value k[3] = {vbytes(WS_TEXT, "dd", 2), vint(-7), vreal(2.5)};
	struct ws_value v[3] = {vint(10), vbytes(WS_BLOB, "\x01", 1), vint(3)};
	uint8_t mask = 0x12; /* b and e */
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_change c;
	uint32_t s;
	char err[WS_ERRLEN] = "";
	static const uint8_t want_table[] = {
		0x01, 't', 0x05, 0x01, 'a', 0x01, 'b', 0x01, 'c', 0x01, 'd',
		0x01, 'e', 0x03, 0x03, 0x00, 0x02,
	};

	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "t", 5, cols, 3, pk, NULL, err), 0);
	CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
	memset(&c, 0, sizeof c);
	c.op = WS_OP_INSERT;
	c.site = s;
	c.counter = 1;
	c.pk = k;
	c.mask = &mask;
	c.vals = v;
	c.nvals = 2;
	CHECK_INT(ws_batch_add_change(&b, &c, err), 0);
	/* A key column in the mask is refused, whichever one. */
	c.nvals = 3;
	mask = 0x13;
	CHECK_INT(ws_batch_add_change(&b, &c, NULL), WS_EINVAL);
	mask = 0x1a;
	CHECK_INT(ws_batch_add_change(&b, &c, NULL), WS_EINVAL);
	mask = 0x16;
	CHECK_INT(ws_batch_add_change(&b, &c, NULL), WS_EINVAL);
	mask = 0x12;
	c.nvals = 2;
	CHECK_INT(b.nchanges, 1);

	CHECK_INT(ws_batch_encode(&b, &out), 0);
	/* flags 00, ntables 01, then the table as described. */
	CHECK(out.len > 2 + sizeof want_table);
	if (out.len > 2 + sizeof want_table)
		CHECK_MEM(out.p + 2, sizeof want_table, want_table,
		    sizeof want_table);
	CHECK(roundtrip_ok(&b, out.p, out.len));
	ws_batch_init(&d);
	CHECK_INT(decode_copy(&d, out.p, out.len, err), 0);
	if (d.ntables == 1 && d.tables[0].npk == 3) {
		CHECK(d.tables[0].pk[0] == 3 && d.tables[0].pk[1] == 0 &&
		    d.tables[0].pk[2] == 2);
		CHECK(d.nchanges == 1);
		if (d.nchanges == 1) {
			CHECK(value_eq(&d.changes[0].pk[0], &k[0]));
			CHECK(value_eq(&d.changes[0].pk[1], &k[1]));
			CHECK(value_eq(&d.changes[0].pk[2], &k[2]));
		}
	} else {
		CHECK(0);
	}
	ws_batch_release(&d);
	ws_batch_release(&b);
	ws_buf_release(&out);
}

/* Several tables and sites; site indexes on the wire only when > 1. */
TEST(tables_and_sites)
{
	static const char *const c1[] = {"id", "x"};
	static const char *const c2[] = {"x", "y", "id"};
	static const uint32_t pk1[] = {0}, pk2[] = {2};
	struct ws_siteid sites[4];
	struct ws_batch b;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_change c;
	struct ws_value k, v = vint(5);
	uint8_t mask1 = 0x02, mask2 = 0x03;
	uint32_t t1, t2, t3, s, i;
	static const int order[] = {2, 0, 2, 3, 1, 0, 1, 3, 3, 2};

	for (i = 0; i < 4; i++) {
		memset(&sites[i], 0, sizeof sites[i]);
		sites[i].b[0] = (uint8_t)(0xf0 - 0x30 * i); /* not sorted */
		sites[i].b[15] = (uint8_t)i;
	}
	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "one", 2, c1, 1, pk1, &t1, NULL), 0);
	CHECK_INT(ws_batch_add_table(&b, "unused", 2, c1, 1, pk1, &t3, NULL), 0);
	CHECK_INT(ws_batch_add_table(&b, "two", 3, c2, 1, pk2, &t2, NULL), 0);
	CHECK(t1 == 0 && t3 == 1 && t2 == 2);
	CHECK_INT(ws_batch_find_table(&b, "two"), 2);
	CHECK_INT(ws_batch_find_table(&b, "unused"), 1);
	memset(&c, 0, sizeof c);
	for (i = 0; i < NELEM(order); i++) {
		CHECK_INT(ws_batch_site(&b, &sites[order[i]], &s), 0);
		k = vint(i);
		c.table = i % 2 ? t2 : t1;
		c.op = i % 4 == 3 ? WS_OP_DELETE : WS_OP_UPDATE;
		c.site = s;
		c.counter = 100 - i * 7;
		c.pk = &k;
		c.mask = c.op == WS_OP_DELETE ? NULL : i % 2 ? &mask2 : &mask1;
		c.vals = &v;
		c.nvals = c.op == WS_OP_DELETE ? 0 : i % 2 ? 2 : 1;
		{
			struct ws_value two[2] = {v, vnull()};

			if (c.nvals == 2)
				c.vals = two;
			CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
		}
	}
	CHECK_INT(b.nsites, 4);
	/* Sites in order of first use: 2, 0, 3, 1. */
	CHECK_MEM(b.sites[0].b, 16, sites[2].b, 16);
	CHECK_MEM(b.sites[1].b, 16, sites[0].b, 16);
	CHECK_MEM(b.sites[2].b, 16, sites[3].b, 16);
	CHECK_MEM(b.sites[3].b, 16, sites[1].b, 16);
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK(roundtrip_ok(&b, out.p, out.len));
	ws_batch_release(&b);
	ws_buf_release(&out);
}

/* Masks of more than one byte: 9, 64, 65 and 200 columns. */
TEST(wide_tables)
{
	static const uint32_t widths[] = {8, 9, 16, 17, 64, 65, 200};
	size_t w;

	for (w = 0; w < NELEM(widths); w++) {
		uint32_t ncols = widths[w], i, pk = ncols / 2, s;
		const char **cols = calloc(ncols, sizeof *cols);
		char (*names)[16] = calloc(ncols, sizeof *names);
		uint8_t *mask = calloc(ws_mask_len(ncols), 1);
		struct ws_value *v = calloc(ncols, sizeof *v), k = vint(1);
		struct ws_batch b;
		struct ws_buf out = WS_BUF_INIT;
		struct ws_change c;
		uint32_t nv = 0;

		for (i = 0; i < ncols; i++) {
			snprintf(names[i], sizeof names[i], "col%u", (unsigned)i);
			cols[i] = names[i];
		}
		/* The first, the last, and every third column. */
		for (i = 0; i < ncols; i++) {
			if (i == pk || !(i == 0 || i == ncols - 1 || i % 3 == 0))
				continue;
			ws_mask_set(mask, i);
			v[nv++] = vint((int64_t)i * 1000);
		}
		ws_batch_init(&b);
		CHECK_INT(ws_batch_add_table(&b, "wide", ncols, cols, 1, &pk,
		    NULL, NULL), 0);
		CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
		memset(&c, 0, sizeof c);
		c.op = WS_OP_UPDATE;
		c.site = s;
		c.counter = 9;
		c.pk = &k;
		c.mask = mask;
		c.vals = v;
		c.nvals = nv;
		CHECK_INT(ws_batch_add_change(&b, &c, NULL), 0);
		/* A bit past the last column, where the mask has room. */
		if (ncols % 8) {
			ws_mask_set(mask, ncols);
			v[nv] = vint(0);
			c.nvals = nv + 1;
			CHECK_INT(ws_batch_add_change(&b, &c, NULL), WS_EINVAL);
			mask[ncols / 8] &= (uint8_t)~(1u << (ncols % 8));
			c.nvals = nv;
		}
		/* nvals must match the mask. */
		c.nvals = nv - 1;
		CHECK_INT(ws_batch_add_change(&b, &c, NULL), WS_EINVAL);
		c.nvals = nv;
		CHECK_INT(b.nchanges, 1);
		CHECK_INT(ws_batch_encode(&b, &out), 0);
		CHECK(roundtrip_ok(&b, out.p, out.len));
		ws_batch_release(&b);
		ws_buf_release(&out);
		free(cols);
		free(names);
		free(mask);
		free(v);
	}
}

/* The batch's own dot (flag bit 1), after the clock when both are there. */
TEST(batch_dot)
{
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_vclock vc = WS_VCLOCK_INIT;
	uint8_t want[64];
	size_t n = 0;
	char err[WS_ERRLEN] = "";
	int rc;

	ws_batch_init(&b);
	ws_batch_init(&d);
	CHECK_INT(ws_batch_set_dot(&b, &site_a, 0), WS_EINVAL);
	CHECK_INT(ws_batch_set_dot(&b, &site_a, (uint64_t)INT64_MAX + 1),
	    WS_EINVAL);
	CHECK(!b.has_dot);
	CHECK_INT(ws_batch_set_dot(&b, &site_a, 5), 0);
	CHECK(b.has_dot && b.dot_counter == 5);
	/* flags 02, the dot, no tables, sites or changes. */
	want[n++] = 0x02;
	memcpy(want + n, site_a.b, 16);
	n += 16;
	want[n++] = 0x05;
	want[n++] = 0x00; want[n++] = 0x00; want[n++] = 0x00;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, want, n);
	CHECK(roundtrip_ok(&b, want, n));
	CHECK_INT(decode_copy(&d, want, n, err), 0);
	CHECK(d.has_dot && d.dot_counter == 5 &&
	    memcmp(d.dot_site.b, site_a.b, 16) == 0);
	CHECK(!d.has_clock);

	/* With a clock too: flags 03, the clock, then the dot. */
	CHECK_INT(ws_vclock_set(&vc, &site_b, 9), 0);
	CHECK_INT(ws_batch_set_clock(&b, &vc), 0);
	CHECK_INT(ws_batch_set_dot(&b, &site_b, (uint64_t)INT64_MAX), 0);
	n = 0;
	want[n++] = 0x03;
	want[n++] = 0x01;
	memcpy(want + n, site_b.b, 16);
	n += 16;
	want[n++] = 0x09;
	memcpy(want + n, site_b.b, 16);
	n += 16;
	memcpy(want + n, "\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 9);
	n += 9;
	want[n++] = 0x00; want[n++] = 0x00; want[n++] = 0x00;
	out.len = 0;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, want, n);
	CHECK(roundtrip_ok(&b, want, n));

	/* A dot counter of 0, above 2^63-1, non-minimal, or cut short. */
	want[35] = 0x00; /* counter 0, then the three counts */
	want[36] = 0x00;
	want[37] = 0x00;
	want[38] = 0x00;
	rc = decode_copy(&d, want, 39, err);
	CHECK_INT(rc, WS_ECORRUPT);
	CHECK(batch_is_empty(&d));
	{
		uint8_t p[64];
		size_t k;

		n = 0;
		p[n++] = 0x02;
		memcpy(p + n, site_a.b, 16);
		n += 16;
		k = n;
		memcpy(p + n, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 10);
		n += 10;
		p[n++] = 0x00; p[n++] = 0x00; p[n++] = 0x00;
		rc = decode_copy(&d, p, n, err);
		CHECK(rc == WS_ECORRUPT || rc == WS_ERANGE);
		CHECK(batch_is_empty(&d));
		memcpy(p + k, "\x85\x00\x00\x00\x00", 5);
		CHECK_INT(decode_copy(&d, p, k + 5, err), WS_ECORRUPT);
		p[k] = 0x05;
		for (n = 0; n < k + 4; n++)
			CHECK_INT(decode_copy(&d, p, n, err), WS_ETRUNC);
		CHECK(roundtrip_ok(NULL, p, k + 4));
	}
	ws_vclock_release(&vc);
	ws_batch_release(&b);
	ws_batch_release(&d);
	ws_buf_release(&out);
}

/* The Lamport number, when given, follows the dot: flags 06. */
TEST(batch_lamport)
{
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	uint8_t want[64];
	size_t n = 0;
	char err[WS_ERRLEN] = "";

	ws_batch_init(&b);
	ws_batch_init(&d);
	CHECK_INT(ws_batch_set_dot(&b, &site_a, 5), 0);
	ws_batch_set_lamport(&b, 300);
	want[n++] = 0x06;
	memcpy(want + n, site_a.b, 16);
	n += 16;
	want[n++] = 0x05;
	want[n++] = 0xac; want[n++] = 0x02; /* 300 */
	want[n++] = 0x00; want[n++] = 0x00; want[n++] = 0x00;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK_MEM(out.p, out.len, want, n);
	CHECK(roundtrip_ok(&b, want, n));
	CHECK_INT(decode_copy(&d, want, n, err), 0);
	CHECK(d.has_lamport && d.lamport == 300 && d.has_dot && !d.has_clock);
	/* Cut inside the number; non-minimal. */
	CHECK_INT(decode_copy(&d, want, 19, err), WS_ETRUNC);
	want[19] = 0x80; want[20] = 0x00;
	CHECK_INT(decode_copy(&d, want, n, err), WS_ECORRUPT);
	ws_batch_release(&b);
	ws_batch_release(&d);
	ws_buf_release(&out);
}

/* The public value codec: the bytes of values_bytes, one at a time. */
TEST(value_codec)
{
	static const struct {
		struct ws_value v;
		size_t n;
		uint8_t b[12];
	} t[] = {
		{{WS_NULL, 0, 0, NULL, 0}, 1, {0x00}},
		{{WS_INTEGER, 0, 0, NULL, 0}, 2, {0x01, 0x00}},
		{{WS_INTEGER, INT64_MAX, 0, NULL, 0}, 11,
		    {0x01, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{{WS_REAL, 0, 1.5, NULL, 0}, 9,
		    {0x02, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f}},
		{{WS_TEXT, 0, 0, (const uint8_t *)"\0\xff", 2}, 4,
		    {0x03, 0x02, 0x00, 0xff}},
		{{WS_BLOB, 0, 0, (const uint8_t *)"", 0}, 2, {0x04, 0x00}},
	};
	static const struct {
		size_t n;
		uint8_t b[4];
	} bad[] = {
		{1, {0x05}}, {1, {0xff}}, {3, {0x01, 0x80, 0x00}},
		{3, {0x03, 0x81, 0x00}},
	};
	size_t i, k;

	for (i = 0; i < NELEM(t); i++) {
		struct ws_buf out = WS_BUF_INIT;
		struct ws_rd r;
		struct ws_value v;
		uint8_t copy[16];

		CHECK_INT(ws_value_encode(&t[i].v, &out), 0);
		CHECK_MEM(out.p, out.len, t[i].b, t[i].n);
		memcpy(copy, t[i].b, t[i].n);
		copy[t[i].n] = 0x77;
		ws_rd_init(&r, copy, t[i].n + 1);
		CHECK_INT(ws_value_decode(&r, &v), 0);
		CHECK(value_eq(&v, &t[i].v));
		CHECK_INT(ws_rd_offset(&r), t[i].n);
		if (v.type == WS_TEXT || v.type == WS_BLOB)
			CHECK(v.p == copy + 2);
		for (k = 0; k < t[i].n; k++) {
			ws_rd_init(&r, copy, k);
			CHECK_INT(ws_value_decode(&r, &v), WS_ETRUNC);
		}
		ws_buf_release(&out);
	}
	for (i = 0; i < NELEM(bad); i++) {
		struct ws_rd r;
		struct ws_value v;

		ws_rd_init(&r, bad[i].b, bad[i].n);
		CHECK_INT(ws_value_decode(&r, &v), WS_ECORRUPT);
	}
}

/* ---- random batches ---- */

static const char *const name_bits[] = {
	"", "x", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", " ", "\"",
	"\\", "\t", "/", "_", "Z", "\xe4\xb8\xad",
};

/* A unique, valid name: the prefix and number, then random UTF-8. */
static void rand_name(char *out, size_t cap, const char *prefix, unsigned n)
{
	size_t len = (size_t)snprintf(out, cap, "%s%u", prefix, n);
	unsigned k = (unsigned)t_below(t_below(8) ? 4 : 60), i;

	for (i = 0; i < k; i++) {
		const char *bit = name_bits[t_below(NELEM(name_bits))];
		size_t bl = strlen(bit);

		if (len + bl + 1 > cap)
			break;
		memcpy(out + len, bit, bl + 1);
		len += bl;
	}
}

static double rand_real(void)
{
	static const uint64_t special[] = {
		0x7ff8000000000000ull, 0xfff8000000000000ull,
		0x7ff0000000000001ull, 0x7fffffffffffffffull,
		0x7ff0000000000000ull, 0xfff0000000000000ull,
		0x8000000000000000ull, 0x0000000000000000ull,
		0x0000000000000001ull, 0x7fefffffffffffffull,
	};

	switch (t_below(4)) {
	case 0:
		return bitsd(special[t_below(NELEM(special))]);
	case 1:
		return bitsd(t_rand());
	case 2:
		return (double)(int64_t)t_rand() / (double)(1 + t_below(1000));
	default:
		return (double)(int64_t)(t_below(2000)) - 1000.0;
	}
}

static int64_t rand_int(void)
{
	static const int64_t special[] = {0, 1, -1, INT64_MIN, INT64_MAX,
	    INT64_MIN + 1, INT64_MAX - 1, 63, 64, -64, -65};

	switch (t_below(3)) {
	case 0:
		return special[t_below(NELEM(special))];
	case 1:
		return (int64_t)t_rand();
	default:
		return (int64_t)t_below(200) - 100;
	}
}

/* Bytes for TEXT or BLOB: random, valid UTF-8, or with NULs. */
static size_t rand_bytes(uint8_t *p, size_t cap)
{
	size_t n = (size_t)t_below(t_below(10) ? 12 : cap), i = 0;

	switch (t_below(3)) {
	case 0:
		for (i = 0; i < n; i++)
			p[i] = (uint8_t)t_rand();
		return n;
	case 1:
		while (i < n) {
			const char *bit = name_bits[t_below(NELEM(name_bits))];
			size_t bl = strlen(bit);

			if (i + bl > n)
				break;
			memcpy(p + i, bit, bl);
			i += bl;
		}
		return i;
	default:
		for (i = 0; i < n; i++)
			p[i] = t_below(3) ? (uint8_t)('a' + t_below(26)) : 0;
		return n;
	}
}

/* A random value; TEXT and BLOB bytes in a fresh heap block *heap. */
static struct ws_value rand_value(uint8_t **heap)
{
	struct ws_value v = vnull();

	*heap = NULL;
	v.type = (uint8_t)t_below(5);
	switch (v.type) {
	case WS_INTEGER:
		v.i = rand_int();
		break;
	case WS_REAL:
		v.r = rand_real();
		break;
	case WS_TEXT:
	case WS_BLOB:
		*heap = malloc(400);
		v.n = rand_bytes(*heap, 400);
		v.p = *heap;
		break;
	}
	return v;
}

static void rand_site(struct ws_siteid *s)
{
	size_t i;

	for (i = 0; i < WS_SITEID_LEN; i++)
		s->b[i] = (uint8_t)t_rand();
	if (t_below(3) == 0)
		memset(s->b, 0, 8); /* shared prefixes */
}

static uint64_t rand_counter(uint64_t prev)
{
	switch (t_below(4)) {
	case 0:
		return 1 + t_below(20);
	case 1:
		return prev < (uint64_t)INT64_MAX ? prev + 1 : 1;
	case 2:
		return t_below(2) ? (uint64_t)INT64_MAX : 1;
	default:
		return 1 + t_below((uint64_t)INT64_MAX);
	}
}

/*
 * Fill b with a random batch through the builder.  Every input buffer is
 * freed as soon as the builder has returned, and the copy it kept is
 * checked against the input first.
 */
static void gen_batch(struct ws_batch *b)
{
	struct ws_siteid pool[6];
	unsigned npool = 1 + (unsigned)t_below(NELEM(pool));
	unsigned ntables = 1 + (unsigned)t_below(t_below(4) ? 3 : 6), i, j;
	unsigned nchanges = (unsigned)t_below(t_below(4) ? 8 : 30);
	uint64_t prev = 0;

	for (i = 0; i < npool; i++)
		rand_site(&pool[i]);
	if (t_below(2)) {
		struct ws_vclock vc = WS_VCLOCK_INIT;
		unsigned n = (unsigned)t_below(5);
		struct ws_siteid s;

		for (i = 0; i < n; i++) {
			rand_site(&s);
			CHECK_INT(ws_vclock_set(&vc, &s, rand_counter(0)), 0);
		}
		CHECK_INT(ws_batch_set_clock(b, &vc), 0);
		ws_vclock_release(&vc);
	}
	if (t_below(3) == 0) {
		struct ws_siteid s;

		rand_site(&s);
		CHECK_INT(ws_batch_set_dot(b, &s, rand_counter(0)), 0);
	}
	for (i = 0; i < ntables; i++) {
		static const uint32_t widths[] = {1, 2, 3, 5, 8, 9, 16, 63, 64, 65, 130};
		uint32_t ncols = widths[t_below(NELEM(widths))];
		uint32_t npk = 1 + (uint32_t)t_below(ncols < 3 ? ncols : 3);
		char **names = calloc(ncols, sizeof *names);
		char tname[1100];
		uint32_t pk[3], idx = 99;
		char err[WS_ERRLEN] = "";

		for (j = 0; j < ncols; j++) {
			names[j] = malloc(200);
			rand_name(names[j], 200, "c", j);
		}
		/* Distinct random key columns in a random order. */
		for (j = 0; j < npk; j++) {
			uint32_t c, q;
			int dup;

			do {
				c = (uint32_t)t_below(ncols);
				dup = 0;
				for (q = 0; q < j; q++)
					dup |= pk[q] == c;
			} while (dup);
			pk[j] = c;
		}
		if (t_below(10) == 0) {
			/* A name of exactly the longest length. */
			memset(tname, 'n', WS_DELTA_MAX_NAME);
			tname[WS_DELTA_MAX_NAME] = '\0';
			snprintf(tname, 8, "t%u", i);
			tname[strlen(tname)] = 'n';
		} else {
			rand_name(tname, sizeof tname, "t", i);
		}
		CHECK_INT(ws_batch_add_table(b, tname, ncols,
		    (const char *const *)names, npk, pk, &idx, err), 0);
		CHECK_INT(idx, i);
		for (j = 0; j < ncols; j++) {
			memset(names[j], 0x5a, 200);
			free(names[j]);
		}
		free(names);
	}
	for (i = 0; i < nchanges && b->ntables; i++) {
		struct ws_change c;
		const struct ws_table *t;
		struct ws_value pkv[3], vals[130];
		uint8_t *heap[3 + 130], mask[17];
		unsigned nheap = 0, k;
		uint32_t s = 0;
		char err[WS_ERRLEN] = "";
		const char *why = "";

		memset(&c, 0, sizeof c);
		c.table = (uint32_t)t_below(b->ntables);
		t = &b->tables[c.table];
		c.op = (uint8_t)(1 + t_below(3));
		CHECK_INT(ws_batch_site(b, &pool[t_below(npool)], &s), 0);
		c.site = s;
		c.counter = prev = rand_counter(prev);
		for (k = 0; k < t->npk; k++)
			pkv[k] = rand_value(&heap[nheap++]);
		c.pk = pkv;
		if (c.op != WS_OP_DELETE) {
			unsigned density = (unsigned)t_below(4);

			memset(mask, 0, sizeof mask);
			for (k = 0; k < t->ncols; k++) {
				int key = 0;
				uint32_t q;

				for (q = 0; q < t->npk; q++)
					key |= t->pk[q] == k;
				if (key || (density == 0 ? 1 : density == 3 ?
				    0 : t_below(density + 1) != 0))
					continue;
				ws_mask_set(mask, k);
				vals[c.nvals++] = rand_value(&heap[nheap++]);
			}
			c.mask = mask;
			c.vals = vals;
		}
		CHECK_INT(ws_batch_add_change(b, &c, err), 0);
		if (b->nchanges == 0 ||
		    !change_eq(b, &b->changes[b->nchanges - 1], &c, &why)) {
			fprintf(stderr, "  builder copy: %s (%s)\n", why, err);
			CHECK(0);
		}
		for (k = 0; k < nheap; k++) {
			if (heap[k])
				memset(heap[k], 0x5a, 400);
			free(heap[k]);
		}
	}
}

TEST(random_roundtrips)
{
	int round, failed = 0;

	for (round = 0; round < 3000 && failed < 3; round++) {
		struct ws_batch b;
		struct ws_buf out = WS_BUF_INIT, again = WS_BUF_INIT;

		ws_batch_init(&b);
		gen_batch(&b);
		CHECK_INT(ws_batch_encode(&b, &out), 0);
		/* Encoding is deterministic. */
		CHECK_INT(ws_batch_encode(&b, &again), 0);
		CHECK_MEM(again.p, again.len, out.p, out.len);
		if (!roundtrip_ok(&b, out.p, out.len)) {
			fprintf(stderr, "  round %d\n", round);
			failed++;
		}
		ws_buf_release(&out);
		ws_buf_release(&again);
		ws_batch_release(&b);
	}
	CHECK_INT(failed, 0);
}

/* ---- the canonical form ---- */

struct bad {
	const char *what;
	size_t off, del;
	const char *ins;
	size_t nins;
	int rc; /* 0: any error */
};

TEST(canonical_rejects)
{
	static const struct bad bad[] = {
		{"unknown flag 0x10", 0, 1, "\x11", 1, WS_ECORRUPT},
		{"unknown flag 0x10 alone", 0, 1, "\x10", 1, WS_ECORRUPT},
		{"unknown flag 0x08", 0, 1, "\x09", 1, WS_ECORRUPT},
		{"unknown flag 0x80", 0, 1, "\x81\x01", 2, WS_ECORRUPT},
		{"non-minimal flags", 0, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"non-minimal clock size", 1, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"non-minimal clock counter", 18, 1, "\x85\x00", 2, WS_ECORRUPT},
		{"clock counter 0", 18, 1, "\x00", 1, WS_ECORRUPT},
		{"non-minimal ntables", 19, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"non-minimal name length", 20, 1, "\x85\x00", 2, WS_ECORRUPT},
		{"empty table name", 20, 6, "\x00", 1, WS_ECORRUPT},
		{"NUL in table name", 20, 6, "\x05no\0es", 6, WS_ECORRUPT},
		{"table name not UTF-8", 20, 6, "\x05no\xff" "es", 6, WS_ECORRUPT},
		{"table name overlong UTF-8", 20, 6, "\x05n\xc0\xaf" "es", 6, WS_ECORRUPT},
		{"column name not UTF-8", 27, 3, "\x02i\xff", 3, WS_ECORRUPT},
		{"empty column name", 27, 3, "\x00", 1, WS_ECORRUPT},
		{"duplicate column name", 36, 5, "\x05title", 6, WS_ECORRUPT},
		{"non-minimal ncols", 26, 1, "\x83\x00", 2, WS_ECORRUPT},
		{"no columns", 26, 15, "\x00", 1, WS_ECORRUPT},
		{"no key", 41, 2, "\x00", 1, WS_ECORRUPT},
		{"key index out of range", 42, 1, "\x03", 1, WS_ECORRUPT},
		{"key index repeated", 41, 2, "\x02\x00\x00", 3, WS_ECORRUPT},
		{"more keys than columns", 41, 2, "\x04\x00\x01\x02\x00", 5,
		    WS_ECORRUPT},
		{"non-minimal key index", 42, 1, "\x80\x00", 2, WS_ECORRUPT},
		{"non-minimal nsites", 43, 1, "\x82\x00", 2, WS_ECORRUPT},
		{"duplicate site", 60, 16,
		    "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff",
		    16, WS_ECORRUPT},
		{"unused site", 92, 1, "\x00", 1, WS_ECORRUPT},
		{"site index out of range", 92, 1, "\x02", 1, WS_ECORRUPT},
		{"non-minimal site index", 92, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"non-minimal nchanges", 76, 1, "\x83\x00", 2, WS_ECORRUPT},
		{"op 0", 77, 1, "\x00", 1, WS_ECORRUPT},
		{"table index out of range", 77, 1, "\x05", 1, WS_ECORRUPT},
		{"non-minimal table|op", 77, 1, "\x81\x00", 2, WS_ECORRUPT},
		{"counter 0", 79, 1, "\x00", 1, WS_ECORRUPT},
		{"counter back to 0", 93, 1, "\x0b", 1, WS_ECORRUPT},
		{"non-minimal counter delta", 79, 1, "\x8c\x00", 2, WS_ECORRUPT},
		{"non-minimal key value", 81, 1, "\x82\x00", 2, WS_ECORRUPT},
		{"unknown value type", 83, 1, "\x05", 1, WS_ECORRUPT},
		{"value type 0xff", 83, 1, "\xff", 1, WS_ECORRUPT},
		{"non-minimal text length", 84, 1, "\x82\x00", 2, WS_ECORRUPT},
		{"key column in mask", 82, 1, "\x07\x01\x02", 3, WS_ECORRUPT},
		{"mask bit past the last column", 82, 9,
		    "\x0e\x03\x02hi\x04\x02\x00\xff\x00", 11, WS_ECORRUPT},
		{"mask bit 7", 82, 9, "\x86\x03\x02hi\x04\x02\x00\xff\x00", 11,
		    WS_ECORRUPT},
		{"trailing byte", 112, 0, "\x00", 1, WS_ECORRUPT},
		{"trailing bytes", 112, 0, "\x03\x00\x08\x01\x04", 5, WS_ECORRUPT},
		/* Counters must stay within 1..2^63-1. */
		{"negative counter", 93, 1, "\x0d", 1, 0},
		{"counter past 2^63-1", 93, 1,
		    "\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10, 0},
	};
	uint8_t buf[256];
	size_t i, n;

	for (i = 0; i < NELEM(bad); i++) {
		struct ws_batch b;
		char err[WS_ERRLEN] = "";
		int rc;

		n = splice(buf, batch_small, sizeof batch_small, bad[i].off,
		    bad[i].del, bad[i].ins, bad[i].nins);
		ws_batch_init(&b);
		build_small(&b); /* decode must replace, and empty on error */
		rc = decode_copy(&b, buf, n, err);
		if (bad[i].rc ? rc != bad[i].rc :
		    !(rc == WS_ECORRUPT || rc == WS_ERANGE)) {
			fprintf(stderr, "  %s: got %d (%s), expected %d\n",
			    bad[i].what, rc, err, bad[i].rc ? bad[i].rc :
			    WS_ECORRUPT);
			CHECK(0);
		}
		if (rc && err[0] == '\0') {
			fprintf(stderr, "  %s: no message\n", bad[i].what);
			CHECK(0);
		}
		if (!batch_is_empty(&b)) {
			fprintf(stderr, "  %s: batch not empty after error\n",
			    bad[i].what);
			CHECK(0);
		}
		ws_batch_release(&b);
	}
}

/* Hand-made small batches that are wrong in ways edits can't express. */
TEST(canonical_rejects_other)
{
	uint8_t p[64];
	size_t n;
	struct ws_batch b;
	char err[WS_ERRLEN];

	ws_batch_init(&b);
	/* A listed site with no change at all. */
	n = 0;
	p[n++] = 0x00; p[n++] = 0x00; p[n++] = 0x01;
	memcpy(p + n, site_a.b, 16);
	n += 16;
	p[n++] = 0x00;
	CHECK_INT(decode_copy(&b, p, n, err), WS_ECORRUPT);
	/* Changes but no site. */
	n = 0;
	p[n++] = 0x00; p[n++] = 0x01;
	p[n++] = 0x01; p[n++] = 't';
	p[n++] = 0x01; p[n++] = 0x01; p[n++] = 'k';
	p[n++] = 0x01; p[n++] = 0x00;
	p[n++] = 0x00;                 /* nsites */
	p[n++] = 0x01;                 /* nchanges */
	p[n++] = 0x03; p[n++] = 0x02; p[n++] = 0x01; p[n++] = 0x02;
	CHECK(decode_copy(&b, p, n, err) == WS_ECORRUPT);
	/* The same with one site is fine: a delete of k=1, counter 1. */
	n = 9;
	p[n++] = 0x01;
	memcpy(p + n, site_a.b, 16);
	n += 16;
	p[n++] = 0x01;
	p[n++] = 0x03; p[n++] = 0x02; p[n++] = 0x01; p[n++] = 0x02;
	CHECK(roundtrip_ok(NULL, p, n));
	/* Duplicate table names. */
	n = 0;
	p[n++] = 0x00; p[n++] = 0x02;
	p[n++] = 0x01; p[n++] = 't'; p[n++] = 0x01; p[n++] = 0x01; p[n++] = 'k';
	p[n++] = 0x01; p[n++] = 0x00;
	p[n++] = 0x01; p[n++] = 't'; p[n++] = 0x01; p[n++] = 0x01; p[n++] = 'j';
	p[n++] = 0x01; p[n++] = 0x00;
	p[n++] = 0x00; p[n++] = 0x00;
	CHECK_INT(decode_copy(&b, p, n, err), WS_ECORRUPT);
	p[10] = 'u';
	CHECK(roundtrip_ok(NULL, p, n)); /* distinct names: fine */
	/* A clock with sites out of order, or repeated. */
	n = 0;
	p[n++] = 0x01; p[n++] = 0x02;
	memcpy(p + n, site_b.b, 16);
	n += 16;
	p[n++] = 0x01;
	memcpy(p + n, site_a.b, 16);
	n += 16;
	p[n++] = 0x01;
	p[n++] = 0x00; p[n++] = 0x00; p[n++] = 0x00;
	CHECK_INT(decode_copy(&b, p, n, err), WS_ECORRUPT);
	memcpy(p + 2, site_a.b, 16);
	CHECK_INT(decode_copy(&b, p, n, err), WS_ECORRUPT);
	memcpy(p + 19, site_b.b, 16);
	CHECK(roundtrip_ok(NULL, p, n));
	/* Sites first used in the order 1, 0: refused.  Listing them the
	 * other way round instead is a different, valid batch. */
	{
		uint8_t q[sizeof batch_small];

		memcpy(q, batch_small, sizeof q);
		q[78] = 1;
		q[92] = 0;
		q[108] = 1;
		CHECK_INT(decode_copy(&b, q, sizeof q, err), WS_ECORRUPT);
		q[92] = 1;
		q[108] = 0;
		CHECK_INT(decode_copy(&b, q, sizeof q, err), WS_ECORRUPT);
		memcpy(q, batch_small, sizeof q);
		memcpy(q + 44, site_b.b, 16);
		memcpy(q + 60, site_a.b, 16);
		CHECK(roundtrip_ok(NULL, q, sizeof q));
	}
	/* Nothing at all, and one byte. */
	CHECK_INT(decode_copy(&b, p, 0, err), WS_ETRUNC);
	p[0] = 0x00;
	CHECK_INT(decode_copy(&b, p, 1, err), WS_ETRUNC);
	CHECK(batch_is_empty(&b));
	ws_batch_release(&b);
}

/*
 * Every truncation of valid batches is refused, never a crash, and
 * leaves the batch empty.  With strict, the code must be WS_ETRUNC
 * ("input ended in the middle of an item"), not a misleading
 * "count too large".
 */
static int check_truncations(int strict)
{
	size_t k;
	int round, failed = 0;
	struct ws_batch b;
	char err[WS_ERRLEN];

	ws_batch_init(&b);
	for (k = 0; k < sizeof batch_small && failed < 5; k++) {
		int rc = decode_copy(&b, batch_small, k, err);

		if ((strict ? rc != WS_ETRUNC : rc >= 0) || !batch_is_empty(&b)) {
			fprintf(stderr, "  prefix %zu: %d (%s)\n", k, rc, err);
			failed++;
		}
	}
	for (round = 0; round < 300 && failed < 5; round++) {
		struct ws_batch g;
		struct ws_buf out = WS_BUF_INIT;

		ws_batch_init(&g);
		gen_batch(&g);
		CHECK_INT(ws_batch_encode(&g, &out), 0);
		for (k = 0; k < out.len && failed < 5; k++) {
			int rc = decode_copy(&b, out.p, k, err);

			if ((strict ? rc != WS_ETRUNC : rc >= 0) ||
			    !batch_is_empty(&b)) {
				fprintf(stderr, "  round %d prefix %zu of %zu: "
				    "%d (%s)\n", round, k, out.len, rc, err);
				failed++;
			}
		}
		ws_buf_release(&out);
		ws_batch_release(&g);
	}
	ws_batch_release(&b);
	return failed;
}

TEST(truncations)
{
	CHECK_INT(check_truncations(0), 0);
}

TEST(truncations_etrunc)
{
	CHECK_INT(check_truncations(1), 0);
}

/*
 * Bit flips: whatever the decoder accepts must be canonical (re-encode
 * to the same bytes); everything else is refused with a data error.
 */
static int flip_check(const uint8_t *p, size_t n, const char *what)
{
	struct ws_batch b;
	struct ws_buf out = WS_BUF_INIT;
	char err[WS_ERRLEN] = "";
	int rc, ok = 1;

	ws_batch_init(&b);
	rc = decode_copy(&b, p, n, err);
	if (rc == 0) {
		if (ws_batch_encode(&b, &out) != 0 || out.len != n ||
		    memcmp(out.p, p, n) != 0) {
			fprintf(stderr, "  %s: accepted but not canonical\n", what);
			ok = 0;
		}
	} else if (rc != WS_ECORRUPT && rc != WS_ETRUNC && rc != WS_ERANGE &&
	    rc != WS_ETOOBIG) {
		fprintf(stderr, "  %s: rc %d (%s)\n", what, rc, err);
		ok = 0;
	} else if (!batch_is_empty(&b)) {
		fprintf(stderr, "  %s: batch not empty after error\n", what);
		ok = 0;
	}
	ws_buf_release(&out);
	ws_batch_release(&b);
	return ok;
}

TEST(bitflips)
{
	uint8_t buf[sizeof batch_small];
	size_t pos;
	int bit, round, failed = 0;

	/* Every single-bit flip of the golden batch. */
	for (pos = 0; pos < sizeof batch_small; pos++) {
		for (bit = 0; bit < 8; bit++) {
			char what[64];

			memcpy(buf, batch_small, sizeof buf);
			buf[pos] ^= (uint8_t)(1u << bit);
			snprintf(what, sizeof what, "byte %zu bit %d", pos, bit);
			if (!flip_check(buf, sizeof buf, what))
				failed++;
		}
	}
	/* Random flips of random batches. */
	for (round = 0; round < 1500 && failed < 10; round++) {
		struct ws_batch g;
		struct ws_buf out = WS_BUF_INIT;
		int nflips = 1 + (int)t_below(3), f;
		char what[64];

		ws_batch_init(&g);
		gen_batch(&g);
		CHECK_INT(ws_batch_encode(&g, &out), 0);
		for (f = 0; f < nflips && out.len; f++)
			out.p[t_below(out.len)] ^= (uint8_t)(1u << t_below(8));
		snprintf(what, sizeof what, "round %d", round);
		if (!flip_check(out.p, out.len, what))
			failed++;
		/* And random bytes overwritten. */
		if (out.len) {
			out.p[t_below(out.len)] = (uint8_t)t_rand();
			if (!flip_check(out.p, out.len, what))
				failed++;
		}
		ws_buf_release(&out);
		ws_batch_release(&g);
	}
	CHECK_INT(failed, 0);
}

/* Huge counts claimed by a few bytes: refused without a huge allocation
 * (ASan aborts on one). */
TEST(huge_claims)
{
	static const struct {
		const char *what;
		size_t n;
		uint8_t b[24];
	} t[] = {
		{"clock entries", 7, {0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"tables", 7, {0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"tables 4097", 3, {0x00, 0x81, 0x20}},
		{"name length", 8, {0x00, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"name length 1025", 5, {0x00, 0x01, 0x81, 0x08, 'a'}},
		{"columns", 10, {0x00, 0x01, 0x01, 't', 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"columns 32768", 7, {0x00, 0x01, 0x01, 't', 0x80, 0x80, 0x02}},
		{"keys", 10, {0x00, 0x01, 0x01, 't', 0x01, 0x01, 'k', 0xff, 0xff, 0x7f}},
		{"sites", 8, {0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"changes", 9, {0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f}},
		{"varint past 64 bits", 12, {0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
		    0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		struct ws_batch b;
		char err[WS_ERRLEN] = "";
		int rc;

		ws_batch_init(&b);
		rc = decode_copy(&b, t[i].b, t[i].n, err);
		CHECK(rc < 0);
		if (rc >= 0)
			fprintf(stderr, "  %s: accepted\n", t[i].what);
		CHECK(batch_is_empty(&b));
		ws_batch_release(&b);
	}
	/* The limits themselves are not mere truncation. */
	for (i = 0; i < NELEM(t); i++) {
		struct ws_batch b;
		char err[WS_ERRLEN] = "";
		int rc;

		if (strcmp(t[i].what, "tables 4097") &&
		    strcmp(t[i].what, "name length 1025") &&
		    strcmp(t[i].what, "columns 32768") &&
		    strcmp(t[i].what, "clock entries"))
			continue;
		ws_batch_init(&b);
		rc = decode_copy(&b, t[i].b, t[i].n, err);
		if (rc != WS_ETOOBIG && rc != WS_ECORRUPT && rc != WS_ERANGE) {
			fprintf(stderr, "  %s: rc %d (%s)\n", t[i].what, rc, err);
			CHECK(0);
		}
		ws_batch_release(&b);
	}
}

/* The builder's limits, and the decoder's at full size. */
TEST(limits)
{
	static const char *const one[] = {"k"};
	static const uint32_t pk0[] = {0};
	char *name = malloc(WS_DELTA_MAX_NAME + 2);
	struct ws_batch b, d;
	struct ws_buf out = WS_BUF_INIT;
	char err[WS_ERRLEN];
	uint32_t i;
	const char **cols;
	char (*cn)[16];
	int rc;

	ws_batch_init(&b);
	ws_batch_init(&d);
	/* Names of 1024 bytes are fine; 1025 are not. */
	memset(name, 'a', WS_DELTA_MAX_NAME + 1);
	name[WS_DELTA_MAX_NAME] = '\0';
	CHECK_INT(ws_batch_add_table(&b, name, 1, one, 1, pk0, NULL, err), 0);
	{
		const char *c1[] = {name};

		CHECK_INT(ws_batch_add_table(&b, "long column", 1, c1, 1, pk0,
		    NULL, err), 0);
	}
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK(roundtrip_ok(&b, out.p, out.len));
	name[WS_DELTA_MAX_NAME] = 'a';
	name[WS_DELTA_MAX_NAME + 1] = '\0';
	err[0] = '\0';
	CHECK_INT(ws_batch_add_table(&b, name, 1, one, 1, pk0, NULL, err),
	    WS_EINVAL);
	CHECK(err[0] != '\0');
	{
		const char *c1[] = {name};

		CHECK_INT(ws_batch_add_table(&b, "t", 1, c1, 1, pk0, NULL, err),
		    WS_EINVAL);
	}
	/* The decoder refuses a 1025-byte name that is all there. */
	{
		uint8_t *p = malloc(WS_DELTA_MAX_NAME + 32);
		size_t n = 0;

		p[n++] = 0x00;
		p[n++] = 0x01;
		n += ws_varint_encode(p + n, WS_DELTA_MAX_NAME + 1);
		memset(p + n, 'a', WS_DELTA_MAX_NAME + 1);
		n += WS_DELTA_MAX_NAME + 1;
		p[n++] = 0x01; p[n++] = 0x01; p[n++] = 'k';
		p[n++] = 0x01; p[n++] = 0x00; p[n++] = 0x00; p[n++] = 0x00;
		rc = decode_copy(&d, p, n, err);
		CHECK(rc == WS_ETOOBIG || rc == WS_ECORRUPT);
		free(p);
	}
	CHECK_INT(b.ntables, 2);
	ws_batch_release(&b);

	/* 32767 columns are fine, 32768 are not. */
	cols = calloc(WS_DELTA_MAX_COLUMNS + 1, sizeof *cols);
	cn = calloc(WS_DELTA_MAX_COLUMNS + 1, sizeof *cn);
	for (i = 0; i <= WS_DELTA_MAX_COLUMNS; i++) {
		snprintf(cn[i], sizeof cn[i], "c%u", (unsigned)i);
		cols[i] = cn[i];
	}
	CHECK_INT(ws_batch_add_table(&b, "wide", WS_DELTA_MAX_COLUMNS + 1, cols,
	    1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(b.ntables, 0);
	CHECK_INT(ws_batch_add_table(&b, "wide", WS_DELTA_MAX_COLUMNS, cols,
	    1, pk0, NULL, err), 0);
	{
		uint32_t last = WS_DELTA_MAX_COLUMNS - 1, s;
		uint8_t *mask = calloc(ws_mask_len(WS_DELTA_MAX_COLUMNS), 1);
		struct ws_value k = vint(1), v = vbytes(WS_TEXT, "end", 3);
		struct ws_change c;

		ws_mask_set(mask, last);
		CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
		memset(&c, 0, sizeof c);
		c.op = WS_OP_UPDATE;
		c.site = s;
		c.counter = 1;
		c.pk = &k;
		c.mask = mask;
		c.vals = &v;
		c.nvals = 1;
		CHECK_INT(ws_batch_add_change(&b, &c, err), 0);
		free(mask);
	}
	out.len = 0;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK(roundtrip_ok(&b, out.p, out.len));
	ws_batch_release(&b);
	free(cols);
	free(cn);

	/* 4096 tables are fine, 4097 are not, from either side. */
	for (i = 0; i < WS_DELTA_MAX_TABLES; i++) {
		char tn[16];

		snprintf(tn, sizeof tn, "t%u", (unsigned)i);
		rc = ws_batch_add_table(&b, tn, 1, one, 1, pk0, NULL, err);
		if (rc) {
			CHECK_INT(rc, 0);
			break;
		}
	}
	CHECK_INT(ws_batch_add_table(&b, "extra", 1, one, 1, pk0, NULL, err),
	    WS_EINVAL);
	CHECK_INT(b.ntables, WS_DELTA_MAX_TABLES);
	out.len = 0;
	CHECK_INT(ws_batch_encode(&b, &out), 0);
	CHECK(roundtrip_ok(&b, out.p, out.len));
	{
		/* Patch ntables 4096 (80 20) to 4097 (81 20) and add one. */
		static const uint8_t extra[] = {0x01, 'x', 0x01, 0x01, 'k', 0x01, 0x00};
		uint8_t *p = malloc(out.len + sizeof extra);
		size_t n;

		CHECK(out.p[1] == 0x80 && out.p[2] == 0x20);
		n = splice(p, out.p, out.len, out.len - 2, 0, extra, sizeof extra);
		p[1] = 0x81;
		rc = decode_copy(&d, p, n, err);
		CHECK(rc == WS_ETOOBIG || rc == WS_ECORRUPT);
		free(p);
	}
	ws_batch_release(&b);
	ws_batch_release(&d);
	ws_buf_release(&out);
	free(name);
}

TEST(builder_rejects)
{
	static const char *const cols[] = {"id", "a", "b"};
	static const char *const dupcols[] = {"id", "a", "a"};
	static const char *const badcols[] = {"id", "a\xff", "b"};
	static const char *const emptycol[] = {"id", "", "b"};
	static const uint32_t pk0[] = {0}, pk_oob[] = {3}, pk_rep[] = {1, 1};
	static const uint32_t pk4[] = {0, 1, 2, 0};
	struct ws_batch b;
	struct ws_buf out = WS_BUF_INIT;
	struct ws_change c, good;
	struct ws_value k = vint(1), v[3] = {vint(1), vint(2), vint(3)};
	uint8_t mask = 0x06;
	uint32_t s, t;
	char err[WS_ERRLEN];
	struct ws_siteid other = site_b;

	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "", 3, cols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t\xff", 3, cols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t\xed\xa0\x80", 3, cols, 1, pk0, NULL,
	    err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 0, cols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 0, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 1, pk_oob, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 2, pk_rep, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 4, pk4, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, dupcols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, badcols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, emptycol, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(b.ntables, 0);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 1, pk0, &t, err), 0);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 1, pk0, NULL, err), WS_EINVAL);
	CHECK_INT(b.ntables, 1);

	CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
	memset(&good, 0, sizeof good);
	good.table = t;
	good.op = WS_OP_UPDATE;
	good.site = s;
	good.counter = 5;
	good.pk = &k;
	good.mask = &mask;
	good.vals = v;
	good.nvals = 2;

	c = good; c.table = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.op = 0;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.op = 4;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.site = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.counter = 0;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.counter = (uint64_t)INT64_MAX + 1;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.nvals = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	c = good; c.nvals = 3;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	{
		uint8_t m = 0x07; /* the key column */

		c = good; c.mask = &m; c.nvals = 3;
		CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
		m = 0x0e; /* past the last column */
		CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
		m = 0x82;
		c.nvals = 2;
		CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	}
	{
		struct ws_value bad[2] = {vint(1), vint(2)};

		bad[1].type = 5;
		c = good; c.vals = bad;
		CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
		k.type = 9;
		c = good;
		CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
		k = vint(1);
	}
	c = good; c.mask = NULL;
	CHECK_INT(ws_batch_add_change(&b, &c, err), WS_EINVAL);
	CHECK_INT(b.nchanges, 0);
	CHECK_INT(ws_batch_add_change(&b, &good, err), 0);
	CHECK_INT(b.nchanges, 1);

	/* A site that no change uses cannot be encoded. */
	CHECK_INT(ws_batch_site(&b, &other, &s), 0);
	CHECK_INT(s, 1);
	CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
	CHECK_INT(s, 0);
	CHECK_INT(ws_batch_encode(&b, &out), WS_EINVAL);
	ws_batch_release(&b);

	/* Sites used out of the order they were added: refused. */
	ws_batch_init(&b);
	CHECK_INT(ws_batch_add_table(&b, "t", 3, cols, 1, pk0, &t, err), 0);
	CHECK_INT(ws_batch_site(&b, &site_a, &s), 0);
	CHECK_INT(ws_batch_site(&b, &site_b, &s), 0);
	c = good; c.site = 1;
	CHECK_INT(ws_batch_add_change(&b, &c, err), 0);
	c = good; c.site = 0;
	CHECK_INT(ws_batch_add_change(&b, &c, err), 0);
	out.len = 0;
	CHECK_INT(ws_batch_encode(&b, &out), WS_EINVAL);
	ws_batch_release(&b);
	ws_buf_release(&out);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(op_names);
	RUN(empty_batch);
	RUN(golden_small);
	RUN(golden_manpage);
	RUN(values_exact);
	RUN(values_bytes);
	RUN(multi_column_key);
	RUN(tables_and_sites);
	RUN(wide_tables);
	RUN(batch_dot);
	RUN(batch_lamport);
	RUN(value_codec);
	RUN(random_roundtrips);
	RUN(canonical_rejects);
	RUN(canonical_rejects_other);
	RUN(truncations);
	RUN(truncations_etrunc);
	RUN(bitflips);
	RUN(huge_claims);
	RUN(limits);
	RUN(builder_rejects);
	TEST_MAIN_END();
}
