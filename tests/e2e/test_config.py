# SPDX-License-Identifier: MIT
"""nodetrustd's command line and config file, as an operator meets them."""
import subprocess

from peers import nodetrustd_path


def run(*args, timeout=30):
    return subprocess.run([nodetrustd_path(), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_every_design_flag():
    p = run("--help")
    assert p.returncode == 0
    for flag in ["--trust-source", "--pull-secret", "--kubeconfig", "--in-cluster", "--root",
                 "--targets", "--state-dir", "--once", "--dry-run", "--health-listen",
                 "--report-url", "--report-token-file", "--node-name", "--config"]:
        assert flag in p.stdout, flag
    assert "Exit status" in p.stdout


def test_version():
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("nodetrustd ")


def test_usage_errors_exit_2_with_a_reason(tmp_path):
    cases = [
        (["--bogus"], "unrecognized option"),
        (["--root", str(tmp_path)], "nothing to do"),
        (["--trust-source", tmp_path, "--targets", "docker,cri-o"], "--targets"),
        (["--trust-source", tmp_path, "--root", "relative/dir"], "absolute"),
        (["--trust-source", tmp_path, "--resync-interval", "0"], "--resync-interval"),
        (["--trust-source", tmp_path, "--log-level", "loud"], "--log-level"),
        (["--trust-source", tmp_path, "--kubeconfig", tmp_path / "kc"], "do not combine"),
        (["--trust-source", tmp_path, "--config", tmp_path / "missing.conf"], "missing.conf"),
        (["--trust-source", tmp_path, "stray"], "unexpected argument"),
    ]
    for args, needle in cases:
        p = run(*args)
        assert p.returncode == 2, (args, p.stderr)
        assert needle in p.stderr, (args, p.stderr)


def test_config_file_and_command_line_override(tmp_path, test_ca):
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "reg.example.com").write_bytes(test_ca.pem())
    root = tmp_path / "root"
    root.mkdir()
    conf = tmp_path / "nodetrustd.conf"
    conf.write_text(
        "# written by an operator\n"
        f"trust-source = {trust}\n"
        f"root = {root}\n"
        "targets = docker, containerd\n"
        "health-listen = none\n"
        "once\n")
    p = run("--config", conf)
    assert p.returncode == 0, p.stderr
    assert (root / "etc/docker/certs.d/reg.example.com/ca.crt").exists()
    assert (root / "etc/containerd/certs.d/reg.example.com/ca.crt").exists()
    assert not (root / "etc/containers").exists()

    # The command line wins over the file.
    p = run("--config", conf, "--targets", "containers")
    assert p.returncode == 0, p.stderr
    assert (root / "etc/containers/certs.d/reg.example.com/ca.crt").exists()
    assert not (root / "etc/docker/certs.d/reg.example.com").exists()


def test_config_file_errors_name_the_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("trust-source = /x\n\nno-such-setting = 1\n")
    p = run("--config", conf)
    assert p.returncode == 2
    assert f"{conf}:3" in p.stderr and "no-such-setting" in p.stderr

    conf.write_text("targets = podman\n")
    p = run("--config", conf)
    assert p.returncode == 2 and f"{conf}:1" in p.stderr


def test_config_file_that_is_no_regular_file_or_too_big(tmp_path):
    """--config naming a FIFO hung the start (fopen blocked for a writer);
    now it is refused at once, as is a file over 64 KiB; /dev/null is "no
    file" and works."""
    import os
    fifo = tmp_path / "conf.fifo"
    os.mkfifo(fifo)
    p = run("--config", fifo, "--once", "--root", tmp_path, "--trust-source", tmp_path, timeout=10)
    assert p.returncode == 2, p
    assert p.stderr.strip() == f"nodetrustd: cannot read config file '{fifo}': not a regular file"
    big = tmp_path / "big.conf"
    big.write_text("#" * 70000 + "\n")
    p = run("--config", big, "--once", "--root", tmp_path, "--trust-source", tmp_path)
    assert p.returncode == 2, p
    assert p.stderr.strip() == f"nodetrustd: cannot read config file '{big}': larger than 64 KiB"
    p = run("--config", "/dev/null", "--dry-run", "--root", tmp_path / "r", "--trust-source", tmp_path / "src",
            "--health-listen", "none")
    assert "cannot read config file" not in p.stderr, p.stderr
