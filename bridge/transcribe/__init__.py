"""Transcribe, then separate: blind class stems from a transcription turned into score parts.

Without a score, the class network alone separates poorly on timbres it was not trained on,
while the parts decomposition (``bridge.parts``) separates well when it knows which notes each
part plays. Offline, ``Transcriber`` builds such a score from the audio itself: basic-pitch's
shipped network transcribes every pitched note (instrument-blind, ``basic_pitch``), and a small
classifier trained on basic-pitch's own notes (``note_classes``) says, per class, whether each one
sounds in that class and whether one starts there; a second small network over all the notes of the
file (``song_context``) refines each note's class evidence from the notes that sound like it. A note
goes into the part of every class where
it sounds (probability at least ``sounding_threshold`` and at least ``member_share`` of its best
class: the decomposition's per-part timbre then decides between close calls, which costs far less
than a wrong hard choice); a note that sounds nowhere (an octave ghost, a partial) goes into none.
``bridge.parts.classes.ScoredClasses`` separates with these parts (its ``transcribed_parts_settings``:
one release tail, no neighbouring pitches as missed-note candidates), taking ``model_stems`` from the
network (conditioned on the same notes; ``blind_stems`` from a second run without it). The notes
written are, per class, those whose onset probability reaches the class's threshold from the
classifier's metadata (tuned for onset F1 on the selection set), moved onto the onset the
classifier finds, pieces of one note that land on the same onset merged; drum notes stay the
network's. basic-pitch's notes are decoded with the thresholds the classifier declares (it was
trained on notes decoded that way).

Where a file's frames fall would move its notes and classes (the same music a fraction of a frame later
gives other notes), so the analysis anchors its frames to the music (``anchor``: zero samples in front of the
file put its strongest onset at the same place of basic-pitch's windows and of both networks' frames; the notes'
times are moved back after): at 44.1 kHz a file delayed by any number of samples gives the same notes, delayed,
and the same classes (at 48 kHz to within the half sample the grid can be placed to; BENCHMARKS.md stop 46).

Not causal (both networks see whole seconds of audio): offline files only; the live bridge keeps
the network alone.

Public API
----------
- ``Transcriber(n_threads=1, member_share=MEMBER_SHARE, model_stems=TRANSCRIBED_MODEL_STEMS,
  classifier_path=None, condition_network=True, blind_stems=TRANSCRIBED_BLIND_STEMS,
  sounding_threshold=None, network_share=TRANSCRIBED_NETWORK_SHARE, fusion=None,
  remask=TRANSCRIBED_REMASK, shares=TRANSCRIBED_SHARES, song_context=SONG_CONTEXT, anchor=ANCHOR,
  anchor_phase=ANCHOR_PHASE)`` (None: the classifier's own;
  ``song_context``: the song model's file, None: the classifier's evidence alone; ``shares``: the membership
  shares ``bridge.backends.offline.separate_file`` separates with, side by side, and averages
  (``bridge.parts.share_ensemble``; None: ``member_share`` alone); the share as
  ``bridge.parts.classes.NETWORK_SHARE``; ``fusion`` and ``remask`` as ``ScoredClasses``', no fusion by
  default, ``remask`` None: none; ``anchor``: the analysis frames anchored to the file's strongest onset,
  ``anchor_phase`` of a frame after a boundary, ``bridge.transcribe.anchor``): ``transcribe(audio, sample_rate) ->
  Transcription`` (mono audio (n,)); ``transcribe_file(path) -> (Transcription, sample_rate)``;
  ``parts(audio, sample_rate) -> list[ScorePart]``. In two steps, so that one analysis serves several
  membership shares (``bridge.backends.offline``, ``bridge.parts.share_ensemble``): ``analyse(audio, sample_rate)
  -> NoteAnalysis``,
  ``analyse_file(path) -> (NoteAnalysis, sample_rate)``, then ``transcription(analysis, member_share=None)
  -> Transcription`` (None: the transcriber's own share).
- ``NoteAnalysis``: ``notes`` (n, 4) basic-pitch's, the classifier's ``sounding`` and ``onset`` (n, n_classes)
  and ``shift_s`` (n,).
- ``Transcription``: ``parts`` (one ``ScorePart`` per class), ``notes`` {class: (n, 4)} and
  ``events(stems, sample_rate, until_s=None) -> list[NoteEvent]`` (the written notes).
- ``score_of_parts(parts, stems) -> list[np.ndarray]``: the parts' notes per class stem, as
  ``bridge.score.read_score_file`` gives them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.instruments import stem_channel, stem_for_program
from bridge.midi_io import STEM_PROGRAMS
from bridge.notes import NoteEvent
from bridge.parts.score_parts import ScorePart
from bridge.transcribe.note_classes import merge_repeated_onsets
from bridge.transcribe.song_context import SONG_CONTEXT_FILE

MEMBER_SHARE = 0.3
OTHER_PROGRAM = 80  # GM "Lead 1 (square)": counted in `other`
# chosen on the selection set (seed 9002, bench/transcribe_select.py; BENCHMARKS.md): the pitched stems
# from the parts, which see the input without the network's drums, blended with the network conditioned
# on the transcription (alone it read bass -2.47 / +1.02 dB median SI-SDRi on tracks 17-32 / 1-16 against
# +3.01 / +2.61 from the parts; strings -10.19 against -0.66), drums from the network without it
TRANSCRIBED_MODEL_STEMS = ("drums",)
TRANSCRIBED_BLIND_STEMS = ("drums",)  # the transcription has no drum part: drums from the network without it
# the conditioned network's share in the stems from the parts (selection tracks 1-16 / 17-32: bass +1.96 /
# +2.56 -> +2.92 / +3.65 dB, other -1.47 / -1.30 -> +0.72 / +1.17, strings +0.08 / -0.12; piano and guitar,
# which came from the network alone: +5.23 / +0.04 -> +5.89 / +1.88 and +4.07 / -0.68 -> +5.01 / +2.62);
# strings 0.2 -> 0.6 at stop 23 (48 tracks, paired per track: strings +0.21 dB mean, other +1.21: the strings
# part holds notes of other instruments the classifier calls strings, which its smaller share hands back to
# `other`, the remainder; 0.4 / 0.8 read +0.17 / +0.01 and +0.81 / +1.20)
TRANSCRIBED_NETWORK_SHARE = {"bass": 0.5, "strings": 0.6, "piano": 0.8, "guitar": 0.6}
# the finished stems re-masked from their sum in a 0.37 s STFT, each mask to its stem's power
# (``bridge.parts.fusion.StemRemask``; selection set, seed 9002, 48 tracks: BENCHMARKS.md, stop 37)
TRANSCRIBED_REMASK = {"drums": 0.9, "bass": 0.9, "piano": 0.75, "guitar": 0.75, "strings": 0.6, "other": 0.9}
# the parts at three membership shares, each separated, the stems averaged before the re-masking (chosen on the
# selection set; held out, seed 9001, 48 tracks, per track against `member_share` alone: bass +0.48, piano +0.41,
# guitar +0.18, strings +0.88, other +0.28 dB mean; BENCHMARKS.md stop 41)
TRANSCRIBED_SHARES = (0.05, 0.3, 1.0)
# each note's class evidence refined by the file's other notes (``bridge.transcribe.song_context``; None: the
# classifier's alone)
SONG_CONTEXT: Path | None = SONG_CONTEXT_FILE
# the analysis windows and frames anchored to the file's strongest onset (``bridge.transcribe.anchor``), which
# lands this share of a frame after a frame boundary (selection set, 96 tracks, per track against the frames
# counted from the first sample, which every other setting was tuned with: bass -0.08, piano -0.09, strings
# +0.09, the rest within 0.04 dB; frames alone anchored, phase 0 / 0.25 / 0.5 / 0.75: bass -0.24 / -0.12 / -0.11
# / -0.12; BENCHMARKS.md stop 46)
ANCHOR = True
ANCHOR_PHASE = 0.25


@dataclass
class NoteAnalysis:
    """What the transcription is made from: basic-pitch's ``notes`` (n, 4) (onset s, offset s, MIDI pitch,
    velocity) and the classifier's per-class probabilities ``sounding`` and ``onset`` (n, n_classes) and
    onset shifts ``shift_s`` (n,) in seconds."""

    notes: np.ndarray
    sounding: np.ndarray
    onset: np.ndarray
    shift_s: np.ndarray


@dataclass
class Transcription:
    """A file's transcription: one ``ScorePart`` per class (the notes that sound in it, for the
    decomposition) and ``notes`` per class (n, 4) (the notes that start in it, for ``notes.mid``)."""

    parts: list[ScorePart]
    notes: dict[str, np.ndarray]

    def events(self, stems: Sequence[str], sample_rate: int, until_s: float | None = None) -> list[NoteEvent]:
        """The written notes (those starting before ``until_s``, if given) as note-on / note-off events
        at ``sample_rate``, ``stem`` indexing ``stems`` (classes not in ``stems`` left out), sorted by time."""
        out = []
        for name, notes in self.notes.items():
            if name not in stems:
                continue
            k = list(stems).index(name)
            for on_s, off_s, pitch, vel in np.asarray(notes, np.float64).reshape(-1, 4).tolist():
                if until_s is not None and on_s >= until_s:
                    continue
                on = round(on_s * sample_rate)
                out.append(NoteEvent(on, k, int(pitch), int(np.clip(vel, 1, 127)), True))
                out.append(NoteEvent(max(round(off_s * sample_rate), on + 1), k, int(pitch), 0, False))
        return sorted(out, key=lambda e: (e.sample, e.on))


class Transcriber:
    """basic-pitch notes, judged per note and class, as one score part per class (see the module docstring)."""

    def __init__(
        self,
        n_threads: int = 1,
        member_share: float = MEMBER_SHARE,
        model_stems: Sequence[str] = TRANSCRIBED_MODEL_STEMS,
        classifier_path: Path | None = None,
        condition_network: bool = True,
        blind_stems: Sequence[str] = TRANSCRIBED_BLIND_STEMS,
        sounding_threshold: float | None = None,
        network_share: Mapping[str, float] = TRANSCRIBED_NETWORK_SHARE,
        fusion: Mapping[str, float] | None = None,
        remask: Mapping[str, float] | None = TRANSCRIBED_REMASK,
        shares: Sequence[float] | None = TRANSCRIBED_SHARES,
        song_context: Path | None = SONG_CONTEXT,
        anchor: bool = ANCHOR,
        anchor_phase: float = ANCHOR_PHASE,
    ) -> None:
        from bridge.transcribe.basic_pitch import BasicPitch
        from bridge.transcribe.note_classes import NOTE_CLASSES_FILE, NoteClassifier
        from bridge.transcribe.song_context import SongContext

        self.pitch = BasicPitch(n_threads=n_threads)
        self.classifier = NoteClassifier(classifier_path or NOTE_CLASSES_FILE, n_threads=n_threads)
        self.anchor = bool(anchor)
        if not 0.0 <= anchor_phase < 1.0:
            raise ValueError(f"anchor_phase must be in [0, 1), got {anchor_phase}")
        self.anchor_phase = float(anchor_phase)
        self.song = None if song_context is None else SongContext(song_context, n_threads=n_threads)
        self.member_share = float(member_share)
        self.model_stems = tuple(model_stems)
        self.condition_network = condition_network
        self.blind_stems = tuple(blind_stems)
        self.network_share = dict(network_share)
        self.fusion = dict(fusion) if fusion else None
        self.remask = dict(remask) if remask is not None else None
        unknown = sorted(set(self.remask or {}) - {"drums", *self.classifier.classes, "other"})
        if unknown:  # a misspelt stem would silently keep power 1
            raise ValueError(
                f"remask: no stem {', '.join(unknown)} (stems: drums, {', '.join(self.classifier.classes)})"
            )
        self.shares = None if shares is None else tuple(float(x) for x in shares)
        if self.shares is not None and not (self.shares and all(0.0 < x <= 1.0 for x in self.shares)):
            raise ValueError(f"shares must be one or more numbers in (0, 1], got {shares}")
        self.sounding_threshold = (
            self.classifier.sounding_threshold if sounding_threshold is None else float(sounding_threshold)
        )

    def transcribe(self, audio: np.ndarray, sample_rate: int) -> Transcription:
        """Mono ``audio`` (n,) -> one part per class, named after it, on its stem channel
        (``instruments.stem_channel``), and the notes written per class."""
        return self.transcription(self.analyse(audio, sample_rate))

    def analyse(self, audio: np.ndarray, sample_rate: int) -> NoteAnalysis:
        """Mono ``audio`` (n,) -> basic-pitch's notes and the classifier's judgement of each (the sounding
        evidence refined by the file's other notes where the transcriber has a song model), the frames anchored to
        the music where ``anchor`` (see the module docstring)."""
        from bridge.transcribe import basic_pitch as bp
        from bridge.transcribe.anchor import pad_to, strongest_onset
        from bridge.transcribe.note_classes import PATCH

        x = np.asarray(audio, np.float32).reshape(-1)
        at = strongest_onset(x, sample_rate) if self.anchor else None
        # basic-pitch's windows and the classifier's frames each on the music's own grid: the strongest onset
        # `anchor_phase` of a frame into a frame, 40 frames into a window hop (55 into the window that starts 15
        # frames earlier: well inside the part of it that is kept)
        frame = PATCH["hop"] * sample_rate / PATCH["sample_rate"]  # = basic-pitch's frame, in input samples
        window = bp.WINDOW_HOP_SAMPLES * sample_rate / bp.SAMPLE_RATE
        pad_bp = pad_to(at, window, (40 + self.anchor_phase) * frame)
        pad_c = pad_to(at, frame, self.anchor_phase * frame)
        notes = self.pitch.transcribe(_padded(x, pad_bp), sample_rate, self.classifier.decoding)
        if pad_bp:  # back on the file's own time (a note wholly in the zeros in front, were there one, dropped)
            notes = notes - np.array([pad_bp / sample_rate, pad_bp / sample_rate, 0.0, 0.0])
            notes = notes[notes[:, 1] > 0.0]
            notes[:, 0] = np.maximum(notes[:, 0], 0.0)
        moved = notes
        if pad_c:
            moved = notes.copy()
            moved[:, :2] += pad_c / sample_rate
        sounding, onset, shift_s = self._classes(_padded(x, pad_c), sample_rate, moved)
        return NoteAnalysis(notes, sounding, onset, shift_s)

    def _classes(self, audio: np.ndarray, sample_rate: int, notes: np.ndarray) -> tuple[np.ndarray, ...]:
        """The classifier's ``(sounding, onset, shift_s)`` for ``notes``, ``sounding`` refined by the song model."""
        from bridge.transcribe.note_classes import log_map_db, note_patches

        patches = note_patches(log_map_db(audio, sample_rate), notes)  # cut once for both networks
        sounding, onset, shift_s = self.classifier.predict(audio, sample_rate, notes, patches=patches)
        if self.song is not None:  # the class evidence refined by the file's other notes
            sounding = self.song.refine(patches[0], notes, sounding, onset)
        return sounding, onset, shift_s

    def transcription(self, analysis: NoteAnalysis, member_share: float | None = None) -> Transcription:
        """The parts and written notes of ``analysis`` (see ``transcribe``), each note in the parts of the classes
        where it sounds with at least ``member_share`` of its best class's probability (None: ``self.member_share``);
        the written notes do not depend on the share."""
        notes, onset, shift_s = analysis.notes, analysis.onset, analysis.shift_s
        member = self.membership(notes, analysis.sounding, member_share)
        written = onset >= self.classifier.onset_thresholds
        moved = notes.copy()  # written notes start where the classifier puts the true onset
        moved[:, 0] = np.clip(notes[:, 0] + shift_s, 0.0, notes[:, 1] - 0.01)
        parts, per_class = [], {}
        classes = self.classifier.classes
        for k, name in enumerate(classes):
            program = STEM_PROGRAMS.get(name, OTHER_PROGRAM)
            ch = stem_channel(name, classes)
            parts.append(ScorePart(name, name, k + 1, ch, program, False, notes[member[:, k]]))
            per_class[name] = merge_repeated_onsets(moved[written[:, k]])
        return Transcription(parts, per_class)

    def membership(self, notes: np.ndarray, sounding: np.ndarray, member_share: float | None = None) -> np.ndarray:
        """(n, n_classes) bool: which class parts each of ``notes`` (n, 4) joins, from the classifier's
        ``sounding`` probabilities (n, n_classes) (see the module docstring; None: ``self.member_share``)."""
        share = self.member_share if member_share is None else float(member_share)
        best = sounding.max(axis=1, keepdims=True) if len(notes) else sounding
        return (sounding >= self.sounding_threshold) & (sounding >= share * best)

    def parts(self, audio: np.ndarray, sample_rate: int) -> list[ScorePart]:
        """``transcribe(audio, sample_rate).parts``."""
        return self.transcribe(audio, sample_rate).parts

    def transcribe_file(self, path: Path) -> tuple[Transcription, int]:
        """``transcribe`` an audio file (channels averaged), and its sample rate; ``InputError`` for a
        file that cannot be read (the same checks and messages as the separation's own reader)."""
        mono, sample_rate = _read_mono(path)
        return self.transcribe(mono, sample_rate), sample_rate

    def analyse_file(self, path: Path) -> tuple[NoteAnalysis, int]:
        """``analyse`` an audio file (channels averaged), and its sample rate (see ``transcribe_file``)."""
        mono, sample_rate = _read_mono(path)
        return self.analyse(mono, sample_rate), sample_rate


def _padded(x: np.ndarray, pad: int) -> np.ndarray:
    return np.concatenate([np.zeros(pad, np.float32), x]) if pad else x


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    """An audio file's channels averaged (n,), and its sample rate."""
    from bridge.audio_io import open_audio

    reader = open_audio(path)
    try:
        mono = np.concatenate([b.mean(axis=0) for b in reader.blocks(1 << 16)])
    finally:
        reader.close()
    return mono, reader.sample_rate


def score_of_parts(parts: Sequence[ScorePart], stems: Sequence[str]) -> list[np.ndarray]:
    """Notes (n, 4) per stem of ``stems``: each part's notes in the stem of its GM program."""
    per: list[list[np.ndarray]] = [[] for _ in stems]
    for p in parts:
        s = stem_for_program(p.program, p.is_drum)
        if s in stems:
            per[list(stems).index(s)].append(p.notes)
    out = []
    for chunks in per:
        a = np.concatenate(chunks) if chunks else np.zeros((0, 4))
        out.append(a[np.lexsort((a[:, 2], a[:, 0]))] if len(a) else a.reshape(0, 4))
    return out


__all__ = [
    "MEMBER_SHARE",
    "TRANSCRIBED_MODEL_STEMS",
    "TRANSCRIBED_NETWORK_SHARE",
    "TRANSCRIBED_REMASK",
    "TRANSCRIBED_SHARES",
    "NoteAnalysis",
    "Transcriber",
    "Transcription",
    "score_of_parts",
]
