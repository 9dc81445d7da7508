#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 50-replicate.bats - wsync-replicate publish and pull as real processes:
# a full replication then an incremental resume; a guid change forcing a
# full replication that removes stale rows; refused rights (exit 77);
# column mapping and update rights; the two-phase delete; --events read
# with jq; the HTTP mapping through pull and through curl, with tokens,
# and natively over HTTPS; a run killed
# mid-transfer; stdio and exec: transports; array columns; follow mode.
#
# Every test starts its own publisher in a fresh $BATS_TEST_TMPDIR and
# every process a test starts in the background is killed in teardown.

bats_require_minimum_version 1.5.0
load helper

WAIT_S=${WAIT_S:-10}

setup() {
	T=$BATS_TEST_TMPDIR
	cd "$T"
	: >"$T/pids"
	R="$WS_BIN/wsync-replicate"
	ws_need wsync-replicate
	command -v sqlite3 >/dev/null || fail "these tests need the sqlite3 CLI"
	command -v jq >/dev/null || fail "these tests need jq"
}

teardown() {
	proc_teardown
}

# make_pub FILE N: a users table of N rows (id, name, email, tags).
make_pub() {
	sqlite3 "$1" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL,
	    email TEXT, tags TEXT);
	    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $2)
	    INSERT INTO users SELECT i, 'user' || i, 'u' || i || '@example.org',
	    json_array(json_object('tag', 't' || i, 'n', i)) FROM c;"
}

# start_pub NAME ARG...: wsync-replicate publish ARG... as NAME; waits for
# its "listening on" lines and sets $ADDR to the first address.
start_pub() {
	local name=$1 n=0 a
	shift
	for a in "$@"; do
		[ "$a" = -l ] || [ "$a" = --http ] && n=$((n + 1))
	done
	spawn "$name" "$R" publish "$@"
	PUB_PID=$PID
	wait_lines "$T/$name.err" "$n" '^wsync-replicate: listening on '
	ADDR=$(sed -n 's/^wsync-replicate: listening on //p' "$T/$name.err" | head -n 1)
}

# rows DB QUERY: the query's output, for comparisons.
rows() {
	sqlite3 "$1" "$2"
}

# assert_same_rows PUBDB REPDB TABLE COLS: the replica holds exactly the
# publisher's rows of those columns.
assert_same_rows() {
	assert_equal "$(rows "$2" "SELECT $4 FROM $3 ORDER BY id")" \
	    "$(rows "$1" "SELECT $4 FROM users ORDER BY id")"
}

assert_intact() {
	assert_equal "$(sqlite3 "$1" 'PRAGMA integrity_check')" ok
}

@test "a full replication, then an incremental resume" {
	make_pub pub.db 500
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --events
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
	assert_equal "$(jq -r 'select(.event == "started") | .full' <<<"$output")" true
	assert_equal "$(jq -r 'select(.event == "added")' <<<"$output" | jq -s length)" 500
	# The replicator keeps the publisher's guid and usn.
	local guid usn
	guid=$(jq -r 'select(.event == "started") | .guid' <<<"$output")
	[[ "$guid" =~ ^[0-9a-f]{32}$ ]] || fail "bad guid '$guid'"
	assert_equal "$(rows rep.db "SELECT guid, usn FROM wsync_replica WHERE local_table = 'users'")" \
	    "$guid|$(jq -r 'select(.event == "initialized") | .usn' <<<"$output")"
	usn=$(rows rep.db "SELECT usn FROM wsync_replica")
	# Newer changes only, from that usn.
	sqlite3 pub.db "UPDATE users SET name = 'renamed' WHERE id = 10;
	    DELETE FROM users WHERE id = 20; INSERT INTO users VALUES (501, 'n', NULL, NULL);"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --events
	assert_success
	assert_equal "$(jq -c 'select(.event == "started") | [.full, .usn]' <<<"$output")" \
	    "[false,$usn]"
	assert_equal "$(jq -c 'select(.event | test("added|updated|deleted|removed")) |
	    [.event, .key.id, .columns]' <<<"$output")" \
	    '["updated",10,["name"]]
["deleted",20,null]
["added",501,null]
["removed",20,null]'
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
	[ "$(rows rep.db "SELECT usn FROM wsync_replica")" -gt "$usn" ] ||
	    fail "the usn did not move on"
	# Nothing new: nothing transferred, still exit 0.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --events
	assert_success
	assert_equal "$(jq -r .event <<<"$output" | tr '\n' ' ')" "started initialized closed "
	assert_intact rep.db
}

@test "a guid change forces a full replication and stale rows are removed" {
	make_pub pub.db 50
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run "$R" pull "unix:$T/s" -d rep.db -t users
	assert_success
	kill "$PUB_PID"
	reap "$PUB_PID"
	# Another database under the same name: another guid.
	rm -f pub.db
	make_pub pub.db 30
	sqlite3 pub.db "UPDATE users SET name = 'other' WHERE id = 3"
	start_pub pub2 -d pub.db -t users -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --events
	assert_success
	assert_equal "$(jq -r 'select(.event == "started") | .full' <<<"$output")" true
	assert_equal "$(jq -s '[.[] | select(.event == "removed") | .key.id] | sort' <<<"$output" |
	    jq -c .)" "$(seq 31 50 | jq -s -c .)"
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_full')" 0
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_deleted')" 0
	assert_equal "$(rows rep.db 'SELECT guid FROM wsync_replica')" \
	    "$(jq -r 'select(.event == "started") | .guid' <<<"$output")"
}

@test "requested rights the publisher does not grant are refused with exit 77" {
	make_pub pub.db 5
	start_pub pub -d pub.db -t users -c name:update -c email -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --add
	assert_failure 77
	assert_output ''
	assert_stderr "wsync-replicate: the publisher refused: the right to add rows is not granted"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --del
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: the right to delete rows is not granted"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c email:update
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: column 'email' may not be updated"
	# A column it does not publish is bad data, not a right.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c tags
	assert_failure 65
	assert_stderr "wsync-replicate: the publisher refused: no published column 'tags'"
	# Replication did not start: no table, no state, not even the file
	# these runs would have made.
	[ ! -e rep.db ] || fail "refused runs left rep.db: $(rows rep.db .schema)"
	# In a database that was there: no table, no state.
	sqlite3 rep.db 'CREATE TABLE other(x)'
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --add
	assert_failure 77
	assert_equal "$(rows rep.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica')" 0
	# Granted rights are accepted.
	run "$R" pull "unix:$T/s" -d rep.db -t users -c name:update
	assert_success
}

@test "column mapping and update rights" {
	make_pub pub.db 20
	start_pub pub -d pub.db -t users -c name=full_name:update -c email=mail -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t people \
	    -c full_name=nm:update -c mail
	assert_success
	# Only the mapped columns, under local names; the key comes along.
	assert_equal "$(rows rep.db "SELECT group_concat(name, ',') FROM pragma_table_info('people')")" \
	    "id,nm,mail"
	assert_equal "$(rows rep.db 'SELECT id, nm, mail FROM people ORDER BY id')" \
	    "$(rows pub.db 'SELECT id, name, email FROM users ORDER BY id')"
	# A local update of an updatable column goes up; of another one, not.
	sqlite3 rep.db "UPDATE people SET nm = 'from replica' WHERE id = 4;
	    UPDATE people SET mail = 'local only' WHERE id = 5"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t people -c full_name=nm:update -c mail
	assert_success
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 4')" "from replica"
	assert_equal "$(rows pub.db 'SELECT email FROM users WHERE id = 5')" "u5@example.org"
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_out')" 0
	# The publisher's own change of a mapped column arrives under the local name.
	sqlite3 pub.db "UPDATE users SET email = 'new@example.org' WHERE id = 6"
	run "$R" pull "unix:$T/s" -d rep.db -t people -c full_name=nm:update -c mail
	assert_success
	assert_equal "$(rows rep.db 'SELECT mail FROM people WHERE id = 6')" "new@example.org"
}

@test "a two-phase delete: deleted, confirmed, then removed" {
	make_pub pub.db 10
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run "$R" pull "unix:$T/s" -d rep.db -t users
	assert_success
	sqlite3 pub.db "DELETE FROM users WHERE id IN (3, 4)"
	# Held: the rows stay, marked deleted, until the application confirms.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --hold-deletes --events
	assert_success
	assert_equal "$(jq -c 'select(.event == "deleted") | .key.id' <<<"$output" | sort)" "3
4"
	assert_equal "$(rows rep.db 'SELECT count(*) FROM users')" 10
	assert_equal "$(rows rep.db 'SELECT k, state FROM wsync_replica_deleted ORDER BY k')" \
	    '[3]|deleted
[4]|deleted'
	sqlite3 rep.db "UPDATE wsync_replica_deleted SET state = 'confirmed' WHERE k = '[3]'"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --hold-deletes --events
	assert_success
	assert_equal "$(jq -c 'select(.event == "removed") | .key.id' <<<"$output")" 3
	assert_equal "$(rows rep.db 'SELECT id FROM users WHERE id IN (3, 4)')" 4
	assert_equal "$(rows rep.db 'SELECT k, state FROM wsync_replica_deleted')" '[4]|deleted'
	# An --exec handler that fails does not confirm; one that succeeds does.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --exec 'exit 1'
	assert_success
	assert_stderr "wsync-replicate: --exec for event 'started' failed
wsync-replicate: --exec for event 'deleted' failed
wsync-replicate: --exec for event 'initialized' failed
wsync-replicate: --exec for event 'closed' failed"
	assert_equal "$(rows rep.db 'SELECT id FROM users WHERE id = 4')" 4
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users \
	    --exec 'printf "%s %s\n" "$WSYNC_EVENT" "$(cat)" >>exec.log'
	assert_success
	assert_equal "$(rows rep.db 'SELECT count(*) FROM users WHERE id IN (3, 4)')" 0
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_deleted')" 0
	assert_equal "$(cut -d' ' -f1 exec.log | tr '\n' ' ')" "started deleted removed initialized closed "
	assert_equal "$(grep '^deleted ' exec.log | cut -d' ' -f2- | jq -c '[.table, .key]')" \
	    '["users",{"id":4}]'
	assert_same_rows pub.db rep.db users 'id, name'
}

# cpu_ticks PID: the user and system time PID has used, in clock ticks
# (fields 14 and 15 of /proc/PID/stat, counted after the command name).
cpu_ticks() {
	local s
	s=$(cat "/proc/$1/stat") || fail "no process $1"
	s=${s##*) }
	awk '{ print $12 + $13 }' <<<"$s"
}

@test "--follow --hold-deletes: a held delete waits asleep and holds no lock" {
	make_pub pub.db 10
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	spawn rep "$R" pull "unix:$T/s" -d rep.db -t users -f --hold-deletes -e
	local rep=$PID t0 t1 i failed=0
	wait_lines "$T/rep.out" 1 '"event":"initialized"'
	sqlite3 pub.db "DELETE FROM users WHERE id = 3"
	wait_lines "$T/rep.out" 1 '"event":"deleted"'
	# While the delete waits for the application, the replicator sleeps
	# and the application can read at any time.  The CLI itself, not the
	# helper: plain sqlite3 sets no busy timeout, so any lock held by the
	# replicator fails the read at once.
	t0=$(cpu_ticks "$rep")
	for ((i = 0; i < 20; i++)); do
		command sqlite3 rep.db 'SELECT count(*) FROM wsync_replica_deleted' \
		    >/dev/null 2>&1 || failed=$((failed + 1))
		sleep 0.15
	done
	t1=$(cpu_ticks "$rep")
	assert_equal "$failed of 20 reads failed" "0 of 20 reads failed"
	[ $((t1 - t0)) -lt 20 ] ||
	    fail "the replicator used $((t1 - t0)) clock ticks in 3 s while waiting"
	# The confirmation still ends the wait.
	sqlite3 rep.db "UPDATE wsync_replica_deleted SET state = 'confirmed'"
	wait_lines "$T/rep.out" 1 '"event":"removed"'
	assert_equal "$(rows rep.db 'SELECT count(*) FROM users WHERE id = 3')" 0
	kill -TERM "$rep"
	reap "$rep"
	assert_equal "$REAPED" 0
}

@test "--events prints one JSON line per event" {
	make_pub pub.db 3
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -e
	assert_success
	assert_equal "$(jq -c '[.event, .table, .key.id]' <<<"$output" | tr '\n' ' ')" \
	    '["started","users",null] ["added","users",1] ["added","users",2] ["added","users",3] ["initialized","users",null] ["closed","users",null] '
	assert_equal "$(jq -c 'select(.event == "initialized") | [.rows, .full]' <<<"$output")" '[3,true]'
	sqlite3 pub.db "UPDATE users SET name = 'x', email = 'y' WHERE id = 2"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -e
	assert_success
	assert_equal "$(jq -c 'select(.event == "updated") | [.key.id, (.columns | sort)]' <<<"$output")" \
	    '[2,["email","name"]]'
	# Every line is a JSON object with an event name.
	jq -e 'type == "object" and (.event | type == "string")' <<<"$output" >/dev/null
}

# tokens: a tokens file (tokens) with a writer's and a reader's token, and
# the writer's token alone in writer.tok, as pull --http-token reads it.
WRITER=till-0123456789abcdef-writer
READER=till-0123456789abcdef-reader
tokens() {
	printf '%s users=write  # the till\n%s *=read\n' "$WRITER" "$READER" >tokens
	printf '%s\n' "$WRITER" >writer.tok
	chmod 600 tokens writer.tok
}

@test "HTTP: pull against publish --http, and curl speaking the mapping" {
	make_pub pub.db 120
	tokens
	start_pub pub -d pub.db -t users -c name:update -c email --http 127.0.0.1:0 \
	    --http-tokens tokens
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d rep.db -t users --batch 7 \
	    -c name:update -c email --http-token writer.tok
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db rep.db users 'id, name, email'
	sqlite3 pub.db "UPDATE users SET email = 'http@example.org' WHERE id = 1"
	sqlite3 rep.db "UPDATE users SET name = 'up by http' WHERE id = 2"
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d rep.db -t users -c name:update \
	    -c email --http-token writer.tok
	assert_success
	assert_equal "$(rows rep.db 'SELECT email FROM users WHERE id = 1')" http@example.org
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 2')" "up by http"
	# curl: start, one row in the one-row form, a page, a refusal.
	local auth="Authorization: Bearer $READER"
	run curl -sS -D headers -H "$auth" -H 'Content-Type: application/x-ndjson' --data-binary \
	    '{"mt":"ReplicateStart","guid":null,"usn":0,"columns":["name"]}' "http://$ADDR/replicate"
	assert_success
	assert_equal "$(jq -c '[.mt, .full, .count, [.columns[].name]]' <<<"$output")" \
	    '["ReplicateStartResult",true,120,["id","name"]]'
	local sid
	sid=$(jq -r .session <<<"$output")
	grep -qi "^wsync-session: $sid" headers || fail "no Wsync-Session header: $(cat headers)"
	run curl -sS -H "$auth" -H "Wsync-Session: $sid" --data-binary '{"mt":"ReplicateNext"}' \
	    "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"mt":"ReplicateNextResult","columns":{"id":1,"name":"user1"}}'
	run curl -sS -H "$auth" -H "Wsync-Session: $sid" --data-binary '{"mt":"ReplicateNext","max":3}' \
	    "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c '[.rows[].id]' <<<"$output")" '[2,3,4]'
	# The session is the reader's: another token may not use it.
	run curl -sS -w ' %{http_code}' -H "Authorization: Bearer $WRITER" -H "Wsync-Session: $sid" \
	    --data-binary '{"mt":"ReplicateNext"}' "http://$ADDR/"
	assert_output "{\"mt\":\"ReplicateError\",\"error\":\"session $sid was started with another token\"}
 403"
	run curl -sS -o /dev/null -w '%{http_code}' -H "$auth" -H "Wsync-Session: nosuch" \
	    --data-binary '{"mt":"ReplicateNext"}' "http://$ADDR/"
	assert_output 404
	run curl -sS -o /dev/null -w '%{http_code}' -H "$auth" "http://$ADDR/"
	assert_output 405
	run curl -sS -H "Authorization: Bearer $WRITER" \
	    --data-binary '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}' "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c '[.mt, .refused, .error]' <<<"$output")" \
	    '["ReplicateStartResult","add","the right to add rows is not granted"]'
	# The reader's token may only read.
	(umask 077 && echo "$READER" >reader.tok)
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d reader.db -t users -c name:update \
	    --http-token reader.tok
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: this token may only read table 'users': it cannot send changes"
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d reader.db -t users -c name \
	    --http-token reader.tok
	assert_success
	assert_same_rows pub.db reader.db users 'id, name'
}

@test "a run killed mid-transfer, then a run that completes" {
	make_pub pub.db 3000
	# The relay passes N of the publisher's messages, gives the replicator
	# time to apply them, then kills it ($PPID: the replicator runs exec:).
	cat >relay.sh <<'EOF'
n=0
while IFS= read -r line; do
	printf '%s\n' "$line"
	n=$((n + 1))
	if [ "$n" -ge "$1" ]; then
		sleep 1
		kill -9 "$2"
		exit 0
	fi
done
EOF
	run "$R" pull "exec:$R publish --stdio -q -d pub.db -t users | sh relay.sh 4 \$PPID" \
	    -d rep.db -t users --batch 500
	assert_failure 137
	assert_intact rep.db
	local got
	got=$(rows rep.db 'SELECT count(*) FROM users')
	[ "$got" -gt 0 ] && [ "$got" -lt 3000 ] || fail "the run was not cut mid-transfer: $got rows"
	# Unfinished: no guid, so the next run replicates in full.
	assert_equal "$(rows rep.db 'SELECT guid IS NULL FROM wsync_replica')" 1
	sqlite3 pub.db "DELETE FROM users WHERE id <= 100; UPDATE users SET name = 'late' WHERE id = 2999"
	run --separate-stderr "$R" pull "exec:$R publish --stdio -q -d pub.db -t users" -d rep.db -t users
	assert_success
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
	# Killed in an incremental run: it resumes from the last usn it committed.
	sqlite3 pub.db "UPDATE users SET name = 'inc' || id WHERE id % 2 = 0"
	run "$R" pull "exec:$R publish --stdio -q -d pub.db -t users | sh relay.sh 6 \$PPID" \
	    -d rep.db -t users
	assert_failure 137
	assert_intact rep.db
	assert_equal "$(rows rep.db "SELECT count(*) FROM users WHERE name LIKE 'inc%'")" 4
	run "$R" pull "exec:$R publish --stdio -q -d pub.db -t users" -d rep.db -t users
	assert_success
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
}

@test "stream transports: TCP and exec:" {
	make_pub pub.db 40
	start_pub pub -d pub.db -t users -l 127.0.0.1:0 --insecure
	run "$R" pull "$ADDR" -d tcp.db -t users --insecure
	assert_success
	assert_same_rows pub.db tcp.db users 'id, name'
	run "$R" pull "exec:$R publish --stdio -d pub.db -t users" -d exec.db -t users -q
	assert_success
	assert_same_rows pub.db exec.db users 'id, name'
}

@test "an array column is replicated into a child table" {
	make_pub pub.db 4
	sqlite3 pub.db "UPDATE users SET tags = '[{\"tag\":\"a\",\"n\":1},{\"tag\":\"b\",\"extra\":true}]' WHERE id = 2"
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --array tags=user_tags:user_id
	assert_success
	assert_equal "$(rows rep.db "SELECT group_concat(name, ',') FROM pragma_table_info('users')")" \
	    "id,name,email"
	assert_equal "$(rows rep.db 'SELECT user_id, tag, n, extra FROM user_tags ORDER BY user_id, tag')" \
	    '1|t1|1|
2|a|1|
2|b||1
3|t3|3|
4|t4|4|'
	sqlite3 pub.db "UPDATE users SET tags = '[]' WHERE id = 2; DELETE FROM users WHERE id = 3"
	run "$R" pull "unix:$T/s" -d rep.db -t users --array tags=user_tags:user_id
	assert_success
	assert_equal "$(rows rep.db 'SELECT user_id FROM user_tags ORDER BY user_id' | tr '\n' ' ')" "1 4 "
}

@test "--follow applies the publisher's changes live" {
	make_pub pub.db 5
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	spawn rep "$R" pull "unix:$T/s" -d rep.db -t users -f -e
	wait_lines "$T/rep.out" 1 '"event":"initialized"'
	sqlite3 pub.db "INSERT INTO users VALUES (6, 'live', NULL, NULL)"
	wait_lines "$T/rep.out" 1 '"event":"added".*"id":6'
	assert_equal "$(rows rep.db 'SELECT name FROM users WHERE id = 6')" live
	kill -TERM "$PID"
	reap "$PID"
	assert_equal "$REAPED" 0
	assert_equal "$(tail -n 1 "$T/rep.out" | jq -r .event)" closed
}

@test "--follow before the publisher is up: waiting events, then it connects" {
	make_pub pub.db 3
	spawn rep "$R" pull "unix:$T/s" -d rep.db -t users -f -e -q
	local rep=$PID
	wait_lines "$T/rep.out" 2 '"event":"waiting"'
	jq -e --arg src "unix:$T/s" 'select(.event == "waiting") | .table == "users" and
	    .source == $src and (.error | test("cannot connect")) and .retry_ms >= 250' \
	    "$T/rep.out" >/dev/null || fail "bad waiting events: $(cat "$T/rep.out")"
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	wait_lines "$T/rep.out" 1 '"event":"initialized"'
	assert_same_rows pub.db rep.db users 'id, name'
	assert_equal "$(jq -r .event "$T/rep.out" | uniq | tr '\n' ' ')" \
	    "waiting started added initialized "
	kill -TERM "$rep"
	reap "$rep"
	assert_equal "$REAPED" 0
}

@test "usage errors exit 64" {
	run --separate-stderr "$R"
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: missing verb: publish or pull"
	run --separate-stderr "$R" push -d a.db -t x
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: unknown verb 'push': want publish or pull"
	run --separate-stderr "$R" pull x:1 -t x
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: missing --db FILE"
	run --separate-stderr "$R" publish -d a.db -t x
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: nothing to serve: give -l ADDR, --http ADDR or --stdio"
	run --separate-stderr "$R" pull -d a.db -t x
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: missing SOURCE"
	run --separate-stderr "$R" pull x:1 -d a.db -t x -c 'a:write'
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: bad column 'a:write': want NAME[=OTHER][:update]"
	run --separate-stderr "$R" pull x:1 -d a.db -t x --array nope
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: bad array 'nope': want REMOTE=CHILD:REF"
	run --separate-stderr "$R" publish -d a.db -t x --stdio -f
	assert_failure 64
	[ ! -e a.db ] || fail "a usage error created a.db"
}

@test "a missing publisher exits 69; a missing table exits 66" {
	make_pub pub.db 1
	run --separate-stderr "$R" pull "unix:$T/nobody" -d rep.db -t users
	assert_failure 69
	assert_stderr_line 0 "wsync-replicate: cannot connect to 'unix:$T/nobody': no such file or directory"
	run --separate-stderr "$R" publish -d pub.db -t nosuch --stdio </dev/null
	assert_failure 66
	assert_stderr "wsync-replicate: no table 'nosuch' in 'pub.db'"
	run --separate-stderr "$R" publish -d nosuch.db -t users --stdio </dev/null
	assert_failure 66
	assert_stderr "wsync-replicate: cannot open 'nosuch.db': no such file or directory"
	# Runs that failed before doing any work leave no new file, and no
	# empty database bound to no publisher.
	[ ! -e nosuch.db ] || fail "a failed publish created nosuch.db"
	[ ! -e rep.db ] || fail "a pull that could not connect created rep.db"
	# A database that was there stays, with its tables.
	sqlite3 mine.db 'CREATE TABLE notes(x); INSERT INTO notes VALUES (1)'
	run --separate-stderr "$R" pull "unix:$T/nobody" -d mine.db -t users
	assert_failure 69
	assert_equal "$(rows mine.db 'SELECT x FROM notes')" 1
}

@test "publish --compact: a replicator behind the collected log replicates in full" {
	make_pub pub.db 50
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run "$R" pull "unix:$T/s" -d behind.db -t users
	assert_success
	sqlite3 pub.db "UPDATE users SET name = 'changed' WHERE id = 5;
	    DELETE FROM users WHERE id IN (10, 11); INSERT INTO users VALUES (51, 'new', NULL, NULL)"
	# Another replicator is up to date when the log is collected.
	run "$R" pull "unix:$T/s" -d current.db -t users
	assert_success
	local usn
	usn=$(rows current.db 'SELECT usn FROM wsync_replica')
	[ "$(rows pub.db 'SELECT count(*) FROM wsync_log')" -gt 50 ] || fail "no log to collect"
	kill "$PUB_PID"
	reap "$PUB_PID"
	start_pub pub2 -d pub.db -t users --compact -l "unix:$T/s"
	assert_equal "$(grep -c '^wsync-replicate: compacted the change log: [0-9]* entries collected$' \
	    "$T/pub2.err")" 1
	# The log keeps only its newest usn, as a marker.
	assert_equal "$(rows pub.db 'SELECT count(*), max(usn) FROM wsync_log')" "1|$usn"
	run --separate-stderr "$R" pull "unix:$T/s" -d behind.db -t users --events
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -c 'select(.event == "started") | [.full, .count, .usn]' <<<"$output")" \
	    "[true,49,$usn]"
	assert_equal "$(jq -c 'select(.event | test("added|deleted|removed")) | [.event, .key.id]' \
	    <<<"$output" | sort | tr '\n' ' ')" \
	    '["added",51] ["deleted",10] ["deleted",11] ["removed",10] ["removed",11] '
	assert_equal "$(jq -c 'select(.event == "initialized") | [.full, .rows, .usn]' <<<"$output")" \
	    "[true,49,$usn]"
	assert_same_rows pub.db behind.db users 'id, name, email, tags'
	assert_equal "$(rows behind.db 'SELECT count(*) FROM wsync_replica_full')" 0
	assert_equal "$(rows behind.db 'SELECT usn FROM wsync_replica')" "$usn"
	# The one that was up to date goes on incrementally, and so does the
	# other one now; new changes still flow.
	sqlite3 pub.db "UPDATE users SET email = 'after@example.org' WHERE id = 7"
	for db in current.db behind.db; do
		run --separate-stderr "$R" pull "unix:$T/s" -d "$db" -t users --events
		assert_success
		assert_equal "$(jq -c 'select(.event == "started") | [.full, .usn]' <<<"$output")" \
		    "[false,$usn]"
		assert_equal "$(jq -c 'select(.event | test("added|updated|deleted")) |
		    [.event, .key.id, .columns]' <<<"$output")" '["updated",7,["email"]]'
		assert_same_rows pub.db "$db" users 'id, name, email, tags'
	done
	assert_intact pub.db
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users --compact
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: -l, --http, --stdio, --compact, --tls-cert, --tls-key, --http-tokens, --http-max-body and --http-timeout go with publish"
}

# tls_cert: a self-signed certificate for localhost and 127.0.0.1
# (cert.pem, key.pem), and another one (other.pem) that did not sign it.
tls_cert() {
	command -v openssl >/dev/null || fail "this test needs the openssl CLI"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
	    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -keyout other-key.pem -out other.pem -days 1 \
	    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null
	chmod 600 key.pem other-key.pem
}

@test "https: publish --tls-cert, pull with its CA in CURL_CA_BUNDLE; an untrusted one exits 77" {
	tls_cert
	tokens
	make_pub pub.db 30
	start_pub pub -d pub.db -t users -c name:update -c email --http 127.0.0.1:0 \
	    --tls-cert cert.pem --tls-key key.pem --http-tokens tokens
	local port=${ADDR##*:}
	run --separate-stderr env -u SSL_CERT_FILE -u SSL_CERT_DIR CURL_CA_BUNDLE="$T/cert.pem" \
	    "$R" pull "https://127.0.0.1:$port/replicate" -d rep.db -t users \
	    -c name:update -c email --events --http-token writer.tok
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -c 'select(.event == "initialized") | [.full, .rows]' <<<"$output")" '[true,30]'
	assert_same_rows pub.db rep.db users 'id, name, email'
	# Both ways through TLS: a local update goes up, the publisher's comes down.
	sqlite3 rep.db "UPDATE users SET name = 'over tls' WHERE id = 3"
	sqlite3 pub.db "UPDATE users SET email = 'tls@example.org' WHERE id = 4"
	run --separate-stderr env CURL_CA_BUNDLE="$T/cert.pem" "$R" pull \
	    "https://localhost:$port/replicate" -d rep.db -t users -c name:update -c email \
	    --http-token writer.tok
	assert_success
	assert_stderr_empty
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 3')" "over tls"
	assert_equal "$(rows rep.db 'SELECT email FROM users WHERE id = 4')" tls@example.org
	# curl by hand, with the CA.
	run curl -sS --cacert cert.pem -H "Authorization: Bearer $READER" --data-binary \
	    '{"mt":"ReplicateStart","guid":null,"usn":0}' "https://localhost:$port/replicate"
	assert_success
	assert_equal "$(jq -c '[.mt, .count]' <<<"$output")" '["ReplicateStartResult",30]'
	# Plain HTTP on the HTTPS port is no request.
	run curl -sS -o /dev/null -w '%{http_code}' --data-binary '{}' "http://127.0.0.1:$port/"
	refute_output 200
	# Another CA, or none: the certificate is not trusted, nothing is replicated.
	run --separate-stderr env -u SSL_CERT_FILE -u SSL_CERT_DIR CURL_CA_BUNDLE="$T/other.pem" \
	    "$R" pull "https://127.0.0.1:$port/replicate" -d other.db -t users
	assert_failure 77
	assert_output ''
	assert_stderr "wsync-replicate: cannot verify the publisher's TLS certificate: SSL certificate problem: self-signed certificate (name its CA in CURL_CA_BUNDLE)"
	run --separate-stderr env -u CURL_CA_BUNDLE -u SSL_CERT_FILE -u SSL_CERT_DIR \
	    "$R" pull "https://127.0.0.1:$port/replicate" -d other.db -t users
	assert_failure 77
	assert_stderr "wsync-replicate: cannot verify the publisher's TLS certificate: SSL certificate problem: self-signed certificate (name its CA in CURL_CA_BUNDLE)"
	assert_equal "$(rows other.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	# So does --follow, which retries other errors: this one does not pass.
	run --separate-stderr env -u CURL_CA_BUNDLE "$R" pull -f \
	    "https://127.0.0.1:$port/replicate" -d other.db -t users
	assert_failure 77
}

@test "https: a certificate and key that cannot serve are configuration errors" {
	tls_cert
	make_pub pub.db 3
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --tls-cert cert.pem
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --tls-cert needs --tls-key"
	run --separate-stderr "$R" publish -d pub.db -t users -l "unix:$T/s" --tls-cert cert.pem \
	    --tls-key key.pem
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --tls-cert, --tls-key, --http-tokens, --http-max-body and --http-timeout go with --http"
	chmod 644 key.pem
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --tls-cert cert.pem \
	    --tls-key key.pem
	assert_failure 77
	assert_stderr "wsync-replicate: TLS key file 'key.pem' is accessible by others (mode 0644): it must be 0600 (chmod 600 'key.pem')"
	# A key that is not the certificate's.
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --tls-cert cert.pem \
	    --tls-key other-key.pem
	assert_failure 78
	assert_stderr "wsync-replicate: cannot serve HTTPS with certificate 'cert.pem' and key 'other-key.pem': failed to initialize TLS support"
	run --separate-stderr "$R" publish -d pub.db -t users --http 127.0.0.1:0 --tls-cert nosuch.pem \
	    --tls-key other-key.pem
	assert_failure 66
	assert_stderr "wsync-replicate: cannot open TLS certificate 'nosuch.pem': no such file or directory"
	# None of these touched the database.
	assert_equal "$(rows pub.db "SELECT count(*) FROM sqlite_master WHERE name LIKE 'wsync%'")" 0
}

@test "progress on a terminal: rows, rows/s and an ETA; silent otherwise" {
	command -v script >/dev/null || fail "this test needs script(1) from util-linux"
	make_pub pub.db 5000
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	# script(1) gives the replicator a terminal; what it shows comes out here.
	run script -qec "'$R' pull 'unix:$T/s' -d tty.db -t users --batch 100" /dev/null </dev/null
	assert_success
	local shown
	shown=$(tr '\r' '\n' <<<"$output")
	grep -qE '^wsync-replicate: [0-9]+ of 5000 rows, [0-9]+ rows/s, ETA [0-9]+ s +$' <<<"$shown" ||
	    fail "no progress with an ETA: $shown"
	grep -qE '^wsync-replicate: 5000 rows, [0-9]+ rows/s +$' <<<"$shown" ||
	    fail "no final count: $shown"
	assert_same_rows pub.db tty.db users 'id, name'
	# Not a terminal: nothing on stderr.
	run --separate-stderr "$R" pull "unix:$T/s" -d plain.db -t users --batch 100
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db plain.db users 'id, name'
}

@test "upward rights with a BLOB key and a REAL key: exact keys, no echo event" {
	sqlite3 pub.db "CREATE TABLE blobs(k BLOB PRIMARY KEY, v TEXT);
	    INSERT INTO blobs VALUES (x'00ff10', 'one'), (x'', 'empty');
	    CREATE TABLE reals(k REAL PRIMARY KEY, v TEXT);
	    INSERT INTO reals VALUES (0.1, 'a'), (1e300, 'b'), (-2.5, 'c')"
	local up=(--add --del -c v:update)
	for t in blobs reals; do
		run "$R" pull "exec:$R publish --stdio -q -d pub.db -t $t ${up[*]}" -d rep.db -t $t "${up[@]}"
		assert_success
	done
	# The application's own writes succeed, and are captured.
	run sqlite3 rep.db "INSERT INTO blobs VALUES (x'0102', 'two');
	    UPDATE blobs SET v = 'uno' WHERE k = x'00ff10'; DELETE FROM blobs WHERE k = x'';
	    INSERT INTO reals VALUES (0.30000000000000004, 'd');
	    UPDATE reals SET v = 'bb' WHERE k = 1e300; DELETE FROM reals WHERE k = 0.1"
	assert_success
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_out')" 6
	run --separate-stderr "$R" pull "exec:$R publish --stdio -q -d pub.db -t blobs ${up[*]}" \
	    -d rep.db -t blobs "${up[@]}" --events
	assert_success
	assert_stderr_empty
	# The publisher's echo of these changes is no news: no event for them.
	assert_equal "$(jq -r .event <<<"$output" | tr '\n' ' ')" "started initialized closed "
	assert_equal "$(rows pub.db 'SELECT hex(k), v FROM blobs ORDER BY k')" '00FF10|uno
0102|two'
	run --separate-stderr "$R" pull "exec:$R publish --stdio -q -d pub.db -t reals ${up[*]}" \
	    -d rep.db -t reals "${up[@]}" --events
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -r .event <<<"$output" | tr '\n' ' ')" "started initialized closed "
	# Exact: 0.30000000000000004 is not 0.3, 1e300 is found and updated.
	assert_equal "$(rows pub.db "SELECT quote(k), v, k = 0.30000000000000004 FROM reals ORDER BY k")" \
	    '-2.5|c|0
3.00000000000000044408e-01|d|1
1.0e+300|bb|0'
	assert_equal "$(rows rep.db 'SELECT count(*) FROM wsync_replica_out')" 0
	assert_equal "$(rows rep.db 'SELECT quote(k), v FROM reals ORDER BY k')" \
	    "$(rows pub.db 'SELECT quote(k), v FROM reals ORDER BY k')"
	assert_equal "$(rows rep.db 'SELECT hex(k), v FROM blobs ORDER BY k')" \
	    "$(rows pub.db 'SELECT hex(k), v FROM blobs ORDER BY k')"
	# The publisher's own change to a BLOB-keyed row still comes down as an event.
	sqlite3 pub.db "UPDATE blobs SET v = 'server' WHERE k = x'0102'"
	run --separate-stderr "$R" pull "exec:$R publish --stdio -q -d pub.db -t blobs ${up[*]}" \
	    -d rep.db -t blobs "${up[@]}" --events
	assert_success
	assert_equal "$(jq -c 'select(.event == "updated") | [.key.k.blob, .columns]' <<<"$output")" \
	    '["AQI=",["v"]]'
	assert_intact pub.db
	assert_intact rep.db
}

@test "another column mapping on an existing replica replicates in full and fills the new columns" {
	make_pub pub.db 20
	start_pub pub -d pub.db -t users -l "unix:$T/s"
	run "$R" pull "unix:$T/s" -d rep.db -t users -c name
	assert_success
	assert_equal "$(rows rep.db "SELECT group_concat(name, ',') FROM pragma_table_info('users')")" \
	    "id,name"
	# The same mapping, in another order or with other update rights: incremental.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c name --events
	assert_success
	assert_equal "$(jq -c 'select(.event == "started") | .full' <<<"$output")" false
	# A new column: a full replication fills it for every row.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c email -c name --events
	assert_success
	assert_stderr "wsync-replicate: the columns asked for changed: replicating in full"
	assert_equal "$(jq -c 'select(.event == "started") | .full' <<<"$output")" true
	assert_same_rows pub.db rep.db users 'id, name, email'
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c name -c email --events
	assert_success
	assert_stderr_empty
	assert_equal "$(jq -c 'select(.event == "started") | .full' <<<"$output")" false
	# A renamed local column too.
	run --separate-stderr "$R" pull "unix:$T/s" -d rep.db -t users -c name -c email=mail -q
	assert_success
	assert_equal "$(rows rep.db 'SELECT id, name, mail FROM users ORDER BY id')" \
	    "$(rows pub.db 'SELECT id, name, email FROM users ORDER BY id')"
	assert_equal "$(rows rep.db 'SELECT mapping FROM wsync_replica')" 'email=mail
name=name'
}

@test "positional ReplicateUpdate: asked for in ReplicateStart, values in mask order" {
	make_pub pub.db 3
	start_pub pub -d pub.db -t users --http 127.0.0.1:0
	local start guid usn sid
	start=$(curl -sS --data-binary '{"mt":"ReplicateStart","guid":null,"usn":0}' "http://$ADDR/")
	guid=$(jq -r .guid <<<"$start")
	usn=$(jq -r .usn <<<"$start")
	# Not asked for: no "positional", columns by name.
	assert_equal "$(jq -c .positional <<<"$start")" null
	for form in named positional; do
		local extra='' mt
		[ "$form" = positional ] && extra=',"positional":true'
		run curl -sS -D headers --data-binary \
		    "{\"mt\":\"ReplicateStart\",\"guid\":\"$guid\",\"usn\":$usn$extra}" "http://$ADDR/"
		assert_success
		assert_equal "$(jq -c '[.full, .positional]' <<<"$output")" \
		    "$([ "$form" = positional ] && echo '[false,true]' || echo '[false,null]')"
		sid=$(jq -r .session <<<"$output")
		run curl -sS -H "Wsync-Session: $sid" --data-binary '{"mt":"ReplicateNext"}' "http://$ADDR/"
		assert_success
		mt=$(jq -r .mt <<<"$output" | tr '\n' ' ')
		assert_equal "$mt" "ReplicateNextResult ReplicateSync "
		sqlite3 pub.db "UPDATE users SET email = 'e-$form', name = 'n-$form' WHERE id = 2"
		run curl -sS -H "Wsync-Session: $sid" -H 'Wsync-Wait: 5' --data-binary \
		    '{"mt":"ReplicateSyncResult"}' "http://$ADDR/"
		assert_success
		if [ "$form" = positional ]; then
			assert_equal "$(jq -c 'select(.mt == "ReplicateUpdate") | [.key, .mask, .columns]' \
			    <<<"$output")" '[{"id":2},6,["n-positional","e-positional"]]'
		else
			assert_equal "$(jq -c 'select(.mt == "ReplicateUpdate") | [.key, .mask, .columns]' \
			    <<<"$output")" '[{"id":2},6,{"name":"n-named","email":"e-named"}]'
		fi
		usn=$(jq -r 'select(.usn) | .usn' <<<"$output" | tail -n 1)
	done
}

@test "a positional ReplicateUpdate whose values do not match its mask is bad data" {
	# A publisher written in sh: anything that speaks the messages is one.
	cat >fake.sh <<'SH'
read -r start
echo '{"mt":"ReplicateStartResult","guid":"0123456789abcdef0123456789abcdef","usn":1,"full":true,"count":1,"positional":true,"columns":[{"name":"id","key":1,"update":false,"type":"INTEGER"},{"name":"v","key":0,"update":false,"type":"TEXT"}]}'
read -r next
echo '{"mt":"ReplicateNextResult","columns":{"id":1,"v":"a"}}'
read -r next
echo '{"mt":"ReplicateNextResult","usn":1}'
echo '{"mt":"ReplicateUpdate","key":{"id":1},"mask":2,"columns":["b","c"],"usn":2}'
sleep 5
SH
	run --separate-stderr "$R" pull "exec:sh fake.sh" -d rep.db -t t --batch 1
	assert_failure 65
	assert_stderr 'wsync-replicate: ReplicateUpdate: "columns" as an array needs a value for each bit of "mask"'
	# The initial transfer was kept; the bad message changed nothing.
	assert_equal "$(rows rep.db 'SELECT id, v FROM t')" '1|a'
	assert_equal "$(rows rep.db 'SELECT usn FROM wsync_replica')" 1
	assert_intact rep.db
}

# wait_sql DB SQL EXPECTED: wait until SQL on DB prints EXPECTED.
wait_sql() {
	local i got=
	for ((i = 0; i < WAIT_S * 10; i++)); do
		got=$(sqlite3 "$1" "$2" 2>/dev/null) && [ "$got" = "$3" ] && return 0
		sleep 0.1
	done
	fail "waited $WAIT_S s for '$2' on ${1##*/} to be '$3', it is '$got'"
}

@test "upward: a local change made while the echo of the previous one is held is not lost" {
	make_pub pub.db 3
	start_pub pub -d pub.db -t users -c name:update -l "unix:$T/s"
	run "$R" pull "unix:$T/s" -d rep.db -t users -c name:update
	assert_success
	# A relay that holds what the publisher sends once a change went up.
	export RELAY_RELEASE=$T/release
	spawn relay python3 "$BATS_TEST_DIRNAME/relay.py" "unix:$T/r" "unix:$T/s" hold
	wait_lines "$T/relay.out" 1 '^ready$'
	spawn rep "$R" pull "unix:$T/r" -d rep.db -t users -c name:update -f -e
	local rep=$PID
	wait_lines "$T/rep.out" 1 '"event":"initialized"'
	sqlite3 rep.db "UPDATE users SET name = 'first' WHERE id = 1"
	wait_lines "$T/relay.out" 1 '^holding$'
	wait_sql pub.db 'SELECT name FROM users WHERE id = 1' first
	# The application writes again before the result and the echo of
	# 'first' are back.
	sqlite3 rep.db "UPDATE users SET name = 'second' WHERE id = 1"
	touch release
	wait_lines "$T/relay.out" 1 '^released$'
	wait_sql pub.db 'SELECT name FROM users WHERE id = 1' second
	wait_sql rep.db 'SELECT count(*) FROM wsync_replica_out' 0
	wait_sql rep.db 'SELECT name FROM users WHERE id = 1' second
	kill -TERM "$rep"
	reap "$rep"
	assert_equal "$REAPED" 0
	assert_same_rows pub.db rep.db users 'id, name'
	# The echoes were no news: neither overwrote the newer value.
	assert_equal "$(grep -c '"event":"updated"' rep.out)" 0
	assert_intact rep.db
	assert_intact pub.db
}

# --- secure stream sessions ----------------------------------------------------

# wait_text FILE TEXT: wait until a line of FILE holds TEXT (no regex:
# keys hold '+' and '/').
wait_text() {
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	fail "waited $WAIT_S s for '$2' in ${1##*/}:
$(cat "$1" 2>/dev/null)"
}

# keys: a publisher key, a writer, a reader and a stranger; $PUBKEY etc.
keys() {
	local k
	for k in pub writer reader stranger; do
		"$WS_BIN/wsync-keygen" -q -f $k.key -C $k
	done
	PUBKEY=$(cut -d' ' -f1 pub.key.pub)
	WRITERKEY=$(cut -d' ' -f1 writer.key.pub)
	READERKEY=$(cut -d' ' -f1 reader.key.pub)
	STRANGERKEY=$(cut -d' ' -f1 stranger.key.pub)
	printf '%s users=write # the writer\n%s use*=read\n' "$WRITERKEY" "$READERKEY" >authorized
}

# start_secure_pub ARG...: a keyed publisher of pub.db on loopback TCP ($ADDR).
start_secure_pub() {
	start_pub pub -d pub.db -t users -l 127.0.0.1:0 --key pub.key \
	    --authorized-keys authorized "$@"
}

@test "secure: a pull over TCP, encrypted on the wire, and changes sent up" {
	keys
	make_pub pub.db 20
	sqlite3 pub.db "UPDATE users SET name = 'secret words' WHERE id = 7"
	start_secure_pub -c name:update -c email
	export RELAY_TAP=$T/tap
	local port
	port=$(free_port)
	spawn relay python3 "$BATS_TEST_DIRNAME/relay.py" "127.0.0.1:$port" "$ADDR" tap
	wait_lines "$T/relay.out" 1 '^ready$'
	run --separate-stderr "$R" pull "127.0.0.1:$port" -d rep.db -t users -c name:update \
	    -c email --key writer.key --hub-key "$PUBKEY"
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db rep.db users 'id, name, email'
	wait_text "$T/pub.err" ": key $WRITERKEY (the writer) may read and write"
	# A change goes up, through the same kind of session.
	sqlite3 rep.db "UPDATE users SET name = 'more secret words' WHERE id = 8"
	run --separate-stderr "$R" pull "127.0.0.1:$port" -d rep.db -t users -c name:update \
	    -c email --key writer.key --hub-key "$PUBKEY"
	assert_success
	assert_stderr_empty
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 8')" 'more secret words'
	# Both directions were tapped: frames, and none of the text.
	[ -s tap ] || fail "nothing was tapped"
	assert_equal "$(head -c 8 tap | od -An -tx1 | tr -d ' \n')" 895753594e430d0a
	run grep -c -e 'secret words' -e 'example.org' -e ReplicateStart tap
	assert_output 0
	assert_intact rep.db
}

@test "secure: a wrong publisher key is refused (77), nothing replicated" {
	keys
	make_pub pub.db 5
	start_secure_pub
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key writer.key \
	    --hub-key "$STRANGERKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher presented key $PUBKEY, not the one given with --hub-key: refusing it"
	assert_equal "$(rows rep.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	# Known hubs: unknown until accepted, then pinned.
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key writer.key --known-hubs kh
	assert_failure 77
	assert_stderr "wsync-replicate: unknown hub key $PUBKEY at $ADDR: pin it with --hub-key, add \"$ADDR $PUBKEY\" to kh, or trust it once with --accept-new-hub"
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key writer.key \
	    --known-hubs kh --accept-new-hub
	assert_success
	assert_stderr "wsync-replicate: added the key of the publisher at $ADDR to kh: $PUBKEY"
	assert_equal "$(cat kh)" "$ADDR $PUBKEY"
	# The default known hubs live under $XDG_CONFIG_HOME.
	XDG_CONFIG_HOME=$T/cfg run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users \
	    --key writer.key --accept-new-hub -q
	assert_success
	assert_equal "$(cat cfg/wsync/known_hubs)" "$ADDR $PUBKEY"
	assert_same_rows pub.db rep.db users 'id, name, email, tags'
}

@test "secure: an unknown replicator key is refused during the handshake (77)" {
	keys
	make_pub pub.db 5
	start_secure_pub
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key stranger.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher ends the session: key $STRANGERKEY is not authorized on this publisher"
	wait_text "$T/pub.err" ": key $STRANGERKEY is not authorized on this publisher"
	assert_equal "$(rows rep.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	# A listed key with no right on this table is refused the same way.
	printf '%s other=write\n' "$STRANGERKEY" >>authorized
	kill "$PUB_PID"
	reap "$PUB_PID"
	start_secure_pub
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key stranger.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher ends the session: key $STRANGERKEY has no rights on table 'users'"
	# The publisher goes on serving the others.
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --key reader.key \
	    --hub-key "$PUBKEY"
	assert_success
	assert_same_rows pub.db rep.db users 'id, name'
}

@test "secure: one byte flipped in an encrypted frame ends the session (77)" {
	keys
	make_pub pub.db 5
	start_secure_pub
	local port=${ADDR##*:} mport
	mport=$(free_port)
	spawn mitm python3 "$BATS_TEST_DIRNAME/mitm.py" "$mport" 127.0.0.1 "$port" flip
	wait_lines "$T/mitm.out" 1 '^ready$'
	run --separate-stderr "$R" pull "127.0.0.1:$mport" -d rep.db -t users --key writer.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher ends the session: an encrypted frame failed authentication: tampered with, replayed or out of order"
	wait_lines "$T/pub.err" 1 ': an encrypted frame failed authentication: tampered with, replayed or out of order$'
	# Nothing was replicated; the publisher goes on.
	assert_equal "$(rows rep.db 'SELECT count(*) FROM users')" 0
	assert_intact rep.db
	run "$R" pull "$ADDR" -d rep.db -t users --key writer.key --hub-key "$PUBKEY"
	assert_success
	assert_same_rows pub.db rep.db users 'id, name'
}

@test "secure: a read-only key may pull, not send changes up (77)" {
	keys
	make_pub pub.db 5
	start_secure_pub -c name:update --add
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users -c name:update \
	    --key reader.key --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: key $READERKEY may only read table 'users': it cannot send changes"
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --add --key reader.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: key $READERKEY may only read table 'users': it cannot send changes"
	assert_equal "$(rows rep.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	# Reading is allowed; the local change stays local.
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users -c name --key reader.key \
	    --hub-key "$PUBKEY"
	assert_success
	sqlite3 rep.db "UPDATE users SET name = 'from a reader' WHERE id = 2"
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users -c name --key reader.key \
	    --hub-key "$PUBKEY"
	assert_success
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 2')" user2
}

@test "secure: TCP needs keys unless --insecure; unix sockets and exec: may be plain" {
	keys
	make_pub pub.db 5
	run --separate-stderr "$R" publish -d pub.db -t users -l 127.0.0.1:0
	assert_failure 78
	assert_stderr "wsync-replicate: listening on TCP needs --key FILE and --authorized-keys FILE (make a key with wsync-keygen -f FILE), or --insecure for plain sessions"
	run --separate-stderr "$R" pull 127.0.0.1:1 -d rep.db -t users
	assert_failure 78
	assert_stderr "wsync-replicate: a publisher on TCP needs --key FILE (make one with wsync-keygen -f FILE), or --insecure for a plain session"
	run --separate-stderr "$R" publish -d pub.db -t users -l 127.0.0.1:0 --key pub.key
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --key needs --authorized-keys"
	run --separate-stderr "$R" pull 127.0.0.1:1 -d rep.db -t users --hub-key "$PUBKEY"
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --hub-key, --known-hubs and --accept-new-hub go with --key"
	run --separate-stderr "$R" pull http://127.0.0.1:1/ -d rep.db -t users --key writer.key
	assert_failure 64
	assert_stderr_line 0 "wsync-replicate: --key and --insecure go with a stream SOURCE; over HTTP use https:// and --http-token"
	chmod 644 writer.key
	run --separate-stderr "$R" pull 127.0.0.1:1 -d rep.db -t users --key writer.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: key file 'writer.key' is accessible by others (mode 0644): it must be 0600 (chmod 600 'writer.key')"
	chmod 600 writer.key
	[ ! -e rep.db ] || fail "a configuration error created rep.db"
	# A plain replicator is refused by a keyed publisher on TCP.
	start_secure_pub
	run --separate-stderr "$R" pull "$ADDR" -d rep.db -t users --insecure
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher refused: this publisher takes authenticated sessions only: pull with --key"
	assert_equal "$(rows rep.db "SELECT count(*) FROM sqlite_master WHERE name = 'users'")" 0
	# A keyed publisher on a unix socket takes plain and secure sessions.
	start_pub upub -d pub.db -t users -l "unix:$T/s" --key pub.key --authorized-keys authorized
	run --separate-stderr "$R" pull "unix:$T/s" -d plain.db -t users
	assert_success
	assert_same_rows pub.db plain.db users 'id, name'
	run --separate-stderr "$R" pull "unix:$T/s" -d sec.db -t users --key reader.key \
	    --hub-key "$PUBKEY"
	assert_success
	assert_same_rows pub.db sec.db users 'id, name'
	# A publisher without a key refuses a secure session, saying why.
	start_pub npub -d pub.db -t users -l "unix:$T/n"
	run --separate-stderr "$R" pull "unix:$T/n" -d no.db -t users --key reader.key \
	    --hub-key "$PUBKEY"
	assert_failure 77
	assert_stderr "wsync-replicate: the publisher ends the session: this publisher has no key: it takes plain sessions only"
	# exec: with --stdio, secure too.
	run --separate-stderr "$R" pull "exec:$R publish --stdio -q -d pub.db -t users --key pub.key --authorized-keys authorized" \
	    -d exec.db -t users --key writer.key --hub-key "$PUBKEY"
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db exec.db users 'id, name'
}

@test "the HTTPS example of EXAMPLES in wsync-replicate(1) works as written" {
	command -v openssl >/dev/null || fail "this test needs the openssl CLI"
	sqlite3 shop.db "CREATE TABLE prices(sku TEXT PRIMARY KEY, price REAL, stock INTEGER);
	    INSERT INTO prices VALUES ('apple', 0.5, 10), ('pear', 0.75, 4)"
	local port
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	# The commands of the example, one a line, shop.example.org being this host.
	sed -n '/^Over HTTPS on every address/,/^\.Ed/p' "$BATS_TEST_DIRNAME/../../man/wsync-replicate.1" |
	    sed -n '/^\.Bd/,/^\.Ed/p' | sed '1d;$d' | sed 's/\\e$/\\/' |
	    sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' | sed 's/^\$ //' |
	    sed "s/shop\.example\.org/localhost/g; s/8443/$port/g" >steps.sh
	assert_equal "$(wc -l <steps.sh)" 7
	run bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '1,4p' steps.sh | bash -e"
	assert_success
	spawn shop bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '5p' steps.sh | bash -e"
	wait_lines "$T/shop.err" 1 '^wsync-replicate: listening on '
	run --separate-stderr bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '6p' steps.sh | bash -e"
	assert_success
	assert_equal "$(rows till.db 'SELECT sku, stock FROM prices ORDER BY sku')" \
	    "$(rows shop.db 'SELECT sku, stock FROM prices ORDER BY sku')"
	# The till's token may write: its stock goes up.
	sqlite3 till.db "UPDATE prices SET stock = 3 WHERE sku = 'pear'"
	run --separate-stderr bash -c "cd '$T' && PATH='$WS_BIN':\$PATH && sed -n '6p' steps.sh | bash -e"
	assert_success
	assert_equal "$(rows shop.db "SELECT stock FROM prices WHERE sku = 'pear'")" 3
	run bash -c "cd '$T' && sed -n '7p' steps.sh | bash -e"
	assert_success
	assert_equal "$(jq -c '[.mt, .count]' <<<"$output")" '["ReplicateStartResult",2]'
}
