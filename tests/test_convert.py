"""`videoitg convert`: from a LLaVA-OneVision checkpoint and from the official release layout, on tiny random models.

The official-layout check runs a plain-torch re-implementation of the official forward (SigLIP, the official
projector, a bidirectional Qwen2 and the mean-pool head) on the raw official tensors, independent of transformers'
modules and of the converter's key mapping.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from videoitg.convert import (
    REPORT_NAME,
    ConversionError,
    add_cli,
    convert_checkpoint,
    llava_onevision_rules,
    map_key,
    official_rules,
)
from videoitg.hub import build_tokenizer, load_model

QUESTION = "Where is the red ball?"
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
          "image_size": 56, "patch_size": 8}  # fmt: skip
SIZE, GRID = VISION["image_size"], VISION["image_size"] // VISION["patch_size"]  # a 7 x 7 patch grid
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 4096, "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6}  # fmt: skip
# HW = min(7, floor(sqrt(256 / T))): 5 at T = 8, 2 at T = 64. Both resize the 7 x 7 grid with real interpolation
# (a 6 x 6 grid resized to 2 x 2 would only pick samples, and then the order of resize and projector would not show).
VISION_TOKEN_NUM = 256


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Weights large enough that frames get clearly different scores (default inits are nearly flat)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm = "norm" in name and name.endswith("weight")
            parameter.copy_(1 + 0.1 * noise if is_norm else 0.2 * noise)


def run_cli(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="videoitg")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", *argv])
    assert args.func(args) == 0


# ---------------------------------------------------------------------------------------------- LLaVA-OneVision
@pytest.fixture(scope="module")
def llava_source(tmp_path_factory):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration

    folder = tmp_path_factory.mktemp("llava-ov") / "source"
    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    config = LlavaOnevisionConfig(
        vision_config={"model_type": "siglip_vision_model", **VISION},
        text_config={"model_type": "qwen2", **TEXT, "vocab_size": len(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_layer=-2,
    )
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_settings = {"image_mean": [0.48, 0.46, 0.41], "image_std": [0.27, 0.26, 0.28], "rescale_factor": 1 / 255}
    (folder / "preprocessor_config.json").write_text(json.dumps(image_settings))
    return folder, model, image_settings


@pytest.fixture(scope="module")
def llava_converted(llava_source, tmp_path_factory):
    source, _, _ = llava_source
    out = tmp_path_factory.mktemp("llava-ov-converted") / "videoitg"
    report = convert_checkpoint("llava-onevision", source, out, license="apache-2.0", progress=False)
    model, processor = load_model(out)
    return out, report, model, processor


def test_llava_onevision_keeps_vision_features_projector_and_llm(llava_source, llava_converted):
    _, source_model, image_settings = llava_source
    _, report, model, processor = llava_converted
    pixels = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = source_model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-2]
        features = model.encode_frames(pixels)
        torch.testing.assert_close(features, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(
            model.multi_modal_projector(features), source_model.model.multi_modal_projector(expected), rtol=0, atol=1e-6
        )
        # LLaVA-OneVision's video path: project every patch, then resize the grid.
        side = model.config.tokens_per_frame_side(len(pixels))
        projected = source_model.model.multi_modal_projector(expected)
        grid = projected.view(4, GRID, GRID, -1).permute(0, 3, 1, 2)
        resized = F.interpolate(grid, size=(side, side), mode="bilinear", align_corners=False)
        torch.testing.assert_close(model.frame_tokens(pixel_values=pixels), resized.flatten(2).transpose(1, 2))
        embeds = torch.randn(1, 7, TEXT["hidden_size"], generator=torch.Generator().manual_seed(2))
        torch.testing.assert_close(
            model.language_model(inputs_embeds=embeds, is_causal=True).last_hidden_state,
            source_model.model.language_model(inputs_embeds=embeds).last_hidden_state,
        )  # fmt: skip
    # The frame head is new: xavier weights, zero bias (as the official code).
    head = model.frame_head
    assert torch.count_nonzero(head.bias) == 0
    xavier_std = math.sqrt(2 / (head.in_features + head.out_features))
    assert 0.7 * xavier_std < head.weight.std().item() < 1.3 * xavier_std
    assert report.initialised == ["frame_head.weight", "frame_head.bias"]
    assert report.dropped["image_newline"].startswith("LLaVA-OneVision's row separator")
    assert "language_model.lm_head.weight" in report.dropped  # the pooling variant has no LM head
    source_keys = load_file(str(llava_source[0] / "model.safetensors")).keys()
    assert set(report.mapped) | set(report.dropped) == set(source_keys)  # every source key is accounted for
    # Tokenizer and image settings come from the source.
    assert processor.tokenizer("<video> red")["input_ids"][0] == source_model.config.video_token_id
    assert processor.video_processor.image_mean == image_settings["image_mean"]
    assert processor.video_processor.size == {"height": SIZE, "width": SIZE}
    assert not model.config.resize_before_projector and model.config.vision_feature_layer == -2


def test_llava_onevision_converted_model_trains(llava_converted):
    model, processor = load_model(llava_converted[0])  # a copy of its own: training changes it
    model.train()
    inputs = processor.encode_instructions(QUESTION)
    pixels = torch.randn(1, 4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    losses = []
    for step in range(4):
        loss = model(**inputs, pixel_values_videos=pixels, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            for name in ("frame_head.weight", "language_model.layers.0.self_attn.q_proj.weight",
                         "language_model.layers.1.mlp.down_proj.weight",
                         "multi_modal_projector.linear_1.weight"):  # fmt: skip
                grad = model.get_parameter(name).grad
                assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < losses[0], losses


def test_llava_onevision_generation_variant_keeps_the_lm_head(llava_source, tmp_path):
    source, source_model, _ = llava_source
    report = convert_checkpoint(
        "llava-onevision", source, tmp_path / "generation", license="apache-2.0", variant="generation", progress=False
    )
    model, _ = load_model(tmp_path / "generation")
    assert model.config.variant == "generation" and report.initialised == []
    torch.testing.assert_close(model.language_model.lm_head.weight, source_model.lm_head.weight, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- official layout
@pytest.fixture(scope="module")
def official_source(tmp_path_factory):
    """An official-layout checkpoint (2 LLM shards + index, official config.json) and a separate SigLIP folder."""
    from transformers import Qwen2Config, Qwen2Model, SiglipConfig, SiglipModel

    root = tmp_path_factory.mktemp("official")
    source, tower = root / "VideoITG-tiny", root / "siglip-tiny"
    tokenizer = build_tokenizer()
    # The vision tower as on the Hub: a full SigLIP model (vision + text towers), `vision_model.*` keys.
    siglip = SiglipModel(SiglipConfig(
        vision_config=VISION,
        text_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
                     "vocab_size": 100, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 1},
    ))  # fmt: skip
    randomise(siglip, seed=10)
    siglip.save_pretrained(tower)
    (tower / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    # LLM + projector + head under the official names.
    qwen = Qwen2Model(Qwen2Config(**TEXT, vocab_size=len(tokenizer)))
    randomise(qwen, seed=11)
    generator = torch.Generator().manual_seed(12)
    state = {f"model.{key}": value for key, value in qwen.state_dict().items() if "rotary_emb" not in key}
    for index, (rows, columns) in {0: (TEXT["hidden_size"], VISION["hidden_size"]),
                                   2: (TEXT["hidden_size"], TEXT["hidden_size"])}.items():  # fmt: skip
        weight = 0.2 * torch.randn(rows, columns, generator=generator)
        state[f"model.mm_projector.out_projection.{index}.weight"] = weight
        state[f"model.mm_projector.out_projection.{index}.bias"] = 0.1 * torch.randn(rows, generator=generator)
    state["out_proj.weight"] = 0.5 * torch.randn(1, TEXT["hidden_size"], generator=generator)
    state["out_proj.bias"] = torch.tensor([0.1])
    source.mkdir()
    keys = sorted(state)
    shards = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2 :]}  # fmt: skip
    for name, shard_keys in shards.items():
        save_file({key: state[key].contiguous() for key in shard_keys}, str(source / name), metadata={"format": "pt"})
    weight_map = {key: name for name, shard_keys in shards.items() for key in shard_keys}
    (source / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {
        "architectures": ["EagleQwenG"], "model_type": "eagle_QwenG", **TEXT, "vocab_size": len(tokenizer),
        "hidden_act": "silu", "bos_token_id": None, "eos_token_id": tokenizer.eos_token_id, "rope_scaling": None,
        "tie_word_embeddings": False, "use_sliding_window": False, "torch_dtype": "float32",
        "mm_vision_tower": "google/siglip-so400m-patch14-384", "mm_hidden_size": VISION["hidden_size"],
        "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "mm_projector_type": "mlp",
        "mm_patch_merge_type": "flat", "image_aspect_ratio": "pad", "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False, "tokenizer_model_max_length": 4096, "vision_token_num": VISION_TOKEN_NUM,
    }  # fmt: skip
    (source / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer.save_pretrained(source)
    return source, tower, state, load_file(str(tower / "model.safetensors")), config


@pytest.fixture(scope="module")
def official_converted(official_source, tmp_path_factory):
    source, tower, *_ = official_source
    out = tmp_path_factory.mktemp("official-converted") / "videoitg"
    run_cli("--from", "official", str(source), "--out", str(out), "--vision-tower", str(tower),
            "--license", "CC BY-NC 4.0 (NVIDIA model licence)", "--base-model", "nvidia/VideoITG-8B")  # fmt: skip
    model, processor = load_model(out)
    return out, model, processor


# Plain-torch re-implementation of the official forward, from the facts of the official release.
def siglip_hidden_states(tower: dict, pixels: torch.Tensor) -> list[torch.Tensor]:
    prefix, heads, eps = "vision_model.", VISION["num_attention_heads"], 1e-6
    x = F.conv2d(pixels, tower[f"{prefix}embeddings.patch_embedding.weight"],
                 tower[f"{prefix}embeddings.patch_embedding.bias"], stride=VISION["patch_size"])  # fmt: skip
    x = x.flatten(2).transpose(1, 2) + tower[f"{prefix}embeddings.position_embedding.weight"]
    states = [x]
    for layer in range(VISION["num_hidden_layers"]):
        p = f"{prefix}encoder.layers.{layer}."
        h = F.layer_norm(x, (x.shape[-1],), tower[p + "layer_norm1.weight"], tower[p + "layer_norm1.bias"], eps)
        q, k, v = (F.linear(h, tower[p + f"self_attn.{n}_proj.weight"], tower[p + f"self_attn.{n}_proj.bias"])
                   .unflatten(-1, (heads, -1)).transpose(1, 2) for n in "qkv")  # fmt: skip
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1) @ v
        x = x + F.linear(attention.transpose(1, 2).flatten(2), tower[p + "self_attn.out_proj.weight"],
                         tower[p + "self_attn.out_proj.bias"])  # fmt: skip
        h = F.layer_norm(x, (x.shape[-1],), tower[p + "layer_norm2.weight"], tower[p + "layer_norm2.bias"], eps)
        h = F.gelu(F.linear(h, tower[p + "mlp.fc1.weight"], tower[p + "mlp.fc1.bias"]), approximate="tanh")
        x = x + F.linear(h, tower[p + "mlp.fc2.weight"], tower[p + "mlp.fc2.bias"])
        states.append(x)
    return states


def rms_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + TEXT["rms_norm_eps"]) * weight


def qwen2_bidirectional(state: dict, embeds: torch.Tensor) -> torch.Tensor:
    """Final hidden states [S, D] of the official Qwen2 decoder: every attention layer non-causal."""
    heads, kv_heads = TEXT["num_attention_heads"], TEXT["num_key_value_heads"]
    head_dim = TEXT["hidden_size"] // heads
    inv_freq = 1.0 / TEXT["rope_theta"] ** (torch.arange(0, head_dim, 2).float() / head_dim)
    angles = torch.outer(torch.arange(len(embeds)).float(), inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rotate(x):  # [heads, S, head_dim]
        half = x.shape[-1] // 2
        return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin

    x = embeds
    for layer in range(TEXT["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, state[p + "input_layernorm.weight"])
        q, k, v = (F.linear(h, state[p + f"self_attn.{n}_proj.weight"], state[p + f"self_attn.{n}_proj.bias"])
                   .unflatten(-1, (-1, head_dim)).transpose(0, 1) for n in "qkv")  # fmt: skip
        q, k = rotate(q), rotate(k)
        k, v = k.repeat_interleave(heads // kv_heads, 0), v.repeat_interleave(heads // kv_heads, 0)
        attention = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(head_dim), dim=-1) @ v  # no mask
        x = x + F.linear(attention.transpose(0, 1).flatten(1), state[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, state[p + "post_attention_layernorm.weight"])
        gate, up = F.linear(h, state[p + "mlp.gate_proj.weight"]), F.linear(h, state[p + "mlp.up_proj.weight"])
        x = x + F.linear(F.silu(gate) * up, state[p + "mlp.down_proj.weight"])
    return rms_norm(x, state["model.norm.weight"])


def official_projector(state: dict, features: torch.Tensor, resize_first: bool = True) -> torch.Tensor:
    """[T, P, C] vision features -> [T, HW*HW, D]: resize the grid (bilinear), then Linear-GELU-Linear."""
    frames, patches, _ = features.shape
    grid = int(patches**0.5)
    side = min(grid, math.floor(math.sqrt(VISION_TOKEN_NUM / frames)))

    def resize(tokens):
        spatial = tokens.view(frames, grid, grid, -1).permute(0, 3, 1, 2)
        resized = F.interpolate(spatial, size=(side, side), mode="bilinear", align_corners=False)
        return resized.flatten(2).transpose(1, 2)

    def project(tokens):
        p = "model.mm_projector.out_projection."
        return F.linear(F.gelu(F.linear(tokens, state[p + "0.weight"], state[p + "0.bias"])), state[p + "2.weight"],
                        state[p + "2.bias"])  # fmt: skip

    return project(resize(features)) if resize_first else resize(project(features))


def official_scores(state: dict, tower: dict, pixels: torch.Tensor, prompt_ids: torch.Tensor, resize_first=True):
    features = siglip_hidden_states(tower, pixels)[-2]  # penultimate layer (mm_vision_select_layer -2)
    video = official_projector(state, features, resize_first)  # [T, HW*HW, D]
    sequence = torch.cat([video.flatten(0, 1), state["model.embed_tokens.weight"][prompt_ids]])
    hidden = qwen2_bidirectional(state, sequence)
    per_frame = hidden[: video.shape[0] * video.shape[1]].view(video.shape[0], video.shape[1], -1).mean(1)
    return torch.sigmoid(F.linear(per_frame, state["out_proj.weight"], state["out_proj.bias"]).squeeze(-1))


@pytest.mark.parametrize("num_frames", [8, 64])
def test_official_scores_match_the_official_forward(official_source, official_converted, num_frames):
    _, _, state, tower, _ = official_source
    _, model, processor = official_converted
    tokens_side = model.config.tokens_per_frame_side(num_frames)
    assert tokens_side == {8: 5, 64: 2}[num_frames]  # the HW rule, below the 7 x 7 grid both times
    inputs = processor.encode_instructions(QUESTION)
    # Official prompt: video tokens, then the question and "\n", tokenized without special tokens.
    assert inputs["input_ids"][0].tolist() == processor.tokenizer(QUESTION + "\n", add_special_tokens=False).input_ids
    pixels = torch.randn(num_frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(num_frames))
    with torch.no_grad():
        scores = model(**inputs, pixel_values_videos=pixels[None]).scores[0]
        expected = official_scores(state, tower, pixels, inputs["input_ids"][0])
    torch.testing.assert_close(scores, expected, rtol=0, atol=2e-5)
    assert expected.max() - expected.min() > 0.05  # frames score differently: the comparison can tell them apart
    # The order of resize and projector matters: projecting first gives other scores.
    other_order = official_scores(state, tower, pixels, inputs["input_ids"][0], resize_first=False)
    assert (other_order - expected).abs().max() > 1e-3


def test_official_conversion_report_and_model_card(official_source, official_converted):
    source, tower, state, tower_state, _ = official_source
    out, model, processor = official_converted
    report = json.loads((out / REPORT_NAME).read_text())
    tower_labels = {f"{key} (vision tower)" for key in tower_state}
    assert set(report["mapped"]) | set(report["dropped"]) == set(state) | tower_labels
    assert report["initialised"] == []
    assert report["mapped"]["out_proj.weight"] == "frame_head.weight"
    assert report["mapped"]["model.mm_projector.out_projection.2.bias"] == "multi_modal_projector.linear_2.bias"
    assert report["dropped"]["logit_scale (vision tower)"].startswith("SigLIP text tower")
    assert model.config.resize_before_projector and model.config.vision_token_budget == VISION_TOKEN_NUM
    assert model.config.text_config.is_causal is False and model.config.vision_feature_layer == -2
    card = (out / "README.md").read_text()
    assert "license: other" in card and "base_model: nvidia/VideoITG-8B" in card
    assert "CC BY-NC 4.0 (NVIDIA model licence)" in card
    assert "the official VideoITG release" in card and str(source) in card
    assert f"videoitg convert --from official {source} --out {out} --vision-tower {tower}" in card
    assert not list(out.glob("*.bin"))


def test_key_spellings_map_to_the_same_weights():
    official = official_rules()["source"]
    tower_key = "model.vision_tower.vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight"  # tower inside
    assert map_key(tower_key, official) == ("vision_tower.encoder.layers.3.mlp.fc1.weight", None)
    rotary = "model.layers.0.self_attn.rotary_emb.inv_freq"
    assert map_key(rotary, official) == (None, "buffer recomputed from the config")
    assert map_key("model.image_newline", official) == (None, None)  # unknown: an error unless accepted
    # LLaVA-OneVision: the current and the older transformers spellings, with or without `vision_model.`.
    expected = {"pooling": ("language_model.", None),
                "generation": ("language_model.model.", "language_model.lm_head.weight")}  # fmt: skip
    for variant, (body, head) in expected.items():
        rules = llava_onevision_rules(variant)
        for prefix in ("model.language_model.", "language_model.model."):
            assert map_key(f"{prefix}layers.1.mlp.up_proj.weight", rules)[0] == f"{body}layers.1.mlp.up_proj.weight"
        for key in ("model.vision_tower.vision_model.post_layernorm.bias", "model.vision_tower.post_layernorm.bias",
                    "vision_tower.vision_model.post_layernorm.bias", "vision_tower.post_layernorm.bias"):  # fmt: skip
            assert map_key(key, rules) == ("vision_tower.post_layernorm.bias", None)
        for key in ("lm_head.weight", "language_model.lm_head.weight"):
            assert map_key(key, rules)[0] == head


# ---------------------------------------------------------------------------------------------- bad sources
def copy_official(official_source, folder: Path, edit) -> Path:
    source, _, state, _, config = official_source
    folder.mkdir()
    edited = dict(state)
    edit(edited)
    save_file({key: value.contiguous() for key, value in edited.items()}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    return folder


def test_missing_and_unexpected_keys_are_listed(official_source, tmp_path):
    tower = official_source[1]

    def edit(state):
        del state["model.norm.weight"], state["out_proj.bias"]
        state["model.extra_adapter.weight"] = torch.zeros(2, 2)

    source = copy_official(official_source, tmp_path / "edited", edit)
    with pytest.raises(ConversionError) as caught:
        convert_checkpoint("official", source, tmp_path / "out", license="cc-by-nc-4.0", vision_tower=tower,
                           progress=False)  # fmt: skip
    message = str(caught.value)
    assert "missing 2 keys" in message and "unexpected 1 key:" in message
    for key in ("model.norm.weight (-> language_model.norm.weight)", "out_proj.bias (-> frame_head.bias)",
                "model.extra_adapter.weight"):  # fmt: skip
        assert key in message, message
    assert not (tmp_path / "out").exists()
    # Accepted keys: the missing ones are initialised, the unexpected one is dropped; the report says so.
    report = convert_checkpoint(
        "official", source, tmp_path / "out", license="cc-by-nc-4.0", vision_tower=tower, progress=False,
        allow_missing=["model.norm.*", "out_proj.bias", "model.extra_adapter.weight"],
    )  # fmt: skip
    assert sorted(report.initialised) == ["frame_head.bias", "language_model.norm.weight"]
    assert report.dropped["model.extra_adapter.weight"] == "accepted with --allow-missing model.extra_adapter.weight"
    model, _ = load_model(tmp_path / "out")
    assert torch.count_nonzero(model.frame_head.bias) == 0


def test_missing_vision_tower_and_misshapen_keys_are_refused(official_source, tmp_path):
    source, tower = official_source[:2]
    with pytest.raises(ConversionError, match="carries no vision tower .* pass the SigLIP so400m-patch14-384 folder"):
        convert_checkpoint("official", source, tmp_path / "a", license="x", vision_tower=None, progress=False)
    # The tower's own keys are checked as well: a tower without its last layer leaves that layer missing.
    tower_copy = tmp_path / "tower"
    tower_copy.mkdir()
    (tower_copy / "config.json").write_bytes((tower / "config.json").read_bytes())
    last = f"vision_model.encoder.layers.{VISION['num_hidden_layers'] - 1}."
    tower_state = {key: value for key, value in official_source[3].items() if not key.startswith(last)}
    save_file(tower_state, str(tower_copy / "model.safetensors"))
    with pytest.raises(ConversionError, match=rf"missing 16 keys: {last}layer_norm1\.weight \(-> vision_tower\."):
        convert_checkpoint("official", source, tmp_path / "a", license="x", vision_tower=tower_copy, progress=False)

    def edit(state):
        state["out_proj.weight"] = torch.zeros(2, TEXT["hidden_size"])

    edited = copy_official(official_source, tmp_path / "edited", edit)
    misshapen = r"out_proj\.weight \[2, 64\] \(-> frame_head\.weight expects \[1, 64\]\)"
    with pytest.raises(ConversionError, match=misshapen):
        convert_checkpoint("official", edited, tmp_path / "b", license="x", vision_tower=tower, progress=False)


def test_pickles_wrong_formats_and_unstated_licence_are_refused(official_source, llava_source, tmp_path):
    source, tower = official_source[:2]
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps(official_source[4]))
    (pickled / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(ConversionError, match="only pickle weight files"):
        convert_checkpoint("official", pickled, tmp_path / "a", license="x", vision_tower=tower, progress=False)
    with pytest.raises(ConversionError, match="not 'llava_onevision'"):
        convert_checkpoint("llava-onevision", source, tmp_path / "b", license="x", progress=False)
    with pytest.raises(ConversionError, match="not 'eagle_QwenG'"):
        convert_checkpoint("official", llava_source[0], tmp_path / "c", license="x", progress=False)
    with pytest.raises(ConversionError, match="licence of the source weights"):
        convert_checkpoint("official", source, tmp_path / "d", license=" ", vision_tower=tower, progress=False)
    with pytest.raises(ConversionError, match="not found"):
        convert_checkpoint("official", tmp_path / "nowhere", tmp_path / "e", license="x", progress=False)


# ---------------------------------------------------------------------------------------------- loading elsewhere
LOADER = r"""
import json, sys
sys.modules["videoitg"] = None
try:
    import videoitg  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("videoitg must not be importable here")
import torch
from transformers import AutoModel, AutoProcessor

pixels, question, out_path = torch.load(sys.argv[1]), sys.argv[2], sys.argv[3]
results = {}
for folder in sys.argv[4:]:
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        scores = model(**processor.encode_instructions(question), pixel_values_videos=pixels).scores[0]
    results[folder] = {"class": type(model).__module__, "scores": scores.tolist()}
json.dump(results, open(out_path, "w"))
"""


def test_converted_folders_load_where_videoitg_is_not_installed(llava_converted, official_converted, tmp_path):
    pixels = torch.randn(1, 8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    torch.save(pixels, tmp_path / "pixels.pt")
    (tmp_path / "load.py").write_text(LOADER)
    folders = {str(llava_converted[0]): llava_converted[2:], str(official_converted[0]): official_converted[1:]}
    completed = subprocess.run(
        [sys.executable, str(tmp_path / "load.py"), str(tmp_path / "pixels.pt"), QUESTION, str(tmp_path / "out.json"),
         *folders],
        cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "out.json").read_text())
    for folder, (model, processor) in folders.items():
        assert not results[folder]["class"].startswith("videoitg"), results[folder]["class"]  # remote code
        with torch.no_grad():
            expected = model(**processor.encode_instructions(QUESTION), pixel_values_videos=pixels).scores[0]
        torch.testing.assert_close(torch.tensor(results[folder]["scores"]), expected, rtol=0, atol=1e-5)


def test_image_settings_read_from_transformers5_processor_config(tmp_path):
    # transformers 5 saves the image / video processor inside processor_config.json
    settings = {"image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6], "rescale_factor": 0.5}
    (tmp_path / "processor_config.json").write_text(json.dumps({"video_processor": settings, "chat_template": ""}))
    from videoitg.convert import _image_settings

    assert _image_settings(tmp_path) == settings
