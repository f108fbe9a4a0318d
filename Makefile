# SPDX-License-Identifier: MIT
# nodetrust: build, test, demo, install.
#
# Sources are picked up by wildcard: common/*.c is a static library,
# agent/*.c builds nodetrustd, aggregator/*.c builds nodetrust-aggregator,
# tests/unit/test-*.c each become a cmocka binary linked with the agent
# (test-agg-*.c: aggregator) and common objects, minus the main files. Extra targets
# (selinux, rpm, bench, fuzz) live in mk/*.mk.

VERSION    := 0.1.0
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
DESTDIR    ?=
PYTEST     ?= /usr/bin/python3 -m pytest

CC      ?= cc
PKG_CONFIG ?= pkg-config
B       := build
PKGS    := libsystemd openssl libcurl jansson libmicrohttpd yaml-0.1
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Werror
CPPFLAGS += -D_GNU_SOURCE -DNODETRUST_VERSION='"$(VERSION)"' -Icommon
ifeq ($(SANITIZE),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
LDFLAGS += -fsanitize=address,undefined
B       := build-san
endif

DEPS_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
DEPS_LIBS   = $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS  = -std=gnu11 $(WARN) $(CFLAGS) $(DEPS_CFLAGS)

COMMON_SRC := $(wildcard common/*.c)
AGENT_SRC  := $(wildcard agent/*.c)
AGG_SRC    := $(wildcard aggregator/*.c)
TEST_SRC   := $(wildcard tests/unit/test-*.c)

COMMON_OBJ := $(COMMON_SRC:%.c=$(B)/%.o)
AGENT_OBJ  := $(AGENT_SRC:%.c=$(B)/%.o)
AGG_OBJ    := $(AGG_SRC:%.c=$(B)/%.o) $(B)/aggregator/page-data.o
LIB_AGENT  := $(filter-out $(B)/agent/main.o,$(AGENT_OBJ))
LIB_AGG    := $(filter-out $(B)/aggregator/main.o,$(AGG_OBJ))
TEST_BIN   := $(TEST_SRC:tests/unit/%.c=$(B)/tests/%)

all: $(B)/nodetrustd $(B)/nodetrust-aggregator

# Build dependencies are checked before the first compile, so a machine
# without them is told which Debian package to install rather than shown
# "jansson.h: No such file or directory". The check runs only when its
# stamp is missing or older than this Makefile (which names PKGS): a no-op
# make costs a stat, a stale stamp one pkg-config call (a call per module
# only to name what is missing). Targets that install the packages first
# (deps, demo, check) and clean never reach it, so they work without them.
DEB_PKG_cc            := gcc
DEB_PKG_pkg-config    := pkg-config
DEB_PKG_libsystemd    := libsystemd-dev
DEB_PKG_openssl       := libssl-dev
DEB_PKG_libcurl       := libcurl4-openssl-dev
DEB_PKG_jansson       := libjansson-dev
DEB_PKG_libmicrohttpd := libmicrohttpd-dev
DEB_PKG_yaml-0.1      := libyaml-dev
DEB_PKG_cmocka        := libcmocka-dev

# What is missing, as the names above; empty when everything is there.
DEPS_MISSING = $(shell \
	command -v $(firstword $(CC)) >/dev/null 2>&1 || echo cc; \
	if ! command -v $(firstword $(PKG_CONFIG)) >/dev/null 2>&1; then echo pkg-config; \
	elif ! $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null; then \
		for m in $(PKGS); do $(PKG_CONFIG) --exists $$m 2>/dev/null || echo $$m; done; \
	fi)
# The unit tests include cmocka.h (after the headers it expects) and link
# -lcmocka without pkg-config: ask the compiler whether it finds the header.
CMOCKA_MISSING = $(shell printf '\#include <%s>\n' stdarg.h stddef.h stdint.h setjmp.h cmocka.h | \
	$(CC) $(CPPFLAGS) -E -x c -o /dev/null - >/dev/null 2>&1 || echo cmocka)

# One line: what is missing, the Debian packages providing it, what to run.
deps_message = nodetrust needs $(1), from the Debian \
	package$(if $(word 2,$(1)),s) $(foreach m,$(1),$(DEB_PKG_$(m))): run \
	'scripts/deps.sh build' as root to install $(if $(word 2,$(1)),them,it), \
	or 'make demo' to install and build

# $(error) prints the one line and stops make before any compiler runs.
$(B)/.deps-build: Makefile
	$(if $(strip $(DEPS_MISSING)),$(error $(call deps_message,$(strip $(DEPS_MISSING)))))
	@mkdir -p $(@D) && touch $@

$(B)/.deps-unit: Makefile | $(B)/.deps-build
	$(if $(strip $(CMOCKA_MISSING)),$(error $(call deps_message,cmocka)))
	@mkdir -p $(@D) && touch $@

# Every compile waits for the check; when a test binary is wanted, for the
# cmocka one too, so a missing header stops make before the first object.
DEPS_STAMPS := $(B)/.deps-build
ifneq ($(filter unit $(B)/tests/%,$(MAKECMDGOALS)),)
DEPS_STAMPS += $(B)/.deps-unit
endif

# Each program sees only its own headers (and common/), so an agent and an
# aggregator module may share a file name without one shadowing the other.
$(B)/common/%.o: common/%.c | $(DEPS_STAMPS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/agent/%.o: agent/%.c | $(DEPS_STAMPS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iagent $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(B)/aggregator/%.o: aggregator/%.c | $(DEPS_STAMPS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iaggregator $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

# The fleet page is edited as aggregator/page/{index.html,page.css,page.js}
# and served as one document: mk/inline-page.awk puts the style sheet and
# script into the HTML, and a generated assembler stub embeds the result
# with .incbin as page_html[] (NUL-terminated) and page_html_size, which
# aggregator/page.c serves. Editing any of the three rebuilds the object.
PAGE_SRC  := aggregator/page/index.html aggregator/page/page.css aggregator/page/page.js
PAGE_HTML := $(B)/aggregator/page/index.html

$(PAGE_HTML): $(PAGE_SRC) mk/inline-page.awk | $(DEPS_STAMPS)
	@mkdir -p $(@D)
	awk -f mk/inline-page.awk aggregator/page/index.html > $@.tmp
	mv $@.tmp $@

# .incbin names the file as the assembler, run from here, finds it. The
# stub is C, compiled with the same flags as every other object, so the
# compiler adds whatever notes the build asks for (no executable stack,
# -fcf-protection's IBT/SHSTK property) to the object that holds the page.
$(B)/aggregator/page-data.c: Makefile | $(DEPS_STAMPS)
	@mkdir -p $(@D)
	@printf '%s\n' \
		'/* Generated by the Makefile: $(PAGE_HTML) as read-only data,' \
		' * page_html to page_html_end, then a NUL. */' \
		'__asm__(".pushsection .rodata\n"' \
		'        ".globl page_html\n"' \
		'        ".hidden page_html\n"' \
		'        ".type page_html, %object\n"' \
		'        "page_html:\n"' \
		'        ".incbin \"$(PAGE_HTML)\"\n"' \
		'        ".globl page_html_end\n"' \
		'        ".hidden page_html_end\n"' \
		'        "page_html_end:\n"' \
		'        ".byte 0\n"' \
		'        ".size page_html, . - page_html\n"' \
		'        ".popsection\n");' > $@.tmp
	mv $@.tmp $@

$(B)/aggregator/page-data.o: $(B)/aggregator/page-data.c $(PAGE_HTML) | $(DEPS_STAMPS)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(B)/libcommon.a: $(COMMON_OBJ)
	$(AR) rcs $@ $^

$(B)/nodetrustd: $(AGENT_OBJ) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEPS_LIBS)

$(B)/nodetrust-aggregator: $(AGG_OBJ) $(B)/libcommon.a
	$(CC) $(LDFLAGS) -o $@ $^ $(DEPS_LIBS)

# tests/unit/test-agg-*.c test the aggregator; every other test the agent.
$(B)/tests/test-agg-%: tests/unit/test-agg-%.c $(LIB_AGG) $(B)/libcommon.a | $(B)/.deps-unit
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iaggregator $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEPS_LIBS) -lcmocka

$(B)/tests/test-%: tests/unit/test-%.c $(LIB_AGENT) $(B)/libcommon.a | $(B)/.deps-unit
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Iagent $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(DEPS_LIBS) -lcmocka

deps:
	scripts/deps.sh build

# Unit tests first (fast, no peers), again under valgrind memcheck
# (mk/valgrind.mk) and under ASan+UBSan, every fuzz target briefly
# (mk/fuzz.mk), then end-to-end with real peers against the normal build.
check: deps-test
	$(MAKE) all unit
	$(MAKE) check-valgrind
	$(MAKE) SANITIZE=1 unit
	$(MAKE) fuzz-smoke
	$(PYTEST) -q tests/e2e
	$(PYTEST) -q bench/test_bench.py

unit: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done

deps-test:
	scripts/deps.sh test

# The bundled example: apply a kubelet-layout config map into a scratch root.
demo:
	scripts/deps.sh build
	$(MAKE) all
	scripts/demo.sh $(B)/nodetrustd

# Binaries here; units, man pages, config, SELinux module: mk/ship.mk.
install: all
	install -d $(DESTDIR)$(SBINDIR)
	install -m 0755 $(B)/nodetrustd $(B)/nodetrust-aggregator $(DESTDIR)$(SBINDIR)/
	$(MAKE) install-ship

clean:
	rm -rf build build-san

.PHONY: all check unit deps deps-test demo install clean

-include $(wildcard mk/*.mk)
-include $(shell find $(B) -name '*.d' -type f 2>/dev/null)
