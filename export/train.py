"""Train a causal stembridge network (``[model] arch``: ``cerberus``, the default, or ``harmonic``)
on a Slakh2100-layout corpus.

``stembridge train --config export/configs/band.toml [--corpus DIR] [--out runs/band] [--resume]``

Pipeline
--------
1. The corpus is read once through ``export.data.slakh`` (``list_tracks`` / ``load_track``) and
   cached in ``OUT/cache/<split>/``: per track an int16 array (n_sources + 1, n_samples) of the
   stems plus ``other`` (``mix`` = their sum, so per-stem gain augmentation is exact) with its
   scale, and the notes as (n, 5) ``[stem, onset_s, offset_s, pitch, velocity]``.
2. Each step draws random crops of ``crop_frames`` frames (with ``train.sample_offset``, each crop
   starts a random 0..hop-1 samples off the frame grid, the notes shifted with it, so the model
   sees every position of the frames against the audio), optionally re-gains the stems,
   computes the STFT of the mix and of every source in torch (the bridge's framing: frame k
   covers samples [(k+1)*hop - n_fft, (k+1)*hop), periodic Hann, unnormalised rFFT), the
   tPSA targets, the dominant-source labels for deep clustering, note rolls
   (``bridge.score.notes_to_roll`` / ``onsets_to_roll``: the runtime's frame rule) and a corrupted score.
3. Loss = w_mask * L1(tPSA on masked magnitude) + w_frame * BCE(note_frame) + w_onset *
   BCE(note_onset) + w_activity * BCE(activity) + w_dc * deep clustering (efficient form, on
   the band-centre bins of a random subset of bands, silent bins dropped; only for a model with a
   deep-clustering head, ``has_dc``: the harmonic network has none).
4. Checkpoints (atomic) every ``ckpt_every`` steps and every epoch; ``--resume`` continues exactly
   as an uninterrupted run would (with ``train.loader_workers`` = 0: the checkpoint keeps the batch
   sampler's random state), ``--until STEP`` stops a long schedule at a step to resume later;
   validation each epoch: SI-SDR of the masked stems (mix phase, iSTFT) and note onset F1
   (mir_eval) on fixed validation crops.

Checkpoints hold only tensors and plain dicts (``torch.load(..., weights_only=True)``); their
``config.model`` records the architecture (``arch``) with its hyper-parameters.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bridge.score import notes_to_roll, onsets_to_roll
from export.decode_tuning import bridge_notes, decoder_metadata, tune_decode
from export.models import StemModel, build_model, count_parameters, describe, model_arch, model_config
from export.models.cerberus import Cerberus
from export.models.harmonic import Harmonic
from export.note_scores import HOP, KEY_LOW, N_FFT, SAMPLE_RATE, onset_f1, roll_to_notes
from export.transcribed_scores import load_transcribed

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

N_KEYS = 88

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "stems": ["drums", "bass", "piano", "guitar", "strings"],
    "model": {"arch": "cerberus"},
    "data": {"corpus": "corpus/train", "train_split": "train", "valid_split": "validation", "max_tracks": 0},
    "train": {
        "batch_size": 12,
        "crop_frames": 200,
        "lr": 1e-3,
        "lr_final": 1e-4,
        "max_steps": 100000,
        "max_minutes": 60.0,
        "epoch_steps": 0,
        "ckpt_every": 200,
        "log_every": 20,
        "grad_clip": 1.0,
        "gain_db_range": 6.0,
        "sample_offset": False,  # crops start at random sample offsets off the frame grid
        "threads": 2,
        "refresh_corpus": True,
        "device": "cpu",  # "cpu", "cuda" or "auto" (cuda when available)
        "loader_workers": 0,  # >0: batches are drawn in that many worker processes
        "ema_decay": 0.0,  # >0: also keep an exponential moving average of the weights; it is validated and shipped
    },
    "loss": {
        "mask": 1.0,
        "frame": 1.0,
        "onset": 1.0,
        "activity": 0.2,
        "dc": 0.1,
        "mask_frame_step": 1,  # >1: the mask loss on every n-th frame, random phase (harmonic model only)
        # >0: each stem's mask error relative to its own level plus this share of the mix's (``mask_l1``): at 0.2
        # a stem 20 dB under another weighs about 2.6x less for the same relative miss, not 10x; 0: one pooled L1
        "mask_stem_floor": 0.0,
        # a stem's mask term times this weight (a table of stem = weight; stems left out weigh 1; the residual 1)
        "mask_stem_weights": {},
        "onset_pos_weight": 4.0,
        "frame_pos_weight": 2.0,
        "dc_bands": 16,
        "dc_frame_step": 4,
        "activity_rel_db": -30.0,
        "activity_abs_db": -60.0,
    },
    "score": {
        "p_absent": 0.5,
        "p_stem_absent": 0.15,
        "p_delete_max": 0.3,
        "p_add": 0.1,
        "p_pitch_shift": 0.05,
        "jitter_s": 0.03,
        # the share of the training crops with a score (not drawn absent) conditioned on the blind path's own
        # transcription of the track instead of the corrupted true score, at one of
        # these membership shares drawn at random (``export.transcribed_scores``; made once per track, cached)
        "p_transcribed": 0.0,
        "transcribed_shares": [0.05, 0.3, 1.0],
    },
    "valid": {"n_crops": 24, "crop_frames": 400},
}


# ----------------------------------------------------------------------------- config


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def apply_override(cfg: dict[str, Any], item: str) -> None:
    """Set ``cfg[section][key]`` from ``"section.key=VALUE"`` (VALUE parsed as TOML) in place."""
    name, sep, text = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or section not in cfg or not isinstance(cfg[section], dict) or key not in cfg[section]:
        raise ValueError(f"--set {item!r}: expected SECTION.KEY=VALUE with a known key")
    try:
        cfg[section][key] = tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"--set {item!r}: value is not TOML ({e})") from None


def load_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """DEFAULTS overridden by the TOML file at ``path`` (if any)."""
    cfg = json.loads(json.dumps(DEFAULTS))
    if path:
        with open(path, "rb") as f:
            cfg = _merge(cfg, tomllib.load(f))
    return cfg


# ----------------------------------------------------------------------------- corpus cache


def _reader():
    """The Slakh-layout reader (``export.data.slakh``)."""
    from export.data import slakh

    return slakh


def _split_names(root: Path, split: str) -> list[Path]:
    slakh = _reader()
    tracks = slakh.list_tracks(root, split=split)
    return [Path(t) if not isinstance(t, Path) else t for t in tracks]


def _cache_track(tdir: Path, out_dir: Path, stems: list[str]) -> str | None:
    """Cache one track (int16 sources + notes); returns its name, or None for a half-rendered track."""
    name = Path(tdir).name
    try:
        tr = _reader().load_track(tdir, stems=tuple(stems), sample_rate=SAMPLE_RATE)
    except Exception as e:  # noqa: BLE001 - a half-rendered track: skip it this time
        print(f"[cache] skipping {name}: {e}", flush=True)
        return None
    src = np.concatenate([np.asarray(tr["stems"], np.float32), np.asarray(tr["other"], np.float32)[None]], 0)
    scale = float(max(np.abs(src).max(), 1e-6)) / 32000.0
    q = np.round(src / scale).astype(np.int16)
    notes = []
    for si, arr in enumerate(tr["notes"]):
        arr = np.asarray(arr, np.float64).reshape(-1, 4)
        notes.append(np.concatenate([np.full((len(arr), 1), si, np.float64), arr], 1))
    notes_arr = np.concatenate(notes, 0) if notes else np.zeros((0, 5))
    np.save(out_dir / f"{name}.audio.npy", q)
    np.savez(out_dir / f"{name}.tmp.npz", scale=np.float64(scale), notes=notes_arr)
    os.replace(out_dir / f"{name}.tmp.npz", out_dir / f"{name}.meta.npz")  # marks the track done
    return name


def build_cache(
    corpus: Path,
    cache_dir: Path,
    split: str,
    stems: list[str],
    max_tracks: int = 0,
    min_age_s: float = 0.0,
    jobs: int = 1,
) -> list[Path]:
    """Cache the tracks of ``split`` as int16 sources + notes (incremental: tracks already cached
    are skipped, and tracks modified less than ``min_age_s`` ago are left for a later call, so a
    corpus that is still being rendered can be picked up as it grows), in ``jobs`` processes.
    Returns cached track stems, in corpus order."""
    out_dir = cache_dir / split
    out_dir.mkdir(parents=True, exist_ok=True)
    tracks = _split_names(corpus, split)
    if max_tracks:
        tracks = tracks[:max_tracks]
    todo = []
    for tdir in tracks:
        if (out_dir / f"{Path(tdir).name}.meta.npz").exists():
            continue
        if min_age_s > 0:
            newest = max((p.stat().st_mtime for p in Path(tdir).rglob("*")), default=time.time())
            if time.time() - newest < min_age_s:
                continue
        todo.append(tdir)
    t0 = time.time()
    if jobs > 1 and len(todo) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(_cache_track, todo, [out_dir] * len(todo), [stems] * len(todo), chunksize=4))
    else:
        done = []
        for n, tdir in enumerate(todo, 1):
            done.append(_cache_track(tdir, out_dir, stems))
            if n % 20 == 0:
                print(f"[cache] {split}: {n}/{len(todo)} new tracks ({time.time() - t0:.0f} s)", flush=True)
    if todo:
        print(f"[cache] {split}: {sum(d is not None for d in done)} new tracks ({time.time() - t0:.0f} s)", flush=True)
    names = [Path(t).name for t in tracks if (out_dir / f"{Path(t).name}.meta.npz").exists()]
    return [out_dir / n for n in names]


class TrackCache:
    """Memory-mapped cached tracks: sources (n_src + 1, n) int16, scale, notes (n, 5)."""

    def __init__(self, paths: list[Path]):
        self.audio: list[np.ndarray] = []
        self.scale: list[float] = []
        self.notes: list[np.ndarray] = []
        self.transcribed: list[np.ndarray | None] = []  # the blind path's transcription (export.transcribed_scores)
        self.paths: list[Path] = []
        self.add(paths)

    def add(self, paths: list[Path]) -> int:
        """Add cached tracks not yet loaded; returns how many were added."""
        known = set(self.paths)
        n = 0
        for p in paths:
            if p in known:
                continue
            self.audio.append(np.load(str(p) + ".audio.npy", mmap_mode="r"))
            m = np.load(str(p) + ".meta.npz")
            self.scale.append(float(m["scale"]))
            self.notes.append(m["notes"])
            self.transcribed.append(load_transcribed(p))
            self.paths.append(p)
            n += 1
        self.n_samples = np.array([a.shape[1] for a in self.audio], np.int64)
        self.n_frames = self.n_samples // HOP + 1
        return n

    def __len__(self) -> int:
        return len(self.audio)

    @property
    def total_frames(self) -> int:
        return int(self.n_frames.sum())

    def crop(self, ti: int, k0: int, n_frames: int, offset_samples: int = 0) -> np.ndarray:
        """Samples of frames k0..k0+n_frames-1, all ``offset_samples`` later than the frame grid:
        (n_src + 1, (n_frames - 1) * hop + n_fft) float32."""
        a = self.audio[ti]
        s0 = (k0 + 1) * HOP - N_FFT + offset_samples
        s1 = (k0 + n_frames) * HOP + offset_samples
        out = np.zeros((a.shape[0], s1 - s0), np.float32)
        lo, hi = max(s0, 0), min(s1, a.shape[1])
        if hi > lo:
            out[:, lo - s0 : hi - s0] = a[:, lo:hi]
        return out * self.scale[ti]


# ----------------------------------------------------------------------------- features and targets


_WINDOW: dict[str, torch.Tensor] = {}


def stft_frames(x: torch.Tensor) -> torch.Tensor:
    """Complex STFT of pre-framed-aligned audio (..., (T-1)*hop + n_fft) -> (..., T, n_bins)."""
    w = _WINDOW.get(str(x.device))
    if w is None:
        w = _WINDOW[str(x.device)] = torch.hann_window(N_FFT, periodic=True, device=x.device)
    shp = x.shape[:-1]
    s = torch.stft(x.reshape(-1, x.shape[-1]), N_FFT, HOP, window=w, center=False, return_complex=True)
    return s.reshape(*shp, s.shape[-2], s.shape[-1]).transpose(-1, -2)


def corrupt_notes(
    notes: np.ndarray,
    rng: np.random.Generator,
    sc: dict,
    n_stems: int,
    t0_s: float,
    t1_s: float,
    transcribed: tuple[np.ndarray | None, int] = (None, 0),
) -> np.ndarray:
    """Score corruption for one crop [t0_s, t1_s]: whole score absent, stems absent, notes deleted,
    added, pitch-shifted, timing jitter. notes (n, 5) [stem, on, off, pitch, vel] -> new array. A crop
    whose score is not drawn absent takes, with probability ``score.p_transcribed``, the track's own
    transcription instead (``transcribed``: its rows and the crop's offset in samples, ``transcribed_crop``)."""
    if rng.random() < sc["p_absent"] or len(notes) == 0:
        return notes[:0]
    own = transcribed_crop(transcribed[0], rng, sc, t0_s, t1_s, transcribed[1])
    if own is not None:
        return own
    keep = np.ones(len(notes), bool)
    for s in range(n_stems):
        if rng.random() < sc["p_stem_absent"]:
            keep &= notes[:, 0] != s
    keep &= rng.random(len(notes)) >= rng.uniform(0, sc["p_delete_max"])
    out = notes[keep].copy()
    if len(out):
        j = sc["jitter_s"]
        out[:, 1] += rng.normal(0, j / 2, len(out)).clip(-j, j)
        out[:, 2] += rng.normal(0, j / 2, len(out)).clip(-j, j)
        shift = rng.random(len(out)) < sc["p_pitch_shift"]
        out[shift, 3] += rng.choice([-12, -1, 1, 12], int(shift.sum()))
    n_add = rng.poisson(sc["p_add"] * max(len(notes), 1))
    if n_add:
        on = rng.uniform(t0_s, t1_s, n_add)
        add = np.stack(
            [
                rng.integers(0, n_stems, n_add),
                on,
                on + rng.uniform(0.05, 1.0, n_add),
                rng.integers(28, 96, n_add),
                np.full(n_add, 80.0),
            ],
            1,
        )
        out = np.concatenate([out, add], 0)
    return out


def transcribed_crop(
    rows: np.ndarray | None, rng: np.random.Generator, sc: dict, t0_s: float, t1_s: float, offset_samples: int
) -> np.ndarray | None:
    """With probability ``score.p_transcribed``, the score of one crop [t0_s, t1_s] from the track's own
    transcription ``rows`` (n, 6) at one of its membership shares drawn at random (``export.transcribed_scores``),
    moved ``offset_samples`` earlier as the crop's true notes are: (n, 5) [stem, on, off, pitch, vel]; None
    otherwise (or where the track has no transcription): the caller corrupts the true score. ``corrupt_notes``
    asks only for crops whose score is not drawn absent, so the crops without a score (which teach the
    network's blind run) stay as many."""
    p = float(sc.get("p_transcribed", 0.0))
    if rows is None or p <= 0 or rng.random() >= p:
        return None
    k = int(rng.integers(0, int(rows[:, 0].max()) + 1)) if len(rows) else 0
    out = rows[(rows[:, 0] == k) & (rows[:, 3] > t0_s) & (rows[:, 2] < t1_s)][:, 1:].copy()
    out[:, 1:3] -= offset_samples / SAMPLE_RATE
    return out


def rolls_for(notes: np.ndarray, n_stems: int, k0: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """notes (n, 5) ``[stem, onset_s, offset_s, pitch, velocity]`` -> frame, onset rolls
    (n_frames, n_stems, n_keys) float32 for frames ``k0..``, by the runtime's frame rule."""
    grid = types.SimpleNamespace(
        sample_rate=SAMPLE_RATE, hop=HOP, n_fft=N_FFT, key_low=KEY_LOW, n_keys=N_KEYS, stems=range(n_stems)
    )
    per_stem = [notes[notes[:, 0] == s][:, 1:] for s in range(n_stems)]
    return notes_to_roll(per_stem, n_frames, grid, k0), onsets_to_roll(per_stem, n_frames, grid, k0)


def make_batch(
    cache: TrackCache,
    rng: np.random.Generator,
    cfg: dict,
    n_batch: int,
    n_frames: int,
    train: bool = True,
    fixed: Sequence[tuple[int, ...]] | None = None,
) -> dict[str, torch.Tensor]:
    """Random (or ``fixed`` (track, k0[, offset_samples])) crops -> tensors for ``compute_losses``.

    Training crops (``train`` and ``train.sample_offset``) start a random 0..hop-1 samples after
    frame k0's grid position; the notes move the other way, so the rolls still follow the
    runtime's frame rule for the audio the frames actually cover."""
    stems = cfg["stems"]
    n_st = len(stems)
    offsets = train and bool(cfg["train"].get("sample_offset", False))
    audio, fr, on, sc_in = [], [], [], []
    for b in range(n_batch):
        if fixed is not None:
            ti, k0 = fixed[b][:2]
            off = int(fixed[b][2]) if len(fixed[b]) > 2 else 0
        else:
            ti = int(rng.choice(len(cache), p=cache.n_frames / cache.n_frames.sum()))
            k0 = int(rng.integers(0, max(cache.n_frames[ti] - n_frames, 1)))
            off = int(rng.integers(0, HOP)) if offsets else 0
        x = cache.crop(ti, k0, n_frames, off)
        if train and cfg["train"]["gain_db_range"] > 0:
            g = 10 ** (rng.uniform(-1, 1, (x.shape[0], 1)) * cfg["train"]["gain_db_range"] / 20)
            x = x * g.astype(np.float32)
        audio.append(x)
        notes = cache.notes[ti]
        t0 = (k0 - 2) * HOP / SAMPLE_RATE
        t1 = (k0 + n_frames + 2) * HOP / SAMPLE_RATE
        nsel = notes[(notes[:, 2] > t0) & (notes[:, 1] < t1)] if len(notes) else notes.reshape(0, 5)
        if off:
            nsel = nsel.copy()
            nsel[:, 1:3] -= off / SAMPLE_RATE
        f, o = rolls_for(nsel, n_st, k0, n_frames)
        fr.append(f)
        on.append(o)
        if train:
            cn = corrupt_notes(nsel, rng, cfg["score"], n_st, t0, t1, (cache.transcribed[ti], off))
            s, _ = rolls_for(cn, n_st, k0, n_frames)
        else:
            s = np.zeros_like(f)
        sc_in.append(s)
    src = torch.from_numpy(np.stack(audio))  # (B, n_src+1, samples)
    return {
        "src": src,
        "frame": torch.from_numpy(np.stack(fr)),
        "onset": torch.from_numpy(np.stack(on)),
        "score": torch.from_numpy(np.stack(sc_in)),
    }


class _BatchStream(torch.utils.data.IterableDataset):
    """Endless training batches, drawn in a DataLoader worker with its own random stream."""

    def __init__(self, cache: TrackCache, cfg: dict, seed: int, start_step: int):
        self.cache, self.cfg, self.seed, self.start_step = cache, cfg, seed, start_step

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, self.start_step, info.id if info else 0])
        tc = self.cfg["train"]
        while True:
            yield make_batch(self.cache, rng, self.cfg, tc["batch_size"], tc["crop_frames"])


def training_batches(cache: TrackCache, rng: np.random.Generator, cfg: dict, start_step: int, pin: bool = False):
    """Endless training batches: in this process from ``rng`` (``train.loader_workers`` = 0, exactly
    reproducible), or from that many DataLoader worker processes (one random stream each)."""
    tc = cfg["train"]
    n_workers = int(tc.get("loader_workers", 0))
    if n_workers <= 0:
        while True:
            yield make_batch(cache, rng, cfg, tc["batch_size"], tc["crop_frames"])
    loader = torch.utils.data.DataLoader(
        _BatchStream(cache, cfg, int(cfg["seed"]), start_step),
        batch_size=None,
        num_workers=n_workers,
        pin_memory=pin,
        prefetch_factor=4,
    )
    yield from loader


def spectra(src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """src (B, n_src+1, samples) -> mix STFT (B,T,F) and source STFTs (B, n_src+1, T, F)."""
    s = stft_frames(src)
    return s.sum(1), s


def _cabs(z: torch.Tensor) -> torch.Tensor:
    """|z| of a complex tensor (faster than ``abs`` on CPU)."""
    return torch.sqrt(z.real.square() + z.imag.square())


def dc_loss(v: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Deep clustering ‖VᵀV‖² − 2‖VᵀY‖² + ‖YᵀY‖², per item, normalised by (Σw)².

    v (B, N, D) unit embeddings, y (B, N, C) one-hot, w (B, N) bin weights in {0, 1}.
    """
    v = v * w.unsqueeze(-1)
    y = y * w.unsqueeze(-1)
    vv = torch.einsum("bnd,bne->bde", v, v).pow(2).sum((1, 2))
    vy = torch.einsum("bnd,bnc->bdc", v, y).pow(2).sum((1, 2))
    yy = torch.einsum("bnc,bne->bce", y, y).pow(2).sum((1, 2))
    n = w.sum(1).clamp_min(1.0)
    return ((vv - 2 * vy + yy) / n**2).mean()


def mask_stem_weights(cfg: dict) -> torch.Tensor | None:
    """``loss.mask_stem_weights`` as a (S,) tensor in the order of ``cfg["stems"]`` (None when every
    stem weighs 1). Raises ValueError on a value that is no table, a stem the config does not separate
    or a weight that is no finite number >= 0."""
    table = cfg["loss"].get("mask_stem_weights", {})
    if not isinstance(table, dict):
        raise ValueError(f"loss.mask_stem_weights must be a table of stem = weight, not {table!r}")
    stems = list(cfg["stems"])
    unknown = sorted(set(table) - set(stems))
    if unknown:
        raise ValueError(f"loss.mask_stem_weights names {', '.join(unknown)}, not among the stems {', '.join(stems)}")
    try:
        weights = [float(table.get(s, 1.0)) for s in stems]
    except (TypeError, ValueError):
        raise ValueError(f"loss.mask_stem_weights must map stems to numbers, not {table!r}") from None
    if any(not (math.isfinite(w) and w >= 0.0) for w in weights):
        raise ValueError(f"loss.mask_stem_weights must be finite numbers >= 0, not {table!r}")
    return None if all(w == 1.0 for w in weights) else torch.tensor(weights)


def mask_l1(
    est: torch.Tensor,
    tgt: torch.Tensor,
    mag: torch.Tensor,
    stem_floor: float = 0.0,
    stem_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The masked magnitudes' L1 loss: ``est``, ``tgt`` (B,T,S,F) against the mix ``mag`` (B,T,F).

    ``stem_floor`` 0: one mean over every stem, divided by the batch's mean mix magnitude (a stem
    20 dB under the others adds a tenth of their error for the same relative miss).
    ``stem_floor`` > 0: per item and stem, the mean error divided by that stem's mean target plus
    ``stem_floor`` x the item's mean mix magnitude, then averaged: each stem's error counts against
    its own level, and an absent stem's term is its leak over ``stem_floor`` x the item's mix (at
    most 1 / ``stem_floor``, the whole mix leaking in).
    ``stem_weights`` (S,): each stem's term times its weight (``mask_stem_weights``); None: all 1.
    """
    if stem_floor < 0.0:
        raise ValueError(f"loss.mask_stem_floor must be >= 0, not {stem_floor}")
    if stem_floor == 0.0:
        if stem_weights is None:  # the unweighted sum in its own order: runs resumed across versions match
            return (est - tgt).abs().mean() / mag.mean().clamp_min(1e-4)
        w = stem_weights.to(est.device)
        return ((est - tgt).abs().mean((0, 1, 3)) * w).mean() / mag.mean().clamp_min(1e-4)
    err = (est - tgt).abs().mean((1, 3))  # (B,S)
    level = tgt.mean((1, 3)) + stem_floor * mag.mean((1, 2)).unsqueeze(1)
    ratio = err / level.clamp_min(1e-6)
    return (ratio if stem_weights is None else ratio * stem_weights.to(est.device)).mean()


def compute_losses(model: StemModel, batch: dict, cfg: dict, gen: torch.Generator | None = None):
    """Forward + all losses. Returns (total, parts dict of floats, outputs)."""
    lc = cfg["loss"]
    n_st = len(cfg["stems"])
    mix, srcs = spectra(batch["src"])
    mag = _cabs(mix)  # (B,T,F)
    src_mag = _cabs(srcs)  # (B, n_src+1, T, F)
    step_m = int(lc.get("mask_frame_step", 1))
    if step_m > 1 and isinstance(model, Harmonic):
        # the mask loss on every step_m-th frame from a random phase (the global torch RNG: resumable)
        sel = slice(int(torch.randint(step_m, (1,))), None, step_m)
        out = model.forward_train(mag, batch["score"], mask_frames=sel)
    else:
        sel = slice(None)
        out = model.forward_train(mag, batch["score"])
    # tPSA target: clamp(|S| cos(dphi), 0, |X|) = clamp(Re(S conj X)/|X|, 0, |X|)
    mix_m, srcs_m, mag_m = mix[:, sel], srcs[:, :n_st, sel], mag[:, sel]
    re = srcs_m.real * mix_m.real.unsqueeze(1) + srcs_m.imag * mix_m.imag.unsqueeze(1)
    tgt = torch.minimum((re / (mag_m.unsqueeze(1) + 1e-8)).clamp_min(0.0), mag_m.unsqueeze(1)).transpose(1, 2)
    est = out["masks"] * mag_m.unsqueeze(2)  # (B,T',S,F)
    stem_floor = float(lc.get("mask_stem_floor", 0.0))
    l_mask = mask_l1(est, tgt, mag_m, stem_floor, mask_stem_weights(cfg))
    if lc.get("mask_residual", False):
        # the residual slot (what no stem takes) against the `other` source: a network can no
        # longer lower the loss by sending what it is unsure of to the residual (all-zero stems)
        res_m = srcs[:, n_st, sel]
        re_r = res_m.real * mix_m.real + res_m.imag * mix_m.imag
        tgt_r = torch.minimum((re_r / (mag_m + 1e-8)).clamp_min(0.0), mag_m)
        est_r = (1.0 - out["masks"].sum(2)).clamp_min(0.0) * mag_m
        l_res = mask_l1(est_r.unsqueeze(2), tgt_r.unsqueeze(2), mag_m, stem_floor)  # scored as one more stem
        l_mask = (l_mask * n_st + l_res) / (n_st + 1)
    pw_f = torch.tensor(lc["frame_pos_weight"], device=mag.device)
    pw_o = torch.tensor(lc["onset_pos_weight"], device=mag.device)
    l_frame = F.binary_cross_entropy_with_logits(out["note_frame_logit"], batch["frame"], pos_weight=pw_f)
    l_onset = F.binary_cross_entropy_with_logits(out["note_onset_logit"], batch["onset"], pos_weight=pw_o)
    # activity: stem frame energy above activity_rel_db of the mix and above activity_abs_db absolute
    e_src = src_mag[:, :n_st].pow(2).mean(-1).transpose(1, 2)  # (B,T,S)
    e_mix = mag.pow(2).mean(-1, keepdim=True)
    ref = (N_FFT / 4) ** 2 / 1025  # mean |X|^2 per bin of a full-scale sine, roughly
    act = (e_src > e_mix * 10 ** (lc["activity_rel_db"] / 10)) & (e_src > ref * 10 ** (lc["activity_abs_db"] / 10))
    l_act = F.binary_cross_entropy_with_logits(out["activity_logit"], act.float())
    parts = {"mask": l_mask, "frame": l_frame, "onset": l_onset, "activity": l_act}
    if lc["dc"] > 0 and isinstance(model, Cerberus):  # the harmonic network has no deep-clustering head
        nb = model.cfg.n_bands
        k = min(lc["dc_bands"], nb)
        bands = torch.randperm(nb, generator=gen)[:k].to(model.dc_bins.device)
        bins = model.dc_bins[bands]
        step_t = max(1, int(lc.get("dc_frame_step", 1)))
        feats = out["features"][:, ::step_t]
        v = model.embed(feats, bands)  # (B,T',k,D)
        a = src_mag[:, :, ::step_t][..., bins]  # (B, n_src+1, T', k)
        y = F.one_hot(a.argmax(1), a.shape[1]).float()  # (B,T',k,C)
        mk = mag[:, ::step_t][..., bins]
        w = (mk > mk.amax((1, 2), keepdim=True) * 1e-3).float()
        b = v.shape[0]
        parts["dc"] = dc_loss(v.reshape(b, -1, v.shape[-1]), y.reshape(b, -1, y.shape[-1]), w.reshape(b, -1))
    total = sum(lc[k] * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}, out


# ----------------------------------------------------------------------------- validation


AUDIBLE_DB = 40.0  # a validation crop scores a stem only when the stem is this close to the mix


def _audible(ref: np.ndarray, mix: np.ndarray) -> bool:
    """Stem ``ref`` is above 1e-4 RMS and within ``AUDIBLE_DB`` of the mix ``mix`` (both (n,))."""
    r = float(np.sqrt(np.mean(ref**2)))
    return r > 1e-4 and r >= float(np.sqrt(np.mean(mix**2))) * 10 ** (-AUDIBLE_DB / 20)


def si_sdr(est: np.ndarray, ref: np.ndarray, eps: float = 1e-8) -> float:
    """Scale-invariant SDR (dB) of 1-D signals."""
    ref = ref - ref.mean()
    est = est - est.mean()
    a = np.dot(est, ref) / (np.dot(ref, ref) + eps)
    t = a * ref
    return float(10 * np.log10((np.dot(t, t) + eps) / (np.dot(est - t, est - t) + eps)))


def istft_frames(spec: torch.Tensor, length: int) -> np.ndarray:
    """Inverse of ``stft_frames``: (..., T, F) -> (..., length) numpy, weighted overlap-add with
    the periodic Hann window, normalised by the interior window-square sum (edges are not exact:
    the first and last ``n_fft - hop`` samples should be ignored)."""
    w = torch.hann_window(N_FFT, periodic=True)
    frames = torch.fft.irfft(spec, n=N_FFT, dim=-1) * w  # (..., T, n_fft)
    shp = frames.shape[:-2]
    n_t = frames.shape[-2]
    fr = frames.reshape(-1, n_t, N_FFT).transpose(1, 2)  # (N, n_fft, T)
    y = F.fold(fr, output_size=(1, (n_t - 1) * HOP + N_FFT), kernel_size=(1, N_FFT), stride=(1, HOP))
    y = y.reshape(*shp, -1)[..., :length] / float((w**2).sum() / HOP)
    return y.numpy()


@torch.no_grad()
def validate(
    model: StemModel,
    cache: TrackCache,
    cfg: dict,
    decode: dict | None = None,
    with_score: bool = False,
    return_raw: bool = False,
) -> dict[str, Any]:
    """SI-SDR (dB) of masked stems and note onset F1 per stem, on fixed validation crops."""
    model.eval()
    stems = cfg["stems"]
    n_st = len(stems)
    vc = cfg["valid"]
    n_frames = vc["crop_frames"]
    rng = np.random.default_rng(1234)
    fixed = []
    for _ in range(vc["n_crops"]):
        ti = int(rng.integers(0, len(cache)))
        fixed.append((ti, int(rng.integers(0, max(cache.n_frames[ti] - n_frames, 1)))))
    note_meta = decoder_metadata(stems, decode or {})
    sdr = {s: [] for s in stems}
    sdr_in = {s: [] for s in stems}
    counts = {s: [0, 0, 0] for s in stems}
    raw = []
    for i in range(0, len(fixed), 4):
        chunk = fixed[i : i + 4]
        batch = make_batch(cache, rng, cfg, len(chunk), n_frames, train=False, fixed=chunk)
        if with_score:
            batch["score"] = batch["frame"].clone()
        mix, srcs = spectra(batch["src"])
        dev = next(model.parameters()).device
        out = model.forward_train(mix.abs().to(dev), batch["score"].to(dev))
        out = {k: v.cpu() for k, v in out.items() if k in ("masks", "note_frame_logit", "note_onset_logit")}
        est = out["masks"].transpose(1, 2) * mix.unsqueeze(1)  # (B,S,T,F)
        length = batch["src"].shape[-1]
        y = istft_frames(est, length)
        ref = batch["src"][:, :n_st].numpy()
        mixw = batch["src"].sum(1).numpy()
        fp = torch.sigmoid(out["note_frame_logit"]).numpy()
        op = torch.sigmoid(out["note_onset_logit"]).numpy()
        if return_raw:
            raw.append((fp, op, batch["frame"].numpy(), batch["onset"].numpy()))
        cut = N_FFT  # skip the zero-padded pre-roll (and the inexact overlap-add edges)
        est_notes = bridge_notes(note_meta, fp, op)
        for b in range(len(chunk)):
            for s, name in enumerate(stems):
                r = ref[b, s, cut:-cut]
                if _audible(r, mixw[b, cut:-cut]):
                    sdr[name].append(si_sdr(y[b, s, cut:-cut], r))
                    sdr_in[name].append(si_sdr(mixw[b, cut:-cut], r))
                ref_n = roll_to_notes(batch["frame"][b, :, s].numpy(), batch["onset"][b, :, s].numpy())
                _, nr, ne, nm = onset_f1(ref_n, est_notes[b][s], name == "drums")
                c = counts[name]
                c[0] += nr
                c[1] += ne
                c[2] += nm
    res: dict[str, Any] = {"si_sdr_db": {}, "si_sdr_improvement_db": {}, "onset_f1": {}}
    for s in stems:
        res["si_sdr_db"][s] = round(float(np.median(sdr[s])), 2) if sdr[s] else None
        res["si_sdr_improvement_db"][s] = (
            round(float(np.median(np.array(sdr[s]) - np.array(sdr_in[s]))), 2) if sdr[s] else None
        )
        nr, ne, nm = counts[s]
        res["onset_f1"][s] = round(2 * nm / (nr + ne), 3) if nr + ne else None
    vals = [v for v in res["si_sdr_db"].values() if v is not None]
    res["si_sdr_db_mean"] = round(float(np.mean(vals)), 2) if vals else None
    vals = [v for v in res["si_sdr_improvement_db"].values() if v is not None]
    res["si_sdr_improvement_db_mean"] = round(float(np.mean(vals)), 2) if vals else None
    f1s = [v for v in res["onset_f1"].values() if v is not None]
    res["onset_f1_mean"] = round(float(np.mean(f1s)), 3) if f1s else None
    res["n_crops"] = len(fixed)
    res["si_sdr_over"] = f"median over crops where the stem is within {AUDIBLE_DB:g} dB of the mix"
    res["si_sdr_n_crops"] = {s: len(sdr[s]) for s in stems}
    res["crop_s"] = round(n_frames * HOP / SAMPLE_RATE, 2)
    res["with_score"] = with_score
    if return_raw:
        res["_raw"] = raw
    model.train()
    return res


def _corpus_soundfonts(corpus: Path) -> list[str]:
    """Distinct ``soundfont`` values in the corpus tracks' metadata.yaml (best effort)."""
    found: set[str] = set()
    for meta in sorted(corpus.glob("*/metadata.yaml"))[:2000]:
        for line in meta.read_text(errors="replace").splitlines():
            if line.startswith("soundfont:"):
                found.update(line.split(":", 1)[1].strip().strip("'\"").split("+"))
    return sorted(found)


def finalize(out: Path, cfg: dict) -> dict:
    """Tune decode thresholds on validation for ``OUT/final.pt`` and rewrite ``final.card.json``."""
    ck = torch.load(out / "final.pt", map_location="cpu", weights_only=True)
    model = build_model(ck["config"]["model"])
    model.load_state_dict(ck["model"])
    stems = list(ck["config"]["stems"])
    cfg = {**cfg, "stems": stems, "valid": ck["config"]["valid"]}
    vdir = out / "cache" / cfg["data"]["valid_split"]
    paths = [Path(str(p)[: -len(".meta.npz")]) for p in sorted(vdir.glob("*.meta.npz"))]
    cache = TrackCache(paths)
    res = validate(model, cache, cfg, return_raw=True)
    decode, tuned = tune_decode(res.pop("_raw"), stems)
    res = validate(model, cache, cfg, decode=decode)
    res_score = validate(model, cache, cfg, decode=decode, with_score=True)
    card_path = out / "final.card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {"stems": stems}
    card["decode"] = decode
    tr_card = card.setdefault("training", {})
    tr_card["soundfonts"] = _corpus_soundfonts(Path(cfg["data"]["corpus"]))
    tr_card["decode_tuned_on"] = (
        "validation split: frame F1 (frame threshold); onset F1 of bridge.notes.NoteDecoder "
        "(onset and frame-onset thresholds)"
    )
    card["description"] = describe(model, stems)
    card.setdefault("metrics", {})
    card["metrics"].update(
        {"validation": res, "validation_with_score": res_score, "decode_tuning_validation_f1": tuned}
    )
    card_path.write_text(json.dumps(card, indent=2))
    print(
        f"[finalize] decode={json.dumps(decode)}\n[finalize] {json.dumps(res)}\n"
        f"[finalize] with score: {json.dumps(res_score)}",
        flush=True,
    )
    return card


# ----------------------------------------------------------------------------- checkpoints


def atomic_save(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _plain(obj):
    return json.loads(json.dumps(obj))


def _init_record(path: str | None, average: bool = False) -> dict[str, Any] | None:
    """What a fine-tune started from: the checkpoint, its sha256, whether its moving average
    (``--init-average``) and its training card (if beside it)."""
    if not path:
        return None
    p = Path(path)
    rec: dict[str, Any] = {"checkpoint": str(p), "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
    if average:
        rec["average"] = True
    card = p.with_name(p.name.removesuffix(".pt") + ".card.json")
    if card.is_file():
        rec["training"] = json.loads(card.read_text()).get("training")
    return rec


def average_of(model: StemModel, start: dict[str, torch.Tensor] | None) -> StemModel:
    """A copy of ``model`` to hold its weights' moving average, from ``start`` (a state dict) or its weights."""
    ema = copy.deepcopy(model)
    if start is not None:
        ema.load_state_dict(start)
    return ema.requires_grad_(False)


def float_pairs(ema: StemModel, model: StemModel) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(average, weight) tensors of every floating-point parameter and buffer (they share the models' storage)."""
    own = model.state_dict()
    return [(v, own[k]) for k, v in ema.state_dict().items() if v.is_floating_point()]


def valid_score(res: dict[str, Any]) -> float:
    """What ``best.pt`` keeps the highest of: a validation's mean SI-SDR + 10 x its mean onset F1."""
    return (res["si_sdr_db_mean"] or 0) + 10 * (res["onset_f1_mean"] or 0)


def save_checkpoint(path: Path, model, opt, cfg, step, epoch, elapsed_s, history, streams=None) -> None:
    """``streams``: the run's other state that ``--resume`` restores so that it continues exactly as an
    uninterrupted run would (the batch sampler's and deep clustering's random generators, the note
    thresholds tuned at the last tuning validation and its step)."""
    atomic_save(
        {
            "model": model.state_dict(),
            "optim": opt.state_dict(),
            "config": _plain({**cfg, "model": model_config(model)}),
            "step": int(step),
            "epoch": int(epoch),
            "elapsed_s": float(elapsed_s),
            "history": _plain(history),
            "torch_rng": torch.get_rng_state(),
            **(streams or {}),
        },
        path,
    )


# ----------------------------------------------------------------------------- main


def feature_stats(cache: TrackCache, rng: np.random.Generator, cfg: dict, n: int = 16) -> tuple[torch.Tensor, ...]:
    """Per-bin mean/std of log1p(|X|) over ``n`` random crops."""
    x = torch.log1p(_stats_mag(cache, rng, cfg, n)).reshape(-1, N_FFT // 2 + 1)
    return x.mean(0), x.std(0).clamp_min(0.05)


def _stats_mag(cache: TrackCache, rng: np.random.Generator, cfg: dict, n: int = 16) -> torch.Tensor:
    """|X| of the mix over ``n`` random crops of 200 frames: (n, 200, n_bins)."""
    b = make_batch(cache, rng, cfg, n, 200, train=False)
    mix, _ = spectra(b["src"])
    return mix.abs()


def set_input_stats(model: StemModel, cache: TrackCache, rng: np.random.Generator, cfg: dict) -> None:
    """Input normalisation from the training data: the model's own ``set_input_stats`` (global, for
    the harmonic network), or Cerberus' per-bin ``front.feat_mean`` / ``feat_std``."""
    if isinstance(model, Harmonic):
        model.set_input_stats(_stats_mag(cache, rng, cfg))
        return
    mean, std = feature_stats(cache, rng, cfg)
    model.front.feat_mean.copy_(mean)
    model.front.feat_std.copy_(std)


def model_config_for(cfg: dict) -> dict[str, Any]:
    """The ``[model]`` section completed with what the stem list fixes (n_stems, drum_stem)."""
    stems = list(cfg["stems"])
    return {**cfg["model"], "n_stems": len(stems), "drum_stem": stems.index("drums") if "drums" in stems else -1}


def pick_device(name: str) -> torch.device:
    """``cpu``, ``cuda[:N]`` or ``auto`` -> a torch device; one-line error if CUDA is asked for but absent."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"stembridge train: error: device {name} asked for, but torch sees no CUDA device")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SystemExit(f"stembridge train: error: unknown device {name!r} (cpu, cuda or auto)") from None


def lr_at(step: int, frac: float, cfg: dict) -> float:
    """Cosine from lr to lr_final over the time/step budget (``frac`` in [0, 1]); short warm-up."""
    tc = cfg["train"]
    warm = min(1.0, (step + 1) / 100)
    return warm * (tc["lr_final"] + 0.5 * (tc["lr"] - tc["lr_final"]) * (1 + math.cos(math.pi * min(frac, 1.0))))


def _transcribe(paths: list[Path], cfg: dict) -> None:
    """The blind path's transcription of each cached track, when the config's crops take it."""
    sc = cfg["score"]
    if float(sc.get("p_transcribed", 0.0)) > 0:
        from export.transcribed_scores import transcribe_cache

        transcribe_cache(paths, SAMPLE_RATE, list(cfg["stems"]), [float(x) for x in sc["transcribed_shares"]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="stembridge train", description="Train a causal stembridge network.")
    ap.add_argument("--config", default=None, help="TOML config (export/configs/band.toml)")
    ap.add_argument("--corpus", default=None, help="Slakh-layout corpus root (overrides data.corpus)")
    ap.add_argument("--out", default="runs/band", help="run directory (cache, checkpoints, log)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--max-minutes", type=float, default=None)
    ap.add_argument(
        "--until",
        type=int,
        default=None,
        metavar="STEP",
        help="stop at this step with a checkpoint, the schedule unchanged (one session's share of a long run)",
    )
    ap.add_argument("--finalize", action="store_true", help="only tune decode thresholds of OUT/final.pt")
    ap.add_argument("--device", default=None, help="cpu, cuda or auto (overrides train.device; default cpu)")
    ap.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="fine-tune: start from the weights of this checkpoint (weights only; fresh optimiser and schedule)",
    )
    ap.add_argument(
        "--init-average",
        action="store_true",
        help="with --init: start from the checkpoint's moving average of the weights (train.ema_decay), not its "
        "weights as trained",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value (VALUE in TOML syntax), e.g. --set loss.onset_pos_weight=20",
    )
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    for item in args.set:
        try:
            apply_override(cfg, item)
        except ValueError as e:
            ap.error(str(e))
    if args.corpus:
        cfg["data"]["corpus"] = args.corpus
    if args.max_steps is not None:
        cfg["train"]["max_steps"] = args.max_steps
    if args.max_minutes is not None:
        cfg["train"]["max_minutes"] = args.max_minutes
    if args.device is not None:
        cfg["train"]["device"] = args.device
    if args.init_average and not args.init:
        ap.error("--init-average needs --init")
    try:
        mask_stem_weights(cfg)
    except ValueError as e:
        raise SystemExit(f"stembridge train: error: {e}") from None
    tc = cfg["train"]
    torch.set_num_threads(int(tc["threads"]))
    device = pick_device(str(tc.get("device", "cpu")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.finalize:
        finalize(out, cfg)
        return 0
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    corpus = Path(cfg["data"]["corpus"])
    stems = list(cfg["stems"])
    t_cache = time.time()
    min_age = 120.0 if tc.get("refresh_corpus", True) else 0.0
    jobs = max(1, int(tc.get("loader_workers", 0)))
    train_paths = build_cache(
        corpus, out / "cache", cfg["data"]["train_split"], stems, cfg["data"]["max_tracks"], min_age, jobs
    )
    try:
        valid_paths = build_cache(
            corpus, out / "cache", cfg["data"]["valid_split"], stems, cfg["data"]["max_tracks"], min_age, jobs
        )
    except Exception as e:  # noqa: BLE001
        print(f"[train] no validation split ({e}); validating on training tracks", flush=True)
        valid_paths = []
    if not valid_paths:
        valid_paths = train_paths[-max(1, len(train_paths) // 10) :]
    _transcribe(train_paths, cfg)
    train_cache, valid_cache = TrackCache(train_paths), TrackCache(valid_paths)
    hours = train_cache.total_frames * HOP / SAMPLE_RATE / 3600
    print(
        f"[train] {len(train_cache)} train tracks ({hours:.2f} h), {len(valid_cache)} valid tracks; "
        f"cache {time.time() - t_cache:.0f} s",
        flush=True,
    )

    try:
        model = build_model(model_config_for(cfg)).to(device)
    except ValueError as e:
        raise SystemExit(f"stembridge train: error: {e}") from None
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    step, epoch, elapsed0, history = 0, 0, 0.0, []
    resumed: dict[str, Any] = {}  # the checkpoint resumed from (its random streams, thresholds, average)
    last = out / "last.pt"
    if args.resume and last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=True)
        ck_arch = ck["config"]["model"].get("arch", "cerberus")
        if ck_arch != model_arch(model):
            msg = f"stembridge train: error: {last} holds a {ck_arch} model, the config asks for {model_arch(model)}"
            raise SystemExit(msg)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optim"])  # moves the optimiser state to the parameters' device
        step, epoch, elapsed0 = ck["step"], ck["epoch"], ck["elapsed_s"]
        history = ck.get("history", [])
        torch.set_rng_state(ck["torch_rng"])
        rng = np.random.default_rng(seed + step)  # checkpoints before stop 47 kept no sampler state
        if "sampler_rng" in ck:
            rng.bit_generator.state = ck["sampler_rng"]
        resumed = ck
        print(f"[train] resumed at step {step}, epoch {epoch}", flush=True)
    elif args.init:
        ck = torch.load(args.init, map_location="cpu", weights_only=True)
        key = "ema_model" if args.init_average else "model"
        if args.init_average and key not in ck:
            msg = (
                f"stembridge train: error: --init {args.init} holds no moving average (--init-average reads a "
                "run's last.pt or best.pt; its final.pt already holds the average: use it without --init-average)"
            )
            raise SystemExit(msg)
        try:
            model.load_state_dict(ck[key])  # feature statistics are buffers: they come along
        except (KeyError, RuntimeError) as e:
            why = str(e).strip().splitlines()[0]
            msg = f"stembridge train: error: --init {args.init} does not fit the config's model: {why}"
            raise SystemExit(msg) from None
        print(f"[train] initialised from {args.init}{' (its moving average)' if args.init_average else ''}", flush=True)
    else:
        set_input_stats(model, train_cache, rng, cfg)
    if args.until is not None and args.until <= step:
        raise SystemExit(f"stembridge train: error: --until {args.until} is not after step {step}, where the run is")
    print(
        f"[train] arch {model_arch(model)}; parameters: {count_parameters(model)} exported, "
        f"{count_parameters(model, False)} total; "
        f"device {device}, {int(tc.get('loader_workers', 0))} loader workers",
        flush=True,
    )

    epoch_steps = tc["epoch_steps"] or max(1, train_cache.total_frames // (tc["batch_size"] * tc["crop_frames"]))
    budget_s = tc["max_minutes"] * 60
    t_start = time.time() - elapsed0
    gen = torch.Generator().manual_seed(seed)  # deep clustering's bands
    validations = [h for h in history if not h.get("final")]
    n_valid, tuned_decode, tuned_at = len(validations), None, 0
    best = max((valid_score(h) for h in validations), default=-1e9)
    if "dc_rng" in resumed:
        gen.set_state(resumed["dc_rng"])
        tuned_at, tuned_decode = resumed["tuned_at"], resumed["tuned_decode"] or None

    ema_decay = float(tc.get("ema_decay", 0.0))
    if not 0.0 <= ema_decay < 1.0:
        raise SystemExit(f"stembridge train: error: train.ema_decay must be in [0, 1), not {ema_decay}")
    ema = average_of(model, resumed.get("ema_model")) if ema_decay > 0 else None
    if ema is not None and "ema_model" not in resumed and step:
        print(f"[train] the weights' moving average starts at step {step}", flush=True)
    ema_pairs = [] if ema is None else float_pairs(ema, model)
    vmodel = model if ema is None else ema  # what validation scores and final.pt ships

    def streams() -> dict[str, Any]:
        return {
            "sampler_rng": rng.bit_generator.state,
            "dc_rng": gen.get_state(),
            "tuned_at": tuned_at,
            "tuned_decode": _plain(tuned_decode or {}),
            **({} if ema is None else {"ema_model": ema.state_dict()}),
        }

    model.train()
    batches = training_batches(train_cache, rng, cfg, step, pin=device.type == "cuda")
    t_log, run_loss, n_log = time.time(), {}, 0
    while step < tc["max_steps"]:
        if args.until is not None and step >= args.until:
            save_checkpoint(last, model, opt, cfg, step, epoch, time.time() - t_start, history, streams())
            batches.close()
            print(f"[train] stopped at step {step} of {tc['max_steps']} (--until); go on with --resume", flush=True)
            return 0
        elapsed = time.time() - t_start
        frac = max(step / tc["max_steps"], elapsed / budget_s if budget_s > 0 else 0.0)
        if frac >= 1.0:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step, frac, cfg)
        batch = {k: v.to(device, non_blocking=True) for k, v in next(batches).items()}
        loss, parts, _ = compute_losses(model, batch, cfg, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc["grad_clip"])
        opt.step()
        with torch.no_grad():
            for e, w in ema_pairs:
                e.lerp_(w, 1.0 - ema_decay)
        step += 1
        n_log += 1
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            run_loss[k] = run_loss.get(k, 0.0) + v
        if step % tc["log_every"] == 0:
            dt = time.time() - t_log
            msg = " ".join(f"{k}={v / n_log:.4f}" for k, v in run_loss.items())
            print(
                f"[train] step {step} epoch {epoch} {n_log / dt:.2f} steps/s lr={opt.param_groups[0]['lr']:.2e} "
                f"{msg} elapsed={(time.time() - t_start) / 60:.1f} min",
                flush=True,
            )
            t_log, run_loss, n_log = time.time(), {}, 0
        if step % tc["ckpt_every"] == 0 and step % epoch_steps:  # an epoch's end saves after its validation
            save_checkpoint(last, model, opt, cfg, step, epoch, time.time() - t_start, history, streams())
        if step % epoch_steps == 0:
            epoch += 1
            if tc.get("refresh_corpus", True):
                fresh = build_cache(
                    corpus, out / "cache", cfg["data"]["train_split"], stems, cfg["data"]["max_tracks"], 120.0, jobs
                )
                _transcribe(fresh, cfg)
                new = train_cache.add(fresh)
                if new:
                    batches.close()  # the loader workers hold the old track list
                    batches = training_batches(train_cache, rng, cfg, step, pin=device.type == "cuda")
                    hours = train_cache.total_frames * HOP / SAMPLE_RATE / 3600
                    print(f"[train] +{new} new tracks: {len(train_cache)} tracks ({hours:.2f} h)", flush=True)
            # onset F1 at thresholds tuned on these crops, as finalize tunes them (a young network's onset
            # probabilities sit well under the default 0.5, which reads as F1 0; optimistic: tuned and
            # scored on the same crops). Tuning costs ~3x a validation: redone every valid.tune_every
            # validations from this one's raw outputs, for the validations that follow.
            res = validate(vmodel, valid_cache, cfg, decode=tuned_decode, return_raw=True)
            raw = res.pop("_raw")
            if ema is not None:  # the weights as trained, beside their average
                plain = validate(model, valid_cache, cfg, decode=tuned_decode)
                res["unaveraged"] = {k: plain[k] for k in ("si_sdr_improvement_db", "si_sdr_improvement_db_mean")}
            res["decode"] = "default" if tuned_decode is None else f"tuned at step {tuned_at}"
            if n_valid % int(cfg["valid"].get("tune_every", 4)) == 0:
                tuned_decode, _ = tune_decode(raw, stems)
                tuned_at = step
            n_valid += 1
            res.update(step=step, epoch=epoch, elapsed_min=round((time.time() - t_start) / 60, 1))
            history.append(res)
            print(f"[valid] {json.dumps(res)}", flush=True)
            score = valid_score(res)
            improved = score > best
            best = max(best, score)
            save_checkpoint(last, model, opt, cfg, step, epoch, time.time() - t_start, history, streams())
            if improved:
                save_checkpoint(
                    out / "best.pt", model, opt, cfg, step, epoch, time.time() - t_start, history, streams()
                )
    wall = time.time() - t_start
    res = validate(vmodel, valid_cache, cfg)
    res_score = validate(vmodel, valid_cache, cfg, with_score=True)
    res.update(step=step, epoch=epoch, elapsed_min=round(wall / 60, 1), final=True)
    history.append(res)
    save_checkpoint(last, model, opt, cfg, step, epoch, wall, history, streams())
    batches.close()
    weights = {k: v.detach().cpu() for k, v in vmodel.state_dict().items()}
    atomic_save({"model": weights, "config": _plain({**cfg, "model": model_config(model)})}, out / "final.pt")
    card = {
        "stems": stems,
        "training": {
            "corpus": str(corpus),
            "corpus_hours": round(hours, 3),
            "n_train_tracks": len(train_cache),
            "n_valid_tracks": len(valid_cache),
            "seed": seed,
            "steps": step,
            "epochs": epoch,
            "batch_size": tc["batch_size"],
            "crop_frames": tc["crop_frames"],
            "wall_clock_hours": round(wall / 3600, 3),
            "command": "stembridge train " + " ".join(sys.argv[1:] if argv is None else argv),
            "init_from": _init_record(args.init, args.init_average),
            "config": _plain(cfg),
        },
        "metrics": {"validation": res, "validation_with_score": res_score},
    }
    if tuned_decode:  # until --finalize tunes them on the final weights: the last tuning validation's
        card["decode"] = tuned_decode
        card["training"]["decode_tuned_on"] = f"the trainer's validation crops at step {tuned_at}"
    (out / "final.card.json").write_text(json.dumps(card, indent=2))
    print(f"[done] {json.dumps(res)}\n[done-with-score] {json.dumps(res_score)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
