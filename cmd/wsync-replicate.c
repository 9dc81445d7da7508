/* SPDX-License-Identifier: MIT */
/*
 * wsync-replicate - table publisher and replicator
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
	.synopsis = "wsync-replicate publish --db FILE --table T [options]\nwsync-replicate pull SOURCE --db FILE --table LOCAL [options]",
	.about = "Table publisher and replicator with guid/usn resume.\n\nNOT IMPLEMENTED YET: replication arrives with issue 5.  This build only\nprints its usage and exits 64.",
	.opts = opts,
	.operands = "",
};

int main(int argc, char **argv)
{
	const char *arg;

	while (cli_next(&cli, argc, argv, &arg) != -1)
		;
	cli_warn("not implemented yet: %s", "replication arrives with issue 5");
	cli_usage(&cli);
}
