"""A log-frequency view of an STFT: triangular filters at a fixed number of bins per semitone.

Shared by the pitch-equivariant network's front end (``export.models.harmonic``) and the note
classifier's patches (``bridge.transcribe.note_classes``), so both see the same map.

Public API
----------
- ``midi_to_hz(m)``: equal temperament, A4 = 440 Hz.
- ``log_centres_midi(n_log, bins_per_semitone, midi_low)``: MIDI pitch of each log bin's centre
  (n_log,); bin ``b*p + b//2`` is MIDI ``midi_low + p``.
- ``log_filterbank(sample_rate, n_fft, n_bins, bins_per_semitone, midi_low, midi_high)``:
  (n_bins, n_log) float32 weights, ``n_log = bins_per_semitone * (midi_high - midi_low + 1)``.
"""

from __future__ import annotations

import numpy as np


def midi_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(m, np.float64) - 69.0) / 12.0)


def log_centres_midi(n_log: int, bins_per_semitone: int, midi_low: int) -> np.ndarray:
    """MIDI pitch of each log bin's centre (n_log,)."""
    b = bins_per_semitone
    return midi_low + (np.arange(n_log) - b // 2) / b


def log_filterbank(
    sample_rate: int, n_fft: int, n_bins: int, bins_per_semitone: int, midi_low: int, midi_high: int
) -> np.ndarray:
    """(n_bins, n_log) triangular weights, peak 1 at the log bin's centre frequency.

    Half-width = the distance to the next log bin, but at least one linear bin: where log bins are
    denser than linear bins this is linear interpolation between the two nearest linear bins.
    """
    df = sample_rate / n_fft
    f_lin = np.arange(n_bins) * df
    n_log = bins_per_semitone * (midi_high - midi_low + 1)
    c = log_centres_midi(n_log, bins_per_semitone, midi_low)
    f_c = midi_to_hz(c)
    hw = np.maximum(midi_to_hz(c + 1.0 / bins_per_semitone) - f_c, df)
    w = np.clip(1.0 - np.abs(f_lin[:, None] - f_c[None, :]) / hw[None, :], 0.0, None)
    return w.astype(np.float32)
