#!/usr/bin/env python3
"""Render the shipped demo: examples/demo/mix.flac (stereo) and examples/demo/score.mid.

A band arrangement from the corpus generator (seed 2047, never a training seed), rendered
stem by stem with the held-out MuseScore General soundfont (never used for training), the
stems panned into a stereo bus, plus the MIDI score of the parts (drums on channel 10,
General MIDI programs per part); with --stems also the true stems, for checking.

    .venv/bin/python examples/make_demo.py [--seconds 15] [--seed 2047] [--stems] [--out examples/demo]

Needs the `train` extra and Debian's fluidsynth + musescore-general-soundfont.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=15.0, help="length in seconds (default 15)")
    ap.add_argument(
        "--seed", type=int, default=2047, help="arrangement seed (default 2047: all five stems plus a distractor)"
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "demo", help="output folder")
    ap.add_argument("--stems", action="store_true", help="also write the true stems under OUT/stems/")
    args = ap.parse_args(argv)

    import numpy as np
    import soundfile as sf

    from export.data.render import SOUNDFONT_HELDOUT
    from export.data.track import plan_track, render_track

    plan = plan_track(args.seed, 0, min_s=args.seconds, max_s=args.seconds, classical_p=0.0)
    with tempfile.TemporaryDirectory() as tmp:
        meta = render_track(plan, Path(tmp) / "track", soundfont=SOUNDFONT_HELDOUT)
        track = Path(tmp) / "track"
        rng = np.random.default_rng(args.seed)
        stems = []
        for sid in sorted(meta["stems"]):
            x, sr = sf.read(track / "stems" / f"{sid}.flac", dtype="float32")
            pan = (
                0.5
                if meta["stems"][sid]["is_drum"] or meta["stems"][sid]["inst_class"] == "Bass"
                else rng.uniform(0.2, 0.8)
            )
            stems.append((sid, meta["stems"][sid], np.stack([x * np.sqrt(1 - pan), x * np.sqrt(pan)], axis=1)))
        mix = sum(s for _, _, s in stems)
        peak = float(np.abs(mix).max())
        gain = 0.89 / peak if peak > 0.89 else 1.0
        args.out.mkdir(parents=True, exist_ok=True)
        sf.write(args.out / "mix.flac", mix * gain, sr, subtype="PCM_24")
        for sid, m, s in stems if args.stems else []:
            (args.out / "stems").mkdir(exist_ok=True)
            name = f"{sid}_{m['inst_class'].replace(' ', '_').lower()}_{m['program_num']}.flac"
            sf.write(args.out / "stems" / name, s * gain, sr, subtype="PCM_24")
        shutil.copy(track / "all_src.mid", args.out / "score.mid")
    print(f"wrote {args.out / 'mix.flac'} ({args.seconds:g} s stereo, {sr} Hz) and {args.out / 'score.mid'}")
    for sid, m, _ in stems:
        print(f"  {sid}: {m['inst_class']:<12} program {m['program_num']:>3}  {m['midi_program_name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
