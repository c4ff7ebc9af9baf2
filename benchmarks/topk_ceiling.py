"""How well top-k and diverse-topk can do on a benchmark split for a model that ranks perfectly.

    python benchmarks/topk_ceiling.py --dataset /path/to/synth --split test
    python benchmarks/topk_ceiling.py --dataset /path/to/synth --sigma 0 0.05 0.2 --k 8 16 32

The scores are made from the labels: every frame of an evidence segment scores above every other frame (a
per-question ranking with AUC 1), each segment at its own confidence level, `1 + sigma * N(0, 1)`, plus a little
per-frame jitter. `sigma` 0 gives every evidence frame about the same score; any sigma > 0 is what a real model does
(one occurrence of the asked object looks surer than another). A question counts as hit when every evidence segment
holds a selected frame (the benchmark's definition), so questions with several segments (count, faster, next after,
"no"-existence, describe) need the k frames spread over all of them. Prints the hit rate by rule, sigma and k, and by
the number of segments; writes `benchmarks/results/topk_ceiling.json`.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def perfect_scores(grid: list[int], segments: list[list[float]], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Scores over the sampled frames: each evidence segment at its own level above every other frame."""
    from videoitg.evaluation.metrics import segment_frames

    scores = 0.001 * rng.random(len(grid))
    for start, end in segments:
        seconds = set(segment_frames(start, end))
        positions = [position for position, second in enumerate(grid) if second in seconds]
        scores[positions] = 1.0 + sigma * rng.normal() + 0.01 * rng.random(len(positions))
    return scores


def measure(rows, sigmas: list[float], ks: list[int], seed: int) -> list[dict]:
    from videoitg.evaluation.metrics import score_question
    from videoitg.selection import diverse_top_k_indices, top_k_indices
    from videoitg.video import sample_grid

    rules = {"topk": top_k_indices, "diverse-topk": diverse_top_k_indices}
    results = []
    for sigma in sigmas:
        rng = np.random.default_rng(seed)
        hits: dict[tuple[str, int, str], list[float]] = defaultdict(list)
        for row in rows:
            _, grid = sample_grid(float(row["duration_s"]))
            scores = perfect_scores(grid, row["relevant_segments"], sigma, rng)
            group = f"{len(row['relevant_segments'])} segment(s)"
            for rule, select in rules.items():
                for k in ks:
                    chosen = [grid[position] for position in select(scores, k)]
                    hit = score_question(chosen, row["frame_labels"], row["relevant_segments"]).hit_rate
                    hits[(rule, k, "all")].append(hit)
                    hits[(rule, k, group)].append(hit)
        for (rule, k, group), values in sorted(hits.items()):
            results.append({"sigma": sigma, "rule": rule, "k": k, "questions": group, "count": len(values),
                            "hit_rate": float(np.mean(values))})  # fmt: skip
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a synthetic benchmark folder (`videoitg synth`)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--sigma", type=float, nargs="+", default=[0.0, 0.05, 0.2])
    parser.add_argument("--k", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from videoitg.evaluation.runner import load_benchmark

    rows = load_benchmark(args.dataset, args.split).rows
    results = measure(rows, args.sigma, args.k, args.seed)
    print(f"{args.dataset} / {args.split}: {len(rows)} questions; scores rank every evidence frame first")
    hit = {(e["sigma"], e["rule"], e["k"], e["questions"]): e["hit_rate"] for e in results}
    groups = sorted({e["questions"] for e in results} - {"all"})
    first_k = args.k[0]
    header = [f"all @{k}" for k in args.k] + [f"{group} @{first_k}" for group in groups]
    print(f"{'sigma':>6} {'rule':>13} " + " ".join(f"{name:>15}" for name in header))
    for sigma in args.sigma:
        for rule in ("topk", "diverse-topk"):
            values = [hit[(sigma, rule, k, "all")] for k in args.k] + [hit[(sigma, rule, first_k, g)] for g in groups]
            print(f"{sigma:>6} {rule:>13} " + " ".join(f"{value:>15.3f}" for value in values))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "topk_ceiling.json"
    out.write_text(json.dumps({"dataset": args.dataset, "split": args.split, "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
