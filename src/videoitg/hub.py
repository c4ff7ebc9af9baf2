"""Hub-ready model folders: presets, a locally built tokenizer, export with remote code, model card, push.

An exported folder loads with `AutoModel/AutoProcessor.from_pretrained(DIR, trust_remote_code=True)` and
`pipeline("video-frame-selection", model=DIR, trust_remote_code=True)` on a machine where `videoitg` is
not installed: it carries `config.json` (with `auto_map` and `custom_pipelines`), `model.safetensors`,
tokenizer and processor files, the remote-code files and a README model card.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# Files a model folder needs to run without `videoitg` installed (flat siblings, single-dot imports only).
REMOTE_CODE_FILES = (
    "configuration_videoitg.py",
    "modeling_videoitg.py",
    "processing_videoitg.py",
    "pipeline_videoitg.py",
    "video.py",
)
PIPELINE_TASK = "video-frame-selection"

# Shapes: vision tower, LLM and visual token budget. "7b" is the paper's SigLIP-so400m + Qwen2-7B.
PRESETS: dict[str, dict] = {
    "tiny": {
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        "text_config": {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096},
        "vision_token_budget": 1024,
    },
    # The demo model's size: a few million parameters, trainable from scratch on a 2-core CPU. Large patches
    # keep 16 tokens per frame at any length up to 512 frames while the frames stay legible (128 px).
    "small": {
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 192, "intermediate_size": 768,
                          "num_hidden_layers": 4, "num_attention_heads": 4, "image_size": 128, "patch_size": 32},
        "text_config": {"model_type": "qwen2", "hidden_size": 192, "intermediate_size": 768, "num_hidden_layers": 4,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 16384},
        "vision_token_budget": 8192,
    },
    # The embedded demo model (docs/demo-model.md): small frames and one token per frame from 17 frames on
    # (budget 64), so that a CPU trains it in minutes and the instruction is a large share of the sequence. That
    # token is the average of the frame's 6 x 6 patches ("area"; bilinear would keep only the centre four).
    "demo": {
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 128, "intermediate_size": 512,
                          "num_hidden_layers": 3, "num_attention_heads": 4, "image_size": 96, "patch_size": 16},
        "text_config": {"model_type": "qwen2", "hidden_size": 192, "intermediate_size": 768, "num_hidden_layers": 4,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096},
        "vision_token_budget": 64,
        "grid_resize_mode": "area",
    },
    "7b": {"vision_config": None, "text_config": None, "vision_token_budget": 8192},
}  # fmt: skip


@dataclass
class ModelCard:
    """What the README of an exported model says."""

    title: str = "VideoITG frame selector"
    repo_id: str = "path/to/model"  # shown in the usage snippet
    description: str = ""
    base_model: str | None = None
    license: str = "apache-2.0"
    datasets: list[str] = field(default_factory=list)
    training: str = ""
    results_markdown: str = ""
    tags: list[str] = field(default_factory=lambda: ["video", "frame-selection", "videoitg", "video-llm"])


def build_tokenizer(vocab_size: int = 2048):
    """A small byte-level BPE tokenizer trained here on an embedded corpus (no download needed).

    Byte-level, so any text encodes; the corpus covers instruction words, colours, shapes and numbers.
    """
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_tokenizer_json(vocab_size)),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


@functools.lru_cache(maxsize=2)
def _trained_tokenizer_json(vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_tokenizer_corpus(), trainer=trainer)
    return tokenizer.to_str()


def _tokenizer_corpus():
    words = (
        "what which who where when why how does do is are was were the a an of in on at to from after before "
        "during while first last next then video frame frames clip scene object objects shape shapes colour color "
        "red green blue yellow orange purple pink cyan white black grey gray brown circle square triangle star "
        "diamond hexagon cross heart ring text digit number letter word appears appear shown show shows visible "
        "move moves moving left right up down faster slower speed direction stay still describe detail happens "
        "person man woman car dog cat ball hand camera answer option options choose correct yes no none both "
        "A B C D E with the best letter given choices only count many times there any"
    ).split()
    for _ in range(4):
        yield " ".join(words)
        yield " ".join(f"{word.capitalize()}?" for word in words)
    yield ", ".join(str(number) for number in range(1024))
    yield " ".join(f"({letter}) {word}." for letter, word in zip("ABCD" * 40, words))


def build_model(preset: str = "tiny", variant: str = "pooling", seed: int = 0, **overrides):
    """A randomly initialised model and its processor, laid out as an export would be."""
    import torch

    from .configuration_videoitg import VideoITGConfig
    from .modeling_videoitg import VideoITGForFrameSelection
    from .processing_videoitg import VideoITGProcessor, VideoITGVideoProcessor

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    tokenizer = build_tokenizer()
    shapes = json.loads(json.dumps(PRESETS[preset]))  # deep copy
    config = VideoITGConfig(variant=variant, **shapes, **overrides)
    config.text_config.vocab_size = max(len(tokenizer), config.text_config.vocab_size if preset == "7b" else 0)
    config.text_config.eos_token_id = config.text_config.pad_token_id = tokenizer.eos_token_id
    tokenizer.model_max_length = config.text_config.max_position_embeddings
    torch.manual_seed(seed)
    model = VideoITGForFrameSelection(config).eval()
    image_size = config.vision_config.image_size
    video_processor = VideoITGVideoProcessor(
        size={"height": image_size, "width": image_size}, sample_fps=config.sample_fps, max_frames=config.max_frames
    )
    processor = VideoITGProcessor(video_processor=video_processor, tokenizer=tokenizer, prompt_suffix=config.prompt_suffix)
    return model, processor


def register_auto_classes() -> None:
    """Make save_pretrained write `auto_map` for config, model, processor and video processor."""
    from .configuration_videoitg import VideoITGConfig
    from .modeling_videoitg import VideoITGForFrameSelection
    from .processing_videoitg import VideoITGProcessor, VideoITGVideoProcessor

    VideoITGConfig.register_for_auto_class()
    VideoITGForFrameSelection.register_for_auto_class("AutoModel")
    VideoITGProcessor.register_for_auto_class("AutoProcessor")
    VideoITGVideoProcessor.register_for_auto_class("AutoVideoProcessor")


def export_model(model, processor, out_dir: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write a Hub-ready folder (safetensors only) that loads without `videoitg` installed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    register_auto_classes()
    model.config.custom_pipelines = {
        PIPELINE_TASK: {
            "impl": "pipeline_videoitg.VideoFrameSelectionPipeline",
            "pt": ["AutoModel"],
            "tf": [],
            "type": "multimodal",
        }
    }
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    for name in REMOTE_CODE_FILES:  # save_pretrained copies most; the pipeline and shared modules too
        shutil.copyfile(PACKAGE_DIR / name, out_dir / name)
    if list(out_dir.glob("*.bin")) or list(out_dir.glob("*.pt")):
        raise RuntimeError(f"{out_dir}: pickle weight files found; exports are safetensors only")
    (out_dir / "README.md").write_text(render_model_card(model, card or ModelCard()), encoding="utf-8")
    return out_dir


def render_model_card(model, card: ModelCard) -> str:
    config = model.config
    parameters = sum(parameter.numel() for parameter in model.parameters())
    front_matter = ["---", "library_name: transformers", f"license: {card.license}", "tags:"]
    front_matter += [f"- {tag}" for tag in card.tags]
    if card.base_model:
        front_matter.append(f"base_model: {card.base_model}")
    if card.datasets:
        front_matter += ["datasets:", *[f"- {name}" for name in card.datasets]]
    front_matter.append("---")
    lines = [
        *front_matter,
        f"# {card.title}",
        "",
        card.description or "A VideoITG instruction-guided frame selector (paper: VideoITG, variant C by default).",
        "",
        "| | |",
        "|---|---|",
        f"| variant | `{config.variant}` |",
        f"| vision tower | {config.vision_config.model_type} ({config.vision_config.image_size} px, "
        f"patch {config.vision_config.patch_size}) |",
        f"| language model | {config.text_config.model_type} (width {config.text_config.hidden_size}, "
        f"{config.text_config.num_hidden_layers} layers) |",
        f"| parameters | {parameters / 1e6:.2f} M |",
        f"| frames | up to {config.max_frames} at {config.sample_fps:g} fps; visual token budget "
        f"{config.vision_token_budget} |",
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'selector = pipeline("video-frame-selection", model="REPO_OR_DIR", trust_remote_code=True)',
        'selection = selector("video.mp4", "What colour is the star?", top_k=8)',
        'print(selection["indices"], selection["timestamps"])',
        "```",
        "",
        "```python",
        "from transformers import AutoModel, AutoProcessor",
        "",
        'model = AutoModel.from_pretrained("REPO_OR_DIR", trust_remote_code=True)',
        'processor = AutoProcessor.from_pretrained("REPO_OR_DIR", trust_remote_code=True)',
        'inputs = processor(videos="video.mp4", text="What colour is the star?")',
        "frame_scores = model(**{k: v for k, v in inputs.items() if k in processor.model_input_names}).scores",
        "```",
        "",
        "Command line: `videoitg select video.mp4 \"What colour is the star?\" --model REPO_OR_DIR --top-k 8`.",
    ]
    if card.training:
        lines += ["", "## Training", "", card.training]
    if card.results_markdown:
        lines += ["", "## Results", "", card.results_markdown]
    return "\n".join(lines).replace("REPO_OR_DIR", card.repo_id) + "\n"


def load_model(model_dir_or_repo: str | os.PathLike, **kwargs):
    """Model + processor from a folder or Hub id with the in-package classes (no remote code needed)."""
    from .configuration_videoitg import VideoITGConfig
    from .modeling_videoitg import VideoITGForFrameSelection
    from .processing_videoitg import VideoITGProcessor

    VideoITGConfig.from_pretrained(model_dir_or_repo)  # fail early, clearly, on a folder that is no model
    model = VideoITGForFrameSelection.from_pretrained(model_dir_or_repo, **kwargs).eval()
    processor = VideoITGProcessor.from_pretrained(model_dir_or_repo)
    return model, processor


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, token_env: str = "HF_TOKEN") -> str:
    """Upload an exported folder to the Hub; the token is read from the environment, never written."""
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get(token_env))
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload VideoITG model")
    return commit.commit_url


# ---------------------------------------------------------------------------------------------- command line
def _init_command(args: argparse.Namespace) -> int:
    model, processor = build_model(args.preset, args.variant, seed=args.seed)
    card = ModelCard(
        title=f"VideoITG {args.preset} ({args.variant}), random weights",
        description="Randomly initialised: for smoke tests and speed benchmarks only; it selects nothing meaningful.",
    )
    export_model(model, processor, args.out, card)
    print(f"wrote {args.out} (randomly initialised {args.preset} preset, variant {args.variant})")
    return 0


def _export_command(args: argparse.Namespace) -> int:
    model, processor = load_model(args.model)
    card = ModelCard(title=args.title or "VideoITG frame selector", description=args.description or "")
    export_model(model, processor, args.out, card)
    print(f"wrote {args.out}")
    return 0


def _push_command(args: argparse.Namespace) -> int:
    print(push_folder(args.folder, args.repo_id, private=args.private))
    return 0


def add_cli(subparsers) -> None:
    init = subparsers.add_parser("init", help="write a randomly initialised model folder (laid out as an export)")
    init.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    init.add_argument("--variant", choices=("pooling", "anchor", "generation"), default="pooling")
    init.add_argument("--seed", type=int, default=0)
    init.add_argument("--out", required=True)
    init.set_defaults(func=_init_command)

    export = subparsers.add_parser("export", help="write a Hub-ready folder from a model folder or checkpoint")
    export.add_argument("model", help="model folder or Hub id")
    export.add_argument("--out", required=True)
    export.add_argument("--title")
    export.add_argument("--description")
    export.set_defaults(func=_export_command)

    push = subparsers.add_parser("push", help="upload an exported folder to the Hub (token from $HF_TOKEN)")
    push.add_argument("folder")
    push.add_argument("repo_id")
    push.add_argument("--private", action="store_true")
    push.set_defaults(func=_push_command)
