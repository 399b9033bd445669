"""Streaming score-informed decomposition: magnitude frames + score gates in, part masks out.

Each sounding (part, pitch) of the score owns a spectral template (``templates.py``): a
harmonic comb for pitched parts, a broadband spectrum for drum notes, plus one background
template that takes what the score does not explain. A frame's magnitude spectrum ``v`` is
modelled as ``W h`` with activations ``h >= 0`` allowed only for the templates the score gates
on in that frame (KL multiplicative updates keep the others at exactly 0). Part ``p``'s mask is
``(W_p h_p)^a / sum_q (W_q h_q)^a`` (``a`` = ``mask_power``), the background's share going to
the residual, so parts + residual = 1.

Templates adapt online to the recording. The multiplicative update of a template is the
running average of the spectrum it explained (``W_k . sum_t h_kt v_t / (W h)_t``), so each
template keeps exponentially forgotten statistics over the past ``memory_s`` seconds and is
re-estimated every ``update_every_frames`` frames (at frame indices that are multiples of it,
so the output does not depend on how frames are batched), blended with its starting comb by
a prior worth ``prior_frames`` frames. Support stays the comb's support, and a template that
did not sound keeps its shape. A new pitch of a part starts from the harmonic amplitudes the
part's nearest adapted pitch has learned (``share_timbre``), and a template that has not
sounded yet takes it again when a scored note needs it (``refresh_unheard``: a candidate
pitch's template made early would otherwise keep the comb or a stale copy).

Notes the score missed: in a part's rests (a drum part: always), the pitches it played in the
last ``unscored_memory_s`` seconds stay candidates, and for a pitched part those up to
``unscored_semitones`` (2) away from them (a missing note of a line is mostly a step from its
neighbours; they must find ten times the unexplained fundamental an old pitch needs, so a rest
stays silent beside a line whose noise lies there). A pitched part's release tails and early
openings count as rests too, with a stricter test (``unscored_tail_f0_share``): a note deleted
after another starts inside the previous note's tail. After the scored fit, a pitched candidate
whose fundamental finds magnitude the scored notes leave unexplained (a deleted note shows its
fundamental; an old pitch whose upper partials coincide with another part's notes does not),
both as a share of the frame and as a share of what a usual note of its part shows there
(``unscored_level_share``: the part's explained magnitude per sounding frame, forgotten like the
templates, so reverb or a neighbour's leakage in a real rest does not pass), joins a second fit
with an L1 weight, so the note lands in its own part rather than in the parts whose partials it
shares. Unscored activations never teach the templates. On the selection sets (seeds 9002 /
9202) this took the cost of deleting 10 % of the notes on chamber music from 4.1 to 2.9 dB and
left clean scores as they were (stop 19); the tails, the part level, the unheard templates'
refresh and the looser thresholds of stop 25 add, paired per part, +0.44 dB with 10 % deleted
and +0.13 dB clean on chamber (seed 9202), nothing on band (seed 9002, 48 tracks; BENCHMARKS.md).

Public API
----------
- ``DecompositionSettings``: the knobs, with measured defaults.
- ``ScoreDecomposition(sample_rate, n_fft, hop, is_drum, settings)``:
  ``masks(mag, active, first_frame, tails) -> (n_frames, n_parts, n_bins) float32`` with
  ``mag`` (n_frames, n_bins), ``active`` (n_frames, n_parts, 128) bool and ``tails``
  (n_frames, n_parts) bool (where a part's gates are open only for a release tail or an early
  opening: ``PartGates.rows_and_tails``); frames must come in order (``first_frame`` continues
  the previous call).
  ``start(mag, active, first_frame, tails)`` then ``finish() -> masks``: ``masks`` in two halves
  (the activations, then the statistics and masks of the last segment), for a live caller that
  puts them on different blocks; nothing else may come between them but ``settle`` (which waits)
  and ``reset``. ``settle()`` runs a template re-estimation that has fallen due (a live caller, in a block with
  no frame, so it does not land on one that decomposes a frame; otherwise it runs before the next
  frame). ``reset()`` forgets everything learned.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bridge.parts.templates import (
    background_template,
    drum_template,
    fundamental_bins,
    harmonic_template,
    n_partials_of,
    partial_amplitudes,
    smoothing_bands,
    warm_layouts,
)

N_PITCHES = 128
_EPS = 1e-12
# the template statistics' forgetting is folded into them once it falls below this (kept apart
# until then, see ``ScoreDecomposition.reset``); a test folds at every segment to check the two agree
FOLD_BELOW = 1e-60


@dataclass(frozen=True)
class DecompositionSettings:
    """Knobs of the decomposition; the defaults are the ones ``bench/parts.py`` measured best."""

    n_iter: int = 12  # multiplicative updates of the activations per frame
    update_every_frames: int = 16  # template re-estimation period
    memory_s: float = 20.0  # forgetting time constant of the template statistics
    prior_frames: float = 8.0  # weight of the starting template, in frames of evidence
    mask_power: float = 1.5  # exponent of the soft masks (selection sets: band +0.34 dB, chamber +0.15 over 1.0)
    background: bool = False  # a free broadband component whose share goes to the residual (measured: worse)
    share_timbre: bool = True  # new pitches start from the part's learned partial amplitudes
    share_min_frames: float = 20.0  # evidence a template needs before others copy it
    # drum templates kept smooth envelopes (1/3-octave bands): chosen on 8 band tracks with the kit from the
    # score (commit 3fc1148); on 48 (stop 23) templates free to learn lines read better, paired mean per part +0.16 dB
    # with the network's kit and with the score's, +0.04 with 10 % of the notes deleted
    smooth_drums: bool = False
    unscored_memory_s: float = 10.0  # a part's pitches of the last this many seconds may sound unscored (0: off)
    unscored_penalty: float = 0.03  # L1 weight (> 0) on unscored activations in the part's rests
    unscored_f0_share: float = 0.003  # unexplained share of the frame a pitched candidate's fundamental must find
    unscored_neighbour_f0_share: float = 0.03  # the same for a neighbouring pitch (``unscored_semitones``)
    unscored_admit: float = 0.5  # share of a drum candidate's (template-weighted) magnitude left unexplained
    unscored_min_share: float = 0.05  # an unscored note explaining less of its frame's magnitude is dropped
    unscored_semitones: int = 2  # a pitched part's candidates also lie this many semitones around its recent pitches
    refresh_unheard: bool = True  # a template that never sounded copies its part's timbre again for a scored note
    unscored_tail_f0_share: float = 0.03  # the fundamental test where a part's gates are open only for a tail
    unscored_level_share: float = 0.1  # a candidate's fundamental must also show this share of its part's usual level


def _power(x: np.ndarray, a: float) -> np.ndarray:
    """``x ** a`` for x >= 0, in place where it can be (1.5 and 2 without ``pow``)."""
    if a == 1.0:
        return x
    if a == 1.5:
        return np.multiply(x, np.sqrt(x), out=x)
    if a == 2.0:
        return np.multiply(x, x, out=x)
    return np.power(x, a, out=x)


class ScoreDecomposition:
    """Online score-gated NMF (KL) on magnitude frames; see the module docstring."""

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop: int,
        is_drum: Sequence[bool],
        settings: DecompositionSettings | None = None,
    ) -> None:
        self.sample_rate, self.n_fft, self.hop = int(sample_rate), int(n_fft), int(hop)
        self.n_bins = n_fft // 2 + 1
        self.is_drum = tuple(bool(d) for d in is_drum)
        self.n_parts = len(self.is_drum)
        self._pitched_col = ~np.asarray(self.is_drum, bool)[:, None]  # (P, 1): parts that can rest
        self.settings = settings or DecompositionSettings()
        self._decay_per_frame = float(np.exp(-hop / (sample_rate * self.settings.memory_s)))
        self._bands = smoothing_bands(sample_rate, n_fft)
        self._band_width = self._bands.sum(axis=0)
        # each pitch's first partial: a contiguous run of bins, [lo, lo + width)
        self._f0_lo = np.zeros(N_PITCHES, np.int64)
        self._f0_width = np.zeros(N_PITCHES, np.int64)
        self._f0_span = np.arange(0)
        if not all(self.is_drum):
            self._prepare_pitched()
        self.reset()

    def _prepare_pitched(self) -> None:
        """The comb layouts and each pitch's fundamental bins (``_f0_lo``, ``_f0_width``), which pitched parts need."""
        warm_layouts(self.sample_rate, self.n_fft)
        for pitch in range(N_PITCHES):
            bins = np.sort(fundamental_bins(pitch, self.sample_rate, self.n_fft))
            self._f0_lo[pitch], self._f0_width[pitch] = bins[0], len(bins)
        self._f0_span = np.arange(int(self._f0_width.max()))

    def set_drum(self, part: int, is_drum: bool) -> None:
        """Make ``part`` a drum part (broadband templates) or a pitched one (combs), as a live
        program change does; its templates start again from the new kind, the others keep theirs."""
        if self.is_drum[part] == bool(is_drum):
            return
        if self._started is not None:
            raise RuntimeError("finish() the frames started before changing a part's kind")
        self.settle()  # a re-estimation due first, as if it had run at its frame
        self.is_drum = tuple(bool(is_drum) if i == part else d for i, d in enumerate(self.is_drum))
        self._pitched_col = ~np.asarray(self.is_drum, bool)[:, None]
        if not is_drum and not self._f0_width.any():
            self._prepare_pitched()
        for (q, pitch), k in self._index.items():
            if q == part:
                sr, n = self.sample_rate, self.n_fft
                w0 = drum_template(self.n_bins) if is_drum else harmonic_template(pitch, sr, n, None)
                self._W[k], self._W0[k], self._S[k], self._C[k] = w0, w0, 0.0, 0.0
                self._made_in.pop(k, None)
        self._amps_cache.clear()
        self._cols.clear()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        """Forget every template and statistic (the next frame starts from the combs)."""
        self._index: dict[tuple[int, int], int] = {}
        self._part_of: list[int] = []
        self._pitch_of: list[int] = []
        cap = 64
        self._W = np.zeros((cap, self.n_bins), np.float32)  # current templates, unit sum
        self._W0 = np.zeros((cap, self.n_bins), np.float32)  # starting templates
        self._S = np.zeros((cap, self.n_bins), np.float64)  # explained spectra, forgotten (times _unforgotten)
        self._C = np.zeros(cap, np.float64)  # frames of evidence, forgotten (times _unforgotten)
        # the forgetting so far, kept apart from _S and _C (they hold every template's statistics;
        # multiplying them every frame cost a tenth of the frame): their values are _S * _unforgotten,
        # _C * _unforgotten; folded into them only once it falls below FOLD_BELOW (``_fold``)
        self._unforgotten, self._frames_unforgotten = 1.0, 0
        self._touched: set[int] = set()  # templates with new evidence since the last re-estimation
        self._epoch = 0  # re-estimations so far
        self._update_due = False  # a re-estimation falls due before the next frame (``settle``)
        self._started: tuple | None = None  # (masks, first row, fit) of ``start`` awaiting ``finish``
        self._cols: dict[tuple[int, int, bool], int] = {}  # _template_for's answers this epoch (they hold within one)
        self._ready: dict[int, tuple] = {}  # part -> (sorted pitches, templates) others may copy
        self._amps_cache: dict[tuple[int, int], np.ndarray | None] = {}  # (template, n partials) -> amplitudes
        self._made_in: dict[int, int] = {}  # pitched template -> the epoch its starting shape was copied in
        self._C_ready = np.zeros(0, np.float64)  # evidence as of the last re-estimation (for sharing)
        self._level_S = np.zeros(self.n_parts, np.float64)  # a part's explained magnitude per sounding frame, forgotten
        self._level_C = np.zeros(self.n_parts, np.float64)
        self._level_ready = np.zeros(self.n_parts, np.float64)  # as of the last re-estimation
        self._next_frame = 0
        self._last_on = np.full((self.n_parts, N_PITCHES), -(10**9), np.int64)  # last scored frame per pitch
        if self.settings.background:
            self._new_template(-1, -1, background_template(self.n_bins))

    def _new_template(self, part: int, pitch: int, w0: np.ndarray) -> int:
        k = len(self._part_of)
        if k == self._W.shape[0]:
            grow = self._W.shape[0]
            self._W = np.concatenate([self._W, np.zeros((grow, self.n_bins), np.float32)])
            self._W0 = np.concatenate([self._W0, np.zeros((grow, self.n_bins), np.float32)])
            self._S = np.concatenate([self._S, np.zeros((grow, self.n_bins), np.float64)])
            self._C = np.concatenate([self._C, np.zeros(grow, np.float64)])
        self._W[k] = w0
        self._W0[k] = w0
        self._part_of.append(part)
        self._pitch_of.append(pitch)
        self._index[(part, pitch)] = k
        return k

    def _template_for(self, part: int, pitch: int, refresh: bool = True) -> int:
        """The column of (part, pitch), made if new; an unheard one copies its part's timbre again
        (``refresh_unheard``) unless ``refresh`` is False (a candidate: only scored notes copy)."""
        k = self._index.get((part, pitch))
        if k is not None and not (refresh and self._stale(k)):
            return k  # a template that sounded, or one made since the last re-estimation (the same copy again)
        if self.is_drum[part]:
            return self._new_template(part, pitch, drum_template(self.n_bins))
        amps = self._learned_amplitudes(part, pitch)
        w0 = harmonic_template(pitch, self.sample_rate, self.n_fft, amps)
        if k is None:
            k = self._new_template(part, pitch, w0)
        self._W[k], self._W0[k] = w0, w0
        self._made_in[k] = self._epoch
        return k

    def _stale(self, k: int) -> bool:
        """Whether pitched template ``k`` has not sounded and copied its part's timbre before the
        last re-estimation (``refresh_unheard``)."""
        part = self._part_of[k]
        return (
            self.settings.refresh_unheard
            and part >= 0
            and not self.is_drum[part]
            and self._C[k] <= 0.0
            and self._made_in.get(k) != self._epoch
        )

    def _learned_amplitudes(self, part: int, pitch: int) -> np.ndarray | None:
        """Partial amplitudes of the part's nearest well-adapted pitch, or None."""
        s = self.settings
        if not s.share_timbre:
            return None
        pitches, ks = self._ready.get(part, ((), ()))
        if not pitches:
            return None
        i = bisect.bisect_right(pitches, pitch)  # pitches[i - 1] <= pitch < pitches[i]
        # the nearest ready pitch; a tie goes to the pitch below (whatever order the templates came in)
        below = i > 0 and (i == len(pitches) or pitch - pitches[i - 1] <= pitches[i] - pitch)
        best = ks[i - 1] if below else ks[i]
        n_h = n_partials_of(pitch, self.sample_rate)
        key = (best, n_h)  # the same for every pitch copying this template until the next re-estimation
        if key not in self._amps_cache:
            self._amps_cache[key] = self._extended_amplitudes(best, n_h)
        return self._amps_cache[key]

    def _extended_amplitudes(self, k: int, n_h: int) -> np.ndarray | None:
        """``n_h`` partial amplitudes read off template ``k``, extended past its top partial."""
        q = self._pitch_of[k]
        amps = partial_amplitudes(self._W[k], q, self.sample_rate, self.n_fft, n_h)
        have = int(np.count_nonzero(amps))
        if have == 0:
            return None
        # partials the model pitch cannot show (above its top) fall off as 1/h from its last one
        h = np.arange(1, n_h + 1, dtype=np.float64)
        last = max(have - 1, 0)
        tail = amps[last] * (last + 1) / h
        amps = np.where(amps > 0, amps, tail)
        # keep a floor so no partial is switched off for good
        return np.maximum(amps, 0.02 * amps.max())

    # ------------------------------------------------------------------ masks
    def masks(self, mag: np.ndarray, active: np.ndarray, first_frame: int, tails: np.ndarray) -> np.ndarray:
        """mag (T, F), active (T, P, 128) bool -> masks (T, P, F) float32 (residual = 1 - sum);
        ``tails`` (T, P) bool: frames where a part's gates are open only for a release tail."""
        self.start(mag, active, first_frame, tails)
        return self.finish()

    def start(self, mag: np.ndarray, active: np.ndarray, first_frame: int, tails: np.ndarray) -> None:
        """``masks`` in two halves: the activations of these frames now, and ``finish()`` -> their
        masks later (the last segment's statistics and masks wait for it), so a live caller can put
        the two on different blocks. ``finish`` must come before the next ``start``."""
        if self._started is not None:
            raise RuntimeError("finish() the frames started before starting more")
        n_frames = mag.shape[0]
        if first_frame != self._next_frame:
            raise ValueError(f"frames must come in order: expected frame {self._next_frame}, got {first_frame}")
        out = np.zeros((n_frames, self.n_parts, self.n_bins), np.float32)
        period = self.settings.update_every_frames
        t, t_fit, fit = 0, 0, None
        while t < n_frames:
            if fit is not None:
                self._finish(fit, out[t_fit:t])
            self.settle()
            k = first_frame + t
            end = min(n_frames, t + period - k % period)
            fit, t_fit = self._fit(mag[t:end], active[t:end], k, tails[t:end]), t
            t = end
            self._update_due = (first_frame + t) % period == 0
        self._next_frame = first_frame + n_frames
        self._started = (out, t_fit, fit)

    def finish(self) -> np.ndarray:
        """The masks (T, P, F) float32 of the frames given to the last ``start``."""
        if self._started is None:
            raise RuntimeError("finish() without start()")
        out, t, fit = self._started
        self._started = None
        if fit is not None:
            self._finish(fit, out[t:])
        return out

    def settle(self) -> bool:
        """Run the templates' re-estimation now if one is due (whether it ran). It falls due after
        every ``update_every_frames``-th frame and runs before the next frame is decomposed in any
        case; a live caller calls this in a block without a frame, so that the re-estimation does
        not land on a block that also decomposes one. Not while started frames wait for ``finish``
        (their statistics must go in first)."""
        if not self._update_due or self._started is not None:
            return False
        self._update_templates()
        return True

    def _unscored(self, active: np.ndarray, first: int, tails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, P, 128) float32: ``unscored_penalty`` on each pitch a part played (scored) within
        ``unscored_memory_s`` (a pitched part: or up to ``unscored_semitones`` from one) and the
        score leaves off in a frame where the part rests (a drum kit: any frame), where a note the
        score missed may sound (a pitched part's tail counts as a rest); 0 elsewhere. And
        (T, P, 128) float32: the share of the frame each candidate's fundamental must find
        unexplained (stricter for a neighbour and in a tail). ``tails`` (T, P) bool."""
        frames = first + np.arange(active.shape[0])
        seen = np.where(active, frames[:, None, None], -(10**9))
        last_on = np.maximum.accumulate(np.concatenate([self._last_on[None], seen]), axis=0)[1:]
        self._last_on = last_on[-1].copy()
        memory = self.settings.unscored_memory_s * self.sample_rate / self.hop
        if memory <= 0:
            return np.zeros(active.shape, np.float32), np.zeros(active.shape, np.float32)
        s = self.settings
        tail = tails[:, :, None] & self._pitched_col[None] & bool(np.isfinite(s.unscored_tail_f0_share))
        resting = ~(active.any(axis=2, keepdims=True) & self._pitched_col[None]) | tail
        recent = last_on >= frames[:, None, None] - memory
        near = recent.copy()
        for d in range(1, self.settings.unscored_semitones + 1):  # a pitched part's neighbouring pitches
            near[:, :, d:] |= recent[:, :, :-d]
            near[:, :, :-d] |= recent[:, :, d:]
        neighbour = near & self._pitched_col[None] & ~recent
        loose = (recent | neighbour) & ~active & resting
        f0_share = np.where(neighbour, s.unscored_neighbour_f0_share, s.unscored_f0_share).astype(np.float32)
        np.maximum(f0_share, np.where(tail, s.unscored_tail_f0_share, 0.0), out=f0_share)
        return loose.astype(np.float32) * s.unscored_penalty, f0_share

    def _fit(self, mag: np.ndarray, active: np.ndarray, first: int, tails: np.ndarray) -> tuple | None:
        """Frames within one update period (same templates): the activations, for ``_finish``
        (None when nothing may sound: the masks stay zero)."""
        n_t = mag.shape[0]
        penalty, f0_share = self._unscored(active, first, tails)
        tt, pp, qq = np.nonzero(active)
        st, sp, sq = np.nonzero(penalty)
        pairs = sorted(set(zip(pp.tolist(), qq.tolist())) | set(zip(sp.tolist(), sq.tolist())))
        scored = set(zip(pp.tolist(), qq.tolist()))
        memo = self._cols
        cols = [  # candidates: when admitted
            memo[key] if key in memo else memo.setdefault(key, self._template_for(*key))
            for key in ((p, q, (p, q) in scored) for p, q in pairs)
        ]
        col_of = {pq: i for i, pq in enumerate(pairs)}
        n_bg = 1 if self.settings.background else 0
        n_k = len(cols) + n_bg
        if n_k == 0:
            return None
        gate = np.zeros((n_k, n_t), np.float32)
        if pairs:
            gate[[col_of[(p, q)] for p, q in zip(pp.tolist(), qq.tolist())], tt] = 1.0
        all_cols = np.asarray(cols + ([0] if n_bg else []), np.int64)
        if n_bg:
            gate[-1] = 1.0
        W = self._W[all_cols].T  # (F, K) unit-sum columns (a view of (K, F) rows: column gathers are row copies)
        V = np.ascontiguousarray(mag.T, dtype=np.float32)  # (F, T)
        n_on = np.maximum(gate.sum(axis=0), 1.0)
        H = gate * (V.sum(axis=0) / n_on)[None, :]  # each template starts with an equal share
        on = np.nonzero(gate.any(axis=1))[0]  # the scored fit needs only the scored columns
        Ws, Hs = (W, H) if len(on) == n_k else (W.T[on].T, H[on])
        for _ in range(self.settings.n_iter):
            lam = Ws @ Hs + _EPS
            Hs *= Ws.T @ (V / lam)
        if len(on) < n_k:
            H[on] = Hs
        if len(st):
            H = self._unscored_notes(W, V, H, gate, pairs, penalty, (st, sp, sq), f0_share)
        return W, V, H, gate, all_cols, on, pairs, n_bg

    def _finish(self, fit: tuple, out: np.ndarray) -> None:
        """A ``_fit`` segment's statistics folded in, and its masks written into ``out`` (T, P, F), zeros."""
        W, V, H, gate, all_cols, on, pairs, n_bg = fit
        nz = np.nonzero(H.any(axis=1))[0]  # the columns that sound (unadmitted candidates do not)
        lam = W[:, nz] @ H[nz] + _EPS
        self._fold(V, all_cols[on], H[on] * gate[on], lam)  # only scored notes teach the templates

        # part masks: contiguous column groups (pairs are sorted by part); silent columns skipped
        a = self.settings.mask_power
        part_ids = np.asarray([p for p, _ in pairs], np.int64)
        sounding = H.any(axis=1)
        contrib: list[tuple[int, np.ndarray]] = []
        for p in range(self.n_parts):
            sel = np.nonzero((part_ids == p) & sounding[: len(pairs)])[0]
            if len(sel):
                contrib.append((p, _power(W[:, sel] @ H[sel], a)))  # (F, T)
        if a == 1.0:
            denom = lam
        else:
            denom = np.full_like(lam, _EPS)
            for _, c in contrib:
                denom += c
            if n_bg:
                denom += _power(W[:, -1:] @ H[-1:], a)
        for p, c in contrib:
            out[:, p] = (c / denom).T

    def _unscored_notes(self, W, V, H, gate, pairs, penalty, where, f0_share) -> np.ndarray:
        """Second pass over the unscored candidates (``where`` = frames, parts, pitches; column
        ``i`` is ``pairs[i]``). A pitched candidate is admitted where the magnitude its first
        partial finds unexplained by the scored notes is at least ``f0_share`` of the frame's (a
        note the score missed shows its fundamental; a part's old pitch whose upper partials
        coincide with another part's notes does not) and ``unscored_level_share`` of what a usual
        note of its part shows there; a drum candidate where at least ``unscored_admit`` of its
        template-weighted magnitude is unexplained. Admitted ones join a second fit with an L1
        weight, over the frames where one was admitted (the others keep the scored fit); those
        explaining under ``unscored_min_share`` of the frame are dropped. W (F, K) unit-sum,
        V (F, T), H / gate (K, T), ``f0_share`` (T, P, 128) -> H."""
        s = self.settings
        st, sp, sq = where
        col_of = {pq: i for i, pq in enumerate(pairs)}
        loose = np.zeros_like(gate)
        rows = [col_of[(p, q)] for p, q in zip(sp.tolist(), sq.tolist())]
        loose[rows, st] = penalty[st, sp, sq]
        share = np.full_like(gate, s.unscored_f0_share)
        share[rows, st] = f0_share[st, sp, sq]
        on = np.nonzero(gate.any(axis=1))[0]
        lam = W[:, on] @ H[on] + _EPS  # the scored fit
        unexplained = np.maximum(V - lam, 0.0)
        total = np.maximum(V.sum(axis=0), _EPS)  # (T,)
        cand = np.nonzero(loose.any(axis=1))[0]
        drum = np.asarray([self.is_drum[pairs[i][0]] for i in cand.tolist()], bool)
        if drum.any():
            d = cand[drum]
            ok = W[:, d].T @ unexplained >= s.unscored_admit * (W[:, d].T @ V)
            loose[d] *= ok
        if not drum.all():
            c = cand[~drum]
            pitch = np.asarray([pairs[i][1] for i in c.tolist()], np.int64)
            bins = np.minimum(self._f0_lo[pitch, None] + self._f0_span, self.n_bins - 1)  # (n_c, span)
            in_f0 = self._f0_span < self._f0_width[pitch, None]  # (n_c, span)
            found = (unexplained[bins] * in_f0[:, :, None]).sum(axis=1)  # (n_c, T) at each fundamental
            need = share[c] * total[None, :]
            if s.unscored_level_share > 0.0:  # and a share of what a usual note of its part shows there
                f0_mass = (W[bins, c[:, None]] * in_f0).sum(axis=1)  # each template's share at its fundamental
                usual = self._level_ready[[pairs[i][0] for i in c.tolist()]] * f0_mass
                need = np.maximum(need, s.unscored_level_share * usual[:, None])
            loose[c] *= found >= need
        if not loose.any():
            return H
        use = np.nonzero(gate.any(axis=1) | loose.any(axis=1))[0]  # scored and admitted columns
        frames = np.nonzero(loose.any(axis=0))[0]  # the frames with an admitted note: the others keep the scored fit
        Wu, loose = W.T[use].T, loose[np.ix_(use, frames)]
        Vu = np.ascontiguousarray(V[:, frames])
        Hu = H[np.ix_(use, frames)] + (loose > 0) * (Wu.T @ unexplained[:, frames])  # from what they find unexplained
        shrink = (1.0 / (1.0 + loose)).astype(np.float32)  # L1 on the unscored
        for _ in range(max(1, s.n_iter // 2)):
            lam = Wu @ Hu + _EPS
            Hu *= (Wu.T @ (Vu / lam)) * shrink
        # W unit-sum: H is explained magnitude
        Hu[(loose > 0) & (Hu < s.unscored_min_share * total[None, frames])] = 0.0
        H = H.copy()
        H[np.ix_(use, frames)] = Hu
        return H

    def _fold(self, V: np.ndarray, cols: np.ndarray, H: np.ndarray, lam: np.ndarray) -> None:
        """Fold one segment's frames into the forgotten statistics (every segment, so the cost
        is spread over the frames instead of falling on the frame that re-estimates)."""
        n_t = V.shape[1]
        self._frames_unforgotten += n_t
        g = self._decay_per_frame**self._frames_unforgotten  # a power of the frames counted, not a running product
        if g < FOLD_BELOW:  # fold it in before the stored values grow out of range (0: all forgotten)
            n_k = len(self._part_of)
            self._S[:n_k] *= g
            self._C[:n_k] *= g
            g, self._frames_unforgotten = 1.0, 0
        self._unforgotten = g
        w_t = self._decay_per_frame ** np.arange(n_t - 1, -1, -1, dtype=np.float64)
        R = (V / lam) * w_t[None, :].astype(np.float32)  # (F, T)
        M = (R @ H.T).T  # (K, F)
        share = H / np.maximum(H.sum(axis=0, keepdims=True), _EPS)
        evidence = ((share > 0.01) * w_t[None, :]).sum(axis=1)
        self._level_S *= self._decay_per_frame**n_t
        self._level_C *= self._decay_per_frame**n_t
        owner = np.asarray([self._part_of[k] for k in cols.tolist()], np.int64)
        e = (owner[None, :] == np.arange(self.n_parts)[:, None]).astype(H.dtype) @ H  # (P, T) each part's notes explain
        self._level_S += e @ w_t
        self._level_C += (e > 0) @ w_t
        scale = 1.0 / self._unforgotten
        heard = evidence > 0.0
        ks = cols[heard]  # distinct columns
        self._S[ks] += np.multiply(self._W[ks] * M[heard], scale, dtype=np.float64)
        self._C[ks] += evidence[heard] * scale
        self._touched.update(ks.tolist())

    def _note_ready(self) -> None:
        """Which templates others may copy (``share_min_frames`` of evidence): per part, sorted pitches."""
        ready: dict[int, list[tuple[int, int]]] = {}
        for (p, q), k in self._index.items():
            if p >= 0 and self._C_ready[k] >= self.settings.share_min_frames:
                ready.setdefault(p, []).append((q, k))
        self._ready = {p: tuple(zip(*sorted(v))) for p, v in ready.items()}
        self._amps_cache.clear()

    def _update_templates(self) -> None:
        """Re-estimate the templates that sounded since the last re-estimation."""
        self._update_due = False
        touched, self._touched = self._touched, set()
        n_k, g = len(self._part_of), self._unforgotten
        self._epoch += 1
        self._cols.clear()
        self._C_ready = self._C[:n_k] * g
        self._note_ready()
        self._level_ready = self._level_S / np.maximum(self._level_C, 1.0)
        beta = self.settings.prior_frames
        ks = np.asarray(sorted(touched), np.int64)
        S = self._S[ks]  # (n, F), a copy: becomes the new templates in place
        total = S.sum(axis=1)
        heard = total > 0.0
        if not heard.all():
            ks, S, total = ks[heard], S[heard], total[heard]
        if self.settings.smooth_drums:
            drum = np.asarray([self._part_of[k] >= 0 and self.is_drum[self._part_of[k]] for k in ks.tolist()], bool)
            if drum.any():  # an envelope, not lines
                S[drum] = ((S[drum] @ self._bands) / self._band_width) @ self._bands.T
                total = S.sum(axis=1)
        c = self._C[ks] * g
        S *= ((c / (c + beta)) / total)[:, None]  # the learned shape, unit sum, weighted by its evidence
        S += (beta / (c + beta))[:, None] * self._W0[ks]  # and the starting one
        S /= np.maximum(S.sum(axis=1, keepdims=True), _EPS)
        self._W[ks] = S
