"""Blind class stems averaged over an ensemble of runs: ``separate --shifts N`` (Demucs' shift trick) and
``separate --shares A,B,...`` (membership shares).

The blind path (``bridge.transcribe``: transcribe, then separate) moves with where its frames fall:
the same mix delayed by 0, 128, 256 or 384 samples spreads by 0.4-1.2 dB per pitched stem (held out,
BENCHMARKS.md stop 39); and it hangs on one hard choice, which class parts a note whose class is in
doubt joins (``Transcriber.member_share``). ``separate_ensemble`` runs the path on the input delayed by
``k * span // N`` samples (k = 0..N-1; the span is the network's hop at the file's rate: 512 samples at
44.1 kHz), each shifted copy transcribed once and separated once per membership share of ``shares``
(None: the transcriber's own), all without the final re-masking, each run into a temporary folder beside
the output (``runs_folder_prefix``; 32-bit float WAV, so nothing clips: 2.1 MB per run and second of
44.1 kHz stereo audio, plus one delayed copy of the input at a time, N - 1 at once with ``run_all``, all
removed at the end); it then streams the runs' results, shifted back and averaged, through the
re-masking the transcriber ships (``StemRemask``, its ``remask`` powers) into the stem files.
``notes.mid`` is the first (unshifted) run's (whole, also when the averaging is interrupted; the written
notes do not depend on the share); an earlier run's stems and notes in the output folder are removed
first, so an interrupted run never leaves them beside its own.
Selection set (seed 9002, 48 tracks, ``bench/shift_select.py --path blind``): pooled median SI-SDRi
4.119 -> 4.316 dB with N = 4 (per track: drums -0.03, bass +0.13, piano +0.17, guitar +0.18, strings
+0.55, other +0.10 dB), at N times the time; held out (seed 9001) five shares 0.15,0.2,0.3,0.45,0.6 of one
transcription: overall 4.01 -> 4.155 dB, per track bass +0.41, piano +0.28, guitar +0.15, strings +0.80,
other +0.24 dB (BENCHMARKS.md stop 40).

Public API
----------
- ``MAX_SHIFTS``, ``MAX_RUNS``: the most shifts, and shifts times shares, allowed.
- ``check_shifts(n_shifts, name="--shifts")``: ``InputError`` (naming ``name``) outside 1..``MAX_SHIFTS``;
  ``parse_shares(text, name="--shares") -> tuple[float, ...]``: "0.15,0.3" (or ``ENSEMBLE_SHARES_NAME``,
  ``ENSEMBLE_SHARES``) checked (each in (0, 1], distinct), ``InputError`` otherwise; ``check_runs(n_shifts,
  shares)``: ``InputError`` past ``MAX_RUNS`` runs.
- ``runs_folder_prefix(out_dir) -> str``: the name the runs' temporary folder (in ``out_dir.parent``) starts
  with; a caller whose process can be killed (``stembridge batch``) removes such folders itself.
- ``plain(transcriber) -> Transcriber``: the transcriber each run uses (its re-masking off: it comes once,
  after the average); ``one_run(processor, plain_transcriber, src, out, block_size, progress=None,
  transcription=None)``: one run (``separate_file`` into float WAV), what ``run_all`` runs elsewhere.
- ``shift_samples(n_shifts, span) -> list[int]``: the delays, 0 first.
- ``separate_ensemble(processor, in_path, out_dir, transcriber, n_shifts=1, block_size=OFFLINE_BLOCK_SIZE,
  fmt="wav", progress=None, run_all=None, shares=None) -> SeparateResult``: as ``separate_file(...,
  transcriber=transcriber)`` with the stems averaged over ``n_shifts`` grids times ``shares``;
  ``latency_terms`` are the first run's and the final re-masking's (all compensated in the files).
  ``run_all`` (``RunAll``) runs the runs at once elsewhere (``separate --jobs J``: J processes; every delayed
  copy of the input is written first then, N - 1 float WAV copies at a time; with ``shares`` every copy
  is analysed here first and the runs get their transcriptions).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from bridge.audio_io import open_audio
from bridge.backends.offline import OFFLINE_BLOCK_SIZE, SeparateResult, _own, _separate, separate_file
from bridge.engine import BlockResult, Processor
from bridge.errors import InputError
from bridge.notes import NoteEvent
from bridge.parts.fusion import StemRemask, remask_powers, remask_size_for
from bridge.transcribe import Transcriber, Transcription

MAX_SHIFTS = 16
MAX_RUNS = 32
# held out (seed 9001, 48 tracks, BENCHMARKS.md stop 40): five separations of one transcription averaged
ENSEMBLE_SHARES = (0.15, 0.2, 0.3, 0.45, 0.6)
ENSEMBLE_SHARES_NAME = "ensemble"
# runs the runs elsewhere (``separate --jobs``): [(input, output folder, transcription or None)] -> their results,
# in order; each as ``separate_file(..., "wav", transcriber=the transcriber without its re-masking,
# transcription=the one given)`` (None: the run transcribes its input itself)
RunAll = Callable[[list[tuple[Path, Path, Transcription | None]]], list[SeparateResult]]


def check_shifts(n_shifts: int, name: str = "--shifts") -> None:
    """``InputError`` naming ``name`` unless 1 <= ``n_shifts`` <= ``MAX_SHIFTS``."""
    if not 1 <= n_shifts <= MAX_SHIFTS:
        raise InputError(f"{name} must be between 1 and {MAX_SHIFTS}, got {n_shifts}")


def parse_shares(text: str, name: str = "--shares") -> tuple[float, ...]:
    """Membership shares from "0.15,0.3,..." (or ``ENSEMBLE_SHARES_NAME``); ``InputError`` naming ``name`` unless
    each is a number in (0, 1] and none is given twice."""
    if text.strip() == ENSEMBLE_SHARES_NAME:
        return ENSEMBLE_SHARES
    try:
        shares = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise InputError(
            f"{name} takes membership shares in (0, 1] separated by commas, or {ENSEMBLE_SHARES_NAME}, got {text!r}"
        ) from None
    if not all(0.0 < x <= 1.0 for x in shares):  # also NaN
        raise InputError(f"{name}: each share must be in (0, 1], got {text!r}")
    if len(set(shares)) != len(shares):
        raise InputError(f"{name}: a share given twice in {text!r}")
    return shares


def check_runs(n_shifts: int, shares: Sequence[float] | None) -> None:
    """``InputError`` when ``n_shifts`` times the shares make more than ``MAX_RUNS`` runs."""
    n_runs = n_shifts * len(shares or (None,))
    if n_runs > MAX_RUNS:
        raise InputError(f"--shifts times --shares makes {n_runs} runs; at most {MAX_RUNS}")


def runs_folder_prefix(out_dir: Path) -> str:
    return f".{out_dir.name}-shifts-"


def plain(transcriber: Transcriber) -> Transcriber:
    out = copy.copy(transcriber)
    out.remask = None
    return out


def one_run(
    processor: Processor,
    plain_transcriber: Transcriber,
    src: Path,
    out: Path,
    block_size: int,
    progress: Callable[[int, int, int], None] | None = None,
    transcription: Transcription | None = None,
) -> SeparateResult:
    return separate_file(
        processor,
        src,
        out,
        block_size,
        "wav",
        progress=progress,
        transcriber=plain_transcriber,
        transcription=transcription,
    )


def shift_samples(n_shifts: int, span: int) -> list[int]:
    """The ``n_shifts`` delays in samples, spread evenly over ``span`` samples, 0 first."""
    return [k * span // n_shifts for k in range(n_shifts)]


class _RunAverage:
    """Processor-shaped (for ``_separate``): each ``process(block)`` reads the block's span of every
    run's stems (each file from its shift on), averages them and re-masks the average: (n_stems,
    n_channels, n) delayed by ``lead`` samples (silence first) and the re-masking's latency. Past the runs'
    ends it reads silence. ``lead``: the run's own latency, so that the re-masking's frames fall where they
    fall in one plain run (``separate_file``, whose re-masking sees the stems that late): an ensemble of one
    run is the plain path."""

    def __init__(
        self, runs: list[tuple[Path, int]], stems: tuple[str, ...], powers: list[float] | None, lead: int
    ) -> None:
        self.runs, self.stems, self.powers, self.lead = runs, stems, powers, lead
        self.n_bad_samples = 0
        self._files: list = []
        self._lead_left = lead

    def prepare(self, sample_rate: int, block_size: int, n_channels: int) -> None:
        import soundfile as sf

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


def separate_ensemble(
    processor: Processor,
    in_path: Path,
    out_dir: Path,
    transcriber: Transcriber,
    n_shifts: int = 1,
    block_size: int = OFFLINE_BLOCK_SIZE,
    fmt: str = "wav",
    progress: Callable[[int, int, int], None] | None = None,
    run_all: RunAll | None = None,
    shares: Sequence[float] | None = None,
) -> SeparateResult:
    """See the module docstring."""
    check_shifts(n_shifts, "shifts")
    check_runs(n_shifts, shares)
    t0 = time.perf_counter()
    reader = open_audio(in_path)
    n_total, sample_rate = reader.n_samples, reader.sample_rate
    reader.close()
    each = plain(transcriber)  # the re-masking comes once, after the average
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
        members = list(shares) if shares else [None]
        n_runs = n_shifts * len(members)
        runs = [(Path(tmp) / f"run_{shift}_{m}", shift) for shift in shifts for m in range(len(members))]
        first: SeparateResult | None = None

        def source(shift: int) -> Path:  # the input itself, or a delayed copy of it
            if not shift:
                return in_path
            _delayed_copy(in_path, Path(tmp) / f"in_{shift}.wav", shift, block_size)
            return Path(tmp) / f"in_{shift}.wav"

        def transcriptions(src: Path) -> list[Transcription | None]:  # one analysis, a transcription per share
            if shares is None:
                return [None]
            analysis, _ = each.analyse_file(src)
            return [each.transcription(analysis, m) for m in members]

        if run_all is not None:  # every delayed copy first, then all runs at once (the copies removed after)
            sources = [source(shift) for shift in shifts]
            jobs = [(src, tr) for src in sources for tr in transcriptions(src)]
            first = run_all([(src, folder, tr) for (src, tr), (folder, _) in zip(jobs, runs)])[0]
            for src in sources:
                if src != in_path:
                    src.unlink()
            if progress is not None:
                progress(n_runs * n_total, (n_runs + 1) * n_total, sample_rate)
        else:  # one shift at a time, one delayed copy at a time
            k = 0
            for shift in shifts:
                src = source(shift)
                for tr in transcriptions(src):

                    def step(done: int, total: int, sr: int, k: int = k) -> None:
                        if progress is not None:
                            progress(k * n_total + min(done, n_total), (n_runs + 1) * n_total, sr)

                    res = one_run(processor, each, src, runs[k][0], block_size, step, tr)
                    first = first or res
                    k += 1
                if src != in_path:
                    src.unlink()
        assert first is not None
        average = _RunAverage(runs, stems, powers, first.latency_samples)

        def start(sample_rate: int, n_channels: int) -> None:
            average.prepare(sample_rate, block_size, n_channels)

        def write_notes(path: Path, events: list[NoteEvent], sample_rate: int, n_done: int | None) -> None:
            shutil.copyfile(first.notes_path, path)  # the first run's, whole

        def merged(done: int, total: int, sr: int) -> None:
            if progress is not None:
                progress(n_runs * n_total + min(done, n_total), (n_runs + 1) * n_total, sr)

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
