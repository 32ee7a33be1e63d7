# SPDX-License-Identifier: MIT
# Plain make: no configure step. User CFLAGS/LDFLAGS/CC are respected;
# the flags the project insists on live in WARN and BASE.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
COMPDIR  ?= $(PREFIX)/share/bash-completion/completions
CC       ?= cc
CFLAGS   ?= -Os -g
WARN      = -Wall -Wextra -Werror
BASE      = -std=gnu11 -D_GNU_SOURCE -DVERSION='"$(VERSION)"'
ifeq ($(SANITIZE),1)
SAN       = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(STATIC),1)
LDSTATIC  = -static
endif
# Small binaries (issue: at most 32 KiB stripped): unused sections dropped,
# no unwind tables (C, no exceptions; -g keeps debug frames), and no page
# padding between code and data.
TIGHT     = -ffunction-sections -fdata-sections -fno-asynchronous-unwind-tables
TIGHTLD   = -Wl,--gc-sections -Wl,-z,noseparate-code -Wl,--build-id=none
ALL_CFLAGS = $(BASE) $(WARN) $(TIGHT) $(CFLAGS) $(SAN)
LINK      = $(TIGHTLD) $(LDFLAGS) $(SAN) $(LDSTATIC)

BINS      = fdsend fdrecv
HELPERS   = $(filter-out test/fuzz,$(patsubst %.c,%,$(wildcard test/*.c))) test/fuzz-replay
BENCH     = $(patsubst %.c,%,$(wildcard bench/*.c))
FUZZ_SECONDS ?= 60

all: $(BINS)

# Rebuild whenever the compiler or flags change (SANITIZE=1, STATIC=1, ...).
.build-flags: FORCE
	@echo '$(CC) $(ALL_CFLAGS) $(LINK)' | cmp -s - $@ || \
	  echo '$(CC) $(ALL_CFLAGS) $(LINK)' > $@

fdsend fdrecv: %: %.c common.h .build-flags
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -o $@ $< $(LINK)

# Test helpers are scaffolding: sanitizers are for the tools (and the
# replayed parser), not for them.
test/%: test/%.c common.h .build-flags
	$(CC) $(BASE) $(WARN) $(CFLAGS) $(CPPFLAGS) -o $@ $< $(LDFLAGS)

test/fuzz-replay: test/fuzz.c common.h .build-flags
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -DREPLAY -o $@ test/fuzz.c $(LDFLAGS) $(SAN)

helpers: $(HELPERS)

# What 'make test' needs, from Debian's packages when missing: bats-core,
# valgrind, clang (with its libFuzzer runtime), musl-gcc and the real
# servers of test/realserver.bats and test/nginx.bats (lighttpd, gunicorn,
# nginx). Only 'make test' installs: 'make check' runs with what is there.
APT = if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
      { [ -n "$$APT_UPDATED" ] || $$SUDO apt-get update -qq; } && APT_UPDATED=1 && \
      $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq

test-deps:
	@command -v bats >/dev/null 2>&1 || { \
	  echo "bats-core missing: installing the Debian package 'bats'"; \
	  $(APT) bats >/dev/null; }
	@command -v valgrind >/dev/null 2>&1 || { \
	  echo "valgrind missing: installing it"; $(APT) valgrind >/dev/null; }
	@command -v musl-gcc >/dev/null 2>&1 || { \
	  echo "musl-gcc missing: installing musl-tools"; $(APT) musl-tools >/dev/null; }
	@PATH=$$PATH:/usr/sbin:/sbin command -v lighttpd >/dev/null 2>&1 || { \
	  echo "lighttpd missing: installing it, its own service stopped and disabled"; \
	  $(APT) lighttpd >/dev/null && { $$SUDO systemctl disable --now lighttpd >/dev/null 2>&1; \
	  $$SUDO service lighttpd stop >/dev/null 2>&1; true; }; }
	@command -v gunicorn >/dev/null 2>&1 || { \
	  echo "gunicorn missing: installing it"; $(APT) gunicorn >/dev/null; }
	@PATH=$$PATH:/usr/sbin:/sbin command -v nginx >/dev/null 2>&1 || { \
	  echo "nginx missing: installing it, its own service stopped and disabled"; \
	  $(APT) nginx >/dev/null && { $$SUDO systemctl disable --now nginx >/dev/null 2>&1; \
	  $$SUDO service nginx stop >/dev/null 2>&1; true; }; }
	@printf 'int LLVMFuzzerTestOneInput(const char *d, long n)\n{ return !d && n; }\n' \
	  >.fuzzcheck.c; \
	  clang -fsanitize=fuzzer .fuzzcheck.c -o .fuzzcheck >/dev/null 2>&1 || { \
	  echo "clang with libFuzzer missing: installing clang"; \
	  $(APT) clang libclang-rt-dev >/dev/null || $(APT) clang >/dev/null; }; \
	  rm -f .fuzzcheck.c .fuzzcheck

# The suite alone, against whatever build the flags make.
SUITE     = $(filter-out test/valgrind.bats,$(wildcard test/*.bats))

# bats-core is needed; what else is missing only skips the tests that need it
have-bats:
	@command -v bats >/dev/null 2>&1 || { \
	  echo "bats-core is missing: install it (the Debian package is bats), or run"; \
	  echo "'make test', which installs what the tests need"; exit 1; }

# Sanitizers slow the same work down several times: the suite's bounds follow.
ifeq ($(SANITIZE),1)
SLOW_ENV  = FDSEND_TEST_SLOW=3
endif

check: all helpers have-bats
	$(SLOW_ENV) bats $(SUITE)

# The suite twice while two busy loops keep both CPUs busy: no bound may
# rely on an idle machine. The loops are stopped however the runs end.
check-busy: all helpers have-bats
	@sh -c 'while :; do :; done' & a=$$!; sh -c 'while :; do :; done' & b=$$!; \
	  trap 'kill $$a $$b; wait $$a $$b 2>/dev/null' EXIT; \
	  FDSEND_TEST_SLOW=3 bats $(SUITE) && FDSEND_TEST_SLOW=3 bats $(SUITE)

# Everything CI proves: the suite, the suite again under AddressSanitizer
# and UBSan, a core subset under valgrind, and a short fuzzing run.
test: test-deps check
	$(MAKE) --no-print-directory SANITIZE=1 check
	$(MAKE) --no-print-directory valgrind
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$${CI_FUZZ_SECONDS:-20}
	$(MAKE) --no-print-directory musl
	$(MAKE) --no-print-directory all

valgrind: all helpers have-bats
	@if command -v valgrind >/dev/null 2>&1; then \
	  FDSEND_VALGRIND=1 bats test/valgrind.bats; \
	else echo "valgrind: not installed, subset skipped"; fi

# libFuzzer needs clang; new inputs go to a scratch corpus, crashes to
# test/corpus/ where the suite replays them ever after.
test/fuzz-libfuzzer: test/fuzz.c common.h
	clang $(BASE) $(WARN) -g -O1 -fsanitize=fuzzer,address,undefined -o $@ test/fuzz.c

fuzz:
	@if command -v clang >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory test/fuzz-libfuzzer && \
	  d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && \
	  if ./test/fuzz-libfuzzer -max_total_time=$(FUZZ_SECONDS) \
	       -print_final_stats=1 -artifact_prefix=test/corpus/crash- \
	       "$$d" test/corpus >"$$d.log" 2>&1; then \
	    grep -E '^stat::number_of_executed_units' "$$d.log"; \
	    echo "fuzz: $(FUZZ_SECONDS) s, no crash"; rm -f "$$d.log"; \
	  else cat "$$d.log"; rm -f "$$d.log"; exit 1; fi; \
	else echo "fuzz: clang not installed, skipped"; fi

# musl must build it too, and its sendmsg has limits of its own: build
# both tools static with musl-gcc and hand 300 descriptors between them.
musl: helpers
	@if command -v musl-gcc >/dev/null 2>&1; then \
	  d=$$(mktemp -d); trap 'rm -rf "$$d"' EXIT; \
	  for t in $(BINS); do \
	    musl-gcc $(BASE) $(WARN) -Os -static -o "$$d/$$t" $$t.c || exit 1; done; \
	  timeout 20 "$$d/fdrecv" -t 10 "$$d/s" -- sh -c 'test "$$LISTEN_FDS" = 300' & \
	  timeout 20 ./test/fdtool memfds 300 "$$d/fdsend" -t 10 "$$d/s" && \
	  wait $$! && echo "musl: both tools build, 300 descriptors handed over"; \
	else echo "musl: musl-gcc not installed, skipped"; fi

demo: all
	@sh test/demo.sh

bench/%: bench/%.c
	$(CC) $(BASE) $(WARN) -O2 $(CFLAGS) -o $@ $<

bench/driver: common.h

# The same sources linked statically, with glibc and, where musl-gcc is,
# with musl, for bench/run.sh to weigh and time beside the default build.
STATIC_BUILDS = $(foreach t,$(BINS),bench/static-glibc/$(t)) \
	$(if $(shell command -v musl-gcc),$(foreach t,$(BINS),bench/static-musl/$(t)))

bench/static-glibc/%: %.c common.h
	@mkdir -p $(@D)
	$(CC) $(BASE) $(WARN) $(TIGHT) $(CFLAGS) -o $@ $< $(TIGHTLD) $(LDFLAGS) -static

bench/static-musl/%: %.c common.h
	@mkdir -p $(@D)
	musl-gcc $(BASE) $(WARN) $(TIGHT) -Os -o $@ $< $(TIGHTLD) -static

bench: all test/server $(BENCH) $(STATIC_BUILDS)
	@sh bench/run.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(COMPDIR)
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 man/fdsend.1 man/fdrecv.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 completions/fdsend.bash $(DESTDIR)$(COMPDIR)/fdsend
	install -m 644 completions/fdsend.bash $(DESTDIR)$(COMPDIR)/fdrecv

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fdsend $(DESTDIR)$(BINDIR)/fdrecv \
	      $(DESTDIR)$(MANDIR)/man1/fdsend.1 $(DESTDIR)$(MANDIR)/man1/fdrecv.1 \
	      $(DESTDIR)$(COMPDIR)/fdsend $(DESTDIR)$(COMPDIR)/fdrecv

clean:
	rm -f $(BINS) $(HELPERS) $(BENCH) test/fuzz-libfuzzer .build-flags
	rm -rf bench/static-glibc bench/static-musl

.PHONY: all helpers have-bats test-deps check check-busy test valgrind fuzz musl demo bench install uninstall clean FORCE
