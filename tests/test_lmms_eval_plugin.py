"""The `videoitg` lmms-eval model: frame selection in front of a wrapped lmms-eval model, and the two-stage flow.

The videos are generated: frame i of video v shows the number 1000 v + i as a grid of red / blue cells
(`index_frame_maker` in conftest), so the frames a model receives can be read back and compared with the selection.
The end-to-end test runs lmms-eval's own command line on a local task (`--include_path`) with lmms-eval's `llava_hf`
model (`--force_simple`) backed by a tiny random LLaVA-OneVision built here; a forward pre-hook on that model records
the video pixels it is given.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("lmms_eval")

from lmms_eval.api.instance import Instance  # noqa: E402
from lmms_eval.api.model import lmms  # noqa: E402

from videoitg.lmms_eval_plugin.frame_indices import FrameIndicesError, read_frame_indices, shard_path  # noqa: E402
from videoitg.lmms_eval_plugin.model import PluginArgumentError, VideoITGChat, VideoITGSimple  # noqa: E402
from videoitg.video import load_video, write_video  # noqa: E402

VIDEO_FPS = 2  # source videos; the selector samples candidates at 1 fps, so candidate t is source frame 2 t
SECONDS = 12
TASK = "tiny_video_qa"


def _write_index_video(path: Path, video_number: int, index_frame) -> Path:
    frames = (index_frame(1000 * video_number + i, 64, 48) for i in range(SECONDS * VIDEO_FPS))
    return Path(write_video(path, frames, fps=VIDEO_FPS, crf=18))


def expected_codes(record: dict, video_number: int) -> list[int]:
    """The numbers shown by the frames a record selected (candidate at t s = source frame t * VIDEO_FPS)."""
    return [1000 * video_number + round(time_s * VIDEO_FPS) for time_s in record["timestamps"]]


@pytest.fixture(scope="module")
def selector_dir(tmp_path_factory) -> Path:
    from videoitg.hub import build_model

    model, processor = build_model("tiny", "pooling", seed=0)
    folder = tmp_path_factory.mktemp("selector")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def videos(tmp_path_factory, index_frame_maker) -> list[Path]:
    folder = tmp_path_factory.mktemp("videos")
    return [_write_index_video(folder / f"video{v}.mp4", v, index_frame_maker) for v in range(3)]


# ------------------------------------------------------------------------------------ wrapped test models
class RecordingSimple(lmms):
    """A simple lmms-eval model that records the visuals its requests give for their documents.

    Like lmms-eval's simple models with a batch, it applies the first request's doc_to_visual to every document.
    """

    is_simple = True

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, list]] = []

    def generate_until(self, requests):
        doc_to_visual = requests[0].args[2]
        answers = []
        for request in requests:
            _, _, _, doc_id, task, split = request.args
            self.seen.append((doc_id, doc_to_visual(self.task_dict[task][split][doc_id])))
            answers.append(f"answer {doc_id}")
        return answers

    def loglikelihood(self, requests):
        for request in requests:
            _, _, doc_to_visual, doc_id, task, split = request.args
            self.seen.append((doc_id, doc_to_visual(self.task_dict[task][split][doc_id])))
        return [(-1.0, True)] * len(requests)

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


class RecordingChat(lmms):
    """A chat lmms-eval model that records the messages its requests give for their documents."""

    is_simple = False

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[int, list]] = []

    def generate_until(self, requests):
        for request in requests:
            _, doc_to_messages, _, doc_id, task, split = request.args
            self.seen.append((doc_id, doc_to_messages(self.task_dict[task][split][doc_id])))
        return ["chat answer"] * len(requests)

    def loglikelihood(self, requests):
        raise NotImplementedError

    def generate_until_multi_round(self, requests):
        raise NotImplementedError


def _docs(videos: list[Path]) -> list[dict]:
    return [{"video": str(path), "question": f"What is shown in video {v}?"} for v, path in enumerate(videos)]


def _simple_request(docs, doc_id: int, kind: str = "generate_until", continuation: str = " yes") -> Instance:
    def doc_to_visual(doc):
        return [doc["video"]]

    second = {"max_new_tokens": 4} if kind == "generate_until" else continuation
    arguments = (docs[doc_id]["question"], second, doc_to_visual, doc_id, TASK, "test")
    metadata = {"task": TASK, "doc_id": doc_id, "repeats": 1}
    return Instance(request_type=kind, arguments=arguments, idx=0, metadata=metadata)


def _chat_request(docs, doc_id: int) -> Instance:
    def doc_to_messages(doc):
        content = [{"type": "video", "url": doc["video"]}, {"type": "text", "text": doc["question"]}]
        system = {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
        return [system, {"role": "user", "content": content}]

    return Instance(request_type="generate_until",
                    arguments=(docs[doc_id]["question"], doc_to_messages, {"max_new_tokens": 4}, doc_id, TASK, "test"),
                    idx=0, metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})  # fmt: skip


def _decode_clip(path: str, fps: float = 1.0) -> torch.Tensor:
    return load_video(path, sample_fps=fps, max_frames=1000).frames


def _records(path: Path) -> dict[tuple[str, int], dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(line["task"], line["doc_id"]): line for line in lines}


# ------------------------------------------------------------------------------------------------ fast tests
def test_entry_point_registers_both_classes():
    from lmms_eval.models import get_model

    assert get_model("videoitg") is VideoITGChat
    assert get_model("videoitg", force_simple=True) is VideoITGSimple


def test_simple_model_gets_a_clip_of_exactly_the_selected_frames(tmp_path, selector_dir, videos, frame_index_reader):
    docs = _docs(videos)
    wrapped = RecordingSimple()
    model = VideoITGSimple(wrapped=wrapped, selector=str(selector_dir), top_k=4, selector_device="cpu",
                           frame_indices=str(tmp_path / "fi.jsonl"), clip_dir=str(tmp_path / "clips"))  # fmt: skip
    model.task_dict[TASK] = {"test": docs}  # as the evaluator does; the wrapped model shares the dict
    answers = model.generate_until([_simple_request(docs, doc_id) for doc_id in range(3)])
    model.clean()

    assert answers == ["answer 0", "answer 1", "answer 2"]
    records = _records(tmp_path / "fi.jsonl")
    assert sorted(records) == [(TASK, 0), (TASK, 1), (TASK, 2)]
    for doc_id, visuals in wrapped.seen:
        record = records[(TASK, doc_id)]
        assert len(visuals) == 1 and visuals[0].endswith(".mp4") and Path(visuals[0]).parent == tmp_path / "clips"
        shown = [frame_index_reader(frame) for frame in _decode_clip(visuals[0])]
        assert shown == expected_codes(record, doc_id)
        assert len(shown) == 4 and record["indices"] == sorted(record["indices"])
        assert record["question"] == docs[doc_id]["question"] and record["video"] == docs[doc_id]["video"]
        assert record["num_candidates"] == SECONDS and len(record["candidate_scores"]) == SECONDS


def test_chat_model_gets_selected_frames_as_images(tmp_path, selector_dir, videos, frame_index_reader):
    docs = _docs(videos)
    wrapped = RecordingChat()
    model = VideoITGChat(wrapped=wrapped, selector=str(selector_dir), top_k=3, selector_device="cpu",
                         frames_as="images", frame_indices=str(tmp_path / "fi.jsonl"),
                         clip_dir=str(tmp_path / "c"))  # fmt: skip
    assert model.is_simple is False
    model.task_dict[TASK] = {"test": docs}
    assert model.generate_until([_chat_request(docs, 2), _chat_request(docs, 0)]) == ["chat answer"] * 2
    model.clean()

    records = _records(tmp_path / "fi.jsonl")
    for doc_id, messages in wrapped.seen:
        system, user = messages
        assert system == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
        images = [item["url"] for item in user["content"] if item["type"] == "image"]
        assert [item["type"] for item in user["content"]] == ["image"] * 3 + ["text"]
        shown = [frame_index_reader(torch.from_numpy(np.array(image))) for image in images]
        assert shown == expected_codes(records[(TASK, doc_id)], doc_id)


def test_options_of_one_document_share_one_selection(tmp_path, selector_dir, videos):
    docs = _docs(videos)
    wrapped = RecordingSimple()
    model = VideoITGSimple(wrapped=wrapped, selector=str(selector_dir), top_k=2, selector_device="cpu",
                           frame_indices=str(tmp_path / "fi.jsonl"), clip_dir=str(tmp_path / "clips"))  # fmt: skip
    model.task_dict[TASK] = {"test": docs}
    requests = [_simple_request(docs, 1, "loglikelihood", option) for option in (" A", " B", " C")]
    assert model.loglikelihood(requests) == [(-1.0, True)] * 3
    model.clean()
    assert len((tmp_path / "fi.jsonl").read_text().splitlines()) == 1
    assert len({tuple(visuals) for _, visuals in wrapped.seen}) == 1
    assert len(list((tmp_path / "clips").glob("*.mp4"))) == 1


def test_two_stages_give_the_frames_of_one_stage(tmp_path, selector_dir, videos):
    docs = _docs(videos)
    requests = [_simple_request(docs, doc_id) for doc_id in range(3)]
    stage_one = VideoITGSimple(selector=str(selector_dir), top_k=3, mode="write", selector_device="cpu",
                               frame_indices=str(tmp_path / "stage1.jsonl"))  # fmt: skip
    stage_one.task_dict[TASK] = {"test": docs}
    assert stage_one.generate_until(requests) == ["", "", ""]  # no answering model in stage one
    stage_one.clean()

    one_stage_model = RecordingSimple()
    one_stage = VideoITGSimple(wrapped=one_stage_model, selector=str(selector_dir), top_k=3, selector_device="cpu",
                               frame_indices=str(tmp_path / "one.jsonl"), clip_dir=str(tmp_path / "c1"))  # fmt: skip
    one_stage.task_dict[TASK] = {"test": docs}
    one_stage.generate_until(requests)

    stage_two_model = RecordingSimple()
    # No selector is loaded in read mode: a selector path that does not exist is never touched.
    stage_two = VideoITGSimple(wrapped=stage_two_model, selector=str(tmp_path / "missing"), top_k=3, mode="read",
                               frame_indices=str(tmp_path / "stage1.jsonl"), clip_dir=str(tmp_path / "c2"))  # fmt: skip
    stage_two.task_dict[TASK] = {"test": docs}
    stage_two.generate_until(requests)

    assert _records(tmp_path / "stage1.jsonl") == _records(tmp_path / "one.jsonl")
    for (doc_one, (clip_one,)), (doc_two, (clip_two,)) in zip(one_stage_model.seen, stage_two_model.seen):
        assert doc_one == doc_two
        assert torch.equal(_decode_clip(clip_one), _decode_clip(clip_two))


def test_read_mode_refuses_a_file_that_does_not_fit(tmp_path, selector_dir, videos):
    docs = _docs(videos)
    stage_one = VideoITGSimple(selector=str(selector_dir), top_k=2, mode="write", selector_device="cpu",
                               frame_indices=str(tmp_path / "fi.jsonl"))  # fmt: skip
    stage_one.task_dict[TASK] = {"test": docs}
    stage_one.generate_until([_simple_request(docs, 0)])
    stage_one.clean()

    with pytest.raises(PluginArgumentError, match="holds selections of top_k=2"):
        VideoITGSimple(wrapped=RecordingSimple(), mode="read", top_k=5, frame_indices=str(tmp_path / "fi.jsonl"))
    reader = VideoITGSimple(wrapped=RecordingSimple(), mode="read", frame_indices=str(tmp_path / "fi.jsonl"),
                            clip_dir=str(tmp_path / "c"))  # fmt: skip
    assert reader.top_k == 2  # stage two takes k from stage one
    reader.task_dict[TASK] = {"test": docs}
    with pytest.raises(FrameIndicesError, match="no line for task 'tiny_video_qa' doc_id 1"):
        reader.generate_until([_simple_request(docs, 1)])
    moved = [dict(docs[0], video=docs[1]["video"])] + docs[1:]
    reader.task_dict[TASK] = {"test": moved}
    with pytest.raises(FrameIndicesError, match="was selected on .*video0.mp4"):
        reader.generate_until([_simple_request(moved, 0)])


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mode": "select"}, "needs wrapped="),
        ({"wrapped": "llava_hf", "mode": "read"}, "needs frame_indices="),
        ({"mode": "write"}, "needs frame_indices="),
        ({"wrapped": "llava_hf", "mode": "guess"}, "mode must be one of"),
        ({"wrapped": "llava_hf", "top_k": 0}, "top_k must be an integer >= 1"),
        ({"wrapped": "llava_hf", "top_k": 8, "candidates": 4}, "candidates .4. must be at least top_k"),
        ({"wrapped": "llava_hf", "frames_as": "gif"}, "frames_as must be"),
        ({"wrapped": "llava_hf", "sample_fps": 0}, "sample_fps must be a number > 0"),
        ({"wrapped": "llava_hf", "clip_fps": -1}, "clip_fps must be a number > 0"),
        ({"wrapped": "llava_hf", "clip_crf": 60}, "clip_crf must be an integer from 0"),
        ({"wrapped": "llava_hf", "pretrained": "x"}, "unknown model argument.*wrapped.pretrained"),
        ({"wrapped": "no_such_model_xyz"}, "wrapped=no_such_model_xyz: Model 'no_such_model_xyz' not found"),
        ({"wrapped": "videoitg"}, "would wrap the wrapper"),
    ],
)
def test_bad_model_arguments_are_named(arguments, message):
    with pytest.raises(PluginArgumentError, match=message):
        VideoITGSimple(**arguments)


def test_frame_indices_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "fi.jsonl"
    with pytest.raises(FrameIndicesError, match="no such file"):
        read_frame_indices(path)
    path.write_text('{"task": "t"}\nnot json\n')
    with pytest.raises(FrameIndicesError, match=r"fi.jsonl:1: missing field\(s\) split, doc_id"):
        read_frame_indices(path)


def test_per_process_files_are_read_together(tmp_path, selector_dir, videos):
    docs = _docs(videos)
    target = tmp_path / "fi.jsonl"
    assert shard_path(target, 0, 1) == target
    for rank, doc_id in ((0, 0), (1, 2)):  # two processes of a 2-process run, each with its share of documents
        os.environ.update(RANK=str(rank), WORLD_SIZE="2")
        try:
            model = VideoITGSimple(selector=str(selector_dir), top_k=2, mode="write", selector_device="cpu",
                                   frame_indices=str(target))  # fmt: skip
        finally:
            del os.environ["RANK"], os.environ["WORLD_SIZE"]
        model.task_dict[TASK] = {"test": docs}
        model.generate_until([_simple_request(docs, doc_id)])
        model.clean()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fi.rank0.jsonl", "fi.rank1.jsonl"]
    assert sorted(read_frame_indices(target)) == [(TASK, 0), (TASK, 2)]


# ------------------------------------------------------------------------------------ end to end, real lmms-eval
TASK_YAML = """\
task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_visual: video
doc_to_text: question
doc_to_target: answer
generation_kwargs:
  max_new_tokens: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""

# Runs lmms-eval's command line with a forward pre-hook on the vision tower of every LLaVA-OneVision model built in
# the run: it records the frames (normalised pixels `[frames, 3, H, W]`) the model encodes, one entry per video.
DRIVER = """\
import sys
import torch
from transformers import LlavaOnevisionForConditionalGeneration

capture, argv = sys.argv[1], sys.argv[2:]
captured = []

def record(module, args, kwargs):
    pixels = args[0] if args else kwargs["pixel_values"]
    captured.append(pixels.detach().cpu().clone())

original_init = LlavaOnevisionForConditionalGeneration.__init__

def init_with_hook(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    self.model.vision_tower.register_forward_pre_hook(record, with_kwargs=True)

LlavaOnevisionForConditionalGeneration.__init__ = init_with_hook
from lmms_eval.__main__ import cli_evaluate

sys.argv = ["lmms_eval", *argv]
cli_evaluate()
torch.save(captured, capture)
"""


def build_tiny_llava_onevision(folder: Path) -> Path:
    """A random LLaVA-OneVision (SigLIP 32 px + Qwen2, ~150k parameters) with a processor built here."""
    from transformers import (
        LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionImageProcessor,
        LlavaOnevisionProcessor, LlavaOnevisionVideoProcessor, Qwen2Config, SiglipVisionConfig,
    )  # fmt: skip

    from videoitg.hub import build_tokenizer

    tokenizer = build_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>", "<video>"]})
    chat_template = (
        "{% for message in messages %}<|{{ message['role'] }}|>{% if message['content'] is string %}"
        "{{ message['content'] }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'video' %}<video>"
        "{% elif item['type'] == 'image' %}<image>{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
        "{% endfor %}{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    tokenizer.chat_template = chat_template
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=8)  # fmt: skip
    text = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                       num_key_value_heads=1, vocab_size=len(tokenizer), max_position_embeddings=512,
                       eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)  # fmt: skip
    config = LlavaOnevisionConfig(
        vision_config=vision, text_config=text, image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlavaOnevisionForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(size={"height": 32, "width": 32}, image_grid_pinpoints=[[32, 32]],
                                                     crop_size={"height": 32, "width": 32}),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer, num_image_tokens=16, vision_feature_select_strategy="full", chat_template=chat_template,
    )  # fmt: skip
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def _unnormalise(pixels: torch.Tensor, processor) -> torch.Tensor:
    """The processor's normalised `[k, 3, H, W]` back to 0..255 values."""
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return (pixels.float() * std + mean) * 255


@pytest.fixture(scope="module")
def lmms_task(tmp_path_factory, videos, selector_dir) -> dict:
    root = tmp_path_factory.mktemp("lmms")
    rows = [{"video": str(path), "question": f"What is shown in video {v}?", "answer": "red"}
            for v, path in enumerate(videos)]  # fmt: skip
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    tasks = root / "tasks"
    tasks.mkdir()
    (tasks / f"{TASK}.yaml").write_text(TASK_YAML.format(task=TASK, data=data))
    (root / "driver.py").write_text(DRIVER)
    return {"root": root, "tasks": tasks, "answerer": build_tiny_llava_onevision(root / "llava"),
            "selector": selector_dir}  # fmt: skip


def run_lmms_eval(setup: dict, name: str, model_args: str, capture: bool, *extra: str) -> dict:
    """One lmms-eval run in a fresh process; returns its samples, captured pixels and output."""
    root = setup["root"]
    out = root / name
    arguments = ["--model", "videoitg", "--model_args", model_args, "--tasks", TASK, "--include_path",
                 str(setup["tasks"]), "--batch_size", "1", "--output_path", str(out), "--log_samples",
                 "--verbosity", "DEBUG", *extra]  # fmt: skip  # DEBUG: an error fails the run instead of a log line
    capture_file = root / f"{name}.pt"
    if capture:
        command = [sys.executable, str(root / "driver.py"), str(capture_file)]
    else:
        command = [sys.executable, "-m", "lmms_eval"]  # lmms-eval's plain command line
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(root / "hf_home"),
               VIDEOITG_CACHE=str(root / "cache"), WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false")  # fmt: skip
    result = subprocess.run(command + arguments, env=env, cwd=root, capture_output=True, text=True, timeout=300)
    output = result.stdout[-4000:] + result.stderr[-4000:]
    assert result.returncode == 0, output
    samples_files = list(out.rglob(f"*_samples_{TASK}.jsonl"))
    assert len(samples_files) == 1, output
    samples = {row["doc_id"]: row for row in map(json.loads, samples_files[0].read_text().splitlines())}
    return {"samples": samples, "captured": torch.load(capture_file) if capture else None, "output": output}


@pytest.mark.slow
def test_lmms_eval_runs_the_plugin_end_to_end(lmms_task, frame_index_reader):
    from transformers import AutoProcessor

    root, selector, answerer = lmms_task["root"], lmms_task["selector"], lmms_task["answerer"]
    common = f"selector={selector},top_k=4,selector_device=cpu"
    llava = f"wrapped=llava_hf,wrapped.pretrained={answerer},wrapped.device_map=cpu"

    # One stage: select and answer (--device reaches the wrapped model).
    one = run_lmms_eval(lmms_task, "one_stage", f"{llava},{common},frame_indices={root}/one.jsonl,"
                        f"clip_dir={root}/clips_one", True, "--force_simple", "--device", "cpu")  # fmt: skip
    # Stage one, lmms-eval's plain command line: no answering model at all.
    run_lmms_eval(lmms_task, "stage_one", f"{common},mode=write,frame_indices={root}/stage1.jsonl", False,
                  "--force_simple", "--predict_only")  # fmt: skip
    # Stage two: the recorded frames, no selector.
    two = run_lmms_eval(lmms_task, "stage_two", f"{llava},wrapped.device=cpu,mode=read,"
                        f"frame_indices={root}/stage1.jsonl,clip_dir={root}/clips_two", True,
                        "--force_simple")  # fmt: skip

    records = _records(root / "one.jsonl")
    assert records == _records(root / "stage1.jsonl")  # both stages of the two-stage flow select the same frames
    assert sorted(records) == [(TASK, 0), (TASK, 1), (TASK, 2)]

    video_processor = AutoProcessor.from_pretrained(answerer).video_processor
    for run in (one, two):
        assert len(run["captured"]) == 3  # one video per document reached the model
        shown_by_video = {}
        for pixels in run["captured"]:
            assert pixels.shape == (4, 3, 32, 32)  # exactly top_k frames, at the answerer's input size
            shown = [frame_index_reader(frame) for frame in _unnormalise(pixels, video_processor)]
            shown_by_video[shown[0] // 1000] = shown
        for doc_id in range(3):
            assert shown_by_video[doc_id] == expected_codes(records[(TASK, doc_id)], doc_id)

    # The model got the same pixels and gave the same answers from both flows.
    for pixels_one, pixels_two in zip(one["captured"], two["captured"]):
        assert torch.equal(pixels_one, pixels_two)
    assert {d: s["resps"] for d, s in one["samples"].items()} == {d: s["resps"] for d, s in two["samples"].items()}
    assert all(sample["resps"] for sample in one["samples"].values())

    # What the model saw is the selector's own decoded frames (through the answerer's processor), not a re-encoding
    # of other frames: lossless clips keep them within chroma rounding.
    for doc_id in range(3):
        record = records[(TASK, doc_id)]
        candidates = load_video(record["video"], sample_fps=record["sample_fps"], max_frames=record["max_frames"],
                                max_side=record["max_side"]).frames  # fmt: skip
        expected = video_processor(videos=[candidates[record["indices"]].permute(0, 2, 3, 1).numpy()],
                                   return_tensors="pt")["pixel_values_videos"][0]  # fmt: skip
        got = next(p for p in one["captured"] if frame_index_reader(_unnormalise(p, video_processor)[0]) // 1000
                   == doc_id)  # fmt: skip
        assert (expected - got).abs().mean() < 0.05
