"""Synthetic benchmark generation: speed and size on disk, for 120 s videos (the mean duration of VideoITG-40K).

    python benchmarks/synth.py                       # 8 videos per row
    python benchmarks/synth.py --videos 16 --workers 1,2

Rows run `generate_benchmark` end to end (planning, drawing, H.264 encoding, Parquet, card) into a temporary folder,
at the default 128x96 frame size and at 160x128, with 1 or more worker processes, after one warm-up video; the
stages (plan, draw, encode) of one process are timed separately. Every row decodes the background footage afresh,
as a new `videoitg synth` process does. Results: a table on stdout and benchmarks/results/synth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SECONDS = 120


def run_end_to_end(videos: int, frame_size: tuple[int, int], workers: int) -> dict:
    from videoitg.evaluation.synth import generate_benchmark
    from videoitg.evaluation.synth_scene import load_footage

    load_footage.cache_clear()  # every row pays for decoding the footage, as a fresh `videoitg synth` does
    with tempfile.TemporaryDirectory(prefix="synth-bench-") as folder:
        start = time.perf_counter()
        root = generate_benchmark(
            Path(folder) / "bench", videos, seed=0, min_seconds=SECONDS, max_seconds=SECONDS,
            split_fractions=(1, 0, 0), frame_size=frame_size, workers=workers, progress=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        video_bytes = [path.stat().st_size for path in (root / "videos").rglob("*.mp4")]
        annotation_bytes = sum(path.stat().st_size for path in root.rglob("*") if path.suffix in (".parquet", ".md"))
    minutes_of_video = videos * SECONDS / 60
    return {
        "frame_size": f"{frame_size[0]}x{frame_size[1]}",
        "workers": workers,
        "videos": videos,
        "seconds": round(seconds, 2),
        "videos_per_minute": round(videos / seconds * 60, 1),
        "video_minutes_per_minute": round(minutes_of_video / seconds * 60, 1),
        "mp4_kib_per_video": round(statistics.mean(video_bytes) / 1024, 1),
        "mp4_kib_per_video_minute": round(sum(video_bytes) / 1024 / minutes_of_video, 1),
        "annotation_kib_per_video": round(annotation_bytes / 1024 / videos, 2),
    }


def time_stages(videos: int, frame_size: tuple[int, int]) -> dict:
    """Seconds per 120 s video spent planning, drawing and encoding, in one process."""
    from videoitg.evaluation.synth_plan import PlanSettings, plan_video
    from videoitg.evaluation.synth_scene import SpriteCache, default_footage, load_footage, render_frames
    from videoitg.video import write_video

    settings = PlanSettings(SECONDS, SECONDS, 4, frame_size[0], frame_size[1])
    load_footage.cache_clear()
    start = time.perf_counter()
    footage = load_footage(tuple(str(path) for path in default_footage()), frame_size)
    footage_s = time.perf_counter() - start
    sprites = SpriteCache()
    totals = {"plan": 0.0, "draw": 0.0, "encode": 0.0}
    with tempfile.TemporaryDirectory(prefix="synth-stages-") as folder:
        for index in range(videos):
            start = time.perf_counter()
            plan = plan_video((1, 0, index), settings)
            totals["plan"] += time.perf_counter() - start
            start = time.perf_counter()
            frames = list(render_frames(plan.scene, footage, sprites))
            totals["draw"] += time.perf_counter() - start
            start = time.perf_counter()
            write_video(Path(folder) / f"{index}.mp4", frames, fps=settings.fps)
            totals["encode"] += time.perf_counter() - start
    stages = {name: round(total / videos, 3) for name, total in totals.items()}
    return {"frame_size": f"{frame_size[0]}x{frame_size[1]}", "load_footage_s": round(footage_s, 2),
            "seconds_per_video": stages}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=8, help="videos per row")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts for the default frame size")
    parser.add_argument("--output", type=Path, default=RESULTS / "synth.json")
    args = parser.parse_args()

    configurations = [((128, 96), int(workers)) for workers in args.workers.split(",")] + [((160, 128), 1)]
    run_end_to_end(1, (128, 96), 1)  # warm-up: imports, file cache
    rows = [run_end_to_end(args.videos, frame_size, workers) for frame_size, workers in configurations]
    stages = time_stages(args.videos, (128, 96))

    header = (f"{'frame':>8} {'workers':>7} {'videos':>6} {'seconds':>8} {'videos/min':>10} {'video min/min':>13} "
              f"{'MiB/video':>9} {'KiB/video-min':>13} {'annot. KiB/video':>16}")  # fmt: skip
    print(f"{SECONDS} s videos at 4 fps, {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['frame_size']:>8} {row['workers']:>7} {row['videos']:>6} {row['seconds']:>8.1f} "
              f"{row['videos_per_minute']:>10.1f} {row['video_minutes_per_minute']:>13.1f} "
              f"{row['mp4_kib_per_video'] / 1024:>9.2f} {row['mp4_kib_per_video_minute']:>13.1f} "
              f"{row['annotation_kib_per_video']:>16.2f}")  # fmt: skip
    per_video = stages["seconds_per_video"]
    print(f"stages per video ({stages['frame_size']}, one process): plan {per_video['plan']:.3f} s, "
          f"draw {per_video['draw']:.3f} s, encode {per_video['encode']:.3f} s; "
          f"footage decoded once in {stages['load_footage_s']:.2f} s")  # fmt: skip

    import av
    import numpy

    report = {
        "video_seconds": SECONDS,
        "fps": 4,
        "rows": rows,
        "stages": stages,
        "machine": {"cpu_cores": os.cpu_count(), "load_average_1min_at_end": round(os.getloadavg()[0], 2),
                    "platform": platform.platform(), "python": platform.python_version(), "av": av.__version__,
                    "numpy": numpy.__version__},
    }  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
