"""Where the selected frames come from (the selector, or a frame_indices.jsonl) and how they reach the wrapped model.

* `SelectorFrames` decodes a video once at the selector's candidate sampling, scores the candidates against the
  question and keeps the top k in temporal order; the frames handed on are the ones the selector decoded and scored.
* `RecordedFrames` (stage two) decodes the candidates exactly as stage one did (same rate, cap, size and decoder,
  all stored in the record) and takes the recorded indices: the same frames, with no selector.
* `FrameFiles` writes the selected frames where any lmms-eval model can read them: a short video holding only those
  frames (`frames_as="video"`), or one PNG per frame (`frames_as="images"`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .frame_indices import FrameIndexRecord, FrameIndicesError

if TYPE_CHECKING:
    import torch

    from ..video import SampledFrames


@dataclass
class SelectedFrames:
    """The frames chosen for one (video, question): uint8 `[k, 3, H, W]` in temporal order, and their record."""

    frames: torch.Tensor
    record: FrameIndexRecord


class _LastVideo:
    """The last decoded video, kept because several questions of a benchmark often share one video."""

    def __init__(self):
        self.key = None
        self.sampled = None

    def get(self, key, decode):
        if key != self.key:
            self.key, self.sampled = None, None  # free the previous video before decoding the next
            self.sampled = decode()
            self.key = key
        return self.sampled


class SelectorFrames:
    """Top-k frames of a video for a question, scored by a VideoITG model (`FrameScorer`)."""

    def __init__(self, scorer, top_k: int, candidates: int | None = None, sample_fps: float | None = None):
        self.scorer = scorer
        self.top_k = top_k
        video_processor = scorer.processor.video_processor
        # The candidate grid is the selector's own sampling unless overridden; the selector decodes at it.
        if candidates is not None:
            video_processor.max_frames = candidates
        if sample_fps is not None:
            video_processor.sample_fps = sample_fps
        self._last = _LastVideo()

    @classmethod
    def from_pretrained(cls, selector: str | None, device: str, top_k: int, candidates=None, sample_fps=None):
        from ..inference import FrameScorer

        scorer = FrameScorer.from_pretrained(selector)
        scorer.model.to(device)
        return cls(scorer, top_k=top_k, candidates=candidates, sample_fps=sample_fps)

    @property
    def sampling(self) -> dict:
        video_processor = self.scorer.processor.video_processor
        return {"sample_fps": float(video_processor.sample_fps), "max_frames": int(video_processor.max_frames)}

    def select(self, video: str, question: str, task: str, split: str | None, doc_id: int) -> SelectedFrames:
        from ..modeling_videoitg import select_top_k

        sampled: SampledFrames = self._last.get(video, lambda: self.scorer.load(video))
        scores = self.scorer.score(sampled, question)
        selection = select_top_k(scores, sampled.timestamps, self.top_k)
        video_processor = self.scorer.processor.video_processor
        record = FrameIndexRecord(
            task=task,
            split=split,
            doc_id=int(doc_id),
            video=video,
            question=question,
            indices=list(selection.indices),
            timestamps=list(selection.timestamps),
            scores=list(selection.scores),
            candidate_scores=[round(score, 4) for score in selection.frame_scores],
            num_candidates=len(sampled.timestamps),
            sample_fps=float(video_processor.sample_fps),
            max_frames=int(video_processor.max_frames),
            max_side=video_processor.decode_max_side,  # stage two decodes at the selector's size
            backend=sampled.metadata.backend,
            top_k=self.top_k,
            model=self.scorer.name,
        )
        return SelectedFrames(frames=sampled.frames[selection.indices], record=record)


class RecordedFrames:
    """Stage two: the frames of a frame_indices.jsonl record, decoded without a selector."""

    def __init__(self, records: dict[tuple[str, int], FrameIndexRecord], source: str):
        self.records = records
        self.source = source
        self._last = _LastVideo()

    def record_for(self, task: str, doc_id: int, video: str) -> FrameIndexRecord:
        record = self.records.get((task, int(doc_id)))
        if record is None:
            raise FrameIndicesError(
                f"{self.source}: no line for task {task!r} doc_id {doc_id}; run stage one (mode=write) on the same "
                "tasks, limit and offset"
            )
        if record.video != video:
            raise FrameIndicesError(
                f"{self.source}: task {task!r} doc_id {doc_id} was selected on {record.video!r}, but the task now "
                f"gives {video!r}; the file belongs to another dataset or order"
            )
        return record

    def select(self, video: str, task: str, doc_id: int) -> SelectedFrames:
        from ..video import available_backends, load_video

        record = self.record_for(task, doc_id, video)
        # Stage one's decoder, when installed here: every decoder returns the same frames, this avoids even rounding.
        backend = record.backend if record.backend in available_backends() else None
        sampling = (video, record.sample_fps, record.max_frames, record.max_side, backend)
        sampled = self._last.get(sampling, lambda: load_video(
            video, sample_fps=record.sample_fps, max_frames=record.max_frames, backend=backend, max_side=record.max_side
        ))  # fmt: skip
        if len(sampled.timestamps) != record.num_candidates or any(
            abs(sampled.timestamps[index] - time_s) > 1e-6 for index, time_s in zip(record.indices, record.timestamps)
        ):
            raise FrameIndicesError(
                f"{self.source}: {video} now gives {len(sampled.timestamps)} candidate frames at other times than "
                f"stage one recorded ({record.num_candidates}); the video file changed"
            )
        return SelectedFrames(frames=sampled.frames[record.indices], record=record)


def _even(frames: torch.Tensor) -> torch.Tensor:
    """H.264 in yuv420p needs even sizes: repeat the last row / column when one is odd (the content is unchanged)."""
    import torch

    if frames.shape[-2] % 2:
        frames = torch.cat([frames, frames[..., -1:, :]], dim=-2)
    if frames.shape[-1] % 2:
        frames = torch.cat([frames, frames[..., -1:]], dim=-1)
    return frames


class FrameFiles:
    """Writes selected frames to files the wrapped model reads, named by what they contain (reused across runs)."""

    def __init__(self, folder: str | os.PathLike, frames_as: Literal["video", "images"], fps: float, crf: int):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.frames_as = frames_as
        self.fps = fps
        self.crf = crf

    def _name(self, record: FrameIndexRecord) -> str:
        source = Path(record.video)
        stat = source.stat() if source.is_file() else None
        identity = {
            "video": str(source.resolve()), "size": stat.st_size if stat else None,
            "mtime_ns": stat.st_mtime_ns if stat else None, "indices": record.indices,
            "sampling": [record.sample_fps, record.max_frames, record.max_side, record.backend],
            "as": self.frames_as, "fps": self.fps, "crf": self.crf,
        }  # fmt: skip
        digest = hashlib.sha1(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
        return f"{source.stem}-{digest}"

    def write(self, selected: SelectedFrames) -> list[str]:
        """Paths to hand to the wrapped model: `[clip.mp4]` or one PNG per frame, in temporal order."""
        name = self._name(selected.record)
        if self.frames_as == "video":
            path = self.folder / f"{name}.mp4"
            if not path.is_file():
                self._write_clip(selected.frames, path)
            return [str(path)]
        paths = [self.folder / f"{name}-{position:03d}.png" for position in range(len(selected.frames))]
        if not all(path.is_file() for path in paths):
            from PIL import Image

            for frame, path in zip(selected.frames, paths):
                temporary = path.with_name(f".{path.name}.{os.getpid()}.png")
                Image.fromarray(frame.permute(1, 2, 0).numpy()).save(temporary)
                os.replace(temporary, path)  # atomic: another process may write the same file
        return [str(path) for path in paths]

    def _write_clip(self, frames: torch.Tensor, path: Path) -> None:
        from ..video import write_video

        temporary = path.with_name(f".{path.stem}.{os.getpid()}.mp4")
        frames = _even(frames)
        write_video(temporary, (frame.permute(1, 2, 0) for frame in frames), fps=self.fps, crf=self.crf)
        os.replace(temporary, path)

