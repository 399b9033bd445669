"""End to end on a private ``jackd -d dummy`` server (no sound card): play, record, compare.

A test client plays an impulse, then noise + tones and a MIDI score, into the bridge and
records every output port. Facts asserted: the recorded stems equal the offline Processor
output on the same input shifted by the reported latency (SI-SDR >= 30 dB); the notes on
``notes_out`` equal the offline notes (onset F1 >= 0.95 at 10 ms, here exactly); the first
non-zero output sample after the impulse is at exactly ``latency_samples``; killing jackd
ends ``stembridge run`` with one line and a valid stats file. The server runs synchronously
(``-S``) with 1024-frame periods and the bridge queues 8 blocks, so a loaded 2-core machine
changes timings but not results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from bridge.engine import Processor
from bridge.instruments import stem_channel
from bridge.live.host import RealtimeHost
from bridge.live.jackd import PrivateJackd
from bridge.live.loopback import Loopback
from tests.conftest import TEST_MODEL, noise

pytestmark = pytest.mark.skipif(
    shutil.which("jackd") is None or shutil.which("jack_lsp") is None, reason="needs jackd and jack_lsp (jackd2)"
)

RATE = 44100
BLOCK = 1024
QUEUE_BLOCKS = 8
IMPULSE_AT = 5000
MIX_AT = 22050
MIX_SAMPLES = 4 * RATE
ROOT = Path(__file__).resolve().parents[2]


def score_events() -> list[tuple[int, bytes]]:
    """A small score: piano notes on channel 1, drum hits on channel 10 (samples from the start)."""
    ev: list[tuple[int, bytes]] = [(MIX_AT, bytes((0xC0, 0)))]
    for i in range(16):
        t = MIX_AT + 1000 + i * 9000 + 37 * i
        ev.append((t, bytes((0x90, 60 + i % 12, 90))))
        ev.append((t + 7000, bytes((0x80, 60 + i % 12, 0))))
        ev.append((t + 4500, bytes((0x99, 36 if i % 2 else 38, 100))))
        ev.append((t + 4600, bytes((0x89, 36 if i % 2 else 38, 0))))
    return sorted(ev, key=lambda e: e[0])


def make_signal() -> np.ndarray:
    x = np.zeros((2, MIX_AT + MIX_SAMPLES), np.float32)
    x[:, IMPULSE_AT] = 0.5
    x[:, MIX_AT:] = noise(2, MIX_SAMPLES, seed=3)
    return x


@pytest.fixture(scope="module")
def jackd():
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


@pytest.fixture(scope="module", params=["thread", "process"])
def live_run(jackd, request):
    """Run the bridge in this process on the private server with each worker mode; returns
    what was recorded."""
    from bridge.backends.jack import JackBackend

    backend = JackBackend()
    rate, block = backend.open()
    assert (rate, block) == (RATE, BLOCK)
    proc = Processor(TEST_MODEL)
    proc.prepare(rate, block, 2)
    host = RealtimeHost(proc, block, queue_blocks=QUEUE_BLOCKS, worker=request.param)
    host.start()
    x = make_signal()
    lb = Loopback(x, score_events(), x.shape[1] + host.latency_samples + 2 * BLOCK)
    try:
        backend.start(host, proc.stems)
        lb.open(proc.stems)
        while host.first_frame_time is None:
            time.sleep(0.05)
        time.sleep(0.3)
        lb.start()
        assert lb.wait(120.0), "the recording did not finish"
    finally:
        lb.close()
        backend.close()
        host.stop()
    assert backend.failure is None
    assert host.worker_error is None
    assert host.deadline_misses == 0, "the comparison needs every block in time (queue is 8 blocks)"
    assert host.first_frame_time is not None and lb.start_frame is not None
    return {"host": host, "lb": lb, "stems": proc.stems, "lead": lb.start_frame - host.first_frame_time}


def offline(stems_len: int, lead: int) -> tuple[np.ndarray, list[tuple[int, int, int, int, bool]]]:
    """The same Processor offline on the same stream (lead zeros, then the signal), block by block."""
    x = make_signal()
    total = lead + stems_len
    stream = np.zeros((2, total), np.float32)
    stream[:, lead : lead + x.shape[1]] = x[:, : max(0, min(x.shape[1], total - lead))]
    events = [(lead + t, m) for t, m in score_events()]
    proc = Processor(TEST_MODEL)
    proc.prepare(RATE, BLOCK, 2)
    out = np.zeros((len(proc.stems), 2, total), np.float32)
    notes = []
    for start in range(0, total, BLOCK):
        blk = stream[:, start : start + BLOCK]
        midi = [(t - start, m) for t, m in events if start <= t < start + blk.shape[1]]
        res = proc.process(blk, midi)
        out[:, :, start : start + blk.shape[1]] = res.stems
        notes += [(start + e.sample, e.stem, e.note, e.velocity, e.on) for e in res.notes]
    return out, notes


def si_sdr_db(ref: np.ndarray, est: np.ndarray) -> float:
    ref = ref.astype(np.float64).ravel()
    est = est.astype(np.float64).ravel()
    alpha = np.dot(est, ref) / max(np.dot(ref, ref), 1e-20)
    target = alpha * ref
    return float(10 * np.log10(max(np.dot(target, target), 1e-20) / max(np.sum((est - target) ** 2), 1e-20)))


def onset_f1(ref: list[tuple[int, int]], est: list[tuple[int, int]], tol: int) -> float:
    """F1 of (sample, key) onsets, greedy one-to-one matching within ``tol`` samples."""
    if not ref and not est:
        return 1.0
    used = [False] * len(est)
    hits = 0
    for t, k in ref:
        for i, (u, kk) in enumerate(est):
            if not used[i] and kk == k and abs(u - t) <= tol:
                used[i] = True
                hits += 1
                break
    return 2 * hits / (len(ref) + len(est))


def test_measured_latency_equals_reported(live_run):
    host, lb = live_run["host"], live_run["lb"]
    total = lb.recorded.reshape(-1, 2, lb.n_record).sum(axis=0)  # stems sum to the delayed input
    first = int(np.nonzero(np.abs(total[0]) > 1e-3)[0][0])
    assert first - IMPULSE_AT == host.latency_samples  # exact; the acceptance allows one block
    assert host.latency_terms["queue"] == QUEUE_BLOCKS * BLOCK


def test_stems_match_offline(live_run):
    host, lb, lead = live_run["host"], live_run["lb"], live_run["lead"]
    q = QUEUE_BLOCKS * BLOCK
    n = lb.n_record
    ref, _ = offline(n - q + BLOCK, lead)
    rec = lb.recorded.reshape(-1, 2, n)
    # recorded sample k (frame start_frame + k) is the processor's output at stream position lead + k - queue
    k0 = q  # from here on the recording has an offline counterpart
    seg = slice(MIX_AT + host.latency_samples, n)
    assert seg.start > k0
    for s, name in enumerate(live_run["stems"]):
        expected = ref[s, :, lead + seg.start - q : lead + n - q]
        got = rec[s, :, seg]
        assert np.abs(expected).max() > 1e-3, f"{name}: offline stem is silent, the test would be void"
        assert si_sdr_db(expected, got) >= 30.0, name


def test_notes_match_offline(live_run):
    lb, lead, stems = live_run["lb"], live_run["lead"], live_run["stems"]
    q = QUEUE_BLOCKS * BLOCK
    _, ref_events = offline(lb.n_record - q, lead)
    predicted = tuple(stems[:-1])
    channels = {stem_channel(s, predicted): i for i, s in enumerate(predicted)}
    ref_on = [(t - lead + q, stem * 128 + note) for t, stem, note, vel, on in ref_events if on]
    live_on = []
    for t, msg in lb.midi["notes_out"]:
        if msg[0] & 0xF0 == 0x90 and msg[2] > 0:
            live_on.append((t, channels[msg[0] & 0x0F] * 128 + msg[1]))
    ref_on = [e for e in ref_on if 0 <= e[0] < lb.n_record]
    assert len(ref_on) >= 20, "too few notes for a meaningful comparison"
    diff = sorted(set(live_on) ^ set(ref_on))
    assert len(live_on) == len(ref_on), (diff[:10], lb.n_record)
    assert onset_f1(ref_on, live_on, tol=int(0.010 * RATE)) >= 0.95
    assert sorted(live_on) == sorted(ref_on)  # sample-accurate
    # per-stem ports carry that stem's notes only
    for i, s in enumerate(predicted):
        per = [m for _, m in lb.midi[f"{s}_notes"] if m[0] & 0xF0 == 0x90 and m[2] > 0]
        assert all(channels[m[0] & 0x0F] == i for m in per)
        assert len(per) == sum(1 for _, k in live_on if k // 128 == i)


def _run_for(server: PrivateJackd, duration_s: float, *extra: str) -> subprocess.CompletedProcess[str]:
    """``stembridge run --duration`` on ``server`` with the test model; output captured."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", TEST_MODEL]
        + ["--duration", str(duration_s), *extra],
        cwd=ROOT,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _run_and_interrupt(
    server: PrivateJackd, stats: Path, interrupt: Callable[[subprocess.Popen], None], *extra: str
) -> tuple[int, list[str]]:
    """``stembridge run`` on ``server``; once its ports exist (and 1 s more) ``interrupt(proc)``.
    Returns the exit status and the non-empty stderr lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", TEST_MODEL]
        + ["--stats", str(stats), *extra],
        cwd=ROOT,
        env=server.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_for_port("stembridge:other_R", 120.0)
        time.sleep(1.0)
        interrupt(proc)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, [ln for ln in err.splitlines() if ln.strip()]


def _assert_valid_stats(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in ("latency_samples", "latency_terms", "blocks", "xruns", "deadline_misses"):
        assert key in data
    assert data["worker_ms_p99"] >= data["worker_ms_p50"] >= 0
    return data


def test_server_shutdown_ends_run_with_one_line(tmp_path):
    stats = tmp_path / "stats.json"
    with PrivateJackd(RATE, 256) as server:
        rc, lines = _run_and_interrupt(server, stats, lambda proc: server.kill(), "--quiet")
    assert rc == 4, lines
    assert len(lines) == 1 and lines[0].startswith("stembridge: error:") and "JACK" in lines[0], lines
    data = _assert_valid_stats(stats)
    assert data["blocks"] > 0 and data["error"]


def test_cli_duration_config_and_stats(jackd, tmp_path):
    cfg = tmp_path / "bridge.toml"
    cfg.write_text(
        '[score]\nchannels = { "10" = "drums", "1" = "piano" }\noffset_ms = 5.0\n\n[realtime]\nqueue_blocks = 3\n'
    )
    stats = tmp_path / "stats.json"
    r = _run_for(jackd, 2.0, "--config", str(cfg), "--stats", str(stats))
    assert r.returncode == 0, r.stderr
    data = json.loads(stats.read_text())
    assert data["latency_terms"]["queue"] == 3 * BLOCK
    assert data["latency_samples"] == sum(data["latency_terms"].values())
    assert data["sample_rate"] == RATE and data["block_size"] == BLOCK and data["blocks"] > 0
    assert "latency" in r.stderr and "stopped after" in r.stderr


def test_unplugged_midi_port_ends_run_with_one_line(tmp_path):
    """The score's MIDI source (another client's port, given by --midi-in) goes away mid-run."""
    import jack

    stats = tmp_path / "stats.json"

    def unplug(proc: subprocess.Popen) -> None:
        assert [p.name for p in keyboard.get_all_connections("keyboard:out")] == ["stembridge:score_in"]
        keyboard.deactivate()
        keyboard.close()

    with PrivateJackd(RATE, 256) as server:
        keyboard = jack.Client("keyboard", servername=server.name, no_start_server=True)
        keyboard.midi_outports.register("out")
        keyboard.activate()
        rc, lines = _run_and_interrupt(server, stats, unplug, "--midi-in", "keyboard:out", "--quiet")
    assert rc == 4, lines
    assert len(lines) == 1 and "keyboard:out" in lines[0] and "disappeared" in lines[0], lines
    data = _assert_valid_stats(stats)
    assert data["blocks"] > 0 and "disappeared" in data["error"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_during_run_stops_cleanly_with_stats(tmp_path, sig):
    stats = tmp_path / "stats.json"
    with PrivateJackd(RATE, 256) as server:
        rc, lines = _run_and_interrupt(server, stats, lambda proc: proc.send_signal(sig))
    assert rc == 0, lines
    assert not any("Traceback" in ln for ln in lines) and "stopped after" in lines[-1], lines
    data = _assert_valid_stats(stats)
    assert data["blocks"] > 0 and data["error"] is None


@pytest.mark.parametrize("realtime", [False, True])
def test_server_without_realtime_scheduling_is_reported(realtime):
    """A server started --no-realtime gets one notice at start (xruns ahead); an -R server none."""
    with PrivateJackd(RATE, 256, realtime=realtime) as server:
        r = _run_for(server, 0.5)
    assert r.returncode == 0, r.stderr
    notice = [ln for ln in r.stderr.splitlines() if "without real-time scheduling" in ln]
    assert len(notice) == (0 if realtime else 1), r.stderr


def test_unplugged_midi_out_port_ends_run_with_one_line(tmp_path):
    """The notes' MIDI destination (another client's port, given by --midi-out) goes away mid-run."""
    import jack

    stats = tmp_path / "stats.json"

    def unplug(proc: subprocess.Popen) -> None:
        assert [p.name for p in synth.get_all_connections("synth:in")] == ["stembridge:notes_out"]
        synth.deactivate()
        synth.close()

    with PrivateJackd(RATE, 256) as server:
        synth = jack.Client("synth", servername=server.name, no_start_server=True)
        synth.midi_inports.register("in")
        synth.activate()
        rc, lines = _run_and_interrupt(server, stats, unplug, "--midi-out", "synth:in", "--quiet")
    assert rc == 4, lines
    assert len(lines) == 1 and "synth:in" in lines[0] and "disappeared" in lines[0], lines
    assert lines[0].startswith("stembridge: error: the notes MIDI output port"), lines
    data = _assert_valid_stats(stats)
    assert data["blocks"] > 0 and "disappeared" in data["error"]


def test_connect_wires_the_inputs(tmp_path):
    """``--connect A B`` connects A to in_L and B to in_R; a port that does not exist ends the
    run with exit 4 and one line naming it."""
    import jack

    stats = tmp_path / "stats.json"
    seen: dict[str, list[str]] = {}

    def look(proc: subprocess.Popen) -> None:
        # the bridge connects right after activating: on a loaded machine that can take a while
        deadline = time.monotonic() + 30.0
        while True:
            for name in ("stembridge:in_L", "stembridge:in_R"):
                seen[name] = [p.name for p in source.get_all_connections(name)]
            if all(seen.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)

    with PrivateJackd(RATE, 256) as server:
        source = jack.Client("daw", servername=server.name, no_start_server=True)
        source.outports.register("bus_L")
        source.outports.register("bus_R")
        source.activate()
        rc, lines = _run_and_interrupt(server, stats, look, "--connect", "daw:bus_L", "daw:bus_R", "--quiet")
        assert rc == 0, lines
        assert seen == {"stembridge:in_L": ["daw:bus_L"], "stembridge:in_R": ["daw:bus_R"]}
        bad = _run_for(server, 5.0, "--connect", "daw:nosuch", "--quiet")
        source.close()
    assert bad.returncode == 4, bad.stderr
    err = [ln for ln in bad.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("stembridge: error:") and "daw:nosuch" in err[0], err


def test_gain_db_scales_its_stems_only(tmp_path):
    """``[gain_db]`` through the CLI: drums at -6 dB and piano at +3 dB on the recorded outputs.
    Undoing exactly those gains makes the outputs sum back to the input (delayed by the reported
    latency, to 1e-4) outside the glides of late blocks; the plain sum does not."""
    from bridge.live.loopback import open_when_ready
    from bridge.model import read_metadata, resolve

    stems = read_metadata(resolve(TEST_MODEL)[0]).all_stems
    gains_db = {"drums": -6.0, "piano": 3.0}
    cfg = tmp_path / "gains.toml"
    body = "".join(f"{s} = {db}\n" for s, db in gains_db.items())
    cfg.write_text(f"[realtime]\nqueue_blocks = {QUEUE_BLOCKS}\n\n[gain_db]\n{body}")
    stats = tmp_path / "stats.json"
    x = noise(2, 2 * RATE, seed=11)
    n_record = x.shape[1] + RATE
    with PrivateJackd(RATE, BLOCK, sync=True) as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", TEST_MODEL, "--quiet"]
            + ["--config", str(cfg), "--stats", str(stats)],
            cwd=ROOT,
            env=server.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            old = os.environ.get("JACK_DEFAULT_SERVER")
            os.environ["JACK_DEFAULT_SERVER"] = server.name
            try:
                make = lambda: Loopback(x, [], n_record)  # noqa: E731
                lb = open_when_ready(make, stems, lambda: proc.poll() is None, server=server)
            finally:
                if old is None:
                    os.environ.pop("JACK_DEFAULT_SERVER", None)
                else:
                    os.environ["JACK_DEFAULT_SERVER"] = old
            try:
                time.sleep(0.5)
                lb.start()
                assert lb.wait(120.0), "the recording did not finish"
            finally:
                lb.close()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err
    data = json.loads(stats.read_text())
    latency = data["latency_samples"]
    rec = lb.recorded.reshape(len(stems), 2, n_record)
    expected = np.zeros((2, n_record), np.float32)
    expected[:, latency : latency + x.shape[1]] = x[:, : n_record - latency]
    gain = {s: 10.0 ** (gains_db.get(s, 0.0) / 20.0) for s in stems}
    restored = sum(rec[i] / gain[s] for i, s in enumerate(stems))
    assert np.abs(rec[stems.index("drums")]).max() > 1e-2 and np.abs(rec[stems.index("piano")]).max() > 1e-2
    wrong = np.abs(restored - expected) > 1e-4
    # a late block glides the (gained) stems to silence with `other` taking the difference, so
    # the raw outputs, not the un-gained ones, sum to the input during that 5 ms glide
    glide = int(round(0.005 * RATE))
    assert wrong.sum(axis=1).max() <= data["deadline_misses"] * glide, (wrong.sum(axis=1), data["deadline_misses"])
    assert np.abs(rec.sum(axis=0) - expected).max() > 1e-2  # the gains are really applied
