"""The `stembridge` command end to end: real files, a real onnxruntime session, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile as sf

from tests.conftest import model_variant, noise

ROOT = Path(__file__).resolve().parent.parent
STEMS = ("drums", "bass", "piano", "guitar", "strings", "other")


def stembridge(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def assert_one_line_error(res: subprocess.CompletedProcess, code: int, *names: str | Path) -> str:
    """Exit status ``code`` (README: 2 input, 3 model, 4 device), one line on stderr, no
    traceback, and the line names each of ``names`` (the file or folder involved)."""
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("stembridge: error: "), res.stderr
    for name in names:
        assert str(name) in lines[0], (name, lines[0])
    return lines[0]


def test_help_imports_neither_torch_nor_onnxruntime() -> None:
    code = (
        "import sys; from bridge.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize(("command", "option"), [("corpus", "--out"), ("train", "--config"), ("export", "--out")])
def test_training_commands_take_their_options(command: str, option: str) -> None:
    """``stembridge corpus --out DIR ...`` reaches the corpus parser (options first, as in the README)."""
    res = stembridge(command, "--help")
    assert res.returncode == 0, res.stderr
    assert f"stembridge {command}" in res.stdout and option in res.stdout
    bad = stembridge(command, "--no-such-option")
    assert bad.returncode == 2 and f"stembridge {command}: error" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("rate", "n_channels", "subtype"), [(44100, 2, "PCM_16"), (48000, 1, "FLOAT")])
def test_separate_writes_aligned_stems_and_notes(tmp_path: Path, rate: int, n_channels: int, subtype: str) -> None:
    x = (0.5 * noise(n_channels, int(rate * 1.7), seed=11)).T
    src = tmp_path / "song.wav"
    sf.write(src, x, rate, subtype=subtype)
    x_read, _ = sf.read(src, dtype="float32", always_2d=True)
    res = stembridge("separate", src, "-o", tmp_path / "out", "--model", "test-tiny", "--block-size", "1000")
    assert res.returncode == 0, res.stderr
    assert "latency" in res.stdout
    stems = {}
    for stem in ("drums", "bass", "piano", "guitar", "strings", "other"):
        y, sr = sf.read(tmp_path / "out" / "song" / f"{stem}.wav", dtype="float32", always_2d=True)
        assert sr == rate and y.shape == x_read.shape
        stems[stem] = y
    total = sum(stems.values())
    np.testing.assert_allclose(total, x_read, atol=1e-5)
    # latency removed: the masked stems correlate with the input best at lag 0
    pred = sum(v for k, v in stems.items() if k != "other")[:, 0]
    xc = [np.dot(pred[2000 + k : 40000 + k], x_read[2000:40000, 0]) for k in range(-5, 6)]
    assert int(np.argmax(xc)) == 5
    mid = mido.MidiFile(tmp_path / "out" / "song" / "notes.mid")
    names = [t.name for t in mid.tracks]
    assert names[-5:] == ["drums", "bass", "piano", "guitar", "strings"]  # after the tempo track


def test_separate_is_block_size_invariant(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    sf.write(src, noise(2, 30000, seed=12).T * 0.5, 44100, subtype="FLOAT")
    outs = []
    for block in (64, 4096):
        res = stembridge("separate", src, "-o", tmp_path / f"o{block}", "-m", "test-tiny", "--block-size", block)
        assert res.returncode == 0, res.stderr
        outs.append(sf.read(tmp_path / f"o{block}" / "a" / "piano.wav", dtype="float32")[0])
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def test_separate_jobs_writes_what_one_process_writes(tmp_path: Path) -> None:
    """``--jobs 2``: every file separated in its own process, the stems equal to a serial run's; a
    bad file among them is one error line, the others are written, exit 2."""
    for i in range(3):
        sf.write(tmp_path / f"f{i}.wav", noise(2, 30000, seed=20 + i).T * 0.5, 44100, subtype="FLOAT")
    (tmp_path / "bad.wav").write_text("not audio")
    files = [tmp_path / "f0.wav", tmp_path / "bad.wav", tmp_path / "f1.wav", tmp_path / "f2.wav"]
    serial = stembridge("separate", *files, "-o", tmp_path / "s", "-m", "test-tiny", "-q")
    parallel = stembridge("separate", *files, "-o", tmp_path / "p", "-m", "test-tiny", "--jobs", "2")
    for res in (serial, parallel):
        assert res.returncode == 2, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("stembridge: error: ")]
        assert len(errors) == 1 and "bad.wav" in errors[0] and "Traceback" not in res.stderr, res.stderr
    assert "separating 4 files, 2 at a time" in parallel.stderr
    for i in range(3):
        assert f"f{i}.wav: " in parallel.stdout
        for stem in STEMS:
            a = sf.read(tmp_path / "s" / f"f{i}" / f"{stem}.wav", dtype="float32")[0]
            b = sf.read(tmp_path / "p" / f"f{i}" / f"{stem}.wav", dtype="float32")[0]
            np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "p" / "bad").exists()
    res = stembridge("separate", *files, "-o", tmp_path / "x", "--jobs", "0")
    assert_one_line_error(res, 2, "--jobs")


def test_separate_with_score_and_flac(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    sf.write(src, noise(2, 44100, seed=13).T * 0.5, 44100)
    mid = mido.MidiFile()
    tr = mido.MidiTrack()
    mid.tracks.append(tr)
    tr.append(mido.Message("program_change", program=33, channel=1, time=0))
    tr.append(mido.Message("note_on", note=40, velocity=90, channel=1, time=0))
    tr.append(mido.Message("note_off", note=40, velocity=0, channel=1, time=480))
    mid.save(tmp_path / "score.mid")
    res = stembridge(
        "separate", src, "-o", tmp_path / "o", "-m", "test-tiny", "--score", tmp_path / "score.mid", "--format", "flac"
    )
    assert res.returncode == 0, res.stderr
    y, sr = sf.read(tmp_path / "o" / "a" / "bass.flac", dtype="float32")
    assert sr == 44100 and y.shape == (44100, 2)


def test_odd_wavs_give_correct_results(tmp_path: Path) -> None:
    cases = {"u8.wav": (2, "PCM_U8"), "s24.wav": (2, "PCM_24"), "six.wav": (6, "PCM_16")}
    for name, (ch, subtype) in cases.items():
        sf.write(tmp_path / name, noise(ch, 9000, seed=14).T * 0.4, 44100, subtype=subtype)
        res = stembridge("separate", tmp_path / name, "-o", tmp_path / "o", "-m", "test-tiny", "-q")
        assert res.returncode == 0, (name, res.stderr)
        x, _ = sf.read(tmp_path / name, dtype="float32", always_2d=True)
        folder = tmp_path / "o" / Path(name).stem
        stems = [sf.read(folder / f"{s}.wav", dtype="float32", always_2d=True)[0] for s in STEMS]
        assert all(y.shape == (9000, ch) for y in stems)
        np.testing.assert_allclose(sum(stems), x, atol=1e-5)  # every channel separated, nothing lost


def test_nan_and_inf_samples_never_reach_the_output(tmp_path: Path) -> None:
    x = noise(2, 20000, seed=15).T * 0.4
    x[1000:1100, 0] = np.nan
    x[5000, 1] = np.inf
    sf.write(tmp_path / "nan.wav", x, 44100, subtype="FLOAT")
    res = stembridge("separate", tmp_path / "nan.wav", "-o", tmp_path / "o", "-m", "test-tiny")
    assert res.returncode == 0, res.stderr
    assert "NaN/Inf" in res.stderr
    for stem in ("drums", "other"):
        y, _ = sf.read(tmp_path / "o" / "nan" / f"{stem}.wav")
        assert np.isfinite(y).all()


def test_bad_inputs_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, noise(2, 5000).T * 0.3, 44100)
    (tmp_path / "text.wav").write_text("this is not audio\n")
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), 44100)
    (tmp_path / "bad.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\x00\x00\x00\xff\x90")
    (tmp_path / "trunc.mid").write_bytes(b"MThd\x00\x00")
    rng = np.random.default_rng(5)  # MPEG-looking garbage: libsndfile's mp3 decoder chatters on stderr
    (tmp_path / "garbage.mp3").write_bytes(b"ID3\x03" + bytes(6) + rng.integers(0, 256, 3000, np.uint8).tobytes())
    (tmp_path / "sync.wav").write_bytes(b"\xff\xfb\x90\x00" + rng.integers(0, 256, 3000, np.uint8).tobytes())
    out = ("-o", tmp_path / "o")
    # (arguments, exit status, what the line must name)
    cases: list[tuple[tuple[str | Path, ...], int, tuple[str | Path, ...]]] = [
        (("separate", tmp_path / "garbage.mp3", *out, "-m", "test-tiny"), 2, (tmp_path / "garbage.mp3",)),
        (("separate", tmp_path / "sync.wav", *out, "-m", "test-tiny"), 2, (tmp_path / "sync.wav",)),
        (("separate", tmp_path / "missing.wav", *out, "-m", "test-tiny"), 2, (tmp_path / "missing.wav",)),
        (("separate", tmp_path / "text.wav", *out, "-m", "test-tiny"), 2, (tmp_path / "text.wav",)),
        (("separate", tmp_path / "empty.wav", *out, "-m", "test-tiny"), 2, (tmp_path / "empty.wav",)),
        (("separate", good, *out, "-m", "test-tiny", "--score", tmp_path / "bad.mid"), 2, (tmp_path / "bad.mid",)),
        (("separate", good, *out, "-m", "test-tiny", "--score", tmp_path / "trunc.mid"), 2, (tmp_path / "trunc.mid",)),
        (("separate", good, *out, "-m", "test-tiny", "--score", tmp_path / "no.mid"), 2, (tmp_path / "no.mid",)),
        (("separate", good, *out, "-m", "no-such-model"), 3, ("no-such-model",)),
        (("separate", good, *out, "-m", tmp_path / "text.wav"), 3, (tmp_path / "text.wav",)),
        (("separate", good, *out, "-m", "test-tiny", "--block-size", "0"), 2, ("--block-size",)),
        (("info", tmp_path / "missing.onnx"), 3, (tmp_path / "missing.onnx",)),
    ]
    for args, code, names in cases:
        assert_one_line_error(stembridge(*args), code, *names)


def test_models_with_bad_metadata_are_refused(tmp_path: Path) -> None:
    good = tmp_path / "good.wav"
    sf.write(good, noise(1, 5000).T * 0.3, 44100)
    no_stems = model_variant(tmp_path, "nostems.onnx", lambda p: p.pop("stems"))
    newer = model_variant(tmp_path, "newer.onnx", lambda p: p.update(schema_version="99"))
    bad_lat = model_variant(tmp_path, "lat.onnx", lambda p: p.update(latency_samples="7"))
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes((ROOT / "models_onnx" / "test-tiny.onnx").read_bytes()[:5000])
    for path, words in ((no_stems, "stems"), (newer, "newer"), (bad_lat, "latency_samples"), (corrupt, "cannot load")):
        res = stembridge("separate", good, "-o", tmp_path / "o", "-m", path)
        assert words in assert_one_line_error(res, 3, path.name)


def test_info_and_models() -> None:
    res = stembridge("info", "test-tiny", "--json")
    assert res.returncode == 0, res.stderr
    meta = json.loads(res.stdout)
    assert meta["stems"] == ["drums", "bass", "piano", "guitar", "strings"]
    res = stembridge("models")
    assert res.returncode == 0 and "test-tiny" in res.stdout


def test_info_lists_decode_settings_per_stem() -> None:
    res = stembridge("info", "band")
    assert res.returncode == 0, res.stderr
    from bridge.model import read_metadata, resolve

    meta = read_metadata(resolve("band")[0])
    for s in meta.stems:
        line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith(f"{s}: onset threshold"))
        assert f"onset threshold {meta.onset_threshold[s]:g}" in line
        assert ("frame onsets at" in line) == (s != "drums" and meta.frame_onset_threshold.get(s, 0.0) > 0)


@pytest.fixture(scope="module")
def demo_crop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, Path]:
    """8 s of the demo mix (float WAV), and the demo score with the piano part (channel 2)
    moved onto the bass channel (channel 1, whose program, set in the bass track, is a bass)."""
    folder = tmp_path_factory.mktemp("steer")
    x, rate = sf.read(ROOT / "examples" / "demo" / "mix.flac", dtype="float32", frames=8 * 44100)
    sf.write(folder / "mix.wav", x, rate, subtype="FLOAT")
    moved = mido.MidiFile(ROOT / "examples" / "demo" / "score.mid")
    n_moved = 0
    for track in moved.tracks:
        for msg in track:
            if msg.type in ("note_on", "note_off") and msg.channel == 2:
                msg.channel = 1
                n_moved += 1
    assert n_moved > 50
    moved.save(folder / "moved.mid")
    return folder / "mix.wav", x, folder / "moved.mid"


def _separate_band(src: Path, x: np.ndarray, out: Path, *extra: str | Path) -> dict[str, np.ndarray]:
    res = stembridge("separate", src, "-o", out, "-m", "band", "-q", *extra)
    assert res.returncode == 0, res.stderr
    stems = {s: sf.read(out / src.stem / f"{s}.wav", dtype="float32")[0] for s in STEMS}
    np.testing.assert_allclose(sum(stems.values()), x, atol=1e-5)  # every run sums back to the input
    return stems


def _rms(a: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


@pytest.mark.parametrize("source", ["parts", "network"])
def test_score_changes_the_stems_through_the_cli(demo_crop, tmp_path: Path, source: str) -> None:
    """``separate --score`` end to end with the shipped model: the same mix with and without
    the score gives different bass and piano stems (both class-stem sources)."""
    src, x, _ = demo_crop
    score = ROOT / "examples" / "demo" / "score.mid"
    blind = _separate_band(src, x, tmp_path / "blind")
    scored = _separate_band(src, x, tmp_path / "score", "--score", score, "--class-stems-from", source)
    for s in ("bass", "piano"):  # measured (network, softened masks, stop 38): 75 % and 59 % of the blind RMS
        assert _rms(scored[s] - blind[s]) > 0.2 * _rms(blind[s]), s


@pytest.mark.parametrize("source", ["parts", "network"])
def test_moving_a_part_between_channels_moves_its_stem(demo_crop, tmp_path: Path, source: str) -> None:
    """The piano part moved onto the bass channel: energy moves from the piano stem to the bass
    stem (measured with the score-conditioned network, its masks softened, at stop 38: piano -10.4 dB,
    bass +2.2 dB; -12.4 / +2.5 with the plain masks)."""
    src, x, moved = demo_crop
    score = ROOT / "examples" / "demo" / "score.mid"
    scored = _separate_band(src, x, tmp_path / "score", "--score", score, "--class-stems-from", source)
    shifted = _separate_band(src, x, tmp_path / "moved", "--score", moved, "--class-stems-from", source)
    db = {s: 20 * np.log10(_rms(shifted[s]) / max(_rms(scored[s]), 1e-12)) for s in ("bass", "piano")}
    assert db["piano"] < -6.0 and db["bass"] > 1.0, db


def test_device_errors_exit_4_with_one_line_naming_the_device(tmp_path: Path) -> None:
    """README: 4 for a device. No JACK server under the name given; an audio device that no
    PortAudio device matches (the line names it)."""
    import os

    env = dict(os.environ, JACK_DEFAULT_SERVER=f"stembridge-none-{os.getpid()}")
    stats = tmp_path / "stats.json"
    for args, name in (
        (("run", "--backend", "jack", "-m", "test-tiny", "--stats", stats), "JACK"),
        (("run", "--backend", "portaudio", "-m", "test-tiny", "--input", "no-such-device-xyz"), "no-such-device-xyz"),
    ):
        cmd = [sys.executable, "-m", "bridge", *map(str, args)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
        assert_one_line_error(res, 4, name)
    assert json.loads(stats.read_text())["error"].startswith("no JACK server")  # stats written on this path too


def test_separate_on_cuda_equals_cpu_or_says_there_is_none(tmp_path: Path) -> None:
    """``separate --provider cuda``: where onnxruntime has a CUDA provider the stems match the CPU's
    (float32 on another device: 1e-4); where it has none, one line (exit 4) says so and names the fix."""
    import onnxruntime as ort

    src = tmp_path / "a.wav"
    sf.write(src, noise(2, 30000, seed=13).T * 0.5, 44100, subtype="FLOAT")
    cpu = stembridge("separate", src, "-o", tmp_path / "cpu", "-q")
    assert cpu.returncode == 0, cpu.stderr
    res = stembridge("separate", src, "-o", tmp_path / "cuda", "-q", "--provider", "cuda")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "stembridge[gpu]" in assert_one_line_error(res, 4, "--provider cuda")
        assert not (tmp_path / "cuda").exists()
        pytest.skip("no CUDA provider here: the error path ran, the GPU comparison did not")
    assert res.returncode == 0, res.stderr
    for stem in STEMS:
        a = sf.read(tmp_path / "cpu" / "a" / f"{stem}.wav", dtype="float32")[0]
        b = sf.read(tmp_path / "cuda" / "a" / f"{stem}.wav", dtype="float32")[0]
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_run_classes_from_with_parts_ends_in_one_line() -> None:
    """``--classes-from`` picks the class stems' source; with ``--parts`` (one stem per part) it is refused."""
    res = stembridge("run", "--backend", "jack", "--parts", "1,2", "--classes-from", "parts", "--duration", "1")
    assert "--parts" in assert_one_line_error(res, 2, "--classes-from")
