#!/usr/bin/env python3
"""Choose the transcribe-then-separate settings (``bridge.transcribe.Transcriber``) on the selection set.

Each variant is ``key=value,...`` with keys ``share`` (member_share), ``sound`` (sounding
threshold; default the classifier's), ``soundc`` (per-class sounding thresholds over that,
``strings:0.15+other:0.1``), ``clf`` (another classifier file), ``model`` (stems from the
network, ``+``-joined), ``blind`` (of those, stems from a run without the score), ``net`` (1: the
network conditioned on the transcription, 0: not), ``nshare`` (the network's share in stems from
the parts, ``bass:0.25+strings:0.1``; ``nshare=`` for none; default the shipped one), ``fuse`` (the
network's exponent per stem fused by magnitude, ``bridge.parts.fusion``, same syntax), ``remask``
(the finished stems re-masked from their sum, ``bridge.parts.fusion.StemRemask``: the mask power per
stem, same syntax, 1 where not named, so ``remask=`` re-masks with every power 1; ``none``: not
re-masked; default the shipped one), ``shares`` (membership shares separated side by side and averaged,
``0.05+0.3+1``, ``bridge.parts.share_ensemble``; default none: ``share`` alone, as every variant before stop 41
measured it), ``soft`` (the network conditioned on the transcription with its
masks softened: ``1`` the live bridge's powers, ``bridge.remasked``, or ``bass:0.3+...``), ``oracle``
(a diagnostic, not a setting: ``classes``: each transcribed note joins the parts of the classes
that truly sound at its pitch, a note with none (a ghost) the classifier's; ``ghosts``: the
classifier's parts, ghosts dropped; ``all``: both; ``notes``: the true pitched notes (all parts
together, one note per onset and pitch) in place of basic-pitch's, classed by the classifier;
``notes+classes``: those notes in the parts of their true classes; ``split``, alone or joined to
another (``split+classes``): each class's part split into one part per true part of its notes,
the notes of no single part one more (the ceiling of telling a class's instruments apart);
``parts``: each note of one true part takes the part's mean sounding logit, the ceiling of pooling a
file's notes by part; labels as
``stembridge train-notes`` makes them, ``export.note_classes.note_labels``), ``ofrac`` (with
``oracle=classes|all``: the true classes for that fraction of the real notes only, drawn at random
per track with seed ``oseed`` (default 0), the classifier's for the rest: how the stems grow with
the share of notes classed right), ``oclass`` (with ``oracle=classes|all``: the true classes only for
the notes one of these classes truly plays, ``strings+other``: what classing those right is
worth), ``cshift`` (N: each note's class probabilities averaged over the classifier's runs on N
shifted frame grids; the notes written stay the unshifted run's), ``pshift`` (N: basic-pitch's posteriorgrams
averaged over N shifted frame grids, then decoded), ``excl`` (``bass:0.8+guitar:0.9``: a note whose
most probable class is one of these, with at
least that probability, joins that class's part alone), ``song`` (0: each note's class evidence the classifier's
alone, without ``bridge.transcribe.song_context``, as every variant before stop 43 measured it; 1 or absent: the
shipped model; a path: that song model), ``anchor`` (0: the analysis frames counted from each file's first sample,
as every variant before stop 46 measured it; absent: as shipped, ``bridge.transcribe.ANCHOR`` / ``ANCHOR_PHASE``;
1: anchored to the file's strongest onset, ``bridge.transcribe.anchor``, the onset on a frame boundary; a number
in (0, 1): the onset that share of a frame after a boundary); the network alone is always the first row
(``pgrids`` / ``cgrids``, averaging basic-pitch's posteriorgrams / the notes' class evidence over N frame grids,
ran at stop 46 with the code of ``bench/results/grids_stop46.diff``).
Tracks are a rendered held-out folder (``bench/quality.py`` renders and caches them). Prints the
median SI-SDRi per stem over the tracks, the pooled overall median and the mean onset F1 of
``notes.mid``; ``--json`` keeps every per-track figure (merge halves run on two cores with
``--merge``).

    .venv/bin/python bench/transcribe_select.py --tracks out/heldout/s9002_20s --first 0 --count 12 \\
        --variant 'share=0.3,model=drums+piano+guitar+strings,blind=drums,net=1' --json out/sel_a.json
    .venv/bin/python bench/transcribe_select.py --merge out/sel_a.json out/sel_b.json
    .venv/bin/python bench/transcribe_select.py --merge base_a.json base_b.json new_a.json new_b.json \\
        --paired share=0.3   # each other row's mean per-track change against that row, tracks up / down
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

STEMS = ("drums", "bass", "piano", "guitar", "strings")


def _oracle_transcriber(
    mode: str, fraction: float = 1.0, seed: int | None = None, only: tuple[str, ...] = (), **kwargs
):
    """A ``Transcriber`` whose part membership uses the true notes of ``track_dir`` (set per track);
    ``fraction`` < 1: only that share of the real notes, drawn with ``seed`` (default 0; the same
    draw on every track: its i-th note gets the same number); ``only``: only the notes that one of
    these classes truly plays."""
    from bridge.transcribe import Transcriber
    from export.note_classes import CLASSES, note_labels, note_parts, track_notes

    words = mode.split("+")
    true_notes, split = "notes" in words, "split" in words
    rest = [w for w in words if w not in ("notes", "split")]
    if len(rest) > 1 or (rest and rest[0] not in ("classes", "ghosts", "all", "parts")) or not words[0]:
        raise SystemExit(f"oracle must be classes, ghosts, all or parts, with notes+ or split+ or both, got {mode!r}")
    given = mode
    mode = rest[0] if rest else ""
    if not 0.0 <= fraction <= 1.0 or ((fraction < 1.0 or only or seed is not None) and mode not in ("classes", "all")):
        raise SystemExit(
            f"ofrac must be in [0, 1]; ofrac, oseed and oclass go with oracle=classes or all, "
            f"got oracle={given}, ofrac={fraction}"
        )
    seed = 0 if seed is None else seed
    if set(only) - set(CLASSES):
        raise SystemExit(f"oclass: classes are {', '.join(CLASSES)}, got {', '.join(only)}")
    chosen = np.isin(CLASSES, only) if only else np.ones(len(CLASSES), bool)

    class TrueNotes:  # in place of basic-pitch: the track's pitched notes, a note of two parts once
        def __init__(self, owner: OracleTranscriber) -> None:
            self.owner = owner

        def transcribe(self, audio: np.ndarray, sample_rate: int, decoding=None) -> np.ndarray:
            true = track_notes(self.owner.track_dir)[:, :4]
            at = np.round(true[:, [0, 2]], 3)  # one note per onset (to the ms) and pitch ...
            order = np.lexsort((-true[:, 1], at[:, 1], at[:, 0]))  # ... the longest of a repeat first
            true, at = true[order], at[order]
            _, first = np.unique(at, axis=0, return_index=True)
            kept = true[first]
            return kept[np.lexsort((kept[:, 2], kept[:, 0]))]  # by onset, then pitch, as basic-pitch gives them

    class OracleTranscriber(Transcriber):
        track_dir: Path | None = None

        def __init__(self, **kw) -> None:
            super().__init__(**kw)
            if true_notes:
                self.pitch = TrueNotes(self)

        def transcribe(self, audio: np.ndarray, sample_rate: int):
            out = super().transcribe(audio, sample_rate)
            if split:  # each class part as one part per true part of its notes (ghosts and unisons one more)
                true = track_notes(self.track_dir, with_part=True)
                parts = []
                for p in out.parts:
                    q = note_parts(p.notes, true)
                    for j in np.unique(q).tolist():
                        parts.append(replace(p, name=f"{p.name}{j}", notes=p.notes[q == j]))
                out = replace(out, parts=parts)
            return out

        def membership(self, notes: np.ndarray, sounding: np.ndarray, member_share=None) -> np.ndarray:
            if not mode:  # the classifier's classes
                return super().membership(notes, sounding, member_share)
            if mode == "parts":  # each note of one true part takes the part's mean sounding logit
                part = note_parts(notes, track_notes(self.track_dir, with_part=True))
                p = np.clip(sounding.astype(np.float64), 1e-6, 1 - 1e-6)
                logit = np.log(p / (1 - p))
                for q in np.unique(part[part >= 0]).tolist():
                    logit[part == q] = logit[part == q].mean(axis=0)
                return super().membership(notes, (1 / (1 + np.exp(-logit))).astype(np.float32), member_share)
            member = super().membership(notes, sounding, member_share)
            truth = note_labels(notes, track_notes(self.track_dir))[0].astype(bool)
            real = truth.any(axis=1, keepdims=True)
            if mode in ("classes", "all"):
                told = real & (np.random.default_rng(seed).random((len(notes), 1)) < fraction)
                told &= truth[:, chosen].any(axis=1, keepdims=True)
                member = np.where(told, truth, member)
            if mode in ("ghosts", "all"):
                member = member & real
            return member

    return OracleTranscriber(**kwargs)


def transcriber_of(spec: str):
    from bridge.transcribe import (
        ANCHOR,
        ANCHOR_PHASE,
        SONG_CONTEXT,
        TRANSCRIBED_NETWORK_SHARE,
        TRANSCRIBED_REMASK,
        Transcriber,
    )

    kv = dict(item.split("=", 1) for item in spec.split(","))
    if ("ofrac" in kv or "oseed" in kv or "oclass" in kv) and "oracle" not in kv:
        raise SystemExit("ofrac, oseed and oclass go with oracle=classes or all")
    if "shares" in kv and "oracle" in kv:  # the oracles change the transcription of one share
        raise SystemExit("shares is a setting, oracle a diagnostic of one share: one or the other")
    if "excl" in kv and "oracle" in kv:
        raise SystemExit("excl is a setting, oracle a diagnostic: one or the other")
    make = (
        Transcriber
        if "oracle" not in kv
        else lambda **kw: _oracle_transcriber(
            kv["oracle"],
            float(kv.get("ofrac", 1.0)),
            int(kv["oseed"]) if "oseed" in kv else None,
            tuple(_names(kv.get("oclass", ""))),
            **kw,
        )
    )
    tr = make(
        member_share=float(kv.get("share", 0.3)),
        sounding_threshold=float(kv["sound"]) if "sound" in kv else None,
        classifier_path=Path(kv["clf"]) if "clf" in kv else None,
        model_stems=tuple(x for x in kv.get("model", "drums").split("+") if x),
        blind_stems=tuple(x for x in kv.get("blind", "drums").split("+") if x),
        condition_network=kv.get("net", "1") == "1",
        network_share=_per_stem(kv["nshare"]) if "nshare" in kv else TRANSCRIBED_NETWORK_SHARE,
        fusion=_per_stem(kv["fuse"]) if "fuse" in kv else None,
        remask=_remask(kv["remask"]) if "remask" in kv else TRANSCRIBED_REMASK,
        shares=tuple(float(x) for x in kv["shares"].split("+")) if "shares" in kv else None,  # None: `share` alone
        song_context=None
        if kv.get("song") == "0"
        else Path(kv["song"])
        if kv.get("song", "1") != "1"
        else SONG_CONTEXT,
        anchor=ANCHOR if "anchor" not in kv else kv["anchor"] != "0",
        anchor_phase=ANCHOR_PHASE if "anchor" not in kv else 0.0 if kv["anchor"] in ("0", "1") else float(kv["anchor"]),
    )
    if "soundc" in kv:  # per-class sounding thresholds: a note joins a class's part from its own
        per_class = _per_stem(kv["soundc"])
        if set(per_class) - set(tr.classifier.classes):
            raise SystemExit(f"soundc: classes are {', '.join(tr.classifier.classes)}, got {', '.join(per_class)}")
        thr = np.array([per_class.get(c, tr.sounding_threshold) for c in tr.classifier.classes])
        base = tr.membership
        tr.membership = lambda notes, sounding, share=None: base(notes, sounding, share) & (sounding >= thr[None, :])
    if int(kv.get("cshift", 1)) > 1:
        _class_shifts(tr, int(kv["cshift"]))
    if int(kv.get("pshift", 1)) > 1:
        _pitch_shifts(tr, int(kv["pshift"]))
    if "excl" in kv:  # a note whose most probable class is one of these, at least this sure, joins it alone
        sure = _per_stem(kv["excl"])
        if set(sure) - set(tr.classifier.classes):
            raise SystemExit(f"excl: classes are {', '.join(tr.classifier.classes)}, got {', '.join(sure)}")
        floor = np.array([sure.get(c, np.inf) for c in tr.classifier.classes])
        joined = tr.membership

        def exclusive(notes: np.ndarray, sounding: np.ndarray, share=None) -> np.ndarray:
            member = joined(notes, sounding, share)
            best = sounding.argmax(axis=1)
            alone = sounding[np.arange(len(best)), best] >= floor[best]
            member[alone] = np.eye(sounding.shape[1], dtype=bool)[best[alone]]
            return member

        tr.membership = exclusive
    return tr


def _class_shifts(tr, n_shifts: int) -> None:
    """``tr``'s classifier with its sounding probabilities averaged over its runs on ``n_shifts`` frame grids
    (the audio and the notes delayed by k / n_shifts of its hop); onsets and shifts stay the undelayed run's."""
    from bridge.transcribe.note_classes import PATCH

    plain = tr.classifier.predict

    def predict(audio: np.ndarray, sample_rate: int, notes: np.ndarray, patches=None):
        sounding, onset, shift_s = plain(audio, sample_rate, notes, patches=patches)
        span = max(1, round(PATCH["hop"] * sample_rate / PATCH["sample_rate"]))
        total = sounding.astype(np.float64)
        for k in range(1, n_shifts):
            d = k * span // n_shifts
            moved = np.asarray(notes, np.float64).reshape(-1, 4).copy()
            moved[:, :2] += d / sample_rate
            total += plain(np.concatenate([np.zeros(d, audio.dtype), audio]), sample_rate, moved)[0]
        return (total / n_shifts).astype(np.float32), onset, shift_s

    tr.classifier.predict = predict


def _pitch_shifts(tr, n_shifts: int) -> None:
    """``tr``'s basic-pitch with its posteriorgrams averaged over its runs on ``n_shifts`` frame grids (the audio
    delayed by k / n_shifts of a frame, each run read back at the undelayed frame times by linear
    interpolation), then decoded once."""
    from bridge.transcribe import basic_pitch as bp

    plain = tr.pitch.posteriorgrams

    def posteriorgrams(audio: np.ndarray, sample_rate: int):
        note, onset = plain(audio, sample_rate)
        span = bp.HOP * sample_rate / bp.SAMPLE_RATE
        total_n, total_o = note.astype(np.float64), onset.astype(np.float64)
        for k in range(1, n_shifts):
            d = round(k * span / n_shifts)
            n_k, o_k = plain(np.concatenate([np.zeros(d, audio.dtype), audio]), sample_rate)
            at = np.arange(len(note)) + d / span  # the undelayed frames' times in the delayed run's frames
            j = np.clip(np.floor(at).astype(int), 0, len(n_k) - 2)
            w = np.clip(at - j, 0.0, 1.0)[:, None]
            total_n += (1 - w) * n_k[j] + w * n_k[j + 1]
            total_o += (1 - w) * o_k[j] + w * o_k[j + 1]
        return (total_n / n_shifts).astype(np.float32), (total_o / n_shifts).astype(np.float32)

    tr.pitch.posteriorgrams = posteriorgrams


def network_of(spec: str, plain):
    """The network ``Processor`` a variant runs: ``plain``, or with ``soft=1`` a new one on the same session
    with its masks softened (``bridge.remasked.soften``; ``soft=bass:0.3+...``: these powers, 1 where not
    named)."""
    from bridge.engine import Processor
    from bridge.remasked import mask_powers_for, soften

    kv = dict(item.split("=", 1) for item in spec.split(",") if "=" in item)
    if "soft" not in kv:
        return plain
    network = Processor(plain.model)
    if kv["soft"] == "1":
        return soften(network)
    network.set_mask_powers(mask_powers_for(network.stems, _per_stem(kv["soft"])))
    return network


def _remask(text: str) -> dict[str, float] | None:
    """``none`` -> None (no re-masking); else the mask power per stem (``_per_stem``; 1 where not named)."""
    return None if text == "none" else _per_stem(text)


def _names(text: str) -> list[str]:
    """``strings+other`` -> ["strings", "other"] (empty text: none)."""
    return [x for x in text.split("+") if x]


def _per_stem(text: str) -> dict[str, float]:
    """``bass:0.25+strings:0.1`` -> {stem: value} (empty text: none)."""
    return {k: float(v) for k, v in (x.split(":") for x in text.split("+") if x)}


def mix_and_refs(td: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """Track ``td``'s truth (``load_track``), its mono mix (n,) and the true stems (6, n), ``other`` last."""
    import soundfile as sf

    from export.data.slakh import load_track

    truth = load_track(td, stems=STEMS)
    mix, _ = sf.read(str(td / "mix.flac"), dtype="float64", always_2d=True)
    mix = mix.mean(axis=1)
    n = len(mix)
    refs = np.concatenate([truth["stems"], truth["other"][None]])
    return truth, mix, np.pad(refs, ((0, 0), (0, max(0, n - refs.shape[1]))))[:, :n]


def run(tracks: list[Path], variants: list[str], model: Path | None = None) -> dict:
    """Each variant's figures per track (``model``: another network than the shipped one; its rows are named
    ``VARIANT @ MODEL``, so that they merge beside the shipped model's)."""
    from bench.metrics import onset_f1
    from bench.quality import _read_mono, _sep_scores
    from bridge.backends.offline import separate_file
    from bridge.engine import Processor
    from bridge.score import read_score_file

    proc = Processor(None if model is None else str(model))
    names = (*STEMS, "other")
    tag = "" if model is None else f" @ {model}"
    rows = [("network" + tag, None), *((v + tag, transcriber_of(v)) for v in variants)]
    procs = {name: network_of(spec, proc) for (name, _), spec in zip(rows, ["network", *variants])}
    out: dict = {"sep": {}, "f1": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for td in tracks:
            truth, mix, refs = mix_and_refs(td)
            n = len(mix)
            for name, tr in rows:
                if hasattr(tr, "track_dir"):
                    tr.track_dir = td
                res = separate_file(procs[name], td / "mix.flac", Path(tmp) / "o", transcriber=tr)
                by = {p.stem: p for p in res.stem_paths}
                est = np.stack([_read_mono(by[s], n) for s in names])
                out["sep"].setdefault(name, {})[td.name] = _sep_scores(est, mix, refs, names)
                notes = read_score_file(res.notes_path, STEMS)
                for k, s in enumerate(STEMS):
                    if len(truth["notes"][k]):
                        f1 = onset_f1(truth["notes"][k], notes[k], drums=s == "drums")[2]
                        out["f1"].setdefault(name, {}).setdefault(s, []).append(f1)
            print(f"  {td.name} done", flush=True)
    return out


def track_folders(root: Path, first: int, count: int) -> list[Path]:
    """The rendered track folders of ``root`` (those with ``metadata.yaml``), sorted, ``count`` from ``first``."""
    tracks = sorted(p for p in root.iterdir() if (p / "metadata.yaml").is_file())
    return tracks[first : first + count]


def save_json(doc: dict, path: Path | None) -> None:
    """Write ``doc`` to ``path`` (its folder made), if given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))


def merge(docs: list[dict]) -> dict:
    out: dict = {"sep": {}, "f1": {}}
    for d in docs:
        for name, per in d["sep"].items():
            out["sep"].setdefault(name, {}).update(per)
        for name, per in d["f1"].items():
            for s, vals in per.items():
                out["f1"].setdefault(name, {}).setdefault(s, []).extend(vals)
    return out


def paired(per: dict, base: dict) -> dict[str, tuple[float, int, int]]:
    """Per stem: (mean SI-SDRi difference, tracks up, tracks down) over the tracks both rows have."""
    out = {}
    for s in (*STEMS, "other"):
        both = [t for t in per if s in per[t] and s in base.get(t, {})]
        diff = np.array([per[t][s]["si_sdri"] - base[t][s]["si_sdri"] for t in both])
        if len(diff):
            out[s] = (float(diff.mean()), int((diff > 0).sum()), int((diff < 0).sum()))
    return out


def programs_of(track_dir: Path, stem: str) -> str:
    """The General MIDI program names of ``stem``'s parts in ``track_dir/metadata.yaml``, sorted and joined by
    `` + `` ("" when the track has no such part)."""
    from bench.soundfont_overlap import parts_of

    return " + ".join(sorted({str(p.get("midi_program_name")) for p in parts_of(track_dir, stem)}))


def by_group(per: dict, base: dict, stem: str, group_of) -> dict[str, tuple[float, int]]:
    """``stem``'s paired SI-SDRi differences grouped by ``group_of(track name, stem)``: {group: (mean difference,
    tracks)}, largest group first."""
    groups: dict[str, list[float]] = {}
    for t in per:
        if stem in per[t] and stem in base.get(t, {}):
            diff = per[t][stem]["si_sdri"] - base[t][stem]["si_sdri"]
            groups.setdefault(group_of(t, stem), []).append(diff)
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {k: (float(np.mean(v)), len(v)) for k, v in ranked}


def by_program(per: dict, base: dict, stem: str, tracks: Path) -> dict[str, tuple[float, int]]:
    """``stem``'s paired SI-SDRi differences grouped by that stem's program names (``programs_of`` in the
    track folders under ``tracks``): {programs: (mean difference, tracks)}, largest group first."""
    return by_group(per, base, stem, lambda t, s: programs_of(tracks / t, s))


def report(
    doc: dict,
    paired_with: str | None = None,
    program_stem: str | None = None,
    tracks: Path = Path(),
    shared_font: Path | None = None,
) -> None:
    """Print each row's medians (and, with ``paired_with``, its paired differences against that row; with
    ``program_stem`` too, that stem's differences by program, read from the track folders under ``tracks``; with
    ``shared_font``, every stem's differences apart for parts that play that soundfont's samples or not)."""
    names = (*STEMS, "other")
    if paired_with is not None and paired_with not in doc["sep"]:
        raise ValueError(f"no row {paired_with!r} to pair with (rows: {', '.join(doc['sep'])})")
    for row, per in doc["sep"].items():
        med = {s: np.median([t[s]["si_sdri"] for t in per.values() if s in t]) for s in names}
        pooled = [t[s]["si_sdri"] for t in per.values() for s in STEMS if s in t]
        f1 = {s: float(np.mean(v)) for s, v in doc["f1"].get(row, {}).items()}
        print(f"{row} ({len(per)} tracks)")
        print("  SI-SDRi " + " ".join(f"{s} {med[s]:+.2f}" for s in names) + f" | overall {np.median(pooled):+.3f}")
        if f1:  # rows of stems alone (bench/remask_select.py) have no notes
            f1_text = " ".join(f"{s} {f1.get(s, float('nan')):.3f}" for s in STEMS)
            pitched = np.mean([f1.get(s, np.nan) for s in STEMS[1:]])
            print(f"  onset F1 {f1_text} | pitched {pitched:.3f}")
        if paired_with is not None and row != paired_with:
            cells = paired(per, doc["sep"][paired_with])
            text = ", ".join(f"{s} {m:+.2f} ({u}+ {d}-)" for s, (m, u, d) in cells.items())
            print(f"  paired vs {paired_with}: {text}")
            if program_stem is not None:
                groups = by_program(per, doc["sep"][paired_with], program_stem, tracks)
                text = ", ".join(f"{k} {m:+.2f} ({n})" for k, (m, n) in groups.items())
                print(f"  {program_stem} by program: {text}")
            if shared_font is not None:
                from bench.soundfont_overlap import shared_group

                texts = []
                for stem in names:
                    groups = by_group(
                        per, doc["sep"][paired_with], stem, lambda t, s: shared_group(tracks / t, s, shared_font)
                    )
                    if groups:
                        texts.append(
                            f"{stem} " + " ".join(f"{k} {m:+.2f} ({n})" for k, (m, n) in sorted(groups.items()))
                        )
                print(f"  by samples shared with {shared_font.name}: " + "; ".join(texts))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--variant", action="append", default=[], help="Transcriber settings (repeatable)")
    ap.add_argument("--model", type=Path, default=None, help="another network (ONNX) than the shipped one")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--merge", type=Path, nargs="+", default=None, help="report these JSON files together")
    ap.add_argument(
        "--paired", default=None, metavar="ROW", help="with --merge: each row's mean per-track difference from ROW"
    )
    ap.add_argument(
        "--by-program",
        default=None,
        metavar="STEM",
        choices=(*STEMS, "other"),
        help="with --paired: STEM's paired differences grouped by its parts' programs (read from --tracks)",
    )
    ap.add_argument(
        "--by-shared",
        type=Path,
        default=None,
        metavar="SOUNDFONT",
        help="with --paired: each stem's paired differences apart for tracks whose parts of that stem play only "
        "samples of this training soundfont (all), some, or none (bench/soundfont_overlap.py; read from --tracks)",
    )
    args = ap.parse_args(argv)
    if args.paired is not None and not args.merge:
        ap.error("--paired needs --merge")
    if (args.by_program is not None or args.by_shared is not None) and args.paired is None:
        ap.error("--by-program and --by-shared need --paired")
    if args.merge:
        try:
            doc = merge([json.loads(p.read_text()) for p in args.merge])
            report(doc, args.paired, args.by_program, args.tracks, args.by_shared)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    doc = run(track_folders(args.tracks, args.first, args.count), args.variant, args.model)
    report(doc)
    save_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
