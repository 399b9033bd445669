"""``stembridge run --backend portaudio --monitor`` on a plain stereo "interface".

As in ``test_portaudio_bridge``: a private ``jackd -d dummy`` through PortAudio's JACK host
API; the test's JACK clients are the devices, here ``sbplay`` (2 outputs: the mix) and
``sbstereo`` (2 inputs only: a stereo interface). Facts: the run starts on 2 output channels
(before ``--monitor``/``--send`` PortAudio refused any device with fewer than 12) and exits 0;
with every stem in the monitor mix at -6 dB the two recorded channels are the played input
times 10^(-6/20), delayed by the reported latency plus the host API's one period (to 1e-5);
``--send drums`` on the same device also runs (2 channels). Stems sum to the input, so the
fact holds whatever the model does and whether or not a block missed its deadline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.live.jackd import PrivateJackd
from tests.conftest import TEST_MODEL
from tests.integration.test_portaudio_bridge import (
    BLOCK,
    PATTERN,
    RATE,
    ROOT,
    _sounddevice_sees_jack,
    _wait,
    pytestmark,  # noqa: F401  (jackd needed)
)

STEMS = ("drums", "bass", "piano", "guitar", "strings", "other")


class StereoDevices:
    """``sbplay`` plays ``PATTERN[:, frame % n]``; ``sbstereo`` records 2 channels as
    ``(frame_time, (2, frames))`` cycles."""

    def __init__(self) -> None:
        from bridge.backends.jack import _quiet_jack

        jack = _quiet_jack()
        self.play = jack.Client("sbplay", no_start_server=True)
        self.rec = jack.Client("sbstereo", no_start_server=True)
        self.outs = [self.play.outports.register(f"out_{i}") for i in range(2)]
        self.ins = [self.rec.inports.register(f"in_{i}") for i in range(2)]
        self.cycles: list[tuple[int, np.ndarray]] = []
        self.play.set_process_callback(self._play_cb)
        self.rec.set_process_callback(self._rec_cb)
        self.play.activate()
        self.rec.activate()

    def _play_cb(self, frames: int) -> None:
        idx = (int(self.play.last_frame_time) + np.arange(frames)) % PATTERN.shape[1]
        for c, p in enumerate(self.outs):
            p.get_array()[:] = PATTERN[c, idx]

    def _rec_cb(self, frames: int) -> None:
        self.cycles.append((int(self.rec.last_frame_time), np.stack([p.get_array().copy() for p in self.ins])))
        if len(self.cycles) > 400:
            del self.cycles[0]

    def close(self) -> None:
        for c in (self.play, self.rec):
            try:
                c.deactivate()
                c.close()
            except Exception:
                pass


@pytest.fixture()
def server() -> Iterator[PrivateJackd]:
    with PrivateJackd(RATE, BLOCK, sync=True) as s:
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = s.name
        try:
            if not _sounddevice_sees_jack(s.env()):
                pytest.skip("this PortAudio has no JACK host API")
            yield s
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old


@pytest.fixture()
def devices(server: PrivateJackd) -> Iterator[StereoDevices]:
    d = StereoDevices()
    try:
        yield d
    finally:
        d.close()


def _run(server: PrivateJackd, tmp_path: Path, duration_s: float, *extra: str) -> tuple[int, str, dict[str, Any]]:
    err = tmp_path / "stderr.txt"
    stats = tmp_path / "stats.json"
    with err.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--backend", "portaudio", "--model", TEST_MODEL]
            + ["--input", "sbplay", "--output", "sbstereo", "-b", str(BLOCK), "--stats", str(stats)]
            + ["--duration", str(duration_s), *extra],
            cwd=ROOT,
            env=server.env(),
            stdout=subprocess.DEVNULL,
            stderr=f,
            start_new_session=True,
        )
    rc = _wait(proc, 120.0)
    return rc, err.read_text(), json.loads(stats.read_text()) if stats.exists() else {}


def test_monitor_mix_on_a_stereo_device(devices: StereoDevices, server: PrivateJackd, tmp_path: Path) -> None:
    mix = ",".join(f"{s}=-6" for s in STEMS)
    rc, err, data = _run(server, tmp_path, 6.0, "--monitor", mix)
    assert rc == 0, err
    assert data["monitor"] == dict.fromkeys(STEMS, -6.0) and data["error"] is None
    assert "stembridge: monitor mix drums -6.0 dB + bass -6.0 dB" in err
    latency = int(data["latency_samples"])
    cycles = [(t, x) for t, x in devices.cycles if np.abs(x).max() > 0]
    assert len(cycles) >= 20, "too little was recorded"
    t0 = cycles[0][0]
    n = cycles[-1][0] + BLOCK - t0
    rec = np.zeros((2, n), np.float32)
    for t, x in cycles:
        rec[:, t - t0 : t - t0 + BLOCK] = x
    live = slice(latency + 3 * BLOCK, n - 2 * BLOCK)
    assert live.stop - live.start > 10 * BLOCK
    frames = t0 + np.arange(n) - latency - BLOCK  # PortAudio's JACK host API adds one period
    want = 10 ** (-6 / 20) * PATTERN[:, frames % PATTERN.shape[1]]
    assert np.abs(rec[:, live]).max() > 0.05
    assert float(np.abs(rec[:, live] - want[:, live]).max()) <= 1e-5


def test_send_one_stem_on_a_stereo_device(devices: StereoDevices, server: PrivateJackd, tmp_path: Path) -> None:
    rc, err, data = _run(server, tmp_path, 3.0, "--send", "drums")
    assert rc == 0, err
    assert data["send"] == ["drums"] and data["blocks"] > 0
    assert "stembridge: sending drums" in err
