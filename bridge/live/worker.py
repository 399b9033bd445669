"""The real-time host's inference worker, as a thread or as a child process.

Public API
----------
- ``Channel(n_slots, block_size, n_outputs, buf=None)``: every buffer the audio callback and
  the worker share, as numpy views on one flat buffer (a private bytearray, or a
  ``multiprocessing.shared_memory`` block: ``Channel.nbytes(...)`` gives its size):

  - ``inp`` (2, block_size) and ``out`` (2 * n_outputs, block_size) audio blocks, ``midi``
    score messages ``[offset, length, byte0..]`` and ``notes`` ``[offset, stem, note,
    velocity, on]``: ``SlotRing`` s whose records are tagged with the cycle index;
  - ``timings_ms`` (N_TIMINGS,) worker time per block, ``peaks`` (1 + n_outputs,) meters,
    ``ctl`` counters (``STOP``, ``READY``, ``N_BLOCKS``, ``N_GAPS``, ``N_NOTE_DROPS``,
    ``RT_PRIORITY``: the worker's real-time priority, 0 without), and an error message
    (``set_error`` / ``error``).
- ``serve(processor, channel, gains, wait)``: the worker loop, the same in both modes.
- ``ThreadWorker(processor, channel, gains, rt_priority=DEFAULT_RT_PRIORITY)`` and
  ``ProcessWorker(processor, channel_args, gains, rt_priority=DEFAULT_RT_PRIORITY)``: ``start()`` /
  ``stop()`` / ``error()`` (main thread) and ``wake()`` (audio callback: never blocks). The worker
  asks for SCHED_FIFO at ``rt_priority`` (0: never), under JACK's own process threads, so that other
  programs cannot delay a block (``make_realtime``); where the system refuses it (no CAP_SYS_NICE /
  rtprio limit, not Linux) it runs as before and ``ctl[RT_PRIORITY]`` stays 0.
  ``ProcessWorker.channel`` is the shared channel; its child builds its own processor from
  ``worker_spec(processor)`` (plain data: a model path, its mask powers and the live score settings, or the parts and
  their channels; nothing unpicklable crosses) with ``build_processor(spec)``, and is woken through
  a non-blocking pipe (``os.write`` of one byte; a full pipe is ignored).
- ``WORKER_MODES``: ``("process", "thread")``.

Memory ordering: each ring has one producer and one consumer; the producer copies a record,
then its tag, then increments its own counter (an aligned int64 store); the consumer reads
the record, then increments its own counter. Stores stay in program order on x86-64 (and
under the GIL in thread mode), so a consumer never sees a half-written record.
"""

from __future__ import annotations

import gc
import math
import os
import select
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

N_TIMINGS = 1 << 16  # worker timings kept for the percentiles
N_MIDI_SLOTS = 1024
N_NOTE_SLOTS = 4096
MIDI_MAX_BYTES = 13  # longer score messages (sysex) are dropped
ERROR_BYTES = 512
WAKE_TIMEOUT_S = 0.05
STARTUP_TIMEOUT_S = 180.0
WORKER_MODES = ("process", "thread")
STOP, READY, N_BLOCKS, N_GAPS, N_NOTE_DROPS, ERROR_LEN, FOLLOW_POS_MS, FOLLOW_CONF, RT_PRIORITY = range(9)
N_CTL = 16
# the worker's SCHED_FIFO priority (0: none). Measured on 2 vCPUs at 44.1 kHz / 64 frames (BENCHMARKS.md,
# stop 20): at 1 (under every JACK thread: jackd -R runs its own at 10, its clients' at 5) deadline misses
# fell 14-20x with other work on the machine, but the server's xruns doubled (the worker starves the
# bridge's ordinary threads, and the callback waits for their GIL), so it is opt-in.
DEFAULT_RT_PRIORITY = 0
FOLLOW_NONE = -(1 << 62)  # FOLLOW_POS_MS before a followed score was heard
_ALIGN = 64


class SlotRing:
    """Single producer / single consumer ring of fixed-shape records, each with an int64 tag.

    ``ctr[0]``: records ever written (producer only); ``ctr[1]``: records ever read (consumer only).
    """

    def __init__(self, data: np.ndarray, tags: np.ndarray, ctr: np.ndarray) -> None:
        self.data, self.tags, self.ctr = data, tags, ctr
        self.n_slots = int(data.shape[0])

    def available(self) -> int:
        return int(self.ctr[0] - self.ctr[1])

    def write_slot(self) -> int:
        """Producer. Index of the slot to fill, or -1 when the ring is full."""
        n = int(self.ctr[0])
        return -1 if n - int(self.ctr[1]) >= self.n_slots else n % self.n_slots

    def commit(self, slot: int, tag: int) -> None:
        """Producer. Publish the filled ``slot`` with ``tag``."""
        self.tags[slot] = tag
        self.ctr[0] += 1

    def oldest(self) -> int:
        """Consumer. Slot of the oldest record (check ``available()`` first)."""
        return int(self.ctr[1]) % self.n_slots

    def release(self) -> None:
        """Consumer. Drop the oldest record."""
        self.ctr[1] += 1


class Channel:
    def __init__(self, n_slots: int, block_size: int, n_outputs: int, buf: Any = None) -> None:
        self.args = (n_slots, block_size, n_outputs)
        self.block_size, self.n_outputs = block_size, n_outputs
        self.buf = bytearray(self.nbytes(*self.args)) if buf is None else buf
        pos = 0

        def take(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            nonlocal pos
            a = np.ndarray(shape, dtype, buffer=self.buf, offset=pos)
            pos += -(-a.nbytes // _ALIGN) * _ALIGN
            return a

        def ring(shape: tuple[int, ...], dtype: Any, n: int) -> SlotRing:
            return SlotRing(take((n, *shape), dtype), take((n,), np.int64), take((2,), np.int64))

        self.ctl = take((N_CTL,), np.int64)
        self.inp = ring((2, block_size), np.float32, n_slots)
        self.out = ring((2 * n_outputs, block_size), np.float32, n_slots)
        self.midi = ring((2 + MIDI_MAX_BYTES,), np.int64, N_MIDI_SLOTS)
        self.notes = ring((5,), np.int64, N_NOTE_SLOTS)
        self.timings_ms = take((N_TIMINGS,), np.float64)
        self.peaks = take((1 + n_outputs,), np.float32)
        self._error = take((ERROR_BYTES,), np.uint8)
        self.size = pos

    @staticmethod
    def nbytes(n_slots: int, block_size: int, n_outputs: int) -> int:
        def size(*shape: int, itemsize: int = 8) -> int:
            return -(-math.prod(shape) * itemsize // _ALIGN) * _ALIGN

        def ring(n: int, *shape: int, itemsize: int) -> int:
            return size(n, *shape, itemsize=itemsize) + size(n) + size(2)

        return (
            size(N_CTL)
            + ring(n_slots, 2, block_size, itemsize=4)
            + ring(n_slots, 2 * n_outputs, block_size, itemsize=4)
            + ring(N_MIDI_SLOTS, 2 + MIDI_MAX_BYTES, itemsize=8)
            + ring(N_NOTE_SLOTS, 5, itemsize=8)
            + size(N_TIMINGS)
            + size(1 + n_outputs, itemsize=4)
            + size(ERROR_BYTES, itemsize=1)
        )

    def set_error(self, message: str) -> None:
        data = message.encode("utf-8", "replace")[:ERROR_BYTES]
        self._error[: len(data)] = np.frombuffer(data, np.uint8)
        self.ctl[ERROR_LEN] = len(data)

    def error(self) -> str | None:
        n = int(self.ctl[ERROR_LEN])
        return bytes(self._error[:n]).decode("utf-8", "replace") if n else None

    def detached(self) -> Channel:
        """A private copy (same contents), so a shared block can be closed."""
        return Channel(*self.args, buf=bytearray(self.buf[: self.size]))


def make_realtime(priority: int) -> int:
    """Calling thread -> SCHED_FIFO at ``priority`` (1-98). Returns the priority it got, 0 where
    ``priority`` is 0 or the system refuses (no permission, no such policy)."""
    if priority <= 0 or not hasattr(os, "sched_setscheduler"):
        return 0
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(int(priority)))
    except (OSError, ValueError):
        return 0
    return int(priority)


def serve(processor: Any, ch: Channel, gains: Sequence[float] | None, wait: Callable[[float], None]) -> None:
    """Worker (thread or child process). Process every input block as soon as it is complete,
    until ``ch.ctl[STOP]``; ``wait(timeout_s)`` sleeps until woken."""
    b = ch.block_size
    block = np.zeros((2, b), np.float32)
    gain = None if gains is None else np.repeat(np.asarray(gains, np.float32), 2)[:, None]
    ctl, inp, out, midi, notes = ch.ctl, ch.inp, ch.out, ch.midi, ch.notes
    expected = 0
    following = hasattr(processor, "score_parts")  # a bridge.parts.following FollowedParts
    ctl[FOLLOW_POS_MS] = FOLLOW_NONE
    while not ctl[STOP]:
        wait(WAKE_TIMEOUT_S)
        while inp.available() and not ctl[STOP]:
            k = inp.oldest()
            tag = int(inp.tags[k])
            block[:] = inp.data[k]
            inp.release()
            if tag != expected:  # input was dropped: restart the stream state
                processor.reset()
                ctl[N_GAPS] += 1
            expected = tag + 1
            events = []
            while midi.available():  # the callback publishes a cycle's MIDI before its audio
                k = midi.oldest()
                if midi.tags[k] > tag:
                    break
                if midi.tags[k] == tag:
                    rec = midi.data[k]
                    events.append((int(rec[0]), bytes(rec[2 : 2 + rec[1]].astype(np.uint8))))
                midi.release()
            t0 = time.perf_counter()
            res = processor.process(block, events)
            stems = res.stems.reshape(-1, b)
            if gain is not None:
                stems = stems * gain
            dt_ms = 1000.0 * (time.perf_counter() - t0)
            for ev in res.notes:
                k = notes.write_slot()
                if k < 0:
                    ctl[N_NOTE_DROPS] += 1
                    continue
                notes.data[k] = (ev.sample, ev.stem, ev.note, ev.velocity, int(ev.on))
                notes.commit(k, tag)
            k = out.write_slot()
            if k >= 0:
                out.data[k] = stems
                out.commit(k, tag)
            if following:
                pos = processor.position_s
                ctl[FOLLOW_POS_MS] = FOLLOW_NONE if pos is None else round(1000.0 * pos)
                ctl[FOLLOW_CONF] = round(1000.0 * processor.confidence)
            n = int(ctl[N_BLOCKS])
            ch.timings_ms[n % N_TIMINGS] = dt_ms
            ctl[N_BLOCKS] = n + 1
            peaks = ch.peaks
            peaks[0] = max(peaks[0], float(np.abs(block).max()))
            np.maximum(peaks[1:], np.abs(res.stems).max(axis=(1, 2)), out=peaks[1:])


class ThreadWorker:
    """The worker as a thread of this process (shares the GIL with the audio callback)."""

    def __init__(
        self, processor: Any, channel: Channel, gains: Sequence[float] | None, rt_priority: int = DEFAULT_RT_PRIORITY
    ) -> None:
        self.processor, self.channel, self.gains = processor, channel, gains
        self.rt_priority = int(rt_priority)
        self._event = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Main thread."""
        self.channel.ctl[STOP] = 0
        self._thread = threading.Thread(target=self._run, name="stembridge-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.channel.ctl[RT_PRIORITY] = make_realtime(self.rt_priority)  # this thread only
            serve(self.processor, self.channel, self.gains, self._wait)
        except Exception as e:  # reported by the main thread as one line
            self.channel.set_error(f"{type(e).__name__}: {e}")

    def _wait(self, timeout_s: float) -> None:
        self._event.wait(timeout_s)
        self._event.clear()

    def wake(self) -> None:
        """Audio callback."""
        self._event.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Main thread."""
        self.channel.ctl[STOP] = 1
        self._event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def error(self) -> str | None:
        return self.channel.error()


class ProcessWorker:
    """The worker as a child process ("spawn"), fed through a shared-memory ``Channel``."""

    def __init__(
        self,
        processor: Any,
        channel_args: tuple[int, int, int],
        gains: Sequence[float] | None,
        rt_priority: int = DEFAULT_RT_PRIORITY,
    ) -> None:
        from multiprocessing import shared_memory

        self.spec = worker_spec(processor)
        self.rt_priority = int(rt_priority)
        self.gains = None if gains is None else [float(g) for g in gains]
        self._shm: Any = shared_memory.SharedMemory(create=True, size=Channel.nbytes(*channel_args))
        self.channel = Channel(*channel_args, buf=self._shm.buf)
        self._unlink = weakref.finalize(self, _unlink_quietly, self._shm)  # also if never stopped
        self._proc: Any = None
        self._wake_fd = -1
        self._stopping = False

    def start(self) -> None:
        """Main thread. Spawn the child and wait until its model is warm (or it failed)."""
        import multiprocessing as mp

        from bridge.errors import StembridgeError

        ctx = mp.get_context("spawn")
        reader, writer = ctx.Pipe(duplex=False)
        self.channel.ctl[STOP] = 0
        self._proc = ctx.Process(
            target=_child_main,
            args=(self.spec, self._shm.name, self.channel.args, self.gains, reader, self.rt_priority),
            name="stembridge-worker",
            daemon=True,
        )
        self._proc.start()
        reader.close()
        self._writer = writer  # keeps the fd open
        self._wake_fd = writer.fileno()
        os.set_blocking(self._wake_fd, False)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.channel.ctl[READY]:
            err = self.error()
            if err or time.monotonic() > deadline:
                self.stop()
                raise StembridgeError(f"the inference worker failed to start: {err or 'timed out'}")
            time.sleep(0.01)

    def wake(self) -> None:
        """Audio callback. One byte into a non-blocking pipe; a full pipe already wakes the child."""
        try:
            os.write(self._wake_fd, b"\0")
        except OSError:
            pass

    def stop(self, timeout_s: float = 5.0) -> None:
        """Main thread. Stop and join the child; the channel becomes a private copy, the shared
        block is freed."""
        self._stopping = True
        self.channel.ctl[STOP] = 1
        if self._proc is not None:
            self.wake()
            self._proc.join(timeout_s)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(timeout_s)
            self._writer.close()
        if self._shm is not None:
            self.channel = self.channel.detached()
            shm, self._shm = self._shm, None
            shm.close()
            self._unlink()

    def error(self) -> str | None:
        """Main thread. The child's error, or how it died."""
        err = self.channel.error()
        if err or self._proc is None or self._stopping or self._proc.is_alive():
            return err
        return f"the worker process exited with code {self._proc.exitcode}"


def _unlink_quietly(shm: Any) -> None:
    try:
        shm.unlink()
    except OSError:
        pass


def _n_threads(model: Any) -> int:
    try:
        return max(1, int(model.session.get_session_options().intra_op_num_threads))
    except Exception:
        return 1


def _attach(name: str) -> Any:
    """Child. Attach to the parent's shared block without registering it with the resource
    tracker (the parent owns and unlinks it)."""
    from multiprocessing import resource_tracker, shared_memory

    register = resource_tracker.register
    resource_tracker.register = lambda *a, **k: None  # type: ignore[assignment]
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register  # type: ignore[assignment]


def worker_spec(processor: Any) -> dict[str, Any]:
    """Main thread. What a child process needs to build the same processor (plain data)."""
    spec: dict[str, Any] = {"sample_rate": int(processor.sample_rate), "block_size": int(processor.max_block_size)}
    if getattr(processor, "is_live", False):  # a bridge.parts ScoredClasses: class stems from live score parts
        channel_map, score_offset_ms = processor.live_score_settings
        spec["scored_classes"] = {"low_latency": bool(processor.settings.low_latency), "fusion": processor.fusion}
        spec.update(
            model_path=str(processor.model.model.path),
            n_threads=_n_threads(processor.model.model),
            channel_map=channel_map,
            score_offset_ms=float(score_offset_ms),
        )
        return spec
    if hasattr(processor, "score_parts"):  # a bridge.parts FollowedParts
        spec["follow"] = [
            (p.name, p.track_name, p.track, p.channel, p.program, p.is_drum, p.notes.tolist())
            for p in processor.score_parts
        ]
    if hasattr(processor, "parts"):  # a bridge.parts PartsProcessor
        spec["parts"] = [(p.name, bool(p.is_drum), bool(p.kit), p.program) for p in processor.parts]
        spec["part_of_channel"] = dict(processor.part_of_channel)
        spec["low_latency"] = bool(processor.settings.low_latency)
        if hasattr(processor, "model"):  # a bridge.parts NetworkDrumParts: the kit from the network
            spec.update(model_path=str(processor.model.model.path), n_threads=_n_threads(processor.model.model))
        return spec
    channel_map, score_offset_ms = processor.live_score_settings
    powers = processor.mask_powers
    spec["mask_powers"] = None if powers is None else [float(p) for p in powers]  # the network's softened masks
    spec.update(
        model_path=str(processor.model.path),
        n_threads=_n_threads(processor.model),
        channel_map=channel_map,
        score_offset_ms=float(score_offset_ms),
    )
    return spec


def build_processor(spec: dict[str, Any]) -> Any:
    """Child process. The processor ``worker_spec`` describes, prepared for 2 channels (warm)."""
    if "parts" in spec:
        from bridge.parts.network_drums import NetworkDrumParts, parts_runner
        from bridge.parts.processor import PartSpec, PartsProcessor, PartsSettings

        settings = PartsSettings(low_latency=spec["low_latency"])
        if "follow" in spec:
            from bridge.parts.following import FollowedParts
            from bridge.parts.score_parts import ScorePart

            score = [
                ScorePart(
                    name, track_name, track, channel, program, is_drum, np.asarray(notes, np.float64).reshape(-1, 4)
                )
                for name, track_name, track, channel, program, is_drum, notes in spec["follow"]
            ]
            parts: PartsProcessor | NetworkDrumParts = FollowedParts(score, spec["part_of_channel"], settings)
        else:
            specs = [PartSpec(name, is_drum, kit, program) for name, is_drum, kit, program in spec["parts"]]
            model = _model_processor(spec) if "model_path" in spec else None
            parts = parts_runner(specs, settings, model)
            parts.set_live_channels(spec["part_of_channel"])
        parts.prepare(spec["sample_rate"], spec["block_size"], 2)
        return parts
    proc = _model_processor(spec)
    if "scored_classes" in spec:
        from bridge.parts.classes import ScoredClasses, class_parts_settings

        settings = class_parts_settings(low_latency=spec["scored_classes"]["low_latency"])
        proc = ScoredClasses.live(proc, spec["channel_map"], settings, fusion=spec["scored_classes"]["fusion"])
    proc.set_live_score(spec["channel_map"], spec["score_offset_ms"])
    proc.prepare(spec["sample_rate"], spec["block_size"], 2)
    return proc


def _model_processor(spec: dict[str, Any]) -> Any:
    """Child process. The network's ``Processor`` of a ``worker_spec`` (unprepared)."""
    from bridge.engine import Processor
    from bridge.model import OnnxModel

    model = OnnxModel(spec["model_path"], n_threads=spec["n_threads"], verify_sha256=False)
    return Processor(model, mask_powers=spec.get("mask_powers"))


def _child_main(
    spec: dict[str, Any], shm_name: str, channel_args: tuple[int, int, int], gains: Any, reader: Any, rt_priority: int
) -> None:
    """Child process. Build and warm the Processor, mark READY, serve until STOP or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    shm = _attach(shm_name)
    ch = Channel(*channel_args, buf=shm.buf)
    parent = os.getppid()
    try:
        proc = build_processor(spec)
        fd = reader.fileno()
        os.set_blocking(fd, False)

        def wait(timeout_s: float) -> None:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b"\0"
                if not data:  # end of file: every writer is gone, the parent died without stopping us
                    ch.ctl[STOP] = 1
            elif os.getppid() != parent:  # orphaned: the parent died without stopping us
                ch.ctl[STOP] = 1

        gc.collect()
        gc.freeze()  # what warm-up allocated is never scanned again: shorter collector pauses
        ch.ctl[RT_PRIORITY] = make_realtime(rt_priority)  # after the warm-up, which may take long
        ch.ctl[READY] = 1
        serve(proc, ch, gains, wait)
    except BaseException as e:
        ch.set_error(f"{type(e).__name__}: {e}")
        os._exit(1)
    os._exit(0)  # no interpreter teardown: the numpy views would keep the shared block busy
