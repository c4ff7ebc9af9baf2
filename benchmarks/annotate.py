"""Annotation throughput against a scripted OpenAI-compatible server with a fixed latency per call.

    python benchmarks/annotate.py                                   # 200 ms per call, --concurrency 1, 8, 32
    python benchmarks/annotate.py --latency 0.05 --concurrency 1 4

Each run annotates fresh (new output folder, empty cache) questions about generated 15-second videos, one question
of each instruction path per video (semantic, motion, semantic + motion, "no"-existence, no clue, whole video),
with `videoitg.dataset_builder.pipeline.annotate` — decoding, journaling and caching included. Runs with more
concurrency get more videos so that each lasts long enough to measure. Prints questions per minute, the speed-up
over `--concurrency 1`, the most requests the server saw at once, and the calls per question of each stage; writes
`benchmarks/results/annotate.json`. `--concurrency` bounds the requests in flight per backend (the LLM and the
MLLM each get that many; here both are the same server).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("typing", "key_phrases", "captions", "retrieval", "localization")


def run(concurrency: int, num_videos: int, latency_s: float, folder: Path) -> dict:
    from videoitg.dataset_builder.backends import RetryPolicy
    from videoitg.dataset_builder.pipeline import AnnotateConfig, BackendSpec, annotate
    from videoitg.dataset_builder.testing import ScriptedChatServer, build_scenario

    scenario = build_scenario(folder, num_videos=num_videos, seconds=15, seed=concurrency)
    with ScriptedChatServer(scenario.script(), latency_s=latency_s) as server:
        config = AnnotateConfig(
            qa_file=scenario.qa_file, video_root=scenario.video_root, out=folder / "out",
            llm=BackendSpec("openai", "scripted-llm", server.url, None),
            mllm=BackendSpec("openai", "scripted-mllm", server.url, None),
            concurrency=concurrency, timeout_s=60, retry=RetryPolicy(), progress=False,
        )  # fmt: skip
        start = time.perf_counter()
        result = annotate(config)
        elapsed = time.perf_counter() - start
        max_in_flight = server.max_in_flight
    questions = result.done + result.failed
    if result.failed:
        raise RuntimeError(f"{result.failed} questions failed: {result.failures[:3]}")
    return {
        "concurrency": concurrency,
        "videos": num_videos,
        "questions": questions,
        "seconds": elapsed,
        "questions_per_minute": 60 * questions / elapsed,
        "calls": result.stats.total().calls,
        "max_in_flight": max_in_flight,
        "calls_per_question": {stage: result.stats.stage(stage).calls / questions for stage in STAGES},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds the server takes per call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--videos", type=int, nargs="+", default=None,
                        help="videos per run, one per --concurrency (default: 2, else concurrency / 2)")  # fmt: skip
    args = parser.parse_args()
    videos = args.videos or [2 if c == 1 else max(2, min(24, c // 2)) for c in args.concurrency]
    if len(videos) != len(args.concurrency):
        parser.error("give one --videos value per --concurrency value")
    rows = []
    for concurrency, num_videos in zip(args.concurrency, videos):
        with tempfile.TemporaryDirectory(prefix="videoitg-annotate-bench-") as folder:
            rows.append(run(concurrency, num_videos, args.latency, Path(folder)))
        last = rows[-1]
        print(f"concurrency {concurrency}: {last['questions']} questions in {last['seconds']:.1f} s", flush=True)
    sequential = next((row for row in rows if row["concurrency"] == 1), rows[0])
    for row in rows:
        row["speedup_vs_sequential"] = row["questions_per_minute"] / sequential["questions_per_minute"]

    print(f"\nscripted server, {args.latency * 1000:.0f} ms per call\n")
    print(f"{'concurrency':>11} {'questions':>9} {'seconds':>8} {'questions/min':>13} {'vs sequential':>13} "
          f"{'max in flight':>13}")  # fmt: skip
    for row in rows:
        print(f"{row['concurrency']:>11} {row['questions']:>9} {row['seconds']:>8.1f} "
              f"{row['questions_per_minute']:>13.1f} {row['speedup_vs_sequential']:>12.1f}x "
              f"{row['max_in_flight']:>13}")  # fmt: skip
    print("\ncalls per question, by stage (same pipeline in every run):")
    print("  " + "  ".join(f"{stage} {sequential['calls_per_question'][stage]:.2f}" for stage in STAGES)
          + f"  total {sum(sequential['calls_per_question'].values()):.2f}")
    RESULTS.mkdir(exist_ok=True)
    output = {
        "latency_s": args.latency,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "runs": rows,
    }
    (RESULTS / "annotate.json").write_text(json.dumps(output, indent=1))
    print(f"\nwritten {RESULTS / 'annotate.json'}")


if __name__ == "__main__":
    main()
