"""The network's own stems re-masked from their sum: ``separate --class-stems-from network`` offline,
``run --remask`` live.

The network's stems sum to the input (``other`` is the input minus the rest), but each holds what
another also claims and their sum cancels, and on timbres it was not trained on it starves some
stems (strings). Re-masking them from their sum by their own magnitudes, each ratio mask softened
to a power under 1 (``bridge.parts.fusion.StemRemask``, as the blind path's last stage), keeps what
each stem's magnitude claims and shares the rest more evenly. On the selection set (seed 9002, 48
tracks, no score) the network alone went from a pooled median SI-SDRi of +0.96 to +2.49 dB with a
16384-sample window (0.37 s at 44.1 kHz, offline) and to +2.41 with a 1024-sample one (23 ms more
latency, live): the softened powers are most of the gain, the window length little of it
(BENCHMARKS.md, stop 38). Offline the long window is the default; live the short one is opt-in
(``stembridge run --remask``), as it adds its window to the bridge's latency.

Public API
----------
- ``NETWORK_REMASK``: {stem: mask power} for the network's stems (1 where not named), offline (16384 samples)
  and live (1024): the best powers of both windows on the selection set.
- ``own_powers(powers, stems) -> powers``: those of the stems a model has (and ``other``).
- ``live_remask_size_for(sample_rate) -> (n_fft, hop)``: the live window, 1024 samples up to 50 kHz (23 / 21 ms
  at 44.1 / 48 kHz), twice that up to 100 kHz, four times above; hop a quarter.
- ``RemaskedNetwork(network, powers, live=False)``: a ``bridge.engine.Processor`` whose stems are re-masked
  (the window ``remask_size_for`` offline, ``live_remask_size_for`` with ``live``); the same ``prepare`` /
  ``process`` / ``set_score_notes`` / ``set_live_score`` / ``end_notes`` / ``reset`` / ``release``,
  ``latency_samples`` the network's plus the re-masking's (``latency_terms["stem_remask"]``), the notes
  delayed with the stems. Block-size invariant, as both stages are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bridge.engine import BlockResult, NoteDelay, Processor
from bridge.notes import NoteEvent
from bridge.parts.fusion import StemRemask, remask_size_for

# mask power per stem (1 where not named), selection set, seed 9002, 48 tracks, no score (stop 38)
NETWORK_REMASK: dict[str, float] = {
    "drums": 0.75,
    "bass": 0.4,
    "piano": 0.4,
    "guitar": 0.4,
    "strings": 0.3,
    "other": 0.6,
}


def own_powers(powers: Mapping[str, float], stems: Sequence[str]) -> dict[str, float]:
    """The powers of the stems a model has (``stems``, and ``other``)."""
    return {k: float(v) for k, v in powers.items() if k in (*stems, "other")}


def live_remask_size_for(sample_rate: int) -> tuple[int, int]:
    """``(n_fft, hop)`` of the live re-masking at a host rate: 1024 samples up to 50 kHz, 2048 up to 100 kHz,
    4096 above (about 23 ms everywhere); hop a quarter."""
    n_fft = 1024 if sample_rate <= 50000 else 2048 if sample_rate <= 100000 else 4096
    return n_fft, n_fft // 4


class RemaskedNetwork:
    """A network ``Processor`` whose finished stems are re-masked from their sum; see the module docstring."""

    def __init__(self, network: Processor, powers: Mapping[str, float], live: bool = False) -> None:
        unknown = sorted(set(powers) - set(network.stems))
        if unknown:
            raise ValueError(f"remask names stems {', '.join(unknown)} this model lacks; its are {network.stems}")
        self.network = network
        self.meta = network.meta
        self.stems = network.stems
        self.remask_powers = dict(powers)
        self.live = live
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}

    @property
    def n_bad_samples(self) -> int:
        return self.network.n_bad_samples

    @property
    def sample_rate(self) -> int:
        return self.network.sample_rate

    @property
    def n_channels(self) -> int:
        return self.network.n_channels

    @property
    def max_block_size(self) -> int:
        return self.network.max_block_size

    @property
    def live_score_settings(self) -> tuple[dict[int, str] | None, float]:
        return self.network.live_score_settings

    def set_live_score(self, channel_map: dict[int, str] | None = None, score_offset_ms: float = 0.0) -> None:
        self.network.set_live_score(channel_map, score_offset_ms)

    def set_score_notes(self, notes_per_stem: Sequence[np.ndarray] | None) -> None:
        self.network.set_score_notes(notes_per_stem)

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Prepares the network, then the re-masking on top of its latency."""
        self.network.prepare(sample_rate, max_block_size, n_channels)
        powers = [float(self.remask_powers.get(s, 1.0)) for s in self.stems]
        size = live_remask_size_for(sample_rate) if self.live else remask_size_for(sample_rate)
        self._remask = StemRemask(powers, *size, n_channels, max_block_size)
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
        self.network.reset()
        self._remask.reset()
        self._notes.reset()

    def release(self) -> None:
        self.network.release()
        self.prepared = False
