"""Port latency published the JACK way, through libjack with ctypes (JACK-Client 0.5 has no
latency API).

Public API
----------
- ``PortLatency(client, inputs, outputs, latency_samples)`` (main thread): for a JACK-Client
  ``Client`` that is not active yet and its own ``Port`` objects.

  - ``install()`` (main thread, before ``Client.activate``): set the ranges once (outputs'
    capture latency and inputs' playback latency = ``latency_samples``, as seen with nothing
    connected) and register the latency callback that keeps them right as the graph changes.
  - ``recompute()`` (main thread, after connecting): ask the server to run the callbacks
    again (``jack_recompute_total_latencies``); JACK also does so on every graph change.
  - ``read(port, mode) -> (min, max)``: a port's latency range (any port object).

Rule (JACK's latency API, as in its documentation's example client): an output's capture
latency is the largest range over the inputs' capture latencies plus ``latency_samples``; an
input's playback latency is the range over the outputs' playback latencies plus
``latency_samples``. DAWs (Ardour, Reaper, Bitwig, Carla) read these ranges to line up what
they record through an external client.

Threads: the callback runs on JACK's notification thread (never the process thread); it only
reads and writes port ranges and catches every exception, so nothing is raised into C.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import Any

CAPTURE = 0  # JackCaptureLatency
PLAYBACK = 1  # JackPlaybackLatency


class _Range(ctypes.Structure):
    _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]


_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
_lib: Any = None


def _libjack() -> Any:
    """The libjack that JACK-Client loaded (dlopen gives the same library, hence the same
    client and port objects)."""
    global _lib
    if _lib is None:
        import jack

        lib = ctypes.CDLL(jack._libname)
        lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, _CALLBACK, ctypes.c_void_p]
        lib.jack_set_latency_callback.restype = ctypes.c_int
        for fn in (lib.jack_port_get_latency_range, lib.jack_port_set_latency_range):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(_Range)]
            fn.restype = None
        lib.jack_recompute_total_latencies.argtypes = [ctypes.c_void_p]
        lib.jack_recompute_total_latencies.restype = ctypes.c_int
        _lib = lib
    return _lib


def _address(cdata: Any) -> int:
    """The address held by a JACK-Client cffi pointer (``Client._ptr``, ``Port._ptr``)."""
    import jack

    return int(jack._ffi.cast("uintptr_t", cdata))


def read(port: Any, mode: int) -> tuple[int, int]:
    """Any thread. ``(min, max)`` latency range of a JACK-Client port in ``mode``."""
    r = _Range()
    _libjack().jack_port_get_latency_range(_address(port._ptr), mode, ctypes.byref(r))
    return int(r.min), int(r.max)


class PortLatency:
    def __init__(self, client: Any, inputs: Sequence[Any], outputs: Sequence[Any], latency_samples: int) -> None:
        self._lib = _libjack()
        self._client = _address(client._ptr)
        self._ins = [_address(p._ptr) for p in inputs]
        self._outs = [_address(p._ptr) for p in outputs]
        self.latency_samples = int(latency_samples)
        self.n_callbacks = 0
        self.error: str | None = None  # the last exception the callback swallowed
        self._callback = _CALLBACK(self._on_latency)  # kept alive as long as the client

    def install(self) -> None:
        """Main thread, before activation: initial ranges and the latency callback."""
        self._apply(CAPTURE)
        self._apply(PLAYBACK)
        if self._lib.jack_set_latency_callback(self._client, self._callback, None) != 0:
            raise RuntimeError("jack_set_latency_callback failed")

    def recompute(self) -> None:
        """Main thread (active client): have the server recompute the graph's latencies."""
        self._lib.jack_recompute_total_latencies(self._client)

    def _apply(self, mode: int) -> None:
        src, dst = (self._ins, self._outs) if mode == CAPTURE else (self._outs, self._ins)
        r = _Range()
        lo, hi = None, 0
        for p in src:
            self._lib.jack_port_get_latency_range(p, mode, ctypes.byref(r))
            lo = r.min if lo is None else min(lo, r.min)
            hi = max(hi, r.max)
        r.min = (lo or 0) + self.latency_samples
        r.max = max(hi + self.latency_samples, r.min)
        for p in dst:
            self._lib.jack_port_set_latency_range(p, mode, ctypes.byref(r))

    def _on_latency(self, mode: int, arg: Any) -> None:
        """JACK's notification thread. Never raises."""
        try:
            self.n_callbacks += 1
            self._apply(int(mode))
        except BaseException as e:  # noqa: BLE001 - nothing may propagate into libjack
            self.error = repr(e)
