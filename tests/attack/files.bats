#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# files.bats - what a local user can do to wsync through the files it
# reads and the sockets it makes.  Secret keys: a public half that is not
# its seed's, a symbolic link, a FIFO (which must not hang anything) are
# refused; keygen --force replaces a symbolic link and never touches its
# target.  Authorized keys and known hubs that group or others may write
# are refused (ssh's StrictModes); their fields may be separated by tabs,
# and a tab-separated known-hubs line pins as well as a spaced one.  Unix
# sockets: 0600 whatever the umask, --socket-mode honoured, and a file
# that is not a socket is never removed.  Exit codes and messages are
# compared exactly; the hub keeps serving and its database is unchanged.

bats_require_minimum_version 1.5.0
load ../bats/helper

WAIT_S=${WAIT_S:-10}

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	umask 022
	for t in wsync-serve wsync-join wsync-keygen; do ws_need "$t"; done
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v python3 >/dev/null || fail "these tests need python3"
	"$WS_BIN/wsync-keygen" -q -f hub.key -C hub
	"$WS_BIN/wsync-keygen" -q -f site.key -C site
	"$WS_BIN/wsync-keygen" -q -f other.key -C other
	HUBKEY=$(cut -d' ' -f1 hub.key.pub)
	SITEKEY=$(cut -d' ' -f1 site.key.pub)
	OTHERKEY=$(cut -d' ' -f1 other.key.pub)
	printf '%s\tnotes=create \t # the site, tab-separated\n' "$SITEKEY" >authorized
	sqlite3 a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(1, 'one')"
	SOCK="unix:$T/hub.sock"
}

teardown() {
	proc_teardown
}

# keyed_hub: a hub with keys on $SOCK.
keyed_hub() {
	start_hub hub -l "$SOCK" -d hub --create --key hub.key --authorized-keys authorized "$@"
}

# mismatched FILE: a copy of site.key whose public half is other.key's.
mismatched() {
	python3 - "$1" <<'EOF_PY'
import base64, sys
def sk(path):
    return base64.b64decode(open(path).read().split()[1])
open(sys.argv[1], "w").write("wsync-secret-key-v1 " +
    base64.b64encode(sk("site.key")[:32] + sk("other.key")[32:]).decode() + "\n")
EOF_PY
	chmod 600 "$1"
}

# --- secret keys ---------------------------------------------------------------

@test "a key file whose public half is not its seed's is refused (78)" {
	mismatched bad.key
	run --separate-stderr "$WS_BIN/wsync-keygen" -y -f bad.key
	assert_failure 78
	assert_output ''
	assert_stderr "wsync-keygen: key file 'bad.key' is damaged: its public half does not match its secret seed"
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" --key bad.key --authorized-keys authorized
	assert_failure 78
	assert_stderr "wsync-serve: key file 'bad.key' is damaged: its public half does not match its secret seed"
	run --separate-stderr "$WS_BIN/wsync-join" --key bad.key --hub-key "$HUBKEY" "$SOCK" notes=a.db
	assert_failure 78
	assert_stderr "wsync-join: key file 'bad.key' is damaged: its public half does not match its secret seed"
	# The key it was made from is fine.
	run "$WS_BIN/wsync-keygen" -y -f site.key
	assert_success
	assert_output "$SITEKEY"
}

@test "a key file that is a symbolic link is refused (77), even to a good key" {
	ln -s site.key link.key
	run --separate-stderr "$WS_BIN/wsync-keygen" -y -f link.key
	assert_failure 77
	assert_stderr "wsync-keygen: key file 'link.key' is a symbolic link: refusing it (give the file it points to)"
	ln -s hub.key hublink.key
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" --key hublink.key --authorized-keys authorized
	assert_failure 77
	assert_stderr "wsync-serve: key file 'hublink.key' is a symbolic link: refusing it (give the file it points to)"
	run --separate-stderr "$WS_BIN/wsync-join" --key link.key --hub-key "$HUBKEY" "$SOCK" notes=a.db
	assert_failure 77
	assert_stderr "wsync-join: key file 'link.key' is a symbolic link: refusing it (give the file it points to)"
}

@test "a key file that is a FIFO or a directory is refused at once (77), never waited on" {
	mkfifo fifo.key
	chmod 600 fifo.key
	run --separate-stderr timeout 10 "$WS_BIN/wsync-keygen" -y -f fifo.key
	assert_failure 77
	assert_stderr "wsync-keygen: key file 'fifo.key' is not a regular file: refusing it"
	run --separate-stderr timeout 10 "$WS_BIN/wsync-serve" -l "$SOCK" --key fifo.key --authorized-keys authorized
	assert_failure 77
	assert_stderr "wsync-serve: key file 'fifo.key' is not a regular file: refusing it"
	run --separate-stderr timeout 10 "$WS_BIN/wsync-join" --key fifo.key --hub-key "$HUBKEY" "$SOCK" notes=a.db
	assert_failure 77
	assert_stderr "wsync-join: key file 'fifo.key' is not a regular file: refusing it"
	mkdir dir.key
	chmod 700 dir.key
	run --separate-stderr timeout 10 "$WS_BIN/wsync-keygen" -y -f dir.key
	assert_failure 77
	assert_stderr "wsync-keygen: key file 'dir.key' is not a regular file: refusing it"
}

@test "keygen --force over a symbolic link replaces the link; its target is untouched" {
	echo 'precious data' >target
	chmod 644 target
	echo 'precious pub' >target.pub
	chmod 640 target.pub
	ln -s target k
	ln -s target.pub k.pub
	run --separate-stderr "$WS_BIN/wsync-keygen" -q --force -f k
	assert_success
	assert_stderr_empty
	assert_equal "$(cat target)" 'precious data'
	assert_equal "$(stat -c %a target)" 644
	assert_equal "$(cat target.pub)" 'precious pub'
	assert_equal "$(stat -c %a target.pub)" 640
	[ -f k ] && [ ! -L k ] || fail "k is not a regular file now"
	[ -f k.pub ] && [ ! -L k.pub ] || fail "k.pub is not a regular file now"
	assert_equal "$(stat -c %a k)" 600
	assert_equal "$(stat -c %a k.pub)" 644
	run "$WS_BIN/wsync-keygen" -y -f k
	assert_success
	assert_equal "$output" "$(cut -d' ' -f1 k.pub)"
	# No temporary file is left behind.
	run ls
	refute_output --partial .tmp-
}

@test "keygen without --force: a symbolic link, even a dangling one, is an existing file (74)" {
	ln -s nowhere k
	run --separate-stderr "$WS_BIN/wsync-keygen" -f k
	assert_failure 74
	assert_stderr "wsync-keygen: cannot create 'k': file exists"
	[ ! -e nowhere ] || fail "the link's target was created"
}

@test "keygen --force whatever the umask: 0600 and 0644" {
	umask 000
	run "$WS_BIN/wsync-keygen" -q -f u.key
	assert_success
	run "$WS_BIN/wsync-keygen" -q --force -f u.key
	assert_success
	umask 022
	assert_equal "$(stat -c %a u.key)" 600
	assert_equal "$(stat -c %a u.key.pub)" 644
}

# --- authorized keys and known hubs -------------------------------------------

@test "authorized keys that group or others may write are refused (77)" {
	chmod 664 authorized
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" -d hub --key hub.key --authorized-keys authorized
	assert_failure 77
	assert_stderr "wsync-serve: authorized keys 'authorized' may be written by group or others (mode 0664): refusing it (chmod go-w 'authorized')"
	chmod 646 authorized
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" -d hub --key hub.key --authorized-keys authorized
	assert_failure 77
	assert_stderr "wsync-serve: authorized keys 'authorized' may be written by group or others (mode 0646): refusing it (chmod go-w 'authorized')"
	mkfifo ak.fifo
	run --separate-stderr timeout 10 "$WS_BIN/wsync-serve" -l "$SOCK" -d hub --key hub.key --authorized-keys ak.fifo
	assert_failure 77
	assert_stderr "wsync-serve: authorized keys 'ak.fifo' is not a regular file: refusing it"
	# Readable by all is fine: the file holds public keys.
	chmod 644 authorized
	keyed_hub
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" "$SOCK" notes=a.db
	assert_success
	assert_stderr_empty
}

@test "an authorized-keys line separated by tabs and runs of blanks gives its rights" {
	printf '%s \t notes=read\t\t*=create\n' "$SITEKEY" >authorized
	keyed_hub
	# A plain session (a unix socket allows it) makes notes.
	join "$SOCK" notes=a.db
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" "$SOCK" other=c.db
	assert_success
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" "$SOCK" notes=b.db
	assert_success
	assert_equal "$(sqlite3 b.db 'SELECT title FROM notes')" one
	sql b.db "INSERT INTO notes VALUES(2, 'two')"
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --hub-key "$HUBKEY" "$SOCK" notes=b.db
	assert_failure 77
	assert_equal "$(sqlite3 hub/notes.db 'SELECT count(*) FROM notes')" 1
}

@test "known hubs that group or others may write are refused (77)" {
	keyed_hub
	printf '%s %s\n' "$SOCK" "$HUBKEY" >kh
	chmod 666 kh
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh "$SOCK" notes=a.db
	assert_failure 77
	assert_stderr "wsync-join: known hubs 'kh' may be written by group or others (mode 0666): refusing it (chmod go-w 'kh')"
	chmod 644 kh
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh "$SOCK" notes=a.db
	assert_success
	assert_stderr_empty
}

@test "a tab-separated known-hubs line pins its key: another key is refused even with --accept-new-hub" {
	keyed_hub
	printf '%s\t%s\n' "$SOCK" "$OTHERKEY" >kh
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "$SOCK" notes=a.db
	assert_failure 77
	assert_stderr "wsync-join: the hub at $SOCK presented key $HUBKEY, but kh:1 pins another: refusing it (if the hub's key really changed, edit that line)"
	assert_equal "$(cat kh)" "$SOCK"$'\t'"$OTHERKEY"
	# The right key behind tabs and blanks is honoured, and nothing added.
	printf '  %s \t \t%s\t \n' "$SOCK" "$HUBKEY" >kh
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "$SOCK" notes=a.db
	assert_success
	assert_stderr_empty
	assert_equal "$(wc -l <kh)" 1
}

@test "a known-hubs file made under umask 000 is not writable by others" {
	keyed_hub
	umask 000
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh \
	    --accept-new-hub "$SOCK" notes=a.db
	umask 022
	assert_success
	assert_equal "$(stat -c %a kh)" 644
	run --separate-stderr "$WS_BIN/wsync-join" --key site.key --known-hubs kh "$SOCK" notes=a.db
	assert_success
	assert_stderr_empty
}

# --- unix sockets --------------------------------------------------------------

@test "a unix socket is 0600 even under umask 000" {
	umask 000
	start_hub hub -l "$SOCK" -d hub --create
	umask 022
	assert_equal "$(stat -c '%a %F' hub.sock)" "600 socket"
	join "$SOCK" notes=a.db
}

@test "--socket-mode 0660 is honoured, whatever the umask; a bad mode is a usage error" {
	umask 077
	start_hub hub -l "$SOCK" -d hub --create --socket-mode 0660
	umask 022
	assert_equal "$(stat -c '%a %F' hub.sock)" "660 socket"
	join "$SOCK" notes=a.db
	for m in 999 0 1000 -600 rw ''; do
		run --separate-stderr "$WS_BIN/wsync-serve" -l "unix:$T/x.sock" --socket-mode "$m"
		assert_failure 64
		assert_stderr "wsync-serve: bad --socket-mode '$m': want an octal mode, 1 to 0777"
	done
	[ ! -e x.sock ] || fail "x.sock was made"
}

@test "a regular file at the socket path is never removed (78)" {
	echo 'my notes' >notes.txt
	run --separate-stderr "$WS_BIN/wsync-serve" -l "unix:$T/notes.txt" -d hub --create
	assert_failure 78
	assert_stderr "wsync-serve: cannot listen on 'unix:$T/notes.txt': '$T/notes.txt' exists and is not a socket: refusing to remove it"
	assert_equal "$(cat notes.txt)" 'my notes'
	mkdir adir
	run --separate-stderr "$WS_BIN/wsync-serve" -l "unix:$T/adir" -d hub --create
	assert_failure 78
	[ -d adir ] || fail "adir is gone"
	ln -s notes.txt link.sock
	run --separate-stderr "$WS_BIN/wsync-serve" -l "unix:$T/link.sock" -d hub --create
	assert_failure 78
	[ -L link.sock ] && [ "$(cat notes.txt)" = 'my notes' ] || fail "the link or its target changed"
}

@test "a stale socket is replaced; a live one is not (75)" {
	python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$T/hub.sock"
	start_hub hub -l "$SOCK" -d hub --create
	assert_equal "$(stat -c '%a %F' hub.sock)" "600 socket"
	run --separate-stderr "$WS_BIN/wsync-serve" -l "$SOCK" -d hub2 --create
	assert_failure 75
	assert_stderr "wsync-serve: cannot listen on '$SOCK': address already in use"
	join "$SOCK" notes=a.db
}
