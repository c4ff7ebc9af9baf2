"""Model backends: one small chat interface for the text (LLM) and image + text (MLLM) stages.

* `OpenAIChatBackend` — any OpenAI-compatible `/chat/completions` server (vLLM, SGLang, Ollama, a hosted API).
  The API key comes from an environment variable, is sent only in the `Authorization` header, and is scrubbed
  from every error message. At most `concurrency` requests are in flight; 429, 5xx, timeouts and broken
  connections are retried with exponential backoff and jitter, waiting at least what `Retry-After` asks.
  Images travel as base64 JPEG data URLs.
* `TransformersChatBackend` — a local model: `AutoModelForImageTextToText` + `AutoProcessor` for the MLLM stages,
  `AutoModelForCausalLM` + `AutoTokenizer` for the text stages; requests that arrive together are generated as
  one padded batch.

`ModelClient` puts a backend behind the response cache and counts calls, cache hits and tokens per stage.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..video import InvalidInputError
from .cache import ResponseCache, cache_key

logger = logging.getLogger(__name__)

# Statuses worth retrying: rate limiting, request timeout, and server-side failures.
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
# Statuses that say the configuration is wrong (key, URL, model): every later call would fail the same way.
FATAL_STATUSES = {401: "the API key was refused", 403: "access is forbidden", 404: "no such endpoint or model"}


class BackendError(Exception):
    """A request that failed for good (retries exhausted, or a refusal that retrying cannot fix)."""


class FatalBackendError(InvalidInputError):
    """The backend cannot work at all as configured (refused key, unknown model or URL, missing model files)."""


@dataclass(frozen=True)
class ImageInput:
    """An image sent to an MLLM, as JPEG bytes."""

    jpeg: bytes

    @property
    def data_url(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.jpeg).decode("ascii")

    def to_pil(self):
        import io

        from PIL import Image

        return Image.open(io.BytesIO(self.jpeg)).convert("RGB")


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: tuple[str | ImageInput, ...]

    @classmethod
    def user(cls, *parts: str | ImageInput) -> ChatMessage:
        return cls("user", tuple(parts))

    @classmethod
    def assistant(cls, text: str) -> ChatMessage:
        return cls("assistant", (text,))

    @property
    def text(self) -> str:
        return "\n".join(part for part in self.content if isinstance(part, str))

    @property
    def images(self) -> list[ImageInput]:
        return [part for part in self.content if isinstance(part, ImageInput)]


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    max_tokens: int
    temperature: float = 0.0
    stage: str = ""  # for the statistics only; not sent, not part of the cache key

    def openai_payload(self, model: str) -> dict:
        """The body of an OpenAI chat-completions request (also what the cache key is computed from)."""
        messages = []
        for message in self.messages:
            if message.role == "assistant" or not message.images:
                messages.append({"role": message.role, "content": message.text})
                continue
            parts = []
            for part in message.content:
                if isinstance(part, str):
                    parts.append({"type": "text", "text": part})
                else:
                    parts.append({"type": "image_url", "image_url": {"url": part.data_url}})
            messages.append({"role": message.role, "content": parts})
        return {"model": model, "messages": messages, "max_tokens": self.max_tokens, "temperature": self.temperature}


@dataclass
class ChatReply:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False

    def to_dict(self) -> dict:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}

    @classmethod
    def from_dict(cls, data: dict, cached: bool = False) -> ChatReply:
        return cls(data["text"], int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0)), cached)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of `min(max, base * 2**n)` seconds,
    or what the server's `Retry-After` asks when that is longer (up to `max_retry_after_s`)."""

    max_attempts: int = 6
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    max_retry_after_s: float = 600.0

    def delay(self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_delay_s, self.base_delay_s * 2**attempt)
        backoff = ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
        if retry_after_s is not None:
            return max(backoff, min(retry_after_s, self.max_retry_after_s))
        return backoff


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked by a `Retry-After` header: a number of seconds or an HTTP date; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


class ChatBackend:
    """The interface the stages use. `kind` and `model` go into the cache key."""

    kind: str = ""
    model: str = ""
    supports_images: bool = False
    batches: bool = False  # True: requests given together run as one batch (`complete_many`)
    retries: int = 0  # requests repeated after a transient failure (for the progress bar)

    async def complete(self, request: ChatRequest) -> ChatReply:
        raise NotImplementedError

    async def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Only for backends with `batches = True`: answers in order, a `BackendError` in place of a failure."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.kind}:{self.model}"

    async def aclose(self) -> None:
        pass


class OpenAIChatBackend(ChatBackend):
    """OpenAI-compatible chat completions over HTTP (aiohttp)."""

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        supports_images: bool = True,
        seed: int | None = None,
    ):
        if not base_url or not base_url.startswith(("http://", "https://")):
            raise InvalidInputError(f"base URL must start with http:// or https://, got {base_url!r}")
        if not model:
            raise InvalidInputError("a model name is needed for an OpenAI-compatible server")
        if concurrency < 1:
            raise InvalidInputError(f"concurrency must be >= 1, got {concurrency}")
        if timeout_s <= 0:
            raise InvalidInputError(f"timeout must be > 0 seconds, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        # Read once, kept only here; never logged, never part of a cache key, scrubbed from error messages.
        self._api_key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not self._api_key:
            logger.info("environment variable %s is not set: requests to %s carry no API key", api_key_env, base_url)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.supports_images = supports_images
        self._rng = random.Random(seed)
        self._slots: asyncio.Semaphore | None = None
        self._client = None
        self.retries = 0

    def __repr__(self) -> str:
        return f"OpenAIChatBackend(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

    def describe(self) -> str:
        return f"{self.model} at {self.base_url}"

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text

    def _http(self):
        if self._client is None:
            import aiohttp

            headers = {"Content-Type": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            self._client = aiohttp.ClientSession(
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.concurrency),
            )
            self._slots = asyncio.Semaphore(self.concurrency)
        return self._client

    async def complete(self, request: ChatRequest) -> ChatReply:
        import aiohttp

        client = self._http()
        payload = request.openai_payload(self.model)
        url = f"{self.base_url}/chat/completions"
        problem = ""
        for attempt in range(self.retry.max_attempts):
            retry_after = None
            async with self._slots:  # the slot is held only while the request is in flight, not while waiting
                try:
                    async with client.post(url, json=payload) as response:
                        status, body = response.status, await response.text()
                        retry_after = parse_retry_after(response.headers.get("Retry-After"))
                except asyncio.TimeoutError:
                    problem = f"no answer within {self.timeout_s:g} s"
                except aiohttp.ClientError as error:
                    problem = f"connection failed ({type(error).__name__}: {error})"
                else:
                    if status == 200:
                        reply = self._parse(body)
                        if isinstance(reply, ChatReply):
                            return reply
                        problem = reply
                    elif status in FATAL_STATUSES:
                        raise FatalBackendError(
                            f"{url} (model {self.model!r}): HTTP {status}, {FATAL_STATUSES[status]}: "
                            f"{self._scrub(body[:300])}"
                        )
                    elif status in RETRYABLE_STATUSES:
                        problem = f"HTTP {status}: {body[:200]}"
                    else:
                        raise BackendError(self._scrub(f"HTTP {status} from {url}: {body[:300]}"))
            if attempt + 1 < self.retry.max_attempts:
                self.retries += 1
                wait = self.retry.delay(attempt, retry_after, self._rng)
                logger.info("retrying %s request in %.2f s (%s)", request.stage or "chat", wait, self._scrub(problem))
                await asyncio.sleep(wait)
        raise BackendError(self._scrub(f"{self.retry.max_attempts} attempts failed, last: {problem}"))

    def _parse(self, text: str) -> ChatReply | str:
        """The reply, or why the body is unusable (a server answering 200 with garbage is retried)."""
        try:
            body = json.loads(text)
            content = body["choices"][0]["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return f"malformed response body: {text[:200]!r}"
        if not isinstance(content, str):
            return f"message content is not text: {str(content)[:200]!r}"
        usage = body.get("usage") or {}
        return ChatReply(content, int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class TransformersChatBackend(ChatBackend):
    """A local transformers model. Requests given together (`complete_many`) are generated as padded batches of
    at most `max_batch_size`; one generation runs at a time, in a worker thread so the event loop keeps going."""

    kind = "transformers"
    batches = True

    def __init__(
        self,
        model_path: str,
        images: bool,
        device: str | None = None,
        dtype: str = "auto",
        max_batch_size: int = 8,
    ):
        import torch
        import transformers

        self.model = str(model_path)
        self.supports_images = images
        self.max_batch_size = max(1, int(max_batch_size))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = asyncio.Lock()
        try:
            if images:
                self.processor = transformers.AutoProcessor.from_pretrained(self.model)
                self.network = transformers.AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
                tokenizer = self.processor.tokenizer
            else:
                self.processor = transformers.AutoTokenizer.from_pretrained(self.model)
                self.network = transformers.AutoModelForCausalLM.from_pretrained(self.model, dtype=dtype)
                tokenizer = self.processor
        except (OSError, ValueError) as error:
            role = "image-text-to-text" if images else "causal language"
            raise FatalBackendError(f"{self.model}: cannot load a {role} model ({error})") from error
        if getattr(self.processor, "chat_template", None) is None and tokenizer.chat_template is None:
            raise FatalBackendError(f"{self.model}: the model has no chat template")
        # Decoder-only batched generation needs the prompts aligned on the right.
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.network.eval().to(self.device)
        self.generate_calls = 0  # batches generated (fewer than requests when batching works)

    def describe(self) -> str:
        return f"{self.model} (transformers, {self.device})"

    def _conversation(self, request: ChatRequest) -> list[dict]:
        conversation = []
        for message in request.messages:
            if self.supports_images and message.role != "assistant":
                parts = [
                    {"type": "text", "text": part} if isinstance(part, str)
                    else {"type": "image", "image": part.to_pil()}
                    for part in message.content
                ]  # fmt: skip
                conversation.append({"role": message.role, "content": parts})
            else:
                if message.images:
                    raise BackendError(f"{self.model} is a text model and cannot read images")
                conversation.append({"role": message.role, "content": message.text})
        return conversation

    def _generate(self, batch: Sequence[ChatRequest]) -> list[ChatReply]:
        import torch

        conversations = [self._conversation(request) for request in batch]
        options = {"add_generation_prompt": True, "tokenize": True, "return_dict": True, "return_tensors": "pt"}
        if self.supports_images:
            inputs = self.processor.apply_chat_template(conversations, processor_kwargs={"padding": True}, **options)
        else:
            inputs = self.processor.apply_chat_template(conversations, padding=True, **options)
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        temperature = batch[0].temperature
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        self.generate_calls += 1
        with torch.no_grad():
            output = self.network.generate(
                **inputs, max_new_tokens=batch[0].max_tokens, pad_token_id=self.tokenizer.pad_token_id, **sampling
            )
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        replies = []
        for row, tokens in enumerate(new_tokens):
            text = self.tokenizer.decode(tokens, skip_special_tokens=True).strip()
            generated = tokens[tokens != self.tokenizer.pad_token_id]
            prompt_tokens = int(inputs["attention_mask"][row].sum())
            replies.append(ChatReply(text, prompt_tokens, int(generated.numel())))
        return replies

    async def complete(self, request: ChatRequest) -> ChatReply:
        result = (await self.complete_many([request]))[0]
        if isinstance(result, BackendError):
            raise result
        return result

    async def complete_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        results: list[ChatReply | BackendError | None] = [None] * len(requests)
        # One batch shares max_new_tokens and sampling settings.
        groups: dict[tuple[int, float], list[int]] = {}
        for index, request in enumerate(requests):
            groups.setdefault((request.max_tokens, request.temperature), []).append(index)
        for indices in groups.values():
            for start in range(0, len(indices), self.max_batch_size):
                chunk = indices[start : start + self.max_batch_size]
                async with self._lock:
                    try:
                        replies = await asyncio.to_thread(self._generate, [requests[i] for i in chunk])
                    except BackendError as error:
                        replies = [error] * len(chunk)
                for index, reply in zip(chunk, replies):
                    results[index] = reply
        return results


# ------------------------------------------------------------------------------------------ client with the cache
@dataclass
class StageCounts:
    calls: int = 0  # requests answered by the backend
    cached: int = 0  # requests answered from the cache
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failed_calls: int = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class CallStats:
    stages: dict[str, StageCounts] = field(default_factory=dict)

    def stage(self, name: str) -> StageCounts:
        return self.stages.setdefault(name, StageCounts())

    def total(self) -> StageCounts:
        total = StageCounts()
        for counts in self.stages.values():
            for name in ("calls", "cached", "prompt_tokens", "completion_tokens", "failed_calls"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
        return total


class ModelClient:
    """A backend behind the response cache; counts what happened per stage in `stats`."""

    def __init__(self, backend: ChatBackend, cache: ResponseCache | None, stats: CallStats):
        self.backend = backend
        self.cache = cache
        self.stats = stats

    def key(self, request: ChatRequest) -> str:
        return cache_key(self.backend.kind, request.openai_payload(self.backend.model))

    async def chat(self, request: ChatRequest) -> ChatReply:
        result = (await self.chat_many([request]))[0]
        if isinstance(result, BackendError):
            raise result
        return result

    async def chat_many(self, requests: Sequence[ChatRequest]) -> list[ChatReply | BackendError]:
        """Replies in order; cached ones are not asked again. A failed request gives its `BackendError`.

        Each reply is stored in the cache the moment it arrives (not when the whole group is done), so a process
        killed half-way through a group repeats none of the calls that were answered.
        """
        results: list[ChatReply | BackendError | None] = [None] * len(requests)
        keys = [self.key(request) for request in requests]
        missing = []
        for index, (request, key) in enumerate(zip(requests, keys)):
            stored = self.cache.get(key) if self.cache is not None else None
            if stored is not None:
                results[index] = ChatReply.from_dict(stored, cached=True)
                self.stats.stage(request.stage).cached += 1
            else:
                missing.append(index)
        if not missing:
            return results

        def record(index: int, answer: ChatReply | BackendError) -> None:
            counts = self.stats.stage(requests[index].stage)
            if isinstance(answer, BackendError):
                counts.failed_calls += 1
            else:
                if self.cache is not None:
                    self.cache.put(keys[index], answer.to_dict())
                counts.calls += 1
                counts.prompt_tokens += answer.prompt_tokens
                counts.completion_tokens += answer.completion_tokens
            results[index] = answer

        if self.backend.batches:
            answers = await self.backend.complete_many([requests[i] for i in missing])
            for index, answer in zip(missing, answers):
                record(index, answer)
        else:

            async def ask(index: int) -> None:
                try:
                    answer = await self.backend.complete(requests[index])
                except BackendError as error:
                    answer = error
                record(index, answer)

            await asyncio.gather(*(ask(index) for index in missing))
        return results
