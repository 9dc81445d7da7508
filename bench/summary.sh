#!/bin/sh
# SPDX-License-Identifier: MIT
# summary.sh OUTDIR: the summary table of a 'make bench' run, from the
# tab-separated lines the benchmarks appended to OUTDIR/summary.tsv
# (benchmark, figure, median, min, max, unit, goal, met|MISSED|-), sorted
# by benchmark, in the order each wrote its lines.
set -eu
out=${1:?usage: summary.sh OUTDIR}
[ -s "$out/summary.tsv" ] || { echo "summary.sh: no $out/summary.tsv" >&2; exit 1; }
awk -F'\t' '
{ n++; key[n] = $1; line[n] = $0 }
END {
	printf "%-3s %-66s %10s %10s %10s  %-6s %-8s %s\n", "", "", "median", "min", \
	    "max", "unit", "goal", ""
	nb = split("B1 B2 B3 B4 B5 B6 B7", order, " ")
	for (b = 1; b <= nb; b++)
		for (i = 1; i <= n; i++)
			if (key[i] == order[b]) {
				split(line[i], f, "\t")
				printf "%-3s %-66s %10s %10s %10s  %-6s %-8s %s\n", f[1], f[2], \
				    f[3], f[4], f[5], f[6], f[7], f[8]
			}
	met = 0; missed = 0
	for (i = 1; i <= n; i++) {
		split(line[i], f, "\t")
		if (f[8] == "met") met++
		if (f[8] == "MISSED") missed++
	}
	printf "\ngoals: %d met, %d MISSED (ratios are taken within each repetition, then summarised)\n", met, missed
}' "$out/summary.tsv"
