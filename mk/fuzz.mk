# SPDX-License-Identifier: MIT
# make fuzz: build the libFuzzer targets in tests/fuzz with clang and run
# each for FUZZ_SECONDS (default 30) on a seed corpus from tests/data.
FUZZ_SECONDS ?= 30
FUZZ_B := build-fuzz
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
	-DNODETRUST_VERSION='"$(VERSION)"' -Icommon -Iagent $(DEPS_CFLAGS)
FUZZ_SRC := agent/node-condition.c agent/state.c agent/plan.c agent/runtime.c agent/target.c agent/manifest.c agent/trust.c agent/snapshot.c agent/containerd-hosts.c common/utf8.c common/fs.c common/x509.c common/hash.c common/strv.c common/base64.c common/hostname.c common/toml.c common/toml-lex.c common/toml-tree.c common/toml-scalar.c

# fuzz-agg-*: the aggregator's parsers, with its own headers.
FUZZ_AGG_SRC := aggregator/ingest.c aggregator/ingest-common.c aggregator/ingest-registries.c \
	aggregator/ingest-report.c common/strv.c common/utf8.c

$(FUZZ_B)/fuzz-agg-%: tests/fuzz/fuzz-agg-%.c $(FUZZ_AGG_SRC) | $(B)/.deps-build
	@mkdir -p $(FUZZ_B)
	clang $(subst -Iagent,-Iaggregator,$(FUZZ_CFLAGS)) -o $@ $^ $(DEPS_LIBS)

$(FUZZ_B)/%: tests/fuzz/%.c $(FUZZ_SRC) | $(B)/.deps-build
	@mkdir -p $(FUZZ_B)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(DEPS_LIBS)

fuzz: $(patsubst tests/fuzz/%.c,$(FUZZ_B)/%,$(wildcard tests/fuzz/fuzz-*.c))
	@set -e; for f in $^; do \
		mkdir -p $(FUZZ_B)/corpus-$$(basename $$f); \
		echo "== $$f ($(FUZZ_SECONDS) s)"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 $(FUZZ_B)/corpus-$$(basename $$f) tests/fuzz/seeds 2>&1 | tail -3; \
	done

.PHONY: fuzz
