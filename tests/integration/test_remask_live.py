"""``stembridge run --remask`` on a private ``jackd -d dummy`` at 48 kHz / 256: a stand-in DAW plays a
FluidSynth bass over a drum kit into the bridge and records every stem. Facts: the latency has a
``stem_remask`` term of 1023 samples (a 1024-sample window at 48 kHz); the outputs sum to the input
delayed by the reported latency; the recorded bass, scored against the true bass, is within 1 dB
(SI-SDR) of ``RemaskedNetwork(live=True)`` run offline on the same file (the network hears the stream
from wherever the stand-in DAW starts it, so its frames fall elsewhere); the re-masked bass is not
the plain network's. ``--remask`` with class stems from the score's parts is refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bridge.live.loopback import record_run
from tests.integration.test_parts_live import si_sdr_db
from tests.test_parts import BASS, KIT, SOUNDFONT, render, write_midi

RATE = 48000
BLOCK = 256
ROOT = Path(__file__).resolve().parents[2]
STEMS = ("drums", "bass", "piano", "guitar", "strings", "other")
pytestmark = pytest.mark.skipif(
    not (shutil.which("jackd") and shutil.which("fluidsynth") and SOUNDFONT.is_file()),
    reason="needs jackd, fluidsynth and FluidR3_GM",
)


def _offline(x: np.ndarray, remask: bool) -> np.ndarray:
    """The band network (re-masked with the live window, or not) on ``x`` (2, n) in 4096-sample blocks,
    its latency cut off: (n_stems, 2, n)."""
    from bridge.engine import Processor
    from bridge.remasked import NETWORK_REMASK, RemaskedNetwork

    proc = RemaskedNetwork(Processor("band"), NETWORK_REMASK, live=True) if remask else Processor("band")
    proc.prepare(RATE, 4096, 2)
    lat = proc.latency_samples
    padded = np.concatenate([x, np.zeros((2, lat), np.float32)], axis=1)
    out = np.concatenate([proc.process(padded[:, i : i + 4096]).stems for i in range(0, padded.shape[1], 4096)], 2)
    return out[:, :, lat : lat + x.shape[1]]


def test_run_remask_equals_offline_and_sums_to_the_input(tmp_path: Path) -> None:
    b = render(tmp_path / "b", write_midi(tmp_path / "b.mid", [("b", 0, 33, BASS)]), 6.0, RATE)
    d = render(tmp_path / "d", write_midi(tmp_path / "d.mid", [("d", 9, 0, KIT)]), 6.0, RATE)
    x = np.stack([b + d, b + d]).astype(np.float32)
    run = record_run(["--remask"], x, [], STEMS, RATE, BLOCK, ROOT)
    rec, st = run.stems, run.stats
    assert st["latency_terms"]["stem_remask"] == 1023, st
    np.testing.assert_allclose(rec.sum(axis=0), x, atol=1e-4)
    remasked, plain = _offline(x, True), _offline(x, False)
    k = STEMS.index("bass")
    live_db, offline_db = si_sdr_db(rec[k, 0], b), si_sdr_db(remasked[k, 0], b)
    assert abs(live_db - offline_db) <= 1.0, (live_db, offline_db)
    assert not np.allclose(remasked[k], plain[k], atol=1e-3)


def test_run_remask_refuses_class_stems_from_parts() -> None:
    cmd = [sys.executable, "-m", "bridge", "run", "--remask", "--classes-from", "parts", "--duration", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode != 0 and "--remask" in res.stderr and "Traceback" not in res.stderr, res.stderr
