#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 30-log.bats - the session log: wsync-serve --log FILE and wsync-join
# --log FILE.  A one-shot sync logged on both sides; what the records
# hold and in what order; the JSON form and its lossless round trip;
# appending (one preamble, however many runs); a hub and a site sharing
# one file; a log that cannot be opened; and --log - to standard output.
#
# Every test starts its own hub on a unix socket in a fresh
# $BATS_TEST_TMPDIR, and every process a test starts in the background
# is killed in teardown.  Every wait is bounded (WAIT_S seconds, polled
# in 0.1 s steps).

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-10}
# The stream preamble: magic, protocol version 1, reserved 0.
PREAMBLE=895753594e430d0a0100

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
	command -v jq >/dev/null || fail "these tests need jq"
}

teardown() {
	proc_teardown
}

# --- helpers (spawn, reap, wait_lines and start_hub are in helper.bash) ----

# stop_hub: SIGTERM the hub, which must exit 0; then its log is complete.
stop_hub() {
	kill -TERM "$HUB_PID"
	reap "$HUB_PID"
	assert_equal "$REAPED" 0
}

# to_json LOG: LOG as JSON lines in LOG.jsonl; wsync-inspect must accept
# it whole.
to_json() {
	run_to "$1.jsonl" "$WS_BIN/wsync-inspect" --json "$1"
	assert_success
	assert_stderr_empty
}

# events JSONL: one line per record, "DIR TYPE FLAGS" of the wrapped frame.
events() {
	jq -r '"\(.dir) \(.frame.type) \(.frame.flags // 0)"' "$1"
}

# count_magic FILE: how many times the 8 magic bytes occur in FILE.
count_magic() {
	python3 -c 'import sys; print(open(sys.argv[1], "rb").read().count(b"\x89WSYNC\r\n"))' "$1"
}

# assert_preamble FILE: FILE starts with the 10 preamble bytes.
assert_preamble() {
	assert_equal "$(head -c 10 "$1" | od -An -v -tx1 | tr -d ' \n')" "$PREAMBLE"
}

# assert_records JSONL PEER: every line is a log record on channel 0 with
# a direction, the peer PEER and a frame; times never go back and lie
# between $T0 and $T1 (microseconds since the epoch).
assert_records() {
	local line prev=0 t n=0
	run jq -r '[.type, .ch, (.flags // 0), .dir, .peer, (.frame | type),
	    (.time | tostring)] | map(tostring) | join(" ")' "$1"
	assert_success
	[ "${#lines[@]}" -gt 0 ] || fail "${1##*/}: no records"
	for line in "${lines[@]}"; do
		[[ "$line" =~ ^log\ 0\ 0\ (in|out)\ (.*)\ object\ ([0-9]+)$ ]] &&
		    [ "${BASH_REMATCH[2]}" = "$2" ] ||
		    fail "${1##*/}: record $n is not a log record from '$2': '$line'"
		t=${BASH_REMATCH[3]}
		((t >= prev)) || fail "${1##*/}: record $n goes back in time: $t < $prev"
		((t >= T0 && t <= T1)) || fail "${1##*/}: record $n time $t not in [$T0, $T1]"
		prev=$t
		n=$((n + 1))
	done
}

# assert_roundtrip LOG: LOG -> JSON -> binary gives LOG's bytes.
assert_roundtrip() {
	run bash -c '"$1" --json "$2" | "$1" --encode | cmp - "$2"' _ \
	    "$WS_BIN/wsync-inspect" "$1"
	assert_success
}

# now_us: the wall clock in microseconds, rounded down to the second.
now_us() {
	echo $(($(date +%s) * 1000000))
}

# --- a logged one-shot sync --------------------------------------------------

@test "--log on both sides of a one-shot sync: preamble, records, order" {
	T0=$(now_us)
	start_hub hub -d hub --create --log "$T/hub.log"
	make_site a.db
	join --log site.log "$SOCK" notes=a.db
	stop_hub
	T1=$(($(now_us) + 1000000))

	assert_preamble site.log
	assert_preamble hub.log
	to_json site.log
	to_json hub.log
	assert_records site.log.jsonl "$SOCK"
	assert_records hub.log.jsonl "unix#1"

	# The site: its hello and add, the hub's hello, the working set's
	# schema and the hub's add, its own schema, its batch and SYNC, the
	# hub's new schema (it took the site's tables) and ACK, and last its
	# final heartbeat and clock.
	run events site.log.jsonl
	assert_line --index 0 "out hello 0"
	assert_line --index 1 "out add 0"
	assert_line --index 2 "in hello 0"
	assert_line --index 3 "in schema 0"
	assert_line --index 4 "in add 0"
	assert_line --index 5 "out schema 0"
	assert_equal "$(grep -c '^in schema ' <<<"$output")" 2
	assert_line --index -3 "in clock 4"
	assert_line --index -2 "out heartbeat 0"
	assert_line --index -1 "out clock 0"
	local i batch=
	for ((i = 4; i < ${#lines[@]}; i++)); do
		[ "${lines[$i]}" = "out batch 0" ] && batch=$i
	done
	[ -n "$batch" ] || fail "the site log has no batch sent after the adds:
$output"
	assert_equal "$(grep -c '^out batch ' <<<"$output")" 1
	assert_line "out clock 2"
	assert_line "in clock 1"
	# Channels: hello on 0, the rest on the working set's channel 1.
	assert_equal "$(jq -c '[.frame.type, .frame.ch]' site.log.jsonl | sort -u | tr -d '\n')" \
	    '["add",1]["batch",1]["clock",1]["heartbeat",0]["hello",0]["schema",1]'

	# The hub: the site's hello, its own, ..., the batch in, the ACK out.
	run events hub.log.jsonl
	assert_line --index 0 "in hello 0"
	assert_line --index 1 "out hello 0"
	assert_line --index 2 "in add 0"
	assert_line --index 3 "out schema 0"
	assert_line --index 4 "out add 0"
	assert_line "in schema 0"
	assert_line "out clock 1"
	assert_line "in batch 0"
	assert_line "in clock 2"
	assert_line --index -3 "out clock 4"
	assert_line --index -2 "in heartbeat 0"
	assert_line --index -1 "in clock 0"

	# The batch is the same frame on both sides, and holds the three rows.
	assert_equal "$(jq -c 'select(.frame.type == "batch") | .frame' site.log.jsonl)" \
	    "$(jq -c 'select(.frame.type == "batch") | .frame' hub.log.jsonl)"
	assert_equal "$(jq -c 'select(.frame.type == "batch") | [.frame.changes[].pk[0]]' site.log.jsonl)" \
	    '[1,2,3]'
	# The two hellos the site logged are the two the hub logged.
	assert_equal "$(jq -c 'select(.frame.type == "hello") | .frame' site.log.jsonl)" \
	    "$(jq -c 'select(.frame.type == "hello") | .frame' hub.log.jsonl)"

	# JSON and back gives the same bytes.
	assert_roundtrip site.log
	assert_roundtrip hub.log
}

@test "the documented example: wsync-inspect --json LOG | jq select batch" {
	start_hub hub -d hub --create --log "$T/hub.log"
	make_site a.db
	join "$SOCK" notes=a.db
	stop_hub
	run bash -c '"$1" --json hub.log | jq -c '\''select(.frame.type=="batch")'\''' _ \
	    "$WS_BIN/wsync-inspect"
	assert_success
	[ "${#lines[@]}" -eq 1 ] || fail "want one batch, got: $output"
	local re='^\{"type":"log","ch":0,"time":[0-9]+,"dir":"in","peer":"unix#1","frame":\{"type":"batch","ch":1,.*\}\}$'
	[[ "$output" =~ $re ]] || fail "not the documented form: $output"
}

# --- appending ---------------------------------------------------------------

@test "a second run appends: one preamble, one stream, twice the hellos" {
	local size1 hub1
	T0=$(now_us)
	start_hub hub -d hub --create --log "$T/hub.log"
	make_site a.db
	join --log site.log "$SOCK" notes=a.db
	stop_hub
	to_json site.log
	assert_equal "$(jq -r 'select(.frame.type == "hello") | .dir' site.log.jsonl | tr '\n' ' ')" \
	    "out in "
	size1=$(stat -c %s site.log)
	cp site.log site1.log
	hub1=$(stat -c %s hub.log)
	cp hub.log hub1.log

	# The hub restarts on the same log; the site has a new row to send.
	start_hub hub2 -d hub --log "$T/hub.log"
	sql a.db "INSERT INTO notes VALUES(4, 'four', 'second run')"
	join --log site.log "$SOCK" notes=a.db
	stop_hub
	T1=$(($(now_us) + 1000000))

	for f in site.log hub.log; do
		assert_equal "$(count_magic "$f")" 1
		assert_preamble "$f"
	done
	# The first run's bytes are untouched; the second's follow them.
	cmp -n "$size1" site1.log site.log || fail "site.log was rewritten, not appended to"
	cmp -n "$hub1" hub1.log hub.log || fail "hub.log was rewritten, not appended to"
	[ "$(stat -c %s site.log)" -gt "$size1" ] || fail "the second run added nothing"

	to_json site.log
	to_json hub.log
	assert_records site.log.jsonl "$SOCK"
	assert_records hub.log.jsonl "unix#1"
	assert_equal "$(jq -r 'select(.frame.type == "hello") | .dir' site.log.jsonl | tr '\n' ' ')" \
	    "out in out in "
	assert_equal "$(jq -r 'select(.frame.type == "hello") | .dir' hub.log.jsonl | tr '\n' ' ')" \
	    "in out in out "
	# Each run sent its own batch: rows 1-3, then row 4.
	assert_equal "$(jq -c 'select(.frame.type == "batch" and .dir == "out") |
	    [.frame.changes[].pk[0]]' site.log.jsonl | tr -d '\n')" '[1,2,3][4]'
	assert_roundtrip site.log
	assert_roundtrip hub.log
}

@test "a hub and a site append to one shared file" {
	T0=$(now_us)
	start_hub hub -d hub --create --log "$T/shared.log"
	make_site a.db
	join --log shared.log "$SOCK" notes=a.db
	join --log shared.log "$SOCK" notes=b.db
	stop_hub
	T1=$(($(now_us) + 1000000))

	assert_preamble shared.log
	assert_equal "$(count_magic shared.log)" 1
	to_json shared.log
	# Each program's records are in order; all are whole.
	jq -c 'select(.peer == "'"$SOCK"'")' shared.log.jsonl >site.jsonl
	jq -c 'select(.peer != "'"$SOCK"'")' shared.log.jsonl >hub.jsonl
	assert_records site.jsonl "$SOCK"
	run jq -r .peer hub.jsonl
	assert_equal "$(LC_ALL=C sort -u <<<"$output" | tr '\n' ' ')" "unix#1 unix#2 "
	# The batch, as the first site sent it, as the hub received it, as
	# the hub sent it to the second site and as that site received it.
	assert_equal "$(jq -r 'select(.frame.type == "batch") | "\(.peer) \(.dir)"' shared.log.jsonl |
	    LC_ALL=C sort)" "$(printf '%s\n' "$SOCK in" "$SOCK out" "unix#1 in" "unix#2 out" |
	    LC_ALL=C sort)"
	assert_equal "$(jq -r 'select(.frame.type == "hello") | .frame.type' shared.log.jsonl | wc -l)" 8
	assert_roundtrip shared.log
}

# --- a log that cannot be opened ---------------------------------------------

@test "wsync-join: a log that cannot be opened: exit 74, nothing synced" {
	start_hub hub -d hub --create
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" --log "$T/nodir/site.log" "$SOCK" notes=a.db
	assert_failure 74
	assert_output ''
	assert_stderr "wsync-join: cannot open log '$T/nodir/site.log': no such file or directory"
	# A directory is no log either.
	mkdir logdir
	run --separate-stderr "$WS_BIN/wsync-join" --log logdir "$SOCK" notes=a.db
	assert_failure 74
	assert_stderr "wsync-join: cannot open log 'logdir': is a directory"
	# Nothing was synced, or even begun: the hub saw no session, holds no
	# working set, and a.db has no wsync tables yet.
	[ ! -e hub/notes.db ] || fail "the hub created hub/notes.db"
	run grep -c ': connected$' hub.err
	assert_output 0
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'wsync%'")" 0
	[ ! -e nodir ] || fail "nodir was created"
}

@test "wsync-join: a log that may not be written: exit 77, nothing synced" {
	local -a wrap=()
	start_hub hub -d hub --create
	mkdir ro
	make_site ro/a.db
	chmod 555 ro
	if [ "$(id -u)" -eq 0 ]; then
		# root writes anywhere; run without capabilities instead.
		command -v setpriv >/dev/null || skip "root, and no setpriv to drop capabilities"
		wrap=(setpriv --bounding-set=-all --inh-caps=-all)
		"${wrap[@]}" true 2>/dev/null || skip "setpriv cannot drop capabilities here"
	fi
	run --separate-stderr "${wrap[@]}" "$WS_BIN/wsync-join" --log ro/site.log \
	    "$SOCK" notes=ro/a.db
	chmod 755 ro
	assert_failure 77
	assert_output ''
	assert_stderr "wsync-join: cannot open log 'ro/site.log': permission denied"
	[ ! -e ro/site.log ] || fail "ro/site.log was created"
	assert_equal "$(sqlite3 ro/a.db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'wsync%'")" 0
	[ ! -e hub/notes.db ] || fail "the hub created hub/notes.db"
	run grep -c ': connected$' hub.err
	assert_output 0
}

@test "wsync-serve: a log that cannot be opened: exit 74 before it listens" {
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" -d hub --create \
	    --log "$T/nodir/hub.log"
	assert_failure 74
	assert_output ''
	assert_stderr "wsync-serve: cannot open log '$T/nodir/hub.log': no such file or directory"
	[ ! -e hub.sock ] || fail "the hub made its socket"
}

# --- --log - -----------------------------------------------------------------

@test "wsync-join --log - writes the log stream to standard output" {
	T0=$(now_us)
	start_hub hub -d hub --create
	make_site a.db
	run_to out.log "$WS_BIN/wsync-join" --log - "$SOCK" notes=a.db
	assert_success
	assert_stderr_empty
	assert_preamble out.log
	assert_equal "$(count_magic out.log)" 1
	to_json out.log
	T1=$(($(now_us) + 1000000))
	assert_records out.log.jsonl "$SOCK"
	run events out.log.jsonl
	assert_line --index 0 "out hello 0"
	assert_line "out batch 0"
	assert_line --index -3 "in clock 4"
	assert_line --index -1 "out clock 0"
	assert_roundtrip out.log

	# Into a pipe: the preamble too.
	run bash -c '"$1" --log - "$2" notes=a.db | cat >piped.log' _ \
	    "$WS_BIN/wsync-join" "$SOCK"
	assert_success
	assert_preamble piped.log
	to_json piped.log
	T1=$(($(now_us) + 1000000))
	assert_records piped.log.jsonl "$SOCK"

	# Appended to a log that holds records: no second preamble.
	run bash -c '"$1" --log - "$2" notes=a.db >>out.log' _ \
	    "$WS_BIN/wsync-join" "$SOCK"
	assert_success
	assert_equal "$(count_magic out.log)" 1
	to_json out.log
	assert_equal "$(jq -r 'select(.frame.type == "hello") | .dir' out.log.jsonl | tr '\n' ' ')" \
	    "out in out in "
}

@test "log: --log - with a stdio connection is a usage error" {
	run --separate-stderr "$WS_BIN/wsync-join" --log - - notes=a.db
	assert_failure 64
	[ "${stderr_lines[0]}" = "wsync-join: --log - would write into the connection on stdout" ] ||
	    fail "stderr: $stderr"
	run --separate-stderr "$WS_BIN/wsync-serve" --stdio --log -
	assert_failure 64
	[ "${stderr_lines[0]}" = "wsync-serve: --log - would write into the connection on stdout" ] ||
	    fail "stderr: $stderr"
}
