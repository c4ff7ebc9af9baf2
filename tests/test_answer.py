"""Answering from selected frames (`videoitg.answer`) with tiny random answering models built here.

LLaVA-OneVision, Qwen2-VL and Qwen2.5-VL take the frames as one video, LLaVA as a list of images. A forward pre-hook
on each model's vision encoder reads what the model really receives; frames of distinct solid colours show their
order in it, real decoded frames are compared with the model's own preprocessing of the expected frames.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from videoitg.answer import (
    Answerer,
    EmptySelectionError,
    SelectionError,
    UnsupportedAnswererError,
    answer_selection,
    build_tiny_answerer,
    load_answerer,
    shares_vision_tower,
)
from videoitg.video import InvalidInputError, SampledFrames, VideoMetadata

MODEL_TYPES = ("llava_onevision", "qwen2_vl", "qwen2_5_vl", "llava")
COLOURS = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230)]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """model type -> folder of a tiny random answering model (built on first use)."""
    folders = {}

    def folder(model_type: str):
        if model_type not in folders:
            folders[model_type] = build_tiny_answerer(model_type, tmp_path_factory.mktemp(model_type) / "model")
        return folders[model_type]

    return folder


@pytest.fixture(scope="module")
def answerer_for(model_dirs):
    """model type -> an `Answerer` loaded through `load_answerer` from its folder (loaded once)."""
    loaded = {}

    def answerer(model_type: str) -> Answerer:
        if model_type not in loaded:
            loaded[model_type] = load_answerer(model_dirs(model_type), device="cpu")
        return loaded[model_type]

    return answerer


def vision_encoder(answerer: Answerer) -> torch.nn.Module:
    inner = answerer.model.model
    return inner.visual if answerer.model_type.startswith("qwen") else inner.vision_tower


class VisionInputs:
    """Every input the answerer's vision encoder (or another `module`) gets, recorded by a forward pre-hook."""

    def __init__(self, answerer: Answerer | None, module: torch.nn.Module | None = None):
        self.answerer = answerer
        self.module = module if module is not None else vision_encoder(answerer)
        self.calls: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    def __enter__(self):
        def record(module, args, kwargs):
            pixels = args[0] if args else kwargs.get("pixel_values", kwargs.get("hidden_states"))
            self.calls.append((pixels.detach().clone(), kwargs.get("grid_thw")))

        self.handle = self.module.register_forward_pre_hook(record, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self.handle.remove()

    def frame_colours(self) -> torch.Tensor:
        """`[frames, 3]` mean RGB (0-255) of each frame the encoder saw, in the order it saw them."""
        [(pixels, grid_thw)] = self.calls
        processor = self.answerer.processor
        images = self.answerer.frames_as == "images"
        pixel_processor = processor.image_processor if images else processor.video_processor
        mean, std = torch.tensor(pixel_processor.image_mean), torch.tensor(pixel_processor.image_std)
        if grid_thw is not None:  # Qwen: [t * h * w patches, 3 * temporal_patch * patch * patch]
            (grid_t, grid_h, grid_w), temporal = grid_thw[0].tolist(), self.answerer.temporal_patch_size
            patches = pixels.view(grid_t, grid_h * grid_w, 3, temporal, -1)
            per_frame = patches.mean(dim=(1, 4)).permute(0, 2, 1).reshape(grid_t * temporal, 3)
        else:  # [frames, 3, H, W]
            per_frame = pixels.mean(dim=(2, 3))
        return (per_frame * std + mean) * 255


def solid_frames(colours, height: int = 48, width: int = 64) -> torch.Tensor:
    return torch.tensor(colours, dtype=torch.uint8)[:, :, None, None].expand(-1, -1, height, width).contiguous()


def reference_pixels(answerer: Answerer, frames: torch.Tensor) -> torch.Tensor:
    """The answering model's own processor on `frames` (the last repeated up to Qwen's frame pairs)."""
    processor = answerer.processor
    if answerer.frames_as == "images":
        return processor.image_processor(list(frames), return_tensors="pt")["pixel_values"]
    options = {"do_sample_frames": False, "input_data_format": "channels_first", "return_tensors": "pt"}
    if answerer.model_type.startswith("qwen"):
        frames = torch.cat([frames, frames[-1:]]) if len(frames) % 2 else frames
        options["cap_pixels_per_frame"] = True
    return processor.video_processor(videos=[frames], **options)["pixel_values_videos"]


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_model_receives_the_frames_in_the_order_given(answerer_for, model_type):
    answerer = answerer_for(model_type)
    assert answerer.model_type == model_type
    assert answerer.frames_as == ("images" if model_type == "llava" else "video")
    order = [3, 0, 4, 1, 2]  # a caller's order: the answerer must neither sort nor re-sample it
    colours = [COLOURS[i] for i in order]
    with VisionInputs(answerer) as seen:
        answer = answerer.answer(solid_frames(colours), [1.0, 4.0, 6.0, 9.0, 15.0], "Which colour?", max_new_tokens=3)
    assert isinstance(answer, str)
    shown = [tuple(colour) for colour in seen.frame_colours().round().int().tolist()]
    # Qwen merges frames in pairs: the fifth frame is shown twice, no other frame is added.
    expected = colours + colours[-1:] if model_type.startswith("qwen") else colours
    assert shown == [tuple(colour) for colour in expected]


def test_prompt_tells_the_times_and_places_one_video(answerer_for):
    answerer = answerer_for("llava_onevision")
    prompt = answerer.prompt([2.0, 7.5, 31.0], "What happens?")
    assert prompt.count("<video>") == 1
    assert "taken at 2.0s, 7.5s, 31.0s" in prompt and prompt.rstrip().endswith("assistant")
    images_prompt = answerer_for("llava").prompt([2.0, 7.5], "What happens?")
    assert images_prompt.count("<image>") == 2 and images_prompt.index("2.0s") < images_prompt.index("7.5s")
    without_times = dataclasses.replace(answerer, time_prompt=False).prompt([2.0, 7.5, 31.0], "What happens?")
    assert "2.0s" not in without_times and without_times.count("<video>") == 1


def test_qwen2_5_vl_spaces_frames_by_the_selected_times(answerer_for):
    answerer = answerer_for("qwen2_5_vl")
    inputs = answerer.build_inputs(solid_frames(COLOURS[:4]), [2.0, 5.0, 8.0, 11.0], "When?")
    # 4 frames over 9 s: one frame per 3 s, two frames per temporal patch -> 6 s per patch.
    assert inputs["second_per_grid_ts"].tolist() == pytest.approx([6.0])
    assert inputs["video_grid_thw"][0, 0].item() == 2


@pytest.fixture(scope="module")
def sample_video_frames(tmp_path_factory):
    """A generated video decoded and scored by a real `FrameScorer`, its file deleted afterwards."""
    from videoitg.inference import FrameScorer, make_sample_video
    from videoitg.modeling_videoitg import select_top_k

    video = make_sample_video(tmp_path_factory.mktemp("video") / "sample.mp4", seconds=12, fps=2)
    scorer = FrameScorer.from_pretrained(None)
    sampled = scorer.load(video)
    video.unlink()  # any second decode would now fail
    selection = select_top_k(scorer.score(sampled, "When does the red circle appear?"), sampled.timestamps, 5)
    return sampled, selection.indices


@pytest.mark.parametrize("model_type", ["llava_onevision", "qwen2_vl", "llava"])
def test_answer_selection_shows_the_selected_frames_in_temporal_order(answerer_for, sample_video_frames, model_type):
    sampled, indices = sample_video_frames
    answerer = answerer_for(model_type)
    given = list(reversed(indices))  # any order in, temporal order out
    with VisionInputs(answerer) as seen:
        answer = answer_selection(answerer, sampled, given, "When does the red circle appear?", max_new_tokens=3)
    assert isinstance(answer, str)
    [(pixels, _)] = seen.calls
    expected = reference_pixels(answerer, sampled.frames[sorted(indices)])
    torch.testing.assert_close(pixels.reshape(expected.shape), expected)
    # Not the same frames in another order: the selected frames differ from each other.
    assert not torch.equal(pixels.reshape(expected.shape), reference_pixels(answerer, sampled.frames[given]))


# ------------------------------------------------------------------------------------- shared vision features
@pytest.fixture(scope="module")
def converted_selector(model_dirs, tmp_path_factory):
    """A VideoITG selector converted from the tiny LLaVA-OneVision: the same SigLIP tower and feature layer."""
    from videoitg.convert import convert_checkpoint
    from videoitg.inference import FrameScorer

    out = tmp_path_factory.mktemp("converted") / "videoitg"
    convert_checkpoint("llava-onevision", model_dirs("llava_onevision"), out, license="apache-2.0", progress=False)
    return FrameScorer.from_pretrained(out)


def frames_at_tower_size(count: int) -> SampledFrames:
    # At the tower's input size neither processor resizes, so both preprocess the pixels identically.
    frames = torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    metadata = VideoMetadata(path="frames", duration_s=float(count), fps=1.0, num_frames=count, width=32, height=32,
                             backend="pyav")  # fmt: skip
    return SampledFrames(frames, [float(i) for i in range(count)], list(range(count)), metadata)


def test_vision_features_are_shared_with_a_selector_of_the_same_tower(answerer_for, converted_selector):
    answerer, selector = answerer_for("llava_onevision"), converted_selector
    assert shares_vision_tower(selector, answerer)
    sampled = frames_at_tower_size(9)
    selector.score(sampled, "What colour is the square?")  # the selector's vision pass over all frames

    language_inputs = []
    hook = answerer.model.model.language_model.register_forward_pre_hook(
        lambda module, args, kwargs: language_inputs.append(kwargs["inputs_embeds"]), with_kwargs=True
    )
    try:
        selector_tower = VisionInputs(None, selector.model.vision_tower)
        with VisionInputs(answerer) as answerer_tower, selector_tower:
            shared = answer_selection(answerer, sampled, [7, 2, 4], "What colour?", selector=selector, max_new_tokens=4)
        assert answerer_tower.calls == [] and selector_tower.calls == []  # no vision pass at all
        shared_embeddings = language_inputs[0]
        language_inputs.clear()
        with VisionInputs(answerer) as answerer_tower:
            own = answer_selection(answerer, sampled, [7, 2, 4], "What colour?", max_new_tokens=4)
        assert len(answerer_tower.calls) == 1
    finally:
        hook.remove()
    torch.testing.assert_close(shared_embeddings, language_inputs[0])
    assert shared == own


def test_vision_features_are_not_shared_when_towers_differ(model_dirs, answerer_for, converted_selector):
    other_weights = load_answerer(model_dirs("llava_onevision"), device="cpu")
    with torch.no_grad():
        next(other_weights.model.model.vision_tower.parameters()).add_(0.01)
    assert not shares_vision_tower(converted_selector, other_weights)
    other_normalisation = load_answerer(model_dirs("llava_onevision"), device="cpu")
    other_normalisation.processor.video_processor.image_mean = [0.48, 0.46, 0.41]
    assert not shares_vision_tower(converted_selector, other_normalisation)
    other_strategy = load_answerer(model_dirs("llava_onevision"), device="cpu")
    other_strategy.model.config.vision_feature_select_strategy = "default"  # drops the first patch
    assert not shares_vision_tower(converted_selector, other_strategy)
    assert not shares_vision_tower(converted_selector, answerer_for("qwen2_vl"))

    sampled = frames_at_tower_size(4)
    with VisionInputs(other_weights) as tower:
        answer_selection(other_weights, sampled, [1, 3], "What?", selector=converted_selector, max_new_tokens=1)
    assert len(tower.calls) == 1  # its own tower runs


# --------------------------------------------------------------------------------------------------- errors
def test_bad_selections_and_questions_get_typed_errors(answerer_for, sample_video_frames):
    from videoitg.processing_videoitg import InstructionError

    answerer = answerer_for("llava_onevision")
    sampled, indices = sample_video_frames
    question = "What happens?"
    with pytest.raises(EmptySelectionError, match="selection is empty"):
        answer_selection(answerer, sampled, [], question)
    with pytest.raises(SelectionError, match="not a position in the 12 sampled frames"):
        answer_selection(answerer, sampled, [0, 12], question)
    with pytest.raises(SelectionError, match="repeat"):
        answer_selection(answerer, sampled, [3, 3], question)
    with pytest.raises(SelectionError, match="SampledFrames"):
        answer_selection(answerer, sampled.frames, indices, question)
    with pytest.raises(InstructionError, match="empty"):
        answer_selection(answerer, sampled, indices, "  ")
    with pytest.raises(InstructionError, match="placeholder"):
        answer_selection(answerer, sampled, indices, "What is <video>?")
    frames = sampled.frames[:3]
    with pytest.raises(EmptySelectionError):
        answerer.answer(frames[:0], [], question)
    with pytest.raises(SelectionError, match="3 frames but 2 timestamps"):
        answerer.answer(frames, [0.0, 1.0], question)
    with pytest.raises(SelectionError, match="uint8"):
        answerer.answer(frames.float(), [0.0, 1.0, 2.0], question)
    qwen = answerer_for("qwen2_vl")
    with pytest.raises(UnsupportedAnswererError, match="llava_onevision answerers only"):
        qwen.answer(frames, [0.0, 1.0, 2.0], question, vision_features=torch.zeros(3, 16, 32))


def test_models_that_cannot_answer_are_refused(model_dirs, tmp_path):
    import shutil

    from transformers import BertConfig

    from videoitg.hub import build_model, export_model

    with pytest.raises(UnsupportedAnswererError, match="no such model folder"):
        load_answerer(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedAnswererError, match="no config.json"):
        load_answerer(tmp_path / "empty")
    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "bert")
    with pytest.raises(UnsupportedAnswererError, match="'bert' is not an image-text-to-text model"):
        load_answerer(tmp_path / "bert")
    export_model(*build_model("tiny"), tmp_path / "selector")
    with pytest.raises(UnsupportedAnswererError, match="frame selector, not an answering model"):
        load_answerer(tmp_path / "selector")
    no_template = shutil.copytree(model_dirs("qwen2_vl"), tmp_path / "no-template")
    (no_template / "chat_template.jinja").unlink()
    with pytest.raises(UnsupportedAnswererError, match="no chat template"):
        load_answerer(no_template)
    with pytest.raises(UnsupportedAnswererError, match="no tiny 'gpt2' model"):
        build_tiny_answerer("gpt2", tmp_path / "gpt2")
    assert issubclass(UnsupportedAnswererError, InvalidInputError)


def test_select_command_answers_from_the_selected_frames(model_dirs, tmp_path, capsys):
    import json

    from videoitg.cli import main
    from videoitg.inference import make_sample_video

    video = make_sample_video(tmp_path / "sample.mp4", seconds=12)
    answer_model = str(model_dirs("qwen2_vl"))
    out = tmp_path / "selection"
    code = main(["select", str(video), "What colour is the circle?", "--answer-model", answer_model,
                 "--top-k", "4", "--max-new-tokens", "3", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    selection = json.loads((out / "selection.json").read_text())
    assert isinstance(selection["answer"], str) and selection["answer_model"] == answer_model
    assert f"answer ({answer_model}): " in capsys.readouterr().out
