"""Procedural voices (numpy/scipy only) rendering a part's notes into one mono stem.

A voice is a plain dict of parameters (YAML/JSON-safe, recorded in the track metadata), drawn
from a seeded generator, so the same seed gives the same voice and the same audio:

- ``draw_voice(rng, program, is_drum) -> dict``: a random voice suited to a GM program's family.
  Pitched kinds: ``additive`` (random harmonic amplitude profile: spectral tilt, odd/even
  balance, formant-like spectral envelope; percussive spectra darken as they decay),
  ``fm`` (two-operator FM with a decaying index), ``pluck`` (Karplus-Strong with a fractional
  delay, so it is in tune), ``bowed`` (band-limited sawtooth with bow noise through a random body
  of formant resonances). All get a random ADSR, vibrato, unison detune (symmetric, so the pitch
  stays on the note), attack noise, a velocity curve and brightness, and a random body EQ and
  low-pass on the whole stem. Drums: kind ``drums``, a random synthetic kit (swept-sine kicks and
  toms, tone+noise snares, metallic noise hats and cymbals, open hats choked by closed ones).
- ``render_voice(notes, voice, sample_rate, n_samples, rng) -> (n_samples,) float32``: the stem of
  notes (n_notes, 4) = onset_s, offset_s, midi_pitch, velocity; the same shape and rate the
  FluidSynth path gives.
- ``midi_to_hz(pitch)``: equal temperament, A4 = 440 Hz.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

SYNTH_VERSION = 1
PITCHED_KINDS = ("additive", "fm", "pluck", "bowed")
TABLE_SIZE = 2048
MAX_NOTE_S = 8.0
N_DRUM_VARIANTS = 4

# Kinds (with weights) by Slakh class block of 8 GM programs; index = program // 8.
_KINDS_BY_BLOCK: tuple[dict[str, float], ...] = (
    {"additive": 0.5, "fm": 0.35, "pluck": 0.15},  # piano
    {"additive": 0.4, "fm": 0.6},  # chromatic percussion
    {"additive": 0.8, "fm": 0.2},  # organ
    {"pluck": 0.6, "additive": 0.25, "fm": 0.15},  # guitar
    {"pluck": 0.45, "additive": 0.2, "fm": 0.35},  # bass
    {"bowed": 0.65, "additive": 0.35},  # strings
    {"bowed": 0.5, "additive": 0.3, "pluck": 0.2},  # ensemble / harp / pizzicato / timpani
    {"additive": 0.5, "bowed": 0.3, "fm": 0.2},  # brass
    {"additive": 0.5, "bowed": 0.3, "fm": 0.2},  # reed
    {"additive": 0.7, "fm": 0.3},  # pipe
    {"additive": 0.5, "fm": 0.3, "bowed": 0.2},  # synth lead
    {"additive": 0.5, "bowed": 0.3, "fm": 0.2},  # synth pad
    {"fm": 0.5, "additive": 0.5},  # synth effects
    {"pluck": 0.5, "fm": 0.3, "additive": 0.2},  # ethnic
    {"fm": 0.5, "additive": 0.5},  # percussive
    {"fm": 0.5, "additive": 0.5},  # sound effects
)
_PERCUSSIVE_BLOCKS = (0, 1, 3, 4, 13, 14)
# GM percussion notes -> synthetic drum voice.
_DRUM_VOICE = {
    35: "kick", 36: "kick", 37: "stick", 38: "snare", 39: "clap", 40: "snare",
    41: "tom_low", 43: "tom_low", 45: "tom_mid", 47: "tom_mid", 48: "tom_high", 50: "tom_high",
    42: "hat_closed", 44: "hat_pedal", 46: "hat_open", 49: "crash", 57: "crash", 52: "crash",
    55: "crash", 51: "ride", 59: "ride", 53: "ride_bell", 54: "shaker", 69: "shaker", 70: "shaker",
    56: "cowbell",
}  # fmt: skip
_HATS = ("hat_closed", "hat_pedal", "hat_open")


def midi_to_hz(pitch: float) -> float:
    """Equal-tempered frequency of a MIDI pitch (A4 = 69 = 440 Hz)."""
    return float(440.0 * 2.0 ** ((float(pitch) - 69.0) / 12.0))


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def draw_voice(rng: np.random.Generator, program: int, is_drum: bool) -> dict:
    """A random voice (plain dict) for GM ``program`` (or a drum kit when ``is_drum``)."""
    if is_drum:
        return _draw_kit(rng)
    block = int(program) // 8
    kinds = _KINDS_BY_BLOCK[block]
    names = list(kinds)
    p = np.array([kinds[n] for n in names])
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    percussive = block in _PERCUSSIVE_BLOCKS or program in (45, 46, 47) or kind == "pluck"
    v: dict = {"kind": kind, "percussive": bool(percussive)}
    if percussive:
        v |= {
            "attack_s": _r(_log_uniform(rng, 0.001, 0.012)),
            "decay_s": _r(_log_uniform(rng, 0.3, 3.0)),
            "sustain": 0.0,
            "release_s": _r(_log_uniform(rng, 0.03, 0.3)),
        }
    else:
        v |= {
            "attack_s": _r(_log_uniform(rng, 0.005, 0.25)),
            "decay_s": _r(_log_uniform(rng, 0.05, 1.0)),
            "sustain": _r(rng.uniform(0.4, 1.0)),
            "release_s": _r(_log_uniform(rng, 0.05, 0.6)),
        }
    vib = rng.random() < (0.8 if kind == "bowed" else 0.35)
    v |= {
        "vibrato_hz": _r(rng.uniform(4.0, 6.5) if vib else 0.0),
        "vibrato_cents": _r(rng.uniform(5.0, 30.0) if vib else 0.0),
        "vibrato_delay_s": _r(rng.uniform(0.0, 0.4)),
        "n_unison": int(rng.choice([1, 1, 1, 2, 3])),
        "detune_cents": _r(rng.uniform(2.0, 15.0)),
        "noise_db": _r(rng.uniform(-45.0, -18.0)),
        "noise_decay_s": _r(_log_uniform(rng, 0.005, 0.08)),
        "velocity_gamma": _r(rng.uniform(1.0, 2.5)),
        "velocity_brightness": _r(rng.uniform(0.0, 6.0)),
        "drive": _r(rng.uniform(1.5, 8.0) if (program in (29, 30) or rng.random() < 0.08) else 0.0),
        "lowpass_hz": _r(_log_uniform(rng, 2500.0, 18000.0), 1),
        "body": [
            [_r(_log_uniform(rng, 150.0, 5000.0), 1), _r(rng.uniform(-6.0, 12.0), 2), _r(rng.uniform(0.7, 6.0), 2)]
            for _ in range(int(rng.integers(0, 5)))
        ],
    }
    if kind in ("additive", "bowed"):
        v |= {
            "n_harmonics": int(rng.integers(6, 48)),
            "tilt_db_per_oct": _r(rng.uniform(1.5, 9.0) if kind == "additive" else rng.uniform(4.5, 7.5)),
            "even_db": _r(rng.uniform(-24.0, 3.0) if rng.random() < 0.4 else 0.0),
            "harmonic_jitter_db": _r(rng.uniform(0.0, 8.0)),
            "formants": [
                [_r(_log_uniform(rng, 200.0, 4000.0), 1), _r(rng.uniform(0.2, 1.0), 3), _r(rng.uniform(3.0, 18.0), 2)]
                for _ in range(int(rng.integers(0, 4)))
            ],
            "dark_tilt_db_per_oct": _r(rng.uniform(3.0, 12.0)),
            "darken_s": _r(_log_uniform(rng, 0.05, 1.0)),
        }
    if kind == "bowed":
        v["noise_db"] = _r(rng.uniform(-38.0, -20.0))
        v["bow_noise_db"] = _r(rng.uniform(-40.0, -24.0))
    if kind == "fm":
        # integer ratios with no common factor: every partial is a harmonic of the note's f0 and
        # the fundamental (present or implied) is f0, so the notes stay the labels' pitches
        carrier = int(rng.choice([1, 1, 1, 2, 3]))
        mod = int(rng.choice([m for m in (1, 2, 3, 4, 5, 7, 9, 14) if np.gcd(m, carrier) == 1]))
        v |= {
            "ratio_carrier": float(carrier),
            "ratio_mod": float(mod),
            "index": _r(rng.uniform(0.3, 6.0)),
            "index_sustain": _r(rng.uniform(0.05, 1.0)),
            "index_decay_s": _r(_log_uniform(rng, 0.05, 1.5)),
        }
    if kind == "pluck":
        v |= {
            "t60_s": _r(_log_uniform(rng, 0.6, 6.0)),
            "damping": _r(rng.uniform(0.05, 0.5)),
            "pick_position": _r(rng.uniform(0.05, 0.45)),
            "excitation_lowpass": _r(rng.uniform(0.2, 1.0)),
        }
    return v


def _draw_kit(rng: np.random.Generator) -> dict:
    return {
        "kind": "drums",
        "kick_hz": _r(rng.uniform(40.0, 70.0), 2),
        "kick_sweep": _r(rng.uniform(2.0, 6.0), 3),
        "kick_sweep_s": _r(_log_uniform(rng, 0.01, 0.06)),
        "kick_decay_s": _r(rng.uniform(0.25, 0.9)),
        "kick_click_db": _r(rng.uniform(-30.0, -8.0)),
        "snare_hz": _r(rng.uniform(150.0, 260.0), 2),
        "snare_noise_db": _r(rng.uniform(-6.0, 3.0)),
        "snare_decay_s": _r(rng.uniform(0.15, 0.5)),
        "snare_band_hz": [_r(_log_uniform(rng, 800.0, 3000.0), 1), _r(_log_uniform(rng, 5000.0, 14000.0), 1)],
        "tom_hz": _r(rng.uniform(70.0, 110.0), 2),
        "tom_decay_s": _r(rng.uniform(0.3, 1.0)),
        "hat_hz": _r(_log_uniform(rng, 5000.0, 10000.0), 1),
        "hat_decay_s": _r(_log_uniform(rng, 0.05, 0.25)),
        "hat_open_decay_s": _r(rng.uniform(0.4, 1.4)),
        "metal_base_hz": _r(rng.uniform(250.0, 600.0), 2),
        "cymbal_decay_s": _r(rng.uniform(1.5, 4.0)),
        "ride_decay_s": _r(rng.uniform(2.0, 5.0)),
        "velocity_gamma": _r(rng.uniform(1.0, 2.0)),
        "lowpass_hz": _r(_log_uniform(rng, 8000.0, 20000.0), 1),
        "body": [],
    }


# ---------------------------------------------------------------------------------- rendering


def render_voice(
    notes: np.ndarray, voice: dict, sample_rate: int, n_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Render notes (n_notes, 4) with ``voice`` into a (n_samples,) float32 stem.

    ``rng`` supplies the per-note randomness (noise, phases); the same state gives the same audio.
    """
    out = np.zeros(n_samples, np.float64)
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    if voice["kind"] == "drums":
        _render_drums(out, notes, voice, sample_rate, rng)
    else:
        for on, off, pitch, vel in notes:
            start = int(round(on * sample_rate))
            if start >= n_samples:
                continue
            note = _render_note(voice, float(pitch), float(vel), max(off - on, 0.01), sample_rate, rng)
            end = min(n_samples, start + len(note))
            out[start:end] += note[: end - start]
    return _stem_filter(out, voice, sample_rate).astype(np.float32)


def _stem_filter(x: np.ndarray, voice: dict, sample_rate: int) -> np.ndarray:
    """The voice's body EQ (peaking biquads) and low-pass on the whole stem (linear, time-invariant)."""
    for freq, gain_db, q in voice.get("body", []):
        if freq < 0.45 * sample_rate:
            x = _peaking(x, sample_rate, freq, gain_db, q)
    lp = float(voice.get("lowpass_hz", 0.0))
    if 0 < lp < 0.45 * sample_rate:
        x = signal.sosfilt(signal.butter(2, lp, fs=sample_rate, output="sos"), x)
    return x


def _peaking(x: np.ndarray, sample_rate: int, freq_hz: float, gain_db: float, q: float) -> np.ndarray:
    a_lin = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq_hz / sample_rate
    alpha = np.sin(w0) / (2.0 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return signal.lfilter(b / a[0], a / a[0], x)


def _envelope(voice: dict, n_hold: int, n_total: int, sample_rate: int) -> np.ndarray:
    """ADSR amplitude (n_total,): attack, decay to sustain while held, release after ``n_hold``."""
    t = np.arange(n_total) / sample_rate
    att = max(float(voice["attack_s"]), 1e-4)
    dec = max(float(voice["decay_s"]), 1e-3)
    sus = float(voice["sustain"])
    env = np.where(t < att, t / att, sus + (1.0 - sus) * np.exp(-(t - att) / dec))
    rel = max(float(voice["release_s"]), 0.005)
    hold = n_hold / sample_rate
    level = float(env[min(n_hold, n_total - 1)])
    after = t >= hold
    env[after] = level * np.exp(-(t[after] - hold) * 6.9 / rel)
    return env


def _phase_cycles(voice: dict, f0: float, n: int, sample_rate: int, detune_cents: float) -> np.ndarray:
    """Cumulative phase in cycles (n,) of a tone at ``f0`` with vibrato and a detune."""
    t = np.arange(n) / sample_rate
    cents = np.full(n, detune_cents)
    if voice["vibrato_hz"] > 0:
        ramp = np.clip((t - voice["vibrato_delay_s"]) / 0.3, 0.0, 1.0)
        cents = cents + voice["vibrato_cents"] * ramp * np.sin(2 * np.pi * voice["vibrato_hz"] * t)
    freq = f0 * 2.0 ** (cents / 1200.0)
    return np.cumsum(freq) / sample_rate


def _unison(voice: dict) -> list[float]:
    n = int(voice["n_unison"])
    if n <= 1:
        return [0.0]
    d = float(voice["detune_cents"])
    return list(np.linspace(-d, d, n))


def _harmonic_table(voice: dict, f0: float, sample_rate: int, rng: np.random.Generator, dark: bool) -> np.ndarray:
    """One period (TABLE_SIZE,) of the voice's harmonic spectrum at ``f0`` (band-limited)."""
    n_max = min(int(voice["n_harmonics"]), int(0.45 * sample_rate / f0), TABLE_SIZE // 2 - 1)
    n_max = max(n_max, 1)
    k = np.arange(1, n_max + 1, dtype=np.float64)
    tilt = float(voice["dark_tilt_db_per_oct"] if dark else 0.0) + float(voice["tilt_db_per_oct"])
    db = -tilt * np.log2(k)
    db[1::2] += float(voice["even_db"])
    db += rng.normal(0.0, float(voice["harmonic_jitter_db"]), n_max) * (k > 1)
    fk = k * f0
    for freq, bw_oct, gain_db in voice["formants"]:
        db += gain_db * np.exp(-0.5 * (np.log2(fk / freq) / bw_oct) ** 2)
    spec = np.zeros(TABLE_SIZE // 2 + 1, np.complex128)
    phases = rng.uniform(0, 2 * np.pi, n_max)
    spec[1 : n_max + 1] = 10.0 ** (db / 20.0) * np.exp(1j * phases)
    table = np.fft.irfft(spec, TABLE_SIZE)
    return table / (np.abs(table).max() + 1e-12)


def _read_table(table: np.ndarray, cycles: np.ndarray) -> np.ndarray:
    pos = (cycles % 1.0) * TABLE_SIZE
    i0 = pos.astype(np.int64)
    frac = pos - i0
    return table[i0] * (1.0 - frac) + table[(i0 + 1) % TABLE_SIZE] * frac


def _render_note(voice: dict, pitch: float, vel: float, dur_s: float, sample_rate: int, rng) -> np.ndarray:
    f0 = midi_to_hz(pitch)
    kind = voice["kind"]
    dur_s = min(dur_s, MAX_NOTE_S)
    n_hold = int(dur_s * sample_rate)
    n_total = n_hold + int(float(voice["release_s"]) * sample_rate) + 1
    if voice["percussive"]:
        n_total = min(n_total, n_hold + int(float(voice["decay_s"]) * 5 * sample_rate) + 1)
    if kind == "pluck":
        tone = _pluck(voice, f0, n_total, sample_rate, rng, vel)
        env = _envelope(voice | {"attack_s": 0.0005, "decay_s": 1e6, "sustain": 1.0}, n_hold, n_total, sample_rate)
    else:
        env = _envelope(voice, n_hold, n_total, sample_rate)
        tone = np.zeros(n_total)
        for det in _unison(voice):
            cycles = _phase_cycles(voice, f0, n_total, sample_rate, det) + rng.random()
            if kind == "fm":
                tone += _fm(voice, cycles, f0, n_total, sample_rate)
            else:
                bright = _harmonic_table(voice, f0, sample_rate, rng, dark=False)
                x = _read_table(bright, cycles)
                if voice["percussive"]:
                    dark = _harmonic_table(voice, f0, sample_rate, rng, dark=True)
                    w = np.exp(-np.arange(n_total) / (float(voice["darken_s"]) * sample_rate))
                    x = w * x + (1.0 - w) * _read_table(dark, cycles)
                tone += x
        tone /= np.sqrt(len(_unison(voice)))
        if kind == "bowed":
            noise = signal.lfilter([1.0, -0.95], [1.0], rng.standard_normal(n_total))
            tone += 10.0 ** (float(voice["bow_noise_db"]) / 20.0) * noise * np.abs(tone)
    v = np.clip(vel / 127.0, 0.0, 1.0)
    out = tone * env
    n_att = min(n_total, int(float(voice["noise_decay_s"]) * 6 * sample_rate) + 1)
    burst = rng.standard_normal(n_att) * np.exp(-np.arange(n_att) / (float(voice["noise_decay_s"]) * sample_rate))
    out[:n_att] += 10.0 ** (float(voice["noise_db"]) / 20.0) * burst
    if voice["velocity_brightness"] > 0:
        # Softer notes are darker: a one-pole low-pass whose cutoff rises with velocity.
        cut = min(0.45 * sample_rate, f0 * 2.0 ** (2.0 + float(voice["velocity_brightness"]) * v))
        a = np.exp(-2 * np.pi * cut / sample_rate)
        out = signal.lfilter([1.0 - a], [1.0, -a], out)
    if voice["drive"] > 0:
        out = np.tanh(float(voice["drive"]) * out) / np.tanh(float(voice["drive"]))
    # fade the last 5 ms so a cut note never clicks
    n_fade = min(len(out), int(0.005 * sample_rate))
    out[len(out) - n_fade :] *= np.linspace(1.0, 0.0, n_fade)
    return 0.3 * v ** float(voice["velocity_gamma"]) * out


def _fm(voice: dict, cycles: np.ndarray, f0: float, n: int, sample_rate: int) -> np.ndarray:
    t = np.arange(n) / sample_rate
    rc, rm = float(voice["ratio_carrier"]), float(voice["ratio_mod"])
    # keep the main sidebands (carrier + (index + 1) * modulator) under Nyquist
    max_index = max(0.0, (0.45 * sample_rate / f0 - rc) / max(rm, 1e-6) - 1.0)
    index0 = min(float(voice["index"]), max_index)
    sus = float(voice["index_sustain"])
    index = index0 * (sus + (1.0 - sus) * np.exp(-t / float(voice["index_decay_s"])))
    return np.sin(2 * np.pi * rc * cycles + index * np.sin(2 * np.pi * rm * cycles))


def _pluck(voice: dict, f0: float, n: int, sample_rate: int, rng: np.random.Generator, vel: float) -> np.ndarray:
    """Karplus-Strong string: loop delay ``sample_rate / f0`` made of an integer delay, a damping
    filter ``(1 - s) + s z^-1`` and a linear fractional delay, so the pitch is exact to first order."""
    period = sample_rate / f0
    s = float(voice["damping"])
    n_int = int(np.floor(period - s))
    frac = period - s - n_int
    # per-period loss for the requested T60 (longer for low notes, as real strings)
    t60 = float(voice["t60_s"]) * (110.0 / f0) ** 0.3
    g = 10.0 ** (-3.0 * period / (t60 * sample_rate))
    taps = g * np.convolve([1.0 - s, s], [1.0 - frac, frac])  # at delays n_int, n_int+1, n_int+2
    # excitation: one period of low-passed noise, with a pick-position comb
    burst = rng.uniform(-1.0, 1.0, n_int + 2)
    lp = float(voice["excitation_lowpass"]) * (0.5 + 0.5 * vel / 127.0)
    burst = signal.lfilter([lp], [1.0, -(1.0 - lp)], burst)
    d = max(1, int(round(float(voice["pick_position"]) * period)))
    burst[d:] -= burst[:-d].copy()
    burst -= burst.mean()
    x = np.zeros(n)
    x[: min(n, len(burst))] = burst[: min(n, len(burst))]
    if n_int <= 256:
        a = np.zeros(n_int + 3)
        a[0] = 1.0
        a[n_int:] = -taps
        y = signal.lfilter([1.0], a, x)
    else:
        y = x.copy()
        for b in range(n_int, n, n_int):
            e = min(n, b + n_int)
            i = np.arange(b, e)
            y[b:e] += taps[0] * y[i - n_int] + taps[1] * y[i - n_int - 1] + taps[2] * y[i - n_int - 2]
    return y / (np.abs(burst).max() + 1e-9)


# ------------------------------------------------------------------------------------- drums


def _render_drums(out: np.ndarray, notes: np.ndarray, kit: dict, sample_rate: int, rng: np.random.Generator) -> None:
    n_samples = len(out)
    onsets = notes[:, 0]
    voices = [_DRUM_VOICE.get(int(p), "stick") for p in notes[:, 2]]
    hat_onsets = np.array([on for on, v in zip(onsets, voices) if v in _HATS])
    cache: dict[str, list[np.ndarray]] = {}
    for (on, _, _, vel), name in zip(notes, voices):
        start = int(round(on * sample_rate))
        if start >= n_samples:
            continue
        # a few recorded-like variants per drum, picked per hit (as sampled kits' round robins)
        variants = cache.setdefault(name, [])
        pick = int(rng.integers(N_DRUM_VARIANTS))
        while len(variants) <= pick:
            variants.append(_drum_hit(name, kit, sample_rate, rng))
        hit = variants[pick]
        if name == "hat_open":  # choked by the next hat
            later = hat_onsets[hat_onsets > on + 1e-6]
            if len(later):
                n_keep = int((later[0] - on) * sample_rate)
                if n_keep < len(hit):
                    fade = min(int(0.02 * sample_rate), len(hit) - n_keep)
                    hit = hit[: n_keep + fade].copy()
                    hit[n_keep:] *= np.linspace(1.0, 0.0, fade)
        gain = 0.5 * (np.clip(vel / 127.0, 0.0, 1.0) ** float(kit["velocity_gamma"]))
        end = min(n_samples, start + len(hit))
        out[start:end] += gain * hit[: end - start]


def _decay(n: int, sample_rate: int, t60_s: float) -> np.ndarray:
    """Exponential decay reaching -60 dB after ``t60_s``."""
    return np.exp(-6.9 * np.arange(n) / (max(t60_s, 1e-4) * sample_rate))


def _band_noise(rng: np.random.Generator, n: int, sample_rate: int, lo: float, hi: float) -> np.ndarray:
    hi = min(hi, 0.45 * sample_rate)
    sos = signal.butter(2, [lo, hi], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n))


def _metal(rng: np.random.Generator, n: int, sample_rate: int, base_hz: float) -> np.ndarray:
    """Six detuned square waves at inharmonic ratios (the 808 cymbal recipe)."""
    t = np.arange(n) / sample_rate
    ratios = np.array([1.0, 1.342, 1.2312, 1.6532, 1.9523, 2.1523]) * rng.uniform(0.98, 1.02, 6)
    return sum(np.sign(np.sin(2 * np.pi * base_hz * r * t + rng.uniform(0, 6.28))) for r in ratios) / 6.0


def _drum_hit(name: str, kit: dict, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    sr = sample_rate
    if name in ("kick", "tom_low", "tom_mid", "tom_high"):
        if name == "kick":
            f_end, decay, sweep = kit["kick_hz"], kit["kick_decay_s"], kit["kick_sweep"]
        else:
            f_end = kit["tom_hz"] * {"tom_low": 1.0, "tom_mid": 1.35, "tom_high": 1.8}[name]
            decay, sweep = kit["tom_decay_s"], 1.6
        n = int(decay * 1.2 * sr)
        t = np.arange(n) / sr
        freq = f_end * (1.0 + (sweep - 1.0) * np.exp(-t / kit["kick_sweep_s"]))
        x = np.sin(2 * np.pi * np.cumsum(freq) / sr) * _decay(n, sr, decay)
        m = min(n, int(0.004 * sr))
        x[:m] += 10 ** (kit["kick_click_db"] / 20) * _band_noise(rng, m, sr, 1500.0, 8000.0) * 4
        return x
    if name in ("snare", "clap", "stick"):
        decay = kit["snare_decay_s"] * (0.5 if name == "stick" else 1.0)
        n = int(decay * 1.2 * sr)
        t = np.arange(n) / sr
        tone = np.sin(2 * np.pi * kit["snare_hz"] * t) + 0.5 * np.sin(2 * np.pi * kit["snare_hz"] * 1.47 * t)
        noise = _band_noise(rng, n, sr, *kit["snare_band_hz"]) * 3.0
        if name == "clap":  # three quick bursts then a tail
            env = sum(_decay(n, sr, 0.05) * (np.arange(n) >= int(k * 0.011 * sr)) for k in range(3))
            return noise * env * 0.7 + noise * _decay(n, sr, decay) * 0.3
        if name == "stick":
            return 0.7 * _band_noise(rng, n, sr, 2000.0, 9000.0) * _decay(n, sr, 0.07) + 0.3 * tone * _decay(
                n, sr, 0.12
            )
        w = 10 ** (kit["snare_noise_db"] / 20)
        return (tone * _decay(n, sr, decay * 0.4) + w * noise * _decay(n, sr, decay)) / (1 + w)
    if name in ("hat_closed", "hat_pedal", "hat_open", "shaker"):
        decay = kit["hat_open_decay_s"] if name == "hat_open" else kit["hat_decay_s"]
        if name == "hat_pedal":
            decay *= 0.7
        n = int(decay * 1.2 * sr)
        metal = _metal(rng, n, sr, kit["metal_base_hz"])
        noise = rng.standard_normal(n)
        mix = 0.2 * noise if name == "shaker" else 0.5 * metal + 0.5 * noise
        sos = signal.butter(2, min(kit["hat_hz"], 0.4 * sr), btype="highpass", fs=sr, output="sos")
        env = _decay(n, sr, decay)
        if name == "shaker":
            env = env * np.minimum(1.0, np.arange(n) / (0.01 * sr))
        return signal.sosfilt(sos, mix) * env * 2.0
    if name in ("crash", "ride", "ride_bell", "cowbell"):
        decay = kit["cymbal_decay_s"] if name == "crash" else kit["ride_decay_s"]
        if name == "cowbell":
            decay = 0.5
        n = int(decay * 1.2 * sr)
        t = np.arange(n) / sr
        metal = _metal(rng, n, sr, kit["metal_base_hz"] * (1.7 if name == "cowbell" else 1.0))
        if name == "cowbell":
            sos = signal.butter(2, [500.0, 2500.0], btype="bandpass", fs=sr, output="sos")
            return signal.sosfilt(sos, metal) * _decay(n, sr, decay) * 2
        noise = rng.standard_normal(n) * (1.0 if name == "crash" else 0.4)
        sos = signal.butter(2, min(kit["hat_hz"] * 0.6, 0.4 * sr), btype="highpass", fs=sr, output="sos")
        x = signal.sosfilt(sos, 0.5 * metal + noise) * _decay(n, sr, decay)
        if name in ("ride", "ride_bell"):
            bell = np.sin(2 * np.pi * kit["metal_base_hz"] * 2.3 * t) * _decay(n, sr, decay * 0.5)
            x = x + bell * (0.6 if name == "ride_bell" else 0.15)
        return x
    return np.zeros(1)
