/* SPDX-License-Identifier: MIT */
/*
 * wsync-join - a site: sync local databases with a hub.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wsync/wsync.h"
#include "wsync/hub.h"

enum { OPT_MAX_FRAME = 256 };

static const struct cli_opt opts[] = {
	{"follow", 'f', NULL, "stay connected: push local commits and apply others' live"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES"},
	{"quiet", 'q', NULL, "do not report refused working sets and reconnects"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-join [-fq] HUB WSID=DBFILE...",
	.about = "Sync local SQLite databases with a wsync hub over one connection.\n"
	    "HUB is HOST:PORT, [IPv6]:PORT, unix:PATH, exec:COMMAND (for example\n"
	    "exec:'ssh host wsync-serve --stdio -d /srv/wsync') or - (stdin/stdout).\n"
	    "Each WSID=DBFILE names a working set and its database; tables with a\n"
	    "primary key are tracked.  Without -f, it syncs until both sides hold\n"
	    "the same changes, then exits 0.\n\n"
	    "Not built yet: --log, and listing or resolving conflicts from here.",
	.opts = opts,
	.operands = "file",
};

static volatile sig_atomic_t stop;
static int quiet;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void log_line(void *cd, const char *line)
{
	(void)cd;
	if (!quiet)
		cli_warn("%s", line);
}

int main(int argc, char **argv)
{
	struct ws_site_opts o = {.stop = &stop, .log = log_line};
	struct ws_site_set *sets;
	const char *arg;
	char err[WS_ERRLEN] = "", *end, *eq;
	struct sigaction sa;
	int ch, rc, i;
	unsigned long long v;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'f': o.follow = 1; break;
		case 'q': quiet = 1; break;
		case OPT_MAX_FRAME:
			v = strtoull(arg, &end, 10);
			if (*end || end == arg || v == 0 || v > WS_FRAME_MAX_LIMIT)
				cli_die(EX_USAGE, "bad --max-frame '%s': want 1 to %u", arg,
				    WS_FRAME_MAX_LIMIT);
			o.max_frame = (size_t)v;
			break;
		}
	}
	if (argc - optind < 2) {
		cli_warn(argc - optind < 1 ? "missing HUB" : "missing WSID=DBFILE");
		cli_usage(&cli);
	}
	o.hub = argv[optind++];
	o.nsets = (size_t)(argc - optind);
	if (!(sets = calloc(o.nsets, sizeof(*sets))))
		cli_die(EX_OSERR, "out of memory");
	for (i = 0; optind < argc; i++, optind++) {
		eq = strchr(argv[optind], '=');
		if (!eq || eq[1] == 0) {
			cli_warn("bad operand '%s': want WSID=DBFILE", argv[optind]);
			cli_usage(&cli);
		}
		*eq = 0;
		if (!ws_wsid_valid(argv[optind])) {
			cli_warn("bad working-set id '%s': want letters, digits, '.', '_' "
			    "or '-'", argv[optind]);
			cli_usage(&cli);
		}
		sets[i].wsid = argv[optind];
		sets[i].path = eq + 1;
	}
	o.sets = sets;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	rc = ws_site_run(&o, err);
	free(sets);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	return 0;
}
