#!/usr/bin/env python3
"""Separation and transcription quality on the held-out set (MuseScore General, new arrangements).

Renders N tracks of a corpus seed never used for training (``plan_track(seed, i)`` with
``soundfont=SOUNDFONT_HELDOUT``; cached under ``--cache``, re-used when present), then for every
track runs the model through the real offline path (``separate_file`` with a ``Processor``, what
``stembridge separate`` runs) blind (the "model blind" row: transcribe, then separate, as
``separate`` does without a score, see ``bridge.transcribe``; "network blind": the network alone,
as ``--class-stems-from network`` gives it: masks softened, then re-masked, ``bridge.remasked``; the live bridge
sends the softened masks alone; ``--blind network`` makes the
network alone the "model blind" row) and with the true score (``all_src.mid`` as ``--score``: the
"model + score" row, class stems from the score's parts as ``separate --score`` gives them; the
"network + score" row, the score-conditioned network alone), and scores the stems and
``notes.mid`` against the true stems and notes (the "model blind" row's pitched notes are the
transcription's, the other rows' the network's):

- SI-SDRi (SI-SDR(est) - SI-SDR(mix) vs the true stem, mono) and SDR (D Eq. 1.3), median over
  the tracks where the true stem is not silent (below -60 dB re the mix it is skipped) and is not
  the whole mix (the rest below -60 dB: SI-SDRi is undefined there; skipped from stop 24 on);
- note onset F1 (mir_eval, 50 ms, offsets ignored; drums onset + drum class), mean over the
  tracks where the stem has true notes; ``blind-inst F1``: every pitched note the model wrote,
  stems pooled, against every pitched note of the track (``other`` instruments included);
- the level of a stem whose instrument is absent (its true stem silent): its energy re the mix in dB,
  median over those tracks (``absent_db`` per track): the leak a listener hears in a stem that should be silent.

Reference rows from the same tracks: the ideal ratio mask at the model's STFT (the ceiling of
any magnitude-mask model) and basic-pitch's shipped ONNX model on the mixture (instrument-blind,
scored like ``blind-inst F1``; optional: the row says why when it cannot run).

Where the STFT frames fall matters (a live stream starts anywhere): ``--offsets 0 128 256 384``
runs every model row on the mix delayed by each offset (silence in front, the score delayed
with it, the output and notes moved back), scores the mean over them, and prints the spread per
stem (max - min over the offsets on each track, median over tracks).

    .venv/bin/python bench/quality.py                           # registry default model, 12 x 20 s
    .venv/bin/python bench/quality.py --model test-tiny --tracks 3 --seconds 10 --json out/q.json
    .venv/bin/python bench/quality.py --plot out/quality.png
    .venv/bin/python bench/quality.py --tracks 16 --offsets 0 128 256 384 --no-basic-pitch
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.metrics import ideal_ratio_mask, is_silent, level_db, onset_f1, separation_scores  # noqa: E402
from bridge.backends import OFFLINE_BLOCK_SIZE  # noqa: E402
from export.note_dominance import read_mono as _read_mono  # noqa: E402

HELDOUT_SEED = 9001  # never used for a training corpus
ROWS = ("model blind", "network blind", "model + score", "network + score", "IRM ceiling", "basic-pitch")
TARGETS = {
    "blind_si_sdri_overall_db": 6.0,
    "blind_si_sdri_per_stem_db": 3.0,
    "blind_onset_f1_pitched_avg": 0.5,
    "blind_onset_f1_drums": 0.7,  # issue 12: drums onset F1 >= 0.7
    "score_gain_db": 1.5,
    "score_si_sdri_overall_db": 9.0,
}


# --------------------------------------------------------------------------- held-out set


def render_heldout(root: Path, seed: int, n_tracks: int, seconds: float, log=print) -> list[Path]:
    """Track directories of the held-out set under ``root/s{seed}_{seconds}s``, rendering missing ones."""
    from export.data.render import SOUNDFONT_HELDOUT
    from export.data.track import plan_track, render_track

    if not Path(SOUNDFONT_HELDOUT).is_file():
        raise SystemExit(
            f"held-out soundfont missing: {SOUNDFONT_HELDOUT} (apt-get install musescore-general-soundfont)"
        )
    folder = root / f"s{seed}_{seconds:g}s"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n_tracks):
        plan = plan_track(seed, i, seconds, seconds)
        track_dir = folder / plan.name
        if not (track_dir / "metadata.yaml").is_file():
            t0 = time.perf_counter()
            tmp = folder / f"{plan.name}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            render_track(plan, tmp, soundfont=SOUNDFONT_HELDOUT)
            tmp.rename(track_dir)
            log(f"  rendered {track_dir} ({plan.arrangement.source}) in {time.perf_counter() - t0:.1f} s")
        out.append(track_dir)
    return out


def pitched_notes_of(midi_path: Path) -> np.ndarray:
    """Every non-drum note (n, 4) ``onset, offset, pitch, velocity`` of a MIDI file, all instruments."""
    import pretty_midi

    rows = [
        (n.start, n.end, n.pitch, n.velocity)
        for inst in pretty_midi.PrettyMIDI(str(midi_path)).instruments
        if not inst.is_drum
        for n in inst.notes
    ]
    return np.asarray(rows, np.float64).reshape(-1, 4)


# --------------------------------------------------------------------------- basic-pitch


def _librosa_shim() -> types.ModuleType:
    """The four librosa functions basic-pitch's ONNX inference path calls (librosa not installed)."""
    import soundfile as sf
    import soxr

    def load(path, sr=22050, mono=True, **_):
        x, rate = sf.read(str(path), dtype="float32", always_2d=True)
        x = x.mean(axis=1) if mono else x.T
        if sr is not None and rate != sr:
            x = soxr.resample(x, rate, sr, quality="HQ").astype(np.float32)  # librosa's default: soxr_hq
            rate = sr
        return x, rate

    def cqt_frequencies(n_bins, fmin, bins_per_octave=12, **_):
        return fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)

    def frames_to_time(frames, sr=22050, hop_length=512, **_):
        return np.asarray(frames) * hop_length / sr

    def midi_to_hz(notes):
        return 440.0 * 2.0 ** ((np.asarray(notes, np.float64) - 69.0) / 12.0)

    def hz_to_midi(freqs):
        return 12.0 * (np.log2(np.asarray(freqs, np.float64)) - np.log2(440.0)) + 69.0

    mod = types.ModuleType("librosa")
    mod.load, mod.midi_to_hz, mod.hz_to_midi = load, midi_to_hz, hz_to_midi
    mod.core = types.SimpleNamespace(cqt_frequencies=cqt_frequencies, frames_to_time=frames_to_time)
    return mod


def load_basic_pitch():
    """(transcribe(audio_path) -> notes (n, 4), description) or (None, why it is unavailable)."""
    try:
        logging.disable(logging.WARNING)
        import basic_pitch
    except ImportError:
        return None, "basic-pitch not installed (pip install basic-pitch==0.4.0 --no-deps)"
    finally:
        logging.disable(logging.NOTSET)
    onnx_path = Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"
    if not onnx_path.is_file():
        return None, f"basic-pitch {getattr(basic_pitch, '__version__', '?')} ships no {onnx_path.name}"
    shims = {}
    for name in ("librosa", "resampy"):
        try:
            __import__(name)
        except ImportError:
            shims[name] = _librosa_shim() if name == "librosa" else types.ModuleType("resampy")
    sys.modules.update(shims)
    try:
        from basic_pitch.inference import Model, predict

        model = Model(onnx_path)
    except Exception as e:  # noqa: BLE001 - any failure makes the row unavailable, with the reason
        return None, f"basic-pitch inference unavailable: {type(e).__name__}: {e}"
    finally:
        for name in shims:
            sys.modules.pop(name, None)

    def transcribe(audio_path: Path) -> np.ndarray:
        with contextlib.redirect_stdout(io.StringIO()):
            _, _, events = predict(audio_path, model)  # package defaults: onset 0.5, frame 0.3, 127.7 ms
        return np.asarray([(s, e, p, 127 * a) for s, e, p, a, *_ in events], np.float64).reshape(-1, 4)

    how = "onnxruntime" + (f", librosa shim ({', '.join(shims)} not installed)" if shims else "")
    return transcribe, f"basic-pitch {_version('basic-pitch')} {onnx_path.name} via {how}"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


# --------------------------------------------------------------------------- evaluation


def _sep_scores(est: np.ndarray, mix: np.ndarray, refs: np.ndarray, names: tuple[str, ...]) -> dict:
    """{stem: {si_sdri, sdr}} for the stems whose true signal is neither silent nor the whole mix."""
    scores = {name: separation_scores(est[k], mix, refs[k]) for k, name in enumerate(names)}
    return {name: s for name, s in scores.items() if s is not None}


def _absent_levels(est: np.ndarray, mix: np.ndarray, refs: np.ndarray, names: tuple[str, ...]) -> dict:
    """{stem: level of the estimate in dB re the mix} for the stems whose true signal is silent (the leak a
    listener hears in a stem whose instrument does not play)."""
    return {name: level_db(est[k], mix) for k, name in enumerate(names) if is_silent(refs[k], mix)}


def _delayed_copy(src: Path, dst: Path, offset: int) -> Path:
    """``src`` with ``offset`` zero samples in front, as a float WAV."""
    import soundfile as sf

    x, sr = sf.read(str(src), dtype="float32", always_2d=True)
    sf.write(str(dst), np.concatenate([np.zeros((offset, x.shape[1]), np.float32), x]), sr, subtype="FLOAT")
    return dst


def _delayed_score(src: Path, dst: Path, shift_s: float) -> Path:
    """The score file with every note ``shift_s`` later (a leading rest)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(str(src))
    shift = float(shift_s)
    for inst in pm.instruments:
        for note in inst.notes:
            note.start += shift
            note.end += shift
    pm.write(str(dst))
    return dst


def _moved_back(notes: np.ndarray, shift_s: float) -> np.ndarray:
    """Notes (n, 4) ``shift_s`` earlier: those that end before 0 dropped, onsets clipped to 0."""
    if not shift_s:
        return notes
    out = notes - np.array([shift_s, shift_s, 0.0, 0.0])
    out = out[out[:, 1] > 0.0]
    out[:, 0] = np.maximum(out[:, 0], 0.0)
    return out


def _mean_over_offsets(runs: list[dict], offsets: Sequence[int]) -> dict:
    """One row's scores on one track, averaged over the runs at each start offset; with several offsets
    also ``sep_by_offset`` {offset: {stem: si_sdri}}."""
    if len(runs) == 1:
        return runs[0]
    sep = {}
    for s in runs[0]["sep"]:
        sep[s] = {k: float(np.mean([r["sep"][s][k] for r in runs])) for k in ("si_sdri", "sdr")}
    absent = {s: float(np.mean([r["absent_db"][s] for r in runs])) for s in runs[0]["absent_db"]}
    f1 = {s: float(np.mean([r["f1"][s] for r in runs])) for s in runs[0]["f1"]}
    blind = [r["inst_blind_f1"] for r in runs if r["inst_blind_f1"] is not None]
    return {
        "sep": sep,
        "absent_db": absent,
        "f1": f1,
        "inst_blind_f1": float(np.mean(blind)) if blind else None,
        "n_notes": runs[0]["n_notes"],
        "wall_s": float(np.mean([r["wall_s"] for r in runs])),
        "sep_by_offset": {str(o): {s: r["sep"][s]["si_sdri"] for s in r["sep"]} for o, r in zip(offsets, runs)},
    }


RUN_ROWS = ROWS[:4]  # the rows --rows chooses from (the IRM ceiling always runs; basic-pitch by its flag)


def evaluate_track(
    track_dir: Path,
    processor,
    work: Path,
    transcribe,
    block_size: int,
    transcriber=None,
    offsets: Sequence[int] = (0,),
    shifts: int = 1,
    rows_run: Sequence[str] = RUN_ROWS,
) -> dict:
    """Scores of every row in ``rows_run`` on one track: {row: {"sep": {stem: ...}, "absent_db": {stem: dB},
    "f1": {stem: F1}, "inst_blind_f1": x}}; with several ``offsets``, each row runs on the mix delayed by each
    (samples of silence in front, the score delayed with it) and its scores are the mean over them
    (``sep_by_offset`` keeps each). ``shifts`` > 1 runs the "model blind" row as ``separate --shifts`` does
    (``bridge.backends.shifted``)."""
    import soundfile as sf

    from bridge.backends.offline import separate_file
    from bridge.backends.shifted import separate_shifted
    from bridge.engine import Processor
    from bridge.remasked import NETWORK_REMASK, soften
    from bridge.score import read_score_file
    from export.data.slakh import load_track

    meta = processor.meta
    pred_stems = tuple(meta.stems)
    all_names = (*pred_stems, "other")
    truth = load_track(track_dir, stems=pred_stems)
    mix_path = track_dir / "mix.flac"
    mix, sr = sf.read(str(mix_path), dtype="float64", always_2d=True)
    mix = mix.mean(axis=1)
    n = len(mix)
    refs = np.concatenate([truth["stems"], truth["other"][None]]).astype(np.float64)
    refs = np.pad(refs, ((0, 0), (0, max(0, n - refs.shape[1]))))[:, :n]
    true_notes = truth["notes"]
    score_path = track_dir / "all_src.mid"
    union_ref = pitched_notes_of(score_path)
    rows: dict[str, dict] = {}

    work.mkdir(parents=True, exist_ok=True)
    inputs = {  # per start offset: the (delayed) mix and score, written once for every row
        o: (mix_path, score_path)
        if o == 0
        else (
            _delayed_copy(mix_path, work / f"delayed_{o}.wav", o),
            _delayed_score(score_path, work / f"score_{o}.mid", o / sr),
        )
        for o in offsets
    }
    for row, score, from_parts in (
        ("model blind", None, True),  # what `separate` gives: transcribe, then separate (with a transcriber)
        ("network blind", None, False),  # the network alone
        ("model + score", score_path, True),  # what `separate --score` gives: class stems from the parts
        ("network + score", score_path, False),  # the score-conditioned network alone
    ):
        if row not in rows_run or (row == "network blind" and transcriber is None):
            continue  # "model blind" is the network alone then
        runs = []
        # the network alone as `separate --class-stems-from network` gives it: masks softened, then re-masked
        alone = not from_parts or (score is None and transcriber is None)
        runner = soften(Processor(processor.model)) if alone else processor
        for offset in offsets:
            out_dir = work / row.replace(" ", "").replace("+", "_")
            src, delayed_score = inputs[offset]
            score_src = None if score is None else delayed_score
            if shifts > 1 and row == "model blind" and transcriber is not None:
                res = separate_shifted(runner, src, out_dir, transcriber, shifts, block_size, "wav")
            else:
                res = separate_file(
                    runner,
                    src,
                    out_dir,
                    block_size=block_size,
                    fmt="wav",
                    score_path=score_src,
                    stems_from_parts=from_parts,
                    transcriber=transcriber if from_parts else None,
                    network_remask=NETWORK_REMASK if alone else None,
                )
            by_name = {p.stem: p for p in res.stem_paths}
            est = np.stack([_read_mono(by_name[s], n + offset)[offset:] for s in all_names])
            est_notes = read_score_file(res.notes_path, pred_stems)
            est_notes = [_moved_back(a, offset / sr) for a in est_notes]
            f1 = {}
            for k, s in enumerate(pred_stems):
                if len(true_notes[k]):
                    f1[s] = onset_f1(true_notes[k], est_notes[k], drums=s == "drums")[2]
            pooled = [a for s, a in zip(pred_stems, est_notes) if s != "drums"]
            pooled_notes = np.concatenate(pooled) if pooled else np.zeros((0, 4))
            runs.append(
                {
                    "sep": _sep_scores(est, mix, refs, all_names),
                    "absent_db": _absent_levels(est, mix, refs, all_names),
                    "f1": f1,
                    "inst_blind_f1": onset_f1(union_ref, pooled_notes)[2] if len(union_ref) else None,
                    "n_notes": res.n_notes,
                    "wall_s": res.wall_s,
                }
            )
            shutil.rmtree(out_dir, ignore_errors=True)
        rows[row] = _mean_over_offsets(runs, offsets)

    est = ideal_ratio_mask(mix, refs, meta.n_fft, meta.hop)
    rows["IRM ceiling"] = {"sep": _sep_scores(est, mix, refs, all_names), "f1": {}, "inst_blind_f1": None}

    if transcribe is not None:
        t0 = time.perf_counter()
        bp_notes = transcribe(mix_path)
        rows["basic-pitch"] = {
            "sep": {},
            "f1": {},
            "inst_blind_f1": onset_f1(union_ref, bp_notes)[2] if len(union_ref) else None,
            "n_notes": len(bp_notes),
            "wall_s": time.perf_counter() - t0,
        }
    return rows


def summarize(per_track: list[dict], pred_stems: tuple[str, ...]) -> dict:
    """Medians / means over tracks per row and stem, with the counts they rest on."""
    all_names = (*pred_stems, "other")
    pitched = [s for s in pred_stems if s != "drums"]
    summary: dict[str, dict] = {}
    for row in ROWS:
        tracks = [t[row] for t in per_track if row in t]
        if not tracks:
            continue
        stems = {}
        for s in all_names:
            si = [t["sep"][s]["si_sdri"] for t in tracks if s in t["sep"]]
            sd = [t["sep"][s]["sdr"] for t in tracks if s in t["sep"]]
            f1 = [t["f1"][s] for t in tracks if s in t["f1"]]
            absent = [t["absent_db"][s] for t in tracks if s in t.get("absent_db", {})]
            spread = [
                max(v[s] for v in t["sep_by_offset"].values()) - min(v[s] for v in t["sep_by_offset"].values())
                for t in tracks
                if "sep_by_offset" in t and s in t["sep"]
            ]
            stems[s] = {
                "si_sdri_median": float(np.median(si)) if si else None,
                "si_sdri_offset_spread_median": float(np.median(spread)) if spread else None,
                "sdr_median": float(np.median(sd)) if sd else None,
                "onset_f1_mean": float(np.mean(f1)) if f1 else None,
                "absent_level_median_db": float(np.median(absent)) if absent else None,
                "n_absent": len(absent),
                "n_scored_sep": len(si),
                "n_scored_f1": len(f1),
            }
        pooled_si = [t["sep"][s]["si_sdri"] for t in tracks for s in pred_stems if s in t["sep"]]
        pooled_sd = [t["sep"][s]["sdr"] for t in tracks for s in pred_stems if s in t["sep"]]
        pitched_f1 = [stems[s]["onset_f1_mean"] for s in pitched if stems[s]["onset_f1_mean"] is not None]
        blind = [t["inst_blind_f1"] for t in tracks if t.get("inst_blind_f1") is not None]
        summary[row] = {
            "stems": stems,
            "si_sdri_overall_median": float(np.median(pooled_si)) if pooled_si else None,
            "sdr_overall_median": float(np.median(pooled_sd)) if pooled_sd else None,
            "onset_f1_pitched_avg": float(np.mean(pitched_f1)) if pitched_f1 else None,
            "inst_blind_f1_mean": float(np.mean(blind)) if blind else None,
            "n_tracks": len(tracks),
        }
    return summary


def check_targets(summary: dict, pred_stems: tuple[str, ...]) -> list[dict]:
    """The issue's targets for the shipped model, each with the measured value and pass/fail (those of the
    rows that ran)."""
    b, sc = summary.get("model blind"), summary.get("model + score")
    out: list[dict] = []

    def add(name: str, value, target: float, strict: bool = False) -> None:
        ok = value is not None and (value > target if strict else value >= target)
        out.append({"target": name, "value": value, "min": target, "pass": ok})

    if b is not None:
        add("blind SI-SDRi overall median (dB)", b["si_sdri_overall_median"], TARGETS["blind_si_sdri_overall_db"])
        for s in pred_stems:
            add(f"blind SI-SDRi {s} median (dB)", b["stems"][s]["si_sdri_median"], TARGETS["blind_si_sdri_per_stem_db"])
        add("blind onset F1 pitched avg", b["onset_f1_pitched_avg"], TARGETS["blind_onset_f1_pitched_avg"])
        if "drums" in pred_stems:
            add("blind onset F1 drums", b["stems"]["drums"]["onset_f1_mean"], TARGETS["blind_onset_f1_drums"])
    if b is not None and sc is not None:
        gain = None
        if b["si_sdri_overall_median"] is not None and sc["si_sdri_overall_median"] is not None:
            gain = sc["si_sdri_overall_median"] - b["si_sdri_overall_median"]
        add("score gain: SI-SDRi overall median (dB)", gain, TARGETS["score_gain_db"])
    bp = summary.get("basic-pitch")
    if b is not None and bp is not None and bp["inst_blind_f1_mean"] is not None:  # ours beat it in the same run
        ours = b["inst_blind_f1_mean"]
        diff = None if ours is None else ours - bp["inst_blind_f1_mean"]
        add("blind instrument-blind F1 minus basic-pitch's", diff, 0.0, strict=True)
    if sc is not None:
        add(
            "with score: SI-SDRi overall median (dB)", sc["si_sdri_overall_median"], TARGETS["score_si_sdri_overall_db"]
        )
    return out


# --------------------------------------------------------------------------- output


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_tables(summary: dict, pred_stems: tuple[str, ...], notes: dict[str, str]) -> None:
    all_names = (*pred_stems, "other")
    w = 14
    blocks = (
        ("SI-SDRi median (dB)", "si_sdri_median", "si_sdri_overall_median", "+.2f", "overall"),
        ("SDR median (dB)", "sdr_median", "sdr_overall_median", "+.2f", "overall"),
    )
    for title, key, overall, spec, extra in blocks:
        print(f"\n{title}")
        print(f"{'':<{w}}" + "".join(f"{s:>9}" for s in all_names) + f"{extra:>9}")
        for row, r in summary.items():
            if all(r["stems"][s][key] is None for s in all_names):
                continue
            cells = "".join(f"{_fmt(r['stems'][s][key], spec):>9}" for s in all_names)
            print(f"{row:<{w}}{cells}{_fmt(r[overall], spec):>9}")
    spread_rows = {
        row: r
        for row, r in summary.items()
        if any(r["stems"][s].get("si_sdri_offset_spread_median") is not None for s in all_names)
    }
    if spread_rows:
        print("\nSI-SDRi spread over start offsets (max - min per track, median over tracks, dB)")
        print(f"{'':<{w}}" + "".join(f"{s:>9}" for s in all_names))
        for row, r in spread_rows.items():
            cells = "".join(f"{_fmt(r['stems'][s]['si_sdri_offset_spread_median'], '.2f'):>9}" for s in all_names)
            print(f"{row:<{w}}{cells}")
    absent_rows = {row: r for row, r in summary.items() if any(r["stems"][s].get("n_absent") for s in all_names)}
    if absent_rows:
        print(
            "\nlevel of a stem whose instrument is absent (dB re the mix, median over those tracks; lower is cleaner)"
        )
        print(f"{'':<{w}}" + "".join(f"{s:>9}" for s in all_names))
        for row, r in absent_rows.items():
            cells = "".join(f"{_fmt(r['stems'][s].get('absent_level_median_db'), '+.1f'):>9}" for s in all_names)
            print(f"{row:<{w}}{cells}")
    print("\nnote onset F1 (mean over tracks; 50 ms; drums onset + class)")
    print(f"{'':<{w}}" + "".join(f"{s:>9}" for s in pred_stems) + f"{'pitched':>9}{'inst-blind':>11}")
    for row, r in summary.items():
        cells = "".join(f"{_fmt(r['stems'][s]['onset_f1_mean'], '.3f'):>9}" for s in pred_stems)
        print(f"{row:<{w}}{cells}{_fmt(r['onset_f1_pitched_avg'], '.3f'):>9}{_fmt(r['inst_blind_f1_mean'], '.3f'):>11}")
    ref = summary.get("model blind") or next(iter(summary.values()))
    counts = ", ".join(f"{s} {ref['stems'][s]['n_scored_sep']}/{ref['stems'][s]['n_scored_f1']}" for s in all_names)
    print(f"\nscored (separation / notes) of {ref['n_tracks']} tracks: {counts}")
    for row in ROWS:
        if row in notes:
            print(f"{row}: {notes[row]}")


def print_targets(targets: list[dict]) -> None:
    print("\ntargets (issue 3, shipped model on this held-out set)")
    for t in targets:
        mark = "PASS" if t["pass"] else "FAIL"
        print(f"  {mark}  {t['target']:<42} {_fmt(t['value'], '.3f'):>8}  (>= {t['min']:g})")


def plot(summary: dict, pred_stems: tuple[str, ...], path: Path, title: str) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot (pip install matplotlib)"
    all_names = (*pred_stems, "other")
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    sep_rows = [r for r in summary if any(summary[r]["stems"][s]["si_sdri_median"] is not None for s in all_names)]
    x = np.arange(len(all_names))
    width = 0.8 / max(1, len(sep_rows))
    for i, row in enumerate(sep_rows):
        v = [summary[row]["stems"][s]["si_sdri_median"] for s in all_names]
        axes[0].bar(x + i * width, [np.nan if a is None else a for a in v], width, label=row)
    axes[0].axhline(TARGETS["blind_si_sdri_per_stem_db"], color="k", lw=0.8, ls="--", label="per-stem target")
    axes[0].set_xticks(x + width * (len(sep_rows) - 1) / 2, all_names)
    axes[0].set_ylabel("median SI-SDRi (dB)")
    axes[0].legend(fontsize=8)
    labels = [*pred_stems, "pitched", "inst-blind"]
    f1_rows = [
        r
        for r in summary
        if summary[r]["inst_blind_f1_mean"] is not None
        or any(summary[r]["stems"][s]["onset_f1_mean"] is not None for s in pred_stems)
    ]
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(f1_rows))
    for i, row in enumerate(f1_rows):
        r = summary[row]
        v = [r["stems"][s]["onset_f1_mean"] for s in pred_stems] + [r["onset_f1_pitched_avg"], r["inst_blind_f1_mean"]]
        axes[1].bar(x + i * width, [np.nan if a is None else a for a in v], width, label=row)
    axes[1].set_xticks(x + width * (len(f1_rows) - 1) / 2, labels)
    axes[1].set_ylim(0, 1)
    axes[1].set_ylabel("note onset F1")
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="model name or .onnx path (default: registry default)")
    ap.add_argument("--tracks", type=int, default=12, help="held-out tracks (default 12)")
    ap.add_argument("--seconds", type=float, default=20.0, help="seconds per track (default 20)")
    ap.add_argument("--seed", type=int, default=HELDOUT_SEED, help=f"corpus seed (default {HELDOUT_SEED})")
    ap.add_argument("--cache", type=Path, default=Path("out/heldout"), help="render cache (default out/heldout)")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument(
        "--block-size",
        type=int,
        default=OFFLINE_BLOCK_SIZE,
        help=f"samples per block (default {OFFLINE_BLOCK_SIZE}, as separate)",
    )
    ap.add_argument("--no-basic-pitch", action="store_true", help="skip the basic-pitch row")
    ap.add_argument(
        "--blind",
        choices=("parts", "network"),
        default="parts",
        help="'model blind' row: transcribe, then separate (default, what `separate` does) or the network alone",
    )
    ap.add_argument(
        "--offsets",
        type=int,
        nargs="+",
        default=[0],
        help="start offsets in samples: every row runs on the mix delayed by each and scores the mean; the "
        "spread over them (max - min per track, median over tracks) is printed per stem (e.g. 0 128 256 384)",
    )
    ap.add_argument(
        "--shifts",
        type=int,
        default=1,
        help="'model blind' row (transcribe, then separate) averaged over this many frame grids, as "
        "`separate --shifts N` (default 1)",
    )
    ap.add_argument(
        "--shares",
        default=None,
        metavar="A,B,...|wide",
        help="'model blind' row separated once per membership share and averaged, as `separate --shares` (default "
        "the shipped bridge.transcribe.TRANSCRIBED_SHARES; 0.3: one separation, as before stop 41)",
    )
    ap.add_argument(
        "--no-anchor",
        action="store_true",
        help="'model blind' row with the analysis frames counted from each file's first sample, as before stop 46 "
        "(default: anchored to its strongest onset, bridge.transcribe.anchor)",
    )
    ap.add_argument(
        "--rows",
        nargs="+",
        choices=RUN_ROWS,
        default=list(RUN_ROWS),
        metavar="ROW",
        help=f"rows to run (default all: {', '.join(repr(r) for r in RUN_ROWS)}); the IRM ceiling always runs",
    )
    ap.add_argument("--json", type=Path, default=None, help="write every number here")
    ap.add_argument("--plot", type=Path, default=None, help="write a PNG bar chart here (needs matplotlib)")
    args = ap.parse_args(argv)
    if any(o < 0 for o in args.offsets):
        ap.error("--offsets must be >= 0 samples")
    from bridge.backends.shifted import MAX_SHIFTS

    if not 1 <= args.shifts <= MAX_SHIFTS:
        ap.error(f"--shifts must be between 1 and {MAX_SHIFTS}")
    if (args.shifts > 1 or args.shares or args.no_anchor) and (args.blind != "parts" or "model blind" not in args.rows):
        ap.error("--shifts, --shares and --no-anchor are for the blind path (--blind parts and the 'model blind' row)")
    from bridge.transcribe import TRANSCRIBED_SHARES

    if args.shares is not None:
        from bridge.errors import InputError
        from bridge.parts.share_ensemble import parse_shares

        try:
            args.shares = parse_shares(args.shares)
        except InputError as e:
            ap.error(str(e))

    from bridge.engine import Processor
    from bridge.model import OnnxModel

    t_start = time.perf_counter()
    model = OnnxModel(args.model, n_threads=args.threads)
    meta = model.meta
    processor = Processor(model)
    pred_stems = tuple(meta.stems)
    print(f"# model {meta.name} {meta.version} ({model.path if hasattr(model, 'path') else args.model})")
    print(f"# held-out set: seed {args.seed}, {args.tracks} tracks x {args.seconds:g} s, MuseScore General")
    tracks = render_heldout(args.cache, args.seed, args.tracks, args.seconds)

    transcriber = None
    if args.blind == "parts":
        from bridge.transcribe import Transcriber

        transcriber = Transcriber(
            n_threads=args.threads,
            shares=args.shares or TRANSCRIBED_SHARES,
            anchor=not args.no_anchor,
        )
    notes: dict[str, str] = {"IRM ceiling": f"|S_i| / sum_j |S_j| at n_fft {meta.n_fft}, hop {meta.hop}, mix phase"}
    transcribe = None
    if args.no_basic_pitch:
        notes["basic-pitch"] = "unavailable: skipped (--no-basic-pitch)"
    else:
        transcribe, why = load_basic_pitch()
        notes["basic-pitch"] = why if transcribe is not None else f"unavailable: {why}"
    per_track = []
    with tempfile.TemporaryDirectory(prefix="sbq_") as tmp:
        for i, track_dir in enumerate(tracks):
            t0 = time.perf_counter()
            rows = evaluate_track(
                track_dir,
                processor,
                Path(tmp) / track_dir.name,
                transcribe,
                args.block_size,
                transcriber,
                tuple(args.offsets),
                args.shifts,
                tuple(args.rows),
            )
            per_track.append({"track": track_dir.name, **rows})
            b = rows["model blind"]["sep"] if "model blind" in rows else {}
            si = np.median([v["si_sdri"] for k, v in b.items() if k != "other"]) if b else float("nan")
            print(
                f"  [{i + 1}/{len(tracks)}] {track_dir.name}: blind SI-SDRi median {si:+.2f} dB "
                f"({time.perf_counter() - t0:.1f} s)",
                flush=True,
            )
    summary = summarize([{k: v for k, v in t.items() if k != "track"} for t in per_track], pred_stems)
    print_tables(summary, pred_stems, notes)
    targets = check_targets(summary, pred_stems)
    print_targets(targets)
    wall = time.perf_counter() - t_start
    print(f"\n# wall time {wall:.1f} s")

    if args.plot is not None:
        why = plot(
            summary, pred_stems, args.plot, f"{meta.name} on held-out set (seed {args.seed}, {len(tracks)} tracks)"
        )
        print(why or f"# plot written: {args.plot}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "model": {"name": meta.name, "version": meta.version, "n_fft": meta.n_fft, "hop": meta.hop},
            "heldout": {
                "seed": args.seed,
                "tracks": [str(t) for t in tracks],
                "seconds": args.seconds,
                "soundfont": "MuseScore_General_Full.sf3",
                "offsets": list(args.offsets),
                "shifts": args.shifts,
                "shares": list(args.shares or TRANSCRIBED_SHARES) if args.blind == "parts" else None,
                "anchor": (not args.no_anchor) if args.blind == "parts" else None,
                "rows": list(args.rows),
            },
            "metrics": {
                "si_sdri": "D Eq. 1.5 (mono)",
                "sdr": "D Eq. 1.3",
                "onset_f1": "mir_eval, 50 ms, no offsets",
                "silent_stem_db": -60.0,
                "absent_level": "a silent true stem's estimate, energy re the mix in dB (floor -120)",
            },
            "row_notes": notes,
            "summary": summary,
            "targets": targets,
            "per_track": per_track,
            "wall_s": wall,
            "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
        print(f"# json written: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
