"""``stembridge devices``: audio devices, JACK ports and MIDI ports; device lookup by number or name.

Public API
----------
- ``print_devices() -> int`` (main thread): print PortAudio devices (sounddevice), the ports
  of a running JACK server, and MIDI input/output ports (python-rtmidi). Each section that
  cannot be listed says why in one line. Imports neither onnxruntime nor the engine.
- ``import_sounddevice()``: the sounddevice module, or ``DeviceError`` when PortAudio is missing.
- ``find_audio_device(spec, kind) -> int | None``: ``spec`` is a device number or a
  case-insensitive name substring; ``kind`` is ``"input"`` or ``"output"``; ``None`` keeps
  the default device. ``DeviceError`` lists the candidates when nothing or several match.
- ``find_midi_port(names, spec, kind) -> int``: the same rule for MIDI port names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.errors import DeviceError


def import_sounddevice() -> Any:
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        raise DeviceError(f"PortAudio is not available ({e}); install libportaudio2") from None
    return sd


def _match(names: Sequence[str], spec: str, what: str, valid: Sequence[int] | None = None) -> int:
    """Index of the entry of ``names`` selected by ``spec`` (number or substring)."""
    candidates = list(range(len(names))) if valid is None else list(valid)
    s = str(spec).strip()
    if s.isdigit():
        i = int(s)
        if i in candidates:
            return i
        raise DeviceError(f"no {what} number {i} (see `stembridge devices`)")
    hits = [i for i in candidates if s.lower() in names[i].lower()]
    exact = [i for i in hits if names[i].lower() == s.lower()]
    if len(exact) == 1 or len(hits) == 1:
        return (exact or hits)[0]
    listing = "; ".join(f"{i}: {names[i]}" for i in (hits or candidates)) or "none"
    if hits:
        raise DeviceError(f"'{spec}' matches several {what}s ({listing}); give a number")
    raise DeviceError(f"no {what} matches '{spec}' (available: {listing})")


def find_audio_device(spec: str | None, kind: str) -> int | None:
    if spec is None:
        return None
    sd = import_sounddevice()
    devices = sd.query_devices()
    key = "max_input_channels" if kind == "input" else "max_output_channels"
    valid = [i for i, d in enumerate(devices) if d[key] > 0]
    return _match([d["name"] for d in devices], spec, f"audio {kind} device", valid)


def find_midi_port(names: Sequence[str], spec: str, kind: str) -> int:
    return _match(list(names), spec, f"MIDI {kind} port")


def _print_audio() -> None:
    print("Audio devices (PortAudio; --input / --output take a number or a name substring):")
    try:
        sd = import_sounddevice()
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as e:
        print(f"  unavailable: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
        return
    if not devices:
        print("  none found (no sound card?)")
    for i, d in enumerate(devices):
        api = apis[d["hostapi"]]["name"]
        print(
            f"  {i:3d}  {d['name']}  [{api}]  in {d['max_input_channels']}, out {d['max_output_channels']}, "
            f"{d['default_samplerate']:.0f} Hz"
        )


def _print_jack() -> None:
    import os

    server = os.environ.get("JACK_DEFAULT_SERVER", "default")
    print(f"JACK ports (server '{server}'):")
    try:
        from bridge.backends.jack import _quiet_jack

        jack = _quiet_jack()
    except (ImportError, OSError) as e:
        print(f"  unavailable: {e}")
        return
    try:
        client = jack.Client("stembridge-devices", no_start_server=True)
    except jack.JackOpenError:
        print("  no JACK server is running")
        return
    try:
        print(f"  {client.samplerate} Hz, {client.blocksize} frames")
        for p in client.get_ports():
            if p.name.startswith(client.name + ":"):
                continue
            kind = "midi " if p.is_midi else "audio"
            direction = "out" if p.is_output else "in "
            print(f"  {kind} {direction}  {p.name}")
    finally:
        client.close()


def _print_midi() -> None:
    print("MIDI ports (rtmidi; --midi-in / --midi-out take a number or a name substring):")
    try:
        import rtmidi

        inputs = rtmidi.MidiIn().get_ports()
        outputs = rtmidi.MidiOut().get_ports()
    except Exception as e:
        print(f"  unavailable ({e or 'no MIDI system'}; on Linux the ALSA sequencer /dev/snd/seq is needed)")
        return
    for label, names in (("in ", inputs), ("out", outputs)):
        if not names:
            print(f"  {label}  none")
        for i, n in enumerate(names):
            print(f"  {label} {i:3d}  {n}")


def print_devices() -> int:
    """Main thread. Print every section; returns 0."""
    _print_audio()
    _print_jack()
    _print_midi()
    return 0
