/* SPDX-License-Identifier: MIT */
/*
 * inspect-check.c - what --check finds in intact frames: a sender's clock
 * that goes back, a collected horizon that goes back, and a site's dots
 * that repeat, go back or leave a gap (see inspect.c for the rules).
 * Each problem goes to opts->warn; the run fails at its end.
 */
#include <stdarg.h>

#include "inspect-int.h"

/* A problem --check found in intact frames. */
static void problem(struct insp *x, const struct rec *r, const char *wsid,
    const char *fmt, ...) WS_PRINTF(4, 5);

static void problem(struct insp *x, const struct rec *r, const char *wsid,
    const char *fmt, ...)
{
	char what[512], pos[64];
	va_list ap;

	x->problems++;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (r->dir == DIR_NONE)
		insp_warn(x, "'%s': %s: working set '%s': %s", x->sk->name, insp_where(x, pos),
		    wsid, what);
	else
		insp_warn(x, "'%s': %s: working set '%s', %s %.*s: %s", x->sk->name,
		    insp_where(x, pos), wsid, r->dir == WS_LOG_IN ? "from" : "to",
		    (int)r->peerlen, r->peer, what);
}

/* A problem for each coordinate of vc below the one in old: "WHAT went
 * back" (the clock, the collected horizon). */
static void went_back(struct insp *x, const struct rec *r, const char *wsid,
    const struct ws_vclock *old, const struct ws_vclock *vc, const char *what)
{
	char s8[9];
	size_t i;
	uint64_t had;

	for (i = 0; i < vc->n; i++) {
		had = ws_vclock_get(old, &vc->e[i].site);
		if (vc->e[i].counter < had) {
			insp_short_site(&vc->e[i].site, s8);
			problem(x, r, wsid, "%s went back: site %s from %" PRIu64 " to %"
			    PRIu64, what, s8, had, vc->e[i].counter);
		}
	}
}

/* --check: no coordinate of the sender's clock goes back. */
int insp_check_clock(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc)
{
	if (w->has_clock)
		went_back(x, r, w->wsid, &w->clock, vc, "the clock");
	w->has_clock = 1;
	return ws_vclock_copy(&w->clock, vc);
}

/*
 * --check: a STABLE clock holds the hub's collected horizon, not its
 * clock, so it is compared only with the horizon before it, which never
 * goes back.  With SNAPSHOT, a full copy follows up to the next clock
 * frame on the channel, and the receiver then holds the horizon.
 */
int insp_check_stable(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc, int snapshot)
{
	int rc;

	if (w->has_stable)
		went_back(x, r, w->wsid, &w->stable, vc, "the collected horizon");
	w->has_stable = 1;
	if ((rc = ws_vclock_copy(&w->stable, vc)))
		return rc;
	if (!snapshot)
		return 0;
	w->copy = 1;
	w->has_snap = 1;
	return ws_vclock_copy(&w->snap, vc);
}

/* "batch 6 is missing" or "batches 6 to 9 are missing" into buf. */
static const char *missing(char buf[96], uint64_t from, uint64_t to)
{
	if (from == to)
		snprintf(buf, 96, "batch %" PRIu64 " is missing", from);
	else
		snprintf(buf, 96, "batches %" PRIu64 " to %" PRIu64 " are missing",
		    from, to);
	return buf;
}

/* --check: one dot of a batch, against the dots before it. */
static int check_dot(struct insp *x, const struct rec *r, struct wsstate *w,
    struct wsstate *recv, const struct ws_siteid *site, uint64_t c)
{
	uint64_t last = ws_vclock_get(&w->dots, site), had;
	char s8[9], m[96];

	insp_short_site(site, s8);
	if (last == 0) {
		/* What the receiver announced, and what a full copy gave it. */
		had = recv && recv->has_adv ? ws_vclock_get(&recv->adv, site) : 0;
		if (w->has_snap && ws_vclock_get(&w->snap, site) > had)
			had = ws_vclock_get(&w->snap, site);
		if (recv && recv->has_adv && c > had + 1)
			problem(x, r, w->wsid, "site %s: batch %" PRIu64 " comes first, "
			    "but the receiver had only up to %" PRIu64 ": %s", s8, c, had,
			    missing(m, had + 1, c - 1));
	} else if (c == last) {
		problem(x, r, w->wsid, "site %s: batch %" PRIu64 " repeated", s8, c);
	} else if (c < last) {
		problem(x, r, w->wsid, "site %s: batch %" PRIu64 " after batch %" PRIu64
		    ": the counter went back", s8, c, last);
	} else if (c > last + 1) {
		problem(x, r, w->wsid, "site %s: batch %" PRIu64 " after batch %" PRIu64
		    ": %s", s8, c, last, missing(m, last + 1, c - 1));
	}
	return c > last ? ws_vclock_set(&w->dots, site, c) : 0;
}

/* The batch's dots in order: its own dot, or its changes' distinct dots. */
int insp_check_batch(struct insp *x, const struct rec *r, struct wsstate *w,
    struct wsstate *recv)
{
	const struct ws_batch *b = &x->b;
	size_t i;
	int rc;

	if (b->has_dot)
		return check_dot(x, r, w, recv, &b->dot_site, b->dot_counter);
	for (i = 0; i < b->nchanges; i++) {
		const struct ws_change *c = &b->changes[i];

		if (i > 0 && c->site == b->changes[i - 1].site &&
		    c->counter == b->changes[i - 1].counter)
			continue;
		if ((rc = check_dot(x, r, w, recv, &b->sites[c->site], c->counter)))
			return rc;
	}
	return 0;
}
