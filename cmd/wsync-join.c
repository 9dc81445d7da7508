/* SPDX-License-Identifier: MIT */
/*
 * wsync-join - a site
 *
 * Not built yet: this binary only answers --help and --version and
 * otherwise prints its usage and exits 64, as its help says.
 */
#include <stdlib.h>

#include "cli.h"

static const struct cli_opt opts[] = {
	{0}
};

static const struct cli cli = {
	.synopsis = "wsync-join [options] HUB WSID=DBFILE...",
	.about = "A wsync site: syncs local SQLite databases with a hub over one connection\n(HOST:PORT, unix:PATH, exec:COMMAND or -).\n\nNOT IMPLEMENTED YET: sites arrive with issue 4.  This build only prints its\nusage and exits 64.",
	.opts = opts,
	.operands = "",
};

int main(int argc, char **argv)
{
	const char *arg;

	while (cli_next(&cli, argc, argv, &arg) != -1)
		;
	cli_warn("not implemented yet: %s", "sites arrive with issue 4");
	cli_usage(&cli);
}
