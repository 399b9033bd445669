"""``stembridge corpus``: render a reproducible synthetic multitrack corpus in Slakh2100's layout.

    python -m export.data.corpus --out corpus/train --hours 3 --seed 1 --jobs 2

Track ``i`` depends only on (seed, i), the settings and the timbres installed, so the same seed gives
the same MIDI and audio, runs resume (finished tracks are skipped; each is written to ``OUT/.tmp``
and renamed when complete) and ``--jobs`` does not change the result. Each stem gets one timbre
from ``--sources`` (default every source: soundfonts, procedural synth voices, Hydrogen drum
kits); ``--holdout`` timbres only ever play validation tracks. ``OUT/manifest.json`` records
every timbre (path, sha256), the held-out ones, seed, versions, hours, the track list with splits
and timbres, and the generator settings. ``--sources legacy`` renders as generator version 1 did
(one soundfont per track or per stem, first augmentation).

API: ``main(argv) -> int``, ``build_corpus(out, hours=..., seed=..., ...) -> dict`` (the manifest),
``render_heldout(out, n_tracks, seed, soundfont=SOUNDFONT_HELDOUT) -> dict`` for the benchmark,
``check_settings(out, seed, settings, timbre_ids)`` (refuses to resume a folder made otherwise).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
from tqdm import tqdm

from export.data.npm_samples import PACKAGES as NPM_PACKAGES
from export.data.render import SOUNDFONT_HELDOUT, fluidsynth_version, train_soundfonts
from export.data.sources import (
    DEFAULT_HOLDOUT,
    SOURCES,
    catalogue,
    choose_timbre,
    is_held_out,
    parse_holdout,
    parse_sources,
)
from export.data.synth import SYNTH_VERSION
from export.data.track import SAMPLE_RATE, plan_track, render_track, track_duration_s, track_name

GENERATOR_VERSION = 2
# Settings recorded only when they differ from these defaults (so corpora made before them resume);
# absent from a stamp or manifest means the default.
OPTIONAL_SETTINGS = {"extra_other": 0}
PACKAGES = ("numpy", "scipy", "soundfile", "pretty_midi", "music21", "PyYAML", "soxr")


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def plan_durations(seed: int, hours: float | None, n_tracks: int | None, min_s: float, max_s: float) -> list[float]:
    """Durations (s) of tracks 0.. until ``hours`` are covered (or exactly ``n_tracks`` tracks)."""
    out: list[float] = []
    total = 0.0
    while (n_tracks is not None and len(out) < n_tracks) or (n_tracks is None and total < (hours or 0) * 3600):
        d = track_duration_s(seed, len(out), min_s, max_s)
        out.append(d)
        total += d
    return out


def is_complete(track_dir: Path) -> bool:
    """A track is complete when its directory (renamed into place last) has metadata.yaml."""
    return (track_dir / "metadata.yaml").is_file()


def _build_one(out: str, seed: int, index: int, settings: dict) -> tuple[int, dict]:
    """Worker: plan and render track ``index`` atomically; returns (index, summary)."""
    out_p = Path(out)
    final = out_p / track_name(index)
    plan = plan_track(
        seed,
        index,
        settings["min_s"],
        settings["max_s"],
        settings["classical_fraction"],
        cache_dir=out_p / ".cache" / "music21",
        stem_soundfonts=settings.get("stem_soundfonts", False),
        sources=tuple(settings["sources"]) if settings.get("sources") else None,
        holdout=tuple(settings.get("holdout") or ()),
        extra_other=settings.get("extra_other", 0),
    )
    plan.augment = settings["augment"]
    if settings.get("split"):
        plan.split = settings["split"]
    tmp = out_p / ".tmp" / f"{final.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    meta = render_track(plan, tmp, soundfont=settings.get("soundfont"))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return index, _summary(final.name, meta)


def _summary(name: str, meta: dict) -> dict:
    return {
        "name": name,
        "split": meta["split"],
        "duration_s": meta["duration_s"],
        "soundfont": meta["soundfont"],
        "source": meta["source"],
        "n_stems": len(meta["stems"]),
        "timbres": meta.get("timbres", sorted({f"sf2:{Path(n).stem}" for n in meta["soundfont"].split("+") if n})),
    }


def _read_summary(track_dir: Path) -> dict:
    import yaml

    with open(track_dir / "metadata.yaml") as f:
        return _summary(track_dir.name, yaml.safe_load(f))


STAMP = ".generator.json"


def check_settings(out: Path, seed: int, settings: dict, timbre_ids: list[str]) -> None:
    """Refuse to resume a corpus rendered with other settings (seed, generator version, sources,
    held-out timbres, installed timbres, lengths, ...): the finished tracks would not match the new
    ones. Writes ``out/.generator.json`` on the first run; a corpus from before it is checked
    against its manifest. Raises RuntimeError naming what differs."""
    stamp = {"generator": GENERATOR_VERSION, "seed": seed, **settings, "timbres": timbre_ids}
    path = out / STAMP
    old: dict | None = None
    if path.is_file():
        old = json.loads(path.read_text())
    elif (out / "manifest.json").is_file():
        m = json.loads((out / "manifest.json").read_text())
        gen = m.get("generator", {})
        fallback = {**stamp, "sources": None, "holdout": None, **OPTIONAL_SETTINGS}  # for a key it lacks
        old = {k: gen.get(k, fallback[k]) for k in {**settings, **OPTIONAL_SETTINGS}}
        old |= {"generator": m.get("versions", {}).get("generator"), "seed": m.get("seed"), "timbres": None}
        if old["sources"] is None:
            old["holdout"] = []
        if old["generator"] == GENERATOR_VERSION:
            old["timbres"] = timbre_ids  # manifests of this version list their timbres elsewhere
    if old is None:
        path.write_text(json.dumps(stamp, indent=1))
        return
    opt = OPTIONAL_SETTINGS
    diff = [k for k in {**stamp, **old} if old.get(k, opt.get(k)) != stamp.get(k, opt.get(k))]
    if diff:
        raise RuntimeError(
            f"{out} holds a corpus rendered with other settings ({', '.join(diff)} differ); "
            "render into a new folder, or pass the settings it was made with"
        )


def _timbre_manifest(timbres: list, holdout: tuple[str, ...]) -> dict:
    """Every timbre by source: file (sha256) or synth version, and whether it is held out."""
    out: dict = {}
    for t in timbres:
        entry: dict = {"pitched": t.pitched, "drums": t.drums, "held_out": is_held_out(t, holdout)}
        if t.source == "sf2":
            entry |= {"path": t.path, "sha256": sha256_file(t.path)}
        elif t.source == "drumkits":
            entry |= {"path": t.path, "sha256": sha256_file(Path(t.path) / "drumkit.xml")}
        elif t.source == "npm":
            entry |= {"path": t.path, "packages": {f"tonejs-instrument-{k}-mp3": v for k, v in NPM_PACKAGES.items()}}
        else:
            entry["version"] = SYNTH_VERSION
        out.setdefault(t.source, {})[t.name] = entry
    return out


def _versions() -> dict:
    v = {"python": platform.python_version(), "fluidsynth": fluidsynth_version(), "generator": GENERATOR_VERSION}
    for p in PACKAGES:
        try:
            v[p] = importlib_metadata.version(p)
        except importlib_metadata.PackageNotFoundError:
            v[p] = None
    return v


def build_corpus(
    out: Path | str,
    hours: float | None = 3.0,
    seed: int = 1,
    jobs: int = 2,
    min_s: float = 20.0,
    max_s: float = 40.0,
    n_tracks: int | None = None,
    classical_fraction: float = 0.25,
    augment: bool = True,
    soundfont: Path | str | None = None,
    split: str | None = None,
    progress: bool = True,
    stem_soundfonts: bool = False,
    sources: tuple[str, ...] | None = SOURCES,
    holdout: tuple[str, ...] = DEFAULT_HOLDOUT,
    extra_other: int = 0,
) -> dict:
    """Render (or resume) a corpus into ``out``; returns the manifest written to ``out/manifest.json``.

    ``sources``: timbre sources drawn per stem (``export.data.sources``), None for the legacy
    soundfont-only corpus; ``holdout``: ``source[:timbre]`` ids kept for validation tracks.
    ``soundfont`` overrides every timbre for every track (held-out renders only); ``split`` forces
    every track's split (e.g. ``"test"``); ``stem_soundfonts`` (legacy only) draws a training
    soundfont per stem instead of per track; ``extra_other``: that many more ``other`` parts in every
    generated track (classifier corpora; recorded in the settings only when set, so corpora made
    without it resume as before).
    """
    if soundfont is not None:
        sources, holdout = None, ()
    if sources is None:
        holdout = ()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    durations = plan_durations(seed, hours, n_tracks, min_s, max_s)
    settings = {
        "min_s": min_s,
        "max_s": max_s,
        "classical_fraction": classical_fraction,
        "augment": augment,
        "soundfont": str(soundfont) if soundfont else None,
        "split": split,
        "stem_soundfonts": stem_soundfonts,
        "sources": list(sources) if sources is not None else None,
        "holdout": list(holdout),
    }
    if extra_other:
        settings["extra_other"] = int(extra_other)
    timbres = catalogue(sources) if sources is not None else []
    if sources is not None:  # fail before rendering when no timbre can play a part
        for is_drum in (False, True):
            for split_name in ("train", "validation"):
                choose_timbre(np.random.default_rng(0), 0, is_drum, timbres, holdout, split_name)
    check_settings(out, seed, settings, [t.id for t in timbres])
    todo = [i for i in range(len(durations)) if not is_complete(out / track_name(i))]
    t0 = time.time()
    bar = tqdm(
        total=round(sum(durations), 2),
        unit="s",
        desc="corpus",
        disable=not progress,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}, {rate_fmt}]",
    )
    bar.update(round(sum(durations) - sum(durations[i] for i in todo), 2))
    if jobs <= 1:
        for i in todo:
            _build_one(str(out), seed, i, settings)
            bar.update(durations[i])
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_build_one, str(out), seed, i, settings) for i in todo]
            for fut in as_completed(futures):
                i, _ = fut.result()
                bar.update(durations[i])
    bar.close()
    shutil.rmtree(out / ".tmp", ignore_errors=True)
    tracks = [_read_summary(out / track_name(i)) for i in range(len(durations))]
    fonts = {Path(soundfont).name: Path(soundfont)} if soundfont else train_soundfonts()
    if sources is not None:
        fonts = {t.name: Path(t.path) for t in timbres if t.source == "sf2"}
    manifest = {
        "format": "slakh2100",
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "hours": round(sum(durations) / 3600, 4),
        "n_tracks": len(durations),
        "n_validation": sum(t["split"] == "validation" for t in tracks),
        "render_seconds_this_run": round(time.time() - t0, 1),
        "soundfonts": {k: {"path": str(p), "sha256": sha256_file(p)} for k, p in fonts.items()},
        "heldout_soundfont_never_used_for_training": str(SOUNDFONT_HELDOUT),
        "timbre_sources": _timbre_manifest(timbres, holdout) if sources is not None else None,
        "validation_timbres_held_out": list(holdout),
        "versions": _versions(),
        "generator": settings | {"hours_requested": hours, "n_tracks_requested": n_tracks},
        "tracks": tracks,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def render_heldout(
    out: Path | str, n_tracks: int, seed: int, soundfont: Path | str = SOUNDFONT_HELDOUT, **kwargs
) -> dict:
    """Render a held-out benchmark set with the MuseScore General soundfont (split ``test``)."""
    return build_corpus(out, hours=None, seed=seed, n_tracks=n_tracks, soundfont=soundfont, split="test", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The ``stembridge corpus`` argument parser."""
    p = argparse.ArgumentParser(prog="stembridge corpus", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="output directory (Slakh2100 layout); required unless --list-sources")
    p.add_argument("--hours", type=float, default=3.0, help="hours of audio to render (default 3)")
    p.add_argument("--tracks", type=int, default=None, help="render exactly this many tracks instead of --hours")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=2, help="parallel render processes (default 2)")
    p.add_argument(
        "--segment-seconds",
        type=float,
        nargs=2,
        default=(20.0, 40.0),
        metavar=("MIN", "MAX"),
        help="track length range in seconds (default 20 40)",
    )
    p.add_argument("--classical-fraction", type=float, default=0.25, help="share of music21 corpus tracks")
    p.add_argument("--no-augment", action="store_true", help="no per-stem gain/EQ/compression/reverb")
    p.add_argument(
        "--extra-other",
        type=int,
        default=0,
        metavar="N",
        help="up to N more 'other' parts (winds, brass, organ, synths, ...; a part left without notes by "
        "the track's end is dropped) in every generated track, for note-classifier corpora where those "
        "84 programs are otherwise spread thin (default 0)",
    )
    p.add_argument(
        "--sources",
        default="all",
        help=f"timbre sources drawn per stem, comma-separated from {','.join(SOURCES)} (default all "
        "installed); 'legacy': one soundfont per track as generator version 1",
    )
    p.add_argument(
        "--holdout",
        default=",".join(DEFAULT_HOLDOUT),
        help="timbres (source or source:timbre, comma-separated) used only by validation tracks "
        f"(default {','.join(DEFAULT_HOLDOUT)}; 'none' holds out nothing)",
    )
    p.add_argument("--list-sources", action="store_true", help="print the installed timbres and exit")
    p.add_argument(
        "--stem-soundfonts",
        action="store_true",
        help="with --sources legacy: draw each stem's soundfont on its own instead of one per track",
    )
    p.add_argument(
        "--soundfont",
        type=Path,
        default=None,
        help="render every track with this soundfont (held-out sets only; implies split 'test')",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``stembridge corpus``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        sources = None if args.sources.strip() == "legacy" else parse_sources(args.sources)
        holdout = parse_holdout(args.holdout)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.list_sources:
        try:
            timbres = catalogue(sources or SOURCES)
        except RuntimeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        for t in timbres:
            kind = "+".join(k for k, on in (("pitched", t.pitched), ("drums", t.drums)) if on)
            held = "  (held out: validation only)" if is_held_out(t, holdout) else ""
            print(f"{t.id:40s} {kind:14s} {t.path}{held}")
        return 0
    if args.out is None:
        print("error: --out is required", file=sys.stderr)
        return 2
    min_s, max_s = args.segment_seconds
    if not 0 < min_s <= max_s:
        print("error: --segment-seconds needs 0 < MIN <= MAX", file=sys.stderr)
        return 2
    if not 0 <= args.extra_other <= 8:
        print("error: --extra-other needs 0 <= N <= 8", file=sys.stderr)
        return 2
    if args.extra_other and args.soundfont is not None:
        print(
            "error: --extra-other is for training corpora; a --soundfont (held-out) set keeps the default draw",
            file=sys.stderr,
        )
        return 2
    if args.soundfont is not None and not args.soundfont.is_file():
        print(f"error: soundfont {args.soundfont} not found", file=sys.stderr)
        return 2
    if args.soundfont is None:
        try:
            train_soundfonts()
            if sources is not None:
                timbres = catalogue(sources)
                for is_drum in (False, True):
                    for split_name in ("train", "validation"):
                        choose_timbre(np.random.default_rng(0), 0, is_drum, timbres, holdout, split_name)
        except (RuntimeError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    t0 = time.time()
    try:
        m = build_corpus(
            args.out,
            hours=None if args.tracks else args.hours,
            seed=args.seed,
            jobs=args.jobs,
            min_s=min_s,
            max_s=max_s,
            n_tracks=args.tracks,
            classical_fraction=args.classical_fraction,
            augment=not args.no_augment,
            soundfont=args.soundfont,
            split="test" if args.soundfont is not None else None,
            progress=not args.quiet,
            stem_soundfonts=args.stem_soundfonts,
            sources=sources,
            holdout=holdout,
            extra_other=args.extra_other,
        )
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{m['n_tracks']} tracks, {m['hours']:.3f} h of audio in {args.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
