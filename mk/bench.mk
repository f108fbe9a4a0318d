# SPDX-License-Identifier: MIT
# make bench: one harness, bench/run.py, runs every measure of issue 14's
# goals side by side with the baselines of the same run (node-ca's loop,
# the physical-limit reference), prints one table and writes it to
# bench/RESULTS.md (bench/README.md says what each row means). It asserts
# nothing: a missed goal is a row marked missed, only a harness error fails.
# QUICK=1: fewer registries and swaps, under 2 minutes. NODETRUSTD=path and
# AGGREGATOR=path measure another build; BENCH_ARGS passes more options
# (--only swap,cold,idle,nodeca,aggregator; --out FILE; --dir DIR).
BENCH_ARGS ?=

bench: all
	scripts/deps.sh bench
	/usr/bin/python3 bench/run.py $(if $(filter 1,$(QUICK)),--quick) $(BENCH_ARGS)

.PHONY: bench
