"""PortAudio backend (sounddevice + python-rtmidi): one duplex stream and OS MIDI ports.

Public API
----------
- ``PortAudioBackend(sample_rate=None, block_size=256, input_device=None, output_device=None,
  midi_in=None, midi_out=None)``:

  - ``open() -> (sample_rate, block_size)`` (main thread): resolve the devices (number or name
    substring, see ``bridge.devices``); the rate defaults to the input device's.
  - ``start(host, stems, route=None)`` (main thread): open the MIDI ports, then a duplex
    stream with 2 input channels and 2 output channels per output of ``route``
    (``live.host.OutputRoute``; default every stem: ``stem0_L, stem0_R, ..., other_R``, for
    BlackHole 16ch, VB-Cable, an ASIO loopback). With ``--send drums`` or ``--monitor
    "drums=-6,bass"`` a plain stereo interface is enough.
  - ``failure``: one-line reason when the stream ended by itself; ``notices``: lines for the
    user (e.g. no MIDI). ``close()`` (main thread).

MIDI: score in on a virtual port ``stembridge score`` and notes out on ``stembridge notes``
(where the OS allows: ALSA sequencer on Linux, CoreMIDI on macOS), or on existing ports named by
``--midi-in`` / ``--midi-out`` (Windows: loopMIDI). Without a MIDI system the bridge runs
without MIDI and says so. Incoming messages are stamped by rtmidi's thread with their arrival
time and placed in the next audio block in proportion to that time (one block of delay,
jitter below a block); note events are sent from the audio callback at the start of the block
they belong to (jitter up to one block). JACK gives sample-accurate MIDI; PortAudio cannot.

Threads: the stream callback (PortAudio's thread) only calls ``RealtimeHost.cycle`` and
``send_message``; the rtmidi input callback only appends to a deque. PortAudio status flags
(input overflow, output underflow) count as xruns.

Exercised by ``tests/integration/test_portaudio_bridge.py`` through PortAudio's JACK host API on a
private ``jackd -d dummy`` (a test client's ports are the "device").
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from bridge.errors import DeviceError
from bridge.instruments import stem_channel
from bridge.live.host import OutputRoute, RealtimeHost

VIRTUAL_IN = "stembridge score"
VIRTUAL_OUT = "stembridge notes"
STALLED_S = 2.0  # no callback for this long: the stream is not stopped (stopping would wait forever)


class PortAudioBackend:
    def __init__(
        self,
        sample_rate: int | None = None,
        block_size: int = 256,
        input_device: str | None = None,
        output_device: str | None = None,
        midi_in: str | None = None,
        midi_out: str | None = None,
    ) -> None:
        self.sample_rate = sample_rate
        self.block_size = int(block_size)
        self.input_spec = input_device
        self.output_spec = output_device
        self.midi_in_spec = midi_in
        self.midi_out_spec = midi_out
        self.failure: str | None = None
        self.notices: list[str] = []
        self.stream: Any = None
        self._midi_in: Any = None
        self._midi_out: Any = None
        self._midi_queue: deque[tuple[float, bytes]] = deque()
        self._watched: list[tuple[Any, str, str]] = []  # (rtmidi object, port name, role)
        self._last_cb_s = 0.0
        self._started_s = 0.0

    def open(self) -> tuple[int, int]:
        """Main thread. Resolve devices and the rate; returns (sample_rate, block_size)."""
        from bridge.devices import find_audio_device, import_sounddevice

        sd = import_sounddevice()
        if not 16 <= self.block_size <= 8192:
            raise DeviceError(f"block size must be 16-8192 frames, got {self.block_size}")
        self._in_dev = find_audio_device(self.input_spec, "input")
        self._out_dev = find_audio_device(self.output_spec, "output")
        try:
            in_info = sd.query_devices(self._in_dev, kind="input")
            self._out_info = sd.query_devices(self._out_dev, kind="output")
        except (sd.PortAudioError, ValueError):
            raise DeviceError("no audio input/output device found (see `stembridge devices`)") from None
        if self.sample_rate is None:
            self.sample_rate = int(in_info["default_samplerate"])
        self._sd = sd
        return int(self.sample_rate), self.block_size

    def start(
        self, host: RealtimeHost, stems: Sequence[str], with_notes: bool = True, route: OutputRoute | None = None
    ) -> None:
        """Main thread. Open MIDI, then start the duplex stream (``with_notes=False``: the
        stems send no notes, e.g. score parts)."""
        self._host = host
        predicted = tuple(stems)[:-1] if with_notes else ()
        self._channels = [stem_channel(s, predicted) for s in predicted]
        self._route = route or OutputRoute(stems, host.block_size)
        self._n_out = self._route.n_channels
        self._open_midi()
        max_out = int(self._out_info["max_output_channels"])
        if max_out < self._n_out:
            raise DeviceError(
                f"output device has {max_out} channels; {self._n_out} are needed (2 per stem sent), "
                'e.g. BlackHole 16ch, or send fewer stems (--send drums) or a stereo mix (--monitor "drums,bass")'
            )
        try:
            self.stream = self._sd.Stream(
                samplerate=self.sample_rate,
                blocksize=self.block_size,
                device=(self._in_dev, self._out_dev),
                channels=(2, self._n_out),
                dtype="float32",
                latency="low",
                callback=self._callback,
                finished_callback=self._finished,
            )
            self._started_s = time.perf_counter()
            self.stream.start()
        except self._sd.PortAudioError as e:
            raise DeviceError(f"cannot open the audio stream: {e}") from None

    def _open_midi(self) -> None:
        """Main thread. Score in and notes out; on failure a notice and no MIDI."""
        try:
            import rtmidi

            self._midi_in = rtmidi.MidiIn()
            self._midi_out = rtmidi.MidiOut()
        except Exception as e:
            self._midi_in = self._midi_out = None
            self.notices.append(f"no MIDI ({e or 'no MIDI system'}; on Linux the ALSA sequencer /dev/snd/seq)")
            return
        from bridge.devices import find_midi_port

        try:
            for port, spec, kind, virtual, role in (
                (self._midi_in, self.midi_in_spec, "input", VIRTUAL_IN, "score MIDI input"),
                (self._midi_out, self.midi_out_spec, "output", VIRTUAL_OUT, "notes MIDI output"),
            ):
                if spec:
                    names = port.get_ports()
                    k = find_midi_port(names, spec, kind)
                    port.open_port(k)
                    self._watched.append((port, names[k], role))
                else:
                    port.open_virtual_port(virtual)
        except DeviceError:
            raise
        except Exception as e:  # virtual ports unsupported (Windows): name ports instead
            raise DeviceError(
                f"cannot create virtual MIDI ports ({e}); pass --midi-in/--midi-out with existing ports (loopMIDI)"
            ) from None
        self._midi_in.ignore_types(sysex=True, timing=True, active_sense=True)
        self._midi_in.set_callback(self._midi_cb)

    # ------------------------------------------------------------------ other threads
    def _midi_cb(self, event: tuple[list[int], float], data: Any = None) -> None:
        """rtmidi's input thread: stamp and queue."""
        self._midi_queue.append((time.perf_counter(), bytes(event[0])))

    def _callback(self, indata: Any, outdata: Any, frames: int, t: Any, status: Any) -> None:
        """PortAudio's audio thread."""
        host = self._host
        if status.input_overflow or status.output_underflow or status.input_underflow or status.output_overflow:
            host.xruns += 1
        now = time.perf_counter()
        prev, self._last_cb_s = self._last_cb_s, now
        span = max(now - prev, 1e-6)
        midi = []
        q = self._midi_queue
        while q:
            t_ev, data = q.popleft()
            midi.append((min(frames - 1, max(0, int((t_ev - prev) / span * frames))), data))
        dev = [outdata[:, k] for k in range(self._n_out)]
        host.cycle(
            [indata[:, 0], indata[:, 1]],
            self._route.full(dev),
            midi,
            self._send_note if self._midi_out is not None else None,
        )
        self._route.finish(dev)

    def _send_note(self, offset: int, stem: int, note: int, velocity: int, on: bool) -> None:
        ch = self._channels[stem]
        msg = [0x90 | ch, note, velocity] if on and velocity > 0 else [0x80 | ch, note, 0]
        try:
            self._midi_out.send_message(msg)
        except Exception:
            self._host.n_late_notes += 1

    def _finished(self) -> None:
        if self.stream is not None and self.stream.active is False and not getattr(self, "_closing", False):
            self.failure = "the audio stream stopped (device unplugged or closed)"

    # ------------------------------------------------------------------ main thread
    def check_ports(self) -> None:
        """Main thread. Set ``failure`` when a named MIDI port (``--midi-in``/``--midi-out``) is
        no longer listed by the OS (device unplugged, loopMIDI port removed)."""
        if self.failure is not None:
            return
        stream = self.stream
        if stream is not None and not stream.active and not stream.stopped:
            # the host API lost the device without calling the finished callback (PortAudio's
            # JACK host API when the JACK server goes away)
            self.failure = "the audio stream stopped (device unplugged or closed)"
            return
        for port, name, role in self._watched:
            try:
                present = name in port.get_ports()
            except Exception:
                present = False
            if not present:
                self.failure = f"the {role} port '{name}' disappeared (device unplugged or port removed)"
                return

    def close(self) -> None:
        self._closing = True
        stream, self.stream = self.stream, None
        quiet_s = time.perf_counter() - max(self._last_cb_s, self._started_s)
        if stream is not None and ((not stream.active and not stream.stopped) or quiet_s > STALLED_S):
            # the device vanished under a running stream, or its callback stopped coming:
            # PortAudio's stop, close and exit handler (Pa_Terminate) wait for a callback that
            # never comes (JACK host API after a server shutdown, or a stalled JACK graph), so
            # leave the stream and PortAudio to process exit
            import atexit

            atexit.unregister(self._sd._exit_handler)
        elif stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception:
                pass
        for port in (self._midi_in, self._midi_out):
            if port is not None:
                try:
                    port.close_port()
                    port.delete()
                except Exception:
                    pass
        self._midi_in = self._midi_out = None
