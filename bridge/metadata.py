"""Model metadata: the schema every stembridge ONNX model carries, and its validator.

Public API
----------
- ``SCHEMA_VERSION``: the newest schema this bridge understands.
- ``ModelMetadata``: the validated, typed view of a model's metadata.
- ``validate_metadata(raw) -> ModelMetadata``: check a ``{key: str}`` mapping (as read from
  ONNX ``metadata_props`` or a sidecar JSON) and raise ``ModelError`` naming the first
  missing or invalid key.
- ``metadata_to_props(meta_dict) -> dict[str, str]``: encode a plain dict for ``metadata_props``.

Every value in ``metadata_props`` is a string; structured values (lists, dicts, numbers)
are JSON-encoded. The tensor contract that goes with this metadata:

- inputs: ``spec`` (batch, n_frames, n_bins) linear magnitude of the channel-mean STFT;
  ``score`` (batch, n_frames, n_stems, n_keys) piano roll in {0, 1}, zeros when absent;
  ``state_in`` (batch, state_size) recurrent state, zeros at reset.
- outputs: ``masks`` (batch, n_frames, n_stems, n_bins) in [0, 1], summing to <= 1 over stems;
  ``note_frame``, ``note_onset`` (batch, n_frames, n_stems, n_keys) probabilities;
  ``activity`` (batch, n_frames, n_stems) probabilities; ``state_out`` (batch, state_size).

``stems`` lists the predicted stems only; the bridge adds ``other`` (delayed input minus the
sum of the predicted stems). Frame ``k`` of a stream covers input samples
``[(k + 1) * hop - n_fft, (k + 1) * hop)`` (samples before 0 are zeros); its time stamp is
the frame centre. Key ``j`` is MIDI note ``key_low + j``; ``active_keys`` says per stem which
MIDI notes that stem can emit (drums: General MIDI drum classes).

``decode`` holds the note-decoding settings (see ``bridge.notes``): ``onset_threshold`` and
``frame_threshold`` (a probability in (0, 1) per stem) and ``min_note_ms``, all required;
optional ``frame_onset_threshold`` (per stem, in [0, 1); 0 or absent: off) lets a pitched
note also start where its frame probability rises across that value with no onset peak.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import ModelError

SCHEMA_VERSION = 1
OTHER_STEM = "other"

REQUIRED_KEYS = (
    "schema_version",
    "name",
    "version",
    "sample_rate",
    "n_fft",
    "hop",
    "window",
    "stems",
    "key_low",
    "n_keys",
    "active_keys",
    "lookahead_frames",
    "latency_samples",
    "state_size",
    "score_conditioned",
    "decode",
)
OPTIONAL_KEYS = ("training", "metrics", "git_commit", "sha256", "description", "license")
SUPPORTED_WINDOWS = ("hann",)
DECODE_KEYS = ("onset_threshold", "frame_threshold", "min_note_ms")


@dataclass(frozen=True)
class ModelMetadata:
    """Validated metadata of one model (see the module docstring for the contract)."""

    schema_version: int
    name: str
    version: str
    sample_rate: int
    n_fft: int
    hop: int
    window: str
    stems: tuple[str, ...]
    key_low: int
    n_keys: int
    active_keys: dict[str, tuple[int, ...]]
    lookahead_frames: int
    latency_samples: int
    state_size: int
    score_conditioned: bool
    onset_threshold: dict[str, float]
    frame_threshold: dict[str, float]
    min_note_ms: float
    extra: dict[str, Any]
    frame_onset_threshold: dict[str, float] = field(default_factory=dict)  # stem -> p; 0 / absent: off

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def n_stems(self) -> int:
        return len(self.stems)

    @property
    def all_stems(self) -> tuple[str, ...]:
        """Predicted stems followed by ``other``: the order of every stem output."""
        return (*self.stems, OTHER_STEM)

    def as_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict in the form ``metadata_to_props`` encodes."""
        out: dict[str, Any] = {
            "schema_version": self.schema_version,
            "name": self.name,
            "version": self.version,
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop": self.hop,
            "window": self.window,
            "stems": list(self.stems),
            "key_low": self.key_low,
            "n_keys": self.n_keys,
            "active_keys": {k: list(v) for k, v in self.active_keys.items()},
            "lookahead_frames": self.lookahead_frames,
            "latency_samples": self.latency_samples,
            "state_size": self.state_size,
            "score_conditioned": self.score_conditioned,
            "decode": {
                "onset_threshold": dict(self.onset_threshold),
                "frame_threshold": dict(self.frame_threshold),
                "min_note_ms": self.min_note_ms,
            },
        }
        if any(self.frame_onset_threshold.values()):
            out["decode"]["frame_onset_threshold"] = dict(self.frame_onset_threshold)
        out.update(self.extra)
        return out


def expected_latency_samples(n_fft: int, hop: int, lookahead_frames: int) -> int:
    """Algorithmic latency of the streaming STFT / overlap-add at the model rate, in samples.

    A sample is final once the last frame that covers it has been synthesised: that frame
    ends ``n_fft - hop`` samples later, plus ``lookahead_frames`` more hops.
    """
    return n_fft - hop + lookahead_frames * hop


def metadata_to_props(meta: Mapping[str, Any]) -> dict[str, str]:
    """Encode a plain metadata dict as ONNX ``metadata_props`` strings (str stays str)."""
    return {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}


def _decode(key: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if key in ("name", "version", "window", "git_commit", "sha256", "description", "license"):
        return value
    try:
        return json.loads(value)
    except (json.JSONDecodeError, RecursionError):  # a crafted deep nesting must not escape
        if key not in REQUIRED_KEYS:
            return value  # free-form extra keys may be plain strings
        raise ModelError(f"model metadata key '{key}' is not valid JSON: {value[:60]!r}") from None


def _int(raw: Mapping[str, Any], key: str, low: int, high: int) -> int:
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, int) or not (low <= v <= high):
        raise ModelError(f"model metadata key '{key}' must be an integer in [{low}, {high}], got {v!r}")
    return v


def _str(raw: Mapping[str, Any], key: str) -> str:
    v = raw[key]
    if not isinstance(v, str) or not v.strip():
        raise ModelError(f"model metadata key '{key}' must be a non-empty string, got {v!r}")
    return v


def _per_stem_float(d: Any, key: str, stems: tuple[str, ...], allow_zero: bool = False) -> dict[str, float]:
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        d = {s: float(d) for s in stems}
    if not isinstance(d, dict) or set(d) != set(stems):
        raise ModelError(f"model metadata 'decode.{key}' must give a number for each stem {list(stems)}")
    out = {}
    for s in stems:
        v = d[s]
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        if not number or not ((v >= 0.0 if allow_zero else v > 0.0) and v < 1.0):
            span = "[0, 1)" if allow_zero else "(0, 1)"
            raise ModelError(f"model metadata 'decode.{key}.{s}' must be a probability in {span}, got {v!r}")
        out[s] = float(v)
    return out


def validate_metadata(raw_in: Mapping[str, Any]) -> ModelMetadata:
    """Validate metadata read from a model; raise ``ModelError`` naming what is wrong.

    ``raw_in`` maps keys to JSON strings (ONNX ``metadata_props``) or to decoded values
    (a sidecar JSON). Unknown keys are kept in ``extra``.
    """
    if not isinstance(raw_in, Mapping):
        raise ModelError("model metadata must be a mapping of keys to values")
    missing = [k for k in REQUIRED_KEYS if k not in raw_in]
    if missing:
        raise ModelError(f"model metadata is missing required key(s): {', '.join(missing)}")
    raw = {k: _decode(k, v) for k, v in raw_in.items()}

    schema_version = _int(raw, "schema_version", 1, 10**6)
    if schema_version > SCHEMA_VERSION:
        raise ModelError(
            f"model metadata schema_version {schema_version} is newer than this bridge supports "
            f"({SCHEMA_VERSION}); upgrade stembridge"
        )
    name = _str(raw, "name")
    version = _str(raw, "version")
    sample_rate = _int(raw, "sample_rate", 8000, 192000)
    n_fft = _int(raw, "n_fft", 16, 65536)
    if n_fft % 2:
        raise ModelError(f"model metadata key 'n_fft' must be even, got {n_fft}")
    hop = _int(raw, "hop", 1, n_fft)
    if n_fft % hop or n_fft // hop < 2:
        raise ModelError(f"model metadata keys 'n_fft'={n_fft} and 'hop'={hop}: n_fft must be a multiple >= 2 of hop")
    window = _str(raw, "window")
    if window not in SUPPORTED_WINDOWS:
        raise ModelError(f"model metadata key 'window' must be one of {SUPPORTED_WINDOWS}, got {window!r}")

    stems_v = raw["stems"]
    if (
        not isinstance(stems_v, list)
        or not stems_v
        or not all(isinstance(s, str) and s.isidentifier() for s in stems_v)
        or len(set(stems_v)) != len(stems_v)
        or OTHER_STEM in stems_v
    ):
        raise ModelError(
            f"model metadata key 'stems' must be a non-empty list of distinct names "
            f"without '{OTHER_STEM}', got {stems_v!r}"
        )
    stems = tuple(stems_v)
    key_low = _int(raw, "key_low", 0, 127)
    n_keys = _int(raw, "n_keys", 1, 128 - key_low)

    ak = raw["active_keys"]
    if not isinstance(ak, dict) or set(ak) != set(stems):
        raise ModelError(f"model metadata key 'active_keys' must map every stem {list(stems)} to a list of MIDI notes")
    active_keys: dict[str, tuple[int, ...]] = {}
    for s in stems:
        notes = ak[s]
        if not isinstance(notes, list) or not all(
            isinstance(n, int) and not isinstance(n, bool) and key_low <= n < key_low + n_keys for n in notes
        ):
            raise ModelError(
                f"model metadata 'active_keys.{s}' must list MIDI notes in [{key_low}, {key_low + n_keys - 1}]"
            )
        active_keys[s] = tuple(sorted(set(notes)))

    lookahead_frames = _int(raw, "lookahead_frames", 0, 1000)
    latency_samples = _int(raw, "latency_samples", 0, 10**7)
    want = expected_latency_samples(n_fft, hop, lookahead_frames)
    if latency_samples != want:
        raise ModelError(
            f"model metadata key 'latency_samples' is {latency_samples}, but n_fft={n_fft}, hop={hop}, "
            f"lookahead_frames={lookahead_frames} give {want}"
        )
    state_size = _int(raw, "state_size", 0, 10**8)
    sc = raw["score_conditioned"]
    if not isinstance(sc, bool):
        raise ModelError(f"model metadata key 'score_conditioned' must be true or false, got {sc!r}")

    dec = raw["decode"]
    if not isinstance(dec, dict) or any(k not in dec for k in DECODE_KEYS):
        raise ModelError(f"model metadata key 'decode' must be an object with {', '.join(DECODE_KEYS)}")
    onset_threshold = _per_stem_float(dec["onset_threshold"], "onset_threshold", stems)
    frame_threshold = _per_stem_float(dec["frame_threshold"], "frame_threshold", stems)
    frame_onset_threshold = {}
    if dec.get("frame_onset_threshold") is not None:
        frame_onset_threshold = _per_stem_float(dec["frame_onset_threshold"], "frame_onset_threshold", stems, True)
    mn = dec["min_note_ms"]
    if isinstance(mn, bool) or not isinstance(mn, (int, float)) or not (0 <= mn <= 10000):
        raise ModelError(f"model metadata 'decode.min_note_ms' must be a number in [0, 10000], got {mn!r}")

    extra = {k: v for k, v in raw.items() if k not in REQUIRED_KEYS}
    return ModelMetadata(
        schema_version=schema_version,
        name=name,
        version=version,
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop=hop,
        window=window,
        stems=stems,
        key_low=key_low,
        n_keys=n_keys,
        active_keys=active_keys,
        lookahead_frames=lookahead_frames,
        latency_samples=latency_samples,
        state_size=state_size,
        score_conditioned=sc,
        onset_threshold=onset_threshold,
        frame_threshold=frame_threshold,
        min_note_ms=float(mn),
        extra=extra,
        frame_onset_threshold=frame_onset_threshold,
    )
