"""Real compositions from the music21 corpus, spread over random GM instruments.

- ``BACH10_EXCLUDED``: Bach10's chorales (the evaluation set); never used for training.
- ``is_excluded(path) -> bool`` and ``candidate_pieces() -> list[str]`` (corpus-relative paths).
- ``load_piece(rel_path, cache_dir) -> dict``: parts as [[offset_ql, dur_ql, pitch], ...], JSON-cached.
- ``classical_arrangement(rng, duration_s, cache_dir) -> Arrangement``: an excerpt, transposed,
  each part on a random program of a random class, sometimes with generated drums.
"""

from __future__ import annotations

import json
import os
import re
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from export.data.arrange import program_for
from export.data.drums import drum_events
from export.data.parts import register
from export.data.song import METERS, Arrangement, Part, notes_to_seconds, trim_notes

BACH10_EXCLUDED = (
    "bwv255",
    "bwv256",
    "bwv274",
    "bwv62.6",
    "bwv275",
    "bwv296",
    "bwv297",
    "bwv326",
    "bwv327",
    "bwv364",
    "bwv385",
)
# (composer, file suffixes, weight) of the sources drawn from.
SOURCES = (
    ("bach", (".mxl",), 0.45),
    ("palestrina", (".krn",), 0.2),
    ("haydn", (".mxl", ".krn"), 0.07),
    ("mozart", (".mxl", ".krn"), 0.07),
    ("beethoven", (".mxl", ".krn"), 0.06),
    ("monteverdi", (".mxl",), 0.1),
    ("josquin", (".abc",), 0.05),
)
MAX_FILE_BYTES = 40_000  # larger scores (e.g. Beethoven op. 132) take minutes to parse
CLASS_P = {"piano": 0.25, "guitar": 0.2, "strings": 0.3, "bass": 0.05, "other": 0.2}


def is_excluded(path: str | Path) -> bool:
    """True when a corpus path names a Bach10 chorale (``bwv255.mxl``, ``bwv62.6.mxl``, ``bwv255.2`` ...)."""
    stem = Path(str(path)).name.lower()
    stem = re.sub(r"\.(mxl|xml|musicxml|krn|abc|mid|midi)$", "", stem)
    return any(stem == b or stem.startswith(b + ".") for b in BACH10_EXCLUDED)


@lru_cache(maxsize=1)
def _corpus_root() -> Path:
    from music21 import corpus

    return Path(corpus.getComposer("bach")[0]).parents[1]


@cache
def candidate_pieces(composer: str | None = None) -> tuple[str, ...]:
    """Sorted corpus-relative paths of usable pieces (Bach10 removed), of one composer or all."""
    from music21 import corpus

    root = _corpus_root()
    out = []
    for name, suffixes, _ in SOURCES:
        if composer is not None and name != composer:
            continue
        for p in corpus.getComposer(name):
            rel = Path(p).relative_to(root).as_posix()
            if rel.endswith(suffixes) and not is_excluded(rel) and os.path.getsize(p) <= MAX_FILE_BYTES:
                out.append(rel)
    return tuple(sorted(set(out)))


def _parse(rel_path: str) -> dict:
    from music21 import corpus, meter, stream

    s = corpus.parse(rel_path)
    if isinstance(s, stream.Opus):
        s = s.scores[0]
    s = s.stripTies()
    parts = []
    for part in s.parts:
        notes = []
        for n in part.flatten().notes:
            dur = float(n.duration.quarterLength)
            if dur <= 0:
                continue
            for p in n.pitches:
                notes.append([float(n.offset), dur, int(p.midi)])
        if notes:
            parts.append(notes)
    ts = s.recurse().getElementsByClass(meter.TimeSignature).first()
    length = max((n[0] + n[1] for part in parts for n in part), default=0.0)
    return {"path": rel_path, "parts": parts, "length_ql": length, "meter": ts.ratioString if ts else "4/4"}


def load_piece(rel_path: str, cache_dir: Path | str | None) -> dict:
    """Parse a corpus piece (cached as JSON in ``cache_dir``): parts, length_ql and meter."""
    if is_excluded(rel_path):
        raise ValueError(f"{rel_path} is a Bach10 piece, excluded from training")
    if cache_dir is None:
        return _parse(rel_path)
    cache = Path(cache_dir) / (rel_path.replace("/", "__") + ".json")
    if cache.exists():
        return json.loads(cache.read_text())
    piece = _parse(rel_path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(piece))
    os.replace(tmp, cache)
    return piece


def pick_piece(rng: np.random.Generator) -> str:
    """A corpus-relative path: a source by weight, then a piece uniformly."""
    w = np.array([s[2] for s in SOURCES])
    composer = SOURCES[rng.choice(len(SOURCES), p=w / w.sum())][0]
    pieces = candidate_pieces(composer)
    return pieces[int(rng.integers(len(pieces)))]


def classical_arrangement(rng: np.random.Generator, duration_s: float, cache_dir: Path | str | None) -> Arrangement:
    """An excerpt of a random corpus piece lasting ``duration_s``, parts on random instruments."""
    rel = pick_piece(rng)
    piece = load_piece(rel, cache_dir)
    qpm = float(rng.uniform(55.0, 120.0))
    span_ql = duration_s * qpm / 60.0
    length = max(piece["length_ql"], 1.0)
    start = float(np.floor(rng.uniform(0.0, max(0.0, length - span_ql)))) if length > span_ql else 0.0
    transpose = int(rng.integers(-5, 7))
    meter = METERS.get(piece["meter"], METERS["4/4"])
    arr = Arrangement(qpm=qpm, meter=meter, duration_s=duration_s, source=f"music21:{rel}", key=f"{transpose:+d}")
    parts = [np.asarray(p, dtype=np.float64) for p in piece["parts"]]
    lowest = int(np.argmin([np.median(p[:, 2]) for p in parts]))
    classes = list(CLASS_P)
    cp = np.array(list(CLASS_P.values()))
    for k, p in enumerate(parts):
        stem = "bass" if k == lowest and rng.random() < 0.5 else classes[rng.choice(len(classes), p=cp)]
        program = program_for(rng, stem)
        low, high = register(program)
        events = []
        n_loops = int(np.ceil((start + span_ql) / length)) + 1
        for loop in range(n_loops):
            for off, dur, pitch in p:
                t = off + loop * length - start
                if -1e-9 <= t < span_ql:
                    events.append([t, dur, pitch + transpose])
        if not events:
            continue
        ev = np.asarray(events)
        med = float(np.median(ev[:, 2]))
        shift = 12 * int(np.round(((low + high) / 2 - med) / 12)) if not (low <= med <= high) else 0
        ev[:, 2] = np.clip(ev[:, 2] + shift, 21, 108)
        vel = float(rng.integers(55, 100))
        ev4 = [(float(a), float(b), int(c), int(vel)) for a, b, c in ev]
        notes = trim_notes(notes_to_seconds(ev4, qpm, rng, timing_jitter_s=0.006), duration_s)
        if len(notes):
            arr.parts.append(Part(program=program, is_drum=False, notes=notes, role=stem))
    if rng.random() < 0.25:
        n_bars = int(np.ceil(span_ql / meter.bar_ql)) + 1
        notes = trim_notes(notes_to_seconds(drum_events(rng, meter, n_bars), qpm, rng), duration_s)
        arr.parts.append(Part(program=0, is_drum=True, notes=notes, role="drums"))
    return arr
