#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# mkinput.py - write the hand-built session streams of the bad-input
# catalogue (the other inputs are cut from tests/data/ golden files by
# their case files).  Frames are built from frame.h and delta.h by hand,
# with rawpeer.py's independent CRC-32C, so the hub is not checked against
# its own encoder.
#
#     python3 tests/bad-input/mkinput.py     (rewrites the files below)
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bats"))
from rawpeer import PREAMBLE, SITE, frame, hello, put_varint  # noqa: E402


def s(b):
    """delta.h str: varint length, then the bytes."""
    return put_varint(len(b)) + b


def add(wsid):
    """session.h ADD payload: str wsid, varint flags (no guid), empty clock."""
    return s(wsid) + put_varint(0) + put_varint(0)


def batch(table, cols, pkidx):
    """One insert of (1, 'x') into table: no clock, no batch dot."""
    out = put_varint(0)                            # flags
    out += put_varint(1) + s(table)                # ntables, name
    out += put_varint(len(cols)) + b"".join(s(c) for c in cols)
    out += put_varint(1) + put_varint(pkidx)       # npk, pk index
    out += put_varint(1) + SITE                    # nsites, site
    out += put_varint(1)                           # nchanges
    out += put_varint(0 << 2 | 1)                  # table 0, insert
    out += put_varint(2)                           # counter 1 (zigzag)
    out += bytes([1]) + put_varint(2)              # pk: INTEGER 1
    out += bytes([1 << (1 - pkidx)])               # mask: the other column
    out += bytes([3]) + s(b"x")                    # TEXT 'x'
    return out


def session(table, cols, pkidx):
    return (PREAMBLE + hello(1) + frame(0x04, 1, add(b"notes")) +
            frame(0x10, 1, batch(table, cols, pkidx)))


def write(path, data):
    with open(os.path.join(HERE, path), "wb") as f:
        f.write(data)


def flip_last(b):
    return b[:-1] + bytes([b[-1] ^ 0xFF])


START = PREAMBLE + hello(1)
ADD = frame(0x04, 1, add(b"notes"))
STREAMS = {
    # The ADD frame cut after 9 of its 19 bytes, then the stream ends.
    "truncated/stream.bin": START + ADD[:9],
    # A frame header announcing 2 GiB - 16 bytes, and nothing after it.
    "oversized-length/stream.bin": START + bytes([0x04, 0, 1, 0, 0, 0]) +
    (0x7FFFFFF0).to_bytes(4, "little"),
    "wrong-magic/stream.bin": b"GIF89a\x01\x00\x01\x00\x00\xff\x00," + START,
    # Stream version 2 in the preamble.
    "wrong-version/stream.bin": PREAMBLE[:8] + b"\x02\x00" + hello(1) + ADD,
    # The ADD frame's last CRC byte inverted.
    "bad-checksum/stream.bin": START + flip_last(ADD),
    # A table the hub may not hold: its names are reserved for wsync.
    "unknown-table/stream.bin": session(b"wsync_evil", [b"id", b"v"], 0),
}
for path, data in STREAMS.items():
    os.makedirs(os.path.join(HERE, os.path.dirname(path)), exist_ok=True)
    write(path, data)
