/* SPDX-License-Identifier: MIT */
/*
 * wsync-join - a site: sync local databases with a hub.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "wsync/wsync.h"

enum { OPT_MAX_FRAME = 256, OPT_CONFLICTS, OPT_RESOLVE, OPT_KEEP, OPT_LOG,
	OPT_HEARTBEAT, OPT_IDLE, OPT_SETS, OPT_KEY, OPT_HUB_KEY, OPT_KNOWN_HUBS,
	OPT_ACCEPT_NEW, OPT_INSECURE, OPT_LOCAL_VIEWS, OPT_SCAN };

static const struct cli_opt opts[] = {
	{"follow", 'f', NULL, "stay connected: push local commits and apply others' live"},
	{"sets", OPT_SETS, "FILE", "sync the WSID=DBFILE lines of FILE too; with -f, follow its edits"},
	{"local-views", OPT_LOCAL_VIEWS, NULL, "keep this site's views and triggers local: none sent, none taken"},
	{"scan", OPT_SCAN, NULL, "also find writes made with triggers off, by comparing rows (kept on)"},
	{"key", OPT_KEY, "FILE", "this site's secret key (wsync-keygen): an authenticated, encrypted session"},
	{"hub-key", OPT_HUB_KEY, "KEY", "the hub's public key (wsync-ed25519:...) to accept"},
	{"known-hubs", OPT_KNOWN_HUBS, "FILE", "pinned hub keys (default ~/.config/wsync/known_hubs)"},
	{"accept-new-hub", OPT_ACCEPT_NEW, NULL, "trust a hub's key on first use, adding it to the known hubs"},
	{"insecure", OPT_INSECURE, NULL, "allow a plain session with a hub on TCP"},
	{"conflicts", OPT_CONFLICTS, NULL, "list the conflicts of each WSID=DBFILE; no hub"},
	{"resolve", OPT_RESOLVE, "ID", "make conflict ID's value win (a local change)"},
	{"keep", OPT_KEEP, NULL, "with --resolve: keep the current value instead"},
	{"log", OPT_LOG, "FILE", "append every frame sent and received to FILE"},
	{"max-frame", OPT_MAX_FRAME, "BYTES", "refuse frames larger than BYTES"},
	{"heartbeat", OPT_HEARTBEAT, "SECONDS", "heartbeat the hub when idle this long (default 15)"},
	{"idle-timeout", OPT_IDLE, "SECONDS", "give up on a hub silent this long (default 60)"},
	{"quiet", 'q', NULL, "do not report refused working sets and reconnects"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-join [-fq] [--local-views] [--scan] [--log FILE] [--sets FILE] HUB [WSID=DBFILE...]\n"
	    "wsync-join --key FILE [--hub-key KEY | --accept-new-hub] [-fq] HUB WSID=DBFILE...\n"
	    "wsync-join --conflicts WSID=DBFILE...\n"
	    "wsync-join --resolve ID [--keep] WSID=DBFILE",
	.about = "Sync local SQLite databases with a wsync hub over one connection.\n"
	    "HUB is HOST:PORT, [IPv6]:PORT, unix:PATH, exec:COMMAND (for example\n"
	    "exec:'ssh host wsync-serve --stdio -d /srv/wsync') or - (stdin/stdout).\n"
	    "Each WSID=DBFILE names a working set and its database; every table is\n"
	    "tracked (by its rowid when it has no primary key).  Without -f, it\n"
	    "syncs until both sides hold the same changes, then exits 0.\n\n"
	    "--scan also finds the writes of programs that turn triggers off\n"
	    "(fossil, Chromium): each sync compares every row with its last known\n"
	    "state.  The database keeps the choice for later runs.\n\n"
	    "--sets FILE reads more WSID=DBFILE lines from FILE ('#' starts a\n"
	    "comment).  With -f the file is watched: a set added to it joins the\n"
	    "session, one taken out leaves it, without reconnecting.\n\n"
	    "--conflicts lists the values that lost, one a line: WSID, ID, TABLE,\n"
	    "KEY (JSON), COLUMN, VALUE (JSON), DOT and concurrent|deleted, tab-\n"
	    "separated.  --resolve writes the choice as a local change; the next\n"
	    "sync takes it to every site.\n\n"
	    "--log FILE appends every frame, with its time, direction and peer, in\n"
	    "the stream format wsync-inspect reads.\n\n"
	    "--key makes the session authenticated and encrypted; the hub's key must\n"
	    "be the one given with --hub-key or the one pinned for HUB in the known\n"
	    "hubs (--accept-new-hub pins it on first use).  A hub on TCP needs --key,\n"
	    "unless --insecure.",
	.opts = opts,
	.operands = "file",
};


/* Print one conflict as a tab-separated line. */
static int print_conflict(const struct ws_conflict *c, void *cd)
{
	char hex[WS_SITEID_HEXLEN + 1], *pk, *val;
	json_t *a = json_array(), *v = ws_json_from_value(&c->value);
	uint32_t i;

	for (i = 0; a && i < c->npk; i++)
		json_array_append_new(a, ws_json_from_value(&c->pk[i]));
	pk = a ? json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	val = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	ws_siteid_hex(&c->site, hex);
	if (pk && val)
		printf("%s\t%lld\t%s\t%s\t%s\t%s\t%s:%llu\t%s\n", (const char *)cd,
		    (long long)c->id, c->table, pk, c->column, val, hex,
		    (unsigned long long)c->counter,
		    strcmp(c->kind, "value") == 0 ? "concurrent" :
		    strcmp(c->kind, "delete") == 0 ? "deleted" : c->kind);
	free(pk);
	free(val);
	json_decref(a);
	json_decref(v);
	return pk && val ? 0 : WS_ENOMEM;
}

/* --conflicts and --resolve: local, no hub. */
static int local_only(const struct ws_site_set *sets, size_t n, long long resolve,
    int keep, char *err)
{
	struct ws_store *s;
	size_t i;
	int rc = 0;

	for (i = 0; rc == 0 && i < n; i++) {
		/* Listing needs only read access; resolving writes. */
		if ((rc = ws_store_open(&s, sets[i].path, sets[i].wsid, resolve ? 0 :
		    WS_STORE_READONLY, err)))
			break;
		rc = resolve ? ws_store_resolve(s, resolve, keep, err) :
		    ws_store_conflicts(s, print_conflict, (void *)sets[i].wsid, err);
		ws_store_close(s);
	}
	if (fflush(stdout) != 0 && rc == 0)
		rc = ws_error(err, WS_EIO, "cannot write the list: %s",
		    cli_strerror(errno));
	return rc;
}

/*
 * Follow on a terminal: the session's state on one line of stderr,
 * rewritten in place; other messages clear it, print, and put it back.
 */
static char status_line[256];
static int status_shown;

static void show_status(void)
{
	if (status_line[0]) {
		fprintf(stderr, "\r\033[Kwsync-join: %s", status_line);
		fflush(stderr);
		status_shown = 1;
	}
}

static void clear_status(void)
{
	if (status_shown) {
		fputs("\r\033[K", stderr);
		status_shown = 0;
	}
}

static void on_status(void *cd, const char *line)
{
	(void)cd;
	if (cli_quiet)
		return;
	/* The line is the library's own text about this session: names it
	 * holds (the hub's address) were given here, on the command line. */
	snprintf(status_line, sizeof(status_line), "%s", line);
	show_status();
}

static void on_log(void *cd, const char *line)
{
	clear_status();
	cli_log_line(cd, line);
	show_status();
}

int main(int argc, char **argv)
{
	struct ws_site_opts o = {.stop = &cli_stop, .log = cli_log_line};
	struct ws_site_set *sets;
	const char *arg;
	char err[WS_ERRLEN] = "", *end;
	int ch, rc, i, conflicts = 0, keep = 0;
	long long resolve = 0;
	const char *logpath = NULL, *keypath = NULL;
	struct ws_session_log slog;
	struct ws_keypair key;
	char khpath[CLI_PATHMAX];

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'f': o.follow = 1; break;
		case 'q': cli_quiet = 1; break;
		case OPT_CONFLICTS: conflicts = 1; break;
		case OPT_KEEP: keep = 1; break;
		case OPT_LOG: logpath = arg; break;
		case OPT_SETS: o.sets_file = arg; break;
		case OPT_LOCAL_VIEWS: o.local_views = 1; break;
		case OPT_SCAN: o.scan = 1; break;
		case OPT_KEY: keypath = arg; break;
		case OPT_HUB_KEY:
			cli_hub_key(arg, o.hub_key);
			o.has_hub_key = 1;
			break;
		case OPT_KNOWN_HUBS: o.known_hubs = arg; break;
		case OPT_ACCEPT_NEW: o.accept_new_hub = 1; break;
		case OPT_INSECURE: o.insecure = 1; break;
		case OPT_HEARTBEAT: o.heartbeat_ms = cli_seconds("--heartbeat", arg); break;
		case OPT_IDLE: o.idle_timeout_ms = cli_seconds("--idle-timeout", arg); break;
		case OPT_RESOLVE:
			resolve = strtoll(arg, &end, 10);
			if (*end || end == arg || resolve <= 0)
				cli_die(EX_USAGE, "bad conflict id '%s'", arg);
			break;
		case OPT_MAX_FRAME:
			o.max_frame = cli_size("--max-frame", arg, WS_FRAME_MAX_LIMIT);
			break;
		}
	}
	if (keep && !resolve) {
		cli_warn("--keep goes with --resolve");
		cli_usage(&cli);
	}
	if (conflicts && resolve) {
		cli_warn("--conflicts and --resolve exclude each other");
		cli_usage(&cli);
	}
	if (!conflicts && !resolve && argc - optind < (o.sets_file ? 1 : 2)) {
		cli_warn(argc - optind < 1 ? "missing HUB" : "missing WSID=DBFILE");
		cli_usage(&cli);
	}
	if (o.sets_file && (conflicts || resolve)) {
		cli_warn("--sets goes with a hub, not --conflicts or --resolve");
		cli_usage(&cli);
	}
	if ((conflicts || resolve) && argc - optind < 1) {
		cli_warn("missing WSID=DBFILE");
		cli_usage(&cli);
	}
	if (resolve && argc - optind > 1) {
		cli_warn("--resolve takes one WSID=DBFILE");
		cli_usage(&cli);
	}
	if (!conflicts && !resolve)
		o.hub = argv[optind++];
	o.known_hubs = cli_hub_trust(&cli, keypath, o.has_hub_key, o.accept_new_hub,
	    o.known_hubs, khpath);
	if (logpath && o.hub && strcmp(logpath, "-") == 0 && strcmp(o.hub, "-") == 0) {
		cli_warn("--log - would write into the connection on stdout");
		cli_usage(&cli);
	}
	o.nsets = (size_t)(argc - optind);
	if (!(sets = calloc(o.nsets + 1, sizeof(*sets))))
		cli_die(EX_SOFTWARE, "out of memory");
	for (i = 0; optind < argc; i++, optind++)
		cli_site_set(&cli, argv[optind], &sets[i]);
	o.sets = sets;
	if (o.hub)
		cli_check_keys(o.hub, 0, keypath != NULL, o.insecure, "hub");
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (keypath) {
		cli_load_keys(keypath, &key, NULL, NULL);
		o.key = &key;
	}
	if (logpath && !conflicts && !resolve) {
		if ((rc = ws_session_log_open(&slog, logpath, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		o.session_log = &slog;
	}
	if (o.follow && isatty(STDERR_FILENO)) {
		o.log = on_log;
		o.status = on_status;
	}
	rc = conflicts || resolve ? local_only(sets, o.nsets, resolve, keep, err) :
	    ws_site_run(&o, err);
	clear_status();
	if (o.session_log) {
		if (slog.failed && !rc)
			cli_warn("cannot write log '%s': some frames are missing", logpath);
		ws_session_log_close(&slog);
	}
	if (o.key)
		ws_keypair_wipe(&key);
	for (i = 0; i < (int)o.nsets; i++)
		free((char *)sets[i].wsid);
	free(sets);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	return 0;
}
