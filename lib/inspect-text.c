/* SPDX-License-Identifier: MIT */
/*
 * inspect-text.c - the small helpers every part of wsync-inspect uses,
 * which call nothing else of it: times and values as text (the public
 * ws_inspect_put_*() and parsers of inspect.h), names from an input
 * quoted when needed, table cells, short site ids, the warnings, the
 * output buffer's flush, and where in the input a message is about.
 */
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <time.h>

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

/* --- messages and output ------------------------------------------------- */

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

int insp_flush_to(struct insp *x, char *err)
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
	return insp_flush_to(x, x->err);
}

/* "frame at byte N" or "line N", for messages about the current frame. */
const char *insp_where(const struct insp *x, char buf[64])
{
	snprintf(buf, 64, x->json_pos ? "line %" PRIu64 : "frame at byte %" PRIu64,
	    x->at);
	return buf;
}

/* Short form of a site id: its first 8 hex digits. */
void insp_short_site(const struct ws_siteid *s, char out[9])
{
	char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(s, hex);
	memcpy(out, hex, 8);
	out[8] = 0;
}
