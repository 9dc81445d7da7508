#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 96-demo.bats - make demo (tests/demo.sh) against the WS_BIN binaries:
# it exits 0, shows every wsync command it runs before running it, a row
# diff after each step, the conflict as wsync-join --conflicts lists it
# and its resolution on every copy; it leaves no process and no file
# behind and writes nothing beside itself; a failing step or a missing
# binary ends it with status 1 and a "demo: " message.
#
# The demo runs against shims in $T/shim that record each command line
# (as the demo quotes it) and then exec the real binary, so the test
# knows what the demo ran; its temporary directory goes under $T/tmp.

bats_require_minimum_version 1.5.0
load helper

# prepare DIR: T=DIR, holding a copy of the script in a tree of its own
# (what it writes beside itself shows there), tmp/ for its TMPDIR, and
# the shims.
prepare() {
	T=$1
	mkdir -p "$T/tree/tests" "$T/tmp" "$T/shim"
	cp "$BATS_TEST_DIRNAME/../demo.sh" "$T/tree/tests/demo.sh"
	for t in wsync-serve wsync-join wsync-inspect; do
		shim "$t" "exec '$WS_BIN/$t' \"\$@\""
	done
}

# The demo takes a second or so: the tests of a good run share one, run
# here, its stdout, stderr, and status and seconds kept in files.
setup_file() {
	local t0=$SECONDS rc=0
	ws_need wsync-serve
	ws_need wsync-join
	ws_need wsync-inspect
	command -v sqlite3 >/dev/null || fail "the demo needs the sqlite3 CLI"
	prepare "$BATS_FILE_TMPDIR/run"
	demo || rc=$?
	echo "$rc $((SECONDS - t0))" >"$T/status"
}

setup() {
	prepare "$BATS_TEST_TMPDIR"
	cd "$T"
}

# demo_ran: T is the shared run's directory; it succeeded, and its
# stdout is $output (and $lines).
demo_ran() {
	local rc
	T=$BATS_FILE_TMPDIR/run
	read -r rc DEMO_SECONDS <"$T/status"
	[ "$rc" = 0 ] || fail "the demo exited $rc: $(cat "$T/stderr")"
	run -0 cat "$T/stdout"
}

# shim TOOL BODY: $T/shim/TOOL records its pid and command line in
# $T/ran (as "PID TOOL ARG...", each ARG quoted with %q, as the demo
# shows them), then runs BODY.
shim() {
	cat >"$T/shim/$1" <<EOF
#!/usr/bin/env bash
printf '%s %s' "\$\$" "$1" >>'$T/ran'
printf ' %q' "\$@" >>'$T/ran'
echo >>'$T/ran'
$2
EOF
	chmod +x "$T/shim/$1"
}

# demo: run the copied demo.sh on the shims, TMPDIR in $T/tmp.  Every
# descriptor but 0, 1 and 2 is closed, or bats would wait for a hub the
# demo left running, rather than report it.
demo() {
	(
		for fd in /proc/"$BASHPID"/fd/*; do
			fd=${fd##*/}
			[ "$fd" -le 2 ] || eval "exec $fd>&-"
		done
		WS_BIN="$T/shim" TMPDIR="$T/tmp" exec "$T/tree/tests/demo.sh"
	) >"$T/stdout" 2>"$T/stderr"
}

# demo_run: demo, for run --separate-stderr: its output comes from the
# files once it has exited, so a process it left behind holds no pipe
# that run reads.
demo_run() {
	local rc=0
	demo || rc=$?
	cat "$T/stdout"
	cat "$T/stderr" >&2
	return "$rc"
}

# assert_clean: no process runs in a directory under $T/tmp (every one
# the demo starts runs in its temporary directory), no file is left in
# $T/tmp, and nothing beside demo.sh in its tree.  A process left running
# is killed before the test fails.
assert_clean() {
	local pid cmd left=
	for pid in $(find /proc -mindepth 2 -maxdepth 2 -name cwd \
	    -lname "$T/tmp/*" 2>/dev/null | cut -d / -f 3); do
		cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
		left+="$pid ($cmd); "
		kill -KILL "$pid" 2>/dev/null || true
	done
	[ -z "$left" ] || fail "processes outlived the demo: $left"
	assert_equal "$(ls -A "$T/tmp")" ""
	assert_equal "$(cd "$T/tree" && find . -mindepth 1 | sort | tr '\n' ' ')" \
	    "./tests ./tests/demo.sh "
}

@test "demo: syncs a hub and two sites, showing every command it runs" {
	demo_ran
	assert_equal "$(cat "$T/stderr")" ""
	# A few seconds (under a sanitizer or on a loaded machine, more).
	((DEMO_SECONDS < 20)) || fail "the demo took $DEMO_SECONDS s"
	# Not a terminal: no escape sequences.
	refute_output --partial $'\033'
	# Every wsync command it ran is shown, in order, as "$ wsync-...";
	# the hub's line also shows where its log goes.
	assert_equal "$(grep '^\$ wsync-' <<<"$output" | sed 's/ >hub\.log 2>&1 &$//')" \
	    "$(cut -d ' ' -f 2- "$T/ran" | sed 's/^/$ /')"
	assert_line '$ wsync-serve -l unix:hub.sock -d hubdata --create >hub.log 2>&1 &'
	assert_line '$ wsync-join unix:hub.sock notes=desktop.db'
	# The edits, as sqlite3 commands.
	assert_line "\$ sqlite3 desktop.db \"DELETE FROM notes WHERE id = 2\""
	[ "$(grep -c '^\$ wsync-join unix:hub\.sock notes=' <<<"$output")" -ge 5 ]
}

@test "demo: a row diff after each step, naming the notes renamed and deleted" {
	demo_ran
	# The desktop's own edits.
	assert_line "  desktop.db:"
	assert_line "    ~ 1  body: 'milk, eggs' -> 'milk, eggs, coffee'"
	assert_line "    - 2  title='ideas'  body='a sync tool in the Unix way'"
	assert_line "    ~ 3  title: 'todo' -> 'plans'"
	assert_line "    (note 'groceries' edited, note 'ideas' deleted, note 'todo' renamed 'plans')"
	assert_line "    + 4  title='books'  body='SICP'"
	# Sync both ways prints what happened: the rename and the delete
	# reach the hub and then the laptop, the new note the desktop.
	run -0 awk '/^== sync both ways/ { on = 1; next } /^== / { on = 0 } on' <<<"$output"
	assert_line '$ wsync-join unix:hub.sock notes=laptop.db'
	assert_line "  the hub's copy (hubdata/notes.db):"
	assert_line "  laptop.db:"
	assert_line "  desktop.db:"
	assert_equal "$(grep -c "^    - 2  title='ideas'  body='a sync tool in the Unix way'$" <<<"$output")" 2
	assert_equal "$(grep -c "^    ~ 3  title: 'todo' -> 'plans'$" <<<"$output")" 2
	assert_equal "$(grep -c "note 'ideas' deleted, note 'todo' renamed 'plans')$" <<<"$output")" 2
	assert_equal "$(grep -c "^    + 4  title='books'  body='SICP'$" <<<"$output")" 2
	assert_line 'every copy holds the same 3 notes'
}

@test "demo: the conflict through --conflicts, resolved with --resolve on every copy" {
	demo_ran
	local dot='[0-9a-f]{32}:[0-9]+'
	assert_line '$ wsync-join --conflicts notes=laptop.db'
	assert_line '$ wsync-join --conflicts notes=desktop.db'
	# One line each, alike on both sites.
	assert_equal "$(grep -cE $'^notes\t1\tnotes\t\\[1\\]\tbody\t"milk, eggs, (bread|coffee)"\t'"$dot"$'\tconcurrent$' \
	    <<<"$output")" 2
	# No raw SQL on wsync_conflicts.
	refute_output --partial wsync_conflicts
	assert_line '$ wsync-join --resolve 1 notes=laptop.db'
	# The value that lost now wins: at the laptop, then at the hub and
	# at the desktop after their syncs.
	local lost won
	lost=$(grep -m1 -P '^notes\t1\t' <<<"$output" | cut -f 6 | tr '"' "'")
	case $lost in
	"'milk, eggs, bread'") won="'milk, eggs, coffee'" ;;
	*) won="'milk, eggs, bread'" ;;
	esac
	run -0 awk '/^\$ wsync-join --resolve/ { on = 1 } on' <<<"$output"
	assert_equal "$(grep -c "^    ~ 1  body: $won -> $lost\$" <<<"$output")" 3
	assert_line '$ wsync-join --conflicts notes=laptop.db notes=desktop.db'
	assert_line '(no conflict left on either site)'
	assert_line 'every copy holds the same 3 notes'
	# The timeline of the laptop's last session, with the resolution.
	assert_line '$ wsync-inspect laptop.log'
	assert_line --regexp '  BATCH  site=[0-9a-f]{8} .* 1 change$'
	assert_line "  notes pk=(1) update body=$lost"
}

@test "demo: leaves no process, no file, and nothing in its tree behind" {
	demo_ran
	grep -q '^[0-9]* wsync-serve ' "$T/ran" || fail "the demo started no hub"
	assert_clean
}

@test "demo: a step that fails ends it, status 1, naming the step, and cleans up" {
	shim wsync-join "echo 'wsync-join: cannot connect to unix:hub.sock: it broke' >&2; exit 69"
	run --separate-stderr demo_run
	assert_failure 1
	assert_line 'wsync-join: cannot connect to unix:hub.sock: it broke'
	assert_stderr "demo: step 'wsync-join unix:hub.sock notes=laptop.db' failed (exit status 69)"
	grep -q '^[0-9]* wsync-serve ' "$T/ran" || fail "the demo started no hub"
	assert_clean
}

@test "demo: a missing binary ends it, status 1, naming it" {
	rm "$T/shim/wsync-inspect"
	run --separate-stderr demo_run
	assert_failure 1
	assert_output ''
	assert_stderr "demo: no program '$T/shim/wsync-inspect' (run make, or set WS_BIN)"
	run --separate-stderr env WS_BIN="$T/nowhere" TMPDIR="$T/tmp" "$T/tree/tests/demo.sh"
	assert_failure 1
	assert_stderr "demo: no directory '$T/nowhere' for the binaries (run make, or set WS_BIN)"
	assert_clean
}
