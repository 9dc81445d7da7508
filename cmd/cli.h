/* SPDX-License-Identifier: MIT */
/*
 * cli.h - what every wsync binary shares: one option table that feeds
 * getopt_long, --help and the shell completions; err(3)-like messages
 * prefixed "wsync-<name>: "; and the sysexits statuses.
 */
#ifndef WSYNC_CLI_H
#define WSYNC_CLI_H

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdnoreturn.h>
#include <sysexits.h>

/* Room for a path built by the helpers below. */
#define CLI_PATHMAX 4096

/*
 * One option.  `arg` names the argument (NULL for a flag).  In a tool
 * with verbs (operands "verb:..."), a help line that starts with a verb
 * and ": " ("pull: stay live") marks an option of that verb alone, as
 * --help shows it: "--list-options VERB" leaves it out for the other
 * verbs.  An option of several verbs says so in other words.
 */
struct cli_opt {
	const char *name;  /* long name without "--" */
	int val;           /* short letter, or a value >= 256 for long-only */
	const char *arg;   /* "FILE", or NULL */
	const char *help;  /* one line */
};

struct cli {
	const char *synopsis;      /* lines for "usage:", '\n'-separated */
	const char *about;         /* paragraph printed by --help */
	const struct cli_opt *opts;/* ends with a zeroed entry */
	const char *operands;      /* completion hint for operands: "file" or "" */
};

/*
 * Next option, getopt_long style: its val, or -1 after the last one
 * (then optind is the first operand; *arg gets the option's argument).
 * Handles -h/--help (stdout, exit 0), -V/--version (exit 0) and the
 * hidden --list-options (the completions' source; with a verb among the
 * operands, only the options that go with it), and exits 64 with a
 * message and the synopsis on an unknown option or a missing argument.
 */
int cli_next(const struct cli *c, int argc, char **argv, const char **arg);

/* Print the synopsis to stderr and exit 64 (EX_USAGE). */
noreturn void cli_usage(const struct cli *c);

/* "wsync-<name>: message" on stderr, then exit(status). */
noreturn void cli_die(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "wsync-<name>: message" on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* strerror(e) with its first letter lowercased, as messages want. */
const char *cli_strerror(int e);

/*
 * Parse a decimal number, min to max, for option opt; anything else
 * (a sign, blanks after it, overflow) exits 64 with "bad OPT 'ARG':
 * want MIN to MAX", followed by " UNIT" when unit is not NULL.
 */
unsigned long long cli_number(const char *opt, const char *arg, unsigned long long min,
    unsigned long long max, const char *unit);

/* Parse SECONDS (1 to 86400) for option opt into milliseconds; exit 64 if bad. */
unsigned cli_seconds(const char *opt, const char *arg);

/* Parse BYTES, 1 to max, for option opt ("--max-frame"); exit 64 if bad. */
size_t cli_size(const char *opt, const char *arg, unsigned long long max);

struct ws_site_set;
/*
 * An operand WSID=DBFILE (ws_site_set_parse()) into *set (set->wsid a
 * copy to free, set->path pointing into arg, so argv stays as given, for
 * ps(1)); a bad one is a usage error of c (exit 64).
 */
void cli_site_set(const struct cli *c, const char *arg, struct ws_site_set *set);

/*
 * The keys policy of the library (ws_transport_check_keys_for()) for
 * addr, asked before anything is opened: exit 78 with its message, which
 * names the other end peer ("hub", "publisher"; NULL when listening).
 */
void cli_check_keys(const char *addr, int listening, int keyed, int insecure,
    const char *peer);

/*
 * The key options, parsed and checked alike in every binary.  A listening
 * one (wsync-serve, publish) takes --key and --authorized-keys together
 * or neither: a usage error of c otherwise.
 */
void cli_listen_keys(const struct cli *c, const char *keypath, const char *akpath);
/* --hub-key KEY into pk[WS_KEY_PUBLICBYTES]; exit 64 if bad. */
void cli_hub_key(const char *arg, uint8_t *pk);
/*
 * A connecting one (wsync-join, pull): --hub-key, --known-hubs and
 * --accept-new-hub go with --key (a usage error of c otherwise).  The
 * known-hubs file to check: known_hubs; with a key but neither option,
 * the default (cli_known_hubs(), into buf); else NULL.
 */
const char *cli_hub_trust(const struct cli *c, const char *keypath, int has_hub_key,
    int accept_new, const char *known_hubs, char buf[CLI_PATHMAX]);
struct ws_keypair;
struct ws_authkeys;
/*
 * Load the secret key in keypath into *key and, when akpath is not NULL,
 * the authorized keys into *ak (the caller wipes and releases them);
 * exit with the library's status and message if either fails.
 */
void cli_load_keys(const char *keypath, struct ws_keypair *key, const char *akpath,
    struct ws_authkeys *ak);

/* Set by SIGINT and SIGTERM once cli_catch_signals() ran; SIGPIPE and SIGXFSZ
 * are ignored. */
extern volatile sig_atomic_t cli_stop;
void cli_catch_signals(void);

/* When set, cli_log_line() prints nothing. */
extern int cli_quiet;
/* A ws_log_fn that prints "wsync-<name>: line" on stderr. */
void cli_log_line(void *clientData, const char *line);

/*
 * The default known-hubs file into buf: $XDG_CONFIG_HOME/wsync/known_hubs,
 * or ~/.config/wsync/known_hubs when XDG_CONFIG_HOME is unset or empty.
 * Returns buf.
 */
const char *cli_known_hubs(char buf[CLI_PATHMAX]);

/* The tool's name, as shown in messages ("wsync-join"). */
const char *cli_name(void);

#endif
