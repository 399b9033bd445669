"""User-facing errors: each one becomes a single line and a non-zero exit in the CLI.

- ``StembridgeError``: base class; its message is printed as is.
- ``InputError``: a bad audio or MIDI file, or a bad argument (exit code 2).
- ``ModelError``: a model file that is missing, corrupt or inconsistent (exit code 3).
- ``DeviceError``: an audio/MIDI device or server that is missing or went away (exit code 4).
"""

from __future__ import annotations


class StembridgeError(Exception):
    """An error the user can fix; the CLI prints ``stembridge: error: <message>``."""

    exit_code = 1


class InputError(StembridgeError):
    exit_code = 2


class ModelError(StembridgeError):
    exit_code = 3


class DeviceError(StembridgeError):
    exit_code = 4
