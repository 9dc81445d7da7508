#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages the benchmarks run against, if any are
# missing: rsync, sqldiff (sqlite3-tools), the sqlite3 shell and jq.
# Quiet when everything is there (tests/deps.sh does the work).
exec sh "$(dirname "$0")/../tests/deps.sh" rsync sqlite3-tools sqlite3 jq
