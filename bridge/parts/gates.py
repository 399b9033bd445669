"""Which (part, pitch) may sound in which STFT frame: the score's notes, with release tails.

The same frame rule as the class path (``bridge.score``: a note marks the frames whose centre
it sounds at, and always its onset frame), on a 128-pitch roll per part, then held on for a
release tail after each note ends (per part and pitch: a drum hit's tail is its decay, long for
cymbals, short for a closed hat), and opened one frame early (a score that lags the audio, and
notes that start within a frame), which the live score already knows when that frame is
computed. Gates are causal: frame ``k`` needs the score up to one and a half hops after its
centre, which live audio reaches (``n_fft / 2`` after the centre) before the frame is computed.

Public API
----------
- ``GateGrid(sample_rate, n_fft, hop, n_parts)``: the ``MetaLike`` of ``bridge.score`` for parts
  (stems ``p0, p1, ...``, keys 0-127).
- ``PartGates(grid, release_frames)``: ``release_frames`` (n_parts, 128) per part and pitch;
  ``rows_and_tails(first_frame, n_frames) -> ((n_frames, n_parts, 128) bool gates, (n_frames,
  n_parts) bool: where a part's gates are open only for a release tail or an early opening)``,
  from either ``set_notes(notes_per_part)`` (a whole score: per part (n_notes, 4) ``[onset_s,
  offset_s, pitch, velocity]``) or live MIDI through ``live`` (a ``LiveScore`` whose channel map
  sends each part's channel to it: ``set_live_channels({channel_0_based: part})``).
  ``follow()`` adds a second live score, ``followed`` (channel ``i`` = part ``i``, up to 16
  parts), fed by a score follower; a part whose own channel sent MIDI on ``live``
  (``override(part)``) is no longer driven by it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bridge.score import LiveScore, note_spans

N_PITCHES = 128


@dataclass(frozen=True)
class GateGrid:
    """Frame grid of the parts path, shaped like ``bridge.score.MetaLike``."""

    sample_rate: int
    n_fft: int
    hop: int
    n_parts: int
    key_low: int = 0
    n_keys: int = N_PITCHES

    @property
    def stems(self) -> tuple[str, ...]:
        return tuple(f"p{i}" for i in range(self.n_parts))


class PartGates:
    """Score -> gate rows per part; offline (whole score) or live (MIDI pushed as it comes)."""

    def __init__(self, grid: GateGrid, release_frames: np.ndarray, lead: bool = True) -> None:
        """``release_frames``: (n_parts, 128) int, the tail of each part's pitches in frames."""
        release_frames = np.asarray(release_frames, np.int64)
        if release_frames.shape != (grid.n_parts, N_PITCHES):
            raise ValueError(f"release_frames must be ({grid.n_parts}, {N_PITCHES}), got {release_frames.shape}")
        self.grid = grid
        self.release_frames = release_frames
        # frame k is computed once the audio reaches its end, n_fft / 2 past its centre, and the
        # score up to there is known: a gate may open up to n_fft / (2 hop) - 1/2 frames early
        self.lead_frames = max(0, int(grid.n_fft / (2 * grid.hop) - 0.5)) if lead else 0
        self._spans: tuple[np.ndarray, ...] | None = None
        self.live = LiveScore(grid, {})
        self.followed: LiveScore | None = None
        self._overridden = np.zeros(grid.n_parts, bool)

    def follow(self) -> None:
        """Gates also from ``followed`` (channel ``i`` -> part ``i``, the first 16 parts)."""
        self.followed = LiveScore(self.grid, {i: f"p{i}" for i in range(min(self.grid.n_parts, 16))})

    def override(self, part: int) -> None:
        """Live MIDI came for ``part``: the follower stops driving it (until ``reset``)."""
        self._overridden[part] = True

    def set_notes(self, notes_per_part: Sequence[np.ndarray] | None) -> None:
        """A whole score (offline); ``None`` switches to the live score."""
        if notes_per_part is None:
            self._spans = None
            return
        self._spans = note_spans([np.asarray(n, np.float64) for n in notes_per_part], self.grid)

    def set_live_channels(self, part_of_channel: Mapping[int, int]) -> None:
        """Live MIDI: 0-based channel -> part index; other channels are ignored."""
        self.live = LiveScore(self.grid, {int(c): f"p{int(p)}" for c, p in part_of_channel.items()})

    def reset(self) -> None:
        self.live.reset()
        if self.followed is not None:
            self.followed.reset()
        self._overridden[:] = False

    def rows_and_tails(self, first_frame: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """(n_frames, n_parts, 128) bool gates for frames ``first_frame ..``, and (n_frames,
        n_parts) bool: the frames where a part's gates are open only for a release tail or an early
        opening, none of its notes sounding by the score."""
        back = int(self.release_frames.max()) if self.release_frames.size else 0
        if self._spans is not None:
            start, end, part, pitch = self._spans
        else:
            start, end, part, pitch = self.live.spans(max(first_frame - back, 0))
            if self.followed is not None:
                f = self.followed.spans(max(first_frame - back, 0))
                keep = ~self._overridden[f[2]]
                start, end, part, pitch = (np.concatenate([a, b[keep]]) for a, b in zip((start, end, part, pitch), f))
        # a note marks [start, end + its release tail); only the notes that reach these frames
        core_lo, core_hi = start, end
        end = end + self.release_frames[part, pitch]
        start = start - self.lead_frames
        hit = np.nonzero((start < first_frame + n_frames) & (end > first_frame))[0]
        out = np.zeros((n_frames, self.grid.n_parts, N_PITCHES), bool)
        core = np.zeros((n_frames, self.grid.n_parts), bool)
        lo = np.clip(start[hit] - first_frame, 0, n_frames).tolist()
        hi = np.clip(end[hit] - first_frame, 0, n_frames).tolist()
        c_lo = np.clip(core_lo[hit] - first_frame, 0, n_frames).tolist()
        c_hi = np.clip(core_hi[hit] - first_frame, 0, n_frames).tolist()
        for a, b, ca, cb, p, q in zip(lo, hi, c_lo, c_hi, part[hit].tolist(), pitch[hit].tolist()):
            out[a:b, p, q] = True
            core[ca:cb, p] = True
        return out, out.any(axis=2) & ~core
