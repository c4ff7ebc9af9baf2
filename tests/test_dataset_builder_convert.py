"""VideoITG-40K converter, annotation quality (Table 7 IoU) and push-dataset."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import pytest

from videoitg.cli import main as cli_main
from videoitg.dataset_builder.convert import convert_videoitg_40k
from videoitg.dataset_builder.publish import push_dataset
from videoitg.dataset_builder.quality import evaluate_annotations, quality_table
from videoitg.dataset_builder.testing import write_scripted_video
from videoitg.dataset_builder.writer import read_rows, write_dataset_folder
from videoitg.video import InvalidInputError

MC_QUESTION = ("What is the man holding when he enters?\nA. A guitar\nB. A drum\nC. A violin\nD. A flute\n"
               "Answer with the option's letter from the given choices directly.")  # fmt: skip


def published_sample(folder: Path) -> tuple[Path, Path, Path]:
    """A small `video_itg_data.json` + `all_clip_desc.json` in the published format, and a video root."""
    video_root = folder / "root"
    write_scripted_video(video_root / "LLaVA-Video-178K/academic/v1.mp4", [0] * 6 + [1] * 6 + [2] * 3)  # 15 s
    write_scripted_video(video_root / "LLaVA-Video-178K/academic/v2.mp4", [3] * 10)  # 10 s
    records = [
        # clip_num is 1-based here: frames 5..7 lie in the second 5-second clip, published as 2.
        {"id": "a1", "video": "LLaVA-Video-178K/academic/v1.mp4", "question": MC_QUESTION, "answer": "A",
         "frame_num": [7, 5, 6], "clip_num": [2], "motion": "No", "existence": "No"},
        {"id": "a2", "video": "LLaVA-Video-178K/academic/v1.mp4", "question": "How fast does the car go?",
         "answer": "Slowly.", "frame_num": [10, 11, 12, 13, 14], "clip_num": [3], "motion": "Yes", "existence": "No",
         "source_dataset": "academic", "quality": 0.9},
        {"id": "a3", "video": "LLaVA-Video-178K/academic/v2.mp4", "question": "Is there a cat?",
         "answer": "No, there is no cat.", "frame_num": [0, 9], "clip_num": [], "motion": "No", "existence": "Yes"},
        {"id": "bad1", "video": "LLaVA-Video-178K/academic/v2.mp4", "question": "Q?", "answer": "A",
         "frame_num": "3,4", "clip_num": [1], "motion": "No", "existence": "No"},
        {"id": "bad2", "video": "LLaVA-Video-178K/academic/v2.mp4", "question": "Q?", "answer": "A",
         "frame_num": [1], "clip_num": [1], "motion": "No"},
        {"id": "bad3", "video": "LLaVA-Video-178K/academic/v2.mp4", "question": "Q?", "answer": "A",
         "frame_num": [1], "clip_num": [1], "motion": "maybe", "existence": "No"},
        {"id": "bad4", "video": "LLaVA-Video-178K/academic/v2.mp4", "question": "Q?", "answer": "A",
         "frame_num": [25], "clip_num": [1], "motion": "No", "existence": "No"},
        42,
        {"id": "a4", "video": "LLaVA-Video-178K/other/v3.mp4", "question": "What happens at the end?",
         "answer": "He leaves.", "frame_num": [16, 17], "clip_num": [4], "motion": "No", "existence": "No"},
    ]  # fmt: skip
    annotations = folder / "video_itg_data.json"
    annotations.write_text(json.dumps(records))
    descriptions = folder / "all_clip_desc.json"
    descriptions.write_text(json.dumps({
        "LLaVA-Video-178K/academic/v1.mp4": {"clip_description": ["A man walks in.", "He holds a guitar.", "A car."]},
        "LLaVA-Video-178K/other/v3.mp4": ["c0", "c1", "c2", "c3"],
        "LLaVA-Video-178K/broken.mp4": {"clip_description": "not a list"},
    }))  # fmt: skip
    return annotations, descriptions, video_root


def test_converter_labels_follow_frame_num_and_malformed_records_are_reported(tmp_path):
    import datasets

    annotations, descriptions, video_root = published_sample(tmp_path)
    report = convert_videoitg_40k(annotations, tmp_path / "out", descriptions, video_root, progress=False)
    assert report.rows == 4 and len(report.malformed) == 6 and report.clip_base == 1
    assert report.clip_agreement == pytest.approx(10 / 11)  # bad4 (frame 25, clip 1) is the one outside
    reasons = {failure["id"]: failure["reason"] for failure in report.malformed}
    assert set(reasons) == {"bad1", "bad2", "bad3", "bad4", "record 7", "clip_descriptions:LLaVA-Video-178K/broken.mp4"}
    assert "`frame_num` must be a list" in reasons["bad1"] and "missing fields ['existence']" in reasons["bad2"]
    assert 'must be "Yes" or "No"' in reasons["bad3"] and "beyond the video's 10 seconds" in reasons["bad4"]
    assert report.unreadable_videos == ["LLaVA-Video-178K/other/v3.mp4"]
    assert report.durations_from == {"video": 3, "clip_descriptions": 1}
    assert "6 malformed records reported" in report.summary()

    rows = {row["id"]: row for row in datasets.load_dataset(str(tmp_path / "out"), split="train")}
    assert list(rows) == ["a1", "a2", "a3", "a4"]
    positives = {key: [i for i, label in enumerate(row["frame_labels"]) if label] for key, row in rows.items()}
    assert positives == {"a1": [5, 6, 7], "a2": [10, 11, 12, 13, 14], "a3": [0, 9], "a4": [16, 17]}
    assert len(rows["a1"]["frame_labels"]) == 15 and rows["a1"]["duration_s"] == pytest.approx(15.0, abs=0.01)
    assert len(rows["a4"]["frame_labels"]) == 20  # duration from the 4 clip descriptions
    assert rows["a1"]["relevant_clips"] == [1] and rows["a1"]["relevant_segments"] == [[5.0, 10.0]]
    assert rows["a2"]["relevant_segments"] == [[10.0, 15.0]]
    assert [rows[key]["instruction_type"] for key in rows] == ["semantic", "motion", "non_clue", "semantic"]
    assert rows["a1"]["options"] == ["A. A guitar", "B. A drum", "C. A violin", "D. A flute"]
    assert rows["a1"]["answer_form"] == "multiple_choice" and rows["a2"]["answer_form"] == "open_ended"
    assert rows["a1"]["question"] == MC_QUESTION and rows["a1"]["video"] == "videos/LLaVA-Video-178K/academic/v1.mp4"
    assert json.loads(rows["a2"]["extra"]) == {"source_dataset": "academic", "quality": 0.9}
    assert json.loads(rows["a2"]["trace"])["motion"] == "Yes" and rows["a2"]["source"] == "videoitg-40k"
    assert (tmp_path / "out" / rows["a1"]["video"]).is_file()
    captions = datasets.load_dataset(str(tmp_path / "out"), "captions", split="train")
    assert captions["caption"] == ["A man walks in.", "He holds a guitar.", "A car.", "c0", "c1", "c2", "c3"]
    assert captions["end_s"][2] == pytest.approx(15.0, abs=0.01) and captions["question_id"][0] is None
    failures = [json.loads(line) for line in (tmp_path / "out" / "failures.jsonl").read_text().splitlines()]
    assert {failure["id"] for failure in failures} == set(reasons)
    card = (tmp_path / "out" / "README.md").read_text()
    assert "6 questions could not be annotated" in card and "config_name: captions" in card


def test_converter_without_videos_or_descriptions_and_its_cli(tmp_path, capsys):
    annotations, _, _ = published_sample(tmp_path)
    assert cli_main(["convert-dataset", "--from", "videoitg-40k", "--annotations", str(annotations),
                     "--out", str(tmp_path / "bare"), "--clip-base", "0", "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "5 rows written, 4 malformed" in printed and "clip_num read as 0-based" in printed
    rows = {row["id"]: row for row in read_rows(tmp_path / "bare")}
    # Without videos the label grid reaches the last labelled frame; bad4 (frame 25) cannot be checked and stays.
    assert len(rows["a1"]["frame_labels"]) == 8 and len(rows["bad4"]["frame_labels"]) == 26
    assert rows["a1"]["relevant_clips"] == [2]
    assert not (tmp_path / "bare" / "captions").exists() and not (tmp_path / "bare" / "videos").exists()
    (tmp_path / "not_a_list.json").write_text('{"id": 1}')
    assert cli_main(["convert-dataset", "--from", "videoitg-40k", "--annotations", str(tmp_path / "not_a_list.json"),
                     "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "expected a list of records" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ annotation quality
def quality_row(question_id: str, labels: list[int], kind: str, form: str, video: str = "v") -> dict:
    return {
        "id": question_id, "video": f"videos/{video}.mp4", "video_id": video, "question": f"question {question_id}",
        "answer": "a", "options": ["A. x", "B. y"] if form == "multiple_choice" else [], "answer_form": form,
        "instruction_type": kind, "relevant_clips": [], "relevant_segments": [], "frame_labels": labels,
        "duration_s": float(len(labels)), "source": "test", "trace": "{}", "extra": "{}",
    }  # fmt: skip


def test_annotation_iou_per_type_and_answer_form(tmp_path, capsys):
    reference = [
        quality_row("q1", [1, 1, 0, 0], "semantic", "multiple_choice", "v1"),
        quality_row("q2", [0, 0, 1, 1], "semantic", "open_ended", "v1"),
        quality_row("q3", [1, 1, 1, 1], "motion", "open_ended", "v2"),
        quality_row("q4", [0, 0, 0, 0], "non_clue", "open_ended", "v2"),
        quality_row("q5", [1, 0, 0, 0], "semantic", "multiple_choice", "v3"),
    ]
    prediction = [
        quality_row("q1", [0, 1, 1, 0], "semantic", "multiple_choice", "v1"),  # IoU 1/3
        quality_row("q2", [0, 0, 1, 1], "motion", "open_ended", "v1"),  # IoU 1 (the reference's type counts)
        quality_row("q3", [1, 0, 0, 0], "motion", "open_ended", "v2"),  # IoU 1/4
        quality_row("q4", [1, 0, 0, 0], "non_clue", "open_ended", "v2"),  # no reference frame: undefined
        quality_row("q9", [1, 1, 1, 1], "semantic", "open_ended", "v9"),  # not in the reference
    ]
    write_dataset_folder(tmp_path / "ref", reference, [], "ref", "test")
    write_dataset_folder(tmp_path / "pred", prediction, [], "pred", "test")
    result = evaluate_annotations(tmp_path / "pred", tmp_path / "ref", num_resamples=200)
    assert (result["matched"], result["only_in_pred"], result["only_in_ref"]) == (4, 1, 1)
    assert result["without_reference_frames"] == 1
    assert result["by_type_and_form"]["semantic/multiple_choice"]["mean"] == pytest.approx(1 / 3)
    assert result["by_type_and_form"]["semantic/open_ended"]["mean"] == pytest.approx(1.0)
    assert result["by_type"]["semantic"]["mean"] == pytest.approx(2 / 3)
    assert result["by_type"]["motion"]["mean"] == pytest.approx(0.25)
    assert result["overall"]["mean"] == pytest.approx((1 / 3 + 1 + 0.25) / 3) and result["overall"]["n"] == 3
    assert result["by_type"]["non_clue"]["n"] == 0
    table = quality_table(result)
    assert "| semantic | 0.33" in table and "| motion | - | 0.25" in table
    # Matching falls back to (video_id, question) when the ids differ.
    renamed = [{**row, "id": f"x{row['id']}"} for row in prediction]
    write_dataset_folder(tmp_path / "renamed", renamed, [], "renamed", "test")
    assert evaluate_annotations(tmp_path / "renamed", tmp_path / "ref", num_resamples=50)["matched"] == 4
    assert cli_main(["eval-annotations", "--pred", str(tmp_path / "pred"), "--ref", str(tmp_path / "ref"),
                     "--out", str(tmp_path / "quality.json")]) == 0  # fmt: skip
    assert "IoU, MC" in capsys.readouterr().out
    assert json.loads((tmp_path / "quality.json").read_text())["matched"] == 4
    write_dataset_folder(tmp_path / "other", [quality_row("z", [1], "semantic", "open_ended", "zz")], [], "o", "t")
    with pytest.raises(InvalidInputError, match="share no question"):
        evaluate_annotations(tmp_path / "other", tmp_path / "ref")


# --------------------------------------------------------------------------------------------------- push
class FolderHub:
    """Stands in for `huggingface_hub.HfApi`: `upload_folder` copies what would be uploaded into `remote`."""

    def __init__(self, remote: Path):
        self.remote = remote
        self.created = []

    def create_repo(self, repo_id, repo_type, private, exist_ok):
        self.created.append((repo_id, repo_type, private))

    def upload_folder(self, repo_id, repo_type, folder_path, allow_patterns, revision, commit_message):
        source = Path(folder_path)
        for path in source.rglob("*"):
            relative = path.relative_to(source).as_posix()
            if path.is_file() and any(fnmatch.fnmatch(relative, pattern) for pattern in allow_patterns):
                (self.remote / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, self.remote / relative)
        return f"https://huggingface.co/datasets/{repo_id}/commit/0"


def test_push_uploads_only_the_dataset_and_can_embed_the_videos(tmp_path):
    import datasets

    annotations, descriptions, video_root = published_sample(tmp_path)
    folder = tmp_path / "out"
    convert_videoitg_40k(annotations, folder, descriptions, video_root, progress=False)
    (folder / ".videoitg").mkdir(exist_ok=True)
    (folder / ".videoitg" / "journal.sqlite").write_text("private")
    with pytest.raises(InvalidInputError, match="1 videos cannot be found to embed"):
        push_dataset(folder, "org/videoitg-sample", embed=True, api=FolderHub(tmp_path / "unused"))
    write_scripted_video(video_root / "LLaVA-Video-178K/other/v3.mp4", [4] * 20)

    plain = FolderHub(tmp_path / "hub_plain")
    url = push_dataset(folder, "org/videoitg-sample", api=plain)
    assert url.endswith("/commit/0") and plain.created == [("org/videoitg-sample", "dataset", False)]
    uploaded = sorted(p.relative_to(plain.remote).as_posix() for p in plain.remote.rglob("*") if p.is_file())
    assert [name.rsplit("-", 1)[0] for name in uploaded] == ["README.md", "captions/train-00000-of-00001",
                                                            "data/train-00000-of-00001"]  # fmt: skip

    embedded = FolderHub(tmp_path / "hub_embedded")
    push_dataset(folder, "org/videoitg-sample", embed=True, private=True, api=embedded)
    loaded = datasets.load_dataset(str(embedded.remote), split="train")
    loaded = loaded.cast_column("video", datasets.Video(decode=False))
    video = loaded[0]["video"]
    assert video["bytes"] == (video_root / "LLaVA-Video-178K/academic/v1.mp4").read_bytes()
    assert video["path"] == "videos/LLaVA-Video-178K/academic/v1.mp4"
    assert not (folder / ".videoitg" / "embedded").exists()
    with pytest.raises(InvalidInputError, match="org/name"):
        push_dataset(folder, "just-a-name", api=plain)
