#!/usr/bin/zsh -f
# SPDX-License-Identifier: MIT
# zcomplete.zsh FPATHDIR LINE: the words zsh's completion system offers
# for the end of LINE (as if TAB was pressed there), one a line, sorted.
#
# Completion needs a line editor, which a script has not: an interactive
# zsh runs in a pseudo-terminal (the zsh/zpty module), with compinit and
# the completion functions of FPATHDIR, and is sent LINE and a TAB.  In
# it compadd is wrapped: it only collects what would be offered (the
# builtin's -O: matched against the word as usual, added to nothing) and
# writes it to a file, and a comppostfuncs hook ends that shell, so no
# screen output has to be parsed.  Commands are looked up in PATH.
# Exit 0, or 2 when zsh did not complete within 10 s.
zmodload zsh/zpty || exit 2
dir=${1:A} line=$2
tmp=$(mktemp -d) || exit 2

cat >$tmp/init <<EOF
PS1='' PROMPT='' RPROMPT=''
fpath=(${(q)dir} \$fpath)
autoload -Uz compinit && compinit -u -D
bindkey '^I' complete-word
compadd() {
	local -a __hits
	# Calls that collect the matches themselves (-O, -A) are left alone.
	if (( \${@[(I)-[OA]]} )); then
		builtin compadd "\$@"
		return
	fi
	builtin compadd -O __hits "\$@"
	(( \$#__hits )) && print -rl -- \$__hits >>$tmp/hits
	return 0
}
__zc_done() { : >$tmp/done; exit }
comppostfuncs=(__zc_done)
: >$tmp/ready
EOF

# exec: the forked shell zpty runs the command in is not to linger.
zpty zc 'exec zsh -f -i'
zpty -w zc "source $tmp/init"
for i in {1..100}; do
	[[ -e $tmp/ready ]] && break
	sleep 0.1
done
zpty -w -n zc "$line"$'\t'
for i in {1..100}; do
	[[ -e $tmp/done ]] && break
	sleep 0.1
done
rc=2
if [[ -e $tmp/done ]]; then
	[[ -e $tmp/hits ]] && sort -u $tmp/hits
	rc=0
fi
zpty -d zc 2>/dev/null
rm -rf -- $tmp
exit $rc
