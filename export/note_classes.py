"""Train the note classifier (``bridge.transcribe.note_classes``) and export it to ONNX.

The classifier judges each note of basic-pitch's instrument-blind transcription from a
pitch-aligned patch of the mix around it (see ``bridge.transcribe.note_classes`` for the patch):
per instrument class (bass, piano, guitar, strings, other), does a note of that class and pitch
sound there (``sounding``: the note belongs in that class's part), and does one start there
(``onset``: the note is written to that class's notes)? All outputs low is a note the
transcription made up (an octave ghost, a partial, a drum). Training notes are basic-pitch's own
notes on a rendered corpus (``stembridge corpus``: many soundfonts, sampled and procedural
timbres; MuseScore General never enters one), labelled against the true notes (``note_labels``),
so the classifier learns the transcription's errors as well as the classes; basic-pitch's
posteriorgrams are cached per track. Drum parts have no labels of their own (a transcribed note on
a drum hit is all zeros). Augmentation: a random smooth EQ curve over the patch (+-6 dB per
component) and onsets off by up to one frame (stronger augmentation, a detune and a stretched
envelope, measured no better: BENCHMARKS.md).

    stembridge train-notes --corpus corpus/harm --out runs/notecls --epochs 6 --valid out/heldout/s9002_20s
    stembridge train-notes --corpus corpus/harm corpus/harm12 ...                 # several corpora
    stembridge train-notes ... --resume                                           # after a stop
    stembridge train-notes --out runs/notecls --no-train --export models_onnx/note-classes.onnx
    stembridge train-notes --out runs/notecls --no-train --valid out/heldout/s9002_20s \
        --ensemble runs/other/last.pt --export nc.onnx          # two classifiers as one (mean logits)
    stembridge train-notes ... --part-dim 32 --init CKPT      # + a part head (pooling over a file's parts)
    stembridge train-notes ... --clean-weight 1               # + the same notes from their own stems, alone

Part head (``--part-dim``): one part of a file keeps one instrument, so the notes of a part should
share a class. A linear head maps each note's embedding to a unit vector trained with a supervised
contrastive loss (``part_contrast_loss``: the notes of one part of a track close, of other parts
apart; batches hold chunks of one track's notes), and each file's sounding logits are pooled over
the notes whose part embeddings lie close (``bridge.transcribe.note_classes.pool_classes``,
``--pool-temperature`` / ``--pool-weight``, stored in the export).

Checkpoints (``OUT/last.pt``: weights, optimizer and schedule state, epoch, RNG states; loadable
with ``torch.load(weights_only=True)``) are written after every epoch; ``--resume`` continues
the schedule exactly. ``--valid DIR`` scores every epoch on another set of tracks (e.g. the
selection set rendered with MuseScore General, ``out/heldout/s9002_20s``): per class, the onset
F1 of the notes the classifier writes, at 0.5 and at tuned thresholds; the export stores the last
epoch's tuned thresholds in the model's metadata.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bridge.instruments import stem_for_program
from bridge.transcribe.note_classes import (
    DEFAULT_DECODING,
    KNOWN_CLASSES,
    MAX_SHIFT_S,
    META_KEY,
    PATCH,
    VERSION,
    log_map_db,
    merge_repeated_onsets,
    note_patches,
    pool_classes,
)
from export.data.sources import SOURCES
from export.note_scores import onset_f1

CLASSES = KNOWN_CLASSES
N_BINS = PATCH["bins_per_semitone"] * (PATCH["semitones_below"] + PATCH["semitones_above"])
SOUNDING_PROBE_S = 0.05
ONSET_WINDOW_S = MAX_SHIFT_S  # 0.15 s: a true onset this close is the note's own, found late or early (shift head)
SHIFT_SCALE_S = 0.05  # the shift head's output unit
PART_TEMPERATURE = 0.1  # the part head's contrastive loss (cosine similarities / this)
WIDTH, HIDDEN = 16, 128  # NoteClassNet's default channels of the first convolution and embedding width
POOL_DEFAULT = (0.1, 0.5)  # part pooling's (temperature, weight) when neither the command nor the run says
# a note joins a class's part from this sounding probability (and at least member_share of its best
# class): chosen on the selection set (seed 9002, 16 tracks, bench/transcribe_select.py) over 0.2 and
# 0.4: a note left out of every part leaves its energy in `other`, a doubtful one costs less
SOUNDING_THRESHOLD = 0.05
# how basic-pitch's notes are decoded for training (stored in the export, the bridge decodes the same
# way): basic-pitch's thresholds but notes from 3 frames (35 ms) instead of 11 (128 ms). On the
# selection set that finds 63 % of the true onsets instead of 52 % (14,126 notes instead of 9,919),
# and the classifier drops what is not a note
DECODING: dict[str, float] = {"onset_threshold": 0.5, "frame_threshold": 0.3, "min_note_frames": 3}


class NoteClassNet(nn.Module):
    """(patch (B, N_BINS, frames), scalars (B, 2)[, context (B, hidden)]) -> (B, 2 * n_classes + 1):
    ``sounding`` logits per class, ``onset`` logits per class, then the onset shift in units of
    ``SHIFT_SCALE_S``. Three 3x3 conv + 2x2 max-pool stages, then a dense layer that keeps where in
    the patch (which partial, which frame) each feature is: the note's embedding (B, hidden).

    With ``context`` > 0, a second head of that width adds to the logits from the note's embedding
    beside ``context``, the mean embedding of the notes of the same file (what else plays in the
    song: a file with a piano and no guitar); its last layer starts at zero, so a network loaded
    from a context-free checkpoint starts as that checkpoint.

    With ``part_dim`` > 0, a linear head maps the embedding to a unit-length part embedding
    (``part_embedding``), trained contrastively so that notes of the same part of a file lie close:
    at inference each note's logits are pooled with those of the notes that sound like it
    (``pool_classes``), since one part keeps one class through a file.

    With ``families`` > 0, a linear head (``fam``) names the General MIDI family (program // 8) of the
    note's part from the embedding: a training-only auxiliary task, so that the classes that gather
    several families (``other``: organ, brass, reed, pads, ...) are learnt as what they are rather than
    as a remainder; the export leaves it out."""

    def __init__(
        self,
        n_classes: int = len(CLASSES),
        width: int = WIDTH,
        hidden: int = HIDDEN,
        context: int = 0,
        part_dim: int = 0,
        families: int = 0,
    ) -> None:
        super().__init__()
        w = width
        self.hidden, self.context, self.part_dim = hidden, context, part_dim
        self.c1 = nn.Conv2d(1, w, 3, padding=1)
        self.c2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.c3 = nn.Conv2d(2 * w, 4 * w, 3, padding=1)
        flat = 4 * w * (N_BINS // 8) * (PATCH["frames"] // 8)
        self.fc = nn.Linear(flat + 2, hidden)
        self.out = nn.Linear(hidden, 2 * n_classes + 1)
        self.drop = nn.Dropout(0.3)
        if context:
            self.ctx = nn.Sequential(nn.Linear(2 * hidden, context), nn.ReLU(), nn.Linear(context, 2 * n_classes + 1))
            nn.init.zeros_(self.ctx[2].weight)
            nn.init.zeros_(self.ctx[2].bias)
        if part_dim:
            self.part = nn.Linear(hidden, part_dim)
        if families:
            self.fam = nn.Linear(hidden, families)

    def part_embedding(self, h: torch.Tensor) -> torch.Tensor:
        """Unit-length part embeddings (B, part_dim) of note embeddings ``h``: notes of one part of a
        file (one instrument, one timbre) lie close, notes of different parts apart."""
        return F.normalize(self.part(h), dim=1)

    def embed(self, patch: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        """The notes' embeddings (B, hidden)."""
        x = patch.unsqueeze(1)
        for conv in (self.c1, self.c2, self.c3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return F.relu(self.fc(torch.cat([x.flatten(1), scalars], 1)))

    def head(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, 2 * n_classes + 1) from embeddings ``h`` and, with a context head, ``context``."""
        y = self.out(self.drop(h))
        if self.context:
            c = h.mean(0, keepdim=True).expand_as(h) if context is None else context
            y = y + self.ctx(torch.cat([self.drop(h), c], 1))
        return y

    def forward(self, patch: torch.Tensor, scalars: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(patch, scalars), context)


class NoteClassEnsemble(nn.Module):
    """Several trained ``NoteClassNet`` (none with a context head) as one classifier: the embedding
    is theirs side by side (B, sum of their ``hidden``), the logits the mean of theirs. Behaves as a
    ``NoteClassNet`` without context for ``predict``, ``evaluate`` and the export."""

    def __init__(self, nets: list[NoteClassNet]) -> None:
        super().__init__()
        if any(n.context or n.part_dim for n in nets):
            raise ValueError("an ensemble takes classifiers without a context or part head")
        self.nets = nn.ModuleList(nets)
        self.context, self.part_dim, self.hidden = 0, 0, sum(n.hidden for n in nets)

    def embed(self, patch: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        return torch.cat([n.embed(patch, scalars) for n in self.nets], 1)

    def head(self, h: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        parts = torch.split(h, [n.hidden for n in self.nets], 1)
        return torch.stack([n.head(x) for n, x in zip(self.nets, parts)]).mean(0)

    def forward(self, patch: torch.Tensor, scalars: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(patch, scalars))


def load_classifier(ckpts: list[Path]) -> NoteClassNet | NoteClassEnsemble:
    """The classifier of one checkpoint, or the ensemble of several (``torch.load(weights_only=True)``)."""
    nets = []
    for ckpt in ckpts:
        state = torch.load(ckpt, weights_only=True)
        families = int(state["model"]["fam.weight"].shape[0]) if "fam.weight" in state["model"] else 0
        net = NoteClassNet(**shape_of(state), context=context_of(state), part_dim=part_dim_of(state), families=families)
        net.load_state_dict(state["model"])
        nets.append(net.eval())
    return nets[0] if len(nets) == 1 else NoteClassEnsemble(nets).eval()


def part_contrast_loss(
    z: torch.Tensor, part: torch.Tensor, group: torch.Tensor, temperature: float = PART_TEMPERATURE
) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020) of unit part embeddings ``z`` (B, d) within
    each ``group`` (B,) (the notes of one track a batch holds): a note's positives are the other notes
    of its ``part`` (B,); notes of part -1 (none or several) are only negatives. 0 without positives."""
    sim = z @ z.T / temperature
    b = len(z)
    valid = (group[:, None] == group[None, :]) & ~torch.eye(b, dtype=torch.bool)
    pos = valid & (part[:, None] == part[None, :]) & (part[:, None] >= 0)
    logp = sim.masked_fill(~valid, float("-inf"))
    logp = logp - torch.logsumexp(logp, dim=1, keepdim=True)
    n_pos = pos.sum(1)
    anchors = n_pos > 0
    if not anchors.any():
        return z.sum() * 0.0
    per = logp.masked_fill(~pos, 0.0).sum(1)[anchors] / n_pos[anchors]
    return -per.mean()


def group_context(h: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    """Per row of ``h`` (B, d), the mean of the rows of its group (``group`` (B,) int64)."""
    n_g = int(group.max()) + 1 if len(group) else 0
    sums = torch.zeros(n_g, h.shape[1], dtype=h.dtype).index_add(0, group, h)
    counts = torch.zeros(n_g, dtype=h.dtype).index_add(0, group, torch.ones_like(group, dtype=h.dtype))
    return (sums / counts.clamp(min=1)[:, None])[group]


class _Heads(nn.Module):
    """The exported graph: ``NoteClassNet``'s output split into ``sounding`` and ``onset`` logits (B,
    n_classes) and ``shift_s`` (B,), seconds, within +-``ONSET_WINDOW_S``. With a context head, the
    graph also takes ``context`` (B, hidden) and returns the notes' ``embedding`` (B, hidden), which
    does not depend on ``context``: a first pass gives the embeddings, whose mean over the file is
    the second pass's context."""

    def __init__(self, net: NoteClassNet) -> None:
        super().__init__()
        self.net = net

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = len(CLASSES)
        shift = torch.clamp(y[:, 2 * c] * SHIFT_SCALE_S, -ONSET_WINDOW_S, ONSET_WINDOW_S)
        return y[:, :c], y[:, c : 2 * c], shift

    def forward(self, patch: torch.Tensor, scalars: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.split(self.net(patch, scalars))


class _PartHeads(_Heads):
    """``_Heads`` plus each note's unit ``part_embedding`` (B, part_dim), which the bridge pools the
    logits of one file with (``pool_classes``)."""

    def forward(self, patch: torch.Tensor, scalars: torch.Tensor):  # type: ignore[override]
        h = self.net.embed(patch, scalars)
        return (*self.split(self.net.head(h)), self.net.part_embedding(h))


class _ContextHeads(_Heads):
    def forward(self, patch: torch.Tensor, scalars: torch.Tensor, context: torch.Tensor):  # type: ignore[override]
        h = self.net.embed(patch, scalars)
        return (*self.split(self.net.head(h, context)), h)


# ----------------------------------------------------------------------------- data


def track_notes(track_dir: Path, with_part: bool = False) -> np.ndarray:
    """True pitched notes of a corpus track (n, 5): onset_s, offset_s, pitch, velocity, class index;
    ``with_part``: (n, 6), then the index of the note's part (stem) within the track."""
    import yaml

    from export.data.slakh import _read_notes

    meta = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    rows = []
    for j, (sid, info) in enumerate(sorted((meta.get("stems") or {}).items())):
        if info.get("is_drum") or not info.get("audio_rendered", True):
            continue
        mid = track_dir / meta.get("midi_dir", "MIDI") / f"{sid}.mid"
        if not mid.is_file():
            continue
        c = CLASSES.index(stem_for_program(int(info.get("program_num", 0))))
        notes = np.asarray(_read_notes(mid, False), np.float64).reshape(-1, 4)
        extra = [c, j] if with_part else [c]
        rows.append(np.concatenate([notes, np.tile(np.asarray(extra, np.float64), (len(notes), 1))], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 6 if with_part else 5))


def stem_metadata(track_dir: Path) -> list[dict]:
    """The stems' metadata of a corpus track in part order (S00, S01, ...: the features' part index ``Q``)."""
    import yaml

    meta = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    return [info for _, info in sorted((meta.get("stems") or {}).items())]


N_FAMILIES = 16  # General MIDI program // 8


def part_families(track: np.ndarray, part: np.ndarray, tracks: list[Path]) -> np.ndarray:
    """(n,) int64: the General MIDI family (program // 8) of each note's part (``track`` (n,) indexing
    ``tracks``, ``part`` (n,), -1 for none); -1 for a note of no part or of a part without a program."""
    out = np.full(len(part), -1, np.int64)
    for t in np.unique(track).tolist():
        programs = np.array([int(m.get("program_num", -8)) // 8 for m in stem_metadata(tracks[t])] + [-1])
        m = track == t
        out[m] = programs[np.where(part[m] >= 0, part[m], -1)]
    return out


def source_mask(track: np.ndarray, part: np.ndarray, tracks: list[Path], sources: set[str]) -> np.ndarray:
    """(n,) bool: which notes (``track`` (n,) indexing ``tracks``, ``part`` (n,) their part, -1 for none)
    belong to no part or to a part whose timbre source is one of ``sources`` (a soundfont-only corpus's
    parts read ``legacy``)."""
    keep = part < 0
    for t in np.unique(track).tolist():
        names = [m.get("timbre_source", "legacy") for m in stem_metadata(tracks[t])]
        ok = np.flatnonzero([n in sources for n in names])
        keep |= (track == t) & np.isin(part, ok)
    return keep


def note_labels(est: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of transcribed notes ``est`` (n, >= 3) against a track's ``true`` notes (m, 5), per class:
    ``sounding`` (n, n_classes) uint8: a true note of that class and the same pitch sounds just after
    the transcribed onset (``SOUNDING_PROBE_S`` in, or mid-note for a shorter note); ``onset``: one
    starts within ``ONSET_WINDOW_S`` of it; and ``shift_s`` (n,): the nearest such true onset minus
    the transcribed one (NaN where no class has one), which moves the note onto the true onset."""
    n = len(est)
    sounding = np.zeros((n, len(CLASSES)), np.uint8)
    onset = np.zeros((n, len(CLASSES)), np.uint8)
    shift = np.full(n, np.nan, np.float32)
    for i, (on, off, pitch) in enumerate(np.asarray(est, np.float64)[:, :3].tolist()):
        same = true[true[:, 2] == pitch]
        if not len(same):
            continue
        probe = on + min(SOUNDING_PROBE_S, (off - on) / 2)
        cls = same[:, 4].astype(np.int64)
        sounding[i, cls[(same[:, 0] <= probe) & (same[:, 1] >= probe)]] = 1
        d = same[:, 0] - on
        near = np.abs(d) <= ONSET_WINDOW_S
        onset[i, cls[near]] = 1
        if near.any():
            shift[i] = d[near][np.argmin(np.abs(d[near]))]
    return sounding, onset, shift


def note_parts(est: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n,) int16: the part (``track_notes(..., with_part=True)``'s last column) whose note of the same
    pitch sounds at each transcribed note's probe time (as ``note_labels``' ``sounding``); -1 where
    none does or several parts do (a unison: no single part to pull it towards)."""
    out = np.full(len(est), -1, np.int16)
    for i, (on, off, pitch) in enumerate(np.asarray(est, np.float64)[:, :3].tolist()):
        probe = on + min(SOUNDING_PROBE_S, (off - on) / 2)
        hit = np.unique(true[(true[:, 2] == pitch) & (true[:, 0] <= probe) & (true[:, 1] >= probe), 5])
        if len(hit) == 1:
            out[i] = int(hit[0])
    return out


def posteriorgrams(track_dir: Path, cache: Path, pitch) -> tuple[np.ndarray, np.ndarray]:
    """basic-pitch's ``(note, onset)`` posteriorgrams of a track's mix, cached as float16 in ``cache``."""
    import soundfile as sf

    f = cache / f"{track_dir.name}.npz"
    if not f.is_file():
        x, sr = sf.read(str(track_dir / "mix.flac"), dtype="float32", always_2d=True)
        note, onset = pitch.posteriorgrams(x.mean(axis=1), sr)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = cache / f"{track_dir.name}.tmp.npz"
        np.savez(tmp, note=note.astype(np.float16), onset=onset.astype(np.float16))
        tmp.replace(f)
    with np.load(f) as d:
        return d["note"].astype(np.float32), d["onset"].astype(np.float32)


def build_features(
    tracks: list[Path], max_per_track: int, seed: int, post_cache: Path, decoding: dict, log=print
) -> dict[str, np.ndarray]:
    """Patches ``P`` (float16), scalars ``S`` and labels ``Y`` (n, 2 * n_classes: sounding, then onset),
    ``D`` (the shift to the true onset) and ``Q`` (the note's part within its track, ``note_parts``)
    of up to ``max_per_track`` random transcribed notes per track (decoded with ``decoding``), the
    notes themselves ``N`` (n, 4) and their track ``K`` (n,);
    ``T``: the number of true notes per class, ``R``: the true notes (m, 6): onset_s, offset_s,
    pitch, velocity, class, track."""
    import soundfile as sf

    from bridge.transcribe.basic_pitch import BasicPitch, notes_of_posteriorgrams

    rng = np.random.default_rng(seed)
    pitch = BasicPitch()
    patches, scalars, labels, shifts, parts, kept, track_of, trues = [], [], [], [], [], [], [], []
    n_true = np.zeros(len(CLASSES), np.int64)
    for k, td in enumerate(tracks):
        true_parts = track_notes(td, with_part=True)
        true = true_parts[:, :5]
        n_true += np.bincount(true[:, 4].astype(np.int64), minlength=len(CLASSES))
        trues.append(np.concatenate([true, np.full((len(true), 1), k)], axis=1))
        notes = notes_of_posteriorgrams(*posteriorgrams(td, post_cache / td.parent.name, pitch), decoding)
        if len(notes) > max_per_track:
            notes = notes[np.sort(rng.choice(len(notes), max_per_track, replace=False))]
        if not len(notes):
            continue
        x, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        p, s = note_patches(log_map_db(x.mean(axis=1), sr), notes)
        patches.append(p.astype(np.float16))
        scalars.append(s)
        sounding, onset, shift = note_labels(notes, true)
        labels.append(np.concatenate([sounding, onset], axis=1))
        shifts.append(shift)
        parts.append(note_parts(notes, true_parts))
        kept.append(notes)
        track_of.append(np.full(len(notes), k, np.int32))
        if (k + 1) % 50 == 0 or k + 1 == len(tracks):
            log(f"[data] {k + 1}/{len(tracks)} tracks, {sum(len(a) for a in labels)} notes")
    return {
        "P": np.concatenate(patches),
        "S": np.concatenate(scalars),
        "Y": np.concatenate(labels),
        "D": np.concatenate(shifts),
        "Q": np.concatenate(parts),
        "N": np.concatenate(kept),
        "K": np.concatenate(track_of),
        "T": n_true,
        "R": np.concatenate(trues) if trues else np.zeros((0, 6)),
    }


def _tracks(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "metadata.yaml").is_file() and (p / "mix.flac").is_file())


def cached_features(
    roots: Path | list[Path],
    cache: Path,
    max_per_track: int,
    seed: int,
    post_cache: Path,
    decoding: dict,
    log=print,
) -> dict[str, np.ndarray]:
    """Features of every track under ``roots`` (one corpus or several), cached in ``cache`` (rebuilt
    when the track list changes)."""
    roots = [roots] if isinstance(roots, Path) else list(roots)
    tracks = [t for r in roots for t in _tracks(r)]
    key = {
        "root": str(roots[0].resolve()) if len(roots) == 1 else [str(r.resolve()) for r in roots],
        "tracks": [t.name if len(roots) == 1 else f"{t.parent.name}/{t.name}" for t in tracks],
        "max": max_per_track,
        "seed": seed,
        "patch": PATCH,
        "labels": [SOUNDING_PROBE_S, ONSET_WINDOW_S, "parts"],
        "decoding": decoding,
    }
    if cache.is_file():
        with np.load(cache) as d:
            if json.loads(str(d["key"])) == key:
                return {k: d[k] for k in ("P", "S", "Y", "D", "Q", "N", "K", "T", "R")}
    feats = build_features(tracks, max_per_track, seed, post_cache, decoding, log)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, key=json.dumps(key), **feats)
    tmp.replace(cache)
    return feats


# ----------------------------------------------------------------------------- training


def augment(p: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random smooth EQ over the patch's frequency axis and a shift of up to one frame."""
    b, n_f, _ = p.shape
    grid = torch.linspace(0, 1, n_f)
    ph = torch.rand(b, 3, 1, generator=gen) * 2 * math.pi
    amp = (torch.rand(b, 3, 1, generator=gen) * 2 - 1) * 0.3  # +-6 dB per component (patch unit 20 dB)
    freq = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1)
    eq = (amp * torch.cos(freq * math.pi * grid.view(1, 1, -1) + ph)).sum(1)
    shift = int(torch.randint(-1, 2, (1,), generator=gen))
    return torch.roll(p + eq.unsqueeze(-1), shift, dims=2)


def predict(
    net: NoteClassNet | NoteClassEnsemble, feats: dict[str, np.ndarray], pool: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid outputs (n, 2 * n_classes) and onset shifts (n,) in seconds of every note of ``feats``
    (with a context head: each note's context the mean embedding of its track's notes, ``K``; with a
    part head and ``pool`` = (temperature, weight): the logits pooled per track, ``pool_classes``)."""
    net.eval()
    heads = _Heads(net)
    with torch.no_grad():
        p, s = torch.from_numpy(feats["P"]), torch.from_numpy(feats["S"])
        h = torch.cat([net.embed(p[i : i + 512].float(), s[i : i + 512]) for i in range(0, len(p), 512)])
        ctx = None
        if net.context:  # every note's file: the mean embedding of that file's notes
            track = torch.from_numpy(np.unique(feats["K"], return_inverse=True)[1].astype(np.int64))
            ctx = group_context(h, track)
        outs = [
            heads.split(net.head(h[i : i + 512], None if ctx is None else ctx[i : i + 512]))
            for i in range(0, len(p), 512)
        ]
        logits = torch.cat([torch.cat([a, b], 1) for a, b, _ in outs]).numpy()
        if net.part_dim and pool is not None:
            z = torch.cat([net.part_embedding(h[i : i + 512]) for i in range(0, len(h), 512)]).numpy()
            c = len(CLASSES)
            for t in np.unique(feats["K"]).tolist():
                m = feats["K"] == t
                logits[m, :c], logits[m, c:] = pool_classes(logits[m, :c], logits[m, c:], z[m], *pool)
    net.train()
    prob = torch.sigmoid(torch.from_numpy(logits)).numpy()
    return prob, torch.cat([d for _, _, d in outs]).numpy()


def track_batches(
    track: np.ndarray, batch_size: int, chunk: int, gen: torch.Generator
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of batches for a context head: each track's notes (``track`` (n,)) in random order,
    cut into chunks of up to ``chunk`` notes, chunks shuffled, ``max(1, batch_size // chunk)`` chunks a
    batch -> [(note indices (B,), chunk of each note within its batch (B,))]. The number of batches
    does not depend on ``gen`` (the schedule knows it in advance)."""
    chunks = []
    for t in np.unique(track).tolist():
        idx = np.flatnonzero(track == t)
        idx = idx[torch.randperm(len(idx), generator=gen).numpy()]
        chunks += [idx[i : i + chunk] for i in range(0, len(idx), chunk)]
    order = torch.randperm(len(chunks), generator=gen).tolist()
    per = max(1, batch_size // chunk)
    out = []
    for b in range(0, len(order), per):
        sel = [chunks[i] for i in order[b : b + per]]
        group = np.concatenate([np.full(len(c), j) for j, c in enumerate(sel)])
        out.append((torch.from_numpy(np.concatenate(sel)), torch.from_numpy(group.astype(np.int64))))
    return out


def n_track_batches(track: np.ndarray, batch_size: int, chunk: int) -> int:
    """``len(track_batches(...))`` without drawing them."""
    n_chunks = sum(-(-int(c) // chunk) for c in np.unique(track, return_counts=True)[1])
    return -(-n_chunks // max(1, batch_size // chunk))


THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def written_f1(
    feats: dict[str, np.ndarray], onset_prob: np.ndarray, shift_s: np.ndarray, thresholds: np.ndarray = THRESHOLD_GRID
) -> np.ndarray:
    """(len(thresholds), n_classes): per class and onset threshold, the mean over the tracks that
    have notes of the class of the onset F1 of the notes written as ``Transcriber`` writes them
    (onset probability at the threshold, moved by ``shift_s``, repeats merged), as
    ``bench/quality.py`` scores them (mir_eval, 50 ms). Needs every note of each track (validation
    features)."""
    notes, track, true = feats["N"], feats["K"], feats["R"]
    out = np.zeros((len(thresholds), len(CLASSES)))
    moved = notes.copy()
    moved[:, 0] = np.clip(notes[:, 0] + shift_s, 0.0, notes[:, 1] - 0.01)
    for c in range(len(CLASSES)):
        tracks = np.unique(true[true[:, 4] == c, 5]).astype(np.int64).tolist()
        refs = [[tuple(r) for r in true[(true[:, 5] == t) & (true[:, 4] == c)][:, :3]] for t in tracks]
        for i, thr in enumerate(thresholds):
            f1 = []
            for t, ref in zip(tracks, refs):
                est = merge_repeated_onsets(moved[(track == t) & (onset_prob[:, c] >= thr)])
                f1.append(onset_f1(ref, [tuple(e) for e in est[:, :3]], False)[0])
            out[i, c] = np.mean(f1) if f1 else 0.0
    return out


def evaluate(
    net: NoteClassNet | NoteClassEnsemble, feats: dict[str, np.ndarray], pool: tuple[float, float] | None = None
) -> dict:
    """On validation tracks: per class, the onset F1 of the notes written (``written_f1``) at 0.5 and
    at the best threshold of ``THRESHOLD_GRID`` (tuned), the same without the onset shift, the
    ``ceiling`` (every transcribed note within 50 ms of a true onset written in the classes that
    start there, unshifted), the accuracy of the sounding outputs (all classes right) and, over the
    notes of exactly one true class, how often the most probable class is that one (``class_accuracy``).
    ``pool``: see ``predict``."""
    (prob, shift), y = predict(net, feats, pool), feats["Y"]
    c = len(CLASSES)
    f1 = written_f1(feats, prob[:, c:], shift)
    best = f1.argmax(axis=0)
    tuned = f1[best, np.arange(c)]
    unshifted = written_f1(feats, prob[:, c:], np.zeros_like(shift)).max(axis=0)
    close = np.abs(np.nan_to_num(feats["D"], nan=1e9)) <= 0.05
    hit = ((y[:, c:] > 0) & close[:, None]).astype(np.float32)  # 0 / 1: one threshold gives them all
    ceiling = written_f1(feats, hit, np.zeros_like(shift), np.array([0.5]))[0]
    half = int(np.argmin(np.abs(THRESHOLD_GRID - 0.5)))

    def per(v: np.ndarray) -> dict[str, float]:
        return {k: round(float(x), 3) for k, x in zip(CLASSES, v)}

    one = y[:, :c].sum(axis=1) == 1
    return {
        "sounding_exact": round(float(((prob[:, :c] >= 0.5) == (y[:, :c] > 0)).all(axis=1).mean()), 4),
        "class_accuracy": (
            round(float((prob[one, :c].argmax(1) == y[one, :c].argmax(1)).mean()), 4) if one.any() else None
        ),
        "onset_f1_at_0.5": per(f1[half]),
        "onset_f1_tuned": per(tuned),
        "onset_f1_tuned_mean": round(float(tuned[:4].mean()), 4),
        "onset_f1_tuned_unshifted": per(unshifted),
        "thresholds": per(THRESHOLD_GRID[best]),
        "ceiling": per(ceiling),
    }


def note_weights(feats: dict[str, np.ndarray], args: argparse.Namespace, tracks: list[Path], log=print) -> np.ndarray:
    """(n,) float32 loss weights of the training notes (``K`` indexing ``tracks``): 1 each, or with
    ``--dominance-floor`` F < 1, each note of one true class weighted by its dominance
    (``export.note_dominance``), clipped to [F, 1] (notes of no or several true classes keep 1). The
    dominance is cached in ``OUT/dominance.npz`` with a key over the notes and the track folders
    (computed again where the key differs)."""
    n = len(feats["Y"])
    if args.dominance_floor >= 1:
        return np.ones(n, np.float32)
    from export.note_clean import cached_array, notes_key
    from export.note_dominance import note_dominance

    t0 = time.perf_counter()
    dom, computed = cached_array(
        args.out / "dominance.npz", "dominance", notes_key(feats, tracks), lambda: note_dominance(feats, tracks)
    )
    if computed:
        log(f"[train] dominance of {int(np.isfinite(dom).sum())} of {n} notes ({time.perf_counter() - t0:.0f} s)")
    w = np.where(np.isfinite(dom), np.clip(np.nan_to_num(dom), args.dominance_floor, 1.0), 1.0)
    log(f"[train] note weights: mean {w.mean():.3f}, {int((w < 0.5).sum())} notes under 0.5")
    return w.astype(np.float32)


def clean_targets(
    feats: dict[str, np.ndarray], args: argparse.Namespace, tracks: list[Path], log=print
) -> tuple[np.ndarray, np.ndarray]:
    """``(row, patches)`` for ``--clean-weight``: ``row`` (n,) int64, the index into ``patches`` of each
    training note's clean patch (``export.note_clean``: the note cut from its own part's stem), -1 for a
    note of no or several true classes or parts; ``patches`` (m, bins, frames) float16. Cached in
    ``OUT/clean_patches.npz`` with a key over the notes, their parts and the track folders."""
    from export.note_clean import cached_clean_patches

    t0 = time.perf_counter()
    rows, patches, computed = cached_clean_patches(feats, tracks, args.out / "clean_patches.npz", log)
    if computed:
        log(f"[train] clean patches of {len(rows)} of {len(feats['Y'])} notes ({time.perf_counter() - t0:.0f} s)")
    row = np.full(len(feats["Y"]), -1, np.int64)
    row[rows] = np.arange(len(rows))
    return row, patches


def train(args: argparse.Namespace, log=print) -> Path:
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    post = args.post_cache or out / "posteriorgrams"
    decoding = _decoding(args)
    feats = cached_features(args.corpus, out / "features.npz", args.max_notes_per_track, args.seed, post, decoding, log)
    valid = (
        cached_features(args.valid, out / "valid_features.npz", 10**6, args.seed, post, decoding, log)
        if args.valid
        else None
    )
    tracks = [t for r in args.corpus for t in _tracks(r)]
    if args.train_sources:
        keep = source_mask(feats["K"], feats["Q"], tracks, set(args.train_sources))
        log(f"[train] {int(keep.sum())} of {len(keep)} notes: no part or parts of {', '.join(args.train_sources)}")
        if not (keep & (feats["Q"] >= 0)).any():
            raise SystemExit(f"stembridge train-notes: no part of {args.corpus} has a timbre source of --train-sources")
        feats = {k: v[keep] if k in ("P", "S", "Y", "D", "Q", "N", "K") else v for k, v in feats.items()}  # T, R: true
    y = torch.from_numpy(feats["Y"].astype(np.float32))
    weight = torch.from_numpy(note_weights(feats, args, tracks, log)).float()
    weighted, mean_weight = args.dominance_floor < 1, float(weight.mean())
    if args.clean_weight:
        clean_row, clean = clean_targets(feats, args, tracks, log)
        clean_row_t, clean_t = torch.from_numpy(clean_row), torch.from_numpy(clean)
        # a clean patch holds its own part only: its labels are its class's alone
        own_class = torch.from_numpy(np.tile(feats["Y"][:, : len(CLASSES)] > 0, 2)).float()
    d = torch.from_numpy(np.nan_to_num(feats["D"], nan=0.0) / SHIFT_SCALE_S).float()
    has_d = torch.from_numpy(np.isfinite(feats["D"])).float()
    n, bs = len(y), args.batch_size
    chunk = args.context_chunk
    by_track = bool(args.context or args.part_dim)
    steps_per_epoch = n_track_batches(feats["K"], bs, chunk) if by_track else n // bs
    if not steps_per_epoch:
        raise SystemExit(f"stembridge train-notes: {n} training notes do not fill one batch of {bs}")
    torch.manual_seed(args.seed)
    families = N_FAMILIES if args.family_weight else 0
    net = NoteClassNet(
        width=args.width, hidden=args.hidden, context=args.context, part_dim=args.part_dim, families=families
    )
    pool = pool_of(args) if args.part_dim else None
    part = torch.from_numpy(feats["Q"].astype(np.int64))
    if families:
        family = torch.from_numpy(part_families(feats["K"], feats["Q"], tracks))
    if args.init is not None and not (args.resume and (out / "last.pt").is_file()):
        weights = torch.load(args.init, weights_only=True)["model"]
        if args.widen and shape_of({"model": weights}) != {"width": args.width, "hidden": args.hidden}:
            log(f"[train] {args.init} widened to width {args.width}, hidden {args.hidden}")
            weights = widen_state(weights, net)
        own = net.state_dict()  # a part head of another width (or none here) is not carried over
        dropped = [
            k
            for k, v in weights.items()
            if k.startswith(("part.", "fam.")) and (k not in own or v.shape != own[k].shape)
        ]
        missing, unexpected = net.load_state_dict({k: v for k, v in weights.items() if k not in dropped}, strict=False)
        if unexpected or any(not k.startswith(("ctx.", "part.", "fam.")) for k in missing):
            raise SystemExit(f"{args.init}: not a note classifier checkpoint of this shape")
        log(
            f"[train] started from {args.init} (new: {', '.join(missing) or 'nothing'}"
            + (f"; not carried over: {', '.join(dropped)}" if dropped else "")
            + ")"
        )
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    epoch = 0
    ckpt = out / "last.pt"
    if args.resume and ckpt.is_file():
        st = torch.load(ckpt, weights_only=True)
        net.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        gen.set_state(st["generator"])
        torch.set_rng_state(st["torch_rng"])
        epoch = int(st["epoch"])
        log(f"[train] resumed after epoch {epoch}")
    positives = dict(zip(CLASSES, feats["Y"][:, : len(CLASSES)].sum(axis=0).tolist()))
    log(f"[train] {n} transcribed notes (sounding per class {positives}), {steps_per_epoch} steps per epoch")
    P, S = torch.from_numpy(feats["P"]), torch.from_numpy(feats["S"])
    while epoch < args.epochs:
        t0, total = time.perf_counter(), 0.0
        if by_track:
            batches = track_batches(feats["K"], bs, chunk, gen)
        else:
            perm = torch.randperm(n, generator=gen)
            batches = [(perm[i * bs : (i + 1) * bs], None) for i in range(steps_per_epoch)]
        for idx, group in batches:
            h = net.embed(augment(P[idx].float(), gen), S[idx])
            y_hat = net.head(h, group_context(h, group) if args.context else None)
            if weighted:  # a batch of masked notes counts less, not rescaled to full weight
                bce = F.binary_cross_entropy_with_logits(y_hat[:, :-1], y[idx], reduction="none").mean(dim=1)
                loss = (bce * weight[idx]).sum() / (len(idx) * mean_weight)
            else:
                loss = F.binary_cross_entropy_with_logits(y_hat[:, :-1], y[idx])
            if args.part_dim:
                loss = loss + args.part_weight * part_contrast_loss(net.part_embedding(h), part[idx], group)
            if families and (family[idx] >= 0).any():
                loss = loss + args.family_weight * F.cross_entropy(net.fam(net.drop(h)), family[idx], ignore_index=-1)
            if args.clean_weight and (clean_row_t[idx] >= 0).any():
                ci = idx[clean_row_t[idx] >= 0]
                y_clean = net.head(net.embed(augment(clean_t[clean_row_t[ci]].float(), gen), S[ci]))
                loss = loss + args.clean_weight * F.binary_cross_entropy_with_logits(
                    y_clean[:, :-1], y[ci] * own_class[ci]
                )
            shift_loss = F.smooth_l1_loss(y_hat[:, -1], d[idx], reduction="none")
            loss = loss + (shift_loss * has_d[idx]).sum() / has_d[idx].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        epoch += 1
        line = {
            "epoch": epoch,
            "loss": round(total / steps_per_epoch, 4),
            "minutes": round((time.perf_counter() - t0) / 60, 2),
        }
        if valid is not None:
            line["valid"] = evaluate(net, valid, pool)
            if pool is not None:
                line["valid_unpooled"] = evaluate(net, valid)
        log("[epoch] " + json.dumps(line))
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "args": {k: " ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in vars(args).items()},
        }
        torch.save(state, out / "last.tmp.pt")
        (out / "last.tmp.pt").replace(ckpt)
    return ckpt


def widen_state(old: dict[str, torch.Tensor], net: NoteClassNet) -> dict[str, torch.Tensor]:
    """A state dict for ``net`` (at least as wide in every layer as the ``NoteClassNet`` whose weights
    are ``old``, no context head) that computes the old network's outputs (Net2Net-style widening):
    the old weights in the first channels / units, ``net``'s own random initialisation for the new
    units' incoming weights, zero for every weight from a new unit into an old one (next convolution,
    the dense layer) or into a head, so that the new units change no output at first and learn from
    the first step (their outgoing weights get gradients)."""
    unknown = [k for k in old if not k.startswith(("c1.", "c2.", "c3.", "fc.", "out.", "part.", "fam."))]
    if unknown:
        raise ValueError(f"widen_state: cannot widen {', '.join(unknown)} (a context head)")
    new = {k: v.detach().clone() for k, v in net.state_dict().items()}
    w0, h0 = int(old["c1.weight"].shape[0]), int(old["fc.weight"].shape[0])
    w = net.c1.out_channels
    cells = (N_BINS // 8) * (PATCH["frames"] // 8)  # flatten is channel-major: old channels come first
    for name, rows, cols in (("c1", w0, None), ("c2", 2 * w0, w0), ("c3", 4 * w0, 2 * w0)):
        wt = new[f"{name}.weight"]
        if cols is not None:
            wt[:rows, cols:] = 0.0  # into old channels from the new ones of the layer before
            wt[:rows, :cols] = old[f"{name}.weight"]
        else:
            wt[:rows] = old[f"{name}.weight"]
        new[f"{name}.bias"][:rows] = old[f"{name}.bias"]
    flat0, flat = 4 * w0 * cells, 4 * w * cells
    fc = new["fc.weight"]
    fc[:h0, flat0:flat] = 0.0
    fc[:h0, :flat0] = old["fc.weight"][:, :flat0]
    fc[:h0, flat:] = old["fc.weight"][:, flat0:]  # the scalars, last
    new["fc.bias"][:h0] = old["fc.bias"]
    for head in ("out", "part", "fam"):
        k = f"{head}.weight"
        if k in old and k in new and old[k].shape[0] == new[k].shape[0]:
            new[k][:, h0:] = 0.0
            new[k][:, :h0] = old[k]
            new[f"{head}.bias"] = old[f"{head}.bias"].clone()
        else:  # none here, none in the checkpoint, or of another width: as a plain --init treats it
            for name in (k, f"{head}.bias"):
                new.pop(name, None)
                if name in old:
                    new[name] = old[name]
    return new


def shape_of(state: dict) -> dict[str, int]:
    """``NoteClassNet``'s ``width`` and ``hidden`` of a checkpoint, read from its weights (the first
    convolution's channels, the dense layer's outputs); the defaults where it has none."""
    model = state.get("model", {})
    if "c1.weight" in model and "fc.weight" in model:
        return {"width": int(model["c1.weight"].shape[0]), "hidden": int(model["fc.weight"].shape[0])}
    return {"width": WIDTH, "hidden": HIDDEN}


def context_of(state: dict) -> int:
    """The context head's width a checkpoint was trained with (0: none)."""
    return int(state.get("args", {}).get("context", 0) or 0)


def part_dim_of(state: dict) -> int:
    """The part head's width a checkpoint was trained with (0: none)."""
    return int(state.get("args", {}).get("part_dim", 0) or 0)


def pool_of(args: argparse.Namespace, trained: dict | None = None) -> tuple[float, float]:
    """Part pooling's (temperature, weight): the command's, else the run's (``trained``: a checkpoint's
    stored args), else ``POOL_DEFAULT``."""
    out = []
    for key, default in zip(("pool_temperature", "pool_weight"), POOL_DEFAULT):
        given = getattr(args, key)
        stored = (trained or {}).get(key)
        out.append(float(given) if given is not None else float(stored) if stored not in (None, "None") else default)
    return out[0], out[1]


def _decoding(args: argparse.Namespace) -> dict[str, float]:
    return {
        "onset_threshold": float(args.onset_threshold),
        "frame_threshold": float(args.frame_threshold),
        "min_note_frames": int(args.min_note_frames),
    }


# ----------------------------------------------------------------------------- export


def export_onnx(
    ckpt: Path,
    path: Path,
    onset_thresholds: list[float],
    sounding_threshold: float,
    decoding: dict[str, float],
    card: dict | None = None,
    ensemble: tuple[Path, ...] = (),
    pool: tuple[float, float] = POOL_DEFAULT,
) -> Path:
    """The checkpoint's classifier (with ``ensemble``: the mean of its logits and those of these
    checkpoints' classifiers, one graph) as ONNX (inputs ``patch``, ``scalars``; outputs
    ``sounding``, ``onset`` logits) with its metadata (the per-class ``onset_thresholds``, the
    ``decoding`` of the notes it was trained on; with a part head, ``part_pooling``: its width and
    ``pool`` = (temperature, weight)) under ``META_KEY``; checked against torch on random patches."""
    import onnx
    import onnxruntime as ort

    net = load_classifier([ckpt, *ensemble])
    kind = _ContextHeads if net.context else _PartHeads if net.part_dim else _Heads
    heads = kind(net).eval()  # type: ignore[arg-type]
    p = torch.randn(4, N_BINS, PATCH["frames"]).clamp(-4, 0.5)
    s = torch.randn(4, 2)
    inputs: tuple[torch.Tensor, ...] = (p, s)
    in_names, out_names = ["patch", "scalars"], ["sounding", "onset", "shift_s"]
    if net.context:
        inputs, in_names, out_names = (
            (p, s, torch.rand(4, net.hidden)),
            [*in_names, "context"],
            [*out_names, "embedding"],
        )
    elif net.part_dim:
        out_names = [*out_names, "part_embedding"]
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        heads,
        inputs,
        str(tmp),
        input_names=in_names,
        output_names=out_names,
        dynamic_axes={k: {0: "notes"} for k in in_names + out_names},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(tmp))
    meta = {
        "kind": "note_classes",
        "version": VERSION,
        "classes": list(CLASSES),
        "sounding_threshold": float(sounding_threshold),
        "onset_thresholds": [float(t) for t in onset_thresholds],
        "decoding": dict(decoding),
        **PATCH,
    }
    if net.context:
        meta["context"] = {"kind": "file_mean_embedding", "dim": net.hidden}
    if net.part_dim:
        meta["part_pooling"] = {"dim": net.part_dim, "temperature": float(pool[0]), "weight": float(pool[1])}
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(tmp))
    got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
        out_names, {k: v.numpy() for k, v in zip(in_names, inputs)}
    )
    with torch.no_grad():
        want = heads(*inputs)
    err = max(float(np.abs(g - w.numpy()).max()) for g, w in zip(got, want))
    if err > 1e-4:
        raise SystemExit(f"ONNX export differs from torch by {err:.2e}")
    tmp.replace(path)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def corpora_exist(corpora: list[Path]) -> bool:
    """True when every corpus folder exists; else a one-line error naming the first missing one."""
    for corpus in corpora:
        if not corpus.is_dir():
            print(f"stembridge train-notes: no corpus at {corpus} (stembridge corpus --out {corpus})", file=sys.stderr)
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="stembridge train-notes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--corpus",
        type=Path,
        nargs="+",
        default=[Path("corpus/harm")],
        help="rendered corpora, one or several (default corpus/harm)",
    )
    ap.add_argument("--valid", type=Path, default=None, help="tracks scored after every epoch (tunes the thresholds)")
    ap.add_argument("--out", type=Path, required=True, help="run folder: features, last.pt, train.log")
    ap.add_argument(
        "--post-cache",
        type=Path,
        default=None,
        help="basic-pitch posteriorgrams cache, one folder per corpus (default OUT/posteriorgrams)",
    )
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak of the one-cycle schedule")
    ap.add_argument("--max-notes-per-track", type=int, default=400)
    ap.add_argument(
        "--onset-threshold", type=float, default=DECODING["onset_threshold"], help="basic-pitch decoding (stored)"
    )
    ap.add_argument(
        "--frame-threshold", type=float, default=DECODING["frame_threshold"], help="basic-pitch decoding (stored)"
    )
    ap.add_argument(
        "--min-note-frames",
        type=int,
        default=DECODING["min_note_frames"],
        help="basic-pitch decoding: shortest note in 86 Hz frames (stored)",
    )
    ap.add_argument(
        "--context",
        type=int,
        default=0,
        help="width of a context head that sees the mean embedding of the file's notes (0: none)",
    )
    ap.add_argument("--width", type=int, default=WIDTH, help="channels of the first convolution (then x2, x4)")
    ap.add_argument("--hidden", type=int, default=HIDDEN, help="width of the note embedding")
    ap.add_argument("--context-chunk", type=int, default=64, help="notes of one track a training context sees")
    ap.add_argument(
        "--part-dim",
        type=int,
        default=0,
        help="width of a part head: note embeddings trained so that notes of one part lie close, whose logits "
        "are then pooled per file (0: none)",
    )
    ap.add_argument("--part-weight", type=float, default=1.0, help="weight of the part head's contrastive loss")
    ap.add_argument(
        "--family-weight",
        type=float,
        default=0.0,
        help="weight of an auxiliary loss that names each note's GM family (program // 8) from its embedding "
        "(0: none; the export leaves the family head out)",
    )
    ap.add_argument(
        "--widen",
        action="store_true",
        help="--init may be narrower (--width, --hidden) than this run: its network is widened so that it "
        "computes the same outputs (the new units' outgoing weights zero), then trained",
    )
    ap.add_argument(
        "--dominance-floor",
        type=float,
        default=1.0,
        help="weight each training note of one true class by its dominance (the share of the mix's energy at "
        "its harmonics its class's stems hold), at least this much, so that notes masked by other "
        "instruments count less (1: every note alike; computed once from the corpus's stems, OUT/dominance.npz)",
    )
    ap.add_argument(
        "--clean-weight",
        type=float,
        default=0.0,
        help="weight of a second loss on the same notes cut from their own part's stem, rendered alone (each "
        "class's timbre where nothing else sounds; training only, the classifier still reads the mix; 0: none; "
        "built once from the corpus's stems, OUT/clean_patches.npz)",
    )
    ap.add_argument(
        "--pool-temperature",
        type=float,
        default=None,
        help="part pooling: softmax temperature of the similarities, >= 1e-4 "
        f"(default the run's, else {POOL_DEFAULT[0]})",
    )
    ap.add_argument(
        "--pool-weight",
        type=float,
        default=None,
        help=f"part pooling: share of the pooled logits, 0..1 (default the run's, else {POOL_DEFAULT[1]})",
    )
    ap.add_argument("--init", type=Path, default=None, help="start from this checkpoint's weights (not resumed)")
    ap.add_argument(
        "--train-sources",
        type=lambda v: sorted({x.strip() for x in v.split(",")}),
        default=None,
        metavar="S1,S2",
        help="train only on notes of pitched parts with these timbre sources (sf2, synth, freepats, npm; legacy for "
        "a soundfont-only corpus) and on notes of no part; the mixes keep every part",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--export", type=Path, default=None, help="write the trained classifier here as ONNX")
    ap.add_argument("--no-train", action="store_true", help="export OUT/last.pt without training")
    ap.add_argument(
        "--features-only",
        action="store_true",
        help="build (or reuse) OUT/features.npz from --corpus and OUT/valid_features.npz from --valid, then stop "
        "(what bench/classifier_fit.py reads: a corpus no checkpoint trained on scores it on unseen songs)",
    )
    ap.add_argument(
        "--ensemble",
        type=Path,
        nargs="+",
        default=[],
        help="with --no-train --export --valid: export OUT/last.pt and these checkpoints as one classifier "
        "(the mean of their logits; thresholds tuned on --valid)",
    )
    ap.add_argument(
        "--sounding-threshold",
        type=float,
        default=SOUNDING_THRESHOLD,
        help=f"stored in the export: a note joins a class's part from this probability (default {SOUNDING_THRESHOLD})",
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "train.log", "a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    if args.context and args.part_dim:
        print("stembridge train-notes: --context and --part-dim are one or the other", file=sys.stderr)
        return 2
    if args.context and args.clean_weight:  # a clean batch has no song around it for the context head
        print("stembridge train-notes: --context and --clean-weight are one or the other", file=sys.stderr)
        return 2
    if args.context and args.train_sources:  # its training context would miss the notes left out
        print("stembridge train-notes: --context and --train-sources are one or the other", file=sys.stderr)
        return 2
    bad = (
        "--part-dim must be 0..4096"
        if not 0 <= args.part_dim <= 4096
        else "--width must be 1..256 and --hidden 1..4096"
        if not (1 <= args.width <= 256 and 1 <= args.hidden <= 4096)
        else "--pool-temperature must be a number >= 1e-4"
        if args.pool_temperature is not None
        and not (math.isfinite(args.pool_temperature) and args.pool_temperature >= 1e-4)
        else "--pool-weight must be in 0..1"
        if args.pool_weight is not None and not 0 <= args.pool_weight <= 1
        else "--family-weight must be a number >= 0"
        if not (math.isfinite(args.family_weight) and args.family_weight >= 0)
        else "--dominance-floor must be in (0, 1]"
        if not 0 < args.dominance_floor <= 1
        else "--clean-weight must be a number >= 0"
        if not (math.isfinite(args.clean_weight) and args.clean_weight >= 0)
        else None
    )
    if bad:
        print(f"stembridge train-notes: {bad}", file=sys.stderr)
        return 2
    known = {*SOURCES, "legacy"}
    if args.train_sources is not None and not set(args.train_sources) <= known:
        print(f"stembridge train-notes: --train-sources takes some of {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    if args.ensemble and not (args.no_train and args.export and args.valid):
        print("stembridge train-notes: --ensemble needs --no-train, --export and --valid", file=sys.stderr)
        return 2
    for ckpt in [args.out / "last.pt", *args.ensemble] if args.ensemble else []:  # before any work
        st = torch.load(ckpt, weights_only=True) if ckpt.is_file() else None
        if st is None or context_of(st) or part_dim_of(st):
            what = "no such checkpoint" if st is None else "has a context or part head"
            print(
                f"stembridge train-notes: --ensemble: {ckpt} {what} (an ensemble takes plain classifiers)",
                file=sys.stderr,
            )
            return 2
    if args.features_only:
        if args.no_train or args.export or args.resume or args.init:
            print("stembridge train-notes: --features-only trains and exports nothing", file=sys.stderr)
            return 2
        if not corpora_exist([*args.corpus, *([args.valid] if args.valid else [])]):
            return 2
        post, decoding = args.post_cache or args.out / "posteriorgrams", _decoding(args)
        cached_features(
            args.corpus, args.out / "features.npz", args.max_notes_per_track, args.seed, post, decoding, log
        )
        if args.valid is not None:
            cached_features(args.valid, args.out / "valid_features.npz", 10**6, args.seed, post, decoding, log)
        return 0
    if not args.no_train:
        resumed = args.out / "last.pt" if args.resume and (args.out / "last.pt").is_file() else None
        start = resumed or args.init
        if start is not None and not start.is_file():
            print(f"stembridge train-notes: --init: no such checkpoint: {start}", file=sys.stderr)
            return 2
        if resumed is not None:  # the notes and losses trained on are part of the schedule
            trained = torch.load(resumed, weights_only=True).get("args", {})
            for flag, default, now in (
                ("train_sources", "None", " ".join(args.train_sources) if args.train_sources else "None"),
                ("family_weight", "0.0", str(args.family_weight)),
                ("dominance_floor", "1.0", str(args.dominance_floor)),
                ("clean_weight", "0.0", str(args.clean_weight)),
            ):
                was = trained.get(flag, default)
                if was != now:
                    name = "--" + flag.replace("_", "-")
                    print(
                        f"stembridge train-notes: {resumed} trained with {name} {was.replace(' ', ',')}; "
                        f"resume it with the same (this run: {now.replace(' ', ',')})",
                        file=sys.stderr,
                    )
                    return 2
        if start is not None:  # before any work: a checkpoint of another shape
            start_state = torch.load(start, weights_only=True)
            got = shape_of(start_state)
            widened = args.widen and resumed is None and got["width"] <= args.width and got["hidden"] <= args.hidden
            if got != {"width": args.width, "hidden": args.hidden} and not widened:
                print(
                    f"stembridge train-notes: {start} is a classifier of width {got['width']}, hidden "
                    f"{got['hidden']}; this run is width {args.width}, hidden {args.hidden}"
                    + ("" if args.widen or resumed else " (--widen starts a wider run from a narrower --init)"),
                    file=sys.stderr,
                )
                return 2
            if widened and (args.context or context_of(start_state)):
                print("stembridge train-notes: --widen does not take a context head", file=sys.stderr)
                return 2
        if not corpora_exist(args.corpus):
            return 2
        train(args, log)
    if args.export is not None:
        ckpt = args.out / "last.pt"
        lines = [ln for ln in (args.out / "train.log").read_text().splitlines() if ln.startswith("[epoch]")]
        last = json.loads(lines[-1][len("[epoch] ") :]) if lines else None
        tuned = (last or {}).get("valid", {}).get("thresholds")
        thresholds = [float(tuned[c]) for c in CLASSES] if tuned else [0.5] * len(CLASSES)
        state = torch.load(ckpt, weights_only=True)
        trained = state["args"]
        pool = pool_of(args, trained)
        decoding = (
            {k: float(trained[k]) for k in ("onset_threshold", "frame_threshold")}
            | {"min_note_frames": int(trained["min_note_frames"])}
            if "min_note_frames" in trained
            else dict(DEFAULT_DECODING)
        )
        if args.no_train and args.valid is not None:
            # export for the decoding given on the command line, thresholds tuned again on --valid with it
            decoding = _decoding(args)
            post = args.post_cache or args.out / "posteriorgrams"
            valid = cached_features(args.valid, args.out / "valid_features.npz", 10**6, args.seed, post, decoding, log)
            net = load_classifier([ckpt, *args.ensemble])
            last = {"retuned": {"decoding": decoding, "valid": evaluate(net, valid, pool if net.part_dim else None)}}
            log("[retune] " + json.dumps(last))
            tuned = last["retuned"]["valid"]["thresholds"]
            thresholds = [float(tuned[c]) for c in CLASSES]
        card = {
            "name": "note-classes",
            "version": VERSION,
            "what": (
                "per instrument class, whether a transcribed note sounds in that class's part and whether one "
                "starts there, from a pitch-aligned patch of the mix"
            ),
            "classes": list(CLASSES),
            "patch": PATCH,
            "onset_thresholds": dict(zip(CLASSES, thresholds)),
            "sounding_threshold": args.sounding_threshold,
            "decoding": decoding,
            "training": {
                "command": (
                    f"stembridge train-notes --corpus {trained['corpus']} --out {trained['out']} "
                    f"--epochs {trained['epochs']} --seed {trained['seed']}"
                    + (f" --valid {trained['valid']}" if trained.get("valid") not in (None, "None") else "")
                    + (
                        f" --init {trained['init']} --lr {trained['lr']}"
                        if trained.get("init") not in (None, "None")
                        else ""
                    )
                    + (f" --context {trained['context']}" if trained.get("context") not in (None, "None", "0") else "")
                    + "".join(
                        f" --{k} {trained[k]}" for k in ("width", "hidden") if trained.get(k) not in (None, "None")
                    )
                    + (
                        f" --part-dim {trained['part_dim']} --part-weight {trained['part_weight']}"
                        f" --context-chunk {trained['context_chunk']}"
                        if trained.get("part_dim") not in (None, "None", "0")
                        else ""
                    )
                    + (
                        f" --train-sources {trained['train_sources'].replace(' ', ',')}"
                        if trained.get("train_sources") not in (None, "None")
                        else ""
                    )
                    + (
                        f" --family-weight {trained['family_weight']}"
                        if trained.get("family_weight") not in (None, "None", "0.0", "0")
                        else ""
                    )
                    + (" --widen" if trained.get("widen") == "True" else "")
                    + (
                        f" --dominance-floor {trained['dominance_floor']}"
                        if trained.get("dominance_floor") not in (None, "None", "1.0", "1")
                        else ""
                    )
                ),
                "corpus": trained["corpus"],
                "epochs": int(trained["epochs"]),
                "log": str(args.out / "train.log"),
            },
            "last_epoch": last,
            **({"ensemble": [str(ckpt), *map(str, args.ensemble)]} if args.ensemble else {}),
            "valid_note": (
                "valid: basic-pitch's notes on the --valid tracks (MuseScore General, no training corpus uses it) "
                "labelled against their true notes; onset thresholds tuned there"
            ),
        }
        export_onnx(ckpt, args.export, thresholds, args.sounding_threshold, decoding, card, tuple(args.ensemble), pool)
        log(f"[export] {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
