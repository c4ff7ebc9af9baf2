"""`videoitg pretrain-vision`: teach a from-scratch vision tower what synthetic frames show, before grounding.

A VideoITG model for real use starts from a pretrained SigLIP. The demo model is trained from scratch on a CPU,
and a vision tower that must discover colours and shapes through the grounding loss alone learns them too slowly
to ever route an instruction to them (measured: docs/demo-model.md). The synthetic benchmark knows what every frame
shows (its `events` config), so the tower is first trained to name it, with one linear tagger and multi-label
BCE at two levels of the tower's `vision_feature_layer` features:

- frame: the features averaged over the patches (what the LLM sees at one token per frame) carry the colour, shape,
  text, motion and place tags of every 1-fps frame;
- patch: every patch token carries the tags of the objects that cover at least a quarter of it (and of the
  object whose centre it holds). This tells the
  tower where each object is, which teaches shapes far faster than the frame tags alone.

The tagger is dropped afterwards; the output is a model folder for `videoitg features` / `videoitg train`.
"""

from __future__ import annotations

import argparse
import functools
import math
import time
from dataclasses import dataclass
from pathlib import Path

from ..evaluation.metrics import segment_frames
from ..video import InvalidInputError

GRID = 4  # place tags: the frame cut into GRID x GRID cells; the cell of each object's centre
PATCH_COVER = 0.25  # an object tags a patch when it covers at least this share of it


@functools.cache
def tag_groups() -> dict[str, tuple[str, ...]]:
    """The tags by kind, in column order; all but `place` belong to an object and also tag patches."""
    from ..evaluation.synth_scene import COLOURS, DIGITS, DIRECTIONS, SHAPES, SPEEDS, WORDS

    return {
        "colour": tuple(COLOURS),
        "shape": SHAPES,
        "text": DIGITS + WORDS,
        "motion": ("moving", *DIRECTIONS, *SPEEDS),
        "place": tuple(f"cell{index}" for index in range(GRID * GRID)),
    }


def tag_names() -> list[str]:
    return [name for names in tag_groups().values() for name in names]


def object_tag_count() -> int:
    """Tags that belong to an object (all but the place cells): the patch-level tags."""
    return len(tag_names()) - len(tag_groups()["place"])


def _cell(x: float, y: float, grid: int) -> int:
    """Row-major index of the cell of a `grid` x `grid` division that holds the point (x, y), in frame shares."""
    column, row = (min(grid - 1, max(0, int(value * grid))) for value in (x, y))
    return row * grid + column


def frame_tags(events, num_frames: int, frame_width: int, frame_height: int, patch_grid: int = 0):
    """The tags of each 1-fps frame of one video, from its event rows.

    Returns `[num_frames, len(tag_names())]` 0/1, and with `patch_grid` > 0 also
    `[num_frames, patch_grid**2, object_tag_count()]` 0/1: the tags of each patch (row-major).
    """
    import torch

    names = tag_names()
    column = {name: index for index, name in enumerate(names)}
    tags = torch.zeros(num_frames, len(names))
    patches = torch.zeros(num_frames, patch_grid * patch_grid, object_tag_count(), dtype=torch.uint8)
    edges = torch.arange(patch_grid + 1) / max(1, patch_grid)  # patch borders, as shares of the frame
    for event in events:
        what = event["shape"] if event["kind"] == "shape" else str(event["text"])
        object_columns = [column[event["colour"]], column[what]]
        if event["direction"]:
            object_columns += [column[name] for name in ("moving", event["direction"], event["speed"])]
        # The benchmark's own convention for the frames an event covers (its `frame_labels`).
        for second in segment_frames(event["start_s"], event["end_s"]):
            if second >= num_frames:
                break
            tags[second, object_columns] = 1
            elapsed = second - event["start_s"]
            left = (event["x"] + event["vx"] * elapsed) / frame_width
            top = (event["y"] + event["vy"] * elapsed) / frame_height
            right, bottom = left + event["width"] / frame_width, top + event["height"] / frame_height
            centre = ((left + right) / 2, (top + bottom) / 2)
            tags[second, column[f"cell{_cell(*centre, GRID)}"]] = 1
            if patch_grid:
                # Share of each patch row / column the object's box spans; their product is the covered share.
                span_x = ((edges[1:].clamp(max=right) - edges[:-1].clamp(min=left)).clamp(min=0)) * patch_grid
                span_y = ((edges[1:].clamp(max=bottom) - edges[:-1].clamp(min=top)).clamp(min=0)) * patch_grid
                covered = (span_y[:, None] * span_x[None, :]).flatten() >= PATCH_COVER
                # The patch of the object's centre too, so that a small object across four patches tags one.
                covered[_cell(*centre, patch_grid)] = True
                patches[second, covered.nonzero().flatten()[:, None], torch.tensor(object_columns)[None, :]] = 1
    return (tags, patches) if patch_grid else tags


@dataclass
class TaggedFrames:
    frames: torch.Tensor  # [N, 3, S, S] uint8 at the vision tower's size
    tags: torch.Tensor  # [N, K] 0/1 frame tags
    patch_tags: torch.Tensor  # [N, P, K_object] uint8 0/1 tags of each patch


def load_tagged_frames(dataset: str, split: str, video_processor, patch_size: int) -> TaggedFrames:
    """Every 1-fps frame of a synthetic dataset's split, resized for the tower, with its tags."""
    import torch
    from tqdm.auto import tqdm

    from .data import load_split, video_path
    from .event_queries import load_events

    rows, root = load_split(dataset, split)
    events_of = load_events(dataset, split)
    videos = dict(zip(rows["video_id"], rows["video"]))
    frames, tags, patch_tags = [], [], []
    patch_grid = video_processor.size["height"] // patch_size
    for video_id, video in tqdm(sorted(videos.items()), desc="decoding frames", unit="video"):
        sampled = video_processor.load(video_path(root, video))
        if sampled.grid_indices != list(range(len(sampled.grid_indices))):
            raise InvalidInputError(f"{video}: longer than the model's max_frames at 1 fps; tags need every second")
        frames.append(video_processor.resize_frames(sampled.frames))
        video_tags, video_patch_tags = frame_tags(
            events_of[video_id], len(sampled.grid_indices), sampled.metadata.width, sampled.metadata.height, patch_grid
        )
        tags.append(video_tags)
        patch_tags.append(video_patch_tags)
    return TaggedFrames(torch.cat(frames), torch.cat(tags), torch.cat(patch_tags))


def _auc(targets, scores) -> float:
    """Area under the ROC curve (rank statistic, no ties correction: scores are continuous)."""
    import torch

    ranks = torch.empty_like(scores)
    ranks[scores.argsort()] = torch.arange(1, len(scores) + 1, dtype=scores.dtype)
    positives = targets.bool()
    count = int(positives.sum())
    if count in (0, len(targets)):
        return math.nan
    return float((ranks[positives].sum() - count * (count + 1) / 2) / (count * (len(targets) - count)))


def pretrain_vision_tower(
    model,
    processor,
    train: TaggedFrames,
    validation: TaggedFrames | None = None,
    steps: int = 1500,
    batch_size: int = 256,
    learning_rate: float = 2e-3,
    seed: int = 0,
    log_every: int = 100,
) -> list[dict]:
    """Train `model.vision_tower` (in place) to tag frames; returns the log (loss, validation AUC by tag group)."""
    import torch
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    names = tag_names()
    tower = model.vision_tower
    tagger = torch.nn.Linear(model.config.vision_config.hidden_size, len(names))
    parameters = [*tower.parameters(), *tagger.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=0.0)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / steps)))
    )
    to_pixels = processor.video_processor.to_pixel_values

    objects = object_tag_count()

    def tag_logits(frames):
        features = model.encode_frames(to_pixels(frames))  # [N, P, D]
        return tagger(features.mean(dim=1)), tagger(features)[..., :objects]  # [N, K], [N, P, K_object]

    groups = {group: members for group, members in tag_groups().items() if group != "motion"}  # single frames
    log, started = [], time.time()
    tower.train()
    for step in tqdm(range(1, steps + 1), desc="vision tagging", unit="step"):
        batch = torch.randint(0, len(train.frames), (batch_size,))
        frame_logits, patch_logits = tag_logits(train.frames[batch])
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        loss = bce(frame_logits, train.tags[batch]) + bce(patch_logits, train.patch_tags[batch].float())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step == 1 or step % log_every == 0 or step == steps:
            entry = {"step": step, "seconds": round(time.time() - started, 1), "loss": round(loss.item(), 4)}
            if validation is not None:
                with torch.no_grad():
                    tower.eval()
                    chunks = range(0, len(validation.frames), 512)
                    scores = torch.cat([tag_logits(validation.frames[i : i + 512])[0] for i in chunks])
                    tower.train()
                aucs = {name: _auc(validation.tags[:, j], scores[:, j]) for j, name in enumerate(names)}
                for group, members in groups.items():
                    values = [aucs[name] for name in members if not math.isnan(aucs[name])]
                    entry[f"auc_{group}"] = round(sum(values) / len(values), 4) if values else None
            log.append(entry)
            tqdm.write(str(entry))
    tower.eval()
    return log


def _pretrain_command(args: argparse.Namespace) -> int:
    import json

    from ..hub import ModelCard, export_model, load_model

    model, processor = load_model(args.model)
    patch_size = model.config.vision_config.patch_size
    train = load_tagged_frames(args.dataset, args.split, processor.video_processor, patch_size)
    validation = None
    if args.eval_split:
        validation = load_tagged_frames(args.dataset, args.eval_split, processor.video_processor, patch_size)
    log = pretrain_vision_tower(
        model, processor, train, validation, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, seed=args.seed,
    )  # fmt: skip
    card = ModelCard(
        title="VideoITG (vision tower pretrained as a synthetic frame tagger)",
        description="Intermediate model: its vision tower was trained from scratch to tag the frames of synthetic "
        "videos (colours, shapes, texts, motion, place); the rest is untrained. Next: `videoitg train`.",
        training=f"`videoitg pretrain-vision` on `{args.dataset}` ({args.split}), {args.steps} steps of "
        f"{args.batch_size} frames.",
    )  # fmt: skip
    out = export_model(model, processor, args.output_dir, card)
    (Path(out) / "vision_tagging_log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain-vision", help="pretrain a from-scratch vision tower to tag synthetic frames (demo recipe, stage 1)"
    )
    parser.add_argument("--model", required=True, help="model folder (`videoitg init`)")
    parser.add_argument("--dataset", required=True, help="synthetic dataset folder (`videoitg synth`, with events)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--eval-split", default="validation", help="split for the AUC log ('' for none)")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=_pretrain_command)
