"""bench/remask_select.py (variants, the re-masking it scores) and bench/stem_reclass.py (its rules and
the partial energy it measures), on small real signals."""

from __future__ import annotations

import numpy as np
import pytest

from bench.remask_select import NAMES, NET, chained, parse_variant, remasked
from bench.stem_reclass import partial_energy, rules
from bridge.transcribe.note_classes import log_map_db


def test_variants_name_a_window_and_one_power_or_one_per_stem() -> None:
    assert parse_variant("16384:0.75") == (16384, [0.75] * len(NAMES))
    n_fft, powers = parse_variant("8192:strings=0.6+drums=0.9")
    assert n_fft == 8192 and powers == [0.9, 1.0, 1.0, 1.0, 0.6, 1.0]
    assert parse_variant("net:strings=0.5+other=1") == (NET, [0.0, 0.0, 0.0, 0.0, 0.5, 1.0])  # 0 where not named
    assert parse_variant("net:0.25") == (NET, [0.25] * len(NAMES))
    assert parse_variant("mask:0.75") == (0, [0.75] * len(NAMES))  # the network's own masks softened
    for bad in ("16384", "1000:0.75", "16384:violin=0.5", "16384:x", "abc:1", "net:cello=1"):
        with pytest.raises(SystemExit, match="variant"):
            parse_variant(bad)


def test_remasked_stems_keep_their_length_and_sum() -> None:
    rng = np.random.default_rng(0)
    stems = rng.standard_normal((len(NAMES), 2, 30000)).astype(np.float32) * 0.1
    out = remasked(stems, 2048, [0.75] * len(NAMES))
    assert out.shape == stems.shape
    np.testing.assert_allclose(out.sum(axis=0), stems.sum(axis=0), atol=1e-4)
    assert not np.allclose(out, stems, atol=1e-3)  # noise stems that overlap everywhere do change
    two = chained(stems, [(2048, [0.75] * len(NAMES)), (1024, [1.0] * len(NAMES))])
    np.testing.assert_allclose(two, remasked(out, 1024, [1.0] * len(NAMES)), atol=1e-6)  # A>B: A, then B
    net = rng.standard_normal(stems.shape).astype(np.float32)
    w = np.array([0.0, 0.0, 0.0, 0.0, 0.5, 1.0], np.float32)[:, None, None]
    blend = chained(stems, [(NET, w.ravel().tolist())], lambda: net)
    want = (1 - w) * stems + w * net
    want[-1] = stems.sum(axis=0) - want[:-1].sum(axis=0)  # `other` the remainder
    np.testing.assert_allclose(blend, want, atol=1e-5)  # net: per-stem weights


def test_partial_energy_is_the_notes_own() -> None:
    """A 220 Hz tone with harmonics: its note (MIDI 57) holds far more energy at its partials than a note
    a tritone away, and nothing before the tone starts."""
    sr = 44100
    t = np.arange(sr) / sr
    tone = sum(0.3 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in range(1, 6))
    audio = np.concatenate([np.zeros(sr), tone]).astype(np.float32)
    notes = np.array([[1.0, 1.8, 57, 80], [1.0, 1.8, 63, 80], [0.1, 0.8, 57, 80]], np.float64)
    e = partial_energy(log_map_db(audio, sr), notes)
    assert e[0] > 20 * e[1] and e[0] > 1000 * e[2]


def test_rules_read_the_stem_the_classifier_chose() -> None:
    """Two notes, the classifier calls both class 0; on stem 0 the probe says class 3 for note 0: the
    assigned-stem rule follows it, the classifier's rule does not."""
    sounding = np.array([[0.9, 0.1, 0.1, 0.2, 0.1], [0.8, 0.1, 0.1, 0.1, 0.1]], np.float32)
    logits = np.zeros((6, 2, 5), np.float32)
    logits[1, 0, 3] = 5.0  # stem 0 (the view after the mix), note 0: class 3
    logits[1, 1, 0] = 5.0
    energy = np.array([[1.0, 0.1, 0.1, 0.1, 0.1], [1.0, 0.1, 0.1, 0.1, 0.1]])
    got = rules({"sounding": sounding, "logits": logits, "energy": energy})
    assert got["classifier"].tolist() == [0, 0]
    assert got["probe_assigned"].tolist() == [3, 0]
    assert got["loudest_stem"].tolist() == [0, 0]
