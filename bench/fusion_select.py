"""Choose how the class stems with a score fuse the parts and the network (``bridge.parts.fusion``).

Step 1 (``--dump``) runs ``separate_file`` with the true score over a rendered set twice, once
with the class stems from the parts alone (every network share 0, no fusion) and once from the
network alone (every share 1), and keeps both as mono float32 arrays beside the true stems under
``--out``. Step 2 (``--config``, repeatable) replays any fusion of the two from those arrays in
seconds per track instead of a whole separation per variant: the linear blend of
``NETWORK_SHARE`` for the stems a config keeps linear (``lin``, stem indices), the others and the
remainder fused by ``|P| ** (1 - a) * |N| ** a`` ratio masks at ``--n-fft`` (hop a quarter), and
prints per stem the mean paired SI-SDRi change against the linear blend and the medians. Mono and
offline (scipy's STFT, centred frames), so figures match the shipped streaming path to within a
few hundredths of a dB (stop 26: 9.025 here, 9.027 through ``separate_file``).

    python bench/fusion_select.py --dump --tracks out/heldout/s9002_20s --out out/fusion/9002
    python bench/fusion_select.py --out out/fusion/9002 \\
        --config '{"a": [0.5, 0.12, 0.25, 0.15, 0.0, 0.1], "lin": [0]}'

A config's ``a`` has one exponent per class stem in the network's order and one for the remainder;
``p`` (default 1) raises the fused magnitudes to that power before the masks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SR = 44100


def dump(tracks_dir: Path, out: Path) -> None:
    """Parts-only and network-only class stems, the true stems and the mix of every track, mono."""
    import soundfile as sf

    import bridge.backends.offline as offline
    from bench.quality import _read_mono
    from bridge.engine import Processor
    from export.data.slakh import load_track

    proc = Processor("band")
    stems = tuple(proc.meta.stems)
    names = (*stems, "other")
    tracks = sorted(tracks_dir.glob("Track*"))
    if not tracks:
        raise SystemExit(f"error: no Track* folders in {tracks_dir}")
    for which, share in (("P", 0.0), ("N", 1.0)):
        (out / which).mkdir(parents=True, exist_ok=True)
        for i, t in enumerate(tracks):
            mix, _ = sf.read(str(t / "mix.flac"), dtype="float32", always_2d=True)
            n = len(mix)
            with tempfile.TemporaryDirectory() as tmp:
                offline.NETWORK_SHARE = dict.fromkeys(stems, share)
                r = offline.separate_file(
                    proc, t / "mix.flac", Path(tmp), block_size=65536, score_path=t / "all_src.mid", fusion=None
                )
                by = {p.stem: p for p in r.stem_paths}
                est = np.stack([_read_mono(by[s], n) for s in names]).astype(np.float32)
            np.save(out / which / f"{t.name}.npy", est)
            if which == "P":
                truth = load_track(t, stems=stems)
                refs = np.concatenate([truth["stems"], truth["other"][None]]).astype(np.float32)
                refs = np.pad(refs, ((0, 0), (0, max(0, n - refs.shape[1]))))[:, :n]
                np.save(out / f"ref_{t.name}.npy", refs)
                np.save(out / f"mix_{t.name}.npy", mix.mean(axis=1))
            print(f"  [{which} {i + 1}/{len(tracks)}] {t.name}", flush=True)


def evaluate(out: Path, configs: list[dict], n_fft: int) -> None:
    from scipy.signal import istft, stft

    from bench.quality import _sep_scores
    from bridge.parts.classes import NETWORK_SHARE

    names = ("drums", "bass", "piano", "guitar", "strings", "other")
    share = np.array([NETWORK_SHARE.get(s, 0.0) for s in names[:-1]] + [0.0])[:, None]
    kw = {"nperseg": n_fft, "noverlap": n_fft * 3 // 4}

    def scores(est: np.ndarray, mix: np.ndarray, refs: np.ndarray) -> dict:
        return {nm: s["si_sdri"] for nm, s in _sep_scores(est, mix, refs, names).items()}

    tracks = sorted(p.stem for p in (out / "P").glob("*.npy") if (out / "N" / p.name).exists())
    if not tracks:
        raise SystemExit(f"error: nothing dumped under {out} (run with --dump first)")
    base, res = {}, [dict() for _ in configs]
    for t in tracks:
        P, N = np.load(out / "P" / f"{t}.npy"), np.load(out / "N" / f"{t}.npy")
        refs, mix = np.load(out / f"ref_{t}.npy"), np.load(out / f"mix_{t}.npy")
        linear = (1 - share) * P + share * N
        linear[-1] = mix - linear[:-1].sum(axis=0)
        base[t] = scores(linear, mix, refs)
        _, _, SP = stft(P, SR, **kw)
        _, _, SN = stft(N, SR, **kw)
        for c, cfg in enumerate(configs):
            a = np.asarray(cfg["a"], np.float64)[:, None, None]
            lin = list(cfg.get("lin", []))
            fused = [k for k in range(len(names)) if k not in lin]
            w = (np.abs(SP[fused]) ** (1 - a[fused]) * np.abs(SN[fused]) ** a[fused]) ** cfg.get("p", 1.0)
            _, _, target = stft(mix - linear[lin].sum(axis=0), SR, **kw)
            _, e = istft(w / (w.sum(axis=0) + 1e-12) * target, SR, **kw)
            est = np.zeros_like(P)
            est[fused] = np.pad(e[:, : len(mix)], ((0, 0), (0, max(0, len(mix) - e.shape[1]))))
            est[lin] = linear[lin]
            res[c][t] = scores(est, mix, refs)

    def line(label: str, r: dict) -> str:
        pooled = np.median([v for s in r.values() for v in s.values()])
        scored = [nm for nm in names if any(nm in s for s in r.values())]  # a stem no track has is left out
        med = " ".join(f"{nm[:5]} {np.median([s[nm] for s in r.values() if nm in s]):+6.2f}" for nm in scored)
        paired = " ".join(
            f"{nm[:5]} {np.mean([r[t][nm] - base[t][nm] for t in r if nm in r[t] and nm in base[t]]):+.2f}"
            for nm in scored
        )
        return f"{label}\n    pooled median {pooled:+.3f} | medians {med}\n    paired vs linear: {paired}"

    print(line(f"linear blend ({len(tracks)} tracks)", base))
    for cfg, r in zip(configs, res):
        print(line(json.dumps(cfg), r), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="where the dumped stems are (or go, with --dump)")
    ap.add_argument("--dump", action="store_true", help="separate the tracks first (parts alone, network alone)")
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered set for --dump")
    ap.add_argument("--config", action="append", default=[], help="a fusion to score (JSON; repeatable)")
    ap.add_argument("--n-fft", type=int, default=4096, help="fusion STFT size (default 4096, the parts')")
    args = ap.parse_args(argv)
    if args.dump:
        dump(args.tracks, args.out)
    if args.config:
        evaluate(args.out, [json.loads(c) for c in args.config], args.n_fft)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
