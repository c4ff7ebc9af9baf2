"""Model backends against a real local HTTP server (retries, timeouts, concurrency, images, cache) and tiny local
transformers models."""

from __future__ import annotations

import asyncio
import json
import io
import threading

import pytest

from videoitg.dataset_builder.backends import (
    BackendError,
    CallStats,
    ChatMessage,
    ChatRequest,
    FatalBackendError,
    ImageInput,
    ModelClient,
    OpenAIChatBackend,
    RetryPolicy,
    TransformersChatBackend,
)
from videoitg.dataset_builder.cache import ResponseCache, cache_key
from videoitg.dataset_builder.media import encode_jpeg
from videoitg.dataset_builder.testing import ScriptedChatServer, ScriptedReply, read_second, scripted_frame

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.02, max_delay_s=0.1)
KEY = "sk-test-0123456789-secret"


class SequenceResponder:
    """Answers from a list of replies in order (then the last one forever); records nothing itself."""

    def __init__(self, *replies: ScriptedReply):
        self.replies = list(replies)
        self._lock = threading.Lock()

    def __call__(self, body: dict) -> ScriptedReply:
        with self._lock:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def text_request(text: str = "Say yes.", stage: str = "typing") -> ChatRequest:
    return ChatRequest((ChatMessage.user(text),), max_tokens=8, stage=stage)


def ask(backend, request):
    async def run():
        try:
            return await backend.complete(request)
        finally:
            await backend.aclose()

    return asyncio.run(run())


def test_retries_429_with_retry_after_then_500_then_answers(monkeypatch):
    monkeypatch.setenv("VIDEOITG_TEST_KEY", KEY)
    responder = SequenceResponder(
        ScriptedReply(status=429, headers={"Retry-After": "1"}), ScriptedReply(status=500), ScriptedReply("Yes.")
    )
    with ScriptedChatServer(responder, api_key=KEY) as server:
        backend = OpenAIChatBackend(server.url, "m", "VIDEOITG_TEST_KEY", timeout_s=5, retry=FAST_RETRY)
        reply = ask(backend, text_request())
        times = [entry.received for entry in server.requests]
    assert reply.text == "Yes." and reply.prompt_tokens > 0 and reply.completion_tokens > 0
    assert [entry.status for entry in server.requests] == [429, 500, 200]
    assert times[1] - times[0] >= 1.0  # Retry-After honoured
    assert times[2] - times[1] < 0.5  # the 500 only waits for the (short) backoff
    assert backend.retries == 2
    assert all(entry.authorization == f"Bearer {KEY}" for entry in server.requests)
    assert KEY not in repr(backend)


def test_a_hanging_server_times_out_and_is_retried():
    responder = SequenceResponder(ScriptedReply("late", delay_s=3.0), ScriptedReply("on time"))
    with ScriptedChatServer(responder) as server:
        backend = OpenAIChatBackend(server.url, "m", None, timeout_s=0.4, retry=FAST_RETRY)
        assert ask(backend, text_request()).text == "on time"
        assert len(server.requests) == 2


def test_malformed_bodies_are_retried_then_reported():
    responder = SequenceResponder(ScriptedReply(raw_body="<html>bad gateway</html>"), ScriptedReply("fine"))
    with ScriptedChatServer(responder) as server:
        assert ask(OpenAIChatBackend(server.url, "m", None, retry=FAST_RETRY), text_request()).text == "fine"
    with ScriptedChatServer(SequenceResponder(ScriptedReply(status=503))) as server:
        with pytest.raises(BackendError, match="4 attempts failed, last: HTTP 503"):
            ask(OpenAIChatBackend(server.url, "m", None, retry=FAST_RETRY), text_request())
        assert len(server.requests) == 4


def test_refusals_are_not_retried_and_never_show_the_key(monkeypatch):
    monkeypatch.setenv("VIDEOITG_TEST_KEY", KEY)
    # A server that echoes the key back in its error message.
    echo = SequenceResponder(ScriptedReply(status=400, raw_body=f'{{"error": "bad request for key {KEY}"}}'))
    with ScriptedChatServer(echo) as server:
        with pytest.raises(BackendError) as error:
            ask(OpenAIChatBackend(server.url, "m", "VIDEOITG_TEST_KEY", retry=FAST_RETRY), text_request())
        assert len(server.requests) == 1
    assert "HTTP 400" in str(error.value) and KEY not in str(error.value) and "***" in str(error.value)
    with ScriptedChatServer(SequenceResponder(ScriptedReply("x")), api_key="another-key") as server:
        with pytest.raises(FatalBackendError, match="HTTP 401, the API key was refused"):
            ask(OpenAIChatBackend(server.url, "m", "VIDEOITG_TEST_KEY", retry=FAST_RETRY), text_request())
        assert len(server.requests) == 1


def test_concurrency_is_bounded_and_used():
    with ScriptedChatServer(SequenceResponder(ScriptedReply("ok")), latency_s=0.1) as server:
        backend = OpenAIChatBackend(server.url, "m", None, concurrency=3, retry=FAST_RETRY)
        client = ModelClient(backend, None, CallStats())

        async def run():
            try:
                return await client.chat_many([text_request(f"q{i}") for i in range(12)])
            finally:
                await backend.aclose()

        replies = asyncio.run(run())
        assert all(reply.text == "ok" for reply in replies)
        assert server.max_in_flight == 3
    assert client.stats.stage("typing").calls == 12


def test_images_travel_as_jpeg_data_urls_and_replies_are_cached(tmp_path):
    import torch
    from PIL import Image

    seen = []

    def respond(body):
        url = body["messages"][0]["content"][0]["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        import base64

        image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        seen.append(image.size)
        return ScriptedReply(f"second {read_second(image)}")

    frame = torch.from_numpy(scripted_frame(2, 42)).permute(2, 0, 1)
    request = ChatRequest((ChatMessage.user(ImageInput(encode_jpeg(frame, 90)), "Which second?"),), 8, stage="loc")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    with ScriptedChatServer(respond) as server:
        for attempt in range(2):
            backend = OpenAIChatBackend(server.url, "vision-model", None, retry=FAST_RETRY)
            client = ModelClient(backend, cache, CallStats())
            assert ask_client(client, request).text == "second 42"
        assert len(server.requests) == 1  # the second run was answered by the cache
        assert client.stats.stage("loc").cached == 1
        assert cache_key("openai", server.requests[0].body) == client.key(request)  # the key is the request sent
    assert seen == [(64, 48)]


def ask_client(client, request):
    async def run():
        try:
            return await client.chat(request)
        finally:
            await client.backend.aclose()

    return asyncio.run(run())


def test_bad_backend_settings_are_refused():
    from videoitg.video import InvalidInputError

    with pytest.raises(InvalidInputError, match="http"):
        OpenAIChatBackend("localhost:8000", "m")
    with pytest.raises(InvalidInputError, match="concurrency"):
        OpenAIChatBackend("http://localhost:1", "m", concurrency=0)


# --------------------------------------------------------------------------------------- local transformers
def _word_tokenizer():
    """A word-level tokenizer whose id 0 is "Yes": a model whose logits are all equal then answers "Yes"."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["Yes", "No", "<image>", "<pad>", "<eos>", "[UNK]"] + sorted(set(
        "the a is this frame relevant to question answer clip video describe what happens user assistant "
        "image images are frames of from second in order".split()
    ))  # fmt: skip
    tokenizer = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>",
                                   unk_token="[UNK]", additional_special_tokens=["<image>"])  # fmt: skip
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }} {% if m['content'] is string %}{{ m['content'] }}{% else %}"
        "{% for part in m['content'] %}{% if part['type'] == 'image' %}<image> {% else %}{{ part['text'] }} "
        "{% endif %}{% endfor %}{% endif %} {% endfor %}{% if add_generation_prompt %}assistant {% endif %}"
    )
    return fast


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """A tiny LLaVA (CLIP vision 32 px + Llama) that always answers "Yes", and a random tiny Llama (gibberish)."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlamaForCausalLM,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny_models")
    tokenizer = _word_tokenizer()
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                       bos_token_id=tokenizer.eos_token_id)  # fmt: skip
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8)  # fmt: skip
    torch.manual_seed(0)
    llava = LlavaForConditionalGeneration(LlavaConfig(vision_config=vision, text_config=text,
                                                      image_token_index=tokenizer.convert_tokens_to_ids("<image>")))
    with torch.no_grad():  # equal logits everywhere: greedy decoding picks id 0, "Yes"
        llava.lm_head.weight.zero_()
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default",
        chat_template=tokenizer.chat_template, num_additional_image_tokens=1,
    )  # fmt: skip
    llava.save_pretrained(folder / "mllm")
    processor.save_pretrained(folder / "mllm")
    LlamaForCausalLM(text).save_pretrained(folder / "llm")
    tokenizer.save_pretrained(folder / "llm")
    return {"mllm": str(folder / "mllm"), "llm": str(folder / "llm")}


def test_local_image_text_model_answers_batches_with_images(tiny_models):
    import torch

    backend = TransformersChatBackend(tiny_models["mllm"], images=True, device="cpu", max_batch_size=2)
    frames = [ImageInput(encode_jpeg(torch.from_numpy(scripted_frame(1, s)).permute(2, 0, 1), 90)) for s in range(3)]
    one_image = [ChatRequest((ChatMessage.user(frame, "Is this frame relevant?"),), 4) for frame in frames]
    two_images = ChatRequest((ChatMessage.user(frames[0], frames[1], "Is this frame relevant?"),), 4)
    text_only = ChatRequest((ChatMessage.user("Is this frame relevant?"),), 4)

    replies = asyncio.run(backend.complete_many([*one_image, two_images, text_only]))
    assert [reply.text for reply in replies] == ["Yes Yes Yes Yes"] * 5
    assert backend.generate_calls == 3  # 5 requests in padded batches of at most 2
    assert all(reply.completion_tokens == 4 for reply in replies)
    # Each image adds its 16 patch tokens to the prompt.
    assert replies[3].prompt_tokens - replies[0].prompt_tokens == 16
    assert replies[0].prompt_tokens - replies[4].prompt_tokens == 16


def test_local_text_model_generates_and_reports_tokens(tiny_models):
    backend = TransformersChatBackend(tiny_models["llm"], images=False, device="cpu")
    requests = [ChatRequest((ChatMessage.user(text),), 5) for text in ("the question", "what happens in the video")]
    replies = asyncio.run(backend.complete_many(requests))
    assert all(isinstance(reply.text, str) and reply.completion_tokens >= 1 for reply in replies)
    assert replies[1].prompt_tokens > replies[0].prompt_tokens
    image_request = ChatRequest((ChatMessage.user(ImageInput(b"x"), "hi"),), 5)
    assert isinstance(asyncio.run(backend.complete_many([image_request]))[0], BackendError)
    with pytest.raises(FatalBackendError, match="cannot load"):
        TransformersChatBackend(tiny_models["llm"] + "-missing", images=False)


def test_local_backend_runs_batches_through_the_cache(tiny_models, tmp_path):
    backend = TransformersChatBackend(tiny_models["mllm"], images=True, device="cpu", max_batch_size=8)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    stats = CallStats()
    client = ModelClient(backend, cache, stats)
    requests = [ChatRequest((ChatMessage.user(f"Is frame {i} relevant?"),), 3, stage="localization") for i in range(4)]
    first = asyncio.run(client.chat_many(requests))
    again = asyncio.run(client.chat_many(requests + [ChatRequest((ChatMessage.user("new"),), 3, stage="localization")]))
    assert [r.text for r in first] == [r.text for r in again[:4]] == ["Yes Yes Yes"] * 4
    assert stats.stage("localization").calls == 5 and stats.stage("localization").cached == 4
    assert all(reply.cached for reply in again[:4]) and not again[4].cached
    assert len({client.key(request) for request in requests}) == 4


def test_annotate_with_a_local_mllm_and_a_served_llm(tiny_models, tmp_path):
    from videoitg.dataset_builder.media import load_video_assets
    from videoitg.dataset_builder.pipeline import AnnotateConfig, BackendSpec, annotate
    from videoitg.dataset_builder.sampling import keyframes_among
    from videoitg.dataset_builder.testing import build_scenario
    from videoitg.dataset_builder.writer import read_rows

    scenario = build_scenario(tmp_path, num_videos=1, seconds=10, kinds=("semantic", "motion"))
    with ScriptedChatServer(scenario.script()) as server:
        result = annotate(AnnotateConfig(
            qa_file=scenario.qa_file, video_root=scenario.video_root, out=tmp_path / "out",
            llm=BackendSpec("openai", "scripted-llm", server.url, None),
            mllm=BackendSpec("transformers", tiny_models["mllm"]), device="cpu", retry=FAST_RETRY, progress=False,
        ))  # fmt: skip
        served_stages = {"instruction_speed", "instruction_nonexistence", "instruction_static_details",
                         "key_phrases", "clip_retrieval"}  # fmt: skip
        script = scenario.script()
        assert {script.stage_of(entry.body["messages"][0]["content"]) for entry in server.requests} <= served_stages
    assert (result.done, result.failed) == (2, 0)
    rows = {row["id"]: row for row in read_rows(tmp_path / "out")}
    semantic = scenario.questions[0]
    clip_frames = list(range(5 * semantic.clips[0], 5 * semantic.clips[0] + 5))
    trace = json.loads(rows[semantic.id]["trace"])
    assert trace["relevant_frames"] == clip_frames  # the local MLLM said "Yes" to every candidate
    features = load_video_assets(scenario.video_root / semantic.video, 448).features
    positives = [i for i, label in enumerate(rows[semantic.id]["frame_labels"]) if label]
    assert positives == keyframes_among(features, clip_frames)
    captions = read_rows(tmp_path / "out", "captions")
    assert len(captions) == 4 and all(row["caption"].startswith("Yes Yes") for row in captions)
    stages = result.stats.stages
    assert stages["localization"].calls == 5 and stages["captions"].calls == 4


def test_keyframe_features_can_come_from_an_image_encoder(tmp_path):
    import numpy as np
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    from videoitg.dataset_builder.media import load_video_assets
    from videoitg.dataset_builder.testing import write_scripted_video
    from videoitg.selection import PretrainedEncoder

    config = CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=8)  # fmt: skip
    CLIPVisionModel(config).save_pretrained(tmp_path / "encoder")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(
        tmp_path / "encoder"
    )
    video = write_scripted_video(tmp_path / "v.mp4", [0, 0, 1, 1, 2])
    assets = load_video_assets(video, 448, encoder=PretrainedEncoder(str(tmp_path / "encoder"), device="cpu"))
    assert assets.features.shape == (5, 24)
    assert np.allclose(np.linalg.norm(assets.features, axis=1), 1.0)
    pixels = load_video_assets(video, 448)
    assert pixels.features.shape[1] == 3 * 16 * 16 and len(pixels.images) == 5
