#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 05-completion.bats - the shell completions, completions/wsync.bash and
# completions/_wsync, against the binaries: options per verb (pull and
# publish of wsync-replicate), the frame types of wsync-inspect -t, and
# files where an argument is a file.
#
# bash: the script is sourced and _wsync called with COMP_WORDS set, as
# bash's programmable completion would.  zsh: tests/bats/zcomplete.zsh
# runs an interactive zsh with compinit in a pseudo-terminal (zpty),
# presses TAB and collects what compadd is given (see that file).

bats_require_minimum_version 1.5.0
load helper

setup() {
	# A directory of its own: bats keeps files in BATS_TEST_TMPDIR.
	T=$BATS_TEST_TMPDIR/files
	mkdir -p "$T"
	cd "$T"
	ws_need wsync-replicate
	ws_need wsync-inspect
	COMPLETIONS=$BATS_TEST_DIRNAME/../../completions
	touch data.db notes.log
}

# bash_complete WORD...: what bash completes for the last WORD (may be
# ""), one a line, sorted; the first WORD is the tool, found in WS_BIN.
bash_complete() {
	local tool=$1
	shift
	run --separate-stderr bash -c 'src=$1; shift
		source "$src" || exit 1
		COMP_WORDS=("$@")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"
		COMP_POINT=${#COMP_LINE}
		_wsync "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}" ||
		    exit 1
		printf "%s\n" "${COMPREPLY[@]}" | sort -u' \
	    bash_complete "$COMPLETIONS/wsync.bash" "$WS_BIN/$tool" "$@"
	assert_success
}

# zsh_complete LINE: what zsh completes at the end of LINE, one a line,
# sorted.
zsh_complete() {
	command -v zsh >/dev/null || fail "these tests need zsh (tests/deps.sh installs it)"
	run --separate-stderr env PATH="$WS_BIN:$PATH" \
	    zsh -f "$BATS_TEST_DIRNAME/zcomplete.zsh" "$COMPLETIONS" "$1"
	assert_success
}

# The options of wsync-replicate that go with one verb only.
PUBLISH_ONLY="--listen -l --stdio --http --tls-cert --tls-key --http-tokens
--http-max-body --http-timeout --compact --authorized-keys"
PULL_ONLY="--http-token --hub-key --known-hubs --accept-new-hub --array --follow -f
--hold-deletes --events -e --exec --batch"

# has OPT...: each OPT, or OPT=, is among $output's lines.
has() {
	local o
	for o in "$@"; do
		printf '%s\n' "${lines[@]}" | grep -qx -e "$o" -e "$o=" ||
		    fail "'$o' is not offered: $(printf '%s ' "${lines[@]}")"
	done
}

# lacks OPT...: no OPT, nor OPT=, is among $output's lines.
lacks() {
	local o
	for o in "$@"; do
		! printf '%s\n' "${lines[@]}" | grep -qx -e "$o" -e "$o=" ||
		    fail "'$o' is offered: $(printf '%s ' "${lines[@]}")"
	done
}

FRAME_TYPES="add auth batch clock error heartbeat hello log message notice remove schema sealed"

@test "wsync-replicate --list-options VERB: only the options of that verb" {
	local o
	run --separate-stderr "$WS_BIN/wsync-replicate" --list-options pull
	assert_success
	assert_stderr_empty
	assert_line --index -1 'operands verb:publish,pull'
	for o in $PUBLISH_ONLY; do
		refute_line --regexp "^$o([= ].*)?\$"
	done
	for o in $PULL_ONLY --db -d --column --add --del --key --insecure --quiet --help; do
		assert_line --regexp "^$o([= ].*)?\$"
	done
	run --separate-stderr "$WS_BIN/wsync-replicate" --list-options publish
	assert_success
	for o in $PULL_ONLY; do
		refute_line --regexp "^$o([= ].*)?\$"
	done
	for o in $PUBLISH_ONLY --db -d --column --add --del --key --insecure --quiet --help; do
		assert_line --regexp "^$o([= ].*)?\$"
	done
	# Without a verb: every option, as before.
	run --separate-stderr "$WS_BIN/wsync-replicate" --list-options
	for o in $PUBLISH_ONLY $PULL_ONLY; do
		assert_line --regexp "^$o([= ].*)?\$"
	done
}

@test "wsync-inspect --list-values TYPE: the frame types; another list exits 64" {
	run --separate-stderr "$WS_BIN/wsync-inspect" --list-values TYPE
	assert_success
	assert_stderr_empty
	assert_equal "$(sort <<<"$output" | tr '\n' ' ')" "$FRAME_TYPES "
	# Every name is one --type takes.
	local t
	for t in $output; do
		run --separate-stderr "$WS_BIN/wsync-inspect" -t "$t" /dev/null
		assert_success
	done
	run --separate-stderr "$WS_BIN/wsync-inspect" --list-values FILE
	assert_failure 64
	assert_stderr "wsync-inspect: no list of values for 'FILE'"
	# A tool without lists refuses the option: the completions fall back
	# to files.
	run --separate-stderr "$WS_BIN/wsync-replicate" --list-values SPEC
	assert_failure 64
}

@test "bash: wsync-replicate completes the options of the verb on the line" {
	bash_complete wsync-replicate pull --
	has --follow --hold-deletes --db --key --help
	lacks $PUBLISH_ONLY
	bash_complete wsync-replicate publish --
	has --listen --http --compact --db --key --help
	lacks $PULL_ONLY
	# Options (and their arguments) before the verb do not hide it.
	bash_complete wsync-replicate -d pull.db --table=t pull -
	has --follow -f --db -d
	lacks $PUBLISH_ONLY
	bash_complete wsync-replicate -q publish -d data.db -
	has --listen -l
	lacks $PULL_ONLY
	# No verb yet: every option; the verbs as operands.
	bash_complete wsync-replicate --
	has --listen --follow
	bash_complete wsync-replicate ''
	assert_output 'publish
pull'
	# "-d pull" is the database, not the verb.
	bash_complete wsync-replicate -d pull --
	has --listen --follow
}

@test "bash: wsync-inspect -t completes frame types, -o files" {
	bash_complete wsync-inspect -t ''
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$FRAME_TYPES "
	bash_complete wsync-inspect -j --type ''
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$FRAME_TYPES "
	bash_complete wsync-inspect -t b
	assert_output batch
	# --type=, split at '=' as bash does by default.
	bash_complete wsync-inspect --type = he
	assert_output 'heartbeat
hello'
	bash_complete wsync-inspect -o ''
	assert_output 'data.db
notes.log'
	bash_complete wsync-replicate pull -d d
	assert_output data.db
}

@test "zsh: wsync-replicate completes the options of the verb on the line" {
	zsh_complete 'wsync-replicate pull --'
	has --follow --hold-deletes --db --key --help
	lacks $PUBLISH_ONLY
	zsh_complete 'wsync-replicate publish --'
	has --listen --http --compact --db --key --help
	lacks $PULL_ONLY
	zsh_complete 'wsync-replicate -d pull.db --table=t pull -'
	has --follow -f --db -d
	lacks $PUBLISH_ONLY
	zsh_complete 'wsync-replicate --'
	has --listen --follow
	zsh_complete 'wsync-replicate '
	has publish pull
	zsh_complete 'wsync-replicate -d pull --'
	has --listen --follow
}

@test "zsh: wsync-inspect -t completes frame types, -o files" {
	zsh_complete 'wsync-inspect -t '
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$FRAME_TYPES "
	zsh_complete 'wsync-inspect --type='
	assert_equal "$(tr '\n' ' ' <<<"$output")" "$FRAME_TYPES "
	zsh_complete 'wsync-inspect -j -t b'
	assert_output batch
	zsh_complete 'wsync-inspect -o '
	has data.db notes.log
	zsh_complete 'wsync-replicate pull -d d'
	has data.db
}
