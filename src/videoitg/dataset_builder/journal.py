"""The run journal: what is done, per question and per stage, in an SQLite database in WAL mode.

Every stage result is committed before the next stage starts, and a question's final row is committed in the same
transaction that marks it done. A run killed at any moment (`kill -9`, a preempted Slurm job) is resumed by running
the same command again: finished questions and finished stages are read back, never redone; a stage that was cut
short is redone, and the response cache answers the calls it had already made. In WAL mode `synchronous=NORMAL`
makes a commit durable against the death of the process without an fsync per commit; only an OS crash or a power
cut can lose the last commits, which are then redone (never half-written: the database stays consistent).

Tables:
  `run`       — the settings the journal was started with (a resumed run must use the same ones);
  `questions` — one row per question of the shard: position in the QA file, status (pending | done | failed),
                the dataset row once done, the stage and reason once failed;
  `stages`    — one row per finished (unit, stage): the stage's typed result as JSON. A unit is a question id,
                or `video:<video_id>` for work shared by the questions of one video.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..video import InvalidInputError

PENDING, DONE, FAILED = "pending", "done", "failed"


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._transaction():
                self._db.execute("CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS questions (id TEXT PRIMARY KEY, position INTEGER NOT NULL, "
                    "status TEXT NOT NULL, row TEXT, stage TEXT, reason TEXT, updated REAL NOT NULL)"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS stages (unit TEXT NOT NULL, stage TEXT NOT NULL, result TEXT NOT NULL, "
                    "updated REAL NOT NULL, PRIMARY KEY (unit, stage))"
                )
        except sqlite3.Error as error:
            raise InvalidInputError(f"{self.path}: cannot open the run journal ({error})") from error

    def _transaction(self):
        db = self._db

        class _Transaction:
            def __enter__(self):
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, traceback):
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Transaction()

    # ------------------------------------------------------------------------------------------------ settings
    def settings(self) -> dict | None:
        row = self._db.execute("SELECT value FROM run WHERE key = 'settings'").fetchone()
        return None if row is None else json.loads(row[0])

    def start(self, settings: Mapping, questions: Iterable[tuple[str, int]]) -> None:
        """Record the settings and the shard's questions on the first run; check them on a resumed one."""
        stored = self.settings()
        if stored is None:
            with self._transaction():
                self._db.execute("INSERT INTO run VALUES ('settings', ?)", (json.dumps(settings, sort_keys=True),))
                now = time.time()
                self._db.executemany(
                    "INSERT INTO questions (id, position, status, updated) VALUES (?, ?, ?, ?)",
                    [(question_id, position, PENDING, now) for question_id, position in questions],
                )
            return
        changed = sorted(key for key in set(stored) | set(settings) if stored.get(key) != settings.get(key))
        if changed:
            details = "; ".join(f"{key}: {stored.get(key)!r} -> {settings.get(key)!r}" for key in changed[:5])
            raise InvalidInputError(
                f"{self.path}: this output folder was started with other settings ({details}). Resume with the "
                "same command, or write to a new --out folder"
            )

    # -------------------------------------------------------------------------------------------------- stages
    def stage_result(self, unit: str, stage: str) -> dict | None:
        row = self._db.execute("SELECT result FROM stages WHERE unit = ? AND stage = ?", (unit, stage)).fetchone()
        return None if row is None else json.loads(row[0])

    def save_stage(self, unit: str, stage: str, result: Mapping) -> None:
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?, ?, ?, ?)",
                (unit, stage, json.dumps(result, ensure_ascii=False, sort_keys=True), time.time()),
            )

    # ----------------------------------------------------------------------------------------------- questions
    def finish(self, question_id: str, row: Mapping) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE questions SET status = ?, row = ?, stage = NULL, reason = NULL, updated = ? WHERE id = ?",
                (DONE, json.dumps(row, ensure_ascii=False, sort_keys=True), time.time(), question_id),
            )

    def fail(self, question_id: str, stage: str, reason: str) -> None:
        with self._transaction():
            self._db.execute(
                "UPDATE questions SET status = ?, stage = ?, reason = ?, updated = ? WHERE id = ?",
                (FAILED, stage, reason, time.time(), question_id),
            )

    def requeue_failed(self) -> int:
        """Mark failed questions pending again (`--retry-failed`); their finished stages are kept."""
        with self._transaction():
            cursor = self._db.execute(
                "UPDATE questions SET status = ?, stage = NULL, reason = NULL WHERE status = ?", (PENDING, FAILED)
            )
        return cursor.rowcount

    def statuses(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT id, status FROM questions"))

    def counts(self) -> dict[str, int]:
        counts = {PENDING: 0, DONE: 0, FAILED: 0}
        counts.update(dict(self._db.execute("SELECT status, COUNT(*) FROM questions GROUP BY status")))
        return counts

    def done_rows(self) -> list[dict]:
        """The finished rows in QA-file order."""
        rows = self._db.execute("SELECT row FROM questions WHERE status = ? ORDER BY position", (DONE,))
        return [json.loads(row) for (row,) in rows]

    def failures(self) -> list[dict]:
        rows = self._db.execute(
            "SELECT id, position, stage, reason FROM questions WHERE status = ? ORDER BY position", (FAILED,)
        )
        keys = ("id", "position", "stage", "reason")
        return [dict(zip(keys, row)) for row in rows]

    def positions(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT id, position FROM questions"))

    def close(self) -> None:
        self._db.close()
