"""Choosing what comes back (``--send``, ``--monitor``) on a private ``jackd -d dummy``.

The bridge runs in this process on JACK (thread worker, 8 queued 1024-frame blocks on a
synchronous server, as in ``test_jack_bridge``) with an ``OutputRoute``; the Loopback rig plays
the mix and score and records the bridge's outputs by port name. Facts: with ``send bass,drums``
the bridge has exactly the audio outputs ``drums_L, drums_R, bass_L, bass_R`` (stem order), and
each equals that stem of the full offline run on the same stream (SNR >= 30 dB, not scale
invariant); with ``monitor drums=-6,bass,other=+3`` it has ``monitor_L``/``monitor_R`` only, equal
to the gain-weighted sum of those offline stems. Unit facts on the parsers and the route too.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import numpy as np
import pytest

from bridge.engine import Processor
from bridge.errors import InputError
from bridge.live.config import parse_monitor, parse_send
from bridge.live.host import OutputRoute, RealtimeHost
from bridge.live.jackd import PrivateJackd
from bridge.live.loopback import Loopback
from tests.conftest import TEST_MODEL
from tests.integration.test_jack_bridge import BLOCK, MIX_AT, QUEUE_BLOCKS, RATE, make_signal, offline, score_events

STEMS = ("drums", "bass", "piano", "guitar", "strings", "other")
needs_jackd = pytest.mark.skipif(shutil.which("jackd") is None, reason="jackd not installed")


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref, est = ref.astype(np.float64), est.astype(np.float64)
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((est - ref) ** 2), 1e-30)))


# ---------------------------------------------------------------------------- units
def test_parse_send_orders_by_stem_and_rejects_unknown_names() -> None:
    assert parse_send("other, bass,drums", STEMS) == ("drums", "bass", "other")
    assert parse_send(["piano"], STEMS, "cfg") == ("piano",)
    with pytest.raises(InputError, match=r"^--send: unknown stem 'vox' \(one of drums, bass"):
        parse_send("drums,vox", STEMS)
    with pytest.raises(InputError, match="at least one stem"):
        parse_send([], STEMS)


def test_parse_monitor_gains() -> None:
    assert parse_monitor("other=+3, drums=-6,bass", STEMS) == {"drums": -6.0, "bass": 0.0, "other": 3.0}
    assert parse_monitor({"piano": -1.5}, STEMS) == {"piano": -1.5}
    for bad in ("drums=x", "drums=nan", "ch1"):
        with pytest.raises(InputError):
            parse_monitor(bad, STEMS)


def test_route_send_and_monitor_fill_the_device_channels() -> None:
    rng = np.random.default_rng(0)
    full = rng.standard_normal((12, 64)).astype(np.float32)

    def play(route: OutputRoute) -> np.ndarray:
        dev = np.zeros((route.n_channels, 64), np.float32)
        outs = route.full(list(dev))
        for k, o in enumerate(outs):  # what RealtimeHost.cycle does: fill in place
            o[:] = full[k]
        route.finish(list(dev))
        return dev

    send = OutputRoute(STEMS, 64, send=("bass", "other"))
    assert send.names == ("bass", "other") and send.n_channels == 4
    np.testing.assert_array_equal(play(send), full[[2, 3, 10, 11]])
    mon = OutputRoute(STEMS, 64, monitor={"drums": -6.0, "piano": 0.0})
    assert mon.names == ("monitor",) and mon.n_channels == 2
    g = 10 ** (-6 / 20)
    np.testing.assert_allclose(play(mon), g * full[0:2] + full[4:6], rtol=1e-6, atol=1e-6)
    assert OutputRoute(STEMS, 64).identity


# ---------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def jackd() -> Iterator[PrivateJackd]:
    with PrivateJackd(RATE, BLOCK, sync=True) as server:
        old = os.environ.get("JACK_DEFAULT_SERVER")
        os.environ["JACK_DEFAULT_SERVER"] = server.name
        try:
            yield server
        finally:
            if old is None:
                os.environ.pop("JACK_DEFAULT_SERVER", None)
            else:
                os.environ["JACK_DEFAULT_SERVER"] = old


def live(route_of: dict[str, object]) -> dict[str, object]:
    """Run the bridge in this process with ``OutputRoute(stems, BLOCK, **route_of)``; record."""
    from bridge.backends.jack import JackBackend

    backend = JackBackend()
    rate, block = backend.open()
    proc = Processor(TEST_MODEL)
    proc.prepare(rate, block, 2)
    assert proc.stems == STEMS
    route = OutputRoute(proc.stems, block, **route_of)  # type: ignore[arg-type]
    host = RealtimeHost(proc, block, queue_blocks=QUEUE_BLOCKS, worker="thread")
    host.start()
    x = make_signal()
    lb = Loopback(x, score_events(), x.shape[1] + host.latency_samples + 2 * BLOCK)
    try:
        backend.start(host, proc.stems, route=route)
        ports = sorted(p.name for p in backend.client.get_ports("stembridge:", is_audio=True, is_output=True))
        lb.open(route.names, note_stems=proc.stems[:-1])
        while host.first_frame_time is None:
            time.sleep(0.05)
        time.sleep(0.3)
        lb.start()
        assert lb.wait(120.0), "the recording did not finish"
    finally:
        lb.close()
        backend.close()
        host.stop()
    assert backend.failure is None and host.worker_error is None
    assert host.deadline_misses == 0, "the comparison needs every block in time"
    assert host.first_frame_time is not None and lb.start_frame is not None
    lead = lb.start_frame - host.first_frame_time
    n = lb.n_record
    q = QUEUE_BLOCKS * BLOCK
    ref, _ = offline(n - q + BLOCK, lead)
    seg = slice(MIX_AT + host.latency_samples, n)
    # recorded sample k is the processor's output at stream position lead + k - queue
    expected = ref[:, :, lead + seg.start - q : lead + n - q]  # (n_stems, 2, len)
    return {"ports": ports, "rec": lb.recorded[:, seg].reshape(-1, 2, seg.stop - seg.start), "ref": expected}


@needs_jackd
def test_send_creates_only_the_chosen_ports_and_they_equal_the_full_run(jackd: PrivateJackd) -> None:
    r = live({"send": parse_send("bass,drums", STEMS)})
    assert r["ports"] == sorted(f"stembridge:{s}_{c}" for s in ("drums", "bass") for c in "LR")
    rec, ref = r["rec"], r["ref"]
    assert isinstance(rec, np.ndarray) and isinstance(ref, np.ndarray) and rec.shape[0] == 2
    for i, s in enumerate(("drums", "bass")):
        want = ref[STEMS.index(s)]
        assert np.abs(want).max() > 1e-3, f"{s}: offline stem is silent, the test would be void"
        assert snr_db(want, rec[i]) >= 30.0, s


@needs_jackd
def test_monitor_is_the_gain_weighted_sum(jackd: PrivateJackd) -> None:
    gains = parse_monitor("drums=-6,bass,other=+3", STEMS)
    r = live({"monitor": gains})
    assert r["ports"] == ["stembridge:monitor_L", "stembridge:monitor_R"]
    rec, ref = r["rec"], r["ref"]
    assert isinstance(rec, np.ndarray) and isinstance(ref, np.ndarray) and rec.shape[0] == 1
    want = sum(10 ** (db / 20) * ref[STEMS.index(s)] for s, db in gains.items())
    assert snr_db(want, rec[0]) >= 30.0
    plain = ref[[STEMS.index(s) for s in gains]].sum(axis=0)  # the same stems at 0 dB: not it
    assert snr_db(plain, rec[0]) < 15.0
