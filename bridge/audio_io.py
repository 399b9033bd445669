"""Audio files in and out, with every failure turned into a one-line ``InputError``.

Public API
----------
- ``open_audio(path) -> AudioReader``: an opened input file (``sample_rate``, ``n_channels``,
  ``n_samples``, ``blocks(block_size)`` yielding (n_channels, n) float32, ``close()``).
- ``StemWriters(out_dir, stems, sample_rate, n_channels, fmt)``: one streaming writer per stem
  (``write(stems)`` with stems (n_stems, n_channels, n); ``check()`` raises when the output
  folder or a stem file was removed or replaced during the run; ``close()`` finalises every
  header, also on error or interrupt, with SIGINT/SIGTERM held back while it does, so files
  written so far are valid). Existing stem files of an earlier run are overwritten (truncated
  when the writer opens them).
- ``FORMATS``: output formats and the soundfile subtype each uses.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bridge.errors import InputError

# float WAV keeps the stems summing to the input exactly; FLAC tops out at 24-bit PCM
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}
MAX_CHANNELS = 64  # the Processor's limit too
CHECK_INTERVAL_S = 0.25  # how often StemWriters.write checks that its files are still there
# what libsndfile, numpy and the OS raise on corrupt or vanishing files
_READ_ERRORS = (RuntimeError, OSError, ValueError, EOFError, MemoryError, AssertionError, OverflowError)


class AudioReader:
    """Streaming reader over one audio file."""

    def __init__(self, path: str | Path) -> None:
        import soundfile as sf

        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a directory, not an audio file")
        try:
            with _native_stderr_silenced():  # libmpg123 prints notes on garbage while libsndfile probes
                self._f = sf.SoundFile(str(self.path))
        except _READ_ERRORS as e:
            why = _first_line(e)
            if "does not exist" in why:  # libsndfile's text for any file it cannot open; this one exists
                why = "format not recognised, or the data is corrupt"
            raise InputError(f"{self.path}: not a readable audio file ({why})") from None
        self.sample_rate = int(self._f.samplerate)
        self.n_channels = int(self._f.channels)
        self.n_samples = int(self._f.frames)
        problem = None
        if self.n_samples <= 0:
            problem = "contains no audio samples"
        elif not 1000 <= self.sample_rate <= 768000:
            problem = f"unsupported sample rate {self.sample_rate} Hz"
        elif not 1 <= self.n_channels <= MAX_CHANNELS:
            problem = f"unsupported channel count {self.n_channels} (at most {MAX_CHANNELS})"
        if problem is not None:
            self.close()
            raise InputError(f"{self.path}: {problem}")

    def blocks(self, block_size: int) -> Iterator[np.ndarray]:
        """Yield (n_channels, n) float32 blocks, n <= block_size, until the file ends.

        Samples are passed on as decoded (a float file may hold NaN/Inf: the Processor
        replaces them); a read error raises ``InputError``."""
        while True:
            try:
                data = self._f.read(block_size, dtype="float32", always_2d=True)
            except _READ_ERRORS as e:
                raise InputError(f"{self.path}: read failed ({_first_line(e)})") from None
            if data.shape[0] == 0:
                return
            yield np.ascontiguousarray(data.T)

    def close(self) -> None:
        try:
            self._f.close()
        except _READ_ERRORS:
            pass


def open_audio(path: str | Path) -> AudioReader:
    return AudioReader(path)


class StemWriters:
    """One streaming audio writer per stem: ``OUT_DIR/<stem>.<fmt>``."""

    def __init__(self, out_dir: Path, stems: tuple[str, ...], sample_rate: int, n_channels: int, fmt: str) -> None:
        import soundfile as sf

        if fmt not in FORMATS:
            raise InputError(f"unknown output format '{fmt}' (choose from {', '.join(FORMATS)})")
        container, subtype = FORMATS[fmt]
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create output folder {out_dir}: {e.strerror or e}") from None
        self.out_dir = out_dir
        self.paths = [out_dir / f"{s}.{fmt}" for s in stems]
        self._files: list = []
        self._ids: list[tuple[int, int]] = []  # (st_dev, st_ino) of each file as opened
        self._next_check = 0.0
        try:
            for p in self.paths:
                self._files.append(sf.SoundFile(str(p), "w", sample_rate, n_channels, subtype, format=container))
                st = os.stat(p)
                self._ids.append((st.st_dev, st.st_ino))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self.close()
            raise InputError(f"cannot write stems in {out_dir}: {_first_line(e)}") from None

    def write(self, stems: np.ndarray) -> None:
        """stems (n_stems, n_channels, n) float32. Raises ``InputError`` when a write fails
        (disk full, file size limit) or the files were removed (checked every 0.25 s)."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_INTERVAL_S
            self.check()
        if stems.shape[-1] == 0:
            return
        try:
            for f, s in zip(self._files, stems):
                f.write(s.T)
        except (RuntimeError, OSError, AssertionError) as e:  # soundfile asserts on short writes
            free = disk_free_bytes(self.out_dir)
            hint = "; the disk is full" if 0 <= free < (1 << 20) else "; is the disk full or a file size limit reached?"
            raise InputError(f"writing stems in {self.out_dir} failed ({_first_line(e)}){hint}") from None

    def check(self) -> None:
        """Raise ``InputError`` when a stem file is no longer at its path (folder removed, file
        deleted or replaced): on POSIX the writes would otherwise land in unlinked files."""
        for p, ident in zip(self.paths, self._ids):
            try:
                st = os.stat(p)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != ident:
                raise InputError(f"output folder {self.out_dir} or stem file {p.name} was removed during the run")

    def close(self) -> None:
        """Finalise every header; safe to call twice and after errors. SIGINT and SIGTERM are
        held back until every file is closed (a second Ctrl-C cannot leave a header unwritten)."""
        blocked = _block_signals()
        try:
            for f in self._files:
                try:
                    f.close()
                except (RuntimeError, OSError, AssertionError):
                    pass
            self._files = []
        finally:
            _unblock_signals(blocked)


_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _block_signals() -> set[int | signal.Signals] | None:
    """Hold SIGINT/SIGTERM back in this thread; returns the previous mask (None: unsupported)."""
    if not hasattr(signal, "pthread_sigmask"):
        return None
    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    except (OSError, ValueError):
        return None


def _unblock_signals(previous: set[int | signal.Signals] | None) -> None:
    """Restore the mask; a signal that arrived meanwhile is delivered now."""
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block (C libraries' chatter), when it can."""
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError, AttributeError):
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


def disk_free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize
