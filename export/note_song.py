"""Train the song-context model (``bridge.transcribe.song_context``): the note classifier's evidence for each
transcribed note refined by the other notes of the same file.

Per corpus track: the shipped blind path's analysis of the mix (``Transcriber.analyse``: basic-pitch's notes,
the classifier's ``sounding`` and ``onset`` probabilities), the notes' timbre summaries and their labels
(``export.note_classes.note_labels``: the classes that truly sound at each note), cached as one ``.npz`` per
track (``--cache``). A small attention network over each file's notes (``SongNet``: a per-note MLP, two
self-attention blocks, a linear head added to the classifier's own sounding logits) is trained with
cross-entropy on the notes of exactly one true class, one file per step, a fifth of the notes dropped at
random, cosine learning rate. ``--export`` writes the ONNX file (input ``features`` (n, N_FEATURES), output
``probs`` (n, 5)) with its metadata and a model card beside it, checked against torch.

    .venv/bin/python -m export.note_song --corpus corpus/leg17 --cache runs/song/cache --out runs/song \\
        --epochs 30 --export models_onnx/note-song.onnx

The corpus must not be one the note classifier was trained on (its probabilities there are too sure);
``--valid`` folders (rendered held-out sets) are scored each epoch (note accuracy, their own cache).
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
from torch import nn

from bridge.transcribe.note_classes import KNOWN_CLASSES
from bridge.transcribe.song_context import META_KEY, N_FEATURES, timbre_features

VERSION = "1.1.0"  # 1.1.0: several members averaged (metadata members)
N_CLASSES = len(KNOWN_CLASSES)


class SelfAttention(nn.Module):
    """Multi-head self-attention over one file's notes, (n, hidden) -> (n, hidden); the parameters named as
    ``nn.MultiheadAttention``'s, with shapes that stay symbolic in an ONNX export (any number of notes)."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.dim = heads, hidden // heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * hidden, hidden))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * hidden))
        self.out_proj = nn.Linear(hidden, hidden)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(-1, self.heads, self.dim).transpose(0, 1) for t in (q, k, v))  # (heads, n, dim)
        a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.dim), dim=-1)
        return self.out_proj((a @ v).transpose(0, 1).reshape(-1, self.heads * self.dim))


class SongNet(nn.Module):
    """(n, N_FEATURES) one file's notes -> (n, 5) class logits: the classifier's sounding logits (the first
    five features) plus what two self-attention blocks over the file's notes add."""

    def __init__(self, hidden: int = 96, heads: int = 4) -> None:
        super().__init__()
        self.inp = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.att = SelfAttention(hidden, heads)
        self.att2 = SelfAttention(hidden, heads)
        self.ff = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, N_CLASSES))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        h = h + self.att(h)
        h = h + self.ff(h)
        h = h + self.att2(h)
        return self.out(h) + x[:, :N_CLASSES]


class _Probs(nn.Module):
    """The exported graph: the mean of the members' class probabilities (one member: its own)."""

    def __init__(self, nets: list[SongNet]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.softmax(net(x), dim=-1) for net in self.nets]).mean(0)


def collect(tracks: list[Path], cache: Path, log=print) -> list[Path]:
    """One ``.npz`` per track in ``cache`` (notes, sounding, onset, timbre, labels), made where missing."""
    import soundfile as sf

    from bridge.transcribe import Transcriber
    from bridge.transcribe.note_classes import log_map_db, note_patches
    from export.note_classes import note_labels, track_notes

    cache.mkdir(parents=True, exist_ok=True)
    tr: Transcriber | None = None
    out, t0 = [], time.monotonic()
    for i, td in enumerate(tracks):
        path = cache / f"{td.parent.name}_{td.name}.npz"
        out.append(path)
        if path.exists():
            continue
        if tr is None:
            tr = Transcriber(song_context=None)  # the classifier's own evidence: what the song model refines
        mix, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        mono = mix.mean(axis=1)
        analysis = tr.analyse(mono, sr)
        notes = analysis.notes
        timbre = timbre_features(note_patches(log_map_db(mono, sr), notes)[0])
        labels = note_labels(notes, track_notes(td))[0]
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, notes=notes, sounding=analysis.sounding, onset=analysis.onset, timbre=timbre, labels=labels)
        tmp.replace(path)
        if (i + 1) % 20 == 0:
            log(f"[collect] {i + 1}/{len(tracks)} tracks ({time.monotonic() - t0:.0f} s)")
    return out


def load_song(path: Path) -> tuple[torch.Tensor, torch.Tensor] | None:
    """A cached track's features (n, N_FEATURES) and labels (n,) (the true class, -1 where not exactly one)."""
    from bridge.transcribe.song_context import song_features

    d = np.load(path)
    if len(d["notes"]) < 2:
        return None
    x = song_features(d["notes"], d["sounding"], d["onset"], d["timbre"])
    lab = d["labels"]
    y = np.where(lab.sum(axis=1) == 1, lab.argmax(axis=1), -1)
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))


def accuracy(net: SongNet, songs: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[float, float, int]:
    """(refined, the classifier's own) note accuracy over the notes of one true class, and their count."""
    hit = own = total = 0
    with torch.no_grad():
        for x, y in songs:
            m = y >= 0
            hit += int((net(x).argmax(1)[m] == y[m]).sum())
            own += int((x[:, :N_CLASSES].argmax(1)[m] == y[m]).sum())
            total += int(m.sum())
    return hit / max(total, 1), own / max(total, 1), total


def train(args: argparse.Namespace, log=print) -> SongNet:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tracks = [p for c in args.corpus for p in sorted(c.iterdir()) if (p / "mix.flac").is_file()]
    log(f"[song] {len(tracks)} training tracks")
    songs = [s for s in (load_song(p) for p in collect(tracks, args.cache, log)) if s is not None]
    valid = []
    for v in args.valid:
        vt = [p for p in sorted(v.iterdir()) if (p / "mix.flac").is_file()]
        valid += [s for s in (load_song(p) for p in collect(vt, args.cache / "valid", log)) if s is not None]
    net = SongNet(args.hidden)
    opt = torch.optim.Adam(net.parameters(), args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        for g in opt.param_groups:
            g["lr"] = args.lr * 0.5 * (1.0 + math.cos(math.pi * epoch / args.epochs))
        total, t0 = 0.0, time.monotonic()
        for i in rng.permutation(len(songs)):
            x, y = songs[i]
            keep = torch.from_numpy(rng.random(len(x)) > args.drop)
            if int((y[keep] >= 0).sum()) == 0:
                continue
            loss = nn.functional.cross_entropy(net(x[keep]), y[keep], ignore_index=-1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        line = f"[song] epoch {epoch + 1}/{args.epochs} loss {total / max(len(songs), 1):.4f}"
        if valid:
            acc, own, n = accuracy(net, valid)
            line += f" valid note accuracy {acc:.3f} (classifier alone {own:.3f}, {n} notes)"
        log(line + f" ({time.monotonic() - t0:.0f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out / "song.pt")
    return net


def export_onnx(nets: list[SongNet], path: Path, blend: float, card: dict | None = None) -> Path:
    """``nets`` (one, or several trained with other seeds: their probabilities averaged) as ONNX with its
    metadata under ``META_KEY``; checked against torch on random notes."""
    import onnx
    import onnxruntime as ort

    probs = _Probs(nets).eval()
    x = torch.randn(37, N_FEATURES)
    tmp = path.with_suffix(".tmp.onnx")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        probs,
        (x,),
        str(tmp),
        input_names=["features"],
        output_names=["probs"],
        dynamic_axes={"features": {0: "notes"}, "probs": {0: "notes"}},
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(tmp))
    meta = {"kind": "note_song", "version": VERSION, "classes": list(KNOWN_CLASSES), "n_features": N_FEATURES}
    meta["blend"] = float(blend)
    meta["members"] = len(nets)
    entry = model.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta)
    onnx.save(model, str(tmp))
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    for n in (2, 37, 300):
        xi = torch.randn(n, N_FEATURES)
        got = sess.run(["probs"], {"features": xi.numpy()})[0]
        with torch.no_grad():
            want = probs(xi).numpy()
        err = float(np.abs(got - want).max())
        if err > 1e-4:
            raise SystemExit(f"ONNX export differs from torch by {err:.2e} ({n} notes)")
    tmp.replace(path)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps({**meta, **card}, indent=1) + "\n")
    return path


def _member(checkpoint: Path) -> dict:
    """A member's card entry: its checkpoint, and its training command where the first line of the
    ``.train.log`` beside it gives one (``# python -m export.note_song ...``)."""
    log = checkpoint.with_suffix(".train.log")
    first = log.read_text().splitlines()[:1] if log.is_file() else []
    command = first[0][1:].strip() if first and first[0].startswith("#") else None
    return {"checkpoint": str(checkpoint), "command": command}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.note_song", description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, nargs="+", default=[], help="corpus folders (Track*/mix.flac)")
    ap.add_argument("--cache", type=Path, default=None, help="per-track analysis cache (made where missing)")
    ap.add_argument("--out", type=Path, default=None, help="folder for song.pt (weights only)")
    ap.add_argument("--valid", type=Path, nargs="*", default=[], help="rendered sets scored each epoch")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", type=int, default=96)
    ap.add_argument("--drop", type=float, default=0.2, help="share of a file's notes dropped per step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--blend",
        type=float,
        default=0.3,
        help="the song model's weight in the refined sounding (default 0.3, which suits one network; the shipped "
        "model, five networks averaged, uses 0.5)",
    )
    ap.add_argument("--export", type=Path, default=None, help="write the ONNX model (and its card) here")
    ap.add_argument(
        "--checkpoint",
        type=Path,
        nargs="+",
        default=None,
        help="export these song.pt instead of training (with --export; no --corpus, --cache or --out), several "
        "as one model averaging their probabilities; each one's training command is the first line of the "
        ".train.log beside it, where there is one",
    )
    args = ap.parse_args(argv)
    if args.checkpoint is None and not (args.corpus and args.cache and args.out):
        ap.error("training needs --corpus, --cache and --out")
    if args.checkpoint is not None and (args.export is None or len(set(args.checkpoint)) < len(args.checkpoint)):
        ap.error("--checkpoint needs --export and each checkpoint once")
    for c in [*args.corpus, *args.valid]:
        if not c.is_dir():
            print(f"note_song: error: {c}: no such corpus folder", file=sys.stderr)
            return 2
    if not 0.0 <= args.blend <= 1.0 or args.epochs < 1:
        print("note_song: error: --blend must be in [0, 1] and --epochs at least 1", file=sys.stderr)
        return 2
    command = "python -m export.note_song " + " ".join(sys.argv[1:] if argv is None else argv)
    nets = []
    if args.checkpoint is not None:  # export trained models without training again
        for ckpt in args.checkpoint:
            net = SongNet(args.hidden)
            net.load_state_dict(torch.load(ckpt, weights_only=True))
            nets.append(net.eval())
        training: dict = {"export_command": command, "members": [_member(c) for c in args.checkpoint]}
    else:
        print(f"# {command}", flush=True)  # a training log's first line: how it was made (``_member``)
        nets.append(train(args).eval())
        training = {"command": command, "corpus": [str(c) for c in args.corpus], "epochs": args.epochs}
    if args.export is not None:
        card = {
            "what": "per transcribed note, class probabilities from all the notes of its file (set attention over the "
            "note classifier's evidence, pitch, duration, velocity and a timbre summary)",
            "training": training,
        }
        export_onnx(nets, args.export, args.blend, card)
        print(f"[song] wrote {args.export}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
