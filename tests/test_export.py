"""Export, then load with the Auto classes and the pipeline in a process where `import videoitg` fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from videoitg.hub import REMOTE_CODE_FILES, build_model, export_model

# Runs in a fresh interpreter: videoitg is made unimportable, everything comes from the folder's remote code.
LOADER = r"""
import json, sys
sys.modules["videoitg"] = None
try:
    import videoitg  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("videoitg must not be importable here")
import torch
from transformers import AutoConfig, AutoModel, AutoProcessor, pipeline

source, frames_path, out_path = sys.argv[1:4]
config = AutoConfig.from_pretrained(source, trust_remote_code=True)
model = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
processor = AutoProcessor.from_pretrained(source, trust_remote_code=True)
frames = torch.load(frames_path)
inputs = processor(videos=frames, text="What colour is the star?")
with torch.no_grad():
    scores = model(**{k: v for k, v in inputs.items() if k in processor.model_input_names}).scores[0]
selector = pipeline("video-frame-selection", model=source, trust_remote_code=True)
video_result = selector(sys.argv[4], "What colour is the star?", top_k=3)
json.dump({
    "config_class": type(config).__name__, "model_class": type(model).__module__ + "." + type(model).__name__,
    "processor_class": type(processor).__name__, "pipeline_class": type(selector).__name__,
    "scores": scores.tolist(), "pipeline": video_result,
}, open(out_path, "w"))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model, processor = build_model("tiny", "pooling", seed=3)
    folder = export_model(model, processor, tmp_path_factory.mktemp("export") / "videoitg-tiny")
    frames = torch.randint(0, 256, (6, 3, 40, 48), dtype=torch.uint8)
    inputs = processor(videos=frames, text="What colour is the star?")
    with torch.no_grad():
        scores = model(**{k: v for k, v in inputs.items() if k in processor.model_input_names}).scores[0]
    return folder, frames, scores, model, processor


def run_loader(source: str, frames, video: Path, tmp_path: Path, env: dict | None = None) -> dict:
    frames_path = tmp_path / "frames.pt"
    torch.save(frames, frames_path)
    out_path = tmp_path / "result.json"
    script = tmp_path / "load.py"
    script.write_text(LOADER)
    completed = subprocess.run(
        [sys.executable, str(script), source, str(frames_path), str(out_path), str(video)],
        cwd=tmp_path, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out_path.read_text())


def test_export_folder_layout(exported):
    folder = exported[0]
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "tokenizer.json", "processor_config.json"} <= names
    assert set(REMOTE_CODE_FILES) <= names
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_videoitg.VideoITGForFrameSelection"
    assert config["auto_map"]["AutoConfig"] == "configuration_videoitg.VideoITGConfig"
    assert config["custom_pipelines"]["video-frame-selection"]["impl"] == "pipeline_videoitg.VideoFrameSelectionPipeline"
    processor_config = json.loads((folder / "processor_config.json").read_text())
    assert processor_config["auto_map"]["AutoProcessor"] == "processing_videoitg.VideoITGProcessor"
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers") and 'pipeline("video-frame-selection"' in card


def test_remote_code_files_import_only_allowed_modules():
    allowed = {"torch", "transformers", "torchvision", "__future__"}
    package = Path(__file__).resolve().parents[1] / "src" / "videoitg"
    stdlib = set(sys.stdlib_module_names)
    for name in REMOTE_CODE_FILES:
        source = (package / name).read_text()
        for line in source.splitlines():
            # Only top-level (unindented) imports: guarded optional imports live inside functions / try blocks.
            if line.startswith(("import ", "from ")) and not line.startswith("from ."):
                root = line.split()[1].split(".")[0]
                assert root in allowed or root in stdlib, f"{name}: {line}"


@pytest.mark.slow
def test_loads_by_path_without_videoitg(exported, tmp_path, video_factory):
    folder, frames, scores, _, _ = exported
    video = video_factory(duration_s=8, fps=2)
    result = run_loader(str(folder), frames, video, tmp_path)
    assert result["model_class"].startswith("transformers_modules.")
    assert result["processor_class"] == "VideoITGProcessor"
    assert result["pipeline_class"] == "VideoFrameSelectionPipeline"
    torch.testing.assert_close(torch.tensor(result["scores"]), scores, atol=1e-6, rtol=1e-5)
    selection = result["pipeline"]
    assert len(selection["indices"]) == 3 and selection["indices"] == sorted(selection["indices"])
    assert len(selection["scores"]) == len(selection["sampled_timestamps"]) == 8
    assert selection["timestamps"] == [selection["sampled_timestamps"][i] for i in selection["indices"]]


@pytest.mark.slow
def test_loads_by_repo_id_from_hub_cache_offline(exported, tmp_path, video_factory):
    folder, frames, scores, _, _ = exported
    cache = tmp_path / "hub"
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = cache / "models--org--videoitg" / "snapshots" / revision
    shutil.copytree(folder, snapshot)
    (cache / "models--org--videoitg" / "refs").mkdir()
    (cache / "models--org--videoitg" / "refs" / "main").write_text(revision)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "hf-home")}
    video = video_factory(duration_s=5, fps=2)
    result = run_loader("org/videoitg", frames, video, tmp_path, env=env)
    torch.testing.assert_close(torch.tensor(result["scores"]), scores, atol=1e-6, rtol=1e-5)
    assert len(result["pipeline"]["indices"]) == 3


@pytest.mark.parametrize("variant", ["anchor", "generation"])
def test_other_variants_export_and_reload(variant, tmp_path):
    from videoitg.hub import load_model

    model, processor = build_model("tiny", variant, seed=1)
    folder = export_model(model, processor, tmp_path / variant)
    reloaded, reloaded_processor = load_model(folder)
    assert reloaded.config.variant == variant
    frames = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    inputs = processor(videos=frames, text="Which shape moves left?")
    first = model.score_frames(tokenizer=processor.tokenizer, **inputs).scores
    second = reloaded.score_frames(tokenizer=reloaded_processor.tokenizer, **inputs).scores
    torch.testing.assert_close(first, second)
    assert first.shape == (1, 5)
