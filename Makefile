# SPDX-License-Identifier: MIT
# Plain make: no configure step. User CFLAGS/LDFLAGS/CC are respected;
# the flags the project insists on live in WARN and BASE.

VERSION   = 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
MANDIR   ?= $(PREFIX)/share/man
CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror
BASE      = -std=gnu11 -D_GNU_SOURCE -DVERSION='"$(VERSION)"'
ifeq ($(SANITIZE),1)
SAN       = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
ifeq ($(STATIC),1)
LDSTATIC  = -static
endif
ALL_CFLAGS = $(BASE) $(WARN) $(CFLAGS) $(SAN)

BINS      = fdsend fdrecv
HELPERS   = $(patsubst %.c,%,$(wildcard test/*.c))

all: $(BINS)

fdsend: fdsend.c common.h
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -o $@ fdsend.c $(LDFLAGS) $(SAN) $(LDSTATIC)

fdrecv: fdrecv.c common.h
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -o $@ fdrecv.c $(LDFLAGS) $(SAN) $(LDSTATIC)

test/%: test/%.c
	$(CC) $(ALL_CFLAGS) $(CPPFLAGS) -o $@ $< $(LDFLAGS) $(SAN)

helpers: $(HELPERS)

# bats-core comes from Debian's package when it is missing.
bats:
	@command -v bats >/dev/null 2>&1 || { \
	  echo "bats-core missing: installing the Debian package 'bats'"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq bats >/dev/null; }

test: all helpers bats
	bats test

demo: all
	@sh test/demo.sh

BENCH     = $(patsubst %.c,%,$(wildcard bench/*.c))
bench/%: bench/%.c
	$(CC) $(BASE) $(WARN) -O2 $(CFLAGS) -o $@ $<

bench: all $(BENCH)
	@sh bench/run.sh

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BINS) $(DESTDIR)$(BINDIR)/
	install -m 644 man/fdsend.1 man/fdrecv.1 $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/fdsend $(DESTDIR)$(BINDIR)/fdrecv \
	      $(DESTDIR)$(MANDIR)/man1/fdsend.1 $(DESTDIR)$(MANDIR)/man1/fdrecv.1

clean:
	rm -f $(BINS) $(HELPERS) $(BENCH)

.PHONY: all helpers bats test demo bench install uninstall clean
