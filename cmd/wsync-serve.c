/* SPDX-License-Identifier: MIT */
/*
 * wsync-serve - the hub.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wsync/wsync.h"
#include "wsync/hub.h"

enum { OPT_STDIO = 256, OPT_CREATE, OPT_MAX_FRAME, OPT_QUEUE_MAX, OPT_LOG,
	OPT_HEARTBEAT, OPT_IDLE, OPT_RETAIN, OPT_KEY, OPT_AUTHKEYS, OPT_INSECURE };

static const struct cli_opt opts[] = {
	{"listen", 'l', "ADDR", "listen on HOST:PORT, [IPv6]:PORT or unix:PATH (repeatable)"},
	{"datadir", 'd', "DATADIR", "keep the working sets in DATADIR (default .)"},
	{"stdio", OPT_STDIO, NULL, "serve one session on stdin/stdout (for ssh)"},
	{"create", OPT_CREATE, NULL, "accept working sets the hub does not hold yet"},
	{"key", OPT_KEY, "FILE", "the hub's secret key (wsync-keygen): authenticated, encrypted sessions"},
	{"authorized-keys", OPT_AUTHKEYS, "FILE", "the sites' keys and their rights per working set"},
	{"insecure", OPT_INSECURE, NULL, "allow plain sessions on TCP too"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES"},
	{"queue-max", OPT_QUEUE_MAX, "BYTES", "disconnect a site with more queued (default 64 MiB)"},
	{"log", OPT_LOG, "FILE", "append every frame sent and received to FILE"},
	{"heartbeat", OPT_HEARTBEAT, "SECONDS", "heartbeat a session idle this long (default 15)"},
	{"idle-timeout", OPT_IDLE, "SECONDS", "drop a session silent this long (default 60)"},
	{"retain", OPT_RETAIN, "SECONDS", "keep history a departed site lacks this long (default 604800)"},
	{"quiet", 'q', NULL, "do not log sessions on stderr"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-serve [-q] [-l ADDR]... [-d DATADIR] [--stdio] [--create] [--log FILE]\n"
	    "            [--key FILE --authorized-keys FILE] [--insecure]",
	.about = "The wsync hub: sites connect to it in a star; it stores every change\n"
	    "of each working set in DATADIR/WSID.db and forwards it to the other sites.\n\n"
	    "--log FILE appends every frame, with its time, direction and peer, in\n"
	    "the stream format wsync-inspect reads.\n\n"
	    "With --key and --authorized-keys, sessions are authenticated and\n"
	    "encrypted, and each site has the rights its key is given.  On TCP the\n"
	    "hub takes only such sessions, unless --insecure; on unix sockets and\n"
	    "stdio plain sessions are allowed too.\n\n"
	    "Once a heartbeat interval the hub collects the change history every\n"
	    "site holds: the connected ones, and those seen within --retain.  A\n"
	    "site that comes back lacking collected history gets a full copy.",
	.opts = opts,
	.operands = "",
};


static void ready(void *cd, const char *const *bound, size_t n)
{
	size_t i;

	(void)cd;
	for (i = 0; i < n && !cli_quiet; i++)
		cli_warn("listening on %s", bound[i]);
}

static size_t parse_size(const char *opt, const char *arg, unsigned long long max)
{
	char *end;
	unsigned long long v = strtoull(arg, &end, 10);

	if (*end || end == arg || v == 0 || v > max)
		cli_die(EX_USAGE, "bad %s '%s': want 1 to %llu", opt, arg, max);
	return (size_t)v;
}

/* A whole number 0 to max for opt, or exit 64. */
static long parse_count(const char *opt, const char *arg, long max)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (*end || end == arg || v < 0 || v > max)
		cli_die(EX_USAGE, "bad %s '%s': want 0 to %ld", opt, arg, max);
	return v;
}

int main(int argc, char **argv)
{
	struct ws_hub_opts o = {.datadir = ".", .stop = &cli_stop, .log = cli_log_line,
	    .ready = ready, .retain_s = -1};
	const char **listen = NULL, *arg, *logpath = NULL, *keypath = NULL,
	    *akpath = NULL;
	struct ws_keypair key;
	struct ws_authkeys ak = {0};
	size_t i;
	int tcp = 0;
	struct ws_session_log slog;
	char err[WS_ERRLEN] = "";
	int ch, rc;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'l':
			if (!(listen = realloc(listen, (o.nlisten + 1) * sizeof(*listen))))
				cli_die(EX_SOFTWARE, "out of memory");
			listen[o.nlisten++] = arg;
			break;
		case 'd': o.datadir = arg; break;
		case OPT_STDIO: o.use_stdio = 1; break;
		case OPT_CREATE: o.create = 1; break;
		case OPT_MAX_FRAME:
			o.max_frame = parse_size("--max-frame", arg, WS_FRAME_MAX_LIMIT);
			break;
		case OPT_QUEUE_MAX:
			o.queue_max = parse_size("--queue-max", arg, 1ull << 40);
			break;
		case 'q': cli_quiet = 1; break;
		case OPT_KEY: keypath = arg; break;
		case OPT_AUTHKEYS: akpath = arg; break;
		case OPT_INSECURE: o.insecure = 1; break;
		case OPT_LOG: logpath = arg; break;
		case OPT_HEARTBEAT: o.heartbeat_ms = cli_seconds("--heartbeat", arg); break;
		case OPT_IDLE: o.idle_timeout_ms = cli_seconds("--idle-timeout", arg); break;
		case OPT_RETAIN: o.retain_s = parse_count("--retain", arg, 10L * 365 * 86400); break;
		}
	}
	if (optind < argc) {
		cli_warn("unexpected operand '%s'", argv[optind]);
		cli_usage(&cli);
	}
	if (!o.nlisten && !o.use_stdio) {
		cli_warn("nothing to serve: give -l ADDR or --stdio");
		cli_usage(&cli);
	}
	if (logpath && o.use_stdio && strcmp(logpath, "-") == 0) {
		cli_warn("--log - would write into the connection on stdout");
		cli_usage(&cli);
	}
	if (!keypath != !akpath) {
		cli_warn(keypath ? "--key needs --authorized-keys" :
		    "--authorized-keys needs --key");
		cli_usage(&cli);
	}
	for (i = 0; i < o.nlisten; i++)
		tcp |= strncmp(listen[i], "unix:", 5) != 0;
	if (tcp && !keypath && !o.insecure)
		cli_die(EX_CONFIG, "listening on TCP needs --key FILE and "
		    "--authorized-keys FILE (or --insecure for plain sessions)");
	o.listen = listen;
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (keypath) {
		if ((rc = ws_keypair_load(&key, keypath, err)) ||
		    (rc = ws_authkeys_load(&ak, akpath, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		o.key = &key;
		o.authkeys = &ak;
	}
	if (logpath) {
		if ((rc = ws_session_log_open(&slog, logpath, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		o.session_log = &slog;
	}
	rc = ws_hub_run(&o, err);
	free(listen);
	if (keypath) {
		ws_keypair_wipe(&key);
		ws_authkeys_release(&ak);
	}
	if (logpath) {
		if (slog.failed && !rc)
			cli_warn("cannot write log '%s': some frames are missing", logpath);
		ws_session_log_close(&slog);
	}
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	return 0;
}
