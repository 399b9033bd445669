"""``stembridge run`` (network mode) sends the network's stems with softened masks (``bridge.remasked``
stage 1), ``--raw-masks`` as they come; on a private ``jackd -d dummy`` at 48 kHz / 256 a stand-in DAW
plays a FluidSynth bass over a drum kit into the bridge and records every stem. Facts: both runs report
the same latency (the softening adds none); the outputs sum to the input delayed by it; each recorded
bass, scored against the true bass, is within 1 dB (SI-SDR) of the same Processor offline on the same
file (the network hears the stream from wherever the stand-in DAW starts it, so its frames fall
elsewhere); the softened and the raw stems differ."""

from __future__ import annotations

import shutil
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


def _offline(x: np.ndarray, softened: bool) -> np.ndarray:
    """The band network (masks softened as ``run`` does, or not) on ``x`` (2, n) in 4096-sample blocks,
    its latency cut off: (n_stems, 2, n)."""
    from bridge.engine import Processor
    from bridge.remasked import soften

    proc = soften(Processor("band")) if softened else Processor("band")
    proc.prepare(RATE, 4096, 2)
    lat = proc.latency_samples
    padded = np.concatenate([x, np.zeros((2, lat), np.float32)], axis=1)
    out = np.concatenate([proc.process(padded[:, i : i + 4096]).stems for i in range(0, padded.shape[1], 4096)], 2)
    return out[:, :, lat : lat + x.shape[1]]


def test_run_softens_the_network_masks_at_no_latency_and_equals_offline(tmp_path: Path) -> None:
    b = render(tmp_path / "b", write_midi(tmp_path / "b.mid", [("b", 0, 33, BASS)]), 6.0, RATE)
    d = render(tmp_path / "d", write_midi(tmp_path / "d.mid", [("d", 9, 0, KIT)]), 6.0, RATE)
    x = np.stack([b + d, b + d]).astype(np.float32)
    k = STEMS.index("bass")
    recorded = {}
    for softened, args in ((True, ["--model", "band"]), (False, ["--model", "band", "--raw-masks"])):
        run = record_run(args, x, [], STEMS, RATE, BLOCK, ROOT)
        np.testing.assert_allclose(run.stems.sum(axis=0), x, atol=1e-4)
        live_db, offline_db = si_sdr_db(run.stems[k, 0], b), si_sdr_db(_offline(x, softened)[k, 0], b)
        assert abs(live_db - offline_db) <= 1.0, (softened, live_db, offline_db)
        recorded[softened] = run
    assert recorded[True].stats["latency_terms"] == recorded[False].stats["latency_terms"]
    assert not np.allclose(recorded[True].stems[k], recorded[False].stems[k], atol=1e-3)
