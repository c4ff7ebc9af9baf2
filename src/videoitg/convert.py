"""Convert checkpoints into VideoITG folders: start from a LLaVA-OneVision Video-LLM, or load the official weights.

Two sources, one result: a Hub-ready folder (the export of `videoitg.hub`) that loads with
`AutoModel.from_pretrained(DIR, trust_remote_code=True)` on current transformers, plus `conversion_report.json`
listing what became of every source tensor.

`--from llava-onevision SRC`: a transformers-format `LlavaOnevisionForConditionalGeneration` folder (SigLIP vision
tower, 2-layer GELU projector, Qwen2). The vision tower, projector, token embeddings and decoder are copied; the frame
head is new (xavier weights, zero bias, as the official code). The projector runs before the grid resize, as
LLaVA-OneVision pools its video features. Both the current (`model.language_model.*`, `model.vision_tower.*`,
`lm_head.*`) and the older (`language_model.model.*`, `vision_tower.*`, `language_model.lm_head.*`) key spellings are
read. `lm_head` is kept by the `generation` variant only; `image_newline` is dropped (no separators between frames).

`--from official SRC`: the official VideoITG release (`nvidia/VideoITG-8B`). What is known of its layout:

- `config.json`: a Qwen2 config with `model_type` `eagle_QwenG` (class `EagleQwenG`) plus LLaVA-style `mm_*` fields
  (`mm_vision_tower`, `mm_hidden_size`, `mm_vision_select_layer`, ...). The decoder is Qwen2-7B with every attention
  layer non-causal and `rope_scaling` forced to None.
- Vision tower: SigLIP so400m-patch14-384, frozen, features of the penultimate layer (`mm_vision_select_layer` -2). It
  is stored separately from the LLM shards (pass its folder with `--vision-tower`); when a checkpoint does carry it,
  its keys are `model.vision_tower.vision_tower.*` (a `SiglipVisionModel`, `vision_model.*` inside).
- Projector `model.mm_projector`: each frame's 27 x 27 patch grid of vision features is first resized bilinearly
  (align_corners False) to HW x HW, HW = min(27, floor(sqrt(vision_token_num / T))), then projected by
  `out_projection` = Linear (`.0.*`), GELU, Linear (`.2.*`). `vision_token_num` defaults to 8192 (16 tokens per
  frame at 512 frames, as the paper says) unless the config sets it.
- LLM: `model.embed_tokens.*`, `model.layers.*`, `model.norm.*` (a `Qwen2Model`); no LM head.
- Head: `out_proj.weight` / `out_proj.bias`, Linear(hidden, 1).
- Forward: prompt = video tokens first, then the question, then "\\n" (no chat template, no special tokens); each
  frame's final hidden states at its image-token positions are averaged and fed to `out_proj`; sigmoid = score.

Mapping (official -> VideoITG): `model.vision_tower.vision_tower.[vision_model.]*` -> `vision_tower.*`,
`model.mm_projector.out_projection.0.*` -> `multi_modal_projector.linear_1.*`, `...2.*` -> `linear_2.*`,
`model.{embed_tokens,layers,norm}.*` -> `language_model.*`, `out_proj.*` -> `frame_head.*`; a SigLIP folder given
with `--vision-tower` maps `vision_model.*` (or the unprefixed keys transformers 5 writes) to `vision_tower.*` and
drops its text tower. Rotary `inv_freq` and `position_ids` buffers are recomputed, never read.

Any source key that maps to nothing, and any model weight that no source key fills, stops the conversion with the
list of keys, unless `--allow-missing KEY` (a key or glob pattern) accepts it: an accepted missing weight is
initialised, an accepted unexpected key is dropped. Weights are read with `safetensors` only (never pickles).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import shlex
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .video import InvalidInputError

SOURCE_FORMATS = ("llava-onevision", "official")
VARIANT_CHOICES = ("pooling", "anchor", "generation")  # as configuration_videoitg.VARIANTS, without importing torch
OFFICIAL_MODEL_TYPE = "eagle_QwenG"
# The official projector's default token budget: 16 tokens per frame at 512 frames.
OFFICIAL_VISION_TOKEN_NUM = 8192
REPORT_NAME = "conversion_report.json"
# Qwen2 fields of the official flat config; the rest are LLaVA / Eagle training settings.
QWEN2_CONFIG_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
    "use_sliding_window", "sliding_window", "max_window_layers", "attention_dropout", "initializer_range",
    "bos_token_id", "eos_token_id",
)  # fmt: skip
# Buffers that a model recomputes from its config; older checkpoints saved some of them.
RECOMPUTED_BUFFER_SUFFIXES = ("rotary_emb.inv_freq", "embeddings.position_ids")
SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
LISTED_KEYS = 20  # per group in an error message


class ConversionError(InvalidInputError):
    """The source checkpoint cannot be converted (layout, keys, shapes or files)."""


@dataclass(frozen=True)
class KeyRule:
    """Source keys starting with `source` map to `target` + the rest; `target` None drops them (`note` says why)."""

    source: str
    target: str | None
    note: str = ""


@dataclass(frozen=True)
class SourceTensor:
    origin: str  # "source" or "vision tower"
    file: Path
    key: str
    shape: tuple[int, ...]
    dtype: str  # safetensors dtype name, e.g. "BF16"

    @property
    def label(self) -> str:
        return self.key if self.origin == "source" else f"{self.key} (vision tower)"


@dataclass
class ConversionReport:
    """What became of every source tensor; saved as `conversion_report.json` in the output folder."""

    source_format: str
    source: str
    out: str
    variant: str
    command: str
    vision_tower: str | None = None
    mapped: dict[str, str] = field(default_factory=dict)  # source key -> model key
    dropped: dict[str, str] = field(default_factory=dict)  # source key -> why
    initialised: list[str] = field(default_factory=list)  # model keys no source key fills
    accepted: list[str] = field(default_factory=list)  # keys accepted through --allow-missing
    notes: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> Path:
        path = Path(folder) / REPORT_NAME
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return path

    def summary(self) -> str:
        return (
            f"{len(self.mapped)} tensors copied, {len(self.dropped)} dropped, "
            f"{len(self.initialised)} weights initialised ({', '.join(self.initialised) or 'none'})"
        )


@dataclass
class _Plan:
    """A source format's reading of the source: the model config, key rules and preprocessing settings."""

    config_kwargs: dict
    rules: dict[str, list[KeyRule]]  # origin -> rules, first match wins
    tensors: list[SourceTensor]
    new_weights: tuple[str, ...] = ()  # model key prefixes that are meant to be initialised
    image_settings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- reading the source
def _check_folder(path, what: str) -> Path:
    folder = Path(path)
    if not folder.exists():
        raise ConversionError(f"{folder}: {what} not found")
    if not folder.is_dir():
        raise ConversionError(f"{folder}: {what} must be a folder (config.json + *.safetensors)")
    return folder


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(f"{path}: not found (the checkpoint folder needs its config.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ConversionError(f"{path}: not valid JSON ({error})") from None


def safetensors_files(folder: Path) -> list[Path]:
    """The weight files of a checkpoint folder: those its index names, else every `*.safetensors` file."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        names = sorted(set(_read_json(index).get("weight_map", {}).values()))
        files = [folder / name for name in names]
        absent = [path.name for path in files if not path.exists()]
        if absent:
            raise ConversionError(f"{folder}: shards named in {index.name} are missing: {', '.join(absent)}")
        return files
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickles = sorted(path.name for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for path in folder.glob(pattern))
    if pickles:
        raise ConversionError(
            f"{folder}: only pickle weight files ({', '.join(pickles)}); they are never loaded here because "
            "unpickling runs code. Save the checkpoint as safetensors first"
        )
    raise ConversionError(f"{folder}: no *.safetensors weight files")


def read_tensor_specs(folder: Path, origin: str) -> list[SourceTensor]:
    """Key, shape and dtype of every tensor in the folder's safetensors files (no tensor data is read)."""
    from safetensors import safe_open

    tensors = []
    for path in safetensors_files(folder):
        try:
            with safe_open(str(path), framework="pt") as reader:
                for key in reader.keys():
                    view = reader.get_slice(key)
                    tensors.append(SourceTensor(origin, path, key, tuple(view.get_shape()), view.get_dtype()))
        except Exception as error:  # safetensors raises its own error types for damaged files
            raise ConversionError(f"{path}: not a readable safetensors file ({error})") from None
    return tensors


def _image_settings(*folders: Path | None) -> dict:
    """Normalisation of the source's image processor (first preprocessor config found); SigLIP's by default."""
    for folder in folders:
        if folder is None:
            continue
        for name in ("preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json"):
            if (folder / name).exists():
                settings = _read_json(folder / name)
                # transformers 5 saves the image / video processor inside processor_config.json
                settings = settings.get("video_processor") or settings.get("image_processor") or settings
                return {key: settings[key] for key in ("image_mean", "image_std", "rescale_factor") if key in settings}
    return {}


def _vision_rules(prefix: str) -> list[KeyRule]:
    # SigLIP keys come as `vision_model.*` (transformers 4, Hub checkpoints) or unprefixed (transformers 5).
    return [KeyRule(f"{prefix}vision_model.", "vision_tower."), KeyRule(prefix, "vision_tower.")]


# ---------------------------------------------------------------------------------------------- LLaVA-OneVision
def llava_onevision_rules(variant: str) -> list[KeyRule]:
    """LLaVA-OneVision keys -> VideoITG keys, in both spellings transformers has used."""
    generation = variant == "generation"
    llm = "language_model.model." if generation else "language_model."
    lm_head = "language_model.lm_head." if generation else None
    head_note = "the frame selector scores frames with its own head; the LM head is kept by the generation variant"
    newline_note = "LLaVA-OneVision's row separator; VideoITG puts no separators between frames"
    return [
        # current transformers spelling
        *_vision_rules("model.vision_tower."),
        KeyRule("model.multi_modal_projector.", "multi_modal_projector."),
        KeyRule("model.language_model.", llm),
        KeyRule("lm_head.", lm_head, head_note),
        KeyRule("model.image_newline", None, newline_note),
        # older spelling (the Hub's llava-hf checkpoints; transformers 5 still saves this way)
        *_vision_rules("vision_tower."),
        KeyRule("multi_modal_projector.", "multi_modal_projector."),
        KeyRule("language_model.model.", llm),
        KeyRule("language_model.lm_head.", lm_head, head_note),
        KeyRule("image_newline", None, newline_note),
    ]


def _plan_llava_onevision(source: Path, variant: str, vision_token_budget: int | None) -> _Plan:
    from transformers import AutoConfig

    raw = _read_json(source / "config.json")
    if raw.get("model_type") != "llava_onevision":
        raise ConversionError(
            f"{source}: config.json says model_type {raw.get('model_type')!r}, not 'llava_onevision' "
            "(a transformers-format LlavaOnevisionForConditionalGeneration folder)"
        )
    config = AutoConfig.from_pretrained(source)
    if not isinstance(config.vision_feature_layer, int):
        raise ConversionError(
            f"{source}: vision_feature_layer {config.vision_feature_layer} concatenates several layers; "
            "VideoITG reads one layer"
        )
    if getattr(config, "multimodal_projector_bias", True) is False:
        raise ConversionError(f"{source}: a projector without biases is not supported (VideoITG's has biases)")
    config_kwargs = {
        "vision_config": config.vision_config.to_dict(),
        "text_config": config.text_config.to_dict(),
        "variant": variant,
        "vision_feature_layer": config.vision_feature_layer,
        "projector_hidden_act": config.projector_hidden_act,
        # LLaVA-OneVision projects each patch, then pools the grid: keep that order for the copied projector.
        "resize_before_projector": False,
    }
    if vision_token_budget is not None:
        config_kwargs["vision_token_budget"] = vision_token_budget
    notes = [f"vision features: layer {config.vision_feature_layer} of the vision tower"]
    if variant != "generation":
        notes.append("frame head initialised (xavier weights, zero bias): fine-tune before trusting its scores")
    return _Plan(
        config_kwargs=config_kwargs,
        rules={"source": llava_onevision_rules(variant)},
        tensors=read_tensor_specs(source, "source"),
        new_weights=("frame_head.",),
        image_settings=_image_settings(source),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------- official release
def official_rules() -> dict[str, list[KeyRule]]:
    """Official VideoITG keys (and a separate SigLIP folder's) -> VideoITG keys."""
    text_note = "SigLIP text tower: not used by the frame selector"
    return {
        "source": [
            *_vision_rules("model.vision_tower.vision_tower."),
            KeyRule("model.mm_projector.out_projection.0.", "multi_modal_projector.linear_1."),
            KeyRule("model.mm_projector.out_projection.2.", "multi_modal_projector.linear_2."),
            KeyRule("model.embed_tokens.", "language_model.embed_tokens."),
            KeyRule("model.layers.", "language_model.layers."),
            KeyRule("model.norm.", "language_model.norm."),
            KeyRule("out_proj.", "frame_head."),
        ],
        "vision tower": [
            KeyRule("text_model.", None, text_note),
            KeyRule("logit_scale", None, text_note),
            KeyRule("logit_bias", None, text_note),
            *_vision_rules(""),
        ],
    }


def _official_vision_config(raw: dict, vision_tower: Path | None, source: Path) -> dict:
    from transformers import AutoConfig

    from .configuration_videoitg import DEFAULT_VISION_CONFIG

    if vision_tower is not None:
        try:
            config = AutoConfig.from_pretrained(vision_tower)
        except (OSError, ValueError) as error:
            raise ConversionError(f"{vision_tower}: no usable config.json for the vision tower ({error})") from None
        config = getattr(config, "vision_config", None) or config  # a full SigLIP folder carries a text tower too
        if not hasattr(config, "image_size") or not hasattr(config, "patch_size"):
            raise ConversionError(f"{vision_tower}: not a vision tower config (no image_size / patch_size)")
        return config.to_dict()
    if isinstance(raw.get("vision_config"), dict):
        return raw["vision_config"]
    if "so400m-patch14-384" in str(raw.get("mm_vision_tower", "")):
        return dict(DEFAULT_VISION_CONFIG)
    raise ConversionError(
        f"{source}: cannot tell the vision tower's shapes from config.json (mm_vision_tower "
        f"{raw.get('mm_vision_tower')!r}); pass its folder with --vision-tower"
    )


def _plan_official(
    source: Path, variant: str, vision_tower: Path | None, vision_token_budget: int | None
) -> _Plan:
    raw = _read_json(source / "config.json")
    if raw.get("model_type") != OFFICIAL_MODEL_TYPE:
        raise ConversionError(
            f"{source}: config.json says model_type {raw.get('model_type')!r}, not {OFFICIAL_MODEL_TYPE!r} "
            "(the official VideoITG release)"
        )
    if variant != "pooling":
        raise ConversionError(f"the official release is the 'pooling' variant; --variant {variant} cannot be loaded")
    notes = []
    text_config = {key: raw[key] for key in QWEN2_CONFIG_KEYS if key in raw}
    text_config["model_type"] = "qwen2"  # plain RoPE: EagleQwenG forces rope_scaling to None, so it is not copied
    budget = vision_token_budget or raw.get("vision_token_num")
    if budget is None:
        budget = OFFICIAL_VISION_TOKEN_NUM
        notes.append(f"config.json sets no vision_token_num: used the official default {budget}")
    tensors = read_tensor_specs(source, "source")
    if vision_tower is not None:
        tensors += read_tensor_specs(vision_tower, "vision tower")
    elif not any(tensor.key.startswith("model.vision_tower.") for tensor in tensors):
        raise ConversionError(
            f"{source}: the checkpoint carries no vision tower (the official release stores it apart): pass the "
            "SigLIP so400m-patch14-384 folder with --vision-tower"
        )
    config_kwargs = {
        "vision_config": _official_vision_config(raw, vision_tower, source),
        "text_config": text_config,
        "variant": "pooling",
        "vision_feature_layer": raw.get("mm_vision_select_layer", -2),
        "vision_token_budget": budget,
        "projector_hidden_act": "gelu",
        "resize_before_projector": True,  # the official projector resizes the grid, then projects
    }
    notes.append(
        f"vision features: layer {config_kwargs['vision_feature_layer']} of the vision tower; "
        f"{budget} visual tokens per video; grid resized before the projector; bidirectional attention"
    )
    return _Plan(
        config_kwargs=config_kwargs,
        rules=official_rules(),
        tensors=tensors,
        image_settings=_image_settings(source, vision_tower),
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------- key matching
def map_key(key: str, rules: list[KeyRule]) -> tuple[str | None, str | None]:
    """(model key, None) for a mapped key, (None, why) for a dropped one, (None, None) for an unknown one."""
    if key.endswith(RECOMPUTED_BUFFER_SUFFIXES):
        return None, "buffer recomputed from the config"
    for rule in rules:
        if key.startswith(rule.source):
            if rule.target is None:
                return None, rule.note or "not used"
            return rule.target + key[len(rule.source) :], None
    return None, None


def _expected_source_key(target: str, rules: dict[str, list[KeyRule]], present: list[str]) -> str:
    """How a model key would be spelled in the source (for messages about missing keys).

    Among the rules that produce `target`, the first whose prefix the source uses (a source may spell keys more than
    one way); else the first rule.
    """
    producing = [
        rule
        for origin_rules in rules.values()
        for rule in origin_rules
        if rule.target is not None and target.startswith(rule.target)
    ]
    used = [rule for rule in producing if rule.source and any(key.startswith(rule.source) for key in present)]
    rule = (used or producing or [None])[0]
    return target if rule is None else rule.source + target[len(rule.target) :]


def _matches(patterns: list[str], *names: str) -> str | None:
    for pattern in patterns:
        if any(name == pattern or fnmatch.fnmatchcase(name, pattern) for name in names):
            return pattern
    return None


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:LISTED_KEYS])
    return shown + (f", ... and {len(keys) - LISTED_KEYS} more" if len(keys) > LISTED_KEYS else "")


def match_keys(plan: _Plan, model_keys: dict, tied: set[str], allow: list[str], report: ConversionReport, what: str):
    """Assign every source tensor to a model weight or a reason; raise listing missing / unexpected / misshapen keys.

    model_keys: model key -> shape (parameters and persistent buffers). Returns model key -> SourceTensor.
    """
    chosen: dict[str, SourceTensor] = {}
    unexpected, duplicates = [], []
    for tensor in plan.tensors:  # source tensors come before a separate vision tower's
        target, why = map_key(tensor.key, plan.rules[tensor.origin])
        if target is not None and target in tied:
            target, why = None, "tied to the input embeddings"
        if target is None:
            if why is not None:
                report.dropped[tensor.label] = why
            elif pattern := _matches(allow, tensor.key):
                report.dropped[tensor.label] = f"accepted with --allow-missing {pattern}"
                report.accepted.append(tensor.key)
            else:
                unexpected.append(tensor.label)
            continue
        if target not in model_keys:
            if pattern := _matches(allow, tensor.key, target):
                report.dropped[tensor.label] = f"accepted with --allow-missing {pattern}"
                report.accepted.append(tensor.key)
            else:
                unexpected.append(f"{tensor.label} (-> {target}, which the model does not have)")
            continue
        if target in chosen:
            if chosen[target].origin == tensor.origin:
                duplicates.append(f"{chosen[target].label} and {tensor.label} (-> {target})")
            else:
                report.dropped[tensor.label] = "superseded by the source checkpoint's copy"
            continue
        chosen[target] = tensor
    missing = []
    present = [tensor.key for tensor in plan.tensors]
    for target in model_keys:
        if target in chosen:
            continue
        if target.startswith(plan.new_weights):
            report.initialised.append(target)
            continue
        expected = _expected_source_key(target, plan.rules, present)
        if pattern := _matches(allow, expected, target):
            report.initialised.append(target)
            report.accepted.append(expected)
        else:
            missing.append(expected if expected == target else f"{expected} (-> {target})")
    misshapen = [
        f"{tensor.label} {list(tensor.shape)} (-> {target} expects {list(model_keys[target])})"
        for target, tensor in chosen.items()
        if tuple(tensor.shape) != tuple(model_keys[target])
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key{'s' * (len(missing) > 1)}: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key{'s' * (len(unexpected) > 1)}: {_listing(unexpected)}")
    if duplicates:
        problems.append(f"keys given twice: {_listing(duplicates)}")
    if misshapen:
        problems.append(f"shapes that do not match the config: {_listing(misshapen)}")
    if problems:
        hint = (
            " Pass --allow-missing KEY (a key or glob pattern) to accept a key: a missing weight is then "
            "initialised, an unexpected key dropped."
            if (missing or unexpected) and not (duplicates or misshapen)
            else ""
        )
        raise ConversionError(f"{what} does not match the expected layout: {'; '.join(problems)}.{hint}")
    report.mapped = {tensor.label: target for target, tensor in chosen.items()}
    return chosen


# ---------------------------------------------------------------------------------------------- conversion
def conversion_command(
    source_format: str,
    source,
    out_dir,
    variant: str = "pooling",
    license: str | None = None,
    vision_tower=None,
    vision_token_budget: int | None = None,
    allow_missing=(),
    base_model: str | None = None,
) -> str:
    """The `videoitg convert` command line that does this conversion (stated in the model card)."""
    words = ["videoitg", "convert", "--from", source_format, str(source), "--out", str(out_dir)]
    if variant != "pooling":
        words += ["--variant", variant]
    if vision_tower is not None:
        words += ["--vision-tower", str(vision_tower)]
    if vision_token_budget is not None:
        words += ["--vision-token-budget", str(vision_token_budget)]
    if allow_missing:
        words += ["--allow-missing", *allow_missing]
    if license is not None:
        words += ["--license", license]
    if base_model is not None:
        words += ["--base-model", base_model]
    return shlex.join(words)


def _model_keys(config):
    """Shapes of the weights a model of `config` loads, and the keys tied to another weight (built on `meta`)."""
    import torch

    from .modeling_videoitg import VideoITGForFrameSelection

    with torch.device("meta"):
        skeleton = VideoITGForFrameSelection(config)
    state = skeleton.state_dict()
    own = {name for name, _ in skeleton.named_parameters()} | {name for name, _ in skeleton.named_buffers()}
    return {key: tuple(value.shape) for key, value in state.items() if key in own}, set(state) - own


def _weights_dtype(chosen: dict):
    """The language model's dtype (the vision tower may be stored in another one): the converted model's dtype."""
    import torch

    embeddings = [tensor for target, tensor in chosen.items() if target.endswith("embed_tokens.weight")]
    names = [tensor.dtype for tensor in embeddings or chosen.values() if tensor.dtype in SAFETENSORS_DTYPES]
    return getattr(torch, SAFETENSORS_DTYPES[names[0]]) if names else torch.float32


def _write_weights(chosen: dict, folder: Path, progress: bool) -> None:
    """Copy the chosen tensors under their model names into safetensors shards (one per source file)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    by_file: dict[Path, dict[str, str]] = {}
    for target, tensor in chosen.items():
        by_file.setdefault(tensor.file, {})[tensor.key] = target
    weight_map, total = {}, 0
    for number, (path, names) in enumerate(tqdm(sorted(by_file.items()), desc="copying weights", unit="file",
                                                 disable=not progress), start=1):  # fmt: skip
        shard = f"model-{number:05d}-of-{len(by_file):05d}.safetensors"
        with safe_open(str(path), framework="pt") as reader:
            tensors = {target: reader.get_tensor(key).contiguous() for key, target in names.items()}
        save_file(tensors, str(folder / shard), metadata={"format": "pt"})
        total += sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
        weight_map.update(dict.fromkeys(tensors, shard))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def _build_processor(source: Path, config, image_settings: dict):
    from transformers import AutoTokenizer

    from .processing_videoitg import VideoITGProcessor, VideoITGVideoProcessor

    try:
        # The LLM's config tells the tokenizer family when tokenizer_config.json does not (the official
        # config.json has a model_type transformers does not know).
        tokenizer = AutoTokenizer.from_pretrained(source, config=config.text_config)
    except (OSError, ValueError) as error:
        raise ConversionError(f"{source}: no usable tokenizer files ({error})") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.model_max_length = config.text_config.max_position_embeddings
    size = config.vision_config.image_size
    video_processor = VideoITGVideoProcessor(
        size={"height": size, "width": size}, sample_fps=config.sample_fps, max_frames=config.max_frames,
        **image_settings,
    )  # fmt: skip
    return VideoITGProcessor(video_processor=video_processor, tokenizer=tokenizer, prompt_suffix=config.prompt_suffix)


def _card_license(text: str) -> str:
    """A Hub licence identifier as given (e.g. "cc-by-nc-4.0"); free text becomes "other" (stated in the card)."""
    identifier = text.strip().lower()
    if identifier and all(character.isalnum() or character in "-._" for character in identifier):
        return identifier
    return "other"


def _model_card(report: ConversionReport, license: str, base_model: str | None):
    from .hub import ModelCard

    if report.source_format == "official":
        source = "the official VideoITG release (`EagleQwenG`, NVlabs)"
        meaning = "It reproduces the official frame scores on current transformers."
    else:
        source = "a LLaVA-OneVision Video-LLM (`LlavaOnevisionForConditionalGeneration`)"
        meaning = (
            "Vision tower, projector and language model come from the source"
            + ("; the frame head is newly initialised, so fine-tune it before use." if report.initialised else ".")
        )
    description = "\n".join([
        f"Converted from {source} at `{report.source}`" + (f" ({base_model})" if base_model else "") + f". {meaning}",
        "",
        f"**Licence of the source weights** (as stated by the person who converted them): {license}. "
        "This model carries the weights of the source and is bound by that licence.",
        "",
        f"**Conversion command:** `{report.command}`",
        "",
        f"Conversion: {report.summary()}. Every source key is listed in `{REPORT_NAME}`.",
        "",
        *(f"- {note}" for note in report.notes),
    ])  # fmt: skip
    return ModelCard(
        title=f"VideoITG ({report.variant}) converted from {report.source_format}",
        description=description,
        base_model=base_model,
        license=_card_license(license),
    )


def convert_checkpoint(
    source_format: str,
    source,
    out_dir,
    *,
    license: str,
    variant: str = "pooling",
    vision_tower=None,
    vision_token_budget: int | None = None,
    allow_missing=(),
    base_model: str | None = None,
    progress: bool = True,
) -> ConversionReport:
    """Convert `source` (a `source_format` checkpoint folder) into a Hub-ready VideoITG folder at `out_dir`.

    license: the licence of the source weights, as the person converting states it (written in the model card).
    vision_tower: the SigLIP folder, for official checkpoints that store the tower apart.
    vision_token_budget: visual tokens per video (default: the source's; official: `vision_token_num` or 8192).
    allow_missing: keys or glob patterns accepted although missing (initialised) or unexpected (dropped).
    Returns the report, also saved as `conversion_report.json` next to the model.
    """
    from transformers.utils import logging as transformers_logging

    from .configuration_videoitg import VideoITGConfig
    from .hub import export_model
    from .modeling_videoitg import VideoITGForFrameSelection

    if source_format not in SOURCE_FORMATS:
        raise ConversionError(f"unknown source format {source_format!r}; choose one of {', '.join(SOURCE_FORMATS)}")
    if variant not in VARIANT_CHOICES:
        raise ConversionError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANT_CHOICES)}")
    if not license or not license.strip():
        raise ConversionError("state the licence of the source weights (--license), e.g. cc-by-nc-4.0")
    if vision_token_budget is not None and vision_token_budget < 1:
        raise ConversionError(f"--vision-token-budget must be positive, got {vision_token_budget}")
    source = _check_folder(source, "source checkpoint")
    out_dir = Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise ConversionError(f"{out_dir}: the output folder must differ from the source")
    if vision_tower is not None:
        vision_tower = _check_folder(vision_tower, "vision tower")
        if source_format != "official":
            raise ConversionError("--vision-tower is for official checkpoints (LLaVA-OneVision carries its tower)")
    allow = list(allow_missing)
    report = ConversionReport(
        source_format=source_format,
        source=str(source),
        out=str(out_dir),
        variant=variant,
        command=conversion_command(source_format, source, out_dir, variant, license, vision_tower,
                                   vision_token_budget, allow, base_model),  # fmt: skip
        vision_tower=str(vision_tower) if vision_tower is not None else None,
    )
    if source_format == "official":
        plan = _plan_official(source, variant, vision_tower, vision_token_budget)
    else:
        plan = _plan_llava_onevision(source, variant, vision_token_budget)
    report.notes = plan.notes
    text_config = plan.config_kwargs["text_config"]
    rows = next((tensor.shape[0] for tensor in plan.tensors if tensor.key.endswith("embed_tokens.weight")), None)
    if rows is not None and rows != text_config.get("vocab_size"):
        # The official loader grows the embeddings for added tokens; the tensors are what counts.
        report.notes.append(f"config vocab_size {text_config.get('vocab_size')}; the embeddings have {rows} rows")
        text_config["vocab_size"] = rows
    config = VideoITGConfig(**plan.config_kwargs)
    model_keys, tied = _model_keys(config)
    what = f"{source}" + (f" + {vision_tower}" if vision_tower is not None else "")
    chosen = match_keys(plan, model_keys, tied, allow, report, what)

    processor = _build_processor(source, config, plan.image_settings)
    tokenizer = processor.tokenizer
    if config.text_config.eos_token_id is None:
        config.text_config.eos_token_id = tokenizer.eos_token_id
    config.text_config.pad_token_id = tokenizer.pad_token_id
    dtype = _weights_dtype(chosen)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".videoitg-convert-", dir=out_dir.parent) as staging:
        staging = Path(staging)
        config.save_pretrained(staging)
        _write_weights(chosen, staging, progress)
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # our report says what is initialised; skip transformers' table
        try:
            model, loading = VideoITGForFrameSelection.from_pretrained(staging, dtype=dtype, output_loading_info=True)
        finally:
            transformers_logging.set_verbosity(verbosity)
    planned = set(loading["missing_keys"]) == set(report.initialised)
    if not planned or loading["unexpected_keys"] or loading["mismatched_keys"]:
        raise RuntimeError(f"loading the converted weights did not go as planned: {loading}")  # a converter bug
    model.eval()
    export_model(model, processor, out_dir, _model_card(report, license, base_model))
    report.save(out_dir)
    return report


# ---------------------------------------------------------------------------------------------- command line
def _convert_command(args: argparse.Namespace) -> int:
    report = convert_checkpoint(
        args.source_format, args.source, args.out,
        license=args.license, variant=args.variant, vision_tower=args.vision_tower,
        vision_token_budget=args.vision_token_budget, allow_missing=args.allow_missing, base_model=args.base_model,
    )  # fmt: skip
    print(f"wrote {args.out} from {args.source} ({args.source_format}): {report.summary()}")
    for note in report.notes:
        print(f"  note: {note}")
    print(f"  every source key: {Path(args.out) / REPORT_NAME}")
    return 0


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="build a VideoITG model folder from a LLaVA-OneVision checkpoint or the official VideoITG weights",
        description="Convert a checkpoint folder (config.json + safetensors) into a Hub-ready VideoITG folder.",
    )
    parser.add_argument(
        "--from", dest="source_format", choices=SOURCE_FORMATS, required=True,
        help="llava-onevision: a transformers LlavaOnevisionForConditionalGeneration folder (a new frame head is "
             "initialised); official: the official VideoITG release (nvidia/VideoITG-8B layout)",
    )  # fmt: skip
    parser.add_argument("source", help="the source checkpoint folder")
    parser.add_argument("--out", required=True, help="output folder (Hub-ready)")
    parser.add_argument("--variant", choices=VARIANT_CHOICES, default="pooling",
                        help="VideoITG variant to build (official checkpoints are 'pooling')")  # fmt: skip
    parser.add_argument("--vision-tower", metavar="DIR",
                        help="official: the SigLIP folder (the release stores its vision tower apart)")  # fmt: skip
    parser.add_argument("--vision-token-budget", type=int, metavar="N",
                        help="visual tokens per video (official: config's vision_token_num, else 8192)")  # fmt: skip
    parser.add_argument("--allow-missing", nargs="+", action="extend", default=[], metavar="KEY",
                        help="accept these keys (exact or glob) although missing (initialised) or unexpected "
                             "(dropped)")  # fmt: skip
    parser.add_argument("--license", required=True,
                        help="licence of the source weights, stated in the model card (e.g. cc-by-nc-4.0)")  # fmt: skip
    parser.add_argument("--base-model", metavar="REPO_ID", help="Hub id of the source, for the card's base_model")
    parser.set_defaults(func=_convert_command)


__all__ = [
    "ConversionError",
    "ConversionReport",
    "KeyRule",
    "convert_checkpoint",
    "llava_onevision_rules",
    "official_rules",
    "conversion_command",
    "map_key",
    "read_tensor_specs",
    "safetensors_files",
    "add_cli",
]
