"""Pitch-equivariant causal network: harmonic stacking on a log-frequency map, convolutions and a
recurrent layer shared across pitch, note heads per key, a full-resolution mask decoder.

Public API
----------
- ``HarmonicConfig``: plain hyper-parameters (``as_dict`` / ``from_dict`` for checkpoints).
- ``Harmonic(cfg)``: the ``nn.Module``, with the same ONNX contract as ``Cerberus``:

  - ``forward(spec, score, state_in)``: ``spec`` (B, T, n_bins) linear STFT magnitude, ``score``
    (B, T, n_stems, n_keys) in {0, 1}, ``state_in`` (B, state_size) -> ``masks``
    (B, T, n_stems, n_bins), ``note_frame``, ``note_onset`` (B, T, n_stems, n_keys), ``activity``
    (B, T, n_stems), ``state_out`` (B, state_size).
  - ``forward_train(spec, score, state_in=None, mask_frames=None)``: dict with ``masks``,
    ``note_frame_logit``, ``note_onset_logit``, ``activity_logit``, ``activity`` and
    ``state_out`` (no deep-clustering features: ``has_dc`` is False); ``mask_frames`` (a slice)
    decodes the masks of those frames only (``masks`` then has their count of frames).
  - ``front_features(spec)``: the pitch-equivariant features (B, C, T, n_pos) of the first
    convolution, without time context (for tests of equivariance).
  - ``set_input_stats(spec)``: the global (scalar) normalisation of the log maps from a batch.
- ``log_filterbank(cfg)``, ``semitone_interp(cfg)``, ``harmonic_comb(cfg)``: the fixed matrices.
- ``count_parameters(model)``, ``macs_per_frame(cfg)``.

Architecture (every step per frame or causal along time; block-wise == whole-sequence):

1. log-frequency map: ``|X| @ FB`` with a fixed triangular / interpolating filterbank
   (n_bins, n_log) at ``bins_per_semitone`` (3) bins per semitone, log bin ``3p + 1`` centred on
   MIDI ``midi_low + p``, up to ``midi_high`` (near Nyquist), then ``log1p`` and one global
   mean / std.
2. harmonic stacking: the map shifted by ``round(36 * log2(h))`` log bins for h in ``HARMONICS``
   as 8 channels (zeros past the edges).
3. ``conv_a`` (kt_a x 9 log bins, stride 3 along frequency): one position per semitone
   (n_pos = midi_high - midi_low + 1, position p = MIDI midi_low + p); causal along time, the
   last ``kt_a - 1`` frames of the log map (log1p, before normalisation: a zero state is
   silence) are carried in the state.
4. the score roll enters at the key positions (key k = position k + 21 - midi_low) as n_stems
   channels; ``conv_b`` (kt_b x 3), causal, its last ``kt_b - 1`` input frames in the state;
   ``conv_c`` (1 x 13: an octave of context), residual.
5. a GRU along time, one per semitone position, weights shared across positions (hidden
   ``gru_hidden``; the (n_pos x gru_hidden) state is in the flat state).
6. per frame: pooled features (mean and max over positions) -> activity logits and a small
   context vector broadcast to every position.
7. note heads: pitched stems from a per-key linear layer shared across keys (+ a learned bias
   per stem and key); the drum stem (``drum_stem``) from features pooled over 9 frequency
   regions -> the 9 GM drum classes, placed at their keys (other keys at a fixed -12 logit).
8. masks at full STFT resolution: a per-position MLP -> ``mask_hidden`` channels, interpolated
   to the linear bins (2-tap, fixed), plus each stem's note_frame probabilities rendered through
   a fixed key -> linear-bin harmonic comb (drums: learned class templates), plus the bin's own
   normalised log magnitude; ReLU; 1x1 -> n_stems + 1 logits (+ a learned per-slot, per-bin
   prior; with ``salience``, also a per-position, per-stem salience from the features spread to
   the bins through a fixed position -> bin harmonic comb, so the masks get evidence at the
   resolution of the partials even where the note heads are unsure); softmax over slots,
   residual dropped. Optional soft activity gate with a floor
   (``gate_floor`` < 1: masks * (floor + (1 - floor) * activity)); 1.0 (default) = no gating,
   so a stem with energy is never silenced by its activity head.

Flat state layout (B, state_size): ``[log map history (kt_a - 1) * n_log | conv_b input history
(kt_b - 1) * (conv_a + n_stems) * n_pos | GRU hidden n_pos * gru_hidden]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bridge import logfreq
from bridge.instruments import DRUM_CLASSES, KEY_LOW

HARMONICS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)
OFF_KEY_LOGIT = -12.0


def check_gate_floor(gate_floor: float) -> None:
    """ValueError unless ``gate_floor`` (masks x (floor + (1 - floor) x activity)) lies in [0, 1] (NaN does not)."""
    if not 0.0 <= gate_floor <= 1.0:
        raise ValueError(f"gate_floor must lie in [0, 1], not {gate_floor}")


@dataclass
class HarmonicConfig:
    """Hyper-parameters; every field is a plain int/float so it can live in a checkpoint."""

    n_bins: int = 1025
    n_stems: int = 5
    n_keys: int = 88
    drum_stem: int = 0  # index of the drum stem (-1: none)
    sample_rate: int = 44100
    n_fft: int = 2048
    bins_per_semitone: int = 3
    midi_low: int = 18  # lowest semitone position (A0 - 3 semitones)
    midi_high: int = 134  # highest semitone position (about 19 kHz)
    input_gain: float = 1.0
    conv_a: int = 16  # channels of the first (harmonic-stack) convolution
    kt_a: int = 3  # its time kernel (frames of history = kt_a - 1)
    conv_b: int = 16
    kt_b: int = 2
    kf_c: int = 13  # frequency kernel (semitones) of the context convolution
    gru_hidden: int = 16
    n_context: int = 8
    mask_hidden: int = 16
    comb_harmonics: int = 20
    gate_floor: float = 1.0
    salience: int = 0  # 1: per-position, per-stem salience spread to the bins by a harmonic comb feeds the masks

    def __post_init__(self) -> None:
        check_gate_floor(self.gate_floor)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> HarmonicConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def n_pos(self) -> int:
        return self.midi_high - self.midi_low + 1

    @property
    def n_log(self) -> int:
        return self.bins_per_semitone * self.n_pos

    @property
    def state_sizes(self) -> tuple[int, int, int]:
        return (
            (self.kt_a - 1) * self.n_log,
            (self.kt_b - 1) * (self.conv_a + self.n_stems) * self.n_pos,
            self.n_pos * self.gru_hidden,
        )

    @property
    def state_size(self) -> int:
        return sum(self.state_sizes)


def log_centres_midi(cfg: HarmonicConfig) -> np.ndarray:
    """MIDI pitch of each log bin's centre (n_log,): bin ``b*p + b//2`` is MIDI ``midi_low + p``."""
    return logfreq.log_centres_midi(cfg.n_log, cfg.bins_per_semitone, cfg.midi_low)


def log_filterbank(cfg: HarmonicConfig) -> np.ndarray:
    """(n_bins, n_log) triangular weights (``bridge.logfreq.log_filterbank`` at ``cfg``'s geometry)."""
    return logfreq.log_filterbank(
        cfg.sample_rate, cfg.n_fft, cfg.n_bins, cfg.bins_per_semitone, cfg.midi_low, cfg.midi_high
    )


def semitone_interp(cfg: HarmonicConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear interpolation (in pitch) from semitone positions to linear bins: ``(lo, hi, w_hi)``,
    each (n_bins,); bins below / above the position range take the first / last position."""
    df = cfg.sample_rate / cfg.n_fft
    f = np.maximum(np.arange(cfg.n_bins) * df, 1e-3)
    x = np.clip(69.0 + 12.0 * np.log2(f / 440.0) - cfg.midi_low, 0.0, cfg.n_pos - 1)
    lo = np.minimum(np.floor(x), cfg.n_pos - 2).astype(np.int64)
    w = (x - lo).astype(np.float32)
    return lo, lo + 1, w


def harmonic_comb(cfg: HarmonicConfig, pitches: np.ndarray | None = None) -> np.ndarray:
    """(n_pitches, n_bins) fixed comb: for each MIDI pitch (default the keys, MIDI 21 + k), Gaussian
    bumps of height 1 at its first ``comb_harmonics`` partials (width: the Hann main lobe, widened
    by 10 cents x partial frequency), max over partials; entries under 1e-3 are exactly 0."""
    df = cfg.sample_rate / cfg.n_fft
    f_lin = np.arange(cfg.n_bins) * df
    pitches = KEY_LOW + np.arange(cfg.n_keys) if pitches is None else np.asarray(pitches)
    out = np.zeros((len(pitches), cfg.n_bins), np.float64)
    for k, pitch in enumerate(pitches.tolist()):
        f0 = float(logfreq.midi_to_hz(pitch))
        for h in range(1, cfg.comb_harmonics + 1):
            fh = h * f0
            if fh >= cfg.sample_rate / 2:
                break
            sigma = math.hypot(0.85 * df, fh * (2 ** (10 / 1200) - 1))
            out[k] = np.maximum(out[k], np.exp(-0.5 * ((f_lin - fh) / sigma) ** 2))
    out[out < 1e-3] = 0.0
    return out.astype(np.float32)


def region_pool(n_pos: int, n_regions: int) -> np.ndarray:
    """(n_pos, n_regions) averaging matrix over contiguous position groups."""
    edges = np.linspace(0, n_pos, n_regions + 1).round().astype(int)
    m = np.zeros((n_pos, n_regions), np.float32)
    for r in range(n_regions):
        m[edges[r] : edges[r + 1], r] = 1.0 / max(edges[r + 1] - edges[r], 1)
    return m


def sparse_blocks(w: np.ndarray, step: int = 8, overhead: float = 4000.0) -> list[tuple[int, int, int, int]]:
    """Split the columns of ``w`` (K, N) into chunks ``(n0, n1, k0, k1)`` such that
    ``x @ w == concat_i(x[..., k0:k1] @ w[k0:k1, n0:n1])``; chunk boundaries (multiples of
    ``step``) minimise the multiply count plus ``overhead`` per chunk (dynamic programming)."""
    k, n = w.shape
    nz = w != 0
    first = np.where(nz.any(0), nz.argmax(0), k)
    last = np.where(nz.any(0), k - 1 - nz[::-1].argmax(0), -1)
    cuts = [*range(0, n, step), n]
    best = [0.0] + [math.inf] * (len(cuts) - 1)
    prev = [0] * len(cuts)
    for j in range(1, len(cuts)):
        for i in range(j - 1, -1, -1):
            lo, hi = int(first[cuts[i] : cuts[j]].min()), int(last[cuts[i] : cuts[j]].max())
            rows = max(hi - lo + 1, 1)
            c = best[i] + rows * (cuts[j] - cuts[i]) + overhead
            if c < best[j]:
                best[j], prev[j] = c, i
    out = []
    j = len(cuts) - 1
    while j > 0:
        i = prev[j]
        lo, hi = int(first[cuts[i] : cuts[j]].min()), int(last[cuts[i] : cuts[j]].max())
        if hi < lo:
            lo, hi = 0, 0
        out.append((cuts[i], cuts[j], lo, hi + 1))
        j = i
    return out[::-1]


class SparseMatMul(nn.Module):
    """``x @ w`` for a fixed, banded ``w`` (K, N): one small MatMul per column chunk (see
    ``sparse_blocks``), concatenated; exact, and several times cheaper than the dense MatMul."""

    def __init__(self, w: np.ndarray):
        super().__init__()
        self.blocks = sparse_blocks(w)
        for i, (n0, n1, k0, k1) in enumerate(self.blocks):
            self.register_buffer(f"w{i}", torch.from_numpy(np.ascontiguousarray(w[k0:k1, n0:n1])), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.matmul(x[..., k0:k1], getattr(self, f"w{i}")) for i, (_, _, k0, k1) in enumerate(self.blocks)]
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]


class Harmonic(nn.Module):
    """Pitch-equivariant causal network; see the module docstring for shapes and state layout."""

    has_dc = False  # no deep-clustering head: the trainer skips that loss
    supports_mask_frames = True  # forward_train(..., mask_frames=slice)
    # buffers (declared for the type checker)
    log_mean: torch.Tensor
    log_std: torch.Tensor
    lin_mean: torch.Tensor
    lin_std: torch.Tensor
    regions_t: torch.Tensor
    drum_place: torch.Tensor
    drum_off: torch.Tensor
    comb: torch.Tensor

    def __init__(self, cfg: HarmonicConfig | None = None):
        super().__init__()
        cfg = cfg or HarmonicConfig()
        if cfg.bins_per_semitone != 3:
            raise ValueError("bins_per_semitone must be 3 (conv_a strides 3 log bins to one semitone)")
        self.cfg = cfg
        b = cfg.bins_per_semitone
        n_drum = len(DRUM_CLASSES) if 0 <= cfg.drum_stem < cfg.n_stems else 0
        self.n_drum = n_drum
        self.shifts = [int(round(12 * b * math.log2(h))) for h in HARMONICS]
        self.pad_lo = max(0, -min(self.shifts))
        self.pad_hi = max(0, max(self.shifts))
        self.key_pos0 = KEY_LOW - cfg.midi_low  # position of key 0
        if self.key_pos0 < 0 or self.key_pos0 + cfg.n_keys > cfg.n_pos:
            raise ValueError("the semitone positions must cover the 88 keys")

        self.fb = SparseMatMul(log_filterbank(cfg))
        # global input normalisation (set from training data by set_input_stats)
        self.register_buffer("log_mean", torch.zeros(1))
        self.register_buffer("log_std", torch.ones(1))
        self.register_buffer("lin_mean", torch.zeros(1))
        self.register_buffer("lin_std", torch.ones(1))

        n_h = len(HARMONICS)
        self.conv_a = nn.Conv2d(n_h, cfg.conv_a, (cfg.kt_a, 3 * b), stride=(1, b), padding=(0, b))
        self.conv_b = nn.Conv2d(cfg.conv_a + cfg.n_stems, cfg.conv_b, (cfg.kt_b, 3), padding=(0, 1))
        self.conv_c = nn.Conv2d(cfg.conv_b, cfg.conv_b, (1, cfg.kf_c), padding=(0, cfg.kf_c // 2))
        self.gru = nn.GRU(cfg.conv_b, cfg.gru_hidden, 1, batch_first=True)
        d = cfg.conv_b + cfg.gru_hidden  # per-position feature
        self.d_feat = d
        self.activity_head = nn.Linear(2 * d, cfg.n_stems)
        self.context = nn.Linear(2 * d, cfg.n_context)
        d_note = d + cfg.n_context + cfg.n_stems
        self.note_head = nn.Linear(d_note, 2 * cfg.n_stems)
        self.key_bias = nn.Parameter(torch.zeros(2, cfg.n_stems, cfg.n_keys))
        n_regions = 9
        regions_t = torch.from_numpy(region_pool(cfg.n_pos, n_regions).T.copy())
        self.register_buffer("regions_t", regions_t, persistent=False)
        if n_drum:
            self.drum_head = nn.Linear(n_regions * d, 2 * n_drum)
            place = np.zeros((n_drum, cfg.n_keys), np.float32)
            off = np.full(cfg.n_keys, OFF_KEY_LOGIT, np.float32)
            for i, m in enumerate(DRUM_CLASSES):
                place[i, m - KEY_LOW] = 1.0
                off[m - KEY_LOW] = 0.0
            self.register_buffer("drum_place", torch.from_numpy(place), persistent=False)
            self.register_buffer("drum_off", torch.from_numpy(off), persistent=False)
            self.drum_templates = nn.Parameter(torch.zeros(n_drum, cfg.n_bins))
        # mask decoder
        self.mask_in = nn.Linear(d + cfg.n_context, cfg.mask_hidden)
        self.mask_pos = nn.Linear(cfg.mask_hidden, cfg.mask_hidden)
        lo, hi, w = semitone_interp(cfg)
        interp = np.zeros((cfg.n_pos, cfg.n_bins), np.float32)
        np.add.at(interp, (lo, np.arange(cfg.n_bins)), 1.0 - w)
        np.add.at(interp, (hi, np.arange(cfg.n_bins)), w)
        self.interp = SparseMatMul(interp)
        self.register_buffer("comb", torch.from_numpy(harmonic_comb(cfg)), persistent=False)
        self.mask_comb = nn.Parameter(torch.randn(cfg.mask_hidden, cfg.n_stems) * 0.3)
        self.mask_own = nn.Parameter(torch.randn(cfg.mask_hidden, 1) * 0.3)
        self.mask_out = nn.Parameter(torch.randn(cfg.n_stems + 1, cfg.mask_hidden) / math.sqrt(cfg.mask_hidden))
        self.comb_gain = nn.Parameter(torch.ones(cfg.n_stems, 1))
        self.mask_prior = nn.Parameter(torch.zeros(cfg.n_stems + 1, cfg.n_bins))
        if cfg.salience:  # zero-initialised: a network without it loads and starts out the same
            self.sal_head = nn.Linear(d + cfg.n_context, cfg.n_stems)
            pos_comb = harmonic_comb(cfg, cfg.midi_low + np.arange(cfg.n_pos))
            self.register_buffer("pos_comb", torch.from_numpy(pos_comb), persistent=False)
            self.mask_sal = nn.Parameter(torch.zeros(cfg.mask_hidden, cfg.n_stems))
            self.sal_gain = nn.Parameter(torch.zeros(cfg.n_stems, 1))
        with torch.no_grad():  # notes start rare rather than at 0.5
            self.note_head.bias[: cfg.n_stems].fill_(-3.0)
            self.note_head.bias[cfg.n_stems :].fill_(-4.0)
            if n_drum:
                self.drum_head.bias[:n_drum].fill_(-3.0)
                self.drum_head.bias[n_drum:].fill_(-4.0)

    # ------------------------------------------------------------------ helpers

    @property
    def state_size(self) -> int:
        return self.cfg.state_size

    def initial_state(self, batch: int) -> torch.Tensor:
        """Zero state (batch, state_size)."""
        return torch.zeros(batch, self.state_size)

    def _log_map(self, spec: torch.Tensor) -> torch.Tensor:
        """(B,T,n_bins) -> normalised log-frequency map (B,T,n_log)."""
        x = self.fb(spec.clamp_min(0.0))
        return (torch.log1p(self.cfg.input_gain * x) - self.log_mean) / self.log_std

    def _stack(self, lm: torch.Tensor) -> torch.Tensor:
        """(B,T,n_log) -> harmonic stack (B, n_harmonics, T, n_log)."""
        n = lm.shape[-1]
        p = F.pad(lm, (self.pad_lo, self.pad_hi))
        chans = [p[..., self.pad_lo + s : self.pad_lo + s + n] for s in self.shifts]
        return torch.stack(chans, dim=1)

    @torch.no_grad()
    def set_input_stats(self, spec: torch.Tensor) -> None:
        """Global mean / std of the log map and of the linear log magnitude over ``spec`` (..., n_bins)."""
        spec = spec.reshape(-1, spec.shape[-1]).to(self.log_mean)
        x = torch.log1p(self.cfg.input_gain * self.fb(spec.clamp_min(0.0)))
        self.log_mean.fill_(float(x.mean()))
        self.log_std.fill_(max(float(x.std()), 0.05))
        y = torch.log1p(self.cfg.input_gain * spec.clamp_min(0.0))
        self.lin_mean.fill_(float(y.mean()))
        self.lin_std.fill_(max(float(y.std()), 0.05))

    def front_features(self, spec: torch.Tensor) -> torch.Tensor:
        """conv_a over the harmonic stack of ``spec`` (B,T,n_bins), every frame on its own (the time
        kernel's past taps see zeros): (B, conv_a, T, n_pos). Pitch-equivariant (tests)."""
        return self.front_features_log(self._log_map(spec))

    def front_features_log(self, lm: torch.Tensor) -> torch.Tensor:
        """``front_features`` from a normalised log map (B,T,n_log): shifting ``lm`` by
        ``bins_per_semitone`` bins shifts the result by exactly one position (away from the edges)."""
        st = self._stack(lm)  # (B,H,T,L)
        b, h, t, n = st.shape
        x = st.transpose(1, 2).reshape(b * t, h, 1, n)
        x = F.pad(x, (0, 0, self.cfg.kt_a - 1, 0))
        y = self.conv_a(x)  # (B*T, C, 1, P)
        return y.reshape(b, t, -1, y.shape[-1]).transpose(1, 2)

    def _split_state(self, state: torch.Tensor):
        cfg = self.cfg
        n1, n2, _ = cfg.state_sizes
        bsz = state.shape[0]
        s_a = state[:, :n1].reshape(bsz, cfg.kt_a - 1, cfg.n_log)
        s_b = state[:, n1 : n1 + n2].reshape(bsz, cfg.conv_a + cfg.n_stems, cfg.kt_b - 1, cfg.n_pos)
        s_g = state[:, n1 + n2 :].reshape(bsz * cfg.n_pos, cfg.gru_hidden).unsqueeze(0)
        return s_a, s_b, s_g

    # ------------------------------------------------------------------ body

    def _run(
        self, spec: torch.Tensor, score: torch.Tensor, state_in: torch.Tensor, mask_frames: slice | None = None
    ) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        bsz, t = spec.shape[0], spec.shape[1]
        n_st, n_k, n_pos = cfg.n_stems, cfg.n_keys, cfg.n_pos
        s_a, s_b, s_g = self._split_state(state_in)

        # 1-3: log map with history -> harmonic stack -> conv_a (valid in time)
        # (the state keeps the raw log1p map, so a zero state is silence)
        lm = torch.log1p(cfg.input_gain * self.fb(spec.clamp_min(0.0)))  # (B,T,L)
        lm_full = torch.cat([s_a, lm], dim=1)  # (B, T + kt_a - 1, L)
        new_a = lm_full[:, t:]
        lm_full = (lm_full - self.log_mean) / self.log_std
        xa = torch.relu(self.conv_a(self._stack(lm_full)))  # (B, Ca, T, P)
        # 4: score at the key positions, conv_b with history, conv_c residual
        sc = score.permute(0, 2, 1, 3)  # (B,S,T,K)
        sc = F.pad(sc, (self.key_pos0, n_pos - self.key_pos0 - n_k))  # (B,S,T,P)
        xb_in = torch.cat([s_b, torch.cat([xa, sc], dim=1)], dim=2)  # (B, Ca+S, T + kt_b - 1, P)
        new_b = xb_in[:, :, t:]
        xb = torch.relu(self.conv_b(xb_in))  # (B, Cb, T, P)
        xc = xb + torch.relu(self.conv_c(xb))
        # 5: GRU along time per position
        z = xc.permute(0, 3, 2, 1)  # (B,P,T,Cb)
        g, hn = self.gru(z.reshape(bsz * n_pos, t, cfg.conv_b), s_g)
        g = g.reshape(bsz, n_pos, t, cfg.gru_hidden)
        feat = torch.cat([z, g], dim=-1).transpose(1, 2)  # (B,T,P,D)
        state_out = torch.cat(
            [new_a.reshape(bsz, -1), new_b.reshape(bsz, -1), hn.reshape(bsz, n_pos * cfg.gru_hidden)], dim=1
        )
        # 6: pooled per-frame summary -> activity, context
        reg = torch.matmul(self.regions_t, feat)  # (B,T,R,D): region means (a MatMul, cheaper than Reduce*)
        pooled = torch.cat([reg.mean(dim=2), reg.amax(dim=2)], dim=-1)  # (B,T,2D)
        act_logit = self.activity_head(pooled)
        ctx = torch.relu(self.context(pooled))  # (B,T,n_ctx)
        ctx_p = ctx.unsqueeze(2).expand(bsz, t, n_pos, cfg.n_context)
        # 7: note heads
        fk = feat[:, :, self.key_pos0 : self.key_pos0 + n_k]  # (B,T,K,D)
        note_in = torch.cat([fk, ctx_p[:, :, :n_k], score.transpose(2, 3)], dim=-1)
        nl = self.note_head(note_in).reshape(bsz, t, n_k, 2, n_st).permute(0, 1, 3, 4, 2)  # (B,T,2,S,K)
        nl = nl + self.key_bias
        frame_logit, onset_logit = nl[:, :, 0], nl[:, :, 1]
        if self.n_drum:
            ds = cfg.drum_stem
            dl = self.drum_head(reg.reshape(bsz, t, -1)).reshape(bsz, t, 2, self.n_drum)
            dk = torch.matmul(dl, self.drum_place) + self.drum_off  # (B,T,2,K)
            frame_logit = torch.cat([frame_logit[:, :, :ds], dk[:, :, 0:1], frame_logit[:, :, ds + 1 :]], dim=2)
            onset_logit = torch.cat([onset_logit[:, :, :ds], dk[:, :, 1:2], onset_logit[:, :, ds + 1 :]], dim=2)
        frame_p = torch.sigmoid(frame_logit)
        activity = torch.sigmoid(act_logit)
        # 8: masks at full resolution (per frame: training may decode only some frames)
        if mask_frames is not None:
            feat, ctx_p, frame_p = feat[:, mask_frames], ctx_p[:, mask_frames], frame_p[:, mask_frames]
            spec, activity_m = spec[:, mask_frames], activity[:, mask_frames]
        else:
            activity_m = activity
        fc = torch.cat([feat, ctx_p], dim=-1)
        m = torch.relu(self.mask_in(fc))  # (B,T,P,Hm)
        m = self.mask_pos(m).transpose(2, 3)  # (B,T,Hm,P)
        mi = self.interp(m)  # (B,T,Hm,n_bins): a MatMul is far faster than Gather in onnxruntime
        comb = torch.matmul(frame_p, self.comb)  # (B,T,S,n_bins)
        if self.n_drum:
            ds = cfg.drum_stem
            d_ev = torch.matmul(frame_p[:, :, ds, [m - KEY_LOW for m in DRUM_CLASSES]], self.drum_templates)
            comb = torch.cat([comb[:, :, :ds], d_ev.unsqueeze(2), comb[:, :, ds + 1 :]], dim=2)
        own = (torch.log1p(cfg.input_gain * spec.clamp_min(0.0)) - self.lin_mean) / self.lin_std
        h = mi + torch.matmul(self.mask_comb, comb) + self.mask_own * own.unsqueeze(2)
        if cfg.salience:  # each stem's pitch salience at its partials: harmonic-resolution evidence
            sal = torch.matmul(torch.sigmoid(self.sal_head(fc)).transpose(2, 3), self.pos_comb)  # (B,T,S,n_bins)
            h = h + torch.matmul(self.mask_sal, sal)
        logits = torch.matmul(self.mask_out, torch.relu(h)) + self.mask_prior  # (B,T,S+1,n_bins)
        stem_logits = logits[:, :, :n_st] + self.comb_gain * comb
        if cfg.salience:
            stem_logits = stem_logits + self.sal_gain * sal
        logits = torch.cat([stem_logits, logits[:, :, n_st:]], dim=2)
        e = torch.exp(logits - logits.amax(dim=2, keepdim=True))  # softmax over slots, spelled out:
        masks = e[:, :, :n_st] / e.sum(dim=2, keepdim=True)  # onnxruntime's Softmax on axis 2 transposes
        if cfg.gate_floor < 1.0:
            masks = masks * (cfg.gate_floor + (1.0 - cfg.gate_floor) * activity_m).unsqueeze(-1)
        return {
            "masks": masks,
            "note_frame_logit": frame_logit,
            "note_onset_logit": onset_logit,
            "activity_logit": act_logit,
            "activity": activity,
            "state_out": state_out,
        }

    def forward(self, spec: torch.Tensor, score: torch.Tensor, state_in: torch.Tensor):
        """ONNX contract: -> (masks, note_frame, note_onset, activity, state_out)."""
        o = self._run(spec, score, state_in)
        return (
            o["masks"],
            torch.sigmoid(o["note_frame_logit"]),
            torch.sigmoid(o["note_onset_logit"]),
            o["activity"],
            o["state_out"],
        )

    def forward_train(
        self,
        spec: torch.Tensor,
        score: torch.Tensor,
        state_in: torch.Tensor | None = None,
        mask_frames: slice | None = None,
    ):
        """Training forward: dict with masks, logits, activity, state_out. ``mask_frames`` (a slice
        of the frame axis) decodes masks for those frames only (the decoder is per frame, so they
        equal the full run's; the full-resolution decoder dominates training time)."""
        if state_in is None:
            state_in = self.initial_state(spec.shape[0]).to(spec)
        return self._run(spec, score, state_in, mask_frames)


def count_parameters(model: nn.Module, exported_only: bool = True) -> int:
    """Number of parameters (all are exported)."""
    return sum(p.numel() for p in model.parameters())


def macs_per_frame(cfg: HarmonicConfig) -> int:
    """Approximate multiply-accumulates per frame of the exported graph."""
    p, s, d = cfg.n_pos, cfg.n_stems, cfg.conv_b + cfg.gru_hidden
    h = cfg.gru_hidden
    return int(
        cfg.n_bins * cfg.n_log // 8  # filterbank (sparse in effect; dense MatMul is n_bins * n_log)
        + p * len(HARMONICS) * cfg.conv_a * cfg.kt_a * 9
        + p * (cfg.conv_a + s) * cfg.conv_b * cfg.kt_b * 3
        + p * cfg.conv_b * cfg.conv_b * cfg.kf_c
        + p * 3 * (cfg.conv_b * h + h * h)
        + 2 * d * (s + cfg.n_context)
        + cfg.n_keys * (d + cfg.n_context + s) * 2 * s
        + p * ((d + cfg.n_context) * cfg.mask_hidden + cfg.mask_hidden**2)
        + s * cfg.n_keys * cfg.n_bins
        + cfg.n_bins * cfg.mask_hidden * (s + 1 + s + 2)
        + (p * (d + cfg.n_context) * s + s * p * cfg.n_bins + cfg.n_bins * cfg.mask_hidden * s if cfg.salience else 0)
    )


__all__ = [
    "HARMONICS",
    "Harmonic",
    "HarmonicConfig",
    "count_parameters",
    "harmonic_comb",
    "log_filterbank",
    "macs_per_frame",
    "semitone_interp",
]
