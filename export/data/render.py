"""Render parts stem by stem with the FluidSynth CLI and mix them exactly in numpy.

- ``SOUNDFONTS_TRAIN``: General MIDI soundfonts used for training (every Debian GM soundfont except
  MuseScore General: FluidR3_GM, TimGM6mb, csound's sf_GMbank, the OPL-3 FM bank);
  ``train_soundfonts()`` gives those installed, or the files listed in
  ``STEMBRIDGE_TRAIN_SOUNDFONTS`` (a machine without the Debian packages, e.g. a GPU box given
  FluidR3Mono_GM.sf3 + TimGM6mb.sf2).
- ``DRUM_SOUNDFONTS``: drum-only soundfonts (avldrums: one kit at bank 0 program 0, so drum parts
  are rendered on a melodic channel); ``drum_soundfonts()`` gives those installed.
- ``SOUNDFONT_HELDOUT``: MuseScore General, reserved for the held-out benchmark; never for training.
  ``is_heldout_soundfont(path)`` recognises it through symlinks (``default-GM.sf3`` may point to
  it), by name and by content; ``check_training_soundfont(path)`` raises on it.
- ``soundfont_presets(path) -> set[(bank, program)]``: the presets a soundfont defines.
- ``part_to_midi(part, qpm, meter, duration_s)``: a ``pretty_midi.PrettyMIDI`` of one part.
- ``render_midi(midi_path, soundfont, sample_rate) -> (n_samples,) float32``: FluidSynth, mono.
- ``mix_stems(stems, peak_dbfs) -> (stems, mix, gain)``: scale so the mix peaks at ``peak_dbfs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from export.data.song import Meter, Part

SF2_DIR = Path("/usr/share/sounds/sf2")
SOUNDFONTS_TRAIN = {
    "FluidR3_GM": SF2_DIR / "FluidR3_GM.sf2",  # fluid-soundfont-gm
    "TimGM6mb": SF2_DIR / "TimGM6mb.sf2",  # timgm6mb-soundfont
    "sf_GMbank": SF2_DIR / "sf_GMbank.sf2",  # csound-soundfont
    "OPL-3_FM_128M": SF2_DIR / "OPL-3_FM_128M.sf2",  # opl3-soundfont
}
# fluid-soundfont-gs (FluidR3_GS.sf2) is installed but holds only GS sound-effect variations (no
# bank-0 instruments), so it cannot render a part on its own and is not listed.
DRUM_SOUNDFONTS = {
    "Black_Pearl_4_LV2": SF2_DIR / "Black_Pearl_4_LV2.sf2",  # avldrums.lv2-soundfont
    "Red_Zeppelin_4_LV2": SF2_DIR / "Red_Zeppelin_4_LV2.sf2",
}
SOUNDFONT_HELDOUT = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
HELDOUT_NAME_PREFIX = "musescore"
DRUM_KITS = (0, 0, 0, 8, 16, 24, 25, 32, 40)
FLUIDSYNTH_GAIN = 0.5
MIDI_RESOLUTION = 960


def is_heldout_soundfont(path: Path | str) -> bool:
    """True when ``path`` is (or links to, or is a renamed copy of) MuseScore General."""
    path = Path(path)
    real = path.resolve()
    if any(p.name.lower().startswith(HELDOUT_NAME_PREFIX) for p in (path, real)):
        return True
    heldout = SOUNDFONT_HELDOUT.resolve()
    if real == heldout:
        return True
    if heldout.is_file() and real.is_file() and real.stat().st_size == heldout.stat().st_size:
        return _sha256(real) == _sha256(heldout)
    return False


def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_training_soundfont(path: Path | str) -> Path:
    """``path`` as a Path; raises RuntimeError when it is the held-out benchmark soundfont."""
    if is_heldout_soundfont(path):
        raise RuntimeError(f"{path} is the held-out benchmark soundfont: never used for training")
    return Path(path)


def train_soundfonts() -> dict[str, Path]:
    """Installed General MIDI training soundfonts by name (``SOUNDFONTS_TRAIN``), or the files in
    the environment variable ``STEMBRIDGE_TRAIN_SOUNDFONTS`` (``os.pathsep``-separated; a font's
    name is its file stem). The held-out MuseScore General soundfont is refused."""
    listed = os.environ.get("STEMBRIDGE_TRAIN_SOUNDFONTS", "")
    if not listed.strip():
        return {k: check_training_soundfont(p) for k, p in SOUNDFONTS_TRAIN.items() if p.is_file()}
    fonts = {}
    for item in filter(None, listed.split(os.pathsep)):
        path = check_training_soundfont(item)
        if not path.is_file():
            raise RuntimeError(f"training soundfont {path} not found (STEMBRIDGE_TRAIN_SOUNDFONTS)")
        fonts[path.stem] = path
    return fonts


def drum_soundfonts() -> dict[str, Path]:
    """Installed drum-only soundfonts by name (``DRUM_SOUNDFONTS``); none when
    ``STEMBRIDGE_TRAIN_SOUNDFONTS`` lists the fonts explicitly."""
    if os.environ.get("STEMBRIDGE_TRAIN_SOUNDFONTS", "").strip():
        return {}
    return {k: check_training_soundfont(p) for k, p in DRUM_SOUNDFONTS.items() if p.is_file()}


@lru_cache(maxsize=64)
def soundfont_presets(path: Path | str) -> frozenset[tuple[int, int]]:
    """(bank, program) of every preset in an SF2/SF3 file (its ``pdta/phdr`` chunk)."""
    from export.data.sf2_headers import preset_keys

    return preset_keys(path)


def fluidsynth_binary() -> str:
    """Path of the ``fluidsynth`` executable (``FLUIDSYNTH`` env var overrides)."""
    exe = os.environ.get("FLUIDSYNTH") or shutil.which("fluidsynth")
    if not exe:
        raise RuntimeError("fluidsynth not found: install the Debian package 'fluidsynth'")
    return exe


def fluidsynth_version() -> str:
    """First line of ``fluidsynth --version``."""
    out = subprocess.run([fluidsynth_binary(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().splitlines()[0] if out.stdout else "unknown"


def part_to_midi(part: Part, qpm: float, meter: Meter, duration_s: float) -> pretty_midi.PrettyMIDI:
    """A one-instrument MIDI file of ``part`` (drums on channel 10), padded to ``duration_s``."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm, resolution=MIDI_RESOLUTION)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(meter.numerator, meter.denominator, 0.0))
    inst = pretty_midi.Instrument(program=int(part.program), is_drum=part.is_drum)
    for on, off, pitch, vel in part.notes:
        inst.notes.append(pretty_midi.Note(int(vel), int(pitch), float(on), float(off)))
    # An inert controller at the end keeps FluidSynth rendering to the full track length.
    inst.control_changes.append(pretty_midi.ControlChange(110, 0, float(duration_s)))
    pm.instruments.append(inst)
    return pm


def render_midi(midi_path: Path | str, soundfont: Path | str, sample_rate: int = 44100) -> np.ndarray:
    """Render a MIDI file with FluidSynth (reverb and chorus off): mono (n_samples,) float32."""
    with tempfile.TemporaryDirectory(prefix="sbr_") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [
            fluidsynth_binary(),
            "-ni",
            "-q",
            "-R",
            "0",
            "-C",
            "0",
            "-g",
            str(FLUIDSYNTH_GAIN),
            "-r",
            str(sample_rate),
            "-o",
            "audio.file.format=float",
            "-o",
            "synth.cpu-cores=1",
            "-F",
            str(wav),
            str(soundfont),
            str(midi_path),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        audio, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise RuntimeError(f"fluidsynth wrote {sr} Hz, expected {sample_rate}")
    return audio.mean(axis=1).astype(np.float32)


def fit_length(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """Trim or zero-pad (n,) audio to (n_samples,), with a 10 ms fade-out when trimming."""
    if len(audio) >= n_samples:
        out = audio[:n_samples].copy()
        fade = min(441, n_samples)
        out[n_samples - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
        return out
    return np.pad(audio, (0, n_samples - len(audio)))


def mix_stems(stems: np.ndarray, peak_dbfs: float = -1.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Scale (n_stems, n_samples) stems so the mix (their sum) and every stem peak at most ``peak_dbfs``.

    Returns (stems, mix, gain) with ``mix == stems.sum(0)`` computed after scaling.
    """
    target = 10.0 ** (peak_dbfs / 20.0)
    mix = stems.sum(axis=0, dtype=np.float64)
    peak = max(float(np.abs(mix).max(initial=0.0)), float(np.abs(stems).max(initial=0.0)))
    gain = target / peak if peak > 0 else 1.0
    stems = (stems * gain).astype(np.float32)
    return stems, stems.sum(axis=0, dtype=np.float64).astype(np.float32), gain
