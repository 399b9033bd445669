"""Transcribe, then separate: blind class stems from a transcription turned into score parts.

Without a score, the class network alone separates poorly on timbres it was not trained on,
while the parts decomposition (``bridge.parts``) separates well when it knows which notes each
part plays. Offline, ``Transcriber`` builds such a score from the audio itself: basic-pitch's
shipped network transcribes every pitched note (instrument-blind, ``basic_pitch``), a small
classifier says which class played each one (``note_classes``), and each class becomes a part.
A note whose second-best class is close to its best (probability at least ``member_share`` of
the best) goes into both parts: the decomposition's per-part timbre then decides between them,
which costs far less than a wrong hard choice. ``bridge.parts.classes.ScoredClasses`` separates
with these parts, taking ``model_stems`` from the network (conditioned on the same notes, so
its notes and stems follow the transcription; ``blind_stems`` from a second run without it). The
notes written are the conditioned network's.

Not causal (both networks see whole seconds of audio): offline files only; the live bridge keeps
the network alone.

Public API
----------
- ``Transcriber(n_threads=1, member_share=MEMBER_SHARE, model_stems=TRANSCRIBED_MODEL_STEMS,
  classifier_path=None, condition_network=True, blind_stems=TRANSCRIBED_BLIND_STEMS)``:
  ``parts(audio, sample_rate) -> list[ScorePart]`` (one per class, mono audio (n,));
  ``parts_of_file(path) -> (parts, sample_rate)``.
- ``score_of_parts(parts, stems) -> list[np.ndarray]``: the parts' notes per class stem, as
  ``bridge.score.read_score_file`` gives them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bridge.instruments import stem_channel, stem_for_program
from bridge.midi_io import STEM_PROGRAMS
from bridge.parts.score_parts import ScorePart

MEMBER_SHARE = 0.3
OTHER_PROGRAM = 80  # GM "Lead 1 (square)": counted in `other`
# measured on the selection set (seed 9002, 24 tracks, bench figures in BENCHMARKS.md): the parts
# beat the network on bass (+2.90 against -1.62 dB median SI-SDRi) but not yet on the other
# pitched classes, whose notes the classifier confuses more often (recall 0.45-0.61 against 0.90)
TRANSCRIBED_MODEL_STEMS = ("drums", "piano", "guitar", "strings")
TRANSCRIBED_BLIND_STEMS = ("drums",)  # the transcription has no drum part: drums from the network without it


class Transcriber:
    """basic-pitch notes, classified per note, as one score part per class (see the module docstring)."""

    def __init__(
        self,
        n_threads: int = 1,
        member_share: float = MEMBER_SHARE,
        model_stems: Sequence[str] = TRANSCRIBED_MODEL_STEMS,
        classifier_path: Path | None = None,
        condition_network: bool = True,
        blind_stems: Sequence[str] = TRANSCRIBED_BLIND_STEMS,
    ) -> None:
        from bridge.transcribe.basic_pitch import BasicPitch
        from bridge.transcribe.note_classes import NOTE_CLASSES_FILE, NoteClassifier

        self.pitch = BasicPitch(n_threads=n_threads)
        self.classifier = NoteClassifier(classifier_path or NOTE_CLASSES_FILE, n_threads=n_threads)
        self.member_share = float(member_share)
        self.model_stems = tuple(model_stems)
        self.condition_network = condition_network
        self.blind_stems = tuple(blind_stems)

    def parts(self, audio: np.ndarray, sample_rate: int) -> list[ScorePart]:
        """One ``ScorePart`` per class, named after it, on its stem channel (``instruments.stem_channel``)."""
        notes = self.pitch.transcribe(audio, sample_rate)
        prob = self.classifier.probabilities(audio, sample_rate, notes)
        member = prob >= self.member_share * prob.max(axis=1, keepdims=True) if len(notes) else prob > 0
        out = []
        classes = self.classifier.classes
        for k, name in enumerate(classes):
            program = STEM_PROGRAMS.get(name, OTHER_PROGRAM)
            ch = stem_channel(name, classes)
            out.append(ScorePart(name, name, k + 1, ch, program, False, notes[member[:, k]]))
        return out

    def parts_of_file(self, path: Path) -> tuple[list[ScorePart], int]:
        """``parts`` of an audio file (channels averaged), and its sample rate; ``InputError`` for a
        file that cannot be read (the same checks and messages as the separation's own reader)."""
        from bridge.audio_io import open_audio

        reader = open_audio(path)
        try:
            mono = np.concatenate([b.mean(axis=0) for b in reader.blocks(1 << 16)])
        finally:
            reader.close()
        return self.parts(mono, reader.sample_rate), reader.sample_rate


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


__all__ = ["MEMBER_SHARE", "TRANSCRIBED_MODEL_STEMS", "Transcriber", "score_of_parts"]
