"""Class stems from a score's parts: each part counted in the class stem of its GM program.

With a score, the parts decomposition (``PartsProcessor``) separates far better than the
score-conditioned network on timbres it was not trained on (``bench/quality.py``: the "parts ->
classes" row against "model + score"). ``ScoredClasses`` runs both on the same blocks, side by
side (the faster delayed to the slower: at 44.1 kHz the parts' 4095 samples): every class stem
is the sum of the part stems of that class (``instruments.stem_for_program``) blended with a
share of the score-conditioned network's own stem (``NETWORK_SHARE``: drums 0.5, bass 0.25,
piano 0.25, guitar 0.1): the two err differently, so the blend beats either (selection set, seed
9002, 48 tracks, true score: bass +6.52 -> +7.06, piano +6.54 -> +8.18 dB median with the shares;
strings lose with any share and take none). A score without a drum part gets half the network's
drums in ``drums``, the rest in ``other``. ``other`` is the delayed input minus the rest, so the
stems sum back to the input. Notes are the network's (with the score).

With ``fusion`` (what ``separate --score`` and ``run --classes-from fused`` use: ``FUSION_EXPONENT``),
the stems it lists and the remainder are instead fused with the network's by magnitude in the
parts' STFT (``bridge.parts.fusion``), after the blend, at the cost of one more STFT window of
latency (4095 samples at 44.1 kHz); the others (drums) stay linear blends.

Stems listed in ``model_stems`` come from the network alone, and those of them in
``SUBTRACTED_STEMS`` are taken out of the input before the parts decomposition sees it (the
parts then run on the network's output, so the latencies add up: 2047 + 4095 samples at 44.1
kHz); ``blind_stems`` among them come from a second run of the network without the score. The
transcription's parts use that for drums (``bridge.transcribe``: a transcription has no drum
part, and the kick and cymbals would compete with the pitched parts' combs). With a score they
did too until stop 24; the kit part half from the network (drums 0.5 above), nothing subtracted,
with the score parts' own settings (``class_parts_settings``) reads better (selection set, 48
tracks, paired per stem: drums +0.82, bass +0.23, piano +0.04, guitar +0.10, strings -0.10,
other +0.57 dB; BENCHMARKS.md) and needs 46 ms less latency.

Live (``stembridge run --classes-from parts``), ``ScoredClasses.live`` takes the score as MIDI:
one part per MIDI channel, counted in the class stem its channel gives the network's live score
(the channel map, else channel 10 drums, else the channel's program changes), its notes from the
MIDI on that channel. The same blocks then give the same stems as offline; the latency is the
parts' (93 ms at 44.1 kHz, and one block more with blocks shorter than their hop: ``PartsSettings.split_frames``;
186 ms with ``fusion``, ``run --classes-from fused``, which keeps its frames whole). Live and
offline, the parts get the notes at score time.

Public API
----------
- ``MODEL_STEMS``: class stems taken from the network alone (none with a score).
- ``SUBTRACTED_STEMS``: those of the network stems taken alone that are removed from the parts' input.
- ``NETWORK_SHARE``: {stem: share of the network's stem in that class stem from the parts}.
- ``class_parts_settings(low_latency=False)``: the parts' settings the class stems use by default;
  ``transcribed_parts_settings(low_latency=False)``: those for a transcription's parts.
- ``ScoredClasses(model, parts, model_stems=MODEL_STEMS, settings=None, blind_stems=(),
  subtracted_stems=SUBTRACTED_STEMS, network_share=NETWORK_SHARE, fusion=None,
  remask=None)`` (those of ``model_stems`` in ``subtracted_stems`` are subtracted; ``network_share`` applies
  to the stems from the parts; ``fusion`` {stem: the network's exponent} fuses those stems,
  ``bridge.parts.fusion``; ``remask`` {stem: mask power, 1 where not named} re-masks the finished stems
  from their sum, ``StemRemask``, at the cost of its long window's latency): the
  ``Processor`` verbs ``prepare`` / ``process`` / ``reset`` / ``release`` / ``end_notes``, ``stems`` and
  ``meta`` of the network (``other`` last), for a score known in advance (offline files).
- ``ScoredClasses.live(model, channel_map=None, settings=None, **kwargs)`` (``fusion=`` among
  them): the same for a score arriving as live MIDI (``process(audio, midi_events)``), with the
  network's live score set to the same channel map; ``channel_map`` 0-based channel -> stem, as
  ``Processor.set_live_score``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np

from bridge.engine import BlockResult, NoteDelay, Processor, clean_block
from bridge.instruments import DRUM_CHANNEL, stem_for_program
from bridge.notes import NoteEvent
from bridge.parts.decompose import DecompositionSettings
from bridge.parts.fusion import REMAINDER_EXPONENT, StemFusion, StemRemask, remask_powers, remask_size_for
from bridge.parts.processor import PartsProcessor, PartsSettings, spec_of, stft_size_for
from bridge.parts.score_parts import ScorePart
from bridge.ring import RingBuffer

# no class stem comes from the network alone when a score is given: the drums are half the network's and half
# the parts' kit (seed 9002, 48 tracks, true score: drums +0.82 dB paired against the network's drums subtracted
# from the parts' input, which the transcription's parts still use: ``bridge.transcribe``)
MODEL_STEMS: tuple[str, ...] = ()
SUBTRACTED_STEMS = ("drums",)
# measured on seed 9002 (48 tracks, true score), shares 0 / 0.1 / 0.2 / 0.25 / 0.3 / 0.4 / 0.5 of the network;
# with nothing subtracted (stop 24) again for drums 0.35 / 0.5 / 0.65, bass 0.15 / 0.25 / 0.4, piano 0 / 0.1 / 0.25 /
# 0.4, guitar 0.1 / 0.25, strings 0 / 0.1
NETWORK_SHARE = {"drums": 0.5, "bass": 0.25, "piano": 0.25, "guitar": 0.1}
N_MIDI_CHANNELS = 16


def class_parts_settings(low_latency: bool = False) -> PartsSettings:
    """The parts' settings for class stems from a score: those of a score's parts (``PartsSettings``),
    release tails by GM family and neighbouring pitches as candidates for notes the score missed
    included (selection set, seed 9002, 48 tracks, nothing subtracted: paired +0.18 / +0.08 /
    +0.30 / +0.16 dB on bass / piano / guitar / other against one tail and no neighbours;
    BENCHMARKS.md, stop 24)."""
    return PartsSettings(low_latency=low_latency)


def transcribed_parts_settings(low_latency: bool = False) -> PartsSettings:
    """The parts' settings for class stems from a transcription (``bridge.transcribe``): one release
    tail for every part, since a transcribed note ends where the sound does (family tails, selection
    set, paired: piano -0.10, guitar -0.12, bass +0.12, strings +0.15 dB), and no neighbouring
    pitches as candidates for missed notes (held out, seed 9001, 48 tracks: blind +3.41 -> +3.26
    dB with them; BENCHMARKS.md, stops 19 and 24)."""
    return PartsSettings(
        low_latency=low_latency, family_release_s=None, decomposition=DecompositionSettings(unscored_semitones=0)
    )


class BlindNetwork(Protocol):
    """What ``ScoredClasses`` runs its blind stems through: a ``Processor``, or one shared by several runners
    (``bridge.parts.share_ensemble``)."""

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None: ...

    def reset(self) -> None: ...

    def release(self) -> None: ...

    def process(self, audio: np.ndarray) -> BlockResult: ...


class ScoredClasses:
    """Class stems from score parts (and the network where it is better); see the module docstring."""

    def __init__(
        self,
        model: Processor,
        parts: Sequence[ScorePart],
        model_stems: Sequence[str] = MODEL_STEMS,
        settings: PartsSettings | None = None,
        blind_stems: Sequence[str] = (),
        subtracted_stems: Sequence[str] = SUBTRACTED_STEMS,
        network_share: Mapping[str, float] = NETWORK_SHARE,
        fusion: Mapping[str, float] | None = None,
        remask: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.meta = model.meta
        self.stems = model.stems
        self.parts = tuple(parts)
        self.model_stems = tuple(s for s in model_stems if s in self.meta.stems)
        settings = settings or class_parts_settings()
        if fusion or remask is not None:  # a fixed frame grid on the parts' output: their latency must not
            settings = replace(settings, split_frames=False)  # depend on the block (else neither is invariant)
        self._parts = PartsProcessor([spec_of(p) for p in self.parts], settings)
        # class stem index of every part (-1: `other`, or a class the network provides)
        predicted = list(self.meta.stems)
        self._class_of_part = [self._class_index(stem_for_program(p.program, p.is_drum)) for p in self.parts]
        self._live_map: dict[int, str] | None = None  # live MIDI: the channel map (``live``)
        blind = set(blind_stems) & set(self.model_stems)
        self._from_model = [i for i, s in enumerate(predicted) if s in self.model_stems and s not in blind]
        self._from_blind = [i for i, s in enumerate(predicted) if s in blind]
        self._subtracted = [i for i, s in enumerate(predicted) if s in self.model_stems and s in subtracted_stems]
        # the network's share of every class stem's linear blend (1: the network's alone)
        self._share = np.array(
            [1.0 if s in self.model_stems else max(0.0, float(network_share.get(s, 0.0))) for s in predicted],
            np.float32,
        )
        # stems fused by magnitude with the network's (``bridge.parts.fusion``), the remainder last
        self.fusion = dict(fusion) if fusion else None  # as given (plain data: the live worker's spec)
        fusion = dict(fusion or {})
        self._fused = [i for i, s in enumerate(predicted) if s in fusion and s not in self.model_stems]
        self._linear = [i for i in range(len(predicted)) if i not in self._fused]
        self._exponents = [float(fusion[predicted[i]]) for i in self._fused] + [REMAINDER_EXPONENT]
        self._fusion: StemFusion | None = None
        # the finished stems re-masked from their sum (``bridge.parts.fusion.StemRemask``): {stem: mask power}
        self.remask = dict(remask) if remask is not None else None
        self._remask_powers = None if remask is None else remask_powers(remask, (*self.meta.stems, "other"))
        self._remask: StemRemask | None = None
        # those stems from a second run of the same network without the score (a score known to lack
        # a class, as a transcription lacks drums, would otherwise tell the network that it is silent)
        self.blind: BlindNetwork | None = None
        if self._from_blind:  # its stems only: its notes are never read
            self.blind = Processor(model.model)
            self.blind.decode_notes = False
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}

    @classmethod
    def live(
        cls,
        model: Processor,
        channel_map: Mapping[int, str] | None = None,
        settings: PartsSettings | None = None,
        **kwargs,
    ) -> ScoredClasses:
        """Class stems from parts whose notes arrive as live MIDI: one part per MIDI channel (0-based
        ``channel_map``: channel -> stem, as the network's live score, which this sets)."""
        if kwargs.get("remask") is not None:  # a 0.37 s window, and the live worker's spec does not carry it
            raise ValueError("remask is for files (offline) only, not for live parts")
        empty = np.zeros((0, 4))
        parts = [
            ScorePart(f"ch{c + 1}", f"ch{c + 1}", c, c, 0, c == DRUM_CHANNEL, empty) for c in range(N_MIDI_CHANNELS)
        ]
        self = cls(model, parts, settings=settings, **kwargs)
        self._live_map = {int(c): str(s) for c, s in (channel_map or {}).items()}
        model.set_live_score(self._live_map or None, model.live_score_settings[1])
        self._parts.set_live_channels({c: c for c in range(N_MIDI_CHANNELS)})
        self._parts.set_part_notes(None)
        self._live_classes()
        return self

    def _class_index(self, stem: str) -> int:
        """The class stem index a part of ``stem`` adds to (-1: `other`, or a stem from the network)."""
        predicted = list(self.meta.stems)
        return predicted.index(stem) if stem in predicted and stem not in self.model_stems else -1

    def _live_classes(self, programs: Sequence[int] | None = None) -> None:
        """Live: each channel's class as the network's live score files it (``score._NoteTracker``),
        and whether its part is a drum part."""
        assert self._live_map is not None
        programs = programs if programs is not None else [0] * N_MIDI_CHANNELS
        self._programs = list(programs)
        for c in range(N_MIDI_CHANNELS):
            if c in self._live_map:
                stem = self._live_map[c]
            else:
                stem = stem_for_program(self._programs[c], c == DRUM_CHANNEL)
            self._class_of_part[c] = self._class_index(stem)
            # as ``spec_of`` files a score part: channel 10 is the kit, a percussive program a drum part
            self._parts.set_part_program(c, self._programs[c])

    def set_live_score(self, channel_map: Mapping[int, str] | None = None, score_offset_ms: float = 0.0) -> None:
        """Main thread, live: as ``Processor.set_live_score``; the parts follow the same channel map
        and offset (a negative offset reaches the parts undelayed)."""
        self.model.set_live_score(None if channel_map is None else dict(channel_map), score_offset_ms)
        if self._live_map is not None:
            self._live_map = {int(c): str(st) for c, st in (channel_map or {}).items()}
            self._live_classes(self._programs)

    @property
    def live_score_settings(self) -> tuple[dict[int, str] | None, float]:
        return self.model.live_score_settings

    @property
    def is_live(self) -> bool:
        """Whether the parts' notes come from live MIDI (``live``)."""
        return self._live_map is not None

    @property
    def settings(self) -> PartsSettings:
        return self._parts.settings

    @property
    def max_block_size(self) -> int:
        return self.model.max_block_size

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def n_channels(self) -> int:
        return self.model.n_channels

    @property
    def n_bad_samples(self) -> int:
        return self.model.n_bad_samples

    def set_score_notes(self, notes_per_stem: Sequence[np.ndarray] | None) -> None:
        """The network's score (per class stem), as ``Processor.set_score_notes``."""
        self.model.set_score_notes(notes_per_stem)

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Prepare both paths: the parts after the network where stems are subtracted,
        else side by side with the faster one delayed to the slower one."""
        self.model.prepare(sample_rate, max_block_size, n_channels)
        if self.blind is not None:  # the same network and rate: the same latency
            self.blind.prepare(sample_rate, max_block_size, n_channels)
        self._parts.prepare(sample_rate, max_block_size, n_channels)
        lm, lp = self.model.latency_samples, self._parts.latency_samples
        self.latency_terms = dict(self.model.latency_terms)
        if self._subtracted:  # the parts see the input the network's stems came from, minus them
            self.latency_samples = lm + lp
            self.latency_terms["parts_after_network"] = lp
            self._input_delay, self._model_delay, self._parts_delay = lm, lp, 0
        else:
            self.latency_samples = max(lm, lp)
            if lp > lm:
                self.latency_terms["parts_alignment"] = lp - lm
            self._input_delay, self._model_delay, self._parts_delay = (
                0,
                self.latency_samples - lm,
                self.latency_samples - lp,
            )
        n_pred = len(self.meta.stems)
        self._fusion = None
        if self._fused:  # after the blend: its STFT's latency on top (the parts' frames)
            n_fft, hop = stft_size_for(sample_rate, self.settings.low_latency)
            self._fusion = StemFusion(self._exponents, n_fft, hop, n_channels, max_block_size)
            self.latency_terms["stem_fusion"] = self._fusion.latency_samples
        cap = self.latency_samples + 2 * max(1, int(max_block_size)) + 16
        self._remask = None
        if self._remask_powers is not None:  # last: its long window's latency on top of everything
            self._remask = StemRemask(self._remask_powers, *remask_size_for(sample_rate), n_channels, max_block_size)
            self.latency_terms["stem_remask"] = self._remask.latency_samples
        self._model_ring = RingBuffer(n_pred * n_channels, cap)
        self._parts_ring = RingBuffer(n_pred * n_channels, cap)
        self._parts_in = RingBuffer(n_channels, cap)
        self._dry = RingBuffer(n_channels, cap)
        self._blend_latency = self.latency_samples  # where the linear blend is ready
        self._notes_delay = self._model_delay
        if self._fusion is not None:  # the linear stems and the input, delayed to the fused ones
            self._late = RingBuffer((len(self._linear) + 1) * n_channels, self._fusion.latency_samples + cap)
            self.latency_samples += self._fusion.latency_samples
            self._notes_delay += self._fusion.latency_samples
        if self._remask is not None:
            self.latency_samples += self._remask.latency_samples
            self._notes_delay += self._remask.latency_samples
        self.prepared = True
        self._reset_own()

    def _reset_own(self) -> None:
        for ring, delay in (
            (self._model_ring, self._model_delay),
            (self._parts_ring, self._parts_delay),
            (self._parts_in, self._input_delay),
            (self._dry, self._blend_latency),
        ):
            ring.clear()
            ring.fill_zeros(delay)
        if self._fusion is not None:
            self._fusion.reset()
            self._late.clear()
            self._late.fill_zeros(self._fusion.latency_samples)
        if self._remask is not None:
            self._remask.reset()
        self._notes = NoteDelay(self._notes_delay)  # the network's notes, timed to the class stems
        self._n_out = 0
        self._midi: list[tuple[int, bytes]] = []  # live: score MIDI for the parts, absolute input samples
        if self._live_map is not None:
            self._live_classes()
            self._parts.set_part_notes(None)
        else:  # at score time: where stems are subtracted, the network's latency ahead of the parts' input
            self._parts.set_part_notes([p.notes for p in self.parts])

    def reset(self) -> None:
        """Inference thread, between streams."""
        self.model.reset()
        if self.blind is not None:
            self.blind.reset()
        self._parts.reset()
        self._reset_own()

    def release(self) -> None:
        self.model.release()
        if self.blind is not None:
            self.blind.release()
        self._parts.release()
        self.prepared = False

    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n) -> class stems (network order, ``other`` last) delayed by latency_samples."""
        events = list(midi_events)
        m = self.model.process(audio, events)  # counts the input's non-finite samples
        audio, _ = clean_block(audio, self.n_channels)  # NaN / Inf never reach the parts or `other`
        n, c = audio.shape[1], self.n_channels
        n_pred = len(self.meta.stems)
        network = np.array(m.stems[:-1], np.float32)  # every stem of the network, the blind run's where it serves
        if self.blind is not None:
            network[self._from_blind] = self.blind.process(audio).stems[self._from_blind]
        self._parts_in.write(audio)
        parts_in = np.empty((c, n), np.float32)
        self._parts_in.read(n, parts_in)  # aligned with the network's stems where they are subtracted
        if self._subtracted:
            parts_in -= network[self._subtracted].sum(axis=0)
        p = self._parts.process(parts_in, self._parts_midi(events, n))
        classes = np.zeros_like(network)
        for k, cls in enumerate(self._class_of_part):
            if cls >= 0:
                classes[cls] += p.stems[k]
        self._parts_ring.write(classes.reshape(n_pred * c, n))
        self._model_ring.write(network.reshape(n_pred * c, n))
        self._dry.write(audio)
        a = np.empty((n_pred * c, n), np.float32)
        b = np.empty((n_pred * c, n), np.float32)
        self._parts_ring.read(n, a)
        self._model_ring.read(n, b)
        dry = np.empty((c, n), np.float32)
        self._dry.read(n, dry)
        parts, net = a.reshape(n_pred, c, n), b.reshape(n_pred, c, n)
        if self._fusion is not None:
            stems = self._fuse(parts, net, dry)
        else:
            stems = np.empty((n_pred + 1, c, n), np.float32)
            stems[:-1] = self._blend(parts, net, slice(None))
            stems[-1] = dry - stems[:-1].sum(axis=0)
        if self._remask is not None:
            stems = self._remask.process(stems)
        self._n_out += n
        return BlockResult(stems=stems, notes=self._notes.process(m.notes, n), activity=m.activity)

    def _blend(self, parts: np.ndarray, network: np.ndarray, rows: slice | list[int]) -> np.ndarray:
        """The linear blend of the class stems ``rows`` of parts / network (n_pred, c, n)."""
        share = self._share[rows, None, None]
        return (1.0 - share) * parts[rows] + share * network[rows]

    def _fuse(self, parts: np.ndarray, network: np.ndarray, dry: np.ndarray) -> np.ndarray:
        """The fused stems (``bridge.parts.fusion``) beside the linear blends of the others, delayed
        by the fusion's latency: parts / network (n_pred, c, n) the two estimates, dry (c, n) the
        input, all aligned -> (n_pred + 1, c, n), ``other`` last. Only the linear stems and the
        input go through the delay."""
        assert self._fusion is not None
        n_pred, c, n = parts.shape
        fused, lin = self._fused, self._linear
        linear = self._blend(parts, network, lin)  # (len(lin), c, n)
        # each estimate's remainder: the input minus every class stem it gives (network-only stems
        # count in the parts' estimate as in its blend)
        model_only = self._share >= 1.0
        parts_rem = dry - np.where(model_only[:, None, None], network, parts).sum(axis=0)
        network_rem = dry - network.sum(axis=0)
        target = dry - linear.sum(axis=0)  # what the fused stems and the remainder share
        out = self._fusion.process(
            np.concatenate([parts[fused], parts_rem[None]]), np.concatenate([network[fused], network_rem[None]]), target
        )
        n_late = len(lin) + 1
        late = np.empty((n_late * c, n), np.float32)
        self._late.write(np.concatenate([linear, dry[None]]).reshape(n_late * c, n))
        self._late.read(n, late)
        late = late.reshape(n_late, c, n)
        stems = np.empty((n_pred + 1, c, n), np.float32)
        stems[lin], stems[fused] = late[:-1], out
        stems[-1] = late[-1] - stems[:-1].sum(axis=0)
        return stems

    def _parts_midi(self, events: list[tuple[int, bytes]], n: int) -> list[tuple[int, bytes]]:
        """Live: this block's score MIDI for the parts (offsets in the block; delayed by a positive
        score offset only, as offline the parts get the notes at score time); program changes move a
        channel's part to another class."""
        if self._live_map is None:
            return []
        start = self._n_out  # input samples so far (this block's first sample)
        delay = max(0, round(self.model.live_score_settings[1] * self.model.sample_rate / 1000.0))
        for at, msg in events:
            msg = bytes(msg)
            if len(msg) >= 2 and msg[0] & 0xF0 == 0xC0:
                self._programs[msg[0] & 0x0F] = msg[1] & 0x7F
                self._live_classes(self._programs)
            self._midi.append((start + int(at) + delay, msg))
        due = [(t - start, msg) for t, msg in self._midi if t < start + n]
        self._midi = [(t, msg) for t, msg in self._midi if t >= start + n]
        return due

    def end_notes(self) -> list[NoteEvent]:
        """Every pending and held network note, offsets relative to the next block (>= 0)."""
        return self._notes.end(self.model.end_notes())
