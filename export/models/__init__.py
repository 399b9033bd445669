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
"""

from __future__ import annotations

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


__all__ = [
    "ARCHS",
    "DEFAULT_ARCH",
    "StemModel",
    "build_model",
    "count_parameters",
    "macs_per_frame",
    "model_arch",
    "model_config",
]
