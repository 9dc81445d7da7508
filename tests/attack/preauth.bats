#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# preauth.bats - what anyone who can reach the hub can do without a key:
# hold connections open, announce huge frames, open more connections than
# the hub has files for.  Each is bounded: a handshake deadline, a frame
# limit until the hello, a cap on sessions; the hub never exits, and a
# legitimate site syncs once the flood is gone.  And what a key holder
# can do with site ids: take another key's, or hold many.
#
# A real hub on a unix socket (and TCP with keys), real sites, and
# preauth.py for the connections that never say hello.

bats_require_minimum_version 1.5.0
load ../bats/helper

WAIT_S=${WAIT_S:-10}
PREAUTH="$BATS_TEST_DIRNAME/preauth.py"

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	SOCK="unix:$T/hub.sock"
	ws_need wsync-serve
	ws_need wsync-join
	ws_need wsync-keygen
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
	    INSERT INTO notes VALUES(1, 'one')"
}

teardown() {
	proc_teardown
}

# still_syncs: a new write at a.db reaches b.db through the hub.
still_syncs() {
	local n
	n=$(sqlite3 a.db "SELECT coalesce(max(id), 0) + 1 FROM notes")
	sql a.db "INSERT INTO notes VALUES($n, 'after')"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	assert_equal "$(sqlite3 b.db "SELECT body FROM notes WHERE id = $n")" after
}

# assert_log_line FILE TEXT: FILE has a line "wsync-serve: TEXT", or
# "wsync-serve: PEER: TEXT".
assert_log_line() {
	grep -qE "^wsync-serve: ([^ ]+: )?$(printf '%s' "$2" | sed 's/[][\.*^$()+?{}|/]/\\&/g')$" "$1" ||
	    fail "no line '$2' in ${1##*/}: $(cat "$1")"
}

# assert_log_line_regexp FILE ERE: FILE has a line "wsync-serve: " then ERE.
assert_log_line_regexp() {
	local ere=${2#^}
	grep -qE "^wsync-serve: $ere" "$1" || fail "no line matching '$2' in ${1##*/}: $(cat "$1")"
}

# rss PID: the resident set of PID, in KiB.
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

@test "a connection that never says hello is dropped at the handshake deadline" {
	start_hub hub -d hub --create -l "$SOCK" --handshake 1
	run python3 "$PREAUTH" "$SOCK" idle 5 2.5
	assert_success
	assert_output "closed 5 of 5
error no hello within 1 s: dropped"
	assert_log_line hub.err "no hello within 1 s: dropped"
	still_syncs
}

@test "a frame header that announces 256 MiB before the hello is refused at once, and costs the hub nothing" {
	start_hub hub -d hub --create -l "$SOCK"
	before=$(rss "$HUB_PID")
	run python3 "$PREAUTH" "$SOCK" huge 50
	assert_success
	assert_line --index 0 "closed 50 of 50"
	assert_line --index 1 "error frame at byte 10: frame larger than the maximum"
	after=$(rss "$HUB_PID")
	# 50 announced 12.5 GiB; the hub may grow a little, never by that.
	[ $((after - before)) -lt 8192 ] || fail "the hub grew from $before to $after KiB"
	still_syncs
}

@test "past --max-sessions connections are refused, the hub goes on, and a site syncs once they are gone" {
	start_hub hub -d hub --create -l "$SOCK" --max-sessions 8 --handshake 30
	run python3 "$PREAUTH" "$SOCK" idle 40 1
	assert_success
	# The 8 the hub took stay open; the other 32 it closed at once.
	assert_output "closed 32 of 40"
	kill -0 "$HUB_PID" || fail "the hub exited: $(cat hub.err)"
	assert_log_line_regexp hub.err "^refusing connections: 8 sessions already \(--max-sessions\); [0-9]+ refused so far$"
	still_syncs
}

@test "more idle connections than the open-files limit: the hub refuses the excess and never exits" {
	# At 128 open files the default cap leaves room for the databases.
	spawn hub bash -c "ulimit -n 128 && exec '$WS_BIN/wsync-serve' -d hub --create -l '$SOCK' --handshake 30"
	HUB_PID=$PID
	wait_lines "$T/hub.err" 1 '^wsync-serve: listening on '
	run python3 "$PREAUTH" "$SOCK" idle 300 1
	assert_success
	kill -0 "$HUB_PID" || fail "the hub exited: $(cat hub.err)"
	assert_output --regexp "^closed [0-9]+ of 300$"
	[[ "$output" != "closed 0 of 300" ]] || fail "the hub took every connection"
	still_syncs
}

# keyed_hub [ARG...]: a hub on loopback TCP with a key, and keys for two
# sites that may create and write working set u.
keyed_hub() {
	local k
	for k in hub one two ro; do
		"$WS_BIN/wsync-keygen" -q -f "$k.key" -C "$k"
	done
	printf '%s u=create\n%s u=create\n%s u=read\n' "$(cut -d' ' -f1 one.key.pub)" \
	    "$(cut -d' ' -f1 two.key.pub)" "$(cut -d' ' -f1 ro.key.pub)" >sites
	PORT=$(free_port)
	start_hub hub -d hub -l "127.0.0.1:$PORT" --key hub.key --authorized-keys sites "$@"
	ADDR="127.0.0.1:$PORT"
	HUBKEY=$(cut -d' ' -f1 hub.key.pub)
}

# kjoin KEY ARG...: a keyed wsync-join.
kjoin() {
	local key=$1
	shift
	run --separate-stderr "$WS_BIN/wsync-join" --key "$key" --hub-key "$HUBKEY" "$ADDR" "$@"
}

@test "a site id is bound to the first key that used it: another key claiming it is refused (77)" {
	keyed_hub
	kjoin one.key u=a.db
	assert_success
	# A copy that keeps a.db's site id (its file record forged to match),
	# offered with the other key.
	cp a.db c.db
	sql c.db "UPDATE wsync_meta SET value = '$(stat -c %d:%i c.db)' WHERE key = 'file'"
	site=$(sqlite3 a.db "SELECT lower(hex(value)) FROM wsync_meta WHERE key = 'site'")
	sql c.db "INSERT INTO notes VALUES(9, 'stolen')"
	kjoin two.key u=c.db
	assert_failure 77
	assert_stderr "wsync-join: u: working set 'u': site $site belongs to another key
wsync-join: some working sets were not synced"
	kjoin one.key u=b.db
	assert_success
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes WHERE id = 9')" 0
}

@test "a key holds at most --sites-per-key site ids; --forget lets one go" {
	keyed_hub --sites-per-key 2
	kjoin one.key u=a.db
	assert_success
	kjoin one.key u=b.db
	assert_success
	kjoin one.key u=c.db
	assert_failure 77
	assert_stderr "wsync-join: u: working set 'u': this key already holds 2 site ids, the most one may (wsync-serve --forget lets one go)
wsync-join: some working sets were not synced"
	# The other key is not held back by this one's.
	kjoin two.key u=d.db
	assert_success
	site=$(sqlite3 b.db "SELECT lower(hex(value)) FROM wsync_meta WHERE key = 'site'")
	run --separate-stderr "$WS_BIN/wsync-serve" -d hub --forget "$site"
	assert_success
	assert_output "forgot site $site in 1 working set"
	kjoin one.key u=c.db
	assert_success
	run --separate-stderr "$WS_BIN/wsync-serve" -d hub --forget 00000000000000000000000000000000
	assert_failure 65
	assert_stderr "wsync-serve: site 00000000000000000000000000000000 is not known in 'hub'"
}

@test "a read-only key that invents site ids holds no history back once they leave" {
	keyed_hub --retain 3600 --heartbeat 1
	kjoin one.key u=a.db
	assert_success
	local reader
	for reader in r1 r2 r3; do
		kjoin ro.key u="$reader.db"
		assert_success
		assert_equal "$(sqlite3 "$reader.db" 'SELECT count(*) FROM notes')" 1
	done
	# Only the writer is remembered for --retain; the readers are not.
	sleep 1.5
	mine=$(sqlite3 a.db "SELECT hex(value) FROM wsync_meta WHERE key = 'site'")
	assert_equal "$(sqlite3 hub/u.db "SELECT hex(site) FROM wsync_members")" "$mine"
}

@test "a publisher's stream session that never starts is dropped after 10 s; a replicator is served meanwhile" {
	ws_need wsync-replicate
	sql pub.db "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES(1, 'ann')"
	spawn pub "$WS_BIN/wsync-replicate" publish -d pub.db -t users -l "unix:$T/pub.sock"
	wait_lines "$T/pub.err" 1 '^wsync-replicate: listening on '
	python3 "$PREAUTH" "unix:$T/pub.sock" idle 3 12 >idle.out &
	local idle=$!
	# While they hang there, a replicator gets its rows.
	sleep 1
	run --separate-stderr "$WS_BIN/wsync-replicate" pull "unix:$T/pub.sock" -d rep.db -t users
	assert_success
	assert_equal "$(sqlite3 rep.db 'SELECT name FROM users')" ann
	wait "$idle"
	assert_equal "$(head -n 1 idle.out)" "closed 3 of 3"
	run grep -cE "^wsync-replicate: unix[^ ]*: no ReplicateStart within 10 s: dropped$" pub.err
	assert_output 3
}
