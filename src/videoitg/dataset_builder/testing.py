"""A scripted OpenAI-compatible server for testing and benchmarking the annotation pipeline without a model.

`ScriptedChatServer` is a real HTTP server (`http.server`, one thread per request) on 127.0.0.1 that answers
`POST /v1/chat/completions` with whatever its `respond(body)` function returns, after an optional latency, and logs
every request (body, times, status, in-flight count). `VidThinkerScript` is such a function: it recognises each
VidThinker prompt by its template and answers from a ground truth — typing answers, key phrases, retrieval replies
(which may be fenced, wrapped in prose or malformed) and the seconds that are relevant to each question. It reads
which second a frame shows from the frame itself: `scripted_frame` draws a scene (large blocks of colour) and
writes the second as 8 grey-level bits along the bottom, faint enough to leave the scene's features unchanged for
Algorithm 1 and clear enough to survive H.264 and JPEG. Faults (429 with Retry-After, 500, hangs, bad content) are
injected per stage and question with `FaultRule`s. `build_scenario` writes such videos, a QA file with one question
per instruction path, and the truths to script.
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from .prompts import PromptSet, load_prompts

FRAME_WIDTH, FRAME_HEIGHT = 64, 48
_BAND_HEIGHT = 8  # bottom rows that carry the second
_CODE_BITS = 8
_BIT_LEVELS = (104, 152)  # grey levels of a 0 bit and a 1 bit


# ------------------------------------------------------------------------------------------------ frame code
def scripted_frame(scene: int, second: int) -> np.ndarray:
    """[48, 64, 3] uint8: scene `scene` (4 x 4 blocks of random saturated colours) showing second `second`."""
    if not 0 <= second < 2**_CODE_BITS:
        raise ValueError(f"second {second} does not fit in {_CODE_BITS} bits")
    rng = np.random.default_rng(1000 + scene)
    colours = rng.choice([20, 235], size=(4, 4, 3)).astype(np.uint8)
    scene_height = FRAME_HEIGHT - _BAND_HEIGHT
    frame = np.empty((FRAME_HEIGHT, FRAME_WIDTH, 3), dtype=np.uint8)
    frame[:scene_height] = np.kron(colours, np.ones((scene_height // 4, FRAME_WIDTH // 4, 1), dtype=np.uint8))
    cell = FRAME_WIDTH // _CODE_BITS
    for bit in range(_CODE_BITS):
        frame[scene_height:, bit * cell : (bit + 1) * cell] = _BIT_LEVELS[second >> bit & 1]
    return frame


def read_second(image) -> int:
    """The second written by `scripted_frame` into an image (JPEG bytes, a PIL image or an [H, W, 3] array)."""
    if isinstance(image, bytes):
        from PIL import Image

        image = Image.open(io.BytesIO(image))
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image, dtype=np.float64)
    height, width = array.shape[:2]
    band_top = height - height * _BAND_HEIGHT // FRAME_HEIGHT
    band = array[band_top + (height - band_top) // 4 : height - (height - band_top) // 4]
    cell = width / _CODE_BITS
    second = 0
    for bit in range(_CODE_BITS):
        middle = band[:, int(bit * cell + cell / 4) : int((bit + 1) * cell - cell / 4)].mean()
        second |= int(middle > sum(_BIT_LEVELS) / 2) << bit
    return second


def write_scripted_video(path: str | Path, scenes: Sequence[int], fps: int = 2) -> Path:
    """A video lasting `len(scenes)` seconds whose second `s` shows scene `scenes[s]` with its code."""
    from ..video import write_video

    frames = (scripted_frame(scene, second) for second, scene in enumerate(scenes) for _ in range(fps))
    return Path(write_video(path, frames, fps=fps, crf=12))


# ------------------------------------------------------------------------------------------------------ server
@dataclass
class ScriptedReply:
    content: str | None = None  # the assistant message (status 200)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # extra wait before answering (a hang when longer than the client's timeout)
    raw_body: str | None = None  # sent as is instead of a chat-completions JSON body


@dataclass
class LoggedRequest:
    body: dict
    received: float
    answered: float | None
    status: int
    authorization: str | None


class ScriptedChatServer:
    """`with ScriptedChatServer(respond) as server: ... server.url ...` (an OpenAI-compatible base URL)."""

    def __init__(self, respond: Callable[[dict], ScriptedReply], latency_s: float = 0.0, api_key: str | None = None):
        self.respond = respond
        self.latency_s = latency_s
        self.api_key = api_key
        self.requests: list[LoggedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedChatServer:
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                received = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                authorization = self.headers.get("Authorization")
                with scripted._lock:
                    scripted.in_flight += 1
                    scripted.max_in_flight = max(scripted.max_in_flight, scripted.in_flight)
                    entry = LoggedRequest(body, received, None, 0, authorization)
                    scripted.requests.append(entry)
                try:
                    time.sleep(scripted.latency_s)
                    if not self.path.rstrip("/").endswith("/chat/completions"):
                        reply = ScriptedReply(status=404, raw_body='{"error": "unknown path"}')
                    elif scripted.api_key is not None and authorization != f"Bearer {scripted.api_key}":
                        reply = ScriptedReply(status=401, raw_body='{"error": "invalid api key"}')
                    else:
                        reply = scripted.respond(body)
                    time.sleep(reply.delay_s)
                    self._send(reply, body)
                    entry.status = reply.status
                    entry.answered = time.time()
                except (BrokenPipeError, ConnectionResetError):
                    entry.status = -1  # the client gave up (timeout) before the answer
                finally:
                    with scripted._lock:
                        scripted.in_flight -= 1

            def _send(self, reply: ScriptedReply, body: dict) -> None:
                if reply.raw_body is not None:
                    payload = reply.raw_body.encode()
                elif reply.status == 200:
                    payload = json.dumps(_completion(body, reply.content or "")).encode()
                else:
                    payload = json.dumps({"error": {"message": f"scripted status {reply.status}"}}).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedChatServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def answered(self) -> list[LoggedRequest]:
        with self._lock:
            return [entry for entry in self.requests if entry.status == 200]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Clients that time out or are killed drop their connections: expected here, not worth a traceback.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def _completion(body: dict, content: str) -> dict:
    text, images = _request_text_and_images(body)
    return {
        "id": "scripted",
        "object": "chat.completion",
        "model": body.get("model", ""),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(text) // 4 + 64 * len(images), "completion_tokens": max(1, len(content) // 4)},
    }


def _request_text_and_images(body: dict) -> tuple[str, list[str]]:
    """The text of the last user message and the data URLs of its images."""
    message = [m for m in body.get("messages", []) if m.get("role") == "user"][0]
    content = message["content"]
    if isinstance(content, str):
        return content, []
    text = "\n".join(part["text"] for part in content if part.get("type") == "text")
    images = [part["image_url"]["url"] for part in content if part.get("type") == "image_url"]
    return text, images


def _image_bytes(data_url: str) -> bytes:
    import base64

    return base64.b64decode(data_url.split(",", 1)[1])


# ------------------------------------------------------------------------------------------------------ script
@dataclass
class ScriptedQuestion:
    """The ground truth of one question, as the scripted models will see it."""

    question: str
    answer: str
    key_phrases: str
    relevant_seconds: frozenset[int] = frozenset()
    retrieval_replies: tuple[str, ...] = ('{"explanation": "none", "clipnum": "None."}',)  # by attempt
    speed: bool = False
    nonexistence: bool = False
    static_details: bool = False


@dataclass
class FaultRule:
    """The next `len(replies)` requests of `stage` (and of `question`, when given) get these replies instead."""

    stage: str
    replies: list[ScriptedReply]
    question: str | None = None


class VidThinkerScript:
    """`respond(body)` for `ScriptedChatServer`: answers the VidThinker prompts from `questions`."""

    def __init__(self, questions: Sequence[ScriptedQuestion], faults: Sequence[FaultRule] = (),
                 prompts: PromptSet | None = None):  # fmt: skip
        self.questions = list(questions)
        self.faults = [FaultRule(rule.stage, list(rule.replies), rule.question) for rule in faults]
        self.prompts = prompts or load_prompts()
        self._lock = threading.Lock()

    def stage_of(self, text: str) -> str:
        for name in ("instruction_speed", "instruction_nonexistence", "instruction_static_details", "key_phrases",
                     "clip_caption", "clip_retrieval", "frame_relevance"):  # fmt: skip
            if self.prompts[name].signature in text:
                return name
        raise LookupError(f"no VidThinker prompt recognised in {text[:120]!r}")

    def question_of(self, text: str, stage: str) -> ScriptedQuestion:
        if stage == "clip_caption":
            # Captions see key phrases (several questions' in video scope): any one of them identifies the video.
            matches = [q for q in self.questions if q.key_phrases in text]
        else:
            matches = [q for q in self.questions if f"Question: {q.question}\n" in text]
        if not matches:
            raise LookupError(f"no scripted question in {text[:200]!r}")
        return matches[0]

    def __call__(self, body: dict) -> ScriptedReply:
        try:
            text, images = _request_text_and_images(body)
            stage = self.stage_of(text)
            question = self.question_of(text, stage)
        except (LookupError, KeyError, IndexError, TypeError) as error:
            return ScriptedReply(status=400, raw_body=json.dumps({"error": str(error)}))
        with self._lock:
            for rule in self.faults:
                if rule.replies and rule.stage == stage and rule.question in (None, question.question):
                    return rule.replies.pop(0)
        attempt = sum(1 for message in body["messages"] if message.get("role") == "assistant")
        if stage == "instruction_speed":
            return ScriptedReply("Yes." if question.speed else "No.")
        if stage == "instruction_nonexistence":
            return ScriptedReply("Yes." if question.nonexistence else "No.")
        if stage == "instruction_static_details":
            return ScriptedReply("Yes" if question.static_details else "No")
        if stage == "key_phrases":
            return ScriptedReply(question.key_phrases)
        if stage == "clip_caption":
            seconds = [read_second(_image_bytes(url)) for url in images]
            return ScriptedReply(f"The clip shows seconds {', '.join(map(str, seconds))}.")
        if stage == "clip_retrieval":
            return ScriptedReply(question.retrieval_replies[min(attempt, len(question.retrieval_replies) - 1)])
        second = read_second(_image_bytes(images[0]))
        return ScriptedReply("Yes" if second in question.relevant_seconds else "No")


def clip_reply(clips: Sequence[int]) -> str:
    """Table 8's JSON answer for 1-based clip numbers (`[]` gives "None.")."""
    if not clips:
        clipnum = "None."
    elif len(clips) == 1:
        clipnum = f"One clip: [Clip-{clips[0]}]"
    else:
        clipnum = "Multiple clips: [" + ", ".join(f"Clip-{n}" for n in clips) + "]"
    return json.dumps({"explanation": "scripted", "clipnum": clipnum})


def seconds_in_text(text: str) -> list[int]:
    """The seconds listed by a scripted caption ("The clip shows seconds 5, 6, 7.")."""
    match = re.search(r"seconds ([\d, ]+)", text)
    return [int(value) for value in match.group(1).split(",")] if match else []


# ---------------------------------------------------------------------------------------------------- scenario
@dataclass
class ScenarioQuestion:
    id: str
    video: str
    kind: str  # the instruction type the scripted answers imply
    truth: ScriptedQuestion
    clips: tuple[int, ...]  # 0-based clips the scripted retrieval names


@dataclass
class Scenario:
    qa_file: Path
    video_root: Path
    questions: list[ScenarioQuestion]
    seconds: dict[str, int]  # video -> duration

    def script(self, faults: Sequence[FaultRule] = ()) -> VidThinkerScript:
        return VidThinkerScript([question.truth for question in self.questions], faults)


# How retrieval replies are worded, in turn: plain JSON, fenced, wrapped in prose, a Python dict.
_REPLY_STYLES = (
    lambda reply: reply,
    lambda reply: f"```json\n{reply}\n```",
    lambda reply: f"Here is my analysis of the clips.\n{reply}\nI hope this helps.",
    lambda reply: repr(json.loads(reply)),
)
# One question of each kind per video, in this order.
SCENARIO_KINDS = ("semantic", "motion", "semantic_motion", "nonexistence", "no_clue", "whole_video")


def build_scenario(folder: str | Path, num_videos: int = 2, seconds: int = 15, clip_seconds: int = 5,
                   kinds: Sequence[str] = SCENARIO_KINDS, seed: int = 0) -> Scenario:  # fmt: skip
    """Videos of `seconds` seconds made of scenes a few seconds long, and one question of each of `kinds` about
    each video, written as a JSONL QA file; the truths the scripted models answer from are returned with them."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    video_root = folder / "videos"
    lines, questions, durations = [], [], {}
    num_clips = -(-seconds // clip_seconds)
    for v in range(num_videos):
        scenes, scene = [], 10 * v
        while len(scenes) < seconds:
            scenes += [scene] * int(rng.integers(2, 5))
            scene += 1
        video = f"clips/video_{v}.mp4"
        write_scripted_video(video_root / video, scenes[:seconds])
        durations[video] = seconds
        for k, kind in enumerate(kinds):
            question_id = f"v{v}q{k}"
            clip = int(rng.integers(0, num_clips))
            clip_frames = list(range(clip * clip_seconds, min((clip + 1) * clip_seconds, seconds)))
            first = int(rng.integers(0, max(1, len(clip_frames) - 2)))
            relevant = frozenset(clip_frames[first : first + 3])
            clips: tuple[int, ...] = (clip,)
            if kind == "motion":
                clips = tuple(sorted({clip, min(num_clips - 1, clip + 1)}))
            elif kind in ("nonexistence", "no_clue"):
                clips = ()
            elif kind == "whole_video":
                clips = tuple(range(num_clips))
            style = _REPLY_STYLES[(v + k) % len(_REPLY_STYLES)]
            truth = ScriptedQuestion(
                question=f"Question {question_id}: what happens with object {k} in video {v}?",
                answer=f"Answer {question_id}.",
                key_phrases=f"Cue {question_id}: object {k} moves.",
                relevant_seconds=relevant,
                retrieval_replies=(style(clip_reply([c + 1 for c in clips])),),
                speed=kind in ("motion", "semantic_motion"),
                nonexistence=kind == "nonexistence",
                static_details=kind == "semantic_motion",
            )  # fmt: skip
            expected_kind = "non_clue" if kind in ("nonexistence", "no_clue", "whole_video") else kind
            questions.append(ScenarioQuestion(question_id, video, expected_kind, truth, clips))
            lines.append(json.dumps({"id": question_id, "video": video, "question": truth.question,
                                     "answer": truth.answer}))  # fmt: skip
    qa_file = folder / "qa.jsonl"
    qa_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Scenario(qa_file, video_root, questions, durations)
