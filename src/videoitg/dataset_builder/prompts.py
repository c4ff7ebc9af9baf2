"""Versioned prompt templates of the VidThinker stages.

Each template is a text file in `prompts/` (or in a folder given with `--prompts`, whose files replace the shipped
ones of the same name) made of a header and a body separated by a line `---`:

    # name: clip_retrieval
    # version: 1
    # source: VideoITG paper, appendix C, Table 8
    # placeholders: clip_descriptions, question, answer
    ---
    Task: ... $question ...

Placeholders are `$name` (`string.Template`; `$$` is a literal dollar sign), so the JSON examples of the prompts
need no escaping. The name, version and a hash of every template go into the run's fingerprint: a resumed run
refuses to mix annotations made with different prompts.
"""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from pathlib import Path

from ..video import InvalidInputError

PROMPT_DIR = Path(__file__).parent / "prompts"
PROMPT_NAMES = (
    "instruction_speed",
    "instruction_nonexistence",
    "instruction_static_details",
    "key_phrases",
    "clip_caption",
    "clip_retrieval",
    "frame_relevance",
    "repair_reply",
)
_HEADER_KEYS = ("name", "version", "source", "placeholders")


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    source: str
    placeholders: tuple[str, ...]
    body: str

    @property
    def fingerprint(self) -> str:
        """`name@version#hash`: changes whenever the text changes, even when the version was not bumped."""
        digest = hashlib.sha256(self.body.encode("utf-8")).hexdigest()[:12]
        return f"{self.name}@{self.version}#{digest}"

    @property
    def signature(self) -> str:
        """The longest line of literal text of the template: recognises a prompt rendered from it."""
        literal = string.Template.pattern.sub("\n", self.body)
        return max((line.strip() for line in literal.splitlines()), key=len)

    def render(self, **values) -> str:
        missing = set(self.placeholders) - set(values)
        extra = set(values) - set(self.placeholders)
        if missing or extra:
            raise InvalidInputError(
                f"prompt {self.name!r}: expected placeholders {sorted(self.placeholders)}, "
                f"got {sorted(values)}"
            )
        return string.Template(self.body).substitute({key: str(value) for key, value in values.items()})


def parse_template(text: str, origin: str) -> PromptTemplate:
    header, separator, body = text.partition("\n---\n")
    if not separator:
        raise InvalidInputError(f"{origin}: a prompt template needs a header, a line '---' and a body")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.lstrip("# ").partition(":")
        if not line.startswith("#") or not colon:
            raise InvalidInputError(f"{origin}: header lines look like '# key: value', got {line!r}")
        fields[key.strip()] = value.strip()
    missing = [key for key in _HEADER_KEYS if key not in fields]
    if missing:
        raise InvalidInputError(f"{origin}: the header lacks {', '.join(missing)}")
    placeholders = tuple(name.strip() for name in fields["placeholders"].split(",") if name.strip())
    body = body.strip("\n") + "\n"
    used = {
        match.group("named") or match.group("braced")
        for match in string.Template.pattern.finditer(body)
        if match.group("named") or match.group("braced")
    }
    if used != set(placeholders):
        raise InvalidInputError(
            f"{origin}: the body uses placeholders {sorted(used)} but the header declares {sorted(placeholders)}"
        )
    return PromptTemplate(fields["name"], fields["version"], fields["source"], placeholders, body)


@dataclass(frozen=True)
class PromptSet:
    """The templates of one run, by name."""

    templates: dict[str, PromptTemplate]

    def __getitem__(self, name: str) -> PromptTemplate:
        return self.templates[name]

    def fingerprints(self) -> dict[str, str]:
        return {name: template.fingerprint for name, template in sorted(self.templates.items())}


def load_prompts(override_dir: str | Path | None = None) -> PromptSet:
    """The shipped templates, each replaced by `override_dir/<name>.txt` when that file exists."""
    folders = [PROMPT_DIR]
    if override_dir is not None:
        override_dir = Path(override_dir)
        if not override_dir.is_dir():
            raise InvalidInputError(f"{override_dir}: --prompts must be a folder of <name>.txt templates")
        unknown = sorted(path.stem for path in override_dir.glob("*.txt") if path.stem not in PROMPT_NAMES)
        if unknown:
            raise InvalidInputError(
                f"{override_dir}: unknown prompt names {unknown}; known: {', '.join(PROMPT_NAMES)}"
            )
        folders.append(override_dir)
    templates = {}
    for name in PROMPT_NAMES:
        path = next(folder / f"{name}.txt" for folder in reversed(folders) if (folder / f"{name}.txt").exists())
        template = parse_template(path.read_text(encoding="utf-8"), str(path))
        if template.name != name:
            raise InvalidInputError(f"{path}: the header names the template {template.name!r}, expected {name!r}")
        templates[name] = template
    return PromptSet(templates)
