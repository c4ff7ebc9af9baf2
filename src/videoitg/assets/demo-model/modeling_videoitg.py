"""VideoITG: score every frame of a video against an instruction in one forward pass.

Data flow: frames -> vision tower (in chunks) -> projector -> per-frame grid resized to HW x HW tokens ->
[video tokens | instruction tokens (| anchors)] -> decoder LLM -> one logit per frame.

Variants (paper section 4):
- "pooling" (C): bidirectional attention; mean of each frame's final hidden states -> Linear(hidden, 1).
- "anchor" (B): causal attention; one anchor token per frame (mean of its projected tokens) after the
  instruction, so anchors see the whole video and the instruction; the head reads the anchors.
- "generation" (A): causal LM that writes the relevant frame indices as text ("3, 17, 42").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.utils import ModelOutput, is_flash_attn_2_available

from .configuration_videoitg import VideoITGConfig
from .video import InvalidInputError


class SequenceTooLongError(InvalidInputError):
    """Video tokens plus instruction do not fit the language model's context."""


@dataclass
class VideoITGOutput(ModelOutput):
    """
    Args:
        loss: BCE over valid frames (pooling / anchor) or LM loss over the index text (generation).
        logits: `[B, T]` frame logits; padded frames hold the dtype's minimum.
        scores: `[B, T]` sigmoid of `logits`; padded frames score 0.
        frame_mask: `[B, T]` True for real frames.
        lm_logits: `[B, S, V]` language-model logits (generation variant only).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    scores: torch.FloatTensor | None = None
    frame_mask: torch.BoolTensor | None = None
    lm_logits: torch.FloatTensor | None = None


@dataclass
class FrameSelection:
    """The frames picked for one video, in temporal order."""

    indices: list[int]
    timestamps: list[float]
    scores: list[float]
    frame_scores: list[float]  # score of every sampled frame


def frame_selection_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    frame_mask: torch.Tensor | None = None,
    num_items_in_batch: int | torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-frame BCE with logits over valid frames.

    labels: `[B, T]` 0/1 or soft targets, -100 = ignore. pos_weight follows the official rule
    `min(5, sqrt(#neg / max(1, #pos)))`, computed per video so that gradient accumulation gives the same
    loss as a larger batch (a video with no negatives keeps pos_weight 1). The sum is divided by
    `num_items_in_batch` when given (Trainer's count over the accumulated batches), else by the number of
    valid frames.
    """
    valid = labels != -100
    if frame_mask is not None:
        valid &= frame_mask.bool()
    targets = torch.where(valid, labels, torch.zeros_like(labels)).to(logits.dtype).clamp(0, 1)
    positives = targets.sum(dim=1)
    negatives = valid.sum(dim=1) - positives
    pos_weight = torch.sqrt(negatives / positives.clamp(min=1)).clamp(max=5.0)
    pos_weight = torch.where(negatives > 0, pos_weight, torch.ones_like(pos_weight))
    safe_logits = torch.where(valid, logits, torch.zeros_like(logits))
    per_frame = F.binary_cross_entropy_with_logits(
        safe_logits, targets, pos_weight=pos_weight[:, None], reduction="none"
    )
    total = (per_frame * valid).sum()
    denominator = num_items_in_batch if num_items_in_batch is not None else valid.sum().clamp(min=1)
    return total / denominator


def format_frame_indices(indices) -> str:
    """Target text of the generation variant: "3, 17, 42" (frame positions in the sampled video)."""
    return ", ".join(str(int(index)) for index in indices)


def parse_frame_indices(text: str, num_frames: int) -> list[int]:
    """Frame positions written by the generation variant, in generated order, de-duplicated, in range."""
    seen: dict[int, None] = {}
    for match in re.findall(r"\d+", text):
        index = int(match)
        if index < num_frames:
            seen.setdefault(index, None)
    return list(seen)


class VideoITGMultiModalProjector(nn.Module):
    """Linear -> GELU -> Linear from vision width to LLM width."""

    def __init__(self, config: VideoITGConfig):
        super().__init__()
        self.linear_1 = nn.Linear(config.vision_config.hidden_size, config.text_config.hidden_size)
        self.act = ACT2FN[config.projector_hidden_act]
        self.linear_2 = nn.Linear(config.text_config.hidden_size, config.text_config.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class VideoITGFrameHead(nn.Linear):
    """Linear(hidden, 1): one logit per frame. Its own class so that weight init can tell it apart."""


class VideoITGPreTrainedModel(PreTrainedModel):
    config: VideoITGConfig
    config_class = VideoITGConfig
    base_model_prefix = ""
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    _skip_keys_device_placement = ["cache"]

    def _init_weights(self, module):
        if isinstance(module, VideoITGFrameHead):
            # As the official release: xavier weights, zero bias for the classification head.
            init.xavier_uniform_(module.weight)
            init.zeros_(module.bias)
            return
        super()._init_weights(module)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        # flash-attention-2 when it is installed and a GPU is there; never required.
        if "attn_implementation" not in kwargs and torch.cuda.is_available() and is_flash_attn_2_available():
            kwargs["attn_implementation"] = "flash_attention_2"
        return super().from_pretrained(*args, **kwargs)


class VideoITGForFrameSelection(VideoITGPreTrainedModel):
    def __init__(self, config: VideoITGConfig):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = VideoITGMultiModalProjector(config)
        if config.variant == "generation":
            self.language_model = AutoModelForCausalLM.from_config(config.text_config)
            self.frame_head = None
        else:
            self.language_model = AutoModel.from_config(config.text_config)
            self.frame_head = VideoITGFrameHead(config.text_config.hidden_size, 1)
        self._no_split_modules = [
            *(getattr(self.vision_tower, "_no_split_modules", None) or []),
            *(getattr(self.language_model, "_no_split_modules", None) or []),
        ]
        self.post_init()

    def get_input_embeddings(self):
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.language_model.set_input_embeddings(value)

    @property
    def is_bidirectional(self) -> bool:
        return self.config.variant == "pooling"

    # ------------------------------------------------------------------ vision -> per-frame tokens
    def encode_frames(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Vision features of `pixel_values` `[N, 3, H, W]` -> `[N, P, Dv]` (layer `vision_feature_layer`)."""
        outputs = self.vision_tower(pixel_values=pixel_values, output_hidden_states=True)
        features = outputs.hidden_states[self.config.vision_feature_layer]
        grid = self.config.patch_grid_size
        if features.shape[1] == grid * grid + 1:  # towers with a class token (CLIP): keep the patch grid
            features = features[:, 1:]
        return features

    def frame_tokens(
        self, pixel_values: torch.Tensor | None = None, vision_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Tokens of one video's frames: `[T, 3, H, W]` pixels or `[T, P, Dv]` features -> `[T, HW*HW, D]`.

        Frames go through the vision tower `vision_chunk_size` at a time and are reduced to HW x HW tokens
        at once, so a 512-frame video never holds every frame's full activations.
        """
        num_frames = (pixel_values if pixel_values is not None else vision_features).shape[0]
        side = self.config.tokens_per_frame_side(num_frames)
        vision_trainable = any(p.requires_grad for p in self.vision_tower.parameters())
        chunks = []
        for start in range(0, num_frames, self.config.vision_chunk_size):
            stop = start + self.config.vision_chunk_size
            if vision_features is not None:
                features = vision_features[start:stop]
            else:
                with torch.set_grad_enabled(torch.is_grad_enabled() and vision_trainable):
                    features = self.encode_frames(pixel_values[start:stop])
            features = features.to(self.multi_modal_projector.linear_1.weight.dtype)
            if self.config.resize_before_projector:  # official VideoITG: resize the vision features, then project
                chunks.append(self.multi_modal_projector(self._resize_grid(features, side)))
            else:  # LLaVA-Video / LLaVA-OneVision: project every patch, then resize
                chunks.append(self._resize_grid(self.multi_modal_projector(features), side))
        return torch.cat(chunks)  # [T, HW*HW, D]

    def _resize_grid(self, tokens: torch.Tensor, side: int) -> torch.Tensor:
        """`[N, g*g, D]` -> `[N, side*side, D]`: the patch grid resized by `config.grid_resize_mode` (bilinear with
        align_corners False, or area = the average of the patches each token covers)."""
        grid = self.config.patch_grid_size
        if side == grid:
            return tokens
        count, _, width = tokens.shape
        spatial = tokens.view(count, grid, grid, width).permute(0, 3, 1, 2)
        if self.config.grid_resize_mode == "area":
            resized = F.adaptive_avg_pool2d(spatial.float(), side)
        else:
            resized = F.interpolate(spatial.float(), size=(side, side), mode="bilinear", align_corners=False)
        return resized.to(tokens.dtype).flatten(2).transpose(1, 2)

    # ------------------------------------------------------------------ sequence assembly
    def _video_tokens(self, pixel_values_videos, vision_features, frame_mask, video_index=None):
        """Per instruction: the video's tokens `[T_b, n_b, D]` and the frame mask `[B, T]`."""
        source = pixel_values_videos if pixel_values_videos is not None else vision_features
        if source is None:
            raise ValueError("pass pixel_values_videos or vision_features")
        if frame_mask is None:
            frame_mask = torch.ones(source.shape[:2], dtype=torch.bool, device=source.device)
        frame_mask = frame_mask.bool()
        videos = self._video_token_list(pixel_values_videos, vision_features, frame_mask)
        if video_index is None:
            return videos, frame_mask
        return [videos[index] for index in video_index.tolist()], frame_mask[video_index]

    def _video_token_list(self, pixel_values_videos, vision_features, frame_mask) -> list[torch.Tensor]:
        source = pixel_values_videos if pixel_values_videos is not None else vision_features
        videos = []
        for index in range(source.shape[0]):
            count = int(frame_mask[index].sum())
            if count == 0:
                raise InvalidInputError(f"video {index} of the batch has no frames")
            if pixel_values_videos is not None:
                videos.append(self.frame_tokens(pixel_values=pixel_values_videos[index, :count]))
            else:
                videos.append(self.frame_tokens(vision_features=vision_features[index, :count]))
        return videos

    def _assemble(self, segments: list[list[torch.Tensor]], padding_side: str = "right"):
        """Concatenate each sample's segments and pad to a batch.

        Returns inputs_embeds `[B, S, D]`, attention_mask `[B, S]`, position_ids `[B, S]`, and each
        sample's offset (where its first segment starts after left padding).
        """
        sequences = [torch.cat(parts) for parts in segments]
        lengths = [len(sequence) for sequence in sequences]
        limit = self.config.text_config.max_position_embeddings
        if max(lengths) > limit:
            raise SequenceTooLongError(
                f"instruction too long: video tokens + instruction = {max(lengths)} tokens, "
                f"more than the language model's context of {limit}"
            )
        longest = max(lengths)
        width = sequences[0].shape[-1]
        embeds = sequences[0].new_zeros(len(sequences), longest, width)
        attention_mask = torch.zeros(len(sequences), longest, dtype=torch.long, device=embeds.device)
        offsets = []
        for index, sequence in enumerate(sequences):
            offset = longest - len(sequence) if padding_side == "left" else 0
            embeds[index, offset : offset + len(sequence)] = sequence
            attention_mask[index, offset : offset + len(sequence)] = 1
            offsets.append(offset)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return embeds, attention_mask, position_ids, offsets

    def _text_embeddings(self, input_ids, attention_mask) -> list[torch.Tensor]:
        if input_ids is None:
            raise ValueError("pass input_ids (the tokenized instruction)")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        embeddings = self.get_input_embeddings()(input_ids)
        return [embeddings[index][attention_mask[index].bool()] for index in range(input_ids.shape[0])]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.LongTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        vision_features: torch.FloatTensor | None = None,
        video_frame_mask: torch.BoolTensor | None = None,
        labels: torch.Tensor | None = None,
        target_ids: torch.LongTensor | None = None,
        video_index: torch.LongTensor | None = None,
        **kwargs,
    ) -> VideoITGOutput:
        r"""
        input_ids / attention_mask: `[B, L]` the tokenized instruction (prompt suffix included), any padding side.
        pixel_values_videos: `[B, T, 3, H, W]` normalised frames, or vision_features: `[B, T, P, Dv]` the vision
            tower's layer-`vision_feature_layer` patch features (a cached vision pass).
        video_frame_mask: `[B, T]` True for real frames (videos of different lengths are right-padded).
        labels: `[B, T]` frame targets (0/1 or soft, -100 ignored) for the BCE loss (pooling / anchor), or the
            relevant frames as 0/1 when `target_ids` is not given (generation).
        target_ids: `[B, Lt]` tokenized index text + eos, -100 padded (generation variant training).
        video_index: `[B]` optional: several instructions about the same videos. Then the video inputs hold V
            unique videos (`[V, T, ...]`) and instruction b reads video `video_index[b]`; each video goes through
            the vision tower once.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        video_tokens, video_frame_mask = self._video_tokens(
            pixel_values_videos, vision_features, video_frame_mask, video_index
        )
        text_tokens = self._text_embeddings(input_ids, attention_mask)

        if self.config.variant == "generation":
            return self._forward_generation(video_tokens, text_tokens, video_frame_mask, target_ids, num_items_in_batch)

        segments = []
        for video, text in zip(video_tokens, text_tokens):
            parts = [video.flatten(0, 1), text]
            if self.config.variant == "anchor":
                parts.append(video.mean(dim=1))  # one anchor per frame, after the instruction
            segments.append(parts)
        embeds, mask, positions, _ = self._assemble(segments)
        hidden = self.language_model(
            inputs_embeds=embeds, attention_mask=mask, position_ids=positions, is_causal=not self.is_bidirectional
        ).last_hidden_state  # [B, S, D]

        frame_hidden = hidden.new_zeros(hidden.shape[0], video_frame_mask.shape[1], hidden.shape[-1])
        for index, (video, text) in enumerate(zip(video_tokens, text_tokens)):
            count, tokens_per_frame = video.shape[:2]
            if self.config.variant == "pooling":
                frame_states = hidden[index, : count * tokens_per_frame].view(count, tokens_per_frame, -1).mean(1)
            else:
                anchor_start = count * tokens_per_frame + len(text)
                frame_states = hidden[index, anchor_start : anchor_start + count]
            frame_hidden[index, :count] = frame_states
        logits = self.frame_head(frame_hidden).squeeze(-1).float()  # [B, T]
        logits = logits.masked_fill(~video_frame_mask, torch.finfo(logits.dtype).min)
        loss = None
        if labels is not None:
            loss = frame_selection_loss(logits, labels.to(logits.dtype), video_frame_mask, num_items_in_batch)
        scores = torch.sigmoid(logits) * video_frame_mask
        return VideoITGOutput(loss=loss, logits=logits, scores=scores, frame_mask=video_frame_mask)

    def _forward_generation(self, video_tokens, text_tokens, frame_mask, target_ids, num_items_in_batch):
        if target_ids is None:
            raise ValueError("the generation variant trains on target_ids (the index text); use generate_frame_indices to infer")
        embed = self.get_input_embeddings()
        segments, prefix_lengths, targets = [], [], []
        for index, (video, text) in enumerate(zip(video_tokens, text_tokens)):
            target = target_ids[index][target_ids[index] != -100]
            prefix = [video.flatten(0, 1), text]
            prefix_lengths.append(sum(len(part) for part in prefix))
            segments.append([*prefix, embed(target)])
            targets.append(target)
        embeds, mask, positions, _ = self._assemble(segments)
        lm_labels = torch.full(mask.shape, -100, dtype=torch.long, device=embeds.device)
        for index, (start, target) in enumerate(zip(prefix_lengths, targets)):
            lm_labels[index, start : start + len(target)] = target
        lm_logits = self.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits
        shifted_logits = lm_logits[:, :-1].float()
        shifted_labels = lm_labels[:, 1:]
        total = F.cross_entropy(shifted_logits.transpose(1, 2), shifted_labels, ignore_index=-100, reduction="sum")
        count = num_items_in_batch if num_items_in_batch is not None else (shifted_labels != -100).sum().clamp(min=1)
        return VideoITGOutput(loss=total / count, frame_mask=frame_mask, lm_logits=lm_logits)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def generate_frame_indices(
        self,
        input_ids,
        attention_mask=None,
        pixel_values_videos=None,
        vision_features=None,
        video_frame_mask=None,
        video_index=None,
        max_new_tokens: int = 256,
        eos_token_id: int | None = None,
        pad_token_id: int | None = None,
    ) -> torch.LongTensor:
        """Generation variant: greedy-decode the index text. Returns the new token ids `[B, N]`."""
        if self.config.variant != "generation":
            raise ValueError("generate_frame_indices is for the generation variant")
        video_tokens, _ = self._video_tokens(pixel_values_videos, vision_features, video_frame_mask, video_index)
        text_tokens = self._text_embeddings(input_ids, attention_mask)
        segments = [[video.flatten(0, 1), text] for video, text in zip(video_tokens, text_tokens)]
        embeds, mask, _, _ = self._assemble(segments, padding_side="left")
        eos_token_id = eos_token_id if eos_token_id is not None else self.config.text_config.eos_token_id
        return self.language_model.generate(
            inputs_embeds=embeds,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id if pad_token_id is not None else eos_token_id,
        )

    @torch.no_grad()
    def score_frames(self, tokenizer=None, **inputs) -> VideoITGOutput:
        """Frame scores for a batch from the processor (`[B, T]`, padded frames 0).

        The generation variant has no per-frame logit: its written indices score by their rank
        (first written 1.0 down to 0.5), unwritten frames 0. It needs the `tokenizer` to read its text.
        """
        model_inputs = {
            key: inputs[key]
            for key in ("input_ids", "attention_mask", "pixel_values_videos", "vision_features", "video_frame_mask",
                        "video_index")
            if inputs.get(key) is not None
        }  # fmt: skip
        if self.config.variant != "generation":
            return self(**model_inputs)
        if tokenizer is None:
            raise ValueError("the generation variant needs the tokenizer (or processor) to read its output")
        generated = self.generate_frame_indices(
            **model_inputs, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id
        )
        source = model_inputs.get("pixel_values_videos", model_inputs.get("vision_features"))
        frame_mask = model_inputs.get("video_frame_mask")
        if frame_mask is None:
            frame_mask = torch.ones(source.shape[:2], dtype=torch.bool, device=source.device)
        if "video_index" in model_inputs:
            frame_mask = frame_mask[model_inputs["video_index"]]
        scores = torch.zeros(frame_mask.shape, device=source.device)
        for index, text in enumerate(tokenizer.batch_decode(generated, skip_special_tokens=True)):
            written = parse_frame_indices(text, int(frame_mask[index].sum()))
            for rank, frame in enumerate(written):
                scores[index, frame] = 1.0 - 0.5 * rank / max(1, len(written))
        return VideoITGOutput(scores=scores, frame_mask=frame_mask.bool())

    @torch.no_grad()
    def select_frames(
        self, frame_timestamps=None, top_k: int | None = None, tokenizer=None, **inputs
    ) -> list[FrameSelection]:
        """Score a processed batch and keep the `top_k` best frames of each video, in temporal order.

        frame_timestamps: `[B, T]` seconds of each sampled frame (from the processor); frame positions are
        used when it is missing.
        """
        top_k = top_k or self.config.num_selected_frames
        outputs = self.score_frames(tokenizer=tokenizer, **inputs)
        selections = []
        for index in range(outputs.scores.shape[0]):
            count = int(outputs.frame_mask[index].sum())
            scores = outputs.scores[index, :count].float().cpu()
            times = (
                frame_timestamps[index, :count].tolist()
                if frame_timestamps is not None
                else [float(position) for position in range(count)]
            )
            selections.append(select_top_k(scores, times, top_k))
        return selections


def select_top_k(scores: torch.Tensor, timestamps: list[float], top_k: int) -> FrameSelection:
    """The `top_k` highest-scoring frames (ties: earlier first), returned in temporal order."""
    count = len(scores)
    order = sorted(range(count), key=lambda position: (-float(scores[position]), position))
    picked = sorted(order[: min(top_k, count)])
    return FrameSelection(
        indices=picked,
        timestamps=[float(timestamps[position]) for position in picked],
        scores=[float(scores[position]) for position in picked],
        frame_scores=[float(score) for score in scores],
    )


__all__ = [
    "VideoITGForFrameSelection",
    "VideoITGPreTrainedModel",
    "VideoITGOutput",
    "FrameSelection",
    "frame_selection_loss",
    "format_frame_indices",
    "parse_frame_indices",
    "select_top_k",
]

AutoModel.register(VideoITGConfig, VideoITGForFrameSelection, exist_ok=True)
