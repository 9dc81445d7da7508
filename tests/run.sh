#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every test suite that 'make check' builds and print one closing line
# "N passed, N failed".  Counts are test cases: unit-test functions,
# bats tests, chaos runs and fuzz-corpus inputs replayed.  A suite that
# crashes without its own tally counts as one failure.  Exit status 1 if
# anything failed.
set -u
cd "$(dirname "$0")/.."

pass=0
fail=0
start=$(date +%s)
log=$(mktemp -d "${TMPDIR:-/tmp}/wsync-check.XXXXXX")
trap 'rm -rf "$log"' EXIT

# tally LABEL PASSED FAILED: add to the totals and print one row.
tally() {
	pass=$((pass + $2))
	fail=$((fail + $3))
	if [ "$3" -eq 0 ]; then
		printf '  %-34s %5d ok\n' "$1" "$2"
	else
		printf '  %-34s %5d ok, %d FAILED\n' "$1" "$2" "$3"
	fi
}

# unit DIR LABEL: run each test binary in DIR.
unit() {
	local t name out rc p f line
	for t in "$1"/test_*; do
		[ -x "$t" ] || continue
		name="$2 ${t##*/}"
		out="$log/${t##*/}.$2.out"
		"$t" >"$out" 2>&1
		rc=$?
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
		if [ -n "$line" ]; then
			p=${line%% passed*}
			f=${line#*passed, }
			f=${f%% failed*}
		else
			p=0
			f=0
		fi
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1 # crashed or exited non-zero without reporting
		fi
		tally "$name" "$p" "$f"
		if [ "$f" -ne 0 ]; then
			sed 's/^/    | /' "$out" | tail -n 40
		fi
	done
}

# replay DIR LABEL: each fuzz target's replay driver in DIR over its
# checked-in corpus (tests/fuzz/corpus/NAME); each input counts as a test.
replay() {
	local t name out rc line p f
	for t in "$1"/replay_*; do
		[ -x "$t" ] || continue
		name=${t##*/replay_}
		out="$log/fuzz_$name.$2.out"
		"$t" "tests/fuzz/corpus/$name" >"$out" 2>&1
		rc=$?
		line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
		[ -n "$line" ] || { p=0; f=0; }
		if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
			f=1 # an input crashed it
		fi
		tally "$2 fuzz corpus $name" "$p" "$f"
		if [ "$f" -ne 0 ]; then
			sed 's/^/    | /' "$out" | tail -n 40
		fi
	done
}

# Tests spend most of their time waiting on processes and sockets, so bats
# runs two jobs a core (with GNU parallel; one at a time without it).
jobs=()
if command -v parallel >/dev/null 2>&1; then
	jobs=(--jobs $((2 * $(nproc))))
fi

# batsrun BINDIR LABEL [DIR...]: the bats suite, and the suites in DIR...,
# against the binaries in BINDIR.
batsrun() {
	local bin=$1 label=$2 out="$log/bats.$2.tap" p f
	shift 2
	WS_BIN="$PWD/$bin" bats "${jobs[@]}" --tap tests/bats "$@" >"$out" 2>&1
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	if ! grep -q '^1\.\.' "$out"; then
		f=$((f + 1)) # bats itself failed
	fi
	tally "bats $label" "$p" "$f"
	if [ "$f" -ne 0 ]; then
		grep -A 40 '^not ok ' "$out" | sed 's/^/    | /' | head -n 200
		grep -q '^1\.\.' "$out" || sed 's/^/    | /' "$out" | tail -n 20
	fi
}

# chaos LABEL ARG...: one seeded run of tests/chaos/chaos.py, which ends
# with its own "N passed, N failed" line; a failure shows its report.
chaos() {
	local label=$1 out="$log/chaos.$1.out" line p f rc
	shift
	python3 tests/chaos/chaos.py --check "$@" >"$out" 2>&1
	rc=$?
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
	p=0
	f=1
	if [ -n "$line" ]; then
		p=${line%% passed*}
		f=${line#*passed, }
		f=${f%% failed*}
	fi
	[ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	tally "chaos $label" "$p" "$f"
	if [ "$f" -ne 0 ]; then
		sed 's/^/    | /' "$out" | tail -n 60
	fi
}

echo "unit tests:"
unit build/tests plain
replay build/fuzz plain
echo "bats tests:"
batsrun bin plain
echo "under AddressSanitizer and UBSan:"
unit build/asan/tests asan
replay build/asan/fuzz asan
# Hostile input (tests/attack) runs once, where ASan and UBSan watch it.
batsrun build/asan/bin asan tests/attack
echo "chaos (a hub and 3 sites under faults, seeded, 15 s each):"
chaos "seed 1, --retain 0" --seed 1 --sites 3 --duration 15 --retain 0 --cron 0
# Seed 2 (--retain 3600) runs with keys: encrypted sessions under faults.
chaos "seed 2, --keys, cron" --seed 2 --sites 3 --duration 15 --retain 3600 \
	--cron 1 --keys
chaos "seed 3, asan binaries" --seed 3 --sites 3 --duration 15 --retain 0 --cron 1 \
	--bin build/asan/bin
# The checks themselves: a spoilt final state must fail them.
chaos "self-test (--tamper)" --seed 9 --sites 3 --duration 6 --retain 3600 \
	--cron 0 --tamper

t=$(($(date +%s) - start))
echo "took $((t / 60)) min $((t % 60)) s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
