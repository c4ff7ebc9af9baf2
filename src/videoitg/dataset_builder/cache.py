"""Response cache: one SQLite table of model replies keyed by what was asked.

The key is a SHA-256 over the backend kind and the request exactly as an OpenAI-compatible server receives it
(model, messages with their images, max_tokens, temperature); images enter the key through a hash of their data
URL. A rerun — after a crash, with another shard layout, or into a new output folder that shares `--cache` —
asks the server nothing it already answered. Replies are committed as soon as they arrive (WAL mode), so a process
killed at any moment loses at most the calls that were in flight.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from pathlib import Path

from ..video import InvalidInputError

_DATA_URL_PREFIX = "data:"


def _hash_data_urls(value):
    """A copy of a request payload in which every `data:` URL is replaced by its SHA-256 (keys stay small)."""
    if isinstance(value, dict):
        return {key: _hash_data_urls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_hash_data_urls(item) for item in value]
    if isinstance(value, str) and value.startswith(_DATA_URL_PREFIX):
        return "sha256:" + hashlib.sha256(value.encode("ascii", "replace")).hexdigest()
    return value


def cache_key(backend_kind: str, payload: dict) -> str:
    """The cache key of a chat request: `payload` is the OpenAI chat-completions body (model, messages, ...)."""
    canonical = json.dumps(
        {"backend": backend_kind, "request": _hash_data_urls(payload)},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )  # fmt: skip
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """`get(key)` / `put(key, reply_dict)` over `path` (an SQLite file, created with its folder)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(self.path, isolation_level=None)
            self._connection.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process; only an OS crash may lose the last replies, which
            # costs a repeated call, never a wrong annotation.
            self._connection.execute("PRAGMA synchronous=NORMAL")
            self._connection.execute("PRAGMA busy_timeout=30000")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.Error as error:
            raise InvalidInputError(f"{self.path}: cannot open the response cache ({error})") from error

    def get(self, key: str) -> dict | None:
        row = self._connection.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, reply: dict) -> None:
        self._connection.execute(
            "INSERT OR REPLACE INTO replies (key, reply, created) VALUES (?, ?, ?)",
            (key, json.dumps(reply, ensure_ascii=False), time.time()),
        )

    def keys(self) -> set[str]:
        return {row[0] for row in self._connection.execute("SELECT key FROM replies")}

    def __len__(self) -> int:
        return self._connection.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        self._connection.close()
