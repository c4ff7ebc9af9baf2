"""`frame_indices.jsonl`: the frames VideoITG selected for each document of an lmms-eval run.

One JSON object per line and per (task, doc_id). Stage one of the two-stage flow writes it (no answering model
needed); stage two reads it and hands the same frames to the answering model without running the selector. The
one-stage flow writes it too, as the record of what the answering model was shown.

Fields: `task`, `split`, `doc_id`, `video` (path as the task gives it), `question` (the text the frames were scored
against), `indices` (positions among the candidate frames, temporal order), `timestamps` (seconds), `scores`
(selector scores of the selected frames), `candidate_scores` (all candidates, rounded), `num_candidates`, the
candidate sampling (`sample_fps`, `max_frames`, `max_side`, `backend`: stage two decodes the candidates exactly as
stage one did), `top_k` and `model` (the selector).

This module needs neither lmms-eval nor torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..video import InvalidInputError


class FrameIndicesError(InvalidInputError):
    """A frame_indices.jsonl file that is missing, malformed, or has no line for a document."""


@dataclass
class FrameIndexRecord:
    """One line of frame_indices.jsonl: the frames selected for one document."""

    task: str
    split: str | None
    doc_id: int
    video: str
    question: str
    indices: list[int]
    timestamps: list[float]
    scores: list[float]
    candidate_scores: list[float]
    num_candidates: int
    sample_fps: float
    max_frames: int
    max_side: int | None
    backend: str
    top_k: int
    model: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.task, int(self.doc_id))

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


_REQUIRED_FIELDS = [field.name for field in fields(FrameIndexRecord)]


def shard_path(path: str | os.PathLike, rank: int, world_size: int) -> Path:
    """The file one process writes: `path` itself, or `<stem>.rank<R><suffix>` when several processes run.

    Each process writing its own file keeps lines from interleaving and lets each truncate its file safely.
    """
    path = Path(path)
    if world_size <= 1:
        return path
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


class FrameIndexWriter:
    """Writes records one line at a time (flushed, so a crashed run keeps what it selected)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "w", encoding="utf-8")  # a new run starts a new file

    def write(self, record: FrameIndexRecord) -> None:
        self._file.write(record.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _parse_line(line: str, where: str) -> FrameIndexRecord:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise FrameIndicesError(f"{where}: not valid JSON ({error.msg})") from None
    if not isinstance(data, dict):
        raise FrameIndicesError(f"{where}: expected a JSON object, got {type(data).__name__}")
    missing = [name for name in _REQUIRED_FIELDS if name not in data]
    if missing:
        raise FrameIndicesError(f"{where}: missing field(s) {', '.join(missing)}")
    record = FrameIndexRecord(**{name: data[name] for name in _REQUIRED_FIELDS})
    if len(record.indices) != len(record.timestamps) or not record.indices:
        raise FrameIndicesError(f"{where}: `indices` and `timestamps` must be non-empty lists of the same length")
    if any(not 0 <= index < record.num_candidates for index in record.indices):
        raise FrameIndicesError(f"{where}: an index is outside 0..{record.num_candidates - 1}")
    return record


def read_frame_indices(path: str | os.PathLike) -> dict[tuple[str, int], FrameIndexRecord]:
    """(task, doc_id) -> record, from `path` and the per-process files written next to it (`<stem>.rank*`)."""
    path = Path(path)
    files = ([path] if path.is_file() else []) + sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))
    if not files:
        raise FrameIndicesError(f"{path}: no such file (write it first with mode=write, frame_indices={path})")
    records: dict[tuple[str, int], FrameIndexRecord] = {}
    for file in files:
        with open(file, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    record = _parse_line(line, f"{file}:{number}")
                    records[record.key] = record  # a document selected twice: the later line wins
    if not records:
        raise FrameIndicesError(f"{path}: no records")
    return records
