"""The VidThinker stages: typed inputs, typed outputs, one prompt template each.

1. `type_instruction` — Table 9 (speed?) and Table 10 (existence answered "no"?) of the paper, and for speed
   questions our `instruction_static_details` prompt, give the instruction type:
   existence answered "no" -> `non_clue`; speed -> `semantic_motion` when static details are also needed, else
   `motion`; otherwise `semantic`. (Retrieval can still make a question `non_clue`: when it names no clip, or
   every clip for a semantic question — a question about the whole video.)
2. `extract_key_phrases` — k = LLM(q, a).
3. `caption_clips` — c_i = MLLM(k, v_i) for every clip in temporal order; each caption sees only its own frames,
   with the previous caption as context.
4. `retrieve_clips` — Table 8: the clips needed to answer, as `"One clip: [Clip-2]"`, `"Multiple clips: [...]"` or
   `"None."` inside a JSON dictionary.
5. `localize_frames` — a yes/no MLLM judgement for every candidate frame (one batch).

Replies are parsed leniently (code fences, prose around the JSON, Python-dict quoting, "Yes." / "**No**"). A reply
that still cannot be parsed is asked again once with the reply and the problem (`repair_reply`), and then the
question fails with a `StageFailure` that says why; nothing is silently dropped.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

from .backends import BackendError, ChatMessage, ChatReply, ChatRequest, ImageInput, ModelClient
from .media import Clip
from .prompts import PromptSet

T = TypeVar("T")


class StageFailure(Exception):
    """A question that cannot be annotated: `stage` and a readable `reason` go into the journal."""

    def __init__(self, stage: str, reason: str):
        self.stage = stage
        self.reason = reason
        super().__init__(f"{stage}: {reason}")


class ReplyFormatError(ValueError):
    """A model reply that does not follow the asked format."""


@dataclass(frozen=True)
class StageSettings:
    """Generation settings of the stages (part of the run's fingerprint)."""

    typing_max_tokens: int = 16
    key_phrases_max_tokens: int = 128
    caption_max_tokens: int = 192
    retrieval_max_tokens: int = 512
    relevance_max_tokens: int = 16
    temperature: float = 0.0
    parse_retries: int = 1  # repair requests after an unparseable reply

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class QuestionText:
    question: str
    answer: str


# --------------------------------------------------------------------------------------------------- parsing
_MARKUP = re.compile(r"[*_`#>\"'“”‘’]")


def parse_yes_no(text: str) -> bool:
    """True for a "yes" reply, False for "no" (lenient about case, punctuation, markdown and "Output: ...")."""
    cleaned = _MARKUP.sub(" ", text).lower()
    labelled = re.search(r"\b(?:output|answer)\s*:\s*(yes|no)\b", cleaned)
    if labelled:
        return labelled.group(1) == "yes"
    words = re.findall(r"[a-z]+", cleaned)
    if words and words[0] in ("yes", "no"):
        return words[0] == "yes"
    found = {word for word in words if word in ("yes", "no")}
    if len(found) == 1:
        return found.pop() == "yes"
    raise ReplyFormatError('expected "Yes" or "No"')


def extract_json_object(text: str) -> dict | None:
    """The first JSON (or Python-literal) dictionary in `text`, ignoring code fences and prose around it."""
    unfenced = re.sub(r"```[a-zA-Z]*", "", text)
    decoder = json.JSONDecoder()
    for start in (match.start() for match in re.finditer(r"\{", unfenced)):
        try:
            value, _ = decoder.raw_decode(unfenced[start:])
        except json.JSONDecodeError:
            end = unfenced.find("}", start)
            while end != -1:
                try:
                    value = ast.literal_eval(unfenced[start : end + 1])
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    end = unfenced.find("}", end + 1)
                    continue
                break
            else:
                continue
        if isinstance(value, dict):
            return value
    return None


@dataclass(frozen=True)
class ClipRetrieval:
    clips: list[int]  # 0-based clip indices, sorted; empty for "None."
    kind: str  # "one" | "multiple" | "none"
    explanation: str
    clipnum: str  # the model's own words

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClipRetrieval:
        return cls(list(data["clips"]), data["kind"], data["explanation"], data["clipnum"])


def _clip_numbers(words: str) -> list[int]:
    """`Clip-n` numbers in `words`, or its bare numbers when it names no `Clip-n` ("[2, 3]")."""
    lowered = words.lower()
    numbers = re.findall(r"clip[\s_-]*(\d+)", lowered) or re.findall(r"\d+", lowered)
    return [int(number) for number in numbers]


def parse_clip_retrieval(text: str, num_clips: int) -> ClipRetrieval:
    """Read Table 8's answer: `{"explanation": ..., "clipnum": "One clip: [Clip-2]" | "Multiple clips: [...]" |
    "None."}`. Clip numbers in the reply are 1-based."""
    data = extract_json_object(text)
    if data is None:
        if re.fullmatch(r"\W*none\W*", text.strip().lower()):
            return ClipRetrieval([], "none", "", text.strip())
        raise ReplyFormatError('no JSON dictionary with "explanation" and "clipnum" found')
    clipnum = next((data[key] for key in ("clipnum", "clip_num", "clips", "clip") if key in data), None)
    if clipnum is None:
        raise ReplyFormatError('the dictionary has no "clipnum" field')
    explanation = str(data.get("explanation", ""))
    if isinstance(clipnum, (list, tuple)):
        words = ", ".join(str(value) for value in clipnum)
        numbers = [number for value in clipnum for number in _clip_numbers(str(value))]
    elif isinstance(clipnum, (str, int)):
        words = str(clipnum)
        numbers = _clip_numbers(words)
    else:
        raise ReplyFormatError(f'"clipnum" must be a string or a list, got {clipnum!r}')
    if not numbers:
        if "none" in words.lower():
            return ClipRetrieval([], "none", explanation, words)
        raise ReplyFormatError(f'"clipnum" names no clip: {words!r}')
    bad = sorted({n for n in numbers if not 1 <= n <= num_clips})
    if bad:
        raise ReplyFormatError(f"clip numbers {bad} do not exist (the clips are Clip-1 to Clip-{num_clips})")
    clips = sorted({n - 1 for n in numbers})
    return ClipRetrieval(clips, "one" if len(clips) == 1 else "multiple", explanation, words)


# ------------------------------------------------------------------------------------------- asking with repair
def _failure_reason(error: BackendError) -> str:
    return f"model call failed: {error}"


async def _repair(
    client: ModelClient,
    prompts: PromptSet,
    request: ChatRequest,
    reply: ChatReply,
    parse: Callable[[str], T],
    settings: StageSettings,
    stage: str,
) -> T:
    """Parse `reply`; when that fails, ask again (up to `parse_retries` times) showing the reply and the problem."""
    for attempt in range(settings.parse_retries + 1):
        try:
            return parse(reply.text)
        except ReplyFormatError as problem:
            if attempt == settings.parse_retries:
                raise StageFailure(
                    stage,
                    f"unparseable reply after {attempt + 1} attempts ({problem}); last reply: {reply.text[:300]!r}",
                ) from problem
            repair = prompts["repair_reply"].render(problem=str(problem))
            request = ChatRequest(
                request.messages + (ChatMessage.assistant(reply.text), ChatMessage.user(repair)),
                request.max_tokens, request.temperature, request.stage,
            )  # fmt: skip
            try:
                reply = await client.chat(request)
            except BackendError as error:
                raise StageFailure(stage, _failure_reason(error)) from error
    raise AssertionError("unreachable")


async def ask(
    client: ModelClient, prompts: PromptSet, request: ChatRequest, parse: Callable[[str], T], settings: StageSettings
) -> T:
    try:
        reply = await client.chat(request)
    except BackendError as error:
        raise StageFailure(request.stage, _failure_reason(error)) from error
    return await _repair(client, prompts, request, reply, parse, settings, request.stage)


async def ask_many(
    client: ModelClient,
    prompts: PromptSet,
    requests: Sequence[ChatRequest],
    parse: Callable[[str], T],
    settings: StageSettings,
) -> list[T]:
    """Ask all requests as one group (batched by local backends), then repair each unparseable reply."""
    replies = await client.chat_many(requests)
    for reply in replies:
        if isinstance(reply, BackendError):
            raise StageFailure(requests[0].stage, _failure_reason(reply))
    return list(
        await asyncio.gather(
            *(_repair(client, prompts, request, reply, parse, settings, request.stage)
              for request, reply in zip(requests, replies))
        )
    )  # fmt: skip


def _text_request(text: str, max_tokens: int, settings: StageSettings, stage: str) -> ChatRequest:
    return ChatRequest((ChatMessage.user(text),), max_tokens, settings.temperature, stage)


# ------------------------------------------------------------------------------------------------------ stages
@dataclass(frozen=True)
class InstructionTyping:
    speed: bool  # Table 9
    nonexistence: bool  # Table 10: an existence question answered "no"
    static_details: bool | None  # asked for speed questions only

    @property
    def instruction_type(self) -> str:
        if self.nonexistence:
            return "non_clue"
        if self.speed:
            return "semantic_motion" if self.static_details else "motion"
        return "semantic"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> InstructionTyping:
        return cls(data["speed"], data["nonexistence"], data["static_details"])


async def type_instruction(
    llm: ModelClient, prompts: PromptSet, qa: QuestionText, settings: StageSettings
) -> InstructionTyping:
    stage, tokens = "typing", settings.typing_max_tokens
    speed_prompt = prompts["instruction_speed"].render(question=qa.question, answer=qa.answer)
    existence_prompt = prompts["instruction_nonexistence"].render(question=qa.question, answer=qa.answer)
    speed, nonexistence = await asyncio.gather(
        ask(llm, prompts, _text_request(speed_prompt, tokens, settings, stage), parse_yes_no, settings),
        ask(llm, prompts, _text_request(existence_prompt, tokens, settings, stage), parse_yes_no, settings),
    )
    static_details = None
    if speed and not nonexistence:
        details_prompt = prompts["instruction_static_details"].render(question=qa.question, answer=qa.answer)
        request = _text_request(details_prompt, tokens, settings, stage)
        static_details = await ask(llm, prompts, request, parse_yes_no, settings)
    return InstructionTyping(speed, nonexistence, static_details)


def _non_empty(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise ReplyFormatError("the reply is empty")
    return cleaned


async def extract_key_phrases(llm: ModelClient, prompts: PromptSet, qa: QuestionText, settings: StageSettings) -> str:
    prompt = prompts["key_phrases"].render(question=qa.question, answer=qa.answer)
    request = _text_request(prompt, settings.key_phrases_max_tokens, settings, "key_phrases")
    return await ask(llm, prompts, request, _non_empty, settings)


async def caption_clips(
    mllm: ModelClient,
    prompts: PromptSet,
    key_phrases: str,
    clips: Sequence[Clip],
    images: Sequence[ImageInput],
    settings: StageSettings,
    frames_per_clip: int | None = None,
) -> list[str]:
    """One caption per clip, in temporal order (each request carries the previous caption as context)."""
    captions: list[str] = []
    for clip in clips:
        frames = list(clip.frames)
        if frames_per_clip is not None and len(frames) > frames_per_clip:
            step = len(frames) / frames_per_clip
            frames = [frames[int(i * step + step / 2)] for i in range(frames_per_clip)]
        prompt = prompts["clip_caption"].render(
            clip_number=clip.index + 1, num_clips=len(clips), start_s=f"{clip.start_s:g}", end_s=f"{clip.end_s:g}",
            key_phrases=key_phrases, previous_caption=captions[-1] if captions else "(this is the first clip)",
        )  # fmt: skip
        message = ChatMessage.user(*(images[frame] for frame in frames), prompt)
        request = ChatRequest((message,), settings.caption_max_tokens, settings.temperature, "captions")
        captions.append(await ask(mllm, prompts, request, _non_empty, settings))
    return captions


async def retrieve_clips(
    llm: ModelClient, prompts: PromptSet, qa: QuestionText, captions: Sequence[str], settings: StageSettings
) -> ClipRetrieval:
    descriptions = "\n".join(f"Clip-{number}: {caption}" for number, caption in enumerate(captions, 1))
    prompt = prompts["clip_retrieval"].render(clip_descriptions=descriptions, question=qa.question, answer=qa.answer)
    request = _text_request(prompt, settings.retrieval_max_tokens, settings, "retrieval")
    return await ask(llm, prompts, request, lambda text: parse_clip_retrieval(text, len(captions)), settings)


async def localize_frames(
    mllm: ModelClient,
    prompts: PromptSet,
    qa: QuestionText,
    candidates: Sequence[int],
    images: Sequence[ImageInput],
    settings: StageSettings,
) -> list[int]:
    """The candidate frames the MLLM judges relevant ("yes"), sorted."""
    prompt = prompts["frame_relevance"].render(question=qa.question, answer=qa.answer)
    requests = [
        ChatRequest((ChatMessage.user(images[frame], prompt),), settings.relevance_max_tokens, settings.temperature,
                    "localization")  # fmt: skip
        for frame in candidates
    ]
    verdicts = await ask_many(mllm, prompts, requests, parse_yes_no, settings)
    return sorted(frame for frame, relevant in zip(candidates, verdicts) if relevant)
