"""`videoitg select` / `init` / `demo` from the shell: outputs, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from videoitg.cli import main


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "videoitg.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    assert main(["init", "--preset", "tiny", "--out", str(folder)]) == 0
    return folder


def test_select_writes_the_three_outputs(tiny_model_dir, video_factory, tmp_path, capsys):
    video = video_factory(duration_s=12, fps=2)
    out = tmp_path / "selection"
    code = main(["select", str(video), "When does the red circle appear?", "--model", str(tiny_model_dir),
                 "--top-k", "4", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    selection = json.loads((out / "selection.json").read_text())
    assert selection["indices"] == sorted(selection["indices"]) and len(selection["indices"]) == 4
    assert len(selection["scores"]) == len(selection["sampled_timestamps"]) == 12
    assert selection["sampled_timestamps"] == [float(i) for i in range(12)]
    assert selection["timestamps"] == [selection["sampled_timestamps"][i] for i in selection["indices"]]
    assert selection["selected_scores"] == [selection["scores"][i] for i in selection["indices"]]
    assert selection["model"] == str(tiny_model_dir)
    assert selection["video"]["duration_s"] == pytest.approx(12, abs=0.6)
    for picture in ("frames.png", "scores.png"):
        assert (out / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "selected 4 of 12 frames" in capsys.readouterr().out


def test_select_without_model_or_embedded_model_says_it_is_untrained(video_factory, tmp_path, capsys, monkeypatch):
    import videoitg.inference

    # An install without the embedded demo model (e.g. a slimmed wheel) falls back to a random tiny model.
    monkeypatch.setattr(videoitg.inference, "DEFAULT_MODEL", tmp_path / "no-demo-model")
    video = video_factory(duration_s=6, fps=2)
    assert main(["select", str(video), "What happens?", "--out", str(tmp_path / "o"), "--quiet"]) == 0
    output = capsys.readouterr().out
    assert "RANDOMLY INITIALISED" in output
    assert "RANDOMLY INITIALISED" in json.loads((tmp_path / "o" / "selection.json").read_text())["model_note"]


def test_bad_inputs_exit_2_with_one_line(tiny_model_dir, bad_videos, video_factory, tmp_path, capsys):
    # In-process through the real entry point; tests/test_video.py runs each bad file through every decoder in a
    # child process (a crash there would fail that test, not kill pytest).
    good = video_factory(duration_s=4, fps=2)
    cases = {name: (str(path), "What colour is the star?") for name, path in bad_videos.items()}
    cases["empty instruction"] = (str(good), "   ")
    cases["instruction longer than the context"] = (str(good), "star " * 5000)
    for name, (video, instruction) in cases.items():
        code = main(["select", video, instruction, "--model", str(tiny_model_dir), "--quiet", "--out", str(tmp_path / "o")])
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2, f"{name}: exit code {code}"
        assert len(lines) == 1 and lines[0].startswith("videoitg select: error:"), f"{name}: {lines}"
        if name in ("empty instruction", "instruction longer than the context"):
            assert "instruction" in lines[0]
        else:
            assert Path(video).name in lines[0], f"{name}: the error must name the file: {lines[0]}"


@pytest.mark.slow
def test_bad_input_from_the_shell_is_one_line_and_exit_2(tiny_model_dir, bad_videos, tmp_path):
    video = bad_videos["truncated"]
    completed = run_cli("select", str(video), "What colour is the star?", "--model", str(tiny_model_dir), cwd=tmp_path)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and video.name in lines[0] and "Traceback" not in completed.stderr


def test_missing_model_folder_is_a_clear_error(video_factory, tmp_path, capsys):
    video = video_factory(duration_s=4, fps=2)
    code = main(["select", str(video), "What?", "--model", str(tmp_path / "nope"), "--quiet"])
    assert code == 2
    assert "no such model folder" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs(tmp_path):
    completed = run_cli("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "demo" / "selection.json").is_file()
    assert (tmp_path / "demo" / "frames.png").is_file() and (tmp_path / "demo" / "scores.png").is_file()
    assert "selected 8 of 40 frames" in completed.stdout
