#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# run.sh - the libFuzzer campaign behind 'make fuzz': run each target
# (build/libfuzzer/fuzz/fuzz_<name>) for SECONDS seconds, niced, starting
# from the checked-in seeds in tests/fuzz/corpus/<name>/ (read only) and
# the inputs earlier runs found, kept in build/libfuzzer/corpus/<name>/.
# A crash is saved in build/libfuzzer/crashes/<name>/ (copy it into the
# checked-in corpus as crash-<what> once it is fixed).  Prints one line
# per target with its executions and ends "N targets, N crashed".
#
#     tests/fuzz/run.sh SECONDS NAME...
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}
shift
top=build/libfuzzer
ntarget=0
ncrash=0
for name in "$@"; do
	bin=$top/fuzz/fuzz_$name
	[ -x "$bin" ] || { echo "fuzz: missing $bin (make fuzz builds it)" >&2; exit 1; }
	mkdir -p "$top/corpus/$name" "$top/crashes/$name" "$top/logs"
	log=$top/logs/$name.log
	dict=()
	[ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
	nice -n 10 "$bin" -max_total_time="$secs" -print_final_stats=1 \
	    -max_len=65536 -rss_limit_mb=2048 -timeout=10 "${dict[@]}" \
	    -artifact_prefix="$top/crashes/$name/" \
	    "$top/corpus/$name" "tests/fuzz/corpus/$name" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
	ntarget=$((ntarget + 1))
	if [ "$rc" -ne 0 ]; then
		ncrash=$((ncrash + 1))
		printf 'fuzz %-10s %12s execs  %s  CRASHED (see %s)\n' "$name" \
		    "${execs:-?}" "$cov" "$log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*fuzz check failed|.*runtime error)' "$log" |
		    head -n 5 | sed 's/^/    /'
		ls "$top/crashes/$name" | sed 's/^/    input: /' | tail -n 3
	else
		printf 'fuzz %-10s %12s execs  %s  ok\n' "$name" "${execs:-?}" "$cov"
	fi
done
echo "$ntarget targets, $ncrash crashed"
[ "$ncrash" -eq 0 ]
