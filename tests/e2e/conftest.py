# SPDX-License-Identifier: MIT
"""Fixtures shared by nodetrust's end-to-end tests (see peers.py for the peers).

Nothing is skipped silently: a missing peer binary or an unbuilt agent fails
every test that needs it with a message saying how to get it (`make check`
installs the peers and builds the agent).
"""

import os

import pytest

import peers

# Measurements tests want quoted (latencies, ...), printed in the summary.
_REPORT_LINES = []


def pytest_terminal_summary(terminalreporter):
    if _REPORT_LINES:
        terminalreporter.section("nodetrust e2e measurements")
        for line in _REPORT_LINES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def report_line():
    """report_line(text): print text now and again in the terminal summary."""
    def add(text):
        print(text)
        _REPORT_LINES.append(text)
    return add


@pytest.fixture(scope="session", autouse=True)
def _peer_binaries():
    missing = peers.missing_peers()
    if missing:
        pytest.fail("e2e peers missing from PATH: " + ", ".join(missing)
                    + " (run `scripts/deps.sh test` or `make check`)", pytrace=False)


@pytest.fixture(scope="session")
def nodetrustd_bin():
    """Path of the agent under test ($NODETRUSTD, else build/nodetrustd)."""
    path = peers.nodetrustd_path()
    if not os.access(path, os.X_OK):
        pytest.fail(f"nodetrustd not built at {path}: run `make` (or set NODETRUSTD)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """Session directory for certificates tests make on the fly."""
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="session")
def test_ca(pki):
    """The session's registry CA (EC P-256, 10 years)."""
    return peers.make_ca(pki, "nodetrust-test-ca")


@pytest.fixture(scope="session")
def other_ca(pki):
    """A second, unrelated CA (RSA 2048): a registry it signs is not trusted
    by test_ca, and vice versa."""
    return peers.make_ca(pki, "nodetrust-other-ca", key_type="rsa")


@pytest.fixture(scope="session")
def server_cert(test_ca, pki):
    """A localhost/127.0.0.1 server certificate signed by test_ca."""
    return peers.make_server_cert(test_ca, pki / "server")


@pytest.fixture(scope="session")
def tiny_image(tmp_path_factory):
    """A one-layer OCI layout (oci:DIR:latest), built offline once."""
    return peers.build_tiny_image(tmp_path_factory.mktemp("tiny-image"))


@pytest.fixture
def registry(tmp_path, test_ca, server_cert, tiny_image):
    """A TLS docker-registry on 127.0.0.1 (cert from test_ca), no auth, with
    test/tiny:latest pushed. Function-scoped: tests may restart it."""
    reg = peers.Registry(tmp_path / "registry", *server_cert, ca=test_ca)
    with reg:
        peers.push_image(reg, test_ca.cert, tiny_image)
        yield reg


@pytest.fixture
def root(tmp_path):
    """An empty --root for the agent."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def trust_volume(tmp_path):
    """An empty config map volume in kubelet layout (fill with .update())."""
    return peers.KubeletVolume(tmp_path / "trust-volume", {})


@pytest.fixture
def agent(nodetrustd_bin, root, trust_volume, tmp_path):
    """nodetrustd with --root root --trust-source trust_volume, health off."""
    return peers.Agent(root, trust_volume.path, binary=nodetrustd_bin,
                       workdir=tmp_path)
