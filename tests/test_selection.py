"""Frame-selection strategies: exact-k contracts, known selections, and the text-image code paths on a tiny CLIP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videoitg.selection import (
    SELECTORS,
    FrameSelector,
    ModelScoreSelector,
    adaptive_keyframe_sampling,
    build_selector,
    diverse_top_k_indices,
    inverse_transform_sampling,
    keyframe_indices,
    keyframes_to_k,
    oracle_indices,
    pixel_features,
    random_indices,
    top_k_indices,
    uniform_indices,
)
from videoitg.video import InvalidInputError, SampledFrames, VideoMetadata


def make_sampled(frames: torch.Tensor, grid_indices: list[int] | None = None) -> SampledFrames:
    count = len(frames)
    grid = list(range(count)) if grid_indices is None else grid_indices
    metadata = VideoMetadata(path="made-up.mp4", duration_s=float(grid[-1] + 1), fps=1.0, num_frames=count,
                             width=frames.shape[-1], height=frames.shape[-2], backend="none")  # fmt: skip
    return SampledFrames(frames=frames, timestamps=[float(g) for g in grid], grid_indices=grid, metadata=metadata)


def scene_video(cuts: list[int], num_frames: int, noise: float = 3.0, seed: int = 0) -> torch.Tensor:
    """[T, 3, 48, 64] frames: a different random picture after each cut, with a little noise on every frame."""
    generator = torch.Generator().manual_seed(seed)
    scenes = [torch.rand(3, 48, 64, generator=generator) * 255 for _ in cuts]
    frames = []
    for index in range(num_frames):
        scene = scenes[sum(1 for cut in cuts if cut <= index) - 1]
        frames.append((scene + noise * torch.randn(3, 48, 64, generator=generator)).clamp(0, 255))
    return torch.stack(frames).to(torch.uint8)


class FixedScorer:
    """A stand-in VideoITG scorer: scores are given, whatever the question."""

    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)

    def score(self, frames, question):
        return self.scores


@pytest.fixture(scope="module")
def tiny_clip_dir(tmp_path_factory):
    """A randomly initialised CLIP (32 px, width 32) with a locally trained tokenizer, saved as a model folder."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    from videoitg.hub import build_tokenizer

    tokenizer = build_tokenizer()
    config = CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2),
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip")
    CLIPModel(config).save_pretrained(folder)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def all_selectors(clip_dir) -> dict[str, FrameSelector]:
    scores = np.sin(np.arange(40) / 3.0)
    return {
        name: build_selector(name, clip_model=clip_dir, model=FixedScorer(scores), device="cpu") for name in SELECTORS
    }


# --------------------------------------------------------------------------------------------- the contract
@pytest.mark.parametrize("num_frames", [40, 5])
def test_every_registered_strategy_returns_exactly_k_sorted_unique_frames(tiny_clip_dir, num_frames):
    frames = scene_video([0, 12, 25], 40)[:num_frames]
    sampled = make_sampled(frames)
    row = {"event_frame_labels": [1 if 10 <= i < 20 else 0 for i in range(40)]}
    selectors = all_selectors(tiny_clip_dir)
    assert set(selectors) == {"uniform", "random", "keyframes", "clip-topk", "bolt", "aks", "topk", "diverse-topk",
                              "object-oracle"}  # fmt: skip
    for name, selector in selectors.items():
        if name in ("topk", "diverse-topk"):
            selector.scorer = FixedScorer(np.sin(np.arange(num_frames) / 3.0))
        video = selector.prepare(sampled)
        scores = selector.score(video, "What colour is the star?", row)
        for k in (1, 3, 8, 16):
            chosen = selector.choose(video, k, scores, row, seed=1)
            expected = min(k, num_frames)
            assert len(chosen.indices) == expected, (name, k)
            assert chosen.indices == sorted(set(chosen.indices)), (name, k)
            assert all(isinstance(i, int) and 0 <= i < num_frames for i in chosen.indices), (name, k)
            assert len(chosen.scores) == expected
            ranked = chosen.by_score()
            assert [s for _, s in ranked] == sorted(chosen.scores, reverse=True)


def test_bad_requests_are_typed_errors(tiny_clip_dir):
    with pytest.raises(InvalidInputError, match="unknown selector 'clip'"):
        build_selector("clip")
    with pytest.raises(InvalidInputError, match="--clip-model"):
        build_selector("bolt")
    with pytest.raises(InvalidInputError, match="k \\(frames to select\\)"):
        uniform_indices(10, 0)
    with pytest.raises(InvalidInputError, match="NaN"):
        top_k_indices([0.1, float("nan")], 1)
    with pytest.raises(InvalidInputError, match="event_frame_labels"):
        build_selector("object-oracle").select(make_sampled(scene_video([0], 6)), "q", 2, row={})
    with pytest.raises(InvalidInputError, match="3 values for 6 frames"):
        ModelScoreSelector(FixedScorer([0.1, 0.2, 0.3])).select(make_sampled(scene_video([0], 6)), "q", 2)
    with pytest.raises(InvalidInputError, match="cannot load"):
        build_selector("clip-topk", clip_model=tiny_clip_dir / "missing")


# --------------------------------------------------------------------------------------------- simple strategies
def test_uniform_is_the_centres_of_equal_bins():
    assert uniform_indices(100, 4) == [12, 37, 62, 87]
    assert uniform_indices(3, 8) == [0, 1, 2]
    for num_frames, k in ((512, 32), (97, 8), (9, 8)):
        gaps = np.diff(uniform_indices(num_frames, k))
        assert gaps.max() - gaps.min() <= 1


def test_random_is_seeded_and_uniform_on_average():
    assert random_indices(100, 8, seed=3) == random_indices(100, 8, seed=3)
    assert random_indices(100, 8, seed=3) != random_indices(100, 8, seed=4)
    positions = np.concatenate([random_indices(100, 8, seed=s) for s in range(500)])
    assert positions.mean() == pytest.approx(49.5, abs=1.5)
    assert np.bincount(positions // 25).min() > 0.2 * len(positions)


def test_top_k_and_diverse_top_k():
    scores = np.zeros(100)
    scores[40:46] = [0.9, 1.0, 0.95, 0.9, 0.8, 0.7]
    scores[80:83] = 0.6
    assert top_k_indices(scores, 3) == [40, 41, 42]
    assert top_k_indices([0.5, 0.5, 0.5], 2) == [0, 1]  # ties: earlier first
    # Gap 100 // (2 * 3) = 16: one frame per peak, then the best frame elsewhere.
    assert diverse_top_k_indices(scores, 2) == [41, 80]
    assert diverse_top_k_indices(scores, 3, min_gap=2) == [41, 43, 45]
    assert diverse_top_k_indices(scores, 3, min_gap=200) == [40, 41, 42]  # gap too wide: relaxed to plain top-k


def test_object_oracle_spreads_over_event_frames_and_ignores_the_question():
    events = list(range(10, 20)) + list(range(50, 54))
    assert oracle_indices(events, 100, 7) == [11, 13, 15, 17, 19, 51, 53]  # centres of 7 bins of 2 event frames
    assert oracle_indices([3, 4], 100, 4)[:2] == [3, 4] and len(oracle_indices([3, 4], 100, 4)) == 4
    sampled = make_sampled(scene_video([0], 30, noise=0), grid_indices=list(range(0, 60, 2)))  # a subsampled grid
    row = {"event_frame_labels": [1 if 20 <= second < 30 else 0 for second in range(60)]}
    selector = build_selector("object-oracle")
    chosen = selector.select(sampled, "What colour is the star?", 3, row=row)
    assert [sampled.grid_indices[p] for p in chosen.indices] == [20, 24, 28]  # positions 10..14 = seconds 20..28
    assert selector.select(sampled, "Describe the video.", 3, row=row).indices == chosen.indices


# --------------------------------------------------------------------------------------------- keyframes
def test_algorithm_1_on_hand_made_features():
    a, b, c = np.eye(3)
    nearly_a = 0.96 * a + 0.28 * b  # cosine 0.96 with a: not a scene change (threshold 0.90)
    features = np.stack([a, a, nearly_a, a, b, b, b, c, c, c, a])
    assert keyframe_indices(features) == [0, 4, 7, 10]
    # A middle frame becomes a keyframe only if some LATER frame differs from it; the last frame has none, so it
    # joins when it differs from the last keyframe (lines 17-19 of the published algorithm).
    assert keyframe_indices(np.stack([a, a, b, b])) == [0, 3]
    assert keyframe_indices(np.stack([a, a, b, a])) == [0, 2, 3]
    assert keyframe_indices(np.stack([a, a, a, a])) == [0]  # the last frame looks like the last keyframe
    # Stricter thresholds than the official ones change the outcome (they are really used).
    assert keyframe_indices(features, scene_threshold=0.97) == [0, 2, 3, 4, 7, 10]


def test_keyframes_are_brought_to_exactly_k():
    a, b, c, d = np.eye(4)
    features = np.stack([a] * 5 + [b] * 5 + [c] * 5 + [d] * 5)
    assert keyframe_indices(features) == [0, 5, 10, 19]
    keyframes = [0, 5, 10]
    # Fewer than k: keep them, then add the frame least like everything chosen (the unseen last scene first):
    # among equally new frames the one farthest in time from the chosen ones.
    assert keyframes_to_k(features, keyframes, 4) == [0, 5, 10, 19]
    six = keyframes_to_k(features, keyframes, 6)
    assert set(six) >= {0, 5, 10, 19} and len(six) == 6
    # More than k: farthest-point selection over the keyframes keeps distinct content.
    many = np.stack([a, b, a, c, a, b, d])
    assert keyframes_to_k(many, [0, 1, 2, 3, 4, 5, 6], 4) == [0, 1, 3, 6]


def test_keyframes_selector_finds_the_scene_cuts_on_pixels():
    frames = scene_video([0, 7, 15], 24)
    features = pixel_features(frames)
    assert features.shape == (24, 3 * 16 * 16)
    assert np.allclose(np.linalg.norm(features, axis=1), 1.0)
    chosen = build_selector("keyframes").select(make_sampled(frames), "", 3)
    scenes = [sum(1 for cut in (0, 7, 15) if cut <= i) for i in chosen.indices]
    assert chosen.indices == [0, 7, 23] and scenes == [1, 2, 3]
    # All three are Algorithm 1 keyframes (score 1): the last scene enters through its last frame (lines 17-19).
    assert chosen.scores == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------------------------- BOLT and AKS
def test_bolt_inverse_transform_sampling():
    peaked = np.full(200, 0.1)
    peaked[60:70] = 1.0
    chosen = inverse_transform_sampling(peaked, 8)
    assert len(chosen) == 8 and sum(60 <= i < 70 for i in chosen) >= 6
    flat = inverse_transform_sampling(np.full(200, 0.3), 8)
    assert flat == uniform_indices(200, 8)  # no preference: the quantiles of a flat density are uniform
    # A larger alpha concentrates more frames on the peak of a gentle curve.
    gentle = 1.0 + 0.3 * np.exp(-((np.arange(200) - 100) / 20.0) ** 2)
    spread = lambda alpha: np.std(inverse_transform_sampling(gentle, 16, alpha))  # noqa: E731
    assert spread(6.0) < spread(3.0) < spread(1.0)
    # One frame far above the rest: quantiles collide there, the extra ones go to the nearest free frames.
    spike = np.zeros(50)
    spike[20] = 1.0
    assert inverse_transform_sampling(spike, 5) == [18, 19, 20, 21, 22]


def test_aks_keeps_the_top_when_relevant_and_bins_when_not():
    relevant = np.zeros(128)
    relevant[30:38] = 1.0  # top-8 mean 1.0, overall mean ~0.06: gap > 0.8 -> TOP
    assert adaptive_keyframe_sampling(relevant, 8) == list(range(30, 38))
    noise = np.random.default_rng(0).random(128)  # no dominant peak: split down to one frame per bin
    chosen = adaptive_keyframe_sampling(noise, 8)
    assert [i // 16 for i in chosen] == list(range(8))
    assert all(noise[i] == noise[b * 16 : (b + 1) * 16].max() for b, i in enumerate(chosen))  # best of each bin
    for k in (1, 3, 5, 13):
        result = adaptive_keyframe_sampling(noise, k)
        assert len(result) == k and result == sorted(set(result))


# --------------------------------------------------------------------------------------------- text-image paths
def test_clip_baselines_use_the_models_cosine_similarity(tiny_clip_dir):
    from transformers import AutoModel, AutoProcessor

    frames = scene_video([0, 5, 11, 17], 24)
    sampled = make_sampled(frames)
    question = "Which way does the blue square move?"
    model = AutoModel.from_pretrained(tiny_clip_dir).eval()
    processor = AutoProcessor.from_pretrained(tiny_clip_dir)
    with torch.no_grad():
        images = model.get_image_features(**processor(images=list(frames), return_tensors="pt")).pooler_output
        text = model.get_text_features(**processor.tokenizer([question], return_tensors="pt")).pooler_output
    expected = torch.nn.functional.cosine_similarity(images, text).numpy()

    selector = build_selector("clip-topk", clip_model=tiny_clip_dir, device="cpu")
    assert selector.reads_question
    video = selector.prepare(sampled)
    similarity = selector.score(video, question)
    np.testing.assert_allclose(similarity, expected, atol=1e-5)
    assert selector.choose(video, 4, similarity).indices == top_k_indices(expected, 4)
    assert not np.allclose(similarity, selector.score(video, "Describe the video."))
    bolt = build_selector("bolt", clip_model=tiny_clip_dir, device="cpu")
    assert bolt.choose(bolt.prepare(sampled), 6, similarity).indices == inverse_transform_sampling(expected, 6, 3.0)
    aks = build_selector("aks", clip_model=tiny_clip_dir, device="cpu")
    assert aks.choose(aks.prepare(sampled), 6, similarity).indices == adaptive_keyframe_sampling(expected, 6)


def test_keyframes_on_an_image_encoder(tiny_clip_dir):
    selector = build_selector("keyframes", keyframe_encoder=tiny_clip_dir, device="cpu")
    video = selector.prepare(make_sampled(scene_video([0, 9], 18)))
    assert video.features.shape == (18, 16)
    assert np.allclose(np.linalg.norm(video.features, axis=1), 1.0)
    assert len(selector.choose(video, 5, None).indices) == 5


def test_model_scores_topk_and_diverse_topk():
    scores = np.zeros(60)
    scores[10:14] = [0.7, 0.9, 0.8, 0.6]
    scores[40] = 0.5
    sampled = make_sampled(scene_video([0], 60, noise=0))
    topk = build_selector("topk", model=FixedScorer(scores))
    assert topk.reads_question
    chosen = topk.select(sampled, "When does the red circle appear?", 3)
    assert chosen.indices == [10, 11, 12] and chosen.scores == pytest.approx([0.7, 0.9, 0.8])
    assert chosen.by_score()[0] == (11, pytest.approx(0.9))
    assert build_selector("diverse-topk", model=FixedScorer(scores)).select(sampled, "q", 2).indices == [11, 40]
