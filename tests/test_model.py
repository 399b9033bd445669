"""Model registry and session checks with real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bridge.errors import ModelError
from bridge.model import MODELS_DIR, OnnxModel, list_models, resolve, sha256_of


def test_registry_entries_match_their_files() -> None:
    entries = list_models()
    assert any(e["name"] == "test-tiny" for e in entries)
    for e in entries:
        assert sha256_of(Path(e["file"])) == e["sha256"], e["name"]


def test_resolve_names_and_paths(tmp_path: Path) -> None:
    path, sha = resolve("test-tiny")
    assert path.name == "test-tiny.onnx" and sha
    path2, sha2 = resolve(str(MODELS_DIR / "test-tiny.onnx"))
    assert path2 == MODELS_DIR / "test-tiny.onnx" and sha2 is None
    with pytest.raises(ModelError, match="unknown model"):
        resolve("nope")
    with pytest.raises(ModelError, match="not found"):
        resolve(str(tmp_path / "gone.onnx"))


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(MODELS_DIR / "test-tiny.onnx", models / "m.onnx")
    (models / "index.json").write_text(
        json.dumps({"default": "m", "models": {"m": {"file": "m.onnx", "sha256": "0" * 64}}})
    )
    path, sha = resolve("m", models_dir=models)
    assert sha == "0" * 64
    with pytest.raises(ModelError, match="does not match the index"):
        OnnxModel("m", models_dir=models)


def test_session_runs_and_state_carries(tiny_model: OnnxModel) -> None:
    meta = tiny_model.meta
    rng = np.random.default_rng(0)
    spec = np.abs(rng.standard_normal((1, 12, meta.n_bins))).astype(np.float32)
    masks, nf, no, act, state = tiny_model.run(spec, None, tiny_model.zero_state())
    assert masks.shape == (1, 12, meta.n_stems, meta.n_bins)
    assert nf.shape == no.shape == (1, 12, meta.n_stems, meta.n_keys)
    assert act.shape == (1, 12, meta.n_stems)
    assert (masks >= 0).all() and (masks.sum(axis=2) <= 1 + 1e-5).all()
    # chunked through the state == whole
    m1, *_, s1 = tiny_model.run(spec[:, :5], None, tiny_model.zero_state())
    m2, *_ = tiny_model.run(spec[:, 5:], None, s1)
    np.testing.assert_allclose(np.concatenate([m1, m2], axis=1), masks, atol=1e-5)
