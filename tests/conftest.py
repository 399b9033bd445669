"""Shared fixtures: the shipped untrained test model and rendered test signals."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from bridge.model import OnnxModel

TEST_MODEL = "test-tiny"

# a test phase that stalls is stopped, reported and run once more instead of stalling the run
pytest_plugins = ["hang_watchdog", "pytester"]

# A shell without job control starts background commands with SIGINT ignored, and every process
# the suite starts would inherit that (Python then installs no KeyboardInterrupt handler): the
# Ctrl-C tests would see bridges that never stop. Give SIGINT its default meaning back.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_model() -> OnnxModel:
    return OnnxModel(TEST_MODEL)


def model_variant(directory: Path, name: str, edit: Callable[[dict[str, str]], object]) -> Path:
    """The test model with its metadata properties changed by ``edit`` (a dict, changed in place),
    written to ``directory / name``."""
    m = onnx.load(str(Path(__file__).resolve().parent.parent / "models_onnx" / f"{TEST_MODEL}.onnx"))
    props = {p.key: p.value for p in m.metadata_props}
    edit(props)
    del m.metadata_props[:]
    for k, v in props.items():
        m.metadata_props.add(key=k, value=v)
    path = directory / name
    onnx.save(m, str(path))
    return path


def json_meta_variant(src: Path, key: str, change: dict, path: Path) -> Path:
    """The ONNX model ``src`` with its JSON metadata entry ``key`` updated by ``change``, written to ``path``."""
    import json

    m = onnx.load(str(src))
    for p in m.metadata_props:
        if p.key == key:
            p.value = json.dumps({**json.loads(p.value), **change})
    onnx.save(m, str(path))
    return path


def rebuilt_model(model, silence_activity: bool = False, **config_changes):
    """A copy of a torch stem model (``export.models``): the same weights, its config changed
    (``dataclasses.replace``); ``silence_activity`` drives every stem's activity head to ~0."""
    import dataclasses

    import torch

    copy = type(model)(dataclasses.replace(model.cfg, **config_changes)).eval()
    copy.load_state_dict(model.state_dict())
    if silence_activity:
        with torch.no_grad():
            copy.activity_head.bias.fill_(-40.0)
    return copy


def noise(n_channels: int, n_samples: int, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """(n_channels, n_samples) float32 white noise with a few tones, reproducible."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 44100.0
    tones = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 1375.0 * t)
    x = level * rng.standard_normal((n_channels, n_samples)) + tones
    return x.astype(np.float32)
