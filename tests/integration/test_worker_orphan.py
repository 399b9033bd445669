"""A worker process whose bridge is killed (SIGKILL: no cleanup runs) stops by itself at once,
rather than spinning on its closed wake pipe."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.live.jackd import PrivateJackd
from tests.conftest import TEST_MODEL

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_worker_stops_when_the_bridge_is_killed() -> None:
    with PrivateJackd(44100, 1024, sync=True) as server:
        bridge = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", TEST_MODEL, "--quiet"],
            cwd=ROOT,
            env=server.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            workers: list[int] = []
            while not workers and time.monotonic() < deadline and bridge.poll() is None:
                time.sleep(0.5)
                workers = [
                    c
                    for c in children(bridge.pid)
                    if "multiprocessing" in Path(f"/proc/{c}/cmdline").read_bytes().decode(errors="replace")
                ]
            assert workers, "the bridge started no worker process"
            time.sleep(2.0)  # the worker is serving blocks
            bridge.send_signal(signal.SIGKILL)
            bridge.wait(10)
            deadline = time.monotonic() + 10
            while any(alive(w) for w in workers) and time.monotonic() < deadline:
                time.sleep(0.1)
            left = [w for w in workers if alive(w)]
            for w in left:
                os.kill(w, signal.SIGKILL)
            assert not left, "the orphaned worker kept running"
        finally:
            if bridge.poll() is None:
                bridge.kill()
                bridge.wait()
