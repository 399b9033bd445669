"""Score-editing property of the shipped model (DSIS): moving a part's notes from one stem's score
to another moves separated energy between those stems. Skipped until band.onnx exists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")

from bridge.score import notes_to_roll  # noqa: E402

MODEL = Path(__file__).resolve().parents[2] / "models_onnx" / "band.onnx"
SR, N_FFT, HOP = 44100, 2048, 512
STEMS = ("drums", "bass", "piano", "guitar", "strings")


def _melody(seconds: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Harmonic tones with a plucked envelope: audio (n,), notes (n_notes, 4)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = np.zeros(n)
    notes = []
    on = 0.1
    while on < seconds - 0.5:
        dur = float(rng.choice([0.25, 0.5, 0.75]))
        pitch = int(rng.integers(55, 76))
        f0 = 440 * 2 ** ((pitch - 69) / 12)
        seg = (t >= on) & (t < on + dur)
        tt = t[seg] - on
        env = np.exp(-3 * tt) * np.minimum(1, tt / 0.005)
        x[seg] += sum(np.sin(2 * np.pi * h * f0 * tt) / h for h in range(1, 9)) * env * 0.15
        notes.append([on, on + dur, pitch, 90])
        on += dur
    return x.astype(np.float32), np.array(notes)


def _spec(x: np.ndarray) -> np.ndarray:
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    xp = np.concatenate([np.zeros(N_FFT - HOP, np.float32), x])
    n_frames = len(x) // HOP
    idx = np.arange(N_FFT)[None] + HOP * np.arange(n_frames)[:, None]
    return np.abs(np.fft.rfft(xp[idx] * w, axis=1)).astype(np.float32)


def _stem_energy(sess, spec, notes, stem: int) -> np.ndarray:
    t = spec.shape[0]
    score = np.zeros((1, t, 5, 88), np.float32)
    per_stem = [notes if s == stem else np.zeros((0, 4)) for s in range(len(STEMS))]
    meta = type(
        "Grid", (), {"sample_rate": SR, "hop": HOP, "n_fft": N_FFT, "key_low": 21, "n_keys": 88, "stems": STEMS}
    )
    score[0] = notes_to_roll(per_stem, t, meta)
    state = np.zeros((1, sess.get_inputs()[2].shape[1]), np.float32)
    masks = sess.run(["masks"], {"spec": spec[None], "score": score, "state_in": state})[0][0]
    return ((masks * spec[:, None, :]) ** 2).sum((0, 2))  # (stems,)


@pytest.mark.skipif(not MODEL.exists(), reason="band.onnx not trained/exported yet")
@pytest.mark.parametrize(("src", "dst"), [("piano", "strings"), ("piano", "guitar")])
def test_moving_notes_between_stems_moves_energy(src, dst):
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    x, notes = _melody()
    spec = _spec(x)
    a = _stem_energy(sess, spec, notes, STEMS.index(src))
    b = _stem_energy(sess, spec, notes, STEMS.index(dst))
    i, j = STEMS.index(src), STEMS.index(dst)
    assert a[i] > b[i], f"{src} energy did not drop when its notes moved to {dst}: {a[i]:.3g} -> {b[i]:.3g}"
    assert b[j] > a[j], f"{dst} energy did not rise when it received the notes: {a[j]:.3g} -> {b[j]:.3g}"
