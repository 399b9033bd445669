"""Pitch-equivariant harmonic network: shapes, bounds, causality, block-wise == whole-sequence through
the flat state, ONNX parity, pitch equivariance of the front end, masks never gated to silence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from export.models import build_model, model_config  # noqa: E402
from export.models.harmonic import (  # noqa: E402
    DRUM_CLASSES,
    Harmonic,
    HarmonicConfig,
    SparseMatMul,
    harmonic_comb,
    log_filterbank,
    semitone_interp,
)
from tests.conftest import rebuilt_model  # noqa: E402

SR, N_FFT, HOP = 44100, 2048, 512


def _inputs(b=2, t=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    spec = torch.rand(b, t, 1025, generator=g) ** 3 * 20
    score = (torch.rand(b, t, 5, 88, generator=g) < 0.05).float()
    return spec, score


@pytest.fixture(scope="module", params=[0, 1], ids=["plain", "salience"])
def model(request):
    torch.manual_seed(0)
    m = Harmonic(HarmonicConfig(salience=request.param)).eval()
    with torch.no_grad():
        m.log_mean.fill_(2.0)
        m.log_std.fill_(1.5)
        m.mask_out.mul_(4.0)  # masks spread over (0, 1)
        if request.param:  # the salience path starts at zero weight: give it some
            m.mask_sal.normal_(0.0, 0.1)
            m.sal_gain.fill_(0.3)
    m.requires_grad_(False)
    return m


def test_forward_shapes_and_bounds(model):
    spec, score = _inputs()
    masks, frame, onset, act, state = model(spec, score, model.initial_state(2))
    assert masks.shape == (2, 20, 5, 1025)
    assert frame.shape == onset.shape == (2, 20, 5, 88)
    assert act.shape == (2, 20, 5)
    assert state.shape == (2, model.state_size) == (2, model.cfg.state_size)
    assert float(masks.min()) > 0.0 and float(masks.sum(2).max()) <= 1.0 + 1e-5
    for p in (frame, onset, act):
        assert 0.0 <= float(p.min()) and float(p.max()) <= 1.0
    # drums: only the GM drum-class keys can fire
    off = np.setdiff1d(np.arange(88), np.array(DRUM_CLASSES) - 21)
    assert float(frame[:, :, 0, off].max()) < 1e-4 and float(frame[:, :, 0, np.array(DRUM_CLASSES) - 21].min()) > 1e-3


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


def test_blockwise_equals_whole_through_the_flat_state(model):
    spec, score = _inputs(t=25)
    st0 = torch.randn(2, model.state_size) * 0.5
    whole = model(spec, score, st0)
    st, outs = st0, []
    for a, b in ((0, 1), (1, 2), (2, 9), (9, 25)):
        o = model(spec[:, a:b], score[:, a:b], st)
        outs.append(o[:4])
        st = o[4]
    for i in range(4):
        torch.testing.assert_close(torch.cat([o[i] for o in outs], 1), whole[i], rtol=0, atol=1e-5)
    torch.testing.assert_close(st, whole[4], rtol=0, atol=1e-5)


def test_train_forward_matches_and_decodes_selected_frames(model):
    spec, score = _inputs(t=12)
    full = model.forward_train(spec, score)
    some = model.forward_train(spec, score, mask_frames=slice(1, None, 4))
    assert some["masks"].shape == (2, 3, 5, 1025)
    torch.testing.assert_close(some["masks"], full["masks"][:, 1::4], rtol=0, atol=1e-6)
    torch.testing.assert_close(some["note_frame_logit"], full["note_frame_logit"])
    ref = model(spec, score, model.initial_state(2))
    torch.testing.assert_close(torch.sigmoid(full["note_frame_logit"]), ref[1])


def test_score_changes_outputs(model):
    spec, score = _inputs()
    a = model(spec, torch.zeros_like(score), model.initial_state(2))
    b = model(spec, score, model.initial_state(2))
    assert not torch.allclose(a[0], b[0]) and not torch.allclose(a[1], b[1])


def test_activity_never_silences_a_stem(model):
    spec, score = _inputs(t=6)
    silent = rebuilt_model(model, silence_activity=True)  # activity ~ 0 for every stem
    m0, *_ = model(spec, score, model.initial_state(2))
    m1, _, _, act, _ = silent(spec, score, silent.initial_state(2))
    assert float(act.max()) < 1e-6
    torch.testing.assert_close(m1, m0)  # gate_floor = 1: no gating
    gated = rebuilt_model(silent, gate_floor=0.3)
    m2, *_ = gated(spec, score, gated.initial_state(2))
    torch.testing.assert_close(m2, 0.3 * m0, rtol=1e-5, atol=1e-7)  # a floor, never zero


def test_fixed_matrices():
    cfg = HarmonicConfig()
    fb = log_filterbank(cfg)
    assert fb.shape == (1025, cfg.n_log) and fb.max() <= 1.0 and (fb.max(0) > 0.4).all()
    # the log bin centred on A4 (MIDI 69) peaks at 440 Hz: between linear bins 20 and 21
    j = 3 * (69 - cfg.midi_low) + 1
    assert set(np.nonzero(fb[:, j])[0].tolist()) == {20, 21}
    lo, hi, w = semitone_interp(cfg)
    assert (hi == lo + 1).all() and (w >= 0).all() and (w <= 1).all()
    comb = harmonic_comb(cfg)
    a4 = comb[69 - 21]
    for h in (1, 2, 3, 5):
        assert a4[int(round(h * 440 / (SR / N_FFT)))] > 0.5
    assert a4[int(round(1.5 * 440 / (SR / N_FFT)))] == 0.0
    rng = np.random.default_rng(0)
    for w_ in (fb, np.where(rng.random((40, 300)) < 0.1, 1.0, 0.0).astype(np.float32)):
        x = torch.from_numpy(rng.standard_normal((3, w_.shape[0])).astype(np.float32))
        torch.testing.assert_close(SparseMatMul(w_)(x), x @ torch.from_numpy(w_), rtol=1e-5, atol=1e-4)


def test_front_end_is_exactly_equivariant_to_log_shifts(model):
    cfg = model.cfg
    g = torch.Generator().manual_seed(3)
    lm = torch.zeros(1, 4, cfg.n_log)
    lm[..., 60:200] = torch.randn(1, 4, 140, generator=g)  # content away from the edges
    up = torch.zeros_like(lm)
    up[..., 3:] = lm[..., :-3]  # one semitone up
    a = model.front_features_log(lm)
    b = model.front_features_log(up)
    # position 0 sees the convolution's zero padding, a shifted map real content: compare from 1 on
    torch.testing.assert_close(b[..., 2:], a[..., 1:-1], rtol=0, atol=1e-5)


def _tone(midi: float, n_harm: int = 6) -> np.ndarray:
    t = np.arange(N_FFT) / SR
    f0 = 440.0 * 2 ** ((midi - 69) / 12)
    x = sum(np.sin(2 * np.pi * h * f0 * t + h) / h for h in range(1, n_harm + 1))
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    return np.abs(np.fft.rfft(w * x)).astype(np.float32)


@pytest.mark.parametrize("midi", [57, 64, 69, 76])
def test_a_tone_one_semitone_up_shifts_the_features_one_key(model, midi):
    """Real STFT spectra of harmonic tones: the untrained front end's features of the tone a semitone
    up match the original's shifted by one position better than at any other shift."""
    a = model.front_features(torch.from_numpy(_tone(midi))[None, None])[0, :, 0]  # (C, P)
    b = model.front_features(torch.from_numpy(_tone(midi + 1))[None, None])[0, :, 0]
    lo, hi = midi - model.cfg.midi_low - 12, midi - model.cfg.midi_low + 24  # around the tone

    def sim(d: int) -> float:
        x, y = a[:, lo:hi].flatten(), b[:, lo + d : hi + d].flatten()
        return float(torch.nn.functional.cosine_similarity(x - x.mean(), y - y.mean(), dim=0))

    sims = {d: sim(d) for d in range(-3, 4)}
    assert max(sims, key=sims.get) == 1 and sims[1] > 0.9, sims


def test_registry_round_trip(model):
    cfg = model_config(model)
    assert cfg["arch"] == "harmonic"
    m2 = build_model(cfg)
    assert isinstance(m2, Harmonic) and m2.cfg == model.cfg
    m2.load_state_dict(model.state_dict())
    with pytest.raises(ValueError):
        build_model({"arch": "nope"})


def test_onnx_export_parity_and_runtime(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")  # noqa: F841
    from bridge.model import OnnxModel
    from export import onnx_export as ox
    from export.metadata import build_metadata

    meta = build_metadata("harm", ("drums", "bass", "piano", "guitar", "strings"), model.state_size)
    out = tmp_path / "harm.onnx"
    card = ox.export_model(model, out, meta, update_index_file=False, timing=False)
    assert card["architecture"]["type"] == "causal-harmonic-gru"
    assert card["metrics"]["onnx_parity_max_abs_err"] <= ox.PARITY_TOL
    rt = OnnxModel(str(out), n_threads=1)  # the runtime accepts it as is
    spec, score = _inputs(b=1, t=9)
    got = rt.run(spec.numpy(), score.numpy(), rt.zero_state(1))
    with torch.no_grad():
        ref = model(spec, score, model.initial_state(1))
    for a, b in zip(got, ref):
        np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-4)
