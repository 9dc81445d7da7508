# SPDX-License-Identifier: MIT
# relay.py - a relay for 50-replicate.bats: listen on LISTEN, relay each
# connection to TARGET, and watch or hold what passes, so that tests of
# wsync-replicate's stream sessions are deterministic.
#
#     python3 relay.py LISTEN TARGET MODE
#
# LISTEN and TARGET are unix:PATH or HOST:PORT.  MODE:
#     tap    relay both directions unchanged, appending every byte to the
#            file named by $RELAY_TAP
#     hold   relay the replicator's JSON lines at once; once one with
#            "mt":"ReplicateUpdate" has gone to the publisher, hold every
#            byte the publisher sends (print "holding"), until the file
#            named by $RELAY_RELEASE exists: then send all that was held
#            in one write (print "released") and relay as usual
# Prints "ready" once listening; serves connections until killed.

import os
import socket
import sys
import threading
import time


def addr_of(a):
    if a.startswith("unix:"):
        return socket.AF_UNIX, a[5:]
    host, port = a.rsplit(":", 1)
    return socket.AF_INET, (host, int(port))


def say(line):
    print(line, flush=True)


def shut(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Conn:
    def __init__(self, client, target, mode):
        self.client = client
        self.mode = mode
        fam, a = addr_of(target)
        self.server = socket.socket(fam, socket.SOCK_STREAM)
        self.server.connect(a)
        self.hold = threading.Event()
        self.tap = open(os.environ["RELAY_TAP"], "ab") if mode == "tap" else None
        self.lock = threading.Lock()

    def record(self, b):
        if self.tap:
            with self.lock:
                self.tap.write(b)
                self.tap.flush()

    def up(self):
        """Replicator to publisher."""
        pending = b""
        try:
            while True:
                b = self.client.recv(65536)
                if not b:
                    break
                self.record(b)
                if self.mode == "hold" and not self.hold.is_set():
                    pending += b
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if b'"mt":"ReplicateUpdate"' in line:
                            # Hold the answers before the publisher can send any.
                            self.hold.set()
                self.server.sendall(b)
        except OSError:
            pass
        shut(self.client, self.server)

    def down(self):
        """Publisher to replicator."""
        held = b""
        released = False
        try:
            while True:
                b = self.server.recv(65536)
                if not b:
                    break
                self.record(b)
                if self.hold.is_set() and not released:
                    if not held:
                        say("holding")
                    held += b
                    while not os.path.exists(os.environ["RELAY_RELEASE"]):
                        time.sleep(0.05)
                        self.server.settimeout(0.05)
                        try:
                            more = self.server.recv(65536)
                            if not more:
                                break
                            held += more
                        except socket.timeout:
                            pass
                    self.server.settimeout(None)
                    self.client.sendall(held)
                    released = True
                    say("released")
                    continue
                self.client.sendall(b)
        except OSError:
            pass
        shut(self.client, self.server)

    def run(self):
        threading.Thread(target=self.down, daemon=True).start()
        self.up()


def main():
    if len(sys.argv) != 4:
        print("usage: relay.py LISTEN TARGET MODE", file=sys.stderr)
        sys.exit(2)
    fam, a = addr_of(sys.argv[1])
    ls = socket.socket(fam, socket.SOCK_STREAM)
    if fam == socket.AF_INET:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(a)
    ls.listen(16)
    say("ready")
    while True:
        c, _ = ls.accept()
        try:
            conn = Conn(c, sys.argv[2], sys.argv[3])
        except OSError:
            c.close()
            continue
        threading.Thread(target=conn.run, daemon=True).start()


main()
