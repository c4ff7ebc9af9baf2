"""`videoitg train` and `videoitg features`: VideoITG on transformers' Trainer.

- Per-frame BCE (official pos_weight rule) computed by the model, normalised by Trainer's
  `num_items_in_batch` (valid frames over the accumulated batches), so gradient accumulation is exact.
- Parameter groups: LLM + projector at `learning_rate`, head at `head_learning_rate`; vision tower frozen
  unless `train_vision_tower`. Weight decay 0, cosine schedule, warmup 5% (the official recipe).
- LoRA (PEFT) on the LLM's attention and MLP projections; the head is trained in full (`modules_to_save`).
- The generation variant trains with TRL's SFTTrainer on the same data loading.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from transformers import Trainer

from .options import TrainOptions

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$"
HEAD_NAME = "frame_head"


def frame_selection_metrics(eval_prediction, ks=(8, 32)) -> dict[str, float]:
    """Evidence hit rate and frame F1 at each k, from the frame logits and labels of the sampled frames.

    A question's evidence segments are its runs of consecutive positive frames; it is covered when every run
    holds a selected frame (the benchmark's definition, applied to the sampled frames).
    """
    from ..evaluation.metrics import score_question

    logits, labels = eval_prediction.predictions, eval_prediction.label_ids
    if isinstance(logits, tuple):
        logits = logits[0]
    results: dict[str, list[float]] = {}
    for row_logits, row_labels in zip(np.asarray(logits), np.asarray(labels)):
        valid = row_labels != -100
        scores, targets = row_logits[valid], (row_labels[valid] >= 0.5).astype(int)
        if not targets.any():
            continue
        order = np.lexsort((np.arange(len(scores)), -scores))  # best first, earlier frame on ties
        for k in ks:
            score = score_question(order[:k].tolist(), targets, _positive_runs(targets))
            results.setdefault(f"hit_rate@{k}", []).append(score.hit_rate)
            results.setdefault(f"f1@{k}", []).append(score.f1)
    return {name: float(np.mean(values)) for name, values in results.items()}


def _positive_runs(targets: np.ndarray) -> list[list[float]]:
    """[[start, end]] (end exclusive, in frame positions) of each run of consecutive positive frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], targets, [0]])))
    return [[float(start), float(end)] for start, end in zip(edges[::2], edges[1::2])]


def build_trainer(options: TrainOptions):
    """Model, data and a configured Trainer (not yet trained)."""
    import torch
    from transformers import TrainingArguments

    from ..hub import load_model
    from .data import FrameSelectionCollator, GroundingVideoDataset, load_split

    model, processor = load_model(options.model)
    if options.max_frames:
        model.config.max_frames = processor.video_processor.max_frames = options.max_frames
    generation = model.config.variant == "generation"
    model.vision_tower.requires_grad_(options.train_vision_tower)
    if options.features and options.train_vision_tower:
        raise ValueError("--features uses a frozen vision tower's cached output; drop --train-vision-tower")

    rows, root = load_split(options.dataset, options.split)
    extra_questions = None
    if options.event_queries:
        from .event_queries import load_event_queries

        extra_questions = load_event_queries(options.dataset, options.split, rows)
    train_dataset = GroundingVideoDataset(
        rows, root, processor.video_processor, options.questions_per_video, options.seed,
        features_dir=options.features, frame_cache=options.frame_cache,
        extra_questions=extra_questions, extra_per_item=options.event_queries,
    )  # fmt: skip
    eval_dataset = None
    if options.eval_dataset:
        eval_rows, eval_root = load_split(options.eval_dataset, options.eval_split)
        eval_dataset = GroundingVideoDataset(
            eval_rows, eval_root, processor.video_processor, options.questions_per_video, options.seed,
            features_dir=None, frame_cache=options.frame_cache,
        )  # fmt: skip

    if options.lora:
        from peft import LoraConfig, get_peft_model

        lora_config = LoraConfig(
            r=options.lora_rank, lora_alpha=options.lora_alpha, target_modules=LORA_TARGETS,
            modules_to_save=[HEAD_NAME] if not generation else None, lora_dropout=0.0,
        )  # fmt: skip
        model = get_peft_model(model, lora_config)

    precision = options.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
    args = TrainingArguments(
        output_dir=options.output_dir,
        learning_rate=options.learning_rate,
        weight_decay=options.weight_decay,
        warmup_steps=options.warmup_ratio,
        lr_scheduler_type=options.lr_scheduler,
        num_train_epochs=options.epochs,
        max_steps=options.max_steps,
        per_device_train_batch_size=options.batch_videos,
        per_device_eval_batch_size=options.batch_videos,
        gradient_accumulation_steps=options.gradient_accumulation_steps,
        activation_checkpointing=options.gradient_checkpointing,
        dataloader_num_workers=options.num_workers,
        remove_unused_columns=False,
        eval_strategy="steps" if eval_dataset is not None and options.eval_steps else "no",
        eval_steps=options.eval_steps,
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        logging_steps=options.logging_steps,
        seed=options.seed,
        report_to=options.report_to,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        label_names=["labels"],
        use_cpu=not torch.cuda.is_available(),
    )
    collator = FrameSelectionCollator(processor, generation_targets=generation)
    common = {
        "model": model,
        "args": args,
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "data_collator": collator,
        "processing_class": processor,
    }
    if generation:
        from trl import SFTConfig, SFTTrainer

        sft_args = SFTConfig(**{**args.to_dict(), "dataset_kwargs": {"skip_prepare_dataset": True}})
        return SFTTrainer(**{**common, "args": sft_args}), processor
    trainer = VideoITGTrainer(
        **common,
        head_learning_rate=options.head_learning_rate,
        compute_metrics=frame_selection_metrics if eval_dataset is not None else None,
        preprocess_logits_for_metrics=lambda outputs, labels: outputs[0] if isinstance(outputs, tuple) else outputs,
    )
    return trainer, processor


class VideoITGTrainer(Trainer):
    """Trainer with VideoITG's parameter groups (head at its own learning rate)."""

    def __init__(self, *args, head_learning_rate: float | None = None, **kwargs):
        self.head_learning_rate = head_learning_rate
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        if self.optimizer is not None:
            return self.optimizer
        model = self.model if model is None else model
        decay_names = set(self.get_decay_parameter_names(model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:
                groups.setdefault((HEAD_NAME in name, name in decay_names), []).append(parameter)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        parameter_groups = [
            {
                "params": parameters,
                "weight_decay": self.args.weight_decay if decay else 0.0,
                "lr": (self.head_learning_rate or self.args.learning_rate) if is_head else self.args.learning_rate,
                "name": ("head" if is_head else "model") + ("" if decay else "/no_decay"),
            }
            for (is_head, decay), parameters in sorted(groups.items())
        ]
        self.optimizer = optimizer_cls(parameter_groups, **optimizer_kwargs)
        return self.optimizer


def train(options: TrainOptions, card_results: str = "") -> Path:
    """Train, then save the final model as a Hub-ready folder in `output_dir/final` (merged when LoRA)."""
    from ..hub import ModelCard, export_model

    trainer, processor = build_trainer(options)
    resume = options.resume and any(Path(options.output_dir).glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if resume else None)
    model = trainer.model
    final = Path(options.output_dir) / "final"
    if options.lora:
        model.save_pretrained(Path(options.output_dir) / "adapter")
        if not options.merge:
            return Path(options.output_dir) / "adapter"
        model = model.merge_and_unload()
    training = (
        f"Trained with `videoitg train` on `{options.dataset}` (split `{options.split}`): {result.global_step} steps, "
        f"{options.batch_videos} videos x {options.questions_per_video} questions"
        f"{f' + {options.event_queries} event questions' if options.event_queries else ''} per batch, learning rate "
        f"{options.learning_rate} (head {options.head_learning_rate}), vision tower "
        f"{'trained' if options.train_vision_tower else 'frozen'}{', LoRA' if options.lora else ''}. "
        f"Final training loss {result.training_loss:.4f}."
    )
    card = ModelCard(title="VideoITG frame selector", description=options.description, training=training,
                     results_markdown=card_results,
                     datasets=[options.dataset] if "/" in options.dataset and not Path(options.dataset).exists() else [])  # fmt: skip
    export_model(model, processor, final, card)
    (Path(options.output_dir) / "train_result.json").write_text(json.dumps(result.metrics, indent=2))
    return final


def merge_adapter(base_model: str, adapter_dir: str, out_dir: str) -> Path:
    """LoRA adapters + base model -> a plain model folder that loads with AutoModel."""
    from peft import PeftModel

    from ..hub import ModelCard, export_model, load_model

    model, processor = load_model(base_model)
    merged = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    return export_model(merged, processor, out_dir, ModelCard(training=f"LoRA adapters `{adapter_dir}` merged into `{base_model}`."))
