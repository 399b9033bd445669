"""Instrument-blind polyphonic transcription with basic-pitch's shipped ONNX model (offline).

Spotify's basic-pitch (Bittner et al., ICASSP 2022; Apache-2.0, ``models_onnx/basic-pitch-nmp.LICENSE``)
ships ``nmp.onnx``, a 230 kB network that maps 2 s windows of 22.05 kHz mono audio to note,
onset and pitch-contour posteriorgrams at 86 frames per second over the 88 keys. The file is
vendored as ``models_onnx/basic-pitch-nmp.onnx`` (checked by sha256), so no TensorFlow, librosa
or basic-pitch package is needed; the windowing and the note decoding below follow basic-pitch
0.4.0's ``inference.run_inference`` and ``note_creation.output_to_notes_polyphonic`` with the
package's defaults (onset 0.5, frame 0.3, minimum note 127.7 ms, inferred onsets and the
"melodia trick"), and give the same notes (tests).

Not causal: every window sees 2 s of audio, so this serves offline files only.

Public API
----------
- ``NMP_FILE``, ``NMP_SHA256``: the vendored model and its checksum; ``SAMPLE_RATE``, ``HOP`` (a frame) and
  ``WINDOW_HOP_SAMPLES`` (a window's start after the last one's), in samples at the model's rate.
- ``BasicPitch(path=NMP_FILE, n_threads=1)``: ``posteriorgrams(audio, sample_rate)`` ->
  ``(note, onset)`` each (n_frames, 88) float32 at ``FRAME_RATE_HZ``; ``transcribe(audio,
  sample_rate, decoding=None)`` -> notes (n, 4) float64 ``[onset_s, offset_s, midi_pitch,
  velocity]`` sorted by onset, ``audio`` mono (n_samples,) at any rate.
- ``notes_of_posteriorgrams(note, onset, decoding=None) -> notes (n, 4)``: what ``transcribe`` does
  after the network (training transcribes cached posteriorgrams with it); ``decoding`` sets
  ``decode_notes``' thresholds (the note classifier declares the ones it was trained with).
- ``decode_notes(note, onset, ...)``: the posteriorgrams to note tuples in frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bridge.errors import ModelError

NMP_FILE = Path(__file__).resolve().parent.parent.parent / "models_onnx" / "basic-pitch-nmp.onnx"
NMP_SHA256 = "2c3c1d144bfa61ad236e92e169c13535c880469a12a047d4e73451f2c059a0ec"
SAMPLE_RATE = 22050
HOP = 256
FRAME_RATE_HZ = SAMPLE_RATE // HOP  # 86 (basic-pitch's ANNOTATIONS_FPS)
WINDOW_SAMPLES = SAMPLE_RATE * 2 - HOP  # 43844: the model's fixed input length
WINDOW_FRAMES = FRAME_RATE_HZ * 2  # 172 output frames per window
OVERLAP_FRAMES = 30
WINDOW_HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_FRAMES * HOP  # 36164: where each window starts after the last
MIDI_OFFSET = 21
N_KEYS = 88
ONSET_THRESHOLD = 0.5
FRAME_THRESHOLD = 0.3
MIN_NOTE_FRAMES = 11  # round(127.7 ms * 86.13 fps), basic-pitch's default minimum note length
ENERGY_TOLERANCE = 11
_INPUT = "serving_default_input_2:0"
_OUTPUTS = ("StatefulPartitionedCall:1", "StatefulPartitionedCall:2")  # note, onset


class BasicPitch:
    """basic-pitch's network in an onnxruntime session (see the module docstring)."""

    def __init__(self, path: Path = NMP_FILE, n_threads: int = 1) -> None:
        from bridge.model import load_session, sha256_of

        path = Path(path)
        self._sess = load_session(path, "transcription model", n_threads)
        if path == NMP_FILE and sha256_of(path) != NMP_SHA256:
            raise ModelError(f"transcription model {path} does not match its sha256 (corrupt or replaced)")
        names = {i.name for i in self._sess.get_inputs()}
        outs = {o.name for o in self._sess.get_outputs()}
        if _INPUT not in names or not set(_OUTPUTS) <= outs:
            raise ModelError(f"{path} is not basic-pitch's nmp model (inputs {sorted(names)})")

    def posteriorgrams(self, audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Mono ``audio`` (n,) -> ``(note, onset)`` (n_frames, 88) at ``FRAME_RATE_HZ``."""
        x = _to_model_rate(audio, sample_rate)
        n_orig = len(x)
        overlap = OVERLAP_FRAMES * HOP
        hop = WINDOW_HOP_SAMPLES
        x = np.concatenate([np.zeros(overlap // 2, np.float32), x])
        notes, onsets = [], []
        for i in range(0, len(x), hop):
            w = x[i : i + WINDOW_SAMPLES]
            if len(w) < WINDOW_SAMPLES:
                w = np.pad(w, (0, WINDOW_SAMPLES - len(w)))
            nt, on = self._sess.run(list(_OUTPUTS), {_INPUT: w[None, :, None]})
            notes.append(nt[0])
            onsets.append(on[0])
        n_frames = int(np.floor(n_orig * FRAME_RATE_HZ / SAMPLE_RATE))
        h = OVERLAP_FRAMES // 2
        note = np.concatenate([a[h:-h] for a in notes])[:n_frames]
        onset = np.concatenate([a[h:-h] for a in onsets])[:n_frames]
        return note, onset

    def transcribe(
        self, audio: np.ndarray, sample_rate: int, decoding: Mapping[str, float] | None = None
    ) -> np.ndarray:
        """Mono ``audio`` -> notes (n, 4) ``[onset_s, offset_s, pitch, velocity]`` sorted by onset;
        ``decoding``: ``decode_notes``' thresholds (default basic-pitch's)."""
        return notes_of_posteriorgrams(*self.posteriorgrams(audio, sample_rate), decoding)


def notes_of_posteriorgrams(
    note: np.ndarray, onset: np.ndarray, decoding: Mapping[str, float] | None = None
) -> np.ndarray:
    """``posteriorgrams``' ``(note, onset)`` -> notes (n, 4) ``[onset_s, offset_s, pitch, velocity]``
    sorted by onset; ``decoding``: ``onset_threshold``, ``frame_threshold``, ``min_note_frames``
    (``decode_notes``; default basic-pitch's)."""
    d = dict(decoding or {})
    events = decode_notes(
        np.asarray(note, np.float32),
        np.asarray(onset, np.float32),
        onset_threshold=float(d.get("onset_threshold", ONSET_THRESHOLD)),
        frame_threshold=float(d.get("frame_threshold", FRAME_THRESHOLD)),
        min_note_frames=d.get("min_note_frames", MIN_NOTE_FRAMES),
    )
    times = frame_times_s(len(note))
    rows = [(times[s], times[e], p, float(np.clip(round(127 * a), 1, 127))) for s, e, p, a in events]
    out = np.asarray(rows, np.float64).reshape(-1, 4)
    return out[np.lexsort((out[:, 2], out[:, 0]))]


def _to_model_rate(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = np.nan_to_num(np.asarray(audio, np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)
    if sample_rate != SAMPLE_RATE and len(x):
        import soxr

        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return x


def frame_times_s(n_frames: int) -> np.ndarray:
    """Time (s) of each output frame, with basic-pitch's per-window correction."""
    t = np.arange(n_frames) * HOP / SAMPLE_RATE
    window_offset = (HOP / SAMPLE_RATE) * (WINDOW_FRAMES - WINDOW_SAMPLES / HOP) + 0.0018
    return t - window_offset * np.floor(np.arange(n_frames) / WINDOW_FRAMES)


def _inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Onsets, raised where the frame activation jumps (basic-pitch's ``get_infered_onsets``)."""
    diffs = []
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, frames.shape[1])), frames])
        diffs.append(shifted[n:] - shifted[:-n])
    d = np.min(diffs, axis=0)
    d[d < 0] = 0
    d[:n_diff] = 0
    peak = float(np.max(d)) if d.size else 0.0
    if peak > 0:
        d = float(np.max(onsets)) * d / peak
    return np.maximum(onsets, d)


def _clear(energy: np.ndarray, t0: int, t1: int, k: int) -> None:
    energy[t0:t1, max(k - 1, 0) : min(k + 2, energy.shape[1])] = 0


def _extent(energy: np.ndarray, i: int, k: int, step: int, thr: float, clear: bool) -> int:
    """Walk from frame ``i`` in direction ``step`` until ``ENERGY_TOLERANCE`` frames in a row are under
    ``thr``; the last frame above it (optionally zeroing the walked frames and their neighbour keys)."""
    n = energy.shape[0]
    below = 0
    while (0 < i < n - 1) and below < ENERGY_TOLERANCE:
        below = below + 1 if energy[i, k] < thr else 0
        if clear:
            _clear(energy, i, i + 1, k)
        i += step
    return i - step * (1 + below)


def frame_peaks(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Indices of the strict local maxima of ``x`` (n_frames, ...) along its first axis, the first and last
    frames left out: ``scipy.signal.argrelmax(x, axis=0)`` without importing scipy.signal (1.5 s per start)."""
    m = np.zeros(x.shape, bool)
    m[1:-1] = (x[1:-1] > x[:-2]) & (x[1:-1] > x[2:])
    return np.nonzero(m)


def decode_notes(
    note: np.ndarray,
    onset: np.ndarray,
    onset_threshold: float = ONSET_THRESHOLD,
    frame_threshold: float = FRAME_THRESHOLD,
    min_note_frames: int | float = MIN_NOTE_FRAMES,
) -> list[tuple[int, int, int, float]]:
    """basic-pitch's polyphonic decoding: ``note``/``onset`` (n_frames, 88) -> ``(start_frame,
    end_frame, midi_pitch, amplitude)`` tuples (onset peaks tracked forward, then the remaining
    frame energy taken greedily as notes)."""
    n_frames = note.shape[0]
    if n_frames == 0:
        return []
    onsets = _inferred_onsets(onset.astype(np.float64), note.astype(np.float64))
    peaks = np.zeros(onsets.shape)
    idx = frame_peaks(onsets)
    peaks[idx] = onsets[idx]
    t_idx, k_idx = np.where(peaks >= onset_threshold)
    energy = note.astype(np.float64).copy()
    out: list[tuple[int, int, int, float]] = []
    for start, k in zip(t_idx[::-1].tolist(), k_idx[::-1].tolist()):
        if start >= n_frames - 1:
            continue
        i = start + 1
        below = 0
        while i < n_frames - 1 and below < ENERGY_TOLERANCE:
            below = below + 1 if energy[i, k] < frame_threshold else 0
            i += 1
        end = i - below
        if end - start <= min_note_frames:
            continue
        _clear(energy, start, end, k)
        out.append((start, end, k + MIDI_OFFSET, float(np.mean(note[start:end, k]))))
    # the "melodia trick": what frame energy is left over becomes notes, strongest first
    while energy.size and np.max(energy) > frame_threshold:
        mid, k = np.unravel_index(int(np.argmax(energy)), energy.shape)
        energy[mid, k] = 0
        end = _extent(energy, int(mid) + 1, int(k), 1, frame_threshold, clear=True)
        start = _extent(energy, int(mid) - 1, int(k), -1, frame_threshold, clear=True)
        if end - start <= min_note_frames:
            continue
        out.append((start, end, int(k) + MIDI_OFFSET, float(np.mean(note[start:end, k]))))
    return out


__all__ = [
    "FRAME_RATE_HZ",
    "NMP_FILE",
    "NMP_SHA256",
    "BasicPitch",
    "decode_notes",
    "frame_times_s",
    "notes_of_posteriorgrams",
]
