"""VidThinker building blocks: prompts, reply parsing, QA files, shards, sampling rules, retries, cache, journal."""

from __future__ import annotations

import email.utils
import json
import sqlite3
import time

import numpy as np
import pytest

from videoitg.dataset_builder.backends import ChatMessage, ChatRequest, ImageInput, RetryPolicy, parse_retry_after
from videoitg.dataset_builder.cache import ResponseCache, cache_key
from videoitg.dataset_builder.journal import Journal
from videoitg.dataset_builder.media import split_into_clips
from videoitg.dataset_builder.prompts import PROMPT_NAMES, load_prompts, parse_template
from videoitg.dataset_builder.qa import parse_options, read_qa_file, select_shard
from videoitg.dataset_builder.sampling import clip_segments, diverse_frames, sample_frames
from videoitg.dataset_builder.stages import (
    InstructionTyping,
    ReplyFormatError,
    extract_json_object,
    parse_clip_retrieval,
    parse_yes_no,
)
from videoitg.dataset_builder.testing import read_second, scripted_frame
from videoitg.video import InvalidInputError


# --------------------------------------------------------------------------------------------------- prompts
def test_prompt_templates_carry_the_papers_tables():
    prompts = load_prompts()
    assert set(prompts.templates) == set(PROMPT_NAMES)
    for template in prompts.templates.values():
        assert template.version == "1" and template.source
    assert "Table 8" in prompts["clip_retrieval"].source
    assert "Table 9" in prompts["instruction_speed"].source and "Table 10" in prompts["instruction_nonexistence"].source
    retrieval = prompts["clip_retrieval"].render(clip_descriptions="Clip-1: a dog.", question="Q?", answer="A.")
    assert '{"explanation": "...", "clipnum": "Multiple clips: [Clip-1, Clip-7, Clip-8]"}' in retrieval
    assert 'return "None.".' in retrieval and "Avoid including unnecessary clips" in retrieval
    speed = prompts["instruction_speed"].render(question="Which is faster?", answer="The car.")
    assert "absolute speed (the speed of a specific object)" in speed and speed.rstrip().endswith("Output:")
    assert 'output "Yes."' in prompts["instruction_nonexistence"].body
    with pytest.raises(InvalidInputError, match="expected placeholders"):
        prompts["key_phrases"].render(question="q")


def test_prompt_overrides_are_checked_and_change_the_fingerprint(tmp_path):
    shipped = load_prompts()
    (tmp_path / "key_phrases.txt").write_text(
        "# name: key_phrases\n# version: 2\n# source: mine\n# placeholders: question, answer\n---\n"
        "Cues for $question ($answer), costing $$0:\n"
    )
    custom = load_prompts(tmp_path)
    assert custom["key_phrases"].render(question="Q", answer="A") == "Cues for Q (A), costing $0:\n"
    assert custom.fingerprints()["key_phrases"] != shipped.fingerprints()["key_phrases"]
    assert custom.fingerprints()["clip_retrieval"] == shipped.fingerprints()["clip_retrieval"]
    with pytest.raises(InvalidInputError, match="declares"):
        parse_template("# name: x\n# version: 1\n# source: s\n# placeholders: a\n---\n$a and $b\n", "bad.txt")
    with pytest.raises(InvalidInputError, match="lacks version"):
        parse_template("# name: x\n# source: s\n# placeholders:\n---\ntext\n", "bad.txt")
    (tmp_path / "unknown_stage.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="unknown prompt names"):
        load_prompts(tmp_path)


# --------------------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize("reply, expected", [
    ("Yes", True), ("No.", False), ("**Yes**", True), ("Output: No.", False), ('"Yes."', True), ("yes, it is", True),
    ("The answer is no", False), ("I think the output is: yes", True),
])  # fmt: skip
def test_yes_no_replies(reply, expected):
    assert parse_yes_no(reply) is expected


@pytest.mark.parametrize("reply", ["", "Maybe.", "Either yes or no, hard to say"])
def test_unclear_yes_no_replies_are_errors(reply):
    with pytest.raises(ReplyFormatError):
        parse_yes_no(reply)


def test_clip_retrieval_replies_in_every_wording():
    plain = '{"explanation": "the dog runs", "clipnum": "One clip: [Clip-2]"}'
    assert parse_clip_retrieval(plain, 4).clips == [1]
    assert parse_clip_retrieval(f"```json\n{plain}\n```", 4).clips == [1]
    assert parse_clip_retrieval(f"Let me think.\n{plain}\nDone.", 4).kind == "one"
    python_dict = "{'explanation': 'it is {curly}', 'clipnum': 'Multiple clips: [Clip-1, Clip-3, Clip-3]'}"
    multiple = parse_clip_retrieval(python_dict, 4)
    assert multiple.clips == [0, 2] and multiple.kind == "multiple" and multiple.explanation == "it is {curly}"
    assert parse_clip_retrieval('{"explanation": "x", "clipnum": "None."}', 4).clips == []
    assert parse_clip_retrieval("None.", 4).kind == "none"
    assert parse_clip_retrieval('{"explanation": "x", "clipnum": [2, "Clip-4"]}', 4).clips == [1, 3]
    for bad, problem in [("I cannot tell.", "no JSON dictionary"), ('{"explanation": "x"}', "no \"clipnum\""),
                         ('{"clipnum": "One clip: [Clip-9]"}', "do not exist"),
                         ('{"clipnum": "somewhere"}', "names no clip")]:  # fmt: skip
        with pytest.raises(ReplyFormatError, match=problem):
            parse_clip_retrieval(bad, 4)
    assert extract_json_object('prose {"a": {"b": 1}} more {"c": 2}') == {"a": {"b": 1}}


def test_instruction_types_from_the_typing_answers():
    assert InstructionTyping(False, False, None).instruction_type == "semantic"
    assert InstructionTyping(True, False, False).instruction_type == "motion"
    assert InstructionTyping(True, False, True).instruction_type == "semantic_motion"
    assert InstructionTyping(True, True, None).instruction_type == "non_clue"
    assert InstructionTyping.from_dict(InstructionTyping(True, False, True).to_dict()).static_details is True


# -------------------------------------------------------------------------------------------------- QA files
def test_llava_video_conversations_and_jsonl(tmp_path):
    llava = tmp_path / "qa.json"
    llava.write_text(json.dumps([
        {"id": "a", "video": "LLaVA-Video-178K/x/1.mp4", "data_source": "academic", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the car?\nA. red\nB. blue\nC. green\n"
                                       "Answer with the option's letter from the given choices directly."},
            {"from": "gpt", "value": "B."},
            {"from": "human", "value": "Describe the video."}, {"from": "gpt", "value": "A car drives."}]},
        {"id": "b", "video": "y/2.mp4", "conversations": [{"from": "human", "value": "Is it raining?"},
                                                         {"from": "gpt", "value": "No."}]},
    ]))  # fmt: skip
    items = read_qa_file(llava)
    assert [item.id for item in items] == ["a#0", "a#1", "b"]
    assert items[0].question.startswith("What colour") and items[0].options == ("A. red", "B. blue", "C. green")
    assert items[0].answer_form == "multiple_choice" and items[1].answer_form == "open_ended"
    assert items[0].video_id == "LLaVA-Video-178K/x/1" and items[0].source == "academic"
    jsonl = tmp_path / "qa.jsonl"
    jsonl.write_text('{"video": "v.mp4", "question": "Q?", "answer": "A", "options": ["x", "y"]}\n\n'
                     '{"video": "v.mp4", "question": "Q2?", "answer": "B"}\n')  # fmt: skip
    assert [(i.id, i.options, i.position) for i in read_qa_file(jsonl)] == [("q0", ("x", "y"), 0), ("q1", (), 1)]
    assert parse_options("Pick one:\n(A) cat\n(B) dog") == ("A. cat", "B. dog")
    assert parse_options("A. only one") == ()


@pytest.mark.parametrize("content, problem", [
    ('[{"video": "v.mp4", "question": "", "answer": "a"}]', "record 0: `question` must be a non-empty string"),
    ('[{"question": "q", "answer": "a"}]', "record 0: `video`"),
    ('[{"id": 1, "video": "v", "question": "q"}, {"id": 1, "video": "v", "question": "r"}]', "appears twice"),
    ('[{"video": "v", "conversations": [{"from": "gpt", "value": "x"}, {"from": "human", "value": "y"}]}]',
     "not a human/gpt pair"),
    ('{"video": "v", "question": "q"}\nnot json\n', "line 2 is not valid JSON"),
    ("[]", "holds no questions"),
])  # fmt: skip
def test_bad_qa_files_name_the_record(tmp_path, content, problem):
    path = tmp_path / "qa.json"
    path.write_text(content)
    with pytest.raises(InvalidInputError, match=problem):
        read_qa_file(path)


def test_shards_split_by_video_and_cover_everything(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"video": f"v{i % 13}.mp4", "question": f"q{i}", "answer": "a"}) + "\n"
                            for i in range(60)))  # fmt: skip
    items = read_qa_file(path)
    shards = [select_shard(items, 3, index) for index in range(3)]
    assert sorted(item.id for shard in shards for item in shard) == sorted(item.id for item in items)
    videos = [{item.video for item in shard} for shard in shards]
    assert not (videos[0] & videos[1]) and not (videos[1] & videos[2]) and all(videos)
    assert [item.id for item in select_shard(items, 3, 1)] == [item.id for item in shards[1]]  # stable
    with pytest.raises(InvalidInputError, match="--shard-index"):
        select_shard(items, 3, 3)


# -------------------------------------------------------------------------------------------------- sampling
def _scene_features(scenes: list[int]) -> np.ndarray:
    return np.eye(max(scenes) + 1)[scenes]


def test_sampling_rules_per_instruction_type():
    # 15 seconds, 3 clips of 5 s; scenes change at seconds 3, 6 and 12.
    features = _scene_features([0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3])
    clips = split_into_clips(15, 15.0, 5)
    assert [clip.frames for clip in clips] == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (10, 11, 12, 13, 14)]
    motion = sample_frames("motion", features, clips[1:], None, 4)
    assert motion.frames == list(range(5, 15)) and motion.rule == "all_frames"
    # Semantic: Algorithm 1 over the frames judged relevant (5..8: scene 1 then scene 2 with a different later frame
    # only inside scene 1) keeps the first relevant frame and the scene cut that is followed by change.
    semantic = sample_frames("semantic", features, clips[:2], [1, 2, 3, 4, 5, 6], 4)
    assert semantic.frames[0] == 1 and set(semantic.frames) <= {1, 2, 3, 4, 5, 6} and 3 in semantic.frames
    assert semantic.rule == "keyframes"
    fallback = sample_frames("semantic", features, clips[:1], [], 4)
    assert fallback.note and set(fallback.frames) <= set(clips[0].frames)
    hybrid = sample_frames("semantic_motion", features, clips[1:], [6, 8, 12], 4)
    assert {6, 7, 8, 12} <= set(hybrid.frames) and 5 in hybrid.frames and hybrid.rule == "hybrid"  # 5: keyframe
    diverse = sample_frames("non_clue", features, [], None, 4)
    assert diverse.frames == diverse_frames(features, 4) and len(diverse.frames) == 4 and diverse.frames[0] == 0
    assert {features[f].argmax() for f in diverse.frames} == {0, 1, 2, 3}  # one frame per scene
    assert clip_segments([clips[0], clips[1]]) == [[0.0, 10.0]]
    assert clip_segments([clips[0], clips[2]]) == [[0.0, 5.0], [10.0, 15.0]]
    assert split_into_clips(12, 11.5, 5)[-1].end_s == 11.5


def test_scripted_frames_carry_their_second():
    for second in (0, 1, 77, 255):
        assert read_second(scripted_frame(3, second)) == second


# ---------------------------------------------------------------------------------------------------- retries
def test_backoff_grows_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_attempts=6, base_delay_s=1.0, max_delay_s=8.0)
    delays = [[policy.delay(attempt) for _ in range(200)] for attempt in range(5)]
    for attempt, values in enumerate(delays):
        ceiling = min(8.0, 2.0**attempt)
        assert ceiling / 2 <= min(values) and max(values) <= ceiling
        assert len(set(values)) > 100  # jittered
    assert policy.delay(0, retry_after_s=30.0) == 30.0
    assert parse_retry_after("2") == 2.0 and parse_retry_after("0.5") == 0.5 and parse_retry_after(None) is None
    later = email.utils.formatdate(time.time() + 20, usegmt=True)
    assert 17 <= parse_retry_after(later) <= 21
    assert parse_retry_after("soon") is None


# ------------------------------------------------------------------------------------------------ cache, journal
def test_cache_key_covers_model_prompt_images_and_parameters(tmp_path):
    image, other = ImageInput(b"\xff\xd8jpeg-1"), ImageInput(b"\xff\xd8jpeg-2")
    request = ChatRequest((ChatMessage.user(image, "Is it relevant?"),), max_tokens=16, stage="localization")
    key = cache_key("openai", request.openai_payload("m"))
    assert key == cache_key("openai", ChatRequest(request.messages, 16, stage="other").openai_payload("m"))
    changed = [
        cache_key("transformers", request.openai_payload("m")),
        cache_key("openai", request.openai_payload("m2")),
        cache_key("openai", ChatRequest((ChatMessage.user(other, "Is it relevant?"),), 16).openai_payload("m")),
        cache_key("openai", ChatRequest((ChatMessage.user(image, "Is it shown?"),), 16).openai_payload("m")),
        cache_key("openai", ChatRequest(request.messages, 32).openai_payload("m")),
        cache_key("openai", ChatRequest(request.messages, 16, temperature=0.7).openai_payload("m")),
    ]
    assert len({key, *changed}) == 7
    cache = ResponseCache(tmp_path / "c" / "cache.sqlite")
    cache.put(key, {"text": "Yes", "prompt_tokens": 3, "completion_tokens": 1})
    cache.close()
    reopened = ResponseCache(tmp_path / "c" / "cache.sqlite")
    assert reopened.get(key)["text"] == "Yes" and reopened.get(changed[0]) is None and len(reopened) == 1


def test_journal_keeps_stages_and_refuses_other_settings(tmp_path):
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.start({"model": "a"}, [("q1", 0), ("q2", 1), ("q3", 2)])
    journal.save_stage("q1", "typing", {"speed": True})
    journal.finish("q1", {"id": "q1", "labels": [1]})
    journal.fail("q2", "retrieval", "unparseable")
    journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    journal = Journal(path)
    journal.start({"model": "a"}, [("q1", 0), ("q2", 1), ("q3", 2)])
    assert journal.stage_result("q1", "typing") == {"speed": True} and journal.stage_result("q3", "typing") is None
    assert journal.counts() == {"pending": 1, "done": 1, "failed": 1}
    assert journal.failures() == [{"id": "q2", "position": 1, "stage": "retrieval", "reason": "unparseable"}]
    assert journal.done_rows() == [{"id": "q1", "labels": [1]}]
    assert journal.requeue_failed() == 1 and journal.counts()["pending"] == 2
    with pytest.raises(InvalidInputError, match="other settings.*model"):
        journal.start({"model": "b"}, [])
    journal.close()
