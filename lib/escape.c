/* SPDX-License-Identifier: MIT */
/*
 * escape.c - the one escaper for text that came from outside (escape.h).
 * Everything goes through ws_escape_char(); the other two functions only
 * say where its output goes.
 */
#include <stdio.h>
#include <string.h>

#include "wsync/escape.h"

/* Length of the well-formed UTF-8 character at p[0..n) (2 to 4), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
	size_t k = (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 :
	    (p[0] & 0xf8) == 0xf0 ? 4 : 0;

	return k && k <= n && ws_utf8_valid(p, k) ? k : 0;
}

size_t ws_escape_char(const uint8_t *p, size_t n, char out[WS_ESCAPE_CHARMAX],
    size_t *used)
{
	size_t k;

	*used = 1;
	if (p[0] == '\\') {
		memcpy(out, "\\\\", 3);
		return 2;
	}
	if (p[0] < 0x20 || p[0] == 0x7f) {
		snprintf(out, WS_ESCAPE_CHARMAX, "\\x%02x", p[0]);
		return 4;
	}
	if (p[0] < 0x80) {
		out[0] = (char)p[0];
		out[1] = 0;
		return 1;
	}
	if ((k = utf8_len(p, n)) == 0) {
		snprintf(out, WS_ESCAPE_CHARMAX, "\\x%02x", p[0]);
		return 4;
	}
	*used = k;
	if (p[0] == 0xc2 && p[1] <= 0x9f) {
		/* U+0080 to U+009F: the C1 controls (CSI is U+009B) */
		snprintf(out, WS_ESCAPE_CHARMAX, "\\xc2\\x%02x", p[1]);
		return 8;
	}
	memcpy(out, p, k);
	out[k] = 0;
	return k;
}

int ws_escape_append(struct ws_buf *out, const void *p, size_t n)
{
	const uint8_t *s = p;
	char e[WS_ESCAPE_CHARMAX];
	size_t i, k, used, len = out->len;

	for (i = 0; i < n; i += used) {
		k = ws_escape_char(s + i, n - i, e, &used);
		if (ws_buf_append(out, e, k)) {
			out->len = len;
			return WS_ENOMEM;
		}
	}
	return 0;
}

size_t ws_escape_str(char *out, size_t size, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	char e[WS_ESCAPE_CHARMAX];
	size_t n = strlen(s), i, k, used, len = 0, w = 0;

	for (i = 0; i < n; i += used) {
		k = ws_escape_char(p + i, n - i, e, &used);
		if (w == len && w + k < size) {
			memcpy(out + w, e, k);
			w += k;
		}
		len += k;
	}
	if (size)
		out[w] = 0;
	return len;
}
