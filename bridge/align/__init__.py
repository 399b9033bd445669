"""Align a score that was not played to a click with a recording of it (offline).

Chroma and decaying chroma-onset features of the recording and of the score (synthesised from
its notes), a multiresolution DTW between them, and every note's onset and offset warped
through the path. ``bridge`` never imports torch; this package needs numpy and scipy only
(matplotlib for the plot).

Modules
-------
- ``features``: ``audio_features``, ``score_features``, ``Features`` (20 ms frames).
- ``dtw``: ``mrdtw`` (multiresolution banded DTW in numpy).
- ``core``: ``align_notes``, ``align_file``, ``Alignment`` (the warp map and its confidence),
  ``warp_parts``, ``MIN_CONFIDENCE``.
- ``midi``: ``write_aligned_midi`` (the score file with every event moved, tempo map replaced).
- ``plot``: ``plot_alignment`` (the path over the two feature matrices).
- ``command``: ``stembridge align`` and ``separate --align``.
- ``follow``: ``ScoreFollower``, an on-line follower for live input (a particle filter over
  score position and tempo; it drives ``bridge.parts.following.FollowedParts``,
  ``stembridge run --follow``).
"""
