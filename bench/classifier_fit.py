#!/usr/bin/env python3
"""Does a note classifier under- or overfit? Its class accuracy on its own training notes beside the
selection set's.

``stembridge train-notes`` caches the notes it trains on (``RUN/features.npz``) and the ones it scores
(``RUN/valid_features.npz``). For each checkpoint this prints, on each of the two: the note accuracy
(over notes of exactly one true class, how often the most probable class is that one, as the
training log's ``class_accuracy``), the part accuracy (each true part with at least
``--min-part-notes`` such notes takes the class of its notes' mean sounding logit) and the confusion
of the notes (rows true, columns chosen; bass, piano, guitar, strings, other). Training accuracy well
above the selection set's says the classifier learns its training timbres and misses the held-out
ones (more timbres help); the two close says the network itself is the limit (its capacity or input).
Training notes are a random subset of whole tracks (``--train-notes``), so their parts stay whole.
``--corpus`` (the corpora the features were built from, in the same order) adds the training notes'
and parts' accuracy per General MIDI family (program // 8) and per timbre source and class (which
source's strings does it miss, and as what), read from each track's metadata; these count only notes
of a part, so their totals fall short of the overall figure. Features built from a corpus the
checkpoint never trained on (``stembridge train-notes --features-only``) give the same figures on
songs it has not heard; a run trained with ``--train-sources`` still finds every source's notes in
its features.npz, the ones it never trained on included. ``--valid-tracks`` (the rendered folder the
valid features came from, with its true stems) splits the selection notes by dominance: the share of
the mix's energy at the note's harmonics (8 partials, +-1 bin, over its length) that its own class's
stems hold, so a note alone in its register reads about 1 and a note under louder neighbours near 0
(are the misses masked notes, or clear notes of a timbre the classifier does not know?), and by
their part's GM program (which instruments it misses, and as what).

    .venv/bin/python bench/classifier_fit.py --features runs/part4/features.npz \\
        --valid runs/part4/valid_features.npz --checkpoint runs/part4/last.pt [--pool] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from export.note_dominance import DOMINANCE_EDGES, note_dominance  # noqa: E402


def part_verdicts(logits: np.ndarray, feats: dict[str, np.ndarray], min_part_notes: int) -> list[tuple[int, int, int]]:
    """(track, part, 1 if right else 0) of every true part with ``min_part_notes`` or more notes of exactly
    one true class: right when the mean of those notes' ``logits`` (n, n_classes) picks the part's class."""
    y = feats["Y"][:, : logits.shape[1]]
    one = y.sum(axis=1) == 1
    key = feats["K"].astype(np.int64) * 100_000 + feats["Q"].astype(np.int64)
    out = []
    for k in np.unique(key[one & (feats["Q"] >= 0)]).tolist():
        m = one & (key == k)
        if m.sum() >= min_part_notes:
            right = int(logits[m].mean(axis=0).argmax() == np.bincount(y[m].argmax(axis=1)).argmax())
            out.append((*divmod(k, 100_000), right))
    return out


def accuracy(logits: np.ndarray, feats: dict[str, np.ndarray], min_part_notes: int) -> dict:
    """Note and part accuracy and the note confusion of sounding ``logits`` (n, n_classes) over ``feats``."""
    c = logits.shape[1]
    y = feats["Y"][:, :c]
    one = y.sum(axis=1) == 1
    true, chosen = y[one].argmax(axis=1), logits[one].argmax(axis=1)
    confusion = np.zeros((c, c), np.int64)
    np.add.at(confusion, (true, chosen), 1)
    right = [r for _, _, r in part_verdicts(logits, feats, min_part_notes)]
    return {
        "notes": int(one.sum()),
        "note_accuracy": round(float((true == chosen).mean()), 4) if one.any() else None,
        "parts": len(right),
        "part_accuracy": round(float(np.mean(right)), 4) if right else None,
        "confusion": confusion.tolist(),
    }


def group_accuracy(
    logits: np.ndarray, feats: dict[str, np.ndarray], tracks: list[Path], min_part_notes: int, by: str
) -> dict:
    """Accuracy of the notes and parts of ``feats`` grouped by their part's metadata: ``by`` "family" (the
    GM family of its program, Slakh's class names, ``export.data.gm.SLAKH_CLASSES``), "program" (its GM
    program's name) or "source" (its timbre source and true class, e.g. ``synth:strings``; ``legacy``
    for a soundfont-only corpus).
    Per group: parts (``part_verdicts``) and how many the mean logit classes right, the one-class notes
    and how many the arg-max classes right, and which class those notes were given (``chosen``, in
    CLASSES order). ``tracks``: the track folders ``feats["K"]`` indexes; ``logits`` (n, n_classes)."""
    from bridge.parts.score_parts import gm_program_name
    from export.data.gm import SLAKH_CLASSES
    from export.note_classes import CLASSES, stem_metadata

    c = logits.shape[1]
    stems: dict[int, list[dict]] = {}

    def label(t: int, j: int, cls: int) -> str:
        if t not in stems:
            stems[t] = stem_metadata(tracks[t])
        m = stems[t][j]
        if by == "family":
            return SLAKH_CLASSES[int(m.get("program_num", 0)) // 8]
        if by == "program":
            return gm_program_name(int(m["program_num"])) if "program_num" in m else "no program"
        return f"{m.get('timbre_source', 'legacy')}:{CLASSES[cls]}"

    y = feats["Y"][:, :c]
    one = (y.sum(axis=1) == 1) & (feats["Q"] >= 0)
    out: dict[str, dict] = {}
    for t, j, right in part_verdicts(logits, feats, min_part_notes):
        m = one & (feats["K"] == t) & (feats["Q"] == j)
        g = out.setdefault(label(t, j, int(np.bincount(y[m].argmax(axis=1)).argmax())), {})
        g["parts"] = g.get("parts", 0) + 1
        g["parts_right"] = g.get("parts_right", 0) + right
    notes: dict[str, np.ndarray] = {}
    for i in np.flatnonzero(one).tolist():
        name = label(int(feats["K"][i]), int(feats["Q"][i]), int(y[i].argmax()))
        notes.setdefault(name, np.zeros((2, c), np.int64))
        notes[name][0, logits[i].argmax()] += 1
        notes[name][1, 0] += int(logits[i].argmax() == y[i].argmax())
    rows = {}
    for name in sorted(set(out) | set(notes)):
        g, chosen = out.get(name, {}), notes.get(name, np.zeros((2, c), np.int64))
        n_notes = int(chosen[0].sum())
        rows[name] = {
            "parts": g.get("parts", 0),
            "part_accuracy": round(g["parts_right"] / g["parts"], 3) if g.get("parts") else None,
            "notes": n_notes,
            "note_accuracy": round(int(chosen[1, 0]) / n_notes, 3) if n_notes else None,
            "chosen": chosen[0].tolist(),
        }
    return rows


def accuracy_and_recall(logits: np.ndarray, feats: dict[str, np.ndarray], min_part_notes: int) -> dict:
    """``accuracy`` and each class's recall (the confusion's diagonal over its rows; None for a class
    without notes) as ``recall``."""
    r = accuracy(logits, feats, min_part_notes)
    c = np.asarray(r["confusion"], np.float64)
    r["recall"] = [round(float(c[i, i] / n), 3) if n else None for i, n in enumerate(c.sum(axis=1))]
    return r


def with_other_bias(logits: np.ndarray, bias: float, feats: dict[str, np.ndarray], min_part_notes: int) -> dict:
    """``accuracy_and_recall`` with ``bias`` added to the last (``other``) column of ``logits`` (n, n_classes)."""
    shifted = logits.copy()
    shifted[:, -1] += bias
    return accuracy_and_recall(shifted, feats, min_part_notes)


def whole_tracks(track: np.ndarray, max_notes: int, seed: int) -> np.ndarray:
    """Indices (sorted) of the notes of whole tracks (``track`` (n,), non-negative ids) drawn in a random
    order until ``max_notes`` notes (at least one track), so that their parts stay whole."""
    tracks = np.random.default_rng(seed).permutation(np.unique(track))
    counts = np.bincount(track.astype(np.int64))
    keep = tracks[: max(1, int(np.searchsorted(np.cumsum(counts[tracks]), max_notes)))]
    return np.flatnonzero(np.isin(track, keep))


def subset(feats: dict[str, np.ndarray], max_notes: int, seed: int) -> dict[str, np.ndarray]:
    """Whole tracks of ``feats`` in a random order until ``max_notes`` notes (``whole_tracks``)."""
    m = whole_tracks(feats["K"], max_notes, seed)
    return {k: feats[k][m] for k in ("P", "S", "Y", "Q", "K")}


def accuracy_by_dominance(logits: np.ndarray, feats: dict[str, np.ndarray], dominance: np.ndarray) -> list[dict]:
    """Note accuracy of ``logits`` (n, n_classes) per dominance bin (``DOMINANCE_EDGES``, the last bin
    open above: energy can add up to more than the mix's), overall and per true class."""
    y = feats["Y"][:, : logits.shape[1]]
    ok = np.isfinite(dominance)
    true, right = y.argmax(axis=1), logits.argmax(axis=1) == y.argmax(axis=1)
    edges = [*DOMINANCE_EDGES, np.inf]
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = ok & (dominance >= lo) & (dominance < hi)
        per = {}
        for c in range(logits.shape[1]):
            mc = m & (true == c)
            per[c] = [int(mc.sum()), round(float(right[mc].mean()), 4) if mc.any() else None]
        acc = round(float(right[m].mean()), 4) if m.any() else None
        out.append(
            {"from": lo, "to": None if hi == np.inf else hi, "notes": int(m.sum()), "accuracy": acc, "per_class": per}
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=Path, required=True, help="a run's features.npz (its training notes)")
    ap.add_argument("--valid", type=Path, required=True, help="a run's valid_features.npz (the selection set)")
    ap.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    ap.add_argument("--train-notes", type=int, default=50_000, help="training notes scored (whole tracks)")
    ap.add_argument("--min-part-notes", type=int, default=3)
    ap.add_argument("--pool", action="store_true", help="pool a part head's logits as its run did")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--corpus",
        type=Path,
        nargs="+",
        default=None,
        help="the features' corpora: accuracy per GM family and per timbre source",
    )
    ap.add_argument(
        "--other-bias",
        type=float,
        nargs="+",
        default=None,
        metavar="B",
        help="also score the selection notes with B added to the `other` logit (each B): where the run sits on "
        "the trade-off between `other` and the rest",
    )
    ap.add_argument(
        "--valid-tracks",
        type=Path,
        default=None,
        help="the rendered folder the valid features came from: the selection notes' accuracy by dominance "
        "and by their part's GM program",
    )
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for f in (args.features, args.valid, *args.checkpoint):
        if not f.is_file():
            print(f"classifier_fit: no such file: {f}", file=sys.stderr)
            return 2

    import torch

    from export.note_classes import CLASSES, load_classifier, pool_of, predict

    torch.set_num_threads(1)
    keys = []
    for f in (args.features, args.valid):
        with np.load(f) as d:
            keys.append(json.loads(str(d["key"])))
    if keys[0].get("decoding") != keys[1].get("decoding"):
        print(
            f"classifier_fit: the two sets' notes were decoded differently ({keys[0].get('decoding')} against "
            f"{keys[1].get('decoding')}): build the valid features with the training's decoding",
            file=sys.stderr,
        )
        return 2
    tracks = None
    if args.corpus is not None:
        from export.note_classes import _tracks

        tracks = [t for r in args.corpus for t in _tracks(r)]
        if [t.name if len(args.corpus) == 1 else f"{t.parent.name}/{t.name}" for t in tracks] != keys[0]["tracks"]:
            print("classifier_fit: --corpus does not hold the tracks the features were built from", file=sys.stderr)
            return 2
    with np.load(args.features) as d:
        train = subset({k: d[k] for k in ("P", "S", "Y", "Q", "K")}, args.train_notes, args.seed)
    with np.load(args.valid) as d:
        if args.valid_tracks is not None and "N" not in d.files:
            print(f"classifier_fit: {args.valid} has no note times (N) for --valid-tracks", file=sys.stderr)
            return 2
        valid = {k: d[k] for k in ("P", "S", "Y", "Q", "K", *(("N",) if args.valid_tracks else ()))}
    dominance = None
    if args.valid_tracks is not None:
        missing = [n for n in keys[1]["tracks"] if not (args.valid_tracks / n / "metadata.yaml").is_file()]
        if missing:
            print(f"classifier_fit: --valid-tracks has no track {missing[0]} of the valid features", file=sys.stderr)
            return 2
        dominance = note_dominance(valid, [args.valid_tracks / name for name in keys[1]["tracks"]])
    out = {}
    for ckpt in args.checkpoint:
        net = load_classifier([ckpt])
        pool = None
        if args.pool and net.part_dim:
            trained = torch.load(ckpt, weights_only=True).get("args", {})
            pool = pool_of(argparse.Namespace(pool_temperature=None, pool_weight=None), trained)
        row = {}
        for name, feats in (("train", train), ("valid", valid)):
            prob = np.clip(predict(net, feats, pool)[0][:, : len(CLASSES)].astype(np.float64), 1e-12, 1 - 1e-12)
            logits = np.log(prob) - np.log1p(-prob)
            row[name] = accuracy(logits, feats, args.min_part_notes)
            if name == "valid" and dominance is not None:
                row["valid_dominance"] = accuracy_by_dominance(logits, feats, dominance)
                valid_tracks = [args.valid_tracks / n for n in keys[1]["tracks"]]
                row["valid_program"] = group_accuracy(logits, feats, valid_tracks, args.min_part_notes, "program")
            if name == "valid" and args.other_bias:
                row["valid_other_bias"] = {
                    str(b): with_other_bias(logits, b, feats, args.min_part_notes) for b in args.other_bias
                }
            if name == "train" and tracks is not None:
                for by in ("family", "source"):
                    row[f"train_{by}"] = group_accuracy(logits, feats, tracks, args.min_part_notes, by)
            r = row[name]
            print(
                f"{ckpt} {name:5s} notes {r['notes']:6d} note accuracy {r['note_accuracy']} "
                f"parts {r['parts']:4d} part accuracy {r['part_accuracy']}",
                flush=True,
            )
        for by in ("train_family", "train_source", "valid_program"):
            for name, f in row.get(by, {}).items():
                print(
                    f"  {by.replace('_', ' ')} {name:22s} parts {f['parts']:4d} part accuracy {f['part_accuracy']} "
                    f"notes {f['notes']:6d} note accuracy {f['note_accuracy']} chosen {f['chosen']}"
                )
        for r in row.get("valid_dominance", []):
            per = " ".join(f"{CLASSES[c]} {a}({n})" for c, (n, a) in r["per_class"].items())
            upper = "up" if r["to"] is None else format(r["to"], ".2f")
            print(f"  valid, dominance {r['from']:.2f}-{upper}: notes {r['notes']:5d} accuracy {r['accuracy']} | {per}")
        for b, r in row.get("valid_other_bias", {}).items():
            print(f"  valid, other {float(b):+.2f}: recall {r['recall']} note accuracy {r['note_accuracy']}")
        out[str(ckpt)] = row
    if args.json is not None:
        args.json.write_text(json.dumps({"argv": sys.argv[1:], "classes": list(CLASSES), "results": out}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
