"""A video as the annotation stages see it: its 1-fps frames as JPEG images, their features, and its clips."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..video import InvalidInputError
from .backends import ImageInput


@dataclass(frozen=True)
class Clip:
    index: int  # 0-based; prompts number clips from 1 ("Clip-1")
    frames: tuple[int, ...]  # 1-fps grid frames inside the clip
    start_s: float
    end_s: float


def split_into_clips(num_frames: int, duration_s: float, clip_seconds: int) -> list[Clip]:
    """Consecutive clips of `clip_seconds` seconds (the last one shorter) covering the 1-fps grid."""
    if clip_seconds < 1:
        raise InvalidInputError(f"clip length must be >= 1 second, got {clip_seconds}")
    clips = []
    for index, first in enumerate(range(0, num_frames, clip_seconds)):
        frames = tuple(range(first, min(first + clip_seconds, num_frames)))
        clips.append(Clip(index, frames, float(first), float(min(first + clip_seconds, duration_s))))
    return clips


@dataclass
class VideoAssets:
    path: str
    duration_s: float
    images: list[ImageInput]  # grid frame i (second [i, i + 1)) as a JPEG of at most `image_size` pixels a side
    features: np.ndarray  # [num_frames, D], L2-normalised, for Algorithm 1

    @property
    def num_frames(self) -> int:
        return len(self.images)

    def clips(self, clip_seconds: int) -> list[Clip]:
        return split_into_clips(self.num_frames, self.duration_s, clip_seconds)


def encode_jpeg(frame, quality: int) -> bytes:
    """A [3, H, W] uint8 tensor as JPEG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame.permute(1, 2, 0).contiguous().numpy()).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def load_video_assets(
    path: str | Path,
    image_size: int,
    jpeg_quality: int = 90,
    max_seconds: int = 1800,
    encoder=None,
    backend: str | None = None,
) -> VideoAssets:
    """Decode every 1-fps frame of `path` at `image_size` pixels on the longer side.

    `encoder` is a `videoitg.selection.PretrainedEncoder` (image-encoder features for Algorithm 1); without one the
    raw-pixel features of `videoitg.selection.pixel_features` are used. A video longer than `max_seconds` is refused
    rather than subsampled: labels must cover every second.
    """
    from ..selection import pixel_features
    from ..video import load_video

    sampled = load_video(path, sample_fps=1.0, max_frames=max_seconds + 1, backend=backend, max_side=image_size)
    num_frames = len(sampled.grid_indices)
    if sampled.grid_indices[-1] != num_frames - 1:
        raise InvalidInputError(
            f"{path}: the video lasts {sampled.metadata.duration_s:.0f} s, more than --max-video-seconds "
            f"({max_seconds})"
        )
    features = encoder.image_features(sampled.frames) if encoder is not None else pixel_features(sampled.frames)
    images = [ImageInput(encode_jpeg(frame, jpeg_quality)) for frame in sampled.frames]
    duration = sampled.metadata.duration_s
    # The grid has ceil(duration) frames; a duration of 0 (one still frame) still has frame 0.
    duration = duration if duration > 0 else float(num_frames)
    return VideoAssets(str(path), float(duration), images, np.asarray(features, dtype=np.float64))


def grid_length(duration_s: float) -> int:
    """Number of 1-fps grid frames of a video lasting `duration_s` seconds."""
    return max(1, math.ceil(duration_s - 1e-6))
