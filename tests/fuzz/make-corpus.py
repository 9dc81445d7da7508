#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# make-corpus.py - (re)build the seed corpus under tests/fuzz/corpus/ from
# the golden files in tests/data/ and the frames of real sessions in them
# (sample-hub.log, sample-site.log: session logs of a hub and a site).
#
#     python3 tests/fuzz/make-corpus.py [REPLICATE-LOG...]
#
# Seeds are named seed-<what>; regression inputs (crash-*), the
# replicate seeds, captured from a real wsync-replicate session, and the
# http seeds (header values and bodies) are kept as they are.  Each REPLICATE-LOG (JSON lines a publisher and a
# replicator exchanged) adds its lines as one seed.  The schema seeds are
# records made here from the layout in include/wsync/schema.h.
import os
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
DATA = os.path.join(TOP, "tests", "data")
CORPUS = os.path.join(TOP, "tests", "fuzz", "corpus")
PREAMBLE = bytes.fromhex("895753594e430d0a0100")


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def frames(stream):
    """(type, flags, channel, payload, raw bytes) of each frame after the preamble."""
    i = 10 if stream[:10] == PREAMBLE else 0
    while i + 14 <= len(stream):
        t, fl = stream[i], stream[i + 1]
        ch = int.from_bytes(stream[i + 2:i + 6], "little")
        n = int.from_bytes(stream[i + 6:i + 10], "little")
        yield t, fl, ch, stream[i + 10:i + 10 + n], stream[i:i + 14 + n]
        i += 14 + n


def unwrap(t, payload):
    """A LOG record's inner (type, payload); others as they are."""
    if t != 0x30:
        return t, payload
    _, i = varint(payload, 0)      # time
    i += 1                          # direction
    n, i = varint(payload, i)       # peer
    i += n
    it = payload[i]
    i += 2                          # type, flags
    _, i = varint(payload, i)       # channel
    return it, payload[i:]


seeds = {name: {} for name in ("frame", "delta", "vclock", "json", "session", "replicate",
                                "schema")}


def add(target, what, data):
    if data not in seeds[target].values():
        seeds[target][what] = data


def put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        out.append(c | (0x80 if v else 0))
        if not v:
            return bytes(out)


def put_str(s):
    b = s.encode("utf-8")
    return put_varint(len(b)) + b


def schema_record(gen, objects, fmt=1):
    """A schema record: objects are (type, name, table, sql), type 1 table,
    2 index, 3 view, 4 trigger, in sqlite_schema order."""
    out = put_varint(fmt) + put_varint(gen) + put_varint(len(objects))
    for t, name, table, sql in objects:
        out += put_varint(t) + put_str(name) + put_str(table) + put_str(sql)
    return out


def read(name):
    with open(os.path.join(DATA, name), "rb") as f:
        return f.read()


for name in ("frame-batch.bin", "frame-empty.bin", "frame-multi.bin",
             "sample-hub.log", "sample-site.log"):
    data = read(name)
    base = name.rsplit(".", 1)[0]
    add("frame", base, data)
    for k, (t, _fl, _ch, payload, raw) in enumerate(frames(data)):
        if k == 0 and name.startswith("frame-"):
            add("frame", base + "-nopre", raw)
        it, inner = unwrap(t, payload)
        if it == 0x10:
            add("delta", "%s-%d" % (base, k), inner)
        elif it == 0x11:
            add("vclock", "%s-%d" % (base, k), inner)
        elif it in (0x01, 0x04):
            add("session", "%s-%d" % (base, k), inner)
add("delta", "batch-small", read("batch-small.bin"))
add("vclock", "vclock-2", read("vclock-2.bin"))
add("vclock", "text", b"000102030405060708090a0b0c0d0e0f:7,abcdef:3")
add("vclock", "text-prefix", b" 0:1 , abce:2")
NOTES = (1, "notes", "notes", "CREATE TABLE notes(id INTEGER PRIMARY KEY, title)")
add("schema", "empty", schema_record(0, []))
add("schema", "small", schema_record(3, [
    (1, "t", "t", "CREATE TABLE t(a)"),
    (2, "i", "t", "CREATE INDEX i ON t(a)")]))
add("schema", "manpage", schema_record(3, [
    NOTES, (2, "nt", "notes", "CREATE INDEX nt ON notes(title)")]))
add("schema", "every-type", schema_record(1 << 40, [
    NOTES,
    (1, "caf\u00e9 \"x\"", "caf\u00e9 \"x\"",
     "CREATE TABLE \"caf\u00e9 \"\"x\"\"\"(k TEXT PRIMARY KEY,\n  v) STRICT"),
    (2, "nt", "notes", "CREATE UNIQUE INDEX nt ON notes(title) WHERE title IS NOT NULL"),
    (3, "titles", "titles", "CREATE VIEW titles AS SELECT title FROM notes"),
    (4, "notes_ai", "notes",
     "CREATE TRIGGER notes_ai AFTER INSERT ON notes BEGIN\n  SELECT 1;\nEND")]))
add("schema", "gen-max", schema_record((1 << 64) - 1, [NOTES]))
add("schema", "format-2", schema_record(0, [NOTES], fmt=2))
add("json", "sample-hub", read("sample-hub.jsonl"))
lines = read("sample-hub.jsonl").splitlines(keepends=True)
for k, line in enumerate(lines[:12]):
    add("json", "sample-hub-%d" % k, line)
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        add("replicate", os.path.basename(path).rsplit(".", 1)[0], f.read())

for target, items in seeds.items():
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for what, data in items.items():
        with open(os.path.join(d, "seed-" + what), "wb") as f:
            f.write(data)
    print("%-10s %3d seeds" % (target, len(items)))
