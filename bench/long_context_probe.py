#!/usr/bin/env python3
"""Would the note classifier gain from a longer look at each note than its 0.46-s patch?

The classifier sees 12 frames before a note's onset and 28 after (``PATCH``). Strings, organ, winds
and pads differ in how a note goes on (swell, vibrato, decay), which that patch mostly misses. This
probe keeps a trained checkpoint's note embedding frozen and trains small heads on the notes of a
corpus (``--features``; ``--holdout`` of its tracks left out) whose logits add to the checkpoint's
(their last layer starts at zero, so every head starts as the checkpoint), then scores, each epoch,
whole tracks of the fitted notes (``fit``), the corpus tracks left out (``corpus_holdout``: the same
timbre sources, songs not fitted) and the selection notes (``valid``, another soundfont):

- ``control``: an MLP on the embedding alone (what more training of a head on these notes gives),
- ``summary``: the same MLP on the embedding and hand-made long-context features of the note
  (``summary_features``: the envelopes of its first eight harmonics from 0.14 s before its onset to
  1.35 s after, its mean spectrum over its length within that, the wobble of its upper harmonics'
  pitch over 0.74 s),
- ``patch``: a small CNN over a 1.5-s pitch-aligned patch of the mix (``long_patches``, 90 bins of
  2/3 semitone x 32 steps of 4 frames) beside the embedding.

A head that lifts the selection accuracy over ``control`` says the longer look carries class
evidence the patch lacks; one that lifts ``corpus_holdout`` but not ``valid`` learns the training
timbres (sources), one that lifts only ``fit`` learns its songs. The notes of both feature files
should be decoded as the bridge decodes them for a like-for-like ``valid`` (the bench does not check).
Accuracies as ``bench/classifier_fit.py`` computes them (note: over notes of one true class, the
most probable class; part: the class of each true part's mean logit).

    taskset -c 0,1 .venv/bin/python bench/long_context_probe.py --features runs/part6o/features.npz \\
        --corpus corpus/harm15n corpus/harm16o --valid runs/part6o/valid_features.npz \\
        --valid-tracks out/heldout/s9002_20s --checkpoint models_onnx/checkpoints/note-classes-part5.pt \\
        --max-train-tracks 360 --json bench/results/long_context_probe_stop32.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.classifier_fit import accuracy_and_recall, whole_tracks  # noqa: E402
from bridge.transcribe.note_classes import PATCH, log_map_db  # noqa: E402

BINS = PATCH["bins_per_semitone"]
FRAMES_BEFORE, FRAMES = 12, 128  # the long window: 12 frames before the onset, 1.49 s in all
N_BINS = BINS * 60  # as the patch: 12 semitones below the note, 48 above
HARMONICS = np.array([round(BINS * 12 * np.log2(h)) for h in range(1, 9)]) + BINS * 12  # bins of harmonics 1-8
WOBBLE_FRAMES = 64
SUMMARY_DIM = 8 * 32 + N_BINS + WOBBLE_FRAMES
PATCH_SHAPE = (N_BINS // 2, FRAMES // 4)


def _windows(log_map: np.ndarray, notes: np.ndarray):
    """Per note of ``notes`` (n, 4) the long window of ``log_map`` (n_frames, n_log) dB: (FRAMES, N_BINS) dB,
    pitch-aligned as ``note_patches`` aligns the patch, and the note's length in frames."""
    hop, sr = PATCH["hop"], PATCH["sample_rate"]
    pad_t = FRAMES + FRAMES_BEFORE
    big = np.pad(log_map, ((pad_t, pad_t), (N_BINS, N_BINS)), constant_values=-100.0)
    for on, off, pitch, _vel in np.asarray(notes, np.float64).reshape(-1, 4).tolist():
        f0 = int(np.clip(round(on * sr / hop), -pad_t, log_map.shape[0])) - FRAMES_BEFORE + pad_t
        b0 = BINS * (int(pitch) - PATCH["semitones_below"] - PATCH["midi_low"]) + N_BINS
        b0 = int(np.clip(b0, 0, big.shape[1] - N_BINS))
        yield big[f0 : f0 + FRAMES, b0 : b0 + N_BINS], max(1, int(round((off - on) * sr / hop)))


def _normalised(w: np.ndarray) -> np.ndarray:
    """A long window ``w`` (FRAMES, N_BINS) dB in 20 dB re its 99th percentile, clipped to [-4, 0.5]."""
    return np.clip((w - np.percentile(w, 99)) / 20.0, -4.0, 0.5)


def _summary(w: np.ndarray, wn: np.ndarray, n_on: int) -> np.ndarray:
    """``summary_features`` of one long window ``w`` (FRAMES, N_BINS) dB (``wn``: ``_normalised(w)``) of
    a note ``n_on`` frames long."""
    env = np.stack([wn[:, max(h - 1, 0) : h + 2].max(1) for h in HARMONICS]).reshape(8, 32, 4).mean(2)
    spec = wn[FRAMES_BEFORE : FRAMES_BEFORE + min(n_on, FRAMES - FRAMES_BEFORE)].mean(0)
    p = 10.0 ** (w[FRAMES_BEFORE : FRAMES_BEFORE + WOBBLE_FRAMES] / 10.0)
    num, den = np.zeros(WOBBLE_FRAMES), np.full(WOBBLE_FRAMES, 1e-12)
    for h in HARMONICS[1:]:
        num += p[:, h + 1] - p[:, h - 1]
        den += p[:, h - 1 : h + 2].sum(1)
    wobble = num / den
    return np.concatenate([env.reshape(-1), spec, 10.0 * (wobble - wobble.mean())])


def _patch(wn: np.ndarray) -> np.ndarray:
    """``long_patches`` of one normalised long window ``wn`` (FRAMES, N_BINS) -> PATCH_SHAPE."""
    return wn.reshape(FRAMES // 4, 4, N_BINS // 2, 2).mean((1, 3)).T


def summary_features(log_map: np.ndarray, notes: np.ndarray) -> np.ndarray:
    """(n, SUMMARY_DIM): per note, harmonics 1-8's envelopes (max over +-1 bin, 4-frame means: 8 x 32)
    over the long window (12 frames before the onset to 116 after), the mean spectrum over the note's
    frames within that window (N_BINS; at most 116 frames, 1.35 s), both in 20 dB re the window's 99th
    percentile clipped to [-4, 0.5], and the power-weighted pitch wobble of harmonics 2-8 (3-bin
    centroid, mean removed, x10) over the WOBBLE_FRAMES frames after the onset (whatever the note's
    length)."""
    out = np.zeros((len(notes), SUMMARY_DIM), np.float32)
    for i, (w, n_on) in enumerate(_windows(log_map, notes)):
        out[i] = _summary(w, _normalised(w), n_on)
    return out


def long_patches(log_map: np.ndarray, notes: np.ndarray) -> np.ndarray:
    """(n, *PATCH_SHAPE) float16: the long window in 20 dB re its 99th percentile, clipped to [-4, 0.5],
    averaged over 2 bins and 4 frames."""
    out = np.zeros((len(notes), *PATCH_SHAPE), np.float16)
    for i, (w, _n) in enumerate(_windows(log_map, notes)):
        out[i] = _patch(_normalised(w))
    return out


def long_inputs(feats: dict[str, np.ndarray], tracks: list[Path], log=print) -> tuple[np.ndarray, np.ndarray]:
    """Summary features and long patches of every note of ``feats`` (``N``, ``K`` indexing ``tracks``)."""
    import soundfile as sf

    summ = np.zeros((len(feats["N"]), SUMMARY_DIM), np.float32)
    lp = np.zeros((len(feats["N"]), *PATCH_SHAPE), np.float16)
    todo = np.unique(feats["K"]).tolist()
    for j, k in enumerate(todo):
        rows = np.flatnonzero(feats["K"] == k)
        x, sr = sf.read(str(tracks[k] / "mix.flac"), dtype="float32", always_2d=True)
        for i, (w, n_on) in zip(rows, _windows(log_map_db(x.mean(axis=1), sr), feats["N"][rows])):
            wn = _normalised(w)
            summ[i], lp[i] = _summary(w, wn, n_on), _patch(wn)
        if (j + 1) % 100 == 0 or j + 1 == len(todo):
            log(f"[long] {j + 1}/{len(todo)} tracks")
    return summ, lp


def split_tracks(track: np.ndarray, holdout: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Note indices (fitted, held out) of ``track`` (n,): ``round(holdout * tracks)`` whole tracks, drawn
    with ``rng``, held out; both sorted, disjoint, together every note."""
    used = np.unique(track)
    held = rng.permutation(used)[: int(round(holdout * len(used)))]
    is_held = np.isin(track, held)
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True, help="a run's features.npz (its training notes)")
    ap.add_argument("--corpus", type=Path, nargs="+", required=True, help="the corpora the features were built from")
    ap.add_argument("--valid", type=Path, required=True, help="a run's valid_features.npz (the selection notes)")
    ap.add_argument("--valid-tracks", type=Path, required=True, help="the folder the valid features were built from")
    ap.add_argument("--checkpoint", type=Path, required=True, help="the classifier whose embedding stays frozen")
    ap.add_argument(
        "--heads", nargs="+", choices=("control", "summary", "patch"), default=["control", "summary", "patch"]
    )
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--train-notes", type=int, default=20_000, help="fitted notes scored each epoch (whole tracks)")
    ap.add_argument(
        "--max-train-tracks", type=int, default=None, help="use this many of the training tracks (a random draw)"
    )
    ap.add_argument(
        "--holdout", type=float, default=0.1, help="share of the training tracks the heads do not fit, scored apart"
    )
    ap.add_argument("--min-part-notes", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not 0.0 <= args.holdout < 1.0 or (args.max_train_tracks is not None and args.max_train_tracks < 1):
        ap.error("--holdout must lie in [0, 1) and --max-train-tracks be at least 1")
    for f in (args.features, args.valid, args.checkpoint, *args.corpus, args.valid_tracks):
        if not f.exists():
            print(f"long_context_probe: no such file or folder: {f}", file=sys.stderr)
            return 2

    import torch
    import torch.nn.functional as F
    from torch import nn

    from export.note_classes import CLASSES, _tracks, load_classifier

    torch.set_num_threads(args.threads)
    c = len(CLASSES)
    net = load_classifier([args.checkpoint]).eval()
    if net.context:
        print(
            f"long_context_probe: {args.checkpoint} has a song-context head; give a classifier without", file=sys.stderr
        )
        return 2
    rng = np.random.default_rng(args.seed)
    sets = {}
    for name, f, roots in (("train", args.features, args.corpus), ("valid", args.valid, [args.valid_tracks])):
        t0 = time.perf_counter()
        with np.load(f) as d:
            key = json.loads(str(d["key"]))
            tracks = [t for r in roots for t in _tracks(r)]
            names = [t.name if len(roots) == 1 else f"{t.parent.name}/{t.name}" for t in tracks]
            if names != key["tracks"]:
                print(f"long_context_probe: {roots} do not hold the tracks {f} was built from", file=sys.stderr)
                return 2
            keep = np.arange(len(tracks))
            if name == "train" and args.max_train_tracks:
                keep = np.sort(rng.permutation(len(tracks))[: args.max_train_tracks])
            m = np.isin(d["K"], keep)
            feats = {k: d[k][m] for k in ("S", "Y", "Q", "K", "N")}
            patches = d["P"][m]  # (n, bins, frames) float16
            hs, logits = [], []
            with torch.no_grad():
                for i in range(0, len(patches), 1024):
                    p, sc = torch.from_numpy(patches[i : i + 1024]).float(), torch.from_numpy(feats["S"][i : i + 1024])
                    h = net.embed(p, sc)
                    hs.append(h)
                    logits.append(net.head(h)[:, : 2 * c])
            del patches
        feats["h"], feats["base"] = torch.cat(hs), torch.cat(logits)
        summ, lp = long_inputs(feats, tracks)
        feats["summary"], feats["patch"] = torch.from_numpy(summ), torch.from_numpy(lp)
        sets[name] = feats
        print(f"{name}: {len(feats['S'])} notes ready in {time.perf_counter() - t0:.0f} s", flush=True)
    train, valid = sets["train"], sets["valid"]
    used = np.unique(train["K"])
    fit, held_notes = split_tracks(train["K"], args.holdout, rng)
    held = np.unique(train["K"][held_notes])
    if not len(fit):
        print("long_context_probe: --holdout leaves no track to fit", file=sys.stderr)
        return 2
    scored = fit[whole_tracks(train["K"][fit], args.train_notes, args.seed)]
    fit_rows = torch.from_numpy(fit)
    mean, std = train["summary"][fit_rows].mean(0), train["summary"][fit_rows].std(0) + 1e-3
    y = torch.from_numpy(train["Y"].astype(np.float32))
    sets_scored = {"fit": (train, scored), "valid": (valid, np.arange(len(valid["Y"])))}
    if len(held_notes):
        sets_scored["corpus_holdout"] = (train, held_notes)
    print(
        f"tracks: {len(used) - len(held)} fitted ({len(fit)} notes, {len(scored)} scored), {len(held)} held out "
        f"({len(held_notes)} notes); selection {len(valid['Y'])} notes",
        flush=True,
    )

    class Head(nn.Module):
        def __init__(self, kind: str, hidden: int) -> None:
            super().__init__()
            self.kind = kind
            extra = {"control": 0, "summary": SUMMARY_DIM, "patch": 32 * (PATCH_SHAPE[0] // 8) * (PATCH_SHAPE[1] // 8)}
            if kind == "patch":
                self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in ((1, 8), (8, 16), (16, 32)))
            last = nn.Linear(256, 2 * c)  # starts at zero: the head starts as the checkpoint
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
            self.mlp = nn.Sequential(nn.Linear(hidden + extra[kind], 256), nn.ReLU(), nn.Dropout(0.3), last)

        def forward(self, s: dict, idx: torch.Tensor) -> torch.Tensor:
            x = [s["h"][idx]]
            if self.kind == "summary":
                x.append((s["summary"][idx] - mean) / std)
            elif self.kind == "patch":
                z = s["patch"][idx].float().unsqueeze(1)
                for conv in self.convs:
                    z = F.max_pool2d(F.relu(conv(z)), 2)
                x.append(z.flatten(1))
            return s["base"][idx] + self.mlp(torch.cat(x, 1))

    def score(head: nn.Module | None, s: dict, idx: np.ndarray) -> dict:
        ix = torch.from_numpy(idx)
        with torch.no_grad():
            lg = torch.cat(
                [
                    s["base"][ix[i : i + 2048]] if head is None else head(s, ix[i : i + 2048])
                    for i in range(0, len(ix), 2048)
                ]
            )
        sub = {k: s[k][idx] for k in ("Y", "Q", "K")}
        return accuracy_and_recall(lg[:, :c].numpy().astype(np.float64), sub, args.min_part_notes)

    def line(tag: str, r: dict) -> str:
        return f"{tag}: note accuracy {r['note_accuracy']} part accuracy {r['part_accuracy']} recall {r['recall']}"

    out: dict = {"checkpoint": {name: score(None, st, ix) for name, (st, ix) in sets_scored.items()}}
    for name, r in out["checkpoint"].items():
        print(line(f"checkpoint {name}", r), flush=True)
    for kind in args.heads:
        torch.manual_seed(args.seed)
        head = Head(kind, train["h"].shape[1])
        opt = torch.optim.AdamW(head.parameters(), 1e-3, weight_decay=1e-3)
        out[kind] = []
        for epoch in range(1, args.epochs + 1):
            t0 = time.perf_counter()
            head.train()
            perm = fit_rows[torch.randperm(len(fit_rows))]
            for i in range(0, len(perm), 256):
                idx = perm[i : i + 256]
                loss = F.binary_cross_entropy_with_logits(head(train, idx), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            head.eval()
            row: dict = {"epoch": epoch, "seconds": round(time.perf_counter() - t0, 1)}
            for name, (st, ix) in sets_scored.items():
                row[name] = score(head, st, ix)
                print(line(f"{kind} epoch {epoch} {name}", row[name]), flush=True)
            out[kind].append(row)
    if args.json is not None:
        sizes = {
            "fitted_tracks": len(used) - len(held),
            "held_out_tracks": len(held),
            "fitted_notes": len(fit),
            "selection_notes": len(valid["Y"]),
        }
        run = {"argv": list(sys.argv[1:] if argv is None else argv), "classes": list(CLASSES), "sizes": sizes}
        args.json.write_text(json.dumps({**run, "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
