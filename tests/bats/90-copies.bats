#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 90-copies.bats - a copy of a site's database is a new site.  A database
# copied from another site's (scp, a backup restored, a copy taken while
# wsync-join -f runs) carries that site's id; without care its writes
# would take the original's dots and be skipped as duplicates, lost for
# good with every run exiting 0.  Each case here writes on both sides and
# checks that every write reaches every copy, and what stderr says.
#
# A real hub on a unix socket, real sites (wsync-join) and the sqlite3 CLI.

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
	start_hub hub -d hub --create -l "$SOCK"
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);
	    INSERT INTO notes VALUES(1, 'one')"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
}

teardown() {
	proc_teardown
}

# site DB: the site id of DB, as wsync prints it.
site() {
	sqlite3 "$1" "SELECT lower(hex(value)) FROM wsync_meta WHERE key = 'site'"
}

# rows DB: the notes, in key order.
rows() {
	sqlite3 "$1" "SELECT * FROM notes ORDER BY id"
}

@test "a copied database becomes a new site: writes on the copy and the original both reach everyone" {
	was=$(site a.db)
	cp a.db c.db
	sql a.db "INSERT INTO notes VALUES(2, 'from a')"
	sql c.db "INSERT INTO notes VALUES(3, 'from c')"
	join "$SOCK" u=a.db
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=c.db
	assert_success
	now=$(site c.db)
	[ "$now" != "$was" ] || fail "c.db kept the site id of a.db"
	assert_stderr "wsync-join: u: c.db is a copy of another site's database (it is not the file its site id was made in), so it is site $now now"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	for db in a.db b.db c.db hub/u.db; do
		assert_equal "$(rows "$db")" "1|one
2|from a
3|from c"
	done
	# Said once: the copy is a site of its own from then on.
	sql c.db "INSERT INTO notes VALUES(4, 'c again')"
	join "$SOCK" u=c.db
	join "$SOCK" u=b.db
	assert_equal "$(rows b.db | tail -n 1)" "4|c again"
	assert_equal "$(site a.db)" "$was"
}

@test "an old backup restored over the file becomes a new site: its new writes arrive, and what it lacked comes back" {
	was=$(site a.db)
	cp a.db backup.db
	sql a.db "INSERT INTO notes VALUES(2, 'after the backup')"
	join "$SOCK" u=a.db
	# Restored in place: the same file, the same inode, an older state.
	cat backup.db >a.db
	sql a.db "INSERT INTO notes VALUES(3, 'after the restore')"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=a.db
	assert_success
	now=$(site a.db)
	[ "$now" != "$was" ] || fail "a.db kept its site id"
	assert_stderr "wsync-join: u: the hub holds 1 change batches of site $was that a.db never sent: it is an old copy or a restored backup, so it is site $now now, and sends its changes as such"
	join "$SOCK" u=b.db
	for db in a.db b.db hub/u.db; do
		assert_equal "$(rows "$db")" "1|one
2|after the backup
3|after the restore"
		assert_equal "$(sqlite3 "$db" 'PRAGMA integrity_check')" ok
	done
	assert_equal "$(sqlite3 a.db 'SELECT count(*) FROM wsync_conflicts')" 0
}

@test "a copy taken while wsync-join -f runs on the original: both go on, and every write arrives" {
	spawn follower "$WS_BIN/wsync-join" -f "$SOCK" u=a.db
	sql a.db "INSERT INTO notes VALUES(2, 'live')"
	wait_sql hub/u.db "SELECT count(*) FROM notes WHERE id = 2" 1
	join "$SOCK" u=b.db
	assert_equal "$(rows b.db | tail -n 1)" "2|live"
	cp a.db c.db
	sql c.db "INSERT INTO notes VALUES(3, 'from the copy')"
	sql a.db "INSERT INTO notes VALUES(4, 'from the original')"
	wait_sql hub/u.db "SELECT count(*) FROM notes WHERE id = 4" 1
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=c.db
	assert_success
	assert_stderr_contains "c.db is a copy of another site's database"
	wait_sql a.db "SELECT count(*) FROM notes WHERE id = 3" 1
	join "$SOCK" u=c.db
	join "$SOCK" u=b.db
	for db in a.db b.db c.db; do
		assert_equal "$(rows "$db")" "1|one
2|live
3|from the copy
4|from the original"
	done
}
