"""Frame-selection metrics on hand-made cases with known answers, and the `evaluate` module that wraps them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from importlib.resources import files

import numpy as np
import pytest

from videoitg.evaluation.metrics import (
    METRIC_NAMES,
    MetricInputError,
    aggregate,
    bootstrap_mean,
    duration_bucket,
    labels_from_segments,
    score_question,
    score_questions,
    segment_frames,
)


def test_segment_covers_the_seconds_it_overlaps():
    assert list(segment_frames(3, 5)) == [3, 4]
    assert list(segment_frames(3.2, 5.1)) == [3, 4, 5]
    assert list(segment_frames(0.5, 0.7)) == [0]
    assert list(segment_frames(7, 7)) == [7]  # a zero-length moment still has a frame
    assert labels_from_segments([[1, 3], [6.5, 7]], 9) == [0, 1, 1, 0, 0, 0, 1, 0, 0]
    assert labels_from_segments([[8, 12]], 10) == [0] * 8 + [1, 1]  # clipped to the grid
    for bad in ((5, 3), (-1, 2), (math.nan, 2)):
        with pytest.raises(MetricInputError, match="segment"):
            segment_frames(*bad)


def test_hit_rate_needs_every_segment():
    segments = [[2, 4], [10, 12], [20, 21]]
    labels = labels_from_segments(segments, 30)
    two_of_three = score_question([3, 11, 25], labels, segments)
    assert two_of_three.hit_rate == 0.0
    assert two_of_three.segment_recall == pytest.approx(2 / 3)
    all_three = score_question([2, 11, 20], labels, segments)
    assert all_three.hit_rate == 1.0 and all_three.segment_recall == 1.0
    # Frame 4 is outside [2, 4] (it stands for second 4-5); frame 12 outside [10, 12].
    edges = score_question([4, 12, 20], labels, segments)
    assert edges.hit_rate == 0.0 and edges.segment_recall == pytest.approx(1 / 3)


def test_recall_precision_f1_iou_known_values():
    labels = [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]  # relevant {2, 3, 4, 5}
    score = score_question([3, 4, 8], labels, [[2, 6]])
    assert score.recall == pytest.approx(2 / 4)
    assert score.precision == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(4 / 7)  # 2PR / (P + R) with P = 2/3, R = 1/2
    assert score.iou == pytest.approx(2 / 5)  # {3, 4} / {2, 3, 4, 5, 8}
    perfect = score_question([2, 3, 4, 5], labels, [[2, 6]])
    assert (perfect.recall, perfect.precision, perfect.f1, perfect.iou) == (1.0, 1.0, 1.0, 1.0)
    miss = score_question([0, 9], labels, [[2, 6]])
    assert (miss.hit_rate, miss.recall, miss.precision, miss.f1, miss.iou) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_duplicates_count_once_and_frames_past_the_end_are_irrelevant():
    labels = [0, 1, 1, 0]
    score = score_question([1, 1, 50], labels, [[1, 3]])
    assert score.precision == pytest.approx(1 / 2)
    assert score.iou == pytest.approx(1 / 3)  # {1} / {1, 2, 50}
    assert score_question([], labels, [[1, 3]]).precision == 0.0


def test_questions_without_evidence_are_nan_and_skipped():
    no_evidence = score_question([0, 1], [0, 0, 0], [])
    assert all(math.isnan(value) for value in no_evidence.as_dict().values())
    per_question = score_questions([[1], [0], [2]], [[0, 1, 0], [0, 1, 0], [0, 0, 0]], [[[1, 2]], [[1, 2]], []])
    estimate = bootstrap_mean(per_question["hit_rate"])
    assert estimate.mean == pytest.approx(0.5) and estimate.n == 2
    assert bootstrap_mean([math.nan, math.nan]).as_dict() == {"mean": None, "ci_low": None, "ci_high": None, "n": 0}


def test_bad_selections_and_labels_are_typed_errors():
    with pytest.raises(MetricInputError, match="integers >= 0"):
        score_question([-1], [1, 0], [[0, 1]])
    with pytest.raises(MetricInputError, match="integers >= 0"):
        score_question([1.5], [1, 0], [[0, 1]])
    with pytest.raises(MetricInputError, match="only 0 and 1"):
        score_question([0], [2, 0], [[0, 1]])
    with pytest.raises(MetricInputError, match="2 selections but 1"):
        score_questions([[0], [1]], [[1, 0]])


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_questions():
    rng = np.random.default_rng(0)
    small = rng.random(30) < 0.4
    large = rng.random(3000) < 0.4
    a, b = bootstrap_mean(small, seed=1), bootstrap_mean(large, seed=1)
    assert a.ci_low <= a.mean <= a.ci_high and b.ci_low <= b.mean <= b.ci_high
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low) / 5
    # For a proportion p over n questions the 95% interval is about p +- 1.96 sqrt(p(1-p)/n).
    expected_half_width = 1.96 * math.sqrt(b.mean * (1 - b.mean) / len(large))
    assert (b.ci_high - b.ci_low) / 2 == pytest.approx(expected_half_width, rel=0.15)
    assert bootstrap_mean(small, seed=1) == a  # seeded: reproducible
    assert bootstrap_mean([0.25, 0.25, 0.25]).as_dict() == {"mean": 0.25, "ci_low": 0.25, "ci_high": 0.25, "n": 3}


def test_cluster_bootstrap_is_wider_when_questions_of_a_video_agree():
    # 20 videos x 10 questions; every question of a video has the same outcome: only 20 independent draws.
    per_video = np.random.default_rng(3).random(20) < 0.5
    values = np.repeat(per_video, 10).astype(float)
    videos = np.repeat(np.arange(20), 10)
    naive = bootstrap_mean(values)
    clustered = bootstrap_mean(values, clusters=videos)
    assert clustered.mean == naive.mean
    assert (clustered.ci_high - clustered.ci_low) > 2.5 * (naive.ci_high - naive.ci_low)


def test_aggregate_groups_by_type_and_duration():
    selections = [[0], [5], [0], [5], [0]]
    labels = [[1] + [0] * 9] * 5
    per_question = score_questions(selections, labels, [[[0, 1]]] * 5)  # hits: 1, 0, 1, 0, 1
    types = ["semantic", "semantic", "motion", "motion", "non_clue"]
    durations = [30, 90, 200, 600, 45]
    summary = aggregate(per_question, types, durations, clusters=["a", "b", "c", "d", "e"], num_resamples=200)
    assert set(summary) == {"overall", "by_type", "by_duration"}
    assert summary["overall"]["hit_rate"]["mean"] == pytest.approx(3 / 5)
    assert list(summary["by_type"]) == ["motion", "non_clue", "semantic"]
    assert summary["by_type"]["semantic"]["hit_rate"]["mean"] == pytest.approx(1 / 2)
    assert summary["by_type"]["non_clue"]["recall"] == {"mean": 1.0, "ci_low": 1.0, "ci_high": 1.0, "n": 1}
    assert list(summary["by_duration"]) == ["<1 min", "1-3 min", "3-8 min", ">8 min"]
    assert summary["by_duration"]["<1 min"]["hit_rate"]["mean"] == 1.0  # questions 0 and 4
    assert summary["by_duration"]["1-3 min"]["hit_rate"]["n"] == 1
    assert [duration_bucket(d) for d in (0, 59.9, 60, 479, 480, 5000)] == [
        "<1 min", "<1 min", "1-3 min", "3-8 min", ">8 min", ">8 min"]  # fmt: skip
    assert set(summary["overall"]) == set(METRIC_NAMES)
    json.dumps(summary)  # JSON-ready


@pytest.mark.slow
def test_evaluate_module_loads_offline_and_matches_the_package(tmp_path):
    """`evaluate.load(folder)` in a fresh process without network or Hub cache gives the package's numbers."""
    folder = files("videoitg.evaluation") / "videoitg_metric"
    predictions = [[3, 10, 17], [0, 8], [2]]
    references = [[0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1] + [0] * 6, [0, 1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 1]]
    script = f"""
import json, evaluate
metric = evaluate.load({str(folder)!r})
with_types = metric.compute(predictions={predictions}, references={references},
                            instruction_types=["semantic", "motion", "motion"], durations_s=[18, 9, 4])
default_segments = metric.compute(predictions=[[1, 5]], references=[[0, 1, 1, 0, 0, 1]])
print(json.dumps({{"with_types": with_types, "default_segments": default_segments}}))
"""
    env = {**os.environ, "HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "hf")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    output = json.loads(done.stdout.strip().splitlines()[-1])
    expected = score_questions(predictions, references, [[[3, 5], [10, 12]], [[1, 3]], [[2, 4]]])
    result = output["with_types"]
    for name in METRIC_NAMES:
        assert result[name] == pytest.approx(float(np.nanmean(expected[name])))
    assert result["n_questions"] == 3
    assert result["details"]["by_type"]["motion"]["hit_rate"]["mean"] == pytest.approx(0.5)
    # Without segments, each run of positive labels is one segment: [1, 3] is hit by 1, [5, 6] by 5.
    default = output["default_segments"]
    assert default["hit_rate"] == 1.0 and default["recall"] == pytest.approx(2 / 3)
