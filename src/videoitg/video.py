"""Video decoding and fixed-rate frame sampling.

VideoITG labels live on a 1-fps grid, so sampling is defined by *time*, not by frame index: the frame returned for
grid time `t` is the frame on screen at `t` (the last frame whose presentation time is <= `t`), measured from the
first frame of the video stream. Three decoders are supported (torchcodec, decord, PyAV); all of them return the
same frames.

This file is also shipped as a remote-code file next to `processing_videoitg.py` in exported model folders, so its
top-level imports are limited to the standard library and torch; the decoders (and numpy, which they need) are
imported inside functions.
"""

from __future__ import annotations

import functools
import math
import os
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import torch


BACKENDS = ("torchcodec", "decord", "pyav")
_INSTALL_HINTS = {"torchcodec": "pip install torchcodec", "decord": "pip install decord", "pyav": "pip install av"}
# Frames handed over by a backend per call: bounds memory held by the decoder and lets the progress bar move.
_DECODE_CHUNK = 32
# Slack when comparing a grid time with a frame's start time: decord reports float32 seconds.
_TIME_EPS = 1e-4


class InvalidInputError(ValueError):
    """Bad user input (a file, an instruction, an option). The CLI prints its message on one line and exits 2."""


class VideoDecodeError(InvalidInputError):
    """A video file that cannot be decoded. The message is `"<path>: <reason>"`."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):
        # Rebuild from (path, reason) so the error survives pickling (DataLoader workers, multiprocessing).
        return type(self), (self.path, self.reason)


class BackendUnavailableError(InvalidInputError):
    """A known video backend that is not installed or cannot load (e.g. torchcodec without FFmpeg libraries)."""


@dataclass
class VideoMetadata:
    path: str
    duration_s: float  # from the first frame's start to the last frame's end
    fps: float  # average frame rate
    num_frames: int
    width: int
    height: int
    backend: str
    codec: str | None = None


@dataclass
class SampledFrames:
    frames: torch.Tensor  # [T, 3, H, W] uint8 RGB
    timestamps: list[float]  # seconds from the start of the video: the grid time each frame stands for
    grid_indices: list[int]  # position of each frame on the full `sample_fps` grid (for label lookup)
    metadata: VideoMetadata


@functools.cache
def _backend_loads(backend: str) -> bool:
    try:
        if backend == "torchcodec":
            # Importing the decoders loads torchcodec's FFmpeg libraries, which fails when they are missing.
            from torchcodec.decoders import VideoDecoder  # noqa: F401
        elif backend == "decord":
            import decord  # noqa: F401
        else:
            import av  # noqa: F401
    except Exception:
        return False
    return True


def available_backends() -> list[str]:
    """Backends that are installed and load, in order of preference."""
    return [backend for backend in BACKENDS if _backend_loads(backend)]


def default_backend() -> str:
    available = available_backends()
    if not available:
        raise BackendUnavailableError(
            "no video decoder is installed: install one of torchcodec, decord or av (pip install av)"
        )
    return available[0]


def _resolve_backend(backend: str | None) -> str:
    if backend is None:
        return default_backend()
    if backend not in BACKENDS:
        raise InvalidInputError(f"unknown video backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if backend not in available_backends():
        raise BackendUnavailableError(
            f"video backend {backend!r} is not installed or cannot load ({_INSTALL_HINTS[backend]})"
        )
    return backend


def sample_grid(duration_s: float, sample_fps: float = 1.0, max_frames: int = 512) -> tuple[list[float], list[int]]:
    """Times `i / sample_fps` covering the video; at most `max_frames` of them, spread over the whole grid.

    Returns `(timestamps, grid_indices)`: `grid_indices[j]` is the position of `timestamps[j]` on the full grid.
    """
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s >= 0):
        raise InvalidInputError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    _check_sampling(sample_fps, max_frames)
    # The tolerance keeps a 10.000001 s video from getting an 11th grid point for float noise.
    grid_length = max(1, math.ceil(duration_s * sample_fps - 1e-6))
    if grid_length <= max_frames:
        grid_indices = list(range(grid_length))
    elif max_frames == 1:
        grid_indices = [0]
    else:
        # Round-half-up in integers: first and last grid points included, strictly increasing since
        # (grid_length - 1) / (max_frames - 1) > 1.
        span, steps = grid_length - 1, max_frames - 1
        grid_indices = [(i * span * 2 + steps) // (steps * 2) for i in range(max_frames)]
    return [index / sample_fps for index in grid_indices], grid_indices


def _check_sampling(sample_fps: float, max_frames: int) -> None:
    if not (isinstance(sample_fps, (int, float)) and math.isfinite(sample_fps) and sample_fps > 0):
        raise InvalidInputError(f"sample_fps must be a number > 0, got {sample_fps!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1:
        raise InvalidInputError(f"max_frames must be an integer >= 1, got {max_frames!r}")


def _check_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise VideoDecodeError(path, "no such file")
    if path.is_dir():
        raise VideoDecodeError(path, "is a directory, not a video file")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoDecodeError(path, "empty file")
    if not os.access(path, os.R_OK):
        raise VideoDecodeError(path, "permission denied")
    return path


def _ffmpeg_reason(error: Exception) -> str:
    # PyAV messages look like "[Errno 1094995529] Invalid data found when processing input: 'file.mp4'".
    message = getattr(error, "strerror", None) or str(error)
    return " ".join(message.split()) or type(error).__name__


def _validate_container(path: Path) -> None:
    """Open `path` with PyAV and decode its first video frame.

    decord and torchcodec can crash or hang on garbage; PyAV fails with clean exceptions, so every file passes
    here before another backend sees it. Without PyAV installed the other backends' own errors are relied on.
    """
    if not _backend_loads("pyav"):
        return
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream in the file")
            stream = container.streams.video[0]
            for _ in container.decode(stream):
                return
    except VideoDecodeError:
        raise
    except Exception as error:
        raise VideoDecodeError(path, f"not a readable video ({_ffmpeg_reason(error)})") from error
    raise VideoDecodeError(path, "the video stream has no frames")


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) after fitting the long side into `max_side`, aspect ratio kept."""
    if max_side is None or max(width, height) <= max_side:
        return height, width
    scale = max_side / max(width, height)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _last_start_at_or_before(starts: list[float], time_s: float) -> int:
    """Index of the frame on screen at `time_s`, given the sorted start times of all frames."""
    return max(0, bisect_right(starts, time_s + _TIME_EPS) - 1)


class _ProgressBar:
    """tqdm when it is installed and wanted, otherwise silent."""

    def __init__(self, total: int, enabled: bool, description: str):
        self._bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                return
            self._bar = tqdm(total=total, desc=description, unit="frame")

    def update(self, count: int) -> None:
        if self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# ---------------------------------------------------------------------------------------------------------------
# Backends. Each one offers `open` (-> reader with .metadata and .begin_s) and `reader.read(times_s, out, progress)`
# which fills `out` ([T, 3, h, w] uint8) with the frames on screen at the absolute times `times_s`.
# ---------------------------------------------------------------------------------------------------------------


class _TorchCodecReader:
    def __init__(self, path: Path, output_size: tuple[int, int] | None):
        from torchcodec.decoders import VideoDecoder

        transforms = None
        if output_size is not None:
            from torchcodec.transforms import Resize

            transforms = [Resize(output_size)]
        # "exact" scans the file once so that frame times are the real ones, not guessed from the header.
        self._decoder = VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=0, transforms=transforms)
        info = self._decoder.metadata
        self.begin_s = float(info.begin_stream_seconds)
        self._end_s = float(info.end_stream_seconds)
        self.metadata = VideoMetadata(
            path=str(path), duration_s=self._end_s - self.begin_s, fps=float(info.average_fps or 0.0),
            num_frames=int(info.num_frames), width=int(info.width), height=int(info.height),
            backend="torchcodec", codec=info.codec,
        )  # fmt: skip

    def read(self, times_s: list[float], out: torch.Tensor, progress: _ProgressBar) -> None:
        # torchcodec refuses times at or past the end of the stream.
        last_s = max(self.begin_s, self._end_s - 1e-6)
        for start in range(0, len(times_s), _DECODE_CHUNK):
            chunk = [min(time_s, last_s) for time_s in times_s[start : start + _DECODE_CHUNK]]
            out[start : start + len(chunk)] = self._decoder.get_frames_played_at(chunk).data
            progress.update(len(chunk))


class _DecordReader:
    def __init__(self, path: Path, output_size: tuple[int, int] | None):
        import decord

        height, width = output_size if output_size is not None else (-1, -1)
        self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height)
        num_frames = len(self._reader)
        if num_frames == 0:
            raise VideoDecodeError(path, "the video stream has no frames")
        # [num_frames, 2] (start, end) seconds, in presentation order.
        spans = self._reader.get_frame_timestamp(list(range(num_frames)))
        self._starts = [float(span[0]) for span in spans]
        self.begin_s = self._starts[0]
        first = self._reader[0].shape if output_size is None else None
        source_height, source_width = first[:2] if first is not None else self._source_size(path)
        self.metadata = VideoMetadata(
            path=str(path), duration_s=float(spans[-1][1]) - self.begin_s, fps=float(self._reader.get_avg_fps()),
            num_frames=num_frames, width=int(source_width), height=int(source_height), backend="decord",
        )  # fmt: skip

    @staticmethod
    def _source_size(path: Path) -> tuple[int, int]:
        # The reader was opened resized; a second, unresized reader tells the stored size without decoding.
        import decord

        height, width = decord.VideoReader(str(path), ctx=decord.cpu(0))[0].shape[:2]
        return height, width

    def read(self, times_s: list[float], out: torch.Tensor, progress: _ProgressBar) -> None:
        indices = [_last_start_at_or_before(self._starts, time_s) for time_s in times_s]
        for start in range(0, len(indices), _DECODE_CHUNK):
            chunk = indices[start : start + _DECODE_CHUNK]
            batch = torch.from_numpy(self._reader.get_batch(chunk).asnumpy())
            out[start : start + len(chunk)] = batch.permute(0, 3, 1, 2)
            progress.update(len(chunk))
