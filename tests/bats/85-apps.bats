#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 85-apps.bats - an application's whole database syncs: a fossil(1)
# repository (27 tables, six without a primary key, writes made with
# triggers off) passes fossil's own check on every copy; --scan finds
# the writes of programs that turn triggers off; FTS5 tables with an
# external content table travel and are rebuilt on every copy.
#
# A real hub on a unix socket, real sites (wsync-join), the sqlite3 CLI
# and fossil.

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
	# fossil wants a user, and keeps its settings under HOME.
	export USER=wsync HOME="$T/home"
	mkdir -p "$HOME"
}

teardown() {
	proc_teardown
}

# own SITE: the number of batches SITE's database sealed itself.
own() {
	sqlite3 "$1" "SELECT count(*) FROM wsync_batches WHERE site = (SELECT id
	    FROM wsync_sites WHERE site = (SELECT value FROM wsync_meta WHERE key = 'site'))"
}

# commit DIR FILE TEXT MESSAGE: append TEXT to FILE in fossil checkout
# DIR (adding it when new) and commit.
commit() {
	(
		cd "$1" || exit 1
		[ -e "$2" ] || { : >"$2" && fossil add "$2" >/dev/null; } || exit 1
		echo "$3" >>"$2"
		fossil update >/dev/null 2>&1
		fossil commit -m "$4" >/dev/null 2>&1
	) || fail "fossil commit '$4' in $1 failed"
}

# same_fossil A B: both repositories pass fossil's own check and show the
# same timeline.
same_fossil() {
	local r
	for r in "$1" "$2"; do
		run fossil test-integrity -R "$r"
		assert_success
		assert_output --partial "0 errors"
		assert_line "low-level database integrity-check: ok"
	done
	assert_equal "$(fossil timeline -n 0 -R "$2" | sed 1d)" \
	    "$(fossil timeline -n 0 -R "$1" | sed 1d)"
}

@test "a fossil repository syncs whole: the copy passes fossil's own check, and commits from either side arrive" {
	command -v fossil >/dev/null || skip "fossil is not installed"
	fossil init a.fossil >/dev/null
	mkdir wa wb
	(cd wa && fossil open ../a.fossil >/dev/null)
	commit wa readme.txt "hello" "first"
	commit wa readme.txt "more" "second"
	# fossil turns triggers off for its connection: --scan finds its writes.
	join --scan "$SOCK" repo=a.fossil
	join --scan "$SOCK" repo=b.fossil
	same_fossil a.fossil b.fossil
	# Every table came, the six without a primary key by their rowids.
	assert_equal "$(sqlite3 b.fossil "SELECT count(*) FROM wsync_tables")" \
	    "$(sqlite3 a.fossil "SELECT count(*) FROM sqlite_schema WHERE type = 'table'
	    AND name NOT LIKE 'wsync\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'")"
	for t in mlink plink tagxref backlink; do
		assert_equal "$(sqlite3 b.fossil "SELECT rowid, * FROM $t ORDER BY rowid")" \
		    "$(sqlite3 a.fossil "SELECT rowid, * FROM $t ORDER BY rowid")"
	done
	# A commit on the copy reaches the origin, and one there comes back.
	(cd wb && fossil open ../b.fossil >/dev/null 2>&1)
	commit wb notes.txt "from b" "third, from b"
	join "$SOCK" repo=b.fossil
	join "$SOCK" repo=a.fossil
	same_fossil a.fossil b.fossil
	commit wa readme.txt "again" "fourth, from a"
	join "$SOCK" repo=a.fossil
	join "$SOCK" repo=b.fossil
	same_fossil a.fossil b.fossil
	(cd wb && fossil update >/dev/null 2>&1)
	assert_equal "$(cat wb/readme.txt)" "hello
more
again"
	assert_equal "$(cat wa/notes.txt 2>/dev/null || (cd wa && fossil update >/dev/null 2>&1; cat notes.txt))" "from b"
	assert_equal "$(sqlite3 b.fossil 'SELECT count(*) FROM wsync_conflicts')" 0
}

@test "--scan finds inserts, updates and deletes made with triggers off, column by column, and keeps finding them" {
	sql a.db "CREATE TABLE t(id INTEGER PRIMARY KEY, x, y); INSERT INTO t VALUES(1, 'a', 'b'), (2, 'c', 'd')"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	# Without --scan a write with triggers off never leaves.
	sqlite3 a.db ".dbconfig enable_trigger off" "UPDATE t SET x = 'lost' WHERE id = 1" >/dev/null
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	assert_equal "$(sqlite3 b.db 'SELECT x FROM t WHERE id = 1')" a
	# --scan compares every row: the first run sends them all.
	join --scan "$SOCK" u=a.db
	join "$SOCK" u=b.db
	assert_equal "$(sqlite3 b.db 'SELECT * FROM t ORDER BY id')" "1|lost|b
2|c|d"
	# Concurrent edits of other columns of one row both survive: the scan
	# logs only the columns that changed.
	sqlite3 a.db ".dbconfig enable_trigger off" "UPDATE t SET x = 'ax' WHERE id = 2;
	    INSERT INTO t VALUES(3, 'e', 'f'); DELETE FROM t WHERE id = 1" >/dev/null
	sql b.db "UPDATE t SET y = 'by' WHERE id = 2"
	# No --scan: the database kept the choice.
	join "$SOCK" u=b.db
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	for db in a.db b.db hub/u.db; do
		assert_equal "$(sqlite3 "$db" 'SELECT * FROM t ORDER BY id')" "2|ax|by
3|e|f"
	done
	assert_equal "$(sqlite3 a.db 'SELECT count(*) FROM wsync_conflicts')" 0
	# What a scanning site takes from others is not sent back as its own.
	n=$(own a.db)
	sql b.db "UPDATE t SET x = 'bx' WHERE id = 3"
	join "$SOCK" u=b.db
	join "$SOCK" u=a.db
	join "$SOCK" u=a.db
	assert_equal "$(own a.db)" "$n"
	assert_equal "$(sqlite3 a.db 'SELECT x FROM t WHERE id = 3')" bx
}

# search DB WORD: the rowids docs_fts finds WORD in, comma-separated.
search() {
	sqlite3 "$1" "SELECT group_concat(rowid) FROM (SELECT rowid FROM docs_fts
	    WHERE docs_fts MATCH '$2' ORDER BY rowid)"
}

@test "an FTS5 table on a tracked content table travels, and is rebuilt on every copy after each merge" {
	sql a.db "CREATE TABLE docs(id INTEGER PRIMARY KEY, body TEXT);
	    CREATE VIRTUAL TABLE docs_fts USING fts5(body, content='docs', content_rowid='id');
	    CREATE TRIGGER docs_ai AFTER INSERT ON docs BEGIN
	      INSERT INTO docs_fts(rowid, body) VALUES(NEW.id, NEW.body); END;
	    CREATE TRIGGER docs_ad AFTER DELETE ON docs BEGIN
	      INSERT INTO docs_fts(docs_fts, rowid, body) VALUES('delete', OLD.id, OLD.body); END;
	    CREATE TRIGGER docs_au AFTER UPDATE ON docs BEGIN
	      INSERT INTO docs_fts(docs_fts, rowid, body) VALUES('delete', OLD.id, OLD.body);
	      INSERT INTO docs_fts(rowid, body) VALUES(NEW.id, NEW.body); END;
	    CREATE VIRTUAL TABLE scratch USING fts5(body);
	    INSERT INTO docs VALUES(1, 'red apples'), (2, 'green pears')"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=a.db
	assert_success
	assert_stderr "wsync-join: u: table 'scratch' is not tracked: it is a virtual table (of those, only FTS5 tables with a tracked content table travel)"
	join "$SOCK" u=b.db
	for db in b.db hub/u.db; do
		assert_equal "$(search "$db" apples)" 1
		assert_equal "$(sqlite3 "$db" ".schema docs_fts" | head -n 1)" \
		    "$(sqlite3 a.db ".schema docs_fts" | head -n 1)"
		assert_equal "$(sqlite3 "$db" ".schema docs")" "$(sqlite3 a.db ".schema docs")"
		assert_equal "$(sqlite3 "$db" "SELECT count(*) FROM sqlite_schema WHERE name = 'scratch'")" 0
	done
	# Changes from b reach a's index, through the merge and the rebuild.
	sql a.db "DROP TABLE scratch"
	sql b.db "UPDATE docs SET body = 'ripe apples' WHERE id = 2; INSERT INTO docs VALUES(3, 'plums');
	    DELETE FROM docs WHERE id = 1"
	join "$SOCK" u=b.db
	join "$SOCK" u=a.db
	for db in a.db b.db hub/u.db; do
		assert_equal "$(search "$db" apples)" 2
		assert_equal "$(search "$db" pears)" ""
		assert_equal "$(search "$db" plums)" 3
		sql "$db" "INSERT INTO docs_fts(docs_fts) VALUES('integrity-check')"
	done
}
