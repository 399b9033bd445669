"""``bench/parts_select.py``: a variant's JSON maps onto the parts' settings, and a typo is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.parts_select import settings_of  # noqa: E402


def test_a_variant_sets_both_the_parts_and_the_decomposition_fields() -> None:
    s = settings_of({"release_s": 0.05, "unscored_semitones": 0, "mask_power": 2.0})
    assert s.release_s == 0.05
    assert s.decomposition.unscored_semitones == 0 and s.decomposition.mask_power == 2.0
    default = settings_of({})
    assert default.decomposition.unscored_semitones == 2 and default.release_s == 0.15


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown setting"):
        settings_of({"unscored_semitone": 1})
