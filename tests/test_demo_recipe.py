"""The demo model's training recipe: event questions from a synthetic dataset's events, and vision-tower tagging."""

from __future__ import annotations

import json

import pytest
import torch

from videoitg.train.event_queries import event_queries, load_event_queries
from videoitg.train.vision_tagging import (
    frame_tags,
    load_tagged_frames,
    object_tag_count,
    pretrain_vision_tower,
    tag_names,
)


def event(kind="shape", colour="red", shape=None, text=None, direction=None, speed=None, start_s=0, end_s=1,
          x=0.0, y=0.0, width=20, height=20, vx=0.0, vy=0.0) -> dict:  # fmt: skip
    return {"kind": kind, "colour": colour, "shape": shape, "text": text, "direction": direction, "speed": speed,
            "start_s": start_s, "end_s": end_s, "x": x, "y": y, "width": width, "height": height,
            "vx": vx, "vy": vy}  # fmt: skip


EVENTS = [
    event(colour="red", shape="star", start_s=2, end_s=5, x=0, y=0),
    event(colour="blue", shape="circle", direction="left", speed="fast", start_s=4, end_s=8, x=100, y=70, vx=-10),
    event(kind="text", colour="green", text="7", start_s=10, end_s=12, x=50, y=40),
    event(colour="red", shape="circle", start_s=13, end_s=14, x=0, y=0),
]


def frames_of(labels) -> list[int]:
    return [index for index, value in enumerate(labels) if value]


def test_event_queries_mark_every_event_that_matches_the_cue():
    queries = dict(event_queries(EVENTS, num_frames=16))
    assert len(queries) == len(event_queries(EVENTS, num_frames=16))  # one question per cue, no repeats
    assert frames_of(queries["When is the red star on screen?"]) == [2, 3, 4]
    assert frames_of(queries["When is something red on screen?"]) == [2, 3, 4, 13]
    assert frames_of(queries["When is a circle on screen?"]) == [4, 5, 6, 7, 13]
    assert frames_of(queries["When does something move left?"]) == [4, 5, 6, 7]
    assert frames_of(queries["When does the blue circle move left?"]) == [4, 5, 6, 7]
    assert frames_of(queries["When does something move quickly?"]) == [4, 5, 6, 7]
    assert frames_of(queries["When is the number 7 shown?"]) == [10, 11]
    assert frames_of(queries["When is something green on screen?"]) == [10, 11]
    assert "When is a star on screen?" in queries and "When does something move slowly?" not in queries


def test_frame_tags_name_what_each_second_shows():
    names = tag_names()
    tags = frame_tags(EVENTS, num_frames=16, frame_width=128, frame_height=96)
    shown = {second: {names[j] for j in torch.nonzero(tags[second]).flatten().tolist()} for second in range(16)}
    assert shown[0] == set() and shown[9] == set()
    assert shown[2] == {"red", "star", "cell0"}  # centre (10, 10): top-left cell
    # Second 4: the star (last second) and the circle moving left from x = 100 (centre 110 -> cell column 3).
    assert shown[4] == {"red", "star", "cell0", "blue", "circle", "moving", "left", "fast", "cell15"}
    # Second 7: the circle has moved 30 px left (centre 80 -> column 2), still in the bottom row.
    assert {"blue", "circle", "left", "cell14"} <= shown[7]
    assert shown[10] == {"green", "7", "cell9"}  # centre (60, 50): column 1, row 2
    assert shown[13] == {"red", "circle", "cell0"}


def test_patch_tags_mark_the_patches_an_object_covers():
    names = tag_names()
    frame_level, patches = frame_tags(EVENTS, num_frames=16, frame_width=128, frame_height=96, patch_grid=4)
    assert torch.equal(frame_level, frame_tags(EVENTS, num_frames=16, frame_width=128, frame_height=96))
    assert patches.shape == (16, 16, object_tag_count())

    def tagged(second):
        return {(patch, names[j]) for patch, j in torch.nonzero(patches[second]).tolist()}

    # The 20 x 20 px star at the top-left covers 62% x 83% of patch 0 and nothing else.
    assert tagged(2) == {(0, "red"), (0, "star")}
    # At second 7 the circle's box spans x 70-90 px, y 70-90 px: 47% of patch 14 (x 64-96, y 72-96), 5% of patch 10.
    assert {patch for patch, name in tagged(7) if name == "circle"} == {14}
    assert {(14, "left"), (14, "fast"), (14, "moving")} <= tagged(7)
    # The 20 x 20 px text at x 50-70, y 40-60 covers under a quarter of each of four patches: its centre's patch (9).
    assert tagged(10) == {(9, "green"), (9, "7")}
    assert patches[9].sum() == 0


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    from videoitg.evaluation.synth import generate_benchmark

    folder = tmp_path_factory.mktemp("synth") / "bench"
    return generate_benchmark(folder, num_videos=3, seed=3, min_seconds=30, max_seconds=36, fps=1,
                              split_fractions=(0.67, 0.33, 0.0), progress=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from videoitg.hub import build_model, export_model

    model, processor = build_model("tiny", "pooling", seed=0)
    return export_model(model, processor, tmp_path_factory.mktemp("tiny") / "model")


def test_tagged_frames_line_up_with_the_events(synth_dataset, tiny_model):
    from datasets import load_dataset

    from videoitg.hub import load_model

    model, processor = load_model(tiny_model)
    patch_size = model.config.vision_config.patch_size
    tagged = load_tagged_frames(str(synth_dataset), "train", processor.video_processor, patch_size)
    rows = load_dataset(str(synth_dataset), split="train")
    durations = {row["video_id"]: len(row["frame_labels"]) for row in rows}
    assert len(tagged.frames) == len(tagged.tags) == sum(durations.values())
    assert tagged.frames.dtype == torch.uint8 and tagged.frames.shape[-1] == processor.video_processor.size["width"]
    # A frame is tagged with a colour exactly when the benchmark says an event is on screen then.
    on_screen = torch.cat([torch.tensor(row["event_frame_labels"]) for row in _first_row_per_video(rows)])
    assert torch.equal(tagged.tags[:, :8].amax(dim=1).long(), on_screen.long())
    grid = model.config.vision_config.image_size // patch_size
    assert tagged.patch_tags.shape == (len(tagged.frames), grid * grid, object_tag_count())
    # Whatever a patch shows, its frame shows.
    assert (tagged.patch_tags.amax(dim=1).float() <= tagged.tags[:, : object_tag_count()]).all()
    assert tagged.patch_tags.sum() > 0


def _first_row_per_video(rows):
    seen = {}
    for row in rows:
        seen.setdefault(row["video_id"], row)
    return [seen[video_id] for video_id in sorted(seen)]


def test_vision_tagging_lowers_the_loss_and_trains_only_the_tower(synth_dataset, tiny_model):
    from videoitg.hub import load_model

    model, processor = load_model(tiny_model)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    tagged = load_tagged_frames(str(synth_dataset), "train", processor.video_processor, 8)
    log = pretrain_vision_tower(model, processor, tagged, tagged, steps=60, batch_size=32, learning_rate=3e-3,
                                log_every=20)  # fmt: skip
    assert log[0]["step"] == 1 and log[-1]["loss"] < 0.5 * log[0]["loss"]
    assert log[-1]["auc_colour"] > 0.6
    after = model.state_dict()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("vision_tower.") for name in changed)


def test_pretrain_vision_command_writes_a_loadable_model(synth_dataset, tiny_model, tmp_path):
    from transformers import AutoModel

    from videoitg.cli import main

    out = tmp_path / "tagged"
    assert main(["pretrain-vision", "--model", str(tiny_model), "--dataset", str(synth_dataset), "--output-dir",
                 str(out), "--steps", "3", "--batch-size", "8"]) == 0  # fmt: skip
    model = AutoModel.from_pretrained(out, trust_remote_code=True)
    assert model.config.model_type == "videoitg"
    log = json.loads((out / "vision_tagging_log.json").read_text())
    assert log[-1]["step"] == 3 and "auc_colour" in log[-1]


def test_pretrain_vision_refuses_a_dataset_without_events(tiny_model, tmp_path, capsys):
    from videoitg.cli import main

    folder = tmp_path / "plain"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.jsonl").write_text(json.dumps({"video": "v.mp4", "video_id": "v", "question": "q",
                                                             "frame_labels": [0, 1]}) + "\n")  # fmt: skip
    assert main(["pretrain-vision", "--model", str(tiny_model), "--dataset", str(folder), "--output-dir",
                 str(tmp_path / "o"), "--steps", "1"]) == 2  # fmt: skip
    assert "events" in capsys.readouterr().err


def test_training_items_carry_event_questions(synth_dataset, tiny_model):
    from videoitg.hub import load_model
    from videoitg.train.data import GroundingVideoDataset, load_split

    _, processor = load_model(tiny_model)
    rows, root = load_split(str(synth_dataset), "train")
    extra = load_event_queries(str(synth_dataset), "train", rows)
    dataset = GroundingVideoDataset(rows, root, processor.video_processor, questions_per_video=2,
                                    extra_questions=extra, extra_per_item=3)  # fmt: skip
    item = dataset[0]
    video_id = dataset.video_ids[item["video"]]
    assert len(item["questions"]) == 2 + 3
    known = dict(extra[video_id])
    for question, labels in zip(item["questions"][2:], item["labels"][2:]):
        assert known[question] == labels and len(labels) == len(item["labels"][0])
