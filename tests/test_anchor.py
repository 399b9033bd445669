"""bridge.transcribe.anchor: the strongest onset moves exactly with a delay, and the pad puts it at the same
place of a period (whole or not) wherever the file starts; silent and short files get no pad."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.transcribe.anchor import pad_to, strongest_onset


def bursts(sample_rate: int, seconds: float = 3.0) -> np.ndarray:
    """Decaying noise bursts at 0.5, 1.3 (the loudest) and 2.1 s over a quiet tone."""
    rng = np.random.default_rng(3)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    x = 0.01 * np.sin(2 * np.pi * 220 * t)
    for at_s, level in ((0.5, 0.3), (1.3, 0.8), (2.1, 0.5)):
        k = int(at_s * sample_rate)
        m = n - k
        x[k:] += level * rng.standard_normal(m) * np.exp(-np.arange(m) / (0.05 * sample_rate))
    return x.astype(np.float32)


@pytest.mark.parametrize("sample_rate", [44100, 48000])
def test_the_onset_moves_with_a_delay_and_the_pad_puts_it_in_place(sample_rate: int) -> None:
    x = bursts(sample_rate)
    first = strongest_onset(x, sample_rate)
    assert first is not None and abs(first - int(1.3 * sample_rate)) < 0.005 * sample_rate  # the loudest burst
    frame = 512 * sample_rate / 44100  # 557.3 samples at 48 kHz
    for period, place in ((frame, 0.25 * frame), (frame, 0.0), (72328 * sample_rate / 44100, 40.25 * frame)):
        for delay in (0, 1, 64, 200, 333, 511, 2000, 100000):
            y = np.concatenate([np.zeros(delay, np.float32), x])
            onset = strongest_onset(y, sample_rate)
            assert onset == first + delay
            pad = pad_to(onset, period, place)
            assert 0 <= pad <= round(period)
            off = (onset + pad - place) % period
            assert min(off, period - off) <= 0.5 + 1e-6  # in place, to half a sample where the period is not whole


@pytest.mark.parametrize("sample_rate", [22050, 44100, 48000, 88200, 96000])
def test_the_pad_lands_every_onset_within_half_a_sample(sample_rate: int) -> None:
    """Every onset over two periods (whole or not), for the classifier's frame and basic-pitch's window hop."""
    frame = 512 * sample_rate / 44100
    for period, place in ((frame, 0.25 * frame), (72328 * sample_rate / 44100, 40.25 * frame)):
        onsets = np.arange(int(2 * period) + 2)
        pads = np.array([pad_to(int(o), period, place) for o in onsets])
        assert pads.min() >= 0 and pads.max() <= round(period)
        off = (onsets + pads - place) % period
        assert np.minimum(off, period - off).max() <= 0.5 + 1e-6


def test_silent_short_and_bad_input_get_no_pad() -> None:
    assert strongest_onset(np.zeros(44100, np.float32), 44100) is None
    assert pad_to(None, 512, 128) == 0
    assert strongest_onset(np.ones(100, np.float32), 44100) is None  # shorter than two windows
    assert strongest_onset(np.zeros(0, np.float32), 44100) is None
    x = bursts(44100)
    x[5] = np.nan
    assert strongest_onset(x, 44100) == strongest_onset(np.nan_to_num(x), 44100)
