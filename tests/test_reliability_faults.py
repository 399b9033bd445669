"""Faults during `stembridge separate`: signals, a vanished output folder, a full disk, reruns.

Each test runs the CLI in a subprocess on 40 s of audio with ``--block-size 1024`` and strikes
once the first stem file has grown past a few blocks, so the run is mid-way. Afterwards:
one line on stderr saying what happened (naming the folder where it is about the folder), no
traceback, the documented exit status (130 interrupted, 2 a folder removed or a full disk), every stem file
written so far a valid WAV (libsndfile opens it, frames > 0, header sizes finalised) and
``notes.mid`` either absent or a valid MIDI file.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
STEMS = ("drums", "bass", "piano", "guitar", "strings", "other")
RATE = 44100
N_SAMPLES = 40 * RATE
MID_RUN_BYTES = 200_000  # drums.wav this large: about 1.1 s of mono float audio written


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "long.wav"
    rng = np.random.default_rng(21)
    sf.write(path, 0.3 * rng.standard_normal(N_SAMPLES).astype(np.float32), RATE, subtype="PCM_16")
    return path


def start(src: Path | list[Path], out: Path, preexec_fn=None, extra: tuple[str, ...] = (), **popen) -> subprocess.Popen:
    srcs = [str(p) for p in (src if isinstance(src, list) else [src])]
    args = ["separate", *srcs, "-o", str(out), "-m", "test-tiny", "--block-size", "1024", "-q", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec_fn,
        **popen,
    )


def wait_mid_run(proc: subprocess.Popen, stem_file: Path, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before the fault: " + proc.communicate()[1]
        # notes.mid of an earlier run is removed when the new run opens its stems
        fresh = not (stem_file.parent / "notes.mid").exists()
        if fresh and stem_file.exists() and stem_file.stat().st_size > MID_RUN_BYTES:
            return
        time.sleep(0.01)
    raise AssertionError("the run never got going")


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stembridge: "), err
    return lines[0]


def assert_valid_outputs(folder: Path, complete: bool = False) -> None:
    """Every stem file present is a finalised WAV with audio; notes.mid absent or valid."""
    found = 0
    for stem in STEMS:
        path = folder / f"{stem}.wav"
        if not path.exists():
            continue
        found += 1
        with sf.SoundFile(path) as f:
            assert f.samplerate == RATE and f.channels == 1
            assert f.frames > 0, path
            # finalised header: the data chunk size covers exactly the frames in the file
            data_bytes = path.stat().st_size - _data_offset(path)
            assert data_bytes == f.frames * 4, (path, data_bytes, f.frames)
            if complete:
                assert f.frames == N_SAMPLES
        y, _ = sf.read(path, dtype="float32")
        assert np.isfinite(y).all()
    assert found > 0
    notes = folder / "notes.mid"
    if notes.exists():
        mid = mido.MidiFile(notes)
        assert [t.name for t in mid.tracks][-5:] == list(STEMS[:-1])
        for track in mid.tracks:
            held = 0
            for msg in track:
                if msg.type == "note_on" and msg.velocity > 0:
                    held += 1
                elif msg.type in ("note_off", "note_on"):
                    held -= 1
            assert held == 0, track.name  # every note-on has its note-off
    assert not list(folder.glob(".*.tmp")), "a temporary notes file was left behind"


def _data_offset(path: Path) -> int:
    """Byte offset of the audio data in a RIFF/WAVE file (after the 'data' chunk header)."""
    raw = path.read_bytes()[:4096]
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    riff_size = int.from_bytes(raw[4:8], "little")
    assert riff_size == path.stat().st_size - 8, "RIFF size not finalised"
    pos = 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], int.from_bytes(raw[pos + 4 : pos + 8], "little")
        if cid == b"data":
            return pos + 8
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_run_leaves_valid_files(long_wav: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "out"
    proc = start(long_wav, out)
    wait_mid_run(proc, out / "long" / "drums.wav")
    proc.send_signal(sig)
    rc, err = finish(proc)
    assert rc == 130  # README: interrupted
    assert "interrupted" in one_line(err)
    assert_valid_outputs(out / "long")
    assert (out / "long" / "notes.mid").exists()  # the notes found so far are kept


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c", "sigterm-main"])
def test_interrupt_with_jobs_stops_every_worker(long_wav: Path, tmp_path: Path, to_group: bool) -> None:
    """``separate --jobs 2`` on a long and a short file, interrupted while the long one runs and the
    short one's worker waits for work: Ctrl-C at a terminal (SIGINT to the whole process group, the
    workers included) or SIGTERM to the main process alone. The command ends with the one interrupted
    line and status 130 (an idle worker interrupted inside the pool's queue printed a traceback and left
    its lock held: the command hung), every file written so far valid."""
    long_src, short_src = tmp_path / "a.wav", tmp_path / "b.wav"
    shutil.copy(long_wav, long_src)
    audio, _ = sf.read(long_wav, frames=RATE, dtype="float32")
    sf.write(short_src, audio, RATE, subtype="PCM_16")
    out = tmp_path / "out"
    proc = start([long_src, short_src], out, extra=("--jobs", "2"), start_new_session=True)
    deadline = time.monotonic() + 60.0
    while not (out / "b" / "notes.mid").exists():  # the short file done: its worker is idle
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.01)
    wait_mid_run(proc, out / "a" / "drums.wav")
    if to_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    rc, err = finish(proc)
    assert rc == 130, err
    assert "interrupted" in one_line(err)
    assert_valid_outputs(out / "a")
    assert (out / "a" / "notes.mid").exists()  # the busy worker's closing was not cut short by a second signal
    assert_valid_outputs(out / "b", complete=False)


def test_no_file_starts_after_an_interrupt_with_jobs(long_wav: Path, tmp_path: Path) -> None:
    """``separate --jobs 2`` on four files: Ctrl-C while two run and one waits in the pool's queue (which
    cancelling cannot reach). The queued file is never started, the command ends at once (not after the
    30 s a stuck worker gets), and the files in hand are closed with their notes."""
    srcs = [tmp_path / f"{name}.wav" for name in ("a", "b", "c", "d")]
    for src in srcs:
        shutil.copy(long_wav, src)
    audio, _ = sf.read(long_wav, frames=RATE, dtype="float32")
    sf.write(srcs[1], audio, RATE, subtype="PCM_16")  # b short: its worker goes on to c, d waits queued
    out = tmp_path / "out"
    proc = start(srcs, out, extra=("--jobs", "2"), start_new_session=True)
    wait_mid_run(proc, out / "c" / "drums.wav")
    os.killpg(proc.pid, signal.SIGINT)
    t0 = time.monotonic()
    rc, err = finish(proc)
    assert time.monotonic() - t0 < 20.0
    assert rc == 130, err
    assert "interrupted" in one_line(err)
    assert not (out / "d").exists()
    for name in ("a", "c"):
        assert_valid_outputs(out / name)
        assert (out / name / "notes.mid").exists()


def test_output_folder_removed_mid_run(long_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(long_wav, out)
    wait_mid_run(proc, out / "long" / "drums.wav")
    shutil.rmtree(out)
    rc, err = finish(proc)
    assert rc == 2  # an input/output problem the user can fix
    line = one_line(err)
    assert "removed" in line and str(out / "long") in line, line  # names the folder
    assert not (out / "long").exists()  # nothing recreated it behind the user's back


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (3_000_000, 3_000_000))


def test_disk_full_mid_run(long_wav: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(long_wav, out, preexec_fn=_limit_file_size)
    rc, err = finish(proc)
    assert rc == 2
    line = one_line(err)
    assert "writing stems" in line and "failed" in line and str(out / "long") in line, line
    assert_valid_outputs(out / "long")
    assert os.path.getsize(out / "long" / "drums.wav") <= 3_000_000


def test_rerun_overwrites_predictably(long_wav: Path, tmp_path: Path) -> None:
    """An interrupted rerun over a finished run: stems are overwritten from the start and the
    old notes.mid is replaced by the notes of the new run, never left beside the new stems."""
    short = tmp_path / "long.wav"  # same track name, 3 s
    sf.write(short, sf.read(long_wav, frames=3 * RATE, dtype="float32")[0], RATE, subtype="PCM_16")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "separate", str(short), "-o", str(out), "-m", "test-tiny", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_valid_outputs(out / "long")
    first_notes = (out / "long" / "notes.mid").stat().st_mtime_ns
    proc = start(long_wav, out)
    wait_mid_run(proc, out / "long" / "drums.wav")
    proc.send_signal(signal.SIGINT)
    rc, err = finish(proc)
    assert rc == 130 and "interrupted" in one_line(err)
    assert_valid_outputs(out / "long")
    assert (out / "long" / "notes.mid").stat().st_mtime_ns != first_notes
    # a complete rerun gives complete files again
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "separate", str(short), "-o", str(out), "-m", "test-tiny", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for stem in STEMS:
        assert sf.info(str(out / "long" / f"{stem}.wav")).frames == 3 * RATE
