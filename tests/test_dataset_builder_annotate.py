"""`videoitg annotate` end to end against a scripted OpenAI-compatible server on 127.0.0.1: labels, captions,
dataset card, faults, reruns, shards, dry run, and the API key staying out of every file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from videoitg.dataset_builder.backends import RetryPolicy
from videoitg.cli import main as cli_main
from videoitg.dataset_builder.media import load_video_assets, split_into_clips
from videoitg.dataset_builder.pipeline import AnnotateConfig, BackendSpec, annotate, dry_run
from videoitg.dataset_builder.sampling import diverse_frames, keyframes_among
from videoitg.dataset_builder.shards import merge_shards
from videoitg.dataset_builder.testing import (
    FaultRule,
    ScriptedChatServer,
    ScriptedReply,
    build_scenario,
    seconds_in_text,
)
from videoitg.dataset_builder.writer import read_rows
from videoitg.video import InvalidInputError

KEY_ENV = "VIDEOITG_TEST_API_KEY"
KEY = "sk-videoitg-test-7f3a9c1e5b"
CLIP_SECONDS, DIVERSE = 5, 4


def make_config(scenario, out: Path, url: str, **overrides) -> AnnotateConfig:
    settings = dict(
        qa_file=scenario.qa_file, video_root=scenario.video_root, out=out,
        llm=BackendSpec("openai", "scripted-llm", url, KEY_ENV),
        mllm=BackendSpec("openai", "scripted-mllm", url, KEY_ENV),
        concurrency=4, timeout_s=5.0, retry=RetryPolicy(max_attempts=3, base_delay_s=0.02, max_delay_s=0.1),
        clip_seconds=CLIP_SECONDS, diverse_frames=DIVERSE, progress=False,
    )  # fmt: skip
    settings.update(overrides)
    return AnnotateConfig(**settings)


def expected_positives(question, assets) -> list[int]:
    """The frames the scripted answers imply under the sampling rules of section 3.2."""
    clips = split_into_clips(assets.num_frames, assets.duration_s, CLIP_SECONDS)
    clip_frames = sorted(frame for index in question.clips for frame in clips[index].frames)
    relevant = sorted(set(question.truth.relevant_seconds) & set(clip_frames))
    if question.kind == "non_clue":
        return diverse_frames(assets.features, DIVERSE)
    if question.kind == "motion":
        return clip_frames
    if question.kind == "semantic":
        return keyframes_among(assets.features, relevant)
    stretch = set(range(relevant[0], relevant[-1] + 1)) if relevant else set()
    return sorted(stretch | set(keyframes_among(assets.features, clip_frames)))


def files_holding(text: str, *folders: Path) -> list[Path]:
    hits = []
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not any(part == "videos" for part in path.relative_to(folder).parts):
                if text.encode() in path.read_bytes():
                    hits.append(path)
    return hits


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete annotate run over 2 videos x 6 questions (one per instruction path)."""
    import os

    folder = tmp_path_factory.mktemp("annotate")
    scenario = build_scenario(folder, num_videos=2, seconds=15)
    os.environ[KEY_ENV] = KEY
    try:
        with ScriptedChatServer(scenario.script(), api_key=KEY) as server:
            result = annotate(make_config(scenario, folder / "out", server.url))
            requests = list(server.requests)
    finally:
        del os.environ[KEY_ENV]
    return scenario, result, requests, folder


def test_annotated_dataset_loads_with_the_labels_the_script_implies(finished_run):
    import datasets

    scenario, result, requests, folder = finished_run
    assert (result.done, result.failed, result.pending) == (12, 0, 0)
    loaded = datasets.load_dataset(str(result.out), split="train")
    assert loaded.column_names[:4] == ["id", "video", "video_id", "question"]
    rows = {row["id"]: row for row in loaded}
    assets = {video: load_video_assets(scenario.video_root / video, 448) for video in scenario.seconds}
    for question in scenario.questions:
        row = rows[question.id]
        video_assets = assets[question.video]
        positives = [index for index, label in enumerate(row["frame_labels"]) if label]
        assert row["instruction_type"] == question.kind, question.id
        assert positives == expected_positives(question, video_assets), question.id
        assert len(row["frame_labels"]) == 15 and row["duration_s"] == pytest.approx(15.0, abs=0.01)
        assert (result.out / row["video"]).is_file()  # videos/<path> through the link to the video root
        relevant, clip_frames = set(question.truth.relevant_seconds), {
            f for c in question.clips for f in range(c * CLIP_SECONDS, (c + 1) * CLIP_SECONDS)
        }
        # Rule checks that need no sampling code: motion takes every second of the retrieved clips, semantic
        # keeps only frames judged relevant (starting with the first), non-clue exactly 4 frames from second 0.
        if question.kind == "motion":
            assert set(positives) == clip_frames and row["relevant_clips"] == list(question.clips)
        elif question.kind == "semantic":
            assert set(positives) <= relevant and positives[0] == min(relevant)
            assert row["relevant_segments"] == [[5.0 * question.clips[0], 5.0 * question.clips[0] + 5.0]]
        elif question.kind == "semantic_motion":
            assert relevant <= set(positives) <= clip_frames
        else:
            assert len(positives) == DIVERSE and positives[0] == 0
    trace = json.loads(rows["v0q0"]["trace"])
    assert trace["rule"] == "keyframes" and trace["key_phrases"] == "Cue v0q0: object 0 moves."
    assert sorted(trace["relevant_frames"]) == sorted(
        set(scenario.questions[0].truth.relevant_seconds) & set(range(5 * scenario.questions[0].clips[0],
                                                                      5 * scenario.questions[0].clips[0] + 5)))


def test_captions_are_per_clip_in_order_and_the_card_has_both_configs(finished_run):
    import datasets

    scenario, result, requests, folder = finished_run
    captions = datasets.load_dataset(str(result.out), "captions", split="train")
    by_question: dict[str, list[dict]] = {}
    for row in captions:
        by_question.setdefault(row["question_id"], []).append(row)
    # Questions that needed captions: all but the existence questions answered "no".
    assert set(by_question) == {q.id for q in scenario.questions if q.truth.nonexistence is False}
    for rows in by_question.values():
        assert [row["clip_index"] for row in rows] == [0, 1, 2]
        for row in rows:  # each caption saw exactly the seconds of its own clip
            assert seconds_in_text(row["caption"]) == list(range(int(row["start_s"]), int(row["end_s"])))
    card = (result.out / "README.md").read_text()
    assert "config_name: default" in card and "config_name: captions" in card
    assert "| # Videos | # Queries | Avg. Duration | Instructed? |" in card and "| out | 2 | 12 | 15s | Yes |" in card
    assert (result.out / "failures.jsonl").read_text() == ""
    # Calls per stage, as the scenario implies: 2 or 3 typing calls, 3 captions per captioned question, ...
    stages = result.stats.stages
    assert stages["captions"].calls == 3 * 10 and stages["retrieval"].calls == 10 and stages["key_phrases"].calls == 10
    assert stages["typing"].calls == 12 * 2 + 4  # the 4 speed questions get the static-details prompt
    assert stages["localization"].calls == 4 * 5  # semantic and semantic_motion: every frame of one clip
    assert len(requests) == result.stats.total().calls
    assert all(request.authorization == f"Bearer {KEY}" for request in requests)


def test_a_rerun_asks_the_server_nothing_and_writes_the_same_dataset(finished_run, monkeypatch):
    scenario, result, _, folder = finished_run
    before = read_rows(result.out)
    monkeypatch.setenv(KEY_ENV, KEY)
    with ScriptedChatServer(scenario.script(), api_key=KEY) as server:
        again = annotate(make_config(scenario, result.out, server.url))
        assert server.requests == []
    assert again.done == 12 and read_rows(result.out) == before
    # A new output folder sharing the cache: every reply comes from the cache.
    with ScriptedChatServer(scenario.script(), api_key=KEY) as server:
        copy = annotate(make_config(scenario, folder / "copy", server.url,
                                    cache_path=result.out / ".videoitg" / "cache.sqlite"))  # fmt: skip
        assert server.requests == []
    assert copy.stats.total().cached == result.stats.total().calls
    assert [row["frame_labels"] for row in read_rows(folder / "copy")] == [row["frame_labels"] for row in before]


def test_the_api_key_is_in_no_file_and_no_output(finished_run, capfd):
    scenario, result, _, folder = finished_run
    work = result.out / ".videoitg"
    assert list(work.glob("*.sqlite")) and (work / "annotate.log").stat().st_size
    assert files_holding(KEY, result.out, folder) == []
    assert files_holding(KEY_ENV, result.out / ".videoitg") == []  # not even the variable's name is needed there
    out, err = capfd.readouterr()
    assert KEY not in out + err


def test_faults_end_with_every_question_annotated_or_failed_with_a_reason(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(KEY_ENV, KEY)
    scenario = build_scenario(tmp_path, num_videos=2, seconds=15, seed=1)
    question = {q.id: q.truth.question for q in scenario.questions}
    faults = [
        FaultRule("instruction_speed", [ScriptedReply(status=429, headers={"Retry-After": "1"})], question["v0q0"]),
        FaultRule("clip_caption", [ScriptedReply(status=500), ScriptedReply(status=502)], question["v0q1"]),
        FaultRule("frame_relevance", [ScriptedReply("Yes", delay_s=2.0)], question["v1q0"]),
        FaultRule("clip_retrieval", [ScriptedReply("I cannot decide."), ScriptedReply("Still unsure.")],
                  question["v0q2"]),
        FaultRule("clip_retrieval", [ScriptedReply('{"explanation": "x", "clipnum": "One clip: [Clip-9]"}')],
                  question["v1q0"]),
        FaultRule("key_phrases", [ScriptedReply(raw_body="not json at all")], question["v1q1"]),
        FaultRule("instruction_nonexistence", [ScriptedReply(status=500)] * 10, question["v1q4"]),
        FaultRule("clip_retrieval", [ScriptedReply(status=400, raw_body=f'{{"error": "bad key {KEY}"}}')],
                  question["v0q5"]),
    ]  # fmt: skip
    with ScriptedChatServer(scenario.script(faults), api_key=KEY) as server:
        result = annotate(make_config(scenario, tmp_path / "out", server.url, timeout_s=0.5))
        log = list(server.requests)
    failures = {failure["id"]: failure for failure in result.failures}
    assert result.done + result.failed == 12 and result.pending == 0
    assert set(failures) == {"v0q2", "v1q4", "v0q5"}
    assert failures["v0q2"]["stage"] == "retrieval"
    assert "unparseable reply after 2 attempts" in failures["v0q2"]["reason"]
    assert "'Still unsure.'" in failures["v0q2"]["reason"]
    assert failures["v1q4"]["stage"] == "typing" and "3 attempts failed, last: HTTP 500" in failures["v1q4"]["reason"]
    assert failures["v0q5"]["stage"] == "retrieval" and "HTTP 400" in failures["v0q5"]["reason"]
    assert KEY not in failures["v0q5"]["reason"]
    assert [json.loads(line)["id"] for line in (result.out / "failures.jsonl").read_text().splitlines()] == [
        "v0q2", "v0q5", "v1q4"]  # fmt: skip
    # The Retry-After of the 429 was waited out before the same prompt was sent again.
    speed_v0q0 = [entry.received for entry in log if "related to speed" in json.dumps(entry.body)
                  and question["v0q0"] in json.dumps(entry.body)]  # fmt: skip
    assert len(speed_v0q0) == 2 and speed_v0q0[1] - speed_v0q0[0] >= 1.0
    # The request that hung past the timeout was sent again, identically.
    relevance_v1q0 = [json.dumps(entry.body, sort_keys=True) for entry in log if "Is this frame relevant" in
                      json.dumps(entry.body) and question["v1q0"] in json.dumps(entry.body)]  # fmt: skip
    assert len(relevance_v1q0) == len(set(relevance_v1q0)) + 1
    # The questions that survived their faults got the labels the script implies.
    rows = {row["id"]: row for row in read_rows(result.out)}
    assets = {video: load_video_assets(scenario.video_root / video, 448) for video in scenario.seconds}
    for q in scenario.questions:
        if q.id not in failures:
            positives = [i for i, label in enumerate(rows[q.id]["frame_labels"]) if label]
            assert positives == expected_positives(q, assets[q.video]), q.id
    assert json.loads(rows["v1q0"]["trace"])["retrieval"]["clipnum"].startswith("One clip")  # repaired reply
    assert files_holding(KEY, result.out) == []
    out, err = capfd.readouterr()
    assert KEY not in out + err


def test_shards_merge_into_the_single_run_dataset(finished_run, tmp_path, monkeypatch):
    scenario, result, _, folder = finished_run
    monkeypatch.setenv(KEY_ENV, KEY)
    shard_dirs = [tmp_path / f"shard{index}" for index in range(3)]
    with ScriptedChatServer(scenario.script(), api_key=KEY) as server:
        for index, shard_dir in enumerate(shard_dirs):
            annotate(make_config(scenario, shard_dir, server.url, num_shards=3, shard_index=index))
    with pytest.raises(InvalidInputError, match=r"shards \[2\] of 3 are missing"):
        merge_shards(shard_dirs[:2], tmp_path / "merged")
    with pytest.raises(InvalidInputError, match="not shards of one run"):
        merge_shards([shard_dirs[0], result.out], tmp_path / "merged")
    merged = merge_shards(shard_dirs, tmp_path / "merged")
    assert merged["counts"] == {"done": 12, "failed": 0, "pending": 0}
    assert read_rows(tmp_path / "merged") == read_rows(result.out)
    assert read_rows(tmp_path / "merged", "captions") == read_rows(result.out, "captions")
    assert (tmp_path / "merged" / "videos").resolve() == scenario.video_root.resolve()


def test_dry_run_estimates_without_calling(tmp_path):
    scenario = build_scenario(tmp_path, num_videos=2, seconds=12, kinds=("semantic", "motion", "nonexistence"))
    with ScriptedChatServer(scenario.script()) as server:
        estimate = dry_run(make_config(scenario, tmp_path / "out", server.url))
        video_scope = dry_run(make_config(scenario, tmp_path / "out", server.url, caption_scope="video"))
        assert server.requests == []
    assert (estimate.questions, estimate.videos, estimate.missing_videos) == (6, 2, [])
    assert estimate.stages["captions"].calls == 6 * 3  # 12 s videos: 3 clips of at most 5 s
    assert estimate.stages["typing"].calls == 18 and estimate.stages["retrieval"].calls == 6
    assert estimate.stages["localization"].calls == 6 * 10
    assert all(stage.prompt_tokens > 0 for stage in estimate.stages.values())
    assert not (tmp_path / "out").exists()
    table = estimate.table()
    assert "captions" in table and "Assumptions" in table
    assert video_scope.stages["captions"].calls == 2 * 3


def test_video_scope_captions_each_video_once(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    scenario = build_scenario(tmp_path, num_videos=1, seconds=10, kinds=("semantic", "motion", "nonexistence"))
    with ScriptedChatServer(scenario.script(), api_key=KEY) as server:
        result = annotate(make_config(scenario, tmp_path / "out", server.url, caption_scope="video"))
    assert result.done == 3 and result.stats.stages["captions"].calls == 2
    captions = read_rows(result.out, "captions")
    assert [(row["question_id"], row["clip_index"]) for row in captions] == [(None, 0), (None, 1)]
    assert "Cue v0q0" in captions[0]["key_phrases"] and "Cue v0q1" in captions[0]["key_phrases"]


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert cli_main(["annotate", "--qa", str(tmp_path / "qa.json")]) == 2
    assert "annotate needs --video-root, --out, --llm-model, --mllm-model" in capsys.readouterr().err
    args = ["annotate", "--qa", str(tmp_path / "missing.json"), "--video-root", str(tmp_path), "--out",
            str(tmp_path / "out"), "--llm-model", "m", "--mllm-model", "m", "--llm-base-url", "http://127.0.0.1:9/v1",
            "--mllm-base-url", "http://127.0.0.1:9/v1", "--no-progress"]  # fmt: skip
    assert cli_main(args) == 2 and "missing.json: no such QA file" in capsys.readouterr().err
    assert cli_main(["annotate", "merge", str(tmp_path), "--out", str(tmp_path / "m")]) == 2
    assert "not an output folder of videoitg annotate" in capsys.readouterr().err


def test_cli_annotate_dry_run_and_a_dead_server(tmp_path, capsys):
    scenario = build_scenario(tmp_path, num_videos=1, seconds=6, kinds=("semantic",))
    base = ["annotate", "--qa", str(scenario.qa_file), "--video-root", str(scenario.video_root), "--out",
            str(tmp_path / "out"), "--llm-model", "m", "--mllm-model", "m", "--llm-base-url", "http://127.0.0.1:9/v1",
            "--mllm-base-url", "http://127.0.0.1:9/v1", "--no-progress", "--max-retries", "1",
            "--retry-base-delay", "0.01", "--timeout", "1"]  # fmt: skip
    assert cli_main([*base, "--dry-run"]) == 0
    assert "1 questions over 1 videos" in capsys.readouterr().out
    # Nothing listens on port 9: the question fails with the reason, the exit code says so.
    assert cli_main(base) == 1
    printed = capsys.readouterr().out
    assert "failed v0q0 at typing: model call failed: 2 attempts failed, last: connection failed" in printed
