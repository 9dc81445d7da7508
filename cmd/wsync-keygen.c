/* SPDX-License-Identifier: MIT */
/*
 * wsync-keygen - make a key pair for a hub or a site, or show the public
 * key of one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "wsync/wsync.h"

enum { OPT_FORCE = 256 };

static const struct cli_opt opts[] = {
	{"file", 'f', "FILE", "write the secret key to FILE and the public key to FILE.pub"},
	{"comment", 'C', "TEXT", "a comment after the public key (default user@host)"},
	{"public", 'y', NULL, "print the public key of the secret key in FILE"},
	{"force", OPT_FORCE, NULL, "replace existing key files (a symbolic link is replaced, not followed)"},
	{"quiet", 'q', NULL, "print nothing but errors"},
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-keygen [-q] [--force] [-C TEXT] -f FILE\n"
	    "wsync-keygen -y -f FILE",
	.about = "Make a long-term Ed25519 key pair for a wsync hub or site: the secret\n"
	    "key in FILE (mode 0600) and the public key in FILE.pub, whose line\n"
	    "(wsync-ed25519:BASE64 and a comment) is also printed on stdout, ready\n"
	    "to paste into a hub's authorized keys or a site's --hub-key.  -y\n"
	    "prints the public key of an existing secret key.",
	.opts = opts,
	.operands = "",
};

int main(int argc, char **argv)
{
	const char *arg, *path = NULL, *comment = NULL;
	char err[WS_ERRLEN] = "", text[WS_KEY_TEXTMAX], who[256], host[128];
	struct ws_keypair kp;
	int ch, rc, show = 0, force = 0;

	while ((ch = cli_next(&cli, argc, argv, &arg)) != -1) {
		switch (ch) {
		case 'f': path = arg; break;
		case 'C': comment = arg; break;
		case 'y': show = 1; break;
		case OPT_FORCE: force = 1; break;
		case 'q': cli_quiet = 1; break;
		}
	}
	if (optind < argc) {
		cli_warn("unexpected operand '%s'", argv[optind]);
		cli_usage(&cli);
	}
	if (!path) {
		cli_warn("missing -f FILE");
		cli_usage(&cli);
	}
	if (show && (comment || force)) {
		cli_warn("-y takes only -f FILE");
		cli_usage(&cli);
	}
	if (ws_init())
		cli_die(EX_SOFTWARE, "cannot initialise libsodium");
	if (show) {
		if ((rc = ws_keypair_load(&kp, path, err)))
			cli_die(ws_exitcode(rc), "%s", err);
		ws_key_text(kp.pk, text);
		ws_keypair_wipe(&kp);
		printf("%s\n", text);
		return fflush(stdout) ? EX_IOERR : 0;
	}
	if (!comment) {
		const char *user = getenv("USER");

		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = 0;
		snprintf(who, sizeof(who), "%s@%s", user && *user ? user : "wsync", host);
		comment = who;
	}
	if (strchr(comment, '\n'))
		cli_die(EX_USAGE, "a comment is one line");
	ws_keypair_generate(&kp);
	rc = ws_keypair_save(&kp, path, comment, force, err);
	ws_key_text(kp.pk, text);
	ws_keypair_wipe(&kp);
	if (rc)
		cli_die(ws_exitcode(rc), "%s", err);
	if (!cli_quiet)
		printf("%s %s\n", text, comment);
	return fflush(stdout) ? EX_IOERR : 0;
}
