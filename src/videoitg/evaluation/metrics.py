"""Frame-selection metrics on the 1-fps grid, with per-group bootstrap confidence intervals (numpy only).

Conventions (shared by the benchmark generator, the runner and the `evaluate` module):

* Grid frame `i` stands for second `[i, i + 1)` of the video; `frame_labels[i]` is 1 when that second is evidence.
* A segment `[start_s, end_s]` covers the grid frames whose second overlaps it: `floor(start_s) .. ceil(end_s) - 1`
  (a zero-length segment covers `floor(start_s)`). See `segment_frames`.
* A selection is a set of grid-frame indices; duplicates count once, indices past the end of the labels count as
  irrelevant frames (they lower precision and IoU).

Per question:

* `hit_rate` — 1 when every required segment holds at least one selected frame, else 0 (the evidence is covered).
* `segment_recall` — fraction of the required segments that hold a selected frame.
* `recall`, `precision`, `f1` — of the selected frames against the positive `frame_labels`.
* `iou` — |selected ∩ relevant| / |selected ∪ relevant| (the IoU of the paper's Table 7, on frame sets).

Questions without evidence (no segment, or no positive label — e.g. "Is there a green star?" when there is none)
cannot be right or wrong about where the evidence is: their segment metrics are NaN when they have no segment,
their frame metrics are NaN when they have no positive label, and every aggregate skips NaN (each aggregate
reports `n`, the number of questions it averages). A selection of zero frames against existing evidence scores 0
everywhere (precision included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

METRIC_NAMES = ("hit_rate", "segment_recall", "recall", "precision", "f1", "iou")
# Upper bounds (seconds, exclusive) and names of the duration buckets used in reports.
DURATION_BUCKETS = ((60.0, "<1 min"), (180.0, "1-3 min"), (480.0, "3-8 min"), (math.inf, ">8 min"))


class MetricInputError(ValueError):
    """Malformed ground truth or selection given to the metrics."""


@dataclass(frozen=True)
class QuestionScore:
    """The metrics of one question (NaN where undefined, see the module docstring)."""

    hit_rate: float
    segment_recall: float
    recall: float
    precision: float
    f1: float
    iou: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Estimate:
    """A mean over questions with its bootstrap confidence interval."""

    mean: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        # JSON has no NaN: undefined values (no question with evidence in the group) become null.
        def clean(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        return {"mean": clean(self.mean), "ci_low": clean(self.ci_low), "ci_high": clean(self.ci_high), "n": self.n}


def segment_frames(start_s: float, end_s: float) -> range:
    """Grid frames covered by the segment `[start_s, end_s]`: those whose second `[i, i + 1)` overlaps it."""
    if not (math.isfinite(start_s) and math.isfinite(end_s)) or start_s < 0 or end_s < start_s:
        raise MetricInputError(f"segment [{start_s}, {end_s}] must satisfy 0 <= start_s <= end_s")
    first = math.floor(start_s)
    return range(first, max(first + 1, math.ceil(end_s)))


def labels_from_segments(segments: Iterable[Sequence[float]], num_frames: int) -> list[int]:
    """0/1 labels on a grid of `num_frames` frames that mark every frame covered by `segments`."""
    labels = [0] * num_frames
    for start_s, end_s in segments:
        for index in segment_frames(float(start_s), float(end_s)):
            if index < num_frames:
                labels[index] = 1
    return labels


def _selected_set(selected: Iterable[int]) -> set[int]:
    chosen = set()
    for index in selected:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
            raise MetricInputError(f"selected frame indices must be integers >= 0, got {index!r}")
        chosen.add(int(index))
    return chosen


def score_question(
    selected: Iterable[int], frame_labels: Sequence[int], relevant_segments: Sequence[Sequence[float]] | None = None
) -> QuestionScore:
    """Metrics of one selection (grid-frame indices) against one question's ground truth."""
    chosen = _selected_set(selected)
    labels = np.asarray(frame_labels, dtype=np.int64).reshape(-1)
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise MetricInputError("frame_labels must hold only 0 and 1")
    relevant = set(np.flatnonzero(labels).tolist())

    segments = list(relevant_segments or [])
    if segments:
        covered = [any(index in chosen for index in segment_frames(float(s), float(e))) for s, e in segments]
        hit, segment_recall = float(all(covered)), float(np.mean(covered))
    else:
        hit = segment_recall = math.nan

    if relevant:
        overlap = len(chosen & relevant)
        recall = overlap / len(relevant)
        precision = overlap / len(chosen) if chosen else 0.0
        f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
        iou = overlap / len(chosen | relevant)
    else:
        recall = precision = f1 = iou = math.nan
    return QuestionScore(hit, segment_recall, recall, precision, f1, iou)


def score_questions(
    selections: Sequence[Iterable[int]],
    frame_labels: Sequence[Sequence[int]],
    relevant_segments: Sequence[Sequence[Sequence[float]] | None] | None = None,
) -> dict[str, np.ndarray]:
    """Per-question metrics of many selections: `{metric name: float array [num_questions]}`."""
    if len(selections) != len(frame_labels):
        raise MetricInputError(f"{len(selections)} selections but {len(frame_labels)} frame_labels")
    if relevant_segments is None:
        relevant_segments = [None] * len(selections)
    elif len(relevant_segments) != len(selections):
        raise MetricInputError(f"{len(selections)} selections but {len(relevant_segments)} relevant_segments")
    rows = [score_question(*item).as_dict() for item in zip(selections, frame_labels, relevant_segments)]
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in METRIC_NAMES}


def duration_bucket(duration_s: float) -> str:
    """Report bucket of a video duration: "<1 min", "1-3 min", "3-8 min" or ">8 min"."""
    for upper, name in DURATION_BUCKETS:
        if duration_s < upper:
            return name
    return DURATION_BUCKETS[-1][1]


def bootstrap_mean(
    values: Sequence[float] | np.ndarray,
    clusters: Sequence | None = None,
    num_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Mean of `values` (NaN skipped) and its percentile-bootstrap confidence interval.

    With `clusters` (e.g. the video of each question) whole clusters are resampled: questions about one video are
    correlated, and resampling them one by one would make the interval too narrow.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    defined = ~np.isnan(values)
    count = int(defined.sum())
    if count == 0:
        return Estimate(math.nan, math.nan, math.nan, 0)
    mean = float(values[defined].mean())
    if clusters is None:
        cluster_ids = np.arange(len(values))
    else:
        if len(clusters) != len(values):
            raise MetricInputError(f"{len(clusters)} cluster ids for {len(values)} values")
        cluster_ids = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)[1]
    num_clusters = int(cluster_ids.max()) + 1
    # Per-cluster sums and counts of the defined values: a resample's mean is a ratio of sums over drawn clusters.
    sums = np.bincount(cluster_ids[defined], weights=values[defined], minlength=num_clusters)
    counts = np.bincount(cluster_ids[defined], minlength=num_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, num_clusters, size=(num_resamples, num_clusters))
    drawn_counts = counts[draws].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = sums[draws].sum(axis=1) / drawn_counts
    resampled = resampled[drawn_counts > 0]
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Estimate(mean, float(low), float(high), count)


def summarize(
    per_question: Mapping[str, np.ndarray],
    clusters: Sequence | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """`{metric: Estimate.as_dict()}` for the per-question metrics of one group."""
    return {
        name: bootstrap_mean(values, clusters, num_resamples=num_resamples, seed=seed).as_dict()
        for name, values in per_question.items()
    }


def _subset(per_question: Mapping[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    return {name: np.asarray(values)[mask] for name, values in per_question.items()}


def aggregate(
    per_question: Mapping[str, np.ndarray],
    instruction_types: Sequence[str],
    durations_s: Sequence[float],
    clusters: Sequence | None = None,
    num_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict]:
    """Overall, per-instruction-type and per-duration-bucket summaries of per-question metrics.

    Returns `{"overall": {metric: estimate}, "by_type": {type: {...}}, "by_duration": {bucket: {...}}}`; groups
    appear in a fixed order (types sorted, buckets from short to long) and only when they hold a question.
    """
    count = len(instruction_types)
    if len(durations_s) != count or any(len(values) != count for values in per_question.values()):
        raise MetricInputError("per_question metrics, instruction_types and durations_s must have the same length")
    types = np.asarray(instruction_types, dtype=object)
    buckets = np.asarray([duration_bucket(float(d)) for d in durations_s], dtype=object)
    cluster_array = None if clusters is None else np.asarray([str(c) for c in clusters], dtype=object)

    def group(mask: np.ndarray) -> dict:
        group_clusters = None if cluster_array is None else cluster_array[mask]
        return summarize(_subset(per_question, mask), group_clusters, num_resamples, seed)

    everything = np.ones(count, dtype=bool)
    return {
        "overall": group(everything),
        "by_type": {name: group(types == name) for name in sorted(set(types.tolist()))},
        "by_duration": {name: group(buckets == name) for _, name in DURATION_BUCKETS if (buckets == name).any()},
    }


__all__ = [
    "METRIC_NAMES",
    "DURATION_BUCKETS",
    "MetricInputError",
    "QuestionScore",
    "Estimate",
    "segment_frames",
    "labels_from_segments",
    "score_question",
    "score_questions",
    "duration_bucket",
    "bootstrap_mean",
    "summarize",
    "aggregate",
]
