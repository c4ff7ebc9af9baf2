"""The `videoitg` lmms-eval model: VideoITG frame selection in front of any lmms-eval video model.

lmms-eval hands a model `Instance`s whose arguments carry a callable that turns a document into its visuals:
`doc_to_visual(doc)` (simple models) or `doc_to_messages(doc)` (chat models). This wrapper builds, for each request,
the same callable with every video path replaced by the selected frames: a short video file that holds exactly the
k selected frames, in temporal order (`frames_as=video`, the default), or k images (`frames_as=images`). The wrapped
model then loads, samples and prompts as it always does. Set its frame count to k (done for you when it has a known
frame-count argument, see `FRAME_COUNT_ARGS`) and a uniform sampler returns exactly the k frames.

Modes (`mode=`):
* `select` (default): select with the VideoITG model, answer with the wrapped model, record the selection.
* `write`: stage one: select and record to `frame_indices=PATH`; no answering model needed (`wrapped` may be left
  out: the answers are then empty strings, run lmms-eval with `--predict_only`).
* `read`: stage two: take the frames recorded in `frame_indices=PATH`; the selector is not loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
import time
from pathlib import Path

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from ..video import InvalidInputError
from .frame_indices import FrameIndexWriter, read_frame_indices, shard_path
from .frames import FrameFiles, RecordedFrames, SelectedFrames, SelectorFrames

MODES = ("select", "write", "read")
DEFAULT_TOP_K = 8
FRAMES_AS = ("video", "images")
# Model arguments with this prefix go to the wrapped model: `wrapped.pretrained=...` -> `pretrained=...`.
WRAPPED_PREFIX = "wrapped."
# lmms-eval passes these (from --batch_size / --device) to every model; the wrapped model gets them too.
FORWARDED_ARGS = ("batch_size", "max_batch_size", "device")
# Frame-count arguments of lmms-eval models; with match_frames the first one the wrapped model takes is set to top_k.
FRAME_COUNT_ARGS = (
    "max_frames_num", "max_num_frames", "num_frames", "nframes", "max_frames", "max_frame_num", "num_frm",
    "video_max_frames",
)  # fmt: skip
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv", ".mpg", ".mpeg", ".ts", ".3gp")
# Placeholders some tasks put in the prompt for the model; they mean nothing to the selector.
PROMPT_PLACEHOLDERS = ("<image>", "<video>")
DEFAULT_CACHE = Path(os.environ.get("VIDEOITG_CACHE", Path.home() / ".cache" / "videoitg")) / "lmms_eval"


class PluginArgumentError(InvalidInputError):
    """A model argument of the `videoitg` lmms-eval model that is missing or wrong."""


def _is_video_path(visual) -> bool:
    return isinstance(visual, str) and visual.lower().endswith(VIDEO_EXTENSIONS)


def _stable(value):
    """JSON stand-in for document values json cannot write: content hashes, never memory addresses."""
    if isinstance(value, (bytes, bytearray)):
        return "bytes:" + hashlib.sha1(value).hexdigest()
    if hasattr(value, "tobytes"):  # numpy arrays, PIL images
        size = getattr(value, "shape", None) or getattr(value, "size", None)
        return f"{type(value).__name__}:{size}:" + hashlib.sha1(value.tobytes()).hexdigest()
    text = repr(value)
    return type(value).__name__ if " at 0x" in text else f"{type(value).__name__}:{text}"  # no addresses


def doc_key(doc) -> str:
    """A document's identity by content. The wrapped model calls `doc_to_visual` with a document only (and may
    apply the first request's callable to every document of a batch), so the swap is keyed by the document itself."""
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=_stable).encode()).hexdigest()


class _SwapTable:
    """document key -> {source video path: files of its selected frames}, filled before the wrapped model runs."""

    def __init__(self, frames_as: str):
        self.frames_as = frames_as
        self.files: dict[str, dict[str, list[str]]] = {}

    def _replacement(self, files: list[str]) -> list:
        if self.frames_as == "video":
            return list(files)
        from PIL import Image

        return [Image.open(path).convert("RGB") for path in files]  # opened when the model asks: bounded memory

    def swaps(self, key: str) -> dict[str, list[str]]:
        if key not in self.files:
            # Every document of the batch was prepared: a miss means the document changed between two reads.
            raise RuntimeError(
                "videoitg: the wrapped model asked for a document that was not prepared (its content differs from "
                "when it was read); refusing to pass the unselected video on"
            )
        return self.files[key]

    def visuals(self, key: str, visuals):
        """A doc_to_visual result with each selected video replaced by its frames."""
        swaps = self.swaps(key)
        if isinstance(visuals, str) and visuals in swaps:
            replaced = self._replacement(swaps[visuals])
            return replaced[0] if self.frames_as == "video" else replaced
        if not isinstance(visuals, (list, tuple)):
            return visuals
        out = []
        for visual in visuals:
            out.extend(self._replacement(swaps[visual]) if isinstance(visual, str) and visual in swaps else [visual])
        return out

    def messages(self, key: str, messages):
        """A doc_to_messages result (chat models) with each selected video item replaced by its frames."""
        swaps = self.swaps(key)
        if not isinstance(messages, list):
            return messages
        out = []
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, list):
                out.append(message)
                continue
            items = []
            for item in content:
                url = item.get("url") if isinstance(item, dict) and item.get("type") == "video" else None
                if isinstance(url, str) and url in swaps:
                    kind = "video" if self.frames_as == "video" else "image"
                    items.extend({"type": kind, "url": visual} for visual in self._replacement(swaps[url]))
                else:
                    items.append(item)
            out.append({**message, "content": items})
        return out


class _SwappedDocToVisual:
    """Stands in for a request's doc_to_visual: the original result, selected videos replaced."""

    def __init__(self, original, table: _SwapTable):
        self.original, self.table = original, table

    def __call__(self, doc, *args, **kwargs):
        return self.table.visuals(doc_key(doc), self.original(doc, *args, **kwargs))


class _SwappedDocToMessages:
    """Stands in for a chat request's doc_to_messages (also called per round, with round keywords)."""

    def __init__(self, original, table: _SwapTable):
        self.original, self.table = original, table

    def __call__(self, doc, *args, **kwargs):
        result = self.original(doc, *args, **kwargs)
        key = doc_key(doc)
        if isinstance(result, tuple) and result and isinstance(result[0], list):  # a later round: (messages, ...)
            return (self.table.messages(key, result[0]), *result[1:])
        return self.table.messages(key, result)


class _SwappedDocToText:
    """Multi-round doc_to_text returns (visuals, text, terminal, outputs, info) each round: swap the visuals."""

    def __init__(self, original, table: _SwapTable):
        self.original, self.table = original, table

    def __call__(self, doc, *args, **kwargs):
        result = self.original(doc, *args, **kwargs)
        if isinstance(result, tuple) and len(result) == 5:
            return (self.table.visuals(doc_key(doc), result[0]), *result[1:])
        return result


def _layout(request: Instance, is_simple: bool) -> dict[int, type]:
    """Argument positions of a request's callables to swap, by request type (see lmms_eval.api.task)."""
    if not is_simple:  # chat: (ctx, doc_to_messages, gen_kwargs, doc_id, task, split)
        return {1: _SwappedDocToMessages}
    if request.request_type == "generate_until_multi_round":
        # (ctx, gen_kwargs, doc_to_visual, doc_to_text, doc_id, task, split)
        return {2: _SwappedDocToVisual, 3: _SwappedDocToText}
    # generate_until: (ctx, gen_kwargs, doc_to_visual, doc_id, task, split)
    # loglikelihood: (ctx, continuation, doc_to_visual, doc_id, task, split)
    return {2: _SwappedDocToVisual}


def _request_place(request: Instance) -> tuple[int, str, str]:
    doc_id, task, split = request.args[-3:]
    return int(doc_id), task, split


class VideoITGWrapper(lmms):
    """lmms-eval model `videoitg`: select frames with VideoITG, answer with a wrapped lmms-eval model.

    Model arguments (`--model_args`, comma separated):
        wrapped: name of the lmms-eval model that answers (`llava_hf`, `qwen2_5_vl`, ...); an `lmms` instance works
            too when building the model in Python. Optional with mode=write.
        wrapped.<arg>: an argument of the wrapped model (`wrapped.pretrained=...`, `wrapped.device_map=cpu`).
        selector: VideoITG model folder or Hub id (default: the embedded demo model).
        top_k: frames handed to the wrapped model (default 8; mode=read: the recorded selections').
        candidates: candidate frames scored per video, at most (default: the selector's max_frames).
        sample_fps: candidate frame rate (default: the selector's sample_fps, 1 fps).
        mode: select | write | read (see the module docstring).
        frame_indices: the frame_indices.jsonl to write (select, write) or read (read).
        frames_as: video | images: how the frames reach the wrapped model (default video).
        clip_dir: where the frame files go (default ~/.cache/videoitg/lmms_eval/clips, $VIDEOITG_CACHE).
        clip_fps: frame rate of the written clips (default 1: fps-based samplers at >= 1 fps keep every frame).
        clip_crf: H.264 quality of the clips (default 0: lossless).
        match_frames: set the wrapped model's frame count to top_k (default true).
        question_field: document field scored as the question (default: the prompt the task builds).
        selector_device: device of the selector (default: --device, else cuda when available, else cpu).
    """

    is_simple = True

    def __init__(
        self,
        wrapped: str | lmms | None = None,
        selector: str | None = None,
        top_k: int | None = None,
        candidates: int | None = None,
        sample_fps: float | None = None,
        mode: str = "select",
        frame_indices: str | None = None,
        frames_as: str = "video",
        clip_dir: str | None = None,
        clip_fps: float = 1.0,
        clip_crf: int = 0,
        match_frames: bool = True,
        question_field: str | None = None,
        selector_device: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        prefixed = [key for key in kwargs if key.startswith(WRAPPED_PREFIX)]
        wrapped_args = {key[len(WRAPPED_PREFIX) :]: kwargs[key] for key in prefixed}
        forwarded = {key: value for key, value in kwargs.items() if key in FORWARDED_ARGS and value is not None}
        unknown = sorted(set(kwargs) - set(FORWARDED_ARGS) - set(prefixed))
        if unknown:
            raise PluginArgumentError(
                f"unknown model argument(s) {', '.join(unknown)}; arguments of the wrapped model take the prefix "
                f"'{WRAPPED_PREFIX}' (e.g. {WRAPPED_PREFIX}{unknown[0]}=...)"
            )
        self.mode = self._check_mode(mode, wrapped, frame_indices)
        records = read_frame_indices(frame_indices) if self.mode == "read" else None
        self.top_k = self._resolve_top_k(top_k, records, frame_indices)
        if candidates is not None and self._positive_int("candidates", candidates) < self.top_k:
            raise PluginArgumentError(f"candidates ({candidates}) must be at least top_k ({self.top_k})")
        if sample_fps is not None and (isinstance(sample_fps, bool) or not isinstance(sample_fps, (int, float))
                                       or sample_fps <= 0):  # fmt: skip
            raise PluginArgumentError(f"sample_fps must be a number > 0, got {sample_fps!r}")
        if frames_as not in FRAMES_AS:
            raise PluginArgumentError(f"frames_as must be one of {', '.join(FRAMES_AS)}, got {frames_as!r}")
        if isinstance(clip_fps, bool) or not isinstance(clip_fps, (int, float)) or clip_fps <= 0:
            raise PluginArgumentError(f"clip_fps must be a number > 0, got {clip_fps!r}")
        if isinstance(clip_crf, bool) or not isinstance(clip_crf, int) or not 0 <= clip_crf <= 51:
            raise PluginArgumentError(f"clip_crf must be an integer from 0 (lossless) to 51, got {clip_crf!r}")
        self.frames_as = frames_as
        self.question_field = question_field

        self._wrapped = self._build_wrapped(wrapped, wrapped_args, forwarded, match_frames)
        if self._wrapped is not None:
            # The evaluator fills lm.task_dict after building the model: share the dict, not a copy.
            self.task_dict = self._wrapped.task_dict
            # Requests are built for the model that answers (a chat-capable name may resolve to a simple class).
            self.is_simple = getattr(self._wrapped, "is_simple", True)

        if records is not None:
            self._source = RecordedFrames(records, source=str(frame_indices))
        else:
            device = selector_device or forwarded.get("device") or _default_device()
            self._source = SelectorFrames.from_pretrained(selector, device, self.top_k, candidates, sample_fps)
            if self._source.scorer.note:
                logger.warning(f"videoitg selector: {self._source.scorer.note}")
        clip_dir = Path(clip_dir) if clip_dir else DEFAULT_CACHE / "clips"
        self._files = FrameFiles(clip_dir, self.frames_as, fps=float(clip_fps), crf=int(clip_crf))
        self._writer = None
        if self.mode != "read":
            if frame_indices is None:
                frame_indices = DEFAULT_CACHE / f"frame_indices-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"
            # Set by accelerate / torchrun; each process of a multi-process run writes its own file.
            rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
            self._writer = FrameIndexWriter(shard_path(frame_indices, rank, world_size))
            logger.info(f"videoitg: recording the selected frames to {self._writer.path}")
        self._recorded: set[tuple[str, int]] = set()

    # ------------------------------------------------------------------------------------------------ set-up
    @staticmethod
    def _check_mode(mode: str, wrapped, frame_indices) -> str:
        if mode not in MODES:
            raise PluginArgumentError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode in ("write", "read") and not frame_indices:
            raise PluginArgumentError(f"mode={mode} needs frame_indices=PATH (the frame_indices.jsonl)")
        if mode != "write" and wrapped is None:
            raise PluginArgumentError(
                f"mode={mode} needs wrapped=<lmms-eval model name> (the model that answers); only mode=write runs "
                "without one"
            )
        return mode

    @classmethod
    def _resolve_top_k(cls, top_k, records, frame_indices) -> int:
        if records is None:
            return cls._positive_int("top_k", DEFAULT_TOP_K if top_k is None else top_k)
        # Stage two shows what stage one selected; top_k only tells the wrapped model how many frames to read.
        recorded = max(record.top_k for record in records.values())
        if top_k is not None and top_k != recorded:
            raise PluginArgumentError(
                f"top_k={top_k}, but {frame_indices} holds selections of top_k={recorded}; leave top_k out in mode=read"
            )
        return recorded

    @staticmethod
    def _positive_int(name: str, value) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise PluginArgumentError(f"{name} must be an integer >= 1, got {value!r}")
        return value

    def _build_wrapped(self, wrapped, wrapped_args: dict, forwarded: dict, match_frames: bool) -> lmms | None:
        if wrapped is None or isinstance(wrapped, lmms):
            if wrapped_args:
                raise PluginArgumentError("wrapped.<arg> arguments need wrapped=<lmms-eval model name>")
            return wrapped
        from lmms_eval.models import get_model

        if wrapped == "videoitg":
            raise PluginArgumentError("wrapped=videoitg would wrap the wrapper; name the model that answers")
        try:
            # A chat wrapper resolves the wrapped model as chat when it has a chat class; --force_simple (which
            # picks VideoITGSimple) resolves it as simple.
            wrapped_class = get_model(wrapped, force_simple=self.is_simple)
        except ValueError as error:
            raise PluginArgumentError(f"wrapped={wrapped}: {error}") from None
        if match_frames and self.frames_as == "video":
            self._match_frame_count(wrapped_class, wrapped_args)
        return wrapped_class(**wrapped_args, **forwarded)

    def _match_frame_count(self, wrapped_class: type, wrapped_args: dict) -> None:
        parameters = inspect.signature(wrapped_class.__init__).parameters
        for name in FRAME_COUNT_ARGS:
            if name not in parameters:
                continue
            if name in wrapped_args:
                if wrapped_args[name] != self.top_k:
                    logger.warning(
                        f"videoitg: {WRAPPED_PREFIX}{name}={wrapped_args[name]} but top_k={self.top_k}: the wrapped "
                        f"model samples {wrapped_args[name]} frames from clips of {self.top_k}"
                    )
            else:
                wrapped_args[name] = self.top_k
                logger.info(f"videoitg: {wrapped_class.__name__}({name}={self.top_k}) so it reads every selected frame")
            return

    # ------------------------------------------------------------------------------------------- selection
    def _question(self, request: Instance, doc: dict) -> str:
        if self.question_field:
            if self.question_field not in doc:
                raise PluginArgumentError(
                    f"question_field={self.question_field}: task {request.task_name!r} documents have no such field "
                    f"(fields: {', '.join(sorted(map(str, doc)))})"
                )
            return str(doc[self.question_field])
        text = request.args[0] if isinstance(request.args[0], str) else ""
        for placeholder in PROMPT_PLACEHOLDERS:
            text = text.replace(placeholder, " ")
        return " ".join(text.split())

    def _videos_of(self, request: Instance, doc: dict) -> list[str]:
        layout = _layout(request, self.is_simple)
        position = min(layout)
        produced = request.args[position](doc)
        if self.is_simple:
            visuals = produced if isinstance(produced, (list, tuple)) else [produced]
            return [visual for visual in visuals if _is_video_path(visual)]
        return [
            item["url"]
            for message in (produced if isinstance(produced, list) else [])
            for item in (message.get("content") or [] if isinstance(message, dict) else [])
            if isinstance(item, dict) and item.get("type") == "video" and _is_video_path(item.get("url"))
        ]

    def _select(self, request: Instance, video: str, doc: dict) -> SelectedFrames:
        doc_id, task, split = _request_place(request)
        if self.mode == "read":
            return self._source.select(video, task, doc_id)
        question = self._question(request, doc)
        if not question:
            raise InvalidInputError(
                f"task {task!r} doc_id {doc_id}: the prompt is empty, nothing to score the frames against "
                "(set question_field=<document field>)"
            )
        return self._source.select(video, question, task, split, doc_id)

    def _prepare(self, requests: list[Instance]) -> list[Instance]:
        """Select (or read) the frames of every request and return requests whose visuals are those frames."""
        table = _SwapTable(self.frames_as)
        prepared = []
        bar = tqdm(requests, desc="VideoITG frame selection", disable=self.rank != 0)
        for request in bar:
            doc_id, task, split = _request_place(request)
            doc = self.task_dict[task][split][doc_id]
            key = doc_key(doc)
            if key not in table.files:
                table.files[key] = {}
                videos = self._videos_of(request, doc)
                if len(videos) > 1:
                    logger.warning(f"videoitg: {task} doc {doc_id} has {len(videos)} videos; passed on unchanged")
                elif videos:
                    selected = self._select(request, videos[0], doc)
                    self._record(selected)
                    if self._wrapped is not None:
                        table.files[key][videos[0]] = self._files.write(selected)
            arguments = list(request.args)
            for position, swap in _layout(request, self.is_simple).items():
                arguments[position] = swap(arguments[position], table)
            prepared.append(dataclasses.replace(request, arguments=tuple(arguments)))
        bar.close()
        return prepared

    def _record(self, selected: SelectedFrames) -> None:
        record = selected.record
        if self._writer is not None and record.key not in self._recorded:
            self._writer.write(record)
            self._recorded.add(record.key)

    # ------------------------------------------------------------------------------------------ lmms API
    def _run(self, method: str, requests: list[Instance], write_only_result):
        prepared = self._prepare(requests)
        if self._wrapped is None:
            # Stage one without an answering model: the selection is recorded; there is nothing to answer with.
            return [write_only_result] * len(requests)
        return getattr(self._wrapped, method)(prepared)

    def generate_until(self, requests: list[Instance]) -> list:
        return self._run("generate_until", requests, "")

    def generate_until_multi_round(self, requests: list[Instance]) -> list:
        return self._run("generate_until_multi_round", requests, "")

    def loglikelihood(self, requests: list[Instance]) -> list:
        return self._run("loglikelihood", requests, (float("-inf"), False))

    def set_cache_hook(self, cache_hook) -> None:
        super().set_cache_hook(cache_hook)
        if self._wrapped is not None:
            self._wrapped.set_cache_hook(cache_hook)

    def clean(self):
        if self._writer is not None:
            self._writer.close()
            logger.info(f"videoitg: wrote {len(self._recorded)} selections to {self._writer.path}")
            self._writer = None
        self._source = None  # frees the selector
        if self._wrapped is not None:
            self._wrapped.clean()
        else:
            super().clean()

    @property
    def wrapped(self) -> lmms | None:
        return self._wrapped

    def __getattr__(self, name: str):
        # Everything else the evaluator asks of a model (device, accelerator, batch_size, tokenizer, chat_template)
        # is the wrapped model's. Only called for names not found on the wrapper itself.
        wrapped = self.__dict__.get("_wrapped")
        if wrapped is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
        return getattr(wrapped, name)


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class VideoITGSimple(VideoITGWrapper):
    """`videoitg` resolved as a simple model (lmms-eval's --force_simple): wraps the simple class of `wrapped`."""

    is_simple = True


class VideoITGChat(VideoITGWrapper):
    """`videoitg` resolved as a chat model (lmms-eval's default): wraps the chat class of `wrapped` when it has one."""

    is_simple = False
