#!/usr/bin/env python3
"""Can a second pass class the blind path's notes better from the stems the first pass made?

The blind path (``bridge.transcribe.Transcriber``) classes each transcribed note from its patch of the
mix, where other instruments hide about a quarter of what the class sounds like (BENCHMARKS stop 36:
a network trained on clean notes reads 0.78 held out, one trained on the mix 0.53). After the first
pass, the decomposition has put each note's energy in the stems of the classes it joined; a note
wrongly joined to piano still sounds like strings there. This bench runs the shipped blind path (without
the stems' re-masking, ``remask=None``, as BENCHMARKS stop 37 measured it, before that stage existed) on
each selection track, then cuts every transcribed note's patch from each of the five pitched stems
(``note_patches``, as the classifier's) and judges it with a network trained on clean notes
(``bench/clean_probe.py --train clean --save``), and also measures each stem's energy at the note's
first partials. ``--collect`` keeps per track: the notes, the classifier's ``sounding``, the probe's
logits per view (the mix, then each stem), the energies and the true labels; ``--report`` scores
rules that pick a class from these on the notes of exactly one true class (note accuracy, as
``clean_probe`` reports it):

- ``classifier``: the shipped classifier's most probable class (the first pass);
- ``probe_mix``: the probe on the mix patch;
- ``probe_assigned``: the probe on the stem of the classifier's class;
- ``probe_loudest``: the probe on the stem holding the most of the note's partials;
- ``probe_weighted``: the probe's probabilities averaged over the stems, weighted by their energy;
- ``joint:A``: the classifier's log-probabilities plus ``A`` times ``probe_weighted``'s;
- ``clf_*``: the same with the shipped classifier itself judging each stem (``clf_own``: class c as the
  classifier finds it on stem c);
- ``probe_true_stem`` / ``clf_true_stem`` (after ``--truth``): each note judged on its class's true stem,
  what a perfect separation would show (the ceiling of classing from stems).

    taskset -c 0 .venv/bin/python bench/stem_reclass.py --collect out/reclass --first 0 --count 24
    taskset -c 1 .venv/bin/python bench/stem_reclass.py --collect out/reclass --first 24 --count 24
    taskset -c 0 .venv/bin/python bench/stem_reclass.py --truth out/reclass --first 0 --count 48
    .venv/bin/python bench/stem_reclass.py --report out/reclass --json bench/results/stem_reclass.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bridge.transcribe.note_classes import KNOWN_CLASSES, PATCH  # noqa: E402

N_CLASSES = len(KNOWN_CLASSES)
PROBE = Path(__file__).resolve().parent.parent / "models_onnx" / "checkpoints" / "note-clean-probe.pt"
N_PARTIALS = 8
ENERGY_FRAMES = 28  # at most this many frames from the onset (0.33 s), as far as the note lasts


def partial_energy(log_map: np.ndarray, notes: np.ndarray) -> np.ndarray:
    """(n,) linear power summed over each note's first ``N_PARTIALS`` partial bins of ``log_map``
    (n_frames, n_log) dB (``log_map_db``) from its onset frame to its end (at most ``ENERGY_FRAMES``)."""
    b, lo, hop, sr = PATCH["bins_per_semitone"], PATCH["midi_low"], PATCH["hop"], PATCH["sample_rate"]
    offs = np.round(b * 12 * np.log2(np.arange(1, N_PARTIALS + 1))).astype(int) + b // 2
    power = 10.0 ** (log_map / 10.0)
    out = np.zeros(len(notes))
    for i, (on, off, pitch, _v) in enumerate(np.asarray(notes, np.float64).reshape(-1, 4).tolist()):
        f0 = int(round(on * sr / hop))
        f1 = min(f0 + ENERGY_FRAMES, int(round(off * sr / hop)) + 1, len(power))
        bins = b * (int(pitch) - lo) + offs
        bins = bins[(bins >= 0) & (bins < power.shape[1])]
        if f1 > f0 >= 0 and len(bins):
            out[i] = power[f0:f1][:, bins].sum()
    return out


def probe_logits(net, patches: np.ndarray, scalars: np.ndarray) -> np.ndarray:
    """(n, N_CLASSES) the probe's class logits of ``patches`` (n, bins, frames)."""
    import torch

    with torch.no_grad():
        out = [
            net(torch.from_numpy(patches[i : i + 512]), torch.from_numpy(scalars[i : i + 512]))[:, :N_CLASSES].numpy()
            for i in range(0, len(patches), 512)
        ]
    return np.concatenate(out) if out else np.zeros((0, N_CLASSES), np.float32)


def collect(tracks: list[Path], out: Path, probe: Path) -> None:
    import soundfile as sf
    import torch

    from bench.quality import _read_mono
    from bridge.backends.offline import separate_file
    from bridge.engine import Processor
    from bridge.transcribe import Transcriber
    from bridge.transcribe.note_classes import log_map_db, note_patches
    from export.note_classes import load_classifier, note_labels, track_notes

    torch.set_num_threads(1)
    net = load_classifier([probe])  # the probe is a NoteClassNet checkpoint
    proc = Processor(None)

    class Recording(Transcriber):  # the first pass, keeping the notes and the classifier's judgement
        seen: tuple[np.ndarray, np.ndarray] | None = None

        def membership(self, notes: np.ndarray, sounding: np.ndarray, member_share=None) -> np.ndarray:
            self.seen = (notes.copy(), sounding.copy())
            return super().membership(notes, sounding, member_share)

    tr = Recording(remask=None, shares=None)  # the first pass as stop 37 measured it
    out.mkdir(parents=True, exist_ok=True)
    stems_dir = out / "stems"  # the first pass's stems, kept for other rules
    for td in tracks:
        tr.seen = None
        res = separate_file(proc, td / "mix.flac", stems_dir / td.name, fmt="flac", transcriber=tr)
        assert tr.seen is not None
        notes, sounding = tr.seen
        mix, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        n = len(mix)
        by = {p.stem: p for p in res.stem_paths}
        views = [mix.mean(axis=1)] + [_read_mono(by[c], n).astype(np.float32) for c in KNOWN_CLASSES]
        logits, energy, judged = [], [], [sounding]
        for k, audio in enumerate(views):
            lm = log_map_db(audio, sr)
            patches, scalars = note_patches(lm, notes)
            logits.append(probe_logits(net, patches, scalars))
            if k:
                energy.append(partial_energy(lm, notes))
                judged.append(tr.classifier.predict(audio, sr, notes)[0])
        labels = note_labels(notes, track_notes(td))[0]
        np.savez(
            out / f"{td.name}.npz",
            notes=notes,
            sounding=sounding,
            logits=np.stack(logits),
            energy=np.stack(energy, axis=1),
            judged=np.stack(judged),
            labels=labels,
        )
        print(f"  {td.name}: {len(notes)} notes", flush=True)


def add_truth(tracks: list[Path], out: Path, probe: Path) -> None:
    """Add to each collected track of ``out`` the probe's logits (``true_logits``) and the classifier's
    ``sounding`` (``true_judged``), each (n, 5), of every note of one true class judged on that class's true
    stem (the rendered stems, summed per class: the view a perfect separation would give; NaN for the
    other notes): the ceiling of classing from stems."""
    import torch

    from bridge.transcribe.note_classes import NOTE_CLASSES_FILE, NoteClassifier, log_map_db, note_patches
    from export.data.slakh import load_track
    from export.note_classes import load_classifier

    torch.set_num_threads(1)
    net, clf = load_classifier([probe]), NoteClassifier(NOTE_CLASSES_FILE)
    for td in tracks:
        path = out / f"{td.name}.npz"
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        truth = load_track(td, stems=("drums", "bass", "piano", "guitar", "strings"))
        views = [*truth["stems"][1:], truth["other"]]  # in KNOWN_CLASSES order
        one = d["labels"].sum(axis=1) == 1
        y = d["labels"].argmax(axis=1)
        d["true_logits"] = np.full((len(y), N_CLASSES), np.nan, np.float32)
        d["true_judged"] = np.full((len(y), N_CLASSES), np.nan, np.float32)
        for k in range(N_CLASSES):
            m = one & (y == k)
            if m.any():
                patches, scalars = note_patches(log_map_db(views[k], truth["sample_rate"]), d["notes"][m])
                d["true_logits"][m] = probe_logits(net, patches, scalars)
                d["true_judged"][m] = clf.predict(views[k], truth["sample_rate"], d["notes"][m])[0]
        np.savez(path, **d)
        print(f"  {td.name}: true stems", flush=True)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def rules(d: dict[str, np.ndarray], alphas: tuple[float, ...] = (0.5, 1.0, 2.0)) -> dict[str, np.ndarray]:
    """Each rule's class (n,) of the collected notes ``d`` (see the module docstring)."""
    s, lg, en = d["sounding"], d["logits"], d["energy"]
    n = len(s)
    first = s.argmax(axis=1)
    stems = _softmax(lg[1:])  # (5 stems, n, 5 classes)
    share = en / np.maximum(en.sum(axis=1, keepdims=True), 1e-20)  # (n, 5 stems)
    weighted = np.einsum("sn,snc->nc", share.T, stems)
    out = {
        "classifier": first,
        "probe_mix": lg[0].argmax(axis=1),
        "probe_assigned": stems[first, np.arange(n)].argmax(axis=1),
        "probe_loudest": stems[en.argmax(axis=1), np.arange(n)].argmax(axis=1),
        "probe_weighted": weighted.argmax(axis=1),
        "loudest_stem": en.argmax(axis=1),
    }
    ls = np.log(np.clip(s, 1e-6, 1.0))
    for a in alphas:
        out[f"joint:{a:g}"] = (ls + a * np.log(np.clip(weighted, 1e-6, 1.0))).argmax(axis=1)
    if "judged" in d:  # the classifier itself on each stem
        j = d["judged"][1:]  # (5 stems, n, 5 classes)
        out["clf_assigned"] = j[first, np.arange(n)].argmax(axis=1)
        out["clf_loudest"] = j[en.argmax(axis=1), np.arange(n)].argmax(axis=1)
        jw = np.einsum("sn,snc->nc", share.T, j)
        out["clf_weighted"] = jw.argmax(axis=1)
        out["clf_own"] = j[np.arange(N_CLASSES), :, np.arange(N_CLASSES)].T.argmax(axis=1)  # class c judged on stem c
        for a in alphas:
            out[f"clf_joint:{a:g}"] = (ls + a * np.log(np.clip(jw, 1e-6, 1.0))).argmax(axis=1)
    if "true_logits" in d:  # the ceiling: each note judged on its own class's true stem (-1 where none)
        for name, key in (("probe_true_stem", "true_logits"), ("clf_true_stem", "true_judged")):
            v = d[key]
            out[name] = np.where(np.isnan(v).any(axis=1), -1, np.nan_to_num(v, nan=-np.inf).argmax(axis=1))
    return out


def report(folder: Path) -> dict:
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise SystemExit(f"error: no collected tracks in {folder}")
    hits: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}  # per rule: (right, true class) per file
    n_notes = 0
    for f in files:
        with np.load(f) as z:
            d = {k: z[k] for k in z.files}
        one = d["labels"].sum(axis=1) == 1
        y = d["labels"].argmax(axis=1)[one]
        n_notes += len(y)
        for name, pred in rules(d).items():
            hits.setdefault(name, []).append((pred[one] == y, y))
    doc: dict = {"tracks": len(files), "notes": n_notes, "rules": {}}
    for name, pairs in hits.items():
        if len(pairs) < len(files):  # --truth not run on every collected track: left out
            print(f"{name:>16} on {len(pairs)} of {len(files)} tracks only: left out")
            continue
        h, y = np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])
        per = {c: round(float(h[y == k].mean()), 3) for k, c in enumerate(KNOWN_CLASSES) if (y == k).any()}
        doc["rules"][name] = {"accuracy": round(float(h.mean()), 4), "per_class": per}
        print(f"{name:>16} {h.mean():.4f}  " + " ".join(f"{c} {v:.3f}" for c, v in per.items()))
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--probe", type=Path, default=PROBE, help="clean_probe.py --save's network")
    ap.add_argument("--collect", type=Path, help="run the first pass and keep each track's figures here")
    ap.add_argument("--truth", type=Path, help="add the true class stems' views to the tracks collected here")
    ap.add_argument("--report", type=Path, help="score the rules on the tracks collected here")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if sum(x is not None for x in (args.collect, args.truth, args.report)) != 1:
        ap.error("give one of --collect, --truth or --report")
    from bench.transcribe_select import track_folders

    if args.collect is not None:
        collect(track_folders(args.tracks, args.first, args.count), args.collect, args.probe)
        return 0
    if args.truth is not None:
        add_truth(track_folders(args.tracks, args.first, args.count), args.truth, args.probe)
        return 0
    doc = report(args.report)
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
