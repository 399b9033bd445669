"""Clean patches of training notes: each note cut from its own part's stem, rendered alone, instead of
the mix (``stembridge train-notes --clean-weight``: the classifier also learns each class's timbre
where nothing else sounds; ``bench/clean_probe.py``). Also the cache both this and the dominance
weights (``export/note_dominance.py``) keep beside a run: an array keyed by the notes it was
computed for.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bridge.transcribe.note_classes import KNOWN_CLASSES, PATCH, log_map_db, note_patches


def notes_key(feats: dict[str, np.ndarray], tracks: list[Path], fields: tuple[str, ...] = ("N", "K")) -> str:
    """A hex digest over the features' ``fields`` (the notes ``N``, their track ``K``, ...) and the track
    folders: what a cached per-note array was computed for."""
    key = hashlib.sha1()
    for f in fields:
        key.update(np.ascontiguousarray(feats[f], np.float64 if f == "N" else np.int64).tobytes())
    key.update("\n".join(map(str, tracks)).encode())
    return key.hexdigest()


def clean_key(feats: dict[str, np.ndarray], tracks: list[Path]) -> str:
    """The key of a cache of clean patches: the notes, their tracks, parts and labels, the track folders
    and the patch geometry."""
    return notes_key(feats, tracks, ("N", "K", "Q", "Y")) + ":" + json.dumps(PATCH, sort_keys=True)


def cached_array(path: Path, name: str, key: str, compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """``(array, computed)``: the array ``name`` of the npz ``path`` where its key is ``key``, else
    ``compute()``, written there (atomically) and returned with ``computed`` True."""
    if path.is_file():
        with np.load(path) as z:
            if str(z["key"]) == key:
                return z[name], False
    value = compute()
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # two runs filling one cache do not collide
    with open(tmp, "wb") as f:
        np.savez(f, key=np.array(key), **{name: value})
    tmp.replace(path)
    return value, True


def one_part_notes(feats: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of the notes (``Y`` labels, ``Q`` part, -1 for none) of exactly one true class and one
    true part: the notes a clean patch exists for."""
    y = feats["Y"][:, : len(KNOWN_CLASSES)]
    return np.flatnonzero((y.sum(axis=1) == 1) & (feats["Q"] >= 0))


def clean_patches(feats: dict[str, np.ndarray], rows: np.ndarray, tracks: list[Path], log=print) -> np.ndarray:
    """(len(rows), bins, frames) float16: the patch (``note_patches``) of each note ``rows`` of ``feats``
    (``N`` notes, ``K`` indexing ``tracks``, ``Q`` the part, in sorted stem order as
    ``export.note_classes.track_notes`` numbers them) cut from its part's stem (``stems/Sxx.flac``)
    instead of the mix."""
    import soundfile as sf
    import yaml

    out = np.zeros((len(rows), *feats["P"].shape[1:]), np.float16)
    at = np.full(len(feats["K"]), -1, np.int64)
    at[rows] = np.arange(len(rows))
    done = 0
    for t in np.unique(feats["K"][rows]).tolist():
        td = tracks[t]
        sids = sorted(yaml.safe_load((td / "metadata.yaml").read_text()).get("stems") or {})
        mine = rows[feats["K"][rows] == t]
        for q in np.unique(feats["Q"][mine]).tolist():
            r = mine[feats["Q"][mine] == q]
            x, sr = sf.read(str(td / "stems" / f"{sids[q]}.flac"), dtype="float32", always_2d=True)
            out[at[r]] = note_patches(log_map_db(x.mean(axis=1), sr), feats["N"][r])[0].astype(np.float16)
        done += 1
        if done % 50 == 0:
            log(f"[clean] {done} tracks")
    return out


def cached_clean_patches(
    feats: dict[str, np.ndarray], tracks: list[Path], path: Path, log=print
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(rows, patches, computed)``: the notes a clean patch exists for (``one_part_notes``) and their
    clean patches, read from the cache ``path`` where its key (``clean_key``) fits, else computed there."""
    rows = one_part_notes(feats)
    patches, computed = cached_array(
        path, "patches", clean_key(feats, tracks), lambda: clean_patches(feats, rows, tracks, log)
    )
    return rows, patches, computed
