"""`kill -9` an annotate process at random points, resume it each time: nothing lost, nothing asked twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from videoitg.dataset_builder.backends import RetryPolicy
from videoitg.dataset_builder.cache import ResponseCache, cache_key
from videoitg.dataset_builder.pipeline import AnnotateConfig, BackendSpec, annotate
from videoitg.dataset_builder.testing import ScriptedChatServer, build_scenario
from videoitg.dataset_builder.writer import read_rows

KEY_ENV = "VIDEOITG_TEST_API_KEY"
KEY = "sk-videoitg-resume-91b2"
LATENCY_S = 0.04


def cli_arguments(scenario, out, url) -> list[str]:
    return [
        sys.executable, "-m", "videoitg.cli", "annotate", "--qa", str(scenario.qa_file),
        "--video-root", str(scenario.video_root), "--out", str(out), "--llm-model", "scripted-llm",
        "--mllm-model", "scripted-mllm", "--llm-base-url", url, "--mllm-base-url", url, "--llm-api-key-env", KEY_ENV,
        "--mllm-api-key-env", KEY_ENV, "--concurrency", "4", "--no-progress", "--timeout", "10",
    ]  # fmt: skip


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    scenario = build_scenario(tmp_path, num_videos=3, seconds=15, seed=3)
    with ScriptedChatServer(scenario.script(), latency_s=LATENCY_S, api_key=KEY) as server:
        reference = annotate(AnnotateConfig(
            qa_file=scenario.qa_file, video_root=scenario.video_root, out=tmp_path / "reference",
            llm=BackendSpec("openai", "scripted-llm", server.url, KEY_ENV),
            mllm=BackendSpec("openai", "scripted-mllm", server.url, KEY_ENV),
            concurrency=4, timeout_s=10, retry=RetryPolicy(), progress=False,
        ))  # fmt: skip
    assert reference.done == 18

    out = tmp_path / "killed"
    cache_path = out / ".videoitg" / "cache.sqlite"
    rng = random.Random(11)
    kills = []  # (time of death, cache keys committed by then)
    env = {**os.environ, KEY_ENV: KEY}
    with ScriptedChatServer(scenario.script(), latency_s=LATENCY_S, api_key=KEY) as server:
        for _ in range(3):
            seen = len(server.requests)
            target = rng.randint(1, 35)  # kill after this many more requests reached the server ...
            process = subprocess.Popen(cli_arguments(scenario, out, server.url), env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            deadline = time.time() + 120  # the interpreter alone may take 20 s to start on a loaded machine
            while len(server.requests) < seen + target and process.poll() is None and time.time() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.05))  # ... and a little later, wherever the process then is
            if process.poll() is not None:
                break
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            kills.append((time.time(), ResponseCache(cache_path).keys()))
        finished = subprocess.run(cli_arguments(scenario, out, server.url), env=env, capture_output=True, text=True,
                                  timeout=180)  # fmt: skip
        log = list(server.requests)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert len(kills) == 3
    assert all(len(keys) < len(kills[-1][1]) or keys == kills[-1][1] for _, keys in kills)  # progress accumulates

    assert read_rows(out) == read_rows(tmp_path / "reference")
    assert read_rows(out, "captions") == read_rows(tmp_path / "reference", "captions")
    assert "18 questions annotated, 0 failed" in finished.stdout
    # No call that had been answered and stored before a kill was sent again afterwards.
    for killed_at, finished_keys in kills:
        asked_later = {cache_key("openai", entry.body) for entry in log if entry.received > killed_at}
        assert not asked_later & finished_keys
    # Every distinct call of the uninterrupted run was made; repeats are bounded by what was in flight at a kill
    # (--concurrency 4 for each of the two backends).
    distinct = {cache_key("openai", entry.body) for entry in log}
    assert len(distinct) == reference.stats.total().calls
    assert len(log) - len(distinct) <= 2 * 4 * len(kills)
