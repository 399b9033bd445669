"""Real sampled instruments from Debian's ``freepats`` (Gravis UltraSound ``.pat`` patches).

- ``FREEPATS_DIR``: ``/usr/share/midi/freepats`` (``STEMBRIDGE_FREEPATS_DIR`` overrides); pitched
  patches in ``Tone_000/NNN_Name.pat`` (NNN = GM program), drums in ``Drum_000/NNN_Name.pat``
  (NNN = GM percussion note).
- ``available() -> bool``; ``program_patch(program) -> Path | None``: the patch of a GM program,
  else the nearest program of the same 8-program class (freepats has about 70 of 128).
- ``read_patch(path) -> list[Wave]``: the GUS format (a 239-byte header, then per wave a 96-byte
  header and 8/16-bit, signed/unsigned PCM) -- key range, root frequency, loop points, modes.
- ``render_freepats(notes, program, is_drum, sample_rate, n_samples) -> (n_samples,) float32``:
  each note plays the wave whose key range holds its frequency, resampled (linear interpolation)
  to the note's pitch, looping (forward or ping-pong) while held, with a release fade after the
  note off; drums play their note's patch at its recorded pitch, whole.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from bridge.parts.templates import midi_to_hz

FREEPATS_DIR = Path("/usr/share/midi/freepats")
RELEASE_S = 0.12
MAX_NOTE_S = 8.0
_MODE_16BIT, _MODE_UNSIGNED, _MODE_LOOP, _MODE_PINGPONG = 1, 2, 4, 8


@dataclass(frozen=True)
class Wave:
    """One sample of a patch: PCM (n,) float32 in -1..1 at ``sample_rate``, for notes of
    ``low_hz``..``high_hz``, recorded at ``root_hz``, loop [loop_start, loop_end) in samples."""

    data: np.ndarray
    sample_rate: int
    low_hz: float
    high_hz: float
    root_hz: float
    loop_start: int
    loop_end: int
    looped: bool
    pingpong: bool


def freepats_dir() -> Path:
    """Folder of the freepats set (``STEMBRIDGE_FREEPATS_DIR`` overrides ``FREEPATS_DIR``)."""
    return Path(os.environ.get("STEMBRIDGE_FREEPATS_DIR") or FREEPATS_DIR)


@lru_cache(maxsize=4)
def _index(folder: str) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for path in sorted(Path(folder).glob("*.pat")):
        m = re.match(r"(\d{3})_", path.name)
        if m:
            out.setdefault(int(m.group(1)), path)
    return out


def tone_patches() -> dict[int, Path]:
    """GM program -> patch file of the pitched instruments installed."""
    return _index(str(freepats_dir() / "Tone_000"))


def drum_patches() -> dict[int, Path]:
    """GM percussion note -> patch file of the drums installed."""
    return _index(str(freepats_dir() / "Drum_000"))


def available() -> bool:
    """True when freepats is installed with both pitched and drum patches."""
    return bool(tone_patches()) and bool(drum_patches())


def program_patch(program: int) -> Path | None:
    """Patch of GM ``program``, else of the nearest program in its class of 8; None if none."""
    tones = tone_patches()
    block = [p for p in range(int(program) // 8 * 8, int(program) // 8 * 8 + 8) if p in tones]
    if not block:
        return None
    return tones[min(block, key=lambda p: (abs(p - int(program)), p))]


@lru_cache(maxsize=160)
def read_patch(path: Path) -> tuple[Wave, ...]:
    """Waves of a GUS patch file (raises ValueError on another format)."""
    raw = Path(path).read_bytes()
    if not raw.startswith(b"GF1PATCH11"):
        raise ValueError(f"{path}: not a GUS patch")
    (n_waves,) = struct.unpack_from("<H", raw, 85)
    pos = 239
    waves = []
    for _ in range(n_waves):
        fractions = raw[pos + 7]
        size, loop_start, loop_end = struct.unpack_from("<III", raw, pos + 8)
        (rate,) = struct.unpack_from("<H", raw, pos + 20)
        low, high, root = struct.unpack_from("<III", raw, pos + 22)
        modes = raw[pos + 55]
        pos += 96
        body = raw[pos : pos + size]
        pos += size
        if modes & _MODE_16BIT:
            pcm = np.frombuffer(body[: len(body) // 2 * 2], "<u2" if modes & _MODE_UNSIGNED else "<i2")
            x = (pcm.astype(np.float32) - (32768.0 if modes & _MODE_UNSIGNED else 0.0)) / 32768.0
            loop_start, loop_end = loop_start // 2, loop_end // 2
        else:
            pcm8 = np.frombuffer(body, np.uint8 if modes & _MODE_UNSIGNED else np.int8)
            x = (pcm8.astype(np.float32) - (128.0 if modes & _MODE_UNSIGNED else 0.0)) / 128.0
        del fractions  # sub-sample loop fractions: below what linear interpolation resolves
        loop_end = min(loop_end, len(x))
        looped = bool(modes & _MODE_LOOP) and loop_end - loop_start > 8
        x.setflags(write=False)
        waves.append(
            Wave(
                x,
                int(rate),
                low / 1000.0,
                high / 1000.0,
                root / 1000.0,
                loop_start,
                loop_end,
                looped,
                bool(modes & _MODE_PINGPONG),
            )  # fmt: skip
        )
    return tuple(waves)


def _pick_wave(waves: tuple[Wave, ...], freq_hz: float) -> Wave:
    for w in waves:
        if w.low_hz <= freq_hz <= w.high_hz:
            return w
    return min(waves, key=lambda w: abs(np.log(max(w.root_hz, 1e-3) / freq_hz)))


def play_wave(wave: Wave, ratio: float, n_hold: int, n_out: int) -> np.ndarray:
    """(n_out,) float64: ``wave`` read at ``ratio`` input samples per output sample, looping while
    ``n < n_hold`` if it loops, then to its end (or the loop keeps going under the release)."""
    pos = np.arange(n_out) * ratio
    x = wave.data
    if wave.looped:
        start, length = float(wave.loop_start), float(wave.loop_end - wave.loop_start)
        over = pos >= wave.loop_end
        rel = pos[over] - start
        if wave.pingpong:
            rel = np.mod(rel, 2 * length)
            rel = np.where(rel >= length, 2 * length - rel, rel)
        else:
            rel = np.mod(rel, length)
        pos[over] = start + rel
    else:
        keep = pos < len(x) - 1
        pos = pos[keep]
    i0 = np.minimum(pos.astype(np.int64), len(x) - 2)
    frac = pos - i0
    out = np.zeros(n_out)
    out[: len(pos)] = x[i0] * (1.0 - frac) + x[i0 + 1] * frac
    return out


def render_waves(
    notes: np.ndarray, waves: tuple[Wave, ...] | None, sample_rate: int, n_samples: int, drums: dict | None = None
) -> np.ndarray:
    """Notes (n_notes, 4) = onset_s, offset_s, pitch (or GM drum note), velocity: (n_samples,) float32.
    Pitched (``waves``): each note plays the wave for its frequency resampled to its pitch, held for
    its length (at most ``MAX_NOTE_S``), then an exponential release fade; ``waves`` None plays
    nothing. Drums (``drums``: note -> patch file): each note's patch at its recorded pitch, whole."""
    out = np.zeros(n_samples, np.float64)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    for on, off, pitch, vel in notes:
        start = int(round(on * sample_rate))
        if start >= n_samples:
            continue
        if drums is not None:
            path = drums.get(int(pitch))
            if path is None:
                continue
            wave = read_patch(path)[0]
            ratio = wave.sample_rate / sample_rate
            n_hold = int(len(wave.data) / ratio)
            n_out = min(n_samples - start, n_hold)
            x = play_wave(wave, ratio, n_hold, n_out)
        else:
            if not waves:
                continue
            freq = float(midi_to_hz(pitch))
            wave = _pick_wave(waves, freq)
            ratio = freq / wave.root_hz * wave.sample_rate / sample_rate
            n_hold = int(min(off - on, MAX_NOTE_S) * sample_rate)
            n_out = min(n_samples - start, n_hold + int(RELEASE_S * 5 * sample_rate))
            x = play_wave(wave, ratio, n_hold, n_out)
            if n_out > n_hold:  # release: exponential fade after the note off
                x[n_hold:] *= np.exp(-np.arange(n_out - n_hold) / (RELEASE_S * sample_rate))
        vel01 = float(np.clip(vel / 127.0, 0.0, 1.0))
        out[start : start + len(x)] += 0.5 * vel01**1.6 * x
    return out.astype(np.float32)


def render_freepats(notes: np.ndarray, program: int, is_drum: bool, sample_rate: int, n_samples: int) -> np.ndarray:
    """Notes (n_notes, 4) = onset_s, offset_s, pitch (or GM drum note), velocity: (n_samples,) float32."""
    if is_drum:
        return render_waves(notes, None, sample_rate, n_samples, drums=drum_patches())
    tone = program_patch(program)
    return render_waves(notes, read_patch(tone) if tone is not None else None, sample_rate, n_samples)
