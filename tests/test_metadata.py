"""The metadata validator refuses every kind of missing or inconsistent metadata by name."""

from __future__ import annotations

import json

import pytest

from bridge.errors import ModelError
from bridge.metadata import SCHEMA_VERSION, metadata_to_props, validate_metadata
from bridge.model import MODELS_DIR


def good() -> dict:
    return json.loads((MODELS_DIR / "test-tiny.json").read_text())


def test_shipped_card_validates_and_round_trips() -> None:
    meta = validate_metadata(metadata_to_props(good()))
    assert meta.all_stems[-1] == "other"
    again = validate_metadata(metadata_to_props(meta.as_dict()))
    assert again == meta


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: d.pop("stems"), "missing required key(s): stems"),
        (lambda d: d.pop("decode"), "decode"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer"),
        (lambda d: d.update(sample_rate=44100.5), "sample_rate"),
        (lambda d: d.update(n_fft=2047), "n_fft"),
        (lambda d: d.update(hop=3000), "hop"),
        (lambda d: d.update(window="kaiser"), "window"),
        (lambda d: d.update(stems=["drums", "drums"]), "stems"),
        (lambda d: d.update(stems=["drums", "other"]), "stems"),
        (lambda d: d.update(latency_samples=d["latency_samples"] + 1), "latency_samples"),
        (lambda d: d.update(score_conditioned="yes"), "score_conditioned"),
        (lambda d: d["active_keys"].update(drums=[200]), "active_keys.drums"),
        (lambda d: d["decode"]["onset_threshold"].update(drums=1.5), "onset_threshold.drums"),
        (lambda d: d["decode"].update(min_note_ms=-1), "min_note_ms"),
    ],
)
def test_bad_metadata_is_refused_by_name(edit, words: str) -> None:
    d = good()
    edit(d)
    with pytest.raises(ModelError, match=None) as e:
        validate_metadata(metadata_to_props(d))
    assert words in str(e.value)


def test_non_json_value_is_refused() -> None:
    props = metadata_to_props(good())
    props["stems"] = "[drums, bass"
    with pytest.raises(ModelError, match="'stems' is not valid JSON"):
        validate_metadata(props)
