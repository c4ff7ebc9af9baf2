"""Options of `videoitg train` (plain data: importing it costs nothing)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainOptions:
    model: str
    dataset: str
    output_dir: str
    split: str = "train"
    eval_dataset: str | None = None
    eval_split: str = "validation"
    learning_rate: float = 2e-5
    head_learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    lr_scheduler: str = "cosine"
    epochs: float = 1.0
    max_steps: int = -1
    batch_videos: int = 2
    questions_per_video: int = 4
    event_queries: int = 0  # extra "When is the red star on screen?" questions per item (synthetic datasets)
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    train_vision_tower: bool = False
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    merge: bool = False
    resume: bool = False
    features: str | None = None
    num_workers: int = 0
    frame_cache: int = 0
    max_frames: int | None = None
    eval_steps: int | None = None
    save_steps: int = 500
    save_total_limit: int | None = 2
    logging_steps: int = 10
    seed: int = 0
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    description: str = ""  # first paragraph of the final model's card
