/* SPDX-License-Identifier: MIT */
/*
 * wsync-inspect - look at delta streams, session logs and working-set
 * databases: a timeline (the default), JSON lines, binary frames,
 * statistics or an integrity check.  The work is ws_inspect_run()
 * (inspect.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "wsync/wsync.h"

enum {
	OPT_MAX_FRAME = 256, OPT_SALVAGE, OPT_SITE, OPT_SINCE, OPT_UNTIL,
};

static const struct cli_opt opts[] = {
	{"json", 'j', NULL, "write JSON lines, one frame a line"},
	{"encode", 'e', NULL, "write binary frames (a wsync stream)"},
	{"stats", 's', NULL, "write a summary: frames, bytes, changes, conflicts"},
	{"check", 'c', NULL, "check framing, checksums, clocks and dots"},
	{"follow", 'f', NULL, "wait for the last input to grow, like tail -f"},
	{"salvage", OPT_SALVAGE, NULL, "skip damaged data and go on at the next frame"},
	{"wsid", 'w', "WSID", "only frames of working set WSID"},
	{"site", OPT_SITE, "PREFIX", "only frames of sites whose id starts with PREFIX"},
	{"type", 't', "TYPE", "only frames of TYPE (batch, clock, ...); repeatable"},
	{"since", OPT_SINCE, "TIME", "only log records at or after TIME"},
	{"until", OPT_UNTIL, "TIME", "only log records at or before TIME"},
	{"output", 'o', "FILE", "write to FILE instead of stdout"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES (default 268435456)"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-inspect [-j | -s | -c] [-f] [--salvage] [-w WSID] [--site PREFIX] "
	    "[-t TYPE]... [--since TIME] [--until TIME] [-o FILE] [--max-frame BYTES] "
	    "[FILE | URL]...\n"
	    "wsync-inspect --encode [-o FILE] [--max-frame BYTES] [FILE | URL]...\n"
	    "wsync-inspect [-j | -c] DATABASE",
	.about = "Show wsync delta streams and session logs as a timeline (the default),\n"
	    "as JSON lines (--json), as binary frames (--encode), as statistics\n"
	    "(--stats) or check them (--check).  Each FILE (- for stdin, the default)\n"
	    "or URL (http, https, sftp, file) may hold binary frames or JSON lines.\n"
	    "A working-set database is shown as a summary of its state.\n"
	    "TIME is ISO-8601 (2026-11-22T10:15:02Z) or seconds since the epoch.",
	.opts = opts,
	.operands = "file",
};

static uint64_t parse_time(const char *opt, const char *arg)
{
	uint64_t us;

	if ((strcmp(opt, "--until") == 0 ? ws_inspect_parse_until(arg, &us) :
	    ws_inspect_parse_time(arg, &us)))
		cli_die(EX_USAGE, "bad %s '%s': want ISO-8601 (2026-11-22T10:15:02Z) "
		    "or seconds since the epoch", opt, arg);
	return us;
}

/*
 * Hidden, for the completions: "--list-values TYPE" prints the frame type
 * names --type takes, one a line.  Another ARG has no list: exit 64.
 */
static int list_values(const char *what)
{
	unsigned t;

	if (strcmp(what, "TYPE") != 0)
		cli_die(EX_USAGE, "no list of values for '%s'", what);
	for (t = 1; t < 256; t++)
		if (ws_frame_type_name(t))
			printf("%s\n", ws_frame_type_name(t));
	return fflush(stdout) == 0 ? 0 : EX_IOERR;
}

int main(int argc, char **argv)
{
	struct ws_inspect_opts o;
	const char *arg, *out = "-", *no_color;
	static char site[WS_SITEID_HEXLEN + 1];
	char err[WS_ERRLEN] = "", *p;
	int ch, rc, fd, json = 0, encode = 0, stats = 0, check = 0;

	if (argc == 3 && strcmp(argv[1], "--list-values") == 0)
		return list_values(argv[2]);
	ws_inspect_opts_init(&o);
	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'j': json = 1; encode = 0; break;
		case 'e': encode = 1; json = 0; break;
		case 's': stats = 1; break;
		case 'c': check = 1; break;
		case 'f': o.flags |= WS_INSPECT_FOLLOW; break;
		case OPT_SALVAGE: o.flags |= WS_INSPECT_SALVAGE; break;
		case 'w':
			if (!ws_wsid_valid(arg))
				cli_die(EX_USAGE, "bad --wsid '%s': want 1 to 128 of "
				    "[A-Za-z0-9._-], not starting with '.'", arg);
			o.filter.wsid = arg;
			break;
		case OPT_SITE:
			if (!*arg || strlen(arg) > WS_SITEID_HEXLEN ||
			    strspn(arg, "0123456789abcdefABCDEF") != strlen(arg))
				cli_die(EX_USAGE, "bad --site '%s': want 1 to 32 hex digits", arg);
			snprintf(site, sizeof(site), "%s", arg);
			for (p = site; *p; p++)
				if (*p >= 'A' && *p <= 'F')
					*p = (char)(*p - 'A' + 'a');
			o.filter.site = site;
			break;
		case 't':
			if (ws_inspect_add_types(&o.filter, arg, err))
				cli_die(EX_USAGE, "bad --type: %s", err);
			break;
		case OPT_SINCE: o.filter.since_us = parse_time("--since", arg); break;
		case OPT_UNTIL: o.filter.until_us = parse_time("--until", arg); break;
		case 'o': out = arg; break;
		case OPT_MAX_FRAME:
			o.max = cli_size("--max-frame", arg, WS_FRAME_MAX_LIMIT);
			break;
		}
	}
	if (check && (json || encode || stats)) {
		cli_warn("--check cannot be combined with --%s", json ? "json" :
		    encode ? "encode" : "stats");
		cli_usage(&cli);
	}
	if (stats && encode) {
		cli_warn("--stats cannot be combined with --encode");
		cli_usage(&cli);
	}
	if (o.filter.since_us > o.filter.until_us)
		cli_die(EX_USAGE, "--since is after --until");
	o.mode = check ? WS_INSPECT_CHECK : stats ? WS_INSPECT_STATS :
	    encode ? WS_INSPECT_ENCODE : json ? WS_INSPECT_JSON : WS_INSPECT_TIMELINE;
	if (json)
		o.flags |= WS_INSPECT_AS_JSON;
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (strcmp(out, "-") == 0) {
		fd = STDOUT_FILENO;
	} else if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0) {
		cli_die(errno == EACCES || errno == EPERM ? EX_NOPERM : EX_IOERR,
		    "cannot create '%s': %s", out, cli_strerror(errno));
	}
	if (encode && isatty(fd))
		cli_die(EX_USAGE, "refusing to write binary frames to a terminal");
	no_color = getenv("NO_COLOR");
	if (o.mode == WS_INSPECT_TIMELINE && isatty(fd) && !(no_color && *no_color))
		o.flags |= WS_INSPECT_COLOR;
	o.out_fd = fd;
	o.out_name = out;
	o.warn = cli_log_line;
	o.stop = &cli_stop;
	rc = ws_inspect_run(&o, (const char *const *)argv + optind,
	    (size_t)(argc - optind), err);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	if (fd != STDOUT_FILENO && close(fd) < 0)
		cli_die(EX_IOERR, "cannot write '%s': %s", out, cli_strerror(errno));
	return 0;
}
