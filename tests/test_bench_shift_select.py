"""bench/shift_select.py: the network on a delayed mix comes back lined up with the undelayed run."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from bench.shift_select import shifted_network
from bridge.engine import Processor
from bridge.remasked import soften
from tests.conftest import noise


def test_a_whole_hop_of_delay_comes_back_lined_up(tmp_path):
    """Delayed by exactly one hop (512 samples of silence first), the network sees the same frames one
    frame later: shifted back, its stems equal the undelayed ones after the first frames; a delay of
    half a hop falls between the frames and gives other stems."""
    track = tmp_path / "track"
    track.mkdir()
    sf.write(str(track / "mix.flac"), noise(2, 44100, seed=5).T, 44100)
    proc = soften(Processor("test-tiny"))
    base = shifted_network(track, 0, tmp_path / "s0", proc)
    hop = shifted_network(track, 512, tmp_path / "s512", proc)
    half = shifted_network(track, 256, tmp_path / "s256", proc)
    n = min(base.shape[2], hop.shape[2])
    assert base.shape[:2] == hop.shape[:2] == (6, 2) and n >= 44100
    np.testing.assert_allclose(hop[..., 8192:n], base[..., 8192:n], atol=2e-4)  # 16-bit FLAC both ways
    assert np.abs(half[..., 8192:n] - base[..., 8192:n]).max() > 1e-2
