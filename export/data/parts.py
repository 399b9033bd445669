"""Pitched part generators: bass lines, piano/guitar comping, string pads and lines, melodies.

Every generator takes ``chords``: a list of (start_ql, dur_ql, chord_pcs) and returns
(onset_ql, dur_ql, midi_pitch, velocity) events.
"""

from __future__ import annotations

import numpy as np

from export.data.song import Meter
from export.data.theory import fold, voicing

Chords = list[tuple[float, float, tuple[int, ...]]]
Events = list[tuple[float, float, int, int]]

_STRING_RANGES = {40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 55), 47: (38, 55)}


def register(program: int) -> tuple[int, int]:
    """A playable MIDI range for a GM program (low, high)."""
    if 32 <= program < 40:
        return 28, 55
    if 24 <= program < 32:
        return 40, 79
    if program in _STRING_RANGES:
        return _STRING_RANGES[program]
    if 40 <= program < 56:
        return 43, 88
    if program in (57, 58, 67, 70):  # trombone, tuba, baritone sax, bassoon
        return 34, 65
    if program in (71, 72, 73, 74, 75, 68, 64, 65, 40, 56, 79):
        return 55, 91
    return 41, 86


def _hits(rng: np.random.Generator, meter: Meter, density: float) -> list[float]:
    """A one-bar rhythm (onsets in quarter notes) on the meter's eighth grid; the downbeat always."""
    grid = np.arange(0.0, meter.bar_ql - 1e-9, 0.5)
    out = [0.0] + [float(p) for p in grid[1:] if rng.random() < density]
    return out


def bass_events(rng: np.random.Generator, meter: Meter, chords: Chords, scale: np.ndarray, program: int) -> Events:
    """Bass line: roots, root-fifth, driving eighths, syncopated or walking patterns."""
    low, high = register(program)
    style = rng.choice(["root", "root_fifth", "eighths", "sync", "walking", "octave"])
    vel = int(rng.integers(75, 110))
    rhythm = _hits(rng, meter, 0.35)
    ev: Events = []
    for i, (t, d, ch) in enumerate(chords):
        root = fold(ch[0] + 36, low, min(high, low + 18))
        nxt = fold(chords[(i + 1) % len(chords)][2][0] + 36, low, min(high, low + 18))
        if style == "root":
            ev.append((t, d * 0.95, root, vel))
        elif style == "root_fifth":
            half = d / 2
            ev += [(t, half * 0.9, root, vel), (t + half, half * 0.9, fold(root + 7, low, high), vel - 8)]
        elif style == "eighths":
            for p in np.arange(0.0, d - 1e-9, 0.5):
                ev.append((t + p, 0.45, root, vel - (0 if p % 1.0 == 0 else 12)))
        elif style == "octave":
            for k, p in enumerate(np.arange(0.0, d - 1e-9, 0.5)):
                ev.append((t + p, 0.4, root + (12 if k % 2 and root + 12 <= high else 0), vel))
        elif style == "sync":
            hits = [p for p in rhythm if p < d]
            for k, p in enumerate(hits):
                end = hits[k + 1] if k + 1 < len(hits) else d
                pitch = root if rng.random() < 0.7 else fold(int(rng.choice(ch)) + 36, low, high)
                ev.append((t + p, (end - p) * 0.9, pitch, vel))
        else:  # walking: quarter notes through scale tones towards the next root
            n = max(1, int(round(d)))
            pitch = root
            for k in range(n):
                if k == n - 1 and n > 1:
                    pitch = nxt + int(rng.choice([-1, 1, -2, 2]))
                elif k > 0:
                    step = int(rng.choice([-2, -1, 1, 2, 3, 4]))
                    cands = [p for p in range(pitch - 5, pitch + 6) if p % 12 in scale]
                    pitch = min(cands, key=lambda p: abs(p - (pitch + step)))
                ev.append((t + k, 0.9, fold(pitch, low, high), vel - 5 * (k % 2)))
    return ev


def keys_events(rng: np.random.Generator, meter: Meter, chords: Chords, program: int) -> Events:
    """Piano-like part: block comping, arpeggios, ballad (bass + chord) or sustained chords."""
    style = rng.choice(["comp", "arp", "ballad", "sustain", "stride"])
    center = int(rng.integers(58, 70))
    n_voices = int(rng.integers(3, 5))
    vel = int(rng.integers(55, 100))
    rhythm = _hits(rng, meter, float(rng.uniform(0.15, 0.6)))
    arp_step = float(rng.choice([0.25, 0.5, 0.5]))
    pattern = rng.permutation(n_voices) if rng.random() < 0.4 else np.arange(n_voices)
    ev: Events = []
    prev = None
    for t, d, ch in chords:
        v = voicing(ch, center, n_voices, prev)
        prev = v
        bass = fold(ch[0] + 36, 36, 52)
        if style == "comp":
            for p in [p for p in rhythm if p < d]:
                ev += [(t + p, 0.45, q, vel) for q in v]
        elif style == "arp":
            for k, p in enumerate(np.arange(0.0, d - 1e-9, arp_step)):
                ev.append((t + p, arp_step * 1.8, v[int(pattern[k % n_voices])], vel - 8 * (k % 2)))
        elif style == "ballad":
            ev.append((t, d, bass, vel))
            for p in meter.pulses_ql:
                if p < d:
                    ev += [(t + p, meter.pulses_ql[1] if len(meter.pulses_ql) > 1 else d, q, vel - 15) for q in v]
        elif style == "stride":
            for k, p in enumerate(meter.pulses_ql):
                if p >= d:
                    break
                if k % 2 == 0:
                    ev.append((t + p, 0.8, bass, vel))
                else:
                    ev += [(t + p, 0.6, q, vel - 10) for q in v]
        else:
            ev += [(t, d * 0.98, q, vel - 10) for q in [bass, *v]]
    return ev


def guitar_events(rng: np.random.Generator, meter: Meter, chords: Chords, program: int) -> Events:
    """Guitar part: strums (staggered strings, down/up), fingerpicked arpeggios, power chords or a riff."""
    low, high = register(program)
    style = rng.choice(["strum", "strum", "pick", "power", "riff"])
    vel = int(rng.integers(60, 105))
    rhythm = _hits(rng, meter, float(rng.uniform(0.3, 0.8)))
    ev: Events = []
    prev = None
    riff = [int(x) for x in rng.integers(0, 3, size=8)]
    for t, d, ch in chords:
        if style in ("strum", "pick"):
            v = voicing(ch, int(rng.integers(55, 64)), int(rng.integers(4, 7)), prev)
            prev = v
            v = [fold(fold(ch[0], low, low + 11), low, high)] + v
            if style == "strum":
                for p in [p for p in rhythm if p < d]:
                    up = (p * 2) % 2 == 1
                    order = v[::-1] if up else v
                    spread = float(rng.uniform(0.008, 0.03)) * (len(order) - 1)
                    for k, q in enumerate(order):
                        dt = spread * k / max(len(order) - 1, 1)
                        ev.append((t + p + dt, 0.45, q, vel - (15 if up else 0) - 2 * k))
            else:
                for k, p in enumerate(np.arange(0.0, d - 1e-9, 0.5)):
                    ev.append((t + p, 1.0, v[[0, 2, 1, 3, 2, 4][k % 6] % len(v)], vel - 10))
        elif style == "power":
            r = fold(ch[0] + 36, low, low + 12)
            for p in np.arange(0.0, d - 1e-9, 0.5):
                ev += [(t + p, 0.4, q, vel) for q in (r, r + 7, r + 12)]
        else:
            r = fold(ch[0] + 48, low + 5, high - 12)
            for k, p in enumerate(np.arange(0.0, d - 1e-9, 0.5)):
                if rng.random() < 0.8:
                    ev.append((t + p, 0.45, fold(r + (0, 7, 12)[riff[k % 8]] if riff[k % 8] else r, low, high), vel))
    return ev


def strings_events(rng: np.random.Generator, meter: Meter, chords: Chords, scale: np.ndarray, program: int) -> Events:
    """String part: pads, a slow line, pizzicato, harp arpeggios or timpani, depending on program and chance."""
    low, high = register(program)
    vel = int(rng.integers(50, 95))
    if program == 47:
        style = "timpani"
    elif program == 45:
        style = "pizz"
    elif program == 46:
        style = "harp"
    elif program in (40, 41, 42, 43):
        style = rng.choice(["line", "pad", "pizz"])
    else:
        style = rng.choice(["pad", "pad", "line"])
    ev: Events = []
    prev = None
    for t, d, ch in chords:
        center = (low + high) // 2
        if style == "pad":
            v = voicing(ch, center, int(rng.integers(3, 5)), prev)
            prev = v
            ev += [(t, d * 1.02, fold(q, low, high), vel) for q in v]
        elif style == "pizz":
            for p in meter.pulses_ql:
                if p < d:
                    ev.append((t + p, 0.3, fold(int(rng.choice(ch)) + 48, low, high), vel + 10))
        elif style == "harp":
            v = voicing(ch, center, 4, prev)
            prev = v
            for k, p in enumerate(np.arange(0.0, d - 1e-9, 0.25)):
                ev.append((t + p, 0.8, fold(v[k % 4] + 12 * ((k // 4) % 2), low, high), vel))
        elif style == "timpani":
            for p in (0.0, d / 2):
                if rng.random() < 0.7:
                    ev.append((t + p, 0.5, fold(ch[0] + 36, low, high), vel + 10))
        else:
            ev += line_events(rng, [(t, d, ch)], scale, low, high, vel, slow=True)
    return ev


def line_events(
    rng: np.random.Generator,
    chords: Chords,
    scale: np.ndarray,
    low: int,
    high: int,
    vel: int,
    slow: bool = False,
) -> Events:
    """A melodic line: chord tones on strong beats, scale steps between, random-walk contour."""
    ev: Events = []
    pitch = (low + high) // 2
    durs = [1.0, 2.0, 0.5] if slow else [0.5, 0.5, 1.0, 0.25, 1.5]
    for t, d, ch in chords:
        p = 0.0
        while p < d - 1e-9:
            dur = min(float(rng.choice(durs)), d - p)
            target = pitch + int(rng.choice([-3, -2, -1, 0, 1, 2, 3, 5, -5]))
            pool = ch if p == 0.0 else tuple(int(x) for x in scale)
            cands = [q for q in range(target - 6, target + 7) if q % 12 in pool and low <= q <= high]
            if cands:
                pitch = min(cands, key=lambda q: abs(q - target))
            if rng.random() < 0.1 and p > 0:
                p += dur  # rest
                continue
            ev.append((t + p, dur * 0.95, pitch, vel + int(rng.integers(-8, 9))))
            p += dur
    return ev


def other_events(rng: np.random.Generator, meter: Meter, chords: Chords, scale: np.ndarray, program: int) -> Events:
    """Distractor part for the ``other`` stem: lead melody, sustained pad, or brass-like stabs."""
    low, high = register(program)
    vel = int(rng.integers(60, 105))
    if 88 <= program < 96 or program in (16, 17, 18, 19, 20, 21, 52, 53, 54):
        style = rng.choice(["pad", "pad", "line"])
    elif 56 <= program < 64:
        style = rng.choice(["stabs", "line"])
    else:
        style = rng.choice(["line", "line", "pad", "stabs"])
    if style == "line":
        return line_events(rng, chords, scale, max(low, 55), high, vel)
    ev: Events = []
    prev = None
    rhythm = _hits(rng, meter, 0.3)
    for t, d, ch in chords:
        v = voicing(ch, int(np.clip((low + high) // 2, 55, 75)), 3, prev)
        prev = v
        if style == "pad":
            ev += [(t, d, q, vel - 10) for q in v]
        else:
            for p in [p for p in rhythm if p < d]:
                ev += [(t + p, 0.3, q, vel) for q in v]
    return ev
