"""Training: loss goes down, parameter groups, exact gradient accumulation, resume, LoRA + merge, cached features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from videoitg.hub import build_model, export_model
from videoitg.train.options import TrainOptions
from videoitg.video import write_video

COLOURS = {"red": (230, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 230), "yellow": (240, 220, 30)}


def _video_frames(events: dict[str, tuple[int, int]], seconds: int, fps: int = 2):
    """Grey background; each colour's square is on screen during its [start, end) seconds."""
    for index in range(seconds * fps):
        frame = torch.full((48, 64, 3), 90, dtype=torch.uint8)
        for slot, (colour, (start, end)) in enumerate(events.items()):
            if start <= index / fps < end:
                frame[10:34, 4 + slot * 15 : 16 + slot * 15] = torch.tensor(COLOURS[colour], dtype=torch.uint8)
        yield frame


@pytest.fixture(scope="module")
def grounding_dataset(tmp_path_factory) -> Path:
    """4 videos x 2 questions in the DESIGN.md schema, as a local Parquet dataset folder."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("grounding")
    (root / "videos").mkdir()
    layouts = [
        {"red": (1, 3), "blue": (6, 8)},
        {"green": (0, 2), "yellow": (5, 9)},
        {"blue": (2, 4), "green": (7, 9)},
        {"yellow": (1, 2), "red": (4, 7)},
    ]
    rows = []
    for number, events in enumerate(layouts):
        seconds = 10
        path = root / "videos" / f"{number}.mp4"
        write_video(path, _video_frames(events, seconds), fps=2)
        for colour, (start, end) in events.items():
            labels = [1 if start <= second < end else 0 for second in range(seconds)]
            rows.append({
                "video": f"videos/{number}.mp4", "video_id": str(number), "question": f"When is the {colour} square shown?",
                "answer": f"{start}-{end} s", "options": [], "instruction_type": "semantic", "relevant_clips": [0, 1],
                "relevant_segments": [[float(start), float(end)]], "frame_labels": labels, "duration_s": float(seconds),
                "source": "test",
            })  # fmt: skip
    (root / "data").mkdir()
    Dataset.from_list(rows).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    model, processor = build_model("tiny", "pooling", seed=0)
    return export_model(model, processor, tmp_path_factory.mktemp("model") / "tiny")


def options(tiny_model_dir, grounding_dataset, output_dir, **overrides) -> TrainOptions:
    values = {
        "model": str(tiny_model_dir), "dataset": str(grounding_dataset), "output_dir": str(output_dir),
        "report_to": [], "logging_steps": 1, "save_steps": 1000, "train_vision_tower": True, "frame_cache": 8,
        "learning_rate": 1e-3, "head_learning_rate": 1e-2, "warmup_ratio": 0.0, "lr_scheduler": "constant",
    }  # fmt: skip
    return TrainOptions(**{**values, **overrides})


def dataset_loss(model, trainer) -> float:
    model.eval()
    with torch.no_grad():
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(trainer.train_dataset))])
        loss = model(**batch).loss.item()
    model.train()
    return loss


def test_training_lowers_the_loss_and_the_head_has_its_own_learning_rate(tiny_model_dir, grounding_dataset, tmp_path):
    from videoitg.train.trainer import build_trainer

    trainer, _ = build_trainer(options(tiny_model_dir, grounding_dataset, tmp_path / "run", max_steps=30,
                                       batch_videos=2, questions_per_video=2))  # fmt: skip
    before = dataset_loss(trainer.model, trainer)
    trainer.train()
    after = dataset_loss(trainer.model, trainer)
    assert after < 0.8 * before, (before, after)
    learning_rates = {group["name"]: group["lr"] for group in trainer.optimizer.param_groups}
    assert learning_rates["head/no_decay"] == pytest.approx(1e-2)
    assert learning_rates["model"] == pytest.approx(1e-3)
    head_parameters = {id(p) for g in trainer.optimizer.param_groups if g["name"].startswith("head") for p in g["params"]}
    assert head_parameters == {id(p) for p in trainer.model.frame_head.parameters()}


def test_frozen_vision_tower_is_not_optimised(tiny_model_dir, grounding_dataset, tmp_path):
    from videoitg.train.trainer import build_trainer

    trainer, _ = build_trainer(options(tiny_model_dir, grounding_dataset, tmp_path / "run", train_vision_tower=False))
    optimised = {id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in trainer.model.vision_tower.parameters()}
    assert {id(p) for p in trainer.model.multi_modal_projector.parameters()} <= optimised


def _one_sgd_step(tiny_model_dir, grounding_dataset, output_dir, batch_videos, accumulation):
    from videoitg.train.trainer import build_trainer

    trainer, _ = build_trainer(options(tiny_model_dir, grounding_dataset, output_dir, max_steps=1,
                                       batch_videos=batch_videos, gradient_accumulation_steps=accumulation,
                                       questions_per_video=1, learning_rate=0.5, head_learning_rate=0.5))  # fmt: skip
    trainer.args.optim = "sgd"
    trainer.args.max_grad_norm = 0.0
    start = {name: parameter.detach().clone() for name, parameter in trainer.model.named_parameters()}
    result = trainer.train()
    # SGD: the update is the gradient times the learning rate, so equal updates mean equal gradients.
    steps = {name: (start[name] - p.detach()) / 0.5 for name, p in trainer.model.named_parameters()}
    return result.training_loss, steps


def test_gradient_accumulation_equals_a_larger_batch(tiny_model_dir, grounding_dataset, tmp_path):
    # 8 items (one question each): one batch of 8 against 8 accumulated batches of 1.
    loss_big, grads_big = _one_sgd_step(tiny_model_dir, grounding_dataset, tmp_path / "a", batch_videos=8, accumulation=1)
    loss_acc, grads_acc = _one_sgd_step(tiny_model_dir, grounding_dataset, tmp_path / "b", batch_videos=1, accumulation=8)
    assert loss_big == pytest.approx(loss_acc, rel=1e-4)
    for name, gradient in grads_big.items():
        torch.testing.assert_close(grads_acc[name], gradient, atol=2e-5, rtol=1e-3, msg=name)
    assert any(gradient.abs().sum() > 0 for gradient in grads_big.values())


def test_resume_continues_with_the_same_optimizer_state(tiny_model_dir, grounding_dataset, tmp_path):
    from transformers import TrainerCallback

    from videoitg.train.trainer import build_trainer

    settings = {"max_steps": 6, "save_steps": 2, "batch_videos": 2, "questions_per_video": 2, "save_total_limit": None}
    straight, _ = build_trainer(options(tiny_model_dir, grounding_dataset, tmp_path / "straight", **settings))
    straight.train()

    class StopAtFour(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step >= 4

    interrupted, _ = build_trainer(options(tiny_model_dir, grounding_dataset, tmp_path / "resumed", **settings))
    interrupted.add_callback(StopAtFour())
    interrupted.train()
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir()
    resumed, _ = build_trainer(options(tiny_model_dir, grounding_dataset, tmp_path / "resumed", resume=True, **settings))
    resumed.train(resume_from_checkpoint=True)
    assert resumed.state.global_step == 6
    for (name, expected), actual in zip(straight.model.named_parameters(), resumed.model.parameters()):
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.slow
def test_lora_saves_adapters_and_merges_to_a_plain_folder(tiny_model_dir, grounding_dataset, tmp_path):
    import subprocess
    import sys

    from peft import PeftModel

    from videoitg.hub import load_model
    from videoitg.train.trainer import train

    train(options(tiny_model_dir, grounding_dataset, tmp_path / "lora", max_steps=4, lora=True, lora_rank=4,
                  batch_videos=2, questions_per_video=2))  # fmt: skip
    adapter = tmp_path / "lora" / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert "frame_head" in config["modules_to_save"]
    assert "frame_head" not in json.dumps(config["target_modules"])
    base, processor = load_model(tiny_model_dir)
    adapter_model = PeftModel.from_pretrained(base, adapter).eval()
    frames = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    inputs = processor(videos=frames, text="When is the red square shown?")
    with torch.no_grad():
        adapter_scores = adapter_model(**{k: v for k, v in inputs.items() if k in processor.model_input_names}).scores

    from videoitg.train.trainer import merge_adapter

    merged = merge_adapter(str(tiny_model_dir), str(adapter), str(tmp_path / "merged"))
    torch.save(frames, tmp_path / "frames.pt")
    script = (
        "import sys, torch; sys.modules['videoitg'] = None\n"
        "from transformers import AutoModel, AutoProcessor\n"
        f"m = AutoModel.from_pretrained({str(merged)!r}, trust_remote_code=True).eval()\n"
        f"p = AutoProcessor.from_pretrained({str(merged)!r}, trust_remote_code=True)\n"
        f"i = p(videos=torch.load({str(tmp_path / 'frames.pt')!r}), text='When is the red square shown?')\n"
        "print(m(**{k: v for k, v in i.items() if k in p.model_input_names}).scores.tolist())\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-2000:]
    merged_scores = torch.tensor(json.loads(completed.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(merged_scores, adapter_scores, atol=1e-5, rtol=1e-4)


def test_features_and_frames_give_the_same_loss(tiny_model_dir, grounding_dataset, tmp_path):
    from videoitg.hub import load_model
    from videoitg.train.data import FrameSelectionCollator, GroundingVideoDataset, load_split, precompute_features

    model, processor = load_model(tiny_model_dir)
    rows, root = load_split(str(grounding_dataset), "train")
    features_dir = precompute_features(model, processor, rows, root, tmp_path / "features", dtype=torch.float32)
    collator = FrameSelectionCollator(processor)
    from_frames = GroundingVideoDataset(rows, root, processor.video_processor, questions_per_video=2)
    from_features = GroundingVideoDataset(rows, root, processor.video_processor, questions_per_video=2,
                                          features_dir=features_dir)  # fmt: skip
    with torch.no_grad():
        frames_batch = collator([from_frames[0], from_frames[1]])
        features_batch = collator([from_features[0], from_features[1]])
        assert "vision_features" in features_batch and "pixel_values_videos" not in features_batch
        torch.testing.assert_close(model(**features_batch).loss, model(**frames_batch).loss, atol=1e-5, rtol=1e-5)


def test_in_training_metrics_on_known_logits():
    import numpy as np
    from transformers import EvalPrediction

    from videoitg.train.trainer import frame_selection_metrics

    labels = np.array([[0, 1, 1, 0, 0, 0, 1, 0, -100, -100],  # two evidence runs: [1, 3) and [6, 7)
                       [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]])  # fmt: skip
    logits = np.array([[0.0, 5.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0, 9.0, 9.0],  # padding must not be picked
                       [3.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])  # fmt: skip
    metrics = frame_selection_metrics(EvalPrediction(predictions=logits, label_ids=labels), ks=(1, 2))
    assert metrics["hit_rate@1"] == 0.0  # video 1 needs both runs; video 2 picks frame 0
    assert metrics["hit_rate@2"] == 0.5  # video 1: frames 1 and 6 cover both runs
    assert metrics["f1@2"] == pytest.approx((2 * (1.0 * 2 / 3) / (1.0 + 2 / 3) + 0.0) / 2)
