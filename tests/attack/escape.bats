#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# escape.bats - strings from the wire never drive a terminal.  A site
# (escape.py) sends a real hub a batch for a table named
# "t ESC[2J NL forged line" and, in another session, an ERROR frame whose
# text is "bye ESC[2J NL forged line".  The hub keeps a --log.  Its own
# diagnostics, and wsync-inspect's timeline, --stats, --check and
# database view of what it wrote, show those strings escaped (escape.h:
# \xNN, \\; the timeline's quoted text also \n), each on its one line;
# --json keeps the exact bytes.  The hub's database is unchanged, and a
# legitimate site still syncs.

bats_require_minimum_version 1.5.0
load ../bats/helper

WAIT_S=${WAIT_S:-10}
ESCAPE="$BATS_TEST_DIRNAME/escape.py"
ESC=$'\e'

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
	start_hub hub -l "$SOCK" -d hub --create --heartbeat 3600 --log hub.log
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(1, 'one')"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	sqlite3 hub/notes.db 'SELECT * FROM notes; SELECT count(*) FROM wsync_log' >before.txt
	run --separate-stderr python3 "$ESCAPE" "$SOCK" notes
	[ "$status" -eq 0 ] || fail "escape.py exited $status: $stderr"
	assert_output "error -16"
}

teardown() {
	proc_teardown
}

# timeline [OPTION...]: wsync-inspect of hub.log without the times, and
# without clocks and heartbeats.
timeline() {
	run --separate-stderr "$WS_BIN/wsync-inspect" "$@" hub.log
	assert_success
	assert_stderr_empty
	set_output "$(printf '%s\n' "$output" | sed 's/^[0-9][^ ]*Z  //' |
	    grep -v -e '  CLOCK  ' -e '  HEARTBEAT  ')"
}

# set_output TEXT: $output and $lines, as if run had printed TEXT.
set_output() {
	output=$1
	mapfile -t lines <<<"$1"
}

# assert_no_controls: $output holds no ESC byte, and no C0 control but
# the newlines that end its lines.
assert_no_controls() {
	if printf '%s' "$output" | LC_ALL=C grep -q '[[:cntrl:]]'; then
		fail "a control character got out: $(printf '%s' "$output" | od -c | head)"
	fi
}

assert_hub_unchanged_and_syncing() {
	kill -0 "$HUB_PID" 2>/dev/null || fail "the hub exited: $(cat hub.err)"
	assert_equal "$(sqlite3 hub/notes.db 'SELECT * FROM notes;
	    SELECT count(*) FROM wsync_log')" "$(cat before.txt)"
	sql a.db "INSERT INTO notes VALUES(2, 'after')"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	assert_equal "$(sqlite3 b.db 'SELECT title FROM notes WHERE id = 2')" after
}

@test "the hub's own diagnostics escape the table name and the site's error text" {
	grep -q "^wsync-serve: unix#[0-9]*: working set 'notes': table 't\\\\x1b\[2J\\\\x0aforged line' is not tracked here\$" hub.err ||
	    fail "no escaped refusal in hub.err: $(cat -A hub.err)"
	grep -q '^wsync-serve: unix#[0-9]*: the site reports: bye\\x1b\[2J\\x0aforged line$' hub.err ||
	    fail "no escaped site error in hub.err: $(cat -A hub.err)"
	run grep -c forged hub.err
	assert_output 2
	assert_hub_unchanged_and_syncing
}

@test "timeline: a hostile table name and error text, escaped, one line each" {
	timeline
	assert_no_controls
	assert_line --regexp "^<  unix#[0-9]+  notes  BATCH  site=[0-9a-f]{8} dot=[0-9a-f]{8}:1 clock=[0-9a-f]{8}:1 1 change\$"
	assert_line "  't\\x1b[2J\\nforged line' pk=(1) insert x='v'"
	assert_line --regexp "^>  unix#[0-9]+  -  ERROR  code=-16 \\(schema mismatch\\) message='working set ''notes'': table ''t\\\\x1b\\[2J\\\\nforged line'' is not tracked he\\.\\.\\.'\\(66 bytes\\)\$"
	assert_line --regexp "^<  unix#[0-9]+  -  ERROR  code=-8 \\(malformed data\\) message='bye\\\\x1b\\[2J\\\\nforged line'\$"
	# "forged line" starts no line of its own.
	refute_line --regexp '^forged'
	run grep -c forged <<<"$output"
	assert_output 3
	assert_hub_unchanged_and_syncing
}

@test "--stats: the table's row is escaped" {
	run --separate-stderr "$WS_BIN/wsync-inspect" --stats hub.log
	assert_success
	assert_no_controls
	assert_line "  $(printf '%-32s %10d %10d %10d' "'t\\x1b[2J\\nforged line'" 1 0 0)"
	refute_line --regexp '^forged'
}

@test "--json keeps the exact bytes; --encode of it gives the log back" {
	run --separate-stderr "$WS_BIN/wsync-inspect" --json hub.log
	assert_success
	assert_no_controls
	# JSON's own escapes, decoded: the very strings escape.py sent.
	printf '%s\n' "$output" >hub.jsonl
	python3 -c '
import json, sys
evil = "\x1b[2J\nforged line"
names, texts = set(), set()
for line in open(sys.argv[1]):
    f = json.loads(line)["frame"]
    names.update(t["name"] for t in f.get("tables", []))
    names.update(c["table"] for c in f.get("changes", []))
    if f["type"] == "error":
        texts.add(f["message"])
assert names == {"notes", "t" + evil}, names
assert texts == {"bye" + evil, "working set \x27notes\x27: table \x27t" + evil +
                 "\x27 is not tracked here"}, texts
' hub.jsonl
	"$WS_BIN/wsync-inspect" --json hub.log | "$WS_BIN/wsync-inspect" --encode >again.log
	cmp hub.log again.log
}

@test "--check: the message about a damaged frame quotes the name escaped" {
	# A batch that describes the hostile table twice: the hub refuses it,
	# and its log keeps it as it came; --check stops there (65).
	run --separate-stderr python3 "$ESCAPE" "$SOCK" notes twice
	[ "$status" -eq 0 ] || fail "escape.py exited $status: $stderr"
	assert_output "error -8"
	run --separate-stderr "$WS_BIN/wsync-inspect" --check hub.log
	assert_equal "$status" 65
	assert_output ''
	[[ "$stderr" =~ ^wsync-inspect:\ \'hub\.log\':\ frame\ at\ byte\ [0-9]+:\ .*table\ \'t\\x1b\[2J\\x0aforged\ line\'\ described\ twice$ ]] ||
	    fail "unexpected stderr: $(printf '%s' "$stderr" | cat -A)"
	set_output "$stderr"
	assert_no_controls
	# --salvage goes on; the problem goes to stderr, escaped, one line.
	run --separate-stderr "$WS_BIN/wsync-inspect" --check --salvage hub.log
	assert_equal "$status" 65
	set_output "$stderr"
	assert_no_controls
	assert_line --partial "table 't\x1b[2J\x0aforged line' described twice"
	assert_hub_unchanged_and_syncing
}

@test "a database with hostile table and column names: the view escapes them" {
	python3 -c '
import sqlite3
c = sqlite3.connect("e.db")
c.execute("CREATE TABLE \"e\x1b[2J\nforged\"(id INTEGER PRIMARY KEY, \"c\x1b]0;x\x07\" TEXT)")
c.commit()'
	join "$SOCK" notes2=e.db
	run --separate-stderr "$WS_BIN/wsync-inspect" e.db
	assert_success
	assert_no_controls
	assert_line "  'e\\x1b[2J\\nforged' (id, 'c\\x1b]0;x\\x07'; primary key id)"
	run --separate-stderr "$WS_BIN/wsync-inspect" --json e.db
	assert_success
	python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert [t["name"] for t in d["tables"]] == ["e\x1b[2J\nforged"], d["tables"]
assert d["tables"][0]["cols"] == ["id", "c\x1b]0;x\x07"], d["tables"]' <<<"$output"
}
