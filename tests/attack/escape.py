# SPDX-License-Identifier: MIT
# escape.py - a site whose names and messages carry terminal controls,
# for escape.bats.
#
#     python3 escape.py unix:PATH WSID [twice]
#
# It joins working set WSID on the hub at PATH (hostile.py's handshake),
# then sends a batch for a table named "t ESC[2J NL forged line" (which
# the working set lacks, so the hub refuses it with an ERROR frame that
# names it), reads the hub's answer, and, in a second session, sends an
# ERROR frame of its own whose text is "bye ESC[2J NL forged line".  The
# hub writes every frame to its --log; escape.bats looks at that log with
# wsync-inspect.  With "twice", the batch describes that table twice (a
# malformed batch, which the log keeps as it came), and no ERROR frame
# is sent.  stdout: "error CODE" for each ERROR frame the first session
# got.  Exit 0 once done, 1 if a handshake failed.

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile import (CH, OP_INSERT, T_BATCH, T_ERROR, Failed,  # noqa: E402
                     Session, batch, frame, svarint)

EVIL = "\x1b[2J\nforged line"
TABLE = "t" + EVIL
MESSAGE = "bye" + EVIL


def main():
    if len(sys.argv) not in (3, 4) or sys.argv[3:] not in ([], ["twice"]):
        sys.stderr.write("usage: escape.py unix:PATH WSID [twice]\n")
        return 2
    addr, wsid = sys.argv[1:3]
    twice = len(sys.argv) == 4
    tables = [(TABLE, ["id", "x"], [0])] * (2 if twice else 1)
    try:
        a = Session(addr, "evil-table")
        a.join(wsid)
        a.send(frame(T_BATCH, CH, batch(a.site, tables,
                                        [(0, OP_INSERT, [1], {1: "v"})])))
        deadline = time.monotonic() + 10
        while True:
            f = a.next_frame(deadline)
            if f is None:
                break
            if f[0] == T_ERROR:
                code = f[3][0]
                print("error %d" % ((code >> 1) ^ -(code & 1)))
        a.close()
        if twice:
            return 0
        b = Session(addr, "evil-error")
        b.join(wsid)
        b.send(frame(T_ERROR, 0, svarint(-8) + MESSAGE.encode()))
        deadline = time.monotonic() + 10
        while b.next_frame(deadline) is not None:
            pass
        b.close()
    except (Failed, OSError) as e:
        sys.stderr.write("escape.py: %s\n" % e)
        return 1
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
