#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 60-bad-input.bats - the bad-input catalogue: one case per class of bad
# input, each a directory of tests/bad-input/ holding its input and a
# file 'case' (shell variables, sourced here) that says where it goes
# and what must come out:
#
#   WHAT       the class, as the issue names it
#   VENUES     where it goes, any of:
#                inspect  wsync-inspect INPUT (after prepare() if the case
#                         has one; finish() after): exit STATUS, stderr
#                         exactly STDERR (stdout STDOUT when given), the
#                         input untouched;
#                hub      the bytes of INPUT to a hub (rawpeer.py, sent as
#                         HUB_SEND: file, or file-eof to close after them):
#                         the hub answers with an ERROR frame HUB_CODE and
#                         HUB_LOG, logs "PEER: HUB_LOG", drops only that
#                         peer and keeps its database sound;
#                join     wsync-join HUB notes=site.db after prepare() (and
#                         finish() after), with
#                         FSIZE_KB (ulimit -f) or NO_DAC (no permission
#                         override for root) when set: exit STATUS, stderr
#                         exactly STDERR, site.db sound and still holding
#                         SITE_ROWS (what SITE_QUERY prints, by default its
#                         rows with id >= 1000).  HUB_FSIZE_KB limits the
#                         hub's files (ulimit -f) in the hub and join venues.
#                replicate  the bytes of PUB_INPUT to a wsync-replicate
#                         publisher: it answers PUB_REPLY, logs "unix:
#                         PUB_LOG", ends only that session and a replicator
#                         still gets the table.
#   HUB_ABSENT_TABLE  a table the hub's database must not have afterwards.
#
# In the hub and join venues a hub runs with a follow site (a.db)
# connected; after the case, that site must still be connected (never
# reconnected), a row it writes must reach the hub, a new site must sync
# to the same data, and every database must pass PRAGMA integrity_check.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-15}
CASES="$BATS_TEST_DIRNAME/../bad-input"

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	SOCK="unix:$T/hub.sock"
	ws_need wsync-serve
	ws_need wsync-join
	ws_need wsync-inspect
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v python3 >/dev/null || fail "these tests need python3"
}

teardown() {
	proc_teardown
}

# join ARG...: a one-shot wsync-join that must succeed silently.
join() {
	run --separate-stderr "$WS_BIN/wsync-join" "$@"
	assert_success
	assert_stderr_empty
}

notes() {
	sqlite3 "$1" 'SELECT id, title, quote(body) FROM notes ORDER BY id'
}

# hold_lock DB SECONDS: another process takes DB's write lock and holds it
# (at most SECONDS); $LOCK_PID is that process.
hold_lock() {
	spawn lock python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))' "$1" "$2"
	LOCK_PID=$PID
	wait_lines "$T/lock.out" 1 '^locked$'
}

# hub_up: a hub on $SOCK and a follow site a.db connected to it.
hub_up() {
	local cmd=("$WS_BIN/wsync-serve" -l "$SOCK" -d hub --create)
	if [ -n "${HUB_FSIZE_KB:-}" ]; then
		cmd=(bash -c 'ulimit -f "$1"; shift; exec "$@"' fsize "$HUB_FSIZE_KB" "${cmd[@]}")
	fi
	spawn hub "${cmd[@]}"
	HUB_PID=$PID
	wait_lines "$T/hub.err" 1 '^wsync-serve: listening on '
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    INSERT INTO notes VALUES(1, 'one', 'first'), (2, 'two', NULL),
	    (3, 'three', x'00ff10')"
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	FA_PID=$PID
	wait_lines "$T/hub.err" 1 "joined working set 'notes'"
	wait_sql hub/notes.db 'SELECT count(*) FROM notes' 3
}

# hub_still_serves: the follow site is still connected and its writes
# reach the hub; a new site gets the same rows; the databases are sound.
hub_still_serves() {
	kill -0 "$HUB_PID" || fail "$WHAT: the hub died"
	kill -0 "$FA_PID" || fail "$WHAT: the follow site died"
	sql a.db "INSERT INTO notes VALUES(900, 'after', '$WHAT')"
	wait_sql hub/notes.db 'SELECT title FROM notes WHERE id = 900' after
	join "$SOCK" notes=b.db
	assert_equal "$(notes b.db)" "$(notes a.db)"
	run grep -c reconnecting fa.err
	assert_output 0
	assert_integrity hub/notes.db
	assert_integrity a.db
	assert_integrity b.db
}

# no_dac CMD...: CMD without root's permission override (CAP_DAC_*), so
# that file modes apply to it; as an ordinary user, CMD as it is.
no_dac() {
	if [ "$(id -u)" -eq 0 ]; then
		command -v setpriv >/dev/null || skip "needs setpriv (util-linux) to drop root's override"
		setpriv --bounding-set=-dac_override,-dac_read_search "$@"
	else
		"$@"
	fi
}

venue_inspect() {
	local cmd=("$WS_BIN/wsync-inspect" "$INPUT")
	if declare -F prepare >/dev/null; then
		prepare
	fi
	[ -z "${NO_DAC:-}" ] || cmd=(no_dac "${cmd[@]}")
	run --separate-stderr "${cmd[@]}"
	[ "$status" -eq "$STATUS" ] || fail "$WHAT: wsync-inspect exits $status, want $STATUS: $stderr"
	assert_stderr "$STDERR"
	[ -z "${STDOUT+x}" ] || assert_output "$STDOUT"
	if declare -F finish >/dev/null; then
		finish
	fi
	cmp -s "$INPUT" "$CASE_DIR/$INPUT" || fail "$WHAT: wsync-inspect changed its input"
}

venue_hub() {
	local peer_re='^wsync-serve: unix#[0-9]+: '
	hub_up
	run python3 "$BATS_TEST_DIRNAME/rawpeer.py" "$SOCK" "$HUB_SEND:$T/$INPUT"
	assert_success
	assert_line --index 1 closed
	assert_line "error $HUB_CODE $HUB_LOG"
	wait_lines hub.err 1 "${peer_re}disconnected\$"
	run grep -cE "${peer_re}disconnected\$" hub.err
	[ "$output" -ge 1 ] || fail "no disconnect"
	grep -qxE "${peer_re}$(printf '%s' "$HUB_LOG" | sed 's/[][\\.*^$()+?{}|]/\\&/g')" hub.err ||
	    fail "$WHAT: no hub log line 'PEER: $HUB_LOG' in:
$(cat hub.err)"
	if [ -n "${HUB_ABSENT_TABLE:-}" ]; then
		assert_equal "$(sqlite3 hub/notes.db "SELECT count(*) FROM sqlite_schema
		    WHERE name = '$HUB_ABSENT_TABLE'")" 0
	fi
	hub_still_serves
}

venue_join() {
	local cmd=("$WS_BIN/wsync-join" "$SOCK" notes=site.db)
	hub_up
	prepare
	if [ -n "${FSIZE_KB:-}" ]; then
		cmd=(bash -c 'ulimit -f "$1"; shift; exec "$@"' fsize "$FSIZE_KB" "${cmd[@]}")
	fi
	[ -z "${NO_DAC:-}" ] || cmd=(no_dac "${cmd[@]}")
	run --separate-stderr "${cmd[@]}"
	[ "$status" -eq "$STATUS" ] || fail "$WHAT: wsync-join exits $status, want $STATUS: $stderr"
	assert_output ''
	assert_stderr "$STDERR"
	if [ -n "${LOCK_PID:-}" ]; then
		kill "$LOCK_PID"
		reap "$LOCK_PID"
	fi
	if declare -F finish >/dev/null; then
		finish
	fi
	assert_integrity site.db
	if [ -n "${SITE_ROWS+x}" ]; then
		assert_equal "$(sqlite3 site.db "${SITE_QUERY:-SELECT * FROM notes WHERE id >= 1000}")" \
		    "$SITE_ROWS"
	fi
	hub_still_serves
}

venue_replicate() {
	local line
	ws_need wsync-replicate
	sqlite3 pub.db "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
	    INSERT INTO users VALUES(1, 'ann'), (2, 'bob')" || fail "sqlite3 failed"
	spawn pub "$WS_BIN/wsync-replicate" publish -d pub.db -t users -l "unix:$T/pub.sock"
	wait_lines "$T/pub.err" 1 '^wsync-replicate: listening on '
	run python3 - "$T/pub.sock" "$PUB_INPUT" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(open(sys.argv[2], "rb").read())
s.settimeout(10)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
sys.stdout.write(got.decode("utf-8", "replace"))
PY
	assert_success
	assert_output "$PUB_REPLY"
	wait_lines "$T/pub.err" 1 '^wsync-replicate: unix: session ended$'
	line="wsync-replicate: unix: $PUB_LOG"
	grep -qxF -- "$line" pub.err || fail "$WHAT: no line '$line' in:
$(cat pub.err)"
	# The publisher still serves.
	run --separate-stderr "$WS_BIN/wsync-replicate" pull "unix:$T/pub.sock" -d rep.db -t users
	assert_success
	assert_equal "$(sqlite3 rep.db 'SELECT * FROM users ORDER BY id')" "1|ann
2|bob"
	assert_integrity pub.db
	assert_integrity rep.db
}

# run_case NAME: the case in tests/bad-input/NAME, in every venue it names.
run_case() {
	local v
	CASE_DIR="$CASES/$1"
	[ -f "$CASE_DIR/case" ] || fail "no case file $CASE_DIR/case"
	cp -R "$CASE_DIR/." "$T/"
	# shellcheck disable=SC1091
	source "$CASE_DIR/case"
	[ -n "${VENUES:-}" ] || fail "$1: the case names no VENUES"
	for v in $VENUES; do
		"venue_$v"
	done
}

@test "every case in tests/bad-input has a test here" {
	local d name
	for d in "$CASES"/*/; do
		name=$(basename "$d")
		grep -qx "	run_case $name" "$BATS_TEST_FILENAME" ||
		    fail "tests/bad-input/$name has no test in ${BATS_TEST_FILENAME##*/}"
	done
}

@test "truncated stream: exit 65, the hub drops only that peer" {
	run_case truncated
}

@test "oversized length: exit 65, refused from the header" {
	run_case oversized-length
}

@test "wrong magic: exit 65, the hub drops only that peer" {
	run_case wrong-magic
}

@test "wrong version: exit 65, the hub drops only that peer" {
	run_case wrong-version
}

@test "bad checksum: exit 65, the hub drops only that peer" {
	run_case bad-checksum
}

@test "invalid UTF-8 in JSON: exit 65, names the line; a publisher goes on" {
	run_case invalid-utf8
}

@test "unknown table: the hub refuses the batch and creates nothing" {
	run_case unknown-table
}

@test "schema mismatch: exit 65, nothing damaged" {
	run_case schema-mismatch
}

@test "disk full (RLIMIT_FSIZE): exit 74, the site's database rolled back" {
	run_case disk-full
}

@test "disk full at the hub: exit 74, the hub goes on for the others" {
	run_case disk-full-hub
}

@test "database locked by another writer: exit 75 after the busy timeout" {
	run_case database-locked
}

@test "database locked by another writer at the hub: exit 75, the hub goes on" {
	run_case database-locked-hub
}

@test "permission denied on the database: exit 77" {
	run_case permission-denied
}

@test "permission denied on a stream file: exit 77" {
	run_case permission-denied-stream
}
