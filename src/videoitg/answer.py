"""Answering a question from the selected frames with a Video-LLM from transformers.

selector (FrameScorer) -> SampledFrames + indices -> answer_selection -> the answering model's processor and chat
template -> generate -> answer text.

Supported answering models (`load_answerer` reads the model type from the config):

* `llava_onevision`, `qwen2_vl`, `qwen2_5_vl`: the selected frames go in as ONE video, in temporal order, through the
  model's own video processor with `do_sample_frames=False`, so the processor resizes and normalises them but never
  re-samples them.
* any other model that `AutoModelForImageTextToText` loads: as one video when its processor has a video processor
  and its chat template places a video, otherwise as a list of images (one per frame, each after its timestamp).

Qwen2-VL and Qwen2.5-VL merge frames in pairs (`temporal_patch_size` 2). For an odd number of selected frames the
last frame is repeated once, as Qwen's own video processor and qwen-vl-utils do, so the model never sees a frame
that was not selected. Qwen2.5-VL places frames in time from `second_per_grid_ts`: it is derived from the mean
spacing of the selected frames (they are not evenly spaced, so this is an approximation; the prompt lists the exact
times).

Vision features are shared with the selector when both run the same vision tower on the same input: a VideoITG model
converted from LLaVA-OneVision (same SigLIP tower, same feature layer, same normalisation). The selector's features of
the selected frames then go into the LLaVA-OneVision answerer as `mm_encoder_outputs`, and its vision tower does not
run again. See `shares_vision_tower`.
"""

from __future__ import annotations

import numbers
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .video import InvalidInputError, SampledFrames

if TYPE_CHECKING:
    import torch

    from .inference import FrameScorer

# Model types that must take the selected frames as one video.
VIDEO_MODEL_TYPES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl")
# The sentence that tells the model where in the video the frames come from (selected frames are not evenly spaced).
TIME_PROMPT = "These {count} frames of the video are shown in order; they were taken at {times}."
# Configuration fields of a vision tower that decide what it computes, beyond its weights.
_TOWER_FIELDS = (
    "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels",
    "image_size", "patch_size", "hidden_act", "layer_norm_eps",
)  # fmt: skip


class UnsupportedAnswererError(InvalidInputError):
    """A model (or model folder) that cannot answer from video frames."""


class EmptySelectionError(InvalidInputError):
    """No frames to answer from."""


class SelectionError(InvalidInputError):
    """Frames, timestamps or indices that do not fit together."""


def _format_times(timestamps: list[float]) -> str:
    return ", ".join(f"{time_s:.1f}s" for time_s in timestamps)


@dataclass
class Answerer:
    """An image-text-to-text model and its processor, answering questions from frames given in the order to show.

    `frames_as` is "video" (all frames as one video, through the video processor) or "images" (one image per frame).
    """

    model: Any = field(repr=False)
    processor: Any = field(repr=False)
    model_type: str
    frames_as: Literal["video", "images"]
    name: str
    time_prompt: bool = True
    # selector model -> whether its vision tower equals this model's (weights compared once per selector)
    _same_tower: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, init=False, repr=False)

    # ------------------------------------------------------------------------------------------------ inputs
    @property
    def temporal_patch_size(self) -> int:
        """Frames the vision encoder merges into one temporal patch (2 for Qwen2-VL / Qwen2.5-VL, else 1)."""
        video_processor = getattr(self.processor, "video_processor", None)
        return int(getattr(video_processor, "temporal_patch_size", None) or 1) if self.frames_as == "video" else 1

    def frames_for_model(self, frames: torch.Tensor) -> torch.Tensor:
        """The frames the model receives: `frames`, with the last one repeated to a multiple of the temporal patch."""
        import torch

        padding = -len(frames) % self.temporal_patch_size
        return torch.cat([frames, frames[-1:].expand(padding, -1, -1, -1)]) if padding else frames

    def prompt(self, timestamps: list[float], question: str) -> str:
        """The chat-formatted prompt for frames taken at `timestamps` (the model's own chat template)."""
        text = question
        if self.time_prompt and self.frames_as == "video":
            text = TIME_PROMPT.format(count=len(timestamps), times=_format_times(timestamps)) + "\n" + question
        if self.frames_as == "video":
            content = [{"type": "video"}, {"type": "text", "text": text}]
        else:
            content = []
            for time_s in timestamps:
                if self.time_prompt:
                    content.append({"type": "text", "text": f"{time_s:.1f}s:"})
                content.append({"type": "image"})
            content.append({"type": "text", "text": text})
        conversation = [{"role": "user", "content": content}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def build_inputs(self, frames: torch.Tensor, timestamps: list[float], question: str):
        """Model inputs (`BatchFeature`, on the model's device) for frames `[K, 3, H, W]` uint8 in the order given."""
        _check_frames(frames, timestamps)
        self._check_question(question)
        prompt = self.prompt([float(t) for t in timestamps], question)
        if self.frames_as == "images":
            inputs = self.processor(
                text=[prompt], images=list(frames), input_data_format="channels_first", return_tensors="pt"
            )
        else:
            shown = self.frames_for_model(frames)
            inputs = self.processor(
                text=[prompt], videos=[shown], return_tensors="pt", **self._video_kwargs(shown, timestamps)
            )
        return inputs.to(self.model.device)

    def _video_kwargs(self, shown: torch.Tensor, timestamps: list[float]) -> dict:
        video_processor = self.processor.video_processor
        # The frames are already chosen: the video processor must resize and normalise them, never re-sample.
        kwargs: dict = {"do_sample_frames": False, "input_data_format": "channels_first"}
        # Qwen2.5-VL places frames in time from the video's frame rate: give it the selected frames' mean rate.
        span = float(timestamps[-1]) - float(timestamps[0])
        fps = (len(timestamps) - 1) / span if len(timestamps) > 1 and span > 0 else 1.0
        kwargs["video_metadata"] = [{
            "total_num_frames": len(shown), "fps": fps, "frames_indices": list(range(len(shown))),
            "duration": len(shown) / fps, "height": int(shown.shape[-2]), "width": int(shown.shape[-1]),
        }]  # fmt: skip
        valid = getattr(getattr(video_processor, "valid_kwargs", None), "__annotations__", {})
        if "cap_pixels_per_frame" in valid and getattr(video_processor, "cap_pixels_per_frame", None) is None:
            # Qwen2-VL: bound each frame's pixels as qwen-vl-utils (the reference) does.
            kwargs["cap_pixels_per_frame"] = True
        return kwargs

    def _check_question(self, question: str) -> None:
        from .processing_videoitg import InstructionError

        if not isinstance(question, str) or not question.strip():
            raise InstructionError("the question is empty: say what the answer should tell")
        for token in (getattr(self.processor, "video_token", None), getattr(self.processor, "image_token", None)):
            if token and token in question:
                raise InstructionError(f"the question contains {token!r}, the model's placeholder for visual input")

    # ------------------------------------------------------------------------------------------------ answer
    def answer(
        self,
        frames: torch.Tensor,
        timestamps: list[float],
        question: str,
        max_new_tokens: int = 64,
        *,
        vision_features: torch.Tensor | None = None,
        **generate_kwargs,
    ) -> str:
        """The model's answer to `question` from `frames` `[K, 3, H, W]` uint8, shown in the order given.

        Greedy decoding unless `generate_kwargs` say otherwise. `vision_features` `[K, P, D]`: this model's vision
        tower output (at its feature layer) for the frames, computed elsewhere; LLaVA-OneVision only.
        """
        import torch

        if vision_features is not None and self.model_type != "llava_onevision":
            raise UnsupportedAnswererError(
                f"{self.name}: precomputed vision features are supported for llava_onevision answerers only, "
                f"not {self.model_type}"
            )
        inputs = self.build_inputs(frames, timestamps, question)
        if vision_features is not None:
            inputs = dict(inputs)
            del inputs["pixel_values_videos"]  # the features replace the vision tower's pass over the pixels
            inputs["mm_encoder_outputs"] = {"video": self._video_encoder_outputs(vision_features, len(frames))}
        tokenizer = self.processor.tokenizer
        options = {"max_new_tokens": max_new_tokens, "do_sample": False, **generate_kwargs}
        if options.get("pad_token_id") is None:
            pad = tokenizer.pad_token_id
            options["pad_token_id"] = pad if pad is not None else tokenizer.eos_token_id
        with torch.inference_mode():
            generated = self.model.generate(**inputs, **options)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)[0].strip()

    def _video_encoder_outputs(self, vision_features: torch.Tensor, num_frames: int):
        """LLaVA-OneVision's video encoding from vision-tower features: projector, 2x2 pooling, newline token."""
        import torch
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        inner = self.model.model
        vision_config = self.model.config.vision_config
        grid = vision_config.image_size // vision_config.patch_size
        if vision_features.ndim != 3 or tuple(vision_features.shape[:2]) != (num_frames, grid * grid):
            raise SelectionError(
                f"vision_features must be [{num_frames}, {grid * grid}, D] (frames, patches of this model's "
                f"tower), got {tuple(vision_features.shape)}"
            )
        projector_weight = next(inner.multi_modal_projector.parameters())
        with torch.inference_mode():
            features = inner.multi_modal_projector(vision_features.to(projector_weight.device, projector_weight.dtype))
            features = inner.apply_pooling(features).reshape(1, -1, features.shape[-1])
            newline = inner.image_newline[None, None, :].to(features.device, features.dtype)
            return BaseModelOutputWithPooling(pooler_output=torch.cat((features, newline), dim=1))


def _check_frames(frames, timestamps) -> None:
    import torch

    if not isinstance(frames, torch.Tensor):
        raise SelectionError(f"frames must be a uint8 tensor [K, 3, H, W], got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.dtype != torch.uint8:
        raise SelectionError(f"frames must be a uint8 tensor [K, 3, H, W], got {frames.dtype} {tuple(frames.shape)}")
    if len(frames) == 0:
        raise EmptySelectionError("no frames to answer from: the selection is empty")
    if len(timestamps) != len(frames):
        raise SelectionError(f"{len(frames)} frames but {len(timestamps)} timestamps: give one time per frame")


# ---------------------------------------------------------------------------------------------------- loading
def load_answerer(
    model_dir_or_repo: str | os.PathLike,
    *,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
    time_prompt: bool = True,
    **from_pretrained_kwargs,
) -> Answerer:
    """An answering model from a folder or Hub id; the model type comes from its config.

    `device`: default CUDA when available, else CPU. `time_prompt`: tell the model the time of each frame.
    Other keyword arguments go to `from_pretrained` (for example `trust_remote_code`, `revision`).
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES as KNOWN_TYPES

    name = str(model_dir_or_repo)
    path = Path(name)
    # A Hub id is "org/name"; anything else that does not exist here is a folder that is missing.
    if not path.exists() and (name.startswith((".", "/", "~")) or name.count("/") != 1):
        raise UnsupportedAnswererError(f"{name}: no such model folder")
    if path.is_dir() and not (path / "config.json").is_file():
        raise UnsupportedAnswererError(f"{name}: no config.json: not a transformers model folder")
    trust_remote_code = from_pretrained_kwargs.get("trust_remote_code", False)
    try:
        config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as error:
        raise UnsupportedAnswererError(f"{name}: cannot read the model configuration ({_one_line(error)})") from error
    model_type = config.model_type
    if model_type == "videoitg":
        raise UnsupportedAnswererError(f"{name}: a VideoITG frame selector, not an answering model")
    if model_type not in KNOWN_TYPES and "AutoModelForImageTextToText" not in (getattr(config, "auto_map", None) or {}):
        raise UnsupportedAnswererError(
            f"{name}: model type {model_type!r} is not an image-text-to-text model; supported: "
            f"{', '.join(VIDEO_MODEL_TYPES)} or any model AutoModelForImageTextToText loads"
        )
    try:
        processor = AutoProcessor.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as error:
        raise UnsupportedAnswererError(f"{name}: cannot load its processor ({_one_line(error)})") from error
    frames_as = _frames_input_mode(name, processor, model_type)  # before loading weights: fail fast
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, **from_pretrained_kwargs)
    if "device_map" not in from_pretrained_kwargs:  # a device map has placed the weights already
        model = model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.eval()
    return Answerer(model, processor, model_type, frames_as, name, time_prompt)


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _frames_input_mode(name: str, processor, model_type: str) -> Literal["video", "images"]:
    """How frames go into this processor: "video" or "images", checked by rendering its chat template."""
    if getattr(processor, "tokenizer", None) is None:
        raise UnsupportedAnswererError(f"{name}: its processor has no tokenizer")
    if not getattr(processor, "chat_template", None):
        raise UnsupportedAnswererError(f"{name}: its processor has no chat template (chat_template.jinja)")

    from jinja2 import TemplateError

    def places(kind: str, count: int) -> bool:
        """Whether the processor takes `count` inputs of `kind` and its template writes one placeholder each."""
        token = getattr(processor, f"{kind}_token", None)
        if getattr(processor, f"{kind}_processor", None) is None or not token:
            return False
        conversation = [{"role": "user", "content": [*([{"type": kind}] * count), {"type": "text", "text": "?"}]}]
        try:
            prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        except (TemplateError, TypeError, KeyError, ValueError):  # a template that cannot place this input
            return False
        return prompt.count(token) == count

    if places("video", 1):
        return "video"
    if model_type in VIDEO_MODEL_TYPES:
        raise UnsupportedAnswererError(f"{name}: its chat template does not place a video, which {model_type} needs")
    if places("image", 2):
        return "images"
    raise UnsupportedAnswererError(
        f"{name}: its processor takes neither a video nor a list of images through its chat template"
    )


# ------------------------------------------------------------------------------------- selection -> answer
def shares_vision_tower(selector: FrameScorer, answerer: Answerer) -> bool:
    """Whether the selector's vision features can stand in for the answerer's own vision pass.

    True when the answerer is LLaVA-OneVision using every patch of its tower's output (`vision_feature_select_strategy`
    "full", as the released checkpoints) and both towers have the same configuration and weights, the same feature
    layer and the same pixel normalisation and input size: a VideoITG model converted from that LLaVA-OneVision.
    Frames are then resized by the selector's processor (bilinear, antialiased) instead of the answerer's (bicubic):
    the only difference from the answerer's own pass. The weights are compared once per selector.
    """
    if answerer.model_type != "llava_onevision":
        return False
    selector_model, answerer_config = selector.model, answerer.model.config
    selector_tower, answerer_tower = getattr(selector_model, "vision_tower", None), answerer.model.model.vision_tower
    layer = answerer_config.vision_feature_layer
    if selector_tower is None or not isinstance(layer, int) or answerer_config.vision_feature_select_strategy != "full":
        return False
    depth = answerer_config.vision_config.num_hidden_layers + 1  # hidden states: embeddings + one per layer
    if selector_model.config.vision_feature_layer % depth != layer % depth:
        return False
    if any(
        getattr(selector_model.config.vision_config, name, None) != getattr(answerer_config.vision_config, name, None)
        for name in _TOWER_FIELDS
    ):
        return False
    selector_pixels, answerer_pixels = selector.processor.video_processor, answerer.processor.video_processor
    if _pixel_settings(selector_pixels) != _pixel_settings(answerer_pixels):
        return False
    if selector_model not in answerer._same_tower:
        answerer._same_tower[selector_model] = _same_weights(selector_tower, answerer_tower)
    return answerer._same_tower[selector_model]


def _pixel_settings(video_processor) -> tuple:
    """What turns a frame into the tower's input, apart from the resize filter: size and normalisation."""
    mean, std = video_processor.image_mean, video_processor.image_std
    return (
        (video_processor.size["height"], video_processor.size["width"]),
        tuple(float(value) for value in (mean if isinstance(mean, (list, tuple)) else [mean] * 3)),
        tuple(float(value) for value in (std if isinstance(std, (list, tuple)) else [std] * 3)),
        float(video_processor.rescale_factor),
    )


def _same_weights(first, second) -> bool:
    import torch

    first_state, second_state = first.state_dict(), second.state_dict()
    if first_state.keys() != second_state.keys():
        return False
    return all(
        first_state[key].shape == second_state[key].shape
        and torch.equal(first_state[key], second_state[key].to(first_state[key].device, first_state[key].dtype))
        for key in first_state
    )


def answer_selection(
    answerer: Answerer,
    sampled: SampledFrames,
    indices: list[int],
    question: str,
    *,
    selector: FrameScorer | None = None,
    max_new_tokens: int = 64,
    **generate_kwargs,
) -> str:
    """Answer `question` from the frames at positions `indices` of `sampled`, shown in temporal order.

    Uses the frames the selector already decoded (no second decode). With `selector` (the `FrameScorer` that
    scored `sampled`) and a matching vision tower (`shares_vision_tower`), its vision features are reused too.
    """
    if not isinstance(sampled, SampledFrames):
        raise SelectionError(f"sampled must be the SampledFrames the selector decoded, got {type(sampled).__name__}")
    order = _temporal_order(sampled, indices)
    frames = sampled.frames[order]
    timestamps = [float(sampled.timestamps[position]) for position in order]
    vision_features = None
    if selector is not None and shares_vision_tower(selector, answerer):
        # [T, P, D] of every sampled frame: computed once per video, when the selector scored it.
        vision_features = selector.vision_features(sampled)[0, order]
    return answerer.answer(
        frames, timestamps, question, max_new_tokens, vision_features=vision_features, **generate_kwargs
    )


def _temporal_order(sampled: SampledFrames, indices) -> list[int]:
    indices = list(indices)
    if not indices:
        raise EmptySelectionError("no frames to answer from: the selection is empty")
    count = len(sampled.frames)
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < count:
            raise SelectionError(f"frame index {index!r} is not a position in the {count} sampled frames")
    if len(set(indices)) != len(indices):
        raise SelectionError(f"frame indices repeat: {sorted(indices)}")
    return sorted((int(index) for index in indices), key=lambda position: (sampled.timestamps[position], position))


# ------------------------------------------------------------------------------------------ tiny test models
_CHAT_TEMPLATES = {
    # Qwen-style turns; the visual placeholders are each model family's own tokens.
    "llava_onevision": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
        "{% for item in message['content'] %}{% if item['type'] == 'video' %}<video>\n"
        "{% elif item['type'] == 'image' %}<image>\n{% else %}{{ item['text'] }}\n{% endif %}{% endfor %}"
        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "qwen2_vl": (
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% for item in message['content'] %}"
        "{% if item['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% elif item['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ item['text'] }}"
        "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "llava": (
        "{% for message in messages %}{{ message['role'] | upper }}: {% for item in message['content'] %}"
        "{% if item['type'] == 'image' %}<image>\n{% elif item['type'] == 'text' %}{{ item['text'] }} {% endif %}"
        "{% endfor %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    ),
}
_CHAT_TEMPLATES["qwen2_5_vl"] = _CHAT_TEMPLATES["qwen2_vl"]
TINY_MODEL_TYPES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "llava")


def build_tiny_answerer(model_type: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """A randomly initialised tiny answering model and its processor, saved to `out_dir` (nothing downloaded).

    For tests and demos of the answering code: `llava_onevision`, `qwen2_vl`, `qwen2_5_vl` (videos) and `llava`
    (a list of images). The answers are meaningless; the inputs are built as for the real models.
    """
    import torch

    from .hub import build_tokenizer

    if model_type not in TINY_MODEL_TYPES:
        raise UnsupportedAnswererError(f"no tiny {model_type!r} model; choose one of {', '.join(TINY_MODEL_TYPES)}")
    tokenizer = build_tokenizer()
    visual_tokens = (
        ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
        if model_type.startswith("qwen")
        else ["<image>", "<video>"]
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>", *visual_tokens]})
    token_id = tokenizer.convert_tokens_to_ids
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "num_key_value_heads": 1, "vocab_size": len(tokenizer), "max_position_embeddings": 2048,
            "bos_token_id": None, "eos_token_id": token_id("<|im_end|>"),
            "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
    siglip = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(seed)
    if model_type == "llava_onevision":
        model, processor = _tiny_llava_onevision(tokenizer, text, siglip)
    elif model_type == "llava":
        model, processor = _tiny_llava(tokenizer, text, siglip)
    else:
        model, processor = _tiny_qwen(model_type, tokenizer, text)
    processor.chat_template = _CHAT_TEMPLATES[model_type]
    model.generation_config.eos_token_id = token_id("<|im_end|>")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def _tiny_llava_onevision(tokenizer, text: dict, siglip: dict):
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
    )

    side = siglip["image_size"]
    config = LlavaOnevisionConfig(
        vision_config=siglip, text_config={"model_type": "qwen2", **text},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full", image_grid_pinpoints=[[side, side]],
    )  # fmt: skip
    # SigLIP's normalisation, as the released LLaVA-OneVision checkpoints have it.
    pixels = {"size": {"height": side, "width": side}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**pixels, image_grid_pinpoints=[[side, side]]),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(**pixels),
        num_image_tokens=(side // siglip["patch_size"]) ** 2,
        vision_feature_select_strategy="full",
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def _tiny_llava(tokenizer, text: dict, siglip: dict):
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipImageProcessor

    config = LlavaConfig(
        vision_config=siglip, text_config={"model_type": "qwen2", **text},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1, vision_feature_select_strategy="full",
    )  # fmt: skip
    side = siglip["image_size"]
    processor = LlavaProcessor(
        image_processor=SiglipImageProcessor(size={"height": side, "width": side}),
        tokenizer=tokenizer,
        patch_size=siglip["patch_size"],
        vision_feature_select_strategy="full",
        num_additional_image_tokens=0,
    )
    return LlavaForConditionalGeneration(config), processor


def _tiny_qwen(model_type: str, tokenizer, text: dict):
    import transformers

    patch, merge = 4, 2
    # Each frame is resized to between 8x8 and 32x32 pixels (multiples of patch * merge): 4 to 64 patches.
    size = {"shortest_edge": 8 * 8, "longest_edge": 32 * 32}
    vision = {"depth": 2, "num_heads": 2, "patch_size": patch, "spatial_merge_size": merge, "temporal_patch_size": 2}
    if model_type == "qwen2_vl":
        vision |= {"embed_dim": 32, "hidden_size": text["hidden_size"], "mlp_ratio": 2}
        config_class, model_class = transformers.Qwen2VLConfig, transformers.Qwen2VLForConditionalGeneration
        processor_class = transformers.Qwen2VLProcessor
    else:
        vision |= {"hidden_size": 32, "intermediate_size": 64, "out_hidden_size": text["hidden_size"],
                   "window_size": 2 * patch * merge, "fullatt_block_indexes": [1]}  # fmt: skip
        config_class, model_class = transformers.Qwen2_5_VLConfig, transformers.Qwen2_5_VLForConditionalGeneration
        processor_class = transformers.Qwen2_5_VLProcessor
    head_dim = text["hidden_size"] // text["num_attention_heads"]
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    assert sum(rope["mrope_section"]) * 2 == head_dim
    token_id = tokenizer.convert_tokens_to_ids
    config = config_class(
        text_config={**text, "rope_parameters": rope}, vision_config=vision,
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
    )  # fmt: skip
    pixels = {"size": size, "patch_size": patch, "merge_size": merge}
    processor = processor_class(
        image_processor=transformers.Qwen2VLImageProcessor(**pixels),
        tokenizer=tokenizer,
        video_processor=transformers.Qwen2VLVideoProcessor(**pixels, temporal_patch_size=2),
    )
    return model_class(config), processor
