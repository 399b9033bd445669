"""Build, validate and embed stembridge model metadata (the schema lives in ``bridge/metadata.py``).

Public API
----------
- ``FRONT_END``: the fixed STFT front end (sample_rate, n_fft, hop, window).
- ``default_decode(stems)``: default note-decoding thresholds.
- ``build_metadata(name, stems, state_size, ...) -> dict``: plain dict, validated.
- ``write_onnx_metadata(onnx_path, meta) -> None``: embed ``meta`` in ``metadata_props``.
- ``read_onnx_metadata(onnx_path) -> dict[str, str]``: the raw ``metadata_props``.
- ``check_roundtrip(onnx_path, meta) -> None``: reload and compare with what was meant.
- ``write_card(json_path, meta) -> None``: sidecar model card (same content, decoded).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bridge.errors import ModelError
from bridge.instruments import DRUM_CLASSES, KEY_LOW, N_KEYS
from bridge.metadata import SCHEMA_VERSION, expected_latency_samples, metadata_to_props, validate_metadata

FRONT_END = {"sample_rate": 44100, "n_fft": 2048, "hop": 512, "window": "hann"}


def default_decode(stems: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Decode thresholds: onset 0.5 / frame 0.4 for pitched stems, onset 0.3 for drums."""
    return {
        "onset_threshold": {s: (0.3 if s == "drums" else 0.5) for s in stems},
        "frame_threshold": {s: 0.4 for s in stems},
        "min_note_ms": 30.0,
    }


def active_keys_for(stems: tuple[str, ...] | list[str]) -> dict[str, list[int]]:
    """MIDI notes each stem can emit: GM drum classes for drums, all 88 keys otherwise."""
    return {s: (list(DRUM_CLASSES) if s == "drums" else list(range(KEY_LOW, KEY_LOW + N_KEYS))) for s in stems}


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """HEAD commit of the repository (None outside git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=repo or Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def build_metadata(
    name: str,
    stems: tuple[str, ...] | list[str],
    state_size: int,
    *,
    version: str = "1.0.0",
    lookahead_frames: int = 0,
    score_conditioned: bool = True,
    decode: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    commit: str | None = None,
    description: str | None = None,
    license: str | None = "MIT",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Plain metadata dict for a model with the fixed front end; raises ``ModelError`` if invalid."""
    stems = list(stems)
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": name,
        "version": version,
        **FRONT_END,
        "stems": stems,
        "key_low": KEY_LOW,
        "n_keys": N_KEYS,
        "active_keys": active_keys_for(stems),
        "lookahead_frames": int(lookahead_frames),
        "latency_samples": expected_latency_samples(FRONT_END["n_fft"], FRONT_END["hop"], int(lookahead_frames)),
        "state_size": int(state_size),
        "score_conditioned": bool(score_conditioned),
        "decode": decode or default_decode(stems),
    }
    for k, v in (
        ("training", training),
        ("metrics", metrics),
        ("git_commit", commit),
        ("description", description),
        ("license", license),
    ):
        if v is not None:
            meta[k] = v
    if extra:
        meta.update(extra)
    validate_metadata(metadata_to_props(meta))  # refuse before anything is written
    return meta


def read_onnx_metadata(onnx_path: str | os.PathLike) -> dict[str, str]:
    """Raw ``metadata_props`` of an ONNX file as ``{key: str}``."""
    import onnx

    m = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def write_onnx_metadata(onnx_path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Validate ``meta`` and write it into the file's ``metadata_props`` (atomic replace)."""
    import onnx

    props = metadata_to_props(meta)
    validate_metadata(props)
    m = onnx.load(str(onnx_path))
    del m.metadata_props[:]
    for k, v in sorted(props.items()):
        e = m.metadata_props.add()
        e.key, e.value = k, v
    _atomic_write_bytes(Path(onnx_path), m.SerializeToString())


def check_roundtrip(onnx_path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Re-read the file's metadata and compare with ``meta``; raise ``ModelError`` on mismatch."""
    got = read_onnx_metadata(onnx_path)
    want = metadata_to_props(meta)
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise ModelError(f"metadata round-trip mismatch in {onnx_path}: {diff[:3]}")
    if validate_metadata(got).as_dict() != validate_metadata(want).as_dict():
        raise ModelError(f"metadata round-trip mismatch in {onnx_path} after validation")


def write_card(json_path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Sidecar model card: the same metadata, decoded, as pretty JSON."""
    text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    _atomic_write_bytes(Path(json_path), text.encode())


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
