/* SPDX-License-Identifier: MIT */
/*
 * cli.c - option parsing, help, completion lists and messages for the
 * binaries.  The table in each tool is the only place its options are
 * written down: --help and --list-options (which the bash and zsh
 * completions call) are both generated from it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "wsync/wsync.h"

#define OPT_LIST_OPTIONS 0x7fff0001
#define MAX_OPTS 64

static const struct cli_opt common[] = {
	{"help", 'h', NULL, "print this help and exit"},
	{"version", 'V', NULL, "print the version and exit"},
	{0}
};

const char *cli_name(void)
{
	return program_invocation_short_name;
}

const char *cli_strerror(int e)
{
	static char buf[64];

	return ws_errno_text(e, buf);
}

volatile sig_atomic_t cli_stop;
int cli_quiet;

static void on_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

void cli_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Past a file-size limit (ulimit -f) a write fails with EFBIG and is
	 * reported, instead of the signal killing us mid-transaction. */
	signal(SIGXFSZ, SIG_IGN);
}

void cli_log_line(void *clientData, const char *line)
{
	(void)clientData;
	if (!cli_quiet)
		cli_warn("%s", line);
}

unsigned long long cli_number(const char *opt, const char *arg, unsigned long long min,
    unsigned long long max, const char *unit)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno || *end || end == arg || arg[0] == '-' || v < min || v > max)
		cli_die(EX_USAGE, "bad %s '%s': want %llu to %llu%s%s", opt, arg, min,
		    max, unit ? " " : "", unit ? unit : "");
	return v;
}

unsigned cli_seconds(const char *opt, const char *arg)
{
	return (unsigned)cli_number(opt, arg, 1, 86400, "seconds") * 1000u;
}

size_t cli_size(const char *opt, const char *arg, unsigned long long max)
{
	return (size_t)cli_number(opt, arg, 1, max, NULL);
}

void cli_site_set(const struct cli *c, const char *arg, struct ws_site_set *set)
{
	size_t n;
	int rc = ws_site_set_parse(arg, &n, &set->path);

	if (rc == WS_EINVAL) {
		cli_warn("bad operand '%s': want WSID=DBFILE", arg);
		cli_usage(c);
	}
	if (rc) {
		cli_warn("bad working-set id '%.*s': want letters, digits, '.', '_' or "
		    "'-'", (int)n, arg);
		cli_usage(c);
	}
	if (!(set->wsid = strndup(arg, n)))
		cli_die(EX_SOFTWARE, "out of memory");
}

void cli_check_keys(const char *addr, int listening, int keyed, int insecure,
    const char *peer)
{
	char err[WS_ERRLEN];
	int rc;

	if ((rc = ws_transport_check_keys_for(addr, listening, keyed, insecure, peer,
	    err)))
		cli_die(ws_exitcode(rc), "%s", err);
}

void cli_listen_keys(const struct cli *c, const char *keypath, const char *akpath)
{
	if (!keypath != !akpath) {
		cli_warn(keypath ? "--key needs --authorized-keys" :
		    "--authorized-keys needs --key");
		cli_usage(c);
	}
}

void cli_hub_key(const char *arg, uint8_t *pk)
{
	char err[WS_ERRLEN] = "";

	if (ws_key_arg(pk, arg, err))
		cli_die(EX_USAGE, "bad --hub-key: %s", err);
}

const char *cli_hub_trust(const struct cli *c, const char *keypath, int has_hub_key,
    int accept_new, const char *known_hubs, char buf[CLI_PATHMAX])
{
	if ((has_hub_key || accept_new || known_hubs) && !keypath) {
		cli_warn("--hub-key, --known-hubs and --accept-new-hub go with --key");
		cli_usage(c);
	}
	if (keypath && !has_hub_key && !known_hubs)
		return cli_known_hubs(buf);
	return known_hubs;
}

void cli_load_keys(const char *keypath, struct ws_keypair *key, const char *akpath,
    struct ws_authkeys *ak)
{
	char err[WS_ERRLEN] = "";
	int rc;

	if ((rc = ws_keypair_load(key, keypath, err)) ||
	    (akpath && (rc = ws_authkeys_load(ak, akpath, err))))
		cli_die(ws_exitcode(rc), "%s", err);
}

/*
 * One diagnostic line.  Messages quote names that came from the wire or
 * from a file (tables, SQL): they are escaped by ws_escape_str()
 * (escape.h), so no peer can drive the terminal or forge a log line.
 */
static void vmsg(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

static void vmsg(const char *fmt, va_list ap)
{
	char line[4096], esc[4 * sizeof(line)];

	fflush(stdout);
	vsnprintf(line, sizeof(line), fmt, ap);
	ws_escape_str(esc, sizeof(esc), line);
	fprintf(stderr, "%s: %s\n", cli_name(), esc);
}

void cli_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
}

noreturn void cli_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	exit(status);
}

static void print_synopsis(FILE *f, const struct cli *c)
{
	const char *s = c->synopsis, *nl;
	const char *lead = "usage: ";

	while (*s) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		fprintf(f, "%s%.*s\n", lead, (int)(nl - s), s);
		lead = "       ";
		s = *nl ? nl + 1 : nl;
	}
}

noreturn void cli_usage(const struct cli *c)
{
	print_synopsis(stderr, c);
	exit(EX_USAGE);
}

static void print_opt(FILE *f, const struct cli_opt *o)
{
	char left[64];
	int n;

	if (o->val > 0 && o->val < 256)
		n = snprintf(left, sizeof(left), "-%c, --%s", o->val, o->name);
	else
		n = snprintf(left, sizeof(left), "    --%s", o->name);
	if (o->arg && n > 0 && (size_t)n < sizeof(left))
		snprintf(left + n, sizeof(left) - (size_t)n, " %s", o->arg);
	fprintf(f, "  %-26s %s\n", left, o->help);
}

static void help(const struct cli *c)
{
	const struct cli_opt *o;

	print_synopsis(stdout, c);
	printf("\n%s\n\noptions:\n", c->about);
	for (o = c->opts; o->name; o++)
		print_opt(stdout, o);
	for (o = common; o->name; o++)
		print_opt(stdout, o);
	printf("\nSee %s(1).\n", cli_name());
}

/*
 * The verb of c ("verb:publish,pull") that s is, or that s starts with
 * followed by ": " when prefix is set; NULL if none.  Points into c.
 */
static const char *verb_is(const struct cli *c, const char *s, int prefix)
{
	const char *v, *e;
	size_t n;

	if (!c->operands || strncmp(c->operands, "verb:", 5) != 0)
		return NULL;
	for (v = c->operands + 5; *v; v = *e ? e + 1 : e) {
		e = v + strcspn(v, ",");
		n = (size_t)(e - v);
		if (n && strncmp(s, v, n) == 0 &&
		    (prefix ? strncmp(s + n, ": ", 2) == 0 : s[n] == '\0'))
			return v;
	}
	return NULL;
}

/* The first of argv's words that is a verb of c, or NULL. */
static const char *verb_of(const struct cli *c, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (verb_is(c, argv[i], 0))
			return argv[i];
	return NULL;
}

/*
 * One line per option, "--name" or "--name=ARG", then the short forms;
 * with verb, only the options that go with it.
 */
static void list_options(const struct cli *c, const char *verb)
{
	const struct cli_opt *tabs[] = {c->opts, common};
	const struct cli_opt *o;
	size_t t;

	for (t = 0; t < 2; t++)
		for (o = tabs[t]; o->name; o++) {
			/* "pull: ..." goes with pull alone. */
			if (verb && verb_is(c, o->help, 1) &&
			    (strncmp(o->help, verb, strlen(verb)) != 0 ||
			    strncmp(o->help + strlen(verb), ": ", 2) != 0))
				continue;
			printf("--%s%s%s\n", o->name, o->arg ? "=" : "",
			    o->arg ? o->arg : "");
			if (o->val > 0 && o->val < 256)
				printf("-%c%s%s\n", o->val, o->arg ? " " : "",
				    o->arg ? o->arg : "");
		}
	printf("operands %s\n", c->operands ? c->operands : "");
}

static void add(struct option *lo, size_t *n, char *so, size_t *sn,
    const struct cli_opt *o)
{
	lo[*n].name = o->name;
	lo[*n].has_arg = o->arg ? required_argument : no_argument;
	lo[*n].flag = NULL;
	lo[*n].val = o->val;
	(*n)++;
	if (o->val > 0 && o->val < 256) {
		so[(*sn)++] = (char)o->val;
		if (o->arg)
			so[(*sn)++] = ':';
	}
}

int cli_next(const struct cli *c, int argc, char **argv, const char **arg)
{
	static struct option lo[MAX_OPTS + 4];
	static char so[3 * MAX_OPTS + 8];
	static const struct cli *built;
	const struct cli_opt *o;
	size_t n = 0, sn = 0;
	int ch;

	if (built != c) {
		so[sn++] = ':'; /* report a missing argument as ':' */
		for (o = c->opts; o->name && n < MAX_OPTS; o++)
			add(lo, &n, so, &sn, o);
		for (o = common; o->name; o++)
			add(lo, &n, so, &sn, o);
		lo[n++] = (struct option){"list-options", no_argument, NULL,
		    OPT_LIST_OPTIONS};
		lo[n] = (struct option){0};
		so[sn] = '\0';
		built = c;
		opterr = 0;
	}
	ch = getopt_long(argc, argv, so, lo, NULL);
	*arg = optarg;
	switch (ch) {
	case 'h':
		help(c);
		exit(0);
	case 'V':
		printf("%s %s\n", cli_name(), WSYNC_VERSION);
		exit(0);
	case OPT_LIST_OPTIONS:
		list_options(c, verb_of(c, argc, argv));
		exit(0);
	case '?':
		if (strncmp(argv[optind - 1], "--", 2) == 0 &&
		    strchr(argv[optind - 1], '=') && optopt != 0)
			cli_warn("option '%.*s' takes no argument",
			    (int)strcspn(argv[optind - 1], "="), argv[optind - 1]);
		else if (optopt > 0 && optopt < 256)
			cli_warn("unknown option '-%c'", optopt);
		else
			cli_warn("unknown option '%s'", argv[optind - 1]);
		cli_usage(c);
	case ':':
		cli_warn("option '%s' needs an argument", argv[optind - 1]);
		cli_usage(c);
	default:
		return ch;
	}
}

const char *cli_known_hubs(char buf[CLI_PATHMAX])
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	if (xdg && *xdg)
		snprintf(buf, CLI_PATHMAX, "%s/wsync/known_hubs", xdg);
	else
		snprintf(buf, CLI_PATHMAX, "%s/.config/wsync/known_hubs", home ? home : ".");
	return buf;
}
