#!/usr/bin/env python3
"""Choose how the blind path's finished stems are re-masked from their sum (``bridge.parts.fusion.StemRemask``).

The blind path's class stems (``bridge.transcribe``) are linear blends of the parts decomposition and
the network: they sum to the input, but each holds errors the others cancel. Re-masking them from
their sum by their own magnitudes in a long STFT keeps what each stem's magnitude claims and drops
what cancels. This bench runs the blind path once per track without re-masking (``remask=None``;
the stems are cached in ``--stems``/PATH, reused on later runs; ``--path score``: ``separate --score``'s
stems with the track's true score instead, ``--path network`` the network's alone, ``--path network-score`` the
network's alone with the true score), then scores each
variant on those stems:
``N_FFT:POWERS`` where POWERS is one mask power for every stem or ``stem=power+...`` (1 where not
named), e.g. ``16384:0.75`` or ``16384:drums=0.9+strings=0.6``; ``A>B`` re-masks by A, then the result by B
(``16384:0.75>2048:drums=0.8``); with ``--path network[-score]``, ``mask:POWERS`` first is the network run with its
own masks softened to those powers in its own STFT (``bridge.engine.softened_masks``: no window of latency
more); ``net:WEIGHTS`` (any path, anywhere in a chain) blends the stems so far with the network's alone, blind,
its masks softened as the live bridge's (``bridge.remasked.NETWORK_MASK_POWERS``; cached in
``--stems``/network-soft): ``(1 - w) * stems + w * network`` per stem (``net:0.5``, ``net:strings=0.5+piano=0.3``,
0 where not named when named), ``other`` the remainder (its weight unused). Prints the median SI-SDRi per
stem, the pooled median (drums, bass, piano, guitar, strings) and each variant's mean per-track change against
the stems as they are (tracks up / down); the JSON keeps every per-track figure.

    taskset -c 0 .venv/bin/python bench/remask_select.py --first 0 --count 24 --stems out/remask_stems \\
        --variant 16384:0.75 --variant 8192:0.75 --json out/remask_a.json
    .venv/bin/python bench/remask_select.py --merge out/remask_a.json out/remask_b.json
    taskset -c 1 .venv/bin/python bench/remask_select.py --speed --count 4   # the blind path's speed, both ways
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

STEMS = ("drums", "bass", "piano", "guitar", "strings")
NAMES = (*STEMS, "other")
BLOCK = 65536
NET = -1  # parse_variant's n_fft for a net:WEIGHTS stage


def parse_variant(text: str) -> tuple[int, list[float]]:
    """``N_FFT:POWERS`` -> (n_fft, one power per stem of ``NAMES``), ``mask:POWERS`` -> (0, powers); ``SystemExit``
    with the reason for bad text."""
    try:
        size, powers = text.split(":", 1)
        n_fft = {"mask": 0, "net": NET}[size] if size in ("mask", "net") else int(size)
        if "=" in powers:
            named = {k: float(v) for k, v in (x.split("=") for x in powers.split("+") if x)}
            if set(named) - set(NAMES):
                raise ValueError(f"stems are {', '.join(NAMES)}")
            out = [named.get(s, 0.0 if n_fft == NET else 1.0) for s in NAMES]
        else:
            out = [float(powers)] * len(NAMES)
    except ValueError as e:
        raise SystemExit(f"error: variant {text!r} is not N_FFT:POWER or N_FFT:stem=power+... ({e})") from None
    if n_fft > 0 and (n_fft < 256 or n_fft & (n_fft - 1)):
        raise SystemExit(f"error: variant {text!r}: N_FFT must be a power of two >= 256")
    return n_fft, out


def remasked(stems: np.ndarray, n_fft: int, powers: list[float]) -> np.ndarray:
    """``stems`` (n_stems, n_channels, n), ``other`` last, through ``StemRemask`` (hop n_fft / 4) in blocks of
    ``BLOCK`` samples, its latency cut off."""
    from bridge.parts.fusion import StemRemask

    rm = StemRemask(powers, n_fft, n_fft // 4, stems.shape[1], BLOCK)
    lat, n = rm.latency_samples, stems.shape[2]
    padded = np.pad(stems, ((0, 0), (0, 0), (0, lat))).astype(np.float32)
    out = np.concatenate([rm.process(padded[..., i : i + BLOCK]) for i in range(0, n + lat, BLOCK)], axis=2)
    return out[:, :, lat : lat + n]


def chained(
    stems: np.ndarray, stages: list[tuple[int, list[float]]], network: Callable[[], np.ndarray] | None = None
) -> np.ndarray:
    """``stems`` re-masked by each stage in turn (``A>B``: by A, then the result by B); a ``net:`` stage blends
    them with ``network()`` (same shape) by its weights."""
    for n_fft, powers in stages:
        if n_fft == NET:
            assert network is not None
            w = np.asarray(powers, np.float32)[:, None, None]
            net = network()
            m = min(stems.shape[2], net.shape[2])
            total = stems[..., :m].sum(axis=0)
            stems = (1.0 - w) * stems[..., :m] + w * net[..., :m]
            stems[-1] = total - stems[:-1].sum(axis=0)  # `other` the remainder: the stems still sum to the input
        else:
            stems = remasked(stems, n_fft, powers)
    return stems


def softened_network(td: Path, powers: list[float], path: str = "network") -> np.ndarray:
    """The network alone on track ``td`` (``path`` "network-score": with the true score) with its masks softened
    in its own STFT (``Processor(mask_powers=)``, ``bridge.engine.softened_masks``): (n_stems, n_channels, n),
    through 16-bit FLAC as the cached stems."""
    import tempfile

    import soundfile as sf

    from bridge.engine import Processor

    with tempfile.TemporaryDirectory() as tmp:
        _network_pass(Processor(None, mask_powers=powers), td, Path(tmp), path)
        return np.stack([sf.read(str(Path(tmp) / f"{s}.flac"), dtype="float32", always_2d=True)[0].T for s in NAMES])


def soft_network(td: Path, cache: Path) -> np.ndarray:
    """The network alone on track ``td``, blind, its masks softened by the live bridge's powers
    (``bridge.remasked.NETWORK_MASK_POWERS``), not re-masked: (n_stems, n_channels, n), from ``cache``
    (written there on the first call)."""
    import soundfile as sf

    from bridge.engine import Processor
    from bridge.remasked import soften

    if not all((cache / f"{s}.flac").is_file() for s in NAMES):
        _network_pass(soften(Processor(None)), td, cache, "network")
    return np.stack([sf.read(str(cache / f"{s}.flac"), dtype="float32", always_2d=True)[0].T for s in NAMES])


def _network_pass(proc, td: Path, out: Path, path: str) -> None:
    """The network alone on track ``td`` into ``out`` as FLAC (``path`` "network-score": with the true score)."""
    from bridge.backends.offline import separate_file

    score = td / "all_src.mid" if path == "network-score" else None
    separate_file(proc, td / "mix.flac", out, fmt="flac", score_path=score, stems_from_parts=False)


def first_pass(td: Path, cache: Path, path: str = "blind") -> np.ndarray:
    """The stems of track ``td`` without re-masking (n_stems, n_channels, n), from ``cache`` (written there
    on the first call): the blind path's (``path`` "blind"), ``separate --score``'s with the track's
    true score (``score``), or the network's alone, its masks as they come (``network``; ``network-score``: with the
    true score)."""
    import soundfile as sf

    if not all((cache / f"{s}.flac").is_file() for s in NAMES):
        from bridge.backends.offline import separate_file
        from bridge.engine import Processor
        from bridge.transcribe import Transcriber

        if path == "score":
            separate_file(Processor(None), td / "mix.flac", cache, fmt="flac", score_path=td / "all_src.mid")
        elif path in ("network", "network-score"):
            _network_pass(Processor(None), td, cache, path)
        else:
            separate_file(
                Processor(None), td / "mix.flac", cache, fmt="flac", transcriber=Transcriber(remask=None, shares=None)
            )
    # FLAC is 16-bit: re-masked stems are scored against stems of that precision, the input of both
    return np.stack([sf.read(str(cache / f"{s}.flac"), dtype="float32", always_2d=True)[0].T for s in NAMES])


def run(tracks: list[Path], variants: list[str], stems_dir: Path, path: str = "blind") -> dict:
    from bench.transcribe_select import mix_and_refs

    parsed = {v: [parse_variant(x) for x in v.split(">")] for v in variants}
    out: dict = {"sep": {}}
    for td in tracks:
        _, mix, refs = mix_and_refs(td)
        stems = first_pass(td, stems_dir / path / td.name, path)
        rows = {"as is": stems}
        network = functools.cache(lambda td=td: soft_network(td, stems_dir / "network-soft" / td.name))
        for v, stages in parsed.items():
            if stages[0][0] == 0:  # mask:POWERS: the network itself with softened masks, then the rest
                rows[v] = chained(softened_network(td, stages[0][1], path), stages[1:], network)
            else:
                rows[v] = chained(stems, stages, network)
        score_rows(rows, mix, refs, out, td.name)
    return out


def score_rows(rows: dict[str, np.ndarray], mix: np.ndarray, refs: np.ndarray, doc: dict, track: str) -> None:
    """Each row's stems (n_stems, n_channels, n), as mono, scored against track ``track``'s ``mix`` (n,) and
    true stems ``refs`` into ``doc["sep"][row][track]``."""
    from bench.quality import _sep_scores

    n = len(mix)
    for name, est in rows.items():
        mono = np.zeros((len(NAMES), n))
        m = min(n, est.shape[2])
        mono[:, :m] = est.mean(axis=1)[:, :m]
        doc["sep"].setdefault(name, {})[track] = _sep_scores(mono, mix, refs, NAMES)
    print(f"  {track} done", flush=True)


def speed(tracks: list[Path]) -> dict[str, float]:
    """The whole blind path (``separate_file`` with a transcriber, file reading and writing included) as a
    multiple of real time, without and with the shipped re-masking, over ``tracks`` (one warm-up run
    first); pin the process to one core to read it per core."""
    import tempfile
    import time

    import soundfile as sf

    from bridge.backends.offline import separate_file
    from bridge.engine import Processor
    from bridge.transcribe import Transcriber

    proc = Processor(None)
    out = {}
    for name, tr in (("not re-masked", Transcriber(remask=None)), ("re-masked (shipped)", Transcriber())):
        seconds = wall = 0.0
        with tempfile.TemporaryDirectory() as tmp:
            separate_file(proc, tracks[0] / "mix.flac", Path(tmp) / "warm", transcriber=tr)
            for td in tracks:
                info = sf.info(str(td / "mix.flac"))
                seconds += info.frames / info.samplerate
                t0 = time.perf_counter()
                separate_file(proc, td / "mix.flac", Path(tmp) / td.name, transcriber=tr)
                wall += time.perf_counter() - t0
        out[name] = seconds / wall
        print(f"{name}: {seconds:.0f} s of audio in {wall:.1f} s: {seconds / wall:.1f}x real time", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tracks", type=Path, default=Path("out/heldout/s9002_20s"), help="rendered track folders")
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument(
        "--stems",
        type=Path,
        default=Path("out/remask_stems"),
        help="cache of the first pass's stems (STEMS/PATH/track)",
    )
    ap.add_argument(
        "--path",
        choices=("blind", "score", "network", "network-score"),
        default="blind",
        help="the stems of the blind path, of --score, of the network alone, or of the network alone with the score",
    )
    ap.add_argument(
        "--variant", action="append", default=[], help="N_FFT:POWERS, mask:POWERS, net:WEIGHTS, or A>B chained"
    )
    ap.add_argument("--speed", action="store_true", help="time the blind path without and with re-masking instead")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--merge", type=Path, nargs="+", help="report these JSON files together")
    args = ap.parse_args(argv)
    from bench.transcribe_select import merge, report, save_json, track_folders

    if args.merge:
        try:
            report(merge([json.loads(p.read_text()) | {"f1": {}} for p in args.merge]), "as is")
        except (OSError, ValueError, KeyError) as e:
            print(f"error: cannot read {' '.join(map(str, args.merge))}: {e}", file=sys.stderr)
            return 2
        return 0
    if args.speed:
        save_json({"speed_x_real_time": speed(track_folders(args.tracks, args.first, args.count))}, args.json)
        return 0
    for v in args.variant:  # refused before any track runs
        stages = [parse_variant(x) for x in v.split(">")]
        if any(n_fft == 0 for n_fft, _ in stages[1:]) or (stages[0][0] == 0 and not args.path.startswith("network")):
            ap.error(f"variant {v!r}: mask:POWERS comes first, with --path network or network-score")
        if not all(0.1 <= p <= 4.0 for n_fft, powers in stages if n_fft != NET for p in powers):
            ap.error(f"variant {v!r}: every power must lie in [0.1, 4]")
        if not all(0.0 <= w <= 1.0 for n_fft, weights in stages if n_fft == NET for w in weights):
            ap.error(f"variant {v!r}: every net: weight must lie in [0, 1]")
    doc = run(track_folders(args.tracks, args.first, args.count), args.variant, args.stems, args.path)
    report(doc | {"f1": {}}, "as is")
    save_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
