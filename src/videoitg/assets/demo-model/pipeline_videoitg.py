"""The `video-frame-selection` pipeline: video + instruction -> the top-k frames (temporal order).

    from transformers import pipeline
    selector = pipeline("video-frame-selection", model="org/videoitg", trust_remote_code=True)
    selector("video.mp4", "What colour is the star?", top_k=32)
    # {"indices": [...], "timestamps": [...], "selected_scores": [...], "scores": [...], "sampled_timestamps": [...],
    #  "video": {...}}
"""

from __future__ import annotations

from dataclasses import asdict

from transformers import Pipeline

from .modeling_videoitg import select_top_k


class VideoFrameSelectionPipeline(Pipeline):
    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _non_generation_params = ("top_k",)

    def __call__(self, video, instruction: str | None = None, **kwargs):
        """video: a path, `SampledFrames` or a list of `{"video": ..., "instruction": ...}` dicts."""
        if isinstance(video, list):
            return super().__call__(video, **kwargs)
        return super().__call__({"video": video, "instruction": instruction}, **kwargs)

    def _sanitize_parameters(self, top_k: int | None = None, progress: bool | None = None, **kwargs):
        preprocess_params = {"progress": progress} if progress is not None else {}
        postprocess_params = {"top_k": top_k} if top_k is not None else {}
        return preprocess_params, {}, postprocess_params

    def preprocess(self, inputs, progress: bool = False):
        sampled = self.processor.video_processor.load(inputs["video"], progress=progress)
        model_inputs = self.processor(videos=sampled, text=inputs["instruction"], return_tensors="pt")
        model_inputs["video_metadata"] = asdict(sampled.metadata) if sampled.metadata is not None else {}
        return model_inputs

    def _forward(self, model_inputs):
        metadata = model_inputs.pop("video_metadata")
        timestamps = model_inputs.pop("frame_timestamps")
        model_inputs.pop("grid_indices", None)
        dtype = next(self.model.parameters()).dtype
        model_inputs["pixel_values_videos"] = model_inputs["pixel_values_videos"].to(dtype)
        outputs = self.model.score_frames(tokenizer=self.processor.tokenizer, **model_inputs)
        count = int(outputs.frame_mask[0].sum())
        return {
            "scores": outputs.scores[0, :count].float().cpu(),
            "timestamps": timestamps[0, :count].tolist(),
            "video_metadata": metadata,
        }

    def postprocess(self, model_outputs, top_k: int | None = None):
        top_k = top_k or self.model.config.num_selected_frames
        selection = select_top_k(model_outputs["scores"], model_outputs["timestamps"], top_k)
        return {
            "indices": selection.indices,
            "timestamps": selection.timestamps,
            "selected_scores": selection.scores,
            "scores": selection.frame_scores,
            "sampled_timestamps": [float(t) for t in model_outputs["timestamps"]],
            "video": model_outputs["video_metadata"],
        }


def register_pipeline() -> None:
    """Register the task in this process (the exported config's `custom_pipelines` does it for the Hub)."""
    from transformers import AutoModel
    from transformers.pipelines import PIPELINE_REGISTRY

    if "video-frame-selection" not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(
            "video-frame-selection", pipeline_class=VideoFrameSelectionPipeline, pt_model=AutoModel, type="multimodal"
        )


__all__ = ["VideoFrameSelectionPipeline", "register_pipeline"]
