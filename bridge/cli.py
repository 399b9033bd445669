"""The ``stembridge`` command.

Subcommands: ``separate`` (files -> stems + notes; ``--parts``: one stem per part of the score;
``--align``: the score aligned to each input first), ``parts`` (the parts a score file yields),
``align`` (a score warped onto a recording's timeline), ``info`` (a model's metadata), ``models``
(the registry), ``run`` (real-time bridge), ``devices`` (audio devices, JACK and MIDI ports),
and the training side ``corpus``, ``train``, ``export`` (need the ``train`` extra).

Argument parsing imports neither numpy-heavy modules, onnxruntime nor torch: ``--help`` is
instant. Errors a user can cause print one line, ``stembridge: error: ...``, and exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.errors import StembridgeError

EPILOG_SEPARATE = (
    "Writes OUT/<track>/<stem>.<fmt> and OUT/<track>/notes.mid, aligned with the input; with --parts, "
    "OUT/<track>/<part>.<fmt> for every part of the score and OUT/<track>/residual.<fmt>."
)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", "-m", default=None, help="registered model name or path to a .onnx (default: registry default)"
    )
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stembridge",
        description="Real-time stem separation and transcription bridge (ONNX models in onnxruntime).",
    )
    parser.add_argument("--version", action="version", version=f"stembridge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("separate", help="separate audio files into stems and notes", epilog=EPILOG_SEPARATE)
    p.add_argument("inputs", nargs="+", type=Path, metavar="IN", help="audio files (wav, flac, ...)")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    _add_model_args(p)
    p.add_argument("--score", type=Path, default=None, help="MIDI score of the parts (one file applies to every input)")
    p.add_argument(
        "--class-stems-from",
        choices=("parts", "network"),
        default="parts",
        help="parts (default): class stems from score parts summed per GM class, drums from the network; "
        "the parts are --score's, or without a score those of the file's own transcription (basic-pitch notes, "
        "each classified by instrument: transcribe, then separate; offline only). network: the network alone "
        "(its stems re-shared: softened masks, then re-masked from their sum in a 0.37 s window)",
    )
    p.add_argument(
        "--shifts",
        type=int,
        default=1,
        help="the blind path only (no --score, not --class-stems-from network): run it, transcription included, "
        "on N shifted frame grids and average the stems (N times the time; 4: +0.2 dB median on the "
        "selection set; default 1)",
    )
    p.add_argument(
        "--shares",
        default=None,
        metavar="A,B,...|wide",
        help="the blind path only: separate the transcription once per membership share (how sure of a class a "
        "note must be to join a class's part), side by side, and average the stems (default 0.05,0.3,1; 0.3: one "
        "separation, about twice as fast; wide: 0.05,0.1,0.2,0.3,0.45,0.8,1, about twice the time)",
    )
    p.add_argument(
        "--no-song-context",
        dest="song_context",
        action="store_false",
        help="the blind path only: class each transcribed note from its own sound alone (default: refined by the "
        "file's other notes, models_onnx/note-song.onnx)",
    )
    p.add_argument(
        "--parts",
        action="store_true",
        help="one stem per part of --score (track, or channel) + residual, separated by the score itself",
    )
    p.add_argument(
        "--kit-from",
        choices=("network", "score"),
        default="network",
        help="with --parts: a score's one drum kit part (channel 10) from the network's drums stem "
        "(default; the network hears that part's notes) or, like every other part, from the score decomposition",
    )
    p.add_argument(
        "--align",
        action="store_true",
        help="first align --score to each input (a score not played to a click), write OUT/<track>/aligned.mid "
        "and separate with it; blind class stems when the score does not match",
    )
    p.add_argument(
        "--block-size",
        type=int,
        default=None,
        help="samples per processing block (default 65536; the output does not depend on it beyond float rounding)",
    )
    p.add_argument(
        "--format", choices=("wav", "flac"), default="wav", help="stem file format (default wav, 32-bit float)"
    )
    p.add_argument(
        "--provider",
        choices=("cpu", "cuda"),
        default="cpu",
        help="onnxruntime provider of the separation network (cuda: needs the gpu extra; default cpu)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=1,
        help="files separated at once, each in its own process (one core each with --threads 1; default 1); one "
        "input with --shifts N: its N runs side by side",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")

    p = sub.add_parser("parts", help="list the parts a score file yields (what separate --parts writes)")
    p.add_argument("score", type=Path, help="MIDI score file")

    p = sub.add_parser(
        "align",
        help="warp a score onto a recording's timeline (a score not played to a click)",
        epilog="Writes the score with every track, channel, program and name kept, events at the recording's "
        "times, one fixed tempo. Exit 2 with one line when the score does not match the recording.",
    )
    p.add_argument("mix", type=Path, metavar="MIX", help="the recording (audio file)")
    p.add_argument("score", type=Path, metavar="SCORE", help="MIDI score of the piece")
    p.add_argument("-o", "--out", type=Path, required=True, help="aligned MIDI file to write")
    p.add_argument("--plot", type=Path, default=None, help="PNG of the warping path over the two feature matrices")
    p.add_argument("--quiet", "-q", action="store_true", help="print nothing on success")

    p = sub.add_parser("info", help="show a model's metadata")
    p.add_argument("model", nargs="?", default=None, help="model name or .onnx path (default: registry default)")
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")

    sub.add_parser("models", help="list registered models")

    p = sub.add_parser("run", help="run the real-time bridge")
    p.add_argument(
        "--backend",
        choices=("jack", "portaudio"),
        default=None,
        help="audio backend (default: jack if a server runs, else portaudio)",
    )
    _add_model_args(p)
    p.add_argument("-r", "--rate", type=int, default=None, help="sample rate (portaudio; JACK uses the server's)")
    p.add_argument(
        "-b", "--block", type=int, default=256, help="block size in frames (portaudio; JACK uses the server's)"
    )
    p.add_argument("--input", default=None, help="input device: number or name substring (portaudio)")
    p.add_argument("--output", default=None, help="output device: number or name substring (portaudio)")
    p.add_argument("--midi-in", default=None, help="score MIDI input port (name substring); default: a virtual port")
    p.add_argument("--midi-out", default=None, help="notes MIDI output port (name substring); default: a virtual port")
    p.add_argument("--config", type=Path, default=None, help="TOML config (channel map, score offset, gains)")
    p.add_argument(
        "--parts",
        nargs="?",
        const="",
        default=None,
        metavar="CHANNELS",
        help="one stem per score channel instead of the model's stems: 1-based channels (1,2,10), "
        "or the [parts] table of --config when none are given",
    )
    p.add_argument(
        "--kit-from",
        choices=("network", "score"),
        default=None,
        help="with --parts: channel 10 from the network's drums stem (default, or [parts] kit_from) "
        "or from the score decomposition",
    )
    p.add_argument(
        "--classes-from",
        choices=("network", "parts", "fused"),
        default=None,
        help="class stems from the network (default, or [score] classes_from) or, when the score comes in "
        "on score_in, from its parts (one per MIDI channel; far better stems, 46 ms more latency at 44.1 kHz), "
        "or fused: the parts fused with the network by magnitude, as separate --score does (better still, "
        "another 93 ms)",
    )
    p.add_argument(
        "--raw-masks",
        action="store_true",
        help="network mode: the network's masks as they come; by default its stems share each bin more evenly "
        "(softened masks, no latency more: far better stems on sounds it was not trained on)",
    )
    p.add_argument(
        "--follow",
        type=Path,
        default=None,
        metavar="SCORE",
        help="one stem per part of this MIDI score, which the live audio is followed through (not played "
        "to a click); MIDI on a part's channel (score_in) overrides the follower for that part",
    )
    p.add_argument(
        "--connect", nargs="*", default=None, metavar="PORT", help="JACK: connect in_L/in_R from these ports"
    )
    p.add_argument(
        "--send",
        default=None,
        metavar="STEMS",
        help="send only these stems (drums,bass; with --parts: part names, residual); JACK creates only their ports",
    )
    p.add_argument(
        "--monitor",
        default=None,
        metavar="MIX",
        help='send one stereo mix of stems with gains in dB ("drums=-6,bass"); unlisted stems are left out',
    )
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--stats", type=Path, default=None, help="write run statistics as JSON here on exit")
    p.add_argument("--quiet", "-q", action="store_true", help="no live status line")
    p.add_argument(
        "--worker",
        choices=("process", "thread"),
        default=None,
        help="where inference runs: a child process (default; keeps the audio callback off the GIL) or a thread",
    )

    sub.add_parser("devices", help="list audio devices, JACK ports and MIDI ports")

    p = sub.add_parser(
        "batch",
        help="separate a catalogue on Ray (local or a cluster), with a manifest and resume",
        epilog="Writes OUT/<track>/ as separate does, one folder per input, and OUT/manifest.jsonl. "
        "Exit status: the number of failed inputs (101: more than 100). Needs the cluster extra (Ray).",
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio files, folders, or .txt lists of paths")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", "-m", default=None, help="registered model name or path to a .onnx")
    p.add_argument("--score-dir", type=Path, default=None, help="scores: DIR/<input name>.mid goes with each input")
    p.add_argument("--parts", action="store_true", help="one stem per part of each input's score (needs --score-dir)")
    p.add_argument("--workers", "-j", type=int, default=None, help="worker actors (default: cores, or the cluster's)")
    p.add_argument("--address", default=None, help="join this Ray cluster (default: RAY_ADDRESS, else start one here)")
    p.add_argument("--provider", choices=("cpu", "cuda"), default="cpu", help="onnxruntime provider (default cpu)")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="stem file format (default wav)")
    p.add_argument(
        "--shifts",
        type=int,
        default=1,
        help="inputs without a score (the blind path): as separate --shifts, N frame grids averaged, N times the "
        "time (default 1)",
    )
    p.add_argument(
        "--shares",
        default=None,
        metavar="A,B,...|wide",
        help="inputs without a score: as separate --shares, one separation per membership share, averaged "
        "(default 0.05,0.3,1)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    for name, help_text in (
        ("corpus", "render a synthetic multitrack training corpus (Slakh2100 layout)"),
        ("train", "train a model (needs the train extra)"),
        ("export", "export a checkpoint to ONNX with metadata (needs the train extra)"),
        ("train-notes", "train the note classifier of blind offline separation (needs the train extra)"),
    ):
        p = sub.add_parser(name, help=help_text, add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


# ---------------------------------------------------------------------- commands
class Progress:
    """A progress line on stderr counted in seconds of audio (only when stderr is a terminal)."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label = label
        self.enabled = enabled and sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int, sample_rate: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < total):
            return
        self.last = now
        done_s, total_s = done / sample_rate, total / sample_rate
        speed = done_s / max(now - self.t0, 1e-9)
        width = 30
        filled = int(width * done / max(total, 1))
        bar = "#" * filled + "-" * (width - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {done_s:7.1f}/{total_s:.1f} s audio  {speed:5.1f}x real time")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _network(args: argparse.Namespace) -> Any:
    """The separation network's ``Processor`` for ``--model``, ``--threads`` and ``--provider``."""
    from bridge.engine import Processor
    from bridge.model import OnnxModel, providers_for

    providers = providers_for(args.provider)  # first: a missing CUDA provider is the error to report
    return Processor(OnnxModel(args.model, n_threads=args.threads, providers=providers))


def _separate_runner(args: argparse.Namespace) -> Callable[[Path], Any]:
    """What ``separate`` does to one input (``Path -> SeparateResult``), with its network and
    transcriber built once."""
    from bridge.backends.offline import SeparateResult, separate_file, separate_parts_file
    from bridge.errors import InputError

    if args.parts:
        from bridge.parts.score_parts import read_parts

        if args.score is None:
            raise InputError("--parts needs --score SCORE.mid (the parts come from the score)")
        parts = read_parts(args.score)
        from bridge.parts.network_drums import one_kit
        from bridge.parts.processor import spec_of

        kit_model = None
        if args.kit_from == "network" and one_kit([spec_of(p) for p in parts]):
            kit_model = _network(args)

        def run(path: Path) -> SeparateResult:
            progress = Progress(path.name, not args.quiet)
            return separate_parts_file(
                parts, path, args.out / path.stem, args.block_size, args.format, progress, model=kit_model
            )
    else:
        processor = _network(args)
        transcriber = None
        network_remask = None
        if args.class_stems_from == "network":  # the network's stems re-shared (with or without a score)
            from bridge.remasked import NETWORK_REMASK, soften

            soften(processor)
            network_remask = NETWORK_REMASK
        if args.score is None and args.class_stems_from == "parts":
            transcriber = _transcriber(args)

        def run(path: Path) -> SeparateResult:
            progress = Progress(path.name, not args.quiet)
            if transcriber is not None and progress.enabled:  # seconds of silence otherwise, on a long file
                times = f", {args.shifts} times (--shifts)" if args.shifts > 1 else ""
                sys.stderr.write(
                    f"{path.name}: transcribing the whole file first{times} (--class-stems-from network skips it)\n"
                )
            if transcriber is not None and args.shifts > 1:
                from bridge.backends.shifted import separate_shifted

                out = args.out / path.stem
                with contextlib.ExitStack() as stack:
                    run_all = None
                    if args.jobs > 1:  # one input: its shifted runs side by side
                        run_all = stack.enter_context(_shift_pool(args))
                        if not args.quiet:
                            n_proc = min(args.jobs, args.shifts)
                            sys.stderr.write(f"{path.name}: {args.shifts} shifted runs in {n_proc} processes\n")
                    return separate_shifted(
                        processor,
                        path,
                        out,
                        transcriber,
                        args.shifts,
                        args.block_size,
                        args.format,
                        progress,
                        run_all,
                    )
            return separate_file(
                processor,
                path,
                args.out / path.stem,
                block_size=args.block_size,
                fmt=args.format,
                score_path=args.score,
                progress=progress,
                stems_from_parts=args.class_stems_from == "parts",
                transcriber=transcriber,
                network_remask=network_remask,
            )

    return run


def cmd_separate(args: argparse.Namespace) -> int:
    from bridge.backends import OFFLINE_BLOCK_SIZE
    from bridge.errors import InputError

    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs > 1 and getattr(args, "align", False):
        raise InputError("--jobs does not combine with --align yet: align and separate one file at a time")
    if args.block_size is None:
        args.block_size = OFFLINE_BLOCK_SIZE
    if args.block_size < 1 or args.block_size > 1 << 20:
        raise InputError(f"--block-size must be between 1 and {1 << 20}, got {args.block_size}")
    if args.score is not None and not args.score.is_file():
        raise InputError(f"{args.score}: no such score file")
    from bridge.backends.shifted import check_shifts
    from bridge.parts.share_ensemble import parse_shares

    check_shifts(args.shifts)
    off_blind = args.score is not None or args.parts or args.class_stems_from != "parts"

    def blind_only(option: str, given: bool) -> None:
        if given and off_blind:
            raise InputError(f"{option} is for the blind path only (no --score, --parts or --class-stems-from network)")

    blind_only("--shifts", args.shifts != 1)
    if args.shares is not None:
        args.shares = parse_shares(args.shares)
        blind_only("--shares", True)
    blind_only("--no-song-context", not getattr(args, "song_context", True))
    names = [p.stem for p in args.inputs]
    if len(set(names)) != len(names):
        raise InputError("two inputs share a file name; separate them in two runs (outputs go to OUT/<name>/)")
    if getattr(args, "align", False):
        from bridge.align.command import separate_aligned

        return separate_aligned(args, cmd_separate)
    if args.jobs > 1 and len(args.inputs) > 1:
        return _separate_parallel(args)
    run = _separate_runner(args)
    failed = 0
    for path in args.inputs:
        try:
            res = run(path)
        except InputError as e:
            print(f"stembridge: error: {e}", file=sys.stderr)
            failed += 1
            continue
        _report_separated(args, path, res)
    return 2 if failed else 0


def _report_separated(args: argparse.Namespace, path: Path, res: Any) -> None:
    """What ``separate`` prints for one separated input (a ``SeparateResult``)."""
    dur_s = res.n_samples / res.sample_rate
    terms = ", ".join(f"{k} {v}" for k, v in res.latency_terms.items())
    print(f"{path}: {dur_s:.2f} s, {res.sample_rate} Hz, {res.n_channels} ch -> {args.out / path.stem}/")
    for p in res.stem_paths:
        print(f"  {p}")
    print(f"  {res.notes_path} ({res.n_notes} notes)")
    print(
        f"  latency {res.latency_samples} samples = {1000 * res.latency_samples / res.sample_rate:.2f} ms "
        f"({terms}); compensated in the files"
    )
    print(f"  {dur_s / max(res.wall_s, 1e-9):.1f}x real time")
    if res.n_bad_samples:
        print(f"  warning: {res.n_bad_samples} NaN/Inf input samples were replaced by silence", file=sys.stderr)


_WORKER_RUN: Callable[[Path], Any] | None = None
_WORKER_BUSY = False  # a --jobs worker is running a task (a file or a shifted run)
_WORKER_STOPPING = False  # a --jobs worker was told to stop (SIGTERM)


def _worker_init() -> None:
    """A ``--jobs`` worker process: one BLAS / OpenMP thread (numpy is not imported yet: N
    processes of several spinning threads each ran 5x slower on 2 cores). Ctrl-C reaches the whole
    process group, but only the main process acts on it (it stops the workers with SIGTERM): a worker
    interrupted inside the pool's call queue died holding its lock, and the pool hung on the others.
    SIGTERM ends the file in hand as Ctrl-C does (its files closed, valid); an idle worker leaves quietly."""
    import os

    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)


def _worker_sigterm(signum: int, frame: Any) -> None:
    """Once: the pool sends SIGTERM again when a worker leaves, which must not cut a file's closing short;
    no task starts after it (the pool keeps one queued beyond its workers, past the reach of cancelling)."""
    global _WORKER_STOPPING
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _WORKER_STOPPING = True
    if _WORKER_BUSY:
        raise KeyboardInterrupt  # the task closes what it wrote
    raise SystemExit(0)  # waiting for work: no traceback from the pool's loop


@contextlib.contextmanager
def _worker_task() -> Iterator[None]:
    """Marks a ``--jobs`` worker busy while it runs one task (``_worker_sigterm``); a worker told to stop
    starts none."""
    global _WORKER_BUSY
    if _WORKER_STOPPING:
        raise KeyboardInterrupt
    _WORKER_BUSY = True
    try:
        yield
    finally:
        _WORKER_BUSY = False


def _separate_one(args: argparse.Namespace, path: Path) -> Any:
    """In a ``--jobs`` worker: separate ``path`` (the network is built on the worker's first file)."""
    global _WORKER_RUN
    with _worker_task():
        if _WORKER_RUN is None:
            _WORKER_RUN = _separate_runner(args)
        return _WORKER_RUN(path)


def _shift_run(args: argparse.Namespace, src: Path, out: Path, k: int) -> Any:
    """In a ``--jobs`` worker: shifted run k of ``separate --shifts`` (``bridge.backends.shifted``): the blind
    path without its re-masking, into float WAV (the network and transcriber built on the worker's first run)."""
    global _WORKER_SHIFT
    from bridge.backends.shifted import one_run, plain

    with _worker_task():
        if _WORKER_SHIFT is None:
            _WORKER_SHIFT = (_network(args), _transcriber(args))  # as _separate_runner's
        processor, transcriber = _WORKER_SHIFT
        return one_run(processor, plain(transcriber, k, args.shifts), src, out, args.block_size)


def _transcriber(args: argparse.Namespace) -> Any:
    """The blind path's ``Transcriber`` for ``separate``'s arguments (``--threads``, ``--shares`` parsed)."""
    from bridge.transcribe import SONG_CONTEXT, TRANSCRIBED_SHARES, Transcriber

    song = SONG_CONTEXT if getattr(args, "song_context", True) else None
    return Transcriber(n_threads=args.threads, shares=args.shares or TRANSCRIBED_SHARES, song_context=song)


_WORKER_SHIFT: tuple[Any, Any] | None = None


@contextlib.contextmanager
def _shift_pool(args: argparse.Namespace) -> Iterator[Callable[[list[tuple[Path, Path, int]]], list[Any]]]:
    """``separate --shifts N --jobs J`` on one input: a ``RunAll`` running the N shifted runs in up to J
    processes (spawned, as ``_separate_parallel``'s)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(args.jobs, args.shifts), mp_context=ctx, initializer=_worker_init)

    def run_all(runs: list[tuple[Path, Path, int]]) -> list[Any]:
        from concurrent.futures import FIRST_EXCEPTION, wait

        with _sigint_held():
            futures = [pool.submit(_shift_run, args, src, out, k) for src, out, k in runs]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)  # a failed run stops the others at once
            return [f.result() for f in futures]
        except BaseException:  # every worker stopped before the caller removes the runs' folder
            _stop_pool(pool)
            raise

    try:
        yield run_all
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT held back in this thread (and in the processes it spawns, which inherit the mask) meanwhile; a
    Ctrl-C pressed then arrives when the block ends."""
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    except (AttributeError, ValueError, OSError):  # no POSIX signal masks (Windows)
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _stop_pool(pool: Any, grace_s: float = 30.0) -> None:
    """Ends a ``ProcessPoolExecutor`` on an interrupt or error: each worker terminated (SIGTERM: it closes its
    files, ``_worker_init``), the queue dropped; a worker still there after ``grace_s`` is killed, so a stuck
    one cannot hold the command."""
    procs = list((getattr(pool, "_processes", None) or {}).values())  # None once shut down: a second call
    for proc in procs:
        with contextlib.suppress(OSError):
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    deadline = time.monotonic() + grace_s
    try:
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
    finally:  # also on a second Ctrl-C while waiting: the workers ignore SIGINT, nothing else would end them
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    pool.shutdown(wait=True)


def _separate_parallel(args: argparse.Namespace) -> int:
    """``separate --jobs N``: up to N inputs at once, each in its own process (spawned: a fresh
    onnxruntime per process, ``--threads`` each); results print as files finish."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from bridge.errors import InputError

    one = argparse.Namespace(**{**vars(args), "quiet": True, "jobs": 1})  # no progress bars from N processes
    n_workers = min(args.jobs, len(args.inputs))
    if not args.quiet:
        print(f"separating {len(args.inputs)} files, {n_workers} at a time", file=sys.stderr)
    ctx = multiprocessing.get_context("spawn")
    failed = 0
    pool = ProcessPoolExecutor(n_workers, mp_context=ctx, initializer=_worker_init)
    try:
        with _sigint_held():  # the workers start with Ctrl-C held back, then ignore it (_worker_init)
            futures = {pool.submit(_separate_one, one, path): path for path in args.inputs}
        for fut in as_completed(futures):
            try:
                res = fut.result()
            except InputError as e:
                print(f"stembridge: error: {e}", file=sys.stderr)
                failed += 1
                continue
            _report_separated(args, futures[fut], res)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)
    return 2 if failed else 0


def cmd_parts(args: argparse.Namespace) -> int:
    from bridge.parts.score_parts import gm_program_name, read_parts

    parts = read_parts(args.score)
    width = max(len(p.name) for p in parts)
    print(f"{'part (file name)':<{width}}  channel  program                      notes")
    for p in parts:
        program = "drums" if p.is_drum else f"{p.program:3d} {gm_program_name(p.program)}"
        print(f"{p.name:<{width}}  {p.channel + 1:7d}  {program:<27}  {p.n_notes:5d}")
    return 0


def cmd_align(args: argparse.Namespace) -> int:
    from bridge.align.command import cmd_align as run_align

    return run_align(args)


def cmd_info(args: argparse.Namespace) -> int:
    import json

    from bridge.model import read_metadata, resolve
    from bridge.notes import DRUM_STEM

    path, sha = resolve(args.model)
    meta = read_metadata(path)
    d = meta.as_dict()
    if args.json:
        print(json.dumps(d, indent=2, sort_keys=True))
        return 0
    print(f"{meta.name} {meta.version}  ({path})")
    print(f"  stems: {', '.join(meta.all_stems)} (other = input minus the rest)")
    print(f"  sample rate {meta.sample_rate} Hz, n_fft {meta.n_fft}, hop {meta.hop}, window {meta.window}")
    print(f"  model latency {meta.latency_samples} samples ({1000 * meta.latency_samples / meta.sample_rate:.1f} ms)")
    print(f"  score conditioned: {'yes' if meta.score_conditioned else 'no'}; recurrent state {meta.state_size} floats")
    print(f"  notes: keys {meta.key_low}-{meta.key_low + meta.n_keys - 1}; min note {meta.min_note_ms:g} ms")
    for s in meta.stems:
        fo = meta.frame_onset_threshold.get(s, 0.0)
        frame_onsets = f", frame onsets at {fo:g}" if fo > 0 and s != DRUM_STEM else ""
        print(
            f"    {s}: onset threshold {meta.onset_threshold[s]:g}, "
            f"frame threshold {meta.frame_threshold[s]:g}{frame_onsets}"
        )
    for key in ("description", "training", "metrics"):
        if key in meta.extra:
            print(f"  {key}: {json.dumps(meta.extra[key], sort_keys=True)[:400]}")
    if sha:
        print(f"  sha256 (index): {sha}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from bridge.model import list_models

    entries = list_models()
    if not entries:
        print("no models registered")
        return 0
    for e in entries:
        mark = "*" if e["default"] else " "
        print(f"{mark} {e['name']:<16} {e['file']}")
    print("(* = default)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bridge.live.command import run_bridge

    return run_bridge(args)


def cmd_devices(args: argparse.Namespace) -> int:
    from bridge.devices import print_devices

    return print_devices()


def cmd_batch(args: argparse.Namespace) -> int:
    from bridge.batch.run import cmd_batch as run_batch_command

    return run_batch_command(args)


def _forward(module: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise StembridgeError(
                f"'{args.command}' needs the training extra ({e.name} missing): pip install -e '.[train]'"
            ) from None
        return int(mod.main(list(args.rest)) or 0)

    return run


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "separate": cmd_separate,
    "parts": cmd_parts,
    "align": cmd_align,
    "info": cmd_info,
    "models": cmd_models,
    "run": cmd_run,
    "devices": cmd_devices,
    "batch": cmd_batch,
    "corpus": _forward("export.data.corpus"),
    "train": _forward("export.train"),
    "export": _forward("export.onnx_export"),
    "train-notes": _forward("export.note_classes"),
}


def _sigterm_to_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


FORWARDED = ("corpus", "train", "export", "train-notes")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in FORWARDED:
        # argparse.REMAINDER does not capture a first token that looks like an option
        # (``corpus --out DIR``), so the training commands get their arguments untouched.
        args = argparse.Namespace(command=argv[0], rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        signal.signal(signal.SIGTERM, _sigterm_to_interrupt)
    except ValueError:  # not the main thread (embedded use)
        pass
    try:
        return COMMANDS[args.command](args)
    except StembridgeError as e:
        print(f"stembridge: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("stembridge: interrupted; files written so far are closed and valid", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 141
