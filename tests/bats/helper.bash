# SPDX-License-Identifier: MIT
# helper.bash - shared set-up for the bats tests of the wsync binaries.
#
# Every .bats file loads this first.  The binaries are found through
# WS_BIN (default: bin/ at the top of the tree), so the same suite runs
# against the sanitizer build too:
#
#     WS_BIN=build/asan/bin bats tests/bats

bats_require_minimum_version 1.5.0

load '/usr/lib/bats/bats-support/load.bash'
load '/usr/lib/bats/bats-assert/load.bash'

WS_BIN="${WS_BIN:-$BATS_TEST_DIRNAME/../../bin}"
# Absolute, so tests may cd anywhere.
if [ -d "$WS_BIN" ]; then
	WS_BIN="$(cd "$WS_BIN" && pwd)"
fi
export WS_BIN

# Every binary the suite covers.
WS_TOOLS="wsync-serve wsync-join wsync-replicate wsync-inspect wsync-keygen"
# The version the binaries report: the one the build defines, in wsync.h.
WS_VERSION=$(sed -n 's/^#define WSYNC_VERSION "\(.*\)"$/\1/p' \
    "$(dirname "${BASH_SOURCE[0]}")/../../include/wsync/wsync.h")
# Seconds the wait_* helpers wait before they fail; a suite may set more.
WAIT_S=${WAIT_S:-10}

# The binary must exist, or every test would fail with a confusing 127.
ws_need() {
	[ -x "$WS_BIN/$1" ] || fail "missing binary '$WS_BIN/$1' (run make, or set WS_BIN)"
}

# assert_stderr EXPECTED: $stderr (from run --separate-stderr) is exactly
# EXPECTED.  Like assert_output, bats has dropped trailing newlines.
assert_stderr() {
	assert_equal "$stderr" "$1"
}

# assert_stderr_empty: nothing at all on stderr.
assert_stderr_empty() {
	assert_equal "$stderr" ""
}

# assert_stderr_line N EXPECTED: line N (from 0) of stderr is EXPECTED.
assert_stderr_line() {
	assert_equal "${stderr_lines[$1]-<no line $1>}" "$2"
}

# assert_stderr_contains TEXT: TEXT occurs somewhere in stderr.
assert_stderr_contains() {
	if [[ "$stderr" != *"$1"* ]]; then
		batslib_print_kv_single_or_multi 8 'expected to contain' "$1" \
		    'stderr' "$stderr" | batslib_decorate 'stderr does not contain text' | fail
	fi
}

# ws_synopsis TOOL: the usage lines, as printed before the first blank
# line of --help (the same lines follow a usage error on stderr).
ws_synopsis() {
	"$WS_BIN/$1" --help | sed '/^$/,$d'
}

# hex FILE: the bytes of FILE as one line of lowercase hex digits.
hex() {
	od -An -v -tx1 "$1" | tr -d ' \n'
}

# jnorm FILE: each JSON line with sorted keys, compact.  Note that jq 1.6
# reads numbers as doubles, so tests that need 64-bit integers also
# compare bytes.
jnorm() {
	jq -S -c . "$1"
}

# run_to FILE CMD [ARG...]: like run --separate-stderr, but CMD's stdout
# goes to FILE (binary output cannot live in a shell variable).  $output
# is then always empty.
run_to() {
	local out=$1
	shift
	run --separate-stderr bash -c 'out=$1; shift; "$@" >"$out"' run_to "$out" "$@"
}

# unhex HEX: write the bytes that HEX spells to stdout.
unhex() {
	local h=$1 esc=''
	while [ -n "$h" ]; do
		esc+="\\x${h:0:2}"
		h=${h:2}
	done
	printf '%b' "$esc"
}

# flip_byte FILE OFFSET: invert every bit of the byte at OFFSET.
flip_byte() {
	local b
	b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
	[ -n "$b" ] || fail "flip_byte: no byte $2 in $1"
	printf '%b' "$(printf '\\x%02x' $((b ^ 255)))" |
	    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# --- background processes (the sync and log suites) -------------------------

# proc_teardown: stop every process spawn() started (TERM, then KILL after
# 5 s), fail on a sanitizer report, and show their stderr on failure.
proc_teardown() {
	local pid i
	[ -f "${T:-}/pids" ] || return 0
	while read -r pid; do
		[ -n "$pid" ] || continue
		kill -TERM "$pid" 2>/dev/null || continue
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	done <"$T/pids"
	# Under WS_BIN=build/asan/bin, a sanitizer report from a process in
	# the background fails the test too.
	if grep -lE 'AddressSanitizer|LeakSanitizer|runtime error:' "$T"/*.err 2>/dev/null; then
		BATS_TEST_COMPLETED=
		fail "a sanitizer reported an error: $(grep -hE -A20 'Sanitizer|runtime error:' "$T"/*.err)"
	fi
	# On failure, show what the background processes said.
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		for f in "$T"/*.err; do
			[ -e "$f" ] || continue
			printf -- '--- %s\n' "${f##*/}"
			cat "$f"
		done
	fi
}

# spawn NAME CMD [ARG...]: run CMD in the background, stdout to NAME.out
# and stderr to NAME.err; its pid goes in $PID and in the kill list.
# (fd 3 is closed, or bats would wait for the process.)
spawn() {
	local name=$1
	shift
	"$@" >"$T/$name.out" 2>"$T/$name.err" 3>&- &
	PID=$!
	echo "$PID" >>"$T/pids"
}

# reap PID: wait for PID (already told to stop) and forget it.  $REAPED
# is its exit status.
reap() {
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$1" 2>/dev/null && fail "process $1 did not exit within $WAIT_S s"
	REAPED=0
	wait "$1" || REAPED=$?
	sed -i "/^$1\$/d" "$T/pids"
}

# wait_lines FILE COUNT REGEX: wait until FILE has at least COUNT lines
# matching REGEX (grep -E).
wait_lines() {
	local i n=0
	for ((i = 0; i < WAIT_S * 10; i++)); do
		n=$(grep -cE -- "$3" "$1" 2>/dev/null) || true
		[ "${n:-0}" -ge "$2" ] && return 0
		sleep 0.1
	done
	fail "waited $WAIT_S s for $2 line(s) matching '$3' in ${1##*/}, saw ${n:-0}:
$(cat "$1" 2>/dev/null)"
}

# start_hub NAME [ARG...]: start wsync-serve ARG... as NAME (its stderr
# in $T/NAME.err) and wait for one "listening on" line per -l; with no
# -l among ARG, it listens on $SOCK.  $HUB_PID is its pid.
start_hub() {
	local name=$1 a nl=0
	shift
	for a in "$@"; do
		[ "$a" = -l ] && nl=$((nl + 1))
	done
	if [ "$nl" -eq 0 ]; then
		set -- -l "$SOCK" "$@"
		nl=1
	fi
	spawn "$name" "$WS_BIN/wsync-serve" "$@"
	HUB_PID=$PID
	wait_lines "$T/$name.err" "$nl" '^wsync-serve: listening on '
	kill -0 "$HUB_PID" 2>/dev/null || fail "the hub $name exited: $(cat "$T/$name.err")"
}

# ws_sanitized: whether $WS_BIN holds ASan builds (their memory figures
# include the sanitizer's quarantine, so peak memory means nothing there).
ws_sanitized() {
	grep -qa __asan_init "$WS_BIN/wsync-serve"
}

# --- databases, sites and hubs (the sync, log, gc and secure suites) -------

# sqlite3: the CLI, waiting up to 5 s for a lock a wsync process holds
# (as any application sharing the file should) instead of failing at once.
sqlite3() {
	command sqlite3 -cmd '.timeout 5000' "$@"
}

# sql DB SQL...: run SQL in DB with the sqlite3 CLI; failing is fatal.
sql() {
	sqlite3 -batch -bail "$@" || fail "sqlite3 $* failed"
}

# join ARG...: a one-shot wsync-join that must succeed silently.
join() {
	run --separate-stderr "$WS_BIN/wsync-join" "$@"
	assert_success
	assert_output ''
	assert_stderr_empty
}

# wait_sql DB SQL WANT: poll until SQL in DB prints WANT.
wait_sql() {
	local i got
	for ((i = 0; i < WAIT_S * 10; i++)); do
		got=$(sqlite3 "$1" "$2" 2>/dev/null) || true
		[ "$got" = "$3" ] && return 0
		sleep 0.1
	done
	fail "waited $WAIT_S s for '$2' in ${1##*/} to print '$3'; it prints '$got'"
}

# assert_integrity DB: PRAGMA integrity_check says ok.
assert_integrity() {
	assert_equal "$(sqlite3 "$1" 'PRAGMA integrity_check')" ok
}

# free_port: a TCP port on 127.0.0.1 nobody listens on (now).
free_port() {
	python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'
}

# make_site DB: a site database with a notes table and three rows.
make_site() {
	sql "$1" "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    INSERT INTO notes VALUES(1, 'one', 'first'), (2, 'two', NULL),
	    (3, 'three', x'00ff10')"
}
