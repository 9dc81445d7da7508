/* SPDX-License-Identifier: MIT */
/*
 * wsync-replicate - publish a table, or replicate one into a local table.
 *
 * In git's builtin style: main() parses the one option table (which also
 * feeds --help and the completions) into struct args, then runs the
 * verb's command, cmd_publish() or cmd_pull().  An option's help that
 * starts "publish: " or "pull: " makes it that verb's alone; given to
 * the other verb, it is a usage error.
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

/* Everything the command line gave; each verb takes its own. */
struct args {
	const char *db, *table;
	struct ws_replicate_col *cols;
	size_t ncols;
	int add, del, insecure;
	const char *keypath;
	/* publish */
	const char **listen;
	size_t nlisten;
	int use_stdio, compact;
	const char *http, *tls_cert, *tls_key, *tokpath, *akpath;
	size_t max_body;
	unsigned http_timeout;
	/* pull */
	struct ws_replicate_array *arrays;
	size_t narrays;
	int follow, hold, has_hub_key, accept_new;
	uint8_t hub_key[WS_KEY_PUBLICBYTES];
	const char *known_hubs, *mytok;
	unsigned batch;
	/* what both verbs' runs hold, wiped and freed by main() */
	struct ws_keypair key;
	struct ws_authkeys ak, tokens;
	char token[WS_REPLICATE_TOKEN_MAX + 1];
	unsigned char seen[OPT_HTTP_TIMEOUT + 1]; /* options given, by value */
};

/* Parse one option into a. */
static void take_opt(struct args *a, int ch, const char *arg)
{
	char err[WS_ERRLEN] = "";

	a->seen[ch] = 1;
	switch (ch) {
	case 'd': a->db = arg; break;
	case 't': a->table = arg; break;
	case 'c': add_spec(&a->cols, &a->ncols, (char *)arg); break;
	case OPT_ADD: a->add = 1; break;
	case OPT_DEL: a->del = 1; break;
	case 'l':
		if (!(a->listen = realloc(a->listen, (a->nlisten + 1) * sizeof(*a->listen))))
			cli_die(EX_SOFTWARE, "out of memory");
		a->listen[a->nlisten++] = arg;
		break;
	case OPT_STDIO: a->use_stdio = 1; break;
	case OPT_HTTP: a->http = arg; break;
	case OPT_COMPACT: a->compact = 1; break;
	case OPT_ARRAY:
		if (!(a->arrays = realloc(a->arrays, (a->narrays + 1) * sizeof(*a->arrays))))
			cli_die(EX_SOFTWARE, "out of memory");
		if (ws_replicate_parse_array((char *)arg, &a->arrays[a->narrays++], err)) {
			cli_warn("%s", err);
			cli_usage(&cli);
		}
		break;
	case 'f': a->follow = 1; break;
	case OPT_HOLD: a->hold = 1; break;
	case 'e': events_out = 1; break;
	case OPT_EXEC: exec_cmd = arg; break;
	case OPT_BATCH: a->batch = (unsigned)cli_size("--batch", arg, 10000); break;
	case 'q': cli_quiet = 1; break;
	case OPT_KEY: a->keypath = arg; break;
	case OPT_AUTHKEYS: a->akpath = arg; break;
	case OPT_INSECURE: a->insecure = 1; break;
	case OPT_HUB_KEY:
		cli_hub_key(arg, a->hub_key);
		a->has_hub_key = 1;
		break;
	case OPT_KNOWN_HUBS: a->known_hubs = arg; break;
	case OPT_ACCEPT_NEW: a->accept_new = 1; break;
	case OPT_TLS_CERT: a->tls_cert = arg; break;
	case OPT_TLS_KEY: a->tls_key = arg; break;
	case OPT_HTTP_TOKENS: a->tokpath = arg; break;
	case OPT_HTTP_MAX_BODY:
		a->max_body = (size_t)cli_number("--http-max-body", arg, 1024, 1ul << 30,
		    "bytes");
		break;
	case OPT_HTTP_TIMEOUT:
		a->http_timeout = cli_seconds("--http-timeout", arg) / 1000u;
		break;
	case OPT_HTTP_TOKEN: a->mytok = arg; break;
	}
}

/* Was an option of verb alone (its help "VERB: ...") given, but `except`? */
static int given_for(const struct args *a, const char *verb, int except)
{
	const struct cli_opt *o;
	size_t n = strlen(verb);

	for (o = opts; o->name; o++)
		if (o->val != except && a->seen[o->val] && strncmp(o->help, verb, n) == 0 &&
		    strncmp(o->help + n, ": ", 2) == 0)
			return 1;
	return 0;
}

/* No operand left after the verb's own. */
static void no_more(int argc, char **argv)
{
	if (optind < argc) {
		cli_warn("unexpected operand '%s'", argv[optind]);
		cli_usage(&cli);
	}
}

static int cmd_publish(struct args *a, int argc, char **argv, char *err)
{
	struct ws_replicate_pub_opts po = {.stop = &cli_stop, .log = cli_log_line,
	    .ready = ready};
	size_t i;
	int rc;

	cli_listen_keys(&cli, a->keypath, a->akpath);
	no_more(argc, argv);
	if (!a->nlisten && !a->http && !a->use_stdio) {
		cli_warn("nothing to serve: give -l ADDR, --http ADDR or --stdio");
		cli_usage(&cli);
	}
	if (a->use_stdio && (a->nlisten || a->http)) {
		cli_warn("--stdio serves one session: no -l or --http with it");
		cli_usage(&cli);
	}
	if (a->keypath && !a->nlisten && !a->use_stdio) {
		cli_warn("--key protects stream sessions (-l or --stdio); HTTP has "
		    "--tls-cert, --tls-key and --http-tokens");
		cli_usage(&cli);
	}
	if (!a->http && (a->tls_cert || a->tls_key || a->tokpath || a->max_body ||
	    a->http_timeout)) {
		cli_warn("--tls-cert, --tls-key, --http-tokens, --http-max-body and "
		    "--http-timeout go with --http");
		cli_usage(&cli);
	}
	if (!a->tls_cert != !a->tls_key) {
		cli_warn(a->tls_cert ? "--tls-cert needs --tls-key" :
		    "--tls-key needs --tls-cert");
		cli_usage(&cli);
	}
	for (i = 0; i < a->nlisten; i++)
		cli_check_keys(a->listen[i], 1, a->keypath != NULL, a->insecure, NULL);
	if (a->keypath) {
		cli_load_keys(a->keypath, &a->key, a->akpath, &a->ak);
		po.key = &a->key;
		po.authkeys = &a->ak;
	}
	if (a->tokpath) {
		if ((rc = ws_replicate_tokens_load(&a->tokens, a->tokpath, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		po.http_tokens = &a->tokens;
	}
	po.tls_cert = a->tls_cert;
	po.tls_key = a->tls_key;
	po.http_max_body = a->max_body;
	po.http_timeout = a->http_timeout;
	po.insecure = a->insecure;
	po.db = a->db;
	po.table = a->table;
	po.cols = a->cols;
	po.ncols = a->ncols;
	po.add = a->add;
	po.del = a->del;
	po.listen = a->listen;
	po.nlisten = a->nlisten;
	po.http = a->http;
	po.use_stdio = a->use_stdio;
	po.compact = a->compact;
	return ws_replicate_publish(&po, err);
}

static int cmd_pull(struct args *a, int argc, char **argv, char *err)
{
	struct ws_replicate_pull_opts ro = {.stop = &cli_stop, .log = cli_log_line};
	char khpath[CLI_PATHMAX];
	int rc;

	if (a->akpath) {
		cli_warn("--authorized-keys goes with publish");
		cli_usage(&cli);
	}
	if (optind >= argc) {
		cli_warn("missing SOURCE");
		cli_usage(&cli);
	}
	ro.source = argv[optind++];
	no_more(argc, argv);
	if (events_out && strcmp(ro.source, "-") == 0) {
		cli_warn("--events would write into the connection on stdout");
		cli_usage(&cli);
	}
	ro.known_hubs = cli_hub_trust(&cli, a->keypath, a->has_hub_key, a->accept_new,
	    a->known_hubs, khpath);
	if (strncasecmp(ro.source, "http://", 7) == 0 ||
	    strncasecmp(ro.source, "https://", 8) == 0) {
		if (a->keypath || a->insecure) {
			cli_warn("--key and --insecure go with a stream SOURCE; over "
			    "HTTP use https:// and --http-token");
			cli_usage(&cli);
		}
	} else if (a->mytok) {
		cli_warn("--http-token goes with an http:// or https:// SOURCE");
		cli_usage(&cli);
	} else {
		cli_check_keys(ro.source, 0, a->keypath != NULL, a->insecure, "publisher");
	}
	ro.has_pub_key = a->has_hub_key;
	memcpy(ro.pub_key, a->hub_key, sizeof(ro.pub_key));
	ro.accept_new_pub = a->accept_new;
	ro.insecure = a->insecure;
	if (a->keypath) {
		cli_load_keys(a->keypath, &a->key, NULL, NULL);
		ro.key = &a->key;
	}
	if (a->mytok) {
		if ((rc = ws_replicate_token_read(a->token, a->mytok, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		ro.http_token = a->token;
	}
	ro.db = a->db;
	ro.table = a->table;
	ro.cols = a->cols;
	ro.ncols = a->ncols;
	ro.arrays = a->arrays;
	ro.narrays = a->narrays;
	ro.add = a->add;
	ro.del = a->del;
	ro.follow = a->follow;
	ro.hold_deletes = a->hold;
	ro.batch = a->batch;
	if (events_out || exec_cmd)
		ro.event = on_event;
	if (isatty(2))
		ro.progress = on_progress;
	rc = ws_replicate_pull(&ro, err);
	if (progress_shown)
		fputc('\n', stderr);
	return rc;
}

/*
 * The verbs: each runs with the options parsed, after its operands, and
 * refuses the other verb's options (except one with a message of its own)
 * with `foreign`.
 */
static const struct verb {
	const char *name;
	int (*run)(struct args *a, int argc, char **argv, char *err);
	const char *other;         /* the other verb, whose options it refuses */
	int except;
	const char *foreign;
} verbs[] = {
	{"publish", cmd_publish, "pull", 0, "--array, --follow, --hold-deletes, --events, "
	    "--exec, --batch, --hub-key, --known-hubs, --accept-new-hub and --http-token "
	    "go with pull"},
	{"pull", cmd_pull, "publish", OPT_AUTHKEYS, "-l, --http, --stdio, --compact, "
	    "--tls-cert, --tls-key, --http-tokens, --http-max-body and --http-timeout go "
	    "with publish"},
};

int main(int argc, char **argv)
{
	static struct args a;
	const struct verb *v = NULL;
	const char *arg, *verb;
	char err[WS_ERRLEN] = "";
	size_t i;
	int ch, rc;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1)
		take_opt(&a, ch, arg);
	if (optind >= argc) {
		cli_warn("missing verb: publish or pull");
		cli_usage(&cli);
	}
	verb = argv[optind++];
	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verb, verbs[i].name) == 0)
			v = &verbs[i];
	if (!v) {
		cli_warn("unknown verb '%s': want publish or pull", verb);
		cli_usage(&cli);
	}
	if (!a.db || !a.table) {
		cli_warn("missing %s", !a.db ? "--db FILE" : "--table TABLE");
		cli_usage(&cli);
	}
	cli_catch_signals();
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (given_for(&a, v->other, v->except)) {
		cli_warn("%s", v->foreign);
		cli_usage(&cli);
	}
	rc = v->run(&a, argc, argv, err);
	if (a.keypath)
		ws_keypair_wipe(&a.key);
	ws_authkeys_release(&a.ak);
	ws_authkeys_release(&a.tokens);
	sodium_memzero(a.token, sizeof(a.token));
	free(a.cols);
	free(a.arrays);
	free(a.listen);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	return 0;
}
