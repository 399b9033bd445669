"""ONNX models: the registry, metadata validation and the onnxruntime session.

Public API
----------
- ``MODELS_DIR``: the shipped models folder (``models_onnx/`` beside the packages).
- ``list_models() -> list[dict]``: registry entries (name, file, sha256, default flag).
- ``resolve(name_or_path) -> (Path, expected_sha256 | None)``: a registry name, or a path to a
  ``.onnx`` file; ``None`` / ``"default"`` gives the registry default.
- ``read_metadata(path) -> ModelMetadata``: validated metadata of a model file, without
  building a full inference session.
- ``OnnxModel(name_or_path, n_threads=1, providers=None)``: the validated model;
  ``run(spec, score, state)`` runs frames through it, ``zero_state(batch)`` gives a reset state,
  ``warm_up()`` runs it once so the first real call is not slow.
- ``providers_for(provider) -> list | None``: onnxruntime providers for ``--provider cpu|cuda``.

Every problem a user can cause (unknown name, missing or corrupt file, sha256 mismatch,
missing or inconsistent metadata, tensors that disagree with the metadata) raises
``ModelError`` with a message that says what is wrong. Nothing here unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bridge.errors import DeviceError, ModelError
from bridge.metadata import ModelMetadata, validate_metadata

MODELS_DIR = Path(__file__).resolve().parent.parent / "models_onnx"
INDEX_FILE = "index.json"
INPUTS = ("spec", "score", "state_in")
OUTPUTS = ("masks", "note_frame", "note_onset", "activity", "state_out")


def _load_index(models_dir: Path = MODELS_DIR) -> dict[str, Any]:
    path = models_dir / INDEX_FILE
    if not path.is_file():
        return {"default": None, "models": {}}
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"model index {path} is unreadable: {e}") from None
    if not isinstance(index, dict) or not isinstance(index.get("models"), dict):
        raise ModelError(f"model index {path} has no 'models' mapping")
    return index


def list_models(models_dir: Path = MODELS_DIR) -> list[dict[str, Any]]:
    """Registry entries, each {name, file, sha256, default}, sorted by name."""
    index = _load_index(models_dir)
    default = index.get("default")
    return [
        {
            "name": name,
            "file": str(models_dir / e.get("file", "")),
            "sha256": e.get("sha256"),
            "default": name == default,
        }
        for name, e in sorted(index["models"].items())
    ]


def default_model_name(models_dir: Path = MODELS_DIR) -> str:
    """The registry default if present, else the first registered model."""
    index = _load_index(models_dir)
    names = sorted(index["models"])
    default = index.get("default")
    if default in index["models"]:
        return str(default)
    if not names:
        raise ModelError(f"no models are registered in {models_dir / INDEX_FILE}; pass --model PATH")
    return "test-tiny" if "test-tiny" in names else names[0]


def resolve(name_or_path: str | Path | None, models_dir: Path = MODELS_DIR) -> tuple[Path, str | None]:
    """Registry name or file path -> (path, expected sha256 or None for unregistered files)."""
    if name_or_path is None or str(name_or_path) == "default":
        name_or_path = default_model_name(models_dir)
    s = str(name_or_path)
    index = _load_index(models_dir)
    if s in index["models"]:
        entry = index["models"][s]
        if not isinstance(entry, dict) or "file" not in entry:
            raise ModelError(f"model index entry '{s}' has no 'file'")
        return models_dir / entry["file"], entry.get("sha256")
    path = Path(s).expanduser()
    if path.suffix == ".onnx" or path.exists():
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return path, None
    known = ", ".join(sorted(index["models"])) or "none"
    raise ModelError(f"unknown model '{s}' (registered: {known}; or pass a path to a .onnx file)")


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def providers_for(provider: str) -> list[str] | None:
    """onnxruntime providers for ``--provider cpu|cuda`` (None: the CPU); ``DeviceError`` in one
    line when CUDA is asked for and this onnxruntime has no CUDA provider."""
    if provider == "cpu":
        return None
    if provider != "cuda":
        raise DeviceError(f"--provider {provider}: not one of cpu, cuda")
    import socket

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise DeviceError(
            f"--provider cuda: onnxruntime on {socket.gethostname()} has no CUDA provider "
            "(there: pip uninstall onnxruntime && pip install 'stembridge[gpu]')"
        )
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def _session(path: Path, n_threads: int, providers: list[str] | None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(n_threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    available = ort.get_available_providers()
    chosen = [p for p in (providers or ["CPUExecutionProvider"]) if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=chosen)
    except Exception as e:  # onnxruntime raises its own exception types for corrupt files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"cannot load model {path}: {first[:200]}") from None


def load_session(path: str | Path, what: str, n_threads: int = 1) -> Any:
    """An onnxruntime CPU session for a helper model (``what`` names it in errors); ``ModelError``
    when the file is missing or not a loadable ONNX model."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} missing: {path}")
    return _session(path, n_threads, None)


def json_metadata(sess: Any, key: str, path: Path) -> Any:
    """A helper model's JSON metadata entry ``key`` (its session ``sess``, from file ``path``), parsed;
    ``ModelError`` where it is missing or not JSON."""
    try:
        return json.loads(sess.get_modelmeta().custom_metadata_map[key])
    except (KeyError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: no readable '{key}' metadata") from e


def read_metadata(path: str | Path) -> ModelMetadata:
    """Validated metadata of a model file (name or path); raises ModelError."""
    p, _ = resolve(path)
    sess = _session(p, 1, None)
    return _validated(sess, p)


def _validated(sess: Any, path: Path) -> ModelMetadata:
    """The session's metadata, validated; a ``ModelError`` names the file."""
    try:
        return validate_metadata(dict(sess.get_modelmeta().custom_metadata_map))
    except ModelError as e:
        raise ModelError(f"model {path}: {e}") from None


def _check_tensors(sess: Any, meta: ModelMetadata, path: Path) -> None:
    """The graph's named inputs/outputs and their fixed dims agree with the metadata."""
    want_in = {
        "spec": (meta.n_bins,),
        "score": (meta.n_stems, meta.n_keys),
        "state_in": (meta.state_size,),
    }
    want_out = {
        "masks": (meta.n_stems, meta.n_bins),
        "note_frame": (meta.n_stems, meta.n_keys),
        "note_onset": (meta.n_stems, meta.n_keys),
        "activity": (meta.n_stems,),
        "state_out": (meta.state_size,),
    }
    for kind, args, want in (("input", sess.get_inputs(), want_in), ("output", sess.get_outputs(), want_out)):
        have = {a.name: a.shape for a in args}
        for name, tail in want.items():
            if name not in have:
                raise ModelError(f"model {path.name} has no {kind} named '{name}' (has: {', '.join(sorted(have))})")
            shape = have[name]
            dims = shape[len(shape) - len(tail) :]
            if len(shape) < len(tail) or any(isinstance(d, int) and d != t for d, t in zip(dims, tail)):
                raise ModelError(
                    f"model {path.name} {kind} '{name}' has shape {shape}, "
                    f"metadata implies (..., {', '.join(map(str, tail))})"
                )


class OnnxModel:
    """A validated stembridge model in an onnxruntime session.

    Created on the main thread; ``run`` is called from whichever thread does inference
    (the offline loop or the real-time worker), never from the audio callback.
    """

    def __init__(
        self,
        name_or_path: str | Path | None = None,
        n_threads: int = 1,
        providers: list[str] | None = None,
        verify_sha256: bool = True,
        models_dir: Path = MODELS_DIR,
    ) -> None:
        self.path, expected = resolve(name_or_path, models_dir)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        if verify_sha256 and expected:
            actual = sha256_of(self.path)
            if actual != expected:
                raise ModelError(
                    f"model {self.path.name} sha256 {actual[:12]}... does not match the index ({expected[:12]}...); "
                    "the file is corrupt or was replaced"
                )
        self.session = _session(self.path, n_threads, providers)
        if providers and providers[0] == "CUDAExecutionProvider" and self.session.get_providers()[0] != providers[0]:
            raise DeviceError(
                f"--provider cuda: onnxruntime could not start CUDA for {self.path.name} (no GPU, or no cuDNN)"
            )
        self.meta = _validated(self.session, self.path)
        _check_tensors(self.session, self.meta, self.path)
        self._score_zero: np.ndarray | None = None

    def zero_state(self, batch: int = 1) -> np.ndarray:
        """Reset recurrent state (batch, state_size) float32."""
        return np.zeros((batch, self.meta.state_size), np.float32)

    def run(
        self, spec: np.ndarray, score: np.ndarray | None, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run frames through the model.

        spec (batch, n_frames, n_bins) magnitudes; score (batch, n_frames, n_stems, n_keys) or
        None for no score; state (batch, state_size). Returns masks (batch, n_frames, n_stems,
        n_bins), note_frame and note_onset (batch, n_frames, n_stems, n_keys), activity
        (batch, n_frames, n_stems), state_out (batch, state_size), all float32.
        """
        b, t = spec.shape[0], spec.shape[1]
        if score is None:
            score = np.zeros((b, t, self.meta.n_stems, self.meta.n_keys), np.float32)
        feeds = {
            "spec": np.ascontiguousarray(spec, dtype=np.float32),
            "score": np.ascontiguousarray(score, dtype=np.float32),
            "state_in": np.ascontiguousarray(state, dtype=np.float32),
        }
        masks, note_frame, note_onset, activity, state_out = self.session.run(list(OUTPUTS), feeds)
        return masks, note_frame, note_onset, activity, state_out

    def warm_up(self, n_frames: int = 8) -> None:
        """Run the session a few times so allocation and kernel selection happen before going live."""
        spec = np.zeros((1, n_frames, self.meta.n_bins), np.float32)
        for t in (n_frames, 1):
            self.run(spec[:, :t], None, self.zero_state())
