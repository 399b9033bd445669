"""Network definitions, selected by name (``[model] arch`` in a training config).

Public API
----------
- ``ARCHS``: the architecture names, ``"cerberus"`` (the shipped band model, the default) and
  ``"harmonic"`` (pitch-equivariant).
- ``StemModel``: the union of the network classes.
- ``build_model(model_cfg) -> StemModel``: the network for a ``[model]`` config dict (its
  ``arch`` key chooses the class, default ``"cerberus"``; unknown keys are ignored).
- ``model_arch(model) -> str`` and ``model_config(model) -> dict``: the name and the plain config
  dict (with ``arch``) a checkpoint records.
- ``count_parameters(model)``, ``macs_per_frame(model)``: for cards and logs, any architecture.
- ``describe(model, stems) -> str``: the model card's description (its mask gate included).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeAlias

from torch import nn

from export.models import cerberus, harmonic

StemModel: TypeAlias = cerberus.Cerberus | harmonic.Harmonic

ARCHS = ("cerberus", "harmonic")
DEFAULT_ARCH = "cerberus"


def build_model(model_cfg: dict[str, Any] | None) -> StemModel:
    """The network for ``model_cfg`` (``arch`` key: ``cerberus`` or ``harmonic``)."""
    d = dict(model_cfg or {})
    arch = str(d.pop("arch", DEFAULT_ARCH))
    if arch == "cerberus":
        return cerberus.Cerberus(cerberus.CerberusConfig.from_dict(d))
    if arch == "harmonic":
        return harmonic.Harmonic(harmonic.HarmonicConfig.from_dict(d))
    raise ValueError(f"unknown model arch {arch!r} (known: {', '.join(ARCHS)})")


def model_arch(model: nn.Module) -> str:
    return "harmonic" if isinstance(model, harmonic.Harmonic) else "cerberus"


def model_config(model: StemModel) -> dict[str, Any]:
    """``{"arch": ..., **cfg.as_dict()}``: what checkpoints store under ``config.model``."""
    return {"arch": model_arch(model), **model.cfg.as_dict()}


def count_parameters(model: nn.Module, exported_only: bool = True) -> int:
    if isinstance(model, harmonic.Harmonic):
        return harmonic.count_parameters(model, exported_only)
    return cerberus.count_parameters(model, exported_only)


def macs_per_frame(model: nn.Module) -> int:
    if isinstance(model, harmonic.Harmonic):
        return harmonic.macs_per_frame(model.cfg)
    assert isinstance(model, cerberus.Cerberus)
    return cerberus.macs_per_frame(model.cfg)


def _gate_words(gate_floor: float) -> str:
    """How the masks follow the stems' activity, for a card: masks x (floor + (1 - floor) x activity)."""
    if gate_floor >= 1.0:
        return ", not gated by the per-stem activity (gate_floor 1: activity is an output only)"
    if gate_floor <= 0.0:
        return " gated by per-stem activity"
    return f" gated by per-stem activity above a floor of {gate_floor:g} (gate_floor)"


def describe(model: StemModel, stems: Sequence[str]) -> str:
    """The model card's description of a trained network (its mask gate, ``cfg.gate_floor``, included)."""
    if isinstance(model, harmonic.Harmonic):
        c = model.cfg
        return (
            "Causal pitch-equivariant network: log-frequency map (3 bins per semitone) from the STFT, harmonic "
            "stacking (h = 0.5, 1..7), causal convolutions and a GRU "
            f"({c.gru_hidden} units per semitone) shared across pitch, note frame/onset heads shared across keys "
            f"(drums: 9 GM classes), masks at full STFT resolution over {len(stems)} stems + residual"
            f"{'' if c.gate_floor >= 1.0 else _gate_words(c.gate_floor)} from "
            "the pitch features, a harmonic comb of the note probabilities and the bin's own magnitude. Trained on "
            "a synthetic corpus in Slakh2100 layout with score dropout/corruption and crops at random sample "
            "offsets. Input: |rfft(hann_periodic(2048) * frame)| of the channel mean, unnormalised, hop 512 at "
            "44.1 kHz."
        )
    return (
        "Causal score-informed Cerberus: log-magnitude front end, residual score module, one-layer GRU "
        f"({model.cfg.hidden} units), band softmax masks over {len(stems)} stems + residual"
        f"{_gate_words(model.cfg.gate_floor)}, "
        "note frame/onset heads (88 keys per stem). Trained on a synthetic FluidSynth-rendered "
        "corpus in Slakh2100 layout with score dropout/corruption; works with no, partial or sloppy score. "
        "Input: |rfft(hann_periodic(2048) * frame)| of the channel mean, unnormalised, hop 512 at 44.1 kHz."
    )


__all__ = [
    "ARCHS",
    "DEFAULT_ARCH",
    "StemModel",
    "build_model",
    "count_parameters",
    "describe",
    "macs_per_frame",
    "model_arch",
    "model_config",
]
