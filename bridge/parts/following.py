"""The parts of a score that is known up front but not played to a click: the live audio is
followed (``bridge.align.follow.ScoreFollower``) and the followed score drives the parts.

``FollowedParts`` is a ``PartsProcessor`` whose gates come from the score file moved onto the
performance as it is heard: every block, the follower's score position (plus ``LEAD_S``) says
which notes of each part sound now; note-ons and note-offs for the changes go into the gates'
``followed`` live score, stamped at the block. A jump of the position (a restart, a skipped
bar) ends every sounding note and starts those of the new place. MIDI arriving on the parts'
channels at the same time (``score_in``) overrides the follower for those parts, from the
first message on.

Public API
----------
- ``FollowedParts(parts, part_of_channel=None, settings=None, meter=None)``: ``parts`` the score's parts
  (``bridge.parts.score_parts.ScorePart``, at most 16 followed); ``part_of_channel``
  {channel_0_based: part index} for the live MIDI that overrides (default: each part's own channel,
  the first part of a channel). The verbs, ``stems`` and latency of ``PartsProcessor``
  (``reset``, which the worker calls after dropped input, keeps the follower's place); and
  ``position_s`` (score seconds followed, ``None`` before anything was heard), ``confidence``
  (0..1), ``n_relocations``, ``score_parts`` (the parts as given), ``meter`` (the score file's
  bars and beats, ``bridge.align.meter.ScoreMeter``, for display; ``None`` when not given),
  ``end_s`` (the score's last note-off, seconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bridge.align.core import score_notes
from bridge.align.follow import ScoreFollower
from bridge.align.meter import ScoreMeter
from bridge.engine import BlockResult
from bridge.errors import InputError
from bridge.parts.processor import PartsProcessor, PartsSettings, spec_of
from bridge.parts.score_parts import ScorePart

LEAD_S = 0.0  # added to the followed position (measured on the tests' flute + piano: 0 beat 0.05-0.2 s)
MAX_FOLLOWED_PARTS = 16
JUMP_S = 0.5  # a position change larger than this (forwards or backwards) restarts every note


class FollowedParts(PartsProcessor):
    """Parts separated with a followed score; see the module docstring."""

    def __init__(
        self,
        parts: Sequence[ScorePart],
        part_of_channel: Mapping[int, int] | None = None,
        settings: PartsSettings | None = None,
        meter: ScoreMeter | None = None,
    ) -> None:
        parts = [p for p in parts if p.n_notes]
        if not parts:
            raise InputError("the score to follow has no notes")
        if len(parts) > MAX_FOLLOWED_PARTS:
            raise InputError(f"the score has {len(parts)} parts; at most {MAX_FOLLOWED_PARTS} can be followed")
        super().__init__([spec_of(p) for p in parts], settings)
        self.score_parts = tuple(parts)
        self.meter = meter
        self.end_s = max(float(p.notes[:, 1].max()) for p in parts)
        if part_of_channel is None:
            part_of_channel = {}
            for i, p in enumerate(parts):
                part_of_channel.setdefault(int(p.channel), i)
        self.set_live_channels(part_of_channel)
        self._follower = ScoreFollower(score_notes(parts))
        self._on = [np.asarray(p.notes[:, 0], np.float64) for p in parts]
        self._off = [np.asarray(p.notes[:, 1], np.float64) for p in parts]
        self._pitch = [np.asarray(p.notes[:, 2], np.int64) for p in parts]

    # ------------------------------------------------------------------ state
    @property
    def position_s(self) -> float | None:
        return None if self._heard == 0 else self._follower.position_s

    @property
    def confidence(self) -> float:
        return float(self._follower.confidence)

    @property
    def n_relocations(self) -> int:
        return int(self._follower.n_relocations)

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. As ``PartsProcessor.prepare``; the follower listens at this rate."""
        self._follower.prepare(sample_rate)
        self._sounding: list[set[int]] = [set() for _ in self.score_parts]
        self._heard = 0
        self._last_pos: float | None = None
        super().prepare(sample_rate, max_block_size, n_channels)  # calls reset()
        self._gates.follow()

    def reset(self) -> None:
        """Inference thread, after a gap in the input (the worker resets on dropped blocks): the
        parts' stream state restarts and the sounding notes are sent again; the follower keeps
        its place in the score (``prepare`` starts it from the top)."""
        super().reset()
        self._sounding = [set() for _ in self.score_parts]
        self._last_pos = None

    # ------------------------------------------------------------------ process
    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """As ``PartsProcessor.process``; the audio also moves the follower, which drives the gates."""
        if not self.prepared:
            raise RuntimeError("FollowedParts.prepare() must be called first")
        events = list(midi_events)
        for _, msg in events:
            if len(msg) and 0x80 <= msg[0] < 0xA0:  # a note on / off on a part's channel: MIDI wins
                part = self._part_of_channel.get(msg[0] & 0x0F)
                if part is not None:
                    self._gates.override(part)
        x = np.nan_to_num(np.asarray(audio, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        self._heard += self._follower.process(x.mean(axis=0) if x.ndim == 2 else x)
        if self._heard:
            self._drive(self._follower.position_s + LEAD_S)
        return super().process(audio, events)

    def _drive(self, pos_s: float) -> None:
        """Note-ons / -offs into the followed score for what sounds at score time ``pos_s``."""
        jumped = self._last_pos is not None and abs(pos_s - self._last_pos) > JUMP_S
        self._last_pos = pos_s
        live = self._gates.followed
        assert live is not None
        at = self._n_in  # the block's first sample (super().process has not counted it yet)
        for i in range(len(self.score_parts)):
            now = set(np.nonzero((self._on[i] <= pos_s) & (self._off[i] > pos_s))[0].tolist())
            was = self._sounding[i]
            ended = was if jumped else was - now
            started = now if jumped else now - was
            for k in sorted(ended):
                live.push(at, bytes((0x80 | i, int(self._pitch[i][k]), 0)))
            for k in sorted(started):
                live.push(at, bytes((0x90 | i, int(self._pitch[i][k]), 100)))
            self._sounding[i] = now
