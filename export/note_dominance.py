"""How clearly a note sounds in its mix: the share of the mix's energy at the note's harmonics that its
own class's true stems hold (``note_dominance``), for notes of a rendered corpus or a held-out set
(both keep their stems). ``bench/classifier_fit.py`` splits accuracy by it; ``stembridge train-notes
--dominance-floor`` weights the training notes by it (a note masked by other instruments teaches the
classifier less about its own class's timbre).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge.transcribe.note_classes import KNOWN_CLASSES as CLASSES


def read_mono(path: Path, n: int) -> np.ndarray:
    """(n,) float64: the file at ``path``, channels averaged, cut or zero-padded to ``n`` samples."""
    import soundfile as sf

    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    x = x.mean(axis=1)
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


DOMINANCE_EDGES = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
_DOM_FFT, _DOM_HOP, _DOM_PARTIALS = 4096, 512, 8


def note_dominance(feats: dict[str, np.ndarray], track_dirs: list[Path]) -> np.ndarray:
    """(n,) float: for each note of exactly one true class (``feats`` ``Y``, ``N`` (n, 4) onset_s,
    offset_s, pitch, velocity, ``K`` indexing ``track_dirs``: rendered tracks with ``metadata.yaml``,
    ``mix.flac`` and ``stems/``), the share of the mix's energy at its harmonics (``_DOM_PARTIALS``
    partials, +-1 bin at n_fft ``_DOM_FFT``) that its class's true stems hold, frames centred from its
    onset to its offset; NaN for other notes, for a class with no stem in the track, and where the mix
    is silent at those harmonics or the note lies outside the audio."""
    import soundfile as sf
    import yaml
    from scipy.signal import stft

    from bridge.instruments import stem_for_program

    def power(x: np.ndarray) -> np.ndarray:
        # boundary "zeros": frame j is centred on sample j * hop
        f = stft(x, nperseg=_DOM_FFT, noverlap=_DOM_FFT - _DOM_HOP, boundary="zeros", padded=True)[2]
        return np.abs(f) ** 2

    y = feats["Y"][:, : len(CLASSES)]
    one = y.sum(axis=1) == 1
    out = np.full(len(y), np.nan)
    for t, td in enumerate(track_dirs):
        rows = np.flatnonzero((feats["K"] == t) & one)
        if not len(rows):
            continue
        meta = yaml.safe_load((td / "metadata.yaml").read_text())
        info = sf.info(str(td / "mix.flac"))
        sr, mix = info.samplerate, read_mono(td / "mix.flac", info.frames)
        per: dict[int, np.ndarray] = {}
        for sid, info in sorted((meta.get("stems") or {}).items()):
            path = td / "stems" / f"{sid}.flac"
            if info.get("is_drum") or info.get("audio_rendered") is False or not path.is_file():
                continue
            c = CLASSES.index(stem_for_program(int(info.get("program_num", 0))))
            per[c] = per.get(c, 0.0) + read_mono(path, len(mix))
        pm = power(mix)
        pc = {c: power(x) for c, x in per.items()}
        floor = 1e-10 * max(float(pm.mean()), 1e-30)  # below this the mix is silent there
        for i in rows.tolist():
            on_s, off_s, pitch = feats["N"][i, :3]
            c = int(y[i].argmax())
            if c not in pc:
                continue
            t0 = max(0, round(on_s * sr / _DOM_HOP))
            t1 = min(pm.shape[1], max(t0 + 1, round(off_s * sr / _DOM_HOP)))
            f0_hz = 440.0 * 2 ** ((pitch - 69) / 12)
            centre = np.round(np.arange(1, _DOM_PARTIALS + 1) * f0_hz * _DOM_FFT / sr).astype(int)
            bins = np.unique(np.concatenate([centre - 1, centre, centre + 1]))
            bins = bins[(bins >= 0) & (bins < pm.shape[0])]
            total = pm[bins, t0:t1].sum()
            if t0 < t1 and len(bins) and total > floor * len(bins) * (t1 - t0):
                out[i] = pc[c][bins, t0:t1].sum() / total
    return out
