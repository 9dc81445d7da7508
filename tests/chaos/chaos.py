#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""chaos.py - convergence of wsync under random faults, seeded.

Runs a hub (bin/wsync-serve) and N sites (bin/wsync-join -f) as real
processes on loopback: sites reach the hub over a unix-domain socket, over
TCP, or over TCP through a small proxy in this script that can drop or
stall the connections it carries.  Meanwhile a workload writes random
inserts, updates and deletes to the sites' databases (python's sqlite3 and
the sqlite3 CLI) over a small key space, so sites often write the same
cells concurrently, and faults are injected at random: kill -9 of the hub
or of a site and a restart (the hub on the same data directory and
addresses), connections dropped or stalled and resumed by the proxy, and
SIGSTOP/SIGCONT of any process.  The hub runs with --heartbeat 1, so
garbage collection and full copies happen during the chaos; some runs use
--retain 0, so sites that were killed come back needing full copies.

Then the faults stop, the followers are given time to converge, they are
stopped, and every site syncs one-shot with the hub (rounds until quiet).
Every site and the hub must then hold identical tracked tables, identical
conflict lists, no pending batches, and PRAGMA integrity_check ok.

No lost writes.  Every value the workload writes is a unique tag
"<site>-<n>:<column>", and every write transaction first reads, in the same
transaction, every tag the site holds (tables and wsync_conflicts): what it
has seen.  Seeing is monotone at a site, so a later write X that saw tag W
and writes W's cell (or deletes W's row) causally follows W and may
replace it.  A tag that is not the final value of its cell and not in the
conflict lists must reach, through such "seen by" edges, a write the final
state shows (a current value, a conflict, or a delete whose row is absent
or was inserted again later); otherwise it is a lost write.  Also: a cell
must not hold a value a later write that saw it replaced, every final
value is one the workload wrote to that cell (or NULL, a default), and
every row inserted and never deleted by anyone exists.  With --retain 0 a
write may legitimately replace, without a conflict, a concurrent version
whose history the hub already collected (wsync(7)); such overwrites are
counted apart ("overwritten after gc"), not as lost writes.

Sessions are plain (--insecure) unless --keys: then the hub has a key
and an authorized-keys file that gives each site's own key the create
right on the working set, and every site, on each of the three routes
and in every one-shot sync, connects with its key and the hub's public
key pinned, so the faults (kills, drops and stalls of the proxy) hit
authenticated, encrypted sessions.  A connection cut during the handshake
is a lost connection like any other: a follower reconnects, a one-shot
sync exits 74.

The seed fixes the configuration, the workload's choices and the fault
schedule; process timing is the machine's, so a seed reproduces the same
storm, not always the same interleaving.  On failure the run directory is
kept and the exact command that repeats the run is printed.

Usage: chaos.py [--seed N] [--runs N] [--sites N] [--duration S]
                [--retain S] [--bin DIR] [--keep] [--check] [--constraints]
                [--keys]
"""

import argparse
import heapq
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TABLES = {
    # table: (key column, [value columns], key values)
    "t": ("k", ["a", "b"], list(range(1, 7))),
    "u": ("name", ["v", "w"], ["ann", "bob", "cy", "dee", "eve"]),
}
SCHEMA = ("CREATE TABLE t(k INTEGER PRIMARY KEY, a TEXT, b TEXT);"
          "CREATE TABLE u(name TEXT PRIMARY KEY, v TEXT, w TEXT);")
# --constraints adds an application's constraints: concurrency breaks
# UNIQUE (two accounts take one email), and merges must settle it alike on
# every copy.  Not part of make check: wsync(7) lists the clashes that do
# not converge yet, and this table finds them (a row removed by a contest
# on one copy and kept on another, now and then).
CSCHEMA = ("CREATE TABLE acct(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE,"
           " owner TEXT, n INTEGER NOT NULL DEFAULT 0 CHECK(n >= 0));")
# The constrained tables (with --constraints): compared across copies,
# but outside the lost-write oracle (a merge may remove a row in the way).
CTABLES = {}
EMAILS = ["ann@x", "bob@x", "cy@x", "dee@x"]
OBSERVE = ("SELECT a FROM t UNION ALL SELECT b FROM t UNION ALL "
           "SELECT v FROM u UNION ALL SELECT w FROM u UNION ALL "
           "SELECT value FROM wsync_conflicts")
TAG = re.compile(r"^(s\d+-\d+):(\w+)$")
BUSY_MS = 1500


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --- the proxy ----------------------------------------------------------------

class Proxy:
    """A TCP proxy on 127.0.0.1 to the hub's TCP address.  drop() resets
    every connection it carries; stall() stops forwarding (bytes wait in
    the kernel's buffers) until resume()."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.conns = []
        self.go = threading.Event()
        self.go.set()
        self.closing = False
        self.drops = 0
        self.stalls = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.upstream, timeout=2)
                u.settimeout(None)
            except OSError:
                self._kill(c)
                continue
            with self.lock:
                self.conns.append((c, u))
            threading.Thread(target=self._pump, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.go.wait(0.1):
                    if self.closing:
                        raise OSError
                dst.sendall(data)
        except OSError:
            pass
        self._close_pair(src, dst)

    def _close_pair(self, a, b):
        with self.lock:
            self.conns = [p for p in self.conns if a not in p]
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @staticmethod
    def _kill(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def drop(self):
        self.drops += 1
        with self.lock:
            conns, self.conns = self.conns, []
        for c, u in conns:
            self._kill(c)
            self._kill(u)

    def stall(self):
        self.stalls += 1
        self.go.clear()

    def resume(self):
        self.go.set()

    def close(self):
        self.closing = True
        self.go.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self.drop()


# --- processes ---------------------------------------------------------------

class Proc:
    """One wsync process that may be killed, stopped and restarted."""

    def __init__(self, name, argv, errpath):
        self.name = name
        self.argv = argv
        self.errpath = errpath
        self.p = None
        self.stopped = False
        self.starts = 0
        self.cron = False
        self.unexpected = []   # (status, stderr tail) of exits we did not cause

    def start(self):
        err = open(self.errpath, "a")
        err.write("=== start %d: %s\n" % (self.starts, " ".join(self.argv)))
        err.flush()
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err)
        err.close()
        self.starts += 1
        self.stopped = False

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def check_exit(self):
        """Note an exit nobody asked for; return True if it exited."""
        if self.p is None or self.p.poll() is None:
            return False
        rc = self.p.returncode
        self.unexpected.append((rc, tail(self.errpath, 5)))
        self.p = None
        return True

    def kill9(self):
        if self.alive():
            self.p.send_signal(signal.SIGKILL)
            self.p.wait()
        self.p = None
        self.stopped = False

    def stop(self):
        if self.alive() and not self.stopped:
            self.p.send_signal(signal.SIGSTOP)
            self.stopped = True

    def cont(self):
        if self.alive() and self.stopped:
            self.p.send_signal(signal.SIGCONT)
        self.stopped = False

    def term(self, wait=10):
        """SIGTERM and wait; status, or None if it had to be killed."""
        if self.p is None:
            return 0
        if self.stopped:
            self.cont()
        if self.p.poll() is not None:
            rc = self.p.returncode
            self.p = None
            return rc
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(wait)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            rc = None
        self.p = None
        return rc


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_for(pred, secs, step=0.05):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# --- one run -----------------------------------------------------------------

class Write:
    __slots__ = ("id", "site", "tbl", "key", "op", "cols", "seen", "t", "via")

    def __init__(self, wid, site, tbl, key, op, cols, seen, t, via):
        self.id, self.site, self.tbl, self.key, self.op = wid, site, tbl, key, op
        self.cols, self.seen, self.t, self.via = cols, seen, t, via


class Run:
    def __init__(self, cfg, root):
        self.cfg = cfg
        self.seed = cfg.seed
        self.dir = os.path.join(root, "run-%d" % cfg.seed)
        os.makedirs(self.dir)
        self.rng = random.Random(cfg.seed)
        self.bin = cfg.bin
        self.writes = []
        self.nwrite = {}
        self.failed_writes = 0
        self.faults = {}
        self.problems = []     # strings: what failed
        self.notes = []        # strings: worth knowing, not failures
        self.events = []       # heap of (time, seq, fn)
        self.evseq = 0
        self.paused = set()    # procs under SIGSTOP, to SIGCONT later
        self.down = set()      # procs killed, to restart later

    # -- set-up --
    def db(self, i):
        return os.path.join(self.dir, "s%d.db" % i)

    def setup(self):
        c = self.cfg
        self.sock = "unix:" + os.path.join(self.dir, "hub.sock")
        self.port = free_port()
        self.tcp = "127.0.0.1:%d" % self.port
        # Plain sessions (--insecure) unless --keys, where every session,
        # on the unix socket too, is authenticated and encrypted.
        if c.keys:
            self.make_keys()
            auth = ["--key", os.path.join(self.dir, "hub.key"),
                    "--authorized-keys", os.path.join(self.dir, "authorized_keys")]
        else:
            auth = ["--insecure"]
        hubargv = [os.path.join(self.bin, "wsync-serve"), "-l", self.sock, "-l", self.tcp,
                   "-d", os.path.join(self.dir, "hub"), "--create", "--heartbeat", "1",
                   "--idle-timeout", "5", "--retain", str(c.retain),
                   "--log", os.path.join(self.dir, "hub.log")] + auth
        self.hub = Proc("hub", hubargv, os.path.join(self.dir, "hub.err"))
        self.start_hub()
        self.proxy = Proxy(("127.0.0.1", self.port))
        # Site 0 holds the schema and a few rows; the others receive them.
        con = sqlite3.connect(self.db(0), isolation_level=None)
        con.executescript(SCHEMA + (CSCHEMA if self.cfg.constraints else ""))
        for k in (1, 2, 3):
            self.local_insert(con, 0, "t", k)
        for n in ("ann", "bob"):
            self.local_insert(con, 0, "u", n)
        con.close()
        self.sites = []
        for i in range(c.sites):
            self.oneshot(i, self.sock, "setup")
            addr = [self.sock, self.tcp, "127.0.0.1:%d" % self.proxy.port][i % 3]
            # The last site may be a "cron" site: a one-shot wsync-join
            # now and then instead of a follower, so sites come and go.
            cron = c.cron and i == c.sites - 1
            argv = [os.path.join(self.bin, "wsync-join")] + ([] if cron else ["-f"]) + \
                self.site_auth(i) + [
                "--heartbeat", "1", "--idle-timeout", "5",
                "--log", os.path.join(self.dir, "s%d.log" % i), addr, "chaos=" + self.db(i)]
            p = Proc("s%d" % i, argv, os.path.join(self.dir, "s%d.err" % i))
            p.cron = cron
            p.next_run = 0
            self.sites.append(p)
        for s in self.sites:
            if not s.cron:
                s.start()

    def make_keys(self):
        """--keys: a key for the hub and one for each site, made with
        wsync-keygen in the run directory, and the hub's authorized keys,
        which give each site's key the create right on "chaos"."""
        names = ["hub"] + ["s%d" % i for i in range(self.cfg.sites)]
        for name in names:
            subprocess.run([os.path.join(self.bin, "wsync-keygen"), "-q", "-f", name + ".key",
                            "-C", name], cwd=self.dir, check=True, stdin=subprocess.DEVNULL)
        pub = {}
        for name in names:
            with open(os.path.join(self.dir, name + ".key.pub")) as f:
                pub[name] = f.read().split()[0]
        self.hubkey = pub["hub"]
        path = os.path.join(self.dir, "authorized_keys")
        # The hub refuses a file group or others may write.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            for name in names[1:]:
                f.write("%s chaos=create # %s\n" % (pub[name], name))

    def site_auth(self, i):
        """Site i's session options: its key and the hub's, or --insecure."""
        if not self.cfg.keys:
            return ["--insecure"]
        return ["--key", os.path.join(self.dir, "s%d.key" % i), "--hub-key", self.hubkey]

    def local_insert(self, con, site, tbl, key):
        """Set-up rows, written as ordinary tagged writes."""
        wid = self.next_id(site)
        kc, vc, _ = TABLES[tbl]
        vals = {col: "%s:%s" % (wid, col) for col in vc}
        con.execute("INSERT INTO %s(%s, %s) VALUES(?, %s)" % (
            tbl, kc, ", ".join(vc), ", ".join("?" * len(vc))), [key] + list(vals.values()))
        self.writes.append(Write(wid, site, tbl, key, "ins", vals, set(), time.monotonic(), "setup"))

    def start_hub(self):
        before = self.count_listening()
        self.hub.start()
        if not wait_for(lambda: self.count_listening() >= before + 2 or not self.hub.alive(), 10):
            raise RuntimeError("the hub did not start listening: " + tail(self.hub.errpath, 5))
        if not self.hub.alive():
            raise RuntimeError("the hub exited at start: " + tail(self.hub.errpath, 5))

    def count_listening(self):
        try:
            with open(self.hub.errpath, errors="replace") as f:
                return sum(1 for l in f if l.startswith("wsync-serve: listening on "))
        except OSError:
            return 0

    def oneshot(self, i, addr, why, tries=4):
        argv = [os.path.join(self.bin, "wsync-join")] + self.site_auth(i) + [
            "--idle-timeout", "10", addr, "chaos=" + self.db(i)]
        for n in range(tries):
            with open(os.path.join(self.dir, "s%d.err" % i), "a") as err:
                err.write("=== one-shot (%s): %s\n" % (why, " ".join(argv)))
                err.flush()
                try:
                    rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=err,
                                        stderr=err, timeout=60).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
            if rc == 0:
                return True
            self.notes.append("one-shot sync of s%d (%s) exited %s (try %d)" % (i, why, rc, n + 1))
            time.sleep(0.5)
        self.problems.append("one-shot sync of s%d (%s) kept failing: %s" % (
            i, why, tail(os.path.join(self.dir, "s%d.err" % i), 3).strip()))
        return False

    # -- workload --
    def next_id(self, site):
        n = self.nwrite.get(site, 0) + 1
        self.nwrite[site] = n
        return "s%d-%d" % (site, n)

    def write(self, i):
        rng = self.rng
        if self.cfg.constraints and rng.random() < 0.2:
            self.write_constrained(i)
            return
        tbl = rng.choice(sorted(TABLES))
        kc, vc, keys = TABLES[tbl]
        key = rng.choice(keys)
        r = rng.random()
        ncols = rng.randint(1, len(vc))
        cols = sorted(rng.sample(vc, ncols))
        if rng.random() < self.cfg.cli:
            self.write_cli(i, tbl, key, r, cols)
        else:
            self.write_py(i, tbl, key, r, cols)

    def write_py(self, i, tbl, key, r, cols):
        kc, vc, _ = TABLES[tbl]
        try:
            con = sqlite3.connect(self.db(i), timeout=BUSY_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            self.failed_writes += 1
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            seen = {row[0] for row in con.execute(OBSERVE) if row[0] is not None}
            exists = con.execute("SELECT 1 FROM %s WHERE %s = ?" % (tbl, kc), (key,)).fetchone()
            wid = self.next_id(i)
            if exists and r < 0.12:
                con.execute("DELETE FROM %s WHERE %s = ?" % (tbl, kc), (key,))
                op, vals = "del", {}
            elif exists:
                vals = {col: "%s:%s" % (wid, col) for col in cols}
                con.execute("UPDATE %s SET %s WHERE %s = ?" % (
                    tbl, ", ".join("%s = ?" % col for col in vals), kc),
                    list(vals.values()) + [key])
                op = "upd"
            else:
                vals = {col: "%s:%s" % (wid, col) for col in vc}
                con.execute("INSERT INTO %s(%s, %s) VALUES(?, %s)" % (
                    tbl, kc, ", ".join(vals), ", ".join("?" * len(vals))),
                    [key] + list(vals.values()))
                op = "ins"
            con.execute("COMMIT")
        except sqlite3.Error:
            self.failed_writes += 1
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            con.close()
            return
        con.close()
        self.writes.append(Write(wid, i, tbl, key, op, vals, seen, time.monotonic(), "py"))

    def write_constrained(self, i):
        """A write to acct; one its own copy refuses (the email is taken
        here) is rolled back, as an application's would be."""
        rng = self.rng
        try:
            con = sqlite3.connect(self.db(i), timeout=BUSY_MS / 1000, isolation_level=None)
        except sqlite3.Error:
            self.failed_writes += 1
            return
        try:
            con.execute("BEGIN IMMEDIATE")
            r = rng.random()
            key = rng.randint(1, 6)
            if r < 0.15:
                con.execute("DELETE FROM acct WHERE id = ?", (key,))
            elif r < 0.55:
                con.execute("INSERT INTO acct(id, email, owner) VALUES(?, ?, ?) ON "
                            "CONFLICT(id) DO UPDATE SET email = excluded.email",
                            (key, rng.choice(EMAILS), "s%d" % i))
            elif r < 0.8:
                con.execute("UPDATE acct SET owner = ? WHERE id = ?", ("s%d" % i, key))
            else:
                con.execute("UPDATE acct SET n = n + 1 WHERE id = ?", (key,))
            con.execute("COMMIT")
        except sqlite3.Error:
            self.failed_writes += 1
            try:
                con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        con.close()

    def write_cli(self, i, tbl, key, r, cols):
        """The same through the sqlite3 shell: the operation is chosen from
        a read before the transaction, and the statement is written so it
        is a no-op (changes() = 0) when the row changed meanwhile."""
        kc, vc, _ = TABLES[tbl]
        try:
            con = sqlite3.connect(self.db(i), timeout=BUSY_MS / 1000, isolation_level=None)
            exists = con.execute("SELECT 1 FROM %s WHERE %s = ?" % (tbl, kc), (key,)).fetchone()
            con.close()
        except sqlite3.Error:
            self.failed_writes += 1
            return
        wid = self.next_id(i)
        q = "'%s'" % key if isinstance(key, str) else str(key)
        if exists and r < 0.12:
            op, vals = "del", {}
            stmt = "DELETE FROM %s WHERE %s = %s;" % (tbl, kc, q)
        elif exists:
            op = "upd"
            vals = {col: "%s:%s" % (wid, col) for col in cols}
            stmt = "UPDATE %s SET %s WHERE %s = %s;" % (
                tbl, ", ".join("%s = '%s'" % kv for kv in vals.items()), kc, q)
        else:
            op = "ins"
            vals = {col: "%s:%s" % (wid, col) for col in vc}
            stmt = "INSERT OR IGNORE INTO %s(%s, %s) VALUES(%s, %s);" % (
                tbl, kc, ", ".join(vals), q, ", ".join("'%s'" % v for v in vals.values()))
        script = (".timeout %d\n.bail on\n.mode list\nBEGIN IMMEDIATE;\n"
                  "SELECT 'O|' || x FROM (%s) WHERE x IS NOT NULL;\n"
                  "%s\nSELECT 'C|' || changes();\nCOMMIT;\nSELECT 'K|';\n") % (
                      BUSY_MS, OBSERVE.replace("SELECT a FROM t", "SELECT a AS x FROM t"), stmt)
        try:
            p = subprocess.run(["sqlite3", self.db(i)], input=script, capture_output=True,
                               text=True, timeout=30)
        except subprocess.TimeoutExpired:
            self.problems.append("the sqlite3 CLI hung on s%d" % i)
            return
        lines = p.stdout.splitlines()
        if "K|" not in lines:
            self.failed_writes += 1
            return
        changes = [l[2:] for l in lines if l.startswith("C|")]
        if changes != ["1"]:
            return  # committed nothing
        seen = {l[2:] for l in lines if l.startswith("O|")}
        self.writes.append(Write(wid, i, tbl, key, op, vals, seen, time.monotonic(), "cli"))

    # -- faults --
    def at(self, delay, fn):
        self.evseq += 1
        heapq.heappush(self.events, (time.monotonic() + delay, self.evseq, fn))

    def count(self, what):
        self.faults[what] = self.faults.get(what, 0) + 1

    def fault(self):
        rng = self.rng
        procs = [self.hub] + self.sites
        kind = rng.choices(["kill", "drop", "stall", "pause"], [3, 2, 2, 3])[0]
        if kind == "kill":
            p = self.hub if rng.random() < 0.3 else rng.choice(self.sites)
            if p in self.down:
                return
            p.kill9()
            self.paused.discard(p)
            self.down.add(p)
            self.count("kill -9 " + ("hub" if p is self.hub else "site"))
            self.at(rng.uniform(0.1, 5.0), lambda: self.restart(p))
        elif kind == "drop":
            self.proxy.drop()
            self.count("proxy drop")
        elif kind == "stall":
            if not self.proxy.go.is_set():
                return
            self.proxy.stall()
            self.count("proxy stall")
            self.at(rng.uniform(0.3, 8.0), self.proxy.resume)
        else:
            p = rng.choice(procs)
            if p in self.paused or p in self.down or not p.alive():
                return
            p.stop()
            self.paused.add(p)
            self.count("sigstop " + ("hub" if p is self.hub else "site"))
            self.at(rng.uniform(0.2, 7.0), lambda: self.resume(p))

    def restart(self, p):
        if p not in self.down:
            return
        self.down.discard(p)
        if p is self.hub:
            self.start_hub()
        elif not p.cron:
            p.start()

    def resume(self, p):
        if p in self.paused:
            self.paused.discard(p)
            p.cont()

    def cron_tick(self):
        """Start each cron site's one-shot sync when due; judge its exit."""
        now = time.monotonic()
        for p in self.sites:
            if not p.cron or p in self.down:
                continue
            if p.p is not None and p.p.poll() is not None:
                rc = p.p.returncode
                p.p = None
                # Under faults a one-shot sync may find no hub (69), lose
                # the connection (74) or a silent hub (75).
                if rc not in (0, 69, 74, 75):
                    self.problems.append("%s: one-shot wsync-join exited %s: %s" % (
                        p.name, rc, tail(p.errpath, 1).strip()))
                    # The database as that run found it, for a post-mortem.
                    n = p.starts - 1
                    if os.path.exists(p.before):
                        os.rename(p.before, "%s.before-start-%d" % (p.before[:-7], n))
                self.count("cron sync exit %s" % rc)
            if p.p is None and now >= p.next_run:
                p.before = self.db(int(p.name[1:])) + ".before"
                self.backup(self.db(int(p.name[1:])), p.before)
                p.start()
                p.next_run = now + self.rng.uniform(1, 6)

    @staticmethod
    def backup(src, dst):
        try:
            a = sqlite3.connect(src, timeout=BUSY_MS / 1000)
            b = sqlite3.connect(dst)
            a.backup(b)
            a.close()
            b.close()
        except sqlite3.Error:
            pass

    def reap_unexpected(self):
        self.cron_tick()
        for p in [self.hub] + self.sites:
            if p in self.down or p.p is None or p.cron:
                continue
            if p.check_exit():
                rc, why = p.unexpected[-1]
                # A site dropped by the hub (silent while stopped) exits 75
                # by design; anything else is worth a look.
                expected = p is not self.hub and rc == 75
                (self.notes if expected else self.problems).append(
                    "%s exited by itself with status %s: %s" % (p.name, rc, why.strip()))
                if p is self.hub:
                    self.start_hub()
                else:
                    p.start()

    def chaos(self):
        c = self.cfg
        end = time.monotonic() + c.duration
        next_fault = time.monotonic() + self.rng.uniform(0.2, 2 * c.fault_every)
        next_phase, active = 0, []
        while time.monotonic() < end:
            now = time.monotonic()
            while self.events and self.events[0][0] <= now:
                heapq.heappop(self.events)[2]()
            if now >= next_fault:
                self.fault()
                next_fault = now + self.rng.uniform(0.2, 2 * c.fault_every)
            if now >= next_phase:
                # Phases of 0.5 to 4 s in which a random subset of the
                # sites writes (sometimes none): quiet sites heartbeat and
                # report their clocks, so the hub collects during the chaos.
                active = [i for i in range(c.sites) if self.rng.random() < 0.6]
                next_phase = now + self.rng.uniform(0.5, 4)
            if active:
                self.write(self.rng.choice(active))
            self.reap_unexpected()
            time.sleep(self.rng.uniform(0, 2 * c.write_every))
        # The faults stop: resume, restart, reconnect.
        for _, _, fn in sorted(self.events):
            fn()
        self.events = []
        self.proxy.resume()
        for p in list(self.paused):
            self.resume(p)
        for p in list(self.down):
            self.restart(p)
        self.reap_unexpected()

    # -- the end --
    def snapshot(self, path):
        """(tables, conflicts, pending, integrity) of one database."""
        con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)
        try:
            tables = {}
            for tbl, (kc, vc, _) in TABLES.items():
                try:
                    tables[tbl] = con.execute("SELECT %s, %s FROM %s ORDER BY 1" % (
                        kc, ", ".join(vc), tbl)).fetchall()
                except sqlite3.Error:
                    tables[tbl] = None
            conflicts = con.execute(
                "SELECT t.name, hex(c.pk), c.col, c.lostdel, hex(s.site), c.counter,"
                " c.lamport, quote(c.value), c.value"
                " FROM wsync_conflicts c JOIN wsync_sites s ON s.id = c.site"
                " JOIN wsync_tables t ON t.id = c.tbl"
                " ORDER BY t.name, c.pk, c.col, s.site, c.counter").fetchall()
            # Not yet convergent (wsync(7)): which copies list a constraint
            # clash's loser, and as which kind.  The rows must converge.
            conflicts = [c for c in conflicts if c[0] in TABLES]
            for tbl, cols in CTABLES.items():
                try:
                    tables[tbl] = con.execute("SELECT %s FROM %s ORDER BY 1" % (
                        cols, tbl)).fetchall()
                except sqlite3.Error:
                    tables[tbl] = None
            pending = con.execute("SELECT count(*) FROM wsync_pending").fetchone()[0]
            # Orphans count as damage: integrity_check's list gains them.
            integrity = con.execute("PRAGMA integrity_check").fetchall()
            integrity += [("orphan %s rowid %s -> %s" % (r[0], r[1], r[2]),)
                          for r in con.execute("PRAGMA foreign_key_check")]
            return tables, conflicts, pending, integrity
        finally:
            con.close()

    def all_snapshots(self):
        paths = [("hub", os.path.join(self.dir, "hub", "chaos.db"))]
        paths += [("s%d" % i, self.db(i)) for i in range(self.cfg.sites)]
        return [(n, self.snapshot(p)) for n, p in paths]

    @staticmethod
    def differences(snaps):
        ref_name, (rt, rc, _, _) = snaps[0]
        out = []
        for name, (t, c, _, _) in snaps[1:]:
            for tbl in list(TABLES) + list(CTABLES):
                if t[tbl] != rt[tbl]:
                    a, b = set(rt[tbl] or []), set(t[tbl] or [])
                    out.append("%s differs from %s in table %s: only in %s %s, only in %s %s" % (
                        name, ref_name, tbl, ref_name, sorted(a - b, key=str)[:6], name,
                        sorted(b - a, key=str)[:6]))
            if c != rc:
                a, b = set(rc), set(c)
                out.append("%s's conflicts differ from %s's: only in %s %s, only in %s %s" % (
                    name, ref_name, ref_name, sorted(a - b)[:4], name, sorted(b - a)[:4]))
        return out

    def converge(self):
        c = self.cfg
        # First the followers, on their own.
        t0 = time.monotonic()
        for p in self.sites:
            p.next_run = 0  # cron sites sync every second from now on
        ok = wait_for(lambda: self.settled(), c.settle, step=0.5)
        if ok:
            self.notes.append("followers converged %.1f s after the faults stopped"
                              % (time.monotonic() - t0))
        else:
            self.notes.append("followers had not converged %d s after the faults stopped: %s"
                              % (c.settle, "; ".join(self.safe_differences())[:400]))
        self.reap_unexpected()
        for s in self.sites:
            if s.cron:
                if s.p is not None:
                    try:
                        s.p.wait(30)
                    except subprocess.TimeoutExpired:
                        pass
                self.cron_tick()
                s.next_run = float("inf")
                continue
            rc = s.term()
            if rc not in (0,):
                self.problems.append("%s: wsync-join -f exited %s on SIGTERM: %s" % (
                    s.name, rc, tail(s.errpath, 3).strip()))
        # Then one-shot rounds over the unix socket until nothing differs.
        for rnd in range(1, 5):
            for i in range(c.sites):
                self.oneshot(i, self.sock, "final round %d" % rnd)
            if rnd >= 2:
                snaps = self.all_snapshots()
                diff = self.differences(snaps)
                if not diff:
                    if rnd > 2:
                        self.notes.append("converged only after %d one-shot rounds" % rnd)
                    return snaps
        self.problems.extend("DIVERGENCE: " + d for d in diff)
        self.diverged = True
        return snaps

    def settled(self):
        self.cron_tick()
        for p in self.sites:
            if p.cron:
                p.next_run = min(p.next_run, time.monotonic() + 1)
        return self.quiet_converged()

    def quiet_converged(self):
        try:
            return not self.differences(self.all_snapshots())
        except sqlite3.Error:
            return False

    def safe_differences(self):
        try:
            return self.differences(self.all_snapshots())
        except sqlite3.Error as e:
            return [str(e)]

    # -- the lost-write check --
    def verify(self, snaps):
        """Count lost writes and other wrong values in the final state of
        the hub (every replica holds the same if there was no divergence;
        each replica is checked when there was)."""
        results = {}
        for name, snap in snaps:
            results[name] = self.verify_one(snap)
            if not self.diverged:
                break
        return results

    def verify_one(self, snap):
        tables, conflicts, pending, integrity = snap
        final = {}      # (tbl, key, col) -> value
        present = set()  # (tbl, key)
        for tbl, rows in tables.items():
            if tbl not in TABLES:
                continue
            _, vc, _ = TABLES[tbl]
            for row in rows or []:
                present.add((tbl, row[0]))
                for col, v in zip(vc, row[1:]):
                    final[(tbl, row[0], col)] = v
        conf = {c[8] for c in conflicts if c[0] in TABLES}
        byid = {w.id: w for w in self.writes}
        wrote = {}      # tag -> (tbl, key, col)
        for w in self.writes:
            for col, v in w.cols.items():
                wrote[v] = (w.tbl, w.key, col)
        # Successors: tag -> writes that saw it and wrote its cell or
        # deleted its row.
        succ = {}
        for x in self.writes:
            for tag in x.seen:
                m = TAG.match(tag) if isinstance(tag, str) else None
                if not m or tag not in wrote:
                    continue
                tbl, key, col = wrote[tag]
                if (tbl, key) != (x.tbl, x.key):
                    continue
                if x.op == "del" or col in x.cols:
                    succ.setdefault(tag, []).append(x)

        def shown(x, col):
            """Does the final state show write x (for the cell col)?"""
            if x.op != "del":
                tag = x.cols.get(col)
                return tag is not None and (final.get((x.tbl, x.key, col)) == tag or tag in conf)
            if (x.tbl, x.key) not in present:
                return True
            # Inserted again after the delete: every cell of the row is
            # then newer than it.
            for c2 in TABLES[x.tbl][1]:
                v = final.get((x.tbl, x.key, c2))
                if v is None:
                    continue
                m = TAG.match(v)
                if m and m.group(1) in byid and byid[m.group(1)].t > x.t:
                    return True
            return False

        def reaches(tag):
            col = wrote[tag][2]
            todo, done = [tag], set()
            while todo:
                t = todo.pop()
                if t in done:
                    continue
                done.add(t)
                for x in succ.get(t, []):
                    if shown(x, col):
                        return True
                    if x.op != "del" and col in x.cols:
                        todo.append(x.cols[col])
            return False

        r = {"writes": len(self.writes), "tags": 0, "current": 0, "conflict": 0,
             "superseded": 0, "lost": [], "gc_overwritten": 0, "resurrected": [],
             "foreign": [], "missing_rows": [], "stale_conflicts": [], "null_cells": 0}
        for w in self.writes:
            for col, tag in w.cols.items():
                r["tags"] += 1
                cell = (w.tbl, w.key, col)
                if final.get(cell) == tag:
                    r["current"] += 1
                elif tag in conf:
                    r["conflict"] += 1
                elif reaches(tag):
                    r["superseded"] += 1
                elif self.cfg.retain == 0 and any(
                        x is not w and x.tbl == w.tbl and x.key == w.key and
                        (x.op == "del" or col in x.cols) and shown(x, col)
                        for x in self.writes):
                    r["gc_overwritten"] += 1
                else:
                    r["lost"].append("%s=%s (%s %s, %s)" % (
                        "%s[%r].%s" % cell, tag, w.op, w.via, self.describe(cell, final)))
        for cell, v in sorted(final.items(), key=str):
            if v is None:
                r["null_cells"] += 1
                continue
            if wrote.get(v) != cell:
                r["foreign"].append("%s[%r].%s = %r" % (cell + (v,)))
                continue
            for x in succ.get(v, []):
                if x.op == "del" or cell[2] in x.cols:
                    r["resurrected"].append("%s[%r].%s = %r, which %s (%s) saw and %s" % (
                        cell + (v, x.id, x.via, "deleted" if x.op == "del" else "replaced")))
                    break
        for c in conflicts:
            v = c[8]
            if c[0] not in TABLES:
                continue  # a constrained table's: outside the oracle
            if v not in wrote:
                r["foreign"].append("conflict value %r" % (v,))
                continue
            for x in succ.get(v, []):
                if x.op != "del" and wrote[v][2] in x.cols:
                    r["stale_conflicts"].append("%r (replaced by %s)" % (v, x.id))
                    break
        inserted = {(w.tbl, w.key) for w in self.writes if w.op == "ins"}
        deleted = {(w.tbl, w.key) for w in self.writes if w.op == "del"}
        for row in sorted(inserted - deleted, key=str):
            if row not in present:
                r["missing_rows"].append("%s[%r]" % row)
        return r

    def describe(self, cell, final):
        """The history of one cell, for a report."""
        tbl, key, col = cell
        hist = []
        for w in self.writes:
            if w.tbl == tbl and w.key == key and (w.op == "del" or col in w.cols):
                hist.append("%s:%s@%.2f" % (w.id, w.op, w.t - self.t0))
        return "final %r; cell history %s" % (final.get(cell), " ".join(hist[-8:]))

    def go(self):
        self.diverged = False
        self.t0 = time.monotonic()
        try:
            self.setup()
            self.chaos()
            snaps = self.converge()
        except Exception as e:  # a harness failure is a failed run too
            self.problems.append("harness: %s: %s" % (type(e).__name__, e))
            self.teardown()
            return None
        for name, (_, _, pending, integrity) in snaps:
            if pending:
                self.problems.append("%s: %d batches still pending" % (name, pending))
            if integrity != [("ok",)]:
                self.problems.append("%s: integrity_check: %s" % (name, integrity[:3]))
        if self.cfg.tamper and not self.diverged:
            snaps = self.tamper(snaps)
        res = self.verify(snaps)
        self.teardown()
        hublog = open(self.hub.errpath, errors="replace").read()
        self.coverage = "%d collections, %d full copies" % (
            len(re.findall(r": collected \d+ change-log entries", hublog)),
            len(re.findall(r": sending a full copy ", hublog)))
        return res

    def tamper(self, snaps):
        """Self-test of the checks (--tamper): after the run, on every
        replica alike, put back an older value of a cell that a later
        write replaced, and delete a row nobody deleted; the lost-write
        check must catch both."""
        tables = snaps[0][1][0]
        done, used = [], None
        for tbl, (kc, vc, _) in sorted(TABLES.items()):
            for row in tables[tbl] or []:
                for col, v in zip(vc, row[1:]):
                    old = [w.cols[col] for w in self.writes if w.tbl == tbl and
                           w.key == row[0] and col in w.cols and w.cols[col] != v and
                           any(w.cols[col] in x.seen for x in self.writes)]
                    if old and not done:
                        done.append(("UPDATE %s SET %s = ? WHERE %s = ?" % (tbl, col, kc),
                                     (old[-1], row[0])))
                        used = (tbl, row[0])
        for tbl, (kc, vc, _) in sorted(TABLES.items()):
            ins = {w.key for w in self.writes if w.tbl == tbl and w.op == "ins"}
            dels = {w.key for w in self.writes if w.tbl == tbl and w.op == "del"}
            for row in tables[tbl] or []:
                if row[0] in ins - dels and len(done) == 1 and (tbl, row[0]) != used:
                    done.append(("DELETE FROM %s WHERE %s = ?" % (tbl, kc), (row[0],)))
        paths = [os.path.join(self.dir, "hub", "chaos.db")] + [
            self.db(i) for i in range(self.cfg.sites)]
        for path in paths:
            con = sqlite3.connect(path, timeout=10, isolation_level=None)
            for q, args in done:
                con.execute(q, args)
            con.close()
        self.notes.append("tampered: %s" % "; ".join("%s %s" % d for d in done))
        self.tampered = [q.split()[0] for q, _ in done]
        return self.all_snapshots()

    def teardown(self):
        for p in [self.hub] + getattr(self, "sites", []):
            if p.p is not None:
                rc = p.term()
                if p is self.hub and rc != 0:
                    self.problems.append("hub exited %s on SIGTERM" % rc)
        if hasattr(self, "proxy"):
            self.proxy.close()
        for f in os.listdir(self.dir):
            if f.endswith(".err"):
                text = open(os.path.join(self.dir, f), errors="replace").read()
                if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:", text):
                    self.problems.append("%s: a sanitizer reported an error" % f)


def repro(cfg):
    cmd = ("python3 tests/chaos/chaos.py --seed %d --sites %d --duration %g --retain %d "
           "--cron %d" % (cfg.seed, cfg.sites, cfg.duration, cfg.retain, cfg.cron))
    if cfg.constraints:
        cmd += " --constraints"
    if cfg.keys:
        cmd += " --keys"
    if os.path.realpath(cfg.bin) != os.path.realpath(os.path.join(TOP, "bin")):
        cmd += " --bin %s" % os.path.relpath(cfg.bin, TOP)
    return cmd


def main():
    ap = argparse.ArgumentParser(description="wsync convergence under chaos")
    ap.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    ap.add_argument("--runs", type=int, default=1, help="runs, seeds SEED, SEED+1, ...")
    ap.add_argument("--sites", type=int, default=None, help="sites (default: 3 to 5 by seed)")
    ap.add_argument("--duration", type=float, default=30, help="seconds of chaos per run")
    ap.add_argument("--retain", type=int, default=None,
                    help="hub --retain (default: 0 for odd seeds, 3600 for even)")
    ap.add_argument("--cron", type=int, choices=(0, 1), default=None,
                    help="1: the last site syncs one-shot now and then (default: by seed)")
    ap.add_argument("--bin", default=os.path.join(TOP, "bin"), help="binaries")
    ap.add_argument("--settle", type=float, default=20,
                    help="seconds to wait for the followers to converge")
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument("--constraints", action="store_true",
                    help="add a table with UNIQUE, NOT NULL and CHECK constraints "
                    "(a fifth of the writes)")
    ap.add_argument("--keys", action="store_true",
                    help="authenticated, encrypted sessions: keys for the hub and "
                    "every site")
    ap.add_argument("--tamper", action="store_true",
                    help="self-test: spoil the final state; the run passes if the "
                    "checks notice")
    ap.add_argument("--check", action="store_true",
                    help="for make check: one line per run, closing 'N passed, N failed'")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    if a.constraints:
        CTABLES["acct"] = "id, email, owner, n"
    seed0 = a.seed if a.seed is not None else random.SystemRandom().randrange(1, 10**6)
    root = tempfile.mkdtemp(prefix="wsync-chaos.", dir=os.environ.get("TMPDIR"))
    totals = {"runs": 0, "div": 0, "lost": 0, "failed": 0, "writes": 0}
    for n in range(a.runs):
        cfg = argparse.Namespace(**vars(a))
        cfg.seed = seed0 + n
        pick = random.Random(cfg.seed * 7919)
        if cfg.sites is None:
            cfg.sites = pick.randint(3, 5)
        if cfg.retain is None:
            cfg.retain = 0 if cfg.seed % 2 else 3600
        if cfg.cron is None:
            cfg.cron = pick.random() < 0.5
        cfg.write_every = 0.02
        cfg.fault_every = 1.0
        cfg.cli = 0.15
        run = Run(cfg, root)
        t0 = time.monotonic()
        res = run.go()
        took = time.monotonic() - t0
        totals["runs"] += 1
        failed = bool(run.problems)
        lost = 0
        if res:
            r = next(iter(res.values()))
            bad = {name: x for name, x in res.items()
                   if x["lost"] or x["foreign"] or x["missing_rows"] or x["resurrected"]}
            lost = max(len(x["lost"]) for x in res.values())
            if a.tamper:
                # Passes when the checks caught both spoilt values.
                done = getattr(run, "tampered", [])
                caught = [x for x in res.values() if
                          ("DELETE" not in done or x["missing_rows"]) and
                          ("UPDATE" not in done or x["lost"] or x["resurrected"])]
                caught = caught if done else []
                failed = failed or not caught
                run.notes.append("the checks %s the tampering" % (
                    "caught" if caught else "MISSED"))
            else:
                failed = failed or bool(bad)
            totals["writes"] += r["writes"]
            line = ("seed %d: %d sites%s,%s retain %d, %.0f s: %d writes (%d failed busy), "
                    "%d values: %d current, %d in conflicts, %d superseded, %d overwritten "
                    "after gc; lost %d; %s; faults %s" % (
                        cfg.seed, cfg.sites, " (1 cron)" if cfg.cron else "",
                        " keys," if cfg.keys else "", cfg.retain, took, r["writes"],
                        run.failed_writes,
                        r["tags"], r["current"], r["conflict"], r["superseded"],
                        r["gc_overwritten"], lost, run.coverage,
                        ", ".join("%s %d" % kv for kv in sorted(run.faults.items()))))
        else:
            line = "seed %d: harness failed" % cfg.seed
        if not a.tamper:
            totals["lost"] += lost
        if run.diverged:
            totals["div"] += 1
        print(("FAIL " if failed else "ok   ") + line, flush=True)
        if not a.check or failed:
            for note in run.notes:
                print("     note: " + note)
        if res:
            for name, x in res.items():
                for what in ("lost", "foreign", "missing_rows", "resurrected", "stale_conflicts"):
                    for item in x[what][:10]:
                        print("     %s %s: %s" % (name, what.replace("_", " "), item))
                    if len(x[what]) > 10:
                        print("     %s %s: ... %d more" % (name, what, len(x[what]) - 10))
        for p in run.problems:
            print("     " + p)
        if failed:
            totals["failed"] += 1
            print("     reproduce: %s" % repro(cfg))
            print("     logs and databases: %s" % run.dir, flush=True)
        elif not a.keep:
            shutil.rmtree(run.dir, ignore_errors=True)
    if not a.keep and not totals["failed"]:
        shutil.rmtree(root, ignore_errors=True)
    print("runs %d, divergences %d, lost writes %d" % (totals["runs"], totals["div"], totals["lost"]))
    if a.check:
        print("%d passed, %d failed" % (totals["runs"] - totals["failed"], totals["failed"]))
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
