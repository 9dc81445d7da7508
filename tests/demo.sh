#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# demo.sh - make demo: a hub and two sites on a unix socket syncing a
# sample database, told step by step.
#
# Each wsync command is shown before it runs ("$ wsync-join ..."), then
# its output, then what the step changed: a row diff of the notes table
# on each copy (the laptop's, the desktop's and the hub's), with + for a
# row added, - for one removed and ~ for one changed, and the notes
# renamed, deleted and added, by name.  Both sites edit the same note
# (a conflict); it is listed with wsync-join --conflicts, resolved with
# --resolve, and the result is shown on every copy after the next sync.
# It ends with the timeline of one session log (wsync-inspect).
#
# The binaries come from WS_BIN (default: bin/ at the top of the tree).
# Everything happens in a temporary directory under TMPDIR, removed on
# exit with the hub stopped; nothing is written into the working tree.
# Exit status: 0 when every step did what it should, 1 otherwise, with a
# message on standard error that starts "demo: ".
set -eEu

die() {
	printf 'demo: %s\n' "$*" >&2
	exit 1
}

bin=${WS_BIN:-$(dirname "$0")/../bin}
[ -d "$bin" ] || die "no directory '$bin' for the binaries (run make, or set WS_BIN)"
bin=$(cd "$bin" && pwd)
for t in wsync-serve wsync-join wsync-inspect; do
	[ -x "$bin/$t" ] || die "no program '$bin/$t' (run make, or set WS_BIN)"
done
command -v sqlite3 >/dev/null || die "the demo needs the sqlite3 shell"

dir=$(mktemp -d "${TMPDIR:-/tmp}/wsync-demo.XXXXXX")
hub_pid=
cleanup() {
	local i
	trap - ERR
	if [ -n "$hub_pid" ]; then
		kill "$hub_pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$hub_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$hub_pid" 2>/dev/null || true
		wait "$hub_pid" 2>/dev/null || true
	fi
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'die "line $LINENO: '\''$BASH_COMMAND'\'' failed"' ERR
cd "$dir"

# Styles: only on a terminal, and not under NO_COLOR.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
	b=$'\033[1m' cmd=$'\033[1;36m' add=$'\033[32m' del=$'\033[31m'
	chg=$'\033[33m' dim=$'\033[2m' off=$'\033[0m'
else
	b='' cmd='' add='' del='' chg='' dim='' off=''
fi

step() { printf '\n%s== %s%s\n' "$b" "$*" "$off"; }
note() { printf '%s%s%s\n' "$dim" "$*" "$off"; }

# shown CMD ARG...: print "$ CMD ARG..." as a user would type it; the
# variable redir, when set, follows the arguments as it is.
shown() {
	local line=$1 a
	shift
	for a in "$@"; do
		line+=" $(printf '%q' "$a")"
	done
	printf '%s$ %s%s%s\n' "$cmd" "$line" "${redir:-}" "$off"
}

# ws TOOL ARG...: show, then run, $bin/TOOL ARG...; its stdout and stderr
# are shown, and a failure ends the demo.
ws() {
	local tool=$1 rc=0
	shift
	shown "$tool" "$@"
	"$bin/$tool" "$@" >out 2>&1 || rc=$?
	cat out
	[ "$rc" -eq 0 ] || die "step '$tool $*' failed (exit status $rc)"
}

# sq DB SQL: show, then run, one SQL statement with the sqlite3 shell.
sq() {
	printf '%s$ sqlite3 %s "%s"%s\n' "$cmd" "$1" "$2" "$off"
	sqlite3 -batch -bail "$1" "$2" || die "step 'sqlite3 $1' failed"
}

# --- row diffs --------------------------------------------------------------

# The copies of the working set, and how they are named.
copies="laptop.db desktop.db hubdata/notes.db"
label() {
	case $1 in
	hubdata/notes.db) echo "the hub's copy (hubdata/notes.db)" ;;
	*) echo "$1" ;;
	esac
}

# snap DB: the notes table of DB, a header of column names and then one
# line a row, tab-separated, values quoted as SQL, in key order; nothing
# when DB or the table does not exist (yet).
snap() {
	local cols
	[ -f "$1" ] || return 0
	cols=$(sqlite3 -batch -cmd '.timeout 5000' "$1" \
	    "SELECT group_concat(name, char(9)) FROM pragma_table_info('notes')")
	[ -n "$cols" ] || return 0
	printf '%s\n' "$cols"
	sqlite3 -batch -cmd '.timeout 5000' -separator $'\t' "$1" \
	    "SELECT $(sqlite3 -batch "$1" "SELECT group_concat(
	        printf('quote(%w)', name), ', ') FROM pragma_table_info('notes')")
	     FROM notes ORDER BY 1"
}

# mark: remember every copy's table, for the next changes.
mark() {
	local c
	mkdir -p snap
	for c in $copies; do
		snap "$c" >"snap/${c//\//_}"
	done
}

# rowdiff OLD NEW: "+ KEY col=val ..." for a row added, "- KEY col=val ..."
# for one removed, "~ KEY col: old -> new" for one changed, then a line
# naming the notes (by title) renamed, deleted, added and edited.
rowdiff() {
	awk -F '\t' -v add="$add" -v del="$del" -v chg="$chg" -v off="$off" '
	function row(k, v,   i, s, f) {
		split(v, f, "\t")
		for (i = 2; i <= nc; i++)
			s = s "  " col[i] "=" f[i]
		return k s
	}
	function title(v,   f) { split(v, f, "\t"); return f[ti] }
	FNR == 1 { nc = split($0, col, "\t"); for (i = 1; i <= nc; i++) if (col[i] == "title") ti = i; next }
	NR == FNR { old[$1] = $0; next }
	{ new[$1] = $0 }
	END {
		for (k in old) keys[k]; for (k in new) keys[k]
		n = 0; for (k in keys) order[++n] = k + 0
		# Sort the keys (integers) by insertion: the tables are small.
		for (i = 2; i <= n; i++) for (j = i; j > 1 && order[j-1] > order[j]; j--) {
			t = order[j]; order[j] = order[j-1]; order[j-1] = t
		}
		for (i = 1; i <= n; i++) {
			k = order[i] ""
			if (!(k in old)) {
				print "    " add "+ " row(k, new[k]) off
				if (ti) what = what sep "note " title(new[k]) " added"
			} else if (!(k in new)) {
				print "    " del "- " row(k, old[k]) off
				if (ti) what = what sep "note " title(old[k]) " deleted"
			} else if (old[k] != new[k]) {
				split(old[k], a, "\t"); split(new[k], z, "\t"); s = ""
				for (c = 2; c <= nc; c++)
					if (a[c] != z[c]) s = s "  " col[c] ": " a[c] " -> " z[c]
				print "    " chg "~ " k s off
				if (!ti) continue
				if (a[ti] != z[ti])
					what = what sep "note " a[ti] " renamed " z[ti]
				else
					what = what sep "note " a[ti] " edited"
			} else
				continue
			sep = ", "
		}
		if (what != "")
			print "    (" what ")"
	}' "$1" "$2"
}

# changes: the row diff of every copy since the last mark, then mark.
changes() {
	local c f same='' d
	for c in $copies; do
		f="snap/${c//\//_}"
		snap "$c" >"$f.new"
		# A table that did not exist yet is an empty one, with the same
		# columns as the new one.
		[ -s "$f" ] || head -n 1 "$f.new" >"$f"
		d=$(rowdiff "$f" "$f.new")
		if [ -n "$d" ]; then
			echo "  $(label "$c"):"
			printf '%s\n' "$d"
		else
			same+="${same:+, }$(label "$c")"
		fi
		mv "$f.new" "$f"
	done
	[ -z "$same" ] || note "  unchanged: $same"
}

# same_everywhere: every copy holds the same notes, or the demo fails.
same_everywhere() {
	local c first=
	for c in $copies; do
		if [ -z "$first" ]; then
			first=$(snap "$c")
		elif [ "$(snap "$c")" != "$first" ]; then
			die "$(label "$c") differs from laptop.db after the sync: a bug"
		fi
	done
	echo "every copy holds the same $(($(printf '%s\n' "$first" | wc -l) - 1)) notes"
}

# ------------------------------------------------------------------------------

hub=unix:hub.sock
mark

step "a sample database at the laptop, written with the sqlite3 shell"
sq laptop.db "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT)"
sq laptop.db "INSERT INTO notes VALUES (1, 'groceries', 'milk, eggs'), (2, 'ideas', 'a sync tool in the Unix way'), (3, 'todo', 'write the demo')"
changes

step "a hub on a unix socket, in the background"
redir=' >hub.log 2>&1 &' shown wsync-serve -l "$hub" -d hubdata --create
"$bin/wsync-serve" -l "$hub" -d hubdata --create >hub.log 2>&1 </dev/null &
hub_pid=$!
for ((i = 0; i < 50; i++)); do
	grep -qs "listening on" hub.log && break
	kill -0 "$hub_pid" 2>/dev/null || break
	sleep 0.1
done
grep -qs 'listening on' hub.log || die "the hub did not start: $(cat hub.log 2>/dev/null)"
cat hub.log

step "the laptop syncs: its notes go to the hub"
note "(a one-shot wsync-join that succeeds prints nothing; the diffs show what it did)"
ws wsync-join "$hub" notes=laptop.db
changes

step "a new site, the desktop, syncs from an empty database"
ws wsync-join "$hub" notes=desktop.db
changes

step "both sites edit the notes, without syncing: both change note 1's body"
sq laptop.db "UPDATE notes SET body = 'milk, eggs, bread' WHERE id = 1"
sq laptop.db "INSERT INTO notes VALUES (4, 'books', 'SICP')"
sq desktop.db "UPDATE notes SET body = 'milk, eggs, coffee' WHERE id = 1"
sq desktop.db "UPDATE notes SET title = 'plans' WHERE id = 3"
sq desktop.db "DELETE FROM notes WHERE id = 2"
changes

step "sync both ways: laptop, desktop, laptop again"
ws wsync-join "$hub" notes=laptop.db
note "  the hub received the laptop's edits:"
changes
ws wsync-join "$hub" notes=desktop.db
note "  the hub received the desktop's edits, and the desktop the laptop's:"
changes
ws wsync-join "$hub" notes=laptop.db
note "  the laptop received the desktop's edits:"
changes
same_everywhere

step "the conflict: one body won on every copy; the other is kept, not lost"
ws wsync-join --conflicts notes=desktop.db
[ -s out ] || die "wsync-join --conflicts lists no conflict at the desktop"
ws wsync-join --conflicts notes=laptop.db
[ -s out ] || die "wsync-join --conflicts lists no conflict at the laptop"
row1="note 1's body"
won=$(sqlite3 laptop.db "SELECT quote(body) FROM notes WHERE id = 1")
id=$(cut -f 2 out | head -n 1)
lost=$(cut -f 6 out | head -n 1)
echo "$row1 is $won on every copy; the value that lost, $lost,"
echo "is kept on both sites: it is conflict $id at the laptop (field 2; field 6 is the value)"

step "resolve it at the laptop: the value that lost wins after all"
ws wsync-join --resolve "$id" notes=laptop.db
changes

step "sync: the choice reaches every copy, and the conflict leaves every copy"
ws wsync-join --log laptop.log "$hub" notes=laptop.db
changes
ws wsync-join "$hub" notes=desktop.db
changes
same_everywhere
[ "$(sqlite3 desktop.db "SELECT json_quote(body) FROM notes WHERE id = 1")" = "$lost" ] ||
    die "$row1 at the desktop is not $lost after the resolution: a bug"
ws wsync-join --conflicts notes=laptop.db notes=desktop.db
[ ! -s out ] || die "conflicts are left after the resolution: a bug"
note "(no conflict left on either site)"

step "the laptop's last session, from the log it wrote with --log"
ws wsync-inspect laptop.log

step "done: the hub is stopped; its log says"
kill "$hub_pid"
wait "$hub_pid" || die "the hub exited with status $? when stopped"
hub_pid=
echo "$(grep -c ': connected$' hub.log) sessions; the first one:"
sed -n '2,/disconnected$/p' hub.log
note "(the temporary directory $dir is removed on exit)"
