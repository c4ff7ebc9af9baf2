"""Extra grounding questions for synthetic datasets, read from their `events` config.

A benchmark video holds 4-8 questions but shows dozens of events. For a model trained from scratch that is too
little signal to learn what each word refers to: "When is the red star on screen?", "When does something move
left?", "When is the number 7 shown?" for every cue an event shows (colour, shape, text, motion and their
combinations) give it one question per cue, each with exact frame labels (every event that matches the cue). They
are training data only: evaluation uses the benchmark's own questions.
"""

from __future__ import annotations

from collections import defaultdict

from ..evaluation.metrics import labels_from_segments
from ..evaluation.synth_plan import Predicate as Cue  # the (field, value) pairs an event must all have


def event_cues(event: dict) -> list[Cue]:
    """The cues one event answers to."""
    colour = ("colour", event["colour"])
    if event["kind"] != "shape":
        return [(("text", str(event["text"])),), (colour,)]
    shape = ("shape", event["shape"])
    cues = [(colour, shape), (colour,), (shape,)]
    if event["direction"]:
        direction = ("direction", event["direction"])
        cues += [(direction,), (colour, direction), (shape, direction), (colour, shape, direction)]
        cues.append((("speed", event["speed"]),))
    return cues


def cue_question(cue: Cue) -> str:
    fields = dict(cue)
    if "text" in fields:
        kind = "number" if fields["text"].isdigit() else "word"
        return f"When is the {kind} {fields['text']} shown?"
    if "speed" in fields:
        return f"When does something move {'quickly' if fields['speed'] == 'fast' else 'slowly'}?"
    thing = " ".join(fields[name] for name in ("colour", "shape") if name in fields)
    if "direction" in fields:
        subject = f"the {thing}" if "shape" in fields else (f"something {thing}" if thing else "something")
        return f"When does {subject} move {fields['direction']}?"
    if "shape" in fields:
        return f"When is the {thing} on screen?" if "colour" in fields else f"When is a {thing} on screen?"
    return f"When is something {thing} on screen?"


def _matches(event: dict, cue: Cue) -> bool:
    return all(str(event[name]) == value for name, value in cue)


def event_queries(events: list[dict], num_frames: int) -> list[tuple[str, list[int]]]:
    """(question, 1-fps frame labels) for every cue shown in one video; labels mark every matching event."""
    cues = list(dict.fromkeys(cue for event in events for cue in event_cues(event)))
    queries = []
    for cue in cues:
        segments = [(event["start_s"], event["end_s"]) for event in events if _matches(event, cue)]
        labels = labels_from_segments(segments, num_frames)
        if any(labels):
            queries.append((cue_question(cue), labels))
    return queries


def load_events(dataset: str, split: str) -> dict[str, list[dict]]:
    """video_id -> its event rows, from a synthetic dataset's `events` config."""
    from ..video import InvalidInputError
    from .data import load_split

    try:
        events, _ = load_split(dataset, split, config="events")
    except InvalidInputError as error:
        raise InvalidInputError(f"{dataset}: no `events` config (made by `videoitg synth`)") from error
    events_of = defaultdict(list)
    for event in events:
        events_of[event["video_id"]].append(event)
    return events_of


def load_event_queries(dataset: str, split: str, rows) -> dict[str, list[tuple[str, list[int]]]]:
    """video_id -> its event questions, for the videos of `rows` (a split of the default config)."""
    events_of = load_events(dataset, split)
    frames_of = {video_id: len(labels) for video_id, labels in zip(rows["video_id"], rows["frame_labels"])}
    return {video_id: event_queries(events_of[video_id], count) for video_id, count in frames_of.items()}
