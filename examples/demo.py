#!/usr/bin/env python3
"""The live path on a fresh machine: the shipped mix and score through `stembridge run` on JACK.

What it does (this is what `make demo` runs):

1. Uses the running JACK server, or, when none runs, starts a private `jackd -d dummy
   -r 44100 -p 256` under a unique server name (JACK_DEFAULT_SERVER), so a user's own
   server is never touched; the private server is always killed at the end.
2. Starts `stembridge run --backend jack` in its own process (model: the registry default
   when registered, else test-tiny).
3. A test client plays examples/demo/mix.flac into stembridge:in_L/in_R and
   examples/demo/score.mid into stembridge:score_in in real time, and records every output
   port (<stem>_L/_R, notes_out).
4. Writes OUT/<stem>.wav (shifted back by the reported latency, so they line up with the mix),
   OUT/notes.mid (from notes_out, also shifted), OUT/stats.json; prints latency and stats.

Without the example files it plays a generated test signal (noise and tones). Takes about
the length of the mix plus a few seconds (the mix is 15 s).

    .venv/bin/python examples/demo.py [--out out/demo] [--model NAME] [--seconds S] [--block 256]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEMO_DIR = ROOT / "examples" / "demo"
RATE = 44100


def load_mix(seconds: float | None) -> np.ndarray:
    """(2, n) float32 at RATE: the shipped mix, or a test signal when it is missing."""
    path = DEMO_DIR / "mix.flac"
    if path.is_file():
        import soundfile as sf

        x, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != RATE:
            import soxr

            x = soxr.resample(x, sr, RATE)
        x = x.T
        if x.shape[0] == 1:
            x = np.repeat(x, 2, axis=0)
        x = x[:2]
    else:
        print(f"demo: {path} not found; playing a generated test signal")
        n = int(10 * RATE)
        t = np.arange(n) / RATE
        rng = np.random.default_rng(0)
        x = np.stack([0.1 * rng.standard_normal(n) + 0.2 * np.sin(2 * np.pi * f * t) for f in (220.0, 330.0)])
    if seconds is not None:
        x = x[:, : int(seconds * RATE)]
    return np.ascontiguousarray(x, np.float32)


def load_score() -> list[tuple[int, bytes]]:
    path = DEMO_DIR / "score.mid"
    if not path.is_file():
        return []
    from bridge.score import score_file_messages

    return [(int(round(t * RATE)), bytes(m.bytes())) for t, m in score_file_messages(path) if not m.is_meta]


def pick_model(name: str | None) -> str:
    from bridge.model import default_model_name, list_models

    if name:
        return name
    names = {e["name"] for e in list_models()}
    default = default_model_name()
    return default if default in names else "test-tiny"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "demo", help="output folder (default out/demo)")
    ap.add_argument("--model", default=None, help="model name or .onnx (default: registry default, else test-tiny)")
    ap.add_argument("--seconds", type=float, default=None, help="play only the first S seconds of the mix")
    ap.add_argument("--block", type=int, default=256, help="private server period in frames (default 256)")
    args = ap.parse_args(argv)

    from bridge.live.jackd import PrivateJackd, jack_server_running

    model = pick_model(args.model)
    mix = load_mix(args.seconds)
    score = [(t, m) for t, m in load_score() if t < mix.shape[1]]
    args.out.mkdir(parents=True, exist_ok=True)
    if jack_server_running():
        print(f"demo: using the running JACK server ({os.environ.get('JACK_DEFAULT_SERVER', 'default')})")
        server: Any = contextlib.nullcontext(None)
    else:
        print(f"demo: no JACK server running; starting a private jackd -d dummy -r {RATE} -p {args.block}")
        server = PrivateJackd(RATE, args.block)
    with server as srv:
        env = srv.env() if srv is not None else dict(os.environ)
        os.environ["JACK_DEFAULT_SERVER"] = env.get("JACK_DEFAULT_SERVER", os.environ.get("JACK_DEFAULT_SERVER", ""))
        if not os.environ["JACK_DEFAULT_SERVER"]:
            del os.environ["JACK_DEFAULT_SERVER"]
        return run_demo(model, mix, score, args.out, env)


def run_demo(model: str, mix: np.ndarray, score: list[tuple[int, bytes]], out: Path, env: dict[str, str]) -> int:
    from bridge.live.loopback import Loopback, open_when_ready
    from bridge.midi_io import write_notes_midi
    from bridge.model import read_metadata, resolve
    from bridge.notes import NoteEvent

    meta = read_metadata(resolve(model)[0])
    stems = (*meta.stems, "other")
    stats_path = out / "stats.json"
    cmd = [sys.executable, "-m", "bridge", "run", "--backend", "jack", "--model", model, "--quiet"]
    cmd += ["--stats", str(stats_path), "--duration", str(mix.shape[1] / RATE + 120)]
    print(f"demo: {' '.join(cmd[1:])}")
    bridge = subprocess.Popen(cmd, cwd=ROOT, env=env)
    n_record = mix.shape[1] + 2 * RATE  # the latency is well under 2 s
    try:
        lb = open_when_ready(lambda: Loopback(mix, score, n_record), stems, lambda: bridge.poll() is None)
    except RuntimeError as e:
        print(f"demo: {e}", file=sys.stderr)
        if bridge.poll() is None:
            bridge.send_signal(signal.SIGTERM)
            bridge.wait(30)
        return 1
    try:
        print(f"demo: playing {mix.shape[1] / RATE:.1f} s of audio and {len(score)} score messages in real time")
        lb.start()
        if not lb.wait(n_record / RATE + 60):
            print("demo: recording did not finish", file=sys.stderr)
            return 1
    finally:
        lb.close()
        if bridge.poll() is None:
            bridge.send_signal(signal.SIGTERM)
        try:
            bridge.wait(30)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait()
    if not stats_path.is_file():
        print("demo: the bridge wrote no stats", file=sys.stderr)
        return 1
    stats = json.loads(stats_path.read_text())
    latency = int(stats["latency_samples"])
    import soundfile as sf

    rec = lb.recorded.reshape(len(stems), 2, -1)[:, :, latency : latency + mix.shape[1]]
    for s, name in enumerate(stems):
        sf.write(out / f"{name}.wav", rec[s].T, RATE, subtype="FLOAT")
    from bridge.instruments import stem_channel

    channel_stem = {stem_channel(s, meta.stems): i for i, s in enumerate(meta.stems)}
    events = []
    for t, msg in lb.midi["notes_out"]:
        kind, ch = msg[0] & 0xF0, msg[0] & 0x0F
        if kind in (0x80, 0x90) and ch in channel_stem:
            on = kind == 0x90 and msg[2] > 0
            events.append(NoteEvent(t, channel_stem[ch], msg[1], msg[2] if on else 0, on))
    write_notes_midi(out / "notes.mid", events, meta.stems, RATE, latency_samples=latency)
    terms = ", ".join(f"{k} {v}" for k, v in stats["latency_terms"].items())
    print(f"demo: latency {latency} samples = {1000 * latency / RATE:.2f} ms ({terms})")
    print(
        f"demo: {stats['blocks']} blocks of {stats['block_size']}, deadline misses {stats['deadline_misses']}, "
        f"xruns {stats['xruns']}, worker p50 {stats['worker_ms_p50']:.2f} ms, p99 {stats['worker_ms_p99']:.2f} ms "
        f"(budget {stats['budget_ms']:.2f} ms)"
    )
    n_notes = sum(1 for e in events if e.on)
    print(f"demo: wrote {', '.join(f'{s}.wav' for s in stems)}, notes.mid ({n_notes} notes), stats.json in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
