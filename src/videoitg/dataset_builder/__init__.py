"""VidThinker, the annotation pipeline of VideoITG, and the VideoITG-40K dataset tools.

Modules (each importable on its own; nothing heavy is imported here):

* `backends` — OpenAI-compatible HTTP and local transformers chat backends; `ModelClient` adds the cache.
* `cache` — the response cache (SQLite), keyed by backend, model, prompt, images and parameters.
* `journal` — the per-question, per-stage run journal (SQLite, WAL) that makes runs resumable.
* `prompts` + `prompts/*.txt` — the versioned prompt templates (Tables 8, 9, 10 of the paper and ours).
* `stages` — typing, key phrases, clip captions, clip retrieval, frame localization.
* `sampling` — the per-instruction-type frame sampling rules (Algorithm 1 from `videoitg.selection`).
* `media` — 1-fps frames of a video as JPEG images and features, split into clips.
* `qa` — QA files (LLaVA-Video-178K JSON, JSONL) and sharding.
* `pipeline` — `annotate()` and `dry_run()`; `shards` — `merge_shards()`.
* `writer` — the Hub-format dataset folder and its card; `publish` — `push_dataset()`.
* `convert` — the VideoITG-40K converter; `quality` — annotation IoU (Table 7).
* `testing` — a scripted OpenAI-compatible server for tests and benchmarks.
* `cli` — `add_cli(subparsers)`: `annotate`, `annotate merge`, `push-dataset`, `convert-dataset`,
  `eval-annotations`.
"""
