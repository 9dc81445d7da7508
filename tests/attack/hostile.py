# SPDX-License-Identifier: MIT
# hostile.py - a site that speaks the protocol properly up to the point
# where it sends the hub a batch or a schema record the working set
# cannot take, for attack.bats.
#
#     python3 hostile.py unix:PATH WSID CASE [SITE:COUNTER]
#
# The hub listens at PATH (a plain session).  The working set WSID must
# exist on it with at least these tables, as attack.bats makes it:
#
#     CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT NOT NULL, n INTEGER)
#     CREATE TABLE s(k INTEGER PRIMARY KEY, v TEXT) STRICT
#
# CASE is batch-* (a batch frame) or schema-* (a schema frame); see
# BATCHES and SCHEMAS below.  Each hostile one also carries changes the
# hub would take on their own (batch-legit and schema-legit send only
# those), so a hub that took part of it shows.  A batch has the dot
# (site, 1), with the site id of our hello, and the context {site: 1};
# with SITE:COUNTER (32 hex digits), its context names that dot too, so
# that it cannot be applied until the hub holds that batch.  A schema
# record is the hub's own, at its generation, changed.
#
# Two sessions are opened, each with its own random site id: a watcher,
# which joins the working set and only listens, and the attacker, which
# joins it (hello, add; it reads the hub's hello, schema record, add,
# catch-up and CAUGHT_UP clock), then sends the CASE's frame followed by
# a clock flagged SYNC.  A hub that refuses the frame answers with an
# ERROR frame and closes; one that takes it answers the SYNC with an ACK.
# The watcher then asks for an ACK of its own, so that whatever the hub
# forwarded to it has arrived.  stdout, one a line:
#
#     error CODE MSG     each ERROR frame the attacker got (code signed)
#     ack                the hub confirmed the attacker's SYNC: it took
#                        the frame
#     closed | open      the hub closed the attacker's connection, or not
#     forwarded N batch M schema
#                        what the watcher got after the attack
#
# stderr traces the handshakes.  Exit 0 once the answer is read, 1 if a
# handshake failed (the reason on stderr), 2 on a usage error.
#
# Every byte is built here from the headers by hand: frames and the
# preamble (frame.h), hello and add (session.h), vector clocks
# (vclock.h), batches (delta.h) and schema records (schema.h), with an
# independent bitwise CRC-32C, so the hub is not checked against its own
# encoders.

import os
import socket
import struct
import sys
import time

# The frame layer (CRC-32C, frames, the preamble, LEB128) is rawpeer's:
# one independent encoder for every test that speaks to a hub by hand.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "bats"))
from rawpeer import PREAMBLE, crc32c, frame, zigzag  # noqa: E402
from rawpeer import put_varint as varint  # noqa: E402
from rawpeer import varint as rawpeer_varint  # noqa: E402

T_HELLO, T_ERROR, T_ADD = 0x01, 0x02, 0x04
T_BATCH, T_CLOCK, T_SCHEMA = 0x10, 0x11, 0x12
CLOCK_CAUGHT_UP, CLOCK_SYNC, CLOCK_ACK = 0x1, 0x2, 0x4
BATCH_HAS_CLOCK, BATCH_HAS_DOT = 0x1, 0x2
OP_INSERT, OP_UPDATE, OP_DELETE = 1, 2, 3
OBJ_TABLE, OBJ_INDEX, OBJ_VIEW, OBJ_TRIGGER = 1, 2, 3, 4
CH = 1        # the attacker's (and the watcher's) channel for WSID
TIMEOUT = 10  # seconds for any one answer


class Failed(Exception):
    pass


# --- encoding ----------------------------------------------------------------

def svarint(v):
    return varint(zigzag(v))


def string(b):
    if isinstance(b, str):
        b = b.encode()
    return varint(len(b)) + b


def vclock(entries):
    """{site: counter}, encoded with sites in increasing (memcmp) order."""
    out = varint(len(entries))
    for site in sorted(entries):
        out += site + varint(entries[site])
    return out


def value(v):
    if v is None:
        return b"\x00"
    if isinstance(v, bool):
        raise TypeError("no booleans on the wire")
    if isinstance(v, int):
        return b"\x01" + svarint(v)
    if isinstance(v, float):
        return b"\x02" + struct.pack("<d", v)
    if isinstance(v, str):
        return b"\x03" + string(v)
    return b"\x04" + string(v)


# A dot (site id, counter) that every batch's context names besides its
# own, when given on the command line: a batch the hub lacks, so that it
# cannot apply the batch yet.
WAIT_FOR = None


LAMPORT = None  # a Lamport number to state in the batch (batch-lamport-*)


def batch(site, tables, changes, counter=1):
    """
    One batch with the dot (site, counter) and the causal context {site:
    counter} (and WAIT_FOR), whose changes all carry that dot.  tables:
    (name, [columns], [pk column indexes]); changes: (table index, op,
    [pk values], {column index: value}).
    """
    context = {site: counter}
    if WAIT_FOR and WAIT_FOR[0] != site:
        context[WAIT_FOR[0]] = WAIT_FOR[1]
    out = varint(BATCH_HAS_CLOCK | BATCH_HAS_DOT | (0x4 if LAMPORT is not None else 0))
    out += vclock(context)
    out += site + varint(counter)
    if LAMPORT is not None:
        out += varint(LAMPORT)
    out += varint(len(tables))
    for name, cols, pk in tables:
        out += string(name) + varint(len(cols))
        for c in cols:
            out += string(c)
        out += varint(len(pk))
        for i in pk:
            out += varint(i)
    out += varint(1) + site          # one site: no site index per change
    out += varint(len(changes))
    prev = 0
    for t, op, pk, vals in changes:
        out += varint(t << 2 | op)
        out += svarint(counter - prev)
        prev = counter
        for v in pk:
            out += value(v)
        if op != OP_DELETE:
            ncols = len(tables[t][1])
            mask = bytearray((ncols + 7) // 8)
            for i in vals:
                mask[i // 8] |= 1 << (i % 8)
            out += bytes(mask)
            for i in sorted(vals):
                out += value(vals[i])
    return out


def schema(gen, objects):
    """objects: (type, name, table, sql)."""
    out = varint(1) + varint(gen) + varint(len(objects))
    for ty, name, table, sql in objects:
        out += varint(ty) + string(name) + string(table) + string(sql)
    return out


# --- decoding ----------------------------------------------------------------

def rd_varint(b, i):
    try:
        return rawpeer_varint(b, i)
    except IndexError:
        raise Failed("truncated varint") from None


def rd_string(b, i):
    n, i = rd_varint(b, i)
    if i + n > len(b):
        raise Failed("truncated string")
    return b[i:i + n].decode("utf-8", "replace"), i + n


def parse_schema(b):
    fmt, i = rd_varint(b, 0)
    if fmt != 1:
        raise Failed("schema record format %d" % fmt)
    gen, i = rd_varint(b, i)
    n, i = rd_varint(b, i)
    objs = []
    for _ in range(n):
        ty, i = rd_varint(b, i)
        name, i = rd_string(b, i)
        table, i = rd_string(b, i)
        sql, i = rd_string(b, i)
        objs.append((ty, name, table, sql))
    return fmt, gen, objs


def parse_error(b):
    code, i = rd_varint(b, 0)
    return (code >> 1) ^ -(code & 1), b[i:].decode("utf-8", "replace")


# --- a session ---------------------------------------------------------------

class Session:
    """One connection to the hub, read frame by frame."""

    def __init__(self, addr, label):
        if not addr.startswith("unix:"):
            raise Failed("ADDR must be unix:PATH")
        self.label = label
        self.site = os.urandom(16)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(addr[5:])
        self.buf = b""
        self.preamble = False
        self.eof = False

    def trace(self, msg):
        sys.stderr.write("%s: %s\n" % (self.label, msg))

    def send(self, data):
        self.s.sendall(data)

    def next_frame(self, deadline):
        """(type, flags, channel, payload), or None at end of stream or
        at the deadline (self.eof tells which)."""
        while True:
            if not self.preamble and len(self.buf) >= len(PREAMBLE):
                if self.buf[:len(PREAMBLE)] != PREAMBLE:
                    raise Failed("%s: not a wsync stream: %s" %
                                 (self.label, self.buf[:16].hex()))
                self.buf = self.buf[len(PREAMBLE):]
                self.preamble = True
            if self.preamble and len(self.buf) >= 14:
                ftype, flags, ch, n = struct.unpack_from("<BBII", self.buf)
                if len(self.buf) >= 14 + n:
                    whole = self.buf[:10 + n]
                    (crc,) = struct.unpack_from("<I", self.buf, 10 + n)
                    if crc != crc32c(whole):
                        raise Failed("%s: bad CRC in a frame of type %d" %
                                     (self.label, ftype))
                    self.buf = self.buf[14 + n:]
                    return ftype, flags, ch, whole[10:]
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                b = self.s.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                b = b""
            if not b:
                self.eof = True
            self.buf += b

    def join(self, wsid):
        """Hello and add; read up to the CAUGHT_UP clock.  Returns the
        hub's schema record (format, generation, objects)."""
        self.send(PREAMBLE + frame(T_HELLO, 0, varint(1) + varint(0) + self.site) +
                  frame(T_ADD, CH, string(wsid) + varint(0) + vclock({})))
        record = None
        deadline = time.monotonic() + TIMEOUT
        while True:
            f = self.next_frame(deadline)
            if f is None:
                raise Failed("%s: the hub %s during the handshake" % (
                    self.label, "closed the connection" if self.eof else
                    "did not finish its catch-up"))
            ftype, flags, ch, pl = f
            if ftype == T_ERROR:
                raise Failed("%s: the hub refused the handshake: %d %s" %
                             ((self.label,) + parse_error(pl)))
            if ftype == T_SCHEMA:
                record = parse_schema(pl)
                self.trace("schema generation %d, %d objects" %
                           (record[1], len(record[2])))
            elif ftype == T_CLOCK:
                self.trace("clock flags %#x on channel %d" % (flags, ch))
                if flags & CLOCK_CAUGHT_UP:
                    break
            else:
                self.trace("frame type %#x on channel %d" % (ftype, ch))
        if record is None:
            raise Failed("%s: no schema record before CAUGHT_UP" % self.label)
        return record

    def close(self):
        self.s.close()


# --- the cases ---------------------------------------------------------------

NOTES = ("notes", ["id", "title", "n"], [0])
S = ("s", ["k", "v"], [0])
# Every hostile batch first carries a change the schema takes, so that a
# hub that applied changes one by one, without refusing the batch whole,
# would leave this row behind (batch-legit sends it alone).
LEGIT = (0, OP_INSERT, [100], {1: "legit"})  # s(k = 100, v = 'legit')


def b_legit(site):
    return batch(site, [S], [LEGIT])


def b_impersonation(site):
    # The victim's next dot (SITE:COUNTER on the command line): taken, it
    # would make the hub skip the victim's real batch as a duplicate.
    victim, counter = WAIT_FOR
    return batch(victim, [S, NOTES], [LEGIT, (1, OP_INSERT, [77], {1: "forged", 2: 7})],
                 counter)


def b_lamport_max(site):
    # A Lamport number of 2^64 - 1 would win every conflict for ever.
    global LAMPORT
    LAMPORT = 2 ** 64 - 1
    return batch(site, [S, NOTES], [LEGIT, (1, OP_UPDATE, [1], {1: "forever"})])


def b_far_future(site):
    # A dot a million batches ahead: it could only wait, for ever.
    return batch(site, [S], [LEGIT], 1000000)


def b_70_columns(site):
    cols = ["id", "title", "n"] + ["c%d" % i for i in range(3, 70)]
    return batch(site, [S, ("notes", cols, [0])],
                 [LEGIT, (1, OP_INSERT, [100], {1: "wide", 69: 1})])


def b_null_key(site):
    return batch(site, [S, NOTES], [LEGIT, (1, OP_INSERT, [None], {1: "t"})])


def b_text_in_integer_key(site):
    return batch(site, [S, NOTES], [LEGIT, (1, OP_INSERT, ["abc"], {1: "t"})])


def b_unknown_column(site):
    notes = ("notes", ["id", "title", "n", "bogus"], [0])
    return batch(site, [S, notes],
                 [LEGIT, (1, OP_INSERT, [100], {1: "t", 3: "x"})])


def b_unknown_table(site):
    return batch(site, [S, ("nope", ["id", "x"], [0])],
                 [LEGIT, (1, OP_INSERT, [1], {1: "x"})])


def b_null_in_notnull(site):
    return batch(site, [S, NOTES], [LEGIT, (1, OP_INSERT, [100], {1: None, 2: 5})])


def b_strict_type(site):
    # A BLOB for the TEXT column of a STRICT table.
    return batch(site, [S], [LEGIT, (0, OP_INSERT, [101], {1: b"\x00\xff"})])


def b_duplicate_column(site):
    notes = ("notes", ["id", "title", "title"], [0])
    return batch(site, [S, notes],
                 [LEGIT, (1, OP_INSERT, [100], {1: "t1", 2: "t2"})])


def b_nan_in_notnull(site):
    # SQLite stores a NaN as NULL: this is NULL for a NOT NULL column.
    return batch(site, [S, NOTES],
                 [LEGIT, (1, OP_INSERT, [100], {1: float("nan"), 2: 5})])


def b_text_key_delete(site):
    # A key no row of an INTEGER PRIMARY KEY table can have.
    return batch(site, [S, NOTES], [LEGIT, (1, OP_DELETE, ["abc"], {})])


def record_with(record, obj):
    """
    The hub's record at the hub's own generation (a record from a site
    that has seen everything), with changes the hub takes first: a new
    table 'fresh', and a column 'extra' added at the end of notes (an
    ALTER TABLE ADD COLUMN); then obj, in place of the object of the same
    type and name, or at the end.  A hub that adopted records piecemeal
    would keep 'fresh' or 'extra' (schema-legit sends them alone).
    """
    _fmt, gen, objs = record
    out = [(OBJ_TABLE, "fresh", "fresh",
            "CREATE TABLE fresh(id INTEGER PRIMARY KEY, x)")]
    for o in objs:
        if obj and (o[0], o[1]) == (obj[0], obj[1]):
            out.append(obj)
            obj = None
        elif (o[0], o[1]) == (OBJ_TABLE, "notes"):
            k = o[3].rindex(")")
            out.append(o[:3] + (o[3][:k] + ", extra TEXT" + o[3][k:],))
        else:
            out.append(o)
    if obj:
        out.append(obj)
    return schema(gen, out)


def s_legit(record):
    return record_with(record, None)


def s_70_columns(record):
    cols = ", ".join("c%d" % i for i in range(1, 70))
    return record_with(record, (OBJ_TABLE, "wide", "wide",
                                "CREATE TABLE wide(id INTEGER PRIMARY KEY, %s)" % cols))


def s_two_statements(record):
    return record_with(record, (OBJ_TABLE, "t", "t",
                                "CREATE TABLE t(id INTEGER PRIMARY KEY); DROP TABLE notes"))


def s_differs(record):
    return record_with(record, (OBJ_TABLE, "notes", "notes",
                                "CREATE TABLE notes(id INTEGER PRIMARY KEY, "
                                "title BLOB NOT NULL, n TEXT)"))


def s_add_column_injection(record):
    # notes' own text with a "column" that ends its ALTER TABLE and
    # attaches a file: tried as ADD COLUMN text, it must run as one
    # statement or not at all (the hub's cwd would get pwned.db).
    _fmt, _gen, objs = record
    sql = [o[3] for o in objs if (o[0], o[1]) == (OBJ_TABLE, "notes")][0]
    k = sql.rindex(")")
    evil = ", x INT; ATTACH DATABASE 'pwned.db' AS p; CREATE TABLE z(a INT"
    return record_with(record, (OBJ_TABLE, "notes", "notes", sql[:k] + evil + sql[k:]))


def s_evil_trigger(record):
    return record_with(record, (OBJ_TRIGGER, "evil", "notes",
                                "CREATE TRIGGER evil AFTER INSERT ON notes "
                                "BEGIN DELETE FROM wsync_log; END"))


def s_evil_view(record):
    return record_with(record, (OBJ_VIEW, "peek", "peek",
                                "CREATE VIEW peek AS SELECT * FROM wsync_log"))


def s_create_as_select(record):
    # The create authorizer lets a CREATE read: SQLite stores its own text
    # for a CREATE TABLE ... AS SELECT, and a copy of the change log.
    return record_with(record, (OBJ_TABLE, "leak", "leak",
                                "CREATE TABLE leak AS SELECT * FROM wsync_log"))


def s_index_elsewhere(record):
    # The record says the index is on notes; its SQL puts it on wsync_log.
    return record_with(record, (OBJ_INDEX, "ix", "notes",
                                "CREATE INDEX ix ON wsync_log(op)"))


def s_wrong_name(record):
    return record_with(record, (OBJ_TABLE, "a", "a",
                                "CREATE TABLE b(id INTEGER PRIMARY KEY)"))


def s_virtual_module(record):
    # Only FTS5 on a tracked content table travels: never another module
    # (dbstat reads every page of the file; others may write outside it).
    return record_with(record, (OBJ_TABLE, "pages", "pages",
                                "CREATE VIRTUAL TABLE pages USING dbstat"))


def s_fts_untracked_content(record):
    # An FTS5 table whose content is the change log.
    return record_with(record, (OBJ_TABLE, "logidx", "logidx",
                                "CREATE VIRTUAL TABLE logidx USING "
                                "fts5(op, content='wsync_log')"))


def s_fts_disguised(record):
    # The text says fts5 in an argument, but the module is dbstat.
    return record_with(record, (OBJ_TABLE, "pages", "pages",
                                "CREATE VIRTUAL TABLE pages USING "
                                "dbstat(fts5, content='notes')"))


BATCHES = {
    "batch-legit": b_legit,
    "batch-70-columns": b_70_columns,
    "batch-null-key": b_null_key,
    "batch-text-in-integer-key": b_text_in_integer_key,
    "batch-unknown-column": b_unknown_column,
    "batch-unknown-table": b_unknown_table,
    "batch-null-in-notnull": b_null_in_notnull,
    "batch-strict-type": b_strict_type,
    "batch-duplicate-column": b_duplicate_column,
    "batch-nan-in-notnull": b_nan_in_notnull,
    "batch-text-key-delete": b_text_key_delete,
    "batch-impersonation": b_impersonation,
    "batch-lamport-max": b_lamport_max,
    "batch-far-future": b_far_future,
}
SCHEMAS = {
    "schema-legit": s_legit,
    "schema-70-columns": s_70_columns,
    "schema-two-statements": s_two_statements,
    "schema-differs": s_differs,
    "schema-evil-trigger": s_evil_trigger,
    "schema-add-column-injection": s_add_column_injection,
    "schema-evil-view": s_evil_view,
    "schema-wrong-name": s_wrong_name,
    "schema-create-as-select": s_create_as_select,
    "schema-index-elsewhere": s_index_elsewhere,
    "schema-virtual-module": s_virtual_module,
    "schema-fts-untracked-content": s_fts_untracked_content,
    "schema-fts-disguised": s_fts_disguised,
}


# --- main --------------------------------------------------------------------

def attack(addr, wsid, case):
    watcher = Session(addr, "watcher")
    watcher.join(wsid)
    a = Session(addr, "attacker")
    record = a.join(wsid)
    names = {o[1] for o in record[2] if o[0] == OBJ_TABLE}
    if not {"notes", "s"} <= names:
        raise Failed("working set '%s' lacks table notes or s: it has %s" %
                     (wsid, ", ".join(sorted(names)) or "none"))
    if case in BATCHES:
        hostile = frame(T_BATCH, CH, BATCHES[case](a.site))
        mine = {a.site: 1}
    else:
        hostile = frame(T_SCHEMA, CH, SCHEMAS[case](record))
        mine = {}
    a.trace("sends %s" % case)
    a.send(hostile + frame(T_CLOCK, CH, vclock(mine), flags=CLOCK_SYNC))

    # Until the hub closes the connection or confirms the SYNC.
    deadline = time.monotonic() + TIMEOUT
    while True:
        f = a.next_frame(deadline)
        if f is None:
            break
        ftype, flags, ch, pl = f
        if ftype == T_ERROR:
            print("error %d %s" % parse_error(pl))
        elif ftype == T_CLOCK and flags & CLOCK_ACK:
            print("ack")
            break
        else:
            a.trace("then frame type %#x flags %#x on channel %d" % (ftype, flags, ch))
    print("closed" if a.eof else "open")
    a.close()

    # Whatever the hub forwarded was queued before the answer to this.
    watcher.send(frame(T_CLOCK, CH, vclock({}), flags=CLOCK_SYNC))
    nb = ns = 0
    deadline = time.monotonic() + TIMEOUT
    while True:
        f = watcher.next_frame(deadline)
        if f is None:
            raise Failed("watcher: no ACK from the hub")
        ftype, flags, ch, pl = f
        if ftype == T_BATCH:
            nb += 1
        elif ftype == T_SCHEMA:
            ns += 1
        elif ftype == T_CLOCK and flags & CLOCK_ACK:
            break
        elif ftype == T_ERROR:
            raise Failed("watcher: the hub ends the session: %d %s" % parse_error(pl))
    watcher.close()
    print("forwarded %d batch %d schema" % (nb, ns))


def parse_dot(text):
    """SITE:COUNTER (32 hex digits, counter >= 1), or None."""
    site, _, counter = text.partition(":")
    try:
        dot = (bytes.fromhex(site), int(counter))
    except ValueError:
        return None
    return dot if len(dot[0]) == 16 and dot[1] >= 1 else None


def main():
    global WAIT_FOR
    args = sys.argv[1:]
    if len(args) == 4 and args[2] in BATCHES:
        WAIT_FOR = parse_dot(args.pop())
    if len(args) != 3 or args[2] not in list(BATCHES) + list(SCHEMAS) or \
            (len(sys.argv) == 5 and not WAIT_FOR):
        sys.stderr.write("usage: hostile.py unix:PATH WSID CASE [SITE:COUNTER]\n"
                         "cases: %s\n" % " ".join(list(BATCHES) + list(SCHEMAS)))
        return 2
    try:
        attack(*args)
    except (Failed, OSError) as e:
        sys.stderr.write("hostile.py: %s\n" % e)
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
