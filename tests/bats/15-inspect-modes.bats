#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 15-inspect-modes.bats - the views of wsync-inspect on real session logs:
# the timeline, --json, --stats and --check against golden outputs; damaged
# input (flipped bytes, truncation, garbage) with exact byte offsets and
# --salvage; clocks that go back and dots with gaps; filters; databases;
# URLs through a local HTTP server and file://; --follow; colour.
#
# The sample logs and database in tests/data were made by real
# wsync-serve and wsync-join runs (tests/data/make-sample.sh) and are
# checked in, so every time in the goldens comes from the log.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=10
DATA="$BATS_TEST_DIRNAME/../data"
# Frame offsets in sample-site.log (a 10-byte preamble, then records).
SITE_F7=589   # the 7th record, 59 bytes long
SITE_F8=648
SITE_LAST=2177
SITE_SIZE=2270

setup() {
	ws_need wsync-inspect
	I="$WS_BIN/wsync-inspect"
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	cp "$DATA"/sample-hub.log "$DATA"/sample-site.log "$DATA"/sample-site.db .
	chmod u+w sample-*
}

teardown() {
	proc_teardown
}

# golden NAME ARG...: wsync-inspect ARG... must succeed silently and write
# exactly tests/data/NAME.
golden() {
	local name=$1
	shift
	run_to out "$I" "$@"
	assert_success
	assert_stderr_empty
	cmp out "$DATA/$name" || fail "output differs from $name:
$(diff "$DATA/$name" out | head -n 40)"
}

# --- golden outputs ------------------------------------------------------------

@test "timeline of a hub's and a site's session log (golden)" {
	golden sample-hub.txt sample-hub.log
	golden sample-site.txt sample-site.log
	# The format: time, direction, peer, working set, type, summary.
	run --separate-stderr "$I" sample-site.log
	assert_line --index 0 --regexp '^2026-11-22T00:24:58\.[0-9]{3}Z  >  unix:/tmp/wsync-sample/hub\.sock  -  HELLO  site=[0-9a-f]{32} role=site protocol=1$'
	assert_line --regexp '^  notes pk=\(2\) insert title='"'it''s two'"' body=NULL$'
	assert_line --regexp "^  notes pk=\\(3\\) insert title='three' body=x'00ff10'\$"
	assert_line --regexp '^  notes pk=\(4\) insert title='"'four'"' body=4\.5$'
}

@test "--json of a log (golden) and --encode back: byte-identical" {
	golden sample-hub.jsonl --json sample-hub.log
	run_to back.log "$I" --encode "$DATA/sample-hub.jsonl"
	assert_success
	assert_stderr_empty
	cmp back.log sample-hub.log
	# Every line is a log record for jq.
	assert_equal "$(jq -r .type "$DATA/sample-hub.jsonl" | sort -u)" log
	assert_equal "$(jq -c 'select(.frame.type == "batch") | .frame.changes | length' \
	    "$DATA/sample-hub.jsonl" | paste -sd ' ')" "3 3 1 1 3 3"
}

@test "--stats of two logs (golden), as text and as JSON" {
	golden sample-stats.txt --stats sample-hub.log sample-site.log
	golden sample-stats.json --stats --json sample-hub.log sample-site.log
	# The hub's log holds each of the 3 batches twice (received, then
	# forwarded), and the site's log once more: 6 copies.  Tables count
	# distinct batches only.
	run jq -r '"\(.frames) \(.batches) \(.distinct_batches) \(.copies) \(.changes) \(.distinct_changes) \(.conflicts)"' \
	    "$DATA/sample-stats.json"
	assert_output "65 9 3 6 21 7 1"
	run jq -r '.tables.notes | "\(.insert) \(.update) \(.delete)"' "$DATA/sample-stats.json"
	assert_output "4 2 1"
	run --separate-stderr "$I" --stats sample-hub.log sample-site.log
	assert_line --index 4 "batches       9 logged: 3 distinct, 6 copies (forwarded, or logged again)"
	assert_line --index 5 "changes       21 logged: 7 in distinct batches, 14 in copies"
	# One log alone: the site's own batches and the ones it received.
	run --separate-stderr "$I" --stats sample-site.log
	assert_line --index 4 "batches       3 logged: 3 distinct, 0 copies (forwarded, or logged again)"
}

@test "--check of intact logs: one line each, exit 0" {
	run --separate-stderr "$I" --check sample-hub.log sample-site.log
	assert_success
	assert_stderr_empty
	assert_output "sample-hub.log: ok, 41 frames, 2927 bytes
sample-site.log: ok, 24 frames, $SITE_SIZE bytes"
}

@test "filters: --type, --site, --wsid, --since and --until (golden)" {
	golden sample-filter.txt --type batch,notice --site 546304 sample-hub.log
	# Types are names (any case) or numbers.
	run --separate-stderr "$I" -t HELLO -t 17 sample-site.log
	assert_success
	assert_equal "$(grep -c '  HELLO  ' <<<"$output")" 6
	assert_equal "$(grep -c '  CLOCK  ' <<<"$output")" 9
	assert_equal "${#lines[@]}" 15
	# --wsid: channel-0 frames (HELLO) have no working set.
	run --separate-stderr "$I" --wsid notes sample-site.log
	assert_success
	refute_output --partial '  HELLO  '
	assert_equal "$(grep -c '^2026' <<<"$output")" 18
	run --separate-stderr "$I" --wsid other sample-site.log
	assert_success
	assert_output ''
	# A time range, in ISO-8601 and in epoch seconds.
	run --separate-stderr "$I" --since 2026-11-22T00:24:58.672Z --until 2026-11-22T00:24:58.672999Z \
	    -t add sample-hub.log
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --index 0 --partial '  <  unix#3  notes  ADD  '
	run --separate-stderr "$I" --until 1795307098 sample-hub.log
	assert_success
	assert_output ''
	run --separate-stderr "$I" --since 1795307098.672 --until 1795307098.672 -t clock sample-hub.log
	assert_success
	assert_output "2026-11-22T00:24:58.672Z  >  unix#3  notes  CLOCK  flags=caught-up clock=27cb02e3:1"
	run --separate-stderr "$I" --since 1795307098.672 --until 1795307098.673 -t clock sample-hub.log
	assert_success
	assert_equal "${#lines[@]}" 3
	# A time copied from the timeline (milliseconds, cut) includes its
	# whole millisecond: the frames at 58.673886 and 58.673906 too.
	run --separate-stderr "$I" --since 2026-11-22T00:24:58.673Z \
	    --until 2026-11-22T00:24:58.673Z -t clock sample-hub.log
	assert_success
	assert_output "2026-11-22T00:24:58.673Z  <  unix#3  notes  CLOCK  flags=sync clock=27cb02e3:2
2026-11-22T00:24:58.673Z  >  unix#3  notes  CLOCK  flags=ack clock=27cb02e3:2"
	# With microseconds the bound is exact.
	run --separate-stderr "$I" --until 2026-11-22T00:24:58.673886Z -t clock sample-hub.log
	assert_success
	assert_equal "${#lines[@]}" 8
	assert_line --index 7 --partial "  flags=sync clock=27cb02e3:2"
	run --separate-stderr "$I" --until 2026-11-22T00:24:58.673885Z -t clock sample-hub.log
	assert_success
	assert_equal "${#lines[@]}" 7
	assert_line --index 6 --partial "  flags=caught-up clock=27cb02e3:1"
	# Filters apply to --json and --encode too.
	run --separate-stderr "$I" --json -t batch sample-hub.log
	assert_success
	assert_equal "${#lines[@]}" 6
	run_to b.ws "$I" --encode --site 546304 -t batch sample-hub.log
	assert_success
	run --separate-stderr "$I" --json b.ws
	assert_success
	assert_equal "${#lines[@]}" 4
	assert_output "$("$I" --json --site 546304 -t batch sample-hub.log)"
	# Without the ADD frames, channel 1 names no working set.
	run --separate-stderr "$I" b.ws
	assert_output "$(sed 's/  notes  BATCH/  #1  BATCH/' "$DATA/sample-filter.txt")"
}

@test "bad filters and mode combinations: exit 64" {
	local syn
	syn="$(ws_synopsis wsync-inspect)"
	run --separate-stderr "$I" --since yesterday sample-hub.log
	assert_failure 64
	assert_stderr "wsync-inspect: bad --since 'yesterday': want ISO-8601 (2026-11-22T10:15:02Z) or seconds since the epoch"
	run --separate-stderr "$I" -t bogus sample-hub.log
	assert_failure 64
	assert_stderr "wsync-inspect: bad --type: unknown frame type 'bogus'"
	run --separate-stderr "$I" --site xyz sample-hub.log
	assert_failure 64
	assert_stderr "wsync-inspect: bad --site 'xyz': want 1 to 32 hex digits"
	run --separate-stderr "$I" --wsid .x sample-hub.log
	assert_failure 64
	run --separate-stderr "$I" --since 2026-11-23 --until 2026-11-22 sample-hub.log
	assert_failure 64
	assert_stderr "wsync-inspect: --since is after --until"
	run --separate-stderr "$I" --check --json sample-hub.log
	assert_failure 64
	assert_stderr "wsync-inspect: --check cannot be combined with --json
$syn"
	run --separate-stderr "$I" --stats --encode sample-hub.log
	assert_failure 64
	assert_stderr_line 0 "wsync-inspect: --stats cannot be combined with --encode"
}

# --- damage ------------------------------------------------------------------------

@test "a flipped byte: --check gives its frame's offset, exit 65" {
	flip_byte sample-site.log $((SITE_F7 + 20))
	run --separate-stderr "$I" --check sample-site.log
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'sample-site.log': frame at byte $SITE_F7: bad checksum"
	# The timeline shows what came before the damage.
	run --separate-stderr "$I" sample-site.log
	assert_failure 65
	assert_equal "$(grep -c '^2026' <<<"$output")" 6
}

@test "--salvage skips the damaged frame and goes on, exit 65" {
	flip_byte sample-site.log $((SITE_F7 + 20))
	run --separate-stderr "$I" --check --salvage sample-site.log
	assert_failure 65
	assert_output "sample-site.log: 1 problem, 23 frames, $SITE_SIZE bytes"
	assert_stderr "wsync-inspect: 'sample-site.log': frame at byte $SITE_F7: bad checksum; skipped 59 bytes, resumed at byte $SITE_F8 (a frame)
wsync-inspect: 1 damaged range skipped"
	# The timeline is whole but for that record.
	run --separate-stderr "$I" --salvage sample-site.log
	assert_failure 65
	assert_equal "$output" "$(sed 10d "$DATA/sample-site.txt")"
}

@test "a truncated log: the offset of the cut frame; --salvage skips to the end" {
	head -c $((SITE_LAST + 16)) sample-site.log >t.log
	run --separate-stderr "$I" --check t.log
	assert_failure 65
	assert_stderr "wsync-inspect: 't.log': frame at byte $SITE_LAST: truncated (stream ends after 16 bytes of it)"
	run --separate-stderr "$I" --check --salvage t.log
	assert_failure 65
	assert_output "t.log: 1 problem, 23 frames, $((SITE_LAST + 16)) bytes"
	assert_stderr "wsync-inspect: 't.log': frame at byte $SITE_LAST: truncated (stream ends after 16 bytes of it); skipped 16 bytes to the end
wsync-inspect: 1 damaged range skipped"
}

@test "garbage inside a log and before it: offsets, and --salvage resyncs" {
	# 40 bytes of garbage between the 6th and 7th records.
	{ head -c $SITE_F7 sample-site.log
	  printf 'this is not a frame, just some garbage!!'
	  tail -c +$((SITE_F7 + 1)) sample-site.log; } >g.log
	run --separate-stderr "$I" --check g.log
	assert_failure 65
	assert_stderr "wsync-inspect: 'g.log': frame at byte $SITE_F7: frame larger than the maximum"
	run --separate-stderr "$I" --check --salvage g.log
	assert_failure 65
	assert_output "g.log: 1 problem, 24 frames, $((SITE_SIZE + 40)) bytes"
	assert_stderr "wsync-inspect: 'g.log': frame at byte $SITE_F7: frame larger than the maximum; skipped 40 bytes, resumed at byte $((SITE_F7 + 40)) (a frame)
wsync-inspect: 1 damaged range skipped"
	# Garbage before the preamble: resync at the preamble.
	{ printf 'garbage\n'; cat sample-site.log; } >p.log
	run --separate-stderr "$I" --check p.log
	assert_failure 65
	assert_stderr "wsync-inspect: 'p.log': byte 0: neither a wsync stream nor JSON lines"
	run --separate-stderr "$I" --salvage p.log
	assert_failure 65
	assert_output "$(cat "$DATA/sample-site.txt")"
	assert_stderr "wsync-inspect: 'p.log': byte 0: neither a wsync stream nor JSON lines; skipped 8 bytes, resumed at byte 8 (a preamble)
wsync-inspect: 1 damaged range skipped"
}

@test "--salvage in JSON lines skips the bad line" {
	"$I" --json sample-site.log >s.jsonl
	sed -i '3s/.*/{"type": "clock", broken/' s.jsonl
	run --separate-stderr "$I" --check s.jsonl
	assert_failure 65
	[[ "$stderr" == "wsync-inspect: 's.jsonl': line 3: "?* ]] || fail "stderr is '$stderr'"
	run --separate-stderr "$I" --salvage s.jsonl
	assert_failure 65
	assert_equal "$output" "$(sed 3d "$DATA/sample-site.txt")"
	[[ "${stderr_lines[0]}" == "wsync-inspect: 's.jsonl': line 3: "*"; line skipped" ]] ||
	    fail "stderr is '$stderr'"
	assert_stderr_line 1 "wsync-inspect: 1 damaged range skipped"
}

@test "--check: a gap in a site's batches and a clock that goes back" {
	# Renumber the site's second batch 2 -> 3 (the hub had 1), and make
	# the hub's last ack go back to 1.
	"$I" --json sample-site.log | jq -c '
	    if .frame.type == "batch" and .dir == "out" and (.frame.dot | endswith(":2"))
	    then .frame.dot |= sub(":2$"; ":3") | .frame.changes[].dot |= sub(":2$"; ":3")
	        | .frame.clock |= with_entries(if .value == 2 then .value = 3 else . end)
	    else . end |
	    if .frame.type == "clock" and .frame.flags == 4 and (.frame.clock | length) == 2
	    then .frame.clock |= with_entries(.value = 1) else . end' |
	    "$I" --encode >bad.log
	run --separate-stderr "$I" --check bad.log
	assert_failure 65
	assert_output "bad.log: 2 problems, 24 frames, $SITE_SIZE bytes"
	assert_stderr "wsync-inspect: 'bad.log': frame at byte 1074: working set 'notes', to unix:/tmp/wsync-sample/hub.sock: site 27cb02e3: batch 3 comes first, but the receiver had only up to 1: batch 2 is missing
wsync-inspect: 'bad.log': frame at byte $SITE_LAST: working set 'notes', from unix:/tmp/wsync-sample/hub.sock: the clock went back: site 27cb02e3 from 2 to 1
wsync-inspect: 2 problems found"
	# The same batch twice in one session.
	"$I" --json sample-site.log | jq -c 'if .frame.type == "batch" and .dir == "out"
	    and (.frame.dot | endswith(":2")) then ., . else . end' | "$I" --encode >twice.log
	run --separate-stderr "$I" --check twice.log
	assert_failure 65
	assert_stderr "wsync-inspect: 'twice.log': frame at byte 1223: working set 'notes', to unix:/tmp/wsync-sample/hub.sock: site 27cb02e3: batch 2 repeated
wsync-inspect: 1 problem found"
}

@test "--check reads a log whose batch is larger than 16 MiB, as the tools wrote it" {
	command -v sqlite3 >/dev/null || fail "this test needs sqlite3"
	ws_need wsync-serve
	ws_need wsync-join
	local sock="unix:$T/hub.sock"
	start_hub hub -l "$sock" -d hub --create --log hub.log
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body)"
	"$WS_BIN/wsync-join" "$sock" notes=a.db
	# One transaction of about 20 MB: one batch, one frame.
	sql a.db "INSERT INTO notes(title, body) WITH RECURSIVE c(x) AS (SELECT 1
	    UNION ALL SELECT x + 1 FROM c WHERE x < 200) SELECT 'big', randomblob(100000) FROM c"
	"$WS_BIN/wsync-join" --log a.log "$sock" notes=a.db
	"$WS_BIN/wsync-join" --log b.log "$sock" notes=b.db
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 200
	run --separate-stderr "$I" --check a.log b.log
	assert_success
	assert_stderr_empty
	assert_line --index 0 --regexp '^a\.log: ok, [0-9]+ frames, 2[0-9]{7} bytes$'
	assert_line --index 1 --regexp '^b\.log: ok, [0-9]+ frames, 2[0-9]{7} bytes$'
	# And --json decodes it: the batch of 200 rows is one frame.
	assert_equal "$("$I" --json -t batch a.log | jq -s 'map(.frame.changes | length) | max')" 200
}

@test "--check of real logs with collected history, a full copy and pruned clocks" {
	command -v sqlite3 >/dev/null || fail "this test needs sqlite3"
	ws_need wsync-serve
	ws_need wsync-join
	local sock="unix:$T/hub.sock" j="$WS_BIN/wsync-join"
	start_hub hub -l "$sock" -d hub --create --heartbeat 1 --retain 0 --log hub.log
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
	    INSERT INTO notes VALUES(1, 'one', 'first'), (2, 'two', NULL)"
	spawn fa "$j" -f --heartbeat 1 --log a.log "$sock" notes=a.db
	wait_lines hub.err 1 "joined working set 'notes'"
	# c writes once and leaves; a writes over c's row, after seeing it.
	sql c.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body)"
	"$j" "$sock" notes=c.db
	sql c.db "INSERT INTO notes VALUES(3, 'from c', NULL)"
	"$j" "$sock" notes=c.db
	wait_sql a.db "SELECT title FROM notes WHERE id = 3" 'from c'
	sql a.db "UPDATE notes SET title = 'uno' WHERE id = 1"
	# The hub collects; then b joins and gets a full copy.
	wait_lines hub.err 1 "collected [0-9]+ change-log entries every site holds"
	wait_sql hub/notes.db "SELECT count(*) FROM wsync_log WHERE tbl != 0" 0
	spawn fb "$j" -f --heartbeat 1 --log b.log "$sock" notes=b.db
	wait_lines hub.err 1 "sending a full copy of working set 'notes'"
	wait_sql b.db "SELECT title FROM notes WHERE id = 1" uno
	# a's next batch reaches b with a pruned clock: c's entry is within
	# the collected horizon, and its Lamport number is stated.
	sleep 1.5
	sql a.db "UPDATE notes SET body = 'seen c' WHERE id = 3"
	wait_sql b.db "SELECT body FROM notes WHERE id = 3" 'seen c'
	sleep 1.5
	kill -TERM "$PID"
	reap "$PID"
	"$I" --json -t clock b.log | jq -s -e 'any(.frame.flags == 24)' >/dev/null ||
	    fail "no full copy in b.log: $("$I" b.log)"
	"$I" --json -t batch b.log | jq -s -e 'any(.frame.lamport != null)' >/dev/null ||
	    fail "no pruned clock in b.log: $("$I" b.log)"
	run --separate-stderr "$I" --check a.log b.log hub.log
	assert_success
	assert_stderr_empty
	assert_line --index 0 --regexp '^a\.log: ok, [0-9]+ frames, [0-9]+ bytes$'
	assert_line --index 1 --regexp '^b\.log: ok, [0-9]+ frames, [0-9]+ bytes$'
	assert_line --index 2 --regexp '^hub\.log: ok, [0-9]+ frames, [0-9]+ bytes$'
	# A full copy does not hide real damage: a hub batch after the copy
	# that skips a counter is still a gap.
	"$I" --json b.log | jq -c 'if .frame.type == "batch" and .dir == "in" and
	    (.frame.dot // "" | length) > 0 then .frame.dot |= sub(":[0-9]+$"; ":9")
	    | .frame.changes[].dot |= sub(":[0-9]+$"; ":9") else . end' |
	    "$I" --encode >gap.log
	run --separate-stderr "$I" --check gap.log
	assert_failure 65
	assert_stderr_contains ": batch 9 comes first, but the receiver had only up to "
}

# --- inputs --------------------------------------------------------------------------

@test "stdin, several inputs in order, and a missing one (66)" {
	run --separate-stderr bash -c 'cat "$2" | "$1" - "$3"' _ "$I" sample-site.log sample-hub.log
	assert_success
	assert_output "$(cat "$DATA/sample-site.txt" "$DATA/sample-hub.txt")"
	run --separate-stderr "$I" --check sample-site.log nope.log
	assert_failure 66
	assert_output "sample-site.log: ok, 24 frames, $SITE_SIZE bytes"
	assert_stderr "wsync-inspect: cannot open 'nope.log': no such file or directory"
}

@test "URLs: a local HTTP server, file://, 404 and unsupported schemes" {
	local port
	command -v python3 >/dev/null || fail "this test needs python3"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	spawn http python3 -m http.server -b 127.0.0.1 "$port" -d "$T"
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
		sleep 0.1
	done
	golden sample-hub.txt "http://127.0.0.1:$port/sample-hub.log"
	run --separate-stderr "$I" --check "http://127.0.0.1:$port/sample-site.log"
	assert_success
	assert_output "http://127.0.0.1:$port/sample-site.log: ok, 24 frames, $SITE_SIZE bytes"
	"$I" --json sample-site.log >s.jsonl
	run --separate-stderr "$I" "http://127.0.0.1:$port/s.jsonl"
	assert_output "$(cat "$DATA/sample-site.txt")"
	run --separate-stderr "$I" "http://127.0.0.1:$port/nope.log"
	assert_failure 66
	assert_output ''
	assert_stderr "wsync-inspect: cannot fetch 'http://127.0.0.1:$port/nope.log': HTTP 404"
	# Damage in a download has the same offsets as in a file.
	flip_byte sample-site.log $((SITE_F7 + 20))
	run --separate-stderr "$I" --check "http://127.0.0.1:$port/sample-site.log"
	assert_failure 65
	assert_stderr "wsync-inspect: 'http://127.0.0.1:$port/sample-site.log': frame at byte $SITE_F7: bad checksum"
	golden sample-hub.txt "file://$T/sample-hub.log"
	run --separate-stderr "$I" "file://$T/nope.log"
	assert_failure 66
	[[ "$stderr" == "wsync-inspect: cannot fetch 'file://$T/nope.log': "?* ]] || fail "stderr is '$stderr'"
	run --separate-stderr "$I" "ftp://127.0.0.1/x.log"
	assert_failure 64
	assert_stderr "wsync-inspect: 'ftp://127.0.0.1/x.log': unsupported URL scheme (want http, https, sftp or file)"
	run --separate-stderr "$I" --follow "http://127.0.0.1:$port/sample-hub.log"
	assert_failure 64
	assert_stderr "wsync-inspect: --follow needs a file, not a URL"
}

@test "HTTPS: a self-signed server is refused, and trusted through CURL_CA_BUNDLE" {
	local port i
	command -v python3 >/dev/null || fail "this test needs python3"
	command -v openssl >/dev/null || skip "this test needs openssl"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	    -addext subjectAltName=IP:127.0.0.1 -keyout key.pem -out cert.pem 2>/dev/null ||
	    fail "openssl cannot make a certificate"
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	spawn https python3 -c '
import functools, http.server, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("cert.pem", "key.pem")
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), h)
s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()' "$port" "$T"
	for ((i = 0; i < WAIT_S * 10; i++)); do
		python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
		sleep 0.1
	done
	# Not signed by a known authority: the server is not who it says (77).
	run --separate-stderr env -u CURL_CA_BUNDLE "$I" --check "https://127.0.0.1:$port/sample-site.log"
	assert_failure 77
	assert_output ''
	[[ "$stderr" == "wsync-inspect: cannot fetch 'https://127.0.0.1:$port/sample-site.log': "?* ]] ||
	    fail "stderr is '$stderr'"
	CURL_CA_BUNDLE=$T/cert.pem run --separate-stderr "$I" --check "https://127.0.0.1:$port/sample-site.log"
	assert_success
	assert_output "https://127.0.0.1:$port/sample-site.log: ok, 24 frames, $SITE_SIZE bytes"
	# An empty CURL_CA_BUNDLE is as if it were unset.
	CURL_CA_BUNDLE= run --separate-stderr "$I" --check "https://127.0.0.1:$port/sample-site.log"
	assert_failure 77
}

@test "--follow shows records as the log grows, and ends on SIGTERM with 0" {
	head -c $SITE_F7 sample-site.log >grow.log
	spawn follow "$I" --follow grow.log
	wait_lines "$T/follow.out" 6 '^2026'
	# Half a record: nothing yet, and not an error.
	tail -c +$((SITE_F7 + 1)) sample-site.log | head -c 30 >>grow.log
	sleep 0.3
	assert_equal "$(grep -c '^2026' "$T/follow.out")" 6
	tail -c +$((SITE_F7 + 31)) sample-site.log >>grow.log
	wait_lines "$T/follow.out" 24 '^2026'
	kill -TERM "$PID"
	reap "$PID"
	assert_equal "$REAPED" 0
	cmp "$T/follow.out" "$DATA/sample-site.txt"
	[ ! -s "$T/follow.err" ] || fail "stderr: $(cat "$T/follow.err")"
}

@test "--follow --stats prints the summary when stopped" {
	cp sample-site.log grow.log
	spawn follow "$I" --follow --stats grow.log
	sleep 0.5
	kill -INT "$PID"
	reap "$PID"
	assert_equal "$REAPED" 0
	assert_equal "$(sed -n 2p "$T/follow.out")" "frames        24 (2260 bytes)"
}

# --- databases ----------------------------------------------------------------------

@test "a working-set database: tables, site, clock, log, conflicts (golden)" {
	golden sample-db.txt sample-site.db
	golden sample-db.json --json sample-site.db
	run --separate-stderr "$I" --check sample-site.db
	assert_success
	assert_output "sample-site.db: ok, an SQLite database"
	# Opened read-only: the file is unchanged.
	cmp sample-site.db "$DATA/sample-site.db"
	run --separate-stderr "$I" --encode -o x.ws sample-site.db
	assert_failure 64
	assert_stderr "wsync-inspect: 'sample-site.db' is an SQLite database, not a stream: --encode cannot write it"
	run --separate-stderr bash -c '"$1" - <sample-site.db' _ "$I"
	assert_failure 64
	assert_stderr "wsync-inspect: standard input holds an SQLite database: give its file name"
}

@test "--json of a database always has the replicator key" {
	command -v sqlite3 >/dev/null || fail "this test needs sqlite3"
	# None: null, as the text view's "replicator    none".
	run --separate-stderr "$I" --json sample-site.db
	assert_success
	assert_equal "$(jq -c '[has("replicator"), .replicator]' <<<"$output")" '[true,null]'
	run --separate-stderr "$I" sample-site.db
	assert_line "replicator    none"
	# A working set that is also a replica; a full pass under way leaves
	# its guid NULL.
	sqlite3 sample-site.db "CREATE TABLE wsync_replica(local_table TEXT PRIMARY KEY,
	    source TEXT, guid TEXT, usn INTEGER NOT NULL, updated TEXT, mapping TEXT);
	    INSERT INTO wsync_replica VALUES('items', 'hub:7000/items', NULL, 0, NULL, NULL)"
	run --separate-stderr "$I" --json sample-site.db
	assert_success
	assert_equal "$(jq -c .replicator <<<"$output")" \
	    '[{"table":"items","source":"hub:7000/items","guid":null,"usn":0,"updated":null}]'
	run --separate-stderr "$I" sample-site.db
	assert_success
	assert_line "replicator    1 table"
	assert_line "  items  source=hub:7000/items guid=none usn=0 updated=none"
}

@test "a database that is not a working set, with a replicator's state" {
	command -v sqlite3 >/dev/null || fail "this test needs sqlite3"
	sqlite3 r.db "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT);
	    CREATE TABLE wsync_replica(local_table TEXT PRIMARY KEY, source TEXT,
	        guid TEXT, usn INTEGER, updated TEXT);
	    INSERT INTO wsync_replica VALUES('items', 'hub:7000/items',
	        '00112233445566778899aabbccddeeff', 42, '2026-11-22T10:00:00Z');"
	run --separate-stderr "$I" r.db
	assert_success
	assert_stderr_empty
	assert_output "database      r.db
working set   none (not a wsync working set)
replicator    1 table
  items  source=hub:7000/items guid=00112233445566778899aabbccddeeff usn=42 updated=2026-11-22T10:00:00Z"
	run --separate-stderr "$I" --json r.db
	assert_success
	assert_output '{"database":"r.db","wsid":null,"replicator":[{"table":"items","source":"hub:7000/items","guid":"00112233445566778899aabbccddeeff","usn":42,"updated":"2026-11-22T10:00:00Z"}]}'
	# A damaged database fails --check with 65.
	sqlite3 big.db "CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL
	    SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT randomblob(100) FROM n;"
	dd if=/dev/zero of=big.db bs=1 seek=5000 count=3000 conv=notrunc status=none
	run --separate-stderr "$I" --check big.db
	assert_failure 65
	[[ "$stderr" == "wsync-inspect: 'big.db': "* ]] || fail "stderr is '$stderr'"
}

# --- output -------------------------------------------------------------------------

@test "colour only on a terminal, and never with NO_COLOR" {
	command -v script >/dev/null || skip "no script(1) to get a terminal"
	run script -qec "'$I' sample-site.log" /dev/null </dev/null
	assert_success
	assert_output --partial $'\033[1mHELLO\033[0m'
	assert_output --partial $'\033[32minsert\033[0m'
	run script -qec "NO_COLOR=1 '$I' sample-site.log" /dev/null </dev/null
	assert_success
	refute_output --partial $'\033['
	assert_output --partial '  HELLO  '
	# Not a terminal: no colour.
	run --separate-stderr "$I" sample-site.log
	refute_output --partial $'\033['
}
