"""Processor: prompt, padding of videos of different lengths, labels on the 1-fps grid, save/load."""

from __future__ import annotations

import pytest
import torch

from videoitg.hub import build_model
from videoitg.processing_videoitg import InstructionError, VideoITGProcessor


@pytest.fixture(scope="module")
def processor():
    return build_model("tiny", "pooling")[1]


def test_batch_of_two_videos_is_padded_with_a_mask(processor):
    videos = [torch.randint(0, 256, (5, 3, 20, 30), dtype=torch.uint8), torch.randint(0, 256, (3, 24, 24, 3), dtype=torch.uint8)]
    inputs = processor(videos=videos, text=["What colour is the star?", "Describe the video."])
    assert inputs["pixel_values_videos"].shape == (2, 5, 3, 32, 32)
    assert inputs["video_frame_mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert inputs["frame_timestamps"][1].tolist() == [0.0, 1.0, 2.0, -1.0, -1.0]
    assert inputs["pixel_values_videos"][1, 3:].abs().sum() == 0
    # normalised to [-1, 1] with SigLIP's mean/std 0.5
    assert inputs["pixel_values_videos"].min() >= -1.0001 and inputs["pixel_values_videos"].max() <= 1.0001
    prompts = processor.tokenizer.batch_decode(inputs["input_ids"], skip_special_tokens=True)
    assert prompts[0] == "What colour is the star?\n"


def test_labels_follow_the_sampled_grid(processor):
    from videoitg.video import SampledFrames, VideoMetadata

    frames = torch.zeros(3, 3, 8, 8, dtype=torch.uint8)
    metadata = VideoMetadata(path="x.mp4", duration_s=10.0, fps=1.0, num_frames=10, width=8, height=8, backend="test")
    sampled = SampledFrames(frames=frames, timestamps=[0.0, 4.0, 9.0], grid_indices=[0, 4, 9], metadata=metadata)
    grid_labels = [0, 0, 0, 0, 1, 1, 0, 0, 0, 1]
    inputs = processor(videos=[sampled], text=["q"], frame_labels=[grid_labels], return_target_ids=True)
    assert inputs["labels"].tolist() == [[0.0, 1.0, 1.0]]
    assert inputs["grid_indices"].tolist() == [[0, 4, 9]]
    target = inputs["target_ids"][0]
    text = processor.tokenizer.decode(target[target != -100], skip_special_tokens=True)
    assert text == "1, 2" and processor.parse_frame_indices(target[target != -100], num_frames=3) == [1, 2]


def test_empty_instruction_is_a_typed_error(processor):
    with pytest.raises(InstructionError, match="empty"):
        processor(videos=torch.zeros(2, 3, 8, 8, dtype=torch.uint8), text="   ")


def test_instruction_longer_than_the_context_is_a_typed_error(processor):
    with pytest.raises(InstructionError, match="longer than the model.s context"):
        processor(videos=torch.zeros(2, 3, 8, 8, dtype=torch.uint8), text="star " * 5000)


def test_save_and_load_round_trip(processor, tmp_path):
    processor.save_pretrained(tmp_path)
    reloaded = VideoITGProcessor.from_pretrained(tmp_path)
    assert reloaded.video_processor.size == processor.video_processor.size
    assert reloaded.video_processor.max_frames == 512 and reloaded.video_processor.sample_fps == 1.0
    assert reloaded.prompt_suffix == "\n"
    frames = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    first, second = processor(videos=frames, text="q?"), reloaded(videos=frames, text="q?")
    for key in ("input_ids", "pixel_values_videos", "video_frame_mask"):
        torch.testing.assert_close(first[key], second[key])


def test_video_file_is_sampled_at_1_fps(processor, video_factory):
    video = video_factory(duration_s=9, fps=3)
    inputs = processor(videos=str(video), text="What happens?")
    assert inputs["pixel_values_videos"].shape[:2] == (1, 9)
    assert inputs["frame_timestamps"][0].tolist() == [float(i) for i in range(9)]
