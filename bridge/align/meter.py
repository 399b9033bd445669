"""Bars and beats of a score file: a followed position (score seconds) as a musician reads it.

``ScoreMeter.from_midi(path)`` reads the file's tempo map and time signatures (every track;
none means 4/4); ``bar_beat(t_s) -> (bar, beat)``: 1-based bar, 1-based fractional beat in the
signature in force, its beats being the signature's denominator (6/8: six eighths). A signature
change restarts the bar count's grid at its tick (changes are expected on bar lines); times
before the start are bar 1, beat 1.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from bridge.score import _tempo_changes, meta_at_ticks, open_midi_file


@dataclass(frozen=True)
class ScoreMeter:
    ticks_per_beat: int
    tempo_ticks: np.ndarray  # (n,) int64, tick of each tempo segment's start
    tempo_us: np.ndarray  # (n,) microseconds per quarter note
    tempo_s: np.ndarray  # (n,) seconds at each segment's start
    sig_ticks: np.ndarray  # (m,) int64, tick of each time signature (the first at 0)
    sig_bars: np.ndarray  # (m,) bars completed before it
    sig_beat_ticks: np.ndarray  # (m,) ticks per beat of the signature
    sig_beats: np.ndarray  # (m,) beats per bar

    @classmethod
    def from_midi(cls, path: str | os.PathLike[str]) -> ScoreMeter:
        mid = open_midi_file(path)
        tpb = int(mid.ticks_per_beat)
        ticks, tempo, seconds = _tempo_changes(mid)
        sigs: dict[int, tuple[int, int]] = {0: (4, 4)}
        for tick, msg in meta_at_ticks(mid, "time_signature"):
            if msg.numerator > 0 and msg.denominator > 0:
                sigs[tick] = (int(msg.numerator), int(msg.denominator))
        at = sorted(sigs)
        beat_ticks = [tpb * 4.0 / sigs[t][1] for t in at]
        beats = [sigs[t][0] for t in at]
        bars = [0.0]
        for i in range(1, len(at)):
            bars.append(bars[-1] + np.ceil((at[i] - at[i - 1]) / (beat_ticks[i - 1] * beats[i - 1]) - 1e-9))
        return cls(
            tpb,
            ticks,
            tempo,
            seconds,
            np.asarray(at, np.int64),
            np.asarray(bars),
            np.asarray(beat_ticks),
            np.asarray(beats, np.float64),
        )

    def bar_beat(self, t_s: float) -> tuple[int, float]:
        """(bar, beat) at score time ``t_s`` seconds, both 1-based."""
        t_s = max(float(t_s), 0.0)
        k = int(np.searchsorted(self.tempo_s, t_s, side="right")) - 1
        tick = self.tempo_ticks[k] + (t_s - self.tempo_s[k]) * 1e6 / self.tempo_us[k] * self.ticks_per_beat
        j = int(np.searchsorted(self.sig_ticks, tick, side="right")) - 1
        beats_in = (tick - self.sig_ticks[j]) / self.sig_beat_ticks[j]
        bar = int(self.sig_bars[j] + beats_in // self.sig_beats[j]) + 1
        return bar, float(beats_in % self.sig_beats[j]) + 1.0
