"""The real-time host: an audio callback that only copies, and an inference worker.

Public API
----------
- ``RealtimeHost(processor, block_size, queue_blocks=2, crossfade_ms=5.0, gains=None,
  worker=DEFAULT_WORKER, rt_priority=DEFAULT_RT_PRIORITY)``: wraps a ``Processor`` already prepared
  with ``(sample_rate, block_size, 2)``. ``worker``: ``"thread"`` runs inference on a thread of
  this process (it shares the GIL with the callback); ``"process"`` in a child process that builds
  its own Processor from the same model and settings (see ``live.worker``). ``rt_priority``: the
  worker's SCHED_FIFO priority where the system grants it (0: never; ``stats()["worker_rt_priority"]``
  says what it got).

  - ``latency_samples`` / ``latency_terms``: the processor's terms plus ``queue``
    (``queue_blocks * block_size``): the output of input block ``j`` is played in cycle
    ``j + queue_blocks``. Input at absolute sample ``t`` comes out at ``t + latency_samples``.
  - ``start()`` / ``stop()`` (main thread): start the worker (a child process is warm when
    ``start`` returns) and stop it; ``stats()`` stays valid after ``stop``.
  - ``cycle(ins, outs, midi_in, note_sink)`` (audio callback thread, once per block):
    ``ins``: 2 arrays (block_size,) (left, right); ``outs``: ``2 * (n_stems + 1)`` arrays
    (block_size,) in the order ``stem0_L, stem0_R, ..., other_L, other_R``, filled in place;
    ``midi_in``: ``(offset_samples, bytes)`` score messages of this block; ``note_sink(offset,
    stem, note, velocity, on)`` receives the note events due in this block.
  - ``stats()`` (main thread): a dict of counters (see ``STATS_KEYS``); ``take_meters()``
    (main thread): peak levels since the last call, ``(1 + n_stems + 1,)`` input then stems.
  - Counters written by other threads and read by the main thread: ``n_cycles``,
    ``n_blocks``, ``deadline_misses``, ``xruns`` (incremented by the backend),
    ``n_input_overflows``, ``n_late_notes``, ``n_gaps``, ``worker_error`` (also set when the
    worker process died).

- ``OutputRoute(stems, block_size, send=None, monitor=None)`` (built on the main thread): what
  the device gets from the host's outputs. ``names``: the stereo outputs the device has (the
  ``send`` stems in stem order, or ``("monitor",)`` for a ``monitor`` mix {stem: dB});
  ``n_channels = 2 * len(names)``. On the audio thread, per block: ``outs = route.full(dev)``
  gives the ``2 * n_stems`` arrays for ``cycle`` (the device's own arrays where a stem is sent
  as is, pre-allocated scratch otherwise), then ``route.finish(dev)`` writes the monitor mix.

Threading: the callback writes the block's score MIDI, then the input block, into
pre-allocated rings of a ``live.worker.Channel`` (records tagged with the cycle index; shared
memory in process mode), and wakes the worker without blocking; the worker calls
``Processor.process`` and writes the stems and note events into two more rings, tagged
likewise. The callback never waits: if
the block it needs is not there it counts a deadline miss and plays the fallback (stems silent,
``other`` = the dry input delayed by ``latency_samples``; the stems glide from their last
sample to silence over ``crossfade_ms`` and ``other`` takes the difference, so the switch
does not click and the outputs still sum to the input), and the next
block that arrives in time is crossfaded back in over ``crossfade_ms``. Stale blocks are skipped by tag, so a late
worker never shifts the output in time. Each ring is single producer / single consumer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np

from bridge.engine import Processor
from bridge.live.worker import (
    DEFAULT_RT_PRIORITY,
    FOLLOW_CONF,
    FOLLOW_NONE,
    FOLLOW_POS_MS,
    MIDI_MAX_BYTES,
    N_BLOCKS,
    N_GAPS,
    N_NOTE_DROPS,
    N_TIMINGS,
    RT_PRIORITY,
    WORKER_MODES,
    Channel,
    ProcessWorker,
    ThreadWorker,
)
from bridge.ring import RingBuffer

NoteSink = Callable[[int, int, int, int, bool], None]
DEFAULT_WORKER = "process"  # measured: the callback keeps time better (bench/realtime.py)
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


class OutputRoute:
    def __init__(
        self,
        stems: Sequence[str],
        block_size: int,
        send: Sequence[str] | None = None,
        monitor: dict[str, float] | None = None,
    ) -> None:
        if send is not None and monitor is not None:
            raise ValueError("send and monitor exclude each other")
        stems = tuple(stems)
        self.send: tuple[str, ...] | None = None if monitor is not None else stems if send is None else tuple(send)
        self.monitor = dict(monitor) if monitor is not None else None
        self.names: tuple[str, ...] = self.send if self.send is not None else ("monitor",)
        self.n_channels = 2 * len(self.names)
        self.identity = self.send == stems
        n = 2 * len(stems)
        self._scratch = np.zeros((n, int(block_size)), np.float32)
        self._outs: list[np.ndarray] = list(self._scratch)
        self._tmp = np.zeros(int(block_size), np.float32)
        # send: (host output k, device channel d); monitor: (host output k, linear gain), by side
        self._pairs = [(2 * stems.index(s) + c, 2 * i + c) for i, s in enumerate(self.send or ()) for c in (0, 1)]
        self._mix = [
            [(2 * stems.index(s) + c, 10.0 ** (db / 20.0)) for s, db in (self.monitor or {}).items()] for c in (0, 1)
        ]

    def full(self, dev: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
        """Audio thread. The ``2 * n_stems`` arrays ``RealtimeHost.cycle`` fills."""
        if self.identity:
            return dev
        outs = self._outs
        for k, d in self._pairs:
            outs[k] = dev[d]
        return outs

    def finish(self, dev: Sequence[np.ndarray]) -> None:
        """Audio thread. Write the monitor mix into the device's two arrays (no-op for send)."""
        if self.monitor is None:
            return
        scratch, tmp = self._scratch, self._tmp
        for c in (0, 1):
            out = dev[c]
            out[:] = 0.0
            if len(out) != len(tmp):  # a block of the wrong size: silence, as cycle() plays
                continue
            for k, g in self._mix[c]:
                np.multiply(scratch[k], g, out=tmp)
                out += tmp


class RealtimeHost:
    def __init__(
        self,
        processor: Processor,
        block_size: int,
        queue_blocks: int = 2,
        crossfade_ms: float = 5.0,
        gains: Sequence[float] | None = None,
        worker: str = DEFAULT_WORKER,
        rt_priority: int = DEFAULT_RT_PRIORITY,
    ) -> None:
        if not processor.prepared or processor.n_channels != 2:
            raise RuntimeError("prepare the Processor with 2 channels before building a RealtimeHost")
        if queue_blocks < 1:
            raise ValueError("queue_blocks must be >= 1")
        if worker not in WORKER_MODES:
            raise ValueError(f"worker must be one of {WORKER_MODES}, got {worker!r}")
        self.processor = processor
        self.worker_mode = worker
        self.block_size = int(block_size)
        self.sample_rate = int(processor.sample_rate)
        self.queue_blocks = int(queue_blocks)
        self.n_outputs = len(processor.stems)  # stems incl. `other`
        self.latency_terms = dict(processor.latency_terms)
        self.latency_terms["queue"] = self.queue_blocks * self.block_size
        self.latency_samples = sum(self.latency_terms.values())
        self.gains = None if gains is None or all(g == 1.0 for g in gains) else np.asarray(gains, np.float32)

        b = self.block_size
        n_slots = max(4 * self.queue_blocks, math.ceil(RING_SECONDS * self.sample_rate / b), 8)
        gain_list = None if self.gains is None else self.gains.tolist()
        self._worker: ThreadWorker | ProcessWorker
        if worker == "process":
            self._worker = ProcessWorker(processor, (n_slots, b, self.n_outputs), gain_list, rt_priority)
        else:
            self._worker = ThreadWorker(processor, Channel(n_slots, b, self.n_outputs), gain_list, rt_priority)
        self._ch = self._worker.channel
        self._dry = RingBuffer(2, self.latency_samples + 2 * b + 16)
        self._dry.fill_zeros(self.latency_samples)
        # callback-side scratch (allocated once)
        self._cb_in = np.zeros((2, b), np.float32)
        self._cb_dry = np.zeros((2, b), np.float32)
        self._cb_out = np.zeros((2 * self.n_outputs, b), np.float32)
        n_fade = max(1, min(b, int(round(crossfade_ms * self.sample_rate / 1000.0))))
        self._fade = np.zeros(b, np.float32)
        self._fade[:n_fade] = np.linspace(0.0, 1.0, n_fade + 1, dtype=np.float32)[1:]
        self._fade[n_fade:] = 1.0
        self._fade_out = 1.0 - self._fade
        self._model_live = True  # callback: False after a miss until a block fades back in
        self._cb_last = np.zeros(2 * self.n_outputs, np.float32)  # callback: last sample played per output
        self._callback_ms = np.zeros(N_TIMINGS, np.float64)  # callback: time spent in cycle()
        # counters
        self.n_cycles = 0
        self.deadline_misses = 0
        self.xruns = 0
        self.n_input_overflows = 0
        self.n_late_notes = 0
        self.n_dropped_midi = 0
        self.first_frame_time: int | None = None  # backend's clock at the first cycle, if it has one

    # ------------------------------------------------------------------ main thread
    @property
    def n_blocks(self) -> int:
        """Blocks the worker has processed."""
        return int(self._ch.ctl[N_BLOCKS])

    @property
    def n_gaps(self) -> int:
        return int(self._ch.ctl[N_GAPS])

    @property
    def worker_error(self) -> str | None:
        return self._worker.error()

    def start(self) -> None:
        """Main thread. Start the worker (the processor is already warm; a worker process is
        warm when this returns). ``StembridgeError`` if a worker process fails to start."""
        self._worker.start()
        self._ch = self._worker.channel

    def stop(self, timeout_s: float = 5.0) -> None:
        """Main thread. Ask the worker to stop and join it."""
        self._worker.stop(timeout_s)
        self._ch = self._worker.channel

    def worker_ms(self) -> np.ndarray:
        """Main thread. The most recent worker times per block, in ms."""
        n = min(self.n_blocks, N_TIMINGS)
        return self._ch.timings_ms[:n].copy()

    def callback_ms(self) -> np.ndarray:
        """Main thread. The most recent times spent in ``cycle`` (the audio callback), in ms."""
        return self._callback_ms[: min(self.n_cycles, N_TIMINGS)].copy()

    def follow_state(self) -> tuple[float | None, float] | None:
        """Main thread. ``(score position s or None before anything was heard, confidence 0..1)``
        while a followed score drives the parts (``run --follow``); ``None`` otherwise."""
        if not hasattr(self.processor, "score_parts"):
            return None
        pos = int(self._ch.ctl[FOLLOW_POS_MS])
        return (None if pos == FOLLOW_NONE else pos / 1000.0), int(self._ch.ctl[FOLLOW_CONF]) / 1000.0

    def take_meters(self) -> np.ndarray:
        """Main thread. Peak levels (input, then each stem) since the last call."""
        peaks = self._ch.peaks
        out = peaks.copy()
        peaks[:] = 0.0
        return out

    def stats(self) -> dict[str, object]:
        """Main thread. Counters and worker-time percentiles as plain JSON-able values."""
        t = self.worker_ms()
        p50, p99, mx = (
            (float(np.percentile(t, 50)), float(np.percentile(t, 99)), float(t.max())) if t.size else (0, 0, 0)
        )
        c = self.callback_ms()
        c99, cmx = (float(np.percentile(c, 99)), float(c.max())) if c.size else (0.0, 0.0)
        return {
            "latency_samples": self.latency_samples,
            "latency_ms": 1000.0 * self.latency_samples / self.sample_rate,
            "latency_terms": dict(self.latency_terms),
            "blocks": self.n_cycles,
            "blocks_processed": self.n_blocks,
            "xruns": self.xruns,
            "deadline_misses": self.deadline_misses,
            "input_overflows": self.n_input_overflows,
            "late_notes": self.n_late_notes + int(self._ch.ctl[N_NOTE_DROPS]),
            "dropped_midi": self.n_dropped_midi,
            "gaps": self.n_gaps,
            "worker": self.worker_mode,
            "worker_rt_priority": int(self._ch.ctl[RT_PRIORITY]),
            "worker_ms_p50": round(p50, 4),
            "worker_ms_p99": round(p99, 4),
            "worker_ms_max": round(float(mx), 4),
            "callback_ms_p99": round(c99, 4),
            "callback_ms_max": round(cmx, 4),
            "budget_ms": 1000.0 * self.block_size / self.sample_rate,
            "queue_blocks": self.queue_blocks,
            "sample_rate": self.sample_rate,
            "block_size": self.block_size,
            "first_frame_time": self.first_frame_time,
            "worker_error": self.worker_error,
            **self._follow_stats(),
        }

    def _follow_stats(self) -> dict[str, object]:
        state = self.follow_state()
        if state is None:
            return {}
        out: dict[str, object] = {"follow_position_s": state[0], "follow_confidence": state[1]}
        bar_beat = self.follow_bar_beat(state[0])
        if bar_beat is not None:
            out["follow_bar"], out["follow_beat"] = bar_beat[0], round(bar_beat[1], 2)
        return out

    def follow_bar_beat(self, position_s: float | None) -> tuple[int, float] | None:
        """Main thread. The followed position as (bar, beat) of the score file, where known."""
        meter = getattr(self.processor, "meter", None)
        return None if meter is None or position_s is None else meter.bar_beat(position_s)

    # ------------------------------------------------------------------ audio callback
    def cycle(
        self,
        ins: Sequence[np.ndarray],
        outs: Sequence[np.ndarray],
        midi_in: Sequence[tuple[int, bytes]] = (),
        note_sink: NoteSink | None = None,
    ) -> None:
        """Audio callback thread. Copy one block in and one block out; never waits."""
        t0 = time.perf_counter()
        b = self.block_size
        j = self.n_cycles
        ch = self._ch
        cb_in = self._cb_in
        if len(ins[0]) != b:  # a block of the wrong size: output silence, keep the clock
            for o in outs:
                o[:] = 0.0
            self.n_cycles = j + 1
            self.deadline_misses += 1
            return
        cb_in[0] = ins[0]
        cb_in[1] = ins[1]
        midi = ch.midi
        for offset, data in midi_in:  # before the audio: the worker takes a block's MIDI with it
            k = midi.write_slot()
            if k < 0 or len(data) > MIDI_MAX_BYTES:
                self.n_dropped_midi += 1
                continue
            rec = midi.data[k]
            rec[0] = offset
            rec[1] = len(data)
            rec[2 : 2 + len(data)] = tuple(data)
            midi.commit(k, j)
        k = ch.inp.write_slot()
        if k >= 0:
            ch.inp.data[k] = cb_in
            ch.inp.commit(k, j)
        else:
            self.n_input_overflows += 1
        self._worker.wake()
        self._dry.write(cb_in)
        self._dry.read(b, self._cb_dry)

        w = j - self.queue_blocks  # the processed block due now
        hit = False
        out = self._cb_out
        ring = ch.out
        while ring.available():
            k = ring.oldest()
            tag = ring.tags[k]
            if tag > w:
                break
            if tag == w:
                out[:] = ring.data[k]
                hit = True
            ring.release()
            if hit:
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
            for k in range(n_out - 2):
                outs[k][:] = 0.0
            outs[n_out - 2][:] = self._cb_dry[0]
            outs[n_out - 1][:] = self._cb_dry[1]
            if w >= 0:
                self.deadline_misses += 1
                if self._model_live:  # into the fallback: stems glide from their last sample to 0,
                    fade_out = self._fade_out  # and ``other`` takes the rest, so the sum stays the input
                    last = self._cb_last
                    for k in range(n_out - 2):
                        if last[k] != 0.0:
                            outs[k] += last[k] * fade_out
                            outs[n_out - 2 + k % 2] -= last[k] * fade_out
                    self._model_live = False
        for k in range(n_out):
            self._cb_last[k] = outs[k][-1]

        notes = ch.notes
        while notes.available():
            k = notes.oldest()
            block = notes.tags[k]
            if block > w:
                break
            offset, stem, note, vel, on = notes.data[k].tolist()
            notes.release()
            if block != w or not hit:
                offset = 0
                self.n_late_notes += 1
            if note_sink is not None:
                note_sink(offset, stem, note, vel, bool(on))
        self._callback_ms[j % N_TIMINGS] = 1000.0 * (time.perf_counter() - t0)
        self.n_cycles = j + 1
