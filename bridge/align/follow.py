"""Live score following: where in the score a recording that arrives block by block is now.

A particle filter over (score position, tempo), in the manner of Duan & Pardo's Soundprism: the
recording's chroma is computed frame by frame as it arrives (``bridge.align.features``
settings, 20 ms frames, a running peak in place of the whole file's). Every frame each of
``N_PARTICLES`` hypotheses advances by its own tempo (a random walk in log tempo,
``TEMPO_STEP`` per frame, within ``TEMPO_RANGE`` of the notated tempo), a few (``HOLD_SHARE``)
stay where they are (a fermata, a breath), and each is weighted by how well the frame's chroma
matches the score's at its position (``exp(OBS_KAPPA * (cosine - 1))``), by a heard onset
(the frame's log-energy rise, relative to the last ~2 s) against the score's onset strength
there (``OBS_ONSET``), and by the rhythm of the last ``RHYTHM_FRAMES`` sounding frames' onset
strengths correlated with the score's onsets behind it at its tempo (``OBS_RHYTHM``; this is
what follows drum-heavy arrangements with little pitched material). A silent frame is
evidence too: hypotheses inside a rest of the whole score move on through it, those where the
score sounds hold (the player stopped) and lose weight (``SILENCE_PENALTY``), so a general pause
is followed and a stop is waited out. The position is the weighted mean, carried forward at
the estimated tempo from the last analysed frame's centre to the newest sample (the 46 ms half
window the frame still lacks). When the last ``RELOCATE_S`` of the recording fit somewhere else
in the score clearly better than where the follower is (a restart, a skipped bar), checked
every ``RELOCATE_EVERY_S`` while the confidence is low, the hypotheses restart there (a
subsequence DTW of those frames against the whole score at 0.1 s). The random draws come from
a fixed seed, frame by frame, so a recording gives the same positions at any block size.

Measured (``bench/align.py``'s live rows, chamber renders with drifting tempo, fermatas and a
late start): the on-line DTW this replaced put 42 % of the performed onsets within 100 ms of
their score position (median 225 ms, stalling about a second after held notes); this one
79 % on the chamber pieces and 75 % on band arrangements with drums (BENCHMARKS.md).

Confidence: ``1 - recent cost at the position / recent mean cost over the surrounding score``
(exponential averages over ``CONFIDENCE_S``), clipped to [0, 1]: near 0 when the recording does
not look like the score here, higher when it does.

Public API
----------
- ``ScoreFollower(notes)``: notes (n, >=4) ``[onset_s, offset_s, pitch, velocity(, attack_s)]`` of
  every part (``bridge.align.core.score_notes(parts)`` adds the attack column).
  ``prepare(sample_rate)``, ``process(x)`` with x (n_samples,) mono float (any block size;
  returns the number of frames consumed), ``reset()``; ``position_s`` (score seconds, at the
  newest sample), ``tempo`` (score seconds per recording second), ``confidence``,
  ``recording_s`` (the recording time ``position_s`` refers to: the newest sample's),
  ``n_relocations``. Not for the audio callback: it allocates; run it in the worker that runs
  the parts.
"""

from __future__ import annotations

import numpy as np

from bridge.align.dtw import dtw_band, local_cost
from bridge.align.features import (
    ANALYSIS_RATE,
    HOP_S,
    HOP_SAMPLES,
    N_FFT,
    PITCH_LOW,
    SILENCE_DB,
    Features,
    _fold,
    _pitch_matrix,
    score_features,
)

PAD_S = 1.0
N_PARTICLES = 1000
# sharpness of the chroma likelihood (selection sets, chamber / 15 band arrangements, within
# 100 ms: kappa 5 -> 86.7 / 69.6 %, 3 -> 86.0 / 71.7 %, 2 -> 84.0 / 70.6 %)
OBS_KAPPA = 3.0
TEMPO_STEP = 0.01  # log-tempo random walk per frame (0.04: -13 points, 0.005: -1)
TEMPO_RANGE = (0.4, 2.5)  # relative to the notated tempo
POSITION_STEP = 0.3  # score frames of position noise per frame
HOLD_SHARE = 0.05  # hypotheses that stand still in a frame
# weight of onset evidence: a heard onset favours score positions just after one (selection sets,
# within 100 ms at 0 / 1 / 2: chamber 87.1 / 86.7 / 83.2 %, band 67.3 / 79.3 / 81.9 %)
OBS_ONSET = 1.0
# weight of the rhythm evidence: the last RHYTHM_FRAMES frames' onset strengths against the score's
# onsets behind each hypothesis at its tempo (correlation; selection sets, chamber / 15 band
# arrangements within 100 ms at 0 / 0.1 / 0.3 / 0.5 / 1: 86.0 / 73.1, 88.0 / 76.0, 87.7 / 82.0,
# 84.3 / 81.7, 79.1 / 80.0 %)
OBS_RHYTHM = 0.3
RHYTHM_FRAMES = 25
FLUX_PEAK_DECAY = 0.99  # per frame: onset strengths are relative to the last ~2 s
SILENCE_PENALTY = 2.0  # log-weight lost in a silent frame by a hypothesis where the score sounds
SOUNDING_TAIL_S = 0.1  # a note counts as sounding this long after its notated end (its release)
START_SPREAD_FRAMES = 2.0
START_TEMPO_SPREAD = 0.1  # log tempo
SEED = 0
CONFIDENCE_S = 1.5
CONFIDENCE_BAND_S = (1.0, 3.0)  # the surrounding score the confidence compares against (behind, ahead)
RELOCATE_S = 3.0
RELOCATE_EVERY_S = 0.5
RELOCATE_FACTOR = 5  # the relocation search runs on frames this many times longer
RELOCATE_SPREAD_S = 0.5  # s.d. of the hypotheses around the place a relocation found (its grid is 0.1 s)
RELOCATE_GAIN = 0.6  # jump when the match elsewhere costs under this fraction of the current one
LOW_CONFIDENCE = 0.3
SETTLE_S = 6.0  # heard (not silent) seconds after a start or a jump before the next jump may come
_LOG_GAIN = 100.0


class ScoreFollower:
    """On-line score follower (see the module docstring). Not thread-safe; not real-time safe."""

    def __init__(self, notes: np.ndarray) -> None:
        notes = np.asarray(notes, np.float64)
        self.start_s = min(0.0, float(notes[:, 0].min())) - PAD_S
        end_s = float(notes[:, 1].max()) + PAD_S
        self.score = score_features(notes, int(np.ceil((end_s - self.start_s) / HOP_S)) + 1, self.start_s)
        self.coarse = self.score.downsample(RELOCATE_FACTOR)
        m = self.score.n_frames
        on = np.clip(np.round((notes[:, 0] - self.start_s) / HOP_S).astype(np.int64), 0, m)
        off = np.clip(np.round((notes[:, 1] + SOUNDING_TAIL_S - self.start_s) / HOP_S).astype(np.int64), 0, m)
        delta = np.zeros(m + 1)
        np.add.at(delta, on, 1.0)
        np.add.at(delta, off, -1.0)
        self._sounding = np.cumsum(delta)[:m] > 0.5  # (m,) some note of the score sounds
        self._last_onset = int(on.max())  # a relocation lands at or before the score's last onset
        strength = np.linalg.norm(self.score.onsets, axis=0)
        self._score_onset = strength / max(float(strength.max()), 1e-9)  # (m,) 0..1
        pitch_idx, used = _pitch_matrix(N_FFT, ANALYSIS_RATE)
        n_pitches = int(pitch_idx[used].max()) + 1
        self._pool = np.zeros((len(pitch_idx), n_pitches), np.float32)
        self._pool[np.nonzero(used)[0], pitch_idx[used]] = 1.0
        self._window = np.hanning(N_FFT).astype(np.float32)
        self._band = (int(round(CONFIDENCE_BAND_S[0] / HOP_S)), int(round(CONFIDENCE_BAND_S[1] / HOP_S)))
        self.sample_rate = 0
        self._resampler = None
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def prepare(self, sample_rate: int) -> None:
        """Set the input rate (a streaming resampler to the analysis rate when it differs) and reset."""
        self.sample_rate = int(sample_rate)
        self.reset()

    def reset(self) -> None:
        """Back to the start of the score, nothing heard."""
        import soxr

        self._resampler = (
            soxr.ResampleStream(self.sample_rate, ANALYSIS_RATE, 1, dtype="float32", quality="MQ")
            if self.sample_rate and self.sample_rate != ANALYSIS_RATE
            else None
        )
        self._buf = np.zeros(N_FFT // 2, np.float32)  # frame k is centred on k * HOP_S, as offline
        self._n_frames = 0
        self._n_samples = 0
        self._peak = 0.0
        self._last_log_e: np.ndarray | None = None
        self._flux = 0.0
        self._flux_buf = np.zeros(RHYTHM_FRAMES)  # the last frames' onset strengths, newest first
        self._flux_peak = 0.0
        self._rng = np.random.default_rng(SEED)
        self._restart(-self.start_s / HOP_S, self._rng.normal(0.0, START_TEMPO_SPREAD, N_PARTICLES))
        self._moving = False
        self._cost_here = 0.5
        self._cost_band = 0.5
        self._history: list[np.ndarray] = []
        self._since_relocate = 0
        self.n_relocations = 0
        self.confidence = 0.0

    def _restart(self, frame: float, log_tempo: np.ndarray, spread: float = START_SPREAD_FRAMES) -> None:
        """Every hypothesis near score frame ``frame`` (s.d. ``spread`` frames), with the given log
        tempi, equal weights."""
        self._p = frame + self._rng.normal(0.0, spread, N_PARTICLES)  # (N,) score frames
        self._lr = np.asarray(log_tempo, np.float64).copy()  # (N,) log tempo
        self._w = np.full(N_PARTICLES, 1.0 / N_PARTICLES)
        self._est = float(frame)
        self._pos = int(round(frame))
        self._since_start = 0  # frames heard since
        self.tempo = 1.0

    @property
    def position_s(self) -> float:
        ahead_s = max(0.0, self.recording_s - max(self._n_frames - 1, 0) * HOP_S) if self._moving else 0.0
        return self.start_s + self._est * HOP_S + self.tempo * ahead_s

    @property
    def recording_s(self) -> float:
        return self._n_samples / self.sample_rate if self.sample_rate else 0.0

    # ------------------------------------------------------------------ audio in
    def process(self, x: np.ndarray) -> int:
        """Feed mono samples at the prepared rate; returns the number of 20 ms frames analysed."""
        x = np.asarray(x, np.float32).reshape(-1)
        self._n_samples += len(x)
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        self._buf = np.concatenate([self._buf, np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)])
        n = 0
        while len(self._buf) >= N_FFT:
            self._frame(self._buf[:N_FFT])
            self._buf = self._buf[HOP_SAMPLES:]
            n += 1
        return n

    def _chroma(self, frame: np.ndarray) -> np.ndarray | None:
        """Unit chroma (12,) of one frame, or None when it is silent; sets ``self._flux``, the
        frame's onset strength (log-energy rise per pitch band, summed; 0..1 of its recent peak)."""
        spec = np.abs(np.fft.rfft(frame * self._window)) ** 2
        energy = (spec.astype(np.float32) @ self._pool).astype(np.float64)
        total = float(energy.sum())
        self._peak = max(self._peak, total)
        log_e = np.log1p(1000.0 * energy / max(self._peak, 1e-20))
        rise = float(np.maximum(log_e - self._last_log_e, 0.0).sum()) if self._last_log_e is not None else 0.0
        self._last_log_e = log_e
        self._flux_peak = max(rise, self._flux_peak * FLUX_PEAK_DECAY)
        self._flux = rise / self._flux_peak if self._flux_peak > 1e-9 else 0.0
        if total <= 1e-10 or total < self._peak * 10 ** (SILENCE_DB / 10):
            return None
        chroma = np.log1p(_LOG_GAIN * _fold(energy[:, None], PITCH_LOW)[:, 0] / self._peak)
        norm = float(np.linalg.norm(chroma))
        return chroma / norm if norm > 1e-9 else None

    def _frame(self, frame: np.ndarray) -> None:
        self._n_frames += 1
        chroma = self._chroma(frame)
        rng, n, m = self._rng, N_PARTICLES, self.score.n_frames
        if chroma is None:  # silence: move on through the score's rests, hold where it sounds
            self._moving = False
            self.confidence *= 0.98
            rest = ~self._sounding[np.round(self._p).astype(np.int64)]
            step = np.where(rest, np.exp(self._lr) + rng.normal(0.0, POSITION_STEP, n), 0.0)
            self._p = np.clip(self._p + step, 0, m - 1)
            self._weigh(-SILENCE_PENALTY * self._sounding[np.round(self._p).astype(np.int64)])
            return
        self._moving = True
        self._since_start += 1
        self._history.append(chroma.astype(np.float32))
        del self._history[: -int(RELOCATE_S / HOP_S)]
        self._lr = np.clip(self._lr + rng.normal(0.0, TEMPO_STEP, n), *np.log(TEMPO_RANGE))
        hold = rng.random(n) < HOLD_SHARE
        step = np.where(hold, 0.0, np.exp(self._lr)) + rng.normal(0.0, POSITION_STEP, n)
        self._p = np.clip(self._p + step, 0, m - 1)
        at = np.round(self._p).astype(np.int64)
        match = chroma @ self.score.chroma[:, at]  # (N,) cosine
        onset = self._score_onset[at]  # (N,) 0..1
        loglik = OBS_KAPPA * (match - 1.0) + OBS_ONSET * self._flux * (onset - float(onset.mean()))
        self._flux_buf = np.roll(self._flux_buf, 1)
        self._flux_buf[0] = self._flux
        if OBS_RHYTHM > 0.0:
            # the recent onset pattern against the score's onsets behind each hypothesis, at its tempo
            lag = np.arange(RHYTHM_FRAMES)[None, :] * np.exp(self._lr)[:, None]  # (N, L) score frames
            behind = np.clip(np.round(self._p[:, None] - lag).astype(np.int64), 0, m - 1)
            g = self._score_onset[behind]
            f = self._flux_buf - self._flux_buf.mean()
            gc = g - g.mean(axis=1, keepdims=True)
            den = np.sqrt((gc * gc).sum(axis=1) * float(f @ f)) + 1e-9
            loglik += OBS_RHYTHM * (gc @ f) / den
        self._weigh(loglik)
        lo, hi = max(0, self._pos - self._band[0]), min(m, self._pos + self._band[1])
        c = 1.0 - chroma @ self.score.chroma[:, lo:hi]
        a = HOP_S / CONFIDENCE_S
        self._cost_here += a * (float(c[self._pos - lo]) - self._cost_here)
        self._cost_band += a * (float(c.mean()) - self._cost_band)
        self.confidence = float(np.clip(1.0 - self._cost_here / max(self._cost_band, 1e-9), 0.0, 1.0))
        self._since_relocate += 1
        if self.confidence < LOW_CONFIDENCE and self._since_relocate * HOP_S >= RELOCATE_EVERY_S:
            self._since_relocate = 0
            self._relocate()

    def _weigh(self, log_likelihood: np.ndarray) -> None:
        """Fold one frame's (N,) log-likelihoods into the weights; estimate; resample when the
        effective number of hypotheses falls under half (systematic resampling)."""
        logw = np.log(np.maximum(self._w, 1e-300)) + log_likelihood
        w = np.exp(logw - logw.max())
        w /= w.sum()
        self._est = float(w @ self._p)
        self.tempo = float(np.exp(w @ self._lr))
        self._pos = int(np.clip(round(self._est), 0, self.score.n_frames - 1))
        if 1.0 / float(w @ w) < N_PARTICLES / 2:
            u = (self._rng.random() + np.arange(N_PARTICLES)) / N_PARTICLES
            k = np.minimum(np.searchsorted(np.cumsum(w), u), N_PARTICLES - 1)
            self._p, self._lr = self._p[k], self._lr[k]
            w = np.full(N_PARTICLES, 1.0 / N_PARTICLES)
        self._w = w

    def _relocate(self) -> None:
        """Search the whole score for the last ``RELOCATE_S`` of the recording; jump when clearly better."""
        if len(self._history) < int(RELOCATE_S / HOP_S) or self._since_start < int(SETTLE_S / HOP_S):
            return  # too little heard to place it anywhere, or the confidence is still building up
        n_hist = len(self._history) // RELOCATE_FACTOR
        hist = np.stack(self._history[-n_hist * RELOCATE_FACTOR :], axis=1)
        recent = Features(hist, np.zeros_like(hist)).downsample(RELOCATE_FACTOR)
        m = self.coarse.n_frames
        lo, hi = np.zeros(n_hist, np.int64), np.full(n_hist, m, np.int64)

        def cost(i: int, a: int, b: int) -> np.ndarray:
            return local_cost(recent, self.coarse, i, a, b, onset_weight=0.0)

        path, total = dtw_band(cost, n_hist, m, lo, hi, open_start=m, open_end=m)
        found = min(self._last_onset, int(path[-1, 1]) * RELOCATE_FACTOR + RELOCATE_FACTOR // 2)
        here = int(np.clip(self._pos // RELOCATE_FACTOR, 0, m - 1))
        # the cost of the same frames held against the current position's neighbourhood
        span = slice(max(0, here - n_hist), here + 1)
        stay = float(np.mean(np.min(1.0 - recent.chroma.T @ self.coarse.chroma[:, span], axis=1)))
        if total / len(path) < RELOCATE_GAIN * stay and abs(found - self._pos) * HOP_S > 1.0:
            tempo = np.log(max(self.tempo, 1e-3)) + self._rng.normal(0.0, START_TEMPO_SPREAD, N_PARTICLES)
            self._restart(found, tempo, RELOCATE_SPREAD_S / HOP_S)
            self._cost_here = self._cost_band * 0.5
            self.n_relocations += 1
