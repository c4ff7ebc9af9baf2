"""`videoitg eval`: the four outputs, agreement with the metrics, the swap control, decoding once per video, dataset
sources (folder, Hub cache) and bad inputs. Hand-made benchmarks here have exact, known ground truth."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from videoitg.evaluation import runner
from videoitg.evaluation.metrics import METRIC_NAMES, labels_from_segments, score_question
from videoitg.selection import FrameSelector, SelectedFrames, top_k_indices, uniform_indices
from videoitg.video import InvalidInputError, write_video

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 180, 60), "yellow": (230, 210, 40)}
# Hand-made videos: (video name, duration s, events as (colour, start s, end s)).
VIDEOS = [
    ("a", 40, [("red", 6, 10), ("blue", 20, 24), ("green", 30, 33)]),
    ("b", 36, [("green", 4, 7), ("yellow", 15, 19), ("red", 27, 31)]),
    ("c", 70, [("blue", 10, 16), ("red", 38, 41), ("yellow", 58, 62)]),
]
TYPES = ["semantic", "motion", "semantic_motion"]


def write_event_video(path: Path, duration_s: int, events, fps: int = 2) -> None:
    """A drifting textured background; each event is a coloured square on screen from start to end."""
    height, width = 48, 64
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def frames():
        for index in range(duration_s * fps):
            time_s = index / fps
            frame = (110 + 50 * torch.sin((xs + 2 * index) / 7.0) * torch.cos(ys / 5.0)).expand(3, -1, -1).clone()
            for slot, (colour, start, end) in enumerate(events):
                if start <= time_s < end:
                    left = 4 + 20 * slot
                    frame[:, 16:32, left : left + 16] = torch.tensor(COLOURS[colour], dtype=torch.float32)[:, None, None]
            yield frame.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous()

    write_video(path, frames(), fps=fps)


def make_benchmark(root: Path, split: str = "test") -> Path:
    """A dataset folder in the schema of DESIGN.md: per video one question per event, a non-clue question and an
    existence question without evidence."""
    from datasets import Dataset

    rows = []
    for name, duration_s, events in VIDEOS:
        video = f"videos/{name}.mp4"
        write_event_video(root / video, duration_s, events)
        event_labels = labels_from_segments([[s, e] for _, s, e in events], duration_s)
        questions = [
            (f"When is the {colour} square visible?", TYPES[i], [[float(s), float(e)]]) for i, (colour, s, e) in enumerate(events)
        ]  # fmt: skip
        questions.append(("Describe the video.", "non_clue", [[float(s), float(e)] for _, s, e in events]))
        questions.append(("Is there a purple star?", "semantic", []))
        for number, (question, kind, segments) in enumerate(questions):
            rows.append({
                "video": video, "video_id": name, "question_id": f"{name}-{number}", "question": question,
                "answer": "", "options": [], "instruction_type": kind, "answer_form": "open_ended",
                "relevant_clips": [], "relevant_segments": segments,
                "frame_labels": labels_from_segments(segments, duration_s), "event_frame_labels": event_labels,
                "existence": bool(segments), "duration_s": float(duration_s), "source": "hand-made",
            })  # fmt: skip
    (root / "data").mkdir(parents=True, exist_ok=True)
    Dataset.from_list(rows).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    return make_benchmark(tmp_path_factory.mktemp("bench") / "handmade")


def eval_cli(argv: list[str]) -> int:
    """`videoitg eval ...` through the runner's own sub-parser."""
    parser = argparse.ArgumentParser(prog="videoitg")
    runner.add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


class LabelReader(FrameSelector):
    """Test-only selector that follows the instruction perfectly: it reads the asked question's own labels."""

    name = "label-reader"
    reads_question = True

    def score(self, video, question, row=None):
        labels = row["frame_labels"]
        return np.array([labels[g] if g < len(labels) else 0 for g in video.sampled.grid_indices], dtype=float)

    def choose(self, video, k, scores, row=None, seed=0):
        indices = top_k_indices(scores, k)
        return SelectedFrames(indices, [float(scores[i]) for i in indices])


def load_rows(folder: Path) -> list[dict]:
    return runner.load_benchmark(folder, "test").rows


# --------------------------------------------------------------------------------------------- outputs
@pytest.mark.parametrize("selector", ["uniform", "random", "keyframes", "object-oracle"])
def test_eval_writes_the_four_outputs(benchmark, tmp_path, selector, capsys):
    out = tmp_path / selector
    assert eval_cli(["eval", "--dataset", str(benchmark), "--selector", selector, "--top-k", "2,4",
                     "--out", str(out), "--quiet", "--bootstrap", "200"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["selector"] == selector and results["split"] == "test"
    assert results["num_questions"] == 15 and results["num_videos"] == 3
    assert list(results["k"]) == ["1", "2", "3", "4"]  # 1 and 3 always reported
    for entry in results["k"].values():
        assert set(entry) == {"overall", "by_type", "by_duration"}
        assert set(entry["overall"]) == set(METRIC_NAMES)
        assert set(entry["by_type"]) == {"semantic", "motion", "semantic_motion", "non_clue"}
        assert set(entry["by_duration"]) == {"<1 min", "1-3 min"}
        hit = entry["overall"]["hit_rate"]
        assert hit["n"] == 12  # the 3 existence questions without evidence are left out
        assert hit["ci_low"] <= hit["mean"] <= hit["ci_high"]
    markdown = (out / "results.md").read_text()
    assert f"# Frame selection: {selector}" in markdown and "| k | hit rate |" in markdown
    assert (out / "recall_vs_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in (out / "frame_indices.jsonl").read_text().splitlines()]
    assert [line["doc_id"] for line in lines] == list(range(15))
    for line in lines:
        assert len(line["index"]) == 4 and len(line["scores"]) == 4 and line["k"] == 4
        assert line["scores"] == sorted(line["scores"], reverse=True)
        assert sorted(line["index"]) == line["by_k"]["4"]
        assert line["video"].startswith("videos/")
    assert "hit rate" in capsys.readouterr().out


def test_results_agree_with_the_metrics_on_each_question(benchmark, tmp_path):
    """Uniform sampling is deterministic: the runner's figures equal the metrics of uniform_indices per question."""
    results = runner.run_evaluation(benchmark, "uniform", tmp_path, top_k=[4, 8], progress=False, num_resamples=100)
    rows = load_rows(benchmark)
    for k in (1, 3, 4, 8):
        scores = [score_question(uniform_indices(int(row["duration_s"]), k), row["frame_labels"],
                                 row["relevant_segments"]).as_dict() for row in rows]  # fmt: skip
        for name in METRIC_NAMES:
            expected = np.nanmean([s[name] for s in scores])
            assert results["k"][str(k)]["overall"][name]["mean"] == pytest.approx(expected), (k, name)
        motion = np.nanmean([s["hit_rate"] for s, row in zip(scores, rows) if row["instruction_type"] == "motion"])
        assert results["k"][str(k)]["by_type"]["motion"]["hit_rate"]["mean"] == pytest.approx(motion)


def test_oracle_and_label_reader_are_perfect_where_they_should_be(benchmark, tmp_path):
    oracle = runner.run_evaluation(benchmark, "object-oracle", tmp_path / "o", top_k=[8], progress=False)
    reader = runner.run_evaluation(benchmark, LabelReader(), tmp_path / "r", top_k=[8, 16], progress=False)
    assert reader["selector"] == "label-reader"
    assert reader["k"]["16"]["overall"]["hit_rate"]["mean"] == 1.0  # no question has more than 16 relevant frames
    # At k = 8 its earliest 8 relevant frames of "Describe the video." reach the third event only in video b
    # (events of 3 + 4 + 4 s; a and c have 4 + 4 and 6 + 3 s before it).
    assert reader["k"]["8"]["by_type"]["motion"]["hit_rate"]["mean"] == 1.0
    assert reader["k"]["8"]["by_type"]["non_clue"]["hit_rate"]["mean"] == pytest.approx(1 / 3)
    assert reader["k"]["1"]["by_type"]["semantic"]["precision"]["mean"] == 1.0
    # The oracle sees every event but not which one is asked: with 3 frames over 3 events it covers each event,
    # with 1 frame only the middle one.
    assert oracle["k"]["3"]["by_type"]["semantic"]["hit_rate"]["mean"] == 1.0
    assert oracle["k"]["1"]["overall"]["hit_rate"]["mean"] < 0.5


# --------------------------------------------------------------------------------------------- swap control
def test_swap_control_moves_question_blind_selectors_not_at_all(benchmark, tmp_path):
    for selector in ("uniform", "object-oracle", "random"):
        results = runner.run_evaluation(benchmark, selector, tmp_path / selector, top_k=[4], control="swap",
                                        progress=False, num_resamples=100)  # fmt: skip
        for k, entry in results["k"].items():
            control = entry["control"]
            assert control["num_questions"] == 15
            for name in METRIC_NAMES:
                drop = control["drop"]["overall"][name]
                assert drop["mean"] == 0.0 and drop["ci_low"] == drop["ci_high"] == 0.0, (selector, k, name)
                assert control["overall"][name]["mean"] == pytest.approx(entry["overall"][name]["mean"])
        assert "Swap control" in (tmp_path / selector / "results.md").read_text()


def test_swap_control_moves_an_instruction_follower_a_lot(benchmark, tmp_path):
    results = runner.run_evaluation(benchmark, LabelReader(), tmp_path, top_k=[4], control="swap", progress=False)
    drop = results["k"]["4"]["control"]["drop"]["overall"]
    assert drop["hit_rate"]["mean"] > 0.5 and drop["hit_rate"]["ci_low"] > 0.3
    assert drop["precision"]["mean"] > 0.5
    assert results["k"]["4"]["control"]["overall"]["hit_rate"]["mean"] < 0.5


def test_swap_partners_are_other_questions_about_the_same_video():
    rows = [{"video": "a", "question": "q1"}, {"video": "b", "question": "p"}, {"video": "a", "question": "q2"},
            {"video": "a", "question": "q1 "}, {"video": "c", "question": "only"}]  # fmt: skip
    assert runner.swap_partners(rows) == [2, None, 3, 2, None]


# --------------------------------------------------------------------------------------------- the run itself
@pytest.fixture
def decoded(monkeypatch) -> list[str]:
    """The paths that `load_video` is called with during the test."""
    import videoitg.video

    calls = []
    real_load_video = videoitg.video.load_video

    def counting_load_video(path, **kwargs):
        calls.append(str(path))
        return real_load_video(path, **kwargs)

    monkeypatch.setattr(videoitg.video, "load_video", counting_load_video)
    return calls


def test_each_video_is_decoded_once(benchmark, tmp_path, decoded):
    runner.run_evaluation(benchmark, "keyframes", tmp_path, top_k=[2, 4, 8], control="swap", progress=False,
                          num_resamples=50)  # fmt: skip
    assert sorted(Path(path).name for path in decoded) == ["a.mp4", "b.mp4", "c.mp4"]


def test_limit_and_seed(benchmark, tmp_path):
    first = runner.run_evaluation(benchmark, "random", tmp_path / "1", top_k=[4], limit=7, seed=5, progress=False)
    again = runner.run_evaluation(benchmark, "random", tmp_path / "2", top_k=[4], limit=7, seed=5, progress=False)
    runner.run_evaluation(benchmark, "random", tmp_path / "3", top_k=[4], limit=7, seed=6, progress=False)
    assert first["num_questions"] == 7 and first["num_videos"] == 2
    assert first["k"] == again["k"]
    lines = lambda folder: (folder / "frame_indices.jsonl").read_text()  # noqa: E731
    assert lines(tmp_path / "1") == lines(tmp_path / "2") != lines(tmp_path / "3")


@pytest.mark.slow
def test_a_videoitg_model_folder_is_a_selector(benchmark, tmp_path):
    from videoitg.hub import build_model, export_model

    model, processor = build_model("tiny", "pooling", seed=0)
    model_dir = export_model(model, processor, tmp_path / "model")
    results = runner.run_evaluation(benchmark, str(model_dir), tmp_path / "out", top_k=[4], limit=3, progress=False,
                                    control="swap", num_resamples=50)  # fmt: skip
    assert results["selector"] == str(model_dir) and results["selector_reads_question"]
    lines = [json.loads(line) for line in (tmp_path / "out" / "frame_indices.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and all(len(line["index"]) == 4 for line in lines)
    assert all(line["scores"] == sorted(line["scores"], reverse=True) for line in lines)


def test_without_a_selector_the_embedded_demo_model_scores(benchmark, tmp_path):
    from videoitg.inference import DEFAULT_MODEL

    results = runner.run_evaluation(benchmark, None, tmp_path, top_k=[4], limit=2, progress=False, num_resamples=50)
    assert results["selector_reads_question"] and results["num_questions"] == 2
    # Without an embedded checkpoint the fallback is a random model, and the results say so.
    assert ("RANDOMLY INITIALISED" in results["note"]) == (not DEFAULT_MODEL.is_dir())
    assert ("RANDOMLY INITIALISED" in (tmp_path / "results.md").read_text()) == (not DEFAULT_MODEL.is_dir())


@pytest.mark.slow
def test_dataset_by_hub_id_from_the_cache_offline(benchmark, tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache / "datasets--org--handmade" / "snapshots" / ("0" * 40)
    shutil.copytree(benchmark, snapshot)
    (cache / "datasets--org--handmade" / "refs").mkdir()
    (cache / "datasets--org--handmade" / "refs" / "main").write_text("0" * 40)
    script = (
        "import json; from videoitg.evaluation.runner import run_evaluation; "
        f"r = run_evaluation('org/handmade', 'uniform', {str(tmp_path / 'out')!r}, top_k=[4], progress=False, "
        "num_resamples=50); print(json.dumps([r['num_questions'], r['k']['4']['overall']['hit_rate']['mean']]))"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache")}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, hit_rate = json.loads(done.stdout.strip().splitlines()[-1])
    local = runner.run_evaluation(benchmark, "uniform", tmp_path / "local", top_k=[4], progress=False)
    assert count == 15 and hit_rate == pytest.approx(local["k"]["4"]["overall"]["hit_rate"]["mean"])


def test_a_self_contained_dataset_with_embedded_videos(benchmark, tmp_path, decoded):
    import pyarrow.parquet as pq
    from datasets import Dataset, Video
    from datasets.table import embed_table_storage

    rows = load_rows(benchmark)
    for row in rows:
        row["video"] = str(benchmark / row["video"])
    table = embed_table_storage(Dataset.from_list(rows).cast_column("video", Video()).data.table)
    (tmp_path / "embedded" / "data").mkdir(parents=True)
    pq.write_table(table, tmp_path / "embedded" / "data" / "test-00000-of-00001.parquet")
    embedded = runner.run_evaluation(tmp_path / "embedded", "uniform", tmp_path / "o1", top_k=[4], progress=False)
    assert len(decoded) == 3 and not any(str(benchmark) in path for path in decoded)  # written from the bytes
    local = runner.run_evaluation(benchmark, "uniform", tmp_path / "o2", top_k=[4], progress=False)
    assert embedded["k"] == local["k"]


def test_bad_inputs_are_clear_typed_errors(benchmark, tmp_path):
    from datasets import Dataset

    with pytest.raises(InvalidInputError, match="no such dataset folder"):
        runner.run_evaluation(tmp_path / "missing", "uniform", tmp_path / "o", progress=False)
    with pytest.raises(InvalidInputError, match="no split 'validation'"):
        runner.run_evaluation(benchmark, "uniform", tmp_path / "o", split="validation", progress=False)
    with pytest.raises(InvalidInputError, match="unknown selector"):
        runner.run_evaluation(benchmark, "sharpest-frames", tmp_path / "o", progress=False)
    with pytest.raises(InvalidInputError, match="unknown control"):
        runner.run_evaluation(benchmark, "uniform", tmp_path / "o", control="blank", progress=False)
    with pytest.raises(InvalidInputError, match="top-k values must be >= 1"):
        runner.run_evaluation(benchmark, "uniform", tmp_path / "o", top_k=[0], progress=False)
    broken = tmp_path / "broken"
    (broken / "data").mkdir(parents=True)
    Dataset.from_list([{"video": "x.mp4", "question": "q"}]).to_parquet(str(broken / "data" / "test-00000.parquet"))
    with pytest.raises(InvalidInputError, match="lacks the columns instruction_type, relevant_segments"):
        runner.run_evaluation(broken, "uniform", tmp_path / "o", progress=False)
    with pytest.raises(SystemExit):
        eval_cli(["eval", "--dataset", str(benchmark), "--top-k", "8,x"])


# --------------------------------------------------------------------------------------------- generated benchmark
@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A small rendered synthetic benchmark: 5 videos of 30-40 s, 3 of them in the test split."""
    from videoitg.evaluation.synth import generate_benchmark

    folder = tmp_path_factory.mktemp("synth") / "bench"
    return generate_benchmark(folder, num_videos=5, seed=0, min_seconds=30, max_seconds=40,
                              split_fractions=(0.2, 0.2, 0.6), progress=False)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("selector", ["uniform", "random", "keyframes", "object-oracle"])
def test_eval_on_a_generated_test_split(generated, tmp_path, selector):
    out = tmp_path / selector
    assert eval_cli(["eval", "--dataset", str(generated), "--split", "test", "--selector", selector,
                     "--top-k", "8,16,32", "--out", str(out), "--quiet", "--bootstrap", "200"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    rows = load_rows(generated)
    assert results["num_questions"] == len(rows) and results["num_videos"] == 3
    assert list(results["k"]) == ["1", "3", "8", "16", "32"]
    assert set(results["k"]["8"]["by_type"]) == {row["instruction_type"] for row in rows}
    assert (out / "recall_vs_k.png").stat().st_size > 10_000 and "| 32 |" in (out / "results.md").read_text()
    lines = (out / "frame_indices.jsonl").read_text().splitlines()
    assert len(lines) == len(rows) and all(len(json.loads(line)["index"]) == 32 for line in lines)


def test_swap_control_on_a_generated_split(generated, tmp_path):
    blind = runner.run_evaluation(generated, "object-oracle", tmp_path / "o", top_k=[8], control="swap", progress=False)
    follower = runner.run_evaluation(generated, LabelReader(), tmp_path / "r", top_k=[8], control="swap", progress=False)
    assert blind["k"]["8"]["control"]["drop"]["overall"]["hit_rate"]["mean"] == 0.0
    assert blind["k"]["8"]["control"]["drop"]["overall"]["recall"]["mean"] == 0.0
    assert follower["k"]["8"]["control"]["drop"]["overall"]["hit_rate"]["mean"] > 0.4
    assert follower["k"]["8"]["control"]["drop"]["overall"]["precision"]["mean"] > 0.5


def uniform_prediction(segments, num_grid_frames: int, k: int) -> float:
    """Probability that k uniformly spaced frames hit every segment, for segments at random positions: a window of
    m frames contains one of the k evenly spaced picks with probability k m / (D - m + 1) (each pick lies in m of
    the D - m + 1 window positions), segments taken as independent."""
    from videoitg.evaluation.metrics import segment_frames

    probability = 1.0
    for start, end in segments:
        width = len(segment_frames(start, end))
        probability *= min(1.0, k * width / (num_grid_frames - width + 1))
    return probability


def test_uniform_hit_rate_agrees_with_the_analytic_value():
    """Uniform hit rate measured with the metrics on the generator's annotations (150 planned videos, 30 s-15 min,
    the default settings) against the prediction from segment lengths: within 3 binomial standard deviations."""
    from videoitg.evaluation.synth_plan import PlanSettings, diverse_windows, plan_video
    from videoitg.video import sample_grid

    plans = [plan_video([0, index], PlanSettings()) for index in range(150)]
    questions = [(plan.scene.duration_s, question.segments) for plan in plans for question in plan.questions]
    # "Describe the video." and existence questions answered "no" need windows at fixed places (beginning, middle,
    # end, each 1/8 of the video wide): any 8 evenly spread frames hit all three, whatever the video.
    windows = [(duration, segments) for duration, segments in questions if segments == diverse_windows(duration)]
    events = [(duration, segments) for duration, segments in questions if segments != diverse_windows(duration)]
    assert len(windows) > 50 and len(events) > 600

    def measured(duration: int, segments, k: int, widen: int = 0) -> float:
        _, grid = sample_grid(duration)
        picks = [grid[p] for p in uniform_indices(len(grid), k)]
        segments = [[start, end + widen] for start, end in segments]
        return score_question(picks, labels_from_segments(segments, duration), segments).hit_rate

    for k in (8, 16, 32):
        assert all(measured(duration, segments, k) == 1.0 for duration, segments in windows)
        hits = sum(measured(duration, segments, k) for duration, segments in events)
        predicted = np.array([uniform_prediction(segments, duration, k) for duration, segments in events])
        sigma = float(np.sqrt((predicted * (1 - predicted)).sum()))
        assert abs(hits - predicted.sum()) < 3 * sigma, (k, hits, predicted.sum(), sigma)
    # The check has teeth: segments one second longer than they are (an off-by-one in coverage) are caught.
    widened = sum(measured(duration, segments, 32, widen=1) for duration, segments in events)
    predicted = np.array([uniform_prediction(segments, duration, 32) for duration, segments in events])
    assert widened - predicted.sum() > 3 * float(np.sqrt((predicted * (1 - predicted)).sum()))


def test_uniform_on_the_rendered_split_matches_the_annotations(generated, tmp_path):
    """End to end (decoding included), uniform's figures equal the metrics of uniform picks on the annotated grid."""
    from videoitg.video import sample_grid

    results = runner.run_evaluation(generated, "uniform", tmp_path, top_k=[8], progress=False, num_resamples=50)
    rows = load_rows(generated)
    hits = []
    for row in rows:
        _, grid = sample_grid(row["duration_s"])
        picks = [grid[p] for p in uniform_indices(len(grid), 8)]
        hits.append(score_question(picks, row["frame_labels"], row["relevant_segments"]).hit_rate)
    assert results["k"]["8"]["overall"]["hit_rate"]["mean"] == pytest.approx(np.nanmean(hits))
