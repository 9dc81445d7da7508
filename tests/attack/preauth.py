# SPDX-License-Identifier: MIT
# preauth.py - unauthenticated connections against a hub, for preauth.bats:
# nothing here ever says hello, so nothing here holds a key.
#
#     python3 preauth.py ADDR idle N SECONDS
#         open N connections, send nothing; after SECONDS print how many
#         the hub had closed ("closed K of N"), then close them all
#     python3 preauth.py ADDR huge N
#         open N connections; on each, send the preamble and the header of
#         a frame that announces 256 MiB, then one byte of it every 0.2 s
#         for 3 s; print "closed K of N" (how many the hub closed by then)
#         and each distinct first ERROR frame text the hub sent
#
# ADDR is HOST:PORT or unix:PATH.  Exit 0 once done, 2 on a usage error.

import os
import select
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "bats"))
from rawpeer import PREAMBLE, crc32c  # noqa: E402,F401


def connect(addr):
    if addr.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(addr[5:])
    else:
        host, _, port = addr.rpartition(":")
        s = socket.create_connection((host.strip("[]"), int(port)))
    s.setblocking(False)
    return s


def closed(s, got):
    """Has the hub closed s?  Keeps what it sent in got[s]."""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return True
            got.setdefault(s, b"")
            got[s] += b
    except BlockingIOError:
        return False
    except OSError:
        return True


def errors(got):
    """The text of the first ERROR frame in each stream, distinct."""
    out = set()
    for b in got.values():
        b = b[len(PREAMBLE):] if b.startswith(PREAMBLE) else b
        while len(b) >= 14:
            ftype, _flags, _ch, n = struct.unpack("<BBII", b[:10])
            body = b[10:10 + n]
            if ftype == 0x02 and len(body) == n:
                # svarint code, then the message
                i = 0
                while body[i] & 0x80:
                    i += 1
                out.add(body[i + 1:].decode("utf-8", "replace"))
                break
            b = b[14 + n:]
    return sorted(out)


def main():
    a = sys.argv[1:]
    if len(a) < 3 or a[1] not in ("idle", "huge"):
        sys.stderr.write(__doc__)
        return 2
    addr, mode, n = a[0], a[1], int(a[2])
    socks, got = [], {}
    for _ in range(n):
        try:
            socks.append(connect(addr))
        except OSError as e:
            sys.stderr.write("preauth.py: connect: %s\n" % e)
            break
    if mode == "idle":
        time.sleep(float(a[3]))
    else:
        header = struct.pack("<BBII", 0x01, 0, 0, 256 << 20)
        for s in socks:
            try:
                s.send(PREAMBLE + header)
            except OSError:
                pass
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for s in socks:
                try:
                    s.send(b"x")
                except OSError:
                    pass
            select.select([], [], [], 0.2)
    k = sum(1 for s in socks if closed(s, got))
    print("closed %d of %d" % (k, len(socks)))
    for e in errors(got):
        print("error %s" % e)
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
