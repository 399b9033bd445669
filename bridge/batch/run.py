"""The batch driver: plan, start or join Ray, hand files to worker actors, keep the manifest.

Public API
----------
- ``run_batch(inputs, out, *, model, parts, score_dir, workers, address, provider, fmt,
  block_size, quiet, stream) -> Summary``: the whole batch (see ``bridge.batch``).
- ``Summary``: counts, audio seconds, wall seconds, failures; ``exit_status`` and ``lines()``.
- ``cmd_batch(args) -> int``: the ``stembridge batch`` command.

Ray is imported here, inside ``run_batch``, so ``stembridge --help`` stays instant and every
other command works without it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bridge.backends import OFFLINE_BLOCK_SIZE
from bridge.batch.plan import MANIFEST, Manifest, collect_inputs, is_done, model_identity, sha256_file
from bridge.batch.worker import BatchWorker, new_record, remove_partial
from bridge.errors import DeviceError, InputError, StembridgeError

INSTALL_HINT = "'batch' needs Ray: pip install 'stembridge[cluster]' (or: pip install ray)"
MAX_ATTEMPTS = 3  # a file whose worker dies this many times fails (it crashes the worker)
LOCAL_OBJECT_STORE_BYTES = 256 << 20  # only paths and records travel through Ray
MAX_FAILURES_LISTED = 20  # in the summary; the manifest has them all
EXIT_MORE_FAILED = 101  # exit status: 1-100 = that many inputs failed, 101 = more than 100


@dataclass
class Summary:
    n_inputs: int = 0
    n_ok: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    audio_s: float = 0.0
    wall_s: float = 0.0
    n_workers: int = 0
    startup_s: float = 0.0  # Ray started or joined, first worker's model loaded
    manifest: Path | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        return min(self.n_failed, EXIT_MORE_FAILED)

    def lines(self) -> list[str]:
        speed = self.audio_s / self.wall_s if self.wall_s > 0 else 0.0
        out = [
            f"batch: {self.n_inputs} inputs: {self.n_ok} done, {self.n_skipped} skipped (done before), "
            f"{self.n_failed} failed"
        ]
        if self.n_workers:
            out.append(
                f"  {self.audio_s / 3600:.3f} h of audio in {_hms(self.wall_s)} on {self.n_workers} workers "
                f"(first ready after {self.startup_s:.1f} s): {speed:.1f}x real time, "
                f"{speed / self.n_workers:.1f}x per worker"
            )
        out.append(f"  manifest: {self.manifest}")
        out += [f"  failed: {error}" for _, error in self.failures[:MAX_FAILURES_LISTED]]
        if len(self.failures) > MAX_FAILURES_LISTED:
            out.append(f"  ... and {len(self.failures) - MAX_FAILURES_LISTED} more failed (see the manifest)")
        return out


def cmd_batch(args: argparse.Namespace) -> int:
    summary = run_batch(
        args.inputs,
        args.out,
        model=args.model,
        parts=args.parts,
        score_dir=args.score_dir,
        workers=args.workers,
        address=args.address,
        provider=args.provider,
        fmt=args.format,
        shifts=args.shifts,
        shares=args.shares,
        quiet=args.quiet,
    )
    for line in summary.lines():
        print(line)
    return summary.exit_status


def run_batch(
    inputs: list[Path],
    out: Path,
    *,
    model: str | None = None,
    parts: bool = False,
    score_dir: Path | None = None,
    workers: int | None = None,
    address: str | None = None,
    provider: str = "cpu",
    fmt: str = "wav",
    block_size: int = OFFLINE_BLOCK_SIZE,
    shifts: int = 1,
    shares: str | None = None,
    quiet: bool = False,
    stream: IO[str] | None = None,
) -> Summary:
    stream = sys.stderr if stream is None else stream
    t0 = time.perf_counter()
    try:
        import ray
    except ImportError:
        raise StembridgeError(INSTALL_HINT) from None
    if parts and score_dir is None:
        raise InputError("--parts needs --score-dir DIR (the parts come from each input's score)")
    if score_dir is not None and not score_dir.is_dir():
        raise InputError(f"{score_dir}: no such score folder")
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if provider not in ("cpu", "cuda"):
        raise InputError(f"unknown provider '{provider}' (cpu or cuda)")
    from bridge.backends.shifted import check_shifts
    from bridge.parts.share_ensemble import parse_shares

    check_shifts(shifts)
    if parts and shifts != 1:
        raise InputError("--shifts is for the blind path only (inputs without a score), not --parts")
    if parts and shares is not None:
        raise InputError("--shares is for the blind path only (inputs without a score), not --parts")
    from bridge.transcribe import TRANSCRIBED_SHARES

    member_shares = list(TRANSCRIBED_SHARES if shares is None else parse_shares(shares))
    items = collect_inputs(inputs, out)
    identity = model_identity(model, parts)
    out = Path(os.path.abspath(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create output folder {out}: {e.strerror or e}") from None

    summary = Summary(n_inputs=len(items), manifest=out / MANIFEST)
    with _locked(out):
        manifest = Manifest(out / MANIFEST)
        todo: list[dict[str, Any]] = []
        try:
            for item in items:
                score = score_dir / f"{item.path.stem}.mid" if score_dir is not None else None
                if score is not None and not score.is_file():
                    score = None
                job = {
                    "path": str(item.path),
                    "track": item.track,
                    "out": str(out),
                    "score": str(score) if score else None,
                    "score_sha256": sha256_file(score) if score else None,
                    "model": identity,
                    "format": fmt,
                    "block_size": block_size,
                    "parts": parts,
                    "shifts": 1 if score else shifts,  # a scored input is separated by its score, unshifted
                    "shares": None if score or parts else member_shares,
                }
                if is_done(manifest.records.get(item.track), job, out):
                    summary.n_skipped += 1
                elif parts and score is None:
                    error = f"{item.path}: no score {score_dir}/{item.path.stem}.mid for --parts"
                    manifest.append(_failed(job, error))
                    summary.n_failed += 1
                    summary.failures.append((str(item.path), error))
                else:
                    todo.append(job)
            if todo:
                _run_jobs(ray, todo, summary, manifest, model, parts, workers, address, provider, quiet, stream)
        finally:
            manifest.compact([item.track for item in items])
    summary.wall_s = time.perf_counter() - t0
    return summary


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """One batch at a time per OUT folder (an advisory lock on the folder itself)."""
    import fcntl

    fd = os.open(out, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise InputError(f"another stembridge batch is writing to {out}") from None
        yield
    finally:
        os.close(fd)


def _durations(jobs: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds of audio per input, from the file headers (0 for unreadable ones)."""
    import soundfile as sf

    seconds = {}
    for job in jobs:
        try:
            info = sf.info(job["path"])
            seconds[job["path"]] = info.frames / info.samplerate
        except Exception:  # unreadable: it fails in its worker, with its own error line
            seconds[job["path"]] = 0.0
    return seconds


def _start_ray(ray: Any, address: str | None, workers: int | None) -> None:
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    # Ray's core installs its own SIGTERM handler (a stack dump, then exit); keep ours, so that
    # SIGTERM and Ctrl-C stop the batch cleanly: workers shut down, partial folders removed
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            n_cpus = workers or n_cores()
            ray.init(address="local", num_cpus=n_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
        hint = " (is it up? With token authentication, set RAY_AUTH_MODE=token and the cluster's token)"
        where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise DeviceError(f"cannot {where}: {_first_line(e)}{hint if address else ''}") from None
    finally:
        for sig, handler in handlers.items():
            if handler is not None:
                with contextlib.suppress(ValueError):  # not the main thread
                    signal.signal(sig, handler)


def n_cores() -> int:
    """Cores this process may run on (the default ``--workers`` without ``--address``)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run_jobs(
    ray: Any,
    todo: list[dict[str, Any]],
    summary: Summary,
    manifest: Manifest,
    model: str | None,
    parts: bool,
    workers: int | None,
    address: str | None,
    provider: str,
    quiet: bool,
    stream: IO[str],
) -> None:
    seconds = _durations(todo)
    queue = collections.deque(sorted(todo, key=lambda j: -seconds[j["path"]]))  # longest first: short tail
    attempts: collections.Counter[str] = collections.Counter()
    t_start = time.perf_counter()
    bar: Progress | None = None
    _start_ray(ray, address, workers)
    try:
        resources = ray.cluster_resources()
        if provider == "cuda" and resources.get("GPU", 0) < 1:
            raise DeviceError("--provider cuda: the Ray cluster has no GPUs")
        unit = "GPU" if provider == "cuda" else "CPU"
        n_workers = min(workers or max(1, int(resources.get(unit, 1))), len(todo))
        summary.n_workers = n_workers
        actor_cls = ray.remote(BatchWorker).options(
            num_cpus=1, num_gpus=1 if provider == "cuda" else 0, max_restarts=0, max_task_retries=0
        )
        pending: dict[Any, tuple[str, Any, dict[str, Any] | None]] = {}  # ref -> (kind, actor, job)
        idle: list[Any] = []
        n_start_deaths = 0

        def start_actor() -> None:
            actor = actor_cls.remote(model, provider, parts)
            pending[actor.ready.remote()] = ("ready", actor, None)

        for _ in range(n_workers):
            start_actor()
        bar = Progress(sum(seconds.values()), len(todo), stream, quiet)
        n_left = len(todo)
        while n_left:
            while idle and queue:
                actor, next_job = idle.pop(), queue.popleft()
                pending[actor.run.remote(next_job)] = ("run", actor, next_job)
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            bar.draw(len(idle) + sum(1 for k, _, _ in pending.values() if k == "run"))
            for ref in done:
                kind, actor, job = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as e:
                    ray.kill(actor)  # unreachable is not always dead: make sure before redoing its file
                    if job is None:  # died while loading the model
                        n_start_deaths += 1
                        if n_start_deaths > MAX_ATTEMPTS * n_workers:
                            raise DeviceError(f"batch workers keep dying while they start: {_first_line(e)}") from None
                    else:
                        attempts[job["path"]] += 1
                        _remove_partial(job)
                        if attempts[job["path"]] < MAX_ATTEMPTS:
                            queue.appendleft(job)
                            bar.message(f"worker died on {job['path']}; it is redone by another worker")
                        else:
                            error = f"{job['path']}: its worker died {MAX_ATTEMPTS} times (crash or out of memory)"
                            n_left -= 1
                            _finish(_failed(job, error), summary, manifest, bar, seconds[job["path"]])
                    start_actor()
                    continue
                except ray.exceptions.RayError as e:
                    if job is None:
                        raise DeviceError(f"a batch worker failed to start: {_first_line(e)}") from None
                    result = _failed(job, f"{job['path']}: {_first_line(e)}")
                if kind == "ready":
                    if result["error"]:
                        err = StembridgeError(f"{result['host']}: {result['error']}")
                        err.exit_code = result["exit_code"]
                        raise err
                    idle.append(actor)
                    summary.startup_s = summary.startup_s or time.perf_counter() - t_start
                    continue
                assert job is not None
                n_left -= 1
                idle.append(actor)
                _finish(result, summary, manifest, bar, seconds[job["path"]])
        bar.close()
    except BaseException:
        if bar is not None:
            bar.message("")  # end the bar's line before the error
        ray.shutdown()
        for job in todo:  # actors killed mid-file leave a hidden partial folder: remove it
            _remove_partial(job)
        raise
    ray.shutdown()


def _finish(record: dict[str, Any], summary: Summary, manifest: Manifest, bar: Progress, audio_s: float) -> None:
    manifest.append(record)
    if record["status"] == "ok":
        summary.n_ok += 1
        summary.audio_s += record["audio_s"] or 0.0
    else:
        summary.n_failed += 1
        summary.failures.append((record["path"], record["error"]))
        bar.message(f"stembridge: failed: {record['error']}")
    bar.file_done(audio_s, record["status"] == "ok")


def _failed(job: dict[str, Any], error: str) -> dict[str, Any]:
    """The manifest record of a job that failed outside its worker (same keys as the worker's)."""
    record = new_record(job, {"host": None, "pid": None, "node": None})
    record.update(error=error, worker=None)
    return record


def _remove_partial(job: dict[str, Any]) -> None:
    remove_partial(Path(job["out"]), job["track"])


def _first_line(e: BaseException) -> str:
    for line in str(e).strip().splitlines():
        if line.strip():
            return line.strip()[:300]
    return type(e).__name__


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Audio hours done / total, throughput, ETA and failures, on ``stream``: a bar redrawn in
    place on a terminal, a plain line every 30 s otherwise, nothing with ``quiet``."""

    def __init__(self, total_audio_s: float, n_files: int, stream: IO[str], quiet: bool) -> None:
        self.total_s, self.n_files, self.stream = total_audio_s, n_files, stream
        self.tty = stream.isatty()
        self.enabled = not quiet
        self.done_s, self.n_done, self.n_failed, self.n_workers = 0.0, 0, 0, 0
        self.t0 = time.perf_counter()
        self.last = -1e9

    def file_done(self, audio_s: float, ok: bool) -> None:
        self.done_s += audio_s
        self.n_done += 1
        self.n_failed += not ok
        self.draw(self.n_workers, force=self.tty)

    def message(self, line: str) -> None:
        """Print ``line`` above the bar (an empty line: just end the bar's line)."""
        if self.enabled and self.tty:
            self.stream.write("\r\x1b[K")
        if line or (self.enabled and self.tty):
            print(line, file=self.stream, flush=True)
        self.last = -1e9

    def draw(self, n_workers: int, force: bool = False) -> None:
        self.n_workers = n_workers
        now = time.perf_counter()
        if not self.enabled or (now - self.last < (0.2 if self.tty else 30.0) and not force):
            return
        self.last = now
        elapsed = now - self.t0
        speed = self.done_s / elapsed if elapsed > 0 else 0.0
        eta = _hms((self.total_s - self.done_s) / speed) if speed > 0 else "?"
        filled = int(30 * self.done_s / self.total_s) if self.total_s > 0 else 30 * self.n_done // self.n_files
        line = (
            f"batch [{'#' * filled}{'-' * (30 - filled)}] {self.done_s / 3600:.3f}/{self.total_s / 3600:.3f} h audio"
            f"  {self.n_done}/{self.n_files} files  {speed:.1f}x real time  ETA {eta}  {self.n_failed} failed"
            f"  ({n_workers} workers)"
        )
        self.stream.write(("\r\x1b[K" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(self.n_workers, force=True)
            if self.tty:
                self.stream.write("\n")
                self.stream.flush()
