"""Causal Cerberus network: streaming separation masks + transcription + activity, score-informed.

Public API
----------
- ``CerberusConfig``: plain hyper-parameters (``as_dict`` / ``from_dict`` for checkpoints).
- ``Cerberus(cfg)``: the ``nn.Module``.

  - ``forward(spec, score, state_in)`` is the ONNX contract (see ``bridge/metadata.py``):
    ``spec`` (B, T, n_bins) linear magnitude, ``score`` (B, T, n_stems, n_keys) in {0, 1},
    ``state_in`` (B, state_size) -> ``masks`` (B, T, n_stems, n_bins), ``note_frame``,
    ``note_onset`` (B, T, n_stems, n_keys), ``activity`` (B, T, n_stems), ``state_out``
    (B, state_size).
  - ``forward_train(spec, score, state_in=None)`` returns a dict with the same tensors plus
    logits and the body features used by the training-only deep-clustering head.
  - ``embed(features, bins)``: deep-clustering embeddings (B, T, len(bins), dc_dim) of the
    selected frequency bins, unit-normalised (training only, never exported).

Architecture (all per-frame or recurrent, hence causal; block-wise == whole-sequence):

1. audio front: ``log1p(gain * spec)`` -> per-bin standardisation (buffers set from training
   statistics) -> Linear(n_bins, n_audio) -> LayerNorm -> ReLU.
2. score module (residual DSIS): flat roll (n_stems*n_keys) -> 2-layer MLP (ReLU) plus a
   linear skip path from the raw roll; summed.
3. body: GRU(n_audio + n_score, hidden, n_layers) with explicit state packed flat in
   ``state_in`` as (B, n_layers * hidden), layer-major.
4. heads on ``z = [gru_out, audio_feature, score_feature]``:

   - masks: logits per band for n_stems + 1 residual slot, softmax over slots, interpolated
     linearly from ``n_bands`` bands (the lowest ``n_linear_bins`` bins one band each, then
     log-spaced) to all n_bins bins, residual slot dropped, each stem gated by its activity
     (``gate_floor``: masks * (floor + (1 - floor) * activity); 0, the default, as every band was
     trained; 1: not gated, chosen at export, ``stembridge export --gate-floor``);
   - note_frame / note_onset: sigmoid, n_keys per stem; activity: sigmoid per stem;
   - deep clustering: ``dc_dim`` unit-norm embedding per band centre bin, training only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch import nn

from export.models.harmonic import SparseMatMul, check_gate_floor


@dataclass
class CerberusConfig:
    """Hyper-parameters; every field is a plain int/float so it can live in a checkpoint."""

    n_bins: int = 1025
    n_stems: int = 5
    n_keys: int = 88
    n_audio: int = 256
    n_score: int = 64
    hidden: int = 256
    n_layers: int = 2
    n_bands: int = 192
    n_linear_bins: int = 96
    dc_dim: int = 20
    input_gain: float = 1.0
    gate_floor: float = 0.0  # masks * (floor + (1 - floor) * activity); 1: activity does not gate the masks

    def __post_init__(self) -> None:
        check_gate_floor(self.gate_floor)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CerberusConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def state_size(self) -> int:
        return self.hidden * self.n_layers


def band_layout(n_bins: int, n_bands: int, n_linear_bins: int) -> np.ndarray:
    """Band centre positions in bins (n_bands,), strictly increasing from 0 to n_bins - 1.

    The first ``n_linear_bins`` bands sit on bins 0..n_linear_bins-1; the rest are spaced
    geometrically up to the last bin.
    """
    n_linear_bins = min(n_linear_bins, n_bands - 1, n_bins - 1)
    lin = np.arange(n_linear_bins, dtype=np.float64)
    n_log = n_bands - n_linear_bins
    log = np.geomspace(n_linear_bins, n_bins - 1, n_log)
    centres = np.concatenate([lin, log])
    # enforce strict increase (geomspace may be denser than one bin right after the linear part)
    for i in range(1, len(centres)):
        centres[i] = max(centres[i], centres[i - 1] + 1e-3)
    centres[-1] = n_bins - 1
    return centres


def band_interp(n_bins: int, n_bands: int, n_linear_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation from bands to bins: ``(idx_lo, idx_hi, w_hi)``, each (n_bins,).

    ``bin_value = band[idx_lo] * (1 - w_hi) + band[idx_hi] * w_hi`` (convex, so masks that sum
    to one over stems still do after interpolation).
    """
    centres = band_layout(n_bins, n_bands, n_linear_bins)
    f = np.arange(n_bins, dtype=np.float64)
    hi = np.clip(np.searchsorted(centres, f, side="left"), 1, n_bands - 1)
    lo = hi - 1
    w = (f - centres[lo]) / (centres[hi] - centres[lo])
    w = np.clip(w, 0.0, 1.0)
    return lo.astype(np.int64), hi.astype(np.int64), w.astype(np.float32)


class AudioFront(nn.Module):
    """Log-compressed, standardised magnitude -> per-frame feature. (B,T,F) -> (B,T,n_audio)."""

    def __init__(self, n_bins: int, n_audio: int, input_gain: float):
        super().__init__()
        self.input_gain = float(input_gain)
        self.register_buffer("feat_mean", torch.zeros(n_bins))
        self.register_buffer("feat_std", torch.ones(n_bins))
        self.proj = nn.Linear(n_bins, n_audio)
        self.norm = nn.LayerNorm(n_audio)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = torch.log1p(self.input_gain * spec.clamp_min(0.0))
        x = (x - self.feat_mean) / self.feat_std
        return torch.relu(self.norm(self.proj(x)))


class ScoreModule(nn.Module):
    """Residual piano-roll processing: (B,T,S,K) roll -> (B,T,n_score) = MLP(roll) + Linear(roll)."""

    def __init__(self, n_stems: int, n_keys: int, n_score: int):
        super().__init__()
        n_in = n_stems * n_keys
        self.mlp = nn.Sequential(nn.Linear(n_in, n_score), nn.ReLU(), nn.Linear(n_score, n_score), nn.ReLU())
        self.skip = nn.Linear(n_in, n_score)

    def forward(self, score: torch.Tensor) -> torch.Tensor:
        s = score.reshape(score.shape[0], score.shape[1], -1)
        return self.mlp(s) + self.skip(s)


class MaskHead(nn.Module):
    """Band-wise softmax masks over n_stems + 1 slots, and their interpolation to bins.

    ``forward``: (B,T,D) -> band probabilities (B,T,n_stems+1,n_bands), summing to 1 over slots.
    ``to_bins``: (B,T,S,n_bands) -> (B,T,S,n_bins) by linear interpolation (the lowest bins map
    one to one; the rest is a banded MatMul done in column chunks, ``SparseMatMul``: exact, and
    faster in onnxruntime than one dense MatMul or a Gather).
    """

    def __init__(self, d_in: int, n_stems: int, n_bins: int, n_bands: int, n_linear_bins: int):
        super().__init__()
        self.n_slots = n_stems + 1
        self.n_bands = n_bands
        self.linear = nn.Linear(d_in, self.n_slots * n_bands)
        lo, hi, w = band_interp(n_bins, n_bands, n_linear_bins)
        interp = np.zeros((n_bands, n_bins), np.float32)
        np.add.at(interp, (lo, np.arange(n_bins)), 1.0 - w)
        np.add.at(interp, (hi, np.arange(n_bins)), w)
        n_id = 0
        while n_id < min(n_bands, n_bins) and interp[n_id, n_id] == 1.0 and interp[:, n_id].sum() == 1.0:
            n_id += 1
        n_id = n_id if np.all(interp[n_id:, :n_id] == 0) else 0
        self.n_identity = n_id
        self.interp = SparseMatMul(interp[:, n_id:])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        logits = self.linear(z).reshape(z.shape[0], z.shape[1], self.n_slots, self.n_bands)
        return torch.softmax(logits, dim=2)

    def to_bins(self, p: torch.Tensor) -> torch.Tensor:
        if self.n_identity:
            return torch.cat([p[..., : self.n_identity], self.interp(p)], dim=-1)
        return self.interp(p)


class Cerberus(nn.Module):
    """Causal score-informed Cerberus; see the module docstring for shapes."""

    def __init__(self, cfg: CerberusConfig | None = None):
        super().__init__()
        cfg = cfg or CerberusConfig()
        self.cfg = cfg
        self.front = AudioFront(cfg.n_bins, cfg.n_audio, cfg.input_gain)
        self.score_module = ScoreModule(cfg.n_stems, cfg.n_keys, cfg.n_score)
        self.gru = nn.GRU(cfg.n_audio + cfg.n_score, cfg.hidden, cfg.n_layers, batch_first=True)
        d = cfg.hidden + cfg.n_audio + cfg.n_score
        self.mask_head = MaskHead(d, cfg.n_stems, cfg.n_bins, cfg.n_bands, cfg.n_linear_bins)
        self.frame_head = nn.Linear(d, cfg.n_stems * cfg.n_keys)
        self.onset_head = nn.Linear(d, cfg.n_stems * cfg.n_keys)
        self.activity_head = nn.Linear(d, cfg.n_stems)
        self.dc_head = nn.Linear(cfg.hidden + cfg.n_audio, cfg.n_bands * cfg.dc_dim)
        dc_bins = np.round(band_layout(cfg.n_bins, cfg.n_bands, cfg.n_linear_bins)).astype(np.int64)
        self.register_buffer("dc_bins", torch.from_numpy(dc_bins), persistent=False)
        with torch.no_grad():  # notes and activity start rare rather than at 0.5
            self.frame_head.bias.fill_(-3.0)
            self.onset_head.bias.fill_(-4.0)

    @property
    def state_size(self) -> int:
        return self.cfg.state_size

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state (batch, state_size)."""
        return torch.zeros(batch, self.state_size)

    def _body(self, spec: torch.Tensor, score: torch.Tensor, state_in: torch.Tensor):
        cfg = self.cfg
        a = self.front(spec)
        s = self.score_module(score)
        h0 = state_in.reshape(state_in.shape[0], cfg.n_layers, cfg.hidden).transpose(0, 1).contiguous()
        h, hn = self.gru(torch.cat([a, s], dim=-1), h0)
        state_out = hn.transpose(0, 1).reshape(state_in.shape[0], cfg.n_layers * cfg.hidden)
        return torch.cat([h, a, s], dim=-1), state_out

    def _heads(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        b, t = z.shape[0], z.shape[1]
        act_logit = self.activity_head(z)
        activity = torch.sigmoid(act_logit)
        probs = self.mask_head(z)[:, :, : cfg.n_stems, :]
        if cfg.gate_floor < 1.0:
            gate = activity if cfg.gate_floor == 0.0 else cfg.gate_floor + (1.0 - cfg.gate_floor) * activity
            probs = probs * gate.unsqueeze(-1)
        masks = self.mask_head.to_bins(probs)
        frame_logit = self.frame_head(z).reshape(b, t, cfg.n_stems, cfg.n_keys)
        onset_logit = self.onset_head(z).reshape(b, t, cfg.n_stems, cfg.n_keys)
        return {
            "masks": masks,
            "note_frame_logit": frame_logit,
            "note_onset_logit": onset_logit,
            "activity_logit": act_logit,
            "activity": activity,
        }

    def forward(self, spec: torch.Tensor, score: torch.Tensor, state_in: torch.Tensor):
        """ONNX contract: -> (masks, note_frame, note_onset, activity, state_out)."""
        z, state_out = self._body(spec, score, state_in)
        o = self._heads(z)
        return (
            o["masks"],
            torch.sigmoid(o["note_frame_logit"]),
            torch.sigmoid(o["note_onset_logit"]),
            o["activity"],
            state_out,
        )

    def forward_train(self, spec: torch.Tensor, score: torch.Tensor, state_in: torch.Tensor | None = None):
        """Training forward: dict with masks, logits, activity, ``features`` (for ``embed``), state_out."""
        if state_in is None:
            state_in = self.initial_state(spec.shape[0]).to(spec)
        z, state_out = self._body(spec, score, state_in)
        o = self._heads(z)
        o["features"] = z[..., : self.cfg.hidden + self.cfg.n_audio]
        o["state_out"] = state_out
        return o

    def embed(self, features: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        """Deep-clustering embeddings at band centres ``bands`` (n,) (their STFT bins are
        ``self.dc_bins[bands]``): (B,T,D_feat) -> (B,T,n,dc_dim), unit norm."""
        d = self.cfg.dc_dim
        w = self.dc_head.weight.reshape(self.cfg.n_bands, d, -1)[bands]  # (n, d, D_feat)
        bias = self.dc_head.bias.reshape(self.cfg.n_bands, d)[bands]  # (n, d)
        v = torch.einsum("btf,ndf->btnd", features, w) + bias
        v = torch.sigmoid(v)
        return v / (v.norm(dim=-1, keepdim=True) + 1e-8)


def count_parameters(model: nn.Module, exported_only: bool = True) -> int:
    """Number of parameters; ``exported_only`` leaves out the training-only DC head."""
    n = 0
    for name, p in model.named_parameters():
        if exported_only and name.startswith("dc_head."):
            continue
        n += p.numel()
    return n


def macs_per_frame(cfg: CerberusConfig) -> int:
    """Approximate multiply-accumulates per frame of the exported graph."""
    d = cfg.hidden + cfg.n_audio + cfg.n_score
    gru = 0
    d_in = cfg.n_audio + cfg.n_score
    for _ in range(cfg.n_layers):
        gru += 3 * (d_in * cfg.hidden + cfg.hidden * cfg.hidden)
        d_in = cfg.hidden
    sk = cfg.n_stems * cfg.n_keys
    return int(
        cfg.n_bins * cfg.n_audio
        + sk * cfg.n_score * 2
        + cfg.n_score**2
        + gru
        + d * (cfg.n_stems + 1) * cfg.n_bands
        + 2 * d * sk
        + d * cfg.n_stems
        + 2 * (cfg.n_stems * cfg.n_bins)
    )


__all__ = ["Cerberus", "CerberusConfig", "band_interp", "band_layout", "count_parameters", "macs_per_frame"]
