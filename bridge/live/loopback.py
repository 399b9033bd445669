"""A JACK test rig: plays audio and a score into the bridge and records every bridge output.

Public API
----------
- ``Loopback(audio, score_events, n_record_samples, bridge="stembridge", loop=False)``: two JACK clients
  in this process, ``<name>-play`` (audio ``out_L``/``out_R`` and MIDI ``score_out``, connected
  to the bridge's ``in_L``/``in_R``/``score_in``) and ``<name>-rec`` (one input per bridge
  output port). Two clients, not one, so the graph runs player -> bridge -> recorder in one
  cycle without a feedback loop.

  - ``open(stems, note_stems=None)`` (main thread): register, activate, connect to the bridge's
    ports: ``<name>_L``/``<name>_R`` for each name in ``stems`` (every stem; the ``--send``
    ones; ``("monitor",)`` for ``--monitor``) and ``<stem>_notes`` of ``note_stems`` (default
    every name in ``stems`` but the last; ``()`` for parts).
  - ``start()`` (main thread): play from the next cycle; ``start_frame`` is then the JACK
    frame time of the first played sample.
  - ``wait(timeout_s) -> bool`` (main thread): True once ``n_record_samples`` were recorded.
  - ``recorded``: (2 * n_outputs, n_record_samples) float32, sample ``k`` recorded at frame
    ``start_frame + k``, ports in the bridge's order ``stem0_L, stem0_R, ..., other_R``;
    ``midi``: ``{port: [(sample, bytes), ...]}`` for ``notes_out`` and ``<stem>_notes`` with
    samples relative to ``start_frame``.
  - ``close()`` (main thread).
- ``open_when_ready(make, stems, bridge_alive, timeout_s=120, note_stems=None, server=None) -> Loopback``:
  retry ``open`` on fresh Loopbacks until the bridge's ports exist (looked up by ``jack_lsp`` on ``server``).
- ``score_file_events(path, rate) -> [(sample, bytes)]``: a MIDI file's channel messages as the live
  MIDI a DAW would play (sample times at ``rate``).
- ``record_run(args, audio, score_events, stems, rate, block, cwd, note_stems=()) -> StandInRun``: a
  stand-in DAW session: ``stembridge run --backend jack ARGS`` on a private ``jackd -d dummy``
  (``rate`` / ``block``, synchronous, 32 queued blocks) fed ``audio`` and ``score_events``, every
  output recorded and lined up by the latency the run reports (stats ``--stats``).

``audio`` is (2, n) float32, ``score_events`` a list of ``(sample, bytes)`` relative to the
start of the audio. ``loop=True`` plays audio and score over and over (soak runs; record
nothing with ``n_record_samples=0``). The process callbacks run on JACK's thread and only copy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bridge.backends.jack import _quiet_jack

if TYPE_CHECKING:
    from bridge.live.jackd import PrivateJackd


class Loopback:
    def __init__(
        self,
        audio: np.ndarray,
        score_events: Sequence[tuple[int, bytes]],
        n_record_samples: int,
        bridge: str = "stembridge",
        name: str | None = None,
        loop: bool = False,
    ) -> None:
        self.audio = np.ascontiguousarray(audio, np.float32)
        self.score_events = sorted(score_events, key=lambda e: e[0])
        self.n_record = int(n_record_samples)
        self.bridge = bridge
        self.name = name or f"sbtest-{uuid.uuid4().hex[:6]}"
        self.start_frame: int | None = None
        self._armed = False
        self._done = threading.Event()
        self._next_event = 0
        self.loop = bool(loop)
        self._loop_base = 0  # loop mode: sample position of the current pass over the score
        self.midi: dict[str, list[tuple[int, bytes]]] = {}
        self.recorded = np.zeros((0, self.n_record), np.float32)

    def open(self, stems: Sequence[str], note_stems: Sequence[str] | None = None) -> None:
        jack = _quiet_jack()
        self._play = jack.Client(self.name + "-play", no_start_server=True)
        self._rec = jack.Client(self.name + "-rec", no_start_server=True)
        self._outs = [self._play.outports.register("out_L"), self._play.outports.register("out_R")]
        self._score = self._play.midi_outports.register("score_out")
        out_names = [f"{s}_{side}" for s in stems for side in ("L", "R")]
        note_stems = stems[:-1] if note_stems is None else note_stems
        note_names = ["notes_out", *(f"{s}_notes" for s in note_stems)]
        self._rec_ins = [self._rec.inports.register(n) for n in out_names]
        self._rec_midi = [self._rec.midi_inports.register(n) for n in note_names]
        self.midi = {n: [] for n in note_names}
        self.recorded = np.zeros((len(out_names), self.n_record), np.float32)
        self._play.set_process_callback(self._play_cb)
        self._rec.set_process_callback(self._rec_cb)
        self._play.activate()
        self._rec.activate()
        b = self.bridge
        self._play.connect(self._outs[0], f"{b}:in_L")
        self._play.connect(self._outs[1], f"{b}:in_R")
        self._play.connect(self._score, f"{b}:score_in")
        for port, n in zip(self._rec_ins, out_names):
            self._rec.connect(f"{b}:{n}", port)
        for port, n in zip(self._rec_midi, note_names):
            self._rec.connect(f"{b}:{n}", port)

    def start(self) -> None:
        self._armed = True

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    # ------------------------------------------------------------------ JACK thread
    def _play_cb(self, frames: int) -> None:
        t = int(self._play.last_frame_time)
        for p in self._outs:
            p.get_array()[:] = 0.0
        self._score.clear_buffer()
        if not self._armed:
            return
        if self.start_frame is None:
            self.start_frame = t
        pos = t - self.start_frame
        n_audio = self.audio.shape[1]
        done = 0
        while done < frames and (self.loop or pos + done < n_audio) and n_audio:
            a = (pos + done) % n_audio if self.loop else pos + done
            k = min(frames - done, n_audio - a)
            for c, p in enumerate(self._outs):
                p.get_array()[done : done + k] = self.audio[c, a : a + k]
            done += k
        ev = self.score_events
        while ev and self._next_event < len(ev) and self._loop_base + ev[self._next_event][0] < pos + frames:
            sample, data = ev[self._next_event]
            self._score.write_midi_event(max(0, self._loop_base + sample - pos), data)
            self._next_event += 1
            if self.loop and self._next_event == len(ev):
                self._next_event = 0
                self._loop_base += n_audio

    def _rec_cb(self, frames: int) -> None:
        if self.start_frame is None:
            return
        pos = int(self._rec.last_frame_time) - self.start_frame
        if pos < 0 or pos >= self.n_record:
            if pos >= self.n_record:
                self._done.set()
            return
        k = min(frames, self.n_record - pos)
        for i, p in enumerate(self._rec_ins):
            self.recorded[i, pos : pos + k] = p.get_array()[:k]
        for p in self._rec_midi:
            lst = self.midi[p.shortname]
            for offset, data in p.incoming_midi_events():
                if pos + offset < self.n_record:
                    lst.append((pos + offset, bytes(data)))
        if pos + k >= self.n_record:
            self._done.set()

    def close(self) -> None:
        for c in (getattr(self, "_play", None), getattr(self, "_rec", None)):
            if c is None:
                continue
            try:
                c.deactivate()
                c.close()
            except Exception:
                pass


def open_when_ready(
    make: Callable[[], Loopback],
    stems: Sequence[str],
    bridge_alive: Callable[[], bool],
    timeout_s: float = 120.0,
    note_stems: Sequence[str] | None = None,
    server: PrivateJackd | None = None,
) -> Loopback:
    """Main thread. A ``make()``-built Loopback opened once the bridge's ports exist (the bridge
    loads and warms its model first). With ``server``, the bridge's output ports are looked up by
    ``jack_lsp`` children first (``PrivateJackd.ports``), so this process opens its clients only once they
    exist, not over and over while the bridge loads.
    Raises ``RuntimeError`` when ``bridge_alive()`` turns False or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        lb = make()
        if server is None or {f"{lb.bridge}:{n}" for n in rec_port_names(stems)} <= set(server.ports() or ()):
            try:
                lb.open(stems, note_stems)
                return lb
            except Exception:
                lb.close()
        if not bridge_alive():
            raise RuntimeError("the bridge exited before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bridge did not come up within {timeout_s:.0f} s")
        time.sleep(0.3)


def rec_port_names(stems: Sequence[str]) -> list[str]:
    """Bridge audio output port short names in recording order."""
    return [f"{s}_{side}" for s in stems for side in ("L", "R")]


def score_file_events(path: Path, rate: int) -> list[tuple[int, bytes]]:
    """A MIDI file's channel messages as live MIDI: (sample at ``rate``, bytes), in file order."""
    import mido

    events, t = [], 0.0
    for msg in mido.MidiFile(str(path)):
        t += msg.time
        if not msg.is_meta:
            events.append((round(t * rate), bytes(msg.bytes())))
    return events


@dataclass
class StandInRun:
    """A recorded ``record_run``: ``stems`` (n_stems, 2, n) from the first played sample on, shifted
    earlier by ``stats["latency_samples"]``; ``midi`` as ``Loopback.midi`` with samples shifted the
    same way; the bridge's ``ports`` (``stembridge:*``) and its stderr."""

    stems: np.ndarray
    midi: dict[str, list[tuple[int, bytes]]]
    stats: dict
    ports: list[str]
    stderr: str


def record_run(
    args: Sequence[str],
    audio: np.ndarray,
    score_events: Sequence[tuple[int, bytes]],
    stems: Sequence[str],
    rate: int,
    block: int,
    cwd: Path,
    note_stems: Sequence[str] | None = (),
    tail_s: float = 0.5,
) -> StandInRun:
    """Main thread. See the module docstring; raises ``RuntimeError`` when the run fails."""
    from bridge.live.jackd import PrivateJackd

    n = audio.shape[1]
    n_record = n + int(tail_s * rate)
    with tempfile.TemporaryDirectory() as tmp, PrivateJackd(rate, block, sync=True) as server:
        cfg, stats_path = Path(tmp) / "rt.toml", Path(tmp) / "stats.json"
        cfg.write_text("[realtime]\nqueue_blocks = 32\n")
        cmd = [sys.executable, "-m", "bridge", "run", "--backend", "jack", *args, "--quiet"]
        cmd += ["--config", str(cfg), "--stats", str(stats_path)]
        out, errs = subprocess.DEVNULL, subprocess.PIPE
        proc = subprocess.Popen(cmd, cwd=cwd, env=server.env(), stdout=out, stderr=errs, text=True)
        old = os.environ.get("JACK_DEFAULT_SERVER")
        try:
            os.environ["JACK_DEFAULT_SERVER"] = server.name
            alive = lambda: proc.poll() is None  # noqa: E731
            make = lambda: Loopback(audio, score_events, n_record)  # noqa: E731
            lb = open_when_ready(make, stems, alive, note_stems=note_stems, server=server)
            ports = sorted(p for p in (server.ports() or ()) if p.startswith("stembridge:"))
            try:
                time.sleep(0.5)
                lb.start()
                if not lb.wait(120.0 + n / rate):
                    raise RuntimeError("the recording did not finish")
            finally:
                lb.close()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if proc.returncode != 0:
            raise RuntimeError(f"stembridge run {' '.join(args)} failed: {err.strip()}")
        stats = json.loads(stats_path.read_text())
    lat = int(stats["latency_samples"])
    rec = lb.recorded.reshape(len(stems), 2, n_record)[:, :, lat : lat + n]
    midi = {k: [(t - lat, m) for t, m in v if t >= lat] for k, v in lb.midi.items()}
    return StandInRun(rec, midi, stats, ports, err)
