"""`videoitg eval-annotations --pred DIR --ref DIR`: how well annotations match reference annotations.

The measure is Table 7 of the VideoITG paper: the IoU between the frames one annotation marks relevant and the
frames the reference marks (`videoitg.evaluation.metrics.score_question`), averaged per instruction type and
answer form (multiple choice / open ended) of the reference, with 95% bootstrap intervals over videos.
Questions are matched by `id`, or by (`video_id`, `question`) when the ids do not match.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..video import InvalidInputError
from .writer import read_rows

FORMS = ("multiple_choice", "open_ended")


def _rows(folder: str | Path) -> list[dict]:
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: no such dataset folder")
    if (folder / "data").is_dir():
        return read_rows(folder)
    import datasets

    try:
        return datasets.load_dataset(str(folder), split="train").to_list()
    except (ValueError, FileNotFoundError) as error:
        raise InvalidInputError(f"{folder}: cannot load the dataset ({error})") from error


def _match(pred: Sequence[Mapping], ref: Sequence[Mapping]) -> tuple[list[tuple[Mapping, Mapping]], int, int]:
    def by(rows, key):
        return {key(row): row for row in rows}

    keys = [lambda row: row.get("id"), lambda row: (row.get("video_id"), row.get("question"))]
    best: tuple[list, int, int] | None = None
    for key in keys:
        pred_index, ref_index = by(pred, key), by(ref, key)
        shared = [k for k in ref_index if k in pred_index and k is not None]
        if best is None or len(shared) > len(best[0]):
            best = ([(pred_index[k], ref_index[k]) for k in shared], len(pred_index) - len(shared),
                    len(ref_index) - len(shared))  # fmt: skip
    return best


def evaluate_annotations(pred_dir: str | Path, ref_dir: str | Path, num_resamples: int = 1000) -> dict:
    """`{"overall", "by_type", "by_type_and_form", "matched", "only_in_pred", "only_in_ref"}`; each estimate is
    `{"mean", "ci_low", "ci_high", "n"}` of the per-question IoU."""
    from ..evaluation.metrics import bootstrap_mean, score_question

    pred, ref = _rows(pred_dir), _rows(ref_dir)
    pairs, only_pred, only_ref = _match(pred, ref)
    if not pairs:
        raise InvalidInputError(f"{pred_dir} and {ref_dir} share no question (matched by id, then video and text)")
    ious, types, forms, videos = [], [], [], []
    for prediction, reference in pairs:
        selected = [index for index, label in enumerate(prediction["frame_labels"]) if label]
        ious.append(score_question(selected, reference["frame_labels"]).iou)
        types.append(reference["instruction_type"])
        forms.append(reference.get("answer_form") or ("multiple_choice" if reference.get("options") else "open_ended"))
        videos.append(reference.get("video_id") or reference.get("video"))

    def estimate(mask: Sequence[bool]) -> dict:
        values = [iou for iou, keep in zip(ious, mask) if keep]
        clusters = [video for video, keep in zip(videos, mask) if keep]
        return bootstrap_mean(values, clusters, num_resamples=num_resamples).as_dict()

    result = {
        "overall": estimate([True] * len(ious)),
        "by_type": {kind: estimate([t == kind for t in types]) for kind in sorted(set(types))},
        "by_type_and_form": {
            f"{kind}/{form}": estimate([t == kind and f == form for t, f in zip(types, forms)])
            for kind in sorted(set(types)) for form in FORMS if (kind, form) in set(zip(types, forms))
        },
        "matched": len(pairs),
        "only_in_pred": only_pred,
        "only_in_ref": only_ref,
        "without_reference_frames": sum(math.isnan(iou) for iou in ious),
    }  # fmt: skip
    return result


def quality_table(result: Mapping) -> str:
    """Table 7 layout: one row per instruction type, IoU per answer form and overall."""

    def cell(estimate: Mapping | None) -> str:
        if not estimate or estimate["mean"] is None:
            return "-"
        return f"{estimate['mean']:.2f} [{estimate['ci_low']:.2f}, {estimate['ci_high']:.2f}] (n={estimate['n']})"

    lines = ["| Instruction type | IoU, MC | IoU, OE | IoU, all |", "|---|---|---|---|"]
    for kind, overall in result["by_type"].items():
        forms = [cell(result["by_type_and_form"].get(f"{kind}/{form}")) for form in FORMS]
        lines.append(f"| {kind} | {forms[0]} | {forms[1]} | {cell(overall)} |")
    lines.append(f"| all | | | {cell(result['overall'])} |")
    lines.append("")
    lines.append(f"{result['matched']} questions matched; {result['only_in_pred']} only in the annotations, "
                 f"{result['only_in_ref']} only in the reference; {result['without_reference_frames']} reference "
                 "questions mark no frame (IoU undefined, left out).")  # fmt: skip
    return "\n".join(lines)
