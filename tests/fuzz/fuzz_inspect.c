/* SPDX-License-Identifier: MIT */
/*
 * fuzz_inspect.c - wsync-inspect's views (inspect.h) on hostile streams:
 * the first byte picks the mode (timeline, JSON, encode, stats, check)
 * and whether damage is salvaged; the rest is the input, a binary stream
 * or session log, or JSON lines, read from a memfd as a file would be.
 * Output goes to /dev/null.  Databases (inputs with SQLite's header) are
 * left out: they would fuzz SQLite's file format, not wsync.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "wsync/inspect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int devnull = -1;
	struct ws_inspect_opts o;
	const char *inputs[1];
	char path[64], err[WS_ERRLEN];
	int fd, rc;

	if (size < 1 || ws_inspect_is_database(data + 1, size - 1))
		return 0;
	if (devnull < 0)
		FUZZ_CHECK((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0);
	FUZZ_CHECK((fd = memfd_create("fuzz-inspect", MFD_CLOEXEC)) >= 0);
	FUZZ_CHECK(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ws_inspect_opts_init(&o);
	o.mode = WS_INSPECT_TIMELINE + data[0] % 5;
	o.flags = data[0] & 0x08 ? WS_INSPECT_SALVAGE : 0;
	o.flags |= data[0] & 0x10 ? WS_INSPECT_AS_JSON : 0;
	o.max = 1u << 20;
	o.out_fd = devnull;
	inputs[0] = path;
	rc = ws_inspect_run(&o, inputs, 1, err);
	FUZZ_CHECK(rc <= 0 && rc >= WS_ERROR_MIN);
	FUZZ_CHECK(rc != WS_EINTERNAL && rc != WS_EINVAL);
	close(fd);
	return 0;
}
