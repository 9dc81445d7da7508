#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages wsync needs to build and test, if any are
# missing, or with arguments those packages (bench/deps.sh gives the
# benchmarks' peers).  Quiet when everything is there.
#
#     tests/deps.sh [PKG...]
set -eu
hint="run 'make deps' as root"
pkgs="gcc make pkg-config libsqlite3-dev libjansson-dev libsodium-dev
libcurl4-openssl-dev libmicrohttpd-dev bats bats-assert bats-support sqlite3 mandoc jq
python3 util-linux bsdutils rsync openssl clang-14 libclang-rt-14-dev valgrind
fossil parallel zsh"
if [ $# -gt 0 ]; then
	pkgs="$*"
	hint="install them as root"
fi
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
	    missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "wsync: missing Debian packages:$missing ($hint)" >&2
	exit 1
fi
echo "wsync: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
