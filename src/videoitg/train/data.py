"""Training data: grounding datasets (DESIGN.md schema) -> batches of videos with several questions each.

One item is one video with up to `questions_per_video` of its questions: the frames are shared and the
targets differ, so a model that ignores the instruction cannot fit the batch. Videos are decoded in the
DataLoader workers (or read as precomputed vision features, see `precompute_features`).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import OrderedDict, defaultdict
from pathlib import Path

import torch

from ..video import InvalidInputError, SampledFrames


def dataset_root(name_or_dir: str) -> Path:
    """A local dataset folder as is; a Hub id downloaded (or found in the cache) with its videos."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    if path.exists() or str(name_or_dir).startswith((".", "/")):
        raise InvalidInputError(f"{name_or_dir}: not a dataset folder")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(name_or_dir), repo_type="dataset"))


def load_split(name_or_dir: str, split: str, config: str | None = None):
    """(rows, root): a split of a local folder or Hub dataset (its default config, or `config`), and the folder
    relative paths resolve against."""
    from datasets import load_dataset

    root = dataset_root(name_or_dir)
    try:
        # datasets caches a local folder by its name: rebuild so that a folder regenerated in place is read anew.
        rows = load_dataset(str(root), config, split=split, download_mode="force_redownload")
    except ValueError as error:  # unknown split
        raise InvalidInputError(f"{name_or_dir}: {error}") from None
    return rows, root


def video_path(root: Path, video) -> str:
    """The file of a row's `video` value (a path relative to the dataset, absolute, or a Video feature dict)."""
    if isinstance(video, dict):
        video = video.get("path")
    path = Path(video)
    return str(path if path.is_absolute() else root / path)


class GroundingVideoDataset(torch.utils.data.Dataset):
    """Items: `{"video": path, "frames": SampledFrames | None, "features": dict | None, "questions", "labels"}`.

    Questions of one video are split into groups of `questions_per_video` (shuffled with `seed`).
    `frame_cache` keeps that many decoded videos in memory (per worker): worth it when the data is small
    and read for many epochs, as for the CPU-trained demo model. `extra_questions` (video_id -> (question,
    1-fps labels), e.g. `event_queries.load_event_queries`) adds `extra_per_item` of them, drawn at random,
    to every item of that video.
    """

    def __init__(
        self,
        rows,
        root: Path,
        video_processor,
        questions_per_video: int = 4,
        seed: int = 0,
        features_dir: str | Path | None = None,
        frame_cache: int = 0,
        extra_questions: dict[str, list[tuple[str, list[int]]]] | None = None,
        extra_per_item: int = 0,
    ):
        self.rows = rows
        self.root = Path(root)
        self.video_processor = video_processor
        self.features_dir = Path(features_dir) if features_dir else None
        self.features_index = (
            json.loads((self.features_dir / "index.json").read_text()) if self.features_dir else None
        )
        self.frame_cache_size = frame_cache
        self._frame_cache: OrderedDict[str, SampledFrames] = OrderedDict()
        self.extra_questions = extra_questions or {}
        self.extra_per_item = extra_per_item
        self._extra_rng = random.Random(seed)
        by_video: dict[str, list[int]] = defaultdict(list)
        self.video_ids: dict[str, str] = {}
        for index, (video, video_id) in enumerate(zip(rows["video"], rows["video_id"])):
            by_video[video_path(self.root, video)].append(index)
            self.video_ids[video_path(self.root, video)] = video_id
        generator = random.Random(seed)
        self.items: list[tuple[str, list[int]]] = []
        for path, indices in by_video.items():
            generator.shuffle(indices)
            for start in range(0, len(indices), questions_per_video):
                self.items.append((path, indices[start : start + questions_per_video]))

    def __len__(self) -> int:
        return len(self.items)

    def frames(self, path: str) -> SampledFrames:
        if path in self._frame_cache:
            self._frame_cache.move_to_end(path)
            return self._frame_cache[path]
        sampled = self.video_processor.load(path)
        # Keep frames at the vision tower's size: decoding is the slow part, resizing once saves memory too.
        sampled = SampledFrames(
            frames=self.video_processor.resize_frames(sampled.frames),
            timestamps=sampled.timestamps,
            grid_indices=sampled.grid_indices,
            metadata=sampled.metadata,
        )
        if self.frame_cache_size:
            self._frame_cache[path] = sampled
            while len(self._frame_cache) > self.frame_cache_size:
                self._frame_cache.popitem(last=False)
        return sampled

    def features(self, path: str) -> dict:
        from safetensors.torch import load_file

        key = _feature_key(path, self.root)
        if key not in self.features_index:
            raise InvalidInputError(f"{path}: no precomputed features in {self.features_dir} (run `videoitg features`)")
        return load_file(str(self.features_dir / self.features_index[key]))

    def __getitem__(self, index: int) -> dict:
        path, row_indices = self.items[index]
        rows = [self.rows[i] for i in row_indices]
        item = {
            "video": path,
            "questions": [row["question"] for row in rows],
            "labels": [row["frame_labels"] for row in rows],
            "frames": None,
            "features": None,
        }
        extra = self.extra_questions.get(self.video_ids[path], [])
        for question, labels in self._extra_rng.sample(extra, min(self.extra_per_item, len(extra))):
            item["questions"].append(question)
            item["labels"].append(labels)
        if self.features_dir is not None:
            item["features"] = self.features(path)
        else:
            item["frames"] = self.frames(path)
        return item


class FrameSelectionCollator:
    """Items -> one model batch: V videos (frames or features, padded) and all their questions (`video_index`)."""

    def __init__(self, processor, generation_targets: bool = False):
        self.processor = processor
        self.generation_targets = generation_targets

    def __call__(self, items: list[dict]) -> dict:
        questions, labels, video_index = [], [], []
        for position, item in enumerate(items):
            questions += item["questions"]
            labels += item["labels"]
            video_index += [position] * len(item["questions"])
        if items[0]["features"] is None:
            batch = self.processor(
                videos=[item["frames"] for item in items], text=questions, frame_labels=labels,
                video_index=video_index, return_target_ids=self.generation_targets,
            )  # fmt: skip
            batch = dict(batch)
        else:
            batch = self._feature_batch(items, questions, labels, video_index)
        batch.pop("frame_timestamps", None)
        batch.pop("grid_indices", None)
        return batch

    def _feature_batch(self, items, questions, labels, video_index) -> dict:
        features = [item["features"] for item in items]
        longest = max(len(feature["grid_indices"]) for feature in features)
        first = features[0]["vision_features"]
        vision_features = first.new_zeros(len(items), longest, *first.shape[1:])
        frame_mask = torch.zeros(len(items), longest, dtype=torch.bool)
        grid_indices = torch.full((len(items), longest), -1, dtype=torch.long)
        for position, feature in enumerate(features):
            count = len(feature["grid_indices"])
            vision_features[position, :count] = feature["vision_features"]
            frame_mask[position, :count] = True
            grid_indices[position, :count] = feature["grid_indices"]
        index = torch.tensor(video_index, dtype=torch.long)
        batch = {
            **self.processor.encode_instructions(questions),
            "vision_features": vision_features,
            "video_frame_mask": frame_mask,
            "video_index": index,
            "labels": self.processor.gather_labels(labels, grid_indices[index]),
        }
        if self.generation_targets:
            batch["target_ids"] = self.processor.target_ids(batch["labels"])
        return batch


def _feature_key(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(Path(path).resolve())


@torch.no_grad()
def precompute_features(model, processor, rows, root: Path, out_dir: str | Path, dtype=torch.float16) -> Path:
    """Run the (frozen) vision tower once per video and store its features as safetensors.

    Writes `out_dir/<hash>.safetensors` (`vision_features` `[T, P, Dv]`, `grid_indices`, `timestamps`) and
    `out_dir/index.json` (video path relative to the dataset -> file). Videos already there are skipped,
    so an interrupted run resumes.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    paths = sorted({video_path(Path(root), video) for video in rows["video"]})
    device = next(model.parameters()).device
    chunk = model.config.vision_chunk_size
    for path in tqdm(paths, desc="vision features", unit="video"):
        key = _feature_key(path, root)
        if key in index and (out_dir / index[key]).exists():
            continue
        sampled = processor.video_processor.load(path)
        pixels = processor.video_processor.to_pixel_values(sampled.frames).to(device, next(model.parameters()).dtype)
        features = torch.cat([model.encode_frames(pixels[i : i + chunk]) for i in range(0, len(pixels), chunk)])
        name = hashlib.sha1(key.encode()).hexdigest()[:16] + ".safetensors"
        save_file(
            {
                "vision_features": features.to(dtype).cpu().contiguous(),
                "grid_indices": torch.tensor(sampled.grid_indices, dtype=torch.long),
                "timestamps": torch.tensor(sampled.timestamps, dtype=torch.float),
            },
            str(out_dir / name),
        )
        index[key] = name
        index_path.write_text(json.dumps(index, indent=1))  # after each video: nothing done is lost
    return out_dir
