"""Export a trained checkpoint (any ``export.models`` architecture) to ONNX with validated
metadata, parity checks and index.

``stembridge export --checkpoint CKPT --out models_onnx/NAME.onnx [--name NAME] [--version V]``
``[--average]`` (the run's moving average of its weights) ``[--gate-floor F]`` (masks x (F + (1 - F) x
activity) in the graph; 1: not gated by the activity heads)
``stembridge export --tiny --out models_onnx/test-tiny.onnx`` (random seeded test model)
``stembridge export --tiny --arch harmonic --out /tmp/h.onnx --no-index`` (random harmonic network,
at its default size, e.g. for ``bench/speed.py``)

Public API
----------
- ``main(argv) -> int``: the CLI.
- ``load_checkpoint(path) -> (nn.Module, dict)``: model (the class its ``config.model.arch``
  names, Cerberus when absent) + checkpoint extras (``weights_only``).
- ``export_model(model, out_path, meta, ...) -> dict``: write .onnx + sidecar card + index entry,
  check metadata round-trip, torch/onnxruntime parity and chunked-vs-whole equality.
- ``make_tiny_model(seed, arch="cerberus") -> nn.Module``: small random model with non-degenerate
  masks (the harmonic network at its default size, which is already small).
- ``measure_ms_per_frame(onnx_path, ...) -> dict``: onnxruntime timing on one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bridge.metadata import OPTIONAL_KEYS, REQUIRED_KEYS
from export.metadata import build_metadata, check_roundtrip, git_commit, write_card, write_onnx_metadata
from export.models import StemModel, build_model, count_parameters, describe, macs_per_frame, model_arch
from export.models.cerberus import Cerberus, CerberusConfig
from export.models.harmonic import Harmonic, HarmonicConfig, check_gate_floor

INPUT_NAMES = ["spec", "score", "state_in"]
OUTPUT_NAMES = ["masks", "note_frame", "note_onset", "activity", "state_out"]
DEFAULT_STEMS = ("drums", "bass", "piano", "guitar", "strings")
PARITY_TOL = 1e-4
TINY_CONFIG = dict(n_audio=32, n_score=16, hidden=32, n_layers=1, n_bands=32, n_linear_bins=8, dc_dim=4)


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, average: bool = False) -> tuple[StemModel, dict[str, Any]]:
    """Load ``{"model": state_dict, "config": dict, ...}`` saved by ``export.train`` (weights only);
    ``config.model.arch`` picks the class (Cerberus for checkpoints from before the field). ``average``:
    the weights' moving average a run with ``train.ema_decay`` keeps (``ema_model``) instead."""
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    model = build_model(ckpt["config"]["model"] if "model" in ckpt["config"] else ckpt["config"])
    if average and "ema_model" not in ckpt:
        raise SystemExit(f"stembridge export: error: {path} holds no moving average of its weights (train.ema_decay)")
    model.load_state_dict(ckpt["ema_model" if average else "model"])
    model.eval()
    return model, ckpt


def make_tiny_model(seed: int = 0, arch: str = "cerberus") -> StemModel:
    """Random, seeded small model whose masks spread over (0, 1) (for engine tests)."""
    torch.manual_seed(seed)
    if arch == "harmonic":
        hm = Harmonic(HarmonicConfig())
        with torch.no_grad():  # input scale typical of |STFT| of music at full scale (frames of 2048 samples)
            hm.log_mean.fill_(2.0)
            hm.log_std.fill_(1.5)
            hm.lin_mean.fill_(1.0)
            hm.lin_std.fill_(1.5)
            hm.mask_out.mul_(4.0)
        return hm.eval()
    if arch != "cerberus":
        raise ValueError(f"unknown model arch {arch!r}")
    model = Cerberus(CerberusConfig(**TINY_CONFIG))
    with torch.no_grad():
        model.mask_head.linear.weight.mul_(10.0)
        model.activity_head.weight.mul_(6.0)
        model.activity_head.bias.fill_(1.0)
        model.frame_head.bias.fill_(-1.0)
        model.onset_head.bias.fill_(-1.5)
        model.frame_head.weight.mul_(4.0)
        model.onset_head.weight.mul_(4.0)
        # input scale typical of |STFT| of music at full scale (frames of 2048 samples)
        model.front.feat_mean.fill_(1.0)
        model.front.feat_std.fill_(1.5)
    model.eval()
    return model


def _random_inputs(model: StemModel, batch: int, n_frames: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    spec = torch.rand(batch, n_frames, cfg.n_bins, generator=g) ** 4 * 30.0
    score = (torch.rand(batch, n_frames, cfg.n_stems, cfg.n_keys, generator=g) < 0.05).float()
    state = torch.randn(batch, cfg.state_size, generator=g) * 0.5
    return spec, score, state


def torch_to_onnx(model: StemModel, out_path: str | os.PathLike, opset: int = 17) -> None:
    """Plain torch.onnx.export (classic exporter) with dynamic batch and frame axes."""
    model.eval()
    spec, score, state = _random_inputs(model, 1, 8)
    dyn = {
        "spec": {0: "batch", 1: "frames"},
        "score": {0: "batch", 1: "frames"},
        "state_in": {0: "batch"},
        "masks": {0: "batch", 1: "frames"},
        "note_frame": {0: "batch", 1: "frames"},
        "note_onset": {0: "batch", 1: "frames"},
        "activity": {0: "batch", 1: "frames"},
        "state_out": {0: "batch"},
    }
    with torch.no_grad():
        torch.onnx.export(
            model,
            (spec, score, state),
            str(out_path),
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes=dyn,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )


def _session(onnx_path: str | os.PathLike, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])


def check_parity(model: StemModel, onnx_path: str | os.PathLike, tol: float = PARITY_TOL) -> dict[str, float]:
    """Max |torch - onnxruntime| per output on random input (B=2, T=37); raise if > tol.

    Also runs the graph in chunks (13 + 1 + 23 frames) through state_in/state_out and checks it
    equals the whole-sequence run.
    """
    sess = _session(onnx_path)
    spec, score, state = _random_inputs(model, 2, 37)
    with torch.no_grad():
        ref = [t.numpy() for t in model(spec, score, state)]
    feeds = {"spec": spec.numpy(), "score": score.numpy(), "state_in": state.numpy()}
    got = sess.run(OUTPUT_NAMES, feeds)
    err = {n: float(np.max(np.abs(a - b))) for n, a, b in zip(OUTPUT_NAMES, ref, got)}
    bad = {n: e for n, e in err.items() if not e <= tol}
    if bad:
        raise RuntimeError(f"onnxruntime differs from torch beyond {tol}: {bad}")
    # chunked vs whole
    st = feeds["state_in"]
    parts: list[list[np.ndarray]] = [[] for _ in range(4)]
    for a, b in ((0, 13), (13, 14), (14, 37)):
        o = sess.run(OUTPUT_NAMES, {"spec": feeds["spec"][:, a:b], "score": feeds["score"][:, a:b], "state_in": st})
        for i in range(4):
            parts[i].append(o[i])
        st = o[4]
    for i, n in enumerate(OUTPUT_NAMES[:4]):
        e = float(np.max(np.abs(np.concatenate(parts[i], axis=1) - got[i])))
        err[f"chunked_{n}"] = e
        if not e <= tol:
            raise RuntimeError(f"chunked inference differs from whole-sequence inference on {n}: {e}")
    e = float(np.max(np.abs(st - got[4])))
    err["chunked_state_out"] = e
    if not e <= tol:
        raise RuntimeError(f"chunked state differs from whole-sequence state: {e}")
    return err


def measure_ms_per_frame(onnx_path: str | os.PathLike, block_frames: int = 100, n_blocks: int = 20) -> dict[str, float]:
    """onnxruntime wall time per frame on one thread: batched over ``block_frames`` and one at a time."""
    import onnxruntime as ort  # noqa: F401

    sess = _session(onnx_path, threads=1)
    ins = {i.name: i for i in sess.get_inputs()}
    n_bins = 1025
    state_size = ins["state_in"].shape[1]
    n_stems, n_keys = ins["score"].shape[2], ins["score"].shape[3]
    rng = np.random.default_rng(0)

    def run(t: int, reps: int) -> float:
        spec = (rng.random((1, t, n_bins), dtype=np.float32) ** 4 * 30).astype(np.float32)
        score = np.zeros((1, t, n_stems, n_keys), np.float32)
        st = np.zeros((1, state_size), np.float32)
        for _ in range(3):
            st = sess.run(None, {"spec": spec, "score": score, "state_in": st})[4]
        t0 = time.perf_counter()
        for _ in range(reps):
            st = sess.run(None, {"spec": spec, "score": score, "state_in": st})[4]
        return (time.perf_counter() - t0) / (reps * t) * 1000.0

    batched = run(block_frames, n_blocks)
    single = run(1, 300)
    return {
        "ms_per_frame_batched": round(batched, 4),
        "block_frames": block_frames,
        "ms_per_frame_single": round(single, 4),
        "realtime_factor_batched": round(1000.0 / (batched * 44100 / 512), 1),
        "threads": 1,
    }


def update_index(
    index_path: str | os.PathLike, name: str, onnx_file: str, card_file: str, sha: str, default: str | None = None
) -> dict:
    """Add or replace ``name`` in ``models_onnx/index.json`` (``default`` stays "band")."""
    p = Path(index_path)
    idx = json.loads(p.read_text()) if p.exists() else {"default": "band", "models": {}}
    idx.setdefault("models", {})[name] = {"file": onnx_file, "card": card_file, "sha256": sha}
    if default:
        idx["default"] = default
    idx.setdefault("default", "band")
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix="index.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(idx, f, indent=2, sort_keys=True)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, p)
    return idx


def export_model(
    model: StemModel,
    out_path: str | os.PathLike,
    meta: dict[str, Any],
    *,
    update_index_file: bool = True,
    timing: bool = True,
) -> dict[str, Any]:
    """Export ``model`` to ``out_path`` (+ ``.json`` card, + index entry); return the card dict.

    ``meta`` comes from ``export.metadata.build_metadata`` (already validated); the measured
    parity errors, timing and parameter count are added to ``metrics`` before embedding.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    tmp = out.with_suffix(".tmp.onnx")
    torch_to_onnx(model, tmp)
    parity = check_parity(model, tmp)
    meta = dict(meta)
    metrics = dict(meta.get("metrics") or {})
    metrics["onnx_parity_max_abs_err"] = max(parity.values())
    metrics["parameters_exported"] = count_parameters(model)
    metrics["macs_per_frame"] = macs_per_frame(model)
    if timing:
        metrics["onnxruntime_cpu"] = measure_ms_per_frame(tmp)
    meta["metrics"] = metrics
    arch_type = {"cerberus": "causal-cerberus-gru", "harmonic": "causal-harmonic-gru"}[model_arch(model)]
    meta.setdefault("architecture", {"type": arch_type, **model.cfg.as_dict()})
    meta = build_metadata(**_meta_args(meta))  # re-validate with the additions
    write_onnx_metadata(tmp, meta)
    check_roundtrip(tmp, meta)
    os.replace(tmp, out)
    sha = sha256_of(out)
    card = dict(meta)
    card["sha256"] = sha
    card["file"] = out.name
    write_card(out.with_suffix(".json"), card)
    if update_index_file:
        update_index(out.parent / "index.json", meta["name"], out.name, out.with_suffix(".json").name, sha)
    return card


def _meta_args(meta: dict[str, Any]) -> dict[str, Any]:
    """Map a metadata dict back onto ``build_metadata`` keyword arguments."""
    known = set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)  # the schema's keys; anything else is extra
    return {
        "name": meta["name"],
        "stems": meta["stems"],
        "state_size": meta["state_size"],
        "version": meta["version"],
        "lookahead_frames": meta["lookahead_frames"],
        "score_conditioned": meta["score_conditioned"],
        "decode": meta["decode"],
        "training": meta.get("training"),
        "metrics": meta.get("metrics"),
        "commit": meta.get("git_commit"),
        "description": meta.get("description"),
        "license": meta.get("license"),
        "extra": {k: v for k, v in meta.items() if k not in known},
    }


TINY_DESCRIPTION = (
    "UNTRAINED test model: random seeded weights of the causal Cerberus network (tiny size), for engine "
    "and contract tests only. Masks are random but spread over (0, 1); notes are random. Input: magnitude "
    "of numpy rfft(hann_periodic(2048) * frame) of the channel mean, unnormalised."
)

UNTRAINED_HARMONIC = (
    "UNTRAINED model: random seeded weights of the causal pitch-equivariant (harmonic) network at its default "
    "size, for contract tests and speed measurements only. Input: magnitude of numpy "
    "rfft(hann_periodic(2048) * frame) of the channel mean, unnormalised."
)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stembridge export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint .pt written by `stembridge train`")
    ap.add_argument(
        "--average", action="store_true", help="export the checkpoint's moving average of its weights (train.ema_decay)"
    )
    ap.add_argument("--out", required=True, help="output .onnx path, e.g. models_onnx/band.onnx")
    ap.add_argument("--name", help="model name (default: the file stem)")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--tiny", action="store_true", help="export the random seeded test model instead")
    ap.add_argument(
        "--arch", default="cerberus", choices=("cerberus", "harmonic"), help="architecture of the --tiny model"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--description", default=None)
    ap.add_argument(
        "--gate-floor",
        type=float,
        default=None,
        help="in [0, 1]: masks x (floor + (1 - floor) x activity) in the exported graph, 1 leaves the masks ungated "
        "by the activity heads (default: the checkpoint's, 0 for every band trained so far); the card's description "
        "follows it unless --description is given",
    )
    ap.add_argument("--no-index", action="store_true", help="do not update index.json")
    ap.add_argument("--no-timing", action="store_true")
    args = ap.parse_args(argv)
    if args.gate_floor is not None:
        try:
            check_gate_floor(args.gate_floor)  # before the checkpoint loads
        except ValueError as e:
            ap.error(f"--gate-floor: {e}")
    out = Path(args.out)
    name = args.name or out.stem
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.tiny:
        model = make_tiny_model(args.seed, args.arch)
        training = {"trained": False, "seed": args.seed, "note": "random weights"}
        card_extra: dict[str, Any] = {}
        decode = None
        description = args.description or (TINY_DESCRIPTION if args.arch == "cerberus" else UNTRAINED_HARMONIC)
        stems = DEFAULT_STEMS
    elif args.checkpoint:
        model, ckpt = load_checkpoint(args.checkpoint, args.average)
        card_path = Path(args.checkpoint).with_suffix(".card.json")
        card_extra = json.loads(card_path.read_text()) if card_path.exists() else {}
        training = card_extra.get("training")
        decode = card_extra.get("decode")
        if decode is None and ckpt.get("tuned_decode"):
            # a run's checkpoint (no finalize card yet): the thresholds its trainer tuned on validation
            decode = ckpt["tuned_decode"]
            print(f"[export] decode thresholds tuned by the trainer at step {ckpt['tuned_at']}", file=sys.stderr)
        stems = tuple(card_extra.get("stems") or ckpt["config"].get("stems") or DEFAULT_STEMS)
        description = args.description or card_extra.get("description")
    else:
        ap.error("give --checkpoint or --tiny")
        return 2
    if args.gate_floor is not None:
        model.cfg = dataclasses.replace(model.cfg, gate_floor=args.gate_floor)  # recorded in the architecture
        if not args.tiny and args.description is None:
            description = describe(model, stems)  # the card's words follow the gate
    meta = build_metadata(
        name,
        stems,
        model.state_size,
        version=args.version,
        decode=decode,
        training=training,
        metrics=card_extra.get("metrics") if not args.tiny else None,
        commit=git_commit(),
        description=description,
    )
    card = export_model(model, out, meta, update_index_file=not args.no_index, timing=not args.no_timing)
    print(json.dumps({"out": str(out), "sha256": card["sha256"], "metrics": card["metrics"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
