#!/usr/bin/env python3
"""Host-rate resampling (issue 13): added latency, passband ripple, aliasing/imaging, CPU cost.

For each host rate the Processor's two resampling stages (``bridge.resample.open_stream``,
exactly the streams ``Processor.reset`` opens) are measured alone and chained (in + out, the
path every stem takes):

- added delay: the Processor's ``resampling`` latency term (samples and ms), the part of
  ``latency_samples`` the two stages cost, next to what python-soxr HQ cost before (the same
  formula on soxr's measured lags);
- ripple: peak-to-peak gain (dB) over tones 20 Hz .. 16 kHz, each fitted by least squares
  (sine + cosine at the tone's frequency) after the start-up transient;
- aliasing/imaging: for tones 20 Hz .. 18 kHz, the worst residual after removing the fitted
  tone (every alias, image and rounding product together), in dB relative to the tone;
- CPU: process time per second of audio, 2 input channels, n_stems * 2 output channels,
  the in and out stages at the given block size, best of 3; soxr HQ alongside.

    .venv/bin/python bench/resample.py                       # 48, 88.2, 96 kHz, block 256
    .venv/bin/python bench/resample.py --rates 48000 22050 --block 64
    .venv/bin/python bench/resample.py --json bench/results/resample.json
    .venv/bin/python bench/resample.py --designs             # also: linear vs equiripple vs min-phase
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MODEL_RATE = 44100
PASS_HZ = 16000.0
TONE_HZ = 18000.0


def _tones(max_hz: float, rate: int) -> np.ndarray:
    """Log-spaced tones 20 Hz .. max_hz plus a fine grid over the top octave (where filters act)."""
    lo = np.geomspace(20.0, max_hz, 40)
    hi = np.linspace(max_hz / 2, max_hz, 41)
    f = np.unique(np.round(np.concatenate([lo, hi]), 3))
    return f[f < 0.5 * min(rate, MODEL_RATE)]


def _chain(rates: list[int], x: np.ndarray, block: int) -> np.ndarray:
    """x (n, C) at rates[0] through streams rates[0]->rates[1]->..., fed in blocks, tail flushed."""
    from bridge.resample import open_stream

    y = x
    for a, b in zip(rates[:-1], rates[1:], strict=False):
        rs = open_stream(a, b, y.shape[1])
        pad = np.concatenate([y, np.zeros((a // 50, y.shape[1]), np.float32)])  # 20 ms flushes the filter
        y = np.concatenate([rs.resample_chunk(pad[i : i + block]) for i in range(0, len(pad), block)])
    return y


def _fit(y: np.ndarray, f: np.ndarray, rate: int, start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per column: amplitude of the best-fitting sinusoid at f (Hz), and residual RMS / amplitude."""
    t = np.arange(start, start + n) / rate
    amp = np.empty(len(f))
    resid = np.empty(len(f))
    for i, fi in enumerate(f):
        a = np.stack([np.sin(2 * np.pi * fi * t), np.cos(2 * np.pi * fi * t)], axis=1)
        seg = y[start : start + n, i].astype(np.float64)
        coef, *_ = np.linalg.lstsq(a, seg, rcond=None)
        amp[i] = math.hypot(*coef)
        resid[i] = np.sqrt(np.mean((seg - a @ coef) ** 2)) / (amp[i] / math.sqrt(2))
    return amp, resid


def measure_path(rates: list[int], block: int, seconds: float = 0.25) -> dict[str, float]:
    """Ripple (dB p-p to 16 kHz) and worst alias/image residual (dB, tones to 18 kHz) of a chain."""
    r0, r1 = rates[0], rates[-1]
    f = _tones(TONE_HZ, min(rates))
    n = int(seconds * r0)
    t = np.arange(n) / r0
    x = (0.5 * np.sin(2 * np.pi * f[None, :] * t[:, None])).astype(np.float32)
    y = _chain(rates, x, block)
    skip = r1 // 100  # 10 ms: past every filter's start-up
    n_fit = int((seconds - 0.03) * r1)
    amp, resid = _fit(y, f, r1, skip, n_fit)
    gain_db = 20 * np.log10(amp / 0.5)
    pb = f <= PASS_HZ
    worst = int(np.argmax(resid))
    return {
        "ripple_db": float(gain_db[pb].max() - gain_db[pb].min()),
        "gain_at_18k_db": float(gain_db[-1]),
        "alias_db": float(20 * np.log10(resid.max())),
        "alias_worst_tone_hz": float(f[worst]),
    }


def cpu_ms_per_s(rate: int, n_out_channels: int, block: int, use_soxr: bool, seconds: float = 5.0) -> float:
    """Process time (ms) per second of host audio for the in stage (2 ch) + out stage."""
    from bridge.resample import PolyphaseStream

    rng = np.random.default_rng(0)
    n = int(seconds * rate)
    x = (0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    n_model_block = max(1, round(block * MODEL_RATE / rate))
    z = (0.1 * rng.standard_normal((int(seconds * MODEL_RATE), n_out_channels))).astype(np.float32)

    def streams() -> tuple[object, object]:
        if use_soxr:
            import soxr

            return (
                soxr.ResampleStream(rate, MODEL_RATE, 2, dtype="float32", quality="HQ"),
                soxr.ResampleStream(MODEL_RATE, rate, n_out_channels, dtype="float32", quality="HQ"),
            )
        return PolyphaseStream(rate, MODEL_RATE, 2), PolyphaseStream(MODEL_RATE, rate, n_out_channels)

    best = math.inf
    for _ in range(3):
        rs_in, rs_out = streams()
        t0 = time.process_time()
        for i in range(0, n, block):
            rs_in.resample_chunk(x[i : i + block])  # type: ignore[attr-defined]
        for i in range(0, len(z), n_model_block):
            rs_out.resample_chunk(z[i : i + n_model_block])  # type: ignore[attr-defined]
        best = min(best, time.process_time() - t0)
    return 1000.0 * best / seconds


def soxr_resampling_term(proc: object, rate: int) -> int:
    """The ``resampling`` term the Processor reported with python-soxr HQ streams (the old formula)."""
    from bridge.resample import soxr_lag_samples

    meta = proc.meta  # type: ignore[attr-defined]
    model_terms = [meta.n_fft - meta.hop, meta.hop - 1, meta.lookahead_frames * meta.hop]
    ratio = rate / meta.sample_rate
    lag_in, lag_out = soxr_lag_samples(rate, meta.sample_rate), soxr_lag_samples(meta.sample_rate, rate)
    total = math.ceil((lag_in + sum(model_terms)) * ratio + lag_out) + 1
    return total - sum(int(round(v * ratio)) for v in model_terms)


def compare_designs() -> list[dict[str, object]]:
    """Linear-phase Kaiser (shipped) vs equiripple (remez) vs minimum-phase, at 88.2 <-> 44.1 kHz
    (L = 2: short prototypes every method can design; same band edges in Hz as 48 kHz)."""
    from scipy.signal import firwin, freqz, group_delay, kaiserord, minimum_phase, remez

    fs = 88200.0
    f_pass, f_stop = PASS_HZ, MODEL_RATE - TONE_HZ
    rows: list[dict[str, object]] = []

    def stats(name: str, h: np.ndarray) -> None:
        w, H = freqz(h, worN=16384, fs=fs)
        mag = 20 * np.log10(np.maximum(np.abs(H), 1e-12))
        pb, sb = w <= f_pass, w >= f_stop
        _, gd = group_delay((h, [1.0]), w=w[pb][1:], fs=fs)
        rows.append(
            {
                "design": name,
                "taps": len(h),
                "ripple_db": float(mag[pb].max() - mag[pb].min()),
                "stopband_db": float(mag[sb].max() - mag[pb].max()),
                "delay_ms_1k": float(np.interp(1000.0, w[pb][1:], gd) / fs * 1000),
                "delay_ms_16k": float(np.interp(f_pass, w[pb][1:], gd) / fs * 1000),
            }
        )

    for atten in (80.0,):
        n, beta = kaiserord(atten, (f_stop - f_pass) / (0.5 * fs))
        stats(
            f"linear Kaiser {atten:.0f} dB (shipped)",
            firwin(int(n) | 1, 0.5 * (f_pass + f_stop), window=("kaiser", beta), fs=fs),
        )
    for n in range(21, 80, 2):  # shortest equiripple meeting 0.05 dB / 80 dB
        h = remez(n, [0, f_pass, f_stop, fs / 2], [1, 0], weight=[1, 40], fs=fs)
        w, H = freqz(h, worN=16384, fs=fs)
        mag = 20 * np.log10(np.maximum(np.abs(H), 1e-12))
        if mag[w <= f_pass].max() - mag[w <= f_pass].min() <= 0.05 and mag[w >= f_stop].max() <= -80:
            stats("linear equiripple (remez)", h)
            break
    n, beta = kaiserord(160.0, (f_stop - f_pass) / (0.5 * fs))  # homomorphic min-phase halves the dB
    h2 = firwin(int(n) | 1, 0.5 * (f_pass + f_stop), window=("kaiser", beta), fs=fs)
    stats("minimum-phase (from Kaiser 160 dB)", minimum_phase(h2, method="homomorphic"))
    return rows


def _separate(proc: object, x: np.ndarray, rate: int, block: int) -> np.ndarray:
    """Mono mix (n,) through the Processor at ``rate``: stems (n_stems + 1, n), latency removed."""
    proc.prepare(rate, block, 1)  # type: ignore[attr-defined]
    lat = proc.latency_samples  # type: ignore[attr-defined]
    xx = np.concatenate([x, np.zeros(lat + block, np.float32)])[None]
    out = [proc.process(xx[:, i : i + block]).stems[:, 0] for i in range(0, xx.shape[1], block)]  # type: ignore[attr-defined]
    return np.concatenate(out, axis=1)[:, lat : lat + len(x)]


def quality_rows(model: str | None, tracks: list[Path], block: int) -> dict[str, dict[str, float]]:
    """Median SI-SDRi per stem (blind) over ``tracks``: 44.1 kHz native, and the same tracks at
    48 kHz (stems resampled offline by soxr VHQ) through the polyphase stages and through soxr HQ."""
    import bridge.engine as engine
    from bench.metrics import is_silent, si_sdr
    from bridge.resample import soxr_lag_samples
    from export.data.slakh import load_track

    proc = engine.Processor(model, n_threads=1)
    names = (*proc.meta.stems, "other")

    def soxr_stream(a: int, b: int, c: int) -> object:
        import soxr

        return soxr.ResampleStream(a, b, c, dtype="float32", quality="HQ")

    results: dict[str, dict[str, list[float]]] = {}
    for label, rate, use_soxr in (
        ("44.1 kHz native", 44100, False),
        ("48 kHz polyphase", 48000, False),
        ("48 kHz soxr HQ", 48000, True),
    ):
        saved = engine.open_stream, engine.resampler_lag_samples
        if use_soxr:  # the streams and lags the Processor used before
            engine.open_stream = soxr_stream  # type: ignore[assignment]
            engine.resampler_lag_samples = lambda a, b: Fraction(soxr_lag_samples(a, b)).limit_denominator(1 << 20) + 1  # type: ignore[assignment]
        try:
            per_stem: dict[str, list[float]] = {n: [] for n in names}
            for track in tracks:
                truth = load_track(track, stems=tuple(proc.meta.stems), sample_rate=rate, with_notes=False)
                mix = truth["mix"]
                refs = np.concatenate([truth["stems"], truth["other"][None]])
                est = _separate(proc, mix, rate, block)
                for k, name in enumerate(names):
                    if not is_silent(refs[k], mix):
                        per_stem[name].append(si_sdr(est[k], refs[k]) - si_sdr(mix, refs[k]))
        finally:
            engine.open_stream, engine.resampler_lag_samples = saved  # type: ignore[assignment]
        results[label] = {n: float(np.median(v)) for n, v in per_stem.items() if v}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="*", type=int, default=[48000, 88200, 96000], help="host rates in Hz")
    ap.add_argument("--block", type=int, default=256, help="host block size for the streams (default 256)")
    ap.add_argument("--model", default=None, help="model name/path for the latency terms (default: the default)")
    ap.add_argument("--no-soxr", action="store_true", help="skip the python-soxr comparison columns")
    ap.add_argument("--designs", action="store_true", help="also compare filter designs (88.2 <-> 44.1 kHz)")
    ap.add_argument("--quality", type=int, default=0, help="also: SI-SDRi on N held-out tracks, 44.1 vs 48 kHz")
    ap.add_argument("--quality-cache", type=Path, default=Path("out/heldout"), help="held-out render cache")
    ap.add_argument("--quality-seed", type=int, default=None, help="held-out corpus seed (bench/quality.py's)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = ap.parse_args(argv)

    from bridge.engine import Processor
    from bridge.resample import design, uses_polyphase

    proc = Processor(args.model, n_threads=1)
    n_out_channels = len(proc.meta.stems) * 2
    rows: list[dict[str, object]] = []
    for rate in args.rates:
        proc.prepare(rate, args.block, 2)
        term = proc.latency_terms.get("resampling", 0)
        row: dict[str, object] = {
            "rate": rate,
            "polyphase": uses_polyphase(rate, MODEL_RATE) and uses_polyphase(MODEL_RATE, rate),
            "resampling_samples": term,
            "resampling_ms": 1000.0 * term / rate,
            "latency_samples": proc.latency_samples,
            "latency_ms": 1000.0 * proc.latency_samples / rate,
        }
        for stage, (a, b) in {"in": (rate, MODEL_RATE), "out": (MODEL_RATE, rate)}.items():
            d = design(a, b)
            row[f"{stage}_ratio"] = f"{d.up}/{d.down}"
            row[f"{stage}_taps_per_phase"] = d.n_taps
            row[f"{stage}_lag_samples"] = str(d.lag_samples)
            row[f"{stage}_lag_ms"] = float(Fraction(1000) * d.lag_samples / b)
        for stage, path in {
            "in": [rate, MODEL_RATE],
            "out": [MODEL_RATE, rate],
            "in+out": [rate, MODEL_RATE, rate],
        }.items():
            for k, v in measure_path(path, args.block).items():
                row[f"{stage}_{k}"] = v
        row["cpu_ms_per_s"] = cpu_ms_per_s(rate, n_out_channels, args.block, use_soxr=False)
        if not args.no_soxr:
            row["soxr_resampling_samples"] = soxr_resampling_term(proc, rate)
            row["soxr_resampling_ms"] = 1000.0 * row["soxr_resampling_samples"] / rate  # type: ignore[operator]
            row["soxr_cpu_ms_per_s"] = cpu_ms_per_s(rate, n_out_channels, args.block, use_soxr=True)
        rows.append(row)

    print(f"model {proc.meta.name} ({n_out_channels} output channels), block {args.block}")
    head = (
        "| host rate | resampling term | in+out ripple to 16 kHz | worst alias/image, tones to 18 kHz "
        "(in / out / in+out) | CPU per s of audio | soxr HQ before: term, CPU |"
    )
    print(head)
    print("|---|---|---|---|---|---|")
    for r in rows:
        soxr_cols = (
            f"{r['soxr_resampling_samples']} samples ({r['soxr_resampling_ms']:.1f} ms), "
            f"{r['soxr_cpu_ms_per_s']:.1f} ms"
            if "soxr_resampling_samples" in r
            else "-"
        )
        print(
            f"| {r['rate']} | {r['resampling_samples']} samples ({r['resampling_ms']:.2f} ms) "
            f"| {r['in+out_ripple_db']:.4f} dB "
            f"| {r['in_alias_db']:.1f} / {r['out_alias_db']:.1f} / {r['in+out_alias_db']:.1f} dB "
            f"| {r['cpu_ms_per_s']:.1f} ms | {soxr_cols} |"
        )
    designs = compare_designs() if args.designs else []
    if designs:
        print(
            "\n| design (88.2 <-> 44.1 kHz) | taps | ripple to 16 kHz | stopband from 26.1 kHz "
            "| delay at 1 kHz | at 16 kHz |"
        )
        print("|---|---|---|---|---|---|")
        for d in designs:
            print(
                f"| {d['design']} | {d['taps']} | {d['ripple_db']:.3f} dB | {d['stopband_db']:.1f} dB "
                f"| {d['delay_ms_1k']:.3f} ms | {d['delay_ms_16k']:.3f} ms |"
            )
    quality: dict[str, dict[str, float]] = {}
    if args.quality:
        from bench.quality import HELDOUT_SEED, render_heldout

        seed = HELDOUT_SEED if args.quality_seed is None else args.quality_seed
        tracks = render_heldout(args.quality_cache, seed, args.quality, 20.0)
        quality = quality_rows(args.model, tracks, 4096)
        names = list(next(iter(quality.values())))
        print(
            f"\n| blind SI-SDRi, median of {len(tracks)} tracks (seed {seed}), block 4096 | " + " | ".join(names) + " |"
        )
        print("|---|" + "---|" * len(names))
        for label, row in quality.items():
            print(f"| {label} | " + " | ".join(f"{row.get(n, float('nan')):+.2f}" for n in names) + " |")
    if args.json:
        import scipy

        args.json.parent.mkdir(parents=True, exist_ok=True)
        machine = {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__}
        machine["processor"] = platform.processor() or platform.machine()
        payload = {
            "block": args.block,
            "model": proc.meta.name,
            "machine": machine,
            "rows": rows,
            "designs": designs,
            "quality": quality,
        }
        args.json.write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
