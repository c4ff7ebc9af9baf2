"""VideoITG processing: video -> sampled frames -> normalised pixels, and instruction -> prompt tokens.

`VideoITGVideoProcessor` (AutoVideoProcessor) samples frames at `sample_fps` (1 fps) up to `max_frames`
(uniformly subsampled above that), resizes and normalises them for the vision tower, and pads a batch of
videos with a frame mask. `VideoITGProcessor` (AutoProcessor) adds the tokenizer and the official prompt
(instruction + "\\n"; the video tokens are placed before it by the model).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import AutoProcessor, AutoVideoProcessor, BatchFeature
from transformers.processing_utils import ProcessorMixin
from transformers.video_processing_utils import BaseVideoProcessor

from .configuration_videoitg import VideoITGConfig
from .modeling_videoitg import format_frame_indices, parse_frame_indices
from .video import InvalidInputError, SampledFrames, load_video


class InstructionError(InvalidInputError):
    """The instruction is empty or does not fit the model."""


class VideoITGVideoProcessor(BaseVideoProcessor):
    r"""
    Args:
        size (`dict`, *optional*): `{"height": H, "width": W}` of the vision tower's input.
        image_mean / image_std (`list[float]`, *optional*): normalisation (SigLIP: 0.5 / 0.5).
        sample_fps (`float`, *optional*, defaults to 1.0): frames per second sampled from a video file.
        max_frames (`int`, *optional*, defaults to 512): longer videos are subsampled uniformly to this.
        decode_backend (`str`, *optional*): "torchcodec", "decord" or "pyav"; default: first installed.
        resize_chunk_size (`int`, *optional*, defaults to 64): frames resized at a time (bounds memory).
    """

    model_input_names = ["pixel_values_videos", "video_frame_mask"]

    def __init__(
        self,
        size: dict | None = None,
        image_mean: list[float] | None = None,
        image_std: list[float] | None = None,
        rescale_factor: float = 1 / 255,
        sample_fps: float = 1.0,
        max_frames: int = 512,
        decode_backend: str | None = None,
        resize_chunk_size: int = 64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.size = dict(size or {"height": 384, "width": 384})
        self.image_mean = list(image_mean or [0.5, 0.5, 0.5])
        self.image_std = list(image_std or [0.5, 0.5, 0.5])
        self.rescale_factor = rescale_factor
        self.sample_fps = sample_fps
        self.max_frames = max_frames
        self.decode_backend = decode_backend
        self.resize_chunk_size = resize_chunk_size

    @property
    def decode_max_side(self) -> int:
        """Longest side videos are decoded at: above 2x the model's input size only costs memory."""
        return 2 * max(self.size["height"], self.size["width"])

    def load(self, video, progress: bool = False) -> SampledFrames:
        """Decode a file (path) at `sample_fps`, up to `max_frames` frames; pass SampledFrames through."""
        if isinstance(video, SampledFrames):
            return video
        if isinstance(video, (str, Path)):
            return load_video(
                video, sample_fps=self.sample_fps, max_frames=self.max_frames,
                backend=self.decode_backend, max_side=self.decode_max_side, progress=progress,
            )  # fmt: skip
        raise InvalidInputError(f"expected a video path or SampledFrames, got {type(video).__name__}")

    def _frames_and_times(self, video, timestamps) -> tuple[torch.Tensor, list[float], list[int]]:
        if isinstance(video, torch.Tensor):
            if video.ndim != 4 or 3 not in (video.shape[1], video.shape[-1]):
                raise InvalidInputError(f"frames must be [T, 3, H, W] or [T, H, W, 3], got {tuple(video.shape)}")
            frames = video if video.shape[1] == 3 else video.permute(0, 3, 1, 2)
            if len(frames) == 0:
                raise InvalidInputError("the video has no frames")
            times = list(timestamps) if timestamps is not None else [i / self.sample_fps for i in range(len(frames))]
            return frames, [float(t) for t in times], list(range(len(frames)))
        sampled = self.load(video)
        return sampled.frames, list(sampled.timestamps), list(sampled.grid_indices)

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 `[T, 3, h, w]` -> uint8 `[T, 3, H, W]` at the vision tower's size, a chunk at a time."""
        height, width = self.size["height"], self.size["width"]
        if frames.shape[-2:] == (height, width):
            return frames
        resized = torch.empty(len(frames), 3, height, width, dtype=torch.uint8)
        for start in range(0, len(frames), self.resize_chunk_size):
            chunk = frames[start : start + self.resize_chunk_size].float()
            chunk = F.interpolate(chunk, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
            resized[start : start + len(chunk)] = chunk.round().clamp(0, 255).to(torch.uint8)
        return resized

    def to_pixel_values(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 `[T, 3, h, w]` -> normalised float `[T, 3, H, W]`."""
        mean = torch.tensor(self.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std).view(1, 3, 1, 1)
        return (self.resize_frames(frames).float() * self.rescale_factor - mean) / std

    def preprocess(self, videos, timestamps=None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """
        videos: one video or a list: a path, `SampledFrames`, or a uint8 tensor `[T, 3, H, W]` / `[T, H, W, 3]`.
        timestamps: seconds of each frame, for tensors (default: `i / sample_fps`).

        Returns `pixel_values_videos` `[B, T, 3, H, W]`, `video_frame_mask` `[B, T]`, `frame_timestamps`
        `[B, T]` (seconds, -1 on padding) and `grid_indices` `[B, T]` (position on the `sample_fps` grid,
        -1 on padding), where T is the longest video of the batch.
        """
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        single = not isinstance(videos, (list, tuple))
        videos = [videos] if single else list(videos)
        if timestamps is not None and single:
            timestamps = [timestamps]
        per_video = [
            self._frames_and_times(video, timestamps[i] if timestamps is not None else None)
            for i, video in enumerate(videos)
        ]
        longest = max(len(frames) for frames, _, _ in per_video)
        height, width = self.size["height"], self.size["width"]
        pixel_values = torch.zeros(len(videos), longest, 3, height, width)
        frame_mask = torch.zeros(len(videos), longest, dtype=torch.bool)
        frame_timestamps = torch.full((len(videos), longest), -1.0)
        grid_indices = torch.full((len(videos), longest), -1, dtype=torch.long)
        for index, (frames, times, grid) in enumerate(per_video):
            count = len(frames)
            pixel_values[index, :count] = self.to_pixel_values(frames)
            frame_mask[index, :count] = True
            frame_timestamps[index, :count] = torch.tensor(times, dtype=torch.float)
            grid_indices[index, :count] = torch.tensor(grid, dtype=torch.long)
        data = {
            "pixel_values_videos": pixel_values,
            "video_frame_mask": frame_mask,
            "frame_timestamps": frame_timestamps,
            "grid_indices": grid_indices,
        }
        return BatchFeature(data=data, tensor_type=return_tensors)


class VideoITGProcessor(ProcessorMixin):
    r"""
    Tokenizer + video processor. `processor(videos=..., text=...)` returns everything the model needs.

    Args:
        video_processor ([`VideoITGVideoProcessor`]): frame sampling and normalisation.
        tokenizer: any tokenizer of the LLM (needs a pad token).
        prompt_suffix (`str`, *optional*, defaults to `"\n"`): appended to each instruction (official prompt).
    """

    attributes = ["video_processor", "tokenizer"]

    def __init__(self, video_processor=None, tokenizer=None, prompt_suffix: str = "\n", chat_template=None, **kwargs):
        self.prompt_suffix = prompt_suffix
        super().__init__(video_processor, tokenizer, chat_template=chat_template, **kwargs)

    def build_prompt(self, instruction) -> str:
        if not isinstance(instruction, str) or not instruction.strip():
            raise InstructionError("the instruction is empty: say what the frames should show")
        return instruction.strip() + self.prompt_suffix

    def encode_instructions(self, instructions) -> dict:
        """Prompt tokens `[B, L]` (right-padded) of one or more instructions, checked against the context."""
        texts = [instructions] if isinstance(instructions, str) else list(instructions)
        prompts = [self.build_prompt(instruction) for instruction in texts]
        limit = self.tokenizer.model_max_length
        limit = limit if limit and limit < 10**9 else None
        # Truncating one token past the limit tells "too long" without tokenizing a huge text to the end.
        encoding = self.tokenizer(
            prompts, padding=True, add_special_tokens=False, return_tensors="pt",
            truncation=limit is not None, max_length=limit + 1 if limit else None,
        )  # fmt: skip
        if limit and encoding["attention_mask"].sum(-1).max() > limit:
            raise InstructionError(f"the instruction is longer than the model's context ({limit} tokens)")
        return dict(encoding)

    def __call__(
        self,
        videos=None,
        text=None,
        frame_labels=None,
        timestamps=None,
        video_index=None,
        return_target_ids: bool = False,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """
        videos: see [`VideoITGVideoProcessor.preprocess`]. text: one instruction per video, or with
            `video_index` any number of instructions, instruction b about video `video_index[b]` (the model then
            runs each video through the vision tower once).
        frame_labels: per instruction, 0/1 (or soft) labels on the `sample_fps` grid of the whole video; they
            are gathered at the sampled frames into `labels` `[B, T]` (-100 on padding).
        return_target_ids: also return `target_ids` (the relevant frame positions as text + eos, -100 padded)
            to train the generation variant.
        """
        if videos is None or text is None:
            raise ValueError("VideoITGProcessor needs both videos and text (the instruction)")
        encoding = self.encode_instructions(text)
        video_inputs = self.video_processor(videos, timestamps=timestamps, return_tensors="pt")
        num_videos = video_inputs["pixel_values_videos"].shape[0]
        data = {**encoding, **video_inputs}
        grid_indices = video_inputs["grid_indices"]
        if video_index is not None:
            data["video_index"] = torch.as_tensor(video_index, dtype=torch.long)
            if len(data["video_index"]) != len(encoding["input_ids"]) or int(data["video_index"].max()) >= num_videos:
                raise ValueError("video_index needs one entry per instruction, each a video of the batch")
            grid_indices = grid_indices[data["video_index"]]
        elif len(encoding["input_ids"]) != num_videos:
            raise ValueError(f"{len(encoding['input_ids'])} instructions for {num_videos} videos (pass video_index)")
        if frame_labels is not None:
            data["labels"] = self.gather_labels(frame_labels, grid_indices)
            if return_target_ids:
                data["target_ids"] = self.target_ids(data["labels"])
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def gather_labels(frame_labels, grid_indices: torch.Tensor) -> torch.Tensor:
        """Labels on the full grid -> labels of the sampled frames `[B, T]` (-100 on padding)."""
        if len(frame_labels) and not hasattr(frame_labels[0], "__len__"):
            frame_labels = [frame_labels]  # one video's labels
        if len(frame_labels) != grid_indices.shape[0]:
            raise ValueError(f"{len(frame_labels)} label lists for {grid_indices.shape[0]} videos")
        labels = torch.full(grid_indices.shape, -100.0)
        for index, video_labels in enumerate(frame_labels):
            video_labels = torch.as_tensor(video_labels, dtype=torch.float)
            valid = grid_indices[index] >= 0
            positions = grid_indices[index][valid].clamp(max=len(video_labels) - 1)
            labels[index, : int(valid.sum())] = video_labels[positions]
        return labels

    def target_ids(self, labels: torch.Tensor) -> torch.Tensor:
        """Generation variant target: positions of frames with label >= 0.5 as text, then eos."""
        rows = []
        for video_labels in labels:
            positions = torch.nonzero(video_labels >= 0.5).flatten().tolist()
            ids = self.tokenizer(format_frame_indices(positions), add_special_tokens=False)["input_ids"]
            rows.append([*ids, self.tokenizer.eos_token_id])
        longest = max(len(row) for row in rows)
        return torch.tensor([row + [-100] * (longest - len(row)) for row in rows], dtype=torch.long)

    def parse_frame_indices(self, generated_ids, num_frames: int) -> list[int]:
        return parse_frame_indices(self.tokenizer.decode(generated_ids, skip_special_tokens=True), num_frames)

    @property
    def model_input_names(self):
        return ["input_ids", "attention_mask", *self.video_processor.model_input_names, "video_index"]


AutoVideoProcessor.register(VideoITGConfig, VideoITGVideoProcessor, exist_ok=True)
AutoProcessor.register(VideoITGConfig, VideoITGProcessor, exist_ok=True)

__all__ = ["VideoITGVideoProcessor", "VideoITGProcessor", "InstructionError"]
