"""lmms-eval plugin: the `videoitg` model, VideoITG frame selection in front of any lmms-eval video model.

Registered through the `lmms_eval.models` entry point (pyproject.toml), so once `videoitg[lmms]` is installed:

    python -m lmms_eval --model videoitg \
        --model_args wrapped=llava_hf,wrapped.pretrained=llava-hf/llava-onevision-qwen2-7b-ov-hf,top_k=8 \
        --tasks videomme

Two-stage flow: `mode=write,frame_indices=frame_indices.jsonl` (no answering model needed), then
`mode=read,frame_indices=frame_indices.jsonl,wrapped=...`. See `model.VideoITGWrapper` for every argument.

Importing this package is cheap: lmms-eval loads the model classes only when the model is asked for.
"""

from __future__ import annotations

MODEL_NAME = "videoitg"


def model_manifest():
    """The `lmms_eval.models` entry point: both classes, so `--force_simple` picks the simple one."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(
        model_id=MODEL_NAME,
        simple_class_path="videoitg.lmms_eval_plugin.model.VideoITGSimple",
        chat_class_path="videoitg.lmms_eval_plugin.model.VideoITGChat",
    )
