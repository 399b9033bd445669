"""The Processor with a real onnxruntime session (the shipped untrained test model)."""

from __future__ import annotations

import numpy as np
import pytest

from bridge.engine import Processor
from bridge.errors import InputError
from bridge.model import OnnxModel
from tests.conftest import model_variant, noise

LOOKAHEAD_FRAMES = 2


@pytest.fixture(scope="module")
def lookahead_model(tmp_path_factory) -> OnnxModel:
    """The test model declaring ``LOOKAHEAD_FRAMES`` of look-ahead: its masks for frame k arrive
    with frame k + 2 (the network is the same causal one; the engine's delay logic is what runs)."""

    def declare(props: dict[str, str]) -> None:
        hop = int(props["hop"])
        props["lookahead_frames"] = str(LOOKAHEAD_FRAMES)
        props["latency_samples"] = str(int(props["n_fft"]) - hop + LOOKAHEAD_FRAMES * hop)

    return OnnxModel(str(model_variant(tmp_path_factory.mktemp("lookahead"), "lookahead.onnx", declare)))


@pytest.fixture(params=["causal", "lookahead"])
def silence_model(request, tiny_model, lookahead_model) -> OnnxModel:
    """The test model as shipped and with declared look-ahead (the silence rule's two branches)."""
    return tiny_model if request.param == "causal" else lookahead_model


def _run(proc: Processor, x: np.ndarray, block: int, rate: int) -> np.ndarray:
    proc.prepare(rate, block, x.shape[0])
    outs = [proc.process(x[:, i : i + block]).stems for i in range(0, x.shape[1], block)]
    return np.concatenate(outs, axis=2)


@pytest.mark.parametrize("rate", [44100, 48000, 88200])
def test_block_size_invariance(tiny_model, rate: int) -> None:
    proc = Processor(tiny_model)
    x = noise(2, 12000, seed=3)
    ref = _run(proc, x, 4096, rate)
    for block in (1, 64, 441, 1000):
        out = _run(proc, x, block, rate)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-6, err_msg=f"block {block}")


def _with_silence(head: np.ndarray, n_silent: int, piece: np.ndarray) -> np.ndarray:
    return np.concatenate([head, np.zeros((head.shape[0], n_silent), np.float32), piece], axis=1)


@pytest.mark.parametrize("rate", [44100, 48000])
def test_block_size_invariance_across_silence(silence_model, rate: int) -> None:
    proc = Processor(silence_model)
    x = _with_silence(
        noise(2, 5000, seed=8), 4000, _with_silence(noise(2, 3000, seed=9), 7000, noise(2, 4000, seed=10))
    )
    ref = _run(proc, x, 4096, rate)
    for block in (1, 64, 441, 1000):
        np.testing.assert_allclose(_run(proc, x, block, rate), ref, atol=1e-6, err_msg=f"block {block}")


@pytest.mark.parametrize("rate", [44100, 48000])
def test_what_played_before_a_silence_does_not_change_what_follows(silence_model, rate: int) -> None:
    """After digital silence the network starts again from its zero state, as a file does offline."""
    proc = Processor(silence_model)
    piece = noise(2, 9000, seed=11)
    a = _run(proc, _with_silence(noise(2, 8000, seed=12), 6000, piece), 256, rate)
    b = _run(proc, _with_silence(np.zeros((2, 8000), np.float32), 6000, piece), 256, rate)
    c = _run(proc, _with_silence(noise(2, 8000, seed=13), 1000, piece), 256, rate)  # a gap shorter than a frame
    start = 14000 + proc.latency_samples
    predicted = slice(0, len(proc.stems) - 1)
    np.testing.assert_allclose(a[:, :, start:], b[:, :, start:], atol=1e-6)
    carried = c[predicted, :, start - 5000 :] - a[predicted, :, start:]  # the state carried through the gap
    assert np.abs(carried).max() > 1e-3


@pytest.mark.parametrize("rate", [44100, 48000])
def test_silence_after_a_piece_does_not_cut_its_end(silence_model, rate: int) -> None:
    """The frames before a digital silence keep the masks the network gives them (with look-ahead,
    those of the last frames come from the silent frames after them: the network still runs there)."""
    proc = Processor(silence_model)
    piece = noise(2, 9000, seed=14)
    a = _run(proc, _with_silence(piece, 8000, np.zeros((2, 0), np.float32)), 256, rate)
    hiss = 1e-7 * noise(2, 8000, seed=15)  # not digital silence: the network runs on it
    b = _run(proc, np.concatenate([piece, hiss], axis=1), 256, rate)
    end = 9000 + proc.latency_samples
    np.testing.assert_allclose(a[:, :, :end], b[:, :, :end], atol=1e-4)


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize("n_channels", [1, 2])
def test_stems_sum_to_delayed_input(tiny_model, rate: int, n_channels: int) -> None:
    proc = Processor(tiny_model)
    x = noise(n_channels, 20000, seed=4)
    out = _run(proc, x, 1000, rate)
    assert out.shape == (len(proc.stems), n_channels, x.shape[1])
    assert out.dtype == np.float32
    lat = proc.latency_samples
    np.testing.assert_allclose(out.sum(axis=0)[:, lat:], x[:, : x.shape[1] - lat], atol=1e-5)
    assert np.all(out.sum(axis=0)[:, :lat] == 0)
    # the predicted stems are not trivially silent or equal to the input
    predicted = out[:-1, :, lat:]
    assert 0.01 < np.abs(predicted).mean() / np.abs(x).mean() < 0.99


@pytest.mark.parametrize("rate", [44100, 48000, 96000])
def test_impulse_and_stem_path_come_out_at_latency(tiny_model, rate: int) -> None:
    proc = Processor(tiny_model)
    x = np.zeros((1, 30000), np.float32)
    x[0, 5000] = 1.0
    out = _run(proc, x, 256, rate)
    lat = proc.latency_samples
    assert lat == sum(proc.latency_terms.values())
    total = out.sum(axis=0)[0]
    assert int(np.argmax(np.abs(total))) == 5000 + lat
    # the masked (zero-phase) stem path is aligned too: broadband noise cross-correlates
    # with the sum of predicted stems at exactly the reported latency
    y = noise(1, 30000, seed=5)
    out = _run(proc, y, 512, rate)
    pred = out[:-1, 0].sum(axis=0)
    lags = np.arange(lat - 40, lat + 41)
    xc = [np.dot(pred[k : k + 20000], y[0, :20000]) for k in lags]
    assert int(lags[int(np.argmax(xc))]) == lat


def test_latency_terms_named(tiny_model) -> None:
    proc = Processor(tiny_model)
    proc.prepare(44100, 256, 2)
    meta = proc.meta
    assert proc.latency_terms == {
        "stft_overlap": meta.n_fft - meta.hop,
        "frame_buffering": meta.hop - 1,
        "lookahead": 0,
    }
    proc.prepare(48000, 256, 2)
    assert proc.latency_terms["resampling"] > 0
    assert proc.latency_samples == sum(proc.latency_terms.values())


@pytest.mark.parametrize("rate", [48000, 88200, 96000])
def test_resampling_adds_at_most_3_ms(tiny_model, rate: int) -> None:
    """The in and out polyphase stages together (issue 13): the ``resampling`` term, which also
    absorbs the rounding of the model terms to host samples, stays within 3 ms."""
    proc = Processor(tiny_model)
    proc.prepare(rate, 64, 2)
    assert 0 < proc.latency_terms["resampling"] <= 0.003 * rate


@pytest.mark.parametrize("rate", [48000, 96000])
def test_impulse_through_the_stem_path_peaks_at_latency(tiny_model, rate: int) -> None:
    """An impulse's energy in the predicted stems (host -> 44.1 kHz -> STFT -> host) peaks at
    exactly the reported latency, with block size 1: the stem FIFO never runs short."""
    proc = Processor(tiny_model)
    x = np.zeros((1, 12000), np.float32)
    x[0, 3000] = 1.0
    out = _run(proc, x, 1, rate)
    pred = out[:-1, 0].sum(axis=0)
    assert int(np.argmax(np.abs(pred))) == 3000 + proc.latency_samples
    assert np.all(out[-1, 0, : proc.latency_samples] == 0)


def test_zero_length_blocks_and_bad_samples(tiny_model) -> None:
    proc = Processor(tiny_model)
    proc.prepare(44100, 512, 2)
    res = proc.process(np.zeros((2, 0), np.float32))
    assert res.stems.shape == (len(proc.stems), 2, 0)
    x = noise(2, 8000, seed=6)
    x[0, 100:200] = np.nan
    x[1, 300] = np.inf
    x[1, 400] = -np.inf
    out = np.concatenate([proc.process(x[:, i : i + 512]).stems for i in range(0, 8000, 512)], axis=2)
    assert np.isfinite(out).all()
    assert proc.n_bad_samples == 102
    with pytest.raises(InputError):
        proc.process(np.zeros((3, 10), np.float32))


def test_reset_restores_initial_state(tiny_model) -> None:
    proc = Processor(tiny_model)
    x = noise(2, 6000, seed=7)
    a = _run(proc, x, 500, 44100)
    proc.reset()
    b = np.concatenate([proc.process(x[:, i : i + 700]).stems for i in range(0, 6000, 700)], axis=2)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_live_score_config_steers_and_survives_reset(tiny_model) -> None:
    x = noise(2, 16000, seed=8)
    notes_on = [(0, bytes([0x90, 40, 100]))]  # channel 1 (0-based 0), no program change: piano

    def run(proc: Processor) -> np.ndarray:
        outs = []
        for i in range(0, 16000, 1000):
            outs.append(proc.process(x[:, i : i + 1000], notes_on if i == 0 else ()).stems)
        return np.concatenate(outs, axis=2)

    proc = Processor(tiny_model)
    proc.prepare(44100, 1000, 2)
    as_piano = run(proc)
    proc.set_live_score({0: "bass"}, score_offset_ms=0.0)
    proc.reset()
    as_bass = run(proc)
    proc.reset()
    again = run(proc)
    assert np.abs(as_bass - as_piano).max() > 1e-4  # the score input reached the model
    np.testing.assert_allclose(again, as_bass, atol=1e-6)  # the map survives reset


def test_softened_masks_share_each_bin_and_power_one_keeps_the_masks() -> None:
    """``softened_masks``: powers 1 give the masks back (but the 1e-3 floor left to ``other``); powers
    under 1 move the stems' masks towards each other; every bin sums to at most 1 over the stems; a bin
    the stems claim with masks summing past 1 is still shared (no negative ``other``)."""
    from bridge.engine import MASK_FLOOR, softened_masks

    rng = np.random.default_rng(0)
    masks = (rng.random((7, 3, 50)) * 0.33).astype(np.float32)
    np.testing.assert_allclose(softened_masks(masks, np.ones(4, np.float32)), masks / (1 + MASK_FLOOR), rtol=1e-5)
    soft = softened_masks(masks, np.full(4, 0.5, np.float32))
    assert np.all(soft.sum(axis=1) <= 1.0 + 1e-6) and np.all(soft >= 0.0)
    assert np.std(soft, axis=1).mean() < np.std(masks, axis=1).mean()  # the stems' shares closer together
    over = np.full((1, 3, 1), 0.9, np.float32)  # the network claims 2.7 of the bin
    np.testing.assert_allclose(softened_masks(over, np.ones(4, np.float32)).sum(), 2.7 / (2.7 + 1.7 + MASK_FLOOR))


def test_mask_powers_keep_the_sum_the_latency_and_block_size_invariance(tiny_model) -> None:
    """``Processor(mask_powers=)``: softened masks in the network's own STFT: no latency more, the stems
    still sum to the delayed input, independent of the block size, and not the plain masks' stems; bad
    powers are refused."""
    x = noise(2, 20000, seed=4)
    plain = Processor(tiny_model)
    ref = _run(plain, x, 1000, 44100)
    powers = [0.75, 0.4, 0.4, 0.4, 0.3, 0.6]
    soft = Processor(tiny_model, mask_powers=powers)
    out = _run(soft, x, 1000, 44100)
    lat = soft.latency_samples
    assert lat == plain.latency_samples
    np.testing.assert_allclose(out.sum(axis=0)[:, lat:], x[:, : x.shape[1] - lat], atol=1e-5)
    np.testing.assert_allclose(_run(soft, x, 64, 44100), out, atol=1e-6)
    assert not np.allclose(out[:-1], ref[:-1], atol=1e-3)
    for bad in ([0.5] * 5, [0.0] * 6, [5.0] * 6):
        with pytest.raises(ValueError, match="mask powers"):
            Processor(tiny_model, mask_powers=bad)


def test_a_runner_that_skips_note_decoding_gives_the_same_stems_and_no_notes(tiny_model) -> None:
    """``decode_notes = False`` (a runner whose notes nobody reads, as the share ensemble's later runners):
    the stems are unchanged, no note is decoded or flushed."""
    x = noise(2, 44100, seed=5)

    def run(decode: bool) -> tuple[np.ndarray, list]:
        proc = Processor(tiny_model)
        proc.decode_notes = decode
        proc.prepare(44100, 4096, 2)
        stems, notes = [], []
        for i in range(0, x.shape[1], 4096):
            res = proc.process(x[:, i : i + 4096])
            stems.append(res.stems)
            notes += res.notes
        return np.concatenate(stems, axis=2), notes + proc.end_notes()

    stems_on, notes_on = run(True)
    stems_off, notes_off = run(False)
    assert notes_on, "the test model decodes notes from this input"
    assert notes_off == []
    np.testing.assert_array_equal(stems_off, stems_on)
