"""The network's own stems re-masked from their sum: ``separate --class-stems-from network`` offline.

The network's stems sum to the input (``other`` is the input minus the rest), but each holds what
another also claims and their sum cancels. Re-masking them from their sum by their own magnitudes
in a long STFT (``bridge.parts.fusion.StemRemask``, as the blind path's last stage) keeps what each
stem's magnitude claims: on the selection set (seed 9002, 48 tracks, no score) the network alone
went from a pooled median SI-SDRi of +0.96 to +1.86 dB at 16384 samples and mask power 0.75
(BENCHMARKS.md, stop 37; the powers per stem are this module's ``NETWORK_REMASK``, stop 38). The
window is long (0.37 s at 44.1 kHz), so this is for files; the live bridge sends the stems as they are.

Public API
----------
- ``NETWORK_REMASK``: {stem: mask power} for the network's stems without a score (1 where not named).
- ``RemaskedNetwork(processor, powers)``: a ``bridge.engine.Processor`` whose stems are re-masked;
  the same ``prepare`` / ``process`` / ``set_score_notes`` / ``end_notes`` / ``reset`` / ``release``,
  ``latency_samples`` the network's plus the re-masking's (``latency_terms["stem_remask"]``), the
  notes delayed with the stems. Block-size invariant, as both stages are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bridge.engine import BlockResult, NoteDelay, Processor
from bridge.notes import NoteEvent
from bridge.parts.fusion import StemRemask, remask_size_for

# mask power per stem (1 where not named), selection set, seed 9002, 48 tracks, no score (stop 38)
NETWORK_REMASK: dict[str, float] = {"drums": 0.75, "bass": 0.75, "piano": 0.75, "guitar": 0.75, "strings": 0.75}


class RemaskedNetwork:
    """A network ``Processor`` whose finished stems are re-masked from their sum; see the module docstring."""

    def __init__(self, processor: Processor, powers: Mapping[str, float]) -> None:
        unknown = sorted(set(powers) - set(processor.stems))
        if unknown:
            raise ValueError(f"remask names stems {', '.join(unknown)} this model lacks; its are {processor.stems}")
        self.model = processor
        self.meta = processor.meta
        self.stems = processor.stems
        self.powers = dict(powers)
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}

    @property
    def n_bad_samples(self) -> int:
        return self.model.n_bad_samples

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Prepares the network, then the re-masking on top of its latency."""
        self.model.prepare(sample_rate, max_block_size, n_channels)
        powers = [float(self.powers.get(s, 1.0)) for s in self.stems]
        self._remask = StemRemask(powers, *remask_size_for(sample_rate), n_channels, max_block_size)
        self.latency_terms = {**self.model.latency_terms, "stem_remask": self._remask.latency_samples}
        self.latency_samples = self.model.latency_samples + self._remask.latency_samples
        self._notes = NoteDelay(self._remask.latency_samples)
        self.prepared = True

    def set_score_notes(self, notes_per_stem: Sequence[np.ndarray] | None) -> None:
        self.model.set_score_notes(notes_per_stem)

    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n) -> the network's stems re-masked (n_stems + 1, n_channels, n), ``other``
        last, and its notes, both delayed by ``latency_samples``."""
        res = self.model.process(audio, midi_events)
        stems = self._remask.process(res.stems)
        return BlockResult(stems=stems, notes=self._notes.process(res.notes, audio.shape[1]), activity=res.activity)

    def end_notes(self) -> list[NoteEvent]:
        """Every pending and held note, offsets relative to the next block (>= 0)."""
        return self._notes.end(self.model.end_notes())

    def reset(self) -> None:
        """Inference thread, between streams."""
        self.model.reset()
        self._remask.reset()
        self._notes.reset()

    def release(self) -> None:
        self.model.release()
        self.prepared = False
