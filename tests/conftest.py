"""Shared fixtures: the shipped untrained test model and rendered test signals."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.model import OnnxModel

TEST_MODEL = "test-tiny"


@pytest.fixture(scope="session")
def tiny_model() -> OnnxModel:
    return OnnxModel(TEST_MODEL)


def noise(n_channels: int, n_samples: int, seed: int = 0, level: float = 0.3) -> np.ndarray:
    """(n_channels, n_samples) float32 white noise with a few tones, reproducible."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_samples) / 44100.0
    tones = 0.2 * np.sin(2 * np.pi * 220.0 * t) + 0.1 * np.sin(2 * np.pi * 1375.0 * t)
    x = level * rng.standard_normal((n_channels, n_samples)) + tones
    return x.astype(np.float32)
