/* SPDX-License-Identifier: MIT */
/*
 * wsync.h - everything in libwsync.  Include this, or single modules.
 */
#ifndef WSYNC_WSYNC_H
#define WSYNC_WSYNC_H

#define WSYNC_VERSION "0.1.0"

#include "error.h"
#include "buf.h"
#include "escape.h"
#include "crc32c.h"
#include "frame.h"
#include "vclock.h"
#include "delta.h"
#include "schema.h"
#include "json.h"
#include "stream.h"
#include "store.h"
#include "loop.h"
#include "transport.h"
#include "secure.h"
#include "session.h"
#include "hub.h"
#include "site.h"
#include "inspect.h"
#include "replicate.h"

/*
 * Initialise the dependencies that need it (libsodium).  Safe to call
 * more than once; call before any other function.  0 or WS_EINTERNAL.
 */
int ws_init(void) WS_MUST_CHECK;

#endif
