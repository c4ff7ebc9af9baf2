"""videoitg: instruction-guided frame selection (VideoITG) for video language models.

The public names load lazily so that `videoitg --help` does not import torch and transformers.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "VideoITGConfig": "configuration_videoitg",
    "VideoITGForFrameSelection": "modeling_videoitg",
    "VideoITGOutput": "modeling_videoitg",
    "FrameSelection": "modeling_videoitg",
    "VideoITGProcessor": "processing_videoitg",
    "VideoITGVideoProcessor": "processing_videoitg",
    "VideoFrameSelectionPipeline": "pipeline_videoitg",
    "register_pipeline": "pipeline_videoitg",
    "FrameScorer": "inference",
    "load_video": "video",
    "build_model": "hub",
    "export_model": "hub",
    "load_model": "hub",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'videoitg' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
