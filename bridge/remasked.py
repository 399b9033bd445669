"""The network's own stems, re-shared: softened masks (live and offline) and a long re-masking (offline).

The network's stems sum to the input (``other`` is the input minus the rest), but on timbres it was
not trained on it starves some stems (strings most) and hands the same energy to two stems where
their sum cancels. Two stages share each time-frequency bin again:

1. Softened masks, in the network's own STFT (``bridge.engine.Processor(mask_powers=)``,
   ``bridge.engine.softened_masks``): each stem's mask and ``other``'s to a power under 1,
   renormalised, so a stem the network under-claims gets a fairer share. No latency more: what the
   live bridge's network mode sends (``stembridge run``; ``--raw-masks`` turns it off).
2. Offline only, the finished stems re-masked from their sum by their magnitudes in a 16384-sample STFT
   (0.37 s at 44.1 kHz; ``bridge.parts.fusion.StemRemask``, the blind path's last stage too), which
   drops what two stems hold but their sum cancels: ``separate --class-stems-from network``.

On the selection set (seed 9002, 48 tracks, unseen MuseScore General timbres, no score;
``bench/remask_select.py --path network``, BENCHMARKS.md, stop 38) the network's pooled median SI-SDRi
(drums, bass, piano, guitar, strings) went from +0.96 dB to +2.56 with the softened masks and to +2.55
with both stages (paired per track, both: drums -0.03, bass +2.70, piano +3.02, guitar +2.62, strings
+12.29, other +0.75; softened alone: drums -0.30, the others a little less).

Public API
----------
- ``NETWORK_MASK_POWERS``: {stem: power} of the softened masks (1 where not named).
- ``NETWORK_REMASK``: {stem: mask power} of stage 2 (1 where not named).
- ``mask_powers_for(stems, powers=NETWORK_MASK_POWERS) -> list[float]``: one power per stem of a model
  (``Processor.stems``, ``other`` last), 1 for stems not named.
- ``soften(network) -> network``: a ``Processor`` with stage 1 on (``NETWORK_MASK_POWERS``).
- ``RemaskedNetwork(network, powers)``: a ``bridge.engine.Processor`` whose finished stems are re-masked
  (stage 2, ``powers`` {stem: mask power}, 1 where not named); the same ``prepare`` / ``process`` /
  ``set_score_notes`` / ``end_notes`` / ``reset`` / ``release``, ``latency_samples`` the network's plus the
  re-masking's (``latency_terms["stem_remask"]``), the notes delayed with the stems. Block-size invariant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bridge.engine import BlockResult, NoteDelay, Processor
from bridge.notes import NoteEvent
from bridge.parts.fusion import StemRemask, remask_powers, remask_size_for

# the softened masks' powers, selection set, seed 9002, 48 tracks, no score (stop 38)
NETWORK_MASK_POWERS: dict[str, float] = {
    "drums": 0.75,
    "bass": 0.3,
    "piano": 0.3,
    "guitar": 0.3,
    "strings": 0.2,
    "other": 0.5,
}


# stage 2's mask powers offline: 1 for every stem. After the softened masks, power 0.75 read higher pooled
# on the selection set but lower paired on drums, piano and other (BENCHMARKS.md, stop 38)
NETWORK_REMASK: dict[str, float] = {}


def mask_powers_for(stems: Sequence[str], powers: Mapping[str, float] = NETWORK_MASK_POWERS) -> list[float]:
    """One power per stem of ``stems`` (a model's, ``other`` last), 1 where ``powers`` does not name it."""
    return [float(powers.get(s, 1.0)) for s in stems]


def soften(network: Processor) -> Processor:
    """``network`` with its masks softened by ``NETWORK_MASK_POWERS`` (stage 1), returned for chaining."""
    network.set_mask_powers(mask_powers_for(network.stems))
    return network


class RemaskedNetwork:
    """A network ``Processor`` whose finished stems are re-masked from their sum; see the module docstring."""

    def __init__(self, network: Processor, powers: Mapping[str, float]) -> None:
        self.network = network
        self.meta = network.meta
        self.stems = network.stems
        self._powers = remask_powers(powers, network.stems)
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}

    @property
    def n_bad_samples(self) -> int:
        return self.network.n_bad_samples

    def set_score_notes(self, notes_per_stem: Sequence[np.ndarray] | None) -> None:
        self.network.set_score_notes(notes_per_stem)

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Prepares the network, then the re-masking on top of its latency."""
        self.network.prepare(sample_rate, max_block_size, n_channels)
        self._remask = StemRemask(self._powers, *remask_size_for(sample_rate), n_channels, max_block_size)
        self.latency_terms = {**self.network.latency_terms, "stem_remask": self._remask.latency_samples}
        self.latency_samples = self.network.latency_samples + self._remask.latency_samples
        self._notes = NoteDelay(self._remask.latency_samples)
        self.prepared = True

    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n) -> the network's stems re-masked (n_stems + 1, n_channels, n), ``other``
        last, and its notes, both delayed by ``latency_samples``."""
        res = self.network.process(audio, midi_events)
        stems = self._remask.process(res.stems)
        return BlockResult(stems=stems, notes=self._notes.process(res.notes, audio.shape[1]), activity=res.activity)

    def end_notes(self) -> list[NoteEvent]:
        """Every pending and held note, offsets relative to the next block (>= 0)."""
        return self._notes.end(self.network.end_notes())

    def reset(self) -> None:
        """Inference thread, between streams."""
        if not self.prepared:
            raise RuntimeError("RemaskedNetwork.prepare() must be called first")
        self.network.reset()
        self._remask.reset()
        self._notes.reset()

    def release(self) -> None:
        self.network.release()
        self.prepared = False
