#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# httpraw.py - a hostile HTTP client for http.bats: bytes a well-behaved
# client (curl) would not send, against a real publisher on loopback.
#
#     httpraw.py send HOST:PORT        send stdin as it is, print the
#                                      response's status line, then its body
#     httpraw.py half HOST:PORT SECS   send half a request head and wait up
#                                      to SECS for the publisher to close;
#                                      print "closed after N s" or "open"
import socket
import sys
import time


def connect(addr):
    host, port = addr.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def read_all(s):
    data = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not d:
            break
        data += d
    return data


def send(addr):
    s = connect(addr)
    try:
        s.sendall(sys.stdin.buffer.read())
    except (BrokenPipeError, ConnectionResetError):
        pass
    resp = read_all(s)
    head, _, body = resp.partition(b"\r\n\r\n")
    print(head.split(b"\r\n")[0].decode("latin-1") if head else "(closed)")
    sys.stdout.write(body.decode("utf-8", "replace"))


def half(addr, secs):
    s = connect(addr)
    s.sendall(b"POST /replicate HTTP/1.1\r\nHost: localhost\r\nContent-Le")
    start = time.monotonic()
    s.settimeout(secs)
    try:
        while s.recv(4096):
            pass
        print("closed after %d s" % round(time.monotonic() - start))
    except socket.timeout:
        print("open")
    except ConnectionResetError:
        print("closed after %d s" % round(time.monotonic() - start))


if __name__ == "__main__":
    if sys.argv[1] == "send":
        send(sys.argv[2])
    elif sys.argv[1] == "half":
        half(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit("httpraw.py: unknown command '%s'" % sys.argv[1])
