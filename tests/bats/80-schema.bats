#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 80-schema.bats - the working set owns its schema: an application's
# schema (INTEGER PRIMARY KEY, NOT NULL, UNIQUE, CHECK, DEFAULT, COLLATE,
# REFERENCES, indexes, a view and a trigger) arrives intact on every copy,
# the hub's included; schema changes replicate or are refused by name;
# UNIQUE and FOREIGN KEY clashes that only concurrency can make end as
# recorded conflicts, and never stall a site.
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
}

teardown() {
	proc_teardown
}

# The schema of the issue that found the bare tables.
BOOKS="CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE books(id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL UNIQUE, price REAL CHECK(price >= 0), note TEXT DEFAULT 'x' COLLATE NOCASE, author_id REFERENCES authors(id) ON DELETE CASCADE);
CREATE INDEX books_author ON books(author_id);
CREATE INDEX books_price ON books(price DESC);
CREATE VIEW cheap AS SELECT title FROM books WHERE price < 10;
CREATE TABLE audit(id INTEGER PRIMARY KEY, book INTEGER, what TEXT);
CREATE TRIGGER books_ai AFTER INSERT ON books BEGIN INSERT INTO audit(book, what) VALUES(NEW.id, 'added'); END;"

# same_everywhere OBJECT DB...: `.schema OBJECT` prints the same text on
# every DB, and it is not empty.
same_everywhere() {
	local obj=$1 first want
	shift
	first=$1
	want=$(sqlite3 "$first" ".schema $obj")
	[ -n "$want" ] || fail "no .schema $obj in $first"
	for db in "$@"; do
		assert_equal "$(sqlite3 "$db" ".schema $obj")" "$want"
	done
}

# pair SET SQL: a working set SET made at x.db with SQL, then taken by y.db.
pair() {
	sql x.db "$2"
	join "$SOCK" "$1=x.db"
	join "$SOCK" "$1=y.db"
}

# settle SET: y, x and y again sync SET, so both hold what the other wrote.
settle() {
	join "$SOCK" "$1=y.db"
	join "$SOCK" "$1=x.db"
	join "$SOCK" "$1=y.db"
}

# conflicts_alike SET KIND TEXT: x lists, among SET's conflicts, one of
# KIND and a line holding TEXT; y lists the same conflicts.
conflicts_alike() {
	local want
	run --separate-stderr "$WS_BIN/wsync-join" --conflicts "$1=x.db"
	assert_success
	assert_line --partial "$3"
	assert_line --partial "	$2"
	want=$(cut -f3- <<<"$output")
	run --separate-stderr "$WS_BIN/wsync-join" --conflicts "$1=y.db"
	assert_equal "$(cut -f3- <<<"$output")" "$want"
}

# rows DB: the user tables' rows, in key order.
rows() {
	sqlite3 "$1" "SELECT 'authors', * FROM authors ORDER BY id;
	    SELECT 'books', * FROM books ORDER BY id;
	    SELECT 'audit', * FROM audit ORDER BY id"
}

@test "an application schema arrives intact on three sites and the hub" {
	sql a.db "$BOOKS
	    INSERT INTO authors VALUES(5, 'ann');
	    INSERT INTO books(title, price, author_id) VALUES('t1', 3, 5);"
	sql b.db "$BOOKS"
	join "$SOCK" lib=a.db
	join "$SOCK" lib=b.db
	join "$SOCK" lib=c.db          # from an empty file
	join "$SOCK" lib=a.db
	for o in authors books cheap audit; do
		same_everywhere "$o" a.db b.db c.db hub/lib.db
	done
	# The view and the indexes are there, and the rowid alias works.
	assert_equal "$(sqlite3 c.db 'SELECT title FROM cheap')" t1
	assert_equal "$(sqlite3 c.db "SELECT name FROM sqlite_schema WHERE type = 'index' AND name LIKE 'books\_%' ESCAPE '\' ORDER BY name")" \
	    "books_author
books_price"
	sql c.db "INSERT INTO books(title, price, author_id) VALUES('t2', 4, 5)"
	assert_equal "$(sqlite3 c.db 'SELECT id FROM books WHERE title = "t2"')" 2
	join "$SOCK" lib=c.db
	join "$SOCK" lib=a.db
	join "$SOCK" lib=b.db
	# The trigger ran where the books were added, and only there: its
	# audit rows travel as changes, never written twice.
	assert_equal "$(rows a.db)" "$(rows c.db)"
	assert_equal "$(rows b.db)" "$(rows c.db)"
	assert_equal "$(rows hub/lib.db)" "$(rows c.db)"
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM audit')" 2
	for db in a.db b.db c.db hub/lib.db; do
		assert_integrity "$db"
		assert_equal "$(sqlite3 "$db" 'PRAGMA foreign_key_check')" ""
	done
}

@test "NOT NULL, UNIQUE and the rowid alias hold on the copy: a NULL key cannot be made" {
	sql a.db "$BOOKS"
	join "$SOCK" lib=a.db
	join "$SOCK" lib=b.db
	run sqlite3 b.db "INSERT INTO books(price) VALUES(1)"
	assert_failure
	assert_output "Error: stepping, NOT NULL constraint failed: books.title (19)"
	# A key that SQLite would let hold NULL is refused by the capture.
	sql b.db "CREATE TABLE tags(name TEXT PRIMARY KEY, n)"
	join "$SOCK" lib=b.db
	run sqlite3 b.db "INSERT INTO tags(n) VALUES(1)"
	assert_failure
	assert_output "Error: stepping, wsync: NULL in the primary key of table 'tags' (19)"
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM tags')" 0
}

@test "ADD COLUMN with a DEFAULT, a value written before the next run, CREATE and DROP INDEX" {
	sql a.db "$BOOKS
	    INSERT INTO authors VALUES(5, 'ann');
	    INSERT INTO books(title, price, author_id) VALUES('t1', 3, 5), ('t2', 4, 5);"
	join "$SOCK" lib=a.db
	join "$SOCK" lib=b.db
	sql a.db "ALTER TABLE books ADD COLUMN isbn TEXT DEFAULT 'dflt';
	    UPDATE books SET isbn = '978' WHERE id = 2;
	    CREATE INDEX books_isbn ON books(isbn);
	    DROP INDEX books_price;"
	join "$SOCK" lib=a.db
	join "$SOCK" lib=b.db
	same_everywhere books a.db b.db hub/lib.db
	assert_equal "$(sqlite3 b.db 'SELECT id, isbn FROM books ORDER BY id')" "1|dflt
2|978"
	assert_equal "$(sqlite3 hub/lib.db 'SELECT id, isbn FROM books ORDER BY id')" "1|dflt
2|978"
	assert_equal "$(sqlite3 b.db "SELECT count(*) FROM sqlite_schema WHERE name = 'books_price'")" 0
	# A new table in the set travels too.
	sql b.db "CREATE TABLE shelves(id INTEGER PRIMARY KEY, label TEXT UNIQUE);
	    INSERT INTO shelves VALUES(1, 'top')"
	join "$SOCK" lib=b.db
	join "$SOCK" lib=a.db
	same_everywhere shelves a.db b.db hub/lib.db
	assert_equal "$(sqlite3 a.db 'SELECT * FROM shelves')" "1|top"
}

@test "a change that does not replicate is refused by name, and nothing leaves" {
	sql a.db "$BOOKS"
	join "$SOCK" lib=a.db
	sql a.db "ALTER TABLE books RENAME COLUMN note TO remark;
	    INSERT INTO authors VALUES(1, 'zed')"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" lib=a.db
	assert_failure 65
	assert_stderr "wsync-join: table 'books' differs from the working set's: column 4 ('remark'): name 'remark' here, 'note' in the working set: only ALTER TABLE ADD COLUMN changes a tracked table (see MIGRATION in wsync(7))"
	assert_equal "$(sqlite3 hub/lib.db 'SELECT count(*) FROM authors')" 0
}

@test "a site whose table differs from the working set's is refused: exit 65, the table and the first difference" {
	sql a.db "$BOOKS"
	join "$SOCK" lib=a.db
	sql b.db "CREATE TABLE authors(id INTEGER PRIMARY KEY, name BLOB NOT NULL)"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" lib=b.db
	assert_failure 65
	assert_stderr "wsync-join: table 'authors' differs from the working set's: column 2 ('name'): type 'BLOB' here, 'TEXT' in the working set"
	# Nothing was merged into it, and the hub is unchanged.
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM authors')" 0
	same_everywhere authors a.db hub/lib.db
	assert_integrity hub/lib.db
}

@test "concurrent UNIQUE inserts: every copy keeps the same row, the other is a conflict, and the site goes on" {
	sql x.db "CREATE TABLE users(id INTEGER PRIMARY KEY, email TEXT UNIQUE, n INTEGER)"
	join "$SOCK" u=x.db
	join "$SOCK" u=y.db
	sql x.db "INSERT INTO users VALUES(10, 'dup@x', 1)"
	sql y.db "INSERT INTO users VALUES(20, 'dup@x', 2);
	    INSERT INTO users VALUES(21, 'other', 3);
	    DELETE FROM users WHERE id = 21;
	    INSERT INTO users VALUES(22, 'kept', 4);"
	join "$SOCK" u=x.db
	join "$SOCK" u=y.db
	join "$SOCK" u=x.db
	want=$(sqlite3 hub/u.db 'SELECT * FROM users ORDER BY id')
	assert_equal "$(sqlite3 x.db 'SELECT * FROM users ORDER BY id')" "$want"
	assert_equal "$(sqlite3 y.db 'SELECT * FROM users ORDER BY id')" "$want"
	# One of the two dup@x rows stands, and y's other changes got through.
	assert_equal "$(sqlite3 x.db "SELECT count(*) FROM users WHERE email = 'dup@x'")" 1
	assert_equal "$(sqlite3 x.db 'SELECT id FROM users WHERE id IN (21, 22)')" 22
	# The losing row is a conflict of kind unique, listed alike everywhere.
	conflicts_alike u unique "	email	\"dup@x\"	"
	# And y still syncs its later writes.
	sql y.db "INSERT INTO users VALUES(30, 'later', 5)"
	join "$SOCK" u=y.db
	join "$SOCK" u=x.db
	assert_equal "$(sqlite3 x.db 'SELECT email FROM users WHERE id = 30')" later
}

@test "a concurrent child insert and parent delete leave no orphan on any copy" {
	pair s "CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT);
	    CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT,
	      author_id INTEGER REFERENCES authors(id) ON DELETE CASCADE);
	    INSERT INTO authors VALUES(5, 'ann'), (6, 'bob');
	    INSERT INTO books VALUES(1, 'b1', 6);"
	sql x.db "PRAGMA foreign_keys = ON; INSERT INTO books VALUES(100, 'b100', 5)"
	sql y.db "PRAGMA foreign_keys = ON; DELETE FROM authors WHERE id = 5;
	    DELETE FROM authors WHERE id = 6; INSERT INTO authors VALUES(7, 'cy')"
	join "$SOCK" s=x.db
	join "$SOCK" s=y.db
	join "$SOCK" s=x.db
	for db in x.db y.db hub/s.db; do
		assert_equal "$(sqlite3 "$db" 'SELECT * FROM authors; SELECT * FROM books')" "7|cy"
		assert_equal "$(sqlite3 "$db" 'PRAGMA foreign_key_check')" ""
		assert_integrity "$db"
	done
	# y later writes as before.
	sql y.db "INSERT INTO books VALUES(200, 'b200', 7)"
	join "$SOCK" s=y.db
	join "$SOCK" s=x.db
	assert_equal "$(sqlite3 x.db 'SELECT title FROM books')" b200
}

@test "a CHECK over two columns broken by a merge: the stronger edit stands everywhere, the other is a conflict of kind check" {
	pair s "CREATE TABLE span(id INTEGER PRIMARY KEY, lo INTEGER NOT NULL,
	      hi INTEGER NOT NULL, CHECK(lo <= hi));
	    INSERT INTO span VALUES(1, 0, 10)"
	# Each edit is valid alone; merged, lo 8 > hi 5.  y edits twice, so
	# its edit is the newer one (the higher Lamport number).
	sql x.db "UPDATE span SET lo = 8 WHERE id = 1"
	sql y.db "UPDATE span SET hi = 7 WHERE id = 1"
	join "$SOCK" s=y.db
	sql y.db "UPDATE span SET hi = 5 WHERE id = 1"
	settle s
	for db in x.db y.db hub/s.db; do
		assert_equal "$(sqlite3 "$db" 'SELECT * FROM span')" "1|0|5"
		assert_integrity "$db"
	done
	# x's lo = 8 lost: a conflict of kind check, listed alike on both.
	conflicts_alike s check "	lo	8	"
	# And x still syncs its later writes.
	sql x.db "UPDATE span SET lo = 2 WHERE id = 1"
	join "$SOCK" s=x.db
	join "$SOCK" s=y.db
	assert_equal "$(sqlite3 y.db 'SELECT * FROM span')" "1|2|5"
}

@test "a child added while its parent is deleted and made again elsewhere goes with the delete on every copy" {
	pair s "CREATE TABLE authors(id INTEGER PRIMARY KEY, name TEXT);
	    CREATE TABLE books(id INTEGER PRIMARY KEY, title TEXT,
	      author_id INTEGER REFERENCES authors(id) ON DELETE CASCADE);
	    INSERT INTO authors VALUES(5, 'ann');"
	sql x.db "PRAGMA foreign_keys = ON; INSERT INTO books VALUES(100, 'b100', 5)"
	sql y.db "PRAGMA foreign_keys = ON; DELETE FROM authors WHERE id = 5"
	join "$SOCK" s=y.db
	sql y.db "INSERT INTO authors VALUES(5, 'ann again')"
	settle s
	for db in x.db y.db hub/s.db; do
		assert_equal "$(sqlite3 "$db" 'SELECT * FROM authors; SELECT * FROM books')" \
		    "5|ann again"
		assert_equal "$(sqlite3 "$db" 'PRAGMA foreign_key_check')" ""
		assert_integrity "$db"
	done
}

@test "the MIGRATION procedure of wsync(7) works as written" {
	sql a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT);
	    INSERT INTO notes VALUES(1, 'one'), (2, NULL)"
	join "$SOCK" notes=a.db
	join "$SOCK" notes=b.db
	# The commands of the page's MIGRATION section, hub:7000 being $SOCK.
	sed -n '/^\.Sh MIGRATION/,/^\.Ed/p' "$BATS_TEST_DIRNAME/../../man/wsync.7" |
	    sed -n '/^\.Bd/,/^\.Ed/p' | sed '1d;$d' | grep -v '^#' |
	    sed "s|hub:7000|$SOCK|" >steps.sh
	assert_equal "$(grep -c '^wsync-join' steps.sh)" 3
	# Step 1 on b, steps 2 on a, step 3 on b (the page's notes.db).
	run bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '1p' steps.sh | sed 's/notes.db/b.db/g' | bash -e"
	assert_success
	run bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '2,5p' steps.sh | sed 's/notes.db/a.db/g' | bash -e"
	assert_success
	run bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '6p' steps.sh | sed 's/notes.db/b.db/g' | bash -e"
	assert_success
	assert_equal "$(sqlite3 b.db 'SELECT * FROM notes2 ORDER BY id')" "1|one
2|"
	assert_equal "$(sqlite3 b.db 'SELECT count(*) FROM notes')" 0
	same_everywhere notes2 a.db b.db hub/notes.db
}

@test "--local-views: this site's views and triggers stay here, and the working set's are not taken" {
	sql a.db "$BOOKS"
	join "$SOCK" lib=a.db
	# b keeps its own view, and takes neither cheap nor books_ai.
	sql b.db "CREATE VIEW mine AS SELECT name FROM authors"
	join --local-views "$SOCK" lib=b.db
	assert_equal "$(sqlite3 b.db "SELECT name FROM sqlite_schema WHERE type IN ('view', 'trigger') AND name NOT LIKE 'wsync\_%' ESCAPE '\' ORDER BY name")" mine
	# The tables and indexes came as ever.
	q="SELECT sql FROM sqlite_schema WHERE tbl_name = 'books' AND type IN ('table', 'index') ORDER BY name"
	assert_equal "$(sqlite3 b.db "$q")" "$(sqlite3 a.db "$q")"
	# The hub keeps the working set's, and never gets b's.
	assert_equal "$(sqlite3 hub/lib.db "SELECT name FROM sqlite_schema WHERE type IN ('view', 'trigger') AND name NOT LIKE 'wsync\_%' ESCAPE '\' ORDER BY name")" "books_ai
cheap"
	# A later run of b with a schema change does not drop them either.
	sql b.db "CREATE INDEX authors_name ON authors(name)"
	join --local-views "$SOCK" lib=b.db
	join "$SOCK" lib=a.db
	assert_equal "$(sqlite3 a.db "SELECT name FROM sqlite_schema WHERE name IN ('authors_name', 'books_ai', 'cheap', 'mine') ORDER BY name")" "authors_name
books_ai
cheap"
}

@test "follow mode: a schema change reaches a live site once, and the hub numbers it once" {
	sql a.db "CREATE TABLE n(id INTEGER PRIMARY KEY, t TEXT); CREATE INDEX n_t ON n(t);
	    CREATE TABLE z(id INTEGER PRIMARY KEY); INSERT INTO n VALUES(1, 'x')"
	join "$SOCK" w=a.db
	spawn fa "$WS_BIN/wsync-join" -f "$SOCK" w=a.db
	spawn fb "$WS_BIN/wsync-join" -f "$SOCK" w=b.db
	wait_sql b.db "SELECT t FROM n" x
	# One transaction: a follower that saw its statements one by one would
	# rightly send two schema changes.
	sql a.db "BEGIN; ALTER TABLE n ADD COLUMN c TEXT DEFAULT 'd'; UPDATE n SET c = 'live';
	    CREATE TABLE m(k TEXT PRIMARY KEY, v); INSERT INTO m VALUES('a', 1);
	    CREATE INDEX n_c ON n(c); COMMIT"
	wait_sql b.db "SELECT c FROM n" live
	wait_sql b.db "SELECT v FROM m" 1
	same_everywhere n a.db b.db hub/w.db
	same_everywhere m a.db b.db hub/w.db
	# The first schema, then the change: no record bounces between the
	# sites and the hub.
	sleep 2
	assert_equal "$(grep -c "working set 'w' has a new schema" hub.err)" 2
	assert_equal "$(sqlite3 hub/w.db "SELECT value FROM wsync_meta WHERE key = 'schema_gen'")" 2
}

@test "tables that cannot be tracked are named once on stderr, listed by wsync-inspect, and the rest syncs" {
	sql a.db "CREATE TABLE k(id INTEGER PRIMARY KEY, v); INSERT INTO k VALUES(1, 'one');
	    CREATE TABLE hidden(rowid, _rowid_, oid); CREATE VIRTUAL TABLE docs USING fts5(body);
	    CREATE TABLE g(id INTEGER PRIMARY KEY, x, y AS (x * 2))"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=a.db
	assert_success
	assert_stderr "wsync-join: u: table 'docs' is not tracked: it is a virtual table (of those, only FTS5 tables with a tracked content table travel)
wsync-join: u: table 'g' is not tracked: column 'y' is generated
wsync-join: u: table 'hidden' is not tracked: it has no primary key, and columns named rowid, _rowid_ and oid hide its rowid"
	join "$SOCK" u=b.db
	assert_equal "$(sqlite3 b.db 'SELECT * FROM k')" "1|one"
	run --separate-stderr "$WS_BIN/wsync-inspect" a.db
	assert_success
	assert_line "untracked     docs: it is a virtual table (of those, only FTS5 tables with a tracked content table travel)"
	assert_line "untracked     g: column 'y' is generated"
	assert_line "untracked     hidden: it has no primary key, and columns named rowid, _rowid_ and oid hide its rowid"
	run --separate-stderr "$WS_BIN/wsync-inspect" --json a.db
	assert_equal "$(jq -c '.untracked[1]' <<<"$output")" \
	    '{"table":"g","why":"column '"'"'y'"'"' is generated"}'
	# The hub holds none of them.
	assert_equal "$(sqlite3 hub/u.db "SELECT count(*) FROM sqlite_schema WHERE name IN ('hidden', 'docs', 'g')")" 0
}

# rowids DB TABLE: every row of TABLE with its rowid, in rowid order.
rowids() {
	sqlite3 "$1" "SELECT rowid, * FROM \"$2\" ORDER BY rowid"
}

@test "a table without a primary key is keyed by its rowid: it arrives whole, converges, and VACUUM keeps its rows" {
	sql a.db "CREATE TABLE events(at TEXT NOT NULL, what TEXT);
	    CREATE TABLE tags(_rowid_ INTEGER, rowid TEXT, name TEXT UNIQUE);
	    INSERT INTO events VALUES('t1', 'start'), ('t2', 'gone'), ('t3', 'stop');
	    INSERT INTO tags VALUES(7, 'r', 'red'), (8, 's', 'blue');
	    DELETE FROM events WHERE what = 'gone'"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	for db in b.db hub/u.db; do
		assert_equal "$(rowids "$db" events)" "$(rowids a.db events)"
		assert_equal "$(sqlite3 "$db" 'SELECT oid, * FROM tags ORDER BY oid')" \
		    "$(sqlite3 a.db 'SELECT oid, * FROM tags ORDER BY oid')"
	done
	assert_equal "$(rowids b.db events)" "1|t1|start
3|t3|stop"
	same_everywhere events a.db b.db hub/u.db
	same_everywhere tags a.db b.db hub/u.db
	# The rowid is the key: the columns that hide it are ordinary columns.
	run --separate-stderr "$WS_BIN/wsync-inspect" b.db
	assert_line "  events (rowid, at, what; primary key rowid)"
	assert_line "  tags (oid, _rowid_, rowid, name; primary key oid)"
	# VACUUM renumbers a rowid table without an index; wsync's empty index
	# (wsync_pin_TABLE) keeps every row where it was.
	sql a.db "VACUUM"
	assert_equal "$(rowids a.db events)" "1|t1|start
3|t3|stop"
	sql a.db "UPDATE events SET what = 'halt' WHERE at = 't3'; INSERT INTO events VALUES('t4', 'again')"
	sql b.db "UPDATE events SET what = 'begin' WHERE at = 't1'"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	join "$SOCK" u=a.db
	for db in a.db b.db hub/u.db; do
		assert_equal "$(rowids "$db" events)" "1|t1|begin
3|t3|halt
4|t4|again"
		assert_equal "$(sqlite3 "$db" 'PRAGMA integrity_check')" ok
	done
}

@test "two sites that insert the same rowid meet as a key conflict, recorded like any other" {
	sql a.db "CREATE TABLE notes(body TEXT)"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	sql a.db "INSERT INTO notes VALUES('from a')"
	sql b.db "INSERT INTO notes VALUES('from b')"
	join "$SOCK" u=a.db
	join "$SOCK" u=b.db
	join "$SOCK" u=a.db
	assert_equal "$(rowids a.db notes)" "$(rowids b.db notes)"
	assert_equal "$(rowids hub/u.db notes)" "$(rowids a.db notes)"
	# One row, the newer insert's (their Lamport numbers tie: the larger
	# site id wins); the other's value is a conflict on every copy.
	won=$(sqlite3 a.db "SELECT body FROM notes WHERE rowid = 1")
	[ "$won" = "from a" ] && lost="from b" || lost="from a"
	assert_equal "$(rowids b.db notes)" "1|$won"
	for db in a.db b.db; do
		run --separate-stderr "$WS_BIN/wsync-join" --conflicts u=$db
		assert_success
		assert_output --regexp "^u	1	notes	\\[1\\]	body	\"$lost\"	[0-9a-f]{32}:1	concurrent\$"
	done
}

@test "a rowid table whose pin index is gone is refused by name: its rows may have moved" {
	sql a.db "CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES('one')"
	join "$SOCK" u=a.db
	sql a.db "DROP INDEX wsync_pin_notes; INSERT INTO notes VALUES('two')"
	run --separate-stderr "$WS_BIN/wsync-join" "$SOCK" u=a.db
	assert_failure 65
	assert_stderr "wsync-join: table 'notes' has no primary key and lost its index wsync_pin_notes: a VACUUM since may have renumbered its rows (see ROWID KEYS in wsync(7))"
	join "$SOCK" u=b.db
	assert_equal "$(rowids b.db notes)" "1|one"
}
