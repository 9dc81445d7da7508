#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 95-examples.bats - every shell example of README.md and of the EXAMPLES
# sections of the manual pages, run as written, so that a stale example
# fails make check.
#
# examples.py says what an example is and splits it into commands (read
# its header).  Each test here takes one example, or a few that tell one
# story, and:
#   - asserts how many commands it has, so that a changed example is
#     looked at again here;
#   - replaces only addresses and paths: a TCP hub or publisher
#     (hub.example.org:7000, 0.0.0.0:7000, shop.example.org:7878...) is
#     127.0.0.1:$PORT, absolute paths (/etc/wsync, /var/lib/wsync,
#     /run/wsync, /tmp, /srv/wsync) are relative ones in $T, the example
#     keys are the ones made here, and "ssh HOST" in an exec: command is
#     dropped (the command runs here, as sshd would run it there);
#   - runs a "HOST$" command in $T/HOST with HOME=$T/HOST, a "$" command
#     in $T with HOME=$T, and a command that ends in "&" in the
#     background (stopped by teardown);
#   - compares the output the page shows (examples.py match).
# The first test counts the examples of each file, so a new example needs
# a test here.  Exempt, and why, are said where they are.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-10}
ROOT="$BATS_TEST_DIRNAME/../.."
EXPY="$BATS_TEST_DIRNAME/examples.py"

# The public keys the pages show.
HUBKEY_EX='wsync-ed25519:xG2HZRY+2mRS0A3D8hb2A21sFYl2OtH8KyWJenn4D8E='
LAPTOP_EX='wsync-ed25519:+B2WDekmX0eFGht+QEjTGynS+REpkmywMj4bRhwLCKM='
DESKTOP_EX='wsync-ed25519:jzro5wY02JMSfnVQKSz9J2LIZSGAZ8OdxSrPPZiCRMA='

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	local t
	for t in $WS_TOOLS; do
		ws_need "$t"
	done
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v jq >/dev/null || fail "these tests need jq"
	PATH="$WS_BIN:$PATH"
	# Known hubs and keys under ~ are this test's.
	HOME=$T
	export PATH HOME
	PORT=$(free_port)
}

teardown() {
	proc_teardown
}

# ex FILE N [FROM TO]...: split example N of FILE (from the top of the
# tree) into $EX/I.sh, I.host, I.out; $EX_N is its number of commands.
ex() {
	local file=$1 n=$2
	shift 2
	EX="$T/ex.${file//\//_}.$n"
	mkdir -p "$EX"
	EX_N=$(python3 "$EXPY" split "$ROOT/$file" "$n" "$EX" "$@") ||
	    fail "examples.py split $file $n failed"
}

# ex_dir I: where command I runs, made if need be.
ex_dir() {
	local h
	h=$(cat "$EX/$1.host")
	mkdir -p "$T/$h"
	(cd "$T/$h" && pwd)
}

ex_sh() {
	cd "$1" && HOME="$1" bash -e "$2"
}

# ex_run I: run command I (as run --separate-stderr does).
ex_run() {
	run --separate-stderr ex_sh "$(ex_dir "$1")" "$EX/$1.sh"
}

# ex_ok I: command I succeeds.
ex_ok() {
	ex_run "$1"
	assert_success
}

# ex_bg I NAME: command I, which ends in "&", in the background as NAME.
ex_bg() {
	local d
	d=$(ex_dir "$1")
	grep -q '&[[:space:]]*$' "$EX/$1.sh" || fail "command $1 does not end in '&'"
	{ printf 'exec '; sed 's/[[:space:]]*&[[:space:]]*$//' "$EX/$1.sh"; } >"$EX/$1.bg"
	spawn "$2" bash -c 'cd "$1" && HOME=$1 exec bash -e "$2"' ex "$d" "$EX/$1.bg"
}

# ex_daemon I NAME: command I, which runs until stopped, as NAME.
ex_daemon() {
	local d
	d=$(ex_dir "$1")
	{ printf 'exec '; cat "$EX/$1.sh"; } >"$EX/$1.bg"
	spawn "$2" bash -c 'cd "$1" && HOME=$1 exec bash -e "$2"' ex "$d" "$EX/$1.bg"
}

# ex_expect I [FILE]: stdout of the last ex_run (or FILE) is what the
# page shows after command I.
ex_expect() {
	local got="$T/got.$$"
	if [ $# -ge 2 ]; then
		got=$2
	else
		printf '%s\n' "$output" >"$got"
	fi
	run python3 "$EXPY" match "$EX/$1.out" "$got"
	assert_success
}

# ex_no_output I: the page shows no output after command I.
ex_no_output() {
	assert_equal "$(cat "$EX/$1.out")" ""
}

# ere TEXT: TEXT as an extended regular expression that matches it.
ere() {
	sed 's/[][\.*^$()+?{}|]/\\&/g' <<<"$1"
}

# pub FILE: the public key of key FILE, without its comment.
pub() {
	cut -d' ' -f1 "$1.pub"
}

# listening NAME: wait for NAME's "listening on" line.
listening() {
	wait_lines "$T/$1.err" 1 'listening on '
}

# notes DB: a notes table with two rows.
notes() {
	sql "$1" "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT);
	    INSERT INTO notes VALUES (1, 'groceries', 'milk'), (2, 'books', NULL)"
}

@test "examples: each file has the examples this suite runs" {
	# FILE COUNT: a new example needs a test below.
	while read -r f n; do
		assert_equal "$f: $(python3 "$EXPY" list "$ROOT/$f" | wc -l)" "$f: $n"
	done <<-EOF
	README.md 13
	man/wsync-inspect.1 10
	man/wsync-join.1 11
	man/wsync-keygen.1 5
	man/wsync-protocol.5 0
	man/wsync-replicate.1 5
	man/wsync-serve.1 10
	man/wsync.7 0
	EOF
}

# --- README.md ---------------------------------------------------------------

@test "README: the make examples are exempt, and are only make" {
	# make deps, make, make install, make clean, make demo, make check and
	# make chaos build in, install from or test the working tree itself,
	# which this suite must not write into (and make check runs it).
	local n i
	for n in 1 7 12 13; do
		ex README.md "$n"
		for ((i = 1; i <= EX_N; i++)); do
			assert_equal "$(sed 's/^ *//' "$EX/$i.sh" | cut -c1-5)" "make "
		done
	done
}

@test "README: Quick start, one-shot and follow mode, and the log of the sync" {
	ex README.md 2 bin/wsync- wsync-
	assert_equal "$EX_N" 5
	ex_bg 1 hub
	wait_lines "$T/hub.err" 1 '.'
	assert_equal "$(head -n 1 "$T/hub.err")" "wsync-serve: listening on unix:hub.sock"
	grep -q '^# wsync-serve: listening on unix:hub.sock$' "$ROOT/README.md"
	ex_ok 2
	ex_ok 3
	assert_output ''
	assert_stderr_empty
	ex_ok 4
	assert_stderr_empty
	ex_ok 5
	assert_output '1|groceries'
	# The batch that carried the row, from site.log.
	ex README.md 3 bin/wsync- wsync-
	assert_equal "$EX_N" 1
	ex_ok 1
	assert_equal "${#lines[@]}" 1
	assert_equal "$(jq -r '.frame.changes[0].set.title' <<<"$output")" groceries
	# Follow mode: the update reaches copy.db a moment later.
	ex README.md 4 bin/wsync- wsync-
	assert_equal "$EX_N" 4
	ex_bg 1 site1
	ex_bg 2 site2
	sleep 0.5
	ex_ok 3
	wait_sql copy.db 'SELECT * FROM notes' '1|shopping'
	ex_ok 4
	assert_output '1|shopping'
}

@test "README: over ssh, no listening hub (exec: runs the command here)" {
	ex README.md 5 bin/wsync- wsync- 'ssh host ' '' /srv/wsync srv
	assert_equal "$EX_N" 1
	notes notes.db
	ex_ok 1
	assert_stderr_empty
	assert_equal "$(sqlite3 srv/notes.db 'SELECT title FROM notes ORDER BY id')" "groceries
books"
}

@test "README: list the conflicts and resolve one" {
	ex README.md 6 bin/wsync- wsync-
	assert_equal "$EX_N" 2
	start_hub hub -l "unix:$T/hub.sock" -d hubdata --create
	notes notes.db
	join "unix:$T/hub.sock" notes=notes.db
	join "unix:$T/hub.sock" notes=other.db
	sql notes.db "UPDATE notes SET body = 'mine' WHERE id = 1"
	sql other.db "UPDATE notes SET body = 'theirs' WHERE id = 1"
	join "unix:$T/hub.sock" notes=other.db
	join "unix:$T/hub.sock" notes=notes.db
	ex_ok 1
	assert_equal "${#lines[@]}" 1
	local lost
	lost=$(cut -f6 <<<"$output")
	ex_ok 2
	assert_equal "$(sqlite3 notes.db 'SELECT body FROM notes WHERE id = 1')" "${lost//\"/}"
	ex_ok 1
	assert_output ''
}

@test "README: Security, keys made, a keyed hub, and the first site" {
	ex README.md 8 bin/wsync- wsync-
	assert_equal "$EX_N" 2
	ex_ok 1
	assert_output --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= hub$'
	ex_ok 2
	assert_output --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= laptop$'
	# The authorized keys as the README shows them, with this key.
	grep "^$LAPTOP_EX .* # laptop\$" "$ROOT/README.md" |
	    sed "s|$LAPTOP_EX|$(pub site.key)|" >sites
	grep -q 'notes=create' sites
	ex README.md 9 bin/wsync- wsync- 0.0.0.0:7000 "127.0.0.1:$PORT" \
	    hub.example.org:7000 "127.0.0.1:$PORT" "$HUBKEY_EX" "$(pub hub.key)"
	assert_equal "$EX_N" 2
	notes notes.db
	ex_bg 1 hub
	listening hub
	ex_ok 2
	assert_stderr_empty
	assert_equal "$(sqlite3 hubdata/notes.db 'SELECT count(*) FROM notes')" 2
}

# logs: a hub with a log rotated once (hub.log.1, hub.log), a site's log,
# a damaged copy and a database, as the README's and wsync-inspect(1)'s
# examples read them.
logs() {
	start_hub hub1 -l "unix:$T/hub.sock" -d hubdata --create --log hub.log.1
	notes notes.db
	sql notes.db "CREATE TABLE secrets(id INTEGER PRIMARY KEY, pin);
	    INSERT INTO secrets VALUES (1, 1234)"
	join --log site.log "unix:$T/hub.sock" notes=notes.db
	kill "$HUB_PID"
	reap "$HUB_PID"
	start_hub hub2 -l "unix:$T/hub.sock" -d hubdata --log hub.log
	sql notes.db "UPDATE notes SET title = 'x' WHERE id = 1"
	join --log site.log "unix:$T/hub.sock" notes=notes.db
	cp hub.log damaged.log
	flip_byte damaged.log 40
	# A stream of frames: the frames of the site's log.
	wsync-inspect --json site.log | jq -c .frame | wsync-inspect --encode >log.ws
}

@test "README: looking at logs and databases" {
	ex README.md 10
	assert_equal "$EX_N" 6
	logs
	ex_ok 1
	assert_line --regexp '  notes  BATCH  site=[0-9a-f]{8} '
	ex_daemon 2 follow
	wait_lines "$T/follow.out" 1 ' BATCH '
	sql notes.db "UPDATE notes SET title = 'y' WHERE id = 1"
	join "unix:$T/hub.sock" notes=notes.db
	wait_lines "$T/follow.out" 2 ' BATCH '
	ex_ok 3
	ex_ok 4
	assert_output --partial 'batch'
	# Status 65: damage skipped (EXIT STATUS in wsync-inspect(1)).
	ex_run 5
	assert_failure 65
	[ -s clean.log ]
	ex_ok 6
	assert_output --partial 'notes'
}

@test "README: piping deltas through jq" {
	ex README.md 11
	assert_equal "$EX_N" 2
	logs
	ex_ok 1
	assert_line --partial '"table": "secrets"'
	ex_ok 2
	[ -s clean.ws ]
	run bash -c "wsync-inspect --json clean.ws | jq -r 'select(.type == \"batch\") | .changes[].table' | sort | uniq -c"
	assert_success
	assert_output --regexp '^ *3 notes$'
}

# --- wsync-serve(1) ----------------------------------------------------------

# site_keys: laptop/site.key and desktop/site.key; $LAPTOP and $DESKTOP
# are their public keys.
site_keys() {
	mkdir -p laptop desktop
	wsync-keygen -q -f laptop/site.key -C laptop
	wsync-keygen -q -f desktop/site.key -C desktop
	LAPTOP=$(pub laptop/site.key)
	DESKTOP=$(pub desktop/site.key)
}

# wait_socket PATH: wait until PATH is a socket.
wait_socket() {
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	fail "no socket at $1 after $WAIT_S s"
}

SERVE_SUBS=(/etc/wsync/ etc/ /var/lib/wsync hubdata /run/wsync/ run/
	/tmp/hub.sock hub.sock /srv/wsync srv 'ssh hub.example.org ' '')

@test "wsync-serve(1): a keyed hub, its sites, and the same hub on a socket" {
	site_keys
	mkdir -p etc run
	ex man/wsync-serve.1 1 "${SERVE_SUBS[@]}" 0.0.0.0:7000 "127.0.0.1:$PORT" \
	    "$LAPTOP_EX" "$LAPTOP" "$DESKTOP_EX" "$DESKTOP"
	assert_equal "$EX_N" 3
	ex_ok 1
	assert_output --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= hub.example.org$'
	# The sites file the page shows, with these keys.
	cp "$EX/2.out" etc/sites
	ex_ok 2
	ex_expect 2
	ex_daemon 3 hub
	listening hub
	ex_expect 3 "$T/hub.err"
	# Two sites with their keys; the second receives the first's rows.
	ex man/wsync-serve.1 2 hub.example.org:7000 "127.0.0.1:$PORT" \
	    "$HUBKEY_EX" "$(pub etc/hub.key)"
	assert_equal "$EX_N" 2
	notes laptop/notes.db
	ex_ok 1
	assert_stderr_empty
	ex_ok 2
	assert_stderr_empty
	assert_equal "$(sqlite3 desktop/notes.db 'SELECT title FROM notes ORDER BY id')" "groceries
books"
	kill "$PID"
	reap "$PID"
	# The same hub on loopback and a socket: plain sessions on the socket,
	# and only the working sets it holds.
	ex man/wsync-serve.1 3 "${SERVE_SUBS[@]}" 127.0.0.1:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 1
	ex_daemon 1 hub2
	wait_socket run/hub.sock
	join unix:run/hub.sock notes=laptop/notes.db
	run --separate-stderr wsync-join unix:run/hub.sock todo=todo.db
	assert_failure 66
}

@test "wsync-serve(1): no listening hub, each site starts one (exec: runs it here)" {
	ex man/wsync-serve.1 4 "${SERVE_SUBS[@]}"
	assert_equal "$EX_N" 1
	# The hubs share /srv/wsync, where the working set already is.
	notes notes.db
	join "exec:wsync-serve --stdio -q -d srv --create" notes=notes.db
	sql notes.db "UPDATE notes SET title = 'x' WHERE id = 1"
	ex_ok 1
	assert_stderr_empty
	assert_equal "$(sqlite3 srv/notes.db 'SELECT title FROM notes WHERE id = 1')" x
}

@test "wsync-serve(1): sites that stay connected with -f" {
	ex man/wsync-serve.1 5 "${SERVE_SUBS[@]}"
	assert_equal "$EX_N" 6
	ex_ok 1
	ex_bg 2 hub
	listening hub
	ex_bg 3 a
	ex_bg 4 b
	sleep 0.5
	ex_ok 5
	wait_sql b.db 'SELECT title FROM notes' hello
	ex_ok 6
	ex_expect 6
}

@test "wsync-serve(1): a hub that logs every frame, and the batches in it" {
	ex man/wsync-serve.1 6 "${SERVE_SUBS[@]}"
	assert_equal "$EX_N" 3
	notes a.db
	ex_bg 1 hub
	wait_socket hub.sock
	ex_ok 2
	ex_no_output 2
	ex_ok 3
	ex_expect 3
}

@test "wsync-serve(1): hubs with heartbeats, a long retention, none" {
	wsync-keygen -q -f hub.key
	site_keys
	echo "$LAPTOP notes=create # laptop" >sites
	notes laptop/notes.db
	local n
	for n in 7 8; do
		ex man/wsync-serve.1 "$n" "${SERVE_SUBS[@]}" 0.0.0.0:7000 "127.0.0.1:$PORT"
		assert_equal "$EX_N" 1
		ex_daemon 1 "hub$n"
		listening "hub$n"
		(cd laptop && join --key site.key --hub-key "$(pub ../hub.key)" \
		    "127.0.0.1:$PORT" notes=notes.db)
		kill "$PID"
		reap "$PID"
	done
	ex man/wsync-serve.1 9 "${SERVE_SUBS[@]}"
	assert_equal "$EX_N" 1
	ex_daemon 1 hub9
	listening hub9
	join unix:hub.sock notes=laptop/notes.db
}

@test "wsync-serve(1): a hub on a free port, for tests" {
	ex man/wsync-serve.1 10 "${SERVE_SUBS[@]}"
	assert_equal "$EX_N" 1
	ex_daemon 1 hub
	listening hub
	local want got
	want=$(sed 's/:[0-9]*$/:PORT/' "$EX/1.out")
	got=$(sed 's/:[0-9]*$/:PORT/' "$T/hub.err")
	assert_equal "$got" "$want"
	port=$(sed -n 's/.*listening on 127.0.0.1://p' "$T/hub.err")
	notes notes.db
	join --insecure "127.0.0.1:$port" notes=notes.db
}

# --- wsync-join(1) -----------------------------------------------------------

JOIN_SUBS=(/var/lib/wsync hubdata /run/wsync/ run/ /tmp/hub.sock hub.sock
	/srv/wsync srv 'ssh hub.example.org ' '')

# keyed_hub: a hub on 127.0.0.1:$PORT with hub.key, whose sites file lets
# site.key create any working set; $HUBKEY is its public key.
keyed_hub() {
	wsync-keygen -q -f hub.key
	wsync-keygen -q -f site.key
	HUBKEY=$(pub hub.key)
	echo "$(pub site.key) *=create # site" >sites
	start_hub hub -l "127.0.0.1:$PORT" -d hubdata --key hub.key --authorized-keys sites
}

@test "wsync-join(1): a keyed hub and two sites, the second from nothing" {
	mkdir -p hub
	wsync-keygen -q -f hub/hub.key
	ex man/wsync-join.1 1 "${JOIN_SUBS[@]}" 0.0.0.0:7000 "127.0.0.1:$PORT" \
	    hub.example.org:7000 "127.0.0.1:$PORT" "$HUBKEY_EX" "$(pub hub/hub.key)"
	assert_equal "$EX_N" 5
	assert_equal "$(cat "$EX/1.host") $(cat "$EX/3.host") $(cat "$EX/5.host")" "hub laptop desktop"
	# The keys first, so that the hub's sites file can list them.
	ex_ok 2
	ex_ok 4
	echo "$(pub laptop/site.key) *=create # laptop" >hub/sites
	echo "$(pub desktop/site.key) notes=write # desktop" >>hub/sites
	ex_daemon 1 hub
	listening hub
	notes laptop/notes.db
	ex_ok 3
	assert_stderr_empty
	ex_ok 5
	assert_stderr_empty
	assert_equal "$(sqlite3 desktop/notes.db 'SELECT title FROM notes ORDER BY id')" "groceries
books"
}

@test "wsync-join(1): the hub's key pinned on first use, two working sets, conflicts" {
	keyed_hub
	notes notes.db
	ex man/wsync-join.1 2 "${JOIN_SUBS[@]}" hub.example.org:7000 "127.0.0.1:$PORT" \
	    "$HUBKEY_EX" "$HUBKEY" /home/ann "$T"
	assert_equal "$EX_N" 2
	ex_ok 1
	printf '%s\n' "$stderr" >stderr.txt
	ex_expect 1 stderr.txt
	ex_ok 2
	assert_stderr_empty
	ex man/wsync-join.1 3 hub.example.org:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 1
	sql todo.db "CREATE TABLE todo(id INTEGER PRIMARY KEY, what)"
	ex_ok 1
	assert_stderr_empty
	[ -f hubdata/todo.db ]
	# A conflict: another site changes the same cell first.
	join --key site.key "127.0.0.1:$PORT" notes=other.db
	sql other.db "UPDATE notes SET body = 'milk, eggs, bread' WHERE id = 1"
	sql notes.db "UPDATE notes SET body = 'eggs' WHERE id = 1"
	join --key site.key "127.0.0.1:$PORT" notes=other.db
	join --key site.key "127.0.0.1:$PORT" notes=notes.db
	ex man/wsync-join.1 11 hub.example.org:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 3
	ex_ok 1
	# Which value loses depends on the site ids: the page shows one.
	local want
	want=$(sed 's/"milk, eggs, bread"/.../; s/[0-9a-f]*\.\.\.:2/...:.../' "$EX/1.out")
	printf '%s\n' "$want" >"$EX/1.out"
	ex_expect 1
	ex_ok 2
	ex_no_output 2
	ex_ok 3
	run wsync-join --conflicts notes=notes.db
	assert_output ''
}

@test "wsync-join(1): a plain session on loopback, and one over ssh (exec: runs the hub here)" {
	start_hub hub -l "127.0.0.1:$PORT" -d hubdata --create --insecure
	ex man/wsync-join.1 4 127.0.0.1:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 1
	notes notes.db
	ex_ok 1
	assert_stderr_empty
	[ -f hubdata/notes.db ]
	ex man/wsync-join.1 5 "${JOIN_SUBS[@]}"
	assert_equal "$EX_N" 1
	# --create is needed the first time, as the page says.
	ex_run 1
	assert_failure 66
	join "exec:wsync-serve --stdio -q -d srv --create" notes=notes.db
	ex_ok 1
	assert_stderr_empty
}

@test "wsync-join(1): follow mode, and working sets in a file" {
	mkdir -p run
	start_hub hub -l unix:run/hub.sock -d hubdata --create
	notes notes.db
	join unix:run/hub.sock notes=notes.db
	ex man/wsync-join.1 6 "${JOIN_SUBS[@]}"
	assert_equal "$EX_N" 2
	ex_bg 1 follow
	sleep 0.5
	ex_ok 2
	wait_sql hubdata/notes.db 'SELECT body FROM notes WHERE id = 1' eggs
	kill "$PID"
	reap "$PID"
	kill "$HUB_PID"
	reap "$HUB_PID"
	# The sets file, with a keyed hub pinned before.
	keyed_hub
	run --separate-stderr wsync-join --key site.key --accept-new-hub "127.0.0.1:$PORT" notes=notes.db
	assert_success
	ex man/wsync-join.1 7 host:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 4
	sed -n '1,2p' "$EX/1.out" >sets.txt
	ex_ok 1
	ex_expect 1
	sql todo.db "CREATE TABLE todo(id INTEGER PRIMARY KEY, what)"
	ex_bg 2 sets
	sleep 0.5
	ex_ok 3
	wait_lines "$T/sets.err" 1 "^$(ere "$(cat "$EX/3.out")")\$"
	ex_ok 4
	wait_lines "$T/sets.err" 1 "^$(ere "$(cat "$EX/4.out")")\$"
	[ -f hubdata/todo.db ]
	kill "$PID"
	reap "$PID"
	# Follow mode with heartbeats.
	ex man/wsync-join.1 8 hub.example.org:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 1
	ex_daemon 1 hb
	sql notes.db "UPDATE notes SET title = 'hb' WHERE id = 2"
	wait_sql hubdata/notes.db 'SELECT title FROM notes WHERE id = 2' hb
}

@test "wsync-join(1): a sync recorded at the site and at the hub in one file" {
	ex man/wsync-join.1 9 "${JOIN_SUBS[@]}"
	assert_equal "$EX_N" 3
	notes notes.db
	ex_bg 1 hub
	wait_socket hub.sock
	ex_ok 2
	ex_no_output 2
	ex_ok 3
	ex_expect 3
	ex man/wsync-join.1 10
	assert_equal "$EX_N" 1
	ex_ok 1
	assert_line --regexp $'^[0-9]+\tunix:hub.sock\tout\thello\t0$'
	assert_line --regexp $'^[0-9]+\tunix#1\tin\tbatch\t1$'
}

# --- wsync-keygen(1) ---------------------------------------------------------

@test "wsync-keygen(1): keys for a hub and its sites, authorized, used and checked" {
	mkdir -p hub/etc
	local subs=(/etc/wsync/ "$T/hub/etc/" /var/lib/wsync hubdata
	    0.0.0.0:7000 "127.0.0.1:$PORT" hub.example.org:7000 "127.0.0.1:$PORT")
	ex man/wsync-keygen.1 1 "${subs[@]}"
	assert_equal "$EX_N" 5
	ex_ok 1
	assert_output --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= hub.example.org$'
	ex_ok 2
	ex_ok 3
	assert_output --regexp "^wsync-ed25519:[A-Za-z0-9+/]{43}= ${USER:-wsync}@$(hostname)\$"
	assert_equal "$(sed 's/^[^ ]* //' "$EX/3.out")" ann@laptop
	ex_ok 4
	ex_ok 5
	assert_output ''
	local hubkey laptop desktop
	hubkey=$(pub hub/etc/hub.key)
	laptop=$(pub laptop/.config/wsync/site.key)
	desktop=$(pub desktop/.config/wsync/site.key)
	# The authorized keys the page shows, with these keys.
	ex man/wsync-keygen.1 2 "${subs[@]}" "$LAPTOP_EX" "$laptop" "$DESKTOP_EX" "$desktop"
	assert_equal "$EX_N" 1
	cp "$EX/1.out" hub/etc/authorized_keys
	ex_ok 1
	ex_expect 1
	# A line from a .pub file; the two commands share one shell.
	ex man/wsync-keygen.1 3 "${subs[@]}"
	assert_equal "$EX_N" 2
	cp laptop/.config/wsync/site.key.pub site.key.pub
	cat "$EX/1.sh" "$EX/2.sh" >"$EX/both.sh"
	run ex_sh "$T" "$EX/both.sh"
	assert_success
	assert_equal "$(tail -n 1 hub/etc/authorized_keys)" "$laptop notes=write # ${USER:-wsync}@$(hostname)"
	# The hub, and the laptop, which may create notes, syncing it.
	ex man/wsync-keygen.1 4 "${subs[@]}" "$HUBKEY_EX" "$hubkey"
	assert_equal "$EX_N" 2
	ex_daemon 1 hub
	listening hub
	notes laptop/notes.db
	ex_ok 2
	assert_stderr_empty
	[ -f hub/hubdata/notes.db ]
	ex man/wsync-keygen.1 5 "${subs[@]}" "$HUBKEY_EX" "$hubkey"
	assert_equal "$EX_N" 1
	ex_ok 1
	ex_expect 1
}

# --- wsync-replicate(1) ------------------------------------------------------

# shop: shop.db with the prices table the examples publish.
shop() {
	sql shop.db "CREATE TABLE prices(sku TEXT PRIMARY KEY, price REAL, stock INTEGER);
	    INSERT INTO prices VALUES ('apple', 0.5, 10), ('pear', 0.75, 4)"
}

REPL_SUBS=(0.0.0.0:7878 127.0.0.1:PORT shop.example.org:7878 127.0.0.1:PORT
	'ssh shop ' '' 127.0.0.1:8080 127.0.0.1:PORT)

@test "wsync-replicate(1): publish prices, and replicate them into a till" {
	shop
	ex man/wsync-replicate.1 1 "${REPL_SUBS[@]//PORT/$PORT}"
	assert_equal "$EX_N" 2
	ex_daemon 1 shop
	listening shop
	ex_ok 2
	assert_equal "$(sqlite3 till.db 'SELECT sku, price, stock FROM prices ORDER BY sku')" \
	    "$(sqlite3 shop.db 'SELECT sku, price, stock FROM prices ORDER BY sku')"
	# The till may update the stock.
	sql till.db "UPDATE prices SET stock = 3 WHERE sku = 'pear'"
	ex_ok 2
	assert_equal "$(sqlite3 shop.db "SELECT stock FROM prices WHERE sku = 'pear'")" 3
}

@test "wsync-replicate(1): over ssh and live, with events (exec: runs the publisher here)" {
	shop
	printf '#!/bin/sh\necho "$*" >>events.txt\n' >on-event.sh
	chmod +x on-event.sh
	ex man/wsync-replicate.1 2 "${REPL_SUBS[@]//PORT/$PORT}"
	assert_equal "$EX_N" 1
	ex_daemon 1 till
	wait_sql till.db 'SELECT count(*) FROM prices' 2
	sql shop.db "UPDATE prices SET price = 0.6 WHERE sku = 'apple'"
	wait_sql till.db "SELECT price FROM prices WHERE sku = 'apple'" 0.6
	[ -s events.txt ]
}

@test "wsync-replicate(1): authenticated and encrypted on TCP" {
	shop
	ex man/wsync-replicate.1 3 "${REPL_SUBS[@]//PORT/$PORT}"
	assert_equal "$EX_N" 4
	ex_ok 1
	assert_line --index 0 --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= '
	assert_line --index 1 --regexp '^wsync-ed25519:[A-Za-z0-9+/]{43}= '
	ex_ok 2
	ex_daemon 3 shop
	listening shop
	ex_ok 4
	assert_equal "$(sqlite3 till.db 'SELECT sku, price, stock FROM prices ORDER BY sku')" \
	    "$(sqlite3 shop.db 'SELECT sku, price, stock FROM prices ORDER BY sku')"
}

@test "wsync-replicate(1): the HTTP mapping with curl" {
	command -v curl >/dev/null || fail "this test needs curl"
	shop
	ex man/wsync-replicate.1 4 "${REPL_SUBS[@]//PORT/$PORT}"
	assert_equal "$EX_N" 3
	ex_bg 1 shop
	listening shop
	ex_ok 2
	# The page shortens the session id.
	sed -i 's/"5f0c\.\.\."/"..."/' "$EX/2.out"
	ex_expect 2
	local session
	session=$(jq -r .session <<<"$output")
	sed -i "s/5f0c\.\.\./$session/" "$EX/3.sh"
	ex_ok 3
	assert_equal "$(jq -r .mt <<<"$output")" ReplicateNextResult
}

@test "wsync-replicate(1): the HTTPS example is run by 50-replicate.bats" {
	# "the HTTPS example of EXAMPLES in wsync-replicate(1) works as written"
	# in 50-replicate.bats runs example 5 with its openssl certificate; this
	# checks that it is still the example that test expects.
	ex man/wsync-replicate.1 5
	assert_equal "$EX_N" 7
	grep -q '^@test "the HTTPS example of EXAMPLES in wsync-replicate(1) works as written"' \
	    "$BATS_TEST_DIRNAME/50-replicate.bats"
	grep -q 'openssl req' "$EX/1.sh"
}

# --- wsync-inspect(1) --------------------------------------------------------

@test "wsync-inspect(1): what a site sent and received, as it happens" {
	keyed_hub
	sql notes.db "CREATE TABLE items(id INTEGER PRIMARY KEY, name, qty);
	    INSERT INTO items VALUES (7, 'y', 1)"
	run --separate-stderr wsync-join --key site.key --accept-new-hub "127.0.0.1:$PORT" notes=notes.db
	assert_success
	ex man/wsync-inspect.1 1 hub.example.org:7000 "127.0.0.1:$PORT"
	assert_equal "$EX_N" 2
	ex_bg 1 site
	ex_daemon 2 timeline
	sleep 0.5
	sql notes.db "UPDATE items SET name = 'x', qty = 3 WHERE id = 7"
	wait_lines "$T/timeline.out" 1 ' BATCH '
	# The page's lines, its time, site id and counters being any.
	local re
	re=$(ere "$(sed -n 1p "$EX/2.out")")
	re=$(sed -E 's/^2026-11-22T10:15:02\\\.123Z/[0-9]{4}-[0-9-]{5}T[0-9:]{8}\\.[0-9]{3}Z/; s/ab12cd34/[0-9a-f]{8}/g; s/:7 /:[0-9]+ /g' <<<"$re")
	wait_lines "$T/timeline.out" 1 "^$re\$"
	grep -qxF "$(sed -n 2p "$EX/2.out")" "$T/timeline.out"
}

@test "wsync-inspect(1): filters, checks, statistics and salvage of hub logs" {
	logs
	ex man/wsync-inspect.1 2
	assert_equal "$EX_N" 1
	ex_ok 1
	ex man/wsync-inspect.1 3 https://logs.example.org/hub-2026-11-22.log "file://$T/hub.log"
	assert_equal "$EX_N" 2
	# (a file: URL: libcurl fetches it as it would the https: one)
	ex_ok 1
	ex_ok 2
	assert_output --partial batch
	ex man/wsync-inspect.1 4
	assert_equal "$EX_N" 1
	# Status 65: damage skipped (EXIT STATUS).
	ex_run 1
	assert_failure 65
	run wsync-inspect --check clean.log
	assert_success
}

@test "wsync-inspect(1): a working-set database" {
	logs
	ex man/wsync-inspect.1 5
	assert_equal "$EX_N" 2
	ex_ok 1
	assert_output --partial notes
	ex_ok 2
	assert_output '[]'
}

@test "wsync-inspect(1): streams through jq, joined, and round trips" {
	logs
	wsync-inspect --json log.ws >d.jsonl
	sql items.db "CREATE TABLE items(id INTEGER PRIMARY KEY, price REAL)"
	ex man/wsync-inspect.1 6
	assert_equal "$EX_N" 1
	ex_ok 1
	assert_line --partial '"table": "secrets"'
	ex man/wsync-inspect.1 7
	assert_equal "$EX_N" 1
	ex_ok 1
	run bash -c "wsync-inspect --json d.ws | jq -r 'select(.type == \"batch\") | .changes[].table' | sort -u"
	assert_output notes
	# A REAL that jq would write as 1.
	jq -c 'if .type == "batch" then .tables = [{"name":"items","cols":["id","price"],"pk":["id"]}] |
	    .changes = [{"table":"items","op":"insert","dot":.dot,"pk":[1],"set":{"price":{"real":1}}}]
	    else . end' d.jsonl | wsync-inspect --encode | wsync-inspect --json >d2.jsonl
	jq -c . d2.jsonl >d.jsonl
	ex man/wsync-inspect.1 8
	assert_equal "$EX_N" 1
	ex_ok 1
	# jq wrote it as 1; the example makes it a REAL again.
	grep -q '"price":1[,}]' d.jsonl
	run bash -c "wsync-inspect --json d.ws | grep -o '\"price\":[^,}]*' | sort -u"
	assert_output '"price":1.0'
	ex man/wsync-inspect.1 9
	assert_equal "$EX_N" 1
	cp log.ws monday.ws
	wsync-inspect --json log.ws >tuesday.jsonl
	ex_ok 1
	assert_equal "$(wsync-inspect --json all.ws | wc -l)" $((2 * $(wc -l <tuesday.jsonl)))
	ex man/wsync-inspect.1 10
	assert_equal "$EX_N" 1
	ex_ok 1
}
