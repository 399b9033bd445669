"""Causal Cerberus network: shapes, mask bounds, causality, block-wise == whole-sequence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.models.cerberus import Cerberus, CerberusConfig, band_interp  # noqa: E402
from tests.conftest import rebuilt_model  # noqa: E402

SMALL = CerberusConfig(n_audio=24, n_score=8, hidden=16, n_layers=2, n_bands=40, n_linear_bins=16, dc_dim=4)


def _inputs(b=2, t=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    spec = torch.rand(b, t, 1025, generator=g) ** 3 * 20
    score = (torch.rand(b, t, 5, 88, generator=g) < 0.05).float()
    return spec, score


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Cerberus(SMALL).eval()


def test_forward_shapes_and_bounds(model):
    spec, score = _inputs()
    masks, frame, onset, act, state = model(spec, score, model.initial_state(2))
    assert masks.shape == (2, 20, 5, 1025)
    assert frame.shape == onset.shape == (2, 20, 5, 88)
    assert act.shape == (2, 20, 5)
    assert state.shape == (2, SMALL.hidden * SMALL.n_layers) == (2, model.state_size)
    assert float(masks.min()) >= 0.0 and float(masks.sum(2).max()) <= 1.0 + 1e-5
    for p in (frame, onset, act):
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0


def test_band_interp_is_convex_and_exact_on_linear_bins():
    lo, hi, w = band_interp(1025, 40, 16)
    assert (w >= 0).all() and (w <= 1).all()
    # each of the 16 linear bins is exactly one band: weight 0 or 1, and the band it takes is its own
    assert set(w[:16].tolist()) <= {0.0, 1.0}
    assert np.where(w[:16] >= 0.5, hi[:16], lo[:16]).tolist() == list(range(16))


def test_causal_future_does_not_change_past(model):
    spec, score = _inputs(t=30)
    spec2, score2 = spec.clone(), score.clone()
    spec2[:, 17:] = torch.rand_like(spec2[:, 17:]) * 50
    score2[:, 17:] = 1.0 - score2[:, 17:]
    a = model(spec, score, model.initial_state(2))
    b = model(spec2, score2, model.initial_state(2))
    for x, y in zip(a[:4], b[:4]):
        torch.testing.assert_close(x[:, :17], y[:, :17], rtol=0, atol=1e-6)
        assert not torch.allclose(x[:, 17:], y[:, 17:])


def test_blockwise_equals_whole(model):
    spec, score = _inputs(t=25)
    whole = model(spec, score, model.initial_state(2))
    st = model.initial_state(2)
    outs = []
    for a, b in ((0, 1), (1, 9), (9, 25)):
        o = model(spec[:, a:b], score[:, a:b], st)
        outs.append(o[:4])
        st = o[4]
    for i in range(4):
        torch.testing.assert_close(torch.cat([o[i] for o in outs], 1), whole[i], rtol=0, atol=1e-5)
    torch.testing.assert_close(st, whole[4], rtol=0, atol=1e-5)


def test_score_changes_outputs(model):
    spec, score = _inputs()
    a = model(spec, torch.zeros_like(score), model.initial_state(2))
    b = model(spec, score, model.initial_state(2))
    assert not torch.allclose(a[0], b[0])


def test_training_outputs_and_embedding(model):
    spec, score = _inputs(t=10)
    o = model.forward_train(spec, score)
    assert o["note_frame_logit"].shape == (2, 10, 5, 88)
    v = model.embed(o["features"], torch.tensor([0, 5, 39]))
    assert v.shape == (2, 10, 3, SMALL.dc_dim)
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(2, 10, 3), rtol=0, atol=1e-5)


def test_gate_floor_sets_how_far_activity_gates_the_masks(model):
    spec, score = _inputs(t=6)
    silent = rebuilt_model(model, silence_activity=True)  # activity ~ 0 for every stem
    m0, _, _, act, _ = silent(spec, score, silent.initial_state(2))
    assert float(act.max()) < 1e-6 and float(m0.max()) < 1e-6  # gate_floor 0 (as trained): silenced
    reference = rebuilt_model(model, gate_floor=1.0)  # activity as the weights give it, not gating
    m_ref, *_ = reference(spec, score, reference.initial_state(2))
    assert float(m_ref.sum(2).min()) > 1e-3  # the stems share what the residual slot leaves
    ungated = rebuilt_model(silent, gate_floor=1.0)
    m1, *_ = ungated(spec, score, ungated.initial_state(2))
    torch.testing.assert_close(m1, m_ref)  # whatever the activity
    floored = rebuilt_model(silent, gate_floor=0.3)
    m2, *_ = floored(spec, score, floored.initial_state(2))
    torch.testing.assert_close(m2, 0.3 * m_ref, rtol=1e-5, atol=1e-7)  # a floor, never zero
    for p in (ungated, floored):  # the gate changes the masks only: notes, activity and state stay
        a, b = silent(spec, score, silent.initial_state(2)), p(spec, score, p.initial_state(2))
        for x, y in zip(a[1:], b[1:]):
            torch.testing.assert_close(x, y)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="gate_floor"):
            CerberusConfig(gate_floor=bad)
