# SPDX-License-Identifier: MIT
"""systemd integration without systemd: the test plays the service manager.

It binds an AF_UNIX datagram socket, runs nodetrustd with NOTIFY_SOCKET
pointing at it and WATCHDOG_USEC set, and reads what the agent says:
READY=1 after the first sync, STATUS= with the registry count (and a new one
after a config map change), WATCHDOG=1 fed by the loop again and again, and
STOPPING=1 on SIGTERM.
"""

import os
import signal
import socket
import subprocess
import threading
import time

import peers
from peers import wait_for

WATCHDOG_USEC = 200000


class NotifyListener:
    """A datagram socket on a path, read all the time (as systemd does: the
    queue is short and a full one would block the sender)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages = []  # (monotonic time, [lines]) per datagram
        self.lock = threading.Lock()
        self.done = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode().splitlines()))

    def lines(self):
        with self.lock:
            return [(t, line) for t, lines in self.messages for line in lines]

    def find(self, pred):
        return [(t, line) for t, line in self.lines() if pred(line)]

    def close(self):
        self.done = True
        self.thread.join(timeout=2)
        self.sock.close()


def test_ready_status_watchdog_stopping(nodetrustd_bin, root, trust_volume, tmp_path, test_ca,
                                        other_ca):
    trust_volume.update({"localhost..5000": test_ca.pem()})
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env["NOTIFY_SOCKET"] = listener.path
    env["WATCHDOG_USEC"] = str(WATCHDOG_USEC)
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path)
    stderr = open(tmp_path / "nodetrustd.stderr", "wb")
    proc = subprocess.Popen(agent.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=stderr, env=env)
    try:
        # READY=1 comes with the first STATUS, once the first sync is done.
        wait_for(lambda: listener.find(lambda l: l == "READY=1"), what="READY=1")
        assert peers.ca_path(root, "containers", "localhost:5000").is_file()
        status = wait_for(lambda: listener.find(lambda l: l.startswith("STATUS=")), what="STATUS=")
        assert "Trusting 1 registries" in status[0][1], status

        # The watchdog is fed by the loop, every fraction of WATCHDOG_USEC.
        t0 = time.monotonic()
        time.sleep(1.0)
        pings = [t for t, l in listener.find(lambda l: l == "WATCHDOG=1") if t >= t0]
        assert len(pings) >= 1.0 / (WATCHDOG_USEC / 1e6), f"only {len(pings)} WATCHDOG=1 in 1 s"
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        assert max(gaps) < WATCHDOG_USEC / 1e6, gaps

        # A config map change: a new STATUS with the new count.
        trust_volume.update({"localhost..5000": test_ca.pem(), "other.example.com": other_ca.pem()})
        wait_for(lambda: listener.find(lambda l: l.startswith("STATUS=Trusting 2 registries")),
                 what="STATUS after the change")
        assert len(listener.find(lambda l: l == "READY=1")) == 1

        # A broken source: STATUS says degraded, and why.
        os.rename(trust_volume.path, tmp_path / "gone")
        degraded = wait_for(lambda: listener.find(lambda l: l.startswith("STATUS=Degraded")),
                            what="STATUS=Degraded")
        assert degraded[0][1] == "STATUS=Degraded: Failed to read the source: the trust source directory does not exist", degraded
        os.rename(tmp_path / "gone", trust_volume.path)
        wait_for(lambda: [t for t, l in listener.find(lambda l: l.startswith("STATUS=Trusting 2 "))
                          if t > degraded[0][0]], what="STATUS after recovery")

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        wait_for(lambda: listener.find(lambda l: l == "STOPPING=1"), timeout=2, what="STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
        listener.close()


def test_no_watchdog_for_another_pid(nodetrustd_bin, root, trust_volume, tmp_path, test_ca):
    """WATCHDOG_PID names the process the watchdog is meant for; a child that
    inherited the variables must not feed it."""
    trust_volume.update({"localhost..5000": test_ca.pem()})
    listener = NotifyListener(tmp_path / "notify.sock")
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    env.update(NOTIFY_SOCKET=listener.path, WATCHDOG_USEC=str(WATCHDOG_USEC), WATCHDOG_PID="1")
    agent = peers.Agent(root, trust_volume.path, binary=nodetrustd_bin, workdir=tmp_path)
    proc = subprocess.Popen(agent.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        wait_for(lambda: listener.find(lambda l: l == "READY=1"), what="READY=1")
        time.sleep(0.6)
        assert not listener.find(lambda l: l == "WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
