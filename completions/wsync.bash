# SPDX-License-Identifier: MIT
# bash completion for wsync-serve, wsync-join, wsync-replicate,
# wsync-inspect and wsync-keygen.  The same file is installed once under
# each tool's name.
#
# No option is written down here.  Each tool prints its own list with the
# hidden option --list-options, generated from the one table that also
# feeds its --help:
#
#     --output=FILE      a long option and its argument
#     -o FILE            the short form of the option above it
#     --json             a flag
#     operands file      last line: what the operands are ("file", "",
#                        or "verb:publish,pull": a verb, then files)
#
# Once a verb is on the line, "TOOL --list-options VERB" lists only the
# options that go with it.  The argument of an option, named ARG in the
# list, completes as the words "TOOL --list-values ARG" prints (the frame
# types of wsync-inspect -t TYPE); a tool that has no such list fails,
# and the argument completes as files (directories when ARG says DIR).
# Operands complete as files when the hint is "file".

# _wsync_files CUR [dirs]: file (or directory) names for CUR into COMPREPLY.
_wsync_files()
{
	compopt -o filenames 2>/dev/null
	if [[ ${2-} == dirs ]]; then
		mapfile -t COMPREPLY < <(compgen -d -- "$1")
	else
		mapfile -t COMPREPLY < <(compgen -f -- "$1")
	fi
}

# _wsync_argfiles ARG CUR: complete CUR as the argument named ARG: one
# of the words "$cmd --list-values ARG" prints, or a file.
_wsync_argfiles()
{
	local values
	if values=$("$cmd" --list-values "$1" 2>/dev/null) && [[ -n $values ]]; then
		local IFS=$'\n'
		mapfile -t COMPREPLY < <(compgen -W "$values" -- "$2")
		return 0
	fi
	case $1 in
	*DIR*) _wsync_files "$2" dirs ;;
	*) _wsync_files "$2" ;;
	esac
}

# _wsync_parse: the --list-options lines in $out into words, argof, hint.
_wsync_parse()
{
	local line name
	words=() hint=""
	argof=()
	while IFS= read -r line; do
		case $line in
		"operands "*)
			hint=${line#operands }
			;;
		--*=*)
			name=${line%%=*}
			argof[$name]=${line#*=}
			words+=("$name=")
			;;
		-?" "*)
			name=${line%% *}
			argof[$name]=${line#* }
			words+=("$name")
			;;
		-*)
			words+=("$line")
			;;
		esac
	done <<<"$out"
}

# _wsync_verb: the verb (of hint "verb:V1,V2") on the line before the
# current word, skipping the arguments of options, into verb.
_wsync_verb()
{
	local verbs=${hint#verb:} w i
	verb=""
	[[ $hint == verb:* ]] || return 0
	verbs=" ${verbs//,/ } "
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		[[ $w == -- ]] && return 0
		if [[ -n ${argof[$w]+x} ]]; then
			# "-o FILE", or "--output = FILE" as bash splits it.
			if [[ ${COMP_WORDS[i + 1]-} == "=" ]]; then
				((i += 2))
			else
				((i += 1))
			fi
			continue
		fi
		if [[ $verbs == *" $w "* ]]; then
			verb=$w
			return 0
		fi
	done
}

_wsync()
{
	local cmd=$1 cur=${COMP_WORDS[COMP_CWORD]} prev="" name i
	local hint="" words=() out verb=""
	local -A argof=()

	COMPREPLY=()
	((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
	# The command word as typed; expand a leading ~ the way the shell would.
	# shellcheck disable=SC2088
	[[ $cmd == "~/"* ]] && cmd=$HOME/${cmd#"~/"}

	if ! out=$("$cmd" --list-options 2>/dev/null) || [[ -z $out ]]; then
		_wsync_files "$cur"
		return 0
	fi
	_wsync_parse
	# After a verb, only its options.
	_wsync_verb
	if [[ -n $verb ]] && out=$("$cmd" --list-options "$verb" 2>/dev/null) &&
	    [[ -n $out ]]; then
		_wsync_parse
	fi

	# Is this word an operand because "--" came before it?
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == -- ]]; then
			[[ $hint == file ]] && _wsync_files "$cur"
			return 0
		fi
	done

	# The argument of an option: "-o FILE", "--output FILE" or
	# "--output=FILE" (bash splits the last at '=' when '=' is in
	# COMP_WORDBREAKS, as it is by default).
	if [[ $cur == "=" && -n ${argof[$prev]+x} ]]; then
		_wsync_argfiles "${argof[$prev]}" ""
		return 0
	fi
	if [[ $prev == "=" ]] && ((COMP_CWORD > 1)); then
		name=${COMP_WORDS[COMP_CWORD - 2]}
		if [[ -n ${argof[$name]+x} ]]; then
			_wsync_argfiles "${argof[$name]}" "$cur"
			return 0
		fi
	fi
	if [[ -n $prev && $prev != *=* && -n ${argof[$prev]+x} ]]; then
		_wsync_argfiles "${argof[$prev]}" "$cur"
		return 0
	fi
	if [[ $cur == --*=* ]]; then
		name=${cur%%=*}
		if [[ -n ${argof[$name]+x} ]]; then
			_wsync_argfiles "${argof[$name]}" "${cur#*=}"
			# Without '=' in COMP_WORDBREAKS the reply must keep the
			# "--name=" prefix.
			COMPREPLY=("${COMPREPLY[@]/#/$name=}")
			return 0
		fi
		return 0
	fi

	# An option name.
	if [[ $cur == -* ]]; then
		local IFS=$'\n'
		mapfile -t COMPREPLY < <(compgen -W "${words[*]}" -- "$cur")
		# "--output=" waits for its argument: no space after it.
		for name in "${COMPREPLY[@]}"; do
			if [[ $name == *= ]]; then
				compopt -o nospace 2>/dev/null
				break
			fi
		done
		return 0
	fi

	# An operand: a verb first when the hint is "verb:V1,V2", then files.
	if [[ $hint == verb:* ]]; then
		if [[ -n $verb ]]; then
			_wsync_files "$cur"
			return 0
		fi
		local verbs=${hint#verb:}
		mapfile -t COMPREPLY < <(compgen -W "${verbs//,/ }" -- "$cur")
		return 0
	fi
	[[ $hint == file ]] && _wsync_files "$cur"
	return 0
}

complete -F _wsync wsync-serve wsync-join wsync-replicate wsync-inspect wsync-keygen
