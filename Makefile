# trellis — build, test, install, bench, fuzz.
#
#   make                 optimised build: build/rel/{libtrellis.a,libtrellis.so,trellis,trellisd}
#   make run             install missing Debian packages (as root), build, run trellisd
#   make test            install missing Debian packages (as root), build with
#                        ASan+UBSan and run the whole suite
#   make bench           optimised build, then the benchmarks (JSON lines on stdout)
#   make fuzz            libFuzzer harnesses, FUZZ_SECONDS (default 60) each
#   make chaos           crash-consistency, load and security tests alone (short;
#                        TRELLIS_SOAK=1 for the long variants, as make soak runs)
#   make install         PREFIX=/usr/local DESTDIR=  (uninstall: the same set)
#   make deb             the Debian package: build/deb/trellis_VERSION_ARCH.deb
#   make deps            install the Debian packages the build and tests need

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCDIR ?= $(PREFIX)/include/trellis
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=

CC ?= cc
PKGS := libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd
DEB_PKGS := build-essential pkg-config libzmq3-dev libczmq-dev libsodium-dev libmsgpack-dev \
	liblmdb-dev libavahi-client-dev libjansson-dev libzstd-dev jq procps bc \
	avahi-daemon avahi-utils dbus iproute2 dpkg-dev debhelper systemd

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wno-missing-field-initializers -Werror
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(PKG_CFLAGS) -Icore -Istore -Iagent -Idiscovery
REL_CFLAGS := $(BASE_CFLAGS) -O2 -g $(CFLAGS)
SAN_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined $(CFLAGS)
LIBS := -Wl,--as-needed $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(wildcard core/*.c) $(wildcard store/*.c) $(wildcard discovery/*.c) $(wildcard agent/lib/*.c)
CLI_SRC := $(wildcard agent/cli/*.c)
DAEMON_SRC := $(wildcard agent/daemon/*.c)
REL_DAEMON = $(if $(wildcard agent/daemon/main.c),$(REL)/trellisd)
SAN_DAEMON = $(if $(wildcard agent/daemon/main.c),$(SAN)/trellisd)
TEST_SRC := $(wildcard tests/unit/test_*.c)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
NETNS_SRC := $(wildcard tests/netns/*.c)

REL := build/rel
SAN := build/san

rel_obj = $(patsubst %.c,$(REL)/%.o,$(1))
san_obj = $(patsubst %.c,$(SAN)/%.o,$(1))

.PHONY: all test deps bench demo run fuzz install uninstall deb clean check-deps san soak

all: check-deps $(REL)/libtrellis.a $(REL)/libtrellis.so $(REL)/trellis $(REL_DAEMON)

check-deps:
	@pkg-config --exists $(PKGS) || { echo "missing build dependencies; run 'make deps' (as root) or install: $(DEB_PKGS)" >&2; exit 1; }

# ---- optimised build -----------------------------------------------------
$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -MMD -MP -c $< -o $@

$(REL)/libtrellis.a: $(call rel_obj,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(REL)/libtrellis.so: $(call rel_obj,$(LIB_SRC))
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libtrellis.so.0 -o $@ $^ $(LIBS)

$(REL)/trellis: $(call rel_obj,$(CLI_SRC)) $(REL)/libtrellis.a
	$(CC) $(LDFLAGS) -o $@ $(call rel_obj,$(CLI_SRC)) $(REL)/libtrellis.a $(LIBS)

$(REL)/trellisd: $(call rel_obj,$(DAEMON_SRC)) $(REL)/libtrellis.a
	$(CC) $(LDFLAGS) -o $@ $(call rel_obj,$(DAEMON_SRC)) $(REL)/libtrellis.a $(LIBS)

$(REL)/bench/%: tests/bench/%.c $(REL)/libtrellis.a
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -Itests -o $@ $< $(REL)/libtrellis.a $(LIBS)

# Helpers of the multi-host tests (tests/netns/), e.g. trdisc.
$(REL)/netns/%: tests/netns/%.c $(REL)/libtrellis.a
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -MMD -MP -o $@ $< $(REL)/libtrellis.a $(LIBS)

# ---- sanitizer build (used by the tests) ---------------------------------
$(SAN)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -MMD -MP -c $< -o $@

$(SAN)/libtrellis.a: $(call san_obj,$(LIB_SRC))
	@rm -f $@
	ar rcs $@ $^

$(SAN)/trellis: $(call san_obj,$(CLI_SRC)) $(SAN)/libtrellis.a
	$(CC) $(SAN_CFLAGS) -o $@ $(call san_obj,$(CLI_SRC)) $(SAN)/libtrellis.a $(LIBS)

$(SAN)/trellisd: $(call san_obj,$(DAEMON_SRC)) $(SAN)/libtrellis.a
	$(CC) $(SAN_CFLAGS) -o $@ $(call san_obj,$(DAEMON_SRC)) $(SAN)/libtrellis.a $(LIBS)

$(SAN)/unit/%: tests/unit/%.c tests/tr_test.h $(SAN)/libtrellis.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -MMD -MP -Itests -DTR_SRCDIR='"$(CURDIR)"' -o $@ $< $(SAN)/libtrellis.a $(LIBS)

$(SAN)/netns/%: tests/netns/%.c $(SAN)/libtrellis.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -MMD -MP -o $@ $< $(SAN)/libtrellis.a $(LIBS)

UNIT_BINS := $(patsubst tests/unit/%.c,$(SAN)/unit/%,$(TEST_SRC))
BENCH_BINS := $(patsubst tests/bench/%.c,$(REL)/bench/%,$(BENCH_SRC))
NETNS_SAN := $(patsubst tests/netns/%.c,$(SAN)/netns/%,$(NETNS_SRC))
NETNS_REL := $(patsubst tests/netns/%.c,$(REL)/netns/%,$(NETNS_SRC))

san: check-deps $(SAN)/trellis $(SAN_DAEMON) $(UNIT_BINS) $(NETNS_SAN)

# ---- targets ---------------------------------------------------------------
deps:
	@missing=""; for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null || exit 1; \
	  else echo "missing Debian packages:$$missing (run 'sudo make deps')" >&2; exit 1; fi; \
	fi

test: deps
	@$(MAKE) --no-print-directory san
	@TRELLIS_BUILD=$(SAN) tests/run.sh

soak: deps
	@$(MAKE) --no-print-directory san
	@TRELLIS_BUILD=$(SAN) TRELLIS_SOAK=1 tests/run.sh

# The Quick start's first command: build and run the agent in the foreground
# (Ctrl-C stops it). TRELLISD_ARGS passes options, e.g. --listen tcp://*:0.
run: deps
	@$(MAKE) --no-print-directory all
	exec $(REL)/trellisd $(TRELLISD_ARGS)

# A tour of the command line without an agent: build, then create a demo repository,
# append ops and show the log (state under build/demo, nothing else touched).
DEMO := build/demo
demo: deps
	@$(MAKE) --no-print-directory all
	@rm -rf $(DEMO)
	@set -e; export TRELLIS_HOME=$(CURDIR)/$(DEMO)/home; t=$(CURDIR)/$(REL)/trellis; r=$(DEMO)/repo; \
	echo "\$$ trellis init $$r"; $$t init $$r; \
	echo "\$$ trellis id"; $$t id; \
	echo "\$$ trellis op add --kind app.note --target readme --body '{\"text\":\"hello\"}'"; \
	$$t -C $$r op add --kind app.note --target readme --body '{"text":"hello"}'; \
	echo "\$$ trellis op import (3 ops as JSON lines)"; \
	for i in 1 2 3; do echo "{\"kind\":\"app.note\",\"target\":\"note-$$i\",\"body\":{\"text\":\"note $$i\"}}"; done \
	  | $$t -C $$r op import -; \
	echo "\$$ trellis log"; $$t -C $$r log; \
	echo "\$$ trellis verify"; $$t -C $$r verify; \
	echo "\$$ trellis sync status"; $$t -C $$r sync status

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS) $(NETNS_REL)
	@TRELLIS_BUILD=$(REL) tests/bench/run.sh

# libFuzzer harnesses for every decoder of outside bytes (FUZZ_SECONDS each).
fuzz: deps
	@for p in clang libclang-rt-14-dev; do dpkg -s $$p >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p >/dev/null; }; done
	@tests/fuzz/run.sh

# tests/chaos/: crash consistency, load, security (also part of make test).
chaos: deps
	@$(MAKE) --no-print-directory san
	@st=0; for t in tests/chaos/test_*.sh; do echo "== $$t"; \
	  TRELLIS_BIN=$(CURDIR)/$(SAN)/trellis bash $$t || st=1; done; exit $$st

# ---- install ----------------------------------------------------------------
# `make install` and the Debian package (packaging/debian, built by `make deb`
# through this same target) install the same set: the programs and the
# notifier, the library (.a, .so with its symlinks), headers, trellis.pc, man
# pages, systemd user units, bash completion, and the documentation.
VERSION := 0.1.0
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/trellis
USERUNITDIR ?= $(PREFIX)/lib/systemd/user
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
INST_UNITS := trellisd.service trellis-notify.service
INST_DOCS := README.md $(wildcard docs/*.md)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCDIR)/core \
	  $(DESTDIR)$(INCDIR)/store $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(USERUNITDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(REL)/trellis $(REL)/trellisd packaging/trellis-notify $(DESTDIR)$(BINDIR)/
	install -m 0644 $(REL)/libtrellis.a $(DESTDIR)$(LIBDIR)/libtrellis.a
	install -m 0755 $(REL)/libtrellis.so $(DESTDIR)$(LIBDIR)/libtrellis.so.$(VERSION)
	ln -sf libtrellis.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libtrellis.so.0
	ln -sf libtrellis.so.0 $(DESTDIR)$(LIBDIR)/libtrellis.so
	install -m 0644 core/tr_*.h $(DESTDIR)$(INCDIR)/core/
	install -m 0644 store/tr_*.h $(DESTDIR)$(INCDIR)/store/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCDIR@|$(INCDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' packaging/trellis.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/trellis.pc
	chmod 0644 $(DESTDIR)$(LIBDIR)/pkgconfig/trellis.pc
	install -m 0644 packaging/man/trellis.1 $(DESTDIR)$(MANDIR)/man1/trellis.1
	install -m 0644 packaging/man/trellisd.8 $(DESTDIR)$(MANDIR)/man8/trellisd.8
	for u in $(INST_UNITS); do \
	  sed 's|/usr/bin/|$(BINDIR)/|g' packaging/systemd/$$u > $(DESTDIR)$(USERUNITDIR)/$$u && \
	  chmod 0644 $(DESTDIR)$(USERUNITDIR)/$$u || exit 1; done
	install -m 0644 packaging/completion/trellis $(DESTDIR)$(BASHCOMPDIR)/trellis
	ln -sf trellis $(DESTDIR)$(BASHCOMPDIR)/trellisd
	install -m 0644 $(INST_DOCS) $(DESTDIR)$(DOCDIR)/

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/trellis $(DESTDIR)$(BINDIR)/trellisd $(DESTDIR)$(BINDIR)/trellis-notify \
	  $(DESTDIR)$(LIBDIR)/libtrellis.a $(DESTDIR)$(LIBDIR)/libtrellis.so $(DESTDIR)$(LIBDIR)/libtrellis.so.0 \
	  $(DESTDIR)$(LIBDIR)/libtrellis.so.$(VERSION) $(DESTDIR)$(LIBDIR)/pkgconfig/trellis.pc \
	  $(DESTDIR)$(MANDIR)/man1/trellis.1 $(DESTDIR)$(MANDIR)/man8/trellisd.8 \
	  $(addprefix $(DESTDIR)$(USERUNITDIR)/,$(INST_UNITS)) \
	  $(DESTDIR)$(BASHCOMPDIR)/trellis $(DESTDIR)$(BASHCOMPDIR)/trellisd
	rm -rf $(DESTDIR)$(INCDIR) $(DESTDIR)$(DOCDIR)

# ---- Debian package -----------------------------------------------------------
# dpkg-buildpackage wants debian/ at the top of the source tree: `make deb`
# copies the tree (without build/ and .git) to build/deb/trellis-VERSION,
# puts packaging/debian there as debian/, and builds the binary package
# without the test suite: build/deb/trellis_VERSION_ARCH.deb.
DEB_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
DEB_SRC := build/deb/trellis-$(VERSION)

deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || \
	  { echo "make deb needs dpkg-dev and debhelper; run 'make deps' (as root)" >&2; exit 1; }
	rm -rf build/deb
	mkdir -p $(DEB_SRC)
	tar -c --exclude=./build --exclude=./.git --exclude='./tests/fuzz/corpus-*' . | tar -x -C $(DEB_SRC)
	cp -R packaging/debian $(DEB_SRC)/debian
	cd $(DEB_SRC) && DEB_BUILD_OPTIONS="nocheck noddebs" dpkg-buildpackage -us -uc -b -j$(DEB_JOBS) >../build.log 2>&1 || \
	  { tail -n 40 ../build.log >&2; echo "make deb: dpkg-buildpackage failed; see build/deb/build.log" >&2; exit 1; }
	rm -rf $(DEB_SRC)
	@ls build/deb/*.deb

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
