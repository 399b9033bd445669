"""Several class-stem runners on one input, their stems averaged, then re-masked: ``separate --shares``.

The blind path (``bridge.transcribe``) makes one hard choice per note: which class parts it joins
(every class whose probability reaches ``member_share`` of its best class's). ``ShareEnsemble`` hedges
it: one ``ScoredClasses`` per membership share, each with the parts that share lets in (the network
conditioned on them), all fed the same blocks; their stems, which have the same latency, are averaged
block by block and the average goes through the re-masking the plain path applies to its one run
(``StemRemask``). No temporary files and one pass over the input; an ensemble of one runner is that
runner with the re-masking after it, which is what ``ScoredClasses(remask=...)`` does itself. The runners'
blind network (the drums, which no share's parts condition) runs once per block for all of them.

Public API
----------
- ``ShareEnsemble(runners, remask_powers=None)``: ``runners`` (``ScoredClasses``, same model and settings,
  not re-masking themselves), ``remask_powers`` one per stem of theirs (None: no re-masking). Processor-shaped
  for ``bridge.backends.offline``: ``prepare(sample_rate, max_block_size, n_channels)``, ``process(audio)
  -> BlockResult`` (stems (n_stems, n_channels, n), the first runner's notes, delayed as the stems: put the
  runner whose notes count first),
  ``end_notes()``, ``stems``, ``latency_samples`` and ``latency_terms`` (the first runner's plus
  ``stem_remask``), ``n_bad_samples``. Each runner's score is set on the runner itself (they differ).
- ``WIDE_SHARES``, ``WIDE_NAME``: the shares ``--shares wide`` stands for; ``MAX_SHARES``.
- ``parse_shares(text, name="--shares") -> tuple[float, ...]``: "0.05,0.3" (or ``WIDE_NAME``) checked:
  numbers in (0, 1], none twice, at most ``MAX_SHARES``; ``InputError`` naming ``name`` otherwise.

The spread of the shares matters more than their count (selection set, seed 9002, 48 tracks, per track
against one separation at 0.3; BENCHMARKS.md stop 41): 0.05 / 0.3 / 1 (three runs: every class the note may
sound in, the default, its best class alone; ``bridge.transcribe.TRANSCRIBED_SHARES``, the default) bass +0.43,
piano +0.29, guitar +0.18, strings +0.65, other +0.21 dB mean; seven from 0.05 to 1 (``WIDE_SHARES``) +0.42 /
+0.31 / +0.22 / +0.68 / +0.20; five from 0.15 to 0.6 +0.28 / +0.25 / +0.21 / +0.42 / +0.14. Held out (seed
9001): three +0.48 / +0.41 / +0.18 / +0.88 / +0.28, seven +0.55 / +0.43 / +0.21 / +0.98 / +0.28.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bridge.engine import BlockResult, NoteDelay
from bridge.errors import InputError
from bridge.notes import NoteEvent
from bridge.parts.classes import BlindNetwork, ScoredClasses
from bridge.parts.fusion import StemRemask, remask_size_for

WIDE_SHARES = (0.05, 0.1, 0.2, 0.3, 0.45, 0.8, 1.0)  # more than the default's three, at twice its time
WIDE_NAME = "wide"
MAX_SHARES = 16


def parse_shares(text: str, name: str = "--shares") -> tuple[float, ...]:
    """See the module docstring."""
    if text.strip() == WIDE_NAME:
        return WIDE_SHARES
    try:
        shares = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise InputError(
            f"{name} takes membership shares in (0, 1] separated by commas, or {WIDE_NAME}, got {text!r}"
        ) from None
    if not all(0.0 < x <= 1.0 for x in shares):  # also NaN
        raise InputError(f"{name}: each share must be in (0, 1], got {text!r}")
    if len(set(shares)) != len(shares):
        raise InputError(f"{name}: a share given twice in {text!r}")
    if len(shares) > MAX_SHARES:
        raise InputError(f"{name}: at most {MAX_SHARES} shares, got {len(shares)}")
    return shares


class ShareEnsemble:
    """See the module docstring."""

    def __init__(self, runners: Sequence[ScoredClasses], remask_powers: Sequence[float] | None = None) -> None:
        if not runners:
            raise ValueError("ShareEnsemble needs at least one runner")
        if len({tuple(r.stems) for r in runners}) != 1:
            raise ValueError("ShareEnsemble: the runners give different stems")
        self.runners = list(runners)
        self.stems = tuple(runners[0].stems)
        self._blind: _OncePerBlock | None = None
        first = runners[0].blind
        if isinstance(first, _OncePerBlock):  # runners of an earlier ensemble
            first = first.network
        if first is not None and all(r.blind is not None for r in runners):  # one blind run serves every runner
            self._blind = _OncePerBlock(first)
            for r in runners:
                r.blind = self._blind
        self.remask_powers = None if remask_powers is None else list(remask_powers)
        self._remask: StemRemask | None = None
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}

    @property
    def n_bad_samples(self) -> int:
        return self.runners[0].n_bad_samples

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        for r in self.runners:
            r.prepare(sample_rate, max_block_size, n_channels)
        if len({r.latency_samples for r in self.runners}) != 1:
            raise ValueError("ShareEnsemble: the runners' latencies differ (other settings?)")
        first = self.runners[0]
        self.latency_terms = dict(first.latency_terms)
        self._remask = None
        delay = 0
        if self.remask_powers is not None:
            self._remask = StemRemask(self.remask_powers, *remask_size_for(sample_rate), n_channels, max_block_size)
            delay = self._remask.latency_samples
            self.latency_terms["stem_remask"] = delay
        self.latency_samples = first.latency_samples + delay
        self._notes = NoteDelay(delay)

    def process(self, audio: np.ndarray) -> BlockResult:
        if self._blind is not None:
            self._blind.new_block()
        results = [r.process(audio) for r in self.runners]
        if self._blind is not None:  # the result held for this block only: a runner run alone later runs the network
            self._blind.new_block()
        total = results[0].stems.astype(np.float32, copy=True)
        for res in results[1:]:
            total += res.stems
        total /= len(results)
        stems = total if self._remask is None else self._remask.process(total)
        return BlockResult(stems=stems, notes=self._notes.process(results[0].notes, audio.shape[1]))

    def end_notes(self) -> list[NoteEvent]:
        return self._notes.end(self.runners[0].end_notes())


class _OncePerBlock:
    """One blind network shared by several ``ScoredClasses`` fed the same blocks: the first ``process`` after
    ``new_block()`` runs it, the others get that result."""

    def __init__(self, network: BlindNetwork) -> None:
        self.network = network
        self._out: BlockResult | None = None

    def new_block(self) -> None:
        self._out = None

    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        self.network.prepare(sample_rate, max_block_size, n_channels)
        self._out = None

    def reset(self) -> None:
        self.network.reset()
        self._out = None

    def release(self) -> None:
        self.network.release()

    def process(self, audio: np.ndarray) -> BlockResult:
        if self._out is None:
            self._out = self.network.process(audio)
        return self._out
