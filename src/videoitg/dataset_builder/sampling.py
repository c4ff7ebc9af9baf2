"""The per-type frame sampling rules of VidThinker (section 3.2 of the paper): which 1-fps frames are labelled 1.

* `semantic` — Algorithm 1 keyframes (bidirectional similarity, thresholds 0.90 / 0.97,
  `videoitg.selection.keyframe_indices`) over the frames the MLLM judged relevant inside the retrieved clips:
  diverse frames that carry the visual clues.
* `motion` — every 1-fps frame of the retrieved clips: the progression of the motion.
* `semantic_motion` — the hybrid: every frame of the motion-relevant stretch of each retrieved clip (from its first
  to its last frame judged relevant) plus the Algorithm 1 keyframes of the retrieved clips.
* `non_clue` (vague or whole-video semantic questions, no clue in any clip) and existence questions answered
  "no" — a small diverse set over the whole video: Algorithm 1 keyframes brought to exactly `diverse_frames` frames
  (`videoitg.selection.keyframes_to_k`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..selection import keyframe_indices, keyframes_to_k
from .media import Clip

INSTRUCTION_TYPES = ("semantic", "motion", "semantic_motion", "non_clue")


@dataclass(frozen=True)
class Sampled:
    frames: list[int]  # positive grid frames, sorted
    rule: str  # "keyframes" | "all_frames" | "hybrid" | "diverse"
    note: str = ""


def keyframes_among(features: np.ndarray, candidates: Sequence[int]) -> list[int]:
    """Algorithm 1 over the candidate frames in temporal order; returns grid frames."""
    candidates = sorted(set(candidates))
    if not candidates:
        return []
    chosen = keyframe_indices(features[candidates])
    return [candidates[position] for position in chosen]


def diverse_frames(features: np.ndarray, count: int) -> list[int]:
    """`count` frames (all when the video is shorter) spread over the distinct content of the whole video."""
    return sorted(keyframes_to_k(features, keyframe_indices(features), count))


def frames_of(clips: Sequence[Clip]) -> list[int]:
    return sorted({frame for clip in clips for frame in clip.frames})


def sample_frames(
    instruction_type: str,
    features: np.ndarray,
    retrieved: Sequence[Clip],
    relevant_frames: Sequence[int] | None,
    diverse_count: int,
) -> Sampled:
    """The positive frames of one question. `relevant_frames` are the frames judged "yes" (None for the rules that
    need no judgement: motion, non_clue)."""
    if instruction_type == "non_clue" or not retrieved:
        return Sampled(diverse_frames(features, diverse_count), "diverse")
    clip_frames = frames_of(retrieved)
    if instruction_type == "motion":
        return Sampled(clip_frames, "all_frames")
    relevant = sorted(set(relevant_frames or ()) & set(clip_frames))
    if instruction_type == "semantic":
        if not relevant:
            return Sampled(keyframes_among(features, clip_frames), "keyframes",
                           "no frame was judged relevant: keyframes of the retrieved clips")  # fmt: skip
        return Sampled(keyframes_among(features, relevant), "keyframes")
    if instruction_type == "semantic_motion":
        stretch = set()
        for clip in retrieved:
            inside = [frame for frame in relevant if frame in clip.frames]
            if inside:
                stretch.update(range(inside[0], inside[-1] + 1))
        note = "" if relevant else "no frame was judged relevant: keyframes of the retrieved clips only"
        return Sampled(sorted(stretch | set(keyframes_among(features, clip_frames))), "hybrid", note)
    raise ValueError(f"unknown instruction type {instruction_type!r}; expected one of {INSTRUCTION_TYPES}")


def labels_of(frames: Sequence[int], num_frames: int) -> list[int]:
    labels = [0] * num_frames
    for frame in frames:
        labels[frame] = 1
    return labels


def clip_segments(clips: Sequence[Clip]) -> list[list[float]]:
    """`[start_s, end_s]` of the retrieved clips, adjacent clips merged into one segment."""
    segments: list[list[float]] = []
    for clip in sorted(clips, key=lambda clip: clip.index):
        if segments and abs(segments[-1][1] - clip.start_s) < 1e-9:
            segments[-1][1] = clip.end_s
        else:
            segments.append([clip.start_s, clip.end_s])
    return segments
