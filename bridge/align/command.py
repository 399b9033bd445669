"""The command-line side of alignment: ``stembridge align`` and ``separate --align``.

- ``cmd_align(args)``: ``MIX SCORE -o OUT.mid [--plot FILE.png]``; prints the confidence and
  the time taken; an unreliable alignment (confidence below ``MIN_CONFIDENCE``) writes no MIDI
  file (the plot still, when asked for) and ends with one ``InputError`` line (exit 2).
- ``separate_aligned(args, separate)``: for each input, align ``args.score`` to it, write
  ``OUT/<track>/aligned.mid`` and run ``separate`` (the plain ``cmd_separate``) on that input
  with the aligned score; when the alignment is unreliable, one warning line and blind class
  stems (the network without a score) for that input, exit status unaffected.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import InputError

if TYPE_CHECKING:
    from bridge.align.core import Alignment
    from bridge.parts.score_parts import ScorePart


def _align(mix: Path, score: Path) -> tuple[Alignment, list[ScorePart]]:
    from bridge.align.core import align_file
    from bridge.parts.score_parts import read_parts

    parts = read_parts(score)
    return align_file(mix, parts), parts


def cmd_align(args: argparse.Namespace) -> int:
    from bridge.align.core import MIN_CONFIDENCE
    from bridge.align.midi import write_aligned_midi

    if not args.score.is_file():
        raise InputError(f"{args.score}: no such score file")
    alignment, _ = _align(args.mix, args.score)
    if args.plot is not None:
        from bridge.align.plot import plot_alignment

        plot_alignment(alignment, args.plot, f"{args.mix.name} <- {args.score.name}")
    if not alignment.reliable:
        raise InputError(
            f"the score does not match the recording (alignment confidence {alignment.confidence:.2f} < "
            f"{MIN_CONFIDENCE}); nothing written"
        )
    write_aligned_midi(args.score, alignment.warp, args.out)
    if not args.quiet:
        print(
            f"{args.out}: {args.score.name} aligned to {args.mix.name} (confidence {alignment.confidence:.2f}, "
            f"{alignment.wall_s:.1f} s)"
        )
        if args.plot is not None:
            print(f"  plot: {args.plot}")
    return 0


def separate_aligned(args: argparse.Namespace, separate: Callable[[argparse.Namespace], int]) -> int:
    """``separate --align`` (see the module docstring)."""
    from bridge.align.midi import write_aligned_midi

    if args.score is None:
        raise InputError("--align needs --score SCORE.mid (the score to align)")
    failed = 0
    for path in args.inputs:
        one = copy.copy(args)
        one.inputs, one.align = [path], False
        try:
            alignment, _ = _align(path, args.score)
        except InputError as e:
            print(f"stembridge: error: {e}", file=sys.stderr)
            failed += 1
            continue
        if alignment.reliable:
            aligned = args.out / path.stem / "aligned.mid"
            write_aligned_midi(args.score, alignment.warp, aligned)
            one.score = aligned
            if not args.quiet:
                print(f"{path}: score aligned (confidence {alignment.confidence:.2f}) -> {aligned}")
        else:
            print(
                f"stembridge: warning: {path}: the score does not match the recording (alignment confidence "
                f"{alignment.confidence:.2f}); blind class stems instead",
                file=sys.stderr,
            )
            (args.out / path.stem / "aligned.mid").unlink(missing_ok=True)  # an earlier run's
            one.score, one.parts = None, False
        failed += separate(one) != 0
    return 2 if failed else 0
