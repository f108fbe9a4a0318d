# SPDX-License-Identifier: MIT
"""The bench's own pieces do what the table says they do (seconds, no agent):

    /usr/bin/python3 -m pytest -q bench/test_bench.py
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402
import report  # noqa: E402
import run  # noqa: E402

HERE = Path(__file__).resolve().parent
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def physical_limit(tmp_path_factory):
    out = tmp_path_factory.mktemp("bin") / "physical-limit"
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(HERE / "physical-limit.c")],
                   check=True)
    return out


def source(d, n):
    d.mkdir()
    for i in range(n):
        (d / f"reg{i}.example.com..5000").write_bytes(PEM + bytes([65 + i]))
    (d / ".hidden").write_bytes(b"not a key")
    return d


@pytest.mark.parametrize("variant", ["A", "B"])
def test_physical_limit_writes_every_file_and_the_manifest_and_no_temp(tmp_path, physical_limit, variant):
    src = source(tmp_path / "src", 3)
    root = tmp_path / "root"
    root.mkdir()
    out = subprocess.run([str(physical_limit), variant, str(src), str(root), "2"], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    assert len(out) == 2 and all(f"variant={variant} files=9 " in line for line in out)
    for t in bl.TARGETS:
        for i in range(3):
            assert (root / bl.TARGET_DIRS[t] / f"reg{i}.example.com:5000" / "ca.crt").read_bytes() == \
                PEM + bytes([65 + i])
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert len(files) == 10 and "var/lib/bench-ref/manifest.json" in files
    assert not [f for f in files if "/.#" in f]


def test_physical_limit_names_the_failing_call(tmp_path, physical_limit):
    r = subprocess.run([str(physical_limit), "A", str(tmp_path / "nope"), str(tmp_path)], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert r.stderr.startswith(f"physical-limit: open {tmp_path / 'nope'}: No such file or directory")


def test_node_ca_loop_copies_every_key_and_removes_directories_without_one(tmp_path):
    src = source(tmp_path / "src", 2)
    certs = tmp_path / "certs.d"
    (certs / "gone.example.com:5000").mkdir(parents=True)
    p = subprocess.Popen(["/bin/sh", str(HERE / "node-ca-loop.sh"), str(src), str(certs), "30"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        assert p.stderr.readline() == b"pass 1\n"
        assert sorted(os.listdir(certs)) == ["reg0.example.com:5000", "reg1.example.com:5000"]
        assert (certs / "reg1.example.com:5000" / "ca.crt").read_bytes() == PEM + b"B"
    finally:
        os.killpg(p.pid, 15)
        p.wait(timeout=10)


def test_kubelet_volume_swap_renames_data_before_removing_the_old_payload(tmp_path):
    vol = bl.KubeletVolume(tmp_path / "v", {"a..1": b"1"})
    old = os.readlink(tmp_path / "v" / "..data")
    finish = vol.swap({"a..1": b"2", "b..1": b"3"})
    assert os.readlink(tmp_path / "v" / "..data") != old
    assert (tmp_path / "v" / old).is_dir()  # still there: the swap is timed first
    assert vol.swapped_at <= time.monotonic()
    finish()
    assert not (tmp_path / "v" / old).exists()
    assert (tmp_path / "v" / "b..1").read_bytes() == b"3"


STRACE_C = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 60.00    0.000600           1       400           openat
 30.00    0.000300           9        32           write
 10.00    0.000100           5        20         2 epoll_wait
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           2       452         2 total
"""


def test_strace_summary_is_read_per_syscall_and_in_total():
    assert run.parse_strace_c(STRACE_C) == {"openat": 400, "write": 32, "epoll_wait": 20, "total": 452}


def test_writes_are_told_apart_by_where_they_went():
    log = "/var/tmp/b/agent-4000.stderr"
    text = (f'123 write(2<{log}>, "R", 1) = 1\n'
            '123 write(7</var/tmp/b/root/etc/docker/certs.d/x/.#ca.crt.1>, "-----", 600) = 600\n'
            '123 writev(9<socket:[4242]>, [...], 2) = 80\n'
            '123 openat(AT_FDCWD</>, "x", O_RDONLY) = 3</x>\n')
    assert run.classify_writes(text, log) == {"log": 1, "file": 1, "other": 1}


def test_ratio_reads_both_ways():
    assert report.ratio(30, 10) == "3.0x"
    assert report.ratio(1, 40) == "1/40"
    assert report.ratio(1, float("nan")) == "n/a"
