"""Render parts stem by stem with the FluidSynth CLI and mix them exactly in numpy.

- ``SOUNDFONTS_TRAIN``: soundfonts used for training (FluidR3_GM, TimGM6mb); ``train_soundfonts()``
  gives them, or the files listed in ``STEMBRIDGE_TRAIN_SOUNDFONTS`` (a machine without the Debian
  packages, e.g. a GPU box given FluidR3Mono_GM.sf3 + TimGM6mb.sf2).
- ``SOUNDFONT_HELDOUT``: MuseScore General, reserved for the held-out benchmark; never for training.
- ``part_to_midi(part, qpm, meter, duration_s)``: a ``pretty_midi.PrettyMIDI`` of one part.
- ``render_midi(midi_path, soundfont, sample_rate) -> (n_samples,) float32``: FluidSynth, mono.
- ``mix_stems(stems, peak_dbfs) -> (stems, mix, gain)``: scale so the mix peaks at ``peak_dbfs``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf

from export.data.song import Meter, Part

SF2_DIR = Path("/usr/share/sounds/sf2")
SOUNDFONTS_TRAIN = {
    "FluidR3_GM": SF2_DIR / "FluidR3_GM.sf2",
    "TimGM6mb": SF2_DIR / "TimGM6mb.sf2",
}
SOUNDFONT_HELDOUT = Path("/usr/share/sounds/sf3/MuseScore_General_Full.sf3")
DRUM_KITS = (0, 0, 0, 8, 16, 24, 25, 32, 40)
FLUIDSYNTH_GAIN = 0.5
MIDI_RESOLUTION = 960


def train_soundfonts() -> dict[str, Path]:
    """Training soundfonts by name: ``SOUNDFONTS_TRAIN``, or the files in the environment variable
    ``STEMBRIDGE_TRAIN_SOUNDFONTS`` (``os.pathsep``-separated; a font's name is its file stem).
    The held-out MuseScore General soundfont is refused."""
    listed = os.environ.get("STEMBRIDGE_TRAIN_SOUNDFONTS", "")
    if not listed.strip():
        return dict(SOUNDFONTS_TRAIN)
    fonts = {}
    for item in filter(None, listed.split(os.pathsep)):
        path = Path(item)
        if path.name.startswith(SOUNDFONT_HELDOUT.name.split("_Full")[0]):
            raise RuntimeError(f"{path} is the held-out benchmark soundfont: never used for training")
        if not path.is_file():
            raise RuntimeError(f"training soundfont {path} not found (STEMBRIDGE_TRAIN_SOUNDFONTS)")
        fonts[path.stem] = path
    return fonts


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
