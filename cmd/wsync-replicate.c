/* SPDX-License-Identifier: MIT */
/*
 * wsync-replicate - publish a table, or replicate one into a local table.
 */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "wsync/wsync.h"

enum { OPT_ADD = 256, OPT_DEL, OPT_STDIO, OPT_HTTP, OPT_ARRAY, OPT_HOLD, OPT_EXEC,
	OPT_BATCH, OPT_COMPACT, OPT_KEY, OPT_AUTHKEYS, OPT_INSECURE, OPT_HUB_KEY,
	OPT_KNOWN_HUBS, OPT_ACCEPT_NEW, OPT_TLS_CERT, OPT_TLS_KEY, OPT_HTTP_TOKENS,
	OPT_HTTP_TOKEN, OPT_HTTP_MAX_BODY, OPT_HTTP_TIMEOUT };

static const struct cli_opt opts[] = {
	{"db", 'd', "FILE", "the database (publish: its table; pull: the local one)"},
	{"table", 't', "TABLE", "the table published, or the local table"},
	{"column", 'c', "SPEC", "NAME[=OTHER][:update]: a column, renamed, updatable"},
	{"add", OPT_ADD, NULL, "grant (publish) or ask for (pull) the right to add rows"},
	{"del", OPT_DEL, NULL, "grant (publish) or ask for (pull) the right to delete "
	    "rows"},
	{"listen", 'l', "ADDR", "publish: serve the stream protocol on ADDR"},
	{"stdio", OPT_STDIO, NULL, "publish: serve one session on stdin and stdout"},
	{"http", OPT_HTTP, "ADDR", "publish: serve the HTTP mapping on ADDR (plain HTTP: "
	    "loopback only, unless --insecure)"},
	{"tls-cert", OPT_TLS_CERT, "FILE", "publish: serve HTTPS with this PEM "
	    "certificate (chain)"},
	{"tls-key", OPT_TLS_KEY, "FILE", "publish: the certificate's PEM key (mode 0600)"},
	{"http-tokens", OPT_HTTP_TOKENS, "FILE", "publish: bearer tokens and their rights, "
	    "\"TOKEN GLOB=RIGHT...\" (mode 0600)"},
	{"http-max-body", OPT_HTTP_MAX_BODY, "BYTES", "publish: longest HTTP request "
	    "body (default 8388608)"},
	{"http-timeout", OPT_HTTP_TIMEOUT, "SECONDS", "publish: drop an HTTP connection "
	    "idle this long (default 30)"},
	{"http-token", OPT_HTTP_TOKEN, "FILE", "pull: send the bearer token in FILE "
	    "(mode 0600) over HTTP(S)"},
	{"compact", OPT_COMPACT, NULL, "publish: collect the change log first (older "
	    "replicators replicate in full)"},
	{"key", OPT_KEY, "FILE", "this side's secret key (wsync-keygen): authenticated, "
	    "encrypted stream sessions"},
	{"authorized-keys", OPT_AUTHKEYS, "FILE", "publish: the replicators' keys and "
	    "their rights (globs match TABLE)"},
	{"hub-key", OPT_HUB_KEY, "KEY", "pull: the publisher's public key "
	    "(wsync-ed25519:...) to accept"},
	{"known-hubs", OPT_KNOWN_HUBS, "FILE", "pull: pinned publisher keys (default "
	    "~/.config/wsync/known_hubs)"},
	{"accept-new-hub", OPT_ACCEPT_NEW, NULL, "pull: trust a publisher's key on first "
	    "use, adding it to the known hubs"},
	{"insecure", OPT_INSECURE, NULL, "allow plain stream sessions on TCP, and plain "
	    "HTTP beyond loopback"},
	{"array", OPT_ARRAY, "SPEC", "pull: REMOTE=CHILD:REF, a JSON array into a table"},
	{"follow", 'f', NULL, "pull: stay live instead of exiting up to date"},
	{"hold-deletes", OPT_HOLD, NULL, "pull: deletes wait for the application's confirmation"},
	{"events", 'e', NULL, "pull: print one JSON line per event on stdout"},
	{"exec", OPT_EXEC, "CMD", "pull: run CMD for each event (JSON on stdin)"},
	{"batch", OPT_BATCH, "ROWS", "pull: rows per ReplicateNext (default 1000)"},
	{"quiet", 'q', NULL, "do not report sessions and reconnects"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-replicate publish -d FILE -t TABLE [-c SPEC]... [--add] [--del] [-q]\n"
	    "                       [--compact] (-l ADDR... | --http ADDR | --stdio)\n"
	    "                       [--key FILE --authorized-keys FILE] [--insecure]\n"
	    "                       [--tls-cert FILE --tls-key FILE] [--http-tokens FILE]\n"
	    "                       [--http-max-body BYTES] [--http-timeout SECONDS]\n"
	    "wsync-replicate pull SOURCE -d FILE -t TABLE [-c SPEC]... [--array SPEC]...\n"
	    "                       [--add] [--del] [-feq] [--hold-deletes] [--exec CMD]\n"
	    "                       [--key FILE [--hub-key KEY | --known-hubs FILE |\n"
	    "                       --accept-new-hub]] [--insecure] [--http-token FILE]",
	.about = "Publish one table of a SQLite database, or replicate a published table\n"
	    "into a local one.  SOURCE is HOST:PORT, [IPv6]:PORT, unix:PATH,\n"
	    "exec:COMMAND (for example exec:'ssh host wsync-replicate publish --stdio\n"
	    "-d app.db -t users'), - (stdin/stdout) or an http:// or https:// URL.\n"
	    "The replicator keeps the publisher's guid and usn in its database and\n"
	    "resumes from them; without -f it exits 0 once the table is up to date.\n"
	    "A refused right exits 77.\n\n"
	    "With --key, a stream session is authenticated and encrypted: the\n"
	    "publisher takes the replicators in --authorized-keys, with the rights\n"
	    "(read, or write to send changes up) of the first glob matching TABLE;\n"
	    "the replicator takes the publisher's key given with --hub-key or pinned\n"
	    "for SOURCE in the known hubs.  On TCP both sides need --key, unless\n"
	    "--insecure; unix sockets, stdio and exec: may be plain.\n\n"
	    "Over HTTP the keys do not apply.  Plain HTTP listens on loopback only\n"
	    "(unless --insecure); --tls-cert and --tls-key serve HTTPS.  An HTTP\n"
	    "client is anonymous and may only read, unless it sends a bearer token\n"
	    "(pull --http-token) listed in --http-tokens with the right to write;\n"
	    "with --http-tokens every request needs a token.",
	.opts = opts,
	.operands = "verb:publish,pull",
};

static int events_out;
static const char *exec_cmd;
static int progress_shown;

static void ready(void *cd, const char *const *bound, size_t n)
{
	size_t i;

	(void)cd;
	for (i = 0; i < n; i++)
		if (!cli_quiet)
			cli_warn("listening on %s", bound[i]);
}

/* Run --exec CMD with the event on stdin and in the environment. */
static int run_exec(const char *name, const char *json)
{
	int p[2], status;
	pid_t pid;
	size_t len = strlen(json), off = 0;
	ssize_t w;

	if (pipe(p) < 0)
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		signal(SIGXFSZ, SIG_DFL);
		if (dup2(p[0], 0) < 0)
			_exit(127);
		close(p[0]);
		close(p[1]);
		setenv("WSYNC_EVENT", name, 1);
		setenv("WSYNC_EVENT_JSON", json, 1);
		execl("/bin/sh", "sh", "-c", exec_cmd, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	while (off < len && (w = write(p[1], json + off, len - off)) > 0)
		off += (size_t)w;
	if (write(p[1], "\n", 1) < 0) {
		/* the command did not read its stdin: fine */
	}
	close(p[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		cli_warn("--exec for event '%s' failed", name);
		return -1;
	}
	return 0;
}

static int on_event(void *cd, const char *name, const char *json)
{
	(void)cd;
	if (progress_shown) {
		fputc('\n', stderr);
		progress_shown = 0;
	}
	if (events_out) {
		printf("%s\n", json);
		if (fflush(stdout) != 0)
			return -1;
	}
	return exec_cmd ? run_exec(name, json) : 0;
}

static void on_progress(void *cd, uint64_t rows, uint64_t total, uint64_t ms)
{
	double rate = ms ? (double)rows * 1000.0 / (double)ms : 0;

	(void)cd;
	if (total && rows < total && rate > 0)
		fprintf(stderr, "\r%s: %llu of %llu rows, %.0f rows/s, ETA %.0f s   ",
		    cli_name(), (unsigned long long)rows, (unsigned long long)total, rate,
		    (double)(total - rows) / rate);
	else
		fprintf(stderr, "\r%s: %llu rows, %.0f rows/s   ", cli_name(),
		    (unsigned long long)rows, rate);
	progress_shown = 1;
}

static void add_spec(struct ws_replicate_col **v, size_t *n, char *arg)
{
	char err[WS_ERRLEN];

	if (!(*v = realloc(*v, (*n + 1) * sizeof(**v))))
		cli_die(EX_SOFTWARE, "out of memory");
	if (ws_replicate_parse_column(arg, &(*v)[*n], err)) {
		cli_warn("%s", err);
		cli_usage(&cli);
	}
	(*n)++;
}

int main(int argc, char **argv)
{
	struct ws_replicate_pub_opts po = {.stop = &cli_stop, .log = cli_log_line,
	    .ready = ready};
	struct ws_replicate_pull_opts ro = {.stop = &cli_stop, .log = cli_log_line};
	struct ws_replicate_col *cols = NULL;
	struct ws_replicate_array *arrays = NULL;
	const char **listen = NULL, *arg, *verb, *db = NULL, *table = NULL;
	const char *http = NULL;
	char err[WS_ERRLEN] = "", *end;
	size_t ncols = 0, narrays = 0, nlisten = 0;
	int ch, rc, add = 0, del = 0, use_stdio = 0, follow = 0, hold = 0;
	int pull_only = 0, compact = 0, insecure = 0, tcp = 0;
	unsigned long batch = 0;
	const char *keypath = NULL, *akpath = NULL, *tokpath = NULL, *mytok = NULL;
	const char *tls_cert = NULL, *tls_key = NULL;
	unsigned long max_body = 0;
	unsigned http_timeout = 0;
	struct ws_keypair key;
	struct ws_authkeys ak = {0}, tokens = {0};
	char token[WS_REPLICATE_TOKEN_MAX + 1] = "";
	char khpath[CLI_PATHMAX];
	size_t i;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'd': db = arg; break;
		case 't': table = arg; break;
		case 'c': add_spec(&cols, &ncols, (char *)arg); break;
		case OPT_ADD: add = 1; break;
		case OPT_DEL: del = 1; break;
		case 'l':
			if (!(listen = realloc(listen, (nlisten + 1) * sizeof(*listen))))
				cli_die(EX_SOFTWARE, "out of memory");
			listen[nlisten++] = arg;
			break;
		case OPT_STDIO: use_stdio = 1; break;
		case OPT_HTTP: http = arg; break;
		case OPT_COMPACT: compact = 1; break;
		case OPT_ARRAY:
			if (!(arrays = realloc(arrays, (narrays + 1) * sizeof(*arrays))))
				cli_die(EX_SOFTWARE, "out of memory");
			if (ws_replicate_parse_array((char *)arg, &arrays[narrays++], err)) {
				cli_warn("%s", err);
				cli_usage(&cli);
			}
			pull_only = 1;
			break;
		case 'f': follow = 1; pull_only = 1; break;
		case OPT_HOLD: hold = 1; pull_only = 1; break;
		case 'e': events_out = 1; pull_only = 1; break;
		case OPT_EXEC: exec_cmd = arg; pull_only = 1; break;
		case OPT_BATCH:
			batch = strtoul(arg, &end, 10);
			if (*end || end == arg || arg[0] == '-' || batch == 0 || batch > 10000)
				cli_die(EX_USAGE, "bad --batch '%s': want 1 to 10000", arg);
			pull_only = 1;
			break;
		case 'q': cli_quiet = 1; break;
		case OPT_KEY: keypath = arg; break;
		case OPT_AUTHKEYS: akpath = arg; break;
		case OPT_INSECURE: insecure = 1; break;
		case OPT_HUB_KEY:
			if (ws_key_arg(ro.pub_key, arg, err))
				cli_die(EX_USAGE, "bad --hub-key: %s", err);
			ro.has_pub_key = 1;
			pull_only = 1;
			break;
		case OPT_KNOWN_HUBS: ro.known_hubs = arg; pull_only = 1; break;
		case OPT_ACCEPT_NEW: ro.accept_new_pub = 1; pull_only = 1; break;
		case OPT_TLS_CERT: tls_cert = arg; break;
		case OPT_TLS_KEY: tls_key = arg; break;
		case OPT_HTTP_TOKENS: tokpath = arg; break;
		case OPT_HTTP_MAX_BODY:
			max_body = strtoul(arg, &end, 10);
			if (*end || end == arg || arg[0] == '-' || max_body < 1024 ||
			    max_body > (1ul << 30))
				cli_die(EX_USAGE, "bad --http-max-body '%s': want 1024 to "
				    "1073741824 bytes", arg);
			break;
		case OPT_HTTP_TIMEOUT:
			http_timeout = cli_seconds("--http-timeout", arg) / 1000u;
			break;
		case OPT_HTTP_TOKEN: mytok = arg; pull_only = 1; break;
		}
	}
	if (optind >= argc) {
		cli_warn("missing verb: publish or pull");
		cli_usage(&cli);
	}
	verb = argv[optind++];
	if (strcmp(verb, "publish") != 0 && strcmp(verb, "pull") != 0) {
		cli_warn("unknown verb '%s': want publish or pull", verb);
		cli_usage(&cli);
	}
	if (!db || !table) {
		cli_warn("missing %s", !db ? "--db FILE" : "--table TABLE");
		cli_usage(&cli);
	}
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (strcmp(verb, "publish") == 0) {
		if (pull_only) {
			cli_warn("--array, --follow, --hold-deletes, --events, --exec, "
			    "--batch, --hub-key, --known-hubs, --accept-new-hub and "
			    "--http-token go with pull");
			cli_usage(&cli);
		}
		if (!keypath != !akpath) {
			cli_warn(keypath ? "--key needs --authorized-keys" :
			    "--authorized-keys needs --key");
			cli_usage(&cli);
		}
		if (optind < argc) {
			cli_warn("unexpected operand '%s'", argv[optind]);
			cli_usage(&cli);
		}
		if (!nlisten && !http && !use_stdio) {
			cli_warn("nothing to serve: give -l ADDR, --http ADDR or --stdio");
			cli_usage(&cli);
		}
		if (use_stdio && (nlisten || http)) {
			cli_warn("--stdio serves one session: no -l or --http with it");
			cli_usage(&cli);
		}
		if (keypath && !nlisten && !use_stdio) {
			cli_warn("--key protects stream sessions (-l or --stdio); HTTP has "
			    "--tls-cert, --tls-key and --http-tokens");
			cli_usage(&cli);
		}
		if (!http && (tls_cert || tls_key || tokpath || max_body || http_timeout)) {
			cli_warn("--tls-cert, --tls-key, --http-tokens, --http-max-body and "
			    "--http-timeout go with --http");
			cli_usage(&cli);
		}
		if (!tls_cert != !tls_key) {
			cli_warn(tls_cert ? "--tls-cert needs --tls-key" :
			    "--tls-key needs --tls-cert");
			cli_usage(&cli);
		}
		for (i = 0; i < nlisten; i++)
			tcp |= strncmp(listen[i], "unix:", 5) != 0;
		if (tcp && !keypath && !insecure)
			cli_die(EX_CONFIG, "listening on TCP needs --key FILE and "
			    "--authorized-keys FILE (make a key with wsync-keygen -f FILE), "
			    "or --insecure for plain sessions");
		if (keypath) {
			if ((rc = ws_keypair_load(&key, keypath, err)) ||
			    (rc = ws_authkeys_load(&ak, akpath, err)))
				cli_die(ws_exitcode(rc), "%s", err);
			po.key = &key;
			po.authkeys = &ak;
		}
		if (tokpath) {
			if ((rc = ws_replicate_tokens_load(&tokens, tokpath, err)))
				cli_die(ws_exitcode(rc), "%s", err);
			po.http_tokens = &tokens;
		}
		po.tls_cert = tls_cert;
		po.tls_key = tls_key;
		po.http_max_body = max_body;
		po.http_timeout = http_timeout;
		po.insecure = insecure;
		po.db = db;
		po.table = table;
		po.cols = cols;
		po.ncols = ncols;
		po.add = add;
		po.del = del;
		po.listen = listen;
		po.nlisten = nlisten;
		po.http = http;
		po.use_stdio = use_stdio;
		po.compact = compact;
		rc = ws_replicate_publish(&po, err);
	} else {
		if (nlisten || http || use_stdio || compact || tls_cert || tls_key ||
		    tokpath || max_body || http_timeout) {
			cli_warn("-l, --http, --stdio, --compact, --tls-cert, --tls-key, "
			    "--http-tokens, --http-max-body and --http-timeout go with "
			    "publish");
			cli_usage(&cli);
		}
		if (akpath) {
			cli_warn("--authorized-keys goes with publish");
			cli_usage(&cli);
		}
		if (optind >= argc) {
			cli_warn("missing SOURCE");
			cli_usage(&cli);
		}
		ro.source = argv[optind++];
		if (optind < argc) {
			cli_warn("unexpected operand '%s'", argv[optind]);
			cli_usage(&cli);
		}
		if (events_out && strcmp(ro.source, "-") == 0) {
			cli_warn("--events would write into the connection on stdout");
			cli_usage(&cli);
		}
		if ((ro.has_pub_key || ro.accept_new_pub || ro.known_hubs) && !keypath) {
			cli_warn("--hub-key, --known-hubs and --accept-new-hub go with --key");
			cli_usage(&cli);
		}
		if (strncasecmp(ro.source, "http://", 7) == 0 ||
		    strncasecmp(ro.source, "https://", 8) == 0) {
			if (keypath || insecure) {
				cli_warn("--key and --insecure go with a stream SOURCE; over "
				    "HTTP use https:// and --http-token");
				cli_usage(&cli);
			}
		} else if (mytok) {
			cli_warn("--http-token goes with an http:// or https:// SOURCE");
			cli_usage(&cli);
		} else if (!keypath && !insecure && strchr(ro.source, ':') &&
		    strncmp(ro.source, "unix:", 5) != 0 &&
		    strncmp(ro.source, "exec:", 5) != 0) {
			cli_die(EX_CONFIG, "a publisher on TCP needs --key FILE (make one "
			    "with wsync-keygen -f FILE), or --insecure for a plain session");
		}
		if (keypath && !ro.has_pub_key && !ro.known_hubs)
			ro.known_hubs = cli_known_hubs(khpath);
		if (keypath) {
			if ((rc = ws_keypair_load(&key, keypath, err)))
				cli_die(ws_exitcode(rc), "%s", err);
			ro.key = &key;
		}
		if (mytok) {
			if ((rc = ws_replicate_token_read(token, mytok, err)))
				cli_die(ws_exitcode(rc), "%s", err);
			ro.http_token = token;
		}
		ro.db = db;
		ro.table = table;
		ro.cols = cols;
		ro.ncols = ncols;
		ro.arrays = arrays;
		ro.narrays = narrays;
		ro.add = add;
		ro.del = del;
		ro.follow = follow;
		ro.hold_deletes = hold;
		ro.batch = (unsigned)batch;
		if (events_out || exec_cmd)
			ro.event = on_event;
		if (isatty(2)) {
			ro.progress = on_progress;
		}
		rc = ws_replicate_pull(&ro, err);
		if (progress_shown)
			fputc('\n', stderr);
	}
	if (keypath)
		ws_keypair_wipe(&key);
	ws_authkeys_release(&ak);
	ws_authkeys_release(&tokens);
	sodium_memzero(token, sizeof(token));
	free(cols);
	free(arrays);
	free(listen);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	return 0;
}
