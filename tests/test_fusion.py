"""``bridge.parts.fusion``: class stems fused by magnitude from the parts' and the network's estimates."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.parts.fusion import StemFusion, StemRemask, powered_masks, remask_size_for

SR = 44100
N_FFT, HOP = 4096, 1024


def tones(seconds: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Two stereo tones far apart in frequency: 220 Hz and 3.3 kHz, (2, n) each."""
    t = np.arange(int(seconds * SR)) / SR
    low = 0.5 * np.sin(2 * np.pi * 220.0 * t).astype(np.float32)
    high = 0.3 * np.sin(2 * np.pi * 3300.0 * t).astype(np.float32)
    return np.stack([low, 0.8 * low]), np.stack([high, 1.2 * high])


def run(
    fusion: StemFusion, parts: np.ndarray, network: np.ndarray | None, target: np.ndarray, block: int
) -> np.ndarray:
    """Push everything through in blocks of ``block`` samples (plus the latency in zeros) and return the
    output with the latency cut off and the remainder (the target minus the rest) last, (n_stems, n_channels, n)."""
    lat, n = fusion.latency_samples, target.shape[1]
    pad = ((0, 0), (0, 0), (0, lat))
    parts = np.pad(parts, pad)
    net = None if network is None else np.pad(network, pad)
    target = np.pad(target, ((0, 0), (0, lat)))
    out = [
        fusion.process(
            parts[..., i : i + block], None if net is None else net[..., i : i + block], target[:, i : i + block]
        )
        for i in range(0, n + lat, block)
    ]
    fused = np.concatenate(out, axis=2)[:, :, lat : lat + n]
    return np.concatenate([fused, (target[:, :n] - fused.sum(axis=0))[None]])


def test_exponent_zero_follows_the_parts_and_one_the_network() -> None:
    """With exponent 0 the masks come from the parts' magnitudes alone, with 1 from the network's:
    each gives back the tones as that estimate assigns them."""
    low, high = tones()
    mix = low + high
    right = np.stack([low, high])  # stem 0 the low tone, the remainder the high one
    wrong = np.stack([high, low])
    for exponent, expected in ((0.0, right), (1.0, np.stack([high, low]))):
        fused = run(StemFusion([exponent, exponent], N_FFT, HOP, 2, 2048), right, wrong, mix, 2048)
        core = slice(N_FFT, -N_FFT)  # past the stream's start and end
        err = fused[..., core] - expected[..., core]
        assert np.sqrt(np.mean(err**2)) < 0.01 * np.sqrt(np.mean(expected[..., core] ** 2))


def test_a_bin_one_estimate_leaves_empty_stays_empty() -> None:
    """A geometric mean, not a linear blend: where the parts give stem 0 the whole low tone and the
    network only a tenth of it (nine tenths to the remainder), exponent 0.5 still gives stem 0 nearly
    all of it, since the parts' remainder holds nothing at 220 Hz; a linear blend would give 55 %."""
    low, high = tones()
    parts = np.stack([low, high])
    network = np.stack([0.1 * low, high + 0.9 * low])
    fused = run(StemFusion([0.5, 0.5], N_FFT, HOP, 2, 1024), parts, network, low + high, 1024)
    core = slice(N_FFT, -N_FFT)
    ratio = np.sqrt(np.mean(fused[0, :, core] ** 2)) / np.sqrt(np.mean(low[:, core] ** 2))
    assert ratio > 0.95, ratio


def test_output_does_not_depend_on_the_block_size() -> None:
    low, high = tones(1.0)
    rng = np.random.default_rng(0)
    noise = 0.05 * rng.standard_normal(low.shape).astype(np.float32)
    parts = np.stack([low + noise, high])
    network = np.stack([low, high + noise])
    target = low + high + noise
    ref = run(StemFusion([0.3, 0.1], N_FFT, HOP, 2, 4096), parts, network, target, 4096)
    for block in (64, 1000, 8192):
        got = run(StemFusion([0.3, 0.1], N_FFT, HOP, 2, block), parts, network, target, block)
        np.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.mark.parametrize("bad", [[], [0.1], [1.5, 0.0], [-0.1, 0.2]])
def test_exponents_outside_zero_one_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="fusion exponents"):
        StemFusion(bad, N_FFT, HOP, 2, 256)


def remask_run(remask: StemRemask, stems: np.ndarray, block: int) -> np.ndarray:
    """``stems`` (n_stems, n_channels, n) through ``remask`` in blocks (plus its latency in zeros), the
    latency cut off."""
    lat, n = remask.latency_samples, stems.shape[2]
    padded = np.pad(stems, ((0, 0), (0, 0), (0, lat)))
    out = [remask.process(padded[..., i : i + block]) for i in range(0, n + lat, block)]
    return np.concatenate(out, axis=2)[:, :, lat : lat + n]


def test_remask_drops_what_the_stems_hold_but_their_sum_cancels() -> None:
    """Stem 0 holds the low tone plus noise, the remainder the high tone minus the same noise (the noise
    cancels in their sum, as two estimates' errors can): re-masked from their sum, each stem keeps the
    bins its tone fills and the noise, absent from the sum, is gone from both; they still sum to it."""
    low, high = tones(2.0)
    noise = 0.1 * np.random.default_rng(0).standard_normal(low.shape).astype(np.float32)
    stems = np.stack([low + noise, high - noise])
    n_fft, hop = remask_size_for(SR)
    got = remask_run(StemRemask([0.75, 0.75], n_fft, hop, 2, 4096), stems, 4096)
    core = slice(n_fft, -n_fft)

    def err(est: np.ndarray, ref: np.ndarray) -> float:
        return float(np.sqrt(np.mean((est[:, core] - ref[:, core]) ** 2)))

    assert err(got[0], low) < 0.2 * err(stems[0], low), (err(got[0], low), err(stems[0], low))
    assert err(got[1], high) < 0.2 * err(stems[1], high)
    np.testing.assert_allclose(got.sum(axis=0), stems.sum(axis=0), atol=1e-5)


def test_remask_does_not_depend_on_the_block_size() -> None:
    low, high = tones(1.5)
    noise = 0.05 * np.random.default_rng(1).standard_normal(low.shape).astype(np.float32)
    stems = np.stack([low + noise, high, 0.5 * noise])
    n_fft, hop = 8192, 2048
    ref = remask_run(StemRemask([0.9, 0.75, 1.0], n_fft, hop, 2, 4096), stems, 4096)
    for block in (100, 2048, 16384):
        got = remask_run(StemRemask([0.9, 0.75, 1.0], n_fft, hop, 2, block), stems, block)
        np.testing.assert_allclose(got, ref, atol=1e-5)


def test_powered_masks_are_each_ratio_to_its_power_normalised() -> None:
    """Mixed powers against the formula in float64; powers of 1 give the plain ratio masks; and a bin
    where the stems cancel to a silent target (ratios of 1e12) at power 4 stays finite."""
    rng = np.random.default_rng(2)
    parts, network = rng.random((2, 5, 3, 7)).astype(np.float32) + 0.01
    target = rng.random((5, 7)).astype(np.float32) + 0.01
    exps, powers = [0.3, 0.0, 0.1], [0.6, 1.0, 2.0]
    got = StemFusion(exps, N_FFT, HOP, 2, 256, powers=powers).masks(parts, network, target)
    w = parts.astype(np.float64) ** (1 - np.array(exps)[None, :, None]) * network ** np.array(exps)[None, :, None]
    w[:, -1] += 1e-3 * target
    want = (w / target[:, None, :]) ** np.array(powers)[None, :, None]
    np.testing.assert_allclose(got, want / want.sum(axis=1, keepdims=True), rtol=2e-4)
    ones = powered_masks(w.astype(np.float32), target, np.ones(3, np.float32))
    np.testing.assert_allclose(ones, w / w.sum(axis=1, keepdims=True), rtol=2e-4)
    silent = StemFusion([0.0, 0.0], N_FFT, HOP, 2, 256, powers=[4.0, 4.0])
    m = silent.masks(np.full((2, 2, 3), 0.5, np.float32), np.full((2, 2, 3), 0.5, np.float32), np.zeros((2, 3)))
    assert np.all(np.isfinite(m)) and np.allclose(m.sum(axis=1), 1.0)


@pytest.mark.parametrize("bad", [[1.0], [0.05, 1.0], [1.0, 5.0], [1.0, 1.0, 1.0]])
def test_mask_powers_outside_their_range_or_count_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="mask powers|fusion exponents"):
        StemFusion([0.0, 0.0], N_FFT, HOP, 2, 256, powers=bad) if len(bad) != 1 else StemRemask(bad, N_FFT, HOP, 2, 256)


def test_one_estimate_takes_no_network_and_two_take_one() -> None:
    low, high = tones(0.2)
    stems = np.stack([low, high])
    with pytest.raises(ValueError, match="one_estimate"):
        StemFusion([0.0, 0.0], N_FFT, HOP, 2, 8820, one_estimate=True).process(stems, stems, low + high)
    with pytest.raises(ValueError, match="one_estimate"):
        StemFusion([0.0, 0.0], N_FFT, HOP, 2, 8820).process(stems, None, low + high)
    one = run(StemFusion([0.0, 0.0], N_FFT, HOP, 2, 1024, one_estimate=True), stems, None, low + high, 1024)
    two = run(StemFusion([0.0, 0.0], N_FFT, HOP, 2, 1024), stems, stems, low + high, 1024)
    np.testing.assert_allclose(one, two, atol=1e-6)
