"""``plot_alignment(alignment, path)``: the warping path over the two feature matrices (PNG).

Three panels sharing axes: the recording's chroma along the bottom (time in seconds), the
score's chroma up the left side (score seconds), and in the middle the local cost matrix
(chroma term, dark = similar, at most ``MAX_CELLS`` per side) with the warping path drawn over
it. A path that follows the dark valley from corner to corner is an alignment that worked; one
that wanders over a uniform grey matrix is not. Needs matplotlib (``InputError`` with one line without it).
"""

from __future__ import annotations

import os

import numpy as np

from bridge.align.core import Alignment
from bridge.errors import InputError

MAX_CELLS = 800
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def plot_alignment(alignment: Alignment, path: str | os.PathLike[str], title: str = "") -> None:
    """Write the plot to ``path`` (the format from its extension, PNG by default)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install matplotlib") from None
    audio, score = alignment.audio, alignment.score
    step = max(1, -(-max(audio.n_frames, score.n_frames) // MAX_CELLS))
    a, s = audio.downsample(step), score.downsample(step)
    cost = 1.0 - a.chroma.T @ s.chroma  # (recording, score)
    rec_end = audio.n_frames * audio.hop_s
    sc0 = alignment.score_start_s
    sc1 = sc0 + score.n_frames * score.hop_s
    fig = plt.figure(figsize=(9, 8))
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 5), height_ratios=(5, 1), wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(grid[0, 1])
    ax.imshow(cost.T, origin="lower", aspect="auto", cmap="gray", extent=(0, rec_end, sc0, sc1))
    p = alignment.path
    ax.plot(p[:, 0] * audio.hop_s, sc0 + p[:, 1] * score.hop_s, color="tab:red", lw=1.2, label="warping path")
    ax.set_title(f"{title or 'alignment'} (confidence {alignment.confidence:.2f})")
    ax.legend(loc="upper left")
    ax.tick_params(labelbottom=False, labelleft=False)
    ax_s = fig.add_subplot(grid[0, 0], sharey=ax)
    ax_s.imshow(s.chroma.T, origin="lower", aspect="auto", cmap="magma", extent=(0, 12, sc0, sc1))
    ax_s.set_ylabel("score (s)")
    ax_s.set_xticks(np.arange(12) + 0.5, _PITCH_CLASSES, fontsize=5, rotation=90)
    ax_a = fig.add_subplot(grid[1, 1], sharex=ax)
    ax_a.imshow(a.chroma, origin="lower", aspect="auto", cmap="magma", extent=(0, rec_end, 0, 12))
    ax_a.set_xlabel("recording (s)")
    ax_a.set_yticks(np.arange(12) + 0.5, _PITCH_CLASSES, fontsize=5)
    try:
        fig.savefig(os.fspath(path), dpi=110, bbox_inches="tight")
    except OSError as e:
        raise InputError(f"cannot write {os.fspath(path)}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
