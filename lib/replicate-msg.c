/* SPDX-License-Identifier: MIT */
/*
 * replicate-msg.c - what table replication reads from the network and
 * from its secret files (replicate.h): the JSON messages and their lines,
 * the MESSAGE frames of a secure session, the column and array specs,
 * the heads of an HTTP request, and the bearer tokens.  Every function
 * here takes untrusted bytes and is a fuzz target's (tests/fuzz/
 * fuzz_replicate.c, fuzz_http.c), or a small helper of both sides.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "replicate-int.h"

/* --- messages, lines and frames ---------------------------------------------- */

int rpl_put_msg(struct ws_buf *out, const json_t *m)
{
	char *s = json_dumps(m, JSON_COMPACT);
	int rc;

	if (!s)
		return WS_ENOMEM;
	rc = ws_buf_append(out, s, strlen(s));
	if (!rc)
		rc = ws_buf_putc(out, '\n');
	free(s);
	return rc;
}

int rpl_send(struct ws_buf *out, json_t *m)
{
	int rc;

	if (!m)
		return WS_ENOMEM;
	rc = rpl_put_msg(out, m);
	json_decref(m);
	return rc;
}

void rpl_guid_hex(const uint8_t g[WS_GUID_LEN], char out[2 * WS_GUID_LEN + 1])
{
	sodium_bin2hex(out, 2 * WS_GUID_LEN + 1, g, WS_GUID_LEN);
}

/* A JSON object's member as a bool (absent: 0); -1 if not a bool. */
int rpl_get_bool(const json_t *m, const char *key)
{
	const json_t *j = json_object_get(m, key);

	if (!j)
		return 0;
	return json_is_boolean(j) ? json_is_true(j) : -1;
}

/* A non-negative integer member into *v; WS_EJSON if absent or wrong. */
int rpl_get_u64(const json_t *m, const char *key, uint64_t *v, char *err)
{
	const json_t *j = json_object_get(m, key);

	if (!json_is_integer(j) || json_integer_value(j) < 0)
		return ws_error(err, WS_EJSON, "\"%s\" must be a non-negative integer", key);
	*v = (uint64_t)json_integer_value(j);
	return 0;
}

/* Split the next complete line off in[off..len) into (line, n); 0 if none. */
int rpl_next_line(struct ws_buf *in, size_t *off, const char **line, size_t *n)
{
	uint8_t *nl;

	if (*off >= in->len)
		return 0;
	nl = memchr(in->p + *off, '\n', in->len - *off);
	if (!nl)
		return 0;
	*line = (const char *)in->p + *off;
	*n = (size_t)(nl - (in->p + *off));
	*off = (size_t)(nl - in->p) + 1;
	return 1;
}

/* Drop in[0..off) once it is used. */
void rpl_compact(struct ws_buf *in, size_t *off)
{
	if (*off == 0)
		return;
	memmove(in->p, in->p + *off, in->len - *off);
	in->len -= *off;
	*off = 0;
}

/*
 * Hand the frames in b[0..n) of a framed session to cb, through the
 * secure layer while there is one (ws_peer_read does the same, reading
 * the fd itself).
 */
int rpl_frames_feed(struct ws_peer *pp, const uint8_t *b, size_t n, ws_frame_cb *cb,
    void *cd, char *err)
{
	struct ws_frame f;
	size_t off, used;
	int rc;

	for (off = 0; off < n; off += used) {
		if ((rc = ws_frame_decoder_feed(&pp->dec, b + off, n - off, &used, &f,
		    err)) < 0)
			return rc;
		if (rc == 1 && (rc = ws_peer_take(pp, &f, cb, cd, err)))
			return rc;
	}
	return 0;
}

/* A MESSAGE frame's payload as a line of in. */
int rpl_message_line(struct ws_buf *in, const struct ws_frame *f, char *err)
{
	if (memchr(f->payload, '\n', f->len))
		return ws_error(err, WS_ECORRUPT, "a message frame holding a newline");
	if (ws_buf_append(in, f->payload, f->len) || ws_buf_putc(in, '\n'))
		return WS_ENOMEM;
	return 0;
}

/* Queue each line of out[*off..) as a MESSAGE frame on pp; out is emptied. */
int rpl_frame_lines(struct ws_peer *pp, struct ws_buf *out, size_t *off)
{
	const char *line;
	size_t n;
	int rc;

	while (rpl_next_line(out, off, &line, &n))
		if (n && (rc = ws_peer_send(pp, WS_FRAME_MESSAGE, 0, 0, line, n)))
			return rc;
	out->len = *off = 0;
	return 0;
}

void rpl_peer_free(struct ws_peer *pp)
{
	if (!pp)
		return;
	pp->conn.rfd = pp->conn.wfd = -1;
	ws_peer_release(pp);
	free(pp);
}

/* Parse one line into an object with a string "mt" (replicate.h). */
int ws_replicate_parse_msg(const char *line, size_t n, json_t **out, char *err)
{
	json_error_t je;
	json_t *m;

	*out = NULL;
	while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
		n--;
	m = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!m)
		return ws_error(err, WS_EJSON, "bad JSON message: %s%s",
		    json_error_code(&je) == json_error_invalid_utf8 ?
		    "invalid UTF-8: " : "", je.text);
	if (!json_is_object(m) || !json_is_string(json_object_get(m, "mt"))) {
		json_decref(m);
		return ws_error(err, WS_EJSON, "a message must be an object with a "
		    "string \"mt\"");
	}
	*out = m;
	return 0;
}

const char *rpl_mt_of(const json_t *m)
{
	return json_string_value(json_object_get(m, "mt"));
}

/* --- column and array specs ------------------------------------------------ */

int rpl_name_ok(const char *s)
{
	return *s && strlen(s) <= WS_REPLICATE_MAX_NAME;
}

int rpl_type_ok(const char *s)
{
	size_t n = strlen(s), i = 0, nums = 0;

	if (n > WS_REPLICATE_MAX_NAME)
		return 0;
	while (s[i] && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ' ')) {
		size_t w = i;

		while (isalnum((unsigned char)s[i]) || s[i] == '_')
			i++;
		/* A keyword (NOT, DEFAULT, CHECK, ...) would start a constraint. */
		if (i > w && sqlite3_keyword_check(s + w, (int)(i - w)))
			return 0;
		while (s[i] == ' ')
			i++;
	}
	if (!s[i])
		return i == 0 || isalpha((unsigned char)s[0]) || s[0] == '_';
	if (s[i] != '(' || i == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return 0;
	for (i++;; i++) {
		while (s[i] == ' ')
			i++;
		if (s[i] == '+' || s[i] == '-')
			i++;
		if (!isdigit((unsigned char)s[i]))
			return 0;
		while (isdigit((unsigned char)s[i]))
			i++;
		while (s[i] == ' ')
			i++;
		nums++;
		if (s[i] == ',' && nums == 1)
			continue;
		return s[i] == ')' && s[i + 1] == 0;
	}
}

int ws_replicate_parse_column(char *spec, struct ws_replicate_col *c, char *err)
{
	char *colon = strrchr(spec, ':'), *eq;
	const char *orig = spec;

	memset(c, 0, sizeof(*c));
	if (colon) {
		if (strcmp(colon, ":update") != 0)
			return ws_error(err, WS_EINVAL, "bad column '%s': want "
			    "NAME[=OTHER][:update]", orig);
		*colon = 0;
		c->update = 1;
	}
	eq = strchr(spec, '=');
	if (eq)
		*eq = 0;
	c->name = spec;
	c->other = eq ? eq + 1 : spec;
	if (!rpl_name_ok(c->name) || !rpl_name_ok(c->other)) {
		if (eq)
			*eq = '=';
		if (colon)
			*colon = ':';
		return ws_error(err, WS_EINVAL, "bad column '%s': want "
		    "NAME[=OTHER][:update]", orig);
	}
	return 0;
}

int ws_replicate_parse_array(char *spec, struct ws_replicate_array *a, char *err)
{
	char *eq = strchr(spec, '='), *colon;

	memset(a, 0, sizeof(*a));
	colon = eq ? strchr(eq + 1, ':') : NULL;
	if (!eq || !colon)
		return ws_error(err, WS_EINVAL, "bad array '%s': want REMOTE=CHILD:REF", spec);
	*eq = 0;
	*colon = 0;
	a->remote = spec;
	a->child = eq + 1;
	a->ref = colon + 1;
	if (!rpl_name_ok(a->remote) || !rpl_name_ok(a->child) || !rpl_name_ok(a->ref) ||
	    strchr(a->ref, ':')) {
		*eq = '=';
		*colon = ':';
		return ws_error(err, WS_EINVAL, "bad array '%s': want REMOTE=CHILD:REF", spec);
	}
	return 0;
}

/* --- HTTP requests and tokens ----------------------------------------------- */

int ws_replicate_token_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n < WS_REPLICATE_TOKEN_MIN || n > WS_REPLICATE_TOKEN_MAX)
		return 0;
	/* token68 (RFC 7235): the characters, then '='s only. */
	while (i < n && (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
	    (s[i] >= '0' && s[i] <= '9') || strchr("-._~+/", s[i])) && s[i])
		i++;
	while (i < n && s[i] == '=')
		i++;
	return i == n;
}

void ws_replicate_token_hash(uint8_t out[WS_REPLICATE_TOKEN_HASHBYTES], const char *s,
    size_t n)
{
	crypto_generichash(out, WS_REPLICATE_TOKEN_HASHBYTES, (const unsigned char *)s, n,
	    NULL, 0);
}

int ws_replicate_http_headers(const char *session, const char *wait, const char *auth,
    struct ws_replicate_http_req *r, char *err)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	if (session) {
		n = strlen(session);
		if (n == 0 || n >= sizeof(r->session) || strspn(session, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != n)
			return ws_error(err, WS_ECORRUPT, "bad Wsync-Session: want the "
			    "session's name");
		memcpy(r->session, session, n + 1);
	}
	if (wait) {
		n = strlen(wait);
		if (n == 0 || n > 6 || strspn(wait, "0123456789") != n)
			return ws_error(err, WS_ECORRUPT, "bad Wsync-Wait: want seconds");
		r->wait_s = (unsigned)strtoul(wait, NULL, 10);
		if (r->wait_s > WS_REPLICATE_HTTP_MAX_WAIT)
			r->wait_s = WS_REPLICATE_HTTP_MAX_WAIT;
	}
	/* Bearer is ours; another scheme may be a proxy's, and is not. */
	if (auth && strncasecmp(auth, "Bearer", 6) == 0 && (auth[6] == ' ' || !auth[6])) {
		auth += 6;
		auth += strspn(auth, " ");
		n = strlen(auth);
		while (n && auth[n - 1] == ' ')
			n--;
		if (!ws_replicate_token_ok(auth, n))
			return ws_error(err, WS_ECORRUPT, "bad Authorization: want Bearer "
			    "and a token of %d to %d characters", WS_REPLICATE_TOKEN_MIN,
			    WS_REPLICATE_TOKEN_MAX);
		ws_replicate_token_hash(r->token_hash, auth, n);
		r->has_token = 1;
	}
	return 0;
}

/* Open path for reading a secret: WS_EPERM if group or others may read or write it. */
int rpl_open_secret(const char *path, const char *what, FILE **f, char *err)
{
	struct stat st;
	char buf[64];
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return ws_error(err, errno == ENOENT ? WS_ENOTFOUND : errno == EACCES ?
		    WS_EPERM : WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	if (fstat(fd, &st) < 0) {
		close(fd);
		return ws_error(err, WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(errno, buf));
	}
	if (st.st_mode & 077) {
		close(fd);
		return ws_error(err, WS_EPERM, "%s '%s' is accessible by others (mode "
		    "%04o): it must be 0600 (chmod 600 '%s')", what, path,
		    (unsigned)(st.st_mode & 07777), path);
	}
	if (!(*f = fdopen(fd, "r"))) {
		close(fd);
		return WS_ENOMEM;
	}
	return 0;
}

/* One line of a tokens file into a new entry of t; the token is wiped. */
static int token_line(struct ws_authkeys *t, char *line, const char *path, size_t lineno,
    char *err)
{
	struct ws_authkey *k, *nk;
	char *hash = strchr(line, '#'), *tok, *save = NULL;
	size_t i;

	if (hash)
		*hash++ = 0;
	if (!(tok = strtok_r(line, " \t\r\n", &save)))
		return 0; /* blank or a comment */
	if (!(nk = realloc(t->k, (t->n + 1) * sizeof(*nk))))
		return WS_ENOMEM;
	t->k = nk;
	k = &t->k[t->n];
	memset(k, 0, sizeof(*k));
	if (!ws_replicate_token_ok(tok, strlen(tok)))
		return ws_error(err, WS_ECONFIG, "%s:%zu: not a token (want %d to %d "
		    "characters of A-Z a-z 0-9 - . _ ~ + /)", path, lineno,
		    WS_REPLICATE_TOKEN_MIN, WS_REPLICATE_TOKEN_MAX);
	ws_replicate_token_hash(k->pk, tok, strlen(tok));
	sodium_memzero(tok, strlen(tok));
	for (i = 0; i < t->n; i++)
		if (sodium_memcmp(t->k[i].pk, k->pk, sizeof(k->pk)) == 0)
			return ws_error(err, WS_ECONFIG, "%s:%zu: the same token as an "
			    "earlier line", path, lineno);
	t->n++;
	return ws_authkey_rest(k, hash, &save, path, lineno, err);
}

int ws_replicate_tokens_load(struct ws_authkeys *t, const char *path, char *err)
{
	char line[4096];
	size_t lineno = 0;
	FILE *f;
	int rc;

	memset(t, 0, sizeof(*t));
	if ((rc = rpl_open_secret(path, "tokens file", &f, err)))
		return rc;
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			rc = ws_error(err, WS_ECONFIG, "%s:%zu: line too long", path, lineno);
		else
			rc = token_line(t, line, path, lineno, err);
	}
	if (rc == 0 && ferror(f))
		rc = ws_error(err, WS_EIO, "cannot read tokens file '%s'", path);
	sodium_memzero(line, sizeof(line));
	fclose(f);
	if (rc)
		ws_authkeys_release(t);
	return rc;
}

const struct ws_authkey *ws_replicate_tokens_find(const struct ws_authkeys *t,
    const uint8_t h[WS_REPLICATE_TOKEN_HASHBYTES])
{
	const struct ws_authkey *found = NULL;
	size_t i;

	for (i = 0; t && i < t->n; i++)
		if (sodium_memcmp(t->k[i].pk, h, WS_REPLICATE_TOKEN_HASHBYTES) == 0 && !found)
			found = &t->k[i];
	return found;
}

int ws_replicate_token_read(char out[WS_REPLICATE_TOKEN_MAX + 1], const char *path,
    char *err)
{
	char line[WS_REPLICATE_TOKEN_MAX + 8];
	size_t n = 0;
	FILE *f;
	int rc;

	out[0] = 0;
	if ((rc = rpl_open_secret(path, "token file", &f, err)))
		return rc;
	if (fgets(line, sizeof(line), f))
		n = strcspn(line, "\r\n");
	if (!ws_replicate_token_ok(line, n))
		rc = ws_error(err, WS_ECONFIG, "'%s' does not hold a token (want %d to %d "
		    "characters of A-Z a-z 0-9 - . _ ~ + / on its first line)", path,
		    WS_REPLICATE_TOKEN_MIN, WS_REPLICATE_TOKEN_MAX);
	else {
		memcpy(out, line, n);
		out[n] = 0;
	}
	sodium_memzero(line, sizeof(line));
	fclose(f);
	return rc;
}

int rpl_watch_db(const char *path)
{
	char wal[PATH_MAX];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return -1;
	inotify_add_watch(fd, path, IN_MODIFY | IN_CLOSE_WRITE);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	inotify_add_watch(fd, wal, IN_MODIFY);
	return fd;
}
