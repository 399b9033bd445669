#!/usr/bin/env python3
"""Does averaging over shifted frame grids help? (Demucs' "shift trick".)

For each selection track the network alone, blind, its masks softened as the live bridge's
(``bridge.remasked.NETWORK_MASK_POWERS``), or with ``--path blind`` the blind path (transcribe, then
separate) before its re-masking, runs on the mix delayed by each of ``--shifts`` (default 0, 128, 256 and
384 samples; the network's hop is 512); the outputs are shifted back and scored alone, averaged over
{0, 256} and over all shifts, and (shift 0 and the averages) re-masked at 16384 as shipped (power 1 as
``separate --class-stems-from network`` does; the blind path's ``TRANSCRIBED_REMASK``). Stems are cached in
``--stems``/PATH-shift/TRACK_SHIFT. The JSON has remask_select's layout ("as is" = shift 0), so
``bench/remask_select.py --merge`` reports it (halves run on two cores merge there too).

    taskset -c 1 .venv/bin/python bench/shift_select.py --first 0 --count 48 --json out/shifts.json
    .venv/bin/python bench/remask_select.py --merge out/shifts.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

SHIFTS = (0, 128, 256, 384)
_BASE: dict = {}  # "transcriber" and the last track's transcription (--path blind-shared)


class _SharedTranscription:
    """A ``Transcriber`` for ``separate_file`` whose ``transcribe_file`` returns one fixed transcription (of the
    undelayed mix) with every note delayed by ``shift_s``: the separation alone on a shifted grid."""

    def __init__(self, transcriber, transcription, sample_rate: int, shift_s: float) -> None:
        self._tr, self._sr = transcriber, sample_rate
        delay = np.array([shift_s, shift_s, 0.0, 0.0])
        self._out = type(transcription)(
            [replace(p, notes=p.notes + delay) for p in transcription.parts],
            {k: v + delay for k, v in transcription.notes.items()},
        )

    def __getattr__(self, name: str):
        return getattr(self._tr, name)

    def transcribe_file(self, path: Path):
        return self._out, self._sr


def shifted_network(
    td: Path, shift: int, cache: Path, proc, path: str = "network", member: str | None = None
) -> np.ndarray:
    """The softened network (``path`` "blind": the blind path, not re-masked; "blind-shared": the blind path
    with the undelayed mix's transcription, notes delayed) on track ``td``'s mix delayed by ``shift`` samples,
    shifted back: (n_stems, c, n). ``member``: the blind path with this transcriber
    (``bench/transcribe_select.py``'s variant syntax), not re-masked."""
    import soundfile as sf

    from bench.remask_select import NAMES, _network_pass, first_pass

    if not all((cache / f"{s}.flac").is_file() for s in NAMES):
        x, sr = sf.read(str(td / "mix.flac"), dtype="float32", always_2d=True)
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "mix").mkdir()
            sf.write(
                str(Path(tmp) / "mix" / "mix.flac"), np.concatenate([np.zeros((shift, x.shape[1]), np.float32), x]), sr
            )
            if member is not None:
                from bench.transcribe_select import transcriber_of
                from bridge.backends.offline import separate_file
                from bridge.engine import Processor

                tr = transcriber_of(f"{member},remask=none")
                separate_file(Processor(None), Path(tmp) / "mix" / "mix.flac", cache, fmt="flac", transcriber=tr)
            elif path == "blind":
                first_pass(Path(tmp) / "mix", cache, "blind")
            elif path == "blind-shared":
                from bridge.backends.offline import separate_file
                from bridge.engine import Processor
                from bridge.transcribe import Transcriber

                if td not in _BASE:  # one transcription per track, for every shift
                    tr = _BASE.get("transcriber") or Transcriber(remask=None, shares=None)
                    _BASE.clear()
                    _BASE.update({"transcriber": tr, td: tr.transcribe_file(td / "mix.flac")[0]})
                fixed = _SharedTranscription(_BASE["transcriber"], _BASE[td], sr, shift / sr)
                separate_file(Processor(None), Path(tmp) / "mix" / "mix.flac", cache, fmt="flac", transcriber=fixed)
            else:
                _network_pass(proc, Path(tmp) / "mix", cache, "network")
    st = np.stack([sf.read(str(cache / f"{s}.flac"), dtype="float32", always_2d=True)[0].T for s in NAMES])
    return st[:, :, shift:]


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--stems", type=Path, default=Path("out/remask_stems"), help="stem cache")
    ap.add_argument(
        "--path",
        choices=("network", "blind", "blind-shared"),
        default="network",
        help="the softened network, the blind path, or the blind path with one transcription (the undelayed "
        "mix's) for every shift",
    )
    ap.add_argument("--shifts", type=int, nargs="+", default=list(SHIFTS), help="delays in samples, 0 first")
    ap.add_argument(
        "--remask",
        nargs="+",
        default=None,
        metavar="N_FFT:POWERS",
        help="more re-maskings of the mean of all shifts (bench/remask_select.py's variant syntax, e.g. "
        "16384:strings=0.8+piano=0.9)",
    )
    ap.add_argument(
        "--members",
        nargs="+",
        default=[],
        metavar="VARIANT",
        help="--path blind: more runs of the undelayed mix, each with these transcriber settings "
        "(bench/transcribe_select.py's variant syntax, e.g. share=0.2), averaged with the shifts",
    )
    ap.add_argument(
        "--sets",
        nargs="+",
        default=[],
        metavar="A+B+...",
        help="--path blind: rows averaging the undelayed runs with these membership shares (the shipped share "
        "is the shift-0 run, the others runs as --members share=X), e.g. 0.1+0.3+0.8",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    from bench.remask_select import NAMES, parse_variant, remasked, score_rows
    from bench.transcribe_select import mix_and_refs, report, save_json, track_folders
    from bridge.engine import Processor
    from bridge.remasked import soften
    from bridge.transcribe import MEMBER_SHARE, TRANSCRIBED_REMASK

    if not args.shifts or args.shifts[0] != 0:
        ap.error("--shifts starts with 0")
    if (args.members or args.sets) and args.path != "blind":
        ap.error("--members and --sets go with --path blind")
    if any(parse_variant(v)[0] <= 0 or ">" in v for v in args.remask or []):
        ap.error("--remask takes N_FFT:POWERS re-maskings only (no mask:, net: or chains)")
    proc = soften(Processor(None))
    doc: dict = {"sep": {}}
    shifts = args.shifts
    if args.path != "network":  # the shipped re-masking (bridge.transcribe.TRANSCRIBED_REMASK) after the average
        n_fft, powers = 16384, [TRANSCRIBED_REMASK.get(s, 1.0) for s in NAMES]
    else:  # as `separate --class-stems-from network`
        n_fft, powers = 16384, [1.0] * len(NAMES)
    after = f"{n_fft}:{','.join(f'{p:g}' for p in powers)}"
    for td in track_folders(args.tracks, args.first, args.count):
        _, mix, refs = mix_and_refs(td)
        where = args.stems / f"{args.path}-shift"
        ests = {k: shifted_network(td, k, where / f"{td.name}_{k}", proc, args.path) for k in shifts}
        rows = {"as is" if k == 0 else f"shift {k}": ests[k] for k in shifts}
        if 256 in ests:
            rows["mean 0,256"] = (ests[0] + ests[256]) / 2
            rows[f"mean 0,256 > {after}"] = remasked(rows["mean 0,256"], n_fft, powers)
        rows[f"mean of {len(shifts)}"] = sum(ests.values()) / len(shifts)
        rows[f"mean of {len(shifts)} > {after}"] = remasked(rows[f"mean of {len(shifts)}"], n_fft, powers)
        rows[f"shift 0 > {after}"] = remasked(ests[0], n_fft, powers)
        if args.members:
            members = {
                v: shifted_network(td, 0, args.stems / "blind-member" / f"{td.name}_{_safe(v)}", proc, "blind", v)
                for v in args.members
            }
            for v, est in members.items():
                rows[f"{v} > {after}"] = remasked(est, n_fft, powers)
            both = (sum(ests.values()) + sum(members.values())) / (len(shifts) + len(members))
            rows[f"mean of {len(shifts)} shifts and {len(members)} members > {after}"] = remasked(both, n_fft, powers)
            with_0 = (ests[0] + sum(members.values())) / (1 + len(members))
            rows[f"mean of shift 0 and {len(members)} members > {after}"] = remasked(with_0, n_fft, powers)
        for spec in args.sets:
            runs = [
                ests[0]
                if float(x) == MEMBER_SHARE
                else shifted_network(
                    td, 0, args.stems / "blind-member" / f"{td.name}_{_safe(f'share={x}')}", proc, "blind", f"share={x}"
                )
                for x in spec.split("+")
            ]
            rows[f"shares {spec} > {after}"] = remasked(sum(runs) / len(runs), n_fft, powers)
        for v in args.remask or []:
            rows[f"mean of {len(shifts)} > {v}"] = remasked(rows[f"mean of {len(shifts)}"], *parse_variant(v))
        score_rows(rows, mix, refs, doc, td.name)
    report(doc | {"f1": {}}, "as is")
    save_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
