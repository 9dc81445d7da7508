/* SPDX-License-Identifier: MIT */
/*
 * test_stream.c - kind detection, struct ws_reader over binary streams
 * and JSON lines, and the reader converting real files.
 *
 * The reader is fed every way of cutting a small input in three, one
 * byte at a time and in random pieces; each piece is copied into its own
 * heap block that is freed after use, so under ASan a reader that keeps a
 * pointer into old input is caught.  The conversion tests work in a
 * fresh directory made with mkdtemp(3) and remove it afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "wsync/wsync.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define SA "00112233445566778899aabbccddeeff"

static const uint8_t preamble[WS_FRAME_PREAMBLE] = {
	0x89, 0x57, 0x53, 0x59, 0x4e, 0x43, 0x0d, 0x0a, 0x01, 0x00,
};

/* An expected frame. */
struct xf {
	uint8_t type, flags;
	uint32_t channel;
	const uint8_t *payload;
	uint32_t len;
};

/* tests/data/frame-multi.bin, built with the encoder: 120 bytes. */
static const uint8_t clock_payload[] = {
	0x02,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x05,
	0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10, 0xac, 0x02,
};
static const struct xf multi[] = {
	{0x03, 0x00, 0, (const uint8_t *)"\x80\x8a\xd9\xa5\xaa\x33", 6},
	{0x11, 0x00, 7, clock_payload, sizeof clock_payload},
	{0x7f, 0x81, 0xfffffffeu, (const uint8_t *)"opaque\0bytes", 12},
	{0x20, 0x00, 0, (const uint8_t *)"", 0},
};
static const size_t multi_at[] = {10, 30, 80, 106};

static void build_multi(struct ws_buf *b)
{
	size_t i;

	CHECK_INT(ws_frame_put_preamble(b), 0);
	for (i = 0; i < NELEM(multi); i++)
		CHECK_INT(ws_frame_put(b, multi[i].type, multi[i].flags,
		    multi[i].channel, multi[i].payload, multi[i].len), 0);
	CHECK_INT(b->len, 120);
}

/*
 * A small JSON-lines text: blank and white-space lines, leading white
 * space, a CR LF ending, a NUL escape, and a last line with no newline.
 */
static const char small_text[] =
    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}\n"
    "\n"
    "  \t\n"
    " {\"type\":32,\"ch\":1,\"payload\":\"AQID\"}\r\n"
    "{\"type\":\"error\",\"ch\":2,\"code\":-8,\"message\":\"a\\u0000b\"}\n"
    "{\"time\":7,\"type\":\"heartbeat\",\"ch\":3}";
static const struct xf small_frames[] = {
	{0x03, 0, 0, (const uint8_t *)"\x05", 1},
	{0x20, 0, 1, (const uint8_t *)"\x01\x02\x03", 3},
	{0x02, 0, 2, (const uint8_t *)"\x0f" "a\0b", 4},
	{0x03, 0, 3, (const uint8_t *)"\x07", 1},
};

/* ---- the reader driver ---- */

#define MAXF 64

struct gf {
	uint8_t type, flags;
	uint32_t channel, len;
	uint8_t *payload;
};

struct rrun {
	size_t n;
	struct gf f[MAXF];
	int rc, in_finish, bad, kind;
	uint64_t error_offset, line_no, offset;
	char err[WS_ERRLEN];
};

static void rrun_free(struct rrun *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->f[i].payload);
	r->n = 0;
}

static void record(struct rrun *r, const struct ws_frame *f)
{
	struct gf *g;

	if (r->n == MAXF) {
		r->bad = 1;
		return;
	}
	g = &r->f[r->n++];
	g->type = f->type;
	g->flags = f->flags;
	g->channel = f->channel;
	g->len = f->len;
	g->payload = malloc(f->len ? f->len : 1);
	if (f->len)
		memcpy(g->payload, f->payload, f->len);
}

/* Feed p[0..n) cut at cuts[0..ncuts), then finish until it returns 0. */
static void run_reader(struct rrun *r, const void *pv, size_t n,
    const size_t *cuts, size_t ncuts, size_t max)
{
	const uint8_t *p = pv;
	struct ws_reader rd;
	struct ws_frame f;
	size_t start = 0, c;
	int rc, k;

	memset(r, 0, sizeof *r);
	ws_reader_init(&rd, max);
	for (c = 0; c <= ncuts && !r->rc && !r->bad; c++) {
		size_t end = c < ncuts ? cuts[c] : n, len = end - start, off = 0;
		uint8_t *chunk = malloc(len ? len : 1);
		int loops = 0;

		memcpy(chunk, p + start, len);
		for (;;) {
			size_t used = SIZE_MAX;

			rc = ws_reader_feed(&rd, chunk + off, len - off, &used, &f,
			    r->err);
			if (rc < 0) {
				r->rc = rc;
				r->error_offset = rd.error_offset;
				break;
			}
			if (used > len - off || ++loops > 100000) {
				r->bad = 1;
				break;
			}
			off += used;
			if (rc == 0) {
				if (off != len)
					r->bad = 1;
				break;
			}
			if (rc != 1) {
				r->bad = 1;
				break;
			}
			record(r, &f);
		}
		free(chunk);
		start = end;
	}
	for (k = 0; k < 4 && !r->rc && !r->bad; k++) {
		rc = ws_reader_finish(&rd, &f, r->err);
		if (rc == 0)
			break;
		if (rc == 1) {
			record(r, &f);
			continue;
		}
		r->rc = rc;
		r->in_finish = 1;
		r->error_offset = rd.error_offset;
	}
	if (k == 4)
		r->bad = 1; /* finish kept returning frames */
	r->kind = rd.kind;
	r->line_no = rd.line_no;
	r->offset = rd.offset;
	ws_reader_release(&rd);
}

static int frames_match(const struct rrun *r, const struct xf *x, size_t nx)
{
	size_t i;

	if (r->n != nx)
		return 0;
	for (i = 0; i < nx; i++)
		if (r->f[i].type != x[i].type || r->f[i].flags != x[i].flags ||
		    r->f[i].channel != x[i].channel || r->f[i].len != x[i].len ||
		    (x[i].len && memcmp(r->f[i].payload, x[i].payload, x[i].len)))
			return 0;
	return 1;
}

/* ---- detection ---- */

TEST(detect)
{
	static const struct {
		const char *p;
		size_t n;
		int want;
	} t[] = {
		{"", 0, WS_EAGAIN},
		{" ", 1, WS_EAGAIN},
		{"\n\n\t\r ", 5, WS_EAGAIN},
		{"\x89", 1, WS_STREAM_BINARY},
		{"\x89WSYNC\r\n\x01\x00", 10, WS_STREAM_BINARY},
		{"{", 1, WS_STREAM_JSON},
		{"{\"type\":3}", 10, WS_STREAM_JSON},
		{"  {", 3, WS_STREAM_JSON},
		{"\n\r\n\t{", 5, WS_STREAM_JSON},
		{"x", 1, WS_EMAGIC},
		{"[", 1, WS_EMAGIC},
		{"\"", 1, WS_EMAGIC},
		{"\0", 1, WS_EMAGIC},
		{"\x88", 1, WS_EMAGIC},
		{"\xef\xbb\xbf{", 4, WS_EMAGIC},  /* a UTF-8 BOM */
		{"  x", 3, WS_EMAGIC},
		/* A binary stream must start at its first byte. */
		{" \x89WSYNC", 7, WS_EMAGIC},
		{"\n\x89", 2, WS_EMAGIC},
	};
	size_t i;

	for (i = 0; i < NELEM(t); i++) {
		int rc = ws_stream_detect((const uint8_t *)t[i].p, t[i].n);

		if (rc != t[i].want) {
			fprintf(stderr, "  detect #%zu: %d, expected %d\n", i, rc,
			    t[i].want);
			CHECK(0);
		}
	}
}

/* ---- the reader on binary input ---- */

TEST(reader_binary_all_two_cuts)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t cuts[2];
	struct rrun r;
	int failed = 0;

	build_multi(&b);
	for (cuts[0] = 0; cuts[0] <= b.len && !failed; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= b.len && !failed; cuts[1]++) {
			run_reader(&r, b.p, b.len, cuts, 2, 0);
			if (r.rc || r.bad || !frames_match(&r, multi, NELEM(multi)) ||
			    r.kind != WS_STREAM_BINARY) {
				fprintf(stderr, "  cuts %zu %zu: rc %d (%s), %zu "
				    "frames\n", cuts[0], cuts[1], r.rc, r.err, r.n);
				failed = 1;
			}
			rrun_free(&r);
		}
	}
	CHECK(!failed);
	ws_buf_release(&b);
}

TEST(reader_binary_bytewise_and_errors)
{
	struct ws_buf b = WS_BUF_INIT;
	size_t cuts[200], i, k;
	struct rrun r;

	build_multi(&b);
	for (i = 0; i + 1 < b.len; i++)
		cuts[i] = i + 1;
	run_reader(&r, b.p, b.len, cuts, b.len - 1, 0);
	CHECK_INT(r.rc, 0);
	CHECK(frames_match(&r, multi, NELEM(multi)));
	CHECK_INT(r.offset, b.len);
	rrun_free(&r);

	/* A bad checksum in the clock frame: two frames, then the error at
	 * the frame's start. */
	b.p[50] ^= 0x04;
	run_reader(&r, b.p, b.len, NULL, 0, 0);
	CHECK_INT(r.rc, WS_ECHECKSUM);
	CHECK(frames_match(&r, multi, 1));
	CHECK_INT(r.error_offset, 30);
	CHECK(r.err[0] != '\0');
	rrun_free(&r);
	run_reader(&r, b.p, b.len, cuts, b.len - 1, 0);
	CHECK_INT(r.rc, WS_ECHECKSUM);
	CHECK_INT(r.error_offset, 30);
	rrun_free(&r);
	b.p[50] ^= 0x04;

	/* Every truncation: the whole frames, then WS_ETRUNC from finish at
	 * the start of the cut frame. */
	for (k = 1; k < b.len; k++) {
		size_t whole = 0, start = 0;
		int boundary = k == 10;

		for (i = 0; i < NELEM(multi); i++) {
			if (multi_at[i] + 14 + multi[i].len <= k)
				whole++;
			if (multi_at[i] == k)
				boundary = 1;
			if (multi_at[i] <= k)
				start = multi_at[i];
		}
		run_reader(&r, b.p, k, NULL, 0, 0);
		if (!frames_match(&r, multi, whole) || (boundary ? r.rc != 0 :
		    (r.rc != WS_ETRUNC || !r.in_finish || r.error_offset != start))) {
			fprintf(stderr, "  prefix %zu: rc %d (%s) at %" PRIu64
			    "\n", k, r.rc, r.err, r.error_offset);
			CHECK(0);
		}
		rrun_free(&r);
	}

	/* The reader's maximum. */
	run_reader(&r, b.p, b.len, NULL, 0, 20);
	CHECK_INT(r.rc, WS_ETOOBIG);
	CHECK_INT(r.error_offset, 30);
	CHECK_INT(r.n, 1);
	rrun_free(&r);
	ws_buf_release(&b);
}

TEST(reader_not_a_stream)
{
	struct rrun r;

	run_reader(&r, "hello\n", 6, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EMAGIC);
	CHECK_INT(r.error_offset, 0);
	CHECK(r.err[0] != '\0');
	run_reader(&r, "\n\n  x{}", 7, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EMAGIC);
	CHECK_INT(r.error_offset, 4);
	run_reader(&r, " \x89WSYNC\r\n\x01\x00", 11, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EMAGIC);
	/* Nothing at all, or only white space: an empty stream. */
	run_reader(&r, "", 0, NULL, 0, 0);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 0);
	run_reader(&r, "\n \n\t\r\n", 6, NULL, 0, 0);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 0);
	/* The preamble alone. */
	run_reader(&r, preamble, 10, NULL, 0, 0);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 0);
	CHECK_INT(r.kind, WS_STREAM_BINARY);
}

/* ---- the reader on JSON lines ---- */

TEST(reader_json_all_two_cuts)
{
	size_t n = strlen(small_text), cuts[2];
	struct rrun r;
	int failed = 0;

	for (cuts[0] = 0; cuts[0] <= n && !failed; cuts[0]++) {
		for (cuts[1] = cuts[0]; cuts[1] <= n && !failed; cuts[1]++) {
			run_reader(&r, small_text, n, cuts, 2, 0);
			if (r.rc || r.bad || r.kind != WS_STREAM_JSON ||
			    !frames_match(&r, small_frames, NELEM(small_frames))) {
				fprintf(stderr, "  cuts %zu %zu: rc %d (%s), %zu "
				    "frames\n", cuts[0], cuts[1], r.rc, r.err, r.n);
				failed = 1;
			}
			rrun_free(&r);
		}
	}
	CHECK(!failed);
	/* With the final newline, finish has nothing left to give. */
	{
		char *t = malloc(n + 2);

		memcpy(t, small_text, n);
		t[n] = '\n';
		run_reader(&r, t, n + 1, NULL, 0, 0);
		CHECK_INT(r.rc, 0);
		CHECK(frames_match(&r, small_frames, NELEM(small_frames)));
		rrun_free(&r);
		free(t);
	}
}

/* A longer text of every frame type, fed bytewise and in random pieces. */
TEST(reader_json_long)
{
	static const char *const lines[] = {
		"{\"type\":\"heartbeat\",\"ch\":0,\"time\":1763700000000}",
		"{\"type\":\"clock\",\"ch\":1,\"clock\":{\"" SA "\":7}}",
		"{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":\"bad\"}",
		"{\"type\":\"batch\",\"ch\":1,\"clock\":{\"" SA "\":7},"
		"\"tables\":[{\"name\":\"notes\",\"cols\":[\"id\",\"title\"],"
		"\"pk\":[\"id\"]}],\"changes\":[{\"table\":\"notes\",\"op\":"
		"\"update\",\"dot\":\"" SA ":7\",\"pk\":[1],\"set\":{\"title\":"
		"\"hello\"}}]}",
		"",
		"{\"type\":32,\"ch\":0,\"payload\":\"AQID\"}",
		"{\"type\":\"hello\",\"ch\":9,\"flags\":3,\"payload\":\"\"}",
	};
	struct ws_buf text = WS_BUF_INIT, fb = WS_BUF_INIT;
	struct xf x[NELEM(lines)];
	size_t offs[NELEM(lines)], nx = 0, i, *cuts, ncuts;
	struct rrun r;
	int round, rep;

	/* The text: the lines three times over; the expected frames from
	 * ws_json_parse_line() on each line alone. */
	for (i = 0; i < NELEM(lines); i++) {
		if (!*lines[i])
			continue;
		offs[nx] = fb.len;
		CHECK_INT(ws_json_parse_line(lines[i], strlen(lines[i]), &fb, NULL),
		    0);
		nx++;
	}
	for (i = 0; i < nx; i++) {
		struct ws_frame f;
		size_t used;

		CHECK_INT(ws_frame_parse(fb.p + offs[i], fb.len - offs[i],
		    WS_FRAME_MAX_LIMIT, &f, &used), 0);
		x[i].type = f.type;
		x[i].flags = f.flags;
		x[i].channel = f.channel;
		x[i].payload = f.payload;
		x[i].len = f.len;
	}
	for (rep = 0; rep < 3; rep++)
		for (i = 0; i < NELEM(lines); i++)
			CHECK_INT(ws_buf_printf(&text, "%s\n", lines[i]), 0);
	cuts = malloc(text.len * sizeof *cuts);
	for (i = 0; i + 1 < text.len; i++)
		cuts[i] = i + 1;
	run_reader(&r, text.p, text.len, cuts, text.len - 1, 0);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 3 * nx);
	if (r.n == 3 * nx) {
		struct rrun one = r;

		for (rep = 0; rep < 3; rep++) {
			memmove(one.f, r.f + rep * nx, nx * sizeof *one.f);
			one.n = nx;
			CHECK(frames_match(&one, x, nx));
		}
	}
	CHECK_INT(r.line_no, 3 * NELEM(lines));
	rrun_free(&r);
	for (round = 0; round < 300; round++) {
		size_t at = 0;

		ncuts = 0;
		for (;;) {
			at += (size_t)t_below(round % 2 ? 8 : 200);
			if (at >= text.len)
				break;
			cuts[ncuts++] = at;
		}
		run_reader(&r, text.p, text.len, cuts, ncuts, 0);
		if (r.rc || r.n != 3 * nx) {
			fprintf(stderr, "  round %d: rc %d (%s), %zu frames\n",
			    round, r.rc, r.err, r.n);
			CHECK(0);
			rrun_free(&r);
			break;
		}
		rrun_free(&r);
	}
	free(cuts);
	ws_buf_release(&text);
	ws_buf_release(&fb);
}

TEST(reader_json_errors)
{
	static const char good[] = "{\"type\":\"heartbeat\",\"ch\":0,\"time\":5}";
	char text[512];
	struct rrun r;
	size_t n, line3, cuts[512], i;

	/* A bad third line, after a blank second one. */
	n = (size_t)snprintf(text, sizeof text, "%s\n\n", good);
	line3 = n;
	n += (size_t)snprintf(text + n, sizeof text - n,
	    "{\"type\":\"heartbeat\",\"ch\":0}\n%s\n", good);
	run_reader(&r, text, n, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EJSON);
	CHECK_INT(r.n, 1);
	CHECK(strstr(r.err, "line 3") != NULL);
	CHECK_INT(r.line_no, 3);
	CHECK_INT(r.error_offset, line3);
	rrun_free(&r);
	/* The same fed bytewise. */
	for (i = 0; i + 1 < n; i++)
		cuts[i] = i + 1;
	run_reader(&r, text, n, cuts, n - 1, 0);
	CHECK_INT(r.rc, WS_EJSON);
	CHECK_INT(r.n, 1);
	CHECK(strstr(r.err, "line 3") != NULL);
	CHECK_INT(r.error_offset, line3);
	rrun_free(&r);

	/* Not JSON at all on line 2. */
	n = (size_t)snprintf(text, sizeof text, "%s\nxyz\n", good);
	run_reader(&r, text, n, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EJSON);
	CHECK(strstr(r.err, "line 2") != NULL);
	CHECK_INT(r.n, 1);
	rrun_free(&r);

	/* A bad last line without its newline: the error comes from
	 * finish, naming the line. */
	n = (size_t)snprintf(text, sizeof text, "%s\n%s\n{\"type\":", good, good);
	run_reader(&r, text, n, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EJSON);
	CHECK(r.in_finish);
	CHECK_INT(r.n, 2);
	CHECK(strstr(r.err, "line 3") != NULL);
	rrun_free(&r);

	/* Invalid UTF-8 and a raw NUL inside a line. */
	n = (size_t)snprintf(text, sizeof text,
	    "{\"type\":\"error\",\"ch\":0,\"code\":1,\"message\":\"\xff\"}\n");
	run_reader(&r, text, n, NULL, 0, 0);
	CHECK_INT(r.rc, WS_EJSON);
	CHECK(strstr(r.err, "line 1") != NULL);
	rrun_free(&r);
	{
		static const char withnul[] = "{\"type\":\"error\",\"ch\":0,"
		    "\"code\":1,\"message\":\"a\0b\"}\n";

		run_reader(&r, withnul, sizeof withnul - 1, NULL, 0, 0);
	}
	CHECK_INT(r.rc, WS_EJSON);
	rrun_free(&r);

	/* The reader's maximum applies to frames made from lines too. */
	n = (size_t)snprintf(text, sizeof text, "%s\n{\"type\":32,\"ch\":0,"
	    "\"payload\":\"AAAAAAAA\"}\n", good);
	run_reader(&r, text, n, NULL, 0, 5);
	CHECK_INT(r.rc, WS_ETOOBIG);
	CHECK_INT(r.n, 1);
	CHECK(strstr(r.err, "line 2") != NULL);
	rrun_free(&r);
	run_reader(&r, text, n, NULL, 0, 6);
	CHECK_INT(r.rc, 0);
	CHECK_INT(r.n, 2);
	rrun_free(&r);
}

TEST(reader_sticky)
{
	struct ws_reader rd;
	struct ws_frame f;
	size_t used;
	char err[WS_ERRLEN];
	int rc;

	ws_reader_init(&rd, 0);
	rc = ws_reader_feed(&rd, (const uint8_t *)"{\"type\":}\n", 10, &used, &f,
	    err);
	CHECK_INT(rc, WS_EJSON);
	CHECK_INT(rd.error, WS_EJSON);
	rc = ws_reader_feed(&rd, (const uint8_t *)"{\"type\":\"heartbeat\","
	    "\"ch\":0,\"time\":5}\n", 37, &used, &f, err);
	CHECK_INT(rc, WS_EJSON);
	CHECK(ws_reader_finish(&rd, &f, err) == WS_EJSON);
	ws_reader_release(&rd);
	ws_reader_release(&rd);
}

/* ---- conversion of files ---- */

/*
 * What a converter of streams does with struct ws_reader: read whole
 * files, binary or JSON lines, and write their frames in one form.  The
 * library once exported this as ws_convert_files(); wsync-inspect --json
 * and --encode are the tools' way, so it lives here, where it drives the
 * reader over real files, standard input and write errors.
 */
#define READ_CHUNK (256u << 10)

/* Output forms for convert_paths(). */
enum ws_convert_mode {
	WS_CONVERT_JSON = 1,   /* JSON lines */
	WS_CONVERT_BINARY = 2, /* a binary stream: preamble, then frames */
};

struct ws_convert {
	int mode;     /* enum ws_convert_mode */
	size_t max;   /* largest payload accepted; 0 for the default */
	int out_fd;   /* where to write; not closed */
	const char *out_name; /* the output's name in messages; NULL is "-" */
};

/*
 * convert_paths(): read paths[0..n) in order ("-" is stdin; n == 0
 * reads stdin), each holding binary frames or JSON lines, and write every
 * frame to cv->out_fd in cv->mode's form.  Binary output gets one
 * preamble at its start.  Errors, with err naming the file and the byte offset or line:
 * WS_ENOTFOUND (missing file), WS_EPERM, WS_EIO (read or write failed,
 * EPIPE included), and the decoders' WS_EMAGIC, WS_ETRUNC, WS_ECHECKSUM,
 * WS_ECORRUPT, WS_EJSON, ...  Frames before the damage are written.
 */

/* Write all of p[0..n) to cv's output; err names the output. */
static int write_all(const struct ws_convert *cv, const uint8_t *p, size_t n,
    char *err)
{
	char buf[64];
	ssize_t k;

	while (n) {
		k = write(cv->out_fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return ws_error(err, errno == ENOSPC ? WS_ENOSPC : WS_EIO,
			    "cannot write '%s': %s", cv->out_name ? cv->out_name :
			    "-", ws_errno_text(errno, buf));
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Convert one frame into out in cv's form. */
static int emit(const struct ws_convert *cv, const struct ws_frame *f,
    struct ws_buf *out, char *err)
{
	if (cv->mode == WS_CONVERT_JSON)
		return ws_json_put_frame(f, out, err);
	return ws_frame_put(out, f->type, f->flags, f->channel, f->payload, f->len);
}

static int open_input(const char *path, int *fd, char *err)
{
	if (strcmp(path, "-") == 0) {
		*fd = STDIN_FILENO;
		return 0;
	}
	if ((*fd = open(path, O_RDONLY)) >= 0)
		return 0;
	char buf[64];

	return ws_error(err, errno == ENOENT ? WS_ENOTFOUND :
	    errno == EACCES || errno == EPERM ? WS_EPERM : WS_EIO,
	    "cannot open '%s': %s", path, ws_errno_text(errno, buf));
}

/* Convert one input into out, flushing to cv->out_fd as it goes. */
static int convert_one(const struct ws_convert *cv, const char *path,
    struct ws_buf *out, uint8_t *chunk, char *err)
{
	struct ws_reader r;
	struct ws_frame f;
	char why[WS_ERRLEN] = "";
	size_t off, used;
	ssize_t n;
	int fd, rc;

	if ((rc = open_input(path, &fd, err)))
		return rc;
	ws_reader_init(&r, cv->max);
	for (;;) {
		n = read(fd, chunk, READ_CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			char buf[64];

			rc = ws_error(why, WS_EIO, "read error: %s",
			    ws_errno_text(errno, buf));
			goto out;
		}
		if (n == 0)
			break;
		for (off = 0; off < (size_t)n; off += used) {
			rc = ws_reader_feed(&r, chunk + off, (size_t)n - off, &used,
			    &f, why);
			if (rc < 0)
				goto out;
			if (rc == 1 && (rc = emit(cv, &f, out, why)))
				goto out;
		}
		if (out->len >= READ_CHUNK) {
			if ((rc = write_all(cv, out->p, out->len, err)))
				goto out_written;
			out->len = 0;
		}
	}
	while ((rc = ws_reader_finish(&r, &f, why)) == 1)
		if ((rc = emit(cv, &f, out, why)))
			goto out;
out:
	ws_reader_release(&r);
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc)
		ws_error(err, rc, "'%s': %s", path, why);
	return rc;
out_written:
	/* A write error names the output, not this input. */
	ws_reader_release(&r);
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

static int convert_paths(const struct ws_convert *cv, const char *const *paths,
    size_t n, char *err)
{
	static const char *const stdin_only[] = {"-"};
	struct ws_buf out = WS_BUF_INIT;
	uint8_t *chunk = NULL;
	char why[WS_ERRLEN] = "";
	size_t i;
	int rc = 0, wrc;

	if (cv->mode != WS_CONVERT_JSON && cv->mode != WS_CONVERT_BINARY)
		return ws_error(err, WS_EINVAL, "bad conversion mode");
	if (n == 0) {
		paths = stdin_only;
		n = 1;
	}
	if (!(chunk = malloc(READ_CHUNK)))
		return WS_ENOMEM;
	if (cv->mode == WS_CONVERT_BINARY && (rc = ws_frame_put_preamble(&out)))
		goto out;
	for (i = 0; i < n && rc == 0; i++)
		rc = convert_one(cv, paths[i], &out, chunk, err);
	/* Frames before any damage are still written. */
	if ((wrc = write_all(cv, out.p, out.len, why)) && rc == 0)
		rc = ws_error(err, wrc, "%s", why);
out:
	free(chunk);
	ws_buf_release(&out);
	return rc;
}


static char tmpdir[64];

static const char *tpath(const char *name)
{
	static char paths[16][128];
	static int next;
	char *p = paths[next++ % 16];

	snprintf(p, 128, "%s/%s", tmpdir, name);
	return p;
}

static void put_file(const char *name, const void *p, size_t n)
{
	FILE *f = fopen(tpath(name), "wb");

	CHECK(f != NULL);
	if (!f)
		return;
	CHECK_INT(fwrite(p, 1, n, f), n);
	CHECK_INT(fclose(f), 0);
}

/* A fresh output file from mkstemp(3), open for reading and writing. */
static int out_file(void)
{
	char name[128];
	int fd;

	snprintf(name, sizeof name, "%s/out-XXXXXX", tmpdir);
	fd = mkstemp(name);
	CHECK(fd >= 0);
	if (fd >= 0)
		unlink(name);
	return fd;
}

/* Everything written to fd so far. */
static void slurp(int fd, struct ws_buf *b)
{
	uint8_t tmp[4096];
	ssize_t k;

	b->len = 0;
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	while ((k = read(fd, tmp, sizeof tmp)) > 0)
		CHECK_INT(ws_buf_append(b, tmp, (size_t)k), 0);
	CHECK(k == 0);
}

static int convert(int mode, int fd, const char *const *paths, size_t n,
    char *err)
{
	struct ws_convert cv;

	memset(&cv, 0, sizeof cv);
	cv.mode = mode;
	cv.max = 0;
	cv.out_fd = fd;
	cv.out_name = NULL;
	err[0] = '\0';
	return convert_paths(&cv, paths, n, err);
}

/* Lines for the frames of frame-multi.bin. */
static void multi_lines(struct ws_buf *out)
{
	struct ws_buf b = WS_BUF_INIT;
	struct ws_frame f;
	size_t at = 10, used;

	build_multi(&b);
	while (at < b.len) {
		CHECK_INT(ws_frame_parse(b.p + at, b.len - at, WS_FRAME_MAX_LIMIT,
		    &f, &used), 0);
		CHECK_INT(ws_json_put_frame(&f, out, NULL), 0);
		at += used;
	}
	ws_buf_release(&b);
}

static const char json_file[] =
    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":1763700000000}\n"
    "\n"
    "{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":\"bad\"}\n"
    "{\"type\":\"clock\",\"ch\":1,\"clock\":{\"" SA "\":7}}";
static const uint8_t json_file_frames[] = {
	0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
	0x80, 0x8a, 0xd9, 0xa5, 0xaa, 0x33, 0x06, 0xbc, 0x7f, 0x51,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
	0x0f, 0x62, 0x61, 0x64, 0xf0, 0x54, 0x10, 0x4c,
	0x11, 0x00, 0x01, 0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x07,
	0x7b, 0xb8, 0x0f, 0x26,
};
static const char json_file_canon[] =
    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":1763700000000}\n"
    "{\"type\":\"error\",\"ch\":0,\"code\":-8,\"message\":\"bad\"}\n"
    "{\"type\":\"clock\",\"ch\":1,\"clock\":{\"" SA "\":7}}\n";

TEST(convert_files)
{
	struct ws_buf bin = WS_BUF_INIT, out = WS_BUF_INIT, want = WS_BUF_INIT;
	char err[WS_ERRLEN];
	int fd, rc;

	build_multi(&bin);
	put_file("multi.ws", bin.p, bin.len);
	put_file("lines.jsonl", json_file, strlen(json_file));
	put_file("empty", "", 0);

	/* To JSON: binary then JSON input. */
	{
		const char *paths[] = {tpath("multi.ws"), tpath("lines.jsonl")};

		fd = out_file();
		rc = convert(WS_CONVERT_JSON, fd, paths, 2, err);
		CHECK_INT(rc, 0);
		if (rc)
			fprintf(stderr, "  %s\n", err);
		slurp(fd, &out);
		want.len = 0;
		multi_lines(&want);
		CHECK_INT(ws_buf_append(&want, json_file_canon,
		    strlen(json_file_canon)), 0);
		CHECK_MEM(out.p, out.len, want.p, want.len);
		close(fd);
	}
	/* To binary: JSON then binary input; one preamble only. */
	{
		const char *paths[] = {tpath("lines.jsonl"), tpath("multi.ws"),
		    tpath("empty")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 3, err), 0);
		slurp(fd, &out);
		want.len = 0;
		CHECK_INT(ws_buf_append(&want, preamble, 10), 0);
		CHECK_INT(ws_buf_append(&want, json_file_frames,
		    sizeof json_file_frames), 0);
		CHECK_INT(ws_buf_append(&want, bin.p + 10, bin.len - 10), 0);
		CHECK_MEM(out.p, out.len, want.p, want.len);
		close(fd);
	}
	/* Binary to binary reproduces the stream. */
	{
		const char *paths[] = {tpath("multi.ws")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 1, err), 0);
		slurp(fd, &out);
		CHECK_MEM(out.p, out.len, bin.p, bin.len);
		close(fd);
	}
	/* An empty input: no lines; a binary output still gets its
	 * preamble. */
	{
		const char *paths[] = {tpath("empty")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_JSON, fd, paths, 1, err), 0);
		slurp(fd, &out);
		CHECK_INT(out.len, 0);
		close(fd);
		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 1, err), 0);
		slurp(fd, &out);
		CHECK_MEM(out.p, out.len, preamble, 10);
		close(fd);
	}
	ws_buf_release(&bin);
	ws_buf_release(&out);
	ws_buf_release(&want);
}

/* n == 0 and "-" read standard input. */
TEST(convert_stdin)
{
	struct ws_buf out = WS_BUF_INIT, bin = WS_BUF_INIT;
	char err[WS_ERRLEN];
	int saved = dup(0), in, fd;

	build_multi(&bin);
	put_file("stdin.ws", bin.p, bin.len);
	CHECK(saved >= 0);

	in = open(tpath("stdin.ws"), O_RDONLY);
	CHECK(in >= 0 && dup2(in, 0) == 0);
	close(in);
	fd = out_file();
	CHECK_INT(convert(WS_CONVERT_BINARY, fd, NULL, 0, err), 0);
	slurp(fd, &out);
	CHECK_MEM(out.p, out.len, bin.p, bin.len);
	close(fd);

	in = open(tpath("stdin.ws"), O_RDONLY);
	CHECK(in >= 0 && dup2(in, 0) == 0);
	close(in);
	{
		const char *paths[] = {"-"};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 1, err), 0);
		slurp(fd, &out);
		CHECK_MEM(out.p, out.len, bin.p, bin.len);
		close(fd);
	}
	CHECK(dup2(saved, 0) == 0);
	close(saved);
	ws_buf_release(&out);
	ws_buf_release(&bin);
}

TEST(convert_errors)
{
	struct ws_buf bin = WS_BUF_INIT, out = WS_BUF_INIT, want = WS_BUF_INIT;
	char err[WS_ERRLEN];
	int fd, rc;

	build_multi(&bin);
	put_file("good.ws", bin.p, bin.len);
	/* The clock frame damaged. */
	bin.p[50] ^= 0x01;
	put_file("damaged.ws", bin.p, bin.len);
	bin.p[50] ^= 0x01;
	put_file("cut.ws", bin.p, 60);
	{
		static const char bad[] =
		    "{\"type\":\"heartbeat\",\"ch\":0,\"time\":1}\n"
		    "{\"type\":\"heartbeat\",\"ch\":0}\n";

		put_file("bad.jsonl", bad, sizeof bad - 1);
	}
	put_file("text.txt", "hello\n", 6);

	/* A missing file: WS_ENOTFOUND naming it. */
	{
		const char *paths[] = {tpath("good.ws"), tpath("no-such-file")};

		fd = out_file();
		rc = convert(WS_CONVERT_JSON, fd, paths, 2, err);
		CHECK_INT(rc, WS_ENOTFOUND);
		CHECK(strstr(err, "no-such-file") != NULL);
		close(fd);
	}
	/* Damage in the second file: the error names it; the first file's
	 * frames and those before the damage are written. */
	{
		const char *paths[] = {tpath("good.ws"), tpath("damaged.ws")};

		fd = out_file();
		rc = convert(WS_CONVERT_JSON, fd, paths, 2, err);
		CHECK_INT(rc, WS_ECHECKSUM);
		CHECK(strstr(err, "damaged.ws") != NULL);
		CHECK(strstr(err, "30") != NULL);
		slurp(fd, &out);
		want.len = 0;
		multi_lines(&want);
		{
			/* All four lines of good.ws, then the first of
			 * damaged.ws. */
			const uint8_t *nl = memchr(want.p, '\n', want.len);
			size_t first = nl ? (size_t)(nl - want.p) + 1 : 0;
			char *copy = malloc(first + 1);

			memcpy(copy, want.p, first);
			CHECK_INT(ws_buf_append(&want, copy, first), 0);
			free(copy);
		}
		CHECK_MEM(out.p, out.len, want.p, want.len);
		close(fd);
	}
	/* A truncated file. */
	{
		const char *paths[] = {tpath("cut.ws")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 1, err), WS_ETRUNC);
		CHECK(strstr(err, "cut.ws") != NULL);
		close(fd);
	}
	/* A bad JSON line: the file and the line are named. */
	{
		const char *paths[] = {tpath("bad.jsonl")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_BINARY, fd, paths, 1, err), WS_EJSON);
		CHECK(strstr(err, "bad.jsonl") != NULL);
		CHECK(strstr(err, "line 2") != NULL);
		close(fd);
	}
	/* Not a wsync stream. */
	{
		const char *paths[] = {tpath("text.txt")};

		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_JSON, fd, paths, 1, err), WS_EMAGIC);
		CHECK(strstr(err, "text.txt") != NULL);
		close(fd);
	}
	/* Write errors: a read-only descriptor, and a pipe nobody reads. */
	{
		const char *paths[] = {tpath("good.ws")};
		int pfd[2];
		void (*old)(int) = signal(SIGPIPE, SIG_IGN);

		fd = open(tpath("good.ws"), O_RDONLY);
		CHECK(fd >= 0);
		rc = convert(WS_CONVERT_JSON, fd, paths, 1, err);
		CHECK_INT(rc, WS_EIO);
		CHECK(err[0] != '\0');
		close(fd);
		CHECK_INT(pipe(pfd), 0);
		close(pfd[0]);
		rc = convert(WS_CONVERT_BINARY, pfd[1], paths, 1, err);
		CHECK_INT(rc, WS_EIO);
		CHECK(err[0] != '\0');
		close(pfd[1]);
		signal(SIGPIPE, old);
	}
	/* A file that cannot be read, when not running as root. */
	if (geteuid() != 0) {
		const char *paths[] = {tpath("good.ws")};

		CHECK_INT(chmod(tpath("good.ws"), 0), 0);
		fd = out_file();
		CHECK_INT(convert(WS_CONVERT_JSON, fd, paths, 1, err), WS_EPERM);
		CHECK(strstr(err, "good.ws") != NULL);
		close(fd);
		CHECK_INT(chmod(tpath("good.ws"), 0644), 0);
	}
	/* A bad mode. */
	{
		const char *paths[] = {tpath("good.ws")};

		fd = out_file();
		CHECK(convert(0, fd, paths, 1, err) < 0);
		close(fd);
	}
	ws_buf_release(&bin);
	ws_buf_release(&out);
	ws_buf_release(&want);
}

static void cleanup_dir(void)
{
	static const char *const names[] = {"multi.ws", "lines.jsonl", "empty",
	    "stdin.ws", "good.ws", "damaged.ws", "cut.ws", "bad.jsonl",
	    "text.txt"};
	size_t i;

	for (i = 0; i < NELEM(names); i++)
		unlink(tpath(names[i]));
	rmdir(tmpdir);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	if (ws_init() != 0)
		fprintf(stderr, "ws_init failed\n");
	snprintf(tmpdir, sizeof tmpdir, "/tmp/wsync-test-stream-XXXXXX");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(detect);
	RUN(reader_binary_all_two_cuts);
	RUN(reader_binary_bytewise_and_errors);
	RUN(reader_not_a_stream);
	RUN(reader_json_all_two_cuts);
	RUN(reader_json_long);
	RUN(reader_json_errors);
	RUN(reader_sticky);
	RUN(convert_files);
	RUN(convert_stdin);
	RUN(convert_errors);
	cleanup_dir();
	TEST_MAIN_END();
}
