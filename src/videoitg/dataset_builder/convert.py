"""`videoitg convert-dataset --from videoitg-40k`: the published VideoITG-40K files as a Hub-format dataset folder.

Published format (`video_itg_data.json`): a list of records `{id, video, question, answer, frame_num, clip_num,
motion, existence}`; `video` paths start with `LLaVA-Video-178K/`; `question` already holds the options and the
answer-format instruction; `frame_num` lists 1-fps frame ids and `clip_num` 5-second clip ids; `motion` and
`existence` are "Yes" / "No". `all_clip_desc.json` maps videos to their `clip_description` lists (one caption per
5-second clip).

Labels come from `frame_num` (the official training script reads `clip_num` as frame ids; we do not copy that).
`relevant_clips` / `relevant_segments` come from `clip_num`, whose numbering base (0 or 1) is not documented: with
`clip_base="auto"` the base under which the clips contain more of the labelled frames is chosen, and reported.
`instruction_type` follows the two published flags: existence question answered "no" -> `non_clue`, motion ->
`motion`, otherwise `semantic` (the flags cannot tell `semantic_motion` apart).

Malformed records are never skipped silently: each is listed in `failures.jsonl` with its id and the problem, and
counted in the report. Fields beyond the published ones are kept in the `extra` column (JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..video import InvalidInputError
from .media import grid_length
from .qa import parse_options, video_id_of
from .writer import VIDEO_LINK, link_videos, write_dataset_folder

PUBLISHED_FIELDS = ("id", "video", "question", "answer", "frame_num", "clip_num", "motion", "existence")
SOURCES = ("videoitg-40k",)


@dataclass
class ConversionReport:
    rows: int = 0
    malformed: list[dict] = field(default_factory=list)  # {"id", "position", "stage": "convert", "reason"}
    unreadable_videos: list[str] = field(default_factory=list)
    caption_rows: int = 0
    clip_base: int = 0
    clip_agreement: float | None = None  # share of labelled frames inside the clips under the chosen base
    durations_from: dict[str, int] = field(default_factory=dict)  # "video" | "clip_descriptions" | "frame_num"

    def summary(self) -> str:
        lines = [f"{self.rows} rows written, {len(self.malformed)} malformed records reported in failures.jsonl"]
        for failure in self.malformed[:10]:
            lines.append(f"  malformed {failure['id']}: {failure['reason']}")
        if len(self.malformed) > 10:
            lines.append(f"  ... and {len(self.malformed) - 10} more")
        agreement = "n/a" if self.clip_agreement is None else f"{self.clip_agreement:.1%}"
        lines.append(f"clip_num read as {self.clip_base}-based ids (labelled frames inside their clips: {agreement})")
        origins = sorted(self.durations_from.items())
        lines.append("durations from: " + ", ".join(f"{origin} {count}" for origin, count in origins))
        if self.unreadable_videos:
            lines.append(f"{len(self.unreadable_videos)} videos could not be read under --video-root "
                         f"(first: {self.unreadable_videos[0]})")  # fmt: skip
        if self.caption_rows:
            lines.append(f"{self.caption_rows} clip captions written (config `captions`)")
        return "\n".join(lines)


def _load_json(path: Path, what: str):
    if not path.is_file():
        raise InvalidInputError(f"{path}: no such {what} file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"{path}: the {what} file is not valid JSON ({error})") from error


def _flag(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().rstrip(".").lower() in ("yes", "no"):
        return value.strip().rstrip(".").lower() == "yes"
    raise ValueError(f'must be "Yes" or "No", got {value!r}')


def _ids(value, name: str) -> list[int]:
    if not isinstance(value, list):
        raise ValueError(f"`{name}` must be a list of integers, got {type(value).__name__}")
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise ValueError(f"`{name}` must hold integers >= 0, got {item!r}")
        ids.append(item)
    return sorted(set(ids))


@dataclass
class _Record:
    position: int
    id: str
    video: str
    question: str
    answer: str
    frames: list[int]
    clips: list[int]
    motion: bool
    existence: bool
    raw: dict


def _validate(position: int, record) -> _Record:
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    missing = [name for name in PUBLISHED_FIELDS if name not in record]
    if missing:
        raise ValueError(f"missing fields {missing}")
    for name in ("video", "question", "answer"):
        if not isinstance(record[name], str) or (name != "answer" and not record[name].strip()):
            raise ValueError(f"`{name}` must be a non-empty string, got {record[name]!r}")
    try:
        motion, existence = _flag(record["motion"]), _flag(record["existence"])
    except ValueError as error:
        raise ValueError(f"`motion` / `existence` {error}") from None
    return _Record(position, str(record["id"]), record["video"], record["question"], record["answer"],
                   _ids(record["frame_num"], "frame_num"), _ids(record["clip_num"], "clip_num"), motion, existence,
                   record)  # fmt: skip


def _clip_descriptions(data, path: Path, report: ConversionReport) -> dict[str, list[str]]:
    """`{video: [caption, ...]}` from `{video: [...]}`, `{video: {"clip_description": [...]}}` or a list of
    `{"video", "clip_description"}` records."""
    entries = data.items() if isinstance(data, dict) else (
        ((entry.get("video"), entry) for entry in data) if isinstance(data, list) else None
    )  # fmt: skip
    if entries is None:
        raise InvalidInputError(f"{path}: expected an object mapping videos to clip descriptions, or a list")
    descriptions = {}
    for position, (video, value) in enumerate(entries):
        captions = value.get("clip_description") if isinstance(value, dict) else value
        valid = isinstance(captions, list) and all(isinstance(caption, str) for caption in captions)
        if not isinstance(video, str) or not valid:
            name = f"clip_descriptions:{video if isinstance(video, str) else position}"
            reason = "clip descriptions must be a list of strings per video path"
            report.malformed.append({"id": name, "position": -1, "stage": "convert", "reason": reason})
            continue
        descriptions[video] = captions
    return descriptions


def _choose_clip_base(records: Sequence[_Record], clip_seconds: int, clip_base: str | int) -> tuple[int, float | None]:
    def agreement(base: int) -> float | None:
        inside = total = 0
        for record in records:
            if record.frames and record.clips:
                clips = {clip - base for clip in record.clips}
                inside += sum(frame // clip_seconds in clips for frame in record.frames)
                total += len(record.frames)
        return None if total == 0 else inside / total

    if clip_base != "auto":
        return int(clip_base), agreement(int(clip_base))
    zero, one = agreement(0), agreement(1)
    if zero is None or one is None or zero >= one:
        return 0, zero
    return 1, one


def convert_videoitg_40k(
    annotations: str | Path,
    out: str | Path,
    clip_descriptions: str | Path | None = None,
    video_root: str | Path | None = None,
    clip_seconds: int = 5,
    clip_base: str | int = "auto",
    video_backend: str | None = None,
    progress: bool = True,
) -> ConversionReport:
    from tqdm.auto import tqdm

    from ..video import probe_video

    annotations, out = Path(annotations), Path(out)
    if clip_base not in ("auto", 0, 1, "0", "1"):
        raise InvalidInputError(f"--clip-base must be auto, 0 or 1, got {clip_base!r}")
    data = _load_json(annotations, "annotations")
    if not isinstance(data, list):
        raise InvalidInputError(f"{annotations}: expected a list of records (video_itg_data.json)")
    report = ConversionReport()
    records: list[_Record] = []
    for position, record in enumerate(data):
        try:
            records.append(_validate(position, record))
        except ValueError as error:
            record_id = record.get("id") if isinstance(record, dict) and "id" in record else f"record {position}"
            report.malformed.append({"id": str(record_id), "position": position, "stage": "convert",
                                     "reason": str(error)})  # fmt: skip
    captions = {}
    if clip_descriptions is not None:
        path = Path(clip_descriptions)
        captions = _clip_descriptions(_load_json(path, "clip descriptions"), path, report)
    report.clip_base, report.clip_agreement = _choose_clip_base(records, clip_seconds, clip_base)

    durations: dict[str, tuple[float, str]] = {}
    for video in tqdm(sorted({record.video for record in records}), desc="durations", unit="video",
                      disable=not progress or video_root is None):  # fmt: skip
        if video_root is not None:
            try:
                durations[video] = (probe_video(Path(video_root) / video, backend=video_backend).duration_s, "video")
                continue
            except InvalidInputError:
                report.unreadable_videos.append(video)
        if video in captions:
            durations[video] = (float(len(captions[video]) * clip_seconds), "clip_descriptions")
    rows = []
    for record in records:
        duration, origin = durations.get(record.video, (None, "frame_num"))
        if duration is None:
            duration = float(max(record.frames, default=0) + 1)
        num_frames = grid_length(duration)
        beyond = [frame for frame in record.frames if frame >= num_frames]
        if beyond and origin == "video":
            reason = f"frame ids {beyond[:5]} lie beyond the video's {num_frames} seconds"
            report.malformed.append(
                {"id": record.id, "position": record.position, "stage": "convert", "reason": reason}
            )
            continue
        num_frames = max(num_frames, max(record.frames, default=-1) + 1)
        report.durations_from[origin] = report.durations_from.get(origin, 0) + 1
        labels = [0] * num_frames
        for frame in record.frames:
            labels[frame] = 1
        clips = sorted({clip - report.clip_base for clip in record.clips if clip - report.clip_base >= 0})
        segments: list[list[float]] = []
        for clip in clips:
            start, end = float(clip * clip_seconds), float(min((clip + 1) * clip_seconds, max(duration, num_frames)))
            if segments and math.isclose(segments[-1][1], start):
                segments[-1][1] = end
            else:
                segments.append([start, end])
        options = parse_options(record.question)
        instruction_type = "non_clue" if record.existence else "motion" if record.motion else "semantic"
        extra = {key: value for key, value in record.raw.items() if key not in PUBLISHED_FIELDS}
        rows.append({
            "id": record.id,
            "video": f"{VIDEO_LINK}/{record.video}",
            "video_id": video_id_of(record.video),
            "question": record.question,
            "answer": record.answer,
            "options": list(options),
            "answer_form": "multiple_choice" if options else "open_ended",
            "instruction_type": instruction_type,
            "relevant_clips": clips,
            "relevant_segments": segments,
            "frame_labels": labels,
            "duration_s": float(duration),
            "source": "videoitg-40k",
            "trace": json.dumps({"motion": record.raw["motion"], "existence": record.raw["existence"],
                                 "clip_num": record.raw["clip_num"], "duration_from": origin}, sort_keys=True),
            "extra": json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str),
        })  # fmt: skip
    report.rows = len(rows)
    caption_rows = []
    for video in sorted({record.video for record in records} & set(captions)):
        duration = durations.get(video, (len(captions[video]) * clip_seconds, ""))[0]
        for index, caption in enumerate(captions[video]):
            caption_rows.append({
                "video_id": video_id_of(video), "question_id": None, "clip_index": index,
                "start_s": float(index * clip_seconds), "end_s": float(min((index + 1) * clip_seconds, duration)),
                "key_phrases": "", "caption": caption,
            })  # fmt: skip
    report.caption_rows = len(caption_rows)
    out.mkdir(parents=True, exist_ok=True)
    if video_root is not None:
        link_videos(out, Path(video_root))
    provenance = (f"Converted from the published VideoITG-40K annotations (`{annotations.name}`) with "
                  "`videoitg convert-dataset --from videoitg-40k`; labels come from `frame_num`.")  # fmt: skip
    write_dataset_folder(out, rows, caption_rows, out.name, provenance, report.malformed)
    return report

