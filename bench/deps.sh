#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages the benchmarks run against, if any are
# missing: rsync, sqldiff (sqlite3-tools), the sqlite3 shell and jq.
# Quiet when everything is there.
set -eu
pkgs="rsync sqlite3-tools sqlite3 jq"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "wsync bench: missing Debian packages:$missing (install them as root)" >&2
	exit 1
fi
echo "wsync bench: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
