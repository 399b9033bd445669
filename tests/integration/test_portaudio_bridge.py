"""The PortAudio backend and ``stembridge devices`` through PortAudio's JACK host API.

A private ``jackd -d dummy`` stands in for the sound card. Two JACK clients of the test are the
"devices" PortAudio sees: ``sbplay`` (2 output ports: a 2-in device that plays the mix) and
``sbrec`` (12 input ports: a 12-out device that records every stem). Two clients, not one, so
the graph runs sbplay -> PortAudio -> sbrec in one cycle. Facts asserted: ``stembridge devices``
lists both devices with their channel counts and the JACK ports; ``stembridge run --backend
portaudio`` exits 0 with a valid stats file, says once that it runs without MIDI (no ALSA
sequencer here), and the twelve recorded channels sum back to the played input (to 1e-5),
shifted by the reported ``latency_samples`` plus one period that PortAudio's JACK host API adds
(measured, asserted exactly); when the server goes away mid-run (the device
vanishes) the run ends with exit 4, one line, and a stats file with every key.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bridge.live.jackd import PrivateJackd
from tests.conftest import TEST_MODEL, noise

pytestmark = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")

RATE = 44100
BLOCK = 1024
N_OUT = 12  # 2 per stem, 6 stems
PATTERN = noise(2, 3 * RATE, seed=7)  # played over and over, indexed by JACK frame time
ROOT = Path(__file__).resolve().parents[2]


def _sounddevice_sees_jack(env: dict[str, str]) -> bool:
    """In a child process: PortAudio in this process would outlive the server, and its exit
    handler aborts when the server it connected to is gone."""
    code = "import sounddevice as sd; print(any('JACK' in a['name'] for a in sd.query_hostapis()))"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return r.stdout.strip().endswith("True")


class Devices:
    """The two test devices: ``sbplay`` plays ``PATTERN[:, frame % n]``; ``sbrec`` keeps the
    last ``n_keep`` cycles as ``(frame_time, (12, frames))``."""

    def __init__(self, n_keep: int = 400) -> None:
        from bridge.backends.jack import _quiet_jack

        jack = _quiet_jack()
        self.play = jack.Client("sbplay", no_start_server=True)
        self.rec = jack.Client("sbrec", no_start_server=True)
        self.outs = [self.play.outports.register(f"out_{i}") for i in range(2)]
        self.ins = [self.rec.inports.register(f"in_{i}") for i in range(N_OUT)]
        self.cycles: list[tuple[int, np.ndarray]] = []
        self.n_keep = n_keep
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
        if len(self.cycles) > self.n_keep:
            del self.cycles[0]

    def connected(self) -> bool:
        return all(self.rec.get_all_connections(p) for p in self.ins) and all(
            self.play.get_all_connections(p) for p in self.outs
        )

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
def devices(server: PrivateJackd) -> Iterator[Devices]:
    d = Devices()
    try:
        yield d
    finally:
        d.close()


def _start_run(server: PrivateJackd, tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[Any], Path]:
    """``stembridge run --backend portaudio`` on the test devices; stderr goes to a file (the
    worker process inherits it, so a pipe would outlive the bridge)."""
    err = tmp_path / "stderr.txt"
    with err.open("w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--backend", "portaudio", "--model", TEST_MODEL]
            + ["--input", "sbplay", "--output", "sbrec", "-b", str(BLOCK), "--stats", str(tmp_path / "stats.json")]
            + list(extra),
            cwd=ROOT,
            env=server.env(),
            stdout=subprocess.DEVNULL,
            stderr=f,
            start_new_session=True,
        )
    return proc, err


def _wait(proc: subprocess.Popen[Any], timeout_s: float) -> int:
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"stembridge run did not exit within {timeout_s:.0f} s") from None


def _wait_connected(devices: Devices, proc: subprocess.Popen[Any], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not devices.connected():
        assert proc.poll() is None, "the bridge exited before its stream started"
        assert time.monotonic() < deadline, "PortAudio never connected to the test devices"
        time.sleep(0.2)


def _errors(err: Path) -> list[str]:
    return [ln for ln in err.read_text().splitlines() if ln.startswith("stembridge:")]


def _valid_stats(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for key in ("latency_samples", "latency_terms", "blocks", "xruns", "deadline_misses"):
        assert key in data, key
    assert data["worker_ms_p99"] >= data["worker_ms_p50"] >= 0
    assert data["backend"] == "portaudio"
    return data


def test_devices_lists_portaudio_jack_devices_and_ports(devices: Devices, server: PrivateJackd) -> None:
    cmd = [sys.executable, "-m", "bridge", "devices"]
    r = subprocess.run(cmd, cwd=ROOT, env=server.env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    audio = [ln for ln in lines if "[JACK Audio Connection Kit]" in ln]
    assert any("sbplay" in ln and "in 2, out 0" in ln and f"{RATE} Hz" in ln for ln in audio), r.stdout
    assert any("sbrec" in ln and f"in 0, out {N_OUT}" in ln for ln in audio), r.stdout
    assert any("system" in ln and "in 2, out 2" in ln for ln in audio), r.stdout
    assert f"JACK ports (server '{server.name}'):" in lines, r.stdout
    assert f"  {RATE} Hz, {BLOCK} frames" in lines
    assert "  audio out  sbplay:out_1" in lines and f"  audio in   sbrec:in_{N_OUT - 1}" in lines
    midi = lines.index(next(ln for ln in lines if ln.startswith("MIDI ports")))
    assert len(lines) > midi + 1 and lines[midi + 1].startswith("  "), "the MIDI section says nothing"


def test_run_portaudio_stems_sum_to_the_input_at_the_reported_latency(
    devices: Devices, server: PrivateJackd, tmp_path: Path
) -> None:
    proc, err = _start_run(server, tmp_path, "--duration", "6")
    _wait_connected(devices, proc)
    rc = _wait(proc, 120.0)
    assert rc == 0, err.read_text()
    data = _valid_stats(tmp_path / "stats.json")
    assert (data["sample_rate"], data["block_size"]) == (RATE, BLOCK) and data["blocks"] > 0
    assert data["error"] is None
    lines = _errors(err)
    assert sum("no MIDI" in ln for ln in lines) == 1, lines  # no ALSA sequencer here: said once
    assert "stopped after" in lines[-1], lines

    # the recording while connected: sum of the 12 outputs per side == played input, delayed
    latency = int(data["latency_samples"])
    cycles = [(t, x) for t, x in devices.cycles if np.abs(x).max() > 0]
    assert len(cycles) >= 20, "too little was recorded"
    t0 = cycles[0][0]
    n = cycles[-1][0] + BLOCK - t0
    rec = np.zeros((N_OUT, n), np.float32)
    for t, x in cycles:
        rec[:, t - t0 : t - t0 + BLOCK] = x
    total = rec.reshape(-1, 2, n).sum(axis=0)  # (2, n): the six stems summed per side
    live = slice(latency + 3 * BLOCK, n - 2 * BLOCK)  # output that has an input behind it
    assert live.stop - live.start > 10 * BLOCK
    assert np.abs(total[:, live]).max() > 0.1

    def error_at(delay: int) -> float:
        frames = t0 + np.arange(n) - delay
        return float(np.abs(total[:, live] - PATTERN[:, frames % PATTERN.shape[1]][:, live]).max())

    # PortAudio's JACK host API adds one period of its own (measured: latency + 1 block)
    errors = {k: error_at(latency + k * BLOCK) for k in (0, 1)}
    assert errors[1] <= 1e-5, f"the host API's extra delay changed: {errors}"


def test_device_vanishing_mid_run_ends_with_exit_4_and_stats(
    devices: Devices, server: PrivateJackd, tmp_path: Path
) -> None:
    """The JACK server behind PortAudio goes away: the stream stops without PortAudio calling
    its finished callback, and stopping it would wait forever."""
    proc, err = _start_run(server, tmp_path, "--quiet")
    _wait_connected(devices, proc)
    time.sleep(1.0)
    devices.close()
    server.kill()
    rc = _wait(proc, 60.0)
    lines = _errors(err)
    assert rc == 4, err.read_text()
    assert [ln for ln in lines if "no MIDI" not in ln] == [
        "stembridge: error: the audio stream stopped (device unplugged or closed)"
    ], lines
    data = _valid_stats(tmp_path / "stats.json")
    assert data["blocks"] > 0 and data["error"] == "the audio stream stopped (device unplugged or closed)"
