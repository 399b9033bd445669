"""bridge.parts.share_ensemble: the blind network shared by the runners of one ensemble, and the shares' parsing."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.engine import Processor
from bridge.errors import InputError
from bridge.parts.share_ensemble import WIDE_SHARES, _OncePerBlock, parse_shares
from tests.conftest import noise


def test_the_shared_blind_network_runs_once_per_block() -> None:
    """Within a block every runner gets the one run's result; each new block runs the network again (blocks of
    any size), exactly as a network of its own would."""
    shared, own = Processor("test-tiny"), Processor("test-tiny")
    for p in (shared, own):
        p.prepare(44100, 4096, 2)
    once = _OncePerBlock(shared)
    for n, seed in ((4096, 1), (1024, 2), (4096, 3)):
        x = noise(2, n, seed=seed)
        once.new_block()
        first, second = once.process(x), once.process(x)
        assert first is second and first.stems.shape[-1] == n
        np.testing.assert_array_equal(first.stems, own.process(x).stems)


def test_shares_parse_or_fail_in_one_line() -> None:
    assert parse_shares("0.05,0.3,1") == (0.05, 0.3, 1.0)
    assert parse_shares("wide") == WIDE_SHARES
    for text, why in (("x", "separated by commas"), ("0", r"in \(0, 1\]"), ("0.2,0.2", "given twice")):
        with pytest.raises(InputError, match=why):
            parse_shares(text)
