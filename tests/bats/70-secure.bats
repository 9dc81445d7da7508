#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 70-secure.bats - keys, authenticated and encrypted sessions, rights:
# wsync-keygen; a hub on loopback TCP with --key and --authorized-keys;
# sites with --key and --hub-key or known hubs; and attacks through a
# man in the middle (mitm.py): a flipped byte, a replayed frame, a cut
# handshake, a downgrade.  Each is refused with exit 77 and a clear
# message, nothing is applied, and the hub goes on serving other sites.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=10

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	for t in wsync-serve wsync-join wsync-keygen; do ws_need "$t"; done
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v python3 >/dev/null || fail "these tests need python3"
	"$WS_BIN/wsync-keygen" -q -f hub.key -C hub
	"$WS_BIN/wsync-keygen" -q -f site.key -C site
	"$WS_BIN/wsync-keygen" -q -f other.key -C other
	HUBKEY=$(cut -d' ' -f1 hub.key.pub)
	SITEKEY=$(cut -d' ' -f1 site.key.pub)
	OTHERKEY=$(cut -d' ' -f1 other.key.pub)
	printf '%s notes=write scratch-*=create # the site\n' "$SITEKEY" >authorized
	sqlite3 a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(1, 'one'), (2, 'secret words')"
}

teardown() {
	proc_teardown
}

# start_keyed_hub [ARG...]: a keyed hub on loopback TCP ($PORT), holding
# notes (start_hub, in helper.bash, starts it).
start_keyed_hub() {
	PORT=$(free_port)
	mkdir -p hub
	if [ ! -e hub/notes.db ]; then
		"$WS_BIN/wsync-serve" -q -l "unix:$T/seed.sock" -d hub --create &
		local pid=$! i
		for ((i = 0; i < 50; i++)); do [ -S seed.sock ] && break; sleep 0.1; done
		"$WS_BIN/wsync-join" "unix:$T/seed.sock" notes=a.db || fail "seeding failed"
		kill "$pid"
		wait "$pid" || true
	fi
	start_hub hub -l "127.0.0.1:$PORT" -d hub --key hub.key \
	    --authorized-keys authorized "$@"
}

# mitm MODE: a man in the middle on $MPORT relaying to the hub.
mitm() {
	MPORT=$(free_port)
	spawn mitm python3 "$BATS_TEST_DIRNAME/mitm.py" "$MPORT" 127.0.0.1 "$PORT" "$1"
	wait_lines mitm.out 1 '^ready$'
}

# join_ok DB ARG...: a keyed one-shot sync of notes=DB that must succeed.
join_ok() {
	local db=$1
	shift
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" "$@" \
	    notes="$db"
	assert_success
	assert_stderr_empty
}

hub_rows() {
	sqlite3 hub/notes.db 'SELECT count(*) FROM notes'
}

# still_serving: another site syncs through the hub afterwards.
still_serving() {
	join_ok fresh.db "127.0.0.1:$PORT"
	assert_equal "$(sqlite3 fresh.db 'SELECT count(*) FROM notes')" "$(hub_rows)"
	assert_equal "$(sqlite3 hub/notes.db 'PRAGMA integrity_check')" ok
}

# --- keys --------------------------------------------------------------------

@test "keygen: a secret key 0600, a public key line, no overwrite" {
	run --separate-stderr "$WS_BIN/wsync-keygen" -f k1 -C 'me@here'
	assert_success
	[[ "$output" =~ ^wsync-ed25519:[A-Za-z0-9+/]{43}=\ me@here$ ]] || fail "output: $output"
	assert_equal "$(cat k1.pub)" "$output"
	assert_equal "$(stat -c %a k1)" 600
	assert_equal "$(stat -c %a k1.pub)" 644
	run "$WS_BIN/wsync-keygen" -y -f k1
	assert_success
	assert_output "${output%% *}"
	assert_equal "$output" "$(cut -d' ' -f1 k1.pub)"
	run --separate-stderr "$WS_BIN/wsync-keygen" -f k1
	assert_failure 74
	assert_stderr "wsync-keygen: cannot create 'k1': file exists"
	run "$WS_BIN/wsync-keygen" -q --force -f k1
	assert_success
	assert_output ''
	run "$WS_BIN/wsync-keygen"
	assert_failure 64
}

@test "keygen: never half a pair: an existing FILE.pub stops it too" {
	echo old >k2.pub
	run --separate-stderr "$WS_BIN/wsync-keygen" -f k2
	assert_failure 74
	assert_stderr "wsync-keygen: cannot create 'k2.pub': file exists"
	[ ! -e k2 ] || fail "k2 was written"
}

@test "keys: a key file others can read is refused, as ssh refuses one" {
	chmod 644 site.key
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    127.0.0.1:1 notes=a.db
	assert_failure 77
	assert_stderr "wsync-join: key file 'site.key' is accessible by others (mode 0644): it must be 0600 (chmod 600 'site.key')"
	chmod 640 hub.key
	run --separate-stderr "$WS_BIN/wsync-serve" -l 127.0.0.1:0 --key hub.key \
	    --authorized-keys authorized
	assert_failure 77
	assert_stderr "wsync-serve: key file 'hub.key' is accessible by others (mode 0640): it must be 0600 (chmod 600 'hub.key')"
	printf 'not a key\n' >bad.key
	chmod 600 bad.key
	run --separate-stderr "$WS_BIN/wsync-keygen" -y -f bad.key
	assert_failure 78
	assert_stderr "wsync-keygen: 'bad.key' is not a wsync secret-key file"
}

# --- sessions ----------------------------------------------------------------

@test "secure: sync over TCP, encrypted on the wire" {
	start_keyed_hub
	export MITM_TAP=$T/tap
	mitm tap
	sqlite3 b.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(3, 'more secret words')"
	join_ok b.db "127.0.0.1:$MPORT"
	assert_equal "$(sqlite3 b.db 'SELECT title FROM notes ORDER BY id' | tr '\n' ,)" \
	    'one,secret words,more secret words,'
	assert_equal "$(hub_rows)" 3
	# What crossed the wire holds none of the text.
	[ -s tap ] || fail "nothing was tapped"
	run grep -c 'secret words' tap
	assert_output 0
	# The session log records the frames in the clear, after the handshake.
	join_ok c.db "127.0.0.1:$PORT" --log c.log
	run "$WS_BIN/wsync-inspect" --json c.log
	assert_success
	assert_equal "$(jq -r 'select(.frame.type == "auth") | .dir' <<<"$output" | tr '\n' ' ')" \
	    'out in out in '
	assert_equal "$(sqlite3 c.db 'SELECT count(*) FROM notes')" 3
}

@test "secure: a wrong hub key is refused (77), nothing synced" {
	start_keyed_hub
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$OTHERKEY" \
	    "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub presented key $HUBKEY, not the one given with --hub-key: refusing it"
	assert_equal "$(sqlite3 b.db "SELECT count(*) FROM sqlite_master WHERE name = 'notes'")" 0
	still_serving
}

@test "secure: an unknown site key is refused before any data flows (77)" {
	start_keyed_hub
	sqlite3 b.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(9, 'intruder')"
	run --separate-stderr "$WS_BIN/wsync-join" --key other.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub ends the session: key $OTHERKEY is not authorized on this hub"
	wait_lines hub.err 1 ": key wsync-ed25519:[A-Za-z0-9+/=]+ is not authorized on this hub$"
	grep -qF ": key $OTHERKEY is not authorized on this hub" hub.err || fail "hub.err: $(cat hub.err)"
	assert_equal "$(hub_rows)" 2
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 1
	still_serving
}

@test "secure: one byte flipped in an encrypted frame ends the session (77)" {
	start_keyed_hub
	mitm flip
	sqlite3 b.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(5, 'tampered')"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$MPORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub ends the session: an encrypted frame failed authentication: tampered with, replayed or out of order"
	wait_lines hub.err 1 ': an encrypted frame failed authentication: tampered with, replayed or out of order$'
	assert_equal "$(hub_rows)" 2
	still_serving
}

@test "secure: a replayed frame ends the session (77)" {
	start_keyed_hub
	mitm replay
	sqlite3 b.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(5, 'replayed')"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$MPORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub ends the session: an encrypted frame failed authentication: tampered with, replayed or out of order"
	assert_equal "$(hub_rows)" 2
	still_serving
}

@test "secure: a dropped frame ends the session (77)" {
	start_keyed_hub
	mitm drop
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$MPORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub ends the session: an encrypted frame failed authentication: tampered with, replayed or out of order"
	still_serving
}

@test "secure: a truncated handshake ends the run as a lost connection (74), the hub goes on" {
	start_keyed_hub
	mitm cut-auth
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$MPORT" notes=b.db
	assert_failure 74
	assert_stderr "wsync-join: 127.0.0.1:$MPORT closed the connection during the handshake"
	wait_lines hub.err 1 ': disconnected$'
	still_serving
}

@test "secure: a downgrade to a plain session is refused, both ways (77)" {
	start_keyed_hub
	# A hub on the path that answers in the clear.
	mitm plain-hub
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$MPORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: a plain hello frame in an encrypted session: downgrade refused"
	# A site that offers a plain session to a keyed hub on TCP.
	run --separate-stderr "$WS_BIN/wsync-join" --insecure "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub ends the session: this hub takes authenticated sessions only: connect with wsync-join --key"
	assert_equal "$(hub_rows)" 2
	still_serving
}

# --- rights ------------------------------------------------------------------

@test "rights: a read-only site's changes are refused, never applied nor forwarded" {
	printf '%s notes=read\n%s notes=write\n' "$OTHERKEY" "$SITEKEY" >authorized
	start_keyed_hub
	sqlite3 b.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(7, 'from a reader')"
	run --separate-stderr "$WS_BIN/wsync-join" --key other.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr_line 0 "wsync-join: notes: working set 'notes' is read-only for this site: its changes are refused"
	assert_stderr_line 1 "wsync-join: some working sets were not synced"
	# It reads: it got the hub's rows, and kept its own.
	assert_equal "$(sqlite3 b.db 'SELECT id FROM notes ORDER BY id' | tr '\n' ,)" '1,2,7,'
	# Its row is nowhere else.
	assert_equal "$(sqlite3 hub/notes.db 'SELECT count(*) FROM notes WHERE id = 7')" 0
	join_ok c.db "127.0.0.1:$PORT"
	assert_equal "$(sqlite3 c.db 'SELECT count(*) FROM notes WHERE id = 7')" 0
	wait_lines hub.err 1 "working set 'notes' is read-only for this site: its changes are refused$"
}

@test "rights: globs, create, and a working set the key has no right on" {
	start_keyed_hub
	sqlite3 s.db "CREATE TABLE t(k PRIMARY KEY, v); INSERT INTO t VALUES('a', 1)"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$PORT" scratch-1=s.db
	assert_success
	[ -f hub/scratch-1.db ] || fail "scratch-1 was not created"
	# write without create: an unknown set is not created.
	sqlite3 n.db "CREATE TABLE t(k PRIMARY KEY, v)"
	printf '%s notes=write newset=write\n' "$SITEKEY" >authorized
	kill "$HUB_PID"
	start_keyed_hub
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$PORT" newset=n.db
	assert_failure 66
	assert_stderr_line 0 "wsync-join: newset: unknown working set 'newset' (this site's key may not create it)"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "127.0.0.1:$PORT" other=o.db
	assert_failure 77
	assert_stderr_line 0 "wsync-join: other: working set 'other': this site's key has no rights on it"
	[ ! -e hub/other.db ] || fail "other was created"
}

@test "secure: a handshake in another version is refused in the clear" {
	start_keyed_hub
	run python3 "$BATS_TEST_DIRNAME/rawpeer.py" "127.0.0.1:$PORT" auth-version
	assert_success
	assert_line "error -5 handshake version 2 is not supported (this hub speaks 1)"
	assert_line closed
	still_serving
}

# --- trust and configuration -------------------------------------------------

@test "known hubs: trust on first use only when asked, then pinned" {
	start_keyed_hub
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: unknown hub key $HUBKEY at 127.0.0.1:$PORT: pin it with --hub-key, add \"127.0.0.1:$PORT $HUBKEY\" to kh, or trust it once with --accept-new-hub"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "127.0.0.1:$PORT" notes=b.db
	assert_success
	assert_stderr "wsync-join: added the key of the hub at 127.0.0.1:$PORT to kh: $HUBKEY"
	assert_equal "$(cat kh)" "127.0.0.1:$PORT $HUBKEY"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    "127.0.0.1:$PORT" notes=b.db
	assert_success
	assert_stderr_empty
	# Another key at that address: refused, even with --accept-new-hub.
	printf '127.0.0.1:%s %s\n' "$PORT" "$OTHERKEY" >kh
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "127.0.0.1:$PORT" notes=b.db
	assert_failure 77
	assert_stderr "wsync-join: the hub at 127.0.0.1:$PORT presented key $HUBKEY, but kh:1 pins another: refusing it (if the hub's key really changed, edit that line)"
}

@test "known hubs: an exec: address with blanks is pinned too" {
	mkdir -p hub
	printf '%s notes=create\n' "$SITEKEY" >authorized
	local hub="exec:$WS_BIN/wsync-serve --stdio -q -d $T/hub --create --key $T/hub.key --authorized-keys $T/authorized"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "$hub" notes=a.db
	assert_success
	assert_equal "$(cat kh)" "$hub $HUBKEY"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh "$hub" notes=b.db
	assert_success
	assert_stderr_empty
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 2
}

@test "plain sessions: TCP needs keys unless --insecure; unix sockets may be plain" {
	run --separate-stderr "$WS_BIN/wsync-serve" -l 127.0.0.1:0 -d hub
	assert_failure 78
	assert_stderr "wsync-serve: listening on TCP needs --key FILE and --authorized-keys FILE (make a key with wsync-keygen -f FILE), or --insecure for plain sessions"
	run --separate-stderr "$WS_BIN/wsync-serve" -l 127.0.0.1:0 --key hub.key
	assert_failure 64
	assert_stderr_line 0 "wsync-serve: --key needs --authorized-keys"
	run --separate-stderr "$WS_BIN/wsync-join" 127.0.0.1:1 notes=a.db
	assert_failure 78
	assert_stderr "wsync-join: a hub on TCP needs --key FILE (make one with wsync-keygen -f FILE), or --insecure for a plain session"
	run --separate-stderr "$WS_BIN/wsync-join" --hub-key "$HUBKEY" 127.0.0.1:1 notes=a.db
	assert_failure 64
	assert_stderr_line 0 "wsync-join: --hub-key, --known-hubs and --accept-new-hub go with --key"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key nonsense 127.0.0.1:1 notes=a.db
	assert_failure 64
	assert_stderr_line 0 "wsync-join: bad --hub-key: 'nonsense' is not a wsync public key (want wsync-ed25519:BASE64, or a .pub file)"
	# A keyed hub on a unix socket takes plain and secure sessions alike.
	spawn hub "$WS_BIN/wsync-serve" -l "unix:$T/h.sock" -d hub --create --key hub.key \
	    --authorized-keys authorized
	wait_lines hub.err 1 '^wsync-serve: listening on '
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/h.sock" notes=a.db
	assert_success
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" \
	    "unix:$T/h.sock" notes=b.db
	assert_success
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 2
}

@test "keys as a newcomer gives them: --hub-key takes the .pub line or file; --key a .pub file is named as such" {
	start_keyed_hub
	# The whole line of hub.key.pub, comment and all, and the file itself.
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$(cat hub.key.pub)" \
	    "127.0.0.1:$PORT" notes=b.db
	assert_success
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key hub.key.pub \
	    "127.0.0.1:$PORT" notes=c.db
	assert_success
	assert_equal "$(sqlite3 c.db 'SELECT count(*) FROM notes')" 2
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key.pub --hub-key hub.key.pub \
	    "127.0.0.1:$PORT" notes=d.db
	assert_failure 78
	assert_stderr "wsync-join: 'site.key.pub' is a public key; --key wants the secret key file, 'site.key' (made by wsync-keygen -f FILE)"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key nosuch.pub \
	    "127.0.0.1:$PORT" notes=d.db
	assert_failure 64
	assert_stderr_line 0 "wsync-join: bad --hub-key: 'nosuch.pub' is not a wsync public key (want wsync-ed25519:BASE64, or a .pub file)"
	[ ! -e d.db ] || fail "a refused run left d.db"
}

@test "a run that fails before the hub takes a set leaves no new file, and binds nothing" {
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/nosuch.sock" n=new.db
	assert_failure 69
	[ ! -e new.db ] || fail "the failed run left new.db"
	# An existing database stays, as it was.
	run --separate-stderr "$WS_BIN/wsync-join" "unix:$T/nosuch.sock" n=a.db
	assert_failure 69
	assert_equal "$(sqlite3 a.db 'SELECT count(*) FROM notes')" 2
}
