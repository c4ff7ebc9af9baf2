"""`videoitg eval`: measure a frame selector on a grounding benchmark (the synthetic one, or any dataset with the
schema of DESIGN.md).

For every question the selector picks k frames of the video sampled at 1 fps (at most `max_frames`, spread over
long videos); the picks are mapped to the 1-fps grid and scored against the question's `relevant_segments` and
`frame_labels` (`videoitg.evaluation.metrics`). Each video is decoded once per run. Outputs under `--out`:

* `results.json` — `{"selector", "split", "k": {"8": {"overall", "by_type", "by_duration"[, "control"]}}}`, each
  metric as `{"mean", "ci_low", "ci_high", "n"}` (95% bootstrap over videos);
* `results.md` — the same as tables;
* `recall_vs_k.png` — hit rate and frame recall against k, one curve per instruction type;
* `frame_indices.jsonl` — one line per question (`doc_id`, `video`, `index` sorted by score, `scores`), the shape
  of the official VideoITG two-stage evaluation, so that an answering model can read the selected frames.

`--control swap` asks each question's selection with another question about the same video (the next one in the
dataset with a different text) and scores it against the original question's ground truth: a selector that follows
the instruction loses a lot, one that ignores it loses nothing.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS = ("video", "question", "instruction_type", "relevant_segments", "frame_labels", "duration_s")
ALWAYS_REPORTED_K = (1, 3)
CONTROLS = ("swap",)
DEFAULT_TOP_K = (8, 16, 32)
METRIC_TITLES = {
    "hit_rate": "hit rate",
    "segment_recall": "segment recall",
    "recall": "frame recall",
    "precision": "precision",
    "f1": "F1",
    "iou": "IoU",
}


def _invalid_input(message: str) -> Exception:
    from ..video import InvalidInputError

    return InvalidInputError(message)


# ---------------------------------------------------------------------------------------------------- the dataset
@dataclass
class Benchmark:
    rows: list[dict]  # every question of the split, in dataset order (doc_id = position)
    root: Path  # folder that relative `video` paths are resolved against
    name: str

    def video_path(self, row: Mapping) -> Path:
        path = Path(row["video"])
        return path if path.is_absolute() else self.root / path


def _video_paths(dataset) -> list[dict]:
    """Rows with `video` as a path string. A `datasets.Video` column gives its file paths; videos embedded as bytes
    (a self-contained Parquet dataset) are written once to a temporary folder, since decoding reads files."""
    import hashlib
    import tempfile

    from datasets import Video

    if not isinstance(dataset.features.get("video"), Video):
        return dataset.to_list()
    rows = dataset.cast_column("video", Video(decode=False)).to_list()
    folder = None
    for row in rows:
        video = row["video"]
        if video.get("bytes"):
            folder = folder or Path(tempfile.mkdtemp(prefix="videoitg-eval-videos-"))
            # Named by content: the questions about one video share one file, so it is still decoded once.
            digest = hashlib.sha1(video["bytes"]).hexdigest()[:16]
            path = folder / f"{digest}_{Path(video.get('path') or 'video.mp4').name}"
            if not path.exists():
                path.write_bytes(video["bytes"])
            row["video"] = str(path)
        else:
            row["video"] = video["path"]
    return rows


def load_benchmark(dataset: str | os.PathLike, split: str = "test") -> Benchmark:
    """The questions of one split of a local dataset folder or a Hub dataset repo (downloaded with its videos)."""
    import datasets

    source = str(dataset)
    root = Path(source).expanduser()
    if not root.is_dir():
        if root.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
            raise _invalid_input(f"{source}: no such dataset folder (give a folder or a Hub id like org/name)")
        from huggingface_hub import snapshot_download

        try:
            root = Path(snapshot_download(repo_id=source, repo_type="dataset"))
        except Exception as error:
            raise _invalid_input(f"{source}: cannot download the dataset from the Hub ({error})") from error
    try:
        loaded = datasets.load_dataset(str(root), split=split)
    except ValueError as error:
        if "split" in str(error).lower():
            raise _invalid_input(f"{source}: no split {split!r} ({error})") from error
        raise _invalid_input(f"{source}: cannot load the dataset ({error})") from error
    except (FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as error:
        raise _invalid_input(f"{source}: cannot load the dataset ({error})") from error
    missing = [column for column in REQUIRED_COLUMNS if column not in loaded.column_names]
    if missing:
        raise _invalid_input(f"{source}: split {split!r} lacks the columns {', '.join(missing)}")
    rows = _video_paths(loaded)
    if not rows:
        raise _invalid_input(f"{source}: split {split!r} holds no questions")
    return Benchmark(rows=rows, root=root, name=source)


def swap_partners(rows: Sequence[Mapping]) -> list[int | None]:
    """For each question, another question about the same video: the next one (cyclically, in dataset order) whose
    text differs; None when the video has no other question."""
    by_video: dict[str, list[int]] = {}
    for doc_id, row in enumerate(rows):
        by_video.setdefault(str(row.get("video_id") or row["video"]), []).append(doc_id)
    partners: list[int | None] = [None] * len(rows)
    for doc_ids in by_video.values():
        for position, doc_id in enumerate(doc_ids):
            for step in range(1, len(doc_ids)):
                other = doc_ids[(position + step) % len(doc_ids)]
                if rows[other]["question"].strip() != rows[doc_id]["question"].strip():
                    partners[doc_id] = other
                    break
    return partners


# ---------------------------------------------------------------------------------------------- the selector
def resolve_selector(selector, options: Mapping[str, Any]):
    """(FrameSelector, display name, note). `selector`: a FrameSelector, a registry name, a VideoITG model folder
    or Hub id, or None for the embedded demo model (top-k over its scores)."""
    from ..selection import SELECTORS, FrameSelector, ModelScoreSelector, build_selector

    if isinstance(selector, FrameSelector):
        return selector, getattr(selector, "name", "") or type(selector).__name__, ""
    if selector in SELECTORS:
        built = build_selector(selector, **options)
        scorer = getattr(built, "scorer", None)
        note = getattr(scorer, "note", "")
        name = selector if scorer is None else f"{selector} ({scorer.name})"
        return built, name, note
    if selector is not None and not Path(str(selector)).is_dir() and str(selector).count("/") != 1:
        raise _invalid_input(
            f"unknown selector {selector!r}: not a baseline ({', '.join(SELECTORS)}), a model folder or a Hub id"
        )
    from ..inference import DEFAULT_MODEL, FrameScorer

    try:
        scorer = FrameScorer.from_pretrained(selector)
    except OSError as error:
        raise _invalid_input(f"{selector}: cannot load a VideoITG model ({error})") from error
    embedded = selector is None and DEFAULT_MODEL.is_dir()
    return ModelScoreSelector(scorer), "embedded demo model" if embedded else scorer.name, scorer.note


# ---------------------------------------------------------------------------------------------- the run
@dataclass
class _Picks:
    """What a run keeps per question: grid frames chosen at each k, and the largest selection ranked by score."""

    by_k: dict[int, list[int]] = field(default_factory=dict)
    ranked: list[tuple[int, float]] = field(default_factory=list)  # (grid index, score), best first
    swapped_by_k: dict[int, list[int]] = field(default_factory=dict)


def _question_seed(seed: int, doc_id: int) -> int:
    # One stream per (run seed, question): the swap control reuses the original question's stream, so a random
    # selector gets the same frames with either question.
    return (seed * 1_000_003 + doc_id) % (2**63)


def _select_all(selector, video, question: str, row: Mapping, ks: Sequence[int], seed: int):
    """Score once, choose at every k: ({k: grid frames}, the selection at the largest k)."""
    scores = selector.score(video, question, row)
    grid = video.sampled.grid_indices
    chosen = {k: selector.choose(video, k, scores, row, seed) for k in ks}
    return {k: [grid[p] for p in picked.indices] for k, picked in chosen.items()}, chosen[max(ks)]


def _score(selected: list[int], row: Mapping, doc_id: int):
    from .metrics import MetricInputError, score_question

    try:
        return score_question(selected, row["frame_labels"], row["relevant_segments"])
    except MetricInputError as error:
        raise _invalid_input(f"question {doc_id} ({row['question']!r}): bad ground truth: {error}") from error


def run_evaluation(
    dataset: str | os.PathLike,
    selector=None,
    out_dir: str | os.PathLike = "eval",
    split: str = "test",
    top_k: Sequence[int] = DEFAULT_TOP_K,
    control: str | None = None,
    limit: int | None = None,
    clip_model: str | None = None,
    keyframe_encoder: str | None = None,
    model: str | None = None,
    device: str | None = None,
    seed: int = 0,
    num_resamples: int = 1000,
    max_frames: int = 512,
    max_side: int | None = 448,
    backend: str | None = None,
    progress: bool = True,
) -> dict:
    """Run `selector` over a split and write the four outputs under `out_dir`; returns the results dict.

    `selector`: a registry name (`videoitg.selection.SELECTORS`), a `FrameSelector`, a VideoITG model folder or
    Hub id, or None (the embedded demo model). `clip_model` / `keyframe_encoder` are transformers model folders for
    the text-image baselines and for keyframe features; `model` is the scoring model of `topk` / `diverse-topk`.
    """
    import numpy as np
    from tqdm.auto import tqdm

    from ..video import load_video
    from .metrics import METRIC_NAMES, aggregate

    ks = sorted(set(int(k) for k in top_k) | set(ALWAYS_REPORTED_K))
    if any(k < 1 for k in ks):
        raise _invalid_input(f"top-k values must be >= 1, got {list(top_k)}")
    if control is not None and control not in CONTROLS:
        raise _invalid_input(f"unknown control {control!r}; choose one of: {', '.join(CONTROLS)}")
    if limit is not None and limit < 1:
        raise _invalid_input(f"limit must be >= 1, got {limit}")

    benchmark = load_benchmark(dataset, split)
    all_rows = benchmark.rows
    doc_ids = list(range(len(all_rows) if limit is None else min(limit, len(all_rows))))
    partners = swap_partners(all_rows) if control == "swap" else [None] * len(all_rows)
    options = {"clip_model": clip_model, "keyframe_encoder": keyframe_encoder, "model": model, "device": device}
    chosen_selector, selector_name, note = resolve_selector(selector, options)

    # Questions grouped by video (first-appearance order): each video is decoded and prepared once.
    by_video: dict[str, list[int]] = {}
    for doc_id in doc_ids:
        by_video.setdefault(str(benchmark.video_path(all_rows[doc_id])), []).append(doc_id)
    picks: dict[int, _Picks] = {}
    bar = tqdm(total=len(doc_ids), desc=f"eval {selector_name}", unit="question", disable=not progress)
    for path, video_doc_ids in by_video.items():
        sampled = load_video(path, sample_fps=1.0, max_frames=max_frames, backend=backend, max_side=max_side)
        video = chosen_selector.prepare(sampled)
        for doc_id in video_doc_ids:
            row = all_rows[doc_id]
            question_seed = _question_seed(seed, doc_id)
            by_k, largest = _select_all(chosen_selector, video, row["question"], row, ks, question_seed)
            grid = sampled.grid_indices
            record = _Picks(by_k=by_k, ranked=[(grid[p], s) for p, s in largest.by_score()])
            partner = partners[doc_id]
            if partner is not None:
                other = all_rows[partner]
                record.swapped_by_k, _ = _select_all(chosen_selector, video, other["question"], other, ks, question_seed)
            picks[doc_id] = record
            bar.update(1)
        del sampled, video
    bar.close()

    rows = [all_rows[doc_id] for doc_id in doc_ids]
    types = [str(row["instruction_type"]) for row in rows]
    durations = [float(row["duration_s"]) for row in rows]
    clusters = [str(row.get("video_id") or row["video"]) for row in rows]
    summary_options = {"num_resamples": num_resamples, "seed": seed}
    results: dict[str, Any] = {
        "selector": selector_name,
        "split": split,
        "dataset": benchmark.name,
        "num_questions": len(rows),
        "num_videos": len(by_video),
        "top_k": ks,
        "selector_reads_question": bool(getattr(chosen_selector, "reads_question", False)),
        "control": control,
        "seed": seed,
        "confidence_interval": f"95% percentile bootstrap over videos, {num_resamples} resamples",
        "note": note,
        "k": {},
    }
    for k in ks:
        scored = [_score(picks[doc_id].by_k[k], row, doc_id).as_dict() for doc_id, row in zip(doc_ids, rows)]
        per_question = {name: np.array([s[name] for s in scored]) for name in METRIC_NAMES}
        entry = aggregate(per_question, types, durations, clusters, **summary_options)
        if control == "swap":
            entry["control"] = _swap_summary(picks, doc_ids, rows, k, per_question, types, durations, clusters,
                                             summary_options)  # fmt: skip
        results["k"][str(k)] = entry

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out_dir / "results.md").write_text(results_markdown(results), encoding="utf-8")
    plot_recall_vs_k(results, out_dir / "recall_vs_k.png")
    with open(out_dir / "frame_indices.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, row in zip(doc_ids, rows):
            record = picks[doc_id]
            line = {
                "doc_id": doc_id,
                "question_id": row.get("question_id"),
                "video": row["video"],
                "k": max(ks),
                "index": [int(index) for index, _ in record.ranked],
                "scores": [float(score) for _, score in record.ranked],
                "by_k": {str(k): record.by_k[k] for k in ks},
            }
            handle.write(json.dumps(line) + "\n")
    return results


def _swap_summary(picks, doc_ids, rows, k, per_question, types, durations, clusters, summary_options) -> dict:
    """Metrics of the swapped selections (against the original ground truth) and the paired drop."""
    import numpy as np

    from .metrics import METRIC_NAMES, aggregate

    kept = [i for i, doc_id in enumerate(doc_ids) if picks[doc_id].swapped_by_k]
    if not kept:  # no video has two different questions
        return {"name": "swap", "num_questions": 0, "overall": {}, "by_type": {}, "drop": {"overall": {}, "by_type": {}}}
    swapped_scores = [_score(picks[doc_ids[i]].swapped_by_k[k], rows[i], doc_ids[i]).as_dict() for i in kept]
    swapped = {name: np.array([s[name] for s in swapped_scores]) for name in METRIC_NAMES}
    # Paired: the drop of each question, so that the interval reflects the change, not the spread of questions.
    drop = {name: per_question[name][kept] - swapped[name] for name in METRIC_NAMES}
    subset = ([types[i] for i in kept], [durations[i] for i in kept], [clusters[i] for i in kept])
    swapped_summary = aggregate(swapped, *subset, **summary_options)
    drop_summary = aggregate(drop, *subset, **summary_options)
    return {
        "name": "swap",
        "num_questions": len(kept),
        "overall": swapped_summary["overall"],
        "by_type": swapped_summary["by_type"],
        "drop": {"overall": drop_summary["overall"], "by_type": drop_summary["by_type"]},
    }


# ---------------------------------------------------------------------------------------------- reports
def _cell(estimate: Mapping | None, with_ci: bool = True) -> str:
    if not estimate or estimate.get("mean") is None:
        return "–"
    text = f"{estimate['mean']:.3f}"
    if with_ci and estimate.get("ci_low") is not None:
        text += f" [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}]"
    return text


def results_markdown(results: Mapping) -> str:
    """`results.md`: overall metrics per k, hit rate and recall per instruction type and per duration, swap drop."""
    from .metrics import METRIC_NAMES

    ks = list(results["k"])
    lines = [
        f"# Frame selection: {results['selector']}",
        "",
        f"Dataset `{results['dataset']}`, split `{results['split']}`: {results['num_questions']} questions about "
        f"{results['num_videos']} videos. Mean with {results['confidence_interval']}.",
        "",
    ]
    if results.get("note"):
        lines += [f"Note: {results['note']}", ""]
    lines += ["## Overall", "", "| k | " + " | ".join(METRIC_TITLES[m] for m in METRIC_NAMES) + " |",
              "|---" * (len(METRIC_NAMES) + 1) + "|"]  # fmt: skip
    for k in ks:
        overall = results["k"][k]["overall"]
        lines.append(f"| {k} | " + " | ".join(_cell(overall[m]) for m in METRIC_NAMES) + " |")
    for group, title in (("by_type", "instruction type"), ("by_duration", "video duration")):
        for metric in ("hit_rate", "recall"):
            names = list(dict.fromkeys(name for k in ks for name in results["k"][k][group]))
            lines += ["", f"## {METRIC_TITLES[metric].capitalize()} by {title}", "",
                      f"| {title} | n | " + " | ".join(f"k={k}" for k in ks) + " |", "|---" * (len(ks) + 2) + "|"]  # fmt: skip
            for name in names:
                first = results["k"][ks[0]][group].get(name, {}).get(metric, {})
                cells = [_cell(results["k"][k][group].get(name, {}).get(metric), with_ci=False) for k in ks]
                lines.append(f"| {name} | {first.get('n', 0)} | " + " | ".join(cells) + " |")
    if results.get("control") == "swap":
        lines += ["", "## Swap control: how far each metric falls with another question about the same video", "",
                  "Positive = the selection got worse when it was asked the wrong question (paired over questions).",
                  "", "| k | n | " + " | ".join(METRIC_TITLES[m] for m in METRIC_NAMES) + " |",
                  "|---" * (len(METRIC_NAMES) + 2) + "|"]  # fmt: skip
        for k in ks:
            control = results["k"][k]["control"]
            drop = control["drop"]["overall"]
            lines.append(f"| {k} | {control['num_questions']} | " + " | ".join(_cell(drop.get(m)) for m in METRIC_NAMES) + " |")
    return "\n".join(lines) + "\n"


def plot_recall_vs_k(results: Mapping, path: str | os.PathLike) -> Path:
    """Hit rate and frame recall against k: one curve per instruction type (95% interval shaded), overall dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = [int(k) for k in results["k"]]
    types = sorted({name for entry in results["k"].values() for name in entry["by_type"]})
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    for axis, metric in zip(axes, ("hit_rate", "recall")):
        curves = [(name, [results["k"][str(k)]["by_type"].get(name, {}).get(metric) for k in ks], "-") for name in types]
        curves.append(("overall", [results["k"][str(k)]["overall"].get(metric) for k in ks], "--"))
        for name, estimates, style in curves:
            points = [(k, e) for k, e in zip(ks, estimates) if e and e.get("mean") is not None]
            if not points:
                continue
            xs = [k for k, _ in points]
            color = "black" if name == "overall" else None
            line = axis.plot(xs, [e["mean"] for _, e in points], style, marker="o", label=name, color=color)[0]
            if all(e.get("ci_low") is not None for _, e in points):
                axis.fill_between(xs, [e["ci_low"] for _, e in points], [e["ci_high"] for _, e in points],
                                  color=line.get_color(), alpha=0.12)  # fmt: skip
        axis.set_xscale("log", base=2)
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.set_ylim(-0.02, 1.02)
        axis.set_xlabel("frames selected (k)")
        axis.set_ylabel(METRIC_TITLES[metric])
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    figure.suptitle(f"{results['selector']} on {Path(str(results['dataset'])).name} / {results['split']}", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


# ---------------------------------------------------------------------------------------------- command line
def _parse_top_k(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def _eval_command(args: argparse.Namespace) -> int:
    results = run_evaluation(
        dataset=args.dataset, selector=args.selector, out_dir=args.out, split=args.split, top_k=args.top_k,
        control=args.control, limit=args.limit, clip_model=args.clip_model, keyframe_encoder=args.keyframe_encoder,
        model=args.model, device=args.device, seed=args.seed, num_resamples=args.bootstrap,
        max_frames=args.max_frames, backend=args.backend, progress=not args.quiet,
    )  # fmt: skip
    if results["note"]:
        print(f"note: {results['note']}")
    print(f"{results['selector']} on {results['dataset']} / {results['split']}: {results['num_questions']} questions")
    for k, entry in results["k"].items():
        overall = entry["overall"]
        line = f"  k={k:>3}  hit rate {_cell(overall['hit_rate'])}  recall {_cell(overall['recall'])}"
        if "control" in entry and entry["control"]["num_questions"]:
            line += f"  swap drop (hit rate) {_cell(entry['control']['drop']['overall']['hit_rate'], with_ci=False)}"
        print(line)
    for name in ("results.json", "results.md", "recall_vs_k.png", "frame_indices.jsonl"):
        print(f"wrote {Path(args.out) / name}")
    return 0


def add_cli(subparsers) -> None:
    from_names = "uniform, random, keyframes, clip-topk, bolt, aks, topk, diverse-topk, object-oracle"
    parser = subparsers.add_parser("eval", help="measure a frame selector on a grounding benchmark")
    parser.add_argument("--dataset", required=True, help="dataset folder or Hub id (schema of `videoitg synth`)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--selector", default=None,
                        help=f"a baseline ({from_names}) or a VideoITG model folder / Hub id "
                             "(default: the embedded demo model)")  # fmt: skip
    parser.add_argument("--top-k", type=_parse_top_k, default=list(DEFAULT_TOP_K),
                        help="comma-separated frame budgets (default 8,16,32; 1 and 3 are always added)")  # fmt: skip
    parser.add_argument("--out", default="eval", help="output folder (default: ./eval)")
    parser.add_argument("--control", choices=CONTROLS, default=None,
                        help="swap: also ask each selection with another question about the same video")  # fmt: skip
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions of the split")
    parser.add_argument("--clip-model", default=None, help="text-image model folder for clip-topk, bolt and aks")
    parser.add_argument("--keyframe-encoder", default=None,
                        help="image encoder folder for keyframes (default: raw-pixel features)")  # fmt: skip
    parser.add_argument("--model", default=None, help="VideoITG model for topk / diverse-topk (default: embedded)")
    parser.add_argument("--device", default=None, help="device of the CLIP-like model (default: cuda if available)")
    parser.add_argument("--seed", type=int, default=0, help="seed of `random` and of the bootstrap")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals")
    parser.add_argument("--max-frames", type=int, default=512, help="frames sampled per video at most (1 fps)")
    parser.add_argument("--backend", default=None, help="video decoder: torchcodec, decord or pyav")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_eval_command)


__all__ = ["Benchmark", "load_benchmark", "swap_partners", "resolve_selector", "run_evaluation", "results_markdown",
           "plot_recall_vs_k", "add_cli"]  # fmt: skip
