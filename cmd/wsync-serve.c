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

enum { OPT_STDIO = 256, OPT_CREATE, OPT_MAX_FRAME, OPT_QUEUE_MAX, OPT_LOG,
	OPT_HEARTBEAT, OPT_IDLE, OPT_RETAIN, OPT_KEY, OPT_AUTHKEYS, OPT_INSECURE,
	OPT_HANDSHAKE, OPT_MAX_SESSIONS, OPT_FORGET, OPT_SOCKET_MODE, OPT_SITES_PER_KEY };

static const struct cli_opt opts[] = {
	{"listen", 'l', "ADDR", "listen on HOST:PORT, [IPv6]:PORT or unix:PATH (repeatable)"},
	{"datadir", 'd', "DATADIR", "keep the working sets in DATADIR (default .)"},
	{"stdio", OPT_STDIO, NULL, "serve one session on stdin/stdout (for ssh)"},
	{"create", OPT_CREATE, NULL, "accept working sets the hub does not hold yet"},
	{"key", OPT_KEY, "FILE", "the hub's secret key (wsync-keygen): authenticated, encrypted sessions"},
	{"authorized-keys", OPT_AUTHKEYS, "FILE", "the sites' keys and their rights per working set"},
	{"insecure", OPT_INSECURE, NULL, "allow plain sessions on TCP too"},
	{"socket-mode", OPT_SOCKET_MODE, "MODE", "unix sockets' file mode, octal (default 0600: owner only)"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES"},
	{"queue-max", OPT_QUEUE_MAX, "BYTES", "pace a site with more queued (default 64 MiB)"},
	{"log", OPT_LOG, "FILE", "append every frame sent and received to FILE"},
	{"heartbeat", OPT_HEARTBEAT, "SECONDS", "heartbeat a session idle this long (default 15)"},
	{"idle-timeout", OPT_IDLE, "SECONDS", "drop a session silent this long (default 60)"},
	{"retain", OPT_RETAIN, "SECONDS", "keep history a departed site lacks this long (default 604800)"},
	{"handshake", OPT_HANDSHAKE, "SECONDS", "drop a connection without a hello this long (default 10)"},
	{"max-sessions", OPT_MAX_SESSIONS, "N", "refuse connections past N sessions (default from the open-files limit)"},
	{"sites-per-key", OPT_SITES_PER_KEY, "N", "site ids one key may hold in a working set (default 64)"},
	{"forget", OPT_FORGET, "SITE", "forget SITE in every working set of DATADIR, so its history can be collected; then exit"},
	{"quiet", 'q', NULL, "do not log sessions on stderr"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-serve [-q] [-l ADDR]... [-d DATADIR] [--stdio] [--create] [--log FILE]\n"
	    "            [--key FILE --authorized-keys FILE] [--insecure]\n"
	    "wsync-serve [-d DATADIR] --forget SITE",
	.about = "The wsync hub: sites connect to it in a star; it stores every change\n"
	    "of each working set in DATADIR/WSID.db and forwards it to the other sites.\n\n"
	    "--log FILE appends every frame, with its time, direction and peer, in\n"
	    "the stream format wsync-inspect reads.\n\n"
	    "With --key and --authorized-keys, sessions are authenticated and\n"
	    "encrypted, and each site has the rights its key is given.  On TCP the\n"
	    "hub takes only such sessions, unless --insecure; on unix sockets and\n"
	    "stdio plain sessions are allowed too.  A unix socket's file gets mode\n"
	    "0600 (or --socket-mode) whatever the umask: on a keyless hub, whoever\n"
	    "may connect to it may read and write every working set.\n\n"
	    "Once a heartbeat interval the hub collects the change history every\n"
	    "site holds: the connected ones, and those seen within --retain.  A\n"
	    "site that comes back lacking collected history gets a full copy.\n"
	    "--forget SITE (32 hex digits) lets a site go at once.\n\n"
	    "A connection must send its hello (after the key exchange, on a keyed\n"
	    "hub) within --handshake, in frames of at most 4096 bytes;\n"
	    "past --max-sessions, new connections are closed at once.",
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

/* A site id as text (a static buffer). */
static const char *arg_site(const struct ws_siteid *id)
{
	static char hex[WS_SITEID_HEXLEN + 1];

	ws_siteid_hex(id, hex);
	return hex;
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
	int forgetting = 0;
	struct ws_siteid forget;
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
			o.max_frame = cli_size("--max-frame", arg, WS_FRAME_MAX_LIMIT);
			break;
		case OPT_QUEUE_MAX:
			o.queue_max = cli_size("--queue-max", arg, 1ull << 40);
			break;
		case 'q': cli_quiet = 1; break;
		case OPT_KEY: keypath = arg; break;
		case OPT_AUTHKEYS: akpath = arg; break;
		case OPT_INSECURE: o.insecure = 1; break;
		case OPT_SOCKET_MODE: {
			char *end;
			unsigned long m = strtoul(arg, &end, 8);

			if (*end || end == arg || arg[0] == '-' || m == 0 || m > 0777)
				cli_die(EX_USAGE, "bad --socket-mode '%s': want an octal "
				    "mode, 1 to 0777", arg);
			o.socket_mode = (unsigned)m;
			break;
		}
		case OPT_LOG: logpath = arg; break;
		case OPT_HEARTBEAT: o.heartbeat_ms = cli_seconds("--heartbeat", arg); break;
		case OPT_IDLE: o.idle_timeout_ms = cli_seconds("--idle-timeout", arg); break;
		case OPT_RETAIN: o.retain_s = parse_count("--retain", arg, 10L * 365 * 86400); break;
		case OPT_HANDSHAKE:
			o.handshake_ms = cli_seconds("--handshake", arg);
			break;
		case OPT_MAX_SESSIONS:
			o.max_sessions = cli_size("--max-sessions", arg, 1u << 20);
			break;
		case OPT_SITES_PER_KEY:
			o.sites_per_key = cli_size("--sites-per-key", arg, 1u << 20);
			break;
		case OPT_FORGET:
			if (strlen(arg) != WS_SITEID_HEXLEN ||
			    ws_siteid_parse(&forget, arg, strlen(arg)))
				cli_die(EX_USAGE, "bad --forget '%s': want a site id of 32 hex "
				    "digits", arg);
			forgetting = 1;
			break;
		}
	}
	if (forgetting) {
		size_t n = 0;

		if (optind < argc || o.nlisten || o.use_stdio) {
			cli_warn("--forget takes only -d DATADIR");
			cli_usage(&cli);
		}
		if ((rc = ws_hub_forget(o.datadir, &forget, &n, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		if (!n)
			cli_die(EX_DATAERR, "site %s is not known in '%s'", arg_site(&forget),
			    o.datadir);
		printf("forgot site %s in %zu working set%s\n", arg_site(&forget), n,
		    n == 1 ? "" : "s");
		return 0;
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
	cli_listen_keys(&cli, keypath, akpath);
	for (i = 0; i < o.nlisten; i++)
		cli_check_keys(listen[i], 1, keypath != NULL, o.insecure, NULL);
	o.listen = listen;
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (keypath) {
		cli_load_keys(keypath, &key, akpath, &ak);
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
