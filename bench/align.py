#!/usr/bin/env python3
"""Score alignment (issue 15): a straight score aligned to an expressive MuseScore General render.

Chamber pieces from the music21 corpus (string quartets, and wind quartets on Bach chorales that
are not Bach10's; chosen and rendered with ``bench/parts_sets.py``'s helpers), and band
arrangements (the held-out band set of ``bench/parts.py``, drums included), are played with
expressive timing: the tempo drifting smoothly by up to +-20 %, a fermata (the note before a bar
line held three times as long) every 8 bars or so, +-15 ms (s.d.) jitter on every onset and a
1-3 s late start. The input is the straight score (the notated durations at one fixed tempo,
starting at 0). Reported per case and overall:

- alignment: median and 90th-percentile absolute onset error, share of onsets within 50 ms,
  confidence, alignment wall time;
- per-part SI-SDRi of ``separate_parts_file`` (what ``separate --parts`` runs) given the aligned
  score, the true performed score, and the unaligned straight score;
- the alignment time of a 5-minute piece (``--long-seconds``; its onset errors too);
- live: the straight score followed block by block (``FollowedParts``, what ``run --follow``
  runs; 1024-sample blocks): each performed onset's error as the score position reported when
  the audio reached it, share within 100 ms, and the per-part SI-SDRi of its stems.

    .venv/bin/python bench/align.py                         # 8 chamber + 8 band pieces of 30 s + one of 300 s
    .venv/bin/python bench/align.py --pieces 2 --seconds 20 --long-seconds 0 --json out/align.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.metrics import is_silent, si_sdr  # noqa: E402
from bench.parts_sets import QUARTETS, SR, STRING_QUARTET, WIND_QUARTET, _render_case, _write_midi  # noqa: E402

MAX_DRIFT = 0.2
FERMATA_EVERY_QL = 32.0
FERMATA_HOLD = 3.0
JITTER_S = 0.015
TARGET_WITHIN_50MS = 0.9
TARGET_SDR_GAP_DB = 1.0


def _picks(n: int, seed: int) -> list[tuple[str, tuple[tuple[str, int], ...]]]:
    """String quartets and wind quartets on non-Bach10 chorales, alternating."""
    from export.data.classical import candidate_pieces, is_excluded

    chorales = [p for p in candidate_pieces("bach") if "bwv" in p and not is_excluded(p)]
    rng = np.random.default_rng(seed)
    winds = [str(c) for c in rng.choice(chorales, size=len(QUARTETS), replace=False)]
    order = [x for pair in zip(QUARTETS, winds) for x in pair]
    return [(rel, STRING_QUARTET if rel in QUARTETS else WIND_QUARTET) for rel in order[:n]]


def perform(
    rng: np.random.Generator, voices: list[list[list[float]]], qpm: float, seconds: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(straight, performed) notes per voice (n, 4) ``[on_s, off_s, pitch, velocity]``, same rows."""
    total_ql = max(n[0] + n[1] for v in voices for n in v)
    grid = np.linspace(0.0, total_ql + 4.0, int(64 * (total_ql + 4.0)) + 1)
    drift = np.zeros_like(grid)
    for _ in range(3):
        drift += np.sin(2 * np.pi * grid / rng.uniform(8.0, 40.0) + rng.uniform(0, 2 * np.pi))
    drift *= MAX_DRIFT * rng.uniform(0.7, 1.0) / max(float(np.abs(drift).max()), 1e-9)
    sec_per_ql = 60.0 / (qpm * (1.0 + drift))
    onsets_ql = np.unique(np.concatenate([np.asarray(v, np.float64).reshape(-1, 3)[:, 0] for v in voices]))
    for bar in np.arange(FERMATA_EVERY_QL, total_ql, FERMATA_EVERY_QL) + rng.uniform(-4, 4):
        at = onsets_ql[np.argmin(np.abs(onsets_ql - bar))]  # a fermata on the note before an onset
        before = onsets_ql[onsets_ql < at]
        if len(before):
            held = (grid >= before[-1]) & (grid < at)
            sec_per_ql[held] *= FERMATA_HOLD
    t_of = np.concatenate([[0.0], np.cumsum(0.5 * (sec_per_ql[1:] + sec_per_ql[:-1]) * np.diff(grid))])
    t_of += rng.uniform(1.0, 3.0)  # late start
    straight, performed = [], []
    for v in voices:
        a = np.asarray(v, np.float64).reshape(-1, 3)
        vel = np.clip(80 + rng.normal(0, 8, len(a)), 40, 120)
        s_on, s_off = a[:, 0] * 60.0 / qpm, (a[:, 0] + a[:, 1]) * 60.0 / qpm - 0.03
        p_on = np.interp(a[:, 0], grid, t_of) + rng.normal(0.0, JITTER_S, len(a))
        p_off = np.interp(a[:, 0] + a[:, 1], grid, t_of) - 0.03
        keep = p_on < seconds - 0.3
        straight.append(np.stack([s_on, np.maximum(s_off, s_on + 0.05), a[:, 2], vel], 1)[keep])
        perf = np.stack([p_on, np.minimum(np.maximum(p_off, p_on + 0.05), seconds), a[:, 2], vel], 1)[keep]
        performed.append(perf)
    return straight, performed


def build_case(cache: Path, i: int, rel: str, ensemble, seconds: float, seed: int) -> dict | None:
    """Render (once) the performed case; the straight score goes beside it as ``straight.mid``."""
    from export.data.classical import load_piece

    piece = load_piece(rel, cache / "music21")
    voices = piece["parts"][: len(ensemble)]
    if len(voices) < 2:
        return None
    rng = np.random.default_rng([seed, i])
    qpm = float(rng.uniform(70, 100))
    straight, performed = perform(rng, voices, qpm, seconds)
    rows = [(name, k, program) for k, (name, program) in enumerate(ensemble[: len(voices)])]
    name = rel.replace("/", "_").rsplit(".", 1)[0]
    return _render_performance(cache / "align" / f"{i}_{name}_{seconds:g}s_s{seed}", rows, straight, performed, seconds)


def _render_performance(folder: Path, rows: list, straight: list, performed: list, seconds: float) -> dict:
    """Render (once) the performed voices that have notes, one part per row ``(name, channel,
    program)``, with the straight score beside them as ``straight.mid``; the case dict."""
    keep = [k for k in range(len(rows)) if len(performed[k])]
    folder = _render_case(folder, [(*rows[k], performed[k]) for k in keep], seconds)
    if not (folder / "straight.mid").is_file():
        _write_midi(folder / "straight.mid", [(*rows[k], straight[k]) for k in keep])
    return {
        "folder": folder,
        "straight": [straight[k] for k in keep],
        "performed": [performed[k] for k in keep],
        "case": folder.name,
    }


def build_band_case(cache: Path, i: int, source: Path, seconds: float, seed: int) -> dict | None:
    """A held-out band arrangement (``bench.parts_sets.band_cases``, 20 s at 120 bpm) played with
    the same expressive timing, rendered (once) like the chamber cases."""
    from bridge.parts.score_parts import read_parts

    parts = [p for p in read_parts(source / "score.mid") if p.n_notes]
    if len(parts) < 2:
        return None
    qpm = 120.0  # the band set's score files
    voices = [
        [[on * qpm / 60.0, (off - on) * qpm / 60.0, pitch] for on, off, pitch, _ in p.notes.tolist()] for p in parts
    ]
    straight, performed = perform(np.random.default_rng([seed, 1000 + i]), voices, qpm, seconds)
    rows = [(p.name, 9 if p.is_drum else min(k, 8), p.program) for k, p in enumerate(parts)]
    folder = cache / "align" / f"band{i}_{source.name}_{seconds:g}s_s{seed}"
    return _render_performance(folder, rows, straight, performed, seconds)


def _read(path: Path) -> np.ndarray:
    import soundfile as sf

    x, _ = sf.read(str(path), dtype="float64", always_2d=True)
    return x.mean(axis=1)


def _separate(parts, case: Path, work: Path) -> list[np.ndarray]:
    from bridge.backends.offline import separate_parts_file

    out = work / "parts"
    res = separate_parts_file(parts, case / "mix.wav", out)
    stems = [_read(out / f"{p.name}.wav")[: res.n_samples] for p in parts]
    shutil.rmtree(out, ignore_errors=True)
    return stems


def evaluate(case: dict, work: Path, separation: bool) -> dict:
    from bridge.align.core import align_file, warp_parts
    from bridge.parts.score_parts import read_parts

    folder = case["folder"]
    mix = _read(folder / "mix.wav")
    straight_parts = read_parts(folder / "straight.mid")
    t0 = time.perf_counter()
    alignment = align_file(folder / "mix.wav", straight_parts)
    align_s = time.perf_counter() - t0
    straight = np.concatenate(case["straight"])
    truth = np.concatenate(case["performed"])
    err = np.abs(alignment.warp(straight[:, 0]) - truth[:, 0])
    unaligned = np.abs(straight[:, 0] - truth[:, 0])
    out: dict = {
        "case": case["case"],
        "folder": str(folder),
        "audio_s": float(len(mix) / SR),
        "n_onsets": int(len(err)),
        "align_s": align_s,
        "confidence": alignment.confidence,
        "reliable": alignment.reliable,
        "onset_err_median_ms": 1000 * float(np.median(err)),
        "onset_err_p90_ms": 1000 * float(np.percentile(err, 90)),
        "within_50ms": float(np.mean(err < 0.05)),
        "unaligned_err_median_ms": 1000 * float(np.median(unaligned)),
        "errors_ms": (1000 * err).round(1).tolist(),
    }
    live_err, live_stems = _follow_live(mix, straight_parts, straight[:, 0], truth[:, 0])
    out["live_errors_ms"] = (1000 * live_err).round(1).tolist()
    out["live_within_100ms"] = float(np.mean(live_err < 0.1))
    if separation:
        refs = [_read(folder / "parts" / f"{k}.wav")[: len(mix)] for k in range(len(straight_parts))]
        scores = {
            "aligned": warp_parts(straight_parts, alignment),
            "performed": read_parts(folder / "score.mid"),
            "unaligned": straight_parts,
        }
        out["si_sdri"] = {}
        for row, parts in (*scores.items(), ("followed live", straight_parts)):
            stems = live_stems if row == "followed live" else _separate(parts, folder, work)
            out["si_sdri"][row] = {
                p.name: si_sdr(est, ref) - si_sdr(mix, ref)
                for p, est, ref in zip(parts, stems, refs)
                if not is_silent(ref, mix)
            }
    return out


def _follow_live(mix: np.ndarray, parts, notated_s: np.ndarray, performed_s: np.ndarray, block: int = 1024):
    """The straight score followed live (``FollowedParts``, what ``run --follow`` runs) through the
    recording ``mix`` (n_samples,) in ``block``-sample blocks: each performed onset's error (s) as the score position
    the follower reported when the audio reached it, against the notated onset; the part stems."""
    from bridge.parts.following import FollowedParts

    mix = mix.astype(np.float32)
    proc = FollowedParts(parts)
    proc.prepare(SR, block, 1)
    lat = proc.latency_samples
    x = np.concatenate([mix, np.zeros(lat, np.float32)])[None]
    times, positions, outs = [], [], []
    for i in range(0, x.shape[1], block):
        outs.append(proc.process(x[:, i : i + block]).stems)
        times.append((i + block) / SR)
        positions.append(proc.position_s if proc.position_s is not None else proc._follower.start_s)
    stems = np.concatenate(outs, axis=2)[:, 0, lat : lat + len(mix)]
    err = np.abs(np.interp(performed_s, times, positions) - notated_s)
    return err, list(stems[: len(parts)])


def summarize(results: list[dict]) -> dict:
    err = np.concatenate([r["errors_ms"] for r in results]) if results else np.zeros(0)
    summary: dict = {
        "n_cases": len(results),
        "n_onsets": int(len(err)),
        "onset_err_median_ms": float(np.median(err)) if len(err) else None,
        "onset_err_p90_ms": float(np.percentile(err, 90)) if len(err) else None,
        "within_50ms": float(np.mean(err < 50.0)) if len(err) else None,
    }
    live = np.concatenate([r["live_errors_ms"] for r in results]) if results else np.zeros(0)
    summary["live_onset_err_median_ms"] = float(np.median(live)) if len(live) else None
    summary["live_onset_err_p90_ms"] = float(np.percentile(live, 90)) if len(live) else None
    summary["live_within_100ms"] = float(np.mean(live < 100.0)) if len(live) else None
    rows: dict[str, list[float]] = {}
    for r in results:
        for row, per_part in r.get("si_sdri", {}).items():
            rows.setdefault(row, []).extend(per_part.values())
    summary["confidence_min"] = min((r["confidence"] for r in results), default=None)
    others = [r["other_piece_confidence"] for r in results if "other_piece_confidence" in r]
    summary["other_piece_confidence_max"] = max(others, default=None)
    refused = [not r["other_piece_reliable"] for r in results if "other_piece_reliable" in r]
    summary["other_pieces_refused"] = f"{sum(refused)}/{len(refused)}"
    summary["own_scores_accepted"] = f"{sum(bool(r.get('reliable')) for r in results)}/{len(results)}"
    summary["si_sdri_median_db"] = {row: float(np.median(v)) for row, v in rows.items()}
    summary["si_sdri_mean_db"] = {row: float(np.mean(v)) for row, v in rows.items()}
    return summary


def _report(name: str, summary: dict, seconds: float) -> None:
    print(
        f"\n{name}: alignment of a straight score to an expressive render ({summary['n_cases']} pieces, "
        f"{summary['n_onsets']} onsets, {seconds:g} s each)"
    )
    print(f"{'':<28}{'median':>10}{'p90':>10}{'<= 50 ms':>10}")
    print(
        f"{'onset error':<28}{summary['onset_err_median_ms']:>8.1f}ms{summary['onset_err_p90_ms']:>8.1f}ms"
        f"{100 * summary['within_50ms']:>9.1f}%"
    )
    print(
        f"{'live follower (--follow)':<28}{summary['live_onset_err_median_ms']:>8.1f}ms"
        f"{summary['live_onset_err_p90_ms']:>8.1f}ms{100 * summary['live_within_100ms']:>9.1f}% within 100 ms"
    )
    print(
        f"confidence: own score >= {summary['confidence_min']:.2f} (accepted {summary['own_scores_accepted']}); "
        f"another piece's score <= {summary['other_piece_confidence_max'] or float('nan'):.2f} "
        f"(refused {summary['other_pieces_refused']})"
    )
    if summary["si_sdri_median_db"]:
        print(f"per-part SI-SDRi (dB) of separate --parts{'':<4}{'median':>8}{'mean':>8}")
        for row in summary["si_sdri_median_db"]:
            print(
                f"  score {row:<38}{summary['si_sdri_median_db'][row]:>+8.2f}{summary['si_sdri_mean_db'][row]:>+8.2f}"
            )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pieces", type=int, default=8, help="chamber pieces (default 8: 4 string, 4 wind quartets)")
    p.add_argument("--band", type=int, default=8, help="band arrangements (default 8; 0: none)")
    p.add_argument("--band-seed", type=int, default=9001, help="the band set's seed (9001 held out, 9002 selection)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of every performance (default 30)")
    p.add_argument("--long-seconds", type=float, default=300.0, help="the timing case's length (0: none)")
    p.add_argument("--seed", type=int, default=9301)
    p.add_argument("--no-separation", action="store_true", help="alignment figures only")
    p.add_argument("--cache", type=Path, default=Path("out/bench_cache/parts"), help="rendered cases (re-used)")
    p.add_argument("--json", type=Path, default=None, help="write per-case results and the summary here")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    results, long_result = [], None
    with tempfile.TemporaryDirectory(prefix="sb_align_") as tmp:
        cases = [
            build_case(args.cache, i, rel, ens, args.seconds, args.seed)
            for i, (rel, ens) in enumerate(_picks(args.pieces, args.seed))
        ]
        chamber = [c for c in cases if c is not None]
        band = []
        if args.band > 0:
            from bench.parts_sets import band_cases

            sources = band_cases(args.cache, args.band, 20.0, seed=args.band_seed)  # bench/parts.py's held-out band set
            band = [
                c
                for i, src in enumerate(sources)
                if (c := build_band_case(args.cache, i, src, args.seconds, args.seed))
            ]
        for set_name, set_cases in (("chamber", chamber), ("band", band)):
            for case in set_cases:
                r = evaluate(case, Path(tmp), not args.no_separation) | {"set": set_name}
                results.append(r)
                sdr = "  ".join(
                    f"{row} {np.median(list(v.values())):+.1f}" for row, v in r.get("si_sdri", {}).items() if v
                )
                print(
                    f"  {r['case']}: median {r['onset_err_median_ms']:.0f} ms, p90 {r['onset_err_p90_ms']:.0f} ms, "
                    f"{100 * r['within_50ms']:.0f} % within 50 ms, live {100 * r['live_within_100ms']:.0f} % within "
                    f"100 ms, conf {r['confidence']:.2f}, {r['align_s']:.1f} s; SI-SDRi {sdr}",
                    file=sys.stderr,
                )
        for set_name in ("chamber", "band"):  # every recording against the next piece's score: refused?
            folders = [Path(r["folder"]) for r in results if r["set"] == set_name]
            mine = [r for r in results if r["set"] == set_name]
            for k, r in enumerate(mine):
                if len(folders) > 1:
                    from bridge.align.core import align_file
                    from bridge.parts.score_parts import read_parts

                    other = align_file(
                        folders[k] / "mix.wav", read_parts(folders[(k + 1) % len(folders)] / "straight.mid")
                    )
                    r["other_piece_confidence"], r["other_piece_reliable"] = other.confidence, other.reliable
        if args.long_seconds > 0:
            case = build_case(args.cache, 100, QUARTETS[0], STRING_QUARTET, args.long_seconds, args.seed)
            if case is not None:
                long_result = evaluate(case, Path(tmp), False)
    summary = summarize(results)
    summary["sets"] = {name: summarize([r for r in results if r["set"] == name]) for name in ("chamber", "band")}
    for name, part in (("all", summary), *summary["sets"].items()):
        if part["n_cases"]:
            _report(name, part, args.seconds)
    if long_result is not None:
        print(
            f"\n{long_result['audio_s']:.0f} s piece: aligned in {long_result['align_s']:.1f} s; onset error median "
            f"{long_result['onset_err_median_ms']:.1f} ms, p90 {long_result['onset_err_p90_ms']:.1f} ms, "
            f"{100 * long_result['within_50ms']:.1f} % within 50 ms"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "command": " ".join(["bench/align.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load": os.getloadavg()},
            "settings": vars(args) | {"cache": str(args.cache), "json": str(args.json)},
            "summary": summary,
            "long": long_result,
            "cases": results,
            "wall_s": time.perf_counter() - t0,
        }
        args.json.write_text(json.dumps(doc, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
