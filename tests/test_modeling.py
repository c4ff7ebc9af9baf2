"""The model: variants, padding, loss, vision chunking and cached features."""

from __future__ import annotations

import pytest
import torch

from videoitg.configuration_videoitg import VideoITGConfig
from videoitg.modeling_videoitg import (
    SequenceTooLongError,
    VideoITGForFrameSelection,
    format_frame_indices,
    frame_selection_loss,
    parse_frame_indices,
    select_top_k,
)

VISION = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
TEXT = {"model_type": "qwen2", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048,
        "eos_token_id": 1, "pad_token_id": 0}  # fmt: skip


def tiny_model(variant="pooling", seed=0, **overrides) -> VideoITGForFrameSelection:
    torch.manual_seed(seed)
    settings = {"vision_token_budget": 64, "vision_chunk_size": 4, **overrides}
    config = VideoITGConfig(vision_config=VISION, text_config=TEXT, variant=variant, **settings)
    return VideoITGForFrameSelection(config).eval()


def batch(num_frames=(7, 5), text_length=6, seed=1):
    generator = torch.Generator().manual_seed(seed)
    longest = max(num_frames)
    pixels = torch.randn(len(num_frames), longest, 3, 32, 32, generator=generator)
    frame_mask = torch.zeros(len(num_frames), longest, dtype=torch.bool)
    for index, count in enumerate(num_frames):
        frame_mask[index, :count] = True
        pixels[index, count:] = 0
    input_ids = torch.randint(2, 64, (len(num_frames), text_length), generator=generator)
    return {"pixel_values_videos": pixels, "video_frame_mask": frame_mask, "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids)}  # fmt: skip


def test_tokens_per_frame_rule():
    config = VideoITGConfig(vision_token_budget=16384)  # SigLIP so400m: a 27 x 27 grid
    assert config.patch_grid_size == 27
    assert config.tokens_per_frame_side(1024) == 4  # 16 tokens per frame, as the official release
    assert config.tokens_per_frame_side(512) == 5
    assert config.tokens_per_frame_side(8) == 27  # capped by the grid
    assert config.max_video_tokens(1024) == 1024 * 16


def test_pooling_is_bidirectional():
    model = tiny_model("pooling")
    inputs = batch((6,))
    changed = {**inputs, "input_ids": inputs["input_ids"].clone()}
    changed["input_ids"][0, -1] = (changed["input_ids"][0, -1] + 7) % 64
    with torch.no_grad():
        before, after = model(**inputs).logits, model(**changed).logits
    assert not torch.allclose(before[0, 0], after[0, 0]), "the first frame must see the last instruction token"


def test_anchor_is_causal_and_anchors_see_the_instruction():
    model = tiny_model("anchor")
    inputs = batch((6,))
    captured = {}
    hook = model.language_model.register_forward_hook(lambda m, a, kw, out: captured.setdefault("h", []).append(out.last_hidden_state), with_kwargs=True)
    changed = {**inputs, "input_ids": inputs["input_ids"].clone()}
    changed["input_ids"][0, -1] = (changed["input_ids"][0, -1] + 7) % 64
    with torch.no_grad():
        before, after = model(**inputs).logits, model(**changed).logits
    hook.remove()
    video_tokens = 6 * model.config.tokens_per_frame_side(6) ** 2
    first, second = captured["h"]
    # Causal: video tokens come first and cannot see the (changed) instruction ...
    torch.testing.assert_close(first[0, :video_tokens], second[0, :video_tokens])
    # ... but the anchors, placed after the instruction, do.
    assert not torch.allclose(before[0], after[0])


def test_generation_trains_with_lm_loss_and_parses_back():
    model = tiny_model("generation")
    inputs = batch((6, 4))
    target_ids = torch.tensor([[5, 6, 1, -100], [7, 1, -100, -100]])
    outputs = model(**inputs, target_ids=target_ids)
    assert outputs.loss is not None and outputs.loss.requires_grad
    assert outputs.lm_logits.shape[-1] == TEXT["vocab_size"]
    outputs.loss.backward()
    assert model.language_model.lm_head.weight.grad is not None
    generated = model.generate_frame_indices(**inputs, max_new_tokens=4, pad_token_id=0)
    assert generated.shape[0] == 2 and generated.shape[1] <= 4
    assert format_frame_indices([3, 17, 42]) == "3, 17, 42"
    assert parse_frame_indices("3, 17, 42, 17, 99", num_frames=50) == [3, 17, 42]
    assert parse_frame_indices("frames 2 and 5.", num_frames=4) == [2]


@pytest.mark.parametrize("variant", ["pooling", "anchor"])
def test_padded_batch_equals_single_videos(variant):
    model = tiny_model(variant)
    inputs = batch((7, 4))
    with torch.no_grad():
        batched = model(**inputs)
        for index, count in enumerate((7, 4)):
            alone = model(
                pixel_values_videos=inputs["pixel_values_videos"][index : index + 1, :count],
                input_ids=inputs["input_ids"][index : index + 1],
                attention_mask=inputs["attention_mask"][index : index + 1],
            )
            torch.testing.assert_close(batched.logits[index, :count], alone.logits[0], atol=1e-5, rtol=1e-4)
    assert batched.scores[1, 4:].eq(0).all() and not batched.frame_mask[1, 4:].any()


def test_padded_instruction_tokens_are_ignored():
    model = tiny_model("pooling")
    inputs = batch((5,), text_length=4)
    padded = {**inputs, "input_ids": torch.cat([torch.zeros(1, 3, dtype=torch.long), inputs["input_ids"]], 1),
              "attention_mask": torch.cat([torch.zeros(1, 3, dtype=torch.long), inputs["attention_mask"]], 1)}  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(**padded).logits)


def test_loss_ignores_padding_and_minus_100():
    model = tiny_model("pooling")
    inputs = batch((7, 4))
    labels = torch.zeros(2, 7)
    labels[0, 2] = labels[1, 1] = 1
    labels[1, 4:] = 1  # padded frames: labels there must not matter
    with torch.no_grad():
        outputs = model(**inputs, labels=labels)
        other = labels.clone()
        other[1, 4:] = 0
        assert torch.allclose(outputs.loss, model(**inputs, labels=other).loss)
        ignored = labels.clone()
        ignored[0, 5] = -100
        assert not torch.allclose(outputs.loss, model(**inputs, labels=ignored).loss)


def test_loss_pos_weight_rule():
    logits = torch.zeros(1, 10)
    labels = torch.zeros(1, 10)
    labels[0, 0] = 1  # 1 positive, 9 negatives: pos_weight = min(5, sqrt(9)) = 3
    expected = (3 * torch.log(torch.tensor(2.0)) + 9 * torch.log(torch.tensor(2.0))) / 10
    torch.testing.assert_close(frame_selection_loss(logits, labels), expected)
    labels[0, 1:] = 0
    many_negatives = torch.zeros(1, 101)
    many_negatives_labels = torch.zeros(1, 101)
    many_negatives_labels[0, 0] = 1  # sqrt(100) = 10 -> capped at 5
    expected = (5 + 100) * torch.log(torch.tensor(2.0)) / 101
    torch.testing.assert_close(frame_selection_loss(many_negatives, many_negatives_labels), expected)
    # num_items_in_batch replaces the per-call count (gradient accumulation)
    torch.testing.assert_close(
        frame_selection_loss(many_negatives, many_negatives_labels, num_items_in_batch=202), expected / 2
    )
    # soft labels are allowed
    assert frame_selection_loss(torch.zeros(1, 4), torch.tensor([[0.3, 0.0, 1.0, 0.0]])) > 0


def test_vision_chunking_and_cached_features_give_the_same_scores():
    model = tiny_model("pooling", vision_chunk_size=2)
    inputs = batch((7,))
    with torch.no_grad():
        chunked = model(**inputs).logits
        model.config.vision_chunk_size = 64
        whole = model(**inputs).logits
        features = model.encode_frames(inputs["pixel_values_videos"][0])[None]
        cached = model(vision_features=features, input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(chunked, whole)
    torch.testing.assert_close(cached, whole)
    assert features.shape == (1, 7, 16, VISION["hidden_size"])  # 4 x 4 patch grid, penultimate layer


def test_grid_is_resized_for_long_videos():
    model = tiny_model("pooling", vision_token_budget=32)  # T = 8 -> floor(sqrt(4)) = 2 -> 4 tokens per frame
    tokens = model.frame_tokens(pixel_values=torch.randn(8, 3, 32, 32))
    assert tokens.shape == (8, 4, TEXT["hidden_size"])


def test_grid_resize_modes():
    """Bilinear (official) reads a 4 x 4 grid's centre when it shrinks it to one token; area averages every patch."""
    bilinear, area = tiny_model("pooling"), tiny_model("pooling", grid_resize_mode="area")
    grid = torch.zeros(1, 16, VISION["hidden_size"])  # [N, g*g, D], g = 4
    grid[0, 0] = 16.0  # a corner patch only
    assert bilinear._resize_grid(grid, 1).abs().max() == 0  # the corner is not seen
    assert torch.allclose(area._resize_grid(grid, 1), grid.mean(dim=1, keepdim=True))
    patches = torch.randn(3, 16, VISION["hidden_size"])
    halves = patches.view(3, 2, 2, 2, 2, -1).mean(dim=(2, 4)).flatten(1, 2)  # the mean of each 2 x 2 block
    assert torch.allclose(area._resize_grid(patches, 2), halves, atol=1e-6)
    with pytest.raises(ValueError, match="grid_resize_mode"):
        VideoITGConfig(grid_resize_mode="nearest")


def test_too_long_sequence_is_a_clear_error():
    model = tiny_model("pooling")
    inputs = batch((4,), text_length=2100)
    with pytest.raises(SequenceTooLongError, match="context of 2048"):
        model(**inputs)


def test_gradient_checkpointing_trains():
    model = tiny_model("pooling").train()
    model.activation_checkpointing_enable()
    inputs = batch((5, 3))
    labels = torch.zeros(2, 5)
    labels[:, 1] = 1
    model(**inputs, labels=labels).loss.backward()
    assert model.frame_head.weight.grad is not None
    assert model.multi_modal_projector.linear_1.weight.grad is not None


def test_select_top_k_is_temporal_and_exact():
    scores = torch.tensor([0.1, 0.9, 0.3, 0.8, 0.8, 0.0])
    selection = select_top_k(scores, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], top_k=3)
    assert selection.indices == [1, 3, 4]
    assert selection.timestamps == [1.0, 3.0, 4.0]
    assert selection.scores == pytest.approx([0.9, 0.8, 0.8])
    assert len(select_top_k(scores, list(range(6)), top_k=10).indices) == 6


def test_several_instructions_share_one_vision_pass():
    model = tiny_model("pooling")
    inputs = batch((7, 4))
    questions = torch.randint(2, 64, (3, 6), generator=torch.Generator().manual_seed(5))
    calls = []
    hook = model.vision_tower.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        shared = model(pixel_values_videos=inputs["pixel_values_videos"], video_frame_mask=inputs["video_frame_mask"],
                       input_ids=questions, video_index=torch.tensor([0, 1, 0]))  # fmt: skip
        vision_calls = len(calls)
        for row, video in enumerate([0, 1, 0]):
            count = int(inputs["video_frame_mask"][video].sum())
            alone = model(pixel_values_videos=inputs["pixel_values_videos"][video : video + 1, :count],
                          input_ids=questions[row : row + 1])  # fmt: skip
            torch.testing.assert_close(shared.logits[row, :count], alone.logits[0], atol=1e-5, rtol=1e-4)
    hook.remove()
    assert vision_calls == 2 + 1  # 7 frames = 2 chunks of 4, 4 frames = 1 chunk: once per video, not per instruction
    assert shared.frame_mask[1, 4:].eq(False).all()
