/* SPDX-License-Identifier: MIT */
/*
 * error.h - error codes shared by every libwsync module.
 *
 * Every library function that can fail returns 0 (WS_OK) or one of the
 * negative WS_E* codes below.  ws_strerror() turns a code into a short,
 * lowercase description.  Functions that can say more accept an optional
 * caller-supplied buffer `char err[WS_ERRLEN]` (NULL is allowed) that
 * receives a one-line detail such as "frame at byte 1042: bad checksum".
 *
 * The library never prints, never exits and never aborts on bad input:
 * it is the binaries in cmd/ that print "wsync-<name>: ..." and pick an
 * exit status, through ws_exitcode().
 */
#ifndef WSYNC_ERROR_H
#define WSYNC_ERROR_H

#include <stddef.h>

/* Size of the optional detail buffer taken by library functions. */
#define WS_ERRLEN 256

#if defined(__GNUC__)
#define WS_MUST_CHECK __attribute__((warn_unused_result))
#define WS_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WS_MUST_CHECK
#define WS_PRINTF(f, a)
#endif

enum ws_error {
	WS_OK = 0,
	WS_ENOMEM = -1,     /* out of memory */
	WS_EINVAL = -2,     /* invalid argument (a caller's mistake) */
	WS_EAGAIN = -3,     /* need more input; not an error at end of data */
	WS_EMAGIC = -4,     /* not a wsync stream (wrong magic) */
	WS_EVERSION = -5,   /* unsupported protocol version */
	WS_ETOOBIG = -6,    /* a length exceeds the configured maximum */
	WS_ECHECKSUM = -7,  /* checksum mismatch */
	WS_ECORRUPT = -8,   /* malformed data */
	WS_ETRUNC = -9,     /* input ended in the middle of an item */
	WS_ERANGE = -10,    /* a number is out of range */
	WS_ENOTFOUND = -11, /* no such item */
	WS_EAMBIG = -12,    /* an abbreviation matches more than one item */
	WS_EJSON = -13,     /* malformed JSON or a JSON value of the wrong shape */
	WS_EIO = -14,       /* an I/O error; errno-style detail is in err */
	WS_EUNSUPP = -15,   /* a valid but unsupported feature */
	WS_ESCHEMA = -16,   /* schema mismatch */
	WS_EPERM = -17,     /* permission denied */
	WS_EBUSY = -18,     /* resource busy (e.g. database locked); try again */
	WS_ENOSPC = -19,    /* no space left on device */
	WS_ECONFIG = -20,   /* bad configuration */
	WS_EINTERNAL = -21, /* a bug in wsync */
};

/* Lowest (most negative) code in use; codes below it are unknown. */
#define WS_ERROR_MIN WS_EINTERNAL

/*
 * Return a static, lowercase description of `rc` (e.g. "bad checksum").
 * Unknown codes give "unknown error".  Never returns NULL.
 */
const char *ws_strerror(int rc);

/*
 * Map a WS_E* code to a sysexits(3) exit status: 0 for WS_OK, 64 for a
 * bad argument, 65 for bad data, 66 for missing input, 69 unavailable,
 * 70 software, 74 I/O, 75 try again, 77 permission, 78 configuration.
 * Binaries call this in one place so every tool documents the same
 * statuses.
 */
int ws_exitcode(int rc);

/*
 * strerror(e) with its first letter lowercased, as messages want ("no
 * such file or directory"), written into buf and returned.
 */
const char *ws_errno_text(int e, char buf[64]);

/*
 * Fill the optional detail buffer `err` (may be NULL) with a formatted
 * message and return `rc` unchanged, so callers can write
 *     return ws_error(err, WS_ECORRUPT, "bad varint at byte %zu", off);
 * The message is truncated to WS_ERRLEN-1 bytes.
 */
int ws_error(char *err, int rc, const char *fmt, ...) WS_PRINTF(3, 4);

#endif
