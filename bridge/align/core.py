"""Offline alignment of a score to a recording, its confidence, and warping notes through it.

The score's features start ``PAD_S`` before its time 0 and end ``PAD_S`` after its last note
(silence both sides), so a late start or a long tail in the recording is matched by silence.
The warping path (``bridge.align.dtw.mrdtw``) becomes a strictly increasing map from score
seconds to recording seconds: per score frame the mean of the recording frames it is paired
with, linear in between, slope 1 outside the path.

Confidence: the mean chroma cost along the best path at ``BASELINE_HOP_S`` frames, against the
same for the score cut into ``SHUFFLE_BLOCK_S`` blocks put in a random order (the best path a
score made of the same material but not this performance would get), ``match = 1 - cost /
shuffled_cost``, times a penalty on an erratic tempo, ``exp(-(spread / TEMPO_SPREAD_SCALE)^2)``
with ``spread`` the clipped RMS spread of the log local tempo over ``TEMPO_WINDOW_S`` windows
(``tempo_spread``). A matching score scores well above ``MIN_CONFIDENCE``, another piece near 0.
An alignment is reliable at that confidence, or with a weaker match (at least ``MIN_MATCH``)
along a steady tempo (spread at most ``STEADY_SPREAD``): a loop-based arrangement matches its
own shuffled blocks almost as well as itself, so its match is low even when the alignment is
right, while a wrong score's path lurches (selection sets: the wrong scores' spreads 0.16-0.51
wherever their match reached 0.08).

Public API
----------
- ``Alignment``: ``score_s``/``recording_s`` (the map's knots, seconds), ``confidence``,
  ``reliable``, ``match``, ``tempo_spread``, ``mean_cost``, ``shuffled_cost``,
  ``audio``/``score`` (``Features``), ``path`` (fine frames), ``score_start_s``, ``wall_s``;
  ``warp(t_score_s) -> t_recording_s``.
- ``align_notes(x, sample_rate, notes) -> Alignment``: x (n_samples,) mono; notes (n, >=4)
  of every part together (a fifth column: attack time, see ``features.score_features``).
- ``align_file(audio_path, parts) -> Alignment``.
- ``score_notes(parts) -> (n, 5)``: every part's notes with the attack time of its program
  (a drum part's notes with pitch ``features.UNPITCHED``).
- ``warp_parts(parts, alignment) -> list[ScorePart]``: every note's onset and offset warped.
- ``tempo_spread(score_s, recording_s, start_s, end_s) -> float``.
- ``MIN_CONFIDENCE``, ``MIN_MATCH``, ``STEADY_SPREAD``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.align.dtw import ONSET_WEIGHT, dtw_band, local_cost, mrdtw
from bridge.align.features import (
    HOP_S,
    UNPITCHED,
    Features,
    attack_s_for_program,
    audio_features,
    load_audio_mono,
    score_features,
)
from bridge.parts.score_parts import ScorePart

PAD_S = 1.0
BASELINE_HOP_S = 0.2
SHUFFLE_BLOCK_S = 2.0
N_SHUFFLES = 2
MIN_CONFIDENCE = 0.3
# the onsets' weight in the local cost when the score has a drum part (else dtw's 0.25); selection
# band set within 50 ms: 0.25 / 0.5 / 1.0 -> 87.4 / 89.9 / 90.0 % (0.5 for every score: chamber 90.7 -> 88.8 %)
DRUM_ONSET_WEIGHT = 0.5
MIN_MATCH = 0.08
STEADY_SPREAD = 0.15
TEMPO_WINDOW_S = 2.0
TEMPO_SPREAD_SCALE = 0.4
MIN_SLOPE = 0.05  # recording seconds per score second, at least (the map stays strictly increasing)


@dataclass
class Alignment:
    score_s: np.ndarray  # (n_knots,) increasing
    recording_s: np.ndarray  # (n_knots,) increasing
    confidence: float
    mean_cost: float
    shuffled_cost: float
    audio: Features
    score: Features
    path: np.ndarray  # (n_steps, 2) fine frames [recording, score]
    score_start_s: float
    wall_s: float
    tempo_spread: float  # ``tempo_spread`` of the map over the score's notes

    @property
    def match(self) -> float:
        """``1 - mean cost / shuffled cost``: how much better the score fits than its shuffle."""
        return 1.0 - self.mean_cost / max(self.shuffled_cost, 1e-9)

    @property
    def reliable(self) -> bool:
        steady = self.match >= MIN_MATCH and self.tempo_spread <= STEADY_SPREAD
        return self.confidence >= MIN_CONFIDENCE or steady

    def warp(self, t_score_s: np.ndarray | float) -> np.ndarray:
        """Score seconds -> recording seconds (slope 1 beyond the ends of the path)."""
        t = np.asarray(t_score_s, np.float64)
        out = np.interp(t, self.score_s, self.recording_s)
        out = np.where(t < self.score_s[0], self.recording_s[0] + (t - self.score_s[0]), out)
        return np.where(t > self.score_s[-1], self.recording_s[-1] + (t - self.score_s[-1]), out)


def _warp_knots(path: np.ndarray, hop_s: float, score_start_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(score_s, recording_s) knots: per score frame the mean recording frame, strictly increasing."""
    j = path[:, 1]
    uniq, first = np.unique(j, return_index=True)
    sums = np.add.reduceat(path[:, 0].astype(np.float64), first)
    counts = np.diff(np.append(first, len(j)))
    rec = sums / counts * hop_s
    score = score_start_s + uniq * hop_s
    # strictly increasing: each step at least MIN_SLOPE times the score step
    rec = np.maximum.accumulate(rec - MIN_SLOPE * score) + MIN_SLOPE * score
    return score, rec


def _shuffled(feat: Features, block: int, rng: np.random.Generator) -> Features:
    n_blocks = -(-feat.n_frames // block)
    order = rng.permutation(n_blocks)
    idx = np.concatenate([np.arange(b * block, min((b + 1) * block, feat.n_frames)) for b in order])
    return Features(feat.chroma[:, idx], feat.onsets[:, idx], feat.hop_s)


def _mean_path_cost(audio: Features, score: Features, margin: int) -> float:
    """Mean chroma cost along the best path (onsets left out: they are noisy on bowed strings)."""
    n, m = audio.n_frames, score.n_frames
    lo, hi = np.zeros(n, np.int64), np.full(n, m, np.int64)
    cost = functools.partial(local_cost, audio, score, onset_weight=0.0)
    path, total = dtw_band(cost, n, m, lo, hi, margin, margin)
    return total / len(path)


def confidence_of(audio: Features, score: Features, seed: int = 0) -> tuple[float, float, float]:
    """(confidence, mean path cost, shuffled-score mean path cost) at ``BASELINE_HOP_S`` frames."""
    factor = max(1, round(BASELINE_HOP_S / audio.hop_s), -(-max(audio.n_frames, score.n_frames) // 1500))
    a, s = audio.downsample(factor), score.downsample(factor)
    margin = round(PAD_S / s.hop_s)
    cost = _mean_path_cost(a, s, margin)
    rng = np.random.default_rng(seed)
    block = max(2, round(SHUFFLE_BLOCK_S / s.hop_s))
    shuffled = float(np.mean([_mean_path_cost(a, _shuffled(s, block, rng), margin) for _ in range(N_SHUFFLES)]))
    return 1.0 - cost / max(shuffled, 1e-9), cost, shuffled


def tempo_spread(score_s: np.ndarray, rec_s: np.ndarray, start_s: float, end_s: float) -> float:
    """Spread (RMS around the median, each window's deviation clipped to a factor of 2) of the
    log local tempo of the map over ``TEMPO_WINDOW_S`` windows of the score: a performance
    drifts and holds a note or stops now and then, a wrong score's path lurches everywhere."""
    t = np.arange(start_s, end_s - TEMPO_WINDOW_S, TEMPO_WINDOW_S / 2)
    if len(t) < 3:
        return 0.0
    slope = (np.interp(t + TEMPO_WINDOW_S, score_s, rec_s) - np.interp(t, score_s, rec_s)) / TEMPO_WINDOW_S
    log_tempo = np.log(np.maximum(slope, MIN_SLOPE))
    deviation = np.clip(log_tempo - np.median(log_tempo), -np.log(2.0), np.log(2.0))
    return float(np.sqrt(np.mean(deviation**2)))


def align_notes(x: np.ndarray, sample_rate: int, notes: np.ndarray) -> Alignment:
    """Align notes (n, >=4) ``[onset_s, offset_s, pitch, velocity]`` to the mono signal ``x``."""
    t0 = time.perf_counter()
    notes = np.asarray(notes, np.float64)
    start_s = min(0.0, float(notes[:, 0].min())) - PAD_S
    end_s = float(notes[:, 1].max()) + PAD_S
    audio = audio_features(x, sample_rate)
    score = score_features(notes, int(np.ceil((end_s - start_s) / HOP_S)) + 1, start_s)
    margin = int(round(PAD_S / HOP_S))
    drums = bool(np.any(notes[:, 2] == UNPITCHED))  # a drum part: onsets carry more of the timing
    res = mrdtw(
        audio, score, open_start=margin, open_end=margin, onset_weight=DRUM_ONSET_WEIGHT if drums else ONSET_WEIGHT
    )
    match, cost, shuffled = confidence_of(audio, score)
    score_s, rec_s = _warp_knots(res.path, HOP_S, start_s)
    spread = tempo_spread(score_s, rec_s, start_s + PAD_S, end_s - PAD_S)
    conf = match * float(np.exp(-((spread / TEMPO_SPREAD_SCALE) ** 2)))
    return Alignment(
        score_s, rec_s, conf, cost, shuffled, audio, score, res.path, start_s, time.perf_counter() - t0, spread
    )


def align_file(audio_path: str | Path, parts: Sequence[ScorePart]) -> Alignment:
    """Align the parts of a score (``bridge.parts.score_parts.read_parts``) to an audio file."""
    x, sr = load_audio_mono(audio_path)
    if len(x) < sr // 10:
        from bridge.errors import InputError

        raise InputError(f"{audio_path}: too short to align ({len(x) / sr:.2f} s)")
    return align_notes(x, sr, score_notes(parts))


def score_notes(parts: Sequence[ScorePart]) -> np.ndarray:
    """Every part's notes together, (n, 5) ``[onset_s, offset_s, pitch, velocity, attack_s]``; a
    drum part's hits have pitch ``UNPITCHED`` (onsets, no chroma)."""
    notes = []
    for p in parts:
        n = np.column_stack([p.notes[:, :4], np.full(p.n_notes, attack_s_for_program(p.program, p.is_drum))])
        if p.is_drum:
            n[:, 2] = UNPITCHED
        notes.append(n)
    return np.concatenate(notes)


def warp_parts(parts: Sequence[ScorePart], alignment: Alignment) -> list[ScorePart]:
    """The parts with every note's onset and offset moved onto the recording's timeline."""
    out = []
    for p in parts:
        notes = p.notes.copy()
        notes[:, 0] = alignment.warp(notes[:, 0])
        notes[:, 1] = np.maximum(alignment.warp(notes[:, 1]), notes[:, 0] + 1e-3)
        out.append(dataclasses.replace(p, notes=notes))
    return out
