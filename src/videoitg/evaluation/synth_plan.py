"""Planning one synthetic video: its duration, the events it shows, the questions asked about them and their exact
ground truth. Pure computation from a seed (no drawing, no files), so annotations are reproducible bit for bit.

How a video is planned:

1. Duration: log-uniform between the minimum and maximum (integer seconds).
2. Slots: two tracks of back-to-back events (1-10 s each, 0-3 s apart), so that one or two events are on screen
   most of the time and any question's evidence is a small part of the video.
3. Questions first: each question template claims the slots of the events it asks about, gives them looks, and
   *reserves* its cue (e.g. "shape = star" for "What colour is the star?"), so that no other event matches it.
4. Distractors: every other slot gets a random look that matches no reserved cue.
5. Placement: sprites get positions where they never overlap another sprite on screen at the same time.
6. Verification: each question's cue is matched against the final event list; it must pick exactly the planned
   events. Answers and evidence are read from the final events, not from the plan.

Labelling follows sec. 3.2 of the VideoITG paper: semantic questions need the frames that show the asked
object(s), motion questions every 1-fps frame of the movement (the whole event), semantic + motion both, and
non-clue questions (and existence questions answered "no") a small diverse set of windows at the beginning,
middle and end of the video.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .metrics import labels_from_segments
from .synth_scene import (
    COLOURS,
    DIGITS,
    DIRECTIONS,
    MIN_MOTION_SECONDS,
    SHAPES,
    SPEEDS,
    WORDS,
    Event,
    Look,
    ScenePlan,
    boxes_clash,
    longest_motion_s,
    plan_shots,
    shape_size_range,
    sprite_size,
    velocity,
)

COLOUR_NAMES = tuple(COLOURS)
TRACKS = 2
MAX_EVENT_S = 10
MAX_GAP_S = 3
TEXT_SHARE = 0.2  # of events that show a text instead of a shape
MOVING_SHARE = 0.5  # of shape events long enough to move
QUESTIONS_PER_VIDEO = (4, 8)
# Videos longer than this many seconds are sampled at fewer than 1 fps by a 512-frame model: events then last at
# least ceil(duration / 512) s so that every event still holds a sampled frame.
MAX_MODEL_FRAMES = 512
CLIP_SECONDS = 5
DIVERSE_WINDOWS = 3  # beginning, middle, end
MC_SUFFIX = "Answer with the option's letter from the given choices directly."
OPTION_LETTERS = "ABCD"
_ATTEMPTS = 40

# A cue: (field, value) pairs that an event's look must all have to match, e.g. (("colour", "red"), ("shape", "star")).
Predicate = tuple[tuple[str, str], ...]


def matches(look: Look, predicate: Predicate) -> bool:
    return all(getattr(look, name) == value for name, value in predicate)


def _pick(rng: np.random.Generator, items: Sequence):
    return items[int(rng.integers(len(items)))]


@dataclass(frozen=True)
class PlanSettings:
    min_seconds: int = 30
    max_seconds: int = 900
    fps: int = 4
    width: int = 128
    height: int = 96
    allow_held_out: bool = False  # test split: held-out combinations may be rendered
    force_held_out: bool = False  # test split: one question per video about a held-out combination


@dataclass(frozen=True)
class Slot:
    index: int
    track: int
    start_s: int
    length_s: int


@dataclass(frozen=True)
class Template:
    """A question template. `cue` names the look fields that identify the asked event(s); `answer` the field the
    answer reads (or "yes"); `target` the kind of event it needs ("shape", "mover", "text", or None)."""

    name: str
    instruction_type: str
    weight: float
    question: str
    cue: tuple[str, ...] = ()
    answer: str = ""
    target: str | None = "shape"
    fixed: tuple[tuple[str, object], ...] = ()
    family: str = ""  # templates of one family share `limit` per video
    limit: int = 8

    @property
    def fixed_values(self) -> dict:
        values = dict(self.fixed)
        if self.target == "mover":
            values["moving"] = True
        elif self.target in ("shape", "text"):
            values["kind"] = self.target
        return values


TEMPLATES: tuple[Template, ...] = (
    # semantic
    Template("colour_of_shape", "semantic", 1.0, "What colour is the {shape}?", ("shape",), "colour", limit=2),
    Template("shape_of_colour", "semantic", 0.6, "What shape is the {colour} object?", ("colour",), "shape", limit=1),
    Template("colour_of_text", "semantic", 0.6, "What colour is the {name}?", ("text",), "colour", "text", limit=2),
    Template("number_in_colour", "semantic", 0.4, "Which number is shown in {colour}?", ("text_kind", "colour"), "text",
             "text", fixed=(("text_kind", "digit"),), limit=1),  # fmt: skip
    Template("next_after", "semantic", 0.8, "What appears right after the {colour} {shape}?", ("colour", "shape")),
    Template("count", "semantic", 0.6, "How many times does a {colour} {shape} appear?", ("colour", "shape")),
    Template("exists_yes", "semantic", 0.6, "Is there a {colour} {shape} in the video?", ("colour", "shape"), "yes"),
    Template("exists_no", "semantic", 0.6, "Is there a {colour} {shape} in the video?", ("colour", "shape"),
             target=None, limit=1),  # fmt: skip
    # motion
    Template("direction_of", "motion", 1.0, "Which way does the {colour} {shape} move?", ("colour", "shape"),
             "direction", "mover"),  # fmt: skip
    Template("speed_of", "motion", 0.6, "Does the {colour} {shape} move slowly or quickly?", ("colour", "shape"),
             "speed", "mover"),  # fmt: skip
    Template("faster", "motion", 0.8, "Which moves faster, the {first} or the {second}?", ("colour", "shape"),
             target="mover"),  # fmt: skip
    # semantic + motion
    Template("colour_of_direction", "semantic_motion", 0.7, "What colour is the object that moves {direction}?",
             ("direction",), "colour", "mover", family="direction", limit=1),  # fmt: skip
    Template("shape_of_direction", "semantic_motion", 0.6, "Which shape moves {direction}?", ("direction",), "shape",
             "mover", family="direction", limit=1),  # fmt: skip
    Template("colour_of_shape_direction", "semantic_motion", 1.0, "What colour is the {shape} that moves {direction}?",
             ("shape", "direction"), "colour", "mover"),  # fmt: skip
    # non-clue
    Template("describe", "non_clue", 0.6, "", target=None, limit=1),
)
TEMPLATES_BY_NAME = {template.name: template for template in TEMPLATES}
_DESCRIBE_QUESTIONS = ("Describe the video.", "What happens in the video?", "Summarize the video.")
_DESCRIBE_TRUE = "Coloured shapes, numbers and words appear and move over changing scenes."
_DESCRIBE_FALSE = (
    "A person cooks a meal in a kitchen.",
    "Two teams play a football match in a stadium.",
    "A presenter reads the weather forecast.",
    "A cat sleeps on a sofa.",
    "A car drives along a coastal road at night.",
)
_SPEED_WORDS = {"slow": "slowly", "fast": "quickly"}
_VOCABULARY = {
    "colour": COLOUR_NAMES,
    "shape": SHAPES,
    "direction": DIRECTIONS,
    "speed": tuple(_SPEED_WORDS[speed] for speed in SPEEDS),
    "text": DIGITS,
    "yes": ("Yes", "No"),
}


def sample_look(
    rng: np.random.Generator, slot_length_s: int, fixed: Mapping[str, object], allow_held_out: bool
) -> Look | None:
    """A random look for an event of `slot_length_s` seconds, with the `fixed` fields given; None when the fixed
    fields cannot be met (a movement in a too-short slot) or the look is held out where it may not be."""
    if fixed.get("kind"):
        kind = fixed["kind"]
    elif any(name in fixed for name in ("shape", "direction", "speed", "moving")):
        kind = "shape"
    elif any(name in fixed for name in ("text", "text_kind")):
        kind = "text"
    else:
        kind = "text" if rng.random() < TEXT_SHARE else "shape"
    colour = fixed.get("colour") or _pick(rng, COLOUR_NAMES)
    if kind == "text":
        text_kind = fixed.get("text_kind") or ("digit" if rng.random() < 0.5 else "word")
        text = fixed.get("text") or _pick(rng, DIGITS if text_kind == "digit" else WORDS)
        return Look("text", colour, text=text)
    shape = fixed.get("shape") or _pick(rng, SHAPES)
    long_enough = slot_length_s >= MIN_MOTION_SECONDS
    if "moving" in fixed or "direction" in fixed or "speed" in fixed:
        moving = bool(fixed.get("moving", True))
        if moving and not long_enough:
            return None
    else:
        moving = long_enough and rng.random() < MOVING_SHARE
    direction = speed = None
    if moving:
        direction = fixed.get("direction") or _pick(rng, DIRECTIONS)
        speed = fixed.get("speed") or _pick(rng, SPEEDS)
    look = Look("shape", colour, shape=shape, direction=direction, speed=speed)
    if look.held_out and not allow_held_out:
        return None
    return look


def sample_duration(rng: np.random.Generator, min_seconds: int, max_seconds: int) -> int:
    """Log-uniform: as many 30-60 s videos as 7.5-15 min ones."""
    return int(round(math.exp(rng.uniform(math.log(min_seconds), math.log(max_seconds)))))


def plan_slots(rng: np.random.Generator, duration_s: int, min_event_s: int) -> list[Slot]:
    slots: list[Slot] = []
    for track in range(TRACKS):
        start = int(rng.integers(0, MAX_GAP_S))
        while True:
            length = min(int(rng.integers(min_event_s, MAX_EVENT_S + 1)), duration_s - start)
            if length < min_event_s:
                break
            slots.append(Slot(len(slots), track, start, length))
            start += length + int(rng.integers(0, MAX_GAP_S + 1))
    return slots


def diverse_windows(duration_s: int) -> list[list[float]]:
    """The "small diverse set over the whole video": a window centred in each third of the video (beginning,
    middle, end). Windows are 1/8 of the video wide so that any 8 frames spread evenly over the video (the paper's
    strategy for such questions) hold one frame in each, whatever their phase."""
    width = max(2, math.ceil(duration_s / 8))
    windows = []
    for part in range(DIVERSE_WINDOWS):
        centre = (2 * part + 1) * duration_s / (2 * DIVERSE_WINDOWS)
        start = min(max(0, round(centre - width / 2)), duration_s - width)
        windows.append([float(start), float(start + width)])
    return windows


def clips_from_segments(segments: Sequence[Sequence[float]]) -> list[int]:
    """Ids of the 5-second clips (clip c covers [5c, 5c + 5)) that the segments overlap."""
    clips = set()
    for start, end in segments:
        first = math.floor(start / CLIP_SECONDS)
        clips.update(range(first, max(first + 1, math.ceil(end / CLIP_SECONDS))))
    return sorted(clips)


# --------------------------------------------------------------------------------------------- question planning
@dataclass
class Draft:
    """A planned question: its cues (one per asked object), the slots planned for each cue, and for "no"-existence
    questions the look that is absent."""

    template: Template
    cues: list[Predicate] = field(default_factory=list)
    targets: list[list[int]] = field(default_factory=list)
    absent: Look | None = None
    count: int = 0  # "count" questions: appearances planned


class QuestionPlanner:
    """Claims slots for the asked events and keeps the cue reservations that distractors must respect."""

    def __init__(self, rng: np.random.Generator, slots: Sequence[Slot], settings: PlanSettings):
        self.rng = rng
        self.slots = slots
        self.settings = settings
        self.claimed: dict[int, Look] = {}
        self.reservations: list[Predicate] = []
        self.drafts: list[Draft] = []

    # ------------------------------------------------------------------ checks
    def cue_is_free(self, predicate: Predicate) -> bool:
        """No already-planned event matches the cue (its question would not be about a unique event)."""
        return not any(matches(look, predicate) for look in self.claimed.values())

    def look_is_free(self, look: Look) -> bool:
        """The look matches no reserved cue (it would become a second answer to another question)."""
        return not any(matches(look, predicate) for predicate in self.reservations)

    def _free_slots(self, min_length_s: int) -> list[Slot]:
        return [slot for slot in self.slots if slot.index not in self.claimed and slot.length_s >= min_length_s]

    def _new_target(self, template: Template, fixed: Mapping) -> tuple[Slot, Look, Predicate] | None:
        """A free slot, a look for it and the cue that identifies it, all consistent with earlier questions."""
        min_length = MIN_MOTION_SECONDS if template.target == "mover" else 1
        for _ in range(_ATTEMPTS):
            free = self._free_slots(min_length)
            if not free:
                return None
            slot = _pick(self.rng, free)
            look = sample_look(self.rng, slot.length_s, fixed, self.settings.allow_held_out)
            if look is None:
                continue
            cue = tuple((name, getattr(look, name)) for name in sorted(template.cue))
            if self.cue_is_free(cue) and self.look_is_free(look):
                return slot, look, cue
        return None

    def _commit(self, draft: Draft, chosen: Sequence[tuple[Sequence[Slot], Sequence[Look], Predicate]]) -> Draft:
        for slots, looks, cue in chosen:
            for slot, look in zip(slots, looks):
                self.claimed[slot.index] = look
            self.reservations.append(cue)
            draft.cues.append(cue)
            draft.targets.append([slot.index for slot in slots])
        self.drafts.append(draft)
        return draft

    # ------------------------------------------------------------------ templates
    def plan(self, template: Template, hint: Mapping | None = None) -> Draft | None:
        """Plan one question of `template` (its first asked event shows `hint`'s fields when given)."""
        fixed = {**template.fixed_values, **(hint or {})}
        draft = Draft(template)
        if template.name == "describe":
            self.drafts.append(draft)
            return draft
        if template.name == "exists_no":
            return self._plan_absent(draft, fixed)
        if template.name == "count":
            return self._plan_count(draft, fixed)
        if template.name == "faster":
            return self._plan_faster(draft, fixed)
        found = self._new_target(template, fixed)
        if found is None:
            return None
        slot, look, cue = found
        return self._commit(draft, [([slot], [look], cue)])

    def _plan_absent(self, draft: Draft, fixed: Mapping) -> Draft | None:
        for _ in range(_ATTEMPTS):
            look = sample_look(self.rng, 1, {**fixed, "kind": "shape", "moving": False}, self.settings.allow_held_out)
            if look is None:
                continue
            cue = (("colour", look.colour), ("shape", look.shape))
            if self.cue_is_free(cue):
                draft.absent = look
                return self._commit(draft, [([], [], cue)])
        return None

    def _plan_count(self, draft: Draft, fixed: Mapping) -> Draft | None:
        found = self._new_target(draft.template, fixed)
        if found is None:
            return None
        first_slot, first_look, cue = found
        count = int(self.rng.integers(2, 4))
        slots, looks = [first_slot], [first_look]
        # Appearances at least 2 s apart, so that 1-fps frames show them as separate appearances.
        candidates = [
            slot for slot in self._free_slots(1)
            if slot.index != first_slot.index and self._apart(slot, slots)
        ]  # fmt: skip
        while len(slots) < count and candidates:
            slot = candidates.pop(int(self.rng.integers(len(candidates))))
            if not self._apart(slot, slots):
                continue
            look = sample_look(self.rng, slot.length_s, dict(cue), self.settings.allow_held_out)
            if look is None or not self.look_is_free(look):
                continue
            slots.append(slot)
            looks.append(look)
        if len(slots) < 2:
            return None
        draft.count = len(slots)
        return self._commit(draft, [(slots, looks, cue)])

    @staticmethod
    def _apart(slot: Slot, others: Sequence[Slot], gap_s: int = 2) -> bool:
        return all(
            slot.start_s >= other.start_s + other.length_s + gap_s
            or other.start_s >= slot.start_s + slot.length_s + gap_s
            for other in others
        )

    def _plan_faster(self, draft: Draft, fixed: Mapping) -> Draft | None:
        speeds = list(SPEEDS)
        self.rng.shuffle(speeds)
        first = self._new_target(draft.template, {**fixed, "speed": speeds[0]})
        if first is None:
            return None
        # The second mover must not match the first one's cue either: claim the first before looking.
        self.claimed[first[0].index] = first[1]
        self.reservations.append(first[2])
        second = self._new_target(draft.template, {"moving": True, "speed": speeds[1]})
        del self.claimed[first[0].index]
        self.reservations.pop()
        if second is None:
            return None
        return self._commit(draft, [([first[0]], [first[1]], first[2]), ([second[0]], [second[1]], second[2])])


# ------------------------------------------------------------------------------------------------------ placing
def _place(
    rng: np.random.Generator, slot: Slot, look: Look, settings: PlanSettings, on_screen: list[list[Event]]
) -> Event | None:
    """A position for the look where it clashes with no event already on screen; None when none is found."""
    frame = (settings.width, settings.height)
    low, high = shape_size_range(settings.height)
    size = sprite_size(look, settings.height, int(rng.integers(low, high + 1)))
    length = slot.length_s
    if look.moving:
        length = min(length, longest_motion_s(look, size, frame))
    vx, vy = velocity(look, settings.width)
    end = slot.start_s + length
    x_range = (max(0.0, -vx * length), min(settings.width - size[0], settings.width - size[0] - vx * length))
    y_range = (max(0.0, -vy * length), min(settings.height - size[1], settings.height - size[1] - vy * length))
    neighbours = {id(event): event for second in range(slot.start_s, end) for event in on_screen[second]}
    for _ in range(_ATTEMPTS):
        x = float(round(rng.uniform(*x_range)))
        y = float(round(rng.uniform(*y_range)))
        event = Event(slot.index, look, slot.start_s, end, x, y, size[0], size[1], vx, vy)
        if not any(boxes_clash(event, other, settings.fps) for other in neighbours.values()):
            for second in range(slot.start_s, end):
                on_screen[second].append(event)
            return event
    return None


# ---------------------------------------------------------------------------------------------------- the video
@dataclass
class QuestionRecord:
    """One finished question with its ground truth (times in seconds, labels on the 1-fps grid)."""

    template: str
    instruction_type: str
    question: str
    answer: str
    options: list[str]
    answer_form: str
    existence: bool
    segments: list[list[float]]
    attributes: dict


@dataclass
class VideoPlan:
    scene: ScenePlan
    questions: list[QuestionRecord]

    @property
    def event_frame_labels(self) -> list[int]:
        return labels_from_segments([event.segment for event in self.scene.events], self.scene.duration_s)


def plan_video(seed: Sequence[int] | int, settings: PlanSettings) -> VideoPlan:
    """The whole plan of one video from its seed (see the module docstring for the steps)."""
    rng = np.random.default_rng(seed)
    duration = sample_duration(rng, settings.min_seconds, settings.max_seconds)
    slots = plan_slots(rng, duration, max(1, math.ceil(duration / MAX_MODEL_FRAMES)))

    planner = QuestionPlanner(rng, slots, settings)
    wanted = int(rng.integers(QUESTIONS_PER_VIDEO[0], QUESTIONS_PER_VIDEO[1] + 1))
    if settings.force_held_out:
        _plan_held_out_question(rng, planner)
    for _ in range(6 * wanted):
        if len(planner.drafts) >= wanted:
            break
        used = [draft.template.family or draft.template.name for draft in planner.drafts]
        open_templates = [t for t in TEMPLATES if used.count(t.family or t.name) < t.limit]
        weights = np.array([t.weight for t in open_templates])
        planner.plan(open_templates[int(rng.choice(len(open_templates), p=weights / weights.sum()))])

    # Distractors for the unclaimed slots: random looks that match no reserved cue.
    looks = dict(planner.claimed)
    for slot in slots:
        if slot.index in looks:
            continue
        for _ in range(_ATTEMPTS):
            look = sample_look(rng, slot.length_s, {}, settings.allow_held_out)
            if look is not None and planner.look_is_free(look):
                looks[slot.index] = look
                break

    # Asked events are placed first, so that a crowded moment drops a distractor rather than a question.
    on_screen: list[list[Event]] = [[] for _ in range(duration)]
    placed: dict[int, Event] = {}
    order = sorted(looks, key=lambda index: (index not in planner.claimed, slots[index].start_s, index))
    for index in order:
        event = _place(rng, slots[index], looks[index], settings, on_screen)
        if event is not None:
            placed[index] = event
    # Final ids in order of appearance.
    ordered = sorted(placed.values(), key=lambda event: (event.start_s, event.end_s, event.event_id))
    renumber = {event.event_id: number for number, event in enumerate(ordered)}
    events = tuple(
        Event(number, e.look, e.start_s, e.end_s, e.x, e.y, e.width, e.height, e.vx, e.vy)
        for number, e in enumerate(ordered)
    )
    scene = ScenePlan(duration, settings.fps, settings.width, settings.height, events, tuple(plan_shots(rng, duration)))

    questions = []
    for draft in planner.drafts:
        targets = [[renumber.get(index) for index in planned] for planned in draft.targets]
        if any(number is None for planned in targets for number in planned):
            continue  # an asked event found no room on screen
        record = _write_question(rng, draft, [[events[n] for n in planned] for planned in targets], scene)
        if record is not None:
            questions.append(record)
    return VideoPlan(scene, questions)


def _plan_held_out_question(rng: np.random.Generator, planner: QuestionPlanner) -> None:
    """Test split: the first question is about a held-out colour-shape or colour-direction combination."""
    from .synth_scene import HELD_OUT_COLOUR_DIRECTIONS, HELD_OUT_COLOUR_SHAPES

    for _ in range(_ATTEMPTS):
        if rng.random() < 0.5:
            colour, shape = _pick(rng, sorted(HELD_OUT_COLOUR_SHAPES))
            hint, kinds = {"colour": colour, "shape": shape}, ("shape", "mover")
        else:
            colour, direction = _pick(rng, sorted(HELD_OUT_COLOUR_DIRECTIONS))
            hint, kinds = {"colour": colour, "direction": direction}, ("mover",)
        candidates = [template for template in TEMPLATES if template.target in kinds]
        if planner.plan(_pick(rng, candidates), hint) is not None:
            return


# ------------------------------------------------------------------------------------------------------ writing
def _verify(draft: Draft, asked: Sequence[Sequence[Event]], events: Sequence[Event]) -> None:
    """Each cue must pick exactly its planned events in the final video: else the question is ambiguous (a bug)."""
    for cue, planned in zip(draft.cues, asked):
        found = [event.event_id for event in events if matches(event.look, cue)]
        expected = sorted(event.event_id for event in planned)
        if found != expected:
            raise RuntimeError(f"{draft.template.name}: cue {cue} matches events {found}, planned {expected}")


def _answer_text(name: str, look: Look) -> str:
    if name == "yes":
        return "Yes"
    if name == "speed":
        return _SPEED_WORDS[look.speed]
    return str(getattr(look, name))


def _write_question(
    rng: np.random.Generator, draft: Draft, asked: list[list[Event]], scene: ScenePlan
) -> QuestionRecord | None:
    """The question text, answer (and options) and evidence of a draft, read from the final events."""
    template, events = draft.template, scene.events
    _verify(draft, asked, events)
    evidence = [event for group in asked for event in group]  # the events whose frames are required
    mentioned = [event.look for event in evidence]  # looks the question or answer is about
    segments: list[list[float]] | None = None  # None: the events' own segments
    if template.name == "describe":
        segments = diverse_windows(scene.duration_s)
        question, answer, wrong = _pick(rng, _DESCRIBE_QUESTIONS), _describe(segments, events), list(_DESCRIBE_FALSE)
    elif template.name == "exists_no":
        segments, mentioned = diverse_windows(scene.duration_s), [draft.absent]
        question = template.question.format(colour=draft.absent.colour, shape=draft.absent.shape)
        answer, wrong = "No", ["Yes"]
    else:
        look = evidence[0].look
        words = {"colour": look.colour, "shape": look.shape, "direction": look.direction, "name": look.name}
        if template.name == "next_after":
            later = [event for event in events if event.start_s > evidence[0].start_s]
            if not later or (len(later) > 1 and later[1].start_s == later[0].start_s):
                return None  # nothing, or two things at once, appear next
            evidence.append(later[0])
            mentioned.append(later[0].look)
            answer = later[0].look.name
            wrong = sorted({event.look.name for event in events} - {answer, look.name})
        elif template.name == "count":
            answer = str(draft.count)
            wrong = [str(number) for number in range(1, 5) if number != draft.count]
        elif template.name == "faster":
            first, second = mentioned
            names = [first.name, second.name]
            rng.shuffle(names)
            words.update(first=names[0], second=names[1])
            answer = first.name if first.speed == "fast" else second.name
            wrong = [name for name in names if name != answer]
        else:
            answer = _answer_text(template.answer, look)
            wrong = [value for value in _VOCABULARY[template.answer] if value != answer]
        question = template.question.format(**words)
    if segments is None:
        segments = sorted(event.segment for event in evidence)

    options: list[str] = []
    answer_form = "open_ended"
    if rng.random() < 0.5:
        answer_form = "multiple_choice"
        if template.name == "describe":
            question, answer = "Which best describes the video?", _DESCRIBE_TRUE
        choices = [wrong[int(i)] for i in rng.permutation(len(wrong))[: len(OPTION_LETTERS) - 1]] + [answer]
        rng.shuffle(choices)
        options = [f"{letter}. {choice}" for letter, choice in zip(OPTION_LETTERS, choices)]
        question = "\n".join([question, *options, MC_SUFFIX])
        answer = OPTION_LETTERS[choices.index(answer)]

    attributes = {
        "template": template.name,
        "colours": sorted({look.colour for look in mentioned}),
        "shapes": sorted({look.shape for look in mentioned if look.shape}),
        "directions": sorted({look.direction for look in mentioned if look.direction}),
        "speeds": sorted({look.speed for look in mentioned if look.speed}),
        "texts": sorted({look.text for look in mentioned if look.text}),
        "held_out": any(look.held_out for look in mentioned),
        "event_ids": sorted({event.event_id for event in evidence}),
    }
    return QuestionRecord(
        template.name, template.instruction_type, question, answer, options, answer_form,
        template.name != "exists_no", segments, attributes,
    )  # fmt: skip


def _describe(windows: Sequence[Sequence[float]], events: Sequence[Event]) -> str:
    """An open answer built from what the diverse windows show."""
    parts = [_DESCRIBE_TRUE]
    for (start, end), place in zip(windows, ("At the beginning", "In the middle", "Near the end")):
        shown = [event.look.description for event in events if event.start_s < end and event.end_s > start]
        listed = ", ".join(f"a {name}" for name in shown[:3]) if shown else "only the background"
        parts.append(f"{place} the video shows {listed}.")
    return " ".join(parts)
