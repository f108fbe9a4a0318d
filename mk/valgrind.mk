# SPDX-License-Identifier: MIT
# make check-valgrind: every unit test binary of the plain build (no
# sanitizers: valgrind and ASan do not mix) under valgrind memcheck. Any
# memory error, or any block definitely or indirectly lost, fails it;
# "still reachable" (what libraries keep until exit) does not. Each binary
# writes its report to $(B)/valgrind/NAME.log, printed when it fails.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --quiet --error-exitcode=1 --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
	--track-origins=yes --num-callers=30

check-valgrind: $(TEST_BIN)
	@[ "$(SANITIZE)" != 1 ] || { echo "check-valgrind runs the plain build: without SANITIZE=1"; exit 2; }
	@command -v $(VALGRIND) >/dev/null 2>&1 || \
		{ echo "valgrind not found: run 'scripts/deps.sh test' as root"; exit 1; }
	@mkdir -p $(B)/valgrind
	@set -e; failed=""; for t in $(TEST_BIN); do \
		n=$$(basename $$t); echo "== valgrind $$n"; \
		if ! NODETRUST_UNDER_VALGRIND=1 $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$(B)/valgrind/$$n.log $$t >$(B)/valgrind/$$n.out 2>&1; then \
			cat $(B)/valgrind/$$n.out $(B)/valgrind/$$n.log; failed="$$failed $$n"; \
		fi; \
	done; \
	if [ -n "$$failed" ]; then echo "valgrind found errors or leaks in:$$failed"; exit 1; fi

.PHONY: check-valgrind
