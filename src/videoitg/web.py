"""The web demo (`videoitg demo --web`, and the Hugging Face Space in `space/`): frame selection in a browser.

upload (or a generated sample) -> size and duration checked from the file header -> one decode at the selector's
sampling rate -> the model's scores and top-k frames, uniform frames from the same decode for comparison ->
galleries, the score curve, selection.json and, with an answering model, the answers from both sets of frames.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SUBDIR = "videoitg-web-samples"
DEFAULT_TOP_K = 8
DEFAULT_MAX_UPLOAD_MB = 200.0
DEFAULT_MAX_DURATION_S = 900.0  # 15 minutes: at 1 fps the selector sees up to 512 frames anyway
MAX_TOP_K = 64
# Gradio itself refuses uploads above this multiple of the limit before writing them to disk (with its own
# message); between the limit and this ceiling our handler explains the limit in words.
UPLOAD_CEILING_FACTOR = 2
# Result folders (selection.json, pictures) kept on disk; older ones are deleted so a long-running Space does not
# fill its disk. Gradio copies each result into its own cache when the request returns.
KEPT_RESULT_FOLDERS = 64
# Selector models held in memory at once (the default one included): anyone can type a Hub id in a public Space.
KEPT_MODELS = 3


@dataclass(frozen=True)
class SampleVideo:
    """A generated video offered as an example, with an instruction about it."""

    name: str
    seconds: int
    seed: int
    instruction: str


# Both come from `make_sample_video`: a red circle at 10-14 s and a blue square moving right at 24-30 s, over
# different backgrounds and lengths.
SAMPLES = (
    SampleVideo("red-circle-40s.mp4", seconds=40, seed=0, instruction="When does the red circle appear?"),
    SampleVideo("blue-square-60s.mp4", seconds=60, seed=3, instruction="Where does the blue square move?"),
)


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float
    max_duration_s: float

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def sample_videos(folder: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The sample videos (generated once into `folder`, default: a folder in the temp dir) and their instructions."""
    from .inference import make_sample_video

    folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / SAMPLE_SUBDIR
    samples = []
    for sample in SAMPLES:
        path = folder / sample.name
        if not path.is_file():
            # Write next to the final name and rename, so a half-written file is never taken for a sample.
            partial = make_sample_video(folder / f"partial-{os.getpid()}-{sample.name}", sample.seconds, 1, sample.seed)
            partial.replace(path)
        samples.append((path, sample.instruction))
    return samples


class _ScorerCache:
    """Loaded `FrameScorer`s by model name, each with a lock: a scorer keeps the last video's vision features, so
    two requests must not score on one scorer at the same time. The default model stays; of the others typed in
    the model box only the `KEPT_MODELS - 1` most recently used stay in memory."""

    def __init__(self, default: str):
        self.default = default
        self._lock = threading.Lock()
        self._scorers: OrderedDict[str, tuple[object, threading.Lock]] = OrderedDict()

    def get(self, name: str):
        from .inference import FrameScorer
        from .video import InvalidInputError

        name = name or self.default
        with self._lock:
            if name not in self._scorers:
                try:
                    scorer = FrameScorer.from_pretrained(name or None)
                except InvalidInputError:
                    raise
                except Exception as error:  # a Hub id that does not exist, a folder without weights, ...
                    raise InvalidInputError(f"cannot load the model {name!r}: {error}") from error
                self._scorers[name] = (scorer, threading.Lock())
                others = [key for key in self._scorers if key != self.default]
                for key in others[: max(0, len(others) - (KEPT_MODELS - 1))]:
                    del self._scorers[key]  # a request still using it keeps its own reference
            self._scorers.move_to_end(name)
            return self._scorers[name]


class _ResultFolders:
    """One fresh folder per request under a private temp folder; only the newest `KEPT_RESULT_FOLDERS` are kept."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="videoitg-web-"))
        weakref.finalize(self, shutil.rmtree, self.root, ignore_errors=True)  # when the app goes, or at exit
        self._recent: deque[Path] = deque()
        self._lock = threading.Lock()

    def new(self) -> Path:
        with self._lock:
            folder = Path(tempfile.mkdtemp(dir=self.root))
            self._recent.append(folder)
            while len(self._recent) > KEPT_RESULT_FOLDERS:
                shutil.rmtree(self._recent.popleft(), ignore_errors=True)
            return folder


def _size_text(num_bytes: float) -> str:
    for unit, scale in (("GB", 2**30), ("MB", 2**20)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f} {unit}"
    return f"{num_bytes / 2**10:.0f} KB"


def check_video(path: str | os.PathLike, limits: Limits):
    """The video's metadata, after checking its size and (from the header, without decoding) its duration."""
    from .video import InvalidInputError, probe_video

    size = os.path.getsize(path)
    if size > limits.max_upload_bytes:
        raise InvalidInputError(
            f"the video is {_size_text(size)}; this demo takes videos up to {_size_text(limits.max_upload_bytes)}"
        )
    metadata = probe_video(path)
    if metadata.duration_s > limits.max_duration_s:
        raise InvalidInputError(
            f"the video lasts {metadata.duration_s:.0f} s; this demo takes videos up to {limits.max_duration_s:g} s"
        )
    return metadata


def _gallery(frames, positions: list[int], timestamps: list[float], scores: list[float]) -> list[tuple]:
    """Gallery items (H x W x 3 array, caption) in temporal order."""
    return [
        (frames[position].permute(1, 2, 0).numpy(), f"{timestamps[position]:.1f} s · score {scores[position]:.2f}")
        for position in positions
    ]


def _note_line(scorer, metadata, num_sampled: int) -> str:
    line = f"**Model:** `{scorer.name}`"
    if scorer.note:
        line += f" — {scorer.note}"
    video = f"{metadata.duration_s:.0f} s, {metadata.width}x{metadata.height}, {num_sampled} frames sampled"
    return f"{line}  \n**Video:** {video}"


def build_app(
    model: str | None = None,
    answer_model: str | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_duration_s: float = DEFAULT_MAX_DURATION_S,
    concurrency: int = 1,
    max_queue: int = 16,
    default_top_k: int = DEFAULT_TOP_K,
    sample_dir: str | os.PathLike | None = None,
):
    """The Gradio app.

    Args:
        model: the default selector (folder or Hub id) shown in the model box; None = the embedded demo model.
        answer_model: an answering Video-LLM (folder or Hub id, see `videoitg.answer`); when given, the app also
            answers the instruction from the selected frames and from uniform frames.
        max_upload_mb / max_duration_s: larger or longer videos are refused with a message.
        concurrency: requests processed at once; max_queue: requests waiting (more are turned away).
        default_top_k: the top-k slider's starting value.
        sample_dir: where the sample videos are generated (once).
    """
    import gradio as gr

    from .selection import uniform_indices
    from .video import InvalidInputError

    limits = Limits(max_upload_mb=max_upload_mb, max_duration_s=max_duration_s)
    scorers = _ScorerCache(default=model or "")
    scorers.get("")  # load the default model now: a bad --model fails at start, and request one is quick
    results = _ResultFolders()
    answerer = None
    if answer_model:
        from .answer import answer_selection, load_answerer

        answerer = load_answerer(answer_model)

    # Gradio finds the progress tracker by its default value (its documented idiom), so the call stays there.
    def select_frames(video, instruction, top_k, model_name, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        """One request: check, decode once, score, select; the uniform frames and the answers reuse the decode."""
        from .inference import write_selection

        try:
            if not video:
                raise InvalidInputError("no video: upload one or pick a sample below")
            instruction = (instruction or "").strip()
            if not instruction:
                raise InvalidInputError("the instruction is empty: say what the frames should show")
            top_k = int(top_k)  # the slider has checked its bounds
            progress(0, desc="checking the video")
            metadata = check_video(video, limits)
            progress(0, desc="loading the model")
            scorer, scorer_lock = scorers.get((model_name or "").strip())
            sampled = scorer.load(video, progress=True)
            uniform = uniform_indices(len(sampled.frames), top_k)
            # The lock also covers answering: the answerer may reuse the scorer's vision features of this video.
            with scorer_lock:
                selection = scorer.select(sampled, instruction, top_k=top_k, progress=True)
                answers = []
                if answerer is not None:
                    progress(1, desc="answering from the selected and from the uniform frames")
                    answers = [
                        answer_selection(answerer, sampled, indices, instruction, selector=scorer)
                        for indices in (selection["indices"], uniform)
                    ]
        except InvalidInputError as error:
            # Bad input is the user's to fix: a message in the page, no traceback.
            raise gr.Error(str(error), title="Cannot select frames", print_exception=False) from error
        progress(1, desc="drawing the results")
        paths = write_selection(selection, results.new())
        scores, times = selection["scores"], selection["sampled_timestamps"]
        return [
            _gallery(sampled.frames, selection["indices"], times, scores),
            _gallery(sampled.frames, uniform, times, scores),
            str(paths["scores"]),
            [str(paths["selection"]), str(paths["frames"])],
            _note_line(scorer, metadata, len(times)),
            *answers,
        ]

    with gr.Blocks(title="VideoITG: instruction-guided frame selection") as app:
        gr.Markdown(
            "# VideoITG: instruction-guided frame selection\n"
            "Upload a video (or pick a sample), say what you want to know, and the model picks the frames a "
            "video LLM should look at. Uniformly spaced frames are shown beside them for comparison. "
            f"Videos up to {_size_text(limits.max_upload_bytes)} and {limits.max_duration_s:g} s."
        )
        with gr.Row():
            with gr.Column(scale=3):
                video = gr.Video(label="Video", sources=["upload"], height=360, elem_id="video")
            with gr.Column(scale=2):
                instruction = gr.Textbox(label="Instruction", placeholder="e.g. When does the red circle appear?",
                                         lines=2, elem_id="instruction")  # fmt: skip
                top_k = gr.Slider(1, MAX_TOP_K, value=default_top_k, step=1, label="Frames to select (top-k)")
                model_box = gr.Textbox(
                    label="Selector model", value=model or "",
                    placeholder="empty: the embedded demo model; or a model folder or Hub id", elem_id="model",
                )  # fmt: skip
                button = gr.Button("Select frames", variant="primary", elem_id="select-button")
        gr.Examples([[str(path), text] for path, text in sample_videos(sample_dir)], inputs=[video, instruction],
                    label="Samples (generated videos)")  # fmt: skip
        note = gr.Markdown(label="Model and video", elem_id="note")
        with gr.Row():
            selected = gr.Gallery(label="Selected frames (VideoITG)", columns=4, elem_id="selected-frames")
            uniform = gr.Gallery(label="Uniform frames (same count)", columns=4, elem_id="uniform-frames")
        plot = gr.Image(label="Frame scores over time (selected frames in red)", type="filepath", elem_id="scores")
        answer_boxes = []
        if answerer is not None:
            with gr.Row():
                answer_boxes = [
                    gr.Textbox(label="Answer from the selected frames", elem_id="answer-selected"),
                    gr.Textbox(label="Answer from uniform frames", elem_id="answer-uniform"),
                ]
        downloads = gr.File(label="selection.json and contact sheet", file_count="multiple", elem_id="downloads")
        outputs = [selected, uniform, plot, downloads, note, *answer_boxes]
        button.click(select_frames, inputs=[video, instruction, top_k, model_box], outputs=outputs, api_name="select")
    app.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    return app


def launch(
    host: str | None = None,
    port: int | None = None,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    **build_options,
):
    """Build the app and serve it (host/port None: Gradio's defaults, which honour GRADIO_SERVER_NAME/PORT as
    Spaces set them). Returns the app; with `prevent_thread_lock` it returns at once (close it with `.close()`)."""
    app = build_app(max_upload_mb=max_upload_mb, **build_options)
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        max_file_size=int(max_upload_mb * UPLOAD_CEILING_FACTOR * 2**20),
    )
    return app
