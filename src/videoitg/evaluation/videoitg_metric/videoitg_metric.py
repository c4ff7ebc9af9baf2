"""VideoITG frame-selection metric for `evaluate`: evidence hit rate, segment recall, frame recall / precision / F1
and IoU of selected frames against 1-fps grounding labels, with bootstrap 95% intervals.

Load it offline from this folder: `evaluate.load("path/to/videoitg_metric")`. The computation lives in
`videoitg.evaluation.metrics` (installed with the `videoitg` package), so this script and `videoitg eval` can never
disagree.
"""

from __future__ import annotations

import datasets
import evaluate

from videoitg.evaluation.metrics import METRIC_NAMES, aggregate, score_questions, summarize

_DESCRIPTION = """
Scores frame selections (indices on the 1-fps grid, one list per question) against grounding labels (`frame_labels`,
a 0/1 list per question, index i = second i of the video). Per question: `hit_rate` is 1 when every required segment
holds a selected frame; `segment_recall` is the fraction of segments that do; `recall`, `precision`, `f1` and `iou`
compare the selected frame set with the positive labels. A segment [s, e] covers grid frames floor(s)..ceil(e)-1.
Questions without evidence are left out of the averages (each estimate reports its `n`).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of lists of int, the selected grid frames of each question.
    references: list of lists of 0/1, the `frame_labels` of each question.
    relevant_segments: optional list (per question) of [start_s, end_s] pairs; default: one segment per run of
        consecutive positive labels.
    instruction_types: optional list of str; adds `by_type` to the result.
    durations_s: optional list of float; adds `by_duration` (<1 min, 1-3 min, 3-8 min, >8 min).
    video_ids: optional list; the bootstrap then resamples whole videos (questions about one video are correlated).
    num_resamples: bootstrap resamples (default 1000). seed: bootstrap seed (default 0).
Returns:
    one mean per metric (hit_rate, segment_recall, recall, precision, f1, iou), `n_questions`, and `details`:
    {metric: {"mean", "ci_low", "ci_high", "n"}} overall, plus `by_type` / `by_duration` when asked for.
Examples:
    >>> metric = evaluate.load("path/to/videoitg_metric")
    >>> metric.compute(predictions=[[1, 5]], references=[[0, 1, 1, 0, 0, 0]])["hit_rate"]
    1.0
"""

_CITATION = """
VideoITG: Instructed Temporal Grounding for Videos (the VideoITG paper; Table 7 uses the IoU measure).
"""


def segments_from_labels(labels) -> list[list[float]]:
    """One [start_s, end_s] segment per run of consecutive positive labels."""
    segments, start = [], None
    for index, value in enumerate(list(labels) + [0]):
        if value and start is None:
            start = index
        elif not value and start is not None:
            segments.append([float(start), float(index)])
            start = None
    return segments


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class VideoITGMetric(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("int64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(
        self,
        predictions,
        references,
        relevant_segments=None,
        instruction_types=None,
        durations_s=None,
        video_ids=None,
        num_resamples: int = 1000,
        seed: int = 0,
    ):
        if relevant_segments is None:
            relevant_segments = [segments_from_labels(labels) for labels in references]
        per_question = score_questions(predictions, references, relevant_segments)
        if instruction_types is not None or durations_s is not None:
            details = aggregate(
                per_question,
                instruction_types if instruction_types is not None else ["all"] * len(predictions),
                durations_s if durations_s is not None else [0.0] * len(predictions),
                clusters=video_ids,
                num_resamples=num_resamples,
                seed=seed,
            )
            if instruction_types is None:
                details.pop("by_type")
            if durations_s is None:
                details.pop("by_duration")
        else:
            details = {"overall": summarize(per_question, video_ids, num_resamples=num_resamples, seed=seed)}
        result = {name: details["overall"][name]["mean"] for name in METRIC_NAMES}
        result["n_questions"] = len(predictions)
        result["details"] = details
        return result
