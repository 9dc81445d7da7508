/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - the views of wsync-inspect (inspect.h): a timeline, JSON
 * lines, a binary stream, statistics and an integrity check of delta
 * streams and session logs, and a summary of a working-set database.
 * This file holds the run, the sessions, the handling of one frame and
 * the public helpers; inspect-int.h lists the files of the others.
 *
 * Reading.  Every input goes through one "sink": bytes are appended to a
 * window (a file's read(2) goes straight into it; libcurl's callback
 * copies), the kind is detected from the first bytes, and then:
 *   - binary streams are cut into frames here, with ws_frame_parse() on
 *     the window, so that the byte offset of any damage is known and
 *     --salvage can scan forward from it for the next preamble or frame
 *     of a known type whose checksum holds;
 *   - JSON lines go through struct ws_reader (stream.h), which resumes
 *     after a bad line with --salvage;
 *   - an SQLite file is shown by the database view instead.
 *
 * Sessions.  Each frame is unwrapped from its log record (if any) and
 * updates the state of its session, keyed by (peer, direction): HELLO
 * resets it and names the sender's site, ADD maps a channel to a working
 * set and gives the sender's clock, CLOCK gives the sender's clock, and
 * BATCH gives dots.  SCHEMA frames are decoded (--check finds a bad one)
 * and shown, but change no session state.  --check compares each clock with the previous one
 * of the same session and working set (no coordinate may go back), and
 * each batch's dot with the previous dot of the same origin site (no
 * repeat, no gap; the first one must follow the clock the receiver
 * announced in its ADD, or the horizon of a full copy).  A STABLE clock
 * is the hub's collected horizon, compared only with the horizon before
 * it; the batches of a full copy (STABLE|SNAPSHOT, up to the next clock)
 * carry no dots of their own and are not checked.  Batch clocks are not
 * compared, so the entries a hub prunes from them do not matter.
 */
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "inspect-int.h"

/* --- small pure helpers --------------------------------------------------- */

uint64_t insp_fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}


void ws_inspect_opts_init(struct ws_inspect_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->mode = WS_INSPECT_TIMELINE;
	o->filter.until_us = WS_INSPECT_NO_TIME;
	o->out_fd = STDOUT_FILENO;
}

int ws_inspect_is_database(const uint8_t *p, size_t n)
{
	return n >= 16 && memcmp(p, "SQLite format 3", 16) == 0;
}

int ws_inspect_is_url(const char *name)
{
	const char *s = strstr(name, "://");
	size_t i;

	if (!s || s == name)
		return 0;
	for (i = 0; name + i < s; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' &&
		    name[i] <= 'Z') || (i > 0 && ((name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '+' || name[i] == '-' || name[i] == '.'))))
			return 0;
	return 1;
}

/* Read exactly n digits at *s into *v. */
static int digits(const char **s, int n, int *v)
{
	int i;

	*v = 0;
	for (i = 0; i < n; i++) {
		if ((*s)[i] < '0' || (*s)[i] > '9')
			return -1;
		*v = *v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	return 0;
}

/* Fraction digits at *s (after '.') as microseconds; *n gets their count. */
static int fraction(const char **s, uint64_t *us, int *n)
{
	uint64_t scale = 100000;

	*us = 0;
	*n = 0;
	while (**s >= '0' && **s <= '9') {
		if (++*n > 6)
			return -1;
		*us += (uint64_t)(**s - '0') * scale;
		scale /= 10;
		(*s)++;
	}
	return *n ? 0 : -1;
}

/*
 * ws_inspect_parse_time(), and in *fdigits the number of fraction digits
 * given (0 to 6), which says how precise the time is.
 */
static int parse_time(const char *s, uint64_t *us, int *fdigits)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, zh, zm, sign;
	uint64_t frac = 0, v = 0;
	const char *p = s;
	struct tm tm;
	int64_t t;

	*fdigits = 0;
	if (!*s)
		return WS_EINVAL;
	if (strspn(s, "0123456789") == strlen(s) ||
	    (strchr(s, '.') && strspn(s, "0123456789") == (size_t)(strchr(s, '.') - s) &&
	    strchr(s, '.') != s)) {
		/* Seconds since the epoch. */
		while (*p >= '0' && *p <= '9') {
			if (v > (UINT64_MAX / 1000000 - 9) / 10)
				return WS_EINVAL;
			v = v * 10 + (uint64_t)(*p++ - '0');
		}
		if (*p == '.' && (++p, fraction(&p, &frac, fdigits) || *p))
			return WS_EINVAL;
		*us = v * 1000000 + frac;
		return 0;
	}
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31)
		return WS_EINVAL;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) ||
		    h > 23 || mi > 59)
			return WS_EINVAL;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &sec) || sec > 60)
				return WS_EINVAL;
			if (*p == '.' && (++p, fraction(&p, &frac, fdigits)))
				return WS_EINVAL;
		}
	}
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = (int64_t)timegm(&tm);
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '+' ? 1 : -1;
		if (digits(&p, 2, &zh))
			return WS_EINVAL;
		if (*p == ':')
			p++;
		if (digits(&p, 2, &zm) || zh > 23 || zm > 59)
			return WS_EINVAL;
		t -= sign * (zh * 3600 + zm * 60);
	}
	if (*p || t < 0)
		return WS_EINVAL;
	*us = (uint64_t)t * 1000000 + frac;
	return 0;
}

int ws_inspect_parse_time(const char *s, uint64_t *us)
{
	int fdigits;

	return parse_time(s, us, &fdigits);
}

int ws_inspect_parse_until(const char *s, uint64_t *us)
{
	int fdigits, rc;

	/* The timeline shows milliseconds, cut: its .123 stands for .123000
	 * to .123999.  (The parsed value is far below UINT64_MAX - 999.) */
	if ((rc = parse_time(s, us, &fdigits)) == 0 && fdigits <= 3)
		*us += 999;
	return rc;
}

int ws_inspect_put_time(struct ws_buf *out, uint64_t us)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	char s[64];

	if (!gmtime_r(&t, &tm) || !strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm))
		return ws_buf_printf(out, "@%" PRIu64, us);
	return ws_buf_printf(out, "%s.%03uZ", s, (unsigned)(us / 1000 % 1000));
}

static int put_real(struct ws_buf *out, double r)
{
	char s[40];
	int prec;

	if (isnan(r))
		return ws_buf_printf(out, "NaN");
	if (isinf(r))
		return ws_buf_printf(out, r < 0 ? "-Inf" : "Inf");
	for (prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, r);
		if (strtod(s, NULL) == r)
			break;
	}
	if (!strpbrk(s, ".en"))
		return ws_buf_printf(out, "%s.0", s);
	return ws_buf_printf(out, "%s", s);
}

/*
 * p[0..n) between single quotes, as SQL writes text: a quote doubled, a
 * newline, tab and carriage return as \n, \t and \r, and every other
 * character through ws_escape_char() (escape.h: control characters and
 * bytes that are not UTF-8 as \xNN, a backslash as \\).  With cut,
 * text over TEXT_CUT bytes ends in "...'(N bytes)".
 */
static int put_quoted(struct ws_buf *out, const uint8_t *p, size_t n, int cut)
{
	char e[WS_ESCAPE_CHARMAX];
	size_t i, k;
	int rc;

	if ((rc = ws_buf_putc(out, '\'')))
		return rc;
	for (i = 0; i < n && !rc; i += k) {
		if (cut && i >= TEXT_CUT)
			break;
		k = 1;
		if (p[i] == '\'')
			rc = ws_buf_append(out, "''", 2);
		else if (p[i] == '\n')
			rc = ws_buf_append(out, "\\n", 2);
		else if (p[i] == '\t')
			rc = ws_buf_append(out, "\\t", 2);
		else if (p[i] == '\r')
			rc = ws_buf_append(out, "\\r", 2);
		else
			rc = ws_buf_append(out, e, ws_escape_char(p + i, n - i, e, &k));
	}
	if (rc)
		return rc;
	if (i < n)
		return ws_buf_printf(out, "...'(%zu bytes)", n);
	return ws_buf_putc(out, '\'');
}

int ws_inspect_put_value(struct ws_buf *out, const struct ws_value *v)
{
	size_t i, n;
	int rc = 0;

	switch (v->type) {
	case WS_NULL:
		return ws_buf_printf(out, "NULL");
	case WS_INTEGER:
		return ws_buf_printf(out, "%" PRId64, v->i);
	case WS_REAL:
		return put_real(out, v->r);
	case WS_BLOB:
		n = v->n > BLOB_CUT ? BLOB_CUT : v->n;
		if ((rc = ws_buf_printf(out, "x'")))
			return rc;
		for (i = 0; i < n && !rc; i++)
			rc = ws_buf_printf(out, "%02x", v->p[i]);
		if (!rc)
			rc = v->n > n ? ws_buf_printf(out, "...'(%zu bytes)", v->n) :
			    ws_buf_putc(out, '\'');
		return rc;
	case WS_TEXT:
		return put_quoted(out, v->p, v->n, 1);
	default:
		return ws_buf_printf(out, "?");
	}
}

/*
 * A name from the wire, a log or a database: as it is when it is plain
 * printable ASCII that cannot be taken for the punctuation around it,
 * otherwise quoted and escaped, whole ('my table', 'a\x1b[2J\nb').
 */
int insp_put_name(struct ws_buf *o, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || strchr("'\\,()=", c))
			break;
	}
	if (i > 0 && i == n)
		return ws_buf_append(o, s, n);
	return put_quoted(o, (const uint8_t *)s, n, 0);
}

/* insp_put_name() of a NUL-terminated name. */
int insp_put_names(struct ws_buf *o, const char *s)
{
	return insp_put_name(o, s, strlen(s));
}

/*
 * insp_put_names(), then blanks up to width bytes (a table's column: "%-32s"
 * for a name that may need escaping).
 */
int insp_put_cell(struct ws_buf *o, const char *s, size_t width)
{
	size_t start = o->len;
	int rc = insp_put_names(o, s);

	while (!rc && o->len - start < width)
		rc = ws_buf_putc(o, ' ');
	return rc;
}

int ws_inspect_add_types(struct ws_inspect_filter *f, const char *list, char *err)
{
	const char *s = list, *e;
	char name[32], *end;
	unsigned long t;
	size_t n;

	do {
		e = strchr(s, ',');
		n = e ? (size_t)(e - s) : strlen(s);
		if (n == 0 || n >= sizeof(name))
			return ws_error(err, WS_EINVAL, "bad frame type '%.*s'",
			    (int)(n < 64 ? n : 64), s);
		memcpy(name, s, n);
		name[n] = 0;
		t = ws_frame_type_from_name(name);
		if (t == 0) {
			for (size_t i = 0; i < n; i++)
				name[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ?
				    name[i] - 'A' + 'a' : name[i]);
			t = ws_frame_type_from_name(name);
		}
		if (t == 0 && name[0] >= '0' && name[0] <= '9') {
			errno = 0;
			t = strtoul(name, &end, 0);
			if (errno || *end || t > 255)
				t = 0;
		}
		if (t == 0)
			return ws_error(err, WS_EINVAL, "unknown frame type '%s'", name);
		f->types[t / 8] |= (uint8_t)(1u << (t % 8));
		f->has_types = 1;
		s = e ? e + 1 : NULL;
	} while (s);
	return 0;
}

/* --- sessions -------------------------------------------------------------- */

static void sess_reset(struct sess *s)
{
	size_t i;

	for (i = 0; i < s->nws; i++) {
		ws_vclock_release(&s->ws[i].clock);
		ws_vclock_release(&s->ws[i].dots);
		ws_vclock_release(&s->ws[i].adv);
		ws_vclock_release(&s->ws[i].stable);
		ws_vclock_release(&s->ws[i].snap);
	}
	free(s->ws);
	free(s->ch);
	s->ws = NULL;
	s->ch = NULL;
	s->nws = s->nch = 0;
	s->has_site = 0;
}

/* The state for wsid in s, created if missing; NULL when out of memory. */
static struct wsstate *sess_ws(struct sess *s, const char *wsid, size_t *index)
{
	struct wsstate *p;
	size_t i;

	for (i = 0; i < s->nws; i++)
		if (strcmp(s->ws[i].wsid, wsid) == 0)
			goto found;
	if (!(p = realloc(s->ws, (s->nws + 1) * sizeof(*p))))
		return NULL;
	s->ws = p;
	memset(&p[i], 0, sizeof(*p));
	snprintf(p[i].wsid, sizeof(p[i].wsid), "%s", wsid);
	s->nws++;
found:
	if (index)
		*index = i;
	return &s->ws[i];
}

static struct wsstate *sess_chan(struct sess *s, uint32_t ch)
{
	size_t i;

	if (!s)
		return NULL;
	for (i = 0; i < s->nch; i++)
		if (s->ch[i].ch == ch)
			return &s->ws[s->ch[i].ws];
	return NULL;
}

static int sess_map(struct sess *s, uint32_t ch, size_t ws)
{
	struct chmap *p;
	size_t i;

	for (i = 0; i < s->nch; i++)
		if (s->ch[i].ch == ch) {
			s->ch[i].ws = ws;
			return 0;
		}
	if (!(p = realloc(s->ch, (s->nch + 1) * sizeof(*p))))
		return WS_ENOMEM;
	s->ch = p;
	p[s->nch].ch = ch;
	p[s->nch].ws = ws;
	s->nch++;
	return 0;
}

/* --- the inspector ----------------------------------------------------------- */

static const char *oname(const struct insp *x)
{
	return x->o->out_name ? x->o->out_name : "-";
}

void insp_warn(struct insp *x, const char *fmt, ...)
{
	char line[768];
	va_list ap;

	if (!x->o->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	x->o->warn(x->o->warn_cd, line);
}

/* Write the output buffer; a failure is described in err. */
static int flush_to(struct insp *x, char *err)
{
	const uint8_t *p = x->out.p;
	size_t n = x->out.len;
	char buf[64];
	ssize_t k;

	while (n) {
		k = write(x->o->out_fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ws_error(err, errno == ENOSPC ? WS_ENOSPC : WS_EIO,
			    "cannot write '%s': %s", oname(x), ws_errno_text(errno, buf));
		p += k;
		n -= (size_t)k;
	}
	x->out.len = 0;
	return 0;
}

int insp_flush(struct insp *x)
{
	return flush_to(x, x->err);
}

static int maybe_flush(struct insp *x)
{
	return x->out.len >= OUT_FLUSH ? insp_flush(x) : 0;
}

/* "frame at byte N" or "line N", for messages about the current frame. */
const char *insp_where(const struct insp *x, char buf[64])
{
	snprintf(buf, 64, x->json_pos ? "line %" PRIu64 : "frame at byte %" PRIu64,
	    x->at);
	return buf;
}

static struct sess *sess_get(struct insp *x, const char *peer, size_t peerlen,
    unsigned dir)
{
	uint64_t h;
	struct sess **b, *s;

	if (dir == DIR_NONE)
		return &x->plain;
	h = insp_fnv(insp_fnv(FNV0, peer, peerlen), &dir, sizeof(dir));
	b = &x->buckets[h % SESS_BUCKETS];
	for (s = *b; s; s = s->next)
		if (s->dir == dir && s->peerlen == peerlen &&
		    memcmp(s->peer, peer, peerlen) == 0)
			return s;
	if (!(s = calloc(1, sizeof(*s))))
		return NULL;
	memcpy(s->peer, peer, peerlen);
	s->peerlen = peerlen;
	s->dir = dir;
	s->next = *b;
	*b = s;
	return s;
}

static struct sess *sess_other(struct insp *x, const struct rec *r)
{
	if (r->dir == DIR_NONE)
		return NULL;
	return sess_get(x, r->peer, r->peerlen, r->dir == WS_LOG_IN ? WS_LOG_OUT :
	    WS_LOG_IN);
}

/* Short form of a site id: its first 8 hex digits. */
void insp_short_site(const struct ws_siteid *s, char out[9])
{
	char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(s, hex);
	memcpy(out, hex, 8);
	out[8] = 0;
}

/* Decode the payload of r->f.  WS_ECORRUPT with why on a bad one. */
static int decode(struct insp *x, const struct rec *r, struct dec *d, char *why)
{
	const struct ws_frame *f = &r->f;
	struct ws_rd rd;
	char e[WS_ERRLEN] = "";
	int rc = 0;

	memset(d, 0, sizeof(*d));
	switch (f->type) {
	case WS_FRAME_HELLO:
		rc = ws_hello_decode(&d->hello, f->payload, f->len, e);
		if (rc == WS_EVERSION)
			return 0; /* another protocol version: shown, not followed */
		if (rc)
			return ws_error(why, WS_ECORRUPT, "bad hello frame");
		d->hello_ok = 1;
		break;
	case WS_FRAME_ADD:
		if ((rc = ws_add_decode(&x->add, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad add frame");
		break;
	case WS_FRAME_CLOCK:
		if ((rc = ws_vclock_decode_all(&x->vc, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad clock frame: %s", e);
		break;
	case WS_FRAME_BATCH:
		if (!x->need_batch)
			break;
		if ((rc = ws_batch_decode(&x->b, f->payload, f->len, e)))
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT,
			    "bad batch: %s", e);
		break;
	case WS_FRAME_SCHEMA:
		/* Another record format: shown, as a HELLO of another protocol
		 * version is, and not followed. */
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_varint(&rd, &d->schema_fmt) == 0 &&
		    d->schema_fmt != WS_SCHEMA_FORMAT)
			break;
		rc = ws_schema_decode(&x->sc, f->payload, f->len, e);
		if (rc)  /* e says "schema record: ..." */
			return rc == WS_ENOMEM ? rc : ws_error(why, WS_ECORRUPT, "%s",
			    e[0] ? e : "bad schema record");
		d->schema_ok = 1;
		break;
	case WS_FRAME_NOTICE:
		if (f->len != 1 + WS_SITEID_LEN || (f->payload[0] != WS_NOTICE_JOINED &&
		    f->payload[0] != WS_NOTICE_LEFT))
			return ws_error(why, WS_ECORRUPT, "bad notice frame");
		d->notice = f->payload[0];
		memcpy(d->notice_site.b, f->payload + 1, WS_SITEID_LEN);
		break;
	case WS_FRAME_ERROR:
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_svarint(&rd, &d->code) || d->code < INT32_MIN ||
		    d->code > INT32_MAX || !ws_utf8_valid(rd.p, ws_rd_left(&rd)))
			return ws_error(why, WS_ECORRUPT, "bad error frame payload");
		d->msg = (const char *)rd.p;
		d->msglen = ws_rd_left(&rd);
		break;
	case WS_FRAME_HEARTBEAT:
		ws_rd_init(&rd, f->payload, f->len);
		if (ws_rd_varint(&rd, &d->hb) || ws_rd_left(&rd) || d->hb > INT64_MAX)
			return ws_error(why, WS_ECORRUPT, "bad heartbeat frame payload");
		break;
	case WS_FRAME_LOG:
		return ws_error(why, WS_ECORRUPT, "a log record inside a log record");
	default:
		break;
	}
	d->ok = 1;
	return 0;
}

/* Update the session state from a decoded frame; NULL-safe on w. */
static int follow_session(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d, struct wsstate **wp)
{
	struct wsstate *w = NULL;
	size_t wi;
	int rc = 0;

	switch (r->f.type) {
	case WS_FRAME_HELLO:
		sess_reset(s);
		if (d->hello_ok) {
			s->has_site = 1;
			s->site = d->hello.site;
		}
		break;
	case WS_FRAME_ADD:
		if (!(w = sess_ws(s, x->add.wsid, &wi)) || sess_map(s, r->f.channel, wi))
			return WS_ENOMEM;
		if (x->o->mode == WS_INSPECT_CHECK && (rc = insp_check_clock(x, r, w,
		    &x->add.clock)))
			return rc;
		if ((rc = ws_vclock_copy(&w->adv, &x->add.clock)))
			return rc;
		w->has_adv = 1;
		break;
	default:
		if (r->f.channel == 0)
			break;
		w = sess_chan(s, r->f.channel);
		if (!w) {
			/* Only the other side's ADD may have been logged. */
			struct wsstate *o = sess_chan(sess_other(x, r), r->f.channel);

			if (o && (!(w = sess_ws(s, o->wsid, &wi)) ||
			    sess_map(s, r->f.channel, wi)))
				return WS_ENOMEM;
		}
		if (!w || x->o->mode != WS_INSPECT_CHECK)
			break;
		if (r->f.type == WS_FRAME_CLOCK) {
			w->copy = 0; /* any clock frame ends a full copy */
			if (r->f.flags & WS_CLOCK_STABLE)
				rc = insp_check_stable(x, r, w, &x->vc,
				    r->f.flags & WS_CLOCK_SNAPSHOT);
			else
				rc = insp_check_clock(x, r, w, &x->vc);
		} else if (r->f.type == WS_FRAME_BATCH && !w->copy) {
			/* A full copy's batches carry no dot of their own: their
			 * changes name the hub's copy, or a conflict's loser. */
			struct sess *o = sess_other(x, r);

			rc = insp_check_batch(x, r, w, o ? sess_chan(o, r->f.channel) : NULL);
		}
		break;
	}
	*wp = w;
	return rc;
}

static int hex_prefix(const struct ws_siteid *s, const char *prefix)
{
	char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(s, hex);
	return strncmp(hex, prefix, strlen(prefix)) == 0;
}

/* Does the frame carry, or travel on a session with, a matching site? */
static int site_matches(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d)
{
	const char *p = x->o->filter.site;
	struct sess *remote = r->dir == DIR_NONE ? s :
	    sess_get(x, r->peer, r->peerlen, WS_LOG_IN);
	size_t i;

	if (remote && remote->has_site && hex_prefix(&remote->site, p))
		return 1;
	switch (r->f.type) {
	case WS_FRAME_HELLO:
		return d->hello_ok && hex_prefix(&d->hello.site, p);
	case WS_FRAME_NOTICE:
		return hex_prefix(&d->notice_site, p);
	case WS_FRAME_BATCH:
		if (!x->need_batch)
			return 0;
		if (x->b.has_dot && hex_prefix(&x->b.dot_site, p))
			return 1;
		for (i = 0; i < x->b.nsites; i++)
			if (hex_prefix(&x->b.sites[i], p))
				return 1;
		return 0;
	default:
		return 0;
	}
}

static int shown(struct insp *x, const struct rec *r, struct sess *s,
    const struct dec *d, const char *wsid)
{
	const struct ws_inspect_filter *F = &x->o->filter;

	if (F->has_types && !(F->types[r->f.type / 8] & (1u << (r->f.type % 8))))
		return 0;
	if (F->since_us || F->until_us != WS_INSPECT_NO_TIME) {
		if (!r->has_time || r->time < F->since_us || r->time > F->until_us)
			return 0;
	}
	if (F->wsid && (!wsid || strcmp(wsid, F->wsid) != 0))
		return 0;
	if (F->site && !site_matches(x, r, s, d))
		return 0;
	return 1;
}

/* --- one frame ---------------------------------------------------------------- */

/* Damage inside one intact frame (its payload): skip it or stop. */
static int frame_damage(struct insp *x, int rc, const char *why)
{
	char pos[64];

	if (rc == WS_ENOMEM)
		return rc;
	if (!(x->o->flags & WS_INSPECT_SALVAGE))
		return ws_error(x->err, rc, "'%s': %s: %s", x->sk->name, insp_where(x, pos), why);
	x->damages++;
	insp_warn(x, "'%s': %s: %s; frame skipped", x->sk->name, insp_where(x, pos), why);
	return 0;
}

/* Handle one frame (outer: as read, maybe a log record) of `bytes` bytes. */
int insp_on_frame(struct insp *x, const struct ws_frame *outer, size_t bytes)
{
	struct ws_log_record lr;
	char why[WS_ERRLEN] = "";
	struct rec r;
	struct dec d;
	struct sess *s;
	struct wsstate *w = NULL;
	int rc;

	x->frames++;
	x->bytes += bytes;
	x->sk->frames++;
	x->sk->bytes += bytes;
	if (!x->need_state) {
		if (x->o->mode == WS_INSPECT_JSON) {
			if ((rc = ws_json_put_frame(outer, &x->out, why)))
				return frame_damage(x, rc, why);
		} else if ((rc = ws_frame_put(&x->out, outer->type, outer->flags,
		    outer->channel, outer->payload, outer->len))) {
			return rc;
		}
		return maybe_flush(x);
	}
	memset(&r, 0, sizeof(r));
	r.bytes = bytes;
	if (outer->type == WS_FRAME_LOG) {
		if (ws_log_record_decode(&lr, outer->payload, outer->len) ||
		    lr.time_us > INT64_MAX ||
		    !ws_utf8_valid((const uint8_t *)lr.peer, lr.peerlen))
			return frame_damage(x, WS_ECORRUPT, "bad log record");
		r.has_time = 1;
		r.time = lr.time_us;
		r.dir = lr.dir;
		r.peer = lr.peer;
		r.peerlen = lr.peerlen;
		r.f = lr.frame;
	} else {
		r.dir = DIR_NONE;
		r.peer = "";
		r.f = *outer;
	}
	if ((rc = decode(x, &r, &d, why)))
		return frame_damage(x, rc, why);
	if (!(s = sess_get(x, r.peer, r.peerlen, r.dir)))
		return WS_ENOMEM;
	if ((rc = follow_session(x, &r, s, &d, &w)))
		return rc;
	if (!shown(x, &r, s, &d, w ? w->wsid : NULL))
		return 0;
	switch (x->o->mode) {
	case WS_INSPECT_TIMELINE:
		rc = insp_put_line(x, &r, &d, w ? w->wsid : NULL);
		break;
	case WS_INSPECT_JSON:
		if ((rc = ws_json_put_frame(outer, &x->out, why)))
			return frame_damage(x, rc, why);
		break;
	case WS_INSPECT_ENCODE:
		rc = ws_frame_put(&x->out, outer->type, outer->flags, outer->channel,
		    outer->payload, outer->len);
		break;
	case WS_INSPECT_STATS:
		rc = insp_stats_frame(x, &r, s, w ? w->wsid : NULL);
		break;
	default:
		break;
	}
	return rc ? rc : maybe_flush(x);
}

/* --- the run ------------------------------------------------------------------ */

static void insp_release(struct insp *x)
{
	size_t i;
	struct sess *s, *n;

	for (i = 0; i < SESS_BUCKETS; i++)
		for (s = x->buckets[i]; s; s = n) {
			n = s->next;
			sess_reset(s);
			free(s);
		}
	sess_reset(&x->plain);
	ws_batch_release(&x->b);
	ws_vclock_release(&x->vc);
	ws_vclock_release(&x->add.clock);
	ws_schema_release(&x->sc);
	ws_buf_release(&x->tmp);
	ws_buf_release(&x->out);
	insp_stats_release(&x->st);
}

int ws_inspect_run(const struct ws_inspect_opts *o, const char *const *inputs,
    size_t n, char *err)
{
	static const char *const stdin_only[] = {"-"};
	const struct ws_inspect_filter *F = &o->filter;
	struct insp *x;
	struct sink k;
	char tmp[WS_ERRLEN];
	size_t i;
	int rc = 0, wrc, curl = 0, summary = 0;

	if (o->mode < WS_INSPECT_TIMELINE || o->mode > WS_INSPECT_CHECK)
		return ws_error(err, WS_EINVAL, "bad inspect mode");
	if (n == 0) {
		inputs = stdin_only;
		n = 1;
	}
	for (i = 0; i < n; i++)
		curl |= ws_inspect_is_url(inputs[i]);
	if ((o->flags & WS_INSPECT_FOLLOW) && ws_inspect_is_url(inputs[n - 1]))
		return ws_error(err, WS_EINVAL, "--follow needs a file, not a URL");
	if (!(x = calloc(1, sizeof(*x))))
		return WS_ENOMEM;
	x->o = o;
	x->err = err;
	x->need_state = o->mode == WS_INSPECT_TIMELINE || o->mode == WS_INSPECT_STATS ||
	    o->mode == WS_INSPECT_CHECK || F->wsid || F->site || F->has_types ||
	    F->since_us || F->until_us != WS_INSPECT_NO_TIME;
	x->need_batch = o->mode == WS_INSPECT_TIMELINE || o->mode == WS_INSPECT_STATS ||
	    o->mode == WS_INSPECT_CHECK || F->site;
	ws_batch_init(&x->b);
	if (curl && (rc = ws_http_global_init(err)))
		goto out;
	if (o->mode == WS_INSPECT_ENCODE && (rc = ws_frame_put_preamble(&x->out)))
		goto out;
	for (i = 0; i < n && rc == 0; i++) {
		unsigned long problems = x->problems, damages = x->damages;

		insp_sink_init(&k, inputs[i], o->max);
		x->sk = &k;
		x->st.inputs++;
		if (ws_inspect_is_url(inputs[i]))
			rc = insp_run_url(x, &k);
		else
			rc = insp_run_file(x, &k, (o->flags & WS_INSPECT_FOLLOW) && i == n - 1);
		if (!rc && o->mode == WS_INSPECT_CHECK && k.kind != K_DATABASE) {
			unsigned long bad = x->problems - problems + x->damages - damages;

			if ((rc = ws_escape_append(&x->out, k.name, strlen(k.name))))
				;
			else if (bad)
				rc = ws_buf_printf(&x->out, ": %lu problem%s, %" PRIu64 " frames, %"
				    PRIu64 " bytes\n", bad, bad == 1 ? "" : "s",
				    k.frames, k.base + k.w.len);
			else
				rc = ws_buf_printf(&x->out, ": ok, %" PRIu64 " frames, %"
				    PRIu64 " bytes\n", k.frames, k.base + k.w.len);
		}
		insp_sink_release(&k);
		x->sk = NULL;
		if (!rc)
			rc = maybe_flush(x);
		if (o->stop && *o->stop)
			break;
	}
	if (!rc && o->mode == WS_INSPECT_STATS)
		rc = insp_put_stats(x);
	if (!rc && (x->problems || x->damages)) {
		summary = 1;
		if (!x->problems)
			rc = ws_error(err, WS_ECORRUPT, "%lu damaged range%s skipped",
			    x->damages, x->damages == 1 ? "" : "s");
		else if (!x->damages)
			rc = ws_error(err, WS_ECORRUPT, "%lu problem%s found",
			    x->problems, x->problems == 1 ? "" : "s");
		else
			rc = ws_error(err, WS_ECORRUPT, "%lu damaged range%s skipped, "
			    "%lu problem%s found", x->damages, x->damages == 1 ? "" : "s",
			    x->problems, x->problems == 1 ? "" : "s");
	}
out:
	/* What came before any damage is still written. */
	if ((wrc = flush_to(x, tmp)) && (rc == 0 || summary)) {
		rc = ws_error(err, wrc, "%s", tmp);
	}
	if (rc && err && !*err)
		ws_error(err, rc, "%s", ws_strerror(rc));
	insp_release(x);
	free(x);
	return rc;
}
