"""`videoitg annotate`: VidThinker over a QA file, journaled, resumable, sharded.

For each video of the shard (at most `videos_in_flight` decoded at once) and each of its pending questions:

    typing -> [key_phrases -> captions -> retrieval -> localization] -> frame sampling -> row

Existence questions answered "no" skip the bracketed stages; `non_clue` retrievals (no clip, or every clip) and
`motion` questions skip localization. Every stage result is journaled (`journal.Journal`) and every model reply
cached (`cache.ResponseCache`) the moment it exists, so `kill -9` at any point loses nothing and a rerun of the
same command repeats nothing. With `caption_scope="video"` the clips of a video are captioned once, guided by the
key phrases of all its questions (as the published `all_clip_desc.json` is per video), instead of once per
question as in the paper's k = LLM(q, a), c_i = MLLM(k, v_i).

The serving engine scales the models; this module only keeps `concurrency` requests in flight per backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..video import InvalidInputError
from .backends import (
    CallStats,
    ChatBackend,
    FatalBackendError,
    ModelClient,
    OpenAIChatBackend,
    RetryPolicy,
    TransformersChatBackend,
)
from .cache import ResponseCache
from .journal import PENDING, Journal
from .media import Clip, VideoAssets, grid_length, load_video_assets
from .prompts import PromptSet, load_prompts
from .qa import QAItem, file_sha256, read_qa_file, select_shard
from .sampling import clip_segments, labels_of, sample_frames
from .stages import (
    ClipRetrieval,
    InstructionTyping,
    QuestionText,
    StageFailure,
    StageSettings,
    caption_clips,
    extract_key_phrases,
    localize_frames,
    retrieve_clips,
    type_instruction,
)
from .writer import VIDEO_LINK, WORK_DIR, link_videos, write_dataset_folder, write_manifest

logger = logging.getLogger("videoitg.dataset_builder")

STAGES = ("typing", "key_phrases", "captions", "retrieval", "localization")


@dataclass(frozen=True)
class BackendSpec:
    """How to reach one model. `kind` is "openai" (`base_url` needed) or "transformers" (`model` is a path)."""

    kind: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"

    def identity(self) -> dict:
        # What decides the answers: the server address and the key do not.
        return {"kind": self.kind, "model": self.model}


@dataclass
class AnnotateConfig:
    qa_file: Path
    video_root: Path
    out: Path
    llm: BackendSpec
    mllm: BackendSpec
    concurrency: int = 8
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    num_shards: int = 1
    shard_index: int = 0
    clip_seconds: int = 5
    caption_scope: str = "question"  # "question" (the paper) | "video"
    frames_per_clip: int | None = None  # frames shown per caption request (all 1-fps frames of the clip by default)
    image_size: int = 448
    jpeg_quality: int = 90
    diverse_frames: int = 4
    keyframe_encoder: str | None = None
    max_video_seconds: int = 1800
    video_backend: str | None = None
    videos_in_flight: int | None = None
    prompts_dir: Path | None = None
    cache_path: Path | None = None
    stage_settings: StageSettings = field(default_factory=StageSettings)
    retry_failed: bool = False
    device: str | None = None
    progress: bool = True

    def validate(self) -> None:
        if self.caption_scope not in ("question", "video"):
            raise InvalidInputError(f"--caption-scope must be 'question' or 'video', got {self.caption_scope!r}")
        for name in ("concurrency", "clip_seconds", "image_size", "diverse_frames", "max_video_seconds"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if not 1 <= self.jpeg_quality <= 100:
            raise InvalidInputError(f"--jpeg-quality must be in [1, 100], got {self.jpeg_quality}")
        if not self.video_root.is_dir():
            raise InvalidInputError(f"{self.video_root}: --video-root is not a folder")
        for spec in (self.llm, self.mllm):
            if spec.kind not in ("openai", "transformers"):
                raise InvalidInputError(f"backend must be 'openai' or 'transformers', got {spec.kind!r}")
            if spec.kind == "openai" and not spec.base_url:
                raise InvalidInputError(f"model {spec.model!r}: an OpenAI-compatible backend needs a --*-base-url")

    def settings(self, qa_sha256: str, prompts: PromptSet) -> dict:
        """What the journal checks on resume: everything that changes the annotations."""
        return {
            "qa_sha256": qa_sha256,
            "num_shards": self.num_shards,
            "shard_index": self.shard_index,
            "llm": self.llm.identity(),
            "mllm": self.mllm.identity(),
            "clip_seconds": self.clip_seconds,
            "caption_scope": self.caption_scope,
            "frames_per_clip": self.frames_per_clip,
            "image_size": self.image_size,
            "jpeg_quality": self.jpeg_quality,
            "diverse_frames": self.diverse_frames,
            "keyframe_encoder": self.keyframe_encoder,
            "max_video_seconds": self.max_video_seconds,
            "prompts": prompts.fingerprints(),
            "stage_settings": self.stage_settings.as_dict(),
        }


@dataclass
class AnnotateResult:
    out: Path
    done: int
    failed: int
    pending: int
    stats: CallStats
    elapsed_s: float
    failures: list[dict]


# ---------------------------------------------------------------------------------------------------- backends
def build_backend(spec: BackendSpec, images: bool, config: AnnotateConfig) -> ChatBackend:
    if spec.kind == "openai":
        return OpenAIChatBackend(spec.base_url, spec.model, spec.api_key_env, config.concurrency, config.timeout_s,
                                 config.retry, supports_images=images)  # fmt: skip
    return TransformersChatBackend(spec.model, images=images, device=config.device)


def build_clients(config: AnnotateConfig, cache: ResponseCache, stats: CallStats) -> tuple[ModelClient, ModelClient]:
    mllm = build_backend(config.mllm, images=True, config=config)
    # One local model loaded once when it serves both roles (an image-text model answers text prompts too).
    same_local_model = config.llm.kind == config.mllm.kind == "transformers" and config.llm.model == config.mllm.model
    llm = mllm if same_local_model else build_backend(config.llm, images=False, config=config)
    return ModelClient(llm, cache, stats), ModelClient(mllm, cache, stats)


# --------------------------------------------------------------------------------------------------- the work
@dataclass
class _Prepared:
    item: QAItem
    typing: InstructionTyping
    key_phrases: str | None  # None: the question needs no captions


class Annotator:
    """Runs the stages for the pending questions of one shard, journaling as it goes."""

    def __init__(self, config: AnnotateConfig, journal: Journal, prompts: PromptSet, llm: ModelClient,
                 mllm: ModelClient, encoder=None):  # fmt: skip
        self.config = config
        self.journal = journal
        self.prompts = prompts
        self.llm = llm
        self.mllm = mllm
        self.encoder = encoder
        self.settings = config.stage_settings
        self.failed = 0
        self._bar = None

    # ---------------------------------------------------------------------------------------------- helpers
    async def _stage(self, unit: str, name: str, run, decode):
        stored = self.journal.stage_result(unit, name)
        if stored is not None:
            return decode(stored)
        result = await run()
        self.journal.save_stage(unit, name, result.to_dict() if hasattr(result, "to_dict") else result)
        return result

    def _fail(self, item: QAItem, stage: str, reason: str) -> None:
        self.journal.fail(item.id, stage, reason)
        logger.warning("question %s failed at %s: %s", item.id, stage, reason)
        self.failed += 1
        self._advance()

    def _advance(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    # ------------------------------------------------------------------------------------------------ stages
    async def _prepare(self, item: QAItem) -> _Prepared | None:
        qa = QuestionText(item.question, item.answer)
        try:
            typing = await self._stage(item.id, "typing",
                                       lambda: type_instruction(self.llm, self.prompts, qa, self.settings),
                                       InstructionTyping.from_dict)  # fmt: skip
            key_phrases = None
            if not typing.nonexistence:
                stored = await self._stage(
                    item.id, "key_phrases",
                    lambda: _as_record(extract_key_phrases(self.llm, self.prompts, qa, self.settings), "key_phrases"),
                    lambda stored: stored,
                )  # fmt: skip
                key_phrases = stored["key_phrases"]
        except StageFailure as failure:
            self._fail(item, failure.stage, failure.reason)
            return None
        return _Prepared(item, typing, key_phrases)

    async def _captions(self, unit: str, video_id: str, key_phrases: str, assets: VideoAssets, clips: list[Clip]):
        async def run():
            captions = await caption_clips(self.mllm, self.prompts, key_phrases, clips, assets.images, self.settings,
                                           self.config.frames_per_clip)  # fmt: skip
            return {
                "video_id": video_id,
                "question_id": None if unit.startswith("video:") else unit,
                "key_phrases": key_phrases,
                "clips": [{"index": clip.index, "start_s": clip.start_s, "end_s": clip.end_s, "caption": caption}
                          for clip, caption in zip(clips, captions)],  # fmt: skip
            }

        stored = await self._stage(unit, "captions", run, lambda data: data)
        return [clip["caption"] for clip in stored["clips"]]

    async def _finish(self, prepared: _Prepared, assets: VideoAssets, clips: list[Clip], video_captions) -> None:
        item, typing = prepared.item, prepared.typing
        qa = QuestionText(item.question, item.answer)
        trace: dict = {"typing": typing.to_dict()}
        instruction_type = typing.instruction_type
        retrieved: list[Clip] = []
        relevant = None
        try:
            if not typing.nonexistence:
                trace["key_phrases"] = prepared.key_phrases
                if video_captions is None:
                    captions = await self._captions(item.id, item.video_id, prepared.key_phrases, assets, clips)
                else:
                    captions = video_captions
                retrieval = await self._stage(
                    item.id, "retrieval", lambda: retrieve_clips(self.llm, self.prompts, qa, captions, self.settings),
                    ClipRetrieval.from_dict,
                )  # fmt: skip
                trace["retrieval"] = {"clipnum": retrieval.clipnum, "explanation": retrieval.explanation}
                retrieved = [clips[index] for index in retrieval.clips]
                # No clip holds a clue, or a semantic question is about the whole video (every clip retrieved):
                # a small diverse set of frames. Motion over the whole video keeps every frame.
                whole_video = len(clips) > 1 and len(retrieved) == len(clips)
                if not retrieved or (whole_video and instruction_type == "semantic"):
                    instruction_type = "non_clue"
                elif instruction_type in ("semantic", "semantic_motion"):
                    candidates = sorted(frame for clip in retrieved for frame in clip.frames)
                    stored = await self._stage(
                        item.id, "localization",
                        lambda: _as_record(localize_frames(self.mllm, self.prompts, qa, candidates, assets.images,
                                                           self.settings), "relevant_frames"),
                        lambda stored: stored,
                    )  # fmt: skip
                    relevant = stored["relevant_frames"]
                    trace["relevant_frames"] = relevant
        except StageFailure as failure:
            self._fail(item, failure.stage, failure.reason)
            return
        sampled = sample_frames(instruction_type, assets.features, retrieved, relevant, self.config.diverse_frames)
        trace["rule"] = sampled.rule
        if sampled.note:
            trace["note"] = sampled.note
        row = {
            "id": item.id,
            # Relative to the dataset folder, through its `videos` link to the video root (absolute paths stay).
            "video": item.video if Path(item.video).is_absolute() else f"{VIDEO_LINK}/{item.video}",
            "video_id": item.video_id,
            "question": item.question,
            "answer": item.answer,
            "options": list(item.options),
            "answer_form": item.answer_form,
            "instruction_type": instruction_type,
            "relevant_clips": [clip.index for clip in retrieved],
            "relevant_segments": clip_segments(retrieved),
            "frame_labels": labels_of(sampled.frames, assets.num_frames),
            "duration_s": assets.duration_s,
            "source": item.source or "vidthinker",
            "trace": json.dumps(trace, ensure_ascii=False, sort_keys=True),
            "extra": "{}",
        }
        self.journal.finish(item.id, row)
        self._advance()

    async def _video(self, video: str, items: list[QAItem], slots: asyncio.Semaphore) -> None:
        async with slots:
            path = self.config.video_root / video
            try:
                assets = await asyncio.to_thread(
                    load_video_assets, path, self.config.image_size, self.config.jpeg_quality,
                    self.config.max_video_seconds, self.encoder, self.config.video_backend,
                )  # fmt: skip
            except InvalidInputError as error:
                for item in items:
                    self._fail(item, "decode", str(error))
                return
            clips = assets.clips(self.config.clip_seconds)
            prepared = [p for p in await asyncio.gather(*(self._prepare(item) for item in items)) if p is not None]
            video_captions = None
            needing = [p for p in prepared if p.key_phrases is not None]
            if self.config.caption_scope == "video" and needing:
                # Every question's cues, in QA-file order, guide one captioning pass over the video.
                cues = " ".join(p.key_phrases for p in sorted(needing, key=lambda p: p.item.position))
                try:
                    video_captions = await self._captions(f"video:{items[0].video_id}", items[0].video_id, cues,
                                                          assets, clips)  # fmt: skip
                except StageFailure as failure:
                    for p in needing:
                        self._fail(p.item, failure.stage, failure.reason)
                    prepared = [p for p in prepared if p.key_phrases is None]
            await asyncio.gather(*(self._finish(p, assets, clips, video_captions) for p in prepared))

    async def run(self, pending: Sequence[QAItem], stats: CallStats) -> None:
        by_video: dict[str, list[QAItem]] = {}
        for item in pending:
            by_video.setdefault(item.video, []).append(item)
        slots = asyncio.Semaphore(self.config.videos_in_flight or max(2, self.config.concurrency))
        backends = {id(client.backend): client.backend for client in (self.llm, self.mllm)}
        with _progress(len(pending), self.config.progress) as bar:
            self._bar = bar

            def show_counts() -> None:
                total = stats.total()
                bar.set_postfix(calls=total.calls, cached=total.cached, tokens=total.tokens,
                                retries=sum(b.retries for b in backends.values()), failed=self.failed,
                                refresh=False)  # fmt: skip

            async def refresh() -> None:
                while True:
                    show_counts()
                    await asyncio.sleep(0.5)

            refresher = asyncio.create_task(refresh())
            try:
                async with asyncio.TaskGroup() as group:
                    for video, items in by_video.items():
                        group.create_task(self._video(video, items, slots))
            except BaseExceptionGroup as group_error:
                # A fatal backend error (refused key, unknown model) stops the run; the journal keeps the work.
                fatal = group_error.subgroup(FatalBackendError)
                raise (fatal.exceptions[0] if fatal else group_error.exceptions[0]) from None
            finally:
                refresher.cancel()
                show_counts()
                for backend in backends.values():
                    await backend.aclose()
            self._bar = None


async def _as_record(awaitable, key: str) -> dict:
    """A stage that returns a plain value, journaled as `{key: value}`."""
    return {key: await awaitable}


class _progress:
    """A tqdm bar (or nothing) usable as a context manager."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled = total, enabled

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, unit="question", desc="annotate", disable=not self.enabled,
                        dynamic_ncols=True)  # fmt: skip
        return self.bar

    def __exit__(self, *exc_info):
        self.bar.close()


# ------------------------------------------------------------------------------------------------- entry points
def _attach_log(out: Path) -> logging.Handler:
    handler = logging.FileHandler(out / WORK_DIR / "annotate.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    package_logger = logging.getLogger("videoitg.dataset_builder")
    package_logger.addHandler(handler)
    package_logger.setLevel(logging.INFO)
    return handler


def _caption_rows(journal: Journal, rows: Sequence[dict]) -> list[dict]:
    """Caption rows of the finished questions (and of their videos, in video scope), in QA-file order."""
    caption_rows, seen_videos = [], set()
    for row in rows:
        for unit in (row["id"], f"video:{row['video_id']}"):
            stored = journal.stage_result(unit, "captions")
            if stored is None or (unit.startswith("video:") and unit in seen_videos):
                continue
            seen_videos.add(unit)
            for clip in stored["clips"]:
                caption_rows.append({
                    "video_id": stored["video_id"], "question_id": stored["question_id"], "clip_index": clip["index"],
                    "start_s": clip["start_s"], "end_s": clip["end_s"], "key_phrases": stored["key_phrases"],
                    "caption": clip["caption"],
                })  # fmt: skip
    return caption_rows


def write_outputs(config: AnnotateConfig, journal: Journal, qa_sha256: str, settings: dict) -> list[dict]:
    rows = journal.done_rows()
    failures = journal.failures()
    models = f"LLM `{config.llm.model}` and MLLM `{config.mllm.model}`"
    provenance = (f"Annotated with the VidThinker pipeline (`videoitg annotate`) using {models}, "
                  f"from `{config.qa_file.name}` (shard {config.shard_index} of {config.num_shards}).")  # fmt: skip
    write_dataset_folder(config.out, rows, _caption_rows(journal, rows), config.out.name, provenance, failures)
    write_manifest(config.out, {
        "kind": "annotate",
        "qa_file": str(config.qa_file),
        "qa_sha256": qa_sha256,
        "num_shards": config.num_shards,
        "shard_index": config.shard_index,
        # Shards of one run share every setting but their index.
        "settings_sha256": hashlib.sha256(json.dumps({k: v for k, v in settings.items() if k != "shard_index"},
                                                     sort_keys=True).encode()).hexdigest(),  # fmt: skip
        "video_root": str(config.video_root.resolve()),
        "positions": journal.positions(),
        "counts": journal.counts(),
        "models": {"llm": config.llm.identity(), "mllm": config.mllm.identity()},
    })  # fmt: skip
    return failures


def _load_encoder(config: AnnotateConfig):
    if config.keyframe_encoder is None:
        return None
    from ..selection import PretrainedEncoder

    return PretrainedEncoder(config.keyframe_encoder, device=config.device)


def annotate(config: AnnotateConfig) -> AnnotateResult:
    """Annotate (or resume annotating) one shard of a QA file into `config.out`."""
    config.validate()
    started = time.perf_counter()
    prompts = load_prompts(config.prompts_dir)
    items = select_shard(read_qa_file(config.qa_file), config.num_shards, config.shard_index)
    qa_sha256 = file_sha256(config.qa_file)
    settings = config.settings(qa_sha256, prompts)
    config.out.mkdir(parents=True, exist_ok=True)
    journal = Journal(config.out / WORK_DIR / "journal.sqlite")
    handler = _attach_log(config.out)
    cache = None
    try:
        journal.start(settings, [(item.id, item.position) for item in items])
        if config.retry_failed:
            logger.info("retrying %d failed questions", journal.requeue_failed())
        link_videos(config.out, config.video_root)
        statuses = journal.statuses()
        pending = [item for item in items if statuses[item.id] == PENDING]
        logger.info("shard %d/%d: %d questions, %d pending", config.shard_index, config.num_shards, len(items),
                    len(pending))  # fmt: skip
        cache = ResponseCache(config.cache_path or config.out / WORK_DIR / "cache.sqlite")
        stats = CallStats()
        if pending:
            llm, mllm = build_clients(config, cache, stats)
            logger.info("LLM: %s; MLLM: %s", llm.backend.describe(), mllm.backend.describe())
            annotator = Annotator(config, journal, prompts, llm, mllm, _load_encoder(config))
            asyncio.run(annotator.run(pending, stats))
        failures = write_outputs(config, journal, qa_sha256, settings)
        counts = journal.counts()
        total = stats.total()
        logger.info("done: %d annotated, %d failed; %d calls, %d cached, %d tokens", counts["done"], counts["failed"],
                    total.calls, total.cached, total.tokens)  # fmt: skip
        return AnnotateResult(config.out, counts["done"], counts["failed"], counts[PENDING], stats,
                              time.perf_counter() - started, failures)  # fmt: skip
    finally:
        journal.close()
        if cache is not None:
            cache.close()
        logging.getLogger("videoitg.dataset_builder").removeHandler(handler)
        handler.close()


# ------------------------------------------------------------------------------------------------------ dry run
@dataclass
class StageEstimate:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class DryRunEstimate:
    questions: int
    videos: int
    missing_videos: list[str]
    stages: dict[str, StageEstimate]
    assumptions: list[str]

    def table(self) -> str:
        lines = [f"{self.questions} questions over {self.videos} videos"
                 + (f" ({len(self.missing_videos)} videos missing or unreadable)" if self.missing_videos else ""),
                 "", f"{'stage':<14}{'calls':>10}{'prompt tokens':>16}{'completion tokens':>20}"]  # fmt: skip
        total = StageEstimate()
        for name, estimate in self.stages.items():
            lines.append(
                f"{name:<14}{estimate.calls:>10,}{estimate.prompt_tokens:>16,}{estimate.completion_tokens:>20,}"
            )
            total.calls += estimate.calls
            total.prompt_tokens += estimate.prompt_tokens
            total.completion_tokens += estimate.completion_tokens
        lines.append(f"{'total':<14}{total.calls:>10,}{total.prompt_tokens:>16,}{total.completion_tokens:>20,}")
        lines += ["", "Assumptions:"] + [f"  - {text}" for text in self.assumptions]
        return "\n".join(lines)


def _text_tokens(text: str) -> int:
    # About 4 characters per token for English text with common tokenizers.
    return math.ceil(len(text) / 4)


def _image_tokens(width: int, height: int, image_size: int) -> int:
    # Qwen2-VL-style accounting: one token per 28 x 28 pixels of the resized image.
    scale = min(1.0, image_size / max(width, height))
    return math.ceil(width * scale / 28) * math.ceil(height * scale / 28)


def dry_run(config: AnnotateConfig, assumed_retrieved_clips: int = 2) -> DryRunEstimate:
    """Calls and tokens per stage for the pending questions of the shard, without calling any model."""
    from ..video import probe_video

    config.validate()
    prompts = load_prompts(config.prompts_dir)
    items = select_shard(read_qa_file(config.qa_file), config.num_shards, config.shard_index)
    journal_path = config.out / WORK_DIR / "journal.sqlite"
    if journal_path.exists():
        journal = Journal(journal_path)
        statuses = journal.statuses()
        journal.close()
        items = [item for item in items if statuses.get(item.id, PENDING) == PENDING]
    settings = config.stage_settings
    stages = {name: StageEstimate() for name in STAGES}
    missing: list[str] = []
    by_video: dict[str, list[QAItem]] = {}
    for item in items:
        by_video.setdefault(item.video, []).append(item)
    caption_template = prompts["clip_caption"].body
    for video, video_items in by_video.items():
        try:
            metadata = probe_video(config.video_root / video, backend=config.video_backend)
        except InvalidInputError:
            missing.append(video)
            continue
        num_frames = grid_length(metadata.duration_s)
        num_clips = math.ceil(num_frames / config.clip_seconds)
        per_image = _image_tokens(metadata.width, metadata.height, config.image_size)
        frames_per_clip = min(config.clip_seconds, config.frames_per_clip or config.clip_seconds)
        caption_prompt = _text_tokens(caption_template) + settings.caption_max_tokens + frames_per_clip * per_image
        caption_passes = 1 if config.caption_scope == "video" else len(video_items)
        stages["captions"].calls += caption_passes * num_clips
        stages["captions"].prompt_tokens += caption_passes * num_clips * caption_prompt
        stages["captions"].completion_tokens += caption_passes * num_clips * settings.caption_max_tokens
        for item in video_items:
            qa_tokens = _text_tokens(item.question + item.answer)
            for name in ("instruction_speed", "instruction_nonexistence", "instruction_static_details"):
                stages["typing"].calls += 1
                stages["typing"].prompt_tokens += _text_tokens(prompts[name].body) + qa_tokens
                stages["typing"].completion_tokens += 2
            stages["key_phrases"].calls += 1
            stages["key_phrases"].prompt_tokens += _text_tokens(prompts["key_phrases"].body) + qa_tokens
            stages["key_phrases"].completion_tokens += settings.key_phrases_max_tokens // 2
            stages["retrieval"].calls += 1
            stages["retrieval"].prompt_tokens += (_text_tokens(prompts["clip_retrieval"].body) + qa_tokens
                                                  + num_clips * settings.caption_max_tokens)  # fmt: skip
            stages["retrieval"].completion_tokens += settings.retrieval_max_tokens // 2
            candidates = min(num_frames, assumed_retrieved_clips * config.clip_seconds)
            stages["localization"].calls += candidates
            stages["localization"].prompt_tokens += candidates * (
                _text_tokens(prompts["frame_relevance"].body) + qa_tokens + per_image
            )
            stages["localization"].completion_tokens += candidates * 2
    assumptions = [
        "typing: at most 3 calls per question (the third only for speed questions)",
        f"localization: {assumed_retrieved_clips} clips retrieved per question, every frame judged (upper bound: "
        "motion and non-clue questions skip this stage)",
        "completions: captions use their full max tokens; key phrases and retrieval half of theirs",
        f"text: 4 characters per token; images: one token per 28 x 28 pixels at --image-size {config.image_size}",
        "no reply needs a repair request and no request is retried",
    ]
    return DryRunEstimate(len(items), len(by_video), missing, stages, assumptions)

