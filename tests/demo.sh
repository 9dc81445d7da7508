#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo.  The hub and sites arrive with issue 4; until then the demo
# shows the library core at work: a batch of changes written as JSON,
# encoded into a binary wsync stream, and decoded back.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/wsync-demo.XXXXXX")
trap 'rm -rf "$dir"' EXIT
site=0123456789abcdef0123456789abcdef

cat >"$dir/delta.jsonl" <<JSON
{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title","body"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"$site:1","pk":[1],"set":{"title":"hello","body":"first note"}},{"table":"notes","op":"update","dot":"$site:2","pk":[1],"set":{"title":"hello, world"}},{"table":"notes","op":"delete","dot":"$site:3","pk":[2]}]}
{"type":"clock","ch":1,"clock":{"$site":3}}
JSON

echo "The hub (wsync-serve) and sites (wsync-join) arrive with issue 4."
echo "Meanwhile, the core: a delta as JSON lines ..."
cat "$dir/delta.jsonl"
bin/wsync-inspect --encode "$dir/delta.jsonl" >"$dir/delta.ws"
echo
echo "... encoded as a wsync stream ($(wc -c <"$dir/delta.ws") bytes, against $(wc -c <"$dir/delta.jsonl") as JSON):"
od -A d -t x1 "$dir/delta.ws" | head -n 12
echo
echo "... and decoded back:"
bin/wsync-inspect --json "$dir/delta.ws"
