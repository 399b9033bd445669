"""``bridge.live.jackd``: a private server that dies without unregistering does not hold JACK's
server registry slot for good (JACK2 has 8; after 8 such deaths no jackd could start)."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

from bridge.live.jackd import PrivateJackd, reclaim_dead_servers

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")
REGISTRY = Path("/dev/shm/jack-shm-registry")


def _registered(name: str) -> bool:
    return REGISTRY.exists() and f":{name}:\0".encode() in REGISTRY.read_bytes()  # "jack-<uid>:<name>:"


def test_a_killed_private_server_is_reclaimed_and_servers_still_start() -> None:
    with PrivateJackd() as server:
        name = server.name
        assert _registered(name)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)  # a crash: no chance to unregister
        server.proc.wait(10)
    assert _registered(name), "JACK freed the slot itself: this test no longer shows the leak"
    reclaim_dead_servers()  # (another session's PrivateJackd may have reclaimed it already)
    assert not _registered(name)
    for _ in range(9):  # more than JACK's 8 slots: each one killed the same way
        with PrivateJackd() as server:
            assert server.proc is not None
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(10)
    with PrivateJackd() as server:  # still starts
        assert _registered(server.name)
