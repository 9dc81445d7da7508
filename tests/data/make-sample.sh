#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make-sample.sh - regenerate the sample session logs and database that
# tests/bats/15-inspect-modes.bats reads (sample-hub.log, sample-site.log,
# sample-site.db).  They come from real wsync-serve and wsync-join runs
# on a unix socket: two sites of the working set "notes", a concurrent
# edit of the same cell (a conflict) and a delete.  The logs carry the
# times of the run, so they are checked in once and the golden outputs
# (sample-*.txt, *.json) are made from them with tests/data/make-golden.sh.
# Run from the top of the tree after 'make'.
set -eu
top=$PWD
bin=$top/bin
out=$top/tests/data
# A fixed directory, so the peer names in the logs do not look random.
dir=/tmp/wsync-sample
rm -rf "$dir"
mkdir "$dir"
hub=
cleanup() {
	[ -n "$hub" ] && kill "$hub" 2>/dev/null && wait "$hub" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
cd "$dir"
"$bin/wsync-serve" -l "unix:$dir/hub.sock" -d hubdata --create --log hub.log 2>hub.err &
hub=$!
for _ in $(seq 50); do grep -q listening hub.err 2>/dev/null && break; sleep 0.1; done
sqlite3 a.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body);
    INSERT INTO notes VALUES(1, 'one', 'first'), (2, 'it''s two', NULL),
    (3, 'three', x'00ff10');"
"$bin/wsync-join" --log site.log "unix:$dir/hub.sock" notes=a.db
"$bin/wsync-join" "unix:$dir/hub.sock" notes=b.db
sqlite3 a.db "UPDATE notes SET body = 'from a' WHERE id = 1;"
sqlite3 b.db "UPDATE notes SET body = 'from b' WHERE id = 1; DELETE FROM notes WHERE id = 2;
    INSERT INTO notes VALUES(4, 'four', 4.5);"
"$bin/wsync-join" --log site.log "unix:$dir/hub.sock" notes=a.db
"$bin/wsync-join" "unix:$dir/hub.sock" notes=b.db
"$bin/wsync-join" --log site.log "unix:$dir/hub.sock" notes=a.db
kill "$hub"
wait "$hub" || true
hub=
cp hub.log "$out/sample-hub.log"
cp site.log "$out/sample-site.log"
rm -f "$out/sample-site.db"
sqlite3 a.db "VACUUM INTO '$out/sample-site.db'"
echo "wrote $out/sample-hub.log, sample-site.log and sample-site.db"
