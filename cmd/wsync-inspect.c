/* SPDX-License-Identifier: MIT */
/*
 * wsync-inspect - look at delta streams and session logs.
 *
 * This build converts streams: --json writes JSON lines, --encode binary
 * frames; either kind of input is accepted.  The timeline, --stats and
 * --check views arrive with issue 6.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "wsync/wsync.h"

enum { OPT_MAX_FRAME = 256 };

static const struct cli_opt opts[] = {
	{"json", 'j', NULL, "write JSON lines, one frame a line"},
	{"encode", 'e', NULL, "write binary frames (a wsync stream)"},
	{"output", 'o', "FILE", "write to FILE instead of stdout"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES (default 16777216)"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-inspect --json [-o FILE] [--max-frame BYTES] [FILE...]\n"
	    "wsync-inspect --encode [-o FILE] [--max-frame BYTES] [FILE...]",
	.about = "Convert wsync delta streams between binary frames and JSON lines.\n"
	    "Each FILE (or - for stdin, the default) may hold either kind.\n\n"
	    "NOT IMPLEMENTED YET: the timeline, --stats, --check, --follow and\n"
	    "database views arrive with issue 6; this build needs --json or --encode.",
	.opts = opts,
	.operands = "file",
};

int main(int argc, char **argv)
{
	struct ws_convert cv = {.mode = 0};
	const char *arg, *out = "-";
	char err[WS_ERRLEN], *end;
	int ch, rc, fd;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'j': cv.mode = WS_CONVERT_JSON; break;
		case 'e': cv.mode = WS_CONVERT_BINARY; break;
		case 'o': out = arg; break;
		case OPT_MAX_FRAME:
			errno = 0;
			cv.max = strtoul(arg, &end, 10);
			if (errno || *end || end == arg || cv.max == 0 ||
			    cv.max > WS_FRAME_MAX_LIMIT)
				cli_die(EX_USAGE, "bad --max-frame '%s': want 1 to %u",
				    arg, WS_FRAME_MAX_LIMIT);
			break;
		}
	}
	if (!cv.mode) {
		cli_warn("the timeline view is not built yet: give --json or --encode");
		cli_usage(&cli);
	}
	signal(SIGPIPE, SIG_IGN);
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (strcmp(out, "-") == 0) {
		fd = STDOUT_FILENO;
	} else if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0666)) < 0) {
		cli_die(errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR,
		    "cannot create '%s': %s", out, cli_strerror(errno));
	}
	if (cv.mode == WS_CONVERT_BINARY && isatty(fd))
		cli_die(EX_USAGE, "refusing to write binary frames to a terminal");
	cv.out_fd = fd;
	cv.out_name = out;
	rc = ws_convert_files(&cv, (const char *const *)argv + optind,
	    (size_t)(argc - optind), err);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	if (fd != STDOUT_FILENO && close(fd) < 0)
		cli_die(EX_IOERR, "cannot write '%s': %s", out, cli_strerror(errno));
	return 0;
}
