"""Light per-stem augmentation applied to the stem audio itself (so stems still sum to the mix).

``augment_stem(rng, audio, sample_rate) -> (n_samples,) float32``: random gain, sometimes a
peaking EQ and a short synthetic reverb. Deterministic given ``rng``.
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
