/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - the views of wsync-inspect (inspect.h): a timeline, JSON
 * lines, a binary stream, statistics and an integrity check of delta
 * streams and session logs, and a summary of a working-set database.
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
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "wsync/crc32c.h"
#include "wsync/escape.h"
#include "wsync/inspect.h"
#include "wsync/json.h"
#include "wsync/schema.h"
#include "wsync/store.h"
#include "wsync/stream.h"

#define CHUNK (256u << 10)        /* bytes read at a time */
#define OUT_FLUSH (256u << 10)    /* output is written in pieces this big */
#define SESS_BUCKETS 1024
#define DIR_NONE 2                /* a frame outside any log record */
#define TEXT_CUT 64               /* text longer than this is cut */
#define BLOB_CUT 32
#define SCHEMA_NAMES 8            /* table names shown for a SCHEMA frame */

/* ANSI colours, used only with WS_INSPECT_COLOR. */
#define C_RESET "\033[0m"
#define C_BOLD "\033[1m"
#define C_RED "\033[31m"
#define C_GREEN "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BLUE "\033[34m"

/* --- small pure helpers --------------------------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

#define FNV0 0xcbf29ce484222325ull

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
static int put_name(struct ws_buf *o, const char *s, size_t n)
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

/* put_name() of a NUL-terminated name. */
static int put_names(struct ws_buf *o, const char *s)
{
	return put_name(o, s, strlen(s));
}

/*
 * put_names(), then blanks up to width bytes (a table's column: "%-32s"
 * for a name that may need escaping).
 */
static int put_cell(struct ws_buf *o, const char *s, size_t width)
{
	size_t start = o->len;
	int rc = put_names(o, s);

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

/* --- a map from 64-bit keys to 64-bit values (open addressing) ------------ */

struct u64map {
	uint64_t *k, *v; /* key 0 is an empty slot */
	size_t cap, n;
};

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

/* --- sessions -------------------------------------------------------------- */

/* What one session knows about one working set. */
struct wsstate {
	char wsid[WS_WSID_MAX + 1];
	int has_clock;
	struct ws_vclock clock; /* the sender's last clock */
	struct ws_vclock dots;  /* last dot counter seen per origin site */
	int has_adv;
	struct ws_vclock adv;   /* the clock this side announced in its ADD */
	int has_stable;
	struct ws_vclock stable; /* the last collected horizon (STABLE) sent */
	int has_snap;
	struct ws_vclock snap;  /* the horizon of the last full copy sent */
	int copy;               /* a full copy is under way (SNAPSHOT seen) */
};

struct chmap {
	uint32_t ch;
	size_t ws; /* index into ws[] */
};

/* One direction of one peer's session. */
struct sess {
	struct sess *next;
	char peer[256];
	size_t peerlen;
	unsigned dir;
	int has_site;
	struct ws_siteid site; /* the sender's site, from its HELLO */
	struct chmap *ch;
	size_t nch;
	struct wsstate *ws;
	size_t nws;
};

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

/* --- statistics ------------------------------------------------------------ */

struct count {
	char *name;
	uint64_t frames, bytes;
	uint64_t ops[4]; /* tables: changes per op */
};

struct counts {
	struct count *c;
	size_t n;
	size_t last;
};

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

struct dot {
	struct ws_siteid site;
	uint64_t counter;
};

struct stats {
	uint64_t frames, bytes, inputs;
	uint64_t type_frames[256], type_bytes[256];
	struct counts sites, wsids, tables;
	uint64_t batches, distinct, copies;  /* batch frames: all, first, again */
	uint64_t changes, dchanges;          /* in all batches, in distinct ones */
	uint64_t conflicts;
	int has_time;
	uint64_t t_first, t_last;
	struct u64map seen;  /* distinct batches: hash of (wsid, dot) */
	struct u64map cells; /* hash of (wsid, table, pk, column) -> dots[i] + 1 */
	struct dot *dots;
	size_t ndots, capdots;
};

/* --- the inspector ----------------------------------------------------------- */

/* A frame as the views see it: unwrapped from its log record, if any. */
struct rec {
	int has_time;
	uint64_t time;
	unsigned dir;        /* WS_LOG_IN, WS_LOG_OUT or DIR_NONE */
	const char *peer;
	size_t peerlen;
	struct ws_frame f;   /* the frame (inside the record) */
	size_t bytes;        /* bytes of the whole frame in the input */
};

/* Decoded payload of the frame being handled. */
struct dec {
	int ok;              /* the payload was decoded */
	struct ws_hello hello;
	int hello_ok;
	unsigned notice;
	struct ws_siteid notice_site;
	int64_t code;
	const char *msg;
	size_t msglen;
	uint64_t hb;
	int schema_ok;       /* x->sc holds the record (else: unknown format) */
	uint64_t schema_fmt;
};

enum { K_UNKNOWN, K_BINARY, K_JSON, K_DATABASE };
enum { SC_PRE, SC_FRAMES, SC_RESYNC };

/* One input being read. */
struct sink {
	const char *name;
	int kind;
	struct ws_buf w;      /* unprocessed bytes */
	size_t pos;           /* processed up to here in w */
	uint64_t base;        /* stream offset of w.p[0] */
	int state;            /* SC_* for binary input */
	uint64_t dmg_at;      /* resync: where the damage starts */
	uint64_t q;           /* resync: next candidate offset */
	char dmg_why[WS_ERRLEN];
	struct ws_reader rd;  /* JSON input */
	uint64_t frames, bytes;
	int db;               /* it is a database (kind K_DATABASE) */
};

struct insp {
	const struct ws_inspect_opts *o;
	char *err;
	struct ws_buf out;
	int need_state;       /* decode frames and follow sessions */
	int need_batch;       /* decode batch payloads */
	struct sess *buckets[SESS_BUCKETS];
	struct sess plain;    /* frames outside log records */
	struct ws_batch b;
	struct ws_vclock vc;
	struct ws_add add;
	struct ws_schema sc;
	struct ws_buf tmp;
	struct stats st;
	struct sink *sk;      /* the input being read */
	int json_pos;         /* where: a JSON line (1) or a byte offset (0) */
	uint64_t at;          /* the frame's byte offset or line number */
	unsigned long problems, damages;
	uint64_t frames, bytes;
};

static const char *oname(const struct insp *x)
{
	return x->o->out_name ? x->o->out_name : "-";
}

static void warn(struct insp *x, const char *fmt, ...) WS_PRINTF(2, 3);

static void warn(struct insp *x, const char *fmt, ...)
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

static int flush(struct insp *x)
{
	return flush_to(x, x->err);
}

static int maybe_flush(struct insp *x)
{
	return x->out.len >= OUT_FLUSH ? flush(x) : 0;
}

/* "frame at byte N" or "line N", for messages about the current frame. */
static const char *where(const struct insp *x, char buf[64])
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
	h = fnv(fnv(FNV0, peer, peerlen), &dir, sizeof(dir));
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
static void short_site(const struct ws_siteid *s, char out[9])
{
	char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(s, hex);
	memcpy(out, hex, 8);
	out[8] = 0;
}

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
		warn(x, "'%s': %s: working set '%s': %s", x->sk->name, where(x, pos),
		    wsid, what);
	else
		warn(x, "'%s': %s: working set '%s', %s %.*s: %s", x->sk->name,
		    where(x, pos), wsid, r->dir == WS_LOG_IN ? "from" : "to",
		    (int)r->peerlen, r->peer, what);
}

/* --check: no coordinate of the sender's clock goes back. */
static int check_clock(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc)
{
	char s8[9];
	size_t i;
	uint64_t old;

	if (w->has_clock)
		for (i = 0; i < vc->n; i++) {
			old = ws_vclock_get(&w->clock, &vc->e[i].site);
			if (vc->e[i].counter < old) {
				short_site(&vc->e[i].site, s8);
				problem(x, r, w->wsid, "the clock went back: site %s from "
				    "%" PRIu64 " to %" PRIu64, s8, old, vc->e[i].counter);
			}
		}
	w->has_clock = 1;
	return ws_vclock_copy(&w->clock, vc);
}

/*
 * --check: a STABLE clock holds the hub's collected horizon, not its
 * clock, so it is compared only with the horizon before it, which never
 * goes back.  With SNAPSHOT, a full copy follows up to the next clock
 * frame on the channel, and the receiver then holds the horizon.
 */
static int check_stable(struct insp *x, const struct rec *r, struct wsstate *w,
    const struct ws_vclock *vc, int snapshot)
{
	char s8[9];
	size_t i;
	uint64_t old;
	int rc;

	if (w->has_stable)
		for (i = 0; i < vc->n; i++) {
			old = ws_vclock_get(&w->stable, &vc->e[i].site);
			if (vc->e[i].counter < old) {
				short_site(&vc->e[i].site, s8);
				problem(x, r, w->wsid, "the collected horizon went back: "
				    "site %s from %" PRIu64 " to %" PRIu64, s8, old,
				    vc->e[i].counter);
			}
		}
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

	short_site(site, s8);
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
static int check_batch(struct insp *x, const struct rec *r, struct wsstate *w,
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
		if (x->o->mode == WS_INSPECT_CHECK && (rc = check_clock(x, r, w,
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
				rc = check_stable(x, r, w, &x->vc,
				    r->f.flags & WS_CLOCK_SNAPSHOT);
			else
				rc = check_clock(x, r, w, &x->vc);
		} else if (r->f.type == WS_FRAME_BATCH && !w->copy) {
			/* A full copy's batches carry no dot of their own: their
			 * changes name the hub's copy, or a conflict's loser. */
			struct sess *o = sess_other(x, r);

			rc = check_batch(x, r, w, o ? sess_chan(o, r->f.channel) : NULL);
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

/* --- the timeline ---------------------------------------------------------- */

static int put_clock(struct ws_buf *o, const struct ws_vclock *vc)
{
	char s8[9];
	size_t i;
	int rc = 0;

	if (vc->n == 0)
		return ws_buf_printf(o, "{}");
	for (i = 0; i < vc->n && !rc; i++) {
		short_site(&vc->e[i].site, s8);
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

	if ((rc = ws_buf_printf(o, "  ")) || (rc = put_names(o, t->name)) ||
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
		if (!(rc = ws_buf_putc(o, ' ')) && !(rc = put_names(o, t->cols[i])) &&
		    !(rc = ws_buf_putc(o, '=')))
			rc = ws_inspect_put_value(o, &c->vals[k++]);
	}
	if (!rc && !(b->has_dot && c->counter == b->dot_counter &&
	    ws_siteid_cmp(&b->sites[c->site], &b->dot_site) == 0)) {
		short_site(&b->sites[c->site], s8);
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
			rc = put_names(o, sc->obj[i].name);
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
		if ((rc = ws_buf_printf(o, "  wsid=")) || (rc = put_names(o, x->add.wsid)) ||
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
		short_site(&d->notice_site, s8);
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
			short_site(&b->dot_site, s8);
		else if (b->nchanges)
			short_site(&b->sites[b->changes[0].site], s8);
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

static int put_line(struct insp *x, const struct rec *r, const struct dec *d,
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
		    !(rc = put_name(o, r->peer, r->peerlen)))
			rc = ws_buf_printf(o, "  ");
	if (rc)
		return rc;
	if (wsid && !(rc = put_names(o, wsid)))
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

/* --- statistics ------------------------------------------------------------- */

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
	*h = fnv(fnv(fnv(FNV0, wsid, strlen(wsid) + 1), t->name, strlen(t->name) + 1),
	    x->tmp.p, x->tmp.len);
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
			cell_get(st, fnv(h, "W", 1), &prev);
			hit = concurrent(b, &prev, o);
			if ((rc = cell_set(st, fnv(h, "D", 1), o, c->counter)) ||
			    (rc = cell_set(st, fnv(h, "W", 1), o, c->counter)))
				return rc;
		} else {
			/* A write, and a delete of its row it had not seen. */
			cell_get(st, fnv(h, "D", 1), &prev);
			hit = concurrent(b, &prev, o);
			if ((rc = cell_set(st, fnv(h, "W", 1), o, c->counter)))
				return rc;
			for (k = 0; k < t->ncols; k++) {
				if (!ws_mask_test(c->mask, k))
					continue;
				cell_get(st, fnv(h, &k, sizeof(k)), &prev);
				if (concurrent(b, &prev, o))
					st->conflicts++;
				if ((rc = cell_set(st, fnv(h, &k, sizeof(k)), o, c->counter)))
					return rc;
			}
		}
		if (hit)
			st->conflicts++;
	}
	return 0;
}

static int stats_frame(struct insp *x, const struct rec *r, struct sess *s,
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
		uint64_t h = fnv(FNV0, wsid ? wsid : "", wsid ? strlen(wsid) : 0);
		int created;

		if (b->has_dot)
			h = fnv(fnv(h, b->dot_site.b, WS_SITEID_LEN), &b->dot_counter,
			    sizeof(b->dot_counter));
		else
			h = fnv(fnv(h, "-", 1), r->f.payload, r->f.len);
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

/* --- one frame ---------------------------------------------------------------- */

/* Damage inside one intact frame (its payload): skip it or stop. */
static int frame_damage(struct insp *x, int rc, const char *why)
{
	char pos[64];

	if (rc == WS_ENOMEM)
		return rc;
	if (!(x->o->flags & WS_INSPECT_SALVAGE))
		return ws_error(x->err, rc, "'%s': %s: %s", x->sk->name, where(x, pos), why);
	x->damages++;
	warn(x, "'%s': %s: %s; frame skipped", x->sk->name, where(x, pos), why);
	return 0;
}

/* Handle one frame (outer: as read, maybe a log record) of `bytes` bytes. */
static int on_frame(struct insp *x, const struct ws_frame *outer, size_t bytes)
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
		rc = put_line(x, &r, &d, w ? w->wsid : NULL);
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
		rc = stats_frame(x, &r, s, w ? w->wsid : NULL);
		break;
	default:
		break;
	}
	return rc ? rc : maybe_flush(x);
}

/* --- binary streams ------------------------------------------------------------ */

static const char *frame_problem(int rc)
{
	switch (rc) {
	case WS_ECORRUPT: return "frame type 0";
	case WS_ETOOBIG: return "frame larger than the maximum";
	default: return ws_strerror(rc);
	}
}

/* Damage in the framing at stream offset at: stop, or start a resync. */
static int stream_damage(struct insp *x, struct sink *k, int rc, uint64_t at,
    const char *why)
{
	if (!(x->o->flags & WS_INSPECT_SALVAGE))
		return ws_error(x->err, rc, "'%s': %s", k->name, why);
	x->damages++;
	snprintf(k->dmg_why, sizeof(k->dmg_why), "%s", why);
	k->state = SC_RESYNC;
	k->dmg_at = at;
	k->q = at;
	k->pos = (size_t)(at - k->base);
	return 0;
}

static int known_type(uint8_t t)
{
	return ws_frame_type_name(t) != NULL;
}

/*
 * Resync: look from k->q for a preamble (at the damage itself too) or a
 * frame of a known type whose checksum holds (after it).  1 when found,
 * 0 when more input is needed (or, at eof, when nothing was found).
 */
static int resync(struct insp *x, struct sink *k, int eof)
{
	static const uint8_t pre[WS_FRAME_PREAMBLE] = {0x89, 'W', 'S', 'Y', 'N', 'C',
	    '\r', '\n', WS_FRAME_VERSION, 0};
	size_t qi, left, m, len;
	const uint8_t *p;

	for (; k->q < k->base + k->w.len; k->q++) {
		qi = (size_t)(k->q - k->base);
		k->pos = qi;
		p = k->w.p + qi;
		left = k->w.len - qi;
		if (p[0] == 0x89) {
			m = left < WS_FRAME_PREAMBLE ? left : WS_FRAME_PREAMBLE;
			if (memcmp(p, pre, m) == 0) {
				if (m == WS_FRAME_PREAMBLE) {
					k->state = SC_PRE;
					return 1;
				}
				if (!eof)
					return 0;
			}
		}
		if (k->q == k->dmg_at || !known_type(p[0]))
			continue;
		if (left < WS_FRAME_HDRLEN) {
			if (!eof)
				return 0;
			continue;
		}
		len = ws_get_u32le(p + 6);
		if (len > x->sk->rd.max)
			continue;
		if (left < WS_FRAME_OVERHEAD + len) {
			if (!eof)
				return 0;
			continue;
		}
		if (ws_crc32c(0, p, WS_FRAME_HDRLEN + len) ==
		    ws_get_u32le(p + WS_FRAME_HDRLEN + len)) {
			k->state = SC_FRAMES;
			return 1;
		}
	}
	k->pos = k->w.len;
	return 0;
}

static int put_skip(struct insp *x, struct sink *k, int eof)
{
	uint64_t end = k->base + k->pos;

	if (eof && k->state == SC_RESYNC)
		warn(x, "'%s': %s; skipped %" PRIu64 " bytes to the end", k->name,
		    k->dmg_why, k->base + k->w.len - k->dmg_at);
	else
		warn(x, "'%s': %s; skipped %" PRIu64 " bytes, resumed at byte %" PRIu64
		    " (%s)", k->name, k->dmg_why, end - k->dmg_at, end,
		    k->state == SC_PRE ? "a preamble" : "a frame");
	return 0;
}

/* Cut k->w into frames from k->pos.  At eof, what is left is damage. */
static int binary_process(struct insp *x, struct sink *k, int eof)
{
	struct ws_frame f;
	size_t avail, used, m, i;
	uint64_t at;
	char why[WS_ERRLEN];
	int rc;

	for (;;) {
		avail = k->w.len - k->pos;
		at = k->base + k->pos;
		x->json_pos = 0;
		x->at = at;
		switch (k->state) {
		case SC_PRE:
			if (avail == 0)
				return 0;
			m = avail < WS_FRAME_PREAMBLE ? avail : WS_FRAME_PREAMBLE;
			rc = ws_frame_check_preamble(k->w.p + k->pos, m, NULL);
			if (rc == WS_ETRUNC) {
				if (!eof)
					return 0;
				snprintf(why, sizeof(why), "byte %" PRIu64 ": truncated "
				    "preamble (%zu of %d bytes)", at, avail, WS_FRAME_PREAMBLE);
				if ((rc = stream_damage(x, k, WS_ETRUNC, at, why)))
					return rc;
				continue;
			}
			if (rc) {
				const uint8_t *p = k->w.p + k->pos;

				for (i = 0; i < m; i++)
					if ((i < WS_FRAME_MAGICLEN && p[i] !=
					    (uint8_t)WS_FRAME_MAGIC[i]) ||
					    (i == 8 && p[i] != WS_FRAME_VERSION) ||
					    (i == 9 && p[i] != 0))
						break;
				snprintf(why, sizeof(why), "byte %" PRIu64 ": %s", at + i,
				    i < WS_FRAME_MAGICLEN ? "not a wsync stream (bad magic)" :
				    i == 8 ? "unsupported stream version" :
				    "unsupported stream format (reserved byte is not 0)");
				if ((rc = stream_damage(x, k, rc, at, why)))
					return rc;
				continue;
			}
			k->pos += WS_FRAME_PREAMBLE;
			k->state = SC_FRAMES;
			continue;
		case SC_FRAMES:
			if (avail == 0)
				return 0;
			rc = ws_frame_parse(k->w.p + k->pos, avail, k->rd.max, &f, &used);
			if (rc == 0) {
				if ((rc = on_frame(x, &f, used)))
					return rc;
				k->pos += used;
				if (x->o->stop && *x->o->stop)
					return 0;
				continue;
			}
			if (rc == WS_ETRUNC) {
				if (!eof)
					return 0;
				snprintf(why, sizeof(why), "frame at byte %" PRIu64 ": "
				    "truncated (stream ends after %zu bytes of it)", at, avail);
			} else {
				snprintf(why, sizeof(why), "frame at byte %" PRIu64 ": %s",
				    at, frame_problem(rc));
			}
			if ((rc = stream_damage(x, k, rc, at, why)))
				return rc;
			continue;
		case SC_RESYNC:
			if (!resync(x, k, eof)) {
				if (eof)
					put_skip(x, k, 1);
				return 0;
			}
			put_skip(x, k, 0);
			continue;
		}
	}
}

/* --- JSON lines ------------------------------------------------------------------ */

static int json_process(struct insp *x, struct sink *k, int eof)
{
	struct ws_frame f;
	char why[WS_ERRLEN] = "";
	size_t used;
	int rc;

	while (k->pos < k->w.len) {
		rc = ws_reader_feed(&k->rd, k->w.p + k->pos, k->w.len - k->pos, &used,
		    &f, why);
		k->pos += used;
		if (rc == 1) {
			x->json_pos = 1;
			x->at = k->rd.line_no;
			if ((rc = on_frame(x, &f, f.len + WS_FRAME_OVERHEAD)))
				return rc;
			if (x->o->stop && *x->o->stop)
				return 0;
			continue;
		}
		if (rc == 0)
			break;
		if (rc == WS_ENOMEM || !(x->o->flags & WS_INSPECT_SALVAGE))
			return ws_error(x->err, rc, "'%s': %s", k->name, why);
		if (rc == WS_EMAGIC) {
			/* Neither kind: look for binary frames in it. */
			k->kind = K_BINARY;
			if ((rc = stream_damage(x, k, rc, k->rd.error_offset, why)))
				return rc;
			return binary_process(x, k, eof);
		}
		x->damages++;
		warn(x, "'%s': %s; line skipped", k->name, why);
		if ((rc = ws_reader_resume(&k->rd)))
			return rc;
	}
	if (!eof)
		return 0;
	while ((rc = ws_reader_finish(&k->rd, &f, why)) == 1) {
		x->json_pos = 1;
		x->at = k->rd.line_no;
		if ((rc = on_frame(x, &f, f.len + WS_FRAME_OVERHEAD)))
			return rc;
	}
	if (rc && (rc == WS_ENOMEM || !(x->o->flags & WS_INSPECT_SALVAGE)))
		return ws_error(x->err, rc, "'%s': %s", k->name, why);
	if (rc) {
		x->damages++;
		warn(x, "'%s': %s; line skipped", k->name, why);
	}
	return 0;
}

/* --- sinks ---------------------------------------------------------------------- */

static void sink_init(struct sink *k, const char *name, size_t max)
{
	memset(k, 0, sizeof(*k));
	k->name = name;
	ws_buf_init(&k->w);
	ws_reader_init(&k->rd, max);
}

static void sink_release(struct sink *k)
{
	ws_buf_release(&k->w);
	ws_reader_release(&k->rd);
}

/* Detect the kind from the bytes so far; 0 while it cannot tell yet. */
static int sink_detect(struct sink *k, int eof)
{
	static const char sq[] = "SQLite format 3";

	if (k->w.len == 0)
		return eof ? K_JSON : 0;
	if (k->w.p[0] == (uint8_t)WS_FRAME_MAGIC[0])
		return K_BINARY;
	if (k->w.len < 16 && memcmp(k->w.p, sq, k->w.len) == 0 && !eof)
		return 0;
	if (ws_inspect_is_database(k->w.p, k->w.len))
		return K_DATABASE;
	return K_JSON;
}

/* Process what k holds; at eof the input has ended. */
static int sink_process(struct insp *x, struct sink *k, int eof)
{
	int rc = 0;

	x->sk = k;
	if (k->kind == K_UNKNOWN && !(k->kind = sink_detect(k, eof)))
		return 0;
	if (k->kind == K_DATABASE)
		return 0;
	if (k->kind == K_BINARY)
		rc = binary_process(x, k, eof);
	else
		rc = json_process(x, k, eof);
	/* Keep only what is left. */
	if (k->pos > 0 && k->pos <= k->w.len) {
		memmove(k->w.p, k->w.p + k->pos, k->w.len - k->pos);
		k->w.len -= k->pos;
		k->base += k->pos;
		k->pos = 0;
	}
	return rc;
}

/* --- inputs -------------------------------------------------------------------- */

struct curlctx {
	struct insp *x;
	struct sink *k;
	int rc;
};

static size_t curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
	struct curlctx *c = ud;
	size_t n = size * nmemb;

	if (c->rc)
		return 0;
	if (ws_buf_append(&c->k->w, p, n)) {
		c->rc = WS_ENOMEM;
		return 0;
	}
	if ((c->rc = sink_process(c->x, c->k, 0)))
		return 0;
	if (c->k->kind == K_DATABASE) {
		c->rc = ws_error(c->x->err, WS_EINVAL, "'%s' is an SQLite database: "
		    "give its file name", c->k->name);
		return 0;
	}
	return n;
}

static int run_url(struct insp *x, struct sink *k)
{
	struct curlctx c = {x, k, 0};
	char cerr[CURL_ERROR_SIZE] = "";
	const char *ca;
	CURL *h;
	CURLcode cc;
	long code = 0;
	int rc;

	if (strncasecmp(k->name, "http://", 7) && strncasecmp(k->name, "https://", 8) &&
	    strncasecmp(k->name, "sftp://", 7) && strncasecmp(k->name, "file://", 7))
		return ws_error(x->err, WS_EINVAL, "'%s': unsupported URL scheme (want "
		    "http, https, sftp or file)", k->name);
	if (!(h = curl_easy_init()))
		return ws_error(x->err, WS_EINTERNAL, "cannot initialise libcurl");
	curl_easy_setopt(h, CURLOPT_URL, k->name);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,sftp,file");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, curl_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "wsync-inspect/" "0.1.0");
	/* As curl(1) does: libcurl itself does not read CURL_CA_BUNDLE. */
	if ((ca = getenv("CURL_CA_BUNDLE")) && *ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_cleanup(h);
	if (c.rc)
		return c.rc;
	if (cc == CURLE_HTTP_RETURNED_ERROR)
		return ws_error(x->err, code == 401 || code == 403 ? WS_EPERM :
		    WS_ENOTFOUND, "cannot fetch '%s': HTTP %ld", k->name, code);
	if (cc != CURLE_OK) {
		rc = cc == CURLE_FILE_COULDNT_READ_FILE || cc == CURLE_REMOTE_FILE_NOT_FOUND ?
		    WS_ENOTFOUND : cc == CURLE_COULDNT_CONNECT ||
		    cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_OPERATION_TIMEDOUT ?
		    WS_EUNSUPP : cc == CURLE_LOGIN_DENIED || cc == CURLE_REMOTE_ACCESS_DENIED ||
		    cc == CURLE_PEER_FAILED_VERIFICATION ? WS_EPERM : cc == CURLE_UNSUPPORTED_PROTOCOL ? WS_EINVAL : WS_EIO;
		return ws_error(x->err, rc, "cannot fetch '%s': %s", k->name,
		    cerr[0] ? cerr : curl_easy_strerror(cc));
	}
	if ((rc = sink_process(x, k, 1)))
		return rc;
	if (k->kind == K_DATABASE)
		return ws_error(x->err, WS_EINVAL, "'%s' is an SQLite database: give its "
		    "file name", k->name);
	return 0;
}

/*
 * Wait until the file behind fd (watched by ifd) changes or o->stop is
 * set: 1 changed, 0 stop, <0 error.  Polls with a timeout so that a
 * signal that arrives just before poll() is seen within a second.
 */
static int wait_change(struct insp *x, int ifd)
{
	struct pollfd pfd = {ifd, POLLIN, 0};
	char ev[4096];
	int n;

	for (;;) {
		if (x->o->stop && *x->o->stop)
			return 0;
		n = poll(&pfd, 1, 1000);
		if (n < 0 && errno != EINTR)
			return ws_error(x->err, WS_EIO, "poll: %s", strerror(errno));
		if (n > 0) {
			while (read(ifd, ev, sizeof(ev)) > 0)
				;
			return 1;
		}
	}
}

static int db_view(struct insp *x, const char *path);

static int run_file(struct insp *x, struct sink *k, int follow)
{
	char buf[64], why[WS_ERRLEN];
	struct stat st;
	int fd, ifd = -1, rc = 0;
	ssize_t n;

	if (strcmp(k->name, "-") == 0) {
		fd = STDIN_FILENO;
	} else if ((fd = open(k->name, O_RDONLY | O_CLOEXEC)) < 0) {
		return ws_error(x->err, errno == ENOENT ? WS_ENOTFOUND :
		    errno == EACCES || errno == EPERM ? WS_EPERM : WS_EIO,
		    "cannot open '%s': %s", k->name, ws_errno_text(errno, buf));
	}
	if (follow && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)))
		follow = 0;
	if (follow) {
		ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (ifd < 0 || inotify_add_watch(ifd, k->name, IN_MODIFY | IN_ATTRIB |
		    IN_CLOSE_WRITE | IN_MOVE_SELF | IN_DELETE_SELF) < 0) {
			rc = ws_error(x->err, WS_EIO, "cannot watch '%s': %s", k->name,
			    ws_errno_text(errno, buf));
			goto out;
		}
	}
	for (;;) {
		if (ws_buf_reserve(&k->w, CHUNK)) {
			rc = WS_ENOMEM;
			goto out;
		}
		n = read(fd, k->w.p + k->w.len, CHUNK);
		if (n < 0 && errno == EINTR) {
			if (x->o->stop && *x->o->stop)
				goto out;
			continue;
		}
		if (n < 0) {
			snprintf(why, sizeof(why), "read error: %s", ws_errno_text(errno, buf));
			rc = ws_error(x->err, WS_EIO, "'%s': %s", k->name, why);
			goto out;
		}
		if (n == 0) {
			if (!follow)
				break;
			if (k->kind == K_DATABASE)
				break;
			if ((rc = flush(x)))
				goto out;
			if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < k->base + k->w.len) {
				warn(x, "'%s': file truncated; reading it from the start", k->name);
				lseek(fd, 0, SEEK_SET);
				sink_release(k);
				sink_init(k, k->name, x->o->max);
				continue;
			}
			if ((rc = wait_change(x, ifd)) <= 0)
				goto out; /* stopped: a partial frame is not damage */
			continue;
		}
		k->w.len += (size_t)n;
		if ((rc = sink_process(x, k, 0)))
			goto out;
		if (k->kind == K_DATABASE)
			break;
		if (x->o->stop && *x->o->stop)
			goto out;
	}
	if (k->kind == K_DATABASE) {
		if (fd == STDIN_FILENO) {
			rc = ws_error(x->err, WS_EINVAL, "standard input holds an SQLite "
			    "database: give its file name");
			goto out;
		}
		close(fd);
		fd = -1;
		rc = db_view(x, k->name);
		goto out;
	}
	rc = sink_process(x, k, 1);
out:
	if (ifd >= 0)
		close(ifd);
	if (fd > STDIN_FILENO)
		close(fd);
	return rc;
}

/* --- the database view --------------------------------------------------------- */

struct confl {
	struct insp *x;
	json_t *arr;
	size_t n;
	int rc;
};

static int conflict_cb(const struct ws_conflict *c, void *cd)
{
	struct confl *k = cd;
	struct ws_buf *o = &k->x->out;
	char s8[9], hex[WS_SITEID_HEXLEN + 1];
	uint32_t i;
	int rc = 0;

	k->n++;
	if (k->arr) {
		json_t *j = json_object(), *pk = json_array();
		char dot[WS_SITEID_HEXLEN + 24];

		ws_siteid_hex(&c->site, hex);
		snprintf(dot, sizeof(dot), "%s:%" PRIu64, hex, c->counter);
		for (i = 0; i < c->npk && pk; i++)
			if (json_array_append_new(pk, ws_json_from_value(&c->pk[i])))
				rc = WS_ENOMEM;
		if (!j || !pk || rc ||
		    json_object_set_new(j, "id", json_integer(c->id)) ||
		    json_object_set_new(j, "table", json_string(c->table)) ||
		    json_object_set_new(j, "pk", pk) ||
		    json_object_set_new(j, "column", json_string(c->column)) ||
		    json_object_set_new(j, "value", ws_json_from_value(&c->value)) ||
		    json_object_set_new(j, "lost_to_delete", json_boolean(c->lost_to_delete)) ||
		    json_object_set_new(j, "kind", json_string(c->kind)) ||
		    json_object_set_new(j, "dot", json_string(dot)) ||
		    json_array_append_new(k->arr, j))
			return k->rc = WS_ENOMEM;
		return 0;
	}
	if ((rc = ws_buf_printf(o, "  %" PRId64 ": ", c->id)) ||
	    (rc = put_names(o, c->table)) || (rc = ws_buf_printf(o, " pk=(")))
		return k->rc = rc;
	for (i = 0; i < c->npk && !rc; i++)
		if (!(rc = i ? ws_buf_putc(o, ',') : 0))
			rc = ws_inspect_put_value(o, &c->pk[i]);
	short_site(&c->site, s8);
	if (rc || (rc = ws_buf_printf(o, ") ")) || (rc = put_names(o, c->column)) ||
	    (rc = ws_buf_putc(o, '=')) ||
	    (rc = ws_inspect_put_value(o, &c->value)) ||
	    (rc = ws_buf_printf(o, " dot=%s:%" PRIu64, s8, c->counter)))
		return k->rc = rc;
	/* the kind is the database's text: escaped like a name */
	if (c->lost_to_delete && strcmp(c->kind, "delete") == 0)
		rc = ws_buf_printf(o, " (lost to a delete)");
	else if (c->lost_to_delete && !(rc = ws_buf_printf(o, " (lost to a ")) &&
	    !(rc = ws_escape_append(o, c->kind, strlen(c->kind))))
		rc = ws_buf_printf(o, " constraint)");
	if (rc || (rc = ws_buf_putc(o, '\n')))
		return k->rc = rc;
	return 0;
}

/* Collects the replicator's tables, for db_replica(). */
struct replica_out {
	struct insp *x;
	json_t *arr;          /* JSON: one object each; NULL for text */
};

/* A field of the replicator's state as a new JSON string, or JSON null
 * when it is not set; NULL when out of memory. */
static json_t *jstring_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static int replica_cb(const struct ws_store_replica *r, void *cd)
{
	struct replica_out *ro = cd;
	struct ws_buf *o = &ro->x->out;
	json_t *j;
	int rc;

	if (ro->arr)
		return (j = json_object()) &&
		    !json_object_set_new(j, "table", json_string(r->table)) &&
		    !json_object_set_new(j, "source", jstring_or_null(r->source)) &&
		    !json_object_set_new(j, "guid", jstring_or_null(r->guid)) &&
		    !json_object_set_new(j, "usn", json_integer(r->usn)) &&
		    !json_object_set_new(j, "updated", jstring_or_null(r->updated)) &&
		    !json_array_append_new(ro->arr, j) ? 0 : WS_ENOMEM;
	if (!(rc = ws_buf_printf(o, "  ")) &&
	    !(rc = put_names(o, r->table)) &&
	    !(rc = ws_buf_printf(o, "  source=")) &&
	    !(rc = put_names(o, r->source ? r->source : "none")) &&
	    !(rc = ws_buf_printf(o, " guid=")) &&
	    !(rc = put_names(o, r->guid ? r->guid : "none")) &&
	    !(rc = ws_buf_printf(o, " usn=%" PRId64 " updated=", r->usn)) &&
	    !(rc = put_names(o, r->updated ? r->updated : "none")))
		rc = ws_buf_putc(o, '\n');
	return rc;
}

/* The replicator's state, if the database has its table. */
static int db_replica(struct insp *x, struct ws_store_file *f, json_t *root)
{
	struct replica_out ro = {x, NULL};
	char e[WS_ERRLEN] = "";
	int64_t n;
	int rc;

	if ((rc = ws_store_file_replica(f, &n, NULL, NULL, e)))
		return ws_error(x->err, rc, "'?': %s", e);
	if (n < 0)
		return root ? (json_object_set_new(root, "replicator", json_null()) ?
		    WS_ENOMEM : 0) : ws_buf_printf(&x->out, "replicator    none\n");
	if (root && (!(ro.arr = json_array()) ||
	    json_object_set_new(root, "replicator", ro.arr)))
		return WS_ENOMEM;
	if (!root && (rc = ws_buf_printf(&x->out, "replicator    %s\n",
	    n == 1 ? "1 table" : "tables:")))
		return rc;
	if ((rc = ws_store_file_replica(f, &n, replica_cb, &ro, e)) && *e)
		rc = ws_error(x->err, rc, "'?': %s", e);
	return rc;
}

/* Collects the tracked tables, for db_tables(). */
struct tables_out {
	struct insp *x;
	json_t *arr;          /* JSON: one object each; NULL for text */
};

/* A new JSON array of the strings s[0..n); NULL when out of memory. */
static json_t *jstrings(const char *const *s, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(s[i]))) {
			json_decref(a);
			a = NULL;
		}
	return a;
}

/* Append names[0..n), escaped, separated by ", ". */
static int put_list(struct ws_buf *o, const char *const *names, size_t n)
{
	size_t i;
	int rc = 0;

	for (i = 0; !rc && i < n; i++)
		if (!(rc = ws_buf_printf(o, "%s", i ? ", " : "")))
			rc = put_names(o, names[i]);
	return rc;
}

static int table_cb(const struct ws_store_table *t, void *cd)
{
	struct tables_out *to = cd;
	struct ws_buf *o = &to->x->out;
	json_t *j;
	int rc;

	if (to->arr)
		return (j = json_object()) &&
		    !json_object_set_new(j, "name", json_string(t->name)) &&
		    !json_object_set_new(j, "cols", jstrings(t->cols, t->ncols)) &&
		    !json_object_set_new(j, "pk", jstrings(t->pk, t->npk)) &&
		    !json_array_append_new(to->arr, j) ? 0 : WS_ENOMEM;
	if (!(rc = ws_buf_printf(o, "  ")) && !(rc = put_names(o, t->name)) &&
	    !(rc = ws_buf_printf(o, " (")) && !(rc = put_list(o, t->cols, t->ncols)) &&
	    !(rc = ws_buf_printf(o, "; primary key ")) &&
	    !(rc = put_list(o, t->pk, t->npk)))
		rc = ws_buf_printf(o, ")\n");
	return rc;
}

/* The tracked tables: a "tables" array in root, or text lines. */
static int db_tables(struct insp *x, struct ws_store_file *f,
    const struct ws_store_stats *ss, json_t *root)
{
	struct tables_out to = {x, NULL};
	char e[WS_ERRLEN] = "";
	int rc = 0;

	if (root && (!(to.arr = json_array()) ||
	    json_object_set_new(root, "tables", to.arr)))
		return WS_ENOMEM;
	if (!root && (rc = ws_buf_printf(&x->out, "tracked       %" PRId64 " table%s\n",
	    ss->tables, ss->tables == 1 ? "" : "s")))
		return rc;
	if ((rc = ws_store_file_tables(f, table_cb, &to, e)) && *e)
		rc = ws_error(x->err, rc, "'?': %s", e);
	return rc;
}

/* Collects the tables a working set does not track, for db_view(). */
struct untracked {
	struct ws_buf *out;   /* text: one line each */
	json_t *arr;          /* JSON: one object each */
};

static int untracked_cb(const char *table, const char *why, void *cd)
{
	struct untracked *u = cd;
	json_t *j;

	if (u->arr)
		return (j = json_object()) && !json_object_set_new(j, "table",
		    json_string(table)) && !json_object_set_new(j, "why",
		    json_string(why)) && !json_array_append_new(u->arr, j) ? 0 :
		    WS_ENOMEM;
	int rc = ws_buf_printf(u->out, "untracked     ");

	if (rc == 0) rc = put_names(u->out, table);
	if (rc == 0) rc = ws_buf_printf(u->out, ": ");
	/* why may quote a column's name */
	if (rc == 0) rc = ws_escape_append(u->out, why, strlen(why));
	return rc ? rc : ws_buf_printf(u->out, "\n");
}

static int db_view(struct insp *x, const char *path)
{
	struct ws_vclock vc = WS_VCLOCK_INIT;
	struct ws_store *s = NULL;
	struct ws_store_file *f = NULL;
	struct ws_store_stats ss;
	json_t *root = NULL;
	char wsid[WS_WSID_MAX + 1] = "", hex[WS_SITEID_HEXLEN + 1], e[WS_ERRLEN] = "";
	int asjson = x->o->flags & WS_INSPECT_AS_JSON, rc = 0;
	uint8_t guid[WS_GUID_LEN];
	size_t pending = 0;
	struct confl cf = {x, NULL, 0, 0};
	struct untracked un = {&x->out, NULL};

	if (x->o->mode == WS_INSPECT_ENCODE)
		return ws_error(x->err, WS_EINVAL, "'%s' is an SQLite database, not a "
		    "stream: --encode cannot write it", path);
	if ((rc = ws_store_file_open(&f, path, e))) {
		rc = ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	if (x->o->mode == WS_INSPECT_CHECK) {
		if ((rc = ws_store_file_check(f, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
		if (!(rc = ws_escape_append(&x->out, path, strlen(path))))
			rc = ws_buf_printf(&x->out, ": ok, an SQLite database\n");
		goto out;
	}
	ws_store_file_wsid(f, wsid, sizeof(wsid));
	if (asjson && (!(root = json_object()) ||
	    json_object_set_new(root, "database", json_string(path)))) {
		rc = WS_ENOMEM;
		goto out;
	}
	if (!*wsid) {
		/* Not a working set: its tables, and a replicator's state. */
		if (root) {
			if (json_object_set_new(root, "wsid", json_null()))
				rc = WS_ENOMEM;
		} else {
			if (!(rc = ws_buf_printf(&x->out, "database      ")) &&
			    !(rc = ws_escape_append(&x->out, path, strlen(path))))
				rc = ws_buf_printf(&x->out, "\nworking set   none "
				    "(not a wsync working set)\n");
		}
		if (!rc)
			rc = db_replica(x, f, root);
		goto done;
	}
	if ((rc = ws_store_open(&s, path, wsid, WS_STORE_READONLY, e))) {
		rc = ws_error(x->err, rc, "%s", e);
		goto out;
	}
	ws_siteid_hex(ws_store_site(s), hex);
	if ((rc = ws_store_clock(s, &vc, e)) || (rc = ws_store_pending(s, &pending, e))) {
		rc = ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	ws_store_file_stats(f, &ss);
	if (root) {
		json_t *log = json_object();
		int has_guid = ws_store_guid(s, guid);
		struct ws_siteid g;

		if (has_guid) {
			memcpy(g.b, guid, WS_GUID_LEN);
			ws_siteid_hex(&g, e);
		}
		if (!log || json_object_set_new(root, "wsid", json_string(wsid)) ||
		    json_object_set_new(root, "site", json_string(hex)) ||
		    json_object_set_new(root, "guid", has_guid ? json_string(e) :
		    json_null()) ||
		    json_object_set_new(root, "clock", ws_json_from_vclock(&vc)) ||
		    json_object_set_new(log, "entries", json_integer(ss.entries)) ||
		    json_object_set_new(log, "first_usn", ss.first_usn < 0 ? json_null() :
		    json_integer(ss.first_usn)) ||
		    json_object_set_new(log, "last_usn", ss.last_usn < 0 ? json_null() :
		    json_integer(ss.last_usn)) ||
		    json_object_set_new(log, "batches", json_integer(ss.batches)) ||
		    json_object_set_new(log, "bytes", ss.bytes < 0 ? json_null() :
		    json_integer(ss.bytes)) ||
		    json_object_set_new(root, "log", log) ||
		    json_object_set_new(root, "pending", json_integer((json_int_t)pending)) ||
		    !(cf.arr = json_array()) ||
		    json_object_set_new(root, "conflicts", cf.arr)) {
			rc = WS_ENOMEM;
			goto out;
		}
		if ((rc = db_tables(x, f, &ss, root)))
			goto out;
		if (!(un.arr = json_array()) ||
		    json_object_set_new(root, "untracked", un.arr)) {
			rc = WS_ENOMEM;
			goto out;
		}
		if ((rc = ws_store_untracked(s, untracked_cb, &un, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
	} else {
		struct ws_siteid g;
		struct ws_buf *o = &x->out;
		size_t i;

		if ((rc = ws_buf_printf(o, "database      ")) ||
		    (rc = ws_escape_append(o, path, strlen(path))) ||
		    (rc = ws_buf_printf(o, "\nworking set   ")) || (rc = put_names(o, wsid)) ||
		    (rc = ws_buf_printf(o, "\nsite          %s\n", hex)))
			goto out;
		if (ws_store_guid(s, guid)) {
			memcpy(g.b, guid, WS_GUID_LEN);
			ws_siteid_hex(&g, hex);
			rc = ws_buf_printf(o, "guid          %s\n", hex);
		} else {
			rc = ws_buf_printf(o, "guid          none\n");
		}
		if (rc || (rc = ws_buf_printf(o, "clock         ")))
			goto out;
		for (i = 0; i < vc.n && !rc; i++) {
			ws_siteid_hex(&vc.e[i].site, hex);
			rc = ws_buf_printf(o, "%s%s:%" PRIu64, i ? ", " : "", hex,
			    vc.e[i].counter);
		}
		if (rc || (rc = ws_buf_printf(o, "%s\n", vc.n ? "" : "empty")) ||
		    (rc = db_tables(x, f, &ss, NULL)))
			goto out;
		if ((rc = ws_store_untracked(s, untracked_cb, &un, e))) {
			rc = ws_error(x->err, rc, "'%s': %s", path, e);
			goto out;
		}
		rc = ws_buf_printf(o, "change log    %" PRId64 " entr%s", ss.entries,
		    ss.entries == 1 ? "y" : "ies");
		if (!rc && ss.entries > 0)
			rc = ws_buf_printf(o, " (usn %" PRId64 " to %" PRId64 ")",
			    ss.first_usn, ss.last_usn);
		if (!rc)
			rc = ws_buf_printf(o, ", %" PRId64 " batch%s", ss.batches,
			    ss.batches == 1 ? "" : "es");
		if (!rc && ss.bytes >= 0)
			rc = ws_buf_printf(o, ", %" PRId64 " bytes", ss.bytes);
		if (!rc)
			rc = ws_buf_printf(o, "\npending       %zu batch%s waiting\n", pending,
			    pending == 1 ? "" : "es");
		if (!rc)
			rc = ws_buf_printf(o, "conflicts     %" PRId64 "\n", ss.conflicts);
		if (rc)
			goto out;
	}
	if ((rc = ws_store_conflicts(s, conflict_cb, &cf, e))) {
		rc = cf.rc ? cf.rc : ws_error(x->err, rc, "'%s': %s", path, e);
		goto out;
	}
	rc = db_replica(x, f, root);
done:
	if (!rc && root) {
		char *j = json_dumps(root, JSON_COMPACT);

		rc = !j || ws_buf_printf(&x->out, "%s\n", j) ? WS_ENOMEM : 0;
		free(j);
	}
out:
	json_decref(root);
	ws_store_close(s);
	ws_store_file_close(f);
	ws_vclock_release(&vc);
	return rc;
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
		if (!(rc = ws_buf_printf(o, "  ")) && !(rc = put_cell(o, cs->c[i].name, 32)))
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

static int put_stats(struct insp *x)
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
			if (ws_frame_type_name((unsigned)i))
				snprintf(name, sizeof(name), "%s", ws_frame_type_name((unsigned)i));
			else
				snprintf(name, sizeof(name), "%zu", i);
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
		if (ws_frame_type_name((unsigned)i))
			snprintf(name, sizeof(name), "%s", ws_frame_type_name((unsigned)i));
		else
			snprintf(name, sizeof(name), "%zu", i);
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
		    !(rc = put_cell(o, st->tables.c[i].name, 32)))
			rc = ws_buf_printf(o, " %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n",
			    st->tables.c[i].ops[1], st->tables.c[i].ops[2],
			    st->tables.c[i].ops[3]);
	return rc;
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
	counts_release(&x->st.sites);
	counts_release(&x->st.wsids);
	counts_release(&x->st.tables);
	u64map_release(&x->st.seen);
	u64map_release(&x->st.cells);
	free(x->st.dots);
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
	if (curl && curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		rc = ws_error(err, WS_EINTERNAL, "cannot initialise libcurl");
		goto out;
	}
	if (o->mode == WS_INSPECT_ENCODE && (rc = ws_frame_put_preamble(&x->out)))
		goto out;
	for (i = 0; i < n && rc == 0; i++) {
		unsigned long problems = x->problems, damages = x->damages;

		sink_init(&k, inputs[i], o->max);
		x->sk = &k;
		x->st.inputs++;
		if (ws_inspect_is_url(inputs[i]))
			rc = run_url(x, &k);
		else
			rc = run_file(x, &k, (o->flags & WS_INSPECT_FOLLOW) && i == n - 1);
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
		sink_release(&k);
		x->sk = NULL;
		if (!rc)
			rc = maybe_flush(x);
		if (o->stop && *o->stop)
			break;
	}
	if (!rc && o->mode == WS_INSPECT_STATS)
		rc = put_stats(x);
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
	if (curl)
		curl_global_cleanup();
	return rc;
}
