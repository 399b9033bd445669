"""What a batch has to do: the inputs, where each one's stems go, and which are done already.

Runs on the driver only (no Ray here). Public API
-------------------------------------------------
- ``AUDIO_EXTENSIONS``, ``LIST_EXTENSIONS``, ``MANIFEST``.
- ``collect_inputs(inputs, out) -> list[Input]``: files as given, folders walked recursively
  for audio files (hidden entries and anything under ``out`` left out; the folder structure is
  kept under OUT), and list files (``.txt``/``.list``: one path a line, ``#`` comments, relative
  paths relative to the list's folder). Each ``Input`` has ``path`` and ``track`` (the output
  folder relative to OUT: the file name without its extension, under its sub-folder for folder
  inputs). Two inputs that would write the same track raise ``InputError``.
- ``model_identity(model, parts) -> dict``: ``{"name", "version", "sha256"}`` of the model the
  run uses (``{"name": "parts", "version": <stembridge version>, "sha256": None}`` for --parts).
- ``read_manifest(path) -> dict[track, record]``: the last record per track; unreadable lines
  (a crash mid-write) are ignored.
- ``Manifest(path)``: ``append(record)`` (one JSON line, flushed and fsynced) and
  ``compact(order)`` (rewrite atomically with one line per track).
- ``is_done(record, job, out) -> bool``: the resume rule (see the function).
- ``sha256_file(path)``: ``bridge.model.sha256_of``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bridge.atomic import atomic_write
from bridge.errors import InputError
from bridge.model import sha256_of as sha256_file

AUDIO_EXTENSIONS = frozenset(".wav .wave .flac .mp3 .ogg .oga .opus .aif .aiff .aifc .au .snd .caf .w64 .rf64".split())
LIST_EXTENSIONS = frozenset((".txt", ".list", ".lst"))
MANIFEST = "manifest.jsonl"


@dataclass(frozen=True)
class Input:
    path: Path  # absolute
    track: str  # output folder relative to OUT, "/"-separated


def collect_inputs(inputs: list[Path], out: Path) -> list[Input]:
    """Expand INPUTS into one ``Input`` per audio file, in order, without duplicates."""
    out_abs = out.resolve()
    found: list[Input] = []
    for arg in inputs:
        if arg.is_dir():
            root = arg.resolve()
            for path in _walk_audio(root, out_abs):
                rel = path.relative_to(root).with_suffix("")
                found.append(Input(path, rel.as_posix()))
        elif arg.suffix.lower() in LIST_EXTENSIONS and arg.is_file():
            found.extend(_read_list(arg))
        else:  # an audio file, or a missing one: it fails alone, with its error in the manifest
            found.append(Input(_absolute(arg), arg.stem))
    unique: dict[Path, Input] = {}
    for item in found:
        unique.setdefault(item.path, item)
    by_track: dict[str, Path] = {}
    for item in unique.values():
        if item.track in by_track:
            raise InputError(
                f"{by_track[item.track]} and {item.path} would both write OUT/{item.track}/; "
                "rename one or run them in two batches"
            )
        by_track[item.track] = item.path
    if not unique:
        raise InputError("no audio files in the inputs (extensions: " + " ".join(sorted(AUDIO_EXTENSIONS)) + ")")
    return list(unique.values())


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def _walk_audio(root: Path, out_abs: Path) -> list[Path]:
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and (here / d).resolve() != out_abs)
        files.extend(
            here / f for f in sorted(filenames) if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS
        )
    return sorted(files)


def _read_list(list_path: Path) -> list[Input]:
    try:
        lines = list_path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{list_path}: cannot read the list of inputs ({e})") from None
    base = list_path.resolve().parent
    items = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            items.append(Input(p if p.is_absolute() else base / p, p.stem))
    return items


def model_identity(model: str | None, parts: bool) -> dict[str, Any]:
    """Name, version and sha256 of the model; raises ``ModelError`` for a bad one."""
    if parts:
        from bridge import __version__

        return {"name": "parts", "version": __version__, "sha256": None}
    from bridge.errors import ModelError
    from bridge.model import read_metadata, resolve

    path, expected = resolve(model)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    sha = sha256_file(path)
    if expected and sha != expected:
        raise ModelError(f"model {path.name} sha256 {sha[:12]}... does not match the index ({expected[:12]}...)")
    meta = read_metadata(path)
    return {"name": meta.name, "version": meta.version, "sha256": sha}


def read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return records
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("track"), str):
            records[rec["track"]] = rec
    return records


def is_done(record: dict[str, Any] | None, job: dict[str, Any], out: Path) -> bool:
    """True when ``record`` (the manifest's last line for this track) says the track was written
    from the same input bytes, with the same model, score, format, shifts and shares, and its folder exists.

    The input is the same when its path, size and mtime match the record (it is not re-read),
    or else when its sha256 matches."""
    if record is None or record.get("status") != "ok" or not (out / job["track"]).is_dir():
        return False
    for key in ("model", "format", "score_sha256"):
        if record.get(key) != job[key]:
            return False
    if record.get("shifts", 1) != job.get("shifts", 1):  # records from before --shifts were unshifted
        return False
    if record.get("shares") != job.get("shares"):  # None: one share, as in records from before shares
        return False
    path = Path(job["path"])
    try:
        st = path.stat()
    except OSError:
        return False
    if (
        record.get("path") == str(path)
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    ):
        return True
    try:
        return record.get("sha256") == sha256_file(path)
    except OSError:
        return False


class Manifest:
    """OUT/manifest.jsonl, written by the driver only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = read_manifest(path)

    def append(self, record: dict[str, Any]) -> None:
        self.records[record["track"]] = record
        line = json.dumps(record) + "\n"
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise InputError(f"cannot write {self.path}: {e.strerror or e}") from None

    def compact(self, order: list[str]) -> None:
        """Rewrite with one line per track: ``order`` first, then tracks of earlier runs."""
        tracks = [t for t in order if t in self.records]
        listed = set(order)
        tracks += [t for t in self.records if t not in listed]
        with atomic_write(self.path, "w") as f:
            for t in tracks:
                f.write(json.dumps(self.records[t]) + "\n")
