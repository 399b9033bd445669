"""The bridge publishes its latency on its JACK ports, read back as any JACK tool does.

``stembridge run`` on a private ``jackd -d dummy`` (48 kHz / 256); ``jack_lsp -l`` (jackd2's
tool) is parsed. Facts: with nothing connected, every ``stembridge:*_L/_R`` output and
``notes_out`` shows capture latency ``[L, L]`` and every input playback latency ``[L, L]``,
``L`` being the ``latency_samples`` the run reports in its stats; once the system capture
ports feed ``in_L``/``in_R`` and an output feeds the system playback port, JACK's latency
callback moves the figures to the range over the upstream/downstream latencies plus ``L``. With ``--parts`` and
``[realtime] send`` in the config, only the chosen part ports exist, and they publish ``L``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.live.jackd import PrivateJackd
from tests.conftest import TEST_MODEL

pytestmark = pytest.mark.skipif(
    shutil.which("jackd") is None or shutil.which("jack_lsp") is None, reason="needs jackd and jack_lsp (jackd2)"
)

RATE = 48000
BLOCK = 256
ROOT = Path(__file__).resolve().parents[2]
_RANGE = re.compile(r"^\s+port (playback|capture) latency = \[ (\d+) (\d+) \] frames$")


def jack_lsp_latencies(server: PrivateJackd) -> dict[str, dict[str, tuple[int, int]]]:
    """``{port: {"playback": (min, max), "capture": (min, max)}}`` from ``jack_lsp -l``."""
    out = subprocess.run(
        ["jack_lsp", "-l", "-s", server.name], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    ports: dict[str, dict[str, tuple[int, int]]] = {}
    name = None
    for line in out.splitlines():
        m = _RANGE.match(line)
        if m and name is not None:
            ports[name][m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif line and not line[0].isspace():
            name = line.strip()
            ports[name] = {}
    return ports


def _connect(server: PrivateJackd, src: str, dst: str) -> None:
    subprocess.run(["jack_connect", "-s", server.name, src, dst], check=True, timeout=30, capture_output=True)


def _start(server: PrivateJackd, stats: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--quiet", "--stats", str(stats), *extra],
        cwd=ROOT,
        env=server.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ports(server: PrivateJackd, proc: subprocess.Popen[str], port: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while port not in jack_lsp_latencies(server):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, f"{port} did not appear"
        time.sleep(0.3)
    time.sleep(0.5)


def _stop(proc: subprocess.Popen[str], stats: Path) -> int:
    proc.send_signal(2)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return int(json.loads(stats.read_text())["latency_samples"])


def _bridge_ports(lat: dict[str, dict[str, tuple[int, int]]]) -> dict[str, dict[str, tuple[int, int]]]:
    return {p: v for p, v in lat.items() if p.startswith("stembridge:")}


def test_jack_lsp_shows_the_reported_latency_on_every_port(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    with PrivateJackd(RATE, BLOCK) as server:
        proc = _start(server, stats, "--model", TEST_MODEL)
        try:
            _wait_ports(server, proc, "stembridge:other_R")
            alone = _bridge_ports(jack_lsp_latencies(server))
            _connect(server, "system:capture_1", "stembridge:in_L")
            _connect(server, "system:capture_2", "stembridge:in_R")
            _connect(server, "stembridge:drums_L", "system:playback_1")
            time.sleep(0.5)
            wired = jack_lsp_latencies(server)
        finally:
            if proc.poll() is None:
                latency = _stop(proc, stats)
    assert latency > BLOCK  # the stats' latency_samples: something real was published
    outs = [p for p in alone if re.fullmatch(r"stembridge:\w+_[LR]", p) and not p.endswith(("in_L", "in_R"))]
    assert len(outs) == 12, sorted(alone)
    for p in [*outs, "stembridge:notes_out", "stembridge:drums_notes"]:
        assert alone[p]["capture"] == (latency, latency), (p, alone[p])
    for p in ("stembridge:in_L", "stembridge:in_R", "stembridge:score_in"):
        assert alone[p]["playback"] == (latency, latency), (p, alone[p])

    # the latency callback follows the graph: upstream capture / downstream playback + L
    cap = wired["system:capture_1"]["capture"]
    play = wired["system:playback_1"]["playback"]
    assert cap[0] > 0 and play[0] > 0
    ins = [wired[f"stembridge:{p}"]["capture"] for p in ("in_L", "in_R", "score_in")]
    assert ins[:2] == [cap, cap] and ins[2] == (0, 0)  # score_in has nothing upstream
    for p in outs:  # the range over the inputs, plus L
        assert wired[p]["capture"] == (latency, cap[1] + latency), (p, wired[p])
    assert wired["stembridge:in_L"]["playback"] == (latency, play[1] + latency)  # drums_L only goes out
    assert wired["system:capture_1"]["playback"] == wired["stembridge:in_L"]["playback"]


def test_parts_with_config_send_create_only_the_chosen_ports(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    cfg = tmp_path / "rt.toml"
    cfg.write_text('[realtime]\nsend = ["residual", "ch2"]\n')
    with PrivateJackd(RATE, BLOCK) as server:
        proc = _start(server, stats, "--parts", "1,2", "--config", str(cfg))
        try:
            _wait_ports(server, proc, "stembridge:residual_R")
            ports = _bridge_ports(jack_lsp_latencies(server))
        finally:
            if proc.poll() is None:
                latency = _stop(proc, stats)
    outs = sorted(p for p in ports if p.endswith(("_L", "_R")) and not p.endswith(("in_L", "in_R")))
    assert outs == ["stembridge:ch2_L", "stembridge:ch2_R", "stembridge:residual_L", "stembridge:residual_R"]
    for p in outs:
        assert ports[p]["capture"] == (latency, latency), (p, ports[p])
    assert json.loads(stats.read_text())["send"] == ["ch2", "residual"]  # stem order


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (("--send", "drums,cowbell"), "--send: unknown stem 'cowbell' (one of drums, bass, piano"),
        (("--monitor", "drums=-6,kazoo"), "--monitor: unknown stem 'kazoo'"),
        (("--monitor", "drums=loud"), "--monitor: 'drums=loud' is not stem or stem=dB"),
        (("--send", "drums", "--monitor", "bass"), "--send and --monitor exclude each other"),
        (("--parts", "1,2", "--send", "ch3"), "--send: unknown stem 'ch3' (one of ch1, ch2, residual)"),
    ],
)
def test_unknown_stems_end_in_one_line_and_exit_2(extra: tuple[str, ...], needle: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", TEST_MODEL, *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert len(lines) == 1 and lines[0].startswith("stembridge: error: ") and needle in lines[0], lines
