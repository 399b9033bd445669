"""bridge.resample: the low-delay polyphase streams between host rates and the model's 44.1 kHz."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from bridge.resample import PolyphaseStream, design, open_stream, stream_lag_samples, uses_polyphase

MODEL_RATE = 44100
HOST_RATES = [48000, 88200, 96000]


def _feed(rs, x: np.ndarray, blocks: list[int]) -> np.ndarray:
    out, i, j = [], 0, 0
    while i < len(x):
        b = blocks[j % len(blocks)]
        out.append(rs.resample_chunk(x[i : i + b]))
        i, j = i + b, j + 1
    return np.concatenate(out)


def _tone_fit(y: np.ndarray, f: float, rate: int, start: int) -> tuple[float, float]:
    """(amplitude, residual RMS relative to the tone's RMS) of y[start:] against a sinusoid at f."""
    t = np.arange(start, len(y)) / rate
    a = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    seg = y[start:].astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, seg, rcond=None)
    amp = math.hypot(*coef)
    return amp, float(np.sqrt(np.mean((seg - a @ coef) ** 2)) / (amp / math.sqrt(2)))


@pytest.mark.parametrize("rates", [(48000, MODEL_RATE), (MODEL_RATE, 48000), (96000, MODEL_RATE), (MODEL_RATE, 88200)])
def test_block_size_invariance_is_bit_exact(rates: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40000, 3)).astype(np.float32)  # longer than the initial store: compaction, growth
    ref = PolyphaseStream(*rates, 3).resample_chunk(x)
    for blocks in ([3], [64], [255, 0, 1, 7], [4096, 3], [20000], [17000, 1, 23000]):
        out = _feed(PolyphaseStream(*rates, 3), x, blocks)
        assert out.shape == ref.shape
        assert np.array_equal(out, ref), blocks


@pytest.mark.parametrize("rate_in, rate_out", [(48000, MODEL_RATE), (MODEL_RATE, 48000), (MODEL_RATE, 96000)])
def test_output_count_never_falls_short_of_the_reported_lag(rate_in: int, rate_out: int) -> None:
    """After n inputs, n_out >= n * rate_out / rate_in - lag exactly, and the bound is reached."""
    rs = PolyphaseStream(rate_in, rate_out, 1)
    lag = rs.lag_samples
    one = np.zeros((1, 1), np.float32)
    n_out, worst = 0, Fraction(0)
    for n in range(1, 2000):
        n_out += len(rs.resample_chunk(one))
        shortfall = Fraction(n * rate_out, rate_in) - n_out
        assert shortfall <= lag
        worst = max(worst, shortfall)
    assert worst == lag
    assert lag == design(rate_in, rate_out).delay_out_samples  # the filter's group delay, exactly


@pytest.mark.parametrize("rate_in, rate_out", [(48000, MODEL_RATE), (MODEL_RATE, 48000), (88200, MODEL_RATE)])
def test_impulse_is_content_aligned(rate_in: int, rate_out: int) -> None:
    """An impulse at input sample n0 peaks at output n0 * rate_out / rate_in: no delay, only lag."""
    n0 = rate_in // 100  # 10 ms: on both grids
    x = np.zeros((2 * n0, 1), np.float32)
    x[n0] = 1.0
    y = PolyphaseStream(rate_in, rate_out, 1).resample_chunk(np.concatenate([x, np.zeros((200, 1), np.float32)]))
    assert int(np.argmax(np.abs(y[:, 0]))) == n0 * rate_out // rate_in


@pytest.mark.parametrize("host", HOST_RATES)
def test_round_trip_ripple_and_aliasing_meet_the_spec(host: int) -> None:
    """Host -> 44.1 kHz -> host (the stem path): gain within 0.1 dB p-p to 16 kHz, and every
    alias/image/rounding product of a tone up to 18 kHz below -70 dB relative to the tone."""
    freqs = [100.0, 1000.0, 5000.0, 10000.0, 14000.0, 15500.0, 16000.0, 17000.0, 18000.0]
    n = host // 10
    t = np.arange(n) / host
    x = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32)
    y = _feed(open_stream(host, MODEL_RATE, len(freqs)), x, [256])
    y = _feed(open_stream(MODEL_RATE, host, len(freqs)), y, [235])
    start = host // 100
    gains_db, resid_db = [], []
    for i, f in enumerate(freqs):
        amp, resid = _tone_fit(y[: n - host // 200, i], f, host, start)
        gains_db.append(20 * math.log10(amp / 0.5))
        resid_db.append(20 * math.log10(resid))
    passband = [g for g, f in zip(gains_db, freqs, strict=True) if f <= 16000]
    assert max(passband) - min(passband) <= 0.1
    assert max(resid_db) < -70.0, dict(zip(freqs, resid_db, strict=True))


@pytest.mark.parametrize("rate_in, rate_out", [(48000, MODEL_RATE), (MODEL_RATE, 48000)])
def test_each_stage_meets_the_spec_alone(rate_in: int, rate_out: int) -> None:
    freqs = [1000.0, 16000.0, 18000.0]
    n = rate_in // 10
    t = np.arange(n) / rate_in
    x = np.stack([0.5 * np.sin(2 * np.pi * f * t) for f in freqs], axis=1).astype(np.float32)
    y = PolyphaseStream(rate_in, rate_out, len(freqs)).resample_chunk(x)
    fits = [_tone_fit(y[:, i], f, rate_out, rate_out // 100) for i, f in enumerate(freqs)]
    assert abs(20 * math.log10(fits[0][0] / fits[1][0])) <= 0.05  # 1 kHz vs 16 kHz
    assert max(20 * math.log10(r) for _, r in fits) < -70.0


def test_added_delay_at_host_rates_is_under_a_millisecond_each_way() -> None:
    for host in HOST_RATES:
        lag_in = stream_lag_samples(host, MODEL_RATE) / MODEL_RATE
        lag_out = stream_lag_samples(MODEL_RATE, host) / host
        assert uses_polyphase(host, MODEL_RATE) and uses_polyphase(MODEL_RATE, host)
        assert lag_in + lag_out < Fraction(1, 1000)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 176400, 192000])
def test_offline_rates_resample_a_tone_cleanly(rate: int) -> None:
    """Any file rate 8..192 kHz: a mid-band tone survives the round trip within 0.1 dB, clean to -70 dB."""
    f = min(1000.0, rate / 8)
    n = rate // 5
    x = (0.5 * np.sin(2 * np.pi * f * np.arange(n) / rate)).astype(np.float32)[:, None]
    y = open_stream(MODEL_RATE, rate, 1).resample_chunk(open_stream(rate, MODEL_RATE, 1).resample_chunk(x))
    amp, resid = _tone_fit(y[: n - rate // 20, 0], f, rate, rate // 20)
    assert abs(20 * math.log10(amp / 0.5)) < 0.1
    assert 20 * math.log10(resid) < -70.0


def test_awkward_ratio_falls_back_to_soxr() -> None:
    rate = 767999  # coprime with 44100: a polyphase table of tens of millions of taps
    assert not uses_polyphase(rate, MODEL_RATE)
    rs = open_stream(rate, MODEL_RATE, 1)
    assert not isinstance(rs, PolyphaseStream)
    assert stream_lag_samples(rate, MODEL_RATE) > 0


def test_numpy_kaiser_design_matches_scipy() -> None:
    from scipy.signal import firwin, kaiserord

    from bridge.resample import kaiser_lowpass, kaiser_order

    for atten, width in ((80.0, 0.05), (60.0, 0.2), (30.0, 0.1)):
        n, beta = kaiser_order(atten, width)
        n_ref, beta_ref = kaiserord(atten, width)
        assert n == n_ref and beta == pytest.approx(beta_ref, rel=1e-12)
    n, beta = kaiser_order(80.0, 10100 / (0.5 * 7056000))
    h = kaiser_lowpass(n | 1, 21050.0, 7056000.0, beta)
    ref = firwin(n | 1, 21050.0, window=("kaiser", beta), fs=7056000.0)
    np.testing.assert_allclose(h, ref, rtol=0, atol=1e-12)


def test_zero_length_and_wrong_shape() -> None:
    rs = PolyphaseStream(48000, MODEL_RATE, 2)
    assert rs.resample_chunk(np.zeros((0, 2), np.float32)).shape == (0, 2)
    with pytest.raises(ValueError):
        rs.resample_chunk(np.zeros((10, 3), np.float32))
