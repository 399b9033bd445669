"""Reader of Slakh2100-layout tracks (the real Slakh2100 or this project's synthetic corpus).

- ``list_tracks(root, split=None) -> list[Path]``: track directories under ``root`` (also under
  ``root/{train,validation,test}`` as real Slakh2100 is laid out), optionally of one split.
- ``load_track(track_dir, stems=DEFAULT_STEMS, sample_rate=44100) -> dict`` with
  ``mix`` (n_samples,) float32, ``stems`` (n_stems, n_samples) float32 (sum of the Slakh stems of
  each class, by ``bridge.instruments.stem_for_program``), ``other`` (n_samples,) float32 (every
  remaining stem), ``notes`` (one (n_notes, 4) float32 array per stem: onset_s, offset_s,
  midi_pitch, velocity; drums mapped through ``DRUM_CLASS_OF``, pitched clipped to MIDI 21..108),
  ``sample_rate`` and ``metadata``.

Mixture choice: real Slakh2100's mix.flac is not exactly the sum of its stems (it was mixed and
normalised separately), so when every stem of the track has audio the returned ``mix`` is the
sum of the loaded stems (``stems.sum(0) + other`` exactly, up to float32 rounding); only when
some rendered stem file is missing is ``mix.flac`` loaded instead. Stems with
``audio_rendered: false`` are skipped (their notes too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from bridge.instruments import DEFAULT_STEMS, DRUM_CLASS_OF, OTHER, stem_for_program

SPLITS = ("train", "validation", "test")
KEY_MIN, KEY_MAX = 21, 108
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_metadata(track_dir: Path | str) -> dict:
    """Parsed ``metadata.yaml`` of a track."""
    with open(Path(track_dir) / "metadata.yaml") as f:
        return yaml.load(f, Loader=_Loader)


def list_tracks(root: Path | str, split: str | None = None) -> list[Path]:
    """Sorted track directories (holding metadata.yaml) under ``root`` or ``root/<split>``.

    ``split``: None for all; else tracks in ``root/<split>/`` or whose metadata ``split`` matches
    (tracks without a ``split`` field directly under ``root`` count as ``train``).
    """
    root = Path(root)
    out: list[Path] = []
    for sub in SPLITS:
        d = root / sub
        if d.is_dir() and (split is None or split == sub):
            out += [p for p in d.iterdir() if (p / "metadata.yaml").is_file()]
    for p in root.iterdir() if root.is_dir() else []:
        if p.name in SPLITS or p.name.startswith(".") or not (p / "metadata.yaml").is_file():
            continue
        if split is None or read_metadata(p).get("split", "train") == split:
            out.append(p)
    return sorted(out)


def _read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono (n_samples,) float32 at ``sample_rate`` (channel mean; soxr resampling if needed)."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def _read_notes(path: Path, is_drum: bool) -> np.ndarray:
    """Notes (n_notes, 4) float32 of a stem's MIDI file: onset_s, offset_s, pitch, velocity."""
    import pretty_midi

    rows = []
    for inst in pretty_midi.PrettyMIDI(str(path)).instruments:
        drum = is_drum or inst.is_drum
        for n in inst.notes:
            if drum:
                if n.pitch not in DRUM_CLASS_OF:
                    continue
                pitch = DRUM_CLASS_OF[n.pitch]
            else:
                pitch = min(max(n.pitch, KEY_MIN), KEY_MAX)
            rows.append((n.start, n.end, pitch, n.velocity))
    if not rows:
        return np.zeros((0, 4), np.float32)
    arr = np.asarray(rows, dtype=np.float32)
    return arr[np.argsort(arr[:, 0], kind="stable")]


def _fit(x: np.ndarray, n: int) -> np.ndarray:
    return x[:n] if len(x) >= n else np.pad(x, (0, n - len(x)))


def load_track(
    track_dir: Path | str,
    stems: tuple[str, ...] = DEFAULT_STEMS,
    sample_rate: int = 44100,
    with_notes: bool = True,
) -> dict:
    """Load one track: mix, per-class stems, other, notes (see the module docstring for shapes)."""
    track_dir = Path(track_dir)
    meta = read_metadata(track_dir)
    audio_dir = track_dir / meta.get("audio_dir", "stems")
    midi_dir = track_dir / meta.get("midi_dir", "MIDI")
    index = {s: k for k, s in enumerate(stems)}
    loaded: list[tuple[int, np.ndarray]] = []  # (stem index or -1 for other, audio)
    notes: list[list[np.ndarray]] = [[] for _ in stems]
    missing = False
    for sid, info in sorted((meta.get("stems") or {}).items()):
        if not info.get("audio_rendered", True):
            continue
        path = audio_dir / f"{sid}.flac"
        if not path.is_file():
            missing = True
            continue
        is_drum = bool(info.get("is_drum", False))
        cls = stem_for_program(int(info.get("program_num", 0)), is_drum)
        k = index.get(cls, -1) if cls != OTHER else -1
        loaded.append((k, _read_audio(path, sample_rate)))
        mid = midi_dir / f"{sid}.mid"
        if with_notes and k >= 0 and mid.is_file():
            notes[k].append(_read_notes(mid, is_drum))
    mix_file = None
    if missing or not loaded:
        mix_file = _read_audio(track_dir / "mix.flac", sample_rate)
    n = len(mix_file) if mix_file is not None else max(len(x) for _, x in loaded)
    out_stems = np.zeros((len(stems), n), np.float32)
    other = np.zeros(n, np.float32)
    for k, x in loaded:
        if k >= 0:
            out_stems[k] += _fit(x, n)
        else:
            other += _fit(x, n)
    mix = mix_file if mix_file is not None else out_stems.sum(axis=0) + other
    note_arrays = []
    for parts in notes:
        a = np.concatenate(parts) if parts else np.zeros((0, 4), np.float32)
        note_arrays.append(a[np.argsort(a[:, 0], kind="stable")] if len(a) else a)
    return {
        "mix": mix.astype(np.float32),
        "stems": out_stems,
        "other": other,
        "notes": note_arrays,
        "stem_names": tuple(stems),
        "sample_rate": sample_rate,
        "metadata": meta,
    }
