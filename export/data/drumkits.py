"""Real sampled drum kits: Hydrogen drumkits (Debian ``hydrogen-drumkits``) played from GM notes.

- ``DRUMKIT_DIR``: ``/usr/share/hydrogen/data/drumkits`` (``STEMBRIDGE_DRUMKIT_DIR`` overrides).
- ``available_kits() -> dict[str, Path]``: kits (name -> folder) with at least a kick, a snare, a
  closed hat, a tom and a cymbal, so every GM note the generators write (35-59, 69, 70) sounds.
- ``load_kit(folder) -> Kit``: parses ``drumkit.xml`` (old single-file and layered formats),
  sorts its instruments into categories by name (kick, snare, hats, toms, cymbals, ...) and maps
  GM percussion notes 35-81 onto them with fallbacks (a ride bell falls back to a ride, a tambourine
  to a closed hat, ...).
- ``render_kit(notes, kit, sample_rate, n_samples) -> (n_samples,) float32``: one-shots at the
  notes' onsets, the velocity layer that holds ``velocity / 127``, scaled by velocity; open hats
  choked by the next hat; samples mixed to mono and resampled to ``sample_rate`` (soxr).
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

DRUMKIT_DIR = Path("/usr/share/hydrogen/data/drumkits")

# Category of an instrument, from the first pattern its lower-cased name matches.
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("hat_pedal", r"(h(i|\s)?-?\s?hat|hh|hat).*(pedal|foot|pd\b)|(pedal|foot).*(hat|hh)"),
    ("hat_open", r"(h(i|\s)?-?\s?hat|hh|hat).*(open|op\b|opened|semi|swish)|open\s*(hh|hat)"),
    ("hat_closed", r"h(i|\s)?-?\s?hat|\bhh\b|closed\s*hh|\bhat\b|hihat"),
    ("ride_bell", r"(ride|paiste).*(bell|cup)|\bbell\b.*ride|ride-cup"),
    ("ride", r"ride"),
    ("crash", r"crash|china|splash|cymbal"),
    ("kick", r"kick|bass\s*drum|bassdrum|\bbd\b|bd\d"),
    ("stick", r"stick|rim\s*click|rimclick|side\s*stick"),
    ("clap", r"clap"),
    ("snare", r"snare|\bsd\b|rimshot"),
    ("tom_floor", r"floor|tom\s*low|low\s*tom|tom.*16|tom\s*3|tom2_1|\btom\b.*low"),
    ("tom_high", r"tom\s*hi|high\s*tom|hi\s*tom|tom.*12|tom\s*1\b|tomhi"),
    ("tom_mid", r"tom"),
    ("cowbell", r"cow\s*bell|cowbell"),
    ("tambourine", r"tambourine|tambo"),
    ("shaker", r"shak|maraca|cabasa"),
)
# GM note -> categories in order of preference (the last ones are the fallbacks).
_GM: dict[int, tuple[str, ...]] = {
    35: ("kick",), 36: ("kick",), 37: ("stick", "snare"), 38: ("snare",), 39: ("clap", "snare"),
    40: ("snare",), 41: ("tom_floor", "tom_mid", "tom_high"), 43: ("tom_floor", "tom_mid", "tom_high"),
    45: ("tom_mid", "tom_floor", "tom_high"), 47: ("tom_mid", "tom_high", "tom_floor"),
    48: ("tom_high", "tom_mid", "tom_floor"), 50: ("tom_high", "tom_mid", "tom_floor"),
    42: ("hat_closed",), 44: ("hat_pedal", "hat_closed"), 46: ("hat_open", "hat_closed"),
    49: ("crash", "ride"), 52: ("crash", "ride"), 55: ("crash", "ride"), 57: ("crash", "ride"),
    51: ("ride", "crash"), 59: ("ride", "crash"), 53: ("ride_bell", "ride", "crash"),
    54: ("tambourine", "shaker", "hat_closed"), 56: ("cowbell", "ride_bell", "ride", "crash"),
    69: ("shaker", "tambourine", "hat_closed"), 70: ("shaker", "tambourine", "hat_closed"),
}  # fmt: skip
# Other percussion notes (60-81): a short sound the kit has.
_GM_OTHER = ("cowbell", "stick", "tambourine", "shaker", "snare")
_HAT_CATEGORIES = ("hat_closed", "hat_pedal", "hat_open")
REQUIRED = ("kick", "snare", "hat_closed")


@dataclass
class Layer:
    """One sample of an instrument, played for velocities in [vel_min, vel_max] (0..1)."""

    path: Path
    vel_min: float
    vel_max: float
    gain: float


@dataclass
class Kit:
    """A drum kit: its instruments by category, each a list of velocity layers."""

    name: str
    folder: Path
    categories: dict[str, list[list[Layer]]] = field(default_factory=dict)

    def layers_for(self, gm_note: int) -> list[Layer] | None:
        """The velocity layers played for a GM percussion note, or None when the kit has nothing for it."""
        for cat in _GM.get(int(gm_note), _GM_OTHER):
            if self.categories.get(cat):
                return self.categories[cat][_instrument_index(self, cat, int(gm_note))]
        return None


def _instrument_index(kit: Kit, cat: str, gm_note: int) -> int:
    # Several instruments of one category (e.g. two crashes, three toms named "tom"): spread notes.
    n = len(kit.categories[cat])
    return int(gm_note) % n if n > 1 else 0


def drumkit_dir() -> Path:
    """Folder holding Hydrogen kits (``STEMBRIDGE_DRUMKIT_DIR`` overrides ``DRUMKIT_DIR``)."""
    return Path(os.environ.get("STEMBRIDGE_DRUMKIT_DIR") or DRUMKIT_DIR)


def categorize(name: str) -> str | None:
    """Category of an instrument name (``"Closed HH"`` -> ``hat_closed``), or None."""
    low = name.lower()
    for cat, pattern in _PATTERNS:
        if re.search(pattern, low):
            return cat
    return None


def _text(el: ET.Element, tag: str, default: str = "") -> str:
    found = el.find(tag)
    return (found.text or default).strip() if found is not None and found.text is not None else default


@lru_cache(maxsize=32)
def load_kit(folder: Path | str) -> Kit:
    """Parse ``folder/drumkit.xml`` into a ``Kit`` (instruments without usable samples are skipped)."""
    folder = Path(folder)
    root = ET.parse(folder / "drumkit.xml").getroot()
    for el in root.iter():  # drop XML namespaces of newer kits
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    kit = Kit(_text(root, "name", folder.name) or folder.name, folder)
    for inst in root.iter("instrument"):
        name = _text(inst, "name")
        cat = categorize(name)
        if cat is None or _text(inst, "isMuted") == "true":
            continue
        volume = float(_text(inst, "volume", "1") or 1)
        layers = []
        for layer in inst.iter("layer"):
            path = folder / _text(layer, "filename")
            if path.is_file():
                layers.append(
                    Layer(
                        path,
                        float(_text(layer, "min", "0") or 0),
                        float(_text(layer, "max", "1") or 1),
                        volume * float(_text(layer, "gain", "1") or 1),
                    )
                )
        single = _text(inst, "filename")
        if not layers and single and (folder / single).is_file():
            layers.append(Layer(folder / single, 0.0, 1.0, volume))
        if layers:
            layers.sort(key=lambda lay: (lay.vel_min, lay.vel_max))
            kit.categories.setdefault(cat, []).append(layers)
    for cat in ("tom_floor", "tom_mid", "tom_high"):
        kit.categories.setdefault(cat, [])
    return kit


def is_usable(kit: Kit) -> bool:
    """A kit plays the generators' grooves: kick, snare, closed hat, a tom and a crash or ride."""
    has = {c for c, v in kit.categories.items() if v}
    return (
        all(c in has for c in REQUIRED)
        and bool(has & {"tom_floor", "tom_mid", "tom_high"})
        and bool(has & {"crash", "ride"})
    )


def available_kits() -> dict[str, Path]:
    """Usable kits under ``drumkit_dir()`` by folder name (sorted); empty when none is installed."""
    base = drumkit_dir()
    if not base.is_dir():
        return {}
    out = {}
    for folder in sorted(base.iterdir()):
        if (folder / "drumkit.xml").is_file():
            try:
                kit = load_kit(folder)
            except (ET.ParseError, ValueError, OSError):
                continue
            if is_usable(kit):
                out[folder.name] = folder
    return out


@lru_cache(maxsize=512)
def _sample(path: Path, sample_rate: int) -> np.ndarray:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate)
    peak = float(np.abs(x).max(initial=0.0))
    x = x.astype(np.float64)
    x.setflags(write=False)
    return x if peak > 0 else np.zeros(1)


def _pick_layer(layers: list[Layer], vel01: float) -> Layer:
    for layer in layers:
        if layer.vel_min <= vel01 <= layer.vel_max:
            return layer
    return min(layers, key=lambda lay: abs(0.5 * (lay.vel_min + lay.vel_max) - vel01))


def render_kit(notes: np.ndarray, kit: Kit, sample_rate: int, n_samples: int) -> np.ndarray:
    """One-shots of ``kit`` for notes (n_notes, 4) = onset_s, offset_s, gm_note, velocity: (n_samples,) float32."""
    out = np.zeros(n_samples, np.float64)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    hat_notes = {n for n, cats in _GM.items() if cats[0] in _HAT_CATEGORIES}
    hat_onsets = np.sort(notes[np.isin(notes[:, 2].astype(int), list(hat_notes)), 0])
    for on, _, pitch, vel in notes:
        start = int(round(on * sample_rate))
        layers = kit.layers_for(int(pitch))
        if start >= n_samples or layers is None:
            continue
        vel01 = float(np.clip(vel / 127.0, 0.0, 1.0))
        layer = _pick_layer(layers, vel01)
        hit = _sample(layer.path, sample_rate)
        if int(pitch) == 46:  # an open hat is choked by the next hat
            later = hat_onsets[hat_onsets > on + 1e-6]
            if len(later):
                n_keep = int((later[0] - on) * sample_rate)
                if n_keep < len(hit):
                    fade = min(int(0.02 * sample_rate), len(hit) - n_keep)
                    hit = hit[: n_keep + fade].copy()
                    hit[n_keep:] *= np.linspace(1.0, 0.0, fade)
        # layered kits already get softer with the layer; single-sample kits follow the velocity
        scale = vel01 ** (0.5 if len(layers) > 1 else 1.5)
        end = min(n_samples, start + len(hit))
        out[start:end] += 0.5 * layer.gain * scale * hit[: end - start]
    return out.astype(np.float32)
