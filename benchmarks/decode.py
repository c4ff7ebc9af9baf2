"""Decoding speed: 1-fps sampling of a 180 s, 30 fps, 640x360 H.264 video with each installed backend.

    python benchmarks/decode.py                 # best of 3 runs per row
    python benchmarks/decode.py --repeats 5

`ffmpeg -i FILE -vf fps=1 -f null -` on the same file, in the same run, is the yardstick: the "x ffmpeg" column is
backend time / ffmpeg time. ffmpeg also decodes every frame of the video but converts none to RGB and hands nothing
to Python. The video (testsrc2 pattern with temporal noise, x264 defaults: B-frames, keyframes every <= 250 frames)
is generated once into benchmarks/results/. Results: a table on stdout and benchmarks/results/decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def make_video(path: Path, duration_s: int, fps: int, width: int, height: int) -> Path:
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")
    source = f"testsrc2=size={width}x{height}:rate={fps}:duration={duration_s}"
    command = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", source, "-vf", "noise=alls=8:allf=t",
               "-c:v", "libx264", "-crf", "23", "-pix_fmt", "yuv420p", str(partial)]  # fmt: skip
    subprocess.run(command, check=True)
    partial.rename(path)
    return path


def time_ffmpeg(path: Path, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-vf", "fps=1", "-f", "null", "-"], check=True)
        times.append(time.perf_counter() - start)
    return times


def time_backend(path: Path, backend: str, max_side: int | None, repeats: int) -> tuple[list[float], int]:
    from videoitg.video import load_video

    load_video(path, backend=backend, max_frames=8, max_side=max_side)  # warm-up: libraries, file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sampled = load_video(path, sample_fps=1.0, max_frames=512, backend=backend, max_side=max_side)
        times.append(time.perf_counter() - start)
    return times, len(sampled.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=int, default=180, help="seconds of video")
    parser.add_argument("--max-side", type=int, default=448, help="resized row (the processor decodes at 2 x 224)")
    parser.add_argument("--output", type=Path, default=RESULTS / "decode.json")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("this benchmark needs the ffmpeg command line tool")

    from videoitg.video import available_backends, probe_video

    fps, width, height = 30, 640, 360
    name = f"decode_{args.duration}s_{fps}fps_{width}x{height}.mp4"
    video = make_video(RESULTS / name, args.duration, fps, width, height)
    metadata = probe_video(video, backend="pyav")

    ffmpeg_times = time_ffmpeg(video, args.repeats)
    ffmpeg_s = min(ffmpeg_times)
    rows = [{"decoder": "ffmpeg -vf fps=1 -f null", "max_side": None, "frames": args.duration,
             "seconds": round(ffmpeg_s, 3), "all_seconds": [round(t, 3) for t in ffmpeg_times],
             "frames_per_s": round(args.duration / ffmpeg_s, 1), "x_ffmpeg": 1.0}]  # fmt: skip
    for backend in available_backends():
        for max_side in (None, args.max_side):
            times, frames = time_backend(video, backend, max_side, args.repeats)
            best = min(times)
            rows.append({"decoder": f"load_video {backend}", "max_side": max_side, "frames": frames,
                         "seconds": round(best, 3), "all_seconds": [round(t, 3) for t in times],
                         "frames_per_s": round(frames / best, 1), "x_ffmpeg": round(best / ffmpeg_s, 2)})  # fmt: skip

    header = f"{'decoder':<26} {'max_side':>8} {'frames':>6} {'seconds':>8} {'frames/s':>9} {'x ffmpeg':>9}"
    print(f"{video.name}: {metadata.duration_s:.0f} s, {metadata.fps:g} fps, {metadata.width}x{metadata.height}, "
          f"{metadata.num_frames} frames; best of {args.repeats}, {os.cpu_count()} CPU cores")  # fmt: skip
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['decoder']:<26} {str(row['max_side'] or '-'):>8} {row['frames']:>6} {row['seconds']:>8.2f} "
              f"{row['frames_per_s']:>9.1f} {row['x_ffmpeg']:>9.2f}")  # fmt: skip

    import av
    import torch

    ffmpeg_version = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
    report = {
        "video": {"file": video.name, "duration_s": metadata.duration_s, "fps": metadata.fps,
                  "width": metadata.width, "height": metadata.height, "num_frames": metadata.num_frames},
        "sampling": {"sample_fps": 1.0, "max_frames": 512},
        "repeats": args.repeats,
        "seconds_is": "best of the repeats; all_seconds lists every run",
        "rows": rows,
        "median_x_ffmpeg": {row["decoder"] + (f" max_side={row['max_side']}" if row["max_side"] else ""):
                            round(statistics.median(row["all_seconds"]) / statistics.median(ffmpeg_times), 2)
                            for row in rows[1:]},
        "machine": {"cpu_cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "av": av.__version__,
                    "ffmpeg": ffmpeg_version},
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
