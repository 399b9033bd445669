#!/usr/bin/env python3
"""Does averaging the network over shifted frame grids help? (Demucs' "shift trick", for the softened network.)

For each selection track the network alone, blind, its masks softened as the live bridge's
(``bridge.remasked.NETWORK_MASK_POWERS``), runs on the mix delayed by 0, 128, 256 and 384 samples (the hop
is 512); the outputs are shifted back and scored alone, averaged over {0, 256} and over all four, and
(shift 0 and the four-way mean) re-masked at 16384 with power 1 as ``separate --class-stems-from network``
does. Stems are cached in ``--stems``/network-soft-shift/TRACK_SHIFT. The JSON has remask_select's layout
("as is" = shift 0), so ``bench/remask_select.py --merge`` reports it.

    taskset -c 1 .venv/bin/python bench/shift_select.py --first 0 --count 48 --json out/shifts.json
    .venv/bin/python bench/remask_select.py --merge out/shifts.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

SHIFTS = (0, 128, 256, 384)


def shifted_network(td: Path, shift: int, cache: Path, proc) -> np.ndarray:
    """The softened network on track ``td``'s mix delayed by ``shift`` samples, shifted back: (n_stems, c, n)."""
    import soundfile as sf

    from bench.remask_select import NAMES, _network_pass

    if not all((cache / f"{s}.flac").is_file() for s in NAMES):
        x, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "mix").mkdir()
            sf.write(
                str(Path(tmp) / "mix" / "mix.flac"), np.concatenate([np.zeros((shift, x.shape[1]), np.float32), x]), sr
            )
            _network_pass(proc, Path(tmp) / "mix", cache, "network")
    st = np.stack([sf.read(str(cache / f"{s}.flac"), dtype="float32", always_2d=True)[0].T for s in NAMES])
    return st[:, :, shift:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--stems", type=Path, default=Path("out/remask_stems"), help="stem cache")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from bench.quality import _sep_scores
    from bench.remask_select import NAMES, remasked
    from bench.transcribe_select import mix_and_refs, report, save_json, track_folders
    from bridge.engine import Processor
    from bridge.remasked import soften

    proc = soften(Processor(None))
    doc: dict = {"sep": {}}
    for td in track_folders(args.tracks, args.first, args.count):
        _, mix, refs = mix_and_refs(td)
        n = len(mix)
        ests = {k: shifted_network(td, k, args.stems / "network-soft-shift" / f"{td.name}_{k}", proc) for k in SHIFTS}
        rows = {"as is" if k == 0 else f"shift {k}": ests[k] for k in SHIFTS}
        rows["mean 0,256"] = (ests[0] + ests[256]) / 2
        rows["mean all 4"] = sum(ests.values()) / len(SHIFTS)
        rows["mean all 4 > 16384:1"] = remasked(rows["mean all 4"], 16384, [1.0] * len(NAMES))
        rows["shift 0 > 16384:1"] = remasked(ests[0], 16384, [1.0] * len(NAMES))
        for name, est in rows.items():
            mono = np.zeros((len(NAMES), n))
            m = min(n, est.shape[2])
            mono[:, :m] = est.mean(axis=1)[:, :m]
            doc["sep"].setdefault(name, {})[td.name] = _sep_scores(mono, mix, refs, NAMES)
        print(f"  {td.name} done", flush=True)
    report(doc | {"f1": {}}, "as is")
    save_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
