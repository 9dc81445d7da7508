/* SPDX-License-Identifier: MIT */
/*
 * wsync-serve - the hub
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
	.synopsis = "wsync-serve [-l ADDR]... [-d DATADIR] [--stdio] [--create] [--log FILE]",
	.about = "The wsync hub: sites connect to it in a star; it stores every change and\nforwards it to the other sites of each working set.\n\nNOT IMPLEMENTED YET: the hub arrives with issue 4.  This build only prints\nits usage and exits 64.",
	.opts = opts,
	.operands = "",
};

int main(int argc, char **argv)
{
	const char *arg;

	while (cli_next(&cli, argc, argv, &arg) != -1)
		;
	cli_warn("not implemented yet: %s", "the hub arrives with issue 4");
	cli_usage(&cli);
}
