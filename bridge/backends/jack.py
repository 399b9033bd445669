"""JACK backend (JACK-Client): the bridge as a JACK client with audio and MIDI ports.

Public API
----------
- ``JackBackend(client_name="stembridge")``:

  - ``open() -> (sample_rate, block_size)`` (main thread): connect to the server named by
    ``JACK_DEFAULT_SERVER`` (or the default one); never starts a server. ``DeviceError`` if
    none runs.
  - ``start(host, stems, connect=None, ..., route=None)`` (main thread): register ports,
    publish the latency on them, install the callbacks, activate, connect ``in_L`` / ``in_R``
    from the given ports. ``route`` (``live.host.OutputRoute``): which audio outputs exist.
  - ``failure``: a one-line reason once the server shut down or the buffer size / rate
    changed (set from JACK's threads, read by the main thread).
  - ``notices``: lines for the user after ``open`` (a server without real-time scheduling).
  - ``close()`` (main thread): deactivate and close; safe after a server shutdown.

Ports: audio in ``in_L``, ``in_R``; audio out ``<stem>_L``, ``<stem>_R`` for every stem
including ``other`` (with ``--send``: only the chosen stems, in stem order; with ``--monitor``:
``monitor_L``, ``monitor_R``, the gain-weighted sum; MIDI ports unchanged); MIDI in ``score_in``
(score messages, sample-accurate offsets passed to the processor); MIDI out ``notes_out``
(every stem, one channel per stem, drums on channel 10) and ``<stem>_notes`` per predicted stem
(same channels; none with ``with_notes=False``, as for score parts), events at their exact
offset.

Latency: every port publishes the bridge's ``latency_samples`` the JACK way
(``bridge.live.jack_latency``): outputs' capture latency = the inputs' + ``latency_samples``,
inputs' playback latency = the outputs' + ``latency_samples``, set before activation and
recomputed in JACK's latency callback on every graph change; ``jack_lsp -l`` shows it.

Threads: the process callback runs on JACK's real-time thread and only calls
``RealtimeHost.cycle``; the xrun and shutdown callbacks run on JACK's notification threads and
only set counters / flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.errors import DeviceError
from bridge.instruments import stem_channel
from bridge.live.host import OutputRoute, RealtimeHost


def _quiet_jack() -> Any:
    import jack

    jack.set_error_function(lambda msg: None)
    jack.set_info_function(lambda msg: None)
    return jack


class JackBackend:
    def __init__(self, client_name: str = "stembridge") -> None:
        self.client_name = client_name
        self.client: Any = None
        self.failure: str | None = None
        self.notices: list[str] = []
        self._host: RealtimeHost | None = None
        self._active = False
        self.latency: Any = None  # jack_latency.PortLatency once started
        self._watched: dict[str, str] = {}  # external MIDI ports we connected -> role, for check_ports

    def open(self) -> tuple[int, int]:
        """Main thread. Connect to the running server; returns (sample_rate, block_size)."""
        try:
            jack = _quiet_jack()
        except (ImportError, OSError) as e:
            raise DeviceError(f"the JACK backend needs JACK-Client and libjack ({e})") from None
        try:
            self.client = jack.Client(self.client_name, no_start_server=True)
        except jack.JackOpenError:
            raise DeviceError("no JACK server is running (start jackd, or use --backend portaudio)") from None
        if not self.client.realtime:
            self.notices.append(
                "the JACK server runs without real-time scheduling: expect xruns (start jackd with -R; "
                "your user needs the audio group's rtprio limit)"
            )
        return int(self.client.samplerate), int(self.client.blocksize)

    def start(
        self,
        host: RealtimeHost,
        stems: Sequence[str],
        connect: Sequence[str] | None = None,
        midi_in: str | None = None,
        midi_out: str | None = None,
        with_notes: bool = True,
        route: OutputRoute | None = None,
    ) -> None:
        """Main thread. Register ports, set callbacks, activate; connect ``in_L``/``in_R`` from
        ``connect``, ``score_in`` from the MIDI port ``midi_in``, ``notes_out`` to ``midi_out``."""
        client = self.client
        self._host = host
        all_stems = tuple(stems)
        predicted = all_stems[:-1] if with_notes else ()  # no notes ports for score parts
        self._ins = [client.inports.register("in_L"), client.inports.register("in_R")]
        self._route = route or OutputRoute(all_stems, host.block_size)
        self._outs = [client.outports.register(f"{s}_{side}") for s in self._route.names for side in ("L", "R")]
        self._score_in = client.midi_inports.register("score_in")
        self._notes_out = client.midi_outports.register("notes_out")
        self._stem_notes = [client.midi_outports.register(f"{s}_notes") for s in predicted]
        self._channels = [stem_channel(s, predicted) for s in predicted]
        self._block_size = host.block_size
        self._sample_rate = host.sample_rate
        from bridge.live.jack_latency import PortLatency

        try:
            latency = PortLatency(
                client,
                [*self._ins, self._score_in],
                [*self._outs, self._notes_out, *self._stem_notes],
                host.latency_samples,
            )
            latency.install()
            self.latency = latency
        except (OSError, AttributeError, RuntimeError) as e:  # a libjack without the latency API
            self.notices.append(f"the ports do not publish their latency ({e})")
        client.set_process_callback(self._process)
        client.set_xrun_callback(self._xrun)
        client.set_shutdown_callback(self._shutdown)
        client.set_blocksize_callback(self._blocksize)
        client.set_samplerate_callback(self._samplerate)
        client.activate()
        self._active = True
        for i, name in enumerate(connect or ()):
            target = self._ins[i % 2]
            try:
                client.connect(name, target)
            except Exception as e:
                raise DeviceError(f"cannot connect JACK port '{name}' to {target.name}: {e}") from None
        if midi_in:
            source = self._find_port(midi_in, is_output=True)
            self._connect_midi(source, self._score_in.name)
            self._watched[source] = "score MIDI input"
        if midi_out:
            dest = self._find_port(midi_out, is_output=False)
            self._connect_midi(self._notes_out.name, dest)
            self._watched[dest] = "notes MIDI output"
        if self.latency is not None:
            self.latency.recompute()

    def _find_port(self, pattern: str, is_output: bool) -> str:
        """Main thread. The first MIDI port whose full name contains ``pattern``."""
        ports = self.client.get_ports(is_midi=True, is_output=is_output, is_input=not is_output)
        for p in ports:
            if pattern in p.name and not p.name.startswith(self.client.name + ":"):
                return str(p.name)
        kind = "output" if is_output else "input"
        names = ", ".join(p.name for p in ports) or "none"
        raise DeviceError(f"no JACK MIDI {kind} port matches '{pattern}' (available: {names})")

    def _connect_midi(self, source: str, dest: str) -> None:
        try:
            self.client.connect(source, dest)
        except Exception as e:
            raise DeviceError(f"cannot connect JACK MIDI {source} -> {dest}: {e}") from None

    # ------------------------------------------------------------------ JACK threads
    def _process(self, frames: int) -> None:
        """JACK real-time thread."""
        host = self._host
        if host is None:
            return
        if host.first_frame_time is None:
            host.first_frame_time = int(self.client.last_frame_time)
        self._notes_out.clear_buffer()
        for p in self._stem_notes:
            p.clear_buffer()
        midi = [(offset, bytes(data)) for offset, data in self._score_in.incoming_midi_events()]
        dev = [p.get_array() for p in self._outs]
        host.cycle([p.get_array() for p in self._ins], self._route.full(dev), midi, self._send_note)
        self._route.finish(dev)

    def _send_note(self, offset: int, stem: int, note: int, velocity: int, on: bool) -> None:
        """JACK real-time thread (called from ``RealtimeHost.cycle``)."""
        ch = self._channels[stem]
        msg = bytes((0x90 | ch, note, velocity)) if on and velocity > 0 else bytes((0x80 | ch, note, 0))
        try:
            self._notes_out.write_midi_event(offset, msg)
            self._stem_notes[stem].write_midi_event(offset, msg)
        except Exception:  # MIDI buffer full: drop the event rather than break the cycle
            if self._host is not None:
                self._host.n_late_notes += 1

    def _xrun(self, delayed_usecs: float) -> None:
        if self._host is not None:
            self._host.xruns += 1

    def _shutdown(self, status: Any, reason: str) -> None:
        self.failure = f"the JACK server shut down ({reason.strip() or 'no reason given'})"

    def _blocksize(self, blocksize: int) -> None:
        if self._host is not None and blocksize != self._block_size:
            self.failure = f"the JACK buffer size changed to {blocksize}; restart stembridge"

    def _samplerate(self, samplerate: int) -> None:
        if self._host is not None and samplerate != self._sample_rate:
            self.failure = f"the JACK sample rate changed to {samplerate}; restart stembridge"

    # ------------------------------------------------------------------ main thread
    def check_ports(self) -> None:
        """Main thread. Set ``failure`` when a MIDI port given by ``--midi-in``/``--midi-out``
        is gone (its client closed or the device unplugged)."""
        if self.client is None or self.failure is not None:
            return
        for name, role in self._watched.items():
            try:
                self.client.get_port_by_name(name)
            except Exception:
                self.failure = f"the {role} port '{name}' disappeared (device unplugged or its client closed)"
                return

    def port_names(self) -> dict[str, list[str]]:
        """Main thread. Full names of this client's ports by role."""
        return {
            "audio_in": [p.name for p in self._ins],
            "audio_out": [p.name for p in self._outs],
            "midi_in": [self._score_in.name],
            "midi_out": [self._notes_out.name, *(p.name for p in self._stem_notes)],
        }

    def close(self) -> None:
        """Main thread. Deactivate and close the client (also after a server shutdown)."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if self._active and self.failure is None:
                client.deactivate()
            client.close()
        except Exception:
            pass
        self._active = False
