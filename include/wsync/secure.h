/* SPDX-License-Identifier: MIT */
/*
 * secure.h - keys, rights and encrypted sessions, with libsodium.
 *
 * Every hub and site may have a long-term Ed25519 key pair.  A secure
 * session starts with four WS_FRAME_AUTH frames (a SIGMA-style
 * handshake):
 *   1  site -> hub   step 1, version, site's ephemeral X25519 key, site's
 *                    long-term key
 *   2  hub  -> site  step 2, hub's ephemeral key, hub's long-term key, the
 *                    hub's signature of the transcript
 *   3  site -> hub   step 3, the site's signature, its secretstream header
 *   4  hub  -> site  step 4, the hub's secretstream header
 * The transcript is "wsync-auth-v1", the site's ephemeral and long-term
 * keys, then the hub's; each side signs "hub" or "site" followed by it,
 * so each attests whom it talks to, over keys fresh for this connection.
 * The session keys come from the ephemeral keys (crypto_kx, the site as
 * client); each direction is a crypto_secretstream_xchacha20poly1305
 * stream.  After its step, every frame a side sends is a WS_FRAME_SEALED
 * frame on channel 0 whose payload is one secretstream message holding
 * the whole inner frame (header, payload, checksum), so tampering,
 * replay, reordering and dropped frames fail to decrypt.
 *
 * Key text forms: a public key is "wsync-ed25519:" and the standard
 * base64 of its 32 bytes; a secret-key file holds one line
 * "wsync-secret-key-v1 " and the base64 of the 64-byte Ed25519 secret
 * key, and must not be readable or writable by group or others.
 */
#ifndef WSYNC_SECURE_H
#define WSYNC_SECURE_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define WS_KEY_PUBLICBYTES 32
#define WS_KEY_SECRETBYTES 64
#define WS_KEY_PREFIX "wsync-ed25519:"
/* Room for a public key's text form and its NUL. */
#define WS_KEY_TEXTMAX 64

struct ws_keypair {
	uint8_t pk[WS_KEY_PUBLICBYTES];
	uint8_t sk[WS_KEY_SECRETBYTES];
};

/* A fresh random key pair. */
void ws_keypair_generate(struct ws_keypair *kp);
/* Wipe the secret (sodium_memzero). */
void ws_keypair_wipe(struct ws_keypair *kp);
/*
 * Write kp to path (the secret, mode 0600) and path.pub (the public key's
 * text and the comment), whatever the umask.  An existing file (a
 * symbolic link too, even a dangling one) is WS_EIO unless force; with
 * force each file is written under a temporary name in its directory and
 * renamed over the old one, so a symbolic link is replaced, never
 * followed, and its target neither written nor chmod'ed.
 */
int ws_keypair_save(const struct ws_keypair *kp, const char *path, const char *comment,
    int force, char *err) WS_MUST_CHECK;
/*
 * Read a secret-key file.  It is opened with O_NOFOLLOW and O_NONBLOCK
 * and checked with fstat: WS_EPERM when it is a symbolic link or not a
 * regular file (a FIFO never blocks the call), or when group or others
 * may read or write it (as ssh refuses such keys); WS_ENOTFOUND when
 * missing; WS_ECONFIG when it is not a key file, or when its public half
 * is not the one its seed gives (crypto_sign_seed_keypair).
 */
int ws_keypair_load(struct ws_keypair *kp, const char *path, char *err) WS_MUST_CHECK;

/* The text form of a public key into out. */
void ws_key_text(const uint8_t pk[WS_KEY_PUBLICBYTES], char out[WS_KEY_TEXTMAX]);
/* Parse a public key's text form (s[0..n)).  WS_ECONFIG if it is not one. */
int ws_key_parse(uint8_t pk[WS_KEY_PUBLICBYTES], const char *s, size_t n, char *err) WS_MUST_CHECK;
/*
 * A public key as a user gives it on the command line: the key text, the
 * whole line of a .pub file (its comment is ignored), or the path of a
 * .pub file.  WS_ECONFIG with a message otherwise.
 */
int ws_key_arg(uint8_t pk[WS_KEY_PUBLICBYTES], const char *arg, char *err) WS_MUST_CHECK;

/* Rights on a working set, weakest first. */
enum ws_right {
	WS_RIGHT_NONE = 0,
	WS_RIGHT_READ = 1,   /* receive its changes */
	WS_RIGHT_WRITE = 2,  /* and send changes */
	WS_RIGHT_CREATE = 3, /* and create it on the hub */
};

/*
 * An authorized-keys file: one key a line, then its rights, then an
 * optional comment after '#':
 *     wsync-ed25519:BASE64 notes=write shop-*=read *=create  # laptop
 * Each right is GLOB=read|write|create; the first glob (fnmatch) that
 * matches a working-set id gives the right on it; none gives none.
 */
struct ws_authkey {
	uint8_t pk[WS_KEY_PUBLICBYTES];
	char *comment;              /* "" when none */
	size_t n;
	char **glob;
	enum ws_right *right;
};

struct ws_authkeys {
	struct ws_authkey *k;
	size_t n;
};

/*
 * The rest of a rights line, after its first field (a key, or a token
 * for wsync-replicate's --http-tokens): comment, the text after '#' (or
 * NULL), becomes k->comment, and the GLOB=RIGHT fields that strtok_r()
 * state *save holds become k's rights.  WS_ECONFIG naming path:lineno.
 */
int ws_authkey_rest(struct ws_authkey *k, char *comment, char **save,
    const char *path, size_t lineno, char *err) WS_MUST_CHECK;

/* Read path into a (released with ws_authkeys_release).  Fields are
 * separated by blanks (spaces and tabs, any run).  WS_EPERM when group
 * or others may write the file (whoever can would grant any key any
 * right; ssh's StrictModes) or it is not a regular file; WS_ECONFIG
 * with "FILE:LINE: ..." for a bad line, WS_ENOTFOUND, WS_EIO. */
int ws_authkeys_load(struct ws_authkeys *a, const char *path, char *err) WS_MUST_CHECK;
void ws_authkeys_release(struct ws_authkeys *a);
/* The entry for pk, or NULL. */
const struct ws_authkey *ws_authkeys_find(const struct ws_authkeys *a,
    const uint8_t pk[WS_KEY_PUBLICBYTES]);
/* k's right on working set wsid. */
enum ws_right ws_authkey_right(const struct ws_authkey *k, const char *wsid);

/*
 * Check the hub key pk presented at address addr against a known-hubs
 * file (lines "ADDR KEY": the key is the last word, after any run of
 * spaces and tabs; a missing file is empty).  0 when addr is listed with
 * pk.  Listed with another key: WS_EPERM.  Not listed: WS_EPERM, unless
 * accept_new, which appends the line (*added = 1).  A file that group or
 * others may write, or that is not a regular file, is WS_EPERM.
 */
int ws_known_hubs_check(const char *path, const char *addr,
    const uint8_t pk[WS_KEY_PUBLICBYTES], int accept_new, int *added,
    char *err) WS_MUST_CHECK;

/*
 * Called during the handshake with the peer's long-term key: return 0 to
 * go on, or a negative WS_E* code (with a message in err) to refuse.
 */
typedef int ws_secure_check_fn(void *clientData, const uint8_t pk[WS_KEY_PUBLICBYTES],
    char *err);

/*
 * A secure session's state: the handshake, then a secretstream each
 * way.  It is a frame filter that knows nothing of peers (lib/
 * secure-int.h); the session layer (session.h: ws_peer_secure) runs
 * it.
 */
struct ws_secure;

#endif
