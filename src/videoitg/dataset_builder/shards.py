"""`videoitg annotate merge`: one dataset folder from the output folders of the shards of one annotation run.

Each shard (`--num-shards N --shard-index I`) is an independent process that writes a complete dataset folder and
a manifest (`.videoitg/manifest.json`: QA file hash, settings hash, shard index, question positions, counts).
Merging checks that the folders are the N shards of one run, all finished, and writes the rows in QA-file order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..video import InvalidInputError
from .writer import (
    link_videos,
    read_failures,
    read_manifest,
    read_rows,
    write_dataset_folder,
    write_manifest,
)


def merge_shards(shard_dirs: Sequence[str | Path], out: str | Path) -> dict:
    """Merge shard folders into `out`; returns the merged manifest. Raises `InvalidInputError` when the folders
    are not the complete, finished set of shards of one run."""
    shard_dirs = [Path(folder) for folder in shard_dirs]
    if not shard_dirs:
        raise InvalidInputError("give the output folders of the shards to merge")
    manifests = [read_manifest(folder) for folder in shard_dirs]
    first = manifests[0]
    for folder, manifest in zip(shard_dirs, manifests):
        if manifest.get("kind") != "annotate":
            raise InvalidInputError(f"{folder}: not a shard written by videoitg annotate")
        for key in ("qa_sha256", "settings_sha256", "num_shards"):
            if manifest[key] != first[key]:
                raise InvalidInputError(
                    f"{folder}: {key} differs from {shard_dirs[0]} ({manifest[key]!r} vs {first[key]!r}): the "
                    "folders are not shards of one run"
                )
        pending = manifest["counts"].get("pending", 0)
        if pending:
            raise InvalidInputError(f"{folder}: shard {manifest['shard_index']} is unfinished ({pending} questions "
                                    "pending); run its annotate command again to finish it")  # fmt: skip
    indices = [manifest["shard_index"] for manifest in manifests]
    duplicated = sorted({index for index in indices if indices.count(index) > 1})
    if duplicated:
        raise InvalidInputError(f"shard indices {duplicated} are given more than once")
    missing = sorted(set(range(first["num_shards"])) - set(indices))
    if missing:
        raise InvalidInputError(f"shards {missing} of {first['num_shards']} are missing")

    positions: dict[str, int] = {}
    for manifest in manifests:
        positions.update(manifest["positions"])
    rows = sorted((row for folder in shard_dirs for row in read_rows(folder)), key=lambda row: positions[row["id"]])
    first_position: dict[str, int] = {}
    for row in rows:
        first_position.setdefault(row["video_id"], positions[row["id"]])
    captions = sorted(
        (row for folder in shard_dirs for row in read_rows(folder, "captions")),
        key=lambda row: (
            positions[row["question_id"]] if row["question_id"] else first_position.get(row["video_id"], 0),
            row["clip_index"],
        ),
    )  # fmt: skip
    failures = sorted((f for folder in shard_dirs for f in read_failures(folder)), key=lambda f: f["position"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    roots = {manifest["video_root"] for manifest in manifests}
    if len(roots) == 1 and Path(next(iter(roots))).is_dir():
        link_videos(out, Path(next(iter(roots))))
    models = first.get("models", {})
    provenance = (
        f"Annotated with the VidThinker pipeline (`videoitg annotate`) using LLM "
        f"`{models.get('llm', {}).get('model')}` and MLLM `{models.get('mllm', {}).get('model')}`, "
        f"in {first['num_shards']} shards merged with `videoitg annotate merge`."
    )
    write_dataset_folder(out, rows, captions, out.name, provenance, failures)
    merged = {
        "kind": "merged",
        "qa_sha256": first["qa_sha256"],
        "settings_sha256": first["settings_sha256"],
        "num_shards": first["num_shards"],
        "shards": [str(folder.resolve()) for folder in shard_dirs],
        "positions": positions,
        "counts": {"done": len(rows), "failed": len(failures), "pending": 0},
    }
    write_manifest(out, merged)
    return merged
