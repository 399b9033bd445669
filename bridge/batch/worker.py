"""One input file to one track folder, written atomically; the Ray actor that does it.

Public API
----------
- ``BatchWorker(model, provider, parts)``: the actor class (the driver wraps it with
  ``ray.remote``). It loads one ``Processor`` (one onnxruntime session, one intra-op thread)
  when created and keeps it for every file; ``ready() -> dict`` says who it is and whether the
  model loaded (``error``: one line, or None); ``run(job) -> record``.
- ``process_job(processor, job, worker) -> record``: the work itself, without Ray. Writes
  ``OUT/<track>/`` exactly as ``stembridge separate`` does (``separate_file``, blind files
  transcribed first, with the job's ``shares``; ``separate_shifted`` for a blind job with ``shifts`` > 1; or
  ``separate_parts_file`` with the parts of the job's score), first into ``partial_dir(out, track)``
  beside it, then renamed into place once every file is complete and
  fsynced; a failure removes the partial folder and leaves an earlier ``OUT/<track>/`` as it was.
  Never raises for a bad input: the record's ``status`` is ``failed`` and ``error`` its one line.
- ``partial_dir(out, track) -> Path``: ``OUT/<parent>/.<name>.partial``; ``remove_partial(out, track)``
  removes it and the shifted runs' folders beside it.

A job is a dict: ``path``, ``track``, ``out``, ``score`` (path or None), ``score_sha256``,
``model`` (identity dict), ``format``, ``block_size``, ``parts``, ``shifts`` (blind inputs: frame grids
averaged, as ``separate --shifts``; 1 when the input has a score), ``shares`` (blind inputs: membership shares
averaged, as ``separate --shares``, a list, the default ``bridge.transcribe.TRANSCRIBED_SHARES``; None: the one
share ``member_share``, as records before shares were recorded, and when the input has a score).
"""

from __future__ import annotations

import copy
import functools
import glob
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

from bridge.errors import InputError, StembridgeError


def partial_dir(out: Path, track: str) -> Path:
    final = out / track
    return final.parent / f".{final.name}.partial"


def remove_partial(out: Path, track: str) -> None:
    """Removes the track's partial folder and the shifted runs' folders beside it (a killed worker's, which
    ``separate_shifted`` could not remove itself)."""
    from bridge.backends.shifted import runs_folder_prefix

    partial = partial_dir(out, track)
    shutil.rmtree(partial, ignore_errors=True)
    for runs in partial.parent.glob(f"{glob.escape(runs_folder_prefix(partial))}*"):
        shutil.rmtree(runs, ignore_errors=True)


def load_processor(model: str | None, provider: str) -> Any:
    """The Processor a worker keeps: one onnxruntime session, one intra-op thread."""
    from bridge.engine import Processor
    from bridge.model import OnnxModel, providers_for

    return Processor(OnnxModel(model, n_threads=1, providers=providers_for(provider)))


class BatchWorker:
    """A Ray actor holding one model session; called by the driver, one file per ``run``."""

    def __init__(self, model: str | None, provider: str, parts: bool) -> None:
        self.processor = None
        self.error: str | None = None
        self.exit_code = 0
        self.identity = _identity()
        try:
            if not parts:
                self.processor = load_processor(model, provider)
        except StembridgeError as e:
            self.error, self.exit_code = str(e), e.exit_code

    def ready(self) -> dict[str, Any]:
        return {**self.identity, "error": self.error, "exit_code": self.exit_code}

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        return process_job(self.processor, job, self.identity)


def _identity() -> dict[str, Any]:
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()[:12]
    except ImportError:
        pass
    return {"host": socket.gethostname(), "pid": os.getpid(), "node": node}


def new_record(job: dict[str, Any], worker: dict[str, Any]) -> dict[str, Any]:
    """A manifest record for ``job``, status ``failed`` until the work succeeds."""
    return {
        "path": job["path"],
        "track": job["track"],
        "sha256": None,
        "size": None,
        "mtime_ns": None,
        "score": job["score"],
        "score_sha256": job["score_sha256"],
        "model": job["model"],
        "format": job["format"],
        "shifts": job.get("shifts", 1),
        "shares": job.get("shares"),
        "status": "failed",
        "error": None,
        "audio_s": None,
        "seconds": None,
        "cpu_s": None,
        "x_real_time": None,
        "worker": f"{worker['host']}:{worker['pid']}" if worker["host"] else None,
        "node": worker["node"],
    }


@functools.cache
def _transcriber() -> Any:
    """The worker's ``bridge.transcribe.Transcriber`` (blind files: transcribe, then separate, as
    ``stembridge separate`` does), built on first use."""
    from bridge.transcribe import Transcriber

    return Transcriber()


def process_job(processor: Any, job: dict[str, Any], worker: dict[str, Any]) -> dict[str, Any]:
    t0, cpu0 = time.perf_counter(), time.process_time()
    path, out, track = Path(job["path"]), Path(job["out"]), job["track"]
    record = new_record(job, worker)
    tmp = partial_dir(out, track)
    try:
        record.update(_fingerprint(path))
        remove_partial(out, track)  # an earlier, killed attempt's
        tmp.mkdir(parents=True)
        if job["parts"]:
            from bridge.backends.offline import separate_parts_file
            from bridge.parts.score_parts import read_parts

            # no network is loaded for --parts: the kit stays the decomposition's (separate --kit-from score)
            res = separate_parts_file(read_parts(Path(job["score"])), path, tmp, job["block_size"], job["format"])
        else:
            from bridge.backends.offline import separate_file

            score = Path(job["score"]) if job["score"] else None
            tr = None if score is not None else _transcriber()
            if tr is not None:  # the job's shares (None: the one default share, as records before --shares)
                tr = copy.copy(tr)
                tr.shares = tuple(job["shares"]) if job.get("shares") else None
            if tr is not None and job.get("shifts", 1) > 1:
                from bridge.backends.shifted import separate_shifted

                res = separate_shifted(processor, path, tmp, tr, job["shifts"], job["block_size"], job["format"])
            else:
                res = separate_file(
                    processor, path, tmp, job["block_size"], job["format"], score_path=score, transcriber=tr
                )
        _fsync_tree(tmp)
        _replace(tmp, out / track)
        record["status"] = "ok"
        record["audio_s"] = round(res.n_samples / res.sample_rate, 3)
    except StembridgeError as e:
        record["error"] = str(e)
    except OSError as e:
        record["error"] = f"{e.filename or path}: {e.strerror or e}"
    except Exception as e:  # a bug or a library failure on this file: it fails alone
        lines = str(e).strip().splitlines()
        record["error"] = f"{path}: internal error: {type(e).__name__}: {lines[0][:300] if lines else ''}"
    finally:
        if record["status"] != "ok":
            shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - t0
    record["seconds"] = round(seconds, 3)
    record["cpu_s"] = round(time.process_time() - cpu0, 3)
    if record["audio_s"]:
        record["x_real_time"] = round(record["audio_s"] / max(seconds, 1e-9), 2)
    return record


def _fingerprint(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not an audio file")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    from bridge.batch.plan import sha256_file

    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256_file(path)}


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def _replace(tmp: Path, final: Path) -> None:
    """Rename the complete ``tmp`` folder to ``final``; an earlier ``final`` is moved aside first
    and removed after, so ``final`` is always either the old folder or the complete new one."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f".{final.name}.old"
        _remove(old)
        final.rename(old)
    tmp.rename(final)
    _fsync_dir(final.parent)
    if old is not None:
        _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
