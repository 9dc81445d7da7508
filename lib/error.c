/* SPDX-License-Identifier: MIT */
/*
 * error.c - descriptions of the WS_E* codes and their exit statuses.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "wsync/error.h"

static const char *const messages[] = {
	[0] = "success",
	[-WS_ENOMEM] = "out of memory",
	[-WS_EINVAL] = "invalid argument",
	[-WS_EAGAIN] = "more input needed",
	[-WS_EMAGIC] = "not a wsync stream",
	[-WS_EVERSION] = "unsupported protocol version",
	[-WS_ETOOBIG] = "too large",
	[-WS_ECHECKSUM] = "bad checksum",
	[-WS_ECORRUPT] = "malformed data",
	[-WS_ETRUNC] = "truncated input",
	[-WS_ERANGE] = "number out of range",
	[-WS_ENOTFOUND] = "not found",
	[-WS_EAMBIG] = "ambiguous abbreviation",
	[-WS_EJSON] = "bad json",
	[-WS_EIO] = "input/output error",
	[-WS_EUNSUPP] = "not supported",
	[-WS_ESCHEMA] = "schema mismatch",
	[-WS_EPERM] = "permission denied",
	[-WS_EBUSY] = "resource busy",
	[-WS_ENOSPC] = "no space left on device",
	[-WS_ECONFIG] = "bad configuration",
	[-WS_EINTERNAL] = "internal error",
};

const char *ws_strerror(int rc)
{
	if (rc > 0 || rc < WS_ERROR_MIN)
		return "unknown error";
	return messages[-rc];
}

int ws_exitcode(int rc)
{
	switch (rc) {
	case WS_OK:
		return 0;
	case WS_EINVAL:
		return EX_USAGE;
	case WS_EMAGIC: case WS_EVERSION: case WS_ETOOBIG: case WS_ECHECKSUM:
	case WS_ECORRUPT: case WS_ETRUNC: case WS_ERANGE: case WS_EJSON:
	case WS_ESCHEMA: case WS_EAMBIG:
		return EX_DATAERR;
	case WS_ENOTFOUND:
		return EX_NOINPUT;
	case WS_EUNSUPP:
		return EX_UNAVAILABLE;
	case WS_EIO: case WS_ENOSPC:
		return EX_IOERR;
	case WS_EAGAIN: case WS_EBUSY:
		return EX_TEMPFAIL;
	case WS_EPERM:
		return EX_NOPERM;
	case WS_ECONFIG:
		return EX_CONFIG;
	default:
		return EX_SOFTWARE;
	}
}

const char *ws_errno_text(int e, char buf[64])
{
	snprintf(buf, 64, "%s", strerror(e));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
		buf[0] = (char)(buf[0] - 'A' + 'a');
	return buf;
}

int ws_error(char *err, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err, WS_ERRLEN, fmt, ap);
		va_end(ap);
	}
	return rc;
}
