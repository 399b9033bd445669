#!/usr/bin/env python3
"""Live as good as offline? A stand-in DAW records the live bridge on held-out pieces and scores it.

For each held-out piece (``bench/quality.py`` renders them: MuseScore General, true score), rate
and start offset, a stand-in DAW (``bridge.live.loopback.record_run``: a private ``jackd -d
dummy`` at ``--block`` frames) plays ``--lead`` samples of silence, then the mix, with the score
as live MIDI on ``score_in``, into ``stembridge run`` and records every stem and ``notes_out``.
The recordings are scored against the true stems (SI-SDRi per stem, mono) and the true notes
(onset F1, 50 ms, mean over the pitched stems), beside ``stembridge separate --score`` on the
same piece at the same rate, averaged over ``--offline-offsets`` (the file after that many
samples of silence: the separation moves with where the frames fall, and a live stream starts
anywhere, so the mean is the fair reference, not the file that starts on the frame grid).
Every class-stem source is measured: ``--classes-from network`` (the network with the score),
``parts`` (``ScoredClasses``, a linear blend with the network) and ``fused`` (the same fused by
magnitude, what ``separate --score`` runs), each against its own offline output.

    .venv/bin/python bench/live_fidelity.py --count 3 --json bench/results/live_fidelity.json
    .venv/bin/python bench/live_fidelity.py --count 1 --rates 48000 --leads 0 --modes parts

Target (issue 13): per-stem SI-SDRi within 0.3 dB of the offline output's, pitched onset F1
within 0.02, at 44.1 and 48 kHz, over several pieces and start offsets. Two tables give, per
mode, rate and stem, the median over pieces and leads of live minus offline: against the mean
over ``--offline-offsets`` (what a stream that starts anywhere can expect) and against the offline
output of the very signal the DAW played (``--lead`` samples of silence, then the piece: live
equals offline where this reads zero).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEMS = ("drums", "bass", "piano", "guitar", "strings")
NAMES = (*STEMS, "other")
PITCHED = ("bass", "piano", "guitar", "strings")


def notes_of_events(events: list[tuple[int, bytes]], rate: int) -> list[np.ndarray]:
    """``notes_out`` MIDI (sample, bytes) -> notes (n, 4) per stem of ``STEMS`` by channel."""
    from bridge.instruments import stem_channel

    stem_of = {stem_channel(s, STEMS): k for k, s in enumerate(STEMS)}
    held: dict[tuple[int, int], tuple[int, int]] = {}
    out: list[list[tuple[float, float, int, int]]] = [[] for _ in STEMS]
    for t, msg in sorted(events, key=lambda e: e[0]):
        if len(msg) < 3 or msg[0] & 0xF0 not in (0x80, 0x90):
            continue
        ch, pitch, vel = msg[0] & 0x0F, msg[1], msg[2]
        on = held.pop((ch, pitch), None)
        if on is not None and ch in stem_of:
            out[stem_of[ch]].append((on[0] / rate, t / rate, pitch, on[1]))
        if msg[0] & 0xF0 == 0x90 and vel > 0:
            held[(ch, pitch)] = (t, vel)
    return [_from_zero(np.asarray(n, np.float64).reshape(-1, 4)) for n in out]


def _from_zero(notes: np.ndarray) -> np.ndarray:
    """Notes (n, 4) moved back by a lead: those that end by 0 s dropped, the others start at 0 s or later."""
    notes = notes[notes[:, 1] > 0.0].copy()
    notes[:, 0] = np.maximum(notes[:, 0], 0.0)
    return notes


def scores(est: np.ndarray, notes: list[np.ndarray], mix: np.ndarray, truth: dict) -> dict:
    """{"sep": {stem: si_sdri}, "f1": {stem: onset F1}} of one output against the truth."""
    from bench.metrics import onset_f1
    from bench.quality import _sep_scores

    sep = _sep_scores(est, mix, truth["refs"], NAMES)
    f1 = {
        s: float(onset_f1(truth["notes"][k], notes[k], drums=s == "drums")[2])
        for k, s in enumerate(STEMS)
        if len(truth["notes"][k])
    }
    return {"sep": {s: float(v["si_sdri"]) for s, v in sep.items()}, "f1": f1}


def load_piece(track: Path, rate: int) -> tuple[np.ndarray, dict]:
    """The mix (2, n) float32 and the truth (mono stems and ``other`` at ``rate``, true notes)."""
    import soundfile as sf
    import soxr

    from export.data.slakh import load_track

    mix, sr = sf.read(str(track / "mix.flac"), dtype="float32", always_2d=True)
    truth = load_track(track, stems=STEMS)
    refs = np.concatenate([truth["stems"], truth["other"][None]]).astype(np.float64)
    refs = np.pad(refs, ((0, 0), (0, max(0, len(mix) - refs.shape[1]))))[:, : len(mix)]
    if rate != sr:
        mix = soxr.resample(mix, sr, rate).astype(np.float32)
        refs = np.stack([soxr.resample(r, sr, rate) for r in refs])
    x = np.ascontiguousarray(np.repeat(mix.mean(axis=1, keepdims=True), 2, axis=1).T if mix.shape[1] == 1 else mix.T)
    return x, {"refs": refs, "notes": truth["notes"]}


def offline(
    network: Any, track: Path, x: np.ndarray, rate: int, mode: str, tmp: Path, offset: int = 0
) -> tuple[np.ndarray, list[np.ndarray]]:
    """``separate --score`` (``fused``; ``parts``: its linear blend) or the network with the score
    (``network``: its masks softened, as ``run`` sends it), with the ``network`` Processor (reused: each run
    prepares it again), on ``x`` at ``rate`` after ``offset`` samples of silence (score moved with it; outputs
    and notes moved back)."""
    import mido
    import soundfile as sf

    from bench.quality import _read_mono
    from bridge.backends.offline import separate_file
    from bridge.parts.fusion import FUSION_EXPONENT
    from bridge.score import read_score_file

    wav, score = tmp / f"{track.name}_{rate}_{offset}.wav", tmp / f"{track.name}_{offset}.mid"
    sf.write(str(wav), np.concatenate([np.zeros((2, offset), np.float32), x], axis=1).T, rate, subtype="FLOAT")
    _delay_midi(mido.MidiFile(str(track / "all_src.mid")), offset / rate).save(str(score))
    lead_s = offset / rate
    if mode == "network":  # as `run` sends it: the masks softened (bridge.remasked), no re-masking
        from bridge.engine import Processor
        from bridge.remasked import soften

        network = soften(Processor(network.model))
    res = separate_file(
        network,
        wav,
        tmp / f"off_{mode}",
        score_path=score,
        stems_from_parts=mode != "network",
        fusion=FUSION_EXPONENT if mode == "fused" else None,
    )
    by = {p.stem: p for p in res.stem_paths}
    est = np.stack([_read_mono(by[s], offset + x.shape[1])[offset:] for s in NAMES])
    notes = [_from_zero(n - np.array([lead_s, lead_s, 0.0, 0.0])) for n in read_score_file(res.notes_path, STEMS)]
    return est, notes


def _delay_midi(mid, seconds: float):
    """A copy of ``mid`` with every event ``seconds`` later: a marker first in each track, as long
    as ``seconds`` at MIDI's default tempo, which is the tempo until the delayed first tempo event."""
    import mido

    out = mido.MidiFile(type=mid.type, ticks_per_beat=mid.ticks_per_beat)
    ticks = round(mido.second2tick(seconds, mid.ticks_per_beat, 500000))
    for t in mid.tracks:
        out.tracks.append(mido.MidiTrack([mido.MetaMessage("marker", text="lead", time=ticks), *t]))
    return out


def live(track: Path, x: np.ndarray, rate: int, mode: str, lead: int, block: int) -> tuple[np.ndarray, list, dict]:
    """``stembridge run --classes-from MODE`` fed ``lead`` zeros then ``x``, recorded and lined up."""
    from bridge.live.loopback import record_run, score_file_events

    played = np.concatenate([np.zeros((2, lead), np.float32), x], axis=1)
    events = [(t + lead, m) for t, m in score_file_events(track / "all_src.mid", rate)]
    run = record_run(["--classes-from", mode], played, events, NAMES, rate, block, ROOT, note_stems=None)
    est = run.stems[:, :, lead:].mean(axis=1).astype(np.float64)
    notes = notes_of_events([(t - lead, m) for t, m in run.midi["notes_out"]], rate)
    return est, notes, run.stats


def _mean_scores(runs: list[dict]) -> dict:
    """The mean of several ``scores`` (offline at several start offsets), with the spread per stem."""
    out: dict = {"sep": {}, "f1": {}, "sep_spread": {}}
    for key in ("sep", "f1"):
        for s in runs[0][key]:
            vals = [r[key][s] for r in runs if s in r[key]]
            out[key][s] = float(np.mean(vals))
            if key == "sep":
                out["sep_spread"][s] = float(max(vals) - min(vals))
    return out


def _pitched_f1(side: dict, ref: dict) -> float:
    """Mean onset F1 of ``side`` over the pitched stems that have notes in ``ref``."""
    return float(np.mean([side["f1"][s] for s in PITCHED if s in ref["f1"]]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=ROOT / "out" / "heldout" / "s9001_20s", help="held-out renders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=3, help="pieces (default 3)")
    ap.add_argument("--rates", type=int, nargs="+", default=[44100, 48000])
    ap.add_argument("--leads", type=int, nargs="+", default=[0, 3001], help="samples of silence before the mix")
    ap.add_argument("--modes", nargs="+", choices=("network", "parts", "fused"), default=["network", "parts", "fused"])
    ap.add_argument(
        "--offline-offsets", type=int, nargs="+", default=[0, 257, 514, 771], help="offline reference: mean over these"
    )
    ap.add_argument("--block", type=int, default=256, help="JACK period (default 256)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    tracks = sorted(p for p in args.tracks.glob("Track*") if (p / "mix.flac").is_file())[
        args.first : args.first + args.count
    ]
    if not tracks:
        print(f"live_fidelity.py: error: no rendered pieces under {args.tracks} (bench/quality.py renders them)")
        return 2
    from bridge.engine import Processor

    network = Processor("band")
    rows: list[dict] = []
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for track in tracks:
            for rate in args.rates:
                x, truth = load_piece(track, rate)
                mono = x.mean(axis=0).astype(np.float64)
                for mode in args.modes:
                    by_offset = {
                        o: scores(*offline(network, track, x, rate, mode, tmp, o), mono, truth)
                        for o in sorted(set(args.offline_offsets) | set(args.leads))
                    }
                    off = _mean_scores([by_offset[o] for o in args.offline_offsets])
                    for lead in args.leads:
                        est, notes, stats = live(track, x, rate, mode, lead, args.block)
                        on = scores(est, notes, mono, truth)
                        row = {"track": track.name, "rate": rate, "mode": mode, "lead": lead, "live": on}
                        row |= {"offline": off, "offline_same_lead": by_offset[lead]}
                        row |= {"latency_samples": stats["latency_samples"]}
                        row |= {"deadline_misses": stats["deadline_misses"], "xruns": stats["xruns"]}
                        rows.append(row)
                        gap = {s: round(on["sep"][s] - off["sep"][s], 2) for s in off["sep"] if s in on["sep"]}
                        print(f"{track.name} {rate} {mode:7s} lead {lead:5d}: live - offline {gap}", flush=True)
    summary: dict = {}
    for ref, title in (("offline", "mean over --offline-offsets"), ("offline_same_lead", "the same played signal")):
        print(f"\nlive - offline ({title}), median over pieces and leads")
        print(f"{'mode':8s} {'rate':>6s} " + " ".join(f"{s:>8s}" for s in NAMES) + f" {'F1 gap':>8s}")
        for mode in args.modes:
            for rate in args.rates:
                sel = [r for r in rows if r["mode"] == mode and r["rate"] == rate]
                gaps = {}
                for s in NAMES:
                    d = [r["live"]["sep"][s] - r[ref]["sep"][s] for r in sel if s in r[ref]["sep"]]
                    if d:
                        gaps[s] = float(np.median(d))
                f1_gap = float(np.median([_pitched_f1(r["live"], r[ref]) - _pitched_f1(r[ref], r[ref]) for r in sel]))
                key = f"{mode} {rate}" + ("" if ref == "offline" else " same lead")
                summary[key] = {"si_sdri_gap_median": gaps, "pitched_f1_gap_median": f1_gap}
                cells = " ".join(f"{gaps[s]:+8.2f}" if s in gaps else f"{'-':>8s}" for s in NAMES)
                print(f"{mode:8s} {rate:6d} {cells} {f1_gap:+8.3f}")
    if args.json:
        machine = {"platform": platform.platform(), "processor": platform.processor() or platform.machine()}
        doc = {"command": " ".join(sys.argv), "machine": machine, "wall_s": round(time.time() - t0, 1)}
        doc |= {"summary": summary, "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
