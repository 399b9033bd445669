"""Per-stem augmentation applied to the stem audio itself (so stems still sum to the mix).

- ``augment_stem(rng, audio, sample_rate) -> (audio, settings)``: random gain, sometimes a peaking
  EQ and a short synthetic reverb (version 1: what the held-out benchmark sets were rendered with;
  keep it unchanged so they stay byte-identical).
- ``augment_stem_v2(rng, audio, sample_rate) -> (audio, settings)``: the timbre-source corpora's
  chain: random EQ (0-3 peaking bands, low/high shelves, sometimes a band limit), a feed-forward
  compressor, a room reverb (noise tail with a pre-delay and early reflections, darker as it
  decays) and a gain. Deterministic given ``rng``; every output has the input's length.
- ``level_stem(audio, sample_rate, target_dbfs) -> (audio, gain_db)``: scale so the RMS over the
  active 50 ms frames (within 50 dB of the loudest) is ``target_dbfs``.
- ``compress(audio, sample_rate, threshold_db, ratio, attack_ms, release_ms, makeup_db)``.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def peaking_eq(audio: np.ndarray, sample_rate: int, freq_hz: float, gain_db: float, q: float) -> np.ndarray:
    """RBJ peaking biquad on (n_samples,) audio."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return signal.lfilter(b / a[0], a / a[0], audio).astype(np.float32)


def simple_reverb(
    audio: np.ndarray, sample_rate: int, rt60_s: float, wet: float, rng: np.random.Generator
) -> np.ndarray:
    """Convolve with exponentially decaying noise (decay ``rt60_s``) and blend ``wet``; same length."""
    n_ir = int(rt60_s * sample_rate)
    t = np.arange(n_ir) / sample_rate
    ir = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60_s)
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    tail = signal.fftconvolve(audio, ir)[: len(audio)]
    return ((1.0 - wet) * audio + wet * tail).astype(np.float32)


def augment_stem(rng: np.random.Generator, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, dict]:
    """Random gain (-9..+3 dB), EQ (30 %) and reverb (25 %). Returns (audio, settings)."""
    settings: dict = {"gain_db": float(rng.uniform(-9.0, 3.0))}
    out = audio * np.float32(10.0 ** (settings["gain_db"] / 20.0))
    if rng.random() < 0.3:
        f, g, q = float(np.exp(rng.uniform(np.log(150), np.log(6000)))), float(rng.uniform(-8, 8)), 0.7
        out = peaking_eq(out, sample_rate, f, g, q)
        settings["eq"] = {"freq_hz": round(f, 1), "gain_db": round(g, 2), "q": q}
    if rng.random() < 0.25:
        rt, wet = float(rng.uniform(0.2, 1.2)), float(rng.uniform(0.08, 0.3))
        out = simple_reverb(out, sample_rate, rt, wet, rng)
        settings["reverb"] = {"rt60_s": round(rt, 3), "wet": round(wet, 3)}
    return out.astype(np.float32), settings


def shelf_eq(audio: np.ndarray, sample_rate: int, freq_hz: float, gain_db: float, high: bool) -> np.ndarray:
    """RBJ low or high shelf (slope 1) on (n_samples,) audio."""
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    cos, alpha = np.cos(w0), np.sin(w0) / 2.0 * np.sqrt(2.0)
    sq = 2.0 * np.sqrt(a_lin) * alpha
    s = -1.0 if high else 1.0
    b = a_lin * np.array([(a_lin + 1) - s * (a_lin - 1) * cos + sq, 2 * s * ((a_lin - 1) - s * (a_lin + 1) * cos)])
    b = np.append(b, a_lin * ((a_lin + 1) - s * (a_lin - 1) * cos - sq))
    a = np.array(
        [(a_lin + 1) + s * (a_lin - 1) * cos + sq, -2 * s * ((a_lin - 1) + s * (a_lin + 1) * cos)]
        + [(a_lin + 1) + s * (a_lin - 1) * cos - sq]
    )
    return signal.lfilter(b / a[0], a / a[0], audio).astype(np.float32)


def compress(
    audio: np.ndarray,
    sample_rate: int,
    threshold_db: float,
    ratio: float,
    attack_ms: float,
    release_ms: float,
    makeup_db: float = 0.0,
) -> np.ndarray:
    """Feed-forward compressor: a level detector (attack/release one-poles on the rectified signal,
    approximated by smoothing the gain curve) and a hard-knee gain computer."""
    x = audio.astype(np.float64)
    level = np.abs(x)
    a_att = np.exp(-1.0 / (attack_ms * 1e-3 * sample_rate))
    a_rel = np.exp(-1.0 / (release_ms * 1e-3 * sample_rate))
    # peak envelope: fast attack by a running max over the attack window, then release smoothing
    n_att = max(1, int(attack_ms * 1e-3 * sample_rate))
    from scipy.ndimage import maximum_filter1d

    peak = maximum_filter1d(level, size=n_att, origin=-(n_att // 2) if n_att > 1 else 0)
    env = signal.lfilter([1.0 - a_rel], [1.0, -a_rel], peak)
    env = np.maximum(env, signal.lfilter([1.0 - a_att], [1.0, -a_att], level))
    env_db = 20.0 * np.log10(env + 1e-9)
    over = np.maximum(env_db - threshold_db, 0.0)
    gain_db = -over * (1.0 - 1.0 / ratio) + makeup_db
    return (x * 10.0 ** (gain_db / 20.0)).astype(np.float32)


def room_reverb(
    audio: np.ndarray,
    sample_rate: int,
    rt60_s: float,
    wet: float,
    predelay_ms: float,
    damping: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A room: a few early reflections, then a noise tail decaying with ``rt60_s`` whose high
    frequencies die faster (``damping`` 0..1); blended ``wet``; same length as ``audio``."""
    n_ir = int((rt60_s + predelay_ms * 1e-3) * sample_rate)
    t = np.arange(n_ir) / sample_rate
    start = int(predelay_ms * 1e-3 * sample_rate)
    tail = rng.standard_normal(n_ir) * np.exp(-6.9 * t / rt60_s)
    dark = signal.lfilter([0.3], [1.0, -0.7], tail)
    mix = np.exp(-t / max(rt60_s * (1.0 - 0.8 * damping), 1e-3))
    ir = mix * tail + (1.0 - mix) * dark
    ir[:start] = 0.0
    for _ in range(int(rng.integers(3, 8))):
        k = int(rng.uniform(0.002, 0.03) * sample_rate) + start // 2
        if k < n_ir:
            ir[k] += rng.uniform(-1.0, 1.0) * 4.0
    ir /= np.sqrt(np.sum(ir**2)) + 1e-12
    out = signal.fftconvolve(audio, ir)[: len(audio)]
    return ((1.0 - wet) * audio + wet * out).astype(np.float32)


def augment_stem_v2(rng: np.random.Generator, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, dict]:
    """EQ (70 %), compression (40 %), room reverb (40 %) and a gain (-9..+3 dB). Returns (audio, settings)."""
    out = audio.astype(np.float32)
    settings: dict = {}
    if rng.random() < 0.7:
        bands = []
        for _ in range(int(rng.integers(1, 4))):
            f, g, q = float(np.exp(rng.uniform(np.log(100), np.log(8000)))), float(rng.uniform(-9, 9)), 0.5
            q = float(rng.uniform(0.5, 3.0))
            out = peaking_eq(out, sample_rate, f, g, q)
            bands.append({"type": "peak", "freq_hz": round(f, 1), "gain_db": round(g, 2), "q": round(q, 2)})
        if rng.random() < 0.4:
            f, g = float(np.exp(rng.uniform(np.log(60), np.log(400)))), float(rng.uniform(-9, 6))
            out = shelf_eq(out, sample_rate, f, g, high=False)
            bands.append({"type": "low_shelf", "freq_hz": round(f, 1), "gain_db": round(g, 2)})
        if rng.random() < 0.4:
            f, g = float(np.exp(rng.uniform(np.log(2500), np.log(10000)))), float(rng.uniform(-12, 6))
            out = shelf_eq(out, sample_rate, f, g, high=True)
            bands.append({"type": "high_shelf", "freq_hz": round(f, 1), "gain_db": round(g, 2)})
        if rng.random() < 0.15:  # telephone/lo-fi band limit
            lo, hi = float(rng.uniform(80, 300)), float(rng.uniform(3500, 9000))
            sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
            out = signal.sosfilt(sos, out).astype(np.float32)
            bands.append({"type": "band_limit", "low_hz": round(lo, 1), "high_hz": round(hi, 1)})
        settings["eq"] = bands
    if rng.random() < 0.4:
        peak_db = 20.0 * np.log10(float(np.abs(out).max(initial=0.0)) + 1e-9)
        c = {
            "threshold_db": round(float(peak_db) - float(rng.uniform(3.0, 18.0)), 2),
            "ratio": round(float(rng.uniform(1.5, 8.0)), 2),
            "attack_ms": round(float(np.exp(rng.uniform(np.log(0.5), np.log(30.0)))), 2),
            "release_ms": round(float(np.exp(rng.uniform(np.log(30.0), np.log(400.0)))), 1),
        }
        out = compress(out, sample_rate, **c)
        settings["compression"] = c
    if rng.random() < 0.4:
        r = {
            "rt60_s": round(float(rng.uniform(0.15, 1.8)), 3),
            "wet": round(float(rng.uniform(0.05, 0.4)), 3),
            "predelay_ms": round(float(rng.uniform(0.0, 25.0)), 2),
            "damping": round(float(rng.uniform(0.0, 1.0)), 3),
        }
        out = room_reverb(out, sample_rate, rng=rng, **r)
        settings["reverb"] = r
    settings["gain_db"] = round(float(rng.uniform(-9.0, 3.0)), 3)
    out = out * np.float32(10.0 ** (settings["gain_db"] / 20.0))
    if not np.all(np.isfinite(out)):
        raise RuntimeError("augmentation produced non-finite audio")
    return out.astype(np.float32), settings


def level_stem(audio: np.ndarray, sample_rate: int, target_dbfs: float) -> tuple[np.ndarray, float]:
    """Scale (n_samples,) audio so its RMS over active 50 ms frames (within 50 dB of the loudest
    frame) is ``target_dbfs``; silent audio is returned as is. Returns (audio, gain_db)."""
    hop = max(1, int(0.05 * sample_rate))
    n = len(audio) // hop * hop
    if n == 0:
        return audio.astype(np.float32), 0.0
    power = np.mean(np.square(audio[:n].astype(np.float64)).reshape(-1, hop), axis=1)
    if power.max() <= 1e-14:
        return audio.astype(np.float32), 0.0
    active = power[power >= power.max() * 1e-5]
    gain_db = round(float(target_dbfs - 10.0 * np.log10(active.mean())), 3)
    return (audio * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32), gain_db
