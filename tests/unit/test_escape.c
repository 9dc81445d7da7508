/* SPDX-License-Identifier: MIT */
/*
 * test_escape.c - the one escaper (escape.h): each class of character
 * against a hand-written form, a cut between whole escapes, and a
 * round trip of every byte value through an independent unescaper.
 */
#include <stdint.h>
#include <string.h>

#include "harness.h"
#include "wsync/wsync.h"

/* ws_escape_append() of s[0..n) as a static string. */
static const char *esc(const char *s, size_t n)
{
	static char out[1024];
	struct ws_buf b = WS_BUF_INIT;

	if (ws_escape_append(&b, s, n) || b.len >= sizeof(out))
		snprintf(out, sizeof(out), "(error)");
	else
		snprintf(out, sizeof(out), "%.*s", (int)b.len, (const char *)b.p);
	ws_buf_release(&b);
	return out;
}

#define ESC(lit) esc(lit, sizeof(lit) - 1)

TEST(classes)
{
	CHECK_STR(ESC("plain text, (ok) = 'yes'"), "plain text, (ok) = 'yes'");
	CHECK_STR(ESC("a\\b"), "a\\\\b");
	CHECK_STR(ESC("\x1b[2J\nforged line"), "\\x1b[2J\\x0aforged line");
	CHECK_STR(ESC("\t\r\x7f"), "\\x09\\x0d\\x7f");
	CHECK_STR(ESC("a\0b"), "a\\x00b");
	/* UTF-8 is kept; its C1 range is not (U+009B is an 8-bit CSI). */
	CHECK_STR(ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	CHECK_STR(ESC("\xc2\x9b" "31m\xc2\x85"), "\\xc2\\x9b31m\\xc2\\x85");
	CHECK_STR(ESC("\xc2\xa0"), "\xc2\xa0");
	/* Bytes that are not UTF-8: a lone CSI, overlong, surrogate, cut. */
	CHECK_STR(ESC("\x9b" "2J"), "\\x9b2J");
	CHECK_STR(ESC("\xc0\xaf"), "\\xc0\\xaf");
	CHECK_STR(ESC("\xed\xa0\x80"), "\\xed\\xa0\\x80");
	CHECK_STR(ESC("x\xe2\x82"), "x\\xe2\\x82");
	CHECK_STR(ESC("\xff"), "\\xff");
}

TEST(escape_str)
{
	char out[16];

	CHECK_INT(ws_escape_str(out, sizeof(out), "ok"), 2);
	CHECK_STR(out, "ok");
	/* "ab\x1b" is 6 bytes escaped: with room for 5 the escape is left out. */
	CHECK_INT(ws_escape_str(out, 6, "ab\x1b" "c"), 7);
	CHECK_STR(out, "ab");
	CHECK_INT(ws_escape_str(out, 7, "ab\x1b" "c"), 7);
	CHECK_STR(out, "ab\\x1b");
	CHECK_INT(ws_escape_str(out, 8, "ab\x1b" "c"), 7);
	CHECK_STR(out, "ab\\x1bc");
	CHECK_INT(ws_escape_str(out, 1, "abc"), 3);
	CHECK_STR(out, "");
	CHECK_INT(ws_escape_str(NULL, 0, "a\\"), 3);
}

/* Read escaped text back: "\\" and "\xNN" only. */
static size_t unescape(const char *s, size_t n, uint8_t *out)
{
	size_t i = 0, k = 0;
	unsigned v;

	while (i < n) {
		if (s[i] != '\\') {
			out[k++] = (uint8_t)s[i++];
		} else if (i + 1 < n && s[i + 1] == '\\') {
			out[k++] = '\\';
			i += 2;
		} else if (i + 3 < n && s[i + 1] == 'x' && sscanf(s + i + 2, "%2x", &v) == 1) {
			out[k++] = (uint8_t)v;
			i += 4;
		} else {
			return SIZE_MAX; /* a backslash standing alone */
		}
	}
	return k;
}

TEST(round_trip)
{
	uint8_t in[64], back[64];
	struct ws_buf b = WS_BUF_INIT;
	size_t i, j, n;

	/* Every byte value alone, then random mixes. */
	for (i = 0; i < 256 + 2000; i++) {
		n = i < 256 ? 1 : 1 + (size_t)t_below(sizeof(in));
		for (j = 0; j < n; j++)
			in[j] = i < 256 ? (uint8_t)i : t_below(4) == 0 ?
			    (uint8_t)t_below(256) :
			    (uint8_t)" \\\x1b\n\xc2\x9b\xc3\xa9" "a"[t_below(9)];
		b.len = 0;
		CHECK_INT(ws_escape_append(&b, in, n), 0);
		for (j = 0; j < b.len; j++)
			if (b.p[j] < 0x20 || b.p[j] == 0x7f ||
			    (b.p[j] == 0xc2 && j + 1 < b.len && b.p[j + 1] <= 0x9f))
				break;
		CHECK_INT(j, b.len);
		CHECK(ws_utf8_valid(b.p, b.len));
		CHECK_INT(unescape((const char *)b.p, b.len, back), n);
		CHECK_MEM(back, n, in, n);
	}
	ws_buf_release(&b);
}

int main(void)
{
	TEST_MAIN_BEGIN();
	RUN(classes);
	RUN(escape_str);
	RUN(round_trip);
	TEST_MAIN_END();
}
