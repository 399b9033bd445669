"""``stembridge batch`` on a real local Ray instance (no mocks): good and bad files, the manifest,
resume, outputs identical to ``stembridge separate``, a worker killed mid-file, two Ray nodes.

Each Ray start costs a few seconds, so the runs are shared: one module fixture runs a mixed
folder once and the resume test reruns it; argument errors are checked before Ray starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from bridge.backends import OFFLINE_BLOCK_SIZE
from bridge.batch.plan import collect_inputs
from bridge.batch.worker import process_job
from bridge.cli import main
from bridge.model import list_models
from tests.conftest import noise
from tests.hang_watchdog import cmdline, descendants

ray = pytest.importorskip("ray", reason="the cluster extra (Ray) is not installed: pip install -e '.[cluster]'")

ROOT = Path(__file__).resolve().parent.parent
MODEL = "test-tiny"
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}


def stembridge(*args: str | Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env or RAY_ENV,
    )


def manifest(out: Path) -> dict[str, dict]:
    lines = (out / "manifest.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    by_track = {r["track"]: r for r in records}
    assert len(by_track) == len(records), "one line per input"
    return by_track


def write_score(path: Path, pitches: list[int], channel: int = 0, name: str = "Lead") -> Path:
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    for p in pitches:
        track.append(mido.Message("note_on", channel=channel, note=p, velocity=90, time=0))
        track.append(mido.Message("note_off", channel=channel, note=p, velocity=0, time=480))
    mid.tracks.append(track)
    mid.save(str(path))
    return path


def same_tree(a: Path, b: Path) -> None:
    """The same files: audio with the same samples, rate and format (float WAV headers carry a
    PEAK chunk with a time stamp, so two runs of ``separate`` differ there), the rest byte for byte."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name.endswith((".wav", ".flac")):
            (x, rate_x), (y, rate_y) = sf.read(a / name), sf.read(b / name)
            assert rate_x == rate_y and sf.info(a / name).subtype == sf.info(b / name).subtype, name
            assert x.shape == y.shape and np.array_equal(x, y), name
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def no_partials(out: Path) -> None:
    leftovers = [p for p in out.rglob(".*") if p.name.endswith((".partial", ".old"))]
    assert not leftovers, leftovers


# ---------------------------------------------------------------------- before Ray starts
def test_help_does_not_import_ray() -> None:
    code = (
        "import sys; from bridge.cli import main\n"
        "try:\n    main(['batch', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'ray' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr


def test_without_ray_one_line_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
        "from bridge.cli import main; sys.exit(main(sys.argv[1:]))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "batch", str(tmp_path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        "stembridge: error: 'batch' needs Ray: pip install 'stembridge[cluster]' (or: pip install ray)"
    ]


@pytest.mark.parametrize(
    ("case", "message", "code"),
    [
        ("empty", "no audio files in the inputs", 2),
        ("parts", "--parts needs --score-dir", 2),
        ("collide", "would both write OUT/song/", 2),
        ("model", "unknown model 'nope'", 3),
        ("workers", "--workers must be at least 1", 2),
        ("shifts", "--shifts must be between 1 and 16, got 0", 2),
        ("shifts-parts", "--shifts is for the blind path only", 2),
        ("shares", "--shares: each share must be in (0, 1], got '0.2,2'", 2),
        ("shares-parts", "--shares is for the blind path only", 2),
    ],
)
def test_argument_errors_end_in_one_line(tmp_path: Path, capsys, case: str, message: str, code: int) -> None:
    (tmp_path / "in" / "x").mkdir(parents=True)
    sf.write(tmp_path / "in" / "song.wav", noise(1, 4410).T, 44100)
    sf.write(tmp_path / "in" / "x" / "song.flac", noise(1, 4410).T, 44100)
    args = {
        "empty": [str(tmp_path / "in" / "x" / "nothing_here")],
        "parts": [str(tmp_path / "in"), "--parts"],
        "collide": [str(tmp_path / "in" / "song.wav"), str(tmp_path / "in" / "x" / "song.flac")],
        "model": [str(tmp_path / "in"), "--model", "nope"],
        "workers": [str(tmp_path / "in"), "--workers", "0"],
        "shifts": [str(tmp_path / "in"), "--shifts", "0"],
        "shifts-parts": [str(tmp_path / "in"), "--parts", "--score-dir", str(tmp_path / "in"), "--shifts", "2"],
        "shares": [str(tmp_path / "in"), "--shares", "0.2,2"],
        "shares-parts": [str(tmp_path / "in"), "--parts", "--score-dir", str(tmp_path / "in"), "--shares", "0.2"],
    }[case]
    if case == "empty":
        (tmp_path / "in" / "x" / "nothing_here").mkdir()
    assert main(["batch", *args, "-o", str(tmp_path / "out"), "-q"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stembridge: error: ") and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_inputs_from_folders_and_lists(tmp_path: Path) -> None:
    d = tmp_path / "cat"
    (d / "album" / ".hidden").mkdir(parents=True)
    (d / "out" / "album" / "01").mkdir(parents=True)  # OUT inside the catalogue: its stems are no inputs
    for name in ("album/01.wav", "album/02.flac", "album/.hidden/x.wav", "top.mp3", "notes.txt", "cover.jpg"):
        (d / name).write_bytes(b"")
    (d / "out" / "album" / "01" / "drums.wav").write_bytes(b"")
    (tmp_path / "list.txt").write_text("# a catalogue\ncat/top.mp3\n\n/abs/elsewhere/far.wav\n")
    items = collect_inputs([d, tmp_path / "list.txt"], d / "out")
    assert [(i.path, i.track) for i in items] == [
        (d / "album" / "01.wav", "album/01"),
        (d / "album" / "02.flac", "album/02"),
        (d / "top.mp3", "top"),  # found twice (folder, list): kept once
        (Path("/abs/elsewhere/far.wav"), "far"),
    ]


def test_parts_job_writes_what_separate_parts_writes(tmp_path: Path) -> None:
    """The worker's function alone (no Ray): --parts output identical to ``separate --parts``."""
    sf.write(tmp_path / "duet.wav", noise(2, 44100 * 2, seed=3).T, 44100)
    score = write_score(tmp_path / "duet.mid", [60, 64, 67, 72])
    assert (
        main(
            ["separate", str(tmp_path / "duet.wav"), "--score", str(score), "--parts", "-o", str(tmp_path / "a"), "-q"]
        )
        == 0
    )
    job = {
        "path": str(tmp_path / "duet.wav"),
        "track": "duet",
        "out": str(tmp_path / "b"),
        "score": str(score),
        "score_sha256": None,
        "model": {"name": "parts"},
        "format": "wav",
        "block_size": OFFLINE_BLOCK_SIZE,  # as `separate`: the unscored notes' admission tests make
        # the parts differ at float-rounding level between block sizes (see bridge.parts.processor)
        "parts": True,
    }
    rec = process_job(None, job, {"host": "here", "pid": 1, "node": None})
    assert rec["status"] == "ok" and rec["audio_s"] == 2.0, rec
    same_tree(tmp_path / "a" / "duet", tmp_path / "b" / "duet")
    no_partials(tmp_path / "b")


def test_ensemble_job_writes_what_separate_shifts_and_shares_writes(tmp_path: Path) -> None:
    """The worker's function alone (no Ray): a blind job with shifts and shares is ``separate --shifts --shares``;
    its record says so, and a record of the same file without them (or other shares) is not taken as done."""
    from bridge.batch.plan import is_done
    from bridge.batch.worker import load_processor

    sf.write(tmp_path / "song.wav", noise(2, 44100 * 2, seed=6).T, 44100)
    assert (
        main(
            ["separate", str(tmp_path / "song.wav"), "--shifts", "2", "--shares", "0.2,0.6", "-m", MODEL]
            + ["-o", str(tmp_path / "a"), "-q"]
        )
        == 0
    )
    job = {
        "path": str(tmp_path / "song.wav"),
        "track": "song",
        "out": str(tmp_path / "b"),
        "score": None,
        "score_sha256": None,
        "model": {"name": MODEL},
        "format": "wav",
        "block_size": OFFLINE_BLOCK_SIZE,
        "parts": False,
        "shifts": 2,
        "shares": [0.2, 0.6],
    }
    rec = process_job(load_processor(MODEL, "cpu"), job, {"host": "here", "pid": 1, "node": None})
    assert rec["status"] == "ok" and rec["shifts"] == 2 and rec["shares"] == [0.2, 0.6], rec
    same_tree(tmp_path / "a" / "song", tmp_path / "b" / "song")
    no_partials(tmp_path / "b")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["song"]  # the runs are gone
    assert is_done(rec, job, tmp_path / "b")
    assert not is_done({**rec, "shifts": 1}, job, tmp_path / "b")
    assert not is_done({k: v for k, v in rec.items() if k != "shifts"}, job, tmp_path / "b")
    assert not is_done({**rec, "shares": None}, job, tmp_path / "b")
    assert not is_done({**rec, "shares": [0.2, 0.5]}, job, tmp_path / "b")
    assert not is_done({k: v for k, v in rec.items() if k != "shares"}, job, tmp_path / "b")
    assert is_done({k: v for k, v in rec.items() if k != "shares"}, {**job, "shares": None}, tmp_path / "b")


def test_remove_partial_takes_a_killed_workers_shifted_runs_too(tmp_path: Path) -> None:
    """A worker killed during ``separate_shifted`` leaves its runs' folder beside the partial track folder
    (named by ``runs_folder_prefix``): ``remove_partial`` removes both, and nothing of another track."""
    from bridge.backends.shifted import runs_folder_prefix
    from bridge.batch.worker import partial_dir, remove_partial

    out = tmp_path / "out"
    for track in ("disc2/b", "disc2/bb"):
        partial = partial_dir(out, track)
        (partial).mkdir(parents=True)
        runs = partial.parent / f"{runs_folder_prefix(partial)}x1y2"
        (runs / "run_128").mkdir(parents=True)
        (runs / "run_128" / "bass.wav").write_bytes(b"RIFF")
    remove_partial(out, "disc2/b")
    assert sorted(p.name for p in (out / "disc2").iterdir()) == [
        "..bb.partial-shifts-x1y2",
        ".bb.partial",
    ]


def test_cuda_without_gpus_ends_in_one_line(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", noise(1, 4410).T, 44100)
    env = {**RAY_ENV, "CUDA_VISIBLE_DEVICES": ""}  # Ray sees no GPU, whatever this machine has
    res = stembridge("batch", tmp_path / "a.wav", "-o", tmp_path / "out", "--provider", "cuda", "-q", env=env)
    assert res.returncode == 4, res.stderr
    assert res.stderr.strip().splitlines() == ["stembridge: error: --provider cuda: the Ray cluster has no GPUs"]
    assert "Traceback" not in res.stderr


# ---------------------------------------------------------------------- one local Ray run, then a resume
@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("catalogue")
    src, scores = d / "in", d / "scores"
    (src / "disc2").mkdir(parents=True)
    scores.mkdir()
    sf.write(src / "a.wav", noise(2, 44100 * 3, seed=1).T, 44100, subtype="PCM_16")
    sf.write(src / "disc2" / "b.flac", noise(1, 48000 * 2, seed=2).T, 48000)
    sf.write(src / "c.wav", noise(2, 44100 * 2, seed=4).T, 44100, subtype="FLOAT")
    (src / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really audio" * 20)
    sf.write(src / "empty.wav", np.zeros((0, 2), np.float32), 44100)
    write_score(scores / "a.mid", [48, 52, 55, 60, 64])
    out = d / "out"
    res = stembridge("batch", src, "-o", out, "--model", MODEL, "--score-dir", scores, "--workers", "2")
    return {"dir": d, "src": src, "scores": scores, "out": out, "res": res}


def test_bad_files_fail_alone_and_the_exit_status_counts_them(catalogue: dict) -> None:
    res, out = catalogue["res"], catalogue["out"]
    assert res.returncode == 2, res.stderr  # two bad inputs
    assert "Traceback" not in res.stderr
    assert re.search(r"5 inputs: 3 done, 0 skipped .*, 2 failed", res.stdout), res.stdout
    failed = [line for line in res.stderr.splitlines() if line.startswith("stembridge: failed: ")]
    assert len(failed) == 2 and any("bad.wav: not a readable audio file" in f for f in failed), res.stderr
    assert any("empty.wav: contains no audio samples" in f for f in failed), res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a", "c", "disc2", "manifest.jsonl"]
    assert [p.name for p in (out / "disc2").iterdir()] == ["b"]
    no_partials(out)


def test_manifest_has_one_line_per_input_with_what_was_done(catalogue: dict) -> None:
    recs = manifest(catalogue["out"])
    assert sorted(recs) == ["a", "bad", "c", "disc2/b", "empty"]
    tiny = next(m for m in list_models() if m["name"] == MODEL)
    src = catalogue["src"]
    for track, rec in recs.items():
        path = Path(rec["path"])
        assert path.is_absolute() and path.parent in (src, src / "disc2")
        assert rec["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert rec["size"] == path.stat().st_size
        assert rec["model"] == {"name": MODEL, "version": "1.0.0", "sha256": tiny["sha256"]}
        assert rec["format"] == "wav" and rec["worker"] and rec["node"]
        assert rec["seconds"] >= 0 and rec["cpu_s"] >= 0  # a file refused at once can take under 0.5 ms (0.0)
        if track in ("bad", "empty"):
            assert rec["status"] == "failed" and rec["error"].startswith(str(path)) and "\n" not in rec["error"]
            assert rec["audio_s"] is None
        else:
            assert rec["status"] == "ok" and rec["error"] is None and rec["seconds"] > 0
            assert rec["audio_s"] == {"a": 3.0, "c": 2.0, "disc2/b": 2.0}[track]
            # the manifest rounds to 2 decimals: on a loaded machine (0.11x) that alone is 4 %
            assert rec["x_real_time"] == pytest.approx(rec["audio_s"] / rec["seconds"], rel=0.02, abs=0.006)
    scores = catalogue["scores"]
    assert recs["a"]["score"] == str(scores / "a.mid")
    assert recs["a"]["score_sha256"] == hashlib.sha256((scores / "a.mid").read_bytes()).hexdigest()
    assert recs["c"]["score"] is None and recs["c"]["score_sha256"] is None


def test_outputs_are_identical_to_separate(catalogue: dict, tmp_path: Path) -> None:
    src, out = catalogue["src"], catalogue["out"]
    ref = tmp_path / "ref"
    score = catalogue["scores"] / "a.mid"
    assert main(["separate", str(src / "a.wav"), "--score", str(score), "-o", str(ref), "-m", MODEL, "-q"]) == 0
    assert main(["separate", str(src / "c.wav"), str(src / "disc2" / "b.flac"), "-o", str(ref), "-m", MODEL, "-q"]) == 0
    same_tree(ref / "a", out / "a")
    same_tree(ref / "c", out / "c")
    same_tree(ref / "b", out / "disc2" / "b")


def test_rerun_skips_what_is_done_and_redoes_failed_and_changed(catalogue: dict) -> None:
    src, out = catalogue["src"], catalogue["out"]
    before = manifest(out)
    # a rerun over inputs that are all done does not even start Ray
    t0 = time.perf_counter()
    res = stembridge(
        "batch", src / "a.wav", src / "c.wav", "-o", out, "--model", MODEL, "--score-dir", catalogue["scores"]
    )
    assert res.returncode == 0, res.stderr
    assert "2 inputs: 0 done, 2 skipped" in res.stdout, res.stdout
    assert time.perf_counter() - t0 < 20
    assert manifest(out) == before
    # a changed input is redone, failed ones are tried again, the rest is skipped
    sf.write(src / "c.wav", noise(2, 44100 * 2, seed=5).T, 44100, subtype="FLOAT")
    res = stembridge("batch", src, "-o", out, "--model", MODEL, "--score-dir", catalogue["scores"], "-q")
    assert res.returncode == 2, res.stderr
    assert "5 inputs: 1 done, 2 skipped (done before), 2 failed" in res.stdout, res.stdout
    after = manifest(out)
    assert after["a"] == before["a"] and after["disc2/b"] == before["disc2/b"]
    assert after["c"]["sha256"] != before["c"]["sha256"] and after["c"]["status"] == "ok"
    assert after["bad"]["status"] == "failed" and after["empty"]["status"] == "failed"
    data, _ = sf.read(out / "c" / "other.wav")
    assert data.shape == (44100 * 2, 2)
    no_partials(out)


# ---------------------------------------------------------------------- a worker killed mid-file
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker process through /proc")
def test_a_worker_killed_mid_file_has_its_file_redone(tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    sf.write(src / "long.wav", noise(1, 44100 * 90, seed=6).T, 44100)  # first: the longest goes first
    sf.write(src / "short.wav", noise(1, 44100, seed=7).T, 44100)
    cmd = [sys.executable, "-m", "bridge", "batch", str(src), "-o", str(out), "-m", MODEL, "--workers", "1"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        partial, killed = out / ".long.partial", None
        deadline = time.monotonic() + 240
        while killed is None and time.monotonic() < deadline and proc.poll() is None:
            stems = list(partial.glob("*.wav")) if partial.is_dir() else []
            if stems and any(p.stat().st_size > 100_000 for p in stems):
                workers = [p for p in descendants(proc.pid) if cmdline(p).startswith("ray::BatchWorker")]
                assert len(workers) == 1, [cmdline(p) for p in descendants(proc.pid)]
                assert not (out / "long").exists(), "nothing is at OUT/long until it is complete"
                os.kill(workers[0], signal.SIGKILL)
                killed = workers[0]
            time.sleep(0.01)
        assert killed is not None, "the long file finished before the test could kill its worker"
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "worker died on" in stderr and "2 inputs: 2 done" in stdout, (stdout, stderr)
    recs = manifest(out)
    assert recs["long"]["status"] == "ok" and recs["long"]["audio_s"] == 90.0
    assert recs["long"]["worker"] != f"{socket.gethostname()}:{killed}"
    data, _ = sf.read(out / "long" / "drums.wav")
    assert data.shape[0] == 44100 * 90
    assert sorted(p.name for p in (out / "long").iterdir()) == sorted(p.name for p in (out / "short").iterdir())
    no_partials(out)


def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tmp_path: Path) -> None:
    """Ctrl-C while one file is done and another half-way: exit 130, the finished one in the
    manifest, no partial folder; the same command again skips it and does the other."""
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    sf.write(src / "long.wav", noise(1, 44100 * 90, seed=8).T, 44100)
    sf.write(src / "short.wav", noise(1, 44100, seed=9).T, 44100)
    cmd = [sys.executable, "-m", "bridge", "batch", str(src), "-o", str(out), "-m", MODEL, "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=RAY_ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            done = (out / "manifest.jsonl").read_text() if (out / "manifest.jsonl").is_file() else ""
            if '"short"' in done and (out / ".long.partial").is_dir():
                break
            time.sleep(0.02)
        assert proc.poll() is None and not (out / "long").exists(), "the long file finished too soon"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, stderr
    assert "stembridge: interrupted" in stderr and "Traceback" not in stderr, stderr
    assert sorted(p.name for p in out.iterdir()) == ["manifest.jsonl", "short"]
    assert [r["status"] for r in manifest(out).values()] == ["ok"]
    res = stembridge("batch", src, "-o", out, "-m", MODEL, "--workers", "2", "-q")
    assert res.returncode == 0 and "2 inputs: 1 done, 1 skipped" in res.stdout, (res.stdout, res.stderr)
    assert sorted(manifest(out)) == ["long", "short"]
    no_partials(out)


# ---------------------------------------------------------------------- two Ray nodes on this machine
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """``ray start --block`` in its own process group (stopped with it, by its id)."""
    ray_bin = Path(sys.executable).parent / "ray"
    cmd = [str(ray_bin), "start", "--block", "--num-cpus", "1", "--object-store-memory", str(100 << 20), *args]
    with open(log, "w") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if text in log.read_text(errors="replace"):
            return True
        time.sleep(0.2)
    return False


def stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # what SIGTERM left behind in that group
    except ProcessLookupError:
        pass
    proc.wait()


@pytest.mark.skipif(shutil.which("ray", path=str(Path(sys.executable).parent)) is None, reason="no `ray` command")
def test_two_nodes_share_a_batch(tmp_path: Path) -> None:
    """``ray start --head`` plus a second ``ray start --address`` (one CPU each), ``--address``
    pointed at the head: the two workers land on the two nodes; --parts runs there too."""
    src, scores, out = tmp_path / "in", tmp_path / "scores", tmp_path / "out"
    src.mkdir()
    scores.mkdir()
    for i in range(4):
        sf.write(src / f"t{i}.wav", noise(1, 44100 * 45, seed=10 + i).T, 44100)  # enough work for both
        write_score(scores / f"t{i}.mid", [60 + i, 64 + i, 67 + i], name=f"Line {i}")
    # Ray's token authentication, as on a real cluster: every node and the driver get the token
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = {**RAY_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    port = free_port()
    started = "Ray runtime started"
    head = ray_start(["--head", "--port", str(port), "--include-dashboard", "false"], tmp_path / "head.log", env)
    nodes = [head]
    try:
        if not wait_for_line(tmp_path / "head.log", started, head, 90):
            pytest.skip(f"`ray start --head` did not start here: {(tmp_path / 'head.log').read_text()[-300:]}")
        second = ray_start(["--address", f"127.0.0.1:{port}"], tmp_path / "node.log", env)
        nodes.append(second)
        if not wait_for_line(tmp_path / "node.log", started, second, 90):
            pytest.skip(f"a second `ray start --address` did not join: {(tmp_path / 'node.log').read_text()[-300:]}")
        address = f"127.0.0.1:{port}"
        res = stembridge("batch", src, "-o", out, "--address", address, "--workers", "2", "-m", MODEL, "-q", env=env)
        assert res.returncode == 0, res.stderr
        recs = manifest(out)
        assert len({r["node"] for r in recs.values()}) == 2, recs
        parts_out = tmp_path / "parts"
        res = stembridge("batch", src, "-o", parts_out, "--address", address, "--parts", "--score-dir", scores, env=env)
        assert res.returncode == 0, res.stderr
        parts = manifest(parts_out)
        assert {r["model"]["name"] for r in parts.values()} == {"parts"}
        assert sorted(p.name for p in (parts_out / "t2").iterdir()) == [
            "Line_2.wav",
            "notes.mid",
            "residual.wav",
        ]
    finally:
        for proc in reversed(nodes):
            stop_group(proc)
