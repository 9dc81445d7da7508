/* SPDX-License-Identifier: MIT */
/*
 * inspect-input.c - reading the inputs: a file or standard input (and
 * --follow, which waits with inotify for the file to grow), the "sink"
 * that detects the kind of input, binary streams cut into frames (with
 * the resync of --salvage after damage), and JSON lines.
 */
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "inspect-int.h"
#include "wsync/loop.h"

/* --- binary streams ---------------------------------------------------------- */

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
		insp_warn(x, "'%s': %s; skipped %" PRIu64 " bytes to the end", k->name,
		    k->dmg_why, k->base + k->w.len - k->dmg_at);
	else
		insp_warn(x, "'%s': %s; skipped %" PRIu64 " bytes, resumed at byte %" PRIu64
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
				if ((rc = x->on_frame(x, &f, used)))
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
			if ((rc = x->on_frame(x, &f, f.len + WS_FRAME_OVERHEAD)))
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
		insp_warn(x, "'%s': %s; line skipped", k->name, why);
		if ((rc = ws_reader_resume(&k->rd)))
			return rc;
	}
	if (!eof)
		return 0;
	while ((rc = ws_reader_finish(&k->rd, &f, why)) == 1) {
		x->json_pos = 1;
		x->at = k->rd.line_no;
		if ((rc = x->on_frame(x, &f, f.len + WS_FRAME_OVERHEAD)))
			return rc;
	}
	if (rc && (rc == WS_ENOMEM || !(x->o->flags & WS_INSPECT_SALVAGE)))
		return ws_error(x->err, rc, "'%s': %s", k->name, why);
	if (rc) {
		x->damages++;
		insp_warn(x, "'%s': %s; line skipped", k->name, why);
	}
	return 0;
}

/* --- sinks ---------------------------------------------------------------------- */

void insp_sink_init(struct sink *k, const char *name, size_t max)
{
	memset(k, 0, sizeof(*k));
	k->name = name;
	ws_buf_init(&k->w);
	ws_reader_init(&k->rd, max);
}

void insp_sink_release(struct sink *k)
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
int insp_sink_process(struct insp *x, struct sink *k, int eof)
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

/* --- files -------------------------------------------------------------------- */

/*
 * --follow waits on the loop (loop.h) for the file's inotify watch.  The
 * loop looks at o->stop before each wait and waits a second at most, so
 * that a signal that arrives just before the wait is seen within one.
 */
struct follow {
	struct insp *x;
	struct ws_loop *loop;
	int changed;                  /* the watch fired */
};

/* The watch fired: drain its events and end the wait. */
static void on_change(struct ws_loop *l, int fd, void *cd, int mask)
{
	struct follow *fw = cd;
	char ev[4096];

	(void)mask;
	while (read(fd, ev, sizeof(ev)) > 0)
		;
	fw->changed = 1;
	ws_loop_stop(l);
}

static void follow_before(struct ws_loop *l, void *cd)
{
	struct follow *fw = cd;

	if (fw->x->o->stop && *fw->x->o->stop)
		ws_loop_stop(l);
}

/* Watch ifd on a new loop in fw (released by follow_release()). */
static int follow_init(struct follow *fw, struct insp *x, int ifd)
{
	int rc;

	memset(fw, 0, sizeof(*fw));
	fw->x = x;
	if ((rc = ws_loop_new(&fw->loop, x->err)))
		return rc;
	ws_loop_set_max_wait(fw->loop, 1000);
	ws_loop_set_before(fw->loop, follow_before, fw);
	if ((rc = ws_loop_add_fd(fw->loop, ifd, WS_LOOP_READ, on_change, fw)))
		return ws_error(x->err, rc, "cannot wait for changes: %s", ws_strerror(rc));
	return 0;
}

static void follow_release(struct follow *fw)
{
	ws_loop_free(fw->loop);
	fw->loop = NULL;
}

/* Wait until the file changes or o->stop is set: 1 changed, 0 stop, <0 error. */
static int wait_change(struct follow *fw)
{
	int rc;

	fw->changed = 0;
	if ((rc = ws_loop_run(fw->loop, fw->x->err)))
		return rc;
	return fw->changed;
}

int insp_run_file(struct insp *x, struct sink *k, int follow)
{
	char buf[64], why[WS_ERRLEN];
	struct follow fw = {0};
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
		if ((rc = follow_init(&fw, x, ifd)))
			goto out;
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
			if ((rc = insp_flush(x)))
				goto out;
			if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < k->base + k->w.len) {
				insp_warn(x, "'%s': file truncated; reading it from the start", k->name);
				lseek(fd, 0, SEEK_SET);
				insp_sink_release(k);
				insp_sink_init(k, k->name, x->o->max);
				continue;
			}
			if ((rc = wait_change(&fw)) <= 0)
				goto out; /* stopped: a partial frame is not damage */
			continue;
		}
		k->w.len += (size_t)n;
		if ((rc = insp_sink_process(x, k, 0)))
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
		rc = insp_db_view(x, k->name);
		goto out;
	}
	rc = insp_sink_process(x, k, 1);
out:
	follow_release(&fw);
	if (ifd >= 0)
		close(ifd);
	if (fd > STDIN_FILENO)
		close(fd);
	return rc;
}
