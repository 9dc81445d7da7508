#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# valgrind.sh - 'make check-valgrind': the unit tests, and the end-to-end
# bats suites against the plain binaries, under valgrind memcheck
# (--error-exitcode=99 --leak-check=full).  For bats, WS_BIN points at a
# directory of wrapper scripts that exec valgrind on the real binary with
# a log per process; a log that reports any error fails the run.  Ends
# like tests/run.sh: "N passed, N failed".
#
#     tests/valgrind.sh [BATS-FILE...]   (default: VG_BATS below)
#
# VG_UNIT=0 leaves the unit tests out (they take most of the time).
set -u
cd "$(dirname "$0")/.."
top=$PWD
VG_BATS=${*:-tests/bats/20-sync.bats tests/bats/25-gc.bats tests/bats/30-log.bats
tests/bats/50-replicate.bats}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind is not installed" >&2; exit 1; }

work=$top/build/valgrind
rm -rf "$work"
mkdir -p "$work/bin" "$work/logs"
vg=(valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,possible
    --errors-for-leak-kinds=definite,possible --track-origins=yes --num-callers=30)
pass=0
fail=0

tally() {
	pass=$((pass + $2))
	fail=$((fail + $3))
	if [ "$3" -eq 0 ]; then
		printf '  %-34s %5d ok\n' "$1" "$2"
	else
		printf '  %-34s %5d ok, %d FAILED\n' "$1" "$2" "$3"
	fi
}

echo "unit tests under valgrind:"
[ "${VG_UNIT:-1}" = 0 ] && echo "  (left out: VG_UNIT=0)"
for t in build/tests/test_*; do
	[ "${VG_UNIT:-1}" = 0 ] && break
	[ -x "$t" ] || continue
	out=$work/logs/${t##*/}.out
	"${vg[@]}" --log-file="$work/logs/${t##*/}.uvg" "$t" >"$out" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	p=${line%% passed*}
	f=${line#*passed, }
	f=${f%% failed*}
	[ -n "$line" ] || { p=0; f=0; }
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	tally "valgrind ${t##*/}" "$p" "$f"
	[ "$rc" -eq 99 ] && sed -n '/^==[0-9]*== [A-Z].*\(Invalid\|uninitialised\|definitely\|possibly\)/,/^==[0-9]*== $/p' \
	    "$work/logs/${t##*/}.uvg" | head -n 40 | sed 's/^/    | /'
done

# One wrapper per tool: valgrind on the real binary, a log per process.
for b in bin/wsync-*; do
	cat >"$work/bin/${b##*/}" <<WRAP
#!/bin/sh
exec ${vg[*]} --log-file=$work/logs/${b##*/}.%p.vg $top/$b "\$@"
WRAP
	chmod +x "$work/bin/${b##*/}"
done

echo "bats tests under valgrind:"
for f in $VG_BATS; do
	out=$work/logs/$(basename "$f" .bats).tap
	# Valgrind makes every process slower: the suites wait longer.
	WAIT_S=60 WS_BIN=$work/bin bats --tap "$f" >"$out" 2>&1
	p=$(grep -c '^ok ' "$out")
	nf=$(grep -c '^not ok ' "$out")
	grep -q '^1\.\.' "$out" || nf=$((nf + 1))
	tally "valgrind bats ${f##*/}" "$p" "$nf"
	[ "$nf" -ne 0 ] && grep -A 12 '^not ok ' "$out" | sed 's/^/    | /' | head -n 60
done

# Every process's log: errors fail.  A process killed by SIGKILL (the
# tests kill hubs on purpose), or a forked child that ran another program
# (exec:, --exec), leaves no summary and is only counted.
nlog=0
nkilled=0
nbad=0
for l in "$work"/logs/*.vg; do
	[ -e "$l" ] || continue
	nlog=$((nlog + 1))
	if grep -qE 'ERROR SUMMARY: [1-9]' "$l"; then
		nbad=$((nbad + 1))
		echo "  valgrind found errors: ${l#"$top"/}"
		grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|[0-9,]+ bytes in .* (definitely|possibly))' "$l" |
		    sort | uniq -c | head -n 10 | sed 's/^/    | /'
	elif ! grep -q 'ERROR SUMMARY: 0 errors' "$l"; then
		nkilled=$((nkilled + 1))
	fi
done
echo "  $nlog processes checked, $nbad with errors, $nkilled without a summary (killed, or exec'd)"
fail=$((fail + nbad))
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
