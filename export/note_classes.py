"""Train the note classifier (``bridge.transcribe.note_classes``) and export it to ONNX.

The classifier says which instrument class (bass, piano, guitar, strings, other) played a note,
from a pitch-aligned patch of the mix around it (see ``bridge.transcribe.note_classes`` for the
patch). Training notes are the true notes of a rendered corpus (``stembridge corpus``: many
soundfonts, sampled and procedural timbres; MuseScore General never enters one), each labelled
with the class of its part's GM program; drum parts are left out. Augmentation: a random smooth
EQ curve over the patch (+-6 dB per component) and onsets off by up to one frame.

    stembridge train-notes --corpus corpus/harm --out runs/notecls --epochs 6
    stembridge train-notes --corpus corpus/harm --out runs/notecls --epochs 6 --resume   # after a stop
    stembridge train-notes --out runs/notecls --export models_onnx/note-classes.onnx     # export only

Checkpoints (``OUT/last.pt``: weights, optimizer and schedule state, epoch, RNG states; loadable
with ``torch.load(weights_only=True)``) are written after every epoch; ``--resume`` continues
the schedule exactly. ``--valid DIR`` scores every epoch on the true notes of another set of
tracks (e.g. the selection set rendered with MuseScore General, ``out/heldout/s9002_20s``).
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
from bridge.transcribe.note_classes import KNOWN_CLASSES, META_KEY, PATCH, log_map_db, note_patches

CLASSES = KNOWN_CLASSES
N_BINS = PATCH["bins_per_semitone"] * (PATCH["semitones_below"] + PATCH["semitones_above"])
VERSION = "1.0.0"


class NoteClassNet(nn.Module):
    """(patch (B, N_BINS, frames), scalars (B, 2)) -> logits (B, n_classes). Three 3x3 conv + 2x2
    max-pool stages, then a dense layer that keeps where in the patch (which partial, which frame)
    each feature is."""

    def __init__(self, n_classes: int = len(CLASSES), width: int = 16, hidden: int = 128) -> None:
        super().__init__()
        w = width
        self.c1 = nn.Conv2d(1, w, 3, padding=1)
        self.c2 = nn.Conv2d(w, 2 * w, 3, padding=1)
        self.c3 = nn.Conv2d(2 * w, 4 * w, 3, padding=1)
        flat = 4 * w * (N_BINS // 8) * (PATCH["frames"] // 8)
        self.fc = nn.Linear(flat + 2, hidden)
        self.out = nn.Linear(hidden, n_classes)
        self.drop = nn.Dropout(0.3)

    def forward(self, patch: torch.Tensor, scalars: torch.Tensor) -> torch.Tensor:
        x = patch.unsqueeze(1)
        for conv in (self.c1, self.c2, self.c3):
            x = F.max_pool2d(F.relu(conv(x)), 2)
        return self.out(self.drop(F.relu(self.fc(torch.cat([x.flatten(1), scalars], 1)))))


# ----------------------------------------------------------------------------- data


def track_notes(track_dir: Path) -> np.ndarray:
    """True pitched notes of a corpus track (n, 5): onset_s, offset_s, pitch, velocity, class index."""
    import yaml

    from export.data.slakh import _read_notes

    meta = yaml.safe_load((track_dir / "metadata.yaml").read_text())
    rows = []
    for sid, info in sorted((meta.get("stems") or {}).items()):
        if info.get("is_drum") or not info.get("audio_rendered", True):
            continue
        mid = track_dir / meta.get("midi_dir", "MIDI") / f"{sid}.mid"
        if not mid.is_file():
            continue
        c = CLASSES.index(stem_for_program(int(info.get("program_num", 0))))
        notes = np.asarray(_read_notes(mid, False), np.float64).reshape(-1, 4)
        rows.append(np.concatenate([notes, np.full((len(notes), 1), c)], axis=1))
    return np.concatenate(rows) if rows else np.zeros((0, 5))


def build_features(tracks: list[Path], max_per_track: int, seed: int, log=print) -> dict[str, np.ndarray]:
    """Patches (float16), scalars and labels of up to ``max_per_track`` random true notes per track."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    patches, scalars, labels = [], [], []
    for k, td in enumerate(tracks):
        notes = track_notes(td)
        if not len(notes):
            continue
        if len(notes) > max_per_track:
            notes = notes[np.sort(rng.choice(len(notes), max_per_track, replace=False))]
        x, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        p, s = note_patches(log_map_db(x.mean(axis=1), sr), notes[:, :4])
        patches.append(p.astype(np.float16))
        scalars.append(s)
        labels.append(notes[:, 4].astype(np.int64))
        if (k + 1) % 50 == 0 or k + 1 == len(tracks):
            log(f"[data] {k + 1}/{len(tracks)} tracks, {sum(len(a) for a in labels)} notes")
    return {"P": np.concatenate(patches), "S": np.concatenate(scalars), "Y": np.concatenate(labels)}


def _tracks(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "metadata.yaml").is_file() and (p / "mix.flac").is_file())


def cached_features(root: Path, cache: Path, max_per_track: int, seed: int, log=print) -> dict[str, np.ndarray]:
    """Features of every track under ``root``, cached in ``cache`` (rebuilt when the track list changes)."""
    tracks = _tracks(root)
    key = {"root": str(root.resolve()), "tracks": [t.name for t in tracks], "max": max_per_track, "seed": seed}
    if cache.is_file():
        with np.load(cache) as d:
            if json.loads(str(d["key"])) == key:
                return {k: d[k] for k in ("P", "S", "Y")}
    feats = build_features(tracks, max_per_track, seed, log)
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


def evaluate(net: NoteClassNet, feats: dict[str, np.ndarray]) -> dict:
    """Accuracy, per-class recall and the confusion matrix (rows true, columns predicted)."""
    net.eval()
    with torch.no_grad():
        p, s = torch.from_numpy(feats["P"]), torch.from_numpy(feats["S"])
        pred = torch.cat([net(p[i : i + 512].float(), s[i : i + 512]).argmax(1) for i in range(0, len(p), 512)])
    net.train()
    y = feats["Y"]
    cm = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(cm, (y, pred.numpy()), 1)
    recall = {c: round(float(cm[k, k] / max(cm[k].sum(), 1)), 3) for k, c in enumerate(CLASSES)}
    return {"accuracy": round(float(np.trace(cm) / max(cm.sum(), 1)), 4), "recall": recall, "confusion": cm.tolist()}


def train(args: argparse.Namespace, log=print) -> Path:
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    feats = cached_features(args.corpus, out / "features.npz", args.max_notes_per_track, args.seed, log)
    valid = cached_features(args.valid, out / "valid_features.npz", 10**6, args.seed, log) if args.valid else None
    y = torch.from_numpy(feats["Y"])
    n, bs = len(y), args.batch_size
    steps_per_epoch = n // bs
    counts = np.bincount(feats["Y"], minlength=len(CLASSES))
    weight = torch.tensor(n / (len(CLASSES) * np.maximum(counts, 1)), dtype=torch.float32)
    torch.manual_seed(args.seed)
    net = NoteClassNet()
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
        if "torch_rng" in st:  # dropout draws from the global generator (absent in the first run's checkpoint)
            torch.set_rng_state(st["torch_rng"])
        epoch = int(st["epoch"])
        log(f"[train] resumed after epoch {epoch}")
    log(f"[train] {n} notes ({dict(zip(CLASSES, counts.tolist()))}), {steps_per_epoch} steps per epoch")
    P, S = torch.from_numpy(feats["P"]), torch.from_numpy(feats["S"])
    while epoch < args.epochs:
        t0, total = time.perf_counter(), 0.0
        perm = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            idx = perm[i * bs : (i + 1) * bs]
            logits = net(augment(P[idx].float(), gen), S[idx])
            loss = F.cross_entropy(logits, y[idx], weight=weight, label_smoothing=0.05)
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
            line["valid"] = evaluate(net, valid)
        log("[epoch] " + json.dumps(line))
        state = {
            "model": net.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "epoch": epoch,
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        torch.save(state, out / "last.tmp.pt")
        (out / "last.tmp.pt").replace(ckpt)
    return ckpt


# ----------------------------------------------------------------------------- export


def export_onnx(ckpt: Path, path: Path, card: dict | None = None) -> Path:
    """The checkpoint's classifier as ONNX (inputs ``patch``, ``scalars``; output ``logits``) with
    its metadata under ``META_KEY``; checked against torch on random patches."""
    import onnx
    import onnxruntime as ort

    net = NoteClassNet()
    net.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    net.eval()
    p = torch.randn(4, N_BINS, PATCH["frames"]).clamp(-4, 0.5)
    s = torch.randn(4, 2)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        net,
        (p, s),
        str(tmp),
        input_names=["patch", "scalars"],
        output_names=["logits"],
        dynamic_axes={"patch": {0: "notes"}, "scalars": {0: "notes"}, "logits": {0: "notes"}},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(tmp))
    meta = {"kind": "note_classes", "version": VERSION, "classes": list(CLASSES), **PATCH}
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(tmp))
    got = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"]).run(
        ["logits"], {"patch": p.numpy(), "scalars": s.numpy()}
    )[0]
    with torch.no_grad():
        want = net(p, s).numpy()
    if not np.allclose(got, want, atol=1e-4):
        raise SystemExit(f"ONNX export differs from torch by {np.abs(got - want).max():.2e}")
    tmp.replace(path)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="stembridge train-notes", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=Path("corpus/harm"), help="rendered corpus (default corpus/harm)")
    ap.add_argument("--valid", type=Path, default=None, help="tracks scored after every epoch (true notes)")
    ap.add_argument("--out", type=Path, required=True, help="run folder: features, last.pt, train.log")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak of the one-cycle schedule")
    ap.add_argument("--max-notes-per-track", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--export", type=Path, default=None, help="write the trained classifier here as ONNX")
    ap.add_argument("--no-train", action="store_true", help="export OUT/last.pt without training")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    log_file = open(args.out / "train.log", "a")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    if not args.no_train:
        if not args.corpus.is_dir():
            print(
                f"stembridge train-notes: no corpus at {args.corpus} (stembridge corpus --out {args.corpus})",
                file=sys.stderr,
            )
            return 2
        train(args, log)
    if args.export is not None:
        ckpt = args.out / "last.pt"
        lines = [ln for ln in (args.out / "train.log").read_text().splitlines() if ln.startswith("[epoch]")]
        trained = torch.load(ckpt, weights_only=True)["args"]
        card = {
            "name": "note-classes",
            "version": VERSION,
            "what": "instrument class of a transcribed note from a pitch-aligned patch of the mix",
            "classes": list(CLASSES),
            "patch": PATCH,
            "training": {
                "command": (
                    f"stembridge train-notes --corpus {trained['corpus']} --out {trained['out']} "
                    f"--epochs {trained['epochs']} --seed {trained['seed']}"
                    + (f" --valid {trained['valid']}" if trained.get("valid") not in (None, "None") else "")
                ),
                "corpus": trained["corpus"],
                "epochs": int(trained["epochs"]),
                "log": str(args.out / "train.log"),
            },
            "last_epoch": json.loads(lines[-1][len("[epoch] ") :]) if lines else None,
            "valid_note": "valid: true notes of --valid tracks (MuseScore General, no training corpus uses it)",
        }
        export_onnx(ckpt, args.export, card)
        log(f"[export] {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
