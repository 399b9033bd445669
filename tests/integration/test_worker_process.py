"""``stembridge run --worker process`` on a private ``jackd -d dummy``: a killed worker process
ends the run with one line and a valid stats file. (The recorded-stems, notes and latency
facts are asserted in both worker modes by ``test_jack_bridge.py``.)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from bridge.live.jackd import PrivateJackd
from tests.integration.test_jack_bridge import RATE, _assert_valid_stats, _run_and_interrupt

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")


def worker_children(pid: int) -> list[int]:
    """Pids of the multiprocessing children of ``pid`` that are not its resource tracker."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.append(int(d.name))
    return found


def test_killed_worker_process_ends_run_with_one_line(tmp_path):
    stats = tmp_path / "stats.json"

    def kill_worker(proc: subprocess.Popen) -> None:
        children = worker_children(proc.pid)
        assert len(children) == 1, children
        os.kill(children[0], signal.SIGKILL)

    with PrivateJackd(RATE, 256) as server:
        rc, lines = _run_and_interrupt(server, stats, kill_worker, "--quiet", "--worker", "process")
    assert rc == 1, lines
    assert len(lines) == 1 and lines[0].startswith("stembridge: error:") and "worker" in lines[0], lines
    data = _assert_valid_stats(stats)
    assert data["worker"] == "process" and data["blocks"] > 0 and data["error"]
    assert data["worker_ms_p99"] >= data["worker_ms_p50"] > 0
