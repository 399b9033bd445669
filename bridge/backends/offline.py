"""Offline backend: audio files in, latency-compensated stems and a notes MIDI file out.

Public API
----------
- ``separate_file(processor, in_path, out_dir, block_size, fmt, score_path=None, progress=None,
  stems_from_parts=True, transcriber=None, fusion=FUSION_EXPONENT, network_remask=None) -> SeparateResult``: stream
  one file through a prepared-on-demand ``Processor`` (with a score: its class stems from the score's parts, see
  ``bridge.parts.classes``; without one, with a ``bridge.transcribe.Transcriber``: from the
  parts of the file's own transcription, whose notes are then the pitched stems' notes, separated once per
  membership share of the transcriber's ``shares`` and averaged, ``bridge.parts.share_ensemble``; the network's
  stems alone re-masked by ``network_remask``, ``bridge.remasked``) and write
  ``out_dir/<stem>.<fmt>`` (same rate, channels and length as the input, shifted back by the
  processor's latency so the stems line up with the input) and ``out_dir/notes.mid``.
- ``separate_parts_file(parts, in_path, out_dir, block_size, fmt, progress=None, settings=None,
  model=None) -> SeparateResult``: the same for the parts of a score (``bridge.parts``): one stem
  per part plus ``residual``, and the parts' notes in ``notes.mid``; with a network ``model``, a
  score's one drum kit part is the network's drums (``bridge.parts.network_drums``).

Interrupted runs (Ctrl-C, SIGTERM, a full disk, a read error) close every stem file first,
so what was written so far stays a valid WAV/FLAC, then write the notes found so far to
``notes.mid`` (atomically: a complete file or none) unless the output folder is gone, and
re-raise. A rerun into the same folder overwrites: the stem files are truncated when the run
opens them and a ``notes.mid`` of an earlier run is removed then, so after any run, finished or
not, every file in the folder comes from that run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from bridge.audio_io import StemWriters, open_audio
from bridge.backends import OFFLINE_BLOCK_SIZE
from bridge.engine import BlockResult, Processor, restamp
from bridge.errors import InputError
from bridge.midi_io import write_notes_midi, write_parts_midi
from bridge.notes import NoteEvent
from bridge.parts.classes import MODEL_STEMS, NETWORK_SHARE, ScoredClasses, transcribed_parts_settings
from bridge.parts.fusion import FUSION_EXPONENT, remask_powers
from bridge.parts.network_drums import parts_runner
from bridge.parts.processor import PartsSettings, spec_of
from bridge.parts.score_parts import ScorePart, read_parts
from bridge.parts.share_ensemble import ShareEnsemble
from bridge.remasked import RemaskedNetwork
from bridge.score import read_score_file
from bridge.transcribe import Transcriber, Transcription, score_of_parts


@dataclass
class SeparateResult:
    stem_paths: list[Path]
    notes_path: Path
    n_samples: int
    sample_rate: int
    n_channels: int
    latency_samples: int
    latency_terms: dict[str, int]
    n_notes: int
    n_bad_samples: int
    wall_s: float


def separate_file(
    processor: Processor,
    in_path: Path,
    out_dir: Path,
    block_size: int = OFFLINE_BLOCK_SIZE,
    fmt: str = "wav",
    score_path: Path | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    stems_from_parts: bool = True,
    transcriber: Transcriber | None = None,
    fusion: Mapping[str, float] | None = FUSION_EXPONENT,
    network_remask: Mapping[str, float] | None = None,
) -> SeparateResult:
    """Separate one file. ``progress(done_samples, total_samples, sample_rate)`` is called per block.

    With a score and ``stems_from_parts``, the class stems come from the score's parts
    (``bridge.parts.classes.ScoredClasses``, fused with the network's by ``fusion``, None: a linear
    blend); the network still writes the notes. Without a
    score, a ``transcriber`` first transcribes the whole file into one part per class
    (``bridge.transcribe``), which then serves as that score (the transcriber's own ``fusion`` replaces
    ``fusion``, and its ``remask`` re-masks the finished stems, ``bridge.parts.fusion.StemRemask``);
    ``notes.mid`` then holds the transcription's notes for its classes and the network's for the rest
    (drums). Where the stems are the network's alone (no parts), ``network_remask`` {stem: mask power}
    re-masks them from their sum (``bridge.remasked``; None: as the network gives them). With the transcriber's
    ``shares`` (membership shares, ``Transcriber.transcription``; two or more), the transcription's parts are
    taken at each share and separated side by side, the stems averaged before the transcriber's re-masking
    (``bridge.parts.share_ensemble``); with one share, or None (its ``member_share``), one separation."""
    stems = processor.meta.stems
    model_stems: tuple[str, ...] = MODEL_STEMS
    blind_stems: tuple[str, ...] = ()
    score: list[np.ndarray] | None = None
    parts: list[ScorePart] | None = None
    transcription: Transcription | None = None
    per_share: list[Transcription] = []  # the transcription at each share, the first's notes kept
    written: list[int] = []  # stems whose notes come from the transcription, not the network
    network_share: Mapping[str, float] = NETWORK_SHARE  # measured with the true score
    remask: Mapping[str, float] | None = None  # the transcription's stems only (selection set, blind)
    if score_path is not None:
        score = read_score_file(score_path, stems)
        parts = read_parts(score_path) if stems_from_parts else None
    elif transcriber is not None:
        shares = transcriber.shares
        if shares is None:
            transcription, _ = transcriber.transcribe_file(in_path)
        else:  # one analysis, the parts at every share (the written notes are the same at each)
            analysis, _ = transcriber.analyse_file(in_path)
            # the share nearest the transcriber's own first: its network's notes (drums) are the ones kept
            order = sorted(shares, key=lambda x: abs(x - transcriber.member_share))
            per_share = [transcriber.transcription(analysis, x) for x in order]
            transcription = per_share[0]
        parts = transcription.parts
        model_stems, blind_stems = transcriber.model_stems, transcriber.blind_stems
        network_share = transcriber.network_share
        fusion = transcriber.fusion
        if transcriber.remask is not None:
            remask = _own(transcriber.remask, stems)
        score = score_of_parts(parts, stems) if transcriber.condition_network else None
        written = [k for k, s in enumerate(stems) if s in transcription.notes]

    def scored(network: Processor, parts: list[ScorePart], remask: Mapping[str, float] | None) -> ScoredClasses:
        settings = None
        if transcription is not None:  # the frame grid fixed, as ScoredClasses fixes it when it re-masks
            settings = replace(transcribed_parts_settings(), split_frames=False)
        return ScoredClasses(
            network,
            parts,
            model_stems,
            settings=settings,
            blind_stems=blind_stems,
            network_share=network_share,
            fusion=fusion,
            remask=remask,
        )

    runner: Processor | RemaskedNetwork | ScoredClasses | ShareEnsemble
    scores: list[list[np.ndarray] | None] = [score]
    if parts is None:
        runner = processor if network_remask is None else RemaskedNetwork(processor, _own(network_remask, stems))
    elif len(per_share) < 2:
        runner = scored(processor, parts, remask)
    else:  # a network of its own per share (one onnxruntime session for all), each conditioned on its parts
        scores = [None if score is None else score_of_parts(t.parts, stems) for t in per_share]
        powers_in = None if processor.mask_powers is None else processor.mask_powers.tolist()
        networks = [processor] + [Processor(processor.model, mask_powers=powers_in) for _ in per_share[1:]]
        for n in networks[1:]:  # the ensemble writes the first runner's notes only
            n.decode_notes = False
        runners = [scored(n, t.parts, None) for n, t in zip(networks, per_share)]
        powers = None if remask is None else remask_powers(remask, runners[0].stems)
        runner = ShareEnsemble(runners, powers)

    def write_notes(path: Path, events: list[NoteEvent], sample_rate: int, n_done: int | None) -> None:
        if transcription is not None:
            until = None if n_done is None else n_done / sample_rate
            events = [e for e in events if e.stem not in written] + transcription.events(stems, sample_rate, until)
        if n_done is None:
            write_notes_midi(path, events, stems, sample_rate)
        else:
            _save_notes_so_far(path, events, stems, sample_rate, n_done)

    def start(sample_rate: int, n_channels: int) -> None:
        if not isinstance(runner, Processor):
            runner.prepare(sample_rate, block_size, n_channels)
        else:
            _prepare(processor, sample_rate, n_channels, block_size)
        for r, notes in zip(runner.runners if isinstance(runner, ShareEnsemble) else [runner], scores):
            r.set_score_notes(notes)

    return _separate(runner, start, write_notes, in_path, out_dir, block_size, fmt, progress)


def separate_parts_file(
    parts: Sequence[ScorePart],
    in_path: Path,
    out_dir: Path,
    block_size: int = OFFLINE_BLOCK_SIZE,
    fmt: str = "wav",
    progress: Callable[[int, int, int], None] | None = None,
    settings: PartsSettings | None = None,
    model: Processor | None = None,
) -> SeparateResult:
    """One stem per part of the score (``OUT/<part>.<fmt>``) + ``residual``, and ``notes.mid`` with
    the parts' notes (one track per part, named after it, on its channel and program). With
    ``model``, a score's one drum kit part comes from the network (``parts_runner``)."""
    processor = parts_runner([spec_of(p) for p in parts], settings, model)

    def write_notes(path: Path, events: list[NoteEvent], sample_rate: int, n_done: int | None) -> None:
        write_parts_midi(path, parts, end_s=None if n_done is None else max(n_done, 0) / sample_rate)

    def start(sample_rate: int, n_channels: int) -> None:
        processor.prepare(sample_rate, block_size, n_channels)
        processor.set_part_notes([p.notes for p in parts])

    res = _separate(processor, start, write_notes, in_path, out_dir, block_size, fmt, progress)
    res.n_notes = sum(p.n_notes for p in parts)
    return res


def _own(powers: Mapping[str, float], stems: Sequence[str]) -> dict[str, float]:
    """The re-masking powers of the stems this model has (``stems`` and ``other``)."""
    return {k: v for k, v in powers.items() if k in (*stems, "other")}


def _prepare(processor: Processor, sample_rate: int, n_channels: int, block_size: int) -> None:
    if not processor.prepared or processor.sample_rate != sample_rate or processor.n_channels != n_channels:
        processor.prepare(sample_rate, block_size, n_channels)
    else:
        processor.reset()


class StreamProcessor(Protocol):
    """What ``_separate`` streams a file through (``Processor``, ``ScoredClasses``, ``PartsProcessor``,
    ``RemaskedNetwork``, ``NetworkDrumParts``, ``ShareEnsemble``, ``bridge.backends.shifted``'s average), prepared."""

    @property
    def stems(self) -> Sequence[str]: ...

    @property
    def latency_samples(self) -> int: ...

    @property
    def latency_terms(self) -> Mapping[str, int]: ...

    @property
    def n_bad_samples(self) -> int: ...

    def process(self, audio: np.ndarray) -> BlockResult: ...

    def end_notes(self) -> list[NoteEvent]: ...


def _separate(
    processor: StreamProcessor,
    start: Callable[[int, int], None],
    write_notes: Callable[[Path, list[NoteEvent], int, int | None], None],
    in_path: Path,
    out_dir: Path,
    block_size: int,
    fmt: str,
    progress: Callable[[int, int, int], None] | None,
) -> SeparateResult:
    """Stream one file through ``processor`` (prepared by ``start(rate, channels)``) into stem files."""
    t0 = time.perf_counter()
    reader = open_audio(in_path)
    try:
        sr, n_ch, n_total = reader.sample_rate, reader.n_channels, reader.n_samples
        start(sr, n_ch)
        latency = processor.latency_samples
        writers = StemWriters(out_dir, tuple(processor.stems), sr, n_ch, fmt)
        notes_path = out_dir / "notes.mid"
        events: list[NoteEvent] = []
        n_in = 0  # input samples consumed
        try:
            notes_path.unlink(missing_ok=True)  # an earlier run's notes never sit beside these stems
            n_out = 0  # aligned output samples written
            tail = np.zeros((n_ch, block_size), np.float32)

            def emit(block: np.ndarray) -> None:
                nonlocal n_in, n_out
                res = processor.process(block)
                start = n_in
                n_in += block.shape[1]
                for ev in res.notes:
                    events.append(restamp(ev, start + ev.sample - latency))
                # drop the first `latency` output samples, keep at most n_total
                lo = max(0, latency - start)
                hi = min(block.shape[1], n_total + latency - start)
                if hi > lo:
                    writers.write(res.stems[:, :, lo:hi])
                    n_out += hi - lo

            for block in reader.blocks(block_size):
                emit(block)
                if progress is not None:
                    progress(n_in, n_total, sr)
            while n_out < n_total:
                emit(tail[:, : min(block_size, n_total + latency - n_in)])
            for ev in processor.end_notes():
                events.append(restamp(ev, n_in + ev.sample - latency))
            writers.check()
        except BaseException:
            writers.close()
            if notes_path.parent.is_dir():  # the notes so far; a failed write must not hide the interruption
                with contextlib.suppress(OSError, ValueError):
                    write_notes(notes_path, events, sr, n_in - latency)
            raise
        finally:
            writers.close()
        events = [restamp(e, min(max(e.sample, 0), n_total)) for e in events]
        try:
            write_notes(notes_path, events, sr, None)
        except OSError as e:
            raise InputError(f"cannot write {notes_path}: {e.strerror or e}") from None
    finally:
        reader.close()
    return SeparateResult(
        stem_paths=writers.paths,
        notes_path=notes_path,
        n_samples=n_total,
        sample_rate=sr,
        n_channels=n_ch,
        latency_samples=latency,
        latency_terms=dict(processor.latency_terms),
        n_notes=sum(1 for e in events if e.on),
        n_bad_samples=processor.n_bad_samples,
        wall_s=time.perf_counter() - t0,
    )


def _save_notes_so_far(
    notes_path: Path, events: list[NoteEvent], stems: Sequence[str], sample_rate: int, n_done: int
) -> None:
    """After an interruption: the notes decoded so far (held ones end at ``n_done``), written atomically."""
    n_done = max(n_done, 0)
    kept = [restamp(e, min(max(e.sample, 0), n_done)) for e in events]
    write_notes_midi(notes_path, kept, stems, sample_rate)
