#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 97-newcomer.bats - what a new user ran into in the first hour, kept
# fixed: listing conflicts of a database one may only read, the exit
# status and the file named when a hub cannot create a working set, a
# data directory that is a file, a key path that is a directory, a hub
# lost in the middle of a frame, a peer's address said once per line.
#
# Real programs on unix sockets and loopback TCP; setpriv(1) runs a
# program as nobody where permissions matter (these tests run as root,
# whom permissions do not stop).

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-10}

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	ws_need wsync-serve
	ws_need wsync-join
	ws_need wsync-keygen
	SOCK="unix:$T/hub.sock"
}

teardown() {
	proc_teardown
}

# as_nobody CMD...: run CMD as user nobody (65534), with run --separate-stderr.
as_nobody() {
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	run --separate-stderr setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# open_dir: a directory nobody may enter and read, but not write ($OPEN).
open_dir() {
	OPEN=$(mktemp -d "${TMPDIR:-/tmp}/wsync-open.XXXXXX")
	chmod 755 "$OPEN"
	[ "$(id -u)" = 0 ] || skip "needs root to act as nobody"
}

teardown_open() {
	[ -z "${OPEN:-}" ] || rm -rf "$OPEN"
}

@test "wsync-join --conflicts lists the conflicts of a database it may only read" {
	open_dir
	start_hub hub -d hub --create -l "$SOCK"
	sql a.db "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES(1, 'x')"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	sql a.db "UPDATE t SET v = 'from a'"
	sql b.db "UPDATE t SET v = 'from b'"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	cp b.db "$OPEN/b.db"
	chmod 644 "$OPEN/b.db"
	as_nobody "$WS_BIN/wsync-join" --conflicts "u=$OPEN/b.db"
	teardown_open
	assert_success
	assert_stderr_empty
	assert_output --regexp '^u	1	t	\[1\]	v	"from (a|b)"	[0-9a-f]{32}:[0-9]+	concurrent$'
}

@test "a hub that may not create a working set's file says which file, with status 77" {
	open_dir
	mkdir "$OPEN/hub"
	chmod 755 "$OPEN/hub"
	chmod 777 "$OPEN"
	spawn hub setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$WS_BIN/wsync-serve" -d "$OPEN/hub" --create -l "unix:$OPEN/hub.sock"
	HUB_PID=$PID
	wait_lines "$T/hub.err" 1 '^wsync-serve: listening on '
	as_nobody "$WS_BIN/wsync-join" "unix:$OPEN/hub.sock" "new=$OPEN/n.db"
	teardown_open
	assert_failure 77
	assert_stderr "wsync-join: new: cannot create '$OPEN/hub/new.db': permission denied
wsync-join: some working sets were not synced"
}

@test "wsync-serve: a data directory that is a file is refused (78), even with --stdio" {
	echo data >somefile
	run --separate-stderr "$WS_BIN/wsync-serve" -d somefile --stdio </dev/null
	assert_failure 78
	assert_stderr "wsync-serve: data directory 'somefile' is not a directory"
}

@test "wsync-keygen: a directory given as the key file is named as one" {
	mkdir keys
	run --separate-stderr "$WS_BIN/wsync-keygen" -f keys
	assert_failure 74
	assert_stderr "wsync-keygen: cannot create 'keys': it is a directory (name the key file in it, e.g. 'keys/site.key')"
	[ -z "$(ls keys)" ] || fail "keygen wrote into keys/"
}

@test "a hub lost in the middle of a frame ends a one-shot sync with 74, as a lost connection" {
	# A hub that answers with its preamble, a hello and half a frame, then
	# goes away.
	python3 - "$T/fake.sock" "$BATS_TEST_DIRNAME" >fake.out 2>&1 <<'EOF' &
import os, socket, struct, sys, time
sys.path.insert(0, sys.argv[2])
from rawpeer import PREAMBLE, frame
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1])
s.listen(1)
print("ready", flush=True)
c, _ = s.accept()
c.recv(4096)
c.sendall(PREAMBLE + frame(0x01, 0, bytes([1, 1]) + bytes(16)) + struct.pack("<BBII", 0x04, 0, 1, 200)[:7])
time.sleep(0.2)
c.close()
EOF
	echo $! >>"$T/pids"
	wait_lines fake.out 1 '^ready$'
	sql a.db "CREATE TABLE t(id INTEGER PRIMARY KEY)"
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/fake.sock" u=a.db
	assert_failure 74
	assert_stderr "wsync-join: the hub closed the connection in the middle of a frame"
}

@test "the hub names a peer once on a line" {
	"$WS_BIN/wsync-keygen" -q -f hub.key
	: >authorized
	chmod 600 authorized
	PORT=$(free_port)
	start_hub hub -d hub -l "127.0.0.1:$PORT" --key hub.key --authorized-keys authorized
	# A connection that closes in the middle of the handshake.
	python3 -c 'import socket, sys; s = socket.create_connection(("127.0.0.1", int(sys.argv[1]))); s.sendall(bytes.fromhex("895753594e430d0a0100")); s.close()' "$PORT"
	wait_lines hub.err 1 ': disconnected$'
	run grep -E "^wsync-serve: 127\.0\.0\.1:[0-9]+: closed the connection during the handshake$" hub.err
	assert_success
	run grep -cE "127\.0\.0\.1:[0-9]+.*127\.0\.0\.1:[0-9]+" hub.err
	assert_output 0
}

@test "wsync-join -f on a terminal keeps one status line up to date; -q silences it" {
	command -v script >/dev/null || skip "script(1) is not installed"
	start_hub hub -d hub --create -l "$SOCK"
	sql a.db "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES(1, 'x')"
	join "$SOCK" u=a.db
	sql b.db "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"
	# script(1) gives the follower a terminal; SIGINT ends it cleanly.
	run timeout -s INT 3 script -qfec "'$WS_BIN/wsync-join' -f '$SOCK' u=b.db" /dev/null
	line="wsync-join: connected to $SOCK: 1 set, 1 caught up; 0 batches sent, 1 received"
	[[ "$output" == *$'\r\033[K'"$line"* ]] || fail "no status line '$line' in: $(cat -v <<<"$output")"
	# Nothing but the status line, and it is cleared on the way out.
	[[ "$output" != *$'\n'wsync-join:* ]] || fail "more than the status line: $(cat -v <<<"$output")"
	run timeout -s INT 3 script -qfec "'$WS_BIN/wsync-join' -q -f '$SOCK' u=c.db" /dev/null
	[[ "$output" != *wsync-join:* ]] || fail "-q printed: $(cat -v <<<"$output")"
	# Not a terminal: no status line, as before.
	spawn plain "$WS_BIN/wsync-join" -f "$SOCK" u=d.db
	wait_sql d.db "SELECT count(*) FROM t" 1
	assert_equal "$(cat plain.err)" ""
}
