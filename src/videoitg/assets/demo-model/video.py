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
import numbers
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
# Slack when comparing a grid time with a frame's start time, so that a frame starting exactly at a grid time is
# the one shown there whatever the float rounding (decord reports float32 seconds).
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
    width: int  # of the frames as a player shows them (display rotation applied), before any `max_side` resize
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
    if not (_is_number(duration_s) and math.isfinite(duration_s) and duration_s >= 0):
        raise InvalidInputError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    _check_sampling(sample_fps, max_frames)
    duration_s, sample_fps, max_frames = float(duration_s), float(sample_fps), int(max_frames)
    # The tolerance keeps float noise in a duration (10.0000000001 s) from adding an 11th grid point.
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


def _is_number(value) -> bool:
    # numbers.Real takes numpy scalars and Fractions (PyAV reports frame rates as Fractions).
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_sampling(sample_fps: float, max_frames: int) -> None:
    if not (_is_number(sample_fps) and math.isfinite(sample_fps) and sample_fps > 0):
        raise InvalidInputError(f"sample_fps must be a number > 0, got {sample_fps!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 1:
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


@dataclass
class _StreamIndex:
    """What one pass over the packets of the first video stream tells (PyAV, no decoding but the first frame)."""

    frame_pts: list[int]  # presentation times of all frames, sorted, in `time_base` units
    keyframe_pts: list[int]
    end_pts: int  # end of the last frame
    time_base: Fraction
    fps: float
    height: int  # of the frames as displayed: rotation applied
    width: int
    rotation: int  # counter-clockwise degrees a player turns the stored frames by: 0, 90, 180 or 270
    codec: str


def _index_with_pyav(path: Path) -> _StreamIndex:
    """Check that `path` is a complete, decodable video with PyAV and index its frames.

    decord and torchcodec can crash or hang on garbage; PyAV fails with clean exceptions, so every file passes here
    before another backend sees it. Reading every packet (no decoding beyond the first frame) also catches files
    cut short, which would otherwise fail, or silently shrink, halfway through decoding.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream in the file")
            stream = container.streams.video[0]
            first_frame = None
            frame_pts, keyframe_pts, end_pts = [], [], None
            for packet in container.demux(stream):
                if first_frame is None:  # the final empty packet flushes the decoder
                    first_frame = next(iter(stream.decode(packet)), None)
                if packet.size == 0:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    raise VideoDecodeError(path, "video frames without timestamps")
                frame_pts.append(pts)
                if packet.is_keyframe:
                    keyframe_pts.append(pts)
                end = pts + (packet.duration or 0)
                end_pts = end if end_pts is None else max(end_pts, end)
            declared_frames, time_base = stream.frames, stream.time_base
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            codec = stream.codec_context.name
    except VideoDecodeError:
        raise
    except Exception as error:
        raise VideoDecodeError(path, f"not a readable video ({_ffmpeg_reason(error)})") from error
    if not frame_pts:
        raise VideoDecodeError(path, "the video stream has no frames")
    if first_frame is None:
        raise VideoDecodeError(path, "no frame of the video stream can be decoded")
    if declared_frames and len(frame_pts) < declared_frames:
        raise VideoDecodeError(
            path, f"truncated or damaged: {len(frame_pts)} of its {declared_frames} frames are there"
        )
    frame_pts.sort()
    keyframe_pts.sort()
    # Phone videos are stored landscape with a display matrix saying "turn by 90": frames are returned as shown.
    rotation = round(getattr(first_frame, "rotation", 0) / 90) % 4 * 90
    stored_size = (first_frame.height, first_frame.width)
    height, width = stored_size[::-1] if rotation % 180 else stored_size
    if end_pts <= frame_pts[-1]:  # no packet durations in the container: the last frame lasts 1 / fps
        end_pts = frame_pts[-1] + (round(1 / (fps * time_base)) if fps else 0)
    return _StreamIndex(
        frame_pts=frame_pts, keyframe_pts=keyframe_pts, end_pts=end_pts, time_base=time_base, fps=fps,
        height=height, width=width, rotation=rotation, codec=codec,
    )  # fmt: skip


def _source_size_without_pyav(path: Path, backend: str) -> tuple[int, int]:
    """(height, width) of the frames as displayed, asked of torchcodec or decord (PyAV is not installed)."""
    if backend == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        info = VideoDecoder(str(path), seek_mode="approximate").metadata  # reads the header only
        return int(info.height), int(info.width)
    import decord

    height, width = decord.VideoReader(str(path), ctx=decord.cpu(0))[0].shape[:2]
    return int(height), int(width)


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
# Backend readers. Each one is built from (path, source size, output size or None) and offers `metadata`, `begin_s`
# (the first frame's start in the backend's clock) and `read(times_s, out, progress)`, which fills `out`
# ([T, 3, h, w] uint8) with the frames on screen at the ascending times `times_s` (in the backend's clock).
# ---------------------------------------------------------------------------------------------------------------


class _TorchCodecReader:
    def __init__(self, path: Path, source_size: tuple[int, int], output_size: tuple[int, int] | None):
        from torchcodec.decoders import VideoDecoder

        transforms = None
        if output_size is not None:
            from torchcodec.transforms import Resize

            transforms = [Resize(output_size)]
        # "exact" scans the file once so that frame times are the real ones, not guessed from the header.
        self._decoder = VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=0, transforms=transforms)
        info = self._decoder.metadata
        if not info.num_frames:
            raise VideoDecodeError(path, "the video stream has no frames")
        self.begin_s = float(info.begin_stream_seconds)
        self._end_s = float(info.end_stream_seconds)
        self.metadata = VideoMetadata(
            path=str(path), duration_s=self._end_s - self.begin_s, fps=float(info.average_fps or 0.0),
            num_frames=int(info.num_frames), width=source_size[1], height=source_size[0],
            backend="torchcodec", codec=info.codec,
        )  # fmt: skip

    def read(self, times_s: list[float], out: torch.Tensor, progress: _ProgressBar) -> None:
        # Same tie rule as the other backends (a frame starting within _TIME_EPS after t counts as shown at t);
        # torchcodec refuses times at or past the end of the stream.
        last_s = max(self.begin_s, self._end_s - 1e-6)
        for start in range(0, len(times_s), _DECODE_CHUNK):
            chunk = [min(time_s + _TIME_EPS, last_s) for time_s in times_s[start : start + _DECODE_CHUNK]]
            out[start : start + len(chunk)] = self._decoder.get_frames_played_at(chunk).data
            progress.update(len(chunk))

    def close(self) -> None:
        del self._decoder


class _DecordReader:
    def __init__(self, path: Path, source_size: tuple[int, int], output_size: tuple[int, int] | None):
        import decord

        height, width = output_size if output_size is not None else (-1, -1)
        self._reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=width, height=height)
        num_frames = len(self._reader)
        if num_frames == 0:
            raise VideoDecodeError(path, "the video stream has no frames")
        # (start, end) seconds of every frame in presentation order, counted from the stream's first frame.
        spans = self._reader.get_frame_timestamp(list(range(num_frames))).tolist()
        self._starts = [start for start, _ in spans]
        self.begin_s = self._starts[0]
        self.metadata = VideoMetadata(
            path=str(path), duration_s=spans[-1][1] - self.begin_s, fps=float(self._reader.get_avg_fps()),
            num_frames=num_frames, width=source_size[1], height=source_size[0], backend="decord",
        )  # fmt: skip

    def read(self, times_s: list[float], out: torch.Tensor, progress: _ProgressBar) -> None:
        indices = [_last_start_at_or_before(self._starts, time_s) for time_s in times_s]
        for start in range(0, len(indices), _DECODE_CHUNK):
            chunk = indices[start : start + _DECODE_CHUNK]
            # asnumpy() rather than decord's torch bridge, which is a process-wide setting.
            batch = torch.from_numpy(self._reader.get_batch(chunk).asnumpy())
            out[start : start + len(chunk)] = batch.permute(0, 3, 1, 2)
            progress.update(len(chunk))

    def close(self) -> None:
        del self._reader


class _PyAVReader:
    def __init__(self, path: Path, index: _StreamIndex, output_size: tuple[int, int] | None):
        import av

        self._path = path
        self._index = index
        self._output_size = output_size
        self._starts = [float(pts * index.time_base) for pts in index.frame_pts]
        self.begin_s = self._starts[0]
        self.metadata = VideoMetadata(
            path=str(path), duration_s=float((index.end_pts - index.frame_pts[0]) * index.time_base),
            fps=index.fps, num_frames=len(index.frame_pts), width=index.width, height=index.height,
            backend="pyav", codec=index.codec,
        )  # fmt: skip
        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def _to_tensor(self, frame) -> torch.Tensor:
        turns = self._index.rotation // 90
        if self._output_size is None:
            array = frame.to_ndarray(format="rgb24")
        else:
            height, width = self._output_size if turns % 2 == 0 else self._output_size[::-1]  # stored orientation
            array = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        frame = torch.from_numpy(array).permute(2, 0, 1)
        # PyAV leaves the display rotation to the caller; torchcodec applies it, so do the same here.
        return frame.rot90(turns, dims=(1, 2)) if turns else frame

    def read(self, times_s: list[float], out: torch.Tensor, progress: _ProgressBar) -> None:
        frame_pts, keyframe_pts = self._index.frame_pts, self._index.keyframe_pts
        # Decoding seeks only when the next wanted frame lies beyond a keyframe not reached yet.
        wanted = [frame_pts[_last_start_at_or_before(self._starts, time_s)] for time_s in times_s]
        decoded = None  # the frame iterator, restarted after every seek
        shown = None  # the last decoded frame with pts <= the current wanted pts
        ahead = None  # a decoded frame past the previous wanted pts, kept for the next one
        position = None  # pts of the last frame taken from the decoder
        for slot, pts in enumerate(wanted):
            if slot and wanted[slot - 1] == pts:
                out[slot] = out[slot - 1]
                progress.update(1)
                continue
            keyframe_slot = bisect_right(keyframe_pts, pts) - 1
            keyframe = keyframe_pts[keyframe_slot] if keyframe_slot >= 0 else frame_pts[0]
            if decoded is None or position is None or keyframe > position:
                self._container.seek(keyframe, stream=self._stream, backward=True, any_frame=False)
                decoded, shown, ahead, position = self._container.decode(self._stream), None, None, None
            # Decode forward to the wanted frame. The loop ends at the end of the stream at the latest; a frame the
            # decoder dropped is replaced by the one before it, which is what a player would show.
            while True:
                if ahead is not None:
                    frame, ahead = ahead, None
                else:
                    frame = next(decoded, None)
                if frame is None:
                    break
                if frame.pts is None:
                    continue
                position = frame.pts if position is None else max(position, frame.pts)
                if frame.pts > pts:
                    ahead = frame
                    break
                shown = frame
                if frame.pts == pts:
                    break
            if shown is None:
                raise VideoDecodeError(self._path, f"could not decode the frame at {times_s[slot]:.3f} s")
            out[slot] = self._to_tensor(shown)
            progress.update(1)

    def close(self) -> None:
        self._container.close()


_READERS = {"torchcodec": _TorchCodecReader, "decord": _DecordReader}  # PyAV reads from its own index


def _open_reader(path: Path, backend: str, max_side: int | None):
    index = _index_with_pyav(path) if _backend_loads("pyav") else None
    source_size = (index.height, index.width) if index is not None else _source_size_without_pyav(path, backend)
    output_size = _output_size(source_size[1], source_size[0], max_side)
    output_size = output_size if output_size != source_size else None
    if backend == "decord" and index is not None and index.rotation % 180:
        # decord 0.6 returns garbled frames for these (wrong size, 4 channels).
        raise VideoDecodeError(
            path, f"decord cannot decode videos rotated by {index.rotation} degrees; use backend 'torchcodec' or 'pyav'"
        )
    try:
        if backend == "pyav":
            return _PyAVReader(path, index, output_size)
        return _READERS[backend](path, source_size, output_size)
    except InvalidInputError:
        raise
    except Exception as error:
        raise VideoDecodeError(path, f"{backend} cannot open it ({_ffmpeg_reason(error)})") from error


def probe_video(path: str | os.PathLike, backend: str | None = None) -> VideoMetadata:
    """Duration, frame rate, frame count and size of a video file, as `backend` sees them."""
    backend = _resolve_backend(backend)
    reader = _open_reader(_check_file(path), backend, max_side=None)
    reader.close()
    return reader.metadata


def load_video(
    path: str | os.PathLike,
    sample_fps: float = 1.0,
    max_frames: int = 512,
    backend: str | None = None,
    max_side: int | None = None,
    progress: bool = False,
) -> SampledFrames:
    """Decode the frames on screen at times `i / sample_fps` (at most `max_frames`, spread over the whole video).

    Args:
        path: the video file.
        sample_fps: grid rate in frames per second (VideoITG labels use 1).
        max_frames: cap on the number of frames; longer videos get `max_frames` grid points spread uniformly.
        backend: "torchcodec", "decord" or "pyav"; the first available one when None.
        max_side: resize while decoding so that the longer side is at most this many pixels (aspect kept); 512
            frames of 1080p video take 3 GiB as uint8 otherwise.
        progress: show a progress bar.
    """
    _check_sampling(sample_fps, max_frames)
    valid_side = isinstance(max_side, numbers.Integral) and not isinstance(max_side, bool) and max_side >= 1
    if max_side is not None and not valid_side:
        raise InvalidInputError(f"max_side must be an integer >= 1 or None, got {max_side!r}")
    backend = _resolve_backend(backend)
    path = _check_file(path)
    reader = _open_reader(path, backend, max_side)
    metadata = reader.metadata
    timestamps, grid_indices = sample_grid(metadata.duration_s, sample_fps, max_frames)
    height, width = _output_size(metadata.width, metadata.height, max_side)
    frames = torch.empty((len(timestamps), 3, height, width), dtype=torch.uint8)
    bar = _ProgressBar(len(timestamps), progress, f"decoding {path.name}")
    try:
        reader.read([reader.begin_s + time_s for time_s in timestamps], frames, bar)
    except InvalidInputError:
        raise
    except Exception as error:
        raise VideoDecodeError(path, f"{backend} failed while decoding ({_ffmpeg_reason(error)})") from error
    finally:
        bar.close()
        reader.close()
    return SampledFrames(frames=frames, timestamps=timestamps, grid_indices=grid_indices, metadata=metadata)


def _as_rgb_array(frame, index: int, path: Path):
    """One frame for `write_video` as a contiguous [H, W, 3] uint8 numpy array."""
    import numpy as np

    if isinstance(frame, torch.Tensor):
        frame = frame.detach().cpu().numpy()
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise InvalidInputError(
            f"{path}: frame {index} must be a [H, W, 3] uint8 array, got {array.dtype} {tuple(array.shape)}"
        )
    return np.ascontiguousarray(array)


def write_video(
    path: str | os.PathLike, frames: Iterable, fps: float, codec: str = "libx264", crf: int = 23
) -> str:
    """Encode RGB frames ([H, W, 3] uint8 arrays or tensors, consumed one at a time) as yuv420p video with PyAV.

    Returns the path written. yuv420p halves the chroma resolution, so width and height must be even.
    """
    if not (_is_number(fps) and math.isfinite(fps) and fps > 0):
        raise InvalidInputError(f"fps must be a number > 0, got {fps!r}")
    if not _backend_loads("pyav"):
        raise BackendUnavailableError("write_video needs PyAV (pip install av)")
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A rational rate keeps exact timestamps: 29.97002997 -> 30000/1001.
    rate = (fps if isinstance(fps, Fraction) else Fraction(float(fps))).limit_denominator(100_000)
    try:
        container = av.open(str(path), mode="w")
    except Exception as error:
        raise InvalidInputError(f"{path}: cannot create the video file ({_ffmpeg_reason(error)})") from error
    stream = None
    try:
        for index, frame in enumerate(frames):
            array = _as_rgb_array(frame, index, path)
            if stream is None:
                height, width = array.shape[:2]
                if height % 2 or width % 2:
                    raise InvalidInputError(f"{path}: frame size {width}x{height} must be even in both dimensions")
                options = {"crf": str(crf)} if codec in ("libx264", "libx265") else {}
                try:
                    stream = container.add_stream(codec, rate=rate, options=options)
                except Exception as error:
                    reason = _ffmpeg_reason(error)
                    raise InvalidInputError(f"{path}: cannot encode with {codec!r} ({reason})") from error
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            elif array.shape[:2] != (height, width):
                raise InvalidInputError(
                    f"{path}: frame {index} is {array.shape[1]}x{array.shape[0]}, the first frame is {width}x{height}"
                )
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        if stream is None:
            raise InvalidInputError(f"{path}: no frames to write")
        for packet in stream.encode():  # flush the encoder's delayed frames
            container.mux(packet)
        container.close()
    except BaseException:
        try:
            container.close()
        except Exception:
            pass  # the file is incomplete and removed anyway
        path.unlink(missing_ok=True)
        raise
    return str(path)
