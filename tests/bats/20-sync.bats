#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 20-sync.bats - wsync-serve and wsync-join as real processes: one-shot
# sync over unix sockets, TCP, exec: and stdio; three sites editing the
# same cells; several working sets on one connection; the exit statuses
# and messages of refusals; a hub killed with SIGKILL; hostile bytes sent
# to a hub; and follow mode.
#
# Every test starts its own hub in a fresh $BATS_TEST_TMPDIR and every
# process a test starts in the background is killed in teardown.  Every
# wait is bounded (WAIT_S seconds, polled in 0.1 s steps).

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-10}

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	SOCK="unix:$T/hub.sock"
	ws_need wsync-serve
	ws_need wsync-join
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v python3 >/dev/null || fail "these tests need python3"
}

teardown() {
	proc_teardown
}

# --- helpers (spawn, reap, wait_lines, sql, join, wait_sql and the like are
# in helper.bash) --------------------------------------------------------------


# wait_connectable PATH: wait until a unix socket at PATH accepts.
wait_connectable() {
	python3 - "$1" "$WAIT_S" <<'EOF' || fail "nobody listens at $1 after $WAIT_S s"
import socket, sys, time
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
    finally:
        s.close()
sys.exit(1)
EOF
}

# dump DB: every user table of DB, by name, with headers, rows in key
# order, values quoted (so types and blobs show).
dump() {
	local t
	for t in $(sqlite3 "$1" "SELECT name FROM sqlite_master WHERE type = 'table'
	    AND name NOT LIKE 'wsync\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
	    ORDER BY name"); do
		printf '== %s\n' "$t"
		sqlite3 -header -quote "$1" "SELECT * FROM \"$t\" ORDER BY 1, 2"
	done
}

# conflicts DB: the conflict list in a site-independent form and order.
conflicts() {
	sqlite3 "$1" "SELECT t.name, hex(c.pk), c.col, c.lostdel, hex(s.site),
	    c.counter, c.lamport, quote(c.value)
	    FROM wsync_conflicts c JOIN wsync_sites s ON s.id = c.site
	    JOIN wsync_tables t ON t.id = c.tbl
	    ORDER BY t.name, c.pk, c.col, s.site, c.counter"
}

# assert_same A B: databases A and B hold the same user tables and rows.
assert_same() {
	local a b
	a=$(dump "$1")
	b=$(dump "$2")
	[ "$a" = "$b" ] || fail "${1##*/} and ${2##*/} differ
--- ${1##*/}
$a
--- ${2##*/}
$b"
}

# assert_line_in_file FILE LINE: FILE has a line exactly LINE.
assert_line_in_file() {
	grep -qxF -- "$2" "$1" || fail "no line '$2' in ${1##*/}:
$(cat "$1")"
}

# assert_log FILE PEER MESSAGE: the hub's log FILE has exactly the line
# "wsync-serve: PEER: MESSAGE", where a PEER of "unix" stands for any
# numbered unix session ("unix#3").
assert_log() {
	local f=$1 peer=$2 msg=$3 line found=
	while IFS= read -r line; do
		if [ "$peer" = unix ]; then
			[[ "$line" =~ ^wsync-serve:\ unix#[0-9]+:\ (.*)$ ]] || continue
			[ "${BASH_REMATCH[1]}" = "$msg" ] && found=1
		elif [ "$line" = "wsync-serve: $peer: $msg" ]; then
			found=1
		fi
	done <"$f"
	[ -n "$found" ] || fail "no line 'wsync-serve: $peer: $msg' in ${f##*/}:
$(cat "$f")"
}

# notes DB: the notes table, as the brief's comparisons read it.
notes() {
	sqlite3 "$1" 'SELECT * FROM notes ORDER BY id'
}

# --- one-shot sync -----------------------------------------------------------

@test "one-shot sync over a unix socket" {
	start_hub hub -l "$SOCK" -d hub --create
	assert_equal "$(cat hub.err)" "wsync-serve: listening on $SOCK"
	make_site a.db
	join "$SOCK" notes=a.db
	[ ! -e b.db ] || fail "b.db exists already"
	join "$SOCK" notes=b.db
	assert_equal "$(notes b.db)" "$(notes a.db)"
	assert_equal "$(notes b.db | wc -l)" 3
	assert_same a.db b.db
	assert_same a.db hub/notes.db
	# Values keep their types and bytes, not just their text.
	assert_equal "$(sqlite3 b.db "SELECT typeof(body), hex(body) FROM notes ORDER BY id")" \
	    "text|6669727374
null|
blob|00FF10"
	assert_integrity b.db
	assert_integrity hub/notes.db
	# A second run has nothing to do and changes nothing.
	join "$SOCK" notes=b.db
	join "$SOCK" notes=a.db
	assert_same a.db b.db
}

@test "one-shot sync over TCP" {
	local port
	port=$(free_port)
	start_hub hub -l "127.0.0.1:$port" -d hub --create --insecure
	assert_equal "$(cat hub.err)" "wsync-serve: listening on 127.0.0.1:$port"
	make_site a.db
	join --insecure "127.0.0.1:$port" notes=a.db
	join --insecure "127.0.0.1:$port" notes=b.db
	assert_equal "$(notes b.db)" "$(notes a.db)"
	assert_same a.db b.db
	assert_integrity b.db
	# The hub names TCP peers by address and port.
	assert_equal "$(grep -cE "^wsync-serve: 127\.0\.0\.1:[0-9]+: joined working set 'notes' on channel 1\$" hub.err)" 2
}

@test "a hub on port 0 reports the port it got" {
	start_hub hub -l 127.0.0.1:0 -d hub --create --insecure
	local line port
	line=$(cat hub.err)
	[[ "$line" =~ ^wsync-serve:\ listening\ on\ 127\.0\.0\.1:([0-9]+)$ ]] ||
	    fail "hub said '$line'"
	port=${BASH_REMATCH[1]}
	[ "$port" -gt 0 ] || fail "port $port"
	make_site a.db
	join --insecure "127.0.0.1:$port" notes=a.db
	join --insecure "127.0.0.1:$port" notes=b.db
	assert_same a.db b.db
}

@test "one hub on a unix socket and TCP at once: sites on each see the other" {
	local port
	port=$(free_port)
	start_hub hub -l "$SOCK" -l "127.0.0.1:$port" -d hub --create --insecure
	assert_equal "$(cat hub.err)" "wsync-serve: listening on $SOCK
wsync-serve: listening on 127.0.0.1:$port"
	make_site a.db
	join "$SOCK" notes=a.db
	join --insecure "127.0.0.1:$port" notes=b.db
	assert_same a.db b.db
	sql b.db "UPDATE notes SET title = 'TWO' WHERE id = 2"
	join --insecure "127.0.0.1:$port" notes=b.db
	join "$SOCK" notes=a.db
	assert_equal "$(sqlite3 a.db 'SELECT title FROM notes WHERE id = 2')" TWO
	assert_same a.db b.db
}

@test "-q keeps the hub quiet" {
	# No "listening on" line to wait for: wait until it takes connections.
	spawn hub "$WS_BIN/wsync-serve" -q -l "$SOCK" -d hub --create
	wait_connectable "$T/hub.sock"
	make_site a.db
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	assert_same a.db b.db
	assert_equal "$(cat hub.err)" ""
}

@test "SIGTERM stops the hub with status 0" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	join "$SOCK" notes=a.db
	kill -TERM "$HUB_PID"
	reap "$HUB_PID"
	assert_equal "$REAPED" 0
	assert_integrity hub/notes.db
	assert_same a.db hub/notes.db
}

# --- three sites, concurrent edits -------------------------------------------

@test "three sites edit the same cells: all converge, same conflicts everywhere" {
	local s want_titles got_titles
	start_hub hub -l "$SOCK" -d hub --create
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    CREATE TABLE todo(k TEXT PRIMARY KEY, done INTEGER NOT NULL DEFAULT 0);
	    INSERT INTO notes VALUES(1, 'one', 'b1'), (2, 'two', 'b2'),
	    (3, 'three', 'b3'), (4, 'four', 'b4');
	    INSERT INTO todo VALUES('milk', 0), ('eggs', 1)"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	join "$SOCK" notes=c.db
	assert_same a.db b.db
	assert_same a.db c.db

	# Concurrent edits, none of which has seen the others.
	sql a.db "UPDATE notes SET title = 'A' WHERE id = 1;
	    UPDATE notes SET body = 'a3' WHERE id = 3;
	    INSERT INTO notes VALUES(10, 'from a', NULL), (50, 'a50', 'a');
	    UPDATE todo SET done = 1 WHERE k = 'milk'"
	sql b.db "UPDATE notes SET title = 'B' WHERE id = 1;
	    UPDATE notes SET title = 'B2' WHERE id = 2;
	    INSERT INTO notes VALUES(20, 'from b', 2.5), (50, 'b50', 'b');
	    DELETE FROM todo WHERE k = 'eggs'"
	sql b.db "UPDATE notes SET body = 'b4' || body WHERE id = 4"
	sql c.db "UPDATE notes SET title = 'C' WHERE id = 1;
	    DELETE FROM notes WHERE id = 3;
	    UPDATE notes SET body = 'c2' WHERE id = 2;
	    INSERT INTO notes VALUES(30, 'from c', x'00ff');
	    INSERT INTO todo VALUES('bread', 0);
	    UPDATE todo SET done = 2 WHERE k = 'milk'"

	# The first round at once, then round-robin twice.
	local pa pb pc
	"$WS_BIN/wsync-join" "$SOCK" notes=a.db >ja.out 2>ja.err 3>&- & pa=$!
	"$WS_BIN/wsync-join" "$SOCK" notes=b.db >jb.out 2>jb.err 3>&- & pb=$!
	"$WS_BIN/wsync-join" "$SOCK" notes=c.db >jc.out 2>jc.err 3>&- & pc=$!
	printf '%s\n' "$pa" "$pb" "$pc" >>pids
	for s in "$pa" "$pb" "$pc"; do
		reap "$s"
		assert_equal "$REAPED" 0
	done
	assert_equal "$(cat ja.err jb.err jc.err)" ""
	for s in a b c a b c; do
		join "$SOCK" notes=$s.db
	done

	assert_same a.db b.db
	assert_same a.db c.db
	assert_same a.db hub/notes.db
	assert_equal "$(conflicts b.db)" "$(conflicts a.db)"
	assert_equal "$(conflicts c.db)" "$(conflicts a.db)"
	assert_equal "$(conflicts hub/notes.db)" "$(conflicts a.db)"
	for s in a.db b.db c.db hub/notes.db; do
		assert_integrity "$s"
		assert_equal "$(sqlite3 "$s" 'SELECT count(*) FROM wsync_pending')" 0
	done

	# The changes nobody else touched arrived everywhere.
	assert_equal "$(sqlite3 c.db "SELECT title FROM notes WHERE id IN (10, 20, 30) ORDER BY id")" \
	    "from a
from b
from c"
	assert_equal "$(sqlite3 a.db "SELECT body FROM notes WHERE id = 4")" b4b4
	# Row 3: the delete wins over the concurrent update, whose value is
	# kept as a conflict.
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM notes WHERE id = 3")" 0
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM wsync_conflicts WHERE value = 'a3'")" 1
	# Row 2: different columns, both kept, no conflict.
	assert_equal "$(sqlite3 a.db "SELECT title, body FROM notes WHERE id = 2")" "B2|c2"
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM wsync_conflicts WHERE value IN ('B2', 'c2')")" 0
	# Cell (1, title): three concurrent writes, one wins, the two others
	# are listed, and nothing is lost.
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM wsync_conflicts
	    WHERE value IN ('A', 'B', 'C')")" 2
	got_titles=$(sqlite3 a.db "SELECT title FROM notes WHERE id = 1
	    UNION ALL SELECT value FROM wsync_conflicts WHERE value IN ('A', 'B', 'C')
	    ORDER BY 1")
	want_titles=$'A\nB\nC'
	assert_equal "$got_titles" "$want_titles"
	# Row 50, inserted on two sites: one value per cell wins, the other is
	# listed.
	assert_equal "$(sqlite3 a.db "SELECT count(*) FROM notes WHERE id = 50")" 1
	assert_equal "$(sqlite3 a.db "SELECT title FROM notes WHERE id = 50
	    UNION ALL SELECT value FROM wsync_conflicts WHERE value IN ('a50', 'b50')
	    ORDER BY 1")" $'a50\nb50'
	# The second table converged too.
	assert_equal "$(sqlite3 b.db "SELECT k, done FROM todo ORDER BY k")" \
	    "$(sqlite3 a.db "SELECT k, done FROM todo ORDER BY k")"
	assert_equal "$(sqlite3 a.db "SELECT k FROM todo ORDER BY k")" $'bread\nmilk'
}

# --- several working sets on one connection ----------------------------------

@test "two working sets on one connection" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	sql t.db "CREATE TABLE todo(k TEXT PRIMARY KEY, done INTEGER);
	    INSERT INTO todo VALUES('milk', 0), ('eggs', 1)"
	join "$SOCK" notes=a.db todo=t.db
	# One connection carried both, on channels 1 and 2.
	assert_equal "$(grep -c ': connected$' hub.err)" 1
	assert_log hub.err unix "joined working set 'notes' on channel 1"
	assert_log hub.err unix "joined working set 'todo' on channel 2"
	# ... on one session.
	assert_equal "$(grep -oE '^wsync-serve: unix#[0-9]+: ' hub.err | sort -u | wc -l)" 1
	[ -f hub/notes.db ] && [ -f hub/todo.db ] || fail "hub: $(ls hub)"
	join "$SOCK" todo=t2.db notes=a2.db
	assert_same a.db a2.db
	assert_same t.db t2.db
	# Each set holds its own tables only.
	assert_equal "$(sqlite3 a2.db "SELECT count(*) FROM sqlite_master WHERE name = 'todo'")" 0
	assert_equal "$(sqlite3 t2.db "SELECT count(*) FROM sqlite_master WHERE name = 'notes'")" 0
	assert_integrity hub/notes.db
	assert_integrity hub/todo.db
}

# --- exec: and stdio ---------------------------------------------------------

@test "exec: runs the hub as a local command, as ssh would" {
	local hub="exec:$WS_BIN/wsync-serve --stdio -d $T/hub --create -q"
	make_site a.db
	join "$hub" notes=a.db
	[ -f "$T/hub/notes.db" ] || fail "no hub/notes.db"
	join "$hub" notes=b.db
	assert_equal "$(notes b.db)" "$(notes a.db)"
	assert_same a.db b.db
	assert_integrity "$T/hub/notes.db"
	# No hub is left running.
	run pgrep -f -- "-d $T/hub --create"
	assert_failure 1
}

@test "exec: a command that is not a hub fails cleanly" {
	make_site a.db
	# Bytes that are not a wsync stream: bad data.  (The command has
	# written them and exited before wsync-join writes: what it said must
	# win over the broken pipe that follows.)
	run --separate-stderr "$WS_BIN/wsync-join" "exec:echo hello" notes=a.db
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-join: byte 0: not a wsync stream (bad magic)"
	# A command that ends at once: the connection is gone, an I/O error.
	run --separate-stderr "$WS_BIN/wsync-join" "exec:exit 3" notes=a.db
	assert_failure 74
	assert_output ''
	assert_stderr "wsync-join: the hub closed the connection"
	assert_integrity a.db
	assert_equal "$(notes a.db | wc -l)" 3
}

@test "exec: a hub that ends the session at once: its reason is reported" {
	# As a hub of another protocol version would answer; it does not read.
	python3 "$BATS_TEST_DIRNAME/rawpeer.py" --error-stream -5 \
	    "peer speaks protocol version 1, this program speaks 2" >reply.bin
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" "exec:cat $T/reply.bin" notes=a.db
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-join: the hub ends the session: peer speaks protocol version 1, this program speaks 2"
	# The same once a.db is set up (the first run has more to do before
	# it writes, so it meets the closed pipe sooner).
	run --separate-stderr "$WS_BIN/wsync-join" "exec:cat $T/reply.bin" notes=a.db
	assert_failure 65
	assert_stderr "wsync-join: the hub ends the session: peer speaks protocol version 1, this program speaks 2"
}

@test "- speaks over stdin and stdout" {
	mkfifo up down
	make_site a.db
	local hp
	# Held open read-write here, so neither side blocks opening a fifo.
	exec 7<>up 8<>down
	"$WS_BIN/wsync-serve" --stdio -d hub --create <up >down 2>hub.err 3>&- 7>&- 8>&- &
	hp=$!
	echo "$hp" >>pids
	run --separate-stderr bash -c '"$1" - notes=a.db <down >up' _ "$WS_BIN/wsync-join"
	exec 7>&- 8>&-
	assert_success
	assert_stderr_empty
	reap "$hp"
	assert_equal "$REAPED" 0
	assert_same a.db hub/notes.db
}

# --- refusals: exit statuses and messages ------------------------------------

@test "no hub at a unix socket: exit 69" {
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/nohub.sock" notes=a.db
	assert_failure 69
	assert_output ''
	[ "${#stderr_lines[@]}" -eq 1 ] || fail "want one line, got: '$stderr'"
	[[ "$stderr" == "wsync-join: cannot connect to 'unix:$T/nohub.sock': "?* ]] ||
	    fail "stderr: '$stderr'"
	assert_stderr "wsync-join: cannot connect to 'unix:$T/nohub.sock': no such file or directory"
	# A socket file nobody listens on (a hub that died) is the same.
	python3 -c 'import socket,sys;s=socket.socket(socket.AF_UNIX);s.bind(sys.argv[1])' "$T/dead.sock"
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/dead.sock" notes=a.db
	assert_failure 69
	assert_stderr "wsync-join: cannot connect to 'unix:$T/dead.sock': connection refused"
	# The database is untouched but for wsync's own tables.
	assert_equal "$(notes a.db | wc -l)" 3
	assert_integrity a.db
}

@test "no hub at a TCP port: exit 69" {
	local port
	port=$(free_port)
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" --insecure "127.0.0.1:$port" notes=a.db
	assert_failure 69
	assert_output ''
	assert_stderr "wsync-join: cannot connect to '127.0.0.1:$port': connection refused"
}

@test "a malformed hub address: exit 64" {
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" nocolon notes=a.db
	assert_failure 64
	assert_output ''
	assert_stderr "wsync-join: bad address 'nocolon' (want HOST:PORT, [IPv6]:PORT, unix:PATH, exec:COMMAND or -)"
}

@test "an unknown working set on a hub without --create: exit 66" {
	mkdir hub
	start_hub hub -l "$SOCK" -d hub
	make_site a.db
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" notes=a.db
	assert_failure 66
	assert_output ''
	assert_stderr_contains "'notes'"
	[[ "${stderr_lines[0]}" == "wsync-join: notes: "* ]] ||
	    fail "line 0 should name the set: '${stderr_lines[0]}'"
	assert_stderr_line -1 "wsync-join: some working sets were not synced"
	# The hub said why, named the peer, made no file and still runs.
	assert_log hub.err unix "unknown working set 'notes' (the hub accepts new ones with --create)"
	[ ! -e hub/notes.db ] || fail "the hub created hub/notes.db"
	kill -0 "$HUB_PID" || fail "the hub died"
	# -q drops the report, not the status.
	run --separate-stderr "$WS_BIN/wsync-join" -q "$SOCK" notes=a.db
	assert_failure 66
	assert_stderr "wsync-join: some working sets were not synced"
}

@test "one refused working set does not stop the others: exit 66" {
	# Make hub/notes.db with a hub that creates, then serve it without.
	make_site a.db
	join "exec:$WS_BIN/wsync-serve --stdio -d $T/hub --create -q" notes=a.db
	start_hub hub -l "$SOCK" -d hub
	sql a.db "INSERT INTO notes VALUES(4, 'four', 'later')"
	sql t.db "CREATE TABLE todo(k TEXT PRIMARY KEY); INSERT INTO todo VALUES('x')"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" todo=t.db notes=a.db
	assert_failure 66
	assert_stderr_contains "'todo'"
	# notes went through all the same.
	join "$SOCK" notes=b.db
	assert_same a.db b.db
	assert_equal "$(sqlite3 b.db 'SELECT title FROM notes WHERE id = 4')" four
	[ ! -e hub/todo.db ] || fail "the hub created hub/todo.db"
}

@test "a database that belongs to another working set: exit 78" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	join "$SOCK" notes=a.db
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" todo=a.db
	assert_failure 78
	assert_output ''
	assert_stderr_contains "'a.db' holds working set 'notes', not 'todo'"
	[[ "$stderr" == "wsync-join: "* ]] || fail "stderr: '$stderr'"
	[ ! -e hub/todo.db ] || fail "the hub created hub/todo.db"
	# The database still is what it was.
	assert_same a.db hub/notes.db
	assert_integrity a.db
}

@test "a dataset guid mismatch: exit 78, nothing exchanged" {
	local before_a before_h2
	start_hub hub1 -l "unix:$T/hub1.sock" -d hub1 --create
	start_hub hub2 -l "unix:$T/hub2.sock" -d hub2 --create
	make_site a.db
	sql x.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    INSERT INTO notes VALUES(100, 'other', 'data')"
	join "unix:$T/hub1.sock" notes=a.db
	join "unix:$T/hub2.sock" notes=x.db
	before_a=$(dump a.db)
	before_h2=$(dump hub2/notes.db)
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/hub2.sock" notes=a.db
	assert_failure 78
	assert_output ''
	assert_stderr_contains "guid"
	assert_stderr_contains "'notes'"
	assert_equal "$(dump a.db)" "$before_a"
	assert_equal "$(dump hub2/notes.db)" "$before_h2"
	assert_log hub2.err unix "working set 'notes': the site's dataset guid differs from the hub's: different data, not synced"
	# Both hubs still serve.
	join "unix:$T/hub1.sock" notes=a1.db
	join "unix:$T/hub2.sock" notes=x1.db
	assert_same a.db a1.db
	assert_same x.db x1.db
}

# --- a hub killed with SIGKILL -----------------------------------------------

@test "a hub killed with SIGKILL restarts on its data and socket" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	join "$SOCK" notes=a.db
	kill -KILL "$HUB_PID"
	reap "$HUB_PID"
	[ -S "$T/hub.sock" ] || fail "the socket file went away; the test wants a stale one"
	start_hub hub2 -l "$SOCK" -d hub --create
	join "$SOCK" notes=b.db
	assert_equal "$(notes b.db)" "$(notes a.db)"
	assert_same a.db b.db
	assert_integrity hub/notes.db
	# And it goes on taking changes.
	sql b.db "UPDATE notes SET title = 'after' WHERE id = 1"
	join "$SOCK" notes=b.db
	join "$SOCK" notes=a.db
	assert_equal "$(sqlite3 a.db 'SELECT title FROM notes WHERE id = 1')" after
	assert_integrity hub/notes.db
}

@test "a hub killed with SIGKILL mid-stream keeps a sound database" {
	local i
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	for ((i = 100; i < 160; i++)); do
		sql a.db "INSERT INTO notes VALUES($i, 'row $i', randomblob(2000))"
	done
	kill -KILL "$HUB_PID"
	reap "$HUB_PID"
	assert_integrity hub/notes.db
	start_hub hub2 -l "$SOCK" -d hub --create
	# The follow site reconnects by itself and sends the rest.
	wait_sql hub/notes.db 'SELECT count(*) FROM notes' 63
	join "$SOCK" notes=b.db
	assert_same a.db b.db
	assert_integrity hub/notes.db
}

# --- hostile bytes -----------------------------------------------------------

# bad_peer CASE: send CASE's bytes (rawpeer.py) to the TCP hub at $ADDR;
# the hub must answer with one ERROR frame, close the connection, and log
# exactly: connected, one line naming the peer, disconnected.  $BAD_LOG
# is the line.
bad_peer() {
	local case=$1 peer
	run python3 "$BATS_TEST_DIRNAME/rawpeer.py" "$ADDR" "$case"
	assert_success
	peer=${lines[0]#peer }
	[[ "$peer" =~ ^127\.0\.0\.1:[0-9]+$ ]] || fail "rawpeer: '$output'"
	assert_line --index 1 closed
	[[ "${lines[2]-}" == "error "-* ]] || fail "$case: the hub's answer is not an error frame: '$output'"
	[ "${#lines[@]}" -eq 3 ] || fail "$case: more than one frame in the answer: '$output'"
	BAD_CODE=$(cut -d' ' -f2 <<<"${lines[2]}")
	wait_lines hub.err 1 "^wsync-serve: $peer: disconnected\$"
	run grep -F "wsync-serve: $peer: " hub.err
	[ "${#lines[@]}" -eq 3 ] || fail "$case: want 3 log lines for $peer, got:
$output"
	assert_line --index 0 "wsync-serve: $peer: connected"
	assert_line --index 2 "wsync-serve: $peer: disconnected"
	BAD_LOG=${lines[1]#"wsync-serve: $peer: "}
	kill -0 "$HUB_PID" || fail "$case: the hub died"
}

@test "hostile bytes: the hub logs the peer, drops it and keeps serving" {
	local port
	port=$(free_port)
	ADDR=127.0.0.1:$port
	start_hub hub -l "$ADDR" -d hub --create --insecure
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --insecure "$ADDR" notes=a.db
	local fa=$PID
	wait_lines hub.err 1 "joined working set 'notes'"

	bad_peer garbage
	assert_equal "$BAD_LOG" "byte 0: not a wsync stream (bad magic)"
	assert_equal "$BAD_CODE" -4
	bad_peer truncated
	assert_equal "$BAD_LOG" "frame at byte 10: truncated (stream ends after 15 bytes of it)"
	assert_equal "$BAD_CODE" -9
	bad_peer oversized
	assert_equal "$BAD_LOG" "frame at byte 10: frame larger than the maximum"
	assert_equal "$BAD_CODE" -6
	bad_peer stream-version
	assert_equal "$BAD_LOG" "byte 8: unsupported stream version"
	assert_equal "$BAD_CODE" -5
	bad_peer bad-crc
	assert_equal "$BAD_LOG" "frame at byte 10: bad checksum"
	assert_equal "$BAD_CODE" -7
	bad_peer no-hello
	assert_equal "$BAD_LOG" "the session must start with a hello frame"
	assert_equal "$BAD_CODE" -8

	# The follow site is still connected, and the hub still syncs.
	kill -0 "$fa" || fail "the follow site died"
	join --insecure "$ADDR" notes=b.db
	assert_same a.db b.db
	sql a.db "INSERT INTO notes VALUES(7, 'live', NULL)"
	wait_sql hub/notes.db 'SELECT title FROM notes WHERE id = 7' live
	join --insecure "$ADDR" notes=b.db
	assert_same a.db b.db
	assert_integrity hub/notes.db
	run grep -c reconnecting fa.err
	assert_output 0
}

@test "hostile bytes: a HELLO with the wrong protocol version" {
	local port
	port=$(free_port)
	ADDR=127.0.0.1:$port
	start_hub hub -l "$ADDR" -d hub --create --insecure
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --insecure "$ADDR" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	bad_peer version
	assert_equal "$BAD_LOG" "peer speaks protocol version 2, this program speaks 1"
	assert_equal "$BAD_CODE" -5
	join --insecure "$ADDR" notes=b.db
	assert_same a.db b.db
	assert_integrity hub/notes.db
}

@test "hostile bytes over a unix socket" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	join "$SOCK" notes=a.db
	run python3 "$BATS_TEST_DIRNAME/rawpeer.py" "$SOCK" garbage
	assert_success
	assert_line --index 1 closed
	assert_line --index 2 "error -4 byte 0: not a wsync stream (bad magic)"
	run python3 "$BATS_TEST_DIRNAME/rawpeer.py" "$SOCK" oversized
	assert_success
	assert_line --index 1 closed
	join "$SOCK" notes=b.db
	assert_same a.db b.db
	assert_log hub.err unix "byte 0: not a wsync stream (bad magic)"
	assert_log hub.err unix "frame at byte 10: frame larger than the maximum"
	assert_integrity hub/notes.db
}

@test "a slow reader is paced, not disconnected, and the others keep up" {
	start_hub hub -l "$SOCK" -d hub --create --queue-max 65536
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" notes=b.db
	spawn fs "$WS_BIN/wsync-join" -f "$SOCK" notes=s.db
	local slow=$PID
	wait_lines hub.err 3 "joined working set 'notes'"
	wait_sql s.db 'SELECT count(*) FROM notes' 3
	# s stops reading; a writes far more than s's queue and socket hold.
	kill -STOP "$slow"
	local i
	for ((i = 0; i < 40; i++)); do
		sql a.db "INSERT INTO notes(title, body) WITH RECURSIVE c(x) AS (SELECT 1
		    UNION ALL SELECT x + 1 FROM c WHERE x < 50) SELECT 'bulk', hex(randomblob(200)) FROM c"
	done
	# b gets every row while s is stuck; the hub holds s's batches back
	# and sends them from its store once s reads again.
	wait_sql b.db 'SELECT count(*) FROM notes' 2003
	kill -CONT "$slow"
	wait_sql s.db 'SELECT count(*) FROM notes' 2003
	assert_same a.db s.db
	assert_same a.db b.db
	assert_integrity s.db
	# Nobody was disconnected, and s's session is the one it started with.
	run grep -c 'disconnected' hub.err
	assert_output 0
	assert_equal "$(grep -c "joined working set 'notes'" hub.err)" 3
	assert_equal "$(cat fs.err)" ""
}

@test "a catch-up far larger than the queue bound is paced from the store" {
	start_hub hub -l "$SOCK" -d hub --create --queue-max 65536
	make_site a.db
	join "$SOCK" notes=a.db
	local n
	# 30 batches of 1 MB (a sync seals what was written since the last;
	# n, as the helpers that join calls use a global i).
	for ((n = 0; n < 30; n++)); do
		sql a.db "INSERT INTO notes(title, body) WITH RECURSIVE c(x) AS (SELECT 1
		    UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT 'bulk', randomblob(10000) FROM c"
		join "$SOCK" notes=a.db
	done
	local before
	before=$(awk '/^VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
	# b lacks 30 MB; the hub queues 64 KiB of it at a time.
	join "$SOCK" notes=b.db
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 3003
	assert_equal "$(sqlite3 b.db '.sha3sum notes')" "$(sqlite3 a.db '.sha3sum notes')"
	assert_integrity b.db
	local after
	after=$(awk '/^VmHWM/ { print $2 }' "/proc/$HUB_PID/status")
	# Queued whole, the catch-up alone would take 30 MB more (ASan's
	# quarantine keeps what is freed: no figure there).
	ws_sanitized || [ "$((after - before))" -lt 15000 ] ||
	    fail "the hub's peak memory grew by $((after - before)) kB"
	run grep -c 'queue full' hub.err
	assert_output 0
}

@test "a batch larger than the queue bound still reaches a site" {
	start_hub hub -l "$SOCK" -d hub --create --queue-max 4096
	make_site a.db
	join "$SOCK" notes=a.db
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" notes=b.db
	wait_lines hub.err 2 "joined working set 'notes'"
	wait_sql b.db 'SELECT count(*) FROM notes' 3
	sql a.db "INSERT INTO notes(title, body) WITH RECURSIVE c(x) AS (SELECT 1
	    UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT 'big', hex(randomblob(100)) FROM c"
	join "$SOCK" notes=a.db
	wait_sql b.db 'SELECT count(*) FROM notes' 103
	assert_same a.db b.db
	run grep -c 'queue full' hub.err
	assert_output 0
}

@test "a peer that connects and says nothing does not block the others" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	# Holds a connection open, silent, for the whole test.
	spawn silent python3 -c 'import socket,sys,time
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); time.sleep(60)' "$T/hub.sock"
	wait_lines hub.err 1 ': connected$'
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	assert_same a.db b.db
}

# --- follow mode -------------------------------------------------------------

@test "follow: a row written on one site appears on the other" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" notes=b.db
	wait_lines hub.err 2 "joined working set 'notes'"
	# b starts empty and catches up.
	wait_sql b.db 'SELECT count(*) FROM notes' 3
	sql a.db "INSERT INTO notes VALUES(42, 'live', 'from a')"
	wait_sql b.db 'SELECT title FROM notes WHERE id = 42' live
	# And back, with an update and a delete.
	sql b.db "UPDATE notes SET body = 'edited on b' WHERE id = 42; DELETE FROM notes WHERE id = 2"
	wait_sql a.db 'SELECT body FROM notes WHERE id = 42' 'edited on b'
	wait_sql a.db 'SELECT count(*) FROM notes WHERE id = 2' 0
	# A transaction arrives whole.
	sql a.db "BEGIN; INSERT INTO notes VALUES(60, 'x', 1); INSERT INTO notes VALUES(61, 'y', 2); COMMIT"
	wait_sql b.db 'SELECT count(*) FROM notes WHERE id IN (60, 61)' 2
	assert_same a.db b.db
	# Nothing to report while all is well.
	assert_equal "$(cat fa.err fb.err fa.out fb.out)" ""
	assert_integrity a.db
	assert_integrity b.db
}

@test "follow: a one-shot site's changes reach a follow site" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	join "$SOCK" notes=a.db
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" notes=b.db
	wait_sql b.db 'SELECT count(*) FROM notes' 3
	sql a.db "UPDATE notes SET title = 'pushed' WHERE id = 3"
	join "$SOCK" notes=a.db
	wait_sql b.db 'SELECT title FROM notes WHERE id = 3' pushed
}

@test "follow: SIGTERM stops a follow site with status 0" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	local fa=$PID
	wait_lines hub.err 1 "joined working set 'notes'"
	kill -TERM "$fa"
	reap "$fa"
	assert_equal "$REAPED" 0
	wait_lines hub.err 1 ': disconnected$'
	assert_integrity a.db
}

@test "follow: a site reconnects after the hub restarts" {
	start_hub hub -l "$SOCK" -d hub --create
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" notes=a.db
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" notes=b.db
	wait_sql b.db 'SELECT count(*) FROM notes' 3
	kill -TERM "$HUB_PID"
	reap "$HUB_PID"
	sql a.db "INSERT INTO notes VALUES(9, 'while down', NULL)"
	start_hub hub2 -l "$SOCK" -d hub
	wait_sql b.db 'SELECT title FROM notes WHERE id = 9' 'while down'
	# They said they lost the hub, with the prefix.
	[[ "$(head -n1 fa.err)" == "wsync-join: "*"reconnecting in "*" ms" ]] ||
	    fail "fa.err: $(cat fa.err)"
}
