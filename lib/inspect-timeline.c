/* SPDX-License-Identifier: MIT */
/*
 * inspect-timeline.c - the timeline: one readable line per frame, with
 * the record's time, direction and peer, a summary of the payload, and
 * a line per change of a batch.  Every string from the input is escaped.
 */
#include "inspect-int.h"

static int put_clock(struct ws_buf *o, const struct ws_vclock *vc)
{
	char s8[9];
	size_t i;
	int rc = 0;

	if (vc->n == 0)
		return ws_buf_printf(o, "{}");
	for (i = 0; i < vc->n && !rc; i++) {
		insp_short_site(&vc->e[i].site, s8);
		rc = ws_buf_printf(o, "%s%s:%" PRIu64, i ? "," : "", s8, vc->e[i].counter);
	}
	return rc;
}

static int colour(struct insp *x, const char *c)
{
	return x->o->flags & WS_INSPECT_COLOR ? ws_buf_printf(&x->out, "%s", c) : 0;
}

static int put_change(struct insp *x, const struct ws_change *c)
{
	const struct ws_batch *b = &x->b;
	const struct ws_table *t = &b->tables[c->table];
	struct ws_buf *o = &x->out;
	const char *oc = c->op == WS_OP_INSERT ? C_GREEN : c->op == WS_OP_UPDATE ?
	    C_YELLOW : C_RED;
	char s8[9];
	uint32_t i, k = 0;
	int rc;

	if ((rc = ws_buf_printf(o, "  ")) || (rc = insp_put_names(o, t->name)) ||
	    (rc = ws_buf_printf(o, " pk=(")))
		return rc;
	for (i = 0; i < t->npk && !rc; i++)
		if (!(rc = i ? ws_buf_putc(o, ',') : 0))
			rc = ws_inspect_put_value(o, &c->pk[i]);
	if (rc || (rc = ws_buf_printf(o, ") ")) || (rc = colour(x, oc)) ||
	    (rc = ws_buf_printf(o, "%s", ws_op_name(c->op))) ||
	    (rc = colour(x, C_RESET)))
		return rc;
	for (i = 0; c->mask && i < t->ncols && !rc; i++) {
		if (!ws_mask_test(c->mask, i))
			continue;
		if (!(rc = ws_buf_putc(o, ' ')) && !(rc = insp_put_names(o, t->cols[i])) &&
		    !(rc = ws_buf_putc(o, '=')))
			rc = ws_inspect_put_value(o, &c->vals[k++]);
	}
	if (!rc && !(b->has_dot && c->counter == b->dot_counter &&
	    ws_siteid_cmp(&b->sites[c->site], &b->dot_site) == 0)) {
		insp_short_site(&b->sites[c->site], s8);
		rc = ws_buf_printf(o, " dot=%s:%" PRIu64, s8, c->counter);
	}
	return rc ? rc : ws_buf_putc(o, '\n');
}

/*
 * "gen=3 2 tables (authors,books), 1 index, 1 view, 0 triggers": the
 * first SCHEMA_NAMES table names, then "...".
 */
static int put_schema(struct ws_buf *o, const struct ws_schema *sc)
{
	static const char *const what[][2] = {
		[WS_OBJ_TABLE] = {"table", "tables"},
		[WS_OBJ_INDEX] = {"index", "indexes"},
		[WS_OBJ_VIEW] = {"view", "views"},
		[WS_OBJ_TRIGGER] = {"trigger", "triggers"},
	};
	size_t count[WS_OBJ_TRIGGER + 1] = {0}, i, shown = 0;
	unsigned t;
	int rc;

	for (i = 0; i < sc->n; i++)
		count[sc->obj[i].type]++;
	if ((rc = ws_buf_printf(o, "  gen=%" PRIu64, sc->gen)))
		return rc;
	for (t = WS_OBJ_TABLE; t <= WS_OBJ_TRIGGER && !rc; t++) {
		rc = ws_buf_printf(o, "%s %zu %s", t == WS_OBJ_TABLE ? "" : ",",
		    count[t], what[t][count[t] != 1]);
		if (rc || t != WS_OBJ_TABLE || !count[t])
			continue;
		/* The tables' names, in record order. */
		rc = ws_buf_printf(o, " (");
		for (i = 0; i < sc->n && !rc; i++) {
			if (sc->obj[i].type != WS_OBJ_TABLE)
				continue;
			if (shown && (rc = ws_buf_putc(o, ',')))
				break;
			if (shown == SCHEMA_NAMES) {
				rc = ws_buf_printf(o, "...");
				break;
			}
			rc = insp_put_names(o, sc->obj[i].name);
			shown++;
		}
		if (!rc)
			rc = ws_buf_putc(o, ')');
	}
	return rc;
}

/*
 * "flags=" and the names of a CLOCK frame's flags (session.h), comma-
 * separated, with any bit this build does not know as hex at the end:
 * "flags=stable,snapshot", "flags=ack,0x80".
 */
static int put_clock_flags(struct ws_buf *o, unsigned flags)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {
		{WS_CLOCK_CAUGHT_UP, "caught-up"},
		{WS_CLOCK_SYNC, "sync"},
		{WS_CLOCK_ACK, "ack"},
		{WS_CLOCK_STABLE, "stable"},
		{WS_CLOCK_SNAPSHOT, "snapshot"},
	};
	const char *sep = "";
	size_t i;
	int rc;

	if ((rc = ws_buf_printf(o, "flags=")))
		return rc;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (flags & names[i].bit) {
			if ((rc = ws_buf_printf(o, "%s%s", sep, names[i].name)))
				return rc;
			flags &= ~names[i].bit;
			sep = ",";
		}
	return flags ? ws_buf_printf(o, "%s0x%x", sep, flags) : 0;
}

static int put_summary(struct insp *x, const struct rec *r, const struct dec *d)
{
	const struct ws_frame *f = &r->f;
	struct ws_buf *o = &x->out;
	char s8[9], hex[WS_SITEID_HEXLEN + 1];
	struct ws_value v;
	int rc = 0;

	switch (f->type) {
	case WS_FRAME_HELLO:
		if (!d->hello_ok)
			return ws_buf_printf(o, "  protocol version not supported");
		ws_siteid_hex(&d->hello.site, hex);
		return ws_buf_printf(o, "  site=%s role=%s protocol=%" PRIu64, hex,
		    d->hello.role == WS_ROLE_HUB ? "hub" : "site", d->hello.version);
	case WS_FRAME_ADD:
		if ((rc = ws_buf_printf(o, "  wsid=")) || (rc = insp_put_names(o, x->add.wsid)) ||
		    (rc = ws_buf_printf(o, " guid=")))
			return rc;
		if (x->add.has_guid) {
			struct ws_siteid g;

			memcpy(g.b, x->add.guid, 16);
			ws_siteid_hex(&g, hex);
			rc = ws_buf_printf(o, "%s", hex);
		} else {
			rc = ws_buf_printf(o, "none");
		}
		if (rc == 0 && x->add.has_site) {
			ws_siteid_hex(&x->add.site, hex);
			rc = ws_buf_printf(o, " site=%s", hex);
		}
		if (rc || (rc = ws_buf_printf(o, " clock=")))
			return rc;
		return put_clock(o, &x->add.clock);
	case WS_FRAME_CLOCK:
		if ((rc = ws_buf_printf(o, "  ")))
			return rc;
		if (f->flags && ((rc = put_clock_flags(o, f->flags)) ||
		    (rc = ws_buf_putc(o, ' '))))
			return rc;
		if ((rc = ws_buf_printf(o, "clock=")))
			return rc;
		return put_clock(o, &x->vc);
	case WS_FRAME_NOTICE:
		insp_short_site(&d->notice_site, s8);
		return ws_buf_printf(o, "  %s site=%s", d->notice == WS_NOTICE_JOINED ?
		    "joined" : "left", s8);
	case WS_FRAME_ERROR:
		v.type = WS_TEXT;
		v.p = (const uint8_t *)d->msg;
		v.n = d->msglen;
		if ((rc = ws_buf_printf(o, "  code=%" PRId64 " (%s) message=", d->code,
		    ws_strerror((int)d->code))))
			return rc;
		return ws_inspect_put_value(o, &v);
	case WS_FRAME_HEARTBEAT:
		if ((rc = ws_buf_printf(o, "  time=")))
			return rc;
		return ws_inspect_put_time(o, d->hb * 1000);
	case WS_FRAME_REMOVE:
		return f->len ? ws_buf_printf(o, "  %" PRIu32 " bytes", f->len) : 0;
	case WS_FRAME_SCHEMA:
		if (!d->schema_ok)
			return ws_buf_printf(o, "  format %" PRIu64 " not supported",
			    d->schema_fmt);
		return put_schema(o, &x->sc);
	case WS_FRAME_BATCH: {
		const struct ws_batch *b = &x->b;

		if (b->has_dot)
			insp_short_site(&b->dot_site, s8);
		else if (b->nchanges)
			insp_short_site(&b->sites[b->changes[0].site], s8);
		else
			snprintf(s8, sizeof(s8), "-");
		if ((rc = ws_buf_printf(o, "  site=%s", s8)))
			return rc;
		if (b->has_dot && (rc = ws_buf_printf(o, " dot=%s:%" PRIu64, s8,
		    b->dot_counter)))
			return rc;
		if (b->has_clock && ((rc = ws_buf_printf(o, " clock=")) ||
		    (rc = put_clock(o, &b->clock))))
			return rc;
		return ws_buf_printf(o, " %zu change%s", b->nchanges,
		    b->nchanges == 1 ? "" : "s");
	}
	default:
		return ws_buf_printf(o, "  flags=%u length=%" PRIu32, f->flags, f->len);
	}
}

int insp_put_line(struct insp *x, const struct rec *r, const struct dec *d,
    const char *wsid)
{
	struct ws_buf *o = &x->out;
	const char *name = ws_frame_type_name(r->f.type);
	char up[16];
	size_t i;
	int rc;

	if (r->has_time)
		rc = ws_inspect_put_time(o, r->time);
	else
		rc = ws_buf_putc(o, '-');
	if (rc || (rc = ws_buf_printf(o, "  ")))
		return rc;
	if (r->dir == DIR_NONE)
		rc = ws_buf_putc(o, '-');
	else if (!(rc = colour(x, r->dir == WS_LOG_IN ? C_GREEN : C_BLUE)) &&
	    !(rc = ws_buf_putc(o, r->dir == WS_LOG_IN ? '<' : '>')))
		rc = colour(x, C_RESET);
	if (rc)
		return rc;
	if (r->dir == DIR_NONE || r->peerlen == 0)
		rc = ws_buf_printf(o, "  -  ");
	else
		if (!(rc = ws_buf_printf(o, "  ")) &&
		    !(rc = insp_put_name(o, r->peer, r->peerlen)))
			rc = ws_buf_printf(o, "  ");
	if (rc)
		return rc;
	if (wsid && !(rc = insp_put_names(o, wsid)))
		rc = ws_buf_printf(o, "  ");
	else if (r->f.channel == 0)
		rc = ws_buf_printf(o, "-  ");
	else
		rc = ws_buf_printf(o, "#%" PRIu32 "  ", r->f.channel);
	if (rc)
		return rc;
	if (name) {
		for (i = 0; name[i] && i < sizeof(up) - 1; i++)
			up[i] = (char)(name[i] - 'a' + 'A');
		up[i] = 0;
	} else {
		snprintf(up, sizeof(up), "TYPE%u", r->f.type);
	}
	if ((rc = colour(x, r->f.type == WS_FRAME_ERROR ? C_BOLD C_RED : C_BOLD)) ||
	    (rc = ws_buf_printf(o, "%s", up)) || (rc = colour(x, C_RESET)))
		return rc;
	if (r->f.type != WS_FRAME_CLOCK && name && r->f.flags &&
	    (rc = ws_buf_printf(o, "  flags=%u", r->f.flags)))
		return rc;
	if ((rc = put_summary(x, r, d)) || (rc = ws_buf_putc(o, '\n')))
		return rc;
	if (r->f.type == WS_FRAME_BATCH)
		for (i = 0; i < x->b.nchanges && !rc; i++)
			rc = put_change(x, &x->b.changes[i]);
	return rc;
}
