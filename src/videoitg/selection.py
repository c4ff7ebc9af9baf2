"""Frame selection: scores -> frames, and the training-free baselines a VideoITG model is measured against.

Every strategy picks `k` of the `T` sampled frames of one video (all of them when `T <= k`) and returns them as
sorted unique positions in the sampled sequence (`SampledFrames.grid_indices[p]` is the 1-fps grid frame of
position `p`). Strategies, by registry name:

* `uniform` — the centres of `k` equal bins.
* `random` — `k` frames drawn without replacement (seeded).
* `keyframes` — Algorithm 1 of the VideoITG paper (appendix C.3), bidirectional similarity with the official
  thresholds 0.90 (scene change) and 0.97 (diversity), on raw-pixel features or on a transformers image encoder;
  its variable number of keyframes is brought to exactly `k` by farthest-point selection (`keyframes_to_k`).
* `clip-topk`, `bolt`, `aks` — query-frame similarity of a text-image model (CLIP, SigLIP, ...): the top `k`,
  BOLT's inverse transform sampling, and AKS's adaptive recursive binning.
* `topk`, `diverse-topk` — over the scores of a VideoITG model (`videoitg.inference.FrameScorer`).
* `object-oracle` — the question-blind upper bound: it knows every frame that shows any event
  (`event_frame_labels`) and spreads `k` frames uniformly over them, ignoring the instruction.

The array functions (`uniform_indices`, `inverse_transform_sampling`, ...) work on plain numpy arrays; the
`FrameSelector` classes wrap them with the per-video and per-question work (features, similarities) so that an
evaluation computes each once and selects at several `k`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    import torch

    from .video import SampledFrames

# Algorithm 1 of the VideoITG paper: a frame is a keyframe when its similarity to the last keyframe is below the
# scene-change threshold and some later frame is less similar to it than the diversity threshold.
KEYFRAME_SCENE_THRESHOLD = 0.90
KEYFRAME_DIVERSITY_THRESHOLD = 0.97
# BOLT (Liu, Zhao, Xu, Ghanem, "BOLT: Boost Large Vision-Language Model Without Training for Long-form Video
# Understanding", CVPR 2025, arXiv:2503.21483): similarities are min-max normalised and raised to the power alpha
# before inverse transform sampling; the official release uses alpha = 3 for Video-MME and MLVU (2.5 for
# LongVideoBench).
BOLT_ALPHA = 3.0
# AKS (Tang et al., "Adaptive Keyframe Sampling for Long Video Understanding", CVPR 2025, arXiv:2502.21271):
# official defaults t1 = 0.8 (relevance gap that stops splitting), t2 = -100 (spread threshold, off), depth 5.
AKS_RELEVANCE_THRESHOLD = 0.8
AKS_SPREAD_THRESHOLD = -100.0
AKS_MAX_DEPTH = 5
# Side of the thumbnail that raw-pixel features are computed on (3 x 16 x 16 values per frame).
PIXEL_FEATURE_SIDE = 16


def _invalid_input(message: str) -> Exception:
    from .video import InvalidInputError

    return InvalidInputError(message)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise _invalid_input(f"k (frames to select) must be an integer >= 1, got {k!r}")
    return int(k)


def _as_curve(scores, num_frames: int | None = None, name: str = "scores") -> np.ndarray:
    curve = np.asarray(scores.detach().cpu().float() if hasattr(scores, "detach") else scores, dtype=np.float64)
    curve = curve.reshape(-1)
    if num_frames is not None and curve.size != num_frames:
        raise _invalid_input(f"{name} has {curve.size} values for {num_frames} frames")
    if not np.isfinite(curve).all():
        raise _invalid_input(f"{name} holds NaN or infinite values")
    return curve


# ---------------------------------------------------------------------------------------------------- strategies
def uniform_indices(num_frames: int, k: int) -> list[int]:
    """The centres of `k` equal bins over `num_frames` frames (all frames when `num_frames <= k`)."""
    k = _check_k(k)
    if num_frames <= k:
        return list(range(num_frames))
    # Bins are wider than one frame here, so the centres are strictly increasing.
    return [int((2 * j + 1) * num_frames // (2 * k)) for j in range(k)]


def random_indices(num_frames: int, k: int, seed: int = 0) -> list[int]:
    """`k` distinct frames drawn uniformly at random (sorted)."""
    k = _check_k(k)
    if num_frames <= k:
        return list(range(num_frames))
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(num_frames, size=k, replace=False))


def top_k_indices(scores, k: int) -> list[int]:
    """The `k` highest scores (ties: earlier frame first), in temporal order."""
    curve = _as_curve(scores)
    k = _check_k(k)
    order = np.lexsort((np.arange(curve.size), -curve))  # by score descending, then position
    return sorted(int(i) for i in order[:k])


def diverse_top_k_indices(scores, k: int, min_gap: int | None = None) -> list[int]:
    """Highest scores first, skipping frames closer than `min_gap` to one already taken; relaxed when too few.

    The default gap is half the spacing of uniform sampling (`T // 2k`, at least 1 frame), so that `k` frames
    spread over several high-scoring events instead of piling onto the widest one.
    """
    curve = _as_curve(scores)
    k = _check_k(k)
    num_frames = curve.size
    if num_frames <= k:
        return list(range(num_frames))
    gap = max(1, num_frames // (2 * k)) if min_gap is None else max(1, int(min_gap))
    order = np.lexsort((np.arange(num_frames), -curve))
    taken: list[int] = []
    blocked = np.zeros(num_frames, dtype=bool)
    for index in order:
        if not blocked[index]:
            taken.append(int(index))
            blocked[max(0, index - gap + 1) : index + gap] = True
            if len(taken) == k:
                return sorted(taken)
    chosen = set(taken)  # the gap left fewer than k candidates: fill with the best remaining scores
    taken += [int(i) for i in order if int(i) not in chosen][: k - len(taken)]
    return sorted(taken)


def _normalise_rows(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def keyframe_indices(
    features: np.ndarray,
    scene_threshold: float = KEYFRAME_SCENE_THRESHOLD,
    diversity_threshold: float = KEYFRAME_DIVERSITY_THRESHOLD,
) -> list[int]:
    """Algorithm 1 of the VideoITG paper on per-frame features `[T, D]` (cosine similarity); variable count.

    Frame 0 is a keyframe. Frame `i` becomes one when its similarity to the last keyframe is below
    `scene_threshold` and some later frame's similarity to it is below `diversity_threshold`; the last frame
    joins when its similarity to the last keyframe is below `scene_threshold`.
    """
    features = _normalise_rows(np.asarray(features, dtype=np.float64))
    num_frames = len(features)
    if num_frames == 0:
        return []
    similarity = features @ features.T
    # Least similarity of each frame to any later frame (+inf for the last frame, which has none).
    later = np.triu(np.ones((num_frames, num_frames), dtype=bool), k=1)
    least_later = np.where(later, similarity, np.inf).min(axis=1)
    keyframes = [0]
    for index in range(1, num_frames):
        if similarity[index, keyframes[-1]] < scene_threshold and least_later[index] < diversity_threshold:
            keyframes.append(index)
    # Lines 17-19: the last frame joins when it differs from the last keyframe (it has no later frame to test).
    last = num_frames - 1
    if last > keyframes[-1] and similarity[last, keyframes[-1]] < scene_threshold:
        keyframes.append(last)
    return keyframes


def _farthest_point_fill(features: np.ndarray, chosen: list[int], k: int) -> list[int]:
    """Greedily add the frame least similar to everything chosen until `k` frames; ties go to the frame farthest
    in time from the chosen ones (so a static video gets evenly spread frames)."""
    num_frames = len(features)
    chosen = list(chosen)
    positions = np.arange(num_frames)
    if not chosen:
        chosen = [0]
    closest_similarity = (features @ features[chosen].T).max(axis=1)
    time_gap = np.abs(positions[:, None] - np.asarray(chosen)[None, :]).min(axis=1).astype(np.float64)
    while len(chosen) < min(k, num_frames):
        closest_similarity[chosen] = np.inf
        least = closest_similarity.min()
        candidates = np.flatnonzero(closest_similarity <= least + 1e-9)
        pick = int(candidates[np.argmax(time_gap[candidates])])
        chosen.append(pick)
        closest_similarity = np.maximum(closest_similarity, features @ features[pick])
        time_gap = np.minimum(time_gap, np.abs(positions - pick))
    return chosen


def keyframes_to_k(features: np.ndarray, keyframes: Sequence[int], k: int) -> list[int]:
    """Exactly `k` frames from Algorithm 1's variable-size keyframe set (all frames when `T <= k`).

    Too many keyframes: keep the `k` that cover the most distinct content — frame 0, then repeatedly the keyframe
    least similar to those kept (farthest-point selection). Too few: keep them all and add, the same way, the
    frames least similar to everything already chosen.
    """
    k = _check_k(k)
    features = _normalise_rows(np.asarray(features, dtype=np.float64))
    num_frames = len(features)
    if num_frames <= k:
        return list(range(num_frames))
    keyframes = sorted(set(int(i) for i in keyframes))
    if len(keyframes) > k:
        subset = features[keyframes]
        kept = _farthest_point_fill(subset, [0], k)
        return sorted(keyframes[i] for i in kept)
    return sorted(_farthest_point_fill(features, keyframes, k))


def _min_max(curve: np.ndarray) -> np.ndarray:
    span = curve.max() - curve.min()
    return (curve - curve.min()) / span if span > 0 else np.zeros_like(curve)


def inverse_transform_sampling(similarity, k: int, alpha: float = BOLT_ALPHA) -> list[int]:
    """BOLT: frames at the `k` quantile midpoints of the distribution `p ∝ normalised_similarity ** alpha`.

    Dense where the query matches, sparse elsewhere, never exactly zero coverage of a peak. Several quantiles can
    land on one frame when the distribution is peaked; each extra one moves to the nearest free frame (the more
    probable side first), so exactly `k` distinct frames come back. (The official script spaces the quantiles as
    `linspace(1/k, 1 - 1/k, k)` and keeps duplicates; midpoints stay defined at `k = 1`.)
    """
    curve = _as_curve(similarity, name="similarity")
    k = _check_k(k)
    num_frames = curve.size
    if num_frames <= k:
        return list(range(num_frames))
    weights = _min_max(curve) ** alpha
    if weights.sum() <= 0:  # flat similarity: nothing to prefer
        weights = np.ones(num_frames)
    cdf = np.cumsum(weights / weights.sum())
    quantiles = (np.arange(k) + 0.5) / k
    picks = np.minimum(np.searchsorted(cdf, quantiles), num_frames - 1)
    used = np.zeros(num_frames, dtype=bool)
    chosen = []
    for pick in picks:
        pick = int(pick)
        distance = 0
        while used[pick]:
            distance += 1
            sides = [p for p in (pick - distance, pick + distance) if 0 <= p < num_frames and not used[p]]
            if sides:
                pick = max(sides, key=lambda p: (weights[p], -p))
        used[pick] = True
        chosen.append(pick)
    return sorted(chosen)


@dataclass
class _Segment:
    start: int  # first frame (inclusive)
    end: int  # last frame (exclusive)
    budget: int  # frames this segment must provide
    depth: int


def adaptive_keyframe_sampling(
    similarity,
    k: int,
    relevance_threshold: float = AKS_RELEVANCE_THRESHOLD,
    spread_threshold: float = AKS_SPREAD_THRESHOLD,
    max_depth: int = AKS_MAX_DEPTH,
) -> list[int]:
    """AKS "judge and split": trade relevance (top scores) against coverage (every part of the video).

    Scores are min-max normalised. A segment with budget `M` keeps its `M` best frames (TOP) when the mean of its
    `M` best scores exceeds its mean score by more than `relevance_threshold` (and its spread exceeds
    `spread_threshold`); otherwise it is halved and each half gets half the budget (BIN), down to `max_depth`
    levels or a budget of one frame, where the segment keeps its best frames. (The official script judges every
    segment with the video-level `k` instead of the segment's budget and may return more than `k` frames; here the
    budget of a segment is split exactly — ceil/floor — and frames a short segment cannot provide are filled with
    the best-scoring frames left, so exactly `k` come back.)
    """
    curve = _min_max(_as_curve(similarity, name="similarity"))
    k = _check_k(k)
    num_frames = curve.size
    if num_frames <= k:
        return list(range(num_frames))

    def best(segment: _Segment, count: int) -> list[int]:
        window = curve[segment.start : segment.end]
        order = np.lexsort((np.arange(window.size), -window))[:count]
        return [segment.start + int(i) for i in order]

    chosen: list[int] = []
    pending = [_Segment(0, num_frames, k, 0)]
    while pending:
        segment = pending.pop()
        window = curve[segment.start : segment.end]
        if window.size == 0:
            continue
        top = np.sort(window)[::-1][: segment.budget]
        relevant = top.mean() - window.mean() > relevance_threshold and window.std() > spread_threshold
        if relevant or segment.depth >= max_depth or segment.budget == 1 or window.size <= segment.budget:
            chosen += best(segment, segment.budget)
            continue
        middle = (segment.start + segment.end) // 2
        first_budget = (segment.budget + 1) // 2
        pending.append(_Segment(middle, segment.end, segment.budget - first_budget, segment.depth + 1))
        pending.append(_Segment(segment.start, middle, first_budget, segment.depth + 1))
    chosen_set = set(chosen)
    if len(chosen_set) < k:
        order = np.lexsort((np.arange(num_frames), -curve))
        chosen_set.update([int(i) for i in order if int(i) not in chosen_set][: k - len(chosen_set)])
    return sorted(chosen_set)


def spread_over(positions: Sequence[int], k: int) -> list[int]:
    """`k` of `positions` (sorted) spread uniformly over the list: the centres of `k` equal bins of it."""
    positions = sorted(set(int(p) for p in positions))
    return [positions[i] for i in uniform_indices(len(positions), k)] if positions else []


def oracle_indices(event_positions: Sequence[int], num_frames: int, k: int) -> list[int]:
    """Question-blind upper bound: `k` frames spread uniformly over the frames that show any event.

    With fewer event frames than `k` it takes them all and spreads the rest uniformly over the other frames.
    """
    k = _check_k(k)
    if num_frames <= k:
        return list(range(num_frames))
    events = sorted(set(int(p) for p in event_positions if 0 <= int(p) < num_frames))
    if len(events) >= k:
        return spread_over(events, k)
    others = sorted(set(range(num_frames)) - set(events))
    return sorted(events + spread_over(others, k - len(events)))


# ------------------------------------------------------------------------------------------------------ features
def pixel_features(frames: torch.Tensor, side: int = PIXEL_FEATURE_SIDE) -> np.ndarray:
    """Raw-pixel features `[T, 3 * side * side]`: area-downscaled RGB, centred and L2-normalised per frame, so that
    their dot product is the correlation of two thumbnails (insensitive to global brightness)."""
    import torch
    import torch.nn.functional as F

    if frames.ndim != 4 or frames.shape[1] != 3:
        raise _invalid_input(f"frames must be [T, 3, H, W], got {tuple(frames.shape)}")
    thumbnails = F.adaptive_avg_pool2d(frames.to(torch.float32), (side, side)).reshape(len(frames), -1)
    thumbnails = thumbnails - thumbnails.mean(dim=1, keepdim=True)
    return _normalise_rows(thumbnails.double().numpy())


class PretrainedEncoder:
    """A transformers model loaded by path with `AutoModel` / `AutoProcessor`: L2-normalised image (and text)
    embeddings. Text-image models (CLIP, SigLIP, ...) offer `get_image_features` / `get_text_features`;
    image-only encoders (DINOv2, a SigLIP vision tower, ...) are read from their pooled or mean hidden state."""

    def __init__(self, path: str, device: str | None = None, batch_size: int = 32):
        import torch
        from transformers import AutoModel, AutoProcessor

        try:
            self.model = AutoModel.from_pretrained(path)
            processor = AutoProcessor.from_pretrained(path)
        except (OSError, ValueError) as error:
            raise _invalid_input(f"{path}: cannot load a transformers image/text model ({error})") from error
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.eval().to(self.device)
        self.image_processor = getattr(processor, "image_processor", processor)
        self.tokenizer = getattr(processor, "tokenizer", None)
        self.batch_size = batch_size
        self.path = str(path)

    @staticmethod
    def _embedding(output) -> torch.Tensor:
        # transformers 5 returns a model output whose pooler_output is the (projected) embedding; 4.x a tensor.
        if getattr(output, "pooler_output", None) is not None:
            return output.pooler_output
        if getattr(output, "last_hidden_state", None) is not None:
            return output.last_hidden_state.mean(dim=1)
        return output

    def image_features(self, frames: torch.Tensor) -> np.ndarray:
        import torch

        chunks = []
        with torch.no_grad():
            for start in range(0, len(frames), self.batch_size):
                batch = list(frames[start : start + self.batch_size])
                pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
                pixels = pixels.to(self.device, dtype=next(self.model.parameters()).dtype)
                if hasattr(self.model, "get_image_features"):
                    output = self.model.get_image_features(pixel_values=pixels)
                else:
                    output = self.model(pixel_values=pixels)
                chunks.append(self._embedding(output).float().cpu())
        return _normalise_rows(torch.cat(chunks).double().numpy())

    def text_features(self, text: str) -> np.ndarray:
        import torch

        if self.tokenizer is None or not hasattr(self.model, "get_text_features"):
            raise _invalid_input(f"{self.path}: this model has no text encoder (a text-image model is needed)")
        # SigLIP was trained on text padded to its full length; CLIP-like models take the text as it is.
        siglip = "siglip" in getattr(self.model.config, "model_type", "")
        limit = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", None)
        tokens = self.tokenizer(
            [text], return_tensors="pt", truncation=True, max_length=limit,
            padding="max_length" if siglip else True,
        )  # fmt: skip
        tokens = {name: value.to(self.device) for name, value in tokens.items() if name in ("input_ids", "attention_mask")}
        with torch.no_grad():
            output = self.model.get_text_features(**tokens)
        return _normalise_rows(self._embedding(output).float().cpu().double().numpy())[0]


# ------------------------------------------------------------------------------------------------------ selectors
@dataclass
class SelectedFrames:
    """Chosen positions in the sampled frame sequence (sorted, unique) and a preference score for each."""

    indices: list[int]
    scores: list[float]

    def by_score(self) -> list[tuple[int, float]]:
        """(position, score) pairs, highest score first (ties: earlier first)."""
        return sorted(zip(self.indices, self.scores), key=lambda pair: (-pair[1], pair[0]))


@dataclass
class PreparedVideo:
    """One video as a selector sees it: the sampled frames and what the selector computed once for them."""

    sampled: SampledFrames
    features: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return len(self.sampled.timestamps)


class FrameSelector:
    """A frame-selection strategy. `prepare` runs once per video, `score` once per question, `choose` once per k.

    `reads_question` says whether the instruction can change the selection (the swap control needs it only to
    label the result; it always measures).
    """

    name: ClassVar[str] = ""
    reads_question: ClassVar[bool] = False

    def prepare(self, sampled: SampledFrames) -> PreparedVideo:
        return PreparedVideo(sampled)

    def score(self, video: PreparedVideo, question: str, row: Mapping | None = None) -> np.ndarray | None:
        """Per-frame scores `[T]` for one question (higher = wanted), or None for a strategy without scores."""
        return None

    def choose(
        self, video: PreparedVideo, k: int, scores: np.ndarray | None, row: Mapping | None = None, seed: int = 0
    ) -> SelectedFrames:
        raise NotImplementedError

    def select(
        self, sampled: SampledFrames, question: str = "", k: int = 8, row: Mapping | None = None, seed: int = 0
    ) -> SelectedFrames:
        """All three steps for one question about one video."""
        video = self.prepare(sampled)
        return self.choose(video, k, self.score(video, question, row), row, seed)


def _with_scores(indices: list[int], scores: np.ndarray | None) -> SelectedFrames:
    """Selected positions with their score (1.0 each for strategies without a score)."""
    return SelectedFrames(indices, [1.0 if scores is None else float(scores[i]) for i in indices])


class UniformSelector(FrameSelector):
    name = "uniform"

    def choose(self, video, k, scores, row=None, seed=0):
        return _with_scores(uniform_indices(video.num_frames, k), None)


class RandomSelector(FrameSelector):
    name = "random"

    def choose(self, video, k, scores, row=None, seed=0):
        return _with_scores(random_indices(video.num_frames, k, seed), None)


class KeyframeSelector(FrameSelector):
    """Algorithm 1 of the paper, brought to exactly k frames (`keyframes_to_k`). Scores: 1 for the algorithm's
    own keyframes, 0 for frames added to reach k."""

    name = "keyframes"

    def __init__(self, encoder: PretrainedEncoder | None = None, scene_threshold: float = KEYFRAME_SCENE_THRESHOLD,
                 diversity_threshold: float = KEYFRAME_DIVERSITY_THRESHOLD):  # fmt: skip
        self.encoder = encoder
        self.scene_threshold = scene_threshold
        self.diversity_threshold = diversity_threshold

    def prepare(self, sampled):
        frames = sampled.frames
        features = self.encoder.image_features(frames) if self.encoder is not None else pixel_features(frames)
        keyframes = keyframe_indices(features, self.scene_threshold, self.diversity_threshold)
        return PreparedVideo(sampled, features, {"keyframes": keyframes})

    def choose(self, video, k, scores, row=None, seed=0):
        keyframes = video.extra["keyframes"]
        indices = keyframes_to_k(video.features, keyframes, k)
        own = set(keyframes)
        return SelectedFrames(indices, [1.0 if i in own else 0.0 for i in indices])


class _SimilaritySelector(FrameSelector):
    """Base of the text-image baselines: cosine similarity between the question and each frame."""

    reads_question = True

    def __init__(self, encoder: PretrainedEncoder):
        self.encoder = encoder

    def prepare(self, sampled):
        return PreparedVideo(sampled, self.encoder.image_features(sampled.frames))

    def score(self, video, question, row=None):
        return video.features @ self.encoder.text_features(question)


class ClipTopKSelector(_SimilaritySelector):
    name = "clip-topk"

    def choose(self, video, k, scores, row=None, seed=0):
        return _with_scores(top_k_indices(scores, k), scores)


class BoltSelector(_SimilaritySelector):
    name = "bolt"

    def __init__(self, encoder: PretrainedEncoder, alpha: float = BOLT_ALPHA):
        super().__init__(encoder)
        self.alpha = alpha

    def choose(self, video, k, scores, row=None, seed=0):
        return _with_scores(inverse_transform_sampling(scores, k, self.alpha), scores)


class AksSelector(_SimilaritySelector):
    name = "aks"

    def choose(self, video, k, scores, row=None, seed=0):
        return _with_scores(adaptive_keyframe_sampling(scores, k), scores)


class ModelScoreSelector(FrameSelector):
    """Top-k (or diverse top-k) over the frame scores of a VideoITG model: any object with
    `.score(sampled_frames, question) -> [T]` (e.g. `videoitg.inference.FrameScorer`)."""

    reads_question = True

    def __init__(self, scorer, diverse: bool = False, min_gap: int | None = None):
        self.scorer = scorer
        self.diverse = diverse
        self.min_gap = min_gap
        self.name = "diverse-topk" if diverse else "topk"

    def score(self, video, question, row=None):
        return _as_curve(self.scorer.score(video.sampled, question), video.num_frames, "model scores")

    def choose(self, video, k, scores, row=None, seed=0):
        if self.diverse:
            return _with_scores(diverse_top_k_indices(scores, k, self.min_gap), scores)
        return _with_scores(top_k_indices(scores, k), scores)


class ObjectOracleSelector(FrameSelector):
    """Knows which frames show any event (`row["event_frame_labels"]`, 1-fps) but not which one the question
    asks about."""

    name = "object-oracle"

    def choose(self, video, k, scores, row=None, seed=0):
        labels = (row or {}).get("event_frame_labels")
        if labels is None:
            raise _invalid_input("object-oracle needs `event_frame_labels` in the dataset (the synthetic benchmark has them)")
        grid = video.sampled.grid_indices
        events = [position for position, second in enumerate(grid) if second < len(labels) and labels[second]]
        return _with_scores(oracle_indices(events, video.num_frames, k), None)


# The registry: name -> builder(options). Options: clip_model (path), keyframe_encoder (path), model (a scorer
# object or a model folder / Hub id), device, alpha (BOLT), min_gap (diverse-topk).
def _encoder(options: Mapping, key: str, name: str, required: bool) -> PretrainedEncoder | None:
    path = options.get(key)
    if path is None:
        if required:
            flag = "--" + key.replace("_", "-")
            raise _invalid_input(f"selector {name!r} needs a text-image model: pass {flag} PATH (CLIP, SigLIP, ...)")
        return None
    return PretrainedEncoder(str(path), device=options.get("device"))


def _scorer(options: Mapping):
    model = options.get("model")
    if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from .inference import FrameScorer

        return FrameScorer.from_pretrained(model)
    return model


SELECTORS: dict[str, Callable[[Mapping], FrameSelector]] = {
    "uniform": lambda options: UniformSelector(),
    "random": lambda options: RandomSelector(),
    "keyframes": lambda options: KeyframeSelector(_encoder(options, "keyframe_encoder", "keyframes", False)),
    "clip-topk": lambda options: ClipTopKSelector(_encoder(options, "clip_model", "clip-topk", True)),
    "bolt": lambda options: BoltSelector(
        _encoder(options, "clip_model", "bolt", True), float(options.get("alpha") or BOLT_ALPHA)
    ),
    "aks": lambda options: AksSelector(_encoder(options, "clip_model", "aks", True)),
    "topk": lambda options: ModelScoreSelector(_scorer(options)),
    "diverse-topk": lambda options: ModelScoreSelector(_scorer(options), diverse=True, min_gap=options.get("min_gap")),
    "object-oracle": lambda options: ObjectOracleSelector(),
}
# Baselines that need no trained VideoITG model.
TRAINING_FREE = ("uniform", "random", "keyframes", "clip-topk", "bolt", "aks", "object-oracle")


def build_selector(name: str, **options) -> FrameSelector:
    """A selector by registry name, e.g. `build_selector("bolt", clip_model="path/to/clip")`."""
    if name not in SELECTORS:
        raise _invalid_input(f"unknown selector {name!r}; choose one of: {', '.join(SELECTORS)}")
    return SELECTORS[name](options)


__all__ = [
    "SelectedFrames",
    "PreparedVideo",
    "FrameSelector",
    "PretrainedEncoder",
    "SELECTORS",
    "TRAINING_FREE",
    "build_selector",
    "uniform_indices",
    "random_indices",
    "top_k_indices",
    "diverse_top_k_indices",
    "keyframe_indices",
    "keyframes_to_k",
    "inverse_transform_sampling",
    "adaptive_keyframe_sampling",
    "spread_over",
    "oracle_indices",
    "pixel_features",
]
