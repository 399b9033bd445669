"""Separation and transcription metrics of the quality benchmark (papers/DIGEST.md 2.2-2.3).

- ``sdr(est, ref)``: D Eq. 1.3, ``10 log10(|s|^2 / |s - s_hat|^2)`` (plain, scale-dependent).
- ``si_sdr(est, ref)``: D Eq. 1.4, scale-invariant SDR.
- ``si_sdri(est, mix, ref)``: D Eq. 1.5, ``si_sdr(est, ref) - si_sdr(mix, ref)``.
- ``is_silent(ref, mix)``: a true stem too quiet to score (below ``SILENT_DB`` re the mix).
- ``is_whole_mix(ref, mix)``: a true stem that is the mixture (the rest below ``SILENT_DB``): its
  SI-SDRi is undefined (SI-SDR(mix) grows without bound; ~ +110 dB where rounding stops it).
- ``level_db(x, mix)``: the energy of ``x`` re the mixture's in dB (floored at -120; NaN for a non-finite
  ``x``): what a stem holds where its instrument is absent.
- ``separation_scores(est, mix, ref) -> {si_sdri, sdr} | None``: a stem's scores, ``None`` for a
  true stem that is silent or the whole mix (what every bench skips).
- ``ideal_ratio_mask(mix, sources, n_fft, hop)``: the IRM estimates ``|S_i| / sum_j |S_j|``
  applied to the mixture STFT (mixture phase), with the project's streaming STFT, aligned with
  the input; the ceiling of any magnitude-mask model at that STFT.
- ``onset_f1(ref_notes, est_notes, drums)``: note-onset precision / recall / F1 (mir_eval,
  50 ms onset tolerance, offsets ignored); notes are (n, >=3) arrays ``onset_s, offset_s,
  midi_pitch, ...``; drums are matched on onset and drum class only.

All signals are 1-D (mono), float64 internally.
"""

from __future__ import annotations

import warnings

import numpy as np

EPS = 1e-8
SILENT_DB = -60.0  # a true stem this far below the mixture energy is not scored
DRUM_NOTE_S = 0.05  # fixed duration given to drum notes (offsets are not scored anyway)


def _pair(est: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    est = np.asarray(est, np.float64).reshape(-1)
    ref = np.asarray(ref, np.float64).reshape(-1)
    if est.shape != ref.shape:
        raise ValueError(f"estimate and reference differ in length: {est.shape} vs {ref.shape}")
    return est, ref


def sdr(est: np.ndarray, ref: np.ndarray, eps: float = EPS) -> float:
    """Scale-dependent SDR in dB (D Eq. 1.3)."""
    est, ref = _pair(est, ref)
    return float(10 * np.log10((ref @ ref) / ((ref - est) @ (ref - est) + eps) + eps))


def si_sdr(est: np.ndarray, ref: np.ndarray, eps: float = EPS) -> float:
    """Scale-invariant SDR in dB (D Eq. 1.4): alpha = <est, ref> / |ref|^2, target = alpha ref."""
    est, ref = _pair(est, ref)
    alpha = (est @ ref) / (ref @ ref + eps)
    target = alpha * ref
    return float(10 * np.log10((target @ target) / ((target - est) @ (target - est) + eps) + eps))


def si_sdri(est: np.ndarray, mix: np.ndarray, ref: np.ndarray, eps: float = EPS) -> float:
    """SI-SDR improvement over the mixture used as the estimate (D Eq. 1.5)."""
    return si_sdr(est, ref, eps) - si_sdr(mix, ref, eps)


def is_silent(ref: np.ndarray, mix: np.ndarray, threshold_db: float = SILENT_DB) -> bool:
    """True when ``ref`` holds less than ``threshold_db`` of the mixture's energy (or none)."""
    e_ref = float(np.sum(np.asarray(ref, np.float64) ** 2))
    e_mix = float(np.sum(np.asarray(mix, np.float64) ** 2))
    if e_ref <= 0.0 or e_mix <= 0.0:
        return True
    return 10 * np.log10(e_ref / e_mix) < threshold_db


def level_db(x: np.ndarray, mix: np.ndarray, floor_db: float = -120.0) -> float:
    """Energy of ``x`` relative to the mixture's in dB, at least ``floor_db`` (what a stem holds where its
    instrument does not play: the leak into an absent stem)."""
    e_x = float(np.sum(np.asarray(x, np.float64) ** 2))
    e_mix = float(np.sum(np.asarray(mix, np.float64) ** 2))
    if not np.isfinite(e_x):
        return float("nan")  # a broken estimate is not a clean one
    if e_mix <= 0.0:
        return floor_db
    return max(floor_db, float(10 * np.log10(max(e_x, 1e-300) / e_mix)))


def is_whole_mix(ref: np.ndarray, mix: np.ndarray, threshold_db: float = SILENT_DB) -> bool:
    """True when everything but ``ref`` holds less than ``threshold_db`` of the mixture's energy."""
    rest = np.asarray(mix, np.float64) - np.asarray(ref, np.float64)
    return is_silent(rest, mix, threshold_db)


def separation_scores(est: np.ndarray, mix: np.ndarray, ref: np.ndarray) -> dict[str, float] | None:
    """``{"si_sdri", "sdr"}`` of ``est`` against the true stem ``ref``; ``None`` where ``ref`` cannot
    be scored (``is_silent`` or ``is_whole_mix``)."""
    if is_silent(ref, mix) or is_whole_mix(ref, mix):
        return None
    return {"si_sdri": si_sdri(est, mix, ref), "sdr": sdr(est, ref)}


def stft_frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Spectra (n_frames, n_bins) of a mono signal with the streaming analysis, flushed with zeros."""
    from bridge.stft import StreamingAnalysis

    x = np.asarray(x, np.float32).reshape(1, -1)
    ana = StreamingAnalysis(n_fft, hop, 1)
    spec = ana.push(np.concatenate([x, np.zeros((1, n_fft), np.float32)], axis=1))
    return spec[:, 0, :]


def ideal_ratio_mask(mix: np.ndarray, sources: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
    """IRM estimates (n_sources, n_samples): masks |S_i| / sum_j |S_j| applied to the mix STFT."""
    from bridge.stft import StreamingSynthesis

    mix = np.asarray(mix, np.float32).reshape(-1)
    sources = np.asarray(sources, np.float32)
    n = len(mix)
    mags = np.stack([np.abs(stft_frames(s, n_fft, hop)) for s in sources])  # (S, T, F)
    masks = mags / np.maximum(mags.sum(axis=0, keepdims=True), 1e-12)
    x = stft_frames(mix, n_fft, hop)  # (T, F)
    est = masks * x[None]  # (S, T, F)
    syn = StreamingSynthesis(n_fft, hop, len(sources), 1)
    out = syn.push(np.ascontiguousarray(est.transpose(1, 0, 2)[:, :, None, :]).astype(np.complex64))
    out = out[:, 0, :n]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return out


def _midi_to_hz(pitch: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(pitch, np.float64) - 69.0) / 12.0)


def _as_notes(notes: np.ndarray) -> np.ndarray:
    a = np.asarray(notes, np.float64)
    return a.reshape(-1, 4) if a.size == 0 else a.reshape(len(a), -1)


def _intervals(notes: np.ndarray, drums: bool) -> tuple[np.ndarray, np.ndarray]:
    on = notes[:, 0]
    off = on + DRUM_NOTE_S if drums else np.maximum(notes[:, 1], on + 1e-3)
    return np.stack([on, off], axis=1), _midi_to_hz(notes[:, 2])


def onset_f1(ref_notes: np.ndarray, est_notes: np.ndarray, drums: bool = False) -> tuple[float, float, float]:
    """(precision, recall, F1) of note onsets: 50 ms tolerance, pitch (or drum class) must match.

    Empty reference and estimate: (1, 1, 1); only one of them empty: zeros.
    """
    import mir_eval

    ref_notes = _as_notes(ref_notes)
    est_notes = _as_notes(est_notes)
    if len(ref_notes) == 0 and len(est_notes) == 0:
        return 1.0, 1.0, 1.0
    if len(ref_notes) == 0 or len(est_notes) == 0:
        return 0.0, 0.0, 0.0
    ref_i, ref_p = _intervals(ref_notes, drums)
    est_i, est_p = _intervals(est_notes, drums)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
            ref_i, ref_p, est_i, est_p, onset_tolerance=0.05, pitch_tolerance=50.0, offset_ratio=None
        )
    return float(p), float(r), float(f)
