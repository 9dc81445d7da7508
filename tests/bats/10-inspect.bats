#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 10-inspect.bats - wsync-inspect as a converter between binary frames
# (frame.h, delta.h) and JSON lines (json.h): exact bytes, lossless round
# trips, jq pipelines, several inputs, and every error's exit status and
# message.

bats_require_minimum_version 1.5.0
load helper

SITE=0123456789abcdef0123456789abcdef
SITE2=fedcba9876543210fedcba9876543210
PREAMBLE=895753594e430d0a0100

# Golden bytes, worked out by hand from frame.h and delta.h (CRC-32C
# computed independently), for LINE_BATCH and LINE_CLOCK below.
#   header: type 10, flags 00, channel 01000000, length 2f000000
#   payload: flags 00, 1 table "notes" (2 cols "id" "title", pk [0]),
#            1 site, 1 change: table 0 << 2 | insert, counter +1 (zigzag 02),
#            pk INTEGER 1, mask 02, TEXT "hi"
#   trailer: CRC-32C of header and payload, little-endian
GOLD_BATCH=1000010000002f0000000001056e6f74657302026964057469746c65010001${SITE}01010201020203026869e87e91d1
GOLD_CLOCK=11000100000012000000010123456789abcdef0123456789abcdef018ac4c679
# Where the clock frame starts in PREAMBLE GOLD_BATCH GOLD_CLOCK.
CLOCK_AT=71

LINE_BATCH='{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':1","pk":[1],"set":{"title":"hi"}}]}'
LINE_CLOCK='{"type":"clock","ch":1,"clock":{"'$SITE'":1}}'

# A batch that exercises every value form: unicode and NUL in text, text
# that is not UTF-8, empty text, blobs (empty too), INT64_MIN/INT64_MAX,
# -0.0, a finite real, the non-finite reals (NaN payloads included),
# null, a causal clock, two sites, update and delete, and a two-column
# primary key whose key order differs from the declared order.
LINE_EDGE='{"type":"batch","ch":7,"clock":{"'$SITE'":5,"'$SITE2'":3},"tables":[{"name":"notes","cols":["id","title","body","score","data"],"pk":["id"]},{"name":"pairs","cols":["a","b","v"],"pk":["b","a"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':6","pk":[-9223372036854775808],"set":{"title":"h\u00e9llo \u2192 \u4e16\u754c \ud83c\udf89","body":"a\u0000b","score":-0.0,"data":{"blob":"AAEC/w=="}}},{"table":"notes","op":"update","dot":"'$SITE2':4","pk":[9223372036854775807],"set":{"title":"","body":null,"score":{"real":"nan"}}},{"table":"notes","op":"update","dot":"'$SITE':7","pk":[0],"set":{"score":{"real":"inf"},"data":{"blob":""}}},{"table":"notes","op":"update","dot":"'$SITE':8","pk":[2],"set":{"title":{"text":"/w=="},"score":{"real":"-inf"}}},{"table":"notes","op":"update","dot":"'$SITE':9","pk":[3],"set":{"score":{"real":"nan:7ff4000000000001"}}},{"table":"notes","op":"update","dot":"'$SITE':10","pk":[4],"set":{"score":{"real":"nan:fff8000000000000"}}},{"table":"pairs","op":"insert","dot":"'$SITE2':5","pk":["x",2],"set":{"v":1.5}},{"table":"pairs","op":"delete","dot":"'$SITE2':6","pk":["y",{"blob":"AA=="}]}]}'

# The other frame kinds, and types this build does not know.
LINES_OTHER='{"type":"clock","ch":0,"clock":{"'$SITE'":9223372036854775807,"'$SITE2'":1}}
{"type":"heartbeat","ch":0,"time":1763700000000}
{"type":"error","ch":0,"code":-8,"message":"boom: caf\u00e9"}
{"type":32,"ch":3,"flags":5,"payload":"AQID"}
{"type":200,"ch":4294967295,"payload":""}
{"type":"clock","ch":2,"clock":{}}'

setup() {
	ws_need wsync-inspect
	I="$WS_BIN/wsync-inspect"
	cd "$BATS_TEST_TMPDIR"
	printf '%s\n' "$LINE_BATCH" >batch.json
	printf '%s\n' "$LINE_CLOCK" >clock.json
	printf '%s\n%s\n' "$LINE_BATCH" "$LINE_CLOCK" >two.json
	printf '%s\n' "$LINE_EDGE" >edge.json
	printf '%s\n' "$LINES_OTHER" >other.json
	unhex "$PREAMBLE$GOLD_BATCH$GOLD_CLOCK" >gold.ws
}

# --- modes -------------------------------------------------------------------

@test "no mode: the timeline, read from stdin" {
	# The default view is the timeline (15-inspect-modes.bats covers it);
	# frames outside a log record have no time, direction or peer, and
	# channel 1 names no working set without an ADD frame.
	run --separate-stderr bash -c '"$1" <gold.ws' pipe "$I"
	assert_success
	assert_stderr_empty
	assert_output "-  -  -  #1  BATCH  site=01234567 1 change
  notes pk=(1) insert title='hi' dot=01234567:1
-  -  -  #1  CLOCK  clock=01234567:1"
}

@test "the timeline names CLOCK flags, and shows unnamed bits in hex" {
	local f
	for f in 1 2 4 8 24 5 132 128; do
		printf '{"type":"clock","ch":0,"flags":%d,"clock":{}}\n' "$f"
	done >flags.json
	run --separate-stderr "$I" flags.json
	assert_success
	assert_stderr_empty
	assert_output "-  -  -  -  CLOCK  flags=caught-up clock={}
-  -  -  -  CLOCK  flags=sync clock={}
-  -  -  -  CLOCK  flags=ack clock={}
-  -  -  -  CLOCK  flags=stable clock={}
-  -  -  -  CLOCK  flags=stable,snapshot clock={}
-  -  -  -  CLOCK  flags=caught-up,ack clock={}
-  -  -  -  CLOCK  flags=ack,0x80 clock={}
-  -  -  -  CLOCK  flags=0x80 clock={}"
}

# --- JSON lines to binary and back -------------------------------------------

@test "--encode writes the preamble, then the frames (golden bytes)" {
	run_to out.ws "$I" --encode two.json
	assert_success
	assert_stderr_empty
	# The 10-byte preamble: \x89 W S Y N C CR LF, version 1, reserved 0.
	assert_equal "$(head -c 10 out.ws | od -An -tx1 | tr -s ' \n' ' ')" \
	    " 89 57 53 59 4e 43 0d 0a 01 00 "
	assert_equal "$(hex out.ws)" "$PREAMBLE$GOLD_BATCH$GOLD_CLOCK"
}

@test "--json of the golden bytes gives the JSON lines back" {
	run --separate-stderr "$I" --json gold.ws
	assert_success
	assert_stderr_empty
	assert_equal "${#lines[@]}" 2
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
	# One compact object a line: no line starts with white space.
	refute_line --regexp '^[[:space:]]'
	# "flags" appears only when it is not 0.
	refute_output --partial '"flags"'
}

@test "JSON -> binary -> JSON gives the same JSON" {
	run_to out.ws "$I" --encode two.json
	assert_success
	run --separate-stderr "$I" --json out.ws
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
}

@test "every value form round-trips exactly" {
	run_to e1.ws "$I" --encode edge.json
	assert_success
	assert_stderr_empty
	run_to e1.json "$I" --json e1.ws
	assert_success
	assert_stderr_empty
	# JSON -> binary -> JSON: the same object.
	assert_equal "$(jnorm e1.json)" "$(jnorm edge.json)"
	# jq 1.6 reads numbers as doubles, so look at the 64-bit ones directly.
	grep -q -e '\[-9223372036854775808\]' e1.json ||
	    fail "INT64_MIN is not written exactly: $(cat e1.json)"
	grep -q -e '\[9223372036854775807\]' e1.json ||
	    fail "INT64_MAX is not written exactly: $(cat e1.json)"
	grep -q -e '-0\.0[,}]' e1.json ||
	    fail "-0.0 lost its sign or its REAL type: $(cat e1.json)"
	grep -q -F -e 'a\u0000b' e1.json ||
	    fail "the NUL in text is not escaped: $(cat e1.json)"
	assert_equal "$(jq -r 'first(.changes[0].set.title)' e1.json)" \
	    "héllo → 世界 🎉"
	# binary -> JSON -> binary: the same bytes.
	run_to e2.ws "$I" --encode e1.json
	assert_success
	cmp e1.ws e2.ws
	# And the JSON form is stable.
	run_to e2.json "$I" --json e2.ws
	assert_success
	cmp e1.json e2.json
}

@test "clock, heartbeat, error and unknown frame types round-trip" {
	run_to o1.ws "$I" --encode other.json
	assert_success
	assert_stderr_empty
	run_to o1.json "$I" --json o1.ws
	assert_success
	assert_stderr_empty
	assert_equal "$(jnorm o1.json)" "$(jnorm other.json)"
	grep -q -F -e '9223372036854775807' o1.json ||
	    fail "a clock counter of 2^63-1 is not written exactly: $(cat o1.json)"
	run_to o2.ws "$I" --encode o1.json
	assert_success
	cmp o1.ws o2.ws
	# Unknown types keep their flags, channel and payload bytes.
	[[ "$(hex o1.ws)" == *20050300000003000000010203* ]] ||
	    fail "type 32 frame not found in $(hex o1.ws)"
	[[ "$(hex o1.ws)" == *c800ffffffff00000000* ]] ||
	    fail "type 200 frame not found in $(hex o1.ws)"
}

@test "binary -> JSON -> binary is byte-identical for the golden stream" {
	run_to g.json "$I" --json gold.ws
	assert_success
	run_to g.ws "$I" --encode g.json
	assert_success
	assert_stderr_empty
	cmp gold.ws g.ws
}

@test "--encode of binary input and --json of JSON input pass frames through" {
	run_to g.ws "$I" --encode gold.ws
	assert_success
	assert_stderr_empty
	cmp gold.ws g.ws
	run --separate-stderr "$I" --json two.json
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
}

# --- pipelines ---------------------------------------------------------------

@test "edit a value with jq and re-encode" {
	run --separate-stderr bash -c 'set -o pipefail
	    "$1" --json gold.ws |
	    jq -c "if .type == \"batch\" then .changes[0].set.title = \"edited\" else . end" |
	    "$1" --encode >edited.ws' pipe "$I"
	assert_success
	assert_stderr_empty
	run --separate-stderr "$I" --json edited.ws
	assert_success
	assert_stderr_empty
	assert_equal "${#lines[@]}" 2
	assert_equal "$(jq -r 'select(.type == "batch") | .changes[0].set.title' <<<"$output")" edited
	# Nothing else changed.
	assert_equal "$(jq -S -c 'if .type == "batch" then .changes[0].set.title = "hi" else . end' <<<"$output")" \
	    "$(jnorm two.json)"
	# Undoing the edit gives the original bytes back.
	run_to edited2.ws "$I" --encode - <<<"$(jq -c 'if .type == "batch" then .changes[0].set.title = "hi" else . end' <<<"$output")"
	assert_success
	cmp gold.ws edited2.ws
}

@test "stdin is the default input, and - names it" {
	run --separate-stderr bash -c '"$1" --json <gold.ws' pipe "$I"
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
	run --separate-stderr bash -c '"$1" --json - <two.json' pipe "$I"
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
	run_to s.ws bash -c '"$1" --encode <two.json' pipe "$I"
	assert_success
	assert_equal "$(hex s.ws)" "$PREAMBLE$GOLD_BATCH$GOLD_CLOCK"
}

@test "several inputs are concatenated in order; binary and JSON mix" {
	run_to c.ws "$I" --encode clock.json
	assert_success
	run --separate-stderr bash -c '"$1" --json batch.json c.ws - edge.json gold.ws <other.json' pipe "$I"
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -S -c . <<<"$output")" \
	    "$(cat batch.json clock.json other.json edge.json two.json | jq -S -c .)"
	# --encode: one preamble for the whole output, whatever the inputs.
	run_to mixed.ws bash -c '"$1" --encode gold.ws - batch.json c.ws <edge.json' pipe "$I"
	assert_success
	assert_stderr_empty
	run_to all.ws bash -c 'cat two.json edge.json batch.json clock.json | "$1" --encode' pipe "$I"
	assert_success
	cmp all.ws mixed.ws
	assert_equal "$(grep -o -a WSYNC mixed.ws | wc -l)" 1
}

@test "blank lines are skipped and the last line needs no newline" {
	printf '\n\n%s\n\n  \n%s' "$LINE_BATCH" "$LINE_CLOCK" >loose.json
	run_to l.ws "$I" --encode loose.json
	assert_success
	assert_stderr_empty
	assert_equal "$(hex l.ws)" "$PREAMBLE$GOLD_BATCH$GOLD_CLOCK"
}

@test "empty inputs give no frames" {
	: >empty
	unhex "$PREAMBLE" >preamble.ws
	run --separate-stderr "$I" --json empty preamble.ws empty
	assert_success
	assert_output ''
	assert_stderr_empty
	run --separate-stderr "$I" --json - </dev/null
	assert_success
	assert_output ''
	assert_stderr_empty
}

# --- output ------------------------------------------------------------------

@test "-o FILE writes there and nothing to stdout" {
	run --separate-stderr "$I" --encode -o out.ws two.json
	assert_success
	assert_output ''
	assert_stderr_empty
	assert_equal "$(hex out.ws)" "$PREAMBLE$GOLD_BATCH$GOLD_CLOCK"
	# An existing, longer file is replaced.
	cat gold.ws gold.ws gold.ws >out.json
	run --separate-stderr "$I" --json --output out.json gold.ws
	assert_success
	assert_output ''
	assert_stderr_empty
	assert_equal "$(jnorm out.json)" "$(jnorm two.json)"
	# -o - is stdout.
	run --separate-stderr "$I" --json -o - gold.ws
	assert_success
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
}

@test "-o in a missing directory: exit 74" {
	run --separate-stderr "$I" --json -o nodir/out.json gold.ws
	assert_failure 74
	assert_output ''
	assert_stderr "wsync-inspect: cannot create 'nodir/out.json': no such file or directory"
}

@test "-o naming a directory: exit 74" {
	mkdir d
	run --separate-stderr "$I" --json -o d gold.ws
	assert_failure 74
	assert_output ''
	assert_stderr "wsync-inspect: cannot create 'd': is a directory"
}

@test "-o in a directory without write permission: exit 77" {
	local -a wrap=()
	mkdir ro
	chmod 555 ro
	if [ "$(id -u)" -eq 0 ]; then
		# root writes anywhere; run without capabilities instead.
		command -v setpriv >/dev/null || skip "root, and no setpriv to drop capabilities"
		wrap=(setpriv --bounding-set=-all --inh-caps=-all)
		"${wrap[@]}" true 2>/dev/null || skip "setpriv cannot drop capabilities here"
	fi
	run --separate-stderr "${wrap[@]}" "$I" --json -o ro/out.json gold.ws
	assert_failure 77
	assert_output ''
	assert_stderr "wsync-inspect: cannot create 'ro/out.json': permission denied"
	[ ! -e ro/out.json ]
}

@test "a failing write (/dev/full): exit 74" {
	[ -w /dev/full ] || skip "no /dev/full"
	run --separate-stderr "$I" --json -o /dev/full gold.ws
	assert_failure 74
	assert_output ''
	# Like any message: lowercase, naming the object (the output file,
	# not the input), as the tool's own "cannot write '%s': %s" does.
	[[ "${stderr_lines[0]}" == "wsync-inspect: "*"'/dev/full'"*": no space left on device" ]] ||
	    fail "stderr is '$stderr', want \"wsync-inspect: ...'/dev/full'...: no space left on device\""
	[[ "$stderr" != *"'gold.ws'"* ]] || fail "a write error names the input: '$stderr'"
	assert_equal "${#stderr_lines[@]}" 1
}

@test "a closed pipe on stdout: exit 74, reported" {
	local n
	for n in $(seq 3000); do
		printf '%s\n' "$LINE_EDGE"
	done >big.json
	run --separate-stderr bash -c '"$1" --json big.json | head -c 100 >/dev/null
	    exit "${PIPESTATUS[0]}"' pipe "$I"
	assert_failure 74
	[[ "${stderr_lines[0]}" == "wsync-inspect: "*": broken pipe" ]] ||
	    fail "stderr is '$stderr', want 'wsync-inspect: ...: broken pipe'"
	[[ "$stderr" != *"'big.json'"* ]] || fail "a write error names the input: '$stderr'"
	assert_equal "${#stderr_lines[@]}" 1
}

@test "--encode to a terminal is refused; --json to one is fine" {
	command -v script >/dev/null || skip "no script(1) to get a terminal"
	run script -qec "'$I' --encode two.json" /dev/null </dev/null
	assert_failure 64
	assert_output --partial "wsync-inspect: refusing to write binary frames to a terminal"
	refute_output --partial 'WSYNC'
	run script -qec "'$I' --json gold.ws" /dev/null </dev/null
	assert_success
	assert_output --partial '"type":"clock"'
}

# --- bad input ---------------------------------------------------------------

@test "a missing file: exit 66" {
	run --separate-stderr "$I" --json nope.ws
	assert_failure 66
	assert_output ''
	assert_stderr "wsync-inspect: cannot open 'nope.ws': no such file or directory"
}

@test "a missing file after a good one: the good one's frames are written" {
	run --separate-stderr "$I" --json gold.ws nope.ws
	assert_failure 66
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm two.json)"
	assert_stderr "wsync-inspect: cannot open 'nope.ws': no such file or directory"
}

@test "an unreadable file: exit 77" {
	local -a wrap=()
	chmod 000 gold.ws
	if [ "$(id -u)" -eq 0 ]; then
		command -v setpriv >/dev/null || skip "root, and no setpriv to drop capabilities"
		wrap=(setpriv --bounding-set=-all --inh-caps=-all)
		"${wrap[@]}" true 2>/dev/null || skip "setpriv cannot drop capabilities here"
	fi
	run --separate-stderr "${wrap[@]}" "$I" --json gold.ws
	assert_failure 77
	assert_output ''
	assert_stderr "wsync-inspect: cannot open 'gold.ws': permission denied"
}

@test "garbage input: exit 65, naming the file" {
	printf 'hello, world\n' >junk.txt
	run --separate-stderr "$I" --json junk.txt
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'junk.txt': byte 0: neither a wsync stream nor JSON lines"
	# The offset is that of the first byte that is not white space.
	printf '\n  \t[1]\n' >array.json
	run --separate-stderr "$I" --json array.json
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'array.json': byte 4: neither a wsync stream nor JSON lines"
	# A first byte of 0x89 is not enough.
	unhex 89504e470d0a1a0a0000 >fake.png
	run --separate-stderr "$I" --encode -o out.ws fake.png
	assert_failure 65
	assert_stderr "wsync-inspect: 'fake.png': byte 1: not a wsync stream (bad magic)"
}

@test "an unsupported stream version: exit 65" {
	unhex 895753594e430d0a0200 >v2.ws
	run --separate-stderr "$I" --json v2.ws
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'v2.ws': byte 8: unsupported stream version"
}

@test "a non-zero reserved preamble byte: exit 65 at byte 9" {
	unhex 895753594e430d0a0101 >r.ws
	run --separate-stderr "$I" --json r.ws
	assert_failure 65
	assert_output ''
	[[ "$stderr" == "wsync-inspect: 'r.ws': byte 9: "?* ]] ||
	    fail "stderr is '$stderr', want \"wsync-inspect: 'r.ws': byte 9: ...\""
}

@test "a truncated binary stream: exit 65 with the byte offset" {
	head -c $((CLOCK_AT + 5)) gold.ws >trunc.ws
	run --separate-stderr "$I" --json trunc.ws
	assert_failure 65
	assert_stderr "wsync-inspect: 'trunc.ws': frame at byte $CLOCK_AT: truncated (stream ends after 5 bytes of it)"
	# The whole first frame is still written.
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm batch.json)"
	# Cut inside the preamble.
	head -c 4 gold.ws >short.ws
	run --separate-stderr "$I" --json short.ws
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'short.ws': byte 0: truncated preamble (4 of 10 bytes)"
}

@test "one flipped payload byte: exit 65, bad checksum, earlier frames written" {
	flip_byte gold.ws $((CLOCK_AT + 12))
	run --separate-stderr "$I" --json gold.ws
	assert_failure 65
	assert_stderr "wsync-inspect: 'gold.ws': frame at byte $CLOCK_AT: bad checksum"
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm batch.json)"
}

@test "a flipped byte in the first frame: nothing written" {
	flip_byte gold.ws 30
	run --separate-stderr "$I" --json gold.ws
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'gold.ws': frame at byte 10: bad checksum"
	run_to out.ws "$I" --encode gold.ws
	assert_failure 65
	assert_stderr "wsync-inspect: 'gold.ws': frame at byte 10: bad checksum"
	# Binary output holds at most the preamble.
	[ "$(wc -c <out.ws)" -le 10 ] || fail "out.ws has $(wc -c <out.ws) bytes"
}

@test "invalid JSON on line 2: exit 65 naming line 2, line 1 written" {
	printf '%s\n{"type": "clock",\n%s\n' "$LINE_BATCH" "$LINE_CLOCK" >bad.json
	run --separate-stderr "$I" --json bad.json
	assert_failure 65
	# The rest of the detail is jansson's, and varies with its version.
	[[ "$stderr" == "wsync-inspect: 'bad.json': line 2: "?* ]] ||
	    fail "stderr is '$stderr', want \"wsync-inspect: 'bad.json': line 2: ...\""
	assert_equal "${#stderr_lines[@]}" 1
	assert_equal "$(jq -S -c . <<<"$output")" "$(jnorm batch.json)"
}

# Each bad line, then the detail expected after "line 3: ".
SHAPES=(
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"upsert","dot":"'$SITE':1","pk":[1],"set":{"title":"hi"}}]}'
	'change 0: "op" must be "insert", "update" or "delete"'
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':1","pk":[1],"set":{"title":"hi"}},{"table":"nope","op":"insert","dot":"'$SITE':2","pk":[2],"set":{"title":"hi"}}]}'
	'change 1: "table" must name one of the batch'"'"'s tables'
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"xyz:1","pk":[1],"set":{"title":"hi"}}]}'
	'change 0: "dot" must be "<32 hex digits>:<counter 1..2^63-1>"'
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':0","pk":[1],"set":{"title":"x"}}]}'
	'change 0: "dot" must be "<32 hex digits>:<counter 1..2^63-1>"'
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':1","pk":[1],"set":{"nosuchcol":"hi"}}]}'
	"change 0: table 'notes' has no column 'nosuchcol'"
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':1","pk":[1],"set":{"id":2}}]}'
	"change 0: mask sets primary-key column 'id'"
	'{"type":"batch","ch":1,"tables":[{"name":"notes","cols":["id","title"],"pk":["id"]}],"changes":[{"table":"notes","op":"insert","dot":"'$SITE':1","pk":[1],"set":{"title":{"real":"bogus"}}}]}'
	'change 0: bad real '"'"'bogus'"'"' (want a number, "nan", "inf", "-inf" or "nan:<16 hex digits>")'
	'{"type":"clock","ch":4294967296,"clock":{}}'
	'"ch" must be an integer from 0 to 4294967295'
	'{"type":"heartbeat","ch":0,"time":-1}'
	'"time" must be an integer from 0 to 9223372036854775807'
	'{"type":"nosuchtype","ch":1}'
	'"type" must be a frame type name or a number from 1 to 255'
	'{"type":0,"ch":1,"payload":""}'
	'"type" must be a frame type name or a number from 1 to 255'
	'{"type":"clock","ch":1,"clock":{},"extra":1}'
	"clock frame: unknown key 'extra'"
	'[1,2,3]'
	'a frame must be a JSON object'
)

@test "JSON of the wrong shape: exit 65 naming the line and the problem" {
	# Not "i": bats' own helpers assign a global i during run.
	local shape
	for ((shape = 0; shape < ${#SHAPES[@]}; shape += 2)); do
		printf '%s\n\n%s\n' "$LINE_CLOCK" "${SHAPES[shape]}" >shape.json
		run --separate-stderr "$I" --encode -o out.ws shape.json
		[ "$status" -eq 65 ] || fail "status $status for line: ${SHAPES[shape]} ($stderr)"
		assert_stderr "wsync-inspect: 'shape.json': line 3: ${SHAPES[shape + 1]}"
	done
}

@test "JSON payloads that are not base64: exit 65" {
	printf '%s\n' '{"type":32,"ch":1,"payload":"not base64!"}' >b64.json
	run --separate-stderr "$I" --encode -o out.ws b64.json
	assert_failure 65
	[[ "$stderr" == "wsync-inspect: 'b64.json': line 1: "*"payload"*"base64" ]] ||
	    fail "stderr is '$stderr'"
	assert_equal "${#stderr_lines[@]}" 1
}

@test "a clock counter of 0 is refused, not dropped" {
	# Counters are 1..2^63-1 (vclock.h); dropping the entry would break
	# the JSON -> frame -> JSON round trip that json.h promises.
	printf '%s\n' '{"type":"clock","ch":1,"clock":{"'$SITE'":0}}' >zero.json
	run --separate-stderr "$I" --encode -o out.ws zero.json
	assert_failure 65
	[[ "$stderr" == "wsync-inspect: 'zero.json': line 1: "?* ]] ||
	    fail "stderr is '$stderr', want \"wsync-inspect: 'zero.json': line 1: ...\""
}

@test "a frame larger than --max-frame: exit 65" {
	# The batch payload is 0x2f = 47 bytes.
	run --separate-stderr "$I" --json --max-frame 47 gold.ws
	assert_success
	run --separate-stderr "$I" --json --max-frame 46 gold.ws
	assert_failure 65
	assert_output ''
	assert_stderr "wsync-inspect: 'gold.ws': frame at byte 10: frame larger than the maximum"
	# The same limit holds for frames built from JSON lines.
	run --separate-stderr "$I" --encode -o out.ws --max-frame 47 batch.json
	assert_success
	run --separate-stderr "$I" --encode -o out.ws --max-frame 46 batch.json
	assert_failure 65
	assert_stderr "wsync-inspect: 'batch.json': line 1: frame larger than the maximum"
}

@test "--max-frame must be 1 to 2^30" {
	local bad
	for bad in 0 -1 12x abc '' 1073741825 99999999999999999999999; do
		run --separate-stderr "$I" --json --max-frame "$bad" gold.ws
		assert_failure 64
		assert_output ''
		assert_stderr "wsync-inspect: bad --max-frame '$bad': want 1 to 1073741824"
	done
	run --separate-stderr "$I" --json --max-frame 1073741824 gold.ws
	assert_success
	run --separate-stderr "$I" --json --max-frame=1 clock.json
	assert_failure 65
}
