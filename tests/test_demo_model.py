"""The embedded demo model: shipped in the package, loads through the Hub path, says it is trained on synthetic
videos, and reads the instruction."""

from __future__ import annotations

import json

import torch

from videoitg.inference import DEFAULT_MODEL, FrameScorer, make_sample_video

MAX_BYTES = 25 * 1024 * 1024


def test_the_demo_model_is_shipped_small_and_in_safetensors():
    weights = list(DEFAULT_MODEL.glob("*.safetensors"))
    assert weights and sum(path.stat().st_size for path in weights) <= MAX_BYTES
    assert not list(DEFAULT_MODEL.glob("*.bin")) and not list(DEFAULT_MODEL.glob("*.pt"))
    card = (DEFAULT_MODEL / "README.md").read_text(encoding="utf-8")
    assert "synthetic videos" in card


def test_the_demo_model_loads_with_auto_classes_and_remote_code():
    from transformers import AutoModel, AutoProcessor

    model = AutoModel.from_pretrained(DEFAULT_MODEL, trust_remote_code=True)
    processor = AutoProcessor.from_pretrained(DEFAULT_MODEL, trust_remote_code=True)
    assert model.config.model_type == "videoitg" and 1e6 < model.num_parameters() < 10e6
    assert processor.tokenizer("When is the red star on screen?")["input_ids"]


def test_outputs_say_the_default_model_is_trained_on_synthetic_videos(tmp_path, capsys):
    from videoitg.cli import main

    video = make_sample_video(tmp_path / "sample.mp4")
    assert main(["select", str(video), "When is the red circle on screen?", "--top-k", "4", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0  # fmt: skip
    assert "trained on synthetic videos" in capsys.readouterr().out
    selection = json.loads((tmp_path / "out" / "selection.json").read_text())
    assert "synthetic" in selection["model_note"] and selection["model"] == str(DEFAULT_MODEL)


def test_the_demo_model_reads_the_instruction(tmp_path):
    # The sample video: a red circle at 10-14 s, a blue square moving right at 24-30 s, over a drifting pattern.
    scorer = FrameScorer.from_pretrained()
    sampled = scorer.load(make_sample_video(tmp_path / "sample.mp4"))
    red_circle = scorer.score(sampled, "When is the red circle on screen?")
    blue_square = scorer.score(sampled, "When does the blue square move right?")
    red_frames, square_frames = set(range(10, 14)), set(range(24, 30))
    assert set(torch.topk(red_circle, 3).indices.tolist()) <= red_frames
    assert set(torch.topk(blue_square, 3).indices.tolist()) <= square_frames


def test_the_demo_model_carries_the_current_remote_code():
    # The folder must load where videoitg is not installed, so it holds copies of the remote-code files; after a
    # change to them, refresh it with `videoitg export src/videoitg/assets/demo-model --out ...`.
    from videoitg.hub import PACKAGE_DIR, REMOTE_CODE_FILES

    for name in REMOTE_CODE_FILES:
        assert (DEFAULT_MODEL / name).read_bytes() == (PACKAGE_DIR / name).read_bytes(), name
