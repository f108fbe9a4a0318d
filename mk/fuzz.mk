# SPDX-License-Identifier: MIT
# libFuzzer targets (tests/fuzz/fuzz-NAME.c), built with clang under ASan
# and UBSan (any UB aborts, so libFuzzer sees it as a crash). Each target
# NAME has its checked-in seed corpus in tests/fuzz/corpus/NAME/ and, when
# useful, a dictionary tests/fuzz/NAME.dict.
#
#   make fuzz          every target for FUZZ_SECONDS (default 60) each;
#                      new inputs go to build/fuzz-strict/corpus/NAME
#   make fuzz-smoke    every target over its checked-in corpus (each file
#                      once, deterministic: a fixed crash stays fixed), then
#                      FUZZ_SMOKE_SECONDS (default 1) of fuzzing; fails on
#                      any crash, leak or timeout. make check runs it.
#   make fuzz-NAME     one target for FUZZ_SECONDS
#
# The agent's and the aggregator's objects are compiled once into two
# archives, so a target links only the modules it calls. Reproducers of
# crashes not fixed yet wait in tests/fuzz/crashes/NAME/ (not run).
FUZZ_SECONDS       ?= 60
FUZZ_SMOKE_SECONDS ?= 1
FUZZ_CC            ?= clang
# The targets' checks of the hardening fixes (names from state pass the
# key checks, an object of another kind is never taken, reasons are one
# line, a bundle is all or nothing) are on: FUZZ_STRICT=0 (its own build,
# build/fuzz) leaves them out.
FUZZ_STRICT        ?= 1
FUZZ_B             := build/fuzz$(if $(filter 1,$(FUZZ_STRICT)),-strict)
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=gnu11 -g -O1 -Wall -Wextra -Wno-unused-parameter $(FUZZ_SAN) -D_GNU_SOURCE \
	-DNODETRUST_VERSION='"$(VERSION)"' -DFUZZ_STRICT=$(if $(filter 1,$(FUZZ_STRICT)),1,0) -Icommon $(DEPS_CFLAGS)
# Per input: 10 s is a hang, 1 GiB a leak or a bomb.
FUZZ_RUN_FLAGS = -max_len=65536 -timeout=10 -rss_limit_mb=1024 -print_final_stats=0 \
	-artifact_prefix=$(FUZZ_B)/artifacts/$(1)- $$([ -f tests/fuzz/$(1).dict ] && echo -dict=tests/fuzz/$(1).dict)

FUZZ_NAMES := $(patsubst tests/fuzz/fuzz-%.c,%,$(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BIN   := $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz-%)

FUZZ_COMMON_OBJ := $(COMMON_SRC:%.c=$(FUZZ_B)/obj/%.o)
FUZZ_AGENT_OBJ  := $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(filter-out agent/main.c,$(AGENT_SRC)))
# The report parser and what it uses: the rest wants the embedded page.
FUZZ_AGG_OBJ    := $(patsubst %.c,$(FUZZ_B)/obj/%.o,$(wildcard aggregator/ingest*.c))

$(FUZZ_B)/obj/common/%.o: common/%.c | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_B)/obj/agent/%.o: agent/%.c | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iagent -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_B)/obj/aggregator/%.o: aggregator/%.c | $(B)/.deps-build
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iaggregator -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_B)/libagent.a: $(FUZZ_AGENT_OBJ) $(FUZZ_COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_B)/libagg.a: $(FUZZ_AGG_OBJ) $(FUZZ_COMMON_OBJ)
	@rm -f $@
	ar rcs $@ $^

# fuzz-agg-*: the aggregator's parsers, with its own headers.
$(FUZZ_B)/fuzz-agg-%: tests/fuzz/fuzz-agg-%.c tests/fuzz/fuzz-util.h $(FUZZ_B)/libagg.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iaggregator -Itests/fuzz -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_B)/libagg.a $(DEPS_LIBS)

$(FUZZ_B)/fuzz-%: tests/fuzz/fuzz-%.c tests/fuzz/fuzz-util.h $(FUZZ_B)/libagent.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iagent -Itests/fuzz -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_B)/libagent.a $(DEPS_LIBS)

fuzz-build: $(FUZZ_BIN)

# One target at a time: the machines running this are shared.
fuzz: $(FUZZ_BIN)
	@failed=""; for t in $(FUZZ_NAMES); do $(MAKE) --no-print-directory fuzz-$$t || failed="$$failed $$t"; done; \
	[ -z "$$failed" ] || { echo "crashed:$$failed"; exit 1; }

$(FUZZ_NAMES:%=fuzz-%): fuzz-%: $(FUZZ_B)/fuzz-%
	@mkdir -p $(FUZZ_B)/corpus/$* $(FUZZ_B)/artifacts && rm -f $(FUZZ_B)/artifacts/$*-*
	@echo "== fuzz-$* ($(FUZZ_SECONDS) s)"
	@$< $(call FUZZ_RUN_FLAGS,$*) -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
		$(FUZZ_B)/corpus/$* tests/fuzz/corpus/$* 2>&1 | grep -E '^(stat::|#[0-9]+ +DONE|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' || true
	@! ls $(FUZZ_B)/artifacts/$*-* >/dev/null 2>&1 || { echo "fuzz-$*: crash, see $(FUZZ_B)/artifacts/$*-*"; exit 1; }

# The regression pass first (every checked-in input once), then a short
# fuzz; the log is shown only when a run fails.
fuzz-smoke: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_B)/artifacts $(FUZZ_B)/log
	@set -e; for t in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_B)/corpus/$$t; \
		log=$(FUZZ_B)/log/smoke-$$t.log; \
		printf '== fuzz-%s: corpus, then %s s\n' $$t $(FUZZ_SMOKE_SECONDS); \
		$(FUZZ_B)/fuzz-$$t $(call FUZZ_RUN_FLAGS,$$t) -runs=0 tests/fuzz/corpus/$$t >$$log 2>&1 && \
		$(FUZZ_B)/fuzz-$$t $(call FUZZ_RUN_FLAGS,$$t) -max_total_time=$(FUZZ_SMOKE_SECONDS) \
			$(FUZZ_B)/corpus/$$t tests/fuzz/corpus/$$t >>$$log 2>&1 || \
			{ tail -n 60 $$log; echo "fuzz-$$t failed: log $$log, reproducer $(FUZZ_B)/artifacts/$$t-*"; exit 1; }; \
	done

fuzz-clean:
	rm -rf $(FUZZ_B)

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-clean $(FUZZ_NAMES:%=fuzz-%)

-include $(shell find $(FUZZ_B) -name '*.d' -type f 2>/dev/null)
