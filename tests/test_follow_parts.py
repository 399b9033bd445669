"""Parts from a followed score (bridge.parts.following): a FluidSynth flute + piano played with
drifting tempo and a late start, separated with the straight score followed live, against the
same straight score used as it is; MIDI on a part's channel overrides the follower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_align import SECONDS, piece  # noqa: F401 (a fixture)
from test_parts import SR, render, write_midi
from test_parts import pytestmark as needs_fluidsynth

from bench.metrics import si_sdr
from bridge.errors import InputError
from bridge.parts.following import FollowedParts
from bridge.parts.processor import PartsProcessor, spec_of
from bridge.parts.score_parts import read_parts

pytestmark = needs_fluidsynth


@pytest.fixture(scope="module")
def duo(piece: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811 (the fixture)
    """``test_align``'s piece, each part rendered on its own (the references; their sum the mix)."""
    d = tmp_path_factory.mktemp("follow")
    n_s = 1.5 * SECONDS
    flute = render(d / "flute", write_midi(d / "flute.mid", [("Flute", 0, 73, piece["perf"][0])]), n_s)
    piano = render(d / "piano", write_midi(d / "piano.mid", [("Piano LH", 1, 0, piece["perf"][1])]), n_s)
    return {"parts": read_parts(piece["score"]), "flute": flute, "piano": piano, "mix": flute + piano}


def run(proc: PartsProcessor, mix: np.ndarray, events: dict[int, list] | None = None, block: int = 1024) -> np.ndarray:
    """Block by block, latency removed: (n_parts + 1, n); ``events`` {block index: MIDI events}."""
    proc.prepare(SR, block, 1)
    lat = proc.latency_samples
    x = np.concatenate([mix, np.zeros(lat)]).astype(np.float32)[None]
    out = [
        proc.process(x[:, i : i + block], (events or {}).get(i // block, ())).stems for i in range(0, x.shape[1], block)
    ]
    return np.concatenate(out, axis=2)[:, 0, lat : lat + len(mix)]


def gain_db(est: np.ndarray, ref: np.ndarray, mix: np.ndarray) -> float:
    return si_sdr(est, ref) - si_sdr(mix, ref)


def test_a_followed_score_separates_far_better_than_the_straight_one(duo: dict) -> None:
    parts, mix = duo["parts"], duo["mix"]
    followed = run(FollowedParts(parts), mix)
    straight = PartsProcessor([spec_of(p) for p in parts])
    straight.set_part_notes([p.notes for p in parts])
    fixed = run(straight, mix)
    for k, ref in enumerate((duo["flute"], duo["piano"])):
        got, base = gain_db(followed[k], ref, mix), gain_db(fixed[k], ref, mix)
        assert got > 3.0 and got > base + 8.0, (k, got, base)
    np.testing.assert_allclose(followed.sum(axis=0), mix, atol=1e-5)


def test_midi_on_a_parts_channel_overrides_the_follower(duo: dict) -> None:
    """A note-off on the flute's channel: from then on the flute's notes come from MIDI (none
    here), not from the follower, so its stem is silent; the piano is still followed."""
    parts, mix = duo["parts"], duo["mix"]
    followed = run(FollowedParts(parts), mix)
    overridden = run(FollowedParts(parts), mix, {0: [(0, bytes((0x80, 70, 0)))]})
    assert np.sum(followed[0] ** 2) > 0.1 * np.sum(duo["flute"] ** 2)
    assert np.max(np.abs(overridden[0])) == 0.0
    assert np.sum(overridden[1] ** 2) > 0.3 * np.sum(duo["piano"] ** 2)  # still followed


def test_a_score_without_notes_is_refused(tmp_path: Path) -> None:
    empty = read_parts(write_midi(tmp_path / "s.mid", [("Flute", 0, 73, [(0.0, 0.5, 70)])]))
    with pytest.raises(InputError, match="no notes"):
        FollowedParts([p.__class__(**{**p.__dict__, "notes": np.zeros((0, 4))}) for p in empty])


def test_a_gap_in_the_input_keeps_the_followed_place(duo: dict) -> None:
    """The worker resets its processor when input blocks were dropped: the follower must not go
    back to the top of the score (the parts' state restarts, the place in the score stays)."""
    proc = FollowedParts(duo["parts"])
    proc.prepare(SR, 1024, 1)
    x = duo["mix"][None].astype(np.float32)
    for i in range(0, 10 * SR, 1024):
        proc.process(x[:, i : i + 1024])
    before = proc.position_s
    proc.reset()
    assert before is not None and before > 5.0
    assert proc.position_s == before
    out = np.concatenate([proc.process(x[:, i : i + 1024]).stems for i in range(10 * SR, 14 * SR, 1024)], axis=2)
    assert proc.position_s > before and np.sum(out[0] ** 2) > 0.0  # still following, the flute still sounds
