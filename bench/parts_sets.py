"""Test sets of the parts benchmark (``bench/parts.py``), rendered with MuseScore General only.

Every case is a folder ``<cache>/<set>/<case>/`` with ``mix.wav`` (mono float), ``score.mid``
(one named track per part, the score the separation is given) and ``parts/<k>.wav`` (each
part's true signal), rendered once and re-used. Sets:

- ``band``: the held-out band arrangements of ``bench/quality.py`` (corpus seed 9001), each stem a
  part, its MIDI file the part's score (tracks with fewer than two parts are left out).
- ``ensembles``: two parts of the same or a neighbouring instrument in overlapping ranges that
  class stems cannot split: two violins, two pianos, two guitars, violin + viola (seeded random
  lines, pianos and guitars with chords).
- ``chamber``: music21 corpus string quartets (Haydn, Mozart, Beethoven) and wind quartets
  (flute, oboe, clarinet, bassoon) on Bach chorales that are not Bach10's, played with rubato
  (tempo drifting by up to +-15 %), per-note timing jitter and phrase-shaped velocities; the score
  is the performed MIDI.

``perturb(notes_per_part, kind, rng)`` makes the robustness variants: ``jitter30`` (every note
moved by up to +-30 ms), ``shift50`` (all 50 ms late), ``delete10`` (10 % of the notes gone) and
``add10`` (10 % wrong notes added).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

SR = 44100
ENSEMBLES = {  # name: ((program, low, high), (program, low, high), chords)
    "violins": ((40, 64, 88), (40, 57, 81), False),
    "pianos": ((0, 55, 79), (0, 48, 72), True),
    "guitars": ((25, 52, 76), (24, 45, 69), True),
    "violin_viola": ((40, 60, 84), (41, 53, 77), False),
}
QUARTETS = (
    "haydn/opus74no1/movement1.mxl",
    "mozart/k458/movement1.mxl",
    "beethoven/opus18no1/movement2.mxl",
    "haydn/opus1no1/movement1.mxl",
)
STRING_QUARTET = (("Violin I", 40), ("Violin II", 40), ("Viola", 41), ("Cello", 42))
WIND_QUARTET = (("Flute", 73), ("Oboe", 68), ("Clarinet", 71), ("Bassoon", 70))
PERTURBATIONS = ("jitter30", "shift50", "delete10", "add10")


# --------------------------------------------------------------------------- writing a case


def _write_midi(path: Path, parts: list[tuple[str, int, int, np.ndarray]]) -> None:
    """One named track per part: (name, channel, program, notes (n, 4) [on_s, off_s, pitch, vel])."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for name, channel, program, notes in parts:
        inst = pretty_midi.Instrument(program=program, is_drum=channel == 9, name=name)
        for on, off, pitch, vel in np.asarray(notes, np.float64).reshape(-1, 4).tolist():
            inst.notes.append(pretty_midi.Note(int(vel), int(pitch), float(on), float(max(off, on + 0.02))))
        pm.instruments.append(inst)
    pm.write(str(path))


def _render_case(folder: Path, parts: list[tuple[str, int, int, np.ndarray]], seconds: float) -> Path:
    """Render every part alone with MuseScore General and their sum as the mix."""
    import soundfile as sf

    from export.data.render import SOUNDFONT_HELDOUT, render_midi

    if (folder / "mix.wav").is_file():
        return folder
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "parts").mkdir(parents=True)
    n = int(seconds * SR)
    signals = []
    for k, part in enumerate(parts):
        _write_midi(tmp / "parts" / f"{k}.mid", [part])
        x = render_midi(tmp / "parts" / f"{k}.mid", SOUNDFONT_HELDOUT, SR)[:n]
        signals.append(np.pad(x, (0, n - len(x))))
    peak = max(float(np.max(np.abs(np.sum(signals, axis=0)))), 1e-9)
    for k, x in enumerate(signals):
        sf.write(tmp / "parts" / f"{k}.wav", x * (0.7 / peak), SR, subtype="FLOAT")
    sf.write(tmp / "mix.wav", np.sum(signals, axis=0) * (0.7 / peak), SR, subtype="FLOAT")
    _write_midi(tmp / "score.mid", parts)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


# --------------------------------------------------------------------------- sets


def band_cases(cache: Path, n_tracks: int, seconds: float, seed: int = 9001) -> list[Path]:
    """The held-out band set as parts cases (each stem a part)."""
    import soundfile as sf
    import yaml

    from bench.quality import render_heldout
    from bridge.parts.score_parts import read_parts

    out = []
    for track in render_heldout(cache / "band_src", seed, n_tracks, seconds, log=lambda *a: None):
        folder = cache / "band" / f"s{seed}_{seconds:g}s_{track.name}"
        meta = yaml.safe_load((track / "metadata.yaml").read_text())
        names = sorted(meta["stems"])
        if len(names) < 2:
            continue
        if not (folder / "mix.wav").is_file():
            tmp = folder.with_name(folder.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            (tmp / "parts").mkdir(parents=True)
            mix, sr = sf.read(track / "mix.flac", dtype="float32", always_2d=True)
            sf.write(tmp / "mix.wav", mix.mean(axis=1), sr, subtype="FLOAT")
            parts = []
            for k, name in enumerate(names):
                x, _ = sf.read(track / "stems" / f"{name}.flac", dtype="float32", always_2d=True)
                sf.write(tmp / "parts" / f"{k}.wav", x.mean(axis=1), sr, subtype="FLOAT")
                (p,) = read_parts(track / "MIDI" / f"{name}.mid")
                stem = meta["stems"][name]
                label = f"{name}_{stem['midi_program_name']}"
                parts.append((label, 9 if stem["is_drum"] else min(k, 8), int(stem["program_num"]), p.notes))
            _write_midi(tmp / "score.mid", parts)
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
        out.append(folder)
    return out


def _line(rng: np.random.Generator, low: int, high: int, seconds: float, chords: bool, qpm: float) -> np.ndarray:
    """A seeded random line (n, 4) in [low, high] on a major scale, sometimes with chords."""
    scale = (np.arange(128) % 12)[:, None] == np.array([0, 2, 4, 5, 7, 9, 11])[None, :]
    allowed = np.nonzero(scale.any(axis=1))[0]
    allowed = allowed[(allowed >= low) & (allowed <= high)]
    beat = 60.0 / qpm
    t, pos = 0.1, int(rng.integers(len(allowed) // 4, 3 * len(allowed) // 4))
    notes = []
    while t < seconds - 0.3:
        dur = beat * float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
        if rng.random() > 0.1:
            pos = int(np.clip(pos + rng.integers(-3, 4), 0, len(allowed) - 1))
            vel = int(rng.integers(60, 110))
            pitches = [allowed[pos]]
            if chords and rng.random() < 0.35:
                pitches += [allowed[min(pos + 2, len(allowed) - 1)], allowed[min(pos + 4, len(allowed) - 1)]]
            for p in sorted(set(int(q) for q in pitches)):
                notes.append((t, min(t + 0.95 * dur, seconds), p, vel))
        t += dur
    return np.asarray(notes, np.float64).reshape(-1, 4)


def ensemble_cases(cache: Path, per_kind: int, seconds: float, seed: int = 9101) -> list[Path]:
    """Two-part same-instrument ensembles, ``per_kind`` pieces of each kind."""
    out = []
    for kind_index, (kind, (a, b, chords)) in enumerate(ENSEMBLES.items()):
        for i in range(per_kind):
            rng = np.random.default_rng([seed, kind_index, i])
            qpm = float(rng.uniform(80, 130))
            parts = [
                (f"{kind}_1", 0, a[0], _line(rng, a[1], a[2], seconds, chords, qpm)),
                (f"{kind}_2", 1, b[0], _line(rng, b[1], b[2], seconds, chords, qpm)),
            ]
            out.append(_render_case(cache / "ensembles" / f"{kind}_{i}_{seconds:g}s", parts, seconds))
    return out


def _performance(
    rng: np.random.Generator, piece_parts: list[list[list[float]]], seconds: float, qpm: float
) -> list[np.ndarray]:
    """Quarter-length notes -> performed seconds: rubato tempo curve, jitter, phrase velocities."""
    total_ql = max(n[0] + n[1] for part in piece_parts for n in part)
    grid = np.linspace(0.0, total_ql + 1.0, 4097)
    phase = rng.uniform(0, 2 * np.pi, 2)
    period = rng.uniform(6.0, 12.0, 2)
    tempo = qpm * (
        1.0
        + 0.1 * np.sin(2 * np.pi * grid / period[0] + phase[0])
        + 0.05 * np.sin(2 * np.pi * grid / period[1] + phase[1])
    )
    sec_per_ql = 60.0 / tempo
    t_of = np.concatenate([[0.0], np.cumsum(0.5 * (sec_per_ql[1:] + sec_per_ql[:-1]) * np.diff(grid))]) + 0.2
    out = []
    for part in piece_parts:
        a = np.asarray(part, np.float64).reshape(-1, 3)
        on = np.interp(a[:, 0], grid, t_of) + rng.normal(0.0, 0.01, len(a))
        off = np.interp(a[:, 0] + a[:, 1], grid, t_of) - 0.03
        vel = 75 + 20 * np.sin(2 * np.pi * a[:, 0] / 16.0 + rng.uniform(0, 6.3)) + rng.normal(0, 5, len(a))
        notes = np.stack([on, np.maximum(off, on + 0.05), a[:, 2], np.clip(vel, 30, 120)], axis=1)
        out.append(notes[(notes[:, 0] < seconds - 0.2)])
        out[-1][:, 1] = np.minimum(out[-1][:, 1], seconds)
    return out


def chamber_cases(cache: Path, n_pieces: int, seconds: float, seed: int = 9201) -> list[Path]:
    """String quartets and wind quartets (non-Bach10 chorales) played expressively."""
    from export.data.classical import candidate_pieces, is_excluded, load_piece

    chorales = [p for p in candidate_pieces("bach") if "bwv" in p and not is_excluded(p)]
    rng0 = np.random.default_rng(seed)
    picks = [(q, STRING_QUARTET) for q in QUARTETS]
    picks += [(str(c), WIND_QUARTET) for c in rng0.choice(chorales, size=len(QUARTETS), replace=False)]
    order = [x for pair in zip(picks[: len(QUARTETS)], picks[len(QUARTETS) :]) for x in pair]
    out = []
    for i, (rel, ensemble) in enumerate(order[:n_pieces]):
        piece = load_piece(rel, cache / "music21")
        voices = piece["parts"][: len(ensemble)]
        if len(voices) < 2:
            continue
        rng = np.random.default_rng([seed, i])
        qpm = float(rng.uniform(70, 100))
        notes = _performance(rng, voices, seconds, qpm)
        parts = [(name, k, program, n) for k, ((name, program), n) in enumerate(zip(ensemble, notes)) if len(n)]
        name = rel.replace("/", "_").rsplit(".", 1)[0]
        out.append(_render_case(cache / "chamber" / f"{i}_{name}_{seconds:g}s", parts, seconds))
    return out


# --------------------------------------------------------------------------- robustness


def perturb(notes_per_part: list[np.ndarray], kind: str, rng: np.random.Generator) -> list[np.ndarray]:
    """A corrupted copy of a score (see the module docstring for the kinds)."""
    out = []
    for notes in notes_per_part:
        a = np.array(notes, np.float64).reshape(-1, 4)
        if kind == "jitter30":
            d = rng.uniform(-0.03, 0.03, len(a))
            a[:, 0] += d
            a[:, 1] += d
        elif kind == "shift50":
            a[:, :2] += 0.05
        elif kind == "delete10":
            a = a[rng.random(len(a)) >= 0.1]
        elif kind == "add10":
            n_add = int(round(0.1 * len(a)))
            if n_add:
                src = a[rng.integers(0, len(a), n_add)].copy()
                shift = rng.uniform(-2.0, 2.0, n_add)
                src[:, 0] = np.maximum(src[:, 0] + shift, 0.0)
                src[:, 1] = np.maximum(src[:, 1] + shift, src[:, 0] + 0.05)
                src[:, 2] = np.clip(src[:, 2] + rng.choice([-5, -4, -3, 3, 4, 5], n_add), 0, 127)
                a = np.concatenate([a, src])
        else:
            raise ValueError(f"unknown perturbation {kind!r}")
        a[:, :2] = np.maximum(a[:, :2], 0.0)
        out.append(a[np.argsort(a[:, 0], kind="stable")])
    return out
