# SPDX-License-Identifier: MIT
# wsync - keep SQLite working sets in sync between hosts.
#
#   make            build build/libwsync.a and the binaries in bin/
#   make check      install missing Debian packages, build, run every test
#                   (unit, bats, the fuzz corpus replayed; plain and ASan/UBSan)
#   make fuzz       SECONDS=60: build the libFuzzer targets (tests/fuzz/) with
#                   clang-14 and run each that long, printing executions
#   make check-valgrind  unit tests and end-to-end bats suites under valgrind
#   make demo       a hub and two sites on a unix socket syncing a sample
#                   database: each command, its output and a row diff of
#                   every copy after each step (tests/demo.sh)
#   make bench      micro-benchmarks (figures, never pass/fail)
#   make chaos      RUNS=20 SEED=N DURATION=60: a campaign of seeded chaos runs
#                   (tests/chaos/chaos.py: a hub and sites under kill -9,
#                   dropped and stalled connections, SIGSTOP), each checked
#                   for divergence and lost writes; ends "runs N, divergences
#                   N, lost writes N".  SEED defaults to a random one; a
#                   failure prints the command that repeats its run.  Three
#                   short runs (15 s each) and a self-test of the checks are
#                   part of make check.
#   make unique     WORLDS=40: random worlds of a hub and sites whose schema
#                   has UNIQUE, CHECK and FOREIGN KEY constraints, each
#                   ending with every copy compared (tests/unit/test_unique.c;
#                   make check runs its scripted clashes only); ends
#                   "unique: N worlds, N diverged".  wsync(7) lists the
#                   clashes that do not converge yet.
#   make install    PREFIX=/usr/local DESTDIR= (binaries, man pages, completions)

CC       ?= gcc
PREFIX   ?= /usr/local
OUT      ?= build
BIN      ?= bin
SAN      ?=
PKGS      = sqlite3 jansson libsodium libcurl libmicrohttpd

OPT      ?= -O2 -g
WARN      = -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
            -Wmissing-prototypes -Wpointer-arith -Wformat=2
ifeq ($(SAN),fuzz)
OPT       = -O1 -g -fno-omit-frame-pointer \
            -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
else ifneq ($(SAN),)
OPT       = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
            -fno-sanitize-recover=all
endif
# Recursive '=' so pkg-config runs only when compiling, after 'make deps'.
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))
ALL_CFLAGS = $(WARN) $(OPT) -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(OPT) $(LDFLAGS)

LIB_SRC  := $(sort $(wildcard lib/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(OUT)/%.o)
HDRS     := $(wildcard include/wsync/*.h) $(wildcard lib/*.h) cmd/cli.h
TOOLS    := wsync-serve wsync-join wsync-replicate wsync-inspect wsync-keygen
BINS     := $(TOOLS:%=$(BIN)/%)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(OUT)/tests/%)
# Fuzz targets: tests/fuzz/fuzz_<name>.c, seeds in tests/fuzz/corpus/<name>/.
# A new target (fuzz_handshake.c, say) needs only its file and corpus.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
REPLAYS  := $(FUZZ_NAMES:%=$(OUT)/fuzz/replay_%)
FUZZERS  := $(FUZZ_NAMES:%=$(OUT)/fuzz/fuzz_%)
FUZZ_CC  ?= clang-14
SECONDS  ?= 60

.PHONY: all lib unit replay fuzz fuzzers check check-valgrind deps test demo \
        bench chaos unique install clean

all: $(OUT)/libwsync.a $(BINS)

lib: $(OUT)/libwsync.a

$(OUT)/lib/%.o: lib/%.c $(HDRS) | $(OUT)/lib
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OUT)/cmd/%.o: cmd/%.c $(HDRS) | $(OUT)/cmd
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(OUT)/libwsync.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

$(BIN)/%: $(OUT)/cmd/%.o $(OUT)/cmd/cli.o $(OUT)/libwsync.a | $(BIN)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(OUT)/cmd/cli.o $(OUT)/libwsync.a $(PKG_LIBS)

$(OUT)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(HDRS) $(OUT)/libwsync.a | $(OUT)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(OUT)/libwsync.a $(PKG_LIBS)

unit: $(UNITS)

WORLDS ?= 40
unique: $(OUT)/tests/test_unique
	WS_UNIQUE_WORLDS=$(WORLDS) $(OUT)/tests/test_unique

# Each fuzz target with replay.c's main(): replays the corpus (make check).
$(OUT)/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c tests/fuzz/fuzz.h $(HDRS) \
    $(OUT)/libwsync.a | $(OUT)/fuzz
	$(CC) $(ALL_CFLAGS) -Itests/fuzz $(ALL_LDFLAGS) -o $@ $< tests/fuzz/replay.c \
	    $(OUT)/libwsync.a $(PKG_LIBS)

replay: $(REPLAYS)

# Each fuzz target with libFuzzer's main() (SAN=fuzz, CC=clang-14).
$(OUT)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HDRS) $(OUT)/libwsync.a | $(OUT)/fuzz
	$(CC) $(ALL_CFLAGS) -Itests/fuzz $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(OUT)/libwsync.a $(PKG_LIBS)

fuzzers: $(FUZZERS)

$(OUT)/lib $(OUT)/cmd $(OUT)/tests $(OUT)/fuzz $(BIN):
	mkdir -p $@

# Install what is missing (quiet when nothing is), then build and test.
deps:
	@tests/deps.sh

check: deps
	@$(MAKE) --no-print-directory all unit replay
	@$(MAKE) --no-print-directory OUT=build/asan BIN=build/asan/bin SAN=1 all unit replay
	@tests/run.sh

test: all unit replay
	@tests/run.sh

# libFuzzer campaigns: every target for SECONDS seconds (new inputs are
# kept in build/libfuzzer/corpus/, crashes in build/libfuzzer/crashes/).
fuzz: deps
	@$(MAKE) --no-print-directory OUT=build/libfuzzer BIN=build/libfuzzer/bin SAN=fuzz \
	    CC=$(FUZZ_CC) fuzzers
	@tests/fuzz/run.sh $(SECONDS) $(FUZZ_NAMES)

# The unit tests and the end-to-end bats suites under valgrind memcheck,
# against the plain binaries (not part of check: slow).
check-valgrind: deps
	@$(MAKE) --no-print-directory all unit
	@tests/valgrind.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@WS_BIN=$(BIN) tests/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory -C bench

RUNS     ?= 20
SEED     ?=
DURATION ?= 60

chaos: deps
	@$(MAKE) --no-print-directory all
	@nice python3 tests/chaos/chaos.py --runs $(RUNS) --duration $(DURATION) \
	    $(if $(SEED),--seed $(SEED))

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man7 \
	    $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	    $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 644 man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7
	for t in $(TOOLS); do \
	    install -m 644 completions/wsync.bash \
	        $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$t; \
	done
	install -m 644 completions/_wsync $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_wsync

clean:
	rm -rf build bin
