/* SPDX-License-Identifier: MIT */
/*
 * inspect-stats.c - --stats: frames and bytes by type, site, working set
 * and table, distinct batches and their copies, conflicts (concurrent
 * writes to one cell), and the summary printed at the end, as text or
 * JSON.
 */
#include "inspect-int.h"

/* --- a map from 64-bit keys to 64-bit values (open addressing) ------------ */

static void u64map_release(struct u64map *m)
{
	free(m->k);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* Slot of key k (k != 0), creating it (value 0) if *created is not NULL. */
static uint64_t *u64map_get(struct u64map *m, uint64_t k, int *created)
{
	size_t i;

	if (created && (m->n + 1) * 4 > m->cap * 3) {
		struct u64map g = {0};
		size_t c = m->cap ? m->cap * 2 : 1024;

		if (!(g.k = calloc(c, sizeof(*g.k))) || !(g.v = calloc(c, sizeof(*g.v)))) {
			u64map_release(&g);
			return NULL;
		}
		g.cap = c;
		for (i = 0; i < m->cap; i++) {
			size_t j;

			if (!m->k[i])
				continue;
			for (j = m->k[i] & (c - 1); g.k[j]; j = (j + 1) & (c - 1))
				;
			g.k[j] = m->k[i];
			g.v[j] = m->v[i];
		}
		g.n = m->n;
		u64map_release(m);
		*m = g;
	}
	if (!m->cap)
		return NULL;
	for (i = k & (m->cap - 1); m->k[i]; i = (i + 1) & (m->cap - 1))
		if (m->k[i] == k) {
			if (created)
				*created = 0;
			return &m->v[i];
		}
	if (!created)
		return NULL;
	m->k[i] = k;
	m->v[i] = 0;
	m->n++;
	*created = 1;
	return &m->v[i];
}

/* --- frames and bytes by name ---------------------------------------------- */

static struct count *count_get(struct counts *cs, const char *name)
{
	struct count *p;

	if (cs->last < cs->n && strcmp(cs->c[cs->last].name, name) == 0)
		return &cs->c[cs->last];
	for (cs->last = 0; cs->last < cs->n; cs->last++)
		if (strcmp(cs->c[cs->last].name, name) == 0)
			return &cs->c[cs->last];
	if (!(p = realloc(cs->c, (cs->n + 1) * sizeof(*p))))
		return NULL;
	cs->c = p;
	memset(&p[cs->n], 0, sizeof(*p));
	if (!(p[cs->n].name = strdup(name)))
		return NULL;
	cs->last = cs->n++;
	return &p[cs->last];
}

static void counts_release(struct counts *cs)
{
	size_t i;

	for (i = 0; i < cs->n; i++)
		free(cs->c[i].name);
	free(cs->c);
	memset(cs, 0, sizeof(*cs));
}

static int count_cmp(const void *a, const void *b)
{
	return strcmp(((const struct count *)a)->name, ((const struct count *)b)->name);
}

/* --- counting one frame ---------------------------------------------------- */

static struct count *bump(struct counts *cs, const char *name, size_t bytes)
{
	struct count *c = count_get(cs, name);

	if (c) {
		c->frames++;
		c->bytes += bytes;
	}
	return c;
}

/* Hash of (wsid, table, pk) and a column. */
static int cell_key(struct insp *x, const char *wsid, const struct ws_table *t,
    const struct ws_change *c, uint64_t *h)
{
	uint32_t i;
	int rc;

	x->tmp.len = 0;
	for (i = 0; i < t->npk; i++)
		if ((rc = ws_value_encode(&c->pk[i], &x->tmp)))
			return rc;
	*h = insp_fnv(FNV0, wsid, strlen(wsid) + 1);
	*h = insp_fnv(insp_fnv(*h, t->name, strlen(t->name) + 1), x->tmp.p, x->tmp.len);
	return 0;
}

/* The version cell `key` holds, or a zero dot. */
static void cell_get(struct stats *st, uint64_t key, struct dot *prev)
{
	uint64_t *slot = u64map_get(&st->cells, key | 1, NULL);

	if (slot)
		*prev = st->dots[*slot - 1];
	else
		memset(prev, 0, sizeof(*prev));
}

/* Record (site, counter) as cell `key`'s version. */
static int cell_set(struct stats *st, uint64_t key, const struct ws_siteid *site,
    uint64_t counter)
{
	uint64_t *slot;
	int created;

	if (!(slot = u64map_get(&st->cells, key | 1, &created)))
		return WS_ENOMEM;
	if (created) {
		if (st->ndots == st->capdots) {
			size_t c = st->capdots ? st->capdots * 2 : 1024;
			struct dot *p = realloc(st->dots, c * sizeof(*p));

			if (!p)
				return WS_ENOMEM;
			st->dots = p;
			st->capdots = c;
		}
		*slot = ++st->ndots;
	}
	st->dots[*slot - 1].site = *site;
	st->dots[*slot - 1].counter = counter;
	return 0;
}

/* Was version prev (if any) unseen by the batch and from another site? */
static int concurrent(const struct ws_batch *b, const struct dot *prev,
    const struct ws_siteid *origin)
{
	return prev->counter && ws_siteid_cmp(&prev->site, origin) != 0 &&
	    ws_vclock_get(&b->clock, &prev->site) < prev->counter;
}

/* Count the conflicts a distinct batch makes with the versions before it. */
static int stats_conflicts(struct insp *x, const char *wsid)
{
	const struct ws_batch *b = &x->b;
	struct stats *st = &x->st;
	struct dot prev;
	uint64_t h;
	size_t i;
	uint32_t k;
	int rc, hit;

	for (i = 0; i < b->nchanges; i++) {
		const struct ws_change *c = &b->changes[i];
		const struct ws_table *t = &b->tables[c->table];
		const struct ws_siteid *o = &b->sites[c->site];

		if ((rc = cell_key(x, wsid, t, c, &h)))
			return rc;
		hit = 0;
		if (c->op == WS_OP_DELETE) {
			/* A delete, and any write to the row it had not seen. */
			cell_get(st, insp_fnv(h, "W", 1), &prev);
			hit = concurrent(b, &prev, o);
			if ((rc = cell_set(st, insp_fnv(h, "D", 1), o, c->counter)) ||
			    (rc = cell_set(st, insp_fnv(h, "W", 1), o, c->counter)))
				return rc;
		} else {
			/* A write, and a delete of its row it had not seen. */
			cell_get(st, insp_fnv(h, "D", 1), &prev);
			hit = concurrent(b, &prev, o);
			if ((rc = cell_set(st, insp_fnv(h, "W", 1), o, c->counter)))
				return rc;
			for (k = 0; k < t->ncols; k++) {
				if (!ws_mask_test(c->mask, k))
					continue;
				cell_get(st, insp_fnv(h, &k, sizeof(k)), &prev);
				if (concurrent(b, &prev, o))
					st->conflicts++;
				if ((rc = cell_set(st, insp_fnv(h, &k, sizeof(k)), o, c->counter)))
					return rc;
			}
		}
		if (hit)
			st->conflicts++;
	}
	return 0;
}

int insp_stats_frame(struct insp *x, const struct rec *r, struct sess *s,
    const char *wsid)
{
	struct stats *st = &x->st;
	char hex[WS_SITEID_HEXLEN + 1] = "-";
	const struct ws_batch *b = &x->b;
	size_t i;
	int rc;

	st->frames++;
	st->bytes += r->bytes;
	st->type_frames[r->f.type]++;
	st->type_bytes[r->f.type] += r->bytes;
	if (r->has_time) {
		if (!st->has_time || r->time < st->t_first)
			st->t_first = r->time;
		if (!st->has_time || r->time > st->t_last)
			st->t_last = r->time;
		st->has_time = 1;
	}
	/* The sender: its HELLO, or the origin of a plain stream's batch. */
	if (s->has_site && r->dir != DIR_NONE)
		ws_siteid_hex(&s->site, hex);
	else if (r->f.type == WS_FRAME_BATCH && b->has_dot)
		ws_siteid_hex(&b->dot_site, hex);
	else if (r->f.type == WS_FRAME_BATCH && b->nsites)
		ws_siteid_hex(&b->sites[0], hex);
	else if (s->has_site)
		ws_siteid_hex(&s->site, hex);
	if (!bump(&st->sites, hex, r->bytes) ||
	    !bump(&st->wsids, wsid ? wsid : "-", r->bytes))
		return WS_ENOMEM;
	if (r->f.type != WS_FRAME_BATCH)
		return 0;
	st->batches++;
	st->changes += b->nchanges;
	/*
	 * Distinct batches, by working set and dot: the copies a hub forwards
	 * (their clocks maybe pruned), or the same batch in another log, are
	 * copies.  A batch without a dot of its own (a full copy's) is known
	 * by its bytes.  Tables and conflicts count distinct batches only.
	 */
	{
		uint64_t h = insp_fnv(FNV0, wsid ? wsid : "", wsid ? strlen(wsid) : 0);
		int created;

		if (b->has_dot)
			h = insp_fnv(insp_fnv(h, b->dot_site.b, WS_SITEID_LEN), &b->dot_counter,
			    sizeof(b->dot_counter));
		else
			h = insp_fnv(insp_fnv(h, "-", 1), r->f.payload, r->f.len);
		if (!u64map_get(&st->seen, h | 1, &created))
			return WS_ENOMEM;
		if (!created) {
			st->copies++;
			return 0;
		}
	}
	st->distinct++;
	st->dchanges += b->nchanges;
	for (i = 0; i < b->nchanges; i++) {
		struct count *c = count_get(&st->tables, b->tables[b->changes[i].table].name);

		if (!c)
			return WS_ENOMEM;
		c->ops[b->changes[i].op]++;
	}
	if (b->has_clock && (rc = stats_conflicts(x, wsid ? wsid : "")))
		return rc;
	return 0;
}

void insp_stats_release(struct stats *st)
{
	counts_release(&st->sites);
	counts_release(&st->wsids);
	counts_release(&st->tables);
	u64map_release(&st->seen);
	u64map_release(&st->cells);
	free(st->dots);
}

/* --- the summaries at the end ------------------------------------------------ */

static int put_counts(struct ws_buf *o, const char *title, struct counts *cs)
{
	size_t i;
	int rc;

	if (cs->n) /* c is NULL then, which qsort may not take */
		qsort(cs->c, cs->n, sizeof(*cs->c), count_cmp);
	cs->last = 0;
	if ((rc = ws_buf_printf(o, "\n%-34s %10s %14s\n", title, "frames", "bytes")))
		return rc;
	for (i = 0; i < cs->n && !rc; i++)
		if (!(rc = ws_buf_printf(o, "  ")) && !(rc = insp_put_cell(o, cs->c[i].name, 32)))
			rc = ws_buf_printf(o, " %10" PRIu64 " %14" PRIu64 "\n",
			    cs->c[i].frames, cs->c[i].bytes);
	return rc;
}

static json_t *counts_json(struct counts *cs, int ops)
{
	json_t *o = json_object(), *e;
	size_t i;

	if (cs->n) /* c is NULL then, which qsort may not take */
		qsort(cs->c, cs->n, sizeof(*cs->c), count_cmp);
	cs->last = 0;
	for (i = 0; o && i < cs->n; i++) {
		e = ops ? json_pack("{sIsIsI}", "insert", (json_int_t)cs->c[i].ops[1],
		    "update", (json_int_t)cs->c[i].ops[2], "delete",
		    (json_int_t)cs->c[i].ops[3]) :
		    json_pack("{sIsI}", "frames", (json_int_t)cs->c[i].frames, "bytes",
		    (json_int_t)cs->c[i].bytes);
		if (!e || json_object_set_new(o, cs->c[i].name, e)) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

/* The name of frame type t, or its number when it has none. */
static void type_name(size_t t, char name[16])
{
	if (ws_frame_type_name((unsigned)t))
		snprintf(name, 16, "%s", ws_frame_type_name((unsigned)t));
	else
		snprintf(name, 16, "%zu", t);
}

int insp_put_stats(struct insp *x)
{
	struct stats *st = &x->st;
	struct ws_buf *o = &x->out;
	double secs = st->has_time ? (double)(st->t_last - st->t_first) / 1e6 : 0;
	char name[16];
	size_t i;
	int rc = 0;

	if (x->o->flags & WS_INSPECT_AS_JSON) {
		json_t *root = NULL, *types = json_object(), *t;
		char *s;

		for (i = 1; types && i < 256; i++) {
			if (!st->type_frames[i])
				continue;
			type_name(i, name);
			if (!(t = json_pack("{sIsI}", "frames", (json_int_t)st->type_frames[i],
			    "bytes", (json_int_t)st->type_bytes[i])) ||
			    json_object_set_new(types, name, t))
				rc = WS_ENOMEM;
		}
		root = json_pack("{sIsIsIsosIsIsIsIsIsIsIsosososo}",
		    "inputs", (json_int_t)st->inputs, "frames", (json_int_t)st->frames,
		    "bytes", (json_int_t)st->bytes,
		    "time", st->has_time ? json_pack("{sIsIsf}", "first",
		    (json_int_t)st->t_first, "last", (json_int_t)st->t_last, "seconds",
		    secs) : json_null(),
		    "batches", (json_int_t)st->batches, "distinct_batches",
		    (json_int_t)st->distinct, "copies", (json_int_t)st->copies,
		    "changes", (json_int_t)st->changes,
		    "distinct_changes", (json_int_t)st->dchanges,
		    "conflicts", (json_int_t)st->conflicts,
		    "damaged", (json_int_t)x->damages,
		    "types", types, "sites", counts_json(&st->sites, 0),
		    "wsids", counts_json(&st->wsids, 0), "tables",
		    counts_json(&st->tables, 1));
		if (!root || rc || !(s = json_dumps(root, JSON_COMPACT))) {
			json_decref(root);
			return WS_ENOMEM;
		}
		rc = ws_buf_printf(o, "%s\n", s);
		free(s);
		json_decref(root);
		return rc;
	}
	rc = ws_buf_printf(o, "inputs        %" PRIu64 "\nframes        %" PRIu64
	    " (%" PRIu64 " bytes)\n", st->inputs, st->frames, st->bytes);
	if (!rc && st->has_time) {
		if (!(rc = ws_buf_printf(o, "time          ")) &&
		    !(rc = ws_inspect_put_time(o, st->t_first)) &&
		    !(rc = ws_buf_printf(o, " to ")) &&
		    !(rc = ws_inspect_put_time(o, st->t_last)))
			rc = ws_buf_printf(o, " (%.3f s)\n", secs);
		if (!rc && secs > 0)
			rc = ws_buf_printf(o, "throughput    %.1f frames/s, %.1f bytes/s, "
			    "%.1f changes/s\n", (double)st->frames / secs,
			    (double)st->bytes / secs, (double)st->changes / secs);
	} else if (!rc) {
		rc = ws_buf_printf(o, "time          - (no log records)\n");
	}
	if (!rc)
		rc = ws_buf_printf(o, "batches       %" PRIu64 " logged: %" PRIu64
		    " distinct, %" PRIu64 " cop%s (forwarded, or logged again)\n"
		    "changes       %" PRIu64 " logged: %" PRIu64 " in distinct batches, %"
		    PRIu64 " in copies\nconflicts     %" PRIu64 "\n", st->batches,
		    st->distinct, st->copies, st->copies == 1 ? "y" : "ies", st->changes,
		    st->dchanges, st->changes - st->dchanges, st->conflicts);
	if (!rc && x->damages)
		rc = ws_buf_printf(o, "damaged       %lu range%s skipped\n", x->damages,
		    x->damages == 1 ? "" : "s");
	if (!rc)
		rc = ws_buf_printf(o, "\n%-34s %10s %14s\n", "by type", "frames", "bytes");
	for (i = 1; i < 256 && !rc; i++) {
		if (!st->type_frames[i])
			continue;
		type_name(i, name);
		rc = ws_buf_printf(o, "  %-32s %10" PRIu64 " %14" PRIu64 "\n", name,
		    st->type_frames[i], st->type_bytes[i]);
	}
	if (!rc)
		rc = put_counts(o, "by site (sender)", &st->sites);
	if (!rc)
		rc = put_counts(o, "by working set", &st->wsids);
	if (rc)
		return rc;
	if (st->tables.n)
		qsort(st->tables.c, st->tables.n, sizeof(*st->tables.c), count_cmp);
	rc = ws_buf_printf(o, "\n%-34s %10s %10s %10s\n", "changes by table (distinct)", "insert",
	    "update", "delete");
	for (i = 0; i < st->tables.n && !rc; i++)
		if (!(rc = ws_buf_printf(o, "  ")) &&
		    !(rc = insp_put_cell(o, st->tables.c[i].name, 32)))
			rc = ws_buf_printf(o, " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
			    st->tables.c[i].ops[1], st->tables.c[i].ops[2],
			    st->tables.c[i].ops[3]);
	return rc;
}
