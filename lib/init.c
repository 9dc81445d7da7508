/* SPDX-License-Identifier: MIT */
/*
 * init.c - one-time initialisation of the dependencies that need it.
 */
#include <sodium.h>

#include "wsync/wsync.h"

int ws_init(void)
{
	/* sodium_init() is itself idempotent and thread-safe. */
	return sodium_init() < 0 ? WS_EINTERNAL : 0;
}
