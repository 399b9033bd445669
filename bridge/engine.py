"""The stembridge Processor: block in, stems and note events out, with a fixed latency.

Public API
----------
- ``Processor(model, n_threads=1, mask_powers=None)``: the plugin contract, as in JUCE's AudioProcessor /
  nih-plug's Plugin. ``mask_powers`` (one per stem and ``other``): the network's masks softened in its own
  STFT before they are applied (``softened_masks``; no latency more; ``set_mask_powers`` changes them).

  - ``prepare(sample_rate, max_block_size, n_channels)`` (main thread): allocates everything,
    fixes ``latency_samples`` and its named breakdown ``latency_terms``, warms the model up.
  - ``process(audio, midi_events=()) -> BlockResult`` (the thread that runs inference: the
    offline loop or the real-time worker, never the audio callback): ``audio`` is
    (n_channels, n_samples) at the host rate, any n_samples >= 0. ``midi_events`` are
    ``(offset_samples, message_bytes)`` score messages within this block. Returns stems
    (n_stems + 1, n_channels, n_samples), ``other`` last, and note events whose ``sample`` is
    the offset within this block, all delayed by exactly ``latency_samples``.
  - ``set_score_notes(notes_per_stem)``: a whole score known in advance (offline files).
  - ``end_notes()``: note-offs for every held note (end of stream).
  - ``reset()`` (inference thread, between streams): clears all state, keeps allocations.
  - ``release()`` (main thread): frees the model session.

- ``BlockResult``: ``stems``, ``notes``, ``activity`` (n_stems,) last frame's stem activity.
- ``NoteDelay(delay_samples)``: a stage's note events delayed by the latency a later stage adds
  (``process(events, n) -> due``, block offsets in and out; ``end(tail) -> events``; ``reset()``).
- ``restamp(event, sample) -> event``: the same event at another sample.
- ``softened_masks(masks, powers) -> masks``: each stem's mask and ``other``'s to its power, renormalised.

Signal path: non-finite input samples become 0 (counted in ``n_bad_samples``); host rates
other than the model's go through low-delay polyphase streams (``bridge.resample``, in and
out; python-soxr only for rate pairs too awkward for a polyphase table); a streaming STFT of every
channel; masks from the channel-mean magnitude applied to every channel; overlap-add;
``other`` = the input delayed by ``latency_samples`` minus the sum of the predicted stems, so
stems always sum to the (delayed) input. Output is independent of the block sizes used.
A frame of digital silence without score notes is not run through the network: its outputs are
zero and the recurrent state after it is the zero state, so a piece played after silence (a DAW
that starts its transport) is separated exactly as the same piece offline, whatever played
before; idling costs no inference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from bridge.errors import InputError
from bridge.metadata import ModelMetadata
from bridge.model import OnnxModel
from bridge.notes import NoteDecoder, NoteEvent
from bridge.resample import open_stream, stream_lag_samples
from bridge.ring import RingBuffer
from bridge.score import LiveScore, notes_to_roll
from bridge.stft import StreamingAnalysis, StreamingSynthesis

MASK_FLOOR = 1e-3  # of the input, left to `other` in every bin by softened masks
MAX_ABS_SAMPLE = 1000.0  # larger magnitudes are clipped: no overflow, no NaN downstream


def resampler_lag_samples(rate_in: int, rate_out: int) -> Fraction:
    """Worst-case output shortfall of the stream ``bridge.resample.open_stream`` returns, in
    output samples: after n input samples it has emitted at least ``n * rate_out / rate_in - lag``
    output samples (content-aligned, emitted as soon as computable). Exact for the polyphase
    stream (its filter's group delay); measured, plus one sample, for a python-soxr one."""
    return stream_lag_samples(rate_in, rate_out)


def clean_block(audio: np.ndarray, n_channels: int) -> tuple[np.ndarray, int]:
    """A block (n_channels, n) as float32 with non-finite samples zeroed and magnitudes clipped
    to ``MAX_ABS_SAMPLE``, and the number of non-finite samples. Raises ``InputError`` on a wrong shape."""
    if audio.ndim != 2 or audio.shape[0] != n_channels:
        raise InputError(f"expected audio of shape ({n_channels}, n), got {audio.shape}")
    x = np.asarray(audio, dtype=np.float32)
    finite = np.isfinite(x)
    n_bad = 0
    if not finite.all():
        n_bad = int(x.size - finite.sum())
        x = np.where(finite, x, 0.0).astype(np.float32)
    return np.clip(x, -MAX_ABS_SAMPLE, MAX_ABS_SAMPLE), n_bad


def assemble_block(x: np.ndarray, dry_fifo: RingBuffer, stem_fifo: RingBuffer, n_stems: int) -> np.ndarray:
    """The output block for input ``x`` (n_channels, n): the next n samples of every stem from
    ``stem_fifo`` (n_stems * n_channels rows) and, last, the delayed input from ``dry_fifo`` (``x``
    goes in) minus their sum, so the stems sum to the input: (n_stems + 1, n_channels, n)."""
    n_channels, n = x.shape
    dry_fifo.write(x)
    dry = np.empty((n_channels, n), np.float32)
    dry_fifo.read(n, dry)
    flat = np.empty((n_stems * n_channels, n), np.float32)
    stem_fifo.read(n, flat)
    stems = np.empty((n_stems + 1, n_channels, n), np.float32)
    stems[:-1] = flat.reshape(n_stems, n_channels, n)
    # in float64, rounded once: two float32 roundings (the sum, the difference) broke the 1e-5
    # sum-to-input promise on loud resampled input (1.3e-5 seen at 48 kHz)
    stems[-1] = dry.astype(np.float64) - stems[:-1].sum(axis=0, dtype=np.float64)
    return stems


@dataclass
class BlockResult:
    """Output of one ``process`` call."""

    stems: np.ndarray  # (n_stems + 1, n_channels, n_samples) float32, `other` last
    notes: list[NoteEvent] = field(default_factory=list)  # .sample = offset within this block
    activity: np.ndarray | None = None  # (n_stems,) activity of the newest frame, if any


class Processor:
    """Streaming separation + transcription with a fixed, reported latency."""

    def __init__(
        self, model: OnnxModel | str | None = None, n_threads: int = 1, mask_powers: Sequence[float] | None = None
    ) -> None:
        self.model = model if isinstance(model, OnnxModel) else OnnxModel(model, n_threads=n_threads)
        self.meta: ModelMetadata = self.model.meta
        self.stems: tuple[str, ...] = self.meta.all_stems
        self.set_mask_powers(mask_powers)
        self.decode_notes = True  # False: the note outputs are not decoded (a runner whose notes nobody reads)
        self.prepared = False
        self.latency_samples = 0
        self.latency_terms: dict[str, int] = {}
        self.n_bad_samples = 0
        self._channel_map: dict[int, str] | None = None
        self._score_offset_ms = 0.0

    def set_mask_powers(self, mask_powers: Sequence[float] | None) -> None:
        """Main thread. Soften the network's masks (``softened_masks``; one power per stem and ``other``), or
        None: the masks as they come. ``ValueError`` for powers outside [0.1, 4] or of another count."""
        powers = None if mask_powers is None else np.asarray(mask_powers, np.float32)
        if powers is not None and (powers.shape != (len(self.stems),) or not np.all((powers >= 0.1) & (powers <= 4.0))):
            got = ", ".join(f"{p:g}" for p in np.ravel(powers))
            raise ValueError(f"mask powers must lie in [0.1, 4], one per stem and other ({len(self.stems)}), got {got}")
        self.mask_powers = powers

    # ------------------------------------------------------------------ prepare
    def prepare(self, sample_rate: int, max_block_size: int, n_channels: int) -> None:
        """Main thread. Allocate buffers, fix the latency, warm the model up."""
        if not (isinstance(sample_rate, int) and 1000 <= sample_rate <= 768000):
            raise InputError(f"unsupported sample rate {sample_rate!r} Hz")
        if not (isinstance(n_channels, int) and 1 <= n_channels <= 64):
            raise InputError(f"unsupported channel count {n_channels!r}")
        meta = self.meta
        self.sample_rate = sample_rate
        self.n_channels = n_channels
        self.max_block_size = max(1, int(max_block_size))
        self.resampling = sample_rate != meta.sample_rate
        ratio = sample_rate / meta.sample_rate  # host samples per model sample

        model_terms = {
            "stft_overlap": meta.n_fft - meta.hop,
            "frame_buffering": meta.hop - 1,
            "lookahead": meta.lookahead_frames * meta.hop,
        }
        if self.resampling:
            lag_in = resampler_lag_samples(sample_rate, meta.sample_rate)
            lag_out = resampler_lag_samples(meta.sample_rate, sample_rate)
            # exact arithmetic on the exact worst-case lags: the stem FIFO never runs short, even
            # with 1-sample blocks (the bound is at most a sample above the minimum: the in and out
            # worst cases do not coincide)
            ratio_exact = Fraction(sample_rate, meta.sample_rate)
            total = math.ceil((lag_in + sum(model_terms.values())) * ratio_exact + lag_out)
            terms = {k: int(round(v * ratio)) for k, v in model_terms.items()}
            terms["resampling"] = total - sum(terms.values())
        else:
            terms = dict(model_terms)
        self.latency_terms = terms
        self.latency_samples = sum(terms.values())

        self._analysis = StreamingAnalysis(meta.n_fft, meta.hop, n_channels)
        self._synthesis = StreamingSynthesis(meta.n_fft, meta.hop, meta.n_stems, n_channels)
        self._decoder = NoteDecoder(meta)
        self._live_score = self._new_live_score()
        self._score_notes: list[np.ndarray] | None = None
        cap = self.latency_samples + 4 * self.max_block_size + 8 * meta.hop + 16384
        self._stem_fifo = RingBuffer(meta.n_stems * n_channels, int(cap * max(1.0, ratio)) + 4096)
        self._dry_fifo = RingBuffer(n_channels, self.latency_samples + 2 * self.max_block_size + 16)
        self._mag_hist: list[np.ndarray] = []  # spectra awaiting lookahead
        self.model.warm_up()
        self.prepared = True
        self.reset()

    # ------------------------------------------------------------------ reset / release
    def reset(self) -> None:
        """Inference thread, between streams. Clear all state; latency is unchanged."""
        self._require_prepared()
        meta = self.meta
        self._analysis.reset()
        self._synthesis.reset()
        self._decoder.reset()
        self._live_score.reset()
        self._state = self.model.zero_state()
        self._silent_run = 0  # silent frames (no audio, no score) the stream ends with
        self._stem_fifo.clear()
        self._stem_fifo.fill_zeros(self.latency_samples)
        self._dry_fifo.clear()
        self._dry_fifo.fill_zeros(self.latency_samples)
        self._pending_notes: list[tuple[int, NoteEvent]] = []  # (host output time, event)
        self._n_in = 0  # host samples received
        self._n_model_in = 0  # model-rate samples fed to the analysis
        self._spec_queue: list[np.ndarray] = []
        self.n_bad_samples = 0
        self.activity = np.zeros(meta.n_stems, np.float32)
        if self.resampling:
            self._rs_in = open_stream(self.sample_rate, meta.sample_rate, self.n_channels)
            self._rs_out = open_stream(meta.sample_rate, self.sample_rate, meta.n_stems * self.n_channels)

    def release(self) -> None:
        """Main thread. Free the model session; prepare() must be called again before use."""
        self.prepared = False
        self.model.session = None

    def _require_prepared(self) -> None:
        if not self.prepared:
            raise RuntimeError("Processor.prepare() must be called first")

    # ------------------------------------------------------------------ score
    def set_live_score(self, channel_map: dict[int, str] | None = None, score_offset_ms: float = 0.0) -> None:
        """Main thread. Channel -> stem map (0-based channels) and offset of live score MIDI.

        Kept across ``prepare`` and ``reset``; a positive offset delays the score.
        """
        self._channel_map = channel_map
        self._score_offset_ms = float(score_offset_ms)
        if self.prepared:
            self._live_score = self._new_live_score()

    @property
    def live_score_settings(self) -> tuple[dict[int, str] | None, float]:
        """``(channel_map, score_offset_ms)`` as last given to ``set_live_score``."""
        return self._channel_map, self._score_offset_ms

    def _new_live_score(self) -> LiveScore:
        live = LiveScore(self.meta, self._channel_map)
        live.score_offset_ms = self._score_offset_ms
        return live

    def set_score_notes(self, notes_per_stem: Sequence[np.ndarray] | None) -> None:
        """Whole score for offline use: per stem an array (n_notes, 4) [onset_s, offset_s, pitch, velocity]."""
        self._score_notes = None if notes_per_stem is None else [np.asarray(n, np.float64) for n in notes_per_stem]

    def _score_rows(self, first_frame: int, n_frames: int) -> np.ndarray | None:
        if self._score_notes is not None:
            return notes_to_roll(self._score_notes, n_frames, self.meta, first_frame=first_frame)
        return self._live_score.roll(first_frame, n_frames)

    # ------------------------------------------------------------------ process
    def process(self, audio: np.ndarray, midi_events: Iterable[tuple[int, bytes]] = ()) -> BlockResult:
        """audio (n_channels, n_samples) host rate -> BlockResult delayed by latency_samples."""
        self._require_prepared()
        meta = self.meta
        x, n_bad = clean_block(audio, self.n_channels)
        self.n_bad_samples += n_bad
        n = x.shape[1]

        block_start = self._n_in
        for offset, msg in midi_events:
            host_time = block_start + min(max(int(offset), 0), max(n - 1, 0))
            self._live_score.push(int(round(host_time * meta.sample_rate / self.sample_rate)), msg)
        self._n_in += n

        model_x = self._rs_in.resample_chunk(x.T).T if self.resampling and n else x
        self._run_frames(np.ascontiguousarray(model_x, dtype=np.float32))

        stems = assemble_block(x, self._dry_fifo, self._stem_fifo, meta.n_stems)
        return BlockResult(stems=stems, notes=self._due_notes(block_start, n), activity=self.activity.copy())

    def _run_frames(self, model_x: np.ndarray) -> None:
        """Feed model-rate samples (n_channels, n); run the model on every completed frame."""
        meta = self.meta
        self._n_model_in += model_x.shape[1]
        spectra = self._analysis.push(model_x)  # (T, C, F)
        n_frames = spectra.shape[0]
        if n_frames == 0:
            return
        first_frame = self._analysis.n_frames_done - n_frames
        mag = np.abs(spectra.mean(axis=1))[None]  # (1, T, F) channel-mean magnitude
        score = self._score_rows(first_frame, n_frames)
        masks, note_frame, note_onset, activity = self._run_model(spectra, mag, score)
        masks = masks[0]  # (T, S, F), clipped in place to [0, 1] with NaN -> 0 (fmax ignores NaN)
        np.fmin(np.fmax(masks, 0.0, out=masks), 1.0, out=masks)
        if self.mask_powers is not None:
            masks = softened_masks(masks, self.mask_powers)
        self.activity = np.nan_to_num(activity[0, -1]).astype(np.float32)
        if self.decode_notes:
            for ev in self._decoder.decode(first_frame, note_frame[0], note_onset[0]):
                self._schedule(ev)
        la = meta.lookahead_frames
        if la:
            # masks for frame k arrive with frame k + la: delay the spectra to match
            self._spec_queue.append(spectra)
            queued = np.concatenate(self._spec_queue, axis=0)
            avail = max(0, queued.shape[0] - la)
            spectra = queued[:avail]
            self._spec_queue = [queued[avail:]]
            masks = masks[masks.shape[0] - avail :] if avail else masks[:0]
        stem_spec = masks[:, :, None, :] * spectra[:, None, :, :]  # (T, S, C, F)
        out = self._synthesis.push(stem_spec)  # (S, C, n)
        flat = out.reshape(meta.n_stems * self.n_channels, -1)
        if self.resampling:
            flat = self._rs_out.resample_chunk(np.ascontiguousarray(flat.T)).T
        self._stem_fifo.write(np.ascontiguousarray(flat))

    def _run_model(self, spectra: np.ndarray, mag: np.ndarray, score: np.ndarray | None) -> tuple[np.ndarray, ...]:
        """The network over these frames (spectra (T, C, F), mag (1, T, F), score (T, S, K) or
        None), carrying ``self._state``. A frame of digital silence without score notes (and the
        ``lookahead_frames`` before it the same) is not run: its outputs are zero and the state
        after it is the zero state, so a stream that idles in silence and then plays a piece is
        separated as that piece alone is offline, whatever ran before and however long the silence
        lasted (and idling costs no inference). -> masks (1, T, S, F), note_frame, note_onset
        (1, T, S, K), activity (1, T, S)."""
        silent: np.ndarray = ~np.asarray(spectra.any(axis=(1, 2)), bool)  # (T,)
        if score is not None:
            silent &= ~score.any(axis=(1, 2))
        before = self._silent_run
        self._silent_run = before + len(silent) if silent.all() else int(np.argmin(silent[::-1]))
        la = self.meta.lookahead_frames
        if la:  # an output frame also carries the masks of the frame ``la`` before it
            past = np.arange(la, 0, -1) <= before  # the last ``la`` frames before these: silent?
            windows = np.lib.stride_tricks.sliding_window_view(np.concatenate([past, silent]), la + 1)
            silent = np.asarray(windows.all(axis=1), bool)
        sc = None if score is None else score[None]
        if not silent.any():
            masks, note_frame, note_onset, activity, self._state = self.model.run(mag, sc, self._state)
            return masks, note_frame, note_onset, activity
        meta, n_t = self.meta, len(silent)
        outs = (
            np.zeros((1, n_t, meta.n_stems, mag.shape[2]), np.float32),
            np.zeros((1, n_t, meta.n_stems, meta.n_keys), np.float32),
            np.zeros((1, n_t, meta.n_stems, meta.n_keys), np.float32),
            np.zeros((1, n_t, meta.n_stems), np.float32),
        )
        edges = np.flatnonzero(np.diff(np.concatenate([[1], silent.astype(np.int8), [1]])))
        for a, b in zip(edges[::2], edges[1::2]):  # stretches of sounding frames [a, b)
            if a > 0:
                self._state = self.model.zero_state()
            res = self.model.run(mag[:, a:b], None if sc is None else sc[:, a:b], self._state)
            self._state = res[4]
            for o, r in zip(outs, res[:4]):
                o[:, a:b] = r
        if silent[-1]:
            self._state = self.model.zero_state()
        return outs

    # ------------------------------------------------------------------ notes
    def _schedule(self, ev: NoteEvent) -> None:
        """Queue a decoded event at its host output time (content time + latency)."""
        t = int(round(ev.sample * self.sample_rate / self.meta.sample_rate)) + self.latency_samples
        self._pending_notes.append((t, ev))

    def _due_notes(self, block_start: int, n: int) -> list[NoteEvent]:
        if not self._pending_notes:
            return []
        end = block_start + n
        due = [(t, e) for t, e in self._pending_notes if t < end]
        if not due:
            return []
        self._pending_notes = [(t, e) for t, e in self._pending_notes if t >= end]
        due.sort(key=lambda te: (te[0], te[1].on))  # note-offs before note-ons at the same time
        return [restamp(e, max(0, t - block_start)) for t, e in due]

    def end_notes(self) -> list[NoteEvent]:
        """Every pending and held note closed, offsets relative to the next block (>= 0)."""
        self._require_prepared()
        for ev in self._decoder.flush(self._analysis.n_frames_done):
            self._schedule(ev)
        due = sorted(self._pending_notes, key=lambda te: (te[0], te[1].on))
        self._pending_notes = []
        return [restamp(e, max(0, t - self._n_in)) for t, e in due]


class NoteDelay:
    """Note events delayed by ``delay_samples``: what an earlier stage decoded, timed to the stems of a
    later stage that adds that much latency (``bridge.parts.classes.ScoredClasses``, ``bridge.remasked``)."""

    def __init__(self, delay_samples: int) -> None:
        self.delay_samples = int(delay_samples)
        self.reset()

    def reset(self) -> None:
        self._pending: list[NoteEvent] = []  # stamped in absolute output samples
        self._n_out = 0

    def process(self, events: Iterable[NoteEvent], n: int) -> list[NoteEvent]:
        """``events`` of a block of ``n`` samples (offsets in it) -> the delayed events due in it."""
        start = self._n_out
        self._n_out += n
        self._pending += [restamp(e, start + e.sample + self.delay_samples) for e in events]
        due = [restamp(e, e.sample - start) for e in self._pending if e.sample < start + n]
        self._pending = [e for e in self._pending if e.sample >= start + n]
        return due

    def end(self, tail: Iterable[NoteEvent]) -> list[NoteEvent]:
        """End of stream: every pending event and the earlier stage's ``tail`` (its ``end_notes()``,
        offsets from the next block), delayed; offsets from the next block (>= 0)."""
        late = [restamp(e, self._n_out + e.sample + self.delay_samples) for e in tail]
        events = [restamp(e, max(0, e.sample - self._n_out)) for e in self._pending + late]
        self._pending = []
        return events


def softened_masks(masks: np.ndarray, powers: np.ndarray) -> np.ndarray:
    """masks (T, S, F) in [0, 1] -> (T, S, F): each stem's mask and ``other``'s (``|1 - sum|``, floored at
    ``MASK_FLOOR``) to its power (``powers`` (S + 1,) in [0.1, 4], ``other`` last), normalised over the S + 1;
    the first S returned. Powers under 1 share a bin more evenly between the stems that claim it; a stem
    whose mask is 0 keeps 0 (no floor of its own: a floor to a power under 1 would leak the input into
    it). The terms lie in [0, S + 1] before the power, so none overflows, and ``other``'s keeps every sum
    above 0."""
    rest = np.abs(1.0 - masks.sum(axis=1, keepdims=True)) + MASK_FLOOR
    r = np.concatenate([masks, rest], axis=1).astype(np.float32, copy=False)
    with np.errstate(divide="ignore"):  # log(0) = -inf, then exp(-inf * power) = 0
        np.log(r, out=r)
    r *= powers.astype(np.float32)[None, :, None]
    np.exp(r, out=r)
    out = r[:, :-1]
    out /= r.sum(axis=1, keepdims=True)
    return out


def restamp(ev: NoteEvent, sample: int) -> NoteEvent:
    """The same event re-stamped at ``sample``."""
    return NoteEvent(sample=sample, stem=ev.stem, note=ev.note, velocity=ev.velocity, on=ev.on)
