#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# 50-replicate.bats - wsync-replicate publish and pull as real processes:
# a full replication then an incremental resume; a guid change forcing a
# full replication that removes stale rows; refused rights (exit 77);
# column mapping and update rights; the two-phase delete; --events read
# with jq; the HTTP mapping through pull and through curl; a run killed
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
	# Replication did not start: no table, no state.
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

@test "HTTP: pull against publish --http, and curl speaking the mapping" {
	make_pub pub.db 120
	start_pub pub -d pub.db -t users -c name:update -c email --http 127.0.0.1:0
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d rep.db -t users --batch 7 \
	    -c name:update -c email
	assert_success
	assert_stderr_empty
	assert_same_rows pub.db rep.db users 'id, name, email'
	sqlite3 pub.db "UPDATE users SET email = 'http@example.org' WHERE id = 1"
	sqlite3 rep.db "UPDATE users SET name = 'up by http' WHERE id = 2"
	run --separate-stderr "$R" pull "http://$ADDR/replicate" -d rep.db -t users -c name:update -c email
	assert_success
	assert_equal "$(rows rep.db 'SELECT email FROM users WHERE id = 1')" http@example.org
	assert_equal "$(rows pub.db 'SELECT name FROM users WHERE id = 2')" "up by http"
	# curl: start, one row in the one-row form, a page, a refusal.
	run curl -sS -D headers -H 'Content-Type: application/x-ndjson' --data-binary \
	    '{"mt":"ReplicateStart","guid":null,"usn":0,"columns":["name"]}' "http://$ADDR/replicate"
	assert_success
	assert_equal "$(jq -c '[.mt, .full, .count, [.columns[].name]]' <<<"$output")" \
	    '["ReplicateStartResult",true,120,["id","name"]]'
	local sid
	sid=$(jq -r .session <<<"$output")
	grep -qi "^wsync-session: $sid" headers || fail "no Wsync-Session header: $(cat headers)"
	run curl -sS -H "Wsync-Session: $sid" --data-binary '{"mt":"ReplicateNext"}' "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c . <<<"$output")" '{"mt":"ReplicateNextResult","columns":{"id":1,"name":"user1"}}'
	run curl -sS -H "Wsync-Session: $sid" --data-binary '{"mt":"ReplicateNext","max":3}' "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c '[.rows[].id]' <<<"$output")" '[2,3,4]'
	run curl -sS -o /dev/null -w '%{http_code}' -H "Wsync-Session: nosuch" --data-binary \
	    '{"mt":"ReplicateNext"}' "http://$ADDR/"
	assert_output 404
	run curl -sS -o /dev/null -w '%{http_code}' "http://$ADDR/"
	assert_output 405
	run curl -sS --data-binary '{"mt":"ReplicateStart","guid":null,"usn":0,"add":true}' "http://$ADDR/"
	assert_success
	assert_equal "$(jq -c '[.mt, .refused]' <<<"$output")" '["ReplicateStartResult","add"]'
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
	start_pub pub -d pub.db -t users -l 127.0.0.1:0
	run "$R" pull "$ADDR" -d tcp.db -t users
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
}
