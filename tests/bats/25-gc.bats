#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 25-gc.bats - working sets joining and leaving a live session through
# wsync-join --sets, and the hub's garbage collection: history every site
# holds is collected on the hub and the sites, a site that comes back
# lacking collected history gets a full copy and keeps what it wrote
# while away, --retain keeps history for departed sites, and forwarded
# clocks lose the coordinates the whole star holds.
#
# Hubs here heartbeat every second, so collection (once a heartbeat
# interval) happens within a few seconds.  Every wait is bounded.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-15}

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	SOCK="unix:$T/hub.sock"
	ws_need wsync-serve
	ws_need wsync-join
	ws_need wsync-inspect
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v jq >/dev/null || fail "these tests need jq"
}

teardown() {
	proc_teardown
}

dump() {
	sqlite3 -header -quote "$1" 'SELECT * FROM notes ORDER BY id'
}

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

make_site() {
	sql "$1" "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    INSERT INTO notes VALUES(1, 'one', 'first'), (2, 'two', NULL),
	    (3, 'three', 'third')"
}

# site_id DB: the site id of a working-set database, in lowercase hex.
site_id() {
	sqlite3 "$1" "SELECT lower(hex(value)) FROM wsync_meta WHERE key = 'site'"
}

# conflicts DB: the conflict list in a site-independent form and order.
conflicts() {
	sqlite3 "$1" "SELECT t.name, hex(c.pk), c.col, c.lostdel, hex(s.site),
	    c.counter, c.lamport, quote(c.value)
	    FROM wsync_conflicts c JOIN wsync_sites s ON s.id = c.site
	    JOIN wsync_tables t ON t.id = c.tbl
	    ORDER BY t.name, c.pk, c.col, s.site, c.counter"
}

# log_count DB: entries in the change log (the newest usn's marker aside).
log_count() {
	sqlite3 "$1" 'SELECT count(*) FROM wsync_log WHERE tbl != 0'
}

# --- working sets joining and leaving a session ------------------------------

@test "sets: one added and one removed mid-session, on the same connection" {
	start_hub hub -d hub --create
	make_site a.db
	sql t.db "CREATE TABLE todo(k TEXT PRIMARY KEY, done INTEGER);
	    INSERT INTO todo VALUES('milk', 0)"
	sql e.db "CREATE TABLE extra(id INTEGER PRIMARY KEY, v); INSERT INTO extra VALUES(1, 'x')"
	printf '# my sets\nnotes=a.db\n\ntodo=t.db\n' >sets.txt
	spawn fa "$WS_BIN/wsync-join" -f --sets sets.txt "$SOCK"
	wait_lines hub.err 1 "joined working set 'notes' on channel 1"
	wait_lines hub.err 1 "joined working set 'todo' on channel 2"
	wait_sql hub/todo.db "SELECT k FROM todo" milk
	# todo leaves, extra joins: atomically replaced, as editors do.
	printf 'extra=e.db\nnotes=a.db\n' >sets.new
	mv sets.new sets.txt
	wait_lines hub.err 1 "left channel 2"
	wait_lines hub.err 1 "joined working set 'extra' on channel 3"
	wait_sql hub/extra.db "SELECT v FROM extra" x
	# All on the one session the site opened.
	assert_equal "$(grep -c ': connected$' hub.err)" 1
	assert_equal "$(grep -oE '^wsync-serve: unix#[0-9]+: ' hub.err | sort -u | wc -l)" 1
	wait_lines fa.err 1 '^wsync-join: todo: leaving the session \(sets file\)$'
	wait_lines fa.err 1 '^wsync-join: extra: joining the session \(sets file\)$'
	# todo no longer syncs; notes and extra still do.
	sql t.db "INSERT INTO todo VALUES('eggs', 1)"
	sql a.db "INSERT INTO notes VALUES(9, 'nine', 'after')"
	sql e.db "INSERT INTO extra VALUES(2, 'y')"
	wait_sql hub/notes.db "SELECT title FROM notes WHERE id = 9" nine
	wait_sql hub/extra.db "SELECT count(*) FROM extra" 2
	sleep 0.5
	assert_equal "$(sqlite3 hub/todo.db 'SELECT count(*) FROM todo')" 1
	# A bad edit is reported and changes nothing.
	printf 'notes=a.db\nnot a set\n' >sets.txt
	wait_lines fa.err 1 '^wsync-join: sets.txt:2: want WSID=DBFILE$'
	sql e.db "INSERT INTO extra VALUES(3, 'z')"
	wait_sql hub/extra.db "SELECT count(*) FROM extra" 3
	# Adding one already synced is ignored; the last line for an id wins.
	printf 'notes=a.db\nextra=e.db\nnotes=a.db\n' >sets.txt
	sleep 0.5
	assert_equal "$(grep -c "joined working set 'notes'" hub.err)" 1
	assert_integrity a.db
	assert_integrity hub/notes.db
}

@test "sets: a one-shot sync reads the sets file once" {
	start_hub hub -d hub --create
	make_site a.db
	sql t.db "CREATE TABLE todo(k TEXT PRIMARY KEY, done INTEGER);
	    INSERT INTO todo VALUES('milk', 0)"
	printf 'todo=t.db\n' >sets.txt
	join --sets sets.txt "$SOCK" notes=a.db
	assert_equal "$(sqlite3 hub/todo.db 'SELECT k FROM todo')" milk
	assert_equal "$(sqlite3 hub/notes.db 'SELECT count(*) FROM notes')" 3
	# Only the file: no operands needed.
	join --sets sets.txt "$SOCK"
}

@test "sets: a missing sets file exits 66, a bad line 78" {
	run --separate-stderr "$WS_BIN/wsync-join" --sets nope.txt "$SOCK"
	assert_failure 66
	assert_stderr "wsync-join: cannot read sets file 'nope.txt': no such file or directory"
	printf 'notes=a.db\n=x.db\n' >sets.txt
	run --separate-stderr "$WS_BIN/wsync-join" --sets sets.txt "$SOCK"
	assert_failure 78
	assert_stderr "wsync-join: sets.txt:2: bad working-set id ''"
	printf 'no equals sign\n' >sets.txt
	run --separate-stderr "$WS_BIN/wsync-join" --sets sets.txt "$SOCK"
	assert_failure 78
	assert_stderr "wsync-join: sets.txt:1: want WSID=DBFILE"
	[ ! -e a.db ] || fail "a.db was created"
}

@test "sets: --sets does not go with --conflicts" {
	run --separate-stderr "$WS_BIN/wsync-join" --sets s.txt --conflicts notes=a.db
	assert_failure 64
	assert_stderr_line 0 "wsync-join: --sets goes with a hub, not --conflicts or --resolve"
}

# --- garbage collection and full copies --------------------------------------

@test "gc: the hub and a following site collect what every site holds" {
	start_hub hub -d hub --create --heartbeat 1 --retain 0
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --heartbeat 1 "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	sql a.db "UPDATE notes SET title = 'uno' WHERE id = 1; DELETE FROM notes WHERE id = 2"
	wait_sql hub/notes.db "SELECT title FROM notes WHERE id = 1" uno
	wait_lines hub.err 1 "^wsync-serve: working set 'notes': collected [0-9]+ change-log entries every site holds$"
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	wait_sql a.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	# The data is untouched, and keeps syncing.
	assert_equal "$(dump hub/notes.db)" "$(dump a.db)"
	join "$SOCK" notes=b.db
	assert_same a.db b.db
	sql a.db "INSERT INTO notes VALUES(4, 'four', 'x')"
	wait_sql hub/notes.db "SELECT title FROM notes WHERE id = 4" four
	assert_integrity hub/notes.db
	assert_integrity a.db
}

@test "gc: a site that lacks collected history gets a full copy and keeps its own writes" {
	start_hub hub -d hub --create --heartbeat 1 --retain 0
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --heartbeat 1 "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	join "$SOCK" notes=b.db
	# b is away; a goes on; the hub collects (b is not counted).
	sql a.db "UPDATE notes SET title = 'uno' WHERE id = 1; DELETE FROM notes WHERE id = 2;
	    INSERT INTO notes VALUES(4, 'four', 'x')"
	wait_sql hub/notes.db "SELECT count(*) FROM notes WHERE id = 4" 1
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	# Meanwhile b writes: a cell, a new row, and the row a deleted.
	sql b.db "UPDATE notes SET body = 'b away' WHERE id = 3; INSERT INTO notes VALUES(6, 'six', 6);
	    UPDATE notes SET title = 'two on b' WHERE id = 2"
	join "$SOCK" notes=b.db
	wait_lines hub.err 1 "sending a full copy of working set 'notes' \(the site lacks history collected here\)$"
	wait_sql a.db "SELECT count(*) FROM notes WHERE id = 6" 1
	# The row b wrote after a deleted it comes back with b's cells only,
	# on every site alike.
	assert_equal "$(dump b.db)" "'id','title','body'
1,'uno','first'
2,'two on b',NULL
3,'three','b away'
4,'four','x'
6,'six',6"
	wait_sql a.db "SELECT title FROM notes WHERE id = 2" 'two on b'
	assert_same a.db b.db
	assert_same hub/notes.db b.db
	# Now b holds the horizon: the next sync is incremental again.
	join "$SOCK" notes=b.db
	assert_equal "$(grep -c 'sending a full copy' hub.err)" 1
	assert_integrity b.db
	assert_integrity a.db
	assert_integrity hub/notes.db
}

@test "gc: --retain keeps the history a departed site lacks" {
	start_hub hub -d hub --create --heartbeat 1 --retain 3600
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --heartbeat 1 "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	join "$SOCK" notes=b.db
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	sql a.db "UPDATE notes SET title = 'uno' WHERE id = 1"
	wait_sql hub/notes.db "SELECT title FROM notes WHERE id = 1" uno
	# a's report reaches the hub, but b's last clock holds collection back.
	sleep 3
	[ "$(log_count hub/notes.db)" -ge 1 ] || fail "the hub collected what b lacks"
	join "$SOCK" notes=b.db
	assert_equal "$(sqlite3 b.db 'SELECT title FROM notes WHERE id = 1')" uno
	run grep -c 'sending a full copy' hub.err
	assert_output 0
}

@test "gc: forwarded clocks leave out a departed site's coordinate" {
	start_hub hub -d hub --create --heartbeat 1 --retain 0
	make_site a.db
	spawn fa "$WS_BIN/wsync-join" -f --heartbeat 1 "$SOCK" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	spawn fb "$WS_BIN/wsync-join" -f --heartbeat 1 --log b.log "$SOCK" notes=b.db
	wait_lines hub.err 2 "joined working set 'notes'"
	wait_sql b.db "SELECT count(*) FROM notes" 3
	# c writes once and leaves; a and b get its row.
	sql c.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body)"
	join "$SOCK" notes=c.db
	sql c.db "INSERT INTO notes VALUES(7, 'from c', NULL)"
	join "$SOCK" notes=c.db
	wait_sql a.db "SELECT title FROM notes WHERE id = 7" 'from c'
	wait_sql b.db "SELECT title FROM notes WHERE id = 7" 'from c'
	local c
	c=$(site_id c.db)
	# Once the hub collected c's batch, a batch a writes after seeing it
	# reaches b without c in its clock, with its Lamport number instead.
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log l JOIN wsync_batches b ON l.usn BETWEEN b.first_usn AND b.last_usn JOIN wsync_sites s ON s.id = b.site WHERE lower(hex(s.site)) = '$c'" 0
	sleep 1.5
	sql a.db "UPDATE notes SET body = 'seen c' WHERE id = 7"
	wait_sql b.db "SELECT body FROM notes WHERE id = 7" 'seen c'
	"$WS_BIN/wsync-inspect" --json b.log >b.jsonl
	run jq -c --arg c "$c" --arg a "$(site_id a.db)" 'select(.dir == "in" and .frame.type == "batch")
	    | .frame | select(.dot | startswith($a)) | [(.clock | has($c)), (.lamport != null)]' b.jsonl
	assert_success
	assert_equal "${lines[${#lines[@]}-1]}" '[false,true]'
	# The hub itself still holds c's batches in full.
	assert_equal "$(sqlite3 hub/notes.db "SELECT count(*) FROM wsync_sites WHERE lower(hex(site)) = '$c'")" 1
	assert_same a.db b.db
}

@test "gc: a batch concurrent with collected history merges alike on every site" {
	# Found building tests/chaos.  a's write W and b's write v to the same cell
	# are concurrent; W wins (a higher Lamport number).  c receives W,
	# reports, and leaves before v reaches the hub; the hub then merges v
	# (a conflict, W stays), and may collect W once every site holds it,
	# but must not while c still lacks v: c, merging v after collecting
	# W, would take v as the newer value.
	start_hub hub -d hub --create --heartbeat 1 --retain 3600
	make_site a.db
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	join "$SOCK" notes=c.db
	local i
	for i in 1 2 3; do
		sql a.db "UPDATE notes SET body = 'a$i' WHERE id = 3"
		join "$SOCK" notes=a.db
	done
	sql a.db "UPDATE notes SET title = 'W' WHERE id = 1"
	sql b.db "UPDATE notes SET title = 'v' WHERE id = 1"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=c.db
	join "$SOCK" notes=b.db
	join "$SOCK" notes=a.db
	# Collection rounds (once a second) with a's, b's and c's last clocks.
	wait_lines hub.err 1 "^wsync-serve: working set 'notes': collected [0-9]+ change-log entries every site holds$"
	sleep 2
	join "$SOCK" notes=c.db
	assert_equal "$(sqlite3 hub/notes.db 'SELECT title FROM notes WHERE id = 1')" W
	assert_same hub/notes.db a.db
	assert_same hub/notes.db b.db
	assert_same hub/notes.db c.db
	assert_equal "$(sqlite3 c.db 'SELECT value FROM wsync_conflicts')" v
	# Once c holds v too, W and v are collected.
	sleep 2.5
	assert_equal "$(log_count hub/notes.db)" 0
}

@test "gc: a full copy brings the conflicts of the history it replaces" {
	# Found building tests/chaos.  s is away while a and b write one cell
	# concurrently, and a clears a conflict s knows of; the hub collects
	# all of it (s does not count with --retain 0), so s gets a full copy:
	# it must list the conflicts every other replica lists.
	start_hub hub -d hub --create --heartbeat 1 --retain 0
	make_site a.db
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	join "$SOCK" notes=s.db
	sql a.db "UPDATE notes SET title = 'a3' WHERE id = 3"
	sql s.db "UPDATE notes SET title = 's3' WHERE id = 3"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=s.db
	join "$SOCK" notes=a.db
	assert_equal "$(sqlite3 s.db 'SELECT count(*) FROM wsync_conflicts')" 1
	sql a.db "UPDATE notes SET title = 'A3' WHERE id = 3"
	sql a.db "UPDATE notes SET title = 'A' WHERE id = 1"
	sql b.db "UPDATE notes SET title = 'B' WHERE id = 1"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	join "$SOCK" notes=a.db
	spawn fa "$WS_BIN/wsync-join" -f --heartbeat 1 "$SOCK" notes=a.db
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	join "$SOCK" notes=s.db
	wait_lines hub.err 1 "sending a full copy of working set 'notes'"
	assert_same hub/notes.db s.db
	assert_equal "$(sqlite3 hub/notes.db 'SELECT count(*) FROM wsync_conflicts')" 1
	assert_equal "$(conflicts s.db)" "$(conflicts hub/notes.db)"
	assert_equal "$(conflicts b.db)" "$(conflicts hub/notes.db)"
	assert_equal "$(conflicts a.db)" "$(conflicts hub/notes.db)"
	assert_integrity s.db
}
