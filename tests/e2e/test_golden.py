# SPDX-License-Identifier: MIT
"""Golden-file check of the plan (`nodetrustd --dry-run`), in the style of
OpenBSD's regress: the bundled example config map, applied to an empty root
holding one administrator entry, must produce exactly tests/data/*.ok.

Regenerate after an intended change with NODETRUST_UPDATE_GOLDEN=1.
"""
import os
import pathlib
import subprocess

from peers import nodetrustd_path

TOP = pathlib.Path(__file__).resolve().parents[2]
EXAMPLE = TOP / "examples" / "configmap" / "data"
GOLDEN = TOP / "tests" / "data" / "dry-run-example.ok"


def test_dry_run_matches_golden(tmp_path):
    root = tmp_path / "root"
    admin = root / "etc" / "docker" / "certs.d" / "registry.example.com"
    admin.mkdir(parents=True)
    (admin / "ca.crt").write_text("admin's own CA\n")

    proc = subprocess.run(
        [nodetrustd_path(), "--dry-run", "--root", str(root), "--trust-source", str(EXAMPLE),
         "--health-listen", "none"],
        capture_output=True, text=True, timeout=30)
    # One bad key in the example: the plan is partial, exit status 1.
    assert proc.returncode == 1, proc.stderr
    got = proc.stdout.replace(str(root), "ROOT")

    if os.environ.get("NODETRUST_UPDATE_GOLDEN"):
        GOLDEN.write_text(got)
    assert got == GOLDEN.read_text()
    # --dry-run wrote nothing: only the administrator's entry is there.
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "etc", "etc/docker", "etc/docker/certs.d",
        "etc/docker/certs.d/registry.example.com",
        "etc/docker/certs.d/registry.example.com/ca.crt"]


def test_demo_checks_itself():
    """`make demo`'s script: it checks its own result (files, refusal,
    hosts.toml, containerd inactive then active) and says demo OK."""
    proc = subprocess.run(["sh", str(TOP / "scripts/demo.sh"), nodetrustd_path()],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo OK" in proc.stdout
    assert "TARGET=containerd TARGET_STATE=inactive" in proc.stdout
