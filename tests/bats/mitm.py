# SPDX-License-Identifier: MIT
# mitm.py - a man in the middle for 70-secure.bats: listen on a loopback
# port, relay each connection to the hub at HOST:PORT, and meddle with the
# frames the site sends, the way an attacker on the path could.
#
#     python3 mitm.py LISTEN_PORT HUB_HOST HUB_PORT MODE
#
# MODE (applied to the site's frames, after its preamble):
#     pass           relay unchanged
#     tap            relay unchanged, and append the site's bytes to the
#                    file named by $MITM_TAP
#     flip           flip one byte inside the site's 2nd sealed frame
#     replay         send the site's 2nd sealed frame twice
#     drop           leave out the site's 2nd sealed frame
#     cut-auth       relay 30 bytes of the site's first handshake frame,
#                    then close both connections
#     plain-hub      do not relay at all: answer the site's handshake as a
#                    hub that speaks plain (a preamble and a plain hello),
#                    a downgrade attack
# Prints "ready" once listening; serves connections until killed.

import socket
import struct
import sys
import threading

PREAMBLE = bytes.fromhex("895753594e430d0a0100")
SEALED = 0x08


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frame(ftype, ch, payload):
    h = struct.pack("<BBII", ftype, 0, ch, len(payload))
    return h + payload + struct.pack("<I", crc32c(h + payload))


def recv_exact(s, n):
    b = b""
    while len(b) < n:
        k = s.recv(n - len(b))
        if not k:
            return None
        b += k
    return b


def pipe(src, dst):
    try:
        while True:
            b = src.recv(65536)
            if not b:
                break
            dst.sendall(b)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def site_to_hub(site, hub, mode):
    """Relay the site's frames one by one, meddling as MODE says."""
    tap = open(__import__("os").environ["MITM_TAP"], "ab") if mode == "tap" else None
    try:
        pre = recv_exact(site, len(PREAMBLE))
        if pre is None:
            return
        hub.sendall(pre)
        sealed = 0
        while True:
            hdr = recv_exact(site, 10)
            if hdr is None:
                break
            ftype, _flags, _ch, n = struct.unpack("<BBII", hdr)
            rest = recv_exact(site, n + 4)
            if rest is None:
                break
            whole = hdr + rest
            if mode == "cut-auth":
                hub.sendall(whole[:30])
                break
            if ftype == SEALED:
                sealed += 1
                if sealed == 2:
                    if mode == "flip":
                        # A bit inside the ciphertext, with the CRC fixed
                        # up so only the encryption can tell.
                        body = bytearray(whole[:-4])
                        body[10 + n // 2] ^= 0x01
                        whole = bytes(body) + struct.pack("<I", crc32c(bytes(body)))
                    elif mode == "replay":
                        hub.sendall(whole)
                    elif mode == "drop":
                        continue
            if tap:
                tap.write(whole)
                tap.flush()
            hub.sendall(whole)
    except OSError:
        pass
    for s in (site, hub):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def plain_hub(site):
    try:
        recv_exact(site, len(PREAMBLE))
        hdr = recv_exact(site, 10)
        if hdr:
            recv_exact(site, struct.unpack("<BBII", hdr)[3] + 4)
        # hello: varint version 1, varint role 1 (hub), 16-byte site id
        site.sendall(PREAMBLE + frame(0x01, 0, bytes([1, 1]) + bytes(16)))
        while site.recv(65536):
            pass
    except OSError:
        pass
    site.close()


def serve(conn, hub_addr, mode):
    if mode == "plain-hub":
        plain_hub(conn)
        return
    hub = socket.create_connection(hub_addr)
    threading.Thread(target=pipe, args=(hub, conn), daemon=True).start()
    site_to_hub(conn, hub, mode)


def main():
    if len(sys.argv) != 5:
        print("usage: mitm.py LISTEN_PORT HUB_HOST HUB_PORT MODE", file=sys.stderr)
        sys.exit(2)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen(16)
    print("ready", flush=True)
    hub_addr = (sys.argv[2], int(sys.argv[3]))
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c, hub_addr, sys.argv[4]),
                         daemon=True).start()


main()
