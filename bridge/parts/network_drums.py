"""Parts with the network's drums: a score's drum kit part half from the trained network.

The parts decomposition separates a drum kit with a few percussive templates gated by the
score; the trained network has heard many kits but no template of this one. Their errors differ,
so ``NetworkDrumParts`` runs both on the same blocks and takes their mean for the kit part (the
channel-10 part): every other part is the decomposition's, and ``residual`` is the delayed input
minus all parts, so the files still sum back to the input. Selection set (seed 9002, band
arrangements 1-32 with their true score, the 19 with one kit part; BENCHMARKS.md): kit part
median SI-SDRi +8.86 dB from the decomposition, +11.14 from the network alone, +11.37 from their
mean (19 of 19 kits better than the decomposition, mean +2.04 dB; weights 0.3 / 0.7 on the
network: +10.45 / +11.84 median, +1.43 / +1.81 mean, measured before the kit's keys were mapped
onto the network's drum classes, which moved the mean from +10.85 to +11.01). The network hears the kit part's notes as
its ``drums`` score and every other stem empty (that read better than the whole score by class,
+11.14 against +10.61 median, or none, +10.48): offline from ``set_part_notes``, live from the
MIDI on the kit's channel (``set_live_channels``). The two run side by side, the faster delayed
to the slower: the network's latency (2047 samples at 44.1 kHz, 2252 at 48 kHz) is under the
parts' (4095), so nothing is added; with ``low_latency`` parts (2047) at 48 / 96 kHz the network
adds 205 / 409 samples (``latency_terms["network_alignment"]``), or fewer where live blocks shorter
than the parts' hop add one block to the parts' own (``PartsSettings.split_frames``).

Only a score with exactly one kit part takes the network (two kits would need the network's
stem split between them; they keep the decomposition, as do percussive GM programs outside
channel 10, which the network does not count as drums); ``parts_runner`` returns the plain
``PartsProcessor`` otherwise.

Public API
----------
- ``NetworkDrumParts(parts, settings, model)``: the ``PartsProcessor`` verbs and attributes
  (``stems`` = parts + ``residual``, ``parts``, ``latency_samples``, ``latency_terms``,
  ``set_part_notes``, ``set_live_channels``, ``part_of_channel``), with ``model`` a
  ``bridge.engine.Processor`` whose metadata has a ``drums`` stem.
- ``one_kit(parts) -> bool``: whether ``parts`` have exactly one kit part (what the network takes).
- ``parts_runner(parts, settings=None, model=None) -> PartsProcessor | NetworkDrumParts``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from bridge.engine import BlockResult, Processor, clean_block
from bridge.instruments import DRUM_CLASS_OF
from bridge.parts.processor import PartSpec, PartsProcessor, PartsSettings
from bridge.ring import RingBuffer

DRUMS = "drums"
NO_STEM = "-"  # live: the channels the network must not hear
NETWORK_WEIGHT = 0.5  # the kit part = this much of the network's drums + the rest of the decomposition's


class NetworkDrumParts:
    """A score's parts with its one drum kit part half from the network; see the module docstring."""

    def __init__(self, parts: Sequence[PartSpec], settings: PartsSettings | None, model: Processor) -> None:
        self._parts = PartsProcessor(parts, settings)
        self.parts = self._parts.parts
        self.settings = self._parts.settings
        self.stems = self._parts.stems
        if not one_kit(self.parts) or DRUMS not in model.meta.stems:
            raise ValueError("NetworkDrumParts needs exactly one drum kit part and a network with a drums stem")
        self.drum_part = next(k for k, p in enumerate(self.parts) if p.kit)
        self.model = model
        self._drum_stem = list(model.meta.stems).index(DRUMS)
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}
        self._model_score: list[np.ndarray] | None = None

    @property
    def n_parts(self) -> int:
        return self._parts.n_parts

    @property
    def n_bad_samples(self) -> int:
        return self._parts.n_bad_samples

    @property
    def sample_rate(self) -> int:
        return self._parts.sample_rate

    @property
    def n_channels(self) -> int:
        return self._parts.n_channels

    @property
    def max_block_size(self) -> int:
        return self._parts.max_block_size

    @property
    def part_of_channel(self) -> dict[int, int]:
        return self._parts.part_of_channel

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Prepare both; the faster path is delayed to the slower one."""
        self._parts.prepare(sample_rate, max_block_size, n_channels)
        self.model.prepare(sample_rate, max_block_size, n_channels)
        self.model.set_score_notes(self._model_score)
        lp, lm = self._parts.latency_samples, self.model.latency_samples
        self.latency_samples = max(lp, lm)
        self.latency_terms = dict(self._parts.latency_terms)
        if lm > lp:
            self.latency_terms["network_alignment"] = lm - lp
        cap = self.latency_samples + 2 * max(1, int(max_block_size)) + 16
        self._parts_ring = RingBuffer(self.n_parts * n_channels, cap)
        self._drums_ring = RingBuffer(n_channels, cap)
        self._dry = RingBuffer(n_channels, cap)
        self.prepared = True
        self._reset_own()

    def _reset_own(self) -> None:
        for ring, delay in (
            (self._parts_ring, self.latency_samples - self._parts.latency_samples),
            (self._drums_ring, self.latency_samples - self.model.latency_samples),
            (self._dry, self.latency_samples),
        ):
            ring.clear()
            ring.fill_zeros(delay)

    def reset(self) -> None:
        """Inference thread, between streams."""
        self._parts.reset()
        self.model.reset()
        self._reset_own()

    def release(self) -> None:
        self._parts.release()
        self.model.release()
        self.prepared = False

    def end_notes(self) -> list:
        """As ``PartsProcessor.end_notes``: the parts' notes are the score's (always empty)."""
        return []

    def set_part_notes(self, notes_per_part: Sequence[np.ndarray] | None) -> None:
        """As ``PartsProcessor.set_part_notes``: whole score per part (offline) or ``None`` (live
        MIDI). The network hears the kit part's notes as its ``drums`` score, every other stem empty."""
        self._parts.set_part_notes(notes_per_part)
        if notes_per_part is None:
            self._model_score = None
        else:
            self._model_score = [np.zeros((0, 4)) for _ in self.model.meta.stems]
            self._model_score[self._drum_stem] = drum_classes(notes_per_part[self.drum_part])
        if self.prepared:
            self.model.set_score_notes(self._model_score)

    def set_live_channels(self, part_of_channel: Mapping[int, int]) -> None:
        """Live MIDI: 0-based channel -> part index; the drum part's channels reach the network."""
        self._parts.set_live_channels(part_of_channel)
        kit = {int(c) for c, k in part_of_channel.items() if int(k) == self.drum_part}
        # every other channel to a name that is no stem: its notes are dropped, as offline
        channel_map = {c: DRUMS if c in kit else NO_STEM for c in range(16)}
        self.model.set_live_score(channel_map, self.model.live_score_settings[1])

    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n) -> parts + residual (n_parts + 1, n_channels, n), delayed by latency_samples."""
        events = list(midi_events)
        p = self._parts.process(audio, events)  # counts the input's non-finite samples
        m = self.model.process(audio, events)
        x, _ = clean_block(audio, self.n_channels)
        c, n = x.shape
        self._parts_ring.write(np.ascontiguousarray(p.stems[:-1].reshape(self.n_parts * c, n)))
        self._drums_ring.write(m.stems[self._drum_stem])
        self._dry.write(x)
        stems = np.empty((self.n_parts + 1, c, n), np.float32)
        self._parts_ring.read(n, stems[:-1].reshape(self.n_parts * c, n))
        net = np.empty((c, n), np.float32)
        self._drums_ring.read(n, net)
        stems[self.drum_part] *= 1.0 - NETWORK_WEIGHT
        stems[self.drum_part] += NETWORK_WEIGHT * net
        self._dry.read(n, stems[-1])
        stems[-1] -= stems[:-1].sum(axis=0)
        return BlockResult(stems=stems)


def one_kit(parts: Sequence[PartSpec]) -> bool:
    """Whether ``parts`` hold exactly one drum kit part (``PartSpec.kit``), the one the network takes."""
    return sum(p.kit for p in parts) == 1


def drum_classes(notes: np.ndarray) -> np.ndarray:
    """A kit part's notes (n, 4) with their GM percussion keys mapped onto the drum classes the
    network knows (``instruments.DRUM_CLASS_OF``; unmapped keys dropped), as a live score maps them."""
    notes = np.asarray(notes, np.float64).reshape(-1, 4)
    mapped = np.array([DRUM_CLASS_OF.get(int(p), -1) for p in notes[:, 2]], np.float64)
    out = notes[mapped >= 0].copy()
    out[:, 2] = mapped[mapped >= 0]
    return out


def parts_runner(
    parts: Sequence[PartSpec], settings: PartsSettings | None = None, model: Processor | None = None
) -> PartsProcessor | NetworkDrumParts:
    """The parts separation for ``parts``: with a network and exactly one drum kit part
    (``PartSpec.kit``), ``NetworkDrumParts``; else the decomposition alone."""
    if model is not None and DRUMS in model.meta.stems and one_kit(parts):
        return NetworkDrumParts(parts, settings, model)
    return PartsProcessor(parts, settings)
