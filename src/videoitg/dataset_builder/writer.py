"""The output: a Hub-format dataset folder that `datasets.load_dataset(DIR)` reads.

```
DIR/
  README.md                              dataset card: YAML `configs` (default, captions), schema, statistics
  data/train-00000-of-00001.parquet      config `default`: one row per question (schema below)
  captions/train-00000-of-00001.parquet  config `captions`: one row per clip caption
  videos -> VIDEO_ROOT                   a link to the videos (rows say `videos/<path>`); never uploaded
  failures.jsonl                         questions that could not be annotated, with the stage and reason
  .videoitg/                             journal, response cache, log and manifest of `videoitg annotate`
```

Row schema (config `default`): `id`, `video` (path relative to the folder), `video_id`, `question`, `answer`,
`options`, `answer_form` (multiple_choice | open_ended), `instruction_type` (semantic | motion | semantic_motion |
non_clue), `relevant_clips` (0-based 5-second clip indices), `relevant_segments` ([[start_s, end_s]] of those
clips), `frame_labels` (0/1 per second of video), `duration_s`, `source`, `trace` (JSON: how the labels were
obtained) and `extra` (JSON: fields of the input that have no column).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..video import InvalidInputError

SPLIT = "train"
WORK_DIR = ".videoitg"
MANIFEST = "manifest.json"
FAILURES = "failures.jsonl"
VIDEO_LINK = "videos"
ROW_COLUMNS = (
    "id", "video", "video_id", "question", "answer", "options", "answer_form", "instruction_type", "relevant_clips",
    "relevant_segments", "frame_labels", "duration_s", "source", "trace", "extra",
)  # fmt: skip
CAPTION_COLUMNS = ("video_id", "question_id", "clip_index", "start_s", "end_s", "key_phrases", "caption")


def row_features():
    from datasets import Features, List, Value

    return Features({
        "id": Value("string"), "video": Value("string"), "video_id": Value("string"), "question": Value("string"),
        "answer": Value("string"), "options": List(Value("string")), "answer_form": Value("string"),
        "instruction_type": Value("string"), "relevant_clips": List(Value("int32")),
        "relevant_segments": List(List(Value("float64"))), "frame_labels": List(Value("int8")),
        "duration_s": Value("float64"), "source": Value("string"), "trace": Value("string"), "extra": Value("string"),
    })  # fmt: skip


def caption_features():
    from datasets import Features, Value

    return Features({
        "video_id": Value("string"), "question_id": Value("string"), "clip_index": Value("int32"),
        "start_s": Value("float64"), "end_s": Value("float64"), "key_phrases": Value("string"),
        "caption": Value("string"),
    })  # fmt: skip


# ------------------------------------------------------------------------------------------------- statistics
@dataclass
class DatasetStatistics:
    num_videos: int
    num_queries: int
    mean_duration_s: float
    by_type: dict[str, int]
    by_answer_form: dict[str, int]
    mean_positive_frames: float
    mean_positive_share: float
    mean_relevant_clips: float

    @classmethod
    def of(cls, rows: Sequence[Mapping]) -> DatasetStatistics:
        durations = {row["video_id"]: row["duration_s"] for row in rows if row.get("duration_s") is not None}
        positives = [sum(row["frame_labels"]) for row in rows]
        shares = [sum(row["frame_labels"]) / len(row["frame_labels"]) for row in rows if row["frame_labels"]]

        def mean(values) -> float:
            values = list(values)
            return float(sum(values) / len(values)) if values else 0.0

        return cls(
            num_videos=len({row["video_id"] for row in rows}),
            num_queries=len(rows),
            mean_duration_s=mean(durations.values()),
            by_type=dict(sorted(Counter(row["instruction_type"] for row in rows).items())),
            by_answer_form=dict(sorted(Counter(row["answer_form"] for row in rows).items())),
            mean_positive_frames=mean(positives),
            mean_positive_share=mean(shares),
            mean_relevant_clips=mean(len(row["relevant_clips"]) for row in rows),
        )

    def markdown(self, name: str) -> str:
        def count(value: int) -> str:
            return f"{value / 1000:.1f}K" if value >= 10_000 else str(value)

        lines = [
            "Counted as Table 1 of the VideoITG paper counts datasets:",
            "",
            "| Dataset | # Videos | # Queries | Avg. Duration | Instructed? |",
            "|---|---:|---:|---:|:---:|",
            f"| {name} | {count(self.num_videos)} | {count(self.num_queries)} | {self.mean_duration_s:.0f}s | Yes |",
            "",
            "| Instruction type | Questions | Share |",
            "|---|---:|---:|",
        ]
        for kind, number in self.by_type.items():
            lines.append(f"| {kind} | {number} | {number / max(1, self.num_queries):.1%} |")
        lines += ["", "| Answer form | Questions |", "|---|---:|"]
        lines += [f"| {form} | {number} |" for form, number in self.by_answer_form.items()]
        lines += [
            "",
            f"Frames labelled relevant per question: {self.mean_positive_frames:.1f} on average "
            f"({self.mean_positive_share:.1%} of the video); relevant clips per question: "
            f"{self.mean_relevant_clips:.2f}.",
        ]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ card
def dataset_card(
    name: str,
    statistics: DatasetStatistics,
    provenance: str,
    data_files: Sequence[str],
    caption_files: Sequence[str] = (),
    num_failures: int | None = None,
) -> str:
    """The README: YAML `configs` listing the Parquet files by name, usage, fields and statistics.

    Files are listed by their content-hashed names rather than by a glob: `datasets` caches a local folder under
    its folder name and its config patterns only, so two folders called `out` with the same glob would share (and
    serve each other's stale) cache entries.
    """
    configs = ["configs:", "- config_name: default", "  default: true", "  data_files:", f"  - split: {SPLIT}",
               "    path:", *(f"    - {path}" for path in data_files)]  # fmt: skip
    if caption_files:
        configs += ["- config_name: captions", "  data_files:", f"  - split: {SPLIT}", "    path:",
                    *(f"    - {path}" for path in caption_files)]  # fmt: skip
    tags = ["tags:", "- video", "- temporal-grounding", "- frame-selection", "- videoitg"]
    header = "\n".join(["---", *configs, "task_categories:", "- video-text-to-text", *tags, "---"])
    failures = ""
    if num_failures is not None:
        failures = f"\n{num_failures} questions could not be annotated (see `failures.jsonl`)."
    captions = (
        '\nClip captions: `load_dataset(DIR, "captions")` — `video_id`, `question_id` (empty when the captions are '
        "shared by every question of the video), `clip_index`, `start_s`, `end_s`, `key_phrases`, `caption`.\n"
        if caption_files else ""
    )  # fmt: skip
    captions_snippet = f'\ncaptions = load_dataset("{name}", "captions", split="{SPLIT}")' if caption_files else ""
    return f"""{header}

# {name}

Instruction-guided temporal grounding annotations in the format of VideoITG-40K (VideoITG, arXiv:2507.13353):
for every question about a video, which seconds of the video hold the evidence.

{provenance}{failures}

## Loading

```python
from datasets import load_dataset

questions = load_dataset("{name}", split="{SPLIT}")  # this folder, or the Hub id it was pushed to{captions_snippet}
```

`video` is a path relative to the dataset folder (`videos/...`): put (or link) the video files there. Datasets
pushed with `--embed-videos` carry the video bytes instead.

## Fields

| Field | Meaning |
|---|---|
| `id` | question id |
| `video`, `video_id` | the video file and its id |
| `question`, `answer`, `options`, `answer_form` | the QA pair; `answer_form` is `multiple_choice` or `open_ended` |
| `instruction_type` | `semantic`, `motion`, `semantic_motion` or `non_clue` (section 3.2 of the paper) |
| `relevant_clips` | 0-based indices of the 5-second clips that answer the question |
| `relevant_segments` | `[start_s, end_s]` of those clips (adjacent clips merged) |
| `frame_labels` | one 0/1 per second of video (frame `i` is second `[i, i + 1)`): the frames to select |
| `duration_s` | video duration in seconds |
| `source` | where the question comes from |
| `trace` | JSON: how the labels were obtained |
| `extra` | JSON: input fields without a column |
{captions}
## Statistics

{statistics.markdown(name)}
"""


# ----------------------------------------------------------------------------------------------------- writing
def _write_parquet_files(rows: Sequence[Mapping], features, folder: Path, max_rows_per_file: int) -> list[str]:
    """Parquet files of at most `max_rows_per_file` rows, named `train-00000-of-00002-<content hash>.parquet`;
    returns their names."""
    import hashlib

    from datasets import Dataset

    folder.mkdir(parents=True)
    num_files = max(1, -(-len(rows) // max_rows_per_file))
    names = []
    for index in range(num_files):
        chunk = rows[index * max_rows_per_file : (index + 1) * max_rows_per_file]
        columns = {name: [row[name] for row in chunk] for name in features}
        temporary = folder / f"{SPLIT}-{index:05d}.tmp"
        Dataset.from_dict(columns, features=features).to_parquet(str(temporary))
        digest = hashlib.sha256(temporary.read_bytes()).hexdigest()[:12]
        names.append(f"{SPLIT}-{index:05d}-of-{num_files:05d}-{digest}.parquet")
        os.replace(temporary, folder / names[-1])
    return names


def _replace(target: Path, staged: Path | None) -> None:
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    if staged is not None:
        os.replace(staged, target)


def write_dataset_folder(
    out: str | Path,
    rows: Sequence[Mapping],
    caption_rows: Sequence[Mapping],
    name: str,
    provenance: str,
    failures: Sequence[Mapping] | None = None,
    max_rows_per_file: int = 100_000,
) -> DatasetStatistics:
    """Write (or rewrite) the Parquet files, `failures.jsonl` and the card of a dataset folder.

    Files are written under `.videoitg/staging` first and moved into place, so a folder is never left half
    written by a killed process (a rerun writes it again).
    """
    out = Path(out)
    for row in rows:
        missing = [column for column in ROW_COLUMNS if column not in row]
        if missing:
            raise InvalidInputError(f"row {row.get('id')!r} lacks the columns {missing}")
    staging = out / WORK_DIR / "staging"
    if staging.exists():
        shutil.rmtree(staging)
    data_files = _write_parquet_files(rows, row_features(), staging / "data", max_rows_per_file)
    caption_files = []
    if caption_rows:
        caption_files = _write_parquet_files(caption_rows, caption_features(), staging / "captions", max_rows_per_file)
    statistics = DatasetStatistics.of(rows)
    card = dataset_card(
        name, statistics, provenance, [f"data/{file}" for file in data_files],
        [f"captions/{file}" for file in caption_files], None if failures is None else len(failures),
    )  # fmt: skip
    (staging / "README.md").write_text(card, encoding="utf-8")
    if failures is not None:
        with open(staging / FAILURES, "w", encoding="utf-8") as handle:
            for failure in failures:
                handle.write(json.dumps(failure, ensure_ascii=False) + "\n")
    _replace(out / "data", staging / "data")
    _replace(out / "captions", staging / "captions" if caption_rows else None)
    _replace(out / FAILURES, staging / FAILURES if failures is not None else None)
    os.replace(staging / "README.md", out / "README.md")
    shutil.rmtree(staging)
    return statistics


def link_videos(out: Path, video_root: Path) -> None:
    """Make `out/videos` point at the video root (rows name videos as `videos/<path>`)."""
    link = out / VIDEO_LINK
    target = video_root.resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return
        link.unlink()
    elif link.exists():
        if link.resolve() != target:
            raise InvalidInputError(f"{link} exists and is not a link to the video root {target}")
        return
    link.symlink_to(target, target_is_directory=True)


def read_rows(folder: str | Path, config: str = "default") -> list[dict]:
    """The rows of a dataset folder written here (Parquet read directly: no `datasets` cache involved)."""
    import pyarrow.parquet as pq

    subfolder = "data" if config == "default" else config
    files = sorted((Path(folder) / subfolder).glob(f"{SPLIT}-*.parquet"))
    if not files:
        if config == "default":
            raise InvalidInputError(
                f"{folder}: no data/{SPLIT}-*.parquet files (not a dataset folder written by videoitg)"
            )
        return []
    rows = []
    for path in files:
        rows.extend(pq.read_table(path).to_pylist())
    return rows


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / WORK_DIR / MANIFEST
    if not path.is_file():
        raise InvalidInputError(f"{folder}: no {WORK_DIR}/{MANIFEST} (not an output folder of videoitg annotate)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(folder: str | Path, manifest: Mapping) -> None:
    path = Path(folder) / WORK_DIR / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(temporary, path)


def read_failures(folder: str | Path) -> list[dict]:
    path = Path(folder) / FAILURES
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
