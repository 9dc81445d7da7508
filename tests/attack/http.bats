#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# http.bats - wsync-replicate publish --http against hostile HTTP clients:
# curl, and httpraw.py for what curl would not send, against a real
# publisher on loopback.  Anonymous clients may only read; a write needs
# a token with the right to write; a bad or missing token, an oversized
# or unsized body, a slow head are refused with exact statuses and
# messages, and nothing changes in the database; the publisher goes on
# serving others.  Plain HTTP is refused beyond loopback.
#
# Every test starts its own publisher in a fresh $BATS_TEST_TMPDIR.

bats_require_minimum_version 1.5.0
load ../bats/helper

WAIT_S=${WAIT_S:-10}
RAW="$BATS_TEST_DIRNAME/httpraw.py"
WRITER=till-0123456789abcdef-writer
READER=till-0123456789abcdef-reader
OTHER=till-0123456789abcdef-other

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	R="$WS_BIN/wsync-replicate"
	ws_need wsync-replicate
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v curl >/dev/null || fail "these tests need curl"
	command -v python3 >/dev/null || fail "these tests need python3"
	sqlite3 pub.db "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT);
	    INSERT INTO users VALUES (1, 'ann', 'a@example.org'), (2, 'bob', NULL);"
	printf '%s users=write\n%s users=read\n%s prices=write\n' "$WRITER" "$READER" \
	    "$OTHER" >tokens
	chmod 600 tokens
}

teardown() {
	proc_teardown
}

# start_pub NAME ARG...: wsync-replicate publish ARG...; $ADDR is where.
start_pub() {
	local name=$1
	shift
	spawn "$name" "$R" publish -d pub.db -t users "$@"
	PUB_PID=$PID
	wait_lines "$T/$name.err" 1 '^wsync-replicate: listening on '
	ADDR=$(sed -n 's/^wsync-replicate: listening on //p' "$T/$name.err" | head -n 1)
}

# post [CURL-ARG...] BODY: POST BODY to the publisher; prints the body,
# then the status on a line of its own.
post() {
	local body=${*: -1}
	curl -sS -w '%{http_code}\n' "${@:1:$#-1}" --data-binary "$body" "http://$ADDR/replicate"
}

rows() {
	sqlite3 pub.db 'SELECT id, name, email FROM users ORDER BY id'
}

BEFORE='1|ann|a@example.org
2|bob|'

@test "anonymous HTTP clients may read, never write" {
	start_pub pub -c name:update -c email --add --del --http 127.0.0.1:0
	# Reading is as before.
	run post '{"mt":"ReplicateStart","guid":null,"usn":0}'
	assert_success
	assert_equal "$(jq -sc '[.[0].mt, .[0].count, .[1]]' <<<"$output")" '["ReplicateStartResult",2,200]'
	local sid
	sid=$(head -n 1 <<<"$output" | jq -r .session)
	# Each right asked for is refused in ReplicateStartResult.
	local right refused
	for right in add:'"add":true' del:'"del":true' update:'"columns":[{"name":"name","update":true}]'; do
		refused=${right%%:*}
		run post "{\"mt\":\"ReplicateStart\",\"guid\":null,\"usn\":0,${right#*:}}"
		assert_success
		assert_equal "$(head -n 1 <<<"$output" | jq -c '[.refused, .error]')" \
		    "[\"$refused\",\"an anonymous HTTP client may only read table 'users': send a token with the right to write\"]"
	done
	# A change sent in a read session is refused, each kind.
	run post -H "Wsync-Session: $sid" '{"mt":"ReplicateAdd","id":1,"columns":{"id":3,"name":"eve"}}
{"mt":"ReplicateUpdate","id":2,"key":{"id":1},"columns":{"name":"mallory"}}
{"mt":"ReplicateDel","id":3,"key":{"id":2}}'
	assert_success
	assert_equal "$(jq -sc '.[0:3] | map([.mt, .id, .error])' <<<"$(sed '$d' <<<"$output")")" \
	    '[["ReplicateAddResult",1,"an anonymous HTTP client may only read"],["ReplicateUpdateResult",2,"an anonymous HTTP client may only read"],["ReplicateDelResult",3,"an anonymous HTTP client may only read"]]'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	# pull asking for a right exits 77.
	run --separate-stderr "$R" pull "http://$ADDR/" -d rep.db -t users --add
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: an anonymous HTTP client may only read table 'users': send a token with the right to write"
	assert_equal "$(rows)" "$BEFORE"
}

@test "with --http-tokens every request needs a good token; writes need the right" {
	start_pub pub -c name:update -c email --add --del --http 127.0.0.1:0 --http-tokens tokens
	local msg
	run curl -sS -D headers -w '%{http_code}\n' --data-binary \
	    '{"mt":"ReplicateStart","guid":null,"usn":0}' "http://$ADDR/replicate"
	assert_output '{"mt":"ReplicateError","error":"this publisher takes HTTP requests with a token only: send Authorization: Bearer TOKEN"}
401'
	grep -qi '^www-authenticate: Bearer realm="wsync-replicate"' headers ||
	    fail "no WWW-Authenticate: $(cat headers)"
	# An unknown token, a malformed one, one without rights on the table.
	run post -H "Authorization: Bearer ${WRITER}x" '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}'
	assert_output '{"mt":"ReplicateError","error":"unknown token"}
401'
	run post -H "Authorization: Bearer short" '{"mt":"ReplicateStart","guid":null,"usn":0}'
	assert_output '{"mt":"ReplicateError","error":"bad Authorization: want Bearer and a token of 16 to 256 characters"}
400'
	run post -H "Authorization: Bearer $OTHER" '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}'
	assert_output "{\"mt\":\"ReplicateError\",\"error\":\"this token has no rights on table 'users'\"}
403"
	# A read-only token may not write.
	run post -H "Authorization: Bearer $READER" '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}'
	assert_equal "$(head -n 1 <<<"$output" | jq -c '[.refused, .error]')" \
	    "[\"add\",\"this token may only read table 'users': it cannot send changes\"]"
	assert_equal "$(rows)" "$BEFORE"
	# The writer's may; pull sends it from a file.
	printf '%s\n' "$WRITER" >writer.tok
	chmod 600 writer.tok
	run --separate-stderr "$R" pull "http://$ADDR/" -d rep.db -t users -c name:update -c email \
	    --add --http-token writer.tok
	assert_success
	sqlite3 rep.db "INSERT INTO users VALUES (3, 'cy', NULL); UPDATE users SET name = 'Ann' WHERE id = 1"
	run --separate-stderr "$R" pull "http://$ADDR/" -d rep.db -t users -c name:update -c email \
	    --add --http-token writer.tok
	assert_success
	assert_equal "$(rows)" '1|Ann|a@example.org
2|bob|
3|cy|'
	# No token ever reaches the log.
	! grep -q -e "$WRITER" -e "$READER" -e "$OTHER" -e short pub.err ||
	    fail "a token in the log: $(cat pub.err)"
	grep -qx "wsync-replicate: HTTP 127.0.0.1: 401: unknown token" pub.err ||
	    fail "the refusal is not logged: $(cat pub.err)"
}

@test "tokens files and token files others may read are refused" {
	chmod 640 tokens
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --http-tokens tokens
	assert_failure 77
	assert_stderr "wsync-replicate: tokens file 'tokens' is accessible by others (mode 0640): it must be 0600 (chmod 600 'tokens')"
	printf 'too-short users=write\n' >bad
	chmod 600 bad
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --http-tokens bad
	assert_failure 78
	assert_stderr "wsync-replicate: bad:1: not a token (want 16 to 256 characters of A-Z a-z 0-9 - . _ ~ + /)"
	printf '%s\n' "$WRITER" >writer.tok
	chmod 604 writer.tok
	run --separate-stderr "$R" pull "http://127.0.0.1:1/" -d rep.db -t users --http-token writer.tok
	assert_failure 77
	assert_stderr "wsync-replicate: token file 'writer.tok' is accessible by others (mode 0604): it must be 0600 (chmod 600 'writer.tok')"
	chmod 600 writer.tok
	# A token never crosses the network in clear.
	run --separate-stderr "$R" pull "http://example.invalid:8080/" -d rep.db -t users \
	    --http-token writer.tok
	assert_failure 78
	assert_stderr "wsync-replicate: a token would cross the network in clear: use an https:// URL"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --http-token writer.tok
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --http-token goes with an http:// or https:// SOURCE"
	[ ! -e rep.db ] || fail "a configuration error created rep.db"
}

@test "bodies past --http-max-body, and bodies without a length, are refused unread" {
	start_pub pub -c name:update --add --http 127.0.0.1:0 --http-tokens tokens --http-max-body 1024
	local auth="Authorization: Bearer $WRITER" big
	big=$(printf '{"mt":"ReplicateStart","guid":null,"usn":0,"pad":"%02000d"}' 0)
	run post -H "$auth" "$big"
	assert_output '{"mt":"ReplicateError","error":"a request body longer than 1024 bytes"}
413'
	# Chunked: no length to check first.
	run curl -sS -w '%{http_code}\n' -H "$auth" -H 'Transfer-Encoding: chunked' \
	    --data-binary '{"mt":"ReplicateStart","guid":null,"usn":0}' "http://$ADDR/"
	assert_output '{"mt":"ReplicateError","error":"send a Content-Length"}
411'
	# A head announcing a huge body, never sent: refused from the head.
	run python3 "$RAW" send "$ADDR" < <(printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{')
	assert_output 'HTTP/1.1 413 Content Too Large
{"mt":"ReplicateError","error":"a request body longer than 1024 bytes"}'
	# Bare LF line ends are no way around the token.
	run python3 "$RAW" send "$ADDR" < <(printf 'POST / HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}')
	assert_output 'HTTP/1.1 401 Unauthorized
{"mt":"ReplicateError","error":"this publisher takes HTTP requests with a token only: send Authorization: Bearer TOKEN"}'
	# A head larger than a connection's memory.
	run python3 "$RAW" send "$ADDR" < <(printf 'POST / HTTP/1.1\r\nHost: x\r\nX-Pad: %070000d\r\nContent-Length: 2\r\n\r\n{}' 0)
	assert_line --index 0 --regexp '^(HTTP/1.1 431 |\(closed\))'
	assert_equal "$(rows)" "$BEFORE"
	# A body within the bound still goes through.
	run post -H "$auth" '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	assert_equal "$(head -n 1 <<<"$output" | jq -r .mt)" ReplicateStartResult
	run "$R" publish -d pub.db -t users --http 127.0.0.1:0 --http-max-body 100
	assert_failure 64
	assert_output "wsync-replicate: bad --http-max-body '100': want 1024 to 1073741824 bytes"
}

@test "a slow or half-sent head times out, and others are served meanwhile" {
	start_pub pub --http 127.0.0.1:0 --http-timeout 2
	spawn slow python3 "$RAW" half "$ADDR" 15
	spawn slow2 python3 "$RAW" half "$ADDR" 15
	sleep 0.5
	local t0=$SECONDS
	run post '{"mt":"ReplicateStart","guid":null,"usn":0}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	[ $((SECONDS - t0)) -le 1 ] || fail "the publisher waited on the slow clients"
	wait_lines "$T/slow.out" 1 '^closed after [0-9]+ s$'
	wait_lines "$T/slow2.out" 1 '^closed after [0-9]+ s$'
	local s
	s=$(sed -n 's/^closed after \([0-9]*\) s$/\1/p' slow.out)
	[ "$s" -ge 1 ] && [ "$s" -le 5 ] || fail "closed after $s s, not about 2"
	run post '{"mt":"ReplicateStart","guid":null,"usn":0}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
}

@test "a long poll outlives --http-timeout and answers when a change comes" {
	start_pub pub --http 127.0.0.1:0 --http-timeout 1
	local sid
	sid=$(post '{"mt":"ReplicateStart","guid":null,"usn":0}' | head -n 1 | jq -r .session)
	run post -H "Wsync-Session: $sid" '{"mt":"ReplicateNext","max":100}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	run post -H "Wsync-Session: $sid" '{"mt":"ReplicateNext","max":100}'
	assert_equal "$(sed '$d' <<<"$output" | jq -r .mt | tr '\n' ' ')" "ReplicateNextResult ReplicateSync "
	spawn late sh -c "sleep 3; sqlite3 pub.db \"UPDATE users SET name = 'late' WHERE id = 2\""
	run post -H "Wsync-Session: $sid" -H 'Wsync-Wait: 10' '{"mt":"ReplicateSyncResult"}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	assert_equal "$(sed '$d' <<<"$output" | jq -c 'select(.mt == "ReplicateUpdate") | .columns')" \
	    '{"name":"late"}'
}

@test "plain HTTP beyond loopback is refused unless --insecure; HTTPS may" {
	run --separate-stderr "$R" publish -d pub.db -t users --http 0.0.0.0:0
	assert_failure 78
	assert_stderr "wsync-replicate: plain HTTP on 0.0.0.0:0 would be reachable from other hosts: serve HTTPS (--tls-cert and --tls-key), listen on loopback, or give --insecure"
	# Refused before the database was touched.
	assert_equal "$(sqlite3 pub.db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'wsync%'")" 0
	start_pub insecure --http 0.0.0.0:0 --insecure
	run post '{"mt":"ReplicateStart","guid":null,"usn":0}'
	assert_equal "$(tail -n 1 <<<"$output")" 200
	command -v openssl >/dev/null || fail "this test needs the openssl CLI"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
	    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
	chmod 600 key.pem
	start_pub tls --http 0.0.0.0:0 --tls-cert cert.pem --tls-key key.pem
	run curl -sS --cacert cert.pem -w '%{http_code}\n' --data-binary \
	    '{"mt":"ReplicateStart","guid":null,"usn":0}' "https://localhost:${ADDR##*:}/"
	assert_equal "$(tail -n 1 <<<"$output")" 200
}

@test "a hostile publisher's column types cannot run SQL in the replica" {
	# The types go into CREATE TABLE and ALTER TABLE: only SQLite's
	# type-name form passes, anything else ends the pull before a change.
	local pub="$R publish --stdio -q -d pub.db -t users" evil
	for evil in 'TEXT); CREATE TABLE pwned(x); --' 'TEXT DEFAULT (1)' 'TEXT CHECK(1)' \
	    'TEXT;' 'VARCHAR(10) NOT NULL' '(1)' 'INT(1) COLLATE(2)'; do
		rm -f rep.db
		run --separate-stderr "$R" pull "exec:$pub | sed -u 's/\"type\":\"TEXT\"/\"type\":\"$evil\"/'" \
		    -d rep.db -t users
		assert_failure 65
		assert_stderr "wsync-replicate: ReplicateStartResult gives column 'name' a type that is not an SQL type name"
		assert_equal "$(sqlite3 rep.db "SELECT count(*) FROM sqlite_schema WHERE name IN ('users', 'pwned')")" 0
	done
	# Type names SQLite takes still pass, with their sizes.
	for evil in 'VARCHAR(10)' 'DECIMAL(10, 2)' 'UNSIGNED BIG INT' 'NUMERIC(-1,+5)' ''; do
		rm -f rep.db
		run --separate-stderr "$R" pull "exec:$pub | sed -u 's/\"type\":\"TEXT\"/\"type\":\"$evil\"/'" \
		    -d rep.db -t users
		assert_success
		assert_equal "$(sqlite3 rep.db 'SELECT id, name FROM users ORDER BY id')" '1|ann
2|bob'
	done
	assert_equal "$(sqlite3 rep.db "SELECT type FROM pragma_table_info('users') WHERE name = 'name'")" ''
}

@test "a hostile publisher's column names cannot split the replica's SQL" {
	# A name is quoted; when the table is there, its ADD COLUMNs run one
	# by one, never split at a ';' inside a quoted name.
	sqlite3 rep.db "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
	    CREATE TABLE keep(x); INSERT INTO keep VALUES(1)"
	local pub="$R publish --stdio -q -d pub.db -t users"
	run --separate-stderr "$R" pull "exec:$pub | sed -u 's/\"name\":\"email\"/\"name\":\"e;DROP TABLE keep;--\"/'" \
	    -d rep.db -t users
	assert_equal "$(sqlite3 rep.db 'SELECT x FROM keep')" 1
	assert_equal "$(sqlite3 rep.db 'PRAGMA integrity_check')" ok
}
