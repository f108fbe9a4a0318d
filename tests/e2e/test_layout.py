"""The source tree's shape: rules docs/architecture.md states, checked.

Data flows one way through the agent (source -> snapshot -> trust -> plan
-> apply -> state -> status -> health/report), so its modules' includes
form no circle, and nothing below the manager knows the manager. The
repository stands on its own.
"""
import collections
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"/]+)\.h"', re.M)


def module_of(path, includes):
    """A module is NAME.c with NAME.h, and its private parts: NAME-internal.h
    and every file that includes it (toml-lex.c, toml-tree.c ... are toml)."""
    stem = path.stem
    if stem.endswith("-internal"):
        return stem.removesuffix("-internal")
    for inc in includes:
        if inc.endswith("-internal") and (path.parent / f"{inc}.h").exists():
            return inc.removesuffix("-internal")
    return stem


def include_graph(directory):
    """module -> modules it includes."""
    files = {p: INCLUDE.findall(p.read_text()) for p in sorted(directory.glob("*.[ch]"))}
    modules = {p.stem: module_of(p, incs) for p, incs in files.items()}
    graph = collections.defaultdict(set)
    for path, incs in files.items():
        mod = modules[path.stem]
        graph[mod]
        for inc in incs:
            if inc in modules and modules[inc] != mod:
                graph[mod].add(modules[inc])
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle(tmp_path):
    # The checker itself: a.h -> b.h -> a.h is a circle, c alone is not.
    (tmp_path / "a.h").write_text('#include "b.h"\n')
    (tmp_path / "a.c").write_text('#include "a.h"\n#include "c.h"\n')
    (tmp_path / "b.h").write_text('#include "a.h"\n')
    (tmp_path / "c.h").write_text("")
    assert cycles(include_graph(tmp_path)) == [["a", "b"]]
    # A module's private parts are the module: no circle through them.
    (tmp_path / "b.h").write_text("")
    (tmp_path / "a-internal.h").write_text('#include "a.h"\n')
    (tmp_path / "a-lex.h").write_text('#include "a-internal.h"\n')
    (tmp_path / "a.c").write_text('#include "a-internal.h"\n#include "a-lex.h"\n')
    assert cycles(include_graph(tmp_path)) == []


def test_agent_includes_form_no_circle():
    graph = include_graph(ROOT / "agent")
    assert "manager" in graph and "health" in graph
    assert cycles(graph) == []


def test_aggregator_and_common_include_no_circle():
    for d in ("aggregator", "common"):
        assert cycles(include_graph(ROOT / d)) == [], d


def test_nothing_below_the_manager_knows_it():
    # manager.c and its parts (manager-*.c) are the manager.
    users = sorted(p.name for p in (ROOT / "agent").glob("*.[ch]")
                   if '#include "manager.h"' in p.read_text()
                   and p.stem != "manager" and not p.stem.startswith("manager-"))
    assert users == ["main.c"]
    for test in (ROOT / "tests" / "unit").glob("*.c"):
        assert '#include "manager.h"' not in test.read_text(), test.name


def test_repository_stands_on_its_own():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    offenders = []
    for name in filter(None, files):
        path = ROOT / name
        if not path.is_file() or path.suffix in (".der", ".tar", ".gz", ".png"):
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        if "../shared" in text and name != "tests/e2e/test_layout.py":
            offenders.append(name)
    assert offenders == []
