#!/usr/bin/env python3
"""Is the note classifier's limit the mix around each note, or the timbre classes themselves?

The classifier (``export/note_classes.py``) judges a note from a pitch-aligned patch of the mix and
fits its own training notes barely better than notes it never heard (BENCHMARKS stop 35). This probe
trains the same network (``NoteClassNet``, the same augmentation) from scratch, as a plain five-class
classifier (cross-entropy over the ``sounding`` logits), on the notes of a corpus that belong to
exactly one true part, once on their mix patches (``mix``) and once on **clean** patches: the same
note cut from its own part's stem, rendered alone (``clean``). ``--holdout`` of the tracks are left
out of both fits; every epoch scores, on the fitted and the held-out tracks, both kinds of patch, and
the selection notes (``--valid``, mix only: MuseScore General, no stems per part).

- ``clean`` held out high and ``mix`` held out low: the mix hides what the class sounds like; teach
  timbre on clean notes (a clean target beside the mix, or the mix's patch after separation).
- ``clean`` held out as low as ``mix``: the classes are not told apart by these patches even alone,
  across songs; the labels or the timbre sources (or the representation) are the limit, not the mix.

Clean patches are cached in ``OUT/clean_patches.npz`` as ``stembridge train-notes --clean-weight``
caches them (a run's cache serves the probe and back).

    taskset -c 0 .venv/bin/python bench/clean_probe.py --features runs/ftA/features.npz \\
        --valid runs/ftA/valid_features.npz --corpus corpus/harm15n --out runs/clean --train clean \\
        --json bench/results/clean_probe_clean.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.long_context_probe import split_tracks  # noqa: E402
from bridge.transcribe.note_classes import KNOWN_CLASSES, PATCH  # noqa: E402
from export.note_clean import cached_clean_patches  # noqa: E402

N_CLASSES = len(KNOWN_CLASSES)
_B = PATCH["bins_per_semitone"]
# partials 1-16 in the patch: ``bridge.logfreq`` centres a semitone on its middle bin (b * p + b // 2)
_OWN = np.round(_B * 12 * np.log2(np.arange(1, 17))).astype(int) + _B * PATCH["semitones_below"] + _B // 2
_LEAD_FRAMES = PATCH["n_fft"] // PATCH["hop"] - 1  # a frame holds n_fft samples: a note shows this early
_FRAME_S = PATCH["hop"] / PATCH["sample_rate"]


def unmasked(patches: np.ndarray, notes: np.ndarray, others: list[np.ndarray]) -> np.ndarray:
    """``patches`` (n, bins, frames) of ``notes`` (n, 4) with the bins that another transcribed note of the
    same file (``others[i]`` (m, 4): every note of note i's file) holds a partial of (16 partials, +-1 bin,
    from the first frame whose window reaches its onset to 2 frames after its end) and the note itself
    does not, set to the patch's floor: the note's view without the other notes' harmonics."""
    out = patches.copy()
    n_bins, n_t = patches.shape[1:]
    floor = PATCH["floor_db"] / 20.0
    own = np.zeros(n_bins, bool)
    for d in (-1, 0, 1):
        own[np.clip(_OWN + d, 0, n_bins - 1)] = True
    for i, (on, _off, pitch, _v) in enumerate(notes.tolist()):
        start = round(on / _FRAME_S) - PATCH["frames_before"]
        o = others[i]
        a = np.round(o[:, 0] / _FRAME_S).astype(int) - _LEAD_FRAMES - start
        b = np.round(o[:, 1] / _FRAME_S).astype(int) + 3 - start
        near = (b > 0) & (a < n_t) & ~((o[:, 0] == on) & (o[:, 2] == pitch))
        for a_j, b_j, p_j in zip(a[near].tolist(), b[near].tolist(), o[near, 2].tolist()):
            bins = (_OWN + _B * int(p_j - pitch))[:, None] + np.array([-1, 0, 1])
            bins = np.unique(bins[(bins >= 0) & (bins < n_bins)])
            bins = bins[~own[bins]]
            out[i, bins, max(a_j, 0) : min(b_j, n_t)] = floor
    return out


def file_notes(feats: dict[str, np.ndarray], rows: np.ndarray, all_notes: dict[int, np.ndarray]) -> list[np.ndarray]:
    """Every transcribed note of each row's file (``all_notes`` by track index ``K``)."""
    return [all_notes[int(k)] for k in feats["K"][rows].tolist()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, required=True, help="train-notes' features.npz of --corpus")
    ap.add_argument("--corpus", type=Path, required=True, help="the rendered corpus the features came from")
    ap.add_argument("--valid", type=Path, help="train-notes' valid_features.npz (selection set, mix only)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the clean-patch cache")
    ap.add_argument("--train", choices=("clean", "mix", "both"), required=True, help="which patches to fit")
    ap.add_argument(
        "--view",
        choices=("plain", "unmask"),
        default="plain",
        help="the mix patches as they are, or with the other transcribed notes' harmonics set to the floor "
        "(every note of the file decoded from --post-cache as the features were)",
    )
    ap.add_argument(
        "--post-cache", type=Path, help="train-notes' --post-cache (POST/<corpus>/<track>.npz), for --view unmask"
    )
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--holdout", type=float, default=0.2, help="share of the corpus tracks left out of the fit")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--save",
        type=Path,
        help="write the trained network here ({'model': state_dict, 'args': ...}, torch.load(weights_only=True))",
    )
    args = ap.parse_args(argv)
    if not 0 < args.holdout < 1:
        ap.error("--holdout must lie in (0, 1)")
    if args.view == "unmask" and args.post_cache is None:
        ap.error("--view unmask needs --post-cache (train-notes' basic-pitch cache, one folder per corpus)")

    import torch
    import torch.nn.functional as F

    from export.note_classes import NoteClassNet, _tracks, augment

    torch.set_num_threads(1)
    with np.load(args.features) as d:
        feats = {k: d[k] for k in ("P", "S", "Y", "Q", "N", "K")}
        features_key = json.loads(str(d["key"]))
    tracks = _tracks(args.corpus)
    if "tracks" in features_key and features_key["tracks"] != [t.name for t in tracks]:
        ap.error(
            f"{args.features} was not built from the tracks of {args.corpus} (one corpus, as train-notes lists it)"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows, clean, _ = cached_clean_patches(feats, tracks, args.out / "clean_patches.npz")
    print(f"[clean] {len(rows)} notes of one part, clean patches in {time.perf_counter() - t0:.0f} s", flush=True)
    label = feats["Y"][rows, :N_CLASSES].argmax(axis=1)
    mix = feats["P"][rows]
    scal = feats["S"][rows]
    if args.view == "unmask":
        from bridge.transcribe.basic_pitch import notes_of_posteriorgrams
        from export.note_classes import DECODING

        t0 = time.perf_counter()
        all_notes = {}
        decoding = dict(features_key.get("decoding", DECODING))  # as train-notes decoded the features
        for k in np.unique(feats["K"][rows]).tolist():
            with np.load(args.post_cache / tracks[k].parent.name / f"{tracks[k].name}.npz") as z:
                all_notes[k] = notes_of_posteriorgrams(
                    z["note"].astype(np.float32), z["onset"].astype(np.float32), decoding
                )
        mix = unmasked(mix, feats["N"][rows], file_notes(feats, rows, all_notes))
        print(f"[unmask] {len(rows)} corpus notes in {time.perf_counter() - t0:.0f} s", flush=True)
    fit, held = split_tracks(feats["K"][rows], args.holdout, np.random.default_rng(args.seed))
    if not len(held) or len(fit) * (2 if args.train == "both" else 1) < args.batch_size:
        ap.error(f"--holdout {args.holdout} leaves {len(fit)} notes to fit and {len(held)} held out: too few")
    valid = None
    if args.valid:
        with np.load(args.valid) as d:
            vy = d["Y"][:, :N_CLASSES]
            m = vy.sum(axis=1) == 1
            valid = (d["P"][m], d["S"][m], vy[m].argmax(axis=1))
            if args.view == "unmask":  # the selection's features hold every note of each file
                v_notes = {int(k): d["N"][d["K"] == k] for k in np.unique(d["K"]).tolist()}
                vrows = np.flatnonzero(m)
                valid = (unmasked(valid[0], d["N"][vrows], file_notes({"K": d["K"]}, vrows, v_notes)), *valid[1:])

    torch.manual_seed(args.seed)
    net = NoteClassNet()
    pool = {"clean": [clean], "mix": [mix], "both": [clean, mix]}[args.train]
    steps = len(fit) * len(pool) // args.batch_size
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.epochs * steps)
    gen = torch.Generator().manual_seed(args.seed)
    lab = torch.from_numpy(label)
    sc = torch.from_numpy(scal)

    def acc(patches: np.ndarray, scalars: np.ndarray, y: np.ndarray) -> dict:
        net.eval()
        with torch.no_grad():
            pred = np.concatenate(
                [
                    net(
                        torch.from_numpy(patches[i : i + 1024].astype(np.float32)),
                        torch.from_numpy(scalars[i : i + 1024]),
                    )[:, :N_CLASSES]
                    .argmax(1)
                    .numpy()
                    for i in range(0, len(y), 1024)
                ]
            )
        net.train()
        per = {c: round(float((pred[y == k] == k).mean()), 3) for k, c in enumerate(KNOWN_CLASSES) if (y == k).any()}
        return {"accuracy": round(float((pred == y).mean()), 4), "per_class": per}

    history = []
    for epoch in range(1, args.epochs + 1):
        t0, total = time.perf_counter(), 0.0
        perm = torch.randperm(len(fit) * len(pool), generator=gen)
        for s in range(steps):
            idx = perm[s * args.batch_size : (s + 1) * args.batch_size]
            src, note = idx // len(fit), fit[(idx % len(fit)).numpy()]
            batch = np.stack([pool[k][i] for k, i in zip(src.tolist(), note.tolist())]).astype(np.float32)
            y_hat = net(augment(torch.from_numpy(batch), gen), sc[note])
            loss = F.cross_entropy(y_hat[:, :N_CLASSES], lab[note])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        sub = np.random.default_rng(epoch).choice(fit, min(len(fit), 8000), replace=False)
        line = {
            "epoch": epoch,
            "loss": round(total / steps, 4),
            "minutes": round((time.perf_counter() - t0) / 60, 2),
            "fit_clean": acc(clean[sub], scal[sub], label[sub]),
            "fit_mix": acc(mix[sub], scal[sub], label[sub]),
            "held_clean": acc(clean[held], scal[held], label[held]),
            "held_mix": acc(mix[held], scal[held], label[held]),
        }
        if valid is not None:
            line["selection_mix"] = acc(*valid)
        history.append(line)
        print(json.dumps(line), flush=True)
    if args.save:
        torch.save({"model": net.state_dict(), "args": {k: str(v) for k, v in vars(args).items()}}, args.save)
    if args.json:
        report = {
            "argv": [str(a) for a in (argv if argv is not None else sys.argv[1:])],
            "notes": int(len(rows)),
            "fit_notes": int(len(fit)),
            "held_notes": int(len(held)),
            "held_tracks": int(len(np.unique(feats["K"][rows][held]))),
            "history": history,
        }
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
