"""Audio files in and out, with every failure turned into a one-line ``InputError``.

Public API
----------
- ``open_audio(path) -> AudioReader``: an opened input file (``sample_rate``, ``n_channels``,
  ``n_samples``, ``blocks(block_size)`` yielding (n_channels, n) float32, ``close()``).
- ``StemWriters(out_dir, stems, sample_rate, n_channels, fmt)``: one streaming writer per stem
  (``write(stems)`` with stems (n_stems, n_channels, n); ``close()`` finalises every header, also
  on error or interrupt, so files written so far are valid).
- ``FORMATS``: output formats and the soundfile subtype each uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bridge.errors import InputError

# float WAV keeps the stems summing to the input exactly; FLAC tops out at 24-bit PCM
FORMATS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}


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
            self._f = sf.SoundFile(str(self.path))
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as e:
            raise InputError(f"{self.path}: not a readable audio file ({_first_line(e)})") from None
        self.sample_rate = int(self._f.samplerate)
        self.n_channels = int(self._f.channels)
        self.n_samples = int(self._f.frames)
        if self.n_samples <= 0:
            self._f.close()
            raise InputError(f"{self.path}: contains no audio samples")
        if self.sample_rate < 1000:
            self._f.close()
            raise InputError(f"{self.path}: unsupported sample rate {self.sample_rate} Hz")

    def blocks(self, block_size: int) -> Iterator[np.ndarray]:
        """Yield (n_channels, n) float32 blocks, n <= block_size, until the file ends."""
        import soundfile as sf

        try:
            while True:
                data = self._f.read(block_size, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    return
                yield np.ascontiguousarray(data.T)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise InputError(f"{self.path}: read failed ({_first_line(e)})") from None

    def close(self) -> None:
        self._f.close()


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
        self.paths = [out_dir / f"{s}.{fmt}" for s in stems]
        self._files: list = []
        try:
            for p in self.paths:
                self._files.append(sf.SoundFile(str(p), "w", sample_rate, n_channels, subtype, format=container))
        except (sf.LibsndfileError, RuntimeError, OSError) as e:
            self.close()
            raise InputError(f"cannot write stems in {out_dir}: {_first_line(e)}") from None

    def write(self, stems: np.ndarray) -> None:
        """stems (n_stems, n_channels, n) float32."""
        if stems.shape[-1] == 0:
            return
        try:
            for f, s in zip(self._files, stems):
                f.write(s.T)
        except (RuntimeError, OSError) as e:
            raise InputError(f"writing stems failed: {_first_line(e)}") from None

    def close(self) -> None:
        """Finalise every header; safe to call twice and after errors."""
        for f in self._files:
            try:
                f.close()
            except (RuntimeError, OSError):
                pass
        self._files = []


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:200]


def disk_free_bytes(path: Path) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return -1
    return st.f_bavail * st.f_frsize
