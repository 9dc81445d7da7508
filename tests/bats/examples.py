#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# examples.py - pull the shell examples out of README.md and the man pages,
# so that tests/bats/95-examples.bats can run them as written.
#
# What counts as an example:
#
#   README.md      every fenced block whose info string is "sh" (```sh).
#                  Blocks fenced without it (file contents, messages, JSON)
#                  are not run.  Every line is a command, or continues one;
#                  comment lines are dropped, and what a comment says a
#                  command prints is compared by the test of that block.
#   man/*.[157]    every ".Bd -literal" block in the EXAMPLES section with
#                  at least one prompt line: "$ CMD" (this host) or
#                  "HOST$ CMD" (the host HOST, which the test emulates with
#                  a directory of that name).  A command continues on the
#                  next line while it ends in "\e" or "|" or has a quote
#                  open; every other line that follows it is its expected
#                  output.  Blocks without a prompt (logs, bytes) are not
#                  run.
#
# Usage:
#   examples.py list FILE
#       one line per example: its number (from 1), the number of its
#       commands, and its first command.
#   examples.py split FILE N DIR [FROM TO]...
#       write command I of example N to DIR/I.sh, its host (empty for "$"
#       or README) to DIR/I.host and its expected output to DIR/I.out,
#       each FROM replaced by TO in that order; print the number of
#       commands.
#   examples.py match EXPECTED ACTUAL
#       compare output shown on a page (file EXPECTED) with what came
#       (file ACTUAL), line by line: lines of EXPECTED that start with a
#       space continue the line before ("folded here"), "..." matches any
#       text, and microsecond times ("time":N) are any number.  Exit 1,
#       saying where, when they differ.
#
# Exit status: 0, 64 on bad usage, 66 when FILE has no example N.

import re
import shlex
import sys

PROMPT = re.compile(r'^(?:([A-Za-z][A-Za-z0-9_-]*)?\$)\s+(.*)$')


def roff_text(line):
    """A line of a literal block as the reader sees it."""
    line = line.replace('\\e', '\\').replace('\\&', '').replace('\\-', '-')
    return line.replace('\\(dq', '"')


def incomplete(cmd):
    """True while CMD needs the next line: backslash, pipe or open quote."""
    s = cmd.rstrip()
    if s.endswith('\\') or s.endswith('|'):
        return True
    try:
        shlex.split(s, comments=True)
    except ValueError:
        return True
    return False


def readme_examples(text):
    out, block = [], None
    for line in text.split('\n'):
        if block is None:
            if line.strip() == '```sh':
                block = []
            continue
        if line.lstrip().startswith('```'):
            cmds = []
            for raw in block:
                if cmds and incomplete(cmds[-1]['cmd']):
                    cmds[-1]['cmd'] += '\n' + raw
                elif raw.strip() == '' or raw.lstrip().startswith('#'):
                    continue
                else:
                    cmds.append({'host': '', 'cmd': raw, 'out': []})
            out.append(cmds)
            block = None
            continue
        block.append(line)
    return out


def man_examples(text):
    out, in_ex, block = [], False, None
    for line in text.split('\n'):
        if line.startswith('.Sh '):
            in_ex = line.strip() == '.Sh EXAMPLES'
            continue
        if not in_ex:
            continue
        if block is None:
            if line.startswith('.Bd -literal'):
                block = []
            continue
        if line.startswith('.Ed'):
            cmds = []
            for raw in block:
                if cmds and incomplete(cmds[-1]['cmd']) and not cmds[-1]['out']:
                    cmds[-1]['cmd'] += '\n' + raw
                    continue
                m = PROMPT.match(raw)
                if m:
                    cmds.append({'host': m.group(1) or '', 'cmd': m.group(2),
                                 'out': []})
                elif cmds:
                    cmds[-1]['out'].append(raw)
            if cmds:
                out.append(cmds)
            block = None
            continue
        block.append(roff_text(line))
    return out


def examples(path):
    with open(path, encoding='utf-8') as f:
        text = f.read()
    if path.endswith('.md'):
        return readme_examples(text)
    return man_examples(text)


def unfold(lines):
    out = []
    for line in lines:
        if out and line.startswith(' '):
            out[-1] += line.lstrip(' ')
        else:
            out.append(line)
    return out


def match(expected, actual):
    with open(expected, encoding='utf-8') as f:
        want = unfold(f.read().rstrip('\n').split('\n'))
    with open(actual, encoding='utf-8') as f:
        got = f.read().rstrip('\n').split('\n')
    time = re.compile(r'"time":[0-9]+')
    if len(want) != len(got):
        sys.stderr.write('expected %d line(s), got %d:\n%s\n' %
                         (len(want), len(got), '\n'.join(got)))
        return 1
    for w, g in zip(want, got):
        w2, g2 = time.sub('"time":0', w), time.sub('"time":0', g)
        pat = '.*'.join(re.escape(part) for part in w2.split('...'))
        if not re.fullmatch(pat, g2, re.S):
            sys.stderr.write('expected: %s\n     got: %s\n' % (w, g))
            return 1
    return 0


def usage():
    sys.stderr.write('usage: examples.py list FILE\n'
                     '       examples.py split FILE N DIR [FROM TO]...\n'
                     '       examples.py match EXPECTED ACTUAL\n')
    sys.exit(64)


def main(argv):
    if len(argv) == 3 and argv[1] == 'list':
        for i, cmds in enumerate(examples(argv[2]), 1):
            first = cmds[0]['cmd'].split('\n')[0] if cmds else ''
            print('%d\t%d\t%s' % (i, len(cmds), first))
        return 0
    if len(argv) == 4 and argv[1] == 'match':
        return match(argv[2], argv[3])
    if len(argv) >= 5 and argv[1] == 'split' and len(argv) % 2 == 1:
        ex = examples(argv[2])
        n = int(argv[3])
        if not 1 <= n <= len(ex):
            sys.stderr.write('examples.py: %s has no example %d\n' % (argv[2], n))
            return 66
        subs = list(zip(argv[5::2], argv[6::2]))

        def sub(s):
            for a, b in subs:
                s = s.replace(a, b)
            return s
        for i, c in enumerate(ex[n - 1], 1):
            for ext, body in (('sh', c['cmd']), ('host', c['host']),
                              ('out', '\n'.join(c['out']))):
                with open('%s/%d.%s' % (argv[4], i, ext), 'w') as f:
                    f.write(sub(body) + ('\n' if body else ''))
        print(len(ex[n - 1]))
        return 0
    usage()


if __name__ == '__main__':
    sys.exit(main(sys.argv))
