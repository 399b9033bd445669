"""The blind path's own transcription of each cached training track, as a score to condition the network on.

Without a score, ``stembridge separate`` conditions the network on a transcription (``bridge.transcribe``:
basic-pitch's notes, each in the part of every class the note classifier finds likely, at the membership
shares ``TRANSCRIBED_SHARES``). That score holds errors no hand-made corruption draws: notes in two or three
class parts at once, notes in the wrong class, basic-pitch's ghosts and misses. Training crops that take this
score (``score.p_transcribed`` in the training config) teach the network to sort out what such a score says
from what the audio says.

Each cached track (``export.train.build_cache``) gets ``<name>.transcribed.npz`` beside its ``.meta.npz``:
``shares`` (k,) and ``notes`` (n, 6) ``[share index, stem index, onset_s, offset_s, pitch, velocity]``, the
stems those of the training config (a class that is no stem of the network, ``other``, is left out, and the
drums have no part: as ``bridge.transcribe.score_of_parts`` gives the network its score at run time).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SUFFIX = ".transcribed.npz"


def transcribed_rows(
    audio: np.ndarray, sample_rate: int, stems: Sequence[str], shares: Sequence[float], transcriber=None
):
    """Mono ``audio`` (n,) -> (n_notes, 6) ``[share index, stem index, onset_s, offset_s, pitch, velocity]``:
    the blind path's transcription at each of ``shares``, its notes in the network's ``stems``."""
    from bridge.transcribe import Transcriber, score_of_parts

    tr = transcriber if transcriber is not None else Transcriber(shares=None)
    analysis = tr.analyse(np.asarray(audio, np.float32), sample_rate)
    rows = []
    for k, share in enumerate(shares):
        per_stem = score_of_parts(tr.transcription(analysis, float(share)).parts, stems)
        for s, notes in enumerate(per_stem):
            if len(notes):
                head = np.tile(np.array([[k, s]], np.float64), (len(notes), 1))
                rows.append(np.concatenate([head, np.asarray(notes, np.float64)], 1))
    return np.concatenate(rows) if rows else np.zeros((0, 6))


def transcribe_cache(paths: Sequence[Path], sample_rate: int, stems: Sequence[str], shares: Sequence[float]) -> int:
    """Write ``<path>.transcribed.npz`` for each cached track ``path`` (``build_cache``'s) that lacks one (or
    has one of other ``shares``); the mix is the sum of the cached sources. Returns how many were written."""
    song = _song_tag()
    todo = [p for p in paths if not _current(p, shares, song)]
    if not todo:
        return 0
    from bridge.transcribe import Transcriber

    tr = Transcriber(shares=None)
    t0 = time.time()
    for n, p in enumerate(todo, 1):
        src = np.load(str(p) + ".audio.npy", mmap_mode="r")
        scale = float(np.load(str(p) + ".meta.npz")["scale"])
        mix = np.asarray(src, np.float32).sum(axis=0) * scale
        rows = transcribed_rows(mix, sample_rate, stems, shares, tr)
        tmp = Path(str(p) + ".transcribed.tmp.npz")
        np.savez(tmp, shares=np.asarray(shares, np.float64), notes=rows, song=song)
        os.replace(tmp, str(p) + SUFFIX)  # a track is done once its file is in place
        if n % 20 == 0 or n == len(todo):
            print(f"[transcribe] {n}/{len(todo)} tracks ({time.time() - t0:.0f} s)", flush=True)
    return len(todo)


def _song_tag() -> str:
    """Which song-context model the blind path's transcription used (its file's sha256; "" for none): a cache
    made with another is made again."""
    from bridge.model import sha256_of
    from bridge.transcribe import SONG_CONTEXT

    return "" if SONG_CONTEXT is None else sha256_of(SONG_CONTEXT)


def _current(path: Path, shares: Sequence[float], song: str) -> bool:
    f = Path(str(path) + SUFFIX)
    if not f.exists():
        return False
    with np.load(f) as z:
        tag = str(z["song"]) if "song" in z.files else ""
        return np.array_equal(z["shares"], np.asarray(shares, np.float64)) and tag == song


def load_transcribed(path: Path) -> np.ndarray | None:
    """The cached track's transcribed notes (n, 6) (see the module docstring), or None where it has none."""
    f = Path(str(path) + SUFFIX)
    if not f.exists():
        return None
    with np.load(f) as z:
        return np.asarray(z["notes"], np.float64).reshape(-1, 6)
