"""Questions to annotate: reading QA files, options, and the split into shards.

Accepted inputs:
* LLaVA-Video-178K style JSON: a list of `{"id", "video", "conversations": [{"from": "human", "value": ...},
  {"from": "gpt", "value": ...}, ...]}`; each human/gpt pair is one question (`<id>` when the record has one pair,
  `<id>#<n>` otherwise). The `<image>` placeholder is removed from the question.
* JSON list or JSONL of flat records `{"video", "question", "answer"[, "options", "id", "video_id", "source"]}`.

Multiple-choice options written inside the question ("A. ...", "(B) ...") are read into `options` when the record
has none; the question text is kept as it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..video import InvalidInputError

_OPTION_LINE = re.compile(r"^\s*\(?([A-H])[.):]\s+(.+?)\s*$")


@dataclass(frozen=True)
class QAItem:
    id: str
    position: int  # order in the QA file: the order of the output rows
    video: str  # as written in the QA file, relative to --video-root
    video_id: str
    question: str
    answer: str
    options: tuple[str, ...] = ()
    source: str = ""

    @property
    def answer_form(self) -> str:
        return "multiple_choice" if self.options else "open_ended"


def parse_options(question: str) -> tuple[str, ...]:
    """Options written one per line as `A. text` (also `A)`, `(A)`, `A:`), when they run A, B, C, ... in order."""
    options = []
    for line in question.splitlines():
        match = _OPTION_LINE.match(line)
        if match and ord(match.group(1)) - ord("A") == len(options):
            options.append(f"{match.group(1)}. {match.group(2)}")
    return tuple(options) if len(options) >= 2 else ()


def video_id_of(video: str) -> str:
    """The video's path without its extension (unique within a dataset, readable)."""
    path = PurePosixPath(video.replace("\\", "/"))
    return str(path.with_suffix("")) if path.suffix else str(path)


def _clean_question(text: str) -> str:
    return text.replace("<image>", "").replace("<video>", "").strip()


def _records(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{path}: not valid JSON ({error})") from error
        return records
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{path}: line {number} is not valid JSON ({error})") from error
    return records


def _text(record: dict, key: str, where: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(f"{where}: `{key}` must be a non-empty string, got {value!r}")
    return value


def read_qa_file(path: str | Path) -> list[QAItem]:
    """Every question of a QA file, in file order. Raises `InvalidInputError` naming the record at fault."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such QA file")
    items: list[QAItem] = []
    for number, record in enumerate(_records(path)):
        where = f"{path}: record {number}"
        if not isinstance(record, dict):
            raise InvalidInputError(f"{where}: expected an object, got {type(record).__name__}")
        video = _text(record, "video", where)
        base_id = str(record.get("id", f"q{number}"))
        video_id = str(record.get("video_id") or video_id_of(video))
        source = str(record.get("source") or record.get("data_source") or "")
        if "conversations" in record:
            turns = record["conversations"]
            if not isinstance(turns, list) or len(turns) < 2:
                raise InvalidInputError(f"{where}: `conversations` must hold human/gpt turns")
            pairs = []
            for turn in range(0, len(turns) - 1, 2):
                human, gpt = turns[turn], turns[turn + 1]
                if not (isinstance(human, dict) and isinstance(gpt, dict)) or human.get("from") != "human" or \
                        gpt.get("from") != "gpt":  # fmt: skip
                    raise InvalidInputError(f"{where}: turn {turn} is not a human/gpt pair")
                pairs.append((_clean_question(_text(human, "value", where)), _text(gpt, "value", where).strip()))
            for index, (question, answer) in enumerate(pairs):
                question_id = base_id if len(pairs) == 1 else f"{base_id}#{index}"
                items.append(QAItem(question_id, len(items), video, video_id, question, answer,
                                    parse_options(question), source))  # fmt: skip
        else:
            question = _clean_question(_text(record, "question", where))
            answer = str(record.get("answer", "")).strip()
            options = record.get("options") or ()
            if not isinstance(options, (list, tuple)) or not all(isinstance(o, str) for o in options):
                raise InvalidInputError(f"{where}: `options` must be a list of strings")
            items.append(QAItem(base_id, len(items), video, video_id, question, answer,
                                tuple(options) or parse_options(question), source))  # fmt: skip
    if not items:
        raise InvalidInputError(f"{path}: holds no questions")
    seen: dict[str, int] = {}
    for item in items:
        if item.id in seen:
            raise InvalidInputError(f"{path}: question id {item.id!r} appears twice (records {seen[item.id]} and "
                                    f"{item.position})")  # fmt: skip
        seen[item.id] = item.position
    return items


def shard_of(video_id: str, num_shards: int) -> int:
    """A stable shard for a video (all its questions go to one shard, so it is decoded by one process)."""
    digest = hashlib.sha1(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def select_shard(items: list[QAItem], num_shards: int, shard_index: int) -> list[QAItem]:
    if num_shards < 1:
        raise InvalidInputError(f"--num-shards must be >= 1, got {num_shards}")
    if not 0 <= shard_index < num_shards:
        raise InvalidInputError(f"--shard-index must be in [0, {num_shards - 1}], got {shard_index}")
    return [item for item in items if shard_of(item.video_id, num_shards) == shard_index]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
