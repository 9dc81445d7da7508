#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 00-cli.bats - what every wsync binary shares: --help, --version, usage
# errors (exit 64, "wsync-<name>: " on stderr), --list-options agreeing
# with --help, and the usage errors of the hub, the site and the
# replicator.

bats_require_minimum_version 1.5.0
load helper

# --- shared checks, one call per tool below ----------------------------------

check_help() {
	local t=$1 flag=$2
	ws_need "$t"
	run --separate-stderr "$WS_BIN/$t" "$flag"
	assert_success
	assert_stderr_empty
	[[ "${lines[0]}" == "usage: $t"* ]] ||
	    fail "first line of $t $flag is '${lines[0]}', want 'usage: $t...'"
	assert_line --index -1 "See $t(1)."
	assert_line 'options:'
	assert_line --regexp '^  -h, --help  +print this help and exit$'
	assert_line --regexp '^  -V, --version  +print the version and exit$'
	refute_output --partial 'list-options'
}

check_version() {
	local t=$1 flag=$2
	ws_need "$t"
	run --separate-stderr "$WS_BIN/$t" "$flag"
	assert_success
	assert_output "$t $WS_VERSION"
	assert_stderr_empty
}

# check_usage_error TOOL MESSAGE ARGS...: exit 64, nothing on stdout, and
# stderr exactly "TOOL: MESSAGE" followed by the synopsis.
check_usage_error() {
	local t=$1 msg=$2 syn
	shift 2
	ws_need "$t"
	syn="$(ws_synopsis "$t")"
	run --separate-stderr "$WS_BIN/$t" "$@"
	assert_failure 64
	assert_output ''
	assert_stderr_line 0 "$t: $msg"
	assert_stderr "$t: $msg
$syn"
}

# The option lines of --help turned into --list-options' form:
# "--name" or "--name=ARG", then "-c" or "-c ARG" when there is a short one.
help_as_list() {
	local line left re short long arg
	re='^(-([[:alnum:]]), |    )--([[:alnum:]][[:alnum:]-]*)( ([^ ]+))?$'
	"$WS_BIN/$1" --help | sed -n '/^options:$/,/^$/p' | sed '1d;/^$/d' |
	    while IFS= read -r line; do
		left="${line:2:26}"
		left="${left%"${left##*[! ]}"}"
		if ! [[ "$left" =~ $re ]]; then
			printf 'UNPARSED: %s\n' "$line"
			continue
		fi
		short=${BASH_REMATCH[2]} long=${BASH_REMATCH[3]} arg=${BASH_REMATCH[5]}
		printf -- '--%s\n' "$long${arg:+=$arg}"
		[ -z "$short" ] || printf -- '-%s\n' "$short${arg:+ $arg}"
	done
}

check_list_options() {
	local t=$1 want
	ws_need "$t"
	want="$(help_as_list "$t")"
	[[ "$want" == *--help* && "$want" == *--version* ]] ||
	    fail "could not read the options of $t --help: '$want'"
	run --separate-stderr "$WS_BIN/$t" --list-options
	assert_success
	assert_stderr_empty
	[[ "${lines[-1]}" == operands* ]] ||
	    fail "last line of --list-options is '${lines[-1]}', want 'operands...'"
	# Everything but the operands line, in table order, as --help shows it.
	assert_equal "$(printf '%s\n' "${lines[@]}" | sed '$d')" "$want"
}

check_relative() {
	local t=$1
	ws_need "$t"
	cd "$WS_BIN"
	run --separate-stderr "./$t" --bogus
	assert_failure 64
	assert_stderr_line 0 "$t: unknown option '--bogus'"
	cd "$WS_BIN/.."
	run --separate-stderr "./$(basename "$WS_BIN")/$t" -Z
	assert_failure 64
	assert_stderr_line 0 "$t: unknown option '-Z'"
	run --separate-stderr "./$(basename "$WS_BIN")/$t" --version
	assert_success
	assert_output "$t $WS_VERSION"
}

# --- help and version --------------------------------------------------------

@test "wsync-serve --help and -h" {
	check_help wsync-serve --help
	assert_line --index 0 'usage: wsync-serve [-q] [-l ADDR]... [-d DATADIR] [--stdio] [--create] [--log FILE]'
	refute_output --partial 'NOT IMPLEMENTED'
	check_help wsync-serve -h
	assert_line --index 0 'usage: wsync-serve [-q] [-l ADDR]... [-d DATADIR] [--stdio] [--create] [--log FILE]'
}

@test "wsync-join --help and -h" {
	check_help wsync-join --help
	assert_line --index 0 'usage: wsync-join [-fq] [--local-views] [--scan] [--log FILE] [--sets FILE] HUB [WSID=DBFILE...]'
	refute_output --partial 'NOT IMPLEMENTED'
	check_help wsync-join -h
	assert_line --index 0 'usage: wsync-join [-fq] [--local-views] [--scan] [--log FILE] [--sets FILE] HUB [WSID=DBFILE...]'
}

@test "wsync-replicate --help and -h" {
	check_help wsync-replicate --help
	assert_line --index 0 'usage: wsync-replicate publish -d FILE -t TABLE [-c SPEC]... [--add] [--del] [-q]'
	refute_output --partial 'NOT IMPLEMENTED'
	check_help wsync-replicate -h
}

@test "wsync-inspect --help and -h" {
	check_help wsync-inspect --help
	assert_line --index 0 'usage: wsync-inspect [-j | -s | -c] [-f] [--salvage] [-w WSID] [--site PREFIX] [-t TYPE]... [--since TIME] [--until TIME] [-o FILE] [--max-frame BYTES] [FILE | URL]...'
	assert_line --index 1 '       wsync-inspect --encode [-o FILE] [--max-frame BYTES] [FILE | URL]...'
	assert_line --index 2 '       wsync-inspect [-j | -c] DATABASE'
	refute_output --partial 'NOT IMPLEMENTED'
	check_help wsync-inspect -h
}

@test "-h and --help print the same text" {
	local t
	for t in $WS_TOOLS; do
		ws_need "$t"
		assert_equal "$("$WS_BIN/$t" -h)" "$("$WS_BIN/$t" --help)"
	done
}

@test "wsync-serve --version and -V" {
	check_version wsync-serve --version
	check_version wsync-serve -V
}

@test "wsync-join --version and -V" {
	check_version wsync-join --version
	check_version wsync-join -V
}

@test "wsync-replicate --version and -V" {
	check_version wsync-replicate --version
	check_version wsync-replicate -V
}

@test "wsync-inspect --version and -V" {
	check_version wsync-inspect --version
	check_version wsync-inspect -V
}

# --- unknown options ---------------------------------------------------------

@test "wsync-serve: unknown options exit 64" {
	check_usage_error wsync-serve "unknown option '--bogus'" --bogus
	check_usage_error wsync-serve "unknown option '-Z'" -Z
}

@test "wsync-join: unknown options exit 64" {
	check_usage_error wsync-join "unknown option '--bogus'" --bogus
	check_usage_error wsync-join "unknown option '-Z'" -Z
}

@test "wsync-replicate: unknown options exit 64" {
	check_usage_error wsync-replicate "unknown option '--bogus'" --bogus
	check_usage_error wsync-replicate "unknown option '-Z'" -Z
}

@test "wsync-inspect: unknown options exit 64" {
	check_usage_error wsync-inspect "unknown option '--bogus'" --bogus
	check_usage_error wsync-inspect "unknown option '-Z'" -Z
	# After a good option, and inside a cluster of short ones.
	check_usage_error wsync-inspect "unknown option '--bogus'" --json --bogus
	check_usage_error wsync-inspect "unknown option '-Z'" -jZ
}

@test "an unknown option wins over a later --help" {
	check_usage_error wsync-inspect "unknown option '--bogus'" --bogus --help
	check_usage_error wsync-serve "unknown option '-Z'" -Z -h
}

@test "wsync-inspect: a missing option argument exits 64" {
	check_usage_error wsync-inspect "option '-o' needs an argument" -o
	check_usage_error wsync-inspect "option '-o' needs an argument" --json -o
	check_usage_error wsync-inspect "option '--output' needs an argument" --json --output
	check_usage_error wsync-inspect "option '--max-frame' needs an argument" --json --max-frame
}

@test "wsync-inspect: an argument to a flag names the long option" {
	ws_need wsync-inspect
	# --json takes no argument: the message must be about '--json', not
	# an "unknown option '-j'" (-j is known).
	run --separate-stderr "$WS_BIN/wsync-inspect" --json=x
	assert_failure 64
	assert_output ''
	[[ "${stderr_lines[0]}" == "wsync-inspect: "*"'--json"* ]] ||
	    fail "stderr line 0 is '${stderr_lines[0]}', want a message naming '--json'"
	[[ "${stderr_lines[0]}" != *"unknown option '-j'"* ]] ||
	    fail "stderr line 0 is '${stderr_lines[0]}': -j is not unknown"
}

# --- --list-options (the completions' source) --------------------------------

@test "wsync-serve --list-options matches --help" {
	check_list_options wsync-serve
	# The hub takes no operands.
	assert_line --index -1 'operands '
	assert_line -- '--listen=ADDR'
	assert_line -- '-l ADDR'
	assert_line -- '--datadir=DATADIR'
	assert_line -- '-d DATADIR'
	assert_line -- '--stdio'
	assert_line -- '--create'
	assert_line -- '--max-frame=BYTES'
	assert_line -- '--queue-max=BYTES'
	assert_line -- '--quiet'
	assert_line -- '-q'
	refute_line -- '--list-options'
}

@test "wsync-join --list-options matches --help" {
	check_list_options wsync-join
	assert_line --index -1 'operands file'
	assert_line -- '--follow'
	assert_line -- '-f'
	assert_line -- '--max-frame=BYTES'
	assert_line -- '--quiet'
	assert_line -- '-q'
	refute_line -- '--list-options'
}

@test "wsync-replicate --list-options matches --help" {
	check_list_options wsync-replicate
	assert_line --index -1 'operands verb:publish,pull'
	assert_line -- '--column=SPEC'
	assert_line -- '-c SPEC'
	assert_line -- '--follow'
	assert_line -- '--http=ADDR'
	refute_line -- '--list-options'
}

@test "wsync-inspect --list-options matches --help" {
	check_list_options wsync-inspect
	assert_line --index -1 'operands file'
	# The inspect options themselves, so a parser slip cannot pass silently.
	assert_line -- '--json'
	assert_line -- '-j'
	assert_line -- '--encode'
	assert_line -- '-e'
	assert_line -- '--output=FILE'
	assert_line -- '-o FILE'
	assert_line -- '--max-frame=BYTES'
	assert_line -- '--stats'
	assert_line -- '-s'
	assert_line -- '--check'
	assert_line -- '-c'
	assert_line -- '--follow'
	assert_line -- '-f'
	assert_line -- '--salvage'
	assert_line -- '--wsid=WSID'
	assert_line -- '-w WSID'
	assert_line -- '--site=PREFIX'
	assert_line -- '--type=TYPE'
	assert_line -- '-t TYPE'
	assert_line -- '--since=TIME'
	assert_line -- '--until=TIME'
	refute_line -- '--list-options'
}

# check_synopsis_options TOOL: every option the synopsis shows is listed
# by --list-options; a cluster of short flags ("-fq") is each of them.
check_synopsis_options() {
	local t=$1 syn opt word n=0
	ws_need "$t"
	syn="$(ws_synopsis "$t")"
	run --separate-stderr "$WS_BIN/$t" --list-options
	assert_success
	for word in $(grep -oE -- '(^|[[ ])--?[[:alnum:]][-[:alnum:]]*' <<<"$syn" |
	    tr -d '[ ' | sort -u); do
		if [[ "$word" == --* ]]; then
			opt=$word
			printf '%s\n' "${lines[@]}" | grep -q -e "^${opt}\$" -e "^${opt}[= ]" ||
			    fail "$t: synopsis option '$opt' is missing from --list-options"
			n=$((n + 1))
			continue
		fi
		word=${word#-}
		while [ -n "$word" ]; do
			opt="-${word:0:1}"
			word=${word:1}
			printf '%s\n' "${lines[@]}" | grep -q -e "^${opt}\$" -e "^${opt}[= ]" ||
			    fail "$t: synopsis option '$opt' is missing from --list-options"
			n=$((n + 1))
		done
	done
	[ "$n" -gt 0 ] || fail "$t: found no option in the synopsis '$syn'"
}

@test "wsync-inspect: every option in the synopsis is a real option" {
	check_synopsis_options wsync-inspect
}

@test "wsync-serve: every option in the synopsis is a real option" {
	check_synopsis_options wsync-serve
}

@test "wsync-join: every option in the synopsis is a real option" {
	check_synopsis_options wsync-join
}

@test "wsync-replicate: every option in the synopsis is a real option" {
	check_synopsis_options wsync-replicate
}

# --- usage errors of the hub and the site -----------------------------------

@test "wsync-serve with nothing to serve exits 64" {
	local msg="nothing to serve: give -l ADDR or --stdio"
	check_usage_error wsync-serve "$msg"
	check_usage_error wsync-serve "$msg" -d "$BATS_TEST_TMPDIR/hub"
	check_usage_error wsync-serve "$msg" --create -q
	# Nothing was served, so nothing was created.
	[ ! -e "$BATS_TEST_TMPDIR/hub" ] || fail "wsync-serve made its data directory"
}

@test "wsync-serve: an operand exits 64" {
	check_usage_error wsync-serve "unexpected operand 'some'" some operand
	check_usage_error wsync-serve "unexpected operand 'x'" \
	    -l "unix:$BATS_TEST_TMPDIR/s" x
}

@test "wsync-serve: a bad --max-frame or --queue-max exits 64" {
	check_usage_error wsync-serve "option '--max-frame' needs an argument" --max-frame
	ws_need wsync-serve
	local a
	for a in 0 x 12k -1 '' 1073741825; do
		run --separate-stderr "$WS_BIN/wsync-serve" --stdio --max-frame "$a"
		assert_failure 64
		assert_output ''
		assert_stderr "wsync-serve: bad --max-frame '$a': want 1 to 1073741824"
	done
	for a in 0 x 12k -1 '' 1099511627777; do
		run --separate-stderr "$WS_BIN/wsync-serve" --stdio --queue-max="$a"
		assert_failure 64
		assert_output ''
		assert_stderr "wsync-serve: bad --queue-max '$a': want 1 to 1099511627776"
	done
}

@test "wsync-join with no operands: missing HUB" {
	check_usage_error wsync-join "missing HUB"
	check_usage_error wsync-join "missing HUB" -f
	check_usage_error wsync-join "missing HUB" -q
}

@test "wsync-join with only HUB: missing WSID=DBFILE" {
	check_usage_error wsync-join "missing WSID=DBFILE" unix:/nonexistent
	check_usage_error wsync-join "missing WSID=DBFILE" -fq 127.0.0.1:1
}

@test "wsync-join: a bad operand exits 64" {
	check_usage_error wsync-join "bad operand 'x': want WSID=DBFILE" hub:1 x
	check_usage_error wsync-join "bad operand 'notes=': want WSID=DBFILE" hub:1 notes=
	# The first bad one is named, even after a good one.
	check_usage_error wsync-join "bad operand 'y': want WSID=DBFILE" \
	    hub:1 notes=a.db y todo=t.db
}

@test "wsync-join: a bad working-set id exits 64" {
	local tail="want letters, digits, '.', '_' or '-'"
	cd "$BATS_TEST_TMPDIR"
	check_usage_error wsync-join "bad working-set id '.hidden': $tail" hub:1 .hidden=a.db
	check_usage_error wsync-join "bad working-set id '': $tail" hub:1 =a.db
	check_usage_error wsync-join "bad working-set id 'a/b': $tail" hub:1 a/b=a.db
	check_usage_error wsync-join "bad working-set id '../up': $tail" hub:1 ../up=a.db
	check_usage_error wsync-join "bad working-set id 'sp ace': $tail" hub:1 'sp ace=a.db'
	check_usage_error wsync-join "bad working-set id '$(printf 'x%.0s' {1..129})': $tail" \
	    hub:1 "$(printf 'x%.0s' {1..129})=a.db"
	# A usage error touches no database.
	[ ! -e a.db ] || fail "wsync-join created a.db on a usage error"
}

@test "wsync-join: a bad --max-frame exits 64" {
	ws_need wsync-join
	local a
	for a in 0 x 1073741825 ''; do
		run --separate-stderr "$WS_BIN/wsync-join" --max-frame "$a" hub:1 notes=a.db
		assert_failure 64
		assert_output ''
		assert_stderr "wsync-join: bad --max-frame '$a': want 1 to 1073741824"
	done
}

# --- usage errors of the replicator ------------------------------------------

@test "wsync-replicate with no verb or a bad one exits 64" {
	check_usage_error wsync-replicate "missing verb: publish or pull"
	check_usage_error wsync-replicate "unknown verb 'copy': want publish or pull" copy
	check_usage_error wsync-replicate "missing --db FILE" publish
	check_usage_error wsync-replicate "missing --table TABLE" pull -d x.db src:1
}

# --- the prefix is the bare name, however the binary is invoked -------------

@test "wsync-serve: prefix through a relative path" {
	check_relative wsync-serve
}

@test "wsync-join: prefix through a relative path" {
	check_relative wsync-join
}

@test "wsync-replicate: prefix through a relative path" {
	check_relative wsync-replicate
}

@test "wsync-inspect: prefix through a relative path" {
	check_relative wsync-inspect
}

@test "wsync-inspect: prefix through PATH" {
	ws_need wsync-inspect
	PATH="$WS_BIN:$PATH" run --separate-stderr wsync-inspect -Z
	assert_failure 64
	assert_stderr_line 0 "wsync-inspect: unknown option '-Z'"
}
