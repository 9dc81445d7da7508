#!/usr/bin/env bats
# Heartbeats and idle timeouts: a silent peer is dropped, a following
# site that heartbeats is kept, and the timing options are checked.

load helper

setup() {
	ws_need wsync-serve
	T=$BATS_TEST_TMPDIR
	cd "$T"
	# start_hub (helper.bash) listens here; its stderr goes to hub.err.
	SOCK="unix:$T/h.sock"
	sqlite3 a.db 'CREATE TABLE t(id INTEGER PRIMARY KEY, v)'
}

teardown() {
	local p
	for p in ${pids:-}; do kill "$p" 2>/dev/null || true; done
	for p in ${pids:-}; do wait "$p" 2>/dev/null || true; done
	proc_teardown
}

@test "keepalive: the hub drops a silent peer after --idle-timeout" {
	start_hub hub -d hub --create --idle-timeout 1 --heartbeat 5
	python3 - "$BATS_TEST_TMPDIR/h.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(4)
PY
	pids="$pids $!"
	local i
	for i in $(seq 60); do
		grep -q 'silent for 1 s: presumed gone' hub.err && break
		sleep 0.1
	done
	run grep -c 'unix#1: silent for 1 s: presumed gone' hub.err
	assert_output 1
}

@test "keepalive: a following site's heartbeats keep its session" {
	start_hub hub -d hub --create --idle-timeout 3
	"$WS_BIN/wsync-join" -f --heartbeat 1 "unix:$BATS_TEST_TMPDIR/h.sock" w=a.db 2>join.log &
	pids="$pids $!"
	sleep 5
	run grep -c 'presumed gone' hub.err
	assert_output 0
	# and it still syncs: a row written now reaches the hub's copy
	sqlite3 a.db "INSERT INTO t VALUES(1, 'alive')"
	local i
	for i in $(seq 100); do
		[ "$(sqlite3 hub/w.db 'SELECT v FROM t WHERE id = 1' 2>/dev/null)" = alive ] && break
		sleep 0.05
	done
	run sqlite3 hub/w.db 'SELECT v FROM t WHERE id = 1'
	assert_output alive
}

@test "keepalive: a one-shot site gives up on a silent hub with status 75" {
	# a "hub" that accepts and never answers
	python3 - "$BATS_TEST_TMPDIR/mute.sock" <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept()
time.sleep(10)
PY
	pids="${pids:-} $!"
	local i
	for i in $(seq 50); do [ -S mute.sock ] && break; sleep 0.05; done
	run --separate-stderr "$WS_BIN/wsync-join" --idle-timeout 1 "unix:$BATS_TEST_TMPDIR/mute.sock" w=a.db
	assert_failure 75
	assert_stderr "wsync-join: the hub was silent for 1 seconds"
}

@test "keepalive: bad --heartbeat and --idle-timeout values exit 64" {
	local a
	for a in 0 x -1 86401 ''; do
		run --separate-stderr "$WS_BIN/wsync-serve" --stdio --idle-timeout "$a"
		assert_failure 64
		assert_stderr "wsync-serve: bad --idle-timeout '$a': want 1 to 86400 seconds"
		run --separate-stderr "$WS_BIN/wsync-join" --heartbeat "$a" - w=a.db
		assert_failure 64
		assert_stderr "wsync-join: bad --heartbeat '$a': want 1 to 86400 seconds"
	done
}

@test "notices: a following site is told when another site joins and leaves" {
	start_hub hub -d hub --create
	"$WS_BIN/wsync-join" -f --log a.log "unix:$BATS_TEST_TMPDIR/h.sock" w=a.db 2>a.err &
	pids="$pids $!"
	local i
	for i in $(seq 100); do grep -q "joined working set 'w'" hub.err && break; sleep 0.05; done
	run "$WS_BIN/wsync-join" "unix:$BATS_TEST_TMPDIR/h.sock" w=b.db
	assert_success
	local id
	id=$(sqlite3 b.db "SELECT lower(hex(value)) FROM wsync_meta WHERE key = 'site'")
	# the notice payload: kind (1 joined, 2 left), then the site id
	local joined left
	joined=$(python3 -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "01$id")
	left=$(python3 -c 'import base64, sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())' "02$id")
	for i in $(seq 100); do
		"$WS_BIN/wsync-inspect" --json a.log 2>/dev/null | grep -q "\"$left\"" && break
		sleep 0.05
	done
	run bash -c "'$WS_BIN/wsync-inspect' --json a.log | jq -c 'select(.frame.type == \"notice\") | [.dir, .frame.ch, .frame.payload]'"
	assert_success
	assert_line --index 0 "[\"in\",1,\"$joined\"]"
	assert_line --index 1 "[\"in\",1,\"$left\"]"
	# and nothing on standard error: notices are not diagnostics
	run cat a.err
	assert_output ''
}
