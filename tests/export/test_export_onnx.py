"""ONNX export: torch/onnxruntime parity, chunked == whole, metadata round-trip and refusal,
checkpoint loading with weights_only, index.json, and the shipped models' metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from bridge.errors import ModelError  # noqa: E402
from bridge.metadata import validate_metadata  # noqa: E402
from export import onnx_export as ox  # noqa: E402
from export.metadata import build_metadata, check_roundtrip, read_onnx_metadata  # noqa: E402
from export.models.cerberus import Cerberus, CerberusConfig  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "models_onnx"
SMALL = dict(n_audio=16, n_score=8, hidden=12, n_layers=2, n_bands=24, n_linear_bins=8, dc_dim=4)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    torch.manual_seed(0)
    model = Cerberus(CerberusConfig(**SMALL)).eval()
    ckpt = d / "m.pt"
    torch.save({"model": model.state_dict(), "config": {"model": model.cfg.as_dict(), "seed": 0}}, ckpt)
    out = d / "models" / "small.onnx"
    assert ox.main(["--checkpoint", str(ckpt), "--out", str(out), "--no-timing"]) == 0
    return model, ckpt, out


def test_export_writes_valid_metadata_card_and_index(exported):
    _, _, out = exported
    props = read_onnx_metadata(out)
    meta = validate_metadata(props)
    assert meta.name == "small" and meta.stems == ("drums", "bass", "piano", "guitar", "strings")
    assert meta.state_size == SMALL["hidden"] * SMALL["n_layers"]
    assert meta.latency_samples == 2048 - 512
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["sha256"] == ox.sha256_of(out)
    validate_metadata(card)
    idx = json.loads((out.parent / "index.json").read_text())
    assert idx["models"]["small"] == {"file": "small.onnx", "card": "small.json", "sha256": card["sha256"]}


def test_onnx_io_contract(exported):
    _, _, out = exported
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["spec", "score", "state_in"]
    assert [o.name for o in sess.get_outputs()] == ["masks", "note_frame", "note_onset", "activity", "state_out"]
    n = SMALL["hidden"] * SMALL["n_layers"]
    for b, t in ((1, 1), (3, 17)):
        o = sess.run(
            None,
            {
                "spec": np.ones((b, t, 1025), np.float32),
                "score": np.zeros((b, t, 5, 88), np.float32),
                "state_in": np.zeros((b, n), np.float32),
            },
        )
        assert o[0].shape == (b, t, 5, 1025) and o[1].shape == (b, t, 5, 88) and o[3].shape == (b, t, 5)
        assert o[4].shape == (b, n)


def test_parity_and_chunked(exported):
    model, _, out = exported
    err = ox.check_parity(model, out)
    assert max(err.values()) <= 1e-4


def test_checkpoint_loads_weights_only(exported):
    model, ckpt, _ = exported
    m2, raw = ox.load_checkpoint(ckpt)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(m2.state_dict()[k], v)


class Evil:
    """An arbitrary object: must never be unpickled from a checkpoint. Unpickling it would
    touch ``marker`` (its ``__reduce__`` is a call to ``Path.touch``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    import pickle

    marker = tmp_path / "unpickled"
    p = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": {"x": Evil(marker)}}, p)
    with pytest.raises(pickle.UnpicklingError):
        ox.load_checkpoint(p)
    assert not marker.exists(), "the checkpoint's object was unpickled"


def test_bad_metadata_refused_before_writing(exported, tmp_path):
    with pytest.raises(ModelError):
        build_metadata("bad", ["drums", "other"], 8)  # 'other' is not a predicted stem
    with pytest.raises(ModelError):
        build_metadata("bad", ["drums"], 8, decode={"onset_threshold": 2.0, "frame_threshold": 0.5, "min_note_ms": 1})
    # through the export command: a checkpoint whose card holds a bad decode threshold
    _, ckpt, _ = exported
    bad = tmp_path / "bad.pt"
    bad.write_bytes(ckpt.read_bytes())
    decode = {"onset_threshold": 2.0, "frame_threshold": 0.5, "min_note_ms": 30}
    bad.with_suffix(".card.json").write_text(json.dumps({"decode": decode}))
    out_dir = tmp_path / "models"
    out_dir.mkdir()
    with pytest.raises(ModelError, match="onset_threshold"):
        ox.main(["--checkpoint", str(bad), "--out", str(out_dir / "bad.onnx"), "--no-timing"])
    assert not list(out_dir.iterdir())  # no .onnx, no card, no index.json


def test_roundtrip_detects_tampering(exported, tmp_path):
    import onnx

    _, _, out = exported
    meta = json.loads(out.with_suffix(".json").read_text())
    meta.pop("sha256"), meta.pop("file")
    check_roundtrip(out, meta)
    m = onnx.load(str(out))
    for p in m.metadata_props:
        if p.key == "hop":
            p.value = "256"
    bad = tmp_path / "t.onnx"
    onnx.save(m, str(bad))
    with pytest.raises(ModelError):
        check_roundtrip(bad, meta)
    with pytest.raises(ModelError):
        validate_metadata(read_onnx_metadata(bad))  # latency no longer matches n_fft/hop


@pytest.mark.parametrize("name", ["test-tiny", "band"])
def test_shipped_models(name):
    onnx_path = MODELS / f"{name}.onnx"
    if not onnx_path.exists():
        pytest.skip(f"{onnx_path.name} not exported yet")
    idx = json.loads((MODELS / "index.json").read_text())
    assert idx["models"][name]["sha256"] == ox.sha256_of(onnx_path)
    meta = validate_metadata(read_onnx_metadata(onnx_path))
    assert meta.name == name
    card = json.loads((MODELS / f"{name}.json").read_text())
    assert validate_metadata(card).as_dict() == meta.as_dict() | {"sha256": card["sha256"], "file": card["file"]}
    if name == "test-tiny":
        assert onnx_path.stat().st_size < 2_000_000
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        t = 50
        o = sess.run(
            None,
            {
                "spec": (rng.random((1, t, 1025)) ** 4 * 30).astype(np.float32),
                "score": np.zeros((1, t, 5, 88), np.float32),
                "state_in": np.zeros((1, meta.state_size), np.float32),
            },
        )
        q = np.percentile(o[0], [10, 90])
        assert q[0] < 0.1 and q[1] > 0.2  # masks are spread, not degenerate


def _run_onnx(path: Path, state_size: int, n_frames: int = 30) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    feeds = {
        "spec": (rng.random((1, n_frames, 1025)) ** 3 * 20).astype(np.float32),
        "score": np.zeros((1, n_frames, 5, 88), np.float32),
        "state_in": np.zeros((1, state_size), np.float32),
    }
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_gate_floor_is_exported_and_recorded(exported, tmp_path):
    model, ckpt, out = exported
    ungated = tmp_path / "ungated.onnx"
    assert ox.main(["--checkpoint", str(ckpt), "--out", str(ungated), "--no-timing", "--gate-floor", "1"]) == 0
    card0, card1 = (json.loads(p.with_suffix(".json").read_text()) for p in (out, ungated))
    assert card0["architecture"]["gate_floor"] == 0.0 and card1["architecture"]["gate_floor"] == 1.0
    assert "description" not in card0  # a run's checkpoint without a card has none
    assert "not gated by the per-stem activity" in card1["description"]  # the card's words follow the gate
    gated_out, ungated_out = (_run_onnx(p, model.state_size) for p in (out, ungated))
    act = gated_out[3][..., None]  # (1, T, S, 1)
    np.testing.assert_allclose(gated_out[0], ungated_out[0] * act, rtol=1e-4, atol=1e-6)  # masks only differ
    for a, b in zip(gated_out[1:], ungated_out[1:]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for bad in ("1.5", "-0.1", "nan"):
        with pytest.raises(SystemExit):
            ox.main(["--checkpoint", str(ckpt), "--out", str(tmp_path / "bad.onnx"), "--gate-floor", bad])
    assert not (tmp_path / "bad.onnx").exists()


def test_gate_floor_reaches_the_harmonic_graph(tmp_path):
    paths = {f: tmp_path / f"h{f}.onnx" for f in ("1", "0.5")}
    for f, path in paths.items():
        args = ["--tiny", "--arch", "harmonic", "--out", str(path), "--no-index", "--no-timing", "--gate-floor", f]
        assert ox.main(args) == 0
    assert json.loads(paths["0.5"].with_suffix(".json").read_text())["architecture"]["gate_floor"] == 0.5
    size = ox.make_tiny_model(0, "harmonic").state_size
    ungated, half = (_run_onnx(paths[f], size) for f in ("1", "0.5"))
    np.testing.assert_allclose(half[0], ungated[0] * (0.5 + 0.5 * half[3][..., None]), rtol=1e-4, atol=1e-6)


def test_checkpoint_from_before_the_gate_floor_loads_gated(exported, tmp_path):
    model, _, _ = exported
    cfg = model.cfg.as_dict()
    del cfg["gate_floor"]  # as every band checkpoint before stop 49 records it
    old = tmp_path / "old.pt"
    torch.save({"model": model.state_dict(), "config": {"model": cfg, "seed": 0}}, old)
    loaded, _ = ox.load_checkpoint(old)
    assert loaded.cfg.gate_floor == 0.0
    spec = torch.rand(1, 12, 1025) * 5
    score = torch.zeros(1, 12, 5, 88)
    with torch.no_grad():
        for x, y in zip(model(spec, score, model.initial_state(1)), loaded(spec, score, loaded.initial_state(1))):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
