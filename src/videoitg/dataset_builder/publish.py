"""`videoitg push-dataset DIR REPO_ID`: publish a dataset folder on the Hugging Face Hub.

Uploaded: `README.md`, `data/` and `captions/` (never the journal, the cache, the log or the `videos` link). With
`embed_videos=True` the rows carry the video files' bytes (`datasets.Video` feature) so the Hub dataset is
self-contained; every row embeds its own copy, which multiplies the size by the questions per video — meant for
small datasets. The token is huggingface_hub's (`HF_TOKEN` or `hf auth login`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..video import InvalidInputError
from .writer import SPLIT, WORK_DIR, row_features

UPLOADED = ("README.md", "data/*.parquet", "captions/*.parquet")


def embed_videos(folder: str | Path, staging: str | Path, rows_per_batch: int = 64) -> Path:
    """A copy of `folder`'s uploadable files in `staging` whose `video` column holds the video bytes.

    Each Parquet file keeps its name (the card lists the files by name) and is written in batches of
    `rows_per_batch` rows, so memory holds a batch of videos, not the dataset."""
    import pyarrow.parquet as pq
    from datasets import Dataset, Video

    folder, staging = Path(folder), Path(staging)
    files = sorted((folder / "data").glob(f"{SPLIT}-*.parquet"))
    if not files:
        raise InvalidInputError(f"{folder}: no data/{SPLIT}-*.parquet files to upload")
    missing = sorted({video for path in files for video in pq.read_table(path, columns=["video"]).column(0).to_pylist()
                      if not (folder / video).is_file()})  # fmt: skip
    if missing:
        raise InvalidInputError(
            f"{folder}: {len(missing)} videos cannot be found to embed (first: {folder / missing[0]}); link the video "
            f"root as {folder / 'videos'}"
        )
    if staging.exists():
        shutil.rmtree(staging)
    (staging / "data").mkdir(parents=True)
    features = row_features()
    features["video"] = Video()
    for path in files:
        table = pq.read_table(path)
        writer = None
        try:
            for batch in table.to_batches(max_chunksize=rows_per_batch):
                columns = batch.to_pydict()
                contents: dict[str, bytes] = {}
                columns["video"] = [{"bytes": contents.setdefault(video, (folder / video).read_bytes()), "path": video}
                                    for video in columns["video"]]  # fmt: skip
                embedded = Dataset.from_dict(columns, features=features).data.table
                if writer is None:
                    writer = pq.ParquetWriter(staging / "data" / path.name, embedded.schema)
                writer.write_table(embedded)
        finally:
            if writer is not None:
                writer.close()
    shutil.copy2(folder / "README.md", staging / "README.md")
    if (folder / "captions").is_dir():
        shutil.copytree(folder / "captions", staging / "captions")
    return staging


def push_dataset(
    folder: str | Path,
    repo_id: str,
    embed: bool = False,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload dataset with videoitg",
    api=None,
) -> str:
    """Create the dataset repo (if needed) and upload the folder; returns the commit URL. `api` defaults to
    `huggingface_hub.HfApi()`."""
    folder = Path(folder)
    if not (folder / "README.md").is_file() or not (folder / "data").is_dir():
        raise InvalidInputError(f"{folder}: not a dataset folder (no README.md and data/)")
    if repo_id.count("/") != 1:
        raise InvalidInputError(f"repo id must look like 'org/name', got {repo_id!r}")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    source = embed_videos(folder, folder / WORK_DIR / "embedded") if embed else folder
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id, repo_type="dataset", folder_path=str(source), allow_patterns=list(UPLOADED),
            revision=revision, commit_message=commit_message,
        )  # fmt: skip
    finally:
        if embed:
            shutil.rmtree(source, ignore_errors=True)
    return str(getattr(commit, "commit_url", commit))
