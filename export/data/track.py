"""One corpus track: plan it from (seed, index), render it, write it in Slakh2100's layout.

Layout of a track directory::

    TrackNNNNN/mix.flac            (n_samples,) mono, 44.1 kHz, 24-bit; == sum of the stems
    TrackNNNNN/stems/SNN.flac      one mono stem per instrument
    TrackNNNNN/MIDI/SNN.mid        that stem's notes; all_src.mid holds them all
    TrackNNNNN/metadata.yaml       Slakh keys (UUID, audio_dir, midi_dir, stems: {SNN: ...}) + ours

- ``plan_track(seed, index, ...) -> TrackPlan``: arrangement, soundfont, split (cheap, pure);
  ``stem_soundfonts=True`` draws each part's soundfont on its own (more timbre combinations per
  mix) from a separate random stream, so the arrangement is the same either way.
  ``sources=("sf2", "synth", "drumkits")`` instead draws one timbre per part from those sources
  (``export.data.sources.choose_timbre``, its own random stream; train tracks never get a timbre
  of ``holdout``, validation tracks get one where one fits) and turns on the second augmentation
  (``augment.augment_stem_v2``: EQ, compression, room reverb, gain).
- ``render_track(plan, track_dir, soundfont=None)``: render and write; ``soundfont`` overrides
  the planned one (e.g. ``SOUNDFONT_HELDOUT`` for the benchmark set: every stem in that font,
  byte-identical to earlier renders). Each stem's metadata records ``timbre_source``, ``timbre``
  (and ``timbre_params`` for synth voices); the track's ``timbres`` lists ``source:timbre`` ids.

Random streams of track ``index``: ``[seed, index, 0]`` duration, ``1`` arrangement, ``2``
augmentation, ``3`` per-stem soundfonts (legacy), ``5`` timbres, ``[seed, index, 6, k]`` the synth
voice of stem ``k``.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pretty_midi
import soundfile as sf
import yaml

from export.data import gm
from export.data.arrange import generate_arrangement
from export.data.augment import augment_stem, augment_stem_v2, level_stem
from export.data.render import DRUM_KITS, fit_length, mix_stems, part_to_midi, render_midi, train_soundfonts
from export.data.song import Arrangement

SAMPLE_RATE = 44100
PEAK_DBFS = -1.0
STEM_LEVEL_DBFS = -20.0  # RMS of a stem's active part before augmentation (timbre-source corpora)
VALIDATION_EVERY = 10  # every 10th track (index % 10 == 9) is validation
UUID_NAMESPACE = uuid.UUID("6f1c3c0e-5b1e-4c55-9a55-5eb2b1d9e0a1")


@dataclass
class TrackPlan:
    """Everything needed to render one track, derived from (seed, index) alone."""

    seed: int
    index: int
    name: str
    duration_s: float
    soundfont: str
    split: str
    arrangement: Arrangement
    augment: bool = True
    part_soundfonts: list[str] | None = None  # one training soundfont name per part, or the track's
    part_timbres: list[dict] | None = None  # one timbre choice per part (sources.choose_timbre)
    augment_version: int = 1


def track_name(index: int) -> str:
    """Slakh-style directory name: ``Track00001`` for index 0."""
    return f"Track{index + 1:05d}"


def track_duration_s(seed: int, index: int, min_s: float, max_s: float) -> float:
    """Duration of track ``index`` in seconds (rounded to 10 ms), from its own random stream."""
    return round(float(np.random.default_rng([seed, index, 0]).uniform(min_s, max_s)), 2)


def plan_track(
    seed: int,
    index: int,
    min_s: float = 20.0,
    max_s: float = 40.0,
    classical_p: float = 0.25,
    cache_dir: Path | str | None = None,
    stem_soundfonts: bool = False,
    sources: tuple[str, ...] | None = None,
    holdout: tuple[str, ...] = (),
    extra_other: int = 0,
) -> TrackPlan:
    """Plan track ``index`` of the corpus of ``seed``: same inputs, same arrangement.

    ``extra_other``: more ``other`` parts per generated (not classical) track (``generate_arrangement``)."""
    duration_s = track_duration_s(seed, index, min_s, max_s)
    rng = np.random.default_rng([seed, index, 1])
    fonts = sorted(train_soundfonts())
    weights = [0.6, 0.4] if len(fonts) == 2 else [1 / len(fonts)] * len(fonts)
    if fonts:
        soundfont = str(rng.choice(fonts, p=weights))
    else:  # no soundfont here (synth/drumkit sources only): the same single draw keeps the stream
        rng.random()
        soundfont = ""
    if rng.random() < classical_p:
        from export.data.classical import classical_arrangement

        arr = classical_arrangement(rng, duration_s, cache_dir)
    else:
        arr = generate_arrangement(rng, duration_s, extra_other)
    for part in arr.parts:
        if part.is_drum:
            part.program = int(rng.choice(DRUM_KITS))
    split = "validation" if index % VALIDATION_EVERY == VALIDATION_EVERY - 1 else "train"
    plan = TrackPlan(seed, index, track_name(index), duration_s, soundfont, split, arr)
    if stem_soundfonts:
        font_rng = np.random.default_rng([seed, index, 3])
        plan.part_soundfonts = [str(font_rng.choice(fonts)) for _ in arr.parts]
    if sources is not None:
        from export.data.sources import catalogue, choose_timbre

        timbres = catalogue(sources)
        timbre_rng = np.random.default_rng([seed, index, 5])
        plan.part_timbres = [
            choose_timbre(timbre_rng, part.program, part.is_drum, timbres, holdout, split) for part in arr.parts
        ]
        plan.augment_version = 2
    return plan


def render_track(
    plan: TrackPlan,
    track_dir: Path | str,
    soundfont: Path | str | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> dict:
    """Render ``plan`` into ``track_dir`` (created) in Slakh layout; returns the metadata dict.

    ``soundfont``: a path overriding the planned training soundfont (held-out renders).
    """
    track_dir = Path(track_dir)
    timbres = None
    if soundfont is None and plan.part_timbres is not None:
        from export.data import sources

        timbres = sources.catalogue(sources.SOURCES)
        sf_path = Path("sources")
        part_fonts: list[Path] = []
    else:
        fonts = train_soundfonts() if soundfont is None else {}
        sf_path = Path(soundfont) if soundfont is not None else fonts[plan.soundfont]
        part_fonts = [sf_path] * len(plan.arrangement.parts)
        if soundfont is None and plan.part_soundfonts is not None:
            part_fonts = [fonts[name] for name in plan.part_soundfonts]
    arr = plan.arrangement
    n_samples = int(round(plan.duration_s * sample_rate))
    (track_dir / "stems").mkdir(parents=True, exist_ok=True)
    (track_dir / "MIDI").mkdir(parents=True, exist_ok=True)
    aug_rng = np.random.default_rng([plan.seed, plan.index, 2])
    audio, meta_stems = [], {}
    all_src = pretty_midi.PrettyMIDI(initial_tempo=arr.qpm, resolution=960)
    with tempfile.TemporaryDirectory(prefix="sbt_") as tmp:
        for k, part in enumerate(arr.parts):
            sid = f"S{k:02d}"
            pm = part_to_midi(part, arr.qpm, arr.meter, plan.duration_s)
            pm.write(str(track_dir / "MIDI" / f"{sid}.mid"))
            all_src.instruments.append(pm.instruments[0])
            timbre_meta: dict = {}
            if timbres is not None:
                assert plan.part_timbres is not None
                choice = plan.part_timbres[k]
                voice_rng = np.random.default_rng([plan.seed, plan.index, 6, k])
                x = sources.render_part(
                    part, choice, timbres, arr.qpm, arr.meter, plan.duration_s, sample_rate, voice_rng, Path(tmp)
                )
                plugin = sources.plugin_name(choice, timbres)
                timbre_meta = {"timbre_source": choice["source"], "timbre": choice["timbre"]}
                if "params" in choice:
                    timbre_meta["timbre_params"] = choice["params"]
            else:
                mid = Path(tmp) / f"{sid}.mid"
                pm.write(str(mid))
                x = fit_length(render_midi(mid, part_fonts[k], sample_rate), n_samples)
                plugin = part_fonts[k].name
            settings: dict = {}
            if timbres is not None:
                # sources differ by 20 dB in level; level them so loudness says nothing of the source
                x, level_gain_db = level_stem(x, sample_rate, STEM_LEVEL_DBFS)
                timbre_meta["level_gain_db"] = level_gain_db
            if plan.augment:
                if plan.augment_version >= 2:
                    x, settings = augment_stem_v2(aug_rng, x, sample_rate)
                else:
                    x, settings = augment_stem(aug_rng, x, sample_rate)
            audio.append(x)
            meta_stems[sid] = {
                "audio_rendered": True,
                "inst_class": gm.inst_class(part.program, part.is_drum),
                "is_drum": bool(part.is_drum),
                "midi_program_name": gm.program_name(part.program, part.is_drum),
                "midi_saved": True,
                "plugin_name": plugin,
                "program_num": int(part.program),
                "n_notes": int(len(part.notes)),
                "role": part.role,
                **timbre_meta,
                "augmentation": settings,
            }
    all_src.write(str(track_dir / "all_src.mid"))
    stems = np.stack(audio) if audio else np.zeros((0, n_samples), np.float32)
    stems, mix, gain = mix_stems(stems, PEAK_DBFS)
    for k, x in enumerate(stems):
        sf.write(str(track_dir / "stems" / f"S{k:02d}.flac"), x, sample_rate, subtype="PCM_24")
    sf.write(str(track_dir / "mix.flac"), mix, sample_rate, subtype="PCM_24")
    if timbres is not None:
        timbre_ids = sorted({f"{m['timbre_source']}:{m['timbre']}" for m in meta_stems.values()})
        fonts_used = sorted({m["plugin_name"] for m in meta_stems.values() if m["timbre_source"] == "sf2"})
        soundfont_field = "+".join(fonts_used)
        uuid_key = "+".join(timbre_ids)
    else:
        soundfont_field = "+".join(sorted({f.name for f in part_fonts})) or sf_path.name
        uuid_key = sf_path.name
    meta = {
        "UUID": str(uuid.uuid5(UUID_NAMESPACE, f"{plan.seed}/{plan.index}/{uuid_key}")),
        "audio_dir": "stems",
        "midi_dir": "MIDI",
        "normalized": True,
        "normalization_factor": round(float(20 * np.log10(gain)), 4),
        "overall_gain": float(gain),
        "target_peak": PEAK_DBFS,
        "split": plan.split,
        "seed": plan.seed,
        "index": plan.index,
        "source": arr.source,
        "key": arr.key,
        "tempo_qpm": round(float(arr.qpm), 3),
        "time_signature": arr.meter.name,
        "duration_s": plan.duration_s,
        "sample_rate": sample_rate,
        "soundfont": soundfont_field,
        "stems": meta_stems,
    }
    if timbres is not None:
        meta["timbres"] = timbre_ids
    with open(track_dir / "metadata.yaml", "w") as f:
        yaml.safe_dump(meta, f, sort_keys=False)
    return meta
