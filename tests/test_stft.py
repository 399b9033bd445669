import numpy as np
import pytest

from bridge.stft import StreamingAnalysis, StreamingSynthesis

N_FFT, HOP = 2048, 512


def _roundtrip(x: np.ndarray, block: int) -> np.ndarray:
    ana = StreamingAnalysis(N_FFT, HOP, x.shape[0])
    syn = StreamingSynthesis(N_FFT, HOP, 1, x.shape[0])
    outs = [syn.push(ana.push(x[:, i : i + block])[:, None]) for i in range(0, x.shape[1], block)]
    return np.concatenate(outs, axis=2)[0]


@pytest.mark.parametrize("block", [1, 100, 512, 3000])
def test_unit_mask_reconstructs_input_aligned(block: int) -> None:
    x = np.random.default_rng(1).standard_normal((2, 9000)).astype(np.float32)
    y = _roundtrip(x, block)
    # after k frames the output runs to sample (k + 1) * hop - (n_fft - hop)
    n_frames = 9000 // HOP
    assert y.shape == (2, n_frames * HOP - (N_FFT - HOP))
    np.testing.assert_allclose(y, x[:, : y.shape[1]], atol=2e-6)


def test_frame_grid_and_empty_push() -> None:
    ana = StreamingAnalysis(N_FFT, HOP, 1)
    assert ana.push(np.zeros((1, 0), np.float32)).shape == (0, 1, N_FFT // 2 + 1)
    assert ana.push(np.zeros((1, HOP - 1), np.float32)).shape[0] == 0
    spec = ana.push(np.ones((1, 1), np.float32))  # completes frame 0 = samples [hop - n_fft, hop)
    assert spec.shape == (1, 1, N_FFT // 2 + 1)
    # frame 0 holds one non-zero sample at its last position
    assert abs(spec[0, 0, 0]) > 0
