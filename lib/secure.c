/* SPDX-License-Identifier: MIT */
/*
 * secure.c - long-term keys, authorized keys, known hubs, and the
 * handshake and encryption of secure sessions.  See secure.h.
 *
 * Every secret (secret keys, ephemeral keys, session keys, the
 * secretstream states) is wiped with sodium_memzero once done with.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "wsync/buf.h"
#include "wsync/frame.h"
#include "wsync/secure.h"

#include "secure-int.h"

#define SECRET_PREFIX "wsync-secret-key-v1 "
#define AUTH_VERSION 1
#define TRANSCRIPT_LABEL "wsync-auth-v1"
#define HDRBYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES

/* Handshake states. */
enum {
	S_SENT1,    /* initiator: step 1 sent, waiting for step 2 */
	S_SENT3,    /* initiator: step 3 sent, waiting for step 4 */
	S_WAIT1,    /* responder: waiting for step 1 */
	S_WAIT3,    /* responder: step 2 sent, waiting for step 3 */
	S_READY,    /* both directions keyed */
};

struct ws_secure {
	int initiator;
	int state;
	int tx_ready, rx_ready;
	const struct ws_keypair *me;
	ws_secure_check_fn *check;
	void *cd;
	ws_secure_emit_fn *emit;  /* where its frames go */
	void *emit_cd;
	uint8_t e_pk[crypto_kx_PUBLICKEYBYTES], e_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t peer_e[crypto_kx_PUBLICKEYBYTES];
	uint8_t peer_pk[WS_KEY_PUBLICBYTES];
	int has_peer;
	uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
	crypto_secretstream_xchacha20poly1305_state push, pull;
	struct ws_buf held;   /* inner frames queued before tx was keyed */
	struct ws_buf in;     /* the inner frame being sent */
	struct ws_buf ct;     /* ciphertext being sent */
	struct ws_buf pt;     /* plaintext received: a frame handed to the
	                         callback points into it, so sending (which
	                         uses ct) never overwrites it */
};

/* Keys. */

void ws_keypair_generate(struct ws_keypair *kp)
{
	crypto_sign_keypair(kp->pk, kp->sk);
}

void ws_keypair_wipe(struct ws_keypair *kp)
{
	sodium_memzero(kp, sizeof(*kp));
}

void ws_key_text(const uint8_t pk[WS_KEY_PUBLICBYTES], char out[WS_KEY_TEXTMAX])
{
	size_t k = strlen(WS_KEY_PREFIX);

	memcpy(out, WS_KEY_PREFIX, k);
	sodium_bin2base64(out + k, WS_KEY_TEXTMAX - k, pk, WS_KEY_PUBLICBYTES,
	    sodium_base64_VARIANT_ORIGINAL);
}

int ws_key_parse(uint8_t pk[WS_KEY_PUBLICBYTES], const char *s, size_t n, char *err)
{
	size_t k = strlen(WS_KEY_PREFIX), len = 0;
	const char *end;

	if (n <= k || memcmp(s, WS_KEY_PREFIX, k) != 0 ||
	    sodium_base642bin(pk, WS_KEY_PUBLICBYTES, s + k, n - k, NULL, &len, &end,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || len != WS_KEY_PUBLICBYTES ||
	    end != s + n)
		return ws_error(err, WS_ECONFIG, "'%.*s' is not a wsync public key "
		    "(want " WS_KEY_PREFIX "BASE64)", (int)(n > 80 ? 80 : n), s);
	return 0;
}

/* Write all of p to fd; 0 or -1 with errno. */
static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	ssize_t k;

	while (n) {
		if ((k = write(fd, b, n)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Make sure the rename of a file in path's directory is on disk. */
static void sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path),
		    path);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(fd);
		close(fd);
	}
}

/*
 * Create path with mode and contents text[0..n).  Without force, path
 * must not exist (O_EXCL: a symbolic link, even a dangling one, counts).
 * With force, the file is written under a temporary name in the same
 * directory and renamed over path: an existing symbolic link is
 * replaced, never followed, so its target is neither written nor
 * chmod'ed, and path is never half written.
 */
static int write_file(const char *path, mode_t mode, const char *text, size_t n,
    int force, char *err)
{
	char buf[64], *tmp = NULL;
	int fd, e, rc = 0;

	if (force) {
		if (!(tmp = malloc(strlen(path) + 16)))
			return WS_ENOMEM;
		sprintf(tmp, "%s.tmp-XXXXXX", path);
		fd = mkostemp(tmp, O_CLOEXEC);
	} else {
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	}
	if (fd < 0) {
		e = errno;
		free(tmp);
		return ws_error(err, e == EACCES || e == EPERM ? WS_EPERM : WS_EIO,
		    "cannot create '%s': %s", path, ws_errno_text(e, buf));
	}
	/* The mode whatever the umask (mkostemp makes 0600). */
	if (fchmod(fd, mode) < 0 || write_all(fd, text, n) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		rc = ws_error(err, WS_EIO, "cannot write '%s': %s", path,
		    ws_errno_text(e, buf));
		goto out;
	}
	if (close(fd) < 0) {
		rc = ws_error(err, WS_EIO, "cannot write '%s': %s", path,
		    ws_errno_text(errno, buf));
		goto out;
	}
	if (tmp && rename(tmp, path) < 0) {
		e = errno;
		rc = ws_error(err, e == EACCES || e == EPERM ? WS_EPERM : WS_EIO,
		    "cannot replace '%s': %s", path, ws_errno_text(e, buf));
		goto out;
	}
	if (tmp)
		sync_dir(path);
out:
	if (tmp && rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* True if something (a symbolic link included) is at path. */
static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int ws_keypair_save(const struct ws_keypair *kp, const char *path, const char *comment,
    int force, char *err)
{
	char line[sizeof(SECRET_PREFIX) + 128], pub[WS_KEY_TEXTMAX + 256], *pubpath;
	size_t k = strlen(SECRET_PREFIX);
	int rc, n;

	memcpy(line, SECRET_PREFIX, k);
	sodium_bin2base64(line + k, sizeof(line) - k - 1, kp->sk, WS_KEY_SECRETBYTES,
	    sodium_base64_VARIANT_ORIGINAL);
	k = strlen(line);
	line[k++] = '\n';
	if (!(pubpath = malloc(strlen(path) + 5))) {
		sodium_memzero(line, sizeof(line));
		return WS_ENOMEM;
	}
	sprintf(pubpath, "%s.pub", path);
	ws_key_text(kp->pk, pub);
	n = snprintf(pub + strlen(pub), sizeof(pub) - strlen(pub), "%s%s\n",
	    comment && *comment ? " " : "", comment ? comment : "");
	if (n < 0 || (size_t)n >= sizeof(pub) - WS_KEY_TEXTMAX) {
		rc = ws_error(err, WS_EINVAL, "comment too long");
		goto out;
	}
	/* A directory is never a key file, forced or not. */
	{
		struct stat sb;

		if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			rc = ws_error(err, WS_EIO, "cannot create '%s': it is a directory "
			    "(name the key file in it, e.g. '%s/site.key')", path, path);
			goto out;
		}
	}
	/* Neither file may exist (unless force): never half a pair. */
	if (!force && (exists(path) || exists(pubpath))) {
		rc = ws_error(err, WS_EIO, "cannot create '%s': file exists",
		    exists(path) ? path : pubpath);
		goto out;
	}
	if ((rc = write_file(path, 0600, line, k, force, err)) == 0)
		rc = write_file(pubpath, 0644, pub, strlen(pub), force, err);
out:
	sodium_memzero(line, sizeof(line));
	free(pubpath);
	return rc;
}

/*
 * Open path for reading as what ("key file", "authorized keys", "known
 * hubs") and fstat it into *st.  O_NONBLOCK, so that a FIFO cannot hang
 * the open; anything but a regular file is refused (WS_EPERM), and with
 * nofollow so is a symbolic link.  Returns the fd (blocking again), or a
 * negative WS_E* code: WS_ENOTFOUND when missing, WS_EPERM, WS_EIO.
 */
static int open_regular(const char *path, const char *what, int nofollow,
    struct stat *st, char *err)
{
	char buf[64];
	int fd, e;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0));
	if (fd < 0) {
		e = errno;
		if (e == ELOOP && nofollow)
			return ws_error(err, WS_EPERM, "%s '%s' is a symbolic link: "
			    "refusing it (give the file it points to)", what, path);
		return ws_error(err, e == ENOENT ? WS_ENOTFOUND : e == EACCES ?
		    WS_EPERM : WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(e, buf));
	}
	if (fstat(fd, st) < 0) {
		e = errno;
		close(fd);
		return ws_error(err, WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(e, buf));
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		return ws_error(err, WS_EPERM, "%s '%s' is not a regular file: "
		    "refusing it", what, path);
	}
	if (fcntl(fd, F_SETFL, 0) < 0) {
		e = errno;
		close(fd);
		return ws_error(err, WS_EIO, "cannot open %s '%s': %s", what, path,
		    ws_errno_text(e, buf));
	}
	return fd;
}

/*
 * Refuse a file that group or others may write (ssh's StrictModes):
 * whoever can write it can grant themselves rights or pin their own key.
 */
static int check_not_writable(const struct stat *st, const char *what,
    const char *path, char *err)
{
	if (!(st->st_mode & 022))
		return 0;
	return ws_error(err, WS_EPERM, "%s '%s' may be written by group or others "
	    "(mode %04o): refusing it (chmod go-w '%s')", what, path,
	    (unsigned)(st->st_mode & 07777), path);
}

int ws_key_arg(uint8_t pk[WS_KEY_PUBLICBYTES], const char *arg, char *err)
{
	char line[512], *e;
	struct stat st;
	ssize_t got;
	size_t n;
	int fd;

	/* A key, alone or as the whole line of a .pub file (with its comment). */
	if (strncmp(arg, WS_KEY_PREFIX, strlen(WS_KEY_PREFIX)) == 0)
		return ws_key_parse(pk, arg, strcspn(arg, " \t\r\n"), err);
	/* Or the .pub file itself. */
	if ((fd = open_regular(arg, "public key file", 0, &st, NULL)) < 0)
		return ws_error(err, WS_ECONFIG, "'%.80s' is not a wsync public key "
		    "(want " WS_KEY_PREFIX "BASE64, or a .pub file)", arg);
	got = read(fd, line, sizeof(line) - 1);
	close(fd);
	n = got > 0 ? (size_t)got : 0;
	line[n] = 0;
	e = line + strspn(line, " \t");
	if (strncmp(e, WS_KEY_PREFIX, strlen(WS_KEY_PREFIX)) != 0 ||
	    ws_key_parse(pk, e, strcspn(e, " \t\r\n"), NULL))
		return ws_error(err, WS_ECONFIG, "'%s' holds no wsync public key "
		    "(a .pub file made by wsync-keygen)", arg);
	return 0;
}

int ws_keypair_load(struct ws_keypair *kp, const char *path, char *err)
{
	char line[sizeof(SECRET_PREFIX) + 128];
	uint8_t seed[crypto_sign_SEEDBYTES], pk[WS_KEY_PUBLICBYTES],
	    sk[WS_KEY_SECRETBYTES];
	size_t k = strlen(SECRET_PREFIX), len = 0, n;
	struct stat st;
	const char *end;
	int fd, rc = 0;
	ssize_t got;

	if ((fd = open_regular(path, "key file", 1, &st, err)) < 0)
		return fd;
	got = read(fd, line, sizeof(line) - 1);
	n = got > 0 ? (size_t)got : 0;
	line[n] = 0;
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = 0;
	/* The usual slip: the .pub file where the secret one belongs. */
	if (strncmp(line, WS_KEY_PREFIX, strlen(WS_KEY_PREFIX)) == 0) {
		k = strlen(path);
		rc = ws_error(err, WS_ECONFIG, "'%s' is a public key; --key wants the "
		    "secret key file%s%.*s%s (made by wsync-keygen -f FILE)", path,
		    k > 4 && strcmp(path + k - 4, ".pub") == 0 ? ", '" : "",
		    k > 4 && strcmp(path + k - 4, ".pub") == 0 ? (int)(k - 4) : 0, path,
		    k > 4 && strcmp(path + k - 4, ".pub") == 0 ? "'" : "");
		goto out;
	}
	if (st.st_mode & 077) {
		rc = ws_error(err, WS_EPERM, "key file '%s' is accessible by others "
		    "(mode %04o): it must be 0600 (chmod 600 '%s')", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (n <= k || memcmp(line, SECRET_PREFIX, k) != 0 ||
	    sodium_base642bin(kp->sk, WS_KEY_SECRETBYTES, line + k, n - k, NULL, &len,
	    &end, sodium_base64_VARIANT_ORIGINAL) != 0 || len != WS_KEY_SECRETBYTES ||
	    *end) {
		rc = ws_error(err, WS_ECONFIG, "'%s' is not a wsync secret-key file",
		    path);
		goto out;
	}
	/*
	 * The 64 bytes are the seed and the public key; signing uses both,
	 * so a public half that is not the seed's would sign as nobody (or
	 * claim another's name).  Recompute it from the seed.
	 */
	crypto_sign_ed25519_sk_to_seed(seed, kp->sk);
	crypto_sign_seed_keypair(pk, sk, seed);
	if (sodium_memcmp(pk, kp->sk + crypto_sign_SEEDBYTES, WS_KEY_PUBLICBYTES) != 0) {
		rc = ws_error(err, WS_ECONFIG, "key file '%s' is damaged: its public "
		    "half does not match its secret seed", path);
		goto out;
	}
	memcpy(kp->pk, pk, WS_KEY_PUBLICBYTES);
out:
	sodium_memzero(line, sizeof(line));
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	close(fd);
	if (rc)
		ws_keypair_wipe(kp);
	return rc;
}

/* Authorized keys and known hubs. */

static enum ws_right right_of(const char *s)
{
	return strcmp(s, "read") == 0 ? WS_RIGHT_READ : strcmp(s, "write") == 0 ?
	    WS_RIGHT_WRITE : strcmp(s, "create") == 0 ? WS_RIGHT_CREATE : WS_RIGHT_NONE;
}

void ws_authkeys_release(struct ws_authkeys *a)
{
	size_t i, j;

	for (i = 0; i < a->n; i++) {
		for (j = 0; j < a->k[i].n; j++)
			free(a->k[i].glob[j]);
		free(a->k[i].glob);
		free(a->k[i].right);
		free(a->k[i].comment);
	}
	free(a->k);
	memset(a, 0, sizeof(*a));
}

/* Parse one line of an authorized-keys file into a new entry of a. */
static int authkey_line(struct ws_authkeys *a, char *line, const char *path,
    size_t lineno, char *err)
{
	struct ws_authkey *k, *nk;
	char *hash = strchr(line, '#'), *tok, *save = NULL;

	if (hash)
		*hash++ = 0;
	if (!(tok = strtok_r(line, " \t\r\n", &save)))
		return 0; /* blank or a comment */
	if (!(nk = realloc(a->k, (a->n + 1) * sizeof(*nk))))
		return WS_ENOMEM;
	a->k = nk;
	k = &a->k[a->n];
	memset(k, 0, sizeof(*k));
	if (ws_key_parse(k->pk, tok, strlen(tok), NULL))
		return ws_error(err, WS_ECONFIG, "%s:%zu: '%s' is not a wsync public "
		    "key", path, lineno, tok);
	a->n++;
	return ws_authkey_rest(k, hash, &save, path, lineno, err);
}

int ws_authkey_rest(struct ws_authkey *k, char *comment, char **save,
    const char *path, size_t lineno, char *err)
{
	char *tok, *eq, **g;
	enum ws_right *r;

	while (comment && (*comment == ' ' || *comment == '\t'))
		comment++;
	if (comment)
		comment[strcspn(comment, "\r\n")] = 0;
	if (!(k->comment = strdup(comment ? comment : "")))
		return WS_ENOMEM;
	while ((tok = strtok_r(NULL, " \t\r\n", save))) {
		eq = strrchr(tok, '=');
		if (!eq || eq == tok || right_of(eq + 1) == WS_RIGHT_NONE)
			return ws_error(err, WS_ECONFIG, "%s:%zu: bad right '%s' (want "
			    "GLOB=read, GLOB=write or GLOB=create)", path, lineno, tok);
		*eq = 0;
		if (!(g = realloc(k->glob, (k->n + 1) * sizeof(*g))))
			return WS_ENOMEM;
		k->glob = g;
		if (!(r = realloc(k->right, (k->n + 1) * sizeof(*r))))
			return WS_ENOMEM;
		k->right = r;
		k->right[k->n] = right_of(eq + 1);
		if (!(k->glob[k->n] = strdup(tok)))
			return WS_ENOMEM;
		k->n++;
	}
	return 0;
}

int ws_authkeys_load(struct ws_authkeys *a, const char *path, char *err)
{
	char line[4096], buf[64];
	size_t lineno = 0;
	struct stat st;
	FILE *f;
	int fd, e, rc = 0;

	memset(a, 0, sizeof(*a));
	if ((fd = open_regular(path, "authorized keys", 0, &st, err)) < 0)
		return fd;
	if ((rc = check_not_writable(&st, "authorized keys", path, err))) {
		close(fd);
		return rc;
	}
	if (!(f = fdopen(fd, "r"))) {
		e = errno;
		close(fd);
		return ws_error(err, WS_EIO, "cannot read authorized keys '%s': %s", path,
		    ws_errno_text(e, buf));
	}
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f))
			rc = ws_error(err, WS_ECONFIG, "%s:%zu: line too long", path, lineno);
		else
			rc = authkey_line(a, line, path, lineno, err);
	}
	if (rc == 0 && ferror(f))
		rc = ws_error(err, WS_EIO, "cannot read authorized keys '%s'", path);
	fclose(f);
	if (rc)
		ws_authkeys_release(a);
	return rc;
}

const struct ws_authkey *ws_authkeys_find(const struct ws_authkeys *a,
    const uint8_t pk[WS_KEY_PUBLICBYTES])
{
	size_t i;

	for (i = 0; i < a->n; i++)
		if (sodium_memcmp(a->k[i].pk, pk, WS_KEY_PUBLICBYTES) == 0)
			return &a->k[i];
	return NULL;
}

enum ws_right ws_authkey_right(const struct ws_authkey *k, const char *wsid)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		if (fnmatch(k->glob[i], wsid, 0) == 0)
			return k->right[i];
	return WS_RIGHT_NONE;
}

/* mkdir -p dir (mode 0700), quietly: opening the file reports failures. */
static void mkdir_parents(char *dir)
{
	char *p;

	for (p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(dir, 0700);
			*p = '/';
		}
	mkdir(dir, 0700);
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int ws_known_hubs_check(const char *path, const char *addr,
    const uint8_t pk[WS_KEY_PUBLICBYTES], int accept_new, int *added, char *err)
{
	char line[4096], text[WS_KEY_TEXTMAX], buf[64], *a, *k;
	uint8_t got[WS_KEY_PUBLICBYTES];
	size_t lineno = 0, n;
	struct stat st;
	FILE *f = NULL;
	int fd, e, rc;

	*added = 0;
	ws_key_text(pk, text);
	if ((fd = open_regular(path, "known hubs", 0, &st, err)) >= 0) {
		if ((rc = check_not_writable(&st, "known hubs", path, err)) ||
		    !(f = fdopen(fd, "r"))) {
			e = errno;
			close(fd);
			return rc ? rc : ws_error(err, WS_EIO, "cannot read known hubs "
			    "'%s': %s", path, ws_errno_text(e, buf));
		}
		while (fgets(line, sizeof(line), f)) {
			lineno++;
			/* "ADDR KEY", separated by any run of blanks: the key is
			 * the last word, the address (which may hold blanks, as
			 * exec: ones do) all before it. */
			n = strcspn(line, "\r\n");
			while (n && is_blank(line[n - 1]))
				n--;
			line[n] = 0;
			for (a = line; is_blank(*a); a++)
				;
			if (!*a || *a == '#')
				continue;
			for (k = a + strlen(a); k > a && !is_blank(k[-1]); k--)
				;
			if (k == a)
				continue; /* one word: no key */
			for (n = (size_t)(k - a); n && is_blank(a[n - 1]); n--)
				;
			a[n] = 0;
			if (strcmp(a, addr) != 0)
				continue;
			if (ws_key_parse(got, k, strlen(k), NULL) == 0 &&
			    sodium_memcmp(got, pk, WS_KEY_PUBLICBYTES) == 0) {
				fclose(f);
				return 0;
			}
			fclose(f);
			return ws_error(err, WS_EPERM, "the hub at %s presented key %s, "
			    "but %s:%zu pins another: refusing it (if the hub's key "
			    "really changed, edit that line)", addr, text, path, lineno);
		}
		fclose(f);
	} else if (fd != WS_ENOTFOUND) {
		return fd;
	}
	if (!accept_new)
		return ws_error(err, WS_EPERM, "unknown hub key %s at %s: pin it with "
		    "--hub-key, add \"%s %s\" to %s, or trust it once with "
		    "--accept-new-hub", text, addr, addr, text, path);
	snprintf(line, sizeof(line), "%s", path);
	if ((k = strrchr(line, '/')) && k != line) {
		*k = 0;
		mkdir_parents(line);
	}
	snprintf(line, sizeof(line), "%s %s\n", addr, text);
	/* O_NONBLOCK: a FIFO without a reader fails instead of hanging. */
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC,
	    0644)) < 0) {
		e = errno;
		return ws_error(err, e == EACCES ? WS_EPERM : WS_EIO, "cannot write "
		    "known hubs '%s': %s", path, ws_errno_text(e, buf));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return ws_error(err, WS_EPERM, "known hubs '%s' is not a regular file: "
		    "refusing it", path);
	}
	/* A file just made under a lax umask: not writable by others, or the
	 * next run would refuse it.  One this process may not chmod is not
	 * written to: the pin would not hold. */
	if (((st.st_mode & 022) && fchmod(fd, st.st_mode & 0755) < 0) ||
	    fcntl(fd, F_SETFL, O_APPEND) < 0 || write_all(fd, line, strlen(line)) < 0) {
		e = errno;
		close(fd);
		return ws_error(err, e == EPERM ? WS_EPERM : WS_EIO, "cannot write "
		    "known hubs '%s': %s", path, ws_errno_text(e, buf));
	}
	close(fd);
	*added = 1;
	return 0;
}

/* The handshake. */

/* The transcript both sides sign: label, then the site's keys, then the hub's. */
static void transcript(const struct ws_secure *s, const char *who, uint8_t *out,
    size_t *n)
{
	const uint8_t *se = s->initiator ? s->e_pk : s->peer_e;
	const uint8_t *sp = s->initiator ? s->me->pk : s->peer_pk;
	const uint8_t *he = s->initiator ? s->peer_e : s->e_pk;
	const uint8_t *hp = s->initiator ? s->peer_pk : s->me->pk;
	size_t k = 0;

	memcpy(out + k, TRANSCRIPT_LABEL, strlen(TRANSCRIPT_LABEL));
	k += strlen(TRANSCRIPT_LABEL);
	memcpy(out + k, who, strlen(who));
	k += strlen(who);
	memcpy(out + k, se, 32);
	memcpy(out + k + 32, sp, 32);
	memcpy(out + k + 64, he, 32);
	memcpy(out + k + 96, hp, 32);
	*n = k + 128;
}

#define TRANSCRIPT_MAX (sizeof(TRANSCRIPT_LABEL) + 8 + 128)

static void sign_transcript(const struct ws_secure *s, const char *who,
    uint8_t sig[crypto_sign_BYTES])
{
	uint8_t t[TRANSCRIPT_MAX];
	size_t n;

	transcript(s, who, t, &n);
	crypto_sign_detached(sig, NULL, t, n, s->me->sk);
}

static int verify_transcript(const struct ws_secure *s, const char *who,
    const uint8_t sig[crypto_sign_BYTES])
{
	uint8_t t[TRANSCRIPT_MAX];
	size_t n;

	transcript(s, who, t, &n);
	return crypto_sign_verify_detached(sig, t, n, s->peer_pk);
}

/* Derive the session keys and start the sending stream; header out. */
static int key_up(struct ws_secure *s, uint8_t header[HDRBYTES])
{
	int rc = s->initiator ?
	    crypto_kx_client_session_keys(s->rx, s->tx, s->e_pk, s->e_sk, s->peer_e) :
	    crypto_kx_server_session_keys(s->rx, s->tx, s->e_pk, s->e_sk, s->peer_e);

	sodium_memzero(s->e_sk, sizeof(s->e_sk));
	if (rc != 0)
		return -1; /* a degenerate peer key */
	crypto_secretstream_xchacha20poly1305_init_push(&s->push, header, s->tx);
	sodium_memzero(s->tx, sizeof(s->tx));
	return 0;
}

/* Encrypt one inner frame into a SEALED frame. */
static int seal(struct ws_secure *s, const uint8_t *m, size_t n)
{
	int rc;

	s->ct.len = 0;
	if ((rc = ws_buf_reserve(&s->ct, n + ABYTES)))
		return rc;
	crypto_secretstream_xchacha20poly1305_push(&s->push, s->ct.p, NULL, m, n,
	    NULL, 0, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
	return s->emit(s->emit_cd, WS_FRAME_SEALED, s->ct.p, n + ABYTES);
}

/* Keys are up for sending: send what waited. */
static int release_held(struct ws_secure *s)
{
	struct ws_frame f;
	size_t off, used;
	int rc;

	s->tx_ready = 1;
	for (off = 0; off < s->held.len; off += used) {
		if ((rc = ws_frame_parse(s->held.p + off, s->held.len - off,
		    WS_FRAME_MAX_LIMIT, &f, &used)) ||
		    (rc = seal(s, s->held.p + off, used)))
			return rc;
	}
	sodium_memzero(s->held.p, s->held.len);
	ws_buf_release(&s->held);
	return 0;
}

static int auth_send(struct ws_secure *s, const uint8_t *pl, size_t n)
{
	return s->emit(s->emit_cd, WS_FRAME_AUTH, pl, n);
}

int ws_sec_new(struct ws_secure **out, int initiator, const struct ws_keypair *me,
    ws_secure_check_fn *check, void *clientData, ws_secure_emit_fn *emit,
    void *emit_cd)
{
	struct ws_secure *s;
	uint8_t pl[2 + 32 + 32];

	if (!(s = sodium_malloc(sizeof(*s))))
		return WS_ENOMEM;
	memset(s, 0, sizeof(*s));
	s->initiator = initiator;
	s->me = me;
	s->check = check;
	s->cd = clientData;
	s->emit = emit;
	s->emit_cd = emit_cd;
	ws_buf_init(&s->held);
	ws_buf_init(&s->in);
	ws_buf_init(&s->ct);
	ws_buf_init(&s->pt);
	*out = s;
	if (!initiator) {
		s->state = S_WAIT1;
		return 0;
	}
	crypto_kx_keypair(s->e_pk, s->e_sk);
	pl[0] = 1;
	pl[1] = AUTH_VERSION;
	memcpy(pl + 2, s->e_pk, 32);
	memcpy(pl + 34, me->pk, 32);
	s->state = S_SENT1;
	return auth_send(s, pl, sizeof(pl));
}

const uint8_t *ws_sec_peer_key(const struct ws_secure *s)
{
	return s->has_peer ? s->peer_pk : NULL;
}

int ws_sec_ready(const struct ws_secure *s)
{
	return s->state == S_READY;
}

void ws_sec_free(struct ws_secure *s)
{
	if (!s)
		return;
	if (s->held.p)
		sodium_memzero(s->held.p, s->held.len);
	if (s->pt.p)
		sodium_memzero(s->pt.p, s->pt.cap);
	ws_buf_release(&s->held);
	ws_buf_release(&s->in);
	ws_buf_release(&s->ct);
	ws_buf_release(&s->pt);
	sodium_free(s); /* wipes it */
}

int ws_sec_seal(struct ws_secure *s, uint8_t type, uint8_t flags, uint32_t ch,
    const void *payload, size_t n)
{
	int rc;

	if (!s->tx_ready)
		return ws_frame_put(&s->held, type, flags, ch, payload, n);
	/* The inner frame, in a buffer kept for the next one. */
	s->in.len = 0;
	if ((rc = ws_frame_put(&s->in, type, flags, ch, payload, n)))
		return rc;
	return seal(s, s->in.p, s->in.len);
}

/* Refuse the peer in the clear (no keys exist yet), saying why; rc back. */
static int refuse_clear(struct ws_secure *s, int rc, const char *why)
{
	struct ws_buf e = WS_BUF_INIT;
	int r2 = ws_buf_put_svarint(&e, rc);

	if (r2 == 0 && (r2 = ws_buf_append(&e, why, strlen(why))) == 0)
		r2 = s->emit(s->emit_cd, WS_FRAME_ERROR, e.p, e.len);
	ws_buf_release(&e);
	return r2 == WS_ENOMEM ? r2 : rc;
}

/* One handshake frame. */
static int auth_step(struct ws_secure *s, const struct ws_frame *f, char *err)
{
	const uint8_t *m = f->payload;
	uint8_t pl[1 + 32 + 32 + crypto_sign_BYTES + HDRBYTES], hdr[HDRBYTES];
	char text[WS_KEY_TEXTMAX];
	int rc, step = f->len ? m[0] : 0;

#define BAD(...) ws_error(err, WS_EPERM, __VA_ARGS__)
	switch (s->state) {
	case S_WAIT1: /* responder */
		if (step != 1 || f->len != 66)
			return BAD("malformed handshake (step 1)");
		if (m[1] != AUTH_VERSION)
			return refuse_clear(s, ws_error(err, WS_EVERSION, "handshake "
			    "version %u is not supported (this hub speaks %u)", m[1],
			    AUTH_VERSION), err);
		memcpy(s->peer_e, m + 2, 32);
		memcpy(s->peer_pk, m + 34, 32);
		s->has_peer = 1;
		if (s->check && (rc = s->check(s->cd, s->peer_pk, err)))
			return refuse_clear(s, rc, err);
		crypto_kx_keypair(s->e_pk, s->e_sk);
		pl[0] = 2;
		memcpy(pl + 1, s->e_pk, 32);
		memcpy(pl + 33, s->me->pk, 32);
		sign_transcript(s, "hub", pl + 65);
		s->state = S_WAIT3;
		return auth_send(s, pl, 65 + crypto_sign_BYTES);
	case S_SENT1: /* initiator */
		if (step != 2 || f->len != 65 + crypto_sign_BYTES)
			return BAD("malformed handshake from the hub (step 2)");
		memcpy(s->peer_e, m + 1, 32);
		memcpy(s->peer_pk, m + 33, 32);
		s->has_peer = 1;
		if (verify_transcript(s, "hub", m + 65) != 0) {
			ws_key_text(s->peer_pk, text);
			return BAD("the hub's handshake signature does not verify for "
			    "key %s", text);
		}
		if (s->check && (rc = s->check(s->cd, s->peer_pk, err)))
			return rc;
		pl[0] = 3;
		sign_transcript(s, "site", pl + 1);
		if (key_up(s, pl + 1 + crypto_sign_BYTES))
			return BAD("the hub's ephemeral key is unusable");
		s->state = S_SENT3;
		if ((rc = auth_send(s, pl, 1 + crypto_sign_BYTES + HDRBYTES)))
			return rc;
		return release_held(s);
	case S_WAIT3: /* responder */
		if (step != 3 || f->len != 1 + crypto_sign_BYTES + HDRBYTES)
			return BAD("malformed handshake (step 3)");
		if (verify_transcript(s, "site", m + 1) != 0) {
			ws_key_text(s->peer_pk, text);
			return BAD("the site's handshake signature does not verify for "
			    "key %s", text);
		}
		if (key_up(s, hdr))
			return BAD("the site's ephemeral key is unusable");
		if (crypto_secretstream_xchacha20poly1305_init_pull(&s->pull,
		    m + 1 + crypto_sign_BYTES, s->rx) != 0)
			return BAD("bad stream header in the handshake");
		sodium_memzero(s->rx, sizeof(s->rx));
		s->rx_ready = 1;
		pl[0] = 4;
		memcpy(pl + 1, hdr, HDRBYTES);
		s->state = S_READY;
		if ((rc = auth_send(s, pl, 1 + HDRBYTES)))
			return rc;
		return release_held(s);
	case S_SENT3: /* initiator */
		if (step != 4 || f->len != 1 + HDRBYTES)
			return BAD("malformed handshake from the hub (step 4)");
		if (crypto_secretstream_xchacha20poly1305_init_pull(&s->pull, m + 1,
		    s->rx) != 0)
			return BAD("bad stream header in the handshake");
		sodium_memzero(s->rx, sizeof(s->rx));
		s->rx_ready = 1;
		s->state = S_READY;
		return 0;
	default:
		return BAD("a handshake frame after the handshake");
	}
#undef BAD
}

int ws_sec_open(struct ws_secure *s, const struct ws_frame *f, struct ws_frame *in,
    char *err)
{
	unsigned char tag;
	unsigned long long mlen;
	size_t used;
	int rc;

	if (f->type == WS_FRAME_AUTH)
		return auth_step(s, f, err);
	if (f->type == WS_FRAME_SEALED) {
		if (!s->rx_ready)
			return ws_error(err, WS_EPERM, "an encrypted frame before the "
			    "handshake was done");
		if (f->len < ABYTES)
			return ws_error(err, WS_EPERM, "an encrypted frame too short to "
			    "be one");
		s->pt.len = 0;
		if ((rc = ws_buf_reserve(&s->pt, f->len)))
			return rc;
		if (crypto_secretstream_xchacha20poly1305_pull(&s->pull, s->pt.p, &mlen,
		    &tag, f->payload, f->len, NULL, 0) != 0)
			return ws_error(err, WS_EPERM, "an encrypted frame failed "
			    "authentication: tampered with, replayed or out of order");
		if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
			return ws_error(err, WS_EPERM, "an encrypted frame carries an "
			    "unexpected tag");
		if ((rc = ws_frame_parse(s->pt.p, (size_t)mlen, WS_FRAME_MAX_LIMIT, in,
		    &used)) || used != mlen)
			return ws_error(err, WS_ECORRUPT, "an encrypted frame does not "
			    "hold one frame");
		if (in->type == WS_FRAME_AUTH || in->type == WS_FRAME_SEALED)
			return ws_error(err, WS_ECORRUPT, "a nested handshake or "
			    "encrypted frame");
		return WS_SEC_INNER;
	}
	/* The peer speaks plain: the caller decides if that may be. */
	if (s->state == S_WAIT1)
		return WS_SEC_PLAIN;
	/* A refusal before any key exists (an unknown key, say). */
	if (f->type == WS_FRAME_ERROR && !s->rx_ready)
		return WS_SEC_CLEAR;
	return ws_error(err, WS_EPERM, "a plain %s frame in an encrypted session: "
	    "downgrade refused", ws_frame_type_name(f->type) ?
	    ws_frame_type_name(f->type) : "unknown");
}
