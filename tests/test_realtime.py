"""The real-time host without a server: the callback side driven by hand, config, device lookup."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from bridge.devices import _match
from bridge.engine import Processor
from bridge.errors import DeviceError, InputError
from bridge.live.config import auto_queue_blocks, load_config
from bridge.live.host import RealtimeHost
from bridge.live.status import status_line, write_stats
from tests.conftest import TEST_MODEL, noise

B = 256


@pytest.fixture(scope="module")
def processor() -> Processor:
    p = Processor(TEST_MODEL)
    p.prepare(44100, B, 2)
    return p


def drive(host: RealtimeHost, x: np.ndarray, wait_worker: bool) -> np.ndarray:
    """Run the callback over x (2, n) block by block; returns outputs (n_outputs, 2, n)."""
    n_out = 2 * host.n_outputs
    out = np.zeros((n_out, x.shape[1]), np.float32)
    for start in range(0, x.shape[1], B):
        blocks_before = host.n_blocks
        host.cycle([x[0, start : start + B], x[1, start : start + B]], list(out[:, start : start + B]))
        if wait_worker:  # give the worker time: a simulated clock where it is never late
            deadline = time.monotonic() + 10
            while host.n_blocks == blocks_before and time.monotonic() < deadline:
                time.sleep(0.001)
    return out.reshape(host.n_outputs, 2, -1)


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_host_output_equals_processor_delayed_by_queue(processor, worker):
    processor.reset()
    host = RealtimeHost(processor, B, queue_blocks=2, worker=worker)
    x = noise(2, 40 * B, seed=1)
    host.start()
    try:
        live = drive(host, x, wait_worker=True)
    finally:
        host.stop()
    assert host.deadline_misses == 0
    ref = Processor(TEST_MODEL)
    ref.prepare(44100, B, 2)
    offline = np.concatenate([ref.process(x[:, i : i + B]).stems for i in range(0, x.shape[1], B)], axis=2)
    q = 2 * B
    np.testing.assert_allclose(live[:, :, q:], offline[:, :, :-q], atol=1e-6)
    assert not live[:, :, :q].any()
    assert host.latency_samples == processor.latency_samples + q
    stats = host.stats()
    assert stats["blocks"] == 40 and stats["blocks_processed"] == 40


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_no_worker_means_misses_and_delayed_dry_fallback(processor, worker):
    processor.reset()
    host = RealtimeHost(processor, B, queue_blocks=2, worker=worker)  # worker never started: every block is late
    x = noise(2, 20 * B, seed=2)
    out = drive(host, x, wait_worker=False)
    host.stop()
    assert host.deadline_misses == 20 - 2
    assert not out[:-1].any()  # stems silent
    lat = host.latency_samples
    np.testing.assert_array_equal(out[-1][:, lat:], x[:, :-lat])  # other = dry delayed by the latency


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_late_blocks_are_skipped_and_crossfaded_back(processor, worker):
    """Late blocks: stems silent and ``other`` dry; the next block in time glides back in, and a
    worker that stops glides out again. At both switches no stem steps by more than a live
    step plus what a 5 ms (crossfade_ms) linear fade adds per sample; a hard switch would jump
    by the signal itself. The sum is the delayed input throughout."""
    processor.reset()
    host = RealtimeHost(processor, B, queue_blocks=1, worker=worker)
    t = np.arange(40 * B) / 44100  # a low tone: live steps are small next to the level
    x = np.stack([0.5 * np.sin(2 * np.pi * 55 * t), 0.4 * np.sin(2 * np.pi * 55 * t + 1)]).astype(np.float32)
    out = np.zeros((2 * host.n_outputs, x.shape[1]), np.float32)

    def cycle(k: int) -> None:
        s = slice(k * B, (k + 1) * B)
        host.cycle([x[0, s], x[1, s]], list(out[:, s]))

    for k in range(10):  # no worker: 9 misses
        cycle(k)
    host.start()
    try:
        time.sleep(0.5)  # the worker catches up on the 10 queued blocks (now stale)
        for k in range(10, 30):
            before = host.n_blocks
            cycle(k)
            deadline = time.monotonic() + 10
            while host.n_blocks == before and time.monotonic() < deadline:
                time.sleep(0.001)
    finally:
        host.stop()
    for k in range(30, 40):  # the worker is gone: block 29 is still played, then 9 misses
        cycle(k)
    assert host.deadline_misses == 9 + 9  # cycles 1-9; block 9 was computed during the pause, in time for cycle 10
    outs = out.reshape(host.n_outputs, 2, -1)
    lat = host.latency_samples
    np.testing.assert_allclose(outs.sum(axis=0)[:, lat:], x[:, :-lat], atol=1e-5)  # the sum stays the delayed input

    stems = outs[:-1]
    n_fade = round(0.005 * 44100)
    edge_in, edge_out = 10 * B, 31 * B
    assert not stems[:, :, :edge_in].any() and not stems[:, :, edge_out + B :].any()
    live = stems[:, :, edge_in + B : edge_out]  # the model's output, no fade in it
    live_step = np.abs(np.diff(live, axis=2)).max(axis=2)  # (stems, 2)
    peak = np.abs(live).max(axis=2)
    allowed = 1.5 * live_step + 1.5 * peak / n_fade + 1e-6
    for edge in (edge_in, edge_out):
        step = np.abs(np.diff(stems[:, :, edge - 1 : edge + n_fade + 1], axis=2)).max(axis=2)
        assert np.all(step <= allowed), (edge, step, allowed)
    # not void: a hard switch at either edge would step far beyond what is allowed
    assert np.any(np.abs(stems[:, :, edge_in + n_fade]) > 3 * allowed)
    assert np.any(np.abs(stems[:, :, edge_out - 1]) > 3 * allowed)


def test_worker_process_death_is_reported_and_stats_stay_valid(processor):
    host = RealtimeHost(processor, B, queue_blocks=2, worker="process")
    host.start()
    x = noise(2, 8 * B, seed=4)
    try:
        drive(host, x, wait_worker=True)
        assert host.worker_error is None
        os.kill(host._worker._proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while host.worker_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert host.worker_error is not None and "exited" in host.worker_error
        drive(host, x, wait_worker=False)  # the callback keeps going on the fallback
    finally:
        host.stop()
    stats = host.stats()
    assert stats["blocks"] == 16 and stats["blocks_processed"] == 8 and stats["deadline_misses"] == 6
    assert stats["worker_ms_p99"] >= stats["worker_ms_p50"] > 0


def test_switch_into_the_fallback_does_not_click(processor):
    """A worker lost mid-stream: the stems glide to silence, ``other`` takes the rest."""
    processor.reset()
    host = RealtimeHost(processor, B, queue_blocks=2, worker="process")
    t = np.arange(24 * B) / 44100
    x = np.stack([0.5 * np.sin(2 * np.pi * 55 * t), 0.4 * np.sin(2 * np.pi * 55 * t + 1)]).astype(np.float32)
    host.start()
    try:
        first = drive(host, x[:, : 12 * B], wait_worker=True)
        os.kill(host._worker._proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while host.worker_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        rest = drive(host, x[:, 12 * B :], wait_worker=False)
    finally:
        host.stop()
    assert host.deadline_misses == 10  # the 2 queued blocks were computed before the kill
    out = np.concatenate([first, rest], axis=2)  # (n_outputs, 2, n)
    edge = 14 * B
    stems = out[:-1]
    live_step = np.abs(np.diff(stems[:, :, edge - 4 * B : edge], axis=2)).max(axis=2)  # (stems, 2)
    last = np.abs(stems[:, :, edge - 1])
    assert last.max() > 2 * live_step.flat[last.argmax()]  # a hard switch would jump more than any live step
    switch_step = np.abs(stems[:, :, edge] - stems[:, :, edge - 1])
    assert np.all(switch_step <= 1.5 * live_step + 1e-6)  # the switch steps like the live signal
    assert not stems[:, :, edge + B :].any()  # then silent
    lat = host.latency_samples
    np.testing.assert_allclose(out.sum(axis=0)[:, lat:], x[:, :-lat], atol=1e-5)  # the sum is the input throughout


def test_config_parsing(tmp_path):
    stems = ("drums", "bass", "piano", "guitar", "strings")
    p = tmp_path / "c.toml"
    p.write_text('[score]\nchannels = {"10" = "drums", "2" = "bass"}\noffset_ms = -12.5\n[gain_db]\ndrums = -6\n')
    cfg = load_config(p, stems)
    assert cfg.channel_map == {9: "drums", 1: "bass"}
    assert cfg.score_offset_ms == -12.5
    assert cfg.gains((*stems, "other"))[0] == pytest.approx(10 ** (-6 / 20))
    assert cfg.classes_from == "network"
    p.write_text('[score]\nclasses_from = "parts"\n')
    assert load_config(p, stems).classes_from == "parts"
    p.write_text('[score]\nclasses_from = "fused"\n')
    assert load_config(p, stems).classes_from == "fused"
    for bad in (
        '[score]\nchannels = {"17" = "drums"}',
        '[score]\nclasses_from = "score"',
        "[realtime]\nqueue_blocks = 0",
        "[realtime]\nworker_priority = 99",
        "[realtime]\nworker_priority = true",
        "[gain_db]\nkazoo = 1",
        "x =",
    ):
        p.write_text(bad)
        with pytest.raises(InputError):
            load_config(p, stems)
    with pytest.raises(InputError):
        load_config(tmp_path / "missing.toml", stems)


def _may_be_realtime() -> bool:
    """Whether this process may take SCHED_FIFO (asked in a throwaway thread)."""
    import threading

    got: list[bool] = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            got.append(True)
        except OSError:
            got.append(False)

    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return got[0]


@pytest.mark.parametrize("worker", ["thread", "process"])
def test_worker_runs_real_time_where_the_system_grants_it(processor, worker, tmp_path):
    # asked to (a config's worker_priority), the inference worker takes SCHED_FIFO; where it is
    # refused, it runs as before and says 0; priority 0 never asks
    expected = 1 if _may_be_realtime() else 0
    for priority, want in ((1, expected), (0, 0)):
        processor.reset()
        host = RealtimeHost(processor, B, queue_blocks=2, worker=worker, rt_priority=priority)
        host.start()
        try:
            drive(host, noise(2, 8 * B, seed=2), wait_worker=True)
            if worker == "thread":
                policy = os.sched_getscheduler(host._worker._thread.native_id)
            else:
                policy = os.sched_getscheduler(host._worker._proc.pid)
        finally:
            host.stop()
        assert host.stats()["worker_rt_priority"] == want
        assert policy == (os.SCHED_FIFO if want else os.SCHED_OTHER)
    p = tmp_path / "rt.toml"
    p.write_text("[realtime]\nworker_priority = 0\n")
    assert load_config(p, ("drums",)).worker_priority == 0
    assert load_config(None, ("drums",)).worker_priority == 0  # opt-in (BENCHMARKS.md, stop 20)


def test_queue_depth_gives_the_worker_room_for_a_network_frame(tmp_path):
    # by default the queue holds at least 5 ms and 2 blocks; a config's queue_blocks wins
    assert [auto_queue_blocks(b, 48000) for b in (64, 128, 256, 1024)] == [4, 2, 2, 2]
    assert [auto_queue_blocks(b, 44100) for b in (32, 64, 128)] == [7, 4, 2]
    assert auto_queue_blocks(64, 96000) == 8
    for block, rate in ((32, 44100), (64, 48000), (256, 96000)):
        assert auto_queue_blocks(block, rate) * block / rate >= 0.005
    p = tmp_path / "q.toml"
    p.write_text("[realtime]\nqueue_blocks = 3\n")
    assert load_config(p, ("drums",)).queue_blocks == 3
    p.write_text("[gain_db]\ndrums = 1.0\n")
    assert load_config(p, ("drums",)).queue_blocks is None


def test_device_lookup_by_number_and_substring():
    names = ["Built-in Microphone", "BlackHole 16ch", "BlackHole 2ch"]
    assert _match(names, "1", "device") == 1
    assert _match(names, "microphone", "device") == 0
    assert _match(names, "BlackHole 16ch", "device") == 1
    with pytest.raises(DeviceError, match="several"):
        _match(names, "blackhole", "device")
    with pytest.raises(DeviceError, match="no device"):
        _match(names, "kazoo", "device")


def test_status_line_and_stats_file(processor, tmp_path):
    processor.reset()
    host = RealtimeHost(processor, B)
    line = status_line(host, processor.stems)
    assert "lat" in line and "miss 0" in line and "xrun 0" in line
    path = tmp_path / "s.json"
    write_stats(path, host.stats())
    import json

    data = json.loads(path.read_text())
    assert data["latency_samples"] == host.latency_samples and data["worker_ms_p99"] == 0


def test_run_softens_the_network_masks_and_the_worker_child_builds_the_same() -> None:
    """``run``'s network mode softens the network's masks (``bridge.remasked.soften``), ``--raw-masks``
    leaves them as they come and is refused where the stems come from a score's parts; the worker spec
    carries the powers, so the child process's Processor gives the same stems."""
    import argparse

    from bridge.live.command import _make_processor
    from bridge.live.worker import build_processor, worker_spec
    from bridge.remasked import NETWORK_MASK_POWERS, mask_powers_for

    def args(*extra: str) -> argparse.Namespace:
        ns = argparse.Namespace(model=TEST_MODEL, threads=1, config=None, parts=None, follow=None, classes_from=None)
        ns.raw_masks = "--raw-masks" in extra
        ns.classes_from = "parts" if "--classes-from-parts" in extra else None
        return ns

    soft, _, _ = _make_processor(args())
    raw, _, label = _make_processor(args("--raw-masks"))
    expected = mask_powers_for(soft.stems, NETWORK_MASK_POWERS)
    assert soft.mask_powers is not None and soft.mask_powers.tolist() == pytest.approx(expected)
    assert raw.mask_powers is None and "as they come" in label
    with pytest.raises(InputError, match="--raw-masks"):
        _make_processor(args("--raw-masks", "--classes-from-parts"))
    soft.prepare(44100, B, 2)
    child = build_processor(worker_spec(soft))
    assert child.mask_powers.tolist() == pytest.approx(expected)
    x = noise(2, 8 * B, seed=5)
    a = np.concatenate([soft.process(x[:, i : i + B]).stems for i in range(0, x.shape[1], B)], axis=2)
    b = np.concatenate([child.process(x[:, i : i + B]).stems for i in range(0, x.shape[1], B)], axis=2)
    np.testing.assert_array_equal(a, b)
    raw.prepare(44100, B, 2)
    assert build_processor(worker_spec(raw)).mask_powers is None
