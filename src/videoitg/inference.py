"""Frame selection for people and scripts: `FrameScorer`, `videoitg select` and `videoitg demo`.

video -> frames (video.py) -> vision features in chunks (with a progress bar) -> frame scores (model)
-> top-k selection -> selection.json, frames.png (contact sheet), scores.png (score curve).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
# The embedded default model (a small model trained on synthetic videos), shipped inside the package.
DEFAULT_MODEL = PACKAGE_DIR / "assets" / "demo-model"
UNTRAINED_NOTE = (
    "no trained model given and no embedded demo checkpoint in this install: using a RANDOMLY INITIALISED "
    "tiny model, so the selection below is meaningless (pass a trained model: --model, or the web demo's model box)"
)


class FrameScorer:
    """A VideoITG model + processor that scores the frames of one video against an instruction."""

    def __init__(self, model, processor, name: str, note: str = ""):
        self.model = model
        self.processor = processor
        self.name = name
        self.note = note
        self._features_of = self._features = None  # the last video's vision features

    @classmethod
    def from_pretrained(cls, model_dir_or_repo: str | os.PathLike | None = None, **kwargs) -> FrameScorer:
        """A folder or Hub id; None = the embedded demo model (random tiny model if none is installed)."""
        from .hub import build_model, load_model

        if model_dir_or_repo is None and DEFAULT_MODEL.is_dir():
            model_dir_or_repo = DEFAULT_MODEL
        if model_dir_or_repo is None:
            model, processor = build_model("tiny", "pooling", seed=0)
            return cls(model, processor, name="random-init tiny (untrained)", note=UNTRAINED_NOTE)
        path = Path(model_dir_or_repo)
        if not path.exists() and (str(model_dir_or_repo).startswith((".", "/")) or path.suffix):
            from .video import InvalidInputError

            raise InvalidInputError(f"{model_dir_or_repo}: no such model folder")
        model, processor = load_model(model_dir_or_repo, **kwargs)
        card = path / "README.md"
        note = ""
        if card.is_file() and "synthetic" in card.read_text(encoding="utf-8").lower():
            note = "this model is trained on synthetic videos (coloured shapes); expect it to know only those"
        return cls(model, processor, name=str(model_dir_or_repo), note=note)

    def load(self, video, progress: bool = False):
        return self.processor.video_processor.load(video, progress=progress)

    def vision_features(self, frames, progress: bool = False):
        """The vision tower's features `[1, T, P, D]` of sampled frames, computed once per video.

        Several questions about one video (an evaluation, the swap control) reuse the last video's features.
        """
        import torch
        from tqdm.auto import tqdm

        if self._features_of is frames:
            return self._features
        model = self.model
        parameter = next(model.parameters())
        pixels = self.processor.video_processor.to_pixel_values(frames.frames).to(parameter.device, parameter.dtype)
        chunk = model.config.vision_chunk_size
        features = []
        with torch.no_grad():
            # The vision pass is the long part: run it here, a chunk at a time, to show progress.
            for start in tqdm(range(0, len(pixels), chunk), desc="scoring frames", unit="chunk", disable=not progress):
                features.append(model.encode_frames(pixels[start : start + chunk]))
        features = torch.cat(features)[None]
        self._features_of, self._features = frames, features
        return features

    def score(self, frames, question: str, progress: bool = False):
        """Scores `[T]` (higher = more relevant) of the sampled frames of one video."""
        import torch

        text = self.processor.encode_instructions(question)
        device = next(self.model.parameters()).device
        with torch.no_grad():
            outputs = self.model.score_frames(
                tokenizer=self.processor.tokenizer,
                input_ids=text["input_ids"].to(device),
                attention_mask=text["attention_mask"].to(device),
                vision_features=self.vision_features(frames, progress=progress),
            )
        return outputs.scores[0].float().cpu()

    def select(self, video, instruction: str, top_k: int | None = None, progress: bool = False) -> dict:
        """The selection of one video as a JSON-ready dict (keys of selection.json)."""
        from .modeling_videoitg import select_top_k

        sampled = self.load(video, progress=progress)
        scores = self.score(sampled, instruction, progress=progress)
        top_k = top_k or self.model.config.num_selected_frames
        selection = select_top_k(scores, sampled.timestamps, top_k)
        return {
            "instruction": instruction,
            "indices": selection.indices,
            "timestamps": selection.timestamps,
            "selected_scores": selection.scores,
            "scores": selection.frame_scores,
            "sampled_timestamps": [float(t) for t in sampled.timestamps],
            "model": self.name,
            "model_note": self.note,
            "video": asdict(sampled.metadata),
            "_sampled": sampled,  # not written to JSON: the decoded frames, for the pictures and for answering
        }


def write_selection(selection: dict, out_dir: str | os.PathLike) -> dict[str, Path]:
    """selection.json, frames.png and scores.png under `out_dir`."""
    from .plots import contact_sheet, score_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = selection["_sampled"].frames
    record = {key: value for key, value in selection.items() if not key.startswith("_")}
    paths = {"selection": out_dir / "selection.json", "frames": out_dir / "frames.png", "scores": out_dir / "scores.png"}
    paths["selection"].write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    title = f"{Path(record['video']['path']).name}: {record['instruction']}"
    if record["model_note"]:
        title += f"\n({record['model']})"
    contact_sheet(frames[record["indices"]], record["timestamps"], record["selected_scores"], paths["frames"], title)
    score_curve(record["sampled_timestamps"], record["scores"], record["indices"], paths["scores"], title)
    return paths


def make_sample_video(path: str | os.PathLike, seconds: int = 40, fps: int = 2, seed: int = 0) -> Path:
    """A short generated video: a drifting background and a few coloured shapes at known times.

    A red circle is on screen from 10 s to 14 s, a blue square moves right from 24 s to 30 s.
    """
    import torch

    from .video import write_video

    width, height = 160, 120
    generator = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 1, 1, generator=generator) * 120 + 40
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")

    def frames():
        for frame_index in range(seconds * fps):
            time_s = frame_index / fps
            frame = (base + 40 * torch.sin((xs + 3 * frame_index) / 17.0) * torch.cos(ys / 13.0)).clamp(0, 255)
            if 10 <= time_s < 14:
                disk = (xs - 50) ** 2 + (ys - 60) ** 2 < 18**2
                frame[:, disk] = torch.tensor([220.0, 30, 30])[:, None]
            if 24 <= time_s < 30:
                left = int(20 + (time_s - 24) * 18)
                box = (xs >= left) & (xs < left + 30) & (ys >= 40) & (ys < 70)
                frame[:, box] = torch.tensor([30.0, 60, 220])[:, None]
            yield frame.to(torch.uint8).permute(1, 2, 0).contiguous()

    return Path(write_video(path, frames(), fps=fps))


# ---------------------------------------------------------------------------------------------- command line
def _print_summary(selection: dict, paths: dict[str, Path]) -> None:
    if selection["model_note"]:
        print(f"note: {selection['model_note']}")
    times = ", ".join(f"{t:.0f}s" for t in selection["timestamps"])
    print(f"selected {len(selection['indices'])} of {len(selection['scores'])} frames: {times}")
    if "answer" in selection:
        print(f"answer ({selection['answer_model']}): {selection['answer']}")
    for name, path in paths.items():
        print(f"wrote {path}  ({name})")


def _quiet_transformers() -> None:
    """Our own bars show decoding and scoring; transformers' weight-loading bar is noise on a command line."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def _select_command(args: argparse.Namespace) -> int:
    from .processing_videoitg import InstructionError
    from .video import probe_video

    # Check the cheap things before loading a model, so bad input fails at once.
    if not args.instruction.strip():
        raise InstructionError("the instruction is empty: say what the frames should show")
    probe_video(args.video)
    _quiet_transformers()
    answerer = None
    if args.answer_model:
        from .answer import load_answerer

        answerer = load_answerer(args.answer_model)  # before the video work: a bad model fails at once
    scorer = FrameScorer.from_pretrained(args.model)
    selection = scorer.select(args.video, args.instruction, top_k=args.top_k, progress=not args.quiet)
    if answerer is not None:
        from .answer import answer_selection

        selection["answer"] = answer_selection(
            answerer, selection["_sampled"], selection["indices"], args.instruction, selector=scorer,
            max_new_tokens=args.max_new_tokens,
        )  # fmt: skip
        selection["answer_model"] = args.answer_model
    _print_summary(selection, write_selection(selection, args.out))
    return 0


def _demo_command(args: argparse.Namespace) -> int:
    if args.web:
        from .web import launch

        _quiet_transformers()
        launch(host=args.host, port=args.port, model=args.model, answer_model=args.answer_model,
               default_top_k=args.top_k)  # fmt: skip
        return 0
    out = Path(args.out)
    video = make_sample_video(out / "sample.mp4")
    instruction = "When does the red circle appear?"
    print(f"demo: generated {video} (a red circle at 10-14 s, a blue square moving right at 24-30 s)")
    print(f"demo: instruction: {instruction!r}")
    _quiet_transformers()
    scorer = FrameScorer.from_pretrained(args.model)
    selection = scorer.select(video, instruction, top_k=args.top_k, progress=True)
    _print_summary(selection, write_selection(selection, out))
    return 0


def add_cli(subparsers) -> None:
    select = subparsers.add_parser("select", help="pick the frames of a video that an instruction needs")
    select.add_argument("video", help="video file")
    select.add_argument("instruction", help="question or instruction about the video")
    select.add_argument("--model", help="model folder or Hub id (default: the embedded demo model)")
    select.add_argument("--top-k", type=int, default=None, help="frames to keep (default: the model's, 32)")
    select.add_argument("--out", default="selection", help="output folder (default: ./selection)")
    select.add_argument("--quiet", action="store_true", help="no progress bars")
    select.add_argument("--answer-model", help="answering Video-LLM, folder or Hub id (LLaVA-OneVision, Qwen2-VL, "
                        "Qwen2.5-VL, ...): answer the instruction from the selected frames")  # fmt: skip
    select.add_argument("--max-new-tokens", type=int, default=64, help="longest answer in tokens (--answer-model)")
    select.set_defaults(func=_select_command)

    demo = subparsers.add_parser("demo", help="the selection on a generated sample video; --web: the web demo")
    demo.add_argument("--model", help="model folder or Hub id (default: the embedded demo model)")
    demo.add_argument("--top-k", type=int, default=8)
    demo.add_argument("--out", default="out/demo")
    demo.add_argument("--web", action="store_true", help="serve the web demo (Gradio) instead")
    demo.add_argument("--host", default=None, help="with --web: address to listen on (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=None, help="with --web: port (default: 7860 or the next free one)")
    demo.add_argument("--answer-model", help="with --web: answering Video-LLM (folder or Hub id) to compare answers")
    demo.set_defaults(func=_demo_command)
