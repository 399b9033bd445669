"""Blind class stems averaged over shifted frame grids: ``separate --shifts N`` (Demucs' shift trick).

Each run of the blind path (``bridge.transcribe``: transcribe, then separate) transcribes on one frame grid;
averaging the runs of several grids hedges between their transcriptions (before stop 46 the blind path's grid
was counted from the file's first sample, and the same mix delayed by 0, 128, 256 or 384 samples spread by
0.4-1.2 dB per pitched stem, held out, BENCHMARKS.md stop 39; its analysis is now anchored to the music, and
run k's is anchored k / N of a frame further on). ``separate_shifted`` runs the whole path, transcription
included, N times on the input delayed by ``k * span // N`` samples (k = 0..N-1; the span is the network's hop at the
file's rate: 512 samples at 44.1 kHz) without its final re-masking (each run with the transcriber's
membership ``shares``, ``bridge.parts.share_ensemble``), each into a temporary folder
beside the output (``runs_folder_prefix``; 32-bit float WAV, so nothing clips: N x 2.1 MB per second of
44.1 kHz stereo audio, plus one delayed copy of the input at a time, N - 1 at once with ``run_all``, all
removed at the end); it then streams the N
results, shifted back and averaged, through the re-masking the transcriber ships (``StemRemask``,
its ``remask`` powers) into the stem files, the re-masking's frames where one plain run's fall (it
starts as late as the run's own latency), so one shift is the plain path. ``notes.mid`` is the unshifted
run's (whole, also when the averaging is interrupted); an earlier run's stems and notes in the output
folder are removed first, so an interrupted run never leaves them beside its own.
Selection set (seed 9002, 48 tracks, ``bench/shift_select.py --path blind``): pooled median SI-SDRi
4.119 -> 4.316 dB with N = 4 (per track: drums -0.03, bass +0.13, piano +0.17, guitar +0.18, strings
+0.55, other +0.10 dB), at N times the time.

Public API
----------
- ``MAX_SHIFTS``: the most shifts allowed.
- ``check_shifts(n_shifts, name="--shifts")``: ``InputError`` (naming ``name``) outside 1..``MAX_SHIFTS``.
- ``runs_folder_prefix(out_dir) -> str``: the name the runs' temporary folder (in ``out_dir.parent``) starts
  with; a caller whose process can be killed (``stembridge batch``) removes such folders itself.
- ``plain(transcriber, k=0, n_shifts=1) -> Transcriber``: the transcriber run k of ``n_shifts`` uses (its
  re-masking off: it comes once, after the average; its analysis, anchored to the music as the plain path's,
  ``bridge.transcribe.anchor``, k / n_shifts of a frame further on, so that the runs' transcriptions differ
  wherever the file starts; run 0 transcribes as the plain path does);
  ``one_run(processor, plain_transcriber, src, out, block_size, progress=None)``: one run (``separate_file``
  into float WAV), what ``run_all`` runs elsewhere.
- ``shift_samples(n_shifts, span) -> list[int]``: the delays, 0 first.
- ``separate_shifted(processor, in_path, out_dir, transcriber, n_shifts, block_size=OFFLINE_BLOCK_SIZE,
  fmt="wav", progress=None, run_all=None) -> SeparateResult``: as ``separate_file(...,
  transcriber=transcriber)`` with the stems averaged over ``n_shifts`` grids; ``latency_terms`` are the
  unshifted run's and the final re-masking's (all compensated in the files). ``run_all`` (``RunAll``)
  runs the N runs at once elsewhere (``separate --shifts N --jobs J``: J processes; every delayed copy
  of the input is written first then, N - 1 float WAV copies at a time).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from bridge.audio_io import open_audio
from bridge.backends.offline import OFFLINE_BLOCK_SIZE, SeparateResult, _own, _separate, separate_file
from bridge.engine import BlockResult, Processor
from bridge.errors import InputError
from bridge.notes import NoteEvent
from bridge.parts.fusion import StemRemask, remask_powers, remask_size_for
from bridge.transcribe import Transcriber

MAX_SHIFTS = 16
# runs the shifted runs elsewhere (``separate --jobs``): [(input, output folder, k)] -> their results, in order;
# each as ``separate_file(..., "wav", transcriber=plain(the transcriber, k, n_shifts))``
RunAll = Callable[[list[tuple[Path, Path, int]]], list[SeparateResult]]


def check_shifts(n_shifts: int, name: str = "--shifts") -> None:
    """``InputError`` naming ``name`` unless 1 <= ``n_shifts`` <= ``MAX_SHIFTS``."""
    if not 1 <= n_shifts <= MAX_SHIFTS:
        raise InputError(f"{name} must be between 1 and {MAX_SHIFTS}, got {n_shifts}")


def runs_folder_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}-shifts-"


def plain(transcriber: Transcriber, k: int = 0, n_shifts: int = 1) -> Transcriber:
    out = copy.copy(transcriber)
    out.remask = None
    # run k of n: its analysis anchored k / n of a frame further into the frames than the plain path's (an
    # analysis anchored as the plain path's would be the same on every delayed copy); run 0 is the plain path's
    out.anchor_phase = (transcriber.anchor_phase + k / max(n_shifts, 1)) % 1.0
    return out


def one_run(
    processor: Processor,
    plain_transcriber: Transcriber,
    src: Path,
    out: Path,
    block_size: int,
    progress: Callable[[int, int, int], None] | None = None,
) -> SeparateResult:
    return separate_file(processor, src, out, block_size, "wav", progress=progress, transcriber=plain_transcriber)


def shift_samples(n_shifts: int, span: int) -> list[int]:
    """The ``n_shifts`` delays in samples, spread evenly over ``span`` samples, 0 first."""
    return [k * span // n_shifts for k in range(n_shifts)]


class _ShiftAverage:
    """Processor-shaped (for ``_separate``): each ``process(block)`` reads the block's span of every
    run's stems (each file from its shift on), averages them and re-masks the average: (n_stems,
    n_channels, n) delayed by ``lead`` samples (silence first) and the re-masking's latency. Past the runs'
    ends it reads silence. ``lead``: the run's own latency, so that the re-masking's frames fall where they
    fall in one plain run (``separate_file``, whose re-masking sees the stems that late): one
    shift is the plain path."""

    def __init__(
        self, runs: list[tuple[Path, int]], stems: tuple[str, ...], powers: list[float] | None, lead: int
    ) -> None:
        self.runs, self.stems, self.powers, self.lead = runs, stems, powers, lead
        self.n_bad_samples = 0
        self._files: list = []
        self._lead_left = 0  # set by prepare

    def prepare(self, sample_rate: int, block_size: int, n_channels: int) -> None:
        import soundfile as sf

        self.close()
        self._files, self._lead_left = [], self.lead
        for folder, shift in self.runs:
            for s in self.stems:
                f = sf.SoundFile(str(folder / f"{s}.wav"))
                f.seek(shift)
                self._files.append(f)
        self._remask = None
        self.latency_terms = {"stem_remask": 0}
        if self.powers is not None:
            self._remask = StemRemask(self.powers, *remask_size_for(sample_rate), n_channels, block_size)
            self.latency_terms["stem_remask"] = self._remask.latency_samples
        self.latency_samples = self.lead + self.latency_terms["stem_remask"]

    def process(self, audio: np.ndarray) -> BlockResult:
        n_stems, (n_ch, n) = len(self.stems), audio.shape
        total = np.zeros((n_stems, n_ch, n), np.float32)
        k = min(self._lead_left, n)  # silence first
        self._lead_left -= k
        for i, f in enumerate(self._files):
            data = f.read(n - k, dtype="float32", always_2d=True)
            total[i % n_stems, :, k : k + len(data)] += data.T
        total /= len(self.runs)
        return BlockResult(stems=total if self._remask is None else self._remask.process(total))

    def end_notes(self) -> list[NoteEvent]:
        return []

    def close(self) -> None:
        for f in self._files:
            f.close()


def _delayed_copy(in_path: Path, out_path: Path, shift: int, block_size: int) -> None:
    """``in_path`` with ``shift`` samples of silence in front, as a float WAV."""
    import soundfile as sf

    reader = open_audio(in_path)
    try:
        with sf.SoundFile(str(out_path), "w", reader.sample_rate, reader.n_channels, "FLOAT", format="WAV") as f:
            f.write(np.zeros((shift, reader.n_channels), np.float32))
            for block in reader.blocks(block_size):
                f.write(block.T)
    except (RuntimeError, OSError, AssertionError) as e:  # soundfile asserts on short writes (disk full)
        raise InputError(f"cannot write a shifted copy of {in_path.name} in {out_path.parent}: {e}") from None
    finally:
        reader.close()


def separate_shifted(
    processor: Processor,
    in_path: Path,
    out_dir: Path,
    transcriber: Transcriber,
    n_shifts: int,
    block_size: int = OFFLINE_BLOCK_SIZE,
    fmt: str = "wav",
    progress: Callable[[int, int, int], None] | None = None,
    run_all: RunAll | None = None,
) -> SeparateResult:
    """See the module docstring."""
    check_shifts(n_shifts, "shifts")
    t0 = time.perf_counter()
    reader = open_audio(in_path)
    n_total, sample_rate = reader.n_samples, reader.sample_rate
    reader.close()
    stems = processor.stems
    powers = None
    if transcriber.remask is not None:  # as separate_file: the powers of the stems this model has
        powers = remask_powers(_own(transcriber.remask, processor.meta.stems), stems)
    span = max(1, round(processor.meta.hop * sample_rate / processor.meta.sample_rate))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for old in [*(out_dir / f"{s}.{fmt}" for s in stems), out_dir / "notes.mid"]:
            old.unlink(missing_ok=True)  # an earlier run's files never sit beside an interrupted run's
        tmp_dir = tempfile.TemporaryDirectory(prefix=runs_folder_prefix(out_dir), dir=out_dir.parent)
    except OSError as e:
        raise InputError(f"cannot write in {out_dir}: {e.strerror or e}") from None
    with tmp_dir as tmp:
        shifts = shift_samples(n_shifts, span)
        runs = [(Path(tmp) / f"run_{shift}", shift) for shift in shifts]
        first: SeparateResult | None = None

        def source(shift: int) -> Path:  # the input itself, or a delayed copy of it
            if not shift:
                return in_path
            _delayed_copy(in_path, Path(tmp) / f"in_{shift}.wav", shift, block_size)
            return Path(tmp) / f"in_{shift}.wav"

        if run_all is not None:  # every delayed copy first, then all runs at once (the copies removed after)
            sources = [source(shift) for shift in shifts]
            first = run_all([(src, folder, k) for k, (src, (folder, _)) in enumerate(zip(sources, runs))])[0]
            for src in sources:
                if src != in_path:
                    src.unlink()
            if progress is not None:
                progress(n_shifts * n_total, (n_shifts + 1) * n_total, sample_rate)
        else:  # one run at a time, one delayed copy at a time
            for k, (folder, shift) in enumerate(runs):

                def step(done: int, total: int, sr: int, k: int = k) -> None:
                    if progress is not None:
                        progress(k * n_total + min(done, n_total), (n_shifts + 1) * n_total, sr)

                src = source(shift)
                res = one_run(processor, plain(transcriber, k, n_shifts), src, folder, block_size, step)
                if src != in_path:
                    src.unlink()
                first = first or res
        assert first is not None
        average = _ShiftAverage(runs, stems, powers, first.latency_samples)

        def start(sample_rate: int, n_channels: int) -> None:
            average.prepare(sample_rate, block_size, n_channels)

        def write_notes(path: Path, events: list[NoteEvent], sample_rate: int, n_done: int | None) -> None:
            shutil.copyfile(first.notes_path, path)  # the unshifted run's, whole

        def merged(done: int, total: int, sr: int) -> None:
            if progress is not None:
                progress(n_shifts * n_total + min(done, n_total), (n_shifts + 1) * n_total, sr)

        try:
            res = _separate(average, start, write_notes, in_path, out_dir, block_size, fmt, merged)
        finally:
            average.close()
    return replace(
        res,
        latency_terms={**first.latency_terms, **res.latency_terms},
        n_notes=first.n_notes,
        n_bad_samples=first.n_bad_samples,
        wall_s=time.perf_counter() - t0,
    )
