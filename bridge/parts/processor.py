"""The parts Processor: audio + the score in, one stem per part of the score + a residual out.

Same four verbs and the same latency rule as ``bridge.engine.Processor``, but no network: the
masks come from ``ScoreDecomposition``, which needs no training, so it runs natively at the
host rate (no resampling term). The STFT is 4096 / 1024 at rates up to 50 kHz (8192 / 2048 up to
100 kHz, 16384 / 4096 above), so the latency is ``n_fft - 1`` samples (``stft_overlap`` +
``frame_buffering``): 4095 samples, 93 ms at 44.1 kHz and 85 ms at 48 kHz; with blocks shorter
than the hop (live), one block more (``synthesis_deferred``): a frame's masks and synthesis run
in the call after the one that decomposes it, and a template re-estimation due in a call without
a frame (``ScoreDecomposition.settle``; one with nothing else to do where blocks are under half a
hop), so no block carries a whole frame's work (``PartsSettings.split_frames``; a block longer
than ``max_block_size`` is synthesised at once). ``low_latency``
halves the window (2047 samples, 46 / 43 ms) at a cost in separation (measured on the
selection set, seed 9002: median SI-SDRi 9.1 dB with 4096, 7.9 dB with 2048, 8.1 dB with 8192).

Public API
----------
- ``PartSpec(name, is_drum=False, kit=False, program=None)``: what the processor needs of a part;
  ``spec_of(score_part)`` (a percussive GM program counts as drums: ``PERCUSSIVE_PROGRAMS``).
- ``PartsSettings``: release tails and the decomposition's knobs; ``DRUM_RELEASE_S``: drum decays;
  ``FAMILY_RELEASE_S``: pitched release tails by GM family.
- ``PartsProcessor(parts, settings=None)``:

  - ``prepare(sample_rate, max_block_size, n_channels)`` (main thread): allocate, fix
    ``latency_samples`` / ``latency_terms``.
  - ``process(audio, midi_events=()) -> BlockResult`` (the inference thread): ``audio``
    (n_channels, n_samples), any n_samples >= 0; ``midi_events`` ``(offset_samples, bytes)``
    live score messages in this block (see ``set_live_channels``). ``stems`` is
    (n_parts + 1, n_channels, n_samples), the residual last (the delayed input minus every
    part, so they sum back to it), all delayed by ``latency_samples``. No note events.
  - ``set_part_notes(notes_per_part)``: the whole score, per part (n_notes, 4)
    ``[onset_s, offset_s, pitch, velocity]`` (offline files); ``None`` for live MIDI.
  - ``set_live_channels({channel_0_based: part_index})``: which MIDI channel feeds which part; a
    program change on such a channel sets the part's program (``set_part_program``).
  - ``reset()`` (the inference thread, between streams), ``release()`` (main thread),
    ``end_notes()`` (always empty: the parts write no note events).

Output is independent of the block sizes used (templates adapt on a fixed frame schedule), to
float rounding: how many frames one call batches changes the order of the sums, and where an
unscored candidate's admission test sits on its threshold that can flip, and the templates'
adaptation carries it on (measured between 4096- and 65536-sample blocks on 20 s band
arrangements: samples up to 1.3e-3 apart without a kit, 3e-2 with the network's kit, 2e-7
without the unscored candidates; single parts' SI-SDRi 0.09 dB apart on average).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from bridge.engine import BlockResult, assemble_block, clean_block
from bridge.errors import InputError
from bridge.notes import NoteEvent
from bridge.parts.decompose import DecompositionSettings, ScoreDecomposition
from bridge.parts.gates import GateGrid, PartGates
from bridge.ring import RingBuffer
from bridge.stft import StreamingAnalysis, StreamingSynthesis

RESIDUAL = "residual"


@dataclass(frozen=True)
class PartSpec:
    """A part as the processor sees it: its stem name, whether its notes are drum-like
    (broadband templates: channel 10, or a percussive GM program, see ``spec_of``) and whether
    it is a drum kit (channel 10, which a network's ``drums`` stem separates)."""

    name: str
    is_drum: bool = False
    kit: bool = False
    program: int | None = None  # GM program 0-127 (its family sets the release tail); None: not known


# GM programs whose notes are unpitched or inharmonic hits: Agogo, Woodblock, Taiko Drum, Melodic
# Tom, Synth Drum, Reverse Cymbal and the sound effects (120-127)
PERCUSSIVE_PROGRAMS = frozenset((113, 115, 116, 117, 118, 119, *range(120, 128)))


def spec_of(part: Any) -> PartSpec:
    """The ``PartSpec`` of a score part (``name``, ``program``, ``is_drum``, as ``ScorePart``)."""
    kit, program = bool(part.is_drum), int(part.program)
    return PartSpec(part.name, kit or program in PERCUSSIVE_PROGRAMS, kit, None if kit else program)


# release tail (s) of a pitched part by GM family (program // 8): how long after a note's end its
# sound may go on. Damped and short-release families (piano, organ, guitar, bass) 0.04 s; mallets,
# pads and synth effects ring on (0.3 / 0.3 / 0.4 s), tuned percussion 0.25 s; the rest 0.15 s, the
# former single value. Chosen on the band selection set (seed 9002, 48 tracks, paired per part
# against 0.15 for every part: +0.22 dB mean, 144 parts up, 65 down; BENCHMARKS.md, stop 24).
FAMILY_RELEASE_S = (
    0.04,  # piano
    0.3,  # chromatic percussion (celesta, glockenspiel, vibraphone, bells)
    0.04,  # organ
    0.04,  # guitar
    0.04,  # bass
    0.15,  # strings
    0.15,  # ensemble
    0.15,  # brass
    0.15,  # reed
    0.15,  # pipe
    0.15,  # synth lead
    0.3,  # synth pad
    0.4,  # synth effects
    0.15,  # ethnic
    0.25,  # percussive (pitched: steel drums, timpani, melodic tom)
    0.15,  # sound effects
)


@dataclass(frozen=True)
class PartsSettings:
    """Release tails (how long after a note's end its template may still sound) and the decomposition."""

    release_s: float = 0.15  # pitched parts whose program is not known (or without ``family_release_s``)
    drum_release_s: float = 0.3  # drum notes without an entry in DRUM_RELEASE_S
    family_release_s: tuple[float, ...] | None = FAMILY_RELEASE_S  # by GM family (program // 8); None: release_s
    low_latency: bool = False  # a 46 ms window instead of 93 ms (at 44.1 kHz): half the latency, worse stems
    # blocks shorter than a hop (live): a frame's masks and synthesis, and a template re-estimation due, run in
    # the blocks after the one that decomposes it, for one block more latency; off where a later stage frames the
    # parts' output on a grid of its own (the fusion), which a latency that depends on the block size would move
    split_frames: bool = True
    decomposition: DecompositionSettings = field(default_factory=DecompositionSettings)

    def __post_init__(self) -> None:
        if self.family_release_s is not None:
            family = tuple(float(s) for s in self.family_release_s)
            if len(family) != 16 or min(family) < 0.0:
                raise ValueError(f"family_release_s must be 16 tail lengths >= 0 s, got {self.family_release_s!r}")
            object.__setattr__(self, "family_release_s", family)


# decay of GM drum sounds (s), the release tail of a drum part's pitches
DRUM_RELEASE_S = {
    **dict.fromkeys((35, 36), 0.2),  # kicks
    **dict.fromkeys((37, 38, 39, 40), 0.25),  # snares, side stick, clap
    **dict.fromkeys((42, 44), 0.12),  # closed / pedal hat
    46: 0.5,  # open hat
    **dict.fromkeys((41, 43, 45, 47, 48, 50), 0.35),  # toms
    **dict.fromkeys((49, 52, 55, 57), 1.0),  # crashes, china, splash
    **dict.fromkeys((51, 53, 59), 0.6),  # rides
}


def release_frames(parts: Sequence[PartSpec], settings: PartsSettings, frames_per_s: float) -> np.ndarray:
    """(n_parts, 128) release tails in frames: by GM family (``family_release_s``) or ``release_s``
    for pitched parts, the drum table for drums."""
    out = np.full((len(parts), 128), settings.release_s, np.float64)
    family = settings.family_release_s
    for i, p in enumerate(parts):
        if family is not None and p.program is not None and not p.is_drum:
            out[i] = family[p.program // 8]
        if p.is_drum:
            out[i] = settings.drum_release_s
            for pitch, s in DRUM_RELEASE_S.items():
                out[i, pitch] = s
    return np.rint(out * frames_per_s).astype(np.int64)


def stft_size_for(sample_rate: int, low_latency: bool = False) -> tuple[int, int]:
    """``(n_fft, hop)`` of the parts path at a host rate: about 93 ms windows (46 ms with
    ``low_latency``), hop a quarter."""
    n_fft = 4096 if sample_rate <= 50000 else 8192 if sample_rate <= 100000 else 16384
    if low_latency:
        n_fft //= 2
    return n_fft, n_fft // 4


class PartsProcessor:
    """Score-informed separation into the parts of a score; see the module docstring."""

    def __init__(self, parts: Sequence[PartSpec], settings: PartsSettings | None = None) -> None:
        if not parts:
            raise InputError("the score has no parts with notes")
        self.parts = tuple(parts)
        self.settings = settings or PartsSettings()
        self.stems: tuple[str, ...] = (*(p.name for p in self.parts), RESIDUAL)
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}
        self.n_bad_samples = 0
        self._notes: list[np.ndarray] | None = None
        self._part_of_channel: dict[int, int] = {}

    @property
    def n_parts(self) -> int:
        return len(self.parts)

    @property
    def part_of_channel(self) -> dict[int, int]:
        """Live MIDI routing as last given to ``set_live_channels`` (0-based channel -> part)."""
        return dict(self._part_of_channel)

    # ------------------------------------------------------------------ prepare / reset / release
    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Allocate buffers and fix the latency."""
        if not (isinstance(sample_rate, int) and 8000 <= sample_rate <= 768000):
            raise InputError(f"unsupported sample rate {sample_rate!r} Hz")
        if not (isinstance(n_channels, int) and 1 <= n_channels <= 64):
            raise InputError(f"unsupported channel count {n_channels!r}")
        self.sample_rate, self.n_channels = sample_rate, n_channels
        self.max_block_size = max(1, int(max_block_size))
        n_fft, hop = stft_size_for(sample_rate, self.settings.low_latency)
        self.n_fft, self.hop = n_fft, hop
        self.latency_terms = {"stft_overlap": n_fft - hop, "frame_buffering": hop - 1}
        # blocks shorter than a hop: a frame's statistics, masks and synthesis run in the call after the one that
        # fits it, so the work of one frame is split over two blocks (one block more latency)
        self._defer = self.settings.split_frames and self.max_block_size < hop
        if self._defer:
            self.latency_terms["synthesis_deferred"] = self.max_block_size
        self.latency_samples = sum(self.latency_terms.values())
        grid = GateGrid(sample_rate, n_fft, hop, self.n_parts)
        self._gates = PartGates(grid, release_frames(self.parts, self.settings, sample_rate / hop))
        self._gates.set_notes(self._notes)
        if self._part_of_channel:
            self._gates.set_live_channels(self._part_of_channel)
        self._decomp = ScoreDecomposition(
            sample_rate, n_fft, hop, [p.is_drum for p in self.parts], self.settings.decomposition
        )
        self._analysis = StreamingAnalysis(n_fft, hop, n_channels)
        self._synthesis = StreamingSynthesis(n_fft, hop, self.n_parts, n_channels)
        cap = self.latency_samples + 4 * self.max_block_size + 8 * hop + 16384
        self._stem_fifo = RingBuffer(self.n_parts * n_channels, cap)
        self._dry_fifo = RingBuffer(n_channels, self.latency_samples + 2 * self.max_block_size + 16)
        self.prepared = True
        self.reset()

    def reset(self) -> None:
        """Inference thread, between streams. Clear all state; latency is unchanged."""
        if not self.prepared:
            raise RuntimeError("PartsProcessor.prepare() must be called first")
        self._analysis.reset()
        self._synthesis.reset()
        self._gates.reset()
        self._decomp.reset()
        self._stem_fifo.clear()
        self._stem_fifo.fill_zeros(self.latency_samples)
        self._pending: np.ndarray | None = None  # spectra (T, C, F) of the frames started, to finish and synthesise
        self._dry_fifo.clear()
        self._dry_fifo.fill_zeros(self.latency_samples)
        self._n_in = 0
        self.n_bad_samples = 0

    def end_notes(self) -> list[NoteEvent]:
        """No note events come from the parts (their notes are the score's): always empty."""
        return []

    def release(self) -> None:
        """Main thread. prepare() must be called again before use."""
        self.prepared = False

    # ------------------------------------------------------------------ score
    def set_part_notes(self, notes_per_part: Sequence[np.ndarray] | None) -> None:
        """Whole score (offline): per part an (n_notes, 4) array; ``None``: live MIDI."""
        if notes_per_part is not None and len(notes_per_part) != self.n_parts:
            raise ValueError(f"{len(notes_per_part)} note lists for {self.n_parts} parts")
        self._notes = None if notes_per_part is None else [np.asarray(n, np.float64) for n in notes_per_part]
        if self.prepared:
            self._gates.set_notes(self._notes)

    def set_part_program(self, part: int, program: int) -> None:
        """Live (a program change): part ``part`` plays GM ``program`` from now on, as ``spec_of``
        files it: a percussive program makes it a drum part (broadband templates, drum release
        tails), any other a pitched one with its family's release tail. A kit part stays a kit."""
        old = self.parts[part]
        spec = old if old.kit else replace(old, is_drum=int(program) in PERCUSSIVE_PROGRAMS, program=int(program))
        if spec == old:
            return
        self.parts = tuple(spec if i == part else p for i, p in enumerate(self.parts))
        if self.prepared:
            self._gates.release_frames[part] = release_frames((spec,), self.settings, self.sample_rate / self.hop)[0]
            if spec.is_drum != old.is_drum:
                self._flush()  # the frames decomposed before the change are finished as they were
                self._decomp.set_drum(part, spec.is_drum)

    def set_live_channels(self, part_of_channel: Mapping[int, int]) -> None:
        """Live MIDI: 0-based channel -> part index."""
        self._part_of_channel = {int(c): int(p) for c, p in part_of_channel.items()}
        if self.prepared:
            self._gates.set_live_channels(self._part_of_channel)

    # ------------------------------------------------------------------ process
    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n_samples) -> BlockResult (parts + residual) delayed by latency_samples."""
        if not self.prepared:
            raise RuntimeError("PartsProcessor.prepare() must be called first")
        x, n_bad = clean_block(audio, self.n_channels)
        self.n_bad_samples += n_bad
        n = x.shape[1]
        deferred = self._flush()  # the frames the last call decomposed: masks and samples
        for offset, msg in midi_events:
            self._gates.live.push(self._n_in + min(max(int(offset), 0), max(n - 1, 0)), msg)
            if len(msg) >= 2 and msg[0] & 0xF0 == 0xC0 and msg[0] & 0x0F in self._part_of_channel:
                self.set_part_program(self._part_of_channel[msg[0] & 0x0F], msg[1] & 0x7F)
        self._n_in += n

        spectra = self._analysis.push(x)  # (T, C, F)
        n_frames = spectra.shape[0]
        # a template re-estimation due runs in a call without a frame: one with nothing else to do, or the last
        # before the next frame (blocks of half a hop or more have no idle call between frames)
        if not n_frames and (not deferred or self._analysis.n_pending + self.max_block_size >= self.hop):
            self._decomp.settle()
        if n_frames:
            first = self._analysis.n_frames_done - n_frames
            mag = np.abs(spectra.mean(axis=1))  # (T, F) channel-mean magnitude
            gates, tails = self._gates.rows_and_tails(first, n_frames)
            self._decomp.start(mag, gates, first, tails)
            if self._defer and n <= self.max_block_size:  # (a longer block than announced: at once, in time)
                self._pending = spectra
            else:
                self._synthesise(self._decomp.finish(), spectra)  # masks (T, P, F)

        return BlockResult(stems=assemble_block(x, self._dry_fifo, self._stem_fifo, self.n_parts))

    def _flush(self) -> bool:
        """Finish and synthesise the frames a previous call decomposed, if any (whether there were)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        self._synthesise(self._decomp.finish(), pending)
        return True

    def _synthesise(self, masks: np.ndarray, spectra: np.ndarray) -> None:
        """masks (T, P, F), spectra (T, C, F) -> the parts' samples of those frames, into the stem FIFO."""
        out = self._synthesis.push(masks[:, :, None, :] * spectra[:, None, :, :])  # (P, C, n)
        self._stem_fifo.write(np.ascontiguousarray(out.reshape(self.n_parts * self.n_channels, -1)))
