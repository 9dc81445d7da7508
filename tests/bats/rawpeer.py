# SPDX-License-Identifier: MIT
# rawpeer.py - a misbehaving peer for 20-sync.bats: connect to a hub,
# send hand-built bytes, and report what the hub answers.
#
#     python3 rawpeer.py ADDR CASE
#     python3 rawpeer.py --error-stream CODE MESSAGE
#
# ADDR is HOST:PORT or unix:PATH.  CASE names the bytes sent (see CASES),
# or is file:PATH (the bytes of a file, as the bad-input catalogue in
# tests/bad-input/ keeps them) or file-eof:PATH (the same, then our
# writing side is closed, so that a truncated stream ends).
# Prints, one a line:
#     peer NAME          the hub's name for us ("127.0.0.1:PORT", or "unix")
#     closed             the hub closed the connection (within 10 s), or
#     open               it did not
#     error CODE MSG     each ERROR frame the hub sent (code as a signed int)
#     frame TYPE CH      each other frame
#     junk HEX           bytes that are not a preamble and frames
# Exits 0 once the answer is read; 2 on a usage error.
#
# With --error-stream, it writes to stdout what a hub that ends the
# session at once sends: the preamble and one ERROR frame on channel 0
# (svarint CODE, then MESSAGE).
#
# Frames are built from frame.h by hand, with an independent bitwise
# CRC-32C, so the hub is not checked against its own encoder.

import socket
import struct
import sys
import time


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value

PREAMBLE = bytes.fromhex("895753594e430d0a0100")
SITE = bytes(range(16))


def frame(ftype, ch, payload, flags=0, length=None):
    """header (type u8, flags u8, channel u32le, length u32le), payload, CRC."""
    n = len(payload) if length is None else length
    h = struct.pack("<BBII", ftype, flags, ch, n)
    return h + payload + struct.pack("<I", crc32c(h + payload))


def hello(version, role=0):
    # varint version, varint role, 16-byte site id (session.c)
    return frame(0x01, 0, bytes([version, role]) + SITE)


# What each case sends, and whether we then close our writing side (a
# truncated frame is only truncated once the stream ends).
CASES = {
    "garbage": (b"garbage", True),
    "truncated": (PREAMBLE + hello(1)[:15], True),
    # A 4 GiB frame: the hub must refuse the length, not wait for it.
    "oversized": (PREAMBLE + struct.pack("<BBII", 0x01, 0, 0, 0xFFFFFFF0), False),
    "version": (PREAMBLE + hello(2), False),
    "stream-version": (bytes.fromhex("895753594e430d0a0200") + hello(1), False),
    "bad-crc": (PREAMBLE + hello(1)[:-1] + bytes([hello(1)[-1] ^ 0xFF]), False),
    "no-hello": (PREAMBLE + frame(0x11, 1, b""), False),
    # A secure handshake's first step in a version the hub does not speak.
    "auth-version": (PREAMBLE + frame(0x07, 0, bytes([1, 2]) + bytes(64)), False),
}


def unzigzag(v):
    return (v >> 1) ^ -(v & 1)


def varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def describe(got):
    out = []
    if not got:
        return out
    if got[:10] != PREAMBLE:
        return ["junk " + got.hex()]
    i = 10
    while i < len(got):
        if len(got) - i < 14:
            out.append("junk " + got[i:].hex())
            break
        ftype, _flags, ch, n = struct.unpack_from("<BBII", got, i)
        if len(got) - i < 14 + n:
            out.append("junk " + got[i:].hex())
            break
        payload = got[i + 10:i + 10 + n]
        (crc,) = struct.unpack_from("<I", got, i + 10 + n)
        if crc != crc32c(got[i:i + 10 + n]):
            out.append("junk " + got[i:].hex())
            break
        if ftype == 0x02:
            code, j = varint(payload, 0)
            out.append("error %d %s" % (unzigzag(code),
                                        payload[j:].decode("utf-8", "replace")))
        else:
            out.append("frame %d %d" % (ftype, ch))
        i += 14 + n
    return out


def zigzag(v):
    return (v << 1) ^ (v >> 63)


def put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--error-stream":
        payload = put_varint(zigzag(int(sys.argv[2]))) + sys.argv[3].encode()
        sys.stdout.buffer.write(PREAMBLE + frame(0x02, 0, payload))
        return 0
    if len(sys.argv) == 3 and sys.argv[2].startswith(("file:", "file-eof:")):
        kind, path = sys.argv[2].split(":", 1)
        with open(path, "rb") as f:
            CASES[sys.argv[2]] = (f.read(), kind == "file-eof")
    if len(sys.argv) != 3 or sys.argv[2] not in CASES:
        sys.stderr.write("usage: rawpeer.py ADDR CASE (%s, file:PATH, "
                         "file-eof:PATH)\n" % " ".join(CASES))
        return 2
    addr, case = sys.argv[1], sys.argv[2]
    data, shut = CASES[case]
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[5:])
        print("peer unix")
    else:
        host, port = addr.rsplit(":", 1)
        s = socket.create_connection((host, int(port)), timeout=10)
        print("peer %s:%d" % s.getsockname()[:2])
    sys.stdout.flush()
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    got = b""
    closed = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = True
            break
        if not b:
            closed = True
            break
        got += b
    s.close()
    print("closed" if closed else "open")
    for line in describe(got):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
