#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: a hub and two sites on loopback syncing a sample database,
# with concurrent edits through the sqlite3 shell and one conflict.
set -eu
cd "$(dirname "$0")/.."
bin=$PWD/bin
dir=$(mktemp -d "${TMPDIR:-/tmp}/wsync-demo.XXXXXX")
hub_pid=
cleanup() {
	[ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi
show() { sqlite3 -header -column "$1" "SELECT * FROM notes ORDER BY id"; }

say "a sample database at the laptop"
sqlite3 laptop.db <<'SQL'
CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT);
INSERT INTO notes VALUES (1, 'groceries', 'milk, eggs'),
                         (2, 'ideas', 'a sync tool in the Unix way'),
                         (3, 'todo', 'write the demo');
SQL
show laptop.db

say "a hub on a unix socket; two sites sync through it"
"$bin/wsync-serve" -l "unix:$dir/hub.sock" -d hubdata --create 2>hub.log &
hub_pid=$!
for _ in $(seq 50); do grep -q listening hub.log 2>/dev/null && break; sleep 0.1; done
"$bin/wsync-join" "unix:$dir/hub.sock" notes=laptop.db
"$bin/wsync-join" "unix:$dir/hub.sock" notes=desktop.db
echo "desktop.db after its first sync:"
show desktop.db

say "concurrent edits with the sqlite3 shell, one of them a conflict"
sqlite3 laptop.db "UPDATE notes SET body = 'milk, eggs, bread' WHERE id = 1;
                   INSERT INTO notes VALUES (4, 'books', 'SICP');"
sqlite3 desktop.db "UPDATE notes SET body = 'milk, eggs, coffee' WHERE id = 1;
                    UPDATE notes SET title = 'plans' WHERE id = 3;
                    DELETE FROM notes WHERE id = 2;"
echo "laptop: row 1's body is 'milk, eggs, bread'; desktop: 'milk, eggs, coffee'"

say "sync both ways"
"$bin/wsync-join" "unix:$dir/hub.sock" notes=laptop.db
"$bin/wsync-join" "unix:$dir/hub.sock" notes=desktop.db
"$bin/wsync-join" "unix:$dir/hub.sock" notes=laptop.db

say "converged: both sites hold the same table"
echo "laptop.db:"; show laptop.db
echo "desktop.db:"; show desktop.db
if [ "$(sqlite3 laptop.db 'SELECT * FROM notes ORDER BY id')" = \
     "$(sqlite3 desktop.db 'SELECT * FROM notes ORDER BY id')" ]; then
	echo "(identical)"
else
	echo "(they differ: this is a bug)"; exit 1
fi

say "the conflict: the losing value is kept, on both sites"
q="SELECT t.name AS tbl, json_extract(t.cols, '\$[' || c.col || ']') AS col,
   quote(c.value) AS lost_value,
   hex(substr(s.site, 1, 4)) AS from_site FROM wsync_conflicts c
   JOIN wsync_tables t ON t.id = c.tbl JOIN wsync_sites s ON s.id = c.site"
echo "laptop.db:"; sqlite3 -header -column laptop.db "$q"
echo "desktop.db:"; sqlite3 -header -column desktop.db "$q"

say "what the hub saw"
kill "$hub_pid"; wait "$hub_pid" 2>/dev/null || true; hub_pid=
grep -c ': connected$' hub.log | sed 's/$/ sessions/'
grep 'joined' hub.log | sed 's/^/  /' | head -n 3
echo "  ..."
echo "the hub's copy: $(sqlite3 hubdata/notes.db 'SELECT count(*) FROM notes') rows," \
    "integrity $(sqlite3 hubdata/notes.db 'PRAGMA integrity_check')"
