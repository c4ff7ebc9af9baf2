"""VideoITG configuration: a vision tower, a decoder LLM and how frames become tokens."""

from __future__ import annotations

import math

from transformers import AutoConfig, PreTrainedConfig
from transformers.models.auto import CONFIG_MAPPING

VARIANTS = ("pooling", "anchor", "generation")
GRID_RESIZE_MODES = ("bilinear", "area")

# The paper's model (VideoITG-8B): SigLIP so400m-patch14-384 + Qwen2-7B.
DEFAULT_VISION_CONFIG = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
}
DEFAULT_TEXT_CONFIG = {
    "model_type": "qwen2",
    "vocab_size": 152064,
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32768,
    "rope_theta": 1000000.0,
}


def _build_sub_config(value, default: dict) -> PreTrainedConfig:
    if isinstance(value, PreTrainedConfig):
        return value
    values = dict(default if value is None else value)
    return CONFIG_MAPPING[values.pop("model_type")](**values)


class VideoITGConfig(PreTrainedConfig):
    r"""
    Configuration of a VideoITG frame selector.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Any vision encoder config loadable by `AutoModel` that returns patch hidden states (default: SigLIP
            so400m-patch14-384 shapes).
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Any decoder-only LLM config (default: Qwen2-7B shapes).
        variant (`str`, *optional*, defaults to `"pooling"`):
            `"pooling"` (paper variant C: bidirectional attention, mean of each frame's hidden states -> linear head),
            `"anchor"` (variant B: causal attention, one anchor token per frame after the instruction) or
            `"generation"` (variant A: the LLM writes the relevant frame indices as text).
        vision_feature_layer (`int`, *optional*, defaults to -2):
            Hidden-state layer of the vision tower used as frame features (penultimate, as LLaVA-Video).
        vision_token_budget (`int`, *optional*, defaults to 8192):
            Visual tokens for the whole video: each frame's patch grid is resized to `HW x HW` with
            `HW = min(grid, floor(sqrt(vision_token_budget / T)))`. The official default 8192 gives 16 tokens per
            frame at 512 frames, as the paper states.
        max_frames (`int`, *optional*, defaults to 512): frames scored at most (longer videos are subsampled).
        sample_fps (`float`, *optional*, defaults to 1.0): frame sampling rate of the video processor.
        num_selected_frames (`int`, *optional*, defaults to 32): default top-k.
        vision_chunk_size (`int`, *optional*, defaults to 32):
            Frames encoded per vision-tower call, so 512 frames never hold all vision activations at once.
        projector_hidden_act (`str`, *optional*, defaults to `"gelu"`): activation of the 2-layer projector.
        resize_before_projector (`bool`, *optional*, defaults to `True`):
            Resize each frame's patch grid to HW x HW before the projector, as the official VideoITG release does
            (and 45x less projector work at 512 frames); `False` projects every patch first, as LLaVA-Video /
            LLaVA-OneVision pool (models converted from LLaVA-OneVision keep that order).
        grid_resize_mode (`str`, *optional*, defaults to `"bilinear"`):
            How a patch grid is resized to `HW x HW`: `"bilinear"` (interpolation without antialiasing, as the
            official release) or `"area"` (each token the average of the patches it covers). Bilinear resizing
            samples rather than averages when it shrinks a grid several times: resized to one token, a frame is
            its centre patch (odd grids) or four centre patches (even grids). A model with one or a few tokens per
            frame wants `"area"`.
        prompt_suffix (`str`, *optional*, defaults to `"\n"`): appended to the instruction (official prompt).
    """

    model_type = "videoitg"
    sub_configs = {"vision_config": AutoConfig, "text_config": AutoConfig}

    def __init__(
        self,
        vision_config=None,
        text_config=None,
        variant: str = "pooling",
        vision_feature_layer: int = -2,
        vision_token_budget: int = 8192,
        max_frames: int = 512,
        sample_fps: float = 1.0,
        num_selected_frames: int = 32,
        vision_chunk_size: int = 32,
        projector_hidden_act: str = "gelu",
        resize_before_projector: bool = True,
        grid_resize_mode: str = "bilinear",
        prompt_suffix: str = "\n",
        initializer_range: float = 0.02,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if vision_token_budget < 1 or max_frames < 1 or vision_chunk_size < 1:
            raise ValueError("vision_token_budget, max_frames and vision_chunk_size must be positive")
        if grid_resize_mode not in GRID_RESIZE_MODES:
            raise ValueError(f"grid_resize_mode must be one of {GRID_RESIZE_MODES}, got {grid_resize_mode!r}")
        self.vision_config = _build_sub_config(vision_config, DEFAULT_VISION_CONFIG)
        self.text_config = _build_sub_config(text_config, DEFAULT_TEXT_CONFIG)
        # Variant C reads the whole sequence in both directions; transformers 5 builds a bidirectional mask for
        # decoder-only models whose config says `is_causal = False`.
        self.text_config.is_causal = variant != "pooling"
        self.variant = variant
        self.vision_feature_layer = vision_feature_layer
        self.vision_token_budget = vision_token_budget
        self.max_frames = max_frames
        self.sample_fps = sample_fps
        self.num_selected_frames = num_selected_frames
        self.vision_chunk_size = vision_chunk_size
        self.projector_hidden_act = projector_hidden_act
        self.resize_before_projector = resize_before_projector
        self.grid_resize_mode = grid_resize_mode
        self.prompt_suffix = prompt_suffix
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @property
    def patch_grid_size(self) -> int:
        """Side of the vision tower's square patch grid (27 for SigLIP so400m-patch14-384)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    def tokens_per_frame_side(self, num_frames: int) -> int:
        """HW for a video of `num_frames` frames: the patch grid is resized to HW x HW tokens per frame."""
        side = math.isqrt(max(1, self.vision_token_budget // max(1, num_frames)))
        return max(1, min(self.patch_grid_size, side))

    def max_video_tokens(self, num_frames: int | None = None) -> int:
        """Number of visual tokens in the LLM sequence for `num_frames` frames (default `max_frames`)."""
        num_frames = num_frames or self.max_frames
        tokens = num_frames * self.tokens_per_frame_side(num_frames) ** 2
        return tokens + (num_frames if self.variant == "anchor" else 0)


__all__ = ["VideoITGConfig", "VARIANTS"]

# In-process registration, so `AutoConfig` knows "videoitg" once this module is imported (the Hub path
# uses `auto_map` instead). exist_ok: the package and a model folder's copy may both be imported.
AutoConfig.register("videoitg", VideoITGConfig, exist_ok=True)
