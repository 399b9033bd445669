"""Alignment features of a recording and of a score: chroma and decaying chroma onsets.

Both sides get the same two features on the same frame grid (``HOP_S`` = 20 ms, frame ``k``
centred on ``k * HOP_S``):

- chroma (12, n_frames): energy per pitch class, log-compressed, unit length per frame;
  a frame without energy (silence) is the uniform vector, so silence matches silence.
- onsets (12, n_frames): DLNCO-like (Ewert, Müller & Grosche 2009) decaying, locally
  normalised chroma onsets: the positive log-energy increase per pitch folded into chroma,
  divided by its local maximum (``ONSET_NORM_S`` around the frame) and smeared forward with a
  decaying kernel of ``ONSET_DECAY_FRAMES``.

The recording's pitch energy comes from an STFT (``N_FFT`` at ``ANALYSIS_RATE``) pooled per
MIDI pitch; the score's is synthesised from its notes directly (each note and its first
``N_HARMONICS`` partials at 0.6^(h-1) of the fundamental's amplitude, building up over an attack
time that depends on the instrument, ringing ``RELEASE_S`` after the note-off), no soundfont
needed.

Public API
----------
- ``Features``: ``chroma``, ``onsets`` (12, n_frames) float32, ``hop_s``; ``n_frames``;
  ``downsample(factor)`` (block means, renormalised).
- ``audio_features(x, sample_rate) -> Features``: x (n_samples,) mono.
- ``load_audio_mono(path) -> (x, sample_rate)``: a file as mono float32 (``InputError`` on a bad file).
- ``score_features(notes, n_frames=None, start_s=0.0) -> Features``: notes (n, >=4)
  ``[onset_s, offset_s, pitch, velocity(, attack_s)]`` of every part together; frame ``k`` is the
  score at ``start_s + k * HOP_S``. A note with pitch ``UNPITCHED`` (-1: a drum hit) has an
  onset in every pitch class and no chroma.
- ``attack_s_for_program(program, is_drum) -> float``: the attack time synthesised for a part.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import maximum_filter1d

ANALYSIS_RATE = 22050
HOP_S = 0.02
HOP_SAMPLES = 441  # HOP_S at ANALYSIS_RATE
N_FFT = 2048
PITCH_LOW, PITCH_HIGH = 24, 108  # pitches pooled from the STFT (C1-C8)
N_HARMONICS = 8
RELEASE_S = 0.1  # decay time of the synthesised release tail
RELEASE_FRAMES = 15
DEFAULT_ATTACK_S = 0.05
ONSET_AT = 0.5  # where in the attack the recording's onset feature peaks
ONSET_NORM_S = 1.5
ONSET_DECAY_FRAMES = 8
UNPITCHED = -1  # the pitch of a note without one (a drum part's hit)
HIT_FRAMES = 8  # a hit's broadband energy lasts this many frames
HIT_DECAY_S = 0.05
# a hit's weight against a pitched note's (selection band set, within 50 ms offline at
# 0 / 1 / 3 / 10: 90.4 / 91.8 / 93.6 / 92.3 %)
HIT_GAIN = 3.0
SILENCE_DB = -55.0  # a frame this far below the loudest is silence
_LOG_GAIN = 100.0


@dataclass
class Features:
    chroma: np.ndarray  # (12, n_frames) float32, unit columns
    onsets: np.ndarray  # (12, n_frames) float32, in [0, 1]
    hop_s: float = HOP_S

    @property
    def n_frames(self) -> int:
        return int(self.chroma.shape[1])

    def downsample(self, factor: int) -> Features:
        """Block means over ``factor`` frames (chroma renormalised, onsets scaled to max 1)."""
        if factor == 1:
            return self
        n = -(-self.n_frames // factor)
        pad = n * factor - self.n_frames

        def pool(a: np.ndarray) -> np.ndarray:
            a = np.pad(a, ((0, 0), (0, pad)), mode="edge")
            return a.reshape(12, n, factor).mean(axis=2)

        chroma = _unit_columns(pool(self.chroma))
        onsets = pool(self.onsets)
        onsets /= max(float(onsets.max()), 1e-9)
        return Features(chroma.astype(np.float32), onsets.astype(np.float32), self.hop_s * factor)


def _unit_columns(a: np.ndarray, floor: float = 1e-6) -> np.ndarray:
    norm = np.linalg.norm(a, axis=0)
    out = a / np.maximum(norm, floor)
    silent = norm < floor
    out[:, silent] = 1.0 / np.sqrt(12.0)
    return out


def _fold(pitch_energy: np.ndarray, low: int) -> np.ndarray:
    """(n_pitches, n) from pitch ``low`` upwards -> (12, n) chroma (pitch class 0 = C)."""
    chroma = np.zeros((12, pitch_energy.shape[1]), np.float64)
    for k in range(pitch_energy.shape[0]):
        chroma[(low + k) % 12] += pitch_energy[k]
    return chroma


def _chroma(pitch_energy: np.ndarray, low: int) -> np.ndarray:
    """Log-compressed, unit-length chroma; silent frames (``SILENCE_DB``) uniform."""
    total = pitch_energy.sum(axis=0)
    peak = max(float(total.max()), 1e-20)
    chroma = np.log1p(_LOG_GAIN * _fold(pitch_energy, low) / peak)
    chroma[:, total < peak * 10 ** (SILENCE_DB / 10)] = 0.0
    return _unit_columns(chroma).astype(np.float32)


def _decaying(onset: np.ndarray) -> np.ndarray:
    """(12, n) chroma onsets -> locally normalised, forward-decaying onsets in [0, 1]."""
    strength = np.linalg.norm(onset, axis=0)
    local = maximum_filter1d(strength, size=max(3, int(ONSET_NORM_S / HOP_S)) | 1, mode="nearest")
    onset = onset / np.maximum(local, 0.1 * max(float(strength.max()), 1e-9))
    kernel = np.sqrt(np.linspace(1.0, 0.0, ONSET_DECAY_FRAMES + 1)[:-1])
    out = np.zeros_like(onset)
    for d, w in enumerate(kernel):
        out[:, d:] += w * onset[:, : onset.shape[1] - d]
    return (out / max(float(out.max()), 1e-9)).astype(np.float32)


def _onsets(pitch_energy: np.ndarray, low: int) -> np.ndarray:
    """Decaying chroma onsets from (n_pitches, n) energy: the positive log-energy rise."""
    peak = max(float(pitch_energy.max()), 1e-20)
    log_e = np.log1p(1000.0 * pitch_energy / peak)
    padded = np.pad(log_e, ((0, 0), (1, 1)), mode="edge")
    rise = np.maximum(padded[:, 2:] - padded[:, :-2], 0.0)  # centred on the frame
    return _decaying(_fold(rise, low))


def _pitch_matrix(n_fft: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Pitch index (0 = ``PITCH_LOW``) of every rfft bin, and a mask of the bins used."""
    freqs = np.arange(n_fft // 2 + 1) * sample_rate / n_fft
    with np.errstate(divide="ignore"):
        pitch = np.round(69 + 12 * np.log2(np.maximum(freqs, 1e-9) / 440.0)).astype(int)
    used = (pitch >= PITCH_LOW) & (pitch <= PITCH_HIGH) & (freqs > 25.0)
    return pitch - PITCH_LOW, used


def audio_features(x: np.ndarray, sample_rate: int) -> Features:
    """Chroma and onset features of a mono signal (n_samples,) on the ``HOP_S`` grid."""
    x = np.asarray(x, np.float32).reshape(-1)
    if sample_rate != ANALYSIS_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, ANALYSIS_RATE, quality="MQ").astype(np.float32)
    n_frames = max(1, int(np.ceil(len(x) / HOP_SAMPLES)))
    padded = np.pad(x, (N_FFT // 2, N_FFT // 2 + n_frames * HOP_SAMPLES - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_SAMPLES][:n_frames]
    window = np.hanning(N_FFT).astype(np.float32)
    pitch_idx, used = _pitch_matrix(N_FFT, ANALYSIS_RATE)
    n_pitches = PITCH_HIGH - PITCH_LOW + 1
    pool = np.zeros((len(pitch_idx), n_pitches), np.float32)  # (bins, pitches) one-hot
    pool[np.nonzero(used)[0], pitch_idx[used]] = 1.0
    energy = np.zeros((n_pitches, n_frames), np.float64)
    step = 2048  # frames per FFT batch: bounded memory on long files
    for a in range(0, n_frames, step):
        spec = np.abs(np.fft.rfft(frames[a : a + step] * window, axis=1)) ** 2  # (n, bins)
        energy[:, a : a + step] = (spec.astype(np.float32) @ pool).T
    return Features(_chroma(energy, PITCH_LOW), _onsets(energy, PITCH_LOW))


def load_audio_mono(path: str | Path) -> tuple[np.ndarray, int]:
    """The whole file as mono float32 and its sample rate (``InputError`` on a bad file)."""
    from bridge.audio_io import open_audio

    reader = open_audio(path)
    try:
        blocks = [b.mean(axis=0) for b in reader.blocks(1 << 16)]
        sr = reader.sample_rate
    finally:
        reader.close()
    x = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32), sr


def attack_s_for_program(program: int, is_drum: bool = False) -> float:
    """How long a General MIDI program's sound takes to build up (a coarse guess per family)."""
    if is_drum or program < 16 or 24 <= program < 40 or program in (45, 46, 47, 105, 106, 107, 108):
        return 0.01  # struck and plucked: piano, chromatic percussion, guitars, basses, pizzicato, harp
    if 40 <= program < 56:
        return 0.12  # bowed strings and ensembles
    return DEFAULT_ATTACK_S  # organs, winds, brass, voices, synths


def score_features(notes: np.ndarray, n_frames: int | None = None, start_s: float = 0.0) -> Features:
    """Chroma and onsets synthesised from notes (n, >=4) ``[onset_s, offset_s, pitch, velocity]``
    with an optional fifth column, the attack time in seconds (``DEFAULT_ATTACK_S`` without it;
    ``attack_s_for_program`` gives one per General MIDI program)."""
    notes = np.asarray(notes, np.float64).reshape(-1, notes.shape[-1] if np.ndim(notes) > 1 else 4)
    end_s = float(notes[:, 1].max()) if len(notes) else 0.0
    if n_frames is None:
        n_frames = max(1, int(np.ceil((end_s - start_s) / HOP_S)) + 1)
    n_pitches = PITCH_HIGH - PITCH_LOW + 1 + 48
    energy = np.zeros((n_pitches, n_frames), np.float64)
    attacks = np.zeros((n_pitches, n_frames), np.float64)
    on = np.clip(np.round((notes[:, 0] - start_s) / HOP_S).astype(int), 0, n_frames - 1)
    off = np.clip(np.round((notes[:, 1] - start_s) / HOP_S).astype(int), 0, n_frames)
    off = np.maximum(off, on + 1)
    amp = np.clip(notes[:, 3], 1, 127) / 127.0
    attack_frames = (notes[:, 4] if notes.shape[1] > 4 else np.full(len(notes), DEFAULT_ATTACK_S)) / HOP_S
    hits = notes[:, 2] == UNPITCHED  # onsets in every pitch class, no chroma
    if hits.any():  # one pitch class's share of every hit, added to the first 12 rows (one octave)
        power = amp[hits] ** 2 / 12.0
        hit_attack, hit_energy = np.zeros(n_frames), np.zeros(n_frames)
        np.add.at(
            hit_attack, np.minimum(on[hits] + np.round(ONSET_AT * attack_frames[hits]).astype(int), n_frames - 1), power
        )
        for d in range(HIT_FRAMES):  # a hit is broadband: every pitch class, decaying fast
            np.add.at(
                hit_energy, np.minimum(on[hits] + d, n_frames - 1), HIT_GAIN * power * np.exp(-d * HOP_S / HIT_DECAY_S)
            )
        attacks[:12] += hit_attack
        energy[:12] += hit_energy
    notes, on, off, amp, attack_frames = (a[~hits] for a in (notes, on, off, amp, attack_frames))
    for h in range(1, N_HARMONICS + 1):
        shift = int(round(12 * np.log2(h)))
        power = (amp * 0.6 ** (h - 1)) ** 2
        rows = np.clip(notes[:, 2].astype(int) + shift - PITCH_LOW, 0, n_pitches - 1)
        delta = np.zeros((n_pitches, n_frames + 1))
        np.add.at(delta, (rows, on), power)
        np.add.at(delta, (rows, off), -power)
        energy += np.cumsum(delta, axis=1)[:, :n_frames]
        np.add.at(attacks, (rows, np.minimum(on + np.round(ONSET_AT * attack_frames).astype(int), n_frames - 1)), power)
        for d in range(int(np.ceil(attack_frames.max(initial=0.0)))):  # the sound builds up over the attack
            head = np.minimum(on + d, n_frames - 1)
            ramp = np.minimum((d + 0.5) / np.maximum(attack_frames, 1e-9), 1.0) ** 2
            np.add.at(energy, (rows, head), -power * (1.0 - ramp) * (on + d < off))
        for d in range(RELEASE_FRAMES):  # instruments ring on after the note-off
            tail = np.minimum(off + d, n_frames - 1)
            np.add.at(energy, (rows, tail), power * np.exp(-(d + 1) * HOP_S / RELEASE_S) * (off + d < n_frames))
    energy = np.maximum(energy, 0.0)
    chroma = _chroma(energy, PITCH_LOW)
    # onsets from the synthesised attacks directly (a note repeated at the same pitch still has one)
    return Features(chroma, _decaying(_fold(np.sqrt(attacks), PITCH_LOW)))
