/* SPDX-License-Identifier: MIT */
/*
 * escape.h - the one escaper for text that came from outside.
 *
 * Names and messages that arrive on the wire, or sit in a log or a
 * database a peer could have written, may hold bytes that drive a
 * terminal (ESC [2J, an 8-bit CSI) or forge a line (a newline).  Before
 * any such string is printed as text, by the binaries' diagnostics
 * (cmd/cli.c) or by wsync-inspect's views (inspect.c), it goes through
 * this module, which writes:
 *
 *   - a backslash as \\ ;
 *   - a C0 control character (0x00-0x1f) and DEL (0x7f) as \xNN ;
 *   - a C1 control character (U+0080-U+009F, the UTF-8 bytes c2 80 to
 *     c2 9f) as \xc2\xNN ;
 *   - a byte that does not start a well-formed UTF-8 character as \xNN ;
 *   - every other character (printable ASCII, well-formed UTF-8) as it is.
 *
 * The form is reversible and unambiguous: "\\" and "\xNN" (two lowercase
 * hex digits) are the only escapes, and a backslash never stands alone,
 * so reading the text back gives the original bytes.  JSON output does
 * not use this: jansson escapes JSON strings itself.
 */
#ifndef WSYNC_ESCAPE_H
#define WSYNC_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

/* Room for the escaped form of one character and its NUL ("\xc2\x9b"). */
#define WS_ESCAPE_CHARMAX 9

/*
 * The printable form of the character that starts p[0..n) (n >= 1) into
 * out, NUL-terminated; *used gets the number of bytes it stands for (1
 * to 4).  Returns strlen(out).  Owns nothing.
 */
size_t ws_escape_char(const uint8_t *p, size_t n, char out[WS_ESCAPE_CHARMAX],
    size_t *used);

/* Append p[0..n) escaped to out.  0 or WS_ENOMEM (out then unchanged). */
int ws_escape_append(struct ws_buf *out, const void *p, size_t n) WS_MUST_CHECK;

/*
 * Escape the NUL-terminated s into out[0..size), snprintf-style: the
 * result is NUL-terminated (when size > 0) and cut only between whole
 * escapes; the return value is the length of the whole escaped text, so
 * a value >= size means it was cut.  Owns nothing.
 */
size_t ws_escape_str(char *out, size_t size, const char *s);

#endif
