"""The real-time host: an audio callback that only copies, and an inference worker thread.

Public API
----------
- ``RealtimeHost(processor, block_size, queue_blocks=2, crossfade_ms=5.0, gains=None)``:
  wraps a ``Processor`` already prepared with ``(sample_rate, block_size, 2)``.

  - ``latency_samples`` / ``latency_terms``: the processor's terms plus ``queue``
    (``queue_blocks * block_size``): the output of input block ``j`` is played in cycle
    ``j + queue_blocks``. Input at absolute sample ``t`` comes out at ``t + latency_samples``.
  - ``start()`` / ``stop()`` (main thread): start and join the worker thread.
  - ``cycle(ins, outs, midi_in, note_sink)`` (audio callback thread, once per block):
    ``ins``: 2 arrays (block_size,) (left, right); ``outs``: ``2 * (n_stems + 1)`` arrays
    (block_size,) in the order ``stem0_L, stem0_R, ..., other_L, other_R``, filled in place;
    ``midi_in``: ``(offset_samples, bytes)`` score messages of this block; ``note_sink(offset,
    stem, note, velocity, on)`` receives the note events due in this block.
  - ``stats()`` (main thread): a dict of counters (see ``STATS_KEYS``); ``take_meters()``
    (main thread): peak levels since the last call, ``(1 + n_stems + 1,)`` input then stems.
  - Counters written by other threads and read by the main thread: ``n_cycles``,
    ``n_blocks``, ``deadline_misses``, ``xruns`` (incremented by the backend),
    ``n_input_overflows``, ``n_late_notes``, ``n_gaps``, ``worker_error``.

Threading: the callback writes input blocks into a pre-allocated ``RingBuffer`` (tagged with
the cycle index), the worker reads them, calls ``Processor.process`` and writes the stems into
a second ring (tagged likewise) and the note events into a deque. The callback never waits: if
the block it needs is not there it counts a deadline miss and plays the fallback (stems silent,
``other`` = the dry input delayed by ``latency_samples``), and the next block that arrives in
time is crossfaded back in over ``crossfade_ms``. Stale blocks are skipped by tag, so a late
worker never shifts the output in time. Each ring is single producer / single consumer.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from bridge.engine import Processor
from bridge.ring import RingBuffer

NoteSink = Callable[[int, int, int, int, bool], None]
N_TIMINGS = 1 << 16  # worker timings kept for the percentiles
RING_SECONDS = 2.0  # capacity of the input and output rings
STATS_KEYS = (
    "latency_samples",
    "latency_terms",
    "blocks",
    "xruns",
    "deadline_misses",
    "worker_ms_p50",
    "worker_ms_p99",
    "worker_ms_max",
    "sample_rate",
    "block_size",
)


class RealtimeHost:
    def __init__(
        self,
        processor: Processor,
        block_size: int,
        queue_blocks: int = 2,
        crossfade_ms: float = 5.0,
        gains: Sequence[float] | None = None,
    ) -> None:
        if not processor.prepared or processor.n_channels != 2:
            raise RuntimeError("prepare the Processor with 2 channels before building a RealtimeHost")
        if queue_blocks < 1:
            raise ValueError("queue_blocks must be >= 1")
        self.processor = processor
        self.block_size = int(block_size)
        self.sample_rate = int(processor.sample_rate)
        self.queue_blocks = int(queue_blocks)
        self.n_outputs = len(processor.stems)  # stems incl. `other`
        self.latency_terms = dict(processor.latency_terms)
        self.latency_terms["queue"] = self.queue_blocks * self.block_size
        self.latency_samples = sum(self.latency_terms.values())
        self.gains = None if gains is None or all(g == 1.0 for g in gains) else np.asarray(gains, np.float32)

        b = self.block_size
        self._n_slots = max(4 * self.queue_blocks, math.ceil(RING_SECONDS * self.sample_rate / b), 8)
        self._in = RingBuffer(2, self._n_slots * b)
        self._in_tags = np.zeros(self._n_slots, np.int64)
        self._out = RingBuffer(2 * self.n_outputs, self._n_slots * b)
        self._out_tags = np.zeros(self._n_slots, np.int64)
        self._dry = RingBuffer(2, self.latency_samples + 2 * b + 16)
        self._dry.fill_zeros(self.latency_samples)
        self._midi_in: deque[tuple[int, int, bytes]] = deque()  # (cycle, offset, message)
        self._notes: deque[tuple[int, int, int, int, int, bool]] = deque()  # (block, offset, stem, note, vel, on)
        # callback-side scratch (allocated once)
        self._cb_in = np.zeros((2, b), np.float32)
        self._cb_dry = np.zeros((2, b), np.float32)
        self._cb_out = np.zeros((2 * self.n_outputs, b), np.float32)
        n_fade = max(1, min(b, int(round(crossfade_ms * self.sample_rate / 1000.0))))
        self._fade = np.zeros(b, np.float32)
        self._fade[:n_fade] = np.linspace(0.0, 1.0, n_fade + 1, dtype=np.float32)[1:]
        self._fade[n_fade:] = 1.0
        self._n_in_blocks_written = 0  # callback
        self._n_out_blocks_read = 0  # callback
        self._model_live = True  # callback: False after a miss until a block fades back in
        # worker-side
        self._n_in_blocks_read = 0
        self._n_out_blocks_written = 0
        self._timings_ms = np.zeros(N_TIMINGS, np.float64)
        self._peaks = np.zeros(1 + self.n_outputs, np.float32)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # counters
        self.n_cycles = 0
        self.n_blocks = 0
        self.deadline_misses = 0
        self.xruns = 0
        self.n_input_overflows = 0
        self.n_late_notes = 0
        self.n_gaps = 0
        self.first_frame_time: int | None = None  # backend's clock at the first cycle, if it has one
        self.worker_error: str | None = None

    # ------------------------------------------------------------------ main thread
    def start(self) -> None:
        """Main thread. Start the worker thread (the processor is already warm)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name="stembridge-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Main thread. Ask the worker to stop and join it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def worker_ms(self) -> np.ndarray:
        """Main thread. The most recent worker times per block, in ms."""
        n = min(self.n_blocks, N_TIMINGS)
        return self._timings_ms[:n].copy()

    def take_meters(self) -> np.ndarray:
        """Main thread. Peak levels (input, then each stem) since the last call."""
        out = self._peaks.copy()
        self._peaks[:] = 0.0
        return out

    def stats(self) -> dict[str, object]:
        """Main thread. Counters and worker-time percentiles as plain JSON-able values."""
        t = self.worker_ms()
        p50, p99, mx = (
            (float(np.percentile(t, 50)), float(np.percentile(t, 99)), float(t.max())) if t.size else (0, 0, 0)
        )
        return {
            "latency_samples": self.latency_samples,
            "latency_ms": 1000.0 * self.latency_samples / self.sample_rate,
            "latency_terms": dict(self.latency_terms),
            "blocks": self.n_cycles,
            "blocks_processed": self.n_blocks,
            "xruns": self.xruns,
            "deadline_misses": self.deadline_misses,
            "input_overflows": self.n_input_overflows,
            "late_notes": self.n_late_notes,
            "gaps": self.n_gaps,
            "worker_ms_p50": round(p50, 4),
            "worker_ms_p99": round(p99, 4),
            "worker_ms_max": round(float(mx), 4),
            "budget_ms": 1000.0 * self.block_size / self.sample_rate,
            "queue_blocks": self.queue_blocks,
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "first_frame_time": self.first_frame_time,
            "worker_error": self.worker_error,
        }

    # ------------------------------------------------------------------ audio callback
    def cycle(
        self,
        ins: Sequence[np.ndarray],
        outs: Sequence[np.ndarray],
        midi_in: Sequence[tuple[int, bytes]] = (),
        note_sink: NoteSink | None = None,
    ) -> None:
        """Audio callback thread. Copy one block in and one block out; never waits."""
        b = self.block_size
        j = self.n_cycles
        cb_in = self._cb_in
        if len(ins[0]) != b:  # a block of the wrong size: output silence, keep the clock
            for o in outs:
                o[:] = 0.0
            self.n_cycles = j + 1
            self.deadline_misses += 1
            return
        cb_in[0] = ins[0]
        cb_in[1] = ins[1]
        if self._in.free >= b:
            self._in_tags[self._n_in_blocks_written % self._n_slots] = j
            self._in.write(cb_in)  # counters move after the copy: the worker sees whole blocks
            self._n_in_blocks_written += 1
        else:
            self.n_input_overflows += 1
        for offset, data in midi_in:
            self._midi_in.append((j, int(offset), bytes(data)))
        self._wake.set()
        self._dry.write(cb_in)
        self._dry.read(b, self._cb_dry)

        w = j - self.queue_blocks  # the processed block due now
        hit = False
        out = self._cb_out
        while self._out.available >= b:
            tag = self._out_tags[self._n_out_blocks_read % self._n_slots]
            if tag > w:
                break
            self._out.read(b, out)
            self._n_out_blocks_read += 1
            if tag == w:
                hit = True
                break
        n_out = len(outs)
        if hit:
            if self._model_live:
                for k in range(n_out):
                    outs[k][:] = out[k]
            else:  # crossfade from the fallback back to the model
                fade = self._fade
                for k in range(n_out - 2):
                    np.multiply(out[k], fade, out=outs[k])
                for c in (0, 1):
                    k = n_out - 2 + c
                    outs[k][:] = out[k] * fade + self._cb_dry[c] * (1.0 - fade)
                self._model_live = True
        else:
            if w >= 0:
                self.deadline_misses += 1
                self._model_live = False
            for k in range(n_out - 2):
                outs[k][:] = 0.0
            outs[n_out - 2][:] = self._cb_dry[0]
            outs[n_out - 1][:] = self._cb_dry[1]

        notes = self._notes
        while notes and notes[0][0] <= w:
            block, offset, stem, note, vel, on = notes.popleft()
            if block != w or not hit:
                offset = 0
                self.n_late_notes += 1
            if note_sink is not None:
                note_sink(offset, stem, note, vel, on)
        self.n_cycles = j + 1

    # ------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        """Worker thread. Process every input block as soon as it is complete."""
        b = self.block_size
        block = np.zeros((2, b), np.float32)
        expected = 0
        proc = self.processor
        try:
            while not self._stop.is_set():
                self._wake.wait(0.05)
                self._wake.clear()
                while self._in.available >= b and not self._stop.is_set():
                    tag = int(self._in_tags[self._n_in_blocks_read % self._n_slots])
                    self._in.read(b, block)
                    self._n_in_blocks_read += 1
                    if tag != expected:  # input was dropped: restart the stream state
                        proc.reset()
                        self.n_gaps += 1
                    expected = tag + 1
                    events = []
                    midi = self._midi_in
                    while midi and midi[0][0] <= tag:
                        jj, offset, data = midi.popleft()
                        if jj == tag:
                            events.append((offset, data))
                    t0 = time.perf_counter()
                    res = proc.process(block, events)
                    stems = res.stems.reshape(2 * self.n_outputs, b)
                    if self.gains is not None:
                        stems = stems * np.repeat(self.gains, 2)[:, None]
                    dt_ms = 1000.0 * (time.perf_counter() - t0)
                    for ev in res.notes:
                        self._notes.append((tag, ev.sample, ev.stem, ev.note, ev.velocity, ev.on))
                    if self._out.free >= b:
                        self._out_tags[self._n_out_blocks_written % self._n_slots] = tag
                        self._out.write(stems)
                        self._n_out_blocks_written += 1
                    self._timings_ms[self.n_blocks % N_TIMINGS] = dt_ms
                    self.n_blocks += 1
                    peaks = self._peaks
                    peaks[0] = max(peaks[0], float(np.abs(block).max()))
                    np.maximum(peaks[1:], np.abs(res.stems).max(axis=(1, 2)), out=peaks[1:])
        except Exception as e:  # reported by the main thread as one line
            self.worker_error = f"{type(e).__name__}: {e}"
