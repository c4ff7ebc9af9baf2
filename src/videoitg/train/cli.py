"""Command line of the training room: `videoitg train`, `videoitg features`, `videoitg merge-lora`."""

from __future__ import annotations

import argparse


def _train_command(args: argparse.Namespace) -> int:
    from .options import TrainOptions
    from .trainer import train

    values = {key: value for key, value in vars(args).items() if key in TrainOptions.__dataclass_fields__}
    values["report_to"] = [] if args.report_to == "none" else args.report_to.split(",")
    final = train(TrainOptions(**values))
    print(f"wrote {final}")
    return 0


def _features_command(args: argparse.Namespace) -> int:
    from ..hub import load_model
    from .data import load_split, precompute_features

    model, processor = load_model(args.model)
    rows, root = load_split(args.dataset, args.split)
    out = precompute_features(model, processor, rows, root, args.out)
    print(f"wrote {out}")
    return 0


def _merge_command(args: argparse.Namespace) -> int:
    from .trainer import merge_adapter

    print(f"wrote {merge_adapter(args.model, args.adapter, args.out)}")
    return 0


def add_cli(subparsers) -> None:
    from .options import TrainOptions

    parser = subparsers.add_parser("train", help="fine-tune a VideoITG model on a grounding dataset (Trainer)")
    defaults = TrainOptions(model="", dataset="", output_dir="")
    parser.add_argument("--model", required=True, help="model folder or Hub id (`videoitg init` makes one)")
    parser.add_argument("--dataset", required=True, help="dataset folder or Hub id (schema of DESIGN.md)")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--split", default=defaults.split)
    parser.add_argument("--eval-dataset")
    parser.add_argument("--eval-split", default=defaults.eval_split)
    for name in ("learning_rate", "head_learning_rate", "weight_decay", "warmup_ratio", "epochs"):
        parser.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name))
    parser.add_argument("--event-queries", type=int, default=defaults.event_queries,
                        help="synthetic datasets: add N 'When is the red star on screen?' questions per video and "
                        "batch, from the dataset's events config")  # fmt: skip
    for name in ("max_steps", "batch_videos", "questions_per_video", "gradient_accumulation_steps", "lora_rank",
                 "lora_alpha", "num_workers", "frame_cache", "max_frames", "eval_steps", "save_steps",
                 "logging_steps", "seed"):  # fmt: skip
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    for name in ("gradient_checkpointing", "train_vision_tower", "lora", "merge", "resume"):
        parser.add_argument("--" + name.replace("_", "-"), action="store_true")
    parser.add_argument("--lr-scheduler", default=defaults.lr_scheduler)
    parser.add_argument("--features", help="folder from `videoitg features` (train from cached vision features)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    parser.add_argument("--report-to", default="tensorboard", help="comma-separated, or none")
    parser.add_argument("--description", default="", help="first paragraph of the final model's card")
    parser.set_defaults(func=_train_command)

    features = subparsers.add_parser("features", help="precompute the frozen vision tower's features to disk")
    features.add_argument("--model", required=True)
    features.add_argument("--dataset", required=True)
    features.add_argument("--split", default="train")
    features.add_argument("--out", required=True)
    features.set_defaults(func=_features_command)

    merge = subparsers.add_parser("merge-lora", help="merge LoRA adapters into their base model")
    merge.add_argument("--model", required=True, help="the base model the adapters were trained on")
    merge.add_argument("--adapter", required=True)
    merge.add_argument("--out", required=True)
    merge.set_defaults(func=_merge_command)

